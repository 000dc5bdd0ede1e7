"""Fault and bad-input tests of the real oee-server, through the standard
generated Python stubs (grpcio 1.51 of Debian's /usr/bin/python3).

Each test class starts its own //server:oee-server on a free loopback port
with a config of small limits, so every limit is cheap to reach:

  * client faults: a deadline that expires mid-call, a client process killed
    mid-stream, a watcher that never reads (dropped; others not slowed);
  * every limit refused with its status and a message naming its config key,
    the request size refused by gRPC itself, results truncated with a marker;
  * shutdown under load: SIGTERM with queued and running tasks and watchers
    connected, then a second signal that stops at once.

No assertion depends on absolute speed: waits poll up to generous deadlines
and slowdowns are compared as ratios against a baseline measured in the same
test. Under --config=asan the server is the ASan+LSan build, so "exit 0" also
means "no leak at exit".
"""

import json
import os
import select
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

RPC_TIMEOUT = 20.0
WAIT = 60.0
S = pb.TaskStatus
QUEUED, RUNNING, DONE, ERROR, CANCELLED = (
    S.Value("TASK_STATUS_QUEUED"), S.Value("TASK_STATUS_RUNNING"),
    S.Value("TASK_STATUS_DONE"), S.Value("TASK_STATUS_ERROR"),
    S.Value("TASK_STATUS_CANCELLED"))
FINAL = (DONE, ERROR, CANCELLED)

HEALTH_CHECK = "/grpc.health.v1.Health/Check"
SERVING, NOT_SERVING = 1, 2


def runfile(path):
    root = os.environ.get("TEST_SRCDIR")
    if not root:
        raise RuntimeError("TEST_SRCDIR is not set: run this with bazel test")
    return os.path.join(root, "oee", path)


def wait_until(pred, timeout=WAIT, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.0fs waiting for %s" % (timeout, what))
        time.sleep(0.02)


class Server(object):
    """One oee-server process on a free port, with a JSON config, its log and
    its data directory (the default store's) in a directory of its own,
    removed by stop()."""

    def __init__(self, config, drain_timeout=None):
        self.dir = tempfile.mkdtemp(prefix="oee-faults-", dir=os.environ.get("TEST_TMPDIR"))
        path = os.path.join(self.dir, "config.json")
        with open(path, "w") as f:
            json.dump(config, f)
        argv = [runfile("server/oee-server"), "--listen", "127.0.0.1:0", "--config", path,
                "--data-dir", os.path.join(self.dir, "data")]
        if drain_timeout is not None:
            argv += ["--drain-timeout", str(drain_timeout)]
        self.stderr = open(os.path.join(self.dir, "stderr.log"), "w+")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.stderr,
                                     universal_newlines=True)
        line = self.proc.stdout.readline()
        if "listening on port" not in line:
            raise AssertionError("server did not start: %r\n%s" % (line, self.log()))
        self.port = int(line.split()[-1])
        self.target = "127.0.0.1:%d" % self.port
        self.channel = self.new_channel()
        self.stub = pb_grpc.OrchestratorServiceStub(self.channel)

    def new_channel(self, **options):
        opts = [("grpc.max_send_message_length", -1),
                ("grpc.max_receive_message_length", -1)]
        opts += list(options.items())
        ch = grpc.insecure_channel(self.target, options=opts)
        grpc.channel_ready_future(ch).result(timeout=RPC_TIMEOUT)
        return ch

    def log(self):
        self.stderr.flush()
        self.stderr.seek(0)
        return self.stderr.read()[-4000:]

    def health(self):
        call = self.channel.unary_unary(HEALTH_CHECK)
        resp = call(b"", timeout=RPC_TIMEOUT)
        # HealthCheckResponse{status = 1}: tag 0x08, then the enum value.
        return resp[1] if len(resp) == 2 and resp[0] == 0x08 else 0

    def wait_exit(self, timeout=WAIT):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("server did not exit within %.0fs\n%s" % (timeout, self.log()))

    def stop(self):
        self.channel.close()
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                rc = self.wait_exit()
                if rc != 0:
                    raise AssertionError("server exited %d\n%s" % (rc, self.log()))
        finally:
            self.proc.stdout.close()
            self.stderr.close()
            shutil.rmtree(self.dir, ignore_errors=True)


