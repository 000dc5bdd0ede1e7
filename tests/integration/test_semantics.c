/*
 * test_semantics.c - task semantics end to end against the real server:
 * a retried task's events and backoff, a permanent failure, timeouts,
 * run_at, error_message and run_at while a task waits or runs again, a
 * 10,000-task dependency graph with failures in the middle, idempotency
 * keys across a restart (sqlite), and quotas (API.md, "Task semantics" and
 * the part 2 rules). Times are compared on the server's own timestamps.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "tests/integration/fixture.h"

#define ST(x) OEE__V1__TASK_STATUS__TASK_STATUS_##x
/* Clock granularity allowed below a lower bound, and lateness allowed
 * above an upper bound (a loaded machine), in seconds. */
#define EARLY_S 0.02
#define LATE_S 0.15
/* Events of one task a test keeps, at most. */
#define MAX_EVENTS 32

static it_server srv;

static void start(void) {
  assert_int_equal(it_server_start(&srv, "tasks.json", NULL, NULL, 30000), 0);
}

static int teardown(void **state) { return it_server_teardown(&srv); }

static int64_t ns_of(const Google__Protobuf__Timestamp *ts) {
  return ts ? ts->seconds * INT64_C(1000000000) + ts->nanos : 0;
}

static void expect_within(const char *what, double v, double lo, double hi) {
  if (v < lo || v > hi) fail_msg("%s: %.3f s, want %.3f..%.3f s", what, v, lo, hi);
}

/* --------------------------------------------------------- requests */

/* A SubmitTaskRequest with room for two context entries, which point into
 * the struct itself (so it must not move once filled). */
typedef struct task_req {
  Oee__V1__SubmitTaskRequest r;
  Oee__V1__SubmitTaskRequest__ContextEntry ctx[2];
  Oee__V1__SubmitTaskRequest__ContextEntry *ctxp[2];
} task_req;

static void req_init(task_req *q, const char *name, const char *type) {
  oee__v1__submit_task_request__init(&q->r);
  q->r.name = (char *)name;
  q->r.task_type = (char *)type;
  q->r.context = q->ctxp;
}

static void req_ctx(task_req *q, const char *key, const char *value) {
  size_t i = q->r.n_context++;
  assert_true(i < 2);
  oee__v1__submit_task_request__context_entry__init(&q->ctx[i]);
  q->ctx[i].key = (char *)key;
  q->ctx[i].value = (char *)value;
  q->ctxp[i] = &q->ctx[i];
}

static void req_retry(task_req *q, int attempts, double backoff, double max_backoff) {
  q->r.max_attempts_present_case = OEE__V1__SUBMIT_TASK_REQUEST__MAX_ATTEMPTS_PRESENT_MAX_ATTEMPTS;
  q->r.max_attempts = attempts;
  q->r.backoff_seconds_present_case =
      OEE__V1__SUBMIT_TASK_REQUEST__BACKOFF_SECONDS_PRESENT_BACKOFF_SECONDS;
  q->r.backoff_seconds = backoff;
  q->r.max_backoff_seconds_present_case =
      OEE__V1__SUBMIT_TASK_REQUEST__MAX_BACKOFF_SECONDS_PRESENT_MAX_BACKOFF_SECONDS;
  q->r.max_backoff_seconds = max_backoff;
}

/* SubmitTask, asserted OK; the reply belongs to the caller. */
static Oee__V1__SubmitTaskResponse *submit(task_req *q) {
  Oee__V1__SubmitTaskResponse *resp = NULL;
  assert_int_equal(oee_v1_orchestrator_service_submit_task(srv.ch, &q->r, &resp, IT_CALL_MS, NULL),
                   0);
  return resp;
}

/* Submits and returns the malloc'd id. */
static char *submit_id(task_req *q) {
  Oee__V1__SubmitTaskResponse *resp = submit(q);
  char *id = strdup(resp->task_id);
  oee__v1__submit_task_response__free_unpacked(resp, NULL);
  return id;
}

/* ----------------------------------------------------------- events */

/* A watch of every task, live once it returns. */
static it_watch *watch_all(void) {
  Oee__V1__WatchTasksRequest req = OEE__V1__WATCH_TASKS_REQUEST__INIT;
  it_watch *w = it_watch_open(srv.ch, &req);
  assert_non_null(w);
  assert_int_equal(it_watch_sync(w, srv.ch, "echo", IT_WAIT_MS), 0);
  return w;
}

/* Reads w until task id shows status `last`; keeps that task's events in
 * ev (the caller frees them with free_events) and returns their number. */
