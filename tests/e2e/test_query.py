"""Query API end to end: the seeds' example queries over randomuser-shaped
records and the IoT record, value-by-value results (nested fields), CSV as
Athena writes it, value encodings, the result cap, SQL errors."""

import collections
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Server, check, dumps, eq, expect_error, expect_status, note, parse_timestamp, run,  # noqa: E402
                     shared, tempdir, timeout)

# Countries with distinct counts, so "ORDER BY users_count DESC LIMIT 10" has
# one right answer.
COUNTRIES = [("Norway", 31), ("Brazil", 27), ("Germany", 23), ("Canada", 19), ("Australia", 16),
             ("France", 13), ("Spain", 11), ("Iran", 9), ("New Zealand", 7), ("Turkey", 5),
             ("Ireland", 3), ("Finland", 2)]
FIRST = ["Emma", "Liam", "Noah", "Olivia", "Ava", "Mia", "Lucas", "Léa", "Jürgen", "Åsa", "O'Neil", "Zoë"]
LAST = ["Smith", "Silva", "Müller", "Dubois", "García", "Nguyen", "Øvrebø", "Brown", "Wilson", "Taylor"]


def randomuser_records():
    rng = random.Random(20251125)
    countries = [c for c, n in COUNTRIES for _ in range(n)]
    rng.shuffle(countries)
    users = []
    for i, country in enumerate(countries):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        # randomuser.me mixes numeric and text postcodes in one page
        postcode = rng.randint(1000, 99999) if i % 3 else "%s%d %d" % (chr(65 + i % 26), i % 10, i)
        users.append({
            "gender": rng.choice(["female", "male"]),
            "name": {"title": rng.choice(["Mr", "Ms", "Mrs", "Miss"]), "first": first, "last": last},
            "location": {
                "street": {"number": rng.randint(1, 9999), "name": "Street %d" % rng.randint(1, 500)},
                "city": "City%d" % rng.randint(1, 80), "state": "State%d" % rng.randint(1, 20),
                "country": country, "postcode": postcode,
                "coordinates": {"latitude": "%.4f" % rng.uniform(-90, 90),
                                "longitude": "%.4f" % rng.uniform(-180, 180)},
                "timezone": {"offset": "+%d:00" % rng.randint(0, 11), "description": "Somewhere"},
            },
            "email": "%s.%s.%04d@example.com" % (first.lower(), last.lower(), i),
            "login": {"uuid": "%08x-0000-4000-8000-%012x" % (i, rng.getrandbits(48)),
                      "username": "user%d" % i, "password": "pw%d" % i},
            "dob": {"date": "19%02d-%02d-%02dT09:44:18.674Z" % (rng.randint(50, 99), rng.randint(1, 12),
                                                                rng.randint(1, 28)),
                    "age": rng.randint(25, 75)},
            "phone": "(%03d) %03d-%04d" % (rng.randint(100, 999), rng.randint(100, 999), rng.randint(0, 9999)),
            "id": {"name": "ID", "value": None if i % 4 == 0 else "%09d" % rng.randint(0, 10 ** 9 - 1)},
            "picture": {"large": "https://randomuser.me/api/portraits/women/%d.jpg" % (i % 100)},
            "nat": country[:2].upper(),
        })
    return users


_dataset = {}


def randomuser():
    """(server, users): the users ingested once per shared server in three
    requests (array, NDJSON gzip'd, array) and flushed."""
    s = shared()
    if _dataset.get("server") is not s:
        users = randomuser_records()
        s.ingest("randomuser_db", "randomuser", users[:50], form="array")
        s.ingest("randomuser_db", "randomuser", users[50:120], form="ndjson", gzip_body=True)
        s.ingest("randomuser_db", "randomuser", users[120:], form="array")
        s.flush("randomuser_db", "randomuser")
        _dataset.clear()
        _dataset.update(server=s, users=users)
    return s, _dataset["users"]


def pc(v):
    """A postcode as the table stores it: the column is VARCHAR (numbers and
    text mixed), so 12345 reads back as '12345'."""
    return None if v is None else str(v)


