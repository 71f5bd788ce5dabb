#include "attest/statement.h"

#include "rebuilder/verdict/rule.h"

#include <cctype>
#include <set>

#include <nlohmann/json.hpp>

#include "attest/keys.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/version.h"

namespace kmr::attest {
namespace {

using Json = nlohmann::ordered_json;

bool is_lower_sha256(std::string_view h) {
  if (h.size() != 64) return false;
  for (char c : h) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool is_lower_hex(std::string_view h) {
  if (h.empty() || h.size() % 2 != 0 || h.size() > 128) return false;
  for (char c : h) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::string upper_ident(std::string_view v) {
  std::string out;
  for (char c : v) out.push_back(c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  return out;
}

Json descriptor(const Artifact& a) {
  Json j;
  j["name"] = a.name;
  j["digest"] = {{"sha256", a.sha256}};
  return j;
}

const Json* field(const Json& obj, const char* name, Json::value_t type) {
  auto it = obj.find(name);
  if (it == obj.end() || it->type() != type) return nullptr;
  return &*it;
}

Result<std::vector<Artifact>> parse_descriptors(const Json& arr, const char* what, bool require_sha256) {
  std::vector<Artifact> out;
  if (arr.size() > 10000) return limit_exceeded(std::string(what) + ": too many entries");
  for (const auto& d : arr) {
    if (!d.is_object()) return malformed(std::string(what) + ": entry is not an object");
    const Json* digest = field(d, "digest", Json::value_t::object);
    if (digest == nullptr) return malformed(std::string(what) + ": entry without 'digest' object");
    Artifact a;
    if (const Json* n = field(d, "name", Json::value_t::string)) a.name = n->get<std::string>();
    if (const Json* h = field(*digest, "sha256", Json::value_t::string)) {
      a.sha256 = h->get<std::string>();
      if (!is_lower_sha256(a.sha256)) return malformed(std::string(what) + ": digest.sha256 is not 64 lowercase hex digits");
    } else if (require_sha256) {
      return malformed(std::string(what) + ": entry without digest.sha256");
    }
    out.push_back(std::move(a));
  }
  return out;
}

std::optional<std::string_view> content_root_of(const std::string& v) {
  return v.empty() ? std::nullopt : std::optional<std::string_view>(v);
}

Json hex_or_null(const std::string& h) { return h.empty() ? Json(nullptr) : Json(h); }

Result<void> check_content_root(const StatementInput& in) {
  if (!in.module_content_root.empty() && !verdict::is_content_root(in.module_content_root)) {
    return malformed("statement: unknown module_content_root verdict '" + in.module_content_root + "'");
  }
  if (!in.shipped_content_root.empty() && !is_lower_hex(in.shipped_content_root)) {
    return malformed("statement: shipped_content_root is not lowercase hex");
  }
  if (!in.rebuilt_content_root.empty() && !is_lower_hex(in.rebuilt_content_root)) {
    return malformed("statement: rebuilt_content_root is not lowercase hex");
  }
  return {};
}

// Reads kernel.module_content_root and the content roots (all optional: a
// statement made before they existed has none, and counts as absent).
Result<void> parse_content_root(const Json& kernel, StatementView& v) {
  if (auto it = kernel.find("module_content_root"); it != kernel.end() && !it->is_null()) {
    if (!it->is_string() || !verdict::is_content_root(it->get<std::string>())) {
      return malformed("statement: kernel.module_content_root is not a known verdict");
    }
    v.module_content_root = it->get<std::string>();
  }
  if (const Json* r = field(kernel, "shipped_content_root", Json::value_t::string)) v.shipped_content_root = r->get<std::string>();
  if (const Json* r = field(kernel, "rebuilt_content_root", Json::value_t::string)) v.rebuilt_content_root = r->get<std::string>();
  return {};
}

}  // namespace

bool is_module_root_verdict(std::string_view v) { return verdict::is_module_root(v); }

bool is_files_verdict(std::string_view v) { return verdict::is_files_tier(v); }

bool verdict_passes(std::string_view module_root, std::string_view files,
                    std::optional<std::string_view> module_content_root) {
  return verdict::is_reproducible(files, module_root, module_content_root);
}

namespace {

// Every field a statement carries is checked before any is written.
Result<void> check_input(const StatementInput& in) {
  if (in.subjects.empty()) return malformed("statement: at least one subject is required");
  for (const auto& s : in.subjects) {
    if (!is_lower_sha256(s.sha256)) return malformed("statement: subject '" + s.name + "' sha256 is not 64 lowercase hex digits");
    if (s.name.empty()) return malformed("statement: subject name is empty");
  }
  if (in.verifier_id.empty()) return malformed("statement: verifier id is empty");
  if (in.resource_uri.empty()) return malformed("statement: resourceUri is empty");
  if (in.policy_uri.empty()) return malformed("statement: policy uri is empty");
  if (!is_module_root_verdict(in.module_root)) return malformed("statement: unknown module_root verdict '" + in.module_root + "'");
  if (!is_files_verdict(in.files)) return malformed("statement: unknown files verdict '" + in.files + "'");
  if (!in.policy_sha256.empty() && !is_lower_sha256(in.policy_sha256)) return malformed("statement: policy digest is not lowercase sha256 hex");
  if (!in.build_environment_sha256.empty() && !is_lower_sha256(in.build_environment_sha256)) return malformed("statement: build environment digest is not lowercase sha256 hex");
  if (!in.shipped_root.empty() && !is_lower_hex(in.shipped_root)) return malformed("statement: shipped_root is not lowercase hex");
  if (!in.rebuilt_root.empty() && !is_lower_hex(in.rebuilt_root)) return malformed("statement: rebuilt_root is not lowercase hex");
  for (const auto& a : in.rebuilt_artifacts) {
    if (!is_lower_sha256(a.sha256)) return malformed("statement: rebuilt artifact '" + a.name + "' sha256 is not 64 lowercase hex digits");
  }
  KMR_TRY(check_content_root(in));
  return {};
}

// The predicate's "kernel" object: the verdicts, the roots and what was rebuilt.
Json kernel_predicate(const StatementInput& in) {
  Json kernel;
  kernel["module_root"] = in.module_root;
  kernel["files"] = in.files;
  if (!in.reason.empty()) kernel["reason"] = in.reason;
  kernel["shipped_root"] = in.shipped_root.empty() ? Json(nullptr) : Json(in.shipped_root);
  kernel["shipped_levels"] = in.shipped_levels ? Json(*in.shipped_levels) : Json(nullptr);
  kernel["rebuilt_root"] = hex_or_null(in.rebuilt_root);
  kernel["module_content_root"] = in.module_content_root.empty() ? Json(nullptr) : Json(in.module_content_root);
  kernel["shipped_content_root"] = hex_or_null(in.shipped_content_root);
  kernel["rebuilt_content_root"] = hex_or_null(in.rebuilt_content_root);
  kernel["content_root_levels"] = in.content_root_levels ? Json(*in.content_root_levels) : Json(nullptr);
  kernel["build_environment"] = in.build_environment_sha256.empty()
                                    ? Json(nullptr)
                                    : Json({{"sha256", in.build_environment_sha256}});
  Json rebuilt = Json::array();
  for (const auto& a : in.rebuilt_artifacts) rebuilt.push_back(descriptor(a));
  kernel["rebuilt_artifacts"] = std::move(rebuilt);
  kernel["kmr_version"] = kVersion;
  return kernel;
}

}  // namespace

Result<std::string> make_statement(const StatementInput& in) {
  KMR_TRY(check_input(in));

  bool passed = verdict_passes(in.module_root, in.files, content_root_of(in.module_content_root));
  std::set<std::string> independent;
  for (const auto& c : in.confirmations) {
    if (c.keyid.empty() || c.keyid == in.own_keyid) continue;
    independent.insert(c.keyid);
  }

  Json levels = Json::array();
  if (passed) {
    if (!independent.empty()) levels.push_back(std::string(kReproduced));
    levels.push_back("KMR_FILES_" + upper_ident(in.files));
    levels.push_back("KMR_MODULE_ROOT_" + upper_ident(in.module_root));
    if (!in.module_content_root.empty()) levels.push_back("KMR_MODULE_CONTENT_ROOT_" + upper_ident(in.module_content_root));
  } else {
    levels.push_back("FAILED");
  }

  Json pred;
  pred["verifier"] = {{"id", in.verifier_id}, {"version", {{"kmr", kVersion}}}};
  pred["timeVerified"] = in.time_verified.empty() ? now_rfc3339() : in.time_verified;
  pred["resourceUri"] = in.resource_uri;
  Json policy;
  policy["uri"] = in.policy_uri;
  if (!in.policy_sha256.empty()) policy["digest"] = {{"sha256", in.policy_sha256}};
  pred["policy"] = std::move(policy);
  if (passed && !independent.empty()) {
    Json inputs = Json::array();
    for (const auto& c : in.confirmations) {
      if (c.keyid.empty() || c.keyid == in.own_keyid) continue;
      Json e;
      e["uri"] = c.uri;
      if (is_lower_sha256(c.envelope_sha256)) e["digest"] = {{"sha256", c.envelope_sha256}};
      inputs.push_back(std::move(e));
    }
    pred["inputAttestations"] = std::move(inputs);
  }
  pred["verificationResult"] = passed ? "PASSED" : "FAILED";
  pred["verifiedLevels"] = std::move(levels);
  pred["slsaVersion"] = "1.1";

  pred["kernel"] = kernel_predicate(in);

  Json st;
  st["_type"] = std::string(kStatementType);
  Json subj = Json::array();
  for (const auto& s : in.subjects) subj.push_back(descriptor(s));
  st["subject"] = std::move(subj);
  st["predicateType"] = std::string(kPredicateType);
  st["predicate"] = std::move(pred);
  return st.dump();
}

Result<StatementView> parse_statement(Bytes payload) {
  if (payload.size() > (4u << 20)) return limit_exceeded("statement larger than 4 MiB");
  auto j = Json::parse(as_string_view(payload), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return malformed("statement is not valid JSON");
  if (!j.is_object()) return malformed("statement is not a JSON object");
  const Json* type = field(j, "_type", Json::value_t::string);
  if (type == nullptr || *type != kStatementType) return unsupported("statement: _type is not " + std::string(kStatementType));
  const Json* ptype = field(j, "predicateType", Json::value_t::string);
  if (ptype == nullptr || *ptype != kPredicateType) return unsupported("statement: predicateType is not " + std::string(kPredicateType));
  const Json* subj = field(j, "subject", Json::value_t::array);
  if (subj == nullptr || subj->empty()) return malformed("statement: 'subject' must be a non-empty array");
  StatementView v;
  KMR_ASSIGN_OR_RETURN(v.subjects, parse_descriptors(*subj, "subject", false));
  const Json* pred = field(j, "predicate", Json::value_t::object);
  if (pred == nullptr) return malformed("statement: 'predicate' must be an object");
  const Json* verifier = field(*pred, "verifier", Json::value_t::object);
  const Json* vid = verifier ? field(*verifier, "id", Json::value_t::string) : nullptr;
  if (vid == nullptr) return malformed("statement: predicate.verifier.id is missing");
  v.verifier_id = vid->get<std::string>();
  if (const Json* t = field(*pred, "timeVerified", Json::value_t::string)) v.time_verified = t->get<std::string>();
  const Json* ruri = field(*pred, "resourceUri", Json::value_t::string);
  if (ruri == nullptr) return malformed("statement: predicate.resourceUri is missing");
  v.resource_uri = ruri->get<std::string>();
  const Json* policy = field(*pred, "policy", Json::value_t::object);
  if (policy == nullptr || field(*policy, "uri", Json::value_t::string) == nullptr) {
    return malformed("statement: predicate.policy.uri is missing");
  }
  const Json* result = field(*pred, "verificationResult", Json::value_t::string);
  if (result == nullptr || (*result != "PASSED" && *result != "FAILED")) {
    return malformed("statement: predicate.verificationResult must be PASSED or FAILED");
  }
  v.verification_result = result->get<std::string>();
  const Json* levels = field(*pred, "verifiedLevels", Json::value_t::array);
  if (levels == nullptr) return malformed("statement: predicate.verifiedLevels is missing");
  for (const auto& l : *levels) {
    if (!l.is_string()) return malformed("statement: verifiedLevels entry is not a string");
    v.verified_levels.push_back(l.get<std::string>());
  }
  const Json* kernel = field(*pred, "kernel", Json::value_t::object);
  if (kernel == nullptr) return malformed("statement: predicate.kernel is missing");
  const Json* mr = field(*kernel, "module_root", Json::value_t::string);
  const Json* fv = field(*kernel, "files", Json::value_t::string);
  if (mr == nullptr || !is_module_root_verdict(mr->get<std::string>())) return malformed("statement: kernel.module_root is not a known verdict");
  if (fv == nullptr || !is_files_verdict(fv->get<std::string>())) return malformed("statement: kernel.files is not a known verdict");
  v.module_root = mr->get<std::string>();
  v.files = fv->get<std::string>();
  if (const Json* r = field(*kernel, "rebuilt_root", Json::value_t::string)) v.rebuilt_root = r->get<std::string>();
  if (const Json* r = field(*kernel, "kmr_version", Json::value_t::string)) v.kmr_version = r->get<std::string>();
  KMR_TRY(parse_content_root(*kernel, v));
  bool passes = verdict_passes(v.module_root, v.files, v.module_content_root);
  if ((v.verification_result == "PASSED") != passes) {
    return malformed("statement: verificationResult " + v.verification_result +
                     " contradicts verdicts module_root=" + v.module_root + " files=" + v.files +
                     " module_content_root=" + v.module_content_root.value_or("(none)"));
  }
  return v;
}

bool has_subject(const StatementView& s, std::string_view sha256_hex) {
  for (const auto& a : s.subjects) {
    if (!a.sha256.empty() && a.sha256 == sha256_hex) return true;
  }
  return false;
}

}  // namespace kmr::attest
