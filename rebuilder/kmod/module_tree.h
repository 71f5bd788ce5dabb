#pragma once

// Kernel module trees: modules.order parsing, leaf hashing of module files
// (plain or .ko.zst/.ko.xz/.ko.gz by name, streamed, in parallel), the tree
// of a build or installed tree (`kmr merkle`), and verification of every
// installed module's Merkle proof against a root (`kmr modules verify`).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rebuilder/archive/decompress.h"
#include "rebuilder/base/bytes.h"
#include "rebuilder/base/result.h"
#include "rebuilder/kmod/merkle.h"
#include "rebuilder/kmod/trailer.h"

namespace kmr::kmod {

struct OrderLimits {
  std::uint64_t max_entries = 1'000'000;
  std::uint64_t max_line_len = 4096;
};

// The module paths of a modules.order text, relative to its directory:
// blank lines skipped, a trailing ".o" replaced by `suffix`, installed-form
// lines (.ko, .ko.zst, .ko.xz, .ko.gz) kept as they are. Rejects absolute
// paths, ".." components, other suffixes, duplicates and over-long input.
// `what` names the file in errors. An empty list is not an error here.
Result<std::vector<std::string>> parse_modules_order(std::string_view text, std::string_view suffix,
                                                     std::string_view what, const OrderLimits& limits = {});

// One module's content hashed as a leaf.
struct HashedModule {
  Digest256 leaf{};
  std::uint32_t pos = 0;            // the position used in the leaf
  std::uint64_t content_length = 0; // decompressed, without trailer
  std::string codec = "none";       // compression of the file
  TrailerKind kind = TrailerKind::kNone;
  std::optional<MerkleProof> proof;
  std::optional<Pkcs7Info> pkcs7;
};

struct HashOptions {
  std::uint64_t max_module_bytes = 1ull << 30;  // decompressed cap per module
  unsigned threads = 0;                         // 0: one per core
  // Cut a signature or proof trailer off before hashing (installed modules).
  // The kernel's tool hashes build-tree files exactly as they are: off.
  bool strip_trailer = true;
  // The kernel's tool cannot hash an empty module file (mmap of 0 bytes).
  bool allow_empty = true;
};

// The compression a module file's name declares: zstd for ".ko.zst", xz for
// ".ko.xz", gzip for ".ko.gz", none for anything else. Contents are never
// sniffed: a ".ko" that starts with compressor magic is raw module bytes.
archive::Codec module_codec_from_name(std::string_view path);

// The proof file the kernel's tool writes for a module path: the path with
// its module suffix (`suffix`, or .ko, .ko.zst, .ko.xz, .ko.gz) replaced by
// ".merkle" (drivers/net/foo.ko -> drivers/net/foo.merkle).
std::string proof_path_for(std::string_view module_path, std::string_view suffix);

// Streams a module file once: decompresses as its name says, holds back the
// last kMaxTrailerSize bytes, strips the trailer (options.strip_trailer) and
// hashes the rest as the leaf at `pos`. With `use_proof_pos`, a Merkle
// trailer whose position differs from `pos` makes it hash the file again at
// the proof's position.
Result<HashedModule> hash_module_file(const std::string& path, std::uint32_t pos, bool use_proof_pos,
                                      const HashOptions& options = {});

// A tree over a modules.order file (the kernel tool's semantics).
struct ComputedTree {
  std::vector<std::string> module_paths;  // as resolved on disk
  std::vector<std::string> proof_paths;   // <module path without suffix>.merkle
  MerkleTree tree;
};
Result<ComputedTree> compute_tree(const std::string& modules_order, std::string_view suffix,
                                  const HashOptions& options = {});

enum class ModuleStatus { kVerified, kFailed, kUnauthenticated };
std::string_view module_status_name(ModuleStatus s);  // "verified", "failed", "unauthenticated"

struct ModuleResult {
  std::string path;  // as listed (or found) in the tree
  ModuleStatus status = ModuleStatus::kFailed;
  std::string reason;
  std::string trailer = "none";  // "none", "pkcs7", "merkle"
  std::optional<std::uint32_t> pos;
  std::optional<Pkcs7Info> pkcs7;
};

// Verifies one decompressed module held in memory against `root`, exactly
// as the kernel does. Modules without a Merkle proof are unauthenticated; a
// malformed trailer or a proof that does not lead to the root is failed.
ModuleResult verify_module_bytes(Bytes module, const MerkleRoot& root, std::string_view what);

struct TreeReport {
  MerkleRoot root;
  std::uint64_t count = 0;  // modules.order entries
  std::vector<ModuleResult> modules;
  std::vector<std::string> problems;  // tree-wide: coverage, levels
  std::uint64_t verified = 0;
  std::uint64_t failed = 0;
  std::uint64_t unauthenticated = 0;
  bool ok = false;
};

// Resolves a modules.order entry inside `dir`: the path itself or with
// .zst/.xz/.gz appended (depmod lists "foo.ko" for "foo.ko.zst").
std::optional<std::string> resolve_module_file(const std::string& dir, const std::string& entry);

// Verifies an installed tree (a directory with modules.order) against root:
// every module's proof, positions 0..n-1 each exactly once, n equal to the
// modules.order count; modules without a proof (or not listed in
// modules.order) are unauthenticated. Errors only for an unusable tree
// (no or empty modules.order, a bad line).
Result<TreeReport> verify_module_tree(const std::string& dir, const MerkleRoot& root, const HashOptions& options = {});

// A decompressed module held in memory (trailer included), named by its
// path relative to the module directory (e.g. "kernel/fs/foo.ko.zst").
struct MemoryModule {
  std::string path;
  Bytes content;
};

// The same checks as verify_module_tree over modules held in memory (the
// package verifier streams them out of archives): `modules_order` is the
// text of the installed modules.order; each entry matches the module whose
// path is the entry itself or the entry plus .zst/.xz/.gz. Modules matching
// no entry are unauthenticated ("not listed in modules.order").
Result<TreeReport> verify_modules_in_memory(std::string_view modules_order, const std::vector<MemoryModule>& modules,
                                            const MerkleRoot& root, const HashOptions& options = {});

}  // namespace kmr::kmod
