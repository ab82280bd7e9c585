#!/usr/bin/env bash
# Runs the whole test suite: unit and property tests, then the integration tests against a
# local AWS endpoint (moto_server) that this script starts and stops, then (with no arguments)
# the ingestion, close and credit tests against a local endpoint in its fault mode (scripts/faults.sh),
# the contract test of the running API against its OpenAPI document (scripts/contract.sh), a
# generated client's billing flow (scripts/client_flow.sh) and the usage stream's end-to-end test
# under cargo lambda watch (scripts/stream_e2e.sh).
# The integration tests record every AWS call each function makes (.local/aws-calls.jsonl);
# scripts/iam_check.py then checks the calls against the template's roles: every call allowed
# and, after the whole suite, every grant used (docs/security.md, "Least privilege (IAM)").
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
ensure_venv
start_moto
export METERLINE_PYTHON="$VENV/bin/python"
CALL_LOG="$LOCAL/aws-calls.jsonl"
rm -f "$CALL_LOG"
# `--workspace` would override a `-p` given as an argument and test every crate: keep it only
# when no package is named, so `bash scripts/test.sh -p api` builds and tests the API alone.
workspace=--workspace
for arg in "$@"; do
  case "$arg" in -p | -p* | --package | --package=*) workspace= ;; esac
done
log "cargo test $workspace $*"
METERLINE_AWS_CALL_LOG="$CALL_LOG" cargo test $workspace --locked "$@"
log "IAM check: the checker's own tests, then the recorded calls against the template's roles"
"$VENV/bin/python" -m unittest scripts/test_iam_check.py
if [ "$#" -eq 0 ]; then
  "$VENV/bin/python" "$ROOT/scripts/iam_check.py" --calls "$CALL_LOG"
else
  # Part of the suite ran: check that each recorded call is allowed, not that each grant is used.
  touch "$CALL_LOG"
  "$VENV/bin/python" "$ROOT/scripts/iam_check.py" --calls "$CALL_LOG" --calls-only
fi
# The full suite (no arguments) runs the ingestion, close and credit tests again against a second
# local endpoint in its fault mode (conflicts, throttling, lagging indexes; several handler
# calls at once), then checks the running API against its OpenAPI document.
if [ "$#" -eq 0 ]; then
  log "fault mode: the ingestion, close and credit tests against a conflicting, throttling endpoint"
  timeout -k 30 600 bash "$ROOT/scripts/faults.sh" || {
    tail -n 40 "$LOCAL/moto-faults.log" >&2
    exit 1
  }
  log "contract test: schemathesis against the API under cargo lambda watch"
  # Each run under the emulator is bounded, so that a stuck emulator fails with its log
  # instead of holding CI until CI's own limit.
  # The run is seeded, so a defect of the API or its document fails the second run as the first; once more under
  # a fresh emulator only for what the emulator itself does now and then (a 500 of its own, with
  # a `https://httpstatuses.com/500` body no route of the API writes, seen under a loaded machine).
  if ! timeout -k 30 900 bash "$ROOT/scripts/contract.sh"; then
    tail -n 40 "$LOCAL/contract-watch.log" >&2
    log "contract: failed; once more under a fresh emulator"
    timeout -k 30 900 bash "$ROOT/scripts/contract.sh" || {
      tail -n 40 "$LOCAL/contract-watch.log" >&2
      exit 1
    }
  fi
  log "client flow: a client generated from /openapi.json drives a billing flow"
  timeout -k 30 1200 bash "$ROOT/scripts/client_flow.sh" || {
    tail -n 40 "$LOCAL/client-flow-watch.log" >&2
    exit 1
  }
  log "stream end-to-end test: the functions under cargo lambda watch, a real SSE client"
  # `cargo lambda watch` does not restart a function whose process ended: once, its runtime
  # client's connection to the emulator closed mid-request ("connection closed before message
  # completed"), the usage-stream process exited and every later request waited. That is the
  # emulator's, not the function's (Lambda starts a new environment): one fresh run before failing.
  if ! timeout -k 30 900 bash "$ROOT/scripts/stream_e2e.sh"; then
    tail -n 40 "$LOCAL/stream-watch.log" >&2
    log "stream e2e: failed; once more under a fresh emulator"
    timeout -k 30 900 bash "$ROOT/scripts/stream_e2e.sh" || {
      tail -n 40 "$LOCAL/stream-watch.log" >&2
      exit 1
    }
  fi
fi
