// kmr key generate | kmr attest verify | kmr query
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "attest/base64.h"
#include "attest/dsse.h"
#include "attest/keys.h"
#include "attest/note.h"
#include "attest/query.h"
#include "attest/statement.h"
#include "attest/tlog_proof.h"
#include "rebuilder/archive/nar.h"
#include "rebuilder/base/file.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"
#include "rebuilder/base/command.h"

namespace kmr::attest {
namespace {

using cli::kExitError;
using cli::kExitFailed;
using cli::kExitOk;

int fail_usage(const char* cmd, const std::string& msg) {
  std::fprintf(stderr, "kmr %s: %s (see --help)\n", cmd, msg.c_str());
  return kExitError;
}

int report_error(const char* cmd, bool json, const Error& e) {
  if (json) {
    nlohmann::json j;
    j["error"] = {{"code", std::string(error_code_name(e.code()))}, {"message", e.to_string()}};
    std::printf("%s\n", j.dump(2).c_str());
  }
  std::fprintf(stderr, "kmr %s: %s\n", cmd, e.to_string().c_str());
  return kExitError;
}

// ---- kmr key generate -------------------------------------------------------

constexpr const char* kKeyHelp =
    "Usage: kmr key generate [--out PATH] [--name LOGNAME] [--json]\n"
    "Generates an Ed25519 signing key. Writes the PKCS#8 private key to PATH\n"
    "(default ./kmr-signing.pem) with mode 0600 - never overwriting - and the\n"
    "public key to PATH.pub. Prints the keyid (hex SHA-256 of the SPKI DER) and\n"
    "the signed-note vkey for LOGNAME (default kmr.local/log).\n";

int key_generate(const std::vector<std::string>& args) {
  std::string out = "kmr-signing.pem";
  std::string name = "kmr.local/log";
  bool json = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--help" || args[i] == "-h") {
      std::fputs(kKeyHelp, stdout);
      return kExitOk;
    } else if (args[i] == "--out" && i + 1 < args.size()) {
      out = args[++i];
    } else if (args[i] == "--name" && i + 1 < args.size()) {
      name = args[++i];
    } else if (args[i] == "--json") {
      json = true;
    } else {
      return fail_usage("key generate", "unexpected argument '" + args[i] + "'");
    }
  }
  if (!is_valid_key_name(name)) return fail_usage("key generate", "invalid --name (no spaces or '+')");
  auto key = Ed25519Key::generate();
  if (!key) return report_error("key generate", json, key.error());
  auto saved = save_private_key(*key, out);
  if (!saved) return report_error("key generate", json, saved.error());
  if (json) {
    nlohmann::json j = {{"private_key", out}, {"public_key", out + ".pub"}, {"keyid", key->keyid()},
                        {"vkey", make_vkey(name, *key)}};
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("private key: %s (mode 0600)\npublic key:  %s.pub\nkeyid:       %s\nvkey:        %s\n", out.c_str(),
                out.c_str(), key->keyid().c_str(), make_vkey(name, *key).c_str());
  }
  return kExitOk;
}

// ---- kmr attest verify ------------------------------------------------------

constexpr const char* kVerifyHelp =
    "Usage: kmr attest verify --key PEM [--key PEM ...] [--threshold K] [--file ARTIFACT]\n"
    "                         [--sha256 HEX] [--tlog-proof FILE] [--json] ENVELOPE\n"
    "Verifies a DSSE envelope (in-toto Statement, kmr kernel-rebuild predicate):\n"
    "the signature under >= K distinct given public keys (default 1), the\n"
    "statement's shape, and - with --file or --sha256 - that the statement's\n"
    "subject digest is that artifact's SHA-256. With --tlog-proof (C2SP tlog-proof,\n"
    "from GET /api/v1/log/proof/tlog?hash=...) also that the exact envelope bytes\n"
    "are in the rebuilder's log, under a checkpoint signed by one of the keys.\n"
    "Exit: 0 valid and PASSED, 1 invalid or FAILED/not matching, 2 error.\n";

