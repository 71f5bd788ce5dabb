#!/bin/bash
# kmr inspect on the newest Debian 12 linux-image-6.1.0-*-amd64 (signed).
set -euo pipefail
KMR="${TEST_SRCDIR:-$PWD/..}/kmr/rebuilder/cli/kmr"
[ -x "$KMR" ] || KMR="$PWD/rebuilder/cli/kmr"
CACHE="${KMR_TEST_CACHE:-/var/cache/kmr-test}"

R="${TEST_SRCDIR:-$PWD/..}/kmr"; [ -f "$R/tests/lib/require.sh" ] || R=$PWD
source "$R/tests/lib/require.sh"
skip() { kmr_skip "$@"; }

command -v apt-cache >/dev/null || skip "apt-cache not available"
PKG=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' 2>/dev/null | awk '{print $1}' | sort -V | tail -1)
if [ -z "$PKG" ] && [ "$(id -u)" = 0 ]; then
  apt-get update -qq >/dev/null 2>&1 || true
  PKG=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' 2>/dev/null | awk '{print $1}' | sort -V | tail -1)
fi
[ -n "$PKG" ] || skip "no linux-image-6.1.0-*-amd64 in the apt lists (run apt-get update)"
mkdir -p "$CACHE" 2>/dev/null || skip "cannot create cache $CACHE"
DEB=$(ls "$CACHE"/"${PKG}"_*_amd64.deb 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$DEB" ]; then
  (cd "$CACHE" && timeout 600 apt-get download "$PKG" >/dev/null 2>&1 ||
   { apt-get update -qq >/dev/null 2>&1 && timeout 600 apt-get download "$PKG" >/dev/null 2>&1; }) || skip "apt-get download $PKG failed (offline?)"
  DEB=$(ls "$CACHE"/"${PKG}"_*_amd64.deb 2>/dev/null | sort -V | tail -1 || true)
fi
[ -n "$DEB" ] || skip "could not fetch $PKG"
echo "package: $DEB"

OUT="${TEST_TMPDIR:-/tmp}/inspect.json"
set +e
"$KMR" inspect --json "$DEB" > "$OUT"
RC=$?
set -e
cat "$OUT" | head -60
[ "$RC" -eq 0 ] || { echo "FAIL: kmr inspect exited $RC"; exit 1; }

python3 - "$OUT" "${PKG#linux-image-}" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
rel = sys.argv[2]
errors = []
def check(cond, what):
    if not cond:
        errors.append(what)
check(j["format"] == "debian", "format is debian")
check(j["kernel_release"] == rel, f"kernel_release == {rel} (got {j['kernel_release']})")
m = j["modules"]
check(m["count"] >= 4000, f"4000+ modules (got {m['count']})")
check(m["trailers"]["pkcs7"] == m["count"], f"all modules PKCS#7 (got {m['trailers']})")
check(m["trailers"]["merkle"] == 0 and m["trailers"]["none"] == 0, "no merkle/none trailers")
check(j["module_hashes"] is None, "module hashes absent")
check(j["image"] == f"boot/vmlinuz-{rel}", f"image path (got {j['image']})")
check(j["image_info"]["kind"] == "bzimage", "image is a bzImage")
check(j["image_info"]["payload_is_x86_64_elf"] is True, "bzImage payload is an x86-64 ELF")
check(j["modules_order"] == m["count"], "modules.order lists every module")
check(j["ok"] is True, "ok")
if errors:
    print("FAIL:\n  " + "\n  ".join(errors))
    sys.exit(1)
print(f"OK: {rel}: {m['count']} modules, all PKCS#7, module hashes absent, bzImage -> x86-64 ELF")
PY

# With --full-image the whole payload is decompressed and searched: still no root.
"$KMR" inspect --json --full-image "$DEB" > "$OUT.full"
python3 - "$OUT.full" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
assert j["image_info"]["root_searched"] is True, j["image_info"]
assert j["image_info"]["module_hashes_root"] is None, j["image_info"]
assert j["module_hashes"] is None
assert j["image_info"]["payload_is_x86_64_elf"] is True
print("OK: --full-image: payload decompressed and searched, no module-hashes root")
PY
