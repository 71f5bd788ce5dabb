#pragma once

// The sources a rebuild job carries: files to download (a .dsc and its
// tarballs, a .buildinfo, a source RPM, a nixpkgs tarball), each with the
// hash its index gave when it gave one, and git repositories to clone at a
// tag (an Arch packaging repository). Sync builds the list from the
// repository's URL templates; kmrd hands it to the worker inside the signed
// job; the worker downloads it into the job's sources directory and passes
// that to `kmr rebuild --sources`.
//
// Serialised as one JSON object:
//   {"kmr_sources":1,
//    "files":[{"name","url","sha256"?,"size"?,"what"}],
//    "git":[{"url","ref","dir","what"}]}
// The parser treats it as untrusted: bounded size and nesting, every name a
// plain file name, every URL http(s) or file, every hash 64 lowercase hex.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rebuilder/base/result.h"

namespace kmr::distros {

struct SourceFile {
  std::string name;    // file name in the sources directory
  std::string url;
  std::string sha256;  // "" when the index gives none
  std::optional<std::uint64_t> size;
  std::string what;    // what it is, for messages (".dsc", "buildinfo", "source RPM")
};

struct GitSource {
  std::string url;
  std::string ref;   // a tag or branch name
  std::string dir;   // directory name in the sources directory
  std::string what;
};

struct SourceList {
  std::vector<SourceFile> files;
  std::vector<GitSource> git;
  bool empty() const { return files.empty() && git.empty(); }
};

inline constexpr std::size_t kMaxSourceFiles = 256;
inline constexpr std::size_t kMaxGitSources = 16;
inline constexpr std::size_t kMaxSourceListBytes = 1 << 20;

// A plain file name: 1 to 255 bytes of [A-Za-z0-9._+~:@=,-], not starting
// with '.' or '-'.
bool is_plain_file_name(std::string_view name);

// A source URL: https://, http:// or file://, at most 4096 bytes, printable
// ASCII without spaces or backslashes.
bool is_source_url(std::string_view url);

// Checks every entry (names unique, URLs, hashes, refs); the error names the entry.
Result<void> validate(const SourceList& list);

// Serialises a validated list (validate() first).
Result<std::string> to_json(const SourceList& list);

// True when a job's "sources" value is a source list (a JSON object), not a URL.
bool looks_like_source_list(std::string_view text);

Result<SourceList> parse_source_list(std::string_view text);

}  // namespace kmr::distros
