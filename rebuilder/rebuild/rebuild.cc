#include "rebuilder/rebuild/rebuild.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <sstream>

#include "rebuilder/base/file.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"
#include "rebuilder/base/subprocess.h"
#include "rebuilder/rebuild/backend.h"

namespace kmr::build {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::string default_work_root() {
  const char* e = std::getenv("KMR_REBUILD_DIR");
  return e && *e ? e : "/var/tmp/kmr-rebuild";
}

std::string log_tail(const std::string& path, std::size_t n) {
  auto t = read_text_file(path, 64 << 20);
  if (!t) return "";
  return t->size() > n ? t->substr(t->size() - n) : *t;
}

}  // namespace

std::string_view rebuild_status_name(RebuildStatus s) {
  switch (s) {
    case RebuildStatus::kVerdict: return "verdict";
    case RebuildStatus::kBuildFailed: return "build-failed";
    case RebuildStatus::kEnvironmentUnavailable: return "environment-unavailable";
    case RebuildStatus::kError: return "error";
  }
  return "error";
}

std::string detect_backend(const std::string& file) {
  const std::string b = base_of(file);
  if (b.find(".pkg.tar") != std::string::npos) return "arch";
  if (b.ends_with(".rpm")) return "suse";
  if (b.ends_with(".deb")) return b.rfind("proxmox-", 0) == 0 || b.rfind("pve-", 0) == 0 ? "proxmox" : "debian";
  if (b.ends_with(".narinfo") || b.find(".nar") != std::string::npos) return "nixos";
  return "";
}

int RebuildReport::exit_code() const {
  if (status == RebuildStatus::kError) return 2;
  if (status != RebuildStatus::kVerdict) return 1;
  return is_reproducible(files.tier, module_root.verdict, content_root.verdict) ? 0 : 1;
}

nlohmann::json RebuildReport::to_json() const {
  using nlohmann::json;
  json j;
  j["status"] = rebuild_status_name(status);
  j["backend"] = backend;
  const bool verdict = status == RebuildStatus::kVerdict;
  // `files` carries the status when there is no verdict (the UI buckets on it).
  j["files"] = verdict ? files_tier_name(files.tier) : rebuild_status_name(status);
  j["differing"] = files.differing;
  const bool has_root = verdict || module_root.verdict == ModuleRoot::kInvalid;
  j["module_root"] = has_root ? json(module_root_name(module_root.verdict)) : json(nullptr);
  j["shipped_root"] = module_root.shipped ? json(root_hex(module_root.shipped)) : json(nullptr);
  j["rebuilt_root"] = module_root.rebuilt ? json(root_hex(module_root.rebuilt)) : json(nullptr);
  j["levels"] = module_root.shipped ? json(module_root.shipped->levels) : json(nullptr);
  json inv = json::array();
  for (const auto& i : module_root.invalid) inv.push_back({{"module", i.module}, {"reason", i.reason}});
  j["modules"] = {{"verified", module_root.verified}, {"invalid", inv}, {"note", module_root.note}};
  add_content_root_json(j, verdict, content_root, signatures);
  add_masked_json(j, files);
  j["kernel_rebuild"] = kernel_rebuild ? kernel_rebuild->to_json() : nlohmann::json(nullptr);
  j["environment"] = environment.to_json();
  j["environment_digest"] = environment.digest();
  json rb = json::array();
  for (const auto& r : rebuilt) rb.push_back({{"name", r.name}, {"sha256", r.sha256}});
  j["rebuilt"] = rb;
  j["shipped"] = shipped;
  j["log"] = log;
  if (!work_dir.empty()) j["work_dir"] = work_dir;
  j["reason"] = reason;
  j["missing"] = missing;
  j["duration_ms"] = duration.count();
  j["build_duration_ms"] = build_duration.count();
  j["exit_code"] = exit_code();
  return j;
}

namespace {

Result<std::vector<Artifact>> read_all(const std::vector<std::string>& files) {
  std::vector<Artifact> out;
  for (const auto& f : files) {
    KMR_ASSIGN_OR_RETURN(auto a, read_artifact(f));
    out.push_back(std::move(a));
  }
  return out;
}

void fill_verdicts(RebuildReport& rep, const std::vector<Artifact>& shipped, const std::vector<Artifact>& rebuilt) {
  std::vector<const Artifact*> s, r;
  for (const auto& a : shipped) s.push_back(&a);
  for (const auto& a : rebuilt) r.push_back(&a);
  rep.module_root = module_root_verdict(s, r);
  rep.files = files_verdict(s, r);
  rep.signatures = require_verified_signatures(rep.files, s);
  rep.content_root = content_root_verdict(s, r, rep.module_root.shipped);
  rep.status = RebuildStatus::kVerdict;
}

}  // namespace

