#!/usr/bin/env bash
# suse_buildroot_test: `kmr rebuild --build-root archive` of the fixture SUSE
# package in an rpm root made from a local HTTPS mirror in
# download.opensuse.org's layout (standin-mirror.sh: stand-in RPMs built by
# rpmbuild from a Debian root, signed by rpmsign, indexed by createrepo_c).
# Asserts: the same verdict as with the host's toolchain; the root's rpmdb is
# the resolved set (checked against the mirror's primary.xml by Python);
# inside the sandbox /usr/bin/rpmbuild is the root's file and host-only tools
# are absent (a probe package's %build prints what it sees); repomd.xml signed
# by another key and a package signed by another key end as `error`; a
# _buildenv pinning a version the mirror lacks, and a package file the mirror
# lost (HTTP 404), end as environment-unavailable naming package and URL; the
# second request is a cache hit.
# KMR_LIVE=1: against the real download.opensuse.org instead (not run when
# it cannot be reached: a skip, a failure under KMR_REQUIRE_ALL=1).
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root_dir=$(cd "$here/../../.." && pwd)
# shellcheck source=/dev/null
source "$root_dir/tests/lib/require.sh"
# shellcheck source=/dev/null
source "$root_dir/tests/lib/https_mirror.sh"
KMR=${KMR_BIN:-$root_dir/rebuilder/cli/kmr}
fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }

[[ $(id -u) == 0 ]] || kmr_skip "needs root (build roots are made with rpm --root, the mirror with mmdebstrap)"
for t in rpm rpmbuild rpmkeys rpmsign createrepo_c gpg bwrap python3 curl; do
  kmr_have "$t" || kmr_skip "$t not installed"
done
w=$(mktemp -d "${TEST_TMPDIR:-/tmp}/suse-root.XXXXXX")
MIRROR_PID=
cleanup() { [[ -n $MIRROR_PID ]] && kill "$MIRROR_PID" 2>/dev/null; }
trap cleanup EXIT

fixtures=$("$root_dir/tests/fixtures/repos/ensure-fixtures.sh")
case $? in 0) ;; 3) kmr_skip "fixture repositories cannot be built here" ;; *) fail "ensure-fixtures.sh" ;; esac
rpmf=$(ls "$fixtures"/suse/pristine/repo/x86_64/kernel-kmrfix-*.x86_64.rpm)
srpm=$(ls "$fixtures"/suse/pristine/sources/kernel-kmrfix-*.src.rpm)

# rebuild NAME ARGS...: kmr rebuild --json into $w/NAME.{json,err,rc}
rebuild() {
  local name=$1
  shift
  KMR_PROGRESS=1 "$KMR" rebuild --json --work-dir "$w/work" "$@" > "$w/$name.json" 2> "$w/$name.err"
  echo $? > "$w/$name.rc"
}
field() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, {"d": d}))' "$w/$1.json" "$2"; }

# ---- KMR_LIVE=1: the real download.opensuse.org -----------------------------------
if [[ ${KMR_LIVE:-0} == 1 ]]; then
  live=https://download.opensuse.org/tumbleweed/repo/oss
  curl -fsS --max-time 20 -o "$w/repomd.xml.key" "$live/repodata/repomd.xml.key" 2>"$w/curl.err" ||
    kmr_skip "not run: $live unreachable ($(head -c 200 "$w/curl.err"))"
  # The key as the mirror gives it (trust on first use: this mode shows that
  # the real layout, signature chain and names resolve, not who signed).
  KMR_SUSE_MIRROR=$live KMR_SUSE_REPO_KEY=$w/repomd.xml.key KMR_BUILDROOT_CACHE=$w/roots \
    rebuild live --build-root archive --sources "$(dirname "$srpm")" "$rpmf"
  status=$(field live 'd["status"]')
  echo "live: status $status, missing: $(field live 'd["missing"][:5]')"
  [[ $status == verdict || $status == environment-unavailable ]] || fail "live: status $status: $(tail -5 "$w/live.err")"
  pass "live: $status against $live"
  exit 0
fi

# ---- the stand-in mirror, served over HTTPS ---------------------------------------
mirror=${KMR_SUSE_STANDIN_MIRROR:-/var/tmp/kmr-fixtures-suse-mirror}
if [[ $(cat "$mirror/done" 2>/dev/null) == "" ]] &&
  ! curl -fsS --max-time 20 -o /dev/null http://deb.debian.org/debian/dists/bookworm/Release 2>/dev/null; then
  kmr_skip "deb.debian.org unreachable: the stand-in mirror cannot be made"
