"""End-to-end test of oeectl against the real oee-server on loopback.

Starts //server:oee-server on 127.0.0.1:0 with tests/cli/config.json (on
the default store, in a data directory of its own under $TEST_TMPDIR), runs
every oeectl subcommand as a subprocess and checks stdout, stderr and the exit
code (gRPC status code; 64 for usage errors). Ends the server with SIGTERM
and checks that it exits 0. Prints a closing "N passed, N failed" line.
"""
import calendar
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

RUNFILES = os.path.join(os.environ.get("TEST_SRCDIR", "."), "oee")
SERVER = os.path.join(RUNFILES, "server", "oee-server")
OEECTL = os.path.join(RUNFILES, "client", "oeectl")
CONFIG = os.path.join(RUNFILES, "tests", "cli", "config.json")

# Task ids are UUID version 7 (API.md, "Ids").
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
RFC3339_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6}|\.\d{9})?Z$")
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"

EXIT_USAGE = 64
EXIT_NOINPUT = 66


class Server:
    """The oee-server process; its port is read from its first stdout line."""

    def __init__(self):
        self.data_dir = tempfile.mkdtemp(prefix="oee-cli-", dir=os.environ.get("TEST_TMPDIR"))
        self.proc = subprocess.Popen(
            [SERVER, "--listen", "127.0.0.1:0", "--config", CONFIG,
             "--data-dir", self.data_dir],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        m = re.match(r"oee-server listening on port (\d+)", line)
        if not m:
            self.remove_data()
            raise RuntimeError("server did not start: %r" % line)
        self.addr = "127.0.0.1:%s" % m.group(1)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)

    def remove_data(self):
        """Kills the server if it still runs, then removes its data directory."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.data_dir, ignore_errors=True)


SRV = None


def run(*args, env_addr=None, stdin=None, addr=True, timeout=30):
    """Runs oeectl; returns (exit code, stdout, stderr)."""
    env = dict(os.environ)
    env.pop("OEE_ADDR", None)
    if env_addr is not None:
        env["OEE_ADDR"] = env_addr
    argv = [OEECTL] + (["--addr", SRV.addr] if addr else []) + list(args)
    p = subprocess.run(argv, input=stdin, capture_output=True, text=True,
                       env=env, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def ok(*args, **kw):
    """Runs oeectl, asserts exit 0 and an empty stderr, returns stdout."""
    rc, out, err = run(*args, **kw)
    assert rc == 0, "oeectl %s: exit %d, stderr %r" % (" ".join(args), rc, err)
    assert err == "", "unexpected stderr %r" % err
    return out


def fails(code, name, *args, **kw):
    """Asserts exit `code` with "oeectl: NAME: <message>" on stderr."""
    rc, out, err = run(*args, **kw)
    assert rc == code, "oeectl %s: exit %d, want %d (stderr %r)" % (" ".join(args), rc, code, err)
    assert out == "", "unexpected stdout %r" % out
    if name is not None:
        assert re.match(r"^oeectl: %s: \S" % name, err), "stderr %r" % err
    return err


def usage_error(*args):
    rc, out, err = run(*args)
    assert rc == EXIT_USAGE, "oeectl %s: exit %d, want 64 (%r)" % (" ".join(args), rc, err)
    assert err.startswith("oeectl: ") and "usage:" in err, err
    return err


def submit(name="t", ttype="echo", *extra):
    out = ok("submit", "--name", name, "--type", ttype, *extra)
    tid = out.strip()
    assert UUID_RE.match(tid), out
    return tid


def get_json(tid):
    return json.loads(ok("--json", "get", tid))


def wait_status(tid, want, timeout=10):
    deadline = time.time() + timeout
    while True:
        t = get_json(tid)
        if t["status"] == want:
            return t
        assert time.time() < deadline, "task %s stuck in %s, want %s" % (tid, t["status"], want)
        time.sleep(0.05)


def check_task_json(t):
    assert UUID_RE.match(t["id"]), t
    assert RFC3339_RE.match(t["createdAt"]), t["createdAt"]
    for key in ("name", "status", "priority", "taskType", "context", "workerId",
                "errorMessage", "result"):
        assert key in t, "missing %s in %r" % (key, t)
    assert t["status"].startswith("TASK_STATUS_"), t


# ---- tests, run in order ----

def test_help():
    out = ok("--help", addr=False)
    assert "Exit codes" in out and "64" in out and "14 UNAVAILABLE" in out, out
    assert "9 FAILED_PRECONDITION" in out, out
    for cmd in ("submit", "submit-batch", "get", "list", "cancel", "retry", "status", "watch",
                "pipeline", "schedule", "clear", "health"):
        assert cmd in out, cmd
        assert ok(cmd, "--help", addr=False).startswith("usage: oeectl " + cmd)
    assert ok("pipeline", "submit", "--help", addr=False).startswith("usage: oeectl pipeline submit")
    assert ok("help", "list", addr=False).startswith("usage: oeectl list")
    assert ok("help", "schedule", addr=False).startswith("usage: oeectl schedule create")
    for verb in ("create", "get", "list", "delete", "pause", "resume"):
        assert ok("schedule", verb, "--help", addr=False).startswith(
            "usage: oeectl schedule " + verb)
    out = ok("schedule", "create", "--help", addr=False)
    for flag in ("--cron", "--tz", "--overlap", "--paused", "--name", "--type", "--priority",
                 "--ctx", "--max-attempts", "--backoff", "--max-backoff", "--timeout", "@every"):
        assert flag in out, (flag, out)
    assert "--schedule" in ok("watch", "--help", addr=False)
    out = ok("submit", "--help", addr=False)
    for flag in ("--max-attempts", "--backoff", "--max-backoff", "--timeout", "--run-at",
                 "--key", "--after", "+30s"):
        assert flag in out, (flag, out)
    out = ok("submit-batch", "--help", addr=False)
    for field in ("max_attempts", "timeout_seconds", "run_at", "idempotency_key", "depends_on",
                  "#<index>", "duplicate"):
        assert field in out, (field, out)


def test_usage_errors():
    usage_error()
    usage_error("bogus")
    usage_error("submit", "--name", "x")                      # no --type
    usage_error("submit", "--name", "x", "--type", "echo", "--priority", "high")
    usage_error("submit", "--name", "x", "--type", "echo", "--ctx", "novalue")
    usage_error("submit", "--name", "x", "--type", "echo", "--frobnicate")
    usage_error("get")
    usage_error("get", "a", "b")
    usage_error("list", "--status", "sleeping")
    usage_error("--timeout", "soon", "status")
    usage_error("watch", "--status", "nope")
    usage_error("pipeline")
    usage_error("pipeline", "frob")
    usage_error("pipeline", "submit", "--id", "p", "--stage", "a:echo")   # no strategy
    usage_error("pipeline", "submit", "--id", "p", "--strategy", "nope", "--stage", "a:echo")
    usage_error("pipeline", "submit", "--id", "p", "--strategy", "COST_OPTIMIZED", "--stage", "nocolon")
    usage_error("pipeline", "submit", "--id", "p", "--strategy", "COST_OPTIMIZED", "--stage", "a:echo:nan")
    usage_error("clear", "--keep", "some")
    usage_error("submit-batch", "a", "b")
    base = ("submit", "--name", "x", "--type", "echo")
    usage_error(*base, "--max-attempts", "three")
    usage_error(*base, "--max-attempts", "99999999999")
    usage_error(*base, "--backoff", "soon")
    usage_error(*base, "--max-backoff", "nan")
    usage_error(*base, "--timeout", "inf")
    usage_error(*base, "--timeout")                            # needs a value
    for when in ("tomorrow", "2030-01-02", "2030-13-01T00:00:00Z", "2030-02-30T00:00:00Z",
                 "2030-01-02T03:04:05", "2030-01-02T03:04:05+25:00", "+5y", "+", "+-5s",
                 "+3000000d", "12345"):
        usage_error(*base, "--run-at", when)
    usage_error("retry")
    usage_error("retry", "a", "b")


def test_submit():
    tid = submit("hello", "echo", "--ctx", "message=hi there", "--priority", "7")
    t = wait_status(tid, "TASK_STATUS_DONE")
    check_task_json(t)
    assert t["result"] == "hi there" and t["priority"] == 7, t
    assert t["context"] == {"message": "hi there"}, t
    assert RFC3339_RE.match(t["completedAt"]) and t["workerId"] in (0, 1), t
    # --json prints the acknowledged task; an explicit priority 0 is kept.
    t = json.loads(ok("submit", "--json", "--name", "zero", "--type", "echo", "--priority", "0"))
    check_task_json(t)
    assert t["priority"] == 0 and t["name"] == "zero" and t["taskType"] == "echo", t
    assert t["status"] in ("TASK_STATUS_QUEUED", "TASK_STATUS_RUNNING", "TASK_STATUS_DONE"), t
    # Unset priority means 5.
    assert get_json(submit("dflt"))["priority"] == 5


def test_submit_errors():
    err = fails(3, "INVALID_ARGUMENT", "submit", "--name", "x", "--type", "echo", "--priority", "11")
    assert "priority" in err, err
    fails(3, "INVALID_ARGUMENT", "submit", "--name", "x", "--type", "echo", "--priority", "-1")
    err = fails(3, "INVALID_ARGUMENT", "submit", "--name", "x", "--type", "nosuchtype")
    fails(3, "INVALID_ARGUMENT", "submit", "--name", "", "--type", "echo")
    fails(3, "INVALID_ARGUMENT", "submit", "--name", "x", "--type", "exec", "--ctx", "command=nope")


def test_submit_semantics():
    # The request the flags produce comes back in the acknowledged task.
    t = json.loads(ok("submit", "--json", "--name", "pol", "--type", "echo",
                      "--max-attempts", "3", "--timeout", "5", "--backoff", "0.5",
                      "--max-backoff", "10", "--run-at", "2001-02-03T04:05:06.5+01:00"))
    assert (t["maxAttempts"], t["timeoutSeconds"], t["backoffSeconds"],
            t["maxBackoffSeconds"]) == (3, 5, 0.5, 10), t
    assert t["attempt"] in (0, 1) and t["dependsOn"] == [] and t["idempotencyKey"] == "", t
    g = get_json(t["id"])
    assert (g["maxAttempts"], g["timeoutSeconds"]) == (3, 5), g
    # The call deadline still goes before the command.
    t = json.loads(ok("--timeout", "7", "submit", "--json", "--name", "d", "--type", "echo"))
    assert t["timeoutSeconds"] == 0 and t["maxAttempts"] == 1, t
    # --run-at's parse shows in the server's refusal of a year-0 time:
    # 0000-12-31T23:59:59.5+01:00 is 22:59:59.5 UTC, one hour and 1.5 s
    # before 0001-01-01T00:00:00Z (-62135596800).
    err = fails(3, "INVALID_ARGUMENT", "submit", "--name", "y0", "--type", "echo",
                "--run-at", "0000-12-31T23:59:59.5+01:00")
    assert "run_at" in err and "seconds=-62135600401 nanos=500000000" in err, err
    fails(3, "INVALID_ARGUMENT", "submit", "--name", "z", "--type", "echo", "--max-attempts", "0")
    err = fails(3, "INVALID_ARGUMENT", "submit", "--name", "r", "--type", "echo",
                "--after", UNKNOWN_ID, "--after", "#0")
    assert "depends_on[1]" in err and "SubmitTasks" in err, err
    # Relative times parse (+N s/m/h/d, decimals too).
    for when in ("+0s", "+0.01s", "+0m", "+0h", "+0d"):
        ok("submit", "--name", "rel", "--type", "echo", "--run-at", when)
    # An idempotency key comes back as given.
    rc, out, err = run("submit", "--json", "--name", "k", "--type", "echo", "--key", "k1",
                       "--max-attempts", "2")
    assert rc == 0, (rc, err)
    t = json.loads(out)
    assert t["idempotencyKey"] == "k1" and get_json(t["id"])["idempotencyKey"] == "k1", t
    assert "key:       k1" in ok("get", t["id"])


def test_retry():
    err = fails(5, "NOT_FOUND", "retry", UNKNOWN_ID)
    assert UNKNOWN_ID in err, err
    fails(3, "INVALID_ARGUMENT", "retry", "not-a-uuid")
    tid = submit("rdone", "echo")
    wait_status(tid, "TASK_STATUS_DONE")
    err = fails(9, "FAILED_PRECONDITION", "retry", tid)
    assert tid in err, err


def ts_ns(text):
    """Nanoseconds since the epoch of an RFC 3339 UTC time as oeectl prints
    it (2024-01-02T03:04:05[.fff[fff[fff]]]Z)."""
    assert RFC3339_RE.match(text), text
    whole, _, frac = text[:-1].partition(".")
    secs = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    return secs * 10**9 + int((frac + "000000000")[:9])


def list_rows():
    """`oeectl list --all`'s rows by task id (each split into its columns)."""
    lines = ok("list", "--all").splitlines()
    return {l.split()[0]: l.split() for l in lines[1:-1]}


