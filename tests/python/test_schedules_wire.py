"""Cron schedules over the wire, through the standard generated Python stubs.

An `@every 1s` schedule fires on time for 10 s (each firing's task created
within 100 ms of its time, with the key "<id>@<time>" and schedule_id set,
seen through WatchTasks filtered by schedule_ids); SKIP with a task that
runs 2.5 s; pause and resume; refusals with their codes; paging; and (sqlite
only) a SIGKILL in the middle of a run of 1-second firings: afterwards no
firing time appears twice, every task is counted as a run, every firing
time up to the last is counted as a run or a skip, and of the firing times
missed while down only the latest ran, promptly after the restart.
"""

import calendar
import os
import signal
import time
import unittest

import grpc

from oee.v1 import orchestrator_pb2 as pb

import test_semantics_wire
from test_wire import FINAL, QUEUED, RPC_TIMEOUT, ServerTestCase, Watcher, wait_until

STORE = os.environ.get("OEE_TEST_STORE") or "sqlite"
SKIP = pb.ScheduleOverlap.Value("SCHEDULE_OVERLAP_SKIP")
ALLOW = pb.ScheduleOverlap.Value("SCHEDULE_OVERLAP_ALLOW")


def key_time(key):
    """The firing time (UTC seconds) of a key "<id>@YYYY-MM-DDTHH:MM:SSZ"."""
    return calendar.timegm(time.strptime(key.split("@", 1)[1], "%Y-%m-%dT%H:%M:%SZ"))


def echo_template(name="tick"):
    return pb.SubmitTaskRequest(name=name, task_type="echo", context={"message": "m"})


