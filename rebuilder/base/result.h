#pragma once

#include <cstdlib>
#include <cstdio>
#include <utility>
#include <variant>

#include "rebuilder/base/error.h"

namespace kmr {

// Always-on assertion for programming errors (never for bad input).
#define KMR_CHECK(cond)                                                             \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "%s:%d: KMR_CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                 \
    }                                                                               \
  } while (0)

// A value or an Error, with the std::expected API subset we need.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT: implicit

  bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }

  T& value() & { KMR_CHECK(has_value()); return std::get<0>(v_); }
  const T& value() const& { KMR_CHECK(has_value()); return std::get<0>(v_); }
  T&& value() && { KMR_CHECK(has_value()); return std::move(std::get<0>(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  Error& error() & { KMR_CHECK(!has_value()); return std::get<1>(v_); }
  const Error& error() const& { KMR_CHECK(!has_value()); return std::get<1>(v_); }
  Error&& error() && { KMR_CHECK(!has_value()); return std::move(std::get<1>(v_)); }

  template <typename U>
  T value_or(U&& fallback) const& {
    return has_value() ? std::get<0>(v_) : static_cast<T>(std::forward<U>(fallback));
  }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT: implicit

  bool has_value() const { return ok_; }
  explicit operator bool() const { return ok_; }
  void value() const { KMR_CHECK(ok_); }
  Error& error() & { KMR_CHECK(!ok_); return error_; }
  const Error& error() const& { KMR_CHECK(!ok_); return error_; }
  Error&& error() && { KMR_CHECK(!ok_); return std::move(error_); }

 private:
  Error error_{ErrorCode::kInternal, ""};
  bool ok_ = true;
};

inline Result<void> ok() { return Result<void>(); }

#define KMR_CONCAT_INNER_(a, b) a##b
#define KMR_CONCAT_(a, b) KMR_CONCAT_INNER_(a, b)

// Returns the error of a Result<...> expression from the enclosing function.
#define KMR_TRY(expr)                                   \
  do {                                                  \
    auto kmr_try_result_ = (expr);                      \
    if (!kmr_try_result_) return std::move(kmr_try_result_).error(); \
  } while (0)

// `KMR_ASSIGN_OR_RETURN(auto x, f());` declares x from the value or returns
// the error.
#define KMR_ASSIGN_OR_RETURN(lhs, expr) \
  KMR_ASSIGN_OR_RETURN_IMPL_(KMR_CONCAT_(kmr_aor_, __LINE__), lhs, expr)
#define KMR_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp) return std::move(tmp).error();         \
  lhs = std::move(tmp).value()

}  // namespace kmr
