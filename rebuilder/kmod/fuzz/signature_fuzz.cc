// libFuzzer target: the parsers of untrusted signature data: certificates
// built into an image (symbol and DER scan paths), PKCS#7 module signatures
// (the blob, prepared against a fixed content and verified against the
// certificates found), and Authenticode PE images.
#include <cstddef>
#include <cstdint>

#include "rebuilder/kmod/authenticode.h"
#include "rebuilder/kmod/module_sig.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const kmr::Bytes in(data, size);
  kmr::kmod::EmbeddedCertScanLimits lim;
  lim.max_candidates = 2000;
  auto certs = kmr::kmod::find_embedded_certificates(in, "fuzz", lim);
  kmr::kmod::CertificateSet set;
  if (certs) {
    for (const auto& c : certs->certificates) {
      if (c.offset && (*c.offset > size || c.der.size() > size - *c.offset)) __builtin_trap();
      (void)set.add_der(c.der, "embedded");
    }
  }
  auto p = kmr::kmod::PendingSignature::prepare(in, in.first(size / 2));
  if (p) (void)p->verify(set);
  auto a = kmr::kmod::check_authenticode(in, set, "fuzz");
  if (a && a->has_value() && (*a)->verified && set.size() == 0) __builtin_trap();
  (void)kmr::kmod::looks_like_certificates(in);
  return 0;
}
