"""Soak of remote workers: 8 examples/python/worker.py processes against one
real oee-server, with failures, worker kills and cancellations throughout;
at the end every submitted task id is checked against the rules.

    bazel test //tests/soak:remote_soak_test                   # CI: 2,000 tasks, ~60 s
    bazel test //tests/soak:remote_soak_test --test_timeout=3600 \\
        --test_env=OEE_REMOTE_SOAK_TASKS=50000                  # the full soak (~10 min)

Environment:
  OEE_REMOTE_SOAK_TASKS   tasks to submit (default 2000; the full setting is 50000)
  OEE_REMOTE_SOAK_RATE    submissions per second (default 50 below 10,000 tasks, else 100)
  OEE_REMOTE_SOAK_SEED    random seed (default: the time; printed, so a run can be repeated)

What runs: a server with remote_types ["soak-a", "soak-b"] (sqlite store);
8 workers: three serve soak-a, three soak-b, two both (concurrency 4, lease
2 s, so heartbeats every 0.67 s). Tasks are submitted in batches of 50 at
the rate above, each with a random type, priority, max_attempts (1..3) and a
short sleep; 10% fail on every attempt (retryable), 5% fail permanently
(`"permanent": "true"`). Every 1.5..4 s one worker is SIGKILLed and
replaced by a new process (new worker id): its leases expire and their tasks
are retried. Every 20..200 ms one task is cancelled (mostly one of the 100
latest, so many cancels meet queued, leased or retrying tasks). A watcher
follows every event of the two types.

Checked at the end, for every submitted id (none may be missing, none extra):
  - final: DONE, ERROR or CANCELLED; 0 <= attempt <= max_attempts;
  - DONE only for tasks meant to succeed, with the upper-cased message;
  - ERROR: the handler's message, or "lease expired: worker <id> lost" (a
    killed worker); a retryable task ends ERROR only with no attempt left;
  - CANCELLED only for tasks we cancelled; a cancel accepted while the task
    was not RUNNING always ends CANCELLED; accepted while RUNNING, CANCELLED
    or DONE (the worker finished first);
  - WatchTasks: per task the first event is QUEUED, each step is a lifecycle
    transition, RUNNING appears once per attempt, the last event is the
    final status and no later event follows; sequences strictly increase.
"""

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import grpc

from oee.v1 import orchestrator_pb2 as pb
from oee.v1 import orchestrator_pb2_grpc as pb_grpc

TASKS = int(os.environ.get("OEE_REMOTE_SOAK_TASKS") or 2000)
RATE = float(os.environ.get("OEE_REMOTE_SOAK_RATE") or (50 if TASKS < 10000 else 100))
SEED = int(os.environ.get("OEE_REMOTE_SOAK_SEED") or time.time_ns() % 10 ** 9)
TYPES = ["soak-a", "soak-b"]
WORKER_TYPES = [["soak-a"]] * 3 + [["soak-b"]] * 3 + [TYPES] * 2
RPC_TIMEOUT = 30.0
BATCH = 50

S = pb.TaskStatus
SCHEDULED, QUEUED, RUNNING, DONE, ERROR, CANCELLED = (
    S.Value("TASK_STATUS_" + n)
    for n in ("SCHEDULED", "QUEUED", "RUNNING", "DONE", "ERROR", "CANCELLED"))
FINAL = (DONE, ERROR, CANCELLED)
# The lifecycle: which status may follow which in one task's events.
NEXT = {
    QUEUED: {RUNNING, CANCELLED},
    SCHEDULED: {QUEUED, CANCELLED},
    RUNNING: {DONE, ERROR, CANCELLED, SCHEDULED},
}
EXPIRED_RE = re.compile(r"^lease expired: worker soak-w\d+\.\d+ lost$")


def runfile(path):
    return os.path.join(os.environ["TEST_SRCDIR"], "oee", path)


def tmpdir():
    return os.environ.get("TEST_TMPDIR") or tempfile.gettempdir()


def outdir():
    return os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR") or tmpdir()


