#include "server/rebuilderd_api.h"

#include <charconv>
#include <ctime>
#include <functional>
#include <set>

#include <spdlog/spdlog.h>

#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"

namespace kmr::server {

using nlohmann::json;

namespace {

constexpr std::int64_t kDefaultLimit = 1000;
constexpr std::int64_t kMaxLimit = 10000;
constexpr std::uint64_t kMaxBlob = 64ull << 20;

Bytes as_bytes(std::string_view s) { return Bytes(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()); }

HttpResponse json_response(const json& j, int status = 200) {
  HttpResponse r;
  r.status = status;
  // Messages may echo request bytes: invalid UTF-8 is replaced, never thrown on.
  r.body = j.dump(-1, ' ', false, json::error_handler_t::replace);
  return r;
}

std::optional<std::string> param(const RebuilderdApi::Query& q, const std::string& k) {
  auto it = q.find(k);
  if (it == q.end() || it->second.empty()) return std::nullopt;
  return it->second;
}

std::optional<std::int64_t> parse_i64(std::string_view s) {
  if (s.empty() || s.size() > 18) return std::nullopt;
  std::int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v < 0) return std::nullopt;
  return v;
}

json opt_time(const std::optional<std::int64_t>& t) { return t ? json(naive_time(*t)) : json(nullptr); }
json opt_str(const std::optional<std::string>& s) { return s ? json(*s) : json(nullptr); }

std::string utc_format(std::int64_t t, const char* fmt) {
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, fmt, &tm);
  return buf;
}

std::string http_date(std::int64_t t) { return utc_format(t, "%a, %d %b %Y %H:%M:%S GMT"); }

