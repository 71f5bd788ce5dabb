// The ordered comparator registry and the container/text/binary formats.
#include "rebuilder/compare/formats.h"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <unordered_map>
#include <thread>

#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"
#include "rebuilder/compare/archive_members.h"
#include "rebuilder/compare/pairing.h"

namespace kmr::compare {

namespace {

bool starts_with(Bytes d, std::string_view magic, std::size_t at = 0) {
  return d.size() >= at + magic.size() && std::memcmp(d.data() + at, magic.data(), magic.size()) == 0;
}

// ---- directory ----

Result<MemberList> list_directory(const std::string& root) {
  namespace fs = std::filesystem;
  MemberList list;
  std::error_code ec;
  fs::recursive_directory_iterator it(root, fs::directory_options::none, ec);
  if (ec) return io_error(root + ": cannot read directory: " + ec.message());
  std::vector<std::string> rels;
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) {
      list.comments.push_back(root + ": " + ec.message());
      break;
    }
    rels.push_back(it->path().lexically_relative(root).generic_string());
  }
  std::sort(rels.begin(), rels.end());
  for (const auto& rel : rels) {
    Member m;
    m.path = rel;
    fs::path full = fs::path(root) / rel;
    auto st = fs::symlink_status(full, ec);
    if (ec) {
      m.type = MemberType::kOther;
      m.error = ec.message();
      list.members.push_back(std::move(m));
      continue;
    }
    m.mode = static_cast<std::uint32_t>(st.permissions()) & 07777;
    if (fs::is_symlink(st)) {
      m.type = MemberType::kSymlink;
      m.link = fs::read_symlink(full, ec).string();
    } else if (fs::is_directory(st)) {
      m.type = MemberType::kDirectory;
    } else if (fs::is_regular_file(st)) {
      m.type = MemberType::kFile;
      m.size = fs::file_size(full, ec);
      auto h = sha256_file(full.string());
      if (h) {
        m.sha256 = to_hex(*h);
      } else {
        m.error = h.error().to_string();
      }
    } else {
      m.type = MemberType::kOther;
    }
    list.members.push_back(std::move(m));
  }
  return list;
}

Fetcher directory_fetcher(const std::string& root) {
  return [root](MemberList& l, const std::vector<std::size_t>& wanted) -> Result<void> {
    for (auto i : wanted) {
      auto b = blob_from_file(root + "/" + l.members[i].path);
      if (b) {
        l.members[i].content = *b;
      } else {
        l.members[i].error = b.error().to_string();
      }
    }
    return ok();
  };
}

bool never(Bytes, std::string_view) { return false; }

Result<void> compare_directory(Context& ctx, const Input& a, const Input& b, int depth, Difference& out) {
  KMR_ASSIGN_OR_RETURN(MemberList la, list_directory(a.dir_path));
  KMR_ASSIGN_OR_RETURN(MemberList lb, list_directory(b.dir_path));
  compare_members(ctx, la, lb, directory_fetcher(a.dir_path), directory_fetcher(b.dir_path), depth, out);
  return ok();
}

// ---- libarchive containers ----

// Both sides are listed at the same time, one thread each, and publish
// (normalised path, hash) on a shared board: a member whose counterpart was
// already seen with the same hash is dropped at once, so only differing or
// not-yet-matched members stay in memory (bounded by retain_bytes), and the
// usual case needs no second decompression pass. The sides pace each other:
// one that holds more than `lead` bytes of members the other has not reached
// yet waits for it (unless the other is itself waiting or done), so two
// archives in a similar order are compared in about `lead` bytes whatever
// their size.
class RetainBoard {
 public:
  RetainBoard(std::uint64_t budget, std::uint64_t lead) : budget_(budget), lead_(lead) {}