def test_retry_error_task():
    # A task that ended ERROR after its two attempts runs again: the reply
    # shows it QUEUED with its attempts counted from 0, then it really runs
    # (a later start, both attempts again) and ends ERROR again.
    tid = submit("rerr", "fail", "--ctx", "message=boom", "--max-attempts", "2",
                 "--backoff", "0.05")
    first = wait_status(tid, "TASK_STATUS_ERROR")
    assert (first["attempt"], first["errorMessage"]) == (2, "boom"), first
    out = ok("retry", tid)
    assert out == "retried %s (status QUEUED, 2 attempts)\n" % tid, out
    def again():
        t = get_json(tid)
        return t if t["status"] == "TASK_STATUS_ERROR" and "startedAt" in t and \
            ts_ns(t["startedAt"]) > ts_ns(first["completedAt"]) else None
    deadline = time.time() + 20
    while not again():
        assert time.time() < deadline, "retried task %s never ended again" % tid
        time.sleep(0.05)
    t = again()
    assert (t["attempt"], t["maxAttempts"], t["errorMessage"]) == (2, 2, "boom"), t
    # --json: the Task as queued again, attempt 0.
    t = json.loads(ok("--json", "retry", tid))
    assert (t["id"], t["status"], t["attempt"], t["maxAttempts"]) == \
        (tid, "TASK_STATUS_QUEUED", 0, 2), t
    t = wait_status(tid, "TASK_STATUS_ERROR", timeout=20)
    # `list` shows the attempts it ran (the ATTEMPT column, attempt/max).
    assert list_rows()[tid][3:6] == ["ERROR", "5", "2/2"], list_rows()[tid]


