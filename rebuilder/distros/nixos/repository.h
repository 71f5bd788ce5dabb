#pragma once

// NixOS's repository: a binary cache (cache.nixos.org layout:
// `nix-cache-info`, `<hash>.narinfo`, `nar/<filehash>.nar.xz`).

#include <string>
#include <vector>

#include "rebuilder/base/result.h"
#include "rebuilder/distros/common/repository.h"

namespace kmr::nixos {

// src.url is the cache (its directory or its nix-cache-info). Narinfos are
// found by listing a file:// cache, or named by store paths in src.packages
// ("/nix/store/<hash>-<name>"; other entries are name globs). Every narinfo
// kept must carry a valid Sig by one of src.trusted_keys ("name:base64" or a
// key file) and no invalid one; its NAR must match FileHash/FileSize and,
// decompressed, NarHash/NarSize. The package is the narinfo (its sha256);
// content_sha256 is the NarHash. The outputs of one Deriver are one set.
Result<std::vector<distros::IndexedPackage>> read_cache(const distros::RepositorySource& src);

// "linux-6.18.0-modules" -> "6.18.0": the first dash-separated component
// that starts with a digit; "unknown" when none does.
std::string version_of(const std::string& name);

}  // namespace kmr::nixos