  void offer(int side, const Member& m, BlobPtr content) {
    std::unique_lock<std::mutex> lock(mu_);
    for (auto& r : kernel_releases({m.path})) {
      if (std::find(releases_[side].begin(), releases_[side].end(), r) == releases_[side].end()) releases_[side].push_back(r);
    }
    std::string key = normalise_path(m.path, releases_[side]);
    Entry& e = map_[key];
    if (e.seen[side]) return;  // duplicate path: left to the second pass
    e.seen[side] = true;
    e.sha[side] = m.sha256;
    e.path[side] = m.path;
    const int other = 1 - side;
    if (e.seen[other]) settle(other, e);  // counterpart found: no longer waiting for this side
    if (e.seen[other] && e.sha[other] == m.sha256) {
      if (e.content[other]) {
        used_ -= e.content[other]->bytes().size();
        e.content[other].reset();
      }
    } else if (used_ + content->bytes().size() <= budget_) {
      used_ += content->bytes().size();
      e.content[side] = std::move(content);
      if (!e.seen[other]) {
        e.pending[side] = true;
        pending_[side] += e.content[side]->bytes().size();
      }
    }
    changed_.notify_all();
    while (pending_[side] > lead_ && active_[other] && !waiting_[other]) {
      waiting_[side] = true;
      changed_.wait(lock);
      waiting_[side] = false;
    }
  }

  // `side` has listed everything: the other side no longer waits for it.
  void finish(int side) {
    std::lock_guard<std::mutex> lock(mu_);
    active_[side] = false;
    changed_.notify_all();
  }

  void attach(int side, MemberList& list) {
    std::lock_guard<std::mutex> lock(mu_);
    std::unordered_map<std::string, BlobPtr> by_path;
    for (auto& [key, e] : map_) {
      if (e.content[side]) by_path[e.path[side]] = e.content[side];
    }
    for (auto& m : list.members) {
      auto it = by_path.find(m.path);
      if (it != by_path.end() && m.type == MemberType::kFile && !m.content) m.content = it->second;
    }
  }

 private:
  struct Entry {
    bool seen[2] = {false, false};
    bool pending[2] = {false, false};  // content held until the other side reaches this path
    std::string sha[2];
    std::string path[2];
    BlobPtr content[2];
  };

  void settle(int side, Entry& e) {
    if (!e.pending[side]) return;
    e.pending[side] = false;
    if (e.content[side]) pending_[side] -= e.content[side]->bytes().size();
  }

  std::mutex mu_;
  std::condition_variable changed_;
  std::uint64_t budget_;
  std::uint64_t lead_;
  std::uint64_t used_ = 0;
  std::uint64_t pending_[2] = {0, 0};
  bool active_[2] = {true, true};
  bool waiting_[2] = {false, false};
  std::vector<std::string> releases_[2];
  std::unordered_map<std::string, Entry> map_;
};

Result<void> compare_archive(Context& ctx, const Input& a, const Input& b, int depth, Difference& out) {
  Result<MemberList> la = malformed("not read");
  Result<MemberList> lb = malformed("not read");
  RetainBoard board(ctx.options().retain_bytes, ctx.options().retain_bytes / 8);
  RetainHook hook_a = [&board](const Member& m, BlobPtr c) { board.offer(0, m, std::move(c)); };
  RetainHook hook_b = [&board](const Member& m, BlobPtr c) { board.offer(1, m, std::move(c)); };
  // One thread per side whatever --jobs says: pairing as members arrive
  // needs both streams moving.
  std::thread t([&] {
    la = list_archive(ctx, a.blob, a.name, &hook_a);
    board.finish(0);
  });
  lb = list_archive(ctx, b.blob, b.name, &hook_b);
  board.finish(1);
  t.join();
  if (!la) return std::move(la).error();
  if (!lb) return std::move(lb).error();
  board.attach(0, *la);
  board.attach(1, *lb);
  auto fetcher = [&ctx](const Input& in) -> Fetcher {
    BlobPtr blob = in.blob;
    std::string name = in.name;
    return [&ctx, blob, name](MemberList& l, const std::vector<std::size_t>& w) {
      return fetch_archive(ctx, blob, name, l, w);
    };
  };
  compare_members(ctx, *la, *lb, fetcher(a), fetcher(b), depth, out);
  return ok();
}

bool recognize_deb(Bytes d, std::string_view) { return starts_with(d, "!<arch>\n") && starts_with(d, "debian-binary", 8); }
bool recognize_ar(Bytes d, std::string_view) { return starts_with(d, "!<arch>\n"); }
bool recognize_tar(Bytes d, std::string_view name) {
  return starts_with(d, "ustar", 257) || (name.ends_with(".tar") && d.size() >= 512 && d.size() % 512 == 0);
}
bool recognize_cpio(Bytes d, std::string_view) {
  return starts_with(d, "070701") || starts_with(d, "070702") || starts_with(d, "070707") ||
         starts_with(d, "\xc7\x71") || starts_with(d, "\x71\xc7");
}

