#pragma once

// Import from a rebuilderd instance (repository "format": "rebuilderd"): the url is the
// instance's base URL (its v1 read API, GET /api/v1/packages/binary with `name`, `limit`
// and `after` paging), or a file:// JSON document laid out as one such answer
// ({"total":n,"records":[...]}). Kernel packages are chosen with the repository's
// `packages` patterns (exact names go to rebuilderd's `name` filter, glob patterns are
// matched here) and `architectures`. rebuilderd's records carry no checksum, so the sha256
// of each package not yet known is computed here from its artifact URL (downloaded once);
// the API is unsigned, so a remote instance needs `insecure_unsigned` (the packages are then
// marked as such). Bounded: pages, records, string sizes; a cursor that does not advance
// stops the sync with an error.

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rebuilder/base/result.h"
#include "server/config.h"
#include "server/store.h"

namespace kmr::server {

struct RebuilderdRecord {
  std::int64_t id = 0;
  std::string name, version, architecture, url, distribution, release;
  std::optional<std::string> source_name;  // kmrd's extra field; rebuilderd has none
};

struct RebuilderdPage {
  std::int64_t total = 0;
  std::vector<RebuilderdRecord> records;
};

struct RebuilderdLimits {
  std::size_t page_size = 1000;        // `limit` asked for
  std::size_t max_pages = 200;         // per name filter
  std::size_t max_records = 100000;    // per sync
  std::size_t max_string = 4096;       // any string field
  std::uint64_t max_page_bytes = 64ull << 20;
};

// Parses one {"total","records"} answer; every record needs id (integer >= 0), name, version,
// architecture and url (strings). `where` names the source in errors.
Result<RebuilderdPage> parse_rebuilderd_page(std::string_view text, const std::string& where,
                                             const RebuilderdLimits& limits = {});

// GETs a URL (tests inject one); the default is fetch_url.
using PageFetcher = std::function<Result<std::string>(const std::string& url)>;

// The records of the instance (or document) that match the repository's patterns and
// architectures, paged with `after`, deduplicated by id.
Result<std::vector<RebuilderdRecord>> list_rebuilderd(const RepositoryConfig& rc, const PageFetcher& fetch,
                                                      const RebuilderdLimits& limits = {});

// list_rebuilderd, then the artifacts to import: a known URL keeps its stored sha256, a new
// one is downloaded (file:// read) and hashed. One set per source name (kmrd) or per package.
Result<std::vector<ImportArtifact>> read_rebuilderd(Store& store, const RepositoryConfig& rc,
                                                    std::chrono::milliseconds timeout,
                                                    const RebuilderdLimits& limits = {});

}  // namespace kmr::server
