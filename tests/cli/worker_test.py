"""End-to-end test of `oeectl worker` against the real oee-server.

Starts //server:oee-server on 127.0.0.1:0 with tests/cli/config_remote.json
(remote_types "shell" and "other") in a data directory under $TEST_TMPDIR,
runs `oeectl worker ... -- sh -c SCRIPT` as subprocesses, submits tasks with
oeectl and checks what the command saw (context variables, stdin), the
results, failures with their exit code and stderr tail, retries, a cancel
reaching the command's process group as SIGTERM, `oeectl status` and
`oeectl list`, a server restart under a running worker, and a graceful
stop on SIGTERM. Prints a closing "N passed, N failed" line.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

RUNFILES = os.path.join(os.environ.get("TEST_SRCDIR", "."), "oee")
SERVER = os.path.join(RUNFILES, "server", "oee-server")
OEECTL = os.path.join(RUNFILES, "client", "oeectl")
CONFIG = os.path.join(RUNFILES, "tests", "cli", "config_remote.json")
TMP = os.environ.get("TEST_TMPDIR") or tempfile.gettempdir()

# One command for every task, its behaviour chosen by context["mode"]:
#   (none)  prints stdin, a context variable, the task id and the attempt,
#           then trailing blank lines and spaces (trimmed from the result)
#   fail    writes "bad thing <attempt>" to stderr and exits 3
#   noisy   writes 5,000 bytes and END-MARK to stderr and exits 4
#   hang    starts a child in its own process group (it is in CMD's group),
#           records both pids, and waits; each writes a line to the file
#           $OEE_CTX_MARK when SIGTERM reaches it
#   slow    creates $OEE_CTX_MARK.started, waits for the file $OEE_CTX_MARK.go,
#           then prints "slow done"
SCRIPT = r"""
case "$OEE_CTX_MODE" in
fail) echo "bad thing $OEE_ATTEMPT" >&2; exit 3 ;;
noisy) head -c 5000 /dev/zero | tr '\0' x >&2; echo END-MARK >&2; exit 4 ;;
hang)
  sh -c 'trap "echo child >> \"$OEE_CTX_MARK\"; exit 0" TERM; while :; do sleep 0.05; done' &
  trap 'echo parent >> "$OEE_CTX_MARK"; wait; exit 143' TERM
  echo started > "$OEE_CTX_MARK.started"
  while :; do sleep 0.05; done ;;
slow)
  echo started > "$OEE_CTX_MARK.started"
  while [ ! -e "$OEE_CTX_MARK.go" ]; do sleep 0.05; done
  echo "slow done" ;;
*) printf '%s|%s|%s|%s|%s\n\n  \n' "$(cat)" "$OEE_CTX_MY_KEY" "$OEE_TASK_ID" "$OEE_ATTEMPT" \
     "$OEE_TASK_TYPE" ;;
esac
"""


class Server:
    """The oee-server process; its port is read from its first stdout line."""

    def __init__(self, port=0, data_dir=None):
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="oee-worker-", dir=TMP)
        self.proc = subprocess.Popen(
            [SERVER, "--listen", "127.0.0.1:%d" % port, "--config", CONFIG,
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
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.data_dir, ignore_errors=True)


SRV = None


class Worker:
    """An `oeectl worker` subprocess; its stderr goes to a file."""

    def __init__(self, worker_id, types, *extra):
        self.err_path = os.path.join(TMP, "worker-%s.err" % worker_id)
        self.err = open(self.err_path, "w")
        argv = [OEECTL, "--addr", SRV.addr, "worker", "--worker-id", worker_id]
        for t in types:
            argv += ["--type", t]
        argv += list(extra) + ["--", "sh", "-c", SCRIPT]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self.err)

    def stderr(self):
        with open(self.err_path) as f:
            return f.read()

    def stop(self, timeout=30):
        """SIGTERM; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.err.close()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.err.close()


W1 = None  # w-py-1: types shell and other, concurrency 2, 3 s leases


def ctl(*args, timeout=30):
    """Runs oeectl; asserts exit 0 and returns stdout."""
    p = subprocess.run([OEECTL, "--addr", SRV.addr] + list(args), capture_output=True,
                       text=True, timeout=timeout)
    assert p.returncode == 0, "oeectl %s: exit %d, stderr %r" % (" ".join(args), p.returncode,
                                                                 p.stderr)
    return p.stdout


