"""Durability: restart, SIGTERM / SIGINT delivering what is buffered, kill -9
during a sustained ingest (every acknowledged record exactly once, nothing
that was never sent), and torn log tails recovered."""

import collections
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (TARN, Server, check, dumps, eq, free_port, http_request, ndjson, note, read_parquet,  # noqa: E402
                     read_raw, run, seq_range, tempdir, timeout, wait_until)


def ids_and_seqs(s, db, table, page=50000):
    """[(id, _seq)] of the table, ordered by _seq, read in pages under the
    query row cap (a busy run acknowledges more than 100,000 ids)."""
    out = []
    for _ in range(1000):
        after = out[-1][1] if out else 0
        res = s.query("SELECT id, _seq FROM %s.%s WHERE _seq > %d ORDER BY _seq LIMIT %d" % (db, table, after, page))
        check(not res["truncated"], "page truncated")
        out.extend(tuple(r) for r in res["rows"])
        if len(res["rows"]) < page:
            # Rows sharing a _seq across a page boundary would be missed:
            # the count catches them.
            eq(s.scalar("SELECT COUNT(*) FROM %s.%s" % (db, table)), len(out), "rows read in pages vs COUNT(*)")
            return out
    check(False, "more than 1000 pages of rows")


def assert_exactly_once(s, db, table, acked, sent, what):
    """acked: {id: seq} acknowledged; sent: set of every id ever sent.
    Every acked id is present once with its acked _seq; every id present was
    sent; _seq values are distinct."""
    rows = ids_and_seqs(s, db, table)
    ids = [i for i, _ in rows]
    seqs = [q for _, q in rows]
    dup = sorted(i for i, c in collections.Counter(ids).items() if c > 1)
    check(not dup, "%s: ids present more than once: %s (of %d rows)" % (what, dup[:20], len(ids)))
    check(len(seqs) == len(set(seqs)), "%s: duplicate _seq values" % what)
    present = dict(rows)
    missing = sorted(set(acked) - set(present))
    check(not missing, "%s: %d acknowledged ids missing, e.g. %s (acked %d, present %d)"
          % (what, len(missing), missing[:10], len(acked), len(present)))
    never = sorted(set(present) - set(sent))
    check(not never, "%s: ids present that were never sent: %s" % (what, never[:10]))
    wrong = [(i, q, present[i]) for i, q in acked.items() if present[i] != q]
    check(not wrong, "%s: records with a _seq other than acknowledged (id, acked, stored): %s" % (what, wrong[:10]))
    return present


def assert_disjoint_files(s, db, table):
    for zone, ext in (("processed", "parquet"), ("raw", "json.gz")):
        ranges = sorted(seq_range(p) for p in s.lake_files(zone, db, table, ext))
        for (f1, l1), (f2, l2) in zip(ranges, ranges[1:]):
            check(l1 < f2, "%s files overlap: %d-%d and %d-%d (duplicates or orphans on disk)" % (zone, f1, l1, f2, l2))


def test_persistence_across_restart():
    s = Server(name="restart").start()
    token = s.token
    a = [{"id": i, "v": "a%d" % i, "n": {"x": i}} for i in range(10)]
    b = [{"id": 10 + i, "v": "b%d" % i, "n": {"x": i}} for i in range(10)]
    s.ingest("dur", "t", a, form="array")
    s.flush("dur", "t")
    s.ingest("dur", "t", b, form="ndjson", gzip_body=True)
    before = s.get_json("/v1/tables/dur/t")
    rc = s.stop()
    eq(rc, 0, "exit status on SIGTERM")
    s.start()
    eq(s.token, token, "admin token after restart")
    want = [[r["id"], r["v"], r["n"]] for r in a + b]
    eq(s.rows("SELECT id, v, n FROM dur.t ORDER BY id"), want, "rows right after restart (no flush)")
    s.flush("dur", "t")
    eq(s.rows("SELECT id, v, n FROM dur.t ORDER BY id"), want, "rows after restart and flush")
    after = s.get_json("/v1/tables/dur/t")
    eq(after["rows"], 20, "rows in the table listing")
    check(after["delivered_seq"] >= before["delivered_seq"], "delivered_seq went backwards")
    first, _ = s.ingest("dur", "t", [{"id": 99, "v": "new", "n": {"x": 0}}])
    check(first > after["delivered_seq"], "seq %d after restart reuses a delivered number (<= %d)"
          % (first, after["delivered_seq"]))
    eq(s.stop(), 0, "exit status")