static int events_until(it_watch *w, const char *id, int last, Oee__V1__TaskEvent **ev) {
  int n = 0;
  for (;;) {
    Oee__V1__TaskEvent *e = NULL;
    int rc = it_watch_next(w, &e, NULL, IT_WAIT_MS);
    if (rc != 1) fail_msg("watch read %d after %d events of %s", rc, n, id);
    if (strcmp(e->task->id, id) != 0) {
      oee__v1__task_event__free_unpacked(e, NULL);
      continue;
    }
    if (n == MAX_EVENTS) fail_msg("more than %d events of %s", MAX_EVENTS, id);
    ev[n++] = e;
    if ((int)e->task->status == last) return n;
  }
}

static void free_events(Oee__V1__TaskEvent **ev, int n) {
  for (int i = 0; i < n; i++) oee__v1__task_event__free_unpacked(ev[i], NULL);
}

/* The statuses of ev are exactly want[0..nwant), their sequence increasing. */
static void expect_statuses(Oee__V1__TaskEvent **ev, int n, const int *want, int nwant) {
  for (int i = 0; i < n && i < nwant; i++) {
    if ((int)ev[i]->task->status != want[i]) {
      fail_msg("event %d: status %d, want %d", i, ev[i]->task->status, want[i]);
    }
    if (i > 0) assert_true(ev[i]->sequence > ev[i - 1]->sequence);
  }
  assert_int_equal(n, nwant);
}

/* ------------------------------------------------------------ tests */

/* fail with max_attempts 3, backoff 0.2 s capped at 0.3 s: QUEUED,
 * RUNNING(1), SCHEDULED, QUEUED, RUNNING(2), SCHEDULED, QUEUED, RUNNING(3),
 * ERROR; retry n starts min(0.3, 0.2 * 2^(n-1)) * [0.5, 1] s after the
 * failure (at its run_at). The SCHEDULED event's time is the failed
 * attempt's started_at, which for `fail` is the failure itself. */
static void test_retries_and_backoff(void **state) {
  start();
  it_watch *w = watch_all();
  task_req q;
  req_init(&q, "flaky", "fail");
  req_ctx(&q, "message", "broken on purpose");
  req_retry(&q, 3, 0.2, 0.3);
  char *id = submit_id(&q);
  Oee__V1__TaskEvent *ev[MAX_EVENTS];
  int n = events_until(w, id, ST(ERROR), ev);
  const int want[] = {ST(QUEUED),    ST(RUNNING), ST(SCHEDULED), ST(QUEUED), ST(RUNNING),
                      ST(SCHEDULED), ST(QUEUED),  ST(RUNNING),   ST(ERROR)};
  expect_statuses(ev, n, want, 9);
  for (int k = 0; k < 3; k++) assert_int_equal(ev[1 + 3 * k]->task->attempt, k + 1);
  const double delay[] = {0.2, 0.3}; /* retry 1, retry 2 */
  for (int r = 0; r < 2; r++) {
    const Oee__V1__TaskEvent *sched = ev[2 + 3 * r], *next = ev[4 + 3 * r];
    assert_non_null(sched->task->run_at);
    assert_non_null(sched->time);
    assert_string_equal(sched->task->error_message, "broken on purpose");
    assert_int_equal(sched->task->attempt, r + 1);
    double lo = 0.5 * delay[r] - EARLY_S;
    expect_within("failure to next start", it_ts(next->task->started_at) - it_ts(sched->time), lo,
                  delay[r] + LATE_S);
    expect_within("failure to run_at", it_ts(sched->task->run_at) - it_ts(sched->time), lo,
                  delay[r] + EARLY_S);
    assert_true(ns_of(next->task->started_at) >= ns_of(sched->task->run_at) - EARLY_S * 1e9);
  }
  free_events(ev, n);
  it_watch_close(w);
  Oee__V1__Task *t = it_get(srv.ch, id, NULL);
  assert_non_null(t);
  assert_int_equal(t->status, ST(ERROR));
  assert_int_equal(t->attempt, 3);
  assert_string_equal(t->error_message, "broken on purpose");
  oee__v1__task__free_unpacked(t, NULL);
  free(id);
}

/* context["permanent"] = "true": ERROR after attempt 1, never SCHEDULED. */
static void test_permanent_failure(void **state) {
  start();
  it_watch *w = watch_all();
  task_req q;
  req_init(&q, "doomed", "fail");
  req_ctx(&q, "message", "no hope");
  req_ctx(&q, "permanent", "true");
  req_retry(&q, 3, 0.05, 0.05);
  char *id = submit_id(&q);
  Oee__V1__TaskEvent *ev[MAX_EVENTS];
  int n = events_until(w, id, ST(ERROR), ev);
  const int want[] = {ST(QUEUED), ST(RUNNING), ST(ERROR)};
  expect_statuses(ev, n, want, 3);
  assert_int_equal(ev[2]->task->attempt, 1);
  assert_string_equal(ev[2]->task->error_message, "no hope");
  free_events(ev, n);
  it_watch_close(w);
  free(id);
}

