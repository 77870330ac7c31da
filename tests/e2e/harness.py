"""harness.py - drives the real Tarn server for the end-to-end tests.

Standard library only. What it gives a test file:

  Server        starts `build/tarn serve --data DIR --listen 127.0.0.1:PORT` on
                a free loopback port with a temporary data directory, waits for
                GET /health, reads DIR/admin.token, sends requests with or
                without the token, stops it (SIGTERM, then SIGKILL after a
                timeout) or kills it (-9), restarts it on the same data.
  shared()      one server per test file, started on first use and replaced
                if it died (so one crash does not fail every later test).
  run(globals()) the runner: every function named test_* in definition order,
                each under a per-test timeout (SIGALRM), printing `ok NAME` or
                `not ok NAME: REASON` (details and the tail of the server logs
                follow as `#` lines), then exactly one line `N passed, M failed`.
                Exit status 1 if anything failed. Arguments on the command line
                select tests by name.

Every server started here is killed at exit (atexit) and every temporary
directory removed (set TARN_E2E_KEEP=1 to keep them for a post-mortem).
Environment: TARN_BIN overrides the binary (default build/tarn in the repo).
"""

import atexit
import gzip
import glob
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
TARN = os.environ.get("TARN_BIN") or os.path.join(REPO, "build", "tarn")
PARQUET_CHECK = os.path.join(HERE, "parquet_check.mjs")

START_TIMEOUT = 20.0   # seconds for GET /health to answer after start
STOP_TIMEOUT = 30.0    # seconds for SIGTERM to end the process
DEFAULT_TEST_TIMEOUT = 90

_servers = []          # every Server created, for cleanup and log tails
_tempdirs = []
_lock = threading.Lock()


class TestTimeout(Exception):
    pass


# ---------------------------------------------------------------- assertions

def _short(v, limit=1500):
    s = v if isinstance(v, str) else repr(v)
    return s if len(s) <= limit else s[:limit] + "...(%d chars)" % len(s)


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def eq(actual, expected, what="value"):
    if not same(actual, expected):
        raise AssertionError("%s: expected %s, got %s" % (what, _short(expected), _short(actual)))


def same(a, b):
    """Deep equality that keeps JSON kinds apart (a bool is not a number, a
    string is not a number) but compares numbers by value, since JSON does
    not distinguish 22 from 22.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) == type(b) and a == b


def expect_status(resp, status, what=None):
    if resp.status != status:
        raise AssertionError("%s: expected HTTP %d, got %d; body: %s"
                             % (what or resp.desc, status, resp.status, _short(resp.text())))


def expect_error(resp, status, code, what=None):
    """The reply is the documented error body {"error":{"code","message",...}}
    with this status and code. Returns the error object."""
    what = what or resp.desc
    expect_status(resp, status, what)
    check((resp.header("content-type") or "").startswith("application/json"),
          "%s: error reply Content-Type %r, expected application/json" % (what, resp.header("content-type")))
    body = resp.json(what)
    check(isinstance(body, dict) and isinstance(body.get("error"), dict),
          "%s: error body is not {\"error\":{...}}: %s" % (what, _short(resp.text())))
    err = body["error"]
    codes = code if isinstance(code, (list, tuple, set)) else [code]
    check(err.get("code") in codes,
          "%s: expected error code %s, got %r (message %r)" % (what, " or ".join(codes), err.get("code"),
                                                                 err.get("message")))
    check(isinstance(err.get("message"), str) and err["message"].strip() != "",
          "%s: error message missing or empty: %s" % (what, _short(resp.text())))
    return err


def note(msg):
    """Informational line in the test output (not a result)."""
    print("# " + msg, flush=True)


# ---------------------------------------------------------------- data helpers

def dumps(obj):
    """Compact JSON, UTF-8, as bytes."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def ndjson(records):
    return b"".join(dumps(r) + b"\n" for r in records)


def gz(data, level=6):
    return gzip.compress(data, compresslevel=level, mtime=0)


def utc_date(t=None):
    return time.strftime("%Y-%m-%d", time.gmtime(time.time() if t is None else t))


_TS_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]00(:?00)?)?$")


