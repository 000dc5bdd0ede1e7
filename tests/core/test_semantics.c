/* test_semantics.c - attempts, retries with backoff, permanent failures,
 * timeouts, delayed tasks (run_at), RetryTask, cancelling SCHEDULED tasks,
 * idempotency keys and the refusals of bad task-semantics fields, on the
 * engine alone (the memory store and a durable one). */
#include <math.h>
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

#define WAIT_MS 30000

/* Submits `req` (filled by the caller); returns the id in `id`. */
static void submit(oee_engine *eng, oee_submit *req, char *id) {
  const oee_task_info *t;
  oee_error err;
  if (oee_engine_submit(eng, req, &t, &err) != 0) fail_msg("submit: %s", err.message);
  memcpy(id, t->id, OEE_ID_LEN + 1);
  oee_task_info_unref(t);
}

/* The next event of task `id` (others are skipped); caller unrefs. */
static const oee_task_info *next_of(oee_sub *sub, const char *id) {
  for (;;) {
    const oee_task_info *ev;
    int rc = oee_sub_wait(sub, &ev, WAIT_MS);
    if (rc != 0) fail_msg("no event: %s", oee_strerror(rc));
    if (strcmp(ev->id, id) == 0) return ev;
    oee_task_info_unref(ev);
  }
}

/* Expects the next event of `id` to have status `st` (and attempt, >= 0). */
static const oee_task_info *expect(oee_sub *sub, const char *id, oee_task_status st, int attempt) {
  const oee_task_info *ev = next_of(sub, id);
  if (ev->status != st) {
    fail_msg("expected %s, got %s (%s)", oee_task_status_name(st), oee_task_status_name(ev->status),
             ev->error_message);
  }
  if (attempt >= 0) assert_int_equal(ev->attempt, attempt);
  return ev;
}

static oee_sub *watch_all(oee_engine *eng) {
  oee_sub *sub;
  assert_int_equal(oee_engine_subscribe(eng, NULL, 256, 0, &sub), 0);
  return sub;
}

/* A failing task with three attempts: RUNNING, SCHEDULED, QUEUED, ... in
 * order, each wait within the backoff formula's bounds, ERROR at last. */
static void test_retries_with_backoff(void **state) {
  (void)state;
  oee_engine *eng = tu_engine(1, NULL, NULL);
  oee_sub *sub = watch_all(eng);
  oee_kv ctx[] = {{"message", "boom"}};
  oee_submit req = {.name = "r",
                    .task_type = "fail",
                    .priority = 5,
                    .context = ctx,
                    .context_len = 1,
                    .max_attempts = 3,
                    .has_backoff = 1,
                    .backoff_seconds = 0.02,
                    .has_max_backoff = 1,
                    .max_backoff_seconds = 0.03};
  char id[OEE_ID_LEN + 1];
  submit(eng, &req, id);
  oee_task_info_unref(expect(sub, id, OEE_TASK_QUEUED, 0));
  for (int attempt = 1; attempt <= 3; attempt++) {
    const oee_task_info *run = expect(sub, id, OEE_TASK_RUNNING, attempt);
    assert_int_equal(run->max_attempts, 3);
    oee_task_info_unref(run);
    if (attempt == 3) break;
    const oee_task_info *sch = expect(sub, id, OEE_TASK_SCHEDULED, attempt);
    assert_string_equal(sch->error_message, "boom");
    assert_int_equal(sch->completed_at_ns, 0);
    /* Retry n waits min(max, backoff * 2^(n-1)) x [0.5, 1.0]. */
    double want = fmin(0.03, 0.02 * ldexp(1.0, attempt - 1));
    double waited = (double)(sch->run_at_ns - sch->started_at_ns) / 1e9;
    assert_true(waited >= 0.5 * want - 0.005);
    assert_true(sch->run_at_ns > 0);
    oee_task_info_unref(sch);
    const oee_task_info *q = expect(sub, id, OEE_TASK_QUEUED, attempt);
    assert_true(oee_now_ns() >= q->run_at_ns); /* never early */
    oee_task_info_unref(q);
  }
  const oee_task_info *end = expect(sub, id, OEE_TASK_ERROR, 3);
  assert_string_equal(end->error_message, "boom");
  oee_task_info_unref(end);
  oee_sub_free(sub);
  tu_engine_free(eng);
}

