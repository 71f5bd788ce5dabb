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
#include "rebuilder/buildenv/sandbox.h"
#include "rebuilder/rebuild/verdict.h"

namespace kmr::build {

struct RebuildOptions {
  std::string backend;        // arch | nixos | suse | proxmox | debian; "" = from the package type
  std::string sources;        // --sources: where to look for sources first
  bool keep = false;          // keep the work directory
  std::string work_root;      // default $KMR_REBUILD_DIR or /var/tmp/kmr-rebuild
  std::chrono::milliseconds timeout{std::chrono::hours(4)};
  std::uint64_t memory_bytes = 16ull << 30;
  // Debian/Proxmox toolchain: "host" (the host's /usr) or "archive" (a root
  // made by mmdebstrap from Debian's archive at the .buildinfo's exact
  // Installed-Build-Depends; rebuilder/distros/debian/README.md).
  std::string build_root = "host";
  // Debian/Proxmox: the package's apt repository, for a rebuild without
  // --sources (rebuilder/distros/debian/fetch.h): its Release URL
  // (.../dists/<suite>/InRelease), the keyring the Release must verify with,
  // and the .buildinfo URL template ("" = Debian's default). The .buildinfo
  // and the source package are fetched from it and verified.
  std::string repository;
  std::string repository_keyring;
  std::string buildinfo_template;
  std::function<void(const std::string&)> progress;  // one line per step
};

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
