// Arch backend: makepkg with the .BUILDINFO settings, on the host's
// toolchain or (--build-root archive) in a root made by pacman from the
// archive at the .BUILDINFO's installed versions (rebuilder/distros/arch).
#include "rebuilder/rebuild/backend.h"

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
#include "rebuilder/distros/arch/buildroot.h"

namespace kmr::build {
namespace {

namespace fs = std::filesystem;

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
    if (job.options.build_root == "archive") return archive_root(job, env);
    require_tools(m, {"makepkg", "fakeroot", "bsdtar", "zstd"});
    pkgbuild_missing(job, env, m);
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

  void pkgbuild_missing(const Job& job, const BuildEnvironment& env, std::vector<std::string>& m) {
    const std::string src = sources_dir(job, env);
    if (src.empty()) {
      m.push_back("packaging sources (PKGBUILD) for " + env.fields.at("pkgver") + " (use --sources)");
    } else if (env.fields.count("pkgbuild_sha256sum")) {
      const auto have = file_sha256_hex(src + "/PKGBUILD");
      if (have != env.fields.at("pkgbuild_sha256sum")) {
        m.push_back("PKGBUILD with sha256 " + env.fields.at("pkgbuild_sha256sum") + " (found " + have + " in " + src + ")");
      }
    }
  }

  // The toolchain from a root made by pacman from the archive at the
  // .BUILDINFO's installed versions: packages the archive lacks are missing;
  // any other failure (a bad signature) is the plan's error.
  std::vector<std::string> archive_root(const Job& job, const BuildEnvironment& env) {
    std::vector<std::string> m;
    require_tools(m, {"pacman"});
    if (!have_program("sqv") && !have_program("gpgv")) m.push_back("tool 'sqv' or 'gpgv' is not installed");
    pkgbuild_missing(job, env, m);
    if (!m.empty()) return m;
    if (job.options.progress) job.options.progress("making the build root from the archive (pacman)");
    auto root = arch::ensure_build_root(env, arch::root_options_from_env());
    if (!root) {
      if (root.error().code() == ErrorCode::kNotFound) return {"build root: " + root.error().message()};
      root_error_ = Error(root.error().code(), "build root: " + root.error().message());
      return m;
    }
    if (!root->missing.empty()) return root->missing;
    report_build_root(job, root->path, root->cached, root->duration);
    root_dir_ = root->path;
    return m;
  }

  Result<Plan> plan(const Job& job, const BuildEnvironment& env) override {
    if (root_error_) return *root_error_;
    Plan p;
    auto& s = p.sandbox;
    s.root_dir = root_dir_;
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

 private:
  std::string root_dir_;              // "" = the host's toolchain
  std::optional<Error> root_error_;   // making the archive root failed
};

std::unique_ptr<Backend> make_arch_backend(const std::string& /*name*/) { return std::make_unique<ArchBackend>(); }

}  // namespace

KMR_REGISTER_BACKEND(arch, make_arch_backend, "arch");

}  // namespace kmr::build
