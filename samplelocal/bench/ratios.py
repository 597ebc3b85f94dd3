#!/usr/bin/env python3
"""Ratios of tributary against each peer, from run_peers.sh's raw results.

    ratios.py results_raw_<ROWS>.tsv [...]

Per (rows, threads): median wall time and peak RSS of each peer over its
runs; throughput ratio = peer wall / our wall (higher is better for us);
memory ratio = our RSS / peer RSS (lower is better for us).
"""
import csv
import statistics
import sys
from collections import defaultdict

OURS = "tributary"


def main():
    runs = defaultdict(list)
    for path in sys.argv[1:]:
        with open(path) as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                runs[(int(row["rows"]), int(row["threads"]), row["peer"])].append(row)
    keys = sorted({(r, t) for (r, t, _) in runs})
    print("| rows | threads | peer | MB/s | peak RSS MiB | tributary speed-up | tributary RSS share |")
    print("|---:|---:|---|---:|---:|---:|---:|")
    for rows, threads in keys:
        ours = runs.get((rows, threads, OURS))
        if not ours:
            continue
        ow = statistics.median(float(r["wall_s"]) for r in ours)
        orss = statistics.median(int(r["max_rss_kb"]) for r in ours)
        for (r, t, peer), rs in sorted(runs.items()):
            if (r, t) != (rows, threads):
                continue
            w = statistics.median(float(x["wall_s"]) for x in rs)
            rss = statistics.median(int(x["max_rss_kb"]) for x in rs)
            mbs = int(rs[0]["bytes"]) / 1e6 / w
            speed = "—" if peer == OURS else f"{w / ow:.2f}x"
            share = "—" if peer == OURS else f"{orss / rss:.2f}"
            print(f"| {rows:,} | {threads} | {peer} | {mbs:.1f} | {rss / 1024:.0f} | {speed} | {share} |")


if __name__ == "__main__":
    main()
