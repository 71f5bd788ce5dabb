#include "rebuilder/distro/kernel_layout.h"

#include <future>
#include <set>
#include <unordered_map>

#include "rebuilder/archive/decompress.h"
#include "rebuilder/kmod/bzimage.h"

namespace kmr::distro {

namespace {

constexpr std::uint64_t kMaxModuleBytes = 512ull << 20;
constexpr std::uint64_t kMaxImageBytes = 1ull << 30;
constexpr std::uint64_t kMaxMetadataBytes = 64ull << 20;

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// "zst"/"xz"/"gz"/"none" when `name` is a module file name, else "".
std::string module_compression(std::string_view name) {
  if (ends_with(name, ".ko")) return "none";
  if (ends_with(name, ".ko.zst")) return "zst";
  if (ends_with(name, ".ko.xz")) return "xz";
  if (ends_with(name, ".ko.gz")) return "gz";
  return "";
}

std::string strip_compression(std::string_view p) {
  for (std::string_view s : {".zst", ".xz", ".gz"}) {
    if (ends_with(p, s)) return std::string(p.substr(0, p.size() - s.size()));
  }
  return std::string(p);
}

struct ModPath {
  std::string dir;      // ".../lib/modules/<rel>"
  std::string release;  // <rel>
  std::string rest;     // path below it
};

std::optional<ModPath> split_modules_path(const std::string& p) {
  std::size_t at = std::string::npos;
  if (p.rfind("lib/modules/", 0) == 0) at = 0;
  else if (p.rfind("usr/lib/modules/", 0) == 0) at = 4;
  if (at == std::string::npos) return std::nullopt;
  const std::size_t rel_start = at + 12;
  const std::size_t slash = p.find('/', rel_start);
  ModPath m;
  m.release = p.substr(rel_start, slash == std::string::npos ? std::string::npos : slash - rel_start);
  m.dir = p.substr(0, slash);
  m.rest = slash == std::string::npos ? "" : p.substr(slash + 1);
  if (m.release.empty()) return std::nullopt;
  return m;
}

bool is_x86_64_elf(Bytes b) {
  return b.size() >= 20 && b[0] == 0x7f && b[1] == 'E' && b[2] == 'L' && b[3] == 'F' && b[4] == 2 && b[5] == 1 &&
         b[18] == 62 && b[19] == 0;
}

}  // namespace

namespace {
// The first bytes of a bzImage payload, decompressing no more than needed.
Result<ByteVector> payload_head(Bytes image, const std::string& path, archive::Codec* codec) {
  KMR_ASSIGN_OR_RETURN(auto h, kmod::parse_bzimage_header(image, path));
  const Bytes payload = image.subspan(h.payload_start, h.payload_length);
  *codec = archive::detect_codec(payload.first(std::min<std::size_t>(payload.size(), 64)));
  ByteVector head;
  if (*codec == archive::Codec::kNone) {
    head.assign(payload.begin(), payload.begin() + static_cast<std::ptrdiff_t>(std::min<std::size_t>(payload.size(), 64)));
    return head;
  }
  archive::DecompressOptions o;
  o.allow_trailing_data = true;
  o.max_output = 1ull << 30;
  KMR_ASSIGN_OR_RETURN(auto dec, archive::Decompressor::create(*codec, o));
  static constexpr std::string_view kEnough = "enough";
  auto sink = [&](Bytes b) -> Result<void> {
    head.insert(head.end(), b.begin(), b.begin() + static_cast<std::ptrdiff_t>(std::min<std::size_t>(b.size(), 64)));
    if (head.size() >= 64) return internal_error(std::string(kEnough));
    return ok();
  };
  for (std::size_t off = 0; off < payload.size() && head.size() < 64; off += 16384) {
    auto r = dec->update(payload.subspan(off, std::min<std::size_t>(16384, payload.size() - off)), sink);
    if (!r) {
      if (r.error().message() == kEnough) break;
      return Error(r.error().code(), path + ": payload: " + r.error().message());
    }
  }
  return head;
}
}  // namespace

ImageInfo analyse_image(const std::string& path, Bytes data, bool find_root) {
  ImageInfo info;
  info.path = path;
  info.root_searched = find_root;
  if (kmod::is_bzimage(data) && !find_root) {
    info.kind = "bzimage";
    archive::Codec codec = archive::Codec::kNone;
    auto head = payload_head(data, path, &codec);
    if (!head) {
      info.error = head.error().to_string();
      return info;
    }
    info.payload_codec = std::string(archive::codec_name(codec));
    info.payload_is_x86_64_elf = is_x86_64_elf(*head);
    return info;
  }
  if (!find_root) {
    info.kind = data.size() >= 4 && data[0] == 0x7f && data[1] == 'E' ? "elf" : "other";
    return info;
  }
  if (kmod::is_bzimage(data)) {
    info.kind = "bzimage";
    auto payload = kmod::extract_bzimage_payload(data, path, kMaxImageBytes);
    if (!payload) {
      info.error = payload.error().to_string();
      return info;
    }
    info.payload_codec = std::string(archive::codec_name(payload->codec));
    info.payload_is_x86_64_elf = is_x86_64_elf(payload->vmlinux);
    auto root = kmod::root_from_image(payload->vmlinux, path);
    if (root) {
      root->source = "bzimage-" + info.payload_codec;
      info.root = *root;
    } else {
      info.error = root.error().to_string();
    }
    return info;
  }
  info.kind = data.size() >= 4 && data[0] == 0x7f && data[1] == 'E' ? "elf" : "other";
  auto root = kmod::root_from_image(data, path);
  if (root) {
    info.root = *root;
    if (info.kind == "other" && root->compression != "none") info.kind = "compressed-elf";
  } else {
    info.error = root.error().to_string();
  }
  return info;
}

struct LayoutCollector::Impl {
  KernelLayout layout;
  std::map<std::string, std::uint64_t> release_modules;  // release -> module count
  std::string image_release;
  std::shared_ptr<ByteVector> image_data;
  std::string image_path;
  std::shared_ptr<ByteVector> vmlinux_data;
  bool full_image_analysis = false;
  std::vector<std::string> errors;
  ByteVector scratch;
};

LayoutCollector::LayoutCollector() : impl_(std::make_unique<Impl>()) {}
LayoutCollector::~LayoutCollector() = default;

void LayoutCollector::set_full_image_analysis(bool full) { impl_->full_image_analysis = full; }

archive::Visitor LayoutCollector::visitor(std::string what) {
  return [this, what](const archive::Entry& e, archive::MemberStream& s) -> Result<void> { return visit(what, e, s); };
}

Result<void> LayoutCollector::visit(const std::string& what, const archive::Entry& e, archive::MemberStream& s) {
  using archive::EntryType;
  if (e.type != EntryType::kFile) return ok();
  KernelLayout& L = impl_->layout;
  const std::string& p = e.path;
  const std::string base = p.substr(p.rfind('/') == std::string::npos ? 0 : p.rfind('/') + 1);

  auto start_image = [&](std::shared_ptr<ByteVector>& slot, std::string& slot_path, const std::string& kind) -> Result<void> {
    if (slot) {
      L.warnings.push_back(what + ": second " + kind + " '" + p + "' ignored");
      return ok();
    }
    ++kernel_members_;
    auto r = s.read_all(kMaxImageBytes);
    if (!r) return Error(r.error().code(), what + ": " + p + ": " + r.error().message());
    slot = std::make_shared<ByteVector>(std::move(*r));
    slot_path = p;
    return ok();
  };

  if (p == ".PKGINFO" || p == ".BUILDINFO" || p == ".MTREE" ||
      (p.rfind("usr/share/doc/", 0) == 0 && base == "SOURCE")) {
    auto r = s.read_all(kMaxMetadataBytes);
    if (!r) return Error(r.error().code(), what + ": " + p + ": " + r.error().message());
    metadata_[base] = std::string(r->begin(), r->end());
    return ok();
  }

  if (auto m = split_modules_path(p)) {
    if (m->rest.rfind("build/", 0) == 0 || m->rest.rfind("source/", 0) == 0) {
      if (m->rest == "build/vmlinux") {
        L.vmlinux_path = p;
        return start_image(impl_->vmlinux_data, L.vmlinux_path, "vmlinux");
      }
      return ok();
    }
    if (m->rest == "vmlinuz") {
      impl_->image_release = m->release;
      return start_image(impl_->image_data, impl_->image_path, "image");
    }
    if (m->rest == "vmlinux.xz" || m->rest == "vmlinux.gz" || m->rest == "vmlinux") {
      L.vmlinux_path = p;
      return start_image(impl_->vmlinux_data, L.vmlinux_path, "vmlinux");
    }
    if (m->rest == "modules.order") {
      auto r = s.read_all(kMaxMetadataBytes);
      if (!r) return Error(r.error().code(), what + ": " + p + ": " + r.error().message());
      L.has_modules_order = true;
      ++kernel_members_;
      L.modules_order.clear();
      std::string_view text = as_string_view(*r);
      while (!text.empty()) {
        const std::size_t nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
        if (!line.empty()) L.modules_order.emplace_back(line);
      }
      if (L.modules_dir.empty()) L.modules_dir = m->dir;
      return ok();
    }
    const std::string comp = module_compression(base);
    if (comp.empty()) return ok();
    ++impl_->release_modules[m->release];
    ++kernel_members_;
    if (L.modules_dir.empty() || L.modules_dir.size() > m->dir.size()) L.modules_dir = m->dir;
    ModuleInfo mod;
    mod.path = p;
    mod.compression = comp;
    // One reused buffer: no allocation or page faults per module.
    ByteVector& raw = impl_->scratch;
    raw.clear();
    for (;;) {
      auto b = s.next();
      if (!b) return Error(b.error().code(), what + ": " + p + ": " + b.error().message());
      if (b->empty()) break;
      if (raw.size() + b->size() > kMaxModuleBytes) {
        return limit_exceeded(what + ": " + p + ": module larger than " + std::to_string(kMaxModuleBytes) + " bytes");
      }
      raw.insert(raw.end(), b->begin(), b->end());
    }
    ByteVector plain;
    Bytes bytes = raw;
    if (comp != "none") {
      auto d = archive::decompress_all(raw, kMaxModuleBytes);
      if (!d) return Error(d.error().code(), what + ": " + p + ": " + d.error().message());
      plain = std::move(*d);
      bytes = plain;
    }
    mod.size = bytes.size();
    auto t = kmod::parse_trailer(bytes, p);
    if (!t) return Error(t.error().code(), what + ": " + t.error().message());
    mod.trailer = t->kind;
    if (t->kind == kmod::TrailerKind::kMerkle && t->proof) {
      mod.proof = t->proof;
      kmod::LeafHasher h(t->proof->pos);
      h.update(bytes.first(t->content_length));
      mod.leaf = h.finish();
    }
    L.modules.push_back(std::move(mod));
    return ok();
  }

  if (p.rfind("boot/vmlinuz-", 0) == 0) {
    impl_->image_release = p.substr(13);
    return start_image(impl_->image_data, impl_->image_path, "image");
  }
  if (p.rfind("boot/vmlinux-", 0) == 0) {
    L.vmlinux_path = p;
    return start_image(impl_->vmlinux_data, L.vmlinux_path, "vmlinux");
  }
  // Nix outputs: the image and vmlinux at the top of the output.
  if (p == "bzImage" || p == "Image" || p == "zImage" || p == "vmlinuz") {
    return start_image(impl_->image_data, impl_->image_path, "image");
  }
  if (p == "vmlinux") {
    L.vmlinux_path = p;
    return start_image(impl_->vmlinux_data, L.vmlinux_path, "vmlinux");
  }
  return ok();
}

Result<KernelLayout> LayoutCollector::finish() {
  KernelLayout& L = impl_->layout;
  // The module-hashes root is searched (full image decompression) unless
  // every module carries a PKCS#7 signature: then there is no proof to check.
  bool need_root = impl_->full_image_analysis || L.modules.empty();
  for (const auto& m : L.modules) need_root |= m.trailer != kmod::TrailerKind::kPkcs7;
  std::future<ImageInfo> image_job, vmlinux_job;
  if (impl_->image_data) {
    image_job = std::async(std::launch::async, [d = impl_->image_data, path = impl_->image_path, need_root]() {
      return analyse_image(path, *d, need_root);
    });
  }
  if (impl_->vmlinux_data) {
    vmlinux_job = std::async(std::launch::async, [d = impl_->vmlinux_data, path = L.vmlinux_path, need_root]() {
      return analyse_image(path, *d, need_root);
    });
  }
  if (image_job.valid()) {
    L.image = image_job.get();
    if (!L.image->error.empty()) L.warnings.push_back("image: " + L.image->error);
  } else {
    L.image.reset();
  }
  if (vmlinux_job.valid()) {
    L.vmlinux = vmlinux_job.get();
    if (!L.vmlinux->error.empty()) L.warnings.push_back("vmlinux: " + L.vmlinux->error);
  }
  // Kernel release: the modules directory with the most modules, else the image name.
  std::uint64_t best = 0;
  for (const auto& [rel, n] : impl_->release_modules) {
    if (n > best) {
      best = n;
      L.kernel_release = rel;
    }
  }
  if (impl_->release_modules.size() > 1) L.warnings.push_back("modules for several kernel releases");
  if (L.kernel_release.empty()) {
    if (!impl_->image_release.empty()) {
      L.kernel_release = impl_->image_release;
    } else if (auto m = split_modules_path(L.modules_dir)) {
      L.kernel_release = m->release;
    }
  }
  return std::move(L);
}

std::map<std::string, std::uint64_t> KernelLayout::compression_counts() const {
  std::map<std::string, std::uint64_t> out = {{"zst", 0}, {"xz", 0}, {"gz", 0}, {"none", 0}};
  for (const auto& m : modules) ++out[m.compression];
  return out;
}

std::map<std::string, std::uint64_t> KernelLayout::trailer_counts() const {
  std::map<std::string, std::uint64_t> out = {{"merkle", 0}, {"pkcs7", 0}, {"none", 0}};
  for (const auto& m : modules) ++out[std::string(kmod::trailer_kind_name(m.trailer))];
  return out;
}

std::optional<ModuleHashesResult> KernelLayout::module_hashes() const {
  std::optional<kmod::MerkleRoot> root;
  if (image && image->root && image->root->present) root = image->root->root;
  if (!root && vmlinux && vmlinux->root && vmlinux->root->present) root = vmlinux->root->root;
  std::uint64_t merkle = 0;
  for (const auto& m : modules) merkle += m.proof.has_value();
  if (!root && merkle == 0) return std::nullopt;

  ModuleHashesResult r;
  auto problem = [&](std::string s) {
    if (r.problems.size() < 20) r.problems.push_back(std::move(s));
  };
  if (!root) {
    r.failed = merkle;
    problem("modules carry Merkle proofs but no image holds a module-hashes root");
    return r;
  }
  r.root = *root;
  if (image && vmlinux && image->root && vmlinux->root && image->root->present && vmlinux->root->present &&
      !(image->root->root == vmlinux->root->root)) {
    problem("image and vmlinux hold different roots");
  }
  // Position of each module in modules.order.
  std::unordered_map<std::string, std::uint32_t> order_pos;
  for (std::size_t i = 0; i < modules_order.size(); ++i) order_pos.emplace(modules_order[i], static_cast<std::uint32_t>(i));
  std::set<std::uint32_t> seen;
  for (const auto& m : modules) {
    if (!m.proof) {
      ++r.failed;
      problem(m.path + ": no Merkle proof (" + std::string(kmod::trailer_kind_name(m.trailer)) + ")");
      continue;
    }
    bool good = true;
    auto v = kmod::verify_proof(m.leaf, *m.proof, *root);
    if (!v) {
      good = false;
      problem(m.path + ": " + v.error().message());
    }
    if (!seen.insert(m.proof->pos).second) {
      good = false;
      problem(m.path + ": position " + std::to_string(m.proof->pos) + " used twice");
    }
    if (has_modules_order && !modules_dir.empty() && m.path.size() > modules_dir.size()) {
      const std::string rel = strip_compression(m.path.substr(modules_dir.size() + 1));
      auto it = order_pos.find(rel);
      if (it == order_pos.end()) {
        good = false;
        problem(m.path + ": not listed in modules.order");
      } else if (it->second != m.proof->pos) {
        good = false;
        problem(m.path + ": proof position " + std::to_string(m.proof->pos) + " but modules.order position " +
                std::to_string(it->second));
      }
    }
    good ? ++r.verified : ++r.failed;
  }
  if (has_modules_order && kmod::levels_for(modules_order.size()) != root->levels) {
    problem("root has " + std::to_string(root->levels) + " levels but modules.order lists " +
            std::to_string(modules_order.size()) + " modules");
    r.ok = false;
    return r;
  }
  r.ok = r.failed == 0 && r.problems.empty();
  return r;
}

}  // namespace kmr::distro
