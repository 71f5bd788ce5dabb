#include "attest/statement.h"

#include <cstdlib>
#include <functional>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "attest/schema_lite.h"
#include "rebuilder/base/file.h"
#include "rebuilder/base/sha256.h"

namespace kmr::attest {
namespace {

nlohmann::json load_schema() {
  std::string path = std::string(std::getenv("TEST_SRCDIR")) + "/kmr/schema/attestation/kernel-rebuild-v1.schema.json";
  auto text = read_text_file(path, 1 << 20);
  KMR_CHECK(text.has_value());
  return nlohmann::json::parse(*text);
}

StatementInput sample() {
  StatementInput in;
  in.subjects = {{"linux-image-6.1.0-18-amd64_6.1.76-1_amd64.deb", sha256_hex(as_bytes("shipped"))}};
  in.verifier_id = "https://rebuilder-a.example/kmr";
  in.time_verified = "2026-11-23T02:00:00Z";
  in.resource_uri = "pkg:deb/debian/linux-image-6.1.0-18-amd64@6.1.76-1?arch=amd64";
  in.policy_sha256 = sha256_hex(as_bytes("policy"));
  in.module_root = "match";
  in.files = "identical-modulo-signatures";
  in.shipped_root = sha256_hex(as_bytes("root"));
  in.shipped_levels = 12;
  in.rebuilt_root = in.shipped_root;
  in.module_content_root = "match";
  in.shipped_content_root = sha256_hex(as_bytes("content root"));
  in.rebuilt_content_root = in.shipped_content_root;
  in.content_root_levels = 12;
  in.build_environment_sha256 = sha256_hex(as_bytes("env"));
  in.rebuilt_artifacts = {{"rebuilt.deb", sha256_hex(as_bytes("rebuilt"))}};
  in.own_keyid = "aa";
  return in;
}

std::vector<std::string> schema_errors(const std::string& statement) {
  static const nlohmann::json schema = load_schema();
  return testing::validate(schema, nlohmann::json::parse(statement));
}

TEST(Statement, PassedValidatesAgainstSchema) {
  auto st = make_statement(sample());
  ASSERT_TRUE(st) << st.error().to_string();
  EXPECT_EQ(schema_errors(*st), std::vector<std::string>{});
  auto j = nlohmann::json::parse(*st);
  EXPECT_EQ(j["_type"], "https://in-toto.io/Statement/v1");
  EXPECT_EQ(j["predicateType"], "https://kmr.dev/attestation/kernel-rebuild/v1");
  EXPECT_EQ(j["predicate"]["verificationResult"], "PASSED");
  EXPECT_EQ(j["predicate"]["kernel"]["shipped_levels"], 12);
  // A single rebuilder never claims SLSA_BUILD_REPRODUCED.
  for (const auto& l : j["predicate"]["verifiedLevels"]) EXPECT_NE(l, "SLSA_BUILD_REPRODUCED");
  auto v = parse_statement(as_bytes(*st));
  ASSERT_TRUE(v) << v.error().to_string();
  EXPECT_TRUE(has_subject(*v, sha256_hex(as_bytes("shipped"))));
  EXPECT_FALSE(has_subject(*v, sha256_hex(as_bytes("other"))));
  EXPECT_EQ(v->verification_result, "PASSED");
}

TEST(Statement, NegativeResultsAreAttestedAndValid) {
  for (auto [mr, files] : std::vector<std::pair<std::string, std::string>>{
           {"mismatch", "different"}, {"absent", "build-failed"}, {"invalid", "identical"},
           {"match", "environment-unavailable"}, {"absent", "error"}}) {
    auto in = sample();
    in.module_root = mr;
    in.files = files;
    in.reason = "because";
    in.rebuilt_root.clear();
    in.shipped_levels.reset();
    in.build_environment_sha256.clear();
    auto st = make_statement(in);
    ASSERT_TRUE(st);
    EXPECT_EQ(schema_errors(*st), std::vector<std::string>{}) << *st;
    auto j = nlohmann::json::parse(*st);
    EXPECT_EQ(j["predicate"]["verificationResult"], "FAILED") << mr << files;
    EXPECT_EQ(j["predicate"]["verifiedLevels"], nlohmann::json::array({"FAILED"}));
    auto v = parse_statement(as_bytes(*st));
    ASSERT_TRUE(v);
    EXPECT_EQ(v->verification_result, "FAILED");
  }
}

TEST(Statement, CarriesTheContentRoot) {
  auto st = make_statement(sample());
  ASSERT_TRUE(st);
  auto k = nlohmann::json::parse(*st)["predicate"]["kernel"];
  EXPECT_EQ(k["module_content_root"], "match");
  EXPECT_EQ(k["shipped_content_root"], sha256_hex(as_bytes("content root")));
  EXPECT_EQ(k["rebuilt_content_root"], sha256_hex(as_bytes("content root")));
  EXPECT_EQ(k["content_root_levels"], 12);
  auto levels = nlohmann::json::parse(*st)["predicate"]["verifiedLevels"];
  EXPECT_EQ(levels, nlohmann::json::array({"KMR_FILES_IDENTICAL_MODULO_SIGNATURES", "KMR_MODULE_ROOT_MATCH",
                                           "KMR_MODULE_CONTENT_ROOT_MATCH"}));
  auto v = parse_statement(as_bytes(*st));
  ASSERT_TRUE(v) << v.error().to_string();
  EXPECT_EQ(v->module_content_root, "match");
  EXPECT_EQ(v->shipped_content_root, sha256_hex(as_bytes("content root")));
}

// Files identical once signatures are stripped, module_root match or absent,
// but the modules' content differs: the one rule says not reproducible.
TEST(Statement, ContentRootMismatchFails) {
  for (std::string mr : {"match", "absent"}) {
    auto in = sample();
    in.module_root = mr;
    in.module_content_root = "mismatch";
    in.rebuilt_content_root = sha256_hex(as_bytes("other content root"));
    auto st = make_statement(in);
    ASSERT_TRUE(st) << st.error().to_string();
    EXPECT_EQ(schema_errors(*st), std::vector<std::string>{}) << *st;
    auto j = nlohmann::json::parse(*st);
    EXPECT_EQ(j["predicate"]["verificationResult"], "FAILED") << mr;
    EXPECT_EQ(j["predicate"]["verifiedLevels"], nlohmann::json::array({"FAILED"}));
    EXPECT_EQ(j["predicate"]["kernel"]["module_content_root"], "mismatch");
    EXPECT_NE(j["predicate"]["kernel"]["shipped_content_root"], j["predicate"]["kernel"]["rebuilt_content_root"]);
    auto v = parse_statement(as_bytes(*st));
    ASSERT_TRUE(v) << v.error().to_string();
    EXPECT_EQ(v->verification_result, "FAILED");
    EXPECT_EQ(v->module_content_root, "mismatch");
  }
  // absent (no modules on either side) and not compared (null) pass.
  for (std::string cr : {"absent", ""}) {
    auto in = sample();
    in.module_content_root = cr;
    auto st = make_statement(in);
    ASSERT_TRUE(st);
    EXPECT_EQ(schema_errors(*st), std::vector<std::string>{}) << *st;
    EXPECT_EQ(nlohmann::json::parse(*st)["predicate"]["verificationResult"], "PASSED") << cr;
  }
}

// A statement made before the content root existed has no such field and
// still parses, with the rule reading it as absent.
TEST(Statement, StatementWithoutContentRootParses) {
  auto j = nlohmann::json::parse(*make_statement(sample()));
  for (const char* k : {"module_content_root", "shipped_content_root", "rebuilt_content_root", "content_root_levels"}) {
    j["predicate"]["kernel"].erase(k);
  }
  EXPECT_EQ(testing::validate(load_schema(), j), std::vector<std::string>{});
  std::string text = j.dump();
  auto v = parse_statement(as_bytes(text));
  ASSERT_TRUE(v) << v.error().to_string();
  EXPECT_EQ(v->verification_result, "PASSED");
  EXPECT_FALSE(v->module_content_root.has_value());
}

TEST(Statement, ReproducedOnlyWithAnIndependentKey) {
  auto in = sample();
  in.confirmations = {{"https://a", "aa", "https://a/x", ""}};  // our own key: not independent
  auto st = make_statement(in);
  ASSERT_TRUE(st);
  EXPECT_EQ(st->find("SLSA_BUILD_REPRODUCED"), std::string::npos);
  in.confirmations.push_back({"https://b", "bb", "https://b/env/1", sha256_hex(as_bytes("env-b"))});
  st = make_statement(in);
  ASSERT_TRUE(st);
  EXPECT_EQ(schema_errors(*st), std::vector<std::string>{});
  auto j = nlohmann::json::parse(*st);
  EXPECT_EQ(j["predicate"]["verifiedLevels"][0], "SLSA_BUILD_REPRODUCED");
  EXPECT_EQ(j["predicate"]["inputAttestations"].size(), 1u);
  // ... and never for a FAILED result.
  in.files = "different";
  st = make_statement(in);
  ASSERT_TRUE(st);
  EXPECT_EQ(st->find("SLSA_BUILD_REPRODUCED"), std::string::npos);
}

TEST(Statement, SchemaValidatorCatchesViolations) {
  auto j = nlohmann::json::parse(*make_statement(sample()));
  auto bad = j;
  bad["predicate"]["kernel"]["files"] = "same";
  EXPECT_FALSE(testing::validate(load_schema(), bad).empty());
  bad = j;
  bad["subject"][0]["digest"]["sha256"] = "ABC";
  EXPECT_FALSE(testing::validate(load_schema(), bad).empty());
  bad = j;
  bad["predicate"].erase("resourceUri");
  EXPECT_FALSE(testing::validate(load_schema(), bad).empty());
  bad = j;
  bad["predicate"]["kernel"]["module_content_root"] = "invalid";
  EXPECT_FALSE(testing::validate(load_schema(), bad).empty());
  bad = j;
  bad["predicate"]["verifiedLevels"].push_back("SLSA_BUILD_LEVEL_3");
  EXPECT_FALSE(testing::validate(load_schema(), bad).empty());
}

TEST(Statement, RejectsBadInput) {
  auto in = sample();
  in.files = "same";
  auto r = make_statement(in);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "statement: unknown files verdict 'same'");
  in = sample();
  in.subjects[0].sha256 = "ABCD";
  r = make_statement(in);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "statement: subject 'linux-image-6.1.0-18-amd64_6.1.76-1_amd64.deb' sha256 is not 64 lowercase hex digits");
  in = sample();
  in.module_content_root = "invalid";
  r = make_statement(in);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "statement: unknown module_content_root verdict 'invalid'");
  in = sample();
  in.rebuilt_content_root = "XYZ";
  r = make_statement(in);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "statement: rebuilt_content_root is not lowercase hex");
}