Result<void> compare_rpm(Context& ctx, const Input& a, const Input& b, int depth, Difference& out) {
  auto ha = rpm_header_text(a.bytes());
  auto hb = rpm_header_text(b.bytes());
  if (ha && hb) {
    add_text_view(ctx, out, "RPM header tags", "rpm-header", *ha, *hb);
  } else {
    out.comments.push_back("RPM header unreadable: " + (ha ? hb.error() : ha.error()).to_string());
  }
  return compare_archive(ctx, a, b, depth, out);
}

// ---- NAR ----

Result<void> compare_nar(Context& ctx, const Input& a, const Input& b, int depth, Difference& out) {
  KMR_ASSIGN_OR_RETURN(MemberList la, list_nar(ctx, a.blob, a.name));
  KMR_ASSIGN_OR_RETURN(MemberList lb, list_nar(ctx, b.blob, b.name));
  Fetcher none = [](MemberList&, const std::vector<std::size_t>&) { return ok(); };
  compare_members(ctx, la, lb, none, none, depth, out);
  return ok();
}

// ---- single-stream compressors ----

bool recognize_gzip(Bytes d, std::string_view) { return starts_with(d, "\x1f\x8b"); }
bool recognize_xz(Bytes d, std::string_view) { return starts_with(d, std::string_view("\xfd" "7zXZ\x00", 6)); }
bool recognize_zstd(Bytes d, std::string_view) { return starts_with(d, "\x28\xb5\x2f\xfd"); }
bool recognize_bzip2(Bytes d, std::string_view) { return starts_with(d, "BZh") && d.size() > 3 && d[3] >= '1' && d[3] <= '9'; }
bool recognize_lz4(Bytes d, std::string_view) { return starts_with(d, "\x04\x22\x4d\x18"); }

std::string stem(const std::string& path) {
  std::string name = path.substr(path.rfind('/') == std::string::npos ? 0 : path.rfind('/') + 1);
  static const std::pair<std::string_view, std::string_view> kExt[] = {
      {".tgz", ".tar"}, {".tbz2", ".tar"}, {".txz", ".tar"}, {".gz", ""}, {".xz", ""},
      {".zst", ""}, {".zstd", ""}, {".bz2", ""}, {".lz4", ""}};
  for (const auto& [ext, repl] : kExt) {
    if (name.ends_with(ext)) return name.substr(0, name.size() - ext.size()) + std::string(repl);
  }
  return name + "-content";
}

Result<void> compare_compressed(Context& ctx, const Input& a, const Input& b, int depth, Difference& out) {
  bool arch_a = opens_as_archive(a.bytes());
  bool arch_b = opens_as_archive(b.bytes());
  if (arch_a && arch_b) {
    // Stream the archive straight through the decompressor: never inflate
    // the whole tar in memory.
    Difference child;
    child.source1 = stem(a.name);
    child.source2 = stem(b.name);
    child.kind = "archive";
    if (depth + 1 >= static_cast<int>(ctx.options().limits.max_container_depth)) {
      child.comments.push_back("Reached max container depth (" +
                               std::to_string(ctx.options().limits.max_container_depth) + ")");
    } else {
      KMR_TRY(compare_archive(ctx, a, b, depth + 1, child));
    }
    if (child.empty()) {
      out.comments.push_back("Decompressed contents identical; compressed streams differ");
    } else {
      out.details.push_back(std::move(child));
    }
    return ok();
  }
  KMR_ASSIGN_OR_RETURN(ByteVector da, decompress_stream(ctx, a.bytes(), a.name));
  KMR_ASSIGN_OR_RETURN(ByteVector db, decompress_stream(ctx, b.bytes(), b.name));
  Input ia{stem(a.name), blob_from_vector(std::move(da)), {}, {}};
  Input ib{stem(b.name), blob_from_vector(std::move(db)), {}, {}};
  auto child = compare_inputs(ctx, ia, ib, depth + 1);
  if (!child) {
    out.comments.push_back("Decompressed contents identical; compressed streams differ");
  } else {
    out.details.push_back(std::move(*child));
  }
  return ok();
}

}  // namespace

bool is_single_stream_compressor(const Comparator& c) { return c.compare == compare_compressed; }

