/* test_graph.c - dependencies between tasks (depends_on) on the engine
 * alone, with the memory store and a durable one: order, propagation of
 * failures and cancellations down the graph, dependencies decided before
 * the task exists, RetryTask's re-check, restarts, and a random graph
 * checked task by task. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "tests/core/testutil.h"

#include "core/internal.h"
#include "core/oee.h"
#include "core/oee_exec.h"

#define WAIT_S 30.0

typedef char task_id[OEE_ID_LEN + 1];

/* ------------------------------------------------------ the executors */

/* "step": records the order tasks start and finish in and counts, at each
 * start, the dependencies that have not finished (early_starts); fails when context "fail" is set.
 * A task with context "gate" waits until the gate opens ("gatefail": then fails). */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static int gate_open;
#define LOG_MAX 8192
static char started[LOG_MAX][OEE_ID_LEN + 1], finished[LOG_MAX][OEE_ID_LEN + 1];
static size_t n_started, n_finished;
static int early_starts; /* tasks that started before a dependency was DONE */

/* 1 when `id` was recorded finished (log_lock held). */
static int finished_locked(const char *id) {
  for (size_t i = 0; i < n_finished; i++) {
    if (strcmp(finished[i], id) == 0) return 1;
  }
  return 0;
}

static void step(oee_job *job, void *user_data) {
  (void)user_data;
  const oee_task_info *t = oee_job_task(job);
  pthread_mutex_lock(&log_lock);
  for (size_t i = 0; i < t->depends_on_len; i++) early_starts += !finished_locked(t->depends_on[i]);
  if (n_started < LOG_MAX) memcpy(started[n_started++], t->id, sizeof(started[0]));
  if (oee_job_context(job, "gate") || oee_job_context(job, "gatefail")) {
    while (!gate_open) pthread_cond_wait(&gate_cv, &log_lock);
  }
  /* Recorded before the engine hears of it: nothing may start before. */
  if (n_finished < LOG_MAX) memcpy(finished[n_finished++], t->id, sizeof(finished[0]));
  pthread_mutex_unlock(&log_lock);
  if (oee_job_context(job, "fail") || oee_job_context(job, "gatefail")) {
    oee_job_fail(job, "step failed");
  } else {
    oee_job_succeed(job, "ok");
  }
}

static void gate_set(int open) {
  pthread_mutex_lock(&log_lock);
  gate_open = open;
  pthread_cond_broadcast(&gate_cv);
  pthread_mutex_unlock(&log_lock);
}

static void log_reset(void) {
  pthread_mutex_lock(&log_lock);
  n_started = n_finished = 0;
  early_starts = 0;
  gate_open = 0;
  pthread_mutex_unlock(&log_lock);
}

/* Where `id` started in the log, or -1. */
static long start_pos(const char *id) {
  pthread_mutex_lock(&log_lock);
  long pos = -1;
  for (size_t i = 0; i < n_started && pos < 0; i++) {
    if (strcmp(started[i], id) == 0) pos = (long)i;
  }
  pthread_mutex_unlock(&log_lock);
  return pos;
}

/* ---------------------------------------------------------- engines */

typedef struct fixture {
  oee_engine *eng;
  char dir[256]; /* durable ones */
  oee_engine_config cfg;
} fixture;

static void fixture_open(fixture *f) {
  oee_error err;
  if (oee_engine_open(&f->cfg, &f->eng, &err) != 0) fail_msg("open: %s", err.message);
  assert_int_equal(oee_engine_register(f->eng, "step", step, NULL), 0);
}

/* An engine of `workers`, durable when `durable`, not started. */
static void fixture_make(fixture *f, int workers, int durable, size_t finished_cache) {
  memset(f, 0, sizeof(*f));
  log_reset();
  f->cfg.num_workers = workers;
  if (durable) {
    assert_int_equal(tu_temp_dir(f->dir, sizeof(f->dir), "graph"), 0);
    f->cfg.data_dir = f->dir;
    f->cfg.sync_normal = 1;
    f->cfg.finished_cache = finished_cache;
  }
  fixture_open(f);
}

