#!/usr/bin/env python3
"""tarnbench.py - Tarn's benchmarks, each against a peer measured in the same
run on the same machine. Started by bench/run.sh (which builds the peers and
installs wrk); see bench/README.md for what each benchmark measures.

    python3 bench/tarnbench.py [quick] [--only 1,2,...] [--keep]

Benchmarks report figures and ratios; they never assert. Every server runs on
127.0.0.1 on a free port with a temporary data directory; every server and
peer process is stopped at exit and every temporary directory removed
(--keep keeps the directories for a post-mortem). Results: a table on
stdout and bench/out/results.md; server logs in bench/out/logs/.

Standard library only.
"""

import atexit
import glob
import http.client
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
OUT = os.path.join(HERE, "out")
BIN = os.path.join(OUT, "bin")
LOGS = os.path.join(OUT, "logs")
DATA_CACHE = os.path.join(OUT, "data")
TARN = os.environ.get("TARN_BIN") or os.path.join(REPO, "build", "tarn")

MB = 1e6  # figures are in decimal megabytes (10^6 bytes)
BATCH_BYTES = 1 << 20

_procs = []       # every process started, stopped at exit
_tmpdirs = []
KEEP = False


# ------------------------------------------------------------------ plumbing

def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def cleanup():
    for p in _procs:
        if p.poll() is None:
            try:
                p.kill()
                p.wait(10)
            except Exception:
                pass
    if not KEEP:
        for d in _tmpdirs:
            shutil.rmtree(d, ignore_errors=True)


def _on_signal(signum, frame):
    raise SystemExit(128 + signum)


def tmpdir(name):
    root = os.environ.get("TARN_BENCH_TMP") or None
    d = tempfile.mkdtemp(prefix="tarn-bench-%s-" % name, dir=root)
    _tmpdirs.append(d)
    return d


def free_port():
    """A loopback port nobody listens on. Tarn and the peer set SO_REUSEPORT,
    so a stale server on a port would silently share it: bind without
    SO_REUSEPORT, which fails if any socket holds the port."""
    for _ in range(50):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        t = socket.socket()
        try:
            t.bind(("127.0.0.1", port))
            t.close()
            return port
        except OSError:
            t.close()
    raise RuntimeError("no free port")


def proc_status(pid):
    """VmHWM / VmRSS in MB, CPU seconds (user + system) and MB read from the
    disk (not the page cache) so far, of a process."""
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(("VmHWM:", "VmRSS:")):
                    out[line.split(":")[0]] = int(line.split()[1]) / 1024.0
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        out["cpu_s"] = (int(fields[11]) + int(fields[12])) / tick
        with open("/proc/%d/io" % pid) as f:
            for line in f:
                if line.startswith("read_bytes:"):
                    out["disk_read_mb"] = int(line.split()[1]) / MB
    except OSError:
        pass
    return out


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def _die_with_parent():
    """In the child before exec: SIGKILL it if the driver dies, so a killed
    run leaves no server behind."""
    try:
        import ctypes
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def run_json(cmd, timeout, what, env=None):
    """Runs a peer program and returns the JSON object on its last stdout line."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                         preexec_fn=_die_with_parent)
    _procs.append(p)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise RuntimeError("%s timed out after %ss" % (what, timeout))
    if p.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (what, p.returncode, err.strip()[-500:]))
    return json.loads(out.strip().splitlines()[-1])


class Http:
    """One keep-alive connection with the token."""

    def __init__(self, port, token, timeout=120):
        self.port, self.token, self.timeout = port, token, timeout
        self.conn = None

    def request(self, method, path, body=None, ctype="application/json", timeout=None):
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout or self.timeout)
            headers = {"Authorization": "Bearer " + self.token}
            if body is not None:
                headers["Content-Type"] = ctype
            try:
                self.conn.request(method, path, body=body, headers=headers)
                r = self.conn.getresponse()
                data = r.read()
                return r.status, data
            except (ConnectionError, http.client.HTTPException):
                self.close()
                if attempt:
                    raise
        raise RuntimeError("unreachable")

    def json(self, method, path, obj=None, timeout=None):
        body = json.dumps(obj).encode() if obj is not None else None
        status, data = self.request(method, path, body, timeout=timeout)
        try:
            return status, json.loads(data)
        except ValueError:
            return status, {"raw": data[:300].decode("utf-8", "replace")}

    def close(self):
        if self.conn:
            self.conn.close()
            self.conn = None


class Tarn:
    """build/tarn serve on a free loopback port."""

    def __init__(self, name, data_dir=None, config=None):
        self.name = name
        self.data = data_dir or tmpdir(name)
        self.config = config
        self.proc = None
        self.port = None
        self.token = None

    def start(self, wait=True):
        self.port = free_port()
        cmd = [TARN, "serve", "--data", self.data, "--listen", "127.0.0.1:%d" % self.port]
        if self.config:
            cfg = os.path.join(tmpdir("config"), "tarn.yaml")
            with open(cfg, "w") as f:
                f.write(self.config)
            cmd += ["--config", cfg]
        os.makedirs(LOGS, exist_ok=True)
        self.logf = open(os.path.join(LOGS, self.name + ".log"), "ab")
        self.t_exec = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdout=self.logf, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        _procs.append(self.proc)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("tarn (%s) exited with %d; see %s" % (self.name, self.proc.returncode,
                                                                         self.logf.name))
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/health")
                ok = c.getresponse().status == 200
                c.close()
                if ok:
                    break
            except OSError:
                pass
            time.sleep(0.02)
        else:
            raise RuntimeError("tarn (%s) did not answer /health within %ss" % (self.name, timeout))
        self.ready_s = time.monotonic() - self.t_exec
        with open(os.path.join(self.data, "admin.token")) as f:
            self.token = f.read().strip()
        return self.ready_s

    def http(self, timeout=120):
        return Http(self.port, self.token, timeout)

    def status(self):
        return proc_status(self.proc.pid)

    def table_status(self, db, table):
        h = self.http(30)
        try:
            st, js = h.json("GET", "/v1/status")
        finally:
            h.close()
        for t in js.get("tables", []) if st == 200 else []:
            if t.get("database") == db and t.get("name") == table:
                return t
        return {}

    def stop(self, timeout=60):
        """SIGTERM (Tarn delivers what is buffered), SIGKILL after timeout."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log("tarn (%s) did not stop within %ss: SIGKILL" % (self.name, timeout))
                self.proc.kill()
                self.proc.wait(10)
        self.logf.close()

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.logf.close()


