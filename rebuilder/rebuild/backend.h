#pragma once

// What a rebuild backend implements, and the file helpers backends share.
//
// A backend knows one distro's build tool: it derives the pinned environment
// from the shipped packages' build description, names the inputs this host
// lacks, plans the sandboxed build, and finds the rebuilt files. rebuild.cc
// drives every backend the same way; each lives in its distro's folder
// (rebuilder/distros/<distro>/backend.cc), registered by name below.

#include <chrono>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "rebuilder/base/result.h"
#include "rebuilder/buildenv/environment.h"
#include "rebuilder/buildenv/sandbox.h"
#include "rebuilder/rebuild/artifact.h"
#include "rebuilder/rebuild/options.h"

namespace kmr::build {

// What a backend needs to know and produces.
struct Job {
  const std::vector<std::string>& files;
  const std::vector<Artifact>& shipped;
  const RebuildOptions& options;
  std::string work;  // the sandbox work dir
};

struct Plan {
  SandboxConfig sandbox;
  std::vector<std::string> argv;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  // The pinned environment from the shipped packages' build description.
  virtual Result<BuildEnvironment> environment(const Job& job) = 0;
  // Inputs the host lacks (empty: buildable).
  virtual std::vector<std::string> missing(const Job& job, const BuildEnvironment& env) = 0;
  virtual Result<Plan> plan(const Job& job, const BuildEnvironment& env) = 0;
  // Rebuilt files, in the order of job.files.
  virtual Result<std::vector<std::string>> collect(const Job& job, const BuildEnvironment& env) = 0;
};

// Backends register at static-initialisation time, as kmr's commands do
// (rebuilder/base/command.h); their libraries are linked with alwayslink so
// registration survives the linker. The factory gets the name asked for
// ("debian" and "proxmox" share one backend).
using BackendFactory = std::unique_ptr<Backend> (*)(const std::string& name);
struct BackendRegistrar {
  BackendRegistrar(std::initializer_list<std::string_view> names, BackendFactory factory);
};
// The backend registered under `name`; nullptr when none is.
std::unique_ptr<Backend> make_backend(const std::string& name);
// Every registered name, sorted.
std::vector<std::string> registered_backends();

#define KMR_REGISTER_BACKEND(ident, factory, ...) \
  static const ::kmr::build::BackendRegistrar kmr_backend_##ident{{__VA_ARGS__}, factory}

// ---- helpers shared by the backends ----

std::string base_of(const std::string& path);  // the file name
std::string dir_of(const std::string& path);   // the parent, "." when none
// The file's sha256 in hex, "" when it cannot be read.
std::string file_sha256_hex(const std::string& path);
// Copies a tree; symlinks stay symlinks and must stay inside it (artifact.h).
Result<void> copy_dir(const std::string& from, const std::string& to);
// Writes `text` atomically, creating the parent directories.
Result<void> write_text(const std::string& path, const std::string& text);
// The first candidate that exists, else "".
std::string first_existing(const std::vector<std::string>& candidates);
// Appends "tool 'T' is not installed" for each tool not on PATH.
void require_tools(std::vector<std::string>& missing, std::initializer_list<const char*> tools);
// Reports a ready build root through job.options.progress: "build root PATH
// (cached, N ms)" or "(made in N ms)".
void report_build_root(const Job& job, const std::string& path, bool cached, std::chrono::milliseconds took);

}  // namespace kmr::build
