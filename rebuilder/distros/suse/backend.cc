// SUSE backend: SUSE: rpmbuild --rebuild of the source RPM with the recorded macros.
#include "rebuilder/rebuild/backend.h"
#include "rebuilder/distros/suse/scripts.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>

#include "rebuilder/base/file.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"
#include "rebuilder/base/subprocess.h"
#include "rebuilder/distros/suse/buildroot.h"

namespace kmr::build {
namespace {

namespace fs = std::filesystem;

std::map<std::string, std::string> rpm_header_fields(const Artifact& a) {
  std::map<std::string, std::string> f;
  auto it = a.build_description.find("rpm-header");
  if (it == a.build_description.end()) return f;
  std::istringstream in(it->second);
  std::string line;
  while (std::getline(in, line)) {
    const auto sp = line.find(' ');
    if (sp == std::string::npos || line.rfind("file ", 0) == 0) continue;
    f[line.substr(0, sp)] = line.substr(sp + 1);
  }
  return f;
}

// A header string holding a line break would forge the lines after it.
Result<void> check_rpm_header_lines(const Artifact& a) {
  std::set<std::string> seen;
  auto it = a.build_description.find("rpm-header");
  if (it == a.build_description.end()) return ok();
  std::istringstream in(it->second);
  std::string line;
  while (std::getline(in, line)) {
    const std::string key = line.substr(0, line.find(' '));
    if (key != "file" && !seen.insert(key).second) {
      return malformed(a.file + ": RPM header tag '" + key.substr(0, 64) + "' appears twice (a string tag holds a line break)");
    }
  }
  return ok();
}

class SuseBackend : public Backend {
 public:
  std::string name() const override { return "suse"; }

  Result<BuildEnvironment> environment(const Job& job) override {
    KMR_TRY(check_rpm_header_lines(job.shipped[0]));
    auto f = rpm_header_fields(job.shipped[0]);
    if (f.empty()) return not_found("no RPM header facts for " + job.files[0]);
    RpmBuildFacts facts;
    facts.name = f["name"];
    facts.version = f["version"];
    facts.release = f["release"];
    facts.arch = f["arch"];
    facts.disturl = f["disturl"] == "(none)" ? "" : f["disturl"];
    facts.buildhost = f["buildhost"];
    facts.sourcerpm = f["sourcerpm"];
    facts.buildtime = std::strtoll(f["buildtime"].c_str(), nullptr, 10);
    KMR_ASSIGN_OR_RETURN(auto env, suse_environment(facts));
    for (const char* k : {"distribution", "vendor", "packager", "payloadcompressor", "payloadflags"}) {
      if (f.count(k) && f[k] != "(none)") env.fields[k] = f[k];
    }
    bool build_id = false;
    for (const auto& [path, d] : job.shipped[0].members) build_id = build_id || path.find("usr/lib/.build-id/") == 0;
    env.fields["build_id_links"] = build_id ? "alldebug" : "none";
    env.build_path = "/home/abuild/rpmbuild";  // OBS's build root
    env.build_user = "abuild";
    // The source RPM pins more: the parsed spec it carries (rpm >= 4.18)
    // shows the %_topdir it was built in, its files' owner the build user.
    const std::string src = srpm(job, env);
    if (!src.empty()) {
      env.fields["srpm_sha256"] = file_sha256_hex(src);
      SubprocessOptions so;
      so.output_cap = 16 << 20;
      auto q = run_subprocess({"rpm", "-qp", "--nosignature", "--nodigest", "--qf", "[%{FILEUSERNAME}\n]%{SPEC}", src}, so);
      if (q && q->success()) {
        const std::string& t = q->out;
        if (const auto nl = t.find('\n'); nl != std::string::npos && nl > 0) env.build_user = t.substr(0, nl);
        const auto prep = t.find("%prep\ncd '");
        if (prep != std::string::npos) {
          const auto start = prep + 10;
          const auto end = t.find("/BUILD'", start);
          if (end != std::string::npos && end > start && t[start] == '/') env.build_path = t.substr(start, end - start);
        }
      }
    }
    return env;
  }

  std::string srpm(const Job& job, const BuildEnvironment& env) {
    const std::string name = env.fields.at("sourcerpm");
    if (name.empty() || name.find('/') != std::string::npos) return "";
    std::vector<std::string> c;
    if (!job.options.sources.empty()) {
      c.push_back(job.options.sources + "/" + name);
      c.push_back(job.options.sources);
    }
    c.push_back(dir_of(job.files[0]) + "/../../sources/" + name);
    c.push_back(dir_of(job.files[0]) + "/../src/" + name);
    auto found = first_existing(c);
    std::error_code ec;
    if (!found.empty() && fs::is_directory(found, ec)) return "";
    return found;
  }

  std::vector<std::string> missing(const Job& job, const BuildEnvironment& env) override {
    std::vector<std::string> m;
    require_tools(m, job.options.build_root == "archive" ? std::initializer_list<const char*>{"rpm", "rpmkeys"}
                                                          : std::initializer_list<const char*>{"rpmbuild"});
    const std::string src = srpm(job, env);
    if (src.empty()) m.push_back("source RPM " + env.fields.at("sourcerpm") + " (DISTURL " + env.fields.at("disturl") + "; use --sources)");
    if (!m.empty() || job.options.build_root != "archive") return m;
    return archive_root(job, src);
  }