class Watch(object):
    """Keeps every event of the soak's types, read on a thread."""

    def __init__(self, stub):
        self.call = stub.WatchTasks(pb.WatchTasksRequest(task_types=TYPES))
        self.events = []
        self.error = None
        self.thread = threading.Thread(target=self.read, daemon=True)
        self.thread.start()

    def read(self):
        try:
            for e in self.call:
                self.events.append((e.sequence, e.task.id, e.task.status, e.task.attempt))
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:
                self.error = e


class RemoteSoak(unittest.TestCase):

    def setUp(self):
        self.rng = random.Random(SEED)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.workers = {}     # slot -> (worker id, Popen)
        self.incarnation = 0
        self.kills = 0
        self.submitted = {}   # task id -> (kind, max_attempts, message, fail message)
        self.order = []       # task ids in submission order
        self.cancels = {}     # task id -> status in the accepted cancel's reply
        self.data_dir = tempfile.mkdtemp(prefix="oee-remote-soak-", dir=tmpdir())
        self.addCleanup(shutil.rmtree, self.data_dir, ignore_errors=True)
        config = os.path.join(tmpdir(), "remote_soak_config.json")
        with open(config, "w") as f:
            json.dump({"workers": 2, "remote_types": TYPES, "drain_timeout_seconds": 20}, f)
        self.server_log = os.path.join(outdir(), "remote_soak.oee-server.log")
        stdout = os.path.join(outdir(), "remote_soak.oee-server.stdout")
        env = {k: v for k, v in os.environ.items() if not k.startswith("OEE_")}
        with open(stdout, "wb") as out, open(self.server_log, "wb") as err:
            self.server = subprocess.Popen(
                [runfile("server/oee-server"), "--listen", "127.0.0.1:0", "--config", config,
                 "--data-dir", self.data_dir], stdout=out, stderr=err, env=env)
        self.addCleanup(self.kill_server)
        deadline = time.monotonic() + 60
        port = None
        while port is None:
            self.assertIsNone(self.server.poll(), "oee-server exited at startup")
            self.assertLess(time.monotonic(), deadline, "oee-server never listened")
            with open(stdout) as f:
                m = re.search(r"oee-server listening on port (\d+)", f.read())
            port = m and int(m.group(1))
            time.sleep(0.05)
        self.addr = "127.0.0.1:%d" % port
        self.channel = grpc.insecure_channel(self.addr)
        grpc.channel_ready_future(self.channel).result(timeout=60)
        self.stub = pb_grpc.OrchestratorServiceStub(self.channel)

    def kill_server(self):
        if self.server.poll() is None:
            self.server.kill()
            self.server.wait()

    # ------------------------------------------------------------ workers
    def spawn(self, slot):
        """Starts the worker of `slot` under a new worker id."""
        with self.lock:
            self.incarnation += 1
            wid = "soak-w%d.%d" % (slot, self.incarnation)
        args = ["/usr/bin/python3", runfile("examples/python/worker.py"), "--addr", self.addr,
                "--worker-id", wid, "--concurrency", "4", "--lease", "2", "--wait", "5"]
        for t in WORKER_TYPES[slot]:
            args += ["--type", t]
        env = dict(os.environ)
        proto = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(pb.__file__))))
        env["PYTHONPATH"] = proto + os.pathsep + env.get("PYTHONPATH", "")
        log = open(os.path.join(outdir(), "remote_soak.%s.log" % wid), "wb")
        proc = subprocess.Popen(args, stdout=log, stderr=log, env=env)
        log.close()
        self.workers[slot] = (wid, proc)

    def chaos(self):
        """SIGKILLs a random worker every 1.5..4 s and starts a new one."""
        rng = random.Random(SEED + 1)
        while not self.stop.wait(rng.uniform(1.5, 4.0)):
            slot = rng.randrange(len(WORKER_TYPES))
            wid, proc = self.workers[slot]
            proc.kill()
            proc.wait()
            self.kills += 1
            self.spawn(slot)

    def canceller(self):
        """Cancels a random submitted task every 20..200 ms: mostly one of
        the 100 latest (likely still queued, running or retrying), else any."""
        rng = random.Random(SEED + 2)
        while not self.stop.wait(rng.uniform(0.02, 0.2)):
            with self.lock:
                if not self.order:
                    continue
                recent = self.order[-100:] if rng.random() < 0.8 else self.order
                task_id = rng.choice(recent)
            reply = self.stub.CancelTask(pb.CancelTaskRequest(task_id=task_id),
                                         timeout=RPC_TIMEOUT)
            if reply.cancelled:
                with self.lock:
                    # The first accepted cancel tells the most.
                    self.cancels.setdefault(task_id, reply.task.status)

    # ---------------------------------------------------------- submitting
    def plan(self, i):
        r = self.rng.random()
        kind = "fail" if r < 0.10 else "permanent" if r < 0.15 else "ok"
        context = {"message": "soak %d" % i,
                   "sleep": "%.3f" % self.rng.uniform(0, 0.04)}
        if kind != "ok":
            context["fail"] = "soak %s %d" % (kind, i)
        if kind == "permanent":
            context["permanent"] = "true"
        req = pb.SubmitTaskRequest(
            name="soak-%d" % i, task_type=self.rng.choice(TYPES),
            priority=self.rng.randint(0, 10), max_attempts=self.rng.randint(1, 3),
            backoff_seconds=0.05, max_backoff_seconds=0.2, context=context)
        return req, kind

    def submit_all(self):
        start = time.monotonic()
        for first in range(0, TASKS, BATCH):
            due = start + first / RATE
            time.sleep(max(0.0, due - time.monotonic()))
            plans = [self.plan(i) for i in range(first, min(TASKS, first + BATCH))]
            reply = self.stub.SubmitTasks(pb.SubmitTasksRequest(
                requests=[req for req, _ in plans]), timeout=RPC_TIMEOUT)
            for (req, kind), res in zip(plans, reply.results):
                self.assertEqual(res.code, 0, res.message)
                with self.lock:
                    self.order.append(res.task_id)
                    self.submitted[res.task_id] = (kind, req.max_attempts,
                                                   req.context["message"],
                                                   req.context.get("fail", ""))
        return time.monotonic() - start

    def list_all(self):
        tasks = {}
        for t in TYPES:
            token = ""
            while True:
                page = self.stub.ListTasks(pb.ListTasksRequest(
                    task_type_filter=t, page_size=1000, page_token=token), timeout=RPC_TIMEOUT)
                tasks.update((x.id, x) for x in page.tasks)
                token = page.next_page_token
                if not token:
                    break
        return tasks

    # ---------------------------------------------------------------- test
    def test_remote_soak(self):
        print("remote soak: %d tasks at %.0f/s, seed %d" % (TASKS, RATE, SEED))
        watch = Watch(self.stub)
        time.sleep(0.5)  # the watcher is registered before the first submit
        for slot in range(len(WORKER_TYPES)):
            self.spawn(slot)
        helpers = [threading.Thread(target=f, daemon=True) for f in (self.chaos, self.canceller)]
        for h in helpers:
            h.start()
        started = time.monotonic()
        took = self.submit_all()
        print("submitted %d tasks in %.1f s" % (TASKS, took))

        def unfinished():
            by = self.stub.GetQueueStatus(pb.GetQueueStatusRequest(),
                                          timeout=RPC_TIMEOUT).tasks_by_status
            return by["scheduled"] + by["queued"] + by["running"]
        deadline = time.monotonic() + 120 + TASKS / 50
        left = unfinished()
        while left and time.monotonic() < deadline:
            time.sleep(0.5)
            left = unfinished()
        self.stop.set()
        for h in helpers:
            h.join(30)
        elapsed = time.monotonic() - started
        self.assertEqual(left, 0, "tasks still unfinished at the deadline")
        # Let the watcher catch up with the last events.
        time.sleep(1.0)

        tasks = self.list_all()
        self.check(tasks, watch, elapsed)

        # The workers are all alive, and stop cleanly on SIGTERM.
        for wid, proc in self.workers.values():
            self.assertIsNone(proc.poll(), "worker %s died" % wid)
            proc.send_signal(signal.SIGTERM)
        for wid, proc in self.workers.values():
            self.assertEqual(proc.wait(30), 0, "worker %s exit code" % wid)
        watch.call.cancel()
        self.channel.close()
        self.server.send_signal(signal.SIGTERM)
        self.assertEqual(self.server.wait(60), 0, "oee-server exit code")

    def check(self, tasks, watch, elapsed):
        submitted = self.submitted
        missing = sorted(set(submitted) - set(tasks))
        extra = sorted(set(tasks) - set(submitted))
        self.assertEqual((missing[:10], len(missing)), ([], 0), "submitted tasks missing")
        self.assertEqual((extra[:10], len(extra)), ([], 0), "tasks nobody submitted")

        events = {}
        for seq, task_id, status, attempt in watch.events:
            events.setdefault(task_id, []).append((seq, status, attempt))
        seqs = [e[0] for e in watch.events]
        problems = []
        if watch.error is not None:
            problems.append("watch stream ended: %s" % watch.error.code().name)
        if any(a >= b for a, b in zip(seqs, seqs[1:])):
            problems.append("watch sequences not strictly increasing")

        counts = {}
        retried = 0
        for task_id, (kind, max_attempts, message, fail_message) in submitted.items():
            t = tasks[task_id]
            status, why = t.status, t.error_message
            counts[(kind, S.Name(status))] = counts.get((kind, S.Name(status)), 0) + 1
            retried += t.attempt > 1

            def bad(what):
                problems.append("%s (%s, %s, attempt %d/%d, error %r): %s; events %s" % (
                    task_id, kind, S.Name(status), t.attempt, max_attempts, why, what,
                    [(e[0], S.Name(e[1])[12:], e[2]) for e in events.get(task_id, [])]))
            cancel = self.cancels.get(task_id)
            if status not in FINAL:
                bad("not final")
                continue
            if not 0 <= t.attempt <= max_attempts or t.max_attempts != max_attempts:
                bad("attempt out of range")
            if status == DONE:
                if kind != "ok":
                    bad("a failing task ended DONE")
                if t.result != message.upper() or why:
                    bad("DONE with result %r" % t.result)
                if cancel is not None and cancel != RUNNING:
                    bad("DONE although cancelled while %s" % S.Name(cancel))
            elif status == ERROR:
                if cancel is not None and cancel != RUNNING:
                    bad("ERROR although cancelled while %s" % S.Name(cancel))
                elif cancel is not None:
                    bad("ERROR although cancelled while RUNNING (want CANCELLED or DONE)")
                expired = bool(EXPIRED_RE.match(why))
                if not expired and (kind == "ok" or why != fail_message):
                    bad("unexpected error message")
                if (kind != "permanent" or expired) and t.attempt != max_attempts:
                    bad("a retryable failure ended ERROR with attempts left")
            elif cancel is None:
                bad("CANCELLED but never cancelled")

            evs = events.get(task_id)
            if not evs:
                bad("no watch events")
                continue
            sts = [e[1] for e in evs]
            if sts[0] != QUEUED:
                bad("first event %s" % S.Name(sts[0]))
            for a, b in zip(sts, sts[1:]):
                if b not in NEXT.get(a, ()):
                    bad("event %s after %s" % (S.Name(b), S.Name(a)))
            if sts[-1] != status:
                bad("last event %s" % S.Name(sts[-1]))
            runs = [e[2] for e in evs if e[1] == RUNNING]
            if runs != list(range(1, len(runs) + 1)) or len(runs) != t.attempt:
                bad("RUNNING events of attempts %s" % runs)

        print("remote soak: %d tasks in %.1f s (%.0f/s), %d worker kills, %d cancels "
              "accepted, %d tasks ran more than once, %d events watched"
              % (len(submitted), elapsed, len(submitted) / elapsed, self.kills,
                 len(self.cancels), retried, len(watch.events)))
        replies = {}
        for st in self.cancels.values():
            replies[S.Name(st)] = replies.get(S.Name(st), 0) + 1
        print("  accepted cancels by the status in their reply: %s" % replies)
        for key in sorted(counts):
            print("  %-10s %-22s %6d" % (key[0], key[1], counts[key]))
        for p in problems[:30]:
            print("PROBLEM: " + p, file=sys.stderr)
        self.assertEqual(len(problems), 0, "%d problems, first: %s" % (
            len(problems), problems[:5]))


if __name__ == "__main__":
    unittest.main(verbosity=2)
