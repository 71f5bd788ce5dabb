#include "rebuilder/distros/suse/buildroot.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "rebuilder/archive/decompress.h"
#include "rebuilder/archive/openpgp.h"
#include "rebuilder/archive/rpmmd.h"
#include "rebuilder/base/file.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"
#include "rebuilder/base/subprocess.h"
#include "rebuilder/distros/common/root_cache.h"
#include "rebuilder/net/http_client.h"

namespace kmr::suse {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kRecipe = "kmr suse build root v1";
constexpr std::size_t kMaxPackages = 1'000'000;
constexpr std::size_t kMaxDeps = 100'000;
constexpr std::size_t kMaxField = 4096;
constexpr std::size_t kMaxPinned = 20'000;
constexpr std::uint64_t kMaxRepomd = 4u << 20;
constexpr std::uint64_t kMaxPrimary = 1ull << 30;  // decompressed
constexpr std::uint64_t kMaxPackageBytes = 4ull << 30;

bool chars_in(std::string_view s, std::string_view extra) {
  return std::all_of(s.begin(), s.end(), [&](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || extra.find(c) != std::string_view::npos;
  });
}
// rpm package names and version parts as argv values: no '-' first, no blanks.
bool rpm_name_ok(std::string_view s) { return !s.empty() && s.size() <= 255 && s[0] != '-' && chars_in(s, "._+-"); }
bool rpm_ver_ok(std::string_view s) { return !s.empty() && s.size() <= 255 && chars_in(s, "._+~^"); }
bool epoch_ok(std::string_view s) { return s.empty() || (s.size() <= 10 && chars_in(s, "") && std::all_of(s.begin(), s.end(), ::isdigit)); }

std::string attr(const std::map<std::string, std::string>& a, const char* k) {
  auto it = a.find(k);
  return it == a.end() ? std::string() : it->second;
}

std::string evr_of(const std::string& e, const std::string& v, const std::string& r) {
  return (e.empty() ? "0" : e) + ":" + v + "-" + r;
}

Result<Digest256> digest_of(const std::string& hex) {
  auto raw = from_hex(hex);
  if (!is_sha256_hex(hex) || !raw || raw->size() != 32) return malformed("not a sha256: " + hex.substr(0, 80));
  Digest256 d{};
  std::copy(raw->begin(), raw->end(), d.begin());
  return d;
}

}  // namespace

std::string RepoPackage::evr() const { return evr_of(epoch, version, release); }
std::string RepoPackage::nevra() const { return name + "-" + evr() + "." + arch; }
std::string PinnedRpm::evr() const { return evr_of(epoch, version, release); }
std::string PinnedRpm::nevra() const { return name + "-" + evr() + "." + arch; }

// ---- parsers -------------------------------------------------------------------

namespace {

Result<std::string> bounded_field(const std::string& v, const char* name, const std::string& what) {
  if (v.size() > kMaxField) return limit_exceeded(what + ": " + name + " longer than 4096 bytes");
  return v;
}

// One <rpm:entry> of a package's provides or requires.
Result<RpmDep> parse_rpm_dep(const std::map<std::string, std::string>& a, const std::string& what) {
  RpmDep d;
  KMR_ASSIGN_OR_RETURN(d.name, bounded_field(attr(a, "name"), "dependency name", what));
  d.flags = attr(a, "flags");
  if (!(d.flags.empty() || d.flags == "EQ" || d.flags == "LT" || d.flags == "LE" || d.flags == "GT" || d.flags == "GE")) {
    return malformed(what + ": dependency flags '" + d.flags.substr(0, 16) + "'");
  }
  KMR_ASSIGN_OR_RETURN(d.epoch, bounded_field(attr(a, "epoch"), "epoch", what));
  KMR_ASSIGN_OR_RETURN(d.version, bounded_field(attr(a, "ver"), "version", what));
  KMR_ASSIGN_OR_RETURN(d.release, bounded_field(attr(a, "rel"), "release", what));
  if (d.name.empty()) return malformed(what + ": dependency without a name");
  return d;
}

// A package is kept only with a well-formed NEVRA, a sha256 and a relative location.
Result<void> check_repo_package(const RepoPackage& p, const std::string& what) {
  const std::string who = what + ": package '" + p.name.substr(0, 64) + "'";
  if (!rpm_name_ok(p.name)) return malformed(who + ": bad name");
  if (!rpm_name_ok(p.arch)) return malformed(who + ": bad arch");
  if (!epoch_ok(p.epoch) || !rpm_ver_ok(p.version) || !rpm_ver_ok(p.release)) return malformed(who + ": bad epoch/version/release");
  if (!is_sha256_hex(p.sha256)) return malformed(who + ": no sha256 checksum");
  const std::string& l = p.location;
  if (l.empty() || l.front() == '/' || l.find("..") != std::string::npos || l.find("//") != std::string::npos ||
      !chars_in(l, "._+-/~^")) {
    return malformed(who + ": bad location '" + l.substr(0, 128) + "'");
  }
  return ok();
}

}  // namespace

