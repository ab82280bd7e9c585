#!/usr/bin/env bash
# Benchmarks: the pure domain (criterion) and ingestion through the real handler against the
# local endpoint. Figures go to BENCHMARKS.md.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
ensure_venv
start_moto
export METERLINE_PYTHON="$VENV/bin/python"
cargo bench -p meterline-shared --no-default-features --bench ingest --bench rating
cargo bench -p meterline-integration-tests --bench handler