/* context["permanent"] = "true": no retry whatever attempts remain. */
static void test_permanent_failure_not_retried(void **state) {
  (void)state;
  oee_engine *eng = tu_engine(1, NULL, NULL);
  oee_sub *sub = watch_all(eng);
  oee_kv ctx[] = {{"message", "never"}, {"permanent", "true"}};
  oee_submit req = {.name = "p",
                    .task_type = "fail",
                    .priority = 5,
                    .context = ctx,
                    .context_len = 2,
                    .max_attempts = 5,
                    .has_backoff = 1,
                    .backoff_seconds = 0};
  char id[OEE_ID_LEN + 1];
  submit(eng, &req, id);
  oee_task_info_unref(expect(sub, id, OEE_TASK_QUEUED, 0));
  oee_task_info_unref(expect(sub, id, OEE_TASK_RUNNING, 1));
  oee_task_info_unref(expect(sub, id, OEE_TASK_ERROR, 1));
  oee_sub_free(sub);
  tu_engine_free(eng);
}

/* An attempt past timeout_seconds is cancelled and fails; it is retried. */
static void test_timeout_fails_the_attempt(void **state) {
  (void)state;
  oee_engine *eng = tu_engine(1, NULL, NULL);
  oee_sub *sub = watch_all(eng);
  oee_kv ctx[] = {{"seconds", "30"}};
  oee_submit req = {.name = "t",
                    .task_type = "sleep",
                    .priority = 5,
                    .context = ctx,
                    .context_len = 1,
                    .max_attempts = 2,
                    .has_backoff = 1,
                    .backoff_seconds = 0,
                    .timeout_seconds = 0.05};
  char id[OEE_ID_LEN + 1];
  submit(eng, &req, id);
  oee_task_info_unref(expect(sub, id, OEE_TASK_QUEUED, 0));
  oee_task_info_unref(expect(sub, id, OEE_TASK_RUNNING, 1));
  const oee_task_info *s = expect(sub, id, OEE_TASK_SCHEDULED, 1);
  assert_string_equal(s->error_message, "timed out after 0.05 s");
  oee_task_info_unref(s);
  oee_task_info_unref(expect(sub, id, OEE_TASK_QUEUED, 1));
  oee_task_info_unref(expect(sub, id, OEE_TASK_RUNNING, 2));
  const oee_task_info *e = expect(sub, id, OEE_TASK_ERROR, 2);
  assert_string_equal(e->error_message, "timed out after 0.05 s");
  oee_task_info_unref(e);
  oee_sub_free(sub);
  tu_engine_free(eng);
}

/* run_at in the future: SCHEDULED at once, started not before its time;
 * cancelling a SCHEDULED task ends it at once and it never runs. */
static void test_run_at_and_cancel_scheduled(void **state) {
  (void)state;
  oee_engine *eng = tu_engine(1, NULL, NULL);
  oee_sub *sub = watch_all(eng);
  oee_kv ctx[] = {{"message", "later"}};
  int64_t at = oee_now_ns() + 150 * 1000000LL;
  oee_submit req = {.name = "d",
                    .task_type = "echo",
                    .priority = 5,
                    .context = ctx,
                    .context_len = 1,
                    .has_run_at = 1,
                    .run_at_ns = at};
  char id[OEE_ID_LEN + 1], far[OEE_ID_LEN + 1];
  submit(eng, &req, id);
  req.run_at_ns = oee_now_ns() + 3600 * 1000000000LL; /* an hour away */
  submit(eng, &req, far);
  const oee_task_info *s = expect(sub, id, OEE_TASK_SCHEDULED, 0);
  assert_int_equal(s->run_at_ns, at);
  oee_task_info_unref(s);
  oee_status st;
  assert_int_equal(oee_engine_status(eng, &st), 0);
  assert_int_equal(st.by_status[OEE_TASK_SCHEDULED], 2);
  assert_int_equal(st.queue_size, 0);
  oee_status_free(&st);
  oee_task_info_unref(expect(sub, id, OEE_TASK_QUEUED, 0));
  const oee_task_info *r = expect(sub, id, OEE_TASK_RUNNING, 1);
  assert_true(r->started_at_ns >= at);
  oee_task_info_unref(r);
  oee_task_info_unref(expect(sub, id, OEE_TASK_DONE, 1));
  int cancelled = 0;
  const oee_task_info *c;
  assert_int_equal(oee_engine_cancel(eng, far, &cancelled, &c), 0);
  assert_int_equal(cancelled, 1);
  assert_int_equal(c->status, OEE_TASK_CANCELLED);
  assert_string_equal(c->error_message, "cancelled while scheduled");
  assert_int_equal(c->attempt, 0);
  oee_task_info_unref(c);
  oee_sub_free(sub);
  tu_engine_free(eng);
}

