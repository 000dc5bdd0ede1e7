"""Wire-level tests of oee-server through the standard generated Python stubs.

The real //server:oee-server binary is started on a free port with
tests/python/test_config.json, and every check goes through grpcio and the
protoc-generated `oee.v1` stubs (or raw bytes on a grpcio channel), so a pass
means any standard gRPC client can talk to the server as API.md describes.

Each server runs on the default store (sqlite) in a data directory of its
own, removed afterwards; with OEE_TEST_STORE set (the test_wire_memory target
sets "memory") it gets --store $OEE_TEST_STORE instead.

All waits poll with short sleeps up to a generous deadline: the tests must
hold on a loaded 2-core machine.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid

import grpc

from oee.v1 import orchestrator_pb2 as pb
from oee.v1 import orchestrator_pb2_grpc as pb_grpc

# Deadlines (seconds). Generous: the machine may be busy with other builds.
RPC_TIMEOUT = 15.0
WAIT_TIMEOUT = 45.0
POLL = 0.02

SERVICE = "/oee.v1.OrchestratorService/"
UUID7_RE = re.compile(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

S = pb.TaskStatus
QUEUED, RUNNING, DONE, ERROR, CANCELLED = (
    S.Value("TASK_STATUS_QUEUED"), S.Value("TASK_STATUS_RUNNING"),
    S.Value("TASK_STATUS_DONE"), S.Value("TASK_STATUS_ERROR"),
    S.Value("TASK_STATUS_CANCELLED"))
FINAL = (DONE, ERROR, CANCELLED)
STAGE_DONE = pb.StageStatus.Value("STAGE_STATUS_DONE")
STAGE_ERROR = pb.StageStatus.Value("STAGE_STATUS_ERROR")
STAGE_SKIPPED = pb.StageStatus.Value("STAGE_STATUS_SKIPPED")
STAGE_CANCELLED = pb.StageStatus.Value("STAGE_STATUS_CANCELLED")


def status_name(value):
    return S.Name(value)


def runfile(path):
    """Absolute path of a runfile of the main repository ("oee")."""
    root = os.environ.get("TEST_SRCDIR")
    if not root:
        raise RuntimeError("TEST_SRCDIR is not set: run this with bazel test")
    return os.path.join(root, "oee", path)


def storage_args(prefix):
    """The storage flags of a server: --store $OEE_TEST_STORE when set, and
    --data-dir with a new directory unless the store is memory; also
    --io-threads $OEE_TEST_IO_THREADS when set (the _memory targets serve on
    4 threads, more than this machine's cores, the others on the default).
    Returns (flags, directory or None); the caller removes the directory."""
    store = os.environ.get("OEE_TEST_STORE")
    flags = ["--store", store] if store else []
    if os.environ.get("OEE_TEST_IO_THREADS"):
        flags += ["--io-threads", os.environ["OEE_TEST_IO_THREADS"]]
    if store == "memory":
        return flags, None
    data_dir = tempfile.mkdtemp(prefix=prefix, dir=os.environ.get("TEST_TMPDIR"))
    return flags + ["--data-dir", data_dir], data_dir


def wait_until(predicate, timeout=WAIT_TIMEOUT, what="condition"):
    """Polls predicate() until it returns a truthy value; returns that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.0fs waiting for %s"
                                 % (timeout, what))
        time.sleep(POLL)


class Watcher(object):
    """Reads a WatchTasks stream on a thread and keeps every event."""

    def __init__(self, stub, request):
        self.call = stub.WatchTasks(request)
        self.events = []
        self.error = None
        self.ended = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        try:
            for event in self.call:
                with self._cond:
                    self.events.append(event)
                    self._cond.notify_all()
        except grpc.RpcError as e:
            with self._cond:
                self.error = e
        finally:
            with self._cond:
                self.ended = True
                self._cond.notify_all()

    def snapshot(self):
        with self._cond:
            return list(self.events)

    def wait_for(self, predicate, timeout=WAIT_TIMEOUT, what="events"):
        """Waits until predicate(events) is true; fails on timeout or end."""
        with self._cond:
            ok = self._cond.wait_for(
                lambda: predicate(self.events) or self.ended, timeout)
            if predicate(self.events):
                return list(self.events)
            raise AssertionError(
                "watcher: %s not seen (ended=%s error=%r ok=%s); got %d events"
                % (what, self.ended, self.error, ok, len(self.events)))

    def wait_ended(self, timeout=WAIT_TIMEOUT):
        with self._cond:
            self._cond.wait_for(lambda: self.ended, timeout)
            return self.ended

    def of(self, task_id):
        return [e for e in self.snapshot() if e.task.id == task_id]

    def has_status(self, task_id, status):
        return lambda events: any(e.task.id == task_id and e.task.status == status
                                  for e in events)

    def cancel(self):
        self.call.cancel()
        self._thread.join(10)


