#pragma once

// The worker report: what kmr-worker sends kmrd for one job
// (POST /api/v1/worker/jobs/{id}/report). One type for both ends: the worker
// builds it from the engine's result (`kmr rebuild --json`, from_engine_result)
// and serialises it (to_json); kmrd parses it with the limits below
// (from_json). The JSON is a contract: fields are only ever added.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "rebuilder/base/result.h"

namespace kmr::verdict {

// The job outcomes a report may carry (the engine's "verdict" is "verified").
inline constexpr std::string_view kReportStatuses[] = {"verified", "build-failed", "environment-unavailable",
                                                       "error"};
// The files tiers a verified report may carry (kFilesTiers less the statuses).
inline constexpr std::string_view kVerdictFilesTiers[] = {"identical", "content-identical",
                                                          "identical-modulo-signatures", "different"};

// Limits kmrd applies when parsing (besides the HTTP body limit).
inline constexpr std::size_t kMaxReportFiles = 256;       // rebuilt[], shipped[]
inline constexpr std::size_t kMaxReportRootHex = 256;     // shipped_root, rebuilt_root
inline constexpr std::size_t kMaxReportNameBytes = 4096;  // rebuilt[].name, lease

struct RebuiltFileHash {
  std::string name;    // the package file it rebuilds (base name)
  std::string sha256;  // lowercase hex
  std::optional<std::string> sha512;
};

struct ShippedFileHash {
  std::string sha256, sha512;  // lowercase hex: the shipped file the worker fetched and checked
};

struct WorkerReport {
  std::string lease;
  std::string status;  // one of kReportStatuses
  std::optional<std::string> files, module_root, reason, shipped_root, rebuilt_root;
  std::optional<std::vector<std::string>> differing;
  std::optional<nlohmann::json> environment;  // object: the pinned build environment
  std::optional<std::vector<RebuiltFileHash>> rebuilt;
  std::optional<std::vector<ShippedFileHash>> shipped;
  std::optional<std::string> log;
  std::optional<nlohmann::json> diff_json;  // kmr diff's JSON document
  std::optional<std::string> diff_html;
  std::optional<std::int64_t> duration_ms;
  std::optional<nlohmann::json> details;  // object: the engine's result, kept for the UI

  // The wire form: absent fields are left out.
  nlohmann::json to_json() const;
};

// Why kmrd refuses a report body: `code` is the API's error code
// (invalid_json | unknown_field | invalid_field | invalid_hex).
struct ReportError {
  std::string code;
  std::string message;
};

// Parses and checks a report body. On failure returns nullopt and fills `error`.
std::optional<WorkerReport> parse_worker_report(const nlohmann::json& body, ReportError& error);

// The report fields taken from the engine's result (`kmr rebuild --json`, a
// JSON object with "status"): status (verdict -> verified), files (a verdict
// tier only), module_root, the roots, reason, differing, environment, rebuilt
// (base names), details. A verdict without files or module_root becomes
// status "error". The worker adds lease, shipped, log, diffs and duration.
WorkerReport from_engine_result(const nlohmann::json& engine);

}  // namespace kmr::verdict
