#include "rebuilder/distros/common/root_cache.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>

namespace kmr::distros {
namespace {

namespace fs = std::filesystem;

std::string temp_dir() {
  std::string t = (fs::temp_directory_path() / "kmr-root-cache-XXXXXX").string();
  if (::mkdtemp(t.data()) == nullptr) std::abort();
  return t;
}

// A root "holds its package set" when it has the file `want`.
RootCheck has(const std::string& want) {
  return [want](const std::string& root) -> Result<std::vector<std::string>> {
    if (fs::exists(root + "/" + want)) return std::vector<std::string>{};
    return std::vector<std::string>{"missing " + want, "extra junk"};
  };
}

void touch(const std::string& path) { std::ofstream(path) << "x"; }

TEST(RootCache, KeyMustBeOnePathSegment) {
  const std::string dir = temp_dir();
  for (const char* k : {"", ".", "..", "a/b", "../x"}) {
    auto e = RootCacheEntry::open(dir, k);
    EXPECT_FALSE(e) << k;
  }
  fs::remove_all(dir);
}

TEST(RootCache, MadeCheckedRenamedThenFound) {
  const std::string dir = temp_dir() + "/cache";  // created on open
  std::string scratch;
  {
    auto e = RootCacheEntry::open(dir, "k1");
    ASSERT_TRUE(e) << e.error().to_string();
    EXPECT_EQ(e->path(), dir + "/k1");
    auto c = e->cached(has("pkg"));
    ASSERT_TRUE(c);
    EXPECT_FALSE(*c);
    auto t = e->scratch();
    ASSERT_TRUE(t);
    scratch = *t;
    EXPECT_TRUE(fs::is_directory(scratch));
    EXPECT_TRUE(fs::is_empty(scratch));
    touch(scratch + "/pkg");
    ASSERT_TRUE(e->commit(has("pkg"), "the root made by x", "the pinned set"));
    EXPECT_TRUE(fs::exists(dir + "/k1/pkg"));
    EXPECT_FALSE(fs::exists(scratch));
  }
  EXPECT_TRUE(fs::exists(dir + "/k1/pkg"));  // a committed root outlives the entry
  auto again = RootCacheEntry::open(dir, "k1");
  ASSERT_TRUE(again);
  auto c = again->cached(has("pkg"));
  ASSERT_TRUE(c);
  EXPECT_TRUE(*c);
  fs::remove_all(fs::path(dir).parent_path());
}

TEST(RootCache, MismatchingRootIsNeverPutInPlace) {
  const std::string dir = temp_dir();
  std::string scratch;
  {
    auto e = RootCacheEntry::open(dir, "k2");
    ASSERT_TRUE(e);
    auto t = e->scratch();
    ASSERT_TRUE(t);
    scratch = *t;
    touch(scratch + "/other");
    auto r = e->commit(has("pkg"), "the root made by x", "the pinned set");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message(), "the root made by x differs from the pinned set:\n  missing pkg\n  extra junk");
    EXPECT_FALSE(fs::exists(dir + "/k2"));
  }
  EXPECT_FALSE(fs::exists(scratch));  // removed with the entry
  EXPECT_FALSE(fs::exists(dir + "/k2"));
  fs::remove_all(dir);
}

TEST(RootCache, CachedRootThatNoLongerMatchesIsAnError) {
  const std::string dir = temp_dir();
  fs::create_directories(dir + "/k3");
  auto e = RootCacheEntry::open(dir, "k3");
  ASSERT_TRUE(e);
  auto c = e->cached(has("pkg"));
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().message(), "cached build root " + dir + "/k3 no longer matches its package set: missing pkg");
  fs::remove_all(dir);
}

TEST(RootCache, CommitWithoutScratchIsAnError) {
  const std::string dir = temp_dir();
  auto e = RootCacheEntry::open(dir, "k4");
  ASSERT_TRUE(e);
  EXPECT_FALSE(e->commit(has("pkg"), "a", "b"));
  EXPECT_FALSE(fs::exists(dir + "/k4"));
  fs::remove_all(dir);
}

// A second maker of the same root waits for the first (flock on a fresh
// descriptor blocks even in one process).
TEST(RootCache, SecondOpenWaitsForTheFirst) {
  const std::string dir = temp_dir();
  std::optional<RootCacheEntry> first;
  {
    auto e = RootCacheEntry::open(dir, "k5");
    ASSERT_TRUE(e);
    first.emplace(std::move(*e));
  }
  std::atomic<bool> got{false};
  std::thread second([&] {
    auto e = RootCacheEntry::open(dir, "k5");
    got = static_cast<bool>(e);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_FALSE(got.load());
  first.reset();
  second.join();
  EXPECT_TRUE(got.load());
  fs::remove_all(dir);
}

}  // namespace
}  // namespace kmr::distros