static void fixture_free(fixture *f) {
  gate_set(1);
  oee_engine_destroy(f->eng);
  if (f->dir[0]) assert_int_equal(tu_remove_dir(f->dir), 0);
}

/* Submits a "step" task depending on deps[0..n); returns the rc and the
 * task (a reference) in *out. */
static int submit_deps(oee_engine *eng, const char *name, const char *const *deps, size_t n,
                       const char *flag, int priority, const oee_task_info **out, oee_error *err) {
  oee_kv ctx[] = {{flag ? flag : "plain", "1"}};
  oee_submit req = {.name = name,
                    .task_type = "step",
                    .priority = priority,
                    .context = ctx,
                    .context_len = 1,
                    .depends_on = deps,
                    .depends_on_len = n};
  *out = NULL;
  return oee_engine_submit(eng, &req, out, err);
}

/* The same, expecting success; the id in `id`, the first status returned. */
static oee_task_status add(oee_engine *eng, const char *name, const char *const *deps, size_t n,
                           const char *flag, char *id) {
  const oee_task_info *t;
  oee_error err;
  if (submit_deps(eng, name, deps, n, flag, 5, &t, &err) != 0) {
    fail_msg("submit %s: %s", name, err.message);
  }
  memcpy(id, t->id, OEE_ID_LEN + 1);
  oee_task_status st = t->status;
  oee_task_info_unref(t);
  return st;
}

/* Waits for `id` to end; returns its final snapshot (caller unrefs). */
static const oee_task_info *ended(oee_engine *eng, const char *id) {
  const oee_task_info *t = tu_wait_terminal(eng, id, WAIT_S);
  if (t == NULL) fail_msg("task %s did not end", id);
  return t;
}

static void expect_end(oee_engine *eng, const char *id, oee_task_status st, const char *message) {
  const oee_task_info *t = ended(eng, id);
  if (t->status != st) {
    fail_msg("task %s ended %s (%s), expected %s", id, oee_task_status_name(t->status),
             t->error_message, oee_task_status_name(st));
  }
  if (message != NULL && strcmp(t->error_message, message) != 0) {
    fail_msg("task %s: \"%s\", expected \"%s\"", id, t->error_message, message);
  }
  oee_task_info_unref(t);
}

static void expect_status(oee_engine *eng, const char *id, oee_task_status st) {
  const oee_task_info *t;
  assert_int_equal(oee_engine_get(eng, id, &t), 0);
  if (t->status != st) {
    fail_msg("task %s is %s, expected %s", id, oee_task_status_name(t->status),
             oee_task_status_name(st));
  }
  oee_task_info_unref(t);
}

static char message_buf[128];
static const char *dep_message(const char *id, const char *how) {
  snprintf(message_buf, sizeof(message_buf), "dependency %s ended %s", id, how);
  return message_buf;
}

/* ----------------------------------------------------------- the tests */

/* A diamond with a tail: a task runs only after all of its dependencies,
 * whatever the priorities say, and waits SCHEDULED until then. */
static void order_scenario(int durable) {
  fixture f;
  fixture_make(&f, 2, durable, 0);
  task_id a, b, c, d;
  assert_int_equal(add(f.eng, "a", NULL, 0, "gate", a), OEE_TASK_QUEUED);
  const char *da[] = {a};
  assert_int_equal(add(f.eng, "b", da, 1, NULL, b), OEE_TASK_SCHEDULED);
  assert_int_equal(add(f.eng, "c", da, 1, NULL, c), OEE_TASK_SCHEDULED);
  const char *dbc[] = {b, c};
  assert_int_equal(add(f.eng, "d", dbc, 2, NULL, d), OEE_TASK_SCHEDULED);
  oee_status st;
  assert_int_equal(oee_engine_status(f.eng, &st), 0);
  assert_int_equal(st.by_status[OEE_TASK_SCHEDULED], 3);
  assert_int_equal(st.queue_size, 1);
  oee_status_free(&st);
  assert_int_equal(oee_engine_start(f.eng), 0);
  assert_true(tu_wait_status(f.eng, a, OEE_TASK_RUNNING, WAIT_S));
  usleep(50 * 1000);
  expect_status(f.eng, b, OEE_TASK_SCHEDULED); /* a still runs */
  const oee_task_info *t;
  assert_int_equal(oee_engine_get(f.eng, b, &t), 0);
  assert_int_equal(t->run_at_ns, 0); /* waits for a dependency, not a time */
  assert_int_equal(t->depends_on_len, 1);
  assert_string_equal(t->depends_on[0], a);
  oee_task_info_unref(t);
  gate_set(1);
  expect_end(f.eng, d, OEE_TASK_DONE, "");
  assert_true(start_pos(a) < start_pos(b) && start_pos(a) < start_pos(c));
  assert_true(start_pos(b) < start_pos(d) && start_pos(c) < start_pos(d));
  assert_int_equal(early_starts, 0);
  fixture_free(&f);
}

