#include "rebuilder/distros/arch/buildroot.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <sstream>

#include "rebuilder/archive/openpgp.h"
#include "rebuilder/base/file.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"
#include "rebuilder/base/subprocess.h"
#include "rebuilder/distros/common/root_cache.h"
#include "rebuilder/net/http_client.h"

namespace kmr::arch {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// Bumped when the way a root is made changes (invalidates the cache).
constexpr const char* kRecipe = "kmr-arch-buildroot-1 pacman -U --noscriptlet NoExtract=hooks";
constexpr std::size_t kMaxEntries = 4096;
constexpr std::uint64_t kMaxSig = std::uint64_t{64} * 1024;
constexpr std::size_t kMaxDesc = 1 << 20;

bool lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool alnum(char c) { return lower_alnum(c) || (c >= 'A' && c <= 'Z'); }
bool digit(char c) { return c >= '0' && c <= '9'; }

bool all_of(std::string_view s, bool (*ok)(char), std::string_view extra) {
  return !s.empty() && s.size() <= 256 &&
         std::all_of(s.begin(), s.end(), [&](char c) { return ok(c) || extra.find(c) != std::string_view::npos; });
}

// pacman's package name rules (libmakepkg/lint_pkgbuild/pkgname.sh).
bool valid_name(std::string_view n) { return all_of(n, lower_alnum, "@._+-") && n[0] != '-' && n[0] != '.'; }

// [epoch:]pkgver-pkgrel.
bool valid_version(std::string_view v) {
  const auto dash = v.rfind('-');
  if (dash == std::string_view::npos || dash == 0) return false;
  std::string_view ver = v.substr(0, dash);
  const std::string_view rel = v.substr(dash + 1);
  if (const auto colon = ver.find(':'); colon != std::string_view::npos) {
    if (!all_of(ver.substr(0, colon), digit, "")) return false;
    ver = ver.substr(colon + 1);
  }
  return all_of(ver, alnum, "._+~") && all_of(rel, digit, ".") && digit(rel[0]);
}

bool valid_arch(std::string_view a) { return all_of(a, alnum, "_"); }

std::string entry_of(const InstalledPackage& p) { return p.name + "-" + p.version + "-" + p.arch; }

// The package file and its signature in `dir`, or what the archive did not give.
struct Fetched {
  std::string file;  // "" when missing
  std::string sig;
  std::string url;
};

Result<Fetched> fetch_package(const net::HttpClient& client, const RootOptions& o, const InstalledPackage& p,
                              const std::string& dir, std::vector<std::string>& missing) {
  std::vector<std::string> tried;
  std::string why;
  for (const char* ext : {".pkg.tar.zst", ".pkg.tar.xz"}) {
    KMR_ASSIGN_OR_RETURN(auto url, archive_url(o.archive, p, ext));
    const std::string file = dir + "/" + entry_of(p) + ext;
    net::DownloadOptions d;
    d.max_bytes = o.max_package_bytes;
    auto got = client.download(url, file, d);
    if (!got) {
      if (got.error().code() == ErrorCode::kVerificationFailed || got.error().code() == ErrorCode::kLimitExceeded)
        return Error(ErrorCode::kVerificationFailed, entry_of(p) + ": " + got.error().message());
      tried.push_back(url);
      if (why.empty()) why = got.error().message();
      // Only a 404/410 means "not this compression"; anything else ends the search.
      if (got.error().code() != ErrorCode::kNotFound) break;
      continue;
    }
    net::DownloadOptions ds;
    ds.max_bytes = kMaxSig;
    auto sig = client.download(url + ".sig", file + ".sig", ds);
    if (!sig) {
      if (sig.error().code() == ErrorCode::kVerificationFailed || sig.error().code() == ErrorCode::kLimitExceeded)
        return Error(ErrorCode::kVerificationFailed, "signature of " + entry_of(p) + ": " + sig.error().message());
      missing.push_back("signature of " + entry_of(p) + ": " + sig.error().message());
      return Fetched{};
    }
    return Fetched{file, file + ".sig", url};
  }
  std::string also;
  for (std::size_t i = 1; i < tried.size(); ++i) also += (also.empty() ? " (also tried " : ", ") + tried[i];
  missing.push_back(entry_of(p) + ": " + why + (also.empty() ? "" : also + ")"));
  return Fetched{};
}

// pacman's configuration for the install: no repositories, no signature
// checking by pacman (done before, with the keyring), hooks not extracted
// (so none runs on the host), no scriptlets (--noscriptlet).
std::string pacman_conf() {
  return "[options]\n"
         "Architecture = auto\n"
         "SigLevel = Never\n"
         "LocalFileSigLevel = Never\n"
         "NoExtract = usr/share/libalpm/hooks/* etc/pacman.d/hooks/*\n";
}

}  // namespace

