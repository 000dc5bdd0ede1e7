/* test_lease.c - remote workers in the core (lease.c): polls answered at
 * once and parked, FIFO among waiting polls, the queue's order, the end of
 * a wait, leases completed, failed, extended, expired, timed out and
 * cancelled, late and foreign completions, polls taken back, callers gone,
 * undelivered leases, quotas on remote types, the workers' list, bad
 * input, and leases across a stop and a restart. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "tests/core/testutil.h"

#include "core/oee.h"

#define WAIT_S 10.0

static const char *const remote_types[] = {"remote", "remote2"};

static oee_engine *make_full(const char *dir, const oee_type_limit *limits, size_t n_limits) {
  oee_engine_config cfg = {.num_workers = 2,
                           .remote_types = remote_types,
                           .n_remote_types = 2,
                           .data_dir = dir,
                           .sync_normal = 1,
                           .type_limits = limits,
                           .n_type_limits = n_limits};
  oee_engine *eng = NULL;
  oee_error err = {0};
  assert_int_equal(oee_engine_open(&cfg, &eng, &err), 0);
  assert_int_equal(oee_engine_start(eng), 0);
  return eng;
}

static oee_engine *make(void) { return make_full(NULL, NULL, 0); }

/* ------------------------------------------------------------ a poll */

/* What a poll was answered: a copy made in the callback. */
typedef struct answer {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int called, rc, refuse, gone;
  size_t n;
  char lease[OEE_POLL_MAX_TASKS][OEE_ID_LEN + 1];
  char task[OEE_POLL_MAX_TASKS][OEE_ID_LEN + 1];
  char name[OEE_POLL_MAX_TASKS][32];
  int attempt[OEE_POLL_MAX_TASKS];
  oee_poll handle;
  int64_t at_ns;
} answer;

static answer *answer_new(void) {
  answer *a = calloc(1, sizeof(*a));
  pthread_mutex_init(&a->mu, NULL);
  pthread_cond_init(&a->cv, NULL);
  return a;
}

static void answer_free(answer *a) {
  pthread_mutex_destroy(&a->mu);
  pthread_cond_destroy(&a->cv);
  free(a);
}

static int answered(void *arg, int rc, const oee_lease *l, size_t n) {
  answer *a = arg;
  pthread_mutex_lock(&a->mu);
  assert_int_equal(a->called, 0); /* exactly once */
  a->rc = rc;
  a->n = n;
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(l[i].task->status, OEE_TASK_RUNNING);
    memcpy(a->lease[i], l[i].lease_id, OEE_ID_LEN + 1);
    memcpy(a->task[i], l[i].task->id, OEE_ID_LEN + 1);
    snprintf(a->name[i], sizeof(a->name[i]), "%s", l[i].task->name);
    a->attempt[i] = l[i].task->attempt;
  }
  a->at_ns = oee_now_ns();
  a->called = 1;
  int refuse = a->refuse;
  pthread_cond_broadcast(&a->cv);
  pthread_mutex_unlock(&a->mu); /* a may be freed from here on */
  return refuse ? -1 : 0;
}

static int alive(void *arg) {
  answer *a = arg;
  pthread_mutex_lock(&a->mu);
  int gone = a->gone;
  pthread_mutex_unlock(&a->mu);
  return !gone;
}

/* The types a poll names must outlive it. */
static const char *const *types_of(const char *type) {
  static const char *const remote[] = {"remote"}, *const remote2[] = {"remote2"};
  return strcmp(type, "remote") == 0 ? remote : remote2;
}

static int poll_full(oee_engine *eng, answer *a, const char *worker, const char *type, int max,
                     double wait, double lease) {
  oee_poll_req r = {.worker_id = worker,
                    .peer = "test",
                    .task_types = types_of(type),
                    .n_task_types = 1,
                    .max_tasks = max,
                    .wait_seconds = wait,
                    .lease_seconds = lease,
                    .alive = alive};
  return oee_engine_poll(eng, &a->handle, &r, answered, a, NULL);
}

static int was_called(answer *a) {
  pthread_mutex_lock(&a->mu);
  int called = a->called;
  pthread_mutex_unlock(&a->mu);
  return called;
}