int attest_verify(const std::vector<std::string>& args) {
  std::vector<std::string> key_paths;
  std::string file;
  std::string want;
  std::string envelope_path;
  std::string tlog_proof_path;
  std::size_t threshold = 1;
  bool json = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--help" || args[i] == "-h") {
      std::fputs(kVerifyHelp, stdout);
      return kExitOk;
    } else if (args[i] == "--key" && i + 1 < args.size()) {
      key_paths.push_back(args[++i]);
    } else if (args[i] == "--file" && i + 1 < args.size()) {
      file = args[++i];
    } else if (args[i] == "--sha256" && i + 1 < args.size()) {
      want = args[++i];
    } else if (args[i] == "--tlog-proof" && i + 1 < args.size()) {
      tlog_proof_path = args[++i];
    } else if (args[i] == "--threshold" && i + 1 < args.size()) {
      try {
        threshold = std::stoul(args[++i]);
      } catch (...) {
        return fail_usage("attest verify", "--threshold needs a number");
      }
    } else if (args[i] == "--json") {
      json = true;
    } else if (!args[i].empty() && args[i][0] == '-') {
      return fail_usage("attest verify", "unknown option '" + args[i] + "'");
    } else if (envelope_path.empty()) {
      envelope_path = args[i];
    } else {
      return fail_usage("attest verify", "more than one ENVELOPE");
    }
  }
  if (envelope_path.empty()) return fail_usage("attest verify", "missing ENVELOPE");
  if (key_paths.empty()) return fail_usage("attest verify", "at least one --key PEM is required");
  if (threshold == 0) return fail_usage("attest verify", "--threshold must be at least 1");
  std::vector<Ed25519Key> keys;
  for (const auto& p : key_paths) {
    auto k = Ed25519Key::load(p);
    if (!k) return report_error("attest verify", json, k.error());
    keys.push_back(std::move(k).value());
  }
  if (!file.empty()) {
    auto d = sha256_file(file);
    if (!d) return report_error("attest verify", json, std::move(d).error().with_context("while hashing " + file));
    want = to_hex(Bytes(d->data(), d->size()));
  }
  if (!want.empty() && !is_sha256_hex(want)) return fail_usage("attest verify", "--sha256 needs 64 hex digits");
  for (char& c : want) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto text = read_text_file(envelope_path, kMaxEnvelopeBytes);
  if (!text) return report_error("attest verify", json, text.error());
  std::vector<const Ed25519Key*> trusted;
  for (const auto& k : keys) trusted.push_back(&k);
  std::string tlog_proof;
  if (!tlog_proof_path.empty()) {
    auto t = read_text_file(tlog_proof_path, 2 * kMaxNoteBytes);
    if (!t) return report_error("attest verify", json, t.error());
    tlog_proof = std::move(*t);
  }

  nlohmann::json out;
  out["envelope"] = envelope_path;
  std::string verdict;
  std::string reason;
  int code = kExitOk;
  auto verified = verify_envelope(*text, trusted, threshold);
  if (!verified) {
    verdict = "invalid";
    reason = envelope_path + ": " + verified.error().to_string();
    code = verified.error().code() == ErrorCode::kVerificationFailed ? kExitFailed : kExitFailed;
  } else {
    out["keyids"] = verified->keyids;
    auto st = parse_statement(verified->payload);
    Result<Checkpoint> logged = malformed("no tlog-proof");
    if (st && !tlog_proof_path.empty()) logged = verify_tlog_proof(tlog_proof, as_bytes(*text), trusted);
    if (!st) {
      verdict = "invalid";
      reason = envelope_path + ": " + st.error().to_string();
      code = kExitFailed;
    } else {
      nlohmann::json subj = nlohmann::json::array();
      for (const auto& s : st->subjects) subj.push_back({{"name", s.name}, {"sha256", s.sha256}});
      out["subject"] = subj;
      out["verifier_id"] = st->verifier_id;
      out["time_verified"] = st->time_verified;
      out["resource_uri"] = st->resource_uri;
      out["verification_result"] = st->verification_result;
      out["verified_levels"] = st->verified_levels;
      out["module_root"] = st->module_root;
      out["files"] = st->files;
      if (logged) {
        auto p = parse_tlog_proof(tlog_proof);
        out["log"] = {{"origin", logged->origin}, {"checkpoint_size", logged->size}, {"index", p ? p->index : 0}};
      }
      if (!want.empty() && !has_subject(*st, want)) {
        verdict = "subject-mismatch";
        reason = "statement subject is not sha256:" + want;
        code = kExitFailed;
      } else if (!tlog_proof_path.empty() && !logged) {
        verdict = "not-logged";
        reason = tlog_proof_path + ": " + logged.error().to_string();
        code = kExitFailed;
      } else if (st->verification_result != "PASSED") {
        verdict = "failed";
        reason = "valid attestation of a FAILED rebuild (files=" + st->files + ", module_root=" + st->module_root + ")";
        code = kExitFailed;
      } else {
        verdict = "passed";
      }
    }
  }
  out["verdict"] = verdict;
  if (!reason.empty()) out["reason"] = reason;
  if (json) {
    std::printf("%s\n", out.dump(2).c_str());
  } else if (code == kExitOk) {
    std::printf("OK: %s is signed by %s and attests PASSED (files=%s, module_root=%s) for %s\n",
                envelope_path.c_str(), out["keyids"][0].get<std::string>().substr(0, 16).c_str(),
                out["files"].get<std::string>().c_str(), out["module_root"].get<std::string>().c_str(),
                out["subject"][0]["name"].get<std::string>().c_str());
  } else {
    std::printf("NOT VERIFIED (%s): %s\n", verdict.c_str(), reason.c_str());
  }
  return code;
}

