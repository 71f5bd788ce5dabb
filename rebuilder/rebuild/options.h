#pragma once

// What a caller asks of a rebuild (kmr rebuild's flags); the backends read it
// too, so it sits apart from the engine (rebuild.h).

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

namespace kmr::build {

struct RebuildOptions {
  std::string backend;        // arch | nixos | suse | proxmox | debian; "" = from the package type
  std::string sources;        // --sources: where to look for sources first
  bool keep = false;          // keep the work directory
  std::string work_root;      // default $KMR_REBUILD_DIR or /var/tmp/kmr-rebuild
  std::chrono::milliseconds timeout{std::chrono::hours(4)};
  std::uint64_t memory_bytes = 16ull << 30;
  // Debian/Proxmox toolchain: "host" (the host's /usr) or "archive" (a root
  // made by mmdebstrap from Debian's archive at the .buildinfo's exact
  // Installed-Build-Depends; rebuilder/distros/debian/README.md).
  std::string build_root = "host";
  // Debian/Proxmox: the package's apt repository, for a rebuild without
  // --sources (rebuilder/distros/debian/fetch.h): its Release URL
  // (.../dists/<suite>/InRelease), the keyring the Release must verify with,
  // and the .buildinfo URL template ("" = Debian's default). The .buildinfo
  // and the source package are fetched from it and verified.
  std::string repository;
  std::string repository_keyring;
  std::string buildinfo_template;
  std::function<void(const std::string&)> progress;  // one line per step
};

}  // namespace kmr::build