# ------------------------------------------------------------------ data

def users_file(count):
    """bench/out/data/users-COUNT.ndjson, generated once (deterministic)."""
    os.makedirs(DATA_CACHE, exist_ok=True)
    path = os.path.join(DATA_CACHE, "users-%d.ndjson" % count)
    stamp = os.path.getmtime(os.path.join(HERE, "gen_users.py"))
    if not os.path.exists(path) or os.path.getmtime(path) < stamp:
        log("generating %d randomuser-shaped records into %s" % (count, path))
        t0 = time.monotonic()
        subprocess.run([sys.executable, os.path.join(HERE, "gen_users.py"), str(count), path], check=True,
                       timeout=600)
        log("generated in %.1f s" % (time.monotonic() - t0))
    return path


def cut_batches(path, limit=BATCH_BYTES):
    """Whole lines, at most limit bytes a batch (the cut fsync_writer makes)."""
    with open(path, "rb") as f:
        data = f.read()
    batches = []
    start = pos = recs = 0
    n = len(data)
    counts = []
    while pos < n:
        nl = data.find(b"\n", pos)
        end = n if nl < 0 else nl + 1
        if end - start > limit and pos > start:
            batches.append(data[start:pos])
            counts.append(recs)
            start, recs = pos, 0
        recs += 1
        pos = end
    if pos > start:
        batches.append(data[start:pos])
        counts.append(recs)
    return list(zip(batches, counts))


def ingest(tarn, db, table, batches, conns, seconds=None, once=False, max_s=600):
    """POSTs NDJSON batches from conns connections. once: every batch exactly
    once; else cycles through them for `seconds`. Returns acknowledged bytes,
    records, requests, errors and the wall time."""
    lock = threading.Lock()
    state = {"next": 0, "bytes": 0, "records": 0, "requests": 0, "errors": 0, "first_error": None}
    path = "/v1/tables/%s/%s/records" % (db, table)
    t0 = time.monotonic()
    deadline = t0 + (seconds if seconds else max_s)

    def worker():
        h = tarn.http(timeout=120)
        try:
            while time.monotonic() < deadline:
                with lock:
                    k = state["next"]
                    if once and k >= len(batches):
                        return
                    state["next"] = k + 1
                    if state["errors"] > 20:
                        return
                body, count = batches[k % len(batches)]
                try:
                    st, data = h.request("POST", path, body, ctype="application/x-ndjson")
                except Exception as e:  # a dropped connection: count it, go on
                    st, data = 0, str(e).encode()
                with lock:
                    if st == 200:
                        state["bytes"] += len(body)
                        state["records"] += json.loads(data)["records"]
                        state["requests"] += 1
                    else:
                        state["errors"] += 1
                        if not state["first_error"]:
                            state["first_error"] = "%s %s" % (st, data[:200])
        finally:
            h.close()

    c0 = os.times()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max_s + 150)
    state["seconds"] = time.monotonic() - t0
    c1 = os.times()
    state["client_cpu_s"] = (c1.user - c0.user) + (c1.system - c0.system)
    return state


def parse_wrk(out):
    for line in out.splitlines():
        if line.startswith("WRK_JSON "):
            return json.loads(line[len("WRK_JSON "):])
    raise RuntimeError("wrk printed no WRK_JSON line:\n" + out[-1000:])


def run_wrk(url, token, seconds, conns=16, threads=2):
    cmd = ["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % seconds, "-s", os.path.join(HERE, "post.lua"), url]
    env = dict(os.environ, TARN_TOKEN=token)
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=seconds + 60,
                       preexec_fn=_die_with_parent)
    if p.returncode != 0:
        raise RuntimeError("wrk failed: " + p.stderr[-500:])
    w = parse_wrk(p.stdout)
    w["cmd"] = " ".join(cmd)
    w["ok"] = w["requests"] - w["status_errors"]
    w["rps"] = w["ok"] / (w["duration_us"] / 1e6)
    return w


# ------------------------------------------------------------------ results

class Results:
    def __init__(self, quick):
        self.quick = quick
        self.rows = []      # (benchmark, tarn, peer name, peer, ratio, target)
        self.notes = []
        self.memory = []    # (phase, VmHWM MB, VmRSS MB, CPU s, MB read from disk)
        self.details = {}

    def row(self, bench, tarn, peer_name, peer, ratio, target):
        self.rows.append((bench, tarn, peer_name, peer, ratio, target))
        log("RESULT %s: tarn %s | %s %s | %s | target %s" % (bench, tarn, peer_name, peer, ratio, target))

    def mem(self, phase, tarn):
        s = tarn.status()
        self.memory.append((phase, s.get("VmHWM", float("nan")), s.get("VmRSS", float("nan")), s.get("cpu_s", 0),
                            s.get("disk_read_mb", float("nan"))))

    def note(self, text):
        self.notes.append(text)
        log("note: " + text)

    def markdown(self, header):
        lines = [header, "", "| benchmark | Tarn | peer | peer figure | Tarn / peer | target |",
                 "|---|---|---|---|---|---|"]
        for r in self.rows:
            lines.append("| " + " | ".join(str(x) for x in r) + " |")
        if self.memory:
            lines += ["", "Server memory and CPU (VmHWM is the peak RSS since the process started):", "",
                      "| server, after | VmHWM MB | VmRSS MB | CPU s (user+sys) | MB read from disk |",
                      "|---|---|---|---|---|"]
            for m in self.memory:
                lines.append("| %s | %.0f | %.0f | %.1f | %.0f |" % m)
        if self.notes:
            lines += ["", "Notes:", ""] + ["- " + n for n in self.notes]
        return "\n".join(lines) + "\n"

    def table(self):
        cols = ["benchmark", "Tarn", "peer", "peer figure", "Tarn / peer", "target"]
        rows = [cols] + [[str(x) for x in r] for r in self.rows]
        w = [max(len(r[i]) for r in rows) for i in range(len(cols))]
        out = []
        for k, r in enumerate(rows):
            out.append("  ".join(r[i].ljust(w[i]) for i in range(len(cols))))
            if k == 0:
                out.append("  ".join("-" * w[i] for i in range(len(cols))))
        if self.memory:
            out += ["", "server memory (MB) / CPU s:"]
            for m in self.memory:
                out.append("  %-44s VmHWM %6.0f  VmRSS %6.0f  cpu %6.1f  disk reads %6.0f MB" % m)
        return "\n".join(out)


