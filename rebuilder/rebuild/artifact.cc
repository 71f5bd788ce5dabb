#include "rebuilder/rebuild/artifact.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <sstream>

#include "rebuilder/archive/archive_reader.h"
#include "rebuilder/archive/decompress.h"
#include "rebuilder/archive/nar.h"
#include "rebuilder/archive/narinfo.h"
#include "rebuilder/kmod/kernel_image.h"
#include "rebuilder/base/bytes.h"
#include "rebuilder/base/file.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"
#include "rebuilder/base/subprocess.h"
#include "rebuilder/base/text.h"

namespace kmr::build {
namespace {

// "x.ko.zst" -> "x.ko"; "" when not a module.
std::string module_name(std::string_view path) {
  for (const char* suffix : {".ko", ".ko.zst", ".ko.xz", ".ko.gz", ".ko.bz2", ".ko.lz4"}) {
    if (path.ends_with(suffix)) return std::string(path.substr(0, path.size() - std::string_view(suffix).size())) + ".ko";
  }
  return "";
}

int image_rank(std::string_view base) {
  if (base == "vmlinux" || base.rfind("vmlinux-", 0) == 0 || base == "vmlinux.xz" || base == "vmlinux.gz" ||
      base == "vmlinux.zst") {
    return 2;  // ELF: the section table is there
  }
  if (base == "vmlinuz" || base.rfind("vmlinuz-", 0) == 0 || base == "bzImage") return 1;
  return 0;
}

std::string hex_sha(Bytes b) { return sha256_hex(b); }

// Drops "key=value" tokens naming per-file digests and sizes from mtree lines.
std::string strip_mtree(std::string_view text) {
  std::string out;
  std::istringstream in{std::string(text)};
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string w, kept;
    while (words >> w) {
      if (w.rfind("sha256digest=", 0) == 0 || w.rfind("md5digest=", 0) == 0 || w.rfind("size=", 0) == 0) continue;
      kept += (kept.empty() ? "" : " ") + w;
    }
    out += kept + "\n";
  }
  return out;
}

// Drops lines whose key (before the separator) is in `keys`.
std::string strip_keys(std::string_view text, std::initializer_list<std::string_view> prefixes) {
  std::string out;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(start, end - start);
    start = end + 1;
    bool drop = false;
    for (auto p : prefixes) drop = drop || line.rfind(p, 0) == 0;
    if (!drop) {
      out.append(line);
      out += '\n';
    }
  }
  return out;
}

// md5sums: "<md5>  <path>" -> "<path>".
std::string strip_md5sums(std::string_view text) {
  std::string out;
  std::istringstream in{std::string(text)};
  std::string line;
  while (std::getline(in, line)) {
    const auto sp = line.find("  ");
    out += (sp == std::string::npos ? line : line.substr(sp + 2)) + "\n";
  }
  return out;
}

struct Collector {
  const Limits& limits;
  Artifact& art;
  std::map<std::string, ByteVector> module_content;  // member -> content without trailer
  std::vector<std::pair<std::string, ByteVector>> images;

