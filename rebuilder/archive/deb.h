#pragma once

// Debian binary packages (.deb): ar with debian-binary, control.tar.* and
// data.tar.*, read in one streaming pass.

#include <string>

#include "rebuilder/archive/archive_reader.h"
#include "rebuilder/archive/deb822.h"

namespace kmr::archive {

struct DebPackage {
  std::string format_version;  // "2.0"
  Deb822Paragraph control;
  std::string control_member;  // control.tar.xz
  std::string data_member;     // data.tar.xz
  ArchiveStats data_stats;
  std::string package() const { return control.get_or("Package"); }
  std::string version() const { return control.get_or("Version"); }
};

// Reads the package; data members go to `data_visitor` (if set).
Result<DebPackage> read_deb(InputStream& in, const ReaderOptions& options, const Visitor* data_visitor);

bool looks_like_ar(Bytes data);

}  // namespace kmr::archive
