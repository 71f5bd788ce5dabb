#include "rebuilder/distros/nixos/derivation.h"

#include <algorithm>

namespace kmr::nixos {

namespace {

constexpr std::string_view kStoreDir = "/nix/store/";
constexpr std::string_view kNix32 = "0123456789abcdfghijklmnpqrsvwxyz";

class Parser {
 public:
  Parser(std::string_view text, const std::string& name, const DerivationLimits& limits)
      : s_(text), name_(name), limits_(limits) {}

  Error fail(const std::string& what) const {
    return malformed(name_ + ": " + what + " at byte " + std::to_string(pos_));
  }

  Result<void> expect(std::string_view token) {
    if (s_.substr(pos_, token.size()) != token) return fail("expected '" + std::string(token) + "'");
    pos_ += token.size();
    return ok();
  }
  bool peek(char c) const { return pos_ < s_.size() && s_[pos_] == c; }
  bool at_end() const { return pos_ == s_.size(); }

  Result<std::string> string() {
    KMR_TRY(expect("\""));
    std::string out;
    while (true) {
      if (pos_ >= s_.size()) return fail("unterminated string");
      const char c = s_[pos_++];
      if (c == '"') break;
      if (c == '\\') {
        if (pos_ >= s_.size()) return fail("unterminated escape");
        const char e = s_[pos_++];
        switch (e) {
          case 'n': out.push_back('\n'); break;
          case 'r': out.push_back('\r'); break;
          case 't': out.push_back('\t'); break;
          case '"': case '\\': out.push_back(e); break;
          default: return fail("unknown escape \\" + std::string(1, e));
        }
      } else {
        out.push_back(c);
      }
      if (out.size() > limits_.max_string) return fail("string longer than " + std::to_string(limits_.max_string) + " bytes");
    }
    return out;
  }

  // [item,item,...]: calls fn for each item.
  template <typename Fn>
  Result<void> list(Fn&& fn) {
    KMR_TRY(expect("["));
    std::size_t n = 0;
    if (peek(']')) {
      ++pos_;
      return ok();
    }
    while (true) {
      if (++n > limits_.max_items) return fail("list longer than " + std::to_string(limits_.max_items) + " items");
      KMR_TRY(fn());
      if (peek(',')) {
        ++pos_;
        continue;
      }
      return expect("]");
    }
  }

  Result<std::string> store_path(const char* what) {
    const std::size_t at = pos_;
    KMR_ASSIGN_OR_RETURN(auto p, string());
    if (!is_store_path(p)) {
      pos_ = at;
      return fail(std::string(what) + " is not a store path");
    }
    return p;
  }

