#include "rebuilder/distros/debian/buildroot.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "rebuilder/base/file.h"
#include "rebuilder/base/sha256.h"
#include "rebuilder/base/subprocess.h"
#include "rebuilder/distros/common/root_cache.h"

namespace kmr::debian {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr const char* kMergedUsrHooks = "/usr/share/mmdebstrap/hooks/merged-usr";

// Bumped when the way a root is made changes (invalidates the cache).
constexpr const char* kRecipe = "kmr-debian-buildroot-2 mmdebstrap --variant=essential merged-usr hook";

// Debian policy syntax: lower-case alphanumerics (and upper-case when
// `upper`) plus `extra`; the first character alphanumeric when `first_alnum`.
bool chars_ok(const std::string& s, const char* extra, bool first_alnum, bool upper = false) {
  if (s.empty() || s.size() > 200) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (upper && c >= 'A' && c <= 'Z')) continue;
    if ((i == 0 && first_alnum) || c == '\0' || !std::strchr(extra, c)) return false;
  }
  return true;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (auto at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
  return s;
}

// "Wed, 02 Dec 2026 08:04:33 +0000" -> "20261202T080433Z" ("" if unparsable).
std::string snapshot_stamp(const std::string& build_date) {
  std::tm tm{};
  const char* end = ::strptime(build_date.c_str(), "%a, %d %b %Y %H:%M:%S %z", &tm);
  if (!end) return "";
  const long offset = tm.tm_gmtoff;
  std::time_t t = ::timegm(&tm) - offset;
  std::tm utc{};
  ::gmtime_r(&t, &utc);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &utc);
  return buf;
}

std::string host_codename() {
  auto text = read_text_file("/etc/os-release", 1 << 16);
  if (!text) return "";
  std::istringstream in(*text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VERSION_CODENAME=", 0) == 0) {
      std::string v = line.substr(17);
      v.erase(std::remove(v.begin(), v.end(), '"'), v.end());
      return chars_ok(v, "-", true) ? v : "";
    }
  }
  return "";
}

std::string host_arch() {
  auto r = run_subprocess({"dpkg", "--print-architecture"});
  if (!r || !r->success()) return "amd64";
  std::string a = r->out;
  while (!a.empty() && (a.back() == '\n' || a.back() == ' ')) a.pop_back();
  return a;
}

// Missing NAME=VERSION from apt's "E: Version 'V' for 'N' was not found"
// and "E: Unable to locate package N" lines.
std::vector<std::string> apt_missing(const std::string& log) {
  std::vector<std::string> out;
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);) {
    const std::string ver = "E: Version '";
    if (line.rfind(ver, 0) == 0) {
      const auto v_end = line.find('\'', ver.size());
      const auto n_at = line.find("' for '", ver.size());
      if (v_end == std::string::npos || n_at != v_end) continue;
      const auto n_end = line.find('\'', n_at + 7);
      if (n_end == std::string::npos) continue;
      out.push_back(line.substr(n_at + 7, n_end - n_at - 7) + "=" + line.substr(ver.size(), v_end - ver.size()));
    } else if (line.rfind("E: Unable to locate package ", 0) == 0) {
      out.push_back(line.substr(28));
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// apt's and mmdebstrap's error lines (each cut to 300 bytes, at most 40).
std::string apt_errors(const std::string& log) {
  std::string out;
  int n = 0;
  std::istringstream in(log);
  for (std::string line; std::getline(in, line) && n < 40;) {
    const bool relevant = line.rfind("E: ", 0) == 0 || line.rfind("W: ", 0) == 0 || line.find(" : Depends: ") != std::string::npos ||
                          line.find(" : Breaks: ") != std::string::npos || line.find(" : Conflicts: ") != std::string::npos;
    if (!relevant) continue;
    out += "\n  " + line.substr(0, 300);
    ++n;
  }
  return out.empty() ? "\n  " + log.substr(log.size() > 2000 ? log.size() - 2000 : 0) : out;
}

}  // namespace

Result<std::vector<PinnedPackage>> pinned_packages(const build::BuildEnvironment& env) {
  std::vector<PinnedPackage> out;
  std::set<std::string> seen;
  for (const auto& entry : env.installed) {
    const auto eq = entry.find('=');
    if (eq == std::string::npos) return malformed("Installed-Build-Depends entry without a version: '" + entry.substr(0, 80) + "'");
    PinnedPackage p;
    p.name = entry.substr(0, eq);
    p.version = entry.substr(eq + 1);
    if (const auto colon = p.name.find(':'); colon != std::string::npos) {
      p.arch = p.name.substr(colon + 1);
      p.name = p.name.substr(0, colon);
      if (!chars_ok(p.arch, "-", true)) return malformed("Installed-Build-Depends: invalid architecture in '" + entry.substr(0, 80) + "'");
    }
    if (!chars_ok(p.name, "+.-", true)) return malformed("Installed-Build-Depends: invalid package name in '" + entry.substr(0, 80) + "'");
    if (!chars_ok(p.version, ".+~:-", false, true) || !std::isdigit(static_cast<unsigned char>(p.version[0]))) {
      return malformed("Installed-Build-Depends: invalid version in '" + entry.substr(0, 80) + "'");
    }
    if (!seen.insert(p.name + ":" + p.arch).second) return malformed("Installed-Build-Depends lists " + p.name + " twice");
    out.push_back(std::move(p));
  }
  if (out.empty()) return not_found("the .buildinfo has no Installed-Build-Depends: no build root can be pinned");
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name + ":" + a.arch < b.name + ":" + b.arch; });
  return out;
}

