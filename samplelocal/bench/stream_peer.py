"""Peer for `tributary bench stream`: the same decode + validate + aggregate
in plain CPython (json, datetime), so the Rust figure has something measured
in the same run to stand against.

    python3 stream_peer.py EVENTS.jsonl   ->  one JSON line: events, seconds,
    and what was computed (poison, windows, aggregated, amount_sum, digest)
    so the bench can check both sides computed the same before comparing
    their speed.
"""
import json
import sys
import time
from datetime import datetime

MODULUS = (1 << 61) - 1
REQUIRED = {"order_id": str, "user_id": int, "product_id": str, "amount": (int, float), "order_ts": str}


def main(path):
    with open(path, "rb") as f:
        lines = f.read().splitlines()
    start = time.perf_counter()
    windows = {}
    poison = 0
    for line in lines:
        try:
            e = json.loads(line)
            for k, t in REQUIRED.items():
                if not isinstance(e.get(k), t):
                    raise ValueError(k)
            ts = datetime.fromisoformat(e["order_ts"].replace("Z", "+00:00"))
            if ts.tzinfo is None:
                raise ValueError("naive")
        except (ValueError, TypeError):
            poison += 1
            continue
        minute = int(ts.timestamp()) // 60 * 60
        key = (minute, e["product_id"])
        a = windows.get(key)
        amount = float(e["amount"])
        if a is None:
            windows[key] = [1, amount, amount, amount]
        else:
            a[0] += 1
            a[1] += amount
            a[2] = min(a[2], amount)
            a[3] = max(a[3], amount)
    seconds = time.perf_counter() - start
    # Outside the timing: a digest of every (minute, product, count), and
    # the sums, to compare with the Rust side's aggregates.
    digest = 0
    for (minute, product), a in windows.items():
        digest = (digest + a[0] * ((minute // 60) % 100003 + 1) * (int(product[1:]) + 1)) % MODULUS
    print(json.dumps({
        "events": len(lines), "poison": poison, "windows": len(windows),
        "aggregated": sum(a[0] for a in windows.values()),
        "amount_sum": sum(a[1] for a in windows.values()),
        "digest": digest, "seconds": seconds,
    }))


if __name__ == "__main__":
    main(sys.argv[1])
