#include "attest/query.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <optional>
#include <set>

#include <nlohmann/json.hpp>

#include "attest/base64.h"
#include "attest/dsse.h"
#include "attest/http_client.h"
#include "attest/merkle.h"
#include "attest/note.h"
#include "attest/statement.h"
#include "rebuilder/base/file.h"
#include "rebuilder/base/hex.h"

namespace kmr::attest {
namespace {

using nlohmann::json;

Result<std::vector<Hash>> parse_hashes(const json& j) {
  auto it = j.find("hashes");
  if (it == j.end() || !it->is_array()) return malformed("proof: missing 'hashes' array");
  if (it->size() > 128) return limit_exceeded("proof: more than 128 hashes");
  std::vector<Hash> out;
  for (const auto& h : *it) {
    if (!h.is_string()) return malformed("proof: hash is not a string");
    auto raw = base64_decode(h.get_ref<const std::string&>());
    if (!raw || raw->size() != 32) return malformed("proof: hash is not base64 of 32 bytes");
    Hash x;
    std::copy(raw->begin(), raw->end(), x.begin());
    out.push_back(x);
  }
  return out;
}

Result<std::string> fetch(const std::string& url, std::chrono::milliseconds timeout, std::size_t cap = 8 << 20) {
  KMR_ASSIGN_OR_RETURN(HttpGetResult r, http_get(url, timeout, cap));
  if (r.status != 200) return Error(r.status == 404 ? ErrorCode::kNotFound : ErrorCode::kIo, url + ": HTTP " + std::to_string(r.status));
  return std::move(r.body);
}

Result<json> fetch_json(const std::string& url, std::chrono::milliseconds timeout) {
  KMR_ASSIGN_OR_RETURN(std::string body, fetch(url, timeout, 4 << 20));
  auto j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return malformed(url + ": response is not a JSON object");
  return j;
}

std::string origin_of(const std::string& note) { return note.substr(0, note.find('\n')); }

// Verifies a checkpoint note under any of the pinned keys.
Result<Checkpoint> verify_pinned_checkpoint(const std::string& note, const std::vector<Ed25519Key>& keys,
                                            std::string& keyid_out) {
  std::string origin = origin_of(note);
  if (!is_valid_key_name(origin)) return malformed("checkpoint: origin is not a valid key name");
  Error last(ErrorCode::kVerificationFailed, "no pinned key");
  for (const auto& k : keys) {
    auto cp = verify_checkpoint(note, note_verifier(origin, k));
    if (cp) {
      keyid_out = k.keyid();
      return cp;
    }
    last = std::move(cp).error();
  }
  return std::move(last).with_context("checkpoint not signed by the pinned key");
}

// Consistency of `fresh` with the cached checkpoint; updates the cache. The cache is keyed by
// the pinned key alone (the FIRST pinned key, so a rotation keeps one history), never by
// anything the server chooses: a server that changes its origin, or a cache entry that
// cannot be read or verified, fails the check instead of starting a fresh, unchecked history.
Result<void> check_against_cache(const RebuilderPin& pin, const std::string& base, const Checkpoint& fresh,
                                 const std::string& fresh_note, const QueryOptions& opt) {
  if (opt.cache_dir.empty()) return ok();
  std::string dir = opt.cache_dir + "/checkpoints";
  std::string path = dir + "/" + pin.keys.front().keyid();
  struct stat st {};
  const bool cached_exists = ::lstat(path.c_str(), &st) == 0;
  if (cached_exists) {
    auto cached_note = read_text_file(path, kMaxNoteBytes);
    if (!cached_note)
      return Error(ErrorCode::kVerificationFailed,
                   "cached checkpoint " + path + " cannot be read (" + cached_note.error().message() +
                       "); refusing to continue without the log history");
    std::string ignored;
    auto cached = verify_pinned_checkpoint(*cached_note, pin.keys, ignored);
    if (!cached)
      return Error(ErrorCode::kVerificationFailed,
                   "cached checkpoint " + path + " does not verify under the pinned key: " + cached.error().message());
    if (cached->origin != fresh.origin)
      return Error(ErrorCode::kVerificationFailed, "log origin changed from \"" + cached->origin + "\" (cached) to \"" +
                                                       fresh.origin + "\" under the same key");
    std::uint64_t lo = std::min(cached->size, fresh.size);
    std::uint64_t hi = std::max(cached->size, fresh.size);
    const Hash& lo_root = cached->size <= fresh.size ? cached->root : fresh.root;
    const Hash& hi_root = cached->size <= fresh.size ? fresh.root : cached->root;
    std::vector<Hash> proof;
    if (lo != hi && lo != 0) {
      KMR_ASSIGN_OR_RETURN(json pj, fetch_json(base + "/api/v1/log/proof/consistency?old=" + std::to_string(lo) +
                                                   "&new=" + std::to_string(hi), opt.timeout));
      KMR_ASSIGN_OR_RETURN(proof, parse_hashes(pj));
    }
    auto v = verify_consistency(lo, hi, lo_root, hi_root, proof);
    if (!v) {
      return Error(ErrorCode::kVerificationFailed,
                   "log checkpoint (size " + std::to_string(fresh.size) + ") is inconsistent with the cached checkpoint (size " +
                       std::to_string(cached->size) + "): " + v.error().message());
    }
    if (cached->size >= fresh.size) return ok();
  }
  ::mkdir(opt.cache_dir.c_str(), 0700);
  ::mkdir(dir.c_str(), 0700);
  auto w = write_file_atomic(path, as_bytes(fresh_note), 0600);
  (void)w;  // the cache is an optimisation for the next run; failing to write it does not change this verdict
  return ok();
}

// One digest to check attestations for: the artifact asked about, or (a member's hash, a Nix
// store path) each artifact the rebuilder says ships it.
struct Subject {
  std::string sha256, path, kind;  // path/kind: where the member is (empty for the artifact itself)
  json attestations;
};

bool is_hex64(const json& j) {
  if (!j.is_string()) return false;
  const std::string& s = j.get_ref<const std::string&>();
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// The subjects of an artifact answer; an error text when the answer is malformed.
std::string subjects_of(const json& art, const QueryOptions& opt, std::vector<Subject>& out) {
  constexpr std::size_t kMaxArtifacts = 16;
  if (art.contains("member_of")) {
    const json& m = art["member_of"];
    if (!m.is_array() || m.empty()) return "artifact response: 'member_of' is not a non-empty array";
    if (art.value("sha256", "") != opt.sha256) return "artifact response is about another digest";
    for (const json& e : m) {
      if (out.size() >= kMaxArtifacts) break;
      if (!e.is_object() || !e.contains("sha256") || !is_hex64(e["sha256"]) || !e.contains("attestations") ||
          !e["attestations"].is_array())
        return "artifact response: malformed 'member_of' entry";
      out.push_back({e["sha256"], e.value("path", ""), e.value("kind", "member"), e["attestations"]});
    }
    return "";
  }
  auto list = art.find("attestations");
  if (list == art.end() || !list->is_array()) return "artifact response has no 'attestations' array";
  if (!opt.store_path.empty()) {
    // A store path names its output's narinfo: attestations are about that artifact's digest.
    if (!art.contains("sha256") || !is_hex64(art["sha256"])) return "artifact response has no sha256";
    out.push_back({art["sha256"], "/nix/store/" + opt.store_path, "store-path", *list});
    return "";
  }
  out.push_back({opt.sha256, "", "", *list});
  return "";
}

// Verifies one listed attestation for `subject`: envelope under a pinned key, statement subject,
// inclusion in the verified checkpoint. Adds the verifying key ids to `keyids` when it is valid.
AttestationReport check_attestation(const json& item, const std::string& base, const std::string& subject,
                                    const std::vector<const Ed25519Key*>& trusted, const Checkpoint& cp,
                                    const QueryOptions& opt, std::set<std::string>& keyids) {
  AttestationReport a;
  a.status = "rejected";
  if (item.is_string()) {
    a.url = item.get<std::string>();
  } else if (item.is_object() && item.contains("url") && item["url"].is_string()) {
    a.url = item["url"].get<std::string>();
  } else {
    a.reason = "attestation entry is neither a URL nor {\"url\":...}";
    return a;
  }
  a.url = resolve_url(base, a.url);
  auto env = fetch(a.url, opt.timeout, kMaxEnvelopeBytes);
  if (!env) {
    a.reason = env.error().to_string();
    return a;
  }
  auto verified = verify_envelope(*env, trusted, 1);
  if (!verified) {
    a.reason = verified.error().to_string();
    return a;
  }
  auto st = parse_statement(verified->payload);
  if (!st) {
    a.reason = st.error().to_string();
    return a;
  }
  a.verifier_id = st->verifier_id;
  a.files = st->files;
  a.module_root = st->module_root;
  if (!has_subject(*st, subject)) {
    a.reason = "statement subject digest is not sha256:" + subject;
    return a;
  }
  // Log inclusion of the exact envelope bytes in the verified checkpoint.
  Hash leaf = leaf_hash(as_bytes(*env));
  auto pj = fetch_json(base + "/api/v1/log/proof/inclusion?hash=" + to_hex(Bytes(leaf.data(), leaf.size())) +
                           "&size=" + std::to_string(cp.size),
                       opt.timeout);
  if (!pj) {
    a.reason = "not in the log: " + pj.error().to_string();
    return a;
  }
  auto idx = pj->find("index");
  auto hashes = parse_hashes(*pj);
  if (idx == pj->end() || !idx->is_number_unsigned() || !hashes) {
    a.reason = "malformed inclusion proof";
    return a;
  }
  a.log_index = idx->get<std::uint64_t>();
  auto inc = verify_inclusion(a.log_index, cp.size, leaf, *hashes, cp.root);
  if (!inc) {
    a.reason = inc.error().to_string();
    return a;
  }
  for (const auto& k : verified->keyids) keyids.insert(k);
  a.status = st->verification_result == "PASSED" ? "passed" : "failed";
  return a;
}

// A rebuilder's answer across the artifacts its member index names: per subject,
// its latest logged attestation; over subjects, "passed" beats "failed".
struct Answer {
  std::optional<std::string> best;
  std::uint64_t best_index = 0;
  std::size_t superseded = 0;
};

Answer judge_subjects(const std::vector<Subject>& subjects, const RebuilderPin& pin, const std::string& base,
                      const Checkpoint& cp, const QueryOptions& opt, RebuilderReport& rep) {
  std::vector<const Ed25519Key*> trusted;
  for (const auto& k : pin.keys) trusted.push_back(&k);
  std::set<std::string> keyids;
  Answer answer;
  for (const Subject& subject : subjects) {
    rep.resolved.push_back({subject.sha256, subject.path, subject.kind});
    std::optional<std::size_t> latest;  // index in rep.attestations of the highest log index for this subject
    const std::size_t first = rep.attestations.size();
    std::size_t count = 0;
    for (const auto& item : subject.attestations) {
      if (++count > 64) break;
      AttestationReport a = check_attestation(item, base, subject.sha256, trusted, cp, opt, keyids);
      a.subject = subject.sha256;
      if ((a.status == "passed" || a.status == "failed") &&
          (!latest || a.log_index > rep.attestations[*latest].log_index))
        latest = rep.attestations.size();
      rep.attestations.push_back(std::move(a));
    }
    if (!latest) continue;
    // A rebuilder's answer for a digest is its latest logged attestation: a newer FAILED
    // withdraws an older PASSED (and a newer PASSED supersedes an older FAILED).
    for (std::size_t i = first; i < rep.attestations.size(); ++i)
      if (i != *latest && (rep.attestations[i].status == "passed" || rep.attestations[i].status == "failed")) {
        rep.attestations[i].reason = "superseded by log entry " + std::to_string(rep.attestations[*latest].log_index);
        ++answer.superseded;
      }
    const std::string& st = rep.attestations[*latest].status;
    if (!answer.best || (st == "passed" && *answer.best != "passed")) {
      answer.best = st;
      answer.best_index = rep.attestations[*latest].log_index;
    }
  }
  rep.keyids.assign(keyids.begin(), keyids.end());
  return answer;
}

void check_rebuilder(const RebuilderPin& pin, const QueryOptions& opt, RebuilderReport& rep) {
  rep.url = pin.url;
  std::string base = pin.url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  auto fail = [&rep](std::string status, std::string reason) {
    rep.status = std::move(status);
    rep.reason = std::move(reason);
  };
  if (pin.keys.empty()) return fail("error", "no pinned key for this rebuilder");
  auto note = fetch(base + "/api/v1/log/checkpoint", opt.timeout, kMaxNoteBytes);
  if (!note) return fail("error", note.error().to_string());
  std::string cp_keyid;
  auto cp = verify_pinned_checkpoint(*note, pin.keys, cp_keyid);
  if (!cp) return fail("error", cp.error().to_string());
  rep.origin = cp->origin;
  rep.checkpoint_size = cp->size;
  if (auto consistent = check_against_cache(pin, base, *cp, *note, opt); !consistent)
    return fail("error", consistent.error().to_string());
  std::string lookup = opt.store_path.empty() ? "/api/v1/artifacts/sha256/" + opt.sha256
                                               : "/api/v1/artifacts/store-path/" + opt.store_path;
  auto art = fetch_json(base + lookup, opt.timeout);
  if (!art) return fail(art.error().code() == ErrorCode::kNotFound ? "no-attestation" : "error", art.error().to_string());
  std::vector<Subject> subjects;
  if (auto err = subjects_of(*art, opt, subjects); !err.empty()) return fail("error", err);

  const Answer answer = judge_subjects(subjects, pin, base, *cp, opt, rep);
  if (answer.best) {
    rep.status = *answer.best;
    if (answer.superseded > 0)
      rep.reason = "latest attestation (log entry " + std::to_string(answer.best_index) + ") is " +
                   (rep.status == "passed" ? "PASSED" : "FAILED") + "; " + std::to_string(answer.superseded) +
                   " older superseded";
  } else {
    rep.status = "no-attestation";
    if (rep.reason.empty()) rep.reason = "no valid, logged attestation for this digest";
  }
  if (subjects.size() > 1 || (!subjects.empty() && !subjects[0].kind.empty())) {
    std::string how = "resolved by the rebuilder's member index (not signed) to " + std::to_string(subjects.size()) +
                      " artifact(s)";
    rep.reason = rep.reason.empty() ? how : how + "; " + rep.reason;
  }
}

}  // namespace

std::string default_cache_dir() {
  if (const char* d = std::getenv("KMR_CACHE_DIR"); d != nullptr && *d != '\0') return d;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x != nullptr && *x != '\0') return std::string(x) + "/kmr";
  if (const char* h = std::getenv("HOME"); h != nullptr && *h != '\0') return std::string(h) + "/.cache/kmr";
  return "";
}

QueryReport run_query(const QueryOptions& opt) {
  QueryReport report;
  report.sha256 = opt.sha256;
  report.store_path = opt.store_path;
  report.threshold = opt.threshold;
  for (const auto& pin : opt.rebuilders) {
    RebuilderReport rep;
    check_rebuilder(pin, opt, rep);
    report.rebuilders.push_back(std::move(rep));
  }
  // One key (= one operator) counts once, however many URLs share it; keys
  // pinned together for one rebuilder (rotation) are one operator: count
  // rebuilders whose key sets are disjoint from those already counted.
  std::size_t independent = 0;
  std::set<std::string> counted;
  for (const auto& rep : report.rebuilders) {
    if (rep.status != "passed") continue;
    bool overlaps = false;
    for (const auto& k : rep.keyids) overlaps = overlaps || counted.count(k) > 0;
    if (overlaps) continue;
    for (const auto& k : rep.keyids) counted.insert(k);
    ++independent;
  }
  report.independent_passes = independent;
  report.verified = opt.threshold > 0 && independent >= opt.threshold;
  return report;
}

std::string QueryReport::subject() const {
  return store_path.empty() ? "sha256:" + sha256 : "/nix/store/" + store_path;
}

std::string QueryReport::to_json() const {
  json j;
  j["subject"] = subject();
  j["threshold"] = threshold;
  j["independent_passes"] = independent_passes;
  j["verified"] = verified;
  json arr = json::array();
  for (const auto& r : rebuilders) {
    json o;
    o["url"] = r.url;
    o["status"] = r.status;
    if (!r.reason.empty()) o["reason"] = r.reason;
    o["keyids"] = r.keyids;
    o["checkpoint"] = {{"origin", r.origin}, {"size", r.checkpoint_size}};
    if (!r.resolved.empty() && !r.resolved[0].kind.empty()) {
      json res = json::array();
      for (const auto& x : r.resolved) res.push_back({{"sha256", x.sha256}, {"path", x.path}, {"kind", x.kind}});
      o["resolved"] = std::move(res);
    }
    json atts = json::array();
    for (const auto& a : r.attestations) {
      json x;
      x["url"] = a.url;
      x["status"] = a.status;
      if (!a.subject.empty() && a.subject != sha256) x["subject"] = "sha256:" + a.subject;
      if (!a.reason.empty()) x["reason"] = a.reason;
      if (!a.verifier_id.empty()) x["verifier_id"] = a.verifier_id;
      if (!a.files.empty()) x["files"] = a.files;
      if (!a.module_root.empty()) x["module_root"] = a.module_root;
      if (a.status != "rejected") x["log_index"] = a.log_index;
      atts.push_back(std::move(x));
    }
    o["attestations"] = std::move(atts);
    arr.push_back(std::move(o));
  }
  j["rebuilders"] = std::move(arr);
  return j.dump(2) + "\n";
}

std::string QueryReport::to_text() const {
  std::string out;
  for (const auto& r : rebuilders) {
    out += r.url + ": " + r.status;
    if (!r.keyids.empty()) out += " (key " + r.keyids[0].substr(0, 16) + ")";
    if (!r.reason.empty()) out += " - " + r.reason;
    out += "\n";
    for (const auto& x : r.resolved)
      if (!x.kind.empty()) out += "  in sha256:" + x.sha256 + " as " + x.path + " (" + x.kind + ")\n";
    for (const auto& a : r.attestations) {
      out += "  " + a.status + " " + a.url;
      if (!a.files.empty()) out += " files=" + a.files + " module_root=" + a.module_root;
      if (!a.reason.empty()) out += " - " + a.reason;
      out += "\n";
    }
  }
  out += std::string(verified ? "VERIFIED" : "NOT VERIFIED") + ": " + subject() + " attested PASSED by " +
         std::to_string(independent_passes) + " independent rebuilder(s), threshold " + std::to_string(threshold) + "\n";
  return out;
}

}  // namespace kmr::attest
