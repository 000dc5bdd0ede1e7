/*
 * test_metrics.c - the metrics endpoint's parts without a gRPC client:
 * the exposition writer (HELP/TYPE lines, escaping, cumulative histogram
 * buckets, a buffer that grows, a clean failure when memory runs out), the
 * families rendered from a real engine, the per-method call counters fed
 * through the observe hook's function, and the HTTP endpoint on loopback
 * (200, 503 while draining, 404, 405 with Allow, the socket closed at stop,
 * a bind failure naming the address).
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/oee.h"
#include "core/oee_alloc.h"
#include "oee/v1/orchestrator.grpc-server.h"
#include "server/expo.h"
#include "server/metrics.h"
#include "server/metrics_http.h"

/* The text written so far (NUL-terminated by the writer). */
static const char *text(const oee_expo *e) { return e->buf ? e->buf : ""; }

static void test_family_lines(void **state) {
  (void)state;
  oee_expo e;
  oee_expo_init(&e);
  oee_expo_family(&e, "oee_x_total", "counter", "Back\\slash, \"quote\"\nand newline.");
  oee_expo_u64(&e, "oee_x_total", NULL, 0, 42);
  assert_string_equal(text(&e),
                      "# HELP oee_x_total Back\\\\slash, \"quote\"\\nand newline.\n"
                      "# TYPE oee_x_total counter\n"
                      "oee_x_total 42\n");
  oee_expo_free(&e);
}

static void test_label_escaping(void **state) {
  (void)state;
  oee_expo e;
  oee_expo_init(&e);
  oee_label l[2] = {{"task_type", "a\"b\\c\nd"}, {"status", "done"}};
  oee_expo_u64(&e, "oee_y", l, 2, 7);
  oee_expo_double(&e, "oee_z", NULL, 0, 0.09);
  assert_string_equal(text(&e),
                      "oee_y{task_type=\"a\\\"b\\\\c\\nd\",status=\"done\"} 7\n"
                      "oee_z 0.09\n");
  oee_expo_free(&e);
}

static void test_histogram_cumulative(void **state) {
  (void)state;
  oee_histogram h = {0};
  h.buckets[0] = 1;                         /* <= 0.5 ms */
  h.buckets[2] = 2;                         /* <= 2.5 ms */
  h.buckets[OEE_HISTOGRAM_BUCKETS - 1] = 3; /* > 300 s */
  h.count = 6;
  h.sum_ns = 1500000001ULL;
  oee_expo e;
  oee_expo_init(&e);
  oee_label l = {"task_type", "echo"};
  oee_expo_histogram(&e, "oee_h_seconds", &l, 1, &h);
  const char *t = text(&e);
  assert_non_null(strstr(t,
                         "oee_h_seconds_bucket{task_type=\"echo\",le=\"0.0005\"} 1\n"
                         "oee_h_seconds_bucket{task_type=\"echo\",le=\"0.001\"} 1\n"
                         "oee_h_seconds_bucket{task_type=\"echo\",le=\"0.0025\"} 3\n"));
  assert_non_null(strstr(t, "le=\"1\"} 3\n"));
  assert_non_null(strstr(t, "le=\"2.5\"} 3\n"));
  assert_non_null(strstr(t,
                         "oee_h_seconds_bucket{task_type=\"echo\",le=\"300\"} 3\n"
                         "oee_h_seconds_bucket{task_type=\"echo\",le=\"+Inf\"} 6\n"
                         "oee_h_seconds_sum{task_type=\"echo\"} 1.500000001\n"
                         "oee_h_seconds_count{task_type=\"echo\"} 6\n"));
  int lines = 0;
  for (const char *p = t; *p; p++) lines += *p == '\n';
  assert_int_equal(lines, OEE_HISTOGRAM_BUCKETS + 2);
  oee_expo_free(&e);
}

/* An allocator that fails once `budget` allocations were made. */
static int budget;
static void *tight_malloc(size_t n) { return budget-- > 0 ? malloc(n) : NULL; }
static void *tight_calloc(size_t n, size_t s) { return budget-- > 0 ? calloc(n, s) : NULL; }
static void *tight_realloc(void *p, size_t n) { return budget-- > 0 ? realloc(p, n) : NULL; }