def test_seed_count_total_users():
    s, users = randomuser()
    res = s.query("SELECT COUNT(*) as total_users FROM randomuser_db.randomuser;")
    eq(res["columns"], [{"name": "total_users", "type": "BIGINT"}], "columns")
    eq(res["rows"], [[len(users)]], "rows")
    eq((res["row_count"], res["truncated"]), (1, False), "row_count, truncated")
    check(isinstance(res["bytes_scanned"], int) and res["bytes_scanned"] >= 0, "bytes_scanned %r" % res["bytes_scanned"])
    check(isinstance(res["elapsed_ms"], (int, float)) and res["elapsed_ms"] >= 0, "elapsed_ms %r" % res["elapsed_ms"])


def test_seed_users_by_country():
    s, users = randomuser()
    res = s.query("SELECT location.country, COUNT(*) as users_count\nFROM randomuser_db.randomuser \n"
                  "GROUP BY location.country \nORDER BY users_count DESC \nLIMIT 10;")
    eq([c["name"] for c in res["columns"]], ["country", "users_count"], "column names")
    eq([c["type"] for c in res["columns"]], ["VARCHAR", "BIGINT"], "column types")
    counts = collections.Counter(u["location"]["country"] for u in users)
    eq(res["rows"], [[c, n] for c, n in counts.most_common(10)], "rows")


def test_seed_names_limit_5():
    s, users = randomuser()
    res = s.query("SELECT name.first, name.last, email, location.country \nFROM randomuser_db.randomuser \nLIMIT 5;")
    eq([c["name"] for c in res["columns"]], ["first", "last", "email", "country"], "column names")
    eq(len(res["rows"]), 5, "rows")
    sent = {(u["name"]["first"], u["name"]["last"], u["email"], u["location"]["country"]) for u in users}
    for row in res["rows"]:
        check(tuple(row) in sent, "row %r is not one of the users sent" % row)
    eq(len({tuple(r) for r in res["rows"]}), 5, "distinct rows")
    ordered = s.rows("SELECT name.first, name.last, email, location.country FROM randomuser_db.randomuser "
                     "ORDER BY email LIMIT 5")
    want = sorted(users, key=lambda u: u["email"])[:5]
    eq(ordered, [[u["name"]["first"], u["name"]["last"], u["email"], u["location"]["country"]] for u in want],
       "first 5 by email")


def test_nested_fields_value_by_value():
    s, users = randomuser()
    rows = s.rows("SELECT email, location.country, location.city, location.street.number, location.street.name, "
                  "location.postcode, location.coordinates.latitude, dob.age, id.value, name, gender, nat "
                  "FROM randomuser_db.randomuser ORDER BY email")
    want = [[u["email"], u["location"]["country"], u["location"]["city"], u["location"]["street"]["number"],
             u["location"]["street"]["name"], pc(u["location"]["postcode"]),
             u["location"]["coordinates"]["latitude"], u["dob"]["age"], u["id"]["value"], u["name"],
             u["gender"], u["nat"]] for u in sorted(users, key=lambda u: u["email"])]
    eq(len(rows), len(want), "row count")
    for got, exp in zip(rows, want):
        eq(got, exp, "user %s" % exp[0])


def test_whole_struct_column():
    s, users = randomuser()
    u = users[7]
    rows = s.rows("SELECT location, picture FROM randomuser_db.randomuser WHERE email = '%s'" % u["email"])
    loc = dict(u["location"], postcode=pc(u["location"]["postcode"]))
    eq(rows, [[loc, u["picture"]]], "location and picture of %s" % u["email"])


def test_filter_on_nested_field():
    s, users = randomuser()
    n = s.scalar("SELECT COUNT(*) FROM randomuser_db.randomuser WHERE location.country = 'New Zealand' "
                 "AND dob.age >= 40")
    eq(n, sum(1 for u in users if u["location"]["country"] == "New Zealand" and u["dob"]["age"] >= 40), "count")


def test_timestamp_like_strings_keep_their_instant():
    # Whether "1993-07-20T09:44:18.674Z" stays VARCHAR or becomes TIMESTAMP is
    # not fixed by the contract; either way it must denote the same instant.
    s, users = randomuser()
    res = s.query("SELECT email, dob.date FROM randomuser_db.randomuser ORDER BY email LIMIT 3")
    note("type of dob: %s" % [c for c in s.query("SELECT dob FROM randomuser_db.randomuser LIMIT 1")["columns"]])
    want = sorted(users, key=lambda u: u["email"])[:3]
    for (email, got), u in zip(res["rows"], want):
        eq(email, u["email"], "order")
        if got != u["dob"]["date"]:
            a, b = parse_timestamp(got), parse_timestamp(u["dob"]["date"])
            check(a is not None and abs(a - b) < 0.0005,
                  "dob.date of %s: sent %r, got %r" % (email, u["dob"]["date"], got))