def parse_timestamp(s):
    """Epoch seconds of a UTC timestamp string as DuckDB or ISO-8601 write it
    ("2025-11-25 10:00:00[.ffffff]", "2025-11-25T10:00:00Z"); None if the
    text is not one."""
    if not isinstance(s, str):
        return None
    m = _TS_RE.match(s)
    if not m:
        return None
    import calendar
    y, mo, d, h, mi, se = (int(m.group(i)) for i in range(1, 7))
    frac = float(m.group(7)) if m.group(7) else 0.0
    return calendar.timegm((y, mo, d, h, mi, se, 0, 0, 0)) + frac


def wait_until(fn, timeout, interval=0.05, what="condition"):
    """Polls fn() until it returns a true value (returned) or timeout seconds
    pass (AssertionError). Bounded in time and count."""
    deadline = time.monotonic() + timeout
    last = None
    for _ in range(int(timeout / interval) + 2):
        last = fn()
        if last:
            return last
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    raise AssertionError("%s not reached within %.1f s (last: %s)" % (what, timeout, _short(last)))


def tempdir(prefix="tarn-e2e-"):
    d = tempfile.mkdtemp(prefix=prefix)
    with _lock:
        _tempdirs.append(d)
    return d


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- HTTP

class Response:
    def __init__(self, status, headers, body, desc):
        self.status = status
        self.headers = headers
        self.body = body
        self.desc = desc

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)

    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self, what=None):
        try:
            return json.loads(self.body)
        except ValueError:
            raise AssertionError("%s: reply is not JSON (HTTP %d, Content-Type %r): %s"
                                 % (what or self.desc, self.status, self.header("content-type"),
                                    _short(self.text())))

    def __repr__(self):
        return "<HTTP %d %s>" % (self.status, _short(self.text(), 300))


_DEFAULT = object()


def http_request(port, method, path, body=None, headers=None, timeout=60.0):
    """One request on a fresh connection. Bodies are sent in pieces; if the
    server answers early (413) and closes, the reply is still read."""
    hdrs = dict(headers or {})
    desc = "%s %s" % (method, path)
    if body is not None:
        desc += " (%d-byte body%s)" % (len(body), ", " + hdrs["Content-Type"] if "Content-Type" in hdrs else "")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.putrequest(method, path, skip_host=False, skip_accept_encoding=True)
        for k, v in hdrs.items():
            conn.putheader(k, v)
        if body is not None and "Content-Length" not in hdrs:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        send_error = None
        if body:
            view = memoryview(body)
            try:
                for i in range(0, len(view), 1 << 16):
                    conn.sock.sendall(view[i:i + (1 << 16)])
            except (BrokenPipeError, ConnectionResetError) as e:
                send_error = e
        try:
            r = conn.getresponse()
            data = r.read()
        except (http.client.HTTPException, ConnectionError, OSError) as e:
            if send_error is not None:
                raise ConnectionError("%s: connection closed while sending the body (%s) and no reply (%s)"
                                      % (desc, send_error, e))
            raise ConnectionError("%s: no reply: %s: %s" % (desc, type(e).__name__, e))
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data, desc)
    finally:
        conn.close()


# ---------------------------------------------------------------- server

