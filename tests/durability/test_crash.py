"""Crash test of the durable store: kill -9 at random moments, restart on the
same data directory, and check that nothing acknowledged was lost.

Clients submit continuously from several connections and record every id
the server acknowledged. Beside plain tasks (SubmitTask of every kind,
SubmitTasks batches, SubmitPipeline) the workload has three kinds that wait
inside the server, each told apart by the prefix of its name:

  d-  delayed `echo` tasks, run_at 0.5..4 s ahead (SCHEDULED until then),
      alone or three in a SubmitTasks batch;
  r-  retried tasks, max_attempts 3 and backoff 1 s: the built-in `fail`
      ({"message": "x"}), and some `exec` tasks whose command appends
      "<name> <OEE_ATTEMPT>" to a file and exits 1 50 ms later;
  g-  small graphs in one SubmitTasks call with "#<index>" references
      (chains, diamonds, one-to-several-to-one fans), some with a `fail` node
      (sometimes with max_attempts 2), some rooted on a task of an earlier
      graph, some with a middle entry that also has a run_at 0.5..3 s ahead
      (so the graph stays half-finished for a while).

These often get priority 10, so that they run (and kills land in them)
while the kills go on, not only in the final drain behind the plain load.

Every request is noted by name before it is sent, so a task stored but never
acknowledged (its reply lost in a kill) is checked too. The server (one
worker, so start order is strict) is killed with SIGKILL at a random moment,
restarted on the same data directory, and so on OEE_CRASH_KILLS times
(default 10 here, the CI setting; scripts/crash-test runs 100).

The run must show that each waiting state survives a kill: at some restart
the checks must have met a delayed task still SCHEDULED, a retried task
waiting out the backoff of an attempt that failed before the kill, a task
that was RUNNING at the kill waiting the backoff its recovery began
("interrupted"), and a half-finished graph (a DONE task and one still
waiting for its dependencies). Random kills meet the first three and the
graphs almost always, an interrupted retry less often; for each state not
met after OEE_CRASH_KILLS kills the test kills again (at most AIMED_KILLS
more times), aiming: it watches the server (WatchTasks) and kills once a
task is in that state with time enough left to still be in it after the
restart. A state never met fails the test.

Right after each restart, before any client runs again:

  * every acknowledged task exists, and no task has attempt > max_attempts;
  * a delayed task is still SCHEDULED with its own run_at unless that time
    has passed, and none started before its run_at;
  * a task waiting SCHEDULED with "interrupted: server restarted" (found
    RUNNING by a recovery, attempts left) waits a backoff that began during
    a recovery;
  * a retried task SCHEDULED still shows its failed attempt (attempt >= 1,
    started_at, its error) and its run_at; a graph task waiting for its
    dependencies never started; one with a run_at keeps it and never
    started before it (also checked at the end).

At the end, with the server running undisturbed until nothing is QUEUED,
SCHEDULED or RUNNING (bounded wait):

  * every acknowledged task exists, and no submission exists twice;
  * every task ended; a plain one that was RUNNING at a kill ended ERROR
    "interrupted: server restarted", any other ended as its type says; no
    failure here is permanent, so any task that ended ERROR used all its
    max_attempts;
  * an exec task ran at most once (its command appends its token to a file):
    exactly once when it ended DONE, never after it was interrupted;
  * plain tasks queued at a kill started after the restart in priority
    order, FIFO among equal priorities;
  * delayed tasks never started before their run_at;
  * retried tasks ended ERROR after exactly max_attempts = 3 attempts (an
    interrupted attempt counts), and a retried exec command ran at most 3
    times, each attempt number at most once;
  * a graph task depends on exactly the tasks its request named; one that
    ran started after every dependency completed (all DONE); one with a
    dependency that ended ERROR or CANCELLED ended CANCELLED without
    running, "dependency <id> ended ERROR|CANCELLED" naming such a direct
    dependency.
"""

import collections
import json
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

import grpc

from oee.v1 import orchestrator_pb2 as pb
from oee.v1 import orchestrator_pb2_grpc as pb_grpc

