#!/usr/bin/env python3
"""Regenerate the bundled sample (deterministic; standard library only).

    python3 samplelocal/sample/generate.py

Writes raw/<dataset>/date=YYYY-MM-DD/<file> under samplelocal/sample/ with the
dirty rows real exports have: blank required fields, unparseable timestamps
and numbers, values outside allowed sets, duplicates (some with a later
event time), quoted commas and newlines, a UTF-8 BOM, CRLF line endings, a
ragged row, a gzip file, an extra column, and one day of user events whose
quality is below the threshold (it is held for approval). The
customer_behavior_assets file for the last day is missing, so that pipeline
waits for data_ready on that date.
"""
import gzip
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
DATES = ["2025-12-01", "2025-12-02", "2025-12-03"]
STATUSES = ["created", "paid", "shipped", "delivered", "cancelled", "refunded"]
EVENT_TYPES = ["view", "click", "add_to_cart", "purchase"]
SEGMENTS = ["new", "regular", "vip"]


def write(dataset, date, name, text, *, gz=False, bom=False, crlf=False):
    d = os.path.join(HERE, "raw", dataset, f"date={date}")
    os.makedirs(d, exist_ok=True)
    if crlf:
        text = text.replace("\n", "\r\n")
    data = (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8")
    path = os.path.join(d, name)
    if gz:
        with gzip.GzipFile(path, "wb", mtime=0) as f:
            f.write(data)
    else:
        with open(path, "wb") as f:
            f.write(data)


def orders(rng, date, day_index):
    rows = ["order_id,user_id,product_id,amount,currency,order_ts,status,country"]
    for i in range(120):
        oid = f"O{day_index}{i:04d}"
        ts = f"{date}T{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}Z"
        rows.append(f"{oid},{rng.randrange(1, 60)},SKU-{rng.randrange(1, 40)},"
                    f"{rng.randrange(100, 20000) / 100:.2f},USD,{ts},{rng.choice(STATUSES)},US")
    rows += [
        f"O{day_index}9001,7,\"SKU-9, \"\"Pro\"\" edition\",19.99,EUR,{date} 08:00:00+01:00,paid,DE",
        f"O{day_index}9002,8,\"SKU-multi\nline\",5.00,GBP,{date}T09:30:00.250Z,shipped,GB",
        f"  O{day_index}9003  , 9 ,SKU-3,12.50,USD,{date}T10:00:00-05:00, paid\t,US",
        f"O{day_index}9004,10,SKU-4,0.00,USD,{date}T10:00:00Z,paid,US",
        f"O{day_index}9005,11,SKU-5,-3.00,USD,{date}T10:00:00Z,paid,US",
        f"O{day_index}9006,12,SKU-6,4.00,USD,{date} 10:00,paid,US",
        f"O{day_index}9007,13,SKU-7,4.00,USD,{date}T25:00:00Z,paid,US",
        f"O{day_index}9008,14,SKU-8,4.00,USD,{date}T10:00:00Z,PAID,US",
        f"O{day_index}9009,,SKU-9,4.00,USD,{date}T10:00:00Z,paid,US",
        f",15,SKU-10,4.00,USD,{date}T10:00:00Z,paid,US",
        f"O{day_index}9010,16,SKU-11,four,USD,{date}T10:00:00Z,paid,US",
        f"O{day_index}9011,17,SKU-12,4.00,USD,{date}T10:00:00Z,paid",
        # Duplicates: a later correction wins, an earlier re-send loses.
        f"O{day_index}0001,1,SKU-1,99.00,USD,{date}T23:59:00Z,refunded,US",
        f"O{day_index}0002,2,SKU-2,1.00,USD,{date}T00:00:00-12:00,created,US",
        f"O{day_index}9012,18,SKU-13,7.00,USD,{date}T11:00:00Z,delivered,NA",
    ]
    return "\n".join(rows) + "\n"


def user_events(rng, date, degraded):
    rows = ["event_id,user_id,event_type,product_id,event_ts,session_id,device"]
    for i in range(150):
        et = rng.choice(EVENT_TYPES)
        if degraded and i % 3 == 0:
            et = "unknown_type"  # an upstream bug: quality drops below the threshold
        ts = f"{date}T{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}+00:00"
        device = "" if degraded and i % 2 == 0 else rng.choice(["ios", "android", "web"])
        rows.append(f"E{date.replace('-', '')}{i:05d},{rng.randrange(1, 60)},{et},SKU-{rng.randrange(1, 40)},"
                    f"{ts},S{rng.randrange(1000)},{device}")
    rows.append(f"E{date.replace('-', '')}00001,1,view,SKU-1,{date}T00:00:01Z,S1,web")  # duplicate id
    rows.append(f"E{date.replace('-', '')}99999,2,view,SKU-1,not-a-time,S1,web")
    return "\n".join(rows) + "\n"


def customer_base(rng, date, day_index):
    rows = ["customer_id,name,email,segment,signup_date,country,referrer"]
    for i in range(40 + day_index * 5):
        rows.append(f"C{i:04d},Customer {i},customer{i}@example.com,{rng.choice(SEGMENTS)},"
                    f"2024-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d},US,ads")
    rows.append(f"C9000,\"Doe, Jane\",jane.doe(at)example.com,vip,2024-02-30,US,ads")
    rows.append(f"C9001,Émile Zola,emile@example.fr,regular,2024-05-01,FR,")
    return "\n".join(rows) + "\n"


def behavior(rng, date):
    rows = ["customer_id,total_spend,sessions,last_active_ts,churn_risk"]
    for i in range(40):
        rows.append(f"C{i:04d},{rng.randrange(0, 500000) / 100:.2f},{rng.randrange(0, 40)},"
                    f"{date}T{rng.randrange(24):02d}:00:00Z,{rng.random():.3f}")
    rows.append("C9999,10.00,3,2025-12-01T00:00:00Z,1.7")  # churn_risk out of [0,1]
    return "\n".join(rows) + "\n"


def main():
    rng = random.Random(7)
    for i, date in enumerate(DATES, start=1):
        text = orders(rng, date, i)
        if i == 2:
            write("orders", date, "orders.csv.gz", text, gz=True)
        else:
            write("orders", date, "orders.csv", text, bom=(i == 1), crlf=(i == 3))
        write("user_events", date, "events.csv", user_events(rng, date, degraded=(i == 2)))
        write("customer_base", date, "customers.csv", customer_base(rng, date, i))
        if i < len(DATES):
            write("customer_behavior_assets", date, "behavior.csv", behavior(rng, date))


if __name__ == "__main__":
    main()
