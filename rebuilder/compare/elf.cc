// ELF, kernel-module and bzImage comparators.
#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/objects.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cstring>
#include <map>

#include "rebuilder/base/byte_reader.h"
#include "rebuilder/base/checked_math.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"
#include "rebuilder/base/subprocess.h"
#include "rebuilder/compare/archive_members.h"
#include "rebuilder/compare/elf_view.h"
#include "rebuilder/compare/formats.h"

namespace kmr::compare {

namespace {

constexpr std::string_view kModuleMagic = "~Module signature appended~\n";
constexpr std::uint64_t kMaxDisassembleBytes = 16ull << 20;
constexpr std::uint64_t kShfExecinstr = 0x4;
constexpr std::uint64_t kShfStrings = 0x20;
constexpr std::uint32_t kShtStrtab = 3;

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool is_elf(Bytes d) { return d.size() >= 16 && d[0] == 0x7f && d[1] == 'E' && d[2] == 'L' && d[3] == 'F'; }

// Removes a temporary file when leaving scope.
class TempFile {
 public:
  TempFile(Context& ctx, std::string path) : ctx_(ctx), path_(std::move(path)) {}
  ~TempFile() { ctx_.remove_temp(path_); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  Context& ctx_;
  std::string path_;
};

// Lazily written copies of both sides for objdump.
struct DisasmFiles {
  std::unique_ptr<TempFile> a;
  std::unique_ptr<TempFile> b;
  bool failed = false;
};

Result<std::string> objdump_section(Context& ctx, const std::string& file, const std::string& section) {
  SubprocessOptions opt;
  opt.timeout = std::max(std::chrono::milliseconds(1000), std::min(ctx.remaining(), std::chrono::milliseconds(300000)));
  opt.output_cap = 64 << 20;
  KMR_ASSIGN_OR_RETURN(auto res, run_subprocess({"objdump", "--disassemble", "--reloc", "--no-show-raw-insn",
                                                 "--section=" + section, file}, opt));
  if (!res.success()) return internal_error("objdump " + res.describe() + ": " + res.err.substr(0, 200));
  // Drop the banner naming the temporary file.
  std::string out;
  for (auto line : split_lines(res.out)) {
    if (line.find(file) != std::string_view::npos) continue;
    out += line;
    out += '\n';
  }
  return out;
}

void section_view(Context& ctx, const ElfView& ea, const ElfView& eb, std::size_t ia, std::size_t ib,
                  DisasmFiles& files, Difference& node) {
  const auto& sa = ea.sections[ia];
  Bytes da = ea.section_bytes(ia);
  Bytes db = eb.section_bytes(ib);
  if (sa.name == ".modinfo") {
    node.kind = "modinfo";
    set_text_diff(ctx, nul_strings_text(da), nul_strings_text(db), node);
    return;
  }
  if ((sa.flags & kShfExecinstr) != 0 && ctx.options().use_objdump && have_program("objdump") && !files.failed &&
      da.size() <= kMaxDisassembleBytes && db.size() <= kMaxDisassembleBytes && !ctx.timed_out()) {
    if (!files.a) {
      auto pa = ctx.write_temp(ea.data, "a.elf");
      auto pb = ctx.write_temp(eb.data, "b.elf");
      if (pa) files.a = std::make_unique<TempFile>(ctx, *pa);
      if (pb) files.b = std::make_unique<TempFile>(ctx, *pb);
      files.failed = !pa || !pb;
    }
    if (!files.failed) {
      auto ta = objdump_section(ctx, files.a->path(), sa.name);
      auto tb = objdump_section(ctx, files.b->path(), sa.name);
      if (ta && tb) {
        node.kind = "disassembly";
        set_text_diff(ctx, *ta, *tb, node);
        if (!node.empty()) return;
        node.comments.push_back("Disassembly identical; raw bytes differ");
      } else {
        node.comments.push_back("objdump failed (" + (ta ? tb.error() : ta.error()).to_string() +
                                "); falling back to a binary comparison");
      }
    }
  }
  if (sa.type == kShtStrtab || (sa.flags & kShfStrings) != 0) {
    node.kind = "strings";
    set_text_diff(ctx, nul_strings_text(da), nul_strings_text(db), node);
    if (!node.empty()) return;
  }
  node.kind = "hexdump";
  add_hex_diff(ctx, da, db, node);
}

// Section key: name, with "#k" for the k-th duplicate.
std::map<std::string, std::size_t> section_keys(const ElfView& e) {
  std::map<std::string, std::size_t> keys;
  std::map<std::string, int> seen;
  for (std::size_t i = 1; i < e.sections.size(); ++i) {
    int k = seen[e.sections[i].name]++;
    keys[k == 0 ? e.sections[i].name : e.sections[i].name + "#" + std::to_string(k)] = i;
  }
  return keys;
}

Result<void> compare_elf_bytes(Context& ctx, Bytes a, Bytes b, Difference& out) {
  KMR_ASSIGN_OR_RETURN(ElfView ea, parse_elf(a));
  KMR_ASSIGN_OR_RETURN(ElfView eb, parse_elf(b));
  std::string ida = elf_build_id(ea);
  std::string idb = elf_build_id(eb);
  if (ida != idb) out.comments.push_back("GNU build-id: " + (ida.empty() ? "none" : ida) + " vs " + (idb.empty() ? "none" : idb));
  add_text_view(ctx, out, "file header", "elf-header", elf_file_header_text(ea), elf_file_header_text(eb));
  add_text_view(ctx, out, "program headers", "elf-program-headers", elf_program_headers_text(ea), elf_program_headers_text(eb));
  add_text_view(ctx, out, "section headers", "elf-section-headers", elf_section_headers_text(ea), elf_section_headers_text(eb));
  add_text_view(ctx, out, "symbols", "elf-symbols", elf_symbols_text(ea), elf_symbols_text(eb));
  add_text_view(ctx, out, "notes", "elf-notes", elf_notes_text(ea), elf_notes_text(eb));

  // Per section: hash both sides, describe only the differing ones.
  auto ka = section_keys(ea);
  auto kb = section_keys(eb);
  DisasmFiles files;
  for (std::size_t i = 1; i < ea.sections.size(); ++i) {
    std::string key;
    for (const auto& [k, idx] : ka) {
      if (idx == i) key = k;
    }
    const auto& sa = ea.sections[i];
    auto it = kb.find(key);
    Difference node;
    node.source1 = "section " + key;
    node.source2 = node.source1;
    node.kind = "elf-section";
    if (it == kb.end()) {
      node.status = Status::kRemoved;
      node.source2 = "/dev/null";
      node.size1 = sa.size;
      node.comments.push_back("Section only in first");
      out.details.push_back(std::move(node));
      continue;
    }
    const auto& sb = eb.sections[it->second];
    if (sa.type == kShtNobits && sb.type == kShtNobits) {
      if (sa.size != sb.size) {
        node.comments.push_back("NOBITS size " + std::to_string(sa.size) + " vs " + std::to_string(sb.size));
        out.details.push_back(std::move(node));
      }
      continue;
    }
    Bytes da = ea.section_bytes(i);
    Bytes db = eb.section_bytes(it->second);
    if (da.size() == db.size() && (da.empty() || std::memcmp(da.data(), db.data(), da.size()) == 0)) {
      if (sa.in_file && sb.in_file) continue;
    }
    node.size1 = da.size();
    node.size2 = db.size();
    node.sha256_1 = to_hex(sha256(da));
    node.sha256_2 = to_hex(sha256(db));
    if (!sa.in_file) node.comments.push_back("first: section is outside the file");
    if (!sb.in_file) node.comments.push_back("second: section is outside the file");
    if (ctx.timed_out()) {
      node.comments.push_back(kTimeoutComment);
    } else {
      section_view(ctx, ea, eb, i, it->second, files, node);
    }
    if (!node.empty()) out.details.push_back(std::move(node));
  }
  for (const auto& [k, idx] : kb) {
    if (ka.count(k) == 0) {
      Difference node;
      node.source1 = "/dev/null";
      node.source2 = "section " + k;
      node.kind = "elf-section";
      node.status = Status::kAdded;
      node.size2 = eb.sections[idx].size;
      node.comments.push_back("Section only in second");
      out.details.push_back(std::move(node));
    }
  }

  // Bytes no header or section covers (padding, appended data).
  auto ga = elf_uncovered_ranges(ea);
  auto gb = elf_uncovered_ranges(eb);
  ByteVector ca;
  ByteVector cb;
  for (auto [s, e] : ga) ca.insert(ca.end(), a.begin() + static_cast<long>(s), a.begin() + static_cast<long>(e));
  for (auto [s, e] : gb) cb.insert(cb.end(), b.begin() + static_cast<long>(s), b.begin() + static_cast<long>(e));
  if (ca != cb) {
    Difference node;
    node.source1 = "bytes outside sections";
    node.source2 = node.source1;
    node.kind = "elf-uncovered";
    node.size1 = ca.size();
    node.size2 = cb.size();
    node.comments.push_back(std::to_string(ga.size()) + " vs " + std::to_string(gb.size()) +
                            " uncovered ranges; shown concatenated");
    add_hex_diff(ctx, Bytes(ca.data(), ca.size()), Bytes(cb.data(), cb.size()), node);
    out.details.push_back(std::move(node));
  }
  return ok();
}

// ---- module trailer ----

struct Trailer {
  std::string kind = "none";  // none, pkcs7, merkle, unknown
  std::size_t content_len = 0;
  std::string text;
};

std::string pkcs7_signer(Bytes sig) {
  const unsigned char* p = sig.data();
  PKCS7* p7 = d2i_PKCS7(nullptr, &p, static_cast<long>(sig.size()));
  if (p7 == nullptr) return "signer: <unparseable PKCS#7>\n";
  std::string s;
  STACK_OF(PKCS7_SIGNER_INFO)* infos = PKCS7_type_is_signed(p7) ? PKCS7_get_signer_info(p7) : nullptr;
  int n = infos != nullptr ? sk_PKCS7_SIGNER_INFO_num(infos) : 0;
  for (int i = 0; i < n; ++i) {
    PKCS7_SIGNER_INFO* si = sk_PKCS7_SIGNER_INFO_value(infos, i);
    if (si == nullptr || si->issuer_and_serial == nullptr) continue;
    char name[512];
    X509_NAME_oneline(si->issuer_and_serial->issuer, name, sizeof name);
    s += std::string("signer: ") + name + "\n";
    BIGNUM* bn = ASN1_INTEGER_to_BN(si->issuer_and_serial->serial, nullptr);
    if (bn != nullptr) {
      char* hex = BN_bn2hex(bn);
      s += std::string("key id (serial): ") + hex + "\n";
      OPENSSL_free(hex);
      BN_free(bn);
    }
    X509_ALGOR* dig = nullptr;
    PKCS7_SIGNER_INFO_get0_algs(si, nullptr, &dig, nullptr);
    if (dig != nullptr) s += std::string("digest: ") + OBJ_nid2sn(OBJ_obj2nid(dig->algorithm)) + "\n";
  }
  PKCS7_free(p7);
  if (s.empty()) s = "signer: <none>\n";
  return s;
}

Trailer parse_trailer(Bytes d) {
  Trailer t;
  t.content_len = d.size();
  if (d.size() < kModuleMagic.size() + 12 ||
      std::memcmp(d.data() + d.size() - kModuleMagic.size(), kModuleMagic.data(), kModuleMagic.size()) != 0) {
    t.text = "trailer: none\n";
    return t;
  }
  std::size_t info_at = d.size() - kModuleMagic.size() - 12;
  ByteReader r(d.subspan(info_at, 12), "module signature info");
  std::uint8_t algo = r.u8();
  std::uint8_t hash = r.u8();
  std::uint8_t id_type = r.u8();
  std::uint8_t signer_len = r.u8();
  std::uint8_t key_id_len = r.u8();
  r.skip(3);
  std::uint32_t sig_len = r.u32be();
  if (sig_len > info_at) {
    t.kind = "unknown";
    t.text = "trailer: malformed (signature length " + std::to_string(sig_len) + " exceeds the module)\n";
    return t;
  }
  t.content_len = info_at - sig_len;
  Bytes sig = d.subspan(t.content_len, sig_len);
  t.text = "signature info: algo " + std::to_string(algo) + " hash " + std::to_string(hash) + " id_type " +
           std::to_string(id_type) + " signer_len " + std::to_string(signer_len) + " key_id_len " +
           std::to_string(key_id_len) + " sig_len " + std::to_string(sig_len) + "\n";
  if (id_type == 2) {
    t.kind = "pkcs7";
    t.text = "trailer: PKCS#7 signature\n" + t.text + pkcs7_signer(sig) + "signature sha256: " + sha256_hex(sig) + "\n";
  } else if (id_type == 3) {
    t.kind = "merkle";
    t.text = "trailer: Merkle proof\n" + t.text;
    if (sig_len < 4 || (sig_len - 4) % 32 != 0) {
      t.text += "proof: malformed length\n";
    } else {
      ByteReader pr(sig, "merkle proof");
      t.text += "position: " + std::to_string(pr.u32be()) + "\n";
      std::size_t levels = (sig_len - 4) / 32;
      t.text += "levels: " + std::to_string(levels) + "\n";
      for (std::size_t i = 0; i < levels; ++i) t.text += "sibling[" + std::to_string(i) + "]: " + to_hex(pr.bytes(32)) + "\n";
    }
  } else {
    t.kind = "unknown";
    t.text = "trailer: unknown id_type\n" + t.text + "signature sha256: " + sha256_hex(sig) + "\n";
  }
  return t;
}

// ---- bzImage ----

struct BzImage {
  std::string text;
  std::size_t payload_off = 0;
  std::size_t payload_len = 0;
  bool have_payload = false;
  ByteVector stripped;  // image without the Authenticode table, checksum zeroed
};

BzImage parse_bzimage(Bytes d) {
  BzImage z;
  ByteReader r(d, "bzImage");
  r.seek(0x1f1);
  std::uint32_t setup_sects = r.u8();
  if (setup_sects == 0) setup_sects = 4;
  r.seek(0x206);
  std::uint16_t version = r.u16le();
  r.seek(0x248);
  std::uint32_t poff = r.u32le();
  std::uint32_t plen = r.u32le();
  z.text = "boot protocol: " + std::to_string(version >> 8) + "." + std::to_string(version & 0xff) + "\n";
  z.text += "setup sectors: " + std::to_string(setup_sects) + "\n";
  std::uint64_t pm = (std::uint64_t{setup_sects} + 1) * 512;
  if (r.ok() && range_fits(pm + poff, plen, d.size())) {
    z.payload_off = static_cast<std::size_t>(pm + poff);
    z.payload_len = plen;
    z.have_payload = true;
    z.text += "payload: " + std::to_string(plen) + " bytes at offset " + std::to_string(z.payload_off) + "\n";
  } else {
    z.text += "payload: out of range\n";
  }
  z.stripped.assign(d.begin(), d.end());
  // PE/COFF (EFI stub): Authenticode certificate table = data directory 4.
  if (d.size() > 0x40 && d[0] == 'M' && d[1] == 'Z') {
    ByteReader p(d, "PE");
    p.seek(0x3c);
    std::uint32_t pe = p.u32le();
    p.seek(pe);
    std::uint32_t sig = p.u32le();
    p.skip(20);
    std::uint64_t opt = p.offset();
    std::uint16_t magic = p.u16le();
    std::uint64_t dirs = opt + (magic == 0x20b ? 112 : 96);
    p.seek(dirs + 4 * 8);
    std::uint32_t cert_off = p.u32le();
    std::uint32_t cert_len = p.u32le();
    if (p.ok() && sig == 0x4550) {
      if (cert_len != 0 && range_fits(cert_off, cert_len, d.size())) {
        z.text += "Authenticode signature: " + std::to_string(cert_len) + " bytes at offset " + std::to_string(cert_off) +
                  " (sha256 " + sha256_hex(d.subspan(cert_off, cert_len)) + "); stripped for the comparison\n";
        z.stripped.erase(z.stripped.begin() + cert_off, z.stripped.begin() + cert_off + cert_len);
        for (std::size_t k = 0; k < 8; ++k) z.stripped[static_cast<std::size_t>(dirs + 32 + k)] = 0;
      } else {
        z.text += "Authenticode signature: none\n";
      }
      for (std::size_t k = 0; k < 4 && opt + 64 + k < z.stripped.size(); ++k) z.stripped[static_cast<std::size_t>(opt + 64 + k)] = 0;
    }
  }
  return z;
}

}  // namespace

bool recognize_elf(Bytes d, std::string_view) { return is_elf(d); }

bool recognize_module(Bytes d, std::string_view name) {
  if (!is_elf(d)) return false;
  if (ends_with(name, ".ko")) return true;
  return d.size() >= kModuleMagic.size() &&
         std::memcmp(d.data() + d.size() - kModuleMagic.size(), kModuleMagic.data(), kModuleMagic.size()) == 0;
}

bool recognize_bzimage(Bytes d, std::string_view) {
  return d.size() > 0x250 && std::memcmp(d.data() + 0x202, "HdrS", 4) == 0;
}

Result<void> compare_elf(Context& ctx, const Input& a, const Input& b, int, Difference& out) {
  return compare_elf_bytes(ctx, a.bytes(), b.bytes(), out);
}

Result<void> compare_module(Context& ctx, const Input& a, const Input& b, int, Difference& out) {
  Bytes da = a.bytes();
  Bytes db = b.bytes();
  Trailer ta = parse_trailer(da);
  Trailer tb = parse_trailer(db);
  add_text_view(ctx, out, "module signature trailer", "module-trailer", ta.text, tb.text);
  Bytes ca = da.subspan(0, ta.content_len);
  Bytes cb = db.subspan(0, tb.content_len);
  if (ca.size() == cb.size() && std::memcmp(ca.data(), cb.data(), ca.size()) == 0) {
    out.comments.push_back("Module differs only in its signature trailer (" + ta.kind + " vs " + tb.kind + ")");
    return ok();
  }
  out.comments.push_back("Module content differs without its trailer (" + ta.kind + " vs " + tb.kind + ")");
  return compare_elf_bytes(ctx, ca, cb, out);
}

Result<void> compare_bzimage(Context& ctx, const Input& a, const Input& b, int depth, Difference& out) {
  BzImage za = parse_bzimage(a.bytes());
  BzImage zb = parse_bzimage(b.bytes());
  add_text_view(ctx, out, "bzImage header", "bzimage-header", za.text, zb.text);
  if (za.stripped == zb.stripped) {
    out.comments.push_back("Image differs only in its Authenticode signature");
    return ok();
  }
  if (za.have_payload && zb.have_payload) {
    Bytes pa = a.bytes().subspan(za.payload_off, za.payload_len);
    Bytes pb = b.bytes().subspan(zb.payload_off, zb.payload_len);
    auto xa = decompress_stream(ctx, pa, a.name + " payload");
    auto xb = decompress_stream(ctx, pb, b.name + " payload");
    if (xa && xb) {
      Input ia{"vmlinux (decompressed payload)", blob_from_vector(std::move(*xa)), {}, {}};
      Input ib{"vmlinux (decompressed payload)", blob_from_vector(std::move(*xb)), {}, {}};
      auto child = compare_inputs(ctx, ia, ib, depth + 1);
      if (child) {
        out.details.push_back(std::move(*child));
      } else {
        out.comments.push_back("Decompressed payloads identical");
      }
    } else {
      out.comments.push_back("payload not decompressed: " + (xa ? xb.error() : xa.error()).to_string());
    }
    // The setup code and everything outside the payload.
    ByteVector ra(za.stripped);
    ByteVector rb(zb.stripped);
    if (za.payload_off + za.payload_len <= ra.size()) std::fill(ra.begin() + static_cast<long>(za.payload_off), ra.begin() + static_cast<long>(za.payload_off + za.payload_len), 0);
    if (zb.payload_off + zb.payload_len <= rb.size()) std::fill(rb.begin() + static_cast<long>(zb.payload_off), rb.begin() + static_cast<long>(zb.payload_off + zb.payload_len), 0);
    if (ra != rb) {
      Difference node;
      node.source1 = "image outside the payload (signature stripped)";
      node.source2 = node.source1;
      node.kind = "hexdump";
      add_hex_diff(ctx, Bytes(ra.data(), ra.size()), Bytes(rb.data(), rb.size()), node);
      out.details.push_back(std::move(node));
    }
    return ok();
  }
  Difference node;
  node.source1 = "image (signature stripped)";
  node.source2 = node.source1;
  node.kind = "hexdump";
  add_hex_diff(ctx, Bytes(za.stripped.data(), za.stripped.size()), Bytes(zb.stripped.data(), zb.stripped.size()), node);
  out.details.push_back(std::move(node));
  return ok();
}

}  // namespace kmr::compare