def submit(stub, name="t", task_type="echo", ctx=None, timeout=RPC_TIMEOUT, **kw):
    return stub.SubmitTask(pb.SubmitTaskRequest(name=name, task_type=task_type,
                                                context=ctx or {}, **kw), timeout=timeout)


def status_counts(stub):
    q = stub.GetQueueStatus(pb.GetQueueStatusRequest(), timeout=RPC_TIMEOUT)
    return q


class Watcher(object):
    """Reads a WatchTasks stream on a thread, keeping events and the status."""

    def __init__(self, stub, request=None, timeout=None):
        self.call = stub.WatchTasks(request or pb.WatchTasksRequest(), timeout=timeout)
        self.events = []
        self.code = None
        self.details = None
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            for ev in self.call:
                with self.lock:
                    self.events.append(ev)
            self.code = grpc.StatusCode.OK
        except grpc.RpcError as e:
            self.code = e.code()
            self.details = e.details()

    def final_status(self, task_id):
        with self.lock:
            sts = [e.task.status for e in self.events if e.task.id == task_id]
        return sts[-1] if sts else None

    def statuses(self, task_id):
        with self.lock:
            return [e.task.status for e in self.events if e.task.id == task_id]

    def ended(self, timeout=WAIT):
        self.thread.join(timeout)
        return not self.thread.is_alive()


