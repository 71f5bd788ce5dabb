#pragma once

// Sync's source hook: for every artifact not yet known, attaches the list of
// what its rebuild needs (rebuilder/distros/common/source_list.h) from the
// repository's "sources" templates, so the job carries it to the worker:
//   apt (debian, proxmox): the .dsc and its files from the same repository's
//        Sources index (verified against the Release's SHA256 list, each file
//        with its sha256 and size), and the .buildinfo template;
//   arch: the packaging git repository at the release tag (PKGBUILD);
//   rpm-md (suse): the source RPM from the srpm template, with its sha256 and size from
//        the source repository's own rpm-md index when `srpm_index` names it;
//   nix (nixos): the nixpkgs tarball at the pinned or the channel's revision.
// The per-distro expansion is in rebuilder/distros/*/sources.h. Artifacts
// that already carry sources (kmr-import, fixtures manifest) keep them.

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "rebuilder/archive/deb822.h"
#include "rebuilder/base/result.h"
#include "rebuilder/distros/debian/repository.h"
#include "rebuilder/distros/debian/sources.h"
#include "rebuilder/distros/common/source_list.h"
#include "server/config.h"
#include "server/store.h"

namespace kmr::server {

// What the native index reader verified, for the lookups that follow it (apt:
// the Release's SHA256 list and URLs).
using IndexContext = debian::ReleaseIndex;

// The .dsc and its files for each of `refs` from the Sources indexes the
// Release lists (each index checked against the Release's SHA256 list); a
// source the indexes lack has no entry.
Result<std::map<std::string, std::vector<distros::SourceFile>>> apt_dsc_files(
    const IndexContext& ctx, const std::vector<debian::BinaryRef>& refs, std::chrono::milliseconds timeout);

Result<void> attach_sources(Store& store, const RepositoryConfig& rc, const IndexContext& ctx,
                            std::vector<ImportArtifact>& arts, std::chrono::milliseconds timeout);

}  // namespace kmr::server
