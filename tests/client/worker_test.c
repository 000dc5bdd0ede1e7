/*
 * worker_test.c - the remote worker library (client/worker.h) against a
 * fake oee.v1.WorkerService served in-process by the server runtime.
 *
 * The fake runs on the server's CQ thread: PollTasks hands out the tasks the
 * test queued (a poll with nothing to hand out waits, answered by the tick),
 * Heartbeat answers cancel_requested / lost as the test set them, and
 * CompleteTask / FailTask record what arrived. Everything the fake knows is
 * guarded by fake.mu; the test thread reads it with the lock held. Handlers
 * run on the worker's threads and only record what they saw (no cmocka
 * assertion outside the test thread); the test asserts afterwards.
 *
 * Time: nothing asserts that something happened fast, only that it happened
 * within a generous cap (WAIT_MS), except lower bounds (heartbeats not
 * sent more often than lease / 3) that a slow machine cannot break.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "client/worker.h"
#include "oee/v1/orchestrator.grpc-server.h"

enum { MAX_TASKS = 16, MAX_PARKED = 8, MAX_HB = 256, WAIT_MS = 20000 };
enum { S_WAITING, S_LEASED, S_DONE, S_FAILED };

/* One task of the fake server. */
typedef struct ftask {
  char id[40], lease[40], type[16], mode[16], input[32];
  int attempt;
  int state;         /* S_* */
  int cancel;        /* the test asks: heartbeats answer cancel_requested */
  int lose;          /* the test asks: heartbeats answer lost */
  int told_lost;     /* a heartbeat answered lost */
  int hb;            /* heartbeats that named the lease */
  int hb_after_lost; /* ... after it was answered lost */
  int reports;       /* CompleteTask + FailTask calls for the lease */
  char result[64], error[128], report_worker[64];
  int retryable, retryable_set;
} ftask;

/* A PollTasks waiting for a task or its wait_seconds. */
typedef struct parked {
  oee_rpc_call *call;
  int64_t due_ms;
  int max_tasks;
} parked;

typedef struct fake {
  pthread_mutex_t mu;
  ftask tasks[MAX_TASKS];
  int n_tasks;
  parked polls[MAX_PARKED];
  int n_parked;
  int n_polls, poll_cancelled, max_asked, leased_now, max_leased_now;
  int poll_bad;  /* requests without the worker id, types or settings expected */
  int poll_over; /* polls asking for more than the slots free (of 3) */
  double poll_lease_s;
  int hb_calls, hb_extend_set, hb_ids_max;
  int64_t hb_ms[MAX_HB];
  int fail_polls, fail_completes, fail_hbs; /* next calls to fail */
  grpc_status_code fail_code;
  int n_completes, n_fails;
} fake;

typedef struct handler_state {
  pthread_mutex_t mu;
  int running, max_running, started, finished, gate_open;
  oee_worker_cancel_reason reasons[MAX_TASKS]; /* by task index */
  int attempts[MAX_TASKS], ctx_count[MAX_TASKS];
} handler_state;

typedef struct fixture {
  fake fk;
  handler_state hs;
  oee_rpc_server *srv;
  pthread_t srv_thread;
  int port;
  int srv_stopped; /* the server thread was joined: fake state is quiet */
  oee_worker *w;
  pthread_t run_thread;
  atomic_int run_rc, returned;
  atomic_int log_lines, log_unavailable;
} fixture;

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms) {
  struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&t, NULL);
}

/* ------------------------------------------------------------ fake server */

static ftask *find_lease(fake *fk, const char *lease) {
  for (int i = 0; i < fk->n_tasks; i++)
    if (strcmp(fk->tasks[i].lease, lease) == 0) return &fk->tasks[i];
  return NULL;
}

static int waiting_tasks(fake *fk) {
  int n = 0;
  for (int i = 0; i < fk->n_tasks; i++) n += fk->tasks[i].state == S_WAITING;
  return n;
}

/* Fills one Lease for task t (now leased); storage comes from the caller. */
static void fill_lease(ftask *t, Oee__V1__Lease *l, Oee__V1__Task *m,
                       Oee__V1__Task__ContextEntry *e, Oee__V1__Task__ContextEntry **ep) {
  oee__v1__lease__init(l);
  oee__v1__task__init(m);
  oee__v1__task__context_entry__init(&e[0]);
  oee__v1__task__context_entry__init(&e[1]);
  e[0].key = "mode";
  e[0].value = t->mode;
  e[1].key = "input";
  e[1].value = t->input;
  ep[0] = &e[0];
  ep[1] = &e[1];
  m->id = t->id;
  m->task_type = t->type;
  m->name = "fake";
  m->attempt = ++t->attempt;
  m->max_attempts = 3;
  m->n_context = 2;
  m->context = ep;
  m->status = OEE__V1__TASK_STATUS__TASK_STATUS_RUNNING;
  l->lease_id = t->lease;
  l->task = m;
  t->state = S_LEASED;
}

