"""A full disk under a real oee-server on the SQLite store (--store sqlite
--sync full), against the contract (the API spec, "Storage, durability,
retention"): a write that fails refuses the submits it carried with
UNAVAILABLE "storage: <cause>" and does not acknowledge them; reads go on;
writes resume by themselves when the cause is gone; nothing acknowledged is
lost; a status change that cannot be stored is retried, never dropped.

The data directory lives on a small tmpfs mounted for the test (so it needs
CAP_SYS_ADMIN: it runs as root here and in CI, and fails, never skips,
without it). A ballast file takes all but FREE_AT_START of it, so the
database itself is what fills the disk, and deleting the ballast frees it:

  1. a WatchTasks stream records every stored change (an event is published
     only once its change is stored); a `sleep` task is started and its
     RUNNING change stored;
  2. SubmitTask (16 KB contexts) and SubmitTasks batches until submits fail:
     every failure is UNAVAILABLE "storage: ..."; every acknowledged id is
     kept. The ballast then takes the last free byte, and submits go on
     until three calls in a row are refused whole;
  3. while full: GetTask of every acknowledged id, ListTasks over every page
     and GetQueueStatus answer, and count exactly the acknowledged tasks;
     the sleeping task is cancelled: it stops, but its CANCELLED change
     cannot be stored, so GetTask still shows RUNNING and no watcher sees
     it yet (a state is shown only once stored);
  4. the ballast is deleted: without a restart, a submit succeeds again
     within WRITES_RESUME_S, and more submits and a batch all succeed;
  5. the watcher sees every acknowledged echo task DONE and the cancelled
     task CANCELLED (the change that failed was retried and stored), each
     task's changes in order, and no task that was not acknowledged;
  6. SIGTERM (exit 0), restart on the same data directory: every
     acknowledged task exists with its final status and result, ListTasks
     across pages lists each exactly once, total_size agrees, and no refused
     submission was stored.
"""

import errno
import json
import os
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

TMPFS_SIZE = "16m"
# Bytes left beside the ballast. With the sleep task's rows this stays below
# SQLite's automatic checkpoint (1000 WAL pages, 4 MB): no checkpoint can
# restart the WAL, whose space a write could then reuse on a full disk.
FREE_AT_START = 2 << 20
PAD = 16 << 10  # bytes of context per echo task
# Bytes of the sleep task's context. A status change rewrites the row (and
# secure_delete zeroes the old pages), so its CANCELLED change needs twice
# this much new WAL: far more than the frames a refused commit (at most 4
# submits and a few status changes here) can leave allocated past the WAL's
# end, where a small write still fits on a full disk.
SLEEPER_PAD = 512 << 10
RPC_TIMEOUT = 20.0
FILL_TIMEOUT = 30.0  # to fill FREE_AT_START with tasks
WRITES_RESUME_S = 5.0  # the committer backs off at most 1 s between tries
SETTLE_TIMEOUT = 30.0  # for every task to finish and be stored
S = pb.TaskStatus
QUEUED, RUNNING, DONE, CANCELLED = (
    S.Value("TASK_STATUS_QUEUED"), S.Value("TASK_STATUS_RUNNING"),
    S.Value("TASK_STATUS_DONE"), S.Value("TASK_STATUS_CANCELLED"))
FINAL = (DONE, S.Value("TASK_STATUS_ERROR"), CANCELLED)
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE.value[0]


def runfile(path):
    root = os.environ.get("TEST_SRCDIR")
    if not root:
        raise RuntimeError("TEST_SRCDIR is not set: run this with bazel test")
    return os.path.join(root, "oee", path)


def status_name(status):
    return S.Name(status)


