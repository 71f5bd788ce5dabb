#include "attest/note.h"

#include <cstdio>
#include <cstring>

#include "attest/base64.h"
#include "rebuilder/base/sha256.h"

namespace kmr::attest {
namespace {

constexpr std::string_view kDash = "\xE2\x80\x94 ";  // U+2014 EM DASH + space

Error note_error(std::string msg) { return Error(ErrorCode::kVerificationFailed, std::move(msg)); }

bool valid_utf8_no_controls(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if ((c < 0x20 && c != '\n') || c == 0x7f) return false;
      ++i;
      continue;
    }
    int n = (c >= 0xf0 && c <= 0xf4) ? 3 : (c >= 0xe0) ? 2 : (c >= 0xc2 && c < 0xe0) ? 1 : -1;
    if (n < 0 || i + static_cast<std::size_t>(n) >= s.size()) return false;
    std::uint32_t cp = c & (0x3f >> n);
    for (int k = 1; k <= n; ++k) {
      auto cc = static_cast<unsigned char>(s[i + static_cast<std::size_t>(k)]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff))) {
      return false;
    }
    i += static_cast<std::size_t>(n) + 1;
  }
  return true;
}

bool parse_u64(std::string_view s, std::uint64_t& out) {
  if (s.empty() || s.size() > 20) return false;
  if (s.size() > 1 && s[0] == '0') return false;
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    std::uint64_t d = static_cast<std::uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  out = v;
  return true;
}

}  // namespace

std::uint32_t note_key_id(std::string_view name, Bytes pubkey32) {
  Sha256 h;
  h.update(as_bytes(name));
  h.update(std::uint8_t{0x0a});
  h.update(std::uint8_t{0x01});
  h.update(pubkey32);
  Digest256 d = h.finish();
  return (std::uint32_t{d[0]} << 24) | (std::uint32_t{d[1]} << 16) | (std::uint32_t{d[2]} << 8) | d[3];
}

bool is_valid_key_name(std::string_view name) {
  if (name.empty() || name.size() > 256) return false;
  for (char c : name) {
    auto u = static_cast<unsigned char>(c);
    if (c == ' ' || c == '+' || u < 0x21 || u == 0x7f) return false;
  }
  return valid_utf8_no_controls(name);
}

NoteVerifier note_verifier(std::string_view name, const Ed25519Key& key) {
  NoteVerifier v;
  v.name = std::string(name);
  v.public_key = key.raw_public();
  v.key_id = note_key_id(name, v.public_key);
  return v;
}

std::string make_vkey(std::string_view name, const Ed25519Key& key) {
  ByteVector raw = {0x01};
  ByteVector pub = key.raw_public();
  raw.insert(raw.end(), pub.begin(), pub.end());
  char id[9];
  std::snprintf(id, sizeof id, "%08x", note_key_id(name, pub));
  return std::string(name) + "+" + id + "+" + base64_encode(raw);
}

Result<NoteVerifier> parse_vkey(std::string_view vkey) {
  auto p1 = vkey.find('+');
  if (p1 == std::string_view::npos) return malformed("vkey: expected <name>+<hex id>+<base64 key>");
  auto p2 = vkey.find('+', p1 + 1);
  if (p2 == std::string_view::npos) return malformed("vkey: expected <name>+<hex id>+<base64 key>");
  std::string_view name = vkey.substr(0, p1);
  std::string_view hex = vkey.substr(p1 + 1, p2 - p1 - 1);
  std::string_view b64 = vkey.substr(p2 + 1);
  if (!is_valid_key_name(name)) return malformed("vkey: invalid key name");
  if (hex.size() != 8) return malformed("vkey: key ID must be 8 hex digits");
  std::uint32_t id = 0;
  for (char c : hex) {
    int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
    if (d < 0) return malformed("vkey: key ID must be 8 lowercase hex digits");
    id = (id << 4) | static_cast<std::uint32_t>(d);
  }
  auto raw = base64_decode_std(b64);
  if (!raw) return malformed("vkey: key is not valid base64");
  if (raw->empty() || (*raw)[0] != 0x01) return unsupported("vkey: only Ed25519 (type 0x01) keys are supported");
  if (raw->size() != 33) return malformed("vkey: Ed25519 key must be 32 bytes");
  NoteVerifier v;
  v.name = std::string(name);
  v.public_key.assign(raw->begin() + 1, raw->end());
  v.key_id = id;
  if (note_key_id(name, v.public_key) != id) return malformed("vkey: key ID does not match name and key");
  return v;
}

