#include "attest/tlog.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <optional>
#include <vector>

#include "rebuilder/base/file.h"
#include "rebuilder/base/sha256.h"

namespace kmr::attest {
namespace {

Error sys_error(const std::string& what) {
  int e = errno;
  return io_error(what + ": " + std::strerror(e));
}

Result<void> pread_all(int fd, std::uint8_t* buf, std::size_t len, std::uint64_t off, const std::string& what) {
  std::size_t done = 0;
  while (done < len) {
    ssize_t n = ::pread(fd, buf + done, len - done, static_cast<off_t>(off + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sys_error(what);
    if (n == 0) return io_error(what + ": unexpected end of file");
    done += static_cast<std::size_t>(n);
  }
  return ok();
}

Result<void> pwrite_all(int fd, const std::uint8_t* buf, std::size_t len, std::uint64_t off, const std::string& what) {
  std::size_t done = 0;
  while (done < len) {
    ssize_t n = ::pwrite(fd, buf + done, len - done, static_cast<off_t>(off + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return sys_error(what);
    done += static_cast<std::size_t>(n);
  }
  return ok();
}

Result<std::uint64_t> file_size(int fd, const std::string& what) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return sys_error(what);
  return static_cast<std::uint64_t>(st.st_size);
}

void put_be64(std::uint8_t* p, std::uint64_t v) {
  for (int i = 7; i >= 0; --i) {
    p[i] = static_cast<std::uint8_t>(v & 0xff);
    v >>= 8;
  }
}

std::uint64_t get_be64(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return v;
}

std::string level_name(std::uint32_t level) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "/level-%02u.dat", level);
  return buf;
}

std::string key_of(const Hash& h) { return std::string(reinterpret_cast<const char*>(h.data()), h.size()); }

bool parse_dec(std::string_view s, std::uint64_t& out, bool allow_leading_zero) {
  if (s.empty() || s.size() > 19) return false;
  if (!allow_leading_zero && s.size() > 1 && s[0] == '0') return false;
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  out = v;
  return true;
}

}  // namespace

TransparencyLog::~TransparencyLog() {
  if (entries_fd_ >= 0) ::close(entries_fd_);
  if (offsets_fd_ >= 0) ::close(offsets_fd_);
  if (commit_fd_ >= 0) ::close(commit_fd_);
  for (int fd : level_fds_) {
    if (fd >= 0) ::close(fd);
  }
}

Result<std::unique_ptr<TransparencyLog>> TransparencyLog::open(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return sys_error(dir);
  std::unique_ptr<TransparencyLog> log(new TransparencyLog(dir));
  for (int& fd : log->level_fds_) fd = -1;
  log->entries_fd_ = ::open((dir + "/entries.dat").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (log->entries_fd_ < 0) return sys_error(dir + "/entries.dat");
  log->offsets_fd_ = ::open((dir + "/offsets.dat").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (log->offsets_fd_ < 0) return sys_error(dir + "/offsets.dat");

  log->commit_fd_ = ::open((dir + "/commit").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (log->commit_fd_ < 0) return sys_error(dir + "/commit");
  // Two writers on one log would fork it: one process (and one open) only.
  if (::flock(log->commit_fd_, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) return Error(ErrorCode::kDbBusy, dir + ": log is already open (locked by another writer)");
    return sys_error(dir + "/commit: flock");
  }
  KMR_ASSIGN_OR_RETURN(std::uint64_t n, log->read_commit());
  // Truncate everything back to the committed size.
  KMR_ASSIGN_OR_RETURN(std::uint64_t off_size, file_size(log->offsets_fd_, "offsets.dat"));
  if (off_size < 8 * n) return malformed(dir + "/offsets.dat: shorter than the committed size " + std::to_string(n));
  if (::ftruncate(log->offsets_fd_, static_cast<off_t>(8 * n)) != 0) return sys_error("offsets.dat");
  log->size_.store(n);
  std::uint64_t end = 0;
  if (n > 0) {
    KMR_ASSIGN_OR_RETURN(end, log->entry_end(n - 1));
  }
  KMR_ASSIGN_OR_RETURN(std::uint64_t ent_size, file_size(log->entries_fd_, "entries.dat"));
  if (ent_size < end) return malformed(dir + "/entries.dat: shorter than the committed entries");
  if (::ftruncate(log->entries_fd_, static_cast<off_t>(end)) != 0) return sys_error("entries.dat");
  for (std::uint32_t l = 0; l < 64; ++l) {
    std::string path = dir + level_name(l);
    std::uint64_t count = n >> l;
    if (count == 0 && ::access(path.c_str(), F_OK) != 0) continue;
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return sys_error(path);
    log->level_fds_[l] = fd;
    KMR_ASSIGN_OR_RETURN(std::uint64_t have, file_size(fd, path));
    if (l == 0 && have < 32 * count) return malformed(path + ": shorter than the committed size");
    if (have > 32 * count && ::ftruncate(fd, static_cast<off_t>(32 * count)) != 0) return sys_error(path);
    if (have < 32 * count) {
      // Upper levels are derived data (not fsynced on append): recompute the
      // missing nodes from the level below.
      std::vector<std::uint8_t> out;
      for (std::uint64_t i = have / 32; i < count; ++i) {
        KMR_ASSIGN_OR_RETURN(Hash left, log->node(l - 1, 2 * i));
        KMR_ASSIGN_OR_RETURN(Hash right, log->node(l - 1, 2 * i + 1));
        Hash h = node_hash(left, right);
        out.insert(out.end(), h.begin(), h.end());
      }
      KMR_TRY(pwrite_all(fd, out.data(), out.size(), 32 * (have / 32), path));
      if (::ftruncate(fd, static_cast<off_t>(32 * count)) != 0 || ::fdatasync(fd) != 0) return sys_error(path);
    }
  }
  KMR_TRY(log->verify_committed(n));
  // Leaf-hash index, read in chunks.
  std::vector<std::uint8_t> buf;
  const std::uint64_t chunk = 4096;
  for (std::uint64_t i = 0; i < n; i += chunk) {
    std::uint64_t c = std::min(chunk, n - i);
    buf.resize(c * 32);
    KMR_TRY(pread_all(log->level_fds_[0], buf.data(), buf.size(), i * 32, "level-00.dat"));
    for (std::uint64_t j = 0; j < c; ++j) {
      log->by_leaf_.emplace(std::string(reinterpret_cast<const char*>(buf.data() + 32 * j), 32), i + j);
    }
  }
  return log;
}

// The commit file holds two 64-byte slots, written alternately:
//   "KMRTLOG2" | generation (u64 BE) | size (u64 BE) | root (32) | first 8 bytes of SHA-256 of the first 56
// (records written before roots were committed: "KMRTLOG1" | generation | size | SHA-256 of the first 24 |
// 8 zero bytes; read, never written). A torn write can only damage the slot being written; the other
// slot still holds the previous commit. Open takes the valid slot with the highest generation. One
// fdatasync per commit; no rename, so no directory fsync.
namespace {
struct CommitSlot {
  std::uint64_t generation = 0, size = 0;
  std::optional<Hash> root;
};

std::optional<CommitSlot> parse_slot(const std::uint8_t* p) {
  CommitSlot c;
  c.generation = get_be64(p + 8);
  c.size = get_be64(p + 16);
  if (std::memcmp(p, "KMRTLOG2", 8) == 0) {
    Digest256 d = sha256(Bytes(p, 56));
    if (std::memcmp(d.data(), p + 56, 8) != 0) return std::nullopt;
    Hash root;
    std::memcpy(root.data(), p + 24, 32);
    c.root = root;
    return c;
  }
  if (std::memcmp(p, "KMRTLOG1", 8) == 0) {
    Digest256 d = sha256(Bytes(p, 24));
    if (std::memcmp(d.data(), p + 24, 32) != 0) return std::nullopt;
    return c;
  }
  return std::nullopt;
}

// RFC 6962 MTH of leaves [lo, hi) held in memory.
Hash tree_root(const std::vector<Hash>& leaves, std::uint64_t lo, std::uint64_t hi) {
  if (hi - lo == 1) return leaves[lo];
  std::uint64_t k = split_point(hi - lo);
  return node_hash(tree_root(leaves, lo, lo + k), tree_root(leaves, lo + k, hi));
}
}  // namespace

Result<std::uint64_t> TransparencyLog::read_commit() {
  std::uint8_t buf[128] = {};
  KMR_ASSIGN_OR_RETURN(std::uint64_t len, file_size(commit_fd_, dir_ + "/commit"));
  if (len == 0) {
    generation_ = 0;
    return std::uint64_t{0};
  }
  if (len != 128) return malformed(dir_ + "/commit: not a commit record (size " + std::to_string(len) + ")");
  KMR_TRY(pread_all(commit_fd_, buf, 128, 0, dir_ + "/commit"));
  std::optional<CommitSlot> best;
  for (int slot = 0; slot < 2; ++slot) {
    auto c = parse_slot(buf + 64 * slot);
    if (c && (!best || c->generation > best->generation)) best = c;
  }
  if (!best) return malformed(dir_ + "/commit: no valid commit slot");
  generation_ = best->generation;
  committed_root_ = best->root;
  return best->size;
}

Result<void> TransparencyLog::write_commit(std::uint64_t size, const Hash& root) {
  std::uint64_t gen = generation_ + 1;
  std::uint8_t rec[64] = {};
  std::memcpy(rec, "KMRTLOG2", 8);
  put_be64(rec + 8, gen);
  put_be64(rec + 16, size);
  std::memcpy(rec + 24, root.data(), 32);
  Digest256 d = sha256(Bytes(rec, 56));
  std::memcpy(rec + 56, d.data(), 8);
  KMR_ASSIGN_OR_RETURN(std::uint64_t len, file_size(commit_fd_, dir_ + "/commit"));
  if (len < 128) {
    // First commit: lay out both slots (the other one stays invalid).
    std::uint8_t zero[128] = {};
    KMR_TRY(pwrite_all(commit_fd_, zero, 128, 0, dir_ + "/commit"));
  }
  KMR_TRY(pwrite_all(commit_fd_, rec, 64, 64 * (gen % 2), dir_ + "/commit"));
  if (::fdatasync(commit_fd_) != 0) return sys_error(dir_ + "/commit");
  generation_ = gen;
  committed_root_ = root;
  return ok();
}

Result<void> TransparencyLog::verify_committed(std::uint64_t n) {
  if (n == 0) return ok();
  // Offsets and leaf hashes in bulk, entries in sequential windows: one pass over the files.
  std::vector<std::uint8_t> offsets(8 * n), stored(32 * n);
  KMR_TRY(pread_all(offsets_fd_, offsets.data(), offsets.size(), 0, dir_ + "/offsets.dat"));
  KMR_TRY(pread_all(level_fds_[0], stored.data(), stored.size(), 0, dir_ + level_name(0)));
  std::vector<Hash> leaves(n);
  constexpr std::uint64_t kWindow = 8 << 20;
  std::vector<std::uint8_t> window;
  std::uint64_t win_start = 0, start = 0;
  for (std::uint64_t i = 0; i < n; ++i) {
    const std::uint64_t end = get_be64(offsets.data() + 8 * i);
    if (end < start || end - start > kMaxLogEntryBytes)
      return malformed(dir_ + "/offsets.dat: bad end offset for entry " + std::to_string(i));
    if (end > win_start + window.size()) {  // slide the window to start at this entry
      win_start = start;
      const std::uint64_t last = get_be64(offsets.data() + 8 * (n - 1));
      window.resize(std::max<std::uint64_t>(end - start, std::min<std::uint64_t>(kWindow, last - start)));
      KMR_TRY(pread_all(entries_fd_, window.data(), window.size(), win_start, dir_ + "/entries.dat"));
    }
    leaves[i] = leaf_hash(Bytes(window.data() + (start - win_start), end - start));
    if (std::memcmp(stored.data() + 32 * i, leaves[i].data(), 32) != 0)
      return Error(ErrorCode::kVerificationFailed,
                   dir_ + ": entry " + std::to_string(i) + " does not hash to its stored leaf (entries.dat or level-00.dat changed)");
    start = end;
  }
  const Hash root = tree_root(leaves, 0, n);
  if (committed_root_ && *committed_root_ != root)
    return Error(ErrorCode::kVerificationFailed,
                 dir_ + ": the tree of the " + std::to_string(n) + " stored entries does not have the committed root (log replaced or rewritten)");
  auto stored_root = this->root(n);
  if (stored_root && *stored_root == root) return ok();
  // Derived levels disagree with the leaves: rebuild them (level 00 is primary and checked above).
  std::vector<Hash> below = leaves;
  for (std::uint32_t l = 1; (n >> l) > 0; ++l) {
    std::vector<Hash> nodes(n >> l);
    for (std::uint64_t i = 0; i < nodes.size(); ++i) nodes[i] = node_hash(below[2 * i], below[2 * i + 1]);
    KMR_TRY(pwrite_all(level_fds_[l], nodes.front().data(), 32 * nodes.size(), 0, dir_ + level_name(l)));
    if (::fdatasync(level_fds_[l]) != 0) return sys_error(dir_ + level_name(l));
    below = std::move(nodes);
  }
  KMR_ASSIGN_OR_RETURN(Hash rebuilt, this->root(n));
  if (rebuilt != root) return internal_error(dir_ + ": rebuilt levels still disagree with the leaves");
  return ok();
}

Result<std::uint64_t> TransparencyLog::entry_end(std::uint64_t index) const {
  std::uint8_t b[8];
  KMR_TRY(pread_all(offsets_fd_, b, 8, 8 * index, dir_ + "/offsets.dat"));
  return get_be64(b);
}

Result<Hash> TransparencyLog::node(std::uint32_t level, std::uint64_t index) const {
  if (level >= 64 || index >= (size() >> level) || level_fds_[level] < 0) {
    return not_found("no complete subtree at level " + std::to_string(level) + " index " + std::to_string(index));
  }
  Hash h;
  KMR_TRY(pread_all(level_fds_[level], h.data(), 32, index * 32, dir_ + level_name(level)));
  hash_reads_.fetch_add(1, std::memory_order_relaxed);
  return h;
}

Result<std::uint64_t> TransparencyLog::append(Bytes entry) {
  std::vector<ByteVector> one;
  one.emplace_back(entry.begin(), entry.end());
  return append_batch(one);
}

Result<std::uint64_t> TransparencyLog::append_batch(const std::vector<ByteVector>& entries) {
  std::lock_guard<std::mutex> lock(append_mu_);
  for (const auto& e : entries) {
    if (e.size() > kMaxLogEntryBytes) return limit_exceeded("log entry larger than 65535 bytes");
  }
  const std::uint64_t n0 = size();
  if (entries.empty()) return n0;
  std::uint64_t offset = 0;
  if (n0 > 0) {
    KMR_ASSIGN_OR_RETURN(offset, entry_end(n0 - 1));
  }
  const std::uint64_t start_offset = offset;
  ByteVector ent_buf;
  ByteVector off_buf(8 * entries.size());
  // New nodes per level, starting at index (n0 >> l).
  std::vector<ByteVector> level_bufs(64);
  // Right-edge nodes of the committed tree that are still waiting for a
  // sibling (level l has one iff bit l of n0 is set).
  Hash frontier[64];
  for (std::uint32_t l = 0; l < 64; ++l) {
    if (((n0 >> l) & 1) != 0) {
      KMR_ASSIGN_OR_RETURN(frontier[l], node(l, (n0 >> l) - 1));
    }
  }
  for (std::size_t k = 0; k < entries.size(); ++k) {
    const auto& e = entries[k];
    ent_buf.insert(ent_buf.end(), e.begin(), e.end());
    offset += e.size();
    put_be64(off_buf.data() + 8 * k, offset);
    std::uint64_t idx = n0 + k;
    Hash h = leaf_hash(e);
    std::uint32_t l = 0;
    level_bufs[0].insert(level_bufs[0].end(), h.begin(), h.end());
    while ((idx & 1) != 0) {
      h = node_hash(frontier[l], h);
      idx >>= 1;
      ++l;
      level_bufs[l].insert(level_bufs[l].end(), h.begin(), h.end());
    }
    frontier[l] = h;
  }
  const std::uint64_t n1 = n0 + entries.size();
  KMR_TRY(pwrite_all(entries_fd_, ent_buf.data(), ent_buf.size(), start_offset, dir_ + "/entries.dat"));
  KMR_TRY(pwrite_all(offsets_fd_, off_buf.data(), off_buf.size(), 8 * n0, dir_ + "/offsets.dat"));
  if (::fdatasync(entries_fd_) != 0) return sys_error(dir_ + "/entries.dat");
  if (::fdatasync(offsets_fd_) != 0) return sys_error(dir_ + "/offsets.dat");
  for (std::uint32_t l = 0; l < 64; ++l) {
    if (level_bufs[l].empty()) continue;
    if (level_fds_[l] < 0) {
      std::string path = dir_ + level_name(l);
      int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
      if (fd < 0) return sys_error(path);
      level_fds_[l] = fd;
    }
    KMR_TRY(pwrite_all(level_fds_[l], level_bufs[l].data(), level_bufs[l].size(), 32 * (n0 >> l), dir_ + level_name(l)));
    // Level 0 is primary data; upper levels are recomputed on open if short.
    if (l == 0 && ::fdatasync(level_fds_[l]) != 0) return sys_error(dir_ + level_name(l));
  }
  // Commit point: the new size and its root (complete subtrees of n1, right to left).
  std::optional<Hash> root;
  for (std::uint32_t l = 0; l < 64; ++l) {
    if (((n1 >> l) & 1) == 0) continue;
    root = root ? node_hash(frontier[l], *root) : frontier[l];
  }
  KMR_TRY(write_commit(n1, *root));
  {
    std::unique_lock<std::shared_mutex> ilock(index_mu_);
    for (std::size_t k = 0; k < entries.size(); ++k) {
      Hash h;
      std::memcpy(h.data(), level_bufs[0].data() + 32 * k, 32);
      by_leaf_.emplace(key_of(h), n0 + k);
    }
  }
  size_.store(n1, std::memory_order_release);
  return n0;
}

Result<ByteVector> TransparencyLog::entry(std::uint64_t index) const {
  if (index >= size()) return not_found("log entry " + std::to_string(index) + " does not exist");
  std::uint64_t begin = 0;
  if (index > 0) {
    KMR_ASSIGN_OR_RETURN(begin, entry_end(index - 1));
  }
  KMR_ASSIGN_OR_RETURN(std::uint64_t end, entry_end(index));
  if (end < begin || end - begin > kMaxLogEntryBytes) return malformed(dir_ + "/offsets.dat: corrupt offsets");
  ByteVector out(end - begin);
  if (!out.empty()) KMR_TRY(pread_all(entries_fd_, out.data(), out.size(), begin, dir_ + "/entries.dat"));
  return out;
}

Result<Hash> TransparencyLog::range_hash(std::uint64_t lo, std::uint64_t hi) const {
  std::uint64_t n = hi - lo;
  if (n == 0) return empty_root();
  if (std::has_single_bit(n) && lo % n == 0) {
    return node(static_cast<std::uint32_t>(std::countr_zero(n)), lo / n);
  }
  std::uint64_t k = split_point(n);
  KMR_ASSIGN_OR_RETURN(Hash left, range_hash(lo, lo + k));
  KMR_ASSIGN_OR_RETURN(Hash right, range_hash(lo + k, hi));
  return node_hash(left, right);
}

Result<Hash> TransparencyLog::root(std::uint64_t n) const {
  if (n > size()) return not_found("tree size " + std::to_string(n) + " is larger than the log (" + std::to_string(size()) + ")");
  return range_hash(0, n);
}

Result<void> TransparencyLog::path(std::uint64_t m, std::uint64_t lo, std::uint64_t hi, std::vector<Hash>& out) const {
  std::uint64_t n = hi - lo;
  if (n <= 1) return ok();
  std::uint64_t k = split_point(n);
  if (m < k) {
    KMR_TRY(path(m, lo, lo + k, out));
    KMR_ASSIGN_OR_RETURN(Hash h, range_hash(lo + k, hi));
    out.push_back(h);
  } else {
    KMR_TRY(path(m - k, lo + k, hi, out));
    KMR_ASSIGN_OR_RETURN(Hash h, range_hash(lo, lo + k));
    out.push_back(h);
  }
  return ok();
}

Result<std::vector<Hash>> TransparencyLog::inclusion_proof(std::uint64_t index, std::uint64_t n) const {
  if (n > size()) return not_found("tree size " + std::to_string(n) + " is larger than the log (" + std::to_string(size()) + ")");
  if (index >= n) return not_found("index " + std::to_string(index) + " is not below tree size " + std::to_string(n));
  std::vector<Hash> out;
  KMR_TRY(path(index, 0, n, out));
  return out;
}

Result<void> TransparencyLog::subproof(std::uint64_t m, std::uint64_t lo, std::uint64_t hi, bool b,
                                       std::vector<Hash>& out) const {
  std::uint64_t n = hi - lo;
  if (m == n) {
    if (!b) {
      KMR_ASSIGN_OR_RETURN(Hash h, range_hash(lo, hi));
      out.push_back(h);
    }
    return ok();
  }
  std::uint64_t k = split_point(n);
  if (m <= k) {
    KMR_TRY(subproof(m, lo, lo + k, b, out));
    KMR_ASSIGN_OR_RETURN(Hash h, range_hash(lo + k, hi));
    out.push_back(h);
  } else {
    KMR_TRY(subproof(m - k, lo + k, hi, false, out));
    KMR_ASSIGN_OR_RETURN(Hash h, range_hash(lo, lo + k));
    out.push_back(h);
  }
  return ok();
}

Result<std::vector<Hash>> TransparencyLog::consistency_proof(std::uint64_t old_size, std::uint64_t new_size) const {
  if (new_size > size()) return not_found("tree size " + std::to_string(new_size) + " is larger than the log (" + std::to_string(size()) + ")");
  if (old_size > new_size) return malformed("old size " + std::to_string(old_size) + " is larger than new size " + std::to_string(new_size));
  std::vector<Hash> out;
  if (old_size == 0 || old_size == new_size) return out;
  KMR_TRY(subproof(old_size, 0, new_size, true, out));
  return out;
}

std::optional<std::uint64_t> TransparencyLog::find_leaf(const Hash& h) const {
  std::shared_lock<std::shared_mutex> lock(index_mu_);
  auto it = by_leaf_.find(key_of(h));
  if (it == by_leaf_.end() || it->second >= size()) return std::nullopt;
  return it->second;
}

Result<std::string> TransparencyLog::tile(std::uint32_t level, std::uint64_t index, std::uint32_t width,
                                          std::uint64_t n) const {
  if (n > size()) return not_found("tree size larger than the log");
  if (level > 7 || width == 0 || width > kTileWidth) return not_found("no such tile");
  std::uint32_t tree_level = 8 * level;
  std::uint64_t count = n >> tree_level;
  if (index > (count / kTileWidth) || index * kTileWidth + width > count) return not_found("tile not yet available");
  std::string out(32 * width, '\0');
  if (level_fds_[tree_level] < 0) return not_found("tile not yet available");
  KMR_TRY(pread_all(level_fds_[tree_level], reinterpret_cast<std::uint8_t*>(out.data()), out.size(),
                    32 * index * kTileWidth, dir_ + level_name(tree_level)));
  hash_reads_.fetch_add(width, std::memory_order_relaxed);
  return out;
}

Result<std::string> TransparencyLog::entry_bundle(std::uint64_t index, std::uint32_t width, std::uint64_t n) const {
  if (n > size()) return not_found("tree size larger than the log");
  if (width == 0 || width > kTileWidth) return not_found("no such tile");
  if (index > n / kTileWidth || index * kTileWidth + width > n) return not_found("entry bundle not yet available");
  std::string out;
  for (std::uint64_t i = index * kTileWidth; i < index * kTileWidth + width; ++i) {
    KMR_ASSIGN_OR_RETURN(ByteVector e, entry(i));
    out.push_back(static_cast<char>(e.size() >> 8));
    out.push_back(static_cast<char>(e.size() & 0xff));
    out.append(reinterpret_cast<const char*>(e.data()), e.size());
  }
  return out;
}

std::string tile_index_path(std::uint64_t n) {
  std::string digits = std::to_string(n);
  while (digits.size() % 3 != 0) digits.insert(digits.begin(), '0');
  std::string out;
  for (std::size_t i = 0; i < digits.size(); i += 3) {
    if (i + 3 < digits.size()) {
      out += "x" + digits.substr(i, 3) + "/";
    } else {
      out += digits.substr(i, 3);
    }
  }
  return out;
}

Result<TilePath> parse_tile_path(std::string_view path) {
  if (path.size() > 128) return malformed("tile path too long");
  std::vector<std::string_view> parts;
  while (true) {
    auto slash = path.find('/');
    parts.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  if (parts.size() < 2) return malformed("tile path: expected <L>/<N> or entries/<N>");
  TilePath t;
  if (parts[0] == "entries") {
    t.entries = true;
  } else {
    std::uint64_t l = 0;
    if (!parse_dec(parts[0], l, false) || l > 7) return malformed("tile path: bad level '" + std::string(parts[0]) + "'");
    t.level = static_cast<std::uint32_t>(l);
  }
  std::size_t last = parts.size() - 1;
  if (parts.size() >= 3 && parts[last - 1].size() > 2 && parts[last - 1].substr(parts[last - 1].size() - 2) == ".p") {
    std::uint64_t w = 0;
    if (!parse_dec(parts[last], w, false) || w == 0 || w >= kTileWidth) return malformed("tile path: bad partial width");
    t.width = static_cast<std::uint32_t>(w);
    parts[last - 1].remove_suffix(2);
    parts.pop_back();
    last = parts.size() - 1;
  }
  if (last > 7) return malformed("tile path: index too long");
  std::uint64_t index = 0;
  for (std::size_t i = 1; i <= last; ++i) {
    std::string_view g = parts[i];
    if (i < last) {
      if (g.size() != 4 || g[0] != 'x') return malformed("tile path: bad index element '" + std::string(g) + "'");
      g.remove_prefix(1);
      if (i == 1 && g == "000") return malformed("tile path: non-canonical index");
    } else if (g.size() != 3) {
      return malformed("tile path: bad index element '" + std::string(g) + "'");
    }
    std::uint64_t v = 0;
    if (!parse_dec(g, v, true)) return malformed("tile path: bad index element '" + std::string(g) + "'");
    if (index > (UINT64_MAX - v) / 1000) return malformed("tile path: index overflows");
    index = index * 1000 + v;
  }
  t.index = index;
  return t;
}

std::string format_tile_path(const TilePath& t) {
  std::string out = t.entries ? "entries/" : std::to_string(t.level) + "/";
  out += tile_index_path(t.index);
  if (t.width < kTileWidth) out += ".p/" + std::to_string(t.width);
  return out;
}

}  // namespace kmr::attest
