#include "rebuilder/verdict/worker_report.h"

#include <algorithm>
#include <filesystem>

#include "rebuilder/base/hex.h"
#include "rebuilder/verdict/rule.h"

namespace kmr::verdict {
namespace {

using nlohmann::json;

template <std::size_t N>
bool one_of(const std::string_view (&names)[N], std::string_view v) {
  return std::find(std::begin(names), std::end(names), v) != std::end(names);
}

bool is_lower_hex_text(std::string_view s, std::size_t n) {
  return s.size() == n && std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

bool is_lower_hex(const json& j, std::size_t n) {
  return j.is_string() && is_lower_hex_text(j.get_ref<const std::string&>(), n);
}

// Reading a body: the first problem found wins.
class Reader {
 public:
  explicit Reader(const json& body) : body_(body) {}
  bool failed() const { return error_.has_value(); }
  ReportError error() const { return *error_; }
  void fail(std::string code, std::string message) {
    if (!error_) error_ = ReportError{std::move(code), std::move(message)};
  }

  bool only_fields(const json& j, std::initializer_list<std::string_view> allowed, const std::string& where = "") {
    if (!j.is_object()) {
      fail("invalid_json", "request body must be a JSON object");
      return false;
    }
    for (auto it = j.begin(); it != j.end(); ++it)
      if (std::find(allowed.begin(), allowed.end(), it.key()) == allowed.end()) {
        fail("unknown_field", where + "unknown field \"" + it.key() + "\"");
        return false;
      }
    return true;
  }
  // A string field; null counts as absent.
  std::optional<std::string> string(const char* k) {
    auto it = body_.find(k);
    if (it == body_.end() || it->is_null()) return std::nullopt;
    if (!it->is_string()) {
      fail("invalid_field", std::string("field \"") + k + "\" must be a string");
      return std::nullopt;
    }
    return it->get<std::string>();
  }
  const json* present(const char* k) const {
    auto it = body_.find(k);
    return it == body_.end() ? nullptr : &*it;
  }

 private:
  const json& body_;
  std::optional<ReportError> error_;
};

void check_vocabulary(Reader& in, const WorkerReport& r) {
  if (!one_of(kReportStatuses, r.status)) in.fail("invalid_field", "unknown status \"" + r.status + "\"");
  if (r.module_root && !is_module_root(*r.module_root)) in.fail("invalid_field", "unknown module_root verdict");
  if (r.files && !one_of(kVerdictFilesTiers, *r.files)) in.fail("invalid_field", "unknown files verdict");
  if (r.status == "verified" && (!r.files || !r.module_root))
    in.fail("invalid_field", "a verified report needs files and module_root");
  for (const auto* root : {&r.shipped_root, &r.rebuilt_root})
    if (*root && ((*root)->size() > kMaxReportRootHex || !from_hex(**root)))
      in.fail("invalid_hex", "roots must be hex");
  if (r.lease.size() > kMaxReportNameBytes) in.fail("invalid_field", "lease is too long");
}

void read_documents(Reader& in, WorkerReport& r) {
  if (const json* d = in.present("differing")) {
    if (!d->is_array()) return in.fail("invalid_field", "differing must be an array");
    r.differing.emplace();
    for (const auto& s : *d) {
      if (!s.is_string()) return in.fail("invalid_field", "differing must hold strings");
      r.differing->push_back(s.get<std::string>());
    }
  }
  if (const json* e = in.present("environment")) {
    if (!e->is_object()) return in.fail("invalid_field", "environment must be an object");
    r.environment = *e;
  }
  if (const json* d = in.present("details")) {
    if (!d->is_object()) return in.fail("invalid_field", "details must be an object");
    r.details = *d;
  }
  if (const json* d = in.present("duration_ms")) {
    if (!d->is_number_integer()) return in.fail("invalid_field", "duration_ms must be an integer");
    r.duration_ms = d->get<std::int64_t>();
  }
}

void read_rebuilt(Reader& in, const json& list, WorkerReport& r) {
  if (!list.is_array()) return in.fail("invalid_field", "rebuilt must be an array");
  if (list.size() > kMaxReportFiles)
    return in.fail("invalid_field", "rebuilt must hold at most " + std::to_string(kMaxReportFiles) + " entries");
  r.rebuilt.emplace();
  for (const auto& a : list) {
    if (!in.only_fields(a, {"name", "sha256", "sha512"}, "rebuilt[]: ")) return;
    if (!a.contains("name") || !a["name"].is_string() || a["name"].get<std::string>().size() > kMaxReportNameBytes ||
        !a.contains("sha256") || !is_lower_hex(a["sha256"], 64))
      return in.fail("invalid_hex", "rebuilt[] needs name and a 64-hex sha256");
    if (a.contains("sha512") && !is_lower_hex(a["sha512"], 128))
      return in.fail("invalid_hex", "rebuilt[].sha512 must be 128 lowercase hex digits");
    RebuiltFileHash f{a["name"], a["sha256"], std::nullopt};
    if (a.contains("sha512")) f.sha512 = a["sha512"].get<std::string>();
    r.rebuilt->push_back(std::move(f));
  }
}

void read_shipped(Reader& in, const json& list, WorkerReport& r) {
  if (!list.is_array() || list.size() > kMaxReportFiles)
    return in.fail("invalid_field", "shipped must be an array of at most " + std::to_string(kMaxReportFiles) + " entries");
  r.shipped.emplace();
  for (const auto& a : list) {
    if (!in.only_fields(a, {"sha256", "sha512"}, "shipped[]: ")) return;
    if (!a.contains("sha256") || !is_lower_hex(a["sha256"], 64) || !a.contains("sha512") || !is_lower_hex(a["sha512"], 128))
      return in.fail("invalid_hex", "shipped[] needs a 64-hex sha256 and a 128-hex sha512");
    r.shipped->push_back({a["sha256"], a["sha512"]});
  }
}

std::optional<std::string> engine_string(const json& out, const char* k) {
  auto it = out.find(k);
  if (it == out.end() || !it->is_string() || it->get<std::string>().empty()) return std::nullopt;
  return it->get<std::string>();
}

// The engine result fields kept for the UI, as the engine wrote them.
json engine_details(const json& out) {
  json details = json::object();
  for (const char* k : {"backend", "levels", "modules", "environment_digest", "missing", "build_duration_ms", "exit_code",
                        "module_content_root", "shipped_content_root", "rebuilt_content_root", "content_root_levels",
                        "content_root_note", "signatures", "masked", "mask_notes", "kernel_rebuild"})
    if (out.contains(k)) details[k] = out[k];
  if (out.contains("levels")) details["shipped_levels"] = out["levels"];
  return details;
}

}  // namespace

json WorkerReport::to_json() const {
  json j = {{"lease", lease}, {"status", status}};
  auto put = [&j](const char* k, const auto& v) {
    if (v) j[k] = *v;
  };
  put("files", files);
  put("module_root", module_root);
  put("reason", reason);
  put("shipped_root", shipped_root);
  put("rebuilt_root", rebuilt_root);
  put("differing", differing);
  put("environment", environment);
  put("log", log);
  put("diff_json", diff_json);
  put("diff_html", diff_html);
  put("duration_ms", duration_ms);
  put("details", details);
  if (rebuilt) {
    j["rebuilt"] = json::array();
    for (const auto& f : *rebuilt) {
      json e = {{"name", f.name}, {"sha256", f.sha256}};
      if (f.sha512) e["sha512"] = *f.sha512;
      j["rebuilt"].push_back(std::move(e));
    }
  }
  if (shipped) {
    j["shipped"] = json::array();
    for (const auto& f : *shipped) j["shipped"].push_back({{"sha256", f.sha256}, {"sha512", f.sha512}});
  }
  return j;
}

std::optional<WorkerReport> parse_worker_report(const json& body, ReportError& error) {
  Reader in(body);
  WorkerReport r;
  if (in.only_fields(body, {"lease", "status", "module_root", "files", "reason", "shipped_root", "rebuilt_root",
                            "differing", "environment", "rebuilt", "log", "diff_json", "diff_html", "duration_ms",
                            "details", "shipped"})) {
    auto lease = in.string("lease");
    auto status = in.string("status");
    r.module_root = in.string("module_root");
    r.files = in.string("files");
    r.reason = in.string("reason");
    r.shipped_root = in.string("shipped_root");
    r.rebuilt_root = in.string("rebuilt_root");
    r.log = in.string("log");
    r.diff_html = in.string("diff_html");
    if (!in.failed() && (!lease || !status)) in.fail("invalid_field", "lease and status are required");
    if (!in.failed()) {
      r.lease = *lease;
      r.status = *status;
      check_vocabulary(in, r);
    }
  }
  if (!in.failed()) read_documents(in, r);
  if (!in.failed() && in.present("rebuilt")) read_rebuilt(in, *in.present("rebuilt"), r);
  if (!in.failed() && in.present("shipped")) read_shipped(in, *in.present("shipped"), r);
  if (const json* d = in.present("diff_json"); !in.failed() && d && !d->is_null()) {
    if (!d->is_object() && !d->is_array()) in.fail("invalid_field", "diff_json must be a JSON document");
    else r.diff_json = *d;
  }
  if (in.failed()) {
    error = in.error();
    return std::nullopt;
  }
  return r;
}

WorkerReport from_engine_result(const json& out) {
  WorkerReport r;
  const json& st = out.contains("status") ? out["status"] : json();
  r.status = !st.is_string() ? "error" : st == "verdict" ? "verified" : st.get<std::string>();
  if (out.contains("files") && out["files"].is_string() && one_of(kVerdictFilesTiers, out["files"].get<std::string>()))
    r.files = out["files"];
  r.module_root = engine_string(out, "module_root");
  r.shipped_root = engine_string(out, "shipped_root");
  r.rebuilt_root = engine_string(out, "rebuilt_root");
  r.reason = engine_string(out, "reason");
  if (out.contains("differing") && out["differing"].is_array()) {
    r.differing.emplace();
    for (const json& d : out["differing"]) r.differing->push_back(d.is_string() ? d.get<std::string>() : d.dump());
  }
  if (out.contains("environment") && out["environment"].is_object()) r.environment = out["environment"];
  if (out.contains("rebuilt") && out["rebuilt"].is_array()) {
    r.rebuilt.emplace();
    for (const json& f : out["rebuilt"])
      if (f.is_object() && f.contains("name") && f.contains("sha256") && f["name"].is_string() && f["sha256"].is_string())
        r.rebuilt->push_back({std::filesystem::path(f["name"].get<std::string>()).filename().string(), f["sha256"], {}});
  }
  r.details = engine_details(out);
  if (r.status == "verified" && (!r.files || !r.module_root)) {
    r.status = "error";
    r.reason = "engine reported a verdict without files/module_root";
  }
  return r;
}

}  // namespace kmr::verdict
