// Fuzz target: the text formats. The first byte picks the parser: deb822
// (+ Release SHA256 list), Debian .buildinfo, Arch .BUILDINFO, desc,
// .PKGINFO, .MTREE.
#include <cstddef>
#include <cstdint>

#include "rebuilder/archive/arch_meta.h"
#include "rebuilder/archive/deb822.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace kmr;
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % 6) {
    case 0: {
      auto p = archive::parse_deb822(text, "fuzz");
      if (p && !p->empty()) {
        auto files = archive::release_sha256((*p)[0], "fuzz");
        if (files) (void)archive::check_release_entry(*files, "main/Packages", text);
      }
      break;
    }
    case 1: (void)archive::parse_deb_buildinfo(text, "fuzz"); break;
    case 2: (void)archive::parse_buildinfo(text, "fuzz"); break;
    case 3: {
      auto d = archive::parse_desc(text, "fuzz");
      if (d) (void)archive::repo_package_from_desc(*d, "fuzz");
      break;
    }
    case 4: (void)archive::parse_pkginfo(text, "fuzz"); break;
    case 5: (void)archive::parse_mtree(text, "fuzz"); break;
  }
  return 0;
}
