// Debian and Proxmox backend: Debian / Proxmox: dpkg-buildpackage with the .buildinfo environment.
#include "rebuilder/rebuild/backend.h"
#include "rebuilder/distros/debian/scripts.h"

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
#include "rebuilder/distros/debian/buildroot.h"
#include "rebuilder/distros/debian/fetch.h"

namespace kmr::build {
namespace {

namespace fs = std::filesystem;

class DebianBackend : public Backend {
 public:
  explicit DebianBackend(std::string distro) : distro_(std::move(distro)) {}
  std::string name() const override { return distro_; }

  std::vector<std::string> dirs(const Job& job) {
    std::vector<std::string> d;
    if (!job.options.sources.empty()) d.push_back(job.options.sources);
    if (!fetched_.dir.empty()) d.push_back(fetched_.dir);
    d.push_back(dir_of(job.files[0]));
    return d;
  }

  // With a repository: the .buildinfo and the source package fetched from it
  // and verified (rebuilder/distros/debian/fetch.h). A repository that cannot
  // be reached leaves the environment unavailable; a signature or hash that
  // does not match is an error.
  Result<void> fetch(const Job& job) {
    if (job.options.repository.empty()) return ok();
    if (job.options.progress) job.options.progress("fetching the .buildinfo and the source package from " + job.options.repository);
    debian::RepositoryOptions o;
    o.release_url = job.options.repository;
    o.keyring = job.options.repository_keyring;
    o.buildinfo_template = job.options.buildinfo_template;
    auto got = debian::fetch_rebuild_inputs(o, job.files, job.work + "/fetched");
    if (!got) {
      const ErrorCode c = got.error().code();
      if (c == ErrorCode::kVerificationFailed || c == ErrorCode::kMalformedInput || c == ErrorCode::kLimitExceeded)
        return got.error();
      return not_found("repository " + job.options.repository + ": " + got.error().message());
    }
    fetched_ = std::move(*got);
    return ok();
  }

  // The source package is missing: what the repository lacked, else where to look.
  void source_missing(const Job& job, const BuildEnvironment& env, std::vector<std::string>& m) {
    if (!dsc(job, env).empty()) return;
    if (!fetched_.missing.empty()) {
      m.insert(m.end(), fetched_.missing.begin(), fetched_.missing.end());
      return;
    }
    m.push_back("source package " + env.fields.at("Source") + " " + env.fields.at("Version") + " (.dsc; use --sources)");
  }

  Result<BuildEnvironment> environment(const Job& job) override {
    KMR_TRY(fetch(job));
    // The .buildinfo published beside the package (or in --sources, or
    // fetched from the repository) whose Checksums list the shipped file.
    const std::string want = base_of(job.files[0]);
    std::error_code ec;
    for (const auto& d : dirs(job)) {
      std::vector<std::string> cands;
      if (fs::is_regular_file(d, ec) && d.ends_with(".buildinfo")) cands.push_back(d);
      if (fs::is_directory(d, ec)) {
        for (const auto& e : fs::directory_iterator(d, ec)) {
          if (e.path().string().ends_with(".buildinfo")) cands.push_back(e.path().string());
        }
      }
      std::sort(cands.begin(), cands.end());
      for (const auto& c : cands) {
        auto text = read_text_file(c, 16 << 20);
        if (!text || text->find(want) == std::string::npos) continue;
        KMR_ASSIGN_OR_RETURN(auto env, parse_debian_buildinfo(*text, distro_));
        env.fields["buildinfo_file"] = base_of(c);
        env.fields["buildinfo_sha256"] = file_sha256_hex(c);
        return env;
      }
    }
    std::string fetch_missing;
    for (const auto& f : fetched_.missing) fetch_missing += "; " + f;
    return not_found(".buildinfo listing " + want + " (looked beside the package" +
                     (job.options.sources.empty() ? "" : " and in " + job.options.sources) +
                     (job.options.repository.empty() ? "" : " and in the repository") + ")" + fetch_missing);
  }

  std::string dsc(const Job& job, const BuildEnvironment& env) {
    std::string version = env.fields.at("Version");
    if (const auto colon = version.find(':'); colon != std::string::npos) version = version.substr(colon + 1);
    const std::string name = env.fields.at("Source").substr(0, env.fields.at("Source").find(' ')) + "_" + version + ".dsc";
    std::vector<std::string> c;
    for (const auto& d : dirs(job)) c.push_back(d + "/" + name);
    return first_existing(c);
  }

  std::vector<std::string> missing(const Job& job, const BuildEnvironment& env) override {
    std::vector<std::string> m;
    if (job.options.build_root == "archive") return archive_root(job, env);
    require_tools(m, {"dpkg-buildpackage", "dpkg-source", "dpkg-query"});
    source_missing(job, env, m);
    // Installed-Build-Depends must be installed at exactly the recorded versions.
    std::map<std::string, std::string> host;
    auto q = run_subprocess({"dpkg-query", "-W", "-f", "${Package} ${Version} ${db:Status-Abbrev}\n"});
    if (q && q->success()) {
      std::istringstream in(q->out);
      std::string line;
      while (std::getline(in, line)) {
        std::istringstream w(line);
        std::string n, v, st;
        w >> n >> v >> st;
        if (st.size() >= 2 && st[1] == 'i') host[n] = v;
      }
    }
    for (const auto& i : env.installed) {
      const auto eq = i.find('=');
      std::string n = i.substr(0, eq);
      const std::string v = eq == std::string::npos ? "" : i.substr(eq + 1);
      if (const auto colon = n.find(':'); colon != std::string::npos) n = n.substr(0, colon);
      auto it = host.find(n);
      if (it == host.end()) {
        m.push_back("package " + n + " (= " + v + ") not installed");
      } else if (!v.empty() && it->second != v) {
        m.push_back("package " + n + " (= " + v + ") installed at " + it->second);
      }
    }
    return m;
  }

