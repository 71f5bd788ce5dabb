#!/usr/bin/env bash
# Arch build roots end to end on tiny packages (seconds, offline): packages
# made here with bsdtar (.PKGINFO, a file, an install scriptlet, an alpm
# hook), signed with a throwaway gpg key, served over HTTPS with
# archive.archlinux.org's layout; buildroot_tool root (the library the
# backend uses) must:
#  - install exactly the set (pacman -Q --root read here), epoch in a file
#    name, a package only as .pkg.tar.xz (the fallback), and reuse the root;
#  - run no scriptlet and extract no hook;
#  - refuse a signature by another key (exit 2, the file named) and leave no
#    root, and a .sig over 64 KiB;
#  - name a missing package with its URLs, and a missing .sig (exit 3);
#  - fail when pacman cannot satisfy the set's dependencies (exit 2).
set -uo pipefail
R="${TEST_SRCDIR:-$PWD}/${TEST_WORKSPACE:-kmr}"
source "$R/tests/lib/require.sh"
source "$R/tests/lib/https_mirror.sh"
TOOL="$R/rebuilder/distros/arch/buildroot_tool"
for t in pacman bsdtar gpg openssl python3 zstd xz; do kmr_have "$t" || kmr_skip "$t is not installed"; done
kmr_have sqv || kmr_have gpgv || kmr_skip "neither sqv nor gpgv is installed"
T=$(mktemp -d "${TEST_TMPDIR:-/tmp}/archfetch.XXXXXX")
export GNUPGHOME
GNUPGHOME=$(mktemp -d /tmp/kmr-archgpg.XXXXXX)  # short: gpg-agent's socket path
MIRROR_PID=
cleanup() { [[ -n $MIRROR_PID ]] && kill "$MIRROR_PID" 2>/dev/null; gpgconf --kill all >/dev/null 2>&1; rm -rf "$T" "$GNUPGHOME"; }
trap cleanup EXIT
fail=0
check() { if eval "$2"; then echo "ok: $1"; else echo "FAIL: $1"; fail=1; fi; }

gpg --batch --quiet --passphrase '' --quick-gen-key 'kmr test packager <packager@kmr.invalid>' ed25519 sign never || kmr_skip "gpg cannot make a key"
gpg --batch --quiet --passphrase '' --quick-gen-key 'kmr other key <other@kmr.invalid>' ed25519 sign never
gpg --batch --export packager@kmr.invalid > "$T/keyring.gpg"
M=$T/serve/packages
mkpkg() { # name version arch ext depends...
  local name=$1 ver=$2 arch=$3 ext=$4 d=$T/src/$1
  shift 4
  mkdir -p "$d/usr/share/$name" "$d/usr/share/libalpm/hooks" "$M/${name:0:1}/$name"
  { echo "pkgname = $name"; echo "pkgbase = $name"; echo "pkgver = $ver"; echo "pkgdesc = kmr test"
    echo "builddate = 1767225600"; echo "packager = kmr"; echo "size = 10"; echo "arch = $arch"
    for dep in "$@"; do echo "depend = $dep"; done; } > "$d/.PKGINFO"
  echo "$name $ver" > "$d/usr/share/$name/marker"
  printf 'post_install() {\n  touch /kmr-scriptlet-ran\n}\n' > "$d/.INSTALL"
  printf '[Trigger]\nOperation = Install\nType = Path\nTarget = *\n[Action]\nWhen = PostTransaction\nExec = /bin/touch /kmr-hook-ran\n' \
    > "$d/usr/share/libalpm/hooks/$name.hook"
  local f=$M/${name:0:1}/$name/$name-$ver-$arch$ext
  (cd "$d" && bsdtar --format=ustar $([[ $ext == *.zst ]] && echo --zstd || echo --xz) -cf "$f" .PKGINFO .INSTALL usr)
  gpg --batch --quiet --yes --local-user packager@kmr.invalid --detach-sign --no-armor -o "$f.sig" "$f"
  echo "$name-$ver-$arch"
}
A=$(mkpkg kmr-a 1.0-1 x86_64 .pkg.tar.zst kmr-b)
B=$(mkpkg kmr-b 2:0.5-3 any .pkg.tar.zst)
C=$(mkpkg kmr-c 7-1.1 x86_64 .pkg.tar.xz)
mkpkg kmr-nosig 1-1 any .pkg.tar.zst > /dev/null
rm "$M/k/kmr-nosig/kmr-nosig-1-1-any.pkg.tar.zst.sig"
mkpkg kmr-badsig 1-1 any .pkg.tar.zst > /dev/null
gpg --batch --quiet --yes --local-user other@kmr.invalid --detach-sign --no-armor \
  -o "$M/k/kmr-badsig/kmr-badsig-1-1-any.pkg.tar.zst.sig" "$M/k/kmr-badsig/kmr-badsig-1-1-any.pkg.tar.zst"
