#include "rebuilder/compare/archive_members.h"

#include <algorithm>
#include <memory>
#include <unordered_map>

#include "rebuilder/archive/archive_reader.h"
#include "rebuilder/archive/decompress.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"

namespace kmr::compare {

namespace {

constexpr std::uint64_t kRatioFloor = 64ull << 20;  // ratio checks start beyond 64 MiB out

// The shared reader in lenient mode: odd members are shown, anomalies become
// the listing's comments, caps end the listing with a comment.
archive::ReaderOptions lenient_options(const Limits& limits, const std::string& what) {
  archive::ReaderOptions o;
  o.mode = archive::Mode::kLenient;
  o.limits = limits;
  o.name = what;
  o.ratio_slack = kRatioFloor;
  // The two sides of a comparison are decoded at the same time, one core
  // each; liblzma's threaded decoder would add two buffered blocks per side.
  o.threaded_xz = false;
  return o;
}

// The source in 4 MiB chunks, each a run of the source itself (content of an
// uncompressed archive is then handed out as runs of the source, kept as
// zero-copy slices); the chunk before the previous one is released, so a
// mapped input is not all resident at once.
class BlobStream final : public archive::InputStream {
 public:
  explicit BlobStream(const BlobPtr& blob) : blob_(blob), data_(blob ? blob->bytes() : Bytes()) {}
  Result<Bytes> next() override {
    if (blob_ && pos_ >= kChunk * 2) blob_->release(pos_ - kChunk * 2, kChunk);
    const std::size_t n = std::min(kChunk, data_.size() - std::min(pos_, data_.size()));
    const Bytes out = data_.subspan(std::min(pos_, data_.size()), n);
    pos_ += kChunk;
    return out;
  }

 private:
  static constexpr std::size_t kChunk = 4 << 20;
  const BlobPtr& blob_;
  Bytes data_;
  std::size_t pos_ = 0;
};

Result<archive::ArchiveStats> read_lenient(const Limits& limits, const BlobPtr& source, const std::string& what,
                                           const archive::Visitor& visitor) {
  BlobStream in(source);
  return archive::read_archive(in, lenient_options(limits, what), visitor);
}

MemberType member_type(const archive::Entry& e) {
  if (e.type == archive::EntryType::kHardlink) return MemberType::kHardlink;
  if (!e.special.empty()) return MemberType::kOther;
  switch (e.type) {
    case archive::EntryType::kFile: return MemberType::kFile;
    case archive::EntryType::kDirectory: return MemberType::kDirectory;
    case archive::EntryType::kSymlink: return MemberType::kSymlink;
    case archive::EntryType::kHardlink: return MemberType::kHardlink;
  }
  return MemberType::kOther;
}

// Retained content as a zero-copy slice of `source` while the reader's
// blocks are one contiguous run inside it; copied from the first block that
// is not.
class Keeper {
 public:
  Keeper(const BlobPtr& source, bool retain) : source_(source), retain_(retain) {}

  void add(Bytes chunk) {
    if (!retain_ || chunk.empty()) return;
    if (copying_) {
      content_.insert(content_.end(), chunk.begin(), chunk.end());
      return;
    }
    const Bytes whole = source_ ? source_->bytes() : Bytes();
    const std::uint8_t* p = chunk.data();
    const bool inside = !whole.empty() && p >= whole.data() && chunk.size() <= whole.size() &&
                        static_cast<std::size_t>(p - whole.data()) <= whole.size() - chunk.size();
    if (inside && (length_ == 0 || p == whole.data() + offset_ + length_)) {
      if (length_ == 0) offset_ = static_cast<std::size_t>(p - whole.data());
      length_ += chunk.size();
      return;
    }
    copying_ = true;
    if (length_ > 0) content_.assign(whole.begin() + static_cast<long>(offset_), whole.begin() + static_cast<long>(offset_ + length_));
    content_.insert(content_.end(), chunk.begin(), chunk.end());
  }

  BlobPtr finish() {
    if (!copying_ && length_ > 0) return blob_slice(source_, offset_, length_);
    return blob_from_vector(std::move(content_));
  }