  // The toolchain from an rpm root made from the SUSE repository at the
  // pinned versions (rebuilder/distros/suse): what the mirror lacks is
  // missing; a signature or checksum that does not verify ends the rebuild
  // as an error (plan() returns it).
  std::vector<std::string> archive_root(const Job& job, const std::string& src) {
    suse::RootRequest rq;
    rq.srpm = src;
    std::vector<std::string> c;
    if (!job.options.sources.empty()) c.push_back(job.options.sources + "/_buildenv");
    c.push_back(dir_of(src) + "/_buildenv");
    rq.buildenv = first_existing(c);
    if (job.options.progress) job.options.progress("making the rpm build root from the SUSE repository");
    auto root = suse::ensure_build_root(rq, suse::mirror_options_from_env());
    if (!root) {
      root_error_ = root.error();
      return {};
    }
    if (!root->missing.empty()) return root->missing;
    if (job.options.progress) {
      job.options.progress("build root " + root->path + " (" + std::to_string(root->pinned.size()) + " packages, " +
                           root->pinned_from + (root->cached ? "; cached, " : "; made in ") +
                           std::to_string(root->duration.count()) + " ms)");
    }
    root_dir_ = root->path;
    return {};
  }

  Result<Plan> plan(const Job& job, const BuildEnvironment& env) override {
    if (root_error_) return Error(root_error_->code(), "build root: " + root_error_->message());
    Plan p;
    auto& s = p.sandbox;
    s.root_dir = root_dir_;
    KMR_TRY(check_build_path("rpm %_topdir", env.build_path));
    KMR_TRY(check_user_name("rpm build user", env.build_user));
    s.build_path = env.build_path;
    s.user = env.build_user;
    if (env.build_user == "root") s.uid = s.gid = 0;
    const std::string src = srpm(job, env);
    fs::create_directories(job.work + "/build");
    KMR_TRY(copy_file_no_follow(src, job.work + "/build/" + base_of(src)));
    s.env["SOURCE_DATE_EPOCH"] = std::to_string(env.source_date_epoch.value_or(0));
    // As OBS does: the spec is built with -ba (the source RPM is rebuilt too,
    // and its id lands in the binary header as SOURCEPKGID).
    // Header values are data: '%' doubled, shell syntax refused (rpm_macro_body).
    std::vector<std::string> defs;
    Result<void> refused = ok();
    auto def = [&](const std::string& k, const std::string& v) {
      auto body = rpm_macro_body("rpm macro " + k, v);
      if (!body) refused = std::move(body).error();
      if (body && refused) defs.insert(defs.end(), {"--define", k + " " + *body});
    };
    def("_topdir", env.build_path);
    if (!env.fields.at("disturl").empty()) def("disturl", env.fields.at("disturl"));
    for (const char* k : {"distribution", "vendor", "packager"}) {
      if (env.fields.count(k)) def(k, env.fields.at(k));
    }
    def("_buildhost", env.build_host);
    def("use_source_date_epoch_as_buildtime", "1");
    def("clamp_mtime_to_source_date_epoch", "1");
    def("_build_id_links", env.fields.at("build_id_links"));
    // Payload compressors as the binary and the source RPM headers record them.
    const std::map<std::string, std::string> io = {{"bzip2", "bzdio"}, {"xz", "xzdio"}, {"zstd", "zstdio"}, {"gzip", "gzdio"}, {"lzma", "lzdio"}};
    auto payload = [&](const std::string& comp, const std::string& level) {
      return "w" + (level.empty() || level == "(none)" ? std::string("9") : level) + "." + io.at(comp);
    };
    const std::string comp = env.fields.count("payloadcompressor") ? env.fields.at("payloadcompressor") : "";
    if (io.count(comp)) def("_binary_payload", payload(comp, env.fields.count("payloadflags") ? env.fields.at("payloadflags") : ""));
    auto q = run_subprocess({"rpm", "-qp", "--nosignature", "--nodigest", "--qf", "%{PAYLOADCOMPRESSOR} %{PAYLOADFLAGS}", src});
    if (q && q->success()) {
      std::istringstream in(q->out);
      std::string sc, sl;
      in >> sc >> sl;
      if (io.count(sc)) def("_source_payload", payload(sc, sl));
    }
    KMR_TRY(std::move(refused));
    p.argv = {"/bin/sh", "-c", std::string(kSuseBuildScript), "suse-build.sh", env.build_path + "/" + base_of(src), env.build_path};
    p.argv.insert(p.argv.end(), defs.begin(), defs.end());
    return p;
  }

  Result<std::vector<std::string>> collect(const Job& job, const BuildEnvironment& env) override {
    std::vector<std::string> out;
    for (const auto& f : job.files) {
      const std::string arch = rpm_header_fields(job.shipped[0])["arch"];
      out.push_back(job.work + "/build/RPMS/" + (arch.empty() ? env.fields.at("arch") : arch) + "/" + base_of(f));
    }
    return out;
  }

 private:
  std::string root_dir_;                 // "" = the host's toolchain
  std::optional<Error> root_error_;
};

std::unique_ptr<Backend> make_suse_backend(const std::string& /*name*/) { return std::make_unique<SuseBackend>(); }

}  // namespace

KMR_REGISTER_BACKEND(suse, make_suse_backend, "suse");

}  // namespace kmr::build