KILLS = int(os.environ.get("OEE_CRASH_KILLS", "10"))  # scripts/crash-test: 100
CLIENTS = 4
RPC_TIMEOUT = 10.0
S = pb.TaskStatus
QUEUED, RUNNING, DONE, ERROR, CANCELLED, SCHEDULED = (
    S.Value("TASK_STATUS_QUEUED"), S.Value("TASK_STATUS_RUNNING"),
    S.Value("TASK_STATUS_DONE"), S.Value("TASK_STATUS_ERROR"),
    S.Value("TASK_STATUS_CANCELLED"), S.Value("TASK_STATUS_SCHEDULED"))
FINAL = (DONE, ERROR, CANCELLED)
INTERRUPTED = "interrupted: server restarted"
DELAY = (0.5, 4.0)       # a delayed task's run_at is this many seconds ahead
GRAPH_DELAY = (0.5, 3.0)  # the same for a graph's middle entry that waits for a time
RETRY_ATTEMPTS = 3       # retried tasks: max_attempts ...
RETRY_BACKOFF = 1.0      # ... and backoff_seconds (before retry n: 2^(n-1) * [0.5, 1] s)
# The waiting states each run must have met at some restart (see check_restart).
STATES = ("delayed waiting", "retry backoff", "interrupted", "graph half-finished")
AIMED_KILLS = 10  # at most this many kills after the KILLS aimed at a state not met yet
AIM_WAIT = 8.0    # seconds an aimed round waits for its state before killing anyway
STALL_SECONDS = 60                # the final drain fails when nothing ends for this long
DRAIN_SECONDS = 300 + 10 * KILLS  # or when it takes longer than this in all
DEP_ENDED = re.compile(r"^dependency ([0-9a-f-]{36}) ended (ERROR|CANCELLED)$")


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
        # Recovery (and its interruption backoffs) happens between launch and
        # the "listening" line.
        self.launch_ns = time.time_ns()
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


class Ledger(object):
    """What the clients asked for and what the server acknowledged.

    acked: id -> (kind, name, priority, time acknowledged);
    plan: name -> what a waiting-kind request asked for, noted before it is
    sent (kind "delayed", "retry" or "graph"); graph_ids: acknowledged graph
    tasks, for later graphs to depend on."""

    def __init__(self):
        self.lock = threading.Lock()
        self.acked = {}
        self.plan = {}
        self.graph_ids = []


