#include "rebuilder/archive/arch_meta.h"

#include <charconv>
#include <set>

#include "rebuilder/archive/archive_reader.h"
#include "rebuilder/base/hex.h"

namespace kmr::archive {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

template <typename T>
Result<T> parse_int(std::string_view s, const std::string& what) {
  T v{};
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size()) {
    return malformed(what + ": '" + std::string(s.substr(0, 40)) + "' is not a number");
  }
  return v;
}

// Splits text into lines, checking length and NUL bytes.
template <typename Fn>
Result<void> lines(std::string_view text, const std::string& name, const Limits& limits, Fn fn) {
  std::size_t i = 0, lineno = 0;
  while (i < text.size()) {
    ++lineno;
    std::size_t j = text.find('\n', i);
    if (j == std::string_view::npos) j = text.size();
    std::string_view line = text.substr(i, j - i);
    i = j + 1;
    if (line.size() > limits.max_line_len) {
      return limit_exceeded(name + ": line " + std::to_string(lineno) + " longer than " +
                            std::to_string(limits.max_line_len) + " bytes");
    }
    if (line.find('\0') != std::string_view::npos) return malformed(name + ": line " + std::to_string(lineno) + ": NUL byte");
    KMR_TRY(fn(line, lineno));
  }
  return ok();
}

}  // namespace

Result<KeyValues> parse_key_values(std::string_view text, const std::string& name, const Limits& limits) {
  KeyValues out;
  KMR_TRY(lines(text, name, limits, [&](std::string_view line, std::size_t ln) -> Result<void> {
    const std::string_view t = trim(line);
    if (t.empty() || t.front() == '#') return ok();
    const std::size_t eq = t.find(" = ");
    if (eq == std::string_view::npos) {
      // "key =" with an empty value is allowed.
      if (t.size() >= 2 && t.substr(t.size() - 2) == " =") {
        out.emplace_back(std::string(trim(t.substr(0, t.size() - 2))), "");
        return ok();
      }
      return malformed(name + ": line " + std::to_string(ln) + ": expected 'key = value'");
    }
    const std::string_view key = trim(t.substr(0, eq));
    if (key.empty()) return malformed(name + ": line " + std::to_string(ln) + ": empty key");
    out.emplace_back(std::string(key), std::string(trim(t.substr(eq + 3))));
    return ok();
  }));
  return out;
}

Result<PkgInfo> parse_pkginfo(std::string_view text, const std::string& name) {
  KMR_ASSIGN_OR_RETURN(KeyValues kv, parse_key_values(text, name));
  PkgInfo p;
  for (const auto& [k, v] : kv) {
    if (k == "pkgname") p.pkgname = v;
    else if (k == "pkgbase") p.pkgbase = v;
    else if (k == "pkgver") p.pkgver = v;
    else if (k == "pkgdesc") p.pkgdesc = v;
    else if (k == "url") p.url = v;
    else if (k == "packager") p.packager = v;
    else if (k == "arch") p.arch = v;
    else if (k == "builddate") { KMR_ASSIGN_OR_RETURN(p.builddate, parse_int<std::int64_t>(v, name + ": builddate")); }
    else if (k == "size") { KMR_ASSIGN_OR_RETURN(p.size, parse_int<std::uint64_t>(v, name + ": size")); }
  }
  if (p.pkgname.empty()) return malformed(name + ": missing pkgname");
  if (p.pkgver.empty()) return malformed(name + ": missing pkgver");
  p.all = std::move(kv);
  return p;
}