static void test_order(void **state) {
  (void)state;
  order_scenario(0);
}

static void test_order_durable(void **state) {
  (void)state;
  order_scenario(1);
}

/* A failure cancels exactly what is downstream of it, each with the
 * contract's message naming its own dependency; a sibling graph runs. */
static void failure_scenario(int durable) {
  fixture f;
  fixture_make(&f, 1, durable, 0);
  task_id a, b, c, e, g, h;
  add(f.eng, "a", NULL, 0, "fail", a);
  const char *da[] = {a};
  add(f.eng, "b", da, 1, NULL, b);
  const char *db[] = {b};
  add(f.eng, "c", db, 1, NULL, c);
  add(f.eng, "e", NULL, 0, NULL, e);
  const char *de[] = {e};
  add(f.eng, "g", de, 1, NULL, g);
  const char *dce[] = {e, c};
  add(f.eng, "h", dce, 2, NULL, h);
  assert_int_equal(oee_engine_start(f.eng), 0);
  expect_end(f.eng, a, OEE_TASK_ERROR, "step failed");
  expect_end(f.eng, b, OEE_TASK_CANCELLED, dep_message(a, "ERROR"));
  expect_end(f.eng, c, OEE_TASK_CANCELLED, dep_message(b, "CANCELLED"));
  expect_end(f.eng, h, OEE_TASK_CANCELLED, dep_message(c, "CANCELLED"));
  expect_end(f.eng, g, OEE_TASK_DONE, "");
  assert_true(start_pos(b) < 0 && start_pos(c) < 0 && start_pos(h) < 0);
  fixture_free(&f);
}

static void test_failure_propagates(void **state) {
  (void)state;
  failure_scenario(0);
}

static void test_failure_propagates_durable(void **state) {
  (void)state;
  failure_scenario(1);
}

/* Dependencies that ended before the submission: DONE is satisfied (the
 * task is QUEUED at once); ERROR creates the task and ends it CANCELLED at
 * once, which the reply shows, after a SCHEDULED event. */