/* RetryTask queues an ERROR or CANCELLED task again with attempt 0; any
 * other status is refused and nothing changes. */
static void retry_scenario(oee_engine *eng) {
  oee_sub *sub = watch_all(eng);
  oee_kv ctx[] = {{"message", "again"}};
  oee_submit req = {
      .name = "k", .task_type = "fail", .priority = 5, .context = ctx, .context_len = 1};
  char id[OEE_ID_LEN + 1], done[OEE_ID_LEN + 1];
  submit(eng, &req, id);
  oee_task_info_unref(expect(sub, id, OEE_TASK_QUEUED, 0));
  oee_task_info_unref(expect(sub, id, OEE_TASK_RUNNING, 1));
  oee_task_info_unref(expect(sub, id, OEE_TASK_ERROR, 1));
  const oee_task_info *t;
  oee_error err;
  assert_int_equal(oee_engine_retry(eng, id, &t, &err), 0);
  assert_int_equal(t->status, OEE_TASK_QUEUED);
  assert_int_equal(t->attempt, 0);
  assert_int_equal(t->completed_at_ns, 0);
  oee_task_info_unref(t);
  oee_task_info_unref(expect(sub, id, OEE_TASK_QUEUED, 0));
  oee_task_info_unref(expect(sub, id, OEE_TASK_RUNNING, 1));
  oee_task_info_unref(expect(sub, id, OEE_TASK_ERROR, 1));
  req.task_type = "echo";
  submit(eng, &req, done);
  oee_task_info_unref(expect(sub, done, OEE_TASK_QUEUED, 0));
  oee_task_info_unref(expect(sub, done, OEE_TASK_RUNNING, 1));
  oee_task_info_unref(expect(sub, done, OEE_TASK_DONE, 1));
  assert_int_equal(oee_engine_retry(eng, done, NULL, &err), OEE_ESTATE);
  assert_non_null(strstr(err.message, "is done: only ERROR or CANCELLED"));
  assert_int_equal(oee_engine_retry(eng, "0190a1b2-c3d4-7e5f-8a9b-000000000001", NULL, &err),
                   OEE_ENOENT);
  assert_int_equal(oee_engine_retry(eng, "not-a-uuid", NULL, &err), OEE_EINVAL);
  const oee_task_info *ev;
  assert_int_equal(oee_sub_wait(sub, &ev, 50), OEE_ETIMEDOUT); /* refusals changed nothing */
  oee_sub_free(sub);
}

static void test_retry_task(void **state) {
  (void)state;
  oee_engine *eng = tu_engine(1, NULL, NULL);
  retry_scenario(eng);
  tu_engine_free(eng);
}

/* The same on a durable engine, whose answer comes once stored, and a
 * retry of a task that left memory (a cache of one finished task). */
static void test_retry_task_durable(void **state) {
  (void)state;
  char dir[256];
  assert_int_equal(tu_temp_dir(dir, sizeof(dir), "semantics"), 0);
  oee_engine_config cfg = {
      .num_workers = 1, .data_dir = dir, .sync_normal = 1, .finished_cache = 1};
  oee_engine *eng;
  oee_error err;
  if (oee_engine_open(&cfg, &eng, &err) != 0) fail_msg("open: %s", err.message);
  oee_engine_start(eng);
  retry_scenario(eng);
  oee_engine_destroy(eng);
  assert_int_equal(tu_remove_dir(dir), 0);
}

/* SCHEDULED tasks (a delayed one, one waiting for its retry) are stored
 * with their attempt, run_at and settings and wait again after a restart. */
