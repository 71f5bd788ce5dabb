#!/usr/bin/env bash
# Runs every kmr test: unit and integration tests through Bazel, fuzz targets
# for a short time, browser tests. Installs missing Debian packages first.
# Ends with "N passed, N failed" (and the parts that were skipped) and exits
# non-zero on any failure.
#
#   ./run-tests.sh          required mode (KMR_REQUIRE_ALL=1): a test that
#                           cannot do its real work fails, naming what is missing
#   ./run-tests.sh --slow   also the slow real-kernel rebuilds: the SUSE and NixOS
#                           shapes, the module-hashes kernel (KMR_SLOW=1)
#   ./run-tests.sh --extra  --slow and the extra real-kernel checks: a second key,
#                           non-determinism, the archive build root, rebuilderd's
#                           harness on real-kernel jobs (KMR_EXTRA=1)
#   KMR_REQUIRE_ALL=0 ./run-tests.sh   a missing tool or input is a skip, listed at the end
set -uo pipefail
cd "$(dirname "$0")" || exit 2
# Root is needed (packages, build users, namespaces): as another user, run
# again through sudo.
if [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null; then
  exec sudo -E "$0" "$@"
fi
top=$PWD
for arg in "$@"; do
  case $arg in
    --slow) export KMR_SLOW=1 ;;
    --extra) export KMR_SLOW=1 KMR_EXTRA=1 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "run-tests.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done
export KMR_REQUIRE_ALL=${KMR_REQUIRE_ALL:-1}
log_dir=${KMR_TEST_LOGS:-$top/.test-logs}
mkdir -p "$log_dir"

phase_start=$SECONDS
phase() {
  echo "== $1 (previous phase took $((SECONDS - phase_start)) s)"
  phase_start=$SECONDS
}

phase "install Debian packages"
deploy/install-deps.sh || exit 2

passed=0
failed=0

phase "bazel build"
if ! bazel build //... >"$log_dir/build.log" 2>&1; then
  grep -E '^(ERROR|FAILED)|error:' "$log_dir/build.log" | head -40
  echo "bazel build failed; see $log_dir/build.log"
  failed=$((failed + 1))
fi

phase "bazel test"
# Tests tagged "slow" (extra real-kernel builds) run only with --slow, tests
# tagged "extra" only with --extra; they are not counted otherwise, and listed
# as not selected.
unselected=()
[[ ${KMR_SLOW:-0} == 1 ]] || unselected+=(slow)
[[ ${KMR_EXTRA:-0} == 1 ]] || unselected+=(extra)
tag_filter=()
if ((${#unselected[@]})); then
  tag_filter=(--test_tag_filters="$(IFS=,; echo "${unselected[*]/#/-}")")
  tags=$(IFS='|'; echo "${unselected[*]}")
  not_selected=$(bazel query "attr(tags, \"\\b($tags)\\b\", tests(//...))" 2>/dev/null | tr '\n' ' ')
fi
# --nocache_test_results: every test runs now (a result cached from an
# earlier run, or from a shared disk cache, is not a pass of this run).
bazel test //... "${tag_filter[@]}" --nocache_test_results --test_env=KMR_SLOW --test_env=KMR_EXTRA --test_summary=short 2>&1 | tee "$log_dir/test.log" | grep -vE '^(\[|INFO: From|Loading|Analyzing)' | tail -80
p=$(grep -cE '^//[^ ]+ +(\(cached\) )?PASSED' "$log_dir/test.log")
failed_re='^//[^ ]+ +(\(cached\) )?(FAILED|TIMEOUT|NO STATUS|FAILED TO BUILD|INCOMPLETE)'
f=$(grep -cE "$failed_re" "$log_dir/test.log")
passed=$((passed + p))
failed=$((failed + f))

if [[ -x tests/fuzz/run-fuzzers.sh ]]; then
  phase "fuzz targets (short runs)"
  if tests/fuzz/run-fuzzers.sh 2>&1 | tee "$log_dir/fuzz.log" | tail -30; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
  fi
fi

if [[ -x tests/browser/run.sh ]]; then
  phase "browser tests"
  if tests/browser/run.sh 2>&1 | tee "$log_dir/browser.log" | tail -30; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "-- the failed browser tests (whole log: $log_dir/browser.log):"
    grep -E -A3 '^FAIL ' "$log_dir/browser.log" | head -40
  fi
fi

phase "lint (clang-tidy on the parsers of untrusted bytes and kmr diff)"
if tests/lint/clang_tidy.sh > "$log_dir/lint.log" 2>&1; then
  passed=$((passed + 1))
else
  failed=$((failed + 1))
fi
tail -20 "$log_dir/lint.log"
# Every include arrow points down a layer, and the committed drawing is current.
if python3 tests/lint/include_graph.py --check-dot rebuilder/include-graph.dot; then
  passed=$((passed + 1))
else
  failed=$((failed + 1))
fi

# Skipped parts: GoogleTest skips and script-level skips both print
# "SKIPPED: <test>: <reason>" (rebuilder/base/require.h, tests/lib/require.sh).
skips=$( { grep -rh --include=test.log -E '^SKIPPED: ' bazel-testlogs/ 2>/dev/null;
           grep -h -E '^SKIPPED: ' "$log_dir"/fuzz.log "$log_dir"/browser.log "$log_dir"/lint.log 2>/dev/null; } | sort -u)
nskips=$(grep -c . <<<"$skips")

# What each failed Bazel test said last, so a failure on a machine that is gone
# can still be read from this output.
while read -r target; do
  rel=${target#//}
  logf="bazel-testlogs/${rel/://}/test.log"
  [[ -f $logf ]] || continue
  echo "== last lines of $target"
  grep -E '^(FAIL|\[  FAILED|AssertionError|Traceback|Error|error:)' "$logf" | head -20 | sed 's/^/  /'
  tail -15 "$logf" | sed 's/^/  | /'
done < <(grep -oE "$failed_re" "$log_dir/test.log" | awk '{print $1}')

phase "done"
echo "total time: $SECONDS s"
[[ -n ${not_selected:-} ]] && echo "not selected (./run-tests.sh --slow or --extra runs them): $not_selected"
echo "$nskips part(s) skipped${skips:+:}"
[[ -n $skips ]] && sed 's/^/  /' <<<"$skips"
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
