#!/usr/bin/env bash
# Runs the Python end-to-end test against the built kmrd and kmr-worker.
set -euo pipefail
exec python3 "$TEST_SRCDIR/kmr/tests/e2e/e2e_test.py"
