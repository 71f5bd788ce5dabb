#pragma once

// Arch Linux package metadata: .PKGINFO, .BUILDINFO (formats 1 and 2), .MTREE
// and repository-database `desc` files.

#include <map>
#include <string>
#include <vector>

#include "rebuilder/base/limits.h"
#include "rebuilder/base/result.h"

namespace kmr::archive {

// "key = value" lines, '#' comments, keys may repeat (file order kept).
using KeyValues = std::vector<std::pair<std::string, std::string>>;
Result<KeyValues> parse_key_values(std::string_view text, const std::string& name, const Limits& limits = {});

struct PkgInfo {
  std::string pkgname, pkgbase, pkgver, pkgdesc, url, packager, arch;
  std::int64_t builddate = 0;
  std::uint64_t size = 0;
  KeyValues all;  // every line, including depend/provides/...
};
Result<PkgInfo> parse_pkginfo(std::string_view text, const std::string& name);

struct BuildInfo {
  int format = 0;  // 1 or 2
  std::string pkgname, pkgbase, pkgver, pkgarch, pkgbuild_sha256sum, packager, builddir, startdir, buildtool,
      buildtoolver;
  std::int64_t builddate = 0;
  std::vector<std::string> buildenv, options, installed;
};
// Strict: every key known for its format, single keys once, required keys present.
Result<BuildInfo> parse_buildinfo(std::string_view text, const std::string& name);

// desc: "%SECTION%" then value lines, blank line ends the section.
using DescFile = std::map<std::string, std::vector<std::string>>;
Result<DescFile> parse_desc(std::string_view text, const std::string& name);

struct RepoPackage {
  std::string filename, name, base, version, arch, sha256, packager, pgpsig;
  std::uint64_t csize = 0, isize = 0;
  std::int64_t builddate = 0;
};
Result<RepoPackage> repo_package_from_desc(const DescFile& desc, const std::string& name);

// One .MTREE entry (after /set defaults are applied).
struct MtreeEntry {
  std::string path;  // normalised, relative
  std::string type;  // file, dir, link
  std::uint64_t size = 0;
  std::string sha256;  // sha256digest
  std::string link;
  std::uint32_t mode = 0;
  std::int64_t time = 0;
};
// Parses decompressed mtree text.
Result<std::vector<MtreeEntry>> parse_mtree(std::string_view text, const std::string& name);

}  // namespace kmr::archive

namespace kmr::archive {
class InputStream;
struct ReaderOptions;
// Reads an Arch repository database (<repo>.db: tar.gz of <name>-<ver>/desc).
Result<std::vector<RepoPackage>> read_repo_db(InputStream& in, const ReaderOptions& options);
}  // namespace kmr::archive
