#include "server/sync_sources.h"

#include <map>
#include <set>

#include "rebuilder/archive/decompress.h"
#include "rebuilder/archive/openpgp.h"
#include "rebuilder/base/file.h"
#include "rebuilder/distros/arch/sources.h"
#include "rebuilder/distros/debian/sources.h"
#include "rebuilder/distros/nixos/sources.h"
#include "rebuilder/distros/common/source_list.h"
#include "rebuilder/distros/suse/repository.h"
#include "rebuilder/distros/suse/sources.h"
#include "server/http_client.h"

namespace kmr::server {
namespace {

using distros::SourceList;

std::string value_of(const RepositoryConfig& rc, const std::string& key) {
  auto it = rc.sources.find(key);
  return it == rc.sources.end() ? "" : it->second;
}


// set_key minus a "-<suffix>" tail ("linux-6.18.5.arch1-1-x86_64" - "6.18.5.arch1-1-x86_64").
std::string strip_tail(const std::string& key, const std::string& tail) {
  if (key.size() > tail.size() + 1 && key.compare(key.size() - tail.size(), tail.size(), tail) == 0 &&
      key[key.size() - tail.size() - 1] == '-')
    return key.substr(0, key.size() - tail.size() - 1);
  return "";
}

// ---- apt: Sources index -> .dsc + files; the .buildinfo template ------------------------------

// "src_srcver_arch" (read_apt's set key) -> the source and its version.
bool split_apt_set(const ImportArtifact& a, debian::BinaryRef& ref) {
  const auto last = a.set_key.rfind('_');
  const auto mid = last == std::string::npos || last == 0 ? std::string::npos : a.set_key.rfind('_', last - 1);
  if (mid == std::string::npos || mid == 0) return false;
  ref.source = a.set_key.substr(0, mid);
  ref.source_version = a.set_key.substr(mid + 1, last - mid - 1);
  ref.version = a.version;
  ref.arch = a.arch;
  return true;
}

Result<std::vector<archive::Deb822Paragraph>> read_sources(const IndexContext& ctx, const std::set<std::string>& wanted,
                                                          std::chrono::milliseconds timeout) {
  std::vector<archive::Deb822Paragraph> out;
  for (const auto& path : debian::sources_index_paths(ctx.release_files)) {
    const std::string url = ctx.dist_url + path;
    KMR_ASSIGN_OR_RETURN(std::string packed, fetch_url(url, timeout, 1ull << 30));
    KMR_TRY(archive::check_release_entry(ctx.release_files, path, packed));
    KMR_ASSIGN_OR_RETURN(ByteVector raw, archive::decompress_all(as_bytes(packed), 4ull << 30));
    const std::string picked =
        debian::paragraphs_of(std::string_view(reinterpret_cast<const char*>(raw.data()), raw.size()), wanted);
    KMR_ASSIGN_OR_RETURN(auto paras, archive::parse_deb822(picked, url));
    for (auto& p : paras) out.push_back(std::move(p));
  }
  return out;
}

std::string dsc_key(const debian::BinaryRef& r) { return r.source + "_" + r.source_version; }

Result<void> attach_apt(const RepositoryConfig& rc, const IndexContext& ctx, std::vector<ImportArtifact*>& arts,
                        std::chrono::milliseconds timeout) {
  std::vector<debian::BinaryRef> refs;
  for (auto* a : arts) {
    debian::BinaryRef ref;
    if (split_apt_set(*a, ref)) refs.push_back(ref);
  }
  KMR_ASSIGN_OR_RETURN(auto dscs, apt_dsc_files(ctx, refs, timeout));
  const std::string buildinfo = value_of(rc, "buildinfo");
  for (auto* a : arts) {
    debian::BinaryRef ref;
    if (!split_apt_set(*a, ref)) continue;
    SourceList list;
    if (auto it = dscs.find(dsc_key(ref)); it != dscs.end()) list.files = it->second;
    if (!buildinfo.empty()) {
      KMR_ASSIGN_OR_RETURN(distros::SourceFile b, debian::buildinfo_source(buildinfo, ref));
      list.files.push_back(std::move(b));
    }
    if (list.empty()) continue;
    KMR_ASSIGN_OR_RETURN(a->sources, distros::to_json(list));
  }
  return ok();
}

// ---- arch, suse, nixos ------------------------------------------------------------------------

Result<void> attach_arch(const RepositoryConfig& rc, std::vector<ImportArtifact*>& arts) {
  const std::string git = value_of(rc, "pkgbuild_git");
  if (git.empty()) return ok();
  for (auto* a : arts) {
    const std::string pkgbase = strip_tail(a->set_key, a->version + "-" + a->arch);
    if (pkgbase.empty()) continue;
    SourceList list;
    KMR_ASSIGN_OR_RETURN(distros::GitSource g, arch::pkgbuild_source(git, pkgbase, a->version));
    list.git.push_back(std::move(g));
    KMR_ASSIGN_OR_RETURN(a->sources, distros::to_json(list));
  }
  return ok();
}

Result<void> attach_suse(const RepositoryConfig& rc, std::vector<ImportArtifact*>& arts, std::chrono::milliseconds timeout) {
  const std::string srpm = value_of(rc, "srpm"), index = value_of(rc, "srpm_index");
  if (srpm.empty()) return ok();
  // Source RPM file name -> (sha256, size) from the source repository's index.
  std::map<std::string, std::pair<std::string, std::uint64_t>> known;
  if (!index.empty()) {
    const std::string base = index.ends_with("/") ? index : index + "/";
    KMR_ASSIGN_OR_RETURN(auto pkgs, suse::read_primary(rc.trusted_keys, base, timeout));
    for (const auto& p : pkgs)
      if ((p.arch == "src" || p.arch == "nosrc") && p.checksum_type == "sha256")
        known[p.location.substr(p.location.rfind('/') + 1)] = {p.checksum, p.package_size};
  }
  for (auto* a : arts) {
    const std::string sourcerpm = strip_tail(a->set_key, a->arch);
    if (suse::srpm_arch(sourcerpm).empty()) continue;
    SourceList list;
    KMR_ASSIGN_OR_RETURN(distros::SourceFile f, suse::srpm_source(srpm, sourcerpm));
    if (auto it = known.find(sourcerpm); it != known.end()) {
      f.sha256 = it->second.first;
      if (it->second.second != 0) f.size = it->second.second;
    }
    list.files.push_back(std::move(f));
    KMR_ASSIGN_OR_RETURN(a->sources, distros::to_json(list));
  }
  return ok();
}

Result<void> attach_nixos(const RepositoryConfig& rc, std::vector<ImportArtifact*>& arts, std::chrono::milliseconds timeout) {
  const std::string tarball = value_of(rc, "nixpkgs_tarball");
  std::string rev = value_of(rc, "nixpkgs_rev");
  if (tarball.empty() || arts.empty()) return ok();
  if (rev.empty()) {
    const std::string channel = value_of(rc, "channel"), tmpl = value_of(rc, "git_revision");
    if (channel.empty() || tmpl.empty()) return ok();
    KMR_ASSIGN_OR_RETURN(std::string url, nixos::git_revision_url(tmpl, channel));
    KMR_ASSIGN_OR_RETURN(std::string text, fetch_url(url, timeout, 4096));
    auto parsed = nixos::parse_git_revision(text);
    if (!parsed) return Error(parsed.error().code(), url + ": " + parsed.error().message());
    rev = *parsed;
  }
  SourceList list;
  KMR_ASSIGN_OR_RETURN(distros::SourceFile f, nixos::nixpkgs_source(tarball, rev));
  list.files.push_back(std::move(f));
  KMR_ASSIGN_OR_RETURN(std::string doc, distros::to_json(list));
  for (auto* a : arts) a->sources = doc;
  return ok();
}

}  // namespace

Result<std::map<std::string, std::vector<distros::SourceFile>>> apt_dsc_files(
    const IndexContext& ctx, const std::vector<debian::BinaryRef>& refs, std::chrono::milliseconds timeout) {
  std::map<std::string, std::vector<distros::SourceFile>> out;
  std::set<std::string> wanted;
  for (const auto& r : refs) wanted.insert(r.source);
  if (wanted.empty()) return out;
  KMR_ASSIGN_OR_RETURN(auto sources, read_sources(ctx, wanted, timeout));
  for (const auto& r : refs) {
    const auto* p = debian::find_source(sources, r.source, r.source_version);
    if (p == nullptr || out.count(dsc_key(r))) continue;
    KMR_ASSIGN_OR_RETURN(out[dsc_key(r)], debian::dsc_files(*p, ctx.archive_root));
  }
  return out;
}

Result<void> attach_sources(Store& store, const RepositoryConfig& rc, const IndexContext& ctx,
                            std::vector<ImportArtifact>& arts, std::chrono::milliseconds timeout) {
  std::vector<ImportArtifact*> todo;
  for (auto& a : arts) {
    if (a.sources) continue;
    KMR_ASSIGN_OR_RETURN(bool known, store.artifact_known(a.sha256));
    if (!known) todo.push_back(&a);
  }
  if (todo.empty()) return ok();
  Result<void> r = ok();
  if (rc.format == "apt" && (rc.distro == "debian" || rc.distro == "proxmox")) r = attach_apt(rc, ctx, todo, timeout);
  else if (rc.format == "arch" && rc.distro == "arch") r = attach_arch(rc, todo);
  else if (rc.format == "rpm-md" && rc.distro == "suse") r = attach_suse(rc, todo, timeout);
  else if (rc.format == "nix" && rc.distro == "nixos") r = attach_nixos(rc, todo, timeout);
  if (!r) return Error(r.error().code(), rc.name + ": attaching sources: " + r.error().message());
  return ok();
}

}  // namespace kmr::server