def test_unqualified_names_with_database():
    s, users = randomuser()
    res = s.query("SELECT COUNT(*) AS n FROM randomuser", database="randomuser_db")
    eq(res["rows"], [[len(users)]], "count via the database field")


def test_with_select_allowed():
    s, users = randomuser()
    rows = s.rows("WITH c AS (SELECT location.country AS country FROM randomuser_db.randomuser) "
                  "SELECT country, COUNT(*) FROM c WHERE country IN ('Finland', 'Ireland') GROUP BY country "
                  "ORDER BY country")
    eq(rows, [["Finland", 2], ["Ireland", 3]], "rows")


def test_seed_iot_record():
    s = shared()
    rec = {"source": "iot_sensors", "data": {"device_id": "sensor_001", "temperature": 22.5, "humidity": 65,
                                              "timestamp": "2025-11-25T10:00:00Z"},
           "metadata": {"location": "warehouse_a", "firmware_version": "2.1.0"}}
    r = s.request("POST", "/v1/tables/iot/readings/records", dumps(rec), headers={"Content-Type": "application/json"})
    expect_status(r, 200)
    ack = r.json()
    eq((ack["records"], ack["last_seq"] - ack["first_seq"]), (1, 0), "ack")
    s.flush("iot", "readings")
    res = s.query("SELECT source, COUNT(*) AS record_count, AVG(data.temperature) FROM iot.readings GROUP BY source")
    eq(res["rows"], [["iot_sensors", 1, 22.5]], "rows")
    eq([c["type"] for c in res["columns"]], ["VARCHAR", "BIGINT", "DOUBLE"], "types")
    eq([c["name"] for c in res["columns"]][:2], ["source", "record_count"], "names")
    rows = s.rows("SELECT data.device_id, data.humidity, metadata.location, metadata.firmware_version "
                  "FROM iot.readings")
    eq(rows, [["sensor_001", 65, "warehouse_a", "2.1.0"]], "nested values")
    ts = s.scalar("SELECT data.timestamp FROM iot.readings")
    check(ts == "2025-11-25T10:00:00Z" or parse_timestamp(ts) == parse_timestamp("2025-11-25T10:00:00Z"),
          "data.timestamp: sent '2025-11-25T10:00:00Z', got %r" % ts)


def test_seed_raw_data_query_by_source_and_date():
    # Seed 003's "Query raw data", with Tarn's partition column in place of
    # its year/month partitions: WHERE source = ... AND <today's partition>.
    s = shared()
    recs = [{"source": src, "data": {"device_id": "d%d" % k, "temperature": 20 + k}}
            for k, src in enumerate(["iot_sensors", "pos", "iot_sensors", "web", "iot_sensors"])]
    s.ingest("seed003", "raw_data", recs)
    s.flush("seed003", "raw_data")
    today = s.scalar("SELECT CAST(current_date AS VARCHAR)")
    res = s.query("SELECT * FROM seed003.raw_data WHERE source = 'iot_sensors' AND ingestion_date = '%s' "
                  "ORDER BY _seq LIMIT 10" % today)
    names = [c["name"] for c in res["columns"]]
    eq(names, ["source", "data", "_ingested_at", "_seq", "ingestion_date"], "columns of SELECT *")
    eq([(r[0], r[1]["device_id"], r[4]) for r in res["rows"]],
       [("iot_sensors", "d0", today), ("iot_sensors", "d2", today), ("iot_sensors", "d4", today)], "rows")
    eq(s.scalar("SELECT COUNT(*) FROM seed003.raw_data WHERE ingestion_date = DATE '2000-01-01'"), 0,
       "another day's partition")


