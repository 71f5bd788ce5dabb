// Transparency-log benchmark: appends/s (batched and one-fsync-per-entry),
// inclusion-proof latency p50/p99 and stored-hash reads per proof at several
// sizes, against a baseline that rebuilds the tree from all leaf hashes for
// each proof (what an implementation without stored subtrees does).
//
// Usage: tlog_bench [--dir DIR] [--entries N]   (default 100000, temp dir)
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "attest/merkle.h"
#include "attest/tlog.h"
#include "rebuilder/base/file.h"

using namespace kmr;
using namespace kmr::attest;
using Clock = std::chrono::steady_clock;

namespace {

double secs(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

ByteVector fake_envelope(std::uint64_t i) {
  // About the size of a real kmr DSSE envelope (~1.5 KB).
  std::string s = "{\"payload\":\"";
  std::mt19937_64 rng(i);
  static const char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (int k = 0; k < 1300; ++k) s.push_back(kB64[rng() % 64]);
  s += "\",\"payloadType\":\"application/vnd.in-toto+json\",\"signatures\":[{\"keyid\":\"" + std::to_string(i) + "\"}]}";
  return ByteVector(s.begin(), s.end());
}

// Baseline: RFC 6962 PATH computed from the full list of leaf hashes.
Hash mth(const std::vector<Hash>& l, std::size_t lo, std::size_t hi) {
  if (hi - lo == 1) return l[lo];
  std::size_t k = static_cast<std::size_t>(split_point(hi - lo));
  return node_hash(mth(l, lo, lo + k), mth(l, lo + k, hi));
}
void naive_path(const std::vector<Hash>& l, std::size_t m, std::size_t lo, std::size_t hi, std::vector<Hash>& out) {
  if (hi - lo <= 1) return;
  std::size_t k = static_cast<std::size_t>(split_point(hi - lo));
  if (m < k) {
    naive_path(l, m, lo, lo + k, out);
    out.push_back(mth(l, lo + k, hi));
  } else {
    naive_path(l, m - k, lo + k, hi, out);
    out.push_back(mth(l, lo, lo + k));
  }
}

struct ProofStats {
  double p50_us, p99_us, mean_reads;
  std::uint64_t max_reads;
};

ProofStats measure_proofs(const TransparencyLog& log, std::uint64_t size, int count) {
  std::mt19937_64 rng(42);
  std::vector<double> lat;
  std::uint64_t total_reads = 0, max_reads = 0;
  Hash root = *log.root(size);
  for (int i = 0; i < count; ++i) {
    std::uint64_t idx = rng() % size;
    std::uint64_t r0 = log.hash_reads();
    auto t0 = Clock::now();
    auto p = log.inclusion_proof(idx, size);
    auto t1 = Clock::now();
    std::uint64_t reads = log.hash_reads() - r0;
    if (!p || !verify_inclusion(idx, size, *log.leaf(idx), *p, root)) {
      std::fprintf(stderr, "proof %llu/%llu failed\n", static_cast<unsigned long long>(idx), static_cast<unsigned long long>(size));
      std::exit(2);
    }
    lat.push_back(secs(t1 - t0) * 1e6);
    total_reads += reads;
    max_reads = std::max(max_reads, reads);
  }
  std::sort(lat.begin(), lat.end());
  return {lat[lat.size() / 2], lat[lat.size() * 99 / 100], static_cast<double>(total_reads) / count, max_reads};
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir_arg;
  std::uint64_t n = 100000;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--dir" && i + 1 < argc) dir_arg = argv[++i];
    else if (a == "--entries" && i + 1 < argc) n = std::stoull(argv[++i]);
    else {
      std::fprintf(stderr, "usage: tlog_bench [--dir DIR] [--entries N]\n");
      return 2;
    }
  }
  std::optional<TempDir> tmp;
  if (dir_arg.empty()) {
    tmp.emplace(std::move(TempDir::create("tlog-bench")).value());
    dir_arg = tmp->path();
  }
  std::printf("tlog benchmark: %llu entries of ~1.5 KB in %s\n", static_cast<unsigned long long>(n), dir_arg.c_str());

  // 1. One durable commit (fdatasync data + fsync/rename of the size file) per entry.
  {
    auto log = std::move(TransparencyLog::open(dir_arg + "/single")).value();
    std::uint64_t m = std::min<std::uint64_t>(n, 2000);
    auto t0 = Clock::now();
    for (std::uint64_t i = 0; i < m; ++i) {
      if (!log->append(fake_envelope(i))) return 2;
    }
    double s = secs(Clock::now() - t0);
    std::printf("append, 1 commit per entry:      %8.0f appends/s (%llu entries, %.2f ms each)\n", m / s,
                static_cast<unsigned long long>(m), s / m * 1e3);
  }
  // 2. Batched commits (what a busy kmrd does: one commit per batch).
  auto log = std::move(TransparencyLog::open(dir_arg + "/batched")).value();
  {
    const std::uint64_t batch = 1000;
    auto t0 = Clock::now();
    for (std::uint64_t i = 0; i < n; i += batch) {
      std::vector<ByteVector> b;
      for (std::uint64_t j = i; j < std::min(n, i + batch); ++j) b.push_back(fake_envelope(j));
      if (!log->append_batch(b)) return 2;
    }
    double s = secs(Clock::now() - t0);
    std::printf("append, 1 commit per 1000:       %8.0f appends/s (%llu entries in %.2f s)\n", n / s,
                static_cast<unsigned long long>(n), s);
  }
  // Reopen cost: re-hashes every entry against its leaf, checks the committed root, rebuilds the
  // leaf-hash index. The log is closed first (it is locked while open).
  {
    log.reset();
    auto t0 = Clock::now();
    auto re = TransparencyLog::open(dir_arg + "/batched");
    const double ms = secs(Clock::now() - t0) * 1e3;
    if (!re) {
      std::fprintf(stderr, "reopen failed: %s\n", re.error().to_string().c_str());
      return 1;
    }
    log = std::move(re).value();
    std::printf("reopen at %llu entries:          %8.1f ms\n", static_cast<unsigned long long>(n), ms);
  }
  // 3. Inclusion proofs at growing sizes: latency and stored-hash reads.
  std::printf("\ninclusion proofs (random index, 2000 proofs per size, verified):\n");
  std::printf("  %10s %10s %10s %12s %10s %10s\n", "size", "p50 us", "p99 us", "mean reads", "max reads", "log2(n)");
  for (std::uint64_t size : {n / 100, n / 10, n}) {
    if (size < 2) continue;
    auto st = measure_proofs(*log, size, 2000);
    std::printf("  %10llu %10.1f %10.1f %12.1f %10llu %10.1f\n", static_cast<unsigned long long>(size), st.p50_us,
                st.p99_us, st.mean_reads, static_cast<unsigned long long>(st.max_reads), std::log2(static_cast<double>(size)));
  }
  // 4. Baseline in the same run: full-tree rebuild per proof from all leaves
  // (leaf hashes already in memory, so this is the baseline's best case).
  {
    std::vector<Hash> leaves;
    leaves.reserve(n);
    for (std::uint64_t i = 0; i < n; ++i) leaves.push_back(*log->leaf(i));
    std::mt19937_64 rng(7);
    const int k = 20;
    auto t0 = Clock::now();
    for (int i = 0; i < k; ++i) {
      std::vector<Hash> out;
      naive_path(leaves, rng() % n, 0, n, out);
    }
    double naive_us = secs(Clock::now() - t0) / k * 1e6;
    auto st = measure_proofs(*log, n, 2000);
    std::printf("\nbaseline (rebuild from %llu in-memory leaf hashes per proof): %.0f us/proof\n",
                static_cast<unsigned long long>(n), naive_us);
    std::printf("stored subtrees p50 %.1f us -> %.0fx faster than the baseline\n", st.p50_us, naive_us / st.p50_us);
  }
  // 5. Consistency proof at full size.
  {
    std::uint64_t r0 = log->hash_reads();
    auto t0 = Clock::now();
    auto p = log->consistency_proof(n / 3, n);
    double us = secs(Clock::now() - t0) * 1e6;
    if (!p || !verify_consistency(n / 3, n, *log->root(n / 3), *log->root(n), *p)) return 2;
    std::printf("consistency proof %llu -> %llu: %.1f us, %llu stored-hash reads, %zu hashes\n",
                static_cast<unsigned long long>(n / 3), static_cast<unsigned long long>(n), us,
                static_cast<unsigned long long>(log->hash_reads() - r0 - 0), p->size());
  }
  return 0;
}
