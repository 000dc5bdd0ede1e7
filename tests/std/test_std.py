"""Reflection and health of a real oee-server, through standard clients.

Reflection: list services, describe the service and a message, resolve the
google/protobuf/timestamp.proto dependency, build a descriptor pool from
what the server sent (what grpcurl does), v1 and v1alpha.
Health: Check and Watch for "" and oee.v1.OrchestratorService, NOT_FOUND /
SERVICE_UNKNOWN for other names, and NOT_SERVING as soon as a drain starts.
Each server stores its tasks in a data directory of its own, removed after
its test.
"""
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool

from oee.v1 import orchestrator_pb2 as orchestrator
from oee.v1 import orchestrator_pb2_grpc as orchestrator_grpc
from std import health_v1_pb2 as hpb
from std import health_v1_pb2_grpc as hrpc
from std import reflection_v1_pb2 as rpb
from std import reflection_v1_pb2_grpc as rrpc
from std import reflection_v1alpha_pb2 as rapb
from std import reflection_v1alpha_pb2_grpc as rarpc

SERVER = os.path.join(os.environ.get("TEST_SRCDIR", ""), "oee/server/oee-server")


def new_data_dir(register):
    """A new data directory under $TEST_TMPDIR; register (a test's addCleanup
    or its class's addClassCleanup) removes it after the test's teardown."""
    path = tempfile.mkdtemp(prefix="oee-std-", dir=os.environ.get("TEST_TMPDIR"))
    register(shutil.rmtree, path, ignore_errors=True)
    return path