static void decided_scenario(int durable) {
  fixture f;
  fixture_make(&f, 1, durable, 1); /* durable: ended ones leave memory */
  assert_int_equal(oee_engine_start(f.eng), 0);
  task_id ok, bad, filler;
  add(f.eng, "ok", NULL, 0, NULL, ok);
  add(f.eng, "bad", NULL, 0, "fail", bad);
  expect_end(f.eng, ok, OEE_TASK_DONE, "");
  expect_end(f.eng, bad, OEE_TASK_ERROR, NULL);
  for (int i = 0; i < 3; i++) { /* pushes both out of a durable cache */
    add(f.eng, "filler", NULL, 0, NULL, filler);
    expect_end(f.eng, filler, OEE_TASK_DONE, "");
  }
  oee_sub *sub;
  assert_int_equal(oee_engine_subscribe(f.eng, NULL, 64, 0, &sub), 0);
  task_id x, y;
  const char *dok[] = {ok};
  assert_int_equal(add(f.eng, "x", dok, 1, NULL, x), OEE_TASK_QUEUED);
  expect_end(f.eng, x, OEE_TASK_DONE, "");
  const char *dboth[] = {ok, bad};
  const oee_task_info *t;
  oee_error err;
  assert_int_equal(submit_deps(f.eng, "y", dboth, 2, NULL, 5, &t, &err), 0);
  memcpy(y, t->id, sizeof(y));
  assert_int_equal(t->status, OEE_TASK_CANCELLED);
  assert_string_equal(t->error_message, dep_message(bad, "ERROR"));
  oee_task_info_unref(t);
  /* Its events: SCHEDULED, then CANCELLED. */
  oee_task_status want[] = {OEE_TASK_SCHEDULED, OEE_TASK_CANCELLED};
  for (int i = 0; i < 2;) {
    const oee_task_info *ev;
    assert_int_equal(oee_sub_wait(sub, &ev, 10000), 0);
    if (strcmp(ev->id, y) == 0) assert_int_equal(ev->status, want[i++]);
    oee_task_info_unref(ev);
  }
  oee_sub_free(sub);
  fixture_free(&f);
}

static void test_decided_before_submit(void **state) {
  (void)state;
  decided_scenario(0);
}

static void test_decided_before_submit_durable(void **state) {
  (void)state;
  decided_scenario(1);
}

/* Refusals name the entry and create nothing. */
static void test_bad_dependencies(void **state) {
  (void)state;
  fixture f;
  memset(&f, 0, sizeof(f));
  f.cfg.num_workers = 1;
  f.cfg.max_dependencies = 2;
  fixture_open(&f);
  task_id a;
  add(f.eng, "a", NULL, 0, NULL, a);
  const char *unknown[] = {a, "0190a1b2-c3d4-7e5f-8a9b-000000000001"};
  const char *three[] = {a, a, a};
  const char *upper_a[] = {NULL};
  char upper[OEE_ID_LEN + 1];
  for (int i = 0; i <= OEE_ID_LEN; i++) upper[i] = (char)(a[i] >= 'a' ? a[i] - 32 : a[i]);
  upper_a[0] = upper;
  const oee_task_info *t;
  oee_error err;
  assert_int_equal(submit_deps(f.eng, "u", unknown, 2, NULL, 5, &t, &err), OEE_EINVAL);
  assert_non_null(strstr(err.message, "depends_on[1]: task 0190a1b2-c3d4-7e5f-8a9b-000000000001"));
  assert_int_equal(submit_deps(f.eng, "t", three, 3, NULL, 5, &t, &err), OEE_EINVAL);
  assert_non_null(strstr(err.message, "depends_on has 3 ids; at most 2"));
  oee_status st;
  assert_int_equal(oee_engine_status(f.eng, &st), 0);
  assert_int_equal(st.total_tasks, 1);
  oee_status_free(&st);
  /* An id in upper case names the same task (stored in lower case). */
  assert_int_equal(submit_deps(f.eng, "up", upper_a, 1, NULL, 5, &t, &err), 0);
  assert_string_equal(t->depends_on[0], a);
  oee_task_info_unref(t);
  fixture_free(&f);
}

/* Cancelling a waiting task cancels its dependents; its own dependency
 * finishing later changes nothing of it. */
static void cancel_scenario(int durable) {
  fixture f;
  fixture_make(&f, 1, durable, 0);
  assert_int_equal(oee_engine_start(f.eng), 0);
  task_id a, b, c;
  add(f.eng, "a", NULL, 0, "gate", a);
  const char *da[] = {a};
  add(f.eng, "b", da, 1, NULL, b);
  const char *db[] = {b};
  add(f.eng, "c", db, 1, NULL, c);
  assert_true(tu_wait_status(f.eng, a, OEE_TASK_RUNNING, WAIT_S));
  int did = 0;
  const oee_task_info *t;
  assert_int_equal(oee_engine_cancel(f.eng, b, &did, &t), 0);
  assert_true(did);
  assert_int_equal(t->status, OEE_TASK_CANCELLED);
  oee_task_info_unref(t);
  expect_end(f.eng, c, OEE_TASK_CANCELLED, dep_message(b, "CANCELLED"));
  gate_set(1);
  expect_end(f.eng, a, OEE_TASK_DONE, "");
  usleep(50 * 1000);
  expect_status(f.eng, b, OEE_TASK_CANCELLED);
  assert_true(start_pos(b) < 0);
  fixture_free(&f);
}