static int wait_answer(answer *a, double timeout_s) {
  double end = tu_now() + timeout_s;
  pthread_mutex_lock(&a->mu);
  while (!a->called && tu_now() < end) {
    pthread_mutex_unlock(&a->mu);
    usleep(1000);
    pthread_mutex_lock(&a->mu);
  }
  int called = a->called;
  pthread_mutex_unlock(&a->mu);
  return called;
}

/* Polls without waiting and expects one lease of `type`. */
static answer *take_one(oee_engine *eng, const char *worker, const char *type, double lease) {
  answer *a = answer_new();
  assert_int_equal(poll_full(eng, a, worker, type, 1, 0, lease), 0);
  assert_true(wait_answer(a, WAIT_S));
  assert_int_equal(a->rc, 0);
  assert_int_equal(a->n, 1);
  return a;
}

static void submit_named(oee_engine *eng, const char *type, const char *name, int prio,
                         int attempts, double timeout, char *id) {
  oee_submit req = {.name = name,
                    .task_type = type,
                    .priority = prio,
                    .max_attempts = attempts,
                    .backoff_seconds = 0.01,
                    .max_backoff_seconds = 0.01,
                    .timeout_seconds = timeout};
  const oee_task_info *t = NULL;
  assert_int_equal(oee_engine_submit(eng, &req, &t, NULL), 0);
  if (id) memcpy(id, t->id, OEE_ID_LEN + 1);
  oee_task_info_unref(t);
}

static oee_task_status status_of(oee_engine *eng, const char *id, char *msg, size_t len) {
  const oee_task_info *t = NULL;
  assert_int_equal(oee_engine_get(eng, id, &t), 0);
  oee_task_status st = t->status;
  if (msg) snprintf(msg, len, "%s", t->error_message);
  oee_task_info_unref(t);
  return st;
}

/* ---------------------------------------------------------- lease ends */

typedef struct ended {
  int called, rc;
  oee_task_status status;
  char result[64];
} ended;

static pthread_mutex_t end_mu = PTHREAD_MUTEX_INITIALIZER;

/* Called on the commit thread with a data_dir. */
static void end_cb(void *arg, int rc, const oee_task_info *t) {
  ended *e = arg;
  pthread_mutex_lock(&end_mu);
  e->rc = rc;
  if (t) {
    e->status = t->status;
    snprintf(e->result, sizeof(e->result), "%s", t->result);
  }
  e->called = 1;
  pthread_mutex_unlock(&end_mu);
}

static int end_seen(ended *e) {
  pthread_mutex_lock(&end_mu);
  int called = e->called;
  pthread_mutex_unlock(&end_mu);
  return called;
}

static int end_lease(oee_engine *eng, const char *lease, const char *worker, int ok, int retryable,
                     ended *e, oee_error *err) {
  oee_lease_end end = {.lease_id = lease,
                       .worker_id = worker,
                       .ok = ok,
                       .result = "done!",
                       .message = "it broke",
                       .retryable = retryable};
  memset(e, 0, sizeof(*e));
  int rc = oee_engine_lease_end(eng, &end, end_cb, e, err);
  for (int i = 0; rc == 0 && !end_seen(e) && i < 10000; i++) usleep(1000); /* durable: stored */
  return rc;
}

static oee_lease_state beat(oee_engine *eng, const char *worker, const char *lease) {
  const char *ids[] = {lease};
  oee_lease_state st;
  assert_int_equal(oee_engine_heartbeat(eng, worker, "test", ids, 1, NULL, &st, NULL), 0);
  return st;
}

/* ---------------------------------------------------------------- tests */

