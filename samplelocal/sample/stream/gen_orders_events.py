"""Generate the sample order events for the speed layer (deterministic).

One JSON event per line, in arrival order: two hours of orders on
2025-12-03 (10:00-12:00 UTC) with a little event-time jitter, plus what
real streams carry: re-sent events (same order_id), poison records
(malformed JSON, missing or mistyped fields, naive timestamps) and late
events that arrive after the stream has moved past their time.

    python3 gen_orders_events.py > orders_events.jsonl
"""
import json
import random
from datetime import datetime, timedelta, timezone

rng = random.Random(7)
start = datetime(2025, 12, 3, 10, 0, tzinfo=timezone.utc)
products = [f"P{n:03d}" for n in range(1, 13)]


def event(n, t):
    return {
        "order_id": f"S{n:05d}",
        "user_id": rng.randint(1, 400),
        "product_id": rng.choice(products),
        "amount": round(rng.uniform(3, 120), 2),
        "order_ts": t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
    }


lines = []
valid = []
for n in range(600):
    t = start + timedelta(seconds=n * 12 + rng.uniform(-20, 20))
    e = event(n, t)
    valid.append(e)
    lines.append(json.dumps(e))
    if n % 20 == 7:  # the producer re-sends an event
        lines.append(json.dumps(e))
    if n % 10 == 3:  # poison, of several kinds
        kind = (n // 10) % 6
        bad = dict(event(10_000 + n, t))
        if kind == 0:
            lines.append(json.dumps(bad)[:-7])  # truncated JSON
        elif kind == 1:
            del bad["amount"]
            lines.append(json.dumps(bad))
        elif kind == 2:
            bad["amount"] = "twelve"
            lines.append(json.dumps(bad))
        elif kind == 3:
            bad["order_ts"] = "2025-12-03 10:61:00"
            lines.append(json.dumps(bad))
        elif kind == 4:
            bad["order_ts"] = t.strftime("%Y-%m-%dT%H:%M:%S")  # no UTC offset
            lines.append(json.dumps(bad))
        else:
            lines.append("not json at all")
# Late: 40 orders of 10:05-10:45 arrive after the stream reached noon.
for k in range(40):
    t = start + timedelta(minutes=5 + k)
    lines.append(json.dumps(event(20_000 + k, t)))

print("\n".join(lines))
