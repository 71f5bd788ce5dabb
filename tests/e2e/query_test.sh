#!/usr/bin/env bash
# Runs the Python end-to-end test of `kmr query` against two real kmrd instances.
set -euo pipefail
exec python3 "$TEST_SRCDIR/kmr/tests/e2e/query_test.py"
