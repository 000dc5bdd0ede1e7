/*
 * test_watch.c - WatchTasks against the real server: per-task event order,
 * the server-wide sequence, filters, snapshots, client cancellation, several
 * watchers, overflow of a slow watcher, and SIGTERM with a watcher connected.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "grpc/health/v1/health.grpc-client.h"
#include "tests/integration/fixture.h"

#define ST(x) OEE__V1__TASK_STATUS__TASK_STATUS_##x
#define KV(...) ((const char *const[]){__VA_ARGS__, NULL})
#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

static it_server srv;

static void start(const char *const *args) {
  assert_int_equal(it_server_start(&srv, "watch.json", args, NULL, 30000), 0);
}

static int teardown(void **state) { return it_server_teardown(&srv); }

/* Events a watcher has seen, in arrival order. */
typedef struct evlog {
  int n;
  struct {
    char id[40];
    int status;
    uint64_t seq;
  } e[8192];
} evlog;

static evlog *evlog_new(void) { return calloc(1, sizeof(evlog)); }

static void evlog_add(evlog *log, const Oee__V1__TaskEvent *ev) {
  assert_non_null(ev->task);
  assert_non_null(ev->time);
  assert_true(log->n < 8192);
  snprintf(log->e[log->n].id, sizeof(log->e[0].id), "%s", ev->task->id);
  log->e[log->n].status = ev->task->status;
  log->e[log->n].seq = ev->sequence;
  log->n++;
}

static uint64_t seq_of(const evlog *log, const char *id, int status);

/* Reads events into log until one for (id, status) is in it. */
static void read_until(it_watch *w, evlog *log, const char *id, int status) {
  if (seq_of(log, id, status) != 0) return;
  for (;;) {
    Oee__V1__TaskEvent *ev = NULL;
    oee_rpc_status st = {0};
    int rc = it_watch_next(w, &ev, &st, IT_WAIT_MS);
    if (rc != 1) {
      fprintf(stderr, "read %d (status %d: %s) waiting for %s/%d\n", rc, st.code,
              st.message ? st.message : "", id, status);
      for (int i = 0; i < log->n; i++) {
        fprintf(stderr, "  seen #%llu %s %d\n", (unsigned long long)log->e[i].seq, log->e[i].id,
                log->e[i].status);
      }
      oee_rpc_status_free(&st);
    }
    assert_int_equal(rc, 1);
    evlog_add(log, ev);
    int hit = strcmp(ev->task->id, id) == 0 && (int)ev->task->status == status;
    oee__v1__task_event__free_unpacked(ev, NULL);
    if (hit) return;
  }
}

/* The statuses log holds for id, in order, terminated by 0. */
static void expect_statuses(const evlog *log, const char *id, const int *want) {
  int k = 0;
  for (int i = 0; i < log->n; i++) {
    if (strcmp(log->e[i].id, id) != 0) continue;
    if (want[k] == 0) fail_msg("extra event %d for %s", log->e[i].status, id);
    assert_int_equal(log->e[i].status, want[k]);
    k++;
  }
  if (want[k] != 0) fail_msg("missing event %d for %s", want[k], id);
}

static void expect_increasing(const evlog *log) {
  for (int i = 1; i < log->n; i++) assert_true(log->e[i].seq > log->e[i - 1].seq);
}

static uint64_t seq_of(const evlog *log, const char *id, int status) {
  for (int i = 0; i < log->n; i++) {
    if (strcmp(log->e[i].id, id) == 0 && log->e[i].status == status) return log->e[i].seq;
  }
  return 0;
}

/* Asserts that no event arrives within ms; this ends the stream. */
static void expect_quiet(it_watch *w, int ms) {
  Oee__V1__TaskEvent *ev = NULL;
  int rc = it_watch_next(w, &ev, NULL, ms);
  if (rc == 1) {
    fprintf(stderr, "unexpected event %s/%d\n", ev->task->id, ev->task->status);
    oee__v1__task_event__free_unpacked(ev, NULL);
  }
  assert_int_equal(rc, -2);
}

