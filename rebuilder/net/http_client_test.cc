// The client against real servers on loopback: nginx (an independent HTTP
// and TLS implementation) with certificates from a test CA made at test
// time, plus scripted plain-TCP servers and a forward proxy from
// test_servers.h for what nginx cannot be told to do.
#include "rebuilder/net/http_client.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <fstream>
#include <random>

#include "rebuilder/base/file.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/require.h"
#include "rebuilder/base/subprocess.h"
#include "rebuilder/net/test_pki.h"
#include "rebuilder/net/test_servers.h"

namespace kmr::net {
namespace {

using namespace std::chrono_literals;
using testing::IssueOptions;
using testing::Nginx;
using testing::ScriptedReply;
using testing::ScriptedServer;
using testing::TestPki;
using testing::TestProxy;

const std::string kHello = "hello over TLS\n";
constexpr std::uint64_t kMiB = 1 << 20;

struct Env {
  std::string dir;
  std::optional<TestPki> pki;
  std::uint16_t good = 0, self_signed = 0, wrong_host = 0, expired = 0, plain = 0;
  std::unique_ptr<ScriptedServer> lying, stalling, chunky;
  std::unique_ptr<Nginx> nginx;
  std::string error;  // set when the environment could not be built
};
Env* env = nullptr;

Result<void> write_random(const std::string& path, std::uint64_t size, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::ofstream out(path, std::ios::binary);
  std::vector<std::uint64_t> block(8192);
  for (std::uint64_t done = 0; done < size;) {
    for (auto& w : block) w = rng();
    std::uint64_t n = std::min<std::uint64_t>(size - done, block.size() * 8);
    out.write(reinterpret_cast<const char*>(block.data()), static_cast<std::streamsize>(n));
    done += n;
  }
  out.close();
  if (!out) return io_error("cannot write " + path);
  return ok();
}

std::string nginx_config(const Env& e) {
  const std::string& d = e.dir;
  std::string p = std::to_string(e.good);
  auto tls_server = [&](std::uint16_t port, const std::string& stem) {
    return "  server {\n    listen 127.0.0.1:" + std::to_string(port) + " ssl;\n    server_name localhost;\n" +
           "    ssl_certificate " + d + "/pki/" + stem + ".crt;\n    ssl_certificate_key " + d + "/pki/" + stem + ".key;\n" +
           "    root " + d + "/www;\n";
  };
  std::string conf = "  default_type application/octet-stream;\n  ssl_protocols TLSv1.2 TLSv1.3;\n";
  conf += tls_server(e.good, "good");
  conf += "    absolute_redirect off;\n";
  conf += "    location = /loop/a { return 302 /loop/b; }\n";
  conf += "    location = /loop/b { return 302 https://localhost:" + p + "/loop/a; }\n";
  for (int i = 0; i < 7; ++i) {
    conf += "    location = /hop/" + std::to_string(i) + " { return 302 /hop/" + std::to_string(i + 1) + "; }\n";
  }
  conf += "    location = /hop/7 { return 200 \"arrived\\n\"; }\n";
  conf += "    location = /to-http { return 302 http://localhost:" + std::to_string(e.plain) + "/hello.txt; }\n";
  conf += "    location = /relative/deeper/start { return 302 ../../files/hello.txt; }\n";
  conf += "    location = /missing-location { return 302; }\n";
  conf += "    location /truncated { proxy_pass http://127.0.0.1:" + std::to_string(e.lying->port()) +
          "; proxy_buffering off; proxy_http_version 1.1; }\n";
  conf += "    location /stall { proxy_pass http://127.0.0.1:" + std::to_string(e.stalling->port()) +
          "; proxy_read_timeout 60s; }\n";
  conf += "    location /chunked-big { proxy_pass http://127.0.0.1:" + std::to_string(e.chunky->port()) +
          "; proxy_buffering off; proxy_http_version 1.1; }\n";
  conf += "    location /slow/ { limit_rate 100k; }\n  }\n";
  conf += tls_server(e.self_signed, "self-signed") + "  }\n";
  conf += tls_server(e.wrong_host, "wrong-host") + "  }\n";
  conf += tls_server(e.expired, "expired") + "  }\n";
  conf += "  server {\n    listen 127.0.0.1:" + std::to_string(e.plain) + ";\n    root " + d + "/www;\n  }\n";
  return conf;
}

Result<void> build_env(Env& e) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  e.dir = std::string(tmp != nullptr ? tmp : "/tmp") + "/net-test";
  std::filesystem::remove_all(e.dir);
  for (const char* sub : {"", "/pki", "/www", "/www/files", "/www/slow", "/nginx"}) std::filesystem::create_directories(e.dir + sub);
  ::chmod(e.dir.c_str(), 0755);
  KMR_ASSIGN_OR_RETURN(TestPki pki, TestPki::create(e.dir + "/pki"));
  e.pki.emplace(std::move(pki));
  const std::vector<std::string> local = {"localhost", "127.0.0.1"};
  KMR_TRY(e.pki->issue("good", IssueOptions{local}));
  KMR_TRY(e.pki->issue("self-signed", IssueOptions{local, -3600, 86400, true}));
  KMR_TRY(e.pki->issue("wrong-host", IssueOptions{{"wrong.example"}}));
  KMR_TRY(e.pki->issue("expired", IssueOptions{local, -10 * 86400, -86400}));
  KMR_TRY(write_file_atomic(e.dir + "/www/hello.txt", as_bytes(kHello)));
  KMR_TRY(write_file_atomic(e.dir + "/www/files/hello.txt", as_bytes(kHello)));
  KMR_TRY(write_random(e.dir + "/www/big-3m.bin", 3 * kMiB, 3));
  KMR_TRY(write_random(e.dir + "/www/random-8m.bin", 8 * kMiB, 8));
  KMR_TRY(write_random(e.dir + "/www/slow/data.bin", kMiB, 1));
  for (auto* port : {&e.good, &e.self_signed, &e.wrong_host, &e.expired, &e.plain}) {
    KMR_ASSIGN_OR_RETURN(*port, testing::free_port());
  }
  KMR_ASSIGN_OR_RETURN(e.lying, ScriptedServer::start([](const std::string&) {
    return ScriptedReply{"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n" +
                         std::string(1000, 'x')};
  }));
  KMR_ASSIGN_OR_RETURN(e.stalling, ScriptedServer::start([](const std::string&) { return ScriptedReply{"", true}; }));
  KMR_ASSIGN_OR_RETURN(e.chunky, ScriptedServer::start([](const std::string&) {
    std::string wire = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (int i = 0; i < 32; ++i) wire += "10000\r\n" + std::string(65536, 'c') + "\r\n";
    return ScriptedReply{wire + "0\r\n\r\n"};
  }));
  KMR_ASSIGN_OR_RETURN(e.nginx, Nginx::start(e.dir + "/nginx", nginx_config(e), {e.good, e.self_signed, e.wrong_host, e.expired, e.plain}));
  return ok();
}

class HttpClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    env = new Env;
    if (!have_program("nginx")) return;
    auto built = build_env(*env);
    if (!built) env->error = built.error().to_string();
  }
  static void TearDownTestSuite() {
    delete env;
    env = nullptr;
  }
  void SetUp() override {
    if (!have_program("nginx")) KMR_SKIP_OR_FAIL("nginx not installed");
    ASSERT_EQ(env->error, "");
  }

  static ClientOptions options() {
    ClientOptions o;
    o.tls.ca_file = env->pki->ca_cert_path();
    o.proxy = ProxyOptions{};
    o.connect_timeout = 5s;
    o.read_timeout = 10s;
    o.deadline = 60s;
    return o;
  }
  static HttpClient client(const ClientOptions& o = options()) {
    auto c = HttpClient::create(o);
    EXPECT_TRUE(c) << c.error().to_string();
    return std::move(c).value();
  }
  static std::string url(std::uint16_t port, const std::string& path, const std::string& host = "localhost") {
    return "https://" + host + ":" + std::to_string(port) + path;
  }
  static std::string failure(const HttpClient& c, const std::string& u, std::uint64_t max = kMiB, ErrorCode* code = nullptr) {
    auto r = c.get(u, max);
    EXPECT_FALSE(r) << u << " succeeded";
    if (r) return "";
    if (code != nullptr) *code = r.error().code();
    std::cout << "  error: " << r.error().to_string() << "\n";
    return r.error().to_string();
  }
};

