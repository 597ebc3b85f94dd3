#!/usr/bin/env bash
# The cleaner against DuckDB, Polars and pandas on the orders-clean workload,
# in one run, on the same file:
#
#   bash samplelocal/bench/compare_peers.sh [ROWS ...]     (default 1000000)
#
# Builds `tributary` (release), installs the peers into .tools/peers-venv,
# copies the harness from ../shared/bench/orders-clean into .tools/ (it writes
# its tables next to itself), runs every peer with 1 and 2 threads RUNS times
# under /usr/bin/time -v, cross-checks every output row for row
# (check_outputs.py), and prints throughput and peak-RSS ratios of tributary
# against each peer. Env: BENCH_DIR, RUNS (3), MAX_OTHER (see run_peers.sh).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BENCH_DIR=${BENCH_DIR:-$ROOT/../shared/bench/orders-clean}
TOOLS=$ROOT/.tools
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tributary-target}"
[ -f "$BENCH_DIR/run_peers.sh" ] || { echo "no benchmark harness at $BENCH_DIR (set BENCH_DIR)" >&2; exit 1; }
if [ $# -eq 0 ]; then set -- 1000000; fi

mkdir -p "$TOOLS"
if ! "$TOOLS/peers-venv/bin/python" -c 'import duckdb, polars, pandas, pyarrow' 2>/dev/null; then
  python3 -m venv "$TOOLS/peers-venv"
  "$TOOLS/peers-venv/bin/pip" install --quiet duckdb polars pandas pyarrow
fi
cargo build --release --locked -p tributary
rm -rf "$TOOLS/orders-clean" && cp -r "$BENCH_DIR" "$TOOLS/orders-clean"
rm -f "$TOOLS"/orders-clean/results_raw_*.tsv

PY="$TOOLS/peers-venv/bin/python" \
PEERS="duckdb polars pandas tributary" \
PEER_CMD_tributary="$CARGO_TARGET_DIR/release/tributary bench clean" \
OUT_DIR="$TOOLS/peers-out" \
  bash "$TOOLS/orders-clean/run_peers.sh" "$@"

"$TOOLS/peers-venv/bin/python" "$ROOT/samplelocal/bench/ratios.py" "$TOOLS"/orders-clean/results_raw_*.tsv