  Result<void> add_file(const std::string& path, std::uint32_t mode, ByteVector data) {
    MemberDigest d;
    d.type = "file";
    d.mode = mode;
    d.sha256 = hex_sha(data);
    d.stripped_sha256 = d.sha256;
    const std::string base = path_basename(path);
    const std::string mod = module_name(path);
    if (!mod.empty()) {
      ModuleRecord rec;
      rec.member = path;
      ByteVector content;
      if (archive::codec_from_suffix(path) != archive::Codec::kNone) {
        auto dec = archive::decompress_all(data, limits.max_member_bytes);
        if (!dec) {
          rec.error = "cannot decompress: " + dec.error().to_string();
        } else {
          content = std::move(*dec);
        }
      } else {
        content = data;
      }
      if (rec.error.empty()) {
        auto tr = kmod::parse_trailer(content, path);
        if (!tr) {
          rec.error = tr.error().to_string();
        } else {
          rec.trailer = tr->kind;
          rec.proof = tr->proof;
          content.resize(tr->content_length);
          d.stripped_sha256 = hex_sha(content);
          if (rec.proof) rec.leaf_at_proof = kmod::leaf_hash(rec.proof->pos, content);
          module_content[path] = std::move(content);
        }
      }
      art.modules.push_back(std::move(rec));
    } else if (base == "modules.order") {
      art.modules_dir = path_dirname(path);
      std::string_view text = as_string_view(data);
      std::size_t start = 0;
      while (start < text.size()) {
        std::size_t end = text.find('\n', start);
        if (end == std::string_view::npos) end = text.size();
        std::string_view line = text.substr(start, end - start);
        start = end + 1;
        if (!line.empty()) art.modules_order.emplace_back(line);
      }
    } else if (base == ".MTREE") {
      auto dec = archive::decompress_all(data, limits.max_member_bytes);
      if (dec) d.stripped_sha256 = sha256_hex(as_bytes(strip_mtree(as_string_view(*dec))));
    } else if (base == ".PKGINFO" && path_dirname(path).empty()) {
      d.stripped_sha256 = sha256_hex(as_bytes(strip_keys(as_string_view(data), {"size = "})));
    } else if (path == "control.tar/md5sums") {
      d.stripped_sha256 = sha256_hex(as_bytes(strip_md5sums(as_string_view(data))));
    } else if (path == "control.tar/control") {
      d.stripped_sha256 = sha256_hex(as_bytes(strip_keys(as_string_view(data), {"Installed-Size:"})));
    } else if (path == "rpm-header") {
      d.stripped_sha256 = sha256_hex(as_bytes(strip_keys(as_string_view(data), {"file "})));
    }
    if (base == ".BUILDINFO" && path_dirname(path).empty()) art.build_description[".BUILDINFO"] = std::string(as_string_view(data));
    if (kmod::is_kernel_image_name(base)) mask_member(path, data, d);
    if (image_rank(base) > 0) images.emplace_back(path, data);
    art.members[path] = std::move(d);
    return ok();
  }

  void mask_member(const std::string& path, Bytes data, MemberDigest& d) const {
    kmod::ImageMaskLimits ml;
    ml.max_decompressed = std::min<std::uint64_t>(ml.max_decompressed, limits.max_member_bytes);
    auto m = kmod::mask_image(data, path, ml);
    if (m) {
      d.mask = std::move(*m);
    } else {
      d.mask_error = m.error().to_string();
    }
  }

  archive::Visitor visitor(std::string prefix) {
    return [this, prefix](const archive::Entry& e, archive::MemberStream& s) -> Result<void> {
      const std::string path = prefix + e.path;
      if (e.path.empty()) return ok();
      if (e.type == archive::EntryType::kFile) {
        KMR_ASSIGN_OR_RETURN(auto data, s.read_all(limits.max_member_bytes));
        return add_file(path, e.mode, std::move(data));
      }
      MemberDigest d;
      d.type = std::string(archive::entry_type_name(e.type));
      d.mode = e.mode;
      d.sha256 = d.stripped_sha256 = e.type == archive::EntryType::kDirectory ? "" : sha256_hex(as_bytes(e.link_target));
      art.members[path] = std::move(d);
      return ok();
    };
  }

