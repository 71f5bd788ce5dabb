#include "rebuilder/kmod/banner.h"

#include <algorithm>
#include <cstring>

namespace kmr::kmod {

namespace {

constexpr std::string_view kPrefix = "Linux version ";
// The words scripts/mkcompile_h puts between the build number and the time.
constexpr std::string_view kFlagWords[] = {"SMP", "PREEMPT_DYNAMIC", "PREEMPT_RT", "PREEMPT"};

Error bad(std::string_view why) { return malformed("kernel banner: " + std::string(why)); }

bool is_flag(std::string_view w) {
  return std::find(std::begin(kFlagWords), std::end(kFlagWords), w) != std::end(kFlagWords);
}

// The text inside the parenthesis that opens at `at` (balanced), and the
// position after its closing parenthesis.
std::optional<std::pair<std::string_view, std::size_t>> parenthesized(std::string_view s, std::size_t at) {
  if (at >= s.size() || s[at] != '(') return std::nullopt;
  int depth = 0;
  for (std::size_t i = at; i < s.size(); ++i) {
    if (s[i] == '(') ++depth;
    if (s[i] == ')' && --depth == 0) return std::make_pair(s.substr(at + 1, i - at - 1), i + 1);
  }
  return std::nullopt;
}

}  // namespace

Result<BuildIdentity> parse_banner(std::string_view line) {
  if (line.size() > kMaxBannerLength) return bad("longer than " + std::to_string(kMaxBannerLength) + " bytes");
  for (char c : line) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return bad("control character");
  }
  if (line.substr(0, kPrefix.size()) != kPrefix) return bad("does not start with 'Linux version '");
  BuildIdentity id;
  id.banner = std::string(line);
  std::size_t at = kPrefix.size();
  const std::size_t sp = line.find(' ', at);
  if (sp == std::string_view::npos || sp == at) return bad("no release");
  id.release = std::string(line.substr(at, sp - at));
  auto who = parenthesized(line, sp + 1);
  if (!who) return bad("no (user@host)");
  const std::size_t amp = who->first.find('@');
  if (amp == std::string_view::npos || amp == 0 || amp + 1 == who->first.size()) return bad("no user@host");
  id.user = std::string(who->first.substr(0, amp));
  id.host = std::string(who->first.substr(amp + 1));
  if (who->second >= line.size() || line[who->second] != ' ') return bad("no compiler");
  auto cc = parenthesized(line, who->second + 1);
  if (!cc || cc->first.empty()) return bad("no (compiler)");
  id.compiler = std::string(cc->first);
  std::string_view rest = line.substr(cc->second);
  if (rest.size() < 2 || rest[0] != ' ' || rest[1] != '#') return bad("no #version after the compiler");
  rest.remove_prefix(2);
  const std::size_t v_end = std::min(rest.find(' '), rest.size());
  id.version = std::string(rest.substr(0, v_end));
  if (!std::all_of(id.version.begin(), id.version.end(), [](char c) { return c != '(' && c != ')'; })) {
    return bad("malformed build version");
  }
  rest.remove_prefix(v_end);
  // Flag words, then the timestamp (whatever KBUILD_BUILD_TIMESTAMP was).
  while (!rest.empty() && rest[0] == ' ') {
    const std::string_view r1 = rest.substr(1);
    const std::size_t e = std::min(r1.find(' '), r1.size());
    if (!is_flag(r1.substr(0, e))) break;
    id.flags += (id.flags.empty() ? "" : " ") + std::string(r1.substr(0, e));
    rest = r1.substr(e);
  }
  if (!rest.empty() && rest[0] == ' ') rest.remove_prefix(1);
  id.timestamp = std::string(rest);
  return id;
}

std::optional<BuildIdentity> find_build_identity(Bytes image) {
  const std::string_view s = as_string_view(image);
  std::optional<BuildIdentity> first;
  for (std::size_t at = s.find(kPrefix); at != std::string_view::npos; at = s.find(kPrefix, at + 1)) {
    std::size_t end = at;
    while (end < s.size() && end - at <= kMaxBannerLength && s[end] != '\n' && s[end] != '\0') ++end;
    auto id = parse_banner(s.substr(at, end - at));
    if (!id) continue;
    if (!id->version.empty()) return std::move(*id);
    if (!first) first = std::move(*id);
  }
  return first;
}

}  // namespace kmr::kmod