#define EXPECT_CONTAINS(haystack, needle) EXPECT_NE((haystack).find(needle), std::string::npos) << (haystack)

std::string sha256sum_cli(const std::string& shell_pipeline) {
  auto r = run_subprocess({"bash", "-c", "set -o pipefail; " + shell_pipeline + " | sha256sum"});
  EXPECT_TRUE(r && r->success()) << (r ? r->err : r.error().to_string());
  return r && r->out.size() >= 64 ? r->out.substr(0, 64) : "";
}

TEST_F(HttpClientTest, HttpsWithTheTestCa) {
  HttpClient c = client();
  auto body = c.get(url(env->good, "/hello.txt"), kMiB);
  ASSERT_TRUE(body) << body.error().to_string();
  EXPECT_EQ(*body, kHello);
  // An IP literal is checked against the certificate's IP address (no SNI).
  auto by_ip = c.get(url(env->good, "/hello.txt", "127.0.0.1"), kMiB);
  ASSERT_TRUE(by_ip) << by_ip.error().to_string();
  EXPECT_EQ(*by_ip, kHello);
  auto full = c.request(Request{"GET", url(env->good, "/files/hello.txt")}, kMiB);
  ASSERT_TRUE(full) << full.error().to_string();
  EXPECT_EQ(full->status, 200);
  EXPECT_EQ(full->header("content-length"), std::to_string(kHello.size()));
  EXPECT_CONTAINS(full->header("server"), "nginx");
  auto missing = c.request(Request{"GET", url(env->good, "/nope")}, kMiB);
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  ErrorCode code{};
  EXPECT_CONTAINS(failure(c, url(env->good, "/nope"), kMiB, &code), "HTTP 404 Not Found");
  EXPECT_EQ(code, ErrorCode::kNotFound);
}

