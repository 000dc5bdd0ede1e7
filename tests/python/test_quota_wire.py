"""Quotas (type_limits) over the wire: 32 concurrent submitters through the
standard Python stubs, checked from WatchTasks events.

The server runs with test_config_quota.json: "sleep" at most 2 running at
once, "echo" at most 40 starts per second (a bucket of one second's worth),
"fail" unlimited, 8 workers. From the events alone: at no point do more
than max_running tasks of "sleep" run (RUNNING events minus the events that
end a run, taken in sequence order), no window of time holds more "echo"
starts than the bucket allows, every task ends DONE, and an unlimited type
is not held back behind the limited ones. GetQueueStatus shows each quota.
"""

import threading
import time
import unittest

from oee.v1 import orchestrator_pb2 as pb

import test_wire
from test_wire import DONE, FINAL, RUNNING, RPC_TIMEOUT, ServerTestCase, Watcher

SUBMITTERS = 32
PER_SUBMITTER = 6  # 2 sleeps, 3 echoes, 1 fail each


class QuotaTest(ServerTestCase):
    CONFIG = "test_config_quota.json"

    def sync(self, watcher):
        """Returns once the server has registered the watcher, so that no
        event of the test's tasks can be missed: a probe task of the
        unlimited type "fail" (so no quota is spent on it) is submitted
        until one of its events arrives, each try waiting up to 1 s."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            probe = self.submit("fail", name="probe",
                                context={"message": "probe", "permanent": "true"}).task_id
            try:
                watcher.wait_for(lambda events: any(e.task.id == probe for e in events),
                                 timeout=1.0, what="an event of the probe")
                return
            except AssertionError:
                if watcher.ended:
                    raise
        self.fail("the watcher never saw a probe's event")

    def test_quota_status(self):
        q = self.stub.GetQueueStatus(pb.GetQueueStatusRequest(), timeout=RPC_TIMEOUT)
        limits = [(l.task_type, l.max_running, l.max_per_second) for l in q.type_limits]
        self.assertEqual(limits, [("echo", 0, 40.0), ("sleep", 2, 0.0)])

    def test_quotas_hold_under_concurrent_submitters(self):
        watcher = Watcher(self.stub, pb.WatchTasksRequest())
        self.addCleanup(watcher.cancel)
        self.sync(watcher)
        ids, errors, lock = {}, [], threading.Lock()

        def submitter(n):
            try:
                for i in range(PER_SUBMITTER):
                    kind = ("sleep", "sleep", "echo", "echo", "echo", "fail")[i]
                    ctx = {"seconds": "0.05"} if kind == "sleep" else {"message": "m"}
                    if kind == "fail":
                        ctx["permanent"] = "true"
                    r = self.submit(kind, name="q%d-%d" % (n, i), context=ctx)
                    with lock:
                        ids[r.task_id] = kind
            except Exception as e:  # reported below, not lost in the thread
                with lock:
                    errors.append(e)

        threads = [threading.Thread(target=submitter, args=(n,)) for n in range(SUBMITTERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assertEqual(len(ids), SUBMITTERS * PER_SUBMITTER)

        def all_final(events):
            ended = {e.task.id for e in events if e.task.status in FINAL}
            return ended >= set(ids)

        watcher.wait_for(all_final, what="every task's final event")
        watcher.cancel()
        events = [e for e in watcher.snapshot() if e.task.id in ids]
        seqs = [e.sequence for e in events]
        self.assertEqual(seqs, sorted(seqs))

        # max_running: RUNNING opens a run, anything after it closes it.
        running, most, in_run = 0, 0, set()
        for e in events:
            if ids[e.task.id] != "sleep":
                continue
            if e.task.status == RUNNING:
                running += 1
                in_run.add(e.task.id)
            elif e.task.id in in_run:
                running -= 1
                in_run.discard(e.task.id)
            most = max(most, running)
        self.assertLessEqual(most, 2)
        self.assertEqual(most, 2)  # the limit was reached, so it was what held them

        # max_per_second: starts (started_at of RUNNING events) in any window
        # [a, b] are at most the burst plus the rate times its length (+1 for
        # a token landing on the edge).
        starts = sorted(e.task.started_at.ToNanoseconds() / 1e9 for e in events
                        if ids[e.task.id] == "echo" and e.task.status == RUNNING)
        self.assertEqual(len(starts), SUBMITTERS * 3)
        for i in range(len(starts)):
            for j in range(i, len(starts)):
                allowed = 40 + 40 * (starts[j] - starts[i]) + 1
                self.assertLessEqual(j - i + 1, allowed,
                                     "%d echo starts within %.3f s" % (j - i + 1,
                                                                      starts[j] - starts[i]))

        # Every task ended as its type says; the unlimited "fail" tasks all
        # ended before the last "sleep" did (not held behind it).
        last = {e.task.id: e for e in events}
        for tid, kind in ids.items():
            want = test_wire.ERROR if kind == "fail" else DONE
            self.assertEqual(last[tid].task.status, want, (kind, last[tid].task))
        end_of = lambda kind: max(last[t].sequence for t, k in ids.items() if k == kind)
        self.assertLess(end_of("fail"), end_of("sleep"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
