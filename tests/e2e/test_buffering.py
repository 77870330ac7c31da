"""Buffering hints: delivery by size alone (interval set very long) delivers a
backlog many times the buffer size completely, in batches of at most about
the buffer size, without a flush; delivery by interval alone delivers a small
batch once the interval has passed."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import check, eq, run, start_with_config, timeout, wait_until  # noqa: E402



def delivered(s, db, t):
    for x in s.get_json("/v1/status")["tables"]:
        if x["database"] == db and x["name"] == t:
            return x["delivered_seq"]
    return 0


@timeout(120)
def test_size_trigger_delivers_a_backlog_many_buffers_long():
    # Regression: the size trigger used to stop after the first batches of a
    # backlog because it counted the whole log as delivered.
    s = start_with_config("buffering:\n  size: 64KiB\n  interval: 1h\ncompaction:\n  interval: 1h\n")
    db, t = "buf", "by_size"
    n = 0
    for _ in range(20):  # 20 x 100 records x ~500 B = ~1 MB, about 15 buffers
        s.ingest(db, t, [{"id": n + k, "pad": "p" * 480} for k in range(100)])
        n += 100
    # Every full buffer goes by size; less than one buffer (~130 records of
    # ~500 B) may wait for the interval, as in Firehose.
    wait_until(lambda: delivered(s, db, t) >= n - 140, 60, what="every full buffer delivered by size alone")
    files = s.get_json("/v1/tables/%s/%s" % (db, t))["files"]
    check(files >= 10, "expected the backlog in about 15 files of ~64 KiB, got %d" % files)
    s.flush(db, t)
    eq(s.scalar("SELECT COUNT(*) FROM %s.%s" % (db, t)), n, "rows after the flush delivered the rest")
    s.stop()


@timeout(60)
def test_interval_trigger_delivers_a_small_batch():
    s = start_with_config("buffering:\n  size: 64MiB\n  interval: 300ms\n")
    db, t = "buf", "by_time"
    s.ingest(db, t, [{"id": 1}])
    wait_until(lambda: delivered(s, db, t) == 1, 20, what="the record delivered by the interval")
    eq(s.scalar("SELECT COUNT(*) FROM %s.%s" % (db, t)), 1, "rows")
    s.stop()


if __name__ == "__main__":
    run(globals())