TEST_F(HttpClientTest, TheSystemStoreAloneDoesNotTrustTheTestCa) {
  ClientOptions o = options();
  o.tls.ca_file.clear();
  ErrorCode code{};
  std::string e = failure(client(o), url(env->good, "/hello.txt"), kMiB, &code);
  EXPECT_EQ(code, ErrorCode::kVerificationFailed);
  EXPECT_CONTAINS(e, "certificate of localhost:" + std::to_string(env->good) + " rejected: unable to get local issuer certificate");
}

TEST_F(HttpClientTest, SelfSignedCertificateFails) {
  ErrorCode code{};
  std::string e = failure(client(), url(env->self_signed, "/hello.txt"), kMiB, &code);
  EXPECT_EQ(code, ErrorCode::kVerificationFailed);
  EXPECT_CONTAINS(e, "rejected: self-signed certificate");
  EXPECT_CONTAINS(e, "GET " + url(env->self_signed, "/hello.txt") + ": ");
}

TEST_F(HttpClientTest, WrongHostNameFails) {
  ErrorCode code{};
  std::string e = failure(client(), url(env->wrong_host, "/hello.txt"), kMiB, &code);
  EXPECT_EQ(code, ErrorCode::kVerificationFailed);
  EXPECT_CONTAINS(e, "hostname mismatch (the certificate is not valid for 'localhost')");
  EXPECT_CONTAINS(e, "CN = wrong.example");
  std::string by_ip = failure(client(), url(env->wrong_host, "/hello.txt", "127.0.0.1"));
  EXPECT_CONTAINS(by_ip, "IP address mismatch (the certificate is not valid for '127.0.0.1')");
}

TEST_F(HttpClientTest, ExpiredCertificateFails) {
  ErrorCode code{};
  std::string e = failure(client(), url(env->expired, "/hello.txt"), kMiB, &code);
  EXPECT_EQ(code, ErrorCode::kVerificationFailed);
  EXPECT_CONTAINS(e, "rejected: certificate has expired");
}

TEST_F(HttpClientTest, RedirectLoopFails) {
  std::string a = url(env->good, "/loop/a");
  std::string e = failure(client(), a);
  EXPECT_CONTAINS(e, "redirect loop: " + a + " -> " + url(env->good, "/loop/b") + " -> " + a);
}

