#!/usr/bin/env bash
# The example configs for real mirrors (deploy/kmrd.*.json): kmrd
# --check-config accepts each, a bad template is refused naming the key, and
# every source template expands, for real package names and versions, to the
# exact URLs those mirrors serve (the code sync uses, via sources_probe).
# KMR_LIVE=1 also fetches them (files through kmr's HTTPS client with the
# index's sha256, git tags with git ls-remote); a mirror this machine cannot
# reach is reported "not run" (kmr_skip_part), never as passed.
set -uo pipefail
R="${TEST_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)/..}/kmr"
[[ -d $R ]] || R=$(cd "$(dirname "$0")/.." && pwd)
here=$R/deploy
source "$R/tests/lib/require.sh"
KMRD=$R/server/kmrd
PROBE=$here/sources_probe
fail=0
check() { # description, expected, actual
  if [[ "$2" == "$3" ]]; then echo "ok: $1"; else echo "FAIL: $1"; echo "  expected: $2"; echo "  actual:   $3"; fail=1; fi
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo token > "$tmp/admin-token"

# The configs as shipped, only the admin token file pointed at a test file.
for f in "$here"/kmrd.*.json; do
  name=$(basename "$f")
  python3 - "$f" "$tmp/$name" "$tmp/admin-token" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
if "admin_token_file" in c: c["admin_token_file"] = sys.argv[3]
json.dump(c, open(sys.argv[2], "w"))
PY
  out=$("$KMRD" --config "$tmp/$name" --check-config 2>&1); rc=$?
  check "--check-config accepts $name" 0 "$rc"
  [[ $rc == 0 ]] || echo "$out"
done

# A wrong placeholder is refused with the key named.
python3 - "$tmp/kmrd.debian.json" "$tmp/bad.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["repositories"][0]["sources"]["buildinfo"] = "https://buildinfos.debian.net/{package}.buildinfo"
json.dump(c, open(sys.argv[2], "w"))
PY
out=$("$KMRD" --config "$tmp/bad.json" --check-config 2>&1); rc=$?
check "--check-config refuses an unknown placeholder (exit 2)" 2 "$rc"
case $out in
  *'repositories[0].sources.buildinfo: unknown placeholder {package}'*) echo "ok: the error names the key: $out" ;;
  *) echo "FAIL: the error does not name the key: $out"; fail=1 ;;
esac

probe() { "$PROBE" "$tmp/$1" "${@:2}" 2>&1; }

# Arch: linux 6.8.7.arch1-1 (packaging repository tag, archive package and signature).
check "arch PKGBUILD repository and tag" \
  "git https://gitlab.archlinux.org/archlinux/packaging/packages/linux.git 6.8.7.arch1-1" \
  "$(probe kmrd.arch.json arch-core arch-pkgbuild pkgbase=linux version=6.8.7.arch1-1)"
check "arch archive package and .sig" \
  "file https://archive.archlinux.org/packages/l/linux/linux-6.8.7.arch1-1-x86_64.pkg.tar.zst
file https://archive.archlinux.org/packages/l/linux/linux-6.8.7.arch1-1-x86_64.pkg.tar.zst.sig" \
  "$(probe kmrd.arch.json arch-core arch-archive installed=linux-6.8.7.arch1-1-x86_64)"
# openSUSE Tumbleweed: kernel-default's source is a .nosrc.rpm.
check "suse source RPM" \
  "file https://download.opensuse.org/source/tumbleweed/repo/oss/nosrc/kernel-default-6.17.1-1.1.nosrc.rpm" \
  "$(probe kmrd.opensuse-tumbleweed.json tumbleweed-oss suse-srpm sourcerpm=kernel-default-6.17.1-1.1.nosrc.rpm)"
# NixOS: the channel's git-revision, then nixpkgs at that revision.
check "nixos channel revision" "file https://channels.nixos.org/nixos-25.05/git-revision" \
  "$(probe kmrd.nixos.json nixos-25.05 nixos-tarball)"
check "nixos nixpkgs tarball" \
  "file https://github.com/NixOS/nixpkgs/archive/5ae3b07d8d6527c42f17c876e404993199144b6a.tar.gz" \
  "$(probe kmrd.nixos.json nixos-25.05 nixos-tarball rev=5ae3b07d8d6527c42f17c876e404993199144b6a)"
