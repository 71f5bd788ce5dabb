// Feeds arbitrary bytes to every parser of untrusted network input: URLs
// (as given and as redirect Locations), no_proxy lists, pins, HTTP
// response bytes through the client's own response reader, split at
// input-chosen points, and request targets as kmrd's router splits them.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <variant>

#include "rebuilder/net/proxy.h"
#include "rebuilder/net/response_reader.h"
#include "rebuilder/net/router.h"
#include "rebuilder/net/tls_options.h"
#include "rebuilder/net/url.h"

namespace {

constexpr const char* kPathChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~/-";

void feed_response(std::string_view wire, std::size_t step, bool no_body) {
  kmr::net::ResponseReader reader(4096, no_body);
  std::string pending;
  bool started = false;
  std::size_t pos = 0;
  for (int rounds = 0; rounds < 100000 && !reader.done(); ++rounds) {
    if (reader.head_done() && !started) {
      started = true;
      if (!reader.start_body([](kmr::Bytes) { return kmr::ok(); }, 1 << 16)) return;
      continue;
    }
    std::size_t used = 0;
    if (!pending.empty()) {
      auto r = reader.feed(kmr::as_bytes(pending));
      if (!r) return;
      used = *r;
      pending.erase(0, used);
    }
    if (used > 0) continue;
    if (pos >= wire.size()) {
      (void)reader.finish();
      return;
    }
    std::size_t n = std::min(step, wire.size() - pos);
    pending.append(wire.substr(pos, n));
    pos += n;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  static const kmr::net::Url base = *kmr::net::parse_url("https://mirror.example/repo/x86_64/core.db?x");
  auto url = kmr::net::parse_url(text);
  if (url) {
    // A parsed URL must print as a URL that parses to itself.
    auto again = kmr::net::parse_url(url->str());
    if (!again || again->str() != url->str()) __builtin_trap();
    (void)kmr::net::no_proxy_matches("localhost,.example.org,10.0.0.0/8,::1,[fe80::1]:443", *url);
  }
  auto resolved = kmr::net::resolve_url(base, text);
  if (resolved && !kmr::net::parse_url(resolved->str())) __builtin_trap();
  (void)kmr::net::resolve_url_string("file:///srv/repo/x.narinfo", text);
  (void)kmr::net::file_url_path(text);
  (void)kmr::net::no_proxy_matches(text, base);
  (void)kmr::net::Pin::parse(text);
  // An accepted target's path is absolute, without "..", "//" or characters outside [A-Za-z0-9._~/-].
  const auto target = kmr::net::parse_target(text);
  if (const auto* t = std::get_if<kmr::net::Target>(&target)) {
    if (t->path.empty() || t->path[0] != '/' || t->path.find("..") != std::string::npos ||
        t->path.find("//") != std::string::npos || t->path.find_first_not_of(kPathChars) != std::string::npos)
      __builtin_trap();
  }
  std::size_t step = size == 0 ? 1 : 1 + data[0] % 97;
  feed_response(text, step, false);
  feed_response(text, size, size > 0 && (data[size - 1] & 1));
  return 0;
}
