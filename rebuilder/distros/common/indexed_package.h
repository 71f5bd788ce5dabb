#pragma once

// One package as a repository index lists it: what every distro's
// repository reader returns (repository.h) and kmrd's sync imports.

#include <cstdint>
#include <optional>
#include <string>

namespace kmr::distros {

// One package as a repository index lists it.
struct IndexedPackage {
  std::string set_key;          // packages with the same set key are rebuilt together
  std::string name, version, arch;
  std::string filename, url, sha256;
  std::optional<std::int64_t> size;
  std::string resource_class = "default";
  std::optional<std::string> sources;  // the set's sources (a URL, or a source list document)
  // The hash a rebuild of this package is compared with when it is not the
  // file's sha256 (Nix: the narinfo's NarHash, hex).
  std::optional<std::string> content_sha256;
};

}  // namespace kmr::distros
