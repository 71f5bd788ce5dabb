#!/usr/bin/env bash
# Sync attaches what a rebuild needs, end to end, with real processes and the
# fixture repositories (tests/fixtures/repos) served over HTTPS by a test
# server with a test CA, none of them with sources beside its packages:
# - Proxmox (apt): the .buildinfo moved out of the pool into a
#   buildinfos.debian.net-style pool; the .dsc and its files come from the
#   repository's Sources index with their sha256;
# - Arch: the PKGBUILD from a packaging git repository made here, at the
#   release tag (a later commit on the branch changes the PKGBUILD, so only
#   the tag rebuilds identically);
# - SUSE (rpm-md): the .src.rpm from a source repository (rpm-md, made by
#   createrepo_c) that also gives its sha256.
# kmrd syncs the native indexes; each job carries the package URLs plus the
# source list sync made; kmr-worker fetches it with the HTTPS client (git for
# the packaging repository) and runs the real `kmr rebuild --sources`. Every
# set reaches the manifest's verdict. A second kmrd whose buildinfo template
# points at a missing file ends the job environment-unavailable, naming the
# URL tried, without running a build.
set -uo pipefail
R="${TEST_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)/..}/kmr"
[[ -d $R ]] || R=$(cd "$(dirname "$0")/.." && pwd)
source "$R/tests/lib/require.sh"
KMRD=$R/server/kmrd
WORKER=$R/server/kmr-worker
KMR=$R/rebuilder/cli/kmr
for t in openssl python3 curl git dpkg-buildpackage rpmbuild createrepo_c; do kmr_have "$t" || kmr_skip "$t is not installed"; done
fix=$("$R/tests/fixtures/repos/ensure-fixtures.sh"); rc=$?
[[ $rc == 3 ]] && kmr_skip "fixture repositories cannot be built here (not root)"
[[ $rc == 0 ]] || { echo "FAIL: ensure-fixtures.sh failed"; exit 1; }

