#!/usr/bin/env python3
"""Submit two tasks to a running oee-server and wait for their results.

    submit.py [--addr HOST:PORT] [--message TEXT] [--seconds N]
              [--tls-ca FILE [--tls-cert FILE --tls-key FILE]] [--token-file FILE]

It submits an `echo` task (its result is context["message"]) and a `sleep`
task (it sleeps context["seconds"]), then polls GetTask until both have
finished and prints each task's final state.
"""

import time

import grpc

from oee.v1 import orchestrator_pb2 as pb

from _common import arg_parser, connect

FINISHED = (pb.TASK_STATUS_DONE, pb.TASK_STATUS_ERROR, pb.TASK_STATUS_CANCELLED)


def wait_for(stub, task_id, timeout=60.0):
    """Polls GetTask every 100 ms until the task has finished."""
    deadline = time.monotonic() + timeout
    while True:
        task = stub.GetTask(pb.GetTaskRequest(task_id=task_id), timeout=10)
        if task.status in FINISHED or time.monotonic() > deadline:
            return task
        time.sleep(0.1)


def show(task):
    status = pb.TaskStatus.Name(task.status)
    took = ""
    if task.HasField("started_at") and task.HasField("completed_at"):
        seconds = (task.completed_at.ToNanoseconds() - task.started_at.ToNanoseconds()) / 1e9
        took = " in %.3fs on worker %d" % (seconds, task.worker_id)
    print("%s  %-8s %-22s%s" % (task.id, task.task_type, status, took))
    if task.result:
        print("    result: %r" % task.result)
    if task.error_message:
        print("    error:  %s" % task.error_message)


def main():
    parser = arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--message", default="hello from Python")
    parser.add_argument("--seconds", default="1.5",
                        help="how long the sleep task sleeps (a decimal)")
    args = parser.parse_args()
    stub = connect(args)

    try:
        # `priority` is optional: leave it out and the server uses 5.
        echo = stub.SubmitTask(pb.SubmitTaskRequest(
            name="example-echo", task_type="echo",
            context={"message": args.message}), timeout=10)
        # An explicit priority (0..10, higher runs first; 0 is honoured).
        sleep = stub.SubmitTask(pb.SubmitTaskRequest(
            name="example-sleep", task_type="sleep", priority=3,
            context={"seconds": args.seconds}), timeout=10)
    except grpc.RpcError as e:
        # Validation errors come back as gRPC status codes, e.g.
        # INVALID_ARGUMENT for an unknown task_type.
        raise SystemExit("submit failed: %s: %s" % (e.code().name, e.details()))

    print("submitted echo  %s (priority %d)" % (echo.task_id, echo.task.priority))
    print("submitted sleep %s (priority %d)" % (sleep.task_id, sleep.task.priority))

    for task_id in (echo.task_id, sleep.task_id):
        show(wait_for(stub, task_id))


if __name__ == "__main__":
    main()
