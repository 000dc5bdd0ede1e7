"""The Python stubs of oee.v1 import and the descriptor set is complete."""
import os
import unittest

from google.protobuf import descriptor_pb2

from oee.v1 import orchestrator_pb2
from oee.v1 import orchestrator_pb2_grpc


class StubsTest(unittest.TestCase):
    def test_presence(self):
        req = orchestrator_pb2.SubmitTaskRequest(name="t", task_type="echo")
        self.assertFalse(req.HasField("priority"))
        req.priority = 0
        self.assertTrue(req.HasField("priority"))
        back = orchestrator_pb2.SubmitTaskRequest.FromString(req.SerializeToString())
        self.assertTrue(back.HasField("priority"))

    def test_enums_and_stub(self):
        self.assertEqual(orchestrator_pb2.LOCAL_FAST_PRECISE, 1)
        self.assertEqual(orchestrator_pb2.TASK_STATUS_CANCELLED, 5)
        self.assertEqual(orchestrator_pb2.TASK_STATUS_SCHEDULED, 6)
        self.assertTrue(hasattr(orchestrator_pb2_grpc, "OrchestratorServiceStub"))

    def test_descriptor_set(self):
        path = os.path.join(os.environ["TEST_SRCDIR"], os.environ["TEST_WORKSPACE"],
                            "proto", "orchestrator_descriptor_set.pb")
        with open(path, "rb") as f:
            fds = descriptor_pb2.FileDescriptorSet.FromString(f.read())
        names = [f.name for f in fds.file]
        self.assertEqual(names, ["google/protobuf/timestamp.proto",
                                 "oee/v1/orchestrator.proto"])
        self.assertTrue(fds.file[1].source_code_info.location)
        svc = fds.file[1].service[0]
        self.assertEqual(svc.name, "OrchestratorService")
        methods = {m.name: m for m in svc.method}
        self.assertTrue(methods["WatchTasks"].server_streaming)
        # Appended in contract order: RetryTask, then the six schedule RPCs.
        self.assertEqual([m.name for m in svc.method[-7:]],
                         ["RetryTask", "CreateSchedule", "GetSchedule", "ListSchedules",
                          "DeleteSchedule", "PauseSchedule", "ResumeSchedule"])
        self.assertFalse(any(methods[n].server_streaming for n in
                             ("RetryTask", "CreateSchedule", "ListSchedules")))


if __name__ == "__main__":
    unittest.main()
