#include "rebuilder/kmod/authenticode.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <memory>

#include "rebuilder/kmod/openssl_util.h"

namespace kmr::kmod {

namespace {

constexpr std::uint16_t kPe32Magic = 0x10b;
constexpr std::uint16_t kPe32PlusMagic = 0x20b;
constexpr std::uint16_t kWinCertTypePkcsSignedData = 0x0002;
constexpr std::uint64_t kMaxCertTable = 1u << 20;

std::uint32_t le32(Bytes b, std::uint64_t off) {
  return static_cast<std::uint32_t>(b[off]) | (static_cast<std::uint32_t>(b[off + 1]) << 8) |
         (static_cast<std::uint32_t>(b[off + 2]) << 16) | (static_cast<std::uint32_t>(b[off + 3]) << 24);
}
std::uint16_t le16(Bytes b, std::uint64_t off) {
  return static_cast<std::uint16_t>(b[off] | (b[off + 1] << 8));
}

struct Pkcs7Free {
  void operator()(PKCS7* p) const { PKCS7_free(p); }
};
struct BioFree {
  void operator()(BIO* b) const { BIO_free_all(b); }
};
struct StoreFree {
  void operator()(X509_STORE* s) const { X509_STORE_free(s); }
};
struct StoreCtxFree {
  void operator()(X509_STORE_CTX* c) const { X509_STORE_CTX_free(c); }
};

// One DER TLV inside [at, end): tag, header length and content length.
struct Tlv {
  std::uint8_t tag = 0;
  std::uint64_t header = 0;
  std::uint64_t length = 0;
};
std::optional<Tlv> read_tlv(Bytes b, std::uint64_t at, std::uint64_t end) {
  if (at + 2 > end) return std::nullopt;
  Tlv t;
  t.tag = b[at];
  const std::uint8_t l0 = b[at + 1];
  if (l0 < 0x80) {
    t.header = 2;
    t.length = l0;
  } else {
    const std::uint64_t n = l0 & 0x7f;
    if (n == 0 || n > 4 || at + 2 + n > end) return std::nullopt;
    t.header = 2 + n;
    for (std::uint64_t i = 0; i < n; ++i) t.length = (t.length << 8) | b[at + 2 + i];
  }
  if (t.length > end - at - t.header) return std::nullopt;
  return t;
}

// SpcIndirectDataContent ::= SEQUENCE { data SpcAttributeTypeAndOptionalValue,
//   messageDigest DigestInfo }; DigestInfo ::= SEQUENCE { AlgorithmIdentifier, OCTET STRING }.
struct IndirectData {
  Bytes content_value;  // what the PKCS#7 signature covers (inside the outer SEQUENCE)
  const EVP_MD* md = nullptr;
  Bytes digest;
};
Result<IndirectData> parse_indirect_data(Bytes der) {
  auto outer = read_tlv(der, 0, der.size());
  if (!outer || outer->tag != 0x30) return malformed("SpcIndirectDataContent is not a SEQUENCE");
  IndirectData out;
  out.content_value = der.subspan(outer->header, outer->length);
  const std::uint64_t end = outer->header + outer->length;
  auto first = read_tlv(der, outer->header, end);
  if (!first) return malformed("SpcIndirectDataContent: bad data field");
  const std::uint64_t di_at = outer->header + first->header + first->length;
  auto di = read_tlv(der, di_at, end);
  if (!di || di->tag != 0x30) return malformed("SpcIndirectDataContent: no DigestInfo");
  const std::uint64_t alg_at = di_at + di->header;
  const std::uint64_t di_end = alg_at + di->length;
  auto alg = read_tlv(der, alg_at, di_end);
  if (!alg || alg->tag != 0x30) return malformed("DigestInfo: no AlgorithmIdentifier");
  const unsigned char* p = der.data() + alg_at;
  std::unique_ptr<X509_ALGOR, decltype(&X509_ALGOR_free)> algor(
      d2i_X509_ALGOR(nullptr, &p, static_cast<long>(alg->header + alg->length)), &X509_ALGOR_free);
  if (!algor) return malformed("DigestInfo: unreadable AlgorithmIdentifier");
  const ASN1_OBJECT* obj = nullptr;
  X509_ALGOR_get0(&obj, nullptr, nullptr, algor.get());
  out.md = EVP_get_digestbyobj(obj);
  if (out.md == nullptr) return malformed("DigestInfo: unknown digest algorithm");
  const std::uint64_t dig_at = alg_at + alg->header + alg->length;
  auto dig = read_tlv(der, dig_at, di_end);
  if (!dig || dig->tag != 0x04) return malformed("DigestInfo: no digest OCTET STRING");
  out.digest = der.subspan(dig_at + dig->header, dig->length);
  return out;
}

// The Authenticode image hash.
Result<ByteVector> image_hash(Bytes image, const PeLayout& l, const EVP_MD* md) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), md, nullptr) != 1) return internal_error("digest init failed");
  const std::uint64_t end = l.cert_table_offset ? l.cert_table_offset : image.size();
  EVP_DigestUpdate(ctx.get(), image.data(), l.checksum_offset);
  EVP_DigestUpdate(ctx.get(), image.data() + l.checksum_offset + 4, l.cert_dir_offset - l.checksum_offset - 4);
  EVP_DigestUpdate(ctx.get(), image.data() + l.cert_dir_offset + 8, end - l.cert_dir_offset - 8);
  ByteVector out(static_cast<std::size_t>(EVP_MD_get_size(md)));
  unsigned int n = 0;
  if (EVP_DigestFinal_ex(ctx.get(), out.data(), &n) != 1) return internal_error("digest failed");
  out.resize(n);
  return out;
}