class ServerTestCase(unittest.TestCase):
    """Starts one oee-server per test class with the class's CONFIG and stops
    it with SIGTERM afterwards (exit code must be 0). Holds the helpers."""
    CONFIG = "test_config.json"
    METADATA = ()  # sent with setUpClass's own call (a server with tokens)
    EXTRA_ARGS = ()  # more flags for the server (e.g. --metrics-listen)
    server = None
    stub = None

    # ------------------------------------------------------------------
    # Server lifecycle
    # ------------------------------------------------------------------
    @classmethod
    def setUpClass(cls):
        binary = runfile("server/oee-server")
        config = runfile("tests/python/" + cls.CONFIG)
        outdir = os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR") or tempfile.mkdtemp()
        cls.stdout_path = os.path.join(outdir, cls.__name__ + ".oee-server.stdout")
        cls.stderr_path = os.path.join(outdir, cls.__name__ + ".oee-server.log")
        env = {k: v for k, v in os.environ.items() if not k.startswith("OEE_")}
        storage, data_dir = storage_args("oee-wire-%s-" % cls.__name__)
        if data_dir:  # after tearDownClass, or when setUpClass fails
            cls.addClassCleanup(shutil.rmtree, data_dir, ignore_errors=True)
        with open(cls.stdout_path, "wb") as out, open(cls.stderr_path, "wb") as err:
            cls.server = subprocess.Popen(
                [binary, "--listen", "127.0.0.1:0", "--config", config] + storage
                + list(cls.EXTRA_ARGS),
                stdout=out, stderr=err, env=env)

        def port():
            if cls.server.poll() is not None:
                raise AssertionError("oee-server exited with %s at startup; log: %s"
                                     % (cls.server.returncode, cls._log_tail()))
            with open(cls.stdout_path) as f:
                m = re.search(r"oee-server listening on port (\d+)", f.read())
            return m and int(m.group(1))

        cls.port = wait_until(port, 60, "the 'listening on port' line")
        cls.addr = "127.0.0.1:%d" % cls.port
        cls.channel = grpc.insecure_channel(cls.addr)
        grpc.channel_ready_future(cls.channel).result(timeout=60)
        cls.stub = pb_grpc.OrchestratorServiceStub(cls.channel)
        cls.num_workers = cls.stub.GetSystemStatus(
            pb.GetSystemStatusRequest(), timeout=RPC_TIMEOUT, metadata=cls.METADATA).num_workers

    @classmethod
    def _log_tail(cls):
        try:
            with open(cls.stderr_path, errors="replace") as f:
                return f.read()[-3000:]
        except OSError:
            return "(no log)"

    @classmethod
    def tearDownClass(cls):
        if cls.server is None:
            return
        problems = []
        try:
            # Leave nothing long-running behind, so the drain is quick.
            for status in (QUEUED, RUNNING):
                for t in cls.stub.ListTasks(pb.ListTasksRequest(
                        status_filter=status, page_size=1000),
                        timeout=RPC_TIMEOUT).tasks:
                    cls.stub.CancelTask(pb.CancelTaskRequest(task_id=t.id),
                                        timeout=RPC_TIMEOUT)
            # An open stream must end UNAVAILABLE on SIGTERM.
            watcher = Watcher(cls.stub, pb.WatchTasksRequest(include_snapshot=True))
            try:  # live once its snapshot arrived (there are always tasks)
                watcher.wait_for(lambda ev: len(ev) > 0, 10, "snapshot")
            except AssertionError:
                pass
            state = cls.before_sigterm()
        except Exception as e:  # report, but still stop the server
            problems.append("cleanup before SIGTERM failed: %r" % (e,))
            watcher, state = None, None
        cls.server.send_signal(signal.SIGTERM)
        if state is not None:
            try:
                problems.extend(cls.after_sigterm(state))
            except Exception as e:
                problems.append("check after SIGTERM failed: %r" % (e,))
        try:
            code = cls.server.wait(90)
        except subprocess.TimeoutExpired:
            cls.server.kill()
            cls.server.wait()
            code = "timeout"
        if watcher is not None:
            if not watcher.wait_ended(30):
                problems.append("WatchTasks stream still open after shutdown")
            elif watcher.error is None or watcher.error.code() != grpc.StatusCode.UNAVAILABLE:
                problems.append("WatchTasks stream ended with %r, want UNAVAILABLE"
                                % (watcher.error and watcher.error.code(),))
        cls.channel.close()
        if code != 0:
            problems.append("oee-server exit code after SIGTERM = %s, want 0" % code)
        if problems:
            sys.stderr.write("server log tail:\n%s\n" % cls._log_tail())
            raise AssertionError("; ".join(problems))

    @classmethod
    def before_sigterm(cls):
        """Hook: runs before SIGTERM; its result goes to after_sigterm."""
        return None

    @classmethod
    def after_sigterm(cls, state):
        """Hook: runs right after SIGTERM; returns a list of problems."""
        return []

    # ------------------------------------------------------------------
    # Helpers
    # ------------------------------------------------------------------
    def submit(self, task_type="echo", name=None, context=None, **kw):
        req = pb.SubmitTaskRequest(name=name or "t-" + task_type,
                                   task_type=task_type, context=context or {}, **kw)
        return self.stub.SubmitTask(req, timeout=RPC_TIMEOUT)

    def echo(self, message="hi", **kw):
        return self.submit("echo", context={"message": message}, **kw)

    def sleep_task(self, seconds, **kw):
        return self.submit("sleep", context={"seconds": str(seconds)}, **kw)

    def get(self, task_id):
        return self.stub.GetTask(pb.GetTaskRequest(task_id=task_id),
                                 timeout=RPC_TIMEOUT)

    def wait_status(self, task_id, statuses=FINAL, timeout=WAIT_TIMEOUT):
        def check():
            t = self.get(task_id)
            return t if t.status in statuses else None
        return wait_until(check, timeout, "task %s to reach %s" % (
            task_id, [status_name(s) for s in statuses]))

    def queue(self):
        return self.stub.GetQueueStatus(pb.GetQueueStatusRequest(),
                                        timeout=RPC_TIMEOUT)

    def wait_idle(self):
        """Waits until no task is QUEUED or RUNNING."""
        def idle():
            q = self.queue().tasks_by_status
            return q["queued"] == 0 and q["running"] == 0
        wait_until(idle, WAIT_TIMEOUT, "an idle server")

    def occupy_workers(self):
        """Starts one long sleep per worker and waits until all run."""
        self.wait_idle()
        ids = [self.sleep_task(60, name="blocker", priority=10).task_id
               for _ in range(self.num_workers)]
        for i in ids:
            self.wait_status(i, (RUNNING,))
        return ids

    def cancel(self, task_id):
        return self.stub.CancelTask(pb.CancelTaskRequest(task_id=task_id),
                                    timeout=RPC_TIMEOUT)

    def assertCode(self, code, fn, *args, **kw):
        """Calls fn and checks it fails with grpc status `code`; returns the error."""
        with self.assertRaises(grpc.RpcError) as cm:
            fn(*args, timeout=RPC_TIMEOUT, **kw)
        self.assertEqual(cm.exception.code(), code,
                         "details: %r" % (cm.exception.details(),))
        return cm.exception

    def start_watchers(self, requests, probe=None):
        """Opens one watcher per request and returns them once every one is
        live: probe tasks are submitted until each watcher has seen the same
        probe's QUEUED event. Returns (watchers, sequence of that event)."""
        probe = probe or (lambda: self.echo("probe", name="probe").task_id)
        watchers = [Watcher(self.stub, r) for r in requests]
        deadline = time.monotonic() + WAIT_TIMEOUT
        while time.monotonic() < deadline:
            pid = probe()
            try:
                seqs = []
                for w in watchers:
                    evs = w.wait_for(w.has_status(pid, QUEUED), 2.0, "probe")
                    seqs.append([e.sequence for e in evs
                                 if e.task.id == pid and e.task.status == QUEUED][0])
                self.assertEqual(len(set(seqs)), 1, "probe seqs differ: %s" % seqs)
                return watchers, seqs[0]
            except AssertionError as e:
                if any(w.ended for w in watchers):
                    raise AssertionError("a watcher ended: %r" %
                                         ([w.error for w in watchers],))
                if "probe seqs differ" in str(e):
                    raise
        raise AssertionError("watchers never became live")

    def assert_increasing(self, events):
        seqs = [e.sequence for e in events]
        for a, b in zip(seqs, seqs[1:]):
            self.assertLess(a, b, "sequence not strictly increasing: %s" % seqs)


