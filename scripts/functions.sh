# Sourced by scripts/contract.sh and scripts/client_flow.sh (after env.sh): the stack of
# infra/template.yaml on the local endpoint and the API, ingestion, cycle-close and close-worker
# functions under `cargo lambda watch`, as the demo runs them.
#
#   start_functions NAME   creates the stack (prefix NAME-$$), builds the functions, starts
#                          `cargo lambda watch` and waits for the API. Sets STACK (the stack's
#                          JSON file), WATCH (the emulator's base URL), BASE (the API's URL) and
#                          METERLINE_API_KEY (an operator key the API accepts, not stored).

start_functions() {
  local name="$1"
  STACK="$LOCAL/$name-stack.json"
  log "$name: creating the stack ($name-$$) and building the functions"
  python scripts/stack.py create --prefix "$name-$$" >"$STACK"
  cargo build --quiet --locked -p api -p usage-ingest -p cycle-close -p close-worker

  METERLINE_API_KEY="$(python -c 'import secrets; a="abcdefghijklmnopqrstuvwxyz234567"; r=lambda n: "".join(secrets.choice(a) for _ in range(n)); print(f"ml_{r(16)}_{r(48)}")')"
  export METERLINE_API_KEY
  # One environment for the functions (the template gives them the same names and values).
  python - "$STACK" >"$LOCAL/$name.env" <<'PY'
import json, os, sys
functions = json.load(open(sys.argv[1]))["functions"]
env = {}
for f in ("ApiFunction", "UsageIngestFunction", "CycleCloseFunction", "CloseWorkerFunction"):
    for k, v in functions[f]["env"].items():
        assert env.get(k, v) == v, f"{k} differs between functions"
        env[k] = v
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

  local port
  port="$(free_port)"
  log "$name: cargo lambda watch on 127.0.0.1:$port (log: .local/$name-watch.log)"
  setsid cargo lambda watch --ignore-changes -A 127.0.0.1 -P "$port" --env-file "$LOCAL/$name.env" \
    >"$LOCAL/$name-watch.log" 2>&1 &
  PIDS+=("$!")
  WATCH="http://127.0.0.1:$port"
  BASE="$WATCH/lambda-url/api"
  # One long wait per probe, not many short ones: `cargo lambda watch` builds and starts the
  # function on the first request and queues the requests meanwhile; a probe that gave up stays
  # queued, and when the function answers it the emulator refuses the answer (the function logs
  # "Lambda Runtime API returned non-200 response", 500). Those refusals were abandoned probes.
  local i
  for i in $(seq 1 600); do
    if python -c "import urllib.request; urllib.request.urlopen('$BASE/health', timeout=600)" 2>/dev/null; then
      break
    fi
    if [ "$i" = 600 ]; then
      echo "the API did not answer; see .local/$name-watch.log" >&2
      exit 1
    fi
    sleep 0.5
  done
  # Right after its first build the local emulator has answered an early request with a 500 of
  # its own (before the function ran); make sure the document is served.
  for i in $(seq 1 30); do
    if python -c "import urllib.request; urllib.request.urlopen('$BASE/openapi.json', timeout=120)" 2>/dev/null; then
      break
    fi
    sleep 1
  done
}