 private:
  std::string_view s_;
  const std::string& name_;
  const DerivationLimits& limits_;
  std::size_t pos_ = 0;
};

}  // namespace

bool is_store_path(std::string_view path) {
  if (path.substr(0, kStoreDir.size()) != kStoreDir) return false;
  const std::string_view base = path.substr(kStoreDir.size());
  if (base.size() < 34 || base.size() > 32 + 1 + 211 || base[32] != '-') return false;
  for (std::size_t i = 0; i < 32; ++i) {
    if (kNix32.find(base[i]) == std::string_view::npos) return false;
  }
  const std::string_view name = base.substr(33);
  if (name.empty() || name[0] == '.') return false;
  for (const char c : name) {
    const bool okc = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     std::string_view("+-._?=").find(c) != std::string_view::npos;
    if (!okc) return false;
  }
  return true;
}

std::string store_path_hash(std::string_view path) {
  if (path.substr(0, kStoreDir.size()) == kStoreDir) path.remove_prefix(kStoreDir.size());
  if (path.size() < 33 || path[32] != '-') return "";
  for (std::size_t i = 0; i < 32; ++i) {
    if (kNix32.find(path[i]) == std::string_view::npos) return "";
  }
  return std::string(path.substr(0, 32));
}

std::vector<std::string> Derivation::output_paths() const {
  std::vector<std::string> out;
  for (const auto& [_, o] : outputs) {
    if (!o.path.empty()) out.push_back(o.path);
  }
  std::sort(out.begin(), out.end());
  return out;
}

Result<Derivation> parse_derivation(std::string_view text, const std::string& name, const DerivationLimits& limits) {
  if (text.size() > limits.max_bytes) {
    return malformed(name + ": derivation larger than " + std::to_string(limits.max_bytes) + " bytes");
  }
  Parser p(text, name, limits);
  Derivation d;
  KMR_TRY(p.expect("Derive("));
  std::string last;
  KMR_TRY(p.list([&]() -> Result<void> {
    KMR_TRY(p.expect("("));
    KMR_ASSIGN_OR_RETURN(auto out_name, p.string());
    if (out_name.empty() || out_name.size() > 64) return p.fail("bad output name");
    if (!d.outputs.empty() && out_name <= last) return p.fail("outputs not sorted or repeated");
    last = out_name;
    KMR_TRY(p.expect(","));
    DerivationOutput o;
    KMR_ASSIGN_OR_RETURN(o.path, p.string());
    if (!o.path.empty() && !is_store_path(o.path)) return p.fail("output " + out_name + " is not a store path");
    KMR_TRY(p.expect(","));
    KMR_ASSIGN_OR_RETURN(o.hash_algo, p.string());
    KMR_TRY(p.expect(","));
    KMR_ASSIGN_OR_RETURN(o.hash, p.string());
    KMR_TRY(p.expect(")"));
    d.outputs.emplace(out_name, std::move(o));
    return ok();
  }));
  if (d.outputs.empty()) return p.fail("no outputs");
  KMR_TRY(p.expect(","));
  last.clear();
  KMR_TRY(p.list([&]() -> Result<void> {
    KMR_TRY(p.expect("("));
    KMR_ASSIGN_OR_RETURN(auto drv, p.store_path("input derivation"));
    if (drv.size() < 4 || drv.compare(drv.size() - 4, 4, ".drv") != 0) return p.fail("input derivation without .drv");
    if (!d.input_drvs.empty() && drv <= last) return p.fail("input derivations not sorted or repeated");
    last = drv;
    KMR_TRY(p.expect(","));
    std::vector<std::string> outs;
    KMR_TRY(p.list([&]() -> Result<void> {
      KMR_ASSIGN_OR_RETURN(auto o, p.string());
      if (o.empty() || o.size() > 64) return p.fail("bad output name");
      if (!outs.empty() && o <= outs.back()) return p.fail("input outputs not sorted or repeated");
      outs.push_back(std::move(o));
      return ok();
    }));
    if (outs.empty()) return p.fail("input derivation with no outputs");
    KMR_TRY(p.expect(")"));
    d.input_drvs.emplace(std::move(drv), std::move(outs));
    return ok();
  }));
  KMR_TRY(p.expect(","));
  KMR_TRY(p.list([&]() -> Result<void> {
    KMR_ASSIGN_OR_RETURN(auto src, p.store_path("input source"));
    if (!d.input_srcs.empty() && src <= d.input_srcs.back()) return p.fail("input sources not sorted or repeated");
    d.input_srcs.push_back(std::move(src));
    return ok();
  }));
  KMR_TRY(p.expect(","));
  KMR_ASSIGN_OR_RETURN(d.system, p.string());
  KMR_TRY(p.expect(","));
  KMR_ASSIGN_OR_RETURN(d.builder, p.string());
  KMR_TRY(p.expect(","));
  KMR_TRY(p.list([&]() -> Result<void> {
    KMR_ASSIGN_OR_RETURN(auto a, p.string());
    d.args.push_back(std::move(a));
    return ok();
  }));
  KMR_TRY(p.expect(","));
  last.clear();
  KMR_TRY(p.list([&]() -> Result<void> {
    KMR_TRY(p.expect("("));
    KMR_ASSIGN_OR_RETURN(auto k, p.string());
    if (!d.env.empty() && k <= last) return p.fail("environment not sorted or repeated");
    last = k;
    KMR_TRY(p.expect(","));
    KMR_ASSIGN_OR_RETURN(auto v, p.string());
    KMR_TRY(p.expect(")"));
    d.env.emplace(std::move(k), std::move(v));
    return ok();
  }));
  KMR_TRY(p.expect(")"));
  if (!p.at_end()) return p.fail("trailing bytes");
  return d;
}

}  // namespace kmr::nixos
