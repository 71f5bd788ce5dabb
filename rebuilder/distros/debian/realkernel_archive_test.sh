#!/usr/bin/env bash
# kmr rebuild of the real kernel's Debian package (tests/fixtures/realkernel:
# kbuild deb-pkg of Linux 6.1.192) with no --sources and no host toolchain:
# - the package alone in a directory, its apt repository (build-repos.sh's,
#   InRelease signed with the fixture key) served over HTTPS by a local TLS
#   server with a test CA;
# - kmr rebuild --repository: the .dsc, its files and the .buildinfo fetched
#   from the repository and verified (signed InRelease, Sources hashes, the
#   .buildinfo lists the package), the build root made by mmdebstrap from
#   Debian's archive (deb.debian.org) at the .buildinfo's exact versions;
# - the verdict the manifest expects (files identical-modulo-signatures with
#   the certificate transplant, module_content_root match), checked again
#   independently (cmp of the image, every module minus its signature);
# - the root's dpkg database equals Installed-Build-Depends (dpkg-query and
#   diff), and inside the sandbox /usr is the root's, not the host's;
# - before that, on the same path: a .buildinfo the repository lacks, a
#   Release signed by another key, a tampered source file, and a pinned
#   version the archive does not have (environment-unavailable naming each
#   missing package with the URLs tried).
# Slow (a whole kernel build in the sandbox): KMR_EXTRA=1 or ./run-tests.sh --extra.
# Needs root, mmdebstrap and deb.debian.org.
set -uo pipefail
R="${TEST_SRCDIR:-$(cd "$(dirname "$0")/../../.." && pwd)/..}/kmr"
[[ -d $R ]] || R=$(cd "$(dirname "$0")/../../.." && pwd)
source "$R/tests/lib/require.sh"
KMR=${KMR_BIN:-$R/rebuilder/cli/kmr}
PROBE=${KMR_PROBE_BIN:-$R/rebuilder/distros/debian/sandbox_probe}
here=$R/tests/fixtures/realkernel
if [[ ${KMR_EXTRA:-0} != 1 ]]; then
  echo "NOT SELECTED: $(kmr_test_name): slow real-kernel rebuild in an archive build root; run with KMR_EXTRA=1 (./run-tests.sh --extra)"
  exit 0
