#!/usr/bin/env bash
# Runs the whole test suite: unit and property tests, then the integration tests against a
# local AWS endpoint (moto_server) that this script starts and stops, then (with no arguments)
# the contract test of the running API against its OpenAPI document (scripts/contract.sh) and
# the usage stream's end-to-end test under cargo lambda watch (scripts/stream_e2e.sh).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
ensure_venv
start_moto
export METERLINE_PYTHON="$VENV/bin/python"
# `--workspace` would override a `-p` given as an argument and test every crate: keep it only
# when no package is named, so `bash scripts/test.sh -p api` builds and tests the API alone.
workspace=--workspace
for arg in "$@"; do
  case "$arg" in -p | -p* | --package | --package=*) workspace= ;; esac
done
log "cargo test $workspace $*"
cargo test $workspace --locked "$@"
# The full suite (no arguments) also checks the running API against its OpenAPI document.
if [ "$#" -eq 0 ]; then
  log "contract test: schemathesis against the API under cargo lambda watch"
  bash "$ROOT/scripts/contract.sh"
  log "stream end-to-end test: the functions under cargo lambda watch, a real SSE client"
  bash "$ROOT/scripts/stream_e2e.sh"
fi