class Client(threading.Thread):
    """Submits until told to stop; keeps what the server acknowledged."""

    def __init__(self, n, target, ledger):
        threading.Thread.__init__(self, daemon=True)
        self.n, self.target, self.ledger = n, target, ledger
        self.stop_flag = threading.Event()
        self.rng = random.Random(n * 7919 + int(time.time()))
        self.counter = 0

    def name(self, prefix=""):
        self.counter += 1
        return "%sc%d-%d-%d" % (prefix, self.n, os.getpid(), self.counter)

    def note(self, name, **plan):
        with self.ledger.lock:
            self.ledger.plan[name] = plan

    def urgent(self):
        """The waiting kinds often get the top priority: the one worker is far
        behind the plain load, and these must also run (and be killed
        mid-way) while the kills go on, not only in the final drain."""
        return 10 if self.rng.random() < 0.5 else self.rng.randint(0, 10)

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

    def delayed_request(self):
        name = self.name("d-")
        run_at = time.time_ns() + int(self.rng.uniform(*DELAY) * 1e9)
        req = pb.SubmitTaskRequest(name=name, task_type="echo", context={"message": name},
                                   priority=self.urgent())
        req.run_at.FromNanoseconds(run_at)
        self.note(name, kind="delayed", run_at=run_at)
        return "delayed", req

    def retry_request(self):
        name = self.name("r-")
        if self.rng.random() < 0.3:
            task_type, ctx = "exec", {"command": "flaky", "input": name}
        else:
            task_type, ctx = "fail", {"message": "x"}
        self.note(name, kind="retry", type=task_type)
        return "retry", pb.SubmitTaskRequest(
            name=name, task_type=task_type, context=ctx, priority=10,
            max_attempts=RETRY_ATTEMPTS, backoff_seconds=RETRY_BACKOFF)

    def graph_shape(self):
        """The "#<index>" references of each entry of one small graph."""
        shape = self.rng.choice(["chain", "diamond", "fan"])
        if shape == "chain":
            return [[]] + [[i] for i in range(self.rng.randint(1, 3))]
        if shape == "diamond":
            return [[], [0], [0], [1, 2]]
        width = self.rng.randint(2, 4)
        return [[]] + [[0]] * width + [list(range(1, width + 1))]

    def graph_hold(self, deps):
        """Sometimes a middle entry (one others depend on) also waits for a
        time (run_at GRAPH_DELAY ahead): the entries after it then wait for
        their dependencies while those before it end, a half-finished graph
        that lasts. (index, run_at in ns) or (None, None)."""
        middles = [i for i in range(1, len(deps)) if any(i in refs for refs in deps)]
        if not middles or self.rng.random() >= 0.3:
            return None, None
        return self.rng.choice(middles), time.time_ns() + int(
            self.rng.uniform(*GRAPH_DELAY) * 1e9)

    def graph_requests(self):
        """One small graph, its entries' notes taken."""
        deps = self.graph_shape()
        external = None
        with self.ledger.lock:
            if self.ledger.graph_ids and self.rng.random() < 0.3:
                external = self.rng.choice(self.ledger.graph_ids)
        failing = self.rng.randrange(len(deps)) if self.rng.random() < 0.4 else None
        held, hold = self.graph_hold(deps)
        names = [self.name("g-") for _ in deps]
        # rest: the entries that are not the held one nor after it; once all
        # of them are DONE, the graph stays half-finished until `hold`.
        after = {held}
        for i, refs in enumerate(deps):
            if any(j in after for j in refs):
                after.add(i)
        rest = [name for i, name in enumerate(names) if i not in after]
        priority = self.urgent()
        reqs = []
        for i, (name, refs) in enumerate(zip(names, deps)):
            task_type = "fail" if i == failing else self.rng.choice(["echo", "echo", "sleep"])
            ctx = {"echo": {"message": name}, "sleep": {"seconds": "0.02"},
                   "fail": {"message": "x"}}[task_type]
            depends_on = ["#%d" % j for j in refs]
            if i == 0 and external:
                depends_on.append(external)
            req = pb.SubmitTaskRequest(name=name, task_type=task_type, context=ctx,
                                       priority=priority, depends_on=depends_on)
            if task_type == "fail" and self.rng.random() < 0.5:
                req.max_attempts, req.backoff_seconds = 2, 0.2
            if i == held:
                req.run_at.FromNanoseconds(hold)
            self.note(name, kind="graph", type=task_type, root=(i == 0), graph=names[0],
                      deps=[names[j] for j in refs], external=external if i == 0 else None,
                      run_at=hold if i == held else None,
                      hold=hold if failing is None else None, rest=rest)
            reqs.append(req)
        return reqs

    def keep(self, task, kind):
        with self.ledger.lock:
            self.ledger.acked[task.id] = (kind, task.name, task.priority, time.time_ns())
            if kind == "graph":
                self.ledger.graph_ids.append(task.id)

    def submit_batch(self, stub, reqs):
        resp = stub.SubmitTasks(pb.SubmitTasksRequest(requests=[r for _, r in reqs]),
                                timeout=RPC_TIMEOUT)
        for (kind, _), res in zip(reqs, resp.results):
            if res.code == 0:
                self.keep(res.task, kind)

    def submit_some(self, stub):
        what = self.rng.random()
        if what < 0.5:
            kind, req = self.one_request()
            resp = stub.SubmitTask(req, timeout=RPC_TIMEOUT)
            self.keep(resp.task, kind)
        elif what < 0.75:
            self.submit_batch(stub, [self.one_request() for _ in range(5)])
        elif what < 0.82:
            name = self.name()
            resp = stub.SubmitPipeline(pb.SubmitPipelineRequest(
                pipeline_id=name, name=name, input=name,
                strategy=pb.PipelineStrategy.Value("LOCAL_FAST_PRECISE"),
                stages=[pb.PipelineStage(name="a", model_id="echo")]), timeout=RPC_TIMEOUT)
            self.keep(resp.task, "pipeline")
        elif what < 0.86:
            kind, req = self.delayed_request()
            self.keep(stub.SubmitTask(req, timeout=RPC_TIMEOUT).task, kind)
        elif what < 0.88:
            self.submit_batch(stub, [self.delayed_request() for _ in range(3)])
        elif what < 0.93:
            kind, req = self.retry_request()
            self.keep(stub.SubmitTask(req, timeout=RPC_TIMEOUT).task, kind)
        else:
            self.submit_batch(stub, [("graph", r) for r in self.graph_requests()])

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
    """Every stored task, oldest first, each with the time its page arrived."""
    tasks, token = [], ""
    while True:
        page = stub.ListTasks(pb.ListTasksRequest(page_size=1000, page_token=token),
                              timeout=RPC_TIMEOUT)
        at = time.time_ns()
        tasks.extend((t, at) for t in page.tasks)
        token = page.next_page_token
        if not token:
            return tasks


