#include "rebuilder/archive/nar.h"

#include <cstring>

namespace kmr::archive {

namespace {
constexpr std::string_view kNix32Alphabet = "0123456789abcdfghijklmnpqrsvwxyz";
constexpr std::string_view kMagic = "nix-archive-1";
constexpr std::uint64_t kMaxTag = 32;
}  // namespace

std::string nix32_encode(Bytes data) {
  if (data.empty()) return "";
  const std::size_t len = (data.size() * 8 - 1) / 5 + 1;
  std::string out;
  out.reserve(len);
  for (std::size_t n = len; n-- > 0;) {
    const std::size_t b = n * 5;
    const std::size_t i = b / 8;
    const std::size_t j = b % 8;
    unsigned c = data[i] >> j;
    if (i + 1 < data.size()) c |= static_cast<unsigned>(data[i + 1]) << (8 - j);
    out.push_back(kNix32Alphabet[c & 0x1f]);
  }
  return out;
}

std::optional<ByteVector> nix32_decode(std::string_view text, std::size_t size) {
  if (size == 0 || text.size() != (size * 8 - 1) / 5 + 1) return std::nullopt;
  ByteVector out(size, 0);
  for (std::size_t n = 0; n < text.size(); ++n) {
    const char c = text[text.size() - 1 - n];
    const std::size_t digit = kNix32Alphabet.find(c);
    if (digit == std::string_view::npos) return std::nullopt;
    const std::size_t b = n * 5;
    const std::size_t i = b / 8;
    const std::size_t j = b % 8;
    out[i] = static_cast<std::uint8_t>(out[i] | (digit << j));
    const unsigned carry = static_cast<unsigned>(digit >> (8 - j));
    if (i + 1 < size) {
      out[i + 1] = static_cast<std::uint8_t>(out[i + 1] | carry);
    } else if (carry != 0) {
      return std::nullopt;
    }
  }
  return out;
}

std::string NarResult::nar_hash_nix32() const { return "sha256:" + nix32_encode(nar_hash); }

bool looks_like_nar(Bytes data) {
  if (data.size() < 8 + kMagic.size()) return false;
  if (data[0] != kMagic.size()) return false;
  for (int i = 1; i < 8; ++i) {
    if (data[i] != 0) return false;
  }
  return std::memcmp(data.data() + 8, kMagic.data(), kMagic.size()) == 0;
}

namespace {

// Pulls exact byte counts from an InputStream, hashing and counting every
// byte consumed.
class Puller {
 public:
  Puller(InputStream& in, std::string name) : in_(in), name_(std::move(name)) {}

  Error err(std::string_view what) const {
    return malformed(name_ + ": NAR: " + std::string(what) + " at offset " + std::to_string(consumed_));
  }

  // Up to `max` bytes (at least 1 unless at end of input).
  Result<Bytes> some(std::uint64_t max) {
    if (pos_ == cur_.size()) {
      KMR_ASSIGN_OR_RETURN(cur_, in_.next());
      pos_ = 0;
      if (cur_.empty()) return Bytes();
    }
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(max, cur_.size() - pos_));
    Bytes out = cur_.subspan(pos_, n);
    pos_ += n;
    consumed_ += n;
    hash_.update(out);
    return out;
  }

  Result<void> exact(std::uint8_t* dst, std::uint64_t n, std::string_view what) {
    while (n > 0) {
      KMR_ASSIGN_OR_RETURN(Bytes b, some(n));
      if (b.empty()) return err("truncated in " + std::string(what));
      std::memcpy(dst, b.data(), b.size());
      dst += b.size();
      n -= b.size();
    }
    return ok();
  }

  Result<std::uint64_t> u64(std::string_view what) {
    std::uint8_t b[8];
    KMR_TRY(exact(b, 8, what));
    std::uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | b[i];
    return v;
  }

  Result<void> padding(std::uint64_t len) {
    const std::uint64_t pad = (8 - len % 8) % 8;
    std::uint8_t b[8] = {};
    KMR_TRY(exact(b, pad, "padding"));
    for (std::uint64_t i = 0; i < pad; ++i) {
      if (b[i] != 0) return err("non-zero padding");
    }
    return ok();
  }

