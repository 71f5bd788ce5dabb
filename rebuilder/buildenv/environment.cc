#include "rebuilder/buildenv/environment.h"

#include <algorithm>
#include <charconv>
#include <set>

#include "rebuilder/base/bytes.h"
#include "rebuilder/base/sha256.h"

namespace kmr::build {
namespace {

constexpr std::size_t kMaxLines = 1 << 18;
constexpr std::size_t kMaxEntries = 1 << 16;

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// Strict UTF-8 (no overlongs, surrogates or code points above U+10FFFF),
// the same rule nlohmann::json applies when dumping.
bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t n = 0;
    unsigned char lo = 0x80, hi = 0xbf;  // allowed range of the second byte
    if (c >= 0xc2 && c <= 0xdf) n = 1;
    else if (c >= 0xe0 && c <= 0xef) { n = 2; if (c == 0xe0) lo = 0xa0; if (c == 0xed) hi = 0x9f; }
    else if (c >= 0xf0 && c <= 0xf4) { n = 3; if (c == 0xf0) lo = 0x90; if (c == 0xf4) hi = 0x8f; }
    else return false;
    if (i + n >= s.size()) return false;
    const auto c1 = static_cast<unsigned char>(s[i + 1]);
    if (c1 < lo || c1 > hi) return false;
    for (std::size_t k = 2; k <= n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return false;
    }
    i += n + 1;
  }
  return true;
}

// Splits into lines, enforcing the line-length, line-count, NUL and UTF-8 rules.
Result<std::vector<std::string_view>> split_lines(std::string_view text, const Limits& limits, const std::string& what) {
  if (text.find('\0') != std::string_view::npos) return malformed(what + ": NUL byte");
  if (!valid_utf8(text)) return malformed(what + ": invalid UTF-8");
  std::vector<std::string_view> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    if (end - start > limits.max_line_len) {
      return limit_exceeded(what + ": line " + std::to_string(lines.size() + 1) + " longer than " +
                            std::to_string(limits.max_line_len) + " bytes");
    }
    if (lines.size() >= kMaxLines) return limit_exceeded(what + ": more than " + std::to_string(kMaxLines) + " lines");
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

bool all_of_chars(std::string_view s, std::string_view extra) {
  return std::all_of(s.begin(), s.end(), [extra](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           extra.find(c) != std::string_view::npos;
  });
}

bool is_digits(std::string_view v) {
  return !v.empty() && v.size() <= 19 && std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; });
}

Result<std::int64_t> parse_epoch(std::string_view v, const std::string& what) {
  std::int64_t out = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (!is_digits(v) || ec != std::errc() || p != v.data() + v.size() || out < 0) {
    return malformed(what + " is not a non-negative integer: '" + std::string(v.substr(0, 64)) + "'");
  }
  return out;
}

bool valid_key(std::string_view k, bool deb) {
  if (k.empty() || k.size() > 128) return false;
  return std::all_of(k.begin(), k.end(), [deb](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           (deb && ((c >= 'A' && c <= 'Z') || c == '-'));
  });
}

// DEB_BUILD_OPTIONS / DEB_BUILD_PROFILES: "tok tok=value ...", where a
// name is [a-z0-9][a-z0-9_.+-]* and a value [A-Za-z0-9_.,+:=-]* (e.g.
// "parallel=4 nocheck hardening=+all,-pie"); no quotes, '$', '/', ';', '`'.
bool valid_token_list(std::string_view v) {
  if (v.size() > 1024) return false;
  std::size_t start = 0;
  while (start < v.size()) {
    std::size_t end = v.find(' ', start);
    if (end == std::string_view::npos) end = v.size();
    const std::string_view tok = v.substr(start, end - start);
    start = end + 1;
    if (tok.empty()) continue;
    const auto eq = tok.find('=');
    const std::string_view name = tok.substr(0, eq);
    if (name.empty() || name.front() == '-' || name.front() == '.' || !all_of_chars(name, "_.+-")) return false;
    if (eq != std::string_view::npos && !all_of_chars(tok.substr(eq + 1), "_.,+:=-")) return false;
  }
  return true;
}