class Server:
    """One tarn server process over a data directory it may outlive: stop()
    then start() again restarts on the same data (on a new port)."""

    def __init__(self, data_dir=None, root=None, extra_args=None, name="server", default_data=False, extra_env=None,
                 config_only=False):
        """default_data: start without --data (the server must use
        ./tarn-data in its working directory, which is root). extra_env: more
        environment for the server process (set or cleared with self.extra_env
        before a start). config_only: no --data or --listen; both go in a
        configuration file given with --config (written at each start)."""
        self.root = root or tempdir()
        self.default_data = default_data
        self.config_only = config_only
        self.data = os.path.join(self.root, "tarn-data") if default_data else (data_dir or os.path.join(self.root, "data"))
        self.extra_args = list(extra_args or [])
        self.extra_env = dict(extra_env or {})
        self.name = name
        self.proc = None
        self.port = None
        self.token = None
        self.starts = 0
        self.log_path = os.path.join(self.root, "%s.log" % name)
        with _lock:
            _servers.append(self)

    # -- lifecycle
    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout=START_TIMEOUT):
        check(os.path.exists(TARN), "%s not found (the server is not built yet)" % TARN)
        check(not self.alive(), "server already running")
        self.port = free_port()
        self.starts += 1
        log = open(self.log_path, "ab")
        log.write(b"\n===== start %d: port %d =====\n" % (self.starts, self.port))
        log.flush()
        if self.config_only:
            cfg = os.path.join(self.root, "%s-listen.yaml" % self.name)
            with open(cfg, "w") as f:
                f.write("listen: 127.0.0.1:%d\ndata: %s\n" % (self.port, json.dumps(self.data)))
            args = [TARN, "serve", "--config", cfg] + self.extra_args
        else:
            args = [TARN, "serve"] + ([] if self.default_data else ["--data", self.data])
            args += ["--listen", "127.0.0.1:%d" % self.port] + self.extra_args
        env = {k: v for k, v in os.environ.items() if not k.startswith("TARN_")}
        env.update(self.extra_env)
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     cwd=self.root, env=env, start_new_session=True)
        log.close()
        self.started_at = time.monotonic()
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                raise AssertionError("server exited with status %s during start-up; log tail:\n%s"
                                     % (rc, self.log_tail()))
            try:
                r = http_request(self.port, "GET", "/health", timeout=2)
                if r.status == 200:
                    break
                last = r
            except (ConnectionError, OSError, http.client.HTTPException) as e:
                last = e
            time.sleep(0.05)
        else:
            self.kill9()
            raise AssertionError("GET /health did not answer 200 within %.0f s (last: %s); log tail:\n%s"
                                 % (timeout, last, self.log_tail()))
        tok_path = os.path.join(self.data, "admin.token")
        check(os.path.exists(tok_path), "%s missing after start" % tok_path)
        with open(tok_path) as f:
            self.token = f.read().strip()
        check(self.token != "", "admin.token is empty")
        return self

    def signal_stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Sends sig and waits for the exit; returns the exit status (negative
        = killed by a signal). SIGKILL after timeout, then AssertionError."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
                raise AssertionError("server did not exit within %.0f s of signal %d; killed; log tail:\n%s"
                                     % (timeout, sig, self.log_tail()))
        return self.proc.returncode

    def stop(self, timeout=STOP_TIMEOUT):
        return self.signal_stop(signal.SIGTERM, timeout)

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)

    def restart(self):
        rc = self.stop()
        check(rc == 0, "server exited with status %s on SIGTERM (expected 0)" % rc)
        return self.start()

    def log_tail(self, n=40):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, 2)
                size = f.tell()
                f.seek(max(0, size - 16384))
                lines = f.read().decode("utf-8", "replace").splitlines()
            return "\n".join(lines[-n:])
        except OSError:
            return "(no log)"

    # -- requests
    def request(self, method, path, body=None, headers=None, token=_DEFAULT, timeout=60.0):
        hdrs = {}
        tok = self.token if token is _DEFAULT else token
        if tok is not None:
            hdrs["Authorization"] = "Bearer " + tok
        hdrs.update(headers or {})
        try:
            return http_request(self.port, method, path, body, hdrs, timeout)
        except (ConnectionError, OSError, http.client.HTTPException) as e:
            state = "running" if self.alive() else "exited with status %s" % self.proc.returncode
            raise AssertionError("%s %s failed: %s: %s (server %s)" % (method, path, type(e).__name__, e, state))

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def get_json(self, path):
        r = self.get(path)
        expect_status(r, 200)
        return r.json()

    def post_json(self, path, obj, **kw):
        hdrs = {"Content-Type": "application/json"}
        hdrs.update(kw.pop("headers", {}) or {})
        return self.request("POST", path, dumps(obj), headers=hdrs, **kw)

    def post_records(self, db, table, body, content_type="application/x-ndjson", gzip_body=False, headers=None,
                     **kw):
        hdrs = {}
        if content_type is not None:
            hdrs["Content-Type"] = content_type
        if gzip_body:
            hdrs["Content-Encoding"] = "gzip"
            body = gz(body)
        hdrs.update(headers or {})
        return self.request("POST", "/v1/tables/%s/%s/records" % (db, table), body, headers=hdrs, **kw)

    def ingest(self, db, table, records, form="ndjson", gzip_body=False):
        """Posts records in one body form ("ndjson", "array", "object") and
        asserts the documented acknowledgement. Returns (first_seq, last_seq)."""
        if form == "ndjson":
            body, ct = ndjson(records), "application/x-ndjson"
        elif form == "array":
            body, ct = dumps(list(records)), "application/json"
        elif form == "object":
            check(len(records) == 1, "form 'object' takes one record")
            body, ct = dumps(records[0]), "application/json"
        else:
            raise ValueError(form)
        r = self.post_records(db, table, body, ct, gzip_body)
        expect_status(r, 200)
        ack = r.json()
        check(isinstance(ack, dict), "ack is not an object: %s" % r.text())
        eq(ack.get("records"), len(records), "ack records of %s" % r.desc)
        first, last = ack.get("first_seq"), ack.get("last_seq")
        check(isinstance(first, int) and isinstance(last, int) and first >= 1 and last - first + 1 == len(records),
              "ack seqs inconsistent with %d records: %s" % (len(records), r.text()))
        return first, last

    def flush(self, db, table, timeout=60.0):
        r = self.request("POST", "/v1/tables/%s/%s/flush" % (db, table), timeout=timeout)
        expect_status(r, 200)
        body = r.json()
        eq(body.get("database"), db, "flush reply database")
        eq(body.get("table"), table, "flush reply table")
        check(isinstance(body.get("delivered_seq"), int), "flush reply delivered_seq: %s" % r.text())
        return body

    def query(self, sql, database=None, timeout=90.0):
        """Runs sql, asserts 200 and the documented reply shape; returns it."""
        req = {"sql": sql}
        if database is not None:
            req["database"] = database
        r = self.post_json("/v1/query", req, timeout=timeout)
        expect_status(r, 200, "query %r" % sql)
        res = r.json()
        for k in ("columns", "rows", "row_count", "truncated", "bytes_scanned", "elapsed_ms"):
            check(k in res, "query reply lacks %r: %s" % (k, _short(r.text())))
        check(isinstance(res["rows"], list) and res["row_count"] == len(res["rows"]),
              "row_count %r != len(rows) %d" % (res["row_count"], len(res["rows"])))
        check(all(isinstance(c, dict) and set(c) >= {"name", "type"} for c in res["columns"]),
              "columns not [{name,type}]: %s" % _short(res["columns"]))
        check(all(isinstance(row, list) and len(row) == len(res["columns"]) for row in res["rows"]),
              "a row does not have one value per column")
        return res

    def rows(self, sql, database=None):
        return self.query(sql, database)["rows"]

    def scalar(self, sql, database=None):
        rows = self.rows(sql, database)
        check(len(rows) == 1 and len(rows[0]) == 1, "expected one value from %r, got %s" % (sql, _short(rows)))
        return rows[0][0]

    # -- lake
    def lake_files(self, zone, db, table, ext):
        pat = os.path.join(self.data, "lake", zone, db, table, "**", "*." + ext)
        return sorted(glob.glob(pat, recursive=True))

    def segments(self, db, table):
        pat = os.path.join(self.data, "stream", db, table, "**", "*.log")
        return sorted(glob.glob(pat, recursive=True), key=natural_key)