ArchiveOptions archive_options_from_env() {
  ArchiveOptions o;
  distros::option_from_env(o.mirror, "KMR_DEBIAN_MIRROR");
  distros::option_from_env(o.security_mirror, "KMR_DEBIAN_SECURITY_MIRROR");
  distros::option_from_env(o.suite, "KMR_DEBIAN_SUITE");
  distros::option_from_env(o.cache_dir, "KMR_BUILDROOT_CACHE");
  return o;
}

std::string suite_for(const std::vector<PinnedPackage>& pinned) {
  static const std::map<std::string, std::string> kByMajor = {
      {"10", "buster"}, {"11", "bullseye"}, {"12", "bookworm"}, {"13", "trixie"}, {"14", "forky"}};
  for (const auto& p : pinned) {
    if (p.name != "base-files") continue;
    const auto it = kByMajor.find(p.version.substr(0, p.version.find_first_of(".+")));
    if (it != kByMajor.end()) return it->second;
  }
  return host_codename();
}

std::vector<std::string> apt_sources(const ArchiveOptions& o, const std::string& suite, const std::string& build_date) {
  const std::string stamp = snapshot_stamp(build_date);
  auto expand = [&](const std::string& tmpl) {
    return replace_all(replace_all(tmpl, "{suite}", suite), "{build_date}", stamp);
  };
  std::vector<std::string> out = {"deb " + expand(o.mirror) + " " + suite + " " + o.components,
                                  "deb " + expand(o.mirror) + " " + suite + "-updates " + o.components};
  if (!o.security_mirror.empty()) out.push_back("deb " + expand(o.security_mirror) + " " + suite + "-security " + o.components);
  return out;
}

std::vector<std::string> packages_index_urls(const std::vector<std::string>& sources, const std::string& arch) {
  std::vector<std::string> out;
  for (const auto& s : sources) {
    std::istringstream in(s);
    std::string deb, url, suite, component;
    in >> deb >> url >> suite;
    while (in >> component) out.push_back(url + "/dists/" + suite + "/" + component + "/binary-" + arch + "/Packages.xz");
  }
  return out;
}

std::string root_key(const std::vector<PinnedPackage>& pinned, const std::vector<std::string>& sources,
                     const std::string& suite, const std::string& arch) {
  std::string text = std::string(kRecipe) + "\nsuite " + suite + "\narch " + arch + "\n";
  for (const auto& s : sources) text += "source " + s + "\n";
  for (const auto& p : pinned) text += "pkg " + p.spec() + "\n";
  return sha256_hex(as_bytes(text));
}