std::optional<std::int64_t> parse_http_date(std::string_view s) {
  if (s.empty() || s.size() > 64) return std::nullopt;
  std::string str(s);
  std::tm tm{};
  const char* end = strptime(str.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (!end || *end != '\0') return std::nullopt;
  return static_cast<std::int64_t>(timegm(&tm));
}

// Columns shared by the package, pkgs/list and build queries: one artifact (the first of its set
// for source records) with its package, repository and current verdict.
constexpr const char* kPackageSelect =
    "SELECT a.id, p.name, p.version, r.distro, r.name, p.arch, a.url, a.build_input_id, "
    "v.rebuild_id, v.status, v.module_root, v.files, rb.finished_at, "
    "(rb.diff_json_sha256 IS NOT NULL OR rb.diff_html_sha256 IS NOT NULL), "
    "COALESCE(r.last_sync_at, a.created_at), a.sha256, a.filename, "
    "(SELECT p2.name FROM artifacts a2 JOIN packages p2 ON p2.id = a2.package_id "
    "  WHERE a2.build_input_id = a.build_input_id ORDER BY a2.id LIMIT 1), "
    "(SELECT p2.version FROM artifacts a2 JOIN packages p2 ON p2.id = a2.package_id "
    "  WHERE a2.build_input_id = a.build_input_id ORDER BY a2.id LIMIT 1), "
    "v.updated_at, CASE WHEN json_valid(rb.details) THEN json_extract(rb.details, '$.module_content_root') END ";
constexpr const char* kPackageFrom =
    "FROM artifacts a JOIN packages p ON p.id = a.package_id JOIN repositories r ON r.id = p.repository_id "
    "LEFT JOIN verdicts v ON v.artifact_id = a.id LEFT JOIN rebuilds rb ON rb.id = v.rebuild_id ";
// Filters ?1..?7: distribution, release, component, architecture, name, version, source_name.
constexpr const char* kPackageWhere =
    "WHERE (?1 IS NULL OR r.distro = ?1) AND (?2 IS NULL OR r.name = ?2) AND (?3 IS NULL OR r.name = ?3) "
    "AND (?4 IS NULL OR p.arch = ?4) AND (?5 IS NULL OR p.name = ?5) AND (?6 IS NULL OR p.version = ?6) "
    "AND (?7 IS NULL OR ?7 = (SELECT p2.name FROM artifacts a2 JOIN packages p2 ON p2.id = a2.package_id "
    "  WHERE a2.build_input_id = a.build_input_id ORDER BY a2.id LIMIT 1)) ";
constexpr const char* kSourceOnly =
    "AND a.id = (SELECT MIN(a3.id) FROM artifacts a3 WHERE a3.build_input_id = a.build_input_id) ";

struct PackageRow {
  std::int64_t artifact_id = 0, build_input_id = 0;
  std::string name, version, distro, repo, arch, url, sha256, filename, source_name, source_version;
  std::optional<std::int64_t> rebuild_id, built_at, updated_at;
  std::optional<std::string> status, module_root, files, content_root;
  bool has_diff = false;
  std::int64_t last_seen = 0;
  std::string rb_status() const { return rebuilderd_status(status, module_root, files); }
};

PackageRow read_package(const Stmt& s) {
  PackageRow p;
  p.artifact_id = s.i64(0);
  p.name = s.text(1);
  p.version = s.text(2);
  p.distro = s.text(3);
  p.repo = s.text(4);
  p.arch = s.text(5);
  p.url = s.text(6);
  p.build_input_id = s.i64(7);
  p.rebuild_id = s.opt_i64(8);
  p.status = s.opt_text(9);
  p.module_root = s.opt_text(10);
  p.files = s.opt_text(11);
  p.built_at = s.opt_i64(12);
  p.has_diff = !s.is_null(13) && s.i64(13) != 0;
  p.last_seen = s.i64(14);
  p.sha256 = s.text(15);
  p.filename = s.text(16);
  p.source_name = s.text(17);
  p.source_version = s.text(18);
  p.updated_at = s.opt_i64(19);
  p.content_root = s.opt_text(20);
  return p;
}

void bind_filters(Stmt& s, const RebuilderdApi::Query& q) {
  const char* names[] = {"distribution", "release", "component", "architecture", "name", "version", "source_name"};
  for (int i = 0; i < 7; ++i) s.bind(i + 1, param(q, names[i]));
}

// kmr's richer verdict next to the rebuilderd fields.
void add_kmr_fields(json& j, const PackageRow& p) {
  j["kmr_status"] = opt_str(p.status);
  j["kmr_files"] = opt_str(p.files);
  j["kmr_module_root"] = opt_str(p.module_root);
  j["kmr_module_content_root"] = opt_str(p.content_root);
  j["kmr_sha256"] = p.sha256;
}

struct Paging {
  std::int64_t limit = kDefaultLimit;
  std::optional<std::int64_t> after, before;
  std::string order;  // "ORDER BY ..."
};

// limit/after/before/sort/direction; sort names a record field from `columns`.
Result<Paging> parse_paging(const RebuilderdApi::Query& q, const std::map<std::string, std::string>& columns,
                            const std::string& id_column) {
  Paging p;
  auto num = [&](const char* k, std::optional<std::int64_t>& out) -> Result<void> {
    if (auto v = param(q, k)) {
      out = parse_i64(*v);
      if (!out) return Error(ErrorCode::kMalformedInput, std::string(k) + " must be a non-negative integer");
    }
    return ok();
  };
  std::optional<std::int64_t> limit;
  KMR_TRY(num("limit", limit));
  KMR_TRY(num("after", p.after));
  KMR_TRY(num("before", p.before));
  if (limit) p.limit = std::clamp<std::int64_t>(*limit, 1, kMaxLimit);
  std::string column = id_column;
  if (auto s = param(q, "sort")) {
    auto it = columns.find(*s);
    if (it == columns.end()) return Error(ErrorCode::kMalformedInput, "cannot sort by " + *s);
    column = it->second;
  }
  std::string dir = "ASC";
  if (auto d = param(q, "direction")) {
    if (*d == "desc" || *d == "DESC") dir = "DESC";
    else if (*d != "asc" && *d != "ASC") return Error(ErrorCode::kMalformedInput, "direction must be asc or desc");
  }
  p.order = "ORDER BY " + column + " " + dir + ", " + id_column + " " + dir;
  return p;
}

std::string cursor_sql(const std::string& id_column) {
  return "AND (?8 IS NULL OR " + id_column + " > ?8) AND (?9 IS NULL OR " + id_column + " < ?9) ";
}

Result<std::int64_t> count_rows(Db& db, const std::string& sql, const RebuilderdApi::Query& q) {
  KMR_ASSIGN_OR_RETURN(auto s, db.prepare(sql));
  bind_filters(s, q);
  KMR_ASSIGN_OR_RETURN(bool row, s.step());
  return row ? s.i64(0) : 0;
}

// One page of a list endpoint: {"total": the rows of `from_where`, "records":
// the page}. `columns`: the record fields one may sort by; `id_column`: the
// cursor (after/before) and tie-break; `select`: "SELECT ... " before
// `from_where`; `record`: one row as a record.
Result<HttpResponse> paged_list(Db& db, const RebuilderdApi::Query& query,
                                const std::map<std::string, std::string>& columns, const std::string& id_column,
                                const std::string& select, const std::string& from_where,
                                const std::function<json(const Stmt&)>& record) {
  KMR_ASSIGN_OR_RETURN(auto paging, parse_paging(query, columns, id_column));
  KMR_ASSIGN_OR_RETURN(std::int64_t total, count_rows(db, "SELECT COUNT(*) " + from_where, query));
  KMR_ASSIGN_OR_RETURN(auto s, db.prepare(select + from_where + cursor_sql(id_column) + paging.order + " LIMIT ?10"));
  bind_filters(s, query);
  s.bind(8, paging.after).bind(9, paging.before).bind(10, paging.limit);
  json records = json::array();
  for (;;) {
    KMR_ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    records.push_back(record(s));
  }
  return json_response({{"total", total}, {"records", records}});
}

bool attested_status(const std::string& s) { return s == "GOOD"; }

}  // namespace