/* sleep 2 s with timeout_seconds 0.3 and two attempts: each attempt is
 * stopped at 0.3 s and fails "timed out after 0.3 s"; the task ends ERROR. */
static void test_timeout(void **state) {
  start();
  it_watch *w = watch_all();
  task_req q;
  req_init(&q, "slow", "sleep");
  req_ctx(&q, "seconds", "2");
  req_retry(&q, 2, 0.1, 0.1);
  q.r.timeout_seconds = 0.3;
  char *id = submit_id(&q);
  Oee__V1__TaskEvent *ev[MAX_EVENTS];
  int n = events_until(w, id, ST(ERROR), ev);
  const int want[] = {ST(QUEUED), ST(RUNNING), ST(SCHEDULED), ST(QUEUED), ST(RUNNING), ST(ERROR)};
  expect_statuses(ev, n, want, 6);
  const Oee__V1__Task *sched = ev[2]->task, *last = ev[5]->task;
  assert_string_equal(sched->error_message, "timed out after 0.3 s");
  /* Due 0.3 s (the timeout) + 0.05..0.1 s (the backoff) after it started. */
  expect_within("attempt 1 start to run_at", it_ts(sched->run_at) - it_ts(sched->started_at),
                0.35 - EARLY_S, 0.4 + LATE_S);
  assert_int_equal(last->attempt, 2);
  assert_string_equal(last->error_message, "timed out after 0.3 s");
  expect_within("attempt 2", it_ts(last->completed_at) - it_ts(last->started_at), 0.3 - EARLY_S,
                0.3 + LATE_S);
  free_events(ev, n);
  it_watch_close(w);
  free(id);
}

/* run_at 1.5 s ahead of the server's clock: SCHEDULED at submit, then
 * QUEUED, RUNNING within 50 ms after run_at, DONE. */
static void test_run_at(void **state) {
  start();
  it_watch *w = watch_all();
  task_req clock, q;
  req_init(&clock, "clock", "echo");
  Oee__V1__SubmitTaskResponse *c = submit(&clock);
  int64_t at = ns_of(c->task->created_at) + INT64_C(1500000000);
  oee__v1__submit_task_response__free_unpacked(c, NULL);
  Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  ts.seconds = at / 1000000000;
  ts.nanos = (int32_t)(at % 1000000000);
  req_init(&q, "later", "echo");
  q.r.run_at = &ts;
  Oee__V1__SubmitTaskResponse *resp = submit(&q);
  assert_int_equal(resp->task->status, ST(SCHEDULED));
  assert_true(ns_of(resp->task->run_at) == at);
  char *id = strdup(resp->task_id);
  oee__v1__submit_task_response__free_unpacked(resp, NULL);
  Oee__V1__TaskEvent *ev[MAX_EVENTS];
  int n = events_until(w, id, ST(DONE), ev);
  const int want[] = {ST(SCHEDULED), ST(QUEUED), ST(RUNNING), ST(DONE)};
  expect_statuses(ev, n, want, 4);
  expect_within("run_at to start", (double)(ns_of(ev[2]->task->started_at) - at) / 1e9, 0, 0.05);
  free_events(ev, n);
  it_watch_close(w);
  free(id);
}

/* ------------------------------------------- error_message, run_at */

/* error_message and run_at as the part 2 rules fix them. flaky.json's
 * "flaky" command fails its first attempt (exit 3, a line on stderr) and
 * succeeds after: the first attempt's error stays on the task while it
 * waits (SCHEDULED, QUEUED) and runs again (RUNNING, attempt 2), and is
 * empty once it ends DONE; the retry's SCHEDULED has run_at set. */
static void test_error_message_until_done(void **state) {
  assert_int_equal(it_server_start(&srv, "flaky.json", NULL, NULL, 30000), 0);
  it_watch *w = watch_all();
  task_req q;
  req_init(&q, "flaky", "exec");
  req_ctx(&q, "command", "flaky");
  req_retry(&q, 3, 0.1, 0.1);
  char *id = submit_id(&q);
  Oee__V1__TaskEvent *ev[MAX_EVENTS];
  int n = events_until(w, id, ST(DONE), ev);
  const int want[] = {ST(QUEUED), ST(RUNNING), ST(SCHEDULED), ST(QUEUED), ST(RUNNING), ST(DONE)};
  expect_statuses(ev, n, want, 6);
  const char *first = "exit status 3: attempt 1 broke";
  assert_string_equal(ev[2]->task->error_message, first);
  assert_string_equal(ev[0]->task->error_message, "");
  assert_string_equal(ev[1]->task->error_message, "");
  assert_null(ev[0]->task->run_at);
  assert_non_null(ev[2]->task->run_at); /* waits for the retry's due time */
  for (int i = 3; i <= 4; i++) assert_string_equal(ev[i]->task->error_message, first);
  assert_int_equal(ev[4]->task->attempt, 2);
  assert_string_equal(ev[5]->task->error_message, "");
  assert_string_equal(ev[5]->task->result, "fine");
  assert_int_equal(ev[5]->task->attempt, 2);
  free_events(ev, n);
  it_watch_close(w);
  Oee__V1__Task *t = it_get(srv.ch, id, NULL);
  assert_non_null(t);
  assert_int_equal(t->status, ST(DONE));
  assert_string_equal(t->error_message, "");
  oee__v1__task__free_unpacked(t, NULL);
  free(id);
}

