"""Task semantics of oee-server over the wire, through the generated stubs.

Covers API.md's "Task semantics" section and the part 2 rules that go with
it: retries and their backoff as WatchTasks shows them, permanent failures,
timeouts, run_at, a 10,000-task dependency graph submitted in one
SubmitTasks call, dependencies already finished at submit, refusals,
cancellation down a graph, RetryTask, and idempotency keys across a restart.

The real //server:oee-server is started on a free port with
tests/python/test_config.json (two workers; max_batch is the default
10,000, which the graph test uses in full). It runs on the default store
(sqlite) in a data directory of its own, or with --store $OEE_TEST_STORE
when that is set (the test_semantics_wire_memory target sets "memory").

Times are compared on the server's own timestamps. Waits follow events or
poll with short sleeps up to a generous deadline (the machine is shared).
"""

import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest
import uuid

import grpc

from oee.v1 import orchestrator_pb2 as pb
from oee.v1 import orchestrator_pb2_grpc as pb_grpc

import test_wire
from test_wire import runfile, wait_until

RPC_TIMEOUT = 15.0
WAIT_TIMEOUT = 30.0
POLL = 0.02
# Clock granularity allowed below a lower bound, and lateness allowed above
# an upper bound (a loaded machine), in seconds.
EARLY_SLACK = 0.02
LATE_SLACK = 0.15

STORE = os.environ.get("OEE_TEST_STORE") or "sqlite"

S = pb.TaskStatus
SCHEDULED, QUEUED, RUNNING, DONE, ERROR, CANCELLED = (
    S.Value("TASK_STATUS_" + n)
    for n in ("SCHEDULED", "QUEUED", "RUNNING", "DONE", "ERROR", "CANCELLED"))
FINAL = (DONE, ERROR, CANCELLED)
IA = grpc.StatusCode.INVALID_ARGUMENT


def secs(ts):
    """A Timestamp as float seconds."""
    return ts.seconds + ts.nanos / 1e9


def names(statuses):
    return [S.Name(s) for s in statuses]


class Server(object):
    """One oee-server process; start() can be called again after stop() and
    then reuses the same data directory (a restart)."""

    def __init__(self, label):
        self.label = label
        self.data_dir = None
        if STORE != "memory":
            self.data_dir = tempfile.mkdtemp(prefix="oee-sem-%s-" % label,
                                             dir=os.environ.get("TEST_TMPDIR"))
        self.outdir = os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR") or tempfile.mkdtemp()
        self.runs = 0
        self.proc = None

    def start(self):
        self.runs += 1
        base = os.path.join(self.outdir, "%s.%d.oee-server" % (self.label, self.runs))
        self.log_path = base + ".log"
        args = [runfile("server/oee-server"), "--listen", "127.0.0.1:0",
                "--config", runfile("tests/python/test_config.json"), "--store", STORE]
        if self.data_dir:
            args += ["--data-dir", self.data_dir]
        env = {k: v for k, v in os.environ.items() if not k.startswith("OEE_")}
        with open(base + ".stdout", "wb") as out, open(self.log_path, "wb") as err:
            self.proc = subprocess.Popen(args, stdout=out, stderr=err, env=env)

        def port():
            if self.proc.poll() is not None:
                raise AssertionError("oee-server exited with %s at startup: %s"
                                     % (self.proc.returncode, self.log_tail()))
            with open(base + ".stdout") as f:
                m = re.search(r"oee-server listening on port (\d+)", f.read())
            return m and int(m.group(1))

        addr = "127.0.0.1:%d" % wait_until(port, 60, "the 'listening on port' line")
        # The graph test's SubmitTasks reply carries 10,000 tasks: more than
        # grpcio's default 4 MiB receive limit allows.
        self.channel = grpc.insecure_channel(
            addr, options=[("grpc.max_receive_message_length", 64 << 20)])
        grpc.channel_ready_future(self.channel).result(timeout=60)
        self.stub = pb_grpc.OrchestratorServiceStub(self.channel)
        return self.stub

    def log_tail(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-3000:]
        except OSError:
            return "(no log)"

    def stop(self):
        """SIGTERM, then the exit code (killed after 60 s: "timeout")."""
        self.channel.close()
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return "timeout"

    def remove(self):
        if self.data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)


