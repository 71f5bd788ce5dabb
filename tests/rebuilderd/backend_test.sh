#!/usr/bin/env bash
# deploy/rebuilderd/rebuilder-kmr under a harness that does what
# rebuilderd-worker does (worker_harness.py): temp inputs/ and out/, one
# argument, byte comparison, SIGTERM-then-SIGKILL of the process group.
#   - Arch fixture pristine (kmr: identical): GOOD, every artifact byte-identical;
#   - Arch fixture timestamp variant (kmr: different): BAD;
#   - Proxmox fixture (.buildinfo input, .deb beside it): GOOD;
#   - the log carries kmr's verdict JSON and the module-root lines;
#   - a timeout kills the backend's whole process group: no kmr, bwrap or build
#     process is left, and the work folder is gone.
set -uo pipefail
R="${TEST_SRCDIR:-$PWD/..}/kmr"; [[ -f $R/tests/lib/require.sh ]] || R=$PWD
source "$R/tests/lib/require.sh"
export KMR="$R/rebuilder/cli/kmr"
BACKEND="$R/deploy/rebuilderd/rebuilder-kmr"
HARNESS="$R/tests/rebuilderd/worker_harness.py"
T=${TEST_TMPDIR:-$(mktemp -d)}
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
pass() { echo "ok: $*"; }

[[ $(id -u) == 0 ]] || kmr_skip "rebuilds need root (sandbox build user)"
FX=$("$R/tests/fixtures/repos/ensure-fixtures.sh" 2>"$T/fixtures.err"); rc=$?
case $rc in
  0) ;;
  3) kmr_skip "$(cat "$T/fixtures.err")" ;;
  *) cat "$T/fixtures.err"; echo "FAIL: fixture repositories could not be built"; exit 1 ;;
esac

field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

# harness NAME EXPECT INPUT [ARTIFACT...]: runs the backend, checks the job status.
harness() {
  local name=$1 want=$2 input=$3; shift 3
  local args=() a
  for a in "$@"; do args+=(--artifact "$a"); done
  python3 "$HARNESS" --backend "$BACKEND" --input "$input" "${args[@]}" --json "$T/$name.json" > "$T/$name.log" 2>&1
  local got; got=$(field "$T/$name.json" status 2>/dev/null)
  if [[ $got == "$want" ]]; then pass "$name: $got"; else fail "$name: job $got, want $want"; tail -30 "$T/$name.log"; fi
  grep -q '^module_root: ' "$T/$name.log" || fail "$name: no module_root line in the log"
  grep -q '"environment_digest"' "$T/$name.log" || fail "$name: no verdict JSON in the log"
}

# The PKGBUILD comes from the fixture's packaging sources (archlinux-repro
# clones the packaging git repository at the version tag).
arch=$FX/arch/pristine/os/x86_64
KMR_SOURCES=$FX/arch/pristine/sources/linux-kmrfix harness arch-pristine GOOD "$arch/linux-kmrfix-6.18.0-1-x86_64.pkg.tar.zst" \
  "$arch"/linux-kmrfix-6.18.0-1-x86_64.pkg.tar.zst "$arch"/linux-kmrfix-headers-6.18.0-1-x86_64.pkg.tar.zst
grep -q '^files: identical$' "$T/arch-pristine.log" || fail "arch-pristine: kmr did not say identical"

archt=$FX/arch/timestamp/os/x86_64
KMR_SOURCES=$FX/arch/timestamp/sources/linux-kmrfix harness arch-timestamp BAD "$archt/linux-kmrfix-6.18.0-1-x86_64.pkg.tar.zst" \
  "$archt"/linux-kmrfix-6.18.0-1-x86_64.pkg.tar.zst "$archt"/linux-kmrfix-headers-6.18.0-1-x86_64.pkg.tar.zst
grep -q '^files: different$' "$T/arch-timestamp.log" || fail "arch-timestamp: kmr did not say different"

pool=$FX/proxmox/pristine/pool/pve-no-subscription/p/proxmox-kernel-6.18
KMR_SOURCES=$pool harness proxmox-pristine GOOD "$pool/proxmox-kernel-6.18_6.18.0-1_amd64.buildinfo" \
  "$pool/proxmox-kernel-6.18.0-kmrfix_6.18.0-1_amd64.deb"

# Timeout: SIGTERM to the group after 4 s, SIGKILL 10 s later. A work root of its
# own, so another rebuild on the machine is not mistaken for a leftover.
krd=/var/tmp/kmr-rebuild-timeout-$$
mkdir -p "$krd"
KMR_REBUILD_DIR=$krd KMR_SOURCES=$FX/arch/pristine/sources/linux-kmrfix python3 "$HARNESS" --backend "$BACKEND" --timeout 4 --input "$arch/linux-kmrfix-6.18.0-1-x86_64.pkg.tar.zst" \
  --artifact "$arch/linux-kmrfix-6.18.0-1-x86_64.pkg.tar.zst" --json "$T/timeout.json" > "$T/timeout.log" 2>&1
[[ $(field "$T/timeout.json" timed_out) == True ]] || fail "timeout: the backend finished before the timeout"
[[ $(field "$T/timeout.json" status) == BAD ]] || fail "timeout: job not BAD"
work=$(field "$T/timeout.json" workdir)
sleep 2
if pgrep -af -- "$work|$krd/rebuilderd-[0-9]+" > "$T/left.txt"; then fail "timeout: processes left behind:"; cat "$T/left.txt"; else pass "timeout: nothing left behind"; fi
[[ -e $work ]] && fail "timeout: harness folder $work left behind"
ls -d "$krd"/rebuilderd-* 2>/dev/null && fail "timeout: kmr work folder left behind"
rm -rf "$krd"

echo "failures: $fails"
((fails == 0))
