#include "rebuilder/kmod/trailer.h"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include <algorithm>
#include <memory>

#include "rebuilder/base/hex.h"

namespace kmr::kmod {

std::string_view trailer_kind_name(TrailerKind kind) {
  switch (kind) {
    case TrailerKind::kNone: return "none";
    case TrailerKind::kPkcs7: return "pkcs7";
    case TrailerKind::kMerkle: return "merkle";
  }
  return "none";
}

namespace {

Error bad(std::string_view what, std::string msg) { return malformed(std::string(what) + ": " + std::move(msg)); }

std::string name_entry(const X509_NAME* name, int nid) {
  const int idx = X509_NAME_get_index_by_NID(name, nid, -1);
  if (idx < 0) return {};
  const ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
  unsigned char* utf8 = nullptr;
  const int len = ASN1_STRING_to_UTF8(&utf8, s);
  if (len < 0) return {};
  std::string out(reinterpret_cast<const char*>(utf8), static_cast<std::size_t>(len));
  OPENSSL_free(utf8);
  return out;
}

}  // namespace

Result<Pkcs7Info> parse_pkcs7_signature(Bytes der) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(der.data(), static_cast<int>(der.size())), &BIO_free);
  if (!bio || der.size() > (1u << 30)) return malformed("PKCS#7 signature: cannot read");
  std::unique_ptr<CMS_ContentInfo, decltype(&CMS_ContentInfo_free)> cms(d2i_CMS_bio(bio.get(), nullptr),
                                                                        &CMS_ContentInfo_free);
  ERR_clear_error();
  if (!cms) return malformed("PKCS#7 signature: not a DER CMS/PKCS#7 structure");
  STACK_OF(CMS_SignerInfo)* infos = CMS_get0_SignerInfos(cms.get());
  if (infos == nullptr || sk_CMS_SignerInfo_num(infos) < 1) return malformed("PKCS#7 signature: no signer info");
  CMS_SignerInfo* si = sk_CMS_SignerInfo_value(infos, 0);
  ASN1_OCTET_STRING* keyid = nullptr;
  X509_NAME* issuer = nullptr;
  ASN1_INTEGER* serial = nullptr;
  if (CMS_SignerInfo_get0_signer_id(si, &keyid, &issuer, &serial) != 1) {
    return malformed("PKCS#7 signature: no signer identifier");
  }
  Pkcs7Info info;
  if (keyid != nullptr) {
    info.key_id = to_hex(Bytes(ASN1_STRING_get0_data(keyid), static_cast<std::size_t>(ASN1_STRING_length(keyid))));
  } else if (serial != nullptr) {
    // Serial as unsigned big-endian bytes, the way modinfo shows sig_key.
    std::unique_ptr<BIGNUM, decltype(&BN_free)> bn(ASN1_INTEGER_to_BN(serial, nullptr), &BN_free);
    if (bn) {
      ByteVector b(static_cast<std::size_t>(BN_num_bytes(bn.get())));
      BN_bn2bin(bn.get(), b.data());
      info.key_id = to_hex(b);
    }
  }
  if (issuer != nullptr) {
    info.signer = name_entry(issuer, NID_commonName);
    if (info.signer.empty()) {
      char buf[512];
      X509_NAME_oneline(issuer, buf, sizeof buf);
      info.signer = buf;
    }
  }
  X509_ALGOR* dig = nullptr;
  CMS_SignerInfo_get0_algs(si, nullptr, nullptr, &dig, nullptr);
  if (dig != nullptr) {
    const ASN1_OBJECT* obj = nullptr;
    X509_ALGOR_get0(&obj, nullptr, nullptr, dig);
    const int nid = OBJ_obj2nid(obj);
    if (nid != NID_undef) info.digest = OBJ_nid2sn(nid);
  }
  return info;
}

Result<ModuleTrailer> parse_trailer(Bytes module, std::string_view what) {
  ModuleTrailer t;
  const Bytes marker = as_bytes(kSignatureMarker);
  if (module.size() < marker.size() ||
      !std::equal(marker.begin(), marker.end(), module.end() - static_cast<long>(marker.size()))) {
    t.content_length = module.size();
    return t;
  }
  const std::uint64_t before_marker = module.size() - marker.size();
  if (before_marker < kSignatureStructSize) {
    return bad(what, "truncated trailer: " + std::to_string(before_marker) +
                         " bytes before the signature marker, the signature struct needs 12");
  }
  const std::uint8_t* s = module.data() + before_marker - kSignatureStructSize;
  t.sig.algo = s[0];
  t.sig.hash = s[1];
  t.sig.id_type = s[2];
  t.sig.signer_len = s[3];
  t.sig.key_id_len = s[4];
  t.sig.pad[0] = s[5];
  t.sig.pad[1] = s[6];
  t.sig.pad[2] = s[7];
  t.sig.sig_len = (static_cast<std::uint32_t>(s[8]) << 24) | (static_cast<std::uint32_t>(s[9]) << 16) |
                  (static_cast<std::uint32_t>(s[10]) << 8) | static_cast<std::uint32_t>(s[11]);
  const std::uint64_t before_struct = before_marker - kSignatureStructSize;
  if (t.sig.sig_len > before_struct) {
    return bad(what, "sig_len " + std::to_string(t.sig.sig_len) + " larger than the file (" +
                         std::to_string(before_struct) + " bytes before the signature struct)");
  }
  if (t.sig.id_type != kIdTypePkcs7 && t.sig.id_type != kIdTypeMerkle) {
    return bad(what, "unknown id_type " + std::to_string(t.sig.id_type) + " in module signature");
  }
  if (t.sig.algo != 0 || t.sig.hash != 0 || t.sig.signer_len != 0 || t.sig.key_id_len != 0 || t.sig.pad[0] != 0 ||
      t.sig.pad[1] != 0 || t.sig.pad[2] != 0) {
    return bad(what, "module signature struct has nonzero algo/hash/signer_len/key_id_len/pad fields");
  }
  if (t.sig.sig_len == 0) return bad(what, "sig_len is 0");
  t.trailer_length = marker.size() + kSignatureStructSize + t.sig.sig_len;
  if (t.trailer_length > kMaxTrailerSize) {
    return limit_exceeded(std::string(what) + ": module trailer of " + std::to_string(t.trailer_length) +
                          " bytes exceeds " + std::to_string(kMaxTrailerSize));
  }
  t.content_length = module.size() - t.trailer_length;
  t.blob = module.subspan(t.content_length, t.sig.sig_len);
  if (t.sig.id_type == kIdTypeMerkle) {
    auto p = parse_proof_payload(t.blob);
    if (!p) return std::move(p).error().with_context(std::string(what));
    t.kind = TrailerKind::kMerkle;
    t.proof = std::move(*p);
  } else {
    auto info = parse_pkcs7_signature(t.blob);
    if (!info) return std::move(info).error().with_context(std::string(what));
    t.kind = TrailerKind::kPkcs7;
    t.pkcs7 = std::move(*info);
  }
  return t;
}

}  // namespace kmr::kmod
