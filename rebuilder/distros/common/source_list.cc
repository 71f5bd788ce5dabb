#include "rebuilder/distros/common/source_list.h"

#include <algorithm>
#include <set>

#include <nlohmann/json.hpp>

#include "rebuilder/base/json_nesting.h"

namespace kmr::distros {
namespace {

using nlohmann::json;

constexpr std::uint64_t kMaxSourceSize = 64ull << 30;

bool lower_hex64(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

bool printable(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
}

// A git ref: [A-Za-z0-9._+-/], 1 to 255 bytes, no "..", not starting with '-' or '/'.
bool is_git_ref(std::string_view r) {
  if (r.empty() || r.size() > 255 || r[0] == '-' || r[0] == '/' || r.find("..") != std::string_view::npos) return false;
  return std::all_of(r.begin(), r.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '+' || c == '-' || c == '/';
  });
}


Result<std::string> string_field(const json& j, const char* key, bool required, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end()) {
    if (required) return malformed(where + ": missing \"" + key + "\"");
    return std::string();
  }
  if (!it->is_string()) return malformed(where + ": \"" + key + "\" is not a string");
  return it->get<std::string>();
}

Result<void> check_keys(const json& j, std::initializer_list<const char*> keys, const std::string& where) {
  for (auto it = j.begin(); it != j.end(); ++it)
    if (std::none_of(keys.begin(), keys.end(), [&](const char* k) { return it.key() == k; }))
      return malformed(where + ": unknown key \"" + it.key().substr(0, 40) + "\"");
  return ok();
}

Result<SourceFile> parse_file(const json& j, const std::string& where) {
  if (!j.is_object()) return malformed(where + ": not an object");
  KMR_TRY(check_keys(j, {"name", "url", "sha256", "size", "what"}, where));
  SourceFile f;
  KMR_ASSIGN_OR_RETURN(f.name, string_field(j, "name", true, where));
  KMR_ASSIGN_OR_RETURN(f.url, string_field(j, "url", true, where));
  KMR_ASSIGN_OR_RETURN(f.sha256, string_field(j, "sha256", false, where));
  KMR_ASSIGN_OR_RETURN(f.what, string_field(j, "what", false, where));
  if (auto it = j.find("size"); it != j.end()) {
    if (!it->is_number_unsigned()) return malformed(where + ": \"size\" is not a non-negative integer");
    f.size = it->get<std::uint64_t>();
  }
  return f;
}

Result<GitSource> parse_git(const json& j, const std::string& where) {
  if (!j.is_object()) return malformed(where + ": not an object");
  KMR_TRY(check_keys(j, {"url", "ref", "dir", "what"}, where));
  GitSource g;
  KMR_ASSIGN_OR_RETURN(g.url, string_field(j, "url", true, where));
  KMR_ASSIGN_OR_RETURN(g.ref, string_field(j, "ref", true, where));
  KMR_ASSIGN_OR_RETURN(g.dir, string_field(j, "dir", true, where));
  KMR_ASSIGN_OR_RETURN(g.what, string_field(j, "what", false, where));
  return g;
}

}  // namespace

bool is_plain_file_name(std::string_view n) {
  if (n.empty() || n.size() > 255 || n[0] == '.' || n[0] == '-') return false;
  return std::all_of(n.begin(), n.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("._+~:@=,-").find(c) != std::string_view::npos;
  });
}

bool is_source_url(std::string_view u) {
  if (u.size() > 4096 || !printable(u) || u.find(' ') != std::string_view::npos || u.find('\\') != std::string_view::npos)
    return false;
  for (std::string_view scheme : {"https://", "http://", "file:///"})
    if (u.size() > scheme.size() && u.substr(0, scheme.size()) == scheme) return true;
  return false;
}

