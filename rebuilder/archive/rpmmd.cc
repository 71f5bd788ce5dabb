#include "rebuilder/archive/rpmmd.h"

#include <charconv>
#include <functional>
#include <limits>
#include <vector>

#include "rebuilder/base/sha256.h"

namespace kmr::archive {

namespace {

constexpr std::size_t kMaxDepth = 64;
constexpr std::size_t kMaxText = 64u << 20;

bool name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ':' || c == '_' ||
         c == '-' || c == '.';
}

void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

class Scanner {
 public:
  Scanner(std::string_view x, const std::string& name, const XmlHandler& h) : x_(x), name_(name), h_(h) {}

  Error err(const std::string& what) const {
    return malformed(name_ + ": XML: " + what + " at offset " + std::to_string(pos_));
  }

  Result<std::string> decode(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
      if (s[i] != '&') {
        out += s[i];
        continue;
      }
      const std::size_t semi = s.find(';', i);
      if (semi == std::string_view::npos || semi - i > 12) return err("unterminated entity");
      const std::string_view ent = s.substr(i + 1, semi - i - 1);
      if (ent == "amp") out += '&';
      else if (ent == "lt") out += '<';
      else if (ent == "gt") out += '>';
      else if (ent == "quot") out += '"';
      else if (ent == "apos") out += '\'';
      else if (!ent.empty() && ent[0] == '#') {
        std::uint32_t cp = 0;
        const bool hex = ent.size() > 1 && (ent[1] == 'x' || ent[1] == 'X');
        const std::string_view digits = ent.substr(hex ? 2 : 1);
        auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), cp, hex ? 16 : 10);
        if (digits.empty() || ec != std::errc() || p != digits.data() + digits.size() || cp == 0 || cp > 0x10ffff) {
          return err("bad character reference");
        }
        append_utf8(out, cp);
      } else {
        return err("unknown entity '&" + std::string(ent.substr(0, 12)) + ";'");
      }
      i = semi;
    }
    return out;
  }

  Result<void> run() {
    std::vector<std::string> stack;
    bool seen_root = false;
    while (pos_ < x_.size()) {
      if (x_[pos_] != '<') {
        const std::size_t lt = x_.find('<', pos_);
        const std::size_t end = lt == std::string_view::npos ? x_.size() : lt;
        const std::string_view raw = x_.substr(pos_, end - pos_);
        if (raw.size() > kMaxText) return err("text node too large");
        if (stack.empty()) {
          if (raw.find_first_not_of(" \t\r\n") != std::string_view::npos) return err("text outside the root element");
        } else if (h_.text) {
          KMR_ASSIGN_OR_RETURN(std::string t, decode(raw));
          KMR_TRY(h_.text(t));
        }
        pos_ = end;
        continue;
      }
      if (x_.compare(pos_, 4, "<!--") == 0) {
        const std::size_t e = x_.find("-->", pos_ + 4);
        if (e == std::string_view::npos) return err("unterminated comment");
        pos_ = e + 3;
        continue;
      }
      if (x_.compare(pos_, 9, "<![CDATA[") == 0) {
        const std::size_t e = x_.find("]]>", pos_ + 9);
        if (e == std::string_view::npos) return err("unterminated CDATA");
        if (stack.empty()) return err("CDATA outside the root element");
        if (h_.text) KMR_TRY(h_.text(std::string(x_.substr(pos_ + 9, e - pos_ - 9))));
        pos_ = e + 3;
        continue;
      }
      if (x_.compare(pos_, 2, "<!") == 0) return err("DOCTYPE and declarations are not allowed");
      if (x_.compare(pos_, 2, "<?") == 0) {
        const std::size_t e = x_.find("?>", pos_ + 2);
        if (e == std::string_view::npos) return err("unterminated processing instruction");
        pos_ = e + 2;
        continue;
      }
      if (x_.compare(pos_, 2, "</") == 0) {
        pos_ += 2;
        const std::string name = read_name();
        skip_ws();
        if (pos_ >= x_.size() || x_[pos_] != '>') return err("bad end tag");
        ++pos_;
        if (stack.empty() || stack.back() != name) return err("end tag </" + name + "> does not match");
        stack.pop_back();
        if (h_.end) KMR_TRY(h_.end(name));
        continue;
      }
      ++pos_;
      const std::string name = read_name();
      if (name.empty()) return err("bad tag name");
      if (stack.empty() && seen_root) return err("second root element");
      std::map<std::string, std::string> attrs;
      bool self_close = false;
      for (;;) {
        skip_ws();
        if (pos_ >= x_.size()) return err("unterminated tag <" + name + ">");
        if (x_[pos_] == '>') {
          ++pos_;
          break;
        }
        if (x_.compare(pos_, 2, "/>") == 0) {
          pos_ += 2;
          self_close = true;
          break;
        }
        const std::string an = read_name();
        if (an.empty()) return err("bad attribute in <" + name + ">");
        skip_ws();
        if (pos_ >= x_.size() || x_[pos_] != '=') return err("attribute without value");
        ++pos_;
        skip_ws();
        if (pos_ >= x_.size() || (x_[pos_] != '"' && x_[pos_] != '\'')) return err("unquoted attribute");
        const char q = x_[pos_++];
        const std::size_t e = x_.find(q, pos_);
        if (e == std::string_view::npos) return err("unterminated attribute");
        const std::string_view raw = x_.substr(pos_, e - pos_);
        if (raw.find('<') != std::string_view::npos) return err("'<' in attribute value");
        KMR_ASSIGN_OR_RETURN(std::string v, decode(raw));
        if (!attrs.emplace(an, std::move(v)).second) return err("duplicate attribute '" + an + "'");
        pos_ = e + 1;
      }
      seen_root = true;
      if (stack.size() >= kMaxDepth) return err("nesting deeper than 64");
      if (h_.start) KMR_TRY(h_.start(name, attrs));
      if (self_close) {
        if (h_.end) KMR_TRY(h_.end(name));
      } else {
        stack.push_back(name);
      }
    }
    if (!stack.empty()) return err("unterminated element <" + stack.back() + ">");
    if (!seen_root) return err("no root element");
    return ok();
  }

 private:
  std::string read_name() {
    const std::size_t s = pos_;
    while (pos_ < x_.size() && name_char(x_[pos_])) ++pos_;
    return std::string(x_.substr(s, pos_ - s));
  }
  void skip_ws() {
    while (pos_ < x_.size() && (x_[pos_] == ' ' || x_[pos_] == '\t' || x_[pos_] == '\n' || x_[pos_] == '\r')) ++pos_;
  }

  std::string_view x_;
  const std::string& name_;
  const XmlHandler& h_;
  std::size_t pos_ = 0;
};