static void test_scheduled_survive_restart(void **state) {
  (void)state;
  char dir[256];
  assert_int_equal(tu_temp_dir(dir, sizeof(dir), "semantics"), 0);
  oee_engine_config cfg = {.num_workers = 1, .data_dir = dir, .sync_normal = 1};
  oee_engine *eng;
  oee_error err;
  if (oee_engine_open(&cfg, &eng, &err) != 0) fail_msg("open: %s", err.message);
  oee_sub *sub = watch_all(eng);
  oee_engine_start(eng);
  int64_t hour = 3600LL * 1000000000LL, at = oee_now_ns() + hour;
  oee_kv ctx[] = {{"message", "boom"}};
  oee_submit later = {.name = "later",
                      .task_type = "echo",
                      .priority = 5,
                      .context = ctx,
                      .context_len = 1,
                      .has_run_at = 1,
                      .run_at_ns = at,
                      .timeout_seconds = 2.5};
  oee_submit retrying = {.name = "retrying",
                         .task_type = "fail",
                         .priority = 5,
                         .context = ctx,
                         .context_len = 1,
                         .max_attempts = 4,
                         .has_backoff = 1,
                         .backoff_seconds = 7200,
                         .has_max_backoff = 1,
                         .max_backoff_seconds = 7200};
  char a[OEE_ID_LEN + 1], b[OEE_ID_LEN + 1];
  submit(eng, &later, a);
  submit(eng, &retrying, b);
  oee_task_info_unref(expect(sub, b, OEE_TASK_QUEUED, 0));
  oee_task_info_unref(expect(sub, b, OEE_TASK_RUNNING, 1));
  oee_task_info_unref(expect(sub, b, OEE_TASK_SCHEDULED, 1)); /* an hour or two away */
  oee_sub_free(sub);
  oee_engine_destroy(eng);

  if (oee_engine_open(&cfg, &eng, &err) != 0) fail_msg("reopen: %s", err.message);
  oee_engine_start(eng);
  oee_recovery rec;
  oee_engine_recovery(eng, &rec);
  assert_int_equal(rec.queued, 2); /* back where they wait */
  assert_int_equal(rec.interrupted, 0);
  const oee_task_info *t;
  assert_int_equal(oee_engine_get(eng, a, &t), 0);
  assert_int_equal(t->status, OEE_TASK_SCHEDULED);
  assert_int_equal(t->run_at_ns, at);
  assert_true(t->timeout_seconds == 2.5);
  oee_task_info_unref(t);
  assert_int_equal(oee_engine_get(eng, b, &t), 0);
  assert_int_equal(t->status, OEE_TASK_SCHEDULED);
  assert_int_equal(t->attempt, 1);
  assert_int_equal(t->max_attempts, 4);
  assert_true(t->backoff_seconds == 7200 && t->max_backoff_seconds == 7200);
  assert_string_equal(t->error_message, "boom");
  assert_true(t->run_at_ns > oee_now_ns() + hour / 2);
  oee_task_info_unref(t);
  oee_status st;
  assert_int_equal(oee_engine_status(eng, &st), 0);
  assert_int_equal(st.by_status[OEE_TASK_SCHEDULED], 2);
  oee_status_free(&st);
  /* Still cancellable where they wait. */
  int did = 0;
  assert_int_equal(oee_engine_cancel(eng, b, &did, &t), 0);
  assert_int_equal(t->status, OEE_TASK_CANCELLED);
  oee_task_info_unref(t);
  oee_engine_destroy(eng);
  assert_int_equal(tu_remove_dir(dir), 0);
}

/* Submits with `key`; returns the rc (0 or OEE_DUPLICATE) and the id. */
static int submit_keyed(oee_engine *eng, const char *key, const char *name, char *id) {
  oee_submit req = {.name = name, .task_type = "echo", .priority = 5, .idempotency_key = key};
  const oee_task_info *t = NULL;
  oee_error err;
  int rc = oee_engine_submit(eng, &req, &t, &err);
  if (rc != 0 && rc != OEE_DUPLICATE) fail_msg("submit: %s", err.message);
  memcpy(id, t->id, OEE_ID_LEN + 1);
  assert_string_equal(t->idempotency_key, key);
  oee_task_info_unref(t);
  return rc;
}

static uint64_t total(oee_engine *eng) {
  oee_status st;
  assert_int_equal(oee_engine_status(eng, &st), 0);
  uint64_t n = st.total_tasks;
  oee_status_free(&st);
  return n;
}

/* A key used within the window answers with the task that used it and
 * creates nothing; another key, or the same one after the window, does. */