static it_watch *open_all(int snapshot) {
  Oee__V1__WatchTasksRequest req = OEE__V1__WATCH_TASKS_REQUEST__INIT;
  req.include_snapshot = snapshot;
  it_watch *w = it_watch_open(srv.ch, &req);
  assert_non_null(w);
  assert_int_equal(it_watch_sync(w, srv.ch, "echo", IT_WAIT_MS), 0);
  return w;
}

static void cancel_ok(const char *id) {
  int cancelled = 0;
  assert_int_equal(it_cancel(srv.ch, id, &cancelled), 0);
  assert_true(cancelled);
}

static void wait_running(const char *id) {
  Oee__V1__Task *t = it_wait_status(srv.ch, id, ST(RUNNING), IT_WAIT_MS);
  assert_non_null(t);
  oee__v1__task__free_unpacked(t, NULL);
}

/* ----------------------------------------------------------------- tests */

static void test_event_order(void **state) {
  start(NULL); /* two workers */
  it_watch *w = open_all(0);
  evlog *log = evlog_new();
  char *s1 = it_submit_ok(srv.ch, "s1", "sleep", -1, KV("seconds", "30"));
  char *s2 = it_submit_ok(srv.ch, "s2", "sleep", -1, KV("seconds", "30"));
  read_until(w, log, s1, ST(RUNNING));
  read_until(w, log, s2, ST(RUNNING));
  char *q = it_submit_ok(srv.ch, "q", "echo", -1, NULL);
  read_until(w, log, q, ST(QUEUED));
  cancel_ok(q);
  read_until(w, log, q, ST(CANCELLED));
  cancel_ok(s1);
  cancel_ok(s2);
  char *e = it_submit_ok(srv.ch, "e", "echo", -1, KV("message", "m"));
  char *f = it_submit_ok(srv.ch, "f", "fail", -1, KV("message", "m"));
  read_until(w, log, e, ST(DONE));
  read_until(w, log, f, ST(ERROR));
  read_until(w, log, s1, ST(CANCELLED));
  read_until(w, log, s2, ST(CANCELLED));
  it_watch_close(w);
  expect_increasing(log);
  expect_statuses(log, s1, (int[]){ST(QUEUED), ST(RUNNING), ST(CANCELLED), 0});
  expect_statuses(log, s2, (int[]){ST(QUEUED), ST(RUNNING), ST(CANCELLED), 0});
  expect_statuses(log, q, (int[]){ST(QUEUED), ST(CANCELLED), 0});
  expect_statuses(log, e, (int[]){ST(QUEUED), ST(RUNNING), ST(DONE), 0});
  expect_statuses(log, f, (int[]){ST(QUEUED), ST(RUNNING), ST(ERROR), 0});
  assert_int_equal(log->n, 14);
  free(log);
  free(s1);
  free(s2);
  free(q);
  free(e);
  free(f);
}

