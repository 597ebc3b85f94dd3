#!/usr/bin/env python3
"""The orders-clean workload (workload.py) done by a dataframe engine, as a
peer to measure `tributary bench clean` against:

    peer.py --engine duckdb|polars|pandas --in FILE --out-dir DIR --threads N

writes orders_clean.parquet, orders_rejected.parquet and counts.json into
DIR and prints the counts. Each engine gets the rules in its own idiom,
with strict casts: a value the workload never writes aborts the run rather
than being classified quietly.
"""
import argparse
import json
import os
import time

from workload import COLUMNS, KEPT_FILE, REASONS, REJECTED_FILE, REQUIRED, STATUSES, TS_REGEX

ZSTD_LEVEL = 3


def duckdb_clean(path, out_dir, threads):
    import duckdb

    db = duckdb.connect(config={"threads": threads})
    db.execute("SET TimeZone = 'UTC'")
    columns = ", ".join(f"'{c}': 'VARCHAR'" for c in COLUMNS)
    trimmed = ", ".join(f"nullif(trim({c}, ' \t'), '') AS {c}" for c in COLUMNS)
    # A table keeps the file's order in its rowid.
    db.execute(f"""CREATE TABLE raw AS SELECT {trimmed} FROM read_csv(?, header = true,
        delim = ',', quote = '"', escape = '"', columns = {{{columns}}}, auto_detect = false)""",
               [path])
    null_required = " OR ".join(f"{c} IS NULL" for c in REQUIRED)
    statuses = ", ".join(f"'{s}'" for s in STATUSES)
    db.execute(f"""CREATE TABLE judged AS SELECT rowid AS line, *,
        CASE WHEN regexp_full_match(order_ts, '{TS_REGEX}')
             THEN try_cast(order_ts AS TIMESTAMPTZ) END AS ts,
        CASE WHEN {null_required} THEN 'null_required'
             WHEN ts IS NULL THEN 'bad_ts'
             WHEN CAST(amount AS DOUBLE) <= 0 THEN 'nonpositive_amount'
             WHEN status IS NULL OR status NOT IN ({statuses}) THEN 'bad_status'
        END AS reject_reason
        FROM raw""")
    parquet = f"(FORMAT PARQUET, COMPRESSION ZSTD, COMPRESSION_LEVEL {ZSTD_LEVEL})"
    db.execute(f"""COPY (SELECT {', '.join(COLUMNS)}, reject_reason FROM judged
        WHERE reject_reason IS NOT NULL ORDER BY line) TO '{os.path.join(out_dir, REJECTED_FILE)}' {parquet}""")
    db.execute(f"""COPY (SELECT order_id, CAST(user_id AS BIGINT) AS user_id, product_id,
        CAST(amount AS DOUBLE) AS amount, currency, ts AS order_ts, status, country,
        CAST(ts AS DATE) AS order_date
        FROM judged WHERE reject_reason IS NULL
        QUALIFY row_number() OVER (PARTITION BY order_id ORDER BY ts DESC, line) = 1
        ORDER BY line) TO '{os.path.join(out_dir, KEPT_FILE)}' {parquet}""")
    (n_input,) = db.execute("SELECT count(*) FROM judged").fetchone()
    rejected = dict(db.execute(
        "SELECT reject_reason, count(*) FROM judged WHERE reject_reason IS NOT NULL GROUP BY 1").fetchall())
    (n_valid,) = db.execute("SELECT count(*) FROM judged WHERE reject_reason IS NULL").fetchone()
    (n_kept,) = db.execute(f"SELECT count(*) FROM '{os.path.join(out_dir, KEPT_FILE)}'").fetchone()
    return n_input, n_valid, n_kept, rejected


