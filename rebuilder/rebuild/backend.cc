#include "rebuilder/rebuild/backend.h"

#include <filesystem>
#include <map>

#include "rebuilder/base/bytes.h"
#include "rebuilder/base/file.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"
#include "rebuilder/base/subprocess.h"

namespace kmr::build {

namespace fs = std::filesystem;

namespace {
std::map<std::string, BackendFactory, std::less<>>& registry() {
  static std::map<std::string, BackendFactory, std::less<>> backends;
  return backends;
}
}  // namespace

BackendRegistrar::BackendRegistrar(std::initializer_list<std::string_view> names, BackendFactory factory) {
  for (std::string_view n : names) registry().emplace(std::string(n), factory);
}

std::unique_ptr<Backend> make_backend(const std::string& name) {
  auto it = registry().find(name);
  return it == registry().end() ? nullptr : it->second(name);
}

std::vector<std::string> registered_backends() {
  std::vector<std::string> names;
  for (const auto& [n, f] : registry()) names.push_back(n);
  return names;
}

std::string base_of(const std::string& p) { return fs::path(p).filename().string(); }
std::string dir_of(const std::string& p) {
  auto d = fs::path(p).parent_path().string();
  return d.empty() ? "." : d;
}

std::string file_sha256_hex(const std::string& path) {
  auto d = sha256_file(path);
  return d ? to_hex(*d) : "";
}

Result<void> copy_dir(const std::string& from, const std::string& to) {
  std::error_code ec;
  fs::create_directories(to, ec);
  // Symlinks stay symlinks and must stay inside the tree (artifact.h).
  return copy_tree_no_follow(from, to);
}

Result<void> write_text(const std::string& path, const std::string& text) {
  std::error_code ec;
  fs::create_directories(dir_of(path), ec);
  return write_file_atomic(path, as_bytes(text));
}

std::string first_existing(const std::vector<std::string>& candidates) {
  std::error_code ec;
  for (const auto& c : candidates) {
    if (!c.empty() && fs::exists(c, ec)) return c;
  }
  return "";
}

void require_tools(std::vector<std::string>& missing, std::initializer_list<const char*> tools) {
  for (const char* t : tools) {
    if (!have_program(t)) missing.push_back(std::string("tool '") + t + "' is not installed");
  }
}

void report_build_root(const Job& job, const std::string& path, bool cached, std::chrono::milliseconds took) {
  if (!job.options.progress) return;
  job.options.progress("build root " + path + (cached ? " (cached, " : " (made in ") + std::to_string(took.count()) +
                       " ms)");
}

}  // namespace kmr::build
