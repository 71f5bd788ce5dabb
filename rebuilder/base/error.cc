#include "rebuilder/base/error.h"

namespace kmr {

std::string_view error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kMalformedInput: return "malformed_input";
    case ErrorCode::kLimitExceeded: return "limit_exceeded";
    case ErrorCode::kUnsupportedFormat: return "unsupported_format";
    case ErrorCode::kIo: return "io";
    case ErrorCode::kDbBusy: return "db_busy";
    case ErrorCode::kNotFound: return "not_found";
    case ErrorCode::kTimeout: return "timeout";
    case ErrorCode::kPermissionDenied: return "permission_denied";
    case ErrorCode::kVerificationFailed: return "verification_failed";
    case ErrorCode::kInternal: return "internal";
  }
  return "internal";
}

std::string Error::to_string() const {
  std::string out;
  for (auto it = context_.rbegin(); it != context_.rend(); ++it) {
    out += *it;
    out += ": ";
  }
  out += message_;
  return out;
}

}  // namespace kmr
