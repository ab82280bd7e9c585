#!/usr/bin/env bash
# A client nobody here wrote: generates a Python client from the document the running API serves
# (/openapi.json) with openapi-python-client (pinned in env.sh), fresh on every run into
# .local/client (never committed), and drives a whole billing flow through it against the local
# stack under `cargo lambda watch` (scripts/client_flow.py). A call the generated client cannot
# express is a defect of the document. Reuses the local endpoint when AWS_ENDPOINT_URL is set (as
# under scripts/test.sh); otherwise starts one.
set -euo pipefail
source "$(dirname "$0")/env.sh"
source "$(dirname "$0")/functions.sh"
cd "$ROOT"
ensure_venv
if [ -z "${AWS_ENDPOINT_URL:-}" ]; then
  start_moto
fi
start_functions client-flow

log "client flow: generating the client from $BASE/openapi.json"
rm -rf "$LOCAL/client"
mkdir -p "$LOCAL/client"
python -c "import urllib.request; open('$LOCAL/client/openapi.json', 'wb').write(urllib.request.urlopen('$BASE/openapi.json', timeout=120).read())"
# No post hooks (the generator formats with ruff when it is on PATH; the code runs the same).
printf 'post_hooks: []\n' >"$LOCAL/client/config.yaml"
# Every generator warning is a part of the document the client cannot express: fail on it.
python -m openapi_python_client generate --path "$LOCAL/client/openapi.json" --meta none \
  --config "$LOCAL/client/config.yaml" --output-path "$LOCAL/client/meterline_client" \
  >"$LOCAL/client/generate.log" 2>&1 || { cat "$LOCAL/client/generate.log" >&2; exit 1; }
if grep -qiE "warning|unable to|could not" "$LOCAL/client/generate.log"; then
  cat "$LOCAL/client/generate.log" >&2
  echo "the generated client cannot express the whole document (above)" >&2
  exit 1
fi

log "client flow: account, price book, plan, subscription, usage, close, invoice, statements, credit note"
PYTHONPATH="$LOCAL/client:$ROOT/scripts" python scripts/client_flow.py "$BASE" "$METERLINE_API_KEY" "$STACK" "$WATCH"
