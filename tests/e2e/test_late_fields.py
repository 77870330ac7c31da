"""Fields and kinds of values that first appear late in a batch reach the
lake. DuckDB infers a JSON file's columns from its first 20,480 records, and
a write told those columns drops any other key and rounds a 2.5 into a
BIGINT; the delivery infers from the staging pass's schema sample instead,
which holds every key and kind of the batch (src/delivery/stage.h).

Regression test for: a field first seen after record 20,480 of a batch was
silently lost from the Parquet file."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import check, eq, run, start_with_config, timeout  # noqa: E402

N = 30000
LATE = 25001  # the _seq (1-based) of the record that brings the new things


def record(i):
    """The record with _seq i + 1."""
    r = {"id": i, "score": i, "name": "user-%d" % i,
         "profile": {"city": "city-%d" % (i % 7), "age": 20 + i % 50},
         "items": [{"k": i % 5}, {"k": i % 3}]}
    if i + 1 == LATE:
        r["late_top"] = "top-%d" % i                         # a new top-level field
        r["profile"]["late_nested"] = "nested-%d" % i        # a new field in an existing object
        r["score"] = 2.5                                     # a float in an integer column
        r["items"] = [{"k": 1, "late_item": True}]           # a new field in an array of objects
    return r


@timeout(180)
def test_fields_after_record_20480_of_one_batch_are_kept():
    # Nothing is delivered before the flush: the 30,000 records are one batch.
    s = start_with_config("buffering:\n  size: 1GiB\n  interval: 1h\ncompaction:\n  interval: 1h\n")
    db, t = "late_db", "events"
    for start in range(0, N, 10000):  # the request limit is 10,000 records
        s.ingest(db, t, [record(i) for i in range(start, start + 10000)])
    eq(s.flush(db, t, timeout=120)["delivered_seq"], N, "delivered_seq after one flush")
    files = s.lake_files("processed", db, t, "parquet")
    eq(len(files), 1, "Parquet files of one batch: %s" % files)

    res = s.query("SELECT _seq, id, score, name, late_top, profile.city, profile.age, profile.late_nested, items "
                  "FROM %s.%s WHERE _seq BETWEEN %d AND %d ORDER BY _seq" % (db, t, LATE - 1, LATE + 1))
    types = {c["name"]: c["type"] for c in res["columns"]}
    eq(types["score"], "DOUBLE", "type of score (integers, then one float)")
    eq(types["late_top"], "VARCHAR", "type of late_top")
    eq(types["late_nested"], "VARCHAR", "type of profile.late_nested")
    rows = res["rows"]
    eq(len(rows), 3, "rows around the late record")
    before, late, after = rows
    eq(late, [LATE, LATE - 1, 2.5, "user-%d" % (LATE - 1), "top-%d" % (LATE - 1), "city-%d" % ((LATE - 1) % 7),
              20 + (LATE - 1) % 50, "nested-%d" % (LATE - 1), [{"k": 1, "late_item": True}]],
        "the late record, value by value")
    for row in (before, after):
        i = row[0] - 1
        eq(row, [i + 1, i, i, "user-%d" % i, None, "city-%d" % (i % 7), 20 + i % 50, None,
                 [{"k": i % 5, "late_item": None}, {"k": i % 3, "late_item": None}]],
           "record %d next to the late one" % (i + 1))

    # Every record is there, the new fields are NULL in every other one, and
    # no score was rounded.
    eq(s.rows("SELECT COUNT(*), COUNT(late_top), COUNT(profile.late_nested), SUM(score), "
              "COUNT(*) FILTER (WHERE score <> id) FROM %s.%s" % (db, t)),
       [[N, 1, 1, N * (N - 1) // 2 - (LATE - 1) + 2.5, 1]], "counts and the sum of score")
    eq(s.scalar("SELECT COUNT(*) FROM %s.%s WHERE _seq < %d AND (late_top IS NOT NULL OR "
                "profile.late_nested IS NOT NULL OR list_contains(list_transform(items, x -> x.late_item), true))"
                % (db, t, LATE)), 0, "earlier records with a value in a new field")
    eq(s.rows("SELECT late_top, profile.late_nested FROM %s.%s WHERE late_top IS NOT NULL OR "
              "profile.late_nested IS NOT NULL" % (db, t)),
       [["top-%d" % (LATE - 1), "nested-%d" % (LATE - 1)]], "the only values of the new fields")

    # Inferred from the sample: the write did not need the slow fallback.
    with open(s.log_path, encoding="utf-8", errors="replace") as f:
        log = f.read()
    check("inferring from every record" not in log, "the delivery fell back to full inference:\n%s" % s.log_tail())
    s.stop()


HEAD = 2048  # TARN_STAGE_SAMPLE_HEAD: the records a quick scan learns from


@timeout(180)
def test_kinds_first_seen_after_the_head_take_the_full_way():
    """The delivery infers a batch's columns from its first HEAD records and
    converts the rest checking that every value has a kind those records had
    at its place (src/delivery/scan.h, "Quick schema"). A timestamp where the
    head held only dates is such a value: cast to the DATE the head implies
    it would lose its time of day, so the batch must take the full way."""
    s = start_with_config("buffering:\n  size: 1GiB\n  interval: 1h\ncompaction:\n  interval: 1h\n")
    db, t = "late_db", "days"
    n, late = 5000, 4001  # late: the _seq of the record with the timestamp

    def rec(i):
        day = "2025-01-%02d" % (1 + i % 28)
        return {"id": i, "day": "2025-01-02T10:00:00" if i + 1 == late else day, "n": i}

    s.ingest(db, t, [rec(i) for i in range(n)])
    eq(s.flush(db, t, timeout=120)["delivered_seq"], n, "delivered_seq after one flush")
    res = s.query("SELECT _seq, CAST(day AS VARCHAR), n FROM %s.%s WHERE _seq IN (%d, %d, %d) ORDER BY _seq"
                  % (db, t, 1, late, n))
    day_type = [c["type"] for c in s.query("SELECT day FROM %s.%s LIMIT 1" % (db, t))["columns"]][0]
    check(day_type != "DATE", "a date column holding a timestamp must not stay DATE (it is %s)" % day_type)
    eq(res["rows"][1][0], late, "the late record is there")
    check("10:00:00" in res["rows"][1][1], "the late record keeps its time of day: %r" % res["rows"][1][1])
    eq([r[2] for r in res["rows"]], [0, late - 1, n - 1], "n of the first, the late and the last record")
    with open(s.log_path, encoding="utf-8", errors="replace") as f:
        check("quick scan of records 1-5000 stopped" in f.read(), "the quick scan stopped:\n%s" % s.log_tail())

    # The next batch, built like the head, is delivered (after a stop the
    # table takes the full way for a few batches) with every record.
    s.ingest(db, t, [rec(i) for i in range(n, 2 * n)])
    eq(s.flush(db, t, timeout=120)["delivered_seq"], 2 * n, "delivered_seq after the second flush")
    eq(s.query("SELECT COUNT(*), COUNT(DISTINCT id), MAX(n) FROM %s.%s" % (db, t))["rows"],
       [[2 * n, 2 * n, 2 * n - 1]], "rows after two batches")
    s.stop()


@timeout(180)
def test_a_batch_like_its_head_is_converted_whole():
    """A batch whose values all have kinds its head had is delivered in one
    file with every record and value, including the record that reaches the
    byte budget and nothing after it."""
    s = start_with_config("buffering:\n  size: 1MiB\n  max_batch: 1MiB\n  interval: 1h\ncompaction:\n  interval: 1h\n")
    db, t = "late_db", "like_head"
    n = 12000  # about 1.1 MB of records: more than one batch of max_batch 1 MiB

    def rec(i):
        return {"id": i, "name": "user-%05d" % i, "when": "2025-03-%02dT%02d:00:00Z" % (1 + i % 28, i % 24),
                "tags": ["t%d" % (i % 3)], "geo": {"lat": i / 7.0 + 0.5, "ok": i % 2 == 0}}

    for start in range(0, n, 6000):
        s.ingest(db, t, [rec(i) for i in range(start, start + 6000)])
    eq(s.flush(db, t, timeout=120)["delivered_seq"], n, "delivered_seq after the flush")
    files = s.lake_files("processed", db, t, "parquet")
    eq(len(files), 2, "two batches of at most 1 MiB: %s" % files)
    rows = s.query("SELECT id, name, CAST(\"when\" AS VARCHAR), tags, geo.lat, geo.ok FROM %s.%s "
                   "WHERE id IN (0, 5000, 11999) ORDER BY id" % (db, t))["rows"]
    eq(len(rows), 3, "three records by id")
    for row in rows:
        i = row[0]
        want = rec(i)
        eq(row[1], want["name"], "name of %d" % i)
        check(row[2].startswith("2025-03-%02d %02d:00:00" % (1 + i % 28, i % 24)), "when of %d: %r" % (i, row[2]))
        eq(row[3], want["tags"], "tags of %d" % i)
        eq(row[4], want["geo"]["lat"], "geo.lat of %d" % i)
        eq(row[5], want["geo"]["ok"], "geo.ok of %d" % i)
    eq(s.query("SELECT COUNT(*), COUNT(DISTINCT id) FROM %s.%s" % (db, t))["rows"], [[n, n]], "every record once")
    with open(s.log_path, encoding="utf-8", errors="replace") as f:
        eq(f.read().count("parquet quick from the log"), 2, "batches converted the quick way")
    s.stop()


if __name__ == "__main__":
    run(globals())
