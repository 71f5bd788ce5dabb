#pragma once

// Arch's repository index: the pacman database `<repo>.db` (a tar of `desc`
// files) beside the packages, and detached OpenPGP `.sig`s.

#include <string>
#include <vector>

#include "rebuilder/base/result.h"
#include "rebuilder/distros/common/repository.h"

namespace kmr::arch {

// Reads the database `db` (the bytes of src.url). When src has trusted keys
// and `<db>.sig` exists, it must verify and *db_signed is set; Arch mirrors
// usually ship an unsigned db and signed packages, which the caller then
// checks with verify_package. Split packages of one pkgbase and version are
// one set.
Result<std::vector<distros::IndexedPackage>> read_db(const distros::RepositorySource& src, const std::string& db,
                                                     bool* db_signed);

// Fetches a listed package and its `.sig`: the package must have the sha256
// the db recorded and the signature must verify with src.trusted_keys[0].
Result<void> verify_package(const distros::RepositorySource& src, const distros::IndexedPackage& p);

}  // namespace kmr::arch