/* Replies to a poll with up to max waiting tasks (none: an empty reply). */
static void answer_poll(fake *fk, oee_rpc_call *call, int max) {
  Oee__V1__Lease leases[MAX_TASKS], *lp[MAX_TASKS];
  Oee__V1__Task msgs[MAX_TASKS];
  Oee__V1__Task__ContextEntry ents[MAX_TASKS][2], *eps[MAX_TASKS][2];
  Oee__V1__PollTasksResponse r = OEE__V1__POLL_TASKS_RESPONSE__INIT;
  for (int i = 0; i < fk->n_tasks && (int)r.n_leases < max; i++) {
    if (fk->tasks[i].state != S_WAITING) continue;
    fill_lease(&fk->tasks[i], &leases[r.n_leases], &msgs[r.n_leases], ents[r.n_leases],
               eps[r.n_leases]);
    lp[r.n_leases] = &leases[r.n_leases];
    r.n_leases++;
  }
  r.leases = lp;
  fk->leased_now += (int)r.n_leases;
  if (fk->leased_now > fk->max_leased_now) fk->max_leased_now = fk->leased_now;
  oee_rpc_call_reply(call, &r.base);
}

static void drop_parked(fake *fk, oee_rpc_call *call) {
  for (int i = 0; i < fk->n_parked; i++)
    if (fk->polls[i].call == call) fk->polls[i] = fk->polls[--fk->n_parked];
}

static void poll_cancelled(oee_rpc_call *call, void *user) {
  fake *fk = user;
  pthread_mutex_lock(&fk->mu);
  drop_parked(fk, call);
  fk->poll_cancelled++;
  pthread_mutex_unlock(&fk->mu);
}

static int poll_request_ok(const Oee__V1__PollTasksRequest *r) {
  return strcmp(r->worker_id, "w-test") == 0 && r->n_task_types == 2 &&
         strcmp(r->task_types[0], "t1") == 0 && strcmp(r->task_types[1], "t2") == 0 &&
         r->max_tasks_present_case == OEE__V1__POLL_TASKS_REQUEST__MAX_TASKS_PRESENT_MAX_TASKS &&
         r->lease_seconds_present_case ==
             OEE__V1__POLL_TASKS_REQUEST__LEASE_SECONDS_PRESENT_LEASE_SECONDS &&
         r->wait_seconds_present_case ==
             OEE__V1__POLL_TASKS_REQUEST__WAIT_SECONDS_PRESENT_WAIT_SECONDS;
}

static void on_poll(oee_rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  static const oee_rpc_call_callbacks cbs = {.on_cancelled = poll_cancelled};
  fake *fk = ctx;
  const Oee__V1__PollTasksRequest *r = (const Oee__V1__PollTasksRequest *)m;
  pthread_mutex_lock(&fk->mu);
  fk->n_polls++;
  fk->poll_bad += !poll_request_ok(r);
  fk->poll_lease_s = r->lease_seconds;
  if (r->max_tasks > fk->max_asked) fk->max_asked = r->max_tasks;
  fk->poll_over += r->max_tasks + fk->leased_now > 3;
  if (fk->fail_polls > 0) {
    fk->fail_polls--;
    oee_rpc_call_fail(call, fk->fail_code, "injected poll failure");
  } else if (waiting_tasks(fk) > 0 || fk->n_parked == MAX_PARKED) {
    answer_poll(fk, call, r->max_tasks);
  } else {
    oee_rpc_call_set_callbacks(call, &cbs, fk);
    fk->polls[fk->n_parked++] =
        (parked){call, now_ms() + (int64_t)(r->wait_seconds * 1000), r->max_tasks};
  }
  pthread_mutex_unlock(&fk->mu);
}

/* Answers the parked polls that have tasks to take or reached their wait. */
static void tick(void *ud) {
  fake *fk = ud;
  pthread_mutex_lock(&fk->mu);
  for (int i = 0; i < fk->n_parked;) {
    parked p = fk->polls[i];
    if (waiting_tasks(fk) == 0 && now_ms() < p.due_ms) {
      i++;
      continue;
    }
    fk->polls[i] = fk->polls[--fk->n_parked];
    oee_rpc_call_set_callbacks(p.call, NULL, NULL);
    answer_poll(fk, p.call, p.max_tasks);
  }
  pthread_mutex_unlock(&fk->mu);
}

/* Fills st for one lease id of a heartbeat. fk->mu held. */
static void lease_state(fake *fk, const char *id, Oee__V1__LeaseState *st) {
  oee__v1__lease_state__init(st);
  st->lease_id = (char *)id;
  ftask *t = find_lease(fk, id);
  if (t == NULL || t->state != S_LEASED) {
    st->lost = 1;
    return;
  }
  t->hb++;
  if (t->told_lost) t->hb_after_lost++;
  st->cancel_requested = t->cancel;
  st->lost = t->lose;
  if (t->lose && !t->told_lost) {
    t->told_lost = 1;
    fk->leased_now--;
  }
}

