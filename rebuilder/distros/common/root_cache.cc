#include "rebuilder/distros/common/root_cache.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <utility>

namespace kmr::distros {

namespace fs = std::filesystem;

Result<RootCacheEntry> RootCacheEntry::open(const std::string& dir, const std::string& key) {
  if (key.empty() || key == "." || key == ".." || key.find('/') != std::string::npos) {
    return malformed("build root cache key '" + key.substr(0, 80) + "' is not one path segment");
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return io_error("cannot create " + dir + ": " + ec.message());
  const std::string path = dir + "/" + key;
  KMR_ASSIGN_OR_RETURN(auto lock, lock_file(path + ".lock"));
  return RootCacheEntry(path, std::move(lock));
}

RootCacheEntry::RootCacheEntry(RootCacheEntry&& other) noexcept
    : path_(std::move(other.path_)), tmp_(std::exchange(other.tmp_, {})), lock_(std::move(other.lock_)) {}

RootCacheEntry::~RootCacheEntry() { remove_scratch(); }

void RootCacheEntry::remove_scratch() {
  if (tmp_.empty()) return;
  std::error_code ec;
  fs::remove_all(tmp_, ec);
  tmp_.clear();
}

Result<bool> RootCacheEntry::cached(const RootCheck& check) const {
  std::error_code ec;
  if (!fs::is_directory(path_, ec)) return false;
  KMR_ASSIGN_OR_RETURN(auto diff, check(path_));
  if (!diff.empty()) return io_error("cached build root " + path_ + " no longer matches its package set: " + diff.front());
  return true;
}

Result<std::string> RootCacheEntry::scratch() {
  remove_scratch();
  tmp_ = path_ + ".tmp-" + std::to_string(::getpid());
  std::error_code ec;
  fs::remove_all(tmp_, ec);
  fs::create_directories(tmp_, ec);
  if (ec) return io_error("cannot create " + tmp_ + ": " + ec.message());
  return tmp_;
}

Result<void> RootCacheEntry::commit(const RootCheck& check, const std::string& made_by, const std::string& pinned_by) {
  if (tmp_.empty()) return io_error("no build root was made for " + path_);
  KMR_ASSIGN_OR_RETURN(auto diff, check(tmp_));
  if (!diff.empty()) {
    std::string all;
    for (const auto& d : diff) all += "\n  " + d;
    return io_error(made_by + " differs from " + pinned_by + ":" + all);
  }
  std::error_code ec;
  fs::rename(tmp_, path_, ec);
  if (ec) return io_error("cannot move the build root into " + path_ + ": " + ec.message());
  tmp_.clear();
  return ok();
}

Result<RootCacheEntry> open_build_root(const std::string& dir, BuildRoot& root, const RootCheck& check) {
  KMR_ASSIGN_OR_RETURN(auto entry, RootCacheEntry::open(dir, root.key));
  KMR_ASSIGN_OR_RETURN(const bool cached, entry.cached(check));
  if (cached) {
    root.path = entry.path();
    root.cached = true;
  }
  return entry;
}

void option_from_env(std::string& field, const char* name) {
  if (const char* v = std::getenv(name); v != nullptr && *v != '\0') field = v;
}

}  // namespace kmr::distros
