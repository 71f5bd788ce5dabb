// libFuzzer target: modules.order parsing.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "rebuilder/kmod/module_tree.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto r = kmr::kmod::parse_modules_order(text, ".ko", "fuzz");
  if (!r) return 0;
  for (const auto& p : *r) {
    if (p.empty() || p.front() == '/' || p.find("..") == 0) __builtin_trap();
  }
  return 0;
}