bool is_locale_var(std::string_view name) {
  static const std::set<std::string, std::less<>> kLocale = {
      "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_NUMERIC", "LC_TIME", "LC_COLLATE", "LC_MONETARY", "LC_MESSAGES",
      "LC_PAPER", "LC_NAME", "LC_ADDRESS", "LC_TELEPHONE", "LC_MEASUREMENT", "LC_IDENTIFICATION"};
  return kLocale.count(name) > 0;
}

// Names that become path components when the backends look for sources:
// letters, digits and `extra`, not starting with '.' or '-' (so never "..").
Result<void> check_name_field(const std::string& what, std::string_view v, std::string_view extra) {
  if (v.empty() || v.size() > 255 || v.front() == '.' || v.front() == '-' || !all_of_chars(v, extra)) {
    return malformed(what + " is not a safe package name or version: '" + std::string(v.substr(0, 120)) + "'");
  }
  return ok();
}

bool has_line_break_or_nul(std::string_view v) { return v.find_first_of(std::string_view("\n\r\0", 3)) != std::string_view::npos; }

}  // namespace

bool build_env_allowed(std::string_view name, std::string_view value) {
  if (name == "SOURCE_DATE_EPOCH") return is_digits(value);
  if (name == "DEB_BUILD_OPTIONS" || name == "DEB_BUILD_PROFILES") return valid_token_list(value);
  if (is_locale_var(name)) return !value.empty() && value.size() <= 64 && all_of_chars(value, "_.@:-");
  return false;
}