static void test_cancel_waiting(void **state) {
  (void)state;
  cancel_scenario(0);
}

static void test_cancel_waiting_durable(void **state) {
  (void)state;
  cancel_scenario(1);
}

/* RetryTask checks the dependencies again: still ERROR ends the task
 * CANCELLED again at once; once the dependency is retried and waits, the
 * retried dependent waits for it and runs after it. */
static void retry_scenario(int durable) {
  fixture f;
  fixture_make(&f, 1, durable, 0);
  assert_int_equal(oee_engine_start(f.eng), 0);
  /* a fails while its gate is closed and "fail" is set: a sleep-free way
   * to fail once is to depend on a failing task, so use two tasks. */
  task_id bad, a, b;
  add(f.eng, "bad", NULL, 0, "fail", bad);
  const char *dbad[] = {bad};
  add(f.eng, "a", dbad, 1, NULL, a);
  const char *da[] = {a};
  add(f.eng, "b", da, 1, NULL, b);
  expect_end(f.eng, b, OEE_TASK_CANCELLED, dep_message(a, "CANCELLED"));
  const oee_task_info *t;
  oee_error err;
  assert_int_equal(oee_engine_retry(f.eng, b, &t, &err), 0);
  assert_int_equal(t->status, OEE_TASK_CANCELLED); /* a is still CANCELLED */
  assert_string_equal(t->error_message, dep_message(a, "CANCELLED"));
  oee_task_info_unref(t);
  /* a again (its dependency still failed: cancelled again, too). */
  assert_int_equal(oee_engine_retry(f.eng, a, &t, &err), 0);
  assert_int_equal(t->status, OEE_TASK_CANCELLED);
  oee_task_info_unref(t);
  fixture_free(&f);

  /* A dependency retried and waiting: the dependent retried waits too. */
  fixture_make(&f, 1, durable, 0);
  assert_int_equal(oee_engine_start(f.eng), 0);
  task_id gate, x, y;
  add(f.eng, "gate", NULL, 0, "gate", gate);
  const char *dg[] = {gate};
  add(f.eng, "x", dg, 1, NULL, x);
  const char *dx[] = {x};
  add(f.eng, "y", dx, 1, NULL, y);
  int did;
  assert_int_equal(oee_engine_cancel(f.eng, x, &did, &t), 0);
  oee_task_info_unref(t);
  expect_end(f.eng, y, OEE_TASK_CANCELLED, dep_message(x, "CANCELLED"));
  assert_int_equal(oee_engine_retry(f.eng, x, &t, &err), 0);
  assert_int_equal(t->status, OEE_TASK_SCHEDULED); /* gate still runs */
  oee_task_info_unref(t);
  assert_int_equal(oee_engine_retry(f.eng, y, &t, &err), 0);
  assert_int_equal(t->status, OEE_TASK_SCHEDULED);
  oee_task_info_unref(t);
  gate_set(1);
  expect_end(f.eng, y, OEE_TASK_DONE, "");
  assert_true(start_pos(gate) < start_pos(x) && start_pos(x) < start_pos(y));
  assert_int_equal(early_starts, 0);
  fixture_free(&f);
}

static void test_retry_rechecks(void **state) {
  (void)state;
  retry_scenario(0);
}

static void test_retry_rechecks_durable(void **state) {
  (void)state;
  retry_scenario(1);
}

/* A dependency that ends while its dependent's row is not stored yet (the
 * commits held): the dependent is decided once stored, and a failure is
 * what its acknowledgement shows. */
typedef struct answer {
  pthread_mutex_t lock;
  pthread_cond_t cv;
  int done, rc;
  const oee_task_info *task;
} answer;

