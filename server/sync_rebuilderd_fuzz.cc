// Fuzz target: rebuilderd v1 packages/binary answers (hostile JSON) through the page parser,
// and a paging run where every page is the fuzz input (the cursor rule must stop it).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "server/sync_rebuilderd.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace kmr::server;
  const std::string text(reinterpret_cast<const char*>(data), size);
  RebuilderdLimits limits;
  limits.max_pages = 8;
  limits.max_records = 64;
  limits.page_size = 4;
  auto page = parse_rebuilderd_page(text, "fuzz", limits);
  if (page) {
    if (page->total < 0 || page->records.size() > limits.max_records) std::abort();
    for (const auto& r : page->records)
      if (r.id < 0 || r.name.empty() || r.url.empty() || r.name.size() > limits.max_string) std::abort();
  }
  RepositoryConfig rc;
  rc.url = "https://fleet.invalid";
  rc.packages = {"linux*"};
  int calls = 0;
  auto fetch = [&](const std::string&) -> kmr::Result<std::string> {
    ++calls;
    return text;
  };
  auto recs = list_rebuilderd(rc, fetch, limits);
  if (calls > static_cast<int>(limits.max_pages)) std::abort();
  if (recs && recs->size() > limits.max_records) std::abort();
  return 0;
}
