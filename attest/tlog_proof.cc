#include "attest/tlog_proof.h"

#include <algorithm>

#include "attest/base64.h"

namespace kmr::attest {

std::string make_tlog_proof(std::uint64_t index, const std::vector<Hash>& proof, std::string_view checkpoint_note) {
  std::string out = std::string(kTlogProofHeader) + "\nindex " + std::to_string(index) + "\n";
  for (const auto& h : proof) out += base64_encode(Bytes(h.data(), h.size())) + "\n";
  out += "\n";
  out += checkpoint_note;
  return out;
}

Result<TlogProof> parse_tlog_proof(std::string_view text) {
  if (text.size() > 2 * kMaxNoteBytes) return limit_exceeded("tlog-proof larger than 2 MiB");
  auto next_line = [&text](std::string_view& line) {
    auto nl = text.find('\n');
    if (nl == std::string_view::npos) return false;
    line = text.substr(0, nl);
    text.remove_prefix(nl + 1);
    return true;
  };
  std::string_view line;
  if (!next_line(line) || line != kTlogProofHeader) return malformed("tlog-proof: first line is not " + std::string(kTlogProofHeader));
  if (!next_line(line)) return malformed("tlog-proof: missing index line");
  if (line.rfind("extra ", 0) == 0) {
    if (!next_line(line)) return malformed("tlog-proof: missing index line");
  }
  if (line.rfind("index ", 0) != 0) return malformed("tlog-proof: missing index line");
  std::string_view num = line.substr(6);
  TlogProof p;
  if (num.empty() || num.size() > 19 || (num.size() > 1 && num[0] == '0') ||
      !std::all_of(num.begin(), num.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return malformed("tlog-proof: index is not a decimal without leading zeros");
  }
  for (char c : num) p.index = p.index * 10 + static_cast<std::uint64_t>(c - '0');
  while (true) {
    if (!next_line(line)) return malformed("tlog-proof: missing blank line before the checkpoint");
    if (line.empty()) break;
    if (p.hashes.size() >= 64) return limit_exceeded("tlog-proof: more than 64 proof hashes");
    auto raw = base64_decode_std(line);
    if (!raw || raw->size() != 32) return malformed("tlog-proof: proof line is not a base64 SHA-256 hash");
    Hash h;
    std::copy(raw->begin(), raw->end(), h.begin());
    p.hashes.push_back(h);
  }
  if (text.empty()) return malformed("tlog-proof: missing checkpoint");
  p.checkpoint_note = std::string(text);
  return p;
}

Result<Checkpoint> verify_tlog_proof(std::string_view text, Bytes entry, const std::vector<const Ed25519Key*>& log_keys) {
  KMR_ASSIGN_OR_RETURN(TlogProof p, parse_tlog_proof(text));
  std::string origin = p.checkpoint_note.substr(0, p.checkpoint_note.find('\n'));
  if (!is_valid_key_name(origin)) return malformed("tlog-proof: checkpoint origin is not a valid key name");
  Error last(ErrorCode::kVerificationFailed, "tlog-proof: no log key given");
  for (const Ed25519Key* k : log_keys) {
    auto cp = verify_checkpoint(p.checkpoint_note, note_verifier(origin, *k));
    if (!cp) {
      last = std::move(cp).error();
      continue;
    }
    KMR_TRY(verify_inclusion(p.index, cp->size, leaf_hash(entry), p.hashes, cp->root));
    return cp;
  }
  return std::move(last).with_context("tlog-proof checkpoint not signed by the given key");
}

}  // namespace kmr::attest
