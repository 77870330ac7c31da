#!/usr/bin/env python3
"""A failing fsync of the durable log: Tarn stops acknowledging and exits 1.

The server runs with an LD_PRELOAD shim (fault_fsync.c, built here with cc)
that lets the first N fdatasync/fsync calls on log segments through and fails
every later one with EIO, as a dying disk would. Then: a write is refused with
an error (never acknowledged), the process exits with status 1 on its own,
and after a restart without the shim every record that was acknowledged is
in the table exactly once.
"""

import http.client
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HERE, Server, check, dumps, eq, note, run, tempdir, timeout  # noqa: E402


def build_shim():
    out = os.path.join(tempdir(), "fault_fsync.so")
    cc = os.environ.get("CC", "cc")
    p = subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", out, os.path.join(HERE, "fault_fsync.c"), "-ldl"],
                       capture_output=True, text=True, timeout=120)
    check(p.returncode == 0, "building the fsync shim failed: %s" % p.stderr)
    return out


@timeout(120)
def test_fsync_failure_stops_acks_and_exits_1():
    s = Server(name="fsyncfail", extra_env={"LD_PRELOAD": build_shim(), "TARN_FAULT_FSYNC_AFTER": "25"})
    s.start()
    acked, refused, sent = [], None, 0
    for i in range(2000):
        sent = i + 1
        try:
            r = s.post_records("ff", "t", dumps({"id": i, "v": "record %d" % i}), content_type="application/json",
                               timeout=20)
        except (ConnectionError, OSError, http.client.HTTPException) as e:
            refused = "connection: %s" % e
            break
        if r.status != 200:
            refused = "%d %s" % (r.status, r.text())
            check(r.status >= 500, "a failed sync must be a server error, got %s" % refused)
            break
        acked.append(i)
    check(refused is not None, "all %d writes were acknowledged: the shim did not fail any sync" % sent)
    check(len(acked) > 0, "nothing was acknowledged before the failure (%s)" % refused)
    note("%d records acknowledged, then: %s" % (len(acked), refused[:200]))

    try:
        rc = s.proc.wait(15)
    except Exception:
        s.kill9()
        raise AssertionError("the server did not exit within 15 s of a failed fsync")
    eq(rc, 1, "exit status after a failed fsync")
    with open(s.log_path, errors="replace") as f:
        log = f.read()
    check("failed to sync" in log, "the log does not say why the server exited")

    # Restart on the same data without the shim: recovery keeps every
    # acknowledged record (and may keep the refused one: it was written,
    # only its sync failed).
    s.extra_env = {}
    s.start()
    s.flush("ff", "t")
    rows = s.rows("SELECT id, count(*) FROM ff.t GROUP BY id ORDER BY id")
    got = {r[0]: r[1] for r in rows}
    missing = [i for i in acked if i not in got]
    check(not missing, "acknowledged ids missing after restart: %s" % missing[:20])
    dup = [i for i, c in got.items() if c != 1]
    check(not dup, "ids present more than once: %s" % dup[:20])
    extra = [i for i in got if i >= sent]
    check(not extra, "ids present that were never sent: %s" % extra[:20])
    eq(s.stop(), 0, "exit status after the restart")


if __name__ == "__main__":
    run(globals())