static void test_idempotency_keys(void **state) {
  (void)state;
  oee_engine_config cfg = {.num_workers = 1, .idempotency_window_seconds = 1};
  oee_engine *eng;
  assert_int_equal(oee_engine_open(&cfg, &eng, NULL), 0);
  oee_engine_start(eng);
  char a[OEE_ID_LEN + 1], b[OEE_ID_LEN + 1], c[OEE_ID_LEN + 1];
  assert_int_equal(submit_keyed(eng, "order-17", "first", a), 0);
  assert_int_equal(submit_keyed(eng, "order-17", "again", b), OEE_DUPLICATE);
  assert_string_equal(a, b);
  assert_int_equal(submit_keyed(eng, "order-18", "other", c), 0);
  assert_string_not_equal(a, c);
  assert_int_equal(total(eng), 2);
  usleep(1200 * 1000); /* the 1 s window passes */
  assert_int_equal(submit_keyed(eng, "order-17", "later", b), 0);
  assert_string_not_equal(a, b);
  assert_int_equal(total(eng), 3);
  tu_engine_free(eng);
}

typedef struct acks {
  pthread_mutex_t lock;
  pthread_cond_t cv;
  int n, rc[2];
  char id[2][OEE_ID_LEN + 1];
} acks;

static void on_keyed(void *arg, int rc, const oee_task_info *t, const oee_error *err) {
  (void)err;
  acks *k = arg;
  pthread_mutex_lock(&k->lock);
  if (k->n < 2) {
    k->rc[k->n] = rc;
    snprintf(k->id[k->n], sizeof(k->id[0]), "%s", t ? t->id : "");
  }
  k->n++;
  pthread_cond_broadcast(&k->cv);
  pthread_mutex_unlock(&k->lock);
}

/* A key whose task was deleted (ClearCompletedTasks) is free again, on
 * both stores (fuzz_submit_task found the durable one answering NOT_FOUND). */
static void key_freed_scenario(oee_engine *eng) {
  oee_sub *sub = watch_all(eng);
  char a[OEE_ID_LEN + 1], b[OEE_ID_LEN + 1];
  assert_int_equal(submit_keyed(eng, "job-9", "first", a), 0);
  oee_task_info_unref(expect(sub, a, OEE_TASK_QUEUED, 0));
  oee_task_info_unref(expect(sub, a, OEE_TASK_RUNNING, 1));
  oee_task_info_unref(expect(sub, a, OEE_TASK_DONE, 1));
  assert_int_equal(oee_engine_clear_completed(eng, 0), 1);
  assert_int_equal(submit_keyed(eng, "job-9", "second", b), 0);
  assert_string_not_equal(a, b);
  oee_sub_free(sub);
}

static void test_key_free_after_clear(void **state) {
  (void)state;
  oee_engine *eng = tu_engine(1, NULL, NULL);
  key_freed_scenario(eng);
  tu_engine_free(eng);
  char dir[256];
  assert_int_equal(tu_temp_dir(dir, sizeof(dir), "keys"), 0);
  oee_engine_config cfg = {
      .num_workers = 1, .data_dir = dir, .sync_normal = 1, .finished_cache = 1};
  oee_error err;
  if (oee_engine_open(&cfg, &eng, &err) != 0) fail_msg("open: %s", err.message);
  oee_engine_start(eng);
  key_freed_scenario(eng);
  oee_engine_destroy(eng);
  assert_int_equal(tu_remove_dir(dir), 0);
}

/* Durable: a repeat of a task not stored yet is answered once it is; a
 * key holds across a restart (found in the database). */
