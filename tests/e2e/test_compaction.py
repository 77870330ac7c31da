"""Compaction: a partition's small Parquet files are merged into one file and
swapped in one catalog transaction; the replaced files are deleted after the
grace period (and not before it; at the next start if that comes first);
files of different schema versions are merged separately and
every row stays readable with the widened types. Also exercises --config."""

import glob
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import check, eq, read_parquet, run, seq_range, start_with_config, timeout, wait_until  # noqa: E402

CONFIG = """
compaction:
  min_files: 3
  interval: 200ms
  grace: 1500ms
  target_size: 64MiB
buffering:
  interval: 60s
"""


def start_server(min_files=3):
    return start_with_config(CONFIG.replace("min_files: 3", "min_files: %d" % min_files))


def live_files(s, db, t):
    return s.get_json("/v1/tables/%s/%s" % (db, t))["files"]


def parquet_on_disk(s, db, t):
    return sorted(glob.glob(os.path.join(s.data, "lake", "processed", db, t, "*", "*.parquet")))


@timeout(90)
def test_small_files_are_merged_and_old_ones_deleted_after_grace():
    # min_files 5: with 3, a compaction between the 4th and the 5th flush
    # (the flushes are not atomic with the 200 ms compaction interval) left
    # two small files, fewer than min_files, and never one.
    s = start_server(min_files=5)
    db, t = "comp", "events"
    ids = []
    for batch in range(5):
        recs = [{"id": batch * 10 + k, "batch": batch, "tag": "b%d" % batch} for k in range(10)]
        ids += [r["id"] for r in recs]
        s.ingest(db, t, recs)
        s.flush(db, t)  # one file per flush (interval is 60 s, so nothing else delivers)
    wait_until(lambda: live_files(s, db, t) == 1, 20, what="the five files compacted into one")
    # Every row is there exactly once, in the one live file.
    eq(s.rows("SELECT id FROM %s.%s ORDER BY id" % (db, t)), [[i] for i in sorted(ids)], "rows after compaction")
    eq(s.scalar("SELECT COUNT(DISTINCT _seq) FROM %s.%s" % (db, t)), 50, "distinct _seq")
    # The replaced files go once the grace period has passed.
    wait_until(lambda: len(parquet_on_disk(s, db, t)) == 1, 20, what="replaced files deleted after the grace period")
    path = parquet_on_disk(s, db, t)[0]
    eq(seq_range(path), (1, 50), "compacted file is named after its sequence range")
    meta = read_parquet(path)
    eq(meta["num_rows"], 50, "rows in the compacted file (hyparquet)")
    seqs = [int(r["_seq"]) for r in meta["rows"]]
    eq(seqs, sorted(seqs), "compacted rows ordered by _seq")
    check(all(c == "SNAPPY" for c in meta["codecs"]), "codecs %s" % meta["codecs"])
    # And it survives a restart.
    s.stop()
    s.start()
    eq(s.scalar("SELECT COUNT(*) FROM %s.%s" % (db, t)), 50, "rows after restart")
    s.stop()


@timeout(90)
def test_replaced_files_kept_for_the_grace_period():
    # grace 1h: the files compaction replaced stay on disk (a query that
    # bound the table before the swap may still read them) but no query
    # sees them; a restart, with no query running, removes them.
    # The five files are made with compaction off (min_files 1000): with 5
    # the worker could merge them before the test lists them.
    graced = CONFIG.replace("grace: 1500ms", "grace: 1h")
    s = start_with_config(graced.replace("min_files: 3", "min_files: 1000"))
    db, t = "comp", "graced"
    for batch in range(5):
        s.ingest(db, t, [{"id": batch * 10 + k, "batch": batch} for k in range(10)])
        s.flush(db, t)
    before = parquet_on_disk(s, db, t)
    eq(len(before), 5, "files before compaction")
    s.stop()
    with open(os.path.join(s.root, "tarn.yaml"), "w") as f:
        f.write(graced.replace("min_files: 3", "min_files: 5"))
    s.start()
    wait_until(lambda: live_files(s, db, t) == 1, 20, what="the five files compacted into one")
    after = parquet_on_disk(s, db, t)
    eq(len(after), 6, "files on disk right after compaction (the compacted one and the five it replaced)")
    check(set(before) < set(after), "a replaced file is gone before its grace period")
    time.sleep(1.0)  # five more compaction rounds (interval 200 ms)
    eq(parquet_on_disk(s, db, t), after, "files on disk a second later, within the grace period")
    eq(s.scalar("SELECT COUNT(*) FROM %s.%s" % (db, t)), 50, "rows: the replaced files are not read")
    eq(s.scalar("SELECT COUNT(DISTINCT id) FROM %s.%s" % (db, t)), 50, "distinct ids")
    s.stop()
    s.start()
    eq(len(parquet_on_disk(s, db, t)), 1, "files on disk after a restart (replaced files removed at start)")
    eq(s.scalar("SELECT COUNT(*) FROM %s.%s" % (db, t)), 50, "rows after the restart")
    s.stop()


