#!/usr/bin/env python3
"""Print task events from a running oee-server until Ctrl-C.

    watch.py [--addr HOST:PORT] [--type T ...] [--id TASK_ID ...] [--no-snapshot]

WatchTasks is a server-streaming RPC: with include_snapshot the server first
sends one event per existing task (its current state), then one event per
change (QUEUED, RUNNING, then DONE/ERROR/CANCELLED). Every event carries a
server-wide, strictly increasing `sequence` number.
"""

import grpc

from oee.v1 import orchestrator_pb2 as pb

from _common import arg_parser, connect


def main():
    parser = arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--type", action="append", default=[], dest="types",
                        help="only tasks of this task_type (repeatable)")
    parser.add_argument("--id", action="append", default=[], dest="ids",
                        help="only this task id (repeatable)")
    parser.add_argument("--no-snapshot", action="store_true",
                        help="do not replay existing tasks first")
    args = parser.parse_args()
    stub = connect(args)

    request = pb.WatchTasksRequest(task_types=args.types, task_ids=args.ids,
                                   include_snapshot=not args.no_snapshot)
    # No timeout: the stream stays open until we cancel it or the server stops.
    stream = stub.WatchTasks(request)
    print("watching %s (Ctrl-C to stop)" % args.addr, flush=True)
    try:
        for event in stream:
            task = event.task
            when = event.time.ToDatetime().strftime("%H:%M:%S.%f")[:-3]
            line = "#%-6d %s  %s  %-8s %-22s %s" % (
                event.sequence, when, task.id, task.task_type,
                pb.TaskStatus.Name(task.status), task.name)
            if task.status == pb.TASK_STATUS_DONE:
                line += "  result=%r" % task.result
            elif task.error_message:
                line += "  error=%r" % task.error_message
            print(line, flush=True)
    except KeyboardInterrupt:
        stream.cancel()
        print("\nstopped")
    except grpc.RpcError as e:
        # UNAVAILABLE when the server shuts down; RESOURCE_EXHAUSTED if this
        # watcher fell too far behind.
        raise SystemExit("stream ended: %s: %s" % (e.code().name, e.details()))


if __name__ == "__main__":
    main()