std::string naive_time(std::int64_t t) { return utc_format(t, "%Y-%m-%dT%H:%M:%S"); }

std::string rebuilderd_status(const std::optional<std::string>& status, const std::optional<std::string>& module_root,
                              const std::optional<std::string>& files) {
  if (!status) return "UNKWN";
  if (is_reproducible(*status, module_root, files)) return "GOOD";
  return *status == "verified" ? "BAD" : "FAIL";
}

Result<std::string> canonical_json(const json& j) {
  switch (j.type()) {
    case json::value_t::null: return std::string("null");
    case json::value_t::boolean: return std::string(j.get<bool>() ? "true" : "false");
    case json::value_t::number_integer: return std::to_string(j.get<std::int64_t>());
    case json::value_t::number_unsigned: return std::to_string(j.get<std::uint64_t>());
    case json::value_t::string: {
      std::string out = "\"";
      for (char c : j.get_ref<const std::string&>()) {
        if (c == '\\' || c == '"') out += '\\';
        out += c;
      }
      return out + "\"";
    }
    case json::value_t::array: {
      std::string out = "[";
      for (std::size_t i = 0; i < j.size(); ++i) {
        KMR_ASSIGN_OR_RETURN(auto e, canonical_json(j[i]));
        out += (i ? "," : "") + e;
      }
      return out + "]";
    }
    case json::value_t::object: {
      // nlohmann's object is a std::map: keys in byte order, which for UTF-8 is code point order.
      std::string out = "{";
      bool first = true;
      for (auto& [k, v] : j.items()) {
        KMR_ASSIGN_OR_RETURN(auto ks, canonical_json(json(k)));
        KMR_ASSIGN_OR_RETURN(auto vs, canonical_json(v));
        out += (first ? "" : ",") + ks + ":" + vs;
        first = false;
      }
      return out + "}";
    }
    default: return Error(ErrorCode::kMalformedInput, "canonical JSON allows no floats or binary values");
  }
}

std::string intoto_keyid(const attest::Ed25519Key& key) {
  json k = {{"keyid_hash_algorithms", {"sha256", "sha512"}},
            {"keytype", "ed25519"},
            {"keyval", {{"public", to_hex(key.raw_public())}}},
            {"scheme", "ed25519"}};
  auto c = canonical_json(k);  // strings only: cannot fail
  return sha256_hex(as_bytes(c ? *c : std::string()));
}

Result<json> intoto_link(const attest::Ed25519Key& key, const std::vector<LinkFile>& materials,
                         const std::vector<LinkFile>& products) {
  if (products.empty()) return Error(ErrorCode::kMalformedInput, "a link needs at least one product");
  auto files = [](const std::vector<LinkFile>& v) {
    json o = json::object();
    for (auto& f : v) o[f.name] = f.digests;
    return o;
  };
  json signed_part = {{"_type", "link"},
                      {"name", "rebuild " + products.front().name},
                      {"materials", files(materials)},
                      {"products", files(products)},
                      {"environment", nullptr},
                      {"byproducts", json::object()},
                      {"command", json::array()}};
  KMR_ASSIGN_OR_RETURN(auto canon, canonical_json(signed_part));
  KMR_ASSIGN_OR_RETURN(auto sig, key.sign(as_bytes(canon)));
  return json{{"signatures", json::array({{{"keyid", intoto_keyid(key)}, {"sig", to_hex(sig)}}})},
              {"signed", signed_part}};
}