static void answered(void *arg, int rc, const oee_task_info *t, const oee_error *err) {
  (void)err;
  answer *a = arg;
  pthread_mutex_lock(&a->lock);
  a->rc = rc;
  a->task = t ? oee_task_info_ref(t) : NULL;
  a->done = 1;
  pthread_cond_broadcast(&a->cv);
  pthread_mutex_unlock(&a->lock);
}

static const oee_task_info *answer_wait(answer *a) {
  pthread_mutex_lock(&a->lock);
  while (!a->done) pthread_cond_wait(&a->cv, &a->lock);
  pthread_mutex_unlock(&a->lock);
  assert_int_equal(a->rc, 0);
  return a->task;
}

static void pending_case(const char *flag, oee_task_status dependent_end) {
  fixture f;
  fixture_make(&f, 1, 1, 0);
  assert_int_equal(oee_engine_start(f.eng), 0);
  task_id a;
  add(f.eng, "a", NULL, 0, flag, a);
  assert_true(tu_wait_status(f.eng, a, OEE_TASK_RUNNING, WAIT_S));
  oee__engine_pause_commits(f.eng, 1);
  answer ans = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, NULL};
  const char *da[] = {a};
  oee_kv ctx[] = {{"plain", "1"}};
  oee_submit req = {.name = "b",
                    .task_type = "step",
                    .priority = 5,
                    .context = ctx,
                    .context_len = 1,
                    .depends_on = da,
                    .depends_on_len = 1};
  oee_error err;
  assert_int_equal(oee_engine_submit_async(f.eng, &req, answered, &ans, &err), 0);
  gate_set(1); /* a ends while b's row waits */
  usleep(100 * 1000);
  oee__engine_pause_commits(f.eng, 0);
  const oee_task_info *b = answer_wait(&ans);
  if (dependent_end == OEE_TASK_CANCELLED) {
    assert_int_equal(b->status, OEE_TASK_CANCELLED);
    assert_string_equal(b->error_message, dep_message(a, "ERROR"));
  } else {
    assert_int_equal(b->status, OEE_TASK_SCHEDULED);
  }
  expect_end(f.eng, b->id, dependent_end, NULL);
  oee_task_info_unref(b);
  fixture_free(&f);
}

static void test_decided_while_pending(void **state) {
  (void)state;
  pending_case("gate", OEE_TASK_DONE);
  pending_case("gatefail", OEE_TASK_CANCELLED);
}

/* Waiting graphs survive a restart: still waiting, still decided by what
 * their dependencies do, including dependencies only on disk. */
static void test_graph_survives_restart(void **state) {
  (void)state;
  fixture f;
  fixture_make(&f, 1, 1, 1);
  assert_int_equal(oee_engine_start(f.eng), 0);
  task_id done, a, b, c, d, filler;
  add(f.eng, "done", NULL, 0, NULL, done);
  expect_end(f.eng, done, OEE_TASK_DONE, "");
  oee_kv ctx[] = {{"plain", "1"}};
  oee_submit later = {.name = "a",
                      .task_type = "step",
                      .priority = 5,
                      .context = ctx,
                      .context_len = 1,
                      .has_run_at = 1,
                      .run_at_ns = oee_now_ns() + 3600LL * 1000000000LL};
  const oee_task_info *t;
  oee_error err;
  assert_int_equal(oee_engine_submit(f.eng, &later, &t, &err), 0);
  memcpy(a, t->id, sizeof(a));
  oee_task_info_unref(t);
  const char *da[] = {a, done};
  add(f.eng, "b", da, 2, NULL, b);
  const char *db[] = {b};
  add(f.eng, "c", db, 1, NULL, c);
  const char *dd[] = {done};
  for (int i = 0; i < 3; i++) { /* done leaves the cache */
    add(f.eng, "filler", NULL, 0, NULL, filler);
    expect_end(f.eng, filler, OEE_TASK_DONE, "");
  }
  oee_engine_destroy(f.eng);
  fixture_open(&f);
  assert_int_equal(oee_engine_start(f.eng), 0);
  usleep(50 * 1000);
  expect_status(f.eng, b, OEE_TASK_SCHEDULED);
  expect_status(f.eng, c, OEE_TASK_SCHEDULED);
  assert_int_equal(add(f.eng, "d", dd, 1, NULL, d), OEE_TASK_QUEUED); /* done: on disk */
  expect_end(f.eng, d, OEE_TASK_DONE, "");
  int did;
  assert_int_equal(oee_engine_cancel(f.eng, a, &did, &t), 0);
  oee_task_info_unref(t);
  expect_end(f.eng, b, OEE_TASK_CANCELLED, dep_message(a, "CANCELLED"));
  expect_end(f.eng, c, OEE_TASK_CANCELLED, dep_message(b, "CANCELLED"));
  fixture_free(&f);
}

