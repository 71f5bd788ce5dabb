#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "attest/keys.h"
#include "attest/merkle.h"
#include "rebuilder/base/result.h"

namespace kmr::attest {

// C2SP signed-note v1.0.0 with Ed25519 (sigtype 0x01) keys, and
// tlog-checkpoint v1.0.0 bodies.

inline constexpr std::size_t kMaxNoteBytes = 1 << 20;

// First 4 bytes (big-endian) of SHA-256(name || 0x0A || 0x01 || pubkey32).
std::uint32_t note_key_id(std::string_view name, Bytes pubkey32);
bool is_valid_key_name(std::string_view name);

// A verifier for one (name, key ID).
struct NoteVerifier {
  std::string name;
  std::uint32_t key_id = 0;
  ByteVector public_key;  // 32 bytes
};

// "<name>+<8 hex key id>+<base64(0x01 || pubkey)>".
std::string make_vkey(std::string_view name, const Ed25519Key& key);
Result<NoteVerifier> parse_vkey(std::string_view vkey);
NoteVerifier note_verifier(std::string_view name, const Ed25519Key& key);

// Returns text + "\n" + "— <name> <base64(keyid || sig)>\n". `text` must end
// in a newline.
Result<std::string> sign_note(std::string_view text, std::string_view name, const Ed25519Key& key);

// Verifies a note: splits off the signature block, ignores signatures of
// unknown keys, rejects if a known key's signature fails or no known key
// verifies. Returns the note text (through its last newline).
Result<std::string> verify_note(std::string_view note, const std::vector<NoteVerifier>& verifiers);

struct Checkpoint {
  std::string origin;
  std::uint64_t size = 0;
  Hash root{};
  std::vector<std::string> extensions;
};

std::string format_checkpoint(const Checkpoint& cp);
Result<Checkpoint> parse_checkpoint(std::string_view text);
// verify_note + parse_checkpoint + origin must equal the verifier's name.
Result<Checkpoint> verify_checkpoint(std::string_view note, const NoteVerifier& verifier);

}  // namespace kmr::attest
