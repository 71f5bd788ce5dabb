#!/usr/bin/env bash
# Arch build roots from a signed archive (rebuilder/distros/arch/buildroot.h),
# against a local HTTPS stand-in of archive.archlinux.org: packages made by
# the real makepkg from a Debian root and signed with a test key
# (tests/fixtures/archmirror/build-mirror.sh; NOT Arch's packages).
#  1. a root for the mirror's whole set: its pacman database (pacman -Q and
#     -Qi, read here) equals the set; in the sandbox the root's files are seen
#     and the host-only /usr/bin/bazel and /usr/bin/mmdebstrap are absent;
#  2. the fixture package kmr-hello built by makepkg in that root (its
#     .BUILDINFO's installed list is the set), then `kmr rebuild --build-root
#     archive`: reproducible, and the build's own probe (in the package) shows
#     no host /usr;
#  3. one .sig replaced by another key's signature: error naming the file;
#  4. one package missing from the archive: environment-unavailable naming
#     the package and the URL tried.
#  KMR_LIVE=1: one real package from archive.archlinux.org with Arch's keys
#  (archlinux-keyring); without the network that part is "not run".
set -uo pipefail
R="${TEST_SRCDIR:-$PWD}/${TEST_WORKSPACE:-kmr}"
source "$R/tests/lib/require.sh"
source "$R/tests/lib/https_mirror.sh"
KMR="$R/rebuilder/cli/kmr"
TOOL="$R/rebuilder/distros/arch/buildroot_tool"
FIXTURE="$R/tests/fixtures/archmirror"
T=$(mktemp -d "${TEST_TMPDIR:-/tmp}/arch.XXXXXX")
MIRROR_PID=
cleanup() { [[ -n $MIRROR_PID ]] && kill "$MIRROR_PID" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
fail=0
check() { # description command...
  if eval "$2"; then echo "ok: $1"; else echo "FAIL: $1"; fail=1; fi
}

if [[ ${KMR_SLOW:-0} != 1 ]]; then
  echo "NOT SELECTED: $(kmr_test_name): the stand-in archive takes minutes to build cold; run with KMR_SLOW=1 (./run-tests.sh --slow)"
  exit 0
fi
[[ $(id -u) == 0 ]] || kmr_skip "pacman -U into a root and the fixture build need root here"
for t in pacman makepkg mmdebstrap bwrap bsdtar gpg openssl python3; do kmr_have "$t" || kmr_skip "$t is not installed"; done
kmr_have sqv || kmr_have gpgv || kmr_skip "neither sqv nor gpgv is installed"

# ---- live: archive.archlinux.org with Arch's own keys -------------------------
if [[ ${KMR_LIVE:-0} == 1 ]]; then
  if ! curl -sfI --max-time 15 -o /dev/null https://archive.archlinux.org/packages/; then
    kmr_skip_part "live: archive.archlinux.org is not reachable: the live part was NOT run"
  elif [[ ! -f /usr/share/keyrings/archlinux.gpg ]]; then
    kmr_skip_part "live: archlinux-keyring is not installed: the live part was NOT run"
  else
    # A package without dependencies, so pacman can install it alone.
    live_set=${KMR_LIVE_ARCH_INSTALLED:-iana-etc-20231117-1-any}
    out=$(env -u KMR_ARCH_ARCHIVE -u KMR_ARCH_KEYRING KMR_BUILDROOT_CACHE="$T/live-cache" "$TOOL" root $live_set 2>&1)
    echo "$out"
    check "live: $live_set fetched, verified with archlinux-keyring, installed" 'grep -q "^path " <<< "$out"'
  fi
fi

# ---- the stand-in mirror (cached by content hash) ----------------------------
MCACHE=${KMR_ARCH_MIRROR_CACHE:-/var/tmp/kmr-fixtures/archmirror}
start=$(date +%s)
"$FIXTURE/build-mirror.sh" "$MCACHE" || kmr_skip "the stand-in archive could not be built (deb.debian.org reachable?)"
echo "stand-in archive ready: $(( $(date +%s) - start )) s"
SERVE=$T/serve
mkdir -p "$SERVE/tls"
ln -s "$MCACHE/mirror" "$SERVE/good"
# tampered: kmr-standin-base's .sig made by another key; missing: no kmr-standin-pacman
for v in tampered missing; do cp -al "$MCACHE/mirror" "$SERVE/$v"; done
BASE=kmr-standin-base-1.0-1-x86_64.pkg.tar.zst
rm "$SERVE/tampered/packages/k/kmr-standin-base/$BASE.sig"
cp "$MCACHE/other.sig" "$SERVE/tampered/packages/k/kmr-standin-base/$BASE.sig"
rm -r "$SERVE/missing/packages/k/kmr-standin-pacman"
kmr_https_mirror "$SERVE" "$SERVE/tls" || kmr_skip "the local HTTPS mirror did not start"
MIRROR_PID=$KMR_MIRROR_PID
export SSL_CERT_FILE=$KMR_MIRROR_CA
export KMR_ARCH_KEYRING=$MCACHE/keyring.gpg
export KMR_ARCH_ARCHIVE="$KMR_MIRROR_URL/good/packages/{c}/{name}/{file}"
export KMR_BUILDROOT_CACHE=${KMR_BUILDROOT_CACHE:-/var/tmp/kmr-buildroots}
mapfile -t SET < "$MCACHE/installed"

# ---- 1. the root --------------------------------------------------------------
start=$(date +%s%N)
"$TOOL" root "${SET[@]}" > "$T/root.out" 2> "$T/root.err" || { cat "$T/root.out" "$T/root.err"; kmr_skip "no build root from the stand-in archive"; }
echo "build root: $(( ($(date +%s%N) - start) / 1000000 )) ms ($(grep '^cached' "$T/root.out"))"
ROOT=$(sed -n 's/^path //p' "$T/root.out")
check "root made" '[[ -d $ROOT/usr/bin ]]'
pacman --root "$ROOT" --dbpath "$ROOT/var/lib/pacman" -Q | tr ' ' - | sort > "$T/have"
pacman --root "$ROOT" --dbpath "$ROOT/var/lib/pacman" -Qi | awk -F' *: ' '/^Architecture/ {print $2}' | sort -u > "$T/arches"
sed 's/-[^-]*$//' "$MCACHE/installed" | sort > "$T/want"
check "pacman -Q --root lists exactly the set" 'diff "$T/want" "$T/have"'
check "every package is x86_64" '[[ $(cat "$T/arches") == x86_64 ]]'
check "no hooks, no scriptlet leftovers" '[[ ! -e $ROOT/usr/share/libalpm/hooks ]] || [[ -z $(ls -A "$ROOT/usr/share/libalpm/hooks") ]]'
"$TOOL" run "$ROOT" "$T/probe" /build -- /bin/sh -c \
  'for f in /usr/bin/bazel /usr/bin/mmdebstrap /usr/share/kmr-standin/kmr-standin-devel.list; do
     if [ -e $f ]; then echo "present $f"; else echo "absent $f"; fi; done; sha256sum /usr/bin/makepkg; pacman -Q' > "$T/probe.out" 2>&1
cat "$T/probe.out"
check "sandbox: host-only /usr/bin/bazel absent" 'grep -qx "absent /usr/bin/bazel" "$T/probe.out"'
check "sandbox: host-only /usr/bin/mmdebstrap absent" 'grep -qx "absent /usr/bin/mmdebstrap" "$T/probe.out"'
check "sandbox: the root's own files present" 'grep -qx "present /usr/share/kmr-standin/kmr-standin-devel.list" "$T/probe.out"'
check "sandbox: makepkg is the root's file" 'grep -q "^$(sha256sum < "$ROOT/usr/bin/makepkg" | cut -d" " -f1) " "$T/probe.out"'
check "sandbox: pacman -Q reads the root's database" '[[ $(grep -c "^kmr-standin-" "$T/probe.out") == 4 ]]'
again=$("$TOOL" root "${SET[@]}" 2>&1)
check "second request is a cache hit" 'grep -qx "cached 1" <<< "$again"'

# ---- 2. the fixture package, built in the root, rebuilt by kmr ----------------
B=$T/hello
mkdir -p "$B/build" "$B/builddir" "$B/pkgdest" "$B/conf"
cp "$FIXTURE/hello/PKGBUILD" "$FIXTURE/hello/hello.c" "$B/build/"
# The packaging sources kmr rebuild gets (plain files: runfiles are symlinks).
mkdir -p "$T/sources"
cp -L "$FIXTURE/hello/PKGBUILD" "$FIXTURE/hello/hello.c" "$T/sources/"
cat > "$B/conf/makepkg.conf" <<'CONF'
source /etc/makepkg.conf
CARCH='x86_64'
PKGEXT='.pkg.tar.zst'
COMPRESSZST=(zstd -c -T0 --ultra -20 -)
BUILDDIR='/build'
PKGDEST=/pkgdest
SRCDEST='/startdir'
PACKAGER='kmr fixtures <fixtures@kmr.invalid>'
BUILDENV=(!distcc color !ccache check !sign)
OPTIONS=(strip docs !libtool !staticlibs emptydirs zipman purge !debug !lto)
CONF
chmod -R a+rwX "$B"
start=$(date +%s)
"$TOOL" run "$ROOT" "$B" /startdir --bind "$B/builddir:/build:rw" --bind "$B/pkgdest:/pkgdest:rw" --bind "$B/conf:/kmr" \
  --env SOURCE_DATE_EPOCH=1767225600 -- makepkg --config /kmr/makepkg.conf --nodeps --force --noconfirm --nocolor --noprogressbar \
  > "$B/makepkg.log" 2>&1 || { tail -30 "$B/makepkg.log"; echo "FAIL: makepkg in the root"; exit 1; }
echo "fixture build in the root: $(( $(date +%s) - start )) s"
PKG=$B/pkgdest/kmr-hello-1.0-1-x86_64.pkg.tar.zst
mkdir -p "$T/shipped"
cp "$PKG" "$T/shipped/"
PKG=$T/shipped/kmr-hello-1.0-1-x86_64.pkg.tar.zst
bsdtar -xOf "$PKG" .BUILDINFO | sed -n 's/^installed = //p' | sort > "$T/recorded"
check ".BUILDINFO's installed list is the root's set" 'diff <(sort "$MCACHE/installed") "$T/recorded"'
bsdtar -xOf "$PKG" usr/share/kmr-hello/probe.txt > "$T/build-probe"
check "the build saw no host bazel/mmdebstrap and the root's files" \
  'grep -qx "absent /usr/bin/bazel" "$T/build-probe" && grep -qx "absent /usr/bin/mmdebstrap" "$T/build-probe" && grep -qx "present /usr/share/kmr-standin/kmr-standin-devel.list" "$T/build-probe"'
start=$(date +%s)
KMR_PROGRESS=1 "$KMR" rebuild --json --build-root archive --sources "$T/sources" --work-dir "$T/work" "$PKG" > "$T/rebuild.json" 2> "$T/rebuild.err"
rc=$?
echo "kmr rebuild --build-root archive: $(( $(date +%s) - start )) s, exit $rc"
cat "$T/rebuild.err"
python3 - "$T/rebuild.json" <<'PY' || fail=1
import json, sys
j = json.load(open(sys.argv[1]))
print("status", j["status"], "files", j["files"], "exit_code", j["exit_code"], "reason", j["reason"][:300])
assert j["status"] == "verdict", j["reason"]
assert j["files"] == "identical", j["files"]
assert j["exit_code"] == 0
print("ok: rebuilt in the archive root: identical")
PY
check "the rebuild used the cached root" 'grep -q "build root $ROOT (cached" "$T/rebuild.err"'

# ---- 3. a signature by another key -> error naming the file -------------------
KMR_ARCH_ARCHIVE="$KMR_MIRROR_URL/tampered/packages/{c}/{name}/{file}" KMR_BUILDROOT_CACHE=$T/cache-tampered \
  "$KMR" rebuild --json --build-root archive --sources "$T/sources" --work-dir "$T/work" "$PKG" > "$T/tampered.json" 2>/dev/null
python3 - "$T/tampered.json" "$BASE.sig" <<'PY' || fail=1
import json, sys
j = json.load(open(sys.argv[1]))
print("tampered: status", j["status"], "reason", j["reason"][:400])
assert j["status"] == "error" and j["exit_code"] == 2
assert "bad signature: " + sys.argv[2] in j["reason"], j["reason"]
print("ok: another key's signature is an error naming", sys.argv[2])
PY
check "tampered: no root left behind" '[[ -z $(ls "$T/cache-tampered" | grep -v "\.lock$") ]]'

# ---- 4. a package the archive lacks -> environment-unavailable ----------------
KMR_ARCH_ARCHIVE="$KMR_MIRROR_URL/missing/packages/{c}/{name}/{file}" KMR_BUILDROOT_CACHE=$T/cache-missing \
  "$KMR" rebuild --json --build-root archive --sources "$T/sources" --work-dir "$T/work" "$PKG" > "$T/missing.json" 2>/dev/null
python3 - "$T/missing.json" "$KMR_MIRROR_URL/missing/packages/k/kmr-standin-pacman/kmr-standin-pacman-1.0-1-x86_64.pkg.tar.zst" <<'PY' || fail=1
import json, sys
j = json.load(open(sys.argv[1]))
print("missing: status", j["status"], "missing", j["missing"])
assert j["status"] == "environment-unavailable" and j["exit_code"] == 1
assert len(j["missing"]) == 1, j["missing"]
m = j["missing"][0]
assert m.startswith("kmr-standin-pacman-1.0-1-x86_64: ") and sys.argv[2] in m and "404" in m, m
print("ok: the missing package is named with the URL tried")
PY

exit $fail