TEST_F(HttpClientTest, RedirectsUpToTheCap) {
  HttpClient c = client();
  auto five = c.request(Request{"GET", url(env->good, "/hop/2")}, kMiB);  // 2 -> 7: five redirects
  ASSERT_TRUE(five) << five.error().to_string();
  EXPECT_EQ(five->body, "arrived\n");
  EXPECT_EQ(five->url, url(env->good, "/hop/7"));
  std::string six = failure(c, url(env->good, "/hop/1"));
  EXPECT_CONTAINS(six, "too many redirects (limit 5): " + url(env->good, "/hop/1") + " -> ");
  ClientOptions none = options();
  none.max_redirects = 0;
  EXPECT_CONTAINS(failure(client(none), url(env->good, "/hop/6")), "too many redirects (limit 0)");
  Request manual{"GET", url(env->good, "/hop/6")};
  manual.follow_redirects = false;
  auto raw = c.request(manual, kMiB);
  ASSERT_TRUE(raw);
  EXPECT_EQ(raw->status, 302);
  EXPECT_EQ(raw->header("location"), "/hop/7");
}

TEST_F(HttpClientTest, RelativeLocationIsResolved) {
  auto r = client().request(Request{"GET", url(env->good, "/relative/deeper/start")}, kMiB);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, kHello);
  EXPECT_EQ(r->url, url(env->good, "/files/hello.txt"));
  EXPECT_CONTAINS(failure(client(), url(env->good, "/missing-location")), "redirect without a Location header");
}

TEST_F(HttpClientTest, HttpsToHttpRedirectIsRefused) {
  ErrorCode code{};
  std::string e = failure(client(), url(env->good, "/to-http"), kMiB, &code);
  EXPECT_EQ(code, ErrorCode::kPermissionDenied);
  EXPECT_CONTAINS(e, "refusing the redirect from " + url(env->good, "/to-http") + " to http://localhost:" +
                         std::to_string(env->plain) + "/hello.txt (https to http)");
}

TEST_F(HttpClientTest, TruncatedBodyFails) {
  std::string e = failure(client(), url(env->good, "/truncated"), kMiB);
  EXPECT_CONTAINS(e, "truncated body: connection closed after 1000 of 100000 bytes (Content-Length)");
}

TEST_F(HttpClientTest, OversizedBodiesFail) {
  ErrorCode code{};
  std::string e = failure(client(), url(env->good, "/big-3m.bin"), kMiB, &code);
  EXPECT_EQ(code, ErrorCode::kLimitExceeded);
  EXPECT_CONTAINS(e, "response body of 3145728 bytes (Content-Length) exceeds the limit of 1048576 bytes");
  // Without a length up front (chunked through nginx) the count stops it.
  std::string chunked = failure(client(), url(env->good, "/chunked-big"), kMiB, &code);
  EXPECT_EQ(code, ErrorCode::kLimitExceeded);
  EXPECT_CONTAINS(chunked, "response body exceeds the limit of 1048576 bytes");
  auto fits = client().get(url(env->good, "/big-3m.bin"), 3 * kMiB);
  ASSERT_TRUE(fits) << fits.error().to_string();
  EXPECT_EQ(fits->size(), 3 * kMiB);
}

TEST_F(HttpClientTest, SlowServerHitsTheReadTimeout) {
  ClientOptions o = options();
  o.read_timeout = 500ms;
  auto start = std::chrono::steady_clock::now();
  ErrorCode code{};
  std::string e = failure(client(o), url(env->good, "/stall"), kMiB, &code);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(code, ErrorCode::kTimeout);
  EXPECT_CONTAINS(e, "timed out after 500 ms without progress while waiting for the response from localhost:" + std::to_string(env->good));
  EXPECT_LT(took, 5s);
}

TEST_F(HttpClientTest, TricklingServerHitsTheDeadline) {
  ClientOptions o = options();
  o.deadline = 1500ms;
  auto start = std::chrono::steady_clock::now();
  ErrorCode code{};
  std::string e = failure(client(o), url(env->good, "/slow/data.bin"), 2 * kMiB, &code);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(code, ErrorCode::kTimeout);
  EXPECT_CONTAINS(e, "deadline of 1500 ms for the whole request exceeded while receiving the body from localhost:");
  EXPECT_GE(took, 1400ms);
  EXPECT_LT(took, 5s);
}