Result<std::vector<RepoPackage>> parse_primary_packages(std::string_view xml, const std::string& what) {
  std::vector<RepoPackage> out;
  std::vector<std::string> path;
  std::string text;
  archive::XmlHandler h;
  auto field = [&](const std::string& v, const char* name) { return bounded_field(v, name, what); };
  h.start = [&](const std::string& n, const std::map<std::string, std::string>& a) -> Result<void> {
    path.push_back(n);
    text.clear();
    if (path.size() == 1 && n != "metadata") return malformed(what + ": root element is <" + n.substr(0, 64) + ">, not <metadata>");
    if (path.size() == 2 && n == "package") {
      if (out.size() >= kMaxPackages) return limit_exceeded(what + ": more than 1000000 packages");
      out.emplace_back();
      return ok();
    }
    if (path.size() < 3 || path[1] != "package" || out.empty()) return ok();
    RepoPackage& p = out.back();
    if (path.size() == 3 && n == "version") {
      KMR_ASSIGN_OR_RETURN(p.epoch, field(attr(a, "epoch"), "epoch"));
      KMR_ASSIGN_OR_RETURN(p.version, field(attr(a, "ver"), "version"));
      KMR_ASSIGN_OR_RETURN(p.release, field(attr(a, "rel"), "release"));
    } else if (path.size() == 3 && n == "checksum") {
      if (attr(a, "type") != "sha256") return unsupported(what + ": package checksum type '" + attr(a, "type").substr(0, 32) + "' (only sha256)");
    } else if (path.size() == 3 && n == "location") {
      KMR_ASSIGN_OR_RETURN(p.location, field(attr(a, "href"), "location"));
    } else if (path.size() == 3 && n == "size" && !attr(a, "package").empty()) {
      const std::string s = attr(a, "package");
      if (s.size() > 15 || !std::all_of(s.begin(), s.end(), ::isdigit)) return malformed(what + ": bad <size package>");
      p.size = std::stoull(s);
    } else if (path.size() == 5 && path[2] == "format" && n == "rpm:entry" && (path[3] == "rpm:provides" || path[3] == "rpm:requires")) {
      auto& list = path[3] == "rpm:provides" ? p.provides : p.requirements;
      if (list.size() >= kMaxDeps) return limit_exceeded(what + ": more than 100000 dependencies in one package");
      KMR_ASSIGN_OR_RETURN(RpmDep d, parse_rpm_dep(a, what));
      list.push_back(std::move(d));
    }
    return ok();
  };
  h.text = [&](const std::string& t) -> Result<void> {
    if (text.size() + t.size() > kMaxField) return limit_exceeded(what + ": element text longer than 4096 bytes");
    text += t;
    return ok();
  };
  h.end = [&](const std::string& n) -> Result<void> {
    if (path.size() >= 3 && path[1] == "package" && !out.empty()) {
      RepoPackage& p = out.back();
      if (path.size() == 3 && n == "name") p.name = text;
      else if (path.size() == 3 && n == "arch") p.arch = text;
      else if (path.size() == 3 && n == "checksum") p.sha256 = text;
      else if (path.size() == 4 && path[2] == "format" && n == "file") {
        if (p.files.size() >= kMaxDeps) return limit_exceeded(what + ": more than 100000 files in one package");
        p.files.push_back(text);
      }
    }
    path.pop_back();
    text.clear();
    return ok();
  };
  KMR_TRY(archive::scan_xml(xml, what, h));
  for (const auto& p : out) KMR_TRY(check_repo_package(p, what));
  return out;
}