  void finish() {
    // modules.order positions and leaves.
    std::map<std::string, std::int64_t> pos;
    for (std::size_t i = 0; i < art.modules_order.size(); ++i) pos.emplace(art.modules_order[i], static_cast<std::int64_t>(i));
    for (auto& m : art.modules) {
      std::string rel = m.member;
      if (!art.modules_dir.empty() && rel.rfind(art.modules_dir + "/", 0) == 0) rel = rel.substr(art.modules_dir.size() + 1);
      m.order_name = module_name(rel);
      if (auto it = pos.find(m.order_name); it != pos.end()) {
        m.order_pos = it->second;
        if (auto c = module_content.find(m.member); c != module_content.end()) {
          m.leaf_at_order = kmod::leaf_hash(static_cast<std::uint32_t>(m.order_pos), c->second);
        }
      }
    }
    module_content.clear();
    // The image: an ELF vmlinux first, else a bzImage.
    std::stable_sort(images.begin(), images.end(),
                     [](const auto& a, const auto& b) { return image_rank(path_basename(a.first)) > image_rank(path_basename(b.first)); });
    for (const auto& [path, data] : images) {
      art.image_found = true;
      auto root = image_root_from_bytes(data, path);
      if (!root) {
        if (art.image_error.empty()) art.image_error = root.error().to_string();
        continue;
      }
      art.image_member = path;
      art.image_root = *root;
      art.image_error.clear();
      break;
    }
    images.clear();
  }
};

Result<void> read_deb(const std::string& path, const archive::ReaderOptions& opts, Collector& c) {
  auto outer = [&](const archive::Entry& e, archive::MemberStream& s) -> Result<void> {
    if (e.type != archive::EntryType::kFile) return ok();
    KMR_ASSIGN_OR_RETURN(auto data, s.read_all(c.limits.max_member_bytes));
    if (e.path.rfind("control.tar", 0) == 0 || e.path.rfind("data.tar", 0) == 0) {
      // Payload members keep their package paths; control members are metadata.
      const std::string prefix = e.path.rfind("control.tar", 0) == 0 ? "control.tar/" : "";
      // The compressed tar itself is not a member for the tiers: its content is.
      archive::ReaderOptions inner = opts;
      inner.name = opts.name + ": " + e.path;
      inner.format = archive::Format::kTar;
      KMR_TRY(archive::read_archive_memory(data, inner, c.visitor(prefix)));
      return ok();
    }
    return c.add_file(e.path, e.mode, std::move(data));
  };
  archive::ReaderOptions o = opts;
  o.format = archive::Format::kAr;
  KMR_TRY(archive::read_archive_file(path, o, outer));
  return ok();
}

Result<void> read_rpm(const std::string& path, const archive::ReaderOptions& opts, Collector& c) {
  SubprocessOptions so;
  so.output_cap = static_cast<std::size_t>(std::min<std::uint64_t>(c.limits.max_total_bytes, 8ull << 30));
  so.timeout = std::chrono::minutes(30);
  KMR_ASSIGN_OR_RETURN(auto hdr, run_subprocess({"rpm", "-qp", "--nosignature", "--nodigest", "--qf",
                                                 "name %{NAME}\nversion %{VERSION}\nrelease %{RELEASE}\narch %{ARCH}\n"
                                                 "buildtime %{BUILDTIME}\nbuildhost %{BUILDHOST}\ndisturl %{DISTURL}\n"
                                                 "sourcerpm %{SOURCERPM}\ndistribution %{DISTRIBUTION}\nvendor %{VENDOR}\n"
                                                 "packager %{PACKAGER}\npayloadcompressor %{PAYLOADCOMPRESSOR}\n"
                                                 "payloadflags %{PAYLOADFLAGS}\n"
                                                 "[file %{FILENAMES} %{FILEDIGESTS} %{FILESIZES} %{FILEMODES:octal}\n]",
                                                 path},
                                                so));
  if (!hdr.success()) return malformed(path + ": rpm cannot read the header: " + hdr.err.substr(0, 400));
  c.art.build_description["rpm-header"] = hdr.out;
  KMR_TRY(c.add_file("rpm-header", 0644, ByteVector(hdr.out.begin(), hdr.out.end())));
  KMR_ASSIGN_OR_RETURN(auto cpio, run_subprocess({"rpm2cpio", path}, so));
  if (!cpio.success() || cpio.out_truncated) return malformed(path + ": rpm2cpio failed: " + cpio.describe() + " " + cpio.err.substr(0, 400));
  archive::ReaderOptions o = opts;
  o.format = archive::Format::kCpio;
  KMR_TRY(archive::read_archive_memory(as_bytes(cpio.out), o, c.visitor("")));
  return ok();
}

