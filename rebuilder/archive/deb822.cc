#include "rebuilder/archive/deb822.h"

#include <algorithm>
#include <charconv>
#include <strings.h>

#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"
#include "rebuilder/base/text.h"

namespace kmr::archive {

namespace {
bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && ::strncasecmp(a.data(), b.data(), a.size()) == 0;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

std::vector<std::string> split_lines(std::string_view v) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < v.size()) {
    std::size_t j = v.find('\n', i);
    if (j == std::string_view::npos) j = v.size();
    const std::string_view l = trim(v.substr(i, j - i));
    if (!l.empty()) out.emplace_back(l);
    i = j + 1;
  }
  return out;
}
}  // namespace

const std::string* Deb822Paragraph::get(std::string_view name) const {
  for (const auto& [k, v] : fields) {
    if (iequals(k, name)) return &v;
  }
  return nullptr;
}

std::string Deb822Paragraph::get_or(std::string_view name, const std::string& fallback) const {
  const std::string* v = get(name);
  return v ? *v : fallback;
}

Result<std::string> strip_clearsign(std::string_view text, const std::string& name) {
  constexpr std::string_view kBegin = "-----BEGIN PGP SIGNED MESSAGE-----";
  constexpr std::string_view kSig = "-----BEGIN PGP SIGNATURE-----";
  constexpr std::string_view kEnd = "-----END PGP SIGNATURE-----";
  std::string_view t = text;
  while (!t.empty() && (t.front() == '\n' || t.front() == '\r')) t.remove_prefix(1);
  if (t.substr(0, kBegin.size()) != kBegin) return std::string(text);
  // Armor headers ("Hash: SHA512") up to the first empty line.
  const std::size_t blank = t.find("\n\n");
  if (blank == std::string_view::npos) return malformed(name + ": clearsigned message without a body");
  std::string_view body = t.substr(blank + 2);
  const std::size_t sig = body.find(std::string("\n") + std::string(kSig));
  if (sig == std::string_view::npos) return malformed(name + ": clearsigned message without a signature");
  if (body.find(kEnd, sig) == std::string_view::npos) {
    return malformed(name + ": clearsigned signature block not terminated");
  }
  body = body.substr(0, sig + 1);
  std::string out;
  std::size_t i = 0;
  while (i < body.size()) {
    std::size_t j = body.find('\n', i);
    if (j == std::string_view::npos) j = body.size();
    std::string_view line = body.substr(i, j - i);
    if (line.substr(0, 2) == "- ") line.remove_prefix(2);
    out += line;
    out += '\n';
    i = j + 1;
  }
  return out;
}

Result<std::vector<Deb822Paragraph>> parse_deb822(std::string_view input, const std::string& name,
                                                  const Deb822Options& options) {
  KMR_ASSIGN_OR_RETURN(std::string text, strip_clearsign(input, name));
  std::vector<Deb822Paragraph> out;
  Deb822Paragraph cur;
  bool in_para = false;
  std::size_t lineno = 0;
  std::size_t i = 0;
  auto close = [&]() -> Result<void> {
    if (in_para) {
      if (out.size() >= options.max_paragraphs) {
        return limit_exceeded(name + ": more than " + std::to_string(options.max_paragraphs) + " paragraphs");
      }
      out.push_back(std::move(cur));
      cur = Deb822Paragraph();
      in_para = false;
    }
    return ok();
  };
  while (i < text.size()) {
    ++lineno;
    std::size_t j = text.find('\n', i);
    if (j == std::string::npos) j = text.size();
    std::string_view line(text.data() + i, j - i);
    i = j + 1;
    const std::string where = name + ": line " + std::to_string(lineno);
    if (line.size() > options.limits.max_line_len) {
      return limit_exceeded(where + " longer than " + std::to_string(options.limits.max_line_len) + " bytes");
    }
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find('\0') != std::string_view::npos) return malformed(where + ": NUL byte");
    if (trim(line).empty()) {
      KMR_TRY(close());
      continue;
    }
    if (line.front() == '#') continue;
    if (line.front() == ' ' || line.front() == '\t') {
      if (!in_para || cur.fields.empty()) return malformed(where + ": continuation line without a field");
      std::string& v = cur.fields.back().second;
      if (v.size() + line.size() > options.limits.max_line_len * 64) {
        return limit_exceeded(where + ": field value too long");
      }
      std::string_view cont = line.substr(1);
      v += '\n';
      v += cont;
      continue;
    }
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return malformed(where + ": expected 'Field: value'");
    const std::string_view key = line.substr(0, colon);
    for (char c : key) {
      if (c <= 0x20 || c >= 0x7f) return malformed(where + ": bad character in field name");
    }
    if (in_para && cur.get(key)) return malformed(where + ": duplicate field '" + std::string(key) + "'");
    if (cur.fields.size() >= options.max_fields) {
      return limit_exceeded(where + ": more than " + std::to_string(options.max_fields) + " fields");
    }
    in_para = true;
    cur.fields.emplace_back(std::string(key), std::string(trim(line.substr(colon + 1))));
  }
  KMR_TRY(close());
  return out;
}

