#!/usr/bin/env bash
# Runs every kmr test: unit and integration tests through Bazel, fuzz targets
# for a short time, browser tests. Installs missing Debian packages first.
# Ends with "N passed, N failed" and exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")"
top=$PWD
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
bazel test //... --test_summary=short 2>&1 | tee "$log_dir/test.log" | grep -vE '^(\[|INFO: From|Loading|Analyzing)' | tail -80
p=$(grep -cE '^//[^ ]+ +(\(cached\) )?PASSED' "$log_dir/test.log")
f=$(grep -cE '^//[^ ]+ +(\(cached\) )?(FAILED|TIMEOUT|NO STATUS|FAILED TO BUILD|INCOMPLETE)' "$log_dir/test.log")
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
  fi
fi

phase "done"
echo "total time: $SECONDS s"
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
