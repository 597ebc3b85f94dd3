#!/usr/bin/env python3
"""The orders-clean workload: what a correct cleaner does with it, and a
deterministic generator of its input.

    python3 workload.py --rows N [--seed S] --out FILE

writes FILE (CSV, about 99 bytes a row) and FILE.expected.json: the counts a
correct cleaner reports and the kept values of the hand-written edge rows,
known by construction. Standard library only; randomness only from
random.Random(seed).random(), so a (rows, seed) pair gives the same bytes on
every Python.

The rules (every peer and `tributary bench clean` apply them):
  1. Trim ASCII space and tab around every field (nothing else).
  2. A field empty after trimming is null, `""` included; `NA`, `null`,
     `N/A` are ordinary strings.
  3. Reject with the first failing rule: null_required (order_id, user_id,
     amount or order_ts null), bad_ts (order_ts outside TS_REGEX or not a
     real calendar date), nonpositive_amount (amount <= 0, -0.00 included),
     bad_status (status null or not exactly one of STATUSES).
  4. Dedupe the valid rows on order_id: the latest order_ts instant (in
     UTC) wins; equal instants, the first in the file. Dropped rows are
     counted as duplicates and written nowhere.
  5. input = kept + rejected + duplicates.
Output: orders_clean.parquet (kept rows in file order: order_id string,
user_id int64, product_id string, amount float64, currency string, order_ts
timestamp[us, UTC], status string, country string, order_date date32),
orders_rejected.parquet (the 8 trimmed input columns and reject_reason, file
order), both zstd level 3 with the engine's other defaults, and counts.json.
"""
import argparse
import datetime as dt
import json
import random

COLUMNS = ["order_id", "user_id", "product_id", "amount", "currency", "order_ts", "status", "country"]
REQUIRED = ["order_id", "user_id", "amount", "order_ts"]
STATUSES = ["created", "paid", "shipped", "delivered", "cancelled", "refunded"]
REASONS = ["null_required", "bad_ts", "nonpositive_amount", "bad_status"]
TRIM = " \t"
# Field ranges are in the pattern so that no engine's leniency (hour 24,
# second 60, "+0800", lowercase z, 7+ fraction digits, no zone) leaks in;
# only impossible days (Feb 30) are left to the date parser.
TS_REGEX = (r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[T ]"
            r"([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?"
            r"(Z|[+-](0[0-9]|1[0-4]):[0-5][0-9])$")
KEPT_FILE = "orders_clean.parquet"
REJECTED_FILE = "orders_rejected.parquet"

EPOCH = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
ZONES = [0, 60, 330, 480, 540, -180, -300, -420, 600, 345]  # minutes east of UTC
CURRENCIES = ["USD", "USD", "USD", "EUR", "EUR", "GBP", "JPY", "INR", "BRL", "AUD"]
COUNTRIES = ["US", "US", "US", "DE", "GB", "FR", "JP", "IN", "BR", "NA", "AU", "NL", "KR", "MX"]
WORDS = ["red", "navy", "olive", "black", "white", "silver", "teal", "amber"]
SIZES = ["XS", "S", "M", "L", "XL"]
NULLS = ["", "  ", "\t", '""', '" "']
BAD_TIMESTAMPS = [
    "2025-03-01T10:00:00",          # no zone
    "2025-03-01T10:00:00+0800",     # basic offset
    "2025-03-01T10:00:00z",         # lowercase z
    "2025-03-01T10:00:00.1234567Z", # 7 fraction digits
    "2025-03-01T10:00Z",            # no seconds
    "2025-03-01T24:00:00Z",         # hour 24
    "2025-03-01T10:00:60Z",         # second 60
    "2025-02-30T10:00:00Z",         # no such day
    "2025/03/01 10:00:00Z",
    "1740823200",
    "N/A",
    "null",
]
BAD_STATUSES = ["PAID", "Delivered", "canceled", "pending", "", "  "]

