#pragma once

// Repository sync: reads a repository's index in the configured format,
// keeps packages whose names match the patterns and whose architecture is
// listed, and imports them (idempotently: known sha256s and sets are skipped).

#include <chrono>
#include <vector>

#include "rebuilder/base/result.h"
#include "server/config.h"
#include "server/store.h"

namespace kmr::server {

// Parses an index document of the given format (no network).
//   kmr-import:         {"artifacts":[{"set","name","version","arch","filename","url","sha256","size"?,
//                        "sources"?,"resource_class"?}]}  (URLs relative to the document)
//   fixtures-manifest:  tests/fixtures/repos manifest.json (artifacts of rc.distro)
Result<std::vector<ImportArtifact>> parse_index(const RepositoryConfig& rc, std::string_view text);

// Fetches rc.url, parses, filters, imports. Returns the number of new jobs. Native formats:
//   arch:   the repository .db (<db>.sig checked with trusted_keys[0] when set); one set per pkgbase.
//   nix:    a binary cache (url = the cache directory); narinfos listed (file://) or named by store
//           paths in `packages`; Sig must verify with trusted_keys ("name:base64" or a key file), the
//           NAR must match FileHash/FileSize and NarHash/NarSize; one set per Deriver. The artifact
//           is the narinfo (its sha256), as in the fixtures manifest.
//   rpm-md: url = repository root; repomd.xml (.asc with trusted_keys) -> primary checked by sha256.
//   apt:    url = dists/<suite>/Release or InRelease (signature with trusted_keys) -> every
//           binary-<arch>/Packages(.xz/.gz) checked against the Release SHA256 list.
// On any error nothing is imported.
Result<std::int64_t> sync_repository(Store& store, const RepositoryConfig& rc, std::int64_t now,
                                     std::chrono::milliseconds timeout);

}  // namespace kmr::server
