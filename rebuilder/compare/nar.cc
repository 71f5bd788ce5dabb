// NAR (Nix archive) listing: strings are u64le length + bytes + zero padding
// to 8; nodes are "(" "type" regular|symlink|directory ... ")".
#include <algorithm>

#include "rebuilder/base/byte_reader.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"
#include "rebuilder/compare/formats.h"

namespace kmr::compare {

namespace {

constexpr std::uint64_t kMaxToken = 4096;

class NarReader {
 public:
  NarReader(Context& ctx, const BlobPtr& blob) : ctx_(ctx), blob_(blob), r_(blob->bytes(), "NAR") {}

  Result<MemberList> run() {
    KMR_TRY(expect("nix-archive-1"));
    KMR_TRY(node("", 0));
    if (r_.remaining() != 0) list_.comments.push_back(std::to_string(r_.remaining()) + " trailing bytes after the NAR");
    return std::move(list_);
  }

 private:
  Result<Bytes> raw_string(std::uint64_t max) {
    std::uint64_t at = r_.offset();
    std::uint64_t len = r_.u64le();
    if (!r_.ok()) return malformed("NAR: truncated string length at offset " + std::to_string(at));
    if (len > max) return malformed("NAR: string of " + std::to_string(len) + " bytes at offset " + std::to_string(at) + " exceeds the limit");
    Bytes b = r_.bytes(len);
    std::uint64_t pad = (8 - len % 8) % 8;
    Bytes p = r_.bytes(pad);
    if (!r_.ok()) return malformed("NAR: truncated string at offset " + std::to_string(at));
    if (std::any_of(p.begin(), p.end(), [](std::uint8_t c) { return c != 0; })) {
      return malformed("NAR: non-zero padding at offset " + std::to_string(at));
    }
    return b;
  }
  Result<void> token(std::string& out) {
    KMR_ASSIGN_OR_RETURN(Bytes b, raw_string(kMaxToken));
    out.assign(as_string_view(b));
    return ok();
  }
  Result<void> expect(std::string_view want) {
    std::uint64_t at = r_.offset();
    std::string t;
    KMR_TRY(token(t));
    if (t != want) return malformed("NAR: expected \"" + std::string(want) + "\" at offset " + std::to_string(at) + ", got \"" + t.substr(0, 64) + "\"");
    return ok();
  }

  Result<void> node(const std::string& path, std::uint32_t depth) {
    if (depth > ctx_.options().limits.max_depth) return malformed("NAR: nesting deeper than " + std::to_string(ctx_.options().limits.max_depth));
    if (list_.members.size() >= ctx_.options().limits.max_members) return limit_exceeded("NAR: too many members");
    KMR_TRY(expect("("));
    KMR_TRY(expect("type"));
    std::string type;
    KMR_TRY(token(type));
    Member m;
    m.path = path.empty() ? "." : path;
    if (type == "regular") {
      m.type = MemberType::kFile;
      m.mode = 0444;
      std::string t;
      KMR_TRY(token(t));
      if (t == "executable") {
        m.mode = 0555;
        KMR_TRY(expect(""));
        KMR_TRY(token(t));
      }
      if (t != "contents") return malformed("NAR: expected \"contents\" in " + m.path);
      std::uint64_t start = r_.offset() + 8;
      KMR_ASSIGN_OR_RETURN(Bytes data, raw_string(ctx_.options().limits.max_member_bytes));
      m.size = data.size();
      m.sha256 = to_hex(sha256(data));
      m.content = blob_slice(blob_, static_cast<std::size_t>(start), data.size());
      KMR_TRY(expect(")"));
      list_.members.push_back(std::move(m));
    } else if (type == "symlink") {
      m.type = MemberType::kSymlink;
      m.mode = 0777;
      KMR_TRY(expect("target"));
      KMR_TRY(token(m.link));
      KMR_TRY(expect(")"));
      list_.members.push_back(std::move(m));
    } else if (type == "directory") {
      m.type = MemberType::kDirectory;
      m.mode = 0555;
      list_.members.push_back(std::move(m));
      std::string prev;
      for (;;) {
        std::string t;
        KMR_TRY(token(t));
        if (t == ")") break;
        if (t != "entry") return malformed("NAR: expected \"entry\" or \")\" in " + (path.empty() ? "." : path));
        KMR_TRY(expect("("));
        KMR_TRY(expect("name"));
        std::string name;
        KMR_TRY(token(name));
        if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos || name.find('\0') != std::string::npos) {
          return malformed("NAR: invalid entry name \"" + name + "\"");
        }
        if (!prev.empty() && name <= prev) return malformed("NAR: entries not sorted at \"" + name + "\"");
        prev = name;
        KMR_TRY(expect("node"));
        KMR_TRY(node(path.empty() ? name : path + "/" + name, depth + 1));
        KMR_TRY(expect(")"));
      }
    } else {
      return malformed("NAR: unknown node type \"" + type + "\"");
    }
    return ok();
  }

  Context& ctx_;
  BlobPtr blob_;
  ByteReader r_;
  MemberList list_;
};

}  // namespace

bool recognize_nar(Bytes d, std::string_view) {
  static const std::uint8_t kMagic[] = {13, 0, 0, 0, 0, 0, 0, 0, 'n', 'i', 'x', '-', 'a', 'r', 'c', 'h', 'i', 'v', 'e', '-', '1'};
  return d.size() >= sizeof kMagic && std::equal(std::begin(kMagic), std::end(kMagic), d.begin());
}

Result<MemberList> list_nar(Context& ctx, const BlobPtr& blob, const std::string& what) {
  NarReader reader(ctx, blob);
  auto r = reader.run();
  if (!r) return std::move(r).error().with_context("while reading " + what);
  return r;
}

}  // namespace kmr::compare