fi
kmr_have mmdebstrap || [[ -f $mirror/done ]] || kmr_skip "mmdebstrap not installed"
t0=$SECONDS
"$here/standin-mirror.sh" --srpm "$srpm" "$mirror" || fail "standin-mirror.sh"
echo "stand-in mirror ready in $((SECONDS - t0)) s"
srv=$w/srv
mkdir -p "$srv" "$w/tls"
cp -al "$mirror" "$srv/m"   # hard links: files below are replaced, never written in place
kmr_https_mirror "$srv" "$w/tls" || fail "https mirror"
MIRROR_PID=$KMR_MIRROR_PID
export KMR_SUSE_REPO_KEY=$mirror/keys/repo.asc KMR_SUSE_MIRROR_CA=$KMR_MIRROR_CA
export KMR_SUSE_MIRROR=$KMR_MIRROR_URL/m/tumbleweed/repo/oss
export KMR_BUILDROOT_CACHE=${KMR_BUILDROOT_CACHE:-/var/tmp/kmr-buildroots}
src=$srv/m/source/tumbleweed/repo/oss/src

# ---- 1. host toolchain and archive root: the same verdict --------------------------
rebuild host --sources "$src" "$rpmf"
t0=$SECONDS
rebuild archive --build-root archive --sources "$src" "$rpmf"
echo "archive-root rebuild: $((SECONDS - t0)) s"
for r in host archive; do
  [[ $(cat "$w/$r.rc") == 0 && $(field $r 'd["status"]') == verdict ]] ||
    fail "$r: rc $(cat "$w/$r.rc"), status $(field $r 'd["status"]'): $(tail -5 "$w/$r.err")"
done
for k in files module_root module_content_root rebuilt_content_root; do
  [[ $(field host "d['$k']") == "$(field archive "d['$k']")" ]] || fail "$k: host $(field host "d['$k']"), archive $(field archive "d['$k']")"
done
pass "archive root: files $(field archive 'd["files"]'), module_root $(field archive 'd["module_root"]'), as with the host toolchain"
root=$(sed -n 's/.*build root \(\/[^ ]*\) (.*/\1/p' "$w/archive.err" | tail -1)
[[ -n $root && -d $root/usr/bin ]] || fail "no build root named in the progress lines: $(cat "$w/archive.err")"

# The root's rpmdb against the mirror's primary.xml: each installed NEVRA is
# a package of the mirror, and together they are the closure of the source
# RPM's BuildRequires plus aaa_base and rpm-build.
rpm --root "$root" --dbpath /var/lib/rpm -qa --qf '%{NAME} %{EPOCHNUM}:%{VERSION}-%{RELEASE} %{ARCH}\n' |
  grep -v '^gpg-pubkey ' | sort > "$w/installed"
rpm -qp --requires "$srpm" | grep -v '^rpmlib(' | awk '{print $1}' | sort > "$w/buildrequires"
python3 - "$mirror/tumbleweed/repo/oss" "$w/installed" "$w/buildrequires" <<'PY' || fail "installed set"
import glob, gzip, sys, xml.etree.ElementTree as ET
repo, installed, breq = sys.argv[1:]
ns = {"c": "http://linux.duke.edu/metadata/common", "rpm": "http://linux.duke.edu/metadata/rpm"}
prim = ET.parse(gzip.open(glob.glob(repo + "/repodata/*-primary.xml.gz")[0])).getroot()
have = set()
for p in prim.findall("c:package", ns):
    v = p.find("c:version", ns)
    have.add(f'{p.find("c:name", ns).text} {v.get("epoch") or 0}:{v.get("ver")}-{v.get("rel")} {p.find("c:arch", ns).text}')
inst = [l.strip() for l in open(installed) if l.strip()]
names = {l.split()[0] for l in inst}
want = {l.strip() for l in open(breq) if l.strip()} | {"aaa_base", "rpm-build"}
bad = [i for i in inst if i not in have]
assert not bad, f"installed but not in the mirror: {bad}"
assert want <= names, f"BuildRequires not installed: {want - names}"
print("installed:", ", ".join(sorted(inst)))
PY
pass "root $root holds $(wc -l < "$w/installed") packages, each the mirror's, covering BuildRequires ($(tr '\n' ' ' < "$w/buildrequires"))"

# ---- 2. inside the sandbox: the root's files, not the host's ----------------------
mkdir -p "$w/probe/SPECS" "$w/probe-src"
cat > "$w/probe/SPECS/kmr-root-probe.spec" <<'EOF'
Name: kmr-root-probe
Version: 1
Release: 1
Summary: prints what its build sees
License: MIT
BuildRequires: rpm-build gcc
%description
Prints what the build sandbox holds.
%build
echo "PROBE rpmbuild $(sha256sum /usr/bin/rpmbuild | cut -d' ' -f1)"
echo "PROBE gcc $(sha256sum /usr/bin/gcc-12 | cut -d' ' -f1)"
for t in /usr/bin/bazel /usr/bin/mmdebstrap /usr/bin/createrepo_c /usr/bin/bwrap; do
  if [ -e "$t" ]; then echo "PROBE present $t"; else echo "PROBE absent $t"; fi
