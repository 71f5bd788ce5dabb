#include "rebuilder/net/url.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace kmr::net {
namespace {

Url parsed(const std::string& text) {
  auto u = parse_url(text);
  EXPECT_TRUE(u) << text << ": " << u.error().to_string();
  return u ? *u : Url{};
}

std::string rejection(const std::string& text) {
  auto u = parse_url(text);
  EXPECT_FALSE(u) << text << " was accepted as " << (u ? u->str() : "");
  return u ? "" : u.error().to_string();
}

TEST(ParseUrl, AcceptsTheUsualForms) {
  Url a = parsed("http://example.org");
  EXPECT_EQ(a.scheme, "http");
  EXPECT_EQ(a.host, "example.org");
  EXPECT_EQ(a.port, 80);
  EXPECT_EQ(a.target, "/");
  EXPECT_EQ(a.str(), "http://example.org/");

  Url b = parsed("HTTPS://Mirror.Example.ORG:8443/arch/core/os/x86_64/core.db?x=1&y=%2F#top");
  EXPECT_EQ(b.scheme, "https");
  EXPECT_EQ(b.host, "mirror.example.org");
  EXPECT_EQ(b.port, 8443);
  EXPECT_EQ(b.target, "/arch/core/os/x86_64/core.db?x=1&y=%2F");
  EXPECT_EQ(b.host_header(), "mirror.example.org:8443");
  EXPECT_EQ(b.authority(), "mirror.example.org:8443");
  EXPECT_EQ(b.str(), "https://mirror.example.org:8443/arch/core/os/x86_64/core.db?x=1&y=%2F");

  Url c = parsed("https://example.org:443/");
  EXPECT_EQ(c.host_header(), "example.org");
  EXPECT_EQ(c.authority(), "example.org:443");
  EXPECT_EQ(parsed("http://example.org:443/").host_header(), "example.org:443");

  // Real package file names: epoch colons, plus signs, tildes.
  EXPECT_EQ(parsed("https://h/pool/main/l/linux/linux-image-6.1.0-9-amd64_6.1.27-1~bpo11+1_amd64.deb").target,
            "/pool/main/l/linux/linux-image-6.1.0-9-amd64_6.1.27-1~bpo11+1_amd64.deb");
  EXPECT_EQ(parsed("https://h/core/os/x86_64/linux-1:6.9.arch1-1-x86_64.pkg.tar.zst").target,
            "/core/os/x86_64/linux-1:6.9.arch1-1-x86_64.pkg.tar.zst");
  EXPECT_EQ(parsed("http://h?q").target, "/?q");
  EXPECT_EQ(parsed("http://h/a/./b/../c").target, "/a/c");
  EXPECT_EQ(parsed("http://h/../../x").target, "/x");
  EXPECT_EQ(parsed("http://under_score.example/").host, "under_score.example");
}

TEST(ParseUrl, IpLiterals) {
  Url v4 = parsed("http://127.0.0.1:8080/x");
  EXPECT_TRUE(v4.ip_literal());
  EXPECT_FALSE(v4.ipv6_literal());
  Url v6 = parsed("https://[2001:DB8:0:0::1]:8443/x");
  EXPECT_EQ(v6.host, "2001:db8::1");
  EXPECT_TRUE(v6.ipv6_literal());
  EXPECT_TRUE(v6.ip_literal());
  EXPECT_EQ(v6.authority(), "[2001:db8::1]:8443");
  EXPECT_EQ(v6.str(), "https://[2001:db8::1]:8443/x");
  EXPECT_EQ(parsed("http://[::1]/").host_header(), "[::1]");
  EXPECT_FALSE(parsed("http://localhost/").ip_literal());
}

TEST(ParseUrl, RejectsHostileInput) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "empty URL"},
      {"example.org/x", "without a scheme"},
      {"ftp://example.org/", "unsupported URL scheme 'ftp'"},
      {"file:///etc/passwd", "unsupported URL scheme 'file'"},
      {"javascript:alert(1)", "unsupported URL scheme"},
      {"http:/example.org/", "without '//'"},
      {"http:example.org", "without '//'"},
      {"http://user@example.org/", "user information"},
      {"http://user:secret@example.org/", "user information"},
      {"http://example.org@evil.example/", "user information"},
      {"http://exa mple.org/", "not allowed in a URL"},
      {"http://example.org/a b", "not allowed in a URL"},
      {"http://example.org/a\tb", "not allowed in a URL"},
      {std::string("http://example.org/a\0b", 22), "not allowed in a URL"},
      {"http://example.org/a\r\nHost: evil", "not allowed in a URL"},
      {"http://example.org/\x7f", "not allowed in a URL"},
      {"http://example.org/caf\xc3\xa9", "non-ASCII"},
      {"http://example.org\\@evil.example/", "backslash"},
      {"http://example.org/a\\b", "backslash"},
      {"http:///path", "empty host"},
      {"http://:80/", "empty host"},
      {"http://[::1%25eth0]/", "zone identifiers"},
      {"http://[::1/", "unterminated IPv6"},
      {"http://[zz::1]/", "bad IPv6 address"},
      {"http://[127.0.0.1]/", "bad IPv6 address"},
      {"http://[::1]x/", "after the IPv6 literal"},
      {"http://::1/", "must be in brackets"},
      {"http://example.org:0/", "port out of range"},
      {"http://example.org:65536/", "port out of range"},
      {"http://example.org:123456/", "bad port"},
      {"http://example.org:/", "empty port"},
      {"http://example.org:8o/", "bad port"},
      {"http://example.org:-1/", "bad port"},
      {"http://-example.org/", "bad host name"},
      {"http://example-.org/", "bad host name"},
      {"http://a..b/", "bad host name"},
      {"http://example.org./", "bad host name"},
      {"http://%65xample.org/", "bad host name"},
      {"http://exa!mple.org/", "bad host name"},
      {"http://1.2.3/", "bad IPv4 address"},
      {"http://01.2.3.4/", "bad IPv4 address"},
      {"http://256.1.1.1/", "bad IPv4 address"},
      {"http://0x7f.1/", "bad IPv4 address"},
      {"http://example.org/%zz", "bad percent escape"},
      {"http://example.org/%4", "bad percent escape"},
      {"http://example.org/a%", "bad percent escape"},
      {"http://example.org/{x}", "'{' not allowed in the path"},
      {"http://example.org/a|b", "'|' not allowed in the path"},
      {"http://example.org/?a<b", "'<' not allowed in the query"},
      {"http://example.org/#a\"b", "'\"' not allowed in the fragment"},
  };
  for (const auto& [text, expected] : cases) {
    std::string message = rejection(text);
    EXPECT_NE(message.find(expected), std::string::npos) << "input: " << text << "\nmessage: " << message;
  }
}

