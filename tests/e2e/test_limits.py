"""Server-wide limits: request bodies held in memory at once are capped
(limits.max_inflight); a request over the budget gets 503 with Retry-After
and changes nothing, and the budget comes back when requests complete. A
table whose acknowledged but undelivered bytes pass limits.max_backlog
refuses appends the same way until delivery catches up. A query over its
timeout gets 504. A first write beyond limits.max_tables gets 400
TARN_ELIMIT and creates nothing; a first write that fails leaves no table
behind."""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import check, eq, ndjson, run, start_with_config, timeout  # noqa: E402



def body_of(n_records, start_id):
    return ndjson([{"id": start_id + k, "pad": "z" * 900} for k in range(n_records)])


@timeout(60)
def test_inflight_budget_refuses_then_recovers():
    s = start_with_config("limits:\n  max_inflight: 1MiB\n")
    db, t = "lim", "t"
    s.ingest(db, t, [{"id": -1}])
    big = body_of(850, 0)  # about 790 KB
    # A slow client: headers and most of its body, then it waits.
    slow = socket.create_connection(("127.0.0.1", s.port))
    head = ("POST /v1/tables/%s/%s/records HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
            "Content-Type: application/x-ndjson\r\nContent-Length: %d\r\n\r\n" % (db, t, s.token, len(big)))
    slow.sendall(head.encode() + big[:-100])
    time.sleep(0.5)  # let the server take in what was sent
    second = body_of(400, 10000)  # about 370 KB: over the 1 MiB budget with the first
    r = s.post_records(db, t, second)
    eq(r.status, 503, "status over the in-flight budget (body %r)" % r.body[:200])
    eq(r.json()["error"]["code"], "TARN_EUNAVAILABLE", "code")
    eq(r.header("retry-after"), "1", "Retry-After")
    # The slow request completes; its reply is a normal acknowledgement.
    slow.sendall(big[-100:])
    reply = b""
    while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
        chunk = slow.recv(65536)
        if not chunk:
            break
        reply += chunk
    slow.close()
    check(reply.startswith(b"HTTP/1.1 200"), "slow request reply: %r" % reply[:200])
    # Budget released: the same second request now goes through.
    r = s.post_records(db, t, second)
    eq(r.status, 200, "status once the budget is free (body %r)" % r.body[:200])
    s.flush(db, t)
    eq(s.scalar("SELECT COUNT(*) FROM %s.%s" % (db, t)), 1 + 850 + 400, "rows: nothing from the refused request twice")
    s.stop()


@timeout(90)
def test_backlog_limit_refuses_then_recovers_after_delivery():
    # Nothing is delivered by size or interval: only the flush catches up.
    s = start_with_config("limits:\n  max_backlog: 1MiB\nbuffering:\n  size: 1GiB\n  interval: 1h\n")
    db, t = "lim", "backlog"
    acked, refused, next_id = 0, None, 0
    for _ in range(10):  # about 370 KB a request: over 1 MiB within 4
        body = body_of(400, next_id)
        r = s.post_records(db, t, body)
        if r.status != 200:
            refused = r
            break
        acked += 400
        next_id += 400
    check(refused is not None, "no request was refused after %d records" % acked)
    check(acked * 900 > 1 << 20, "refused before the backlog passed 1 MiB (%d records acknowledged)" % acked)
    eq(refused.status, 503, "status over the backlog (body %r)" % refused.body[:300])
    eq(refused.json()["error"]["code"], "TARN_EUNAVAILABLE", "code")
    eq(refused.header("retry-after"), "1", "Retry-After")
    check("max_backlog" in refused.json()["error"]["message"], "message names the limit: %r" % refused.body[:300])
    st = s.get("/v1/status").json()
    row = [x for x in st["tables"] if x["database"] == db and x["name"] == t][0]
    eq(row["durable_seq"], acked, "the refused request stored nothing")
    check(row["backlog_bytes"] > 1 << 20, "status shows the backlog: %r" % row)
    # Another table is not held back by this one.
    eq(s.post_records(db, "other", body_of(10, 0)).status, 200, "another table still takes records")
    # Delivery catches up: the table takes records again.
    s.flush(db, t)
    st = s.get("/v1/status").json()
    row = [x for x in st["tables"] if x["database"] == db and x["name"] == t][0]
    eq(row["backlog_bytes"], 0, "backlog after the flush")
    r = s.post_records(db, t, body_of(400, next_id))
    eq(r.status, 200, "status after delivery caught up (body %r)" % r.body[:200])
    s.flush(db, t)
    eq(s.scalar("SELECT COUNT(*) FROM %s.%s" % (db, t)), acked + 400, "rows: every acknowledged record, once")
    eq(s.scalar("SELECT COUNT(DISTINCT id) FROM %s.%s" % (db, t)), acked + 400, "distinct ids")
    s.stop()