static void test_poll_takes_in_queue_order(void **state) {
  (void)state;
  oee_engine *eng = make();
  submit_named(eng, "remote", "low", 1, 1, 0, NULL);
  submit_named(eng, "remote", "high", 9, 1, 0, NULL);
  submit_named(eng, "remote", "mid-a", 5, 1, 0, NULL);
  submit_named(eng, "remote", "mid-b", 5, 1, 0, NULL);
  usleep(100 * 1000); /* the engine's own workers never take them */
  oee_status st;
  assert_int_equal(oee_engine_status(eng, &st), 0);
  assert_int_equal(st.queue_size, 4);
  oee_status_free(&st);
  answer *a = answer_new();
  assert_int_equal(poll_full(eng, a, "w1", "remote", 3, 0, 30), 0);
  assert_true(wait_answer(a, WAIT_S));
  assert_int_equal(a->n, 3);
  assert_string_equal(a->name[0], "high");
  assert_string_equal(a->name[1], "mid-a");
  assert_string_equal(a->name[2], "mid-b");
  const oee_task_info *t = NULL;
  assert_int_equal(oee_engine_get(eng, a->task[0], &t), 0);
  assert_int_equal(t->status, OEE_TASK_RUNNING);
  assert_int_equal(t->attempt, 1);
  assert_int_equal(t->worker_id, -1);
  assert_string_equal(t->remote_worker_id, "w1");
  oee_task_info_unref(t);
  answer_free(a);
  tu_engine_free(eng);
}

static void test_waiting_polls_fifo(void **state) {
  (void)state;
  oee_engine *eng = make();
  answer *p[3];
  char worker[3][16];
  for (int i = 0; i < 3; i++) {
    p[i] = answer_new();
    snprintf(worker[i], sizeof(worker[i]), "w%d", i);
    assert_int_equal(poll_full(eng, p[i], worker[i], "remote", 1, WAIT_S, 30), 0);
  }
  usleep(50 * 1000);
  for (int i = 0; i < 3; i++) assert_int_equal(was_called(p[i]), 0); /* parked */
  const char *names[] = {"first", "second", "third"};
  for (int i = 0; i < 3; i++) {
    int64_t t0 = oee_now_ns();
    submit_named(eng, "remote", names[i], 5, 1, 0, NULL);
    assert_true(wait_answer(p[i], WAIT_S));
    printf("# poll %d woken after %.3f ms\n", i, (double)(p[i]->at_ns - t0) / 1e6);
    assert_int_equal(p[i]->n, 1);
    assert_string_equal(p[i]->name[0], names[i]); /* the oldest poll first */
    for (int k = i + 1; k < 3; k++) assert_int_equal(was_called(p[k]), 0);
  }
  for (int i = 0; i < 3; i++) answer_free(p[i]);
  tu_engine_free(eng);
}

static void test_wait_ends_empty(void **state) {
  (void)state;
  oee_engine *eng = make();
  answer *a = answer_new(), *other = answer_new();
  double t0 = tu_now();
  assert_int_equal(poll_full(eng, a, "w1", "remote", 1, 0.2, 30), 0);
  assert_int_equal(poll_full(eng, other, "w2", "remote2", 1, WAIT_S, 30), 0);
  submit_named(eng, "remote2", "not-yours", 5, 1, 0, NULL); /* another type */
  assert_true(wait_answer(a, WAIT_S));
  assert_true(tu_now() - t0 >= 0.19);
  assert_int_equal(a->rc, 0);
  assert_int_equal(a->n, 0);
  assert_true(wait_answer(other, WAIT_S));
  assert_string_equal(other->name[0], "not-yours");
  answer_free(a);
  answer_free(other);
  tu_engine_free(eng);
}

static void test_complete_and_late_ends(void **state) {
  (void)state;
  oee_engine *eng = make();
  char id[OEE_ID_LEN + 1];
  submit_named(eng, "remote", "job", 5, 1, 0, id);
  answer *a = take_one(eng, "w1", "remote", 30);
  ended e;
  oee_error err = {0};
  /* Another worker's lease: unknown to it, and lost in its heartbeat. */
  assert_int_equal(end_lease(eng, a->lease[0], "w2", 1, 1, &e, &err), OEE_ENOENT);
  assert_int_equal(beat(eng, "w2", a->lease[0]).lost, 1);
  oee_lease_state st = beat(eng, "w1", a->lease[0]);
  assert_int_equal(st.lost, 0);
  assert_true(st.expires_at_ns > oee_now_ns() + 20 * 1000000000LL);
  assert_int_equal(end_lease(eng, a->lease[0], "w1", 1, 1, &e, &err), 0);
  assert_int_equal(e.status, OEE_TASK_DONE);
  assert_string_equal(e.result, "done!");
  assert_int_equal(status_of(eng, id, NULL, 0), OEE_TASK_DONE);
  /* Again: finished, so refused and nothing changes. */
  assert_int_equal(end_lease(eng, a->lease[0], "w1", 0, 1, &e, &err), OEE_ESTATE);
  assert_non_null(strstr(err.message, "discarded"));
  assert_int_equal(end_lease(eng, a->lease[0], NULL, 0, 1, &e, &err), OEE_ESTATE);
  assert_int_equal(status_of(eng, id, NULL, 0), OEE_TASK_DONE);
  assert_int_equal(beat(eng, "w1", a->lease[0]).lost, 1);
  /* Never leased: unknown. */
  assert_int_equal(end_lease(eng, "01a23000-0000-7000-8000-000000000000", NULL, 1, 1, &e, &err),
                   OEE_ENOENT);
  answer_free(a);
  tu_engine_free(eng);
}