def submit(ttype="shell", *ctx, attempts=1):
    args = ["submit", "--name", "w", "--type", ttype, "--max-attempts", str(attempts),
            "--backoff", "0.1"]
    for c in ctx:
        args += ["--ctx", c]
    return ctl(*args).strip()


def get(tid):
    return json.loads(ctl("--json", "get", tid))


def wait_status(tid, want, timeout=30):
    deadline = time.time() + timeout
    while True:
        t = get(tid)
        if t["status"] == want:
            return t
        assert time.time() < deadline, "task %s is %s, want %s: %r" % (tid, t["status"], want, t)
        time.sleep(0.05)


def wait_for(pred, what, timeout=30):
    deadline = time.time() + timeout
    while not pred():
        assert time.time() < deadline, "timed out waiting for " + what
        time.sleep(0.05)


# ---- tests, run in order ----

def test_runs_command():
    """Context as OEE_CTX_* variables, input on stdin, the result trimmed."""
    tid = submit("shell", "my.key=v1", "input=hello world")
    t = wait_status(tid, "TASK_STATUS_DONE")
    assert t["result"] == "hello world|v1|%s|1|shell" % tid, t
    assert t["remoteWorkerId"] == "w-py-1" and t["workerId"] == -1, t
    assert t["errorMessage"] == "", t


def test_second_type():
    tid = submit("other", "input=x")
    t = wait_status(tid, "TASK_STATUS_DONE")
    assert t["result"] == "x||%s|1|other" % tid, t


def test_failure_retries():
    """A non-zero exit fails the attempt with the code and the stderr tail;
    the task retries (2 attempts) and ends ERROR with the last attempt's."""
    tid = submit("shell", "mode=fail", attempts=2)
    t = wait_status(tid, "TASK_STATUS_ERROR")
    assert t["attempt"] == 2, t
    assert t["errorMessage"] == "exit code 3: bad thing 2", t
    assert t["remoteWorkerId"] == "w-py-1", t


def test_stderr_tail():
    """Only the end of a long stderr is kept."""
    tid = submit("shell", "mode=noisy")
    t = wait_status(tid, "TASK_STATUS_ERROR")
    msg = t["errorMessage"]
    assert msg.startswith("exit code 4: ...") and msg.endswith("xxxEND-MARK"), msg[:80]
    assert 1000 < len(msg) < 2200, len(msg)


def test_cancel_signals_group():
    """CancelTask while the command runs: SIGTERM reaches the command and its
    child (the whole process group) and the task ends CANCELLED."""
    mark = os.path.join(TMP, "hang.mark")
    for p in (mark, mark + ".started"):
        if os.path.exists(p):
            os.unlink(p)
    tid = submit("shell", "mode=hang", "mark=" + mark)
    wait_for(lambda: os.path.exists(mark + ".started"), "the command to start")
    wait_status(tid, "TASK_STATUS_RUNNING")
    r = json.loads(ctl("--json", "cancel", tid))
    assert r["cancelled"] is True, r
    t = wait_status(tid, "TASK_STATUS_CANCELLED")
    wait_for(lambda: os.path.exists(mark) and len(open(mark).read().split()) == 2,
             "both processes to see SIGTERM")
    assert sorted(open(mark).read().split()) == ["child", "parent"]
    assert t["remoteWorkerId"] == "w-py-1", t
    assert "cancelled" in W1.stderr(), W1.stderr()


def test_status_lists_worker():
    out = ctl("status")
    assert re.search(r"^REMOTE WORKER\s+PEER\s+TYPES\s+LAST SEEN\s+ACTIVE\s+DONE\s+FAILED$",
                     out, re.M), out
    row = re.search(r"^w-py-1\s+ipv4:127\.0\.0\.1:\d+\s+(\S+)\s+\S+\s+(\d+)\s+(\d+)\s+(\d+)$",
                    out, re.M)
    assert row, out
    assert sorted(row.group(1).split(",")) == ["other", "shell"], row.group(0)
    assert int(row.group(3)) >= 2, row.group(0)  # the two DONE tasks
    s = json.loads(ctl("--json", "status"))
    mine = [w for w in s["remoteWorkers"] if w["workerId"] == "w-py-1"]
    assert len(mine) == 1, s["remoteWorkers"]
    w = mine[0]
    assert sorted(w["taskTypes"]) == ["other", "shell"], w
    assert int(w["tasksCompleted"]) >= 2 and int(w["tasksFailed"]) >= 3, w
    assert w["peer"].startswith("ipv4:127.0.0.1:") and w["lastSeen"].endswith("Z"), w


