#!/usr/bin/env python3
"""Run a two-stage model pipeline on a running oee-server and print its result.

    pipeline.py [--addr HOST:PORT] [--strategy S] [--input TEXT] MODEL

The first stage uses the built-in `echo` model (output = input, cost 0); the
second uses MODEL, a name from the server config's "models" table (e.g.
`upper` running `tr a-z A-Z`). The pipeline is one task of type `pipeline`;
we wait for it to finish, then print GetPipelineResult.
"""

import time

import grpc

from oee.v1 import orchestrator_pb2 as pb

from _common import arg_parser, connect

STRATEGIES = [name for name in pb.PipelineStrategy.keys()
              if name != "PIPELINE_STRATEGY_UNSPECIFIED"]
FINISHED = (pb.TASK_STATUS_DONE, pb.TASK_STATUS_ERROR, pb.TASK_STATUS_CANCELLED)


def main():
    parser = arg_parser(__doc__.splitlines()[0])
    parser.add_argument("model", help="a model name from the server's config")
    parser.add_argument("--strategy", default="LOCAL_FAST_PRECISE", choices=STRATEGIES)
    parser.add_argument("--input", default="hello pipeline")
    parser.add_argument("--max-time", type=float, default=0.0,
                        help="deadline in seconds (0 = none)")
    parser.add_argument("--max-cost", type=float, default=0.0,
                        help="cost budget (0 = none)")
    args = parser.parse_args()
    stub = connect(args)

    request = pb.SubmitPipelineRequest(
        pipeline_id="example-%d" % int(time.time()),
        strategy=pb.PipelineStrategy.Value(args.strategy),
        input=args.input,
        max_time=args.max_time,
        max_cost=args.max_cost,
        stages=[
            pb.PipelineStage(name="first", model_id="echo"),
            pb.PipelineStage(name="second", model_id=args.model),
        ])
    try:
        reply = stub.SubmitPipeline(request, timeout=10)
    except grpc.RpcError as e:
        # e.g. INVALID_ARGUMENT: unknown model_id "..."
        raise SystemExit("SubmitPipeline failed: %s: %s" % (e.code().name, e.details()))
    print("pipeline task %s (%s)" % (reply.task_id, reply.task.name))

    # Wait until the pipeline task has finished.
    deadline = time.monotonic() + 120
    while True:
        task = stub.GetTask(pb.GetTaskRequest(task_id=reply.task_id), timeout=10)
        if task.status in FINISHED or time.monotonic() > deadline:
            break
        time.sleep(0.1)

    result = stub.GetPipelineResult(
        pb.GetPipelineResultRequest(task_id=reply.task_id), timeout=10)
    print("status:   %s" % pb.TaskStatus.Name(result.status))
    print("strategy: %s" % pb.PipelineStrategy.Name(result.strategy))
    print("output:   %r" % result.output)
    print("cost:     %.3f   elapsed: %.3fs" % (result.total_cost, result.elapsed_seconds))
    if result.error_message:
        print("error:    %s" % result.error_message)
    for stage in result.stages:
        print("  stage %-8s model=%-8s %-22s cost=%.3f %.3fs output=%r%s" % (
            stage.name, stage.model_id, pb.StageStatus.Name(stage.status),
            stage.cost, stage.elapsed_seconds, stage.output,
            ("  error=%r" % stage.error_message) if stage.error_message else ""))


if __name__ == "__main__":
    main()
