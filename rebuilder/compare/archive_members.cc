#include "rebuilder/compare/archive_members.h"

#include <archive.h>
#include <archive_entry.h>

#include <algorithm>
#include <memory>
#include <unordered_map>

#include "rebuilder/archive/decompress.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"

namespace kmr::compare {

namespace {

struct ArchiveDeleter {
  void operator()(::archive* a) const { archive_read_free(a); }
};
using ArchivePtr = std::unique_ptr<::archive, ArchiveDeleter>;

constexpr std::uint64_t kRatioFloor = 64ull << 20;  // ratio checks start beyond 64 MiB out

ArchivePtr open_archive(Bytes data, bool raw) {
  ArchivePtr a(archive_read_new());
  archive_read_support_filter_all(a.get());
  if (raw) {
    archive_read_support_format_raw(a.get());
  } else {
    archive_read_support_format_tar(a.get());
    archive_read_support_format_cpio(a.get());
    archive_read_support_format_ar(a.get());
  }
  if (archive_read_open_memory(a.get(), data.data(), data.size()) != ARCHIVE_OK) return nullptr;
  return a;
}

std::string err_text(::archive* a) {
  const char* e = archive_error_string(a);
  return e != nullptr ? e : "unknown libarchive error";
}

MemberType member_type(archive_entry* e) {
  switch (archive_entry_filetype(e)) {
    case AE_IFREG: return archive_entry_hardlink(e) != nullptr ? MemberType::kHardlink : MemberType::kFile;
    case AE_IFDIR: return MemberType::kDirectory;
    case AE_IFLNK: return MemberType::kSymlink;
    default: return archive_entry_hardlink(e) != nullptr ? MemberType::kHardlink : MemberType::kOther;
  }
}

// Reads the data of the current entry: hash, optional retention, caps.
// Returns false when the whole archive must stop (bomb, fatal error, timeout).
// Retained content as a zero-copy slice of `source` while libarchive's
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

bool read_member(Context& ctx, ::archive* a, Member& m, bool retain, std::uint64_t& total_out,
                 const BlobPtr& source, std::vector<std::string>& comments, BlobPtr* kept) {
  const Limits& lim = ctx.options().limits;
  Sha256 h;
  Keeper content(source, retain);
  std::uint64_t got = 0;
  bool keep_going = true;
  for (;;) {
    const void* buf = nullptr;
    size_t len = 0;
    la_int64_t off = 0;
    int r = archive_read_data_block(a, &buf, &len, &off);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) {
      m.error = "reading member data failed: " + err_text(a);
      keep_going = r != ARCHIVE_FATAL;
      if (!keep_going) comments.push_back("archive corrupt or truncated at member " + m.path + ": " + err_text(a));
      break;
    }
    // Sparse files: fill holes with zeros.
    if (off >= 0 && static_cast<std::uint64_t>(off) > got) {
      std::uint64_t hole = static_cast<std::uint64_t>(off) - got;
      if (hole > lim.max_member_bytes) {
        m.error = "sparse hole beyond the member size limit";
        break;
      }
      ByteVector zeros(static_cast<std::size_t>(hole), 0);
      h.update(Bytes(zeros.data(), zeros.size()));
      content.add(Bytes(zeros.data(), zeros.size()));
      got += hole;
      total_out += hole;
    }
    Bytes chunk(static_cast<const std::uint8_t*>(buf), len);
    got += len;
    total_out += len;
    if (got > lim.max_member_bytes) {
      m.error = "member exceeds " + std::to_string(lim.max_member_bytes) + " bytes; decompression stopped";
      comments.push_back("decompression of " + m.path + " stopped at the member size limit (possible decompression bomb)");
      keep_going = false;
      break;
    }
    std::uint64_t in = static_cast<std::uint64_t>(std::max<la_int64_t>(archive_filter_bytes(a, -1), 1));
    if (total_out > kRatioFloor && total_out / in > lim.max_compression_ratio) {
      m.error = "decompression stopped: ratio exceeds " + std::to_string(lim.max_compression_ratio) + ":1";
      comments.push_back("decompression stopped in " + m.path + " after " + std::to_string(total_out) +
                         " bytes: ratio exceeds " + std::to_string(lim.max_compression_ratio) +
                         ":1 (possible decompression bomb)");
      keep_going = false;
      break;
    }
    if (total_out > lim.max_total_bytes) {
      m.error = "archive exceeds the total size limit; decompression stopped";
      comments.push_back("decompression stopped at the total size limit of " + std::to_string(lim.max_total_bytes) + " bytes");
      keep_going = false;
      break;
    }
    if (ctx.timed_out()) {
      m.error = "timeout while reading member";
      comments.push_back(kTimeoutComment);
      keep_going = false;
      break;
    }
    h.update(chunk);
    content.add(chunk);
  }
  m.sha256 = to_hex(h.finish());
  if (m.type == MemberType::kFile) m.size = std::max<std::uint64_t>(m.size, got);
  if (retain && kept != nullptr) {
    *kept = content.finish();
  } else if (retain) {
    m.content = content.finish();
  }
  return keep_going;
}

// One streaming pass. `want` (when set) selects which member ordinals keep
// content; otherwise content is kept while the retain budget lasts.
Result<MemberList> pass(Context& ctx, const BlobPtr& source, const std::string& what, const std::vector<bool>* want,
                        const RetainHook* hook) {
  const Bytes data = source ? source->bytes() : Bytes();
  ArchivePtr a = open_archive(data, false);
  if (!a) return malformed(what + ": cannot open as an archive");
  MemberList list;
  std::uint64_t total_out = 0;
  std::uint64_t retained = 0;
  std::uint64_t ordinal = 0;
  std::uint64_t last_wanted = 0;
  if (want != nullptr) {
    for (std::uint64_t i = 0; i < want->size(); ++i) {
      if ((*want)[i]) last_wanted = i;
    }
  }
  for (;;) {
    if (want != nullptr && ordinal > last_wanted) break;  // everything wanted is read
    if (list.members.size() >= ctx.options().limits.max_members) {
      list.comments.push_back("member limit reached; listing truncated");
      break;
    }
    archive_entry* e = nullptr;
    int r = archive_read_next_header(a.get(), &e);
    if (r == ARCHIVE_EOF) break;
    if (r == ARCHIVE_FATAL || r == ARCHIVE_RETRY) {
      if (list.members.empty()) return malformed(what + ": " + err_text(a.get()));
      list.comments.push_back("archive corrupt or truncated after " + std::to_string(list.members.size()) +
                              " members: " + err_text(a.get()));
      break;
    }
    if (r == ARCHIVE_WARN) list.comments.push_back("warning at member " + std::to_string(ordinal) + ": " + err_text(a.get()));
    Member m;
    const char* p = archive_entry_pathname(e);
    m.path = p != nullptr ? p : "<unnamed " + std::to_string(ordinal) + ">";
    if (m.path.size() > 4096) m.path = m.path.substr(0, 4096) + "...";
    m.type = member_type(e);
    m.size = archive_entry_size_is_set(e) ? static_cast<std::uint64_t>(std::max<la_int64_t>(archive_entry_size(e), 0)) : 0;
    m.mode = static_cast<std::uint32_t>(archive_entry_perm(e));
    if (m.type == MemberType::kSymlink && archive_entry_symlink(e) != nullptr) m.link = archive_entry_symlink(e);
    if (m.type == MemberType::kHardlink && archive_entry_hardlink(e) != nullptr) m.link = archive_entry_hardlink(e);
    bool keep_going = true;
    if (m.type == MemberType::kFile) {
      bool retain;
      BlobPtr kept;
      if (hook != nullptr) {
        retain = true;
      } else if (want != nullptr) {
        retain = ordinal < want->size() && (*want)[ordinal];
      } else {
        retain = retained + m.size <= ctx.options().retain_bytes;
        if (retain) retained += m.size;
      }
      keep_going = read_member(ctx, a.get(), m, retain, total_out, source, list.comments,
                               hook != nullptr ? &kept : nullptr);
      if (hook != nullptr && m.error.empty()) (*hook)(m, std::move(kept));
    }
    list.members.push_back(std::move(m));
    ++ordinal;
    if (!keep_going) break;
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
  ArchivePtr a = open_archive(data, false);
  if (!a) return false;
  archive_entry* e = nullptr;
  int r = archive_read_next_header(a.get(), &e);
  return r == ARCHIVE_OK || r == ARCHIVE_WARN;
}

}  // namespace kmr::compare