std::string crlf_pem(const std::string& pem) {
  std::string out;
  for (char c : pem) {
    if (c == '\r') continue;
    if (c == '\n') out += '\r';
    out += c;
  }
  return out;
}

bool RebuilderdApi::serves(std::string_view path) {
  auto starts = [&](std::string_view p) { return path.substr(0, p.size()) == p; };
  return starts("/api/v0/") || starts("/api/v1/packages/") || path == "/api/v1/dashboard" ||
         path == "/api/v1/meta" || starts("/api/v1/meta/");
}

bool RebuilderdApi::serves_target(std::string_view target) {
  std::string_view path = target.substr(0, target.find('?'));
  return path.substr(0, 16) == "/rebuilderd/api/" || serves(path);
}

HttpResponse RebuilderdApi::handle(const HttpRequest& req, const std::string& path, const Query& query) {
  const bool is_v0 = path.rfind("/api/v0/", 0) == 0;
  const std::string& m = req.method;
  if (m == "POST" || m == "PUT" || m == "DELETE" || m == "PATCH") {
    return is_v0 ? json_error(501, "not_implemented", "this rebuilderd API is read-only")
                 : json_error(403, "read_only", "this rebuilderd API is read-only");
  }
  if (m != "GET") return json_error(405, "method_not_allowed", "use GET");
  HttpResponse r;
  if (is_v0) r = v0(req, path.substr(8), query);
  else if (path.rfind("/api/v1/", 0) == 0) r = v1(path.substr(8), query);
  else r = json_error(404, "not_found", "no such rebuilderd endpoint");
  r.route = is_v0 ? "/rebuilderd/api/v0" : "/rebuilderd/api/v1";
  return r;
}

namespace {
HttpResponse or_error(Result<HttpResponse> r, std::string_view where) {
  if (r) return std::move(r).value();
  if (r.error().code() == ErrorCode::kMalformedInput) return json_error(400, "bad_request", r.error().message());
  spdlog::error("rebuilderd api {}: {}", where, r.error().to_string());
  return json_error(500, "internal", "internal error (details in the server log)");
}

// "{id}" or "{id}/tail": the id and the tail.
std::optional<std::pair<std::int64_t, std::string>> split_id(const std::string& rest) {
  auto slash = rest.find('/');
  auto id = parse_i64(rest.substr(0, slash));
  if (!id) return std::nullopt;
  return std::make_pair(*id, slash == std::string::npos ? std::string() : rest.substr(slash + 1));
}
}  // namespace

HttpResponse RebuilderdApi::v0(const HttpRequest& req, const std::string& rest, const Query& query) {
  if (rest == "pkgs/list") return or_error(pkgs_list(req, query), rest);
  if (rest == "dashboard") return or_error(dashboard_v0(), rest);
  if (rest == "public-keys") return public_keys();
  if (rest.rfind("builds/", 0) == 0) {
    auto id = split_id(rest.substr(7));
    if (!id || id->second.empty()) return json_error(404, "not_found", "no such build resource");
    return or_error(build_resource(id->first, id->second, true), rest);
  }
  return json_error(404, "not_found", "no such rebuilderd v0 endpoint");
}

HttpResponse RebuilderdApi::v1(const std::string& rest, const Query& query) {
  if (rest == "packages/binary") return or_error(packages(false, query), rest);
  if (rest == "packages/source") return or_error(packages(true, query), rest);
  if (rest == "dashboard") return or_error(dashboard_v1(), rest);
  if (rest == "meta/public-keys") return public_keys();
  if (rest.rfind("meta/", 0) == 0) return or_error(meta(rest.substr(5)), rest);
  if (rest == "builds") return or_error(builds(query), rest);
  if (rest.rfind("builds/", 0) == 0) {
    auto id = split_id(rest.substr(7));
    if (!id) return json_error(404, "not_found", "no such build resource");
    return or_error(build_resource(id->first, id->second, false), rest);
  }
  return json_error(404, "not_found", "no such rebuilderd v1 endpoint");
}

