#!/usr/bin/env bash
# The zips Terraform deploys: every binary of functions/ (one per function)
# built with cargo-lambda for arm64 / provided.al2023, with the pipeline
# configuration inside (TRIBUTARY_CONFIG=/var/task/pipeline.toml), as
# dist/lambda/<function>.zip.
#
#   bash scripts/package-lambdas.sh [--config pipeline.toml] [--debug] [--bin NAME]
#
# cargo-lambda and zig (its cross-linker) come from PyPI into .tools/.
set -euo pipefail
cd "$(dirname "$0")/.."

config=samplelocal/pipeline.toml
profile=(--profile lambda)
only=()
while [ $# -gt 0 ]; do
  case "$1" in
    --config) config=$2; shift 2 ;;
    --debug) profile=(); shift ;;
    --bin) only+=(--bin "$2"); shift 2 ;;
    *) echo "usage: $0 [--config pipeline.toml] [--debug] [--bin NAME]" >&2; exit 2 ;;
  esac
done
[ -f "$config" ] || { echo "no pipeline configuration at $config" >&2; exit 2; }

tools=.tools/lambda-venv
if [ ! -x "$tools/bin/cargo-lambda" ]; then
  python3 -m venv "$tools"
  "$tools/bin/pip" install -q 'cargo-lambda==1.9.2' 'ziglang==0.17.1'
fi
export PATH="$PWD/$tools/bin:$PATH"
rustup target list --installed | grep -qx aarch64-unknown-linux-gnu \
  || rustup target add aarch64-unknown-linux-gnu

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tributary-target}"
# A configuration that does not load would fail every function at cold
# start: refuse it here, with the loader's message.
cargo run -q -p tributary -- --config "$config" infra vars > /dev/null

staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
cp "$config" "$staging/pipeline.toml"
lambda_dir="$CARGO_TARGET_DIR/lambda"
(cd "$staging" && cargo lambda build --manifest-path "$OLDPWD/functions/Cargo.toml" \
  "${profile[@]}" --arm64 --output-format zip --lambda-dir "$lambda_dir" \
  --include pipeline.toml "${only[@]}")

mkdir -p dist/lambda
count=0
for bin in functions/src/bin/*.rs; do
  name=$(basename "$bin" .rs)
  if [ -f "$lambda_dir/$name/bootstrap.zip" ]; then
    cp "$lambda_dir/$name/bootstrap.zip" "dist/lambda/$name.zip"
    # What each cold start downloads: the number to watch as code is added.
    printf '%-28s %6.2f MB\n' "$name.zip" "$(($(stat -c %s "dist/lambda/$name.zip") / 10000))e-2"
    count=$((count + 1))
  fi
done
echo "$count function(s) packaged in dist/lambda/ with $config"
