"""Bad input: every malformed, oversized, unauthenticated or forbidden request
gets its documented status and error code, and changes nothing (table list,
row counts, durable sequence numbers, lake files, files outside the lake)."""

import json
import os
import sys
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (check, dumps, eq, expect_error, expect_status, gz, ndjson, note, run, shared,  # noqa: E402
                     timeout, wait_until)

MiB = 1 << 20
DB, TABLE = "badin", "t"
BASE = [{"id": i, "v": "base-%d" % i, "nested": {"x": i}} for i in range(5)]


def setup():
    """The shared server with badin.t holding BASE, delivered."""
    s = shared()
    if not s.lake_files("processed", DB, TABLE, "parquet"):
        s.ingest(DB, TABLE, BASE, form="array")
        s.flush(DB, TABLE)
    return s


def settle(s):
    """Waits (bounded) until no table has undelivered records, so background
    delivery cannot change the snapshot while a bad request is checked."""
    def idle():
        return all(t.get("pending_records") == 0 for t in s.get_json("/v1/status")["tables"])
    try:
        wait_until(idle, 10.0, 0.1, "delivery idle")
    except AssertionError:
        pass  # the snapshot comparison will show what moved


def snapshot(s):
    """Everything a bad request must leave unchanged."""
    st = s.get_json("/v1/status")
    # files of this file's database (other databases are covered by the table
    # list and durable seqs; a wrongly created one would be delivered later)
    lake = []
    for zone in ("raw", "processed"):
        for dp, _, fs in os.walk(os.path.join(s.data, "lake", zone, DB)):
            lake += [os.path.join(dp, f) for f in fs]
    return {
        "databases": sorted(d["name"] for d in s.get_json("/v1/databases")["databases"]),
        "tables": sorted((t["database"], t["name"], t["rows"], t["files"], t["delivered_seq"])
                         for t in s.get_json("/v1/tables")["tables"]),
        "durable": sorted((t["database"], t["name"], t["durable_seq"]) for t in st["tables"]),
        "rows": s.rows("SELECT id, v FROM %s.%s ORDER BY _seq" % (DB, TABLE)),
        "lake": sorted(lake),
    }


class Unchanged:
    """with Unchanged(s, what): ... asserts the snapshot is the same after."""

    def __init__(self, s, what):
        self.s, self.what = s, what

    def __enter__(self):
        settle(self.s)
        self.before = snapshot(self.s)
        return self

    def __exit__(self, et, ev, tb):
        if et is not None:
            return False
        after = snapshot(self.s)
        for k in self.before:
            eq(after[k], self.before[k], "%s after %s" % (k, self.what))
        return False


def post(s, body, ct="application/x-ndjson", db=DB, table=TABLE, gzip_body=False, **kw):
    return s.post_records(db, table, body, ct, gzip_body, **kw)


def record_error(s, body, ct, index, start, end, code="TARN_EJSON", gzip_body=False, status=400):
    """The error names record index and a byte offset within [start, end]."""
    with Unchanged(s, "a bad body %r" % body[:80]):
        err = expect_error(post(s, body, ct, gzip_body=gzip_body), status, code)
    eq(err.get("index"), index, "error index for %r (error %s)" % (body[:80], err))
    off = err.get("offset")
    check(isinstance(off, int) and start <= off <= end,
          "error offset %r for %r not within the bad record's bytes [%d, %d] (error %s)"
          % (off, body[:80], start, end, err))
    return err


def test_malformed_json_ndjson_index_and_offset():
    s = setup()
    good = ndjson([{"id": 100}, {"id": 101}])
    bad = b'{"id": 102, "b" 7}'
    body = good + bad + b"\n" + ndjson([{"id": 103}])
    err = record_error(s, body, "application/x-ndjson", 2, len(good), len(good) + len(bad))
    note("NDJSON error reported at offset %d (bad byte '7' is at %d): %s"
         % (err["offset"], len(good) + bad.index(b"7"), err["message"]))


def test_malformed_json_array_index_and_offset():
    s = setup()
    body = b'[{"id": 100}, {"id": 101},\n {"id": 102, "x": [1, 2,]}, {"id": 103}]'
    start = body.index(b'{"id": 102')
    record_error(s, body, "application/json", 2, start, body.index(b'{"id": 103'))


