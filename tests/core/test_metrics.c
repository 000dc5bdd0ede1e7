/*
 * test_metrics.c - the engine's counters and histograms
 * (oee_engine_type_metrics, oee_engine_metrics): submissions counted once
 * acknowledged and never for a repeated idempotency key, finishes by final
 * status, retries, the queue-wait and run histograms, the store's commits
 * and size, gauges that agree with oee_engine_status, a type registered
 * later, and the histogram's buckets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/oee.h"
#include "tests/core/testutil.h"

#define WAIT_S 20.0

/* What one visit of oee_engine_type_metrics() found for one type. */
typedef struct found {
  const char *type;
  int seen;
  oee_type_metrics m;
} found;

static void pick(void *arg, const oee_type_metrics *m) {
  found *f = arg;
  if (strcmp(m->task_type, f->type) == 0) {
    f->seen++;
    f->m = *m;
  }
}

static oee_type_metrics metrics_of(oee_engine *eng, const char *type) {
  found f = {.type = type};
  oee_engine_type_metrics(eng, pick, &f);
  assert_int_equal(f.seen, 1);
  return f.m;
}

static void submit_and_finish(oee_engine *eng, const oee_submit *req) {
  const oee_task_info *t = NULL;
  assert_int_equal(oee_engine_submit(eng, req, &t, NULL), 0);
  const oee_task_info *end = tu_wait_terminal(eng, t->id, WAIT_S);
  assert_non_null(end);
  oee_task_info_unref(end);
  oee_task_info_unref(t);
}

static void test_bucket_bounds(void **state) {
  (void)state;
  assert_int_equal(oee_histogram_bucket(0), 0);
  assert_int_equal(oee_histogram_bucket(500000), 0); /* le is inclusive */
  assert_int_equal(oee_histogram_bucket(500001), 1);
  assert_int_equal(oee_histogram_bucket(1000000000), 10); /* 1 s */
  assert_int_equal(oee_histogram_bucket(300000000000LL), 16);
  assert_int_equal(oee_histogram_bucket(300000000001LL), OEE_HISTOGRAM_BUCKETS - 1);
  for (int i = 1; i < OEE_HISTOGRAM_BUCKETS - 1; i++) {
    assert_true(oee_histogram_bounds_ns[i] > oee_histogram_bounds_ns[i - 1]);
  }
}

static void check_counts(oee_engine *eng, int echoes) {
  oee_type_metrics e = metrics_of(eng, "echo");
  assert_int_equal(e.submitted, echoes);
  assert_int_equal(e.finished[OEE_TASK_DONE], echoes);
  assert_int_equal(e.finished[OEE_TASK_ERROR], 0);
  assert_int_equal(e.retries, 0);
  assert_int_equal(e.queue_wait.count, echoes); /* one start each */
  assert_int_equal(e.run.count, echoes);
  uint64_t sum = 0;
  for (int i = 0; i < OEE_HISTOGRAM_BUCKETS; i++) sum += e.run.buckets[i];
  assert_int_equal(sum, e.run.count);
  /* fail with 3 attempts: 3 runs, 2 retries, 1 ERROR. */
  oee_type_metrics f = metrics_of(eng, "fail");
  assert_int_equal(f.submitted, 1);
  assert_int_equal(f.retries, 2);
  assert_int_equal(f.run.count, 3);
  assert_int_equal(f.queue_wait.count, 3);
  assert_int_equal(f.finished[OEE_TASK_ERROR], 1);
  assert_int_equal(f.finished[OEE_TASK_DONE], 0);
}

/* Echoes, a retried failure and a repeated key, on either store. */
static void run_lifecycle(const char *data_dir) {
  oee_engine_config cfg = {.num_workers = 2, .data_dir = data_dir};
  oee_engine *eng = NULL;
  assert_int_equal(oee_engine_create(&cfg, &eng), 0);
  assert_int_equal(oee_engine_start(eng), 0);
  oee_kv msg = {"message", "hi"};
  oee_submit echo = {.name = "e", .task_type = "echo", .context = &msg, .context_len = 1};
  for (int i = 0; i < 5; i++) submit_and_finish(eng, &echo);
  echo.idempotency_key = "k1";
  submit_and_finish(eng, &echo);
  const oee_task_info *dup = NULL;
  assert_int_equal(oee_engine_submit(eng, &echo, &dup, NULL), OEE_DUPLICATE);
  oee_task_info_unref(dup);
  oee_submit fail = {.name = "f",
                     .task_type = "fail",
                     .max_attempts = 3,
                     .has_backoff = 1,
                     .backoff_seconds = 0.001};
  submit_and_finish(eng, &fail);
  check_counts(eng, 6);
  oee_metrics m;
  assert_int_equal(oee_engine_metrics(eng, &m), 0);
  oee_status st;
  assert_int_equal(oee_engine_status(eng, &st), 0);
  assert_memory_equal(m.by_status, st.by_status, sizeof(m.by_status));
  oee_status_free(&st);
  assert_int_equal(m.by_status[OEE_TASK_DONE], 6);
  assert_int_equal(m.remote_workers, 0);
  if (data_dir != NULL) {
    assert_true(m.store_commits.count > 0);
    assert_true(m.store_bytes > 0);
  } else {
    assert_int_equal(m.store_commits.count, 0);
    assert_int_equal(m.store_bytes, 0);
  }
  tu_engine_free(eng);
}