def start_server(data_dir, *args):
    proc = subprocess.Popen([SERVER, "--listen", "127.0.0.1:0", "--data-dir", data_dir, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if "listening on port" not in line:
        proc.kill()
        raise RuntimeError("server did not start: " + line + proc.stderr.read())
    return proc, int(line.split()[-1])


def reflect(stub, *requests):
    return list(stub.ServerReflectionInfo(iter(requests), timeout=10))


def files_of(resp):
    return [descriptor_pb2.FileDescriptorProto.FromString(b)
            for b in resp.file_descriptor_response.file_descriptor_proto]


class ReflectionTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.proc, port = start_server(new_data_dir(cls.addClassCleanup))
        cls.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        cls.v1 = rrpc.ServerReflectionStub(cls.channel)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        cls.proc.send_signal(signal.SIGTERM)
        assert cls.proc.wait(timeout=30) == 0

    def test_list_services(self):
        (resp,) = reflect(self.v1, rpb.ServerReflectionRequest(list_services=""))
        names = {s.name for s in resp.list_services_response.service}
        self.assertEqual(names, {"oee.v1.OrchestratorService", "oee.v1.WorkerService",
                                 "grpc.health.v1.Health",
                                 "grpc.reflection.v1.ServerReflection",
                                 "grpc.reflection.v1alpha.ServerReflection"})

    def test_describe_service_and_dependency(self):
        (resp,) = reflect(self.v1, rpb.ServerReflectionRequest(
            file_containing_symbol="oee.v1.OrchestratorService"))
        files = files_of(resp)
        self.assertEqual(files[0].name, "oee/v1/orchestrator.proto")
        self.assertIn("google/protobuf/timestamp.proto", [f.name for f in files])
        service = files[0].service[0]
        self.assertEqual(service.name, "OrchestratorService")
        methods = {m.name: m for m in service.method}
        self.assertEqual(methods["SubmitTask"].input_type, ".oee.v1.SubmitTaskRequest")
        self.assertTrue(methods["WatchTasks"].server_streaming)
        self.assertEqual(methods["RetryTask"].input_type, ".oee.v1.RetryTaskRequest")
        self.assertEqual(methods["RetryTask"].output_type, ".oee.v1.Task")
        self.assertEqual(methods["CreateSchedule"].output_type, ".oee.v1.Schedule")
        self.assertEqual(len(methods), 18)
        # What grpcurl does next: build a pool and resolve types by name.
        pool = descriptor_pool.DescriptorPool()
        for f in reversed(files):
            pool.Add(f)
        task = pool.FindMessageTypeByName("oee.v1.Task")
        self.assertEqual(task.fields_by_name["created_at"].message_type.full_name,
                         "google.protobuf.Timestamp")
        self.assertIsNotNone(pool.FindMethodByName("oee.v1.OrchestratorService.CancelTask"))
        # The task-semantics additions are served too.
        self.assertEqual(task.fields_by_name["run_at"].message_type.full_name,
                         "google.protobuf.Timestamp")
        self.assertEqual(task.fields_by_name["depends_on"].label,
                         task.fields_by_name["depends_on"].LABEL_REPEATED)
        status = pool.FindEnumTypeByName("oee.v1.TaskStatus")
        self.assertEqual(status.values_by_name["TASK_STATUS_SCHEDULED"].number, 6)
        submit = pool.FindMessageTypeByName("oee.v1.SubmitTaskRequest")
        self.assertEqual(submit.fields_by_name["max_attempts"].containing_oneof.name,
                         "max_attempts_present")
        limits = pool.FindMessageTypeByName("oee.v1.QueueStatus").fields_by_name["type_limits"]
        self.assertEqual(limits.message_type.full_name, "oee.v1.TypeLimit")
        # The remote workers' service is in the same file.
        workers = {s.name: s for s in files[0].service}["WorkerService"]
        wmethods = {m.name: m for m in workers.method}
        self.assertEqual(sorted(wmethods), ["CompleteTask", "FailTask", "Heartbeat", "PollTasks"])
        self.assertEqual(wmethods["CompleteTask"].output_type, ".oee.v1.Task")
        self.assertIsNotNone(pool.FindMethodByName("oee.v1.WorkerService.PollTasks"))

    def test_describe_message_field_and_method(self):
        for symbol in ("oee.v1.Task", "oee.v1.Task.priority", "oee.v1.TaskStatus",
                       "oee.v1.OrchestratorService.SubmitTask", "oee.v1.QueueStatus",
                       "oee.v1.OrchestratorService.RetryTask", "oee.v1.RetryTaskRequest",
                       "oee.v1.Task.depends_on", "oee.v1.TypeLimit"):
            (resp,) = reflect(self.v1, rpb.ServerReflectionRequest(file_containing_symbol=symbol))
            self.assertEqual(resp.WhichOneof("message_response"), "file_descriptor_response", symbol)
            self.assertEqual(files_of(resp)[0].name, "oee/v1/orchestrator.proto")

    def test_dependencies_sent_once_per_stream(self):
        r1, r2, r3 = reflect(
            self.v1,
            rpb.ServerReflectionRequest(file_containing_symbol="oee.v1.Task"),
            rpb.ServerReflectionRequest(file_containing_symbol="oee.v1.TaskEvent"),
            rpb.ServerReflectionRequest(file_by_filename="google/protobuf/timestamp.proto"))
        self.assertEqual(len(files_of(r1)), 2)
        self.assertEqual([f.name for f in files_of(r2)], ["oee/v1/orchestrator.proto"])
        self.assertEqual([f.name for f in files_of(r3)], ["google/protobuf/timestamp.proto"])
        self.assertEqual(r3.original_request.file_by_filename, "google/protobuf/timestamp.proto")

    def test_not_found_answers(self):
        resps = reflect(
            self.v1,
            rpb.ServerReflectionRequest(file_containing_symbol="oee.v1.Nope"),
            rpb.ServerReflectionRequest(file_by_filename="nope.proto"),
            rpb.ServerReflectionRequest(file_containing_extension=rpb.ExtensionRequest(
                containing_type="oee.v1.Task", extension_number=100)),
            rpb.ServerReflectionRequest(all_extension_numbers_of_type="oee.v1.Nope"),
            rpb.ServerReflectionRequest(all_extension_numbers_of_type="oee.v1.Task"))
        for resp in resps[:4]:
            self.assertEqual(resp.error_response.error_code, grpc.StatusCode.NOT_FOUND.value[0])
        self.assertEqual(resps[4].all_extension_numbers_response.base_type_name, "oee.v1.Task")
        self.assertEqual(list(resps[4].all_extension_numbers_response.extension_number), [])

    def test_health_protos_are_reflected(self):
        (resp,) = reflect(self.v1, rpb.ServerReflectionRequest(
            file_containing_symbol="grpc.health.v1.Health"))
        self.assertEqual(files_of(resp)[0].package, "grpc.health.v1")

    def test_v1alpha(self):
        stub = rarpc.ServerReflectionStub(self.channel)
        (resp,) = list(stub.ServerReflectionInfo(iter([rapb.ServerReflectionRequest(
            file_containing_symbol="oee.v1.SubmitTaskRequest")]), timeout=10))
        names = [descriptor_pb2.FileDescriptorProto.FromString(b).name
                 for b in resp.file_descriptor_response.file_descriptor_proto]
        self.assertEqual(names[0], "oee/v1/orchestrator.proto")


SERVING = hpb.HealthCheckResponse.SERVING
NOT_SERVING = hpb.HealthCheckResponse.NOT_SERVING


class HealthTest(unittest.TestCase):
    def setUp(self):
        self.proc, port = start_server(new_data_dir(self.addCleanup), "--drain-timeout", "30")
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.health = hrpc.HealthStub(self.channel)

    def tearDown(self):
        self.channel.close()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def test_check(self):
        for name in ("", "oee.v1.OrchestratorService", "oee.v1.WorkerService"):
            self.assertEqual(self.health.Check(hpb.HealthCheckRequest(service=name)).status, SERVING)
        with self.assertRaises(grpc.RpcError) as err:
            self.health.Check(hpb.HealthCheckRequest(service="other.Service"))
        self.assertEqual(err.exception.code(), grpc.StatusCode.NOT_FOUND)

    def test_watch_unknown_service(self):
        stream = self.health.Watch(hpb.HealthCheckRequest(service="other.Service"))
        self.assertEqual(next(stream).status, hpb.HealthCheckResponse.SERVICE_UNKNOWN)
        stream.cancel()

    def test_drain_turns_not_serving(self):
        """SIGTERM with a running task: Watch and Check say NOT_SERVING while the
        task is still draining; the stream ends UNAVAILABLE; the server exits 0."""
        stub = orchestrator_grpc.OrchestratorServiceStub(self.channel)
        task = stub.SubmitTask(orchestrator.SubmitTaskRequest(
            name="hold", task_type="sleep", context={"seconds": "1.5"}))
        deadline = time.time() + 10
        while stub.GetTask(orchestrator.GetTaskRequest(task_id=task.task_id)).status != 2:
            self.assertLess(time.time(), deadline)
            time.sleep(0.01)
        watch = self.health.Watch(hpb.HealthCheckRequest(service="oee.v1.OrchestratorService"))
        self.assertEqual(next(watch).status, SERVING)
        self.proc.send_signal(signal.SIGTERM)
        self.assertEqual(next(watch).status, NOT_SERVING)
        check = self.health.Check(hpb.HealthCheckRequest(service=""))
        self.assertEqual(check.status, NOT_SERVING)
        # The task is still running: the drain has not finished yet.
        self.assertEqual(stub.GetTask(orchestrator.GetTaskRequest(task_id=task.task_id)).status, 2)
        with self.assertRaises(grpc.RpcError) as err:
            next(watch)
        self.assertEqual(err.exception.code(), grpc.StatusCode.UNAVAILABLE)
        self.assertEqual(self.proc.wait(timeout=30), 0)



if __name__ == "__main__":
    unittest.main()
