"""The lake files checked by independent readers: every published .parquet
file read with hyparquet (npm) - Snappy codec in the metadata, row count,
column names, values equal to what was sent - and every raw .json.gz file
decompressed to the NDJSON of the records sent."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (check, eq, note, parse_timestamp, read_parquet, read_raw, run, seq_range, shared,  # noqa: E402
                     timeout, utc_date)


def records(start, n):
    return [{"id": i, "name": "user-%d" % i, "score": i / 4, "active": i % 3 == 0,
             "note": None if i % 2 else "n%d" % i,
             "tags": ["t%d" % (i % 5), "all"], "nums": [i, i * 2],
             "address": {"city": "City%d" % (i % 7), "geo": {"lat": i * 0.5, "lon": -i * 0.25}},
             "events": [{"kind": "login", "n": i}, {"kind": "view", "n": i + 1}],
             "text": "héllo \u2603 \"%d\"\n" % i} for i in range(start, start + n)]


_state = {}


def lake():
    """Three requests, two flushes: at least two published files per zone."""
    s = shared()
    if _state.get("server") is not s:
        sent = {}
        t0 = time.time()
        for recs, form, gzip_body in ((records(0, 40), "array", False), (records(40, 35), "ndjson", True),
                                      (records(75, 25), "ndjson", False)):
            first, last = s.ingest("pq", "users", recs, form=form, gzip_body=gzip_body)
            for k, r in enumerate(recs):
                sent[first + k] = r
            if len(sent) == 40:
                s.flush("pq", "users")
        s.flush("pq", "users")
        _state.clear()
        _state.update(server=s, sent=sent, t0=t0, t1=time.time())
    return s, _state["sent"]


@timeout(120)
def test_parquet_files_read_by_hyparquet():
    s, sent = lake()
    files = s.lake_files("processed", "pq", "users", "parquet")
    check(len(files) >= 2, "expected at least 2 Parquet files after two flushes, found %s" % files)
    seen = []
    for path in files:
        first, last = seq_range(path)
        info = read_parquet(path)
        what = os.path.relpath(path, s.data)
        check(info["codecs"] and all(c == "SNAPPY" for c in info["codecs"]),
              "%s: column chunk codecs %s, expected all SNAPPY" % (what, info["codecs"]))
        eq(info["num_rows"], last - first + 1, "%s: num_rows vs the file name's range" % what)
        eq(len(info["rows"]), info["num_rows"], "%s: rows read" % what)
        eq(sorted(info["columns"]), sorted(list(sent[first].keys()) + ["_ingested_at", "_seq"]),
           "%s: top-level columns" % what)
        eq(sorted(r["_seq"] for r in info["rows"]), list(range(first, last + 1)), "%s: _seq values" % what)
        for row in info["rows"]:
            rec = sent[row["_seq"]]
            for k, v in rec.items():
                eq(row[k], v, "%s: _seq %d column %s" % (what, row["_seq"], k))
            ts = parse_timestamp(row["_ingested_at"])
            check(ts is not None and _state["t0"] - 2 <= ts <= _state["t1"] + 2,
                  "%s: _ingested_at %r outside the ingest window" % (what, row["_ingested_at"]))
        seen += [r["_seq"] for r in info["rows"]]
    eq(sorted(seen), sorted(sent), "_seq over all Parquet files (each record exactly once)")
    note("hyparquet read %d files; created_by %r" % (len(files), info.get("created_by")))


def test_parquet_partition_directories():
    s, sent = lake()
    today = {utc_date(_state["t0"]), utc_date(_state["t1"])}
    for zone, ext in (("processed", "parquet"), ("raw", "json.gz")):
        for path in s.lake_files(zone, "pq", "users", ext):
            part = os.path.basename(os.path.dirname(path))
            check(part in {"ingestion_date=" + d for d in today}, "%s: partition directory %r, expected "
                  "ingestion_date=%s" % (path, part, sorted(today)[0]))
            eq(os.path.dirname(os.path.dirname(path)), os.path.join(s.data, "lake", zone, "pq", "users"),
               "parent of the partition directory")


def test_raw_files_are_ndjson_of_records_sent():
    s, sent = lake()
    raw = s.lake_files("raw", "pq", "users", "json.gz")
    pq = s.lake_files("processed", "pq", "users", "parquet")
    # The raw zone follows the processed one with batches of its own, so file
    # names may differ; partitions may not.
    eq(sorted({os.path.dirname(os.path.relpath(p, os.path.join(s.data, "lake", "raw"))) for p in raw}),
       sorted({os.path.dirname(os.path.relpath(p, os.path.join(s.data, "lake", "processed"))) for p in pq}),
       "raw files lie in the partitions of the Parquet files")
    got = []
    for path in raw:
        first, last = seq_range(path)
        recs = read_raw(path)
        eq(recs, [sent[q] for q in range(first, last + 1)], "%s: records" % os.path.relpath(path, s.data))
        got += range(first, last + 1)
    eq(sorted(got), sorted(sent), "seqs over all raw files")


def test_table_counts_match_files():
    s, sent = lake()
    pq = s.lake_files("processed", "pq", "users", "parquet")
    d = s.get_json("/v1/tables/pq/users")
    eq((d["files"], d["rows"], d["bytes"]), (len(pq), len(sent), sum(os.path.getsize(p) for p in pq)),
       "files, rows, bytes in GET /v1/tables/pq/users")
    eq(s.scalar("SELECT COUNT(*) FROM pq.users"), len(sent), "COUNT(*)")


if __name__ == "__main__":
    run(globals())
