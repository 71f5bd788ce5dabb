#pragma once

// Reads a distro kernel package of any supported format (detected by content)
// into a LayoutCollector, and summarises its metadata.

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "rebuilder/archive/narinfo.h"
#include "rebuilder/distro/kernel_layout.h"

namespace kmr::distro {

enum class PackageKind { kArch, kNar, kNarinfo, kRpm, kDeb, kDebBuildinfo };

struct InspectOptions {
  std::vector<archive::PublicKey> nix_keys;  // trusted narinfo signers
  std::string keyring;                       // OpenPGP keyring for <package>.sig
  // X.509 certificates trusted besides the image's own (--keyring with PEM
  // or DER certificates): module signers and Authenticode CAs.
  std::vector<ByteVector> trusted_certificates;
  bool full_image = false;                   // always search the image for a root
  // Only the kernel layout matters (rebuild verdicts): a plain tar without
  // .PKGINFO is read as format "tar" instead of being refused.
  bool layout_only = false;
  Limits limits;
};

struct PackageReport {
  std::string path;
  std::string format;  // arch, nixos, suse, proxmox, debian ("" for a .buildinfo)
  std::string name;
  std::string version;
  nlohmann::json build = nlohmann::json::object();
  // Checks that failed (exit 1), readable.
  std::vector<std::string> failures;
  bool has_kernel_content = false;
};

// Detects the format from the first bytes of the file.
Result<PackageKind> detect_package(const std::string& path);

// Streams the package into `collector`. Verification failures (digest,
// signature, NarHash) are returned in `failures`; errors only for unreadable
// or malformed input.
Result<PackageReport> read_package(const std::string& path, LayoutCollector& collector, const InspectOptions& options);

}  // namespace kmr::distro
