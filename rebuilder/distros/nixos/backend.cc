// NixOS backend: nix-store --realise of the deriver in the job's own store,
// its inputs from the host store or, with --repository, from a binary cache
// (rebuilder/distros/nixos/substituter.h); a .drv the cache does not serve
// is instantiated from the job's nixpkgs tarball (instantiate.h).
#include "rebuilder/rebuild/backend.h"
#include "rebuilder/distros/nixos/scripts.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include "rebuilder/base/file.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"
#include "rebuilder/base/subprocess.h"
#include "rebuilder/distros/nixos/instantiate.h"
#include "rebuilder/distros/nixos/substituter.h"

namespace kmr::build {
namespace {

namespace fs = std::filesystem;

// Copies what building `drv` needs from the host store into a chroot store
// at `root` (store dir /nix/store): the derivation closure, and the outputs
// of its input derivations that are valid on the host. The derivation's own
// outputs are not copied: the job builds them.
Result<void> seed_job_store(const std::string& drv, const std::string& root) {
  SubprocessOptions o;
  o.timeout = std::chrono::minutes(30);
  o.env = std::vector<std::string>{"PATH=/usr/local/bin:/usr/bin:/bin",
                                   "NIX_CONFIG=build-users-group =\nexperimental-features = nix-command\nsandbox = false\nsubstituters ="};
  auto lines = [](const std::string& text) {
    std::vector<std::string> v;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) {
      if (!l.empty()) v.push_back(l);
    }
    return v;
  };
  KMR_ASSIGN_OR_RETURN(auto own, run_subprocess({"nix-store", "--query", "--outputs", drv}, o));
  KMR_ASSIGN_OR_RETURN(auto closure, run_subprocess({"nix-store", "--query", "--requisites", "--include-outputs", drv}, o));
  if (!own.success() || !closure.success()) return not_found("nix-store cannot query " + drv + ": " + own.err + closure.err);
  const auto own_outputs = lines(own.out);
  std::vector<std::string> drvs = {"nix", "copy", "--derivation", "--no-check-sigs", "--to", "local?root=" + root};
  std::vector<std::string> paths = {"nix", "copy", "--no-check-sigs", "--to", "local?root=" + root};
  for (const auto& p : lines(closure.out)) {
    if (std::find(own_outputs.begin(), own_outputs.end(), p) != own_outputs.end()) continue;
    (p.size() > 4 && p.compare(p.size() - 4, 4, ".drv") == 0 ? drvs : paths).push_back(p);
  }
  std::error_code ec;
  fs::create_directories(root, ec);
  for (const auto* argv : {&drvs, &paths}) {
    if (argv->size() == (argv == &drvs ? 6u : 5u)) continue;
    KMR_ASSIGN_OR_RETURN(auto r, run_subprocess(*argv, o));
    if (!r.success()) return io_error("cannot copy the derivation closure into the job's store: " + r.err);
  }
  return ok();
}

// The trusted keys of --repository-key: a file of "name:base64" keys, or the
// keys themselves (as Nix's trusted-public-keys).
Result<std::vector<archive::PublicKey>> trusted_keys(const std::string& value) {
  std::error_code ec;
  if (!value.empty() && fs::is_regular_file(value, ec)) {
    KMR_ASSIGN_OR_RETURN(auto text, read_text_file(value, 1 << 20));
    return nixos::parse_trusted_keys(text);
  }
  return nixos::parse_trusted_keys(value);
}

// Imports what the cache gave (verified, in nix-store --export format) into
// the job's chroot store at `root`.
Result<void> import_into_job_store(const std::string& export_file, const std::string& root) {
  SubprocessOptions o;
  o.timeout = std::chrono::minutes(30);
  o.env = std::vector<std::string>{"PATH=/usr/local/bin:/usr/bin:/bin",
                                   "NIX_CONFIG=build-users-group =\nexperimental-features = nix-command\nsandbox = false\nsubstituters ="};
  std::error_code ec;
  fs::create_directories(root, ec);
  KMR_ASSIGN_OR_RETURN(auto r, run_subprocess({"/bin/sh", "-c", "exec nix-store --store \"local?root=$1\" --import < \"$2\"",
                                               "kmr-nix-import", root, export_file}, o));
  if (!r.success()) return io_error("nix-store --import into the job's store failed: " + r.err);
  return ok();
}

class NixBackend : public Backend {
 public:
  std::string name() const override { return "nixos"; }

