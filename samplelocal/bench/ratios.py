#!/usr/bin/env python3
"""Ratios of tributary against each peer, from peers/run.py's raw results.

    ratios.py results_raw_<ROWS>.tsv [...]

Per (rows, threads): median wall time and peak RSS of each peer over its
runs; throughput ratio = peer wall / our wall (higher is better for us);
memory ratio = our RSS / peer RSS (lower is better for us).

This machine's speed drifts by up to 1.7x between identical runs, so the
per-round column pairs each of our runs with the peer's run of the same
round (seconds apart) and gives the range of those ratios: a ratio of
medians can move by a few tenths between two invocations.
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
    print(
        "| rows | threads | peer | MB/s | peak RSS MiB | tributary speed-up"
        " | speed-up per round (min–max) | tributary RSS share |"
    )
    print("|---:|---:|---|---:|---:|---:|---:|---:|")
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
            rounds = "—" if peer == OURS else per_round(rs, ours)
            print(
                f"| {rows:,} | {threads} | {peer} | {mbs:.1f} | {rss / 1024:.0f} | {speed}"
                f" | {rounds} | {share} |"
            )


def per_round(theirs, ours):
    """Range of peer wall / our wall over the rounds both ran in."""
    ours_by_run = {r["run"]: float(r["wall_s"]) for r in ours}
    ratios = [
        float(r["wall_s"]) / ours_by_run[r["run"]]
        for r in theirs
        if ours_by_run.get(r["run"])
    ]
    if not ratios:
        return "—"
    return f"{min(ratios):.2f}–{max(ratios):.2f}x"


if __name__ == "__main__":
    main()