def test_malformed_json_gzip_offset_is_in_decompressed_body():
    s = setup()
    good = ndjson([{"id": i, "pad": "p" * 50} for i in range(20)])
    bad = b'{"id": 999, "oops": tru}'
    body = good + bad + b"\n"
    record_error(s, body, "application/x-ndjson", 20, len(good), len(body), gzip_body=True)


def test_all_or_nothing():
    s = setup()
    recs = ndjson([{"id": 200 + i} for i in range(50)])
    with Unchanged(s, "49 good records and one bad"):
        expect_error(post(s, recs + b'{"id": 250,}\n'), 400, "TARN_EJSON")
    with Unchanged(s, "a good array with a non-object at the end"):
        expect_error(post(s, b'[{"id": 300}, {"id": 301}, 5]', "application/json"), 400, ("TARN_EINVAL", "TARN_EJSON"))


def test_other_syntax_errors():
    s = setup()
    cases = [
        (b'{"id": 1} trailing', "application/json"),
        (b'{"id": 1', "application/json"),
        (b'[{"id": 1}', "application/json"),
        (b'{"id": 01}', "application/json"),
        (b'{"id": NaN}', "application/json"),
        (b"{'id': 1}", "application/json"),
        (b'{"s": "raw \x01 control"}', "application/json"),
        (b'{"s": "bad \\q escape"}', "application/json"),
        (b'{"s": "bad utf-8 \xff\xfe"}', "application/json"),
        (b'{"s": "overlong \xc0\xaf"}', "application/json"),
        (b'{"id": 1}\n{"id": 2', "application/x-ndjson"),
    ]
    for body, ct in cases:
        with Unchanged(s, "body %r" % body):
            err = expect_error(post(s, body, ct), 400, "TARN_EJSON", "POST %r (%s)" % (body, ct))
            check("index" in err and "offset" in err, "record error without index/offset for %r: %s" % (body, err))


def test_non_object_records():
    s = setup()
    for body, ct, index in ((b"[1, 2]", "application/json", 0), (b'"just a string"', "application/json", 0),
                            (b"42", "application/json", 0), (b"null", "application/json", 0),
                            (b"[[{}]]", "application/json", 0), (b'[{"id": 1}, [2]]', "application/json", 1),
                            (b'{"id": 1}\n[2]\n', "application/x-ndjson", 1),
                            (b'{"id": 1}\n"s"\n', "application/x-ndjson", 1)):
        with Unchanged(s, "body %r" % body):
            err = expect_error(post(s, body, ct), 400, ("TARN_EINVAL", "TARN_EJSON"), "POST %r" % body)
        eq(err.get("index"), index, "index of the non-object in %r" % body)


def test_empty_bodies():
    s = setup()
    for body, ct in ((b"", "application/json"), (b"", "application/x-ndjson"), (b"\n\n", "application/x-ndjson"),
                     (b"[]", "application/json"), (b"   ", "application/json")):
        with Unchanged(s, "empty body %r" % body):
            expect_error(post(s, body, ct), 400, ("TARN_EINVAL", "TARN_EJSON"), "POST %r (%s)" % (body, ct))


def test_reserved_top_level_keys():
    s = setup()
    for key in ("_seq", "_ingested_at", "ingestion_date"):
        body = ndjson([{"id": 1}, {"id": 2, key: "x"}])
        with Unchanged(s, "reserved key %s" % key):
            err = expect_error(post(s, body), 400, "TARN_EINVAL", "record with top-level %r" % key)
        eq(err.get("index"), 1, "index of the record with %r" % key)


def test_keys_that_cannot_be_columns():
    """Column and STRUCT field names are case-insensitive and non-empty, so
    keys that would collide or vanish are refused with their position."""
    s = setup()
    cases = (
        (b'{"id":1}\n{"id":2,"Name":"a","name":"b"}\n', 1, 28, "differ only in case"),
        (b'{"id":1,"loc":{"City":"x","city":"y"}}\n', 0, 26, "differ only in case"),
        (b'{"id":1,"id":2}\n', 0, 8, 'duplicate key "id"'),
        (b'{"id":1,"":2}\n', 0, 8, "empty"),
    )
    for body, index, offset, words in cases:
        with Unchanged(s, "keys %r" % body):
            err = expect_error(post(s, body), 400, "TARN_EINVAL", "POST %r" % body)
        eq(err.get("index"), index, "index for %r" % body)
        eq(err.get("offset"), offset, "offset for %r" % body)
        check(words in err.get("message", ""), "message %r lacks %r" % (err.get("message"), words))


