#!/usr/bin/env python3
"""A remote worker for oee-server: runs tasks of the server's remote_types.

    worker.py [--addr HOST:PORT] --type T [--type T2 ...] [--concurrency N]
              [--lease SECONDS] [--worker-id ID] [--wait SECONDS]
              [--tls-ca FILE [--tls-cert FILE --tls-key FILE]
               [--tls-server-name NAME]] [--token-file FILE]

How a remote worker talks to the server (oee.v1.WorkerService):

  PollTasks     asks for up to N tasks of our types. With nothing queued the
                call waits (long poll) until a task comes or `wait_seconds`
                pass. Each task comes as a *lease*: the task is now RUNNING
                and ours until the lease's `expires_at`.
  Heartbeat     keeps our leases alive (we send one every lease/3 seconds)
                and tells us, per lease, whether someone asked to cancel the
                task (`cancel_requested`) or whether the lease is gone
                (`lost`: it expired, or the server restarted): then we stop
                working on it, because the task has already been given back.
  CompleteTask  reports a result: the task ends DONE.
  FailTask      reports a failure: the server retries the task if attempts
                remain and `retryable` is not false, else it ends ERROR; a
                task whose cancellation was asked ends CANCELLED.

The example handler below echoes context["message"] upper-cased. With
context["fail"] present it fails with that text as the error (permanently,
i.e. no retry, when context["permanent"] is "true"); with context["sleep"]
it first sleeps that many seconds, and stops early when the task is
cancelled. Replace handle() with your own work.

A server with TLS wants --tls-ca (and --tls-cert/--tls-key under mTLS); one
with tokens wants a token with the `worker` role in --token-file or
$OEE_TOKEN, sent as "authorization: Bearer <token>" with every call.

SIGTERM or Ctrl-C stops polling, lets the tasks in hand finish and report,
then exits 0; a second signal exits at once (the server then retries those
tasks when their leases expire). When the server is unreachable or draining
(UNAVAILABLE) the worker backs off and tries again.
"""

import argparse
import concurrent.futures
import os
import random
import signal
import socket
import sys
import threading
import time

import grpc

from oee.v1 import orchestrator_pb2 as pb
from oee.v1 import orchestrator_pb2_grpc as pb_grpc

DEFAULT_ADDR = "127.0.0.1:50051"
RPC_TIMEOUT = 10.0       # seconds, for every call but the long poll
MAX_BACKOFF = 5.0        # seconds between reconnection attempts, at most


# ----------------------------------------------------------------------
# The work itself
# ----------------------------------------------------------------------
class TaskFailed(Exception):
    """Raised by a handler to fail the attempt with a message."""

    def __init__(self, message, retryable=True):
        super().__init__(message)
        self.retryable = retryable


class Stopped(Exception):
    """Raised by a handler that gave up because it was told to stop."""


def handle(task, stop):
    """Runs one task; returns its result (a string) or raises TaskFailed.

    `stop` is a threading.Event that becomes set when the task's
    cancellation is asked or its lease is lost: long work should check it
    and raise Stopped.
    """
    ctx = task.context
    if stop.wait(float(ctx.get("sleep") or 0)):
        raise Stopped()
    if "fail" in ctx:
        raise TaskFailed(ctx["fail"] or "failed on purpose",
                         retryable=ctx.get("permanent") != "true")
    return ctx.get("message", "").upper()


# ----------------------------------------------------------------------
# The worker: a poll loop, a pool of handler threads, a heartbeat thread
# ----------------------------------------------------------------------
class Job(object):
    """One lease in hand."""

    def __init__(self, lease):
        self.lease = lease
        self.stop = threading.Event()  # set on cancel_requested or lost
        self.lost = False              # the lease is gone: report nothing
        # When the lease ends unless extended (seconds since the epoch).
        self.expires = lease.expires_at.ToNanoseconds() / 1e9


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def open_channel(args, options):
    """Plaintext, or TLS when a CA or a client certificate is given."""
    if not (args.tls_ca or args.tls_cert):
        return grpc.insecure_channel(args.addr, options=options)
    if bool(args.tls_cert) != bool(args.tls_key):
        raise SystemExit("--tls-cert and --tls-key go together")
    creds = grpc.ssl_channel_credentials(
        root_certificates=_read(args.tls_ca) if args.tls_ca else None,
        private_key=_read(args.tls_key) if args.tls_key else None,
        certificate_chain=_read(args.tls_cert) if args.tls_cert else None)
    if args.tls_server_name:
        options = options + [("grpc.ssl_target_name_override", args.tls_server_name)]
    return grpc.secure_channel(args.addr, creds, options=options)


def bearer(args):
    """The authorization metadata of --token-file or $OEE_TOKEN, or none."""
    token = os.environ.get("OEE_TOKEN", "")
    if args.token_file:
        token = _read(args.token_file).decode().strip()
    return (("authorization", "Bearer " + token),) if token else ()


