#pragma once

// Serialized API documents kept in memory (the artifact answers of
// /api/v1/artifacts/sha256/{hex}): bounded by bytes, least recently used
// dropped first, each entry with a strong ETag. Entries name the artifacts
// they were built from; a committed store write drops those entries
// (Store::add_change_listener), so a stale document is never served.
//
// A reader takes epoch() before it reads the store and passes it to insert():
// when anything was invalidated in between, the document it built may predate
// that write and is not kept.

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace kmr::server {

class DocCache {
 public:
  struct Doc {
    std::string body;
    std::string etag;           // quoted, from the bytes
    std::string cache_control;
    // The whole HTTP/1.1 keep-alive answer, serialized once: 200 (its first head_size
    // bytes are the header block, for HEAD) and 304. Empty: not prepared.
    std::string wire_200, wire_304;
    std::size_t head_size = 0;
  };
  struct Stats {
    std::uint64_t entries = 0, bytes = 0, hits = 0, misses = 0, rejected = 0;
  };

  explicit DocCache(std::uint64_t max_bytes) : max_bytes_(max_bytes) {}

  // The document under `key` (marked recently used), or null.
  std::shared_ptr<const Doc> find(const std::string& key);
  std::uint64_t epoch() const;
  // Keeps the document unless an invalidation happened since `epoch` or it is larger than
  // a quarter of the budget. `artifacts`: the artifact sha256s it was built from; `member`:
  // a member lookup (dropped on invalidate_members()). True when kept.
  bool insert(const std::string& key, Doc doc, const std::vector<std::string>& artifacts, bool member,
              std::uint64_t epoch);
  // Drops every entry built from one of these artifacts.
  void invalidate_artifacts(const std::vector<std::string>& artifacts);
  void invalidate_members();
  void clear();
  Stats stats() const;

  // A strong ETag of document bytes: a quoted sha256 prefix.
  static std::string etag_of(std::string_view body);

 private:
  struct Entry {
    std::string key;
    std::shared_ptr<const Doc> doc;
    std::vector<std::string> artifacts;
    bool member = false;
    std::uint64_t bytes = 0;
  };
  using Lru = std::list<Entry>;
  void erase_locked(Lru::iterator it);
  void invalidated_locked() { ++epoch_; }

  const std::uint64_t max_bytes_;
  mutable std::mutex mu_;
  Lru lru_;  // front: most recently used
  std::unordered_map<std::string, Lru::iterator> by_key_;
  std::unordered_multimap<std::string, std::string> by_artifact_;  // artifact sha256 -> key
  std::uint64_t bytes_ = 0, epoch_ = 0;
  Stats counters_;
};

}  // namespace kmr::server