static void test_growth_and_out_of_memory(void **state) {
  (void)state;
  oee_expo e;
  oee_expo_init(&e);
  for (int i = 0; i < 20000; i++) oee_expo_u64(&e, "oee_many", NULL, 0, (uint64_t)i);
  size_t len;
  char *body = oee_expo_take(&e, &len);
  assert_non_null(body);
  assert_int_equal(len, strlen(body));
  assert_non_null(strstr(body, "oee_many 19999\n"));
  assert_true(len > 200000); /* far past the first allocation: nothing cut */
  oee_free(body);
  oee_allocator tight = {tight_malloc, tight_calloc, tight_realloc, free};
  oee_allocator_set(&tight);
  budget = 2; /* the first buffer and one growth */
  oee_expo_init(&e);
  for (int i = 0; i < 20000; i++) oee_expo_u64(&e, "oee_many", NULL, 0, (uint64_t)i);
  assert_true(e.failed);
  assert_null(oee_expo_take(&e, &len));
  assert_int_equal(len, 0);
  oee_allocator_set(NULL);
}

/* ----------------------------------------------------------- families */

/* The families API.md names, each announced exactly once with its type. */
static const char *const families[][2] = {
    {"oee_tasks_submitted_total", "counter"},
    {"oee_tasks_finished_total", "counter"},
    {"oee_task_retries_total", "counter"},
    {"oee_tasks", "gauge"},
    {"oee_task_queue_wait_seconds", "histogram"},
    {"oee_task_run_seconds", "histogram"},
    {"oee_rpc_requests_total", "counter"},
    {"oee_rpc_duration_seconds", "histogram"},
    {"oee_workers_busy", "gauge"},
    {"oee_remote_workers", "gauge"},
    {"oee_watchers", "gauge"},
    {"oee_store_commit_seconds", "histogram"},
    {"oee_store_bytes", "gauge"},
    {"process_resident_memory_bytes", "gauge"},
    {"process_cpu_seconds_total", "counter"},
    {"process_open_fds", "gauge"},
    {"process_start_time_seconds", "gauge"},
};

static int count_of(const char *hay, const char *needle) {
  int n = 0;
  for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle)) n++;
  return n;
}

static void assert_families(const char *t) {
  char line[256];
  for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
    snprintf(line, sizeof(line), "# TYPE %s %s\n", families[i][0], families[i][1]);
    assert_int_equal(count_of(t, line), 1);
    snprintf(line, sizeof(line), "# HELP %s ", families[i][0]);
    assert_int_equal(count_of(t, line), 1);
  }
  assert_int_equal(count_of(t, "# TYPE "), (int)(sizeof(families) / sizeof(families[0])));
}

static size_t three_watchers(void *ud) {
  (void)ud;
  return 3;
}

/* A server with the oee.v1 methods and one of another package, whose
 * calls the stats must leave out. */
static oee_rpc_server *method_server(size_t *submit_index, size_t *other_index) {
  oee_rpc_server *srv = oee_rpc_server_create("127.0.0.1:0", NULL, NULL);
  assert_non_null(srv);
  const oee_rpc_method *m = oee_v1_orchestrator_service_methods;
  assert_int_equal(oee_rpc_server_add_service(srv, m, OEE_V1_ORCHESTRATOR_SERVICE_N_METHODS, NULL),
                   0);
  oee_rpc_method other = m[0];
  other.path = "/grpc.health.v1.Health/Check";
  assert_int_equal(oee_rpc_server_add_service(srv, &other, 1, NULL), 0);
  *other_index = OEE_V1_ORCHESTRATOR_SERVICE_N_METHODS;
  *submit_index = SIZE_MAX;
  for (size_t i = 0; i < OEE_V1_ORCHESTRATOR_SERVICE_N_METHODS; i++) {
    if (strcmp(m[i].path, "/oee.v1.OrchestratorService/SubmitTask") == 0) *submit_index = i;
  }
  assert_true(*submit_index != SIZE_MAX);
  return srv;
}