class SchedulesTest(ServerTestCase):

    def create(self, sid, cron, task=None, **kw):
        return self.stub.CreateSchedule(
            pb.CreateScheduleRequest(schedule_id=sid, cron=cron, task=task or echo_template(),
                                     **kw), timeout=RPC_TIMEOUT)

    def get_schedule(self, sid):
        return self.stub.GetSchedule(pb.GetScheduleRequest(schedule_id=sid), timeout=RPC_TIMEOUT)

    def test_every_second_on_time(self):
        watcher = Watcher(self.stub, pb.WatchTasksRequest(schedule_ids=["tick"]))
        time.sleep(0.2)
        other = self.echo("not from a schedule")
        s = self.create("tick", "@every 1s")
        self.assertEqual((s.cron, s.time_zone, s.overlap, s.paused), ("@every 1s", "UTC", SKIP,
                                                                      False))
        self.assertEqual(s.next_run_at.seconds, s.created_at.seconds + 1)
        self.assertEqual(s.task.name, "tick")
        time.sleep(10.3)
        queued = [e for e in watcher.snapshot() if e.task.status == QUEUED]
        watcher.cancel()
        self.assertGreaterEqual(len(queued), 9)
        self.assertNotIn(other.task_id, {e.task.id for e in watcher.snapshot()})
        times = []
        for e in queued:
            self.assertEqual(e.task.schedule_id, "tick")
            at = key_time(e.task.idempotency_key)
            created = e.task.created_at.seconds + e.task.created_at.nanos / 1e9
            self.assertGreaterEqual(created, at - 0.001, e.task)
            self.assertLess(created - at, 0.1, "firing %s created %.3f s late" % (at, created - at))
            times.append(at)
        self.assertEqual(times, list(range(times[0], times[0] + len(times))))
        s = self.get_schedule("tick")
        self.assertGreaterEqual(s.runs, len(times))
        self.assertEqual(s.skipped, 0)
        self.stub.DeleteSchedule(pb.DeleteScheduleRequest(schedule_id="tick"), timeout=RPC_TIMEOUT)

    def test_skip_while_running(self):
        slow = pb.SubmitTaskRequest(name="slow", task_type="sleep", context={"seconds": "2.5"})
        self.create("slow", "@every 1s", task=slow)
        allow = self.create("slow-allow", "@every 1s", task=slow, overlap=ALLOW)
        self.assertEqual(allow.overlap, ALLOW)
        time.sleep(4.4)
        s, a = self.get_schedule("slow"), self.get_schedule("slow-allow")
        for sid in ("slow", "slow-allow"):
            self.stub.PauseSchedule(pb.PauseScheduleRequest(schedule_id=sid), timeout=RPC_TIMEOUT)
        self.assertGreaterEqual(s.skipped, 2)
        self.assertGreaterEqual(s.runs, 1)
        self.assertEqual(a.skipped, 0)
        self.assertGreaterEqual(a.runs, 3)
        # SKIP's tasks never ran at once: each was created after the one before ended.
        tasks = sorted((t for t in self.list_all() if t.schedule_id == "slow"),
                       key=lambda t: t.idempotency_key)
        for before, after in zip(tasks, tasks[1:]):
            self.assertTrue(before.completed_at.seconds, before)
            self.assertGreaterEqual(after.created_at.ToNanoseconds(),
                                    before.completed_at.ToNanoseconds())

    def list_all(self):
        r = self.stub.ListTasks(pb.ListTasksRequest(page_size=1000), timeout=RPC_TIMEOUT)
        return list(r.tasks)

    def test_pause_resume(self):
        s = self.create("p", "@every 1s", paused=True)
        self.assertTrue(s.paused)
        self.assertFalse(s.HasField("next_run_at"))
        time.sleep(1.5)
        self.assertEqual(self.get_schedule("p").runs, 0)
        before = time.time()
        s = self.stub.ResumeSchedule(pb.ResumeScheduleRequest(schedule_id="p"),
                                     timeout=RPC_TIMEOUT)
        self.assertFalse(s.paused)
        self.assertGreater(s.next_run_at.seconds, before - 1)
        wait_until(lambda: self.get_schedule("p").runs >= 1, 10, "a firing after resume")
        s = self.stub.PauseSchedule(pb.PauseScheduleRequest(schedule_id="p"), timeout=RPC_TIMEOUT)
        self.assertTrue(s.paused)
        self.assertFalse(s.HasField("next_run_at"))

    def test_refusals(self):
        IA = grpc.StatusCode.INVALID_ARGUMENT
        for cron, words in (("61 * * * *", "minute"), ("*/0 * * * *", "step"),
                            ("* * * * MON-FOO", "FOO"), ("", "empty"), ("@every 0s", "@every"),
                            ("@every 1ms", "@every")):
            with self.assertRaises(grpc.RpcError) as cm:
                self.create("bad", cron)
            self.assertEqual(cm.exception.code(), IA, cron)
            self.assertIn(words, cm.exception.details(), cron)
        cases = [
            (dict(schedule_id="Bad!", cron="@daily", task=echo_template()), IA, "schedule_id"),
            (dict(schedule_id="z", cron="@daily", time_zone="Mars/Olympus",
                  task=echo_template()), IA, "Mars/Olympus"),
            (dict(schedule_id="z", cron="@daily"), IA, "task"),
            (dict(schedule_id="z", cron="@daily",
                  task=pb.SubmitTaskRequest(name="n", task_type="nosuch")), IA, "task: unknown"),
            (dict(schedule_id="z", cron="@daily",
                  task=pb.SubmitTaskRequest(name="n", task_type="echo", idempotency_key="k")),
             IA, "task.idempotency_key"),
        ]
        delayed = pb.SubmitTaskRequest(name="n", task_type="echo")
        delayed.run_at.seconds = int(time.time()) + 60
        cases.append((dict(schedule_id="z", cron="@daily", task=delayed), IA, "task.run_at"))
        for req, code, words in cases:
            with self.assertRaises(grpc.RpcError) as cm:
                self.stub.CreateSchedule(pb.CreateScheduleRequest(**req), timeout=RPC_TIMEOUT)
            self.assertEqual(cm.exception.code(), code, req)
            self.assertIn(words, cm.exception.details(), req)
        self.create("dup", "@daily")
        with self.assertRaises(grpc.RpcError) as cm:
            self.create("dup", "@hourly")
        self.assertEqual(cm.exception.code(), grpc.StatusCode.ALREADY_EXISTS)
        # Names the field and its value and says why.
        self.assertEqual(cm.exception.details(),
                         'schedule_id "dup" is in use by an existing schedule')
        self.assertEqual(self.get_schedule("dup").cron, "@daily")  # the first one is kept
        NF = grpc.StatusCode.NOT_FOUND
        for call, req in ((self.stub.GetSchedule, pb.GetScheduleRequest(schedule_id="none")),
                          (self.stub.DeleteSchedule, pb.DeleteScheduleRequest(schedule_id="none")),
                          (self.stub.PauseSchedule, pb.PauseScheduleRequest(schedule_id="none")),
                          (self.stub.ResumeSchedule, pb.ResumeScheduleRequest(schedule_id="none"))):
            with self.assertRaises(grpc.RpcError) as cm:
                call(req, timeout=RPC_TIMEOUT)
            self.assertEqual(cm.exception.code(), NF)
        with self.assertRaises(grpc.RpcError) as cm:
            self.stub.ListSchedules(pb.ListSchedulesRequest(page_size=-1), timeout=RPC_TIMEOUT)
        self.assertEqual(cm.exception.code(), IA)
        self.stub.DeleteSchedule(pb.DeleteScheduleRequest(schedule_id="dup"), timeout=RPC_TIMEOUT)

    def test_list_pages(self):
        for sid in ("l-c", "l-a", "l-b"):
            self.create(sid, "@daily")
        seen, token = [], ""
        while True:
            r = self.stub.ListSchedules(pb.ListSchedulesRequest(page_size=1, page_token=token),
                                        timeout=RPC_TIMEOUT)
            seen += [s.schedule_id for s in r.schedules]
            token = r.next_page_token
            if not token:
                break
        mine = [sid for sid in seen if sid.startswith("l-")]
        self.assertEqual(mine, ["l-a", "l-b", "l-c"])
        self.assertEqual(seen, sorted(seen))


