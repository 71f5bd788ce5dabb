#pragma once

// An exclusive flock(2) on a lock file, held until the object is destroyed.
// For creators of a shared cache entry (build roots, fixtures) that must not
// run twice at once for one key.

#include <memory>
#include <string>

#include "rebuilder/base/result.h"

namespace kmr {

class FileLock {
 public:
  explicit FileLock(int fd) : fd_(fd) {}
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  ~FileLock();

 private:
  int fd_;
};

// Opens (creating, never following a symlink) `path` and waits for the lock.
Result<std::unique_ptr<FileLock>> lock_file(const std::string& path);

}  // namespace kmr