Result<std::vector<ReleaseFile>> release_sha256(const Deb822Paragraph& release, const std::string& name) {
  const std::string* v = release.get("SHA256");
  if (!v) return malformed(name + ": no SHA256 field");
  std::vector<ReleaseFile> out;
  for (const std::string& line : split_lines(*v)) {
    ReleaseFile f;
    const std::size_t a = line.find(' ');
    const std::size_t b = a == std::string::npos ? a : line.find_first_not_of(' ', a);
    const std::size_t c = b == std::string::npos ? b : line.find(' ', b);
    const std::size_t d = c == std::string::npos ? c : line.find_first_not_of(' ', c);
    if (d == std::string::npos) return malformed(name + ": SHA256 line '" + line + "': expected '<hash> <size> <path>'");
    f.hash = line.substr(0, a);
    const std::string size = line.substr(b, c - b);
    f.path = line.substr(d);
    auto [p, ec] = std::from_chars(size.data(), size.data() + size.size(), f.size);
    if (!is_sha256_hex(f.hash) || ec != std::errc() || p != size.data() + size.size()) {
      return malformed(name + ": SHA256 line '" + line + "': bad hash or size");
    }
    out.push_back(std::move(f));
  }
  return out;
}

Result<void> check_release_entry(const std::vector<ReleaseFile>& files, const std::string& path,
                                 std::string_view data) {
  for (const ReleaseFile& f : files) {
    if (f.path != path) continue;
    if (f.size != data.size()) {
      return Error(ErrorCode::kVerificationFailed, path + ": size " + std::to_string(data.size()) +
                                                       " does not match Release (" + std::to_string(f.size) + ")");
    }
    const std::string got = sha256_hex(as_bytes(data));
    const std::string want = ascii_lower(f.hash);
    if (got != want) {
      return Error(ErrorCode::kVerificationFailed, path + ": SHA256 " + got + " does not match Release (" + want + ")");
    }
    return ok();
  }
  return not_found(path + ": not listed in Release");
}

Result<DebBuildinfo> parse_deb_buildinfo(std::string_view text, const std::string& name) {
  KMR_ASSIGN_OR_RETURN(auto paras, parse_deb822(text, name));
  if (paras.size() != 1) return malformed(name + ": expected one paragraph, got " + std::to_string(paras.size()));
  const Deb822Paragraph& p = paras[0];
  DebBuildinfo b;
  b.format = p.get_or("Format");
  if (b.format.empty()) return malformed(name + ": missing Format");
  b.source = p.get_or("Source");
  b.binary = p.get_or("Binary");
  b.architecture = p.get_or("Architecture");
  b.version = p.get_or("Version");
  b.build_origin = p.get_or("Build-Origin");
  b.build_architecture = p.get_or("Build-Architecture");
  b.build_date = p.get_or("Build-Date");
  b.build_kernel_version = p.get_or("Build-Kernel-Version");
  b.build_path = p.get_or("Build-Path");
  for (std::string dep : split_lines(p.get_or("Installed-Build-Depends"))) {
    if (!dep.empty() && dep.back() == ',') dep.pop_back();
    b.installed_build_depends.push_back(std::move(dep));
  }
  b.environment = split_lines(p.get_or("Environment"));
  b.checksums_sha256 = split_lines(p.get_or("Checksums-Sha256"));
  return b;
}

}  // namespace kmr::archive