def natural_key(path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path)]


def seq_range(path):
    """(first, last) from a lake file name <first>-<last>.<ext>."""
    m = re.match(r"^(\d+)-(\d+)\.", os.path.basename(path))
    check(m is not None, "lake file name is not <first>-<last>.ext: %s" % path)
    return int(m.group(1)), int(m.group(2))


def read_parquet(path):
    """The file as hyparquet sees it (see parquet_check.mjs)."""
    p = subprocess.run(["node", PARQUET_CHECK, path], capture_output=True, timeout=60)
    check(p.returncode == 0, "hyparquet could not read %s: %s" % (path, p.stderr.decode("utf-8", "replace")[-2000:]))
    return json.loads(p.stdout)


def read_raw(path):
    """The records of a raw-zone .json.gz file: a list of parsed lines."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    out = []
    for i, line in enumerate(lines):
        check(line.strip() != b"", "%s line %d is empty" % (path, i + 1))
        try:
            out.append(json.loads(line))
        except ValueError:
            raise AssertionError("%s line %d is not JSON: %s" % (path, i + 1, _short(line)))
    return out


# ---------------------------------------------------------------- CLI

def run_cli(args, env=None, input=None, cwd=None, timeout=60):
    """Runs build/tarn ARGS with a clean TARN_* environment plus env.
    Returns CompletedProcess with text stdout/stderr."""
    check(os.path.exists(TARN), "%s not found (the server is not built yet)" % TARN)
    e = {k: v for k, v in os.environ.items() if not k.startswith("TARN_")}
    e.update(env or {})
    if isinstance(input, str):
        input = input.encode("utf-8")
    p = subprocess.run([TARN] + list(args), input=input, capture_output=True, env=e, cwd=cwd or tempdir(),
                       timeout=timeout)
    p.stdout = p.stdout.decode("utf-8", "replace")
    p.stderr = p.stderr.decode("utf-8", "replace")
    return p


def cli_desc(p):
    return "`tarn %s` exit %s; stdout: %s; stderr: %s" % (" ".join(p.args[1:])[:300], p.returncode,
                                                        _short(p.stdout, 800), _short(p.stderr, 800))


# ---------------------------------------------------------------- shared server

_shared = None


def start_with_config(config):
    """A fresh server on its own data directory with this YAML configuration."""
    root = tempdir()
    cfg = os.path.join(root, "tarn.yaml")
    with open(cfg, "w") as f:
        f.write(config)
    return Server(root=root, extra_args=["--config", cfg]).start()


def shared():
    """The file's shared server, started on first use; if it has died since,
    a fresh one (on a new data directory) replaces it."""
    global _shared
    if _shared is not None and not _shared.alive():
        note("shared server had exited with status %s; starting a fresh one" % _shared.proc.returncode)
        _shared = None
    if _shared is None:
        s = Server(name="shared")
        s.start()
        _shared = s
    return _shared


# ---------------------------------------------------------------- runner

def timeout(seconds):
    """Decorator: this test's time limit in seconds."""
    def deco(f):
        f.timeout = seconds
        return f
    return deco


