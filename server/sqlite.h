#pragma once

// RAII wrappers for SQLite: a connection, a prepared statement with a fluent
// binder, and a transaction that rolls back unless committed.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "rebuilder/base/result.h"

struct sqlite3;
struct sqlite3_stmt;

namespace kmr::server {

class Stmt {
 public:
  Stmt(sqlite3* db, sqlite3_stmt* s) : db_(db), s_(s) {}
  Stmt(Stmt&& o) noexcept : db_(o.db_), s_(o.s_) { o.s_ = nullptr; }
  Stmt& operator=(Stmt&&) = delete;
  Stmt(const Stmt&) = delete;
  ~Stmt();

  // Binders take 1-based parameter indexes, as SQLite does.
  Stmt& bind(int i, std::int64_t v);
  Stmt& bind(int i, int v) { return bind(i, static_cast<std::int64_t>(v)); }
  Stmt& bind(int i, std::string_view v);
  Stmt& bind(int i, const char* v) { return bind(i, std::string_view(v)); }
  Stmt& bind(int i, const std::string& v) { return bind(i, std::string_view(v)); }
  Stmt& bind(int i, const std::optional<std::string>& v);
  Stmt& bind(int i, const std::optional<std::int64_t>& v);
  Stmt& bind_null(int i);

  // true: a row is available; false: done.
  Result<bool> step();
  // Steps to completion (for statements without result rows).
  Result<void> run();
  void reset();

  std::int64_t i64(int col) const;
  std::string text(int col) const;
  std::optional<std::string> opt_text(int col) const;
  std::optional<std::int64_t> opt_i64(int col) const;
  bool is_null(int col) const;

 private:
  sqlite3* db_;
  sqlite3_stmt* s_;
};

class Db {
 public:
  static Result<std::unique_ptr<Db>> open(const std::string& path, bool readonly, int busy_timeout_ms);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  Result<void> exec(std::string_view sql);
  Result<Stmt> prepare(std::string_view sql);
  std::int64_t last_insert_id() const;
  int changes() const;
  sqlite3* raw() const { return db_; }

 private:
  explicit Db(sqlite3* db) : db_(db) {}
  sqlite3* db_;
};

// BEGIN IMMEDIATE on construction via begin(); rolls back in the destructor unless committed.
class Txn {
 public:
  explicit Txn(Db& db) : db_(db) {}
  ~Txn();
  Txn(const Txn&) = delete;
  Txn& operator=(const Txn&) = delete;
  Result<void> begin();
  Result<void> commit();

 private:
  Db& db_;
  bool open_ = false;
};

}  // namespace kmr::server
