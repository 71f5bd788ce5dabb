#pragma once

// kmr-worker's side of a job's sources: downloads every file of the job's
// source list (rebuilder/distros/common/source_list.h) into the job's sources
// directory with the one HTTPS client, checking the sha256 and size the
// repository's index gave, and clones every git source at its tag (git,
// restricted to https, http and file transports). What cannot be fetched is
// listed, each item with the URL tried and why, so the rebuild ends
// `environment-unavailable` naming it instead of running without it.

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "rebuilder/base/result.h"
#include "rebuilder/distros/common/source_list.h"

namespace kmr::server {

struct FetchedSources {
  std::string dir;                   // the sources directory (passed as --sources)
  std::vector<std::string> missing;  // "<what> <name>: <url>: <why>"
};

// Fetches `list` into `dir` (created). Errors only for local failures
// (cannot create the directory); a download that fails is `missing`.
Result<FetchedSources> fetch_sources(const distros::SourceList& list, const std::string& dir,
                                     std::chrono::milliseconds timeout);

// Parses a job's source list (untrusted: bounded, every name and URL checked), then fetches it.
Result<FetchedSources> fetch_job_sources(std::string_view source_list_json, const std::string& dir,
                                         std::chrono::milliseconds timeout);

}  // namespace kmr::server
