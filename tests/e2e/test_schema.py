"""Schema evolution across deliveries: type widening BIGINT -> DOUBLE ->
VARCHAR, new fields (top-level and nested) added, missing fields NULL, and
rows in older files still readable with the widened types."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import check, eq, read_parquet, run, seq_range, shared, timeout  # noqa: E402


def table_info(s, db, table):
    d = s.get_json("/v1/tables/%s/%s" % (db, table))
    # DuckDB may quote STRUCT field names ("STRUCT(\"x\" VARCHAR)"); compare unquoted
    return d, {c["name"]: c["type"].replace('"', "") for c in d["columns"]}


def col_types(res):
    return [c["type"] for c in res["columns"]]


@timeout(120)
def test_widening_nested_field_across_flushes():
    s = shared()
    db, t = "schema_db", "readings"
    s.ingest(db, t, [{"id": 1, "data": {"device": "a", "temperature": 22}}])
    s.flush(db, t)
    d1, c1 = table_info(s, db, t)
    res = s.query("SELECT id, data.temperature FROM %s.%s ORDER BY id" % (db, t))
    eq(res["rows"], [[1, 22]], "stage 1 rows")
    eq(col_types(res)[1], "BIGINT", "stage 1 type of data.temperature")

    s.ingest(db, t, [{"id": 2, "data": {"device": "b", "temperature": 22.5}}])
    s.flush(db, t)
    d2, c2 = table_info(s, db, t)
    res = s.query("SELECT id, data.temperature FROM %s.%s ORDER BY id" % (db, t))
    eq(res["rows"], [[1, 22.0], [2, 22.5]], "stage 2 rows (old BIGINT row read as DOUBLE)")
    eq(col_types(res)[1], "DOUBLE", "stage 2 type of data.temperature")
    check(d2["schema_version"] > d1["schema_version"], "schema_version did not grow on widening: %d -> %d"
          % (d1["schema_version"], d2["schema_version"]))

    s.ingest(db, t, [{"id": 3, "data": {"device": "c", "temperature": "n/a", "extra": {"fw": "2.1.0"}},
                      "newcol": True}])
    s.flush(db, t)
    d3, c3 = table_info(s, db, t)
    res = s.query("SELECT id, data.temperature, data.device, data.extra, newcol FROM %s.%s ORDER BY id" % (db, t))
    eq(res["rows"], [[1, "22", "a", None, None], [2, "22.5", "b", None, None],
                     [3, "n/a", "c", {"fw": "2.1.0"}, True]], "stage 3 rows")
    eq(col_types(res)[1], "VARCHAR", "stage 3 type of data.temperature")
    eq(col_types(res)[4], "BOOLEAN", "type of newcol")
    check(d3["schema_version"] > d2["schema_version"], "schema_version did not grow: %d -> %d"
          % (d2["schema_version"], d3["schema_version"]))
    check("temperature VARCHAR" in c3["data"] and "extra STRUCT(fw VARCHAR)" in c3["data"],
          "type of data after stage 3: %s" % c3["data"])
    versions = [v["version"] for v in d3["schema_versions"]]
    eq(versions, sorted(versions), "schema_versions in order")
    check(len(versions) >= 3 and d3["schema_version"] == versions[-1], "schema_versions %s" % versions)
    for v in d3["schema_versions"]:
        check(isinstance(v.get("columns"), list) and v["columns"], "schema version without columns: %s" % v)

    # missing fields read as NULL; a narrower value later keeps the wide type
    s.ingest(db, t, [{"id": 4}, {"id": 5, "data": {"device": "e"}}, {"id": 6, "data": {"temperature": 7}}])
    s.flush(db, t)
    d4, c4 = table_info(s, db, t)
    res = s.query("SELECT id, data.temperature, data.device, newcol FROM %s.%s ORDER BY id" % (db, t))
    eq(res["rows"][3:], [[4, None, None, None], [5, None, "e", None], [6, "7", None, None]], "stage 4 rows")
    eq(col_types(res)[1], "VARCHAR", "type of data.temperature after a narrower value")
    eq(c4["data"], c3["data"], "type of data unchanged by narrower or missing values")

    # older files stay as they were written, and readable by an independent reader
    files = sorted(s.lake_files("processed", db, t, "parquet"), key=seq_range)
    eq(len(files), 4, "one Parquet file per flush: %s" % files)
    temps = [[r["data"]["temperature"] if r["data"] else None for r in read_parquet(f)["rows"]] for f in files[:3]]
    eq(temps, [[22], [22.5], ["n/a"]], "temperature as stored in each of the first three files")


def test_widening_top_level_and_within_one_request():
    s = shared()
    db, t = "schema_db", "top"
    s.ingest(db, t, [{"id": 1, "v": 1}, {"id": 2, "v": 2.5}])
    s.flush(db, t)
    res = s.query("SELECT id, v FROM %s.%s ORDER BY id" % (db, t))
    eq((res["rows"], col_types(res)[1]), ([[1, 1.0], [2, 2.5]], "DOUBLE"), "BIGINT and DOUBLE in one request")
    s.ingest(db, t, [{"id": 3, "v": "three"}, {"id": 4, "v": 4}])
    s.flush(db, t)
    res = s.query("SELECT id, v FROM %s.%s ORDER BY id" % (db, t))
    eq(col_types(res)[1], "VARCHAR", "type after a string")
    eq([r[0] for r in res["rows"]], [1, 2, 3, 4], "ids")
    eq([r[1] for r in res["rows"]][1:], ["2.5", "three", "4"], "v as VARCHAR")
    check(res["rows"][0][1] in ("1", "1.0"), "the first value (sent as 1, stored as DOUBLE) read as VARCHAR: %r"
          % res["rows"][0][1])


def test_list_element_widening():
    s = shared()
    db, t = "schema_db", "lists"
    s.ingest(db, t, [{"id": 1, "xs": [1, 2]}])
    s.flush(db, t)
    s.ingest(db, t, [{"id": 2, "xs": [0.5]}])
    s.flush(db, t)
    res = s.query("SELECT id, xs FROM %s.%s ORDER BY id" % (db, t))
    eq(res["rows"], [[1, [1.0, 2.0]], [2, [0.5]]], "lists after widening their elements")
    eq(col_types(res)[1], "DOUBLE[]", "type of xs")


@timeout(120)
def test_null_only_batch_keeps_the_types():
    # A batch in which a field is only null (or a list only empty) says
    # nothing about its type: the columns keep theirs. Mixed kinds still
    # widen to VARCHAR, and a new field seen only as null is VARCHAR.
    s = shared()
    db, t = "schema_db", "nulls"
    s.ingest(db, t, [{"id": 1, "n": 5, "s": {"k": 1}, "l": [{"p": 1}], "m": 1}])
    s.flush(db, t)
    d1, before = table_info(s, db, t)
    s.ingest(db, t, [{"id": 2, "n": None, "s": None, "l": None, "m": None},
                     {"id": 3, "s": {"k": None}, "l": []}])
    s.flush(db, t)
    d2, after = table_info(s, db, t)
    eq(after, before, "column types after a batch of nulls and empty lists")
    eq(d2["schema_version"], d1["schema_version"], "schema version after a batch of nulls")
    eq(s.rows("SELECT AVG(n), AVG(s.k), AVG(l[1].p) FROM %s.%s" % (db, t)), [[5.0, 1.0, 1.0]],
       "typed aggregates still work")
    eq(s.rows("SELECT id, n, s, l FROM %s.%s ORDER BY id" % (db, t)),
       [[1, 5, {"k": 1}, [{"p": 1}]], [2, None, None, None], [3, None, {"k": None}, []]], "rows")
    s.ingest(db, t, [{"id": 4, "m": {"o": 1}, "z": None, "e": []}])
    s.flush(db, t)
    _, last = table_info(s, db, t)
    eq((last["n"], last["m"], last["z"], last["e"]), ("BIGINT", "VARCHAR", "VARCHAR", "VARCHAR[]"),
       "types after an object in a BIGINT column and two new fields seen only as null and empty")
    eq(s.rows("SELECT id, m FROM %s.%s WHERE m IS NOT NULL ORDER BY id" % (db, t)), [[1, "1"], [4, '{"o":1}']],
       "m widened: the number as its text, the object as its JSON text")


@timeout(120)
def test_nested_values_inside_a_list_widen_to_json_text():
    # Struct elements of a list that became VARCHAR[] read as their JSON
    # text whether the widening string came in the same batch or a later one.
    s = shared()
    db = "schema_db"
    s.ingest(db, "lj_apart", [{"id": 1, "l": [{"p": 1, "q": "x"}], "s": {"k": {"a": 1}}}])
    s.flush(db, "lj_apart")
    s.ingest(db, "lj_apart", [{"id": 2, "l": ["s"], "s": {"k": "t"}}])
    s.flush(db, "lj_apart")
    s.ingest(db, "lj_together", [{"id": 1, "l": [{"p": 1, "q": "x"}], "s": {"k": {"a": 1}}},
                                 {"id": 2, "l": ["s"], "s": {"k": "t"}}])
    s.flush(db, "lj_together")
    want = [[1, ['{"p":1,"q":"x"}'], {"k": '{"a":1}'}], [2, ["s"], {"k": "t"}]]
    for t in ("lj_apart", "lj_together"):
        _, types = table_info(s, db, t)
        eq((types["l"], types["s"]), ("VARCHAR[]", "STRUCT(k VARCHAR)"), "%s types" % t)
        eq(s.rows("SELECT id, l, s FROM %s.%s ORDER BY id" % (db, t)), want, "%s rows" % t)


if __name__ == "__main__":
    run(globals())
