#include "rebuilder/distro/package.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "rebuilder/archive/arch_meta.h"
#include "rebuilder/archive/deb.h"
#include "rebuilder/archive/decompress.h"
#include "rebuilder/archive/nar.h"
#include "rebuilder/archive/openpgp.h"
#include "rebuilder/archive/rpm.h"
#include "rebuilder/base/file.h"

namespace kmr::distro {

namespace {

Result<ByteVector> read_head(const std::string& path, std::size_t n) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return io_error(path + ": cannot open: " + std::strerror(errno));
  ByteVector buf(n);
  std::size_t got = 0;
  while (got < n) {
    const ssize_t r = ::read(fd, buf.data() + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += static_cast<std::size_t>(r);
  }
  ::close(fd);
  buf.resize(got);
  return buf;
}

bool starts_with(Bytes b, std::string_view s) {
  return b.size() >= s.size() && std::memcmp(b.data(), s.data(), s.size()) == 0;
}

// Pull adapter: decompresses another InputStream on demand.
class DecompressingStream : public archive::InputStream {
 public:
  static Result<std::unique_ptr<DecompressingStream>> create(archive::InputStream& in, archive::Codec codec,
                                                             std::uint64_t max_output) {
    archive::DecompressOptions o;
    o.max_output = max_output;
    KMR_ASSIGN_OR_RETURN(auto d, archive::Decompressor::create(codec, o));
    return std::unique_ptr<DecompressingStream>(new DecompressingStream(in, std::move(d)));
  }
  Result<Bytes> next() override {
    out_.clear();
    while (out_.empty() && !done_) {
      KMR_ASSIGN_OR_RETURN(Bytes in, in_.next());
      auto sink = [this](Bytes b) -> Result<void> {
        out_.insert(out_.end(), b.begin(), b.end());
        return ok();
      };
      if (in.empty()) {
        KMR_TRY(d_->finish(sink));
        done_ = true;
      } else {
        // Feed in small pieces to bound the output held at once.
        for (std::size_t off = 0; off < in.size(); off += 64 << 10) {
          KMR_TRY(d_->update(in.subspan(off, std::min<std::size_t>(64 << 10, in.size() - off)), sink));
        }
      }
    }
    return Bytes(out_.data(), out_.size());
  }