Result<void> validate(const SourceList& list) {
  if (list.files.size() > kMaxSourceFiles) return limit_exceeded("more than 256 source files");
  if (list.git.size() > kMaxGitSources) return limit_exceeded("more than 16 git sources");
  std::set<std::string> names;
  for (std::size_t i = 0; i < list.files.size(); ++i) {
    const SourceFile& f = list.files[i];
    const std::string where = "sources.files[" + std::to_string(i) + "]";
    if (!is_plain_file_name(f.name)) return malformed(where + ": name is not a plain file name");
    if (!is_source_url(f.url)) return malformed(where + " (" + f.name + "): url is not an http(s) or file URL");
    if (!f.sha256.empty() && !lower_hex64(f.sha256)) return malformed(where + " (" + f.name + "): sha256 is not 64 lowercase hex digits");
    if (f.size && *f.size > kMaxSourceSize) return limit_exceeded(where + " (" + f.name + "): size over 64 GiB");
    if (f.what.size() > 200 || !printable(f.what)) return malformed(where + " (" + f.name + "): bad \"what\"");
    if (!names.insert(f.name).second) return malformed(where + ": duplicate name " + f.name);
  }
  for (std::size_t i = 0; i < list.git.size(); ++i) {
    const GitSource& g = list.git[i];
    const std::string where = "sources.git[" + std::to_string(i) + "]";
    if (!is_plain_file_name(g.dir)) return malformed(where + ": dir is not a plain file name");
    if (!is_source_url(g.url)) return malformed(where + " (" + g.dir + "): url is not an http(s) or file URL");
    if (!is_git_ref(g.ref)) return malformed(where + " (" + g.dir + "): ref is not a plain tag or branch name");
    if (g.what.size() > 200 || !printable(g.what)) return malformed(where + " (" + g.dir + "): bad \"what\"");
    if (!names.insert(g.dir).second) return malformed(where + ": duplicate name " + g.dir);
  }
  return ok();
}

Result<std::string> to_json(const SourceList& list) {
  KMR_TRY(validate(list));
  json j = {{"kmr_sources", 1}, {"files", json::array()}, {"git", json::array()}};
  for (const auto& f : list.files) {
    json e = {{"name", f.name}, {"url", f.url}, {"what", f.what}};
    if (!f.sha256.empty()) e["sha256"] = f.sha256;
    if (f.size) e["size"] = *f.size;
    j["files"].push_back(std::move(e));
  }
  for (const auto& g : list.git) j["git"].push_back({{"url", g.url}, {"ref", g.ref}, {"dir", g.dir}, {"what", g.what}});
  return j.dump();
}

bool looks_like_source_list(std::string_view text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  return first != std::string_view::npos && text[first] == '{';
}

Result<SourceList> parse_source_list(std::string_view text) {
  if (text.size() > kMaxSourceListBytes) return limit_exceeded("source list larger than 1 MiB");
  if (!json_nesting_ok(text, 4)) return malformed("source list nested deeper than 4 levels");
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return malformed("source list is not a JSON object");
  KMR_TRY(check_keys(j, {"kmr_sources", "files", "git"}, "source list"));
  if (!j.contains("kmr_sources") || j["kmr_sources"] != 1) return malformed("source list: \"kmr_sources\" is not 1");
  SourceList list;
  for (const char* key : {"files", "git"}) {
    if (!j.contains(key)) continue;
    const json& a = j[key];
    if (!a.is_array()) return malformed(std::string("source list: \"") + key + "\" is not an array");
    if (a.size() > kMaxSourceFiles) return limit_exceeded(std::string("source list: too many ") + key);
    for (std::size_t i = 0; i < a.size(); ++i) {
      const std::string where = std::string("sources.") + key + "[" + std::to_string(i) + "]";
      if (std::string_view(key) == "files") {
        KMR_ASSIGN_OR_RETURN(SourceFile f, parse_file(a[i], where));
        list.files.push_back(std::move(f));
      } else {
        KMR_ASSIGN_OR_RETURN(GitSource g, parse_git(a[i], where));
        list.git.push_back(std::move(g));
      }
    }
  }
  KMR_TRY(validate(list));
  return list;
}

}  // namespace kmr::distros
