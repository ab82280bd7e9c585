#!/usr/bin/env bash
# Runs the whole test suite: unit and property tests, then the integration tests against a
# local AWS endpoint (moto_server) that this script starts and stops.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
ensure_venv
start_moto
export METERLINE_PYTHON="$VENV/bin/python"
log "cargo test --workspace"
cargo test --workspace --locked "$@"
