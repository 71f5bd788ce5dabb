#include "server/doc_cache.h"

#include "rebuilder/base/bytes.h"
#include "rebuilder/base/sha256.h"

namespace kmr::server {

namespace {
// Bookkeeping per entry beyond the body: key, ETag, index nodes.
constexpr std::uint64_t kEntryOverhead = 256;
}  // namespace

std::string DocCache::etag_of(std::string_view body) {
  return "\"" + sha256_hex(as_bytes(body)).substr(0, 32) + "\"";
}

std::shared_ptr<const DocCache::Doc> DocCache::find(const std::string& key) {
  std::lock_guard lock(mu_);
  auto it = by_key_.find(key);
  if (it == by_key_.end()) {
    ++counters_.misses;
    return nullptr;
  }
  ++counters_.hits;
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->doc;
}

std::uint64_t DocCache::epoch() const {
  std::lock_guard lock(mu_);
  return epoch_;
}

bool DocCache::insert(const std::string& key, Doc doc, const std::vector<std::string>& artifacts, bool member,
                      std::uint64_t epoch) {
  std::uint64_t bytes = doc.body.size() + doc.etag.size() + doc.cache_control.size() + doc.wire_200.size() +
                        doc.wire_304.size() + key.size() + kEntryOverhead;
  for (const auto& a : artifacts) bytes += a.size() + kEntryOverhead / 4;
  auto shared = std::make_shared<const Doc>(std::move(doc));
  std::lock_guard lock(mu_);
  if (epoch != epoch_ || bytes > max_bytes_ / 4) {
    ++counters_.rejected;
    return false;
  }
  if (auto old = by_key_.find(key); old != by_key_.end()) erase_locked(old->second);
  lru_.push_front(Entry{key, std::move(shared), artifacts, member, bytes});
  by_key_[key] = lru_.begin();
  for (const auto& a : artifacts) by_artifact_.emplace(a, key);
  bytes_ += bytes;
  while (bytes_ > max_bytes_ && !lru_.empty()) erase_locked(std::prev(lru_.end()));
  return true;
}

void DocCache::erase_locked(Lru::iterator it) {
  for (const auto& a : it->artifacts) {
    auto [b, e] = by_artifact_.equal_range(a);
    for (auto i = b; i != e; ++i) {
      if (i->second == it->key) {
        by_artifact_.erase(i);
        break;
      }
    }
  }
  bytes_ -= it->bytes;
  by_key_.erase(it->key);
  lru_.erase(it);
}

void DocCache::invalidate_artifacts(const std::vector<std::string>& artifacts) {
  std::lock_guard lock(mu_);
  invalidated_locked();
  for (const auto& a : artifacts) {
    // Also the entry keyed by the hash itself (a member answer for a hash that is now an artifact).
    if (auto k = by_key_.find(a); k != by_key_.end()) erase_locked(k->second);
    for (auto i = by_artifact_.find(a); i != by_artifact_.end(); i = by_artifact_.find(a)) {
      auto k = by_key_.find(i->second);
      if (k == by_key_.end()) {
        by_artifact_.erase(i);  // not reached: entries and index change together
        continue;
      }
      erase_locked(k->second);
    }
  }
}

void DocCache::invalidate_members() {
  std::lock_guard lock(mu_);
  invalidated_locked();
  for (auto it = lru_.begin(); it != lru_.end();) {
    auto next = std::next(it);
    if (it->member) erase_locked(it);
    it = next;
  }
}

void DocCache::clear() {
  std::lock_guard lock(mu_);
  invalidated_locked();
  lru_.clear();
  by_key_.clear();
  by_artifact_.clear();
  bytes_ = 0;
}

DocCache::Stats DocCache::stats() const {
  std::lock_guard lock(mu_);
  Stats s = counters_;
  s.entries = lru_.size();
  s.bytes = bytes_;
  return s;
}

}  // namespace kmr::server