static void test_filters(void **state) {
  start(NULL);
  it_watch *by_id, *by_type, *by_status, *by_both;
  Oee__V1__WatchTasksRequest r2 = OEE__V1__WATCH_TASKS_REQUEST__INIT;
  char *types[1] = {(char *)"fail"};
  r2.n_task_types = 1;
  r2.task_types = types;
  by_type = it_watch_open(srv.ch, &r2);
  assert_non_null(by_type);
  assert_int_equal(it_watch_sync(by_type, srv.ch, "fail", IT_WAIT_MS), 0);
  Oee__V1__WatchTasksRequest r3 = OEE__V1__WATCH_TASKS_REQUEST__INIT;
  Oee__V1__TaskStatus err[1] = {ST(ERROR)};
  r3.n_statuses = 1;
  r3.statuses = err;
  by_status = it_watch_open(srv.ch, &r3);
  assert_non_null(by_status);
  assert_int_equal(it_watch_sync(by_status, srv.ch, "fail", IT_WAIT_MS), 0);
  Oee__V1__WatchTasksRequest r4 = OEE__V1__WATCH_TASKS_REQUEST__INIT;
  Oee__V1__TaskStatus done[2] = {ST(DONE), ST(CANCELLED)};
  char *echo[1] = {(char *)"echo"};
  r4.n_statuses = 2;
  r4.statuses = done;
  r4.n_task_types = 1;
  r4.task_types = echo;
  by_both = it_watch_open(srv.ch, &r4);
  assert_non_null(by_both);
  assert_int_equal(it_watch_sync(by_both, srv.ch, "echo", IT_WAIT_MS), 0);

  char *b1 = it_submit_ok(srv.ch, "b1", "sleep", -1, KV("seconds", "30"));
  char *b2 = it_submit_ok(srv.ch, "b2", "sleep", -1, KV("seconds", "30"));
  wait_running(b1);
  wait_running(b2);
  char *ta = it_submit_ok(srv.ch, "ta", "echo", -1, NULL);
  char *tb = it_submit_ok(srv.ch, "tb", "echo", -1, NULL);
  Oee__V1__WatchTasksRequest r1 = OEE__V1__WATCH_TASKS_REQUEST__INIT;
  char *ids[1] = {ta};
  r1.n_task_ids = 1;
  r1.task_ids = ids;
  by_id = it_watch_open(srv.ch, &r1);
  assert_non_null(by_id);
  /* No probe can pass this watcher's filter: a later one tells instead. */
  assert_int_equal(it_watch_registered(srv.ch, IT_WAIT_MS), 0);

  char *f1 = it_submit_ok(srv.ch, "f1", "fail", -1, KV("message", "x"));
  cancel_ok(b1);
  cancel_ok(b2);
  Oee__V1__Task *t = it_wait_final(srv.ch, f1, IT_WAIT_MS);
  oee__v1__task__free_unpacked(t, NULL);
  char *f2 = it_submit_ok(srv.ch, "f2", "fail", -1, KV("message", "sentinel"));
  char *e2 = it_submit_ok(srv.ch, "e2", "echo", -1, NULL);

  evlog *l1 = evlog_new(), *l2 = evlog_new(), *l3 = evlog_new(), *l4 = evlog_new();
  read_until(by_id, l1, ta, ST(DONE));
  expect_statuses(l1, ta, (int[]){ST(RUNNING), ST(DONE), 0}); /* no replay of QUEUED */
  assert_int_equal(l1->n, 2);
  read_until(by_type, l2, f2, ST(ERROR));
  expect_statuses(l2, f1, (int[]){ST(QUEUED), ST(RUNNING), ST(ERROR), 0});
  expect_statuses(l2, f2, (int[]){ST(QUEUED), ST(RUNNING), ST(ERROR), 0});
  assert_int_equal(l2->n, 6);
  read_until(by_status, l3, f2, ST(ERROR));
  expect_statuses(l3, f1, (int[]){ST(ERROR), 0});
  assert_int_equal(l3->n, 2);
  read_until(by_both, l4, e2, ST(DONE));
  expect_statuses(l4, ta, (int[]){ST(DONE), 0});
  expect_statuses(l4, tb, (int[]){ST(DONE), 0});
  expect_statuses(l4, b1, (int[]){0}); /* a sleep: wrong type */
  assert_int_equal(l4->n, 3);
  expect_quiet(by_id, 300);
  it_watch_close(by_id);
  it_watch_close(by_type);
  it_watch_close(by_status);
  it_watch_close(by_both);
  free(l1);
  free(l2);
  free(l3);
  free(l4);
  free(b1);
  free(b2);
  free(ta);
  free(tb);
  free(f1);
  free(f2);
  free(e2);
}

