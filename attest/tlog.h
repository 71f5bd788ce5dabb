#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "attest/merkle.h"
#include "rebuilder/base/bytes.h"
#include "rebuilder/base/result.h"

namespace kmr::attest {

inline constexpr std::size_t kMaxLogEntryBytes = 65535;  // tlog-tiles entry bundles use a u16 length
inline constexpr std::uint64_t kTileWidth = 256;

// An append-only RFC 6962 log on disk.
//
// Layout of the directory:
//   entries.dat   entry bytes, concatenated
//   offsets.dat   big-endian u64 end offset of each entry
//   level-NN.dat  the 32-byte hashes of every COMPLETE subtree at tree level
//                 NN (level 00 = leaf hashes; node i of level l covers leaves
//                 [i*2^l, (i+1)*2^l))
//   commit        the committed tree size and root: two checksummed 64-byte slots
//                 written alternately (a torn write leaves the other intact)
//
// An append writes beyond the committed size, fdatasyncs entries, offsets
// and level 00, then commits the new size (one slot write + fdatasync).
// Levels >= 1 are derived: not synced per append, recomputed on open when
// short. On open every file is truncated back to the committed size, so a
// crash (kill -9) at any point reopens with exactly the last committed
// tree: never a fork. Roots and proofs read O(log n) stored hashes (no tree
// rebuild). Open also re-reads every committed entry: each must hash to its
// stored leaf, and the tree over those leaves must have the committed root, so
// a log whose entries or hashes were changed or replaced behind the writer's
// back is refused (derived levels that disagree are rebuilt from the leaves).
//
// The directory is locked (flock on `commit`) while open: a second open fails
// with kDbBusy. Appends are serialised by a mutex; reads may run concurrently with appends
// (they only touch committed data).
class TransparencyLog {
 public:
  static Result<std::unique_ptr<TransparencyLog>> open(const std::string& dir);
  ~TransparencyLog();
  TransparencyLog(const TransparencyLog&) = delete;
  TransparencyLog& operator=(const TransparencyLog&) = delete;

  std::uint64_t size() const { return size_.load(std::memory_order_acquire); }
  const std::string& dir() const { return dir_; }

  // Appends and commits durably; returns the index of the (first) entry.
  Result<std::uint64_t> append(Bytes entry);
  Result<std::uint64_t> append_batch(const std::vector<ByteVector>& entries);

  Result<ByteVector> entry(std::uint64_t index) const;
  Result<Hash> leaf(std::uint64_t index) const { return node(0, index); }
  // Root of the first `size` leaves (size <= size()).
  Result<Hash> root(std::uint64_t size) const;
  Result<std::vector<Hash>> inclusion_proof(std::uint64_t index, std::uint64_t size) const;
  Result<std::vector<Hash>> consistency_proof(std::uint64_t old_size, std::uint64_t new_size) const;
  // Index of the first entry with this leaf hash, if any.
  std::optional<std::uint64_t> find_leaf(const Hash& leaf_hash) const;

  // tlog-tiles: hashes of tile (level, index) with `width` entries (1..256)
  // as of tree size `size`; NotFound if the tile does not exist at that size.
  Result<std::string> tile(std::uint32_t level, std::uint64_t index, std::uint32_t width,
                           std::uint64_t size) const;
  Result<std::string> entry_bundle(std::uint64_t index, std::uint32_t width, std::uint64_t size) const;

  // Stored hashes read since open (benchmarks check O(log n) reads).
  std::uint64_t hash_reads() const { return hash_reads_.load(std::memory_order_relaxed); }

 private:
  explicit TransparencyLog(std::string dir) : dir_(std::move(dir)) {}
  Result<Hash> node(std::uint32_t level, std::uint64_t index) const;
  // MTH of leaves [lo, hi), composed from complete subtrees.
  Result<Hash> range_hash(std::uint64_t lo, std::uint64_t hi) const;
  Result<void> path(std::uint64_t m, std::uint64_t lo, std::uint64_t hi, std::vector<Hash>& out) const;
  Result<void> subproof(std::uint64_t m, std::uint64_t lo, std::uint64_t hi, bool b,
                        std::vector<Hash>& out) const;
  Result<int> level_fd(std::uint32_t level);
  Result<std::uint64_t> entry_end(std::uint64_t index) const;
  Result<std::uint64_t> read_commit();
  Result<void> write_commit(std::uint64_t size, const Hash& root);
  // On open: every committed entry hashes to its stored leaf, the derived levels agree with
  // the leaves (rebuilt when not), and the tree's root is the committed root.
  Result<void> verify_committed(std::uint64_t n);

  std::string dir_;
  int entries_fd_ = -1;
  int offsets_fd_ = -1;
  int commit_fd_ = -1;
  std::uint64_t generation_ = 0;
  std::optional<Hash> committed_root_;  // absent in records written before roots were committed
  int level_fds_[64];
  std::atomic<std::uint64_t> size_{0};
  std::mutex append_mu_;
  mutable std::shared_mutex index_mu_;
  std::unordered_map<std::string, std::uint64_t> by_leaf_;  // leaf hash bytes -> index
  mutable std::atomic<std::uint64_t> hash_reads_{0};
};

// "x001/x234/067" for 1234067; "000" for 0.
std::string tile_index_path(std::uint64_t n);

struct TilePath {
  bool entries = false;
  std::uint32_t level = 0;
  std::uint64_t index = 0;
  std::uint32_t width = 256;  // 256 = full tile
};

// Parses the part after "tile/": "<L>/<N>[.p/<W>]" or "entries/<N>[.p/<W>]".
Result<TilePath> parse_tile_path(std::string_view path);
std::string format_tile_path(const TilePath& t);

}  // namespace kmr::attest