def polars_clean(path, out_dir, threads):
    os.environ["POLARS_MAX_THREADS"] = str(threads)
    import polars as pl

    raw = pl.read_csv(path, infer_schema=False, quote_char='"')
    raw = raw.select(
        pl.col(c).str.strip_chars(" \t").replace("", None).alias(c) for c in COLUMNS
    ).with_row_index("line")
    # One layout for the parser: 'T' between date and time, '+00:00' for Z.
    iso = (pl.col("order_ts").str.replace(" ", "T", literal=True)
           .str.replace("Z$", "+00:00"))
    ts = (pl.when(pl.col("order_ts").str.contains(TS_REGEX))
          .then(iso.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%:z", time_unit="us", time_zone="UTC",
                                    strict=False)))
    null_required = pl.any_horizontal(pl.col(c).is_null() for c in REQUIRED)
    judged = raw.with_columns(ts.alias("ts")).with_columns(
        pl.when(null_required).then(pl.lit("null_required"))
        .when(pl.col("ts").is_null()).then(pl.lit("bad_ts"))
        .when(pl.col("amount").cast(pl.Float64, strict=True) <= 0).then(pl.lit("nonpositive_amount"))
        .when(pl.col("status").is_null() | ~pl.col("status").is_in(STATUSES)).then(pl.lit("bad_status"))
        .alias("reject_reason"))
    rejected = judged.filter(pl.col("reject_reason").is_not_null())
    rejected.select(*COLUMNS, "reject_reason").write_parquet(
        os.path.join(out_dir, REJECTED_FILE), compression="zstd", compression_level=ZSTD_LEVEL)
    valid = judged.filter(pl.col("reject_reason").is_null())
    kept = (valid.sort(["order_id", "ts", "line"], descending=[False, True, False])
            .unique("order_id", keep="first", maintain_order=True)
            .sort("line")
            .select(
                "order_id", pl.col("user_id").cast(pl.Int64, strict=True), "product_id",
                pl.col("amount").cast(pl.Float64, strict=True), "currency",
                pl.col("ts").alias("order_ts"), "status", "country",
                pl.col("ts").dt.date().alias("order_date")))
    kept.write_parquet(os.path.join(out_dir, KEPT_FILE), compression="zstd", compression_level=ZSTD_LEVEL)
    counts = dict(rejected.group_by("reject_reason").len().iter_rows())
    return raw.height, valid.height, kept.height, counts


def pandas_clean(path, out_dir, threads):
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    del threads  # pandas computes on one thread
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[], quotechar='"',
                      engine="c")
    for c in COLUMNS:
        raw[c] = raw[c].str.strip(" \t").replace("", None)
    matches = raw["order_ts"].str.fullmatch(TS_REGEX).fillna(False).astype(bool)
    ts = pd.to_datetime(raw["order_ts"].where(matches), format="ISO8601", utc=True, errors="coerce")
    raw["ts"] = ts.astype("datetime64[us, UTC]")
    amount = pd.to_numeric(raw["amount"], errors="raise")
    reason = pd.Series(None, index=raw.index, dtype=object)
    status_bad = raw["status"].isna() | ~raw["status"].isin(STATUSES)
    for rule, failed in [
        ("bad_status", status_bad),
        ("nonpositive_amount", amount <= 0),
        ("bad_ts", raw["ts"].isna()),
        ("null_required", raw[REQUIRED].isna().any(axis=1)),
    ]:  # the last assignment wins, so the first rule is applied last
        reason[failed.fillna(False).astype(bool)] = rule
    raw["reject_reason"] = reason
    rejected = raw[reason.notna()]
    rejected_table = pa.Table.from_pandas(rejected[COLUMNS + ["reject_reason"]], preserve_index=False)
    pq.write_table(rejected_table, os.path.join(out_dir, REJECTED_FILE), compression="zstd",
                   compression_level=ZSTD_LEVEL)
    valid = raw[reason.isna()].copy()
    valid["line"] = valid.index
    kept = (valid.sort_values(["order_id", "ts", "line"], ascending=[True, False, True], kind="stable")
            .drop_duplicates("order_id", keep="first")
            .sort_values("line"))
    out = pd.DataFrame({
        "order_id": kept["order_id"], "user_id": kept["user_id"].astype("int64"),
        "product_id": kept["product_id"], "amount": kept["amount"].astype("float64"),
        "currency": kept["currency"], "order_ts": kept["ts"], "status": kept["status"],
        "country": kept["country"], "order_date": kept["ts"].dt.date,
    })
    table = pa.Table.from_pandas(out, preserve_index=False)
    table = table.cast(table.schema.set(table.schema.get_field_index("order_date"),
                                        pa.field("order_date", pa.date32())))
    pq.write_table(table, os.path.join(out_dir, KEPT_FILE), compression="zstd",
                   compression_level=ZSTD_LEVEL)
    counts = rejected["reject_reason"].value_counts().to_dict()
    return len(raw), len(valid), len(kept), counts


ENGINES = {"duckdb": duckdb_clean, "polars": polars_clean, "pandas": pandas_clean}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engine", choices=sorted(ENGINES), required=True)
    ap.add_argument("--in", dest="path", required=True)
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    started = time.perf_counter()
    n_input, n_valid, n_kept, rejected = ENGINES[args.engine](args.path, args.out_dir, args.threads)
    rejected = {r: int(rejected.get(r, 0)) for r in REASONS}
    counts = {
        "peer": args.engine, "threads": args.threads, "input": int(n_input), "kept": int(n_kept),
        "rejected": rejected, "rejected_total": sum(rejected.values()),
        "duplicates": int(n_valid) - int(n_kept),
        "seconds_in_script": round(time.perf_counter() - started, 3),
    }
    if counts["input"] != counts["kept"] + counts["rejected_total"] + counts["duplicates"]:
        raise SystemExit(f"rows do not add up: {counts}")
    with open(os.path.join(args.out_dir, "counts.json"), "w") as fh:
        json.dump(counts, fh, indent=1)
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