Result<void> read_nar_file(const std::string& path, const archive::ReaderOptions& opts, Collector& c) {
  std::string nar_path = path;
  std::optional<archive::NarInfo> narinfo;
  if (path.ends_with(".narinfo")) {
    KMR_ASSIGN_OR_RETURN(auto text, read_text_file(path, 1 << 20));
    KMR_ASSIGN_OR_RETURN(auto info, archive::parse_narinfo(text, path, c.limits));
    narinfo = info;
    if (info.url.find("..") != std::string::npos || info.url.empty() || info.url[0] == '/') {
      return malformed(path + ": narinfo URL escapes the cache: '" + info.url + "'");
    }
    nar_path = path_dirname(path) + "/" + info.url;
    c.art.display_name = path_basename(info.store_path);
    c.art.build_description["narinfo"] = text;
  }
  KMR_ASSIGN_OR_RETURN(auto raw, read_file(nar_path, c.limits.max_member_bytes));
  // Through a narinfo the NAR is checked against it (FileSize, FileHash, then
  // NarSize as the decompression cap, NarHash) before anything compares it.
  KMR_ASSIGN_OR_RETURN(auto nar, narinfo ? archive::load_verified_nar(raw, *narinfo, nar_path, c.limits.max_compression_ratio)
                                         : archive::decompress_all(raw, c.limits.max_total_bytes, c.limits.max_compression_ratio));
  KMR_ASSIGN_OR_RETURN(auto res, archive::read_nar_memory(nar, opts, c.visitor("")));
  // The NAR is the artifact (the cache's compression is transport): its
  // hash is what narinfo's NarHash pins.
  c.art.file_sha256 = to_hex(res.nar_hash);
  return ok();
}

}  // namespace

Result<std::optional<kmod::MerkleRoot>> image_root_from_bytes(Bytes image, const std::string& what, std::uint64_t max_bytes) {
  kmod::ImageOptions o;
  o.max_decompressed = max_bytes;
  KMR_ASSIGN_OR_RETURN(auto r, kmod::root_from_image(image, what, o));
  if (!r.present) return std::optional<kmod::MerkleRoot>();
  return std::optional<kmod::MerkleRoot>(r.root);
}

Result<Artifact> read_artifact(const std::string& path, const Limits& limits) {
  Artifact art;
  art.file = path;
  KMR_ASSIGN_OR_RETURN(auto digest, sha256_file(path));
  art.file_sha256 = to_hex(digest);
  Collector c{limits, art, {}, {}};
  archive::ReaderOptions opts;
  opts.limits = limits;
  const std::string base = path_basename(path);
  opts.name = base;
  Result<void> r = ok();
  if (base.find(".pkg.tar") != std::string::npos) {
    art.format = "pkg.tar";
    opts.format = archive::Format::kTar;
    auto s = archive::read_archive_file(path, opts, c.visitor(""));
    if (!s) r = std::move(s).error();
  } else if (base.ends_with(".deb") || base.ends_with(".udeb")) {
    art.format = "deb";
    r = read_deb(path, opts, c);
  } else if (base.ends_with(".rpm")) {
    art.format = "rpm";
    r = read_rpm(path, opts, c);
  } else if (base.ends_with(".narinfo") || base.find(".nar") != std::string::npos) {
    art.format = "nar";
    r = read_nar_file(path, opts, c);
  } else {
    return unsupported(path + ": unknown package type (expected .pkg.tar.*, .deb, .rpm, .nar* or .narinfo)");
  }
  if (!r) return std::move(r).error().with_context("while reading " + path);
  c.finish();
  return art;
}