def test_submit_after():
    # --after A --after B: the task waits (SCHEDULED, no run_at) until both
    # ended DONE, and starts after the later of them ended. B sleeps long
    # enough that C is submitted and read back while B still runs (each
    # oeectl run can take most of a second on a loaded machine).
    a = submit("dep-a", "sleep", "--ctx", "seconds=1")
    b = submit("dep-b", "sleep", "--ctx", "seconds=6")
    c = json.loads(ok("submit", "--json", "--name", "after-ab", "--type", "echo",
                      "--ctx", "message=last", "--after", a, "--after", b))
    assert c["dependsOn"] == [a, b], c
    assert c["status"] == "TASK_STATUS_SCHEDULED" and "runAt" not in c, c
    assert get_json(c["id"])["status"] == "TASK_STATUS_SCHEDULED"
    done = wait_status(c["id"], "TASK_STATUS_DONE", timeout=30)
    ta, tb = get_json(a), get_json(b)
    assert ta["status"] == tb["status"] == "TASK_STATUS_DONE", (ta, tb)
    start = ts_ns(done["startedAt"])
    assert start >= ts_ns(ta["completedAt"]) and start >= ts_ns(tb["completedAt"]), \
        (done["startedAt"], ta["completedAt"], tb["completedAt"])
    assert done["result"] == "last", done


def test_submit_key_twice():
    # The same --key twice: one task, the same id both times. (oeectl submit
    # prints only the id, so it cannot say "duplicate"; submit-batch does.)
    total = json.loads(ok("--json", "list"))["totalSize"]
    first = submit("keyed", "echo", "--key", "cli-key-twice")
    second = submit("keyed-again", "echo", "--key", "cli-key-twice")
    assert first == second, (first, second)
    t = json.loads(ok("submit", "--json", "--name", "k3", "--type", "echo",
                      "--key", "cli-key-twice"))
    assert (t["id"], t["name"], t["idempotencyKey"]) == (first, "keyed", "cli-key-twice"), t
    assert json.loads(ok("--json", "list"))["totalSize"] == total + 1
    other = submit("keyed-other", "echo", "--key", "cli-key-other")
    assert other != first


def test_submit_run_at_relative():
    # --run-at +30s: SCHEDULED with run_at 30 s from now (within 5 s); list
    # shows its RUN_AT (whole seconds) and a "-" for an undelayed task.
    before = time.time()
    t = json.loads(ok("submit", "--json", "--name", "in30", "--type", "echo",
                      "--run-at", "+30s"))
    after = time.time()
    assert t["status"] == "TASK_STATUS_SCHEDULED", t
    at = ts_ns(t["runAt"]) / 1e9
    assert before + 25 <= at <= after + 35, (before, t["runAt"], after)
    g = get_json(t["id"])
    assert (g["status"], g["runAt"]) == ("TASK_STATUS_SCHEDULED", t["runAt"]), g
    now_id = submit("now", "echo")
    wait_status(now_id, "TASK_STATUS_DONE")
    rows = list_rows()
    cell = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(at)))
    assert rows[t["id"]][3] == "SCHEDULED" and rows[t["id"]][7] == cell, (rows[t["id"]], cell)
    assert rows[now_id][7] == "-", rows[now_id]
    ok("cancel", t["id"])
    assert get_json(t["id"])["status"] == "TASK_STATUS_CANCELLED"


def test_exec_and_fail():
    t = wait_status(submit("ex", "exec", "--ctx", "command=hello"), "TASK_STATUS_DONE")
    assert t["result"] == "hello", t
    t = wait_status(submit("f", "fail", "--ctx", "message=boom"), "TASK_STATUS_ERROR")
    assert "boom" in t["errorMessage"], t


def test_get():
    tid = submit("g", "echo", "--ctx", "message=got")
    wait_status(tid, "TASK_STATUS_DONE")
    out = ok("get", tid)
    for line in ("id:        " + tid, "name:      g", "type:      echo", "status:    DONE",
                 "result:    got", "context:   message=got", "timeout:   none",
                 "backoff:   1 s, at most 300 s", "key:       \n", "after:    \n"):
        assert line in out, (line, out)
    assert re.search(r"^attempt:   \d+ of 1$", out, re.M), out
    assert get_json(tid)["id"] == tid
    err = fails(5, "NOT_FOUND", "get", UNKNOWN_ID)
    assert UNKNOWN_ID in err, err
    fails(3, "INVALID_ARGUMENT", "get", "not-a-uuid")


def test_oee_addr():
    tid = submit("env")
    out = ok("get", tid, env_addr=SRV.addr, addr=False)
    assert tid in out
    # --addr wins over OEE_ADDR.
    rc, out, err = run("get", tid, env_addr="127.0.0.1:1")
    assert rc == 0 and tid in out, (rc, err)
    fails(14, "UNAVAILABLE", "get", tid, env_addr="127.0.0.1:1", addr=False)