static void submit_echoes(oee_engine *eng, int n) {
  oee_submit req = {.name = "e", .task_type = "echo"};
  for (int i = 0; i < n; i++) {
    const oee_task_info *t = NULL;
    assert_int_equal(oee_engine_submit(eng, &req, &t, NULL), 0);
    for (int tries = 0; tries < 2000; tries++) { /* up to 20 s */
      const oee_task_info *now = NULL;
      assert_int_equal(oee_engine_get(eng, t->id, &now), 0);
      int done = now->status == OEE_TASK_DONE;
      oee_task_info_unref(now);
      if (done) break;
      usleep(10000);
    }
    oee_task_info_unref(t);
  }
}

static void test_render_families(void **state) {
  (void)state;
  oee_engine *eng = NULL;
  assert_int_equal(oee_engine_create(NULL, &eng), 0);
  assert_int_equal(oee_engine_start(eng), 0);
  submit_echoes(eng, 2);
  size_t submit, other;
  oee_rpc_server *srv = method_server(&submit, &other);
  oee_rpc_stats *st = NULL;
  assert_int_equal(oee_rpc_stats_create(srv, OEE_METRICS_METHOD_PREFIX, &st), 0);
  oee_rpc_stats_observe(st, submit, GRPC_STATUS_OK, 2000000);           /* 2 ms */
  oee_rpc_stats_observe(st, submit, GRPC_STATUS_OK, 200000);            /* 0.2 ms */
  oee_rpc_stats_observe(st, submit, GRPC_STATUS_INVALID_ARGUMENT, 100); /* refused */
  oee_rpc_stats_observe(st, other, GRPC_STATUS_OK, 100);                /* not counted */
  oee_rpc_stats_observe(st, 9999, GRPC_STATUS_OK, 100);                 /* no such method */
  oee_metrics_source src = {.eng = eng, .rpc = st, .watchers = three_watchers};
  oee_expo e;
  oee_expo_init(&e);
  assert_int_equal(oee_metrics_render(&src, &e), 0);
  const char *t = text(&e);
  assert_families(t);
  assert_non_null(strstr(t, "\noee_tasks_submitted_total{task_type=\"echo\"} 2\n"));
  assert_non_null(strstr(t, "\noee_tasks_finished_total{task_type=\"echo\",status=\"done\"} 2\n"));
  assert_non_null(strstr(t, "\noee_task_run_seconds_count{task_type=\"echo\"} 2\n"));
  assert_non_null(strstr(t, "\noee_tasks{status=\"done\"} 2\n"));
  const char *statuses[] = {"queued", "scheduled", "running", "done", "error", "cancelled"};
  for (size_t i = 0; i < 6; i++) {
    char want[64];
    snprintf(want, sizeof(want), "\noee_tasks{status=\"%s\"} ", statuses[i]);
    assert_non_null(strstr(t, want));
  }
  assert_non_null(strstr(t, "\noee_watchers 3\n"));
  assert_non_null(strstr(t, "\noee_store_bytes 0\n"));
  assert_non_null(strstr(t, "\noee_rpc_requests_total{method=\"SubmitTask\",code=\"OK\"} 2\n"));
  assert_non_null(
      strstr(t, "\noee_rpc_requests_total{method=\"SubmitTask\",code=\"INVALID_ARGUMENT\"} 1\n"));
  assert_non_null(
      strstr(t, "\noee_rpc_duration_seconds_bucket{method=\"SubmitTask\",le=\"0.0005\"} 2\n"));
  assert_non_null(strstr(t, "\noee_rpc_duration_seconds_count{method=\"SubmitTask\"} 3\n"));
  assert_null(strstr(t, "method=\"Check\""));
  assert_null(strstr(t, "code=\"NOT_FOUND\"")); /* codes never seen have no series */
  oee_expo_free(&e);
  oee_rpc_stats_destroy(st);
  oee_rpc_server_destroy(srv);
  oee_engine_destroy(eng);
}