static void test_fail_retries_then_errors(void **state) {
  (void)state;
  oee_engine *eng = make();
  char id[OEE_ID_LEN + 1], msg[128];
  submit_named(eng, "remote", "flaky", 5, 3, 0, id);
  answer *a = take_one(eng, "w1", "remote", 30);
  ended e;
  assert_int_equal(end_lease(eng, a->lease[0], "w1", 0, 1, &e, NULL), 0);
  assert_int_equal(e.status, OEE_TASK_SCHEDULED); /* attempts remain */
  answer *b = answer_new();
  assert_int_equal(poll_full(eng, b, "w1", "remote", 1, WAIT_S, 30), 0);
  assert_true(wait_answer(b, WAIT_S));
  assert_int_equal(b->attempt[0], 2);
  assert_int_equal(end_lease(eng, b->lease[0], "w1", 0, 0, &e, NULL), 0); /* not retryable */
  assert_int_equal(e.status, OEE_TASK_ERROR);
  assert_int_equal(status_of(eng, id, msg, sizeof(msg)), OEE_TASK_ERROR);
  assert_string_equal(msg, "it broke");
  answer_free(a);
  answer_free(b);
  tu_engine_free(eng);
}

static void test_lease_expires_and_retries(void **state) {
  (void)state;
  oee_engine *eng = make();
  char id[OEE_ID_LEN + 1], msg[128];
  submit_named(eng, "remote", "lost", 5, 2, 0, id);
  answer *a = take_one(eng, "ghost", "remote", 1);
  answer *b = answer_new(); /* another worker waits for the retry */
  assert_int_equal(poll_full(eng, b, "w2", "remote", 1, WAIT_S, 30), 0);
  assert_true(wait_answer(b, WAIT_S));
  assert_int_equal(b->n, 1);
  assert_string_equal(b->task[0], id);
  assert_int_equal(b->attempt[0], 2);
  assert_int_equal(status_of(eng, id, msg, sizeof(msg)), OEE_TASK_RUNNING);
  assert_string_equal(msg, "lease expired: worker ghost lost");
  /* The lost worker comes back: refused, the retry's result stands. */
  ended e;
  oee_error err = {0};
  assert_int_equal(end_lease(eng, a->lease[0], "ghost", 1, 1, &e, &err), OEE_ESTATE);
  assert_int_equal(end_lease(eng, b->lease[0], "w2", 1, 1, &e, NULL), 0);
  assert_int_equal(e.status, OEE_TASK_DONE);
  answer_free(a);
  answer_free(b);
  tu_engine_free(eng);
}

static void test_heartbeats_keep_a_lease(void **state) {
  (void)state;
  oee_engine *eng = make();
  char id[OEE_ID_LEN + 1];
  submit_named(eng, "remote", "long", 5, 1, 0, id);
  answer *a = take_one(eng, "w1", "remote", 1);
  double extend = 1.0;
  for (int i = 0; i < 8; i++) { /* 2 s, twice the lease */
    usleep(250 * 1000);
    const char *ids[] = {a->lease[0]};
    oee_lease_state st;
    assert_int_equal(oee_engine_heartbeat(eng, "w1", NULL, ids, 1, &extend, &st, NULL), 0);
    assert_int_equal(st.lost, 0);
  }
  assert_int_equal(status_of(eng, id, NULL, 0), OEE_TASK_RUNNING);
  ended e;
  assert_int_equal(end_lease(eng, a->lease[0], "w1", 1, 1, &e, NULL), 0);
  assert_int_equal(e.status, OEE_TASK_DONE);
  answer_free(a);
  tu_engine_free(eng);
}

