#!/usr/bin/env bash
# End-to-end test of the live usage stream: runs the API, ingestion and usage-stream functions
# under `cargo lambda watch` (whose function URLs stream responses, as RESPONSE_STREAM does) on
# the local endpoint, and tests/stream.rs's `under_cargo_lambda_watch` against them: usage posted
# to the API, delivered to the ingestion function, read from the stream by a real SSE client.
# Reuses the local endpoint when AWS_ENDPOINT_URL is set (as under scripts/test.sh).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
ensure_venv
if [ -z "${AWS_ENDPOINT_URL:-}" ]; then
  start_moto
fi

prefix="stream-e2e-$$"
log "stream e2e: creating the stack ($prefix) and building the functions"
python scripts/stack.py create --prefix "$prefix" >"$LOCAL/stream-stack.json"
cargo build --quiet --locked -p api -p usage-ingest -p usage-stream
cargo test --quiet --locked -p meterline-integration-tests --test stream --no-run

METERLINE_API_KEY="$(python -c 'import secrets; a="abcdefghijklmnopqrstuvwxyz234567"; r=lambda n: "".join(secrets.choice(a) for _ in range(n)); print(f"ml_{r(16)}_{r(48)}")')"
export METERLINE_API_KEY
# One environment for the three functions (the template gives them the same names and values),
# with a short stream lifetime so the test sees streams end.
python - "$LOCAL/stream-stack.json" >"$LOCAL/stream.env" <<'PY'
import json, os, sys
functions = json.load(open(sys.argv[1]))["functions"]
env = {}
for name in ("ApiFunction", "UsageIngestFunction", "UsageStreamFunction"):
    for k, v in functions[name]["env"].items():
        assert env.get(k, v) == v, f"{k} differs between functions"
        env[k] = v
# The bootstrap operator key lives in Secrets Manager (here the local endpoint's), as on AWS.
import boto3
secrets = boto3.client("secretsmanager", endpoint_url=os.environ["AWS_ENDPOINT_URL"],
                       region_name=os.environ["AWS_REGION"])
name = f"{json.load(open(sys.argv[1]))['prefix']}-bootstrap-operator-key"
env["BOOTSTRAP_OPERATOR_KEY_SECRET"] = secrets.create_secret(
    Name=name, SecretString=os.environ["METERLINE_API_KEY"])["ARN"]
env.update(USAGE_STREAM_LIFETIME_SECONDS="5", USAGE_STREAM_POLL_MS="250",
           USAGE_STREAM_KEEPALIVE_SECONDS="1", USAGE_STREAM_SETTLE_MS="500")
for k in ("AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
    env[k] = os.environ[k]
env["RUST_LOG"] = "warn"
print("\n".join(f"{k}={v}" for k, v in sorted(env.items())))
PY

PORT="$(free_port)"
log "stream e2e: cargo lambda watch on 127.0.0.1:$PORT (log: .local/stream-watch.log)"
setsid cargo lambda watch --ignore-changes -A 127.0.0.1 -P "$PORT" --env-file "$LOCAL/stream.env" \
  >"$LOCAL/stream-watch.log" 2>&1 &
PIDS+=("$!")
WATCH="http://127.0.0.1:$PORT"
# Each function starts on its first request: wait until all three answer.
python - "$WATCH" <<'PY'
import json, sys, time, urllib.error, urllib.request
watch = sys.argv[1]
checks = [
    ("api", urllib.request.Request(f"{watch}/lambda-url/api/health"), 200),
    ("usage-stream", urllib.request.Request(f"{watch}/lambda-url/usage-stream/v1/accounts/a/usage/stream"), 401),
    ("usage-ingest", urllib.request.Request(f"{watch}/2015-03-31/functions/usage-ingest/invocations",
                                            data=json.dumps({"Records": []}).encode()), 200),
]
deadline = time.monotonic() + 900
for name, request, want in checks:
    while time.monotonic() < deadline:
        try:
            status = urllib.request.urlopen(request, timeout=600).status
        except urllib.error.HTTPError as e:
            status = e.code
        except Exception:
            status = None
        if status == want:
            break
        time.sleep(0.5)
    else:
        sys.exit(f"{name} did not answer {want}; see .local/stream-watch.log")
PY

log "stream e2e: tests/stream.rs under_cargo_lambda_watch"
METERLINE_WATCH_URL="$WATCH" METERLINE_STACK_JSON="$LOCAL/stream-stack.json" \
  cargo test --locked -p meterline-integration-tests --test stream -- --ignored --exact under_cargo_lambda_watch