static void test_process_stats(void **state) {
  (void)state;
  oee_process_stats p;
  assert_int_equal(oee_process_stats_read(&p), 0);
  assert_true(p.resident_bytes > 1000000);
  assert_true(p.open_fds >= 3);
  int fd = dup(0);
  oee_process_stats q;
  assert_int_equal(oee_process_stats_read(&q), 0);
  assert_int_equal(q.open_fds, p.open_fds + 1);
  close(fd);
  assert_true(p.start_time_seconds > 1e9 && p.start_time_seconds <= (double)time(NULL) + 1);
}

/* --------------------------------------------------------------- http */

static int serving_flag;
static int serving(void *ud) {
  (void)ud;
  return serving_flag;
}

/* Sends `request` to 127.0.0.1:port and reads the answer until the server
 * closes (every request here says Connection: close). */
static void http(int port, const char *request, char *out, size_t cap) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  assert_int_equal(write(fd, request, strlen(request)), (ssize_t)strlen(request));
  size_t n = 0;
  ssize_t r;
  while (n + 1 < cap && (r = read(fd, out + n, cap - 1 - n)) > 0) n += (size_t)r;
  out[n] = '\0';
  close(fd);
}

static int open_fds(void) {
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  for (struct dirent *de; d && (de = readdir(d)) != NULL;) n += de->d_name[0] != '.';
  if (d) closedir(d);
  return n;
}

static void test_http_endpoint(void **state) {
  (void)state;
  oee_engine *eng = NULL;
  assert_int_equal(oee_engine_create(NULL, &eng), 0);
  int fds = open_fds();
  serving_flag = 1;
  oee_metrics_source src = {.eng = eng, .serving = serving};
  oee_metrics_http *h = NULL;
  int port = 0;
  char why[256] = "", out[1 << 17];
  assert_int_equal(oee_metrics_http_start("127.0.0.1:0", &src, &h, &port, why, sizeof(why)), 0);
  assert_true(port > 0);
  http(port, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", out, sizeof(out));
  assert_true(strncmp(out, "HTTP/1.1 200", 12) == 0);
  assert_non_null(strstr(out, "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
  assert_non_null(strstr(out, "# TYPE oee_tasks gauge\n"));
  http(port, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", out, sizeof(out));
  assert_true(strncmp(out, "HTTP/1.1 200", 12) == 0 && strstr(out, "\r\n\r\nok\n"));
  serving_flag = 0;
  http(port, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", out, sizeof(out));
  assert_true(strncmp(out, "HTTP/1.1 503", 12) == 0);
  http(port, "GET /metricsx HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", out, sizeof(out));
  assert_true(strncmp(out, "HTTP/1.1 404", 12) == 0);
  http(port,
       "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
       out, sizeof(out));
  assert_true(strncmp(out, "HTTP/1.1 405", 12) == 0);
  assert_non_null(strstr(out, "Allow: GET\r\n"));
  oee_metrics_http_stop(h);
  assert_int_equal(open_fds(), fds); /* the listening socket is closed too */
  oee_engine_destroy(eng);
}

static void test_http_bind_failures(void **state) {
  (void)state;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  assert_int_equal(listen(fd, 1), 0);
  socklen_t len = sizeof(a);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  char addr[64], why[256] = "";
  snprintf(addr, sizeof(addr), "127.0.0.1:%d", ntohs(a.sin_port));
  oee_metrics_source src = {0};
  oee_metrics_http *h = NULL;
  int port = 0;
  assert_int_equal(oee_metrics_http_start(addr, &src, &h, &port, why, sizeof(why)), -1);
  assert_null(h);
  assert_non_null(strstr(why, addr));
  assert_non_null(strstr(why, "in use"));
  close(fd);
  const char *bad[] = {"no-port", "127.0.0.1:", "127.0.0.1:http", "127.0.0.1:70000"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    assert_int_equal(oee_metrics_http_start(bad[i], &src, &h, &port, why, sizeof(why)), -1);
    assert_non_null(strstr(why, bad[i]));
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_family_lines),         cmocka_unit_test(test_label_escaping),
      cmocka_unit_test(test_histogram_cumulative), cmocka_unit_test(test_growth_and_out_of_memory),
      cmocka_unit_test(test_render_families),      cmocka_unit_test(test_process_stats),
      cmocka_unit_test(test_http_endpoint),        cmocka_unit_test(test_http_bind_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