def sigterm_delivers(sig):
    s = Server(name="sig%d" % sig).start()
    recs = [{"id": i, "v": "buffered-%d" % i} for i in range(30)]
    s.ingest("dur", "buf", recs[:10], form="array")
    s.ingest("dur", "buf", recs[10:20])
    s.ingest("dur", "buf", recs[20:], gzip_body=True)
    t0 = time.monotonic()
    rc = s.signal_stop(sig)
    note("exit after signal %d took %.2f s" % (sig, time.monotonic() - t0))
    eq(rc, 0, "exit status after signal %d" % sig)
    # everything buffered is now in the lake, without restarting
    pq = s.lake_files("processed", "dur", "buf", "parquet")
    raw = s.lake_files("raw", "dur", "buf", "json.gz")
    check(pq and raw, "no lake files after signal %d: parquet %s raw %s" % (sig, pq, raw))
    pq_ids = sorted(r["id"] for p in pq for r in read_parquet(p)["rows"])
    eq(pq_ids, list(range(30)), "ids in the Parquet files after signal %d" % sig)
    raw_recs = sorted((r for p in raw for r in read_raw(p)), key=lambda r: r["id"])
    eq(raw_recs, recs, "records in the raw files after signal %d" % sig)
    s.start()
    eq(s.rows("SELECT id, v FROM dur.buf ORDER BY id"), [[r["id"], r["v"]] for r in recs], "rows after restart")
    eq(s.stop(), 0, "exit status")


def test_sigterm_delivers_buffered_and_exits_0():
    sigterm_delivers(signal.SIGTERM)


def test_sigint_delivers_buffered_and_exits_0():
    sigterm_delivers(signal.SIGINT)


def test_kill9_after_ack_delivered_after_restart_without_flush():
    s = Server(name="k9simple").start()
    recs = [{"id": i} for i in range(25)]
    s.ingest("dur", "k9", recs)
    s.kill9()
    s.start()

    def all_visible():
        try:
            return s.scalar("SELECT COUNT(*) FROM dur.k9") == 25
        except AssertionError:
            return False  # the table may have no view until its first delivery

    wait_until(all_visible, 10.0, 0.1, "25 acknowledged records queryable after kill -9 and restart")
    eq(s.rows("SELECT id FROM dur.k9 ORDER BY id"), [[i] for i in range(25)], "ids")
    eq(s.stop(), 0, "exit status")


