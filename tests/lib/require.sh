# Sourced by shell tests. kmr_skip REASON: under KMR_REQUIRE_ALL=1 (set by
# run-tests.sh and CI) a part that cannot run is a failure naming what is
# missing; otherwise it is a skip. Either way the line is greppable:
#   SKIPPED: <test>: <reason>             (skip, exit 0 from kmr_skip_test)
#   FAILED (required): <test>: <reason>   (required mode)
# kmr_skip_part REASON skips one part and returns (the test goes on);
# kmr_skip REASON ends the whole test.

# kmr_have TOOL: TOOL is an executable regular file on PATH (bash's
# `command -v` also reports non-executable files).
kmr_have() { local p; p=$(type -P "$1") && [[ -f $p && -x $p ]]; }

kmr_required() { [[ -n ${KMR_REQUIRE_ALL:-} && ${KMR_REQUIRE_ALL} != 0 ]]; }

kmr_test_name() { echo "${TEST_TARGET:-$(basename "$0")}"; }

kmr_skip_part() {
  if kmr_required; then
    echo "FAILED (required): $(kmr_test_name): $*" >&2
    exit 1
  fi
  echo "SKIPPED: $(kmr_test_name): $*"
}

kmr_skip() {
  kmr_skip_part "$@"
  exit 0
}
