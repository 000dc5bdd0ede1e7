"""Tokens with roles over the wire (API.md "Security", the tokens part).

The real //server:oee-server runs with tests/python/test_config_tokens.json:
four tokens, three given by their SHA-256 and one read from
tests/python/test_token_submit.txt (surrounding whitespace trimmed). Checks:
no, empty, malformed, unknown and almost-right tokens are UNAUTHENTICATED
and change nothing; each RPC group needs its role (roles do not imply each
other); health and reflection stay open; a 100 KB authorization header is
refused without hurting the server; the log names a token, never shows one.
"""

import signal
import unittest

import grpc

from oee.v1 import orchestrator_pb2 as pb
from oee.v1 import orchestrator_pb2_grpc as pb_grpc

import test_wire

READ, SUBMIT, ADMIN, WORKER = ("read-token-1", "submit-token-2", "admin-token-3",
                               "worker-token-4")
ROLES = {READ: {"read"}, SUBMIT: {"submit"}, ADMIN: {"admin"}, WORKER: {"worker", "read"}}
TIMEOUT = 10


def bearer(token):
    return (("authorization", "Bearer " + token),)


def code_of(fn, req, metadata):
    try:
        fn(req, metadata=metadata, timeout=TIMEOUT)
        return grpc.StatusCode.OK
    except grpc.RpcError as e:
        return e.code()


class TokensTest(test_wire.ServerTestCase):
    CONFIG = "test_config_tokens.json"
    METADATA = bearer(READ)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.workers = pb_grpc.WorkerServiceStub(cls.channel)

    @classmethod
    def tearDownClass(cls):
        # The base class cleans up through calls without a token; here the
        # server only has to stop cleanly.
        cls.channel.close()
        cls.server.send_signal(signal.SIGTERM)
        if cls.server.wait(90) != 0:
            raise AssertionError("oee-server exit code after SIGTERM = %s, want 0; log: %s"
                                 % (cls.server.returncode, cls._log_tail()))

    def total(self):
        return self.stub.ListTasks(pb.ListTasksRequest(), metadata=bearer(READ),
                                   timeout=TIMEOUT).total_size

    def test_without_a_valid_token_nothing_happens(self):
        before = self.total()
        submit = pb.SubmitTaskRequest(name="x", task_type="echo")
        for md in [(), (("authorization", ""),), (("authorization", "Bearer "),),
                   (("authorization", "Basic " + SUBMIT),), bearer("nope"),
                   bearer(SUBMIT[:-1] + "3"),  # differs only in its last byte
                   bearer(SUBMIT + " "), bearer(SUBMIT.upper())]:
            self.assertEqual(code_of(self.stub.SubmitTask, submit, md),
                             grpc.StatusCode.UNAUTHENTICATED, md)
        self.assertEqual(self.total(), before)
        with self.assertRaises(grpc.RpcError) as err:
            self.stub.SubmitTask(submit, metadata=bearer("nope"), timeout=TIMEOUT)
        self.assertEqual(err.exception.details(), "unknown token")
        # The right one, read from its file with the whitespace trimmed.
        self.assertEqual(code_of(self.stub.SubmitTask, submit, bearer(SUBMIT)), grpc.StatusCode.OK)
        self.assertEqual(self.total(), before + 1)

    def test_each_group_needs_its_role(self):
        calls = {
            "read": (self.stub.GetQueueStatus, pb.GetQueueStatusRequest()),
            "submit": (self.stub.SubmitTask, pb.SubmitTaskRequest(name="r", task_type="echo")),
            "admin": (self.stub.ClearCompletedTasks, pb.ClearCompletedTasksRequest(keep_recent=1000)),
            "worker": (self.workers.PollTasks,
                       pb.PollTasksRequest(worker_id="w", task_types=["remote"], wait_seconds=0)),
        }
        for role, (fn, req) in calls.items():
            for token, roles in ROLES.items():
                want = grpc.StatusCode.OK if role in roles else grpc.StatusCode.PERMISSION_DENIED
                self.assertEqual(code_of(fn, req, bearer(token)), want, (role, token))
        with self.assertRaises(grpc.RpcError) as err:
            self.stub.ListTasks(pb.ListTasksRequest(), metadata=bearer(SUBMIT), timeout=TIMEOUT)
        self.assertEqual(err.exception.code(), grpc.StatusCode.PERMISSION_DENIED)
        self.assertIn('"submitter" lacks the read role', err.exception.details())

    def test_health_and_reflection_are_open(self):
        check = self.channel.unary_unary("/grpc.health.v1.Health/Check",
                                         request_serializer=lambda b: b,
                                         response_deserializer=lambda b: b)
        self.assertEqual(check(b"", timeout=TIMEOUT), b"\x08\x01")  # SERVING, no token
        info = self.channel.stream_stream("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                                          request_serializer=lambda b: b,
                                          response_deserializer=lambda b: b)
        # list_services (field 7) = "": the answer names the services.
        replies = list(info(iter([b"\x3a\x00"]), timeout=TIMEOUT))
        self.assertTrue(replies and b"oee.v1.OrchestratorService" in replies[0])

    def test_huge_header_refused_server_unharmed(self):
        md = (("authorization", "Bearer " + "x" * 100000),)
        before = self.total()
        # A connection of its own: gRPC ends the connection that carried it.
        channel = grpc.insecure_channel(self.addr, options=[("grpc.use_local_subchannel_pool", 1)])
        stub = pb_grpc.OrchestratorServiceStub(channel)
        self.assertNotEqual(code_of(stub.SubmitTask, pb.SubmitTaskRequest(name="h", task_type="echo"),
                                    md), grpc.StatusCode.OK)
        channel.close()
        self.assertEqual(self.total(), before)  # nothing created; the server still serves

    def test_log_names_tokens_never_shows_them(self):
        code_of(self.stub.ListTasks, pb.ListTasksRequest(), bearer(ADMIN))
        code_of(self.stub.ListTasks, pb.ListTasksRequest(), bearer("not-a-real-token-5"))

        def refused_logged():
            with open(self.stderr_path, errors="replace") as f:
                return "token=admin" in f.read()
        test_wire.wait_until(refused_logged, what="the refusal's log line")
        with open(self.stderr_path, errors="replace") as f:
            log = f.read()
        for secret in (READ, SUBMIT, ADMIN, WORKER, "not-a-real-token-5"):
            self.assertNotIn(secret, log)
        self.assertIn("msg=call_refused method=ListTasks code=PERMISSION_DENIED token=admin", log)


if __name__ == "__main__":
    unittest.main(verbosity=2)