Result<std::vector<std::string>> compare_installed(const std::string& root, const std::vector<PinnedPackage>& pinned,
                                                   const std::string& build_arch) {
  SubprocessOptions o;
  o.timeout = std::chrono::minutes(2);
  KMR_ASSIGN_OR_RETURN(auto q, run_subprocess({"dpkg-query", "--admindir=" + root + "/var/lib/dpkg", "-W", "-f",
                                               "${Package} ${Version} ${Architecture} ${db:Status-Abbrev}\n"},
                                              o));
  if (!q.success()) return io_error("dpkg-query in " + root + " failed: " + q.err);
  std::map<std::string, std::pair<std::string, std::string>> have;  // name -> (version, arch)
  std::istringstream in(q.out);
  for (std::string line; std::getline(in, line);) {
    std::istringstream w(line);
    std::string n, v, a, st;
    w >> n >> v >> a >> st;
    if (st.size() >= 2 && st[1] == 'i') have[n] = {v, a};
  }
  std::vector<std::string> diff;
  std::set<std::string> pinned_names;
  for (const auto& p : pinned) {
    pinned_names.insert(p.name);
    const auto it = have.find(p.name);
    if (it == have.end()) {
      diff.push_back("missing " + p.spec());
      continue;
    }
    const auto& [v, a] = it->second;
    if (v != p.version) diff.push_back(p.name + " installed at " + v + " (pinned " + p.version + ")");
    const bool arch_ok = p.arch.empty() ? (a == build_arch || a == "all") : a == p.arch;
    if (!arch_ok) diff.push_back(p.name + " arch " + a + " (pinned " + (p.arch.empty() ? build_arch + " or all" : p.arch) + ")");
  }
  for (const auto& [n, va] : have) {
    if (!pinned_names.count(n)) diff.push_back("extra " + n + "=" + va.first + " (" + va.second + ")");
  }
  return diff;
}

Result<BuildRoot> ensure_build_root(const build::BuildEnvironment& env, const ArchiveOptions& options) {
  const auto start = Clock::now();
  KMR_ASSIGN_OR_RETURN(auto pinned, pinned_packages(env));
  const std::string suite = options.suite.empty() ? suite_for(pinned) : options.suite;
  if (suite.empty() || !chars_ok(suite, "-", true)) return not_found("cannot tell the Debian suite of the .buildinfo (set KMR_DEBIAN_SUITE)");
  auto field = [&env](const char* k) { return env.fields.count(k) ? env.fields.at(k) : std::string(); };
  std::string arch = field("Build-Architecture");
  if (arch.empty()) arch = host_arch();
  if (!chars_ok(arch, "-", true)) return malformed(".buildinfo Build-Architecture '" + arch.substr(0, 40) + "' is invalid");
  const auto sources = apt_sources(options, suite, field("Build-Date"));
  BuildRoot out;
  out.key = root_key(pinned, sources, suite, arch);
  const distros::RootCheck check = [&](const std::string& root) { return compare_installed(root, pinned, arch); };
  auto done = [&](BuildRoot& r) {
    r.duration = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
    return r;
  };
  KMR_ASSIGN_OR_RETURN(auto entry, distros::open_build_root(options.cache_dir, out, check));
  if (out.cached) return done(out);
  // mmdebstrap wants a directory that does not exist or is empty.
  KMR_ASSIGN_OR_RETURN(const std::string tmp, entry.scratch());
  std::string include;
  for (const auto& p : pinned) include += (include.empty() ? "" : ",") + p.spec();
  std::vector<std::string> argv = {"mmdebstrap", ::geteuid() == 0 ? "--mode=root" : "--mode=unshare", "--variant=essential",
                                   "--architectures=" + arch, "--include=" + include, "--aptopt=Acquire::Retries \"3\"",
                                   // The essential stage installs the archive's newest versions;
                                   // an older pinned one replaces it.
                                   "--aptopt=APT::Get::allow-downgrades \"true\"",
                                   suite, tmp};
  // merged /usr through mmdebstrap's own hook (as debootstrap does it), so
  // apt does not pull usrmerge and its Perl dependencies into the root
  // unless the .buildinfo pins usrmerge itself.
  std::error_code ec;
  const bool pins_usrmerge = std::any_of(pinned.begin(), pinned.end(), [](const auto& p) { return p.name == "usrmerge"; });
  if (!pins_usrmerge && fs::is_directory(kMergedUsrHooks, ec)) argv.insert(argv.begin() + 3, std::string("--hook-dir=") + kMergedUsrHooks);
  argv.insert(argv.end(), sources.begin(), sources.end());
  SubprocessOptions o;
  o.timeout = options.timeout;
  o.merge_stderr = true;
  auto r = run_subprocess(argv, o);
  if (!r) return r.error();
  out.log = r->out;
  if (!r->success()) {
    const auto urls = packages_index_urls(sources, arch);
    std::string tried;
    for (const auto& u : urls) tried += (tried.empty() ? "" : ", ") + u;
    for (const auto& m : apt_missing(r->out)) out.missing.push_back(m + " (not in " + tried + ")");
    if (!out.missing.empty()) return done(out);
    return io_error("mmdebstrap failed (" + r->describe() + "):" + apt_errors(r->out));
  }
  KMR_TRY(entry.commit(check, "the build root made by mmdebstrap", "the .buildinfo's Installed-Build-Depends"));
  out.path = entry.path();
  return done(out);
}

}  // namespace kmr::debian