# jsonplaceholder's /users and /posts, as seed 000's Lambda pulls them.
JP_USERS = [
    {"id": 1, "name": "Leanne Graham", "username": "Bret", "email": "Sincere@april.biz",
     "address": {"street": "Kulas Light", "suite": "Apt. 556", "city": "Gwenborough", "zipcode": "92998-3874",
                 "geo": {"lat": "-37.3159", "lng": "81.1496"}},
     "phone": "1-770-736-8031 x56442", "website": "hildegard.org",
     "company": {"name": "Romaguera-Crona", "catchPhrase": "Multi-layered client-server neural-net",
                 "bs": "harness real-time e-markets"}},
    {"id": 2, "name": "Ervin Howell", "username": "Antonette", "email": "Shanna@melissa.tv",
     "address": {"street": "Victor Plains", "suite": "Suite 879", "city": "Wisokyburgh", "zipcode": "90566-7771",
                 "geo": {"lat": "-43.9509", "lng": "-34.4618"}},
     "phone": "010-692-6593 x09125", "website": "anastasia.net",
     "company": {"name": "Deckow-Crist", "catchPhrase": "Proactive didactic contingency",
                 "bs": "synergize scalable supply-chains"}},
]
JP_POSTS = [{"userId": 1 + (k % 2) if k < 7 else 1, "id": k + 1, "title": "title %d" % (k + 1),
             "body": "line one\nline two of post %d" % (k + 1)} for k in range(10)]


def test_jsonplaceholder_users_and_posts():
    s = shared()
    s.ingest("jsonplaceholder", "users", JP_USERS, form="array")
    s.ingest("jsonplaceholder", "posts", JP_POSTS, form="array")
    s.flush("jsonplaceholder", "users")
    s.flush("jsonplaceholder", "posts")
    rows = s.rows("SELECT u.username, u.company.name, u.address.geo.lat, COUNT(*) AS posts "
                  "FROM jsonplaceholder.posts p JOIN jsonplaceholder.users u ON p.userId = u.id "
                  "GROUP BY ALL ORDER BY posts DESC")
    eq(rows, [["Bret", "Romaguera-Crona", "-37.3159", 7], ["Antonette", "Deckow-Crist", "-43.9509", 3]],
       "posts per user with nested company and geo fields")
    eq(s.rows("SELECT id, body FROM jsonplaceholder.posts WHERE id = 4"), [[4, "line one\nline two of post 4"]],
       "a post's body with its newline")
    cols = {c["name"]: c["type"] for c in s.get_json("/v1/tables/jsonplaceholder/users")["columns"]}
    eq(cols["id"], "BIGINT", "users.id type")
    check(cols["address"].startswith("STRUCT(") and "geo" in cols["address"], "users.address type %r" % cols["address"])


def test_value_encodings():
    s = shared()
    res = s.query("SELECT DATE '2025-01-02' AS d, CAST(1.5 AS DECIMAL(10,2)) AS dec, "
                  "CAST('170141183460469231731687303715884105727' AS HUGEINT) AS h, "
                  "TIMESTAMP '2025-11-25 10:00:00' AS ts, {'a': 1, 'b': 'x'} AS st, [1, 2] AS l, "
                  "true AS bo, NULL AS nu, 'txt' AS s, 42 AS i, 0.25::DOUBLE AS f")
    row = dict(zip([c["name"] for c in res["columns"]], res["rows"][0]))
    eq(row["d"], "2025-01-02", "DATE as a string")
    eq(row["dec"], "1.50", "DECIMAL as a string")
    eq(row["h"], "170141183460469231731687303715884105727", "HUGEINT as a string")
    check(isinstance(row["ts"], str) and parse_timestamp(row["ts"]) == parse_timestamp("2025-11-25T10:00:00Z"),
          "TIMESTAMP as a string: %r" % row["ts"])
    eq(row["st"], {"a": 1, "b": "x"}, "STRUCT as an object")
    eq(row["l"], [1, 2], "LIST as an array")
    eq(row["bo"], True, "BOOLEAN")
    eq(row["nu"], None, "NULL")
    eq(row["s"], "txt", "VARCHAR")
    eq(row["i"], 42, "INTEGER")
    eq(row["f"], 0.25, "DOUBLE")
    types = {c["name"]: c["type"] for c in res["columns"]}
    eq((types["d"], types["dec"], types["h"], types["ts"]), ("DATE", "DECIMAL(10,2)", "HUGEINT", "TIMESTAMP"), "types")


