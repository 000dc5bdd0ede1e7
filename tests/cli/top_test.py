"""End-to-end test of `oeectl top` against the real oee-server on loopback.

Starts //server:oee-server on 127.0.0.1:0 with tests/cli/config.json and 12
workers, in a data directory of its own under $TEST_TMPDIR. Lines mode
(stdout a pipe): the counts, the rates counted from WatchTasks events, the
running tasks of the snapshot and of live events, SIGINT/SIGTERM, an
unreachable server. Full-screen mode in a real terminal: tmux (its own server
on its own socket) runs oeectl top in a pane; the test reads the screen with
capture-pane while a burst of tasks runs, resizes the window, quits with q
and with SIGTERM, and checks the exit status and that the terminal was given
back (alternate screen left, `stty -a` shows icanon and echo again). Prints
a closing "N passed, N failed" line.
"""
import json
import os
import re
import shlex
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
CONFIG = os.path.join(RUNFILES, "tests", "cli", "config.json")

WORKERS = 12
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
STATUS_KEYS = ("queued", "scheduled", "running", "done", "error", "cancelled")
LINE_RE = re.compile(
    r"^ts=(\d{4}-\d\d-\d\dT\d\d:\d\d:(\d\d\.\d{3}))Z queued=(\d+) scheduled=(\d+) running=(\d+)"
    r" done=(\d+) error=(\d+) cancelled=(\d+) submitted=(\d+) finished=(\d+)"
    r" submit_rate=(\d+\.\d\d) finish_rate=(\d+\.\d\d) workers_busy=(\d+)/(\d+)"
    r" remote_workers=(\d+)$")


class Server:
    """The oee-server process; its port is read from its first stdout line."""

    def __init__(self, config=CONFIG, *extra):
        self.data_dir = tempfile.mkdtemp(prefix="oee-top-", dir=os.environ.get("TEST_TMPDIR"))
        self.proc = subprocess.Popen(
            [SERVER, "--listen", "127.0.0.1:0", "--config", config, "--workers", str(WORKERS),
             "--drain-timeout", "1", "--data-dir", self.data_dir] + list(extra),
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        m = re.match(r"oee-server listening on port (\d+)", line)
        if not m:
            self.remove_data()
            raise RuntimeError("server did not start: %r" % line)
        self.addr = "127.0.0.1:%s" % m.group(1)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)

    def remove_data(self):
        """Kills the server if it still runs, then removes its data directory."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.data_dir, ignore_errors=True)


SRV = None


def env():
    e = dict(os.environ)
    e.pop("OEE_ADDR", None)
    return e


def run(*args, stdin=None, addr=None, timeout=60):
    """Runs oeectl; returns (exit code, stdout, stderr)."""
    argv = [OEECTL, "--addr", addr or SRV.addr] + list(args)
    p = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env(),
                       timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def ok(*args, **kw):
    rc, out, err = run(*args, **kw)
    assert rc == 0, "oeectl %s: exit %d, stderr %r" % (" ".join(args), rc, err)
    assert err == "", "unexpected stderr %r" % err
    return out


def submit_batch(entries, addr=None):
    """Queues the entries (dicts) with one SubmitTasks call; returns the ids."""
    out = ok("submit-batch", stdin="".join(json.dumps(e) + "\n" for e in entries), addr=addr)
    ids = out.split()
    assert len(ids) == len(entries) and all(UUID_RE.fullmatch(i) for i in ids), out
    return ids


def echo(name):
    return {"name": name, "task_type": "echo", "context": {"message": name}}


def sleep(name, seconds):
    return {"name": name, "task_type": "sleep", "context": {"seconds": str(seconds)}}


def counts():
    q = json.loads(ok("--json", "status"))["queue"]["tasksByStatus"]
    return {k: int(q.get(k, 0)) for k in STATUS_KEYS}


def wait_counts(pred, what, timeout=30):
    deadline = time.time() + timeout
    while True:
        c = counts()
        if pred(c):
            return c
        assert time.time() < deadline, "counts never reached %s: %r" % (what, c)
        time.sleep(0.1)


def wait_idle():
    return wait_counts(lambda c: c["queued"] == c["running"] == c["scheduled"] == 0, "idle")


def running_ids():
    out = json.loads(ok("--json", "list", "--status", "running", "--page-size", "1000"))
    return sorted(t["id"] for t in out["tasks"])


# ---- lines mode ----

def test_help():
    out = ok("top", "--help")
    assert out.startswith("usage: oeectl top"), out
    for flag in ("--interval", "--count", "--json", "q quits", "submit_rate"):
        assert flag in out, (flag, out)
    assert re.search(r"^  top\s+live view", ok("--help"), re.M), "main help lacks top"
    assert ok("help", "top").startswith("usage: oeectl top")


def test_usage_errors():
    for args in (["--interval", "0"], ["--interval", "soon"], ["--interval", "0.01"],
                 ["--interval", "5000"], ["--interval", "nan"], ["--count", "0"],
                 ["--count", "-1"], ["--count", "many"], ["extra"], ["--frobnicate"]):
        rc, out, err = run("top", *args)
        assert rc == 64, (args, rc, err)
        assert out == "" and err.startswith("oeectl: top: ") and "usage:" in err, (args, err)


def test_lines_counts():
    """Three intervals of 0.5 s: three lines whose counts are the server's."""
    submit_batch([echo("c%d" % i) for i in range(5)])
    wait_counts(lambda c: c["done"] == 5, "done=5")
    t0 = time.monotonic()
    out = ok("top", "--count", "3", "--interval", "0.5")
    elapsed = time.monotonic() - t0
    lines = out.splitlines()
    assert len(lines) == 3, out
    secs = []
    for line in lines:
        m = LINE_RE.match(line)
        assert m, line
        g = m.groups()
        secs.append(float(g[1]))
        assert tuple(int(x) for x in g[2:8]) == (0, 0, 0, 5, 0, 0), line
        assert g[8:12] == ("0", "0", "0.00", "0.00"), line
        assert (int(g[12]), int(g[13]), int(g[14])) == (0, WORKERS, 0), line
    gaps = [(b - a) % 60 for a, b in zip(secs, secs[1:])]
    assert all(0.35 < g < 1.5 for g in gaps), (gaps, lines)
    assert elapsed >= 1.5, elapsed