@timeout(60)
def test_query_timeout_gives_504_and_the_server_stays_usable():
    s = start_with_config("query:\n  timeout: 100ms\n")
    db, t = "lim", "slow"
    s.ingest(db, t, [{"id": k} for k in range(2000)])
    s.flush(db, t)
    t0 = time.monotonic()
    slow = "SELECT COUNT(*) FROM %s.%s a, %s.%s b, %s.%s c WHERE a.id + b.id + c.id = -1" % ((db, t) * 3)
    r = s.post_json("/v1/query", {"sql": slow})
    took = time.monotonic() - t0
    eq(r.status, 504, "status of a query over the timeout (body %r)" % r.body[:300])
    eq(r.json()["error"]["code"], "TARN_ETIMEOUT", "code")
    check(took < 10, "the timeout took %.1f s to stop the query" % took)
    eq(s.scalar("SELECT COUNT(*) FROM %s.%s" % (db, t)), 2000, "a normal query afterwards")
    s.stop()


def table_names(s):
    return sorted("%s.%s" % (t["database"], t["name"]) for t in s.get_json("/v1/tables")["tables"])


@timeout(90)
def test_table_limit_refuses_new_tables_and_changes_nothing():
    cfg = "limits:\n  max_tables: 3\n"
    s = start_with_config(cfg)
    for k in range(3):
        s.ingest("lt", "t%d" % k, [{"id": k}])
    r = s.post_records("lt", "t3", ndjson([{"id": 3}]))
    eq(r.status, 400, "status of a fourth table's first write (body %r)" % r.body[:300])
    err = r.json()["error"]
    eq(err["code"], "TARN_ELIMIT", "code")
    check("limits.max_tables" in err["message"], "message names the setting: %r" % err["message"])
    r = s.post_records("other", "t", ndjson([{"id": 3}]))
    eq(r.status, 400, "a new database's first table, over the limit")
    eq(table_names(s), ["lt.t0", "lt.t1", "lt.t2"], "tables after the refusals")
    eq(sorted(os.listdir(os.path.join(s.data, "stream"))), ["lt"], "stream directories of databases")
    eq(sorted(os.listdir(os.path.join(s.data, "stream", "lt"))), ["t0", "t1", "t2"], "stream directories")
    # Existing tables still take records.
    first, last = s.ingest("lt", "t0", [{"id": 10}, {"id": 11}])
    eq(last - first, 1, "an append to an existing table")
    # A restart with a lower limit opens every table the catalog holds;
    # the limit applies to creating new ones.
    s.stop()
    with open(os.path.join(s.root, "tarn.yaml"), "w") as f:
        f.write("limits:\n  max_tables: 2\n")
    s.start()
    eq(table_names(s), ["lt.t0", "lt.t1", "lt.t2"], "tables after a restart with max_tables 2")
    s.ingest("lt", "t2", [{"id": 20}])
    s.flush("lt", "t0")
    eq(s.rows("SELECT id FROM lt.t0 ORDER BY id"), [[0], [10], [11]], "lt.t0")
    eq(s.post_records("lt", "t9", ndjson([{"id": 9}])).status, 400, "a new table under the lower limit")
    eq(s.stop(), 0, "exit status")


@timeout(60)
def test_failed_first_write_leaves_no_table_behind():
    # A file where the new table's log directory would go: opening its log
    # fails, and the first write must leave neither a catalog entry nor a
    # directory.
    s = start_with_config("")
    s.ingest("keep", "t", [{"id": 1}])
    os.makedirs(os.path.join(s.data, "stream", "fw"))
    blocker = os.path.join(s.data, "stream", "fw", "t")
    with open(blocker, "w") as f:
        f.write("not a directory")
    r = s.post_records("fw", "t", ndjson([{"id": 1}]))
    check(r.status >= 500, "first write onto a blocked log directory: HTTP %d %r" % (r.status, r.body[:300]))
    eq(table_names(s), ["keep.t"], "tables after the failed first write")
    eq(sorted(d["name"] for d in s.get_json("/v1/databases")["databases"]), ["keep"], "databases")
    check(os.path.isfile(blocker), "the file in the way was removed")
    os.unlink(blocker)
    first, last = s.ingest("fw", "t", [{"id": 1}, {"id": 2}])
    eq((first, last), (1, 2), "the first write once the way is clear")
    s.flush("fw", "t")
    eq(s.rows("SELECT id FROM fw.t ORDER BY id"), [[1], [2]], "rows")
    eq(s.stop(), 0, "exit status")


if __name__ == "__main__":
    run(globals())