bool chain_to(X509* signer, STACK_OF(X509)* untrusted, const CertificateSet& trust) {
  if (trust.size() == 0) return false;
  std::unique_ptr<X509_STORE, StoreFree> store(X509_STORE_new());
  for (std::size_t i = 0; i < trust.size(); ++i) X509_STORE_add_cert(store.get(), static_cast<X509*>(trust.x509(i)));
  std::unique_ptr<X509_STORE_CTX, StoreCtxFree> ctx(X509_STORE_CTX_new());
  if (!store || !ctx || X509_STORE_CTX_init(ctx.get(), store.get(), signer, untrusted) != 1) return false;
  X509_STORE_CTX_set_flags(ctx.get(), X509_V_FLAG_PARTIAL_CHAIN | X509_V_FLAG_NO_CHECK_TIME);
  X509_STORE_CTX_set_purpose(ctx.get(), X509_PURPOSE_ANY);
  const bool ok = X509_verify_cert(ctx.get()) == 1;
  ERR_clear_error();
  return ok;
}

}  // namespace

Result<std::optional<PeLayout>> parse_pe_layout(Bytes image, const std::string& what) {
  if (image.size() < 0x40 || image[0] != 'M' || image[1] != 'Z') return std::optional<PeLayout>();
  const std::uint64_t pe = le32(image, 0x3c);
  if (pe > image.size() || image.size() - pe < 24 || le32(image, pe) != 0x00004550) return std::optional<PeLayout>();
  const std::uint64_t opt = pe + 24;
  const std::uint16_t opt_size = le16(image, pe + 20);
  if (opt_size < 2 || image.size() - opt < opt_size) return malformed(what + ": PE optional header truncated");
  const std::uint16_t magic = le16(image, opt);
  if (magic != kPe32Magic && magic != kPe32PlusMagic) return malformed(what + ": unknown PE optional header magic");
  const std::uint64_t ndirs_at = opt + (magic == kPe32Magic ? 92 : 108);
  const std::uint64_t dirs_at = ndirs_at + 4;
  if (ndirs_at + 4 > opt + opt_size) return malformed(what + ": PE optional header too short");
  const std::uint32_t ndirs = le32(image, ndirs_at);
  PeLayout l;
  l.checksum_offset = opt + 64;
  if (ndirs < 5 || dirs_at + std::size_t{5} * 8 > opt + opt_size) return std::optional<PeLayout>(l);  // no certificate table
  l.cert_dir_offset = dirs_at + std::size_t{4} * 8;
  l.cert_table_offset = le32(image, l.cert_dir_offset);
  l.cert_table_size = le32(image, l.cert_dir_offset + 4);
  if (l.cert_table_size == 0) {
    l.cert_table_offset = 0;
    return std::optional<PeLayout>(l);
  }
  if (l.cert_table_offset < opt + opt_size || l.cert_table_offset > image.size() ||
      l.cert_table_size > image.size() - l.cert_table_offset) {
    return malformed(what + ": PE certificate table outside the file");
  }
  if (l.cert_table_size > kMaxCertTable) return limit_exceeded(what + ": PE certificate table larger than 1 MiB");
  return std::optional<PeLayout>(l);
}