def test_lines_snapshot():
    """Tasks already running come from the stream's snapshot, and the
    snapshot counts neither as submissions nor as finishes."""
    ids = submit_batch([sleep("snap-a", 4), sleep("snap-b", 4)])
    wait_counts(lambda c: c["running"] == 2, "running=2")
    out = ok("--json", "top", "--count", "2", "--interval", "0.5")
    objs = [json.loads(l) for l in out.splitlines()]
    assert len(objs) == 2, out
    for o in objs:
        assert o["running"] == 2 and o["workers_busy"] == 2 and o["workers"] == WORKERS, o
        assert o["submitted"] == 0 and o["finished"] == 0 and o["submit_rate"] == 0, o
        tasks = sorted(o["running_tasks"], key=lambda t: t["id"])
        assert [t["id"] for t in tasks] == sorted(ids), o
        assert [t["name"] for t in tasks] == ["snap-a", "snap-b"], o
        for t in tasks:
            assert t["type"] == "sleep" and re.fullmatch(r"\d+", t["worker"]), t
            assert 0 <= t["running_seconds"] < 30, t
    # Oldest first: a started no later than b, as listed.
    names = [t["name"] for t in objs[-1]["running_tasks"]]
    assert names == ["snap-a", "snap-b"], names
    wait_idle()


def read_json_lines(proc):
    out = []
    for line in proc.stdout:
        out.append(json.loads(line))
    return out