static void test_snapshot(void **state) {
  start(NULL);
  it_watch *all = open_all(0);
  evlog *log = evlog_new();
  char *d = it_submit_ok(srv.ch, "d", "echo", -1, NULL);
  read_until(all, log, d, ST(DONE));
  char *s1 = it_submit_ok(srv.ch, "s1", "sleep", -1, KV("seconds", "30"));
  char *s2 = it_submit_ok(srv.ch, "s2", "sleep", -1, KV("seconds", "30"));
  read_until(all, log, s1, ST(RUNNING));
  read_until(all, log, s2, ST(RUNNING));
  char *q = it_submit_ok(srv.ch, "q", "echo", -1, NULL);
  read_until(all, log, q, ST(QUEUED));

  it_watch *snap = open_all(1);
  struct {
    const char *id;
    int status;
  } want[4] = {{d, ST(DONE)}, {s1, ST(RUNNING)}, {s2, ST(RUNNING)}, {q, ST(QUEUED)}};
  int found[4] = {0};
  uint64_t max_seq = 0;
  for (int i = 0; i < 4; i++) {
    Oee__V1__TaskEvent *ev = NULL;
    assert_int_equal(it_watch_next(snap, &ev, NULL, IT_WAIT_MS), 1);
    int k = -1;
    for (int j = 0; j < 4; j++)
      if (strcmp(ev->task->id, want[j].id) == 0) k = j;
    assert_true(k >= 0);
    assert_false(found[k]);
    found[k] = 1;
    assert_int_equal(ev->task->status, want[k].status);
    /* The sequence of the task's latest change, as live watchers saw it. */
    assert_int_equal(ev->sequence, seq_of(log, want[k].id, want[k].status));
    if (ev->sequence > max_seq) max_seq = ev->sequence;
    oee__v1__task_event__free_unpacked(ev, NULL);
  }
  /* Then live events, numbered after everything already seen. */
  cancel_ok(s1);
  evlog *live = evlog_new();
  read_until(snap, live, s1, ST(CANCELLED));
  for (int i = 0; i < live->n; i++) assert_true(live->e[i].seq > max_seq);
  read_until(all, log, s1, ST(CANCELLED));
  assert_int_equal(seq_of(live, s1, ST(CANCELLED)), seq_of(log, s1, ST(CANCELLED)));
  free(live);
  it_watch_close(snap);
  Oee__V1__TaskEvent *ev = NULL;
  /* s1's worker takes q next: let it end, so no live RUNNING event of q
   * can reach the filtered watcher below. */
  read_until(all, log, q, ST(DONE));

  /* A snapshot honours the filters. */
  Oee__V1__WatchTasksRequest fr = OEE__V1__WATCH_TASKS_REQUEST__INIT;
  Oee__V1__TaskStatus st[1] = {ST(RUNNING)};
  fr.include_snapshot = 1;
  fr.n_statuses = 1;
  fr.statuses = st;
  snap = it_watch_open(srv.ch, &fr);
  assert_non_null(snap);
  assert_int_equal(it_watch_sync(snap, srv.ch, "echo", IT_WAIT_MS), 0);
  assert_int_equal(it_watch_next(snap, &ev, NULL, IT_WAIT_MS), 1);
  assert_string_equal(ev->task->id, s2);
  assert_int_equal(ev->task->status, ST(RUNNING));
  oee__v1__task_event__free_unpacked(ev, NULL);
  expect_quiet(snap, 300);
  it_watch_close(snap);
  cancel_ok(s2);
  it_watch_close(all);
  free(log);
  free(d);
  free(s1);
  free(s2);
  free(q);
}