def test_list():
    ids = [submit("L%d" % i, "echo", "--ctx", "message=m%d" % i) for i in range(3)]
    for tid in ids:
        wait_status(tid, "TASK_STATUS_DONE")
    out = ok("list")
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "NAME", "TYPE", "STATUS", "PRIO", "ATTEMPT", "WORKER",
                                "RUN_AT", "RESULT/ERROR"], lines[0]
    rows = {l.split()[0]: l.split() for l in lines[1:-1]}
    for i, tid in enumerate(ids):
        assert rows[tid][1:5] == ["L%d" % i, "echo", "DONE", "5"], rows[tid]
        assert re.match(r"^\d+/1$", rows[tid][5]), rows[tid]  # of the default 1 attempt
        assert rows[tid][7] == "-", rows[tid]                  # never delayed
        assert rows[tid][-1] == "m%d" % i, rows[tid]
    # The columns line up: RUN_AT starts at the same offset on every row.
    offsets = {l.index(" - ") for l in lines[1:-1] if l.split()[0] in ids}
    assert len(offsets) == 1, lines
    assert re.match(r"^\(\d+ of \d+ tasks\)$", lines[-1]), lines[-1]

    page = json.loads(ok("--json", "list"))
    assert page["totalSize"] == len(page["tasks"]) >= 3 and page["nextPageToken"] == "", page
    for t in page["tasks"]:
        check_task_json(t)
    created = [t["createdAt"] for t in page["tasks"]]
    assert created == sorted(created), "not oldest first"

    done = json.loads(ok("list", "--json", "--status", "done", "--type", "echo"))
    assert done["tasks"] and all(t["status"] == "TASK_STATUS_DONE" and t["taskType"] == "echo"
                                 for t in done["tasks"]), done
    errs = json.loads(ok("list", "--json", "--status", "TASK_STATUS_ERROR"))
    assert all(t["status"] == "TASK_STATUS_ERROR" for t in errs["tasks"]) and errs["tasks"], errs
    assert json.loads(ok("list", "--json", "--type", "nosuch"))["tasks"] == []

    first = json.loads(ok("list", "--json", "--page-size", "2"))
    assert len(first["tasks"]) == 2 and first["nextPageToken"], first
    second = json.loads(ok("list", "--json", "--page-size", "2", "--page-token", first["nextPageToken"]))
    assert second["tasks"][0]["id"] == page["tasks"][2]["id"], second
    out = ok("list", "--page-size", "2")
    assert "next page: --page-token " + first["nextPageToken"] in out, out
    every = json.loads(ok("list", "--json", "--all", "--page-size", "2"))
    assert [t["id"] for t in every["tasks"]] == [t["id"] for t in page["tasks"]], every
    assert every["nextPageToken"] == ""

    fails(3, "INVALID_ARGUMENT", "list", "--page-token", "garbage")
    fails(3, "INVALID_ARGUMENT", "list", "--page-size", "-1")


def test_cancel():
    tid = submit("sleepy", "sleep", "--ctx", "seconds=30")
    out = ok("cancel", tid)
    assert out.startswith("cancelled " + tid), out
    t = wait_status(tid, "TASK_STATUS_CANCELLED")
    assert RFC3339_RE.match(t["completedAt"]), t
    out = ok("cancel", tid)
    assert out.startswith("not cancelled: %s is already CANCELLED" % tid), out
    r = json.loads(ok("--json", "cancel", tid))
    assert r["cancelled"] is False and r["task"]["status"] == "TASK_STATUS_CANCELLED", r
    fails(5, "NOT_FOUND", "cancel", UNKNOWN_ID)
    fails(3, "INVALID_ARGUMENT", "cancel", "xyz")


def test_status():
    out = ok("status")
    assert re.search(r"^server:\s+running$", out, re.M), out
    assert re.search(r"^workers:\s+2$", out, re.M), out
    assert re.search(r"^tasks:\s+\d+ total, \d+ scheduled, \d+ queued, \d+ running, \d+ done, "
                     r"\d+ error, \d+ cancelled$", out, re.M), out
    assert re.search(r"^WORKER\s+BUSY\s+COMPLETED\s+FAILED\s+CURRENT TASK$", out, re.M), out
    # The quota of config.json: running now, no max_running ("-"), the rate.
    assert re.search(r"^QUOTA TYPE\s+RUNNING\s+MAX_RUNNING\s+MAX_PER_SECOND$", out, re.M), out
    assert re.search(r"^fail\s+0\s+-\s+1000$", out, re.M), out
    s = json.loads(ok("status", "--json"))
    assert s["running"] is True and s["numWorkers"] == 2 and s["version"], s
    assert [w["workerId"] for w in s["workers"]] == [0, 1], s
    q = s["queue"]
    assert sorted(q["tasksByStatus"]) == ["cancelled", "done", "error", "queued", "running",
                                          "scheduled"], q
    assert q["typeLimits"] == [{"taskType": "fail", "maxRunning": 0, "running": 0,
                                "maxPerSecond": 1000}], q
    assert q["totalTasks"] == sum(q["tasksByStatus"].values()), q
    assert s["uptimeSeconds"] > 0 and sum(w["tasksCompleted"] for w in s["workers"]) >= 1, s


def test_submit_batch():
    lines = [
        json.dumps({"name": "b1", "task_type": "echo", "context": {"message": "one"}}),
        "",
        "this is not json",
        json.dumps({"name": "b2", "taskType": "echo", "priority": 0}),
        json.dumps({"name": "b3", "task_type": "echo", "priority": 99}),
        json.dumps({"name": "b4", "task_type": "echo", "surprise": 1}),
    ]
    path = os.path.join(os.environ.get("TEST_TMPDIR", "/tmp"), "batch.jsonl")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    rc, out, err = run("submit-batch", path)
    assert rc == 3 and err == "", (rc, err)
    res = out.splitlines()
    assert len(res) == 5, res
    assert UUID_RE.match(res[0]) and UUID_RE.match(res[2]), res
    assert res[1].startswith("error: line 3: INVALID_ARGUMENT (3): invalid JSON"), res[1]
    assert res[3].startswith("error: line 5: INVALID_ARGUMENT (3): ") and "priority" in res[3], res[3]
    assert res[4] == 'error: line 6: INVALID_ARGUMENT (3): unknown field "surprise"', res[4]
    assert wait_status(res[0], "TASK_STATUS_DONE")["result"] == "one"
    assert get_json(res[2])["priority"] == 0
    # Standard input ("-") and --json.
    rc, out, err = run("--json", "submit-batch", "-", stdin="\n".join(lines) + "\n")
    assert rc == 3, (rc, err)
    objs = [json.loads(l) for l in out.splitlines()]
    assert [o["line"] for o in objs] == [1, 3, 4, 5, 6], objs
    assert [o["code"] for o in objs] == [0, 3, 0, 3, 3], objs
    assert objs[0]["task"]["name"] == "b1" and UUID_RE.match(objs[0]["taskId"]), objs[0]
    # All good: exit 0. 2500 entries take three SubmitTasks calls.
    many = "".join(json.dumps({"name": "m%d" % i, "task_type": "echo"}) + "\n" for i in range(2500))
    rc, out, err = run("submit-batch", stdin=many)
    ids = out.splitlines()
    assert rc == 0 and len(ids) == 2500 and len(set(ids)) == 2500, (rc, err, len(ids))
    assert all(UUID_RE.match(i) for i in ids)
    fails(EXIT_NOINPUT, None, "submit-batch", "/nonexistent/batch.jsonl")


