#pragma once

// One entry of a build-root cache (<dir>/<key>), as every distro's build root
// uses it: the entry's lock is held while it is looked up or made, a cached
// root is checked against its package set before it is trusted, and a new
// root is made in a temporary directory beside it, checked, and renamed into
// place, so no half-made or mismatching root is ever found under the key.

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "rebuilder/base/file_lock.h"
#include "rebuilder/base/result.h"

namespace kmr::distros {

// The differences between a root and its pinned package set ("missing x=1",
// "extra y=2"...); empty when it holds exactly that set.
using RootCheck = std::function<Result<std::vector<std::string>>(const std::string& root)>;

// A build root made from a distro's archive by its installer (Arch: pacman,
// Debian: mmdebstrap).
struct BuildRoot {
  std::string path;  // the root directory ("" when unavailable)
  std::string key;   // its cache key
  bool cached = false;
  std::chrono::milliseconds duration{0};
  // Pinned packages the archive does not give, each with the URLs tried.
  std::vector<std::string> missing;
  std::string log;  // the installer's output when it ran
};

class RootCacheEntry {
 public:
  // Creates `dir` and waits for the lock <dir>/<key>.lock (another process
  // making the same root finishes first). `key` is one path segment.
  static Result<RootCacheEntry> open(const std::string& dir, const std::string& key);

  RootCacheEntry(RootCacheEntry&& other) noexcept;
  RootCacheEntry& operator=(RootCacheEntry&&) = delete;
  ~RootCacheEntry();

  // <dir>/<key>: where the root is, once cached or committed.
  const std::string& path() const { return path_; }

  // True when the root is cached and `check` finds no difference; false when
  // it is not cached; an error naming the first difference when the cached
  // root no longer matches its package set.
  Result<bool> cached(const RootCheck& check) const;

  // An empty temporary directory beside the entry to make the root in
  // (<dir>/<key>.tmp-<pid>); removed when the entry goes away uncommitted.
  Result<std::string> scratch();

  // Checks the scratch root with `check` and renames it to path(). A
  // difference is an error: "<made_by> differs from <pinned_by>:" and every
  // difference, one per line.
  Result<void> commit(const RootCheck& check, const std::string& made_by, const std::string& pinned_by);

 private:
  RootCacheEntry(std::string path, std::unique_ptr<FileLock> lock) : path_(std::move(path)), lock_(std::move(lock)) {}
  void remove_scratch();

  std::string path_;
  std::string tmp_;
  std::unique_ptr<FileLock> lock_;
};

// Opens the cache entry of `root.key` in `dir` (RootCacheEntry::open); when
// the root is cached and `check` finds no difference, sets root.path and
// root.cached.
Result<RootCacheEntry> open_build_root(const std::string& dir, BuildRoot& root, const RootCheck& check);

// A build-root option from the environment: `field` takes the value of the
// variable `name` when it is set and not empty, else keeps its default.
void option_from_env(std::string& field, const char* name);

}  // namespace kmr::distros
