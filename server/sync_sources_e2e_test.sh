#!/usr/bin/env bash
# Sync attaches what a rebuild needs, end to end, with real processes:
# the fixture Proxmox apt repository (tests/fixtures/repos) served over HTTPS
# by a test server with a test CA, its .buildinfo moved out of the pool into
# a buildinfos.debian.net-style pool on the same server. kmrd syncs the apt
# index; the job carries only the package URL plus the source list sync made
# (the .dsc and its files from the repository's Sources index with their
# sha256, the .buildinfo from the template); kmr-worker downloads them with
# the HTTPS client and runs the real `kmr rebuild --sources`. The set reaches
# the manifest's verdict. A second kmrd whose buildinfo template points at a
# missing file ends the job environment-unavailable, naming the URL tried.
set -uo pipefail
R="${TEST_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)/..}/kmr"
[[ -d $R ]] || R=$(cd "$(dirname "$0")/.." && pwd)
source "$R/tests/lib/require.sh"
KMRD=$R/server/kmrd
WORKER=$R/server/kmr-worker
KMR=$R/rebuilder/cli/kmr
for t in openssl python3 curl dpkg-buildpackage; do kmr_have "$t" || kmr_skip "$t is not installed"; done
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

# ---- TLS: a test CA and a certificate for localhost ------------------------------------------
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=kmr test CA" -keyout "$tmp/ca.key" -out "$tmp/ca.pem" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign >/dev/null 2>&1
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$tmp/srv.key" -out "$tmp/srv.csr" >/dev/null 2>&1
printf 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > "$tmp/ext"
openssl x509 -req -in "$tmp/srv.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -CAcreateserial -days 2 \
  -extfile "$tmp/ext" -out "$tmp/srv.pem" >/dev/null 2>&1 || { echo "FAIL: openssl"; exit 1; }
python3 - "$mirror" "$tmp/srv.pem" "$tmp/srv.key" "$tmp/mirror.port" "$tmp/mirror.log" <<'PY' &
import functools, http.server, ssl, sys
root, cert, key, port_file, log = sys.argv[1:]
class H(http.server.SimpleHTTPRequestHandler):
    def log_message(self, fmt, *args):
        open(log, "a").write("%s %s\n" % (self.command, self.path))
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(H, directory=root))
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
open(port_file, "w").write(str(srv.server_address[1]))
srv.serve_forever()
PY
pids+=($!)
for _ in $(seq 100); do [[ -s $tmp/mirror.port ]] && break; sleep 0.1; done
mport=$(cat "$tmp/mirror.port")
MIRROR=https://localhost:$mport
export SSL_CERT_FILE=$tmp/ca.pem
check "the mirror serves over HTTPS with the test CA" 200 \
  "$(curl -sS --cacert "$tmp/ca.pem" -o /dev/null -w '%{http_code}' "$MIRROR/pve/dists/bookworm/Release")"

# ---- kmrd + kmr-worker -----------------------------------------------------------------------
run_kmrd() { # name buildinfo-template -> sets BASE, STATE
  local name=$1 template=$2
  STATE=$tmp/$name/state
  mkdir -p "$STATE"
  WKEY=$tmp/$name/worker.pem
  local pub; pub=$("$WORKER" --gen-key "$WKEY")
  python3 - "$tmp/$name/kmrd.json" "$STATE" "$pub" "$MIRROR" "$template" <<'PY'
import json, sys
out, state, pub, mirror, template = sys.argv[1:]
json.dump({"state_dir": state, "admin_token": "admin-" + "x" * 20, "http": {"listen": "127.0.0.1:0"},
           "sync_interval_seconds": 3600,
           "workers": [{"name": "w1", "public_key": pub}],
           "repositories": [{"name": "pve", "distro": "proxmox", "format": "apt",
                             "url": mirror + "/pve/dists/bookworm/Release", "insecure_unsigned": True,
                             "packages": ["proxmox-kernel-*"], "architectures": ["amd64"],
                             "sources": {"buildinfo": template}}]}, open(out, "w"))
PY
  "$KMRD" --config "$tmp/$name/kmrd.json" --check-config >/dev/null 2>&1 || { echo "FAIL: --check-config $name"; fail=1; }
  "$KMRD" --config "$tmp/$name/kmrd.json" --port-file "$tmp/$name/port" > "$tmp/$name/kmrd.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 300); do [[ -s $tmp/$name/port ]] && break; sleep 0.1; done
  BASE=http://127.0.0.1:$(cat "$tmp/$name/port")
  # Wait for the first sync to enqueue the set.
  for _ in $(seq 300); do
    [[ $(curl -s "$BASE/api/v1/queue" | python3 -c 'import json,sys; print(json.load(sys.stdin)["queued"])' 2>/dev/null) == 1 ]] && break
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
run_kmrd good "$template"
check "sync enqueued the set" 1 "$(curl -s "$BASE/api/v1/queue" | field 'd["queued"]')"
run_worker good
a=$(artifact)
check "verdict status" verified "$(field 'd["verdicts"]["status"]' <<< "$a")"
check "files tier (manifest: identical)" identical "$(field 'd["verdicts"]["files"]' <<< "$a")"
check "module root (manifest: match)" match "$(field 'd["verdicts"]["module_root"]' <<< "$a")"
# The worker fetched exactly what sync attached, over HTTPS, from the mirror.
for f in "${bi}" "$(cd "$pool" && ls *.dsc)" "$(cd "$pool" && ls *.orig.tar.gz)" "$(cd "$pool" && ls *.debian.tar.*)"; do
  if grep -q "^GET .*/$f\$" "$tmp/mirror.log"; then echo "ok: the worker fetched $f"; else echo "FAIL: $f was not fetched"; fail=1; fi
done
grep -q "^GET /pve/dists/bookworm/pve-no-subscription/source/Sources" "$tmp/mirror.log" &&
  echo "ok: sync read the Sources index" || { echo "FAIL: sync did not read the Sources index"; fail=1; }

# A buildinfo template pointing at a file the mirror lacks: environment-unavailable with the URL.
run_kmrd missing "$MIRROR/buildinfo-pool/none/{source}_{version}_{arch}.buildinfo"
run_worker missing
a=$(artifact)
check "missing .buildinfo: status" environment-unavailable "$(field 'd["history"][0]["status"] if d.get("history") else d["verdicts"]["status"]' <<< "$a")"
reason=$(curl -s "$BASE/api/v1/builds/$(field 'd["build"]' <<< "$a")" | field 'd.get("reason")')
want_url="$MIRROR/buildinfo-pool/none/proxmox-kernel-6.18_6.18.0-1_amd64.buildinfo"
case $reason in
  *"$want_url: HTTP 404"*) echo "ok: the reason names the URL tried: $reason" ;;
  *) echo "FAIL: the reason does not name $want_url with its 404: $reason"; fail=1 ;;
esac
if grep -q "job.*environment-unavailable" "$tmp/missing/worker.log" && ! grep -q "dpkg-buildpackage" "$tmp/missing/worker.log"; then
  echo "ok: no rebuild ran without its sources"
fi
if ((fail)); then
  for n in good missing; do echo "--- $n kmrd"; tail -20 "$tmp/$n/kmrd.log"; echo "--- $n worker"; tail -30 "$tmp/$n/worker.log"; done
fi
exit $fail
