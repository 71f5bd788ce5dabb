#include "rebuilder/kmod/module_tree.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <thread>
#include <unordered_set>

#include "rebuilder/archive/decompress.h"
#include "rebuilder/base/file.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/kmod/parallel.h"

namespace kmr::kmod {

namespace {

bool is_installed_form(std::string_view p) {
  return p.ends_with(".ko") || p.ends_with(".ko.zst") || p.ends_with(".ko.xz") || p.ends_with(".ko.gz");
}

std::string trim(std::string_view s) {
  std::size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r')) --e;
  return std::string(s.substr(b, e - b));
}

constexpr std::size_t kReadChunk = 256 << 10;

// Feeds a module's decompressed bytes to the leaf hash, holding back the
// last kMaxTrailerSize bytes until the end so the trailer can be cut off.
class TailHoldingLeaf {
 public:
  explicit TailHoldingLeaf(std::uint32_t pos) : leaf_(pos) { tail_.reserve(2 * kMaxTrailerSize); }

  void update(Bytes chunk) {
    total_ += chunk.size();
    const std::size_t keep = kMaxTrailerSize;
    if (tail_.size() + chunk.size() <= keep) {
      tail_.insert(tail_.end(), chunk.begin(), chunk.end());
      return;
    }
    std::size_t excess = tail_.size() + chunk.size() - keep;
    const std::size_t from_tail = std::min(excess, tail_.size());
    leaf_.update(Bytes(tail_.data(), from_tail));
    excess -= from_tail;
    leaf_.update(chunk.first(excess));
    tail_.erase(tail_.begin(), tail_.begin() + static_cast<long>(from_tail));
    tail_.insert(tail_.end(), chunk.begin() + static_cast<long>(excess), chunk.end());
  }

  std::uint64_t total() const { return total_; }
  Bytes tail() const { return tail_; }
  // Hashes the held-back content bytes (the tail minus `trailer_length`).
  Digest256 finish(std::uint64_t trailer_length) {
    leaf_.update(Bytes(tail_.data(), tail_.size() - trailer_length));
    return leaf_.finish();
  }

 private:
  LeafHasher leaf_;
  ByteVector tail_;
  std::uint64_t total_ = 0;
};

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

Result<HashedModule> hash_once(const std::string& path, std::uint32_t pos, const HashOptions& options) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return io_error(path + ": cannot open: " + std::strerror(errno));
  ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
  thread_local ByteVector buf(kReadChunk);
  HashedModule out;
  out.pos = pos;
  TailHoldingLeaf leaf(pos);
  std::unique_ptr<archive::Decompressor> dec;
  const archive::Codec codec = module_codec_from_name(path);
  if (codec != archive::Codec::kNone) {
    out.codec = std::string(archive::codec_name(codec));
    archive::DecompressOptions o;
    o.max_output = options.max_module_bytes;
    KMR_ASSIGN_OR_RETURN(dec, archive::Decompressor::create(codec, o));
  }
  auto sink = [&](Bytes b) -> Result<void> {
    leaf.update(b);
    return kmr::ok();
  };
  std::uint64_t file_bytes = 0;
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error(path + ": read error: " + std::strerror(errno));
    }
    if (n == 0) break;
    file_bytes += static_cast<std::uint64_t>(n);
    const Bytes chunk(buf.data(), static_cast<std::size_t>(n));
    if (dec) {
      auto r = dec->update(chunk, sink);
      if (!r) return std::move(r).error().with_context(path);
    } else {
      if (leaf.total() + chunk.size() > options.max_module_bytes) {
        return limit_exceeded(path + ": module larger than " + std::to_string(options.max_module_bytes) + " bytes");
      }
      leaf.update(chunk);
    }
  }
  if (file_bytes == 0 && !options.allow_empty) return malformed(path + ": empty module file");
  if (dec) {
    auto r = dec->finish(sink);
    if (!r) return std::move(r).error().with_context(path);
  }
  if (!options.strip_trailer) {
    out.content_length = leaf.total();
    out.leaf = leaf.finish(0);
    return out;
  }
  KMR_ASSIGN_OR_RETURN(ModuleTrailer t, parse_trailer(leaf.tail(), path));
  out.kind = t.kind;
  out.proof = std::move(t.proof);
  out.pkcs7 = std::move(t.pkcs7);
  out.content_length = leaf.total() - t.trailer_length;
  out.leaf = leaf.finish(t.trailer_length);
  return out;
}

}  // namespace

