#!/usr/bin/env bash
# rebuilder-kmr under the rebuilderd-worker harness on the REAL kernel packages
# (tests/fixtures/realkernel: Debian's linux-source-6.1 built by kbuild, packaged by
# deb-pkg and makepkg). Slow: two whole kernel rebuilds (KMR_EXTRA=1, ./run-tests.sh --extra).
# Asserted, per shape:
#   - module_content_root match, and the backend's exit status is kmr's rule;
#   - rebuilderd's own byte comparison is truthful: every artifact kmr does not name as
#     differing comes out byte-identical (GOOD); the kernel package, whose rebuilt modules
#     carry no signature (the build-time key was thrown away), is BAD.
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

if [[ ${KMR_EXTRA:-0} != 1 ]]; then
  echo "NOT SELECTED: $(kmr_test_name): two real-kernel rebuilds; run with KMR_EXTRA=1 (./run-tests.sh --extra)"
  exit 0
fi
[[ $(id -u) == 0 ]] || kmr_skip "needs root (kernel build user, sandbox)"
[[ -f ${KMR_LINUX_SOURCE:-/usr/src/linux-source-6.1.tar.xz} ]] || kmr_skip "linux-source-6.1 not installed"
out=${KMR_REALKERNEL_REPOS:-/var/tmp/kmr-realkernel-cache/repos}
"$R/tests/fixtures/realkernel/build-repos.sh" "$out" > "$T/repos.log" 2>&1 || { tail -30 "$T/repos.log"; fail "build-repos.sh"; exit 1; }

# check NAME: the harness summary against kmr's verdict in the backend's log.
check() {
  local name=$1
  python3 - "$T/$name.json" "$T/$name.log" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
log = open(sys.argv[2], errors="replace").read()
files = [l.split(": ", 1)[1] for l in log.splitlines() if l.startswith("files: ")]
assert files, "no files verdict in the log"
good = files[-1] in ("identical", "content-identical", "identical-modulo-signatures")
# The backend's exit status is kmr's rule (content root match is part of it).
assert (s["backend_exit"] == 0) == (good and "\nmodule_content_root: match\n" in log), \
    "backend exit %s with files %s" % (s["backend_exit"], files[-1])
assert "\nmodule_content_root: match\n" in log, "content root not match"
print("  kmr: files %s, backend exit %s" % (files[-1], s["backend_exit"]))
differing = [l.split("differs: ", 1)[1] for l in log.splitlines() if l.startswith("  differs: ")]
for a in s["artifacts"]:
    named = any(d == a["name"] or d.startswith(a["name"] + ":") for d in differing) or \
            (len(s["artifacts"]) == 1 and differing)
    want = "BAD" if named else "GOOD"
    assert a["status"] == want, "%s: harness %s, kmr %s" % (a["name"], a["status"], "names it" if named else "does not name it")
    print("  %s: %s (kmr %s)" % (a["name"], a["status"], "names differing members" if named else "identical"))
PY
}

pool=$out/debian/pool/main/l/linux-kmr
bi=$(ls "$pool"/*_amd64.buildinfo | head -1)
debs=(); while IFS= read -r f; do [[ -f $pool/$f ]] && debs+=("$pool/$f"); done < \
  <(awk '/^Checksums-Sha256:/{c=1; next} /^[^ ]/{c=0} c && NF==3 && $3 ~ /\.deb$/ {print $3}' "$bi")
args=(); for d in "${debs[@]}"; do args+=(--artifact "$d"); done
t=$SECONDS
KMR_SOURCES=$pool python3 "$HARNESS" --backend "$BACKEND" --timeout 7000 --input "$bi" "${args[@]}" --json "$T/debian.json" > "$T/debian.log" 2>&1
echo "debian: ${#debs[@]} artifacts, $((SECONDS - t)) s"
if check debian; then pass "debian: rebuilderd's byte comparison agrees with kmr"; else fail "debian"; tail -40 "$T/debian.log"; fi

arch=$out/arch/os/x86_64
pkgs=("$arch"/linux-kmr-[0-9]*.pkg.tar.zst "$arch"/linux-kmr-headers-*.pkg.tar.zst)
t=$SECONDS
KMR_SOURCES=$out/arch/sources/linux-kmr python3 "$HARNESS" --backend "$BACKEND" --timeout 7000 --input "${pkgs[0]}" \
  --artifact "${pkgs[0]}" --artifact "${pkgs[1]}" --json "$T/arch.json" > "$T/arch.log" 2>&1
echo "arch: 2 artifacts, $((SECONDS - t)) s"
if check arch; then pass "arch: rebuilderd's byte comparison agrees with kmr"; else fail "arch"; tail -40 "$T/arch.log"; fi

echo "failures: $fails"
((fails == 0))