static void on_heartbeat(oee_rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  fake *fk = ctx;
  const Oee__V1__HeartbeatRequest *r = (const Oee__V1__HeartbeatRequest *)m;
  Oee__V1__LeaseState states[MAX_TASKS], *sp[MAX_TASKS];
  Oee__V1__HeartbeatResponse resp = OEE__V1__HEARTBEAT_RESPONSE__INIT;
  pthread_mutex_lock(&fk->mu);
  if (fk->hb_calls < MAX_HB) fk->hb_ms[fk->hb_calls] = now_ms();
  fk->hb_calls++;
  fk->hb_extend_set += r->extend_seconds_present_case != 0;
  if ((int)r->n_lease_ids > fk->hb_ids_max) fk->hb_ids_max = (int)r->n_lease_ids;
  if (fk->fail_hbs > 0) {
    fk->fail_hbs--;
    pthread_mutex_unlock(&fk->mu);
    oee_rpc_call_fail(call, GRPC_STATUS_UNAVAILABLE, "injected heartbeat failure");
    return;
  }
  for (size_t i = 0; i < r->n_lease_ids && i < MAX_TASKS; i++) {
    lease_state(fk, r->lease_ids[i], &states[i]);
    sp[i] = &states[i];
    resp.n_leases++;
  }
  resp.leases = sp;
  oee_rpc_call_reply(call, &resp.base);
  pthread_mutex_unlock(&fk->mu);
}

/* Records a report; fails it (code) when t is unknown or not leased. */
static grpc_status_code record_report(fake *fk, ftask *t, const char *worker, int done) {
  if (t == NULL) return GRPC_STATUS_NOT_FOUND;
  if (t->state != S_LEASED || t->told_lost) return GRPC_STATUS_FAILED_PRECONDITION;
  t->reports++;
  t->state = done ? S_DONE : S_FAILED;
  fk->leased_now--;
  snprintf(t->report_worker, sizeof t->report_worker, "%s", worker);
  return GRPC_STATUS_OK;
}

static void reply_task(oee_rpc_call *call, grpc_status_code code, ftask *t) {
  Oee__V1__Task m = OEE__V1__TASK__INIT;
  if (code != GRPC_STATUS_OK) {
    oee_rpc_call_fail(call, code, "fake refuses the report");
    return;
  }
  m.id = t->id;
  oee_rpc_call_reply(call, &m.base);
}

static void on_complete(oee_rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  fake *fk = ctx;
  const Oee__V1__CompleteTaskRequest *r = (const Oee__V1__CompleteTaskRequest *)m;
  pthread_mutex_lock(&fk->mu);
  fk->n_completes++;
  ftask *t = find_lease(fk, r->lease_id);
  grpc_status_code code = GRPC_STATUS_UNAVAILABLE;
  if (fk->fail_completes > 0)
    fk->fail_completes--;
  else
    code = record_report(fk, t, r->worker_id, 1);
  if (code == GRPC_STATUS_OK) snprintf(t->result, sizeof t->result, "%s", r->result);
  reply_task(call, code, t);
  pthread_mutex_unlock(&fk->mu);
}

static void on_fail(oee_rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  fake *fk = ctx;
  const Oee__V1__FailTaskRequest *r = (const Oee__V1__FailTaskRequest *)m;
  pthread_mutex_lock(&fk->mu);
  fk->n_fails++;
  ftask *t = find_lease(fk, r->lease_id);
  grpc_status_code code = record_report(fk, t, r->worker_id, 0);
  if (code == GRPC_STATUS_OK) {
    snprintf(t->error, sizeof t->error, "%s", r->error_message);
    t->retryable = r->retryable;
    t->retryable_set =
        r->retryable_present_case == OEE__V1__FAIL_TASK_REQUEST__RETRYABLE_PRESENT_RETRYABLE;
  }
  reply_task(call, code, t);
  pthread_mutex_unlock(&fk->mu);
}

/* Queues a task of the fake: mode tells the test handler what to do. */
static ftask *add_task(fixture *f, const char *type, const char *mode, const char *input) {
  fake *fk = &f->fk;
  pthread_mutex_lock(&fk->mu);
  assert_true(fk->n_tasks < MAX_TASKS);
  int i = fk->n_tasks;
  ftask *t = &fk->tasks[i];
  memset(t, 0, sizeof *t);
  snprintf(t->id, sizeof t->id, "00000000-0000-7000-8000-%012d", i);
  snprintf(t->lease, sizeof t->lease, "11111111-0000-4000-8000-%012d", i);
  snprintf(t->type, sizeof t->type, "%s", type);
  snprintf(t->mode, sizeof t->mode, "%s", mode);
  snprintf(t->input, sizeof t->input, "%s", input);
  fk->n_tasks++;
  pthread_mutex_unlock(&fk->mu);
  return t;
}