class WireTest(ServerTestCase):
    """The contract of every RPC, on a server with test_config.json."""
    CONFIG = "test_config.json"

    # ------------------------------------------------------------------
    # SubmitTask / GetTask
    # ------------------------------------------------------------------
    def test_submit_priority_presence(self):
        # Unset priority: no field on the wire; the server applies 5.
        req = pb.SubmitTaskRequest(name="p-unset", task_type="echo")
        self.assertFalse(req.HasField("priority"))
        self.assertIsNone(req.WhichOneof("priority_present"))
        r = self.stub.SubmitTask(req, timeout=RPC_TIMEOUT)
        self.assertRegex(r.task_id, UUID7_RE)
        self.assertEqual(r.task.id, r.task_id)
        self.assertEqual(r.task.priority, 5)
        self.assertEqual(self.get(r.task_id).priority, 5)

        # Explicit 0: present on the wire and honoured.
        req = pb.SubmitTaskRequest(name="p-zero", task_type="echo", priority=0)
        self.assertTrue(req.HasField("priority"))
        self.assertEqual(req.WhichOneof("priority_present"), "priority")
        self.assertNotEqual(req.SerializeToString(),
                            pb.SubmitTaskRequest(name="p-zero", task_type="echo")
                            .SerializeToString())
        r = self.stub.SubmitTask(req, timeout=RPC_TIMEOUT)
        self.assertEqual(r.task.priority, 0)
        self.assertEqual(self.get(r.task_id).priority, 0)

        for p in (1, 10):
            self.assertEqual(self.echo(priority=p).task.priority, p)

    def test_submit_and_get_echo(self):
        r = self.submit("echo", name="greeting", context={"message": "héllo wörld"},
                        priority=7)
        t = r.task
        self.assertEqual(t.name, "greeting")
        self.assertEqual(t.task_type, "echo")
        self.assertEqual(dict(t.context), {"message": "héllo wörld"})
        self.assertIn(t.status, (QUEUED, RUNNING, DONE))
        done = self.wait_status(r.task_id)
        self.assertEqual(done.status, DONE, done.error_message)
        self.assertEqual(done.result, "héllo wörld")
        self.assertEqual(done.error_message, "")
        for field in ("created_at", "started_at", "completed_at"):
            self.assertTrue(done.HasField(field), field)
        created = done.created_at.ToNanoseconds()
        started = done.started_at.ToNanoseconds()
        completed = done.completed_at.ToNanoseconds()
        self.assertLessEqual(created, started)
        self.assertLessEqual(started, completed)
        self.assertLess(abs(created / 1e9 - time.time()), 300)
        self.assertIn(done.worker_id, range(self.num_workers))

        # echo with no message: empty result.
        t = self.wait_status(self.submit("echo").task_id)
        self.assertEqual((t.status, t.result), (DONE, ""))

        # Sub-second precision: across a few timestamps some nanos are non-zero.
        self.assertTrue(any(ts.nanos for ts in (done.created_at, done.started_at,
                                                done.completed_at, t.created_at)))

    def test_fail_task(self):
        t = self.wait_status(self.submit("fail", context={"message": "boom!"}).task_id)
        self.assertEqual(t.status, ERROR)
        self.assertIn("boom!", t.error_message)
        self.assertTrue(t.HasField("completed_at"))

    def test_queued_task_fields_and_cancel(self):
        blockers = self.occupy_workers()
        try:
            r = self.sleep_task(60, name="victim", priority=0)
            # Acknowledgement snapshot and GetTask of a task no worker started.
            for t in (r.task, self.get(r.task_id)):
                self.assertEqual(t.status, QUEUED)
                self.assertEqual(t.worker_id, -1)
                self.assertTrue(t.HasField("created_at"))
                self.assertFalse(t.HasField("started_at"))
                self.assertFalse(t.HasField("completed_at"))

            # Queue and system status while every worker is busy.
            q = self.queue()
            self.assertEqual(set(q.tasks_by_status), {"queued", "running", "done",
                                                      "error", "cancelled", "scheduled"})
            self.assertEqual(q.tasks_by_status["running"], self.num_workers)
            self.assertGreaterEqual(q.tasks_by_status["queued"], 1)
            self.assertEqual(q.queue_size, q.tasks_by_status["queued"])
            self.assertEqual(q.total_tasks, sum(q.tasks_by_status.values()))
            sysst = self.stub.GetSystemStatus(pb.GetSystemStatusRequest(),
                                              timeout=RPC_TIMEOUT)
            self.assertTrue(all(w.busy for w in sysst.workers))
            self.assertEqual({w.current_task_id for w in sysst.workers}, set(blockers))
            running = {self.get(b).worker_id for b in blockers}
            self.assertEqual(running, set(range(self.num_workers)))

            # Cancel the queued task: always succeeds, at once.
            c = self.cancel(r.task_id)
            self.assertTrue(c.cancelled)
            self.assertEqual(c.task.status, CANCELLED)
            t = self.get(r.task_id)
            self.assertEqual(t.status, CANCELLED)
            self.assertTrue(t.HasField("completed_at"))
            self.assertFalse(t.HasField("started_at"))
            self.assertEqual(t.worker_id, -1)

            # Cancel a running sleep: cancelled true, ends CANCELLED.
            c = self.cancel(blockers[0])
            self.assertTrue(c.cancelled)
            t = self.wait_status(blockers[0])
            self.assertEqual(t.status, CANCELLED)
            self.assertTrue(t.HasField("started_at"))
            self.assertTrue(t.HasField("completed_at"))

            # Cancelling a finished task: cancelled false, unchanged.
            c = self.cancel(r.task_id)
            self.assertFalse(c.cancelled)
            self.assertEqual(c.task.status, CANCELLED)
            done = self.wait_status(self.echo("x").task_id)
            c = self.cancel(done.id)
            self.assertFalse(c.cancelled)
            self.assertEqual(c.task.status, DONE)
            self.assertEqual(self.get(done.id), done)
        finally:
            for b in blockers:
                self.cancel(b)
        for b in blockers:
            self.assertEqual(self.wait_status(b).status, CANCELLED)

    def test_priority_order(self):
        # One worker stays blocked; the other is freed one task at a time, so
        # the order in which queued tasks start is the queue's order.
        blockers = self.occupy_workers()
        order = [("p3-a", 3), ("p9-a", 9), ("p3-b", 3), ("p0", 0), ("p9-b", 9),
                 ("p5", None)]
        ids = {}
        for name, prio in order:
            kw = {} if prio is None else {"priority": prio}
            ids[self.sleep_task(60, name=name, **kw).task_id] = name
        started = []
        try:
            running = blockers[0]
            for _ in range(len(order)):
                self.cancel(running)
                self.wait_status(running, (CANCELLED,))

                def next_running():
                    now = [i for i in ids if i not in started
                           and self.get(i).status == RUNNING]
                    return now
                now = wait_until(next_running, what="the next queued task to start")
                self.assertEqual(len(now), 1, "more than one task started: %s" % now)
                running = now[0]
                started.append(running)
            self.cancel(running)
        finally:
            for i in list(ids) + blockers:
                self.cancel(i)
        self.assertEqual([ids[i] for i in started],
                         ["p9-a", "p9-b", "p5", "p3-a", "p3-b", "p0"])

    # ------------------------------------------------------------------
    # Status RPCs
    # ------------------------------------------------------------------
    def test_queue_and_system_status(self):
        q = self.queue()
        self.assertEqual(set(q.tasks_by_status), {"queued", "running", "done",
                                                  "error", "cancelled", "scheduled"})
        self.assertEqual(q.queue_size, q.tasks_by_status["queued"])
        self.assertEqual(q.total_tasks, sum(q.tasks_by_status.values()))

        def totals():
            st = self.stub.GetSystemStatus(pb.GetSystemStatusRequest(),
                                           timeout=RPC_TIMEOUT)
            return (sum(w.tasks_completed for w in st.workers),
                    sum(w.tasks_failed for w in st.workers))

        st = self.stub.GetSystemStatus(pb.GetSystemStatusRequest(),
                                       timeout=RPC_TIMEOUT)
        self.assertTrue(st.running)
        self.assertEqual(st.num_workers, 2)  # test_config.json
        self.assertEqual([w.worker_id for w in st.workers], list(range(st.num_workers)))
        self.assertGreater(st.uptime_seconds, 0)
        self.assertNotEqual(st.version, "")
        self.assertEqual(set(st.queue.tasks_by_status), set(q.tasks_by_status))

        self.wait_idle()
        before = totals()
        self.wait_status(self.echo("ok").task_id)
        self.wait_status(self.submit("fail").task_id)
        s = self.sleep_task(60)
        self.wait_status(s.task_id, (RUNNING,))
        self.assertTrue(self.cancel(s.task_id).cancelled)
        self.assertEqual(self.wait_status(s.task_id).status, CANCELLED)
        self.assertEqual(totals(), (before[0] + 1, before[1] + 1))
        st = self.stub.GetSystemStatus(pb.GetSystemStatusRequest(),
                                       timeout=RPC_TIMEOUT)
        self.assertTrue(all(not w.busy and w.current_task_id == "" for w in st.workers))

    # ------------------------------------------------------------------
    # ListTasks
    # ------------------------------------------------------------------
    def test_list_tasks_paging(self):
        self.wait_idle()
        mine = [self.echo("list-%d" % i, name="list-%d" % i).task_id for i in range(7)]
        for i in mine:
            self.wait_status(i)

        def pages(**kw):
            seen, token, totals, pages_n = [], "", set(), 0
            while True:
                resp = self.stub.ListTasks(pb.ListTasksRequest(
                    page_token=token, **kw), timeout=RPC_TIMEOUT)
                pages_n += 1
                totals.add(resp.total_size)
                seen.extend(resp.tasks)
                self.assertLessEqual(len(resp.tasks), kw.get("page_size") or 1000)
                token = resp.next_page_token
                if not token:
                    return seen, totals, pages_n
                self.assertLess(pages_n, 10000)

        tasks, totals, n = pages(task_type_filter="echo", page_size=3)
        ids = [t.id for t in tasks]
        self.assertEqual(len(ids), len(set(ids)), "a task appears on two pages")
        self.assertEqual(totals, {len(ids)}, "total_size must count every match")
        self.assertGreaterEqual(n, 3)
        self.assertTrue(all(t.task_type == "echo" for t in tasks))
        # Oldest first: mine appear in submission order, created_at never decreases.
        self.assertEqual([i for i in ids if i in mine], mine)
        created = [t.created_at.ToNanoseconds() for t in tasks]
        self.assertEqual(created, sorted(created))

        # The same listing in one page.
        one = self.stub.ListTasks(pb.ListTasksRequest(task_type_filter="echo",
                                                      page_size=1000),
                                  timeout=RPC_TIMEOUT)
        self.assertEqual([t.id for t in one.tasks], ids)
        self.assertEqual(one.next_page_token, "")

        # Status filter; page_size 0 (server default) and above the cap.
        done, totals, _ = pages(status_filter=DONE, task_type_filter="echo",
                                page_size=0)
        self.assertTrue(set(mine) <= {t.id for t in done})
        self.assertTrue(all(t.status == DONE for t in done))
        # A page_size above the cap is clamped to 1,000.
        many = self.stub.SubmitTasks(pb.SubmitTasksRequest(requests=[
            pb.SubmitTaskRequest(name="many", task_type="echo")] * 1005),
            timeout=RPC_TIMEOUT)
        self.assertTrue(all(r.code == 0 for r in many.results))
        big = self.stub.ListTasks(pb.ListTasksRequest(page_size=1000000),
                                  timeout=RPC_TIMEOUT)
        self.assertEqual(len(big.tasks), 1000)
        self.assertNotEqual(big.next_page_token, "")
        self.assertGreaterEqual(big.total_size, 1005 + 7)
        self.wait_idle()

        # Unknown type filter: empty list, not an error.
        none = self.stub.ListTasks(pb.ListTasksRequest(task_type_filter="nosuch"),
                                   timeout=RPC_TIMEOUT)
        self.assertEqual((len(none.tasks), none.total_size, none.next_page_token),
                         (0, 0, ""))

        self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, self.stub.ListTasks,
                        pb.ListTasksRequest(page_size=-1))
        for token in ("not-a-token", "!!!", "\u00e9t\u00e9"):
            with self.subTest(token=token):
                self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, self.stub.ListTasks,
                                pb.ListTasksRequest(page_token=token))

    # ------------------------------------------------------------------
    # ClearCompletedTasks
    # ------------------------------------------------------------------
    def test_clear_completed_tasks(self):
        unset = pb.ClearCompletedTasksRequest()
        zero = pb.ClearCompletedTasksRequest(keep_recent=0)
        self.assertFalse(unset.HasField("keep_recent"))
        self.assertTrue(zero.HasField("keep_recent"))
        self.assertEqual(unset.SerializeToString(), b"")
        self.assertNotEqual(zero.SerializeToString(), b"")

        self.wait_idle()
        old = self.wait_status(self.echo("old").task_id)
        batch = self.stub.SubmitTasks(pb.SubmitTasksRequest(requests=[
            pb.SubmitTaskRequest(name="bulk-%d" % i, task_type="echo",
                                 context={"message": str(i)}) for i in range(120)]),
            timeout=RPC_TIMEOUT)
        self.assertTrue(all(r.code == 0 for r in batch.results))
        self.wait_idle()
        last = self.wait_status(batch.results[-1].task_id)

        # A running task is never touched.
        sleeper = self.sleep_task(60).task_id
        self.wait_status(sleeper, (RUNNING,))

        def finished():
            q = self.queue().tasks_by_status
            return q["done"] + q["error"] + q["cancelled"]

        n = finished()
        self.assertGreaterEqual(n, 121)
        r = self.stub.ClearCompletedTasks(unset, timeout=RPC_TIMEOUT)
        self.assertEqual(r.cleared, n - 100, "unset keep_recent must mean 100")
        self.assertEqual(finished(), 100)
        self.assertCode(grpc.StatusCode.NOT_FOUND, self.stub.GetTask,
                        pb.GetTaskRequest(task_id=old.id))
        self.assertEqual(self.get(last.id).status, DONE)  # most recent: kept
        self.assertEqual(self.get(sleeper).status, RUNNING)

        r = self.stub.ClearCompletedTasks(zero, timeout=RPC_TIMEOUT)
        self.assertEqual(r.cleared, 100, "explicit keep_recent 0 must clear all")
        self.assertEqual(finished(), 0)
        self.assertCode(grpc.StatusCode.NOT_FOUND, self.stub.GetTask,
                        pb.GetTaskRequest(task_id=last.id))
        self.assertEqual(self.get(sleeper).status, RUNNING)
        self.assertEqual(self.stub.ClearCompletedTasks(zero, timeout=RPC_TIMEOUT)
                         .cleared, 0)

        self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, self.stub.ClearCompletedTasks,
                        pb.ClearCompletedTasksRequest(keep_recent=-1))
        self.cancel(sleeper)
        self.assertEqual(self.wait_status(sleeper).status, CANCELLED)

    # ------------------------------------------------------------------
    # SubmitTasks
    # ------------------------------------------------------------------
    def test_submit_tasks_mixed(self):
        R = pb.SubmitTaskRequest
        reqs = [
            R(name="good-1", task_type="echo", context={"message": "one"}),
            R(name="", task_type="echo"),
            R(name="prio", task_type="echo", priority=11),
            R(name="unknown", task_type="nosuch"),
            R(name="pipe", task_type="pipeline"),
            R(name="exec-bad", task_type="exec", context={"command": "rm"}),
            R(name="good-2", task_type="exec", context={"command": "hello"}, priority=0),
            R(name="empty-type", task_type=""),
        ]
        resp = self.stub.SubmitTasks(pb.SubmitTasksRequest(requests=reqs),
                                     timeout=RPC_TIMEOUT)
        self.assertEqual(len(resp.results), len(reqs))
        ok = grpc.StatusCode.OK.value[0]
        bad = grpc.StatusCode.INVALID_ARGUMENT.value[0]
        self.assertEqual([r.code for r in resp.results],
                         [ok, bad, bad, bad, bad, bad, ok, bad])
        for req, res in zip(reqs, resp.results):
            with self.subTest(name=req.name):
                if res.code == ok:
                    self.assertRegex(res.task_id, UUID7_RE)
                    self.assertTrue(res.HasField("task"))
                    self.assertEqual(res.task.id, res.task_id)
                    self.assertEqual(res.task.name, req.name)
                    self.assertEqual(res.message, "")
                else:
                    self.assertEqual(res.task_id, "")
                    self.assertFalse(res.HasField("task"))
                    self.assertNotEqual(res.message, "")
        self.assertEqual(resp.results[6].task.priority, 0)
        self.assertEqual(self.wait_status(resp.results[0].task_id).result, "one")
        self.assertEqual(self.wait_status(resp.results[6].task_id).result, "hello")

        # Empty or oversized (> max_batch, default 10,000) batch: the call
        # fails and nothing is queued.
        total = self.queue().total_tasks
        self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, self.stub.SubmitTasks,
                        pb.SubmitTasksRequest())
        self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, self.stub.SubmitTasks,
                        pb.SubmitTasksRequest(requests=[
                            R(name="x", task_type="echo")] * 10001))
        self.assertEqual(self.queue().total_tasks, total)

    # ------------------------------------------------------------------
    # exec
    # ------------------------------------------------------------------
    def test_exec_commands(self):
        t = self.wait_status(self.submit("exec", context={"command": "hello"}).task_id)
        self.assertEqual(t.status, DONE, t.error_message)
        self.assertEqual(t.result, "hello")  # trailing newline trimmed

        t = self.wait_status(self.submit("exec", context={"command": "oops"}).task_id)
        self.assertEqual(t.status, ERROR)
        self.assertIn("4", t.error_message)
        self.assertIn("oops-on-stderr", t.error_message)

        # context["input"] goes to stdin; trailing whitespace is trimmed.
        t = self.wait_status(self.submit(
            "exec", context={"command": "cat", "input": "  a b\nc \n\n"}).task_id)
        self.assertEqual((t.status, t.result), (DONE, "  a b\nc"))

        # Killed at the command's timeout_seconds (1 s).
        t0 = time.monotonic()
        t = self.wait_status(self.submit("exec", context={"command": "hang"}).task_id)
        self.assertEqual(t.status, ERROR)
        self.assertLess(time.monotonic() - t0, 25)

        # Killed on cancel.
        r = self.submit("exec", context={"command": "hang"})
        self.wait_status(r.task_id, (RUNNING,))
        self.assertTrue(self.cancel(r.task_id).cancelled)
        self.assertEqual(self.wait_status(r.task_id).status, CANCELLED)

        for ctx in ({"command": "nosuch"}, {"command": "echo"}, {}):
            with self.subTest(context=ctx):
                self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, self.stub.SubmitTask,
                                pb.SubmitTaskRequest(name="x", task_type="exec",
                                                     context=ctx))

    # ------------------------------------------------------------------
    # Pipelines
    # ------------------------------------------------------------------
    def run_pipeline(self, strategy, stages, text="hello", **kw):
        req = pb.SubmitPipelineRequest(
            pipeline_id="pl-%s" % uuid.uuid4().hex[:8],
            strategy=pb.PipelineStrategy.Value(strategy), input=text,
            stages=[s if isinstance(s, pb.PipelineStage) else
                    pb.PipelineStage(name="s%d-%s" % (i, s), model_id=s)
                    for i, s in enumerate(stages)], **kw)
        r = self.stub.SubmitPipeline(req, timeout=RPC_TIMEOUT)
        self.assertRegex(r.task_id, UUID7_RE)
        self.assertEqual(r.task.task_type, "pipeline")
        task = self.wait_status(r.task_id)
        res = self.stub.GetPipelineResult(pb.GetPipelineResultRequest(
            task_id=r.task_id), timeout=RPC_TIMEOUT)
        self.assertEqual(res.task_id, r.task_id)
        self.assertEqual(res.pipeline_id, req.pipeline_id)
        self.assertEqual(res.strategy, req.strategy)
        self.assertEqual(res.status, task.status)
        self.assertEqual([s.name for s in res.stages], [s.name for s in req.stages])
        self.assertEqual([s.model_id for s in res.stages],
                         [s.model_id for s in req.stages])
        if task.status == DONE:
            self.assertEqual(task.result, res.output)
        return req, task, res

    def assertStages(self, res, expected):
        """expected: list of (status, output or None)."""
        got = [(pb.StageStatus.Name(s.status), s.output) for s in res.stages]
        want = [(pb.StageStatus.Name(st), out if out is not None else g[1])
                for (st, out), g in zip(expected, got)]
        self.assertEqual(got, want)

    def test_pipeline_local_fast_precise(self):
        req, task, res = self.run_pipeline("LOCAL_FAST_PRECISE", ["upper", "rev"])
        self.assertEqual(task.status, DONE, res.error_message)
        self.assertEqual(res.output, "OLLEH")
        self.assertStages(res, [(STAGE_DONE, "HELLO"), (STAGE_DONE, "OLLEH")])
        self.assertAlmostEqual(res.total_cost, 0.7)
        self.assertEqual([round(s.cost, 6) for s in res.stages], [0.5, 0.2])
        self.assertEqual(task.name, "pipeline:" + req.pipeline_id)
        self.assertEqual(task.priority, 5)
        self.assertGreater(res.elapsed_seconds, 0)

        # A cost override is what the stage is charged.
        _, task, res = self.run_pipeline(
            "LOCAL_FAST_PRECISE",
            [pb.PipelineStage(name="u", model_id="upper", cost=1.25),
             pb.PipelineStage(name="e", model_id="echo")], text="multi\nline\n")
        self.assertEqual(res.output, "MULTI\nLINE")
        self.assertEqual([round(s.cost, 6) for s in res.stages], [1.25, 0.0])
        self.assertAlmostEqual(res.total_cost, 1.25)

        _, task, res = self.run_pipeline("LOCAL_FAST_PRECISE", ["boom", "upper"],
                                         name="named", priority=0)
        self.assertEqual(task.status, ERROR)
        self.assertEqual((task.name, task.priority), ("named", 0))
        self.assertStages(res, [(STAGE_ERROR, ""), (STAGE_SKIPPED, "")])
        self.assertAlmostEqual(res.total_cost, 0.1)
        self.assertNotEqual(res.error_message, "")

    def test_pipeline_parallel_ensemble(self):
        _, task, res = self.run_pipeline(
            "PARALLEL_ENSEMBLE", ["upper", "rev", "echo", "echo"])
        self.assertEqual(task.status, DONE, res.error_message)
        self.assertEqual(res.output, "hello")  # two of four agree
        self.assertStages(res, [(STAGE_DONE, "HELLO"), (STAGE_DONE, "olleh"),
                                (STAGE_DONE, "hello"), (STAGE_DONE, "hello")])
        self.assertAlmostEqual(res.total_cost, 0.7)

        _, task, res = self.run_pipeline("PARALLEL_ENSEMBLE", ["boom", "rev", "upper"])
        self.assertEqual(task.status, DONE, res.error_message)
        self.assertEqual(res.output, "olleh")  # tie: earliest stage
        self.assertStages(res, [(STAGE_ERROR, ""), (STAGE_DONE, "olleh"),
                                (STAGE_DONE, "HELLO")])
        self.assertAlmostEqual(res.total_cost, 0.8)

        _, task, res = self.run_pipeline("PARALLEL_ENSEMBLE", ["boom", "boom"])
        self.assertEqual(task.status, ERROR)

    def test_pipeline_sequential_validation(self):
        _, task, res = self.run_pipeline("SEQUENTIAL_VALIDATION",
                                         ["upper", "rev", "echo"])
        self.assertEqual(task.status, DONE, res.error_message)
        self.assertEqual(res.output, "HELLO")
        self.assertStages(res, [(STAGE_DONE, "HELLO"), (STAGE_DONE, "OLLEH"),
                                (STAGE_DONE, "HELLO")])

        _, task, res = self.run_pipeline("SEQUENTIAL_VALIDATION",
                                         ["upper", "boom", "rev"])
        self.assertEqual(task.status, ERROR)
        self.assertStages(res, [(STAGE_DONE, "HELLO"), (STAGE_ERROR, ""),
                                (STAGE_SKIPPED, "")])

    def test_pipeline_cost_optimized(self):
        _, task, res = self.run_pipeline("COST_OPTIMIZED", ["upper", "rev", "boom"])
        self.assertEqual(task.status, DONE, res.error_message)
        self.assertEqual(res.output, "olleh")  # boom (0.1) fails, rev (0.2) wins
        self.assertStages(res, [(STAGE_SKIPPED, ""), (STAGE_DONE, "olleh"),
                                (STAGE_ERROR, "")])
        self.assertAlmostEqual(res.total_cost, 0.3)
        self.assertEqual([round(s.cost, 6) for s in res.stages], [0.0, 0.2, 0.1])

        # An explicit cost override of 0 is honoured (presence, not zero value).
        free = pb.PipelineStage(name="free-upper", model_id="upper", cost=0)
        self.assertTrue(free.HasField("cost"))
        self.assertFalse(pb.PipelineStage(model_id="upper").HasField("cost"))
        _, task, res = self.run_pipeline("COST_OPTIMIZED",
                                         [pb.PipelineStage(name="r", model_id="rev"),
                                          free])
        self.assertEqual(task.status, DONE, res.error_message)
        self.assertEqual(res.output, "HELLO")
        self.assertStages(res, [(STAGE_SKIPPED, ""), (STAGE_DONE, "HELLO")])
        self.assertEqual(res.total_cost, 0.0)

    def test_pipeline_quality_first(self):
        _, task, res = self.run_pipeline("QUALITY_FIRST", ["upper", "rev", "boom"])
        self.assertEqual(task.status, DONE, res.error_message)
        self.assertEqual(res.output, "olleh")  # boom (0.95) fails, rev (0.9) wins
        self.assertStages(res, [(STAGE_SKIPPED, ""), (STAGE_DONE, "olleh"),
                                (STAGE_ERROR, "")])
        self.assertAlmostEqual(res.total_cost, 0.3)

        _, task, res = self.run_pipeline("QUALITY_FIRST", ["echo", "upper"])
        self.assertEqual(res.output, "HELLO")  # echo has quality 0

    def test_pipeline_budgets_and_cancel(self):
        # max_cost: upper (0.5) fits, rev (0.2) would exceed 0.6.
        _, task, res = self.run_pipeline("LOCAL_FAST_PRECISE", ["upper", "rev"],
                                         max_cost=0.6)
        self.assertEqual(task.status, ERROR)
        self.assertIn("cost budget exceeded", res.error_message)
        self.assertStages(res, [(STAGE_DONE, "HELLO"), (STAGE_SKIPPED, "")])
        self.assertAlmostEqual(res.total_cost, 0.5)

        # COST_OPTIMIZED: boom (0.1) fails, upper (0.5) does not fit 0.3.
        _, task, res = self.run_pipeline("COST_OPTIMIZED", ["upper", "boom"],
                                         max_cost=0.3)
        self.assertEqual(task.status, ERROR)
        self.assertIn("cost budget exceeded", res.error_message)
        self.assertStages(res, [(STAGE_SKIPPED, ""), (STAGE_ERROR, "")])
        self.assertAlmostEqual(res.total_cost, 0.1)

        # PARALLEL_ENSEMBLE charges in request order: rev would exceed 0.6.
        _, task, res = self.run_pipeline("PARALLEL_ENSEMBLE", ["upper", "rev", "echo"],
                                         max_cost=0.6)
        self.assertEqual(task.status, DONE, res.error_message)
        self.assertStages(res, [(STAGE_DONE, "HELLO"), (STAGE_SKIPPED, ""),
                                (STAGE_DONE, "hello")])
        self.assertEqual(res.output, "HELLO")  # tie: earliest stage
        self.assertAlmostEqual(res.total_cost, 0.5)

        # max_time: the slow model is cancelled at the deadline.
        t0 = time.monotonic()
        _, task, res = self.run_pipeline("LOCAL_FAST_PRECISE", ["slow", "upper"],
                                         max_time=0.5)
        self.assertLess(time.monotonic() - t0, 25)
        self.assertEqual(task.status, ERROR)
        self.assertIn("deadline exceeded", res.error_message)
        self.assertStages(res, [(STAGE_CANCELLED, ""), (STAGE_SKIPPED, "")])

        # Cancelling the pipeline task cancels its running stage.
        r = self.stub.SubmitPipeline(pb.SubmitPipelineRequest(
            pipeline_id="to-cancel", strategy=pb.LOCAL_FAST_PRECISE, input="x",
            stages=[pb.PipelineStage(name="s", model_id="slow")]), timeout=RPC_TIMEOUT)
        self.wait_status(r.task_id, (RUNNING,))
        self.assertTrue(self.cancel(r.task_id).cancelled)
        self.assertEqual(self.wait_status(r.task_id).status, CANCELLED)
        res = self.stub.GetPipelineResult(pb.GetPipelineResultRequest(
            task_id=r.task_id), timeout=RPC_TIMEOUT)
        self.assertEqual(res.status, CANCELLED)
        self.assertIn(res.stages[0].status, (STAGE_CANCELLED,))

    def test_pipeline_errors(self):
        ok_stage = [pb.PipelineStage(name="a", model_id="echo")]
        P = pb.SubmitPipelineRequest
        bad = {
            "no stages": P(pipeline_id="p", strategy=pb.LOCAL_FAST_PRECISE),
            "unknown model": P(pipeline_id="p", strategy=pb.LOCAL_FAST_PRECISE,
                               stages=[pb.PipelineStage(name="a", model_id="nosuch")]),
            "unspecified strategy": P(pipeline_id="p", stages=ok_stage),
            "negative max_time": P(pipeline_id="p", strategy=pb.LOCAL_FAST_PRECISE,
                                   stages=ok_stage, max_time=-1),
            "negative max_cost": P(pipeline_id="p", strategy=pb.LOCAL_FAST_PRECISE,
                                   stages=ok_stage, max_cost=-0.5),
            "priority 11": P(pipeline_id="p", strategy=pb.LOCAL_FAST_PRECISE,
                             stages=ok_stage, priority=11),
        }
        for what, req in bad.items():
            with self.subTest(what):
                self.assertCode(grpc.StatusCode.INVALID_ARGUMENT,
                                self.stub.SubmitPipeline, req)

        echo_id = self.echo("not a pipeline").task_id
        GPR = pb.GetPipelineResultRequest
        self.assertCode(grpc.StatusCode.NOT_FOUND, self.stub.GetPipelineResult,
                        GPR(task_id=echo_id))
        self.assertCode(grpc.StatusCode.NOT_FOUND, self.stub.GetPipelineResult,
                        GPR(task_id=str(uuid.uuid4())))
        self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, self.stub.GetPipelineResult,
                        GPR(task_id="nope"))

    # ------------------------------------------------------------------
    # Error codes of the task RPCs
    # ------------------------------------------------------------------
    def test_error_codes(self):
        IA = grpc.StatusCode.INVALID_ARGUMENT
        R = pb.SubmitTaskRequest
        for what, req in {
                "empty name": R(name="", task_type="echo"),
                "priority 11": R(name="x", task_type="echo", priority=11),
                "priority -1": R(name="x", task_type="echo", priority=-1),
                "empty type": R(name="x", task_type=""),
                "pipeline type": R(name="x", task_type="pipeline"),
                "exec unknown command": R(name="x", task_type="exec",
                                          context={"command": "nosuch"}),
        }.items():
            with self.subTest(what):
                self.assertCode(IA, self.stub.SubmitTask, req)

        err = self.assertCode(IA, self.stub.SubmitTask, R(name="x", task_type="nosuch"))
        for known in ("echo", "sleep", "fail", "exec"):
            self.assertIn(known, err.details())

        for bad_id in ("", "nope", "12345678-1234-1234-1234-1234567890", "zz" * 18):
            with self.subTest(task_id=bad_id):
                self.assertCode(IA, self.stub.GetTask, pb.GetTaskRequest(task_id=bad_id))
                self.assertCode(IA, self.stub.CancelTask,
                                pb.CancelTaskRequest(task_id=bad_id))
                self.assertCode(IA, self.stub.RetryTask, pb.RetryTaskRequest(task_id=bad_id))
        unknown = str(uuid.uuid4())
        self.assertCode(grpc.StatusCode.NOT_FOUND, self.stub.GetTask,
                        pb.GetTaskRequest(task_id=unknown))
        self.assertCode(grpc.StatusCode.NOT_FOUND, self.stub.CancelTask,
                        pb.CancelTaskRequest(task_id=unknown))
        self.assertCode(grpc.StatusCode.NOT_FOUND, self.stub.RetryTask,
                        pb.RetryTaskRequest(task_id=unknown))

    def test_semantics_fields_on_the_wire(self):
        # Presence of the new oneofs, as for priority: an explicit 0 is sent.
        R = pb.SubmitTaskRequest
        for field in ("max_attempts", "backoff_seconds", "max_backoff_seconds"):
            self.assertFalse(R(name="x", task_type="echo").HasField(field))
            self.assertTrue(R(name="x", task_type="echo", **{field: 0}).HasField(field))
        IA = grpc.StatusCode.INVALID_ARGUMENT
        err = self.assertCode(IA, self.stub.SubmitTask, R(name="x", task_type="echo",
                                                          max_attempts=0))
        self.assertEqual(err.details(), "max_attempts must be 1..100, got 0")
        # A Timestamp outside years 1..9999 is refused naming run_at.
        far = R(name="x", task_type="echo")
        far.run_at.seconds = 253402300800
        err = self.assertCode(IA, self.stub.SubmitTask, far)
        self.assertIn("run_at", err.details())
        # "#<index>" is for SubmitTasks entries only.
        err = self.assertCode(IA, self.stub.SubmitTask,
                              R(name="x", task_type="echo", depends_on=["#0"]))
        self.assertIn("depends_on[0]", err.details())
        # The fields come back in the Task (the defaults when unset).
        r = self.stub.SubmitTask(R(name="p", task_type="echo", max_attempts=3,
                                   timeout_seconds=5, backoff_seconds=0.5),
                                 timeout=RPC_TIMEOUT)
        t = self.get(r.task_id)
        self.assertEqual((t.max_attempts, t.timeout_seconds, t.backoff_seconds,
                          t.max_backoff_seconds), (3, 5.0, 0.5, 300.0))
        self.assertFalse(r.duplicate)
        res = self.stub.SubmitTasks(pb.SubmitTasksRequest(requests=[
            R(name="", task_type="echo"), R(name="b", task_type="echo", depends_on=["#0"])]),
            timeout=RPC_TIMEOUT).results
        self.assertEqual([x.code for x in res], [IA.value[0],
                                                 grpc.StatusCode.FAILED_PRECONDITION.value[0]])

    def test_health(self):
        # grpc.health.v1.Health/Check, encoded by hand (HealthCheckRequest has
        # one field: 1 = service, string; the reply's 1 = status, SERVING = 1).
        check = self.channel.unary_unary("/grpc.health.v1.Health/Check")

        def request(service):
            data = service.encode()
            return (b"\x0a" + bytes([len(data)]) + data) if data else b""
        for service in ("", "oee.v1.OrchestratorService"):
            with self.subTest(service=service):
                self.assertEqual(check(request(service), timeout=RPC_TIMEOUT),
                                 b"\x08\x01")
        self.assertCode(grpc.StatusCode.NOT_FOUND, check, request("no.such.Service"))

    def test_raw_wire(self):
        # An unknown method of the service: UNIMPLEMENTED.
        nope = self.channel.unary_unary(SERVICE + "Nope")
        self.assertCode(grpc.StatusCode.UNIMPLEMENTED, nope, b"")
        self.assertCode(grpc.StatusCode.UNIMPLEMENTED,
                        self.channel.unary_unary("/no.such.Service/Get"), b"")

        # A body that is not a valid protobuf message: INVALID_ARGUMENT.
        for method in ("GetTask", "SubmitTask", "ListTasks"):
            with self.subTest(method=method):
                raw = self.channel.unary_unary(SERVICE + method,
                                               request_serializer=lambda b: b,
                                               response_deserializer=lambda b: b)
                self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, raw, b"\xff\xff\xff")

        # Hand-serialised standard protobuf bytes are accepted and the reply
        # parses with the standard runtime.
        raw_submit = self.channel.unary_unary(SERVICE + "SubmitTask")
        body = pb.SubmitTaskRequest(name="raw", task_type="echo",
                                    context={"message": "wire"}).SerializeToString()
        reply = pb.SubmitTaskResponse.FromString(raw_submit(body, timeout=RPC_TIMEOUT))
        self.assertEqual(reply.task.name, "raw")
        self.assertEqual(self.wait_status(reply.task_id).result, "wire")

        # The server still serves normal calls.
        self.assertTrue(self.stub.GetSystemStatus(pb.GetSystemStatusRequest(),
                                                  timeout=RPC_TIMEOUT).running)
        self.assertEqual(self.wait_status(self.echo("after").task_id).result, "after")

    # ------------------------------------------------------------------
    # WatchTasks
    # ------------------------------------------------------------------
    def test_watch_order_and_two_watchers(self):
        (w1, w2), start = self.start_watchers(
            [pb.WatchTasksRequest(), pb.WatchTasksRequest()])
        try:
            e = self.echo("watched").task_id
            f = self.submit("fail", context={"message": "bad"}).task_id
            blockers = self.occupy_workers()
            q = self.sleep_task(60, priority=0).task_id
            self.cancel(q)
            for b in blockers:
                self.cancel(b)
            for w in (w1, w2):
                w.wait_for(w.has_status(e, DONE), what="echo DONE")
                w.wait_for(w.has_status(f, ERROR), what="fail ERROR")
                w.wait_for(w.has_status(q, CANCELLED), what="queued CANCELLED")
                for b in blockers:
                    w.wait_for(w.has_status(b, CANCELLED), what="blocker CANCELLED")

            for w in (w1, w2):
                self.assert_increasing(w.snapshot())
                self.assertEqual([x.task.status for x in w.of(e)],
                                 [QUEUED, RUNNING, DONE])
                self.assertEqual([x.task.status for x in w.of(f)],
                                 [QUEUED, RUNNING, ERROR])
                self.assertEqual([x.task.status for x in w.of(q)],
                                 [QUEUED, CANCELLED])
                for b in blockers:
                    self.assertEqual([x.task.status for x in w.of(b)],
                                     [QUEUED, RUNNING, CANCELLED])
                queued, running, done = w.of(e)
                self.assertEqual(queued.task.worker_id, -1)
                self.assertFalse(queued.task.HasField("started_at"))
                self.assertTrue(running.task.HasField("started_at"))
                self.assertEqual(done.task.result, "watched")
                self.assertTrue(done.task.HasField("completed_at"))
                self.assertTrue(all(x.HasField("time") for x in w.of(e)))

            # Both watchers saw the same changes with the same numbers.
            end = min(w1.snapshot()[-1].sequence, w2.snapshot()[-1].sequence)

            def window(w):
                return [(x.sequence, x.task.id, x.task.status) for x in w.snapshot()
                        if start <= x.sequence <= end]
            self.assertEqual(window(w1), window(w2))
            self.assertTrue(any(x[1] == e for x in window(w1)))
            done_seq = w1.of(e)[-1].sequence
        finally:
            w1.cancel()
            w2.cancel()

        # include_snapshot: one event per matching task, carrying the number
        # of the task's latest change.
        snap = Watcher(self.stub, pb.WatchTasksRequest(task_ids=[e],
                                                       include_snapshot=True))
        try:
            evs = snap.wait_for(lambda ev: len(ev) >= 1, what="snapshot")
            self.assertEqual(evs[0].task.id, e)
            self.assertEqual(evs[0].task.status, DONE)
            self.assertEqual(evs[0].sequence, done_seq)
        finally:
            snap.cancel()

        # Without include_snapshot nothing past is replayed.
        quiet = Watcher(self.stub, pb.WatchTasksRequest(task_ids=[e]))
        try:
            time.sleep(0.5)
            self.assertEqual(quiet.snapshot(), [])
        finally:
            quiet.cancel()

    def test_watch_snapshot_all(self):
        existing = self.wait_status(self.echo("pre-existing").task_id)
        w = Watcher(self.stub, pb.WatchTasksRequest(include_snapshot=True))
        try:
            evs = w.wait_for(lambda ev: any(x.task.id == existing.id for x in ev),
                             what="snapshot of an existing task")
            first = [x for x in evs if x.task.id == existing.id][0]
            self.assertEqual(first.task.status, DONE)
            self.assertEqual(first.task.result, "pre-existing")
            # A new task after the snapshot is streamed live.
            n = self.echo("new").task_id
            w.wait_for(w.has_status(n, DONE), what="live events after snapshot")
            self.assertEqual([x.task.status for x in w.of(n)], [QUEUED, RUNNING, DONE])
            self.assert_increasing(w.of(n))
        finally:
            w.cancel()

    def test_watch_filters(self):
        # By task type.
        (w,), _ = self.start_watchers(
            [pb.WatchTasksRequest(task_types=["fail"])],
            probe=lambda: self.submit("fail", name="probe").task_id)
        try:
            e = self.echo("typed").task_id
            f = self.submit("fail").task_id
            self.wait_status(e)
            w.wait_for(w.has_status(f, ERROR), what="fail ERROR")
            self.assertTrue(all(x.task.task_type == "fail" for x in w.snapshot()))
            self.assertEqual([x.task.status for x in w.of(f)], [QUEUED, RUNNING, ERROR])
            self.assert_increasing(w.snapshot())
        finally:
            w.cancel()

        # By status.
        (w,), _ = self.start_watchers(
            [pb.WatchTasksRequest(statuses=[QUEUED, ERROR])])
        try:
            e = self.echo("st").task_id
            f = self.submit("fail").task_id
            w.wait_for(w.has_status(f, ERROR), what="fail ERROR")
            self.wait_status(e)
            self.assertTrue(all(x.task.status in (QUEUED, ERROR) for x in w.snapshot()))
            self.assertEqual([x.task.status for x in w.of(e)], [QUEUED])
            self.assertEqual([x.task.status for x in w.of(f)], [QUEUED, ERROR])
        finally:
            w.cancel()

        # By task id (snapshot first, then live changes of that task only).
        blockers = self.occupy_workers()
        try:
            a = self.echo("A").task_id
            b = self.echo("B").task_id
            w = Watcher(self.stub, pb.WatchTasksRequest(task_ids=[a],
                                                        include_snapshot=True))
            w.wait_for(lambda ev: len(ev) >= 1, what="snapshot of A")
            self.assertEqual(w.snapshot()[0].task.status, QUEUED)
        finally:
            for x in blockers:
                self.cancel(x)
        try:
            w.wait_for(w.has_status(a, DONE), what="A DONE")
            self.wait_status(b)
            self.assertTrue(all(x.task.id == a for x in w.snapshot()))
            self.assertEqual([x.task.status for x in w.snapshot()],
                             [QUEUED, RUNNING, DONE])
            self.assert_increasing(w.snapshot())
        finally:
            w.cancel()


