// Fuzzes the build-description parsers: every input either parses (and then
// dumps to canonical JSON without throwing) or returns an error.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "rebuilder/buildenv/environment.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  kmr::Limits limits;
  limits.max_line_len = 4096;
  for (auto r : {kmr::build::parse_arch_buildinfo(text, limits), kmr::build::parse_debian_buildinfo(text, "debian", limits),
                 kmr::build::parse_nix_narinfo(text, limits)}) {
    if (r) (void)r->digest();
  }
  (void)kmr::build::parse_disturl(text);
  // The value checks that stand between recorded metadata and the build.
  const auto eq = text.find('=');
  if (eq != std::string_view::npos) (void)kmr::build::build_env_allowed(text.substr(0, eq), text.substr(eq + 1));
  if (auto body = kmr::build::rpm_macro_body("m", text)) {
    // A body never holds an unescaped '%' nor shell substitution.
    for (std::size_t i = 0; i < body->size(); ++i) {
      if ((*body)[i] == '%') {
        if (i + 1 >= body->size() || (*body)[i + 1] != '%') __builtin_trap();
        ++i;
      }
    }
    if (body->find("$(") != std::string::npos || body->find('`') != std::string::npos) __builtin_trap();
  }
  if (auto quoted = kmr::build::config_line_value("v", text)) {
    if (quoted->find('\n') != std::string::npos) __builtin_trap();
  }
  (void)kmr::build::check_build_path("p", text);
  (void)kmr::build::check_user_name("u", text);
  return 0;
}