TEST_F(HttpClientTest, SilentTlsPeerHitsTheConnectTimeout) {
  auto silent = ScriptedServer::start([](const std::string&) { return ScriptedReply{"", true}; }, /*read_request=*/false);
  ASSERT_TRUE(silent);
  ClientOptions o = options();
  o.connect_timeout = 400ms;
  std::string u = url((*silent)->port(), "/", "127.0.0.1");
  std::string e = failure(client(o), u);
  EXPECT_CONTAINS(e, "timed out after 400 ms without progress while in the TLS handshake with 127.0.0.1:" + std::to_string((*silent)->port()));
}

TEST_F(HttpClientTest, ProtocolMismatches) {
  // TLS to a plain HTTP port: the handshake fails with OpenSSL's reason.
  std::string e = failure(client(), url(env->plain, "/hello.txt"));
  EXPECT_CONTAINS(e, "TLS handshake with localhost:" + std::to_string(env->plain) + " failed: ");
  // Plain HTTP to the TLS port: nginx answers 400, a result.
  auto r = client().request(Request{"GET", "http://localhost:" + std::to_string(env->good) + "/hello.txt"}, kMiB);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->status, 400);
  // Nothing listening.
  auto port = testing::free_port();
  ASSERT_TRUE(port);
  EXPECT_CONTAINS(failure(client(), url(*port, "/")), "cannot connect to localhost:" + std::to_string(*port));
}

TEST_F(HttpClientTest, Pinning) {
  std::string pki = env->dir + "/pki/";
  // Pins computed by the openssl and sha256sum tools, not by the client.
  std::string leaf_spki = sha256sum_cli("openssl x509 -in " + pki + "good.crt -noout -pubkey | openssl pkey -pubin -outform DER");
  std::string leaf_cert = sha256sum_cli("openssl x509 -in " + pki + "good.crt -outform DER");
  std::string ca_spki = sha256sum_cli("openssl x509 -in " + pki + "ca.crt -noout -pubkey | openssl pkey -pubin -outform DER");
  ASSERT_EQ(leaf_spki.size(), 64u);
  std::string other = std::string(64, 'a');
  auto with_pins = [](std::vector<std::string> texts) {
    ClientOptions o = options();
    for (const auto& t : texts) o.tls.pins.push_back(*Pin::parse(t));
    return o;
  };
  for (const auto& good : {"spki-sha256:" + leaf_spki, "cert-sha256:" + leaf_cert, "spki-sha256:" + ca_spki}) {
    auto r = client(with_pins({"spki-sha256:" + other, good})).get(url(env->good, "/hello.txt"), kMiB);
    EXPECT_TRUE(r) << good << ": " << r.error().to_string();
  }
  ErrorCode code{};
  std::string e = failure(client(with_pins({"spki-sha256:" + other, "cert-sha256:" + ca_spki})), url(env->good, "/hello.txt"), kMiB, &code);
  EXPECT_EQ(code, ErrorCode::kVerificationFailed);
  EXPECT_CONTAINS(e, "certificate pin mismatch for localhost:" + std::to_string(env->good) + ": none of the 2 pin(s) matches; the server's leaf is spki-sha256:" +
                         leaf_spki + " / cert-sha256:" + leaf_cert);
  // A pin never replaces verification: the right pin on an expired certificate still fails.
  std::string expired_spki = sha256sum_cli("openssl x509 -in " + pki + "expired.crt -noout -pubkey | openssl pkey -pubin -outform DER");
  EXPECT_CONTAINS(failure(client(with_pins({"spki-sha256:" + expired_spki})), url(env->expired, "/hello.txt")), "certificate has expired");
  EXPECT_FALSE(Pin::parse("sha256:" + leaf_spki));
  EXPECT_FALSE(Pin::parse("spki-sha256:" + leaf_spki.substr(1)));
  EXPECT_FALSE(Pin::parse("spki-sha256:" + std::string(64, 'g')));
}