class Load:
    """4 client threads posting small NDJSON batches of uniquely numbered
    records until stopped. sent: every id put on the wire; acked: {id: seq}."""

    def __init__(self, s, db, table, id_base, threads=4, seed=0, closing_ok=False):
        """closing_ok: a 503 TARN_ECLOSED reply (shutting down) ends a worker
        without counting as an error."""
        self.s, self.db, self.table, self.id_base = s, db, table, id_base
        self.closing_ok = closing_ok
        self.refused = 0
        self.sent, self.acked, self.errors = set(), {}, []
        self.requests = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.first_ack = threading.Event()
        self.threads = [threading.Thread(target=self.worker, args=(w, seed), daemon=True) for w in range(threads)]

    def worker(self, w, seed):
        rng = random.Random(seed * 100 + w)
        nxt = self.id_base + w * 10_000_000
        for _ in range(1_000_000):
            if self.stop.is_set():
                return
            n = rng.randint(1, 20)
            ids = list(range(nxt, nxt + n))
            nxt += n
            recs = [{"id": i, "w": w, "pad": "p" * rng.randint(0, 200)} for i in ids]
            with self.lock:
                self.sent.update(ids)
            try:
                r = self.s.post_records(self.db, self.table, ndjson(recs), timeout=15)
            except AssertionError:
                return  # the server is gone (killed): stop quietly
            with self.lock:
                self.requests += 1
            if r.status == 200:
                a = r.json()
                if a.get("records") != n or a.get("last_seq") - a.get("first_seq") != n - 1:
                    with self.lock:
                        self.errors.append("bad ack %s for %d records" % (r.text(), n))
                    return
                with self.lock:
                    for k, i in enumerate(ids):
                        self.acked[i] = a["first_seq"] + k
                self.first_ack.set()
            else:
                closing = r.status == 503 and b"TARN_ECLOSED" in r.body
                with self.lock:
                    if closing and self.closing_ok:
                        self.refused += 1
                    else:
                        self.errors.append("HTTP %d %s" % (r.status, r.text()[:200]))
                return

    def start(self):
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(20)
        check(not any(t.is_alive() for t in self.threads), "load threads did not stop")


@timeout(240)
def test_kill9_during_sustained_ingest():
    s = Server(name="kill9").start()
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    note("kill -9 test seed %d" % seed)
    rng = random.Random(seed)
    acked_all, sent_all = {}, set()
    for rnd in range(3):
        load = Load(s, "k9", "load", id_base=(rnd + 1) * 100_000_000, seed=seed + rnd)
        t0 = time.monotonic()
        load.start()
        check(load.first_ack.wait(15), "round %d: no acknowledgement within 15 s (errors: %s)" % (rnd, load.errors))
        delay = rng.uniform(0.2, 2.8)
        time.sleep(delay)  # the random kill moment, not synchronization
        s.kill9()
        load.finish()
        eq(load.errors, [], "round %d: failed requests before the kill" % rnd)
        note("round %d: killed %.2f s into the load after %d requests: %d ids sent, %d acknowledged"
             % (rnd, time.monotonic() - t0, load.requests, len(load.sent), len(load.acked)))
        acked_all.update(load.acked)
        sent_all |= load.sent
        s.start()
        fl = s.flush("k9", "load")
        check(fl["delivered_seq"] >= max(acked_all.values()),
              "round %d: flush delivered_seq %d < highest acked seq %d" % (rnd, fl["delivered_seq"],
                                                                           max(acked_all.values())))
        present = assert_exactly_once(s, "k9", "load", acked_all, sent_all, "after kill -9 round %d" % rnd)
        assert_disjoint_files(s, "k9", "load")
        eq(s.get_json("/v1/tables/k9/load")["rows"], len(present), "rows in the table listing")
    first, last = s.ingest("k9", "load", [{"id": 1, "w": -1, "pad": ""}])
    check(first > max(acked_all.values()), "a new record got seq %d, not above every acknowledged one" % first)
    eq(s.stop(), 0, "exit status")


@timeout(120)
def test_sigterm_during_sustained_ingest():
    s = Server(name="termload").start()
    load = Load(s, "term", "load", id_base=100_000_000, seed=3, closing_ok=True)
    load.start()
    check(load.first_ack.wait(15), "no acknowledgement within 15 s (errors: %s)" % load.errors)
    time.sleep(1.0)  # let the load run: the moment of the signal, not synchronization
    t0 = time.monotonic()
    rc = s.stop()
    took = time.monotonic() - t0
    load.finish()
    eq(rc, 0, "exit status after SIGTERM under load")
    eq(load.errors, [], "replies other than 200 or 503 TARN_ECLOSED during shutdown")
    note("SIGTERM under load: exit after %.2f s; %d ids sent, %d acknowledged, %d requests refused with 503"
         % (took, len(load.sent), len(load.acked), load.refused))
    # delivered at shutdown: every acknowledged record is in the Parquet files already
    pq_ids = [r["id"] for p in s.lake_files("processed", "term", "load", "parquet") for r in read_parquet(p)["rows"]]
    eq(len(pq_ids), len(set(pq_ids)), "distinct ids in the Parquet files after SIGTERM")
    missing = set(load.acked) - set(pq_ids)
    check(not missing, "%d acknowledged ids not delivered before exit, e.g. %s" % (len(missing), sorted(missing)[:10]))
    s.start()
    s.flush("term", "load")
    assert_exactly_once(s, "term", "load", load.acked, load.sent, "after SIGTERM under load and restart")
    eq(s.stop(), 0, "exit status")