/* run_at is set while a task waits for a time and unset while it waits
 * only for dependencies: a delayed task shows the requested run_at; one
 * waiting for it shows none; one waiting for it and for a time of its own
 * shows that time. */
static void test_run_at_only_when_waiting_for_a_time(void **state) {
  start();
  Google__Protobuf__Timestamp at = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  at.seconds = (int64_t)time(NULL) + 3600;
  at.nanos = 250000000;
  task_req root_q, dep_q, both_q;
  req_init(&root_q, "root", "echo");
  root_q.r.run_at = &at;
  char *root = submit_id(&root_q);
  req_init(&dep_q, "waits-for-root", "echo");
  dep_q.r.n_depends_on = 1;
  dep_q.r.depends_on = &root;
  char *dep = submit_id(&dep_q);
  Google__Protobuf__Timestamp at2 = at;
  at2.seconds += 60;
  req_init(&both_q, "waits-for-both", "echo");
  both_q.r.n_depends_on = 1;
  both_q.r.depends_on = &root;
  both_q.r.run_at = &at2;
  char *both = submit_id(&both_q);
  const struct {
    const char *id;
    const Google__Protobuf__Timestamp *run_at;
  } rows[] = {{root, &at}, {dep, NULL}, {both, &at2}};
  for (size_t i = 0; i < 3; i++) {
    Oee__V1__Task *t = it_get(srv.ch, rows[i].id, NULL);
    assert_non_null(t);
    assert_int_equal(t->status, ST(SCHEDULED));
    if (rows[i].run_at == NULL) {
      if (t->run_at != NULL) fail_msg("row %zu: run_at set while it waits for dependencies", i);
    } else {
      assert_non_null(t->run_at);
      assert_true(ns_of(t->run_at) == ns_of(rows[i].run_at));
    }
    oee__v1__task__free_unpacked(t, NULL);
  }
  int cancelled = 0;
  assert_int_equal(it_cancel(srv.ch, root, &cancelled), 0); /* and its dependents */
  assert_true(cancelled);
  for (size_t i = 1; i < 3; i++) {
    Oee__V1__Task *t = it_wait_status(srv.ch, rows[i].id, ST(CANCELLED), IT_WAIT_MS);
    assert_non_null(t);
    oee__v1__task__free_unpacked(t, NULL);
  }
  free(root);
  free(dep);
  free(both);
}

/* ------------------------------------------------------------ graph */

/* One SubmitTasks batch of GRAPH_N entries: tasks.json sets max_batch to
 * 10,000, and the reply (~4.5 MB) needs a receive limit above gRPC's
 * default 4 MiB (graph_channel). */
#define GRAPH_N 10000
#define GRAPH_WINDOW 100
#define GRAPH_FAILING 3

typedef struct graph {
  int ndeps[GRAPH_N];
  int deps[GRAPH_N][3];
  int failing[GRAPH_N];
  int want[GRAPH_N]; /* the status each entry must end in */
  char refs[GRAPH_N][3][16];
  char *refp[GRAPH_N][3];
} graph;

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint32_t rng_below(uint32_t n) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (uint32_t)(rng_state % n);
}

/* Whether entry i is downstream of a failing entry (failing[] as now). */
static int downstream(const graph *g, int i, const int *below) {
  for (int j = 0; j < g->ndeps[i]; j++) {
    int d = g->deps[i][j];
    if (g->failing[d] || below[d]) return 1;
  }
  return 0;
}

/* Each entry depends on 0..3 distinct entries among the GRAPH_WINDOW
 * before it; GRAPH_FAILING entries in the middle fail, none downstream of
 * another (each really runs and fails). want[] follows from that. */