archive::Codec module_codec_from_name(std::string_view path) {
  if (path.ends_with(".ko.zst")) return archive::Codec::kZstd;
  if (path.ends_with(".ko.xz")) return archive::Codec::kXz;
  if (path.ends_with(".ko.gz")) return archive::Codec::kGzip;
  return archive::Codec::kNone;
}

std::string proof_path_for(std::string_view module_path, std::string_view suffix) {
  for (std::string_view s : {suffix, std::string_view(".ko.zst"), std::string_view(".ko.xz"),
                             std::string_view(".ko.gz"), std::string_view(".ko")}) {
    if (!s.empty() && module_path.size() > s.size() && module_path.ends_with(s)) {
      return std::string(module_path.substr(0, module_path.size() - s.size())) + ".merkle";
    }
  }
  return std::string(module_path) + ".merkle";
}

Result<std::vector<std::string>> parse_modules_order(std::string_view text, std::string_view suffix,
                                                     std::string_view what, const OrderLimits& limits) {
  const std::string w(what);
  std::vector<std::string> out;
  std::unordered_set<std::string> seen;
  std::size_t line_no = 0;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    ++line_no;
    const std::string_view raw = text.substr(start, end - start);
    start = end + 1;
    const std::string where = w + ": line " + std::to_string(line_no);
    if (raw.size() > limits.max_line_len) return limit_exceeded(where + ": longer than " + std::to_string(limits.max_line_len) + " bytes");
    std::string line = trim(raw);
    if (line.empty()) continue;
    if (line.find('\0') != std::string::npos) return malformed(where + ": NUL byte in path");
    if (line.front() == '/') return malformed(where + ": absolute path '" + line + "'");
    std::size_t p = 0;
    while (p <= line.size()) {
      std::size_t q = line.find('/', p);
      if (q == std::string::npos) q = line.size();
      const std::string_view comp = std::string_view(line).substr(p, q - p);
      if (comp == "..") return malformed(where + ": '..' in path '" + line + "'");
      if (comp.empty() || comp == ".") return malformed(where + ": empty or '.' component in path '" + line + "'");
      p = q + 1;
    }
    if (line.ends_with(".o")) {
      line = line.substr(0, line.size() - 2) + std::string(suffix);
    } else if (!is_installed_form(line)) {
      return malformed(where + ": '" + line + "' is not a module path (.o, .ko, .ko.zst, .ko.xz or .ko.gz)");
    }
    if (!seen.insert(line).second) return malformed(where + ": duplicate entry '" + line + "'");
    if (out.size() >= limits.max_entries) return limit_exceeded(w + ": more than " + std::to_string(limits.max_entries) + " entries");
    out.push_back(std::move(line));
  }
  return out;
}

Result<HashedModule> hash_module_file(const std::string& path, std::uint32_t pos, bool use_proof_pos,
                                      const HashOptions& options) {
  KMR_ASSIGN_OR_RETURN(HashedModule m, hash_once(path, pos, options));
  if (use_proof_pos && m.proof && m.proof->pos != pos) {
    // Rare: the proof claims another position; the leaf must be recomputed.
    return hash_once(path, m.proof->pos, options);
  }
  return m;
}

std::optional<std::string> resolve_module_file(const std::string& dir, const std::string& entry) {
  for (const char* ext : {"", ".zst", ".xz", ".gz"}) {
    if (*ext != '\0' && !entry.ends_with(".ko")) break;
    const std::string p = dir + "/" + entry + ext;
    struct stat st;
    if (::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode)) return p;
  }
  return std::nullopt;
}

Result<ComputedTree> compute_tree(const std::string& modules_order, std::string_view suffix, const HashOptions& options) {
  KMR_ASSIGN_OR_RETURN(std::string text, read_text_file(modules_order, 256 << 20));
  KMR_ASSIGN_OR_RETURN(auto entries, parse_modules_order(text, suffix, modules_order));
  if (entries.size() > 0xffffffffull) return limit_exceeded(modules_order + ": too many modules");
  const std::string dir = std::filesystem::path(modules_order).parent_path().string();
  const std::string base = dir.empty() ? "." : dir;
  std::vector<std::string> paths;
  std::vector<std::string> proofs;
  for (const auto& e : entries) {
    auto p = resolve_module_file(base, e);
    if (!p) return not_found(modules_order + ": module '" + e + "' listed but missing");
    paths.push_back(*p);
    proofs.push_back(base + "/" + proof_path_for(e, suffix));
  }
  std::vector<Digest256> leaves(paths.size());
  std::vector<std::optional<Error>> errors(paths.size());
  parallel_for(paths.size(), options.threads, [&](std::size_t i) {
    auto m = hash_module_file(paths[i], static_cast<std::uint32_t>(i), false, options);
    if (m) {
      leaves[i] = m->leaf;
    } else {
      errors[i] = std::move(m).error();
    }
  });
  for (auto& e : errors) {
    if (e) return std::move(*e);
  }
  return ComputedTree{std::move(paths), std::move(proofs), MerkleTree(std::move(leaves))};
}

