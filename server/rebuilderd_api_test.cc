#include "server/rebuilderd_api.h"

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <utility>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "attest/keys.h"
#include "rebuilder/base/file.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/require.h"
#include "rebuilder/base/sha256.h"
#include "server/api.h"
#include "server/api_test_fixture.h"

namespace kmr::server {
namespace {

using nlohmann::json;

std::string hexof(int i) { return sha256_hex(Bytes(reinterpret_cast<const std::uint8_t*>(&i), sizeof i)); }

json load_contract() {
  std::ifstream f("server/rebuilderd_contract.json");
  return json::parse(f, nullptr, false);
}

bool has_type(const json& v, const std::string& t) {
  static const std::regex kNaive(R"(^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?$)");
  if (t == "string") return v.is_string();
  if (t == "integer") return v.is_number_integer();
  if (t == "boolean") return v.is_boolean();
  if (t == "object") return v.is_object();
  if (t == "array") return v.is_array();
  if (t == "null") return v.is_null();
  // Timestamps carry no time zone, as rebuilderd's NaiveDateTime.
  if (t == "timestamp") return v.is_string() && std::regex_match(v.get<std::string>(), kNaive);
  return false;
}

// Every field of the shape is present with one of its types; extra fields are kmr_* only.
void expect_shape(const json& obj, const std::string& shape) {
  static const json contract = load_contract();
  ASSERT_FALSE(contract.is_discarded()) << "cannot read server/rebuilderd_contract.json";
  ASSERT_TRUE(obj.is_object()) << shape << ": " << obj.dump();
  const json& fields = contract.at(shape);
  for (auto& [name, types] : fields.items()) {
    ASSERT_TRUE(obj.contains(name)) << shape << " lacks " << name << ": " << obj.dump();
    bool ok = false;
    std::string ts = types.get<std::string>();
    for (std::size_t pos = 0; pos <= ts.size();) {
      auto bar = ts.find('|', pos);
      if (bar == std::string::npos) bar = ts.size();
      ok = ok || has_type(obj[name], ts.substr(pos, bar - pos));
      pos = bar + 1;
    }
    EXPECT_TRUE(ok) << shape << "." << name << " is " << obj[name].dump() << ", expected " << ts;
  }
  for (auto& [name, v] : obj.items())
    EXPECT_TRUE(fields.contains(name) || name.rfind("kmr_", 0) == 0 || name == "source_name")
        << shape << " has unexpected field " << name;
}

class RebuilderdApiTest : public ApiFixture {
 protected:
  void SetUp() override {
    now_ = 1764666000;  // 2025-12-02T09:00:00
    ASSERT_NO_FATAL_FAILURE(open_store("rbapi-test"));
    start_api();
    auto core = store_->upsert_repository("core", "archlinux", "file:///core");
    auto extra = store_->upsert_repository("bookworm", "debian", "file:///deb");
    ASSERT_TRUE(core && extra);
    // Four sets: GOOD (two packages), BAD, FAIL and one never built (UNKWN).
    std::vector<ImportArtifact> arch = {
        {"linux-1", "linux", "1", "x86_64", "linux-1-x86_64.pkg.tar.zst", "file:///core/l", hexof(1), 1},
        {"linux-1", "linux-headers", "1", "x86_64", "linux-headers-1-x86_64.pkg.tar.zst", "file:///core/h", hexof(2), 1},
        {"linux-lts-2", "linux-lts", "2", "x86_64", "linux-lts-2-x86_64.pkg.tar.zst", "file:///core/t", hexof(3), 1}};
    std::vector<ImportArtifact> deb = {
        {"linux-3", "linux-image-3-amd64", "3", "amd64", "linux-image-3-amd64_3_amd64.deb", "file:///deb/i", hexof(4), 1},
        {"linux-4", "linux-image-4-amd64", "4", "amd64", "linux-image-4-amd64_4_amd64.deb", "file:///deb/j", hexof(5), 1}};
    ASSERT_TRUE(store_->import_artifacts(*core, "archlinux", arch, now_).has_value());
    ASSERT_TRUE(store_->import_artifacts(*extra, "debian", deb, now_).has_value());
    auto k = attest::Ed25519Key::generate();
    ASSERT_TRUE(k.has_value());
    auto wid = store_->register_worker("w1", to_hex(k->raw_public()), {"default"}, now_);
    ASSERT_TRUE(wid.has_value());
    worker_.id = *wid;
    worker_.name = "w1";
    worker_.public_key = to_hex(k->raw_public());
    worker_.resource_classes = {"default"};
    // Three of the four sets get a report; the fourth job stays running.
    policy_.max_leases_per_worker = 10;
    for (int i = 0; i < 4; ++i) {
      auto job = store_->claim_job(worker_, now_, policy_);
      ASSERT_TRUE(job.has_value() && job->has_value());
      jobs_.push_back(**job);
    }
    // The GOOD set's files are the 4 bytes whose sha256 is hexof(i); their sha512 comes from
    // coreutils' sha512sum, as a worker would report it.
    for (int i : {1, 2}) {
      std::string path = dir_->path() + "/" + std::to_string(i) + ".bin";
      std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(&i), sizeof i);
      std::string sha512 = sha512sum(path);
      ASSERT_EQ(sha512.size(), 128u) << "sha512sum " << path;
      shipped_sha512_.emplace_back(hexof(i), sha512);
      rebuilt_sha512_.emplace_back(i == 1 ? "linux-1-x86_64.pkg.tar.zst" : "linux-headers-1-x86_64.pkg.tar.zst", sha512);
    }
    ASSERT_TRUE(report_job("linux-1", "verified", "identical", "match",
                           {{"linux-1-x86_64.pkg.tar.zst", hexof(1)}, {"linux-headers-1-x86_64.pkg.tar.zst", hexof(2)}}));
    ASSERT_TRUE(report_job("linux-lts-2", "verified", "different", "mismatch",
                           {{"linux-lts-2-x86_64.pkg.tar.zst", hexof(33)}}));
    ASSERT_TRUE(report_job("linux-3", "build-failed", std::nullopt, std::nullopt, {}));
  }