class Watcher(test_wire.Watcher):
    """test_wire's stream reader, waiting for one task's status."""

    def wait_status(self, task_id, status, timeout=WAIT_TIMEOUT):
        """Waits for an event of task_id with status; returns its events."""
        self.wait_for(self.has_status(task_id, status), timeout,
                      "a %s event for %s" % (S.Name(status), task_id))
        return self.of(task_id)

    def close(self):
        self.cancel()


class SemanticsTest(unittest.TestCase):
    """Everything but the restart, on one server shared by the tests."""

    @classmethod
    def setUpClass(cls):
        cls.server = Server("semantics")
        cls.addClassCleanup(cls.server.remove)
        cls.stub = cls.server.start()

    @classmethod
    def tearDownClass(cls):
        code = cls.server.stop()
        if code != 0:
            raise AssertionError("oee-server exit code after SIGTERM = %s, want 0; log: %s"
                                 % (code, cls.server.log_tail()))

    # ------------------------------------------------------------ helpers
    def submit(self, task_type, context=None, name=None, **kw):
        req = pb.SubmitTaskRequest(name=name or "sem-" + task_type, task_type=task_type,
                                   context=context or {}, **kw)
        return self.stub.SubmitTask(req, timeout=RPC_TIMEOUT)

    def get(self, task_id):
        return self.stub.GetTask(pb.GetTaskRequest(task_id=task_id), timeout=RPC_TIMEOUT)

    def wait_final(self, task_id, after=None):
        """Polls until the task is DONE, ERROR or CANCELLED (with `after`, a
        Timestamp: and started later than that); returns it."""
        def check():
            t = self.get(task_id)
            if t.status not in FINAL:
                return None
            if after is not None and t.started_at.ToNanoseconds() <= after.ToNanoseconds():
                return None
            return t
        return wait_until(check, what="task %s to finish" % task_id)

    def watch(self, task_types):
        """A watcher of these types, returned once the server has it: a probe
        echo (the watcher also gets "echo") is submitted until its QUEUED
        event arrives."""
        w = Watcher(self.stub, pb.WatchTasksRequest(task_types=list(task_types) + ["echo"]))
        self.addCleanup(w.close)
        deadline = time.monotonic() + WAIT_TIMEOUT
        while time.monotonic() < deadline:
            probe = self.submit("echo", name="probe").task_id
            try:
                w.wait_status(probe, QUEUED, timeout=1.0)
                return w
            except AssertionError:
                if w.ended:
                    raise
        raise AssertionError("the watcher never became live")

    def assertCode(self, code, fn, request):
        with self.assertRaises(grpc.RpcError) as cm:
            fn(request, timeout=RPC_TIMEOUT)
        self.assertEqual(cm.exception.code(), code, cm.exception.details())
        return cm.exception.details()

    def total_tasks(self):
        return self.stub.GetQueueStatus(pb.GetQueueStatusRequest(),
                                        timeout=RPC_TIMEOUT).total_tasks

    # -------------------------------------------------------------- tests
    def test_retries_event_sequence_and_backoff(self):
        # Backoff 0.2 s capped at 0.3 s: retry 1 waits 0.2 * [0.5, 1], retry
        # 2 min(0.3, 0.4) * [0.5, 1] (so the cap is exercised too).
        base, cap = 0.2, 0.3
        w = self.watch(["fail"])
        r = self.submit("fail", {"message": "broken on purpose"}, max_attempts=3,
                        backoff_seconds=base, max_backoff_seconds=cap)
        events = w.wait_status(r.task_id, ERROR)
        self.assertEqual(names(e.task.status for e in events), names(
            [QUEUED, RUNNING, SCHEDULED, QUEUED, RUNNING, SCHEDULED, QUEUED, RUNNING, ERROR]))
        seqs = [e.sequence for e in events]
        self.assertEqual(seqs, sorted(set(seqs)), "sequence must strictly increase")
        runs = [e for e in events if e.task.status == RUNNING]
        self.assertEqual([e.task.attempt for e in runs], [1, 2, 3])
        scheduled = [e for e in events if e.task.status == SCHEDULED]
        for n, (sched, nxt) in enumerate(zip(scheduled, runs[1:]), start=1):
            self.assertTrue(sched.task.HasField("run_at"), "retry %d: run_at unset" % n)
            self.assertEqual(sched.task.error_message, "broken on purpose")
            self.assertEqual(sched.task.attempt, n)
            # The wait from the failure to the next start, and the due time
            # the server chose, are both within min(cap, base * 2^(n-1)) *
            # [0.5, 1.0]. The SCHEDULED event's time is the failed attempt's
            # started_at (the server derives it so), which for `fail` is the
            # moment of the failure: the attempt ends as it starts.
            delay = min(cap, base * 2 ** (n - 1))
            lo, hi = 0.5 * delay - EARLY_SLACK, delay + LATE_SLACK
            gap = secs(nxt.task.started_at) - secs(sched.time)
            self.assertTrue(lo <= gap <= hi, "retry %d: started %.3f s after the failure, "
                            "want %.3f..%.3f" % (n, gap, lo, hi))
            due = secs(sched.task.run_at) - secs(sched.time)
            self.assertTrue(lo <= due <= delay + EARLY_SLACK,
                            "retry %d: run_at %.3f s after the failure" % (n, due))
            self.assertGreaterEqual(secs(nxt.task.started_at),
                                    secs(sched.task.run_at) - EARLY_SLACK)
        t = self.get(r.task_id)
        self.assertEqual((t.status, t.attempt, t.max_attempts), (ERROR, 3, 3))
        self.assertEqual(t.error_message, "broken on purpose")

    def test_permanent_failure_is_not_retried(self):
        w = self.watch(["fail"])
        r = self.submit("fail", {"message": "no hope", "permanent": "true"},
                        max_attempts=3, backoff_seconds=0.05)
        events = w.wait_status(r.task_id, ERROR)
        self.assertEqual(names(e.task.status for e in events),
                         names([QUEUED, RUNNING, ERROR]))
        t = self.get(r.task_id)
        self.assertEqual((t.status, t.attempt, t.error_message), (ERROR, 1, "no hope"))

    def test_timeout_fails_each_attempt(self):
        w = self.watch(["sleep"])
        r = self.submit("sleep", {"seconds": "2"}, max_attempts=2, timeout_seconds=0.3,
                        backoff_seconds=0.1, max_backoff_seconds=0.1)
        events = w.wait_status(r.task_id, ERROR)
        self.assertEqual(names(e.task.status for e in events), names(
            [QUEUED, RUNNING, SCHEDULED, QUEUED, RUNNING, ERROR]))
        sched, last = events[2].task, events[-1].task
        self.assertEqual(sched.error_message, "timed out after 0.3 s")
        # Attempt 1 was stopped at 0.3 s, not after its 2 s: its retry is
        # due 0.3 s + the backoff (0.05..0.1 s) after it started.
        due = secs(sched.run_at) - secs(sched.started_at)
        self.assertTrue(0.35 - EARLY_SLACK <= due <= 0.4 + LATE_SLACK, "due after %.3f s" % due)
        self.assertEqual((last.attempt, last.error_message), (2, "timed out after 0.3 s"))
        ran = secs(last.completed_at) - secs(last.started_at)
        self.assertTrue(0.3 - EARLY_SLACK <= ran <= 0.3 + LATE_SLACK, "ran %.3f s" % ran)
        self.assertEqual(self.get(r.task_id).status, ERROR)

    def test_run_at_delays_the_start(self):
        w = self.watch([])
        req = pb.SubmitTaskRequest(name="later", task_type="echo", context={"message": "m"})
        # The server's clock: the created_at of a task it just made.
        now = secs(self.submit("echo", name="clock").task.created_at)
        req.run_at.FromNanoseconds(int((now + 1.5) * 1e9))
        r = self.stub.SubmitTask(req, timeout=RPC_TIMEOUT)
        self.assertEqual(r.task.status, SCHEDULED)
        self.assertEqual(r.task.run_at, req.run_at)
        self.assertEqual(self.get(r.task_id).status, SCHEDULED)
        self.assertGreaterEqual(self.stub.GetQueueStatus(
            pb.GetQueueStatusRequest(), timeout=RPC_TIMEOUT).tasks_by_status["scheduled"], 1)
        events = w.wait_status(r.task_id, DONE)
        self.assertEqual(names(e.task.status for e in events),
                         names([SCHEDULED, QUEUED, RUNNING, DONE]))
        late = secs(events[2].task.started_at) - secs(req.run_at)
        self.assertTrue(0 <= late <= 0.05, "started %.3f s after run_at" % late)

    def test_dependency_graph_of_10000(self):
        n, rng = 10000, random.Random(20240611)
        # Each entry depends on 0..3 distinct entries among the 100 before
        # it (a window keeps the graph deep: chains run end to end). Three
        # entries in the middle fail, none downstream of another (so each
        # really runs and fails); they cancel a few thousand others.
        deps = []
        for i in range(n):
            lo = max(0, i - 100)
            deps.append(rng.sample(range(lo, i), min(rng.randint(0, 3), i - lo)))

        def downstream(roots):
            below = [False] * n
            for i in range(n):
                below[i] = any(d in roots or below[d] for d in deps[i])
            return below
        failing = set()
        for i in sorted(rng.sample(range(4000, 6000), 50)):
            if len(failing) < 3 and not downstream(failing)[i]:
                failing.add(i)
        requests = []
        for i in range(n):
            if i in failing:
                entry = pb.SubmitTaskRequest(name="g%d" % i, task_type="fail",
                                             context={"message": "g%d failed" % i},
                                             max_attempts=1)
            else:
                entry = pb.SubmitTaskRequest(name="g%d" % i, task_type="echo",
                                             context={"message": str(i)})
            entry.depends_on.extend("#%d" % d for d in deps[i])
            requests.append(entry)
        results = self.stub.SubmitTasks(pb.SubmitTasksRequest(requests=requests),
                                        timeout=60).results
        self.assertEqual(len(results), n)
        self.assertEqual([i for i, x in enumerate(results) if x.code != 0], [])
        ids = [x.task_id for x in results]
        for i, x in enumerate(results):
            self.assertEqual(list(x.task.depends_on), [ids[d] for d in deps[i]], "entry %d" % i)

        def unfinished():
            by = self.stub.GetQueueStatus(pb.GetQueueStatusRequest(),
                                          timeout=RPC_TIMEOUT).tasks_by_status
            return by["scheduled"] + by["queued"] + by["running"]
        wait_until(lambda: unfinished() == 0, 60, "the graph to finish")

        tasks, token = {}, ""
        while True:
            page = self.stub.ListTasks(pb.ListTasksRequest(page_size=1000, page_token=token),
                                       timeout=RPC_TIMEOUT)
            tasks.update((t.id, t) for t in page.tasks)
            token = page.next_page_token
            if not token:
                break
        got = [tasks[i] for i in ids]

        # Expected: an entry with a failed or cancelled dependency is
        # cancelled; otherwise a failing entry errs and the rest are DONE.
        want = []
        for i in range(n):
            if any(want[d] in (ERROR, CANCELLED) for d in deps[i]):
                want.append(CANCELLED)
            else:
                want.append(ERROR if i in failing else DONE)
        self.assertEqual(want.count(ERROR), 3)
        self.assertGreater(want.count(CANCELLED), 100)
        self.assertGreater(want.count(DONE), 1000)
        wrong = [(i, S.Name(got[i].status), S.Name(want[i])) for i in range(n)
                 if got[i].status != want[i]]
        self.assertEqual(wrong[:20], [], "%d tasks in the wrong status" % len(wrong))

        for i, t in enumerate(got):
            if t.status == DONE:
                for d in deps[i]:
                    self.assertGreaterEqual(t.started_at.ToNanoseconds(),
                                            got[d].completed_at.ToNanoseconds(),
                                            "entry %d started before entry %d ended" % (i, d))
            elif t.status == CANCELLED:
                m = re.fullmatch(r"dependency (\S+) ended (ERROR|CANCELLED)", t.error_message)
                self.assertIsNotNone(m, "entry %d: %r" % (i, t.error_message))
                named = [d for d in deps[i] if ids[d] == m.group(1)]
                self.assertEqual(len(named), 1, "entry %d names %s" % (i, m.group(1)))
                self.assertEqual(S.Name(got[named[0]].status), "TASK_STATUS_" + m.group(2))
            else:
                self.assertEqual(t.error_message, "g%d failed" % i)

    def test_dependency_finished_before_submit(self):
        failed = self.submit("fail", {"message": "x"}, max_attempts=1).task_id
        done = self.submit("echo", {"message": "ok"}).task_id
        self.assertEqual(self.wait_final(failed).status, ERROR)
        self.assertEqual(self.wait_final(done).status, DONE)
        r = self.submit("echo", depends_on=[failed])
        self.assertEqual(r.task.status, CANCELLED)
        self.assertEqual(r.task.error_message, "dependency %s ended ERROR" % failed)
        self.assertEqual(self.get(r.task_id).status, CANCELLED)
        # On a CANCELLED one, and mixed with a DONE one.
        r2 = self.submit("echo", depends_on=[done, r.task_id])
        self.assertEqual((r2.task.status, r2.task.error_message),
                         (CANCELLED, "dependency %s ended CANCELLED" % r.task_id))
        # A DONE dependency is satisfied: the task goes on at once.
        r3 = self.submit("echo", {"message": "after"}, depends_on=[done])
        self.assertIn(r3.task.status, (QUEUED, RUNNING, DONE))
        self.assertEqual(list(r3.task.depends_on), [done])
        t = self.wait_final(r3.task_id)
        self.assertEqual((t.status, t.result), (DONE, "after"))

    def test_dependency_refusals_create_nothing(self):
        before = self.total_tasks()
        done = self.submit("echo").task_id
        before += 1
        unknown = str(uuid.uuid4())
        details = self.assertCode(IA, self.stub.SubmitTask, pb.SubmitTaskRequest(
            name="x", task_type="echo", depends_on=[done, unknown]))
        self.assertIn(unknown, details)
        for bad in ("not-a-uuid", "", done[:-1]):
            details = self.assertCode(IA, self.stub.SubmitTask, pb.SubmitTaskRequest(
                name="x", task_type="echo", depends_on=[bad]))
            self.assertIn('depends_on[0] "%s"' % bad, details)
        self.assertEqual(self.total_tasks(), before)

    def test_cancel_cascades_to_dependents(self):
        # root waits for a time far ahead; a, b, c form a chain behind it.
        req = pb.SubmitTaskRequest(name="root", task_type="echo")
        req.run_at.FromSeconds(int(time.time()) + 3600)
        root = self.stub.SubmitTask(req, timeout=RPC_TIMEOUT).task_id
        a = self.submit("echo", name="a", depends_on=[root]).task_id
        b = self.submit("echo", name="b", depends_on=[a]).task_id
        c = self.submit("echo", name="c", depends_on=[b, root]).task_id
        t = self.get(a)
        self.assertEqual(t.status, SCHEDULED)
        self.assertFalse(t.HasField("run_at"), "run_at set while it waits for dependencies")
        reply = self.stub.CancelTask(pb.CancelTaskRequest(task_id=a), timeout=RPC_TIMEOUT)
        self.assertTrue(reply.cancelled)
        self.assertEqual(self.wait_final(a).status, CANCELLED)
        for task_id, dep in ((b, a), (c, b)):
            t = self.wait_final(task_id)
            self.assertEqual((t.status, t.error_message),
                             (CANCELLED, "dependency %s ended CANCELLED" % dep))
            self.assertFalse(t.HasField("started_at"))
        self.assertEqual(self.get(root).status, SCHEDULED)
        self.assertTrue(self.stub.CancelTask(pb.CancelTaskRequest(task_id=root),
                                             timeout=RPC_TIMEOUT).cancelled)

    def test_retry_task(self):
        r = self.submit("fail", {"message": "again"}, max_attempts=2, backoff_seconds=0.05)
        first = self.wait_final(r.task_id)
        self.assertEqual((first.status, first.attempt), (ERROR, 2))
        t = self.stub.RetryTask(pb.RetryTaskRequest(task_id=r.task_id), timeout=RPC_TIMEOUT)
        self.assertEqual((t.id, t.status, t.attempt, t.max_attempts),
                         (r.task_id, QUEUED, 0, 2))
        # It runs again, all its attempts.
        again = self.wait_final(r.task_id, after=first.started_at)
        self.assertEqual((again.status, again.attempt, again.error_message),
                         (ERROR, 2, "again"))
        self.assertGreater(again.started_at.ToNanoseconds(), first.completed_at.ToNanoseconds())
        # A CANCELLED task is checked again like a fresh submit: while its
        # dependency is still CANCELLED it ends CANCELLED at once; once the
        # dependency is retried too, it waits for it and both end DONE.
        req = pb.SubmitTaskRequest(name="dep", task_type="echo")
        req.run_at.FromNanoseconds(time.time_ns() + 2 * 10**9)
        dep = self.stub.SubmitTask(req, timeout=RPC_TIMEOUT).task_id
        self.stub.CancelTask(pb.CancelTaskRequest(task_id=dep), timeout=RPC_TIMEOUT)
        self.assertEqual(self.wait_final(dep).status, CANCELLED)
        child = self.submit("echo", {"message": "child"}, depends_on=[dep]).task_id
        gone = "dependency %s ended CANCELLED" % dep
        c = self.get(child)
        self.assertEqual((c.status, c.error_message), (CANCELLED, gone))
        t = self.stub.RetryTask(pb.RetryTaskRequest(task_id=child), timeout=RPC_TIMEOUT)
        self.assertEqual((t.status, t.error_message), (CANCELLED, gone))
        t = self.stub.RetryTask(pb.RetryTaskRequest(task_id=dep), timeout=RPC_TIMEOUT)
        self.assertEqual((t.status, t.attempt), (SCHEDULED, 0))  # its run_at is still ahead
        t = self.stub.RetryTask(pb.RetryTaskRequest(task_id=child), timeout=RPC_TIMEOUT)
        self.assertEqual(t.status, SCHEDULED)  # waits for dep
        done_child, done_dep = self.wait_final(child), self.get(dep)
        self.assertEqual((done_child.status, done_child.result, done_dep.status),
                         (DONE, "child", DONE))
        self.assertGreaterEqual(done_child.started_at.ToNanoseconds(),
                                done_dep.completed_at.ToNanoseconds())
        # Refusals.
        done = self.wait_final(self.submit("echo").task_id)
        self.assertEqual(done.status, DONE)
        self.assertCode(grpc.StatusCode.FAILED_PRECONDITION, self.stub.RetryTask,
                        pb.RetryTaskRequest(task_id=done.id))
        self.assertEqual(self.get(done.id), done)
        self.assertCode(grpc.StatusCode.NOT_FOUND, self.stub.RetryTask,
                        pb.RetryTaskRequest(task_id=str(uuid.uuid4())))
        self.assertCode(IA, self.stub.RetryTask, pb.RetryTaskRequest(task_id="nope"))

    def test_retry_task_refusals_leave_the_task(self):
        # RetryTask on a task that is not ERROR or CANCELLED: the exact
        # message of core/retry.c, and the task exactly as it was. Two long
        # sleeps hold both workers (RUNNING), so an echo waits QUEUED; one
        # waits SCHEDULED for a run_at an hour ahead; one ended DONE.
        FP = grpc.StatusCode.FAILED_PRECONDITION
        done = self.wait_final(self.submit("echo").task_id)
        self.assertEqual(done.status, DONE)
        sleeps = [self.submit("sleep", {"seconds": "60"}, name="hold").task_id for _ in range(2)]
        try:
            for task_id in sleeps:
                wait_until(lambda: self.get(task_id).status == RUNNING,
                           what="sleep %s to run" % task_id)
            queued = self.submit("echo", name="waits").task_id
            req = pb.SubmitTaskRequest(name="later", task_type="echo")
            req.run_at.FromSeconds(int(time.time()) + 3600)
            scheduled = self.stub.SubmitTask(req, timeout=RPC_TIMEOUT).task_id
            rows = [(queued, QUEUED, "queued"), (sleeps[0], RUNNING, "running"),
                    (scheduled, SCHEDULED, "scheduled"), (done.id, DONE, "done")]
            for task_id, status, name in rows:
                before = self.get(task_id)
                self.assertEqual(before.status, status, name)
                details = self.assertCode(FP, self.stub.RetryTask,
                                          pb.RetryTaskRequest(task_id=task_id))
                self.assertEqual(details, "task %s is %s: only ERROR or CANCELLED tasks can "
                                 "be retried" % (task_id, name))
                self.assertEqual(self.get(task_id), before, name)
            self.stub.CancelTask(pb.CancelTaskRequest(task_id=scheduled), timeout=RPC_TIMEOUT)
        finally:
            for task_id in sleeps:
                self.stub.CancelTask(pb.CancelTaskRequest(task_id=task_id), timeout=RPC_TIMEOUT)
        for task_id in sleeps + [queued]:
            self.wait_final(task_id)

    def test_number_and_size_refusals_create_nothing(self):
        # Part 2: every double finite and in range; max_attempts 1..100; a
        # key of at most 256 bytes; at most max_dependencies (default 64)
        # ids. Each refusal is INVALID_ARGUMENT naming the field, in
        # SubmitTask and in a SubmitTasks entry, and creates nothing.
        nan, inf = float("nan"), float("inf")
        ids = [str(uuid.uuid4()) for _ in range(65)]
        rows = [
            (dict(backoff_seconds=nan), "backoff_seconds must be a finite number >= 0, got nan"),
            (dict(backoff_seconds=inf), "backoff_seconds must be a finite number >= 0, got inf"),
            (dict(max_backoff_seconds=nan),
             "max_backoff_seconds must be a finite number >= 0, got nan"),
            (dict(max_backoff_seconds=-inf),
             "max_backoff_seconds must be a finite number >= 0, got -inf"),
            (dict(timeout_seconds=nan),
             "timeout_seconds must be a finite number >= 0 (0 = none), got nan"),
            (dict(timeout_seconds=inf),
             "timeout_seconds must be a finite number >= 0 (0 = none), got inf"),
            (dict(max_attempts=101), "max_attempts must be 1..100, got 101"),
            (dict(idempotency_key="k" * 257), "idempotency_key is 257 bytes; at most 256"),
            (dict(depends_on=ids), "depends_on has 65 ids; at most 64 are allowed"),
        ]
        before = self.total_tasks()
        for fields, want in rows:
            req = pb.SubmitTaskRequest(name="bad", task_type="echo", **fields)
            self.assertEqual(self.assertCode(IA, self.stub.SubmitTask, req), want)
            results = self.stub.SubmitTasks(pb.SubmitTasksRequest(requests=[req]),
                                            timeout=RPC_TIMEOUT).results
            self.assertEqual([(r.code, r.message, r.task_id) for r in results],
                             [(IA.value[0], want, "")])
        self.assertEqual(self.total_tasks(), before)
        # The limits themselves are accepted (the same fields, one step in).
        ok = self.submit("echo", max_attempts=100, idempotency_key="k" * 256,
                         timeout_seconds=1e9, backoff_seconds=0)
        self.assertFalse(ok.duplicate)
        self.assertEqual(self.total_tasks(), before + 1)