std::string shell_quote(std::string_view s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

Result<std::string> config_line_value(std::string_view name, std::string_view value) {
  if (has_line_break_or_nul(value)) {
    return malformed(std::string(name) + " holds a line break or NUL; refused for a generated config line");
  }
  return shell_quote(value);
}

Result<std::string> rpm_macro_body(std::string_view name, std::string_view value) {
  if (has_line_break_or_nul(value)) return malformed(std::string(name) + " holds a line break or NUL; refused as an rpm macro body");
  for (std::string_view bad : {"$(", "${", "`"}) {
    if (value.find(bad) != std::string_view::npos) {
      return malformed(std::string(name) + " holds '" + std::string(bad) + "'; refused as an rpm macro body: '" +
                       std::string(value.substr(0, 200)) + "'");
    }
  }
  std::string out;
  for (char c : value) out += c == '%' ? std::string("%%") : std::string(1, c);
  return out;
}

Result<void> check_build_path(std::string_view what, std::string_view path) {
  auto bad = [&](const std::string& why) {
    return malformed(std::string(what) + " '" + std::string(path.substr(0, 200)) + "' refused: " + why);
  };
  if (path.size() > 255 || path.size() < 2 || path.front() != '/') return bad("not an absolute path of 2..255 bytes");
  std::vector<std::string_view> parts;
  std::size_t start = 1;
  while (start <= path.size()) {
    std::size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    const std::string_view c = path.substr(start, end - start);
    if (c.empty() || c == "." || c == ".." || !all_of_chars(c, "._+-")) return bad("component '" + std::string(c) + "' is empty, a dot component or has unsafe characters");
    parts.push_back(c);
    start = end + 1;
  }
  if (parts.size() > 16) return bad("more than 16 components");
  static const std::set<std::string, std::less<>> kSystem = {"proc", "sys", "dev", "etc", "var", "bin", "sbin", "lib",
                                                            "lib32", "lib64", "libx32", "nix", "run", "boot", "root",
                                                            "kmr", "pkgdest", "opt", "srv", "usr"};
  // Below /usr/src (OBS's old topdir) and the sandbox's own /tmp and /var/tmp is fine.
  const bool below_scratch = (parts[0] == "usr" && parts.size() > 2 && parts[1] == "src") ||
                             (parts[0] == "var" && parts.size() > 2 && parts[1] == "tmp");
  if (kSystem.count(parts[0]) && !below_scratch) return bad("a system location");
  if (parts[0] == "tmp" && parts.size() == 1) return bad("a system location");
  return ok();
}

Result<void> check_user_name(std::string_view what, std::string_view name) {
  const bool good = !name.empty() && name.size() <= 32 && ((name[0] >= 'a' && name[0] <= 'z') || name[0] == '_') &&
                    std::all_of(name.begin(), name.end(), [](char c) {
                      return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
                    });
  if (!good) return malformed(std::string(what) + " '" + std::string(name.substr(0, 64)) + "' is not a safe user name");
  return ok();
}

nlohmann::json BuildEnvironment::to_json() const {
  nlohmann::json j = nlohmann::json::object();
  j["distro"] = distro;
  j["description"] = description;
  j["source_date_epoch"] = source_date_epoch ? nlohmann::json(*source_date_epoch) : nlohmann::json(nullptr);
  j["build_path"] = build_path;
  j["build_user"] = build_user;
  j["build_host"] = build_host;
  j["env"] = env;
  if (!dropped_env.empty()) j["dropped_env"] = dropped_env;
  j["buildenv"] = buildenv;
  j["options"] = options;
  j["installed"] = installed;
  j["fields"] = fields;
  return j;
}

std::string BuildEnvironment::canonical_json() const {
  // nlohmann::json keeps object keys in a std::map (sorted by byte value)
  // and dump() without indent emits no whitespace: one byte string per value.
  return to_json().dump(-1, ' ', false, nlohmann::json::error_handler_t::strict);
}

std::string BuildEnvironment::digest() const { return "sha256:" + sha256_hex(as_bytes(canonical_json())); }

Result<BuildEnvironment> parse_arch_buildinfo(std::string_view text, const Limits& limits) {
  const std::string what = ".BUILDINFO";
  KMR_ASSIGN_OR_RETURN(auto lines, split_lines(text, limits, what));
  BuildEnvironment env;
  env.distro = "arch";
  env.description = ".BUILDINFO";
  static const std::set<std::string, std::less<>> kRepeated = {"buildenv", "options", "installed"};
  std::size_t n = 0;
  for (std::string_view raw : lines) {
    ++n;
    const std::string_view line = trim(raw);
    if (line.empty() || line.front() == '#') continue;
    const auto eq = line.find('=');
    if (eq == std::string_view::npos) {
      return malformed(what + ": line " + std::to_string(n) + ": expected 'key = value'");
    }
    const std::string key(trim(line.substr(0, eq)));
    const std::string value(trim(line.substr(eq + 1)));
    if (!valid_key(key, false)) return malformed(what + ": line " + std::to_string(n) + ": invalid key '" + key.substr(0, 64) + "'");
    if (kRepeated.count(key)) {
      auto& list = key == "buildenv" ? env.buildenv : key == "options" ? env.options : env.installed;
      if (list.size() >= kMaxEntries) return limit_exceeded(what + ": more than " + std::to_string(kMaxEntries) + " " + key + " entries");
      if (!value.empty()) list.push_back(value);
      continue;
    }
    if (env.fields.count(key)) return malformed(what + ": line " + std::to_string(n) + ": duplicate key '" + key + "'");
    env.fields[key] = value;
  }
  for (const char* required : {"format", "pkgname", "pkgver", "builddate"}) {
    if (!env.fields.count(required)) return malformed(what + ": missing '" + std::string(required) + "'");
  }
  if (env.fields["format"] != "1" && env.fields["format"] != "2") {
    return unsupported(what + ": unsupported format '" + env.fields["format"] + "'");
  }
  // makepkg's own rule for names ([[:alnum:]+_.@-]); pkgver-pkgrel likewise.
  for (const char* k : {"pkgname", "pkgbase"}) {
    if (env.fields.count(k)) KMR_TRY(check_name_field(what + ": " + k, env.fields[k], "+_.@-"));
  }
  KMR_TRY(check_name_field(what + ": pkgver", env.fields["pkgver"], "+_.@:~-"));
  KMR_ASSIGN_OR_RETURN(env.source_date_epoch, parse_epoch(env.fields["builddate"], what + ": builddate"));
  env.env["SOURCE_DATE_EPOCH"] = env.fields["builddate"];
  if (env.fields.count("builddir")) env.build_path = env.fields["builddir"];
  if (env.fields.count("pkgbuild_sha256sum") && env.fields["pkgbuild_sha256sum"].size() != 64) {
    return malformed(what + ": pkgbuild_sha256sum is not a SHA-256: '" + env.fields["pkgbuild_sha256sum"].substr(0, 80) + "'");
  }
  return env;
}

namespace {

// The index of the first body line: past the armor headers ("Hash: SHA512")
// and the blank line of a clearsigned message, else 0.
Result<std::size_t> debian_body_start(const std::vector<std::string_view>& lines, bool signed_msg, const std::string& what) {
  if (!signed_msg) return std::size_t{0};
  std::size_t i = 1;
  while (i < lines.size() && !trim(lines[i]).empty()) ++i;
  if (i == lines.size()) return malformed(what + ": clearsigned message without a body");
  return i + 1;
}

// The one deb822 paragraph from lines[i] on into env.fields; a clearsigned
// message ends at its signature and has its dash-escapes removed.
Result<void> parse_debian_paragraph(const std::vector<std::string_view>& lines, std::size_t i, bool signed_msg,
                                    const Limits& limits, const std::string& what, BuildEnvironment& env) {
  std::string current;
  bool seen_field = false, ended = false;
  for (; i < lines.size(); ++i) {
    std::string_view line = lines[i];
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const std::string n = std::to_string(i + 1);
    if (signed_msg) {
      if (line == "-----BEGIN PGP SIGNATURE-----") break;
      if (line.substr(0, 2) == "- ") line.remove_prefix(2);
    }
    if (trim(line).empty()) {
      if (seen_field) ended = true;
      continue;
    }
    if (ended) return malformed(what + ": line " + n + ": more than one paragraph");
    if (line.front() == '#') continue;
    if (line.front() == ' ' || line.front() == '\t') {
      if (current.empty()) return malformed(what + ": line " + n + ": continuation line before any field");
      auto& v = env.fields[current];
      if (v.size() + line.size() > limits.max_line_len * 64) return limit_exceeded(what + ": field " + current + " too long");
      if (!v.empty()) v += '\n';
      v += std::string(trim(line));
      continue;
    }
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) return malformed(what + ": line " + n + ": expected 'Field: value'");
    const std::string key(line.substr(0, colon));
    if (!valid_key(key, true)) return malformed(what + ": line " + n + ": invalid field name '" + key.substr(0, 64) + "'");
    if (env.fields.count(key)) return malformed(what + ": line " + n + ": duplicate field '" + key + "'");
    if (env.fields.size() >= 1024) return limit_exceeded(what + ": too many fields");
    env.fields[key] = std::string(trim(line.substr(colon + 1)));
    current = key;
    seen_field = true;
  }
  return ok();
}

// Installed-Build-Depends: "pkg (= ver)," entries -> "pkg=ver" in env.installed.
Result<void> parse_installed_build_depends(std::string_view all, const std::string& what, BuildEnvironment& env) {
  std::size_t start = 0;
  while (start <= all.size()) {
    std::size_t end = all.find(',', start);
    if (end == std::string_view::npos) end = all.size();
    const std::string_view item = trim(all.substr(start, end - start));
    start = end + 1;
    if (item.empty() || item == "\n") continue;
    std::string_view dep = item;
    while (!dep.empty() && (dep.front() == '\n' || dep.front() == ' ')) dep.remove_prefix(1);
    const auto paren = dep.find('(');
    if (paren == std::string_view::npos) {
      env.installed.push_back(std::string(trim(dep)));
    } else {
      const auto close = dep.find(')', paren);
      std::string_view ver = dep.substr(paren + 1, close == std::string_view::npos ? std::string_view::npos : close - paren - 1);
      ver = trim(ver);
      if (ver.substr(0, 1) != "=") return malformed(what + ": Installed-Build-Depends entry without '=' version: '" + std::string(dep.substr(0, 80)) + "'");
      env.installed.push_back(std::string(trim(dep.substr(0, paren))) + "=" + std::string(trim(ver.substr(1))));
    }
    if (env.installed.size() > kMaxEntries) return limit_exceeded(what + ": too many Installed-Build-Depends");
  }
  return ok();
}

// Environment: KEY="value" lines into env.env, or env.dropped_env when not allowed.
Result<void> parse_environment_field(std::string_view all, const std::string& what, BuildEnvironment& env) {
  std::size_t start = 0;
  while (start < all.size()) {
    std::size_t end = all.find('\n', start);
    if (end == std::string_view::npos) end = all.size();
    const std::string_view item = trim(all.substr(start, end - start));
    start = end + 1;
    if (item.empty()) continue;
    const auto eq = item.find('=');
    if (eq == std::string_view::npos || eq == 0) return malformed(what + ": Environment entry is not KEY=value: '" + std::string(item.substr(0, 80)) + "'");
    std::string_view val = item.substr(eq + 1);
    if (val.size() >= 2 && val.front() == '"' && val.back() == '"') val = val.substr(1, val.size() - 2);
    const std::string name(item.substr(0, eq));
    if (name == "SOURCE_DATE_EPOCH") {
      KMR_ASSIGN_OR_RETURN(env.source_date_epoch, parse_epoch(val, what + ": SOURCE_DATE_EPOCH"));
    }
    if (env.env.count(name) || env.dropped_env.count(name)) {
      return malformed(what + ": Environment sets '" + name.substr(0, 64) + "' twice");
    }
    (build_env_allowed(name, val) ? env.env : env.dropped_env)[name] = std::string(val);
  }
  return ok();
}

}  // namespace