TEST_F(HttpClientTest, DownloadStreamsToAFileThroughSha256) {
  std::string source = env->dir + "/www/random-8m.bin";
  std::string dest_dir = env->dir + "/downloads";
  std::filesystem::create_directories(dest_dir);
  std::string dest = dest_dir + "/random.bin";
  DownloadOptions d;
  d.max_bytes = 16 * kMiB;
  auto r = client().download(url(env->good, "/random-8m.bin"), dest, d);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->size, 8 * kMiB);
  std::string expected = sha256sum_cli("cat " + source);
  EXPECT_EQ(to_hex(r->sha256), expected);
  EXPECT_EQ(sha256sum_cli("cat " + dest), expected);
  EXPECT_EQ(std::filesystem::file_size(dest), 8 * kMiB);

  // A wrong expected digest, a 404 and a too-small limit leave nothing behind.
  std::filesystem::remove(dest);
  d.expected_sha256 = Digest256{};
  auto mismatch = client().download(url(env->good, "/random-8m.bin"), dest, d);
  ASSERT_FALSE(mismatch);
  EXPECT_EQ(mismatch.error().code(), ErrorCode::kVerificationFailed);
  EXPECT_CONTAINS(mismatch.error().to_string(), "sha256 mismatch: expected " + std::string(64, '0') + ", received " + expected);
  d.expected_sha256.reset();
  EXPECT_FALSE(client().download(url(env->good, "/nope"), dest, d));
  d.max_bytes = kMiB;
  EXPECT_FALSE(client().download(url(env->good, "/random-8m.bin"), dest, d));
  EXPECT_FALSE(client().download(url(env->good, "/truncated"), dest, d));
  EXPECT_TRUE(std::filesystem::is_empty(dest_dir));
}

long rss_kib() {
  std::ifstream statm("/proc/self/statm");
  long size = 0, resident = 0;
  statm >> size >> resident;
  return resident * (::sysconf(_SC_PAGESIZE) / 1024);
}

// Runs `fetch` in a child process; returns how far its peak resident set
// grew beyond its resident set at the start (KiB), or -1 when it failed.
long child_rss_growth_kib(const std::function<bool()>& fetch) {
  int fds[2];
  if (::pipe(fds) != 0) return -1;
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    long start = rss_kib();
    bool fetched = fetch();
    rusage usage{};
    ::getrusage(RUSAGE_SELF, &usage);
    long growth = fetched ? usage.ru_maxrss - start : -1;
    (void)!::write(fds[1], &growth, sizeof growth);
    ::_exit(0);
  }
  ::close(fds[1]);
  long growth = -1;
  if (pid < 0 || ::read(fds[0], &growth, sizeof growth) != sizeof growth) growth = -1;
  ::close(fds[0]);
  int status = 0;
  if (pid > 0) ::waitpid(pid, &status, 0);
  return growth;
}

// A 64 MiB download grows the resident set of a process by far less than
// 64 MiB; the same body fetched into memory grows it by 64 MiB at least (so
// the measurement can see a body held in memory).
TEST_F(HttpClientTest, DownloadDoesNotHoldTheBodyInMemory) {
  constexpr std::uint64_t kSize = 64 * kMiB;
  ASSERT_TRUE(write_random(env->dir + "/www/random-64m.bin", kSize, 64));
  std::string dest = env->dir + "/random-64m.copy";
  std::string u = url(env->good, "/random-64m.bin");
  HttpClient c = client();
  auto start = std::chrono::steady_clock::now();
  long streamed = child_rss_growth_kib([&] {
    DownloadOptions d;
    d.max_bytes = kSize;
    auto r = c.download(u, dest, d);
    return r && r->size == kSize;
  });
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  long in_memory = child_rss_growth_kib([&] {
    auto r = c.get(u, kSize);
    return r && r->size() == kSize;
  });
  std::cout << "64 MiB over TLS: download " << seconds << " s, peak RSS growth " << streamed / 1024
            << " MiB; in memory: growth " << in_memory / 1024 << " MiB\n";
  ASSERT_GE(streamed, 0);
  EXPECT_EQ(std::filesystem::file_size(dest), kSize);
  EXPECT_LT(streamed, 8 * 1024) << "peak RSS grew by " << streamed << " KiB";
  EXPECT_GE(in_memory, 64 * 1024);
  std::filesystem::remove(dest);
  std::filesystem::remove(env->dir + "/www/random-64m.bin");
}