fail=0
check() { if [[ "$2" == "$3" ]]; then echo "ok: $1"; else echo "FAIL: $1: expected [$2], got [$3]"; fail=1; fi; }
tmp=$(mktemp -d "${TEST_TMPDIR:-/tmp}/kmr-sources-e2e.XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -rf "$tmp"; }
trap cleanup EXIT

# ---- the mirror: the fixture apt repository and a .buildinfo pool ---------------------------
mirror=$tmp/mirror
mkdir -p "$mirror"
cp -r "$fix/proxmox/pristine" "$mirror/pve"
rm -rf "$mirror/pve/sources"
pool=$mirror/pve/pool/pve-no-subscription/p/proxmox-kernel-6.18
bi=$(cd "$pool" && ls *.buildinfo)
mkdir -p "$mirror/buildinfo-pool/p/proxmox-kernel-6.18"
mv "$pool/$bi" "$mirror/buildinfo-pool/p/proxmox-kernel-6.18/"
check "the .buildinfo is no longer beside the package" "" "$(cd "$pool" && ls *.buildinfo 2>/dev/null)"
deb=$(cd "$pool" && ls *.deb)
deb_sha=$(sha256sum "$pool/$deb" | cut -d' ' -f1)
# Arch: the repository without its sources/ directory; the packaging repository
# at tag 6.18.0-1 (pkgver-pkgrel), with a later commit that changes the PKGBUILD.
mkdir -p "$mirror/arch"
cp -r "$fix/arch/pristine/os" "$mirror/arch/os"
pk=$tmp/packaging-work
mkdir -p "$pk" "$tmp/packaging"
cp "$fix/arch/pristine/sources/linux-kmrfix/"* "$pk/"
git_() { git -C "$pk" -c user.name=kmr -c user.email=kmr@kmr.invalid -c commit.gpgsign=false -c tag.gpgsign=false "$@"; }
{ git_ init -q -b main && git_ add -A && git_ commit -qm "6.18.0-1" && git_ tag 6.18.0-1 &&
  echo "# a later change" >> "$pk/PKGBUILD" && git_ commit -qam "next" &&
  git clone -q --bare "$pk" "$tmp/packaging/linux-kmrfix.git"; } || { echo "FAIL: making the packaging repository"; exit 1; }
# SUSE: the binary repository and a source repository directory (src/ and nosrc/ as on download.opensuse.org).
mkdir -p "$mirror/suse" "$mirror/suse-source/src"
cp -r "$fix/suse/pristine/repo" "$mirror/suse/repo"
cp "$fix/suse/pristine/sources/"*.src.rpm "$mirror/suse-source/src/"
createrepo_c -q "$mirror/suse-source" || { echo "FAIL: createrepo_c"; exit 1; }

# ---- TLS: a test CA and a certificate for localhost ------------------------------------------
source "$R/tests/lib/https_mirror.sh"
kmr_https_mirror "$mirror" "$tmp" || { echo "FAIL: the HTTPS mirror did not start"; exit 1; }
pids+=("$KMR_MIRROR_PID")
MIRROR=$KMR_MIRROR_URL
export SSL_CERT_FILE=$KMR_MIRROR_CA
check "the mirror serves over HTTPS with the test CA" 200 \
  "$(curl -sS --cacert "$tmp/ca.pem" -o /dev/null -w '%{http_code}' "$MIRROR/pve/dists/bookworm/Release")"

# ---- kmrd + kmr-worker -----------------------------------------------------------------------
run_kmrd() { # name buildinfo-template distros... -> sets BASE, STATE
  local name=$1 template=$2; shift 2
  local want=$#
  STATE=$tmp/$name/state
  mkdir -p "$STATE"
  WKEY=$tmp/$name/worker.pem
  local pub; pub=$("$WORKER" --gen-key "$WKEY")
  python3 - "$tmp/$name/kmrd.json" "$STATE" "$pub" "$MIRROR" "$template" "$tmp/packaging" "$@" <<'PY'
import json, sys
out, state, pub, mirror, template, packaging, *distros = sys.argv[1:]
repos = {
    "proxmox": {"name": "pve", "distro": "proxmox", "format": "apt", "url": mirror + "/pve/dists/bookworm/Release",
                "packages": ["proxmox-kernel-*"], "architectures": ["amd64"], "sources": {"buildinfo": template}},
    "arch": {"name": "arch", "distro": "arch", "format": "arch", "url": mirror + "/arch/os/x86_64/kmrfix.db",
             "sources": {"pkgbuild_git": "file://" + packaging + "/{project}.git"}},
    "suse": {"name": "suse", "distro": "suse", "format": "rpm-md", "url": mirror + "/suse/repo/",
             "sources": {"srpm": mirror + "/suse-source/{srpm_arch}/{sourcerpm}",
                         "srpm_index": mirror + "/suse-source/"}},
}
for r in repos.values(): r["insecure_unsigned"] = True
json.dump({"state_dir": state, "admin_token": "admin-" + "x" * 20, "http": {"listen": "127.0.0.1:0"},
           "sync_interval_seconds": 3600,
           "workers": [{"name": "w1", "public_key": pub}],
           "repositories": [repos[d] for d in distros]}, open(out, "w"))
PY
  "$KMRD" --config "$tmp/$name/kmrd.json" --check-config >/dev/null 2>&1 || { echo "FAIL: --check-config $name"; fail=1; }
  "$KMRD" --config "$tmp/$name/kmrd.json" --port-file "$tmp/$name/port" > "$tmp/$name/kmrd.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 300); do [[ -s $tmp/$name/port ]] && break; sleep 0.1; done
  BASE=http://127.0.0.1:$(cat "$tmp/$name/port")
  # Wait for the first sync to enqueue the sets.
  for _ in $(seq 300); do
    [[ $(curl -s "$BASE/api/v1/queue" | python3 -c 'import json,sys; print(json.load(sys.stdin)["queued"])' 2>/dev/null) == "$want" ]] && break
    sleep 0.2
  done
}
run_worker() { # name
  "$WORKER" --server "$BASE" --server-key "$STATE/keys/attestation.pem.pub" --key "$WKEY" --name w1 \
    --work-dir "$tmp/$1/work" --rebuild-command "$KMR rebuild" --exit-when-idle > "$tmp/$1/worker.log" 2>&1
}
artifact() { curl -s "$BASE/api/v1/artifacts/sha256/$deb_sha"; }
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }

