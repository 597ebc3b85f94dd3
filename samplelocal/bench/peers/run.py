#!/usr/bin/env python3
"""Run every cleaner on the same files, in the same run, and keep the
timings:

    run.py --tributary BINARY --work DIR [--runs 3] [--threads 1,2] ROWS [ROWS ...]

For each size: the workload file (seed 42) is made in DIR unless present;
each round runs every peer (duckdb, polars, pandas, tributary) with each
thread count under /usr/bin/time -v, rounds interleaved so that a slow
spell of the machine hits every peer alike; wall time and peak RSS go to
DIR/results_raw_<ROWS>.tsv (the input of ratios.py). The outputs of the
last round are then cross-checked (check.py); a mismatch fails the run.
"""
import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = ["duckdb", "polars", "pandas", "tributary"]
FIELDS = ["rows", "bytes", "peer", "threads", "run", "wall_s", "user_s", "sys_s", "max_rss_kb"]


def timed(command):
    """(wall seconds, user, sys, peak RSS KiB) of one whole process."""
    done = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    stats = dict(line.strip().partition(": ")[::2] for line in done.stderr.splitlines() if ": " in line)
    clock = [float(x) for x in stats["Elapsed (wall clock) time (h:mm:ss or m:ss)"].split(":")]
    wall = sum(v * 60 ** i for i, v in enumerate(reversed(clock)))
    return wall, float(stats["User time (seconds)"]), float(stats["System time (seconds)"]), \
        int(stats["Maximum resident set size (kbytes)"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tributary", required=True, help="the tributary binary (a release build)")
    ap.add_argument("--work", required=True, help="where the data, outputs and tables go")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    ap.add_argument("rows", type=int, nargs="+")
    args = ap.parse_args()
    args.threads = [int(t) for t in args.threads.split(",")]
    os.makedirs(args.work, exist_ok=True)
    for rows in args.rows:
        data = os.path.join(args.work, f"orders_{rows}.csv")
        if not os.path.exists(data + ".expected.json"):
            subprocess.run([sys.executable, os.path.join(HERE, "workload.py"), "--rows", str(rows),
                            "--out", data], check=True, stdout=subprocess.DEVNULL)
        size = os.path.getsize(data)
        table = os.path.join(args.work, f"results_raw_{rows}.tsv")
        with open(table, "w") as out:
            out.write("\t".join(FIELDS) + "\n")
            for run in range(1, args.runs + 1):
                for threads in args.threads:
                    for peer in PEERS:
                        out_dir = os.path.join(args.work, "out", f"{rows}-{peer}-{threads}")
                        if peer == "tributary":
                            command = [args.tributary, "bench", "clean"]
                        else:
                            command = [sys.executable, os.path.join(HERE, "peer.py"), "--engine", peer]
                        command += ["--in", data, "--out-dir", out_dir, "--threads", str(threads)]
                        wall, user, system, rss = timed(command)
                        out.write("\t".join(map(str, [rows, size, peer, threads, run, f"{wall:.2f}",
                                                      user, system, rss])) + "\n")
                        out.flush()
                        print(f"rows={rows} threads={threads} run={run} {peer}: {wall:.2f} s, "
                              f"{rss / 1024:.0f} MiB", flush=True)
        outputs = [os.path.join(args.work, "out", f"{rows}-{peer}-{t}") for t in args.threads for peer in PEERS]
        subprocess.run([sys.executable, os.path.join(HERE, "check.py"), data + ".expected.json", *outputs],
                       check=True)


if __name__ == "__main__":
    main()