def watcher_live(stub, w, timeout=WAIT):
    """True once the server has registered w (it sees a probe task's event),
    False if the server ended it instead (refused). Probes are echo tasks
    named "probe", submitted again each second until one is seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tid = submit(stub, name="probe").task_id
        second = time.monotonic() + 1.0
        while time.monotonic() < second:
            if w.statuses(tid):
                return True
            if w.ended(0.01):  # waits on the reader thread: the stream's end
                return False
    raise AssertionError("watcher neither registered nor refused in %.0fs" % timeout)


def sync_watchers(stub, watchers):
    """Waits until the server has registered every one of watchers."""
    for w in watchers:
        if not watcher_live(stub, w):
            raise AssertionError("watcher refused: %s %s" % (w.code, w.details))


# --------------------------------------------------------------------- limits

LIMITS = {
    "workers": 2,
    "max_queue": 5,
    "max_batch": 20,
    "max_watchers": 3,
    "watch_buffer": 64,
    "max_request_bytes": 65536,
    "max_name_bytes": 16,
    "max_type_bytes": 8,
    "max_context_entries": 3,
    "max_context_bytes": 100,
    "max_stages": 2,
    "max_result_bytes": 32,
}


class LimitsTest(unittest.TestCase):
    """Every limit is a config key; a refusal names it."""

    @classmethod
    def setUpClass(cls):
        cls.srv = Server(LIMITS)
        cls.stub = cls.srv.stub

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def refused(self, fn, code, key):
        with self.assertRaises(grpc.RpcError) as cm:
            fn()
        self.assertEqual(cm.exception.code(), code, cm.exception.details())
        self.assertIn(key, cm.exception.details())
        return cm.exception.details()

    def test_name_length(self):
        self.refused(lambda: submit(self.stub, name="n" * 17),
                     grpc.StatusCode.INVALID_ARGUMENT, "max_name_bytes")
        submit(self.stub, name="n" * 16)

    def test_task_type_length(self):
        self.refused(lambda: submit(self.stub, task_type="t" * 9),
                     grpc.StatusCode.INVALID_ARGUMENT, "max_type_bytes")

    def test_context_entries(self):
        self.refused(lambda: submit(self.stub, ctx={"a": "1", "b": "2", "c": "3", "d": "4"}),
                     grpc.StatusCode.INVALID_ARGUMENT, "max_context_entries")

    def test_context_bytes(self):
        self.refused(lambda: submit(self.stub, ctx={"message": "m" * 101}),
                     grpc.StatusCode.INVALID_ARGUMENT, "max_context_bytes")

    def test_pipeline_stages_and_input(self):
        st = pb.PipelineStage(name="s", model_id="echo")
        self.refused(lambda: self.stub.SubmitPipeline(pb.SubmitPipelineRequest(
            pipeline_id="p", stages=[st] * 3, strategy=1), timeout=RPC_TIMEOUT),
            grpc.StatusCode.INVALID_ARGUMENT, "max_stages")
        self.refused(lambda: self.stub.SubmitPipeline(pb.SubmitPipelineRequest(
            pipeline_id="p", stages=[st], strategy=1, input="i" * 101), timeout=RPC_TIMEOUT),
            grpc.StatusCode.INVALID_ARGUMENT, "max_context_bytes")

    def test_batch_size(self):
        req = pb.SubmitTaskRequest(name="b", task_type="echo")
        self.refused(lambda: self.stub.SubmitTasks(pb.SubmitTasksRequest(requests=[req] * 21),
                                                   timeout=RPC_TIMEOUT),
                     grpc.StatusCode.INVALID_ARGUMENT, "max_batch")

    def test_request_size_refused_by_grpc(self):
        # 70 KB > max_request_bytes = 64 KiB: gRPC refuses it before any
        # handler runs, with RESOURCE_EXHAUSTED.
        with self.assertRaises(grpc.RpcError) as cm:
            submit(self.stub, ctx={"message": "x" * 70000})
        self.assertEqual(cm.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
        self.assertIn("65536", cm.exception.details())
        self.assertEqual(self.srv.health(), SERVING)

    def test_result_truncated_with_marker(self):
        msg = "r" * 90
        tid = submit(self.stub, ctx={"message": msg}).task_id
        t = wait_until(lambda: (lambda x: x if x.status in FINAL else None)(
            self.stub.GetTask(pb.GetTaskRequest(task_id=tid), timeout=RPC_TIMEOUT)),
            what="the task to finish")
        self.assertEqual(t.status, DONE)
        self.assertTrue(t.result.startswith("r" * 32), t.result)
        self.assertNotEqual(t.result, msg)
        self.assertIn("truncated", t.result)
        self.assertIn("32 of 90 bytes", t.result)

    def test_queue_and_watchers(self):
        # max_queue: fill the queue behind two blocked workers.
        blockers = [submit(self.stub, task_type="sleep", ctx={"seconds": "60"}).task_id
                    for _ in range(2)]
        wait_until(lambda: status_counts(self.stub).tasks_by_status["running"] == 2,
                   what="both workers busy")
        queued = []
        try:
            while True:
                queued.append(submit(self.stub, task_type="sleep", ctx={"seconds": "60"}).task_id)
                self.assertLessEqual(len(queued), LIMITS["max_queue"])
        except grpc.RpcError as e:
            self.assertEqual(e.code(), grpc.StatusCode.RESOURCE_EXHAUSTED, e.details())
            self.assertIn("max_queue", e.details())
        self.assertEqual(len(queued), LIMITS["max_queue"])
        # In a batch, an entry over the limit gets its own RESOURCE_EXHAUSTED.
        resp = self.stub.SubmitTasks(pb.SubmitTasksRequest(requests=[
            pb.SubmitTaskRequest(name="b", task_type="echo")]), timeout=RPC_TIMEOUT)
        self.assertEqual(resp.results[0].code, grpc.StatusCode.RESOURCE_EXHAUSTED.value[0])
        self.assertIn("max_queue", resp.results[0].message)
        for tid in blockers + queued:
            self.stub.CancelTask(pb.CancelTaskRequest(task_id=tid), timeout=RPC_TIMEOUT)
        # max_watchers: the fourth concurrent stream is refused.
        ws = [Watcher(self.stub) for _ in range(LIMITS["max_watchers"])]
        sync_watchers(self.stub, ws)
        w = Watcher(self.stub)
        self.assertTrue(w.ended())
        self.assertEqual(w.code, grpc.StatusCode.RESOURCE_EXHAUSTED, w.details)
        self.assertIn("max_watchers", w.details)
        for x in ws:
            x.call.cancel()
            self.assertTrue(x.ended())
        # The slots come back once the streams are gone.
        wait_until(lambda: self._watch_ok(), what="a watcher slot to free up")

    def _watch_ok(self):
        w = Watcher(self.stub)
        ok = watcher_live(self.stub, w)
        w.call.cancel()
        w.ended()
        return ok


# -------------------------------------------------------------- client faults

CLIENT_FAULTS = {"workers": 2, "max_watchers": 2, "watch_buffer": 256}

KILLED_WATCHER = r"""
import sys, grpc
sys.path[:0] = sys.argv[2:]
from oee.v1 import orchestrator_pb2 as pb, orchestrator_pb2_grpc as pb_grpc
ch = grpc.insecure_channel(sys.argv[1])
for ev in pb_grpc.OrchestratorServiceStub(ch).WatchTasks(pb.WatchTasksRequest()):
    print("event", flush=True)