TEST_F(HttpClientTest, ConnectProxyTunnelsHttps) {
  auto proxy = TestProxy::start({env->expired});
  ASSERT_TRUE(proxy);
  ClientOptions o = options();
  o.proxy.https_proxy = "127.0.0.1:" + std::to_string((*proxy)->port());
  o.proxy.http_proxy = "http://127.0.0.1:" + std::to_string((*proxy)->port());
  auto body = client(o).get(url(env->good, "/hello.txt"), kMiB);
  ASSERT_TRUE(body) << body.error().to_string();
  EXPECT_EQ(*body, kHello);
  auto plain = client(o).get("http://localhost:" + std::to_string(env->plain) + "/files/hello.txt", kMiB);
  ASSERT_TRUE(plain) << plain.error().to_string();
  EXPECT_EQ(*plain, kHello);
  std::string refused = failure(client(o), url(env->expired, "/hello.txt"));
  EXPECT_CONTAINS(refused, "proxy 127.0.0.1:" + std::to_string((*proxy)->port()) + " refused CONNECT to localhost:" +
                               std::to_string(env->expired) + ": HTTP 403 Forbidden");
  std::vector<std::string> seen = (*proxy)->request_lines();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0], "CONNECT localhost:" + std::to_string(env->good) + " HTTP/1.1");
  EXPECT_EQ(seen[1], "GET http://localhost:" + std::to_string(env->plain) + "/files/hello.txt HTTP/1.1");
  // TLS ran end to end through the tunnel: the certificate checks still apply.
  o.proxy.no_proxy = "example.invalid";
  EXPECT_CONTAINS(failure(client(o), url(env->wrong_host, "/hello.txt")), "hostname mismatch");
  // no_proxy bypasses it.
  o.proxy.no_proxy = "example.invalid, localhost";
  ASSERT_TRUE(client(o).get(url(env->good, "/hello.txt"), kMiB));
  std::vector<std::string> all = (*proxy)->request_lines();
  EXPECT_EQ(all.size(), 4u) << ::testing::PrintToString(all);
  // A dead proxy is named in the error.
  auto dead = testing::free_port();
  ASSERT_TRUE(dead);
  o.proxy.no_proxy.clear();
  o.proxy.https_proxy = "127.0.0.1:" + std::to_string(*dead);
  EXPECT_CONTAINS(failure(client(o), url(env->good, "/hello.txt")), "via proxy 127.0.0.1:" + std::to_string(*dead));
  o.proxy.https_proxy = "https://127.0.0.1:1";
  EXPECT_FALSE(HttpClient::create(o));
}

// The worker protocol: POST with headers and a body, status, headers and
// body back (plain HTTP to a scripted server that records the bytes).
TEST_F(HttpClientTest, PostWithHeadersAndBody) {
  auto server = ScriptedServer::start([](const std::string&) {
    return ScriptedReply{"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nX-Job: 7\r\nContent-Length: 9\r\n\r\n{\"ok\":1}\n"};
  });
  ASSERT_TRUE(server);
  Request req;
  req.method = "POST";
  req.url = "http://127.0.0.1:" + std::to_string((*server)->port()) + "/api/v1/worker/pop?x=1";
  req.headers = {{"Authorization", "Bearer token-1"}, {"Content-Type", "application/json"}};
  req.body = "{\"worker\":\"w1\"}";
  auto r = client().request(req, kMiB);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->status, 201);
  EXPECT_EQ(r->reason, "Created");
  EXPECT_EQ(r->header("x-job"), "7");
  EXPECT_EQ(r->body, "{\"ok\":1}\n");
  auto seen = (*server)->requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_TRUE(seen[0].starts_with("POST /api/v1/worker/pop?x=1 HTTP/1.1\r\n")) << seen[0];
  EXPECT_CONTAINS(seen[0], "\r\nHost: 127.0.0.1:" + std::to_string((*server)->port()) + "\r\n");
  EXPECT_CONTAINS(seen[0], "\r\nAuthorization: Bearer token-1\r\n");
  EXPECT_CONTAINS(seen[0], "\r\nContent-Length: 15\r\n");
  EXPECT_TRUE(seen[0].ends_with("\r\n\r\n{\"worker\":\"w1\"}")) << seen[0];

  Request injected = req;
  injected.headers = {{"X-A", "1\r\nX-Evil: 2"}};
  EXPECT_CONTAINS(client().request(injected, kMiB).error().to_string(), "contains CR, LF or NUL");
  injected.headers = {{"Bad Name", "1"}};
  EXPECT_CONTAINS(client().request(injected, kMiB).error().to_string(), "bad request header name");
  injected.headers = {{"Host", "evil.example"}};
  EXPECT_CONTAINS(client().request(injected, kMiB).error().to_string(), "set by the client itself");
  injected.headers = {};
  injected.method = "GET /x HTTP/1.1\r\n";
  EXPECT_CONTAINS(client().request(injected, kMiB).error().to_string(), "bad request method");
  EXPECT_EQ((*server)->requests().size(), 1u);  // none of those was sent
}