Result<std::vector<PinnedRpm>> parse_buildenv(std::string_view xml, const std::string& what) {
  std::vector<PinnedRpm> out;
  std::size_t depth = 0;
  archive::XmlHandler h;
  h.start = [&](const std::string& n, const std::map<std::string, std::string>& a) -> Result<void> {
    ++depth;
    if (depth == 1 && n != "buildinfo") return malformed(what + ": root element is <" + n.substr(0, 64) + ">, not <buildinfo>");
    if (depth == 2 && n == "bdep") {
      if (out.size() >= kMaxPinned) return limit_exceeded(what + ": more than 20000 <bdep> entries");
      PinnedRpm p{attr(a, "name"), attr(a, "epoch"), attr(a, "version"), attr(a, "release"), attr(a, "arch")};
      const std::string who = what + ": bdep '" + p.name.substr(0, 64) + "'";
      if (!rpm_name_ok(p.name)) return malformed(who + ": bad name");
      if (p.version.empty() || p.release.empty()) return malformed(who + ": no version or release");
      if (!epoch_ok(p.epoch) || !rpm_ver_ok(p.version) || !rpm_ver_ok(p.release)) return malformed(who + ": bad epoch/version/release");
      if (!p.arch.empty() && !rpm_name_ok(p.arch)) return malformed(who + ": bad arch");
      out.push_back(std::move(p));
    }
    return ok();
  };
  h.end = [&](const std::string&) -> Result<void> {
    --depth;
    return ok();
  };
  h.text = [](const std::string&) -> Result<void> { return ok(); };
  KMR_TRY(archive::scan_xml(xml, what, h));
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  for (std::size_t i = 1; i < out.size(); ++i) {
    if (out[i].name == out[i - 1].name) return malformed(what + ": package '" + out[i].name + "' pinned twice");
  }
  return out;
}

Result<std::vector<RpmDep>> parse_requires(std::string_view text, const std::string& what) {
  std::vector<RpmDep> out;
  std::istringstream in{std::string(text)};
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    if (out.size() >= kMaxDeps) return limit_exceeded(what + ": more than 100000 requirements");
    std::istringstream w(line);
    std::string name, op, evr, extra;
    w >> name >> op >> evr >> extra;
    if (name.empty() || !extra.empty() || (op.empty() != evr.empty())) return malformed(what + ": bad requirement '" + line.substr(0, 128) + "'");
    if (name.rfind("rpmlib(", 0) == 0 || name.rfind("config(", 0) == 0) continue;
    if (name.size() > kMaxField) return limit_exceeded(what + ": requirement longer than 4096 bytes");
    RpmDep d;
    d.name = name;
    static const std::map<std::string, std::string> kOps = {{"=", "EQ"}, {"<", "LT"}, {"<=", "LE"}, {">", "GT"}, {">=", "GE"}};
    if (!op.empty()) {
      auto it = kOps.find(op);
      if (it == kOps.end()) return malformed(what + ": bad comparison '" + op.substr(0, 8) + "'");
      d.flags = it->second;
      std::string rest = evr;
      if (const auto c = rest.find(':'); c != std::string::npos) {
        d.epoch = rest.substr(0, c);
        rest = rest.substr(c + 1);
      }
      if (const auto dash = rest.rfind('-'); dash != std::string::npos) {
        d.release = rest.substr(dash + 1);
        rest = rest.substr(0, dash);
      }
      d.version = rest;
      if (!epoch_ok(d.epoch) || !rpm_ver_ok(d.version) || (!d.release.empty() && !rpm_ver_ok(d.release))) {
        return malformed(what + ": bad version in '" + line.substr(0, 128) + "'");
      }
    }
    out.push_back(std::move(d));
  }
  return out;
}

// ---- versions and resolution ---------------------------------------------------

