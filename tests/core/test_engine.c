/* test_engine.c - the engine through its public API: validation, priority
 * order end to end, cancel, graceful stop, events, status, clearing, limits
 * and asynchronous completion. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <time.h>
#include <cmocka.h>

#include "core/oee.h"
#include "core/oee_pipeline.h"

static oee_engine *new_engine(int workers, size_t max_queue, size_t result_max) {
  oee_engine_config cfg = {
      .num_workers = workers, .max_queue = max_queue, .result_max_bytes = result_max};
  oee_engine *eng;
  assert_int_equal(oee_engine_create(&cfg, &eng), 0);
  return eng;
}

static int submit(oee_engine *eng, const char *type, int prio, const char *k, const char *v,
                  char id[OEE_ID_LEN + 1]) {
  oee_kv kv = {k, v};
  oee_submit req = {.name = "t",
                    .task_type = type,
                    .priority = prio,
                    .context = k ? &kv : NULL,
                    .context_len = k ? 1 : 0};
  const oee_task_info *t = NULL;
  int rc = oee_engine_submit(eng, &req, &t, NULL);
  if (rc == 0) {
    if (id) memcpy(id, t->id, OEE_ID_LEN + 1);
    assert_int_equal(t->status, OEE_TASK_QUEUED);
    oee_task_info_unref(t);
  }
  return rc;
}

/* Waits (up to 10 s) for the task to reach `st`; returns its snapshot. A
 * snapshot subscription filtered on the task and the status sees the
 * change whether it happened before the call or after. */
static const oee_task_info *wait_status(oee_engine *eng, const char *id, oee_task_status st) {
  const char *ids[] = {id};
  oee_sub_filter f = {.task_ids = ids, .n_task_ids = 1, .statuses = &st, .n_statuses = 1};
  oee_sub *sub;
  assert_int_equal(oee_engine_subscribe(eng, &f, 4, 1, &sub), 0);
  const oee_task_info *t = NULL;
  int rc = oee_sub_wait(sub, &t, 10000);
  oee_sub_free(sub);
  if (rc != 0) fail_msg("task %s never reached %s", id, oee_task_status_name(st));
  return t;
}

static void expect_status(oee_engine *eng, const char *id, oee_task_status st) {
  oee_task_info_unref(wait_status(eng, id, st));
}

/* One refusal: the submission, and the code and words the caller gets. */
typedef struct refusal {
  const char *name, *type;
  int priority;
  oee_kv ctx[2];
  size_t n_ctx;
  int code;
  const char *message; /* must appear in the reason */
} refusal;

static const refusal refusals[] = {
    {"", "echo", 5, {{0}}, 0, OEE_EINVAL, "name must not be empty"},
    {"x", "echo", 11, {{0}}, 0, OEE_EINVAL, "priority must be 0..10, got 11"},
    {"x", "echo", -1, {{0}}, 0, OEE_EINVAL, "priority must be 0..10, got -1"},
    {"x", "", 5, {{0}}, 0, OEE_EINVAL, "task_type must not be empty"},
    {"x",
     "nope",
     5,
     {{0}},
     0,
     OEE_ENOEXEC,
     "unknown task_type \"nope\"; known types: echo, exec, fail, sleep"},
    {"x",
     "pipeline",
     5,
     {{0}},
     0,
     OEE_EINVAL,
     "tasks of type \"pipeline\" cannot be submitted directly"},
    {"x",
     "echo",
     5,
     {{"a", "1"}, {"a", "2"}},
     2,
     OEE_EINVAL,
     "context key \"a\" appears more than once"},
    {"x",
     "sleep",
     5,
     {{"seconds", "soon"}},
     1,
     OEE_EINVAL,
     "context[\"seconds\"] must be a finite number >= 0, got \"soon\""},
    {"x", "sleep", 5, {{"seconds", "-1"}}, 1, OEE_EINVAL, "got \"-1\""},
    {"x", "sleep", 5, {{"seconds", "inf"}}, 1, OEE_EINVAL, "got \"inf\""},
    {"x", "sleep", 5, {{"seconds", "nan"}}, 1, OEE_EINVAL, "got \"nan\""},
    {"x",
     "exec",
     5,
     {{0}},
     0,
     OEE_ENOCMD,
     "exec tasks need context[\"command\"] naming a configured command"},
    {"x",
     "exec",
     5,
     {{"command", "rm"}},
     1,
     OEE_ENOCMD,
     "exec command \"rm\" is not in the configured commands table"},
};