  bool report_job(const std::string& set, const std::string& status, std::optional<std::string> files,
                  std::optional<std::string> root, std::vector<std::pair<std::string, std::string>> rebuilt) {
    for (auto& j : jobs_) {
      if (j["set"] != set) continue;
      Report r;
      r.job_id = j["id"].get<std::int64_t>();
      r.lease_token = j["lease"].get<std::string>();
      r.worker_id = worker_.id;
      r.status = status;
      r.files = files;
      r.module_root = root;
      if (root) {
        r.shipped_root = "aa";
        r.rebuilt_root = *root == "match" ? "aa" : "bb";
      }
      r.rebuilt = std::move(rebuilt);
      r.rebuilt_sha512 = std::exchange(rebuilt_sha512_, {});
      r.shipped_sha512 = std::exchange(shipped_sha512_, {});
      auto log = store_->blobs().put("log of " + set + "\n");
      if (!log) return false;
      r.log_sha256 = *log;
      if (files && *files == "different") {
        auto diff = store_->blobs().put("{\"differences\":[\"vmlinuz\"]}");
        if (!diff) return false;
        r.diff_json_sha256 = *diff;
      }
      auto out = store_->report(r, now_, policy_);
      if (!out) {
        ADD_FAILURE() << out.error().to_string();
        return false;
      }
      return true;
    }
    ADD_FAILURE() << "no claimed job for " << set << " in " << json(jobs_).dump();
    return false;
  }

  static std::string sha512sum(const std::string& path) {
    std::string out;
    if (FILE* p = ::popen(("sha512sum '" + path + "'").c_str(), "r")) {
      char buf[256];
      while (std::fgets(buf, sizeof buf, p)) out += buf;
      ::pclose(p);
    }
    return out.substr(0, out.find(' '));
  }
  std::vector<std::pair<std::string, std::string>> rebuilt_sha512_, shipped_sha512_;