  Result<std::string> str(std::uint64_t max, std::string_view what) {
    KMR_ASSIGN_OR_RETURN(std::uint64_t len, u64(what));
    if (len > max) return err(std::string(what) + " longer than " + std::to_string(max) + " bytes");
    std::string s(len, '\0');
    KMR_TRY(exact(reinterpret_cast<std::uint8_t*>(s.data()), len, what));
    KMR_TRY(padding(len));
    return s;
  }

  Result<void> expect(std::string_view tag) {
    KMR_ASSIGN_OR_RETURN(std::string s, str(kMaxTag, "tag"));
    if (s != tag) return err("expected '" + std::string(tag) + "', got '" + printable(s) + "'");
    return ok();
  }

  Result<void> at_end() {
    KMR_ASSIGN_OR_RETURN(Bytes b, some(1));
    if (!b.empty()) return err("trailing data after the NAR");
    return ok();
  }

  static std::string printable(std::string_view s) {
    std::string out;
    for (char c : s.substr(0, 64)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
    return out;
  }

  std::uint64_t consumed() const { return consumed_; }
  Digest256 digest() { return hash_.finish(); }
  const std::string& name() const { return name_; }

 private:
  InputStream& in_;
  std::string name_;
  Bytes cur_;
  std::size_t pos_ = 0;
  std::uint64_t consumed_ = 0;
  Sha256 hash_;
};

class NarContent : public MemberStream {
 public:
  NarContent(Puller& p, std::uint64_t size) : p_(p), left_(size) {}
  std::uint64_t size_hint() const override { return left_; }
  Result<Bytes> next() override {
    if (left_ == 0) return Bytes();
    KMR_ASSIGN_OR_RETURN(Bytes b, p_.some(std::min<std::uint64_t>(left_, 1 << 20)));
    if (b.empty()) return p_.err("truncated in file contents");
    left_ -= b.size();
    return b;
  }
  Result<void> drain() {
    while (left_ > 0) {
      KMR_ASSIGN_OR_RETURN(Bytes b, next());
      (void)b;
    }
    return ok();
  }

 private:
  Puller& p_;
  std::uint64_t left_;
};

class Parser {
 public:
  Parser(Puller& p, const ReaderOptions& o, const Visitor& v, NarResult& r) : p_(p), o_(o), v_(v), r_(r) {}

