#include "rebuilder/distros/nixos/instantiate.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include "rebuilder/archive/archive_reader.h"
#include "rebuilder/base/file.h"
#include "rebuilder/base/hex.h"
#include "rebuilder/base/sha256.h"
#include "rebuilder/buildenv/sandbox.h"

namespace kmr::nixos {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kStoreDir = "/nix/store/";

struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

bool ident_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool ident_char(char c) { return ident_start(c) || (c >= '0' && c <= '9') || c == '\'' || c == '-'; }

bool is_identifier(std::string_view s) {
  return !s.empty() && ident_start(s.front()) && std::all_of(s.begin(), s.end(), ident_char);
}

std::string tail(const std::string& text, std::size_t n) { return text.size() <= n ? text : "…" + text.substr(text.size() - n); }

}  // namespace

// ---- unpacking --------------------------------------------------------------------------------

Result<UnpackStats> unpack_tree(const std::string& tarball, const std::string& dest, const UnpackLimits& limits) {
  const std::string name = fs::path(tarball).filename().string();
  if (::mkdir(dest.c_str(), 0755) != 0) return io_error("cannot create " + dest + ": " + std::strerror(errno));
  archive::ReaderOptions ro;
  ro.name = name;
  ro.format = archive::Format::kTar;
  ro.limits.max_members = limits.max_members;
  ro.limits.max_member_bytes = limits.max_member_bytes;
  ro.limits.max_total_bytes = limits.max_total_bytes;
  UnpackStats st;
  std::set<std::string> symlinks;  // stripped paths of the links made: nothing is written beneath one
  auto visit = [&](const archive::Entry& e, archive::MemberStream& m) -> Result<void> {
    if (e.path.empty()) return ok();
    const auto slash = e.path.find('/');
    const std::string first = e.path.substr(0, slash);
    if (st.top.empty()) st.top = first;
    if (first != st.top) return malformed(name + ": '" + e.path + "' is outside the one top-level directory '" + st.top + "'");
    if (slash == std::string::npos) {
      if (e.type != archive::EntryType::kDirectory) return malformed(name + ": the top-level member '" + e.path + "' is not a directory");
      return ok();
    }
    const std::string rel = e.path.substr(slash + 1);
    if (static_cast<std::uint32_t>(std::count(rel.begin(), rel.end(), '/')) >= limits.max_depth) {
      return limit_exceeded(name + ": '" + e.path + "' is deeper than " + std::to_string(limits.max_depth) + " directories");
    }
    for (std::size_t i = rel.find('/'); i != std::string::npos; i = rel.find('/', i + 1)) {
      if (symlinks.count(rel.substr(0, i))) return malformed(name + ": '" + e.path + "' lies beneath a symbolic link");
    }
    const std::string out = dest + "/" + rel;
    if (const auto k = rel.rfind('/'); k != std::string::npos) {
      std::error_code ec;  // members may come before their directory's own entry
      fs::create_directories(dest + "/" + rel.substr(0, k), ec);
    }
    switch (e.type) {
      case archive::EntryType::kDirectory: {
        if (::mkdir(out.c_str(), 0755) != 0 && errno != EEXIST) return io_error("cannot create " + out + ": " + std::strerror(errno));
        struct stat sb;
        if (::lstat(out.c_str(), &sb) != 0 || !S_ISDIR(sb.st_mode)) return malformed(name + ": '" + e.path + "' is a directory and another member");
        ++st.directories;
        return ok();
      }
      case archive::EntryType::kSymlink: {
        if (e.absolute_symlink) return malformed(name + ": " + e.path + ": symbolic link to the absolute path '" + e.link_target + "'");
        if (!archive::symlink_stays_inside(rel, e.link_target)) {
          return malformed(name + ": " + e.path + ": symbolic link target '" + e.link_target + "' leaves the tree");
        }
        if (::symlink(e.link_target.c_str(), out.c_str()) != 0) return io_error("cannot create the link " + out + ": " + std::strerror(errno));
        symlinks.insert(rel);
        ++st.symlinks;
        return ok();
      }
      case archive::EntryType::kHardlink:
        return malformed(name + ": " + e.path + ": hard link to '" + e.link_target + "' (not in a source tree)");
      case archive::EntryType::kFile: break;
    }
    Fd fd(::open(out.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, (e.mode & 0111) ? 0755 : 0644));
    if (fd.fd < 0) return io_error("cannot create " + out + ": " + std::strerror(errno));
    for (;;) {
      KMR_ASSIGN_OR_RETURN(Bytes b, m.next());
      if (b.empty()) break;
      KMR_TRY(write_all(fd.fd, b, out));
      st.bytes += b.size();
    }
    ++st.files;
    return ok();
  };
  auto r = archive::read_archive_file(tarball, ro, visit);
  if (!r) return std::move(r).error();
  if (st.top.empty()) return malformed(name + ": no top-level directory (an empty archive?)");
  return st;
}