def test_submit_batch_semantics():
    # The new fields, under both names; "#<index>" numbers the entries of the
    # input (blank lines not counted), whatever failed locally before.
    lines = [
        {"name": "s0", "task_type": "echo", "max_attempts": 3, "timeout_seconds": 5,
         "backoffSeconds": 0.25, "max_backoff_seconds": 9, "run_at": "2001-02-03T04:05:06Z"},
        "not json",
        {"name": "s2", "taskType": "echo", "maxAttempts": 2, "timeoutSeconds": 1.5},
        {"name": "s3", "task_type": "echo", "depends_on": ["#1"]},          # names a local failure
        {"name": "s4", "task_type": "echo", "depends_on": ["#4"]},          # itself
        {"name": "s5", "task_type": "echo", "depends_on": ["#9"]},          # a later entry
        {"name": "s6", "task_type": "echo", "depends_on": ["#x"]},
        {"name": "s7", "task_type": "echo", "depends_on": "#0"},
        {"name": "s8", "task_type": "echo", "run_at": "soon"},
        {"name": "s9", "task_type": "echo", "max_attempts": 0},             # refused by the server
        {"name": "s10", "task_type": "echo", "depends_on": ["#9"]},         # names that one
        {"name": "s11", "task_type": "echo", "depends_on": [UNKNOWN_ID, "#3"]},
        {"name": "s12", "task_type": "echo", "depends_on": [], "dependsOn": []},
    ]
    text = "".join((l if isinstance(l, str) else json.dumps(l)) + "\n\n" for l in lines)
    rc, out, err = run("--json", "submit-batch", stdin=text)
    assert rc == 3 and err == "", (rc, err)
    objs = [json.loads(l) for l in out.splitlines()]
    assert [o["line"] for o in objs] == [2 * i + 1 for i in range(len(lines))], objs
    codes = [o["code"] for o in objs]
    assert codes == [0, 3, 0, 9, 3, 3, 3, 3, 3, 3, 9, 9, 3], codes
    assert all(o["duplicate"] is False for o in objs), objs
    t0, t2 = objs[0]["task"], objs[2]["task"]
    assert (t0["maxAttempts"], t0["timeoutSeconds"], t0["backoffSeconds"],
            t0["maxBackoffSeconds"]) == (3, 5, 0.25, 9), t0
    assert (t2["maxAttempts"], t2["timeoutSeconds"]) == (2, 1.5), t2
    assert "names entry 1, which was refused" in objs[3]["message"], objs[3]
    assert "this entry itself" in objs[4]["message"], objs[4]
    assert "a later entry" in objs[5]["message"], objs[5]
    assert "neither a task id" in objs[6]["message"], objs[6]
    assert "array of strings" in objs[7]["message"], objs[7]
    assert "run_at" in objs[8]["message"], objs[8]
    assert objs[9]["message"] == "max_attempts must be 1..100, got 0", objs[9]
    assert objs[10]["message"] == 'depends_on[0] "#9" names entry 9, which was refused', objs[10]
    assert "names entry 3, which was refused" in objs[11]["message"], objs[11]
    assert objs[12]["message"] == 'field "depends_on" is given twice', objs[12]

    # A reference to an entry of the same call, and to one of an earlier call
    # (1000 entries per call): resolved to the right request index or task id.
    many = [{"name": "m%d" % i, "task_type": "echo"} for i in range(1001)]
    many.append({"name": "near", "task_type": "echo", "depends_on": ["#1000"]})
    many.append({"name": "far", "task_type": "echo", "depends_on": ["#2"]})
    text = "".join(json.dumps(l) + "\n" for l in many)
    rc, out, err = run("--json", "submit-batch", stdin=text, timeout=120)
    objs = [json.loads(l) for l in out.splitlines()]
    assert len(objs) == 1003 and all(o["code"] == 0 for o in objs[:1001]), (rc, err)
    near, far = objs[1001], objs[1002]
    assert rc == 0, (rc, err)
    assert near["task"]["dependsOn"] == [objs[1000]["taskId"]], near
    assert far["task"]["dependsOn"] == [objs[2]["taskId"]], far


class Watcher:
    """oeectl watch in the background; collects stdout lines as they come."""

    def __init__(self, *args):
        env = dict(os.environ)
        env.pop("OEE_ADDR", None)
        self.proc = subprocess.Popen([OEECTL, "--addr", SRV.addr, "watch"] + list(args),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env)
        self.lines = []
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.lock:
                self.lines.append(line.rstrip("\n"))

    def wait_for(self, pred, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                if pred(list(self.lines)):
                    return list(self.lines)
            time.sleep(0.05)
        raise AssertionError("watch output never matched: %r" % self.lines)

    def finish(self, sig=None):
        if sig is not None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=10)
        self.reader.join(timeout=5)
        return rc, self.proc.stderr.read()


def test_watch_snapshot_sigint():
    old = submit("before", "echo", "--ctx", "message=old")
    wait_status(old, "TASK_STATUS_DONE")
    w = Watcher("--json", "--snapshot")
    # The snapshot shows the finished task: the watch is now subscribed.
    w.wait_for(lambda ls: any(json.loads(l)["task"]["id"] == old for l in ls))
    new = submit("live", "echo", "--ctx", "message=new")
    lines = w.wait_for(lambda ls: any(json.loads(l)["task"]["id"] == new and
                                      json.loads(l)["task"]["status"] == "TASK_STATUS_DONE" for l in ls))
    rc, err = w.finish(signal.SIGINT)
    assert rc == 0 and err == "", (rc, err)
    events = [json.loads(l) for l in lines]
    snap = [e for e in events if e["task"]["id"] == old]
    assert len(snap) == 1 and snap[0]["task"]["status"] == "TASK_STATUS_DONE", snap
    mine = [e for e in events if e["task"]["id"] == new]
    assert [e["task"]["status"] for e in mine] == \
        ["TASK_STATUS_QUEUED", "TASK_STATUS_RUNNING", "TASK_STATUS_DONE"], mine
    seqs = [int(e["sequence"]) for e in mine]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3, seqs
    assert all(RFC3339_RE.match(e["time"]) for e in mine), mine
    assert mine[-1]["task"]["result"] == "new"


def test_watch_filters_human():
    # test_exec_and_fail left a fail task in ERROR: the snapshot shows it,
    # which tells that the watch is subscribed.
    w = Watcher("--snapshot", "--type", "fail", "--status", "error", "--status", "queued")
    w.wait_for(lambda ls: len(ls) >= 1)
    submit("ignored", "echo")
    tid = submit("bad", "fail", "--ctx", "message=kaput")
    lines = w.wait_for(lambda ls: any(tid in l and " ERROR " in l for l in ls))
    rc, err = w.finish(signal.SIGINT)
    assert rc == 0 and err == "", (rc, err)
    assert all(" fail " in l for l in lines), lines
    lines = [l for l in lines if tid in l]
    assert len(lines) == 2, lines
    assert re.match(r"^\d+  \S+Z  %s  QUEUED\s" % tid, lines[0]), lines[0]
    assert re.match(r"^\d+  \S+Z  %s  ERROR\s.* bad  kaput$" % tid, lines[1]), lines[1]
    assert int(lines[0].split()[0]) < int(lines[1].split()[0])


