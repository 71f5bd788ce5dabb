#pragma once

// Prometheus counters and histograms kept in process; rendered by /metrics.

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace kmr::server {

class Metrics {
 public:
  void request(const std::string& route, int status);
  void verification(double seconds, const std::string& outcome);
  void sync(const std::string& repo, bool ok);
  // Extra gauges (queue depth, jobs by state, workers) are passed in at render time.
  std::string render(const std::vector<std::pair<std::string, double>>& gauges) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, std::uint64_t> requests_;
  std::map<std::string, std::vector<std::uint64_t>> verif_buckets_;  // per outcome
  std::map<std::string, double> verif_sum_;
  std::map<std::string, std::uint64_t> verif_count_;
  std::map<std::pair<std::string, bool>, std::uint64_t> syncs_;
};

}  // namespace kmr::server