TEST(ParseUrl, LimitsLengths) {
  std::string long_url = "http://example.org/" + std::string(kMaxUrlLength, 'a');
  EXPECT_EQ(parse_url(long_url).error().code(), ErrorCode::kLimitExceeded);
  EXPECT_NE(rejection("http://" + std::string(64, 'a') + ".org/").find("bad host name"), std::string::npos);
  EXPECT_TRUE(parse_url("http://" + std::string(63, 'a') + ".org/"));
  std::string long_host;
  while (long_host.size() < 260) long_host += "abcdefghi.";
  long_host += "org";
  EXPECT_EQ(parse_url("http://" + long_host + "/").error().code(), ErrorCode::kLimitExceeded);
}

TEST(ParseUrl, ErrorQuotesAShortCleanedPrefix) {
  std::string hostile = "http://a/\x01" + std::string(500, 'x');
  std::string message = rejection(hostile);
  EXPECT_NE(message.find("bad URL 'http://a/?xxx"), std::string::npos) << message;
  EXPECT_NE(message.find("...'"), std::string::npos);
  EXPECT_LT(message.size(), 300u);
}

// RFC 3986 section 5.4: every normal and abnormal example (fragments are
// dropped by parse_url, and "http:g" is refused as strict parsers do).
TEST(ResolveUrl, Rfc3986Examples) {
  Url base = parsed("http://a/b/c/d;p?q");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"g", "http://a/b/c/g"},        {"./g", "http://a/b/c/g"},       {"g/", "http://a/b/c/g/"},
      {"/g", "http://a/g"},           {"//g", "http://g/"},            {"?y", "http://a/b/c/d;p?y"},
      {"g?y", "http://a/b/c/g?y"},    {"#s", "http://a/b/c/d;p?q"},    {"g#s", "http://a/b/c/g"},
      {"g?y#s", "http://a/b/c/g?y"},  {";x", "http://a/b/c/;x"},       {"g;x", "http://a/b/c/g;x"},
      {"g;x?y#s", "http://a/b/c/g;x?y"}, {"", "http://a/b/c/d;p?q"},   {".", "http://a/b/c/"},
      {"./", "http://a/b/c/"},        {"..", "http://a/b/"},           {"../", "http://a/b/"},
      {"../g", "http://a/b/g"},       {"../..", "http://a/"},          {"../../", "http://a/"},
      {"../../g", "http://a/g"},
      // Abnormal examples.
      {"../../../g", "http://a/g"},   {"../../../../g", "http://a/g"}, {"/./g", "http://a/g"},
      {"/../g", "http://a/g"},        {"g.", "http://a/b/c/g."},       {".g", "http://a/b/c/.g"},
      {"g..", "http://a/b/c/g.."},    {"..g", "http://a/b/c/..g"},     {"./../g", "http://a/b/g"},
      {"./g/.", "http://a/b/c/g/"},   {"g/./h", "http://a/b/c/g/h"},   {"g/../h", "http://a/b/c/h"},
      {"g;x=1/./y", "http://a/b/c/g;x=1/y"}, {"g;x=1/../y", "http://a/b/c/y"},
      {"g?y/./x", "http://a/b/c/g?y/./x"},   {"g?y/../x", "http://a/b/c/g?y/../x"},
      {"g#s/./x", "http://a/b/c/g"},         {"g#s/../x", "http://a/b/c/g"},
  };
  for (const auto& [ref, expected] : cases) {
    auto r = resolve_url(base, ref);
    ASSERT_TRUE(r) << ref << ": " << r.error().to_string();
    EXPECT_EQ(r->str(), expected) << "reference: " << ref;
  }
  EXPECT_FALSE(resolve_url(base, "http:g"));
}