RebuildReport verify_against(const std::vector<std::string>& shipped_files, const std::vector<std::string>& rebuilt_files) {
  const auto start = Clock::now();
  RebuildReport rep;
  rep.shipped = shipped_files;
  auto s = read_all(shipped_files);
  auto r = read_all(rebuilt_files);
  if (!s || !r) {
    rep.status = RebuildStatus::kError;
    rep.reason = (!s ? s.error() : r.error()).to_string();
  } else {
    fill_verdicts(rep, *s, *r);
  }
  rep.duration = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  return rep;
}

namespace {

// Where a rebuild stops: its status and the reason.
struct Stop {
  RebuildStatus status;
  std::string reason;
};

void report_progress(const RebuildOptions& options, const std::string& s) {
  if (options.progress) options.progress(s);
}

// Check A runs even without a rebuild: a tampered package is invalid whatever happens next.
void check_shipped_module_root(const std::vector<Artifact>& shipped, RebuildReport& rep) {
  std::vector<const Artifact*> s;
  s.reserve(shipped.size());
  for (const auto& a : shipped) s.push_back(&a);
  rep.module_root = module_root_verdict(s, {});
}

struct WorkDir {
  std::string root;  // holds logs/ and the work directories
  std::string id;
  std::string path;  // root/id, the sandbox work dir
};

// <root>/logs and a fresh <root>/<id>, removed with the report unless kept.
std::optional<Stop> make_work_dir(const std::vector<std::string>& files, const RebuildOptions& options, WorkDir& wd,
                                  RebuildReport& rep) {
  wd.root = options.work_root.empty() ? default_work_root() : options.work_root;
  std::error_code ec;
  fs::create_directories(wd.root + "/logs", ec);
  if (ec) return Stop{RebuildStatus::kError, "cannot create " + wd.root + ": " + ec.message()};
  wd.id = base_of(files[0]) + "-" + std::to_string(::getpid()) + "-" + std::to_string(std::time(nullptr));
  wd.path = wd.root + "/" + wd.id;
  fs::remove_all(wd.path, ec);
  fs::create_directories(wd.path, ec);
  if (!options.keep) {
    rep.work_cleanup = std::shared_ptr<void>(nullptr, [work = wd.path](void*) {
      std::error_code e;
      fs::remove_all(work, e);
    });
  }
  if (options.keep) rep.work_dir = wd.path;
  return std::nullopt;
}

// The pinned environment; the inputs it names and the sandbox must be on this host.
std::optional<Stop> derive_environment(Backend& backend, const Job& job, BuildEnvironment& env, RebuildReport& rep) {
  report_progress(job.options, "deriving the pinned environment (" + rep.backend + ")");
  auto got = backend.environment(job);
  if (!got) {
    if (got.error().code() == ErrorCode::kNotFound) {
      rep.missing.push_back(got.error().message());
      return Stop{RebuildStatus::kEnvironmentUnavailable, "build description unavailable: " + got.error().message()};
    }
    return Stop{RebuildStatus::kError, got.error().to_string()};
  }
  env = std::move(*got);
  rep.environment = env;
  rep.missing = backend.missing(job, env);
  if (!rep.missing.empty()) {
    return Stop{RebuildStatus::kEnvironmentUnavailable,
                std::to_string(rep.missing.size()) + " pinned input(s) unavailable on this host"};
  }
  auto sa = sandbox_available();
  if (!sa) {
    rep.missing.push_back(sa.error().message());
    return Stop{RebuildStatus::kEnvironmentUnavailable, "sandbox unavailable"};
  }
  return std::nullopt;
}

// For kernel backends: the build identity and certificates of the shipped image into the plan.
std::optional<Stop> transplant_kernel(const Job& job, Plan& plan, RebuildReport& rep) {
  if (!kernel_rebuild_backend(rep.backend)) return std::nullopt;
  report_progress(job.options, "kernel: build identity and certificate transplant from the shipped image");
  auto kernel = prepare_kernel_rebuild(job.shipped, plan.sandbox, job.work, rep.environment);
  if (!kernel) return Stop{RebuildStatus::kError, kernel.error().to_string()};
  rep.kernel_rebuild = std::move(*kernel);
  if (rep.kernel_rebuild && !rep.kernel_rebuild->missing.empty()) {
    rep.missing = rep.kernel_rebuild->missing;
    return Stop{RebuildStatus::kEnvironmentUnavailable, "the build's toolchain is not the shipped kernel's"};
  }
  return std::nullopt;
}

// The backend's plan, with the kernel transplant and the sandbox's own settings.
std::optional<Stop> plan_build(Backend& backend, const Job& job, const BuildEnvironment& env, Plan& plan, RebuildReport& rep) {
  report_progress(job.options, "preparing the build in " + job.work);
  auto got = backend.plan(job, env);
  if (!got) {
    if (got.error().code() == ErrorCode::kNotFound) {
      rep.missing.push_back(got.error().message());
      return Stop{RebuildStatus::kEnvironmentUnavailable, got.error().message()};
    }
    return Stop{RebuildStatus::kError, got.error().to_string()};
  }
  plan = std::move(*got);
  if (auto stop = transplant_kernel(job, plan, rep)) return stop;
  // The sandbox's pinned variables are never replaced by a recorded value.
  for (const char* k : {"PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "SHELL", "HOSTNAME", "TZ"}) plan.sandbox.env.erase(k);
  plan.sandbox.work_dir = job.work;
  plan.sandbox.wall_time = job.options.timeout;
  plan.sandbox.memory_bytes = job.options.memory_bytes;
  return std::nullopt;
}

// The plan run in the sandbox, its log kept as <root>/logs/<id>.log; `build_log`
// is the log in the work directory.
std::optional<Stop> run_build(const Plan& plan, const WorkDir& wd, const RebuildOptions& options, std::string& build_log,
                              RebuildReport& rep) {
  report_progress(options, "building in the sandbox: " + plan.argv[0]);
  auto run = run_in_sandbox(plan.sandbox, plan.argv);
  if (!run) return Stop{RebuildStatus::kError, run.error().to_string()};
  rep.build_duration = run->process.elapsed;
  rep.log = wd.root + "/logs/" + wd.id + ".log";
  std::error_code ec;
  fs::copy_file(run->log_path, rep.log, fs::copy_options::overwrite_existing, ec);
  if (!run->success()) {
    return Stop{RebuildStatus::kBuildFailed, plan.argv[0] + " " + run->describe() + "; log tail:\n" + log_tail(run->log_path, 2000)};
  }
  build_log = run->log_path;
  return std::nullopt;
}

// Outputs are copied out of the build's tree (no symlink followed, regular
// files only) into a directory the build never saw, and read from there.
std::optional<Stop> collect_outputs(Backend& backend, const Job& job, const BuildEnvironment& env, const std::string& build_log,
                                    std::vector<std::string>& outputs, RebuildReport& rep) {
  report_progress(job.options, "comparing");
  auto outs = backend.collect(job, env);
  if (!outs) return Stop{RebuildStatus::kError, outs.error().to_string()};
  const std::string& work = job.work;
  const std::string collected = work + "/kmr-collected";
  if (::mkdir(collected.c_str(), 0755) != 0) return Stop{RebuildStatus::kError, "cannot create " + collected};
  for (const auto& o : *outs) {
    if (o.rfind(work + "/", 0) != 0) return Stop{RebuildStatus::kError, "output " + o + " is outside the work directory"};
    const std::string dest = collected + "/" + base_of(o);
    auto got = collect_output(work, o.substr(work.size() + 1), dest);
    if (!got) {
      const auto status = got.error().code() == ErrorCode::kIo ? RebuildStatus::kError : RebuildStatus::kBuildFailed;
      return Stop{status, got.error().message() + "; log tail:\n" + log_tail(build_log, 2000)};
    }
    rep.rebuilt.push_back({base_of(o), file_sha256_hex(dest), dest});
    outputs.push_back(dest);
  }
  return std::nullopt;
}

// Every step in order: where the first step that cannot go on stops, else a verdict.
Stop run_rebuild(const std::vector<std::string>& files, const RebuildOptions& options, RebuildReport& rep) {
  if (files.empty()) return {RebuildStatus::kError, "no package given"};
  rep.backend = options.backend.empty() ? detect_backend(files[0]) : options.backend;
  auto backend = make_backend(rep.backend);
  if (!backend) return {RebuildStatus::kError, "unknown backend '" + rep.backend + "' for " + files[0]};
  report_progress(options, "reading " + std::to_string(files.size()) + " shipped package(s)");
  auto shipped = read_all(files);
  if (!shipped) return {RebuildStatus::kError, shipped.error().to_string()};
  check_shipped_module_root(*shipped, rep);
  WorkDir wd;
  if (auto stop = make_work_dir(files, options, wd, rep)) return std::move(*stop);
  const Job job{files, *shipped, options, wd.path};
  BuildEnvironment env;
  if (auto stop = derive_environment(*backend, job, env, rep)) return std::move(*stop);
  Plan plan;
  if (auto stop = plan_build(*backend, job, env, plan, rep)) return std::move(*stop);
  std::string build_log;
  if (auto stop = run_build(plan, wd, options, build_log, rep)) return std::move(*stop);
  std::vector<std::string> outputs;
  if (auto stop = collect_outputs(*backend, job, env, build_log, outputs, rep)) return std::move(*stop);
  report_progress(options, "reading the rebuilt package(s)");
  auto rebuilt = read_all(outputs);
  if (!rebuilt) return {RebuildStatus::kError, rebuilt.error().to_string()};
  fill_verdicts(rep, *shipped, *rebuilt);
  report_progress(options, "done");
  return {RebuildStatus::kVerdict, ""};
}

}  // namespace

RebuildReport rebuild(const std::vector<std::string>& files, const RebuildOptions& options) {
  const auto start = Clock::now();
  RebuildReport rep;
  rep.shipped = files;
  Stop stop = run_rebuild(files, options, rep);
  rep.status = stop.status;
  rep.reason = std::move(stop.reason);
  rep.duration = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  return rep;
}

}  // namespace kmr::build