static void test_timeout_applies(void **state) {
  (void)state;
  oee_engine *eng = make();
  char id[OEE_ID_LEN + 1], msg[128];
  submit_named(eng, "remote", "slow", 5, 1, 0.3, id);
  answer *a = take_one(eng, "w1", "remote", 30);
  const oee_task_info *t = tu_wait_terminal(eng, id, WAIT_S);
  assert_non_null(t);
  assert_int_equal(t->status, OEE_TASK_ERROR);
  oee_task_info_unref(t);
  status_of(eng, id, msg, sizeof(msg));
  assert_string_equal(msg, "timed out after 0.3 s");
  ended e;
  assert_int_equal(end_lease(eng, a->lease[0], "w1", 1, 1, &e, NULL), OEE_ESTATE);
  answer_free(a);
  tu_engine_free(eng);
}

static void test_cancel_requested(void **state) {
  (void)state;
  oee_engine *eng = make();
  char id1[OEE_ID_LEN + 1], id2[OEE_ID_LEN + 1];
  submit_named(eng, "remote", "one", 5, 3, 0, id1);
  submit_named(eng, "remote", "two", 5, 3, 0, id2);
  answer *a = take_one(eng, "w1", "remote", 30), *b = take_one(eng, "w1", "remote", 30);
  assert_int_equal(beat(eng, "w1", a->lease[0]).cancel_requested, 0);
  int cancelled = 0;
  assert_int_equal(oee_engine_cancel(eng, id1, &cancelled, NULL), 0);
  assert_int_equal(oee_engine_cancel(eng, id2, &cancelled, NULL), 0);
  assert_int_equal(beat(eng, "w1", a->lease[0]).cancel_requested, 1);
  assert_int_equal(status_of(eng, id1, NULL, 0), OEE_TASK_RUNNING); /* until the worker says */
  ended e;
  assert_int_equal(end_lease(eng, a->lease[0], "w1", 0, 1, &e, NULL), 0); /* a failure */
  assert_int_equal(e.status, OEE_TASK_CANCELLED);
  assert_int_equal(end_lease(eng, b->lease[0], "w1", 1, 1, &e, NULL), 0); /* it finished anyway */
  assert_int_equal(e.status, OEE_TASK_DONE);
  answer_free(a);
  answer_free(b);
  tu_engine_free(eng);
}

static void test_poll_taken_back(void **state) {
  (void)state;
  oee_engine *eng = make();
  answer *a = answer_new(), *gone = answer_new();
  assert_int_equal(poll_full(eng, a, "w1", "remote", 1, WAIT_S, 30), 0);
  assert_int_equal(oee_engine_poll_cancel(eng, &a->handle), 1);
  assert_int_equal(oee_engine_poll_cancel(eng, &a->handle), 0); /* once */
  assert_int_equal(poll_full(eng, gone, "w2", "remote", 1, WAIT_S, 30), 0);
  pthread_mutex_lock(&gone->mu);
  gone->gone = 1; /* its caller went away without saying */
  pthread_mutex_unlock(&gone->mu);
  char id[OEE_ID_LEN + 1];
  submit_named(eng, "remote", "nobody", 5, 1, 0, id);
  assert_true(wait_answer(gone, WAIT_S));
  assert_int_equal(gone->rc, OEE_ECLOSED);
  assert_int_equal(gone->n, 0);
  usleep(50 * 1000);
  assert_int_equal(was_called(a), 0);
  assert_int_equal(status_of(eng, id, NULL, 0), OEE_TASK_QUEUED); /* leased to nobody */
  answer *b = take_one(eng, "w3", "remote", 30);
  assert_string_equal(b->task[0], id);
  answer_free(a);
  answer_free(gone);
  answer_free(b);
  tu_engine_free(eng);
}

