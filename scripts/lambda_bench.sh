#!/usr/bin/env bash
# Init time and peak RSS of each function's release binary as a whole process, against a small
# local Lambda runtime API (scripts/lambda_bench.py), with moto_server as the AWS endpoint.
# Builds the x86_64 release binaries of the functions first (this machine cannot run arm64).
#
#     bash scripts/lambda_bench.sh [--runs 20] [--json out.json] [--only UsageIngestFunction]
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
ensure_venv
log "cargo build --release (the functions' binaries, x86_64)"
cargo build --release --locked -p usage-ingest -p api -p rate-refresh -p cycle-close -p close-worker \
  -p overdue-check -p payment-result -p budget-check -p usage-stream
start_moto
"$VENV/bin/python" "$ROOT/scripts/lambda_bench.py" --target "$ROOT/target/release" "$@"
