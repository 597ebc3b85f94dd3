#!/usr/bin/env bash
# The whole test suite: unit tests beside the code, end-to-end tests in
# tests/, and the CLI's own tests. Builds once, in debug, for the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tributary-target}"

# The AWS adapters' contract tests run against moto server (a real AWS-API
# emulator on 127.0.0.1), installed here, into an ignored folder, once.
if [ ! -x .tools/venv/bin/moto_server ]; then
  echo "== installing moto[server] into .tools/venv for the AWS adapter tests"
  python3 -m venv .tools/venv
  .tools/venv/bin/pip install -q 'moto[server]==5.2.5'
fi
export TRIBUTARY_MOTO_SERVER="$PWD/.tools/venv/bin/moto_server"

# The browser test drives Debian's headless Chromium through chromedriver.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  echo "== installing Debian's chromium and chromium-driver for the browser test"
  sudo_if_needed=""
  if [ "$(id -u)" != 0 ]; then sudo_if_needed="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo_if_needed apt-get install -y -q chromium chromium-driver >/dev/null ||
    { $sudo_if_needed apt-get update -q >/dev/null &&
      $sudo_if_needed apt-get install -y -q chromium chromium-driver >/dev/null; }
fi
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast "$@"
  cargo test --workspace --locked --doc
else
  cargo test --workspace --locked --no-fail-fast "$@"
fi