@timeout(120)
def test_compacted_files_stay_within_the_target_size():
    # Six files of about the same size X; with target_size 2.5 X compaction
    # merges runs of consecutive files adding up to at most the target: three
    # files of two each, never one of all six.
    db, t = "comp", "sized"
    s = start_with_config(CONFIG.replace("min_files: 3", "min_files: 1000"))  # no compaction yet
    rnd = random.Random(11)
    for batch in range(6):
        s.ingest(db, t, [{"id": batch * 100 + k, "h": "%064x" % rnd.getrandbits(256)} for k in range(100)])
        s.flush(db, t)
    before = parquet_on_disk(s, db, t)
    eq(len(before), 6, "files before compaction")
    sizes = [os.path.getsize(p) for p in before]
    check(max(sizes) < 1.1 * min(sizes), "flushed files of very different sizes: %s" % sizes)
    target = int(2.5 * max(sizes))
    s.stop()
    with open(os.path.join(s.root, "tarn.yaml"), "w") as f:
        f.write(CONFIG.replace("target_size: 64MiB", "target_size: %d" % target))
    s.start()
    wait_until(lambda: live_files(s, db, t) == 3, 20, what="six files compacted into three")
    time.sleep(1.0)  # five more compaction rounds: the merged files are not merged again
    eq(live_files(s, db, t), 3, "live files a second later")
    wait_until(lambda: len(parquet_on_disk(s, db, t)) == 3, 20, what="replaced files deleted after the grace period")
    after = parquet_on_disk(s, db, t)
    eq(sorted(seq_range(p) for p in after), [(1, 200), (201, 400), (401, 600)], "sequence ranges of the merged files")
    for p in after:
        check(os.path.getsize(p) <= target, "%s is %d bytes, over the %d-byte target" % (p, os.path.getsize(p), target))
    eq(s.rows("SELECT COUNT(*), COUNT(DISTINCT id), MIN(id), MAX(id) FROM %s.%s" % (db, t)), [[600, 600, 0, 599]],
       "rows after compaction")
    s.stop()


@timeout(90)
def test_schema_versions_are_compacted_separately():
    s = start_server()
    db, t = "comp", "widening"
    # Three files where s is a STRUCT and v a BIGINT, then three where s is a
    # string and v a DOUBLE: the table widens to VARCHAR / DOUBLE.
    for k in range(3):
        s.ingest(db, t, [{"id": k, "v": k, "s": {"x": k}}])
        s.flush(db, t)
    for k in range(3, 6):
        s.ingest(db, t, [{"id": k, "v": k + 0.5, "s": "text%d" % k}])
        s.flush(db, t)
    wait_until(lambda: live_files(s, db, t) == 2, 20, what="two compacted files, one per schema version")
    rows = s.rows("SELECT id, v, s FROM %s.%s ORDER BY id" % (db, t))
    eq([r[0] for r in rows], list(range(6)), "ids")
    eq([r[1] for r in rows], [0.0, 1.0, 2.0, 3.5, 4.5, 5.5], "v widened to DOUBLE")
    eq(rows[0][2].replace(" ", ""), '{"x":0}', "old STRUCT value read as its JSON text")
    eq(rows[5][2], "text5", "new VARCHAR value")
    s.stop()


if __name__ == "__main__":
    run(globals())
