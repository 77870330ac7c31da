#!/usr/bin/env python3
"""The raw zone follows the processed zone with a checkpoint of its own.

Records become queryable when their Parquet files are published; the raw
worker then copies them, as received, into lake/raw and advances raw_seq.
These tests block the raw zone (a plain file where its directory must go),
so it falls behind or fails, and check that: the processed zone and queries
go on; flush waits for both zones unless asked for the processed zone only;
status shows how far behind the raw zone is and why; the log keeps every
segment the raw zone still needs; and once unblocked (also across a
restart) the raw zone holds every record exactly once.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (check, eq, expect_error, expect_status, note, read_raw, run, seq_range,  # noqa: E402
                     start_with_config, timeout, wait_until)

CONFIG = "stream:\n  segment_size: 8KiB\nbuffering:\n  interval: 200ms\n"


def block_raw(s, db):
    """Makes lake/raw/<db> a plain file: the raw worker cannot create its
    table directory under it (ENOTDIR), whatever our privileges."""
    os.makedirs(os.path.join(s.data, "lake", "raw"), exist_ok=True)
    path = os.path.join(s.data, "lake", "raw", db)
    with open(path, "w") as f:
        f.write("not a directory\n")
    return path


def records(start, n):
    return [{"id": i, "text": "record %d " % i + "x" * 200, "nested": {"k": i % 7}} for i in range(start, start + n)]


def ingest(s, db, requests, per_request):
    """Ingests requests x per_request records; returns {seq: record}."""
    sent = {}
    for k in range(requests):
        recs = records(k * per_request, per_request)
        first, _ = s.ingest(db, "t", recs)
        for j, r in enumerate(recs):
            sent[first + j] = r
    return sent


def table_status(s, db, table):
    r = s.get("/v1/status")
    expect_status(r, 200)
    for t in r.json().get("tables", []):
        if t.get("database") == db and t.get("name") == table:
            return t
    raise AssertionError("table %s.%s not in /v1/status: %s" % (db, table, r.text()))


def raw_records(s, db, table):
    """(records in seq order, list of (first, last) ranges) of the raw zone."""
    got, ranges = {}, []
    for path in s.lake_files("raw", db, table, "json.gz"):
        first, last = seq_range(path)
        ranges.append((first, last))
        recs = read_raw(path)
        eq(len(recs), last - first + 1, "%s: records vs the name's range" % os.path.basename(path))
        for k, r in enumerate(recs):
            check(first + k not in got, "seq %d in two raw files" % (first + k))
            got[first + k] = r
    return got, sorted(ranges)


def flush(s, db, table, wait=None):
    path = "/v1/tables/%s/%s/flush" % (db, table) + ("?wait=" + wait if wait else "")
    return s.request("POST", path, timeout=60)


@timeout(120)
def test_processed_goes_on_while_raw_is_blocked():
    s = start_with_config(CONFIG)
    blocker = block_raw(s, "rz")
    sent = ingest(s, "rz", 4, 50)
    last = max(sent)

    # Queryable: the processed zone does not wait for the raw one.
    r = flush(s, "rz", "t", wait="processed")
    expect_status(r, 200, "flush ?wait=processed with the raw zone blocked")
    body = r.json()
    eq(body["delivered_seq"], last, "delivered_seq after flush ?wait=processed")
    eq(body["raw_seq"], 0, "raw_seq while the raw zone is blocked")
    eq(s.scalar("SELECT count(*) FROM rz.t"), len(sent), "rows queryable with the raw zone blocked")

    st = wait_until(lambda: (lambda t: t if t.get("raw_last_error") else None)(table_status(s, "rz", "t")), 10,
                    what="raw_last_error in /v1/status")
    eq(st["raw_seq"], 0, "status raw_seq")
    eq(st["raw_pending_records"], last, "status raw_pending_records")
    eq(st["delivered_seq"], last, "status delivered_seq")
    check(st["last_error"] is None, "the processed zone reports no error: %r" % st["last_error"])
    check(st["backlog_bytes"] > 0, "backlog counts what the raw zone has not delivered: %s" % st)
    note("raw_last_error: %s" % st["raw_last_error"])

    # The log keeps every segment the raw zone still needs.
    segs = s.segments("rz", "t")
    check(len(segs) > 3, "expected several 8 KiB segments still on disk, found %s" % segs)

    # A plain flush waits for both zones, so it reports the raw zone's failure.
    r = flush(s, "rz", "t")
    check(r.status >= 500, "flush with the raw zone blocked: expected a 5xx, got %d %s" % (r.status, r.text()))
    check("raw zone" in r.json().get("error", {}).get("message", ""), "flush error names the raw zone: %s" % r.text())

    # Unblocked, the raw zone catches up; a plain flush then succeeds.
    os.unlink(blocker)
    r = flush(s, "rz", "t")
    expect_status(r, 200, "flush after unblocking the raw zone")
    eq(r.json()["raw_seq"], last, "raw_seq after the raw zone caught up")
    got, ranges = raw_records(s, "rz", "t")
    eq(sorted(got), sorted(sent), "seqs in the raw zone (each exactly once)")
    for q, rec in sent.items():
        eq(got[q], rec, "raw record of seq %d" % q)
    st = table_status(s, "rz", "t")
    check(st["raw_last_error"] is None, "raw_last_error cleared: %s" % st)
    eq(st["raw_pending_records"], 0, "raw_pending_records after catching up")
    eq(st["backlog_bytes"], 0, "backlog after both zones caught up")
    # Segments both zones have published are gone (the newest always stays).
    wait_until(lambda: len(s.segments("rz", "t")) <= 1, 10, what="log trimmed after the raw zone caught up")
    info = s.get_json("/v1/tables/rz/t")
    eq(info["raw_seq"], last, "raw_seq in the table's catalog entry")
    eq(s.stop(), 0, "exit status")


@timeout(120)
def test_raw_zone_catches_up_after_restart():
    s = start_with_config(CONFIG)
    blocker = block_raw(s, "rr")
    sent = ingest(s, "rr", 3, 40)
    expect_status(flush(s, "rr", "t", wait="processed"), 200, "flush ?wait=processed")
    # SIGTERM: the processed zone is complete; the raw zone gives up after a
    # few tries and its records stay in the log for the next start.
    t0 = time.monotonic()
    eq(s.stop(), 0, "exit status with the raw zone blocked")
    note("stop with the raw zone blocked took %.1f s" % (time.monotonic() - t0))
    eq(s.lake_files("raw", "rr", "t", "json.gz"), [], "raw files while blocked")
    check(s.segments("rr", "t"), "log segments kept for the raw zone")

    os.unlink(blocker)
    s.start()
    r = flush(s, "rr", "t")
    expect_status(r, 200, "flush after restart")
    eq(r.json()["raw_seq"], max(sent), "raw_seq after restart")
    got, ranges = raw_records(s, "rr", "t")
    eq(sorted(got), sorted(sent), "seqs in the raw zone after restart (each exactly once)")
    for (f1, l1), (f2, _) in zip(ranges, ranges[1:]):
        check(l1 < f2, "raw files overlap: %d-%d and %d-..." % (f1, l1, f2))
    eq(s.scalar("SELECT count(*) FROM rr.t"), len(sent), "rows after restart")
    eq(s.stop(), 0, "exit status")


@timeout(60)
def test_flush_wait_parameter_is_checked():
    s = start_with_config(CONFIG)
    s.ingest("rw", "t", records(0, 3))
    r = flush(s, "rw", "t", wait="everything")
    expect_error(r, 400, "TARN_EINVAL", "flush ?wait=everything")
    check("wait" in r.json()["error"]["message"], "the error names the parameter: %s" % r.text())
    r = flush(s, "rw", "t", wait="all")
    expect_status(r, 200, "flush ?wait=all")
    body = r.json()
    eq((body["delivered_seq"], body["raw_seq"]), (3, 3), "checkpoints after flush ?wait=all")
    eq(s.stop(), 0, "exit status")


if __name__ == "__main__":
    run(globals())