template="$MIRROR/buildinfo-pool/{source_c}/{source}/{source}_{version}_{arch}.buildinfo"
distros=(proxmox suse)
if kmr_have makepkg; then distros+=(arch); else kmr_skip_part "makepkg is not installed: the Arch part is not run"; fi
run_kmrd good "$template" "${distros[@]}"
check "sync enqueued one set per distro" "${#distros[@]}" "$(curl -s "$BASE/api/v1/queue" | field 'd["queued"]')"
run_worker good
# Every artifact of the pristine sets has the verdict the fixture manifest records.
for d in "${distros[@]}"; do
  while read -r sha file files root; do
    a=$(curl -s "$BASE/api/v1/artifacts/sha256/$sha")
    check "$d $file: status" verified "$(field 'd["verdicts"]["status"]' <<< "$a")"
    check "$d $file: files tier (manifest)" "$files" "$(field 'd["verdicts"]["files"]' <<< "$a")"
    check "$d $file: module root (manifest)" "$root" "$(field 'd["verdicts"]["module_root"]' <<< "$a")"
  done < <(python3 - "$fix/manifest.json" "$d/pristine" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
s = [s for s in m["sets"] if s["set"] == sys.argv[2]][0]
for a in m["artifacts"]:
    if a["set"] == sys.argv[2]:
        print(a["sha256"], a["file"], a["expected"]["files"], s["expected"]["module_root"])
PY
)
done
grep -q "^GET /suse-source/src/kernel-kmrfix-.*\.src\.rpm$" "$tmp/mirror.log" &&
  echo "ok: the worker fetched the source RPM" || { echo "FAIL: the source RPM was not fetched"; fail=1; }
# The worker fetched exactly what sync attached, over HTTPS, from the mirror.
for f in "${bi}" "$(cd "$pool" && ls *.dsc)" "$(cd "$pool" && ls *.orig.tar.gz)" "$(cd "$pool" && ls *.debian.tar.*)"; do
  if grep -q "^GET .*/$f\$" "$tmp/mirror.log"; then echo "ok: the worker fetched $f"; else echo "FAIL: $f was not fetched"; fail=1; fi
done
grep -q "^GET /pve/dists/bookworm/pve-no-subscription/source/Sources" "$tmp/mirror.log" &&
  echo "ok: sync read the Sources index" || { echo "FAIL: sync did not read the Sources index"; fail=1; }

# A buildinfo template pointing at a file the mirror lacks: environment-unavailable with the URL.
run_kmrd missing "$MIRROR/buildinfo-pool/none/{source}_{version}_{arch}.buildinfo" proxmox
run_worker missing
a=$(artifact)
check "missing .buildinfo: status" environment-unavailable "$(field 'd["history"][0]["status"] if d.get("history") else d["verdicts"]["status"]' <<< "$a")"
reason=$(curl -s "$BASE/api/v1/builds/$(field 'd["build"]' <<< "$a")" | field 'd.get("reason")')
want_url="$MIRROR/buildinfo-pool/none/proxmox-kernel-6.18_6.18.0-1_amd64.buildinfo"
case $reason in
  *"$want_url: HTTP 404"*) echo "ok: the reason names the URL tried: $reason" ;;
  *) echo "FAIL: the reason does not name $want_url with its 404: $reason"; fail=1 ;;
esac
# The worker logs "job N: SET (K files)" when it starts the engine; here it must not have.
if grep -q "reported environment-unavailable" "$tmp/missing/worker.log" && ! grep -q " files)$" "$tmp/missing/worker.log"; then
  echo "ok: no rebuild ran without its sources"
else
  echo "FAIL: the worker log does not show the job ending before the engine ran"; fail=1
fi
if ((fail)); then
  for n in good missing; do echo "--- $n kmrd"; tail -20 "$tmp/$n/kmrd.log"; echo "--- $n worker"; tail -30 "$tmp/$n/worker.log"; done
fi
exit $fail