  Result<BuildEnvironment> environment(const Job& job) override {
    for (const auto& a : job.shipped) {
      auto it = a.build_description.find("narinfo");
      if (it == a.build_description.end()) continue;
      KMR_ASSIGN_OR_RETURN(auto env, parse_nix_narinfo(it->second));
      if (env.fields.count("Deriver") && !job.options.repository.empty()) {
        KMR_TRY(from_cache(job, env));
        return env;
      }
      if (env.fields.count("Deriver")) {
        const std::string drv = "/nix/store/" + env.fields.at("Deriver");
        env.fields["drv"] = drv;
        std::error_code ec;
        if (fs::exists(drv, ec)) env.fields["drv_sha256"] = file_sha256_hex(drv);
        // SOURCE_DATE_EPOCH as the derivation records it.
        auto text = read_text_file(drv, 16 << 20);
        if (text) {
          const auto k = text->find("(\"SOURCE_DATE_EPOCH\",\"");
          if (k != std::string::npos) {
            const auto start = k + 22;
            const auto end = text->find('"', start);
            env.env["SOURCE_DATE_EPOCH"] = text->substr(start, end - start);
            env.source_date_epoch = std::strtoll(env.env["SOURCE_DATE_EPOCH"].c_str(), nullptr, 10);
          }
        }
      }
      return env;
    }
    return not_found("no narinfo among the packages (give the .narinfo files of the outputs)");
  }

  std::vector<std::string> missing(const Job&, const BuildEnvironment& env) override {
    std::vector<std::string> m;
    require_tools(m, {"nix-store"});
    if (!env.fields.count("Deriver")) {
      m.push_back("the narinfo names no Deriver");
    } else if (!repository_.empty()) {
      m.insert(m.end(), cache_missing_.begin(), cache_missing_.end());
    } else {
      std::error_code ec;
      if (!fs::exists(env.fields.at("drv"), ec)) {
        m.push_back("derivation " + env.fields.at("drv") + " (not in the local store; instantiate nixpkgs at the channel revision)");
      }
    }
    return m;
  }

  Result<Plan> plan(const Job& job, const BuildEnvironment& env) override {
    Plan p;
    auto& s = p.sandbox;
    // Each job has its own store: the derivation's closure and the outputs
    // of its inputs, copied from the host store or, with --repository,
    // fetched from the binary cache and verified (from_cache), bound
    // writable at /nix; the host store is never visible to the build.
    // Inside, root of the user namespace owns that store (the build user on
    // the host). Nix's own sandbox stays off: see the README.
    s.uid = 0;
    s.gid = 0;
    s.user = "root";
    std::string root = job.work + "/nixroot";
    if (!instantiated_root_.empty()) {
      // The store nix-instantiate wrote in its sandbox: untrusted since, so
      // the host never writes to it; the inputs are imported inside
      // (nix-realise.sh, KMR_NIX_IMPORT).
      root = instantiated_root_;
      s.env["KMR_NIX_IMPORT"] = "/build/kmr-nix-inputs.export";
    } else if (repository_.empty()) {
      KMR_TRY(seed_job_store(env.fields.at("drv"), root));
    } else {
      KMR_TRY(import_into_job_store(job.work + "/kmr-nix-inputs.export", root));
    }
    s.mounts.push_back({root + "/nix", "/nix", true});
    s.env["NIX_CONFIG"] = "build-users-group =\nexperimental-features = nix-command\nsandbox = false\nsubstituters =";
    s.env["NIX_REMOTE"] = "";
    fs::create_directories(job.work + "/build/out");
    p.argv = {"/bin/sh", "-c", std::string(kNixRealiseScript), "nix-realise.sh", env.fields.at("drv")};
    return p;
  }

  Result<std::vector<std::string>> collect(const Job& job, const BuildEnvironment&) override {
    std::vector<std::string> out;
    for (const auto& a : job.shipped) {
      auto it = a.build_description.find("narinfo");
      if (it == a.build_description.end()) return malformed(a.file + ": not a narinfo");
      KMR_ASSIGN_OR_RETURN(auto e, parse_nix_narinfo(it->second));
      out.push_back(job.work + "/build/out/" + base_of(e.fields.at("StorePath")) + ".nar");
    }
    return out;
  }

 private:
  // --repository: the .drv, its closure and the outputs of its input
  // derivations come from the binary cache (never its own outputs), each
  // narinfo signed by a --repository-key key and each NAR matching it; the
  // host store is not consulted. The verified paths wait in the work
  // directory (nix-store --export format) until plan() imports them.
  Result<void> from_cache(const Job& job, BuildEnvironment& env) {
    repository_ = job.options.repository;
    while (!repository_.empty() && repository_.back() == '/') repository_.pop_back();
    const std::string drv = "/nix/store/" + env.fields.at("Deriver");
    env.fields["drv"] = drv;
    env.fields["substituter"] = repository_;
    nixos::CacheOptions o;
    o.url = repository_;
    auto keys = trusted_keys(job.options.repository_keyring);
    if (!keys) return std::move(keys).error().with_context("--repository-key");
    o.trusted_keys = std::move(*keys);
    if (job.options.progress) job.options.progress("fetching the derivation and its inputs from " + o.url);
    nixos::Derivation d;
    KMR_ASSIGN_OR_RETURN(auto closure, nixos::fetch_build_inputs(nixos::http_fetcher(std::chrono::minutes(30)), o, drv, d));
    cache_missing_ = closure.missing;
    if (!closure.paths.count(drv)) {
      auto tarball = nixos::find_nixpkgs_tarball(job.options.sources);
      if (tarball) return from_nixpkgs(job, env, o, drv, *tarball);
      if (tarball.error().code() != ErrorCode::kNotFound) return std::move(tarball).error().with_context("--sources");
      for (auto& m : cache_missing_) {
        if (m.rfind(drv + ": ", 0) == 0) m += " (the cache does not serve the derivation: instantiate nixpkgs at the channel revision)";
      }
      return ok();
    }
    auto text = nixos::nar_single_file(closure.paths.at(drv).nar, drv, nixos::DerivationLimits{}.max_bytes);
    if (text) env.fields["drv_sha256"] = to_hex(sha256(Bytes(reinterpret_cast<const std::uint8_t*>(text->data()), text->size())));
    const auto sde = d.env.find("SOURCE_DATE_EPOCH");
    if (sde != d.env.end() && !sde->second.empty() && sde->second.size() <= 18 &&
        sde->second.find_first_not_of("0123456789") == std::string::npos) {
      env.env["SOURCE_DATE_EPOCH"] = sde->second;
      env.source_date_epoch = std::strtoll(sde->second.c_str(), nullptr, 10);
    }
    std::string names;
    for (const auto& p : closure.order) names += (names.empty() ? "" : " ") + base_of(p);
    env.fields["substituted"] = names;
    env.fields["substituted_nar_bytes"] = std::to_string(closure.nar_bytes);
    if (!cache_missing_.empty()) return ok();
    return nixos::write_export(closure, job.work + "/kmr-nix-inputs.export");
  }

