"""The CLI against the real server: ingest (NDJSON file, pretty-printed JSON
array, stdin), query in table / csv / json formats, tables, describe, flush,
status; finding the server and token (flags, environment, ./tarn-data);
errors are one line and a non-zero exit."""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (TARN, Server, check, cli_desc, eq, note, run, run_cli, shared, tempdir,  # noqa: E402
                     timeout)

USERS = [{"id": i, "name": "user %d" % i, "email": "u%d@example.com" % i, "score": i * 1.5,
          "location": {"country": ["Norway", "Brazil", "Chile"][i % 3], "city": "C%d" % i}} for i in range(12)]


def env(s):
    return {"TARN_URL": s.url, "TARN_TOKEN": s.token}


def ok(p):
    check(p.returncode == 0, "expected exit 0: " + cli_desc(p))
    return p


def one_line_error(p, what):
    check(p.returncode != 0, "%s: expected a non-zero exit: %s" % (what, cli_desc(p)))
    out = (p.stdout + p.stderr).strip()
    check(out != "", "%s: no error message: %s" % (what, cli_desc(p)))
    check("\n" not in out, "%s: error is not one line: %s" % (what, cli_desc(p)))
    return out


_loaded = {}


def users_table():
    """cli_db.users ingested by the CLI from an NDJSON file (first 6) and a
    pretty-printed JSON array file (last 6), then flushed with the CLI."""
    s = shared()
    if _loaded.get("server") is not s:
        d = tempdir()
        nd = os.path.join(d, "users.ndjson")
        with open(nd, "w") as f:
            f.write("".join(json.dumps(u) + "\n" for u in USERS[:6]))
        arr = os.path.join(d, "users.json")
        with open(arr, "w") as f:
            json.dump(USERS[6:], f, indent=2)
        ok(run_cli(["ingest", "cli_db.users", nd], env=env(s)))
        ok(run_cli(["ingest", "cli_db.users", arr], env=env(s)))
        ok(run_cli(["flush", "cli_db.users"], env=env(s)))
        _loaded.clear()
        _loaded["server"] = s
    return s


def test_cli_ingest_files_and_flush():
    s = users_table()
    # flush returned: everything is published, visible at once
    eq(s.rows("SELECT id, name, email, score, location FROM cli_db.users ORDER BY id"),
       [[u["id"], u["name"], u["email"], u["score"], u["location"]] for u in USERS], "rows ingested by the CLI")
    check(s.lake_files("processed", "cli_db", "users", "parquet"), "no Parquet file after `tarn flush`")


def test_cli_ingest_stdin():
    s = shared()
    recs = [{"id": 100 + i, "v": "stdin"} for i in range(3)]
    ok(run_cli(["ingest", "cli_db.stdin", "-"], env=env(s), input="".join(json.dumps(r) + "\n" for r in recs)))
    ok(run_cli(["ingest", "cli_db.stdin"], env=env(s), input=json.dumps({"id": 103, "v": "stdin"})))
    ok(run_cli(["flush", "cli_db.stdin"], env=env(s)))
    eq(s.rows("SELECT id, v FROM cli_db.stdin ORDER BY id"), [[100 + i, "stdin"] for i in range(4)], "rows")


def test_cli_query_csv():
    s = users_table()
    p = ok(run_cli(["query", "--format", "csv", "SELECT id, name, location.country FROM cli_db.users "
                    "WHERE id < 3 ORDER BY id"], env=env(s)))
    eq(p.stdout, '"id","name","country"\n"0","user 0","Norway"\n"1","user 1","Brazil"\n"2","user 2","Chile"\n',
       "CSV output")