int rpmvercmp(std::string_view a, std::string_view b) {
  if (a == b) return 0;
  std::size_t i = 0, j = 0;
  auto alnum = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; };
  auto digit = [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; };
  auto alpha = [](char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0; };
  while (i < a.size() || j < b.size()) {
    while (i < a.size() && !alnum(a[i]) && a[i] != '~' && a[i] != '^') ++i;
    while (j < b.size() && !alnum(b[j]) && b[j] != '~' && b[j] != '^') ++j;
    const bool at_a = i < a.size(), at_b = j < b.size();
    if ((at_a && a[i] == '~') || (at_b && b[j] == '~')) {
      if (!at_a || a[i] != '~') return 1;
      if (!at_b || b[j] != '~') return -1;
      ++i, ++j;
      continue;
    }
    if ((at_a && a[i] == '^') || (at_b && b[j] == '^')) {
      if (!at_a) return -1;
      if (!at_b) return 1;
      if (a[i] != '^') return 1;
      if (b[j] != '^') return -1;
      ++i, ++j;
      continue;
    }
    if (!at_a || !at_b) break;
    const bool num = digit(a[i]);
    std::size_t ei = i, ej = j;
    if (num) {
      while (ei < a.size() && digit(a[ei])) ++ei;
      while (ej < b.size() && digit(b[ej])) ++ej;
    } else {
      while (ei < a.size() && alpha(a[ei])) ++ei;
      while (ej < b.size() && alpha(b[ej])) ++ej;
    }
    std::string_view sa = a.substr(i, ei - i), sb = b.substr(j, ej - j);
    if (sb.empty()) return num ? 1 : -1;
    if (num) {
      while (sa.size() > 1 && sa[0] == '0') sa.remove_prefix(1);
      while (sb.size() > 1 && sb[0] == '0') sb.remove_prefix(1);
      if (sa.size() != sb.size()) return sa.size() > sb.size() ? 1 : -1;
    }
    if (const int c = sa.compare(sb); c != 0) return c < 0 ? -1 : 1;
    i = ei, j = ej;
  }
  if (i >= a.size() && j >= b.size()) return 0;
  return i >= a.size() ? -1 : 1;
}

int compare_evr(std::string_view e1, std::string_view v1, std::string_view r1, std::string_view e2, std::string_view v2,
                std::string_view r2) {
  const int c = rpmvercmp(e1.empty() ? "0" : e1, e2.empty() ? "0" : e2);
  if (c != 0) return c;
  if (const int cv = rpmvercmp(v1, v2); cv != 0) return cv;
  if (r1.empty() || r2.empty()) return 0;  // a requirement without release matches any
  return rpmvercmp(r1, r2);
}

namespace {
bool range_ok(const std::string& flags, int cmp) {
  if (flags.empty()) return true;
  if (flags == "EQ") return cmp == 0;
  if (flags == "LT") return cmp < 0;
  if (flags == "LE") return cmp <= 0;
  if (flags == "GT") return cmp > 0;
  if (flags == "GE") return cmp >= 0;
  return false;
}
}  // namespace

bool satisfies(const RepoPackage& p, const RpmDep& d) {
  if (d.name == p.name && range_ok(d.flags, compare_evr(p.epoch, p.version, p.release, d.epoch, d.version, d.release))) return true;
  for (const auto& pr : p.provides) {
    if (pr.name != d.name) continue;
    if (d.flags.empty()) return true;
    if (pr.flags.empty()) continue;  // an unversioned provide does not meet a versioned requirement
    if (range_ok(d.flags, compare_evr(pr.epoch, pr.version, pr.release, d.epoch, d.version, d.release))) return true;
  }
  if (!d.name.empty() && d.name[0] == '/' && d.flags.empty()) {
    return std::find(p.files.begin(), p.files.end(), d.name) != p.files.end();
  }
  return false;
}

Resolution resolve(const std::vector<RpmDep>& wanted, const std::vector<RepoPackage>& repo, const std::string& arch) {
  Resolution r;
  std::map<std::string, const RepoPackage*> chosen;  // by name
  std::vector<RpmDep> queue(wanted.begin(), wanted.end());
  std::set<std::string> seen_req;
  auto better = [](const RepoPackage* a, const RepoPackage* b) {  // a newer than b
    return compare_evr(a->epoch, a->version, a->release, b->epoch, b->version, b->release) > 0;
  };
  for (std::size_t qi = 0; qi < queue.size(); ++qi) {
    const RpmDep d = queue[qi];
    const std::string key = d.name + " " + d.flags + " " + d.epoch + ":" + d.version + "-" + d.release;
    if (!seen_req.insert(key).second) continue;
    // Already met by a chosen package?
    bool met = false;
    for (const auto& [n, p] : chosen) met = met || satisfies(*p, d);
    if (met) continue;
    const RepoPackage* by_name = nullptr;
    const RepoPackage* by_provide = nullptr;
    for (const auto& p : repo) {
      if (p.arch != arch && p.arch != "noarch") continue;
      if (!satisfies(p, d)) continue;
      const RepoPackage*& slot = p.name == d.name ? by_name : by_provide;
      if (slot == nullptr || better(&p, slot) || (!better(slot, &p) && p.name < slot->name)) slot = &p;
    }
    const RepoPackage* pick = by_name ? by_name : by_provide;
    if (pick == nullptr) {
      static const std::map<std::string, std::string> kOp = {{"EQ", "="}, {"LT", "<"}, {"LE", "<="}, {"GT", ">"}, {"GE", ">="}};
      std::string text = d.name;
      if (!d.flags.empty()) {
        text += " " + kOp.at(d.flags) + " " + (d.epoch.empty() ? "" : d.epoch + ":") + d.version + (d.release.empty() ? "" : "-" + d.release);
      }
      r.unresolved.push_back(text);
      continue;
    }
    if (chosen.count(pick->name)) continue;  // another version of it already chosen
    chosen[pick->name] = pick;
    for (const auto& rq : pick->requirements) {
      if (rq.name.rfind("rpmlib(", 0) == 0 || rq.name.rfind("config(", 0) == 0) continue;
      queue.push_back(rq);
    }
  }
  for (const auto& [n, p] : chosen) r.pinned.push_back({p->name, p->epoch, p->version, p->release, p->arch});
  return r;
}