static void graph_build(graph *g) {
  static int below[GRAPH_N];
  for (int i = 0; i < GRAPH_N; i++) {
    int lo = i > GRAPH_WINDOW ? i - GRAPH_WINDOW : 0, k = (int)rng_below(4);
    if (k > i - lo) k = i - lo;
    g->ndeps[i] = 0;
    while (g->ndeps[i] < k) {
      int d = lo + (int)rng_below((uint32_t)(i - lo)), dup = 0;
      for (int j = 0; j < g->ndeps[i]; j++) dup |= g->deps[i][j] == d;
      if (!dup) g->deps[i][g->ndeps[i]++] = d;
    }
  }
  int chosen = 0, ncancelled = 0;
  for (int i = GRAPH_N * 2 / 5; chosen < GRAPH_FAILING && i < GRAPH_N; i += 1 + rng_below(40)) {
    for (int j = 0; j < GRAPH_N; j++) below[j] = downstream(g, j, below);
    if (!below[i]) {
      g->failing[i] = 1;
      chosen++;
    }
  }
  assert_int_equal(chosen, GRAPH_FAILING);
  for (int i = 0; i < GRAPH_N; i++) {
    int cancelled = 0;
    for (int j = 0; j < g->ndeps[i]; j++) {
      int s = g->want[g->deps[i][j]];
      cancelled |= s == ST(ERROR) || s == ST(CANCELLED);
    }
    g->want[i] = cancelled ? ST(CANCELLED) : g->failing[i] ? ST(ERROR) : ST(DONE);
    ncancelled += cancelled;
  }
  /* Both outcomes are well represented (a property of the seed). */
  assert_true(ncancelled > 100 && ncancelled < GRAPH_N - 500);
}

/* SCHEDULED + QUEUED + RUNNING, from one GetQueueStatus. */
static int unfinished(void) {
  Oee__V1__GetQueueStatusRequest req = OEE__V1__GET_QUEUE_STATUS_REQUEST__INIT;
  Oee__V1__QueueStatus *st = NULL;
  assert_int_equal(
      oee_v1_orchestrator_service_get_queue_status(srv.ch, &req, &st, IT_CALL_MS, NULL), 0);
  int n = 0;
  for (size_t i = 0; i < st->n_tasks_by_status; i++) {
    const char *k = st->tasks_by_status[i]->key;
    if (!strcmp(k, "scheduled") || !strcmp(k, "queued") || !strcmp(k, "running")) {
      n += st->tasks_by_status[i]->value;
    }
  }
  oee__v1__queue_status__free_unpacked(st, NULL);
  return n;
}

/* A channel to srv that takes replies of up to 64 MiB. */
static oee_rpc_channel *graph_channel(void) {
  oee_rpc_channel_options o = {.max_receive_message_bytes = 64 << 20};
  oee_rpc_channel *ch = oee_rpc_channel_create_with_options(srv.target, &o);
  assert_non_null(ch);
  return ch;
}

typedef struct graph_id {
  const char *id;
  int entry;
} graph_id;

static int graph_id_cmp(const void *a, const void *b) {
  return strcmp(((const graph_id *)a)->id, ((const graph_id *)b)->id);
}

/* Every task of the server (only the graph's) by ListTasks pages of 1,000,
 * each put at t[i] for the batch entry i it is (a batch with references is
 * not created in request order, so the listing's order is not the batch's);
 * every entry exactly once. The pages go to pages[] (the caller frees them);
 * returns their number. */
static int graph_list(oee_rpc_channel *ch, const Oee__V1__SubmitTasksResponse *resp,
                      Oee__V1__Task **t, Oee__V1__ListTasksResponse **pages) {
  graph_id *by_id = calloc(GRAPH_N, sizeof(*by_id));
  assert_non_null(by_id);
  for (int i = 0; i < GRAPH_N; i++) by_id[i] = (graph_id){resp->results[i]->task_id, i};
  qsort(by_id, GRAPH_N, sizeof(*by_id), graph_id_cmp);
  int n = 0, np = 0;
  char *token = (char *)"";
  do {
    Oee__V1__ListTasksRequest req = OEE__V1__LIST_TASKS_REQUEST__INIT;
    req.page_size = 1000;
    req.page_token = token;
    Oee__V1__ListTasksResponse *p = NULL;
    assert_int_equal(oee_v1_orchestrator_service_list_tasks(ch, &req, &p, 60000, NULL), 0);
    assert_true(np < GRAPH_N / 1000 + 1);
    pages[np++] = p;
    for (size_t k = 0; k < p->n_tasks; k++, n++) {
      graph_id key = {p->tasks[k]->id, -1};
      const graph_id *hit = bsearch(&key, by_id, GRAPH_N, sizeof(*by_id), graph_id_cmp);
      if (hit == NULL) fail_msg("listed task %s is no entry of the batch", key.id);
      if (t[hit->entry] != NULL) fail_msg("entry %d listed twice", hit->entry);
      t[hit->entry] = p->tasks[k];
    }
    token = p->next_page_token;
  } while (token[0] != '\0');
  assert_int_equal(n, GRAPH_N);
  free(by_id);
  return np;
}

