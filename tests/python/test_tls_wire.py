"""TLS and mTLS over the wire (API.md "Security"), with tokens on top.

Certificates are made by the `openssl` command in a temporary directory: a
CA, a server certificate for localhost/127.0.0.1, clients signed by that CA
and by another, and expired ones (`openssl ca` with dates in the past).
Real //server:oee-server processes are started with --tls-cert/--tls-key
(and --tls-client-ca for mTLS); the callers are the Python stubs, oeectl
(the C client runtime), `oeectl worker` (the C worker library) and
examples/python/worker.py. Checks: the right credentials work; a plaintext
client, a wrong CA, another name, a missing/foreign/expired client
certificate and an expired server certificate fail cleanly while the server
keeps serving; bad files stop the start naming the file; the token never
reaches the log.
"""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import grpc

from oee.v1 import orchestrator_pb2 as pb
from oee.v1 import orchestrator_pb2_grpc as pb_grpc

import test_wire
from test_wire import runfile, wait_until

TOKEN = "tls-test-token-0123456789"
REMOTE = "tls-remote"
TIMEOUT = 10
CERTS = None  # the directory made by setUpModule


def sh(*args):
    subprocess.run(args, check=True, cwd=CERTS, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)


def path(name):
    return os.path.join(CERTS, name)


def read(name):
    with open(path(name), "rb") as f:
        return f.read()


def make_ca(name, cn):
    sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key",
       "-out", name + ".pem", "-days", "2", "-subj", "/CN=" + cn)


def make_leaf(name, cn, ca, san=None, expired=False):
    """A key and a certificate signed by ca; expired ones end in 2020."""
    sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key", "-out",
       name + ".csr", "-subj", "/CN=" + cn)
    ext = name + ".ext"
    with open(path(ext), "w") as f:
        f.write("subjectAltName=%s\n" % san if san else "basicConstraints=CA:FALSE\n")
    if not expired:
        sh("openssl", "x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey",
           ca + ".key", "-CAcreateserial", "-out", name + ".pem", "-days", "2", "-extfile", ext)
        return
    # `openssl x509` cannot date a certificate in the past; `openssl ca` can.
    os.makedirs(path("ca-db"), exist_ok=True)
    open(path("ca-db/index.txt"), "a").close()
    if not os.path.exists(path("ca-db/serial")):
        with open(path("ca-db/serial"), "w") as f:
            f.write("1000\n")
    with open(path("ca.cnf"), "w") as f:
        f.write("[ca]\ndefault_ca=d\n[d]\ndatabase=ca-db/index.txt\nnew_certs_dir=ca-db\n"
                "serial=ca-db/serial\ndefault_md=sha256\npolicy=p\nunique_subject=no\n"
                "[p]\ncommonName=supplied\n")
    sh("openssl", "ca", "-batch", "-config", "ca.cnf", "-cert", ca + ".pem", "-keyfile",
       ca + ".key", "-in", name + ".csr", "-out", name + ".pem", "-startdate",
       "20200101000000Z", "-enddate", "20200102000000Z", "-extfile", ext, "-notext")


def setUpModule():
    global CERTS
    if shutil.which("openssl") is None:
        raise unittest.SkipTest("the openssl command is not installed")
    CERTS = tempfile.mkdtemp(prefix="oee-tls-")
    make_ca("ca", "oee-test-ca")
    make_ca("other-ca", "someone-else")
    san = "DNS:localhost,IP:127.0.0.1"
    make_leaf("server", "localhost", "ca", san)
    make_leaf("server-expired", "localhost", "ca", san, expired=True)
    make_leaf("client", "client-1", "ca")
    make_leaf("client-foreign", "client-2", "other-ca")
    make_leaf("client-expired", "client-3", "ca", expired=True)
    with open(path("token.txt"), "w") as f:
        f.write("  %s\n" % TOKEN)  # whitespace is trimmed by every reader
    with open(path("tokens.json"), "w") as f:
        json.dump({"remote_types": [REMOTE],
                   "tokens": [{"name": "ops", "sha256": hashlib.sha256(TOKEN.encode()).hexdigest(),
                               "roles": ["read", "submit", "admin", "worker"]}]}, f)


