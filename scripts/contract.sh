#!/usr/bin/env bash
# Contract test: runs the API function under `cargo lambda watch` on the local endpoint, and
# schemathesis (pinned in env.sh) against it, driven by the OpenAPI document the API serves at
# /openapi.json. Fails on any 5xx, any undocumented status or content type, and any response that
# does not match its schema. Reuses the local endpoint when AWS_ENDPOINT_URL is set (as under
# scripts/test.sh); otherwise starts one. Extra arguments go to `st run`.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
ensure_venv
if [ -z "${AWS_ENDPOINT_URL:-}" ]; then
  start_moto
fi

prefix="contract-$$"
log "contract: creating the stack ($prefix) and building the API"
python scripts/stack.py create --prefix "$prefix" >"$LOCAL/contract-stack.json"
cargo build --quiet --locked -p api

METERLINE_API_KEY="$(python -c 'import secrets; a="abcdefghijklmnopqrstuvwxyz234567"; r=lambda n: "".join(secrets.choice(a) for _ in range(n)); print(f"ml_{r(16)}_{r(48)}")')"
export METERLINE_API_KEY
python - "$LOCAL/contract-stack.json" >"$LOCAL/contract.env" <<'PY'
import json, os, sys
env = json.load(open(sys.argv[1]))["functions"]["ApiFunction"]["env"]
# The bootstrap operator key lives in Secrets Manager (here the local endpoint's), as on AWS.
import boto3
secrets = boto3.client("secretsmanager", endpoint_url=os.environ["AWS_ENDPOINT_URL"],
                       region_name=os.environ["AWS_REGION"])
name = f"{json.load(open(sys.argv[1]))['prefix']}-bootstrap-operator-key"
env["BOOTSTRAP_OPERATOR_KEY_SECRET"] = secrets.create_secret(
    Name=name, SecretString=os.environ["METERLINE_API_KEY"])["ARN"]
for k in ("AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
    env[k] = os.environ[k]
env["RUST_LOG"] = "warn"
print("\n".join(f"{k}={v}" for k, v in sorted(env.items())))
PY

PORT="$(free_port)"
log "contract: cargo lambda watch on 127.0.0.1:$PORT (log: .local/contract-watch.log)"
setsid cargo lambda watch --ignore-changes -A 127.0.0.1 -P "$PORT" --env-file "$LOCAL/contract.env" \
  >"$LOCAL/contract-watch.log" 2>&1 &
PIDS+=("$!")
BASE="http://127.0.0.1:$PORT/lambda-url/api"
# One long wait per probe, not many short ones: `cargo lambda watch` builds and starts the function
# on the first request and queues the requests meanwhile; a probe that gave up stays queued, and
# when the function answers it the emulator refuses the answer (the function logs "Lambda Runtime
# API returned non-200 response", 500). Those refusals were abandoned probes, not test requests.
for i in $(seq 1 600); do
  if python -c "import urllib.request; urllib.request.urlopen('$BASE/health', timeout=600)" 2>/dev/null; then
    break
  fi
  if [ "$i" = 600 ]; then
    echo "the API did not answer; see .local/contract-watch.log" >&2
    exit 1
  fi
  sleep 0.5
done

# Right after its first build the local emulator has answered an early request with a 500 of its
# own (before the function ran); schemathesis loads the document once, so make sure it is served.
for i in $(seq 1 30); do
  if python -c "import urllib.request; urllib.request.urlopen('$BASE/openapi.json', timeout=120)" 2>/dev/null; then
    break
  fi
  sleep 1
done

log "contract: seeding one account, provider, price book, plan, subscription and budget"
PYTHONPATH="$ROOT/scripts" python -c 'import sys, contract_hooks; contract_hooks.seed(sys.argv[1], sys.argv[2])' \
  "$BASE" "$METERLINE_API_KEY"

log "contract: schemathesis against $BASE/openapi.json"
# Bounded: a fixed seed, few examples per operation. Half the generated path parameters name the
# seeded objects (contract_hooks.py), so account-scoped routes reach their success paths. The stateful phase follows the document's
# links (create a key, then read, rotate and revoke it; create a budget, then read, replace and
# delete it), at most 6 steps per scenario (schemathesis's default).
PYTHONPATH="$ROOT/scripts" SCHEMATHESIS_HOOKS=contract_hooks st run "$BASE/openapi.json" --url "$BASE" \
  -H "Authorization: Bearer $METERLINE_API_KEY" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --phases examples,coverage,fuzzing,stateful --max-examples "${CONTRACT_MAX_EXAMPLES:-12}" --seed 7 \
  --workers 1 --request-timeout 20 --no-color --suppress-health-check too_slow,filter_too_much \
  "$@"
