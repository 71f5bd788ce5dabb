#include "rebuilder/distro/kernel_layout.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <future>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

#include "rebuilder/archive/decompress.h"
#include "rebuilder/base/text.h"
#include "rebuilder/distro/package_layout.h"
#include "rebuilder/kmod/bzimage.h"
#include "rebuilder/kmod/parallel.h"

namespace kmr::distro {

namespace {

constexpr std::uint64_t kMaxModuleBytes = 512ull << 20;
constexpr std::uint64_t kMaxImageBytes = 1ull << 30;
constexpr std::uint64_t kMaxMetadataBytes = 64ull << 20;

// "zst"/"xz"/"gz"/"none" when `name` is a module file name, else "".
std::string module_compression(std::string_view name) {
  if (name.ends_with(".ko")) return "none";
  if (name.ends_with(".ko.zst")) return "zst";
  if (name.ends_with(".ko.xz")) return "xz";
  if (name.ends_with(".ko.gz")) return "gz";
  return "";
}

std::string strip_compression(std::string_view p) {
  for (std::string_view s : {".zst", ".xz", ".gz"}) {
    if (p.ends_with(s)) return std::string(p.substr(0, p.size() - s.size()));
  }
  return std::string(p);
}

// A program that links no distro's layout would find no image and no
// metadata in any package: an error, not an empty layout.
Result<void> require_layouts(const std::string& where) {
  if (!registered_layouts().empty()) return ok();
  return internal_error(where + ": no package layout is registered (link //rebuilder/distros:layouts)");
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

namespace {

void add_certificates(ImageInfo& info, Bytes decompressed) {
  auto certs = kmod::find_embedded_certificates(decompressed, info.path);
  if (!certs) {
    if (info.error.empty()) info.error = certs.error().to_string();
    return;
  }
  info.certificates = std::move(certs->certificates);
  info.certificates_method = certs->method;
  info.build_identity = kmod::find_build_identity(decompressed);
}

void add_authenticode(ImageInfo& info, Bytes data, const kmod::CertificateSet* trust) {
  static const kmod::CertificateSet kNone;
  auto a = kmod::check_authenticode(data, trust ? *trust : kNone, info.path);
  if (!a) {
    if (info.error.empty()) info.error = a.error().to_string();
    return;
  }
  info.authenticode = std::move(*a);
}

}  // namespace

ImageInfo analyse_image(const std::string& path, Bytes data, bool find_root, const kmod::CertificateSet* trust) {
  ImageInfo info;
  info.path = path;
  info.root_searched = find_root;
  add_authenticode(info, data, trust);
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
    add_certificates(info, payload->vmlinux);
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
  if (info.kind == "elf") {
    add_certificates(info, data);
  } else if (info.kind == "compressed-elf") {
    auto plain = archive::decompress_all(data, kMaxImageBytes);
    if (plain) add_certificates(info, *plain);
  }
  return info;
}

namespace {

// Decompressed module contents kept for a leaf whose modules.order position
// is not known yet (modules.order streams after the modules, as in Debian's
// data.tar): an unlinked temporary file, written concurrently at reserved
// offsets, read back in finish().
class SpillFile {
 public:
  ~SpillFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  Result<std::uint64_t> append(Bytes b) {
    {
      std::lock_guard<std::mutex> lock(open_mu_);
      if (fd_ < 0) KMR_TRY(open());
    }
    const std::uint64_t at = size_.fetch_add(b.size());
    for (std::uint64_t done = 0; done < b.size();) {
      const ssize_t n = ::pwrite(fd_, b.data() + done, b.size() - done, static_cast<off_t>(at + done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return io_error(std::string("temporary module file: write failed: ") + std::strerror(errno));
      done += static_cast<std::uint64_t>(n);
    }
    return at;
  }
  Result<void> read(std::uint64_t at, ByteVector& out) const {
    for (std::uint64_t done = 0; done < out.size();) {
      const ssize_t n = ::pread(fd_, out.data() + done, out.size() - done, static_cast<off_t>(at + done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return io_error(std::string("temporary module file: read failed: ") + std::strerror(errno));
      done += static_cast<std::uint64_t>(n);
    }
    return ok();
  }

 private:
  Result<void> open() {
    const char* t = std::getenv("TMPDIR");
    const std::string dir = t && *t ? t : "/var/tmp";
    fd_ = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd_ < 0) {  // a file system without O_TMPFILE: a named file, unlinked at once
      std::string name = dir + "/kmr-modules.XXXXXX";
      fd_ = ::mkostemp(name.data(), O_CLOEXEC);
      if (fd_ >= 0) ::unlink(name.c_str());
    }
    if (fd_ < 0) return io_error("cannot create a temporary file in " + dir + ": " + std::strerror(errno));
    return ok();
  }
  std::mutex open_mu_;
  int fd_ = -1;
  std::atomic<std::uint64_t> size_{0};
};

archive::Codec codec_of(const std::string& comp) {
  if (comp == "zst") return archive::Codec::kZstd;
  if (comp == "xz") return archive::Codec::kXz;
  if (comp == "gz") return archive::Codec::kGzip;
  return archive::Codec::kNone;
}

// Per-module work done off the streaming thread.
struct ModuleWork {
  ModuleInfo info;
  std::string rel;                       // path below the modules dir, without compression suffix
  std::string dir;                       // the modules dir it was found in
  std::optional<std::uint32_t> pos;      // modules.order position when known at read time
  std::string what;                      // the package, for errors
  std::optional<kmod::PendingSignature> pending;  // PKCS#7 signature, digested
  std::size_t checked_with = 0;          // certificates it was verified against (0: not yet)
  std::optional<std::uint64_t> spill_at;          // content in the spill file
  ByteVector kept;                       // or held in memory: the content is kept[kept_at, +content_length)
  std::uint64_t kept_at = 0;
  bool is_kept = false;
  std::optional<Error> error;            // malformed module (an inspect error)
};

}  // namespace

struct LayoutCollector::Impl {
  KernelLayout layout;
  // Module pipeline: the streaming thread queues each module's bytes; workers
  // decompress, parse the trailer, digest the signed content, hash the leaf.
  std::deque<ModuleWork> work;  // stable references while growing
  std::deque<std::pair<ModuleWork*, ByteVector>> queue;
  std::uint64_t queued_bytes = 0;
  std::mutex mu;
  std::condition_variable cv_work, cv_space;
  bool closing = false;
  std::vector<std::thread> workers;
  SpillFile spill;
  // Trusted certificates: the keyring's from the start, the image's once
  // analysed (then workers verify signatures as they go).
  kmod::CertificateSet keyring;
  std::shared_ptr<const kmod::CertificateSet> trusted;  // guarded by mu
  std::unordered_map<std::string, std::uint32_t> order_pos;  // modules.order entry -> position
  std::string order_dir;                                     // the modules dir holding modules.order
  std::future<ImageInfo> image_job, vmlinux_job;
  bool image_analysis_started = false;
  std::map<std::string, std::uint64_t> release_modules;  // release -> module count
  std::string image_release;
  std::shared_ptr<ByteVector> image_data;
  std::string image_path;
  std::shared_ptr<ByteVector> vmlinux_data;
  bool full_image_analysis = false;
  std::vector<std::string> errors;

  static constexpr std::uint64_t kMaxQueuedBytes = 96ull << 20;

  // KMR_INSPECT_SIGNATURES=0 leaves PKCS#7 module signatures unchecked
  // (module_signatures null, with a warning): the benchmark's baseline for
  // what signature checking costs, measured with the same binary.
  static bool verify_signatures() {
    static const bool v = [] {
      const char* e = std::getenv("KMR_INSPECT_SIGNATURES");
      return e == nullptr || std::string_view(e) != "0";
    }();
    return v;
  }

  static std::shared_ptr<const kmod::CertificateSet> trust_set(const std::vector<const ImageInfo*>& images,
                                                               const kmod::CertificateSet& keyring) {
    auto set = std::make_shared<kmod::CertificateSet>();
    for (const ImageInfo* img : images) {
      if (img == nullptr) continue;
      for (const auto& c : img->certificates) (void)set->add_der(c.der, "embedded", c.offset);
    }
    for (const auto& c : keyring.info()) (void)set->add_der(c.der, "keyring");
    return set;
  }

  void publish_certificates(const ImageInfo& info) {
    auto set = trust_set({&info}, keyring);
    std::lock_guard<std::mutex> lock(mu);
    trusted = std::move(set);
  }

  void start_workers() {
    if (!workers.empty()) return;
    const unsigned n = std::max(1u, std::min(8u, std::thread::hardware_concurrency()));
    for (unsigned i = 0; i < n; ++i) workers.emplace_back([this] { worker_loop(); });
  }

  // Contents held in memory for leaves computed in finish(); beyond this
  // budget they go to the spill file.
  // KMR_INSPECT_KEEP_BYTES overrides it (tests drive the spill file with 0).
  static std::uint64_t max_kept_bytes() {
    static const std::uint64_t v = [] {
      const char* e = std::getenv("KMR_INSPECT_KEEP_BYTES");
      if (e == nullptr || *e == '\0') return std::uint64_t{768} << 20;
      char* end = nullptr;
      const unsigned long long n = std::strtoull(e, &end, 10);
      return end != nullptr && *end == '\0' ? static_cast<std::uint64_t>(n) : std::uint64_t{768} << 20;
    }();
    return v;
  }
  std::atomic<std::uint64_t> kept_bytes{0};

  void submit(ModuleWork* w, ByteVector raw) {
    start_workers();
    std::unique_lock<std::mutex> lock(mu);
    cv_space.wait(lock, [&] { return queued_bytes < kMaxQueuedBytes || queue.empty(); });
    queued_bytes += raw.size();
    queue.emplace_back(w, std::move(raw));
    cv_work.notify_one();
  }

  void stop_workers() {
    {
      std::lock_guard<std::mutex> lock(mu);
      closing = true;
    }
    cv_work.notify_all();
    for (auto& t : workers) t.join();
    workers.clear();
  }

  void worker_loop() {
    for (;;) {
      std::pair<ModuleWork*, ByteVector> job;
      std::shared_ptr<const kmod::CertificateSet> certs;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv_work.wait(lock, [&] { return closing || !queue.empty(); });
        if (queue.empty()) return;
        job = std::move(queue.front());
        queue.pop_front();
        queued_bytes -= job.second.size();
        certs = trusted;
      }
      cv_space.notify_one();
      process(*job.first, job.second, certs.get());
    }
  }

  // Decompresses (by name), parses the trailer, digests the signed content
  // (verifying at once when the certificates are known), hashes the content
  // leaf (or keeps the content for it).
  void process(ModuleWork& w, ByteVector& raw, const kmod::CertificateSet* certs) {
    ModuleInfo& mod = w.info;
    ByteVector plain;
    Bytes bytes = raw;
    if (mod.compression != "none") {
      auto sink = [&](Bytes b) -> Result<void> {
        plain.insert(plain.end(), b.begin(), b.end());
        return ok();
      };
      archive::DecompressOptions o;
      o.max_output = kMaxModuleBytes;
      auto d = archive::decompress(raw, codec_of(mod.compression), sink, o);
      if (!d) {
        w.error = Error(d.error().code(), w.what + ": " + mod.path + ": " + d.error().message());
        return;
      }
      bytes = plain;
    }
    mod.size = bytes.size();
    auto t = kmod::parse_trailer(bytes, mod.path);
    if (!t) {
      w.error = Error(t.error().code(), w.what + ": " + t.error().message());
      return;
    }
    mod.trailer = t->kind;
    mod.content_length = t->content_length;
    const Bytes content = bytes.first(t->content_length);
    if (t->kind == kmod::TrailerKind::kMerkle && t->proof) {
      mod.proof = t->proof;
      mod.leaf = kmod::leaf_hash(t->proof->pos, content);
    }
    if (t->kind == kmod::TrailerKind::kPkcs7 && verify_signatures()) {
      auto pending = kmod::PendingSignature::prepare(t->blob, content);
      if (!pending) {
        mod.signature_failure = pending.error().message();
      } else {
        if (certs != nullptr) {
          mod.signature_failure = pending->verify(*certs);
          w.checked_with = certs->size();
        }
        w.pending = std::move(*pending);
      }
    }
    if (w.pos) {
      mod.content_leaf = kmod::leaf_hash(*w.pos, content);
    } else if (kept_bytes.fetch_add(bytes.size()) + bytes.size() <= max_kept_bytes()) {
      w.kept_at = static_cast<std::uint64_t>(content.data() - bytes.data());
      w.kept = mod.compression != "none" ? std::move(plain) : std::move(raw);
      w.is_kept = true;
    } else {
      auto at = spill.append(content);
      if (!at) {
        w.error = std::move(at).error();
        return;
      }
      w.spill_at = *at;
    }
  }
};

LayoutCollector::LayoutCollector() : impl_(std::make_unique<Impl>()) {}
LayoutCollector::~LayoutCollector() { impl_->stop_workers(); }

void LayoutCollector::set_full_image_analysis(bool full) { impl_->full_image_analysis = full; }

Result<void> LayoutCollector::add_keyring_certificates(const std::vector<ByteVector>& der) {
  for (const auto& d : der) KMR_TRY(impl_->keyring.add_der(d, "keyring"));
  return ok();
}

archive::Visitor LayoutCollector::visitor(std::string what) {
  return [this, what = std::move(what)](const archive::Entry& e, archive::MemberStream& s) -> Result<void> {
    return visit(what, e, s);
  };
}

Result<void> LayoutCollector::start_image(const std::string& what, const std::string& path, archive::MemberStream& s,
                                          bool vmlinux) {
  std::shared_ptr<ByteVector>& slot = vmlinux ? impl_->vmlinux_data : impl_->image_data;
  if (slot) {
    impl_->layout.warnings.push_back(what + ": second " + (vmlinux ? "vmlinux" : "image") + " '" + path + "' ignored");
    return ok();
  }
  ++kernel_members_;
  auto r = s.read_all(kMaxImageBytes);
  if (!r) return Error(r.error().code(), what + ": " + path + ": " + r.error().message());
  slot = std::make_shared<ByteVector>(std::move(*r));
  (vmlinux ? impl_->layout.vmlinux_path : impl_->image_path) = path;
  // Analysed at once, on its own thread, while the package streams on.
  Impl* impl = impl_.get();
  auto job = std::async(std::launch::async, [impl, d = slot, path]() {
    ImageInfo info = analyse_image(path, *d, true, &impl->keyring);
    if (d == impl->image_data) impl->publish_certificates(info);
    return info;
  });
  (vmlinux ? impl_->vmlinux_job : impl_->image_job) = std::move(job);
  return ok();
}

Result<void> LayoutCollector::read_modules_order(const std::string& what, const std::string& path, const ModulesPath& m,
                                                 archive::MemberStream& s) {
  KernelLayout& L = impl_->layout;
  auto r = s.read_all(kMaxMetadataBytes);
  if (!r) return Error(r.error().code(), what + ": " + path + ": " + r.error().message());
  L.has_modules_order = true;
  ++kernel_members_;
  L.modules_order.clear();
  impl_->order_pos.clear();
  impl_->order_dir = m.dir;
  std::string_view text = as_string_view(*r);
  while (!text.empty()) {
    const std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (line.empty()) continue;
    impl_->order_pos.emplace(std::string(line), static_cast<std::uint32_t>(L.modules_order.size()));
    L.modules_order.emplace_back(line);
  }
  if (L.modules_dir.empty()) L.modules_dir = m.dir;
  return ok();
}

Result<void> LayoutCollector::collect_module(const std::string& what, const archive::Entry& e, const ModulesPath& m,
                                             const std::string& compression, archive::MemberStream& s) {
  KernelLayout& L = impl_->layout;
  ++impl_->release_modules[m.release];
  ++kernel_members_;
  if (L.modules_dir.empty() || L.modules_dir.size() > m.dir.size()) L.modules_dir = m.dir;
  ModuleWork& w = impl_->work.emplace_back();
  w.info.path = e.path;
  w.info.compression = compression;
  w.dir = m.dir;
  w.what = what;
  w.rel = strip_compression(m.rest);
  if (L.has_modules_order && m.dir == impl_->order_dir) {
    auto it = impl_->order_pos.find(w.rel);
    if (it != impl_->order_pos.end()) w.pos = it->second;
  }
  ByteVector raw;
  raw.reserve(std::min<std::uint64_t>(e.size, kMaxModuleBytes));
  for (;;) {
    auto b = s.next();
    if (!b) return Error(b.error().code(), what + ": " + e.path + ": " + b.error().message());
    if (b->empty()) break;
    if (raw.size() + b->size() > kMaxModuleBytes) {
      return limit_exceeded(what + ": " + e.path + ": module larger than " + std::to_string(kMaxModuleBytes) + " bytes");
    }
    raw.insert(raw.end(), b->begin(), b->end());
  }
  impl_->submit(&w, std::move(raw));
  return ok();
}

Result<void> LayoutCollector::visit(const std::string& what, const archive::Entry& e, archive::MemberStream& s) {
  if (e.type != archive::EntryType::kFile) return ok();
  const std::string& p = e.path;
  const std::string base = path_basename(p);

  KMR_TRY(require_layouts(what + ": " + p));
  if (auto c = classify_member(p)) {
    switch (c->member.role) {
      case MemberRole::kMetadata: {
        auto r = s.read_all(kMaxMetadataBytes);
        if (!r) return Error(r.error().code(), what + ": " + p + ": " + r.error().message());
        metadata_[base] = std::string(r->begin(), r->end());
        return ok();
      }
      case MemberRole::kImage:
        if (c->member.release) impl_->image_release = *c->member.release;
        return start_image(what, p, s, false);
      case MemberRole::kVmlinux:
        return start_image(what, p, s, true);
    }
  }

  // The kernel's own modules directory: modules.order and the modules; the
  // build/ and source/ trees below it are not the installed kernel.
  if (auto m = split_modules_path(p)) {
    if (m->rest.starts_with("build/") || m->rest.starts_with("source/")) return ok();
    if (m->rest == "modules.order") return read_modules_order(what, p, *m, s);
    const std::string comp = module_compression(base);
    if (!comp.empty()) return collect_module(what, e, *m, comp, s);
  }
  return ok();
}

namespace {

ModuleSignaturesResult signatures_result(const std::vector<ModuleInfo>& modules, const kmod::CertificateSet& trusted) {
  ModuleSignaturesResult r;
  for (const auto& m : modules) {
    if (m.trailer != kmod::TrailerKind::kPkcs7) {
      ++r.unsigned_count;
      continue;
    }
    ++r.signed_count;
    if (m.signature_failure.empty()) {
      ++r.verified;
    } else {
      r.failed.emplace_back(m.path, m.signature_failure);
    }
  }
  r.certificates = trusted.info();
  r.ok = r.failed.empty() && r.verified == r.signed_count;
  return r;
}

}  // namespace

Result<void> LayoutCollector::finish_modules(KernelLayout& L) {
  Impl& I = *impl_;
  I.stop_workers();
  for (auto& w : I.work) {
    if (w.error) return *w.error;
  }
  const std::vector<const ImageInfo*> images = {L.image ? &*L.image : nullptr, L.vmlinux ? &*L.vmlinux : nullptr};
  auto trusted = Impl::trust_set(images, I.keyring);
  std::vector<ModuleWork*> todo(I.work.size());
  for (std::size_t i = 0; i < I.work.size(); ++i) todo[i] = &I.work[i];
  std::vector<std::optional<Error>> errors(todo.size());
  kmod::parallel_for(todo.size(), 0, [&](std::size_t i) {
    ModuleWork& w = *todo[i];
    // Signatures not yet checked, or refused by a smaller certificate set.
    if (w.pending && (w.checked_with == 0 || (!w.info.signature_failure.empty() && w.checked_with < trusted->size()))) {
      w.info.signature_failure = w.pending->verify(*trusted);
    }
    w.pending.reset();
    // Leaves whose modules.order position was unknown while streaming.
    ByteVector kept = std::move(w.kept);
    if ((!w.spill_at && !w.is_kept) || !L.has_modules_order || w.dir != I.order_dir) return;
    auto it = I.order_pos.find(w.rel);
    if (it == I.order_pos.end()) return;
    if (w.is_kept) {
      w.info.content_leaf = kmod::leaf_hash(it->second, Bytes(kept).subspan(w.kept_at, w.info.content_length));
      return;
    }
    ByteVector content(w.info.content_length);
    auto r = I.spill.read(*w.spill_at, content);
    if (!r) {
      errors[i] = std::move(r).error();
      return;
    }
    w.info.content_leaf = kmod::leaf_hash(it->second, content);
  });
  for (auto& e : errors) {
    if (e) return std::move(*e);
  }
  // Content root: every modules.order entry must be shipped.
  if (L.has_modules_order) {
    std::vector<Digest256> leaves(L.modules_order.size());
    std::vector<bool> filled(leaves.size(), false);
    for (auto& w : I.work) {
      if (w.dir != I.order_dir || !w.info.content_leaf) continue;
      const std::uint32_t pos = I.order_pos.at(w.rel);
      leaves[pos] = *w.info.content_leaf;
      filled[pos] = true;
    }
    for (std::size_t i = 0; i < filled.size() && L.content_root_problem.empty(); ++i) {
      if (!filled[i]) L.content_root_problem = L.modules_order[i] + ": listed in modules.order but not shipped";
    }
    if (L.content_root_problem.empty()) {
      const std::uint64_t n = leaves.size();
      L.content_root = ContentRoot{kmod::MerkleTree(std::move(leaves)).root(), n};
    }
  } else {
    L.content_root_problem = "no modules.order";
  }
  for (auto& w : I.work) L.modules.push_back(std::move(w.info));
  I.work.clear();
  bool any_signed = false;
  for (const auto& m : L.modules) any_signed |= m.trailer == kmod::TrailerKind::kPkcs7;
  if (any_signed && Impl::verify_signatures()) L.module_signatures = signatures_result(L.modules, *trusted);
  if (any_signed && !Impl::verify_signatures()) {
    L.warnings.push_back("module signatures not checked (KMR_INSPECT_SIGNATURES=0)");
  }
  return ok();
}

Result<KernelLayout> LayoutCollector::finish() {
  KMR_TRY(require_layouts("inspect"));
  KernelLayout& L = impl_->layout;
  if (impl_->image_job.valid()) {
    L.image = impl_->image_job.get();
    if (!L.image->error.empty()) L.warnings.push_back("image: " + L.image->error);
  } else {
    L.image.reset();
  }
  if (impl_->vmlinux_job.valid()) {
    L.vmlinux = impl_->vmlinux_job.get();
    if (!L.vmlinux->error.empty()) L.warnings.push_back("vmlinux: " + L.vmlinux->error);
  }
  KMR_TRY(finish_modules(L));
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