  HttpResponse call(const std::string& method, const std::string& target,
                    std::vector<std::pair<std::string, std::string>> headers = {}) {
    HttpRequest r{method, target, std::move(headers), "", "127.0.0.1"};
    return api_->handle(r);
  }
  json get_json(const std::string& target, int want = 200) {
    HttpResponse r = call("GET", target);
    EXPECT_EQ(r.status, want) << target << ": " << r.body;
    return json::parse(r.body, nullptr, false);
  }
  std::string header(const HttpResponse& r, const std::string& name) {
    for (auto& [k, v] : r.headers)
      if (k == name) return v;
    return "";
  }
  const json* record(const json& records, const std::string& name) {
    for (auto& r : records)
      if (r["name"] == name) return &r;
    return nullptr;
  }

  QueuePolicy policy_;
  Worker worker_;
  std::vector<json> jobs_;
};

TEST_F(RebuilderdApiTest, V0PkgsListShapesStatusesAndFilters) {
  HttpResponse r = call("GET", "/api/v0/pkgs/list");
  ASSERT_EQ(r.status, 200) << r.body;
  json list = json::parse(r.body);
  ASSERT_EQ(list.size(), 5u);
  for (auto& p : list) expect_shape(p, "v0_pkg");
  EXPECT_EQ((*record(list, "linux"))["status"], "GOOD");
  EXPECT_EQ((*record(list, "linux"))["has_attestation"], true);
  EXPECT_EQ((*record(list, "linux"))["built_at"], "2025-12-02T09:00:00");
  EXPECT_EQ((*record(list, "linux"))["kmr_files"], "identical");
  EXPECT_EQ((*record(list, "linux-headers"))["status"], "GOOD");
  EXPECT_EQ((*record(list, "linux-lts"))["status"], "BAD");
  EXPECT_EQ((*record(list, "linux-lts"))["has_diffoscope"], true);
  EXPECT_EQ((*record(list, "linux-lts"))["has_attestation"], false);
  EXPECT_EQ((*record(list, "linux-lts"))["kmr_module_root"], "mismatch");
  // FAIL is shown as BAD in v0.
  EXPECT_EQ((*record(list, "linux-image-3-amd64"))["status"], "BAD");
  EXPECT_EQ((*record(list, "linux-image-3-amd64"))["kmr_status"], "build-failed");
  EXPECT_EQ((*record(list, "linux-image-4-amd64"))["status"], "UNKWN");
  EXPECT_TRUE((*record(list, "linux-image-4-amd64"))["build_id"].is_null());
  EXPECT_EQ(get_json("/api/v0/pkgs/list?distro=debian").size(), 2u);
  EXPECT_EQ(get_json("/api/v0/pkgs/list?suite=core&status=GOOD").size(), 2u);
  EXPECT_EQ(get_json("/api/v0/pkgs/list?name=linux-lts&architecture=x86_64").size(), 1u);
  EXPECT_EQ(get_json("/api/v0/pkgs/list?status=BAD").size(), 2u);
  EXPECT_EQ(get_json("/api/v0/pkgs/list?status=UNKWN").size(), 1u);
  // Last-Modified and If-Modified-Since.
  std::string lm = header(r, "Last-Modified");
  EXPECT_EQ(lm, "Tue, 02 Dec 2025 09:00:00 GMT");
  EXPECT_EQ(call("GET", "/api/v0/pkgs/list", {{"if-modified-since", lm}}).status, 304);
  EXPECT_EQ(call("GET", "/api/v0/pkgs/list", {{"if-modified-since", "Tue, 02 Dec 2025 08:59:59 GMT"}}).status, 200);
  EXPECT_EQ(call("GET", "/api/v0/pkgs/list", {{"if-modified-since", "garbage"}}).status, 200);
}

TEST_F(RebuilderdApiTest, V0DashboardAndBuildResources) {
  json d = get_json("/api/v0/dashboard");
  expect_shape(d, "v0_dashboard");
  expect_shape(d["suites"]["core"], "v0_suite");
  EXPECT_EQ(d["suites"]["core"], (json{{"good", 2}, {"unknown", 0}, {"bad", 1}}));
  EXPECT_EQ(d["suites"]["bookworm"], (json{{"good", 0}, {"unknown", 1}, {"bad", 1}}));
  EXPECT_EQ(d["active_builds"].size(), 1u);  // the fourth claimed job
  EXPECT_EQ(d["queue_length"], 2);  // the BAD and FAIL sets wait for their retry
  EXPECT_EQ(d["now"], "2025-12-02T09:00:00");
  json list = get_json("/api/v0/pkgs/list?name=linux");
  std::int64_t good = list[0]["build_id"];
  HttpResponse log = call("GET", "/api/v0/builds/" + std::to_string(good) + "/log");
  EXPECT_EQ(log.status, 200);
  EXPECT_EQ(log.body, "log of linux-1\n");
  EXPECT_EQ(call("GET", "/api/v0/builds/" + std::to_string(good) + "/diffoscope").status, 404);
  std::int64_t bad = get_json("/api/v0/pkgs/list?name=linux-lts")[0]["build_id"];
  HttpResponse diff = call("GET", "/api/v0/builds/" + std::to_string(bad) + "/diffoscope");
  EXPECT_EQ(diff.status, 200);
  EXPECT_NE(diff.body.find("vmlinuz"), std::string::npos);
  EXPECT_EQ(call("GET", "/api/v0/builds/" + std::to_string(bad) + "/attestation").status, 404);
  EXPECT_EQ(call("GET", "/api/v0/builds/99999/log").status, 404);
  EXPECT_EQ(call("GET", "/api/v0/builds/x/log").status, 404);
  json keys = get_json("/api/v0/public-keys");
  expect_shape(keys, "public_keys");
}

TEST_F(RebuilderdApiTest, V1PackagesFiltersAndPaging) {
  json bin = get_json("/api/v1/packages/binary");
  expect_shape(bin, "v1_page");
  EXPECT_EQ(bin["total"], 5);
  for (auto& r : bin["records"]) expect_shape(r, "v1_binary");
  const json& good = *record(bin["records"], "linux");
  EXPECT_EQ(good["status"], "GOOD");
  EXPECT_EQ(good["attestation_log_id"], good["build_id"]);
  EXPECT_EQ((*record(bin["records"], "linux-lts"))["diffoscope_log_id"],
            (*record(bin["records"], "linux-lts"))["build_id"]);
  EXPECT_EQ((*record(bin["records"], "linux-image-3-amd64"))["status"], "FAIL");
  EXPECT_EQ((*record(bin["records"], "linux-image-4-amd64"))["status"], "UNKWN");
  EXPECT_EQ(get_json("/api/v1/packages/binary?distribution=debian")["total"], 2);
  EXPECT_EQ(get_json("/api/v1/packages/binary?release=core&architecture=x86_64")["total"], 3);
  EXPECT_EQ(get_json("/api/v1/packages/binary?source_name=linux")["total"], 2);
  EXPECT_EQ(get_json("/api/v1/packages/binary?name=linux&version=1")["total"], 1);
  EXPECT_EQ(get_json("/api/v1/packages/binary?name=linux&version=2")["total"], 0);
  // Paging: limit, after, before, sort, direction; total counts every match.
  json p1 = get_json("/api/v1/packages/binary?limit=2");
  EXPECT_EQ(p1["total"], 5);
  ASSERT_EQ(p1["records"].size(), 2u);
  std::int64_t last = p1["records"][1]["id"];
  json p2 = get_json("/api/v1/packages/binary?limit=2&after=" + std::to_string(last));
  ASSERT_EQ(p2["records"].size(), 2u);
  EXPECT_GT(p2["records"][0]["id"].get<std::int64_t>(), last);
  json before = get_json("/api/v1/packages/binary?before=" + std::to_string(last));
  EXPECT_EQ(before["records"].size(), 1u);
  json desc = get_json("/api/v1/packages/binary?sort=name&direction=desc&limit=1");
  EXPECT_EQ(desc["records"][0]["name"], "linux-lts");
  get_json("/api/v1/packages/binary?sort=evil;drop", 400);
  get_json("/api/v1/packages/binary?limit=-1", 400);
  get_json("/api/v1/packages/binary?direction=sideways", 400);
  EXPECT_EQ(get_json("/api/v1/packages/binary?limit=999999999")["records"].size(), 5u);

  json src = get_json("/api/v1/packages/source");
  expect_shape(src, "v1_page");
  EXPECT_EQ(src["total"], 4);
  for (auto& r : src["records"]) expect_shape(r, "v1_source");
  EXPECT_EQ((*record(src["records"], "linux"))["status"], "GOOD");
  EXPECT_EQ(get_json("/api/v1/packages/source?distribution=archlinux")["total"], 2);
}

TEST_F(RebuilderdApiTest, V1BuildsArtifactsDashboardMeta) {
  // /api/v1/builds/{id} is kmr's own route; the rebuilderd shape lives under /rebuilderd/.
  json builds = get_json("/rebuilderd/api/v1/builds");
  expect_shape(builds, "v1_page");
  EXPECT_EQ(builds["total"], 3);
  for (auto& b : builds["records"]) expect_shape(b, "v1_build");
  std::int64_t good = (*record(builds["records"], "linux"))["id"];
  std::string base = "/rebuilderd/api/v1/builds/" + std::to_string(good);
  json one = get_json(base);
  expect_shape(one, "v1_build");
  EXPECT_EQ(one["status"], "GOOD");
  EXPECT_EQ(one["backend"], "kmr-archlinux");
  EXPECT_EQ(call("GET", base + "/log").body, "log of linux-1\n");
  json arts = get_json(base + "/artifacts");
  ASSERT_EQ(arts.size(), 2u);
  for (auto& a : arts) expect_shape(a, "v1_artifact");
  EXPECT_EQ(arts[0]["has_attestation"], true);
  json a0 = get_json(base + "/artifacts/" + std::to_string(arts[0]["id"].get<std::int64_t>()));
  EXPECT_EQ(a0, arts[0]);
  get_json(base + "/artifacts/424242", 404);
  EXPECT_EQ(get_json("/rebuilderd/api/v1/builds?distribution=debian")["total"], 1);
  // kmr's own /api/v1/builds/{id} keeps its shape.
  json kmr_build = get_json("/api/v1/builds/" + std::to_string(good));
  EXPECT_FALSE(kmr_build.contains("backend"));

  json d = get_json("/api/v1/dashboard");
  expect_shape(d, "v1_dashboard");
  expect_shape(d["rebuilds"], "v1_dashboard_rebuilds");
  expect_shape(d["jobs"], "v1_dashboard_jobs");
  EXPECT_EQ(d["rebuilds"], (json{{"good", 2}, {"bad", 1}, {"fail", 1}, {"unknown", 1}}));
  EXPECT_EQ(d["jobs"], (json{{"running", 1}, {"available", 0}, {"pending", 2}}));
  EXPECT_EQ(get_json("/rebuilderd/api/v1/dashboard"), d);

  EXPECT_EQ(get_json("/api/v1/meta/distributions"), (json{"archlinux", "debian"}));
  EXPECT_EQ(get_json("/api/v1/meta/distributions/debian/releases"), (json{"bookworm"}));
  EXPECT_EQ(get_json("/api/v1/meta/distributions/archlinux/architectures"), (json{"x86_64"}));
  EXPECT_EQ(get_json("/api/v1/meta/distributions/none/releases"), json::array());
  json keys = get_json("/api/v1/meta/public-keys");
  expect_shape(keys, "public_keys");
  ASSERT_EQ(keys["current"].size(), 1u);
  std::string pem = keys["current"][0];
  EXPECT_EQ(pem.rfind("-----BEGIN PUBLIC KEY-----\r\n", 0), 0u);
  EXPECT_TRUE(pem.ends_with("-----END PUBLIC KEY-----\r\n"));
  EXPECT_EQ(get_json("/api/v0/public-keys"), keys);
}

TEST_F(RebuilderdApiTest, WritesAreRefused) {
  for (const char* m : {"POST", "PUT", "DELETE", "PATCH"}) {
    HttpResponse v1 = call(m, "/api/v1/packages/binary");
    EXPECT_EQ(v1.status, 403) << m;
    EXPECT_TRUE(json::parse(v1.body, nullptr, false).contains("error"));
    EXPECT_EQ(call(m, "/api/v0/pkgs/list").status, 501) << m;
    EXPECT_EQ(call(m, "/rebuilderd/api/v1/builds").status, 403) << m;
    EXPECT_EQ(call(m, "/api/v1/meta/distributions").status, 403) << m;
  }
  EXPECT_EQ(call("GET", "/api/v1/packages/nothing").status, 404);
  EXPECT_EQ(call("GET", "/rebuilderd/api/v2/x").status, 404);
}

// The error body is part of the wire contract: kmr's one shape, byte for byte, and a
// message echoing request bytes stays valid UTF-8.
TEST_F(RebuilderdApiTest, ErrorBodiesAreExact) {
  HttpResponse refused = call("POST", "/api/v1/packages/binary");
  EXPECT_EQ(refused.body, R"({"error":{"code":"read_only","message":"this rebuilderd API is read-only"}})");
  EXPECT_EQ(refused.content_type, "application/json");
  EXPECT_EQ(call("PUT", "/api/v0/pkgs/list").body,
            R"({"error":{"code":"not_implemented","message":"this rebuilderd API is read-only"}})");
  EXPECT_EQ(call("GET", "/rebuilderd/api/v2/x").body,
            R"({"error":{"code":"not_found","message":"no such rebuilderd endpoint"}})");
  HttpResponse bad = call("GET", "/api/v1/packages/binary?sort=%FF");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.body, "{\"error\":{\"code\":\"bad_request\",\"message\":\"cannot sort by \xEF\xBF\xBD\"}}");
}