Result<BuildInfo> parse_buildinfo(std::string_view text, const std::string& name) {
  KMR_ASSIGN_OR_RETURN(KeyValues kv, parse_key_values(text, name));
  BuildInfo b;
  if (kv.empty() || kv[0].first != "format") return malformed(name + ": first line must be 'format = N'");
  if (kv[0].second == "1") b.format = 1;
  else if (kv[0].second == "2") b.format = 2;
  else return unsupported(name + ": unknown format '" + kv[0].second + "'");
  std::set<std::string> seen;
  for (std::size_t i = 1; i < kv.size(); ++i) {
    const auto& [k, v] = kv[i];
    if (k == "buildenv") { b.buildenv.push_back(v); continue; }
    if (k == "options") { b.options.push_back(v); continue; }
    if (k == "installed") { b.installed.push_back(v); continue; }
    if (!seen.insert(k).second) return malformed(name + ": key '" + k + "' repeated");
    if (k == "pkgname") b.pkgname = v;
    else if (k == "pkgbase") b.pkgbase = v;
    else if (k == "pkgver") b.pkgver = v;
    else if (k == "pkgarch") b.pkgarch = v;
    else if (k == "pkgbuild_sha256sum") {
      if (!is_sha256_hex(v)) return malformed(name + ": pkgbuild_sha256sum is not a sha256");
      b.pkgbuild_sha256sum = v;
    } else if (k == "packager") b.packager = v;
    else if (k == "builddate") { KMR_ASSIGN_OR_RETURN(b.builddate, parse_int<std::int64_t>(v, name + ": builddate")); }
    else if (k == "builddir") b.builddir = v;
    else if (k == "startdir" && b.format == 2) b.startdir = v;
    else if (k == "buildtool" && b.format == 2) b.buildtool = v;
    else if (k == "buildtoolver" && b.format == 2) b.buildtoolver = v;
    else return malformed(name + ": unknown key '" + k + "' for format " + std::to_string(b.format));
  }
  for (const char* req : {"pkgname", "pkgbase", "pkgver", "pkgarch", "pkgbuild_sha256sum", "packager", "builddate",
                          "builddir"}) {
    if (!seen.count(req)) return malformed(name + ": missing " + req);
  }
  if (b.format == 2) {
    for (const char* req : {"startdir", "buildtool", "buildtoolver"}) {
      if (!seen.count(req)) return malformed(name + ": missing " + req);
    }
  }
  return b;
}

Result<DescFile> parse_desc(std::string_view text, const std::string& name) {
  DescFile out;
  std::vector<std::string>* cur = nullptr;
  KMR_TRY(lines(text, name, Limits{}, [&](std::string_view line, std::size_t ln) -> Result<void> {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) {
      cur = nullptr;
      return ok();
    }
    if (!cur) {
      if (line.size() < 3 || line.front() != '%' || line.back() != '%') {
        return malformed(name + ": line " + std::to_string(ln) + ": expected '%SECTION%'");
      }
      const std::string key(line.substr(1, line.size() - 2));
      if (out.count(key)) return malformed(name + ": line " + std::to_string(ln) + ": section %" + key + "% repeated");
      cur = &out[key];
      return ok();
    }
    if (cur->size() >= 100000) return limit_exceeded(name + ": too many values in a section");
    cur->emplace_back(line);
    return ok();
  }));
  return out;
}

Result<RepoPackage> repo_package_from_desc(const DescFile& desc, const std::string& name) {
  auto one = [&](const char* key, bool required) -> Result<std::string> {
    auto it = desc.find(key);
    if (it == desc.end() || it->second.empty()) {
      if (required) return malformed(name + ": missing %" + std::string(key) + "%");
      return std::string();
    }
    if (it->second.size() != 1) return malformed(name + ": %" + std::string(key) + "% has several values");
    return it->second[0];
  };
  RepoPackage p;
  KMR_ASSIGN_OR_RETURN(p.filename, one("FILENAME", true));
  KMR_ASSIGN_OR_RETURN(p.name, one("NAME", true));
  KMR_ASSIGN_OR_RETURN(p.base, one("BASE", false));
  KMR_ASSIGN_OR_RETURN(p.version, one("VERSION", true));
  KMR_ASSIGN_OR_RETURN(p.arch, one("ARCH", false));
  KMR_ASSIGN_OR_RETURN(p.sha256, one("SHA256SUM", false));
  KMR_ASSIGN_OR_RETURN(p.packager, one("PACKAGER", false));
  KMR_ASSIGN_OR_RETURN(p.pgpsig, one("PGPSIG", false));
  if (!p.sha256.empty() && !is_sha256_hex(p.sha256)) return malformed(name + ": %SHA256SUM% is not a sha256");
  if (p.filename.find('/') != std::string::npos) return malformed(name + ": %FILENAME% contains '/'");
  KMR_ASSIGN_OR_RETURN(std::string csize, one("CSIZE", false));
  KMR_ASSIGN_OR_RETURN(std::string isize, one("ISIZE", false));
  KMR_ASSIGN_OR_RETURN(std::string bdate, one("BUILDDATE", false));
  if (!csize.empty()) { KMR_ASSIGN_OR_RETURN(p.csize, parse_int<std::uint64_t>(csize, name + ": %CSIZE%")); }
  if (!isize.empty()) { KMR_ASSIGN_OR_RETURN(p.isize, parse_int<std::uint64_t>(isize, name + ": %ISIZE%")); }
  if (!bdate.empty()) { KMR_ASSIGN_OR_RETURN(p.builddate, parse_int<std::int64_t>(bdate, name + ": %BUILDDATE%")); }
  return p;
}

