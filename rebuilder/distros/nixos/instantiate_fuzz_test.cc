// Bytes kmr reads from a nixpkgs tarball and a job before nix-instantiate
// runs: the tarball unpacked (into a fresh directory, removed after; every
// file made must lie inside it, no link may point out), an attribute path,
// a .drv name mapped to an attribute. The first byte picks which.
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "rebuilder/base/file.h"
#include "rebuilder/distros/nixos/instantiate.h"

namespace fs = std::filesystem;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0: {
      static const std::string base = [] {
        auto d = fs::temp_directory_path() / ("kmr-unpack-fuzz-" + std::to_string(::getpid()));
        fs::create_directories(d);
        static const std::string dir = d.string();
        std::atexit([] {
          std::error_code e;
          fs::remove_all(dir, e);
        });
        return d.string();
      }();
      const std::string tar = base + "/in.tar.gz", out = base + "/out";
      std::error_code ec;
      fs::remove_all(out, ec);
      if (!kmr::write_file_atomic(tar, kmr::Bytes(data + 1, size - 1))) return 0;
      kmr::nixos::UnpackLimits l;
      l.max_members = 2000;
      l.max_total_bytes = 64 << 20;
      (void)kmr::nixos::unpack_tree(tar, out, l);
      // Whatever was made (even on error) is inside `out`; links stay inside.
      for (auto it = fs::recursive_directory_iterator(out, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (it->is_symlink(ec)) {
          const auto target = fs::read_symlink(it->path(), ec);
          if (target.is_absolute()) __builtin_trap();
          const auto resolved = (it->path().parent_path() / target).lexically_normal().string();
          if (resolved.rfind(out, 0) != 0) __builtin_trap();
        }
      }
      fs::remove_all(out, ec);
      break;
    }
    case 1: {
      auto a = kmr::nixos::parse_attribute_path(text);
      if (a && (a->empty() || a->size() > 256 || a->find_first_of(" /;$\"\n") != std::string::npos)) __builtin_trap();
      break;
    }
    case 2: {
      auto a = kmr::nixos::attribute_for_deriver(text);
      if (a && !kmr::nixos::parse_attribute_path(*a)) __builtin_trap();
      break;
    }
  }
  return 0;
}
