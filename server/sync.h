#pragma once

// Repository sync: reads a repository's index in the configured format,
// keeps packages whose names match the patterns and whose architecture is
// listed, and imports them (idempotently: known sha256s and sets are skipped).

#include <chrono>
#include <vector>

#include "rebuilder/base/result.h"
#include "server/config.h"
#include "server/store.h"

namespace kmr::server {

// Parses an index document of the given format (no network).
//   kmr-import:         {"artifacts":[{"set","name","version","arch","filename","url","sha256","size"?,
//                        "sources"?,"resource_class"?}]}  (URLs relative to the document)
//   fixtures-manifest:  tests/fixtures/repos manifest.json (artifacts of rc.distro)
Result<std::vector<ImportArtifact>> parse_index(const RepositoryConfig& rc, std::string_view text);

// Fetches rc.url, parses, filters, imports. Returns the number of new jobs.
Result<std::int64_t> sync_repository(Store& store, const RepositoryConfig& rc, std::int64_t now,
                                     std::chrono::milliseconds timeout);

}  // namespace kmr::server