 private:
  const BlobPtr& source_;
  bool retain_;
  bool copying_ = false;
  std::size_t offset_ = 0;
  std::size_t length_ = 0;
  ByteVector content_;
};

// Reads the content of a file member: hash, optional retention. A read error
// is recorded on the member (the reader notes why the archive ends, if it
// does). Returns false on a timeout: the whole listing stops.
bool read_member(Context& ctx, archive::MemberStream& in, Member& m, bool retain, const BlobPtr& source,
                 BlobPtr& kept) {
  Sha256 h;
  Keeper content(source, retain);
  std::uint64_t got = 0;
  bool keep_going = true;
  for (;;) {
    if (ctx.timed_out()) {
      m.error = "timeout while reading member";
      keep_going = false;
      break;
    }
    auto chunk = in.next();
    if (!chunk) {
      m.error = "reading member data failed: " + chunk.error().message();
      break;
    }
    if (chunk->empty()) break;
    got += chunk->size();
    h.update(*chunk);
    content.add(*chunk);
  }
  m.sha256 = to_hex(h.finish());
  m.size = std::max<std::uint64_t>(m.size, got);
  if (retain) kept = content.finish();
  return keep_going;
}

// One streaming pass. `want` (when set) selects which member ordinals keep
// content and the pass stops after the last of them; otherwise content goes
// to the hook, or is kept while the retain budget lasts.
Result<MemberList> pass(Context& ctx, const BlobPtr& source, const std::string& what, const std::vector<bool>* want,
                        const RetainHook* hook) {
  MemberList list;
  std::uint64_t retained = 0;
  std::size_t last_wanted = 0;
  if (want != nullptr) {
    for (std::size_t i = 0; i < want->size(); ++i) {
      if ((*want)[i]) last_wanted = i;
    }
  }
  bool stopped = false;  // by this visitor: everything wanted is read, or the timeout
  auto visit = [&](const archive::Entry& e, archive::MemberStream& content) -> Result<void> {
    const std::size_t ordinal = list.members.size();
    Member m;
    m.path = e.stored_path;
    m.type = member_type(e);
    m.size = e.size;
    m.mode = e.mode;
    if (m.type == MemberType::kSymlink || m.type == MemberType::kHardlink) m.link = e.stored_link;
    bool keep_going = true;
    if (m.type == MemberType::kFile) {
      bool retain;
      if (hook != nullptr) {
        retain = true;
      } else if (want != nullptr) {
        retain = ordinal < want->size() && (*want)[ordinal];
      } else {
        retain = retained + m.size <= ctx.options().retain_bytes;
        if (retain) retained += m.size;
      }
      BlobPtr kept;
      keep_going = read_member(ctx, content, m, retain, source, kept);
      if (hook != nullptr && m.error.empty()) {
        (*hook)(m, std::move(kept));
      } else if (retain && hook == nullptr) {
        m.content = std::move(kept);
      }
    }
    list.members.push_back(std::move(m));
    if (!keep_going) list.comments.push_back(kTimeoutComment);
    if (!keep_going || (want != nullptr && ordinal >= last_wanted)) {
      stopped = true;
      return Error(ErrorCode::kTimeout, "listing stopped");
    }
    return ok();
  };
  auto r = read_lenient(ctx.options().limits, source, what, visit);
  if (r) {
    list.comments.insert(list.comments.end(), r->notes.begin(), r->notes.end());
  } else if (!stopped) {
    if (list.members.empty()) return malformed(r.error().message());
    list.comments.push_back(r.error().message());
  }
  return list;
}

}  // namespace

Result<MemberList> list_archive(Context& ctx, const BlobPtr& source, const std::string& what, const RetainHook* hook) {
  return pass(ctx, source, what, nullptr, hook);
}

Result<void> fetch_archive(Context& ctx, const BlobPtr& source, const std::string& what, MemberList& list,
                           const std::vector<std::size_t>& wanted) {
  std::vector<bool> want(list.members.size(), false);
  for (auto i : wanted) {
    if (i < want.size()) want[i] = true;
  }
  KMR_ASSIGN_OR_RETURN(MemberList again, pass(ctx, source, what, &want, nullptr));
  for (auto i : wanted) {
    if (i < again.members.size() && i < list.members.size() && again.members[i].path == list.members[i].path) {
      list.members[i].content = again.members[i].content;
      if (!again.members[i].error.empty()) list.members[i].error = again.members[i].error;
    } else if (i < list.members.size()) {
      list.members[i].error = "member not found again in the second pass";
    }
  }
  return ok();
}

Result<ByteVector> decompress_stream(Context& ctx, Bytes data, const std::string& what) {
  archive::Codec codec = archive::detect_codec(data);
  if (codec == archive::Codec::kNone) return unsupported(what + ": no known compression magic");
  const Limits& lim = ctx.options().limits;
  archive::DecompressOptions opt;
  opt.max_output = lim.max_member_bytes;
  ByteVector out;
  auto r = archive::decompress(data, codec, [&](Bytes chunk) -> Result<void> {
    out.insert(out.end(), chunk.begin(), chunk.end());
    if (out.size() > kRatioFloor && out.size() / std::max<std::size_t>(data.size(), 1) > lim.max_compression_ratio) {
      return limit_exceeded("decompression stopped after " + std::to_string(out.size()) + " bytes: ratio exceeds " +
                            std::to_string(lim.max_compression_ratio) + ":1 (possible decompression bomb)");
    }
    if (ctx.timed_out()) return Error(ErrorCode::kTimeout, "timeout during decompression");
    return ok();
  }, opt);
  if (!r) {
    Error e = std::move(r).error();
    if (e.code() == ErrorCode::kLimitExceeded && e.message().find("bomb") == std::string::npos) {
      return limit_exceeded(e.to_string() + "; decompression stopped (possible decompression bomb)").with_context("while decompressing " + what);
    }
    return std::move(e).with_context("while decompressing " + what);
  }
  return out;
}

bool opens_as_archive(Bytes data) {
  bool opened = false;
  archive::MemoryStream in(data);
  (void)archive::read_archive(in, lenient_options(Limits{}, "probe"),
                              [&](const archive::Entry&, archive::MemberStream&) -> Result<void> {
                                opened = true;
                                return Error(ErrorCode::kTimeout, "probe done");
                              });
  return opened;
}

}  // namespace kmr::compare
