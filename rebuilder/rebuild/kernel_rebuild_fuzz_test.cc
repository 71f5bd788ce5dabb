// Fuzzes what a shipped banner can do to a kernel rebuild: a banner that
// parses either yields pinnable values (no quote, backslash, backtick, '$' or
// control character reaches the build's environment or make command line) or
// is refused; the compiler text only ever names a plain program.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "rebuilder/rebuild/kernel_rebuild.h"

namespace {
bool safe(std::string_view v) {
  for (char c : v) {
    if (c == '"' || c == '\\' || c == '`' || c == '$' || static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return false;
  }
  return true;
}
bool plain_program(std::string_view p) {
  for (char c : p) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                    c == '+' || c == '-';
    if (!ok) return false;
  }
  return !p.empty();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto id = kmr::kmod::parse_banner(text);
  if (id) {
    kmr::distro::KernelLayout layout;
    kmr::distro::ImageInfo img;
    img.path = "boot/vmlinuz";
    img.build_identity = *id;
    layout.image = img;
    auto k = kmr::build::kernel_rebuild_from_layout(layout);
    if (k && k->has_value()) {
      const auto& i = *(*k)->identity;
      if (!safe(i.user) || !safe(i.host) || !safe(i.version) || !safe(i.timestamp)) __builtin_trap();
      (void)(*k)->to_json().dump();
      kmr::build::BuildEnvironment env;
      kmr::build::record_kernel_rebuild(**k, env);
      (void)env.digest();
    }
    const auto [cc, ld] = kmr::build::compiler_programs(id->compiler);
    if (!plain_program(cc) || !plain_program(ld)) __builtin_trap();
  }
  const auto [cc, ld] = kmr::build::compiler_programs(text);
  if (!plain_program(cc) || !plain_program(ld)) __builtin_trap();
  const auto half = text.size() / 2;
  (void)kmr::build::kbuild_compiler_text(text.substr(0, half), text.substr(half));
  (void)kmr::build::compiler_mismatch(text.substr(0, half), text.substr(half));
  return 0;
}