Result<std::vector<InstalledPackage>> pinned_packages(const std::vector<std::string>& installed) {
  if (installed.empty()) return not_found("the .BUILDINFO has no installed list: no build root can be pinned");
  if (installed.size() > kMaxEntries) return limit_exceeded("the .BUILDINFO lists more than " + std::to_string(kMaxEntries) + " installed packages");
  std::vector<InstalledPackage> out;
  std::set<std::string> seen;
  for (const auto& e : installed) {
    KMR_ASSIGN_OR_RETURN(auto p, parse_installed(e));
    if (!valid_name(p.name) || !valid_version(p.version) || !valid_arch(p.arch))
      return malformed("installed entry \"" + e.substr(0, 80) + "\" is not a pacman name-version-arch");
    if (!seen.insert(p.name).second) return malformed("installed lists " + p.name + " twice");
    out.push_back(std::move(p));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

RootOptions root_options_from_env() {
  RootOptions o;
  distros::option_from_env(o.archive, "KMR_ARCH_ARCHIVE");
  distros::option_from_env(o.keyring, "KMR_ARCH_KEYRING");
  distros::option_from_env(o.cache_dir, "KMR_BUILDROOT_CACHE");
  return o;
}

std::string root_key(const std::vector<InstalledPackage>& pinned, const std::string& keyring_sha256) {
  std::string text = std::string(kRecipe) + "\nkeyring " + keyring_sha256 + "\n";
  for (const auto& p : pinned) text += "pkg " + entry_of(p) + "\n";
  return sha256_hex(as_bytes(text));
}

Result<DescEntry> parse_desc(std::string_view text) {
  if (text.size() > kMaxDesc) return limit_exceeded("pacman desc larger than 1 MiB");
  DescEntry out;
  std::string key;
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    const std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
    if (line.size() > 4096) return limit_exceeded("pacman desc line longer than 4096 bytes");
    if (line.find('\0') != std::string_view::npos || line.find('\r') != std::string_view::npos)
      return malformed("pacman desc holds a NUL or CR byte");
    if (line.empty()) {
      key.clear();
      continue;
    }
    if (key.empty()) {
      const bool header = line.size() >= 3 && line.front() == '%' && line.back() == '%' &&
                          all_of(line.substr(1, line.size() - 2), [](char c) { return (c >= 'A' && c <= 'Z') || digit(c); }, "_");
      if (!header) return malformed("pacman desc: expected a %KEY% line, got \"" + std::string(line.substr(0, 40)) + "\"");
      key = std::string(line.substr(1, line.size() - 2));
      if (out.fields.count(key)) return malformed("pacman desc repeats %" + key + "%");
      if (out.fields.size() >= 64) return limit_exceeded("pacman desc has more than 64 sections");
      out.fields[key];
      continue;
    }
    out.fields[key].emplace_back(line);
  }
  auto one = [&](const char* k, std::string& to) -> Result<void> {
    const auto it = out.fields.find(k);
    if (it == out.fields.end() || it->second.size() != 1) return malformed(std::string("pacman desc needs exactly one %") + k + "%");
    to = it->second[0];
    return ok();
  };
  KMR_TRY(one("NAME", out.name));
  KMR_TRY(one("VERSION", out.version));
  KMR_TRY(one("ARCH", out.arch));
  return out;
}

Result<std::vector<std::string>> compare_installed(const std::string& root, const std::vector<InstalledPackage>& pinned) {
  const std::string local = root + "/var/lib/pacman/local";
  std::map<std::string, std::pair<std::string, std::string>> have;  // name -> (version, arch)
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(local, ec)) {
    if (!e.is_directory()) continue;
    KMR_ASSIGN_OR_RETURN(auto text, read_text_file(e.path().string() + "/desc", kMaxDesc));
    auto d = parse_desc(text);
    if (!d) return Error(d.error().code(), e.path().string() + "/desc: " + d.error().message());
    if (e.path().filename().string() != d->name + "-" + d->version)
      return malformed(e.path().string() + " holds " + d->name + " " + d->version);
    have[d->name] = {d->version, d->arch};
  }
  if (ec) return io_error("cannot read " + local + ": " + ec.message());
  // pacman's own reading of the same database must agree.
  SubprocessOptions o;
  o.timeout = std::chrono::minutes(2);
  KMR_ASSIGN_OR_RETURN(auto q, run_subprocess({"pacman", "--root", root, "--dbpath", root + "/var/lib/pacman", "--color", "never", "-Q"}, o));
  if (!q.success() && !have.empty()) return io_error("pacman -Q --root " + root + " failed: " + q.err.substr(0, 500));
  std::map<std::string, std::string> by_pacman;
  std::istringstream in(q.out);
  for (std::string n, v; in >> n >> v;) by_pacman[n] = v;
  std::vector<std::string> diff;
  for (const auto& [n, va] : have) {
    const auto it = by_pacman.find(n);
    if (it == by_pacman.end() || it->second != va.first)
      diff.push_back(n + ": pacman -Q says " + (it == by_pacman.end() ? "not installed" : it->second) + ", its desc " + va.first);
  }
  for (const auto& [n, v] : by_pacman) {
    if (!have.count(n)) diff.push_back(n + ": pacman -Q says " + v + ", no desc");
  }
  std::set<std::string> names;
  for (const auto& p : pinned) {
    names.insert(p.name);
    const auto it = have.find(p.name);
    if (it == have.end()) {
      diff.push_back("missing " + entry_of(p));
      continue;
    }
    if (it->second.first != p.version) diff.push_back(p.name + " installed at " + it->second.first + " (pinned " + p.version + ")");
    if (it->second.second != p.arch) diff.push_back(p.name + " arch " + it->second.second + " (pinned " + p.arch + ")");
  }
  for (const auto& [n, va] : have) {
    if (!names.count(n)) diff.push_back("extra " + n + "-" + va.first + "-" + va.second);
  }
  return diff;
}