// ---- Copying without following symlinks ---------------------------------------
namespace {

struct OwnedFd {
  int fd = -1;
  explicit OwnedFd(int f) : fd(f) {}
  OwnedFd(const OwnedFd&) = delete;
  OwnedFd& operator=(const OwnedFd&) = delete;
  ~OwnedFd() {
    if (fd >= 0) ::close(fd);
  }
};

constexpr int kMaxTreeDepth = 64;
constexpr std::size_t kMaxTreeEntries = 1000000;

Error errno_error(const std::string& what) { return io_error(what + ": " + std::strerror(errno)); }

// Whether a symlink at `depth` (directories below the tree's root) with
// `target` resolves inside the tree (see copy_tree_no_follow).
bool link_stays_inside(const std::string& target, int depth) {
  if (target.empty() || target[0] == '/') return false;
  bool descended = false;
  std::size_t start = 0;
  while (start <= target.size()) {
    std::size_t end = target.find('/', start);
    if (end == std::string::npos) end = target.size();
    const std::string part = target.substr(start, end - start);
    if (part == "..") {
      if (descended || --depth < 0) return false;
    } else if (!part.empty() && part != ".") {
      descended = true;
    }
    start = end + 1;
  }
  return true;
}

Result<void> copy_fd_bytes(int in, int out, const std::string& what, std::uint64_t max_bytes) {
  char buf[1 << 16];
  std::uint64_t total = 0;
  for (;;) {
    const ssize_t n = ::read(in, buf, sizeof buf);
    if (n == 0) return ok();
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error("reading " + what);
    }
    total += static_cast<std::uint64_t>(n);
    if (total > max_bytes) return limit_exceeded(what + " is larger than " + std::to_string(max_bytes) + " bytes");
    for (ssize_t off = 0; off < n;) {
      const ssize_t w = ::write(out, buf + off, static_cast<std::size_t>(n - off));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return errno_error("writing " + what);
      off += w;
    }
  }
}

struct TreeCopy {
  std::size_t entries = 0;