def tearDownModule():
    if CERTS:
        shutil.rmtree(CERTS, ignore_errors=True)


def start_server(args, name):
    """An oee-server (memory store) with args; returns (process, port, log path)."""
    outdir = os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR") or CERTS
    out_path = os.path.join(outdir, name + ".stdout")
    log_path = os.path.join(outdir, name + ".log")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OEE_")}
    with open(out_path, "wb") as out, open(log_path, "wb") as err:
        proc = subprocess.Popen([runfile("server/oee-server"), "--listen", "127.0.0.1:0",
                                 "--store", "memory"] + args, stdout=out, stderr=err, env=env)

    def port():
        if proc.poll() is not None:
            raise AssertionError("oee-server exited with %s; log: %s"
                                 % (proc.returncode, open(log_path).read()[-2000:]))
        with open(out_path) as f:
            text = f.read()
        return "listening on port" in text and int(text.split("listening on port")[1].split()[0])

    return proc, wait_until(port, 60, "the listening line"), log_path


def stop_server(proc):
    proc.send_signal(signal.SIGTERM)
    if proc.wait(60) != 0:
        raise AssertionError("oee-server exit code after SIGTERM = %s" % proc.returncode)


def tls_channel(port, ca="ca.pem", cert=None, name=None):
    creds = grpc.ssl_channel_credentials(
        root_certificates=read(ca), private_key=read(cert + ".key") if cert else None,
        certificate_chain=read(cert + ".pem") if cert else None)
    options = [("grpc.ssl_target_name_override", name)] if name else []
    return grpc.secure_channel("127.0.0.1:%d" % port, creds, options=options)


def call_code(channel, metadata=()):
    """The code of one GetSystemStatus on channel (closed afterwards)."""
    try:
        pb_grpc.OrchestratorServiceStub(channel).GetSystemStatus(
            pb.GetSystemStatusRequest(), timeout=TIMEOUT, metadata=metadata)
        return grpc.StatusCode.OK
    except grpc.RpcError as e:
        return e.code()
    finally:
        channel.close()


def oeectl(port, *args, env_token=None, tls=("--tls-ca", "ca.pem"), timeout=60):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OEE_")}
    if env_token is not None:
        env["OEE_TOKEN"] = env_token
    argv = [path(a) if a.endswith((".pem", ".key", ".txt")) and not a.startswith("/") else a
            for a in list(tls) + list(args)]
    return subprocess.run([runfile("client/oeectl"), "--addr", "127.0.0.1:%d" % port] + argv,
                          capture_output=True, text=True, env=env, timeout=timeout)


BEARER = (("authorization", "Bearer " + TOKEN),)


