"""Concurrency end to end, black-box: a slow query does not hold up ingest,
health or catalog reads; several slow queries at once each get a whole reply
while ingest goes on; many requests on one kept-alive connection; HTTP/1.1
pipelining (several requests in one send, replies in order); clients that
vanish mid-request; SIGTERM with requests in flight (every acknowledged
record exactly once after a restart); SIGTERM cancels running queries (503)
instead of waiting for them; a large body next to small ones.

These hold whatever the server's threading model (one thread per connection,
or an event loop with a worker pool and ingest requests suspended until their
fsync): they watch only what a client sees. Every wait is bounded; a hang
fails the test through a socket timeout or the per-test limit."""

import collections
import http.client
import json
import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (STOP_TIMEOUT, Server, check, dumps, eq, expect_status, ndjson, note, run,  # noqa: E402
                     tempdir, timeout, wait_until)

# Queries end by this timeout at the latest (504 TARN_ETIMEOUT), so a "slow
# query" lasts about this long on any machine. Keep it well above the time the
# concurrent work needs (a few hundred ms) and well below the test limits.
QUERY_TIMEOUT_S = 5
CONFIG = "query:\n  timeout: %ds\n" % QUERY_TIMEOUT_S

SLOW_ROWS = 2000
# 2,000^3 = 8e9 combinations: far longer than the timeout (about 1.6 s per
# 1e9 on 2 cores), so it always ends by the timeout.
SLOW_SQL = "SELECT COUNT(*) FROM c.slow a, c.slow b, c.slow c WHERE a.id + b.id + c.id = -1"
# 400 x 400 x 2,000 = 3.2e8 combinations: about 0.6 s alone; completes (200)
# or, under heavy contention, times out: both are whole replies.
MEDIUM_SQL = ("SELECT COUNT(*) FROM c.slow a, c.slow b, c.slow c "
              "WHERE a.id < 400 AND b.id < 400 AND a.id + b.id + c.id = -1")
# About 0.1 s alone.
SMALL_SQL = ("SELECT COUNT(*) FROM c.slow a, c.slow b, c.slow c "
             "WHERE a.id < 100 AND b.id < 100 AND a.id + b.id + c.id = -1")

RECORDS_CT = {"Content-Type": "application/x-ndjson"}


# ---------------------------------------------------------------- helpers

def start_server(name, config=CONFIG):
    root = tempdir()
    cfg = os.path.join(root, "tarn.yaml")
    with open(cfg, "w") as f:
        f.write(config)
    return Server(root=root, extra_args=["--config", cfg], name=name).start()


def with_slow_table(s):
    s.ingest("c", "slow", [{"id": k} for k in range(SLOW_ROWS)])
    s.flush("c", "slow")


def stop_ok(s, what):
    t0 = time.monotonic()
    rc = s.stop()
    eq(rc, 0, "%s: exit status on SIGTERM (after %.1f s)" % (what, time.monotonic() - t0))


def auth(s, extra=None):
    h = {"Authorization": "Bearer " + s.token}
    h.update(extra or {})
    return h


class KeepAlive:
    """One http.client connection reused for every request."""

    def __init__(self, s, timeout=30.0):
        self.s = s
        self.conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None):
        h = auth(self.s, headers)
        self.conn.request(method, path, body, h)
        r = self.conn.getresponse()
        data = r.read()
        return r.status, data, r

    def post_one(self, db, table, rec):
        """POSTs one record; asserts a 200 ack of one record; returns its seq."""
        status, data, _ = self.request("POST", "/v1/tables/%s/%s/records" % (db, table), dumps(rec), RECORDS_CT)
        eq(status, 200, "POST of %s on a kept-alive connection (body %r)" % (rec, data[:300]))
        ack = json.loads(data)
        eq(ack.get("records"), 1, "ack records of one record")
        check(isinstance(ack.get("first_seq"), int) and ack.get("first_seq") == ack.get("last_seq"),
              "one record: first_seq != last_seq: %s" % data[:200])
        return ack["first_seq"]

    def close(self):
        self.conn.close()