Result<HttpResponse> RebuilderdApi::pkgs_list(const HttpRequest& req, const Query& query) {
  // v0 names: name, status, distro, suite, architecture.
  Query q;
  for (auto [from, to] : std::initializer_list<std::pair<const char*, const char*>>{
           {"name", "name"}, {"distro", "distribution"}, {"suite", "release"}, {"architecture", "architecture"}})
    if (auto v = param(query, from)) q.emplace(to, *v);
  auto want_status = param(query, "status");
  KMR_ASSIGN_OR_RETURN(auto s, store_.reader().prepare(std::string(kPackageSelect) + kPackageFrom + kPackageWhere +
                                                       "ORDER BY a.id"));
  bind_filters(s, q);
  json items = json::array();
  std::int64_t last_modified = 0;
  for (;;) {
    KMR_ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    PackageRow p = read_package(s);
    last_modified = std::max({last_modified, p.last_seen, p.updated_at.value_or(0)});
    std::string st = p.rb_status();
    if (st == "FAIL") st = "BAD";
    if (want_status && *want_status != st) continue;
    json j = {{"name", p.name},
              {"version", p.version},
              {"status", st},
              {"distro", p.distro},
              {"suite", p.repo},
              {"architecture", p.arch},
              {"artifact_url", p.url},
              {"build_id", p.rebuild_id ? json(*p.rebuild_id) : json(nullptr)},
              {"built_at", opt_time(p.built_at)},
              {"has_diffoscope", p.has_diff},
              {"has_attestation", key_ != nullptr && attested_status(st)}};
    add_kmr_fields(j, p);
    items.push_back(std::move(j));
  }
  if (last_modified > 0) {
    if (auto ims = parse_http_date(req.header("if-modified-since")); ims && last_modified <= *ims) {
      HttpResponse r;
      r.status = 304;
      r.headers.emplace_back("Last-Modified", http_date(last_modified));
      return r;
    }
  }
  HttpResponse r = json_response(items);
  if (last_modified > 0) r.headers.emplace_back("Last-Modified", http_date(last_modified));
  return r;
}

Result<HttpResponse> RebuilderdApi::dashboard_v0() {
  KMR_ASSIGN_OR_RETURN(auto s, store_.reader().prepare(std::string(kPackageSelect) + kPackageFrom));
  json suites = json::object();
  for (;;) {
    KMR_ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    PackageRow p = read_package(s);
    json& c = suites[p.repo];
    if (c.is_null()) c = {{"good", 0}, {"unknown", 0}, {"bad", 0}};
    std::string st = p.rb_status();
    const char* k = st == "GOOD" ? "good" : st == "UNKWN" ? "unknown" : "bad";
    c[k] = c[k].get<std::int64_t>() + 1;
  }
  KMR_ASSIGN_OR_RETURN(auto a, store_.reader().prepare(
      "SELECT j.id, b.distro, r.name, p.name, p.version, p.arch, j.updated_at, j.lease_expiry "
      "FROM jobs j JOIN build_inputs b ON b.id = j.build_input_id JOIN repositories r ON r.id = b.repository_id "
      "JOIN artifacts a ON a.id = (SELECT MIN(id) FROM artifacts WHERE build_input_id = b.id) "
      "JOIN packages p ON p.id = a.package_id WHERE j.state = 'running' ORDER BY j.id LIMIT 1000"));
  json active = json::array();
  for (;;) {
    KMR_ASSIGN_OR_RETURN(bool row, a.step());
    if (!row) break;
    active.push_back({{"id", a.i64(0)},
                      {"distro", a.text(1)},
                      {"suite", a.text(2)},
                      {"name", a.text(3)},
                      {"version", a.text(4)},
                      {"architecture", a.text(5)},
                      {"started_at", naive_time(a.i64(6))},
                      {"last_ping", naive_time(a.i64(6))}});
  }
  KMR_ASSIGN_OR_RETURN(auto qn, store_.reader().prepare("SELECT COUNT(*) FROM jobs WHERE state = 'queued'"));
  KMR_ASSIGN_OR_RETURN(bool qrow, qn.step());
  return json_response({{"suites", suites},
                        {"active_builds", active},
                        {"queue_length", qrow ? qn.i64(0) : 0},
                        {"now", naive_time(now_)}});
}

