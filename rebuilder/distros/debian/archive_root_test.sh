#!/bin/bash
# Build roots from Debian's archive (mmdebstrap, Release signatures checked
# with debian-archive-keyring), on the fixture Proxmox package:
#  1. its .buildinfo as recorded: every pinned version the archive no longer
#     has is reported (environment-unavailable), with the index URLs tried;
#     a bogus "make (= 9.9-9)" is named the same way;
#  2. the same .buildinfo with those versions moved to the archive's current
#     ones: the root is made, its dpkg database equals the pinned set
#     (compared here by an independent script), the sandbox sees the root's
#     /usr and not the host's, and the rebuild reaches the manifest's verdict;
#  3. a second root request for the same set is a cache hit.
# Needs the network (deb.debian.org): without it this fails under
# KMR_REQUIRE_ALL=1 and is skipped otherwise.
set -uo pipefail
R="${TEST_SRCDIR:-$PWD/..}/kmr"
KMR="$R/rebuilder/cli/kmr"
PROBE="$R/rebuilder/distros/debian/sandbox_probe"
source "$R/tests/lib/require.sh"
T=${TEST_TMPDIR:-$(mktemp -d)}
kmr_have mmdebstrap || kmr_skip "mmdebstrap not installed"
kmr_have apt-cache || kmr_skip "apt-cache not installed"
[[ $(id -u) == 0 ]] || kmr_skip "making build roots needs root here"
MIRROR=${KMR_DEBIAN_MIRROR:-http://deb.debian.org/debian}
curl -fsS -o /dev/null --max-time 30 "$MIRROR/dists/bookworm/InRelease" || kmr_skip "Debian archive $MIRROR unreachable"
FX=$("$R/tests/fixtures/repos/ensure-fixtures.sh" 2> "$T/fixtures.err"); rc=$?
case $rc in
  0) ;;
  3) kmr_skip "$(cat "$T/fixtures.err")" ;;
  *) cat "$T/fixtures.err"; echo "FAIL: fixture repositories could not be built"; exit 1 ;;
esac
fail=0
check() { if eval "$2"; then echo "ok: $1"; else echo "FAIL: $1"; fail=1; fi; }
DIR="$FX/proxmox/pristine/pool/pve-no-subscription/p/proxmox-kernel-6.18"
DEB="$DIR/proxmox-kernel-6.18.0-kmrfix_6.18.0-1_amd64.deb"
BI="$DIR/proxmox-kernel-6.18_6.18.0-1_amd64.buildinfo"
export KMR_BUILDROOT_CACHE=${KMR_BUILDROOT_CACHE:-/var/tmp/kmr-buildroots}
export KMR_REBUILD_DIR="$T/work" KMR_PROGRESS=1

