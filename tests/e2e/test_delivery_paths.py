"""The two ways a batch becomes Parquet (src/delivery/delivery.h, scan.h):
straight from the log through DuckDB's tarn_log_scan(), or, for a batch
holding a value that way leaves to DuckDB's JSON reader, staged as NDJSON
and read by read_json. Each test checks which way the server's log says
the batch took, and the values queried back, value by value."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import check, eq, run, shared, timeout  # noqa: E402


def delivery_lines(s, db, t):
    tail = s.log_tail(400).splitlines()
    return [ln for ln in tail if ("%s.%s:" % (db, t)) in ln]


def delivered_how(s, db, t):
    lines = [ln for ln in delivery_lines(s, db, t) if ": delivered " in ln]
    check(lines, "no delivery line for %s.%s in the server log:\n%s" % (db, t, s.log_tail(20)))
    last = lines[-1]
    if "parquet from the log" in last:
        return "log"
    if "parquet staged" in last:
        return "staged"
    raise AssertionError("delivery line names no way: %s" % last)


@timeout(120)
def test_straight_from_the_log_keeps_every_value():
    s = shared()
    db, t = "paths_db", "mixed"
    records = [
        {"id": 1, "code": 12345, "name": {"first": "Zo\u00eb", "last": "O\"Neil\\x"}, "tags": ["a", "b"],
         "seen": "2025-11-25T10:00:00Z", "day": "2025-11-25",
         "uid": "8c5b2a4e-1f0b-4c5e-9b1a-2d3e4f5a6b7c", "ok": True, "n": 2.5, "big": 9223372036854775807},
        {"id": 2, "code": "SW1A 1AA", "name": {"first": "\U0001F600", "last": None}, "tags": [],
         "seen": "2025-11-25T10:00:01Z", "day": "2025-11-26",
         "uid": "0C5B2A4E-1F0B-4C5E-9B1A-2D3E4F5A6B7C", "ok": False, "n": -3, "big": -9223372036854775808},
        {"id": 3, "code": -0, "tags": None, "pos": [{"x": 1, "y": [1, 2]}, {"x": None}], "n": 1e300},
        {"id": 4, "code": "case", "line": "a\nb\tc\u0001"},
    ]
    s.ingest(db, t, records)
    s.flush(db, t)
    eq(delivered_how(s, db, t), "log", "the way of a batch the scan converts")
    types = {c["name"]: c["type"] for c in s.get_json("/v1/tables/%s/%s" % (db, t))["columns"]}
    eq([types.get(k) for k in ("code", "seen", "day", "uid", "n", "big")],
       ["VARCHAR", "TIMESTAMP", "DATE", "UUID", "DOUBLE", "BIGINT"], "inferred types")
    res = s.query("SELECT id, code, name.first, name.last, tags, CAST(seen AS VARCHAR), ok, n, big, "
                  "CAST(pos AS VARCHAR), line, CAST(day AS VARCHAR), CAST(uid AS VARCHAR) FROM %s.%s ORDER BY id" % (db, t))
    eq(res["rows"], [
        [1, "12345", "Zo\u00eb", "O\"Neil\\x", ["a", "b"], "2025-11-25 10:00:00", True, 2.5,
         9223372036854775807, None, None, "2025-11-25", "8c5b2a4e-1f0b-4c5e-9b1a-2d3e4f5a6b7c"],
        [2, "SW1A 1AA", "\U0001F600", None, [], "2025-11-25 10:00:01", False, -3.0, -9223372036854775808,
         None, None, "2025-11-26", "0c5b2a4e-1f0b-4c5e-9b1a-2d3e4f5a6b7c"],
        [3, "0", None, None, None, None, None, 1e300, None, "[{'x': 1, 'y': [1, 2]}, {'x': NULL, 'y': NULL}]",
         None, None, None],
        [4, "case", None, None, None, None, None, None, None, None, "a\nb\tc\u0001", None, None],
    ], "rows converted straight from the log")


@timeout(120)
def test_a_value_left_to_the_json_reader_stages_the_batch():
    s = shared()
    db, t = "paths_db", "fraction_text"
    # A fraction and a nested value in a column that is VARCHAR: DuckDB
    # re-prints them through its JSON library, so the scan leaves the batch
    # to read_json.
    records = [{"id": 1, "v": "text"}, {"id": 2, "v": 1.50}, {"id": 3, "v": {"k": [1, 2.0]}}, {"id": 4, "v": 7}]
    s.ingest(db, t, records)
    s.flush(db, t)
    eq(delivered_how(s, db, t), "staged", "the way of a batch with a fraction in a VARCHAR column")
    stopped = [ln for ln in delivery_lines(s, db, t) if "straight from the log stopped" in ln]
    check(stopped and "number 1.5 " in stopped[-1], "no line saying why the scan stopped:\n%s" % s.log_tail(20))
    res = s.query("SELECT id, v FROM %s.%s ORDER BY id" % (db, t))
    eq(res["rows"], [[1, "text"], [2, "1.5"], [3, '{"k":[1,2.0]}'], [4, "7"]], "rows of the staged batch")

    # The next batch of the same table goes straight from the log again.
    s.ingest(db, t, [{"id": 5, "v": "more"}, {"id": 6, "v": 8}])
    s.flush(db, t)
    eq(delivered_how(s, db, t), "log", "the way of the next, plain batch")
    res = s.query("SELECT id, v FROM %s.%s WHERE id > 4 ORDER BY id" % (db, t))
    eq(res["rows"], [[5, "more"], [6, "8"]], "rows of the next batch")


@timeout(120)
def test_keys_spelled_with_other_capitals_land_in_one_column():
    s = shared()
    db, t = "paths_db", "capitals"
    # Before, the top-level "Code" made a column "Code_1" that nothing filled
    # (its values were dropped), and the nested "FIRST" failed every delivery
    # of the batch (DuckDB: Duplicate name in struct).
    s.ingest(db, t, [{"id": 1, "code": "a", "name": {"first": "x", "last": "y"}},
                     {"id": 2, "Code": "b", "name": {"FIRST": "z"}},
                     {"id": 3, "CODE": 7, "Name": {"First": "w", "tags": [{"K": 1}, {"k": 2}]}}])
    s.flush(db, t)
    eq(delivered_how(s, db, t), "log", "the way of a batch with keys in several spellings")
    cols = [(c["name"], c["type"].replace('"', "")) for c in s.get_json("/v1/tables/%s/%s" % (db, t))["columns"]]
    eq(cols[:3], [("id", "BIGINT"), ("code", "VARCHAR"),
                  ("name", "STRUCT(first VARCHAR, last VARCHAR, tags STRUCT(K BIGINT)[])")],
       "one column per name, in the first spelling")
    res = s.query("SELECT id, code, name.first, name.last, CAST(name.tags AS VARCHAR) FROM %s.%s ORDER BY id"
                  % (db, t))
    eq(res["rows"], [[1, "a", "x", "y", None], [2, "b", "z", None, None], [3, "7", "w", None, "[{'K': 1}, {'K': 2}]"]],
       "every value of every spelling")

    # A later batch spelling them another way again.
    s.ingest(db, t, [{"ID": 4, "cOdE": "c", "NAME": {"LAST": "v"}}])
    s.flush(db, t)
    eq(delivered_how(s, db, t), "log", "the way of the next batch")
    res = s.query("SELECT id, code, name.last FROM %s.%s WHERE id = 4" % (db, t))
    eq(res["rows"], [[4, "c", "v"]], "values of a later batch in other spellings")
    cols2 = [c["name"] for c in s.get_json("/v1/tables/%s/%s" % (db, t))["columns"]]
    eq(cols2, [c[0] for c in cols], "no new column for a new spelling")


@timeout(120)
def test_strings_duckdb_cannot_read_back_as_it_typed_them_are_delivered_as_text():
    s = shared()
    db, t = "paths_db", "dmy_dates"
    # DuckDB's inference takes "25-11-2025" for a DATE and its reader then
    # refuses the text: before, such a batch was retried for ever.
    s.ingest(db, t, [{"id": 1, "day": "25-11-2025"}, {"id": 2, "day": "01-12-2025"}])
    s.flush(db, t)
    types = {c["name"]: c["type"] for c in s.get_json("/v1/tables/%s/%s" % (db, t))["columns"]}
    eq(types.get("day"), "VARCHAR", "type of day-month-year dates")
    res = s.query("SELECT id, day FROM %s.%s ORDER BY id" % (db, t))
    eq(res["rows"], [[1, "25-11-2025"], [2, "01-12-2025"]], "day-month-year dates as written")
    check("inferring from every record, strings as VARCHAR" in s.log_tail(400),
          "no line saying the last attempt took strings as VARCHAR:\n%s" % s.log_tail(20))


if __name__ == "__main__":
    run(globals())
