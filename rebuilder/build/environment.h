#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "rebuilder/base/limits.h"
#include "rebuilder/base/result.h"

namespace kmr::build {

// The pinned build environment of one shipped package, derived from the
// package's own build description (Arch .BUILDINFO, Debian/Proxmox
// .buildinfo, SUSE RPM header DISTURL/BUILDTIME/BUILDHOST, Nix deriver).
// It is data: canonical JSON with a SHA-256 digest that goes into the
// attestation.
struct BuildEnvironment {
  std::string distro;        // arch | nixos | suse | proxmox | debian
  std::string description;   // ".BUILDINFO", ".buildinfo", "rpm-header", "narinfo"
  std::optional<std::int64_t> source_date_epoch;
  std::string build_path;    // builddir / Build-Path / rpm build root ("" = backend default)
  std::string build_user;    // "" = backend default
  std::string build_host;
  std::map<std::string, std::string> env;       // recorded environment variables
  std::vector<std::string> buildenv;            // Arch BUILDENV words
  std::vector<std::string> options;             // Arch OPTIONS words
  std::vector<std::string> installed;           // pinned toolchain packages, as recorded
  std::map<std::string, std::string> fields;    // the other recorded keys (pkgname, disturl, deriver...)

  // Canonical JSON: object keys sorted, no insignificant whitespace, UTF-8.
  nlohmann::json to_json() const;
  std::string canonical_json() const;
  // "sha256:<hex>" of canonical_json().
  std::string digest() const;
};

// Arch .BUILDINFO (format 1 or 2): "key = value" lines; buildenv, options,
// installed repeat. Requires format, pkgname, pkgver, builddate.
Result<BuildEnvironment> parse_arch_buildinfo(std::string_view text, const Limits& limits = {});

// Debian/Proxmox .buildinfo (deb822, optionally OpenPGP clearsigned; the
// signature is not checked here). Requires Source, Version.
Result<BuildEnvironment> parse_debian_buildinfo(std::string_view text, const std::string& distro = "debian",
                                                const Limits& limits = {});

// SUSE: values from the RPM header.
struct RpmBuildFacts {
  std::string name, version, release, arch;
  std::string disturl;      // tag 1123
  std::int64_t buildtime = 0;  // tag 1006
  std::string buildhost;    // tag 1007
  std::string sourcerpm;    // tag 1044
};
Result<BuildEnvironment> suse_environment(const RpmBuildFacts& facts);

// Parsed obs:// DISTURL: obs://<host>/<project>/<repository>/<srcmd5>-<package>[:<flavor>].
struct DistUrl {
  std::string host, project, repository, srcmd5, package, flavor;
};
Result<DistUrl> parse_disturl(std::string_view url);

// NixOS: narinfo "Key: value" text; the Deriver names the .drv.
Result<BuildEnvironment> parse_nix_narinfo(std::string_view text, const Limits& limits = {});

}  // namespace kmr::build