class TlsWithTokensTest(unittest.TestCase):
    """TLS (no client certificates) and tokens on one server."""

    @classmethod
    def setUpClass(cls):
        cls.proc, cls.port, cls.log = start_server(
            ["--tls-cert", path("server.pem"), "--tls-key", path("server.key"), "--config",
             path("tokens.json")], cls.__name__)

    @classmethod
    def tearDownClass(cls):
        stop_server(cls.proc)
        with open(cls.log) as f:
            log = f.read()
        if TOKEN in log:
            raise AssertionError("the token appears in the server's log")

    def stub(self):
        return pb_grpc.OrchestratorServiceStub(tls_channel(self.port))

    def assert_serving(self):
        self.assertEqual(call_code(tls_channel(self.port), BEARER), grpc.StatusCode.OK)

    def test_python_stubs_with_tls_and_token(self):
        stub = self.stub()
        t = stub.SubmitTask(pb.SubmitTaskRequest(name="tls", task_type="echo",
                                                 context={"message": "over tls"}),
                            metadata=BEARER, timeout=TIMEOUT)
        got = wait_until(lambda: (lambda g: g.status == test_wire.DONE and g)(
            stub.GetTask(pb.GetTaskRequest(task_id=t.task_id), metadata=BEARER, timeout=TIMEOUT)),
            what="the task DONE")
        self.assertIn("over tls", got.result)
        # TLS alone is not enough: the token is still asked for.
        self.assertEqual(call_code(tls_channel(self.port)), grpc.StatusCode.UNAUTHENTICATED)

    def test_plaintext_client_fails_cleanly(self):
        code = call_code(grpc.insecure_channel("127.0.0.1:%d" % self.port), BEARER)
        self.assertEqual(code, grpc.StatusCode.UNAVAILABLE)
        self.assert_serving()

    def test_wrong_ca_or_name_fails_cleanly(self):
        self.assertEqual(call_code(tls_channel(self.port, ca="other-ca.pem"), BEARER),
                         grpc.StatusCode.UNAVAILABLE)
        self.assertEqual(call_code(tls_channel(self.port, name="other.example"), BEARER),
                         grpc.StatusCode.UNAVAILABLE)
        self.assert_serving()

    def test_oeectl_tls_ca_and_token_file(self):
        r = oeectl(self.port, "--token-file", "token.txt", "--json", "submit", "--type", "echo",
                   "--name", "from-oeectl")
        self.assertEqual(r.returncode, 0, r.stderr)
        task_id = json.loads(r.stdout)["id"]
        r = oeectl(self.port, "get", task_id, env_token=TOKEN)  # $OEE_TOKEN
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("from-oeectl", r.stdout)
        # No token: UNAUTHENTICATED (16); no CA: no TLS, UNAVAILABLE (14);
        # the wrong CA or name: UNAVAILABLE; a missing file: local error (70).
        self.assertEqual(oeectl(self.port, "get", task_id).returncode, 16)
        self.assertEqual(oeectl(self.port, "--token-file", "token.txt", "get", task_id,
                                tls=()).returncode, 14)
        self.assertEqual(oeectl(self.port, "--token-file", "token.txt", "get", task_id,
                                tls=("--tls-ca", "other-ca.pem")).returncode, 14)
        self.assertEqual(oeectl(self.port, "--token-file", "token.txt", "get", task_id,
                                tls=("--tls-ca", "ca.pem", "--tls-server-name",
                                     "other.example")).returncode, 14)
        r = oeectl(self.port, "get", task_id, tls=("--tls-ca", path("missing.pem")))
        self.assertEqual(r.returncode, 70)
        self.assertIn("missing.pem", r.stderr)
        self.assert_serving()

    def test_python_example_with_tls_and_token(self):
        env = dict(os.environ, OEE_TOKEN="")
        argv = [sys.executable, runfile("examples/python/submit.py"), "--addr",
                "127.0.0.1:%d" % self.port, "--tls-ca", path("ca.pem"), "--seconds", "0.1",
                "--message", "example over tls"]
        r = subprocess.run(argv + ["--token-file", path("token.txt")], capture_output=True,
                           text=True, env=env, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("'example over tls'", r.stdout)
        self.assertEqual(r.stdout.count("TASK_STATUS_DONE"), 2, r.stdout)
        r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
        self.assertNotEqual(r.returncode, 0)  # no token
        self.assertIn("UNAUTHENTICATED", r.stderr + r.stdout)

    def run_worker(self, argv, name):
        """Runs one remote task through the worker process argv; returns the task."""
        stub = self.stub()
        t = stub.SubmitTask(pb.SubmitTaskRequest(name=name, task_type=REMOTE,
                                                 context={"message": name}),
                            metadata=BEARER, timeout=TIMEOUT)
        env = {k: v for k, v in os.environ.items() if not k.startswith("OEE_")}
        worker = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, env=env)
        try:
            return wait_until(lambda: (lambda g: g.status in test_wire.FINAL and g)(
                stub.GetTask(pb.GetTaskRequest(task_id=t.task_id), metadata=BEARER,
                             timeout=TIMEOUT)), what="the remote task to end")
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()

    def test_workers_connect_with_tls_and_token(self):
        addr = "127.0.0.1:%d" % self.port
        secure = ["--tls-ca", path("ca.pem"), "--token-file", path("token.txt")]
        got = self.run_worker([sys.executable, runfile("examples/python/worker.py"), "--addr",
                               addr, "--type", REMOTE, "--wait", "2"] + secure, "python-worker")
        self.assertEqual(got.status, test_wire.DONE, got.error_message)
        self.assertEqual(got.result, "PYTHON-WORKER")
        got = self.run_worker([runfile("client/oeectl"), "--addr", addr] + secure
                              + ["worker", "--type", REMOTE, "--", "cat"], "c-worker")
        self.assertEqual(got.status, test_wire.DONE, got.error_message)