def csv_table():
    s = shared()
    if not s.lake_files("processed", "csv_db", "t", "parquet"):
        s.ingest("csv_db", "t", [
            {"id": 1, "s": "plain", "n": 1.5, "b": True, "e": "", "q": 'he said "hi", ok', "nl": "line1\nline2",
             "z": None},
            {"id": 2, "s": "ünï", "n": -3.0, "b": False, "e": "x", "q": "", "nl": "", "z": None},
            {"id": 3, "s": None, "n": None, "b": None, "e": None, "q": None, "nl": None, "z": None},
        ], form="array")
        s.flush("csv_db", "t")
    return s


def test_csv_as_athena_writes_it():
    s = csv_table()
    r = s.post_json("/v1/query", {"sql": "SELECT id, s, n, b, e, q, nl, z FROM csv_db.t ORDER BY id"},
                    headers={"Accept": "text/csv"})
    expect_status(r, 200)
    check((r.header("content-type") or "").startswith("text/csv"), "Content-Type %r" % r.header("content-type"))
    want = ('"id","s","n","b","e","q","nl","z"\n'
            '"1","plain","1.5","true","","he said ""hi"", ok","line1\nline2",\n'
            '"2","ünï","-3.0","false","x","","",\n'
            '"3",,,,,,,\n').encode("utf-8")
    if r.body != want:
        # -3.0 may legitimately print as -3 (DOUBLE formatting is the engine's)
        alt = want.replace(b'"-3.0"', b'"-3"')
        check(r.body == alt, "CSV body:\nexpected %r\ngot      %r" % (want, r.body))
    # CSV has no room for the figures: they come as headers.
    eq(r.header("x-tarn-row-count"), "3", "X-Tarn-Row-Count")
    eq(r.header("x-tarn-truncated"), "false", "X-Tarn-Truncated")
    check(int(r.header("x-tarn-bytes-scanned") or "0") > 0, "X-Tarn-Bytes-Scanned %r" % r.header("x-tarn-bytes-scanned"))
    check(r.header("x-tarn-elapsed-ms", "").isdigit(), "X-Tarn-Elapsed-Ms %r" % r.header("x-tarn-elapsed-ms"))


def test_csv_empty_result_has_header():
    s = csv_table()
    r = s.post_json("/v1/query", {"sql": "SELECT id, s FROM csv_db.t WHERE id < 0"}, headers={"Accept": "text/csv"})
    expect_status(r, 200)
    eq(r.body, b'"id","s"\n', "CSV of an empty result")


@timeout(120)
def test_result_cap_100000_rows():
    s, users = randomuser()
    n = len(users)
    cross = ("SELECT a.email, b.email FROM randomuser_db.randomuser a CROSS JOIN randomuser_db.randomuser b "
             "CROSS JOIN (VALUES (1), (2), (3), (4), (5)) v(x)")
    check(n * n * 5 > 100000, "test data too small")
    res = s.query(cross)
    eq((res["row_count"], len(res["rows"]), res["truncated"]), (100000, 100000, True), "capped result")
    exact = s.query(cross + " LIMIT 100000")
    eq((exact["row_count"], exact["truncated"]), (100000, False), "a result of exactly 100,000 rows")


@timeout(120)
def test_large_query_spills_into_the_data_directory():
    # A query over query.memory_limit spills to disk: into DATA/tmp/query,
    # which every start empties, never into the server's working directory.
    root = tempdir()
    data = os.path.join(root, "data")
    stale = os.path.join(data, "tmp", "query", "duckdb_temp_storage_left_by_a_crash.tmp")
    os.makedirs(os.path.dirname(stale))
    with open(stale, "wb") as f:
        f.write(b"x" * 4096)
    cfg = os.path.join(root, "tarn.yaml")
    with open(cfg, "w") as f:
        f.write("query:\n  memory_limit: 64MB\n")
    s = Server(root=root, extra_args=["--config", cfg], name="spill").start()
    check(not os.path.exists(stale), "a spill file left in DATA/tmp/query was not removed at start")
    for part in range(2):  # 10,000 records per request at most
        s.ingest("sp", "nums", [{"x": k} for k in range(part * 10000, (part + 1) * 10000)])
    s.flush("sp", "nums")
    # 8 million distinct values: a hash table several times the 64 MB limit.
    res = s.query("SELECT count(*) FROM (SELECT DISTINCT a.x * 1000 + b.x FROM sp.nums a, sp.nums b WHERE b.x < 400)")
    eq(res["rows"], [[8000000]], "the spilling query's result")
    check(os.path.isdir(os.path.join(data, "tmp", "query")), "DuckDB did not spill into DATA/tmp/query")
    check(not os.path.exists(os.path.join(root, ".tmp")), "DuckDB spilled into the server's working directory")
    eq(s.stop(), 0, "exit status on SIGTERM")


