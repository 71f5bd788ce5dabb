#include "server/blocking_pool.h"

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include <gtest/gtest.h>

namespace kmr::server {
namespace {

using namespace std::chrono_literals;

TEST(BlockingPool, RunsTasksOnItsOwnThreads) {
  BlockingPool pool(3, 16);
  EXPECT_EQ(pool.threads(), 3);
  std::atomic<int> n{0};
  std::promise<std::thread::id> where;
  ASSERT_TRUE(pool.try_submit([&] { where.set_value(std::this_thread::get_id()); }));
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(pool.try_submit([&] { n.fetch_add(1); }));
  EXPECT_NE(where.get_future().get(), std::this_thread::get_id());
  for (int i = 0; i < 500 && n.load() < 10; ++i) std::this_thread::sleep_for(2ms);
  EXPECT_EQ(n.load(), 10);
}

TEST(BlockingPool, FullQueueRefusesThenRecovers) {
  BlockingPool pool(1, 1);
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  std::promise<void> started;
  ASSERT_TRUE(pool.try_submit([&, gate] {
    started.set_value();
    gate.wait();
  }));
  started.get_future().wait();  // the one thread is busy
  std::atomic<int> ran{0};
  ASSERT_TRUE(pool.try_submit([&] { ran.fetch_add(1); }));   // waits in the queue
  EXPECT_FALSE(pool.try_submit([&] { ran.fetch_add(100); }));  // over the bound: refused, never run
  EXPECT_EQ(pool.stats().refused, 1u);
  EXPECT_EQ(pool.stats().queued, 1u);
  release.set_value();
  for (int i = 0; i < 500 && ran.load() == 0; ++i) std::this_thread::sleep_for(2ms);
  EXPECT_EQ(ran.load(), 1);
  for (int i = 0; i < 500 && pool.stats().running > 0; ++i) std::this_thread::sleep_for(2ms);
  EXPECT_TRUE(pool.try_submit([&] { ran.fetch_add(1); }));
  for (int i = 0; i < 500 && ran.load() < 2; ++i) std::this_thread::sleep_for(2ms);
  EXPECT_EQ(ran.load(), 2);
}

TEST(BlockingPool, StopRefusesNewWorkButRunsQueuedWork) {
  std::atomic<int> ran{0};
  {
    BlockingPool pool(1, 8);
    std::promise<void> release;
    std::shared_future<void> gate = release.get_future().share();
    ASSERT_TRUE(pool.try_submit([gate] { gate.wait(); }));
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(pool.try_submit([&] { ran.fetch_add(1); }));
    pool.stop();
    EXPECT_FALSE(pool.try_submit([&] { ran.fetch_add(100); }));
    release.set_value();
  }  // the destructor joins after the queue is drained
  EXPECT_EQ(ran.load(), 5);
}

TEST(BlockingPool, DefaultSizeFollowsTheCores) {
  BlockingPool pool(0, 4);
  EXPECT_EQ(pool.threads(), BlockingPool::default_threads());
  EXPECT_GE(pool.threads(), 8);
}

}  // namespace
}  // namespace kmr::server