mkpkg kmr-bigsig 1-1 any .pkg.tar.zst > /dev/null
head -c 70000 /dev/urandom > "$M/k/kmr-bigsig/kmr-bigsig-1-1-any.pkg.tar.zst.sig"  # over the 64 KiB cap
mkdir -p "$T/tls"
kmr_https_mirror "$T/serve" "$T/tls" || kmr_skip "the local HTTPS mirror did not start"
MIRROR_PID=$KMR_MIRROR_PID
export SSL_CERT_FILE=$KMR_MIRROR_CA KMR_ARCH_KEYRING=$T/keyring.gpg KMR_BUILDROOT_CACHE=$T/cache
export KMR_ARCH_ARCHIVE="$KMR_MIRROR_URL/packages/{c}/{name}/{file}"

out=$("$TOOL" root "$A" "$B" "$C" 2>&1); rc=$?
echo "$out"
ROOT=$(sed -n 's/^path //p' <<< "$out")
check "root made (exit 0)" '[[ $rc == 0 && -d $ROOT ]]'
check "pacman -Q --root is the set" \
  '[[ $(pacman --root "$ROOT" --dbpath "$ROOT/var/lib/pacman" -Q | tr "\n" " ") == "kmr-a 1.0-1 kmr-b 2:0.5-3 kmr-c 7-1.1 " ]]'
check "files installed (the .xz one too)" '[[ $(cat "$ROOT/usr/share/kmr-c/marker") == "kmr-c 7-1.1" ]]'
check "no scriptlet ran" '[[ ! -e $ROOT/kmr-scriptlet-ran ]]'
check "no hook extracted or run" '[[ ! -e $ROOT/usr/share/libalpm/hooks/kmr-a.hook && ! -e $ROOT/kmr-hook-ran ]]'
check "the .xz was fetched after the .zst's 404" 'grep -q "GET /packages/k/kmr-c/kmr-c-7-1.1-x86_64.pkg.tar.xz.sig" "$T/tls/mirror.log"'
out=$("$TOOL" root "$C" "$B" "$A" 2>&1)
check "second request (other order) is a cache hit" 'grep -qx "cached 1" <<< "$out" && grep -qx "path $ROOT" <<< "$out"'

out=$("$TOOL" root "$B" kmr-badsig-1-1-any 2>&1); rc=$?
echo "$out"
check "another key's signature: exit 2 naming the file" '[[ $rc == 2 ]] && grep -q "bad signature: kmr-badsig-1-1-any.pkg.tar.zst.sig" <<< "$out"'
check "no root or temporary left" '[[ $(ls "$T/cache" | grep -vc "\.lock$") == 1 ]]'

out=$("$TOOL" root "$B" kmr-bigsig-1-1-any 2>&1); rc=$?
check "a .sig over 64 KiB: exit 2 naming it" '[[ $rc == 2 ]] && grep -q "signature of kmr-bigsig-1-1-any: " <<< "$out"'

out=$("$TOOL" root "$B" kmr-a-1.0-2-x86_64 kmr-nosig-1-1-any 2>&1); rc=$?
echo "$out"
check "missing: exit 3" '[[ $rc == 3 ]]'
check "missing package named with both URLs" \
  'grep -qF "missing kmr-a-1.0-2-x86_64: GET $KMR_MIRROR_URL/packages/k/kmr-a/kmr-a-1.0-2-x86_64.pkg.tar.zst: HTTP 404" <<< "$out" &&
   grep -qF "also tried $KMR_MIRROR_URL/packages/k/kmr-a/kmr-a-1.0-2-x86_64.pkg.tar.xz" <<< "$out"'
check "missing signature named" 'grep -qF "missing signature of kmr-nosig-1-1-any: GET $KMR_MIRROR_URL/packages/k/kmr-nosig/kmr-nosig-1-1-any.pkg.tar.zst.sig" <<< "$out"'

out=$("$TOOL" root "$A" 2>&1); rc=$?
echo "$out" | tail -3
check "a set pacman cannot satisfy: exit 2" '[[ $rc == 2 ]] && grep -q "pacman -U" <<< "$out"'
check "still one root in the cache" '[[ $(ls "$T/cache" | grep -vc "\.lock$") == 1 ]]'
exit $fail