Result<void> compare_recompressed(Context& ctx, const Input& a, const Input& b, bool a_compressed, int depth,
                                  Difference& out) {
  const Input& packed = a_compressed ? a : b;
  out.comments.push_back("Recompressed: " + std::string(a_compressed ? "first" : "second") + " is " +
                         std::string(identify(packed.bytes(), packed.name).kind) + "-compressed, " +
                         (a_compressed ? "second" : "first") + " is not; their contents are compared");
  if (depth + 1 >= static_cast<int>(ctx.options().limits.max_container_depth)) {
    out.comments.push_back("Reached max container depth (" + std::to_string(ctx.options().limits.max_container_depth) + ")");
    return ok();
  }
  if (opens_as_archive(a.bytes()) && opens_as_archive(b.bytes())) {
    // libarchive reads through the compression: streamed, as for two
    // compressed archives.
    Difference child;
    child.source1 = a_compressed ? stem(a.name) : a.name;
    child.source2 = a_compressed ? b.name : stem(b.name);
    child.kind = "archive";
    KMR_TRY(compare_archive(ctx, a, b, depth + 1, child));
    if (child.empty()) {
      out.comments.push_back("Contents identical once decompressed");
    } else {
      out.details.push_back(std::move(child));
    }
    return ok();
  }
  KMR_ASSIGN_OR_RETURN(ByteVector inner, decompress_stream(ctx, packed.bytes(), packed.name));
  Input unpacked{stem(packed.name), blob_from_vector(std::move(inner)), {}, {}};
  auto child = a_compressed ? compare_inputs(ctx, unpacked, b, depth + 1) : compare_inputs(ctx, a, unpacked, depth + 1);
  if (!child) {
    out.comments.push_back("Contents identical once decompressed");
  } else {
    out.details.push_back(std::move(*child));
  }
  return ok();
}

namespace {

// ---- text and binary ----

bool recognize_text(Bytes d, std::string_view) {
  if (d.empty()) return false;
  std::size_t n = std::min<std::size_t>(d.size(), 65536);
  std::size_t i = 0;
  while (i < n) {
    std::uint8_t c = d[i];
    if (c == 0) return false;
    if (c < 0x80) {
      if (c < 0x20 && c != '\n' && c != '\r' && c != '\t' && c != '\f' && c != '\x1b') return false;
      ++i;
      continue;
    }
    std::size_t len = (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0) return false;
    if (i + len > n) return n < d.size();  // cut at the probe boundary
    for (std::size_t k = 1; k < len; ++k) {
      if ((d[i + k] & 0xc0) != 0x80) return false;
    }
    i += len;
  }
  return true;
}

Result<void> compare_text(Context& ctx, const Input& a, const Input& b, int, Difference& out) {
  set_text_diff(ctx, as_string_view(a.bytes()), as_string_view(b.bytes()), out);
  return ok();
}

bool always(Bytes, std::string_view) { return true; }

Result<void> compare_binary(Context& ctx, const Input& a, const Input& b, int, Difference& out) {
  add_hex_diff(ctx, a.bytes(), b.bytes(), out);
  return ok();
}

}  // namespace

const std::vector<Comparator>& registry() {
  // The order is the spec: specific before generic, binary last.
  static const std::vector<Comparator> kRegistry = {
      {"directory", true, never, compare_directory},
      {"deb", true, recognize_deb, compare_archive},
      {"rpm", true, recognize_rpm, compare_rpm},
      {"nar", true, recognize_nar, compare_nar},
      {"ar", true, recognize_ar, compare_archive},
      {"tar", true, recognize_tar, compare_archive},
      {"cpio", true, recognize_cpio, compare_archive},
      {"gzip", true, recognize_gzip, compare_compressed},
      {"xz", true, recognize_xz, compare_compressed},
      {"zstd", true, recognize_zstd, compare_compressed},
      {"bzip2", true, recognize_bzip2, compare_compressed},
      {"lz4", true, recognize_lz4, compare_compressed},
      {"bzimage", true, recognize_bzimage, compare_bzimage},
      {"kernel-module", false, recognize_module, compare_module},
      {"elf", false, recognize_elf, compare_elf},
      {"text", false, recognize_text, compare_text},
      {"binary", false, always, compare_binary},
  };
  return kRegistry;
}

}  // namespace kmr::compare