# Debian: the signed kernel (bookworm's linux-image-6.1.0-47-amd64 6.1.170-3 from linux-signed-amd64 6.1.170+3).
check "debian .buildinfo" \
  "file https://buildinfos.debian.net/buildinfo-pool/l/linux-signed-amd64/linux-signed-amd64_6.1.170+3_amd64.buildinfo" \
  "$(probe kmrd.debian.json debian-bookworm debian-buildinfo source=linux-signed-amd64 source_version=6.1.170+3 version=6.1.170-3 arch=amd64)"
check "proxmox: no .buildinfo template by default" \
  "sources_probe: pve-no-subscription: no buildinfo template (off)" \
  "$(probe kmrd.proxmox.json pve-no-subscription debian-buildinfo source=proxmox-kernel-6.8 source_version=6.8.12-4 version=6.8.12-4 arch=amd64)"

# ---- live ------------------------------------------------------------------------------------
reachable() { getent hosts "$1" >/dev/null 2>&1 && curl -sS -m 15 -o /dev/null "https://$1/" 2>/dev/null; }
live() { # name host probe-args...
  local name=$1 host=$2; shift 2
  if ! reachable "$host"; then
    kmr_skip_part "live $name: $host is not reachable from here: not run"
    return
  fi
  local out; out=$(probe "$@" --fetch); local rc=$?
  echo "$out" | sed 's/^/  /'
  check "live $name: every URL fetched" 0 "$rc"
}
# kmrd and kmr-worker against the real archive, with kmrd.debian.json narrowed to hello: sync
# reads bookworm's signed InRelease, Packages and Sources; the job carries the .dsc, its files
# and the .buildinfo URL; the worker fetches them over HTTPS (hashes checked). The engine is a
# stub: this checks what reaches it, not a rebuild.
live_sync_debian() {
  local d=$tmp/live-sync pub
  mkdir -p "$d"
  pub=$("$R/server/kmr-worker" --gen-key "$d/w.pem")
  python3 - "$tmp/kmrd.debian.json" "$d/kmrd.json" "$d/state" "$pub" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c.update({"state_dir": sys.argv[3], "http": {"listen": "127.0.0.1:0"}, "origin": "",
          "workers": [{"name": "w1", "public_key": sys.argv[4], "resource_classes": ["big"]}]})
c.pop("admin_token_file", None); c["admin_token"] = "admin-" + "x" * 20
c["repositories"][0]["packages"] = ["hello"]
json.dump(c, open(sys.argv[2], "w"))
PY
  "$KMRD" --config "$d/kmrd.json" --port-file "$d/port" > "$d/kmrd.log" 2>&1 &
  local kp=$!
  for _ in $(seq 100); do [[ -s $d/port ]] && break; sleep 0.1; done
  local base=http://127.0.0.1:$(cat "$d/port") q=0
  for _ in $(seq 600); do
    q=$(curl -s "$base/api/v1/queue" | python3 -c 'import json,sys; print(json.load(sys.stdin)["queued"])' 2>/dev/null)
    [[ $q == 1 ]] && break
    sleep 0.5
  done
  check "live sync of bookworm (signed InRelease, Packages, Sources) enqueued hello" 1 "$q"
  "$R/server/kmr-worker" --server "$base" --server-key "$d/state/keys/attestation.pem.pub" --key "$d/w.pem" \
    --work-dir "$d/work" --rebuild-command /bin/true --exit-when-idle > "$d/worker.log" 2>&1
  local sha build reason status
  sha=$(curl -s "$base/api/v1/artifacts?name=hello" | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["sha256"])')
  build=$(curl -s "$base/api/v1/artifacts/sha256/$sha" | python3 -c 'import json,sys; print(json.load(sys.stdin)["build"])')
  status=$(curl -s "$base/api/v1/builds/$build" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
  reason=$(curl -s "$base/api/v1/builds/$build" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("reason") or "")')
  kill "$kp"; wait "$kp" 2>/dev/null
  echo "  build $build: $status: $reason"
  [[ $build =~ ^[0-9]+$ ]] || { echo "  worker log:"; tail -15 "$d/worker.log"; }
  if [[ $status == environment-unavailable ]]; then
    # buildinfos.debian.net is unreachable here: the .buildinfo is the only thing missing.
    case $reason in
      *".buildinfo of hello 2.10-3 amd64 (hello_2.10-3_amd64.buildinfo): https://buildinfos.debian.net/buildinfo-pool/h/hello/hello_2.10-3_amd64.buildinfo: "*) ;;
      *) echo "FAIL: live: the missing .buildinfo is not named with its URL"; fail=1 ;;
    esac
    case $reason in
      *".dsc"*|*"source file of hello"*) echo "FAIL: live: a .dsc file from deb.debian.org was not fetched"; fail=1 ;;
      *) echo "ok: live: the worker fetched hello's .dsc and files from deb.debian.org (hashes checked); only the .buildinfo is missing" ;;
    esac
  else
    # Everything fetched: the stub engine ran and its non-JSON output is an error.
    check "live: all sources fetched, the stub engine ran" error "$status"
  fi
}
if [[ ${KMR_LIVE:-0} == 1 ]]; then
  # Debian's archive: bookworm's InRelease (checked with debian-archive-keyring when
  # installed), its Sources index, then hello 2.10-3's .dsc and files against their sha256.
  if reachable deb.debian.org; then
    out=$(probe kmrd.debian.json debian-bookworm debian-dsc source=hello source_version=2.10-3 --fetch); rc=$?
    echo "$out" | sed 's/^/  /'
    check "live debian .dsc and files from bookworm's Sources, fetched and hash-checked" 0 "$rc"
    check "live debian .dsc URLs" \
      "file https://deb.debian.org/debian/pool/main/h/hello/hello_2.10-3.dsc 75296f5ef618ae2f1849e22b142a2b5ab52c452ebefa4e7b0564c44617db3790 1721