// The link is checked by an independent implementation: securesystemslib's canonical JSON
// and an Ed25519 verification with Python's cryptography module.
TEST_F(RebuilderdApiTest, AttestationIsAValidInTotoLinkForGoodOnly) {
  json list = get_json("/api/v0/pkgs/list?name=linux");
  std::int64_t good = list[0]["build_id"];
  json link = get_json("/api/v0/builds/" + std::to_string(good) + "/attestation");
  ASSERT_TRUE(link.contains("signed"));
  EXPECT_EQ(link["signed"]["_type"], "link");
  EXPECT_EQ(link["signed"]["name"], "rebuild linux-1-x86_64.pkg.tar.zst");
  EXPECT_EQ(link["signed"]["products"]["linux-1-x86_64.pkg.tar.zst"]["sha256"], hexof(1));
  EXPECT_EQ(link["signed"]["materials"]["linux-headers-1-x86_64.pkg.tar.zst"]["sha256"], hexof(2));
  EXPECT_EQ(link["signed"]["materials"]["linux-1-x86_64.pkg.tar.zst"].value("sha512", "").size(), 128u);
  EXPECT_EQ(link["signed"]["products"]["linux-headers-1-x86_64.pkg.tar.zst"]["sha512"],
            link["signed"]["materials"]["linux-headers-1-x86_64.pkg.tar.zst"]["sha512"]);
  json arts = get_json("/rebuilderd/api/v1/builds/" + std::to_string(good) + "/artifacts");
  json one = get_json("/rebuilderd/api/v1/builds/" + std::to_string(good) + "/artifacts/" +
                      std::to_string(arts[1]["id"].get<std::int64_t>()) + "/attestation");
  EXPECT_EQ(one["signed"]["name"], "rebuild linux-headers-1-x86_64.pkg.tar.zst");
  EXPECT_EQ(one["signed"]["products"].size(), 1u);

  if (std::system("python3 -c 'import cryptography' >/dev/null 2>&1") != 0) {
    KMR_SKIP_OR_FAIL("python3-cryptography not installed");
  }
  json keys = get_json("/api/v1/meta/public-keys");
  std::string extra;
  auto run = [&](const json& l) {
    std::string lp = dir_->path() + "/link.json", kp = dir_->path() + "/keys.json";
    std::ofstream(lp) << l.dump();
    std::ofstream(kp) << keys.dump();
    int rc = std::system(("python3 server/rebuilderd_link_verify.py " + lp + " " + kp + extra).c_str());
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  };
  EXPECT_EQ(run(link), 0);
  EXPECT_EQ(run(one), 0);
  // sha512 beside sha256 for materials and products, equal to hashlib's over the real bytes.
  const std::string f1 = " --file linux-1-x86_64.pkg.tar.zst=" + dir_->path() + "/1.bin";
  const std::string f2 = " --file linux-headers-1-x86_64.pkg.tar.zst=" + dir_->path() + "/2.bin";
  extra = " --require-sha512" + f1 + f2;
  EXPECT_EQ(run(link), 0);
  extra = " --require-sha512" + f2;
  EXPECT_EQ(run(one), 0);
  extra = " --file linux-1-x86_64.pkg.tar.zst=" + dir_->path() + "/2.bin";  // another file's bytes
  EXPECT_EQ(run(link), 1);
  extra.clear();
  json tampered = link;
  tampered["signed"]["products"]["linux-1-x86_64.pkg.tar.zst"]["sha256"] = hexof(9);
  EXPECT_EQ(run(tampered), 1);
  json wrong_keyid = link;
  wrong_keyid["signatures"][0]["keyid"] = hexof(7);
  EXPECT_EQ(run(wrong_keyid), 1);
}