done
rpm --dbpath /var/lib/rpm -qa --qf 'PROBE pkg %%{NAME}\n'
%install
mkdir -p %{buildroot}/usr/share/kmr-root-probe
echo probe > %{buildroot}/usr/share/kmr-root-probe/probe
%files
/usr/share/kmr-root-probe
EOF
env -i PATH=/usr/bin:/bin HOME="$w/probe" rpmbuild -ba --nodeps --define "_topdir $w/probe" \
  "$w/probe/SPECS/kmr-root-probe.spec" > "$w/probe.log" 2>&1 || fail "probe rpmbuild: $(tail -5 "$w/probe.log")"
cp "$w/probe/SRPMS/"*.src.rpm "$w/probe-src/"
rebuild probe --build-root archive --keep --sources "$w/probe-src" "$w/probe/RPMS/x86_64/kmr-root-probe-1-1.x86_64.rpm"
log=$(field probe 'd["log"]')
[[ -f $log ]] || fail "probe: no build log ($(tail -3 "$w/probe.err"))"
proot=$(sed -n 's/.*build root \(\/[^ ]*\) (.*/\1/p' "$w/probe.err" | tail -1)
[[ -n $proot && -d $proot/usr/bin ]] || fail "probe: no build root named: $(cat "$w/probe.err")"
grep -q "^PROBE rpmbuild $(sha256sum < "$proot/usr/bin/rpmbuild" | cut -d' ' -f1)\$" "$log" || fail "probe: /usr/bin/rpmbuild is not the root's: $(grep PROBE "$log")"
grep -q "^PROBE gcc $(sha256sum < "$proot/usr/bin/gcc-12" | cut -d' ' -f1)\$" "$log" || fail "probe: gcc-12 is not the root's"
for t in /usr/bin/bazel /usr/bin/mmdebstrap /usr/bin/createrepo_c /usr/bin/bwrap; do
  grep -q "^PROBE absent $t\$" "$log" || fail "probe: host-only $t visible in the sandbox"
done
grep '^PROBE pkg ' "$log" | awk '{print $3}' | grep -v '^gpg-pubkey$' | sort > "$w/probe-pkgs"
rpm --root "$proot" --dbpath /var/lib/rpm -qa --qf '%{NAME}\n' | grep -v '^gpg-pubkey$' | sort > "$w/probe-root-pkgs"
diff "$w/probe-root-pkgs" "$w/probe-pkgs" > /dev/null || fail "probe: the sandbox's rpmdb is not the root's: $(diff "$w/probe-root-pkgs" "$w/probe-pkgs")"
pass "sandbox: rpmbuild and gcc-12 are the root's files (sha256), bazel/mmdebstrap/createrepo_c/bwrap absent, rpmdb = the root's ($(tr '\n' ' ' < "$w/probe-pkgs"))"

# ---- 3. signatures -----------------------------------------------------------------
# repomd.xml signed by another key.
cp -al "$mirror" "$srv/badrepomd"
rm "$srv/badrepomd/tumbleweed/repo/oss/repodata/repomd.xml.asc"
GNUPGHOME=$mirror/gnupg-other gpg --batch --armor --detach-sign -o "$srv/badrepomd/tumbleweed/repo/oss/repodata/repomd.xml.asc" \
  "$srv/badrepomd/tumbleweed/repo/oss/repodata/repomd.xml" 2>/dev/null || fail "gpg"
KMR_SUSE_MIRROR=$KMR_MIRROR_URL/badrepomd/tumbleweed/repo/oss rebuild badrepomd --build-root archive --sources "$src" "$rpmf"
[[ $(field badrepomd 'd["status"]') == error ]] && grep -q "does not verify" <(field badrepomd 'd["reason"]') ||
  fail "repomd.xml by another key: $(field badrepomd 'd["status"]'): $(field badrepomd 'd["reason"]')"
