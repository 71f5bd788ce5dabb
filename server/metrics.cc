#include "server/metrics.h"

#include <cstdio>

namespace kmr::server {

namespace {
constexpr double kBuckets[] = {1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 12 * 3600};
constexpr std::size_t kNumBuckets = sizeof kBuckets / sizeof kBuckets[0];

std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}
}  // namespace

void Metrics::request(const std::string& route, int status) {
  std::lock_guard lock(mu_);
  ++requests_[{route, status}];
}

void Metrics::verification(double seconds, const std::string& outcome) {
  std::lock_guard lock(mu_);
  auto& b = verif_buckets_[outcome];
  if (b.empty()) b.assign(kNumBuckets, 0);
  for (std::size_t i = 0; i < kNumBuckets; ++i)
    if (seconds <= kBuckets[i]) ++b[i];
  verif_sum_[outcome] += seconds;
  ++verif_count_[outcome];
}

void Metrics::sync(const std::string& repo, bool ok) {
  std::lock_guard lock(mu_);
  ++syncs_[{repo, ok}];
}

std::string Metrics::render(const std::vector<std::pair<std::string, double>>& gauges) const {
  std::lock_guard lock(mu_);
  std::string out;
  out += "# HELP kmrd_http_requests_total HTTP requests by route template and status.\n";
  out += "# TYPE kmrd_http_requests_total counter\n";
  for (const auto& [k, n] : requests_)
    out += "kmrd_http_requests_total{route=\"" + k.first + "\",status=\"" + std::to_string(k.second) + "\"} " +
           std::to_string(n) + "\n";
  out += "# HELP kmrd_verification_duration_seconds Wall time of accepted rebuild reports.\n";
  out += "# TYPE kmrd_verification_duration_seconds histogram\n";
  for (const auto& [outcome, b] : verif_buckets_) {
    for (std::size_t i = 0; i < kNumBuckets; ++i)
      out += "kmrd_verification_duration_seconds_bucket{outcome=\"" + outcome + "\",le=\"" + num(kBuckets[i]) + "\"} " +
             std::to_string(b[i]) + "\n";
    out += "kmrd_verification_duration_seconds_bucket{outcome=\"" + outcome + "\",le=\"+Inf\"} " +
           std::to_string(verif_count_.at(outcome)) + "\n";
    out += "kmrd_verification_duration_seconds_sum{outcome=\"" + outcome + "\"} " + num(verif_sum_.at(outcome)) + "\n";
    out += "kmrd_verification_duration_seconds_count{outcome=\"" + outcome + "\"} " +
           std::to_string(verif_count_.at(outcome)) + "\n";
  }
  out += "# TYPE kmrd_sync_total counter\n";
  for (const auto& [k, n] : syncs_)
    out += "kmrd_sync_total{repository=\"" + k.first + "\",result=\"" + (k.second ? "ok" : "error") + "\"} " +
           std::to_string(n) + "\n";
  std::string last;
  for (const auto& [name, v] : gauges) {
    std::string base = name.substr(0, name.find('{'));
    if (base != last) out += "# TYPE " + base + " gauge\n";
    last = base;
    out += name + " " + num(v) + "\n";
  }
  return out;
}

}  // namespace kmr::server