class LimitsTest(ServerTestCase):
    """max_queue and the SIGTERM drain, on a one-worker server with
    test_config_limits.json (max_queue 2)."""
    CONFIG = "test_config_limits.json"

    def test_queue_limit(self):
        EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
        mine = self.occupy_workers()
        try:
            q1 = self.sleep_task(60).task_id
            mine.append(q1)
            mine.append(self.sleep_task(60).task_id)
            self.assertCode(EXHAUSTED, self.stub.SubmitTask,
                            pb.SubmitTaskRequest(name="over", task_type="echo"))
            # In a batch each entry over the limit gets its own result.
            R = pb.SubmitTaskRequest(name="b", task_type="echo")
            r = self.stub.SubmitTasks(pb.SubmitTasksRequest(requests=[R, R]),
                                      timeout=RPC_TIMEOUT)
            self.assertEqual([x.code for x in r.results], [EXHAUSTED.value[0]] * 2)
            self.assertTrue(all(x.message for x in r.results))
            self.assertCode(EXHAUSTED, self.stub.SubmitPipeline, pb.SubmitPipelineRequest(
                pipeline_id="p", strategy=pb.LOCAL_FAST_PRECISE,
                stages=[pb.PipelineStage(name="e", model_id="echo")]))
            # A freed slot is usable again.
            self.cancel(q1)
            r = self.stub.SubmitTasks(pb.SubmitTasksRequest(requests=[R, R]),
                                      timeout=RPC_TIMEOUT)
            self.assertEqual([x.code for x in r.results], [0, EXHAUSTED.value[0]])
            mine.append(r.results[0].task_id)
            self.assertEqual(self.queue().queue_size, 2)
        finally:
            for i in mine:
                self.cancel(i)
        self.wait_idle()

    @classmethod
    def before_sigterm(cls):
        # A running task during the drain: it must finish, and its final
        # event must reach a watcher before the stream ends UNAVAILABLE.
        r = cls.stub.SubmitTask(pb.SubmitTaskRequest(
            name="drained", task_type="sleep", context={"seconds": "1.5"}),
            timeout=RPC_TIMEOUT)
        wait_until(lambda: cls.stub.GetTask(pb.GetTaskRequest(task_id=r.task_id),
                                            timeout=RPC_TIMEOUT).status == RUNNING,
                   what="the drained task to run")
        w = Watcher(cls.stub, pb.WatchTasksRequest(task_ids=[r.task_id],
                                                   include_snapshot=True))
        w.wait_for(lambda ev: len(ev) > 0, what="snapshot of the drained task")
        return r.task_id, w

    @classmethod
    def after_sigterm(cls, state):
        task_id, w = state
        problems = []
        # New submits get UNAVAILABLE at once (allow the signal to land).
        def refused():
            try:
                cls.stub.SubmitTask(pb.SubmitTaskRequest(name="late", task_type="echo"),
                                    timeout=RPC_TIMEOUT)
                return False
            except grpc.RpcError as e:
                return e.code()
        code = wait_until(refused, 10, "submits to be refused")
        if code != grpc.StatusCode.UNAVAILABLE:
            problems.append("submit while draining: %s, want UNAVAILABLE" % code)
        if not w.wait_ended(60):
            problems.append("drain: watcher stream not ended")
            return problems
        statuses = [e.task.status for e in w.snapshot()]
        if not statuses or statuses[-1] != DONE:
            problems.append("drain: task events %s, want the last one DONE"
                            % [status_name(x) for x in statuses])
        if w.error is None or w.error.code() != grpc.StatusCode.UNAVAILABLE:
            problems.append("drain: stream ended with %r, want UNAVAILABLE"
                            % (w.error and w.error.code(),))
        return problems


if __name__ == "__main__":
    unittest.main(verbosity=2)