def fmt_ratio(x):
    return "%.2fx" % x if x == x else "n/a"


# ------------------------------------------------------------------ benchmarks

def cpu_busy(seconds=1.0):
    """Fraction of the machine's CPU time that was busy over `seconds`
    (from /proc/stat): anything well above 0 while the benchmark idles is
    another workload that will skew the figures."""
    t0, i0, _ = cpu_ticks()
    time.sleep(seconds)
    t1, i1, _ = cpu_ticks()
    return 1 - (i1 - i0) / max(1, t1 - t0)


def cpu_ticks():
    """The machine's CPU ticks from /proc/stat: (all, idle + iowait, steal).
    Steal is time the hypervisor gave this VM's CPUs to someone else."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v), v[3] + v[4], v[7] if len(v) > 7 else 0


BUSY = []


def settle(seconds=3):
    """Lets the disk finish what earlier steps left (write-back, discards of
    deleted files) before the next timed step: on this kind of virtual disk
    the durable-write rate right after a few GB were written and deleted can
    be a third of the rate a few seconds later."""
    os.sync()
    time.sleep(max(0, seconds - 1))
    BUSY.append(cpu_busy(1.0))


def drop(tarn):
    """Removes a stopped server's data directory at once (not at exit), so
    its gigabytes do not linger into the next measurement."""
    if not KEEP:
        shutil.rmtree(tarn.data, ignore_errors=True)


def fsync_peer(path, threads, seconds):
    return run_json([os.path.join(BIN, "fsync_writer"), "--threads", str(threads), "--seconds", str(seconds),
                     "--max-bytes", str(6 * 10 ** 9), path, os.path.join(tmpdir("fsync"), "append.out")],
                    seconds + 120, "fsync_writer")


def bench_batched_ingest(res, cfg):
    """1. Durable ingest of ~1 MiB NDJSON batches from several connections.

    The disk's durable-write rate drifts (it is a virtual disk), so the peer
    runs before, between and after the two Tarn runs, and each Tarn figure is
    compared with the mean of the peer runs on either side of it."""
    path = users_file(cfg["small_records"])
    batches = cut_batches(path)
    conns, secs = cfg["ingest_conns"], cfg["ingest_seconds"]
    psecs = max(3, secs // 2)
    avg = sum(len(b) for b, _ in batches) / len(batches)
    log("1. batched ingest: %d batches of about %.0f KB, %d connections, %d s" % (len(batches), avg / 1e3, conns, secs))
    peers = []

    def tarn_run(name, config, label):
        settle()
        t = Tarn(name, config=config).start()
        cpu0 = t.status().get("cpu_s", 0)
        st = ingest(t, "bench", "batched", batches, conns, seconds=secs)
        st["server_cpu_s"] = t.status().get("cpu_s", 0) - cpu0
        st["table"] = t.table_status("bench", "batched")
        res.mem("1. batched ingest, %s" % label, t)
        t.kill9()  # an undelivered backlog is of no interest here
        drop(t)
        if st["errors"]:
            res.note("batched ingest (%s): %d failed requests (first: %s)" % (label, st["errors"], st["first_error"]))
        st["mb_s"] = st["bytes"] / MB / st["seconds"]
        res.details["ingest " + label] = st
        return st

    settle()
    peers.append(fsync_peer(path, conns, psecs))
    st = tarn_run("ingest-default", None, "default config")
    settle()
    peers.append(fsync_peer(path, conns, psecs))
    st2 = tarn_run("ingest-deferred", "buffering:\n  size: 4GiB\n  interval: 1h\n", "delivery deferred")
    settle()
    peers.append(fsync_peer(path, conns, psecs))
    peer1 = fsync_peer(path, 1, psecs)
    res.details["fsync_writer"] = peers + [peer1]
    rates = [p["mb_s"] for p in peers]
    p_a, p_b = (rates[0] + rates[1]) / 2, (rates[1] + rates[2]) / 2
    ts = st["table"]
    res.row("1. batched NDJSON ingest, fsync on, %d conns, default config" % conns,
            "%.0f MB/s (%.0fk rec/s)" % (st["mb_s"], st["records"] / st["seconds"] / 1e3),
            "fsync_writer, %d threads" % conns, "%.0f MB/s (%.0f, %.0f)" % (p_a, rates[0], rates[1]),
            fmt_ratio(st["mb_s"] / p_a), ">= 100 MB/s")
    res.row("1b. same, delivery deferred (the durable path alone)",
            "%.0f MB/s (%.0fk rec/s)" % (st2["mb_s"], st2["records"] / st2["seconds"] / 1e3),
            "fsync_writer, %d threads" % conns, "%.0f MB/s (%.0f, %.0f)" % (p_b, rates[1], rates[2]),
            fmt_ratio(st2["mb_s"] / p_b), ">= 100 MB/s")
    res.note("batched ingest, default config: the server used %.2f of 2 cores; when the run ended %s of %s "
             "acknowledged records had been delivered to the lake (delivery runs beside ingest)" %
             (st["server_cpu_s"] / st["seconds"], ts.get("delivered_seq"), ts.get("durable_seq")))
    res.note("batched ingest, delivery deferred: the server used %.2f of 2 cores, the Python client %.2f" %
             (st2["server_cpu_s"] / st2["seconds"], st2["client_cpu_s"] / st2["seconds"]))
    res.note("fsync_writer (write + fdatasync per ~1 MiB batch): %s MB/s with %d threads in %d-s runs before, "
             "between and after the Tarn runs; %.0f MB/s with 1 thread" %
             (", ".join("%.0f" % r for r in rates), conns, psecs, peer1["mb_s"]))


def post_peer(mode, seconds, conns):
    """wrk against bench/peers/post_server (see there)."""
    port = free_port()
    d = tmpdir("post-peer")
    logf = open(os.path.join(LOGS, "post_server-%s.log" % mode), "ab")
    p = subprocess.Popen([os.path.join(BIN, "post_server"), "--listen", str(port), "--out",
                          os.path.join(d, "records.ndjson"), "--sync", mode], stdout=logf, stderr=logf,
                         preexec_fn=_die_with_parent)
    _procs.append(p)
    try:
        for _ in range(250):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.02)
        return run_wrk("http://127.0.0.1:%d/v1/tables/bench/single/records" % port, "x", seconds, conns=conns)
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
        logf.close()
        shutil.rmtree(d, ignore_errors=True)


def tarn_wrk(res, cfg, conns):
    t = Tarn("single-posts-c%d" % conns).start()
    cpu0 = t.status().get("cpu_s", 0)
    w = run_wrk("http://127.0.0.1:%d/v1/tables/bench/single/records" % t.port, t.token, cfg["wrk_seconds"],
                conns=conns)
    w["server_cpu_s"] = t.status().get("cpu_s", 0) - cpu0
    time.sleep(0.2)
    ts = t.table_status("bench", "single")
    res.mem("2. single-record POSTs, %d connections" % conns, t)
    t.stop(timeout=60)
    drop(t)
    durable = ts.get("durable_seq", 0)
    w["durable_seq"] = durable
    ok = 0 <= durable - w["ok"] <= conns
    res.note("single POSTs, %d connections: wrk %d requests, %d non-2xx, socket errors %d/%d/%d/%d "
             "(connect/read/write/timeout); GET /v1/status durable_seq %d: %s; latency p50 %.2f ms, p99 %.2f ms; "
             "the server used %.2f of 2 cores" %
             (conns, w["requests"], w["status_errors"], w["connect_errors"], w["read_errors"], w["write_errors"],
              w["timeouts"], durable,
              "consistent (durable_seq - 2xx = %d: requests in flight when wrk stopped)" % (durable - w["ok"])
              if ok else "INCONSISTENT (durable_seq - 2xx = %d)" % (durable - w["ok"]),
              w["latency_p50_us"] / 1e3, w["latency_p99_us"] / 1e3,
              w["server_cpu_s"] / (w["duration_us"] / 1e6)))
    return w


def fsync_probe(seconds=1.0):
    """The disk's fdatasync latency right now, in ms (p50, p99): 100-byte
    appends to a fresh file, each followed by fdatasync, as a log with no
    group commit would do. It says which kind of minute a run had: at c16,
    sixteen requests at most share an fsync, so its latency caps any
    group-committing server (see bench/README.md)."""
    d = tmpdir("fsync-probe")
    lat = []
    fd = os.open(os.path.join(d, "probe"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        end = time.monotonic() + seconds
        rec = b"x" * 99 + b"\n"
        while time.monotonic() < end and len(lat) < 100000:
            t = time.perf_counter()
            os.write(fd, rec)
            os.fdatasync(fd)
            lat.append((time.perf_counter() - t) * 1e3)
    finally:
        os.close(fd)
        shutil.rmtree(d, ignore_errors=True)
    lat.sort()
    return lat[len(lat) // 2], lat[min(len(lat) - 1, len(lat) * 99 // 100)]


def bench_single_posts(res, cfg):
    """2. Single-record POSTs with wrk, keep-alive, 16 (and 64) connections.
    At 16 connections Tarn and the fdatasync-per-request peer take turns for
    a few rounds, each round after an fsync probe: a shared virtual disk has
    slow minutes, and one sample would report the minute rather than the
    server. The row gives the medians; the notes give every round."""
    secs = cfg["wrk_seconds"]
    rounds = cfg["post_rounds"]
    log("2. single-record POSTs: %d rounds of wrk -t2 -c16 -d%ds against Tarn and the peer (and -c64)" %
        (rounds, secs))
    details = {"rounds": []}
    tarn16, each16 = [], []
    for i in range(rounds):
        settle()
        probe = fsync_probe()
        c0 = cpu_ticks()
        w = tarn_wrk(res, cfg, 16)
        c1 = cpu_ticks()
        w["steal"] = (c1[2] - c0[2]) / max(1, c1[0] - c0[0])
        settle()
        each = post_peer("each", secs, 16)
        tarn16.append(w)
        each16.append(each)
        details["rounds"].append({"fdatasync_ms": probe, "tarn": w, "peer each": each})
        res.note("single POSTs at 16 connections, round %d of %d: fdatasync p50 %.2f ms, p99 %.2f ms before it; "
                 "Tarn %.0f rec/s (CPU steal %.1f%% during it), post_server (fdatasync per request) %.0f rec/s, %s" %
                 (i + 1, rounds, probe[0], probe[1], w["rps"], 100 * w["steal"], each["rps"],
                  fmt_ratio(w["rps"] / each["rps"])))
    settle(1)
    details["peer none c16"] = none = post_peer("none", secs, 16)
    settle()
    details["tarn c64"] = w64 = tarn_wrk(res, cfg, 64)
    settle()
    details["peer each c64"] = each64 = post_peer("each", secs, 64)
    res.details["single posts"] = details
    t16 = median([w["rps"] for w in tarn16])
    e16 = median([w["rps"] for w in each16])
    res.row("2. single-record POSTs, wrk -t2 -c16, fsync on (median of %d rounds)" % rounds, "%.0f rec/s" % t16,
            "post_server: write + fdatasync per request", "%.0f rec/s" % e16, fmt_ratio(t16 / e16),
            ">= 20,000 rec/s")
    res.row("2b. same vs. the HTTP ceiling", "%.0f rec/s" % t16, "post_server: write only, no fsync",
            "%.0f rec/s" % none["rps"], fmt_ratio(t16 / none["rps"]), "")
    res.row("2c. single-record POSTs, wrk -t2 -c64, fsync on", "%.0f rec/s" % w64["rps"],
            "post_server: write + fdatasync per request", "%.0f rec/s" % each64["rps"],
            fmt_ratio(w64["rps"] / each64["rps"]), "")
    named = [("fdatasync per request, 16 connections, round %d" % (i + 1), x) for i, x in enumerate(each16)]
    for name, x in named + [("no fsync, 16 connections", none), ("fdatasync per request, 64 connections", each64)]:
        res.note("post_server (%s): %d requests, %d non-2xx, latency p50 %.2f ms, p99 %.2f ms" %
                 (name, x["requests"], x["status_errors"], x["latency_p50_us"] / 1e3, x["latency_p99_us"] / 1e3))


def delivery_phases(tarn):
    """The phases of the last delivery the server logged ("delivered N records
    ... in T ms: staging a, parquet b, ..."), as text."""
    try:
        with open(tarn.logf.name, errors="replace") as f:
            lines = [ln for ln in f if "] " in ln and " delivered " in ln and " ms: " in ln]
    except OSError:
        return ""
    if not lines:
        return ""
    m = re.search(r"in (\d+) ms: (.*)$", lines[-1].strip())
    return "total %s ms: %s (ms)" % (m.group(1), m.group(2)) if m else ""


def bench_delivery_and_queries(res, cfg):
    """3. JSON -> Parquet delivery vs DuckDB's COPY; 4. queries on the result."""
    n = cfg["big_records"]
    path = users_file(n)
    size = os.path.getsize(path)
    log("3. delivery: %d records, %.0f MB" % (n, size / MB))
    batches = cut_batches(path)

    big = "buffering:\n  size: 1GiB\n  interval: 1h\ncompaction:\n  interval: 1h\n"
    small = "buffering:\n  size: 64MiB\n  interval: 1h\ncompaction:\n  interval: 1h\n"
    # The same, with catching up in larger batches turned off: every batch
    # is one buffer (about 64 MiB), as in a steady stream at that rate.
    small_only = "buffering:\n  size: 64MiB\n  max_batch: 64MiB\n  interval: 1h\ncompaction:\n  interval: 1h\n"
    a = Tarn("delivery-1g", config=big).start()
    st = ingest(a, "bench", "users", batches, cfg["ingest_conns"], once=True)
    if st["records"] != n:
        res.note("delivery: only %d of %d records were acknowledged (%s)" % (st["records"], n, st["first_error"]))
    res.note("delivery input: %d records, %.0f MB, ingested in %.1f s (%.0f MB/s, %d connections, nothing "
             "delivered meanwhile)" % (st["records"], size / MB, st["seconds"], st["bytes"] / MB / st["seconds"],
                                       cfg["ingest_conns"]))
    res.mem("3. after ingesting %dk records (1GiB buffer)" % (n // 1000), a)
    # Kill -9 (acknowledged records are durable) and keep the data directory,
    # so that the same log can be delivered in every round: with a 1 GiB
    # buffer (one batch) and a 64 MiB buffer (several).
    a.kill9()
    base = a.data
    os.sync()

    def copy_of_base(name):
        d = tmpdir(name)
        shutil.rmtree(d)
        shutil.copytree(base, d, symlinks=True)
        os.sync()
        return d

    def peer_run(*flags):
        out = os.path.join(tmpdir("duckdb-copy"), "out.parquet")
        r = run_json([os.path.join(BIN, "duckdb_copy")] + list(flags) + [path, out], 600, "duckdb_copy")
        shutil.rmtree(os.path.dirname(out), ignore_errors=True)
        return r

    # Rounds alternate the peer and Tarn, so that neither always runs on
    # memory the other has just freed: on this VM, memory first touched
    # again costs about 1 s per 460 MB, enough to swing one run by 30%.
    rounds = cfg["delivery_rounds"]
    t_1g, t_64, t_64b, t_raw, peers, peers_no, phases = [], [], [], [], [], [], []
    a = h = b_files = b_batches = None

    def from_exec(name, config, mem=None):
        """exec -> the reply of flush?wait=processed on a fresh copy of the
        log; (seconds, Parquet files, batches). mem: a label to report the
        server's memory under."""
        b = Tarn(name, data_dir=copy_of_base(name), config=config)
        log_path = os.path.join(LOGS, name + ".log")
        log_from = os.path.getsize(log_path) if os.path.exists(log_path) else 0  # logs are appended to
        b.start(wait=False)
        b.wait_ready()
        hb = b.http(timeout=900)
        bst, bjs = hb.json("POST", "/v1/tables/bench/users/flush?wait=processed", {})
        secs = time.monotonic() - b.t_exec
        hb.close()
        if bst != 200:
            res.note("flush (%s) failed: %s %s" % (name, bst, bjs))
        pq = glob.glob(os.path.join(b.data, "lake", "processed", "bench", "users", "**", "*.parquet"),
                       recursive=True)
        if mem:
            res.mem(mem, b)
        b.stop(timeout=60)
        with open(log_path, errors="replace") as f:
            f.seek(log_from)
            nb = sum(1 for line in f if "] bench.users: delivered " in line)
        drop(b)
        return secs, pq, nb
    for r in range(rounds):
        peers.append(peer_run())
        peers_no.append(peer_run("--no-insertion-order"))
        last = r == rounds - 1

        x = Tarn("delivery-1g-%d" % r, data_dir=copy_of_base("delivery-1g-%d" % r), config=big).start()
        hx = x.http(timeout=900)
        # JSON -> Parquet ends when the Parquet files are published (queryable):
        # ?wait=processed. The raw zone (gzip NDJSON) follows at low priority;
        # its lag is reported below.
        t0 = time.monotonic()
        fst, fjs = hx.json("POST", "/v1/tables/bench/users/flush?wait=processed", {})
        t_1g.append(time.monotonic() - t0)
        if fst != 200:
            res.note("flush (1GiB buffer) failed: %s %s" % (fst, fjs))
        rst, rjs = hx.json("POST", "/v1/tables/bench/users/flush", {})
        t_raw.append(time.monotonic() - t0 - t_1g[-1])
        if rst != 200:
            res.note("flush of the raw zone (1GiB buffer) failed: %s %s" % (rst, rjs))
        phases.append(delivery_phases(x))
        if r == 0:
            res.mem("3. after flush, 1GiB buffer", x)
            res.note("restart after kill -9 with %.0f MB in the log: /health answered after %.2f s" %
                     (size / MB, x.ready_s))
        if last:
            a, h = x, hx  # its lake serves the queries below
        else:
            hx.close()
            x.stop(timeout=60)
            drop(x)

        # 64 MiB: the worker starts delivering as soon as the server opens
        # (the log was recovered at start), so time from exec to the flush's
        # reply. The backlog is caught up in batches of up to max_batch
        # (512 MiB by default); then again with batches of one buffer.
        secs, b_files, b_batches = from_exec("delivery-64m-%d" % r, small,
                                             "3. after flush, 64MiB buffer (restart + flush)" if r == 0 else None)
        t_64.append(secs)
        secs, _, nb_only = from_exec("delivery-64m-only-%d" % r, small_only)
        t_64b.append(secs)
        log("3. round %d: peer %.2f s, Tarn 1GiB %.2f s, 64MiB %.2f s, 64MiB batches %.2f s" %
            (r + 1, peers[-1]["seconds"], t_1g[-1], t_64[-1], t_64b[-1]))

    res.details["duckdb_copy"] = peers + peers_no
    res.details["delivery phases 1GiB"] = phases
    res.note("rounds (peer, then Tarn 1GiB, 64MiB, 64MiB batches, each on a fresh copy of the log): %s" %
             "; ".join("peer %.2f / %.2f s, 1GiB %.2f s, 64MiB %.2f s, 64MiB batches %.2f s" %
                       (p["seconds"], q["seconds"], x1, x6, x6b)
                       for p, q, x1, x6, x6b in zip(peers, peers_no, t_1g, t_64, t_64b)))
    res.note("1GiB flush, the delivery's own phases (server log), per round: %s" % " | ".join(phases))
    res.note("1GiB: the raw zone (gzip NDJSON, nice 19) was complete %s s after the Parquet files" %
             " / ".join("%.2f" % x for x in t_raw))
    files = sorted(glob.glob(os.path.join(a.data, "lake", "processed", "bench", "users", "**", "*.parquet"),
                             recursive=True))
    tarn_bytes = sum(os.path.getsize(f) for f in files)
    raw = glob.glob(os.path.join(a.data, "lake", "raw", "bench", "users", "**", "*.json.gz"), recursive=True)
    peer, peer_no = median([p["seconds"] for p in peers]), median([p["seconds"] for p in peers_no])
    res.note("DuckDB COPY: median %.2f s (peak RSS %s MB); with preserve_insertion_order=false %.2f s (peak RSS %s "
             "MB). Tarn 1GiB buffer: %d Parquet file(s), %.1f MB, plus %d raw .json.gz (%.1f MB); DuckDB: %.1f MB" %
             (peer, peers[0]["peak_rss_mb"], peer_no, peers_no[0]["peak_rss_mb"], len(files), tarn_bytes / MB,
              len(raw), sum(os.path.getsize(f) for f in raw) / MB, peers[0]["parquet_bytes"] / MB))
    res.note("64MiB buffer: %d batch(es), %d Parquet file(s) (max_batch 512 MiB: the backlog recovered at start is "
             "caught up in batches of up to that); with max_batch 64MiB: %d batches. Both times include the "
             "server's start (about %.2f s to /health with this log, measured on the 1GiB run)" %
             (b_batches, len(b_files), nb_only, a.ready_s))
    rate = lambda s: "%.0f MB/s (%.2f s)" % (size / MB / s, s)
    ratios = lambda ts: " (rounds: %s)" % ", ".join("%.2f" % (p["seconds"] / t) for p, t in zip(peers, ts))
    m1, m64, m64b = median(t_1g), median(t_64), median(t_64b)
    res.row("3. JSON -> Parquet, %dk records, flush with 1GiB buffer, median of %d" % (n // 1000, rounds), rate(m1),
            "DuckDB read_json -> COPY", rate(peer), fmt_ratio(peer / m1) + ratios(t_1g), ">= 0.9x")
    res.row("3b. same, 64MiB buffer (exec -> flush reply)", rate(m64), "DuckDB read_json -> COPY", rate(peer),
            fmt_ratio(peer / m64) + ratios(t_64), ">= 0.9x")
    res.row("3c. 1GiB buffer vs DuckDB preserve_insertion_order=false", rate(m1), "DuckDB COPY, no insertion order",
            rate(peer_no), fmt_ratio(peer_no / m1), "")
    res.row("3d. 64MiB buffer, batches of one buffer (max_batch 64MiB)", rate(m64b), "DuckDB read_json -> COPY",
            rate(peer), fmt_ratio(peer / m64b) + ratios(t_64b), "")

    bench_queries(res, cfg, a, h, files, path)
    h.close()
    a.stop(timeout=60)
    drop(a)


QUERIES = [
    ("COUNT(*)", "SELECT COUNT(*) FROM bench.users",
     "SELECT COUNT(*) FROM users"),
    ("GROUP BY country", "SELECT location.country, COUNT(*), AVG(dob.age) FROM bench.users GROUP BY 1 ORDER BY 2 DESC",
     "SELECT location_country, COUNT(*), AVG(dob_age) FROM users GROUP BY 1 ORDER BY 2 DESC"),
    ("filter", "SELECT name.first, name.last, email FROM bench.users WHERE location.country = 'Norway' "
               "AND dob.age BETWEEN 30 AND 31 AND gender = 'female' ORDER BY email LIMIT 100",
     "SELECT name_first, name_last, email FROM users WHERE location_country = 'Norway' "
     "AND dob_age BETWEEN 30 AND 31 AND gender = 'female' ORDER BY email LIMIT 100"),
]


def sqlite_load(path, db_path):
    """The records flattened into one SQLite table (every leaf a column)."""
    cols = ["gender", "name_title", "name_first", "name_last", "location_city", "location_state",
            "location_country", "location_postcode", "location_coordinates_latitude",
            "location_coordinates_longitude", "email", "login_uuid", "login_username", "dob_date", "dob_age", "nat"]
    con = sqlite3.connect(db_path)
    con.execute("PRAGMA journal_mode=OFF")
    con.execute("PRAGMA synchronous=OFF")
    con.execute("CREATE TABLE users (%s)" % ", ".join(
        c + (" INTEGER" if c == "dob_age" else " TEXT") for c in cols))

    def rows():
        with open(path, encoding="utf-8") as f:
            for line in f:
                r = json.loads(line)
                nm, loc, lg, dob = r["name"], r["location"], r["login"], r["dob"]
                yield (r["gender"], nm["title"], nm["first"], nm["last"], loc["city"], loc["state"],
                       loc["country"], str(loc["postcode"]), loc["coordinates"]["latitude"],
                       loc["coordinates"]["longitude"], r["email"], lg["uuid"], lg["username"], dob["date"],
                       dob["age"], r["nat"])

    con.executemany("INSERT INTO users VALUES (%s)" % ",".join("?" * len(cols)), rows())
    con.commit()
    con.close()


def bench_queries(res, cfg, tarn, h, files, path):
    """4. The queries on Tarn (over HTTP) and on plain DuckDB (in process),
    in interleaved rounds: Tarn, the peer, the peer with footers cached."""
    reps, rounds = cfg["query_reps"], cfg["query_rounds"]
    log("4. queries: %d rounds of %d runs each after one warm-up" % (rounds, reps))
    sqls = [q[1] for q in QUERIES]
    # The same statements from Python's http.client: what a script sees,
    # the client's own cost (about 0.3 ms a request here) included.
    py = []
    for name, sql, _ in QUERIES:
        h.json("POST", "/v1/query", {"sql": sql})
        wall = []
        for _ in range(reps):
            t0 = time.monotonic()
            st, js = h.json("POST", "/v1/query", {"sql": sql})
            wall.append((time.monotonic() - t0) * 1e3)
            if st != 200:
                res.note("query %s failed: %s %s" % (name, st, js))
                break
        py.append(median(wall))
    res.mem("4. after %d queries" % (reps * len(QUERIES) + len(QUERIES)), tarn)

    lst = os.path.join(tmpdir("files"), "files.txt")
    with open(lst, "w") as f:
        f.write("\n".join(files) + "\n")
    tok = os.path.join(tarn.data, "admin.token")
    tarn_r, peer_r, fc_r = [], [], []
    for _ in range(rounds):
        tarn_r.append(run_json([os.path.join(BIN, "query_client"), "--reps", str(reps), str(tarn.port), tok] + sqls,
                               600, "query_client"))
        peer_r.append(run_json([os.path.join(BIN, "duckdb_query"), "--reps", str(reps), lst, "bench.users"] + sqls,
                               600, "duckdb_query"))
        # Tarn keeps Parquet footers cached (parquet_metadata_cache); plain
        # DuckDB does not by default. The same peer with it, for comparison.
        fc_r.append(run_json([os.path.join(BIN, "duckdb_query"), "--reps", str(reps), "--footer-cache", "1", lst,
                              "bench.users"] + sqls, 600, "duckdb_query --footer-cache"))
    res.details["queries"] = {"tarn": tarn_r, "duckdb": peer_r, "duckdb_footer_cache": fc_r, "tarn_python_ms": py}

    log("4. loading the records into SQLite")
    sq_dir = tmpdir("sqlite")
    db_path = os.path.join(sq_dir, "users.db")
    t0 = time.monotonic()
    sqlite_load(path, db_path)
    load_s = time.monotonic() - t0
    con = sqlite3.connect(db_path)
    sq = []
    sq_reps = cfg["sqlite_reps"]
    for name, _, sql in QUERIES:
        con.execute(sql).fetchall()
        ts = []
        for _ in range(sq_reps):
            t0 = time.monotonic()
            con.execute(sql).fetchall()
            ts.append((time.monotonic() - t0) * 1e3)
        sq.append(median(ts))
    con.close()
    res.details["sqlite"] = {"load_s": load_s, "median_ms": sq}
    res.note("SQLite %s: the same records flattened into one table (%.1f s to load from the NDJSON, %.0f MB file, "
             "default pragmas), %d runs per query after a warm-up" %
             (sqlite3.sqlite_version, load_s, os.path.getsize(db_path) / MB, sq_reps))

    for k, (name, _, _) in enumerate(QUERIES):
        tq = [r["queries"][k] for r in tarn_r]
        dq = [r["queries"][k] for r in peer_r]
        fq = [r["queries"][k] for r in fc_r]
        if tq[0]["rows"] != dq[0]["rows"]:
            res.note("query %s: Tarn returned %s rows, DuckDB %s" % (name, tq[0]["rows"], dq[0]["rows"]))
        # The machine's speed drifts between rounds more than it varies
        # within one: the ratio is the median of the rounds' ratios, each
        # Tarn's median over the peer's median of the same round.
        t_ms = median([q["median_ms"] for q in tq])
        d_ms = median([q["median_ms"] for q in dq])
        f_ms = median([q["median_ms"] for q in fq])
        r_d = [a["median_ms"] / b["median_ms"] for a, b in zip(tq, dq)]
        r_f = [a["median_ms"] / b["median_ms"] for a, b in zip(tq, fq)]
        res.row("4. query %s (%d rounds x %d runs, client wall)" % (name, rounds, reps),
                "%.2f ms (server elapsed_ms %g)" % (t_ms, median([q["server_median_ms"] for q in tq])),
                "DuckDB on the same files", "%.2f ms" % d_ms,
                "%s (rounds: %s)" % (fmt_ratio(median(r_d)), ", ".join("%.2f" % x for x in r_d)), "<= 1.2x")
        res.row("4c. same vs DuckDB with footers cached", "%.2f ms" % t_ms, "DuckDB, parquet_metadata_cache on",
                "%.2f ms" % f_ms, "%s (rounds: %s)" % (fmt_ratio(median(r_f)), ", ".join("%.2f" % x for x in r_f)),
                "")
        res.note("query %s: fastest run: Tarn %.2f ms, DuckDB %.2f ms: %s; from Python http.client Tarn takes "
                 "%.2f ms (median of %d)" % (name, min(q["min_ms"] for q in tq), min(q["min_ms"] for q in dq),
                                            fmt_ratio(min(q["min_ms"] for q in tq) / min(q["min_ms"] for q in dq)),
                                            py[k], reps))
        res.row("4s. query %s vs SQLite" % name, "%.2f ms" % t_ms, "SQLite, flattened table",
                "%.1f ms" % sq[k], "%.1fx faster" % (sq[k] / t_ms),
                ">= 20x faster" if name == "GROUP BY country" else "")


def bench_freshness(res, cfg):
    """5. Ack -> visible latency at the default settings."""
    trials = cfg["fresh_trials"]
    log("5. freshness: %d trials" % trials)
    t = Tarn("freshness").start()
    h = t.http(timeout=30)
    hq = t.http(timeout=30)
    path = "/v1/tables/bench/fresh/records"
    rec = lambda i, k: {"id": i, "trial": k, "source": "bench", "data": {"temperature": 21.5, "device": "d1"}}
    h.json("POST", path, rec("warmup", -1))
    h.json("POST", "/v1/tables/bench/fresh/flush", {})
    lat, misses = [], 0
    rnd = random.Random(7)
    for k in range(trials):
        time.sleep(rnd.uniform(0.0, 0.3))
        rid = "fresh-%d-%s" % (k, uuid.uuid4())
        st, js = h.json("POST", path, rec(rid, k))
        t_ack = time.monotonic()
        if st != 200:
            res.note("freshness: POST failed: %s %s" % (st, js))
            misses += 1
            continue
        sql = {"sql": "SELECT COUNT(*) FROM bench.fresh WHERE id = '%s'" % rid}
        seen = None
        while time.monotonic() - t_ack < 10.0:
            qs, qj = hq.json("POST", "/v1/query", sql)
            if qs == 200 and qj.get("rows") and qj["rows"][0][0] == 1:
                seen = time.monotonic() - t_ack
                break
            time.sleep(0.02)
        if seen is None:
            misses += 1
        else:
            lat.append(seen)
    res.mem("5. freshness", t)
    h.close()
    hq.close()
    t.stop(timeout=60)
    res.details["freshness"] = lat
    res.row("5. freshness: ack -> visible, default settings (%d trials)" % trials,
            "median %.2f s, max %.2f s" % (median(lat), max(lat) if lat else float("nan")),
            "Firehose, default buffering", "300 s", "", "<= 2 s")
    if misses:
        res.note("freshness: %d trials not visible within 10 s" % misses)


# ------------------------------------------------------------------ main

def environment():
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"model name\s*:\s*(.*)", f.read())
            cpu = m.group(1) if m else cpu
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    tmp = os.environ.get("TARN_BENCH_TMP") or tempfile.gettempdir()
    fs = subprocess.run(["findmnt", "-n", "-o", "SOURCE,FSTYPE", "-T", tmp], capture_output=True,
                        text=True).stdout.strip()
    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return ("%d cores (%s), %.0f GiB RAM, %s; data directories in %s (%s); commit %s%s" %
            (os.cpu_count(), cpu, mem, platform.platform(terse=True), tmp, fs, commit,
             " + uncommitted changes" if dirty else ""))


def main():
    global KEEP
    args = sys.argv[1:]
    quick = "quick" in args
    KEEP = "--keep" in args
    only = None
    if "--only" in args:
        only = {int(x) for x in args[args.index("--only") + 1].split(",")}
    cfg = dict(small_records=100000, big_records=1000000, ingest_conns=4, ingest_seconds=10, wrk_seconds=10,
               query_reps=10, query_rounds=10, sqlite_reps=5, fresh_trials=20, delivery_rounds=3, post_rounds=3)
    if quick:
        cfg.update(big_records=100000, ingest_seconds=5, wrk_seconds=5, query_reps=5, query_rounds=3, sqlite_reps=3,
                   fresh_trials=8, delivery_rounds=1, post_rounds=1)
    atexit.register(cleanup)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    os.makedirs(OUT, exist_ok=True)
    shutil.rmtree(LOGS, ignore_errors=True)
    os.makedirs(LOGS)
    if not os.access(TARN, os.X_OK):
        sys.exit("tarnbench: %s not built (run make build/tarn)" % TARN)

    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    env = environment()
    res = Results(quick)
    log("Tarn benchmarks (%s) on %s" % ("quick" if quick else "full", env))
    t0 = time.monotonic()
    steps = [(1, bench_batched_ingest), (2, bench_single_posts), (3, bench_delivery_and_queries),
             (5, bench_freshness)]
    for num, fn in steps:
        if only and num not in only and not (num == 3 and 4 in only):
            continue
        try:
            fn(res, cfg)
        except Exception as e:  # report and go on with the next benchmark
            import traceback
            traceback.print_exc()
            res.note("benchmark %d failed: %s" % (num, e))
    elapsed = time.monotonic() - t0
    if BUSY and max(BUSY) > 0.15:
        res.note("other work was running on this machine: between benchmarks, with nothing of ours running, "
                 "the CPU was up to %.0f%% busy (median %.0f%%); figures taken then are lower than on an idle "
                 "machine" % (100 * max(BUSY), 100 * median(BUSY)))

    header = ("# Tarn benchmark results\n\n%s, `bench/run.sh%s`, %.0f s.\n\n%s" %
              (started, " quick" if quick else "", elapsed, env))
    md = res.markdown(header)
    with open(os.path.join(OUT, "results.md"), "w") as f:
        f.write(md)
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump({"started": started, "environment": env, "config": cfg, "rows": res.rows,
                   "memory": res.memory, "notes": res.notes, "details": res.details}, f, indent=1, default=str)
    print()
    print(res.table())
    print()
    for n in res.notes:
        print("- " + n)
    print("\nwritten: %s (and results.json); server logs in %s" % (os.path.join(OUT, "results.md"), LOGS))


if __name__ == "__main__":
    main()