  // The toolchain from a build root made from the archive at the pinned
  // versions (rebuilder/distros/debian): what it lacks is missing.
  std::vector<std::string> archive_root(const Job& job, const BuildEnvironment& env) {
    std::vector<std::string> m;
    require_tools(m, {"mmdebstrap", "dpkg-query"});
    source_missing(job, env, m);
    if (!m.empty()) return m;
    if (job.options.progress) job.options.progress("making the build root from the archive (mmdebstrap)");
    auto root = debian::ensure_build_root(env, debian::archive_options_from_env());
    if (!root) return {"build root: " + root.error().message()};
    if (!root->missing.empty()) return root->missing;
    report_build_root(job, root->path, root->cached, root->duration);
    root_dir_ = root->path;
    return m;
  }

  Result<Plan> plan(const Job& job, const BuildEnvironment& env) override {
    Plan p;
    auto& s = p.sandbox;
    s.root_dir = root_dir_;
    // Debian builds as root (fakeroot or Rules-Requires-Root); root inside
    // the user namespace only.
    s.uid = 0;
    s.gid = 0;
    s.user = "root";
    // The tree is unpacked where the .buildinfo's Build-Path says it was built (host
    // tools built with -g, such as kbuild's objtool, carry that path), else at
    // /build/src/<source>-<upstream version>.
    std::string parent = "/build/src";
    std::string tree;
    if (!env.build_path.empty()) {
      KMR_TRY(check_build_path(".buildinfo Build-Path", env.build_path));
      const auto slash = env.build_path.rfind('/');
      if (slash == 0 || slash + 1 >= env.build_path.size())
        return Error(ErrorCode::kMalformedInput, ".buildinfo Build-Path '" + env.build_path + "' has no parent directory");
      parent = env.build_path.substr(0, slash);
      tree = env.build_path.substr(slash + 1);
    }
    // The default keeps /build as the sandbox's build path (and HOME); a recorded parent,
    // even /build itself, is bound as the build path with the sources directly in it.
    const bool default_parent = parent == "/build/src";
    s.build_path = default_parent ? "/build" : parent;
    const std::string src = default_parent ? job.work + "/build/src" : job.work + "/build";
    src_ = src;
    const std::string d = dsc(job, env);
    fs::create_directories(src);
    // The .dsc and every file it lists.
    KMR_ASSIGN_OR_RETURN(auto text, read_text_file(d, 1 << 20));
    std::vector<std::string> files = {base_of(d)};
    const auto files_at = text.find("\nFiles:");
    if (files_at != std::string::npos) {
      std::istringstream in(text.substr(files_at + 7));
      std::string line;
      std::getline(in, line);  // the rest of the "Files:" line
      while (std::getline(in, line) && !line.empty() && (line[0] == ' ' || line[0] == '\t')) {
        std::istringstream w(line);
        std::string md5, size, name;
        w >> md5 >> size >> name;
        if (!name.empty() && name.find('/') == std::string::npos) files.push_back(name);
      }
    }
    for (const auto& f : files) {
      auto copied = copy_file_no_follow(dir_of(d) + "/" + f, src + "/" + f);
      if (!copied) return Error(copied.error().code(), "source file " + f + " listed in " + d + ": " + copied.error().message());
    }
    for (const auto& [k, v] : env.env) s.env[k] = v;
    std::string version = env.fields.at("Version");
    if (const auto colon = version.find(':'); colon != std::string::npos) version = version.substr(colon + 1);
    const std::string upstream = version.substr(0, version.rfind('-'));
    if (tree.empty()) tree = env.fields.at("Source").substr(0, env.fields.at("Source").find(' ')) + "-" + upstream;
p.argv = {"/bin/sh", "-c", std::string(kDebianBuildScript), "debian-build.sh", parent, base_of(d), tree};
    return p;
  }

  Result<std::vector<std::string>> collect(const Job& job, const BuildEnvironment&) override {
    std::vector<std::string> out;
    for (const auto& f : job.files) out.push_back(src_ + "/" + base_of(f));
    return out;
  }

 private:
  std::string distro_;
  std::string root_dir_;  // "" = the host's toolchain
  debian::FetchedInputs fetched_;  // from the repository (RebuildOptions::repository)
  std::string src_;       // host directory holding the source package and the built packages
};

std::unique_ptr<Backend> make_debian_backend(const std::string& name) { return std::make_unique<DebianBackend>(name); }

}  // namespace

KMR_REGISTER_BACKEND(debian, make_debian_backend, "debian", "proxmox");

}  // namespace kmr::build
