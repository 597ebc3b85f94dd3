#!/usr/bin/env python3
"""Do the cleaners agree, and are they right?

    check.py FILE.expected.json OUT_DIR [OUT_DIR ...]

For every output folder: its counts equal the workload's (known by
construction), its kept file has the workload's schema and the edge rows'
values, and its kept and rejected rows equal the first folder's, row for
row. Prints one line per folder and exits 1 on any difference.
"""
import datetime as dt
import json
import os
import sys

import pyarrow as pa
import pyarrow.parquet as pq

from workload import COLUMNS, KEPT_FILE, REJECTED_FILE

KEPT_SCHEMA = pa.schema([
    ("order_id", pa.string()), ("user_id", pa.int64()), ("product_id", pa.string()),
    ("amount", pa.float64()), ("currency", pa.string()),
    ("order_ts", pa.timestamp("us", tz="UTC")), ("status", pa.string()),
    ("country", pa.string()), ("order_date", pa.date32()),
])
REJECTED_SCHEMA = pa.schema([(c, pa.string()) for c in COLUMNS] + [("reject_reason", pa.string())])
COUNTED = ["input", "kept", "rejected", "rejected_total", "duplicates"]


def read(path, schema):
    table = pq.read_table(path)
    names = [f.name for f in schema]
    if table.column_names != names:
        raise ValueError(f"{path}: columns {table.column_names}, expected {names}")
    # Engines differ in details the workload leaves open (large strings,
    # the zone's spelling); the values are compared in one schema.
    if not all(table.schema.field(f.name).type in (f.type, pa.large_string()) or
               (pa.types.is_timestamp(f.type) and pa.types.is_timestamp(table.schema.field(f.name).type))
               for f in schema):
        raise ValueError(f"{path}: schema {table.schema}, expected {schema}")
    return table.cast(schema)


def edge_problems(kept, expected):
    want = expected["edge_kept"]
    rows = {r["order_id"]: r for r in kept.filter(
        pa.compute.is_in(kept["order_id"], pa.array(list(want)))).to_pylist()}
    problems = []
    for order_id, values in want.items():
        row = rows.get(order_id)
        if row is None:
            problems.append(f"{order_id} is not kept")
            continue
        for column, value in values.items():
            got = row[column]
            if isinstance(got, dt.datetime):
                got = got.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            elif isinstance(got, dt.date):
                got = got.isoformat()
            if got != value:
                problems.append(f"{order_id}.{column} = {got!r}, expected {value!r}")
    return problems


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    with open(sys.argv[1]) as fh:
        expected = json.load(fh)
    reference = None
    failed = False
    for out_dir in sys.argv[2:]:
        problems = []
        with open(os.path.join(out_dir, "counts.json")) as fh:
            counts = json.load(fh)
        for key in COUNTED:
            if counts.get(key) != expected[key]:
                problems.append(f"{key} = {counts.get(key)}, expected {expected[key]}")
        try:
            kept = read(os.path.join(out_dir, KEPT_FILE), KEPT_SCHEMA)
            rejected = read(os.path.join(out_dir, REJECTED_FILE), REJECTED_SCHEMA)
        except (ValueError, OSError, pa.ArrowInvalid) as e:
            problems.append(str(e))
        else:
            problems += edge_problems(kept, expected)
            if reference is None:
                reference = (out_dir, kept, rejected)
            else:
                for name, ours, theirs in [("kept", kept, reference[1]), ("rejected", rejected, reference[2])]:
                    if not ours.equals(theirs):
                        problems.append(f"{name} rows differ from {reference[0]}")
        failed |= bool(problems)
        print(f"{out_dir}: {'OK' if not problems else '; '.join(problems)}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
