#!/usr/bin/env bash
# standin-mirror.sh [--srpm FILE]... OUTDIR
#
# A local mirror in download.opensuse.org's layout, for tests of SUSE build
# roots. There is no openSUSE archive on this machine, so its packages are
# STAND-INS: the files of a Debian bookworm build root (mmdebstrap
# --variant=essential from deb.debian.org with build-essential, rpm, python3,
# zstd, xz-utils, openssl) repackaged by SUSE's real tools into a few RPMs named
# like openSUSE's (aaa_base, gcc, binutils, make, python3, xz, zstd,
# rpm-build), each built by the real `rpmbuild`, signed with a test key by
# `rpmsign`, indexed by `createrepo_c`, repomd.xml signed with gpg:
#
#   OUTDIR/tumbleweed/repo/oss/repodata/repomd.xml{,.asc,.key}
#   OUTDIR/tumbleweed/repo/oss/{x86_64,noarch}/*.rpm
#   OUTDIR/source/tumbleweed/repo/oss/{repodata/...,src/*.src.rpm}   (the --srpm files)
#   OUTDIR/keys/{repo.asc,other.asc}   the repository's key and an unrelated one
#   OUTDIR/gnupg-{repo,other}/         their GnuPG homes (the tests sign with them)
#
# Cached: OUTDIR/done records the hash of this script and the mmdebstrap
# inputs (the binary repository is then left alone); OUTDIR/source.done the
# --srpm files (the source repository is redone when they change). Needs root and
# deb.debian.org (mmdebstrap), rpmbuild, rpmsign, createrepo_c, gpg.
set -euo pipefail
export LC_ALL=C.UTF-8 TZ=UTC
{
srpms=()
while (($#)); do
  case $1 in
    --srpm) srpms+=("$(realpath "$2")"); shift 2 ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    -*) echo "standin-mirror.sh: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
(($# == 1)) || { echo "usage: standin-mirror.sh [--srpm FILE]... OUTDIR" >&2; exit 2; }
log() { echo "suse stand-in mirror: $*" >&2; }
die() { echo "suse stand-in mirror: error: $*" >&2; exit 1; }
[[ $(id -u) == 0 ]] || die "run as root (mmdebstrap --mode=root)"

SUITE=bookworm
DEBIAN_MIRROR=${KMR_DEBIAN_MIRROR:-http://deb.debian.org/debian}
INCLUDE=build-essential,rpm,python3,zstd,xz-utils,bzip2,gzip,cpio,openssl,file
SDE=1767225600
mkdir -p "$1"
OUT=$(cd "$1" && pwd)
hash=$({ sha256sum < "$0"; echo "$SUITE $DEBIAN_MIRROR $INCLUDE"; } | sha256sum | cut -c1-16)
src_hash=$({ echo "$hash"; for s in "${srpms[@]}"; do sha256sum < "$s"; done; } | sha256sum | cut -c1-16)
exec 7> "$OUT.lock"
flock 7
SRC=$OUT/source/tumbleweed/repo/oss
# index_repo DIR WHO: createrepo_c, repomd.xml signed by WHO, the repository key beside it.
index_repo() {
  local dir=$1 who=$2
  find "$dir" -name '*.rpm' -exec touch -d "@$SDE" {} +
  createrepo_c -q --revision "$SDE" --set-timestamp-to-revision "$dir" > /dev/null || die "createrepo_c $dir"
  rm -f "$dir/repodata/repomd.xml.asc"
  GNUPGHOME=$OUT/gnupg-$who gpg --batch --yes --armor --detach-sign -o "$dir/repodata/repomd.xml.asc" "$dir/repodata/repomd.xml"
  cp "$OUT/keys/repo.asc" "$dir/repodata/repomd.xml.key"
  GNUPGHOME=$OUT/gnupg-$who gpgconf --kill gpg-agent 2>/dev/null || true
}
sign_rpms() { # sign_rpms WHO FILE...
  local who=$1; shift
  GNUPGHOME=$OUT/gnupg-$who rpmsign --addsign --define "_gpg_name suse-$who@kmr.invalid" \
    --define "_gpg_path $OUT/gnupg-$who" --define "__gpg $(type -P gpg)" "$@" > "$OUT/rpmsign.log" 2>&1 ||
    { cat "$OUT/rpmsign.log" >&2; die "rpmsign failed"; }
  rm -f "$OUT/rpmsign.log"
}
# The source repository: the --srpm files, signed, indexed (redone when they change).
source_repo() {
  [[ $(cat "$OUT/source.done" 2>/dev/null) == "$src_hash" ]] && return 0
  rm -rf "$OUT/source" "$OUT/source.done"
  mkdir -p "$SRC/src"
  if ((${#srpms[@]})); then
    cp "${srpms[@]}" "$SRC/src/"
    sign_rpms repo "$SRC/src/"*.rpm
    index_repo "$SRC" repo
  fi
  echo "$src_hash" > "$OUT/source.done"
}
if [[ $(cat "$OUT/done" 2>/dev/null) == "$hash" ]]; then
  source_repo
  log "cached: $OUT"
  exit 0
fi
WORK=$OUT/.work
TOP=$WORK/rpmbuild
# The stand-in RPMs of an interrupted run with the same inputs are reused.
if [[ $(cat "$WORK/built" 2>/dev/null) == "$hash" ]]; then
  find "$OUT" -mindepth 1 -maxdepth 1 ! -name .work -exec rm -rf {} +
else
  find "$OUT" -mindepth 1 -delete
  mkdir -p "$WORK"

# ---- 1. the Debian build root ---------------------------------------------------
DEB=$WORK/debroot
log "mmdebstrap $SUITE ($INCLUDE)"
hooks=()
[[ -d /usr/share/mmdebstrap/hooks/merged-usr ]] && hooks=(--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr)
mmdebstrap --mode=root --variant=essential "${hooks[@]}" --include="$INCLUDE" --aptopt='Acquire::Retries "3"' \
  "$SUITE" "$DEB" "deb $DEBIAN_MIRROR $SUITE main" > "$WORK/mmdebstrap.log" 2>&1 ||
  { tail -30 "$WORK/mmdebstrap.log" >&2; die "mmdebstrap failed"; }

# ---- 2. files grouped into stand-ins named like openSUSE's packages -------------
# Each stand-in: NAME LEAD-DEBIAN-PACKAGE REGEX-OF-DEBIAN-PACKAGES (aaa_base: the rest,
# shared libraries other groups link against among them: rpmbuild needs libgomp1).
python3 - "$DEB" "$WORK/groups" <<'PY'
import os, re, subprocess, sys
root, out = sys.argv[1:]
groups = [
    ("gcc", "gcc-12", r"(gcc|gcc-12|cpp|cpp-12|g\+\+|g\+\+-12|libstdc\+\+-12-dev|libgcc-12-dev|libc6-dev|libc-dev-bin|linux-libc-dev|libcrypt-dev|libnsl-dev|libtirpc-dev|rpcsvc-proto|libasan8|liblsan0|libtsan2|libubsan1|libitm1|libatomic1|libquadmath0|libcc1-0|libisl23|libmpc3|libmpfr6|libhwasan0)"),
    ("binutils", "binutils", r"(binutils|binutils-common|binutils-x86-64-linux-gnu|libbinutils|libctf0|libctf-nobfd0|libgprofng0|libjansson4|libsframe\d*)"),
    ("make", "make", r"make"),
    ("python3", "python3.11", r"(python3|python3-minimal|python3\.11|python3\.11-minimal|libpython3-stdlib|libpython3\.11-minimal|libpython3\.11-stdlib|media-types|libmpdec3)"),
    ("xz", "xz-utils", r"xz-utils"),
    ("zstd", "zstd", r"zstd"),
    ("rpm-build", "rpm", r"(rpm|rpm-common|rpm2cpio|librpm9|librpmbuild9|librpmio9|librpmsign9|debugedit)"),
]
admin = os.path.join(root, "var/lib/dpkg")
q = subprocess.run(["dpkg-query", "--admindir", admin, "-W", "-f", "${Package} ${Version}\n"], capture_output=True, text=True, check=True).stdout
versions = dict(l.split(" ", 1) for l in q.splitlines())
owned = {}
for pkg in versions:
    for cand in (pkg, pkg + ":amd64"):
        lst = os.path.join(admin, "info", cand + ".list")
        if os.path.exists(lst):
            for line in open(lst, encoding="utf-8", errors="surrogateescape"):
                p = line.rstrip("\n")
                full = root + p
                if p and os.path.lexists(full) and (os.path.islink(full) or not os.path.isdir(full)):
                    # merged /usr: /bin/bash in the list is /usr/bin/bash on disk
                    real = "/" + os.path.relpath(os.path.realpath(os.path.dirname(full)), root) + "/" + os.path.basename(p)
                    owned.setdefault(real.replace("//", "/"), pkg)
skip = re.compile(r"^/(proc|sys|dev|run|tmp|var/tmp|var/cache|var/log|var/lib/apt|var/lib/dpkg|root|home|boot|media|mnt|srv|opt)(/|$)")
everything = []
for d, dirs, files in os.walk(root):
    for n in sorted(dirs + files):
        full = os.path.join(d, n)
        if os.path.isdir(full) and not os.path.islink(full):
            continue
        rel = "/" + os.path.relpath(full, root)
        if not skip.match(rel):
            everything.append(rel)
assign = {}
for rel in everything:
    pkg = owned.get(rel)
    name = "aaa_base"
    for g, lead, rx in groups:
        if pkg is not None and re.fullmatch(rx, pkg):
            name = g
            break
    assign.setdefault(name, []).append(rel)
def split_version(v):
    v = v.split(":", 1)[-1]
    up, _, rev = v.rpartition("-")
    if not up:
        up, rev = v, "0"
    return up.replace("-", "_"), rev.replace("-", "_") + ".kmr1"
leads = dict((g, lead) for g, lead, _ in groups)
leads["aaa_base"] = "base-files"
os.makedirs(out, exist_ok=True)
for name, files in sorted(assign.items()):
    ver, rel = split_version(versions[leads[name]])
    with open(os.path.join(out, name + ".files"), "w", encoding="utf-8", errors="surrogateescape") as f:
        for p in sorted(files):
            f.write(p.lstrip("/") + "\n")
    with open(os.path.join(out, name + ".version"), "w") as f:
        f.write(f"{ver} {rel} {leads[name]}\n")
PY

# ---- 3. one rpmbuild per stand-in -----------------------------------------------
mkdir -p "$TOP/SPECS"
for list in "$WORK/groups/"*.files; do
  name=$(basename "$list" .files)
  read -r ver rel lead < "$WORK/groups/$name.version"
  requires="Requires: aaa_base"
  [[ $name == aaa_base ]] && requires=
  provides=
  [[ $name == xz ]] && provides="Provides: xz-utils"
  [[ $name == gcc ]] && provides="Provides: c_compiler gcc12"
  [[ $name == aaa_base ]] && provides="Provides: /bin/sh bash coreutils glibc openssl"
  cat > "$TOP/SPECS/$name.spec" <<EOF
%global debug_package %{nil}
%global __os_install_post %{nil}
%global _build_id_links none
Name: $name
Version: $ver
Release: $rel
Summary: kmr stand-in for openSUSE's $name (files of Debian's $lead and its group)
License: various (Debian bookworm packages)
URL: https://kmr.invalid/suse-standins
AutoReqProv: no
$requires
$provides

%description
A stand-in made by kmr's tests: the files of Debian bookworm's $lead (and
the packages grouped with it) repackaged with rpmbuild. Not an openSUSE package.

%install
mkdir -p %{buildroot}
tar -C $DEB --no-recursion --verbatim-files-from -cf - -T $list | tar -C %{buildroot} -xpf -

%files
%defattr(-,root,root)
$(cd "$DEB" && sed -E 's|/.*||' "$list" | sort -u | sed 's|^|/|')
EOF
  log "rpmbuild $name-$ver-$rel"
  env -i PATH=/usr/bin:/bin HOME="$WORK" LANG=C.UTF-8 SOURCE_DATE_EPOCH=$SDE \
    rpmbuild -bb --define "_topdir $TOP" --define "_buildhost kmr-obs-standin" \
    --define "use_source_date_epoch_as_buildtime 1" --define "_binary_payload w3.zstdio" \
    --define "_unpackaged_files_terminate_build 0" --define "distribution kmr stand-ins (openSUSE layout)" \
    --define "vendor kmr" "$TOP/SPECS/$name.spec" > "$WORK/rpmbuild-$name.log" 2>&1 ||
    { tail -30 "$WORK/rpmbuild-$name.log" >&2; die "rpmbuild $name failed"; }
done
rm -rf "$DEB"
echo "$hash" > "$WORK/built"
fi

# ---- 4. keys, signatures, repositories ------------------------------------------
mkdir -p "$OUT/keys"
for who in repo other; do
  home=$OUT/gnupg-$who
  mkdir -m 700 -p "$home"
  GNUPGHOME=$home gpg --batch --quiet --pinentry-mode loopback --passphrase '' \
    --quick-gen-key "kmr suse stand-in $who key <suse-$who@kmr.invalid>" rsa3072 sign never 2>/dev/null
  GNUPGHOME=$home gpg --batch --armor --export > "$OUT/keys/$who.asc"
done
BIN=$OUT/tumbleweed/repo/oss
mkdir -p "$BIN/x86_64" "$BIN/noarch"
cp "$TOP/RPMS/x86_64/"*.rpm "$BIN/x86_64/"
sign_rpms repo "$BIN/x86_64/"*.rpm
index_repo "$BIN" repo
GNUPGHOME=$OUT/gnupg-repo gpgconf --kill gpg-agent 2>/dev/null || true
GNUPGHOME=$OUT/gnupg-other gpgconf --kill gpg-agent 2>/dev/null || true
du -sh "$BIN" | sed 's/^/suse stand-in mirror: size /' >&2
rm -rf "$WORK"
echo "$hash" > "$OUT/done"
source_repo
log "done: $OUT"
exit 0
}