// ---- kmr query --------------------------------------------------------------

constexpr const char* kQueryHelp =
    "Usage: kmr query --rebuilder URL --key PEM [--key PEM ...] [--rebuilder URL --key PEM ...]\n"
    "                 [--threshold K] [--timeout SECONDS] [--cache-dir DIR] [--json]\n"
    "                 (FILE | --file PATH | sha256:HEX | NARHASH | /nix/store/HASH-NAME)\n"
    "Asks each rebuilder's kmrd about the artifact, verifies every attestation\n"
    "under the key(s) pinned for that rebuilder (each --key belongs to the\n"
    "preceding --rebuilder), checks each envelope's inclusion in the rebuilder's\n"
    "signed log checkpoint and that checkpoint's consistency with the one cached\n"
    "in DIR/checkpoints (default ~/.cache/kmr), and passes only when at least K\n"
    "(default 1) rebuilders with distinct keys attest PASSED for this exact SHA-256.\n"
    "The file may be a package or what a package ships (a vmlinuz, a module,\n"
    "compressed or not, signed or stripped): the rebuilder's member index names the\n"
    "artifacts that ship it (an unsigned claim) and their attestations are checked.\n"
    "NARHASH: a Nix NarHash (sha256:<nix32>, <nix32>, sha256:<hex> or sha256-<base64>);\n"
    "a store path asks for that Nix output. --file PATH always hashes a local file.\n"
    "Exit: 0 verified, 1 not verified, 2 error.\n";

// A query target typed by the user: a store path's basename, a NarHash (as hex), or "" (a file).
struct QueryTarget {
  std::string sha256, store_path;
};
std::optional<QueryTarget> parse_query_target(const std::string& t) {
  constexpr std::string_view kStore = "/nix/store/";
  if (t.rfind(kStore, 0) == 0) {
    std::string rest = t.substr(kStore.size());
    std::error_code ec;
    // A file inside a store path is asked about as a file.
    if (rest.find('/') != std::string::npos && std::filesystem::is_regular_file(t, ec)) return std::nullopt;
    rest = rest.substr(0, rest.find('/'));
    if (rest.size() < 32) return std::nullopt;
    return QueryTarget{"", rest};
  }
  std::string v = t;
  bool prefixed = false;
  if (v.rfind("sha256:", 0) == 0 || v.rfind("sha256-", 0) == 0) prefixed = true;
  std::error_code ec;
  if (!prefixed && std::filesystem::exists(t, ec)) return std::nullopt;
  if (v.rfind("sha256-", 0) == 0) {
    auto raw = base64_decode(v.substr(7));
    if (!raw || raw->size() != 32) return std::nullopt;
    return QueryTarget{to_hex(Bytes(raw->data(), raw->size())), ""};
  }
  if (prefixed) v = v.substr(7);
  if (is_sha256_hex(v)) {
    for (char& c : v) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return QueryTarget{v, ""};
  }
  if (v.size() == 52) {
    auto raw = archive::nix32_decode(v, 32);
    if (raw) return QueryTarget{to_hex(Bytes(raw->data(), raw->size())), ""};
  }
  return std::nullopt;
}

