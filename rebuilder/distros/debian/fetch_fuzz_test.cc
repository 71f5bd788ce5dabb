// Fuzzes what a repository sends that kmr reads before any hash is checked:
// the Sources text cut to one package's paragraphs, a .buildinfo checked
// against the shipped packages, and a Release URL. Invariants: every picked
// paragraph starts a paragraph of the input and names a wanted package; a
// .buildinfo is accepted only when it lists the shipped package's exact
// sha256 and size; a Release location is a prefix of the URL.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "rebuilder/distros/debian/fetch.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::string picked = kmr::debian::paragraphs_of(text, {"linux-kmr"});
  if (!picked.empty() && picked.rfind("Package: ", 0) != 0 && picked.find("\nPackage: linux-kmr") == std::string::npos)
    __builtin_trap();

  kmr::debian::ShippedDeb deb;
  deb.file_name = "linux-image-6.1.192-kmr_6.1.192-1kmr_amd64.deb";
  deb.sha256 = std::string(64, 'a');
  deb.size = 1234;
  if (kmr::debian::check_buildinfo_binding(text, "fuzz.buildinfo", {deb}, nullptr)) {
    const std::string line = " " + deb.sha256 + " 1234 " + deb.file_name;
    if (text.find(line) == std::string_view::npos) __builtin_trap();
  }

  const std::string url(text.substr(0, 300));
  if (auto loc = kmr::debian::release_location(url)) {
    if (url.rfind(loc->dist_url, 0) != 0 || loc->dist_url.rfind(loc->archive_root, 0) != 0) __builtin_trap();
  }
  return 0;
}