std::string_view module_status_name(ModuleStatus s) {
  switch (s) {
    case ModuleStatus::kVerified: return "verified";
    case ModuleStatus::kFailed: return "failed";
    case ModuleStatus::kUnauthenticated: return "unauthenticated";
  }
  return "failed";
}

namespace {

void judge(ModuleResult& r, TrailerKind kind, const std::optional<MerkleProof>& proof, const Digest256& leaf,
           const MerkleRoot& root) {
  r.trailer = std::string(trailer_kind_name(kind));
  if (kind != TrailerKind::kMerkle) {
    r.status = ModuleStatus::kUnauthenticated;
    r.reason = kind == TrailerKind::kPkcs7 ? "PKCS#7 signature, no Merkle proof" : "no Merkle proof";
    return;
  }
  r.pos = proof->pos;
  auto v = verify_proof(leaf, *proof, root);
  if (v) {
    r.status = ModuleStatus::kVerified;
  } else {
    r.status = ModuleStatus::kFailed;
    r.reason = v.error().message();
  }
}

}  // namespace

ModuleResult verify_module_bytes(Bytes module, const MerkleRoot& root, std::string_view what) {
  ModuleResult r;
  r.path = std::string(what);
  auto t = parse_trailer(module, what);
  if (!t) {
    r.status = ModuleStatus::kFailed;
    r.reason = t.error().to_string();
    return r;
  }
  r.pkcs7 = t->pkcs7;
  const std::uint32_t pos = t->proof ? t->proof->pos : 0;
  judge(r, t->kind, t->proof, leaf_hash(pos, module.first(t->content_length)), root);
  return r;
}

namespace {

void check_positions(TreeReport& rep, std::size_t n, const MerkleRoot& root) {
  // Positions: each of 0..n-1 exactly once.
  std::map<std::uint32_t, std::size_t> owner;
  for (std::size_t i = 0; i < rep.modules.size(); ++i) {
    ModuleResult& r = rep.modules[i];
    if (!r.pos) continue;
    if (*r.pos >= n) {
      r.status = ModuleStatus::kFailed;
      r.reason = "position " + std::to_string(*r.pos) + " >= module count " + std::to_string(n);
      continue;
    }
    auto [it, inserted] = owner.emplace(*r.pos, i);
    if (!inserted) {
      r.status = ModuleStatus::kFailed;
      r.reason = "duplicate position " + std::to_string(*r.pos) + " (also claimed by " + rep.modules[it->second].path + ")";
      ModuleResult& other = rep.modules[it->second];
      if (other.status == ModuleStatus::kVerified) {
        other.status = ModuleStatus::kFailed;
        other.reason = "duplicate position " + std::to_string(*r.pos) + " (also claimed by " + r.path + ")";
      }
    }
  }
  std::vector<std::uint64_t> uncovered;
  for (std::uint64_t p = 0; p < n; ++p) {
    auto it = owner.find(static_cast<std::uint32_t>(p));
    if (it == owner.end() || rep.modules[it->second].status != ModuleStatus::kVerified) uncovered.push_back(p);
  }
  if (!uncovered.empty()) {
    std::string list;
    for (std::size_t k = 0; k < uncovered.size() && k < 20; ++k) list += (k ? ", " : "") + std::to_string(uncovered[k]);
    if (uncovered.size() > 20) list += ", ...";
    rep.problems.push_back(std::to_string(uncovered.size()) + " position(s) without a verified module: " + list);
  }
  if (levels_for(n) != root.levels) {
    rep.problems.push_back("modules.order lists " + std::to_string(n) + " modules, which needs " +
                           std::to_string(levels_for(n)) + " levels; the root has " + std::to_string(root.levels));
  }
}

void tally(TreeReport& rep) {
  for (const auto& r : rep.modules) {
    if (r.status == ModuleStatus::kVerified) ++rep.verified;
    if (r.status == ModuleStatus::kFailed) ++rep.failed;
    if (r.status == ModuleStatus::kUnauthenticated) ++rep.unauthenticated;
  }
  rep.ok = rep.failed == 0 && rep.unauthenticated == 0 && rep.problems.empty() && rep.verified == rep.count;
}

}  // namespace