def test_serve_defaults_to_tarn_data_in_working_directory():
    s = Server(name="defaults", default_data=True).start()
    check(os.path.isfile(os.path.join(s.root, "tarn-data", "admin.token")), "./tarn-data/admin.token not created")
    s.ingest("defaults", "t", [{"id": 1}])
    s.flush("defaults", "t")
    check(s.lake_files("processed", "defaults", "t", "parquet"), "no Parquet file under ./tarn-data/lake")
    eq(os.path.realpath(s.get_json("/v1/status")["data_dir"]), os.path.realpath(s.data), "data_dir in /v1/status")
    eq(s.stop(), 0, "exit status")


def test_serve_takes_listen_and_data_from_the_config_file():
    s = Server(name="cfg", config_only=True).start()
    st = s.get_json("/v1/status")
    eq(st["listen"], "127.0.0.1:%d" % s.port, "listen in /v1/status (from the config file)")
    eq(os.path.realpath(st["data_dir"]), os.path.realpath(s.data), "data_dir in /v1/status (from the config file)")
    s.ingest("cfgdb", "t", [{"id": 1}])
    eq(s.stop(), 0, "exit status")
    # --listen given as well wins over the file's listen.
    cfg = os.path.join(s.root, "cfg-listen.yaml")
    port = free_port()
    p = subprocess.Popen([TARN, "serve", "--config", cfg, "--listen", "127.0.0.1:%d" % port], cwd=s.root,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if http_request(port, "GET", "/health", timeout=2).status == 200:
                    break
            except OSError:
                pass
            check(p.poll() is None and time.monotonic() < deadline, "no answer on the --listen port %d" % port)
            time.sleep(0.05)
        tok = open(os.path.join(s.data, "admin.token")).read().strip()
        st = json.loads(http_request(port, "GET", "/v1/status", headers={"Authorization": "Bearer " + tok}).body)
        eq(st["listen"], "127.0.0.1:%d" % port, "listen in /v1/status with --listen over the file")
        eq([t["durable_seq"] for t in st["tables"] if t["name"] == "t"], [1], "the same data directory")
    finally:
        p.terminate()
        eq(p.wait(30), 0, "exit status on SIGTERM")


def find_markers(seg_bytes, markers):
    pos = []
    for m in markers:
        p = seg_bytes.find(m)
        if p < 0:
            return None
        pos.append(p)
    return pos


@timeout(300)
def test_torn_tail_recovery():
    s = Server(name="torn").start()
    db, table = "torn", "t"
    a_recs = [{"id": i, "mark": "A-%04d" % i} for i in range(50)]
    for k in range(10):
        s.ingest(db, table, a_recs[5 * k:5 * k + 5])
    s.flush(db, table)
    # B: sequential requests (each its own append), left undelivered by kill -9
    b_reqs = [[{"id": 1000 + 5 * r + j, "mark": "B-%04d-%d" % (r, j)} for j in range(5)] for r in range(12)]
    acked = {}
    rows = s.rows("SELECT id, _seq FROM %s.%s" % (db, table))
    acked.update({i: q for i, q in rows})
    eq(sorted(acked), [r["id"] for r in a_recs], "batch A delivered")
    b_acks = []
    for recs in b_reqs:
        first, last = s.ingest(db, table, recs)
        b_acks.append(first)
        for k, r in enumerate(recs):
            acked[r["id"]] = first + k
    s.kill9()
    sent = set(acked)
    segs = s.segments(db, table)
    check(segs, "no *.log segment under %s/stream/%s/%s/" % (s.data, db, table))
    last_seg = segs[-1]
    rel = os.path.relpath(last_seg, s.data)
    data = open(last_seg, "rb").read()
    size = len(data)
    # The newest segment is zeroed ahead past its last frame (stream.c,
    # ZERO-AHEAD): cuts are measured from the end of the frames, or they
    # would only shorten the zero tail.
    end = len(data.rstrip(b"\0"))
    note("segments: %s; last %s is %d bytes, its frames end at %d"
         % ([os.path.relpath(p, s.data) for p in segs], rel, size, end))
    markers = find_markers(data, [dumps(r[0])[:-1] for r in b_reqs])
    if markers is None:
        note("record bytes not found verbatim in the segment: only batch A and exactly-once are checked per cut")
    cuts = [("last frame minus 1 byte", end - 1), ("last frame minus 5 bytes", end - 5),
            ("last frame minus 13 bytes", end - 13), ("half", end // 2), ("zero length", 0)]
    if size > end:
        cuts.append(("inside the zero tail", (end + size) // 2))
    if markers:
        cuts += [("inside the last request", markers[-1] + 10), ("at the last request's payload", markers[-1]),
                 ("inside request 6", markers[6] + 7)]
    cuts += [("plus 64 garbage bytes", ("garbage", bytes(random.Random(7).randrange(256) for _ in range(64)))),
             ("plus 4096 zero bytes", ("garbage", b"\0" * 4096))]
    for name, cut in cuts:
        root = tempdir("tarn-e2e-torn-")
        copy = os.path.join(root, "data")
        shutil.copytree(s.data, copy, symlinks=True)
        seg = os.path.join(copy, rel)
        if isinstance(cut, tuple):
            with open(seg, "ab") as f:
                f.write(cut[1])
            complete_upto = size  # every original frame is whole
        else:
            os.truncate(seg, cut)
            complete_upto = cut
        t = Server(data_dir=copy, root=root, name="torn-cut").start()
        what = "cut %s (%s at %s)" % (name, rel, complete_upto)
        try:
            t.flush(db, table)
            must = {i: q for i, q in acked.items() if i < 1000}
            if markers:
                for r in range(len(b_reqs) - 1):
                    if markers[r + 1] <= complete_upto:  # request r's frames end before request r+1's payload
                        for k, rec in enumerate(b_reqs[r]):
                            must[rec["id"]] = acked[rec["id"]]
                if complete_upto >= end:
                    must = dict(acked)
            present = assert_exactly_once(t, db, table, must, sent, what)
            if name == "last frame minus 1 byte":
                # Only the torn frame goes: every frame before it stays,
                # the first four of the last request's five included.
                torn = b_reqs[-1][-1]["id"]
                check(torn not in present, "%s: the torn last record (id %d) was stored" % (what, torn))
                kept = {i: q for i, q in acked.items() if i != torn}
                missing = sorted(set(kept) - set(present))
                check(not missing, "%s: valid records before the torn frame dropped: %s" % (what, missing[:10]))
            note("%s: %d of %d acked ids present (%d required)" % (what, len(present), len(acked), len(must)))
            assert_disjoint_files(t, db, table)
            first, last = t.ingest(db, table, [{"id": 5000 + j, "mark": "new"} for j in range(3)])
            check(not ({first, first + 1, first + 2} & set(present.values())),
                  "%s: new records got seqs %d-%d already used by stored records" % (what, first, last))
            t.flush(db, table)
            sent2 = sent | {5000, 5001, 5002}
            must2 = dict(must)
            must2.update({5000 + j: first + j for j in range(3)})
            after = assert_exactly_once(t, db, table, must2, sent2, what + ", after new ingest")
            eq(len(after), len(present) + 3, "%s: rows after 3 new records" % what)
            eq(t.stop(), 0, "%s: exit status" % what)
        finally:
            t.kill9()
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    run(globals())
