"""The metrics endpoint over the wire (API.md "Metrics and logs").

The real //server:oee-server runs with --metrics-listen 127.0.0.1:0 (the
bound port read from its `msg=metrics_listening` log line), on the default
store (sqlite, a data directory of its own). Checks: the counters match what
was submitted and finished, per task type; the call counters match the calls
made, refusals counted under their code; a repeated idempotency key is not a
submission; gauges agree with GetQueueStatus; watchers are counted;
`promtool check metrics` accepts a scrape; 404, 405 with Allow (HEAD too);
1,000 concurrent scrapes all answered while tasks run and RPCs go on;
/healthz 200 while serving and 503 while a SIGTERM drain runs. Then a real
Prometheus (Debian's `prometheus`, started here on a free loopback port,
scraping every second) is queried through its HTTP API for the submitted
and finished totals of a server of its own.
"""

import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.parse

import grpc

from oee.v1 import orchestrator_pb2 as pb

import test_wire
from test_wire import DONE, ERROR, RPC_TIMEOUT, RUNNING, wait_until

SCRAPES = 1000
SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text):
    """{(name, ((label, value), ...)): float} of every sample line."""
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE_RE.match(line)
        if m is None:
            raise AssertionError("not a sample line: %r" % line)
        labels = tuple(sorted(LABEL_RE.findall(m.group(2) or "")))
        samples[(m.group(1), labels)] = float(m.group(3))
    return samples