Result<BuildRoot> ensure_build_root(const build::BuildEnvironment& env, const RootOptions& options) {
  const auto start = Clock::now();
  KMR_ASSIGN_OR_RETURN(auto pinned, pinned_packages(env.installed));
  std::error_code ec;
  if (!fs::is_regular_file(options.keyring, ec))
    return not_found("packager keyring " + options.keyring + " (install archlinux-keyring or set KMR_ARCH_KEYRING)");
  KMR_ASSIGN_OR_RETURN(auto keyring_digest, sha256_file(options.keyring));
  BuildRoot out;
  out.key = root_key(pinned, to_hex(keyring_digest));
  const distros::RootCheck check = [&](const std::string& root) { return compare_installed(root, pinned); };
  auto done = [&](BuildRoot& r) {
    r.duration = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
    return r;
  };
  KMR_ASSIGN_OR_RETURN(auto entry, distros::open_build_root(options.cache_dir, out, check));
  if (out.cached) return done(out);
  KMR_ASSIGN_OR_RETURN(const std::string tmp, entry.scratch());
  // The downloaded packages, removed whatever happens.
  const std::string dl = entry.path() + ".pkgs-" + std::to_string(::getpid());
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      std::error_code e;
      fs::remove_all(dir, e);
    }
  } cleanup{dl};
  fs::remove_all(dl, ec);
  for (const auto& d : {dl + "/hooks", dl + "/gnupg", tmp + "/var/lib/pacman", tmp + "/var/cache/pacman/pkg", tmp + "/var/log"}) {
    fs::create_directories(d, ec);
    if (ec) return io_error("cannot create " + d + ": " + ec.message());
  }
  KMR_ASSIGN_OR_RETURN(net::HttpClient client, net::HttpClient::create(net::options_with_deadline(options.timeout)));
  std::vector<Fetched> files;
  for (const auto& p : pinned) {
    KMR_ASSIGN_OR_RETURN(auto f, fetch_package(client, options, p, dl, out.missing));
    if (!f.file.empty()) files.push_back(std::move(f));
  }
  if (!out.missing.empty()) return done(out);
  for (const auto& f : files) {
    KMR_ASSIGN_OR_RETURN(auto v, archive::verify_detached(options.keyring, f.sig, f.file));
    if (!v.valid) {
      return Error(ErrorCode::kVerificationFailed, "bad signature: " + fs::path(f.file).filename().string() + ".sig (" + f.url +
                                                       ".sig) does not verify with " + options.keyring + " (" + v.verifier +
                                                       "): " + v.output.substr(0, 500));
    }
  }
  KMR_TRY(write_file_atomic(dl + "/pacman.conf", as_bytes(pacman_conf())));
  std::vector<std::string> argv;
  // pacman extracts as root; without root, in a user namespace mapping the
  // caller to root (files end up owned by the caller).
  if (::geteuid() != 0) argv = {"unshare", "--user", "--map-root-user", "--"};
  for (const std::string& a : std::initializer_list<std::string>{
           "pacman", "--config", dl + "/pacman.conf", "--root", tmp, "--dbpath", tmp + "/var/lib/pacman", "--cachedir", dl,
        "--gpgdir", dl + "/gnupg", "--hookdir", dl + "/hooks", "--logfile", dl + "/pacman.log", "--noconfirm",
        "--noscriptlet", "--noprogressbar", "--color", "never", "-U"}) {
    argv.push_back(a);
  }
  for (const auto& f : files) argv.push_back(f.file);
  SubprocessOptions o;
  o.timeout = options.timeout;
  o.merge_stderr = true;
  o.env = std::vector<std::string>{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"};
  KMR_ASSIGN_OR_RETURN(auto r, run_subprocess(argv, o));
  out.log = r.out;
  if (!r.success()) {
    return io_error("pacman -U into " + tmp + " failed (" + r.describe() + "):\n  " +
                    r.out.substr(r.out.size() > 2000 ? r.out.size() - 2000 : 0));
  }
  KMR_TRY(entry.commit(check, "the build root made by pacman", "the .BUILDINFO's installed list"));
  out.path = entry.path();
  return done(out);
}

}  // namespace kmr::arch
