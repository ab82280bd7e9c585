#!/usr/bin/env bash
# Runs the whole test suite: unit and property tests, then the integration tests against a
# local AWS endpoint (moto_server) that this script starts and stops, then (with no arguments)
# the contract test of the running API against its OpenAPI document (scripts/contract.sh), a
# generated client's billing flow (scripts/client_flow.sh) and the usage stream's end-to-end test
# under cargo lambda watch (scripts/stream_e2e.sh).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
ensure_venv
start_moto
export METERLINE_PYTHON="$VENV/bin/python"
log "cargo test --workspace"
cargo test --workspace --locked "$@"
# The full suite (no arguments) also checks the running API against its OpenAPI document.
if [ "$#" -eq 0 ]; then
  log "contract test: schemathesis against the API under cargo lambda watch"
  bash "$ROOT/scripts/contract.sh"
  log "client flow: a client generated from /openapi.json drives a billing flow"
  bash "$ROOT/scripts/client_flow.sh"
  log "stream end-to-end test: the functions under cargo lambda watch, a real SSE client"
  bash "$ROOT/scripts/stream_e2e.sh"
fi
