#!/usr/bin/python3
"""Writes the seed corpora under fuzz/corpus/ (checked in; rerun only to
change them). Needs the generated Python stubs:

    bazel build //proto:orchestrator_py
    PYTHONPATH=bazel-bin/proto /usr/bin/python3 fuzz/make_seeds.py

One small file per seed: valid requests that reach each handler's main
paths, plus the limits and errors of API.md. Task ids "0".."3" are mapped by
the harness to known tasks (see fuzz/harness.h).
"""
import os
import sys

from oee.v1 import orchestrator_pb2 as pb

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.SerializeToString())


def field(num, payload):
    """A length-delimited protobuf field (hand-encoded for the std protos)."""
    assert len(payload) < 128
    return bytes([(num << 3) | 2, len(payload)]) + payload


def submit_requests():
    return {
        "echo": pb.SubmitTaskRequest(name="a", task_type="echo", context={"message": "hi"}),
        "prio0": pb.SubmitTaskRequest(name="a", task_type="echo", priority=0),
        "prio11": pb.SubmitTaskRequest(name="a", task_type="echo", priority=11),
        "sleep": pb.SubmitTaskRequest(name="s", task_type="sleep", context={"seconds": "0.01"}),
        "sleep_bad": pb.SubmitTaskRequest(name="s", task_type="sleep", context={"seconds": "-1"}),
        "fail": pb.SubmitTaskRequest(name="f", task_type="fail", context={"message": "boom"}),
        "exec": pb.SubmitTaskRequest(name="x", task_type="exec", context={"command": "nope"}),
        "pipeline": pb.SubmitTaskRequest(name="p", task_type="pipeline"),
        "unknown": pb.SubmitTaskRequest(name="u", task_type="nosuch"),
        "empty_name": pb.SubmitTaskRequest(task_type="echo"),
        "long_name": pb.SubmitTaskRequest(name="n" * 40, task_type="echo"),
        "long_type": pb.SubmitTaskRequest(name="n", task_type="t" * 20),
        "many_ctx": pb.SubmitTaskRequest(name="n", task_type="echo",
                                         context={str(i): "v" for i in range(6)}),
        "big_ctx": pb.SubmitTaskRequest(name="n", task_type="echo",
                                        context={"message": "m" * 300}),
        "long_result": pb.SubmitTaskRequest(name="n", task_type="echo",
                                            context={"message": "r" * 100}),
    }


def semantics_requests():
    """The task-semantics fields: valid, and each limit the server checks."""
    R = pb.SubmitTaskRequest
    far = R(name="t", task_type="echo")
    far.run_at.seconds = 253402300800
    past = R(name="t", task_type="echo")
    past.run_at.seconds = 1000000000
    nanos = R(name="t", task_type="echo")
    nanos.run_at.nanos = -1
    return {
        "policy": R(name="p", task_type="echo", max_attempts=3, backoff_seconds=0.5,
                    max_backoff_seconds=2, timeout_seconds=5),
        "attempts0": R(name="p", task_type="echo", max_attempts=0),
        "attempts101": R(name="p", task_type="echo", max_attempts=101),
        "backoff_neg": R(name="p", task_type="echo", backoff_seconds=-1),
        "timeout_nan": R(name="p", task_type="echo", timeout_seconds=float("nan")),
        "run_at_far": far,
        "run_at_past": past,
        "run_at_nanos": nanos,
        "key": R(name="k", task_type="echo", idempotency_key="k1"),
        "long_key": R(name="k", task_type="echo", idempotency_key="k" * 300),
        "depends_id": R(name="d", task_type="echo", depends_on=["0", "1"]),
        "depends_ref": R(name="d", task_type="echo", depends_on=["#0"]),
        "depends_bad": R(name="d", task_type="echo", depends_on=["x"]),
    }