TEST(CanonicalJson, MatchesSecuresystemslib) {
  json j = json::parse(R"({"b":[1,true,null,"x\"y\\z"],"a":{"é":"ü","Z":-3}})");
  auto c = canonical_json(j);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(*c, "{\"a\":{\"Z\":-3,\"é\":\"ü\"},\"b\":[1,true,null,\"x\\\"y\\\\z\"]}");
  EXPECT_FALSE(canonical_json(json::parse("[1.5]")).has_value());
}

TEST(RebuilderdStatus, MapsKmrVerdicts) {
  EXPECT_EQ(rebuilderd_status(std::nullopt, std::nullopt, std::nullopt), "UNKWN");
  EXPECT_EQ(rebuilderd_status("verified", "match", "identical"), "GOOD");
  EXPECT_EQ(rebuilderd_status("verified", std::nullopt, "content-identical"), "GOOD");
  EXPECT_EQ(rebuilderd_status("verified", "mismatch", "identical"), "BAD");
  EXPECT_EQ(rebuilderd_status("verified", "match", "different"), "BAD");
  EXPECT_EQ(rebuilderd_status("build-failed", std::nullopt, std::nullopt), "FAIL");
  EXPECT_EQ(rebuilderd_status("environment-unavailable", std::nullopt, std::nullopt), "FAIL");
  EXPECT_EQ(rebuilderd_status("error", std::nullopt, std::nullopt), "FAIL");
  EXPECT_EQ(naive_time(0), "1970-01-01T00:00:00");
}

}  // namespace
}  // namespace kmr::server