static void test_undelivered_leases_expire(void **state) {
  (void)state;
  oee_engine *eng = make();
  char id[OEE_ID_LEN + 1], msg[128];
  submit_named(eng, "remote", "missed", 5, 1, 0, id);
  answer *a = answer_new();
  a->refuse = 1; /* the answer did not reach the worker (set before the poll) */
  assert_int_equal(poll_full(eng, a, "w1", "remote", 1, 0, 600), 0);
  assert_true(wait_answer(a, WAIT_S));
  const oee_task_info *t = tu_wait_terminal(eng, id, WAIT_S); /* not 600 s later */
  assert_non_null(t);
  oee_task_info_unref(t);
  assert_int_equal(status_of(eng, id, msg, sizeof(msg)), OEE_TASK_ERROR);
  assert_string_equal(msg, "lease expired: worker w1 lost");
  answer_free(a);
  tu_engine_free(eng);
}

static void test_quota_on_a_remote_type(void **state) {
  (void)state;
  oee_type_limit limit = {.task_type = "remote", .max_running = 1};
  oee_engine *eng = make_full(NULL, &limit, 1);
  submit_named(eng, "remote", "a", 5, 1, 0, NULL);
  submit_named(eng, "remote", "b", 5, 1, 0, NULL);
  answer *a = answer_new(), *b = answer_new();
  assert_int_equal(poll_full(eng, a, "w1", "remote", 5, 0, 30), 0);
  assert_true(wait_answer(a, WAIT_S));
  assert_int_equal(a->n, 1); /* max_running 1 */
  assert_int_equal(poll_full(eng, b, "w2", "remote", 5, WAIT_S, 30), 0);
  usleep(50 * 1000);
  assert_int_equal(was_called(b), 0);
  ended e;
  assert_int_equal(end_lease(eng, a->lease[0], "w1", 1, 1, &e, NULL), 0);
  assert_true(wait_answer(b, WAIT_S)); /* the freed slot goes to the waiting poll */
  assert_int_equal(b->n, 1);
  assert_string_equal(b->name[0], "b");
  answer_free(a);
  answer_free(b);
  tu_engine_free(eng);
}

/* A waiting poll held back only by a rate gets the task when the next
 * token comes, without another submit to wake it. */
static void test_rate_on_a_remote_type(void **state) {
  (void)state;
  oee_type_limit limit = {.task_type = "remote", .max_per_second = 2};
  oee_engine *eng = make_full(NULL, &limit, 1);
  for (int i = 0; i < 3; i++) submit_named(eng, "remote", "paced", 5, 1, 0, NULL);
  answer *a = answer_new(), *b = answer_new();
  assert_int_equal(poll_full(eng, a, "w1", "remote", 10, 0, 30), 0);
  assert_true(wait_answer(a, WAIT_S));
  assert_int_equal(a->n, 2); /* one second's burst */
  double t0 = tu_now();
  assert_int_equal(poll_full(eng, b, "w2", "remote", 10, WAIT_S, 30), 0);
  assert_true(wait_answer(b, WAIT_S));
  double waited = tu_now() - t0;
  printf("# the next token came after %.3f s\n", waited);
  assert_int_equal(b->n, 1);
  assert_true(waited > 0.2 && waited < 5);
  answer_free(a);
  answer_free(b);
  tu_engine_free(eng);
}

static void test_workers_listed(void **state) {
  (void)state;
  oee_engine *eng = make();
  submit_named(eng, "remote", "x", 5, 1, 0, NULL);
  submit_named(eng, "remote", "y", 5, 1, 0, NULL);
  answer *a = take_one(eng, "alpha", "remote", 30), *b = take_one(eng, "beta", "remote", 30);
  ended e;
  assert_int_equal(end_lease(eng, a->lease[0], "alpha", 1, 1, &e, NULL), 0);
  oee_remote_worker *v;
  size_t n;
  assert_int_equal(oee_engine_remote_workers(eng, &v, &n), 0);
  assert_int_equal(n, 2);
  assert_string_equal(v[0].worker_id, "alpha");
  assert_string_equal(v[0].peer, "test");
  assert_int_equal(v[0].n_task_types, 1);
  assert_string_equal(v[0].task_types[0], "remote");
  assert_int_equal(v[0].active_leases, 0);
  assert_int_equal(v[0].tasks_completed, 1);
  assert_string_equal(v[1].worker_id, "beta");
  assert_int_equal(v[1].active_leases, 1);
  assert_true(v[1].last_seen_ns > 0 && v[1].last_seen_ns <= oee_now_ns());
  oee_remote_workers_free(v);
  answer_free(a);
  answer_free(b);
  tu_engine_free(eng);
}

