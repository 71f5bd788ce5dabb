#include "rebuilder/distros/common/template.h"

#include <algorithm>

namespace kmr::distros {
namespace {

constexpr std::size_t kMaxTemplate = 2048;
constexpr std::size_t kMaxName = 32;
constexpr std::size_t kMaxValue = 255;

bool name_char(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; }

bool segment_char(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("-._~!$&'()*+,;=:@").find(c) != std::string_view::npos;
}

// Quotes at most 80 bytes of a value for an error message, control bytes replaced.
std::string quoted(std::string_view s) {
  std::string out = "\"";
  for (char c : s.substr(0, 80)) out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
  return out + (s.size() > 80 ? "...\"" : "\"");
}

}  // namespace

Result<std::vector<std::string>> template_placeholders(std::string_view tmpl) {
  if (tmpl.size() > kMaxTemplate) return limit_exceeded("template longer than 2048 bytes");
  std::vector<std::string> names;
  for (std::size_t i = 0; i < tmpl.size(); ++i) {
    if (tmpl[i] == '}') return malformed("template " + quoted(tmpl) + ": '}' without '{'");
    if (tmpl[i] != '{') continue;
    const std::size_t close = tmpl.find('}', i + 1);
    if (close == std::string_view::npos) return malformed("template " + quoted(tmpl) + ": '{' without '}'");
    const std::string_view name = tmpl.substr(i + 1, close - i - 1);
    if (name.empty() || name.size() > kMaxName || !std::all_of(name.begin(), name.end(), name_char))
      return malformed("template " + quoted(tmpl) + ": bad placeholder {" + std::string(name.substr(0, kMaxName)) +
                       "} (names are a-z, 0-9 and _)");
    names.emplace_back(name);
    i = close;
  }
  return names;
}

Result<void> check_url_template(std::string_view key, std::string_view tmpl, const std::set<std::string>& allowed) {
  const std::string where(key);
  auto names = template_placeholders(tmpl);
  if (!names) return Error(names.error().code(), where + ": " + names.error().message());
  std::size_t host_at = 0;
  for (std::string_view scheme : {"https://", "http://", "file://"})
    if (tmpl.substr(0, scheme.size()) == scheme) host_at = scheme.size();
  if (host_at == 0) return malformed(where + ": " + quoted(tmpl) + " must start with https://, http:// or file://");
  const std::size_t path_at = tmpl.find('/', host_at);
  if (path_at == std::string_view::npos) return malformed(where + ": " + quoted(tmpl) + " has no path");
  if (tmpl.substr(0, path_at).find('{') != std::string_view::npos)
    return malformed(where + ": " + quoted(tmpl) + ": placeholders may appear only in the path");
  if (tmpl.substr(0, 7) != "file://" && path_at == host_at) return malformed(where + ": " + quoted(tmpl) + " has no host");
  for (char c : tmpl)
    if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f || c == '\\')
      return malformed(where + ": " + quoted(tmpl) + " contains a space, control byte, backslash or non-ASCII byte");
  for (const auto& n : *names) {
    if (allowed.count(n)) continue;
    std::string list;
    for (const auto& a : allowed) list += (list.empty() ? "{" : ", {") + a + "}";
    return malformed(where + ": unknown placeholder {" + n + "} (known: " + (list.empty() ? "none" : list) + ")");
  }
  return ok();
}

bool is_segment_value(std::string_view v) {
  if (v.empty() || v.size() > kMaxValue || v == "." || v == "..") return false;
  return std::all_of(v.begin(), v.end(), segment_char);
}

Result<std::string> expand_template(std::string_view tmpl, const TemplateVars& vars) {
  KMR_ASSIGN_OR_RETURN(auto names, template_placeholders(tmpl));
  std::string out;
  std::size_t pos = 0;
  for (const auto& n : names) {
    const std::size_t open = tmpl.find('{', pos);
    out.append(tmpl.substr(pos, open - pos));
    auto it = vars.find(n);
    if (it == vars.end()) return malformed("template " + quoted(tmpl) + ": no value for {" + n + "}");
    if (!is_segment_value(it->second))
      return malformed("template " + quoted(tmpl) + ": value " + quoted(it->second) + " for {" + n +
                       "} is not a URL path segment");
    out += it->second;
    pos = open + n.size() + 2;
  }
  out.append(tmpl.substr(pos));
  return out;
}

}  // namespace kmr::distros