class LimitTest(ServerTestCase):
    """max_schedules (2 in test_config_schedules.json): the third is refused."""
    CONFIG = "test_config_schedules.json"

    def test_max_schedules(self):
        for sid in ("one", "two"):
            self.stub.CreateSchedule(pb.CreateScheduleRequest(schedule_id=sid, cron="@daily",
                                                              task=echo_template()),
                                     timeout=RPC_TIMEOUT)
        with self.assertRaises(grpc.RpcError) as cm:
            self.stub.CreateSchedule(pb.CreateScheduleRequest(schedule_id="three", cron="@daily",
                                                              task=echo_template()),
                                     timeout=RPC_TIMEOUT)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
        self.assertIn("max_schedules=2", cm.exception.details())


@unittest.skipIf(STORE == "memory", "the memory store keeps nothing across a restart")
class KillTest(unittest.TestCase):
    """SIGKILL in the middle of a run of 1-second firings."""

    def test_kill_nine_mid_firings(self):
        server = test_semantics_wire.Server("schedules-kill")
        stub = server.start()
        try:
            # ALLOW: with SKIP, the task of a firing just before the kill,
            # recovered QUEUED, could still be unfinished at the catch-up and
            # skip it.
            stub.CreateSchedule(pb.CreateScheduleRequest(schedule_id="k", cron="@every 1s",
                                                         task=echo_template(), overlap=ALLOW),
                                timeout=RPC_TIMEOUT)
            time.sleep(3.4)
            server.channel.close()
            server.proc.send_signal(signal.SIGKILL)
            server.proc.wait(30)
            killed_at = time.time()  # every task of the first run is older
            time.sleep(2.6)  # firings missed while down
            started = time.time()
            stub = server.start()
            ready = time.time()
            time.sleep(1.5)
            # Paused before reading, so that no firing falls between the reads.
            stub.PauseSchedule(pb.PauseScheduleRequest(schedule_id="k"), timeout=RPC_TIMEOUT)
            time.sleep(0.3)
            s = stub.GetSchedule(pb.GetScheduleRequest(schedule_id="k"), timeout=RPC_TIMEOUT)
            tasks = [t for t in stub.ListTasks(pb.ListTasksRequest(page_size=1000),
                                               timeout=RPC_TIMEOUT).tasks if t.schedule_id == "k"]
            keys = [t.idempotency_key for t in tasks]
            self.assertEqual(len(keys), len(set(keys)), "a firing time appears twice: %s" % keys)
            # Every firing's task is counted as a run, the one submitted just
            # before the kill too (its count may not have been stored).
            self.assertEqual(len(keys), s.runs, keys)
            # Every firing time from the first to the last is a run or a skip.
            self.assertEqual(s.runs + s.skipped, s.last_run_at.seconds - s.created_at.seconds)
            # The catch-up: the only task with a key time after the last
            # firing before the kill, up to the restart, is the latest firing
            # time due at the restart (every whole second is one), created
            # promptly; the other firing times missed count as skipped.
            created = {key_time(t.idempotency_key): t.created_at.ToNanoseconds() / 1e9
                       for t in tasks}
            last_before = max(at for at, c in created.items() if c < killed_at)
            caught = min(at for at in created if at > last_before)
            self.assertGreaterEqual(caught, int(started), created)
            self.assertLessEqual(caught, int(ready), created)
            # Down for 2.6 s and more from just after a firing at T: the
            # restart may come at T + 2.6..., whose latest firing time is T + 2.
            self.assertGreaterEqual(caught - last_before, 2)
            self.assertEqual([at for at in created if last_before < at <= caught], [caught])
            self.assertGreaterEqual(created[caught], started)
            self.assertLess(created[caught] - ready, 1.0,
                            "the catch-up was created %.3f s after the restart"
                            % (created[caught] - ready))
            self.assertEqual(s.skipped, caught - last_before - 1)
        finally:
            code = server.stop()
            server.remove()
        self.assertEqual(code, 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