/* The checks of one finished entry i (t) against its dependencies. */
static void graph_check(const graph *g, int i, Oee__V1__Task **t) {
  if ((int)t[i]->status != g->want[i]) {
    fail_msg("entry %d: status %d, want %d (%s)", i, t[i]->status, g->want[i], t[i]->error_message);
  }
  if (g->want[i] == ST(ERROR)) assert_string_equal(t[i]->error_message, "on purpose");
  if (g->want[i] == ST(DONE)) {
    for (int j = 0; j < g->ndeps[i]; j++) {
      const Oee__V1__Task *d = t[g->deps[i][j]];
      if (ns_of(t[i]->started_at) < ns_of(d->completed_at)) {
        fail_msg("entry %d started before its dependency %d ended", i, g->deps[i][j]);
      }
    }
  }
  if (g->want[i] != ST(CANCELLED)) return;
  int named = 0;
  for (int j = 0; j < g->ndeps[i]; j++) {
    const Oee__V1__Task *d = t[g->deps[i][j]];
    char msg[128];
    snprintf(msg, sizeof(msg), "dependency %s ended %s", d->id,
             d->status == ST(ERROR) ? "ERROR" : "CANCELLED");
    named |= (d->status == ST(ERROR) || d->status == ST(CANCELLED)) &&
             strcmp(t[i]->error_message, msg) == 0;
  }
  if (!named) fail_msg("entry %d: \"%s\" names no failed dependency", i, t[i]->error_message);
}

/* One SubmitTasks call of 10,000 entries wired with "#<index>": the reply
 * resolves every reference, every DONE task started after its dependencies
 * ended, exactly the entries downstream of a failure end CANCELLED naming a
 * failed direct dependency, and all the others end DONE. */
static void test_graph(void **state) {
  start();
  graph *g = calloc(1, sizeof(*g));
  Oee__V1__SubmitTaskRequest *reqs = calloc(GRAPH_N, sizeof(*reqs));
  Oee__V1__SubmitTaskRequest **ptrs = calloc(GRAPH_N, sizeof(*ptrs));
  Oee__V1__Task **t = calloc(GRAPH_N, sizeof(*t));
  Oee__V1__ListTasksResponse *pages[GRAPH_N / 1000 + 1];
  oee_rpc_channel *ch = graph_channel();
  assert_true(g && reqs && ptrs && t);
  graph_build(g);
  Oee__V1__SubmitTaskRequest__ContextEntry msg = OEE__V1__SUBMIT_TASK_REQUEST__CONTEXT_ENTRY__INIT;
  Oee__V1__SubmitTaskRequest__ContextEntry *msgp[1] = {&msg};
  msg.key = (char *)"message";
  msg.value = (char *)"on purpose";
  for (int i = 0; i < GRAPH_N; i++) {
    oee__v1__submit_task_request__init(&reqs[i]);
    reqs[i].name = (char *)"node";
    reqs[i].task_type = (char *)(g->failing[i] ? "fail" : "echo");
    reqs[i].n_context = 1;
    reqs[i].context = msgp;
    for (int j = 0; j < g->ndeps[i]; j++) {
      snprintf(g->refs[i][j], sizeof(g->refs[i][j]), "#%d", g->deps[i][j]);
      g->refp[i][j] = g->refs[i][j];
    }
    reqs[i].n_depends_on = (size_t)g->ndeps[i];
    reqs[i].depends_on = g->refp[i];
    ptrs[i] = &reqs[i];
  }
  Oee__V1__SubmitTasksRequest batch = OEE__V1__SUBMIT_TASKS_REQUEST__INIT;
  batch.n_requests = GRAPH_N;
  batch.requests = ptrs;
  Oee__V1__SubmitTasksResponse *resp = NULL;
  int64_t t0 = it_now_ms();
  assert_int_equal(oee_v1_orchestrator_service_submit_tasks(ch, &batch, &resp, 120000, NULL), 0);
  fprintf(stderr, "graph: %d entries submitted in %lld ms\n", GRAPH_N,
          (long long)(it_now_ms() - t0));
  assert_int_equal(resp->n_results, GRAPH_N);
  for (int i = 0; i < GRAPH_N; i++) {
    const Oee__V1__SubmitTaskResult *r = resp->results[i];
    if (r->code != 0) fail_msg("entry %d refused: %d %s", i, r->code, r->message);
    assert_int_equal(r->task->n_depends_on, g->ndeps[i]);
    for (int j = 0; j < g->ndeps[i]; j++) {
      assert_string_equal(r->task->depends_on[j], resp->results[g->deps[i][j]]->task_id);
    }
  }
  int64_t end = it_now_ms() + 150000;
  while (unfinished() > 0) {
    assert_true(it_now_ms() < end);
    it_sleep_ms(50);
  }
  fprintf(stderr, "graph: finished %lld ms after the submit\n", (long long)(it_now_ms() - t0));
  int np = graph_list(ch, resp, t, pages);
  for (int i = 0; i < GRAPH_N; i++) graph_check(g, i, t);
  for (int i = 0; i < np; i++) oee__v1__list_tasks_response__free_unpacked(pages[i], NULL);
  oee__v1__submit_tasks_response__free_unpacked(resp, NULL);
  oee_rpc_channel_destroy(ch);
  free(t);
  free(ptrs);
  free(reqs);
  free(g);
}