static void expect_poll_refused(oee_engine *eng, const char *worker, const char *type, int max,
                                double wait, double lease, const char *field) {
  const char *types[] = {type};
  oee_poll_req r = {.worker_id = worker,
                    .task_types = types,
                    .n_task_types = type ? 1 : 0,
                    .max_tasks = max,
                    .wait_seconds = wait,
                    .lease_seconds = lease};
  oee_poll h = {0};
  oee_error err = {0};
  assert_int_equal(oee_engine_poll(eng, &h, &r, answered, NULL, &err), OEE_EINVAL);
  if (strstr(err.message, field) == NULL) fail_msg("\"%s\" does not name %s", err.message, field);
}

static void test_bad_input(void **state) {
  (void)state;
  oee_engine *eng = make();
  char long_id[OEE_WORKER_ID_MAX + 2];
  memset(long_id, 'w', sizeof(long_id) - 1);
  long_id[sizeof(long_id) - 1] = '\0';
  expect_poll_refused(eng, "", "remote", 1, 0, 30, "worker_id");
  expect_poll_refused(eng, long_id, "remote", 1, 0, 30, "worker_id");
  expect_poll_refused(eng, "w", NULL, 1, 0, 30, "task_types");
  expect_poll_refused(eng, "w", "echo", 1, 0, 30, "task_types[0]");
  expect_poll_refused(eng, "w", "remote", 0, 0, 30, "max_tasks");
  expect_poll_refused(eng, "w", "remote", 101, 0, 30, "max_tasks");
  expect_poll_refused(eng, "w", "remote", 1, -1, 30, "wait_seconds");
  expect_poll_refused(eng, "w", "remote", 1, 60.5, 30, "wait_seconds");
  expect_poll_refused(eng, "w", "remote", 1, NAN, 30, "wait_seconds");
  expect_poll_refused(eng, "w", "remote", 1, 0, 0.5, "lease_seconds");
  expect_poll_refused(eng, "w", "remote", 1, 0, INFINITY, "lease_seconds");
  const char *ids[1001];
  for (int i = 0; i < 1001; i++) ids[i] = "01a23000-0000-7000-8000-000000000000";
  oee_lease_state st[1001];
  oee_error err = {0};
  assert_int_equal(oee_engine_heartbeat(eng, "w", NULL, ids, 0, NULL, st, &err), OEE_EINVAL);
  assert_non_null(strstr(err.message, "lease_ids"));
  assert_int_equal(oee_engine_heartbeat(eng, "w", NULL, ids, 1001, NULL, st, &err), OEE_EINVAL);
  const char *bad[] = {"not-a-uuid"};
  assert_int_equal(oee_engine_heartbeat(eng, "w", NULL, bad, 1, NULL, st, &err), OEE_EINVAL);
  assert_non_null(strstr(err.message, "lease_ids[0]"));
  double extend = 4000;
  assert_int_equal(oee_engine_heartbeat(eng, "w", NULL, ids, 1, &extend, st, &err), OEE_EINVAL);
  assert_non_null(strstr(err.message, "extend_seconds"));
  assert_int_equal(oee_engine_heartbeat(eng, "", NULL, ids, 1, NULL, st, &err), OEE_EINVAL);
  ended e;
  assert_int_equal(end_lease(eng, "nope", NULL, 1, 1, &e, &err), OEE_EINVAL);
  assert_non_null(strstr(err.message, "lease_id"));
  tu_engine_free(eng);
  /* A remote type that is a built-in one is refused at create. */
  const char *clash[] = {"echo"};
  oee_engine_config cfg = {.remote_types = clash, .n_remote_types = 1};
  oee_engine *bad_eng = NULL;
  assert_int_equal(oee_engine_open(&cfg, &bad_eng, &err), OEE_EINVAL);
  assert_non_null(strstr(err.message, "remote_types"));
  assert_null(bad_eng);
}

/* A stop answers waiting polls; leased tasks stay RUNNING and, with a
 * data_dir, the next engine finds them interrupted and runs them again. */