  // The cache served no .drv: nixpkgs at the channel's revision (the job's
  // nixpkgs-<rev>.tar.gz) instantiated in the sandbox must give exactly the
  // Deriver; the outputs of its input derivations then come from the cache.
  Result<void> from_nixpkgs(const Job& job, BuildEnvironment& env, const nixos::CacheOptions& o, const std::string& drv,
                            const std::string& tarball) {
    cache_missing_.clear();
    nixos::InstantiateRequest req;
    req.tarball = tarball;
    req.deriver = drv;
    KMR_ASSIGN_OR_RETURN(req.attr, nixos::explicit_attribute(job.options.sources));
    if (req.attr.empty()) {
      auto a = nixos::attribute_for_deriver(drv);
      if (!a) {
        cache_missing_.push_back(drv + ": " + a.error().message());
        return ok();
      }
      req.attr = *a;
    }
    for (const auto& a : job.shipped) {
      auto it = a.build_description.find("narinfo");
      if (it == a.build_description.end()) continue;
      KMR_ASSIGN_OR_RETURN(auto e, parse_nix_narinfo(it->second));
      if (e.fields.count("StorePath")) req.shipped_outputs.push_back(e.fields.at("StorePath"));
    }
    req.work_dir = job.work + "/eval";
    req.memory_bytes = std::min<std::uint64_t>(job.options.memory_bytes, 8ull << 30);
    env.fields["nixpkgs_tarball"] = base_of(tarball);
    env.fields["nix_attr"] = req.attr;
    if (job.options.progress) job.options.progress("instantiating " + base_of(tarball) + " -A " + req.attr + " in the sandbox");
    auto inst = nixos::instantiate(req);
    if (!inst) {
      if (inst.error().code() != ErrorCode::kNotFound) return std::move(inst).error();
      cache_missing_.push_back(drv + ": " + inst.error().message());
      return ok();
    }
    env.fields["nixpkgs_sha256"] = inst->tarball_sha256;
    env.fields["drv_source"] = "instantiated";
    env.fields["drv_sha256"] = inst->drv_sha256;
    env.fields["instantiate_ms"] = std::to_string(inst->eval_time.count());
    const auto sde = inst->derivation.env.find("SOURCE_DATE_EPOCH");
    if (sde != inst->derivation.env.end() && !sde->second.empty() && sde->second.size() <= 18 &&
        sde->second.find_first_not_of("0123456789") == std::string::npos) {
      env.env["SOURCE_DATE_EPOCH"] = sde->second;
      env.source_date_epoch = std::strtoll(sde->second.c_str(), nullptr, 10);
    }
    nixos::Closure closure;
    KMR_TRY(nixos::fetch_input_outputs(nixos::http_fetcher(std::chrono::minutes(30)), o, drv, inst->derivation,
                                       inst->closure, closure));
    cache_missing_ = closure.missing;
    std::string names;
    for (const auto& p : closure.order) names += (names.empty() ? "" : " ") + base_of(p);
    env.fields["substituted"] = names;
    env.fields["substituted_nar_bytes"] = std::to_string(closure.nar_bytes);
    instantiated_root_ = inst->store_root;
    if (!cache_missing_.empty()) return ok();
    fs::create_directories(job.work + "/build");
    return nixos::write_export(closure, job.work + "/build/kmr-nix-inputs.export");
  }

  std::string repository_;
  std::string instantiated_root_;
  std::vector<std::string> cache_missing_;
};

std::unique_ptr<Backend> make_nixos_backend(const std::string& /*name*/) { return std::make_unique<NixBackend>(); }

}  // namespace

KMR_REGISTER_BACKEND(nixos, make_nixos_backend, "nixos", "nix");

}  // namespace kmr::build