def main():
    subs = submit_requests()
    for k, v in subs.items():
        write("fuzz_submit_task", k, v)
    write("fuzz_submit_tasks", "mixed", pb.SubmitTasksRequest(requests=list(subs.values())[:8]))
    write("fuzz_submit_tasks", "full", pb.SubmitTasksRequest(requests=[subs["echo"]] * 12))
    write("fuzz_submit_tasks", "empty", pb.SubmitTasksRequest())
    write("fuzz_submit_tasks", "oversized", pb.SubmitTasksRequest(requests=[subs["echo"]] * 17))
    R = pb.SubmitTaskRequest
    write("fuzz_submit_tasks", "references", pb.SubmitTasksRequest(requests=[
        subs["echo"], R(name="b", task_type="echo", depends_on=["#0"]),
        R(name="c", task_type="echo", priority=11, depends_on=["#1", "#0"]),
        R(name="d", task_type="echo", depends_on=["#2"]),
        R(name="e", task_type="echo", depends_on=["#4"]),
        R(name="f", task_type="echo", depends_on=["#9", "#x", "#"]),
        R(name="g", task_type="echo", depends_on=["0", "#5"])]))
    for k, v in semantics_requests().items():
        write("fuzz_submit_task", k, v)
    write("fuzz_submit_tasks", "semantics",
          pb.SubmitTasksRequest(requests=list(semantics_requests().values())[:8]))
    for t, cls in (("fuzz_cancel_task", pb.CancelTaskRequest),
                   ("fuzz_get_task", pb.GetTaskRequest),
                   ("fuzz_get_pipeline_result", pb.GetPipelineResultRequest),
                   ("fuzz_retry_task", pb.RetryTaskRequest)):
        for i in range(4):
            write(t, "known%d" % i, cls(task_id=str(i)))
        write(t, "unknown", cls(task_id="7f1c2b3a-1d2e-4f50-8a9b-0c1d2e3f4a5b"))
        write(t, "not_uuid", cls(task_id="x"))
        write(t, "empty", cls())
    tmpl = pb.SubmitTaskRequest(name="s", task_type="echo", context={"message": "m"})
    C = pb.CreateScheduleRequest
    write("fuzz_create_schedule", "every", C(schedule_id="a", cron="@every 1s", task=tmpl))
    write("fuzz_create_schedule", "cron", C(schedule_id="b-1.x_y", cron="*/5 1-3 * JAN-MAR MON,FRI",
                                            time_zone="Europe/Ljubljana", task=tmpl, overlap=2))
    write("fuzz_create_schedule", "paused", C(schedule_id="c", cron="@daily", task=tmpl, paused=True))
    write("fuzz_create_schedule", "bad_cron", C(schedule_id="d", cron="61 * * * *", task=tmpl))
    write("fuzz_create_schedule", "bad_zone", C(schedule_id="e", cron="@hourly", time_zone="../x",
                                                task=tmpl))
    write("fuzz_create_schedule", "bad_id", C(schedule_id="UPPER", cron="@hourly", task=tmpl))
    write("fuzz_create_schedule", "no_task", C(schedule_id="f", cron="@hourly"))
    write("fuzz_create_schedule", "keyed", C(schedule_id="g", cron="@hourly", task=pb.SubmitTaskRequest(
        name="s", task_type="echo", idempotency_key="k")))
    for t, cls in (("fuzz_get_schedule", pb.GetScheduleRequest),
                   ("fuzz_delete_schedule", pb.DeleteScheduleRequest),
                   ("fuzz_pause_schedule", pb.PauseScheduleRequest),
                   ("fuzz_resume_schedule", pb.ResumeScheduleRequest)):
        write(t, "a", cls(schedule_id="a"))
        write(t, "unknown", cls(schedule_id="nosuch"))
        write(t, "empty", cls())
    write("fuzz_list_schedules", "all", pb.ListSchedulesRequest())
    write("fuzz_list_schedules", "page", pb.ListSchedulesRequest(page_size=1, page_token="a"))
    write("fuzz_list_schedules", "bad_token", pb.ListSchedulesRequest(page_token="A B"))
    write("fuzz_list_schedules", "negative", pb.ListSchedulesRequest(page_size=-1))
    write("fuzz_watch_tasks", "schedules", pb.WatchTasksRequest(schedule_ids=["a"]))
    write("fuzz_submit_task", "remote", pb.SubmitTaskRequest(name="r", task_type="remote"))
    P = pb.PollTasksRequest
    write("fuzz_poll_tasks", "now", P(worker_id="w", task_types=["remote"], wait_seconds=0))
    write("fuzz_poll_tasks", "wait", P(worker_id="w", task_types=["remote"], max_tasks=3,
                                       wait_seconds=1, lease_seconds=1))
    write("fuzz_poll_tasks", "default", P(worker_id="w", task_types=["remote"]))
    write("fuzz_poll_tasks", "not_remote", P(worker_id="w", task_types=["echo"]))
    write("fuzz_poll_tasks", "no_types", P(worker_id="w"))
    write("fuzz_poll_tasks", "ranges", P(worker_id="w", task_types=["remote"], max_tasks=101,
                                         wait_seconds=float("nan"), lease_seconds=0.5))
    lease = "01a231ef-bec5-7678-a7c6-1e28d9a72559"
    write("fuzz_heartbeat", "one", pb.HeartbeatRequest(worker_id="w", lease_ids=[lease]))
    write("fuzz_heartbeat", "extend", pb.HeartbeatRequest(worker_id="w", lease_ids=[lease, "x"],
                                                          extend_seconds=5))
    write("fuzz_heartbeat", "none", pb.HeartbeatRequest(worker_id="w"))
    write("fuzz_complete_task", "unknown", pb.CompleteTaskRequest(lease_id=lease, result="r"))
    write("fuzz_complete_task", "worker", pb.CompleteTaskRequest(lease_id=lease, worker_id="w"))
    write("fuzz_complete_task", "bad", pb.CompleteTaskRequest(lease_id="x"))
    write("fuzz_fail_task", "unknown", pb.FailTaskRequest(lease_id=lease, error_message="e"))
    write("fuzz_fail_task", "final", pb.FailTaskRequest(lease_id=lease, retryable=False,
                                                        worker_id="w"))
    write("fuzz_fail_task", "bad", pb.FailTaskRequest(lease_id=""))
    write("fuzz_list_tasks", "all", pb.ListTasksRequest())
    write("fuzz_list_tasks", "page", pb.ListTasksRequest(page_size=1))
    write("fuzz_list_tasks", "token", pb.ListTasksRequest(page_size=2, page_token="v1.1"))
    write("fuzz_list_tasks", "bad_token", pb.ListTasksRequest(page_token="zz"))
    write("fuzz_list_tasks", "negative", pb.ListTasksRequest(page_size=-1))
    write("fuzz_list_tasks", "done_echo", pb.ListTasksRequest(
        status_filter=pb.TASK_STATUS_DONE, task_type_filter="echo", page_size=5000))
    write("fuzz_get_queue_status", "empty", pb.GetQueueStatusRequest())
    write("fuzz_get_system_status", "empty", pb.GetSystemStatusRequest())
    write("fuzz_clear_completed_tasks", "default", pb.ClearCompletedTasksRequest())
    write("fuzz_clear_completed_tasks", "zero", pb.ClearCompletedTasksRequest(keep_recent=0))
    write("fuzz_clear_completed_tasks", "negative", pb.ClearCompletedTasksRequest(keep_recent=-1))
    stage = pb.PipelineStage(name="one", model_id="echo")
    for strat in (1, 2, 3, 4, 5):
        write("fuzz_submit_pipeline", "strategy%d" % strat, pb.SubmitPipelineRequest(
            pipeline_id="p", stages=[stage, pb.PipelineStage(name="two", model_id="echo", cost=1)],
            strategy=strat, input="in", max_cost=0.5))
    write("fuzz_submit_pipeline", "no_stages", pb.SubmitPipelineRequest(pipeline_id="p", strategy=1))
    write("fuzz_submit_pipeline", "too_many", pb.SubmitPipelineRequest(
        pipeline_id="p", stages=[stage] * 5, strategy=1))
    write("fuzz_submit_pipeline", "unknown_model", pb.SubmitPipelineRequest(
        pipeline_id="p", stages=[pb.PipelineStage(name="x", model_id="nosuch")], strategy=1))
    write("fuzz_submit_pipeline", "negative", pb.SubmitPipelineRequest(
        pipeline_id="p", stages=[stage], strategy=1, max_time=-1, priority=3))
    write("fuzz_watch_tasks", "all", pb.WatchTasksRequest())
    write("fuzz_watch_tasks", "snapshot", pb.WatchTasksRequest(include_snapshot=True))
    write("fuzz_watch_tasks", "types", pb.WatchTasksRequest(include_snapshot=True, task_types=["echo"]))
    write("fuzz_watch_tasks", "ids", pb.WatchTasksRequest(task_ids=["0", "3"], include_snapshot=True))
    write("fuzz_watch_tasks", "statuses", pb.WatchTasksRequest(statuses=[3, 4], include_snapshot=True))
    write("fuzz_watch_tasks", "bad_status", pb.WatchTasksRequest(statuses=[9]))
    write("fuzz_watch_tasks", "bad_id", pb.WatchTasksRequest(task_ids=["x"]))
    write("fuzz_health_check", "empty", b"")
    write("fuzz_health_check", "service", field(1, b"oee.v1.OrchestratorService"))
    write("fuzz_health_check", "unknown", field(1, b"nosuch"))
    write("fuzz_health_watch", "empty", b"")
    write("fuzz_health_watch", "unknown", field(1, b"nosuch"))
    write("fuzz_reflection_info", "list", field(7, b"*"))
    write("fuzz_reflection_info", "symbol", field(4, b"oee.v1.OrchestratorService"))
    write("fuzz_reflection_info", "file", field(3, b"oee/v1/orchestrator.proto"))
    write("fuzz_reflection_info", "dep", field(3, b"google/protobuf/timestamp.proto"))
    write("fuzz_reflection_info", "missing", field(4, b"no.Such"))
    write("fuzz_config", "example", open(os.path.join(
        os.path.dirname(ROOT), "..", "config", "oee.json"), "rb").read())
    write("fuzz_config", "limits", b'{"max_queue": 2, "max_stages": 64, "max_request_bytes": 1024,'
          b' "max_result_bytes": 1, "drain_timeout_seconds": 0.5, "workers": 1}')
    write("fuzz_config", "bad_stages", b'{"max_stages": 65}')
    write("fuzz_config", "unknown", b'{"nope": 1}')
    write("fuzz_config", "dup", b'{"workers": 1, "workers": 2}')
    write("fuzz_config", "models", b'{"models": {"m": {"argv": ["tr", "a", "b"], "cost": 1,'
          b' "quality": 0.5, "timeout_seconds": 3}}, "commands": {"c": {"argv": ["true"]}}}')
    write("fuzz_config", "bad_argv", b'{"commands": {"c": {"argv": []}}}')
    write("fuzz_config", "not_object", b'[1, 2]')
    # The decode target: one of each message shape.
    for k in ("echo", "many_ctx"):
        write("fuzz_decode", "submit_" + k, subs[k])
    write("fuzz_decode", "batch", pb.SubmitTasksRequest(requests=[subs["echo"], subs["fail"]]))
    write("fuzz_decode", "pipeline", pb.SubmitPipelineRequest(
        pipeline_id="p", stages=[stage], strategy=2, input="x", max_time=1.5))
    t = pb.Task(id="7f1c2b3a-1d2e-4f50-8a9b-0c1d2e3f4a5b", name="n", status=3, priority=5,
                task_type="echo", context={"message": "hi"}, result="hi", worker_id=1)
    t.created_at.seconds = 1700000000
    t.created_at.nanos = 5
    write("fuzz_decode", "task", t)
    write("fuzz_decode", "event", pb.TaskEvent(sequence=7, task=t))
    write("fuzz_decode", "list", pb.ListTasksResponse(tasks=[t, t], next_page_token="v1.2", total_size=9))
    write("fuzz_decode", "status", pb.SystemStatus(running=True, num_workers=2, workers=[
        pb.WorkerStatus(worker_id=0, busy=True, current_task_id=t.id, tasks_completed=3)],
        version="0.1.0"))
    write("fuzz_decode", "unknown_fields", b"\xa8\x1f\x01\x0a\x01a")
    s = pb.Task(id=t.id, name="s", status=pb.TASK_STATUS_SCHEDULED, attempt=2, max_attempts=3,
                timeout_seconds=1.5, idempotency_key="k", depends_on=[t.id], schedule_id="sch",
                remote_worker_id="w1", backoff_seconds=1, max_backoff_seconds=300)
    s.run_at.seconds = 1800000000
    write("fuzz_decode", "task_semantics", s)
    write("fuzz_decode", "queue_limits", pb.QueueStatus(queue_size=1, type_limits=[
        pb.TypeLimit(task_type="exec", max_running=2, running=1, max_per_second=50)]))


if __name__ == "__main__":
    sys.exit(main())
