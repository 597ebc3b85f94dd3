"""Peer for `tributary bench stream`: the same decode + validate + aggregate
in plain CPython (json, datetime), so the Rust figure has something measured
in the same run to stand against.

    python3 stream_peer.py EVENTS.jsonl   ->  one JSON line: events, seconds
"""
import json
import sys
import time
from datetime import datetime

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
    print(json.dumps({"events": len(lines), "poison": poison, "windows": len(windows), "seconds": seconds}))


if __name__ == "__main__":
    main(sys.argv[1])