Result<HttpResponse> RebuilderdApi::dashboard_v1() {
  KMR_ASSIGN_OR_RETURN(auto s, store_.reader().prepare(std::string(kPackageSelect) + kPackageFrom));
  std::int64_t good = 0, bad = 0, fail = 0, unknown = 0;
  for (;;) {
    KMR_ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    std::string st = read_package(s).rb_status();
    (st == "GOOD" ? good : st == "BAD" ? bad : st == "FAIL" ? fail : unknown)++;
  }
  KMR_ASSIGN_OR_RETURN(auto j, store_.reader().prepare(
      "SELECT COALESCE(SUM(state = 'running'), 0), COALESCE(SUM(state = 'queued' AND next_try <= ?1), 0), "
      "COALESCE(SUM(state = 'queued' AND next_try > ?1), 0) FROM jobs"));
  j.bind(1, now_);
  KMR_ASSIGN_OR_RETURN(bool row, j.step());
  return json_response({{"rebuilds", {{"good", good}, {"bad", bad}, {"fail", fail}, {"unknown", unknown}}},
                        {"jobs", {{"running", row ? j.i64(0) : 0},
                                  {"available", row ? j.i64(1) : 0},
                                  {"pending", row ? j.i64(2) : 0}}}});
}

Result<HttpResponse> RebuilderdApi::packages(bool source, const Query& query) {
  const std::string id_col = source ? "a.build_input_id" : "a.id";
  std::map<std::string, std::string> cols = {{"id", id_col}, {"name", "p.name"}, {"version", "p.version"},
                                             {"distribution", "r.distro"}, {"release", "r.name"},
                                             {"architecture", "p.arch"}, {"last_seen", "a.created_at"}};
  if (!source) cols["component"] = "r.name";
  std::string where = std::string(kPackageFrom) + kPackageWhere + (source ? kSourceOnly : "");
  return paged_list(store_.reader(), query, cols, id_col, kPackageSelect, where, [&](const Stmt& s) {
    PackageRow p = read_package(s);
    std::string st = p.rb_status();
    json build_id = p.rebuild_id ? json(*p.rebuild_id) : json(nullptr);
    json j;
    if (source) {
      j = {{"id", p.build_input_id}, {"name", p.source_name}, {"version", p.source_version},
           {"distribution", p.distro}, {"release", p.repo}, {"status", st}, {"build_id", build_id},
           {"last_seen", naive_time(p.last_seen)}, {"seen_in_last_sync", true}};
    } else {
      bool attested = key_ != nullptr && attested_status(st);
      j = {{"id", p.artifact_id}, {"name", p.name}, {"version", p.version}, {"distribution", p.distro},
           {"release", p.repo}, {"component", p.repo}, {"architecture", p.arch}, {"url", p.url},
           {"status", st}, {"build_id", build_id},
           {"artifact_id", p.rebuild_id ? json(p.artifact_id) : json(nullptr)},
           {"diffoscope_log_id", p.has_diff ? build_id : json(nullptr)},
           {"attestation_log_id", attested ? build_id : json(nullptr)},
           {"last_seen", naive_time(p.last_seen)}, {"seen_in_last_sync", true}};
      j["source_name"] = p.source_name;
    }
    add_kmr_fields(j, p);
    return j;
  });
}

namespace {
// One rebuild with its set's first package and job.
constexpr const char* kBuildSelect =
    "SELECT rb.id, p.name, p.version, r.distro, r.name, p.arch, j.build_attempts + j.repro_attempts, "
    "rb.started_at, rb.finished_at, rb.status, rb.module_root, rb.files, rb.log_sha256, rb.diff_json_sha256, "
    "rb.diff_html_sha256 "
    "FROM rebuilds rb JOIN jobs j ON j.id = rb.job_id JOIN build_inputs b ON b.id = rb.build_input_id "
    "JOIN repositories r ON r.id = b.repository_id "
    "JOIN artifacts a ON a.id = (SELECT MIN(id) FROM artifacts WHERE build_input_id = b.id) "
    "JOIN packages p ON p.id = a.package_id ";

struct BuildRow {
  json record;
  std::string status;
  std::optional<std::string> log, diff_json, diff_html;
};

BuildRow read_build(const Stmt& s) {
  BuildRow b;
  b.status = rebuilderd_status(s.text(9), s.opt_text(10), s.opt_text(11));
  b.record = {{"id", s.i64(0)}, {"name", s.text(1)}, {"version", s.text(2)}, {"distribution", s.text(3)},
              {"release", s.text(4)}, {"architecture", s.text(5)}, {"backend", "kmr-" + s.text(3)},
              {"retries", s.i64(6)}, {"started_at", opt_time(s.opt_i64(7))}, {"built_at", naive_time(s.i64(8))},
              {"status", b.status}, {"kmr_status", s.text(9)}, {"kmr_module_root", opt_str(s.opt_text(10))},
              {"kmr_files", opt_str(s.opt_text(11))}};
  b.log = s.opt_text(12);
  b.diff_json = s.opt_text(13);
  b.diff_html = s.opt_text(14);
  return b;
}
}  // namespace

