#!/usr/bin/env bash
# Browser tests of the kmr web UI against a real `kmrd --demo`:
#   1. installs playwright-core from package-lock.json (npm ci; uses the npm
#      cache when it can, the npm registry otherwise),
#   2. builds kmrd and kmr with Bazel,
#   3. starts `kmrd --demo` on a free loopback port with a fresh state dir,
#   4. runs test.mjs in headless Debian Chromium (/usr/bin/chromium), which
#      waits until every artifact has a verdict, then drives the UI,
#   5. stops kmrd. Exit status: 0 all passed, 1 a test failed, 2 setup error.
# Screenshots, downloads and kmrd's log go to $KMR_TEST_LOGS/browser/ (or
# tests/browser/out/).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
out=${KMR_TEST_LOGS:+$KMR_TEST_LOGS/browser}
out=${out:-$here/out}
mkdir -p "$out"
rm -f "$out"/*.png "$out"/*.intoto.json

die() { echo "browser tests: $*" >&2; exit 2; }

command -v node >/dev/null || die "node is not installed (deploy/install-deps.sh)"
[[ -x ${KMR_CHROMIUM:-/usr/bin/chromium} ]] || die "chromium is not installed (deploy/install-deps.sh)"

# 1. playwright-core, exactly as locked
cd "$here"
npm ci --prefer-offline --no-audit --no-fund --loglevel=error || die "npm ci failed"

# 2. binaries
cd "$top"
if [[ -z ${KMR_KMRD:-} || -z ${KMR_BIN:-} ]]; then
  # (kmrd --demo spawns the kmr-worker found next to it)
  bazel build //server:kmrd //server:kmr-worker //rebuilder/cli:kmr >"$out/bazel-build.log" 2>&1 ||
    { tail -30 "$out/bazel-build.log"; die "bazel build failed"; }
  bin=$(bazel info bazel-bin 2>/dev/null) || die "bazel info failed"
  KMR_KMRD=${KMR_KMRD:-$bin/server/kmrd}
  KMR_BIN=${KMR_BIN:-$bin/rebuilder/cli/kmr}
fi
[[ -x $KMR_KMRD ]] || die "no kmrd binary at $KMR_KMRD"
[[ -x $(dirname "$KMR_KMRD")/kmr-worker ]] || die "no kmr-worker next to $KMR_KMRD (bazel build //server:kmr-worker)"
[[ -x $KMR_BIN ]] || die "no kmr binary at $KMR_BIN"

# 3. kmrd --demo on a free port
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# KMR_STATE reuses a state dir (its fixtures are built once); default: a fresh one
if [[ -n ${KMR_STATE:-} ]]; then state=$KMR_STATE; KMR_KEEP_STATE=1; mkdir -p "$state"
else state=$(mktemp -d "${TMPDIR:-/tmp}/kmr-browser-state.XXXXXX"); fi
# The fixture repositories from the shared content-hashed cache that the
# Bazel tests use (built here, or waited for, under its lock).
fixtures_cache=$("$top/tests/fixtures/repos/ensure-fixtures.sh" 2>"$out/fixtures.err") ||
  { cat "$out/fixtures.err" >&2; die "fixture repositories could not be built"; }
if [[ ! -e $state/fixtures ]]; then
  ln -s "$fixtures_cache" "$state/fixtures"
fi
KMR_DEMO_REALKERNEL=0 "$KMR_KMRD" --demo --listen "127.0.0.1:$port" --state "$state" ${KMR_WEB:+--web "$KMR_WEB"} >"$out/kmrd.log" 2>&1 &
kmrd_pid=$!
cleanup() {
  if kill -0 "$kmrd_pid" 2>/dev/null; then
    kill -TERM "$kmrd_pid" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$kmrd_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$kmrd_pid" 2>/dev/null
  fi
  wait "$kmrd_pid" 2>/dev/null
  [[ -n ${KMR_KEEP_STATE:-} ]] || rm -rf "$state"
}
trap cleanup EXIT
trap 'exit 2' INT TERM

url="http://127.0.0.1:$port"
for _ in $(seq 1 300); do
  curl -fsS "$url/healthz" >/dev/null 2>&1 && break
  kill -0 "$kmrd_pid" 2>/dev/null || { tail -30 "$out/kmrd.log"; die "kmrd exited early"; }
  sleep 0.2
done
curl -fsS "$url/healthz" >/dev/null 2>&1 || { tail -30 "$out/kmrd.log"; die "kmrd did not answer on $url"; }

# The fixtures' manifest (expected verdicts) that the demo imported.
manifest=${KMR_MANIFEST:-}
# (a fresh state builds the fixture repositories first: many minutes on 2 cores)
for _ in $(seq 1 "${KMR_FIXTURE_WAIT_SECONDS:-3000}"); do
  [[ -n $manifest && -f $manifest ]] && break
  manifest=$(find -L "$state" -name manifest.json -print -quit 2>/dev/null)
  [[ -n $manifest ]] && break
  kill -0 "$kmrd_pid" 2>/dev/null || { tail -30 "$out/kmrd.log"; die "kmrd exited early"; }
  sleep 1
done
[[ -n $manifest && -f $manifest ]] || die "no manifest.json under $state (set KMR_MANIFEST)"
cp "$manifest" "$out/manifest.json"

# 4. the tests
cd "$here"
admin_token=
[[ -f $state/admin-token ]] && admin_token=$(cat "$state/admin-token")
KMR_URL=$url KMR_MANIFEST=$manifest KMR_BIN=$KMR_BIN KMR_OUT=$out KMR_ADMIN_TOKEN=$admin_token node test.mjs
status=$?
if [[ $status -ne 0 ]]; then
  echo "--- last lines of kmrd.log ---"
  tail -20 "$out/kmrd.log"
fi
exit $status