def test_cli_query_json():
    s = users_table()
    p = ok(run_cli(["query", "--format", "json", "SELECT id, email FROM cli_db.users WHERE id IN (4, 5) ORDER BY id"],
                   env=env(s)))
    try:
        out = json.loads(p.stdout)
    except ValueError:
        raise AssertionError("--format json output is not JSON: " + cli_desc(p))
    want = [[4, "u4@example.com"], [5, "u5@example.com"]]
    if isinstance(out, dict):
        eq(out.get("rows"), want, "rows in the JSON output")
        eq([c["name"] for c in out.get("columns", [])], ["id", "email"], "columns in the JSON output")
    else:
        # a list of row objects is the other reasonable reading of "json"
        eq(out, [{"id": 4, "email": "u4@example.com"}, {"id": 5, "email": "u5@example.com"}], "JSON output")


def test_cli_query_table_format():
    s = users_table()
    sql = "SELECT id, email, location.country FROM cli_db.users WHERE id IN (7, 8) ORDER BY id"
    for args in (["query", "--format", "table", sql], ["query", sql]):
        p = ok(run_cli(args, env=env(s)))
        lines = [l for l in p.stdout.splitlines() if l.strip()]
        hdr = [i for i, l in enumerate(lines) if "id" in l and "email" in l and "country" in l]
        check(hdr, "no header line with the column names: " + cli_desc(p))
        r7 = [i for i, l in enumerate(lines) if "u7@example.com" in l and "Brazil" in l and "7" in l]
        r8 = [i for i, l in enumerate(lines) if "u8@example.com" in l and "Chile" in l and "8" in l]
        check(r7 and r8 and hdr[0] < r7[0] < r8[0], "rows missing or out of order: " + cli_desc(p))


def test_cli_tables_describe_status():
    s = users_table()
    p = ok(run_cli(["tables"], env=env(s)))
    check(any(("cli_db.users" in l) or ("cli_db" in l and "users" in l) for l in p.stdout.splitlines()),
          "`tarn tables` does not list cli_db.users: " + cli_desc(p))
    p = ok(run_cli(["describe", "cli_db.users"], env=env(s)))
    d = s.get_json("/v1/tables/cli_db/users")
    for c in d["columns"]:
        check(any(c["name"] in l and c["type"].split("(")[0] in l for l in p.stdout.splitlines()),
              "`tarn describe` lacks column %s %s: %s" % (c["name"], c["type"], cli_desc(p)))
    p = ok(run_cli(["status"], env=env(s)))
    check("cli_db" in p.stdout and "users" in p.stdout, "`tarn status` does not mention cli_db.users: " + cli_desc(p))


def test_cli_flags_instead_of_environment():
    s = users_table()
    attempts = [["status", "--url", s.url, "--token", s.token], ["--url", s.url, "--token", s.token, "status"]]
    results = [run_cli(a) for a in attempts]
    check(any(p.returncode == 0 and "cli_db" in p.stdout for p in results),
          "--url/--token not accepted after or before the subcommand:\n  %s" % "\n  ".join(cli_desc(p) for p in results))
    note("--url/--token accepted %s" % ", ".join(w for w, p in zip(("after the subcommand", "before it"), results)
                                                if p.returncode == 0))


def test_cli_token_from_tarn_data_in_working_directory():
    root = tempdir()
    s = Server(data_dir=os.path.join(root, "tarn-data"), root=root, name="cwdtoken").start()
    try:
        p = run_cli(["ingest", "cwd_db.t", "-"], env={"TARN_URL": s.url}, input='{"id": 1}\n', cwd=root)
        ok(p)
        ok(run_cli(["flush", "cwd_db.t"], env={"TARN_URL": s.url}, cwd=root))
        eq(s.rows("SELECT id FROM cwd_db.t"), [[1]], "row ingested with the token from ./tarn-data/admin.token")
    finally:
        eq(s.stop(), 0, "exit status")