@timeout(120)
def test_result_cap_keeps_order_names_and_figures():
    # Without a LIMIT the engine runs the statement with LIMIT 100001 appended;
    # with a LIMIT above the cap or an expression it streams and cuts; either
    # way the first 100,000 rows in the statement's order, its column names.
    s, users = randomuser()
    emails = sorted((u["email"] for u in users), reverse=True)
    cross = ("SELECT a.email AS e, b.email AS e FROM randomuser_db.randomuser a "
             "CROSS JOIN randomuser_db.randomuser b CROSS JOIN (VALUES (1), (2), (3), (4), (5)) v(x) "
             "ORDER BY 1 DESC, 2 DESC")
    want = [[a, b] for a in emails for b in emails for _ in range(5)][:100000]
    for sql in (cross, cross + ";", cross + " -- newest first", cross + " /* newest */ ;\n",
                cross + " LIMIT 100001", cross + " LIMIT 50000 * 2 + 1"):
        res = s.query(sql)
        eq([c["name"] for c in res["columns"]], ["e", "e"], "column names of %r" % sql[-30:])
        eq((res["row_count"], res["truncated"]), (100000, True), "row_count, truncated of %r" % sql[-30:])
        check(res["rows"] == want, "rows of %r are not the first 100,000 in order" % sql[-30:])
    r = s.post_json("/v1/query", {"sql": cross}, headers={"Accept": "text/csv"})
    expect_status(r, 200)
    eq((r.header("x-tarn-row-count"), r.header("x-tarn-truncated")), ("100000", "true"), "X-Tarn figures")
    lines = r.body.decode("utf-8").split("\n")
    eq((lines[0], lines[1], len(lines)), ('"e","e"', '"%s","%s"' % (emails[0], emails[0]), 100002), "CSV")
    small = s.query("SELECT email FROM randomuser_db.randomuser ORDER BY email DESC LIMIT 3; -- top 3")
    eq((small["rows"], small["truncated"]), ([[e] for e in emails[:3]], False), "own LIMIT")


def test_sql_errors():
    s, _ = randomuser()
    expect_error(s.post_json("/v1/query", {"sql": "SELECT no_such_column FROM randomuser_db.randomuser"}), 400,
                 "TARN_ESQL")
    expect_error(s.post_json("/v1/query", {"sql": "SELEC 1"}), 400, ("TARN_ESQL", "TARN_EDENIED"))
    # docs/http-api.md: unknown tables are refused (400) before anything runs
    expect_error(s.post_json("/v1/query", {"sql": "SELECT * FROM randomuser_db.no_such_table"}), 400,
                 ("TARN_ENOTFOUND", "TARN_ESQL", "TARN_EDENIED"))
    expect_error(s.post_json("/v1/query", {"sql": "SELECT * FROM no_such_db.randomuser"}), 400,
                 ("TARN_ENOTFOUND", "TARN_ESQL", "TARN_EDENIED"))
    expect_error(s.request("POST", "/v1/query", b"{not json", headers={"Content-Type": "application/json"}), 400,
                 ("TARN_EJSON", "TARN_EINVAL"))
    expect_error(s.post_json("/v1/query", {"database": "randomuser_db"}), 400, ("TARN_EINVAL", "TARN_EJSON"))
    expect_error(s.post_json("/v1/query", {"sql": ""}), 400, ("TARN_EINVAL", "TARN_ESQL", "TARN_EDENIED"))
    expect_error(s.post_json("/v1/query", {"sql": 42}), 400, ("TARN_EINVAL", "TARN_EJSON"))


if __name__ == "__main__":
    run(globals())