static void test_idempotency_durable(void **state) {
  (void)state;
  char dir[256];
  assert_int_equal(tu_temp_dir(dir, sizeof(dir), "keys"), 0);
  oee_engine_config cfg = {.num_workers = 1, .data_dir = dir, .sync_normal = 1};
  oee_engine *eng;
  oee_error err;
  if (oee_engine_open(&cfg, &eng, &err) != 0) fail_msg("open: %s", err.message);
  acks k = {.n = 0};
  pthread_mutex_init(&k.lock, NULL);
  pthread_cond_init(&k.cv, NULL);
  oee__engine_pause_commits(eng, 1);
  oee_submit req = {.name = "p", .task_type = "echo", .priority = 5, .idempotency_key = "pay-1"};
  assert_int_equal(oee_engine_submit_async(eng, &req, on_keyed, &k, &err), 0);
  assert_int_equal(oee_engine_submit_async(eng, &req, on_keyed, &k, &err), 0);
  pthread_mutex_lock(&k.lock);
  assert_int_equal(k.n, 0); /* nothing is stored: neither is answered */
  pthread_mutex_unlock(&k.lock);
  oee__engine_pause_commits(eng, 0);
  pthread_mutex_lock(&k.lock);
  while (k.n < 2) pthread_cond_wait(&k.cv, &k.lock);
  pthread_mutex_unlock(&k.lock);
  assert_int_equal(k.rc[0], 0);
  assert_int_equal(k.rc[1], OEE_DUPLICATE);
  assert_string_equal(k.id[0], k.id[1]);
  oee_engine_destroy(eng);

  if (oee_engine_open(&cfg, &eng, &err) != 0) fail_msg("reopen: %s", err.message);
  char again[OEE_ID_LEN + 1];
  assert_int_equal(submit_keyed(eng, "pay-1", "after restart", again), OEE_DUPLICATE);
  assert_string_equal(again, k.id[0]);
  assert_int_equal(total(eng), 1);
  oee_engine_destroy(eng);
  pthread_cond_destroy(&k.cv);
  pthread_mutex_destroy(&k.lock);
  assert_int_equal(tu_remove_dir(dir), 0);
}

/* An exec command learns its attempt from OEE_ATTEMPT. */
static void test_exec_gets_attempt(void **state) {
  (void)state;
  oee_exec_table *cmds;
  assert_int_equal(oee_exec_table_create(&cmds), 0);
  const char *argv[] = {"sh", "-c", "echo attempt=$OEE_ATTEMPT >&2; exit 3"};
  assert_int_equal(oee_exec_table_add(cmds, "which", argv, 3, 10), 0);
  oee_engine *eng = tu_engine(1, cmds, NULL);
  oee_sub *sub = watch_all(eng);
  oee_kv ctx[] = {{"command", "which"}};
  oee_submit req = {.name = "x",
                    .task_type = "exec",
                    .priority = 5,
                    .context = ctx,
                    .context_len = 1,
                    .max_attempts = 2,
                    .has_backoff = 1,
                    .backoff_seconds = 0};
  char id[OEE_ID_LEN + 1];
  submit(eng, &req, id);
  oee_task_info_unref(expect(sub, id, OEE_TASK_QUEUED, 0));
  oee_task_info_unref(expect(sub, id, OEE_TASK_RUNNING, 1));
  const oee_task_info *s = expect(sub, id, OEE_TASK_SCHEDULED, 1);
  assert_non_null(strstr(s->error_message, "attempt=1"));
  oee_task_info_unref(s);
  oee_task_info_unref(expect(sub, id, OEE_TASK_QUEUED, 1));
  oee_task_info_unref(expect(sub, id, OEE_TASK_RUNNING, 2));
  const oee_task_info *e = expect(sub, id, OEE_TASK_ERROR, 2);
  assert_non_null(strstr(e->error_message, "attempt=2"));
  oee_task_info_unref(e);
  oee_sub_free(sub);
  tu_engine_free(eng);
  oee_exec_table_destroy(cmds);
}

/* Waits too long to count (a timeout or a backoff of 10^300 s) are
 * accepted and mean "forever", without overflowing any clock (found by
 * fuzz_submit_task: the cast of timeout_seconds * 1e9 overflowed). */
static void test_huge_waits(void **state) {
  (void)state;
  oee_engine *eng = tu_engine(1, NULL, NULL);
  oee_sub *sub = watch_all(eng);
  oee_kv ctx[] = {{"message", "m"}};
  oee_submit req = {.name = "h",
                    .task_type = "fail",
                    .priority = 5,
                    .context = ctx,
                    .context_len = 1,
                    .max_attempts = 2,
                    .has_backoff = 1,
                    .backoff_seconds = 1e300,
                    .has_max_backoff = 1,
                    .max_backoff_seconds = 1e300,
                    .timeout_seconds = 1e300};
  char id[OEE_ID_LEN + 1];
  submit(eng, &req, id);
  oee_task_info_unref(expect(sub, id, OEE_TASK_QUEUED, 0));
  oee_task_info_unref(expect(sub, id, OEE_TASK_RUNNING, 1));
  const oee_task_info *s = expect(sub, id, OEE_TASK_SCHEDULED, 1);
  assert_true(s->run_at_ns > oee_now_ns() + 100LL * 365 * 86400 * 1000000000LL / 10);
  oee_task_info_unref(s);
  oee_sub_free(sub);
  tu_engine_free(eng);
}