# 1a. A bogus pinned version.
mkdir -p "$T/bogus" && cp "$DIR"/*.dsc "$DIR"/*.tar.* "$T/bogus/"
sed 's/^ make (= [^)]*)/ make (= 9.9-9)/' "$BI" > "$T/bogus/$(basename "$BI")"
grep -q '^ make (= 9.9-9)' "$T/bogus/$(basename "$BI")" || { echo "FAIL: no make in the fixture .buildinfo"; exit 1; }
"$KMR" rebuild --json --build-root archive --sources "$T/bogus" "$DEB" > "$T/bogus.json" 2> "$T/bogus.err"
python3 - "$T/bogus.json" "$MIRROR" <<'PY' || fail=1
import json, sys
j = json.load(open(sys.argv[1])); mirror = sys.argv[2]
assert j["status"] == "environment-unavailable", j["status"]
hit = [m for m in j["missing"] if m.startswith("make=9.9-9 ")]
assert hit, j["missing"]
assert mirror + "/dists/bookworm/main/binary-amd64/Packages.xz" in hit[0], hit[0]
print("ok: bogus version named:", hit[0][:160])
PY

# 1b. The .buildinfo as recorded: versions the archive has superseded are
# named; each one is checked against the host's apt lists of the same archive.
"$KMR" rebuild --json --build-root archive "$DEB" > "$T/recorded.json" 2> "$T/recorded.err"
python3 - "$T/recorded.json" "$BI" "$T/rebased.buildinfo" <<'PY' || fail=1
import json, re, subprocess, sys
j = json.load(open(sys.argv[1])); text = open(sys.argv[2]).read()
pinned = dict(re.findall(r"^ (\S+) \(= ([^)]+)\)", text, re.M))
if j["status"] == "verdict":
    print("ok: every recorded version is still in the archive"); missing = []
else:
    assert j["status"] == "environment-unavailable", (j["status"], j.get("reason"))
    missing = [m.split(" ")[0] for m in j["missing"]]
    assert missing and all("Packages.xz" in m for m in j["missing"]), j["missing"]
for nv in missing:
    n, v = nv.split("=", 1)
    assert pinned.get(n) == v, nv
    madison = subprocess.run(["apt-cache", "madison", n], capture_output=True, text=True).stdout
    have = [l.split("|")[1].strip() for l in madison.splitlines() if "deb.debian.org" in l]
    assert v not in have, f"{nv} reported missing but the archive lists it"
    new = subprocess.run(["apt-cache", "policy", n], capture_output=True, text=True).stdout
    cand = re.search(r"Candidate: (\S+)", new).group(1)
    text = text.replace(f" {n} (= {v})", f" {n} (= {cand})")
open(sys.argv[3], "w").write(text)
print(f"ok: {len(missing)} superseded pinned version(s) reported with their URLs")
PY

# 2. The rebased .buildinfo: root, sandbox, rebuild.
mkdir -p "$T/rebased" && cp "$DIR"/*.dsc "$DIR"/*.tar.* "$T/rebased/"
cp "$T/rebased.buildinfo" "$T/rebased/$(basename "$BI")"
start=$(date +%s)
"$KMR" rebuild --json --keep --build-root archive --sources "$T/rebased" "$DEB" > "$T/rebuild.json" 2> "$T/rebuild.err"
echo "rebuild in the archive root: $(( $(date +%s) - start )) s"
cat "$T/rebuild.err"
ROOT=$(sed -n 's/^.*build root \(\/[^ ]*\) (.*$/\1/p' "$T/rebuild.err" | tail -1)
check "build root path reported" '[[ -n $ROOT && -d $ROOT/usr ]]'
python3 - "$T/rebuild.json" "$FX/manifest.json" <<'PY' || fail=1
import json, sys
j = json.load(open(sys.argv[1])); m = json.load(open(sys.argv[2]))
s = [x for x in m["sets"] if x["set"] == "proxmox/pristine"][0]
assert j["status"] == "verdict", (j["status"], j.get("reason"), j.get("missing"))
assert j["files"] == s["expected"]["files"], (j["files"], s["expected"])
mr = j["module_root"] if isinstance(j["module_root"], str) else j["module_root"]["verdict"]
assert mr == s["expected"]["module_root"], j["module_root"]
print("ok: rebuild in the archive root:", j["files"], "module_root", mr)
PY
if [[ -n $ROOT ]]; then
  # The installed set equals the pinned set (independent of the C++ check).
  dpkg-query --admindir="$ROOT/var/lib/dpkg" -W -f '${Package} ${Version}\n' | sort > "$T/root.set"
  grep -oP '^ \S+ \(= [^)]+\)' "$T/rebased.buildinfo" | sed -E 's/^ (\S+) \(= ([^)]+)\)/\1 \2/' | sort > "$T/pinned.set"
  check "root's dpkg database equals Installed-Build-Depends" 'diff "$T/pinned.set" "$T/root.set"'
  # No host /usr inside: dpkg differs between root and host when the
  # versions do; a host-only file is absent.
  "$PROBE" "$ROOT" "$T/probe" /bin/sh -c 'sha256sum /usr/bin/dpkg /usr/bin/gcc-12; dpkg-query -W -f "\${Version}" dpkg; echo; ls /usr/bin/bazel /usr/bin/mmdebstrap 2>&1; true' > "$T/probe.out" 2>&1
  cat "$T/probe.out"
  check "sandbox /usr/bin/dpkg is the root's" 'grep -q "$(sha256sum < "$ROOT/usr/bin/dpkg" | cut -d" " -f1)  /usr/bin/dpkg" "$T/probe.out"'
  check "sandbox dpkg database is the root's" 'grep -qx "$(dpkg-query --admindir="$ROOT/var/lib/dpkg" -W -f "\${Version}" dpkg)" "$T/probe.out"'
  if [[ -e /usr/bin/bazel ]]; then check "host-only /usr/bin/bazel absent inside" 'grep -q "/usr/bin/bazel.*No such file" "$T/probe.out"'; fi
  check "host-only /usr/bin/mmdebstrap absent inside" 'grep -q "/usr/bin/mmdebstrap.*No such file" "$T/probe.out"'
  if ! cmp -s "$ROOT/usr/bin/dpkg" /usr/bin/dpkg; then
    check "sandbox dpkg is not the host's" '! grep -q "$(sha256sum < /usr/bin/dpkg | cut -d" " -f1)  /usr/bin/dpkg" "$T/probe.out"'
  fi
  # 3. Cache hit.
  "$KMR" rebuild --json --build-root archive --sources "$T/rebased" "$DEB" > /dev/null 2> "$T/again.err"
  check "second request is a cache hit" 'grep -q "build root $ROOT (cached" "$T/again.err"'
  grep "build root" "$T/again.err"
fi

# 4. No --sources: the package alone, its repository (InRelease signed here
# with a throwaway key) over HTTPS with a test CA; the rebased .buildinfo from
# a .buildinfo pool URL template. The .dsc and its files come from the signed
# Sources index; the rebuild reaches the same verdict in the cached root.
# The recorded .buildinfo the same way: its superseded versions are named.
if kmr_have gpg && kmr_have openssl; then
  # gpg-agent's socket lives in GNUPGHOME: a path below Bazel's deep test tmp is
  # longer than a Unix socket path may be, so the keyring gets a short one.
  G=$(mktemp -d /tmp/kmr-gpg.XXXXXX) && chmod 700 "$G"
  mkdir -p "$T/alone" "$T/mirror/pool" "$T/mirror/recorded"
  cp "$DEB" "$T/alone/"
  cp -r "$FX/proxmox/pristine" "$T/mirror/pve" && rm -rf "$T/mirror/pve/sources"
  rm -f "$T/mirror/pve/pool/pve-no-subscription/p/proxmox-kernel-6.18/"*.buildinfo
  cp "$T/rebased.buildinfo" "$T/mirror/pool/$(basename "$BI")"
  cp "$BI" "$T/mirror/recorded/"
  GNUPGHOME=$G gpg --batch --quiet --pinentry-mode loopback --passphrase '' \
    --quick-gen-key "kmr archive_root_test <t@kmr.invalid>" ed25519 sign never 2>/dev/null &&
    GNUPGHOME=$G gpg --batch --export > "$T/repo-key.gpg" &&
    GNUPGHOME=$G gpg --batch --yes --clearsign -o "$T/mirror/pve/dists/bookworm/InRelease" \
      "$T/mirror/pve/dists/bookworm/Release"
  GNUPGHOME=$G gpgconf --kill gpg-agent 2>/dev/null
  rm -rf "$G"
  source "$R/tests/lib/https_mirror.sh"
  if kmr_https_mirror "$T/mirror" "$T"; then
    export SSL_CERT_FILE=$KMR_MIRROR_CA
    repo_args=(--repository "$KMR_MIRROR_URL/pve/dists/bookworm/InRelease" --repository-key "$T/repo-key.gpg")
    "$KMR" rebuild --json --build-root archive "${repo_args[@]}" \
      --buildinfo-url "$KMR_MIRROR_URL/pool/{source}_{version}_{arch}.buildinfo" \
      "$T/alone/$(basename "$DEB")" > "$T/nosources.json" 2> "$T/nosources.err"
    python3 - "$T/nosources.json" "$FX/manifest.json" <<'PY2' || fail=1
import json, sys
j = json.load(open(sys.argv[1])); m = json.load(open(sys.argv[2]))
s = [x for x in m["sets"] if x["set"] == "proxmox/pristine"][0]
assert j["status"] == "verdict", (j["status"], j.get("reason"), j.get("missing"))
assert j["files"] == s["expected"]["files"], (j["files"], s["expected"])
print("ok: no --sources, inputs from the signed repository over HTTPS:", j["files"])
PY2
    check "no --sources: the .dsc and its files were fetched" \
      'grep -q "^GET /pve/pool/.*\.dsc$" "$T/mirror.log" && grep -q "^GET /pve/pool/.*orig.tar.gz$" "$T/mirror.log"'
    "$KMR" rebuild --json --build-root archive "${repo_args[@]}" \
      --buildinfo-url "$KMR_MIRROR_URL/recorded/{source}_{version}_{arch}.buildinfo" \
      "$T/alone/$(basename "$DEB")" > "$T/nosources-recorded.json" 2>/dev/null
    python3 - "$T/nosources-recorded.json" "$T/recorded.json" <<'PY2' || fail=1
import json, sys
j, before = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert j["status"] == before["status"], (j["status"], before["status"])
assert sorted(j.get("missing", [])) == sorted(before.get("missing", [])), (j.get("missing"), before.get("missing"))
print(f"ok: no --sources, the recorded .buildinfo: {j['status']}, {len(j.get('missing', []))} missing, as with it beside the package")
PY2
    kill "$KMR_MIRROR_PID" 2>/dev/null
  else
    echo "FAIL: the HTTPS mirror did not start"; fail=1
  fi
else
  kmr_skip_part "gpg or openssl not installed: the no --sources case is not run"
fi
[[ $fail == 0 ]] && echo "1 passed, 0 failed" || echo "0 passed, 1 failed"
exit $fail
