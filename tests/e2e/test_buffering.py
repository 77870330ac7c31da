"""Buffering hints: delivery by size alone (interval set very long) delivers a
backlog many times the buffer size completely, in batches of at most about
max_batch, without a flush; a log recovered at start is delivered at once,
whatever the interval; delivery by interval alone delivers a small batch
once the interval has passed."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import check, dumps, eq, run, seq_range, start_with_config, timeout, wait_until  # noqa: E402



def delivered(s, db, t):
    for x in s.get_json("/v1/status")["tables"]:
        if x["database"] == db and x["name"] == t:
            return x["delivered_seq"]
    return 0


@timeout(120)
def test_size_trigger_delivers_a_backlog_many_buffers_long():
    # Regression: the size trigger used to stop after the first batches of a
    # backlog because it counted the whole log as delivered.
    s = start_with_config("buffering:\n  size: 64KiB\n  max_batch: 64KiB\n  interval: 1h\n"
                          "compaction:\n  interval: 1h\n")
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


@timeout(120)
def test_a_recovered_backlog_is_delivered_at_once_in_batches_up_to_max_batch():
    # Nothing is delivered during ingest (1 GiB buffer, 1 h interval); kill -9
    # keeps the log; the restart, with a 64 KiB buffer, a 256 KiB max_batch
    # and still a 1 h interval, must deliver the whole backlog without a
    # flush or a new record, in batches of at most max_batch (plus the record
    # that crosses it).
    s = start_with_config("buffering:\n  size: 1GiB\n  interval: 1h\ncompaction:\n  interval: 1h\n")
    db, t = "buf", "recovered"
    n, rec_bytes = 2000, 500
    for i in range(0, n, 250):
        s.ingest(db, t, [{"id": i + k, "pad": "p" * (rec_bytes - 30)} for k in range(250)])
    eq(delivered(s, db, t), 0, "delivered before the restart")
    s.kill9()
    with open(s.extra_args[1], "w") as f:
        f.write("buffering:\n  size: 64KiB\n  max_batch: 256KiB\n  interval: 1h\ncompaction:\n  interval: 1h\n")
    s.start()
    wait_until(lambda: delivered(s, db, t) == n, 60, what="the recovered backlog delivered without a flush")
    files = s.lake_files("processed", db, t, "parquet")
    # A batch stops once it holds max_batch bytes: it may pass it by the
    # record that crosses the line. The shortest record bounds the count.
    shortest = len(dumps({"id": 0, "pad": "p" * (rec_bytes - 30)}))
    per_batch = 256 * 1024 // shortest + 1
    for f in files:
        first, last = seq_range(f)
        check(last - first + 1 <= per_batch, "%s holds %d records, over max_batch (%d)" % (f, last - first + 1, per_batch))
    # 1 MB in batches of up to 256 KiB: 4 or 5 batches (a file per UTC date).
    check(4 <= len(files) <= 6, "expected the 1 MB backlog in 4 or 5 files, got %d: %s" % (len(files), files))
    eq(s.scalar("SELECT COUNT(DISTINCT id) FROM %s.%s" % (db, t)), n, "distinct ids")
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
