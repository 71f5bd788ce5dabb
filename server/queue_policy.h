#pragma once

// How kmrd's queue leases, retries and confirms jobs (config "queue"; the
// store enforces it).

#include <cstdint>

namespace kmr::server {

struct QueuePolicy {
  std::int64_t lease_seconds = 600;
  std::int64_t heartbeat_seconds = 60;
  std::int64_t retry_backoff_seconds = 300;   // doubled per attempt
  std::int64_t max_build_attempts = 3;        // build-failed / error / environment-unavailable
  std::int64_t max_repro_attempts = 2;        // not reproducible (files different, root mismatch)
  std::int64_t max_leases_per_worker = 2;     // running leases one worker may hold at once
  // Distinct enabled workers whose reproducible results a verdict needs before kmrd accepts
  // (and signs) it; until then the job is leased again, to a worker that has not confirmed yet.
  std::int64_t confirmations = 1;
};

}  // namespace kmr::server