/* ------------------------------------------------------------ handler */

static int task_index(oee_worker_task *t) {
  const char *id = oee_worker_task_id(t);
  return atoi(id + strlen(id) - 12);
}

/* Waits (hs.mu held) until pred or WAIT_MS passed. */
#define HS_WAIT(hs, pred)                \
  do {                                   \
    int64_t end_ = now_ms() + WAIT_MS;   \
    while (!(pred) && now_ms() < end_) { \
      pthread_mutex_unlock(&(hs)->mu);   \
      sleep_ms(5);                       \
      pthread_mutex_lock(&(hs)->mu);     \
    }                                    \
  } while (0)

/* mode "gate": hold until the test opens the gate. */
static void run_gate(handler_state *hs) {
  pthread_mutex_lock(&hs->mu);
  if (++hs->running > hs->max_running) hs->max_running = hs->running;
  HS_WAIT(hs, hs->gate_open);
  hs->running--;
  pthread_mutex_unlock(&hs->mu);
}

/* mode "hb": hold until the fake counted 4 heartbeats of the lease. */
static void run_hb(fixture *f, int i) {
  int64_t end = now_ms() + WAIT_MS;
  for (;;) {
    pthread_mutex_lock(&f->fk.mu);
    int hb = f->fk.tasks[i].hb;
    pthread_mutex_unlock(&f->fk.mu);
    if (hb >= 4 || now_ms() > end) return;
    sleep_ms(10);
  }
}

static int handler(oee_worker_task *t, void *ud) {
  fixture *f = ud;
  handler_state *hs = &f->hs;
  int i = task_index(t);
  const char *mode = oee_worker_task_context(t, "mode");
  char result[64];
  pthread_mutex_lock(&hs->mu);
  hs->started++;
  hs->attempts[i] = oee_worker_task_attempt(t);
  hs->ctx_count[i] = (int)oee_worker_task_context_count(t);
  pthread_mutex_unlock(&hs->mu);
  if (strcmp(mode, "gate") == 0) run_gate(hs);
  if (strcmp(mode, "hb") == 0) run_hb(f, i);
  if (strcmp(mode, "cancel") == 0)
    for (int64_t end = now_ms() + WAIT_MS; now_ms() < end;)
      if (oee_worker_task_wait_cancelled(t, 50)) break;
  pthread_mutex_lock(&hs->mu);
  hs->reasons[i] = oee_worker_task_cancel_reason(t);
  hs->finished++;
  pthread_mutex_unlock(&hs->mu);
  if (strcmp(mode, "fail") == 0) return oee_worker_task_set_error(t, "boom", 0), 1;
  if (strcmp(mode, "failrc") == 0) return 7;
  if (strcmp(mode, "cancel") == 0 && oee_worker_task_cancelled(t))
    return oee_worker_task_set_error(t, "stopped on request", 1), 1;
  snprintf(result, sizeof result, "r:%s:%s", oee_worker_task_context(t, "input"),
           oee_worker_task_type(t));
  oee_worker_task_set_result(t, result);
  return 0;
}

static void log_line(void *ud, const char *msg) {
  fixture *f = ud;
  atomic_fetch_add(&f->log_lines, 1);
  if (strstr(msg, "UNAVAILABLE") != NULL) atomic_fetch_add(&f->log_unavailable, 1);
}

/* ------------------------------------------------------------ fixture */

static void *serve(void *arg) {
  fixture *f = arg;
  assert_int_equal(oee_rpc_server_run(f->srv), 0);
  return NULL;
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  pthread_mutex_init(&f->fk.mu, NULL);
  pthread_mutex_init(&f->hs.mu, NULL);
  oee_rpc_server_options o = {.shutdown_grace_ms = 200};
  f->srv = oee_rpc_server_create("127.0.0.1:0", &o, &f->port);
  assert_non_null(f->srv);
  oee_rpc_method m[OEE_V1_WORKER_SERVICE_N_METHODS];
  memcpy(m, oee_v1_worker_service_methods, sizeof m);
  m[OEE_V1_WORKER_SERVICE_METHOD_POLL_TASKS].handler = on_poll;
  m[OEE_V1_WORKER_SERVICE_METHOD_HEARTBEAT].handler = on_heartbeat;
  m[OEE_V1_WORKER_SERVICE_METHOD_COMPLETE_TASK].handler = on_complete;
  m[OEE_V1_WORKER_SERVICE_METHOD_FAIL_TASK].handler = on_fail;
  assert_int_equal(oee_rpc_server_add_service(f->srv, m, OEE_V1_WORKER_SERVICE_N_METHODS, &f->fk),
                   0);
  oee_rpc_server_set_tick(f->srv, tick, &f->fk, 10);
  assert_int_equal(oee_rpc_server_start(f->srv), 0);
  assert_int_equal(pthread_create(&f->srv_thread, NULL, serve, f), 0);
  *state = f;
  return 0;
}