Result<HttpResponse> RebuilderdApi::builds(const Query& query) {
  std::map<std::string, std::string> cols = {{"id", "rb.id"}, {"name", "p.name"}, {"version", "p.version"},
                                             {"distribution", "r.distro"}, {"release", "r.name"},
                                             {"architecture", "p.arch"}, {"built_at", "rb.finished_at"}};
  const std::string where =
      "WHERE (?1 IS NULL OR r.distro = ?1) AND (?2 IS NULL OR r.name = ?2) AND (?3 IS NULL OR r.name = ?3) "
      "AND (?4 IS NULL OR p.arch = ?4) AND (?5 IS NULL OR p.name = ?5) AND (?6 IS NULL OR p.version = ?6) "
      "AND (?7 IS NULL OR p.name = ?7) ";
  const std::string select(kBuildSelect);
  const std::size_t from = select.find("FROM ");
  return paged_list(store_.reader(), query, cols, "rb.id", select.substr(0, from), select.substr(from) + where,
                    [](const Stmt& s) { return read_build(s).record; });
}

Result<HttpResponse> RebuilderdApi::build_resource(std::int64_t id, const std::string& tail, bool v0) {
  KMR_ASSIGN_OR_RETURN(auto s, store_.reader().prepare(std::string(kBuildSelect) + "WHERE rb.id = ?1"));
  s.bind(1, id);
  KMR_ASSIGN_OR_RETURN(bool row, s.step());
  if (!row) return json_error(404, "not_found", "no build " + std::to_string(id));
  BuildRow b = read_build(s);
  if (tail.empty() && !v0) return json_response(b.record);
  if (tail == "log") return blob(b.log, false);
  if (tail == "diffoscope" && v0) return blob(b.diff_json ? b.diff_json : b.diff_html, !b.diff_json);
  if (tail == "attestation" && v0) return attestation(id, std::nullopt);
  if (v0) return json_error(404, "not_found", "no such build resource");
  if (tail == "artifacts" || tail.rfind("artifacts/", 0) == 0) {
    KMR_ASSIGN_OR_RETURN(auto a, store_.reader().prepare(
        "SELECT a.id, a.filename FROM rebuild_artifacts ra JOIN artifacts a ON a.id = ra.artifact_id "
        "WHERE ra.rebuild_id = ?1 ORDER BY a.id"));
    a.bind(1, id);
    json list = json::array();
    for (;;) {
      KMR_ASSIGN_OR_RETURN(bool arow, a.step());
      if (!arow) break;
      list.push_back({{"id", a.i64(0)}, {"name", a.text(1)}, {"has_diffoscope", b.diff_json || b.diff_html},
                      {"has_attestation", key_ != nullptr && attested_status(b.status)}, {"status", b.status}});
    }
    if (tail == "artifacts") return json_response(list);
    auto aid = split_id(tail.substr(10));
    if (!aid) return json_error(404, "not_found", "no such artifact");
    const json* found = nullptr;
    for (auto& e : list)
      if (e["id"].get<std::int64_t>() == aid->first) found = &e;
    if (!found) return json_error(404, "not_found", "no artifact " + std::to_string(aid->first) + " in this build");
    if (aid->second.empty()) return json_response(*found);
    if (aid->second == "diffoscope") return blob(b.diff_json ? b.diff_json : b.diff_html, !b.diff_json);
    if (aid->second == "attestation") return attestation(id, aid->first);
  }
  return json_error(404, "not_found", "no such build resource");
}

