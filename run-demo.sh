#!/usr/bin/env bash
# The main job: installs what is missing, builds kmr, and runs `kmrd --demo`:
# builds the four fixture distro repositories (Arch, NixOS, SUSE, Proxmox)
# with the distros' real tools, syncs them, rebuilds and verifies every
# kernel package in a sandbox, attests the verdicts and serves the REST API
# and web UI on http://127.0.0.1:8080 (extra arguments go to kmrd).
set -euo pipefail
cd "$(dirname "$0")"
# Root is needed (packages, build users, namespaces): as another user, run
# again through sudo.
if [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null; then
  exec sudo -E "$0" "$@"
fi
deploy/install-deps.sh
bazel build //server:kmrd //server:kmr-worker //rebuilder/cli:kmr
bin=$(bazel info bazel-bin 2>/dev/null)
export PATH="$bin/rebuilder/cli:$bin/server:$PATH"
export KMR_SOURCE_DIR="$PWD"
exec "$bin/server/kmrd" --demo --state "${KMR_DEMO_STATE:-$PWD/kmr-demo-state}" "$@"