static void test_submit_validation_changes_nothing(void **state) {
  (void)state;
  oee_engine *eng = new_engine(1, 0, 0);
  for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
    const refusal *r = &refusals[i];
    oee_submit req = {.name = r->name,
                      .task_type = r->type,
                      .priority = r->priority,
                      .context = r->n_ctx ? r->ctx : NULL,
                      .context_len = r->n_ctx};
    oee_error err;
    const oee_task_info *t = NULL;
    assert_int_equal(oee_engine_submit(eng, &req, &t, &err), r->code);
    assert_null(t);
    assert_int_equal(err.code, r->code);
    if (strstr(err.message, r->message) == NULL) {
      fail_msg("refusal %zu: \"%s\" lacks \"%s\"", i, err.message, r->message);
    }
    assert_int_equal(oee_engine_submit(eng, &req, NULL, NULL), r->code);
  }
  oee_submit ok = {.name = "x", .task_type = "echo", .priority = 0};
  oee_error err = {.code = OEE_EIO, .message = "stale"};
  assert_int_equal(oee_engine_submit(eng, &ok, NULL, &err), 0);
  assert_int_equal(err.code, 0); /* success clears a reused error */
  assert_string_equal(err.message, "");
  oee_status st0;
  oee_engine_status(eng, &st0);
  assert_int_equal(st0.total_tasks, 1); /* only the accepted one exists */
  oee_status_free(&st0);
  assert_int_equal(oee_engine_clear_completed(eng, 0), 0);
  char names[256];
  size_t need = oee_engine_executor_names(eng, names, sizeof(names));
  assert_int_equal(need, strlen(names));
  assert_string_equal(names, "echo, exec, fail, sleep"); /* pipeline is internal */
  oee_engine_destroy(eng);
}

/* An executor that records the order tasks start in. */
typedef struct order_log {
  pthread_mutex_t lock;
  pthread_cond_t grew; /* signalled with lock held when n grows */
  int n;
  int prio[4000];
  uint64_t index[4000];
} order_log;

static void run_record(oee_job *job, void *ud) {
  order_log *log = ud;
  pthread_mutex_lock(&log->lock);
  log->prio[log->n] = oee_job_task(job)->priority;
  log->index[log->n] = oee_job_task(job)->submit_index;
  log->n++;
  pthread_cond_signal(&log->grew);
  pthread_mutex_unlock(&log->lock);
  oee_job_succeed(job, "ok");
}

/* Waits up to 10 s for `n` entries; returns the count reached. */
static int log_wait(order_log *log, int n) {
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += 10;
  pthread_mutex_lock(&log->lock);
  while (log->n < n && pthread_cond_timedwait(&log->grew, &log->lock, &deadline) == 0) {
  }
  int got = log->n;
  pthread_mutex_unlock(&log->lock);
  return got;
}

static void test_priority_then_fifo_end_to_end(void **state) {
  (void)state;
  static order_log log = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, {0}, {0}};
  oee_engine *eng = new_engine(1, 0, 0);
  assert_int_equal(oee_engine_register(eng, "rec", run_record, &log), 0);
  srand(5);
  char last[OEE_ID_LEN + 1];
  for (int i = 0; i < 4000; i++) {
    assert_int_equal(submit(eng, "rec", rand() % 11, NULL, NULL, last), 0);
  }
  oee_engine_start(eng);
  log_wait(&log, 4000);
  assert_int_equal(oee_engine_stop(eng, 5000), 0);
  assert_int_equal(log.n, 4000);
  for (int i = 1; i < 4000; i++) {
    assert_true(log.prio[i] < log.prio[i - 1] ||
                (log.prio[i] == log.prio[i - 1] && log.index[i] > log.index[i - 1]));
  }
  oee_engine_destroy(eng);
}

