// ELF, kernel-module and bzImage comparators.
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
#include "rebuilder/kmod/bzimage.h"
#include "rebuilder/kmod/elf.h"
#include "rebuilder/kmod/trailer.h"
#include "rebuilder/kmod/trailer_format.h"

namespace kmr::compare {

namespace {

constexpr std::string_view kModuleMagic = kmod::kSignatureMarker;
constexpr std::uint64_t kMaxDisassembleBytes = 16ull << 20;
constexpr std::uint64_t kShfExecinstr = 0x4;
constexpr std::uint64_t kShfStrings = 0x20;
constexpr std::uint32_t kShtStrtab = kmod::kShtStrtab;

bool is_elf(Bytes d) { return kmod::is_elf(d); }

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

void section_view(Context& ctx, const kmod::ElfFile& ea, const kmod::ElfFile& eb, std::size_t ia, std::size_t ib,
                  DisasmFiles& files, Difference& node) {
  const auto& sa = ea.sections()[ia];
  Bytes da = ea.section_data(sa);
  Bytes db = eb.section_data(eb.sections()[ib]);
  if (sa.name == ".modinfo") {
    node.kind = "modinfo";
    set_text_diff(ctx, nul_strings_text(da), nul_strings_text(db), node);
    return;
  }
  if ((sa.flags & kShfExecinstr) != 0 && ctx.options().use_objdump && have_program("objdump") && !files.failed &&
      da.size() <= kMaxDisassembleBytes && db.size() <= kMaxDisassembleBytes && !ctx.timed_out()) {
    if (!files.a) {
      auto pa = ctx.write_temp(ea.data(), "a.elf");
      auto pb = ctx.write_temp(eb.data(), "b.elf");
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
std::vector<std::string> section_keys(const kmod::ElfFile& e) {
  std::vector<std::string> keys;
  std::map<std::string, int> seen;
  for (const auto& s : e.sections()) {
    int k = seen[s.name]++;
    keys.push_back(k == 0 ? s.name : s.name + "#" + std::to_string(k));
  }
  return keys;
}

std::string build_id_hex(const kmod::ElfFile& e) {
  auto id = e.build_id();
  if (!id || !*id) return "";
  return to_hex(Bytes(id->value().data(), id->value().size()));
}

Result<void> compare_elf_bytes(Context& ctx, Bytes a, Bytes b, Difference& out) {
  KMR_ASSIGN_OR_RETURN(auto ea, kmod::ElfFile::parse(a, "first"));
  KMR_ASSIGN_OR_RETURN(auto eb, kmod::ElfFile::parse(b, "second"));
  std::string ida = build_id_hex(ea);
  std::string idb = build_id_hex(eb);
  if (ida != idb) out.comments.push_back("GNU build-id: " + (ida.empty() ? "none" : ida) + " vs " + (idb.empty() ? "none" : idb));
  add_text_view(ctx, out, "file header", "elf-header", elf_file_header_text(ea), elf_file_header_text(eb));
  add_text_view(ctx, out, "program headers", "elf-program-headers", elf_program_headers_text(ea), elf_program_headers_text(eb));
  add_text_view(ctx, out, "section headers", "elf-section-headers", elf_section_headers_text(ea), elf_section_headers_text(eb));
  add_text_view(ctx, out, "symbols", "elf-symbols", elf_symbols_text(ea), elf_symbols_text(eb));
  add_text_view(ctx, out, "notes", "elf-notes", elf_notes_text(ea), elf_notes_text(eb));

  // Per section: hash both sides, describe only the differing ones.
  auto ka = section_keys(ea);
  auto kb = section_keys(eb);
  std::map<std::string, std::size_t> index_b;
  for (std::size_t j = 0; j < kb.size(); ++j) index_b[kb[j]] = j;
  std::map<std::string, std::size_t> index_a;
  for (std::size_t i = 0; i < ka.size(); ++i) index_a[ka[i]] = i;
  DisasmFiles files;
  for (std::size_t i = 1; i < ea.sections().size(); ++i) {
    const std::string& key = ka[i];
    const auto& sa = ea.sections()[i];
    auto it = index_b.find(key);
    Difference node;
    node.source1 = "section " + key;
    node.source2 = node.source1;
    node.kind = "elf-section";
    if (it == index_b.end()) {
      node.status = Status::kRemoved;
      node.source2 = "/dev/null";
      node.size1 = sa.size;
      node.comments.push_back("Section only in first");
      out.details.push_back(std::move(node));
      continue;
    }
    const auto& sb = eb.sections()[it->second];
    if (sa.type == kmod::kShtNobits && sb.type == kmod::kShtNobits) {
      if (sa.size != sb.size) {
        node.comments.push_back("NOBITS size " + std::to_string(sa.size) + " vs " + std::to_string(sb.size));
        out.details.push_back(std::move(node));
      }
      continue;
    }
    Bytes da = ea.section_data(sa);
    Bytes db = eb.section_data(sb);
    if (da.size() == db.size() && (da.empty() || std::memcmp(da.data(), db.data(), da.size()) == 0)) continue;
    node.size1 = da.size();
    node.size2 = db.size();
    node.sha256_1 = to_hex(sha256(da));
    node.sha256_2 = to_hex(sha256(db));
    if (ctx.timed_out()) {
      node.comments.push_back(kTimeoutComment);
    } else {
      section_view(ctx, ea, eb, i, it->second, files, node);
    }
    if (!node.empty()) out.details.push_back(std::move(node));
  }
  for (std::size_t j = 1; j < kb.size(); ++j) {
    if (index_a.count(kb[j]) == 0) {
      Difference node;
      node.source1 = "/dev/null";
      node.source2 = "section " + kb[j];
      node.kind = "elf-section";
      node.status = Status::kAdded;
      node.size2 = eb.sections()[j].size;
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
  std::string kind = "none";
  std::size_t content_len = 0;
  std::string text;
};

// The trailer as text lines, parsed by //rebuilder/kmod:trailer.
Trailer describe_trailer(Bytes d) {
  Trailer t;
  t.content_len = d.size();
  auto parsed = kmod::parse_trailer(d, "module");
  if (!parsed) {
    t.kind = "unparseable";
    t.text = "trailer: unparseable (" + parsed.error().to_string() + ")\n";
    return t;
  }
  const auto& p = *parsed;
  t.kind = std::string(kmod::trailer_kind_name(p.kind));
  t.content_len = static_cast<std::size_t>(p.content_length);
  t.text = "trailer: " + t.kind + "\n";
  if (p.kind == kmod::TrailerKind::kNone) return t;
  t.text += "signature info: algo " + std::to_string(p.sig.algo) + " hash " + std::to_string(p.sig.hash) + " id_type " +
            std::to_string(p.sig.id_type) + " sig_len " + std::to_string(p.sig.sig_len) + "\n";
  if (p.pkcs7) {
    t.text += "signer: " + p.pkcs7->signer + "\nkey id: " + p.pkcs7->key_id + "\ndigest: " + p.pkcs7->digest + "\n";
  }
  if (p.proof) {
    t.text += "position: " + std::to_string(p.proof->pos) + "\nlevels: " + std::to_string(p.proof->siblings.size()) + "\n";
    for (std::size_t i = 0; i < p.proof->siblings.size(); ++i) {
      t.text += "sibling[" + std::to_string(i) + "]: " + to_hex(Bytes(p.proof->siblings[i].data(), 32)) + "\n";
    }
  }
  t.text += "signature sha256: " + sha256_hex(p.blob) + "\n";
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
  auto h = kmod::parse_bzimage_header(d, "bzImage");
  if (h) {
    z.text = "boot protocol: " + std::to_string(h->protocol_version >> 8) + "." +
             std::to_string(h->protocol_version & 0xff) + "\n";
    z.text += "setup sectors: " + std::to_string(h->setup_sects) + "\n";
    z.payload_off = static_cast<std::size_t>(h->payload_start);
    z.payload_len = h->payload_length;
    z.have_payload = true;
    z.text += "payload: " + std::to_string(h->payload_length) + " bytes at offset " + std::to_string(h->payload_start) + "\n";
  } else {
    z.text = "setup header: " + h.error().to_string() + "\n";
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
    p.seek(dirs + std::uint64_t{4} * 8);
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
  if (name.ends_with(".ko")) return true;
  return d.size() >= kModuleMagic.size() &&
         std::memcmp(d.data() + d.size() - kModuleMagic.size(), kModuleMagic.data(), kModuleMagic.size()) == 0;
}

bool recognize_bzimage(Bytes d, std::string_view) { return kmod::is_bzimage(d); }

Result<void> compare_elf(Context& ctx, const Input& a, const Input& b, int, Difference& out) {
  return compare_elf_bytes(ctx, a.bytes(), b.bytes(), out);
}

Result<void> compare_module(Context& ctx, const Input& a, const Input& b, int, Difference& out) {
  Bytes da = a.bytes();
  Bytes db = b.bytes();
  Trailer ta = describe_trailer(da);
  Trailer tb = describe_trailer(db);
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
    const std::uint64_t cap = ctx.options().limits.max_member_bytes;
    auto xa = kmod::extract_bzimage_payload(a.bytes(), a.name, cap);
    auto xb = kmod::extract_bzimage_payload(b.bytes(), b.name, cap);
    if (xa && xb) {
      Input ia{"vmlinux (decompressed payload)", blob_from_vector(std::move(xa->vmlinux)), {}, {}};
      Input ib{"vmlinux (decompressed payload)", blob_from_vector(std::move(xb->vmlinux)), {}, {}};
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
