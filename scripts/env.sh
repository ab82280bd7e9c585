# Sourced by the other scripts: the project's Python tools and the local AWS endpoint.
# Installs what is missing into .venv (pinned), starts moto_server on a free loopback port,
# and stops every process it started when the calling script exits (also on Ctrl-C or error).

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
LOCAL="$ROOT/.local"
mkdir -p "$LOCAL"

MOTO_VERSION="5.2.5"
CARGO_LAMBDA_VERSION="1.9.2"
CFN_LINT_VERSION="1.58.0"
SCHEMATHESIS_VERSION="4.32.5"
# Generates the Python client the client flow test drives (scripts/client_flow.sh).
OPENAPI_PYTHON_CLIENT_VERSION="0.29.1"
# Only scripts/build.sh needs SAM (ensure_sam): the tests and the demo do not install it.
SAM_CLI_VERSION="1.170.0"
# The SAM translator: scripts/iam_check.py expands the template as CloudFormation will.
SAM_TRANSLATOR_VERSION="1.115.0"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

ensure_venv() {
  local stamp="$VENV/.meterline-$MOTO_VERSION-$CARGO_LAMBDA_VERSION-$CFN_LINT_VERSION-$SCHEMATHESIS_VERSION-$OPENAPI_PYTHON_CLIENT_VERSION-$SAM_TRANSLATOR_VERSION"
  if [ ! -f "$stamp" ]; then
    log "installing moto[server] $MOTO_VERSION, cargo-lambda $CARGO_LAMBDA_VERSION, cfn-lint $CFN_LINT_VERSION, schemathesis $SCHEMATHESIS_VERSION, openapi-python-client $OPENAPI_PYTHON_CLIENT_VERSION, aws-sam-translator $SAM_TRANSLATOR_VERSION into .venv"
    # Debian's python3 ships venv without ensurepip unless python3-venv is installed: then
    # create the environment without pip and let the system pip install pip into it.
    if ! python3 -m venv "$VENV" 2>/dev/null; then
      rm -rf "$VENV"
      python3 -m venv --without-pip "$VENV"
      python3 -m pip --python "$VENV/bin/python" install --quiet --disable-pip-version-check pip
    fi
    "$VENV/bin/pip" install --quiet --disable-pip-version-check \
      "moto[server]==$MOTO_VERSION" "cargo-lambda==$CARGO_LAMBDA_VERSION" "cfn-lint==$CFN_LINT_VERSION" \
      "schemathesis==$SCHEMATHESIS_VERSION" "openapi-python-client==$OPENAPI_PYTHON_CLIENT_VERSION" \
      "aws-sam-translator==$SAM_TRANSLATOR_VERSION"
    touch "$stamp"
  fi
  export PATH="$VENV/bin:$PATH"
}

# aws-sam-cli for `sam validate --lint` and `sam build` (scripts/build.sh), pinned, in the same
# .venv. It brings its own pins (boto3, click): `pip check` must stay clean afterwards.
ensure_sam() {
  local stamp="$VENV/.meterline-sam-$SAM_CLI_VERSION"
  if [ ! -f "$stamp" ]; then
    log "installing aws-sam-cli $SAM_CLI_VERSION into .venv"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "aws-sam-cli==$SAM_CLI_VERSION" \
      "cfn-lint==$CFN_LINT_VERSION" "moto[server]==$MOTO_VERSION" "aws-sam-translator==$SAM_TRANSLATOR_VERSION"
    "$VENV/bin/pip" check --disable-pip-version-check
    touch "$stamp"
  fi
  export SAM_CLI_TELEMETRY=0
}

free_port() {
  "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Background processes are started in their own process group (setsid) so that cleanup stops
# them and everything they started.
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] || continue
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && wait "$pid" 2>/dev/null || true
  done
  PIDS=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Starts moto_server on a free port and points every AWS client at it; its output goes to
# .local/${1:-moto}.log. With METERLINE_MOTO_FAULTS=1 in the environment it runs in its fault
# mode (scripts/moto_faults.py, docs/testing.md).
start_moto() {
  local port name="${1:-moto}"
  port="$(free_port)"
  log "starting moto_server on 127.0.0.1:$port${METERLINE_MOTO_FAULTS:+ (fault mode)}"
  setsid "$VENV/bin/python" "$ROOT/scripts/moto_server.py" -H 127.0.0.1 -p "$port" >"$LOCAL/$name.log" 2>&1 &
  PIDS+=("$!")
  export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
  export AWS_REGION="us-east-1" AWS_DEFAULT_REGION="us-east-1"
  export AWS_ACCESS_KEY_ID="testing" AWS_SECRET_ACCESS_KEY="testing"
  unset AWS_PROFILE AWS_SESSION_TOKEN
  local i
  for i in $(seq 1 100); do
    if "$VENV/bin/python" -c "import urllib.request; urllib.request.urlopen('$AWS_ENDPOINT_URL/moto-api/')" 2>/dev/null; then
      return 0
    fi
    sleep 0.2
  done
  echo "moto_server did not start; see .local/$name.log" >&2
  return 1
}
