#pragma once

// Nix archives (NAR): a streaming parser that accepts only canonical form, and
// nix32 (Nix's base-32). The parser calls the same visitor as the archive
// reader, so kernel layout code works on tar, cpio and NAR alike. NarHash and
// NarSize are computed over the bytes while parsing.

#include <optional>
#include <string>

#include "rebuilder/archive/archive_reader.h"
#include "rebuilder/base/sha256.h"

namespace kmr::archive {

// nix32 of `data` (52 characters for 32 bytes).
std::string nix32_encode(Bytes data);
// Decodes nix32 of exactly `size` bytes; nullopt on a bad length, a character
// outside the alphabet, or non-zero excess bits.
std::optional<ByteVector> nix32_decode(std::string_view text, std::size_t size);

struct NarResult {
  Digest256 nar_hash{};
  std::uint64_t nar_size = 0;
  std::uint64_t files = 0;
  std::uint64_t directories = 0;
  std::uint64_t symlinks = 0;
  // "sha256:<nix32>", as in narinfo.
  std::string nar_hash_nix32() const;
};

// Parses a NAR from `in`. Entries reach the visitor with paths relative to the
// root ("" for a root that is a single file; the root directory itself is not
// visited); executables get mode 0755, other files 0644. Fails on any
// non-canonical form with an error naming `options.name` and the entry.
Result<NarResult> read_nar(InputStream& in, const ReaderOptions& options, const Visitor& visitor);
Result<NarResult> read_nar_memory(Bytes data, const ReaderOptions& options, const Visitor& visitor);

// True when `data` starts with the NAR magic token.
bool looks_like_nar(Bytes data);

}  // namespace kmr::archive
