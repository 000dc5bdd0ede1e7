"""Crash test of the durable store: kill -9 at random moments, restart on the
same data directory, and check that nothing acknowledged was lost.

Clients submit continuously from several connections (SubmitTask of every
kind, SubmitTasks batches, SubmitPipeline) and record every id the server
acknowledged. The server (one worker, so start order is strict) is killed
with SIGKILL at a random moment, restarted on the same data directory, and
so on OEE_CRASH_KILLS times (default 10 here; scripts/crash-test runs 100).
At the end, with the server running until the queue is empty:

  * every acknowledged task exists, and no submission exists twice;
  * every task ended; one that was RUNNING at a kill ended ERROR
    "interrupted: server restarted", any other ended as its type says;
  * an exec task ran at most once (its command appends its token to a file):
    exactly once when it ended DONE, never after it was interrupted;
  * tasks queued at a kill started after the restart in priority order,
    FIFO among equal priorities.
"""

import collections
import json
import os
import random
import signal
import subprocess
import tempfile
import threading
import time
import unittest

import grpc

from oee.v1 import orchestrator_pb2 as pb
from oee.v1 import orchestrator_pb2_grpc as pb_grpc

KILLS = int(os.environ.get("OEE_CRASH_KILLS", "10"))  # scripts/crash-test: 100
CLIENTS = 4
RPC_TIMEOUT = 10.0
S = pb.TaskStatus
QUEUED, RUNNING, DONE, ERROR, CANCELLED = (
    S.Value("TASK_STATUS_QUEUED"), S.Value("TASK_STATUS_RUNNING"),
    S.Value("TASK_STATUS_DONE"), S.Value("TASK_STATUS_ERROR"),
    S.Value("TASK_STATUS_CANCELLED"))
INTERRUPTED = "interrupted: server restarted"


def runfile(path):
    return os.path.join(os.environ["TEST_SRCDIR"], "oee", path)


def ns(ts):
    return ts.seconds * 1000000000 + ts.nanos


class Server(object):
    def __init__(self, data_dir, config_path):
        argv = [runfile("server/oee-server"), "--listen", "127.0.0.1:0",
                "--config", config_path, "--store", "sqlite", "--data-dir", data_dir,
                "--sync", "full", "--workers", "1"]
        # Beside the data directory, which need not exist yet.
        self.log = open(os.path.join(os.path.dirname(data_dir), "server.log"), "a")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.log,
                                     universal_newlines=True)
        line = self.proc.stdout.readline()
        if "listening on port" not in line:
            self.proc.kill()
            raise AssertionError("server did not start: %r" % line)
        self.target = "127.0.0.1:%s" % line.split()[-1]
        self.started_ns = time.time_ns()

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc.stdout.close()
        self.log.close()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=60)
        self.proc.stdout.close()
        self.log.close()
        return rc


class Client(threading.Thread):
    """Submits until told to stop; keeps what the server acknowledged."""

    def __init__(self, n, target, acked, lock, runlog):
        threading.Thread.__init__(self, daemon=True)
        self.n, self.target, self.acked, self.lock = n, target, acked, lock
        self.runlog = runlog
        self.stop_flag = threading.Event()
        self.rng = random.Random(n * 7919 + int(time.time()))
        self.counter = 0

    def name(self):
        self.counter += 1
        return "c%d-%d-%d" % (self.n, os.getpid(), self.counter)

    def one_request(self):
        kind = self.rng.choice(["echo", "sleep", "fail", "exec", "exec"])
        name = self.name()
        ctx = {"message": name}
        if kind == "sleep":
            ctx = {"seconds": "0.02"}
        elif kind == "exec":
            ctx = {"command": "record", "input": name}
        return kind, pb.SubmitTaskRequest(name=name, task_type=kind, context=ctx,
                                          priority=self.rng.randint(0, 10))

    def keep(self, task, kind):
        with self.lock:
            self.acked[task.id] = (kind, task.name, task.priority, time.time_ns())

    def submit_some(self, stub):
        what = self.rng.random()
        if what < 0.6:
            kind, req = self.one_request()
            resp = stub.SubmitTask(req, timeout=RPC_TIMEOUT)
            self.keep(resp.task, kind)
        elif what < 0.9:
            reqs = [self.one_request() for _ in range(5)]
            resp = stub.SubmitTasks(pb.SubmitTasksRequest(requests=[r for _, r in reqs]),
                                    timeout=RPC_TIMEOUT)
            for (kind, _), res in zip(reqs, resp.results):
                if res.code == 0:
                    self.keep(res.task, kind)
        else:
            name = self.name()
            resp = stub.SubmitPipeline(pb.SubmitPipelineRequest(
                pipeline_id=name, name=name, input=name,
                strategy=pb.PipelineStrategy.Value("LOCAL_FAST_PRECISE"),
                stages=[pb.PipelineStage(name="a", model_id="echo")]), timeout=RPC_TIMEOUT)
            self.keep(resp.task, "pipeline")

    def run(self):
        channel = grpc.insecure_channel(self.target)
        stub = pb_grpc.OrchestratorServiceStub(channel)
        while not self.stop_flag.is_set():
            try:
                self.submit_some(stub)
            except grpc.RpcError:
                time.sleep(0.01)  # the server is gone: this client ends soon
        channel.close()