def test_pipeline():
    tid = ok("pipeline", "submit", "--id", "p1", "--strategy", "local-fast-precise",
             "--stage", "up:upper", "--stage", "back:rev:1.5", "--input", "hello").strip()
    assert UUID_RE.match(tid), tid
    wait_status(tid, "TASK_STATUS_DONE")
    r = json.loads(ok("--json", "pipeline", "result", tid))
    assert r["taskId"] == tid and r["pipelineId"] == "p1" and r["output"] == "OLLEH", r
    assert r["status"] == "TASK_STATUS_DONE" and r["strategy"] == "LOCAL_FAST_PRECISE", r
    assert [s["name"] for s in r["stages"]] == ["up", "back"], r
    assert [s["status"] for s in r["stages"]] == ["STAGE_STATUS_DONE"] * 2, r
    assert [s["cost"] for s in r["stages"]] == [0.5, 1.5] and abs(r["totalCost"] - 2.0) < 1e-9, r
    out = ok("pipeline", "result", tid)
    assert re.search(r"^output:\s+OLLEH$", out, re.M) and re.search(r"^back\s+rev\s+DONE\s+1\.500", out, re.M), out
    t = json.loads(ok("pipeline", "submit", "--json", "--id", "p2", "--strategy", "COST_OPTIMIZED",
                      "--stage", "a:upper", "--stage", "b:echo", "--priority", "0",
                      "--name", "cheap", "--input", "abc"))
    assert t["taskType"] == "pipeline" and t["name"] == "cheap" and t["priority"] == 0, t
    wait_status(t["id"], "TASK_STATUS_DONE")
    r = json.loads(ok("pipeline", "result", t["id"], "--json"))
    assert r["output"] == "abc" and r["stages"][1]["status"] == "STAGE_STATUS_DONE", r
    fails(3, "INVALID_ARGUMENT", "pipeline", "submit", "--id", "p3", "--strategy", "QUALITY_FIRST",
          "--stage", "a:nosuchmodel")
    fails(3, "INVALID_ARGUMENT", "pipeline", "submit", "--id", "p3", "--strategy", "QUALITY_FIRST",
          "--stage", "a:echo", "--max-cost", "-1")
    fails(3, "INVALID_ARGUMENT", "pipeline", "submit", "--id", "p3", "--strategy", "QUALITY_FIRST",
          "--stage", "a:echo:-1")
    fails(5, "NOT_FOUND", "pipeline", "result", UNKNOWN_ID)
    fails(5, "NOT_FOUND", "pipeline", "result", submit("plain"))
    fails(3, "INVALID_ARGUMENT", "pipeline", "result", "bad-id")


def test_health():
    assert ok("health") == "SERVING\n"
    assert ok("health", "oee.v1.OrchestratorService") == "SERVING\n"
    assert json.loads(ok("health", "--json")) == {"status": "SERVING"}
    fails(5, "NOT_FOUND", "health", "no.such.Service")
    # A draining server is NOT_SERVING: exit 14 with the status on stdout.
    global SRV
    main, SRV = SRV, Server()
    try:
        tid = submit("hold", "sleep", "--ctx", "seconds=3")
        deadline = time.time() + 10
        while get_json(tid)["status"] != "TASK_STATUS_RUNNING":
            assert time.time() < deadline
            time.sleep(0.02)
        SRV.proc.send_signal(signal.SIGTERM)
        deadline = time.time() + 10
        while True:
            rc, out, err = run("health")
            if rc == 14:
                break
            assert rc == 0 and out == "SERVING\n" and time.time() < deadline, (rc, out, err)
            time.sleep(0.02)
        assert out == "NOT_SERVING\n" and err == "", (out, err)
        assert SRV.proc.wait(timeout=30) == 0
    finally:
        SRV.remove_data()
        SRV = main


# ---- schedules ----

TIME_CELL_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")  # to the second


def schedule_fields(out):
    """The "key: value" lines of `schedule get` (create, pause, resume) as a dict."""
    fields = {}
    for line in out.splitlines():
        m = re.match(r"^([a-z ]+):(?: +(.*))?$", line)
        assert m, "not a key: value line: %r" % line
        fields[m.group(1)] = (m.group(2) or "").rstrip()
    return fields


def schedule_rows(out):
    """The rows of `schedule list` by id: [id, cron, tz, paused, next run, last
    run, runs, skipped]. Cells are cut at the header's offsets: a cron
    expression holds spaces."""
    lines = out.splitlines()
    head = lines[0]
    assert head.split() == ["ID", "CRON", "TZ", "PAUSED", "NEXT", "RUN", "LAST", "RUN", "RUNS",
                            "SKIPPED"], head
    assert re.match(r"^\(\d+ schedules?(; next page: --page-token \S+)?\)$", lines[-1]), lines[-1]
    starts = [head.index(h) for h in ("ID", "CRON", "TZ", "PAUSED", "NEXT RUN", "LAST RUN")]
    ends = starts[1:] + [starts[-1] + 20]
    rows = {}
    for line in lines[1:-1]:
        cells = [line[a:b].strip() for a, b in zip(starts, ends)] + line[ends[-1]:].split()
        assert len(cells) == 8, (line, cells)
        rows[cells[0]] = cells
    return rows


def schedule_json(sid):
    return json.loads(ok("--json", "schedule", "get", sid))