/* Each bad field: refused with a message naming it, nothing created. */
static void test_bad_fields_refused(void **state) {
  (void)state;
  oee_engine *eng = tu_engine(1, NULL, NULL);
  char key[OEE_IDEMPOTENCY_KEY_MAX + 2];
  memset(key, 'k', sizeof(key) - 1);
  key[sizeof(key) - 1] = '\0';
  const char *dep[] = {"0190a1b2-c3d4-7e5f-8a9b-000000000001"};
  const char *bad_dep[] = {"0190a1b2-c3d4-7e5f-8a9b-00000000000"};
  const char *twice[] = {dep[0], "0190A1B2-C3D4-7E5F-8A9B-000000000001"};
  const char *many[65]; /* one more than the default max_dependencies */
  for (size_t i = 0; i < 65; i++) many[i] = dep[0];
  struct {
    oee_submit req;
    const char *words;
  } rows[] = {
      {{.max_attempts = 101}, "max_attempts must be 1..100, got 101"},
      {{.max_attempts = -1}, "max_attempts must be 1..100, got -1"},
      {{.has_backoff = 1, .backoff_seconds = -1}, "backoff_seconds must be a finite number"},
      {{.has_backoff = 1, .backoff_seconds = NAN}, "backoff_seconds must be a finite number"},
      {{.has_max_backoff = 1, .max_backoff_seconds = INFINITY}, "max_backoff_seconds must be"},
      {{.timeout_seconds = -0.5}, "timeout_seconds must be a finite number"},
      {{.timeout_seconds = NAN}, "timeout_seconds must be a finite number"},
      {{.timeout_seconds = INFINITY},
       "timeout_seconds must be a finite number >= 0 (0 = none), got inf"},
      {{.has_backoff = 1, .backoff_seconds = INFINITY},
       "backoff_seconds must be a finite number >= 0, got inf"},
      {{.has_max_backoff = 1, .max_backoff_seconds = -2},
       "max_backoff_seconds must be a finite number >= 0, got -2"},
      {{.has_max_backoff = 1, .max_backoff_seconds = NAN},
       "max_backoff_seconds must be a finite number >= 0, got nan"},
      {{.depends_on = many, .depends_on_len = 65}, "depends_on has 65 ids; at most 64 are allowed"},
      {{.idempotency_key = key}, "idempotency_key is 257 bytes; at most 256"},
      {{.depends_on = dep, .depends_on_len = 1},
       "depends_on[0]: task 0190a1b2-c3d4-7e5f-8a9b-000000000001 not found"},
      {{.depends_on = bad_dep, .depends_on_len = 1},
       "depends_on[0] \"0190a1b2-c3d4-7e5f-8a9b-"
       "00000000000\" is not a task id"},
      {{.depends_on = twice, .depends_on_len = 2}, "depends_on[1] repeats depends_on[0]"},
  };
  for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
    oee_submit req = rows[i].req;
    req.name = "bad";
    req.task_type = "echo";
    req.priority = 5;
    oee_error err = {0};
    const oee_task_info *t = NULL;
    assert_int_equal(oee_engine_submit(eng, &req, &t, &err), OEE_EINVAL);
    assert_null(t);
    if (strstr(err.message, rows[i].words) == NULL) {
      fail_msg("row %zu: \"%s\" lacks \"%s\"", i, err.message, rows[i].words);
    }
  }
  oee_status st;
  assert_int_equal(oee_engine_status(eng, &st), 0);
  assert_int_equal(st.total_tasks, 0);
  oee_status_free(&st);
  tu_engine_free(eng);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_retries_with_backoff),
      cmocka_unit_test(test_permanent_failure_not_retried),
      cmocka_unit_test(test_timeout_fails_the_attempt),
      cmocka_unit_test(test_run_at_and_cancel_scheduled),
      cmocka_unit_test(test_retry_task),
      cmocka_unit_test(test_retry_task_durable),
      cmocka_unit_test(test_scheduled_survive_restart),
      cmocka_unit_test(test_idempotency_keys),
      cmocka_unit_test(test_idempotency_durable),
      cmocka_unit_test(test_key_free_after_clear),
      cmocka_unit_test(test_exec_gets_attempt),
      cmocka_unit_test(test_huge_waits),
      cmocka_unit_test(test_bad_fields_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