def query_on_own_connection(s, sql, out, sent=None, timeout=120.0):
    """Thread body: POST /v1/query on a fresh connection; out gets status,
    body, the send and reply times, or the connection error."""
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=timeout)
    try:
        out["t_sent"] = time.monotonic()
        conn.request("POST", "/v1/query", dumps({"sql": sql}), auth(s, {"Content-Type": "application/json"}))
        if sent is not None:
            sent.set()
        r = conn.getresponse()
        out["body"] = r.read()
        out["status"] = r.status
        out["headers"] = {k.lower(): v for k, v in r.getheaders()}
    except Exception as e:  # a reset, a close without a reply, a timeout
        out["error"] = "%s: %s" % (type(e).__name__, e)
    finally:
        out["t_reply"] = time.monotonic()
        conn.close()
        if sent is not None:
            sent.set()


def check_query_reply(out, what, allow_ok_rows=None):
    """A whole reply: 200 with the expected rows, or 504 TARN_ETIMEOUT.
    Returns the status."""
    check("error" not in out, "%s: no complete reply: %s" % (what, out.get("error")))
    status, body = out["status"], out["body"]
    try:
        doc = json.loads(body)
    except ValueError:
        raise AssertionError("%s: HTTP %d reply is not whole JSON (%d bytes): %r"
                             % (what, status, len(body), body[:300]))
    if status == 200 and allow_ok_rows is not None:
        eq(doc.get("rows"), allow_ok_rows, "%s: rows" % what)
        eq(doc.get("row_count"), len(allow_ok_rows), "%s: row_count" % what)
    elif status == 504:
        check(isinstance(doc.get("error"), dict) and doc["error"].get("code") == "TARN_ETIMEOUT",
              "%s: 504 without TARN_ETIMEOUT: %r" % (what, body[:300]))
    else:
        raise AssertionError("%s: expected 200%s or 504 TARN_ETIMEOUT, got HTTP %d: %r"
                             % (what, "" if allow_ok_rows is not None else " (not expected here)", status, body[:300]))
    return status


def table_ids(s, db, table):
    """[(id, _seq)] ordered by id (tables here stay far below the row cap)."""
    res = s.query("SELECT id, _seq FROM %s.%s ORDER BY id, _seq" % (db, table))
    check(not res["truncated"], "result truncated")
    return [tuple(r) for r in res["rows"]]


# -- raw HTTP/1.1 on a socket, for pipelining and abrupt closes

def raw_request(method, path, body=b"", headers=None):
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: 127.0.0.1", "Connection: keep-alive"]
    for k, v in (headers or {}).items():
        lines.append("%s: %s" % (k, v))
    if body or method == "POST":
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body


