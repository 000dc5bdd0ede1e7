/*
 * test_alloc_fail.c - failure injection through the swappable allocator.
 *
 * Each scenario runs once per n = 1, 2, ... with an allocator that fails
 * exactly the n-th allocation (worker threads count too: the counter is
 * atomic), until a run finishes without reaching n. Every call must then
 * end in success or a clean OEE_ENOMEM, nothing may crash or leak (the
 * asan config runs LeakSanitizer at exit), and the engine must still be
 * consistent: oee_engine_status() counts match what oee_engine_list()
 * returns and every acknowledged task is found by oee_engine_get().
 * Results are gathered on worker threads only through the engine; every
 * assertion runs on the test's own thread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "tests/core/testutil.h"

#include "core/oee.h"
#include "core/oee_alloc.h"
#include "core/oee_exec.h"
#include "core/oee_pipeline.h"

/* Runs stop being tried after this many allocations: a scenario needing
 * more would mean the loop never ends. */
#define MAX_N 20000
#define MAX_TASKS 16

/* ------------------------------------------------- counting allocator */

static atomic_long calls;   /* allocations so far in this run */
static atomic_long fail_at; /* the one to fail; 0 = none */
static atomic_int hit;      /* fail_at was reached */

static int should_fail(void) {
  long n = atomic_fetch_add(&calls, 1) + 1;
  if (n != atomic_load(&fail_at)) return 0;
  atomic_store(&hit, 1);
  return 1;
}

static void *count_malloc(size_t size) { return should_fail() ? NULL : malloc(size); }

static void *count_calloc(size_t n, size_t size) { return should_fail() ? NULL : calloc(n, size); }

static void *count_realloc(void *p, size_t size) { return should_fail() ? NULL : realloc(p, size); }

static const oee_allocator counting = {count_malloc, count_calloc, count_realloc, free};

/* Arms the allocator to fail allocation n (no thread of the core runs). */
static void arm(long n) {
  atomic_store(&calls, 0);
  atomic_store(&hit, 0);
  atomic_store(&fail_at, n);
  oee_allocator_set(&counting);
}

/* Stops failing, so the checks after a run see the engine as it is. */
static void disarm(void) { atomic_store(&fail_at, 0); }

/* ------------------------------------------------------ what a run saw */

typedef struct run {
  oee_engine *eng;
  oee_model_table *models;
  char ids[MAX_TASKS][OEE_ID_LEN + 1]; /* acknowledged submissions */
  char dir[256];                       /* a durable run's data_dir, or "" */
  int n_ids;
  int bad_rc; /* first code that was neither 0 nor ENOMEM */
} run;

/* Records rc unless it is success or a clean out-of-memory refusal. */
static int note(run *r, int rc) {
  if (rc != 0 && rc != OEE_ENOMEM && r->bad_rc == 0) r->bad_rc = rc;
  return rc;
}

/* The model table the pipelines use: `upper` beside the built-in echo. */
static int models_new(run *r) {
  const char *upper[] = {"tr", "a-z", "A-Z"};
  if (note(r, oee_model_table_create(&r->models)) != 0) return -1;
  return note(r, oee_model_table_add(r->models, "upper", upper, 3, 1, 1, 20)) == 0 ? 0 : -1;
}

static int engine_new(run *r, int workers, int with_models) {
  oee_engine_config cfg = {.num_workers = workers};
  if (with_models) {
    if (models_new(r) != 0) return -1;
    cfg.models = r->models;
  }
  return note(r, oee_engine_create(&cfg, &r->eng)) == 0 ? 0 : -1;
}

static void submit_task(run *r, const char *type, const char *key, const char *value) {
  oee_kv kv[2] = {{key, value}, {"note", "failure injection"}};
  oee_submit req = {.name = "t", .task_type = type, .priority = 5, .context = kv, .context_len = 2};
  const oee_task_info *t = NULL;
  oee_error err;
  if (note(r, oee_engine_submit(r->eng, &req, &t, &err)) != 0) return;
  memcpy(r->ids[r->n_ids++], t->id, OEE_ID_LEN + 1);
  oee_task_info_unref(t);
}

static void submit_pipeline(run *r, oee_strategy strategy) {
  oee_stage_spec st[] = {{.name = "e", .model_id = "echo"},
                         {.name = "u", .model_id = "upper", .has_cost = 1, .cost = 0.5}};
  oee_pipeline_spec sp = {.pipeline_id = "p",
                          .stages = st,
                          .n_stages = 2,
                          .strategy = strategy,
                          .priority = 5,
                          .input = "hello"};
  const oee_task_info *t = NULL;
  if (note(r, oee_engine_submit_pipeline(r->eng, &sp, &t, NULL)) != 0) return;
  memcpy(r->ids[r->n_ids++], t->id, OEE_ID_LEN + 1);
  oee_task_info_unref(t);
}