def value(samples, name, **labels):
    """The sample's value, 0 when the series does not exist (yet)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MetricsServer(test_wire.ServerTestCase):
    """A server with the endpoint on; helpers to read it."""
    EXTRA_ARGS = ("--metrics-listen", "127.0.0.1:0")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()

        def port():
            with open(cls.stderr_path, errors="replace") as f:
                m = re.search(r"msg=metrics_listening addr=127\.0\.0\.1:0 port=(\d+)", f.read())
            return m and int(m.group(1))
        cls.metrics_port = wait_until(port, 30, "the metrics_listening log line")

    @classmethod
    def request(cls, method, path, timeout=60):
        """(status, headers, body) of one request on a new connection."""
        conn = http.client.HTTPConnection("127.0.0.1", cls.metrics_port, timeout=timeout)
        try:
            conn.request(method, path)
            r = conn.getresponse()
            return r.status, dict(r.getheaders()), r.read().decode()
        finally:
            conn.close()

    def scrape(self):
        # A rendering answers the scrapes of the next 5 ms (metrics_http.h):
        # waiting longer than that makes the scrape show every change the
        # test made before it.
        time.sleep(0.02)
        status, headers, body = self.request("GET", "/metrics")
        self.assertEqual(status, 200)
        self.assertEqual(headers.get("Content-Type"), "text/plain; version=0.0.4; charset=utf-8")
        return body

    def submit_and_finish(self, specs):
        """Submits (task_type, context) pairs; waits until all are DONE (ERROR
        for the `fail` type)."""
        ids = [(self.submit(t, context=c).task_id, t) for t, c in specs]
        for i, t in ids:
            self.assertEqual(self.wait_status(i).status, ERROR if t == "fail" else DONE)
        return [i for i, _ in ids]


class MetricsTest(MetricsServer):

    def test_counts_match_what_was_done(self):
        self.wait_idle()
        before = parse(self.scrape())
        specs = [("echo", {"message": "m"})] * 12 + [("sleep", {"seconds": "0"})] * 7
        self.submit_and_finish(specs)
        # Refusals: counted under their code, nothing submitted.
        self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, self.stub.SubmitTask,
                        pb.SubmitTaskRequest(name="bad", task_type="echo", priority=11))
        self.assertCode(grpc.StatusCode.NOT_FOUND, self.stub.GetTask,
                        pb.GetTaskRequest(task_id="00000000-0000-7000-8000-000000000000"))
        # A repeated idempotency key: two OK calls, one submission.
        for _ in range(2):
            r = self.stub.SubmitTask(pb.SubmitTaskRequest(
                name="k", task_type="echo", idempotency_key="metrics-key-1"), timeout=RPC_TIMEOUT)
        self.assertTrue(r.duplicate)
        self.wait_status(r.task_id)
        after = parse(self.scrape())

        def delta(name, **labels):
            return value(after, name, **labels) - value(before, name, **labels)
        self.assertEqual(delta("oee_tasks_submitted_total", task_type="echo"), 13)
        self.assertEqual(delta("oee_tasks_submitted_total", task_type="sleep"), 7)
        self.assertEqual(delta("oee_tasks_finished_total", task_type="echo", status="done"), 13)
        self.assertEqual(delta("oee_tasks_finished_total", task_type="sleep", status="done"), 7)
        self.assertEqual(delta("oee_task_run_seconds_count", task_type="sleep"), 7)
        self.assertEqual(delta("oee_task_queue_wait_seconds_count", task_type="echo"), 13)
        self.assertEqual(delta("oee_rpc_requests_total", method="SubmitTask", code="OK"), 19 + 2)
        self.assertEqual(delta("oee_rpc_requests_total", method="SubmitTask",
                               code="INVALID_ARGUMENT"), 1)
        self.assertEqual(delta("oee_rpc_requests_total", method="GetTask", code="NOT_FOUND"), 1)
        self.assertEqual(delta("oee_rpc_duration_seconds_count", method="SubmitTask"), 19 + 3)
        # The gauge is GetQueueStatus's count; the store is on disk.
        counts = self.queue().tasks_by_status
        for status in ("queued", "scheduled", "running", "done", "error", "cancelled"):
            self.assertEqual(value(after, "oee_tasks", status=status), counts[status], status)
        self.assertGreater(value(after, "oee_store_bytes"), 0)
        self.assertGreater(value(after, "oee_store_commit_seconds_count"), 0)
        self.assertGreater(value(after, "process_resident_memory_bytes"), 0)
        self.assertGreater(value(after, "process_open_fds"), 0)

    def test_promtool_accepts_a_scrape(self):
        promtool = shutil.which("promtool") or "/usr/bin/promtool"
        if not os.path.exists(promtool):
            self.skipTest("promtool is not installed (Debian package prometheus)")
        self.submit_and_finish([("echo", {"message": 'a "quoted" \\ value'})])
        r = subprocess.run([promtool, "check", "metrics"], input=self.scrape().encode(),
                           capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout.decode() + r.stderr.decode())

    def test_paths_and_methods(self):
        self.assertEqual(self.request("GET", "/nope")[0], 404)
        self.assertEqual(self.request("GET", "/")[0], 404)
        status, headers, _ = self.request("POST", "/metrics")
        self.assertEqual(status, 405)
        self.assertEqual(headers.get("Allow"), "GET")
        self.assertEqual(self.request("DELETE", "/healthz")[0], 405)
        self.assertEqual(self.request("HEAD", "/metrics")[0], 405)  # API.md: GET only
        self.assertEqual(self.request("GET", "/healthz")[:3:2], (200, "ok\n"))

    def test_watchers_counted(self):
        base = value(parse(self.scrape()), "oee_watchers")
        w = test_wire.Watcher(self.stub, pb.WatchTasksRequest())
        try:
            wait_until(lambda: value(parse(self.scrape()), "oee_watchers") == base + 1,
                       what="oee_watchers to count the stream")
        finally:
            w.cancel()
        wait_until(lambda: value(parse(self.scrape()), "oee_watchers") == base,
                   what="oee_watchers to drop the stream")

    def test_concurrent_scrapes_while_tasks_run(self):
        stop = threading.Event()
        submitted, rpc_errors = [], []

        def submitter():  # keeps RPCs and tasks going during the storm
            while not stop.is_set():
                try:
                    submitted.append(self.submit("sleep", context={"seconds": "0.01"}).task_id)
                except grpc.RpcError as e:
                    rpc_errors.append(e.code())
        feeder = threading.Thread(target=submitter, daemon=True)
        feeder.start()
        barrier = threading.Barrier(SCRAPES)
        results = [None] * SCRAPES

        def scraper(i):
            try:
                barrier.wait(120)
                status, _, body = self.request("GET", "/metrics", timeout=120)
                results[i] = (status, "# TYPE oee_tasks gauge\n" in body)
            except Exception as e:  # reported below with the others
                results[i] = repr(e)
        t0 = time.monotonic()
        threads = [threading.Thread(target=scraper, args=(i,)) for i in range(SCRAPES)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        took = time.monotonic() - t0
        during = len(submitted)
        stop.set()
        feeder.join(60)
        bad = [r for r in results if r != (200, True)]
        self.assertEqual(bad, [], "%d of %d scrapes failed" % (len(bad), SCRAPES))
        self.assertEqual(rpc_errors, [])
        self.assertGreater(during, 0, "no SubmitTask completed during the scrapes")
        print("%d concurrent scrapes answered in %.2f s; %d SubmitTask calls meanwhile"
              % (SCRAPES, took, during))
        for i in submitted[-5:]:  # the server still runs tasks and answers
            self.assertEqual(self.wait_status(i).status, DONE)
        self.wait_idle()  # nothing left to finish during the next test

    @classmethod
    def before_sigterm(cls):
        # A task that outlasts the signal, so the drain lasts a few seconds.
        r = cls.stub.SubmitTask(pb.SubmitTaskRequest(
            name="drained", task_type="sleep", context={"seconds": "6"}), timeout=RPC_TIMEOUT)
        wait_until(lambda: cls.stub.GetTask(pb.GetTaskRequest(task_id=r.task_id),
                                            timeout=RPC_TIMEOUT).status == RUNNING,
                   what="the drained task to run")
        return cls.request("GET", "/healthz")[0]

    @classmethod
    def after_sigterm(cls, before):
        problems = []
        if before != 200:
            problems.append("/healthz before SIGTERM: %s, want 200" % before)
        try:
            wait_until(lambda: cls.request("GET", "/healthz", timeout=5)[0] == 503, 5,
                       "/healthz to answer 503 while draining")
            if cls.request("GET", "/metrics", timeout=5)[0] != 200:
                problems.append("/metrics while draining: not 200")
        except Exception as e:
            problems.append("while draining: %r" % (e,))
        return problems


class PrometheusTest(MetricsServer):
    """Debian's prometheus scrapes a server of its own every second."""

    def setUp(self):
        self.prometheus = shutil.which("prometheus") or "/usr/bin/prometheus"
        if not os.path.exists(self.prometheus):
            self.skipTest("the prometheus binary is not installed (Debian package prometheus)")

    def start_prometheus(self):
        tmp = tempfile.mkdtemp(prefix="oee-prometheus-", dir=os.environ.get("TEST_TMPDIR"))
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        cfg = os.path.join(tmp, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    "scrape_configs:\n  - job_name: oee\n    static_configs:\n"
                    "      - targets: ['127.0.0.1:%d']\n" % self.metrics_port)
        self.prom_port = free_port()
        log = open(os.path.join(tmp, "prometheus.log"), "wb")
        self.addCleanup(log.close)
        proc = subprocess.Popen([self.prometheus, "--config.file=" + cfg,
                                 "--web.listen-address=127.0.0.1:%d" % self.prom_port,
                                 "--storage.tsdb.path=" + os.path.join(tmp, "data")],
                                stdout=log, stderr=subprocess.STDOUT)

        def stop():  # also when the test fails
            proc.kill()
            proc.wait(30)
        self.addCleanup(stop)
        wait_until(lambda: proc.poll() is None and self.prom_get("/-/ready") is not None, 60,
                   "prometheus to be ready")

    def prom_get(self, path):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.prom_port, timeout=10)
            conn.request("GET", path)
            r = conn.getresponse()
            body = r.read().decode()
            conn.close()
            return body if r.status == 200 else None
        except OSError:
            return None

    def query(self, expr):
        """The value of an instant query's single sample, or None."""
        body = self.prom_get("/api/v1/query?query=" + urllib.parse.quote(expr))
        result = json.loads(body)["data"]["result"] if body else []
        return float(result[0]["value"][1]) if len(result) == 1 else None

    def results(self, expr):
        body = self.prom_get("/api/v1/query?query=" + urllib.parse.quote(expr))
        return json.loads(body)["data"]["result"] if body else []

    def test_prometheus_sees_the_totals(self):
        self.start_prometheus()
        # Scraped once before anything runs, so that rate() sees the rise.
        wait_until(lambda: self.query('up{job="oee"}') == 1, 60, "prometheus to scrape OEE")
        n_echo, n_sleep, n_fail = 25, 15, 5
        self.submit_and_finish([("echo", {"message": "p"})] * n_echo
                               + [("sleep", {"seconds": "0.05"})] * n_sleep
                               + [("fail", {"message": "planned"})] * n_fail)
        want = n_echo + n_sleep
        wait_until(lambda: self.query("sum(oee_tasks_submitted_total)") == want + n_fail, 60,
                   "sum(oee_tasks_submitted_total) == %d in prometheus" % (want + n_fail))
        wait_until(lambda: self.query('sum(oee_tasks_finished_total{status="done"})') == want,
                   60, 'sum(oee_tasks_finished_total{status="done"}) == %d' % want)
        self.assertEqual(self.query('oee_tasks_submitted_total{task_type="sleep"}'), n_sleep)
        self.assertEqual(self.query('oee_tasks{status="done"}'), want)
        self.check_readme_queries(n_fail / float(want + n_fail))

    def check_readme_queries(self, failure_share):
        """The three queries the README gives operators answer sensibly."""
        depth = self.results('sum by (status) (oee_tasks{status=~"queued|scheduled"})')
        self.assertEqual(sorted(r["metric"]["status"] for r in depth), ["queued", "scheduled"])
        self.assertEqual([float(r["value"][1]) for r in depth], [0.0, 0.0])
        rate = self.query('sum(rate(oee_tasks_finished_total{status="error"}[5m]))'
                          " / sum(rate(oee_tasks_finished_total[5m]))")
        self.assertIsNotNone(rate)
        self.assertAlmostEqual(rate, failure_share, delta=0.01)
        p99 = self.query("histogram_quantile(0.99, sum by (le) "
                         "(rate(oee_task_queue_wait_seconds_bucket[5m])))")
        self.assertIsNotNone(p99)
        self.assertTrue(0 <= p99 < 60, p99)

if __name__ == "__main__":
    unittest.main(verbosity=2)