template <typename T>
Result<T> num(const std::string& s, const std::string& what) {
  T v{};
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size()) return malformed(what + ": '" + s.substr(0, 40) + "' is not a number");
  return v;
}

std::string attr(const std::map<std::string, std::string>& a, const char* k) {
  auto it = a.find(k);
  return it == a.end() ? "" : it->second;
}

// The open elements, outermost first, ending with the current one.
using XmlPath = std::vector<std::string>;
using OpenElement = std::function<Result<void>(const XmlPath& path, const std::map<std::string, std::string>& attrs)>;
using CloseElement = std::function<Result<void>(const XmlPath& path, const std::string& text)>;

}  // namespace

Result<void> scan_xml(std::string_view xml, const std::string& name, const XmlHandler& handler) {
  Scanner s(xml, name, handler);
  return s.run();
}

namespace {
// scan_xml keeping the path of open elements and the text of the innermost:
// `open` as an element starts, `close` with its text (at most `max_text`
// bytes) as it ends, the path still ending with it.
Result<void> scan_xml_paths(std::string_view xml, const std::string& name, std::size_t max_text,
                            const OpenElement& open, const CloseElement& close) {
  XmlPath path;
  std::string text;
  XmlHandler h;
  h.start = [&](const std::string& n, const std::map<std::string, std::string>& a) -> Result<void> {
    path.push_back(n);
    text.clear();
    return open(path, a);
  };
  h.text = [&](const std::string& t) -> Result<void> {
    if (text.size() + t.size() > max_text) {
      return limit_exceeded(name + ": element text longer than " + std::to_string(max_text >> 20) + " MiB");
    }
    text += t;
    return ok();
  };
  h.end = [&](const std::string&) -> Result<void> {
    KMR_TRY(close(path, text));
    path.pop_back();
    text.clear();
    return ok();
  };
  return scan_xml(xml, name, h);
}
}  // namespace