# Hand-written rows placed evenly through every file:
# (line, reason or None, order_id after trimming, values the kept row must have).
EDGES = [
    ("E-TIE,1,SKU-1,10.00,USD,2025-06-01T12:00:00Z,paid,US", None, "E-TIE", {"amount": 10.0}),
    ("E-TIE,1,SKU-1,20.00,USD,2025-06-01 20:00:00+08:00,paid,US", None, "E-TIE", None),
    ("E-LATER,2,SKU-2,30.00,EUR,2025-06-02T12:00:00Z,paid,DE", None, "E-LATER", {"amount": 30.0}),
    ("E-LATER,2,SKU-2,40.00,EUR,2025-06-02T11:59:59.999999Z,paid,DE", None, "E-LATER", None),
    ("E-UTC,3,SKU-3,50.00,GBP,2025-06-03T10:00:00Z,paid,GB", None, "E-UTC", {"amount": 50.0}),
    ("E-UTC,3,SKU-3,60.00,GBP,2025-06-03 14:00:00+05:00,paid,GB", None, "E-UTC", None),
    (" E-PAD\t,4,SKU-4,11.00,USD,2025-06-04T10:00:00Z,paid,US", None, "E-PAD", None),
    ('"  E-PAD",4,SKU-4,12.00,USD,2025-06-04T10:00:01Z,paid,US', None, "E-PAD", {"amount": 12.0}),
    ("E-NA,5,SKU-5,13.00,NAD,2025-06-05T10:00:00Z,paid,NA", None, "E-NA", {"country": "NA"}),
    ("E-LEAP,6,SKU-6,14.00,USD,2024-02-29T23:30:00-01:00,paid,US", None, "E-LEAP",
     {"order_ts": "2024-03-01T00:30:00.000000Z", "order_date": "2024-03-01"}),
    ("E-EAST,7,SKU-7,15.00,JPY,2025-06-01T00:30:00+09:00,paid,JP", None, "E-EAST",
     {"order_ts": "2025-05-31T15:30:00.000000Z", "order_date": "2025-05-31"}),
    ("E-FRAC,8,SKU-8,16.00,USD,2025-06-01T10:00:00.123456-03:30,paid,US", None, "E-FRAC",
     {"order_ts": "2025-06-01T13:30:00.123456Z"}),
    ("E-TAB,9,SKU-9,17.00,USD,2025-06-01T10:00:00Z,\tshipped ,US", None, "E-TAB", {"status": "shipped"}),
    ("E-UID,  42\t,SKU-10,18.00,USD,2025-06-01T10:00:00Z,paid,US", None, "E-UID", {"user_id": 42}),
    ('E-QUOTE,10,"SKU-11 ""Max"", teal",19.00,USD,2025-06-01T10:00:00Z,paid,US', None, "E-QUOTE",
     {"product_id": 'SKU-11 "Max", teal'}),
    ("E-OPT,11,,20.00,,2025-06-01T10:00:00Z,paid,", None, "E-OPT",
     {"product_id": None, "currency": None, "country": None}),
    ("E-CENT,12,SKU-12,0.01,USD,2025-06-01T10:00:00Z,paid,US", None, "E-CENT", {"amount": 0.01}),
    ("E-NEGZERO,13,SKU-13,-0.00,USD,2025-06-01T10:00:00Z,paid,US", "nonpositive_amount", "E-NEGZERO", None),
    ("E-FEB29,14,SKU-14,21.00,USD,2025-02-29T10:00:00Z,paid,US", "bad_ts", "E-FEB29", None),
    ("E-APR31,14,SKU-14,21.00,USD,2025-04-31 10:00:00+02:00,paid,US", "bad_ts", "E-APR31", None),
    ("E-NAIVE,15,SKU-15,22.00,USD,2025-06-01T10:00:00,paid,US", "bad_ts", "E-NAIVE", None),
    ("E-CASE,16,SKU-16,23.00,USD,2025-06-01T10:00:00Z,Paid,US", "bad_status", "E-CASE", None),
    ('E-EMPTY,17,SKU-17,"",USD,2025-06-01T10:00:00Z,paid,US', "null_required", "E-EMPTY", None),
    ("  ,18,SKU-18,24.00,USD,2025-06-01T10:00:00Z,paid,US", "null_required", None, None),
    ("E-FIRST1,,SKU-19,-1.00,USD,garbage,nope,US", "null_required", "E-FIRST1", None),
    ("E-FIRST2,19,SKU-19,-1.00,USD,garbage,nope,US", "bad_ts", "E-FIRST2", None),
    ("E-FIRST3,20,SKU-19,-1.00,USD,2025-06-01T10:00:00Z,nope,US", "nonpositive_amount", "E-FIRST3", None),
]