fi
[[ $(id -u) == 0 ]] || kmr_skip "needs root (kernel build user, build roots)"
[[ -f ${KMR_LINUX_SOURCE:-/usr/src/linux-source-6.1.tar.xz} ]] || kmr_skip "linux-source-6.1 not installed"
for t in mmdebstrap gpg openssl python3 curl dpkg-deb dpkg-query zstd; do kmr_have "$t" || kmr_skip "$t not installed"; done
ARCHIVE=${KMR_DEBIAN_MIRROR:-http://deb.debian.org/debian}
curl -fsS -o /dev/null --max-time 30 "$ARCHIVE/dists/bookworm/InRelease" || kmr_skip "Debian archive $ARCHIVE unreachable"

tmp=$(mktemp -d "${TEST_TMPDIR:-/tmp}/kmr-rk-archive.XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -rf "$tmp"; }
trap cleanup EXIT
fail=0
check() { if eval "$2"; then echo "ok: $1"; else echo "FAIL: $1"; fail=1; fi; }
die() { echo "FAIL: $*"; exit 1; }
export KMR_BUILDROOT_CACHE=${KMR_BUILDROOT_CACHE:-/var/tmp/kmr-buildroots} KMR_PROGRESS=1

out=${KMR_REALKERNEL_REPOS:-${KMR_REALKERNEL_CACHE:-/var/tmp/kmr-realkernel-cache}/repos}
t0=$SECONDS
"$here/build-repos.sh" "$out" || die "build-repos.sh"
echo "repositories ready in $((SECONDS - t0)) s: $out"
repo=$out/debian
pool=$repo/pool/main/l/linux-kmr
deb=$(ls "$pool"/linux-image-*_amd64.deb)
bi=$(ls "$pool"/*.buildinfo)
mkdir -p "$tmp/pkg" && cp "$deb" "$tmp/pkg/" || die "copying the package"
pkg=$tmp/pkg/$(basename "$deb")
check "the package is alone (no .dsc or .buildinfo beside it)" '[[ $(ls "$tmp/pkg" | wc -l) == 1 ]]'
check "the .buildinfo pins openssl and zstd (deb-pkg's Build-Depends)" \
  'grep -q "^ openssl (= " "$bi" && grep -q "^ zstd (= " "$bi"'

# ---- the mirror: the repository over HTTPS, a test CA -----------------------------------------
mirror=$tmp/mirror
mkdir -p "$mirror"
ln -s "$repo" "$mirror/debian"
# A tampered copy (hard links, one file replaced) and a .buildinfo with a bogus pinned version.
mkdir -p "$mirror/tampered" && { cp -al "$repo/." "$mirror/tampered/" 2>/dev/null || cp -a "$repo/." "$mirror/tampered/"; } || die "tampered copy"
tp=$mirror/tampered/pool/main/l/linux-kmr
diffgz=$(cd "$tp" && ls *.diff.gz)
zcat "$tp/$diffgz" > "$tmp/diff" && echo "+tampered" >> "$tmp/diff" && rm "$tp/$diffgz" && gzip -n < "$tmp/diff" > "$tp/$diffgz" ||
  die "tampering"
mkdir -p "$mirror/bogus"
sed 's/^ make (= [^)]*)/ make (= 9.9-9)/' "$bi" > "$mirror/bogus/$(basename "$bi")"
check "the bogus .buildinfo pins make 9.9-9" 'grep -q "^ make (= 9.9-9)" "$mirror/bogus/$(basename "$bi")"'
source "$R/tests/lib/https_mirror.sh"
kmr_https_mirror "$mirror" "$tmp" || die "the HTTPS mirror did not start"
pids+=("$KMR_MIRROR_PID")
M=$KMR_MIRROR_URL
export SSL_CERT_FILE=$KMR_MIRROR_CA   # kmr's HTTPS client trusts the test CA (the archive itself is plain http)
check "the mirror serves the InRelease over HTTPS" \
  '[[ $(curl -sS --cacert "$KMR_MIRROR_CA" -o /dev/null -w "%{http_code}" "$M/debian/dists/bookworm/InRelease") == 200 ]]'
KEY=$repo/archive-key.gpg
POOL_T='{source_c}/{source}/{source}_{version}_{arch}.buildinfo'

# kmr_rebuild NAME ARGS...: kmr rebuild --json --build-root archive with no --sources; JSON in $tmp/NAME.json.
kmr_rebuild() {
  local name=$1; shift
  local t=$SECONDS
  nice -n 5 "$KMR" rebuild --json --build-root archive --work-dir "$tmp/work-$name" "$@" "$pkg" \
    > "$tmp/$name.json" 2> "$tmp/$name.err"
  echo "$name: exit $?, $((SECONDS - t)) s"
}
status_is() { python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if j["status"] == sys.argv[2] else 1)' "$tmp/$1.json" "$2"; }

# ---- 1. what the repository lacks or gets wrong --------------------------------------------------
kmr_rebuild nobuildinfo --repository "$M/debian/dists/bookworm/InRelease" --repository-key "$KEY" \
  --buildinfo-url "$M/nowhere/$POOL_T"
check "a .buildinfo the repository lacks: environment-unavailable" 'status_is nobuildinfo environment-unavailable'
check "... naming the URL tried" \
  'grep -q "$M/nowhere/l/linux-kmr/linux-kmr_6.1.192-1kmr_amd64.buildinfo" "$tmp/nobuildinfo.json"'

# A short GNUPGHOME: gpg-agent's socket path below Bazel's test tmp would be too long.
gpg_home=$(mktemp -d /tmp/kmr-gpg.XXXXXX) && chmod 700 "$gpg_home"
GNUPGHOME=$gpg_home gpg --batch --quiet --pinentry-mode loopback --passphrase '' \
  --quick-gen-key "another key <other@kmr.invalid>" ed25519 sign never 2>/dev/null &&
  GNUPGHOME=$gpg_home gpg --batch --export > "$tmp/other-key.gpg"
GNUPGHOME=$gpg_home gpgconf --kill gpg-agent 2>/dev/null
rm -rf "$gpg_home"
kmr_rebuild wrongkey --repository "$M/debian/dists/bookworm/InRelease" --repository-key "$tmp/other-key.gpg" \
  --buildinfo-url "$M/debian/pool/main/$POOL_T"
check "a Release signed by another key: error, nothing built" \
  'status_is wrongkey error && grep -q "signature does not verify" "$tmp/wrongkey.json"'

kmr_rebuild tampered --repository "$M/tampered/dists/bookworm/InRelease" --repository-key "$KEY" \
  --buildinfo-url "$M/tampered/pool/main/$POOL_T"
check "a tampered source file: error naming its sha256 mismatch" \
  'status_is tampered error && grep -q "$diffgz" "$tmp/tampered.json" && grep -q "sha256 mismatch" "$tmp/tampered.json"'

kmr_rebuild bogus --repository "$M/debian/dists/bookworm/InRelease" --repository-key "$KEY" \
  --buildinfo-url "$M/bogus/{source}_{version}_{arch}.buildinfo"
python3 - "$tmp/bogus.json" "$ARCHIVE" <<'PY' || fail=1
import json, sys
j = json.load(open(sys.argv[1])); archive = sys.argv[2]
assert j["status"] == "environment-unavailable", (j["status"], j.get("reason"))
hit = [m for m in j["missing"] if m.startswith("make=9.9-9 ")]
assert hit, j["missing"]
for suite in ("bookworm", "bookworm-updates"):
    assert f"{archive}/dists/{suite}/main/binary-amd64/Packages.xz" in hit[0], hit[0]
print("ok: a pinned version the archive lacks, no --sources: environment-unavailable naming", hit[0][:200])
PY

# ---- 2. the rebuild ---------------------------------------------------------------------------
t=$SECONDS
nice -n 5 "$KMR" rebuild --json --keep --build-root archive --work-dir "$tmp/work" \
  --repository "$M/debian/dists/bookworm/InRelease" --repository-key "$KEY" \
  --buildinfo-url "$M/debian/pool/main/$POOL_T" "$pkg" > "$tmp/rebuild.json" 2> "$tmp/rebuild.err"
rc=$?
echo "kmr rebuild, no --sources, archive build root: exit $rc, wall $((SECONDS - t)) s"
grep -E "fetching|build root|building" "$tmp/rebuild.err"
if ! status_is rebuild verdict; then
  python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); j.pop("environment", None); print(json.dumps(j, indent=1)[:6000])' \
    "$tmp/rebuild.json"
  tail -40 "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["log"])' "$tmp/rebuild.json")" 2>/dev/null
  die "the rebuild reached no verdict"
fi
python3 - "$tmp/rebuild.json" "$out/manifest.json" "$bi" <<'PY' || fail=1
import hashlib, json, sys
j, m = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
s = {x["set"]: x for x in m["sets"]}["debian/pristine"]
n = s["modules"]["count"]
assert j["exit_code"] == 0, (j["exit_code"], j["reason"])
assert j["files"] == s["expected"]["files"], (j["files"], s["expected"])
assert j["module_content_root"] == s["expected"]["module_content_root"], j["module_content_root"]
assert j["shipped_content_root"] == s["module_content_root"]["root"], "content root differs from the Python Merkle tree's"
assert not [d for d in j["differing"] if d.startswith("boot/vmlinuz-")], j["differing"]
assert len([d for d in j["differing"] if d.endswith(".ko.zst")]) == n, j["differing"]
sig = j["signatures"]
assert sig["ok"] and sig["verified"] == n, sig
t = j["kernel_rebuild"]["transplant"]
assert t is not None, j["kernel_rebuild"]
f = j["environment"]["fields"]
assert f["buildinfo_sha256"] == hashlib.sha256(open(sys.argv[3], "rb").read()).hexdigest(), "not the repository's .buildinfo"
print(f"ok: verdict as the manifest expects: files {j['files']}, content root {j['module_content_root']}, "
      f"{sig['verified']}/{sig['signed']} signatures, transplant {t['certificate_sha256'][:16]}; "
      f"build {j['build_duration_ms'] // 1000} s of {j['duration_ms'] // 1000} s")
PY
for f in InRelease Sources "$(basename "$bi")" .dsc .orig.tar.gz .diff.gz; do
  check "fetched over HTTPS: $f" 'grep -q "^GET /debian/.*$f" "$tmp/mirror.log"'
done
check "nothing beside the package was read (it is still alone)" '[[ $(ls "$tmp/pkg" | wc -l) == 1 ]]'

# Independent of kmr: the image bit-identical, every module the shipped one minus its signature.
rebuilt=$(ls "$tmp"/work/*/kmr-collected/linux-image-*.deb 2>/dev/null | head -1)
[[ -f $rebuilt ]] || die "no rebuilt linux-image package in $tmp/work"
mkdir -p "$tmp/x/shipped" "$tmp/x/rebuilt"
dpkg-deb -x "$deb" "$tmp/x/shipped" && dpkg-deb -x "$rebuilt" "$tmp/x/rebuilt" || die "dpkg-deb -x"
img=$(cd "$tmp/x/shipped" && ls boot/vmlinuz-*)
check "cmp: $img bit-identical" 'cmp "$tmp/x/shipped/$img" "$tmp/x/rebuilt/$img"'
python3 - "$here/check-kernel.py" "$tmp/x/shipped/lib/modules" "$tmp/x/rebuilt/lib/modules" <<'PY' || fail=1
import importlib.util, os, sys
spec = importlib.util.spec_from_file_location("check_kernel", sys.argv[1])
ck = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ck)
shipped_dir, rebuilt_dir = sys.argv[2:4]
names = sorted(os.path.relpath(os.path.join(d, f), shipped_dir)
               for d, _, fs in os.walk(shipped_dir) for f in fs if f.endswith(".ko.zst"))
assert names, "no modules"
for name in names:
    content, _, sig = ck.split_trailer(ck.read_module(os.path.join(shipped_dir, name)))
    assert sig, name
    assert ck.read_module(os.path.join(rebuilt_dir, name)) == content, f"{name}: rebuilt != shipped minus its signature"
print(f"ok: {len(names)} rebuilt modules equal the shipped ones minus their signatures")
PY

# ---- 3. the root: the pinned set exactly, and no host /usr in the sandbox -----------------------
ROOT=$(sed -n 's/^.*build root \(\/[^ ]*\) (.*$/\1/p' "$tmp/rebuild.err" | tail -1)
check "build root path reported" '[[ -n $ROOT && -d $ROOT/usr ]]'
if [[ -n $ROOT && -d $ROOT/usr ]]; then
  dpkg-query --admindir="$ROOT/var/lib/dpkg" -W -f '${Package} ${Version}\n' | sort > "$tmp/root.set"
  grep -oP '^ \S+ \(= [^)]+\)' "$bi" | sed -E 's/^ (\S+) \(= ([^)]+)\)/\1 \2/' | sort > "$tmp/pinned.set"
  check "the root's dpkg database equals Installed-Build-Depends ($(wc -l < "$tmp/pinned.set") packages)" \
    'diff "$tmp/pinned.set" "$tmp/root.set"'
  mkdir -p "$tmp/probe"
  "$PROBE" "$ROOT" "$tmp/probe" /bin/sh -c \
    'sha256sum /usr/bin/openssl /usr/bin/gcc-12 /usr/bin/zstd; ls /usr/bin/mmdebstrap /usr/bin/bazel /usr/bin/python3 2>&1; true' \
    > "$tmp/probe.out" 2>&1
  cat "$tmp/probe.out"
  for f in openssl gcc-12 zstd; do
    check "inside the sandbox /usr/bin/$f is the root's" \
      'grep -q "$(sha256sum < "$ROOT/usr/bin/$f" | cut -d" " -f1)  /usr/bin/$f" "$tmp/probe.out"'
  done
  check "host-only /usr/bin/mmdebstrap absent inside" 'grep -q "/usr/bin/mmdebstrap.*No such file" "$tmp/probe.out"'
  check "host-only /usr/bin/python3 absent inside" 'grep -q "/usr/bin/python3.*No such file" "$tmp/probe.out"'
  if [[ -e /usr/bin/bazel ]]; then check "host-only /usr/bin/bazel absent inside" 'grep -q "/usr/bin/bazel.*No such file" "$tmp/probe.out"'; fi
fi
[[ $fail == 0 ]] && echo "PASS" || echo "FAILED"
exit $fail
