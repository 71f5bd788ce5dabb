// libFuzzer target: modules.order parsing.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "rebuilder/kmod/module_tree.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto r = kmr::kmod::parse_modules_order(text, ".ko", "fuzz");
  if (!r) return 0;
  for (const auto& p : *r) {
    const bool dotdot = p == ".." || p.rfind("../", 0) == 0 || p.find("/../") != std::string::npos ||
                        (p.size() >= 3 && p.compare(p.size() - 3, 3, "/..") == 0);
    if (p.empty() || p.front() == '/' || dotdot) __builtin_trap();
  }
  return 0;
}
