#include "server/worker_sources.h"

#include <filesystem>

#include "rebuilder/base/file.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"
#include "rebuilder/base/subprocess.h"
#include "server/http_client.h"

namespace kmr::server {
namespace {

namespace fs = std::filesystem;

constexpr std::uint64_t kMaxSourceBytes = 16ull << 30;

// "<what> (<name>): <url>: <why>", without the client's own "GET <url>: " prefix.
std::string missing_line(const std::string& what, const std::string& name, const std::string& url, const Error& e) {
  std::string why = e.message();
  const std::string prefix = "GET " + url + ": ";
  if (why.rfind(prefix, 0) == 0) why = why.substr(prefix.size());
  return (what.empty() ? "source" : what) + " (" + name + "): " + url + ": " + why;
}

// A file:// source is copied (it may live on a mirror mounted read-only).
Result<void> copy_local(const std::string& url, const std::string& dest) {
  KMR_ASSIGN_OR_RETURN(std::string from, file_url_path(url));
  std::error_code ec;
  if (!fs::is_regular_file(fs::symlink_status(from, ec))) return not_found(from + ": no such regular file");
  fs::copy_file(from, dest, fs::copy_options::overwrite_existing, ec);
  if (ec) return io_error(from + ": " + ec.message());
  return ok();
}

Result<void> fetch_file(const distros::SourceFile& f, const std::string& dest, std::chrono::milliseconds timeout) {
  if (f.url.rfind("file://", 0) == 0) {
    KMR_TRY(copy_local(f.url, dest));
  } else {
    KMR_TRY(fetch_url_to_file(f.url, dest, timeout, f.size ? *f.size : kMaxSourceBytes));
  }
  std::error_code ec;
  const auto size = fs::file_size(dest, ec);
  if (f.size && !ec && size != *f.size) {
    fs::remove(dest, ec);
    return Error(ErrorCode::kVerificationFailed, "size " + std::to_string(size) + ", the index says " + std::to_string(*f.size));
  }
  if (!f.sha256.empty()) {
    KMR_ASSIGN_OR_RETURN(Digest256 d, sha256_file(dest));
    if (to_hex(d) != f.sha256) {
      fs::remove(dest, ec);
      return Error(ErrorCode::kVerificationFailed, "sha256 " + to_hex(d) + ", the index says " + f.sha256);
    }
  }
  return ok();
}

Result<void> clone_git(const distros::GitSource& g, const std::string& dest, std::chrono::milliseconds timeout) {
  SubprocessOptions o;
  o.timeout = timeout;
  std::vector<std::string> env = {"PATH=/usr/bin:/bin", "HOME=/nonexistent", "GIT_TERMINAL_PROMPT=0",
                                  "GIT_ALLOW_PROTOCOL=https:http:file", "GIT_CONFIG_NOSYSTEM=1", "LC_ALL=C"};
  for (const char* k : {"https_proxy", "http_proxy", "no_proxy", "HTTPS_PROXY", "NO_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR",
                        "GIT_SSL_CAINFO"})
    if (const char* v = std::getenv(k)) env.push_back(std::string(k) + "=" + v);
  o.env = env;
  // --branch takes a tag too (the checkout is detached at it); the tag's
  // object is fetched whatever the default branch is.
  auto r = run_subprocess({"git", "-c", "advice.detachedHead=false", "clone", "--quiet", "--depth", "1", "--branch", g.ref,
                           "--", g.url, dest},
                          o);
  if (!r) return r.error();
  if (!r->success()) {
    std::string err = r->err.substr(0, 400);
    while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
    return Error(ErrorCode::kNotFound, "git clone at " + g.ref + " failed (" + r->describe() + "): " + err);
  }
  return ok();
}

}  // namespace

Result<FetchedSources> fetch_sources(const distros::SourceList& list, const std::string& dir,
                                     std::chrono::milliseconds timeout) {
  KMR_TRY(distros::validate(list));
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return io_error(dir + ": " + ec.message());
  FetchedSources out{dir, {}};
  for (const auto& f : list.files) {
    auto r = fetch_file(f, dir + "/" + f.name, timeout);
    if (!r) out.missing.push_back(missing_line(f.what, f.name, f.url, r.error()));
  }
  for (const auto& g : list.git) {
    auto r = clone_git(g, dir + "/" + g.dir, timeout);
    if (!r) out.missing.push_back(missing_line(g.what, g.dir, g.url, r.error()));
  }
  return out;
}

}  // namespace kmr::server

namespace kmr::server {

Result<FetchedSources> fetch_job_sources(std::string_view source_list_json, const std::string& dir,
                                         std::chrono::milliseconds timeout) {
  KMR_ASSIGN_OR_RETURN(distros::SourceList list, distros::parse_source_list(source_list_json));
  return fetch_sources(list, dir, timeout);
}

}  // namespace kmr::server