class MutualTlsTest(unittest.TestCase):
    """--tls-client-ca: only clients with a certificate that CA signed."""

    @classmethod
    def setUpClass(cls):
        cls.proc, cls.port, cls.log = start_server(
            ["--tls-cert", path("server.pem"), "--tls-key", path("server.key"),
             "--tls-client-ca", path("ca.pem")], cls.__name__)

    @classmethod
    def tearDownClass(cls):
        stop_server(cls.proc)

    def test_client_certificates(self):
        self.assertEqual(call_code(tls_channel(self.port, cert="client")), grpc.StatusCode.OK)
        for cert in (None, "client-foreign", "client-expired"):
            self.assertEqual(call_code(tls_channel(self.port, cert=cert)),
                             grpc.StatusCode.UNAVAILABLE, cert)
        self.assertEqual(call_code(tls_channel(self.port, cert="client")), grpc.StatusCode.OK)

    def test_oeectl_with_a_client_certificate(self):
        mtls = ("--tls-ca", "ca.pem", "--tls-cert", "client.pem", "--tls-key", "client.key")
        r = oeectl(self.port, "status", tls=mtls)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(oeectl(self.port, "status").returncode, 14)
        r = oeectl(self.port, "status", tls=("--tls-ca", "ca.pem", "--tls-cert", "client.pem"))
        self.assertEqual(r.returncode, 70)  # a certificate without its key


class ServerCertificateProblemsTest(unittest.TestCase):

    def test_expired_server_certificate(self):
        proc, port, log = start_server(["--tls-cert", path("server-expired.pem"), "--tls-key",
                                        path("server-expired.key")], "expired")
        try:
            self.assertEqual(call_code(tls_channel(port)), grpc.StatusCode.UNAVAILABLE)
        finally:
            stop_server(proc)
        with open(log) as f:
            self.assertIn("msg=tls_cert_expired", f.read())

    def test_tls_client_to_a_plaintext_server(self):
        proc, port, _ = start_server([], "plaintext")
        try:
            self.assertEqual(call_code(tls_channel(port)), grpc.StatusCode.UNAVAILABLE)
            self.assertEqual(call_code(grpc.insecure_channel("127.0.0.1:%d" % port)),
                             grpc.StatusCode.OK)
        finally:
            stop_server(proc)

    def test_bad_files_stop_the_start_naming_the_file(self):
        with open(path("garbage.pem"), "w") as f:
            f.write("not a certificate\n")
        cases = [
            (["--tls-cert", path("nope.pem"), "--tls-key", path("server.key")], 1, "nope.pem"),
            (["--tls-cert", path("garbage.pem"), "--tls-key", path("server.key")], 1,
             "garbage.pem holds no PEM certificate"),
            (["--tls-cert", path("server.pem"), "--tls-key", path("garbage.pem")], 1,
             "garbage.pem holds no PEM private key"),
            (["--tls-cert", path("server.pem"), "--tls-key", path("client.key")], 1,
             "client.key does not match"),
            (["--tls-cert", path("server.pem"), "--tls-key", path("server.key"),
              "--tls-client-ca", path("garbage.pem")], 1, "client_ca_file"),
            (["--tls-cert", path("server.pem")], 2, "go together"),
            (["--tls-client-ca", path("ca.pem")], 2, "needs cert_file"),
        ]
        for args, code, words in cases:
            r = subprocess.run([runfile("server/oee-server"), "--listen", "127.0.0.1:0",
                                "--store", "memory"] + args, capture_output=True, text=True,
                               timeout=60)
            self.assertEqual(r.returncode, code, (args, r.stderr))
            self.assertIn(words, r.stderr, args)
            self.assertNotIn("listening on port", r.stdout, args)


if __name__ == "__main__":
    unittest.main(verbosity=2)