def test_list_shows_worker():
    tid = submit("shell", "input=listed")
    wait_status(tid, "TASK_STATUS_DONE")
    out = ctl("list", "--type", "shell", "--all")
    header = out.splitlines()[0].split()
    col = header.index("WORKER")
    rows = [l.split() for l in out.splitlines()[1:-1]]
    mine = [r for r in rows if r[0] == tid]
    assert mine and mine[0][col] == "w-py-1", out


def test_server_restart():
    """The worker outlives a server restart: it logs the failed polls, goes
    on polling and runs the next task once the server is back."""
    global SRV
    port = int(SRV.addr.rsplit(":", 1)[1])
    assert SRV.stop() == 0
    wait_for(lambda: "PollTasks failed" in W1.stderr(), "a failed poll to be logged")
    SRV = Server(port=port, data_dir=SRV.data_dir)
    tid = submit("shell", "input=after restart")
    t = wait_status(tid, "TASK_STATUS_DONE", timeout=60)
    assert t["result"].startswith("after restart|"), t
    assert t["remoteWorkerId"] == "w-py-1", t
    assert W1.proc.poll() is None, "the worker exited"


def test_sigterm_graceful():
    """SIGTERM: the worker stops polling, lets the running task finish and
    report, and exits 0; tasks submitted later stay QUEUED."""
    mark = os.path.join(TMP, "slow.mark")
    w2 = Worker("w-py-2", ["other"], "--concurrency", "1")
    try:
        W1.stop()  # only w-py-2 takes "other" from now on
        tid = submit("other", "mode=slow", "mark=" + mark)
        wait_for(lambda: os.path.exists(mark + ".started"), "the command to start")
        t = get(tid)
        assert t["status"] == "TASK_STATUS_RUNNING" and t["remoteWorkerId"] == "w-py-2", t
        w2.proc.send_signal(signal.SIGTERM)  # one (a second one would stop at once)
        wait_for(lambda: "stopping" in w2.stderr(), "the worker to start stopping")
        time.sleep(0.3)
        assert w2.proc.poll() is None, "exited with its command still running"
        open(mark + ".go", "w").close()
        rc = w2.proc.wait(timeout=30)
        assert rc == 0, "exit %d: %s" % (rc, w2.stderr())
        t = get(tid)
        assert t["status"] == "TASK_STATUS_DONE" and t["result"] == "slow done", t
        assert "stopping" in w2.stderr() and "stopped" in w2.stderr(), w2.stderr()
        later = submit("other", "input=later")
        time.sleep(0.5)
        assert get(later)["status"] == "TASK_STATUS_QUEUED"
    finally:
        w2.kill()


def test_grace_deadline():
    """Past --grace the running command gets SIGTERM, the attempt fails as
    retryable and the task runs again on another worker."""
    mark = os.path.join(TMP, "grace.mark")
    for p in (mark, mark + ".started"):
        if os.path.exists(p):
            os.unlink(p)
    w3 = Worker("w-py-3", ["shell"], "--grace", "0.5")
    try:
        tid = submit("shell", "mode=hang", "mark=" + mark, attempts=2)
        wait_for(lambda: os.path.exists(mark + ".started"), "the command to start")
        rc = w3.stop()
        assert rc == 0, "exit %d: %s" % (rc, w3.stderr())
        wait_for(lambda: os.path.exists(mark), "SIGTERM at the deadline")
        t = get(tid)
        assert t["status"] in ("TASK_STATUS_SCHEDULED", "TASK_STATUS_QUEUED"), t
        assert t["errorMessage"] == "worker w-py-3 stopped before the task finished", t
        assert t["attempt"] == 1, t
        ctl("cancel", tid)
    finally:
        w3.kill()


TESTS = [test_runs_command, test_second_type, test_failure_retries, test_stderr_tail,
         test_cancel_signals_group, test_status_lists_worker, test_list_shows_worker,
         test_server_restart, test_sigterm_graceful, test_grace_deadline]


def main():
    global SRV, W1
    SRV = Server()
    W1 = Worker("w-py-1", ["shell", "other"], "--concurrency", "2", "--lease", "3")
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
    W1.kill()
    rc = SRV.stop()
    if rc != 0:
        failed += 1
        print("FAIL server exit %d" % rc)
    SRV.remove_data()
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