Result<HttpResponse> RebuilderdApi::blob(const std::optional<std::string>& hex, bool html) {
  if (!hex) return json_error(404, "not_found", "not recorded for this build");
  KMR_ASSIGN_OR_RETURN(auto body, store_.blobs().get(*hex, kMaxBlob));
  HttpResponse r;
  r.body = std::move(body);
  r.content_type = html ? "text/html; charset=utf-8" : "text/plain; charset=utf-8";
  // Worker-supplied content: never active in a browser.
  r.headers.emplace_back("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; sandbox");
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  return r;
}

Result<HttpResponse> RebuilderdApi::attestation(std::int64_t build_id, std::optional<std::int64_t> artifact_id) {
  if (!key_) return json_error(404, "not_found", "this kmrd has no attestation key");
  KMR_ASSIGN_OR_RETURN(auto s, store_.reader().prepare(
      "SELECT a.filename, a.sha256, ra.rebuilt_sha256, rb.status, rb.module_root, rb.files, a.sha512, "
      "ra.rebuilt_sha512 "
      "FROM rebuild_artifacts ra JOIN artifacts a ON a.id = ra.artifact_id JOIN rebuilds rb ON rb.id = ra.rebuild_id "
      "WHERE ra.rebuild_id = ?1 AND (?2 IS NULL OR a.id = ?2) ORDER BY a.id"));
  s.bind(1, build_id).bind(2, artifact_id);
  std::vector<LinkFile> materials, products;
  for (;;) {
    KMR_ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    if (rebuilderd_status(s.text(3), s.opt_text(4), s.opt_text(5)) != "GOOD")
      return json_error(404, "not_found", "only GOOD rebuilds are attested");
    // The shipped file is the input, the rebuilt one the product; sha512 when the worker reported it.
    LinkFile material{s.text(0), {{"sha256", s.text(1)}}};
    if (auto h = s.opt_text(6)) material.digests["sha512"] = *h;
    auto rebuilt = s.opt_text(2);
    LinkFile product{s.text(0), {{"sha256", rebuilt ? *rebuilt : s.text(1)}}};
    if (auto h = s.opt_text(7)) product.digests["sha512"] = *h;
    materials.push_back(std::move(material));
    products.push_back(std::move(product));
  }
  if (products.empty()) return json_error(404, "not_found", "no such build artifact");
  KMR_ASSIGN_OR_RETURN(auto link, intoto_link(*key_, materials, products));
  return json_response(link);
}

Result<HttpResponse> RebuilderdApi::meta(const std::string& rest) {
  if (rest == "distributions") {
    KMR_ASSIGN_OR_RETURN(auto s, store_.reader().prepare("SELECT DISTINCT distro FROM repositories ORDER BY distro"));
    json out = json::array();
    for (;;) {
      KMR_ASSIGN_OR_RETURN(bool row, s.step());
      if (!row) break;
      out.push_back(s.text(0));
    }
    return json_response(out);
  }
  constexpr std::string_view kD = "distributions/";
  if (rest.rfind(kD, 0) != 0) return json_error(404, "not_found", "no such meta endpoint");
  std::string d = rest.substr(kD.size());
  auto slash = d.find('/');
  if (slash == std::string::npos) return json_error(404, "not_found", "no such meta endpoint");
  std::string what = d.substr(slash + 1);
  d = d.substr(0, slash);
  std::string sql;
  if (what == "releases")
    sql = "SELECT DISTINCT name FROM repositories WHERE distro = ?1 ORDER BY name";
  else if (what == "architectures")
    sql = "SELECT DISTINCT p.arch FROM packages p JOIN repositories r ON r.id = p.repository_id "
          "WHERE r.distro = ?1 ORDER BY p.arch";
  else
    return json_error(404, "not_found", "no such meta endpoint");
  KMR_ASSIGN_OR_RETURN(auto s, store_.reader().prepare(sql));
  s.bind(1, d);
  json out = json::array();
  for (;;) {
    KMR_ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    out.push_back(s.text(0));
  }
  return json_response(out);
}

HttpResponse RebuilderdApi::public_keys() const {
  json current = json::array();
  if (key_) current.push_back(crlf_pem(key_->public_pem()));
  return json_response({{"current", current}});
}

}  // namespace kmr::server