  Result<void> dir(int src, int dst, const std::string& rel, int depth) {
    if (depth > kMaxTreeDepth) return limit_exceeded(rel + ": deeper than " + std::to_string(kMaxTreeDepth) + " levels");
    const int listing = ::dup(src);
    if (listing < 0) return errno_error(rel);
    DIR* d = ::fdopendir(listing);
    if (!d) {
      ::close(listing);
      return errno_error(rel);
    }
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d)) {
      const std::string n = e->d_name;
      if (n != "." && n != "..") names.push_back(n);
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    for (const auto& n : names) {
      if (++entries > kMaxTreeEntries) return limit_exceeded("more than " + std::to_string(kMaxTreeEntries) + " entries");
      KMR_TRY(entry(src, dst, n, rel.empty() ? n : rel + "/" + n, depth));
    }
    return ok();
  }

  Result<void> entry(int src, int dst, const std::string& name, const std::string& rel, int depth) {
    struct stat st;
    if (::fstatat(src, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return errno_error(rel);
    if (S_ISLNK(st.st_mode)) {
      char target[4096];
      const ssize_t n = ::readlinkat(src, name.c_str(), target, sizeof target - 1);
      if (n < 0) return errno_error(rel);
      const std::string t(target, static_cast<std::size_t>(n));
      if (!link_stays_inside(t, depth)) return malformed(rel + ": symlink to '" + t + "' leaves the tree");
      if (::symlinkat(t.c_str(), dst, name.c_str()) != 0) return errno_error("creating symlink " + rel);
      return ok();
    }
    if (S_ISDIR(st.st_mode)) {
      OwnedFd in(::openat(src, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (in.fd < 0) return errno_error(rel);
      if (::mkdirat(dst, name.c_str(), 0755) != 0 && errno != EEXIST) return errno_error("creating " + rel);
      OwnedFd out(::openat(dst, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (out.fd < 0) return errno_error("opening the copy of " + rel);
      KMR_TRY(dir(in.fd, out.fd, rel, depth + 1));
      ::fchmod(out.fd, (st.st_mode & 0777) | 0700);
      return ok();
    }
    if (!S_ISREG(st.st_mode)) return malformed(rel + ": not a regular file, directory or symlink");
    OwnedFd in(::openat(src, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    if (in.fd < 0) return errno_error(rel);
    struct stat again;
    if (::fstat(in.fd, &again) != 0 || !S_ISREG(again.st_mode)) return malformed(rel + ": changed while copying");
    ::unlinkat(dst, name.c_str(), 0);
    OwnedFd out(::openat(dst, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, st.st_mode & 0777));
    if (out.fd < 0) return errno_error("creating " + rel);
    return copy_fd_bytes(in.fd, out.fd, rel, ~0ull);
  }
};

// openat2 beneath `dirfd`, no symlinks; ENOSYS: component-wise O_NOFOLLOW.
int open_beneath(int dirfd, const std::string& relative, int flags) {
  open_how how{};
  how.flags = static_cast<std::uint64_t>(flags);
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  const long fd = ::syscall(SYS_openat2, dirfd, relative.c_str(), &how, sizeof how);
  if (fd >= 0 || errno != ENOSYS) return static_cast<int>(fd);
  int cur = ::dup(dirfd);
  std::size_t start = 0;
  while (cur >= 0) {
    const std::size_t end = relative.find('/', start);
    const std::string part = relative.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (part == ".." || part.empty()) {
      ::close(cur);
      errno = EXDEV;
      return -1;
    }
    const bool last = end == std::string::npos;
    const int next = ::openat(cur, part.c_str(), last ? flags | O_NOFOLLOW : O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    ::close(cur);
    if (last) return next;
    cur = next;
    start = end + 1;
  }
  return -1;
}

}  // namespace

Result<void> copy_tree_no_follow(const std::string& from, const std::string& to) {
  OwnedFd src(::open(from.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (src.fd < 0) return errno_error("cannot open " + from);
  if (::mkdir(to.c_str(), 0755) != 0 && errno != EEXIST) return errno_error("cannot create " + to);
  OwnedFd dst(::open(to.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (dst.fd < 0) return errno_error("cannot open " + to);
  TreeCopy copy;
  auto r = copy.dir(src.fd, dst.fd, "", 0);
  if (!r) return Error(r.error().code(), "cannot copy " + from + " to " + to + ": " + r.error().message());
  return ok();
}

Result<void> copy_file_no_follow(const std::string& from, const std::string& to) {
  OwnedFd in(::open(from.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (in.fd < 0) {
    if (errno == ELOOP) return malformed("source " + from + " is a symlink");
    if (errno == ENOENT) return not_found("source " + from + " does not exist");
    return errno_error("cannot open source " + from);
  }
  struct stat st;
  if (::fstat(in.fd, &st) != 0) return errno_error(from);
  if (!S_ISREG(st.st_mode)) return malformed("source " + from + " is not a regular file");
  ::unlink(to.c_str());
  OwnedFd out(::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (out.fd < 0) return errno_error("cannot create " + to);
  return copy_fd_bytes(in.fd, out.fd, from, ~0ull);
}

Result<void> collect_output(const std::string& root, const std::string& relative, const std::string& dest,
                            std::uint64_t max_bytes) {
  OwnedFd dir(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.fd < 0) return errno_error("cannot open " + root);
  OwnedFd in(open_beneath(dir.fd, relative, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (in.fd < 0) {
    if (errno == ENOENT) return not_found("the build did not produce " + relative);
    if (errno == ELOOP || errno == EXDEV) return malformed("build output " + relative + " is or passes through a symlink");
    return errno_error("cannot open build output " + relative);
  }
  struct stat st;
  if (::fstat(in.fd, &st) != 0) return errno_error(relative);
  if (!S_ISREG(st.st_mode)) return malformed("build output " + relative + " is not a regular file");
  OwnedFd out(::open(dest.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (out.fd < 0) return errno_error("cannot create " + dest);
  return copy_fd_bytes(in.fd, out.fd, "build output " + relative, max_bytes);
}

}  // namespace kmr::build
