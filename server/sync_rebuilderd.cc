#include "server/sync_rebuilderd.h"

#include <cstdio>
#include <filesystem>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "rebuilder/base/file.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"
#include "server/http_client.h"

namespace kmr::server {

using nlohmann::json;

namespace {

constexpr std::uint64_t kMaxPackage = 8ull << 30;

bool has_glob(const std::string& p) { return p.find_first_of("*?[") != std::string::npos; }

std::string url_encode(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

Result<std::string> field(const json& r, const char* k, const std::string& where, std::size_t max) {
  auto it = r.find(k);
  if (it == r.end() || !it->is_string()) return malformed(where + ": \"" + k + "\" is not a string");
  const std::string& s = it->get_ref<const std::string&>();
  if (s.size() > max) return limit_exceeded(where + ": \"" + k + "\" longer than " + std::to_string(max) + " bytes");
  return s;
}

std::string opt_field(const json& r, const char* k, std::size_t max) {
  auto it = r.find(k);
  if (it == r.end() || !it->is_string() || it->get_ref<const std::string&>().size() > max) return "";
  return it->get<std::string>();
}

bool wanted(const RepositoryConfig& rc, const RebuilderdRecord& r) { return repository_wants(rc, r.name, r.architecture); }

// Pages of one query (name filter or none) until a short or empty page.
Result<void> page_through(const std::string& base, const std::optional<std::string>& name, const PageFetcher& fetch,
                          const RebuilderdLimits& limits, std::map<std::int64_t, RebuilderdRecord>& out) {
  std::optional<std::int64_t> after;
  for (std::size_t page = 0;; ++page) {
    if (page >= limits.max_pages)
      return limit_exceeded(base + ": more than " + std::to_string(limits.max_pages) + " pages");
    std::string url = base + "/api/v1/packages/binary?limit=" + std::to_string(limits.page_size);
    if (name) url += "&name=" + url_encode(*name);
    if (after) url += "&after=" + std::to_string(*after);
    KMR_ASSIGN_OR_RETURN(std::string text, fetch(url));
    KMR_ASSIGN_OR_RETURN(RebuilderdPage p, parse_rebuilderd_page(text, url, limits));
    if (p.records.empty()) return ok();
    std::int64_t last = after.value_or(-1);
    for (auto& r : p.records) {
      // Ascending ids past the cursor: anything else would page forever or skip records.
      if (r.id <= last) return malformed(url + ": record id " + std::to_string(r.id) + " does not advance the cursor");
      last = r.id;
      if (out.size() >= limits.max_records && !out.count(r.id))
        return limit_exceeded(base + ": more than " + std::to_string(limits.max_records) + " records");
      out[r.id] = std::move(r);
    }
    after = last;
    if (p.records.size() < limits.page_size) return ok();
  }
}

}  // namespace

Result<RebuilderdPage> parse_rebuilderd_page(std::string_view text, const std::string& where,
                                             const RebuilderdLimits& limits) {
  if (text.size() > limits.max_page_bytes) return limit_exceeded(where + ": answer larger than the page limit");
  json doc = json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return malformed(where + ": not a JSON object");
  auto total = doc.find("total");
  if (total == doc.end() || !total->is_number_integer() || total->get<std::int64_t>() < 0)
    return malformed(where + ": \"total\" is not a non-negative integer");
  auto recs = doc.find("records");
  if (recs == doc.end() || !recs->is_array()) return malformed(where + ": \"records\" is not an array");
  if (recs->size() > limits.max_records) return limit_exceeded(where + ": too many records in one answer");
  RebuilderdPage p;
  p.total = total->get<std::int64_t>();  // informational only: nothing is sized by it
  std::size_t i = 0;
  for (const json& r : *recs) {
    const std::string w = where + ": records[" + std::to_string(i++) + "]";
    if (!r.is_object()) return malformed(w + ": not an object");
    RebuilderdRecord rec;
    auto id = r.find("id");
    if (id == r.end() || !id->is_number_integer() || id->get<std::int64_t>() < 0)
      return malformed(w + ": \"id\" is not a non-negative integer");
    rec.id = id->get<std::int64_t>();
    KMR_ASSIGN_OR_RETURN(rec.name, field(r, "name", w, limits.max_string));
    KMR_ASSIGN_OR_RETURN(rec.version, field(r, "version", w, limits.max_string));
    KMR_ASSIGN_OR_RETURN(rec.architecture, field(r, "architecture", w, limits.max_string));
    KMR_ASSIGN_OR_RETURN(rec.url, field(r, "url", w, limits.max_string));
    if (rec.name.empty() || rec.version.empty() || rec.url.empty()) return malformed(w + ": empty name, version or url");
    rec.distribution = opt_field(r, "distribution", limits.max_string);
    rec.release = opt_field(r, "release", limits.max_string);
    std::string src = opt_field(r, "source_name", limits.max_string);
    if (!src.empty()) rec.source_name = src;
    p.records.push_back(std::move(rec));
  }
  return p;
}

Result<std::vector<RebuilderdRecord>> list_rebuilderd(const RepositoryConfig& rc, const PageFetcher& fetch,
                                                      const RebuilderdLimits& limits) {
  std::map<std::int64_t, RebuilderdRecord> all;
  if (rc.url.rfind("file://", 0) == 0) {
    // One answer laid out as the v1 API returns it; relative record URLs resolve against it.
    KMR_ASSIGN_OR_RETURN(std::string text, fetch(rc.url));
    KMR_ASSIGN_OR_RETURN(RebuilderdPage p, parse_rebuilderd_page(text, rc.url, limits));
    for (auto& r : p.records) {
      r.url = resolve_relative(rc.url, r.url);
      all[r.id] = std::move(r);
    }
  } else {
    std::string base = rc.url;
    while (!base.empty() && base.back() == '/') base.pop_back();
    std::set<std::string> exact;
    bool any_glob = rc.packages.empty();
    for (const auto& p : rc.packages) {
      if (has_glob(p)) any_glob = true;
      else exact.insert(p);
    }
    if (any_glob) {
      KMR_TRY(page_through(base, std::nullopt, fetch, limits, all));
    } else {
      for (const auto& n : exact) KMR_TRY(page_through(base, n, fetch, limits, all));
    }
  }
  std::vector<RebuilderdRecord> out;
  for (auto& [id, r] : all)
    if (wanted(rc, r)) out.push_back(std::move(r));
  return out;
}

Result<std::vector<ImportArtifact>> read_rebuilderd(Store& store, const RepositoryConfig& rc,
                                                    std::chrono::milliseconds timeout,
                                                    const RebuilderdLimits& limits) {
  PageFetcher fetch = [&](const std::string& url) { return fetch_url(url, timeout, limits.max_page_bytes); };
  KMR_ASSIGN_OR_RETURN(auto records, list_rebuilderd(rc, fetch, limits));
  std::optional<TempDir> tmp;
  std::vector<ImportArtifact> out;
  for (const auto& r : records) {
    ImportArtifact a;
    a.name = r.name;
    a.version = r.version;
    a.arch = r.architecture;
    a.url = r.url;
    a.filename = r.url.substr(r.url.rfind('/') + 1);
    a.resource_class = rc.resource_class;
    if (a.filename.empty() || a.filename == "." || a.filename == "..")
      return malformed(r.url + ": artifact URL names no file");
    a.set_key = (r.source_name ? *r.source_name : r.name) + "/" + r.version + "/" + r.architecture;
    KMR_ASSIGN_OR_RETURN(auto known, store.artifact_by_url(r.url));
    if (known) {
      a.sha256 = known->first;
      a.size = known->second;
    } else if (r.url.rfind("file://", 0) == 0) {
      KMR_ASSIGN_OR_RETURN(std::string path, file_url_path(r.url));
      KMR_ASSIGN_OR_RETURN(Digest256 d, sha256_file(path));
      a.sha256 = to_hex(d);
      std::error_code ec;
      auto size = std::filesystem::file_size(path, ec);
      if (!ec) a.size = static_cast<std::int64_t>(size);
    } else if (r.url.rfind("http://", 0) == 0 || r.url.rfind("https://", 0) == 0) {
      if (!tmp) {
        auto t = TempDir::create("kmrd-rebuilderd");
        if (!t) return std::move(t).error();
        tmp.emplace(std::move(t).value());
      }
      const std::string path = tmp->path() + "/package";
      KMR_ASSIGN_OR_RETURN(Digest256 d, fetch_url_to_file(r.url, path, timeout * 10, kMaxPackage));
      a.sha256 = to_hex(d);
      std::error_code ec;
      auto size = std::filesystem::file_size(path, ec);
      if (!ec) a.size = static_cast<std::int64_t>(size);
      std::filesystem::remove(path, ec);
    } else {
      return malformed(r.url + ": artifact URL is not file://, http:// or https://");
    }
    out.push_back(std::move(a));
  }
  return out;
}

}  // namespace kmr::server
