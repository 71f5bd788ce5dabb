#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "attest/keys.h"
#include "attest/merkle.h"
#include "attest/note.h"
#include "rebuilder/base/result.h"

namespace kmr::attest {

// C2SP tlog-proof (draft, "c2sp.org/tlog-proof@v1"): an offline proof that an
// entry is in a log, bundling the inclusion proof with the signed checkpoint:
//   c2sp.org/tlog-proof@v1\n
//   [extra <base64>\n]
//   index <decimal>\n
//   <base64 hash>\n ...
//   \n
//   <signed checkpoint note, verbatim>
inline constexpr std::string_view kTlogProofHeader = "c2sp.org/tlog-proof@v1";

std::string make_tlog_proof(std::uint64_t index, const std::vector<Hash>& proof, std::string_view checkpoint_note);

struct TlogProof {
  std::uint64_t index = 0;
  std::vector<Hash> hashes;
  std::string checkpoint_note;
};
Result<TlogProof> parse_tlog_proof(std::string_view text);

// Verifies the checkpoint under `log_key` (key name = the checkpoint origin)
// and that `entry` (exact bytes) is included at the proof's index. Returns
// the verified checkpoint.
Result<Checkpoint> verify_tlog_proof(std::string_view text, Bytes entry, const std::vector<const Ed25519Key*>& log_keys);

}  // namespace kmr::attest
