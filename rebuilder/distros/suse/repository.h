#pragma once

// SUSE's repository index: rpm-md (`repodata/repomd.xml`, its `.asc`, and the
// primary it names), as download.opensuse.org publishes binary and source
// repositories.

#include <chrono>
#include <string>
#include <vector>

#include "rebuilder/archive/rpmmd.h"
#include "rebuilder/base/result.h"
#include "rebuilder/distros/common/repository.h"

namespace kmr::suse {

// <base>repodata/repomd.xml (repomd.xml.asc verified with trusted_keys[0] when
// keys are given), then the primary it names, checked against repomd's
// checksum and open-checksum. `base` ends with '/'.
Result<std::vector<archive::RpmMdPackage>> read_primary(const std::vector<std::string>& trusted_keys,
                                                        const std::string& base, std::chrono::milliseconds timeout);

// src.url is the repository root (or its repodata/repomd.xml). Every binary
// package with a sha256 checksum; source packages are skipped. One set per
// source RPM and architecture.
Result<std::vector<distros::IndexedPackage>> read_repository(const distros::RepositorySource& src);

}  // namespace kmr::suse
