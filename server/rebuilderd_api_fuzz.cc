// Fuzz target: rebuilderd API requests (path, query and If-Modified-Since from the input)
// against a store holding a GOOD, a FAIL and an unbuilt set. Every answer must be one of the
// documented statuses, never a 5xx, with a JSON body whenever it says application/json.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "attest/keys.h"
#include "rebuilder/base/file.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"
#include "server/rebuilderd_api.h"

namespace {

using namespace kmr;
using namespace kmr::server;

struct Fixture {
  std::unique_ptr<TempDir> dir;
  std::unique_ptr<Store> store;
  std::unique_ptr<attest::Ed25519Key> key;
};

std::string h(int i) { return sha256_hex(Bytes(reinterpret_cast<const std::uint8_t*>(&i), sizeof i)); }

Fixture* make_fixture() {
  auto* f = new Fixture;
  auto t = TempDir::create("rbapi-fuzz");
  if (!t) std::abort();
  f->dir = std::make_unique<TempDir>(std::move(t).value());
  auto s = Store::open(f->dir->path() + "/state");
  if (!s) std::abort();
  f->store = std::move(s).value();
  auto k = attest::Ed25519Key::generate();
  if (!k) std::abort();
  f->key = std::make_unique<attest::Ed25519Key>(std::move(k).value());
  auto repo = f->store->upsert_repository("core", "archlinux", "file:///core");
  if (!repo) std::abort();
  std::vector<ImportArtifact> arts = {{"a", "linux", "1", "x86_64", "linux-1.pkg.tar.zst", "file:///l", h(1), 1},
                                      {"b", "linux-lts", "2", "x86_64", "linux-lts-2.pkg.tar.zst", "file:///t", h(2), 1},
                                      {"c", "linux-zen", "3", "x86_64", "linux-zen-3.pkg.tar.zst", "file:///z", h(3), 1}};
  if (!f->store->import_artifacts(*repo, "archlinux", arts, 1000)) std::abort();
  auto wid = f->store->register_worker("w", to_hex(f->key->raw_public()), {"default"}, 1000);
  if (!wid) std::abort();
  Worker w{*wid, "w", to_hex(f->key->raw_public()), {"default"}, false};
  QueuePolicy policy;
  for (const char* status : {"verified", "build-failed"}) {
    auto job = f->store->claim_job(w, 1000, policy);
    if (!job || !*job) std::abort();
    Report r;
    r.job_id = (**job)["id"].get<std::int64_t>();
    r.lease_token = (**job)["lease"].get<std::string>();
    r.worker_id = *wid;
    r.status = status;
    const std::string file = (**job)["artifacts"][0]["filename"];
    if (std::string_view(status) == "verified") {
      r.files = "identical";
      r.rebuilt = {{file, (**job)["artifacts"][0]["sha256"].get<std::string>()}};
    }
    if (!f->store->report(r, 1000, policy)) std::abort();
  }
  return f;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Fixture* fx = make_fixture();
  if (size == 0 || size > 2048) return 0;
  static const char* kPrefixes[] = {"/api/v0/", "/api/v1/", "/api/v0/pkgs/list?", "/api/v1/packages/binary?",
                                    "/api/v1/packages/source?", "/api/v1/builds/", "/api/v1/builds?",
                                    "/api/v0/builds/", "/api/v1/meta/distributions/"};
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  auto nl = in.find('\n');
  std::string target = std::string(kPrefixes[data[0] % std::size(kPrefixes)]) + std::string(in.substr(0, nl));
  std::string ims = nl == std::string_view::npos ? "" : std::string(in.substr(nl + 1));
  RebuilderdApi::Query query;
  auto q = target.find('?');
  std::string path = target.substr(0, q);
  if (q != std::string::npos) {
    std::string_view qs = std::string_view(target).substr(q + 1);
    while (!qs.empty()) {
      auto amp = qs.find('&');
      std::string_view kv = qs.substr(0, amp);
      qs = amp == std::string_view::npos ? std::string_view() : qs.substr(amp + 1);
      auto eq = kv.find('=');
      query.emplace(std::string(kv.substr(0, eq)), eq == std::string_view::npos ? "" : std::string(kv.substr(eq + 1)));
    }
  }
  HttpRequest req{data[0] & 0x80 ? "DELETE" : "GET", target, {{"if-modified-since", ims}}, "", "127.0.0.1"};
  RebuilderdApi api(*fx->store, fx->key.get(), 2000);
  HttpResponse r = api.handle(req, path, query);
  switch (r.status) {
    case 200: case 304: case 400: case 403: case 404: case 405: case 501: break;
    default: std::abort();
  }
  if (r.status != 304 && r.content_type == "application/json" &&
      nlohmann::json::parse(r.body, nullptr, false).is_discarded())
    std::abort();
  return 0;
}
