#include "rebuilder/net/proxy.h"

#include <gtest/gtest.h>
#include <stdlib.h>

namespace kmr::net {
namespace {

Url url(const std::string& text) { return *parse_url(text); }

TEST(NoProxy, NamesAndDomains) {
  EXPECT_TRUE(no_proxy_matches("*", url("https://anything.example/")));
  EXPECT_TRUE(no_proxy_matches("example.org", url("https://example.org/")));
  EXPECT_TRUE(no_proxy_matches("example.org", url("https://mirror.example.org/")));
  EXPECT_FALSE(no_proxy_matches("example.org", url("https://badexample.org/")));
  EXPECT_FALSE(no_proxy_matches("example.org", url("https://example.org.evil.example/")));
  EXPECT_TRUE(no_proxy_matches(".example.org", url("https://example.org/")));
  EXPECT_TRUE(no_proxy_matches(".example.org", url("https://a.b.example.org/")));
  EXPECT_TRUE(no_proxy_matches(" other.example , ,EXAMPLE.ORG ", url("http://example.org/")));
  EXPECT_FALSE(no_proxy_matches("", url("http://example.org/")));
  EXPECT_FALSE(no_proxy_matches(",,", url("http://example.org/")));
  EXPECT_FALSE(no_proxy_matches(".", url("http://example.org/")));
  EXPECT_FALSE(no_proxy_matches("**", url("http://example.org/")));
}

TEST(NoProxy, Ports) {
  EXPECT_TRUE(no_proxy_matches("localhost:8080", url("http://localhost:8080/")));
  EXPECT_FALSE(no_proxy_matches("localhost:8080", url("http://localhost:8081/")));
  EXPECT_TRUE(no_proxy_matches("example.org:443", url("https://example.org/")));
  EXPECT_TRUE(no_proxy_matches("[::1]:8443", url("https://[::1]:8443/")));
  EXPECT_FALSE(no_proxy_matches("[::1]:8443", url("https://[::1]:8444/")));
}

TEST(NoProxy, AddressesAndBlocks) {
  EXPECT_TRUE(no_proxy_matches("127.0.0.1", url("http://127.0.0.1:9/")));
  EXPECT_FALSE(no_proxy_matches("127.0.0.1", url("http://127.0.0.2/")));
  EXPECT_TRUE(no_proxy_matches("10.0.0.0/8", url("http://10.200.3.4/")));
  EXPECT_FALSE(no_proxy_matches("10.0.0.0/8", url("http://11.0.0.1/")));
  EXPECT_TRUE(no_proxy_matches("192.168.1.0/23", url("http://192.168.0.9/")));
  EXPECT_FALSE(no_proxy_matches("192.168.1.0/24", url("http://192.168.0.9/")));
  EXPECT_TRUE(no_proxy_matches("0.0.0.0/0", url("http://8.8.8.8/")));
  EXPECT_TRUE(no_proxy_matches("::1", url("http://[::1]/")));
  EXPECT_TRUE(no_proxy_matches("fe80::/10", url("http://[fe80::1234]/")));
  EXPECT_FALSE(no_proxy_matches("fe80::/10", url("http://[fec0::1]/")));
  // Malformed blocks and family mismatches never match.
  EXPECT_FALSE(no_proxy_matches("10.0.0.0/33", url("http://10.0.0.1/")));
  EXPECT_FALSE(no_proxy_matches("10.0.0.0/", url("http://10.0.0.1/")));
  EXPECT_FALSE(no_proxy_matches("10.0.0.0/x", url("http://10.0.0.1/")));
  EXPECT_FALSE(no_proxy_matches("::/0", url("http://10.0.0.1/")));
  EXPECT_FALSE(no_proxy_matches("127.0.0.1", url("http://localhost/")));
  EXPECT_FALSE(no_proxy_matches("localhost", url("http://127.0.0.1/")));
}

TEST(ProxyFor, PicksBySchemeAndBypass) {
  ProxyOptions p;
  p.http_proxy = "http://plain-proxy.example:3128";
  p.https_proxy = "tls-proxy.example:8080";
  p.no_proxy = "internal.example";
  auto https = proxy_for(p, url("https://mirror.example/x"));
  ASSERT_TRUE(https && *https);
  EXPECT_EQ((*https)->authority(), "tls-proxy.example:8080");
  auto http = proxy_for(p, url("http://mirror.example/x"));
  ASSERT_TRUE(http && *http);
  EXPECT_EQ((*http)->authority(), "plain-proxy.example:3128");
  auto bypass = proxy_for(p, url("https://a.internal.example/x"));
  ASSERT_TRUE(bypass);
  EXPECT_FALSE(*bypass);
  ProxyOptions none;
  EXPECT_FALSE(*proxy_for(none, url("https://mirror.example/")));
}

TEST(ProxyFor, RefusesWhatItCannotDo) {
  ProxyOptions p;
  p.https_proxy = "https://proxy.example:443";
  EXPECT_NE(proxy_for(p, url("https://x.example/")).error().to_string().find("TLS to the proxy"), std::string::npos);
  p.https_proxy = "http://user:pass@proxy.example:3128";
  EXPECT_NE(proxy_for(p, url("https://x.example/")).error().to_string().find("user information"), std::string::npos);
  p.https_proxy = "http://proxy.example:3128/path";
  EXPECT_NE(proxy_for(p, url("https://x.example/")).error().to_string().find("with a path"), std::string::npos);
  p.https_proxy = "socks5://proxy.example:1080";
  EXPECT_NE(proxy_for(p, url("https://x.example/")).error().to_string().find("unsupported URL scheme 'socks5'"), std::string::npos);
}

TEST(ProxyOptions, FromEnvironmentAsCurlReadsIt) {
  ::setenv("http_proxy", "http://lower:1", 1);
  ::setenv("HTTP_PROXY", "http://upper-ignored:2", 1);
  ::unsetenv("https_proxy");
  ::setenv("HTTPS_PROXY", "http://upper:3", 1);
  ::unsetenv("no_proxy");
  ::setenv("NO_PROXY", "localhost", 1);
  ProxyOptions p = ProxyOptions::from_environment();
  EXPECT_EQ(p.http_proxy, "http://lower:1");
  EXPECT_EQ(p.https_proxy, "http://upper:3");
  EXPECT_EQ(p.no_proxy, "localhost");
  ::unsetenv("http_proxy");
  p = ProxyOptions::from_environment();
  EXPECT_EQ(p.http_proxy, "");  // HTTP_PROXY alone is not used
  ::setenv("https_proxy", "http://lower:4", 1);
  EXPECT_EQ(ProxyOptions::from_environment().https_proxy, "http://lower:4");
  for (const char* v : {"HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "NO_PROXY"}) ::unsetenv(v);
}

}  // namespace
}  // namespace kmr::net