class RawReader:
    """Reads HTTP/1.1 responses one after another from a socket (bounded by
    the socket's timeout): status line, headers, then a Content-Length or
    chunked body."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self):
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise AssertionError("no (complete) reply within %.0f s; have %r"
                                 % (self.sock.gettimeout(), self.buf[:200]))
        if not data:
            raise AssertionError("connection closed by the server; unparsed bytes %r" % self.buf[:200])
        self.buf += data

    def _line(self):
        for _ in range(100000):
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            check(len(self.buf) < 65536, "header line longer than 64 KiB")
            self._fill()
        raise AssertionError("unreachable")

    def _take(self, n):
        for _ in range(100000):
            if len(self.buf) >= n:
                out, self.buf = self.buf[:n], self.buf[n:]
                return out
            self._fill()
        raise AssertionError("body not read")

    def response(self):
        status_line = self._line().decode("latin-1")
        parts = status_line.split(" ", 2)
        check(len(parts) >= 2 and parts[0].startswith("HTTP/1.") and parts[1].isdigit(),
              "bad status line %r" % status_line)
        headers = {}
        for _ in range(200):
            line = self._line()
            if line == b"":
                break
            k, _, v = line.decode("latin-1").partition(":")
            headers[k.strip().lower()] = v.strip()
        else:
            raise AssertionError("more than 200 header lines")
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            for _ in range(100000):
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    for _ in range(200):
                        if self._line() == b"":
                            break
                    break
                body += self._take(size)
                eq(self._take(2), b"\r\n", "chunk terminator")
        else:
            check("content-length" in headers,
                  "reply without Content-Length or chunked: %r %r" % (status_line, headers))
            body = self._take(int(headers["content-length"]))
        return int(parts[1]), headers, body


def raw_socket(s, timeout=20.0):
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def ack_of(status, body, n, what):
    eq(status, 200, "%s: status (body %r)" % (what, body[:300]))
    ack = json.loads(body)
    eq(ack.get("records"), n, "%s: records" % what)
    check(isinstance(ack.get("first_seq"), int) and ack["last_seq"] - ack["first_seq"] == n - 1,
          "%s: seqs of %d records: %r" % (what, n, body[:200]))
    return ack


# ---------------------------------------------------------------- tests

@timeout(60)
def test_slow_query_does_not_block_ingest_health_or_catalog():
    s = start_server("slowq")
    with_slow_table(s)
    out, sent = {}, threading.Event()
    qt = threading.Thread(target=query_on_own_connection, args=(s, SLOW_SQL, out, sent), daemon=True)
    qt.start()
    check(sent.wait(10), "the slow query was not sent within 10 s")
    time.sleep(0.5)  # let it get going inside the engine
    check("t_reply" not in out, "the slow query answered at once: %s" % out)

    t_work0 = time.monotonic()
    ka = KeepAlive(s)
    seqs = []
    try:
        for k in range(50):
            seqs.append(ka.post_one("c", "fast", {"id": k}))
    finally:
        ka.close()
    t_posts = time.monotonic()
    r = s.get("/health", token=None, timeout=20)
    expect_status(r, 200)
    eq(r.json(), {"status": "ok"}, "GET /health body")
    r = s.get("/v1/tables", timeout=20)
    expect_status(r, 200)
    names = sorted((t["database"], t["name"]) for t in r.json()["tables"])
    check(("c", "slow") in names, "GET /v1/tables lacks c.slow: %s" % names)
    t_work1 = time.monotonic()

    qt.join(QUERY_TIMEOUT_S + 60)
    check(not qt.is_alive(), "the slow query did not end")
    status = check_query_reply(out, "the slow query", allow_ok_rows=[[0]])
    took = out["t_reply"] - out["t_sent"]
    note("slow query: HTTP %d after %.2f s; 50 POSTs took %.2f s, health + tables %.2f s"
         % (status, took, t_posts - t_work0, t_work1 - t_posts))
    check(took >= 3.0, "the 'slow' query took only %.2f s: the test proves nothing (tune SLOW_SQL)" % took)
    check(t_work1 < out["t_reply"],
          "the 50 POSTs, /health and /v1/tables finished %.2f s after the slow query's reply: they waited for it"
          % (t_work1 - out["t_reply"]))
    eq(seqs, list(range(seqs[0], seqs[0] + 50)), "seqs of the 50 POSTs")
    s.flush("c", "fast")
    eq([i for i, _ in table_ids(s, "c", "fast")], list(range(50)), "ids of the 50 POSTs")
    stop_ok(s, "after the slow query")


@timeout(90)
def test_concurrent_slow_queries_with_ingest():
    s = start_server("manyq")
    with_slow_table(s)
    kinds = [("slow", SLOW_SQL)] * 4 + [("medium", MEDIUM_SQL)] * 2
    outs = [{} for _ in kinds]
    sents = [threading.Event() for _ in kinds]
    threads = [threading.Thread(target=query_on_own_connection, args=(s, sql, outs[i], sents[i]), daemon=True)
               for i, (_, sql) in enumerate(kinds)]
    for t in threads:
        t.start()
    for i, e in enumerate(sents):
        check(e.wait(10), "query %d was not sent within 10 s" % i)

    # Ingest on one kept-alive connection until every query has answered
    # (bounded in count and time), with a health check every 25 requests.
    ka = KeepAlive(s)
    acks = []  # (id, seq, time of the reply)
    deadline = time.monotonic() + QUERY_TIMEOUT_S * 6 + 30
    try:
        for k in range(5000):
            if all(not t.is_alive() for t in threads) or time.monotonic() > deadline:
                break
            seq = ka.post_one("c", "during", {"id": k})
            acks.append((k, seq, time.monotonic()))
            if k % 25 == 0:
                r = s.get("/health", token=None, timeout=20)
                eq((r.status, r.body), (200, b'{"status":"ok"}'), "GET /health while 6 queries run")
    finally:
        ka.close()
    for t in threads:
        t.join(QUERY_TIMEOUT_S * 6 + 30)
    check(not any(t.is_alive() for t in threads), "a query did not end")

    statuses = collections.Counter()
    for i, ((kind, _), out) in enumerate(zip(kinds, outs)):
        statuses[(kind, check_query_reply(out, "query %d (%s)" % (i, kind), allow_ok_rows=[[0]]))] += 1
    first_reply = min(o["t_reply"] for o in outs)
    first_slow = min(o["t_reply"] for (kind, _), o in zip(kinds, outs) if kind == "slow")
    before = sum(1 for _, _, t in acks if t < first_reply)
    before_slow = sum(1 for _, _, t in acks if t < first_slow)
    note("6 queries: %s; %d POSTs acknowledged, %d before the first query reply (%.2f s after the send), "
         "%d before the first slow one's" % (dict(statuses), len(acks), before,
                                            first_reply - min(o["t_sent"] for o in outs), before_slow))
    check(before >= 20, "only %d ingest POSTs acknowledged while 6 queries ran (before the first reply)" % before)
    check(before_slow >= 50, "only %d ingest POSTs acknowledged while the 4 slow queries ran" % before_slow)
    for i, ((kind, _), out) in enumerate(zip(kinds, outs)):
        if kind == "slow":
            check(out["t_reply"] - out["t_sent"] >= 3.0, "slow query %d ended after only %.2f s"
                  % (i, out["t_reply"] - out["t_sent"]))
    seqs = [q for _, q, _ in acks]
    eq(seqs, list(range(seqs[0], seqs[0] + len(seqs))), "seqs of the POSTs during the queries")
    s.flush("c", "during")
    eq(table_ids(s, "c", "during"), [(k, q) for k, q, _ in acks], "(id, _seq) stored")
    eq(s.scalar("SELECT COUNT(*) FROM c.slow"), SLOW_ROWS, "a normal query afterwards")
    stop_ok(s, "after 6 slow queries")


@timeout(60)
def test_keep_alive_200_posts_consecutive_seqs():
    s = start_server("keepalive")
    ka = KeepAlive(s)
    seqs = []
    try:
        for k in range(200):
            seqs.append(ka.post_one("c", "ka", {"id": k, "pad": "x" * (k % 37)}))
        # The same connection still serves other requests afterwards.
        status, body, _ = ka.request("GET", "/health")
        eq((status, body), (200, b'{"status":"ok"}'), "GET /health on the connection after 200 POSTs")
    finally:
        ka.close()
    eq(seqs, list(range(seqs[0], seqs[0] + 200)), "seqs of 200 sequential POSTs (consecutive)")
    s.flush("c", "ka")
    eq(s.scalar("SELECT COUNT(*) FROM c.ka"), 200, "COUNT(*)")
    eq(s.scalar("SELECT COUNT(DISTINCT id) FROM c.ka"), 200, "distinct ids")
    eq(table_ids(s, "c", "ka"), [(k, seqs[k]) for k in range(200)], "(id, _seq): each id once, with its acked seq")
    stop_ok(s, "after keep-alive")


@timeout(60)
def test_pipelined_requests_answered_in_order():
    s = start_server("pipeline")
    h = auth(s, RECORDS_CT)
    path = "/v1/tables/c/pipe/records"
    sock = raw_socket(s)
    try:
        rd = RawReader(sock)
        # Three whole POSTs in one send.
        sock.sendall(b"".join(raw_request("POST", path, dumps({"id": k}) + b"\n", h) for k in range(3)))
        acks = []
        for k in range(3):
            status, hdrs, body = rd.response()
            acks.append(ack_of(status, body, 1, "pipelined POST %d of 3" % k))
        last = [a["last_seq"] for a in acks]
        eq(last, [last[0], last[0] + 1, last[0] + 2], "last_seq of the three pipelined POSTs, in order")
        eq(rd.buf, b"", "bytes after the three replies")
        # A fourth request on the same socket.
        sock.sendall(raw_request("POST", path, dumps({"id": 3}), auth(s, {"Content-Type": "application/json"})))
        status, _, body = rd.response()
        a4 = ack_of(status, body, 1, "fourth POST on the socket")
        eq(a4["last_seq"], last[2] + 1, "last_seq of the fourth POST")

        # Mixed: records, health, query in one send; replies in that order.
        sock.sendall(raw_request("POST", path, ndjson([{"id": 4}, {"id": 5}]), h)
                     + raw_request("GET", "/health")
                     + raw_request("POST", "/v1/query", dumps({"sql": "SELECT 1 AS x"}),
                                   auth(s, {"Content-Type": "application/json"})))
        status, _, body = rd.response()
        a5 = ack_of(status, body, 2, "pipelined POST of 2 records (1st of records + health + query)")
        eq(a5["first_seq"], a4["last_seq"] + 1, "first_seq of the mixed pipeline's POST")
        status, hdrs, body = rd.response()
        eq((status, json.loads(body)), (200, {"status": "ok"}), "2nd pipelined reply: GET /health")
        status, hdrs, body = rd.response()
        eq(status, 200, "3rd pipelined reply: the query (body %r)" % body[:300])
        res = json.loads(body)
        check("columns" in res and "rows" in res, "3rd pipelined reply is not a query result: %r" % body[:300])
        eq(([c["name"] for c in res["columns"]], res["rows"]), (["x"], [[1]]), "SELECT 1 AS x")
        eq(rd.buf, b"", "bytes after the mixed replies")
    finally:
        sock.close()
    # A query of about a second, then an ingest and a health check, in one
    # send: the replies still come in request order.
    with_slow_table(s)
    sock = raw_socket(s, timeout=QUERY_TIMEOUT_S + 30)
    try:
        rd = RawReader(sock)
        sock.sendall(raw_request("POST", "/v1/query", dumps({"sql": MEDIUM_SQL}),
                                 auth(s, {"Content-Type": "application/json"}))
                     + raw_request("POST", path, dumps({"id": 6}) + b"\n", h)
                     + raw_request("GET", "/health"))
        status, _, body = rd.response()
        check(status in (200, 504), "1st reply (a query of about a second): HTTP %d %r" % (status, body[:300]))
        doc = json.loads(body)
        check(("rows" in doc) if status == 200 else doc.get("error", {}).get("code") == "TARN_ETIMEOUT",
              "1st reply is not the query's: %r" % body[:300])
        status, _, body = rd.response()
        a6 = ack_of(status, body, 1, "2nd reply: POST after a pipelined query")
        eq(a6["first_seq"], a5["last_seq"] + 1, "seq of the POST after the query")
        status, _, body = rd.response()
        eq((status, body), (200, b'{"status":"ok"}'), "3rd reply: GET /health")
    finally:
        sock.close()
    s.flush("c", "pipe")
    eq(table_ids(s, "c", "pipe"), [(k, last[0] + k) for k in range(7)], "(id, _seq) of the pipelined records")
    stop_ok(s, "after pipelining")


@timeout(90)
def test_clients_gone_mid_request():
    s = start_server("gone")
    with_slow_table(s)
    path = "/v1/tables/c/gone/records"
    h = auth(s, RECORDS_CT)
    sent_ids = set()
    rst = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends a reset
    for k in range(30):
        abort = k % 2 == 1
        # 1. A whole POST, then gone before the reply (fsync pending).
        sock = raw_socket(s)
        if abort:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, rst)
        ids = [1000 * k + j for j in range(5)]
        sent_ids.update(ids)
        sock.sendall(raw_request("POST", path, ndjson([{"id": i} for i in ids]), h))
        sock.close()
        # 2. Half a body, then gone.
        sock = raw_socket(s)
        if abort:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, rst)
        body = ndjson([{"id": 999_000_000 + k, "pad": "p" * 2000}])
        req = raw_request("POST", path, body, h)
        sock.sendall(req[:len(req) - len(body) // 2])
        sock.close()
        # 3. A query, then gone while it runs.
        sock = raw_socket(s)
        if abort:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, rst)
        sock.sendall(raw_request("POST", "/v1/query", dumps({"sql": SMALL_SQL}),
                                 auth(s, {"Content-Type": "application/json"})))
        sock.close()
        # 4. A pipelined pair, then gone after the first reply's first byte.
        sock = raw_socket(s)
        sock.sendall(raw_request("POST", path, dumps({"id": 500_000 + k}) + b"\n", h)
                     + raw_request("POST", path, dumps({"id": 600_000 + k}) + b"\n", h))
        sent_ids.update((500_000 + k, 600_000 + k))
        sock.recv(1)
        sock.close()
    check(s.alive(), "server exited after clients vanished mid-request: status %s" % s.proc.returncode)
    r = s.get("/health", token=None, timeout=20)
    eq((r.status, r.body), (200, b'{"status":"ok"}'), "GET /health after 120 vanished clients")
    first, last = s.ingest("c", "gone", [{"id": -1}, {"id": -2}])
    eq(s.scalar("SELECT COUNT(*) FROM c.slow"), SLOW_ROWS, "a normal query after vanished clients")
    s.flush("c", "gone")
    rows = table_ids(s, "c", "gone")
    ids = [i for i, _ in rows]
    dup = sorted(i for i, n in collections.Counter(ids).items() if n > 1)
    check(not dup, "ids stored more than once: %s" % dup[:20])
    eq(len(set(q for _, q in rows)), len(rows), "distinct _seq values")
    stored = dict(rows)
    eq((stored.get(-1), stored.get(-2)), (first, last), "the normal ingest after vanished clients")
    partial = sorted(i for i in ids if i >= 999_000_000)
    check(not partial, "records of half-sent bodies were stored: %s" % partial)
    never = sorted(set(ids) - sent_ids - {-1, -2})
    check(not never, "ids stored that were never sent: %s" % never[:10])
    for k in range(30):  # a request is stored whole or not at all
        got = [1000 * k + j in stored for j in range(5)]
        check(all(got) or not any(got), "request %d stored in part: %s" % (k, got))
        if 600_000 + k in stored:  # the pipelined pair: the first was read first
            check(500_000 + k in stored, "pipelined pair %d: the second stored without the first" % k)
    note("vanished clients: whole 5-record POSTs stored: %d of 15 closed with FIN, %d of 15 with RST; "
         "%d of 60 pipelined records stored"
         % (sum(1 for k in range(0, 30, 2) if 1000 * k in stored),
            sum(1 for k in range(1, 30, 2) if 1000 * k in stored),
            sum(1 for i in ids if 500_000 <= i < 999_000_000)))
    stop_ok(s, "after vanished clients")


@timeout(90)
def test_sigterm_with_requests_in_flight():
    s = start_server("term")
    with_slow_table(s)
    db, table = "c", "term"
    lock = threading.Lock()
    acked, sent, errors = {}, set(), []
    stopped = collections.Counter()
    first_ack = threading.Event()

    def worker(w):
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=STOP_TIMEOUT + 10)
        h = auth(s, RECORDS_CT)
        try:
            for k in range(200_000):
                i = w * 10_000_000 + k
                with lock:
                    sent.add(i)
                try:
                    conn.request("POST", "/v1/tables/%s/%s/records" % (db, table), dumps({"id": i, "w": w}), h)
                    r = conn.getresponse()
                    body = r.read()
                except (OSError, http.client.HTTPException) as e:
                    with lock:
                        stopped[type(e).__name__] += 1
                    return  # the server closed the connection or is gone
                if r.status == 200:
                    a = json.loads(body)
                    if a.get("records") != 1 or a.get("first_seq") != a.get("last_seq"):
                        with lock:
                            errors.append("bad ack %r" % body[:200])
                        return
                    with lock:
                        acked[i] = a["first_seq"]
                    first_ack.set()
                    continue
                if r.status == 503 and b"TARN_ECLOSED" in body:
                    with lock:
                        stopped["503 TARN_ECLOSED"] += 1
                    return
                with lock:
                    errors.append("HTTP %d %r" % (r.status, body[:200]))
                return
            with lock:
                errors.append("worker %d never stopped" % w)
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(8)]
    for t in threads:
        t.start()
    check(first_ack.wait(15), "no acknowledgement within 15 s (errors %s)" % errors)
    # A slow query in flight too: shutdown must neither hang on it nor crash.
    qout, qsent = {}, threading.Event()
    qt = threading.Thread(target=query_on_own_connection, args=(s, SLOW_SQL, qout, qsent, STOP_TIMEOUT + 10),
                          daemon=True)
    qt.start()
    check(qsent.wait(10), "the slow query was not sent")
    time.sleep(1.0)  # the load runs a while: the moment of the signal, not synchronization
    check("t_reply" not in qout, "the slow query ended before SIGTERM: %s" % qout)
    t0 = time.monotonic()
    rc = s.stop()  # SIGTERM; waits at most STOP_TIMEOUT, then kills and fails
    took = time.monotonic() - t0
    for t in threads + [qt]:
        t.join(STOP_TIMEOUT + 15)
    check(not any(t.is_alive() for t in threads), "client threads still blocked after the server exited")
    check(not qt.is_alive(), "the slow query's client still blocked after the server exited")
    eq(rc, 0, "exit status on SIGTERM with 8 connections posting and a slow query running")
    eq(errors, [], "replies other than 200 or 503 TARN_ECLOSED")
    # The query: a whole reply (its result, the timeout, or 503 shutting
    # down), or the connection closed without one; never a torn reply.
    if "error" in qout:
        qend = "no reply (%s)" % qout["error"]
    else:
        qend = "HTTP %d" % qout["status"]
        try:
            qdoc = json.loads(qout["body"])
        except ValueError:
            raise AssertionError("slow query at SIGTERM: torn reply HTTP %d %r" % (qout["status"], qout["body"][:300]))
        check(qout["status"] == 200 and qdoc.get("rows") == [[0]]
              or qout["status"] in (503, 504) and isinstance(qdoc.get("error"), dict),
              "slow query at SIGTERM: unexpected reply HTTP %d %r" % (qout["status"], qout["body"][:300]))
    with lock:
        acked_now, sent_now = dict(acked), set(sent)
    note("SIGTERM under 8 keep-alive posters and a slow query: exit 0 after %.2f s; %d sent, %d acknowledged; "
         "posters ended by %s; the query: %s after %.2f s"
         % (took, len(sent_now), len(acked_now), dict(stopped), qend, qout["t_reply"] - qout["t_sent"]))
    check(len(acked_now) >= 50, "only %d records acknowledged before SIGTERM" % len(acked_now))
    eq(len(set(acked_now.values())), len(acked_now), "distinct acked seqs")
    s.start()
    s.flush(db, table)
    rows = table_ids(s, db, table)
    ids = [i for i, _ in rows]
    dup = sorted(i for i, n in collections.Counter(ids).items() if n > 1)
    check(not dup, "ids stored more than once: %s (of %d rows)" % (dup[:20], len(ids)))
    stored = dict(rows)
    missing = sorted(set(acked_now) - set(stored))
    check(not missing, "%d acknowledged ids missing after restart, e.g. %s" % (len(missing), missing[:10]))
    wrong = [(i, q, stored[i]) for i, q in acked_now.items() if stored[i] != q]
    check(not wrong, "ids stored with a _seq other than acknowledged (id, acked, stored): %s" % wrong[:10])
    never = sorted(set(stored) - sent_now)
    check(not never, "ids stored that were never sent: %s" % never[:10])
    eq(len(set(q for _, q in rows)), len(rows), "distinct _seq values")
    # A stop finishes the requests it started and answers the rest 503: a
    # record stored without its client hearing so would come back as a
    # duplicate when the client retries.
    unheard = sorted(set(stored) - set(acked_now))
    check(not unheard, "ids stored whose client got no acknowledgement: %s" % unheard[:10])
    note("after restart: %d rows; %d of the %d sent but unacknowledged ids are stored"
         % (len(rows), len(set(stored) - set(acked_now)), len(sent_now - set(acked_now))))
    stop_ok(s, "after the restart")


@timeout(90)
def test_sigterm_cancels_running_queries():
    # Queries may run for ten minutes here: a stop that waited for them
    # would outlast STOP_TIMEOUT, and s.stop() would fail.
    s = start_server("cancel", "query:\n  timeout: 600s\nbuffering:\n  interval: 1h\n")
    with_slow_table(s)
    # Buffered, not yet delivered: the stop still delivers it.
    s.ingest("c", "pending", [{"id": k} for k in range(100)])
    outs = [{} for _ in range(2)]
    sents = [threading.Event() for _ in outs]
    qts = [threading.Thread(target=query_on_own_connection, args=(s, SLOW_SQL, o, e, STOP_TIMEOUT + 10), daemon=True)
           for o, e in zip(outs, sents)]
    for t in qts:
        t.start()
    check(all(e.wait(10) for e in sents), "the slow queries were not sent")
    wait_until(lambda: s.get_json("/v1/status")["queries_running"] == 2, 20, 0.05, "both slow queries running")
    time.sleep(0.2)  # past the engine's own check at the start of a query
    check(all("t_reply" not in o for o in outs), "a slow query ended before SIGTERM: %s" % outs)
    t0 = time.monotonic()
    rc = s.stop()  # SIGTERM; waits at most STOP_TIMEOUT, then kills and fails
    took = time.monotonic() - t0
    for t in qts:
        t.join(15)
    eq(rc, 0, "exit status on SIGTERM with two slow queries running (after %.1f s)" % took)
    for k, o in enumerate(outs):
        check("error" not in o, "slow query %d: no reply at SIGTERM: %s" % (k, o.get("error")))
        eq(o["status"], 503, "slow query %d at SIGTERM: HTTP status (body %r)" % (k, o["body"][:300]))
        err = json.loads(o["body"]).get("error") or {}
        eq(err.get("code"), "TARN_ECLOSED", "slow query %d at SIGTERM: error code" % k)
        check("cancelled" in err.get("message", ""), "slow query %d: message %r" % (k, err.get("message")))
    note("SIGTERM with two slow queries (timeout 600 s): exit 0 after %.2f s, both answered 503 TARN_ECLOSED" % took)
    lake = os.path.join(s.data, "lake", "processed", "c", "pending")
    files = [f for _, _, fs in os.walk(lake) for f in fs if f.endswith(".parquet")]
    check(files, "the buffered records of c.pending were not delivered by the stop (nothing in %s)" % lake)
    s.start()
    eq(s.scalar("SELECT COUNT(*) FROM c.pending"), 100, "c.pending after the restart")
    eq(s.scalar("SELECT COUNT(*) FROM c.slow"), SLOW_ROWS, "a query after the restart")
    stop_ok(s, "after the restart")


@timeout(90)
def test_large_body_alongside_small_posts():
    s = start_server("large")
    db, table = "c", "mixed"
    n_large = 9000
    pad = "L" * 900
    large = ndjson([{"id": 1_000_000 + k, "pad": pad} for k in range(n_large)])
    check(7.5 * 2**20 < len(large) < 10 * 2**20, "large body is %d bytes, not just under 10 MiB" % len(large))
    out = {}
    upload_started, small_done = threading.Event(), threading.Event()

    def large_post():
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60)
        try:
            conn.putrequest("POST", "/v1/tables/%s/%s/records" % (db, table), skip_accept_encoding=True)
            for k, v in auth(s, RECORDS_CT).items():
                conn.putheader(k, v)
            conn.putheader("Content-Length", str(len(large)))
            conn.endheaders()
            view = memoryview(large)
            step = 1 << 16
            for off in range(0, len(view) - step, step):  # all but the last piece, paced
                conn.sock.sendall(view[off:off + step])
                upload_started.set()
                time.sleep(0.005)
            # Keep the request open until the small POSTs are done (bounded):
            # they must not need the large one to finish.
            out["small_done_first"] = small_done.wait(30)
            out["t_last_byte"] = time.monotonic()
            conn.sock.sendall(view[off + step:])
            r = conn.getresponse()
            out["status"], out["body"] = r.status, r.read()
        except Exception as e:
            out["error"] = "%s: %s" % (type(e).__name__, e)
        finally:
            upload_started.set()
            conn.close()

    lt = threading.Thread(target=large_post, daemon=True)
    lt.start()
    check(upload_started.wait(15), "the large upload did not start")
    ka = KeepAlive(s)
    small = []
    try:
        for k in range(50):
            small.append(ka.post_one(db, table, {"id": k, "pad": "s"}))
        t_small = time.monotonic()
    finally:
        ka.close()
        small_done.set()
    lt.join(90)
    check(not lt.is_alive(), "the large POST did not end")
    check("error" not in out, "large POST: %s" % out.get("error"))
    check(out["small_done_first"], "the 50 small POSTs did not finish while the 8 MiB body was still being sent")
    check(t_small <= out["t_last_byte"], "small POSTs ended after the large body's last byte")
    ack = ack_of(out["status"], out["body"], n_large, "the %d-byte POST" % len(large))
    eq(small, list(range(small[0], small[0] + 50)), "seqs of the 50 small POSTs (consecutive)")
    big = set(range(ack["first_seq"], ack["last_seq"] + 1))
    check(not big & set(small), "small POSTs got seqs inside the large request's range")
    s.flush(db, table)
    eq(s.scalar("SELECT COUNT(*) FROM c.mixed"), n_large + 50, "COUNT(*)")
    eq(s.scalar("SELECT COUNT(DISTINCT id) FROM c.mixed"), n_large + 50, "distinct ids")
    eq(s.rows("SELECT id, _seq FROM c.mixed WHERE id < 1000000 ORDER BY id"),
       [[k, small[k]] for k in range(50)], "the small records")
    eq(s.rows("SELECT MIN(_seq), MAX(_seq), MIN(id), MAX(id), MIN(length(pad)) FROM c.mixed WHERE id >= 1000000"),
       [[ack["first_seq"], ack["last_seq"], 1_000_000, 1_000_000 + n_large - 1, 900]], "the large request's records")
    stop_ok(s, "after the large body")


if __name__ == "__main__":
    run(globals())
