#!/usr/bin/env bash
# The main job: builds kmr and runs the demo (kmrd --demo once the daemon is
# built; until then the Merkle engine on the bundled conformance-style demo).
set -euo pipefail
cd "$(dirname "$0")"
deploy/install-deps.sh
bazel build //... 
if [[ -x bazel-bin/server/kmrd ]]; then
  exec bazel-bin/server/kmrd --demo "$@"
fi
exec bazel-bin/rebuilder/cli/kmr --help