class Worker(object):
    def __init__(self, args, types, concurrency, lease_seconds, worker_id,
                 wait_seconds):
        self.types = types
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.worker_id = worker_id
        self.wait_seconds = wait_seconds
        self.addr = args.addr
        # One channel for everything: gRPC reconnects it by itself after a
        # failure; we only have to wait a little before trying again. Its
        # reconnection backoff would grow to 120 s by default: cap it, so a
        # worker finds a restarted server within seconds.
        self.channel = open_channel(args, [("grpc.max_reconnect_backoff_ms", 5000)])
        self.md = bearer(args)  # sent with every call
        self.stub = pb_grpc.WorkerServiceStub(self.channel)
        self.pool = concurrent.futures.ThreadPoolExecutor(concurrency)
        self.jobs = {}                      # lease_id -> Job, under cond
        self.cond = threading.Condition()   # guards jobs; signals a free slot
        self.stopping = threading.Event()   # no more polls
        self.poll_call = None               # the poll in flight, to cancel it

    def log(self, fmt, *args):
        sys.stderr.write("%s worker %s: %s\n" % (
            time.strftime("%H:%M:%S"), self.worker_id, fmt % args))
        sys.stderr.flush()

    # -- lifecycle -----------------------------------------------------
    def run(self):
        """Polls until stop() is called; returns once every job reported."""
        beat = threading.Thread(target=self.heartbeat_loop, daemon=True)
        beat.start()
        self.log("polling %s for %s (concurrency %d, lease %gs)",
                 self.addr, ", ".join(self.types),
                 self.concurrency, self.lease_seconds)
        self.poll_loop()
        self.log("stopping: waiting for %d task(s) in hand", len(self.jobs))
        self.pool.shutdown(wait=True)
        self.channel.close()
        self.log("stopped")

    def stop(self):
        """Asks the poll loop to end (safe from a signal handler)."""
        self.stopping.set()
        call = self.poll_call
        if call is not None:
            call.cancel()
        with self.cond:
            self.cond.notify_all()

    # -- polling -------------------------------------------------------
    def free_slots(self):
        """Waits until at least one handler thread is free; returns how many."""
        with self.cond:
            while len(self.jobs) >= self.concurrency and not self.stopping.is_set():
                self.cond.wait()
            return self.concurrency - len(self.jobs)

    def poll_loop(self):
        backoff = 0.1
        while not self.stopping.is_set():
            free = self.free_slots()
            if self.stopping.is_set():
                break
            request = pb.PollTasksRequest(
                worker_id=self.worker_id, task_types=self.types, max_tasks=free,
                wait_seconds=self.wait_seconds, lease_seconds=self.lease_seconds)
            try:
                self.poll_call = self.stub.PollTasks.future(
                    request, timeout=self.wait_seconds + RPC_TIMEOUT, metadata=self.md)
                if self.stopping.is_set():  # stop() ran before poll_call was set
                    self.poll_call.cancel()
                reply = self.poll_call.result()
            except grpc.FutureCancelledError:
                break
            except grpc.RpcError as e:
                if self.stopping.is_set() or e.code() == grpc.StatusCode.CANCELLED:
                    break
                if e.code() not in (grpc.StatusCode.UNAVAILABLE,
                                    grpc.StatusCode.DEADLINE_EXCEEDED):
                    # INVALID_ARGUMENT and the like: retrying cannot help.
                    raise SystemExit("PollTasks failed: %s: %s"
                                     % (e.code().name, e.details()))
                # Server down, restarting or draining: wait, then try again.
                self.log("PollTasks: %s; retrying in %.1fs", e.code().name, backoff)
                self.stopping.wait(backoff * random.uniform(0.5, 1.0))
                backoff = min(MAX_BACKOFF, backoff * 2)
                continue
            finally:
                self.poll_call = None
            backoff = 0.1
            for lease in reply.leases:
                self.start(lease)

    def start(self, lease):
        job = Job(lease)
        with self.cond:
            self.jobs[lease.lease_id] = job
        self.log("task %s leased (attempt %d, lease %s)",
                 lease.task.id, lease.task.attempt, lease.lease_id)
        self.pool.submit(self.run_job, job)

    # -- one task --------------------------------------------------------
    def run_job(self, job):
        task = job.lease.task
        try:
            try:
                result = handle(task, job.stop)
            except Stopped:
                self.report(job, "FailTask", pb.FailTaskRequest(
                    lease_id=job.lease.lease_id, worker_id=self.worker_id,
                    error_message="stopped on request"))
            except TaskFailed as e:
                self.report(job, "FailTask", pb.FailTaskRequest(
                    lease_id=job.lease.lease_id, worker_id=self.worker_id,
                    error_message=str(e), retryable=e.retryable))
            except Exception as e:  # a bug in the handler: let the server retry
                self.report(job, "FailTask", pb.FailTaskRequest(
                    lease_id=job.lease.lease_id, worker_id=self.worker_id,
                    error_message="%s: %s" % (type(e).__name__, e)))
            else:
                self.report(job, "CompleteTask", pb.CompleteTaskRequest(
                    lease_id=job.lease.lease_id, worker_id=self.worker_id,
                    result=result))
        finally:
            with self.cond:
                del self.jobs[job.lease.lease_id]
                self.cond.notify_all()

    def report(self, job, method, request):
        """Sends CompleteTask or FailTask; retries while the server is
        unreachable, as long as the lease can still be alive."""
        task_id = job.lease.task.id
        if job.lost:
            self.log("task %s: lease lost, nothing to report", task_id)
            return
        deadline = job.expires
        backoff = 0.1
        while True:
            try:
                done = getattr(self.stub, method)(request, timeout=RPC_TIMEOUT,
                                                  metadata=self.md)
                self.log("task %s: %s -> %s", task_id, method,
                         pb.TaskStatus.Name(done.status))
                return
            except grpc.RpcError as e:
                if e.code() in (grpc.StatusCode.NOT_FOUND,
                                grpc.StatusCode.FAILED_PRECONDITION):
                    # The lease expired or the server forgot it: the task
                    # went back to the queue and our report is discarded.
                    self.log("task %s: %s refused: %s: %s", task_id, method,
                             e.code().name, e.details())
                    return
                if e.code() != grpc.StatusCode.UNAVAILABLE or time.time() > deadline:
                    self.log("task %s: %s failed: %s: %s", task_id, method,
                             e.code().name, e.details())
                    return
            time.sleep(backoff)
            backoff = min(MAX_BACKOFF, backoff * 2)

    # -- heartbeats ------------------------------------------------------
    def heartbeat_loop(self):
        """Every lease/3 seconds extends every lease in hand, and passes
        cancellations and lost leases on to the handlers."""
        while True:
            time.sleep(self.lease_seconds / 3.0)
            with self.cond:
                jobs = dict(self.jobs)
            if not jobs:
                continue
            try:
                reply = self.stub.Heartbeat(pb.HeartbeatRequest(
                    worker_id=self.worker_id, lease_ids=list(jobs)),
                    timeout=RPC_TIMEOUT, metadata=self.md)
            except grpc.RpcError as e:
                self.log("Heartbeat: %s", e.code().name)
                continue
            for state in reply.leases:
                job = jobs.get(state.lease_id)
                if job is None:
                    continue
                if state.lost:
                    if not job.lost:
                        self.log("task %s: lease lost", job.lease.task.id)
                    job.lost = True
                    job.stop.set()
                    continue
                job.expires = state.expires_at.ToNanoseconds() / 1e9
                if state.cancel_requested and not job.stop.is_set():
                    self.log("task %s: cancellation requested", job.lease.task.id)
                    job.stop.set()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--addr", default=os.environ.get("OEE_ADDR", DEFAULT_ADDR),
        help="server address HOST:PORT (default: $OEE_ADDR or %s)" % DEFAULT_ADDR)
    parser.add_argument("--tls-ca", help="connect with TLS, trusting this CA file (PEM)")
    parser.add_argument("--tls-cert", help="client certificate (PEM), for mTLS")
    parser.add_argument("--tls-key", help="its private key (PEM)")
    parser.add_argument("--tls-server-name",
                        help="the name in the server's certificate, if not the host of --addr")
    parser.add_argument("--token-file",
                        help="file holding a token with the worker role (default: $OEE_TOKEN)")
    parser.add_argument("--type", action="append", required=True, dest="types",
                        help="a task type to run, one of the server's "
                             "remote_types (repeatable)")
    parser.add_argument("--concurrency", type=int, default=4,
                        help="tasks run at once (default 4)")
    parser.add_argument("--lease", type=float, default=30.0,
                        help="lease length in seconds, 1..3600 (default 30)")
    parser.add_argument("--wait", type=float, default=30.0,
                        help="how long one poll waits for work, 0..60 (default 30)")
    parser.add_argument("--worker-id",
                        default="%s-%d" % (socket.gethostname(), os.getpid()),
                        help="this worker's name (default HOST-PID)")
    args = parser.parse_args()
    if not 1 <= args.concurrency <= 100:
        parser.error("--concurrency must be 1..100")

    worker = Worker(args, args.types, args.concurrency, args.lease,
                    args.worker_id, args.wait)

    def on_signal(signum, frame):
        if worker.stopping.is_set():
            worker.log("second signal: exiting now")
            os._exit(1)
        worker.log("%s: finishing the tasks in hand", signal.Signals(signum).name)
        worker.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    worker.run()


if __name__ == "__main__":
    main()