Result<BuildEnvironment> parse_debian_buildinfo(std::string_view text, const std::string& distro,
                                                const Limits& limits) {
  const std::string what = ".buildinfo";
  KMR_ASSIGN_OR_RETURN(auto lines, split_lines(text, limits, what));
  const bool signed_msg = !lines.empty() && trim(lines[0]) == "-----BEGIN PGP SIGNED MESSAGE-----";
  KMR_ASSIGN_OR_RETURN(const std::size_t body, debian_body_start(lines, signed_msg, what));
  BuildEnvironment env;
  env.distro = distro;
  env.description = ".buildinfo";
  KMR_TRY(parse_debian_paragraph(lines, body, signed_msg, limits, what, env));
  for (const char* required : {"Source", "Version"}) {
    if (!env.fields.count(required)) return malformed(what + ": missing field '" + std::string(required) + "'");
  }
  // Debian policy: package names [a-z0-9][a-z0-9+.-]*, versions [A-Za-z0-9.+~:-];
  // "Source: name (version)" names the source of a binNMU.
  const std::string& source = env.fields["Source"];
  KMR_TRY(check_name_field(what + ": Source", std::string_view(source).substr(0, source.find(' ')), "+.-"));
  KMR_TRY(check_name_field(what + ": Version", env.fields["Version"], ".+~:-"));
  if (auto it = env.fields.find("Installed-Build-Depends"); it != env.fields.end()) {
    KMR_TRY(parse_installed_build_depends(it->second, what, env));
  }
  if (auto it = env.fields.find("Environment"); it != env.fields.end()) {
    KMR_TRY(parse_environment_field(it->second, what, env));
  }
  if (auto it = env.fields.find("Build-Path"); it != env.fields.end()) env.build_path = it->second;
  return env;
}

