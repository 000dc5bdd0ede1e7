"""SIGTERM at any moment of oee-server's life ends it cleanly (exit 0).

The server blocks SIGTERM/SIGINT/SIGHUP from the first line of main() and
takes them on one sigwait thread (server/signals.h), so a signal can neither
land on a thread parked inside libgrpc nor be lost while the server is still
starting. Two families of runs, a few processes at a time so that the runs
also load each other (as CI's parallel run does):

  * RUNS_AT_LISTEN times: SIGTERM the moment the "listening" line appears;
    the server must log "draining" and exit 0.
  * RUNS_IN_STARTUP times: SIGTERM at a random point of start-up, from the
    moment main() has blocked the signals (read from /proc; before that no
    program can handle a signal) up to the time a start normally takes. The
    server must exit 0, and if it got as far as listening, after draining.

Under --config=asan and --config=tsan the server is the sanitizer build, so
"exit 0" also means "no leak, no race report".

Every server opens the default store in a data directory of its own (the
runs overlap, and a second server on one directory would be refused), so
start-up includes opening or creating its database; finish() removes it.
"""

import os
import random
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest

RUNS_AT_LISTEN = 50
RUNS_IN_STARTUP = 25
PARALLEL = 3
EXIT_WAIT = 120.0
BLOCK_WAIT = 30.0
LISTENING = "oee-server listening on port"


def runfile(path):
    root = os.environ.get("TEST_SRCDIR")
    if not root:
        raise RuntimeError("TEST_SRCDIR is not set: run this with bazel test")
    return os.path.join(root, "oee", path)


def spawn():
    """Starts a server; its data directory is proc.data_dir (see finish)."""
    data_dir = tempfile.mkdtemp(prefix="oee-signals-", dir=os.environ.get("TEST_TMPDIR"))
    argv = [runfile("server/oee-server"), "--listen", "127.0.0.1:0", "--workers", "2",
            "--data-dir", data_dir]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True)
    proc.data_dir = data_dir
    return proc


def sigterm_blocked(pid):
    """Whether the process's main thread blocks SIGTERM yet (None: gone)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("SigBlk:"):
                    return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    except (IOError, OSError):
        return None
    return False


def wait_blocked(proc):
    """Polls /proc until main() has blocked the signals: nothing else tells."""
    deadline = time.monotonic() + BLOCK_WAIT
    while time.monotonic() < deadline:
        state = sigterm_blocked(proc.pid)
        if state or proc.poll() is not None:
            return state
        time.sleep(0.0005)
    return False


def finish(proc):
    """Waits for the server to exit (killing it after EXIT_WAIT), removes its
    data directory; returns (status or None if killed, stdout, stderr)."""
    try:
        out, err = proc.communicate(timeout=EXIT_WAIT)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        rc = None
    shutil.rmtree(proc.data_dir, ignore_errors=True)
    return rc, out, err


def run_at_listen(_):
    """SIGTERM right after the listening line; returns a failure or None."""
    proc = spawn()
    line = proc.stdout.readline()
    if LISTENING not in line:
        proc.kill()
        _, _, err = finish(proc)
        return "no listening line: %r\n%s" % (line, err[-2000:])
    proc.send_signal(signal.SIGTERM)
    rc, _, err = finish(proc)
    if rc != 0:
        return "exit status %r after SIGTERM at listen\n%s" % (rc, err[-3000:])
    if "msg=draining" not in err:
        return "exited 0 without draining\n%s" % err[-3000:]
    return None


def run_in_startup(delay):
    """SIGTERM `delay` seconds after main() blocked the signals."""
    proc = spawn()
    if not wait_blocked(proc):
        proc.kill()
        _, _, err = finish(proc)
        return "signals never blocked\n%s" % err[-2000:]
    time.sleep(delay)  # the random point of start-up under test
    proc.send_signal(signal.SIGTERM)
    rc, out, err = finish(proc)
    if rc != 0:
        return "exit status %r after SIGTERM %.1f ms into start-up\n%s" % (
            rc, delay * 1000, err[-3000:])
    if LISTENING in out and "msg=draining" not in err:
        return "listened but exited without draining\n%s" % err[-3000:]
    return None


def run_all(fn, args):
    """Runs fn over args, PARALLEL at a time; returns the failures."""
    failures, lock, it = [], threading.Lock(), iter(list(args))

    def worker():
        while True:
            with lock:
                arg = next(it, None)
            if arg is None:
                return
            problem = fn(arg)
            if problem:
                with lock:
                    failures.append(problem)

    threads = [threading.Thread(target=worker) for _ in range(PARALLEL)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return failures


def startup_seconds():
    """How long one start takes here (from blocked signals to listening)."""
    proc = spawn()
    wait_blocked(proc)
    t0 = time.monotonic()
    line = proc.stdout.readline()
    took = time.monotonic() - t0
    proc.send_signal(signal.SIGTERM)
    finish(proc)
    if LISTENING not in line:
        raise AssertionError("server did not start: %r" % line)
    return took


class SignalTest(unittest.TestCase):

    def test_sigterm_at_listen(self):
        failures = run_all(run_at_listen, range(1, RUNS_AT_LISTEN + 1))
        self.assertEqual(failures, [], "%d of %d runs failed; first:\n%s" % (
            len(failures), RUNS_AT_LISTEN, failures[0] if failures else ""))

    def test_sigterm_during_startup(self):
        span = max(0.05, startup_seconds())
        rnd = random.Random(int(os.environ.get("OEE_SIGNAL_SEED", "20240")))
        delays = [rnd.uniform(0, span) for _ in range(RUNS_IN_STARTUP)]
        delays[0] = 0.0  # at once, before the signal thread may even exist
        failures = run_all(run_in_startup, delays)
        self.assertEqual(failures, [], "%d of %d runs failed (start-up %.0f ms); first:\n%s" % (
            len(failures), RUNS_IN_STARTUP, span * 1000, failures[0] if failures else ""))


if __name__ == "__main__":
    unittest.main()
