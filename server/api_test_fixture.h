#pragma once

// The kmrd API over a fresh store, as the API tests set it up.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <gtest/gtest.h>

#include "rebuilder/base/file.h"
#include "server/api.h"

namespace kmr::server {

class ApiFixture : public ::testing::Test {
 protected:
  // A temporary directory named after `name`, with the store (and, with
  // `attestor`, the attestor) in <dir>/state (config_.state_dir). Call under
  // ASSERT_NO_FATAL_FAILURE.
  void open_store(const std::string& name, bool attestor = true) {
    auto t = TempDir::create(name);
    ASSERT_TRUE(t.has_value());
    dir_.emplace(std::move(t).value());
    config_.origin = "http://kmrd.test:8080";
    config_.state_dir = dir_->path() + "/state";
    auto s = Store::open(config_.state_dir);
    ASSERT_TRUE(s.has_value());
    store_ = std::move(s).value();
    if (!attestor) return;
    auto at = Attestor::open(config_.state_dir, "", "https://test.invalid/kmr", "http://127.0.0.1");
    ASSERT_TRUE(at.has_value()) << at.error().to_string();
    attestor_ = std::move(at).value();
  }

  // The API over that store, serving <dir>/web, its clock now_.
  void start_api() {
    api_ = std::make_unique<Api>(*store_, config_, metrics_, attestor_.get(), StaticFiles::load(dir_->path() + "/web"),
                                 [this] { return now_; });
  }

  std::optional<TempDir> dir_;
  Config config_;
  Metrics metrics_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Attestor> attestor_;
  std::unique_ptr<Api> api_;
  std::int64_t now_ = 1'700'000'000;
};

}  // namespace kmr::server