static void test_client_cancels_stream(void **state) {
  start(NULL);
  it_watch *a = open_all(0);
  char *x = it_submit_ok(srv.ch, "x", "echo", -1, NULL);
  Oee__V1__TaskEvent *ev = NULL;
  assert_int_equal(it_watch_next(a, &ev, NULL, IT_WAIT_MS), 1);
  oee__v1__task_event__free_unpacked(ev, NULL);
  it_watch_cancel(a);
  oee_rpc_status st = {0};
  /* Possibly buffered events first, then the end. */
  int rc;
  int guard = 0;
  while ((rc = it_watch_next(a, &ev, &st, IT_WAIT_MS)) == 1 && guard++ < 10) {
    oee__v1__task_event__free_unpacked(ev, NULL);
  }
  assert_int_equal(rc, 0);
  assert_int_equal(st.code, GRPC_STATUS_CANCELLED);
  oee_rpc_status_free(&st);
  it_watch_close(a);
  /* Also a watcher closed without reading anything. */
  a = open_all(0);
  it_watch_close(a);

  /* The server keeps serving, and a new watcher works. */
  it_watch *b = open_all(0);
  char *y = it_submit_ok(srv.ch, "y", "echo", -1, KV("message", "still"));
  evlog *log = evlog_new();
  read_until(b, log, y, ST(DONE));
  expect_statuses(log, y, (int[]){ST(QUEUED), ST(RUNNING), ST(DONE), 0});
  it_watch_close(b);
  Oee__V1__Task *t = it_wait_status(srv.ch, y, ST(DONE), IT_WAIT_MS);
  assert_string_equal(t->result, "still");
  oee__v1__task__free_unpacked(t, NULL);
  free(log);
  free(x);
  free(y);
}

static void test_many_watchers_same_sequence(void **state) {
  /* Room for every event: this test is about the order, and the watchers
   * are read one after the other while the tasks run. With several io
   * threads the submissions are not paced by the thread that writes the
   * streams (it hears of new events from its tick, every 1 ms), so watch.json's
   * 8 events of buffer can overflow; test_slow_watcher_overflow covers that. */
  assert_int_equal(it_server_start(&srv, "watch_roomy.json", NULL, NULL, 30000), 0);
  enum { W = 4, T = 10 };
  it_watch *w[W];
  for (int i = 0; i < W; i++) w[i] = open_all(0);
  char *ids[T];
  for (int i = 0; i < T; i++) ids[i] = it_submit_ok(srv.ch, "t", i % 3 ? "echo" : "fail", -1, NULL);
  evlog *log[W];
  for (int i = 0; i < W; i++) {
    log[i] = evlog_new();
    for (int k = 0; k < T; k++) {
      read_until(w[i], log[i], ids[k], k % 3 ? ST(DONE) : ST(ERROR));
    }
  }
  for (int i = 0; i < W; i++) {
    expect_increasing(log[i]);
    assert_int_equal(log[i]->n, 3 * T);
    for (int k = 0; k < T; k++) {
      for (int s = ST(QUEUED); s <= ST(ERROR); s++) {
        assert_int_equal(seq_of(log[i], ids[k], s), seq_of(log[0], ids[k], s));
      }
    }
    it_watch_close(w[i]);
  }
  for (int i = 0; i < W; i++) free(log[i]);
  for (int k = 0; k < T; k++) free(ids[k]);
}

/* watch.json sets watch_buffer 8: a watcher that never reads while tens of
 * thousands of events flow must be ended with RESOURCE_EXHAUSTED; gRPC's flow
 * control buffers some megabytes in the transport first, hence the flood. */