def list_all(stub):
    tasks, token = [], ""
    while True:
        page = stub.ListTasks(pb.ListTasksRequest(page_size=1000, page_token=token),
                              timeout=RPC_TIMEOUT)
        tasks.extend(page.tasks)
        token = page.next_page_token
        if not token:
            return tasks


class CrashTest(unittest.TestCase):
    def test_kill_nine_loses_nothing_acknowledged(self):
        root = tempfile.mkdtemp(prefix="oee-crash-")
        data = os.path.join(root, "data")
        runlog = os.path.join(root, "runs.log")
        config = os.path.join(root, "config.json")
        with open(config, "w") as f:
            json.dump({"commands": {"record": {
                "argv": ["sh", "-c", "cat >> '%s'; echo >> '%s'; echo ok" % (runlog, runlog)],
                "timeout_seconds": 10}}}, f)
        acked, lock = {}, threading.Lock()
        restarts = []  # (kill time, restart time) in ns
        rng = random.Random()
        for k in range(KILLS):
            srv = Server(data, config)
            if restarts:
                restarts[-1] = (restarts[-1][0], srv.started_ns)
            # Client numbers are unique over all rounds, so are the names.
            clients = [Client(k * CLIENTS + i, srv.target, acked, lock, runlog)
                       for i in range(CLIENTS)]
            for c in clients:
                c.start()
            time.sleep(rng.uniform(0.05, 0.6))
            kill_ns = time.time_ns()
            srv.kill()
            restarts.append((kill_ns, None))
            for c in clients:
                c.stop_flag.set()
            for c in clients:
                c.join(30)
        srv = Server(data, config)
        restarts[-1] = (restarts[-1][0], srv.started_ns)
        channel = grpc.insecure_channel(srv.target)
        stub = pb_grpc.OrchestratorServiceStub(channel)
        deadline = time.monotonic() + 300
        while True:
            q = stub.GetQueueStatus(pb.GetQueueStatusRequest(), timeout=RPC_TIMEOUT)
            if q.tasks_by_status["queued"] == 0 and q.tasks_by_status["running"] == 0:
                break
            self.assertLess(time.monotonic(), deadline, "queue never drained")
            time.sleep(0.1)
        tasks = list_all(stub)
        channel.close()
        self.assertEqual(srv.stop(), 0)
        # Under --config=asan/tsan the server reports there, killed or not.
        with open(os.path.join(root, "server.log")) as f:
            reports = [line for line in f if "Sanitizer" in line]
        self.assertEqual(reports, [], "the server's log has sanitizer reports")
        self.check(tasks, acked, runlog, restarts)

    def check(self, tasks, acked, runlog, restarts):
        by_id = {t.id: t for t in tasks}
        self.assertEqual(len(by_id), len(tasks), "a task is listed twice")
        names = collections.Counter(t.name for t in tasks)
        dup = [n for n, c in names.items() if c > 1]
        self.assertEqual(dup, [], "submissions stored twice")
        missing = [i for i in acked if i not in by_id]
        self.assertEqual(missing, [], "acknowledged tasks lost")
        runs = collections.Counter()
        with open(runlog) if os.path.exists(runlog) else open(os.devnull) as f:
            for line in f:
                if line.strip():
                    runs[line.strip()] += 1
        for t in tasks:
            self.assertIn(t.status, (DONE, ERROR, CANCELLED), t)
            interrupted = t.status == ERROR and t.error_message == INTERRUPTED
            if t.task_type == "exec":
                self.assertLessEqual(runs[t.name], 1, "exec task ran twice: %s (status %d %r)" % (
                    t.name, t.status, t.error_message))
                if t.status == DONE:
                    self.assertEqual(runs[t.name], 1, t)
            elif t.task_type == "echo" and not interrupted:
                self.assertEqual((t.status, t.result), (DONE, t.name), t)
            elif t.task_type == "fail" and not interrupted:
                self.assertEqual(t.status, ERROR, t)
        self.check_order(tasks, restarts)
        print("crash test: %d kills, %d acknowledged, %d stored, %d interrupted" % (
            len(restarts), len(acked), len(tasks),
            sum(1 for t in tasks if t.error_message == INTERRUPTED)))

    def check_order(self, tasks, restarts):
        """Tasks queued at kill k start after restart k by priority, then FIFO."""
        for kill_ns, restart_ns in restarts:
            waiting = [t for t in tasks if ns(t.created_at) < kill_ns
                       and t.HasField("started_at") and ns(t.started_at) >= restart_ns]
            # Pipelines and every other type share the one queue.
            waiting.sort(key=lambda t: ns(t.started_at))
            for a, b in zip(waiting, waiting[1:]):
                # created_at is taken with the submission index, so it is
                # the FIFO order among equal priorities.
                self.assertGreaterEqual(a.priority, b.priority,
                                        "recovered order broken: %s before %s" % (a.name, b.name))
                if a.priority == b.priority:
                    self.assertLessEqual(ns(a.created_at), ns(b.created_at),
                                         "FIFO broken: %s before %s" % (a.name, b.name))


if __name__ == "__main__":
    unittest.main()
