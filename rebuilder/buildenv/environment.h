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
  // Recorded environment variables the build receives: only allow-listed
  // names with validated values (see build_env_allowed).
  std::map<std::string, std::string> env;
  // Recorded variables the build does not receive (name -> value as
  // recorded); in the JSON as "dropped_env" when not empty.
  std::map<std::string, std::string> dropped_env;
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

// ---- Turning recorded (untrusted) values into build configuration ----------
//
// The build description ships with the package, so every value in it is
// attacker-controlled. These are the only ways a value reaches a command
// line, an environment variable or a generated config file.

// True when a recorded environment variable may pass to the build:
// SOURCE_DATE_EPOCH (digits), DEB_BUILD_OPTIONS / DEB_BUILD_PROFILES (space
// separated tokens `name[=value]` of a safe charset), LANG / LANGUAGE / LC_*
// (locale names: [A-Za-z0-9_.@:-]). Everything else (PERL5OPT, PATH,
// LD_PRELOAD, CFLAGS, ...) is dropped.
bool build_env_allowed(std::string_view name, std::string_view value);

// Single-quoted POSIX shell word ('\'' for a quote). Safe for any bytes but
// NUL; callers refuse newlines with config_line_value.
std::string shell_quote(std::string_view s);

// A value for one line of a generated shell-sourced config file (makepkg.conf):
// refused when it holds a newline, CR or NUL, else shell_quote(value).
Result<std::string> config_line_value(std::string_view name, std::string_view value);

// A value for an rpm macro body (--define "name body"): refused when it holds
// a newline, CR, NUL, "$(", "${" or a backtick (the body may land in a shell
// scriptlet); '%' is doubled so rpm expands it to a literal '%' and never runs
// %(...) or expands another macro.
Result<std::string> rpm_macro_body(std::string_view name, std::string_view value);

// A build path from a build description that becomes a mount point inside
// the sandbox: absolute, normalized (no "", ".", ".." components), each
// component of [A-Za-z0-9._+-], at most 16 components and 255 bytes, and not
// a system location (/, /proc, /sys, /dev, /etc, /usr except /usr/src/...,
// /var except /var/tmp/..., /bin, /sbin, /lib*, /nix, /run, /boot, /root, /kmr, /pkgdest, /tmp itself).
Result<void> check_build_path(std::string_view what, std::string_view path);

// A user name from a build description: [a-z_][a-z0-9_-]{0,31}.
Result<void> check_user_name(std::string_view what, std::string_view name);

// Strict UTF-8 (no overlongs, surrogates or code points above U+10FFFF), the
// rule nlohmann::json applies when dumping: a recorded value must pass it.
bool is_valid_utf8(std::string_view s);

}  // namespace kmr::build