// ---- options, key, installed set -----------------------------------------------

MirrorOptions mirror_options_from_env() {
  MirrorOptions o;
  distros::option_from_env(o.mirror, "KMR_SUSE_MIRROR");
  while (!o.mirror.empty() && o.mirror.back() == '/') o.mirror.pop_back();
  distros::option_from_env(o.key, "KMR_SUSE_REPO_KEY");
  distros::option_from_env(o.cache_dir, "KMR_BUILDROOT_CACHE");
  distros::option_from_env(o.ca_file, "KMR_SUSE_MIRROR_CA");
  if (const char* v = std::getenv("KMR_SUSE_BASE"); v != nullptr) {
    o.base.clear();
    std::istringstream in(v);
    for (std::string w; in >> w;) o.base.push_back(w);
  }
  return o;
}

std::string root_key(const std::string& arch, const std::vector<std::string>& nevra_sha256) {
  std::vector<std::string> lines = nevra_sha256;
  std::sort(lines.begin(), lines.end());
  std::string text = std::string(kRecipe) + "\narch " + arch + "\n";
  for (const auto& l : lines) text += "pkg " + l + "\n";
  return sha256_hex(as_bytes(text));
}

Result<std::vector<std::string>> compare_installed(const std::string& root, const std::vector<std::string>& pinned) {
  SubprocessOptions o;
  o.timeout = std::chrono::minutes(2);
  KMR_ASSIGN_OR_RETURN(auto q, run_subprocess({"rpm", "--root", root, "--dbpath", "/var/lib/rpm", "-qa", "--qf",
                                               "%{NAME}-%{EPOCHNUM}:%{VERSION}-%{RELEASE}.%{ARCH}\n"},
                                              o));
  if (!q.success()) return io_error("rpm -qa in " + root + " failed: " + q.err.substr(0, 2000));
  std::set<std::string> have;
  std::istringstream in(q.out);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.rfind("gpg-pubkey-", 0) != 0) have.insert(line);
  }
  const std::set<std::string> want(pinned.begin(), pinned.end());
  std::vector<std::string> diff;
  for (const auto& w : want) if (!have.count(w)) diff.push_back("missing " + w);
  for (const auto& h : have) if (!want.count(h)) diff.push_back("extra " + h);
  return diff;
}

// ---- making the root -----------------------------------------------------------

namespace {

struct Fetcher {
  const net::HttpClient& client;
  std::string base;