static void test_cancel_queued(void **state) {
  (void)state;
  oee_engine *eng = new_engine(1, 0, 0);
  char id[OEE_ID_LEN + 1];
  submit(eng, "echo", 5, "message", "hi", id);
  int cancelled = -1;
  const oee_task_info *t;
  assert_int_equal(oee_engine_cancel(eng, id, &cancelled, &t), 0);
  assert_int_equal(cancelled, 1);
  assert_int_equal(t->status, OEE_TASK_CANCELLED);
  assert_true(t->completed_at_ns > 0);
  assert_int_equal(t->started_at_ns, 0);
  assert_int_equal(t->worker_id, -1);
  oee_task_info_unref(t);
  assert_int_equal(oee_engine_cancel(eng, id, &cancelled, NULL), 0);
  assert_int_equal(cancelled, 0);
  assert_int_equal(oee_engine_cancel(eng, "00000000-0000-4000-8000-000000000000", &cancelled, NULL),
                   OEE_ENOENT);
  assert_int_equal(oee_engine_cancel(eng, "", &cancelled, NULL), OEE_EINVAL);
  /* The cancelled task never runs. */
  oee_engine_start(eng);
  oee_status st;
  oee_engine_status(eng, &st);
  assert_int_equal(st.queue_size, 0);
  assert_int_equal(st.by_status[OEE_TASK_CANCELLED], 1);
  oee_status_free(&st);
  oee_engine_destroy(eng);
}

static void test_cancel_running_sleep(void **state) {
  (void)state;
  oee_engine *eng = new_engine(1, 0, 0);
  oee_engine_start(eng);
  char id[OEE_ID_LEN + 1];
  submit(eng, "sleep", 5, "seconds", "30", id);
  expect_status(eng, id, OEE_TASK_RUNNING);
  int cancelled = 0;
  assert_int_equal(oee_engine_cancel(eng, id, &cancelled, NULL), 0);
  assert_int_equal(cancelled, 1);
  const oee_task_info *t = wait_status(eng, id, OEE_TASK_CANCELLED);
  assert_int_equal(t->worker_id, 0);
  assert_true(t->started_at_ns > 0 && t->completed_at_ns >= t->started_at_ns);
  oee_task_info_unref(t);
  oee_status st;
  oee_engine_status(eng, &st);
  assert_int_equal(st.workers[0].tasks_completed, 0);
  assert_int_equal(st.workers[0].tasks_failed, 0);
  oee_status_free(&st);
  oee_engine_destroy(eng);
}

static void test_graceful_stop_lets_running_finish(void **state) {
  (void)state;
  oee_engine *eng = new_engine(2, 0, 0);
  oee_engine_start(eng);
  char run1[OEE_ID_LEN + 1], run2[OEE_ID_LEN + 1], queued[OEE_ID_LEN + 1];
  submit(eng, "sleep", 9, "seconds", "0.3", run1);
  submit(eng, "sleep", 9, "seconds", "0.3", run2);
  expect_status(eng, run1, OEE_TASK_RUNNING);
  expect_status(eng, run2, OEE_TASK_RUNNING);
  submit(eng, "echo", 1, NULL, NULL, queued);
  assert_int_equal(oee_engine_stop(eng, 10000), 0);
  expect_status(eng, run1, OEE_TASK_DONE);
  expect_status(eng, run2, OEE_TASK_DONE);
  expect_status(eng, queued, OEE_TASK_QUEUED);
  assert_int_equal(submit(eng, "echo", 1, NULL, NULL, NULL), OEE_ESTOPPED);
  assert_false(oee_engine_running(eng));
  assert_int_equal(oee_engine_stop(eng, 0), 0); /* twice is fine */
  oee_engine_destroy(eng);
}

static void test_stop_drain_timeout_cancels(void **state) {
  (void)state;
  oee_engine *eng = new_engine(1, 0, 0);
  oee_engine_start(eng);
  char id[OEE_ID_LEN + 1];
  submit(eng, "sleep", 5, "seconds", "60", id);
  expect_status(eng, id, OEE_TASK_RUNNING);
  assert_int_equal(oee_engine_stop(eng, 50), 0);
  expect_status(eng, id, OEE_TASK_CANCELLED);
  oee_engine_destroy(eng);
}