static void test_lifecycle_memory(void **state) {
  (void)state;
  run_lifecycle(NULL);
}

static void test_lifecycle_sqlite(void **state) {
  (void)state;
  char dir[512];
  assert_int_equal(tu_temp_dir(dir, sizeof(dir), "metrics"), 0);
  run_lifecycle(dir);
  assert_int_equal(tu_remove_dir(dir), 0);
}

/* The queue wait is measured from when the task became QUEUED: a task
 * held by run_at waits from its run_at, not from its creation. */
static void test_queue_wait_from_run_at(void **state) {
  (void)state;
  oee_engine *eng = tu_engine(1, NULL, NULL);
  assert_non_null(eng);
  oee_submit later = {.name = "l", .task_type = "echo", .has_run_at = 1};
  later.run_at_ns = oee_now_ns() + 300000000LL; /* 0.3 s */
  submit_and_finish(eng, &later);
  oee_type_metrics e = metrics_of(eng, "echo");
  assert_int_equal(e.queue_wait.count, 1);
  assert_true(e.queue_wait.sum_ns < 250000000ULL); /* not the 0.3 s held back */
  tu_engine_free(eng);
}

/* A running task cancelled: run time observed, CANCELLED counted; a queued
 * one cancelled: no start, CANCELLED counted. */
static void test_cancel_counts(void **state) {
  (void)state;
  oee_engine *eng = tu_engine(1, NULL, NULL);
  assert_non_null(eng);
  char running[OEE_ID_LEN + 1], queued[OEE_ID_LEN + 1];
  assert_int_equal(tu_submit(eng, "sleep", running, 1, "seconds", "30"), 0);
  assert_true(tu_wait_status(eng, running, OEE_TASK_RUNNING, WAIT_S));
  assert_int_equal(tu_submit(eng, "sleep", queued, 1, "seconds", "30"), 0);
  int cancelled = 0;
  assert_int_equal(oee_engine_cancel(eng, queued, &cancelled, NULL), 0);
  assert_int_equal(oee_engine_cancel(eng, running, &cancelled, NULL), 0);
  const oee_task_info *end = tu_wait_terminal(eng, running, WAIT_S);
  assert_non_null(end);
  oee_task_info_unref(end);
  oee_type_metrics s = metrics_of(eng, "sleep");
  assert_int_equal(s.submitted, 2);
  assert_int_equal(s.finished[OEE_TASK_CANCELLED], 2);
  assert_int_equal(s.queue_wait.count, 1);
  assert_int_equal(s.run.count, 1);
  tu_engine_free(eng);
}

static void noop(oee_job *job, void *ud) {
  (void)ud;
  oee_job_succeed(job, "");
}

/* A type registered after creation gets a slot; remote types have one. */
static void test_registered_and_remote_types(void **state) {
  (void)state;
  const char *remote[] = {"far"};
  oee_engine_config cfg = {.num_workers = 1, .remote_types = remote, .n_remote_types = 1};
  oee_engine *eng = NULL;
  assert_int_equal(oee_engine_create(&cfg, &eng), 0);
  assert_int_equal(oee_engine_register(eng, "custom", noop, NULL), 0);
  assert_int_equal(oee_engine_register(eng, "custom", noop, NULL), 0); /* no second slot */
  assert_int_equal(oee_engine_start(eng), 0);
  oee_submit c = {.name = "c", .task_type = "custom"};
  submit_and_finish(eng, &c);
  oee_submit far = {.name = "r", .task_type = "far"};
  assert_int_equal(oee_engine_submit(eng, &far, NULL, NULL), 0);
  assert_int_equal(metrics_of(eng, "custom").finished[OEE_TASK_DONE], 1);
  assert_int_equal(metrics_of(eng, "far").submitted, 1);
  assert_int_equal(metrics_of(eng, "far").queue_wait.count, 0);
  tu_engine_free(eng);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bucket_bounds),    cmocka_unit_test(test_lifecycle_memory),
      cmocka_unit_test(test_lifecycle_sqlite), cmocka_unit_test(test_queue_wait_from_run_at),
      cmocka_unit_test(test_cancel_counts),    cmocka_unit_test(test_registered_and_remote_types),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