Result<std::string> sign_note(std::string_view text, std::string_view name, const Ed25519Key& key) {
  if (text.empty() || text.back() != '\n') return malformed("note text must end with a newline");
  if (!is_valid_key_name(name)) return malformed("note: invalid key name");
  if (!valid_utf8_no_controls(text)) return malformed("note text is not valid UTF-8 without control characters");
  KMR_ASSIGN_OR_RETURN(ByteVector sig, key.sign(as_bytes(text)));
  ByteVector pub = key.raw_public();
  std::uint32_t id = note_key_id(name, pub);
  ByteVector line = {static_cast<std::uint8_t>(id >> 24), static_cast<std::uint8_t>(id >> 16),
                     static_cast<std::uint8_t>(id >> 8), static_cast<std::uint8_t>(id)};
  line.insert(line.end(), sig.begin(), sig.end());
  return std::string(text) + "\n" + std::string(kDash) + std::string(name) + " " + base64_encode(line) + "\n";
}

Result<std::string> verify_note(std::string_view note, const std::vector<NoteVerifier>& verifiers) {
  if (note.size() > kMaxNoteBytes) return limit_exceeded("note larger than 1 MiB");
  if (!valid_utf8_no_controls(note)) return malformed("note is not valid UTF-8 without control characters");
  auto split = note.rfind("\n\n");
  if (split == std::string_view::npos) return malformed("note: missing blank line before signatures");
  std::string_view text = note.substr(0, split + 1);
  std::string_view sigs = note.substr(split + 2);
  if (sigs.empty() || sigs.back() != '\n') return malformed("note: signature block must end with a newline");
  std::size_t count = 0;
  std::size_t good = 0;
  while (!sigs.empty()) {
    auto nl = sigs.find('\n');
    std::string_view line = sigs.substr(0, nl);
    sigs.remove_prefix(nl + 1);
    if (++count > 100) return limit_exceeded("note: more than 100 signatures");
    if (line.substr(0, kDash.size()) != kDash) return malformed("note: signature line does not start with an em dash");
    line.remove_prefix(kDash.size());
    auto sp = line.find(' ');
    if (sp == std::string_view::npos) return malformed("note: signature line without a space");
    std::string_view name = line.substr(0, sp);
    if (!is_valid_key_name(name)) return malformed("note: invalid key name in signature line");
    auto raw = base64_decode_std(line.substr(sp + 1));
    if (!raw || raw->size() < 5) return malformed("note: signature is not valid base64");
    std::uint32_t id = (std::uint32_t{(*raw)[0]} << 24) | (std::uint32_t{(*raw)[1]} << 16) |
                       (std::uint32_t{(*raw)[2]} << 8) | (*raw)[3];
    for (const auto& v : verifiers) {
      if (v.name != name || v.key_id != id) continue;
      auto key = Ed25519Key::from_raw_public(v.public_key);
      if (!key) return std::move(key).error();
      Bytes sig(raw->data() + 4, raw->size() - 4);
      if (!key->verify(as_bytes(text), sig)) {
        return note_error("note: signature by known key " + v.name + " does not verify");
      }
      ++good;
    }
  }
  if (good == 0) return note_error("note: no signature by a known key");
  return std::string(text);
}

std::string format_checkpoint(const Checkpoint& cp) {
  std::string out = cp.origin + "\n" + std::to_string(cp.size) + "\n" +
                    base64_encode(Bytes(cp.root.data(), cp.root.size())) + "\n";
  for (const auto& e : cp.extensions) out += e + "\n";
  return out;
}

Result<Checkpoint> parse_checkpoint(std::string_view text) {
  if (text.size() > kMaxNoteBytes) return limit_exceeded("checkpoint larger than 1 MiB");
  if (text.empty() || text.back() != '\n') return malformed("checkpoint: text must end with a newline");
  std::vector<std::string_view> lines;
  std::string_view rest = text;
  while (!rest.empty()) {
    auto nl = rest.find('\n');
    lines.push_back(rest.substr(0, nl));
    rest.remove_prefix(nl + 1);
  }
  if (lines.size() < 3) return malformed("checkpoint: expected origin, size and root lines");
  Checkpoint cp;
  cp.origin = std::string(lines[0]);
  if (cp.origin.empty()) return malformed("checkpoint: empty origin");
  if (!parse_u64(lines[1], cp.size)) return malformed("checkpoint: size is not a decimal without leading zeros");
  auto root = base64_decode_std(lines[2]);
  if (!root || root->size() != 32) return malformed("checkpoint: root is not a base64 SHA-256 hash");
  std::memcpy(cp.root.data(), root->data(), 32);
  for (std::size_t i = 3; i < lines.size(); ++i) {
    if (lines[i].empty()) return malformed("checkpoint: empty extension line");
    cp.extensions.emplace_back(lines[i]);
  }
  return cp;
}

Result<Checkpoint> verify_checkpoint(std::string_view note, const NoteVerifier& verifier) {
  KMR_ASSIGN_OR_RETURN(std::string text, verify_note(note, {verifier}));
  KMR_ASSIGN_OR_RETURN(Checkpoint cp, parse_checkpoint(text));
  if (cp.origin != verifier.name) {
    return note_error("checkpoint: origin '" + cp.origin + "' is not the pinned log '" + verifier.name + "'");
  }
  return cp;
}

}  // namespace kmr::attest