def write_config(path, runlog, attemptlog):
    with open(path, "w") as f:
        json.dump({"commands": {
            "record": {
                "argv": ["sh", "-c", "cat >> '%s'; echo >> '%s'; echo ok" % (runlog, runlog)],
                "timeout_seconds": 10},
            # A retried exec task: notes "<name> <attempt>", then fails 50 ms
            # later (long enough for kills to land in it). A child the kill
            # orphaned before its input came reads nothing (the server does
            # not take its children with it): it notes nothing, since no
            # attempt can be told from its line.
            "flaky": {
                "argv": ["sh", "-c", "n=$(cat); [ -n \"$n\" ] || exit 1;"
                         " printf '%%s %%s\\n' \"$n\" \"$OEE_ATTEMPT\" >> '%s';"
                         " sleep 0.05; exit 1" % attemptlog],
                "timeout_seconds": 10}}}, f)


class Aim(threading.Thread):
    """Watches the server's changes and fires once a task is in one of the
    `wanted` states with time enough left in it to still be there after the
    kill and the restart, so that the kill lands in that state. A durable
    server sends a change only once it is stored, so the kill can follow at
    once. `what` and `settle` (seconds to wait before killing) say what it
    found."""

    def __init__(self, target, ledger, wanted, restart_s):
        threading.Thread.__init__(self, daemon=True)
        self.target, self.ledger, self.wanted = target, ledger, set(wanted)
        # A SCHEDULED state must outlast the kill and a restart as slow as
        # the last one, with room to spare.
        self.margin = 1.5 * restart_s + 0.3
        self.fired = threading.Event()
        self.what, self.settle = None, 0.0
        self.done = set()  # graph entries seen DONE

    def run(self):
        channel = grpc.insecure_channel(self.target)
        stub = pb_grpc.OrchestratorServiceStub(channel)
        try:
            req = pb.WatchTasksRequest(statuses=[RUNNING, SCHEDULED, DONE])
            for ev in stub.WatchTasks(req):
                found = self.match(ev.task)
                if found:
                    self.what, self.settle = found
                    self.fired.set()
                    break
        except grpc.RpcError:
            pass  # the kill ended the stream (or it overflowed): a blind kill
        channel.close()

    def match(self, t):
        with self.ledger.lock:
            p = self.ledger.plan.get(t.name)
        if p is None:
            return None
        ahead = (ns(t.run_at) - time.time_ns()) / 1e9 if t.HasField("run_at") else 0
        if t.status == RUNNING:
            # A flaky exec attempt lasts 50 ms after its start; the kill
            # comes about 10 ms in.
            if ("interrupted" in self.wanted and p["kind"] == "retry" and p["type"] == "exec"
                    and t.attempt < t.max_attempts):
                return "interrupted", 0.01
            return None
        if t.status == DONE:
            # Every entry of its graph before the one waiting for a time is
            # DONE; those after that one wait for their dependencies until
            # then, and no other entry runs to be interrupted by the kill.
            if p["kind"] == "graph":
                self.done.add(t.name)
            if ("graph half-finished" in self.wanted and p["kind"] == "graph" and p["hold"]
                    and (p["hold"] - time.time_ns()) / 1e9 > self.margin
                    and self.done.issuperset(p["rest"])):
                return "graph half-finished", 0.0
            return None
        if "retry backoff" in self.wanted and p["kind"] == "retry" and ahead > self.margin:
            return "retry backoff", 0.0
        if "delayed waiting" in self.wanted and p["kind"] == "delayed" and ahead > self.margin:
            return "delayed waiting", 0.0
        return None