namespace {
// mtree paths escape bytes as \ooo.
Result<std::string> mtree_unescape(std::string_view s, const std::string& where) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\') {
      out += s[i];
      continue;
    }
    if (i + 3 >= s.size()) return malformed(where + ": bad escape");
    int v = 0;
    for (int k = 1; k <= 3; ++k) {
      const char c = s[i + static_cast<std::size_t>(k)];
      if (c < '0' || c > '7') return malformed(where + ": bad escape");
      v = v * 8 + (c - '0');
    }
    if (v == 0 || v > 255) return malformed(where + ": bad escape");
    out += static_cast<char>(v);
    i += 3;
  }
  return out;
}
}  // namespace

Result<std::vector<MtreeEntry>> parse_mtree(std::string_view text, const std::string& name) {
  std::vector<MtreeEntry> out;
  std::map<std::string, std::string> defaults;
  KMR_TRY(lines(text, name, Limits{}, [&](std::string_view line, std::size_t ln) -> Result<void> {
    const std::string where = name + ": line " + std::to_string(ln);
    line = trim(line);
    if (line.empty() || line.front() == '#') return ok();
    std::vector<std::string_view> words;
    std::size_t i = 0;
    while (i < line.size()) {
      std::size_t j = line.find(' ', i);
      if (j == std::string_view::npos) j = line.size();
      if (j > i) words.push_back(line.substr(i, j - i));
      i = j + 1;
    }
    if (words[0] == "/set" || words[0] == "/unset") {
      for (std::size_t w = 1; w < words.size(); ++w) {
        const std::size_t eq = words[w].find('=');
        const std::string key(words[w].substr(0, eq));
        if (words[0] == "/unset") defaults.erase(key);
        else if (eq != std::string_view::npos) defaults[key] = std::string(words[w].substr(eq + 1));
      }
      return ok();
    }
    if (words[0].front() == '/') return malformed(where + ": unknown command '" + std::string(words[0]) + "'");
    KMR_ASSIGN_OR_RETURN(std::string raw, mtree_unescape(words[0], where));
    auto norm = normalise_member_path(raw);
    if (!norm) return malformed(where + ": " + norm.error().message());
    std::map<std::string, std::string> kv = defaults;
    for (std::size_t w = 1; w < words.size(); ++w) {
      const std::size_t eq = words[w].find('=');
      if (eq == std::string_view::npos) return malformed(where + ": keyword without '='");
      kv[std::string(words[w].substr(0, eq))] = std::string(words[w].substr(eq + 1));
    }
    MtreeEntry e;
    e.path = *norm;
    e.type = kv.count("type") ? kv["type"] : "file";
    if (kv.count("size")) { KMR_ASSIGN_OR_RETURN(e.size, parse_int<std::uint64_t>(kv["size"], where + ": size")); }
    if (kv.count("sha256digest")) {
      e.sha256 = kv["sha256digest"];
      if (!is_sha256_hex(e.sha256)) return malformed(where + ": sha256digest is not a sha256");
    }
    if (kv.count("link")) { KMR_ASSIGN_OR_RETURN(e.link, mtree_unescape(kv["link"], where)); }
    if (kv.count("mode")) {
      std::uint32_t m = 0;
      const std::string& s = kv["mode"];
      auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), m, 8);
      if (ec != std::errc() || p != s.data() + s.size()) return malformed(where + ": bad mode");
      e.mode = m;
    }
    if (kv.count("time")) {
      std::string t = kv["time"];
      const std::size_t dot = t.find('.');
      if (dot != std::string::npos) t.resize(dot);
      KMR_ASSIGN_OR_RETURN(e.time, parse_int<std::int64_t>(t, where + ": time"));
    }
    if (out.size() >= 10'000'000) return limit_exceeded(name + ": too many entries");
    out.push_back(std::move(e));
    return ok();
  }));
  return out;
}

}  // namespace kmr::archive

namespace kmr::archive {

Result<std::vector<RepoPackage>> read_repo_db(InputStream& in, const ReaderOptions& options) {
  std::vector<RepoPackage> out;
  ReaderOptions o = options;
  o.format = Format::kTar;
  KMR_TRY(read_archive(in, o, [&](const Entry& e, MemberStream& s) -> Result<void> {
    if (e.type != EntryType::kFile) return ok();
    const std::size_t slash = e.path.find('/');
    if (slash == std::string::npos || e.path.substr(slash + 1) != "desc") return ok();
    KMR_ASSIGN_OR_RETURN(ByteVector b, s.read_all(16 << 20));
    const std::string where = options.name + ": " + e.path;
    KMR_ASSIGN_OR_RETURN(DescFile d, parse_desc(as_string_view(b), where));
    KMR_ASSIGN_OR_RETURN(RepoPackage p, repo_package_from_desc(d, where));
    out.push_back(std::move(p));
    return ok();
  }));
  return out;
}

}  // namespace kmr::archive