/* Stops the fake server. After it the test reads the fake's state without
 * the lock: the join orders every write of the CQ thread before the reads. */
static void stop_server(fixture *f) {
  if (f->srv_stopped) return;
  oee_rpc_server_shutdown(f->srv);
  assert_int_equal(pthread_join(f->srv_thread, NULL), 0);
  f->srv_stopped = 1;
}

static int teardown(void **state) {
  fixture *f = *state;
  stop_server(f);
  oee_rpc_server_destroy(f->srv);
  pthread_mutex_destroy(&f->fk.mu);
  pthread_mutex_destroy(&f->hs.mu);
  free(f);
  return 0;
}

static void *run_main(void *arg) {
  fixture *f = arg;
  atomic_store(&f->run_rc, oee_worker_run(f->w));
  atomic_store(&f->returned, 1);
  return NULL;
}

static const char *const TYPES[] = {"t1", "t2"};

static oee_worker_options base_options(fixture *f, char *target, size_t len) {
  snprintf(target, len, "127.0.0.1:%d", f->port);
  oee_worker_options o = {
      .target = target,
      .worker_id = "w-test",
      .task_types = TYPES,
      .n_task_types = 2,
      .concurrency = 3,
      .lease_seconds = 30,
      .poll_wait_seconds = 5,
      .retry_seconds = 0.05,
      .handler = handler,
      .user_data = f,
      .log = log_line,
      .log_data = f,
  };
  return o;
}

static void start_worker(fixture *f, const oee_worker_options *o) {
  assert_int_equal(oee_worker_create(o, &f->w), 0);
  assert_int_equal(pthread_create(&f->run_thread, NULL, run_main, f), 0);
}

static void stop_worker(fixture *f, double grace) {
  oee_worker_stop(f->w, grace);
  assert_int_equal(pthread_join(f->run_thread, NULL), 0);
  assert_int_equal(atomic_load(&f->run_rc), 0);
  oee_worker_destroy(f->w);
  f->w = NULL;
}

/* Waits up to WAIT_MS for fake counter expression to hold. */
#define FAKE_WAIT(f, pred)               \
  do {                                   \
    int64_t end_ = now_ms() + WAIT_MS;   \
    for (;;) {                           \
      pthread_mutex_lock(&(f)->fk.mu);   \
      int ok_ = (pred);                  \
      pthread_mutex_unlock(&(f)->fk.mu); \
      if (ok_ || now_ms() > end_) break; \
      sleep_ms(5);                       \
    }                                    \
  } while (0)

static int count_state(fake *fk, int state) {
  int n = 0;
  for (int i = 0; i < fk->n_tasks; i++) n += fk->tasks[i].state == state;
  return n;
}

/* ------------------------------------------------------------ tests */

/* Tasks reach `concurrency` handlers at once, never more, with their
 * context and attempt; each result is reported with the worker id on the
 * lease the poll granted. */
static void test_concurrent_handlers(void **state) {
  fixture *f = *state;
  char target[64], in[16];
  for (int i = 0; i < 6; i++) {
    snprintf(in, sizeof in, "in%d", i);
    add_task(f, i % 2 ? "t2" : "t1", "gate", in);
  }
  oee_worker_options o = base_options(f, target, sizeof target);
  start_worker(f, &o);
  pthread_mutex_lock(&f->hs.mu);
  HS_WAIT(&f->hs, f->hs.running == 3);
  int running = f->hs.running;
  f->hs.gate_open = 1;
  pthread_mutex_unlock(&f->hs.mu);
  assert_int_equal(running, 3);
  FAKE_WAIT(f, count_state(&f->fk, S_DONE) == 6);
  stop_worker(f, 5);
  stop_server(f);
  assert_int_equal(f->hs.max_running, 3);
  assert_int_equal(count_state(&f->fk, S_DONE), 6);
  for (int i = 0; i < 6; i++) {
    ftask *t = &f->fk.tasks[i];
    char want[64];
    snprintf(want, sizeof want, "r:in%d:%s", i, t->type);
    assert_string_equal(t->result, want);
    assert_string_equal(t->report_worker, "w-test");
    assert_int_equal(t->reports, 1);
    assert_int_equal(f->hs.attempts[i], 1);
    assert_int_equal(f->hs.ctx_count[i], 2);
  }
  assert_int_equal(f->fk.poll_bad, 0);
  assert_int_equal(f->fk.max_asked, 3);
  assert_int_equal(f->fk.poll_over, 0);
  assert_true(f->fk.max_leased_now <= 3);
  assert_true(f->fk.poll_lease_s == 30.0);
}