Result<DistUrl> parse_disturl(std::string_view url) {
  const std::string what = "DISTURL '" + std::string(url.substr(0, 200)) + "'";
  if (url.substr(0, 6) != "obs://") return malformed(what + ": not an obs:// URL");
  std::vector<std::string> parts;
  std::size_t start = 6;
  while (start <= url.size()) {
    std::size_t end = url.find('/', start);
    if (end == std::string_view::npos) end = url.size();
    parts.emplace_back(url.substr(start, end - start));
    start = end + 1;
  }
  if (parts.size() < 4) return malformed(what + ": expected obs://host/project/repository/srcmd5-package");
  DistUrl d;
  d.host = parts[0];
  d.repository = parts[parts.size() - 2];
  for (std::size_t k = 1; k + 2 < parts.size(); ++k) d.project += (k > 1 ? "/" : "") + parts[k];
  std::string last = parts.back();
  const auto dash = last.find('-');
  if (dash == std::string::npos) return malformed(what + ": last component has no '<srcmd5>-<package>'");
  d.srcmd5 = last.substr(0, dash);
  d.package = last.substr(dash + 1);
  if (const auto colon = d.package.find(':'); colon != std::string::npos) {
    d.flavor = d.package.substr(colon + 1);
    d.package = d.package.substr(0, colon);
  }
  if (d.host.empty() || d.project.empty() || d.repository.empty() || d.srcmd5.empty() || d.package.empty()) {
    return malformed(what + ": empty component");
  }
  return d;
}