TEST(Statement, ParseRejectsHostileStatements) {
  auto good = nlohmann::json::parse(*make_statement(sample()));
  struct Case {
    std::function<void(nlohmann::json&)> mutate;
    std::string msg;
  } cases[] = {
      {[](auto& j) { j["_type"] = "https://in-toto.io/Statement/v0.1"; }, "statement: _type is not https://in-toto.io/Statement/v1"},
      {[](auto& j) { j["predicateType"] = "https://slsa.dev/provenance/v1"; }, "statement: predicateType is not https://kmr.dev/attestation/kernel-rebuild/v1"},
      {[](auto& j) { j["subject"] = nlohmann::json::array(); }, "statement: 'subject' must be a non-empty array"},
      {[](auto& j) { j["subject"][0].erase("digest"); }, "subject: entry without 'digest' object"},
      {[](auto& j) { j["subject"][0]["digest"]["sha256"] = "00"; }, "subject: digest.sha256 is not 64 lowercase hex digits"},
      {[](auto& j) { j["predicate"]["verifier"].erase("id"); }, "statement: predicate.verifier.id is missing"},
      {[](auto& j) { j["predicate"]["verificationResult"] = "OK"; }, "statement: predicate.verificationResult must be PASSED or FAILED"},
      {[](auto& j) { j["predicate"]["kernel"]["files"] = "different"; }, "statement: verificationResult PASSED contradicts verdicts module_root=match files=different module_content_root=match"},
      {[](auto& j) { j["predicate"]["kernel"]["module_content_root"] = "mismatch"; }, "statement: verificationResult PASSED contradicts verdicts module_root=match files=identical-modulo-signatures module_content_root=mismatch"},
      {[](auto& j) { j["predicate"]["kernel"]["module_content_root"] = "same"; }, "statement: kernel.module_content_root is not a known verdict"},
      {[](auto& j) { j["predicate"]["kernel"]["module_content_root"] = 1; }, "statement: kernel.module_content_root is not a known verdict"},
      {[](auto& j) { j["predicate"]["kernel"]["module_root"] = 3; }, "statement: kernel.module_root is not a known verdict"},
  };
  for (const auto& c : cases) {
    auto j = good;
    c.mutate(j);
    std::string text = j.dump();
    auto r = parse_statement(as_bytes(text));
    ASSERT_FALSE(r) << c.msg;
    EXPECT_EQ(r.error().message(), c.msg);
  }
  auto r = parse_statement(as_bytes(std::string("{\"_type\":")));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "statement is not valid JSON");
}

}  // namespace
}  // namespace kmr::attest
