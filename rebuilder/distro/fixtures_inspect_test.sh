#!/bin/bash
# kmr inspect end to end on the fixture repositories made by the distros' real
# tools (makepkg, nix copy, rpmbuild, dpkg-buildpackage): every set must
# report the manifest's module root and modules; tampered copies must fail.
set -euo pipefail
R="${TEST_SRCDIR:-$PWD/..}/kmr"
KMR="$R/rebuilder/cli/kmr"
OUT="${KMR_FIXTURES_CACHE:-/var/tmp/kmr-fixtures}"
if [ ! -f "$OUT/manifest.json" ]; then
  if [ "$(id -u)" != 0 ]; then echo "SKIPPED: fixture repositories need root to build (set KMR_FIXTURES_CACHE)"; exit 0; fi
  "$R/tests/fixtures/repos/build-repos.sh" "$OUT" > "$TEST_TMPDIR/build-repos.log" 2>&1 || {
    tail -30 "$TEST_TMPDIR/build-repos.log"; echo "FAIL: build-repos.sh failed"; exit 1; }
fi
exec python3 "$R/rebuilder/distro/fixtures_inspect_test.py" "$KMR" "$OUT" "$TEST_TMPDIR"