/* ------------------------------------------------------ idempotency */

/* SubmitTask of q, asserted OK, with the reply's id (malloc'd), status and
 * duplicate flag. */
static char *submit_keyed(task_req *q, int *status, int *duplicate) {
  Oee__V1__SubmitTaskResponse *resp = submit(q);
  char *id = strdup(resp->task_id);
  assert_string_equal(resp->task->id, id);
  assert_string_equal(resp->task->idempotency_key, q->r.idempotency_key);
  *status = (int)resp->task->status;
  *duplicate = resp->duplicate;
  oee__v1__submit_task_response__free_unpacked(resp, NULL);
  return id;
}

/* sqlite only: keys are stored with their tasks, so after a SIGTERM and a
 * start on the same data directory the same submissions are duplicates of
 * the same tasks, a finished one and one still waiting for its run_at, and
 * nothing new is created; a new key still creates a task. */
static void test_idempotency_across_restart(void **state) {
  const char *store = getenv("OEE_TEST_STORE");
  if (store && strcmp(store, "memory") == 0) skip(); /* nothing survives a restart */
  start();
  Google__Protobuf__Timestamp later = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  later.seconds = (int64_t)time(NULL) + 3600;
  task_req done_q, wait_q, new_q;
  req_init(&done_q, "keyed-done", "echo");
  req_ctx(&done_q, "message", "once");
  done_q.r.idempotency_key = (char *)"order-42";
  req_init(&wait_q, "keyed-later", "echo");
  wait_q.r.idempotency_key = (char *)"order-43";
  wait_q.r.run_at = &later;
  int st, dup;
  char *done_id = submit_keyed(&done_q, &st, &dup);
  assert_false(dup);
  char *wait_id = submit_keyed(&wait_q, &st, &dup);
  assert_false(dup);
  assert_int_equal(st, ST(SCHEDULED));
  Oee__V1__Task *t = it_wait_final(srv.ch, done_id, IT_WAIT_MS);
  assert_non_null(t);
  assert_int_equal(t->status, ST(DONE));
  oee__v1__task__free_unpacked(t, NULL);
  /* Before the restart, too: a duplicate. */
  char *again = submit_keyed(&done_q, &st, &dup);
  assert_true(dup);
  assert_string_equal(again, done_id);
  free(again);

  assert_int_equal(it_server_restart(&srv, "tasks.json", NULL, NULL, 30000), 0);
  again = submit_keyed(&done_q, &st, &dup);
  assert_true(dup);
  assert_string_equal(again, done_id);
  assert_int_equal(st, ST(DONE));
  free(again);
  again = submit_keyed(&wait_q, &st, &dup);
  assert_true(dup);
  assert_string_equal(again, wait_id);
  assert_int_equal(st, ST(SCHEDULED));
  free(again);
  Oee__V1__GetQueueStatusRequest qreq = OEE__V1__GET_QUEUE_STATUS_REQUEST__INIT;
  Oee__V1__QueueStatus *qs = NULL;
  assert_int_equal(
      oee_v1_orchestrator_service_get_queue_status(srv.ch, &qreq, &qs, IT_CALL_MS, NULL), 0);
  assert_int_equal(qs->total_tasks, 2); /* nothing new was created */
  oee__v1__queue_status__free_unpacked(qs, NULL);
  req_init(&new_q, "keyed-new", "echo");
  new_q.r.idempotency_key = (char *)"order-44";
  char *new_id = submit_keyed(&new_q, &st, &dup);
  assert_false(dup);
  assert_string_not_equal(new_id, done_id);
  assert_string_not_equal(new_id, wait_id);
  free(new_id);
  free(wait_id);
  free(done_id);
}

/* ------------------------------------------------------------ quotas */

/* quota.json: "sleep" at most 2 running, "echo" at most 40 starts a second
 * (a bucket of one second's worth), 8 workers. 32 threads submit at once;
 * from the WatchTasks events alone: never more than 2 sleeps running,
 * no window of time with more echo starts than the bucket allows. */
