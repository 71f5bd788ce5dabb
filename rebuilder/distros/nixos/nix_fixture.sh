# Sourced by the NixOS shell tests (after tests/lib/require.sh, with T set):
#   kmr_nix_fixture TOOL...
# checks the tools (kmr_skip when one is missing), makes sure the fixture
# repositories exist (tests/fixtures/repos/ensure-fixtures.sh) and sets
#   FX    the fixture root      SET  its pristine NixOS set (cache/, sources/)
#   KEY   the cache's public key
#   PKGS  the shipped packages: the outputs' narinfos (their NARs beside them)
#   DRV   their Deriver, a full store path
kmr_nix_fixture() {
  local t rc
  for t in "$@"; do kmr_have "$t" || kmr_skip "$t not installed"; done
  FX=$("$R/tests/fixtures/repos/ensure-fixtures.sh" 2> "$T/fixtures.err"); rc=$?
  case $rc in
    0) ;;
    3) kmr_skip "$(cat "$T/fixtures.err")" ;;
    *) cat "$T/fixtures.err"; echo "FAIL: fixture repositories could not be built"; exit 1 ;;
  esac
  SET=$FX/nixos/pristine
  KEY=$FX/nixos/cache-key.pub
  mapfile -t PKGS < <(python3 - "$FX/manifest.json" <<'PY'
import json, os, sys
m = json.load(open(sys.argv[1])); root = os.path.dirname(sys.argv[1])
s = next(s for s in m["sets"] if s["repo"] == "nixos/pristine/cache")
for p in s["packages"]:
    print(os.path.join(root, p["path"]))
PY
)
  DRV=/nix/store/$(sed -n 's/^Deriver: //p' "${PKGS[0]}")
}