def test_schedule():
    out = ok("schedule", "create", "tick", "--cron", "@every 1s", "--name", "tock", "--type",
             "echo", "--ctx", "message=tick-tock", "--priority", "3")
    try:
        f = schedule_fields(out)
        assert (f["id"], f["cron"], f["time zone"], f["overlap"], f["paused"]) == \
            ("tick", "@every 1s", "UTC", "SKIP", "no"), f
        assert RFC3339_RE.match(f["next run"]) and RFC3339_RE.match(f["created"]), f
        assert (f["task name"], f["task type"], f["priority"], f["context"]) == \
            ("tock", "echo", "3", "message=tick-tock"), f
        assert f["runs"].isdigit() and f["skipped"].isdigit(), f
        g = schedule_fields(ok("schedule", "get", "tick"))
        assert (g["id"], g["cron"], g["task name"], g["created"]) == \
            ("tick", "@every 1s", "tock", f["created"]), g

        # Firings at created + 1 s and + 2 s.
        time.sleep(2.5)
        g = schedule_fields(ok("schedule", "get", "tick"))
        assert int(g["runs"]) >= 1, g
        assert RFC3339_RE.match(g["last run"]) and UUID_RE.match(g["last task"]), g
        # The firing's task: the template, the schedule id, the key <id>@<time>.
        t = get_json(g["last task"])
        assert (t["name"], t["taskType"], t["priority"], t["context"], t["scheduleId"]) == \
            ("tock", "echo", 3, {"message": "tick-tock"}, "tick"), t
        assert t["idempotencyKey"] == "tick@" + g["last run"], (t, g)
        assert "schedule:  tick" in ok("get", t["id"])

        row = schedule_rows(ok("schedule", "list"))["tick"]
        assert row[1:4] == ["@every 1s", "UTC", "no"], row
        assert TIME_CELL_RE.match(row[4]) and TIME_CELL_RE.match(row[5]), row
        assert int(row[6]) >= 1 and row[7].isdigit(), row

        # Paused: no next run, and no firing while paused.
        p = schedule_fields(ok("schedule", "pause", "tick"))
        assert p["paused"] == "yes" and p["next run"] == "-", p
        row = schedule_rows(ok("schedule", "list"))["tick"]
        assert row[3] == "yes" and row[4] == "-" and TIME_CELL_RE.match(row[5]), row
        time.sleep(1.2)
        assert schedule_fields(ok("schedule", "get", "tick"))["runs"] == p["runs"]

        r = schedule_fields(ok("schedule", "resume", "tick"))
        assert r["paused"] == "no" and RFC3339_RE.match(r["next run"]), r
        assert schedule_rows(ok("schedule", "list"))["tick"][3] == "no"
    finally:
        rc, out, err = run("schedule", "delete", "tick")
    assert rc == 0 and out == "deleted schedule tick\n" and err == "", (rc, out, err)

    err = fails(5, "NOT_FOUND", "schedule", "get", "tick")
    assert '"tick"' in err, err
    for verb in ("delete", "pause", "resume"):
        fails(5, "NOT_FOUND", "schedule", verb, "tick")
    assert "tick" not in schedule_rows(ok("schedule", "list"))
    # The tasks it submitted stay.
    assert get_json(g["last task"])["scheduleId"] == "tick"


def test_schedule_errors():
    tpl = ("--name", "n", "--type", "echo")
    err = fails(3, "INVALID_ARGUMENT", "schedule", "create", "bad", "--cron", "61 * * * *", *tpl)
    assert "minute" in err and "61" in err, err
    err = fails(3, "INVALID_ARGUMENT", "schedule", "create", "bad", "--cron", "0 * * * *",
                "--tz", "No/Such_Zone", *tpl)
    assert "time_zone" in err and "No/Such_Zone" in err, err
    err = fails(3, "INVALID_ARGUMENT", "schedule", "create", "Not An Id", "--cron", "@daily", *tpl)
    assert "schedule_id" in err, err
    err = fails(3, "INVALID_ARGUMENT", "schedule", "create", "bad", "--cron", "@daily",
                "--name", "n", "--type", "echo", "--priority", "11")
    assert "task" in err and "priority" in err, err

    ok("schedule", "create", "dup", "--cron", "@daily", "--paused", *tpl)
    try:
        err = fails(6, "ALREADY_EXISTS", "schedule", "create", "dup", "--cron", "@hourly", *tpl)
        assert '"dup"' in err, err
        assert schedule_fields(ok("schedule", "get", "dup"))["cron"] == "@daily"
    finally:
        ok("schedule", "delete", "dup")

    # A template cannot have a run_at or an idempotency key: refused locally.
    err = usage_error("schedule", "create", "x", "--cron", "@daily", *tpl, "--run-at", "+5m")
    assert "--run-at" in err and "template" in err, err
    err = usage_error("schedule", "create", "x", "--cron", "@daily", *tpl, "--key", "k")
    assert "--key" in err and "template" in err, err
    usage_error("schedule", "create", "x", "--cron", "@daily", *tpl, "--after", UNKNOWN_ID)
    err = usage_error("schedule", "create", "x", *tpl)
    assert "--cron is required" in err, err
    usage_error("schedule", "create", "--cron", "@daily", *tpl)            # no id
    usage_error("schedule", "create", "x", "y", "--cron", "@daily", *tpl)  # two ids
    usage_error("schedule", "create", "x", "--cron", "@daily", "--name", "n")
    usage_error("schedule", "create", "x", "--cron", "@daily", "--type", "echo")
    usage_error("schedule", "create", "x", "--cron", "@daily", *tpl, "--overlap", "sometimes")
    usage_error("schedule", "create", "x", "--cron", "@daily", *tpl, "--priority", "high")
    usage_error("schedule", "create", "x", "--cron", "@daily", *tpl, "--timeout", "soon")
    usage_error("schedule")
    usage_error("schedule", "frob")
    for verb in ("get", "delete", "pause", "resume"):
        usage_error("schedule", verb)
        usage_error("schedule", verb, "a", "b")
    usage_error("schedule", "list", "extra")
    usage_error("schedule", "list", "--page-size", "many")
    fails(3, "INVALID_ARGUMENT", "schedule", "list", "--page-size", "-1")
    fails(3, "INVALID_ARGUMENT", "schedule", "list", "--page-token", "Not A Token!")
    # None of the refused ones exists.
    ids = [s["scheduleId"] for s in json.loads(ok("--json", "schedule", "list"))["schedules"]]
    assert not set(ids) & {"bad", "x", "dup", "Not An Id"}, ids