def test_json_rates():
    """Events while top runs: every submission and finish counted once, in
    the interval it happened, the rates agreeing with the counts, and the
    running set following RUNNING and the final statuses."""
    wait_idle()
    p = subprocess.Popen([OEECTL, "--addr", SRV.addr, "--json", "top", "--count", "12",
                          "--interval", "0.5"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env())
    try:
        first = json.loads(p.stdout.readline())
        ids = submit_batch([echo("r%d" % i) for i in range(4)] +
                           [{"name": "f%d" % i, "task_type": "fail",
                             "context": {"message": "no"}} for i in range(2)] +
                           [sleep("slow-%d" % i, 1.5) for i in range(2)])
        rest = read_json_lines(p)
        rc = p.wait(timeout=30)
        err = p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert rc == 0 and err == "", (rc, err)
    objs = [first] + rest
    assert len(objs) == 12, objs
    assert sum(o["submitted"] for o in objs) == 8, [o["submitted"] for o in objs]
    assert sum(o["finished"] for o in objs) == 8, [o["finished"] for o in objs]
    for o in objs:
        for n, rate in ((o["submitted"], o["submit_rate"]), (o["finished"], o["finish_rate"])):
            # Intervals are 0.5 s, give or take the scheduler.
            assert (n == 0) == (rate == 0) and n / 1.0 <= rate <= n / 0.25, o
    slow = sorted(ids[6:])
    assert any(sorted(t["id"] for t in o["running_tasks"]) == slow for o in objs), objs
    last = objs[-1]
    assert last["running_tasks"] == [] and last["running"] == 0, last
    assert last["done"] - first["done"] == 6 and last["error"] - first["error"] == 2, (first, last)


def test_snapshot_overflow():
    """A snapshot larger than the server's watch_buffer is refused; top then
    watches without one (no error shown), takes the running tasks from
    ListTasks, and still counts the live events."""
    d = tempfile.mkdtemp(prefix="oee-top-cfg-", dir=os.environ.get("TEST_TMPDIR"))
    cfg = os.path.join(d, "config.json")
    with open(cfg, "w") as f:
        json.dump({"watch_buffer": 16}, f)
    srv = Server(cfg, "--store", "memory")
    try:
        submit_batch([echo("old-%d" % i) for i in range(20)], addr=srv.addr)
        sleeps = sorted(submit_batch([sleep("long-a", 60), sleep("long-b", 60)], addr=srv.addr))
        p = subprocess.Popen([OEECTL, "--addr", srv.addr, "--json", "top", "--count", "8",
                              "--interval", "0.5"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env())
        try:
            first = json.loads(p.stdout.readline())
            submit_batch([echo("new-%d" % i) for i in range(3)], addr=srv.addr)
            objs = [first] + read_json_lines(p)
            rc = p.wait(timeout=30)
            err = p.stderr.read()
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        assert rc == 0 and err == "", (rc, err)
        assert len(objs) == 8, objs
        for o in objs:
            assert sorted(t["id"] for t in o["running_tasks"]) == sleeps, o
        assert sum(o["submitted"] for o in objs) == 3, objs
        assert sum(o["finished"] for o in objs) == 3, objs
        assert objs[-1]["done"] == 23, objs[-1]
        assert srv.stop() == 0
    finally:
        srv.remove_data()
        shutil.rmtree(d, ignore_errors=True)


def test_signals_lines():
    """Lines mode without --count ends 0 on SIGINT and on SIGTERM."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        p = subprocess.Popen([OEECTL, "--addr", SRV.addr, "top", "--interval", "0.2"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
        line = p.stdout.readline()
        assert LINE_RE.match(line.rstrip("\n")), line
        p.send_signal(sig)
        rc = p.wait(timeout=10)
        err = p.stderr.read()
        p.stdout.close()
        p.stderr.close()
        assert rc == 0 and err == "", (sig, rc, err)


def test_unavailable():
    """An unreachable server: the refresh fails, the exit code says why."""
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = "127.0.0.1:%d" % s.getsockname()[1]
    s.close()
    rc, out, err = run("top", "--count", "1", "--interval", "0.2", addr=dead)
    assert rc == 14 and out == "", (rc, out, err)
    assert err.startswith("oeectl: UNAVAILABLE: "), err


# ---- full-screen mode under tmux ----

class Tmux:
    """A tmux server of our own: its own socket in a short directory of
    its own (socket paths are limited to ~100 bytes), no config file."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="oee-tmux-", dir="/tmp")
        self.name = "oee-top-%d" % os.getpid()
        self.env = env()
        self.env.pop("TMUX", None)
        self.env["TMUX_TMPDIR"] = self.dir

    def cmd(self, *args, check=True):
        p = subprocess.run(["tmux", "-L", self.name, "-f", "/dev/null"] + list(args),
                           capture_output=True, text=True, env=self.env, timeout=20)
        assert not check or p.returncode == 0, (args, p.returncode, p.stderr)
        return p

    def new(self, session, cols, rows, command):
        # remain-on-exit in the same invocation: no window to exit before it.
        self.cmd("new-session", "-d", "-s", session, "-x", str(cols), "-y", str(rows), command,
                 ";", "set-option", "-t", session, "remain-on-exit", "on")

    def screen(self, session):
        return self.cmd("capture-pane", "-p", "-t", session).stdout.rstrip("\n").split("\n")

    def fmt(self, session, f):
        return self.cmd("display-message", "-p", "-t", session, f).stdout.strip()

    def wait(self, session, pred, what, timeout=20):
        """Captures the screen until pred(lines) is true; returns the lines."""
        deadline = time.time() + timeout
        lines = []
        while time.time() < deadline:
            lines = self.screen(session)
            if pred(lines):
                return lines
            time.sleep(0.1)
        raise AssertionError("screen never showed %s:\n%s" % (what, "\n".join(lines)))

    def exit_status(self, session, timeout=5):
        """Waits until the pane's process has ended (its terminal closed
        and its exit status collected) and returns that status.

        tmux 3.3a links libutempter, which runs a helper process when a
        pane's terminal closes and, while it waits for it, swallows any
        other SIGCHLD (seen with strace: the pane process's SIGCHLD lands
        during the helper's wait4 and no waitpid follows). A process that
        takes a while to finish after its terminal closed (an ASan binary
        unmapping its shadow memory) then stays an unreaped zombie until
        some other child of tmux exits: run-shell provides one."""
        deadline = time.time() + timeout
        while True:
            dead = self.fmt(session, "#{pane_dead}:#{pane_dead_status}")
            if dead not in ("0:", "1:"):
                return dead.split(":")[1]
            assert time.time() < deadline, "the pane's process still runs after %g s" % timeout
            if dead == "1:":
                self.cmd("run-shell", "true")
            time.sleep(0.05)

    def kill(self):
        self.cmd("kill-server", check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


def has_counts(text, want):
    return all(re.search(r"\b%s %d\b" % (k, v), text) for k, v in want.items())


def test_tmux_burst_resize_q():
    """Starts, shows the counts, follows a burst (counts, rates, running
    list), re-lays out for a 60x15 window, and quits on q with status 0."""
    base = wait_idle()
    tm = Tmux()
    try:
        tm.new("top", 120, 40, "exec %s --addr %s top" % (shlex.quote(OEECTL), SRV.addr))
        tm.wait("top", lambda ls: ls[0].startswith("oeectl top  %s" % SRV.addr) and
                has_counts("\n".join(ls), base), "the header and the counts")
        assert tm.fmt("top", "#{alternate_on}") == "1"
        # 20 echo tasks first (they finish at once), then 50 sleeps that
        # hold all 12 workers for the rest of the test. The screen is read
        # while the batch is submitted: the rates of an interval show for
        # that interval only.
        # The first sleep's name carries escape sequences (clear screen,
        # cursor home, bell): top must print them as text.
        entries = ([echo("b%d" % i) for i in range(20)] +
                   [sleep("burst-%02d" % i, 120) for i in range(50)])
        entries[20]["name"] = "burst-00\x1b[2J\x1b[H\x07!"
        sub = subprocess.Popen([OEECTL, "--addr", SRV.addr, "submit-batch"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env())
        sub.stdin.write("".join(json.dumps(e) + "\n" for e in entries))
        sub.stdin.close()
        seen = set()

        def rates_shown(ls):
            for m in re.finditer(r"(submit|finish) (\d+\.\d)/s", "\n".join(ls)):
                if float(m.group(2)) > 0:
                    seen.add(m.group(1))
            return seen == {"submit", "finish"}

        tm.wait("top", rates_shown, "submit and finish rates above 0")
        assert sub.wait(timeout=30) == 0 and len(sub.stdout.read().split()) == 70
        sub.stdout.close()
        sub.stderr.close()
        want = dict(base, queued=50 - WORKERS, running=WORKERS, done=base["done"] + 20)
        wait_counts(lambda c: c == want, want)
        ids = running_ids()
        assert len(ids) == WORKERS, ids

        def burst_shown(ls):
            text = "\n".join(ls)
            return (has_counts(text, want) and "running tasks: %d" % WORKERS in text and
                    all(i in text for i in ids))

        lines = tm.wait("top", burst_shown, "the burst's counts, rate and running tasks")
        rows = [l for l in lines if UUID_RE.search(l)]
        assert len(rows) == WORKERS and all(" sleep " in r for r in rows), lines
        assert any("burst-00?[2J?[H?!" in r for r in rows), rows
        assert lines[0].startswith("oeectl top"), lines
        assert all(len(l) <= 120 for l in lines), lines

        tm.cmd("resize-window", "-t", "top", "-x", "60", "-y", "15")

        def narrow(ls):
            text = "\n".join(ls)
            more = re.search(r"^\.\.\. and (\d+) more$", text, re.M)
            shown = [l for l in ls if any(l.startswith(i[-12:] + " ") for i in ids)]
            return (len(ls) <= 15 and has_counts(text, want) and not UUID_RE.search(text) and
                    more is not None and len(shown) + int(more.group(1)) == WORKERS)

        lines = tm.wait("top", narrow, "the 60x15 layout")
        assert all(len(l) <= 60 for l in lines), lines
        tm.cmd("send-keys", "-t", "top", "q")
        assert tm.exit_status("top") == "0", tm.screen("top")
        assert tm.fmt("top", "#{alternate_on}") == "0"
        assert not any(l.startswith("oeectl top") for l in tm.screen("top")), tm.screen("top")
    finally:
        tm.kill()


def test_tmux_winch_sigterm():
    """With a 60 s interval only SIGWINCH can redraw: the new layout must
    show at once. SIGTERM then ends top with 0 and the terminal restored."""
    tm = Tmux()
    d = tempfile.mkdtemp(prefix="oee-top-sig-", dir=os.environ.get("TEST_TMPDIR"))
    pid_file, rc_file = os.path.join(d, "pid"), os.path.join(d, "rc")
    inner = "echo $$ > %s; exec %s --addr %s top --interval 60" % (
        shlex.quote(pid_file), shlex.quote(OEECTL), SRV.addr)
    command = "sh -c %s; echo rc=$? > %s; stty -a >> %s; sleep 60" % (
        shlex.quote(inner), shlex.quote(rc_file), shlex.quote(rc_file))
    try:
        ids = running_ids()
        assert len(ids) == WORKERS, ids
        tm.new("sig", 100, 30, command)
        tm.wait("sig", lambda ls: ls[0].startswith("oeectl top") and
                re.match(r"tasks .*cancelled \d+$", ls[1]) is not None,
                "the counts on one line at 100 columns")
        tm.cmd("resize-window", "-t", "sig", "-x", "50", "-y", "12")

        def narrow(ls):
            text = "\n".join(ls)
            return (re.search(r"^ {8}\S.*cancelled \d+$", text, re.M) is not None and
                    not UUID_RE.search(text) and
                    sum(any(l.startswith(i[-12:] + " ") for i in ids) for l in ls) >= 2)

        lines = tm.wait("sig", narrow, "the 50x12 layout with the running tasks", timeout=10)
        assert len(lines) <= 12 and all(len(l) <= 50 for l in lines), lines
        with open(pid_file) as f:
            os.kill(int(f.read()), signal.SIGTERM)
        deadline = time.time() + 10
        while not (os.path.exists(rc_file) and "icanon" in open(rc_file).read()):
            assert time.time() < deadline, "no exit status after SIGTERM"
            time.sleep(0.05)
        with open(rc_file) as f:
            report = f.read()
        words = report.split()
        assert words[0] == "rc=0", report
        assert "icanon" in words and "echo" in words, report
        assert "-icanon" not in words and "-echo" not in words, report
        assert tm.fmt("sig", "#{alternate_on}") == "0"
        assert not any(l.startswith("oeectl top") for l in tm.screen("sig")), tm.screen("sig")
    finally:
        tm.kill()
        shutil.rmtree(d, ignore_errors=True)


TESTS = [test_help, test_usage_errors, test_lines_counts, test_lines_snapshot, test_json_rates,
         test_snapshot_overflow, test_signals_lines, test_unavailable]
TMUX_TESTS = [test_tmux_burst_resize_q, test_tmux_winch_sigterm]


def main():
    global SRV
    SRV = Server()
    passed = failed = 0
    tests = TESTS
    if shutil.which("tmux") is None:
        print("SKIP %s: tmux is not installed (apt-get install tmux)" %
              ", ".join(t.__name__ for t in TMUX_TESTS))
    else:
        tests = TESTS + TMUX_TESTS
    for t in tests:
        try:
            t()
            passed += 1
            print("PASS %s" % t.__name__)
        except Exception:
            failed += 1
            print("FAIL %s\n%s" % (t.__name__, traceback.format_exc()))
        sys.stdout.flush()
    try:
        rc = SRV.stop()
        assert rc == 0, "server exit %d" % rc
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
