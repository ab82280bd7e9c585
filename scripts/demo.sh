#!/usr/bin/env bash
# The main job, locally: starts the local AWS endpoint, creates the template's tables and
# queues, runs the functions under `cargo lambda watch`, pushes a deterministic sample workload
# through the API and the queue (with duplicates, a malformed, a late and a poison message),
# prints the resulting usage and the rejected events, runs one exchange-rate refresh and lists
# the rates through the API; then seeds price books, accounts and subscriptions, invokes the
# cycle-close function as its EventBridge schedule would, lets the close worker consume the close
# queue, and prints an invoice and the provider statements. Stops everything it started on exit.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
ensure_venv
start_moto

log "creating the stack from infra/template.yaml"
python scripts/stack.py create --prefix demo >"$LOCAL/stack.json"

log "building the functions"
cargo build --quiet -p usage-ingest -p api -p rate-refresh -p cycle-close -p close-worker -p meterline-cli

# A fresh bootstrap operator key for this run: the API accepts it without storing it, and the
# demo creates its other keys with it.
METERLINE_API_KEY="$(python -c 'import secrets; a="abcdefghijklmnopqrstuvwxyz234567"; r=lambda n: "".join(secrets.choice(a) for _ in range(n)); print(f"ml_{r(16)}_{r(48)}")')"
export METERLINE_API_KEY

# Both functions get the environment the template gives them (their union), plus the endpoint.
python - "$LOCAL/stack.json" >"$LOCAL/functions.env" <<'PY'
import json, os, sys
stack = json.load(open(sys.argv[1]))
env = {}
for f in stack["functions"].values():
    env.update(f["env"])
# The bootstrap operator key lives in Secrets Manager (here the local endpoint's), as on AWS.
import boto3
secrets = boto3.client("secretsmanager", endpoint_url=os.environ["AWS_ENDPOINT_URL"],
                       region_name=os.environ["AWS_REGION"])
name = f"{json.load(open(sys.argv[1]))['prefix']}-bootstrap-operator-key"
env["BOOTSTRAP_OPERATOR_KEY_SECRET"] = secrets.create_secret(
    Name=name, SecretString=os.environ["METERLINE_API_KEY"])["ARN"]
for k in ("AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
    env[k] = os.environ[k]
env["RUST_LOG"] = "info"
print("\n".join(f"{k}={v}" for k, v in sorted(env.items())))
PY

PORT="$(free_port)"
log "starting the functions: cargo lambda watch on 127.0.0.1:$PORT (log: .local/watch.log)"
setsid cargo lambda watch --ignore-changes -A 127.0.0.1 -P "$PORT" --env-file "$LOCAL/functions.env" \
  >"$LOCAL/watch.log" 2>&1 &
PIDS+=("$!")

python scripts/demo.py --invoke "http://127.0.0.1:$PORT" --stack "$LOCAL/stack.json" "$@"