class CrashTest(unittest.TestCase):
    def test_kill_nine_loses_nothing_acknowledged(self):
        root = tempfile.mkdtemp(prefix="oee-crash-")
        data = os.path.join(root, "data")
        runlog = os.path.join(root, "runs.log")
        attemptlog = os.path.join(root, "attempts.log")
        config = os.path.join(root, "config.json")
        write_config(config, runlog, attemptlog)
        ledger = Ledger()
        self.interrupted = set()  # (id, run_at) of interrupted waits at the last restart
        restarts = []  # (kill time, restart time) in ns
        starts = []    # (launch, listening) of every start, in ns
        seen = collections.Counter()  # what the checks after restarts met
        aimed = collections.Counter()  # the aimed kills, by the state aimed at
        k = 0
        while True:
            srv = Server(data, config)
            starts.append((srv.launch_ns, srv.started_ns))
            if restarts:
                restarts[-1] = (restarts[-1][0], srv.started_ns)
                self.check_restart(srv, ledger, starts, seen)
            missing = [w for w in STATES if not seen[w]]
            if k >= KILLS and (not missing or k >= KILLS + AIMED_KILLS):
                break
            restarts.append((self.one_round(k, srv, ledger, missing, starts, aimed), None))
            k += 1
        tasks = self.drain(srv)
        # Under --config=asan/tsan the server reports there, killed or not.
        with open(os.path.join(root, "server.log")) as f:
            reports = [line for line in f if "Sanitizer" in line]
        self.assertEqual(reports, [], "the server's log has sanitizer reports")
        self.check(tasks, ledger, runlog, attemptlog, restarts, seen)
        print("crash test: %d kills, %d of them aimed (%s)" % (
            len(restarts), sum(aimed.values()), dict(aimed)))
        # Each state must have been met at some restart, or this run did not
        # show that it survives a kill.
        self.assertEqual(missing, [], "never found at a restart: %s (seen: %s)" % (
            missing, dict(seen)))
        # Passed: the data directory and logs go (kept after a failure).
        shutil.rmtree(root, ignore_errors=True)

    def one_round(self, k, srv, ledger, missing, starts, aimed):
        """Clients submit until the kill: at a random moment in the first
        KILLS rounds, then aimed at a state no restart has shown yet (a
        blind kill when none comes within AIM_WAIT). The kill's time."""
        # Client numbers are unique over all rounds, so are the names.
        clients = [Client(k * CLIENTS + i, srv.target, ledger) for i in range(CLIENTS)]
        aim = None
        if k >= KILLS:
            launch, listening = starts[-1]
            aim = Aim(srv.target, ledger, missing, (listening - launch) / 1e9)
            aim.start()
        for c in clients:
            c.start()
        if aim is None:
            time.sleep(random.uniform(0.05, 0.6))
        elif aim.fired.wait(AIM_WAIT):
            aimed[aim.what] += 1
            time.sleep(aim.settle)
        kill_ns = time.time_ns()
        srv.kill()
        for c in clients:
            c.stop_flag.set()
        for c in clients + ([aim] if aim else []):
            c.join(30)
        return kill_ns

    def drain(self, srv):
        """Lets the server run until nothing is QUEUED, SCHEDULED or
        RUNNING, stops it, and returns every task. The one worker gets
        through some 80 tasks/s here (each change fsynced, exec tasks fork
        a shell), and 100 kills leave 20,000 or more behind: the wait is
        bounded by progress (a task must end every STALL_SECONDS; no wait
        here is longer than a few seconds) and by DRAIN_SECONDS in all."""
        channel = grpc.insecure_channel(srv.target)
        stub = pb_grpc.OrchestratorServiceStub(channel)
        start = last_move = time.monotonic()
        left = None
        while True:
            q = stub.GetQueueStatus(pb.GetQueueStatusRequest(), timeout=RPC_TIMEOUT)
            now = sum(q.tasks_by_status[s] for s in ("queued", "running", "scheduled"))
            if now == 0:
                break
            if left is None or now < left:
                left, last_move = now, time.monotonic()
            self.assertLess(time.monotonic() - last_move, STALL_SECONDS,
                            "drain stalled: %s" % dict(q.tasks_by_status))
            self.assertLess(time.monotonic() - start, DRAIN_SECONDS,
                            "never drained: %s" % dict(q.tasks_by_status))
            time.sleep(0.1)
        tasks = list_all(stub)
        channel.close()
        self.assertEqual(srv.stop(), 0)
        return tasks

    # ------------------------------------------------- after each restart

    def check_restart(self, srv, ledger, starts, seen):
        """The recovered state, before any client submits again. Counts in
        `seen` the waiting states (STATES) it finds: a delayed task still
        SCHEDULED with its run_at; a retried task waiting out the backoff of
        an attempt that failed before the kill; a task that was RUNNING at
        the kill, waiting the backoff this recovery began; a graph with a
        DONE task and one still waiting for its dependencies."""
        channel = grpc.insecure_channel(srv.target)
        stub = pb_grpc.OrchestratorServiceStub(channel)
        listed = list_all(stub)
        channel.close()
        with ledger.lock:
            acked = set(ledger.acked)
            plan = dict(ledger.plan)
        ids = set(t.id for t, _ in listed)
        lost = sorted(acked - ids)
        self.assertEqual(lost, [], "acknowledged tasks lost at restart %d" % (len(starts) - 1))
        graphs = collections.defaultdict(set)  # graph -> its members' states
        # Interrupted waits already listed at the previous restart are older
        # than this recovery: those it began are the new ones.
        earlier, self.interrupted = self.interrupted, set()
        for t, at in listed:
            self.assertLessEqual(t.attempt, t.max_attempts, "more attempts than allowed: %s" % t)
            recovered = False  # waits a backoff that this recovery began
            if t.status == SCHEDULED and t.error_message == INTERRUPTED:
                self.check_backoff_from_restart(t, starts)
                self.interrupted.add((t.id, ns(t.run_at)))
                recovered = (t.id, ns(t.run_at)) not in earlier
                seen["interrupted"] += recovered
            p = plan.get(t.name)
            if p is None:
                continue
            if p["kind"] == "delayed":
                self.check_delayed(t, p["run_at"], at)
                if t.status == SCHEDULED:
                    seen["delayed waiting"] += 1
            elif p["kind"] == "retry":
                self.check_retry_waiting(t, recovered, seen)
            elif p["kind"] == "graph":
                self.check_graph_run_at(t, p)
                graphs[p["graph"]].add(self.graph_state(t))
        seen["graph half-finished"] += sum(1 for g in graphs.values()
                                           if DONE in g and "waiting" in g)

    def check_retry_waiting(self, t, recovered, seen):
        """A retried task SCHEDULED at a restart waits after a failed attempt,
        which it still shows."""
        self.assertEqual(t.max_attempts, RETRY_ATTEMPTS, t)
        if t.status != SCHEDULED:
            return
        self.assertGreaterEqual(t.attempt, 1, t)
        self.assertTrue(t.HasField("run_at") and t.HasField("started_at") and t.error_message, t)
        if not recovered:  # it was in its backoff when killed
            seen["retry backoff"] += 1

    def check_graph_run_at(self, t, p):
        """A graph entry that also waits for a time keeps its run_at while
        SCHEDULED and never starts before it."""
        if p["run_at"] is None:
            return
        if t.status == SCHEDULED:
            self.assertEqual(ns(t.run_at), p["run_at"], "run_at changed: %s" % t)
        if t.HasField("started_at"):
            self.assertGreaterEqual(ns(t.started_at), p["run_at"],
                                    "%s started before its run_at" % t)

    def graph_state(self, t):
        """"waiting" for a graph task SCHEDULED for its dependencies (a failed
        `fail` node in its backoff has a run_at), else its status."""
        if t.status != SCHEDULED or t.HasField("run_at"):
            return t.status
        self.assertFalse(t.HasField("started_at"), "%s ran, yet waits for dependencies" % t)
        return "waiting"

    def check_delayed(self, t, run_at, listed_at):
        """SCHEDULED with its run_at until then; never started before it."""
        if t.status == SCHEDULED:
            self.assertEqual(ns(t.run_at), run_at, "run_at changed: %s" % t)
            self.assertFalse(t.HasField("started_at"), t)
        else:
            self.assertLessEqual(run_at, listed_at,
                                 "%s left SCHEDULED %.3f s before its run_at" % (
                                     t.name, (run_at - listed_at) / 1e9))
        if t.HasField("started_at"):
            self.assertGreaterEqual(ns(t.started_at), run_at,
                                    "%s started %.3f s before its run_at" % (
                                        t.name, (run_at - ns(t.started_at)) / 1e9))

    def check_backoff_from_restart(self, t, starts):
        """A task found RUNNING by a recovery, with attempts left, waits its
        backoff from then: before retry n the wait is min(max_backoff,
        backoff * 2^(n-1)) times [0.5, 1], so run_at minus that wait falls
        within some start's recovery (this start's, or an earlier one's when
        the wait outlived a kill)."""
        wait = min(t.max_backoff_seconds, t.backoff_seconds * 2 ** (t.attempt - 1))
        lo, hi = ns(t.run_at) - int(wait * 1e9), ns(t.run_at) - int(wait * 0.5 * 1e9)
        slack = 2000000  # 2 ms of rounding
        self.assertTrue(any(launch - slack <= hi and lo <= listening + slack
                            for launch, listening in starts),
                        "%s: interrupted attempt %d retries at %d, not a backoff after a "
                        "restart %s" % (t.name, t.attempt, ns(t.run_at), starts))

    # ------------------------------------------------------------ at the end

    def check(self, listed, ledger, runlog, attemptlog, restarts, seen):
        tasks = [t for t, _ in listed]
        end_ns = listed[-1][1] if listed else time.time_ns()
        by_id = {t.id: t for t in tasks}
        self.assertEqual(len(by_id), len(tasks), "a task is listed twice")
        names = collections.Counter(t.name for t in tasks)
        dup = [n for n, c in names.items() if c > 1]
        self.assertEqual(dup, [], "submissions stored twice")
        by_name = {t.name: t for t in tasks}
        missing = [i for i in ledger.acked if i not in by_id]
        self.assertEqual(missing, [], "acknowledged tasks lost")
        runs = collections.Counter()
        with open(runlog) if os.path.exists(runlog) else open(os.devnull) as f:
            for line in f:
                if line.strip():
                    runs[line.strip()] += 1
        attempts = collections.defaultdict(list)
        with open(attemptlog) if os.path.exists(attemptlog) else open(os.devnull) as f:
            for line in f:
                if line.strip():
                    name, attempt = line.split()
                    attempts[name].append(int(attempt))
        plain = []
        count = collections.Counter()
        for t in tasks:
            self.assertIn(t.status, FINAL, t)
            self.assertLessEqual(t.attempt, t.max_attempts, t)
            # No failure here is permanent: ERROR means no attempt was left.
            if t.status == ERROR:
                self.assertEqual(t.attempt, t.max_attempts, "ERROR with attempts left: %s" % t)
            p = ledger.plan.get(t.name)
            if p is None:
                self.assertFalse(t.name[:2] in ("d-", "r-", "g-"), "not asked for: %s" % t)
                plain.append(t)
                self.check_plain(t, runs)
            elif p["kind"] == "delayed":
                self.check_delayed(t, p["run_at"], end_ns)
                if t.error_message != INTERRUPTED:
                    self.assertEqual((t.status, t.result), (DONE, t.name), t)
                count["delayed"] += 1
            elif p["kind"] == "retry":
                self.check_retried(t, p, attempts)
                count["retried"] += 1
            else:
                self.check_graph(t, p, by_id, by_name, count)
        self.check_order(plain, restarts)
        print("crash test: %d kills, %d acknowledged, %d stored, %d interrupted" % (
            len(restarts), len(ledger.acked), len(tasks),
            sum(1 for t in tasks if t.error_message == INTERRUPTED)))
        print("crash test: %d delayed (seen SCHEDULED at restarts %d times), %d retried "
              "(seen in backoff at restarts %d times), %d graph tasks in %d graphs (%d ran "
              "after their dependencies, %d CANCELLED by a dependency; graphs seen "
              "half-finished at restarts %d times), %d interrupted attempts seen waiting the "
              "backoff their recovery began" % (
                  count["delayed"], seen["delayed waiting"], count["retried"],
                  seen["retry backoff"], count["graph"], count["graph roots"],
                  count["graph ran"], count["graph cancelled"], seen["graph half-finished"],
                  seen["interrupted"]))

    def check_plain(self, t, runs):
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

    def check_retried(self, t, p, attempts):
        """ERROR only once every attempt failed, interrupted ones included."""
        self.assertEqual((t.status, t.max_attempts), (ERROR, RETRY_ATTEMPTS), t)
        self.assertEqual(t.attempt, RETRY_ATTEMPTS,
                         "%s ended ERROR after attempt %d of %d" % (
                             t.name, t.attempt, t.max_attempts))
        if p["type"] == "fail":
            self.assertIn(t.error_message, ("x", INTERRUPTED), t)
            return
        ran = attempts.get(t.name, [])
        self.assertLessEqual(len(ran), RETRY_ATTEMPTS, "%s ran %s" % (t.name, ran))
        self.assertEqual(len(set(ran)), len(ran), "%s ran an attempt twice: %s" % (t.name, ran))
        self.assertTrue(all(1 <= a <= RETRY_ATTEMPTS for a in ran), "%s ran %s" % (t.name, ran))
        if t.error_message != INTERRUPTED:
            self.assertIn(RETRY_ATTEMPTS, ran, "%s: the last attempt did not run" % t.name)

    def check_graph(self, t, p, by_id, by_name, count):
        self.check_graph_run_at(t, p)
        count["graph"] += 1
        count["graph roots"] += p["root"]
        # A stored dependant implies stored dependencies (whether or not the
        # batch's reply arrived), and they are exactly the ones it named.
        for dep in p["deps"]:
            self.assertIn(dep, by_name, "%s stored without its dependency %s" % (t.name, dep))
        want = [by_name[dep].id for dep in p["deps"]]
        if p["external"]:
            want.append(p["external"])
        self.assertEqual(list(t.depends_on), want, t)
        for d in t.depends_on:
            self.assertIn(d, by_id, "%s depends on %s, which is not stored" % (t.name, d))
        deps = [by_id[d] for d in t.depends_on]
        failed = [d for d in deps if d.status in (ERROR, CANCELLED)]
        if failed:
            self.assertEqual(t.status, CANCELLED, "%s: a dependency failed: %s" % (t, failed[0]))
            self.assertFalse(t.HasField("started_at"), "%s ran after a dependency failed" % t)
            m = DEP_ENDED.match(t.error_message)
            self.assertTrue(m, "%s: %r" % (t.name, t.error_message))
            self.assertIn(m.group(1), t.depends_on, "%s names a task it does not depend on" % t)
            named = by_id[m.group(1)]
            self.assertEqual(named.status, ERROR if m.group(2) == "ERROR" else CANCELLED,
                             "%s names %s, which is %d" % (t.name, named.id, named.status))
            count["graph cancelled"] += 1
            return
        # Every dependency DONE: it ran, after each of them completed.
        self.assertTrue(t.HasField("started_at"), "%s never ran (%d %r)" % (
            t.name, t.status, t.error_message))
        for d in deps:
            self.assertGreaterEqual(ns(t.started_at), ns(d.completed_at),
                                    "%s started %.3f s before its dependency %s completed" % (
                                        t.name, (ns(d.completed_at) - ns(t.started_at)) / 1e9,
                                        d.name))
        count["graph ran"] += 1
        if t.error_message == INTERRUPTED:
            self.assertEqual(t.status, ERROR, t)
        elif p["type"] == "fail":
            self.assertEqual((t.status, t.error_message, t.attempt), (ERROR, "x", t.max_attempts),
                             t)
        else:
            self.assertEqual(t.status, DONE, t)
            if p["type"] == "echo":
                self.assertEqual(t.result, t.name, t)

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
