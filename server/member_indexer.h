#pragma once

// Runs the member index (server/members.h) for artifacts whose verdicts are stored: in a
// background thread woken by kick() after each stored report, or synchronously with
// run_once(). Each package is read where it is (file://) or downloaded (http/https) into
// `work_dir` and checked against the artifact's sha256 before anything is indexed; a Nix
// narinfo's NAR is fetched beside it and checked against FileHash and NarHash. Failures are
// recorded on the artifact and retried after an hour.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "rebuilder/base/result.h"
#include "server/members.h"
#include "server/store.h"

namespace kmr::server {

class MemberIndexer {
 public:
  MemberIndexer(Store& store, std::string work_dir, MemberLimits limits = {})
      : store_(store), work_dir_(std::move(work_dir)), limits_(limits) {}
  ~MemberIndexer() { stop(); }
  MemberIndexer(const MemberIndexer&) = delete;
  MemberIndexer& operator=(const MemberIndexer&) = delete;

  void start();
  void stop();
  void kick();
  // Indexes up to `max` pending artifacts now; returns how many were indexed (errors included).
  Result<std::int64_t> run_once(std::int64_t now, std::int64_t max = 16);

 private:
  Result<MemberIndex> index_one(const IndexJob& job);
  void loop();

  Store& store_;
  std::string work_dir_;
  MemberLimits limits_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool kicked_ = false;
  bool stop_ = false;
};

}  // namespace kmr::server
