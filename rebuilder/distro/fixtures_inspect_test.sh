#!/bin/bash
# kmr inspect end to end on the fixture repositories made by the distros' real
# tools (makepkg, nix copy, rpmbuild, dpkg-buildpackage): every set must
# report the manifest's module root and modules; tampered copies must fail.
set -uo pipefail
R="${TEST_SRCDIR:-$PWD/..}/kmr"
KMR="$R/rebuilder/cli/kmr"
source "$R/tests/lib/require.sh"
OUT=$("$R/tests/fixtures/repos/ensure-fixtures.sh" 2> "$TEST_TMPDIR/fixtures.err"); rc=$?
case $rc in
  0) ;;
  3) kmr_skip "$(cat "$TEST_TMPDIR/fixtures.err")" ;;
  *) cat "$TEST_TMPDIR/fixtures.err"; echo "FAIL: fixture repositories could not be built"; exit 1 ;;
esac
exec python3 "$R/rebuilder/distro/fixtures_inspect_test.py" "$KMR" "$OUT" "$TEST_TMPDIR"