int query(const std::vector<std::string>& args) {
  QueryOptions opt;
  opt.cache_dir = default_cache_dir();
  std::vector<std::pair<std::string, std::vector<std::string>>> pins;
  std::string target, file;
  bool json = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    bool has_value = i + 1 < args.size();
    if (a == "--help" || a == "-h") {
      std::fputs(kQueryHelp, stdout);
      return kExitOk;
    } else if (a == "--rebuilder" && has_value) {
      pins.push_back({args[++i], {}});
    } else if (a == "--key" && has_value) {
      if (pins.empty()) return fail_usage("query", "--key must follow the --rebuilder it belongs to");
      pins.back().second.push_back(args[++i]);
    } else if ((a == "--threshold" || a == "--timeout") && has_value) {
      unsigned long v = 0;
      try {
        v = std::stoul(args[++i]);
      } catch (...) {
        return fail_usage("query", a + " needs a number");
      }
      if (a == "--threshold") opt.threshold = v; else opt.timeout = std::chrono::seconds(v);
    } else if (a == "--cache-dir" && has_value) {
      opt.cache_dir = args[++i];
    } else if (a == "--file" && has_value) {
      if (!file.empty()) return fail_usage("query", "--file given twice");
      file = args[++i];
    } else if (a == "--json") {
      json = true;
    } else if (!a.empty() && a[0] == '-') {
      return fail_usage("query", "unknown option or missing value '" + a + "'");
    } else if (target.empty()) {
      target = a;
    } else {
      return fail_usage("query", "more than one FILE");
    }
  }
  if (!file.empty() && !target.empty()) return fail_usage("query", "give either --file PATH or a FILE/hash, not both");
  if (target.empty() && file.empty()) return fail_usage("query", "missing FILE, --file PATH or sha256:HEX");
  if (pins.empty()) return fail_usage("query", "at least one --rebuilder URL --key PEM is required");
  if (opt.threshold == 0) return fail_usage("query", "--threshold must be at least 1");
  std::optional<QueryTarget> typed = file.empty() ? parse_query_target(target) : std::nullopt;
  if (typed) {
    opt.sha256 = typed->sha256;
    opt.store_path = typed->store_path;
  } else if (file.empty() && (target.rfind("sha256:", 0) == 0 || target.rfind("sha256-", 0) == 0)) {
    return fail_usage("query", "sha256: needs 64 hex digits or a nix32 NarHash");
  } else {
    const std::string& path = file.empty() ? target : file;
    auto d = sha256_file(path);
    if (!d) return report_error("query", json, std::move(d).error().with_context("while hashing " + path));
    opt.sha256 = to_hex(Bytes(d->data(), d->size()));
  }
  for (auto& [url, key_paths] : pins) {
    RebuilderPin pin;
    pin.url = url;
    if (key_paths.empty()) return fail_usage("query", "rebuilder " + url + " has no pinned --key");
    for (const auto& p : key_paths) {
      auto k = Ed25519Key::load(p);
      if (!k) return report_error("query", json, k.error());
      pin.keys.push_back(std::move(k).value().public_only());
    }
    opt.rebuilders.push_back(std::move(pin));
  }
  QueryReport report = run_query(opt);
  std::fputs(json ? report.to_json().c_str() : report.to_text().c_str(), stdout);
  return report.verified ? kExitOk : kExitFailed;
}

}  // namespace

KMR_REGISTER_COMMAND(key_generate, "key generate", "generate an Ed25519 signing key (PEM, mode 0600)", key_generate);
KMR_REGISTER_COMMAND(attest_verify, "attest verify", "verify a signed kernel-rebuild attestation (DSSE)", attest_verify);
KMR_REGISTER_COMMAND(query, "query", "ask rebuilders whether a file was independently reproduced (k-of-n)", query);

}  // namespace kmr::attest
