#!/usr/bin/env bash
# Installs the Debian 12 packages kmr needs to build, test and run its demo.
# As root: installs what is missing with apt-get. Otherwise: prints the exact
# apt-get line and exits 1.
set -euo pipefail

packages=(
  # build
  bazel-bootstrap g++ clang libclang-rt-14-dev clang-tidy
  libboost1.74-dev libssl-dev libarchive-dev libsqlite3-dev libspdlog-dev libfmt-dev
  nlohmann-json3-dev libzstd-dev liblzma-dev zlib1g-dev liblz4-dev libbz2-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  # runtime tools: compressors, sandbox, OpenPGP verification, ELF tools
  zstd xz-utils lz4 bzip2 gzip binutils bubblewrap sqv gpg gpgv openssl sqlite3 python3 curl
  # distro tools that build the fixture repositories and run rebuild backends
  makepkg pacman-package-manager libarchive-tools fakeroot nix-bin rpm createrepo-c
  dpkg-dev apt-utils make cpio gcc-multilib
  # comparisons, browser tests and benchmarks
  diffoscope chromium wrk nginx hyperfine time
  # diffoscope looks inside RPMs only with rpm's Python module (a Recommends)
  python3-rpm
  # Debian packaging helpers (dh) and pahole, used by the packaging and real-kernel tests
  debhelper dwarves
  # signed kernel images: sbsign/sbattach/sbverify (Authenticode tests)
  sbsigntool
  # the real-kernel fixture (tests/fixtures/realkernel): Debian's kernel source, kbuild's
  # build tools, the randstruct gcc plugin, and QEMU + busybox to boot it
  linux-source-6.1 flex bison bc libelf-dev kmod rsync gcc-12-plugin-dev qemu-system-x86 busybox-static
  # kmrd sync test: throwaway OpenPGP keys that sign Arch packages
  gpg-agent
  # rebuilderd API test: an independent check of the in-toto link's Ed25519 signature
  python3-cryptography
  # Debian/Proxmox build roots from the archive (rebuilder/distros/debian)
  mmdebstrap debian-archive-keyring
  # Arch build roots: Arch's packager keys (the default keyring the archive's .sig files verify with)
  archlinux-keyring
  # kmr-worker clones packaging git repositories (Arch PKGBUILDs) at their release tag
  git
  # member index test: the SUSE RPM's payload unpacked by rpm2cpio, independently of kmr
  rpm2cpio
  # the real kernel's hashes variant applies our CONFIG_MODULE_HASHES patches
  patch
  # the include graph drawing (tests/lint/include_graph.py)
  graphviz
)

# The real-kernel fixture's .buildinfo records this host's versions of its build
# closure, and a build root from Debian's archive can only pin versions the
# archive still has (deb.debian.org keeps the newest of each suite; a point
# release drops the previous one). As root, bring exactly that closure (the
# Essential set, build-essential and kbuild deb-pkg's Build-Depends, with
# their dependencies) to the archive's current versions; nothing else is
# upgraded. KMR_NO_CLOSURE_UPGRADE=1 skips it.
fixture_build_closure=(build-essential bc rsync kmod cpio bison flex libelf-dev libssl-dev openssl zstd)
upgrade_fixture_build_closure() {
  local roots names
  roots=$( { dpkg-query -W -f='${Package} ${Essential}\n' | awk '$2 == "yes" {print $1}'; printf '%s\n' "${fixture_build_closure[@]}"; } )
  # shellcheck disable=SC2086
  names=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces \
    --no-enhances $roots 2>/dev/null | grep -v '^[ <]' | sort -u)
  if [[ $(id -u) -ne 0 ]]; then
    # shellcheck disable=SC2086
    if apt-get -s install --only-upgrade $names 2>/dev/null | grep -q '^Inst '; then
      echo "note: the real-kernel fixture's build closure lags the archive; as root: apt-get install --only-upgrade <closure>" >&2
    fi
    return 0
  fi
  apt-get update -q >/dev/null 2>&1 || { echo "note: apt-get update failed; the build closure is not upgraded" >&2; return 0; }
  # shellcheck disable=SC2086
  if apt-get -s install --only-upgrade $names 2>/dev/null | grep -q '^Inst '; then
    echo "Upgrading the real-kernel fixture's build closure to the archive's versions" >&2
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --only-upgrade --no-install-recommends $names
  fi
}
[[ ${KMR_NO_CLOSURE_UPGRADE:-0} == 1 ]] || upgrade_fixture_build_closure

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# Node.js: any installed node + npm will do (the machine image may carry a
# newer one than Debian's, whose npm package would conflict with it).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  missing+=(nodejs npm)
fi

if ((${#missing[@]} == 0)); then
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "kmr needs these Debian packages; run as root:" >&2
  echo "  apt-get install -y ${missing[*]}" >&2
  exit 1
fi

echo "Installing ${#missing[@]} Debian package(s): ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q --no-install-recommends "${missing[@]}"; then
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
