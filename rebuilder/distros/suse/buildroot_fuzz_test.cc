// Fuzzes what a SUSE build root reads from a mirror or a job: primary.xml,
// OBS _buildenv and `rpm --requires` text. Every accepted package has a
// relative location without "..", and names and versions that are safe rpm
// arguments; resolution over whatever parsed terminates.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "rebuilder/distros/suse/buildroot.h"

namespace {
bool safe(std::string_view s, std::string_view extra) {
  if (s.empty() || s.front() == '-') return false;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || extra.find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto p = kmr::suse::parse_primary_packages(text, "fuzz")) {
    for (const auto& pkg : *p) {
      if (!safe(pkg.name, "._+-") || !safe(pkg.version, "._+~^") || !safe(pkg.release, "._+~^")) __builtin_trap();
      if (pkg.location.front() == '/' || pkg.location.find("..") != std::string::npos) __builtin_trap();
    }
    std::vector<kmr::suse::RpmDep> want;
    for (const auto& pkg : *p) want.push_back({pkg.name, "", "", "", ""});
    (void)kmr::suse::resolve(want, *p, "x86_64");
  }
  if (auto b = kmr::suse::parse_buildenv(text, "fuzz")) {
    for (const auto& pin : *b) {
      if (!safe(pin.name, "._+-") || !safe(pin.version, "._+~^") || !safe(pin.release, "._+~^")) __builtin_trap();
    }
  }
  (void)kmr::suse::parse_requires(text, "fuzz");
  (void)kmr::suse::rpmvercmp(text.substr(0, size / 2), text.substr(size / 2));
  return 0;
}