file https://deb.debian.org/debian/pool/main/h/hello/hello_2.10.orig.tar.gz 31e066137a962676e89f69d1b65382de95a7ef7d914b8cb956f41ea72e0f516b 725946
file https://deb.debian.org/debian/pool/main/h/hello/hello_2.10.orig.tar.gz.asc 4ea69de913428a4034d30dcdcb34ab84f5c4a76acf9040f3091f0d3fac411b60 819
file https://deb.debian.org/debian/pool/main/h/hello/hello_2.10-3.debian.tar.xz 60ee7a466808301fbaa7fea2490b5e7a6d86f598956fb3e79c71b3295dc1f249 12684" \
      "$(grep '^file ' <<< "$out")"
    live_sync_debian
  else
    kmr_skip_part "live debian: deb.debian.org is not reachable from here: not run"
  fi
  live "debian .buildinfo" buildinfos.debian.net kmrd.debian.json debian-bookworm debian-buildinfo \
    source=hello source_version=2.10-3 version=2.10-3 arch=amd64
  live "arch packaging tag" gitlab.archlinux.org kmrd.arch.json arch-core arch-pkgbuild pkgbase=linux version=6.8.7.arch1-1
  live "arch archive" archive.archlinux.org kmrd.arch.json arch-core arch-archive installed=linux-6.8.7.arch1-1-x86_64
  live "nixos channel and nixpkgs tarball" channels.nixos.org kmrd.nixos.json nixos-25.05 nixos-tarball
  if reachable download.opensuse.org; then
    # Tumbleweed keeps only the current source RPM: take its name from the nosrc/ listing.
    srpm=$(curl -sS -m 60 https://download.opensuse.org/source/tumbleweed/repo/oss/nosrc/ | grep -o 'kernel-default-[^"<>]*\.nosrc\.rpm' | head -1)
    live "suse source RPM $srpm" download.opensuse.org kmrd.opensuse-tumbleweed.json tumbleweed-oss suse-srpm sourcerpm="$srpm"
  else
    kmr_skip_part "live suse: download.opensuse.org is not reachable from here: not run"
  fi
else
  echo "live checks: not run (set KMR_LIVE=1 to fetch every expanded URL from the real mirrors)"
fi
exit $fail
