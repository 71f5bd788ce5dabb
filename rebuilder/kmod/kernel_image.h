#pragma once

// Finds the module_hashes_root in any shipped kernel image: an ELF vmlinux
// (section .module_hashes), an x86 bzImage (payload -> ELF), a compressed
// vmlinux (vmlinux.xz / vmlinux.gz, as SUSE ships), an arm64 EFI zboot
// image, or a raw image (arm64 Image, possibly gzip'd) where only a search
// for the 36-byte struct can find it, given the expected root.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "rebuilder/base/bytes.h"
#include "rebuilder/base/result.h"
#include "rebuilder/kmod/merkle.h"

namespace kmr::kmod {

struct ImageRoot {
  bool present = false;
  MerkleRoot root;
  // "elf-section", "bzimage-<codec>", "search"; "absent" when not present.
  std::string source = "absent";
  // Outer compression of the whole file ("none", "xz", "gzip", ...).
  std::string compression = "none";
  bool little_endian = true;
  // Offset of the struct in the (innermost, decompressed) image.
  std::uint64_t offset = 0;
};

struct ImageOptions {
  // Enables the search in images without a section table.
  std::optional<MerkleRoot> expected;
  std::uint64_t max_decompressed = 2ull << 30;
};

Result<ImageRoot> root_from_image(Bytes image, std::string_view what, const ImageOptions& options = {});
Result<ImageRoot> root_from_image_file(const std::string& path, const ImageOptions& options = {});

}  // namespace kmr::kmod
