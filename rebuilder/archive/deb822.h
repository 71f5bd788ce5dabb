#pragma once

// deb822 (Debian control files, Packages, Release/InRelease, .buildinfo).

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "rebuilder/base/limits.h"
#include "rebuilder/base/result.h"

namespace kmr::archive {

// One paragraph: fields in file order. Multi-line values keep their
// continuation lines joined with '\n' (the leading space removed, a lone "."
// kept as ".").
struct Deb822Paragraph {
  std::vector<std::pair<std::string, std::string>> fields;
  // Field lookup, case-insensitive as in deb822(5).
  const std::string* get(std::string_view name) const;
  std::string get_or(std::string_view name, const std::string& fallback = "") const;
};

struct Deb822Options {
  Limits limits;
  std::uint64_t max_paragraphs = 1'000'000;
  std::uint64_t max_fields = 1000;  // per paragraph
};

// Parses paragraphs; errors name `name` and the line ("Packages: line 7: ...").
// A clearsigned wrapper (-----BEGIN PGP SIGNED MESSAGE-----) is removed first
// (dash-escaping undone); the signature itself is checked by openpgp.h.
Result<std::vector<Deb822Paragraph>> parse_deb822(std::string_view text, const std::string& name,
                                                  const Deb822Options& options = {});

// The signed body of a clearsigned message, or the text itself when it is not
// clearsigned. Errors on a broken wrapper.
Result<std::string> strip_clearsign(std::string_view text, const std::string& name);

// One "<hash> <size> <path>" line of a Release checksum field.
struct ReleaseFile {
  std::string hash;
  std::uint64_t size = 0;
  std::string path;
};
// The SHA256 list of a Release/InRelease paragraph.
Result<std::vector<ReleaseFile>> release_sha256(const Deb822Paragraph& release, const std::string& name);

// Checks index bytes (e.g. main/binary-amd64/Packages.xz) against the Release
// SHA256 list: size and hash must match the entry for `path`.
Result<void> check_release_entry(const std::vector<ReleaseFile>& files, const std::string& path,
                                 std::string_view data);

// A Debian .buildinfo (deb-buildinfo(5)) summary.
struct DebBuildinfo {
  std::string format, source, binary, architecture, version, build_origin, build_architecture, build_date,
      build_kernel_version, build_path;
  std::vector<std::string> installed_build_depends;  // "pkg (= ver)"
  std::vector<std::string> environment;              // KEY="value"
  std::vector<std::string> checksums_sha256;         // "<hash> <size> <file>"
};
Result<DebBuildinfo> parse_deb_buildinfo(std::string_view text, const std::string& name);

}  // namespace kmr::archive