static void test_stop_and_restart(void **state) {
  (void)state;
  char dir[256];
  assert_int_equal(tu_temp_dir(dir, sizeof(dir), "lease"), 0);
  oee_engine *eng = make_full(dir, NULL, 0);
  char id[OEE_ID_LEN + 1];
  submit_named(eng, "remote", "across", 5, 2, 0, id);
  answer *a = take_one(eng, "w1", "remote", 30), *waiting = answer_new();
  assert_int_equal(poll_full(eng, waiting, "w2", "remote2", 1, WAIT_S, 30), 0);
  double t0 = tu_now();
  assert_int_equal(oee_engine_stop(eng, 100), 0); /* does not wait for the worker */
  assert_true(tu_now() - t0 < 5);
  assert_true(wait_answer(waiting, WAIT_S));
  assert_int_equal(waiting->rc, OEE_ESTOPPED);
  oee_engine_destroy(eng);
  eng = make_full(dir, NULL, 0);
  ended e;
  assert_int_equal(end_lease(eng, a->lease[0], "w1", 1, 1, &e, NULL), OEE_ENOENT);
  answer *b = answer_new(); /* it retries after its backoff */
  assert_int_equal(poll_full(eng, b, "w1", "remote", 1, WAIT_S, 30), 0);
  assert_true(wait_answer(b, WAIT_S));
  assert_int_equal(b->n, 1);
  assert_string_equal(b->task[0], id);
  assert_int_equal(b->attempt[0], 2); /* the interrupted attempt counted */
  assert_int_equal(end_lease(eng, b->lease[0], "w1", 1, 1, &e, NULL), 0);
  assert_int_equal(e.status, OEE_TASK_DONE);
  tu_engine_free(eng);
  answer_free(a);
  answer_free(b);
  answer_free(waiting);
  tu_remove_dir(dir);
}

/* With a data_dir a poll is answered once the RUNNING change is stored,
 * and a lease end once the final one is. */
static void test_durable_round_trip(void **state) {
  (void)state;
  char dir[256];
  assert_int_equal(tu_temp_dir(dir, sizeof(dir), "lease-db"), 0);
  oee_engine *eng = make_full(dir, NULL, 0);
  answer *a = answer_new();
  assert_int_equal(poll_full(eng, a, "w1", "remote", 2, WAIT_S, 30), 0);
  char id[OEE_ID_LEN + 1];
  submit_named(eng, "remote", "stored", 5, 1, 0, id);
  assert_true(wait_answer(a, WAIT_S));
  assert_int_equal(a->n, 1);
  ended e;
  assert_int_equal(end_lease(eng, a->lease[0], "w1", 1, 1, &e, NULL), 0);
  assert_int_equal(e.rc, 0);
  assert_int_equal(e.status, OEE_TASK_DONE);
  tu_engine_free(eng);
  eng = make_full(dir, NULL, 0);
  const oee_task_info *t = NULL;
  assert_int_equal(oee_engine_get(eng, id, &t), 0);
  assert_int_equal(t->status, OEE_TASK_DONE);
  assert_string_equal(t->remote_worker_id, "w1");
  oee_task_info_unref(t);
  tu_engine_free(eng);
  answer_free(a);
  tu_remove_dir(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_poll_takes_in_queue_order),
      cmocka_unit_test(test_waiting_polls_fifo),
      cmocka_unit_test(test_wait_ends_empty),
      cmocka_unit_test(test_complete_and_late_ends),
      cmocka_unit_test(test_fail_retries_then_errors),
      cmocka_unit_test(test_lease_expires_and_retries),
      cmocka_unit_test(test_heartbeats_keep_a_lease),
      cmocka_unit_test(test_timeout_applies),
      cmocka_unit_test(test_cancel_requested),
      cmocka_unit_test(test_poll_taken_back),
      cmocka_unit_test(test_undelivered_leases_expire),
      cmocka_unit_test(test_quota_on_a_remote_type),
      cmocka_unit_test(test_rate_on_a_remote_type),
      cmocka_unit_test(test_workers_listed),
      cmocka_unit_test(test_bad_input),
      cmocka_unit_test(test_stop_and_restart),
      cmocka_unit_test(test_durable_round_trip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
