#include "rebuilder/kmod/module_sig.h"

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"
#include "rebuilder/kmod/elf.h"
#include "rebuilder/kmod/openssl_util.h"

namespace kmr::kmod {

namespace {

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct CmsFree {
  void operator()(CMS_ContentInfo* c) const { CMS_ContentInfo_free(c); }
};
struct BioFree {
  void operator()(BIO* b) const { BIO_free_all(b); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;

std::string serial_hex(const ASN1_INTEGER* serial) {
  if (serial == nullptr) return "";
  std::unique_ptr<BIGNUM, decltype(&BN_free)> bn(ASN1_INTEGER_to_BN(serial, nullptr), &BN_free);
  if (!bn) return "";
  ByteVector b(static_cast<std::size_t>(BN_num_bytes(bn.get())));
  BN_bn2bin(bn.get(), b.data());
  return to_hex(b);
}

// Parses exactly one DER certificate occupying all of `der`.
X509Ptr parse_der_exact(Bytes der) {
  const unsigned char* p = der.data();
  X509Ptr x(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  ERR_clear_error();
  if (!x || p != der.data() + der.size()) return nullptr;
  return x;
}

// Length of a DER SEQUENCE with a long-form length at `p` (30 81 xx or
// 30 82 xx xx), or 0 when the header is not one.
std::uint64_t der_sequence_length(Bytes b, std::size_t at) {
  if (at + 4 > b.size() || b[at] != 0x30) return 0;
  if (b[at + 1] == 0x82) return 4 + ((static_cast<std::uint64_t>(b[at + 2]) << 8) | b[at + 3]);
  if (b[at + 1] == 0x83 && at + 5 <= b.size()) {
    return 5 + ((static_cast<std::uint64_t>(b[at + 2]) << 16) | (static_cast<std::uint64_t>(b[at + 3]) << 8) | b[at + 4]);
  }
  return 0;
}

}  // namespace

std::string openssl_reason() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

std::string x509_name_line(const X509_NAME* n) {
  if (n == nullptr) return "";
  std::unique_ptr<BIO, BioFree> b(BIO_new(BIO_s_mem()));
  if (!b) return "";
  X509_NAME_print_ex(b.get(), n, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
  char* p = nullptr;
  const long len = BIO_get_mem_data(b.get(), &p);
  return len > 0 ? std::string(p, static_cast<std::size_t>(len)) : std::string();
}

// ---- CertificateSet ---------------------------------------------------------

struct CertificateSet::Impl {
  std::vector<CertificateInfo> info;
  std::vector<X509Ptr> x509;
  std::set<std::string> seen;
};

CertificateSet::CertificateSet() : impl_(std::make_unique<Impl>()) {}
CertificateSet::~CertificateSet() = default;
CertificateSet::CertificateSet(CertificateSet&&) noexcept = default;
CertificateSet& CertificateSet::operator=(CertificateSet&&) noexcept = default;

Result<void> CertificateSet::add_der(Bytes der, const std::string& source, std::optional<std::uint64_t> offset) {
  X509Ptr x = parse_der_exact(der);
  if (!x) return malformed(source + ": not a DER X.509 certificate");
  CertificateInfo ci;
  ci.sha256 = sha256_hex(der);
  if (!impl_->seen.insert(ci.sha256).second) return ok();
  ci.subject = x509_name_line(X509_get_subject_name(x.get()));
  ci.issuer = x509_name_line(X509_get_issuer_name(x.get()));
  ci.serial = serial_hex(X509_get0_serialNumber(x.get()));
  ci.source = source;
  ci.der.assign(der.begin(), der.end());
  ci.offset = offset;
  impl_->info.push_back(std::move(ci));
  impl_->x509.push_back(std::move(x));
  return ok();
}

const std::vector<CertificateInfo>& CertificateSet::info() const { return impl_->info; }
std::size_t CertificateSet::size() const { return impl_->x509.size(); }
void* CertificateSet::x509(std::size_t i) const { return impl_->x509.at(i).get(); }

// ---- certificate files ------------------------------------------------------

std::string certificate_pem(Bytes der) {
  X509Ptr x = parse_der_exact(der);
  std::unique_ptr<BIO, BioFree> b(BIO_new(BIO_s_mem()));
  if (!x || !b || PEM_write_bio_X509(b.get(), x.get()) != 1) return "";
  char* p = nullptr;
  const long len = BIO_get_mem_data(b.get(), &p);
  return len > 0 ? std::string(p, static_cast<std::size_t>(len)) : std::string();
}

bool looks_like_certificates(Bytes data) {
  const std::string_view s = as_string_view(data.first(std::min<std::size_t>(data.size(), 1 << 16)));
  if (s.find("-----BEGIN CERTIFICATE-----") != std::string_view::npos) return true;
  const std::uint64_t n = der_sequence_length(data, 0);
  return n != 0 && n == data.size() && parse_der_exact(data) != nullptr;
}

Result<std::vector<ByteVector>> parse_certificate_file(Bytes data, const std::string& what) {
  std::vector<ByteVector> out;
  if (as_string_view(data).find("-----BEGIN CERTIFICATE-----") != std::string_view::npos) {
    if (data.size() > (64u << 20)) return limit_exceeded(what + ": certificate file larger than 64 MiB");
    std::unique_ptr<BIO, BioFree> b(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
    for (std::size_t n = 0; n < 4096; ++n) {
      X509Ptr x(PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr));
      if (!x) break;
      unsigned char* der = nullptr;
      const int len = i2d_X509(x.get(), &der);
      if (len <= 0) break;
      out.emplace_back(der, der + len);
      OPENSSL_free(der);
    }
    ERR_clear_error();
    if (out.empty()) return malformed(what + ": no readable PEM certificate");
    return out;
  }
  if (!parse_der_exact(data)) return malformed(what + ": neither PEM certificates nor one DER X.509 certificate");
  out.emplace_back(data.begin(), data.end());
  return out;
}

// ---- certificates built into the image -------------------------------------

namespace {

// File offset of virtual address `addr` through the section headers.
std::optional<std::uint64_t> file_offset_of(const ElfFile& elf, std::uint64_t addr, std::uint64_t len) {
  for (const auto& s : elf.sections()) {
    if (s.type == kShtNobits || s.type == kShtNull || s.addr == 0) continue;
    if (addr >= s.addr && addr - s.addr <= s.size && len <= s.size - (addr - s.addr)) {
      return s.offset + (addr - s.addr);
    }
  }
  return std::nullopt;
}

std::uint64_t read_uint(Bytes b, std::uint64_t off, bool is64, bool le) {
  const std::size_t n = is64 ? 8 : 4;
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint64_t byte = b[off + (le ? i : n - 1 - i)];
    v |= byte << (8 * i);
  }
  return v;
}

// Concatenated DER certificates in [begin, end).
Result<void> take_list(Bytes image, std::uint64_t begin, std::uint64_t end, CertificateSet& set,
                       const EmbeddedCertScanLimits& limits, const std::string& what) {
  std::uint64_t at = begin;
  while (at + 4 <= end && set.size() < limits.max_certificates) {
    const std::uint64_t n = der_sequence_length(image, at);
    if (n == 0) break;  // padding or the reserved extra-certificate area
    if (n > limits.max_certificate_size || n > end - at) {
      return malformed(what + ": system certificate list: entry at " + std::to_string(at) + " overruns the list");
    }
    auto r = set.add_der(image.subspan(at, n), "embedded", at);
    if (!r) return malformed(what + ": system certificate list: entry at " + std::to_string(at) + " is not a certificate");
    at += n;
  }
  return ok();
}

Result<bool> certificates_by_symbol(const ElfFile& elf, CertificateSet& set, const EmbeddedCertScanLimits& limits,
                                    const std::string& what) {
  auto syms = elf.symbols(".symtab");
  if (!syms || syms->empty()) return false;
  std::optional<std::uint64_t> start, end, size_at;
  for (const auto& s : *syms) {
    if (s.name == "system_certificate_list" || s.name == "__cert_list_start") start = s.value;
    if (s.name == "__cert_list_end") end = s.value;
    if (s.name == "system_certificate_list_size") size_at = s.value;
  }
  if (!start) return false;
  const Bytes img = elf.data();
  std::uint64_t length = 0;
  if (end && *end >= *start) {
    length = *end - *start;
  } else if (size_at) {
    const std::uint64_t w = elf.is64() ? 8 : 4;
    auto off = file_offset_of(elf, *size_at, w);
    if (!off) return malformed(what + ": system_certificate_list_size outside the file's sections");
    length = read_uint(img, *off, elf.is64(), elf.little_endian());
  } else {
    return false;
  }
  if (length > (16u << 20)) return malformed(what + ": system certificate list of " + std::to_string(length) + " bytes");
  auto off = file_offset_of(elf, *start, length);
  if (!off) return malformed(what + ": system certificate list outside the file's sections");
  KMR_TRY(take_list(img, *off, *off + length, set, limits, what));
  return true;
}

void scan_region(Bytes image, std::uint64_t begin, std::uint64_t end, CertificateSet& set,
                 const EmbeddedCertScanLimits& limits, std::uint64_t& tried) {
  std::uint64_t at = begin;
  while (at + 8 <= end && set.size() < limits.max_certificates && tried < limits.max_candidates) {
    const void* hit = std::memchr(image.data() + at, 0x30, end - at - 7);
    if (hit == nullptr) return;
    at = static_cast<std::uint64_t>(static_cast<const std::uint8_t*>(hit) - image.data());
    const std::uint64_t n = der_sequence_length(image, at);
    // Certificate ::= SEQUENCE { tbsCertificate SEQUENCE, ... }: both long form.
    const std::uint64_t inner = n ? der_sequence_length(image, at + (image[at + 1] == 0x83 ? 5 : 4)) : 0;
    if (n >= 64 && n <= limits.max_certificate_size && n <= end - at && inner != 0 && inner < n) {
      ++tried;
      if (parse_der_exact(image.subspan(at, n)) && set.add_der(image.subspan(at, n), "embedded", at)) {
        at += n;
        continue;
      }
    }
    ++at;
  }
}

}  // namespace

Result<EmbeddedCertificates> find_embedded_certificates(Bytes image, const std::string& what,
                                                        const EmbeddedCertScanLimits& limits) {
  CertificateSet set;
  EmbeddedCertificates out;
  std::optional<ElfFile> elf;
  if (is_elf(image)) {
    auto e = ElfFile::parse(image, what);
    if (!e) return std::move(e).error();
    elf = std::move(*e);
  }
  if (elf) {
    KMR_ASSIGN_OR_RETURN(bool by_symbol, certificates_by_symbol(*elf, set, limits, what));
    if (by_symbol) out.method = "symbol";
  }
  if (out.method.empty()) {
    std::uint64_t tried = 0;
    bool scanned_sections = false;
    if (elf) {
      for (const char* name : {".init.data", ".init.rodata", ".rodata", ".data"}) {
        for (const auto& s : elf->sections()) {
          if (s.name != name || s.type == kShtNobits) continue;
          scanned_sections = true;
          scan_region(image, s.offset, s.offset + s.size, set, limits, tried);
        }
      }
    }
    if (!scanned_sections) scan_region(image, 0, image.size(), set, limits, tried);
    if (set.size() > 0) out.method = "scan";
  }
  out.certificates = set.info();
  return out;
}

// ---- module signatures ------------------------------------------------------

struct PendingSignature::Impl {
  std::unique_ptr<CMS_ContentInfo, CmsFree> cms;
  std::unique_ptr<BIO, BioFree> digest;  // md BIO over a null sink, fed the content
  std::string signer;                    // issuer + serial, for messages
};

PendingSignature::PendingSignature() : impl_(std::make_unique<Impl>()) {}
PendingSignature::~PendingSignature() = default;
PendingSignature::PendingSignature(PendingSignature&&) noexcept = default;
PendingSignature& PendingSignature::operator=(PendingSignature&&) noexcept = default;

Result<PendingSignature> PendingSignature::prepare(Bytes pkcs7_der, Bytes content) {
  PendingSignature p;
  const unsigned char* ptr = pkcs7_der.data();
  p.impl_->cms.reset(d2i_CMS_ContentInfo(nullptr, &ptr, static_cast<long>(pkcs7_der.size())));
  if (!p.impl_->cms) return malformed("PKCS#7 signature does not parse: " + openssl_reason());
  CMS_ContentInfo* cms = p.impl_->cms.get();
  if (OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed) return malformed("PKCS#7 blob is not SignedData");
  ASN1_OCTET_STRING** econtent = CMS_get0_content(cms);
  if (econtent != nullptr && *econtent != nullptr) return malformed("PKCS#7 signature is not detached");
  STACK_OF(CMS_SignerInfo)* sis = CMS_get0_SignerInfos(cms);
  if (sis == nullptr || sk_CMS_SignerInfo_num(sis) != 1) {
    return malformed("PKCS#7 signature has " + std::to_string(sis ? sk_CMS_SignerInfo_num(sis) : 0) +
                     " signers, expected 1");
  }
  CMS_SignerInfo* si = sk_CMS_SignerInfo_value(sis, 0);
  ASN1_OCTET_STRING* keyid = nullptr;
  X509_NAME* issuer = nullptr;
  ASN1_INTEGER* serial = nullptr;
  if (CMS_SignerInfo_get0_signer_id(si, &keyid, &issuer, &serial) == 1) {
    p.impl_->signer = keyid ? "key id " + to_hex(Bytes(ASN1_STRING_get0_data(keyid),
                                                       static_cast<std::size_t>(ASN1_STRING_length(keyid))))
                            : "issuer \"" + x509_name_line(issuer) + "\" serial " + serial_hex(serial);
  }
  X509_ALGOR* dig = nullptr;
  CMS_SignerInfo_get0_algs(si, nullptr, nullptr, &dig, nullptr);
  const ASN1_OBJECT* obj = nullptr;
  if (dig != nullptr) X509_ALGOR_get0(&obj, nullptr, nullptr, dig);
  const EVP_MD* md = obj ? EVP_get_digestbyobj(obj) : nullptr;
  if (md == nullptr) return malformed("PKCS#7 signature uses an unknown digest algorithm");
  std::unique_ptr<BIO, BioFree> chain(BIO_new(BIO_f_md()));
  BIO* sink = BIO_new(BIO_s_null());
  if (!chain || sink == nullptr || BIO_set_md(chain.get(), md) <= 0) {
    BIO_free(sink);
    return internal_error("cannot set up the digest: " + openssl_reason());
  }
  BIO_push(chain.get(), sink);
  for (std::size_t off = 0; off < content.size();) {
    const int n = static_cast<int>(std::min<std::size_t>(content.size() - off, 1u << 30));
    if (BIO_write(chain.get(), content.data() + off, n) != n) return internal_error("digest failed: " + openssl_reason());
    off += static_cast<std::size_t>(n);
  }
  p.impl_->digest = std::move(chain);
  return p;
}

std::string PendingSignature::verify(const CertificateSet& certs) const {
  if (!impl_->cms) return "no signature";
  CMS_SignerInfo* si = sk_CMS_SignerInfo_value(CMS_get0_SignerInfos(impl_->cms.get()), 0);
  X509* signer = nullptr;
  for (std::size_t i = 0; i < certs.size(); ++i) {
    X509* x = static_cast<X509*>(certs.x509(i));
    if (CMS_SignerInfo_cert_cmp(si, x) == 0) {
      signer = x;
      break;
    }
  }
  if (signer == nullptr) {
    return "signer (" + impl_->signer + ") is none of the " + std::to_string(certs.size()) + " trusted certificate(s)";
  }
  CMS_SignerInfo_set1_signer_cert(si, signer);
  if (CMS_signed_get_attr_count(si) >= 0 && CMS_SignerInfo_verify(si) <= 0) {
    return "signed attributes do not verify: " + openssl_reason();
  }
  if (CMS_SignerInfo_verify_content(si, impl_->digest.get()) <= 0) {
    const std::string why = openssl_reason();
    return "signature does not match the module content" + (why.empty() ? std::string() : " (" + why + ")");
  }
  ERR_clear_error();
  return "";
}

}  // namespace kmr::kmod