/* A listing of everything, freed at once: 0 or ENOMEM. */
static void list_all(run *r) {
  oee_list_query q = {.limit = MAX_TASKS};
  oee_list_page p;
  if (note(r, oee_engine_list(r->eng, &q, &p)) == 0) oee_list_page_free(&p);
}

static void status_once(run *r) {
  oee_status st;
  if (note(r, oee_engine_status(r->eng, &st)) == 0) oee_status_free(&st);
}

/* ------------------------------------------------------- the checks */

/* Status counts match the listing, and every acknowledged id is there. */
static void check_consistent(run *r) {
  oee_status st;
  assert_int_equal(oee_engine_status(r->eng, &st), 0);
  oee_list_query q = {.limit = MAX_TASKS * 2};
  oee_list_page p;
  assert_int_equal(oee_engine_list(r->eng, &q, &p), 0);
  assert_int_equal(p.total, st.total_tasks);
  assert_int_equal(p.len, st.total_tasks);
  uint64_t by[OEE_TASK_STATUS_COUNT] = {0};
  for (size_t i = 0; i < p.len; i++) by[p.tasks[i]->status]++;
  for (int s = 0; s < OEE_TASK_STATUS_COUNT; s++) assert_int_equal(by[s], st.by_status[s]);
  assert_int_equal(st.queue_size, st.by_status[OEE_TASK_QUEUED]);
  assert_int_equal(p.len, (size_t)r->n_ids);
  oee_list_page_free(&p);
  oee_status_free(&st);
  for (int i = 0; i < r->n_ids; i++) {
    const oee_task_info *t = NULL;
    assert_int_equal(oee_engine_get(r->eng, r->ids[i], &t), 0);
    oee_task_info_unref(t);
  }
}

static void run_free(run *r) {
  oee_engine_destroy(r->eng);
  oee_model_table_destroy(r->models);
  if (r->dir[0] != '\0' && tu_remove_dir(r->dir) != 0) fail_msg("cannot remove %s", r->dir);
}

/*
 * Drives `scenario` with allocation n failing for n = 1, 2, ... until a
 * run did not reach n. The scenario returns with no core thread running
 * except the engine's own (which run_free() stops before the allocator is
 * restored).
 */
static void sweep(void (*scenario)(run *r)) {
  long n;
  for (n = 1; n < MAX_N; n++) {
    run r = {0};
    arm(n);
    scenario(&r);
    disarm();
    int reached = atomic_load(&hit);
    if (r.eng != NULL) check_consistent(&r);
    run_free(&r);
    oee_allocator_set(NULL);
    if (r.bad_rc != 0) fail_msg("allocation %ld failing gave %s", n, oee_strerror(r.bad_rc));
    if (!reached) break;
  }
  print_message("allocations failed in turn: %ld\n", n - 1);
  assert_true(n < MAX_N);
  assert_true(n > 1); /* the scenario allocates at all */
}

/* ------------------------------------------------------- scenarios */

/* Engine creation, submissions of each kind, a cancel, list and status. */
static void scenario_submit(run *r) {
  if (engine_new(r, 2, 1) != 0) return;
  submit_task(r, "echo", "message", "hi");
  submit_task(r, "fail", "message", "no");
  submit_task(r, "sleep", "seconds", "0");
  submit_pipeline(r, OEE_STRATEGY_LOCAL_FAST_PRECISE);
  if (r->n_ids > 0) { /* queued: the engine never started */
    int did = 0;
    const oee_task_info *t = NULL;
    if (note(r, oee_engine_cancel(r->eng, r->ids[0], &did, &t)) == 0) {
      if (!did || t->status != OEE_TASK_CANCELLED) r->bad_rc = OEE_ESTATE;
      oee_task_info_unref(t);
    }
  }
  list_all(r);
  status_once(r);
}

/* A snapshot subscription over existing tasks, then live events. */
static void scenario_watch(run *r) {
  if (engine_new(r, 1, 0) != 0) return;
  submit_task(r, "echo", "message", "a");
  submit_task(r, "echo", "message", "b");
  oee_sub *sub = NULL;
  if (note(r, oee_engine_subscribe(r->eng, NULL, 16, 1, &sub)) != 0) return;
  submit_task(r, "echo", "message", "c");
  const oee_task_info *ev;
  int got = 0;
  while (oee_sub_next(sub, &ev) == 0) {
    oee_task_info_unref(ev);
    got++;
  }
  oee_sub_free(sub);
  if (got != r->n_ids) r->bad_rc = OEE_EINVAL; /* one event per task */
}

