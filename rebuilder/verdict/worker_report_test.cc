#include "rebuilder/verdict/worker_report.h"

#include <gtest/gtest.h>

#include "rebuilder/base/file.h"

namespace kmr::verdict {
namespace {

using nlohmann::json;

constexpr const char* kDir = "rebuilder/verdict/testdata/worker_report/";

json load(const std::string& name) {
  auto t = read_text_file(std::string(kDir) + name, 1 << 20);
  EXPECT_TRUE(t.has_value()) << name;
  return t ? json::parse(*t) : json();
}

json good() {
  return {{"lease", "L"},
          {"status", "verified"},
          {"files", "identical"},
          {"module_root", "match"},
          {"shipped_root", "ab"},
          {"rebuilt", {{{"name", "a.deb"}, {"sha256", std::string(64, 'a')}}}},
          {"shipped", {{{"sha256", std::string(64, 'a')}, {"sha512", std::string(128, 'b')}}}}};
}

// {code, message} of parsing `body`, or {"", ""} when it is accepted.
std::pair<std::string, std::string> refusal(const json& body) {
  ReportError e;
  auto r = parse_worker_report(body, e);
  if (r) return {"", ""};
  return {e.code, e.message};
}

// Every golden report (made by the worker before this type existed) parses,
// and serialises back to the same document.
TEST(WorkerReport, GoldenReportsRoundTrip) {
  for (const char* c : {"verdict", "environment_unavailable", "different"}) {
    const json golden = load(std::string("report_") + c + ".json");
    ReportError e;
    auto r = parse_worker_report(golden, e);
    ASSERT_TRUE(r.has_value()) << c << ": " << e.code << " " << e.message;
    EXPECT_EQ(r->to_json(), golden) << c;
  }
}

// The engine results translate to the golden reports' engine fields.
TEST(WorkerReport, FromEngineResultMatchesGoldenFields) {
  for (const char* c : {"verdict", "environment_unavailable", "different"}) {
    const json engine = load(std::string("engine_") + c + ".json");
    const json golden = load(std::string("report_") + c + ".json");
    const json got = from_engine_result(engine).to_json();
    for (const char* k : {"status", "files", "module_root", "shipped_root", "rebuilt_root", "reason", "differing",
                          "environment", "details"}) {
      EXPECT_EQ(got.contains(k), golden.contains(k)) << c << " " << k;
      if (golden.contains(k)) {
        EXPECT_EQ(got[k], golden[k]) << c << " " << k;
      }
    }
  }
}

TEST(WorkerReport, EngineEdgeCases) {
  EXPECT_EQ(from_engine_result({{"status", 3}}).status, "error");
  auto r = from_engine_result({{"status", "verdict"}, {"files", "identical"}});
  EXPECT_EQ(r.status, "error");
  EXPECT_EQ(r.reason, "engine reported a verdict without files/module_root");
  r = from_engine_result({{"status", "build-failed"}, {"files", "build-failed"}, {"reason", "make failed"}});
  EXPECT_EQ(r.status, "build-failed");
  EXPECT_FALSE(r.files.has_value());  // only verdict tiers travel as files
  EXPECT_EQ(r.reason, "make failed");
  r = from_engine_result({{"status", "verdict"}, {"files", "identical"}, {"module_root", "match"},
                          {"rebuilt", {{{"name", "/w/out/a.deb"}, {"sha256", "x"}}, 5, {{"name", 1}}}}});
  ASSERT_TRUE(r.rebuilt.has_value());
  ASSERT_EQ(r.rebuilt->size(), 1u);
  EXPECT_EQ((*r.rebuilt)[0].name, "a.deb");
  EXPECT_EQ(r.details, json({}));
}

TEST(WorkerReport, AcceptsAndKeepsFields) {
  ReportError e;
  auto r = parse_worker_report(good(), e);
  ASSERT_TRUE(r.has_value()) << e.message;
  EXPECT_EQ(r->lease, "L");
  ASSERT_EQ(r->rebuilt->size(), 1u);
  EXPECT_FALSE((*r->rebuilt)[0].sha512.has_value());
  EXPECT_EQ(r->to_json(), good());
  json nulls = good();
  nulls["reason"] = nullptr;
  nulls["diff_json"] = nullptr;
  r = parse_worker_report(nulls, e);
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->reason.has_value());
  EXPECT_FALSE(r->diff_json.has_value());
}

TEST(WorkerReport, RefusalsKeepTheApiCodesAndMessages) {
  auto with = [](const char* k, json v) {
    json j = good();
    j[k] = std::move(v);
    return j;
  };
  auto without = [](const char* k) {
    json j = good();
    j.erase(k);
    return j;
  };
  using P = std::pair<std::string, std::string>;
  EXPECT_EQ(refusal(json::array()), P("invalid_json", "request body must be a JSON object"));
  EXPECT_EQ(refusal(with("bogus", 1)), P("unknown_field", "unknown field \"bogus\""));
  EXPECT_EQ(refusal(with("status", 1)), P("invalid_field", "field \"status\" must be a string"));
  EXPECT_EQ(refusal(without("lease")), P("invalid_field", "lease and status are required"));
  EXPECT_EQ(refusal(with("status", "verdict")), P("invalid_field", "unknown status \"verdict\""));
  EXPECT_EQ(refusal(with("module_root", "maybe")), P("invalid_field", "unknown module_root verdict"));
  EXPECT_EQ(refusal(with("files", "build-failed")), P("invalid_field", "unknown files verdict"));
  EXPECT_EQ(refusal(without("files")), P("invalid_field", "a verified report needs files and module_root"));
  EXPECT_EQ(refusal(with("rebuilt_root", "xyz")), P("invalid_hex", "roots must be hex"));
  EXPECT_EQ(refusal(with("shipped_root", std::string(258, 'a'))), P("invalid_hex", "roots must be hex"));
  EXPECT_EQ(refusal(with("differing", "a")), P("invalid_field", "differing must be an array"));
  EXPECT_EQ(refusal(with("differing", {1})), P("invalid_field", "differing must hold strings"));
  EXPECT_EQ(refusal(with("environment", json::array())), P("invalid_field", "environment must be an object"));
  EXPECT_EQ(refusal(with("details", 1)), P("invalid_field", "details must be an object"));
  EXPECT_EQ(refusal(with("duration_ms", 1.5)), P("invalid_field", "duration_ms must be an integer"));
  EXPECT_EQ(refusal(with("rebuilt", json::object())), P("invalid_field", "rebuilt must be an array"));
  EXPECT_EQ(refusal(with("rebuilt", {{{"name", "a"}, {"sha256", std::string(64, 'A')}}})),
            P("invalid_hex", "rebuilt[] needs name and a 64-hex sha256"));
  EXPECT_EQ(refusal(with("rebuilt", {{{"name", "a"}, {"sha256", std::string(64, 'a')}, {"x", 1}}})),
            P("unknown_field", "rebuilt[]: unknown field \"x\""));
  EXPECT_EQ(refusal(with("rebuilt", {{{"name", "a"}, {"sha256", std::string(64, 'a')}, {"sha512", "ab"}}})),
            P("invalid_hex", "rebuilt[].sha512 must be 128 lowercase hex digits"));
  EXPECT_EQ(refusal(with("shipped", {{{"sha256", std::string(64, 'a')}}})),
            P("invalid_hex", "shipped[] needs a 64-hex sha256 and a 128-hex sha512"));
  EXPECT_EQ(refusal(with("shipped", json::array({1}))), P("invalid_json", "request body must be a JSON object"));
  EXPECT_EQ(refusal(with("diff_json", "text")), P("invalid_field", "diff_json must be a JSON document"));
}

TEST(WorkerReport, Limits) {
  json many = json::array();
  for (std::size_t i = 0; i <= kMaxReportFiles; ++i) many.push_back({{"name", "a"}, {"sha256", std::string(64, 'a')}});
  json j = good();
  j["rebuilt"] = many;
  EXPECT_EQ(refusal(j).second, "rebuilt must hold at most 256 entries");
  j = good();
  j["shipped"] = json::array();
  for (std::size_t i = 0; i <= kMaxReportFiles; ++i)
    j["shipped"].push_back({{"sha256", std::string(64, 'a')}, {"sha512", std::string(128, 'a')}});
  EXPECT_EQ(refusal(j).second, "shipped must be an array of at most 256 entries");
  j = good();
  j["rebuilt"][0]["name"] = std::string(kMaxReportNameBytes + 1, 'n');
  EXPECT_EQ(refusal(j).first, "invalid_hex");
  j = good();
  j["lease"] = std::string(kMaxReportNameBytes + 1, 'l');
  EXPECT_EQ(refusal(j).second, "lease is too long");
}

}  // namespace
}  // namespace kmr::verdict