  Result<void> node(const std::string& path, std::uint32_t depth) {
    if (depth > o_.limits.max_depth) {
      return p_.err("directory depth exceeds " + std::to_string(o_.limits.max_depth) + " at '" + path + "'");
    }
    KMR_TRY(p_.expect("("));
    KMR_TRY(p_.expect("type"));
    KMR_ASSIGN_OR_RETURN(std::string type, p_.str(kMaxTag, "type"));
    if (type == "regular") {
      Entry e;
      e.path = path;
      e.type = EntryType::kFile;
      e.mode = 0644;
      KMR_ASSIGN_OR_RETURN(std::string tag, p_.str(kMaxTag, "tag"));
      if (tag == "executable") {
        KMR_ASSIGN_OR_RETURN(std::string marker, p_.str(kMaxTag, "executable marker"));
        if (!marker.empty()) return p_.err("executable marker not empty at '" + path + "'");
        e.mode = 0755;
        KMR_ASSIGN_OR_RETURN(tag, p_.str(kMaxTag, "tag"));
      }
      if (tag != "contents") return p_.err("expected 'contents', got '" + Puller::printable(tag) + "'");
      KMR_ASSIGN_OR_RETURN(e.size, p_.u64("contents size"));
      if (e.size > o_.limits.max_member_bytes) {
        return limit_exceeded(p_.name() + ": NAR: '" + path + "': file larger than " +
                              std::to_string(o_.limits.max_member_bytes) + " bytes");
      }
      total_ += e.size;
      if (total_ > o_.limits.max_total_bytes) {
        return limit_exceeded(p_.name() + ": NAR: contents exceed " + std::to_string(o_.limits.max_total_bytes) +
                              " bytes");
      }
      KMR_TRY(count());
      ++r_.files;
      NarContent content(p_, e.size);
      KMR_TRY(v_(e, content));
      KMR_TRY(content.drain());
      KMR_TRY(p_.padding(e.size));
    } else if (type == "symlink") {
      KMR_TRY(p_.expect("target"));
      Entry e;
      e.path = path;
      e.type = EntryType::kSymlink;
      e.mode = 0777;
      KMR_ASSIGN_OR_RETURN(e.link_target, p_.str(o_.limits.max_symlink_len, "symlink target"));
      if (e.link_target.empty()) return p_.err("empty symlink target at '" + path + "'");
      if (e.link_target.find('\0') != std::string::npos) return p_.err("NUL in symlink target at '" + path + "'");
      e.absolute_symlink = e.link_target.front() == '/';
      KMR_TRY(count());
      ++r_.symlinks;
      NarContent none(p_, 0);
      KMR_TRY(v_(e, none));
    } else if (type == "directory") {
      KMR_TRY(count());
      ++r_.directories;
      if (!path.empty()) {
        Entry e;
        e.path = path;
        e.type = EntryType::kDirectory;
        e.mode = 0755;
        NarContent none(p_, 0);
        KMR_TRY(v_(e, none));
      }
      std::string prev;
      bool first = true;
      for (;;) {
        KMR_ASSIGN_OR_RETURN(std::string tag, p_.str(kMaxTag, "tag"));
        if (tag == ")") return ok();
        if (tag != "entry") return p_.err("expected 'entry' or ')', got '" + Puller::printable(tag) + "'");
        KMR_TRY(p_.expect("("));
        KMR_TRY(p_.expect("name"));
        KMR_ASSIGN_OR_RETURN(std::string name, p_.str(o_.limits.max_name_len, "entry name"));
        if (name.empty()) return p_.err("empty entry name in '" + path + "'");
        if (name == "." || name == "..") return p_.err("entry name '" + name + "' in '" + path + "'");
        if (name.find('/') != std::string::npos) return p_.err("'/' in entry name in '" + path + "'");
        if (name.find('\0') != std::string::npos) return p_.err("NUL in entry name in '" + path + "'");
        if (!first && name <= prev) {
          return p_.err("entries not strictly increasing: '" + Puller::printable(name) + "' after '" +
                        Puller::printable(prev) + "' in '" + path + "'");
        }
        first = false;
        prev = name;
        KMR_TRY(p_.expect("node"));
        KMR_TRY(node(path.empty() ? name : path + "/" + name, depth + 1));
        KMR_TRY(p_.expect(")"));
      }
    } else {
      return p_.err("unknown node type '" + Puller::printable(type) + "'");
    }
    return p_.expect(")");
  }

 private:
  Result<void> count() {
    if (++members_ > o_.limits.max_members) {
      return limit_exceeded(p_.name() + ": NAR: more than " + std::to_string(o_.limits.max_members) + " entries");
    }
    return ok();
  }

  Puller& p_;
  const ReaderOptions& o_;
  const Visitor& v_;
  NarResult& r_;
  std::uint64_t total_ = 0;
  std::uint64_t members_ = 0;
};

}  // namespace

Result<NarResult> read_nar(InputStream& in, const ReaderOptions& options, const Visitor& visitor) {
  Puller p(in, options.name);
  NarResult result;
  {
    KMR_ASSIGN_OR_RETURN(std::string magic, p.str(kMaxTag, "magic"));
    if (magic != kMagic) return p.err("not a NAR (bad magic)");
  }
  Parser parser(p, options, visitor, result);
  KMR_TRY(parser.node("", 0));
  KMR_TRY(p.at_end());
  result.nar_size = p.consumed();
  result.nar_hash = p.digest();
  return result;
}

Result<NarResult> read_nar_memory(Bytes data, const ReaderOptions& options, const Visitor& visitor) {
  MemoryStream ms(data);
  return read_nar(ms, options, visitor);
}

}  // namespace kmr::archive
