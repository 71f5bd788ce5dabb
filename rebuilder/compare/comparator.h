#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rebuilder/base/result.h"
#include "rebuilder/compare/blob.h"
#include "rebuilder/compare/context.h"
#include "rebuilder/compare/difference.h"

namespace kmr::compare {

// One side of a comparison: a named blob, or a directory on disk.
struct Input {
  std::string name;
  BlobPtr blob;         // null for a directory
  std::string dir_path; // set for a directory
  std::string sha256;   // hex, when already known (archive members)
  bool is_directory() const { return !dir_path.empty(); }
  Bytes bytes() const { return blob ? blob->bytes() : Bytes(); }
};

// A format: recognition (magic bytes first, then the name) and a detailed
// comparison. compare() fills `out` (views as details, members recurse via
// compare_inputs); an error makes the caller fall back to a binary diff with
// a comment naming the reason.
struct Comparator {
  std::string_view kind;
  bool container;  // recursion into members counts against the depth limit
  bool (*recognize)(Bytes data, std::string_view name);
  Result<void> (*compare)(Context& ctx, const Input& a, const Input& b, int depth, Difference& out);
};

// The ordered registry: first match wins, specific before generic; the
// binary fallback is last and matches everything.
const std::vector<Comparator>& registry();
const Comparator& identify(Bytes data, std::string_view name);

// Compares two inputs; nullopt when they are identical. `depth` counts
// containers above this node.
std::optional<Difference> compare_inputs(Context& ctx, const Input& a, const Input& b, int depth);

// True for the single-stream compressors (gzip, xz, zstd, bzip2, lz4).
bool is_single_stream_compressor(const Comparator& c);
// `a` or `b` (the one named by `a_compressed`) is a compressed stream and the
// other is not: compares the decompressed side with the other side (an
// archive inside is streamed, never inflated whole) and notes the
// recompression in `out`.
Result<void> compare_recompressed(Context& ctx, const Input& a, const Input& b, bool a_compressed, int depth,
                                  Difference& out);

// The binary fallback: an xxd-style diff of the two byte ranges with the
// truncation/limit markers applied. Adds nothing when identical.
void add_hex_diff(Context& ctx, Bytes a, Bytes b, Difference& out);
// Sets out.unified_diff from a text diff with limits and markers applied.
void set_text_diff(Context& ctx, std::string_view a, std::string_view b, Difference& out);
// A child view node (source1 == source2 == label) holding a text diff, added
// only when the texts differ.
void add_text_view(Context& ctx, Difference& parent, const std::string& label, const std::string& kind,
                   std::string_view a, std::string_view b);

// ---- containers -------------------------------------------------------

enum class MemberType { kFile, kDirectory, kSymlink, kHardlink, kOther };

struct Member {
  std::string path;
  MemberType type = MemberType::kFile;
  std::uint64_t size = 0;
  std::uint32_t mode = 0;
  std::string sha256;   // hex, files only
  std::string link;     // symlink/hardlink target
  BlobPtr content;      // files: null when not retained in the listing pass
  std::string error;    // reading this member failed (content is partial/absent)
};

struct MemberList {
  std::vector<Member> members;
  std::vector<std::string> comments;  // truncations, corrupt tail, bombs...
};

// Loads content for members whose content is null (a second streaming pass).
using Fetcher = std::function<Result<void>(MemberList& list, const std::vector<std::size_t>& wanted)>;

// Pairs members (normalised path, then optional global fuzzy assignment),
// adds a "file list" view, then compares differing pairs in parallel.
void compare_members(Context& ctx, MemberList& a, MemberList& b, const Fetcher& fetch_a, const Fetcher& fetch_b,
                     int depth, Difference& out);

}  // namespace kmr::compare