"""


class ClientFaultsTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.srv = Server(CLIENT_FAULTS)
        cls.stub = cls.srv.stub

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def assert_consistent(self):
        q = status_counts(self.stub)
        self.assertEqual(sum(q.tasks_by_status.values()), q.total_tasks)
        self.assertEqual(q.queue_size, q.tasks_by_status["queued"])

    def test_deadline_expires_mid_stream(self):
        # Both watcher slots are taken by streams whose deadline expires
        # while events flow; the slots must come back.
        for _ in range(3):
            ws = [Watcher(self.stub, timeout=0.5) for _ in range(CLIENT_FAULTS["max_watchers"])]
            # Paced, so the events stay well inside watch_buffer even when a
            # slow (sanitized) server writes them late: at most 40 tasks,
            # 3 events each, while the deadline runs out.
            stop = time.monotonic() + 0.8
            for _ in range(40):
                if time.monotonic() >= stop:
                    break
                submit(self.stub)
                time.sleep(0.02)
            for w in ws:
                self.assertTrue(w.ended())
                self.assertEqual(w.code, grpc.StatusCode.DEADLINE_EXCEEDED, w.details)
                self.assertTrue(w.events, "no event arrived before the deadline")
            wait_until(lambda: self._watchers_free(), what="watcher slots to free up")
        self.assert_consistent()

    def _watchers_free(self):
        ws = [Watcher(self.stub) for _ in range(CLIENT_FAULTS["max_watchers"])]
        ok = all([watcher_live(self.stub, w) for w in ws])
        for w in ws:
            w.call.cancel()
            w.ended()
        return ok

    def test_deadline_expires_mid_unary_call(self):
        # Deadlines of 0..3 ms on big batches: many expire while the request
        # is in flight or being handled. Every acknowledged task must exist;
        # the server keeps serving and its counts stay consistent.
        req = pb.SubmitTasksRequest(requests=[
            pb.SubmitTaskRequest(name="d", task_type="echo", context={"message": "x" * 50})] * 500)
        acked, expired = [], 0
        for i in range(40):
            try:
                resp = self.stub.SubmitTasks(req, timeout=0.001 * (i % 4))
                acked += [r.task_id for r in resp.results if r.code == 0]
            except grpc.RpcError as e:
                self.assertEqual(e.code(), grpc.StatusCode.DEADLINE_EXCEEDED, e.details())
                expired += 1
        self.assertGreater(expired, 0, "no deadline expired; the test proves nothing")
        for tid in acked[::50]:
            self.stub.GetTask(pb.GetTaskRequest(task_id=tid), timeout=RPC_TIMEOUT)
        self.assertEqual(self.srv.health(), SERVING)
        self.assert_consistent()
        self.stub.ClearCompletedTasks(pb.ClearCompletedTasksRequest(keep_recent=0),
                                      timeout=RPC_TIMEOUT)

    def test_client_killed_mid_stream(self):
        # A client process killed while its stream is busy, ten times over
        # with max_watchers = 2: a leaked slot would refuse the next stream.
        pythonpath = [p for p in sys.path if p]
        for _ in range(10):
            child = subprocess.Popen([sys.executable, "-c", KILLED_WATCHER, self.srv.target]
                                     + pythonpath, stdout=subprocess.PIPE,
                                     universal_newlines=True)
            # Submit until the child's stream is open and has seen an event.
            deadline = time.monotonic() + WAIT
            while not select.select([child.stdout], [], [], 0.05)[0]:
                self.assertLess(time.monotonic(), deadline, "the child saw no event")
                submit(self.stub)
            self.assertEqual(child.stdout.readline().strip(), "event")
            for _ in range(20):
                submit(self.stub)
            child.kill()
            child.wait()
            child.stdout.close()
        wait_until(lambda: self._watchers_free(), what="the killed clients' slots")
        self.assertEqual(self.srv.health(), SERVING)
        self.assert_consistent()

    def _slots_full(self):
        """True if a new watcher is refused: every watcher slot is taken."""
        probe = Watcher(self.stub)
        live = watcher_live(self.stub, probe)
        probe.call.cancel()
        probe.ended()
        return not live

    def test_watcher_that_never_reads(self):
        big = {"message": "m" * 2000}  # events carry the context: ~2 KB each

        def workload(n_batches):
            """Submits n batches of 50 echo tasks; returns the seconds taken
            and the ids, once the reading watcher has seen them all end."""
            ids = []
            t0 = time.monotonic()
            for _ in range(n_batches):
                resp = self.stub.SubmitTasks(pb.SubmitTasksRequest(requests=[
                    pb.SubmitTaskRequest(name="w", task_type="echo", context=big)] * 50),
                    timeout=RPC_TIMEOUT)
                ids += [r.task_id for r in resp.results]
            wait_until(lambda: all(reader.final_status(i) == DONE for i in ids[-50:]),
                       what="the reading watcher to see every task end")
            return time.monotonic() - t0, ids

        # The reader watches DONE events only (one per task), so that it
        # keeps up with bursts of 50 within watch_buffer = 256.
        reader = Watcher(self.stub, pb.WatchTasksRequest(statuses=[DONE]))
        sync_watchers(self.stub, [reader])
        base, _ = workload(20)
        # The stalled client: a stream it never reads from.
        stalled_ch = self.srv.new_channel()
        stalled = pb_grpc.OrchestratorServiceStub(stalled_ch).WatchTasks(pb.WatchTasksRequest())
        # It never reads, so no probe shows it registered; a refused third
        # watcher does (max_watchers = 2, the reader holds the other slot).
        wait_until(lambda: self._slots_full(), what="the stalled stream to take its slot")
        loaded, ids = workload(20)
        # 1000 tasks = 3000 events of ~2 KB: far more than watch_buffer (256)
        # plus gRPC's flow-control windows.
        self.assertLess(loaded / base, 4.0,
                        "a watcher that never reads slowed the others down: "
                        "%.2fs with it vs %.2fs without" % (loaded, base))
        self.assertIsNone(reader.code, "the reading watcher was dropped: %s" % reader.details)
        for i in ids[::97]:
            self.assertEqual(reader.statuses(i), [DONE])
        # The server drops it without waiting for it to read: its slot
        # (max_watchers = 2, the reader holds the other) is free again.
        def stalled_slot_free():
            probe = Watcher(self.stub)
            free = watcher_live(self.stub, probe)
            probe.call.cancel()
            probe.ended()
            return free
        wait_until(stalled_slot_free, timeout=30,
                   what="the stalled watcher's slot to free up without it reading")
        # Reading it now yields at most what was in flight, then
        # RESOURCE_EXHAUSTED naming the buffer.
        n = 0
        with self.assertRaises(grpc.RpcError) as cm:
            for _ in stalled:
                n += 1
        self.assertEqual(cm.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
        self.assertIn("watch_buffer", cm.exception.details())
        self.assertLess(n, 3000)
        stalled_ch.close()
        reader.call.cancel()
        reader.ended()
        self.assert_consistent()
        self.stub.ClearCompletedTasks(pb.ClearCompletedTasksRequest(keep_recent=0),
                                      timeout=RPC_TIMEOUT)


# ------------------------------------------------------------------- shutdown

class ShutdownTest(unittest.TestCase):

    def test_sigterm_under_load(self):
        srv = Server({"workers": 2}, drain_timeout=30)
        stub = srv.stub
        try:
            running = [submit(stub, name="run%d" % i, task_type="sleep",
                              ctx={"seconds": "2"}).task_id for i in range(2)]
            wait_until(lambda: status_counts(stub).tasks_by_status["running"] == 2,
                       what="two running tasks")
            queued = [submit(stub, name="q%d" % i, task_type="sleep",
                             ctx={"seconds": "1"}).task_id for i in range(5)]
            watchers = [Watcher(stub) for _ in range(3)]
            sync_watchers(stub, watchers)
            self.assertEqual(srv.health(), SERVING)
            srv.proc.send_signal(signal.SIGTERM)
            wait_until(lambda: srv.health() == NOT_SERVING, timeout=10,
                       what="health NOT_SERVING")
            with self.assertRaises(grpc.RpcError) as cm:
                submit(stub)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
            # The two running tasks finish (2 s < drain timeout) and every
            # watcher sees them end DONE, then the stream ends UNAVAILABLE.
            for w in watchers:
                self.assertTrue(w.ended(), "a watcher got no final status")
                self.assertEqual(w.code, grpc.StatusCode.UNAVAILABLE, w.details)
                for tid in running:
                    self.assertEqual(w.statuses(tid)[-1:], [DONE], "watcher missed an end")
                for tid in queued:
                    self.assertNotIn(RUNNING, w.statuses(tid))
            rc = srv.wait_exit()
            self.assertEqual(rc, 0, srv.log())
        finally:
            srv.stop()

    def test_second_signal_stops_at_once(self):
        drain = 120
        srv = Server({"workers": 2}, drain_timeout=drain)
        stub = srv.stub
        try:
            running = [submit(stub, task_type="sleep", ctx={"seconds": "600"}).task_id
                       for _ in range(2)]
            wait_until(lambda: status_counts(stub).tasks_by_status["running"] == 2,
                       what="two running tasks")
            w = Watcher(stub)
            sync_watchers(stub, [w])
            srv.proc.send_signal(signal.SIGTERM)
            wait_until(lambda: srv.health() == NOT_SERVING, timeout=10,
                       what="health NOT_SERVING")
            t0 = time.monotonic()
            srv.proc.send_signal(signal.SIGTERM)
            rc = srv.wait_exit(timeout=drain / 2)
            took = time.monotonic() - t0
            self.assertEqual(rc, 0, srv.log())
            # Well inside the drain timeout: the running tasks were cancelled.
            self.assertLess(took, drain / 4, "second signal did not stop promptly")
            self.assertTrue(w.ended())
            self.assertEqual(w.code, grpc.StatusCode.UNAVAILABLE, w.details)
            # The tasks were cancelled, not finished, and the watcher saw
            # their final CANCELLED events before its stream ended.
            for tid in running:
                self.assertEqual(w.statuses(tid)[-1:], [CANCELLED], w.statuses(tid))
        finally:
            srv.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