Result<std::optional<AuthenticodeInfo>> check_authenticode(Bytes image, const CertificateSet& trust,
                                                           const std::string& what) {
  KMR_ASSIGN_OR_RETURN(auto layout, parse_pe_layout(image, what));
  if (!layout || layout->cert_table_offset == 0) return std::optional<AuthenticodeInfo>();
  AuthenticodeInfo info;
  info.layout = *layout;
  // WIN_CERTIFICATE { u32 dwLength; u16 wRevision; u16 wCertificateType; bCertificate }.
  const Bytes table = image.subspan(layout->cert_table_offset, layout->cert_table_size);
  if (table.size() < 8) return malformed(what + ": PE certificate table shorter than its header");
  const std::uint32_t len = le32(table, 0);
  if (len < 8 || len > table.size()) return malformed(what + ": WIN_CERTIFICATE length outside the table");
  if (le16(table, 6) != kWinCertTypePkcsSignedData) return malformed(what + ": WIN_CERTIFICATE is not PKCS#7 signed data");
  const unsigned char* p = table.data() + 8;
  std::unique_ptr<PKCS7, Pkcs7Free> p7(d2i_PKCS7(nullptr, &p, static_cast<long>(len - 8)));
  if (!p7 || !PKCS7_type_is_signed(p7.get()) || p7->d.sign == nullptr || p7->d.sign->contents == nullptr) {
    ERR_clear_error();
    return malformed(what + ": Authenticode signature is not PKCS#7 SignedData");
  }
  PKCS7* inner = p7->d.sign->contents;
  // Any known PKCS#7 content type is not the "other" type Authenticode uses.
  const int inner_nid = OBJ_obj2nid(inner->type);
  const bool known = inner_nid == NID_pkcs7_data || inner_nid == NID_pkcs7_signed || inner_nid == NID_pkcs7_enveloped ||
                     inner_nid == NID_pkcs7_signedAndEnveloped || inner_nid == NID_pkcs7_digest ||
                     inner_nid == NID_pkcs7_encrypted;
  if (known || inner->d.other == nullptr || inner->d.other->type != V_ASN1_SEQUENCE) {
    return malformed(what + ": Authenticode signature carries no SpcIndirectDataContent");
  }
  const ASN1_STRING* seq = inner->d.other->value.sequence;
  KMR_ASSIGN_OR_RETURN(IndirectData ind,
                       parse_indirect_data(Bytes(ASN1_STRING_get0_data(seq), static_cast<std::size_t>(ASN1_STRING_length(seq)))));
  info.digest = EVP_MD_get0_name(ind.md);
  KMR_ASSIGN_OR_RETURN(ByteVector hash, image_hash(image, *layout, ind.md));
  info.digest_matches = hash.size() == ind.digest.size() && std::equal(hash.begin(), hash.end(), ind.digest.begin());

  STACK_OF(X509)* signers = PKCS7_get0_signers(p7.get(), nullptr, 0);
  X509* signer = signers && sk_X509_num(signers) == 1 ? sk_X509_value(signers, 0) : nullptr;
  if (signer != nullptr) {
    info.signer = x509_name_line(X509_get_subject_name(signer));
    info.signer_issuer = x509_name_line(X509_get_issuer_name(signer));
  }
  // The content goes in behind a buffer BIO: given a memory BIO directly,
  // OpenSSL 3.0's PKCS7_verify copies it into a temporary one that it leaks
  // when the signature is malformed (found by the fuzzer).
  std::unique_ptr<BIO, BioFree> content(BIO_new(BIO_f_buffer()));
  if (content) {
    BIO* mem = BIO_new_mem_buf(ind.content_value.data(), static_cast<int>(ind.content_value.size()));
    if (mem == nullptr) content.reset();
    else BIO_push(content.get(), mem);
  }
  std::unique_ptr<X509_STORE, StoreFree> empty(X509_STORE_new());
  info.signature_valid = signer != nullptr &&
                         PKCS7_verify(p7.get(), nullptr, empty.get(), content.get(), nullptr, PKCS7_NOVERIFY) == 1;
  const std::string sig_reason = openssl_reason();
  info.chain_trusted = signer != nullptr && chain_to(signer, p7->d.sign->cert, trust);
  sk_X509_free(signers);
  info.verified = info.digest_matches && info.signature_valid && info.chain_trusted;
  if (!info.digest_matches) {
    info.reason = "image hash differs from the signed digest";
  } else if (signer == nullptr) {
    info.reason = "no unique signer certificate in the signature";
  } else if (!info.signature_valid) {
    info.reason = "signature does not verify" + (sig_reason.empty() ? std::string() : ": " + sig_reason);
  } else if (!info.chain_trusted) {
    info.reason = trust.size() == 0 ? "no trusted certificate given (--keyring)"
                                    : "signer does not chain to a trusted certificate";
  }
  return std::optional<AuthenticodeInfo>(std::move(info));
}

}  // namespace kmr::kmod