/* A handler's error goes to FailTask with its retry choice; a bare
 * non-zero return says so and leaves the retry to the server. */
static void test_failures_reported(void **state) {
  fixture *f = *state;
  char target[64];
  ftask *boom = add_task(f, "t1", "fail", "a");
  ftask *rc7 = add_task(f, "t2", "failrc", "b");
  oee_worker_options o = base_options(f, target, sizeof target);
  o.concurrency = 2;
  start_worker(f, &o);
  FAKE_WAIT(f, count_state(&f->fk, S_FAILED) == 2);
  stop_worker(f, 5);
  stop_server(f);
  assert_int_equal(count_state(&f->fk, S_FAILED), 2);
  assert_string_equal(boom->error, "boom");
  assert_true(boom->retryable_set);
  assert_false(boom->retryable);
  assert_string_equal(rc7->error, "handler returned 7");
  assert_true(rc7->retryable_set);
  assert_true(rc7->retryable);
  assert_string_equal(boom->report_worker, "w-test");
  assert_string_equal(rc7->report_worker, "w-test");
  assert_int_equal(f->fk.n_completes, 0);
}

/* With 1.5 s leases, heartbeats come every 0.5 s or so, each naming every
 * lease held, without extend_seconds. */
static void test_heartbeats(void **state) {
  fixture *f = *state;
  char target[64];
  add_task(f, "t1", "hb", "a");
  add_task(f, "t1", "hb", "b");
  oee_worker_options o = base_options(f, target, sizeof target);
  o.concurrency = 2;
  o.lease_seconds = 1.5;
  start_worker(f, &o);
  FAKE_WAIT(f, count_state(&f->fk, S_DONE) == 2);
  stop_worker(f, 5);
  stop_server(f);
  assert_int_equal(count_state(&f->fk, S_DONE), 2);
  assert_true(f->fk.tasks[0].hb >= 4);
  assert_true(f->fk.tasks[1].hb >= 4);
  assert_int_equal(f->fk.hb_ids_max, 2);
  assert_int_equal(f->fk.hb_extend_set, 0);
  assert_true(f->fk.hb_calls >= 4);
  int64_t span = f->fk.hb_ms[3] - f->fk.hb_ms[0]; /* three intervals */
  assert_true(span >= 1400);
  assert_true(span < 15000);
}

/* cancel_requested in a heartbeat reply reaches the handler, whose
 * FailTask then goes out. */
static void test_cancel_requested(void **state) {
  fixture *f = *state;
  char target[64];
  ftask *t = add_task(f, "t2", "cancel", "a");
  oee_worker_options o = base_options(f, target, sizeof target);
  o.concurrency = 1;
  o.lease_seconds = 1.5;
  start_worker(f, &o);
  pthread_mutex_lock(&f->hs.mu);
  HS_WAIT(&f->hs, f->hs.started == 1);
  pthread_mutex_unlock(&f->hs.mu);
  pthread_mutex_lock(&f->fk.mu);
  t->cancel = 1;
  pthread_mutex_unlock(&f->fk.mu);
  FAKE_WAIT(f, t->state == S_FAILED);
  stop_worker(f, 5);
  stop_server(f);
  assert_int_equal(f->hs.reasons[0], OEE_WORKER_CANCEL_REQUESTED);
  assert_int_equal(t->state, S_FAILED);
  assert_string_equal(t->error, "stopped on request");
  assert_true(t->retryable);
}

/* A lease answered `lost` cancels its handler, is never heartbeated again
 * and its outcome is not reported; the other lease goes on. */
static void test_lost_lease(void **state) {
  fixture *f = *state;
  char target[64];
  ftask *lost = add_task(f, "t1", "cancel", "a");
  ftask *other = add_task(f, "t1", "gate", "b");
  oee_worker_options o = base_options(f, target, sizeof target);
  o.concurrency = 2;
  o.lease_seconds = 1.5;
  start_worker(f, &o);
  pthread_mutex_lock(&f->hs.mu);
  HS_WAIT(&f->hs, f->hs.started == 2);
  pthread_mutex_unlock(&f->hs.mu);
  pthread_mutex_lock(&f->fk.mu);
  lost->lose = 1;
  pthread_mutex_unlock(&f->fk.mu);
  FAKE_WAIT(f, lost->told_lost);
  pthread_mutex_lock(&f->fk.mu);
  int hb_then = other->hb;
  pthread_mutex_unlock(&f->fk.mu);
  FAKE_WAIT(f, other->hb >= hb_then + 2);
  pthread_mutex_lock(&f->hs.mu);
  f->hs.gate_open = 1;
  pthread_mutex_unlock(&f->hs.mu);
  FAKE_WAIT(f, other->state == S_DONE);
  stop_worker(f, 5);
  stop_server(f);
  assert_true(lost->told_lost);
  assert_true(other->hb >= hb_then + 2);
  assert_int_equal(f->hs.reasons[0], OEE_WORKER_CANCEL_LOST);
  assert_int_equal(lost->hb_after_lost, 0);
  assert_int_equal(lost->reports, 0);
  assert_int_equal(f->fk.n_fails, 0);
  assert_int_equal(other->state, S_DONE);
}