 private:
  DecompressingStream(archive::InputStream& in, std::unique_ptr<archive::Decompressor> d)
      : in_(in), d_(std::move(d)) {}
  archive::InputStream& in_;
  std::unique_ptr<archive::Decompressor> d_;
  ByteVector out_;
  bool done_ = false;
};

std::string file_name(const std::string& path) { return std::filesystem::path(path).filename().string(); }

// "<hash>-linux-6.12.41" -> ("linux", "6.12.41").
std::pair<std::string, std::string> split_store_name(const std::string& store_path) {
  std::string base = store_path.substr(store_path.rfind('/') + 1);
  const std::size_t dash = base.find('-');
  if (dash != std::string::npos) base = base.substr(dash + 1);
  for (std::size_t i = 0; i + 1 < base.size(); ++i) {
    if (base[i] == '-' && std::isdigit(static_cast<unsigned char>(base[i + 1]))) {
      return {base.substr(0, i), base.substr(i + 1)};
    }
  }
  return {base, ""};
}

// How a package file is read: named by its file name in errors, within the
// inspection's limits.
archive::ReaderOptions reader_options(const std::string& path, const InspectOptions& opt) {
  archive::ReaderOptions ro;
  ro.name = file_name(path);
  ro.limits = opt.limits;
  return ro;
}

Result<void> read_arch(const std::string& path, LayoutCollector& c, const InspectOptions& opt, PackageReport& rep) {
  archive::ReaderOptions ro = reader_options(path, opt);
  ro.format = archive::Format::kTar;
  KMR_ASSIGN_OR_RETURN(auto st, archive::read_archive_file(path, ro, c.visitor(ro.name)));
  (void)st;
  const auto& md = c.metadata();
  auto pk = md.find(".PKGINFO");
  if (pk == md.end()) {
    if (!opt.layout_only) return unsupported(ro.name + ": tar archive without .PKGINFO (not an Arch package)");
    rep.format = "tar";
    return ok();
  }
  KMR_ASSIGN_OR_RETURN(auto info, archive::parse_pkginfo(pk->second, ro.name + ": .PKGINFO"));
  rep.format = "arch";
  rep.name = info.pkgname;
  rep.version = info.pkgver;
  rep.build["pkgbase"] = info.pkgbase;
  rep.build["builddate"] = info.builddate;
  rep.build["packager"] = info.packager;
  rep.build["installed_size"] = info.size;
  if (auto bi = md.find(".BUILDINFO"); bi != md.end()) {
    KMR_ASSIGN_OR_RETURN(auto b, archive::parse_buildinfo(bi->second, ro.name + ": .BUILDINFO"));
    rep.build["buildinfo_format"] = b.format;
    rep.build["builddate"] = b.builddate;
    rep.build["packager"] = b.packager;
    rep.build["installed"] = b.installed.size();
    rep.build["buildtool"] = b.buildtool;
    rep.build["buildtoolver"] = b.buildtoolver;
    rep.build["pkgbuild_sha256sum"] = b.pkgbuild_sha256sum;
    rep.build["buildenv"] = b.buildenv;
    rep.build["options"] = b.options;
  }
  if (auto mt = md.find(".MTREE"); mt != md.end()) {
    auto text = archive::decompress_all(as_bytes(mt->second), 256ull << 20);
    if (!text) return Error(text.error().code(), ro.name + ": .MTREE: " + text.error().message());
    KMR_ASSIGN_OR_RETURN(auto entries, archive::parse_mtree(as_string_view(*text), ro.name + ": .MTREE"));
    rep.build["mtree_entries"] = entries.size();
  }
  // Detached signature next to the package.
  if (!opt.keyring.empty() && std::filesystem::exists(path + ".sig")) {
    KMR_ASSIGN_OR_RETURN(auto v, archive::verify_detached(opt.keyring, path + ".sig", path));
    rep.build["signature"] = {{"verifier", v.verifier}, {"valid", v.valid}};
    if (!v.valid) rep.failures.push_back(ro.name + ".sig: OpenPGP signature does not verify");
  }
  return ok();
}

Result<void> read_debian(const std::string& path, LayoutCollector& c, const InspectOptions& opt, PackageReport& rep) {
  archive::ReaderOptions ro = reader_options(path, opt);
  KMR_ASSIGN_OR_RETURN(auto fs, archive::FileStream::open(path));
  archive::Visitor v = c.visitor(ro.name);
  KMR_ASSIGN_OR_RETURN(auto deb, archive::read_deb(*fs, ro, &v));
  rep.name = deb.package();
  rep.version = deb.version();
  const bool pve = rep.name.rfind("proxmox-kernel", 0) == 0 || rep.name.rfind("pve-kernel", 0) == 0;
  rep.format = pve ? "proxmox" : "debian";
  rep.build["source"] = deb.control.get_or("Source");
  rep.build["maintainer"] = deb.control.get_or("Maintainer");
  rep.build["architecture"] = deb.control.get_or("Architecture");
  rep.build["installed_size_kib"] = deb.control.get_or("Installed-Size");
  rep.build["data_member"] = deb.data_member;
  if (auto s = c.metadata().find("SOURCE"); s != c.metadata().end()) {
    std::string commit = s->second;
    while (!commit.empty() && (commit.back() == '\n' || commit.back() == ' ')) commit.pop_back();
    rep.build["source_commit"] = commit.substr(0, 200);
  }
  return ok();
}

Result<void> read_suse(const std::string& path, LayoutCollector& c, const InspectOptions& opt, PackageReport& rep) {
  archive::ReaderOptions ro = reader_options(path, opt);
  KMR_ASSIGN_OR_RETURN(auto fs, archive::FileStream::open(path));
  archive::Visitor v = c.visitor(ro.name);
  auto p = archive::read_rpm(*fs, ro, &v);
  if (!p) {
    if (p.error().code() == ErrorCode::kVerificationFailed) {
      rep.format = "suse";
      rep.failures.push_back(p.error().message());
      return ok();
    }
    return std::move(p).error();
  }
  rep.format = "suse";
  rep.name = p->name;
  rep.version = (p->epoch ? std::to_string(*p->epoch) + ":" : "") + p->version + "-" + p->release;
  rep.build["disturl"] = p->disturl;
  rep.build["buildhost"] = p->buildhost;
  rep.build["buildtime"] = p->buildtime;
  rep.build["arch"] = p->arch;
  rep.build["payload_compressor"] = p->payload_compressor;
  rep.build["header_sha256_ok"] = p->header_sha256_ok;
  rep.build["payload_digest_ok"] = p->payload_digest_ok ? nlohmann::json(*p->payload_digest_ok) : nlohmann::json();
  rep.build["openpgp_signed"] = p->has_openpgp_signature;
  return ok();
}

Result<void> read_nar_file(const std::string& path, archive::InputStream& in, LayoutCollector& c,
                           const InspectOptions& opt, PackageReport& rep, const archive::NarInfo* info) {
  archive::ReaderOptions ro = reader_options(path, opt);
  KMR_ASSIGN_OR_RETURN(auto nar, archive::read_nar(in, ro, c.visitor(ro.name)));
  rep.format = "nixos";
  rep.build["nar_hash"] = nar.nar_hash_nix32();
  rep.build["nar_size"] = nar.nar_size;
  if (info) {
    const bool hash_ok = nar.nar_hash_nix32() == "sha256:" + archive::nix32_encode(*info->nar_hash_bytes());
    const bool size_ok = nar.nar_size == info->nar_size;
    rep.build["nar_hash_ok"] = hash_ok && size_ok;
    if (!hash_ok) {
      rep.failures.push_back(ro.name + ": NarHash " + nar.nar_hash_nix32() + " does not match the narinfo (" +
                             info->nar_hash + ")");
    }
    if (!size_ok) {
      rep.failures.push_back(ro.name + ": NarSize " + std::to_string(nar.nar_size) + " does not match the narinfo (" +
                             std::to_string(info->nar_size) + ")");
    }
  }
  return ok();
}

Result<void> read_narinfo(const std::string& path, LayoutCollector& c, const InspectOptions& opt, PackageReport& rep) {
  KMR_ASSIGN_OR_RETURN(std::string text, read_text_file(path, 16 << 20));
  KMR_ASSIGN_OR_RETURN(auto info, archive::parse_narinfo(text, file_name(path), opt.limits));
  auto [name, version] = split_store_name(info.store_path);
  rep.name = name;
  rep.version = version;
  rep.build["store_path"] = info.store_path;
  rep.build["deriver"] = info.deriver;
  rep.build["references"] = info.references.size();
  rep.build["compression"] = info.compression;
  if (!opt.nix_keys.empty()) {
    KMR_ASSIGN_OR_RETURN(auto sc, archive::verify_narinfo_sigs(info, opt.nix_keys));
    rep.build["signatures"] = {{"valid", sc.valid}, {"invalid", sc.invalid}, {"untrusted", sc.untrusted}};
    if (sc.invalid > 0 || sc.valid == 0) {
      rep.failures.push_back(file_name(path) + ": no valid signature by a trusted key (" + std::to_string(sc.invalid) +
                             " invalid, " + std::to_string(sc.untrusted) + " untrusted)");
    }
  }
  if (info.url.find("..") != std::string::npos || info.url.empty() || info.url.front() == '/') {
    return malformed(file_name(path) + ": URL '" + info.url + "' is not a relative path inside the cache");
  }
  const std::string nar_path = (std::filesystem::path(path).parent_path() / info.url).string();
  KMR_ASSIGN_OR_RETURN(auto fs, archive::FileStream::open(nar_path));
  archive::Codec codec = archive::Codec::kNone;
  if (info.compression != "none") {
    const std::string cname = info.compression == "zstd" ? "zstd" : info.compression;
    auto cc = archive::codec_from_name(cname);
    if (!cc || info.compression == "br") {
      return unsupported(file_name(path) + ": Compression '" + info.compression + "' not supported");
    }
    codec = *cc;
  }
  std::unique_ptr<DecompressingStream> ds;
  archive::InputStream* in = fs.get();
  if (codec != archive::Codec::kNone) {
    KMR_ASSIGN_OR_RETURN(ds, DecompressingStream::create(*fs, codec, opt.limits.max_total_bytes));
    in = ds.get();
  }
  return read_nar_file(nar_path, *in, c, opt, rep, &info);
}

Result<void> read_buildinfo(const std::string& path, PackageReport& rep) {
  KMR_ASSIGN_OR_RETURN(std::string text, read_text_file(path, 64 << 20));
  KMR_ASSIGN_OR_RETURN(auto b, archive::parse_deb_buildinfo(text, file_name(path)));
  rep.name = b.source;
  rep.version = b.version;
  rep.build["build_date"] = b.build_date;
  rep.build["build_origin"] = b.build_origin;
  rep.build["build_architecture"] = b.build_architecture;
  rep.build["build_path"] = b.build_path;
  rep.build["installed_build_depends"] = b.installed_build_depends.size();
  rep.build["environment"] = b.environment;
  return ok();
}

}  // namespace

Result<PackageKind> detect_package(const std::string& path) {
  KMR_ASSIGN_OR_RETURN(ByteVector head, read_head(path, 4096));
  if (archive::looks_like_ar(head)) return PackageKind::kDeb;
  if (archive::looks_like_rpm(head)) return PackageKind::kRpm;
  if (archive::looks_like_nar(head)) return PackageKind::kNar;
  if (starts_with(head, "StorePath: ")) return PackageKind::kNarinfo;
  std::string_view text = as_string_view(head);
  if (starts_with(head, "-----BEGIN PGP SIGNED MESSAGE-----") || starts_with(head, "Format: ")) {
    if (text.find("Installed-Build-Depends:") != std::string_view::npos || text.find("\nBinary:") != std::string_view::npos) {
      return PackageKind::kDebBuildinfo;
    }
  }
  return PackageKind::kArch;  // a (compressed) tar; confirmed by .PKGINFO
}

Result<PackageReport> read_package(const std::string& path, LayoutCollector& collector, const InspectOptions& options) {
  PackageReport rep;
  rep.path = path;
  KMR_ASSIGN_OR_RETURN(PackageKind kind, detect_package(path));
  const std::uint64_t before = collector.kernel_members();
  switch (kind) {
    case PackageKind::kDeb: KMR_TRY(read_debian(path, collector, options, rep)); break;
    case PackageKind::kRpm: KMR_TRY(read_suse(path, collector, options, rep)); break;
    case PackageKind::kNarinfo: KMR_TRY(read_narinfo(path, collector, options, rep)); break;
    case PackageKind::kDebBuildinfo: KMR_TRY(read_buildinfo(path, rep)); break;
    case PackageKind::kNar: {
      KMR_ASSIGN_OR_RETURN(auto fs, archive::FileStream::open(path));
      KMR_TRY(read_nar_file(path, *fs, collector, options, rep, nullptr));
      break;
    }
    case PackageKind::kArch: {
      auto r = read_arch(path, collector, options, rep);
      if (!r) {
        if (r.error().code() == ErrorCode::kMalformedInput &&
            r.error().message().find("not a readable archive") != std::string::npos) {
          return unsupported(file_name(path) + ": not a recognised package (deb, rpm, NAR, narinfo, Arch package)");
        }
        return std::move(r).error();
      }
      break;
    }
  }
  rep.has_kernel_content = collector.kernel_members() > before;
  return rep;
}

}  // namespace kmr::distro