def nest(depth):
    """A record whose nesting depth is exactly depth (the record itself is 1)."""
    obj = {"leaf": 1}
    for _ in range(depth - 1):
        obj = {"a": obj}
    return obj


def test_too_deep():
    s = setup()
    body = ndjson([{"id": 1}, nest(65)])
    with Unchanged(s, "depth 65"):
        err = expect_error(post(s, body), 400, "TARN_EDEPTH")
    eq(err.get("index"), 1, "index of the too-deep record")
    arrays = b'{"a": ' + b"[" * 64 + b"1" + b"]" * 64 + b"}"
    with Unchanged(s, "arrays 65 deep"):
        expect_error(post(s, arrays, "application/json"), 400, "TARN_EDEPTH")
    with Unchanged(s, "100,000 open brackets"):
        expect_error(post(s, b'{"a": ' + b"[" * 100000, "application/json"), 400, ("TARN_EDEPTH", "TARN_EJSON"))


@timeout(120)
def test_depth_64_accepted():
    s = setup()
    rec = nest(64)
    s.ingest(DB, "deep64", [rec])
    s.flush(DB, "deep64")
    path = ".".join(["a"] * 62 + ["leaf"])
    eq(s.scalar("SELECT a.%s FROM %s.deep64" % (path, DB)), 1, "leaf of a 64-deep record")


@timeout(120)
def test_record_too_large():
    s = setup()
    big = {"id": 1, "s": "x" * (MiB + 10)}
    body = dumps(big)
    check(len(body) > MiB, "test record is %d bytes" % len(body))
    with Unchanged(s, "a record over 1 MiB"):
        err = expect_error(post(s, ndjson([{"id": 0}]) + body + b"\n"), 413, "TARN_ETOOBIG")
    eq(err.get("index"), 1, "index of the oversized record")
    just = {"id": 2, "s": "y" * (MiB - 100)}
    check(len(dumps(just)) <= MiB, "test record too large")
    s.ingest(DB, "bigrec", [just])
    s.flush(DB, "bigrec")
    eq(s.scalar("SELECT length(s) FROM %s.bigrec" % DB), MiB - 100, "length of a just-under-1-MiB value")


@timeout(120)
def test_request_too_large():
    s = setup()
    rec = {"s": "z" * (100 * 1024)}
    body = ndjson([dict(rec, id=i) for i in range(105)])
    check(len(body) > 10 * MiB, "body is %d bytes" % len(body))
    with Unchanged(s, "a 10.3 MiB body"):
        expect_error(post(s, body), 413, "TARN_ETOOBIG")
    with Unchanged(s, "a 10.3 MiB body, gzip'd"):
        expect_error(post(s, body, gzip_body=True), 413, "TARN_ETOOBIG")


def test_too_many_records():
    s = setup()
    body = ndjson([{"i": i} for i in range(10001)])
    with Unchanged(s, "10,001 records"):
        expect_error(post(s, body), 413, "TARN_ETOOBIG")
    with Unchanged(s, "10,001 records as an array"):
        expect_error(post(s, dumps([{"i": i} for i in range(10001)]), "application/json"), 413, "TARN_ETOOBIG")
    ok = ndjson([{"i": i} for i in range(10000)])
    r = post(s, ok, table="tenk")
    expect_status(r, 200)
    eq(r.json()["records"], 10000, "records in a 10,000-record request")
    s.flush(DB, "tenk")
    eq(s.rows("SELECT COUNT(*), COUNT(DISTINCT i), MIN(i), MAX(i) FROM %s.tenk" % DB), [[10000, 10000, 0, 9999]],
       "10,000 records stored")


