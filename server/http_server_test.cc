// kmrd's HTTP front end on loopback: a real HttpServer, Api and Store, spoken to
// through a plain POSIX socket client written here (not Beast), so the bytes on
// the wire are checked independently of the server's HTTP library.
#include "server/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "attest/keys.h"
#include "rebuilder/base/file.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"
#include "server/api_test_fixture.h"
#include "server/auth.h"

namespace kmr::server {
namespace {

using nlohmann::json;

struct Reply {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lowercase
  std::string body;
  std::string header(const std::string& k) const {
    auto it = headers.find(k);
    return it == headers.end() ? "" : it->second;
  }
};

// A loopback connection to the server (20 s receive timeout), or -1.
int connect_to(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  timeval tv{20, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

void send_all(int fd, const std::string& bytes) {
  for (std::size_t off = 0; off < bytes.size();) {
    ssize_t n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;
    off += static_cast<std::size_t>(n);
  }
}

// Reads exactly one answer (an answer to HEAD has no body).
Reply read_reply(int fd, bool head) {
  Reply r;
  std::string in;
  char buf[65536];
  std::size_t header_end = std::string::npos, need = 0;
  for (;;) {
    if (header_end == std::string::npos) header_end = in.find("\r\n\r\n");
    if (header_end != std::string::npos && r.status == 0) {
      std::string head_text = in.substr(0, header_end);
      r.status = std::stoi(head_text.substr(9, 3));
      std::size_t pos = head_text.find("\r\n");
      while (pos != std::string::npos) {
        std::size_t next = head_text.find("\r\n", pos + 2);
        std::string line =
            head_text.substr(pos + 2, next == std::string::npos ? std::string::npos : next - pos - 2);
        auto colon = line.find(':');
        std::string name = line.substr(0, colon);
        for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        r.headers[name] = line.substr(colon + 2);
        pos = next;
      }
      if (!head && r.status != 304 && r.headers.count("content-length"))
        need = std::stoull(r.headers["content-length"]);
    }
    if (r.status != 0 && in.size() >= header_end + 4 + need) break;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    in.append(buf, static_cast<std::size_t>(n));
  }
  if (r.status != 0) r.body = in.substr(header_end + 4);
  return r;
}

// These bytes on a fresh connection; reads exactly one answer.
Reply exchange_bytes(std::uint16_t port, const std::string& bytes, bool head = false) {
  int fd = connect_to(port);
  if (fd < 0) return {};
  send_all(fd, bytes);
  Reply r = read_reply(fd, head);
  ::close(fd);
  return r;
}

// One request on a fresh keep-alive HTTP/1.1 connection; reads exactly one answer.
Reply exchange(std::uint16_t port, const std::string& method, const std::string& target,
               const std::vector<std::string>& extra_headers = {}) {
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  for (const auto& h : extra_headers) req += h + "\r\n";
  req += "\r\n";
  return exchange_bytes(port, req, method == "HEAD");
}

std::string error_code_of(const Reply& r) {
  json j = json::parse(r.body, nullptr, false);
  return j.is_object() && j.contains("error") ? j["error"].value("code", "") : "";
}

std::string hexof(int i) { return sha256_hex(Bytes(reinterpret_cast<const std::uint8_t*>(&i), sizeof i)); }

// Peak resident set of this process (VmHWM, KiB).
long peak_rss_kib() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

class HttpServerTest : public ApiFixture {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(open_store("http-server-test", /*attestor=*/false));
    config_.origin = "http://kmrd.test";
    config_.http.listen = "127.0.0.1:0";
    config_.http.threads = 2;
    config_.http.blocking_threads = 1;  // small on purpose: the saturation test fills it
    config_.http.blocking_queue = 1;
    auto repo = store_->upsert_repository("arch", "arch", "file:///x");
    ASSERT_TRUE(repo.has_value());
    std::vector<ImportArtifact> arts = {
        {"linux-1", "linux", "1", "x86_64", "linux-1.pkg.tar.zst", "file:///x/l", hexof(1), 1},
        {"linux-1", "linux-headers", "1", "x86_64", "linux-headers-1.pkg.tar.zst", "file:///x/h", hexof(2), 1}};
    ASSERT_TRUE(store_->import_artifacts(*repo, "arch", arts, now()).has_value());
    auto k = attest::Ed25519Key::generate();
    ASSERT_TRUE(k.has_value());
    key_.emplace(std::move(k).value());
    ASSERT_TRUE(store_->register_worker("w1", to_hex(key_->raw_public()), {"default"}, now()).has_value());
    api_ = std::make_unique<Api>(*store_, config_, metrics_, nullptr, StaticFiles::load(""));
    auto srv = HttpServer::create(*api_, config_.http);
    ASSERT_TRUE(srv.has_value()) << srv.error().to_string();
    server_ = std::move(srv).value();
    port_ = server_->port();
    runner_ = std::thread([this] { server_->run(nullptr); });
  }
  void TearDown() override {
    if (server_) server_->stop();
    if (runner_.joinable()) runner_.join();
  }

  static std::int64_t now() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  Reply get(const std::string& target, const std::vector<std::string>& headers = {}) {
    return exchange(port_, "GET", target, headers);
  }
  // A signed worker call, made through the Api directly (what the pool runs for it).
  json worker(const std::string& target, const json& body) {
    auto h = sign_request(*key_, config_.origin, "POST", target, body.dump(), now());
    EXPECT_TRUE(h.has_value());
    HttpRequest r{"POST", target, {}, body.dump(), "127.0.0.1"};
    for (auto& [name, v] : h->as_list()) {
      std::string lower = name;
      for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      r.headers.emplace_back(lower, v);
    }
    HttpResponse res = api_->handle(r);
    EXPECT_EQ(res.status, 200) << res.body;
    return json::parse(res.body, nullptr, false);
  }
  // Claims the set and reports it rebuilt identically, with this build log.
  void rebuild_identically(const std::string& log) {
    json job = worker("/api/v1/worker/claim", json::object())["job"];
    ASSERT_TRUE(job.is_object());
    json rep = {{"lease", job["lease"]}, {"status", "verified"}, {"module_root", "match"}, {"files", "identical"},
                {"shipped_root", "ab12"}, {"rebuilt_root", "ab12"}, {"log", log},
                {"rebuilt", {{{"name", "linux-1.pkg.tar.zst"}, {"sha256", hexof(1)}},
                             {{"name", "linux-headers-1.pkg.tar.zst"}, {"sha256", hexof(2)}}}}};
    worker("/api/v1/worker/jobs/" + std::to_string(job["id"].get<int>()) + "/report", rep);
  }
  std::string artifact() { return "/api/v1/artifacts/sha256/" + hexof(1); }

  std::unique_ptr<HttpServer> server_;
  std::uint16_t port_ = 0;
  std::thread runner_;
  std::optional<attest::Ed25519Key> key_;
};

TEST_F(HttpServerTest, StrongEtagAndNotModified) {
  Reply a = get(artifact());
  ASSERT_EQ(a.status, 200) << a.body;
  json doc = json::parse(a.body);
  EXPECT_EQ(doc["sha256"], hexof(1));
  EXPECT_EQ(a.header("content-length"), std::to_string(a.body.size()));
  // Strong ETag: the quoted first 32 hex digits of the sha256 of the bytes served.
  EXPECT_EQ(a.header("etag"), "\"" + sha256_hex(as_bytes(a.body)).substr(0, 32) + "\"");
  EXPECT_EQ(a.header("cache-control"), "no-cache");  // no verdict yet
  EXPECT_EQ(a.header("x-content-type-options"), "nosniff");
  // Again: served from the cache, the same bytes.
  auto hits = api_->doc_cache_stats().hits;
  Reply b = get(artifact());
  EXPECT_EQ(b.body, a.body);
  EXPECT_GT(api_->doc_cache_stats().hits, hits);
  Reply nm = get(artifact(), {"If-None-Match: " + a.header("etag")});
  EXPECT_EQ(nm.status, 304);
  EXPECT_TRUE(nm.body.empty());
  EXPECT_EQ(nm.header("etag"), a.header("etag"));
  EXPECT_EQ(get(artifact(), {"If-None-Match: \"0123\""}).status, 200);
  Reply head = exchange(port_, "HEAD", artifact());
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.header("content-length"), std::to_string(a.body.size()));
  EXPECT_TRUE(head.body.empty());
  // Without keep-alive the answer is the same document (through the pool).
  Reply closing = get(artifact(), {"Connection: close"});
  EXPECT_EQ(closing.body, a.body);
  EXPECT_EQ(closing.header("etag"), a.header("etag"));
}

TEST_F(HttpServerTest, NewVerdictIsNeverHiddenByTheCache) {
  Reply before = get(artifact());
  ASSERT_EQ(before.status, 200);
  json b = json::parse(before.body);
  EXPECT_TRUE(b["verdicts"].is_null());
  EXPECT_EQ(b["job"]["state"], "queued");
  EXPECT_EQ(get(artifact()).body, before.body);  // cached now

  json job = worker("/api/v1/worker/claim", json::object())["job"];
  ASSERT_TRUE(job.is_object());
  Reply running = get(artifact(), {"If-None-Match: " + before.header("etag")});
  ASSERT_EQ(running.status, 200);  // the old ETag no longer matches
  EXPECT_EQ(json::parse(running.body)["job"]["state"], "running");

  json rep = {{"lease", job["lease"]}, {"status", "verified"}, {"module_root", "match"}, {"files", "identical"},
              {"shipped_root", "ab12"}, {"rebuilt_root", "ab12"},
              {"rebuilt", {{{"name", "linux-1.pkg.tar.zst"}, {"sha256", hexof(1)}},
                           {{"name", "linux-headers-1.pkg.tar.zst"}, {"sha256", hexof(2)}}}}};
  worker("/api/v1/worker/jobs/" + std::to_string(job["id"].get<int>()) + "/report", rep);
  Reply after = get(artifact(), {"If-None-Match: " + running.header("etag")});
  ASSERT_EQ(after.status, 200);
  json a = json::parse(after.body);
  EXPECT_EQ(a["verdicts"]["files"], "identical");
  EXPECT_EQ(a["job"]["state"], "done");
  EXPECT_EQ(after.header("cache-control"), "public, max-age=60");
  // The other artifact of the set changed too.
  EXPECT_EQ(json::parse(get("/api/v1/artifacts/sha256/" + hexof(2)).body)["verdicts"]["files"], "identical");

  // An administrator re-queues it: the settled answer is dropped at once.
  ASSERT_TRUE(store_->requeue(std::nullopt, hexof(1), false, now()).has_value());
  EXPECT_EQ(json::parse(get(artifact()).body)["job"]["state"], "queued");
}

TEST_F(HttpServerTest, ConcurrentReadersNeverCacheAnAnswerOlderThanAWrite) {
  // Readers keep rebuilding and caching the answer while the job goes round
  // claimed -> done -> re-queued; after each write returns, the answer must show it.
  std::atomic<bool> stop{false};
  std::vector<std::thread> readers;
  readers.reserve(3);
  HttpRequest read{"GET", artifact(), {}, "", "127.0.0.1"};
  for (int i = 0; i < 3; ++i)
    readers.emplace_back([&] {
      while (!stop.load()) (void)api_->handle(read);
    });
  auto state = [&] { return json::parse(api_->handle(read).body)["job"]["state"].get<std::string>(); };
  for (int round = 0; round < 25; ++round) {
    json job = worker("/api/v1/worker/claim", json::object())["job"];
    ASSERT_TRUE(job.is_object()) << round;
    EXPECT_EQ(state(), "running") << round;
    json rep = {{"lease", job["lease"]}, {"status", "verified"}, {"module_root", "match"}, {"files", "identical"},
                {"shipped_root", "ab12"}, {"rebuilt_root", "ab12"},
                {"rebuilt", {{{"name", "linux-1.pkg.tar.zst"}, {"sha256", hexof(1)}},
                             {{"name", "linux-headers-1.pkg.tar.zst"}, {"sha256", hexof(2)}}}}};
    worker("/api/v1/worker/jobs/" + std::to_string(job["id"].get<int>()) + "/report", rep);
    EXPECT_EQ(state(), "done") << round;
    ASSERT_TRUE(store_->requeue(std::nullopt, hexof(1), false, now()).has_value());
    EXPECT_EQ(state(), "queued") << round;
  }
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_GT(api_->doc_cache_stats().hits, 0u);
}

TEST_F(HttpServerTest, BuildDocumentsAreCachedToo) {
  rebuild_identically("log\n");
  const std::string url = json::parse(get(artifact()).body)["history"][0]["url"];
  Reply first = get(url);
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(json::parse(first.body)["files"], "identical");
  EXPECT_EQ(first.header("cache-control"), "public, max-age=3600");
  EXPECT_EQ(first.header("etag"), "\"" + sha256_hex(as_bytes(first.body)).substr(0, 32) + "\"");
  auto hits = api_->doc_cache_stats().hits;
  EXPECT_EQ(get(url).body, first.body);
  EXPECT_GT(api_->doc_cache_stats().hits, hits);
  EXPECT_EQ(get(url, {"If-None-Match: " + first.header("etag")}).status, 304);
  EXPECT_EQ(get("/api/v1/builds/999").status, 404);
  EXPECT_EQ(get("/api/v1/builds/999").status, 404);  // a miss is not cached as anything
}

TEST_F(HttpServerTest, FullPoolAnswers503ThenRecovers) {
  ASSERT_EQ(get(artifact()).status, 200);  // cached before the pool fills
  std::promise<void> release, started;
  std::shared_future<void> gate = release.get_future().share();
  BlockingPool& pool = server_->blocking_pool();
  ASSERT_TRUE(pool.try_submit([&started, gate] {
    started.set_value();
    gate.wait();
  }));
  started.get_future().wait();                            // its one thread is busy
  ASSERT_TRUE(pool.try_submit([gate] { gate.wait(); }));  // and its queue is full
  Reply busy = get("/api/v1/stats");
  EXPECT_EQ(busy.status, 503);
  EXPECT_EQ(busy.header("retry-after"), "1");
  EXPECT_EQ(json::parse(busy.body)["error"]["code"], "busy");
  // Cached documents never wait for the pool.
  Reply cached = get(artifact());
  EXPECT_EQ(cached.status, 200);
  release.set_value();
  Reply ok;
  for (int i = 0; i < 200; ++i) {
    ok = get("/api/v1/stats");
    if (ok.status == 200) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(ok.status, 200) << ok.body;
  EXPECT_GE(pool.stats().refused, 1u);
}

TEST_F(HttpServerTest, RangesOfABuildLog) {
  std::string log;
  for (int i = 0; i < 1000; ++i) log += "line " + std::to_string(i) + "\n";
  rebuild_identically(log);
  json doc = json::parse(get(artifact()).body);
  ASSERT_TRUE(doc["log"].is_string());
  const std::string url = doc["log"];
  Reply all = get(url);
  EXPECT_EQ(all.status, 200);
  EXPECT_EQ(all.body, log);
  EXPECT_EQ(all.header("accept-ranges"), "bytes");
  Reply mid = get(url, {"Range: bytes=5-14"});
  EXPECT_EQ(mid.status, 206);
  EXPECT_EQ(mid.body, log.substr(5, 10));
  EXPECT_EQ(mid.header("content-range"), "bytes 5-14/" + std::to_string(log.size()));
  Reply tail = get(url, {"Range: bytes=-9"});
  EXPECT_EQ(tail.status, 206);
  EXPECT_EQ(tail.body, log.substr(log.size() - 9));
  Reply open = get(url, {"Range: bytes=" + std::to_string(log.size() - 4) + "-"});
  EXPECT_EQ(open.body, log.substr(log.size() - 4));
  for (const std::string& bad : {"bytes=" + std::to_string(log.size()) + "-", std::string("bytes=9-3"),
                                 std::string("bytes=x-1")}) {
    Reply r = get(url, {"Range: " + bad});
    EXPECT_EQ(r.status, 416) << bad;
    EXPECT_EQ(r.header("content-range"), "bytes */" + std::to_string(log.size())) << bad;
  }
}

TEST_F(HttpServerTest, RangeReadMemoryDoesNotFollowTheBlob) {
  rebuild_identically("short log\n");
  json doc = json::parse(get(artifact()).body);
  const std::string url = doc["log"];
  // The stored log replaced (on disk, in place) by a 128 MiB one, written 1 MiB at a time:
  // serving a range of it must cost the range, not the file. The log is the only blob.
  std::string path;
  for (auto& e : std::filesystem::recursive_directory_iterator(config_.state_dir + "/blobs"))
    if (e.is_regular_file() && e.file_size() == 10) path = e.path().string();
  ASSERT_FALSE(path.empty());
  constexpr std::uint64_t kBig = 128ull << 20;
  {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    std::string chunk(1 << 20, '.');
    for (std::uint64_t off = 0; off < kBig; off += chunk.size()) {
      std::string stamp = std::to_string(off);
      chunk.replace(0, stamp.size(), stamp);
      f.write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    }
  }
  ASSERT_EQ(std::filesystem::file_size(path), kBig);
  const long before = peak_rss_kib();
  ASSERT_GT(before, 0);
  const std::uint64_t at = kBig - (1 << 20);  // the last chunk starts with its offset
  Reply r = get(url, {"Range: bytes=" + std::to_string(at) + "-" + std::to_string(at + 4095)});
  ASSERT_EQ(r.status, 206);
  EXPECT_EQ(r.body.size(), 4096u);
  EXPECT_EQ(r.body.substr(0, std::to_string(at).size()), std::to_string(at));
  EXPECT_EQ(r.header("content-range"),
            "bytes " + std::to_string(at) + "-" + std::to_string(at + 4095) + "/" + std::to_string(kBig));
  const long grown_kib = peak_rss_kib() - before;
  EXPECT_LT(grown_kib, 16 * 1024) << "peak RSS grew by " << grown_kib << " KiB for a 4 KiB range";
}

// What the front end answers itself, before any handler: limits, malformed requests
// and the 100 Continue of a body the client holds back.
TEST_F(HttpServerTest, LimitsAndMalformedRequestsAreAnsweredWithJsonErrors) {
  Reply big_header = get("/api/v1/stats", {"X-Filler: " + std::string(config_.http.max_header_bytes, 'a')});
  EXPECT_EQ(big_header.status, 431);
  EXPECT_EQ(error_code_of(big_header), "header_too_large");

  const std::string post = "POST /api/v1/nothing HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  Reply announced = exchange_bytes(
      port_, post + "Content-Length: " + std::to_string(config_.http.max_json_body + 1) + "\r\n\r\n");
  EXPECT_EQ(announced.status, 413);
  EXPECT_EQ(error_code_of(announced), "body_too_large");

  std::string chunk(config_.http.max_json_body + 1, 'x');
  char size[32];
  std::snprintf(size, sizeof size, "%zx", chunk.size());
  Reply chunked =
      exchange_bytes(port_, post + "Transfer-Encoding: chunked\r\n\r\n" + size + "\r\n" + chunk + "\r\n0\r\n\r\n");
  EXPECT_EQ(chunked.status, 413);
  EXPECT_EQ(error_code_of(chunked), "body_too_large");

  Reply garbage = exchange_bytes(port_, "NOT HTTP AT ALL\r\n\r\n");
  EXPECT_EQ(garbage.status, 400);
  EXPECT_EQ(error_code_of(garbage), "bad_request");

  int fd = connect_to(port_);
  ASSERT_GE(fd, 0);
  send_all(fd, post + "Expect: 100-continue\r\nContent-Length: 2\r\n\r\n");
  EXPECT_EQ(read_reply(fd, false).status, 100);
  send_all(fd, "{}");
  Reply after = read_reply(fd, false);
  ::close(fd);
  EXPECT_EQ(after.status, 405) << after.body;  // the body was read, then the route answered
  EXPECT_EQ(error_code_of(after), "method_not_allowed");
}

}  // namespace
}  // namespace kmr::server