def csv_field(text):
    if any(c in text for c in ',"\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def timestamp(instant, zone_minutes, fraction):
    local = instant + dt.timedelta(minutes=zone_minutes)
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    if fraction:
        text += "." + f"{local.microsecond:06d}"[:fraction]
    if zone_minutes == 0:
        return text + "Z"
    sign = "+" if zone_minutes > 0 else "-"
    h, m = divmod(abs(zone_minutes), 60)
    return f"{text}{sign}{h:02d}:{m:02d}"


class Rows:
    """One random source, and the choices the generator makes from it."""

    def __init__(self, seed):
        self.random = random.Random(seed)

    def chance(self, p):
        return self.random.random() < p

    def pick(self, items):
        return items[int(self.random.random() * len(items))]

    def between(self, low, high):
        return low + int(self.random.random() * (high - low + 1))

    def instant(self):
        return EPOCH + dt.timedelta(seconds=self.between(0, 365 * 86400 - 1))

    def valid(self, n):
        """A valid row's fields and its instant."""
        instant = self.instant()
        fraction = self.pick([0, 0, 0, 3, 6])
        if fraction:
            instant += dt.timedelta(microseconds=self.between(0, 999) * 1000)
        product = f"SKU-{self.between(1, 9999)}-{self.pick(WORDS)}-{self.pick(SIZES)}"
        if self.chance(0.05):
            product += f", {self.pick(WORDS)}"
        elif self.chance(0.005):
            product += f' "{self.pick(WORDS)}"'
        fields = [
            f"ORD-2025-{n:010d}",
            str(self.between(1, 2_000_000)),
            product if not self.chance(0.02) else "",
            f"{self.between(1, 99_999) / 100:.2f}",
            self.pick(CURRENCIES) if not self.chance(0.02) else "",
            timestamp(instant, self.pick(ZONES), fraction),
            self.pick(STATUSES),
            self.pick(COUNTRIES) if not self.chance(0.02) else "",
        ]
        return fields, instant

    def fault(self, fields, reason, keep=None):
        """Break the rule `reason`, unless that means rewriting column `keep`
        (an earlier fault's); returns the column it broke."""
        if reason == "null_required":
            column, value = COLUMNS.index(self.pick(REQUIRED)), self.pick(NULLS)
        elif reason == "bad_ts":
            column, value = 5, self.pick(BAD_TIMESTAMPS)
        elif reason == "nonpositive_amount":
            column, value = 3, self.pick(["0.00", "-0.00", f"-{self.between(1, 9999) / 100:.2f}"])
        else:
            column, value = 6, self.pick(BAD_STATUSES)
        if column != keep:
            fields[column] = value
        return column

    def pad(self, fields):
        for _ in range(self.between(1, 2)):
            i = self.between(0, len(fields) - 1)
            if fields[i] and not fields[i].startswith('"'):
                fields[i] = self.pick([" ", "  ", "\t"]) + fields[i] + self.pick(["", " ", "\t "])


def line(fields):
    out = []
    for f in fields:
        # Null forms written as quoted text stay as written.
        out.append(f if f in ('""', '" "') else csv_field(f))
    return ",".join(out)


def generate(rows, seed, path):
    r = Rows(seed)
    edge_every = max(1, rows // (len(EDGES) + 1))
    counts = {reason: 0 for reason in REASONS}
    duplicates = 0
    pending = []  # (due row index, fields of a later copy)
    written = 0
    n = 0
    with open(path, "w", newline="\n") as out:
        out.write(",".join(COLUMNS) + "\n")
        edge = 0
        while written < rows:
            if edge < len(EDGES) and written == (edge + 1) * edge_every - 1:
                out.write(EDGES[edge][0] + "\n")
                edge += 1
                written += 1
                continue
            if pending and pending[0][0] <= written:
                _, fields = pending.pop(0)
                out.write(line(fields) + "\n")
                duplicates += 1
                written += 1
                continue
            n += 1
            fields, instant = r.valid(n)
            draw = r.random.random()
            reason = None
            if draw < 0.03:
                reason = "null_required"
            elif draw < 0.04:
                reason = "bad_ts"
            elif draw < 0.05:
                reason = "nonpositive_amount"
            elif draw < 0.055:
                reason = "bad_status"
            if reason:
                counts[reason] += 1
                broken = r.fault(fields, reason)
                later = REASONS[REASONS.index(reason) + 1:]
                if later and r.chance(0.25):
                    r.fault(fields, r.pick(later), keep=broken)
            elif r.chance(0.02) and written + 200 < rows:
                # A later copy with a strictly later instant, written in another
                # zone so that text order and time order differ.
                copy = list(fields)
                copy[5] = timestamp(instant + dt.timedelta(seconds=r.between(1, 86400)), r.pick(ZONES), 0)
                copy[6] = r.pick(STATUSES)
                pending.append((written + r.between(1, 200), copy))
                pending.sort(key=lambda p: p[0])
            if r.chance(0.08):
                r.pad(fields)
            out.write(line(fields) + "\n")
            written += 1
    # The edge rows' own counts.
    seen = {}
    for _, reason, order_id, _ in EDGES[:edge]:
        if reason:
            counts[reason] += 1
        else:
            seen[order_id] = seen.get(order_id, 0) + 1
    duplicates += sum(c - 1 for c in seen.values())
    rejected = sum(counts.values())
    expected = {
        "input": rows, "kept": rows - rejected - duplicates, "rejected": counts,
        "rejected_total": rejected, "duplicates": duplicates,
        "edge_rows_written": edge,
        "edge_kept": {order_id: want for _, _, order_id, want in EDGES[:edge] if want},
    }
    with open(path + ".expected.json", "w") as fh:
        json.dump(expected, fh, indent=1)
    return expected


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, required=True)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    print(json.dumps(generate(args.rows, args.seed, args.out)))


if __name__ == "__main__":
    main()
