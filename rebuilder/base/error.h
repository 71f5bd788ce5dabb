#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace kmr {

// Stable error codes; their names appear in JSON output and HTTP errors.
enum class ErrorCode {
  kMalformedInput,
  kLimitExceeded,
  kUnsupportedFormat,
  kIo,
  kDbBusy,
  kNotFound,
  kTimeout,
  kPermissionDenied,
  kVerificationFailed,
  kInternal,
};

std::string_view error_code_name(ErrorCode code);

// An error as a value: a code, a message and "while ..." context added by
// each caller on the way up. Never thrown across a module boundary.
class Error {
 public:
  Error(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}

  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }
  const std::vector<std::string>& context() const { return context_; }

  // Adds context, outermost last: "while reading foo.ko".
  Error& with_context(std::string ctx) & {
    context_.push_back(std::move(ctx));
    return *this;
  }
  Error&& with_context(std::string ctx) && {
    context_.push_back(std::move(ctx));
    return std::move(*this);
  }

  // "context-outer: context-inner: message".
  std::string to_string() const;

 private:
  ErrorCode code_;
  std::string message_;
  std::vector<std::string> context_;
};

inline Error malformed(std::string msg) { return Error(ErrorCode::kMalformedInput, std::move(msg)); }
inline Error limit_exceeded(std::string msg) { return Error(ErrorCode::kLimitExceeded, std::move(msg)); }
inline Error unsupported(std::string msg) { return Error(ErrorCode::kUnsupportedFormat, std::move(msg)); }
inline Error io_error(std::string msg) { return Error(ErrorCode::kIo, std::move(msg)); }
inline Error not_found(std::string msg) { return Error(ErrorCode::kNotFound, std::move(msg)); }
inline Error internal_error(std::string msg) { return Error(ErrorCode::kInternal, std::move(msg)); }

}  // namespace kmr
