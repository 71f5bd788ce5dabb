// kmr key generate | kmr attest verify | kmr query
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
#include "rebuilder/base/flags.h"
#include "rebuilder/base/text.h"

namespace kmr::attest {
namespace {

using cli::kExitError;
using cli::kExitFailed;
using cli::kExitOk;

int fail_usage(const cli::FlagParser& p, const std::string& msg) { return p.usage_error(msg); }

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

int key_generate(const std::vector<std::string>& args) {
  std::string out = "kmr-signing.pem";
  std::string name = "kmr.local/log";
  bool json = false;
  cli::FlagParser p("kmr key generate", "[--out PATH] [--name LOGNAME] [--json]",
                    "Generates an Ed25519 signing key. Writes the PKCS#8 private key to PATH\n"
                    "(default ./kmr-signing.pem) with mode 0600 - never overwriting - and the\n"
                    "public key to PATH.pub. Prints the keyid (hex SHA-256 of the SPKI DER) and\n"
                    "the signed-note vkey for LOGNAME (default kmr.local/log).");
  p.string("--out", "PATH", &out, "the private key file (default ./kmr-signing.pem)")
      .string("--name", "LOGNAME", &name, "the log name of the vkey (default kmr.local/log)")
      .boolean("--json", &json, "machine-readable output");
  if (auto code = p.parse_or_exit(args)) return *code;
  if (!is_valid_key_name(name)) return fail_usage(p, "invalid --name (no spaces or '+')");
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

struct VerifyOptions {
  std::vector<std::string> key_paths;
  std::string file;
  std::string want;  // the artifact's SHA-256 (from --sha256 or hashed from --file)
  std::vector<std::string> envelopes;
  std::string tlog_proof_path;
  std::int64_t threshold = 1;
  bool json = false;
};

void add_verify_flags(cli::FlagParser& p, VerifyOptions& o) {
  p.strings("--key", "PEM", &o.key_paths, "a trusted public key (repeatable; at least one)")
      .integer("--threshold", "K", &o.threshold, 1, 1 << 20, "distinct keys that must have signed (default 1)")
      .string("--file", "ARTIFACT", &o.file, "the artifact the statement must be about")
      .string("--sha256", "HEX", &o.want, "the artifact's SHA-256 the statement must be about")
      .string("--tlog-proof", "FILE", &o.tlog_proof_path, "a C2SP tlog-proof of the envelope")
      .boolean("--json", &o.json, "machine-readable output")
      .positionals("ENVELOPE", &o.envelopes, 1, 1)
      .epilogue("Exit: 0 valid and PASSED, 1 invalid or FAILED/not matching, 2 error.");
}

// What verification reads: the trusted keys and the envelope's and the proof's bytes.
struct VerifyInputs {
  std::vector<Ed25519Key> keys;
  std::string envelope;
  std::string tlog_proof;  // empty without --tlog-proof
};

// Loads the keys and files the options name and settles o.want (lowercase hex, or
// empty); returns an exit code when the command ends here.
std::optional<int> load_verify_inputs(const cli::FlagParser& p, VerifyOptions& o, VerifyInputs& in) {
  if (o.key_paths.empty()) return fail_usage(p, "at least one --key PEM is required");
  for (const auto& path : o.key_paths) {
    auto k = Ed25519Key::load(path);
    if (!k) return report_error("attest verify", o.json, k.error());
    in.keys.push_back(std::move(k).value());
  }
  if (!o.file.empty()) {
    auto d = sha256_file(o.file);
    if (!d) return report_error("attest verify", o.json, std::move(d).error().with_context("while hashing " + o.file));
    o.want = to_hex(Bytes(d->data(), d->size()));
  }
  if (!o.want.empty() && !is_sha256_hex(o.want)) return fail_usage(p, "--sha256 needs 64 hex digits");
  o.want = ascii_lower(o.want);
  auto text = read_text_file(o.envelopes[0], kMaxEnvelopeBytes);
  if (!text) return report_error("attest verify", o.json, text.error());
  in.envelope = std::move(*text);
  if (!o.tlog_proof_path.empty()) {
    auto t = read_text_file(o.tlog_proof_path, 2 * kMaxNoteBytes);
    if (!t) return report_error("attest verify", o.json, t.error());
    in.tlog_proof = std::move(*t);
  }
  return std::nullopt;
}

struct VerifyResult {
  nlohmann::json out;  // the --json answer, without verdict and reason
  std::string verdict;
  std::string reason;
  int code = kExitOk;
};

// A valid statement's fields, and its log position when the tlog-proof checked out.
void describe_statement(nlohmann::json& out, const StatementView& st, const Result<Checkpoint>& logged,
                        const std::string& tlog_proof) {
  nlohmann::json subj = nlohmann::json::array();
  for (const auto& s : st.subjects) subj.push_back({{"name", s.name}, {"sha256", s.sha256}});
  out["subject"] = subj;
  out["verifier_id"] = st.verifier_id;
  out["time_verified"] = st.time_verified;
  out["resource_uri"] = st.resource_uri;
  out["verification_result"] = st.verification_result;
  out["verified_levels"] = st.verified_levels;
  out["module_root"] = st.module_root;
  out["files"] = st.files;
  if (logged) {
    auto p = parse_tlog_proof(tlog_proof);
    out["log"] = {{"origin", logged->origin}, {"checkpoint_size", logged->size}, {"index", p ? p->index : 0}};
  }
}

// The verdict on a validly signed statement: about the wanted artifact, logged when a
// proof was given, and attesting PASSED.
void judge_statement(VerifyResult& v, const VerifyOptions& o, const StatementView& st,
                     const Result<Checkpoint>& logged) {
  v.code = kExitFailed;
  if (!o.want.empty() && !has_subject(st, o.want)) {
    v.verdict = "subject-mismatch";
    v.reason = "statement subject is not sha256:" + o.want;
  } else if (!o.tlog_proof_path.empty() && !logged) {
    v.verdict = "not-logged";
    v.reason = o.tlog_proof_path + ": " + logged.error().to_string();
  } else if (st.verification_result != "PASSED") {
    v.verdict = "failed";
    v.reason = "valid attestation of a FAILED rebuild (files=" + st.files + ", module_root=" + st.module_root + ")";
  } else {
    v.verdict = "passed";
    v.code = kExitOk;
  }
}

VerifyResult verify_attestation(const VerifyOptions& o, const VerifyInputs& in) {
  const std::string& envelope_path = o.envelopes[0];
  std::vector<const Ed25519Key*> trusted;
  for (const auto& k : in.keys) trusted.push_back(&k);
  VerifyResult v;
  v.out["envelope"] = envelope_path;
  auto verified = verify_envelope(in.envelope, trusted, static_cast<std::size_t>(o.threshold));
  if (!verified) {
    v.verdict = "invalid";
    v.reason = envelope_path + ": " + verified.error().to_string();
    v.code = kExitFailed;
    return v;
  }
  v.out["keyids"] = verified->keyids;
  auto st = parse_statement(verified->payload);
  if (!st) {
    v.verdict = "invalid";
    v.reason = envelope_path + ": " + st.error().to_string();
    v.code = kExitFailed;
    return v;
  }
  Result<Checkpoint> logged = malformed("no tlog-proof");
  if (!o.tlog_proof_path.empty()) logged = verify_tlog_proof(in.tlog_proof, as_bytes(in.envelope), trusted);
  describe_statement(v.out, *st, logged, in.tlog_proof);
  judge_statement(v, o, *st, logged);
  return v;
}

void print_verify_result(const VerifyResult& v, const std::string& envelope_path, bool json) {
  nlohmann::json out = v.out;
  out["verdict"] = v.verdict;
  if (!v.reason.empty()) out["reason"] = v.reason;
  if (json) {
    std::printf("%s\n", out.dump(2).c_str());
  } else if (v.code == kExitOk) {
    std::printf("OK: %s is signed by %s and attests PASSED (files=%s, module_root=%s) for %s\n",
                envelope_path.c_str(), out["keyids"][0].get<std::string>().substr(0, 16).c_str(),
                out["files"].get<std::string>().c_str(), out["module_root"].get<std::string>().c_str(),
                out["subject"][0]["name"].get<std::string>().c_str());
  } else {
    std::printf("NOT VERIFIED (%s): %s\n", v.verdict.c_str(), v.reason.c_str());
  }
}

int attest_verify(const std::vector<std::string>& args) {
  VerifyOptions o;
  cli::FlagParser p(
      "kmr attest verify",
      "--key PEM [--key PEM ...] [--threshold K] [--file ARTIFACT]\n"
      "                         [--sha256 HEX] [--tlog-proof FILE] [--json] ENVELOPE",
      "Verifies a DSSE envelope (in-toto Statement, kmr kernel-rebuild predicate):\n"
      "the signature under >= K distinct given public keys (default 1), the\n"
      "statement's shape, and - with --file or --sha256 - that the statement's\n"
      "subject digest is that artifact's SHA-256. With --tlog-proof (C2SP tlog-proof,\n"
      "from GET /api/v1/log/proof/tlog?hash=...) also that the exact envelope bytes\n"
      "are in the rebuilder's log, under a checkpoint signed by one of the keys.");
  add_verify_flags(p, o);
  if (auto code = p.parse_or_exit(args)) return *code;
  VerifyInputs in;
  if (auto code = load_verify_inputs(p, o, in)) return *code;
  const VerifyResult v = verify_attestation(o, in);
  print_verify_result(v, o.envelopes[0], o.json);
  return v.code;
}

// ---- kmr query --------------------------------------------------------------

constexpr const char* kQueryHelp =
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
    "a store path asks for that Nix output. --file PATH always hashes a local file.";

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
    return QueryTarget{ascii_lower(v), ""};
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
  std::vector<std::string> targets;
  std::string file;
  bool json = false;
  std::int64_t threshold = 1, timeout = -1;
  cli::FlagParser p("kmr query",
                    "--rebuilder URL --key PEM [--key PEM ...] [--rebuilder URL --key PEM ...]\n"
                    "                 [--threshold K] [--timeout SECONDS] [--cache-dir DIR] [--json]\n"
                    "                 (FILE | --file PATH | sha256:HEX | NARHASH | /nix/store/HASH-NAME)",
                    kQueryHelp);
  p.each("--rebuilder", "URL",
         [&pins](const std::string& v) -> Result<void> {
           pins.push_back({v, {}});
           return ok();
         },
         "a rebuilder's kmrd base URL (repeatable)")
      .each("--key", "PEM",
            [&pins](const std::string& v) -> Result<void> {
              if (pins.empty()) return malformed("must follow the --rebuilder it belongs to");
              pins.back().second.push_back(v);
              return ok();
            },
            "a public key pinned for the preceding --rebuilder (repeatable)")
      .integer("--threshold", "K", &threshold, 1, 1 << 20, "rebuilders with distinct keys that must agree (default 1)")
      .integer("--timeout", "SECONDS", &timeout, 0, 1 << 30, "per-request timeout")
      .string("--cache-dir", "DIR", &opt.cache_dir, "where consistent checkpoints are kept (default ~/.cache/kmr)")
      .string("--file", "PATH", &file, "hash this local file")
      .boolean("--json", &json, "machine-readable output")
      .positionals("FILE", &targets, 0, 1)
      .epilogue("Exit: 0 verified, 1 not verified, 2 error.");
  if (auto code = p.parse_or_exit(args)) return *code;
  const std::string target = targets.empty() ? "" : targets[0];
  opt.threshold = static_cast<std::size_t>(threshold);
  if (timeout >= 0) opt.timeout = std::chrono::seconds(timeout);
  if (!file.empty() && !target.empty()) return fail_usage(p, "give either --file PATH or a FILE/hash, not both");
  if (target.empty() && file.empty()) return fail_usage(p, "missing FILE, --file PATH or sha256:HEX");
  if (pins.empty()) return fail_usage(p, "at least one --rebuilder URL --key PEM is required");
  std::optional<QueryTarget> typed = file.empty() ? parse_query_target(target) : std::nullopt;
  if (typed) {
    opt.sha256 = typed->sha256;
    opt.store_path = typed->store_path;
  } else if (file.empty() && (target.rfind("sha256:", 0) == 0 || target.rfind("sha256-", 0) == 0)) {
    return fail_usage(p, "sha256: needs 64 hex digits or a nix32 NarHash");
  } else {
    const std::string& path = file.empty() ? target : file;
    auto d = sha256_file(path);
    if (!d) return report_error("query", json, std::move(d).error().with_context("while hashing " + path));
    opt.sha256 = to_hex(Bytes(d->data(), d->size()));
  }
  for (auto& [url, key_paths] : pins) {
    RebuilderPin pin;
    pin.url = url;
    if (key_paths.empty()) return fail_usage(p, "rebuilder " + url + " has no pinned --key");
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
