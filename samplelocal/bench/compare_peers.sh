#!/usr/bin/env bash
# The cleaner against DuckDB, Polars and pandas on the orders-clean workload,
# in one run, on the same files:
#
#   bash samplelocal/bench/compare_peers.sh [ROWS ...]     (default 1000000)
#
# Builds `tributary` (release), installs the peers into .tools/peers-venv,
# then runs samplelocal/bench/peers/run.py: the workload file is generated
# (peers/workload.py, seed 42), every peer runs with 1 and 2 threads RUNS
# times under /usr/bin/time -v, every output is checked row for row against
# the others and against the counts the workload was built with
# (peers/check.py), and ratios.py prints throughput and peak-RSS ratios of
# tributary against each peer. Data, outputs and tables go to
# .tools/bench/. Env: RUNS (3).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TOOLS=$ROOT/.tools
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tributary-target}"
if [ $# -eq 0 ]; then set -- 1000000; fi

mkdir -p "$TOOLS"
if ! "$TOOLS/peers-venv/bin/python" -c 'import duckdb, polars, pandas, pyarrow' 2>/dev/null; then
  python3 -m venv "$TOOLS/peers-venv"
  "$TOOLS/peers-venv/bin/pip" install --quiet duckdb polars pandas pyarrow
fi
cargo build --release --locked -p tributary

WORK=$TOOLS/bench
"$TOOLS/peers-venv/bin/python" "$ROOT/samplelocal/bench/peers/run.py" \
  --tributary "$CARGO_TARGET_DIR/release/tributary" --work "$WORK" --runs "${RUNS:-3}" "$@"
for rows in "$@"; do
  "$TOOLS/peers-venv/bin/python" "$ROOT/samplelocal/bench/ratios.py" "$WORK/results_raw_$rows.tsv"
done
