#!/usr/bin/env bash
# Builds the deployable artifacts: `sam validate --lint`, then `sam build` of every function of
# infra/template.yaml (BuildMethod rust-cargolambda, arm64, cross-compiled with the zig that the
# cargo-lambda package brings), then zips each function's bootstrap as `sam deploy` would and
# prints its size. Fails if a zip is over MAX_ZIP_BYTES (default 8 MiB, the target in
# BENCHMARKS.md).
#
#     bash scripts/build.sh              # validate, build, sizes
#     bash scripts/build.sh --validate   # only `sam validate --lint`
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
ensure_venv
ensure_sam
export AWS_REGION="${AWS_REGION:-us-east-1}" AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
MAX_ZIP_BYTES="${MAX_ZIP_BYTES:-8388608}"

log "sam validate --lint"
sam validate --lint --template-file infra/template.yaml
[ "${1:-}" = "--validate" ] && exit 0

# The arm64 standard library: rustup fetches it once (CI runs on the same kind of machine).
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
  log "rustup target add aarch64-unknown-linux-gnu"
  rustup target add aarch64-unknown-linux-gnu
fi

# cargo-lambda finds zig through the ziglang package in .venv (python3 -m ziglang). The arm64
# build has a target directory of its own, so it never waits for (or blocks) the tests' builds.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target/sam}"
log "sam build (arm64, release, target directory $CARGO_TARGET_DIR)"
t0=$(date +%s)
sam build --template-file infra/template.yaml --build-dir .aws-sam/build --no-cached
log "sam build took $(($(date +%s) - t0)) s"

log "zipped artifacts"
"$VENV/bin/python" - "$MAX_ZIP_BYTES" <<'EOF'
import io, os, sys, zipfile
limit = int(sys.argv[1])
root = ".aws-sam/build"
over = []
print(f"{'function':<28} {'bootstrap':>12} {'zip':>12}")
for name in sorted(os.listdir(root)):
    path = os.path.join(root, name, "bootstrap")
    if not os.path.isfile(path):
        continue
    buf = io.BytesIO()
    # `sam deploy` zips the build directory with deflate; the bootstrap is all it holds.
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(path, "bootstrap")
    size = len(buf.getvalue())
    print(f"{name:<28} {os.path.getsize(path):>12,} {size:>12,}")
    if size > limit:
        over.append(name)
if over:
    sys.exit(f"over {limit:,} bytes zipped: {', '.join(over)}")
EOF
