// Feeds arbitrary bytes to every parser of untrusted attestation input.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "attest/base64.h"
#include "attest/dsse.h"
#include "attest/keys.h"
#include "attest/note.h"
#include "attest/statement.h"
#include "attest/tlog.h"
#include "attest/tlog_proof.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace kmr::attest;
  static const Ed25519Key key = [] {
    std::uint8_t seed[32] = {1};
    return std::move(Ed25519Key::from_seed(kmr::Bytes(seed, 32))).value();
  }();
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)base64_decode(text);
  (void)verify_envelope(text, {&key}, 1);
  (void)parse_statement(kmr::Bytes(data, size));
  (void)verify_note(text, {note_verifier("kmr.test/log", key)});
  (void)parse_checkpoint(text);
  (void)parse_vkey(text);
  (void)parse_tile_path(text);
  (void)Ed25519Key::from_pem(text);
  (void)Ed25519Key::from_spki_der(kmr::Bytes(data, size));
  (void)KeySet::from_json(text);
  (void)verify_tlog_proof(text, kmr::Bytes(data, size), {&key});
  return 0;
}