def test_wrong_content_type():
    s = setup()
    for ct in ("text/plain", "application/xml", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded"):
        with Unchanged(s, "Content-Type %s" % ct):
            expect_error(post(s, b'{"id": 1}', ct), 415, "TARN_EMEDIA", "Content-Type %s" % ct)
    with Unchanged(s, "no Content-Type"):
        expect_error(post(s, b'{"id": 1}', None), 415, "TARN_EMEDIA", "no Content-Type")
    with Unchanged(s, "Content-Encoding br"):
        r = post(s, b'{"id": 1}', "application/json", headers={"Content-Encoding": "br"})
        expect_error(r, 415, "TARN_EMEDIA", "Content-Encoding br")
    # a refusal decided from the headers still reads and drops a body that
    # is sent whole, so the connection serves the next request
    with Unchanged(s, "Content-Type text/plain with a 2 MiB body"):
        expect_error(post(s, b"x" * (2 * MiB), "text/plain"), 415, "TARN_EMEDIA", "text/plain, 2 MiB")


def test_bad_query_parameters():
    s = setup()
    with Unchanged(s, "GET /v1/tables?database=bad-name"):
        expect_error(s.get("/v1/tables?database=bad-name"), 400, "TARN_EINVAL", "?database=bad-name")
    with Unchanged(s, "flush ?wait=never"):
        expect_error(s.request("POST", "/v1/tables/%s/%s/flush?wait=never" % (DB, TABLE)), 400, "TARN_EINVAL",
                     "flush ?wait=never")
    listed = s.get_json("/v1/tables?database=%s" % DB)["tables"]
    eq(sorted({t["database"] for t in listed}), [DB], "?database= lists that database alone")


def test_corrupt_gzip():
    s = setup()
    good = gz(ndjson([{"id": i} for i in range(200)]))
    flipped = bytearray(good)
    flipped[len(flipped) // 2] ^= 0xFF
    bad_crc = bytearray(good)
    bad_crc[-8] ^= 0x01
    cases = {"garbage": b"this is not gzip at all", "flipped byte": bytes(flipped),
             "truncated": good[: len(good) // 2], "bad CRC": bytes(bad_crc), "header only": good[:10]}
    for name, body in cases.items():
        with Unchanged(s, "corrupt gzip (%s)" % name):
            r = post(s, body, "application/x-ndjson", headers={"Content-Encoding": "gzip"})
            expect_error(r, 400, ("TARN_EINVAL", "TARN_EJSON", "TARN_ECORRUPT"), "corrupt gzip (%s)" % name)


def bomb(total, unit):
    """gzip of `total` bytes made of `unit` repeated, built in pieces."""
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = unit * (MiB // len(unit))
    out = []
    for _ in range(total // len(chunk)):
        out.append(c.compress(chunk))
    out.append(c.flush())
    return b"".join(out)


@timeout(120)
def test_gzip_bombs():
    s = setup()
    zeros = bomb(50 * MiB, b"\0")
    note("50 MiB of zeros gzip'd to %d bytes" % len(zeros))
    with Unchanged(s, "a gzip bomb of zeros"):
        r = post(s, zeros, "application/x-ndjson", headers={"Content-Encoding": "gzip"})
        err = expect_error(r, 413, "TARN_ETOOBIG", "50 MiB of zeros in %d gzip'd bytes" % len(zeros))
        check("after decompression" in err.get("message", ""), "gzip bomb of zeros: message %r" % err)
    recs = bomb(200 * MiB, b'{"a":0}\n')
    note("200 MiB of NDJSON records gzip'd to %d bytes" % len(recs))
    with Unchanged(s, "a gzip bomb of valid records"):
        r = post(s, recs, "application/x-ndjson", headers={"Content-Encoding": "gzip"})
        expect_error(r, 413, "TARN_ETOOBIG", "200 MiB of records in %d gzip'd bytes" % len(recs))
    eq(s.get("/health", token=None).status, 200, "health after the bombs")


def test_invalid_names():
    s = setup()
    strict = [("bad-name", TABLE), (DB, "bad-name"), ("semi;colon", TABLE), (DB, "x" * 129), ("y" * 129, TABLE),
              ("%C3%A9t%C3%A9", TABLE), (DB, "a.b"), ("a%20b", TABLE), (DB, "t%27--"), (DB, "t%22x")]
    # names that a server may also treat as a routing matter (NUL, "..", "/"): 400 or 404
    lenient = [(DB, "%00"), (DB, "%2E%2E"), ("%2Fetc", TABLE), (DB, "t%2Fx"), (DB, "..")]
    failures = []
    for (db, table), statuses in [(n, (400,)) for n in strict] + [(n, (400, 404)) for n in lenient]:
        what = "POST /v1/tables/%s/%s/records" % (db, table)
        try:
            with Unchanged(s, what):
                r = post(s, b'{"id": 1}', "application/json", db=db, table=table)
                check(r.status in statuses, "%s: expected %s, got %d %s" % (what, " or ".join(map(str, statuses)),
                                                                             r.status, r.text()[:200]))
                if r.status == 400:
                    expect_error(r, 400, "TARN_EINVAL", what)
        except AssertionError as e:
            failures.append(str(e)[:400])
    for db, table in (("bad-name", TABLE), (DB, "x" * 129)):
        r = s.request("POST", "/v1/tables/%s/%s/flush" % (db, table))
        if r.status not in (400, 404):
            failures.append("flush of invalid name %s.%s: %d %s" % (db, table, r.status, r.text()[:200]))
    check(not failures, "%d invalid names not refused as expected:\n  %s" % (len(failures), "\n  ".join(failures)))


def test_missing_and_wrong_token():
    s = setup()
    endpoints = [("POST", "/v1/tables/%s/%s/records" % (DB, TABLE), b'{"id": 9}', "application/json"),
                 ("POST", "/v1/tables/%s/%s/records" % (DB, "newtable_noauth"), b'{"id": 9}', "application/json"),
                 ("POST", "/v1/tables/%s/%s/flush" % (DB, TABLE), None, None),
                 ("POST", "/v1/query", json.dumps({"sql": "SELECT 1"}).encode(), "application/json"),
                 ("GET", "/v1/databases", None, None), ("GET", "/v1/tables", None, None),
                 ("GET", "/v1/tables/%s/%s" % (DB, TABLE), None, None), ("GET", "/v1/status", None, None)]
    variants = {"no token": {}, "wrong token": {"Authorization": "Bearer " + "0" * len(s.token)},
                "token prefix": {"Authorization": "Bearer " + s.token[:-1]},
                "token + extra": {"Authorization": "Bearer " + s.token + "x"},
                "empty bearer": {"Authorization": "Bearer "},
                "basic scheme": {"Authorization": "Basic " + s.token},
                "bare token": {"Authorization": s.token}}
    for method, path, body, ct in endpoints:
        for vname, hdrs in variants.items():
            h = dict(hdrs)
            if ct:
                h["Content-Type"] = ct
            with Unchanged(s, "%s %s with %s" % (method, path, vname)):
                r = s.request(method, path, body, headers=h, token=None)
                expect_error(r, 401, "TARN_EAUTH", "%s %s with %s" % (method, path, vname))
                check(s.token not in r.text(), "the reply to a bad token contains the admin token")


SQL_DENIED = [
    "COPY badin.t TO '{tmp}/copy_out.csv'",
    "COPY (SELECT * FROM badin.t) TO '{lake}/processed/badin/t/evil.parquet' (FORMAT parquet)",
    "COPY badin.t FROM '/etc/passwd'",
    "ATTACH '{tmp}/attached.db' AS evil",
    "ATTACH ':memory:' AS evil",
    "DETACH badin",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET enable_external_access = true",
    "SET allowed_directories = ['/']",
    "RESET lock_configuration",
    "PRAGMA database_list",
    "PRAGMA enable_profiling",
    "CREATE TABLE badin.evil AS SELECT 1 AS x",
    "CREATE VIEW evil AS SELECT 1 AS x",
    "CREATE MACRO evil(x) AS x",
    "CREATE SECRET evil (TYPE s3, KEY_ID 'a', SECRET 'b')",
    "INSERT INTO badin.t (id, v) VALUES (999, 'inserted')",
    "UPDATE badin.t SET v = 'changed'",
    "DELETE FROM badin.t",
    "DROP VIEW badin.t",
    "DROP TABLE badin.t",
    "ALTER VIEW badin.t RENAME TO t2",
    "EXPORT DATABASE '{tmp}/export'",
    "CALL duckdb_settings()",
    "EXPLAIN SELECT * FROM badin.t",
    "DESCRIBE badin.t",
    "SHOW TABLES",
    "SUMMARIZE badin.t",
    "USE badin",
    "CHECKPOINT",
    "VACUUM",
    "BEGIN TRANSACTION",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_csv_auto('/etc/passwd')",
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM read_blob('/etc/passwd')",
    "SELECT * FROM read_json('/etc/passwd')",
    "SELECT * FROM read_parquet('{lake}/processed/badin/t/**/*.parquet')",
    "SELECT * FROM parquet_metadata('{lake}/processed/badin/t/**/*.parquet')",
    "SELECT * FROM glob('/etc/*')",
    "SELECT * FROM duckdb_settings()",
    "SELECT * FROM duckdb_secrets()",
    "SELECT * FROM range(10)",
    "SELECT * FROM '/etc/passwd'",
    "FROM '/etc/passwd'",
    "SELECT * FROM '{lake}/processed/badin/t/**/*.parquet'",
    "SELECT * FROM '../../../../etc/passwd'",
    "SELECT * FROM (SELECT * FROM read_csv('/etc/passwd'))",
    "WITH x AS (SELECT * FROM read_text('/etc/passwd')) SELECT * FROM x",
    "SELECT id FROM badin.t WHERE v IN (SELECT column0 FROM read_csv('/etc/passwd'))",
    "SELECT id FROM badin.t UNION ALL SELECT 1 FROM read_text('/etc/passwd')",
    "SELECT * FROM badin.t, read_text('/etc/passwd')",
    "SELECT 1; SELECT 2",
    "SELECT * FROM badin.t; DROP VIEW badin.t",
    "SELECT 1; COPY badin.t TO '{tmp}/copy2.csv'",
    # The engine appends "\nLIMIT <cap + 1>" to statements without a LIMIT;
    # nothing in the text may turn that into something else.
    "SELECT 1; COPY badin.t TO '{tmp}/copy3.csv' --",
    "SELECT 1; COPY badin.t TO '{tmp}/copy4.csv';",
    "SELECT * FROM badin.t; COPY badin.t TO '{tmp}/copy5.csv' /* */",
    "SELECT 1 UNION ALL SELECT 1 FROM read_text('/etc/passwd') --",
    "SELECT * FROM badin.t LIMIT 1; DROP VIEW badin.t",
    "SELECT 1 /*",
    "SELECT 1 --\n; DROP VIEW badin.t",
]


@timeout(120)
def test_sql_not_allowed():
    s = setup()
    tmp = os.path.join(s.root, "sqlout")
    os.makedirs(tmp, exist_ok=True)
    lake = os.path.join(s.data, "lake")
    failures = []
    for template in SQL_DENIED:
        sql = template.format(tmp=tmp, lake=lake)
        try:
            with Unchanged(s, "SQL %r" % sql):
                r = s.post_json("/v1/query", {"sql": sql})
                if r.status != 400:
                    failures.append("%r -> HTTP %d %s" % (sql, r.status, r.text()[:200]))
                    continue
                err = r.json().get("error", {})
                if err.get("code") not in ("TARN_EDENIED", "TARN_ESQL"):
                    failures.append("%r -> 400 with code %r" % (sql, err.get("code")))
                if "root:" in r.text():
                    failures.append("%r -> reply leaks /etc/passwd: %s" % (sql, r.text()[:200]))
        except AssertionError as e:
            failures.append(str(e)[:300])
    created = [os.path.join(dp, f) for dp, _, fs in os.walk(tmp) for f in fs]
    if created:
        failures.append("files written by refused SQL: %s" % created)
    # still intact afterwards
    eq(s.rows("SELECT id, v FROM badin.t ORDER BY id"), [[r["id"], r["v"]] for r in BASE], "badin.t after the SQL")
    check(not failures, "%d statements not refused as expected:\n  %s" % (len(failures), "\n  ".join(failures)))


def test_sql_denied_code_is_edenied():
    s = setup()
    for sql in ("COPY badin.t TO '/tmp/x.csv'", "ATTACH '/tmp/x.db'", "INSTALL httpfs", "LOAD httpfs",
                "SET threads = 1", "PRAGMA version", "CREATE TABLE x (a INT)", "INSERT INTO badin.t (id) VALUES (1)",
                "SELECT * FROM read_csv('/etc/passwd')", "SELECT * FROM '/etc/passwd'", "SELECT 1; SELECT 2"):
        expect_error(s.post_json("/v1/query", {"sql": sql}), 400, "TARN_EDENIED", "SQL %r" % sql)


def test_quoted_path_as_identifier_is_unknown_table():
    s = setup()
    with Unchanged(s, 'FROM "/etc/passwd"'):
        r = s.post_json("/v1/query", {"sql": 'SELECT * FROM "/etc/passwd"'})
        expect_error(r, 400, ("TARN_ENOTFOUND", "TARN_EDENIED", "TARN_ESQL"))
        check("root:" not in r.text(), "reply leaks /etc/passwd")


if __name__ == "__main__":
    run(globals())