def test_schedule_json():
    s = json.loads(ok("--json", "schedule", "create", "js", "--cron", "*/5 * * * *", "--tz", "UTC",
                      "--overlap", "allow", "--paused", "--name", "j", "--type", "echo",
                      "--ctx", "message=m", "--max-attempts", "2", "--backoff", "0.5",
                      "--timeout", "4"))
    try:
        # int64 counts are strings; unset times are left out.
        assert (s["scheduleId"], s["runs"], s["skipped"], s["lastTaskId"]) == ("js", "0", "0", ""), s
        assert (s["cron"], s["timeZone"], s["overlap"], s["paused"]) == \
            ("*/5 * * * *", "UTC", "SCHEDULE_OVERLAP_ALLOW", True), s
        assert "nextRunAt" not in s and "lastRunAt" not in s and RFC3339_RE.match(s["createdAt"]), s
        # --timeout after the command is the template's, as in submit.
        assert s["task"] == {"name": "j", "taskType": "echo", "priority": 5,
                             "context": {"message": "m"}, "maxAttempts": 2, "backoffSeconds": 0.5,
                             "timeoutSeconds": 4, "idempotencyKey": "", "dependsOn": []}, s
        assert schedule_json("js") == s
        r = json.loads(ok("schedule", "resume", "js", "--json"))
        assert r["paused"] is False and RFC3339_RE.match(r["nextRunAt"]), r
        p = json.loads(ok("--json", "schedule", "pause", "js"))
        assert p["paused"] is True and "nextRunAt" not in p, p

        # Pages, in id order.
        for sid in ("js2", "js3"):
            ok("schedule", "create", sid, "--cron", "@hourly", "--paused", "--name", sid,
               "--type", "echo")
        every = json.loads(ok("--json", "schedule", "list"))
        assert [x["scheduleId"] for x in every["schedules"]] == ["js", "js2", "js3"], every
        assert every["nextPageToken"] == "" and every["schedules"][0] == p, every
        first = json.loads(ok("--json", "schedule", "list", "--page-size", "2"))
        assert [x["scheduleId"] for x in first["schedules"]] == ["js", "js2"], first
        assert first["nextPageToken"], first
        second = json.loads(ok("--json", "schedule", "list", "--page-size", "2",
                               "--page-token", first["nextPageToken"]))
        assert [x["scheduleId"] for x in second["schedules"]] == ["js3"], second
        assert second["nextPageToken"] == "", second
        both = json.loads(ok("--json", "schedule", "list", "--all", "--page-size", "2"))
        assert both == every, both
        out = ok("schedule", "list", "--page-size", "2")
        assert out.splitlines()[-1] == "(2 schedules; next page: --page-token %s)" % \
            first["nextPageToken"], out
        out = ok("schedule", "list", "--all", "--page-size", "1")
        assert sorted(schedule_rows(out)) == ["js", "js2", "js3"] and \
            out.splitlines()[-1] == "(3 schedules)", out
        # The columns line up: PAUSED starts at the header's offset on every row.
        head, rows = out.splitlines()[0], out.splitlines()[1:-1]
        assert all(l.index(" yes ") + 1 == head.index("PAUSED") for l in rows), out
    finally:
        for sid in ("js2", "js3"):
            run("schedule", "delete", sid)
        out = ok("--json", "schedule", "delete", "js")
    assert json.loads(out) == {}, out


def test_watch_schedule():
    tpl = ("--cron", "@every 1s", "--type", "echo")
    ok("schedule", "create", "wa", "--name", "from-wa", *tpl)
    ok("schedule", "create", "wb", "--name", "from-wb", *tpl)
    w = None
    try:
        w = Watcher("--json", "--schedule", "wa")
        # wa fires every second: its first event shows the watch subscribed.
        w.wait_for(lambda ls: len(ls) >= 1)
        plain = submit("plain", "echo")
        wait_status(plain, "TASK_STATUS_DONE")
        # A firing of wa after the plain task ended: its events come after
        # the plain task's, which the filter must have passed over.
        runs = int(schedule_json("wa")["runs"])
        deadline = time.time() + 10
        while int(schedule_json("wa")["runs"]) <= runs:
            assert time.time() < deadline, "wa stopped firing"
            time.sleep(0.05)
        last = schedule_json("wa")["lastTaskId"]
        lines = w.wait_for(lambda ls: any(json.loads(l)["task"]["id"] == last and
                                          json.loads(l)["task"]["status"] == "TASK_STATUS_DONE"
                                          for l in ls))
        rc, err = w.finish(signal.SIGINT)
        assert rc == 0 and err == "", (rc, err)
        tasks = [json.loads(l)["task"] for l in lines]
        assert all(t["scheduleId"] == "wa" and t["name"] == "from-wa" for t in tasks), tasks
        assert plain not in {t["id"] for t in tasks}, tasks
        # wb fired too, unseen.
        assert int(schedule_json("wb")["runs"]) >= 1
    finally:
        if w is not None and w.proc.poll() is None:
            w.proc.kill()
            w.proc.wait()
        for sid in ("wa", "wb"):
            run("schedule", "delete", sid)


def wait_idle(timeout=20):
    deadline = time.time() + timeout
    while True:
        q = json.loads(ok("status", "--json"))["queue"]["tasksByStatus"]
        if q["queued"] == 0 and q["running"] == 0:
            return
        assert time.time() < deadline, q
        time.sleep(0.1)


def test_clear():
    wait_idle()
    fails(3, "INVALID_ARGUMENT", "clear", "--keep", "-1")
    out = ok("clear", "--keep", "1")
    assert re.match(r"^cleared \d+ tasks$", out), out
    assert int(out.split()[1]) > 0, out
    assert json.loads(ok("clear", "--json", "--keep", "1")) == {"cleared": 0}
    finished = json.loads(ok("list", "--json", "--all"))["tasks"]
    assert len([t for t in finished if t["status"] != "TASK_STATUS_QUEUED" and
                t["status"] != "TASK_STATUS_RUNNING"]) <= 1, finished


def test_unavailable():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    dead = "127.0.0.1:%d" % port
    for args in (["status"], ["list"], ["get", UNKNOWN_ID], ["submit", "--name", "x", "--type", "echo"],
                 ["watch"], ["schedule", "list"], ["schedule", "get", "x"]):
        fails(14, "UNAVAILABLE", "--addr", dead, *args, addr=False)
    fails(14, "UNAVAILABLE", "status", env_addr=dead, addr=False)


TESTS = [test_help, test_usage_errors, test_submit, test_submit_errors, test_submit_semantics,
         test_retry, test_retry_error_task, test_submit_after, test_submit_key_twice,
         test_submit_run_at_relative, test_exec_and_fail, test_get, test_oee_addr, test_list, test_cancel,
         test_status, test_submit_batch, test_submit_batch_semantics,
         test_watch_snapshot_sigint, test_watch_filters_human, test_pipeline,
         test_health, test_schedule, test_schedule_errors, test_schedule_json,
         test_watch_schedule, test_clear, test_unavailable]


def test_server_stop(watcher):
    """SIGTERM: an open watch ends UNAVAILABLE (exit 14), the server exits 0."""
    rc = SRV.stop()
    assert rc == 0, "server exit %d" % rc
    wrc, err = watcher.finish()
    assert wrc == 14 and err.startswith("oeectl: UNAVAILABLE: "), (wrc, err)


def main():
    global SRV
    SRV = Server()
    passed = failed = 0
    for t in TESTS:
        try:
            t()
            passed += 1
            print("PASS %s" % t.__name__)
        except Exception:
            failed += 1
            print("FAIL %s\n%s" % (t.__name__, traceback.format_exc()))
        sys.stdout.flush()
    try:
        w = Watcher("--snapshot")
        w.wait_for(lambda ls: len(ls) > 0)
        test_server_stop(w)
        passed += 1
        print("PASS test_server_stop")
    except Exception:
        failed += 1
        print("FAIL test_server_stop\n%s" % traceback.format_exc())
    SRV.remove_data()
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