/* stop() cancels the waiting poll at once but run() returns only after
 * the running handler finished and its result was reported. */
static void test_graceful_stop_waits(void **state) {
  fixture *f = *state;
  char target[64];
  ftask *t = add_task(f, "t1", "gate", "a");
  oee_worker_options o = base_options(f, target, sizeof target);
  o.concurrency = 2;
  o.poll_wait_seconds = 60;
  start_worker(f, &o);
  pthread_mutex_lock(&f->hs.mu);
  HS_WAIT(&f->hs, f->hs.running == 1);
  pthread_mutex_unlock(&f->hs.mu);
  FAKE_WAIT(f, f->fk.n_parked == 1); /* the one free slot is polling */
  pthread_mutex_lock(&f->fk.mu);
  int asked = f->fk.n_parked == 1 ? f->fk.polls[0].max_tasks : -1;
  pthread_mutex_unlock(&f->fk.mu);
  assert_int_equal(asked, 1);
  oee_worker_stop(f->w, 60);
  FAKE_WAIT(f, f->fk.poll_cancelled == 1);
  pthread_mutex_lock(&f->fk.mu);
  int polls = f->fk.n_polls, cancelled = f->fk.poll_cancelled;
  pthread_mutex_unlock(&f->fk.mu);
  assert_int_equal(cancelled, 1);
  sleep_ms(200);
  assert_false(atomic_load(&f->returned)); /* the handler still holds */
  pthread_mutex_lock(&f->hs.mu);
  f->hs.gate_open = 1;
  pthread_mutex_unlock(&f->hs.mu);
  stop_worker(f, 60);
  stop_server(f);
  assert_int_equal(t->state, S_DONE);
  assert_int_equal(t->reports, 1);
  assert_int_equal(f->fk.n_polls, polls); /* no poll after the stop */
  assert_int_equal(f->hs.reasons[0], OEE_WORKER_CANCEL_NONE);
}

/* At the stop deadline the running handler is told to stop, its attempt is
 * failed (retryable) by the worker, and the handler's own outcome, which
 * comes later, is dropped. */
static void test_stop_deadline(void **state) {
  fixture *f = *state;
  char target[64];
  ftask *t = add_task(f, "t1", "cancel", "a");
  oee_worker_options o = base_options(f, target, sizeof target);
  o.concurrency = 1;
  start_worker(f, &o);
  pthread_mutex_lock(&f->hs.mu);
  HS_WAIT(&f->hs, f->hs.started == 1);
  pthread_mutex_unlock(&f->hs.mu);
  oee_worker_stop(f->w, 0.3);
  assert_int_equal(pthread_join(f->run_thread, NULL), 0);
  assert_int_equal(atomic_load(&f->run_rc), 0);
  oee_worker_destroy(f->w); /* waits for the handler */
  f->w = NULL;
  stop_server(f);
  assert_int_equal(f->hs.finished, 1);
  assert_int_equal(f->hs.reasons[0], OEE_WORKER_CANCEL_STOPPING);
  assert_int_equal(t->state, S_FAILED);
  assert_string_equal(t->error, "worker w-test stopped before the task finished");
  assert_true(t->retryable_set);
  assert_true(t->retryable);
  assert_int_equal(f->fk.n_fails, 1);
}

/* Failed polls, heartbeats and reports are retried; the task still runs
 * and its result arrives. */
static void test_server_errors_retry(void **state) {
  fixture *f = *state;
  char target[64];
  ftask *t = add_task(f, "t2", "hb", "x");
  f->fk.fail_code = GRPC_STATUS_UNAVAILABLE;
  f->fk.fail_polls = 3;
  f->fk.fail_hbs = 1;
  f->fk.fail_completes = 2;
  oee_worker_options o = base_options(f, target, sizeof target);
  o.lease_seconds = 1.5;
  start_worker(f, &o);
  FAKE_WAIT(f, t->state == S_DONE);
  stop_worker(f, 5);
  stop_server(f);
  assert_int_equal(t->state, S_DONE);
  assert_string_equal(t->result, "r:x:t2");
  assert_true(f->fk.n_polls >= 4);
  assert_int_equal(f->fk.n_completes, 3);
  assert_int_equal(f->fk.fail_hbs, 0);
  assert_true(atomic_load(&f->log_unavailable) >= 6);
}

