#include "rebuilder/kmod/trailer_format.h"

namespace kmr::kmod {

ByteVector build_trailer(Bytes blob, const ModuleSignature& sig) {
  ByteVector out(blob.begin(), blob.end());
  const std::uint8_t s[kSignatureStructSize] = {
      sig.algo,   sig.hash,   sig.id_type, sig.signer_len,
      sig.key_id_len, sig.pad[0], sig.pad[1], sig.pad[2],
      static_cast<std::uint8_t>(sig.sig_len >> 24), static_cast<std::uint8_t>(sig.sig_len >> 16),
      static_cast<std::uint8_t>(sig.sig_len >> 8), static_cast<std::uint8_t>(sig.sig_len)};
  out.insert(out.end(), s, s + kSignatureStructSize);
  const Bytes m = as_bytes(kSignatureMarker);
  out.insert(out.end(), m.begin(), m.end());
  return out;
}

}  // namespace kmr::kmod