TEST(ResolveUrl, AbsoluteAndHostileReferences) {
  Url base = parsed("https://mirror.example/repo/x86_64/core.db");
  EXPECT_EQ(resolve_url(base, "http://other.example/x")->str(), "http://other.example/x");
  EXPECT_EQ(resolve_url(base, "//cdn.example/y")->str(), "https://cdn.example/y");
  EXPECT_EQ(resolve_url(base, "../any/z.sig")->str(), "https://mirror.example/repo/any/z.sig");
  EXPECT_FALSE(resolve_url(base, "ftp://other/"));
  EXPECT_FALSE(resolve_url(base, "a b"));
  EXPECT_FALSE(resolve_url(base, "/x\r\nSet-Cookie: a"));
  EXPECT_FALSE(resolve_url(base, "//user@evil.example/"));
  EXPECT_FALSE(resolve_url(base, std::string(kMaxUrlLength + 1, 'a')));
}

TEST(ResolveUrlString, FileAndHttpBases) {
  EXPECT_EQ(*resolve_url_string("file:///srv/repo/x.narinfo", "nar/a.nar.xz"), "file:///srv/repo/nar/a.nar.xz");
  EXPECT_EQ(*resolve_url_string("file:///srv/repo/x.narinfo", "/abs/p"), "file:///abs/p");
  EXPECT_EQ(*resolve_url_string("file:///srv/repo/", "../b"), "file:///srv/b");
  EXPECT_EQ(*resolve_url_string("http://h:1/a/b.json", "c/d"), "http://h:1/a/c/d");
  EXPECT_EQ(*resolve_url_string("http://h:1/a/b.json", "https://x/y"), "https://x/y");
  EXPECT_EQ(*resolve_url_string("http://h:1", "c"), "http://h:1/c");
  EXPECT_FALSE(resolve_url_string("/no/scheme", "x"));
  EXPECT_FALSE(resolve_url_string("file:///a", "x y"));
}

TEST(FileUrlPath, DecodesAndRefuses) {
  EXPECT_EQ(*file_url_path("file:///srv/a%20b/c.db"), "/srv/a b/c.db");
  EXPECT_EQ(*file_url_path("file://localhost/x"), "/x");
  EXPECT_EQ(*file_url_path("FILE:///x"), "/x");
  EXPECT_FALSE(file_url_path("file://host.example/x"));
  EXPECT_FALSE(file_url_path("file:///a%00b"));
  EXPECT_FALSE(file_url_path("file:///a%zz"));
  EXPECT_FALSE(file_url_path("file:///x?y"));
  EXPECT_FALSE(file_url_path("file:///x#y"));
  EXPECT_FALSE(file_url_path("file:relative"));
  EXPECT_FALSE(file_url_path("http://h/x"));
  EXPECT_FALSE(file_url_path("file:///a\nb"));
}

TEST(Url, SameOrigin) {
  EXPECT_TRUE(parsed("https://a.example/x").same_origin(parsed("https://a.example:443/y")));
  EXPECT_FALSE(parsed("https://a.example/x").same_origin(parsed("http://a.example/x")));
  EXPECT_FALSE(parsed("https://a.example/x").same_origin(parsed("https://b.example/x")));
  EXPECT_FALSE(parsed("https://a.example/x").same_origin(parsed("https://a.example:8443/x")));
}

}  // namespace
}  // namespace kmr::net