  std::string url(const std::string& rel) const { return base + "/" + rel; }
  // A small document; nullopt (and `why`) when the server does not give it.
  Result<std::optional<std::string>> small(const std::string& rel, std::string& why) const {
    net::Request rq;
    rq.url = url(rel);
    KMR_ASSIGN_OR_RETURN(auto r, client.request(rq, kMaxRepomd));
    if (r.status != 200) {
      why = "GET " + rq.url + ": HTTP " + std::to_string(r.status) + " " + r.reason;
      return std::optional<std::string>();
    }
    return std::optional<std::string>(std::move(r.body));
  }
};

Result<std::string> run_ok(const std::vector<std::string>& argv, const std::string& what,
                           std::chrono::milliseconds timeout = std::chrono::minutes(10)) {
  SubprocessOptions o;
  o.timeout = timeout;
  o.merge_stderr = true;
  KMR_ASSIGN_OR_RETURN(auto r, run_subprocess(argv, o));
  if (!r.success()) return io_error(what + " failed (" + r.describe() + "): " + r.out.substr(0, 4000));
  return r.out;
}

// The steps of ensure_build_root. A step that finds something missing records
// it in out.missing and returns an empty optional; errors are errors.

// The cache directory and a per-process scratch directory under it.
Result<std::string> make_scratch(const MirrorOptions& options) {
  std::error_code ec;
  fs::create_directories(options.cache_dir, ec);
  if (ec) return io_error("cannot create " + options.cache_dir + ": " + ec.message());
  const std::string scratch = options.cache_dir + "/suse-fetch-" + std::to_string(::getpid());
  fs::remove_all(scratch, ec);
  fs::create_directories(scratch, ec);
  if (ec) return io_error("cannot create " + scratch + ": " + ec.message());
  return scratch;
}

// 1. repomd.xml, verified with the key.
Result<std::optional<std::string>> fetch_verified_repomd(const Fetcher& f, const MirrorOptions& options, const std::string& scratch,
                                                         BuildRoot& out) {
  std::string why;
  KMR_ASSIGN_OR_RETURN(auto repomd, f.small("repodata/repomd.xml", why));
  if (!repomd) {
    out.missing.push_back("repository index: " + why);
    return std::optional<std::string>();
  }
  KMR_ASSIGN_OR_RETURN(auto asc, f.small("repodata/repomd.xml.asc", why));
  if (!asc) return Error(ErrorCode::kVerificationFailed, "repomd.xml has no signature: " + why);
  KMR_TRY(write_file_atomic(scratch + "/repomd.xml", as_bytes(*repomd)));
  KMR_TRY(write_file_atomic(scratch + "/repomd.xml.asc", as_bytes(*asc)));
  KMR_ASSIGN_OR_RETURN(auto sig, archive::verify_detached(options.key, scratch + "/repomd.xml.asc", scratch + "/repomd.xml"));
  if (!sig.valid) {
    return Error(ErrorCode::kVerificationFailed, f.url("repodata/repomd.xml") + " does not verify with " + options.key + " (" +
                                                     sig.verifier + "): " + sig.output.substr(0, 1000));
  }
  return repomd;
}

// The primary entry of repomd.xml, with a sha256 and a relative location.
Result<archive::RepoMdData> primary_entry(const std::string& repomd, const Fetcher& f) {
  KMR_ASSIGN_OR_RETURN(auto data, archive::parse_repomd(repomd, f.url("repodata/repomd.xml")));
  const archive::RepoMdData* prim = nullptr;
  for (const auto& d : data) if (d.type == "primary") prim = &d;
  if (prim == nullptr) return malformed(f.url("repodata/repomd.xml") + " lists no primary");
  if (prim->checksum_type != "sha256") return unsupported("primary checksum type '" + prim->checksum_type.substr(0, 32) + "' (only sha256)");
  if (prim->location.empty() || prim->location.front() == '/' || prim->location.find("..") != std::string::npos ||
      !chars_in(prim->location, "._+-/")) {
    return malformed("repomd.xml: bad primary location '" + prim->location.substr(0, 128) + "'");
  }
  return *prim;
}

struct Primary {
  std::string url;
  std::vector<RepoPackage> packages;
};

// 2. primary, through repomd's sha256, decompressed and parsed.
Result<std::optional<Primary>> fetch_primary(const net::HttpClient& client, const Fetcher& f, const std::string& repomd,
                                             const std::string& scratch, BuildRoot& out) {
  KMR_ASSIGN_OR_RETURN(const auto prim, primary_entry(repomd, f));
  Primary primary;
  primary.url = f.url(prim.location);
  net::DownloadOptions pd;
  pd.max_bytes = kMaxPrimary;
  KMR_ASSIGN_OR_RETURN(pd.expected_sha256, digest_of(prim.checksum));
  auto got_primary = client.download(primary.url, scratch + "/primary", pd);
  if (!got_primary) {
    if (got_primary.error().code() == ErrorCode::kVerificationFailed) return got_primary.error();
    out.missing.push_back("repository primary: " + got_primary.error().message());
    return std::optional<Primary>();
  }
  KMR_ASSIGN_OR_RETURN(auto primary_raw, read_file(scratch + "/primary", kMaxPrimary));
  const archive::Codec codec = archive::detect_codec(Bytes(primary_raw).first(std::min<std::size_t>(primary_raw.size(), 64)));
  std::string primary_xml;
  if (codec == archive::Codec::kNone) {
    primary_xml.assign(primary_raw.begin(), primary_raw.end());
  } else {
    KMR_ASSIGN_OR_RETURN(auto dec, archive::decompress_all(primary_raw, kMaxPrimary));
    primary_xml.assign(dec.begin(), dec.end());
  }
  KMR_ASSIGN_OR_RETURN(primary.packages, parse_primary_packages(primary_xml, primary.url));
  return std::optional<Primary>(std::move(primary));
}

// 3. The pinned set: from _buildenv, or the source package's BuildRequires resolved.
Result<std::vector<PinnedRpm>> pinned_set(const RootRequest& request, const MirrorOptions& options, const Primary& primary,
                                          BuildRoot& out) {
  if (!request.buildenv.empty()) {
    KMR_ASSIGN_OR_RETURN(auto text, read_file(request.buildenv, 16u << 20));
    KMR_ASSIGN_OR_RETURN(auto pinned, parse_buildenv(std::string_view(reinterpret_cast<const char*>(text.data()), text.size()),
                                                     request.buildenv));
    out.pinned_from = "_buildenv";
    return pinned;
  }
  KMR_ASSIGN_OR_RETURN(auto q, run_ok({"rpm", "-qp", "--nosignature", "--nodigest", "--requires", request.srpm},
                                      "rpm -qp --requires " + request.srpm));
  KMR_ASSIGN_OR_RETURN(auto reqs, parse_requires(q, request.srpm));
  for (const auto& b : options.base) reqs.push_back({b, "", "", "", ""});
  Resolution res = resolve(reqs, primary.packages, options.arch);
  for (const auto& u : res.unresolved) out.missing.push_back("build requirement '" + u + "': no package in " + primary.url + " provides it");
  out.pinned_from = "BuildRequires resolved against " + primary.url;
  return std::move(res.pinned);
}

// Each pinned package's entry in primary; out.pinned gets their sorted NEVRAs.
std::vector<const RepoPackage*> find_pinned(const std::vector<PinnedRpm>& pinned, const Primary& primary, const std::string& arch,
                                            BuildRoot& out) {
  std::vector<const RepoPackage*> pkgs;
  for (const auto& p : pinned) {
    const RepoPackage* hit = nullptr;
    for (const auto& r : primary.packages) {
      if (r.name == p.name && r.evr() == p.evr() && (p.arch.empty() ? (r.arch == arch || r.arch == "noarch") : r.arch == p.arch)) {
        hit = &r;
        break;
      }
    }
    if (hit == nullptr) {
      out.missing.push_back(p.nevra() + ": not in " + primary.url);
      continue;
    }
    pkgs.push_back(hit);
    out.pinned.push_back(hit->nevra());
  }
  std::sort(out.pinned.begin(), out.pinned.end());
  return pkgs;
}

// 5a. Every package through its primary sha256 and size.
Result<std::vector<std::string>> download_packages(const net::HttpClient& client, const Fetcher& f,
                                                   const std::vector<const RepoPackage*>& pkgs, const std::string& scratch,
                                                   BuildRoot& out) {
  std::vector<std::string> files;
  for (const auto* p : pkgs) {
    net::DownloadOptions d;
    d.max_bytes = p->size ? p->size : kMaxPackageBytes;
    KMR_ASSIGN_OR_RETURN(d.expected_sha256, digest_of(p->sha256));
    const std::string file = scratch + "/" + p->nevra() + ".rpm";
    auto got = client.download(f.url(p->location), file, d);
    if (!got) {
      if (got.error().code() == ErrorCode::kVerificationFailed || got.error().code() == ErrorCode::kLimitExceeded) {
        return Error(ErrorCode::kVerificationFailed, p->nevra() + ": " + got.error().message());
      }
      out.missing.push_back(p->nevra() + ": " + got.error().message());
      continue;
    }
    if (p->size && got->size != p->size) {
      return Error(ErrorCode::kVerificationFailed, f.url(p->location) + ": " + std::to_string(got->size) + " bytes, primary says " +
                                                       std::to_string(p->size));
    }
    files.push_back(file);
  }
  return files;
}

// 5b. Every downloaded package signed with the repository's key.
Result<void> check_signatures(const std::vector<std::string>& files, const std::string& key, const std::string& scratch) {
  const std::string keydb = scratch + "/keydb";
  std::error_code ec;
  fs::create_directories(keydb, ec);
  KMR_TRY(run_ok({"rpmkeys", "--dbpath", keydb, "--import", key}, "rpmkeys --import " + key));
  for (const auto& file : files) {
    SubprocessOptions o;
    o.merge_stderr = true;
    KMR_ASSIGN_OR_RETURN(auto r, run_subprocess({"rpmkeys", "--dbpath", keydb, "--checksig", file}, o));
    // "digests OK" alone is an unsigned package: a signature is required.
    if (!r.success() || r.out.find("signatures OK") == std::string::npos) {
      return Error(ErrorCode::kVerificationFailed, fs::path(file).filename().string() + ": rpmkeys --checksig with the repository's key: " +
                                                       r.out.substr(0, 1000));
    }
  }
  return ok();
}

// 6. rpm --root into a temporary directory, checked, then renamed into place.
Result<void> install_root(distros::RootCacheEntry& entry, const distros::RootCheck& check, const std::vector<std::string>& files,
                          const MirrorOptions& options) {
  KMR_ASSIGN_OR_RETURN(const std::string tmp, entry.scratch());
  const std::vector<std::string> rooted = {"--root", tmp, "--dbpath", "/var/lib/rpm"};
  auto with = [&](std::vector<std::string> head, const std::vector<std::string>& tail) {
    head.insert(head.begin() + 1, rooted.begin(), rooted.end());
    head.insert(head.end(), tail.begin(), tail.end());
    return head;
  };
  KMR_TRY(run_ok(with({"rpm", "--initdb"}, {}), "rpm --initdb"));
  KMR_TRY(run_ok(with({"rpmkeys", "--import", options.key}, {}), "rpmkeys --root --import"));
  KMR_TRY(run_ok(with({"rpm", "-i", "--noscripts", "--notriggers", "--nodeps"}, files), "rpm --root -i", options.timeout));
  return entry.commit(check, "the rpm root", "the pinned set");
}

// Steps 1 to 6, once the key and the architecture are known good.
Result<void> make_build_root(const RootRequest& request, const MirrorOptions& options, BuildRoot& out) {
  KMR_ASSIGN_OR_RETURN(const std::string scratch, make_scratch(options));
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      std::error_code e;
      fs::remove_all(dir, e);
    }
  } cleanup{scratch};
  net::ClientOptions co = net::options_with_deadline(options.timeout);
  co.tls.ca_file = options.ca_file;
  KMR_ASSIGN_OR_RETURN(net::HttpClient client, net::HttpClient::create(co));
  const Fetcher f{client, options.mirror};
  KMR_ASSIGN_OR_RETURN(const auto repomd, fetch_verified_repomd(f, options, scratch, out));
  if (!repomd) return ok();
  KMR_ASSIGN_OR_RETURN(const auto primary, fetch_primary(client, f, *repomd, scratch, out));
  if (!primary) return ok();
  KMR_ASSIGN_OR_RETURN(const auto pinned, pinned_set(request, options, *primary, out));
  const std::vector<const RepoPackage*> pkgs = find_pinned(pinned, *primary, options.arch, out);
  if (!out.missing.empty()) return ok();

  // 4. The cache.
  std::vector<std::string> lines;
  lines.reserve(pkgs.size());
  for (const auto* p : pkgs) lines.push_back(p->nevra() + " " + p->sha256);
  out.key = root_key(options.arch, lines);
  KMR_ASSIGN_OR_RETURN(auto entry, distros::RootCacheEntry::open(options.cache_dir, "suse-" + out.key));
  const distros::RootCheck check = [&](const std::string& root) { return compare_installed(root, out.pinned); };
  KMR_ASSIGN_OR_RETURN(const bool cached, entry.cached(check));
  if (cached) {
    out.path = entry.path();
    out.cached = true;
    return ok();
  }

  KMR_ASSIGN_OR_RETURN(const auto files, download_packages(client, f, pkgs, scratch, out));
  if (!out.missing.empty()) return ok();
  KMR_TRY(check_signatures(files, options.key, scratch));
  KMR_TRY(install_root(entry, check, files, options));
  out.path = entry.path();
  return ok();
}

}  // namespace

Result<BuildRoot> ensure_build_root(const RootRequest& request, const MirrorOptions& options) {
  const auto start = Clock::now();
  BuildRoot out;
  if (options.key.empty()) {
    out.missing.push_back("the SUSE repository's signing key (set KMR_SUSE_REPO_KEY to the armored key, e.g. a checked copy of " +
                          options.mirror + "/repodata/repomd.xml.key)");
  } else {
    if (!rpm_name_ok(options.arch)) return malformed("bad architecture '" + options.arch.substr(0, 40) + "'");
    KMR_TRY(make_build_root(request, options, out));
  }
  out.duration = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  return out;
}

}  // namespace kmr::suse