static void test_slow_watcher_overflow(void **state) {
  /* 30,000 tasks: the test is about the watcher, not the disk, and the
   * durable store's three writes per task took this flood past the 60 s
   * bound below under ThreadSanitizer (28,168 done in 60 s), so it runs on
   * the memory store in both targets; the sqlite store's events are covered
   * by the other tests here. */
  start(ARGS("--store", "memory"));
  /* A raw reader that nobody reads until the flood is over. */
  Oee__V1__WatchTasksRequest wreq = OEE__V1__WATCH_TASKS_REQUEST__INIT;
  oee_rpc_reader *slow = NULL;
  assert_int_equal(oee_v1_orchestrator_service_watch_tasks_start(srv.ch, &wreq, 120000, &slow), 0);
  assert_int_equal(it_watch_registered(srv.ch, IT_WAIT_MS), 0);
  /* The registration probes: echo tasks that end DONE, maybe not yet. */
  const int probes_done =
      it_count(srv.ch, "queued") + it_count(srv.ch, "running") + it_count(srv.ch, "done");
  enum { BATCH = 5000, BATCHES = 6 };
  Oee__V1__SubmitTaskRequest *reqs = calloc(BATCH, sizeof(*reqs));
  Oee__V1__SubmitTaskRequest **ptrs = calloc(BATCH, sizeof(*ptrs));
  Oee__V1__SubmitTaskRequest__ContextEntry ent = OEE__V1__SUBMIT_TASK_REQUEST__CONTEXT_ENTRY__INIT;
  Oee__V1__SubmitTaskRequest__ContextEntry *ents[1] = {&ent};
  ent.key = (char *)"message";
  ent.value = (char *)"a message long enough to make every event take some room in the transport";
  for (int i = 0; i < BATCH; i++) {
    oee__v1__submit_task_request__init(&reqs[i]);
    reqs[i].name = (char *)"flood";
    reqs[i].task_type = (char *)"echo";
    reqs[i].n_context = 1;
    reqs[i].context = ents;
    ptrs[i] = &reqs[i];
  }
  Oee__V1__SubmitTasksRequest req = OEE__V1__SUBMIT_TASKS_REQUEST__INIT;
  req.n_requests = BATCH;
  req.requests = ptrs;
  for (int b = 0; b < BATCHES; b++) {
    Oee__V1__SubmitTasksResponse *resp = NULL;
    assert_int_equal(oee_v1_orchestrator_service_submit_tasks(srv.ch, &req, &resp, 60000, NULL), 0);
    oee__v1__submit_tasks_response__free_unpacked(resp, NULL);
  }
  free(reqs);
  free(ptrs);
  /* Wait for the flood to be processed (bounded), without reading `slow`. */
  int64_t end = it_now_ms() + 60000;
  const int want = probes_done + BATCH * BATCHES;
  while (it_count(srv.ch, "done") < want && it_now_ms() < end) it_sleep_ms(50);
  assert_int_equal(it_count(srv.ch, "done"), want);

  /* Drain what the transport holds; the stream must end RESOURCE_EXHAUSTED. */
  long got = 0;
  oee_rpc_status st = {0};
  Oee__V1__TaskEvent *ev = NULL;
  int rc;
  while ((rc = oee_v1_orchestrator_service_watch_tasks_next(slow, &ev, &st)) == 1) {
    got++;
    oee__v1__task_event__free_unpacked(ev, NULL);
    assert_true(got <= 3L * BATCH * BATCHES);
  }
  fprintf(stderr, "slow watcher got %ld of %d events, then status %d (%s)\n", got,
          3 * BATCH * BATCHES, st.code, st.message ? st.message : "");
  oee_v1_orchestrator_service_watch_tasks_close(slow);
  assert_int_equal(rc, 0);
  assert_int_equal(st.code, GRPC_STATUS_RESOURCE_EXHAUSTED);
  assert_true(got < 3L * BATCH * BATCHES);
  oee_rpc_status_free(&st);

  /* The server still serves, and a new watcher works. */
  it_watch *w = open_all(0);
  char *id = it_submit_ok(srv.ch, "after", "echo", -1, NULL);
  evlog *log = evlog_new();
  read_until(w, log, id, ST(DONE));
  it_watch_close(w);
  free(log);
  free(id);
}

static int health(const char *service) {
  Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  req.service = (char *)service;
  Grpc__Health__V1__HealthCheckResponse *resp = NULL;
  int code = grpc_health_v1_health_check(srv.ch, &req, &resp, IT_CALL_MS, NULL);
  int s = code == 0 ? (int)resp->status : -code;
  if (resp) grpc__health__v1__health_check_response__free_unpacked(resp, NULL);
  return s;
}

static int system_running(void) {
  Oee__V1__GetSystemStatusRequest req = OEE__V1__GET_SYSTEM_STATUS_REQUEST__INIT;
  Oee__V1__SystemStatus *st = NULL;
  int code = oee_v1_orchestrator_service_get_system_status(srv.ch, &req, &st, IT_CALL_MS, NULL);
  if (code != 0) return -1;
  int r = st->running;
  oee__v1__system_status__free_unpacked(st, NULL);
  return r;
}

