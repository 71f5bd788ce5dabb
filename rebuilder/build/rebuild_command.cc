// kmr rebuild [--json] [--backend B] [--sources LOCATION] [--keep] [--timeout SECONDS] [--out DIR] PACKAGE...
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "rebuilder/build/rebuild.h"
#include "rebuilder/base/command.h"

namespace kmr::build {
namespace {

constexpr const char* kUsage =
    "Usage: kmr rebuild [--json] [--backend B] [--sources LOCATION] [--keep] [--timeout SECONDS]\n"
    "                   [--work-dir DIR] [--out DIR] [--build-root host|archive]\n"
    "                   [--repository URL --repository-key KEYRING [--buildinfo-url TEMPLATE]] PACKAGE...\n\n"
    "Rebuilds shipped kernel packages with the distro's own tool in a bubblewrap sandbox\n"
    "(no network, read-only host, pinned path/user/host/locale/time) using the environment\n"
    "recorded in the package (.BUILDINFO, .buildinfo, RPM header, narinfo Deriver), then\n"
    "compares: module_root (match|mismatch|absent|invalid) and files (identical |\n"
    "content-identical | identical-modulo-signatures | different).\n\n"
    "  PACKAGE          .pkg.tar.* (arch), .rpm (suse), .deb (proxmox/debian), .narinfo (nixos);\n"
    "                   several packages of one build (linux + linux-headers; out + modules + dev)\n"
    "  --backend B      arch | nixos | suse | proxmox | debian (default: from the package type)\n"
    "  --sources LOC    look for sources here first (PKGBUILD dir, .src.rpm, .dsc + .buildinfo dir)\n"
    "  --keep           keep the work directory (printed)\n"
    "  --timeout S      wall-time limit of the build (default 14400)\n"
    "  --work-dir DIR   work root (default $KMR_REBUILD_DIR or /var/tmp/kmr-rebuild); logs in DIR/logs\n"
    "  --out DIR        copy the rebuilt package files into DIR, each named like the file it\n"
    "                   rebuilds (rebuilderd's $REBUILDERD_OUTDIR contract)\n"
    "  --build-root R   Debian/Proxmox toolchain: host (default) or archive: a root made by\n"
    "                   mmdebstrap from Debian's archive at the .buildinfo's exact versions\n"
    "                   ($KMR_DEBIAN_MIRROR, $KMR_DEBIAN_SUITE, cache $KMR_BUILDROOT_CACHE)\n"
    "  --repository URL Debian/Proxmox without --sources: the package's apt repository as its\n"
    "                   .../dists/<suite>/InRelease (or Release + Release.gpg) URL; the .dsc, its\n"
    "                   files and the .buildinfo are fetched from it and verified (https: the system\n"
    "                   trust store, or $SSL_CERT_FILE)\n"
    "  --repository-key KEYRING  OpenPGP keyring the repository's Release must verify with\n"
    "  --buildinfo-url T  .buildinfo URL template ({source} {source_c} {version} {source_version}\n"
    "                   {arch}); default https://buildinfos.debian.net/buildinfo-pool/{source_c}/\n"
    "                   {source}/{source}_{version}_{arch}.buildinfo\n"
    "  --json           machine-readable result on stdout\n\n"
    "Exit: 0 reproducible (identical or content-identical, module_root match or absent),\n"
    "1 not reproducible / build-failed / environment-unavailable, 2 error.\n";

// Copies every rebuilt file into `dir` under its own base name. Only regular
// files with plain names are copied; anything else is an error.
bool copy_rebuilt(const RebuildReport& rep, const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    std::fprintf(stderr, "kmr rebuild: --out %s: %s\n", dir.c_str(), ec.message().c_str());
    return false;
  }
  for (const auto& f : rep.rebuilt) {
    struct stat st;
    if (f.name.empty() || f.name == "." || f.name == ".." || f.name.find('/') != std::string::npos ||
        ::lstat(f.path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      std::fprintf(stderr, "kmr rebuild: --out: refusing rebuilt file '%s'\n", f.name.c_str());
      return false;
    }
    fs::copy_file(f.path, dir + "/" + f.name, fs::copy_options::overwrite_existing, ec);
    if (ec) {
      std::fprintf(stderr, "kmr rebuild: --out: %s: %s\n", f.name.c_str(), ec.message().c_str());
      return false;
    }
  }
  return true;
}

int run(const std::vector<std::string>& args) {
  RebuildOptions o;
  bool json = false;
  std::string out_dir;
  std::vector<std::string> files;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](const char* flag) -> const std::string* {
      if (i + 1 >= args.size()) {
        std::fprintf(stderr, "kmr rebuild: %s needs a value\n", flag);
        return nullptr;
      }
      return &args[++i];
    };
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return cli::kExitOk;
    } else if (a == "--json") {
      json = true;
    } else if (a == "--keep") {
      o.keep = true;
    } else if (a == "--backend" || a == "--sources" || a == "--timeout" || a == "--work-dir" || a == "--out" ||
               a == "--build-root" || a == "--repository" || a == "--repository-key" || a == "--buildinfo-url") {
      const std::string* v = value(a.c_str());
      if (!v) return cli::kExitError;
      if (a == "--backend") o.backend = *v;
      if (a == "--sources") o.sources = *v;
      if (a == "--work-dir") o.work_root = *v;
      if (a == "--out") out_dir = *v;
      if (a == "--repository") o.repository = *v;
      if (a == "--repository-key") o.repository_keyring = *v;
      if (a == "--buildinfo-url") o.buildinfo_template = *v;
      if (a == "--build-root") {
        if (*v != "host" && *v != "archive") {
          std::fprintf(stderr, "kmr rebuild: --build-root: host or archive, not '%s'\n", v->c_str());
          return cli::kExitError;
        }
        o.build_root = *v;
      }
      if (a == "--timeout") {
        char* end = nullptr;
        const long long s = std::strtoll(v->c_str(), &end, 10);
        if (!end || *end || s <= 0) {
          std::fprintf(stderr, "kmr rebuild: --timeout: not a positive number of seconds: '%s'\n", v->c_str());
          return cli::kExitError;
        }
        o.timeout = std::chrono::seconds(s);
      }
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "kmr rebuild: unknown option %s\n%s", a.c_str(), kUsage);
      return cli::kExitError;
    } else {
      files.push_back(a);
    }
  }
  if (files.empty()) {
    std::fputs(kUsage, stderr);
    return cli::kExitError;
  }
  if (!o.repository.empty() && o.repository_keyring.empty()) {
    std::fprintf(stderr, "kmr rebuild: --repository needs --repository-key (the keyring its Release must verify with)\n");
    return cli::kExitError;
  }
  if (::isatty(2) || std::getenv("KMR_PROGRESS")) {
    const auto t0 = std::chrono::steady_clock::now();
    o.progress = [t0](const std::string& line) {
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
      std::fprintf(stderr, "kmr rebuild: [%6lld ms] %s\n", static_cast<long long>(ms), line.c_str());
    };
  }
  const RebuildReport rep = rebuild(files, o);
  if (!out_dir.empty() && !copy_rebuilt(rep, out_dir)) return cli::kExitError;
  if (json) {
    std::cout << rep.to_json().dump(2) << "\n";
    return rep.exit_code();
  }
  std::printf("backend:      %s\n", rep.backend.c_str());
  if (rep.status == RebuildStatus::kVerdict) {
    std::printf("files:        %s\n", std::string(files_tier_name(rep.files.tier)).c_str());
    for (const auto& d : rep.files.differing) std::printf("  differs:    %s\n", d.c_str());
  } else {
    std::printf("status:       %s\nreason:       %s\n", std::string(rebuild_status_name(rep.status)).c_str(), rep.reason.c_str());
    for (const auto& m : rep.missing) std::printf("  missing:    %s\n", m.c_str());
  }
  if (rep.status == RebuildStatus::kVerdict || rep.module_root.verdict == ModuleRoot::kInvalid) {
    std::printf("module_root:  %s\n", std::string(module_root_name(rep.module_root.verdict)).c_str());
    if (rep.module_root.shipped) std::printf("  shipped:    %s (levels %u)\n", root_hex(rep.module_root.shipped).c_str(), rep.module_root.shipped->levels);
    if (rep.module_root.rebuilt) std::printf("  rebuilt:    %s\n", root_hex(rep.module_root.rebuilt).c_str());
    if (!rep.module_root.note.empty()) std::printf("  note:       %s\n", rep.module_root.note.c_str());
    for (const auto& i : rep.module_root.invalid) std::printf("  invalid:    %s: %s\n", i.module.c_str(), i.reason.c_str());
  }
  std::printf("environment:  %s\n", rep.environment.digest().c_str());
  if (!rep.log.empty()) std::printf("log:          %s\n", rep.log.c_str());
  if (!rep.work_dir.empty()) std::printf("work dir:     %s\n", rep.work_dir.c_str());
  std::printf("duration:     %lld ms (build %lld ms)\n", static_cast<long long>(rep.duration.count()),
              static_cast<long long>(rep.build_duration.count()));
  return rep.exit_code();
}

}  // namespace
}  // namespace kmr::build

KMR_REGISTER_COMMAND(rebuild, "rebuild", "rebuild packages in a pinned sandbox and compare (module root, files)",
                     kmr::build::run);