/* Tasks and pipelines run by the workers to their end, then results. */
static void scenario_run(run *r) {
  if (engine_new(r, 2, 1) != 0) return;
  static const oee_task_status ends[] = {OEE_TASK_DONE, OEE_TASK_ERROR, OEE_TASK_CANCELLED};
  oee_sub_filter f = {.statuses = ends, .n_statuses = 3};
  oee_sub *sub = NULL;
  if (note(r, oee_engine_subscribe(r->eng, &f, 64, 0, &sub)) != 0) return;
  if (note(r, oee_engine_start(r->eng)) != 0) goto done;
  submit_task(r, "echo", "message", "hi");
  submit_task(r, "fail", "message", "no");
  submit_pipeline(r, OEE_STRATEGY_LOCAL_FAST_PRECISE);
  submit_pipeline(r, OEE_STRATEGY_PARALLEL_ENSEMBLE);
  submit_pipeline(r, OEE_STRATEGY_QUALITY_FIRST);
  /* Wait for every acknowledged task to end (a bounded wait: a task left
   * running would show as a timeout, reported below). */
  for (int ended = 0; ended < r->n_ids;) {
    const oee_task_info *ev;
    int rc = oee_sub_wait(sub, &ev, 20000);
    if (rc != 0) {
      r->bad_rc = rc;
      break;
    }
    oee_task_info_unref(ev);
    ended++;
  }
  for (int i = 0; i < r->n_ids; i++) {
    oee_pipeline_result *res = NULL;
    int rc = oee_engine_pipeline_result(r->eng, r->ids[i], &res);
    if (rc != OEE_ENOENT) note(r, rc); /* ENOENT: not a pipeline */
    oee_pipeline_result_free(res);
  }
  list_all(r);
  status_once(r);
done:
  oee_engine_stop(r->eng, -1);
  oee_sub_free(sub);
}

/* A durable engine (data_dir, a cache of one finished task): submissions
 * acknowledged after their commit, a cancel answered after its commit, runs
 * whose changes are stored, reads from the database, a pipeline's result
 * read back from disk, and a clear through purges. */
static void scenario_durable(run *r) {
  if (tu_temp_dir(r->dir, sizeof(r->dir), "alloc-durable") != 0) {
    r->bad_rc = OEE_EIO;
    return;
  }
  if (models_new(r) != 0) return;
  oee_engine_config cfg = {.num_workers = 1,
                           .data_dir = r->dir,
                           .sync_normal = 1,
                           .finished_cache = 1,
                           .models = r->models};
  oee_error err;
  if (note(r, oee_engine_open(&cfg, &r->eng, &err)) != 0) return;
  submit_task(r, "echo", "message", "hi");
  submit_task(r, "echo", "message", "to cancel");
  submit_task(r, "fail", "message", "no");
  submit_pipeline(r, OEE_STRATEGY_LOCAL_FAST_PRECISE);
  int did = 0;
  if (r->n_ids > 1 && note(r, oee_engine_cancel(r->eng, r->ids[1], &did, NULL)) == 0 && !did) {
    r->bad_rc = OEE_ESTATE;
  }
  static const oee_task_status ends[] = {OEE_TASK_DONE, OEE_TASK_ERROR, OEE_TASK_CANCELLED};
  oee_sub_filter f = {.statuses = ends, .n_statuses = 3};
  oee_sub *sub = NULL;
  if (note(r, oee_engine_subscribe(r->eng, &f, 64, 1, &sub)) != 0) return;
  if (note(r, oee_engine_start(r->eng)) != 0) goto done;
  for (int ended = 0; ended < r->n_ids;) { /* the snapshot counts the cancelled one */
    const oee_task_info *ev;
    int rc = oee_sub_wait(sub, &ev, 20000);
    if (rc != 0) {
      r->bad_rc = rc;
      break;
    }
    oee_task_info_unref(ev);
    ended++;
  }
  for (int i = 0; i < r->n_ids; i++) {
    const oee_task_info *t = NULL;
    if (note(r, oee_engine_get(r->eng, r->ids[i], &t)) == 0) oee_task_info_unref(t);
    oee_pipeline_result *res = NULL;
    int rc = oee_engine_pipeline_result(r->eng, r->ids[i], &res);
    if (rc != OEE_ENOENT) note(r, rc); /* ENOENT: not a pipeline */
    oee_pipeline_result_free(res);
  }
  list_all(r);
  status_once(r);
  long cleared = oee_engine_clear_completed(r->eng, 0);
  if (cleared >= 0) {
    r->n_ids = 0; /* every task had ended: all went */
  } else {
    note(r, (int)cleared);
  }
done:
  oee_engine_stop(r->eng, -1);
  oee_sub_free(sub);
}

static void test_durable_engine(void **state) {
  (void)state;
  sweep(scenario_durable);
}

static void test_submit_list_status(void **state) {
  (void)state;
  sweep(scenario_submit);
}

static void test_watch_with_snapshot(void **state) {
  (void)state;
  sweep(scenario_watch);
}

static void test_run_pipelines_results(void **state) {
  (void)state;
  sweep(scenario_run);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_submit_list_status),
      cmocka_unit_test(test_watch_with_snapshot),
      cmocka_unit_test(test_run_pipelines_results),
      cmocka_unit_test(test_durable_engine),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