# The memory store keeps nothing across a restart, so the idempotency key
# cannot survive one there: this test exists only in the sqlite variant.
if STORE != "memory":
    class RestartTest(unittest.TestCase):
        """sqlite store only: an idempotency key outlives a server restart."""

        def test_idempotency_key_survives_restart(self):
            server = Server("restart")
            self.addCleanup(server.remove)
            req = pb.SubmitTaskRequest(name="keyed", task_type="echo",
                                       idempotency_key="k-restart")
            stub = server.start()
            try:
                first = stub.SubmitTask(req, timeout=RPC_TIMEOUT)
                self.assertFalse(first.duplicate)
            finally:
                self.assertEqual(server.stop(), 0, server.log_tail())
            stub = server.start()
            try:
                again = stub.SubmitTask(req, timeout=RPC_TIMEOUT)
                self.assertTrue(again.duplicate)
                self.assertEqual(again.task_id, first.task_id)
                self.assertEqual(again.task.id, first.task_id)
                self.assertEqual(stub.GetQueueStatus(pb.GetQueueStatusRequest(),
                                                     timeout=RPC_TIMEOUT).total_tasks, 1)
            finally:
                self.assertEqual(server.stop(), 0, server.log_tail())


if __name__ == "__main__":
    unittest.main(verbosity=2)