static void test_events_in_lifecycle_order(void **state) {
  (void)state;
  enum { N = 300 };
  oee_engine *eng = new_engine(3, 0, 0);
  oee_sub *sub;
  assert_int_equal(oee_engine_subscribe(eng, NULL, 4 * N, 0, &sub), 0);
  oee_engine_start(eng);
  char ids[N][OEE_ID_LEN + 1];
  for (int i = 0; i < N; i++) {
    submit(eng, i % 5 ? "echo" : "fail", i % 11, "message", "m", ids[i]);
  }
  int seen[N] = {0}, terminal = 0;
  uint64_t last = 0;
  while (terminal < N) {
    const oee_task_info *ev;
    assert_int_equal(oee_sub_wait(sub, &ev, 10000), 0);
    assert_true(ev->seq > last);
    last = ev->seq;
    int k = -1;
    for (int i = 0; i < N; i++) {
      if (strcmp(ids[i], ev->id) == 0) k = i;
    }
    assert_true(k >= 0);
    static const oee_task_status expect[3] = {OEE_TASK_QUEUED, OEE_TASK_RUNNING, 0};
    if (seen[k] < 2) {
      assert_int_equal(ev->status, expect[seen[k]]);
    } else {
      assert_int_equal(ev->status, k % 5 ? OEE_TASK_DONE : OEE_TASK_ERROR);
      terminal++;
    }
    seen[k]++;
    oee_task_info_unref(ev);
  }
  oee_sub_free(sub);
  oee_status st;
  oee_engine_status(eng, &st);
  uint64_t done = 0, failed = 0;
  for (int w = 0; w < st.num_workers; w++) {
    done += st.workers[w].tasks_completed;
    failed += st.workers[w].tasks_failed;
  }
  assert_int_equal(done, st.by_status[OEE_TASK_DONE]);
  assert_int_equal(failed, st.by_status[OEE_TASK_ERROR]);
  assert_int_equal(failed, N / 5);
  oee_status_free(&st);
  oee_engine_destroy(eng);
}

static void test_subscribe_snapshot(void **state) {
  (void)state;
  oee_engine *eng = new_engine(1, 0, 0);
  char a[OEE_ID_LEN + 1], b[OEE_ID_LEN + 1];
  submit(eng, "echo", 5, NULL, NULL, a);
  submit(eng, "sleep", 5, NULL, NULL, b);
  oee_engine_cancel(eng, a, NULL, NULL);
  const char *types[] = {"echo"};
  oee_sub_filter f = {.task_types = types, .n_task_types = 1};
  oee_sub *sub;
  assert_int_equal(oee_engine_subscribe(eng, &f, 1, 1, &sub), 0);
  const oee_task_info *ev;
  assert_int_equal(oee_sub_next(sub, &ev), 0);
  assert_string_equal(ev->id, a);
  assert_int_equal(ev->status, OEE_TASK_CANCELLED);
  assert_int_equal(ev->seq, 3); /* QUEUED a=1, QUEUED b=2, CANCELLED a=3 */
  oee_task_info_unref(ev);
  assert_int_equal(oee_sub_next(sub, &ev), OEE_EAGAIN);
  oee_sub_free(sub);
  /* Two matches do not fit a buffer of one: refused, nothing created. */
  assert_int_equal(oee_engine_subscribe(eng, NULL, 1, 1, &sub), OEE_EOVERFLOW);
  oee_engine_destroy(eng);
}