pass "repomd.xml signed by another key: error ($(field badrepomd 'd["reason"][:160]'))"
# One package (zstd) signed by another key, the index rebuilt and signed by the right one.
cp -al "$mirror" "$srv/badpkg"
b=$srv/badpkg/tumbleweed/repo/oss
z=$(ls "$b"/x86_64/zstd-*.rpm)
cp --remove-destination "$mirror/tumbleweed/repo/oss/x86_64/$(basename "$z")" "$z"
rpmsign --delsign "$z" > /dev/null 2>&1
GNUPGHOME=$mirror/gnupg-other rpmsign --addsign --define "_gpg_name suse-other@kmr.invalid" --define "_gpg_path $mirror/gnupg-other" \
  --define "__gpg $(type -P gpg)" "$z" > "$w/resign.log" 2>&1 || fail "rpmsign: $(cat "$w/resign.log")"
rm -rf "$b/repodata"
createrepo_c -q "$b" > /dev/null || fail "createrepo_c"
GNUPGHOME=$mirror/gnupg-repo gpg --batch --armor --detach-sign -o "$b/repodata/repomd.xml.asc" "$b/repodata/repomd.xml" 2>/dev/null
KMR_SUSE_MIRROR=$KMR_MIRROR_URL/badpkg/tumbleweed/repo/oss rebuild badpkg --build-root archive --sources "$src" "$rpmf"
[[ $(field badpkg 'd["status"]') == error ]] && grep -q "zstd.*rpmkeys --checksig" <(field badpkg 'd["reason"]') ||
  fail "zstd signed by another key: $(field badpkg 'd["status"]'): $(field badpkg 'd["reason"]')"
pass "a package signed by another key: error ($(field badpkg 'd["reason"][:200]'))"
GNUPGHOME=$mirror/gnupg-other gpgconf --kill gpg-agent 2>/dev/null
GNUPGHOME=$mirror/gnupg-repo gpgconf --kill gpg-agent 2>/dev/null

# ---- 4. missing versions: environment-unavailable with package and URL -------------
mkdir -p "$w/pin"
cp "$srpm" "$w/pin/"
python3 - "$w/installed" > "$w/pin/_buildenv" <<'PY'
import sys
print('<buildinfo project="home:kmr:fixtures" repository="openSUSE_Tumbleweed" package="kernel-kmrfix">')
for line in open(sys.argv[1]):
    name, evr, arch = line.split()
    e, vr = evr.split(":", 1)
    v, r = vr.rsplit("-", 1)
    if name == "gcc":
        v, r = "99.9", "9.1"
    print(f'  <bdep name="{name}" epoch="{e if e != "0" else ""}" version="{v}" release="{r}" arch="{arch}"/>')
print("</buildinfo>")
PY
rebuild pinned --build-root archive --sources "$w/pin" "$rpmf"
[[ $(field pinned 'd["status"]') == environment-unavailable ]] || fail "_buildenv gcc 99.9: $(field pinned 'd["status"]'): $(tail -3 "$w/pinned.err")"
grep -q "^gcc-0:99.9-9.1.x86_64: not in $KMR_SUSE_MIRROR/repodata/.*-primary.xml.gz\$" <(field pinned '"\n".join(d["missing"])') ||
  fail "_buildenv gcc 99.9: missing $(field pinned 'd["missing"]')"
pass "a _buildenv pinning gcc 99.9-9.1: environment-unavailable, $(field pinned 'd["missing"][0]')"
# The mirror lost a file its primary lists (HTTP 404), in an empty cache.
cp -al "$mirror" "$srv/lost"
xz_rpm=$(basename "$(ls "$srv"/lost/tumbleweed/repo/oss/x86_64/xz-*.rpm)")
rm "$srv/lost/tumbleweed/repo/oss/x86_64/$xz_rpm"
KMR_BUILDROOT_CACHE=$w/roots KMR_SUSE_MIRROR=$KMR_MIRROR_URL/lost/tumbleweed/repo/oss \
  rebuild lost --build-root archive --sources "$src" "$rpmf"
[[ $(field lost 'd["status"]') == environment-unavailable ]] &&
  grep -q "^xz-.*: GET $KMR_MIRROR_URL/lost/tumbleweed/repo/oss/x86_64/$xz_rpm.*404" <(field lost '"\n".join(d["missing"])') ||
  fail "lost xz: $(field lost 'd["status"]'): $(field lost 'd["missing"]') $(tail -3 "$w/lost.err")"
pass "a package file the mirror lost: environment-unavailable, $(field lost 'd["missing"][0]')"

# ---- 5. the second request is a cache hit ------------------------------------------
rebuild again --build-root archive --sources "$src" "$rpmf"
grep -q "build root $root (.*cached" "$w/again.err" || fail "second request: not a cache hit: $(grep 'build root' "$w/again.err")"
[[ $(field again 'd["files"]') == "$(field archive 'd["files"]')" ]] || fail "second request: another verdict"
pass "second request: cached root, same verdict"
echo "PASS"
