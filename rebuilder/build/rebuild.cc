#include "rebuilder/build/rebuild.h"

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
#include "rebuilder/distros/debian/buildroot.h"
#include "rebuilder/distros/debian/fetch.h"

namespace kmr::build {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::string base_of(const std::string& p) { return fs::path(p).filename().string(); }
std::string dir_of(const std::string& p) {
  auto d = fs::path(p).parent_path().string();
  return d.empty() ? "." : d;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::string file_sha256_hex(const std::string& path) {
  auto d = sha256_file(path);
  return d ? to_hex(*d) : "";
}

Result<void> copy_dir(const std::string& from, const std::string& to) {
  std::error_code ec;
  fs::create_directories(to, ec);
  // Symlinks stay symlinks and must stay inside the tree (artifact.h).
  return copy_tree_no_follow(from, to);
}

Result<void> write_text(const std::string& path, const std::string& text) {
  std::error_code ec;
  fs::create_directories(dir_of(path), ec);
  return write_file_atomic(path, as_bytes(text));
}

// First existing candidate, else "".
std::string first_existing(const std::vector<std::string>& candidates) {
  std::error_code ec;
  for (const auto& c : candidates) {
    if (!c.empty() && fs::exists(c, ec)) return c;
  }
  return "";
}

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

void require_tools(std::vector<std::string>& missing, std::initializer_list<const char*> tools) {
  for (const char* t : tools) {
    if (!have_program(t)) missing.push_back(std::string("tool '") + t + "' is not installed");
  }
}

// ---- Arch: makepkg with the .BUILDINFO settings --------------------------------
class ArchBackend : public Backend {
 public:
  std::string name() const override { return "arch"; }

  Result<BuildEnvironment> environment(const Job& job) override {
    for (const auto& a : job.shipped) {
      auto it = a.build_description.find(".BUILDINFO");
      if (it != a.build_description.end()) return parse_arch_buildinfo(it->second);
    }
    return not_found("no .BUILDINFO in " + job.files[0]);
  }

  std::string sources_dir(const Job& job, const BuildEnvironment& env) {
    const std::string pkgbase = env.fields.count("pkgbase") ? env.fields.at("pkgbase") : env.fields.at("pkgname");
    std::vector<std::string> c;
    if (!job.options.sources.empty()) {
      c.push_back(job.options.sources + "/PKGBUILD");
      c.push_back(job.options.sources + "/" + pkgbase + "/PKGBUILD");
    }
    // Published beside the repository: <repo>/os/<arch>/x.pkg.tar.zst -> <repo>/sources/<pkgbase>/.
    c.push_back(dir_of(job.files[0]) + "/../../sources/" + pkgbase + "/PKGBUILD");
    c.push_back(dir_of(job.files[0]) + "/sources/" + pkgbase + "/PKGBUILD");
    const auto found = first_existing(c);
    return found.empty() ? "" : dir_of(found);
  }

  std::vector<std::string> missing(const Job& job, const BuildEnvironment& env) override {
    std::vector<std::string> m;
    require_tools(m, {"makepkg", "fakeroot", "bsdtar", "zstd"});
    const std::string src = sources_dir(job, env);
    if (src.empty()) {
      m.push_back("packaging sources (PKGBUILD) for " + env.fields.at("pkgver") + " (use --sources)");
    } else if (env.fields.count("pkgbuild_sha256sum")) {
      const auto have = file_sha256_hex(src + "/PKGBUILD");
      if (have != env.fields.at("pkgbuild_sha256sum")) {
        m.push_back("PKGBUILD with sha256 " + env.fields.at("pkgbuild_sha256sum") + " (found " + have + " in " + src + ")");
      }
    }
    if (!env.installed.empty()) {
      std::set<std::string> host;
      if (have_program("pacman")) {
        auto q = run_subprocess({"pacman", "-Q"});
        if (q && q->success()) {
          std::istringstream in(q->out);
          std::string n, v;
          while (in >> n >> v) host.insert(n + "-" + v);
        }
      }
      for (const auto& i : env.installed) {
        // name-ver-rel-arch; pacman -Q prints name ver-rel.
        const auto dash = i.rfind('-');
        if (dash == std::string::npos || !host.count(i.substr(0, dash))) m.push_back("package " + i);
      }
    }
    return m;
  }

  Result<Plan> plan(const Job& job, const BuildEnvironment& env) override {
    Plan p;
    auto& s = p.sandbox;
    const std::string startdir = env.fields.count("startdir") ? env.fields.at("startdir") : "/startdir";
    const std::string builddir = env.build_path.empty() ? "/build" : env.build_path;
    KMR_TRY(check_build_path(".BUILDINFO startdir", startdir));
    KMR_TRY(check_build_path(".BUILDINFO builddir", builddir));
    s.build_path = startdir;
    KMR_TRY(copy_dir(sources_dir(job, env), job.work + "/build"));
    fs::create_directories(job.work + "/builddir");
    fs::create_directories(job.work + "/pkgdest");
    // Every recorded value is one single-quoted word on its own line.
    std::string conf = "source /etc/makepkg.conf\n";
    auto set = [&conf](const std::string& key, const std::string& value) -> Result<void> {
      KMR_ASSIGN_OR_RETURN(auto quoted, config_line_value(".BUILDINFO " + key, value));
      conf += key + "=" + quoted + "\n";
      return ok();
    };
    KMR_TRY(set("CARCH", env.fields.count("pkgarch") && env.fields.at("pkgarch") != "any" ? env.fields.at("pkgarch") : "x86_64"));
    const std::string file = base_of(job.files[0]);
    KMR_TRY(set("PKGEXT", file.substr(file.find(".pkg.tar"))));
    // devtools' compressor settings, as archlinux-repro writes them.
    conf += "COMPRESSZST=(zstd -c -T0 --ultra -20 -)\nCOMPRESSXZ=(xz -c -z -T0 -)\n";
    KMR_TRY(set("BUILDDIR", builddir));
    conf += "PKGDEST=/pkgdest\n";
    KMR_TRY(set("SRCDEST", startdir));
    if (env.fields.count("packager")) KMR_TRY(set("PACKAGER", env.fields.at("packager")));
    auto words = [](const std::string& key, const std::vector<std::string>& v) -> Result<std::string> {
      std::string out;
      for (const auto& w : v) {
        KMR_ASSIGN_OR_RETURN(auto quoted, config_line_value(".BUILDINFO " + key, w));
        out += (out.empty() ? "" : " ") + quoted;
      }
      return key + "=(" + out + ")\n";
    };
    KMR_ASSIGN_OR_RETURN(auto buildenv, words("BUILDENV", env.buildenv));
    KMR_ASSIGN_OR_RETURN(auto options, words("OPTIONS", env.options));
    conf += buildenv + options;
    KMR_TRY(write_text(job.work + "/conf/makepkg.conf", conf));
    s.mounts = {{job.work + "/builddir", builddir, true},
                {job.work + "/pkgdest", "/pkgdest", true},
                {job.work + "/conf", "/kmr", false}};
    s.env["SOURCE_DATE_EPOCH"] = std::to_string(env.source_date_epoch.value_or(0));
    p.argv = {"makepkg", "--config", "/kmr/makepkg.conf", "--nodeps", "--force", "--noconfirm", "--nocolor", "--noprogressbar"};
    return p;
  }

  Result<std::vector<std::string>> collect(const Job& job, const BuildEnvironment&) override {
    std::vector<std::string> out;
    for (const auto& f : job.files) out.push_back(job.work + "/pkgdest/" + base_of(f));
    return out;
  }
};

// ---- NixOS: nix-store --realise --check of the deriver -------------------------
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

class NixBackend : public Backend {
 public:
  std::string name() const override { return "nixos"; }

  Result<BuildEnvironment> environment(const Job& job) override {
    for (const auto& a : job.shipped) {
      auto it = a.build_description.find("narinfo");
      if (it == a.build_description.end()) continue;
      KMR_ASSIGN_OR_RETURN(auto env, parse_nix_narinfo(it->second));
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
    // Each job has its own store: the derivation's closure (and the valid
    // outputs of its inputs) copied from the host store into work/nix, bound
    // writable at /nix; the host store is never visible to the build.
    // Inside, root of the user namespace owns that store (the build user on
    // the host). Nix's own sandbox stays off: see the README.
    s.uid = 0;
    s.gid = 0;
    s.user = "root";
    KMR_TRY(seed_job_store(env.fields.at("drv"), job.work + "/nixroot"));
    s.mounts.push_back({job.work + "/nixroot/nix", "/nix", true});
    s.env["NIX_CONFIG"] = "build-users-group =\nexperimental-features = nix-command\nsandbox = false\nsubstituters =";
    s.env["NIX_REMOTE"] = "";
    fs::create_directories(job.work + "/build/out");
    const std::string script = R"(set -u
drv=$1
outs=$(nix-store --query --outputs "$drv") || exit 2
valid=1
for o in $outs; do nix-store --check-validity "$o" 2>/dev/null || valid=0; rm -rf "$o.check"; done
if [ $valid = 1 ]; then
  echo "kmr: outputs present: nix-store --realise --check --keep-failed $drv"
  nix-store --realise --check --keep-failed "$drv"; rc=$?
  if [ $rc != 0 ]; then
    any=0; for o in $outs; do [ -e "$o.check" ] && any=1; done
    [ $any = 1 ] || exit $rc
    # --check stops at the first differing output; the others were not
    # compared. Rebuild every output: drop them from the store and realise.
    echo "kmr: nix reports the rebuild differs (exit $rc); rebuilding every output"
    for o in $outs; do rm -rf "$o.check"; done
    nix-store --delete $outs || { echo "kmr: cannot delete the outputs to rebuild them all"; exit 3; }
    nix-store --realise "$drv" || exit $?
  fi
else
  echo "kmr: outputs absent: nix-store --realise $drv"
  nix-store --realise "$drv" || exit $?
fi
for o in $outs; do
  src=$o; [ -e "$o.check" ] && src=$o.check
  nix-store --dump "$src" > "out/$(basename "$o").nar" || exit 2
done
)";
    p.argv = {"/bin/sh", "-c", script, "kmr-nix", env.fields.at("drv")};
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
};

// ---- SUSE: rpmbuild --rebuild of the source RPM with the recorded macros ------
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
    require_tools(m, {"rpmbuild"});
    if (srpm(job, env).empty()) m.push_back("source RPM " + env.fields.at("sourcerpm") + " (DISTURL " + env.fields.at("disturl") + "; use --sources)");
    return m;
  }

  Result<Plan> plan(const Job& job, const BuildEnvironment& env) override {
    Plan p;
    auto& s = p.sandbox;
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
      if (body && refused) defs.push_back("--define " + shell_quote(k + " " + *body));
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
    std::string all;
    for (const auto& d : defs) all += " " + d;
    const std::string script = "set -e\nrpm -i --nosignature --nodigest" + all + " " + shell_quote(env.build_path + "/" + base_of(src)) +
                               "\nspec=$(ls " + shell_quote(env.build_path) + "/SPECS/*.spec | head -n 1)\n"
                               "rpmbuild -ba --nodeps" + all + " \"$spec\"\n";
    p.argv = {"/bin/sh", "-c", script};
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
};

// ---- Debian / Proxmox: dpkg-buildpackage with the .buildinfo environment -------
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
      if (fs::is_regular_file(d, ec) && ends_with(d, ".buildinfo")) cands.push_back(d);
      if (fs::is_directory(d, ec)) {
        for (const auto& e : fs::directory_iterator(d, ec)) {
          if (ends_with(e.path().string(), ".buildinfo")) cands.push_back(e.path().string());
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
    if (job.options.progress) {
      job.options.progress("build root " + root->path + (root->cached ? " (cached, " : " (made in ") +
                           std::to_string(root->duration.count()) + " ms)");
    }
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
    const std::string script = "set -e\ncd " + shell_quote(parent) + "\ndpkg-source -x " + shell_quote(base_of(d)) + " " + shell_quote(tree) +
                               "\ncd " + shell_quote(tree) + "\ndpkg-buildpackage -us -uc -d -b\n";
    p.argv = {"/bin/sh", "-c", script};
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

std::unique_ptr<Backend> make_backend(const std::string& name) {
  if (name == "arch") return std::make_unique<ArchBackend>();
  if (name == "nixos" || name == "nix") return std::make_unique<NixBackend>();
  if (name == "suse") return std::make_unique<SuseBackend>();
  if (name == "proxmox" || name == "debian") return std::make_unique<DebianBackend>(name);
  return nullptr;
}

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
