#pragma once

// The rebuild engine: shipped packages -> pinned environment -> the distro's
// own build tool in the sandbox -> verdicts.

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "rebuilder/base/result.h"
#include "rebuilder/rebuild/artifact.h"
#include "rebuilder/buildenv/environment.h"
#include "rebuilder/rebuild/kernel_rebuild.h"
#include "rebuilder/rebuild/options.h"
#include "rebuilder/buildenv/sandbox.h"
#include "rebuilder/rebuild/verdict.h"

namespace kmr::build {

// The outcome: a verdict, or why there is none.
enum class RebuildStatus { kVerdict, kBuildFailed, kEnvironmentUnavailable, kError };
std::string_view rebuild_status_name(RebuildStatus s);  // verdict | build-failed | environment-unavailable | error

struct RebuiltFile {
  std::string name;
  std::string sha256;
  std::string path;
};

struct RebuildReport {
  RebuildStatus status = RebuildStatus::kError;
  std::string backend;
  std::string reason;                  // build-failed / environment-unavailable / error
  std::vector<std::string> missing;    // environment-unavailable: the missing inputs
  std::vector<std::string> shipped;    // shipped files as given
  ModuleRootReport module_root;
  FilesReport files;
  ContentRootReport content_root;
  SignatureCheck signatures;           // checked when files needed it (modulo signatures)
  // Kernel rebuild inputs taken from the shipped image (kernel_rebuild.h):
  // nullopt when the packages hold no kernel image or the backend does not
  // rebuild kernels this way.
  std::optional<KernelRebuild> kernel_rebuild;
  BuildEnvironment environment;
  std::vector<RebuiltFile> rebuilt;
  std::string log;                     // path of the build log (kept)
  std::string work_dir;                // kept with --keep
  // Removes the work directory (unless --keep) when the last copy of the
  // report goes away, i.e. after the caller has delivered the verdict.
  std::shared_ptr<void> work_cleanup;
  std::chrono::milliseconds duration{0};
  std::chrono::milliseconds build_duration{0};   // the sandboxed build alone

  // 0: reproducible (is_reproducible in verdict.h); 1: a verdict that is not
  // reproducible, build-failed or environment-unavailable; 2: error.
  int exit_code() const;
  nlohmann::json to_json() const;
};

// Backend name for a package file from its type ("" when unknown).
std::string detect_backend(const std::string& file);

// Reads the shipped packages, derives the environment, rebuilds and compares.
// Never fails: problems become build-failed / environment-unavailable / error.
RebuildReport rebuild(const std::vector<std::string>& files, const RebuildOptions& options);

// Verification only (no rebuild): module_root from the shipped proofs against
// the shipped root, comparing `rebuilt_files` when given. Used by tests and
// the benchmark to time the verification step alone.
RebuildReport verify_against(const std::vector<std::string>& shipped_files, const std::vector<std::string>& rebuilt_files);

}  // namespace kmr::build