// Credentials stay within their origin; 307 keeps the method and body,
// 303 turns the request into a GET.
TEST_F(HttpClientTest, RedirectsAcrossOriginsDropCredentials) {
  auto b = ScriptedServer::start([](const std::string&) { return ScriptedReply{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nB\n"}; });
  ASSERT_TRUE(b);
  std::string b_url = "http://127.0.0.1:" + std::to_string((*b)->port()) + "/landing";
  auto a = ScriptedServer::start([b_url](const std::string& request) {
    auto redirect = [](int status, const std::string& to) {
      return ScriptedReply{"HTTP/1.1 " + std::to_string(status) + " R\r\nLocation: " + to + "\r\nContent-Length: 0\r\n\r\n"};
    };
    if (request.starts_with("POST /to-b ")) return redirect(302, b_url);
    if (request.starts_with("POST /307 ")) return redirect(307, "/same");
    if (request.starts_with("POST /303 ")) return redirect(303, "/same");
    return ScriptedReply{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nA\n"};
  });
  ASSERT_TRUE(a);
  std::string a_base = "http://127.0.0.1:" + std::to_string((*a)->port());
  Request req;
  req.method = "POST";
  req.headers = {{"Authorization", "Bearer secret"}, {"Cookie", "c=1"}, {"X-Keep", "yes"}, {"Content-Type", "application/json"}};
  req.body = "{}";

  req.url = a_base + "/to-b";
  auto cross = client().request(req, kMiB);
  ASSERT_TRUE(cross) << cross.error().to_string();
  EXPECT_EQ(cross->body, "B\n");
  ASSERT_EQ((*b)->requests().size(), 1u);
  std::string at_b = (*b)->requests()[0];
  EXPECT_TRUE(at_b.starts_with("GET /landing HTTP/1.1\r\n")) << at_b;
  EXPECT_EQ(at_b.find("Authorization"), std::string::npos) << at_b;
  EXPECT_EQ(at_b.find("Cookie"), std::string::npos) << at_b;
  EXPECT_CONTAINS(at_b, "X-Keep: yes");

  req.url = a_base + "/307";
  ASSERT_TRUE(client().request(req, kMiB));
  std::string kept = (*a)->requests().back();
  EXPECT_TRUE(kept.starts_with("POST /same HTTP/1.1\r\n")) << kept;
  EXPECT_CONTAINS(kept, "Authorization: Bearer secret");
  EXPECT_TRUE(kept.ends_with("\r\n\r\n{}")) << kept;

  req.url = a_base + "/303";
  ASSERT_TRUE(client().request(req, kMiB));
  std::string turned = (*a)->requests().back();
  EXPECT_TRUE(turned.starts_with("GET /same HTTP/1.1\r\n")) << turned;
  EXPECT_EQ(turned.find("Content-Type"), std::string::npos) << turned;
}

TEST_F(HttpClientTest, BadOptionsAndUrls) {
  ClientOptions o = options();
  o.tls.ca_file = env->dir + "/no-such-ca.pem";
  EXPECT_CONTAINS(HttpClient::create(o).error().to_string(), "cannot load CA file");
  o = options();
  o.tls.system_trust = false;
  o.tls.ca_file.clear();
  EXPECT_CONTAINS(HttpClient::create(o).error().to_string(), "trust nothing");
  EXPECT_CONTAINS(failure(client(), "https://user@localhost/"), "user information");
  EXPECT_CONTAINS(failure(client(), "ftp://localhost/"), "unsupported URL scheme 'ftp'");
  // Only the test CA trusted: works without the system store.
  o = options();
  o.tls.system_trust = false;
  EXPECT_TRUE(client(o).get(url(env->good, "/hello.txt"), kMiB));
}

}  // namespace
}  // namespace kmr::net
