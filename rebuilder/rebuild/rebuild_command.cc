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

#include "rebuilder/rebuild/rebuild.h"
#include "rebuilder/base/command.h"
#include "rebuilder/base/flags.h"

namespace kmr::build {
namespace {

constexpr const char* kDescription =
    "Rebuilds shipped kernel packages with the distro's own tool in a bubblewrap sandbox\n"
    "(no network, read-only host, pinned path/user/host/locale/time) using the environment\n"
    "recorded in the package (.BUILDINFO, .buildinfo, RPM header, narinfo Deriver), then\n"
    "compares: module_root (match|mismatch|absent|invalid) and files (identical |\n"
    "content-identical | identical-modulo-signatures | different).\n\n"
    "PACKAGE: .pkg.tar.* (arch), .rpm (suse), .deb (proxmox/debian), .narinfo (nixos);\n"
    "several packages of one build (linux + linux-headers; out + modules + dev).";

constexpr std::int64_t kMaxTimeoutSeconds = 365 * 24 * 3600;

constexpr const char* kExit =
    "Exit: 0 reproducible (identical or content-identical, module_root match or absent),\n"
    "1 not reproducible / build-failed / environment-unavailable, 2 error.";

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

// The report as text, one "key: value" line per fact.
void print_report(const RebuildReport& rep) {
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
}

int run(const std::vector<std::string>& args) {
  RebuildOptions o;
  bool json = false;
  std::string out_dir;
  std::vector<std::string> files;
  std::int64_t timeout_s = 0;
  cli::FlagParser p("kmr rebuild",
                    "[--json] [--backend B] [--sources LOCATION] [--keep] [--timeout SECONDS]\n"
                    "                   [--work-dir DIR] [--out DIR] [--build-root host|archive]\n"
                    "                   [--repository URL --repository-key KEYRING [--buildinfo-url TEMPLATE]] PACKAGE...",
                    kDescription);
  p.string("--backend", "B", &o.backend, "arch | nixos | suse | proxmox | debian (default: from the package type)")
      .string("--sources", "LOC", &o.sources,
              "look for sources here first (PKGBUILD dir, .src.rpm, .dsc + .buildinfo dir)")
      .boolean("--keep", &o.keep, "keep the work directory (printed)")
      .integer("--timeout", "S", &timeout_s, 1, kMaxTimeoutSeconds,
               "wall-time limit of the build in seconds (default 14400)")
      .string("--work-dir", "DIR", &o.work_root,
              "work root (default $KMR_REBUILD_DIR or /var/tmp/kmr-rebuild); logs in DIR/logs")
      .string("--out", "DIR", &out_dir,
              "copy the rebuilt package files into DIR, each named like the file it\n"
              "rebuilds (rebuilderd's $REBUILDERD_OUTDIR contract)")
      .each("--build-root", "R",
            [&o](const std::string& v) -> Result<void> {
              if (v != "host" && v != "archive") return malformed("host or archive, not '" + cli::printable_arg(v) + "'");
              o.build_root = v;
              return ok();
            },
            "Debian/Proxmox/Arch toolchain: host (default) or archive: a root made by\n"
            "mmdebstrap from Debian's archive at the .buildinfo's exact versions\n"
            "($KMR_DEBIAN_MIRROR, $KMR_DEBIAN_SUITE), or for Arch by pacman from the\n"
            "signed archive at the .BUILDINFO's installed versions ($KMR_ARCH_ARCHIVE\n"
            "URL template, $KMR_ARCH_KEYRING), or for SUSE an rpm root from the signed\n"
            "rpm-md repository $KMR_SUSE_MIRROR (key $KMR_SUSE_REPO_KEY) at a _buildenv's\n"
            "versions (in --sources) or the source RPM's BuildRequires resolved;\n"
            "cache $KMR_BUILDROOT_CACHE")
      .string("--repository", "URL", &o.repository,
              "Debian/Proxmox without --sources: the package's apt repository as its\n"
              ".../dists/<suite>/InRelease (or Release + Release.gpg) URL; the .dsc, its\n"
              "files and the .buildinfo are fetched from it and verified (https: the system\n"
              "trust store, or $SSL_CERT_FILE). NixOS: the binary cache (https://cache.nixos.org,\n"
              "a mirror, file:///dir) the .drv and the inputs' outputs are substituted from,\n"
              "verified; the outputs being rebuilt never come from it")
      .string("--repository-key", "KEYRING", &o.repository_keyring,
              "OpenPGP keyring the repository's Release must verify with; NixOS: the\n"
              "cache's trusted public keys (name:base64, or a file of them)")
      .string("--buildinfo-url", "T", &o.buildinfo_template,
              ".buildinfo URL template ({source} {source_c} {version} {source_version}\n"
              "{arch}); default https://buildinfos.debian.net/buildinfo-pool/{source_c}/\n"
              "{source}/{source}_{version}_{arch}.buildinfo")
      .boolean("--json", &json, "machine-readable result on stdout")
      .positionals("PACKAGE", &files, 1, cli::kUnlimited)
      .epilogue(kExit);
  if (auto code = p.parse_or_exit(args)) return *code;
  if (timeout_s > 0) o.timeout = std::chrono::seconds(timeout_s);
  if (!o.repository.empty() && o.repository_keyring.empty())
    return p.usage_error("--repository needs --repository-key (the keyring its Release must verify with)");
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
  print_report(rep);
  return rep.exit_code();
}

}  // namespace
}  // namespace kmr::build

KMR_REGISTER_COMMAND(rebuild, "rebuild", "rebuild packages in a pinned sandbox and compare (module root, files)",
                     kmr::build::run);