static void test_clear_completed_and_limits(void **state) {
  (void)state;
  oee_engine *eng = new_engine(2, 3, 16);
  char ids[3][OEE_ID_LEN + 1];
  for (int i = 0; i < 3; i++) submit(eng, "echo", 5, "message", "0123456789abcdefXYZ", ids[i]);
  assert_int_equal(submit(eng, "echo", 5, NULL, NULL, NULL), OEE_EFULL);
  oee_engine_start(eng);
  const oee_task_info *t = wait_status(eng, ids[2], OEE_TASK_DONE);
  assert_memory_equal(t->result, "0123456789abcdef", 16);
  assert_non_null(strstr(t->result, "[truncated: 16 of 19 bytes kept]"));
  oee_task_info_unref(t);
  expect_status(eng, ids[0], OEE_TASK_DONE);
  expect_status(eng, ids[1], OEE_TASK_DONE);
  assert_int_equal(oee_engine_clear_completed(eng, -1), OEE_EINVAL);
  assert_int_equal(oee_engine_clear_completed(eng, 1), 2);
  assert_int_equal(oee_engine_clear_completed(eng, 1), 0);
  oee_list_page p;
  oee_list_query q = {.limit = 10};
  assert_int_equal(oee_engine_list(eng, &q, &p), 0);
  assert_int_equal(p.total, 1);
  oee_list_page_free(&p);
  oee_engine_destroy(eng);
}

/* An executor that finishes its job later, on a thread of its own: once
 * oee_engine_stop() has begun (there is no event for that, so the thread
 * polls oee_engine_running() with a 10 s deadline). */
typedef struct async_job {
  oee_engine *eng;
  pthread_t th;
  oee_job *job;
} async_job;

static void *finish_later(void *arg) {
  async_job *a = arg;
  for (int i = 0; i < 10000 && oee_engine_running(a->eng); i++) {
    nanosleep(&(struct timespec){0, 1000000}, NULL);
  }
  oee_job_succeed(a->job, "late");
  return NULL;
}

static void run_async(oee_job *job, void *ud) {
  async_job *a = ud;
  a->job = job;
  pthread_create(&a->th, NULL, finish_later, a);
}

static void test_async_completion(void **state) {
  (void)state;
  oee_engine *eng = new_engine(1, 0, 0);
  async_job a = {.eng = eng};
  oee_engine_register(eng, "async", run_async, &a);
  oee_engine_start(eng);
  char id[OEE_ID_LEN + 1];
  submit(eng, "async", 5, NULL, NULL, id);
  expect_status(eng, id, OEE_TASK_RUNNING);
  /* stop() must wait for the job that the executor has already returned from. */
  oee_engine_stop(eng, -1);
  pthread_join(a.th, NULL);
  const oee_task_info *t;
  oee_engine_get(eng, id, &t);
  assert_int_equal(t->status, OEE_TASK_DONE);
  assert_string_equal(t->result, "late");
  oee_task_info_unref(t);
  oee_engine_destroy(eng);
}

/* A result exactly result_max_bytes long is kept whole; one byte more is
 * cut to result_max_bytes and followed by the marker. */
static void test_result_max_boundary(void **state) {
  (void)state;
  oee_engine *eng = new_engine(1, 0, 16);
  char exact[OEE_ID_LEN + 1], over[OEE_ID_LEN + 1];
  assert_int_equal(submit(eng, "echo", 5, "message", "0123456789abcdef", exact), 0);
  assert_int_equal(submit(eng, "echo", 5, "message", "0123456789abcdefX", over), 0);
  oee_engine_start(eng);
  const oee_task_info *t = wait_status(eng, exact, OEE_TASK_DONE);
  assert_string_equal(t->result, "0123456789abcdef");
  oee_task_info_unref(t);
  t = wait_status(eng, over, OEE_TASK_DONE);
  assert_string_equal(t->result, "0123456789abcdef\n[truncated: 16 of 17 bytes kept]");
  oee_task_info_unref(t);
  oee_engine_destroy(eng);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_submit_validation_changes_nothing),
      cmocka_unit_test(test_priority_then_fifo_end_to_end),
      cmocka_unit_test(test_cancel_queued),
      cmocka_unit_test(test_cancel_running_sleep),
      cmocka_unit_test(test_graceful_stop_lets_running_finish),
      cmocka_unit_test(test_stop_drain_timeout_cancels),
      cmocka_unit_test(test_events_in_lifecycle_order),
      cmocka_unit_test(test_subscribe_snapshot),
      cmocka_unit_test(test_clear_completed_and_limits),
      cmocka_unit_test(test_async_completion),
      cmocka_unit_test(test_result_max_boundary),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
