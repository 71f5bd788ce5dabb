// Fuzz target: kmrd's parsing of worker report bodies. Whatever is accepted
// serialises back to a body that parses again to the same report.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <nlohmann/json.hpp>

#include "rebuilder/verdict/worker_report.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 1 << 16) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto body = nlohmann::json::parse(text, nullptr, false);
  if (body.is_discarded()) return 0;
  kmr::verdict::ReportError e;
  auto r = kmr::verdict::parse_worker_report(body, e);
  if (!r) {
    if (e.code.empty() || e.message.empty()) std::abort();
    return 0;
  }
  const nlohmann::json again = r->to_json();
  auto r2 = kmr::verdict::parse_worker_report(again, e);
  if (!r2 || r2->to_json() != again) std::abort();
  return 0;
}
