#!/usr/bin/env bash
# The ingestion, close, API key and credit integration tests against a local endpoint in its fault mode
# (docs/testing.md, "The local endpoint's fault mode"): transactions cancelled by conflicts,
# throttled requests, indexes that lag their tables, and several handler calls side by side
# where the tests would run one. scripts/test.sh runs it after the normal run; alone:
#   bash scripts/faults.sh                      # the default settings below
#   METERLINE_MOTO_SEED=7 bash scripts/faults.sh  # another throttling sequence
# Extra arguments go to `cargo test` (e.g. a test name filter).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
ensure_venv
log "fault mode: the emulator's own tests"
"$VENV/bin/python" -m unittest scripts/test_moto_faults.py
export METERLINE_MOTO_FAULTS=1
export METERLINE_MOTO_CONFLICT_WINDOW_MS="${METERLINE_MOTO_CONFLICT_WINDOW_MS:-30}"
export METERLINE_MOTO_THROTTLE_RATE="${METERLINE_MOTO_THROTTLE_RATE:-0.01}"
export METERLINE_MOTO_INDEX_LAG_MS="${METERLINE_MOTO_INDEX_LAG_MS:-100}"
export METERLINE_MOTO_SEED="${METERLINE_MOTO_SEED:-1}"
export METERLINE_TEST_PARALLEL="${METERLINE_TEST_PARALLEL:-4}"
start_moto moto-faults
export METERLINE_PYTHON="$VENV/bin/python"
# The calls of this run are checked apart: each must be allowed (a retry is the same call), but
# they take no part in the full suite's "every grant used".
CALL_LOG="$LOCAL/aws-calls-faults.jsonl"
rm -f "$CALL_LOG"
log "fault mode: conflict window ${METERLINE_MOTO_CONFLICT_WINDOW_MS} ms, throttle rate ${METERLINE_MOTO_THROTTLE_RATE}, index lag ${METERLINE_MOTO_INDEX_LAG_MS} ms, seed ${METERLINE_MOTO_SEED}, ${METERLINE_TEST_PARALLEL} handler calls at once"
# --workspace, as in scripts/test.sh, so that the build is the one the normal run made.
METERLINE_AWS_CALL_LOG="$CALL_LOG" cargo test --workspace --locked --test ingestion --test billing --test keys --test credits "$@"
touch "$CALL_LOG"
"$VENV/bin/python" "$ROOT/scripts/iam_check.py" --calls "$CALL_LOG" --calls-only