Result<std::vector<RepoMdData>> parse_repomd(std::string_view xml, const std::string& name) {
  std::vector<RepoMdData> out;
  auto open = [&](const XmlPath& path, const std::map<std::string, std::string>& a) -> Result<void> {
    const std::string& n = path.back();
    if (path.size() == 1 && n != "repomd") return malformed(name + ": root element is <" + n + ">, not <repomd>");
    if (path.size() == 2 && n == "data") {
      out.emplace_back();
      out.back().type = attr(a, "type");
    } else if (path.size() == 3 && path[1] == "data") {
      RepoMdData& d = out.back();
      if (n == "checksum") d.checksum_type = attr(a, "type");
      if (n == "location") d.location = attr(a, "href");
    }
    return ok();
  };
  auto close = [&](const XmlPath& path, const std::string& text) -> Result<void> {
    const std::string& n = path.back();
    if (path.size() == 3 && path[1] == "data") {
      RepoMdData& d = out.back();
      if (n == "checksum") d.checksum = text;
      else if (n == "open-checksum") d.open_checksum = text;
      else if (n == "size") { KMR_ASSIGN_OR_RETURN(d.size, num<std::uint64_t>(text, name + ": <size>")); }
      else if (n == "open-size") { KMR_ASSIGN_OR_RETURN(d.open_size, num<std::uint64_t>(text, name + ": <open-size>")); }
    }
    return ok();
  };
  KMR_TRY(scan_xml_paths(xml, name, std::numeric_limits<std::size_t>::max(), open, close));
  for (const auto& d : out) {
    if (d.location.empty() || d.location.find("..") != std::string::npos || d.location.front() == '/') {
      return malformed(name + ": <data type=\"" + d.type + "\"> has a bad location '" + d.location + "'");
    }
  }
  return out;
}

Result<std::vector<RpmMdPackage>> parse_primary(std::string_view xml, const std::string& name) {
  std::vector<RpmMdPackage> out;
  auto open = [&](const XmlPath& path, const std::map<std::string, std::string>& a) -> Result<void> {
    const std::string& n = path.back();
    if (path.size() == 1 && n != "metadata") return malformed(name + ": root element is <" + n + ">, not <metadata>");
    if (path.size() == 2 && n == "package") {
      if (out.size() >= 10'000'000) return limit_exceeded(name + ": too many packages");
      out.emplace_back();
    } else if (path.size() >= 3 && path[1] == "package") {
      RpmMdPackage& p = out.back();
      if (n == "version" && path.size() == 3) {
        p.epoch = attr(a, "epoch");
        p.version = attr(a, "ver");
        p.release = attr(a, "rel");
      } else if (n == "checksum" && path.size() == 3) {
        p.checksum_type = attr(a, "type");
      } else if (n == "location" && path.size() == 3) {
        p.location = attr(a, "href");
      } else if (n == "time" && path.size() == 3 && !attr(a, "build").empty()) {
        KMR_ASSIGN_OR_RETURN(p.build_time, num<std::int64_t>(attr(a, "build"), name + ": <time build>"));
      } else if (n == "size" && path.size() == 3 && !attr(a, "package").empty()) {
        KMR_ASSIGN_OR_RETURN(p.package_size, num<std::uint64_t>(attr(a, "package"), name + ": <size package>"));
      }
    }
    return ok();
  };
  auto close = [&](const XmlPath& path, const std::string& text) -> Result<void> {
    const std::string& n = path.back();
    if (path.size() >= 3 && path[1] == "package") {
      RpmMdPackage& p = out.back();
      if (path.size() == 3) {
        if (n == "name") p.name = text;
        else if (n == "arch") p.arch = text;
        else if (n == "checksum") p.checksum = text;
        else if (n == "packager") p.packager = text;
      } else if (path.size() == 4 && path[2] == "format") {
        if (n == "rpm:buildhost") p.buildhost = text;
        else if (n == "rpm:sourcerpm") p.sourcerpm = text;
      }
    }
    return ok();
  };
  KMR_TRY(scan_xml_paths(xml, name, std::size_t{1} << 20, open, close));
  for (const auto& p : out) {
    if (p.name.empty() || p.location.empty()) return malformed(name + ": package without name or location");
    if (p.location.find("..") != std::string::npos || p.location.front() == '/') {
      return malformed(name + ": package " + p.name + " has a bad location '" + p.location + "'");
    }
  }
  return out;
}

Result<void> check_digest(std::string_view data, const std::string& type, const std::string& hex,
                          const std::string& what) {
  if (type != "sha256") return unsupported(what + ": checksum type '" + type + "' not supported");
  const std::string got = sha256_hex(as_bytes(data));
  if (got != hex) {
    return Error(ErrorCode::kVerificationFailed, what + ": sha256 " + got + " does not match the index (" + hex + ")");
  }
  return ok();
}

}  // namespace kmr::archive