/* SIGTERM with a watcher and a running task: the task finishes, its final
 * event reaches the watcher, the stream ends UNAVAILABLE, the server exits 0;
 * a submit during the drain gets UNAVAILABLE. */
static void test_sigterm_drain(void **state) {
  start(NULL);
  assert_int_equal(health(""), GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
  assert_int_equal(health("oee.v1.OrchestratorService"),
                   GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
  it_watch *w = open_all(0);
  evlog *log = evlog_new();
  char *s = it_submit_ok(srv.ch, "s", "sleep", -1, KV("seconds", "4"));
  read_until(w, log, s, ST(RUNNING));
  assert_int_equal(kill(srv.pid, SIGTERM), 0);
  int64_t end = it_now_ms() + 3000;
  while (system_running() != 0 && it_now_ms() < end) it_sleep_ms(5);
  assert_int_equal(system_running(), 0);
  /* The sleep is still running: the server is draining. */
  Oee__V1__Task *t = it_get(srv.ch, s, NULL);
  assert_non_null(t);
  assert_int_equal(t->status, ST(RUNNING));
  oee__v1__task__free_unpacked(t, NULL);
  assert_int_equal(it_submit(srv.ch, "late", "echo", -1, NULL, NULL), GRPC_STATUS_UNAVAILABLE);
  assert_int_equal(health(""),
                   GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING);

  read_until(w, log, s, ST(DONE));
  oee_rpc_status st = {0};
  Oee__V1__TaskEvent *ev = NULL;
  int rc = it_watch_next(w, &ev, &st, IT_WAIT_MS);
  if (rc == 1) oee__v1__task_event__free_unpacked(ev, NULL);
  assert_int_equal(rc, 0);
  assert_int_equal(st.code, GRPC_STATUS_UNAVAILABLE);
  oee_rpc_status_free(&st);
  it_watch_close(w);
  assert_int_equal(it_server_wait(&srv, 20000), 0);
  free(log);
  free(s);
}

/* A task that outlives --drain-timeout is cancelled; the watcher still gets
 * its final event before UNAVAILABLE. */
static void test_sigterm_drain_timeout(void **state) {
  start(ARGS("--drain-timeout", "0.5"));
  it_watch *w = open_all(0);
  evlog *log = evlog_new();
  char *s = it_submit_ok(srv.ch, "s", "sleep", -1, KV("seconds", "60"));
  read_until(w, log, s, ST(RUNNING));
  int64_t t0 = it_now_ms();
  assert_int_equal(kill(srv.pid, SIGTERM), 0);
  read_until(w, log, s, ST(CANCELLED));
  oee_rpc_status st = {0};
  Oee__V1__TaskEvent *ev = NULL;
  int rc = it_watch_next(w, &ev, &st, IT_WAIT_MS);
  if (rc == 1) oee__v1__task_event__free_unpacked(ev, NULL);
  assert_int_equal(rc, 0);
  assert_int_equal(st.code, GRPC_STATUS_UNAVAILABLE);
  oee_rpc_status_free(&st);
  it_watch_close(w);
  assert_int_equal(it_server_wait(&srv, 20000), 0);
  assert_true(it_now_ms() - t0 < 15000);
  free(log);
  free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_event_order, teardown),
      cmocka_unit_test_teardown(test_filters, teardown),
      cmocka_unit_test_teardown(test_snapshot, teardown),
      cmocka_unit_test_teardown(test_client_cancels_stream, teardown),
      cmocka_unit_test_teardown(test_many_watchers_same_sequence, teardown),
      cmocka_unit_test_teardown(test_slow_watcher_overflow, teardown),
      cmocka_unit_test_teardown(test_sigterm_drain, teardown),
      cmocka_unit_test_teardown(test_sigterm_drain_timeout, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
