#include "server/sqlite.h"

#include <sqlite3.h>

namespace kmr::server {

namespace {
Error sql_error(sqlite3* db, int rc, std::string_view what) {
  ErrorCode code = (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) ? ErrorCode::kDbBusy : ErrorCode::kIo;
  return Error(code, std::string("sqlite: ") + std::string(what) + ": " +
                         (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc)));
}
}  // namespace

Stmt::~Stmt() {
  if (s_) sqlite3_finalize(s_);
}

Stmt& Stmt::bind(int i, std::int64_t v) {
  sqlite3_bind_int64(s_, i, v);
  return *this;
}
Stmt& Stmt::bind(int i, std::string_view v) {
  sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  return *this;
}
Stmt& Stmt::bind(int i, const std::optional<std::string>& v) {
  return v ? bind(i, std::string_view(*v)) : bind_null(i);
}
Stmt& Stmt::bind(int i, const std::optional<std::int64_t>& v) { return v ? bind(i, *v) : bind_null(i); }
Stmt& Stmt::bind_null(int i) {
  sqlite3_bind_null(s_, i);
  return *this;
}

Result<bool> Stmt::step() {
  int rc = sqlite3_step(s_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return sql_error(db_, rc, "step");
}

Result<void> Stmt::run() {
  for (;;) {
    KMR_ASSIGN_OR_RETURN(bool row, step());
    if (!row) return ok();
  }
}

void Stmt::reset() {
  sqlite3_reset(s_);
  sqlite3_clear_bindings(s_);
}

std::int64_t Stmt::i64(int col) const { return sqlite3_column_int64(s_, col); }
std::string Stmt::text(int col) const {
  const unsigned char* p = sqlite3_column_text(s_, col);
  if (!p) return {};
  return std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(sqlite3_column_bytes(s_, col)));
}
std::optional<std::string> Stmt::opt_text(int col) const {
  if (is_null(col)) return std::nullopt;
  return text(col);
}
std::optional<std::int64_t> Stmt::opt_i64(int col) const {
  if (is_null(col)) return std::nullopt;
  return i64(col);
}
bool Stmt::is_null(int col) const { return sqlite3_column_type(s_, col) == SQLITE_NULL; }

Result<std::unique_ptr<Db>> Db::open(const std::string& path, bool readonly, int busy_timeout_ms) {
  sqlite3* db = nullptr;
  int flags = readonly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  flags |= SQLITE_OPEN_NOMUTEX;
  int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    Error e = sql_error(db, rc, "open " + path);
    sqlite3_close(db);
    return e;
  }
  sqlite3_busy_timeout(db, busy_timeout_ms);
  std::unique_ptr<Db> out(new Db(db));
  if (!readonly) {
    KMR_TRY(out->exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"));
  }
  return out;
}

Db::~Db() { sqlite3_close(db_); }

Result<void> Db::exec(std::string_view sql) {
  std::string s(sql);
  char* err = nullptr;
  int rc = sqlite3_exec(db_, s.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    ErrorCode code = (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) ? ErrorCode::kDbBusy : ErrorCode::kIo;
    return Error(code, "sqlite: exec: " + msg);
  }
  return ok();
}

Result<Stmt> Db::prepare(std::string_view sql) {
  sqlite3_stmt* s = nullptr;
  int rc = sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &s, nullptr);
  if (rc != SQLITE_OK) return sql_error(db_, rc, "prepare");
  return Stmt(db_, s);
}

std::int64_t Db::last_insert_id() const { return sqlite3_last_insert_rowid(db_); }
int Db::changes() const { return sqlite3_changes(db_); }

Txn::~Txn() {
  if (open_) (void)db_.exec("ROLLBACK");
}
Result<void> Txn::begin() {
  KMR_TRY(db_.exec("BEGIN IMMEDIATE"));
  open_ = true;
  return ok();
}
Result<void> Txn::commit() {
  KMR_TRY(db_.exec("COMMIT"));
  open_ = false;
  return ok();
}

}  // namespace kmr::server