def test_cli_errors_are_one_line():
    s = users_table()
    bad = {"TARN_URL": s.url, "TARN_TOKEN": "wrong-token"}
    for args in (["tables"], ["status"], ["query", "SELECT 1"], ["describe", "cli_db.users"]):
        one_line_error(run_cli(args, env=bad), "bad token: tarn %s" % " ".join(args))
    one_line_error(run_cli(["ingest", "cli_db.users", "-"], env=bad, input='{"id": 999}\n'), "bad token: ingest")
    one_line_error(run_cli(["query", "COPY cli_db.users TO '/tmp/x.csv'"], env=env(s)), "refused SQL")
    one_line_error(run_cli(["query", "SELECT nope FROM cli_db.users"], env=env(s)), "bad SQL")
    one_line_error(run_cli(["describe", "cli_db.no_such_table"], env=env(s)), "unknown table")
    one_line_error(run_cli(["flush", "cli_db.no_such_table"], env=env(s)), "flush of an unknown table")
    one_line_error(run_cli(["ingest", "cli_db.users", "/nonexistent/file.json"], env=env(s)), "missing file")
    one_line_error(run_cli(["ingest", "no_dot_name", "-"], env=env(s), input='{"id": 1}'), "DB.TABLE without a dot")
    one_line_error(run_cli(["ingest", "cli_db.users", "-"], env=env(s), input='{"id": 1,}\n'), "malformed input")
    one_line_error(run_cli(["status"], env={"TARN_URL": "http://127.0.0.1:1", "TARN_TOKEN": s.token}),
                   "unreachable server")
    one_line_error(run_cli(["no-such-command"], env=env(s)), "unknown command")
    eq(s.scalar("SELECT COUNT(*) FROM cli_db.users"), len(USERS), "rows after the failed commands")


@timeout(120)
def test_cli_ingest_file_larger_than_one_request():
    # A file over the per-request limit of 10,000 records: the CLI splits it
    # (a user should not need to know the API's limit).
    s = shared()
    d = tempdir()
    path = os.path.join(d, "many.ndjson")
    with open(path, "w") as f:
        for i in range(25000):
            f.write('{"id": %d}\n' % i)
    ok(run_cli(["ingest", "cli_db.many", path], env=env(s), timeout=120))
    ok(run_cli(["flush", "cli_db.many"], env=env(s)))
    eq(s.rows("SELECT COUNT(*), COUNT(DISTINCT id), MIN(id), MAX(id) FROM cli_db.many"), [[25000, 25000, 0, 24999]],
       "records of a 25,000-line file")


@timeout(180)
def test_cli_ingest_streams_a_large_file_in_bounded_memory():
    # 128 MiB of NDJSON: the CLI reads and sends it in batches, so its peak
    # memory stays a small fraction of the file (a 1 GB file works the same).
    s = shared()
    d = tempdir()
    path = os.path.join(d, "large.ndjson")
    pad = "p" * 900
    n = 0
    with open(path, "w") as f:
        while f.tell() < 128 * 2**20:
            f.write('{"id": %d, "pad": "%s"}\n' % (n, pad))
            n += 1
    size = os.path.getsize(path)
    e = {k: v for k, v in os.environ.items() if not k.startswith("TARN_")}
    e.update(env(s))
    with open(os.devnull, "wb") as devnull:
        p = subprocess.Popen([TARN, "ingest", "cli_db.large", path], env=e, stdout=devnull, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(p.pid, 0)
        err = p.stderr.read().decode("utf-8", "replace")
        p.stderr.close()
    check(os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, "tarn ingest of %d bytes: status %d, stderr %s"
          % (size, status, err[:500]))
    peak = usage.ru_maxrss * 1024  # kilobytes on Linux
    note("tarn ingest of a %.0f MiB file (%d records): peak RSS %.1f MiB" % (size / 2**20, n, peak / 2**20))
    check(peak < 64 * 2**20, "tarn ingest of %d bytes peaked at %d bytes of memory" % (size, peak))
    ok(run_cli(["flush", "cli_db.large"], env=env(s), timeout=120))
    eq(s.rows("SELECT COUNT(*), COUNT(DISTINCT id), MIN(id), MAX(id) FROM cli_db.large"), [[n, n, 0, n - 1]],
       "records of the %d-byte file" % size)
    os.unlink(path)


if __name__ == "__main__":
    run(globals())
