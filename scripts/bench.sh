#!/usr/bin/env bash
# Benchmarks: the pure domain (criterion), and ingestion and the billing close through the real
# handlers against the local endpoint (BENCH_ACCOUNTS sets the close benchmark's accounts). Figures go to BENCHMARKS.md.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
ensure_venv
start_moto
export METERLINE_PYTHON="$VENV/bin/python"
cargo bench -p meterline-shared --no-default-features --bench ingest --bench rating --bench close
cargo bench -p meterline-integration-tests --bench handler
BENCH_ACCOUNTS="${BENCH_ACCOUNTS:-1000}" cargo bench -p meterline-integration-tests --bench close
cargo bench -p meterline-integration-tests --bench close_memory
