"""Disk full: with the data directory on a small tmpfs, ingest until the disk
is full. Refused requests get 507 TARN_ENOSPC and store nothing; every
acknowledged record is kept; once space returns, ingest and delivery resume
and every acknowledged record reaches the lake exactly once.

Needs root (mount -t tmpfs), as CI and the developers' machines run."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Server, check, eq, ndjson, run, tempdir, timeout, wait_until  # noqa: E402


def mount_tmpfs(size):
    mnt = tempdir("tarn-e2e-full-")
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size, "tmpfs", mnt], capture_output=True)
    check(p.returncode == 0, "cannot mount a tmpfs (this test needs root): %s" % p.stderr.decode(errors="replace"))
    return mnt


def umount(mnt):
    subprocess.run(["umount", "-l", mnt], capture_output=True)


@timeout(150)
def test_disk_full_refuses_then_recovers():
    mnt = mount_tmpfs("24m")
    try:
        s = Server(data_dir=os.path.join(mnt, "data")).start()
        db, t = "diskfull", "events"
        # Take most of the space up front so the log fills quickly.
        filler = os.path.join(mnt, "filler")
        with open(filler, "wb") as f:
            f.write(b"\0" * (16 << 20))
        acked = []
        refused = 0
        next_id = 0
        for _ in range(400):
            recs = [{"id": next_id + k, "pad": "x" * 900} for k in range(200)]
            next_id += len(recs)
            r = s.post_records(db, t, ndjson(recs))
            if r.status == 200:
                acked += [x["id"] for x in recs]
                continue
            eq(r.status, 507, "status once the disk is full (body %r)" % r.body[:300])
            err = r.json()["error"]
            eq(err["code"], "TARN_ENOSPC", "error code")
            refused += 1
            if refused >= 3:
                break
        check(refused >= 3, "the disk never filled (acked %d records)" % len(acked))
        check(acked, "nothing was acknowledged before the disk filled")
        check(s.alive(), "server died on a full disk; log:\n%s" % s.log_tail())

        # Delivery needs room for staging files too: it fails and keeps retrying.
        def delivery_error():
            tables = s.get_json("/v1/status")["tables"]
            return [x["last_error"] for x in tables if x["name"] == t and x["last_error"]]
        wait_until(delivery_error, 20, what="delivery to report the full disk in /v1/status")
        check(s.alive(), "server died when delivery hit the full disk")

        # Space returns: ingest resumes, and everything acknowledged is delivered.
        os.unlink(filler)
        more = [{"id": next_id + k, "pad": "y"} for k in range(10)]
        r = s.post_records(db, t, ndjson(more))
        eq(r.status, 200, "ingest after space returned (body %r)" % r.body[:300])
        acked += [x["id"] for x in more]
        wait_until(lambda: s.request("POST", "/v1/tables/%s/%s/flush" % (db, t)).status == 200, 60,
                   what="a flush that succeeds once space is back")
        rows = s.rows("SELECT id, COUNT(*) FROM %s.%s GROUP BY id" % (db, t))
        counts = {i: c for i, c in rows}
        missing = [i for i in acked if i not in counts]
        eq(missing[:10], [], "acknowledged ids missing from the lake")
        eq(sorted(i for i, c in counts.items() if c != 1)[:10], [], "ids present more than once")
        check(set(counts) <= set(range(next_id + 10)), "ids that were never sent")
        refused_ids = set(counts) - set(acked)
        eq(sorted(refused_ids)[:10], [], "ids from refused requests that were stored anyway")
        s.stop()
    finally:
        umount(mnt)


if __name__ == "__main__":
    run(globals())
