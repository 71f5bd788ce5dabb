#pragma once

// Debian's (and Proxmox's) repository index: an apt archive
// (`dists/<suite>/{InRelease,Release,Release.gpg}` and the
// `binary-<arch>/Packages` indexes the Release lists).

#include <string>
#include <vector>

#include "rebuilder/archive/deb822.h"
#include "rebuilder/base/result.h"
#include "rebuilder/distros/common/repository.h"

namespace kmr::debian {

// What reading the Release verified, for the lookups that follow it (the
// Sources index, the .dsc files).
struct ReleaseIndex {
  std::vector<archive::ReleaseFile> release_files;  // the Release's SHA256 list
  std::string dist_url;                             // .../dists/<suite>/
  std::string archive_root;                         // the archive root (pool base)
};

// src.url is dists/<suite>/Release or InRelease (clearsigned). With trusted
// keys, Release.gpg (or InRelease's signature) must verify. Every
// binary-<arch>/Packages(.xz/.gz) the Release lists for src.architectures
// (one compression per index, checked against its SHA256 and size) is read.
// One set per source package, version and architecture; *index is filled.
Result<std::vector<distros::IndexedPackage>> read_archive(const distros::RepositorySource& src, ReleaseIndex* index);

}  // namespace kmr::debian