/* NOT_FOUND from PollTasks is not fatal either. */
static void test_poll_not_found_retry(void **state) {
  fixture *f = *state;
  char target[64];
  ftask *t = add_task(f, "t1", "ok", "y");
  f->fk.fail_code = GRPC_STATUS_NOT_FOUND;
  f->fk.fail_polls = 2;
  oee_worker_options o = base_options(f, target, sizeof target);
  start_worker(f, &o);
  FAKE_WAIT(f, t->state == S_DONE);
  stop_worker(f, 5);
  stop_server(f);
  assert_int_equal(t->state, S_DONE);
  assert_true(f->fk.n_polls >= 3);
  assert_true(atomic_load(&f->log_lines) >= 2);
}

/* A free loopback port with nothing listening on it. */
static int dead_port(void) {
  oee_rpc_server *s = NULL;
  int port = 0;
  assert_int_equal(oee_rpc_server_open("127.0.0.1:0", NULL, &port, &s), 0);
  oee_rpc_server_destroy(s);
  return port;
}

/* With no server at all the worker keeps trying until stopped. */
static void test_unreachable_server(void **state) {
  fixture *f = *state;
  char target[64];
  oee_worker_options o = base_options(f, target, sizeof target);
  snprintf(target, sizeof target, "127.0.0.1:%d", dead_port());
  start_worker(f, &o);
  for (int64_t end = now_ms() + WAIT_MS; now_ms() < end;) {
    if (atomic_load(&f->log_unavailable) >= 3) break;
    sleep_ms(10);
  }
  assert_true(atomic_load(&f->log_unavailable) >= 3);
  assert_false(atomic_load(&f->returned));
  stop_worker(f, 1);
  stop_server(f);
}

/* A stop ends a poll that would wait 60 s long before that. */
static void test_stop_interrupts_poll(void **state) {
  fixture *f = *state;
  char target[64];
  oee_worker_options o = base_options(f, target, sizeof target);
  o.poll_wait_seconds = 60;
  start_worker(f, &o);
  FAKE_WAIT(f, f->fk.n_parked == 1);
  int64_t t0 = now_ms();
  stop_worker(f, 5);
  assert_true(now_ms() - t0 < 30000);
  FAKE_WAIT(f, f->fk.poll_cancelled == 1);
  pthread_mutex_lock(&f->fk.mu);
  int cancelled = f->fk.poll_cancelled;
  pthread_mutex_unlock(&f->fk.mu);
  assert_int_equal(cancelled, 1);
}

static void expect_einval(oee_worker_options o) {
  oee_worker *w = (oee_worker *)&o; /* any non-NULL value */
  assert_int_equal(oee_worker_create(&o, &w), OEE_RPC_EINVAL);
  assert_null(w);
}

static void test_create_checks(void **state) {
  fixture *f = *state;
  char target[64], host[256] = "", want[300];
  oee_worker_options o = base_options(f, target, sizeof target), bad;
  const char *const empty_type[] = {"t1", ""};
  bad = o, bad.handler = NULL, expect_einval(bad);
  bad = o, bad.n_task_types = 0, expect_einval(bad);
  bad = o, bad.task_types = empty_type, expect_einval(bad);
  bad = o, bad.concurrency = 101, expect_einval(bad);
  bad = o, bad.lease_seconds = 0.5, expect_einval(bad);
  bad = o, bad.poll_wait_seconds = 61, expect_einval(bad);
  bad = o, bad.target = NULL, expect_einval(bad);
  o.worker_id = NULL;
  oee_worker *w = NULL;
  assert_int_equal(oee_worker_create(&o, &w), 0);
  gethostname(host, sizeof host - 1);
  snprintf(want, sizeof want, "%s-%ld", host, (long)getpid());
  assert_string_equal(oee_worker_id(w), want);
  oee_worker_stop(w, 0); /* before run: run returns at once */
  assert_int_equal(oee_worker_run(w), 0);
  assert_int_equal(oee_worker_run(w), OEE_RPC_ESTATE);
  oee_worker_destroy(w);
  stop_server(f);
  assert_int_equal(f->fk.n_polls, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_concurrent_handlers, setup, teardown),
      cmocka_unit_test_setup_teardown(test_failures_reported, setup, teardown),
      cmocka_unit_test_setup_teardown(test_heartbeats, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel_requested, setup, teardown),
      cmocka_unit_test_setup_teardown(test_lost_lease, setup, teardown),
      cmocka_unit_test_setup_teardown(test_graceful_stop_waits, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stop_deadline, setup, teardown),
      cmocka_unit_test_setup_teardown(test_server_errors_retry, setup, teardown),
      cmocka_unit_test_setup_teardown(test_poll_not_found_retry, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unreachable_server, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stop_interrupts_poll, setup, teardown),
      cmocka_unit_test_setup_teardown(test_create_checks, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