// ---- attributes ---------------------------------------------------------------------------------

Result<std::string> attribute_for_deriver(std::string_view drv) {
  if (const auto k = drv.rfind('/'); k != std::string_view::npos) drv.remove_prefix(k + 1);
  if (drv.size() < 34 + 4 || drv[32] != '-' || drv.substr(drv.size() - 4) != ".drv") {
    return malformed("'" + std::string(drv.substr(0, 240)) + "' is not a .drv name");
  }
  const std::string_view full = drv.substr(33, drv.size() - 33 - 4);
  // builtins.parseDrvName: the version starts at the first '-' not followed by a letter.
  std::string_view pname = full, version;
  for (std::size_t i = 0; i + 1 < full.size(); ++i) {
    if (full[i] == '-' && !((full[i + 1] >= 'a' && full[i + 1] <= 'z') || (full[i + 1] >= 'A' && full[i + 1] <= 'Z'))) {
      pname = full.substr(0, i);
      version = full.substr(i + 1);
      break;
    }
  }
  if (pname == "linux" && !version.empty()) {
    // linux-<major>.<minor>[.<patch>][-suffix] -> linux_<major>_<minor>
    const auto d1 = version.find('.');
    if (d1 != std::string_view::npos && d1 > 0) {
      std::size_t d2 = d1 + 1;
      while (d2 < version.size() && version[d2] >= '0' && version[d2] <= '9') ++d2;
      const std::string_view major = version.substr(0, d1), minor = version.substr(d1 + 1, d2 - d1 - 1);
      if (!minor.empty() && std::all_of(major.begin(), major.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return "linux_" + std::string(major) + "_" + std::string(minor);
      }
    }
  }
  if (!is_identifier(pname)) {
    return malformed("the package name '" + std::string(pname) + "' of " + std::string(drv) +
                     " is not a nixpkgs attribute: give one (nix-attr in the sources)");
  }
  return std::string(pname);
}

Result<std::string> parse_attribute_path(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  if (text.empty() || text.size() > 256) return malformed("a nix attribute path is 1 to 256 bytes");
  for (std::size_t i = 0, j; i <= text.size(); i = j + 1) {
    j = text.find('.', i);
    if (j == std::string_view::npos) j = text.size();
    if (!is_identifier(text.substr(i, j - i))) {
      return malformed("'" + std::string(text.substr(0, 80)) + "' is not an attribute path (dot-separated identifiers)");
    }
  }
  return std::string(text);
}

Result<std::string> find_nixpkgs_tarball(const std::string& sources) {
  if (sources.empty()) return not_found("no sources given (the nixpkgs tarball, nixpkgs-<rev>.tar.gz)");
  auto is_name = [](const std::string& n) { return n.rfind("nixpkgs-", 0) == 0 && n.size() > 15 && n.ends_with(".tar.gz"); };
  std::error_code ec;
  if (fs::is_regular_file(sources, ec)) {
    if (is_name(fs::path(sources).filename().string())) return sources;
    return not_found(sources + " is not a nixpkgs-<rev>.tar.gz");
  }
  if (!fs::is_directory(sources, ec)) return not_found(sources + ": no such file or directory");
  std::vector<std::string> found;
  for (const auto& d : fs::directory_iterator(sources, ec)) {
    if (d.is_regular_file(ec) && is_name(d.path().filename().string())) found.push_back(d.path().string());
  }
  if (found.empty()) return not_found("no nixpkgs-<rev>.tar.gz in " + sources);
  if (found.size() > 1) return malformed("more than one nixpkgs-*.tar.gz in " + sources);
  return found[0];
}

Result<std::string> explicit_attribute(const std::string& sources) {
  std::error_code ec;
  if (sources.empty() || !fs::is_directory(sources, ec)) return std::string();
  const std::string p = sources + "/nix-attr";
  if (!fs::exists(p, ec)) return std::string();
  KMR_ASSIGN_OR_RETURN(auto text, read_text_file(p, 4096));
  auto a = parse_attribute_path(text);
  if (!a) return std::move(a).error().with_context(p);
  return a;
}

Result<std::string> read_beneath(const std::string& root, const std::string& rel, std::uint64_t max_bytes) {
  Fd dir(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.fd < 0) return io_error("cannot open " + root + ": " + std::strerror(errno));
  int cur = dir.fd;
  std::vector<std::unique_ptr<Fd>> held;
  std::size_t i = 0;
  for (;;) {
    const auto j = rel.find('/', i);
    const std::string comp = rel.substr(i, j == std::string::npos ? std::string::npos : j - i);
    if (comp.empty() || comp == "." || comp == "..") return malformed("'" + rel + "' is not a plain relative path");
    const bool last = j == std::string::npos;
    const int fd = ::openat(cur, comp.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | (last ? O_NONBLOCK : O_DIRECTORY));
    if (fd < 0) {
      if (errno == ENOENT) return not_found(root + "/" + rel + ": no such file");
      return io_error(root + "/" + rel + ": " + comp + ": " + (errno == ELOOP || errno == ENOTDIR ? "a symbolic link or not a directory" : std::strerror(errno)));
    }
    held.push_back(std::make_unique<Fd>(fd));
    cur = fd;
    if (last) break;
    i = j + 1;
  }
  struct stat sb;
  if (::fstat(cur, &sb) != 0 || !S_ISREG(sb.st_mode)) return malformed(root + "/" + rel + " is not a regular file");
  if (static_cast<std::uint64_t>(sb.st_size) > max_bytes) return limit_exceeded(root + "/" + rel + " is larger than " + std::to_string(max_bytes) + " bytes");
  std::string text(static_cast<std::size_t>(sb.st_size), '\0');
  std::size_t got = 0;
  while (got < text.size()) {
    const ssize_t n = ::read(cur, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return io_error(root + "/" + rel + ": short read");
    got += static_cast<std::size_t>(n);
  }
  return text;
}

// ---- instantiation ------------------------------------------------------------------------------

Result<Instantiated> instantiate(const InstantiateRequest& req) {
  Instantiated out;
  const auto t0 = std::chrono::steady_clock::now();
  KMR_ASSIGN_OR_RETURN(auto digest, sha256_file(req.tarball));
  out.tarball_sha256 = to_hex(digest);
  std::error_code ec;
  fs::create_directories(req.work_dir, ec);
  if (ec) return io_error("cannot create " + req.work_dir + ": " + ec.message());
  const std::string tree = req.work_dir + "/nixpkgs";
  out.store_root = req.work_dir + "/nixroot";
  fs::remove_all(tree, ec);
  KMR_ASSIGN_OR_RETURN(out.unpacked, unpack_tree(req.tarball, tree));
  fs::create_directories(out.store_root + "/nix", ec);
  if (ec) return io_error("cannot create " + out.store_root + "/nix: " + ec.message());

  auto available = build::sandbox_available();
  if (!available) return not_found("sandbox unavailable for nix-instantiate: " + available.error().message());
  build::SandboxConfig s;
  s.work_dir = req.work_dir;
  s.uid = 0;
  s.gid = 0;
  s.user = "root";
  s.hostname = "kmr-eval";
  s.mounts.push_back({out.store_root + "/nix", "/nix", true});
  s.mounts.push_back({tree, "/nixpkgs", false});
  s.env["NIX_CONFIG"] = "build-users-group =\nexperimental-features = nix-command\nsandbox = false\nsubstituters =";
  s.env["NIX_REMOTE"] = "";
  s.env["NIX_PATH"] = "nixpkgs=/nixpkgs";
  s.memory_bytes = req.memory_bytes;
  s.wall_time = req.wall_time;
  s.cpu_seconds = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(req.wall_time).count()) + 60;
  s.disk_bytes = 16ull << 30;
  s.cgroup_parent = req.cgroup_parent;
  // The result goes to a file: the log mixes nix's warnings in.
  const std::vector<std::string> argv = {
      "/bin/sh", "-c", "rm -f /build/kmr-nix-instantiated; exec nix-instantiate /nixpkgs -A \"$1\" > /build/kmr-nix-instantiated",
      "kmr-nix-instantiate", req.attr};
  KMR_ASSIGN_OR_RETURN(auto run, build::run_in_sandbox(s, argv));
  out.eval_time = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  const std::string what = "nix-instantiate of nixpkgs " + fs::path(req.tarball).filename().string() + " -A " + req.attr;
  if (!run.success()) {
    return not_found(what + " in the sandbox " + run.describe() + ": " + tail(run.process.out, 1500));
  }
  KMR_ASSIGN_OR_RETURN(auto result, read_beneath(req.work_dir, "build/kmr-nix-instantiated", 64 << 10));
  while (!result.empty() && result.back() == '\n') result.pop_back();
  if (result.find('\n') != std::string::npos) {
    return not_found(what + " yields more than one derivation (an attribute set, not a derivation): " + tail(result, 600) +
                     "; the narinfo's Deriver is " + req.deriver);
  }
  if (result != req.deriver) {
    return not_found(what + " instantiates " + (result.empty() ? std::string("nothing") : result.substr(0, 300)) +
                     ", not the narinfo's Deriver " + req.deriver + " (the shipped output was not built from this nixpkgs " +
                     "attribute; nothing else is used in its place)");
  }
  out.drv = result;
  // The derivation closure, read back from the job's store as untrusted bytes.
  std::vector<std::string> todo = {out.drv};
  while (!todo.empty()) {
    const std::string p = todo.back();
    todo.pop_back();
    if (out.closure.count(p)) continue;
    if (out.closure.size() >= 20'000) return limit_exceeded(out.drv + ": more than 20000 derivations in its closure");
    if (!is_store_path(p) || !p.ends_with(".drv")) return malformed("'" + p.substr(0, 300) + "' is not a .drv store path");
    KMR_ASSIGN_OR_RETURN(auto text, read_beneath(out.store_root, "nix/store/" + p.substr(kStoreDir.size()), DerivationLimits{}.max_bytes));
    if (p == out.drv) out.drv_sha256 = to_hex(sha256(Bytes(reinterpret_cast<const std::uint8_t*>(text.data()), text.size())));
    KMR_ASSIGN_OR_RETURN(auto d, parse_derivation(text, p));
    for (const auto& [in, outs] : d.input_drvs) todo.push_back(in);
    out.closure.emplace(p, std::move(d));
  }
  out.derivation = out.closure.at(out.drv);
  const auto own = out.derivation.output_paths();
  for (const auto& shipped : req.shipped_outputs) {
    if (std::find(own.begin(), own.end(), shipped) == own.end()) {
      return Error(ErrorCode::kVerificationFailed, out.drv + " does not produce the shipped output " + shipped);
    }
  }
  return out;
}

}  // namespace kmr::nixos