def _cleanup():
    for s in list(_servers):
        try:
            s.kill9()
        except Exception:
            pass
    if not os.environ.get("TARN_E2E_KEEP"):
        for d in list(_tempdirs):
            shutil.rmtree(d, ignore_errors=True)


atexit.register(_cleanup)


def _on_alarm(signum, frame):
    raise TestTimeout("test timed out")


def run(namespace):
    tests = [(f.__code__.co_firstlineno, name, f) for name, f in namespace.items()
             if name.startswith("test_") and callable(f) and hasattr(f, "__code__")]
    tests.sort()
    wanted = set(sys.argv[1:])
    if wanted:
        tests = [t for t in tests if t[1] in wanted]
    passed = failed = 0
    signal.signal(signal.SIGALRM, _on_alarm)
    for _, name, f in tests:
        limit = getattr(f, "timeout", DEFAULT_TEST_TIMEOUT)
        started = time.time()
        t0 = time.monotonic()
        servers_before = set(map(id, _servers))
        try:
            signal.setitimer(signal.ITIMER_REAL, limit)
            try:
                f()
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            passed += 1
            print("ok %s (%.1f s)" % (name, time.monotonic() - t0), flush=True)
        except KeyboardInterrupt:
            raise
        except BaseException as e:
            failed += 1
            reason = " | ".join(l.strip() for l in str(e).strip().splitlines()) or type(e).__name__
            if isinstance(e, TestTimeout):
                reason = "timed out after %d s" % limit
            print("not ok %s: %s" % (name, reason[:2000]), flush=True)
            detail = "".join(traceback.format_exception(type(e), e, e.__traceback__))
            for line in detail.rstrip().splitlines()[-40:]:
                print("#   " + line)
            for s in list(_servers):
                try:
                    touched = os.path.getmtime(s.log_path) >= started - 1
                except OSError:
                    touched = False
                if touched:
                    state = "running" if s.alive() else "exit status %s" % (s.proc.returncode if s.proc else None)
                    print("# --- tail of %s (%s) ---" % (s.log_path, state))
                    for line in s.log_tail(25).splitlines():
                        print("#   " + line)
            sys.stdout.flush()
        # servers a test started (other than the shared one) end with it
        for s in list(_servers):
            if id(s) not in servers_before and s is not _shared and s.alive():
                s.kill9()
    for s in list(_servers):
        if s.alive():
            try:
                s.stop(10)
            except Exception:
                pass
    print("%d passed, %d failed" % (passed, failed), flush=True)
    _cleanup()
    sys.exit(1 if failed else 0)
