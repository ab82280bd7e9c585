#!/usr/bin/env bash
# Contract test: runs the API (with the ingestion, cycle-close and close-worker functions, to
# seed a closed invoice) under `cargo lambda watch` on the local endpoint, and schemathesis
# (pinned in env.sh) against it, driven by the OpenAPI document the API serves at /openapi.json.
# Fails on any 5xx, any undocumented status or content type, any response that does not match its
# schema, and any schemathesis warning (scripts/schemathesis.toml: an operation whose generated
# data was mostly refused, or that never got past a 404, means the document and the API
# disagree). Reuses the local endpoint when AWS_ENDPOINT_URL is set (as under scripts/test.sh);
# otherwise starts one. Extra arguments go to `st run`.
set -euo pipefail
source "$(dirname "$0")/env.sh"
source "$(dirname "$0")/functions.sh"
cd "$ROOT"
ensure_venv
if [ -z "${AWS_ENDPOINT_URL:-}" ]; then
  start_moto
fi
start_functions contract

log "contract: seeding the examples' objects and a closed invoice"
export CONTRACT_SEEDS="$LOCAL/contract-seeds.json" CONTRACT_BASE="$BASE"
PYTHONPATH="$ROOT/scripts" python -c 'import sys, contract_hooks; contract_hooks.seed(*sys.argv[1:])' \
  "$BASE" "$METERLINE_API_KEY" "$STACK" "$WATCH" "$CONTRACT_SEEDS"

log "contract: schemathesis against $BASE/openapi.json"
# Bounded: a fixed seed, few examples per operation. The seeded objects are what the examples
# name, and half the generated path parameters name them too (contract_hooks.py), so the routes
# reach their success paths. The stateful phase follows the document's links (create an account,
# then its subscriptions, budgets, invoices...; list invoices, then void, pay or credit the first),
# at most 10 steps per scenario (scripts/schemathesis.toml).
PYTHONPATH="$ROOT/scripts" SCHEMATHESIS_HOOKS=contract_hooks st --config-file "$ROOT/scripts/schemathesis.toml" \
  run "$BASE/openapi.json" --url "$BASE" \
  -H "Authorization: Bearer $METERLINE_API_KEY" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --phases examples,coverage,fuzzing,stateful --max-examples "${CONTRACT_MAX_EXAMPLES:-12}" --seed 7 \
  --workers 1 --request-timeout 20 --no-color --suppress-health-check too_slow,filter_too_much \
  "$@"