Result<TreeReport> verify_module_tree(const std::string& dir, const MerkleRoot& root, const HashOptions& options) {
  const std::string order_path = dir + "/modules.order";
  KMR_ASSIGN_OR_RETURN(std::string text, read_text_file(order_path, 256 << 20));
  KMR_ASSIGN_OR_RETURN(auto entries, parse_modules_order(text, ".ko", order_path));
  if (entries.empty()) return malformed(order_path + ": empty modules.order (no modules listed)");
  TreeReport rep;
  rep.root = root;
  rep.count = entries.size();
  rep.modules.resize(entries.size());
  std::vector<std::optional<std::string>> files(entries.size());
  for (std::size_t i = 0; i < entries.size(); ++i) {
    rep.modules[i].path = entries[i];
    files[i] = resolve_module_file(dir, entries[i]);
  }
  parallel_for(entries.size(), options.threads, [&](std::size_t i) {
    ModuleResult& r = rep.modules[i];
    if (!files[i]) {
      r.status = ModuleStatus::kFailed;
      r.reason = "listed in modules.order but missing";
      return;
    }
    auto m = hash_module_file(*files[i], static_cast<std::uint32_t>(std::min<std::size_t>(i, 0xffffffff)), true, options);
    if (!m) {
      r.status = ModuleStatus::kFailed;
      r.reason = m.error().to_string();
      return;
    }
    r.pkcs7 = m->pkcs7;
    judge(r, m->kind, m->proof, m->leaf, root);
  });
  check_positions(rep, entries.size(), root);
  // Module files present but not listed: not covered by the root.
  std::set<std::string> listed;
  for (const auto& f : files) {
    if (f) listed.insert(std::filesystem::path(*f).lexically_normal().string());
  }
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, std::filesystem::directory_options::none, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_symlink(ec)) {
      if (it->is_directory(ec)) it.disable_recursion_pending();
      continue;
    }
    if (!it->is_regular_file(ec)) continue;
    const std::string p = it->path().lexically_normal().string();
    if (!is_installed_form(p) || listed.count(p) != 0) continue;
    ModuleResult r;
    r.path = std::filesystem::path(p).lexically_relative(std::filesystem::path(dir).lexically_normal()).string();
    r.status = ModuleStatus::kUnauthenticated;
    r.reason = "not listed in modules.order";
    rep.modules.push_back(std::move(r));
  }
  tally(rep);
  return rep;
}

Result<TreeReport> verify_modules_in_memory(std::string_view modules_order, const std::vector<MemoryModule>& modules,
                                            const MerkleRoot& root, const HashOptions& options) {
  KMR_ASSIGN_OR_RETURN(auto entries, parse_modules_order(modules_order, ".ko", "modules.order"));
  if (entries.empty()) return malformed("modules.order: empty modules.order (no modules listed)");
  std::map<std::string, std::size_t> by_path;
  for (std::size_t k = 0; k < modules.size(); ++k) by_path.emplace(modules[k].path, k);
  TreeReport rep;
  rep.root = root;
  rep.count = entries.size();
  rep.modules.resize(entries.size());
  std::vector<std::optional<std::size_t>> match(entries.size());
  std::vector<bool> used(modules.size(), false);
  for (std::size_t i = 0; i < entries.size(); ++i) {
    rep.modules[i].path = entries[i];
    for (const char* ext : {"", ".zst", ".xz", ".gz"}) {
      if (*ext != '\0' && !entries[i].ends_with(".ko")) break;
      auto it = by_path.find(entries[i] + ext);
      if (it != by_path.end()) {
        match[i] = it->second;
        used[it->second] = true;
        break;
      }
    }
  }
  parallel_for(entries.size(), options.threads, [&](std::size_t i) {
    ModuleResult& r = rep.modules[i];
    if (!match[i]) {
      r.status = ModuleStatus::kFailed;
      r.reason = "listed in modules.order but missing";
      return;
    }
    ModuleResult v = verify_module_bytes(modules[*match[i]].content, root, modules[*match[i]].path);
    v.path = entries[i];
    r = std::move(v);
  });
  check_positions(rep, entries.size(), root);
  for (std::size_t k = 0; k < modules.size(); ++k) {
    if (used[k] || !is_installed_form(modules[k].path)) continue;
    ModuleResult r;
    r.path = modules[k].path;
    r.status = ModuleStatus::kUnauthenticated;
    r.reason = "not listed in modules.order";
    rep.modules.push_back(std::move(r));
  }
  tally(rep);
  return rep;
}

}  // namespace kmr::kmod