class Server(object):
    """One oee-server on the sqlite store, on a free port; its stderr is
    appended to `log_path` (outside the tmpfs, so it can always be written)."""

    def __init__(self, data_dir, config_path, log_path):
        argv = [runfile("server/oee-server"), "--listen", "127.0.0.1:0", "--config", config_path,
                "--store", "sqlite", "--data-dir", data_dir, "--sync", "full"]
        self.log_path = log_path
        self.log = open(log_path, "a")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.log,
                                     universal_newlines=True)
        line = self.proc.stdout.readline()
        if "listening on port" not in line:
            self.proc.kill()
            self.proc.wait()
            self.log.close()
            raise AssertionError("server did not start: %r\n%s" % (line, read(log_path)))
        self.channel = grpc.insecure_channel("127.0.0.1:%s" % line.split()[-1])
        self.stub = pb_grpc.OrchestratorServiceStub(self.channel)

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        """SIGTERM; the exit status."""
        self.channel.close()
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=60)
        self.proc.stdout.close()
        self.log.close()
        return rc

    def kill(self):
        """For the cleanup after a failure: no state is checked any more."""
        self.channel.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()
        self.log.close()


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError as e:
        return "(cannot read %s: %s)" % (path, e)


class Watcher(threading.Thread):
    """Every event of one WatchTasks stream, by task id. An event is sent
    only once its change is stored, so what this has seen is on disk."""

    def __init__(self, stub):
        threading.Thread.__init__(self, daemon=True)
        # The snapshot is taken with the subscription, so its first event
        # tells that the stream is registered.
        self.stream = stub.WatchTasks(pb.WatchTasksRequest(include_snapshot=True))
        self.cond = threading.Condition()
        self.events = {}  # id -> [(sequence, status)]
        self.ended = None  # the stream's end, when it ended

    def run(self):
        try:
            for ev in self.stream:
                with self.cond:
                    self.events.setdefault(ev.task.id, []).append((ev.sequence, ev.task.status))
                    self.cond.notify_all()
            end = "the stream ended"
        except grpc.RpcError as e:
            end = "%s %s" % (e.code(), e.details())
        with self.cond:
            self.ended = end
            self.cond.notify_all()

    def statuses(self, task_id):
        with self.cond:
            return [st for _, st in self.events.get(task_id, [])]

    def wait_for(self, predicate, timeout):
        """Waits until predicate() (called with the lock held) is true; False
        at the deadline or when the stream ended."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0 or self.ended is not None:
                    return False
                self.cond.wait(left)
            return True

    def close(self):
        self.stream.cancel()
        self.join(10)


def list_all(stub, page_size):
    """Every page of ListTasks: (tasks, total_size of each page)."""
    tasks, totals, token = [], [], ""
    while True:
        page = stub.ListTasks(pb.ListTasksRequest(page_size=page_size, page_token=token),
                              timeout=RPC_TIMEOUT)
        tasks.extend(page.tasks)
        totals.append(page.total_size)
        token = page.next_page_token
        if not token:
            return tasks, totals


class DiskFullTest(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="oee-disk-full-")
        self.addCleanup(shutil.rmtree, self.root, True)
        self.mnt = os.path.join(self.root, "fs")
        os.mkdir(self.mnt)
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0700" % TMPFS_SIZE,
                               "tmpfs", self.mnt],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              universal_newlines=True)
        if proc.returncode != 0:
            self.fail("test_disk_full needs CAP_SYS_ADMIN (root, or a container with "
                      "--cap-add SYS_ADMIN) to mount a %s tmpfs at %s; mount exited %d: %s" % (
                          TMPFS_SIZE, self.mnt, proc.returncode, proc.stdout.strip()))
        self.addCleanup(self.unmount)
        self.data = os.path.join(self.mnt, "data")
        self.ballast = os.path.join(self.mnt, "ballast")
        self.log_path = os.path.join(self.root, "server.log")
        self.config_path = os.path.join(self.root, "config.json")
        with open(self.config_path, "w") as f:
            json.dump({"max_context_bytes": 2 * SLEEPER_PAD}, f)
        self.servers = []
        self.addCleanup(self.stop_servers)  # runs before unmount (LIFO)
        self.name_counter = 0

    def stop_servers(self):
        for srv in self.servers:
            if srv.alive():
                srv.kill()
        # --test_output=errors shows this only when the test failed.
        sys.stderr.write("---- server log ----\n%s---- end of server log ----\n" %
                         read(self.log_path))

    def unmount(self):
        """Always unmounts, even when something still holds a file open."""
        if subprocess.run(["umount", self.mnt]).returncode != 0:
            subprocess.run(["umount", "-l", self.mnt])

    def start(self):
        srv = Server(self.data, self.config_path, self.log_path)
        self.servers.append(srv)
        return srv

    # ------------------------------------------------------------ helpers

    def next_name(self):
        self.name_counter += 1
        return "df-%d" % self.name_counter

    def last_name(self):
        return "df-%d" % self.name_counter

    def request(self, name):
        return pb.SubmitTaskRequest(name=name, task_type="echo",
                                    context={"message": name, "pad": "p" * PAD})

    def submit_some(self, stub, batch, acked, refused):
        """One SubmitTask, or one SubmitTasks of `batch` entries. Keeps the
        acknowledged (id -> name) and the refused (name -> (code, message));
        any other outcome fails the test."""
        names = [self.next_name() for _ in range(max(batch, 1))]
        if batch == 0:
            try:
                resp = stub.SubmitTask(self.request(names[0]), timeout=RPC_TIMEOUT)
            except grpc.RpcError as e:
                self.assertEqual(e.code(), grpc.StatusCode.UNAVAILABLE,
                                 "SubmitTask failed with %s %r" % (e.code(), e.details()))
                refused[names[0]] = (UNAVAILABLE, e.details())
                return
            self.assertTrue(resp.task_id)
            acked[resp.task_id] = names[0]
            return
        resp = stub.SubmitTasks(pb.SubmitTasksRequest(requests=[self.request(n) for n in names]),
                                timeout=RPC_TIMEOUT)
        self.assertEqual(len(resp.results), batch)
        for name, res in zip(names, resp.results):
            if res.code == 0:
                self.assertTrue(res.task_id)
                acked[res.task_id] = name
            else:
                self.assertEqual(res.code, UNAVAILABLE,
                                 "batch entry failed with %d %r" % (res.code, res.message))
                refused[name] = (res.code, res.message)

    def assert_storage_refusals(self, refused):
        for name, (code, message) in refused.items():
            self.assertEqual(code, UNAVAILABLE, name)
            self.assertTrue(message.startswith("storage: "),
                            "%s refused with %r, not \"storage: <cause>\"" % (name, message))

    def fill_to_the_last_byte(self):
        """Appends to the ballast until the file system refuses one byte."""
        fd = os.open(self.ballast, os.O_WRONLY | os.O_APPEND)
        try:
            for chunk in (1 << 16, 4096, 1):
                while True:
                    try:
                        os.write(fd, b"\0" * chunk)
                    except OSError as e:
                        self.assertEqual(e.errno, errno.ENOSPC, e)
                        break
        finally:
            os.close(fd)

    # --------------------------------------------------------------- test

    def test_disk_full(self):
        srv = self.start()
        stub = srv.stub
        acked, refused = {}, {}  # id -> name; name -> (code, message)

        # 1. A task that runs until cancelled, its start stored; the watcher
        # registered (its snapshot holds the task) before the first submit.
        sleeper = stub.SubmitTask(pb.SubmitTaskRequest(
            name="sleeper", task_type="sleep",
            context={"seconds": "600", "pad": "s" * SLEEPER_PAD}), timeout=RPC_TIMEOUT).task_id
        watcher = Watcher(stub)
        watcher.start()
        self.addCleanup(watcher.close)
        self.assertTrue(watcher.wait_for(
            lambda: RUNNING in [st for _, st in watcher.events.get(sleeper, [])], RPC_TIMEOUT),
            "the sleep task's RUNNING change was not seen (%s)" % watcher.ended)
        fs = os.statvfs(self.mnt)
        free = fs.f_bavail * fs.f_frsize
        self.assertGreater(free, FREE_AT_START + (1 << 20))
        fd = os.open(self.ballast, os.O_WRONLY | os.O_CREAT, 0o600)
        os.posix_fallocate(fd, 0, free - FREE_AT_START)
        os.close(fd)

        # 2. Submit until the store refuses.
        deadline = time.monotonic() + FILL_TIMEOUT
        rounds = 0
        while len(refused) < 8:
            self.assertLess(time.monotonic(), deadline,
                            "submits never failed: %d acknowledged (%d KB each) in %.0f s with "
                            "%d KB free" % (len(acked), PAD >> 10, FILL_TIMEOUT,
                                            FREE_AT_START >> 10))
            rounds += 1
            self.submit_some(stub, 4 if rounds % 3 == 0 else 0, acked, refused)
        self.assert_storage_refusals(refused)
        # Each commit rewrites index and meta pages, and Debian's SQLite
        # (secure_delete) zeroes a rewritten row's old pages: a task takes
        # 60-250 KB of WAL, fewer commits share it under TSan.
        self.assertGreaterEqual(len(acked), 3, "the disk was full before anything was "
                                "acknowledged: %s" % sorted(set(m for _, m in refused.values())))
        first_refusal = next(iter(refused.values()))[1]
        self.fill_to_the_last_byte()
        # A refused commit may leave WAL frames allocated past the last
        # stored one, where a later small write still fits: submit until
        # three calls in a row are refused whole.
        in_a_row = 0
        for i in range(40):
            before_acked, before_refused = len(acked), len(refused)
            self.submit_some(stub, 4 if i % 2 else 0, acked, refused)
            whole = len(acked) == before_acked and len(refused) > before_refused
            in_a_row = in_a_row + 1 if whole else 0
            if in_a_row == 3:
                break
        self.assertEqual(in_a_row, 3, "submits still succeed with not one free byte on the disk")
        self.assert_storage_refusals(refused)
        self.assertTrue(srv.alive(), "the server died when the disk filled up")

        # 3. Reads go on while full.
        for task_id, name in acked.items():
            got = stub.GetTask(pb.GetTaskRequest(task_id=task_id), timeout=RPC_TIMEOUT)
            self.assertEqual((got.id, got.name), (task_id, name))
        listed, totals = list_all(stub, 50)
        listed_ids = [t.id for t in listed]
        self.assertEqual(sorted(listed_ids), sorted(list(acked) + [sleeper]),
                         "while full, ListTasks does not list exactly the acknowledged tasks")
        self.assertEqual(set(totals), {len(acked) + 1})
        q = stub.GetQueueStatus(pb.GetQueueStatusRequest(), timeout=RPC_TIMEOUT)
        self.assertEqual(q.total_tasks, len(acked) + 1,
                         "while full, GetQueueStatus counts other tasks than the acknowledged")
        # A status change that cannot be stored: the cancel stops the task
        # (its worker goes idle), but nothing shows CANCELLED until the
        # change is stored: GetTask still says RUNNING, no event is out.
        self.assertTrue(stub.CancelTask(pb.CancelTaskRequest(task_id=sleeper),
                                        timeout=RPC_TIMEOUT).cancelled)
        until = time.monotonic() + RPC_TIMEOUT
        while any(w.current_task_id == sleeper for w in stub.GetSystemStatus(
                pb.GetSystemStatusRequest(), timeout=RPC_TIMEOUT).workers):
            self.assertLess(time.monotonic(), until, "the cancelled sleep task never ended")
            time.sleep(0.02)
        self.assertEqual(stub.GetTask(pb.GetTaskRequest(task_id=sleeper),
                                      timeout=RPC_TIMEOUT).status, RUNNING,
                         "GetTask showed a change that is not stored")
        self.assertNotIn(CANCELLED, watcher.statuses(sleeper),
                         "a change of %d KB was published as stored while the disk had no free "
                         "byte" % (SLEEPER_PAD >> 10))
        self.assertTrue(srv.alive(), "the server died while the disk was full")

        # 4. Free the space: writes resume without a restart.
        acked_while_filling = len(acked)
        os.unlink(self.ballast)
        freed_at = time.monotonic()
        while True:
            before = len(acked)
            self.submit_some(stub, 0, acked, refused)
            if len(acked) > before:
                break
            self.assertLess(time.monotonic() - freed_at, WRITES_RESUME_S,
                            "writes did not resume within %.0f s of freeing the disk: %r" % (
                                WRITES_RESUME_S, refused[self.last_name()]))
            time.sleep(0.05)
        resumed_after = time.monotonic() - freed_at
        before = len(refused)
        for i in range(6):
            self.submit_some(stub, 4 if i % 2 else 0, acked, refused)
        self.assertEqual(len(refused), before, "submits refused after the disk was freed")
        self.assert_storage_refusals(refused)

        # 5. Every change is stored: DONE for each echo task, and the
        # CANCELLED that could not be stored while full.
        def settled():
            ev = watcher.events
            return (CANCELLED in [st for _, st in ev.get(sleeper, [])] and
                    all(DONE in [st for _, st in ev.get(i, [])] for i in acked))

        if not watcher.wait_for(settled, SETTLE_TIMEOUT):
            waiting = {}
            for i in list(acked) + [sleeper]:
                seen = watcher.statuses(i)
                if DONE not in seen and CANCELLED not in seen:
                    now = stub.GetTask(pb.GetTaskRequest(task_id=i), timeout=RPC_TIMEOUT).status
                    waiting[i] = (status_name(now), [status_name(s) for s in seen])
            self.fail("%d tasks without their final change stored after %.0f s (%s); "
                      "id: (status in memory, stored changes seen): %s" % (
                          len(waiting), SETTLE_TIMEOUT, watcher.ended,
                          dict(list(waiting.items())[:10])))
        with watcher.cond:
            events = {i: list(evs) for i, evs in watcher.events.items()}
        unknown = set(events) - set(acked) - {sleeper}
        self.assertEqual(unknown, set(), "changes of tasks that were never acknowledged")
        for task_id, evs in events.items():
            seqs = [seq for seq, _ in evs]
            if task_id == sleeper:
                # Its snapshot event may repeat the live one of the same change.
                self.assertEqual(seqs, sorted(seqs), "events out of order for the sleep task")
                self.assertEqual([st for _, st in evs][-2:], [RUNNING, CANCELLED])
                continue
            self.assertEqual(seqs, sorted(set(seqs)), "events out of order for %s" % task_id)
            self.assertEqual([st for _, st in evs], [QUEUED, RUNNING, DONE], task_id)
        q = stub.GetQueueStatus(pb.GetQueueStatusRequest(), timeout=RPC_TIMEOUT)
        self.assertEqual(q.total_tasks, len(acked) + 1)
        self.assertEqual((q.tasks_by_status["done"], q.tasks_by_status["cancelled"]),
                         (len(acked), 1))
        watcher.close()

        # 6. Restart on the same data directory.
        self.assertEqual(srv.stop(), 0, "the server did not exit 0 on SIGTERM")
        srv = self.start()
        stub = srv.stub
        for task_id, name in acked.items():
            got = stub.GetTask(pb.GetTaskRequest(task_id=task_id), timeout=RPC_TIMEOUT)
            self.assertEqual((got.name, got.status, got.result, got.error_message),
                             (name, DONE, name, ""), task_id)
            self.assertEqual(len(got.context["pad"]), PAD, task_id)
        got = stub.GetTask(pb.GetTaskRequest(task_id=sleeper), timeout=RPC_TIMEOUT)
        self.assertEqual(got.status, CANCELLED, "the change stored after a failed write was lost")
        listed, totals = list_all(stub, 37)
        ids = [t.id for t in listed]
        self.assertEqual(len(ids), len(set(ids)), "a task is listed twice")
        self.assertEqual(set(totals), {len(ids)}, "total_size disagrees with the pages")
        self.assertEqual(set(ids), set(acked) | {sleeper})
        self.assertEqual([t for t in listed if t.status not in FINAL], [])
        stored_refused = set(refused) & {t.name for t in listed}
        self.assertEqual(stored_refused, set(), "refused submissions were stored")
        self.assertEqual(srv.stop(), 0)
        self.assertNotIn("Sanitizer", read(self.log_path))
        print("disk full: %d acknowledged (%d before the space was freed), %d refused (first: "
              "%r), writes resumed %.2f s after the space was freed" % (
                  len(acked), acked_while_filling, len(refused), first_refusal, resumed_after))


if __name__ == "__main__":
    unittest.main()