#define QUOTA_THREADS 32
#define QUOTA_EACH 4 /* 2 sleeps, 2 echoes */
#define QUOTA_TASKS (QUOTA_THREADS * QUOTA_EACH)

static char *quota_ids[QUOTA_TASKS];
static int quota_is_sleep[QUOTA_TASKS];
static atomic_int quota_failures;

static void *quota_submitter(void *arg) {
  int n = (int)(intptr_t)arg;
  for (int i = 0; i < QUOTA_EACH; i++) {
    int k = n * QUOTA_EACH + i, sleep = i < 2;
    task_req q;
    req_init(&q, "quota", sleep ? "sleep" : "echo");
    req_ctx(&q, sleep ? "seconds" : "message", sleep ? "0.05" : "m");
    Oee__V1__SubmitTaskResponse *resp = NULL;
    if (oee_v1_orchestrator_service_submit_task(srv.ch, &q.r, &resp, IT_CALL_MS, NULL) != 0) {
      atomic_fetch_add(&quota_failures, 1);
      continue;
    }
    quota_ids[k] = strdup(resp->task_id);
    quota_is_sleep[k] = sleep;
    oee__v1__submit_task_response__free_unpacked(resp, NULL);
  }
  return NULL;
}

/* Which task of the test an id is, or -1. */
static int quota_index(const char *id) {
  for (int i = 0; i < QUOTA_TASKS; i++) {
    if (quota_ids[i] && strcmp(quota_ids[i], id) == 0) return i;
  }
  return -1;
}

static void test_quotas(void **state) {
  (void)state;
  assert_int_equal(it_server_start(&srv, "quota.json", NULL, NULL, 30000), 0);
  it_watch *w = watch_all();
  pthread_t th[QUOTA_THREADS];
  for (int i = 0; i < QUOTA_THREADS; i++) {
    assert_int_equal(pthread_create(&th[i], NULL, quota_submitter, (void *)(intptr_t)i), 0);
  }
  for (int i = 0; i < QUOTA_THREADS; i++) pthread_join(th[i], NULL);
  assert_int_equal(atomic_load(&quota_failures), 0);
  /* Events in sequence order until every task ended. */
  int ended = 0, running = 0, most = 0, n_starts = 0;
  int in_run[QUOTA_TASKS] = {0};
  double starts[QUOTA_TASKS];
  while (ended < QUOTA_TASKS) {
    Oee__V1__TaskEvent *e = NULL;
    if (it_watch_next(w, &e, NULL, IT_WAIT_MS) != 1) fail_msg("watch ended after %d", ended);
    int k = quota_index(e->task->id);
    int st = (int)e->task->status;
    if (k >= 0 && st == ST(RUNNING)) {
      if (quota_is_sleep[k]) {
        in_run[k] = 1;
        if (++running > most) most = running;
      } else {
        starts[n_starts++] = it_ts(e->task->started_at);
      }
    } else if (k >= 0 && in_run[k]) {
      in_run[k] = 0;
      running--;
    }
    if (k >= 0 && (st == ST(DONE) || st == ST(ERROR) || st == ST(CANCELLED))) {
      assert_int_equal(st, ST(DONE));
      ended++;
    }
    oee__v1__task_event__free_unpacked(e, NULL);
  }
  it_watch_close(w);
  assert_int_equal(most, 2); /* reached, never passed */
  assert_int_equal(n_starts, QUOTA_THREADS * 2);
  for (int i = 1; i < n_starts; i++) { /* sorted by start (few: insertion) */
    for (int j = i; j > 0 && starts[j] < starts[j - 1]; j--) {
      double s = starts[j];
      starts[j] = starts[j - 1];
      starts[j - 1] = s;
    }
  }
  for (int i = 0; i < n_starts; i++) {
    for (int j = i; j < n_starts; j++) {
      double allowed = 40 + 40 * (starts[j] - starts[i]) + 1;
      if (j - i + 1 > allowed)
        fail_msg("%d echo starts within %.3f s", j - i + 1, starts[j] - starts[i]);
    }
  }
  for (int i = 0; i < QUOTA_TASKS; i++) free(quota_ids[i]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_retries_and_backoff, teardown),
      cmocka_unit_test_teardown(test_permanent_failure, teardown),
      cmocka_unit_test_teardown(test_timeout, teardown),
      cmocka_unit_test_teardown(test_run_at, teardown),
      cmocka_unit_test_teardown(test_error_message_until_done, teardown),
      cmocka_unit_test_teardown(test_run_at_only_when_waiting_for_a_time, teardown),
      cmocka_unit_test_teardown(test_graph, teardown),
      cmocka_unit_test_teardown(test_idempotency_across_restart, teardown),
      cmocka_unit_test_teardown(test_quotas, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