/* A random graph: every task starts after all of its dependencies, and
 * exactly the tasks downstream of a failure end CANCELLED. */
#define RANDOM_TASKS 3000

static void random_scenario(int durable) {
  fixture f;
  fixture_make(&f, 4, durable, 256);
  assert_int_equal(oee_engine_start(f.eng), 0);
  static task_id ids[RANDOM_TASKS];
  static int fails[RANDOM_TASKS], ndeps[RANDOM_TASKS], deps[RANDOM_TASKS][3];
  unsigned seed = 12345;
  for (int i = 0; i < RANDOM_TASKS; i++) {
    fails[i] = rand_r(&seed) % 100 < 3;
    ndeps[i] = rand_r(&seed) % 4;
    if (ndeps[i] > i) ndeps[i] = i; /* distinct ones only */
    const char *d[3];
    for (int k = 0; k < ndeps[i]; k++) {
      int j;
      do {
        j = i - 1 - rand_r(&seed) % (i < 50 ? i : 50);
      } while ((k > 0 && j == deps[i][0]) || (k > 1 && j == deps[i][1]));
      deps[i][k] = j;
      d[k] = ids[j];
    }
    add(f.eng, "r", d, (size_t)ndeps[i], fails[i] ? "fail" : NULL, ids[i]);
  }
  /* What each must end as: ERROR if it failed itself, CANCELLED if a
   * dependency did not end DONE, else DONE. */
  static oee_task_status want[RANDOM_TASKS];
  for (int i = 0; i < RANDOM_TASKS; i++) {
    want[i] = fails[i] ? OEE_TASK_ERROR : OEE_TASK_DONE;
    for (int k = 0; k < ndeps[i]; k++) {
      if (want[deps[i][k]] != OEE_TASK_DONE) want[i] = OEE_TASK_CANCELLED;
    }
  }
  for (int i = 0; i < RANDOM_TASKS; i++) {
    const oee_task_info *t = ended(f.eng, ids[i]);
    if (t->status != want[i]) {
      fail_msg("task %d ended %s (%s), expected %s", i, oee_task_status_name(t->status),
               t->error_message, oee_task_status_name(want[i]));
    }
    oee_task_info_unref(t);
  }
  assert_int_equal(early_starts, 0);
  fixture_free(&f);
}

static void test_random_graph(void **state) {
  (void)state;
  random_scenario(0);
}

static void test_random_graph_durable(void **state) {
  (void)state;
  random_scenario(1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_order),
      cmocka_unit_test(test_order_durable),
      cmocka_unit_test(test_failure_propagates),
      cmocka_unit_test(test_failure_propagates_durable),
      cmocka_unit_test(test_decided_before_submit),
      cmocka_unit_test(test_decided_before_submit_durable),
      cmocka_unit_test(test_bad_dependencies),
      cmocka_unit_test(test_cancel_waiting),
      cmocka_unit_test(test_cancel_waiting_durable),
      cmocka_unit_test(test_retry_rechecks),
      cmocka_unit_test(test_retry_rechecks_durable),
      cmocka_unit_test(test_decided_while_pending),
      cmocka_unit_test(test_graph_survives_restart),
      cmocka_unit_test(test_random_graph),
      cmocka_unit_test(test_random_graph_durable),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