Result<BuildEnvironment> suse_environment(const RpmBuildFacts& facts) {
  BuildEnvironment env;
  env.distro = "suse";
  env.description = "rpm-header";
  for (const auto* s : {&facts.name, &facts.version, &facts.release, &facts.arch, &facts.disturl, &facts.buildhost,
                        &facts.sourcerpm}) {
    if (!valid_utf8(*s) || s->find('\0') != std::string::npos) return malformed("rpm header: invalid UTF-8 in a string tag");
  }
  if (facts.buildtime < 0) return malformed("rpm header: negative BUILDTIME");
  env.source_date_epoch = facts.buildtime;
  env.env["SOURCE_DATE_EPOCH"] = std::to_string(facts.buildtime);
  env.build_host = facts.buildhost;
  env.fields = {{"name", facts.name},       {"version", facts.version},     {"release", facts.release},
                {"arch", facts.arch},       {"disturl", facts.disturl},     {"buildhost", facts.buildhost},
                {"sourcerpm", facts.sourcerpm}, {"buildtime", std::to_string(facts.buildtime)}};
  if (!facts.disturl.empty()) {
    KMR_ASSIGN_OR_RETURN(auto d, parse_disturl(facts.disturl));
    env.fields["obs_project"] = d.project;
    env.fields["obs_repository"] = d.repository;
    env.fields["obs_srcmd5"] = d.srcmd5;
    env.fields["obs_package"] = d.package;
    if (!d.flavor.empty()) env.fields["obs_flavor"] = d.flavor;
  }
  return env;
}

Result<BuildEnvironment> parse_nix_narinfo(std::string_view text, const Limits& limits) {
  const std::string what = "narinfo";
  KMR_ASSIGN_OR_RETURN(auto lines, split_lines(text, limits, what));
  BuildEnvironment env;
  env.distro = "nixos";
  env.description = "narinfo";
  std::size_t n = 0;
  for (std::string_view raw : lines) {
    ++n;
    const std::string_view line = trim(raw);
    if (line.empty()) continue;
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) return malformed(what + ": line " + std::to_string(n) + ": expected 'Key: value'");
    const std::string key(line.substr(0, colon));
    if (!valid_key(key, true)) return malformed(what + ": line " + std::to_string(n) + ": invalid key '" + key.substr(0, 64) + "'");
    std::string value(trim(line.substr(colon + 1)));
    if (key == "Sig") continue;  // signatures are not part of the environment
    if (env.fields.count(key)) return malformed(what + ": line " + std::to_string(n) + ": duplicate key '" + key + "'");
    env.fields[key] = std::move(value);
  }
  if (!env.fields.count("StorePath")) return malformed(what + ": missing 'StorePath'");
  for (const char* unsigned_key : {"URL", "Compression", "FileHash", "FileSize"}) env.fields.erase(unsigned_key);
  if (auto it = env.fields.find("Deriver"); it != env.fields.end()) {
    const std::string& d = it->second;
    if (d.find('/') != std::string::npos || d.size() < 5 || d.substr(d.size() - 4) != ".drv") {
      return malformed(what + ": Deriver is not a .drv basename: '" + d.substr(0, 120) + "'");
    }
  }
  // Nix pins the build itself: sandboxed /build, nixbld user, epoch 1 unless the drv says otherwise.
  env.build_path = "/build";
  return env;
}

bool is_valid_utf8(std::string_view s) { return valid_utf8(s); }

}  // namespace kmr::build
