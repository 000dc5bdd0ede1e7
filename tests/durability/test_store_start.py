"""Start-up of oee-server on the SQLite store (--store sqlite), against real
database files:

  * unusable databases stop the start: a file of garbage, a foreign SQLite
    database, an OEE database with a newer schema (PRAGMA user_version = 99),
    a corrupt OEE database, and a data directory another running server
    holds. Each start exits non-zero with "cannot open the store" and a
    message naming the file and the cause, and leaves the file's bytes
    unchanged;
  * a restart finds its tasks: submit, SIGTERM, start again on the same data
    directory, GetTask finds the task, and the WatchTasks sequence of a new
    change is larger than any seen before the restart.
"""

import hashlib
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time
import unittest

import grpc

from oee.v1 import orchestrator_pb2 as pb
from oee.v1 import orchestrator_pb2_grpc as pb_grpc

RPC_TIMEOUT = 20.0
START_TIMEOUT = 60.0


def runfile(path):
    root = os.environ.get("TEST_SRCDIR")
    if not root:
        raise RuntimeError("TEST_SRCDIR is not set: run this with bazel test")
    return os.path.join(root, "oee", path)


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def argv(data_dir):
    return [runfile("server/oee-server"), "--listen", "127.0.0.1:0", "--store", "sqlite",
            "--data-dir", data_dir, "--sync", "full"]


class Server(object):
    """One oee-server on the sqlite store, on a free port."""

    def __init__(self, data_dir):
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(argv(data_dir), stdout=subprocess.PIPE, stderr=self.stderr,
                                     universal_newlines=True)
        line = self.proc.stdout.readline()
        if "listening on port" not in line:
            self.proc.kill()
            self.proc.wait()
            self.stderr.seek(0)
            raise AssertionError("server did not start: %r %s" % (line, self.stderr.read()))
        self.target = "127.0.0.1:%s" % line.split()[-1]
        self.channel = grpc.insecure_channel(self.target)
        self.stub = pb_grpc.OrchestratorServiceStub(self.channel)

    def log(self):
        self.stderr.seek(0)
        return self.stderr.read()

    def stop(self):
        self.channel.close()
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=60)
        self.proc.stdout.close()
        return rc


def refused_start(data_dir):
    """Starts a server that must refuse to start; (exit status, stderr)."""
    proc = subprocess.run(argv(data_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=START_TIMEOUT)
    return proc.returncode, proc.stdout, proc.stderr


def make_oee_db(data_dir, tasks=0):
    """An OEE database made by the server itself, closed cleanly."""
    srv = Server(data_dir)
    for i in range(tasks):
        srv.stub.SubmitTask(pb.SubmitTaskRequest(
            name="t%d" % i, task_type="sleep", context={"seconds": "600", "pad": "x" * 2000}),
            timeout=RPC_TIMEOUT)
    assert srv.stop() == 0
    db = os.path.join(data_dir, "oee.db")
    assert os.path.exists(db)
    return db


class UnusableDatabases(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="oee-store-start-")
        self.data = os.path.join(self.root, "data")

    def tearDown(self):
        shutil.rmtree(self.root, ignore_errors=True)

    def expect_refusal(self, db, cause):
        before = digest(db)
        rc, out, err = refused_start(self.data)
        self.assertNotEqual(rc, 0, err)
        self.assertNotIn("listening on port", out)
        self.assertIn("oee-server: cannot open the store:", err)
        self.assertIn(db, err, "the message names the file")
        self.assertIn(cause, err)
        self.assertEqual(digest(db), before, "the file was changed")

    def test_garbage_file(self):
        os.makedirs(self.data)
        db = os.path.join(self.data, "oee.db")
        with open(db, "wb") as f:
            f.write(b"this is not a database at all\n" * 400)
        self.expect_refusal(db, "is not a database")

    def test_foreign_sqlite_database(self):
        os.makedirs(self.data)
        db = os.path.join(self.data, "oee.db")
        conn = sqlite3.connect(db)
        conn.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, owner TEXT)")
        conn.execute("INSERT INTO accounts (owner) VALUES ('someone else')")
        conn.commit()
        conn.close()
        self.expect_refusal(db, "is not an OEE database")

    def test_newer_schema(self):
        db = make_oee_db(self.data, tasks=1)
        conn = sqlite3.connect(db)
        conn.execute("PRAGMA user_version = 99")
        conn.commit()
        conn.close()
        self.expect_refusal(db, "schema version 99")

    def test_corrupt_database(self):
        db = make_oee_db(self.data, tasks=200)
        wal = db + "-wal"
        self.assertFalse(os.path.exists(wal) and os.path.getsize(wal) > 0,
                         "a clean stop leaves no WAL to replay")
        size = os.path.getsize(db)
        page = 4096
        self.assertGreater(size, 8 * page)
        # Keep the header page, overwrite the b-tree pages after it.
        with open(db, "r+b") as f:
            f.seek(page)
            f.write(bytes((i * 151 + 7) % 256 for i in range(size - 2 * page)))
        self.expect_refusal(db, "is corrupt")

    def test_database_in_use(self):
        first = Server(self.data)
        try:
            db = os.path.join(self.data, "oee.db")
            before = digest(db)
            rc, out, err = refused_start(self.data)
            self.assertNotEqual(rc, 0, err)
            self.assertIn("oee-server: cannot open the store:", err)
            self.assertIn(db, err)
            self.assertIn("in use by another running server", err)
            self.assertEqual(digest(db), before, "the file was changed")
            # The first server is untouched and still serves.
            resp = first.stub.SubmitTask(pb.SubmitTaskRequest(
                name="still", task_type="echo", context={"message": "here"}),
                timeout=RPC_TIMEOUT)
            self.assertTrue(resp.task_id)
        finally:
            self.assertEqual(first.stop(), 0)


class Restart(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="oee-store-restart-")
        self.data = os.path.join(self.root, "data")

    def tearDown(self):
        shutil.rmtree(self.root, ignore_errors=True)

    def watch_next_sequence(self, srv, submit):
        """The sequence of the first change after `submit` runs."""
        seen, ready = [], threading.Event()
        stream = srv.stub.WatchTasks(pb.WatchTasksRequest(), timeout=RPC_TIMEOUT)

        def read():
            try:
                for ev in stream:
                    seen.append(ev.sequence)
                    break
            except grpc.RpcError:
                pass
            ready.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        time.sleep(0.3)  # the stream is registered before the change
        submit()
        self.assertTrue(ready.wait(RPC_TIMEOUT), "no event arrived")
        stream.cancel()
        self.assertEqual(len(seen), 1)
        return seen[0]

    def test_restart_finds_its_tasks(self):
        srv = Server(self.data)
        self.assertIn("store=sqlite", srv.log())  # logged before the port line
        ids = []

        def submit(name):
            def go():
                resp = srv.stub.SubmitTask(pb.SubmitTaskRequest(
                    name=name, task_type="echo", context={"message": name}),
                    timeout=RPC_TIMEOUT)
                ids.append(resp.task_id)
            return go

        before = self.watch_next_sequence(srv, submit("before"))
        self.assertEqual(srv.stop(), 0)
        srv = Server(self.data)
        try:
            got = srv.stub.GetTask(pb.GetTaskRequest(task_id=ids[0]), timeout=RPC_TIMEOUT)
            self.assertEqual(got.id, ids[0])
            self.assertEqual(got.name, "before")
            after = self.watch_next_sequence(srv, submit("after"))
            self.assertGreater(after, before, "sequence went back after the restart")
        finally:
            self.assertEqual(srv.stop(), 0)


if __name__ == "__main__":
    unittest.main()
