"""One server per address, black box: a second oee-server started on the
port of a running one must fail (exit status 1, a log line naming the
address and saying "address already in use") and must not take a share of
the port: the first keeps answering calls, before and after.

gRPC turns SO_REUSEPORT on by default, under which both servers would bind
and split the connections between them silently; the server runtime turns
it off (server/rt/rpc_server.c).

Each server gets a data directory of its own: on a shared one the second
would be refused by the store's lock before it even tried the port.
"""

import os
import shutil
import signal
import subprocess
import tempfile
import unittest

import grpc

from oee.v1 import orchestrator_pb2 as pb
from oee.v1 import orchestrator_pb2_grpc as pb_grpc

TIMEOUT = 20.0


def runfile(path):
    root = os.environ.get("TEST_SRCDIR")
    if not root:
        raise RuntimeError("TEST_SRCDIR is not set: run this with bazel test")
    return os.path.join(root, "oee", path)


SERVER = runfile("server/oee-server")


def start(addr, data_dir):
    """Starts a server on addr; returns (process, bound port)."""
    proc = subprocess.Popen([SERVER, "--listen", addr, "--data-dir", data_dir],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True)
    line = proc.stdout.readline()
    if "listening on port" not in line:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError("server did not start: %r\n%s" % (line, err))
    return proc, int(line.split()[-1])


def run_to_exit(addr, data_dir):
    """Runs a server on addr that is expected to fail; returns (status, stderr)."""
    proc = subprocess.run([SERVER, "--listen", addr, "--data-dir", data_dir],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=TIMEOUT)
    return proc.returncode, proc.stderr


def serves(port):
    """True when a GetSystemStatus call on a fresh channel succeeds (a
    failed call raises grpc.RpcError)."""
    with grpc.insecure_channel("127.0.0.1:%d" % port) as ch:
        stub = pb_grpc.OrchestratorServiceStub(ch)
        stub.GetSystemStatus(pb.GetSystemStatusRequest(), timeout=TIMEOUT)
    return True


class OneServerPerAddress(unittest.TestCase):

    def data_dir(self):
        """A new data directory, removed after the test (and its tearDown)."""
        path = tempfile.mkdtemp(prefix="oee-listen-", dir=os.environ.get("TEST_TMPDIR"))
        self.addCleanup(shutil.rmtree, path, ignore_errors=True)
        return path

    def setUp(self):
        self.first, self.port = start("127.0.0.1:0", self.data_dir())

    def tearDown(self):
        self.first.send_signal(signal.SIGTERM)
        _, err = self.first.communicate(timeout=TIMEOUT)
        self.assertEqual(self.first.returncode, 0, err)

    def test_second_server_on_the_same_port_fails(self):
        self.assertTrue(serves(self.port))
        addr = "127.0.0.1:%d" % self.port
        status, err = run_to_exit(addr, self.data_dir())
        self.assertEqual(status, 1, err)
        self.assertIn("addr=%s" % addr, err)
        self.assertIn("address already in use", err)
        # The first server still owns the port: every new connection
        # reaches it (with a shared port some would have gone to the
        # second, had it bound).
        for _ in range(5):
            self.assertTrue(serves(self.port))
        self.assertIsNone(self.first.poll())

    def test_address_not_available_is_told_apart(self):
        # 192.0.2.0/24 (TEST-NET-1) is never a local address.
        status, err = run_to_exit("192.0.2.1:%d" % self.port, self.data_dir())
        self.assertEqual(status, 1, err)
        self.assertIn("addr=192.0.2.1:%d" % self.port, err)
        self.assertIn("address cannot be bound", err)
        self.assertNotIn("already in use", err)


if __name__ == "__main__":
    unittest.main()
