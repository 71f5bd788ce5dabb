#include "rebuilder/rebuild/rebuild.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <memory>
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
  if (ends_with(b, ".rpm")) return "suse";
  if (ends_with(b, ".deb")) return b.rfind("proxmox-", 0) == 0 || b.rfind("pve-", 0) == 0 ? "proxmox" : "debian";
  if (ends_with(b, ".narinfo") || b.find(".nar") != std::string::npos) return "nixos";
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

RebuildReport rebuild(const std::vector<std::string>& files, const RebuildOptions& options) {
  const auto start = Clock::now();
  RebuildReport rep;
  rep.shipped = files;
  auto progress = [&](const std::string& s) {
    if (options.progress) options.progress(s);
  };
  auto finish = [&](RebuildStatus st, std::string reason) {
    rep.status = st;
    rep.reason = std::move(reason);
    rep.duration = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
    return rep;
  };
  if (files.empty()) return finish(RebuildStatus::kError, "no package given");
  rep.backend = options.backend.empty() ? detect_backend(files[0]) : options.backend;
  auto backend = make_backend(rep.backend);
  if (!backend) return finish(RebuildStatus::kError, "unknown backend '" + rep.backend + "' for " + files[0]);

  progress("reading " + std::to_string(files.size()) + " shipped package(s)");
  auto shipped = read_all(files);
  if (!shipped) return finish(RebuildStatus::kError, shipped.error().to_string());
  // Check A runs even without a rebuild: a tampered package is invalid whatever happens next.
  {
    std::vector<const Artifact*> s;
    for (const auto& a : *shipped) s.push_back(&a);
    rep.module_root = module_root_verdict(s, {});
  }

  const std::string work_root = options.work_root.empty() ? default_work_root() : options.work_root;
  std::error_code ec;
  fs::create_directories(work_root + "/logs", ec);
  if (ec) return finish(RebuildStatus::kError, "cannot create " + work_root + ": " + ec.message());
  const std::string id = base_of(files[0]) + "-" + std::to_string(::getpid()) + "-" + std::to_string(std::time(nullptr));
  const std::string work = work_root + "/" + id;
  fs::remove_all(work, ec);
  fs::create_directories(work, ec);
  Job job{files, *shipped, options, work};
  if (!options.keep) {
    rep.work_cleanup = std::shared_ptr<void>(nullptr, [work](void*) {
      std::error_code e;
      fs::remove_all(work, e);
    });
  }
  if (options.keep) rep.work_dir = work;

  progress("deriving the pinned environment (" + rep.backend + ")");
  auto env = backend->environment(job);
  if (!env) {
    if (env.error().code() == ErrorCode::kNotFound) {
      rep.missing.push_back(env.error().message());
      return finish(RebuildStatus::kEnvironmentUnavailable, "build description unavailable: " + env.error().message());
    }
    return finish(RebuildStatus::kError, env.error().to_string());
  }
  rep.environment = *env;
  rep.missing = backend->missing(job, *env);
  if (!rep.missing.empty()) {
    return finish(RebuildStatus::kEnvironmentUnavailable,
                  std::to_string(rep.missing.size()) + " pinned input(s) unavailable on this host");
  }
  auto sa = sandbox_available();
  if (!sa) {
    rep.missing.push_back(sa.error().message());
    return finish(RebuildStatus::kEnvironmentUnavailable, "sandbox unavailable");
  }

  progress("preparing the build in " + work);
  auto plan = backend->plan(job, *env);
  if (!plan) {
    if (plan.error().code() == ErrorCode::kNotFound) {
      rep.missing.push_back(plan.error().message());
      return finish(RebuildStatus::kEnvironmentUnavailable, plan.error().message());
    }
    return finish(RebuildStatus::kError, plan.error().to_string());
  }
  if (kernel_rebuild_backend(rep.backend)) {
    progress("kernel: build identity and certificate transplant from the shipped image");
    auto kernel = prepare_kernel_rebuild(*shipped, plan->sandbox, work, rep.environment);
    if (!kernel) return finish(RebuildStatus::kError, kernel.error().to_string());
    rep.kernel_rebuild = std::move(*kernel);
    if (rep.kernel_rebuild && !rep.kernel_rebuild->missing.empty()) {
      rep.missing = rep.kernel_rebuild->missing;
      return finish(RebuildStatus::kEnvironmentUnavailable, "the build's toolchain is not the shipped kernel's");
    }
  }
  // The sandbox's pinned variables are never replaced by a recorded value.
  for (const char* k : {"PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "SHELL", "HOSTNAME", "TZ"}) plan->sandbox.env.erase(k);
  plan->sandbox.work_dir = work;
  plan->sandbox.wall_time = options.timeout;
  plan->sandbox.memory_bytes = options.memory_bytes;
  progress("building in the sandbox: " + plan->argv[0]);
  auto run = run_in_sandbox(plan->sandbox, plan->argv);
  if (!run) return finish(RebuildStatus::kError, run.error().to_string());
  rep.build_duration = run->process.elapsed;
  rep.log = work_root + "/logs/" + id + ".log";
  fs::copy_file(run->log_path, rep.log, fs::copy_options::overwrite_existing, ec);
  if (!run->success()) {
    return finish(RebuildStatus::kBuildFailed, plan->argv[0] + " " + run->describe() + "; log tail:\n" + log_tail(run->log_path, 2000));
  }

  progress("comparing");
  auto outs = backend->collect(job, *env);
  if (!outs) return finish(RebuildStatus::kError, outs.error().to_string());
  // Outputs are copied out of the build's tree (no symlink followed, regular
  // files only) into a directory the build never saw, and read from there.
  const std::string collected = work + "/kmr-collected";
  if (::mkdir(collected.c_str(), 0755) != 0) return finish(RebuildStatus::kError, "cannot create " + collected);
  std::vector<std::string> outputs;
  for (const auto& o : *outs) {
    if (o.rfind(work + "/", 0) != 0) return finish(RebuildStatus::kError, "output " + o + " is outside the work directory");
    const std::string dest = collected + "/" + base_of(o);
    auto got = collect_output(work, o.substr(work.size() + 1), dest);
    if (!got) {
      const auto status = got.error().code() == ErrorCode::kIo ? RebuildStatus::kError : RebuildStatus::kBuildFailed;
      return finish(status, got.error().message() + "; log tail:\n" + log_tail(run->log_path, 2000));
    }
    rep.rebuilt.push_back({base_of(o), file_sha256_hex(dest), dest});
    outputs.push_back(dest);
  }
  progress("reading the rebuilt package(s)");
  auto rebuilt = read_all(outputs);
  if (!rebuilt) return finish(RebuildStatus::kError, rebuilt.error().to_string());
  fill_verdicts(rep, *shipped, *rebuilt);
  progress("done");
  return finish(RebuildStatus::kVerdict, "");
}

}  // namespace kmr::build

