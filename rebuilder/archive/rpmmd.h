#pragma once

// rpm-md repositories: repodata/repomd.xml and primary.xml, read with a small
// strict XML scanner (no DTDs, no external entities, depth and size caps).

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "rebuilder/base/result.h"

namespace kmr::archive {

// Streaming XML events. Attribute values and text are entity-decoded.
struct XmlHandler {
  std::function<Result<void>(const std::string& name, const std::map<std::string, std::string>& attrs)> start;
  std::function<Result<void>(const std::string& name)> end;
  std::function<Result<void>(const std::string& text)> text;
};
// Rejects DOCTYPE, unknown entities, mismatched tags, depth > 64, > 64 MiB of
// text per node. Errors name `name` and the byte offset.
Result<void> scan_xml(std::string_view xml, const std::string& name, const XmlHandler& handler);

struct RepoMdData {
  std::string type;      // primary, filelists, other, ...
  std::string checksum;  // of the (compressed) file, hex
  std::string checksum_type;
  std::string open_checksum;
  std::string location;  // href, relative to the repository root
  std::uint64_t size = 0;
  std::uint64_t open_size = 0;
};
Result<std::vector<RepoMdData>> parse_repomd(std::string_view xml, const std::string& name);

struct RpmMdPackage {
  std::string name, arch, epoch, version, release, checksum, checksum_type, location, buildhost, sourcerpm, packager;
  std::int64_t build_time = 0;
  std::uint64_t package_size = 0;
};
Result<std::vector<RpmMdPackage>> parse_primary(std::string_view xml, const std::string& name);

// Checks data against a hex digest of the given type ("sha256" only).
Result<void> check_digest(std::string_view data, const std::string& type, const std::string& hex,
                          const std::string& what);

}  // namespace kmr::archive
