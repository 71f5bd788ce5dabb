#pragma once

// `kmr rebuild` of a Debian or Proxmox binary package without --sources: its
// rebuild inputs fetched from the package's own apt repository and verified
// before the rebuild sees them.
//
// 1. The Release (InRelease, clearsigned; or Release with Release.gpg) must
//    verify with the given keyring (sqv/gpgv, rebuilder/archive/openpgp.h).
// 2. The Sources index the Release lists (xz, gz or plain), checked against
//    the Release's SHA256 list, gives the source package of the shipped
//    binary (Source and version from the .deb's control): its .dsc and every
//    file it lists, each downloaded with the HTTPS client and checked against
//    the index's sha256 and size.
// 3. The .buildinfo from the URL template (sources.h; Debian's default is
//    buildinfos.debian.net) must list every shipped .deb with its size and
//    sha256, and, when it lists the .dsc, the .dsc the index gave.
// A file the repository does not have (not in the index, HTTP 404, a
// connection that fails) is `missing`, with the URL tried and why; a
// signature or hash that does not match is an error (verification_failed).

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "rebuilder/base/result.h"
#include "rebuilder/distros/debian/sources.h"
#include "rebuilder/distros/common/source_list.h"

namespace kmr::debian {

struct RepositoryOptions {
  // https://.../dists/<suite>/InRelease, or .../dists/<suite>/Release (then
  // Release.gpg beside it is the signature).
  std::string release_url;
  // OpenPGP keys (binary or armored keyring) the Release must verify with.
  std::string keyring;
  // The .buildinfo URL template ({source}, {source_c}, {version},
  // {source_version}, {arch}); "" = Debian's default.
  std::string buildinfo_template;
  // Deadline of each request (a 230 MB source tarball included).
  std::chrono::milliseconds timeout{std::chrono::minutes(30)};
};

// Where a Release URL's suite and archive root are:
// "https://h/debian/dists/bookworm/InRelease" -> dist_url
// "https://h/debian/dists/bookworm/", archive_root "https://h/debian/".
struct ReleaseLocation {
  std::string dist_url;
  std::string archive_root;
  bool clearsigned = false;  // InRelease
};
Result<ReleaseLocation> release_location(const std::string& release_url);

// A shipped binary package as the .buildinfo must list it.
struct ShippedDeb {
  std::string file_name;
  std::string sha256;
  std::uint64_t size = 0;
  BinaryRef ref;  // Source/Version/Architecture from its control
};
Result<ShippedDeb> read_shipped_deb(const std::string& path);

// The .buildinfo is the one of these packages: its Checksums-Sha256 lists
// every shipped .deb by name, size and sha256, and a .dsc it lists is the
// one the Sources index gave (`dsc`, when not null). Errors name the first
// difference (verification_failed) or a .buildinfo that cannot be read.
Result<void> check_buildinfo_binding(std::string_view buildinfo_text, const std::string& what,
                                     const std::vector<ShippedDeb>& debs, const distros::SourceFile* dsc);

struct FetchedInputs {
  std::string dir;
  std::string buildinfo;               // file name in dir, "" when it could not be fetched
  std::vector<std::string> sources;    // file names in dir, the .dsc first; empty when missing
  std::vector<std::string> missing;    // "<what>: <url>: <why>", one per missing input
};

// Fetches and verifies the .buildinfo and the source package of `debs`
// (packages of one build; the first names the source) into `dir` (created).
// Errors: the Release does not verify, an index or a file does not match its
// hash, a .buildinfo that lists other packages, local failures.
Result<FetchedInputs> fetch_rebuild_inputs(const RepositoryOptions& options, const std::vector<std::string>& debs,
                                           const std::string& dir);

}  // namespace kmr::debian
