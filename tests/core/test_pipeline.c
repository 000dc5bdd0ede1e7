/* test_pipeline.c - model pipelines: strategies, budgets, cancel, results. */
#include <setjmp.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/oee.h"
#include "core/oee_pipeline.h"
#include "tests/core/testutil.h"

#define DATA "tests/core/data/"

typedef struct fixture {
  oee_model_table *models;
  oee_engine *eng;
  const oee_task_info *task; /* the last pipeline run to its end */
  oee_pipeline_result *res;  /* and its result */
} fixture;

static int model(oee_model_table *t, const char *name, double cost, double quality, ...) {
  const char *argv[8];
  size_t n = 0;
  va_list ap;
  va_start(ap, quality);
  while (n < 8 && (argv[n] = va_arg(ap, const char *)) != NULL) n++;
  va_end(ap);
  return oee_model_table_add(t, name, argv, n, cost, quality, 20);
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof(*f));
  if (f == NULL || oee_model_table_create(&f->models) != 0) return -1;
  oee_model_table *m = f->models;
  int rc = model(m, "upper", 0.5, 0.6, "tr", "a-z", "A-Z", NULL);
  rc |= model(m, "bang", 0.25, 0.3, "sed", "s/$/!/", NULL);
  rc |= model(m, "fail", 0.4, 0.9, "sh", DATA "fail.sh", NULL);
  rc |= model(m, "slow", 1, 0.2, "sh", DATA "slow.sh", "30", NULL);
  rc |= model(m, "sleep1", 0.1, 0.1, "sh", DATA "slow.sh", "1", NULL);
  rc |= model(m, "say_a", 1, 0.5, "sh", DATA "say.sh", "A", NULL);
  rc |= model(m, "say_b", 2, 0.4, "sh", DATA "say.sh", "B", NULL);
  rc |= model(m, "say_c", 3, 0.7, "sh", DATA "say.sh", "C", NULL);
  rc |= model(m, "has_hello", 0.1, 0, "grep", "-q", "HELLO", NULL);
  rc |= model(m, "has_bye", 0.1, 0, "grep", "-q", "BYE", NULL);
  if (rc != 0) return -1;
  f->eng = tu_engine(2, NULL, f->models);
  *state = f;
  return f->eng == NULL ? -1 : 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  oee_pipeline_result_free(f->res);
  oee_task_info_unref(f->task);
  tu_engine_free(f->eng);
  oee_model_table_destroy(f->models);
  free(f);
  return tu_no_children() ? 0 : -1;
}

#define S(n, m) \
  { n, m, 0, 0 }
#define SC(n, m, c) \
  { n, m, 1, c }
#define N(a) (sizeof(a) / sizeof((a)[0]))

static oee_pipeline_spec spec_of(oee_strategy st, const oee_stage_spec *stages, size_t n,
                                 const char *input) {
  return (oee_pipeline_spec){.pipeline_id = "p1",
                             .stages = stages,
                             .n_stages = n,
                             .strategy = st,
                             .priority = 5,
                             .input = input};
}

static void submit(fixture *f, const oee_pipeline_spec *spec, char *id) {
  const oee_task_info *t = NULL;
  assert_int_equal(oee_engine_submit_pipeline(f->eng, spec, &t, NULL), 0);
  memcpy(id, t->id, OEE_ID_LEN + 1);
  oee_task_info_unref(t);
}

static oee_pipeline_result *result(fixture *f, const char *id) {
  oee_pipeline_result *r = NULL;
  assert_int_equal(oee_engine_pipeline_result(f->eng, id, &r), 0);
  return r;
}

/* Runs a pipeline to its end; fills f->task and f->res. */
static void run(fixture *f, const oee_pipeline_spec *spec) {
  char id[OEE_ID_LEN + 1];
  submit(f, spec, id);
  f->task = tu_wait_terminal(f->eng, id, 20);
  assert_non_null(f->task);
  f->res = result(f, id);
  assert_int_equal(f->res->status, f->task->status);
}

static void expect_stages(const oee_pipeline_result *r, size_t n, ...) {
  va_list ap;
  assert_int_equal(r->n_stages, n);
  va_start(ap, n);
  for (size_t i = 0; i < n; i++) {
    int want = va_arg(ap, int);
    if ((int)r->stages[i].status != want) {
      fail_msg("stage %zu is %s, want %s", i, oee_stage_status_name(r->stages[i].status),
               oee_stage_status_name((oee_stage_status)want));
    }
  }
  va_end(ap);
}

#define PENDING OEE_STAGE_PENDING
#define RUNNING OEE_STAGE_RUNNING
#define DONE OEE_STAGE_DONE
#define ERROR OEE_STAGE_ERROR
#define SKIPPED OEE_STAGE_SKIPPED
#define CANCELLED OEE_STAGE_CANCELLED

/* ---------------------------------------------------------- names */

static void test_names(void **state) {
  (void)state;
  oee_strategy s;
  assert_string_equal(oee_strategy_name(OEE_STRATEGY_COST_OPTIMIZED), "COST_OPTIMIZED");
  assert_string_equal(oee_strategy_name(99), "UNSPECIFIED");
  assert_int_equal(oee_strategy_parse("quality_first", &s), 0);
  assert_int_equal(s, OEE_STRATEGY_QUALITY_FIRST);
  assert_int_equal(oee_strategy_parse("STRATEGY_PARALLEL_ENSEMBLE", &s), 0);
  assert_int_equal(s, OEE_STRATEGY_PARALLEL_ENSEMBLE);
  assert_int_equal(oee_strategy_parse("UNSPECIFIED", &s), OEE_EINVAL);
  assert_int_equal(oee_strategy_parse("fastest", &s), OEE_EINVAL);
  assert_string_equal(oee_stage_status_name(OEE_STAGE_SKIPPED), "skipped");
  assert_string_equal(oee_stage_status_name(OEE_STAGE_CANCELLED), "cancelled");
}

static void test_model_table(void **state) {
  fixture *f = *state;
  const char *argv[] = {"cat"};
  assert_true(oee_model_table_has(NULL, "echo"));
  assert_false(oee_model_table_has(NULL, "upper"));
  assert_true(oee_model_table_has(f->models, "upper"));
  assert_int_equal(oee_model_table_add(f->models, "echo", argv, 1, 0, 0, 0), OEE_EEXISTS);
  assert_int_equal(oee_model_table_add(f->models, "upper", argv, 1, 0, 0, 0), OEE_EEXISTS);
  assert_int_equal(oee_model_table_add(f->models, "neg", argv, 1, -1, 0, 0), OEE_EINVAL);
  assert_false(oee_model_table_has(f->models, "neg"));
}

/* ------------------------------------------------------ validation */

/* A refused spec: the code and the words that must appear in the reason. */
static void refused(fixture *f, const oee_pipeline_spec *sp, int code, const char *why) {
  oee_error err;
  assert_int_equal(oee_engine_submit_pipeline(f->eng, sp, NULL, &err), code);
  assert_int_equal(err.code, code);
  if (strstr(err.message, why) == NULL) fail_msg("\"%s\" lacks \"%s\"", err.message, why);
}

static void test_validation_errors(void **state) {
  fixture *f = *state;
  oee_stage_spec ok[] = {S("a", "echo")};
  oee_stage_spec unknown[] = {S("a", "echo"), S("b", "gpt-9")};
  oee_stage_spec empty_model[] = {S("a", "")};
  oee_stage_spec neg_cost[] = {SC("a", "echo", -1)};
  oee_stage_spec inf_cost[] = {S("a", "echo"), SC("b", "echo", INFINITY)};
  oee_stage_spec nan_cost[] = {SC("a", "echo", NAN)};
  oee_pipeline_spec sp = spec_of(OEE_STRATEGY_LOCAL_FAST_PRECISE, ok, 0, "x");
  refused(f, &sp, OEE_EINVAL, "stages must not be empty");
  sp = spec_of(OEE_STRATEGY_LOCAL_FAST_PRECISE, ok, OEE_PIPELINE_MAX_STAGES + 1, "x");
  refused(f, &sp, OEE_EINVAL, "at most 64 stages, got 65");
  sp = spec_of(OEE_STRATEGY_LOCAL_FAST_PRECISE, unknown, 2, "x");
  refused(f, &sp, OEE_ENOMODEL, "unknown model_id \"gpt-9\" in stages[1]");
  sp = spec_of(OEE_STRATEGY_UNSPECIFIED, ok, 1, "x");
  refused(f, &sp, OEE_EINVAL, "strategy must be set");
  sp = spec_of((oee_strategy)9, ok, 1, "x");
  refused(f, &sp, OEE_EINVAL, "strategy 9 is not a known strategy");
  sp = spec_of(OEE_STRATEGY_LOCAL_FAST_PRECISE, ok, 1, "x");
  const double bad[] = {-1, NAN, INFINITY, -INFINITY};
  for (size_t i = 0; i < 4; i++) {
    sp.max_time = bad[i];
    refused(f, &sp, OEE_EINVAL, "max_time must be a finite number of seconds >= 0");
    sp.max_time = 0;
    sp.max_cost = bad[i];
    refused(f, &sp, OEE_EINVAL, "max_cost must be a finite number >= 0");
    sp.max_cost = 0;
  }
  sp.priority = 11;
  refused(f, &sp, OEE_EINVAL, "priority must be 0..10, got 11");
  sp = spec_of(OEE_STRATEGY_LOCAL_FAST_PRECISE, empty_model, 1, "x");
  refused(f, &sp, OEE_EINVAL, "stages[0].model_id must not be empty");
  sp = spec_of(OEE_STRATEGY_LOCAL_FAST_PRECISE, neg_cost, 1, "x");
  refused(f, &sp, OEE_EINVAL, "stages[0].cost must be a finite number >= 0, got -1");
  sp = spec_of(OEE_STRATEGY_LOCAL_FAST_PRECISE, inf_cost, 2, "x");
  refused(f, &sp, OEE_EINVAL, "stages[1].cost must be a finite number >= 0, got inf");
  sp = spec_of(OEE_STRATEGY_LOCAL_FAST_PRECISE, nan_cost, 1, "x");
  refused(f, &sp, OEE_EINVAL, "stages[0].cost must be a finite number >= 0, got nan");
  oee_list_query q = {0};
  oee_list_page page;
  assert_int_equal(oee_engine_list(f->eng, &q, &page), 0);
  assert_int_equal(page.total, 0); /* nothing was created */
  oee_list_page_free(&page);
}

static void test_plain_submit_refused(void **state) {
  fixture *f = *state;
  assert_true(oee_engine_has_executor(f->eng, "pipeline"));
  assert_int_equal(tu_submit(f->eng, "pipeline", NULL, 0), OEE_EINVAL);
  assert_int_equal(tu_submit(f->eng, "pipeline", NULL, 1, "pipeline_id", "x"), OEE_EINVAL);
}

static void test_result_lookup(void **state) {
  fixture *f = *state;
  char id[OEE_ID_LEN + 1];
  oee_pipeline_result *r = NULL;
  assert_int_equal(tu_submit(f->eng, "echo", id, 1, "message", "hi"), 0);
  assert_int_equal(oee_engine_pipeline_result(f->eng, id, &r), OEE_ENOENT);
  assert_int_equal(oee_engine_pipeline_result(f->eng, "00000000-0000-4000-8000-000000000000", &r),
                   OEE_ENOENT);
  assert_null(r);
}

/* -------------------------------------------------------- strategies */

static void test_local_fast_precise(void **state) {
  fixture *f = *state;
  oee_stage_spec st[] = {S("up", "upper"), S("ex", "bang"), S("id", "echo")};
  oee_pipeline_spec sp = spec_of(OEE_STRATEGY_LOCAL_FAST_PRECISE, st, 3, "hello\n");
  run(f, &sp);
  assert_int_equal(f->task->status, OEE_TASK_DONE);
  assert_string_equal(f->task->result, "HELLO!");
  assert_string_equal(f->task->name, "pipeline:p1");
  assert_string_equal(f->task->task_type, "pipeline");
  assert_string_equal(oee_task_info_context(f->task, "pipeline_id"), "p1");
  assert_string_equal(oee_task_info_context(f->task, "strategy"), "LOCAL_FAST_PRECISE");
  assert_string_equal(f->res->output, "HELLO!");
  assert_string_equal(f->res->pipeline_id, "p1");
  assert_string_equal(f->res->task_id, f->task->id);
  assert_int_equal(f->res->strategy, OEE_STRATEGY_LOCAL_FAST_PRECISE);
  expect_stages(f->res, 3, DONE, DONE, DONE);
  assert_string_equal(f->res->stages[0].output, "HELLO");
  assert_string_equal(f->res->stages[0].name, "up");
  assert_string_equal(f->res->stages[0].model_id, "upper");
  assert_float_equal(f->res->total_cost, 0.75, 1e-9);
  assert_true(f->res->elapsed_seconds > 0);
  assert_string_equal(f->res->error_message, "");
}

static void test_local_fast_precise_stage_error(void **state) {
  fixture *f = *state;
  oee_stage_spec st[] = {S("up", "upper"), S("bad", "fail"), S("ex", "bang")};
  oee_pipeline_spec sp = spec_of(OEE_STRATEGY_LOCAL_FAST_PRECISE, st, 3, "x");
  run(f, &sp);
  assert_int_equal(f->task->status, OEE_TASK_ERROR);
  assert_string_equal(f->task->error_message, "stage 'bad' failed: exit status 2: model broke");
  assert_string_equal(f->res->error_message, f->task->error_message);
  expect_stages(f->res, 3, DONE, ERROR, SKIPPED);
  assert_string_equal(f->res->stages[1].error_message, "exit status 2: model broke");
  assert_float_equal(f->res->total_cost, 0.9, 1e-9); /* the failed one too */
  assert_float_equal(f->res->stages[2].cost, 0, 0);
}

static void test_ensemble_majority(void **state) {
  fixture *f = *state;
  oee_stage_spec st[] = {S("a", "say_a"), S("b1", "say_b"), S("x", "fail"), S("b2", "say_b")};
  oee_pipeline_spec sp = spec_of(OEE_STRATEGY_PARALLEL_ENSEMBLE, st, 4, "q");
  run(f, &sp);
  assert_int_equal(f->task->status, OEE_TASK_DONE);
  assert_string_equal(f->task->result, "B");
  expect_stages(f->res, 4, DONE, DONE, ERROR, DONE);
  assert_float_equal(f->res->total_cost, 1 + 2 + 0.4 + 2, 1e-9);
}

static void test_ensemble_tie_earliest(void **state) {
  fixture *f = *state;
  oee_stage_spec st[] = {S("x", "fail"), S("b", "say_b"), S("a", "say_a"), S("c", "say_c")};
  oee_pipeline_spec sp = spec_of(OEE_STRATEGY_PARALLEL_ENSEMBLE, st, 4, "q");
  run(f, &sp);
  assert_int_equal(f->task->status, OEE_TASK_DONE);
  assert_string_equal(f->task->result, "B");
}

/* Three 1-second stages finish in about one second, not three. */
static void test_ensemble_runs_at_once(void **state) {
  fixture *f = *state;
  oee_stage_spec st[] = {S("s1", "sleep1"), S("s2", "sleep1"), S("s3", "sleep1")};
  oee_pipeline_spec sp = spec_of(OEE_STRATEGY_PARALLEL_ENSEMBLE, st, 3, "same");
  double t0 = tu_now();
  run(f, &sp);
  assert_true(tu_now() - t0 < 2.5);
  assert_int_equal(f->task->status, OEE_TASK_DONE);
  assert_string_equal(f->task->result, "same");
  for (size_t i = 0; i < 3; i++) {
    assert_true(f->res->stages[i].elapsed_seconds >= 0.9);
  }
}

static void test_ensemble_all_fail(void **state) {
  fixture *f = *state;
  oee_stage_spec st[] = {S("x", "fail"), S("y", "fail")};
  oee_pipeline_spec sp = spec_of(OEE_STRATEGY_PARALLEL_ENSEMBLE, st, 2, "q");
  run(f, &sp);
  assert_int_equal(f->task->status, OEE_TASK_ERROR);
  assert_string_equal(f->task->error_message, "all stages failed");
  expect_stages(f->res, 2, ERROR, ERROR);
}

static void test_sequential_validation(void **state) {
  fixture *f = *state;
  oee_stage_spec st[] = {S("gen", "upper"), S("v1", "has_hello"), S("v2", "echo")};
  oee_pipeline_spec sp = spec_of(OEE_STRATEGY_SEQUENTIAL_VALIDATION, st, 3, "hello");
  run(f, &sp);
  assert_int_equal(f->task->status, OEE_TASK_DONE);
  assert_string_equal(f->task->result, "HELLO"); /* the producer's output */
  expect_stages(f->res, 3, DONE, DONE, DONE);
  assert_string_equal(f->res->stages[2].output, "HELLO"); /* got it as input */
}

static void test_sequential_validation_fails(void **state) {
  fixture *f = *state;
  oee_stage_spec st[] = {S("gen", "upper"), S("v1", "has_hello"), S("v2", "has_bye"),
                         S("v3", "echo")};
  oee_pipeline_spec sp = spec_of(OEE_STRATEGY_SEQUENTIAL_VALIDATION, st, 4, "hello");
  run(f, &sp);
  assert_int_equal(f->task->status, OEE_TASK_ERROR);
  assert_string_equal(f->task->error_message, "validation failed at stage 'v2': exit status 1");
  expect_stages(f->res, 4, DONE, DONE, ERROR, SKIPPED);
  assert_string_equal(f->res->output, "");
}

static void test_cost_optimized_order(void **state) {
  fixture *f = *state;
  /* Costs 3, 0.4 (fails), 2: tried as x (0.4), b (2); c never runs. */
  oee_stage_spec st[] = {S("c", "say_c"), S("x", "fail"), S("b", "say_b")};
  oee_pipeline_spec sp = spec_of(OEE_STRATEGY_COST_OPTIMIZED, st, 3, "q");
  run(f, &sp);
  assert_int_equal(f->task->status, OEE_TASK_DONE);
  assert_string_equal(f->task->result, "B");
  expect_stages(f->res, 3, SKIPPED, ERROR, DONE);
  assert_float_equal(f->res->total_cost, 2.4, 1e-9);
}

/* Overrides decide the order: "c" becomes the cheapest. */
static void test_cost_optimized_overrides(void **state) {
  fixture *f = *state;
  oee_stage_spec st[] = {S("a", "say_a"), SC("c", "say_c", 0.25), SC("b", "say_b", 0)};
  oee_pipeline_spec sp = spec_of(OEE_STRATEGY_COST_OPTIMIZED, st, 3, "q");
  run(f, &sp);
  assert_string_equal(f->task->result, "B");
  expect_stages(f->res, 3, SKIPPED, SKIPPED, DONE);
  assert_float_equal(f->res->total_cost, 0, 0);
  assert_float_equal(f->res->stages[2].cost, 0, 0);
}

static void test_quality_first_order(void **state) {
  fixture *f = *state;
  /* Qualities 0.5, 0.9 (fails), 0.7, 0.4: tried x, c; a and b never run. */
  oee_stage_spec st[] = {S("a", "say_a"), S("x", "fail"), S("c", "say_c"), S("b", "say_b")};
  oee_pipeline_spec sp = spec_of(OEE_STRATEGY_QUALITY_FIRST, st, 4, "q");
  run(f, &sp);
  assert_int_equal(f->task->status, OEE_TASK_DONE);
  assert_string_equal(f->task->result, "C");
  expect_stages(f->res, 4, SKIPPED, ERROR, DONE, SKIPPED);
  assert_float_equal(f->res->stages[1].cost, 0.4, 1e-9);
  assert_float_equal(f->res->stages[2].cost, 3, 1e-9);
  assert_float_equal(f->res->total_cost, 3.4, 1e-9);
}

static void test_ordered_all_fail(void **state) {
  fixture *f = *state;
  oee_stage_spec st[] = {S("x", "fail"), S("y", "fail")};
  oee_pipeline_spec sp = spec_of(OEE_STRATEGY_QUALITY_FIRST, st, 2, "q");
  run(f, &sp);
  assert_int_equal(f->task->status, OEE_TASK_ERROR);
  assert_non_null(strstr(f->task->error_message, "all stages failed"));
  expect_stages(f->res, 2, ERROR, ERROR);
}

/* ----------------------------------------------------------- budgets */

static void test_costs_with_overrides(void **state) {
  fixture *f = *state;
  oee_stage_spec st[] = {SC("e", "echo", 2.5), SC("up", "upper", 0), S("e2", "echo"),
                         S("ex", "bang")};
  oee_pipeline_spec sp = spec_of(OEE_STRATEGY_LOCAL_FAST_PRECISE, st, 4, "ab");
  run(f, &sp);
  assert_string_equal(f->task->result, "AB!");
  assert_float_equal(f->res->stages[0].cost, 2.5, 0);
  assert_float_equal(f->res->stages[1].cost, 0, 0);
  assert_float_equal(f->res->stages[2].cost, 0, 0); /* echo costs 0 */
  assert_float_equal(f->res->stages[3].cost, 0.25, 0);
  assert_float_equal(f->res->total_cost, 2.75, 1e-9);
}

static void test_budget_chained(void **state) {
  fixture *f = *state;
  oee_stage_spec st[] = {S("u1", "upper"), S("u2", "upper"), S("u3", "upper"), S("e", "echo")};
  oee_pipeline_spec sp = spec_of(OEE_STRATEGY_LOCAL_FAST_PRECISE, st, 4, "a");
  sp.max_cost = 1.0;
  run(f, &sp);
  assert_int_equal(f->task->status, OEE_TASK_ERROR);
  assert_string_equal(f->task->error_message, "cost budget exceeded");
  expect_stages(f->res, 4, DONE, DONE, SKIPPED, SKIPPED);
  assert_float_equal(f->res->total_cost, 1.0, 1e-9);
}

static void test_budget_validation_chain(void **state) {
  fixture *f = *state;
  oee_stage_spec st[] = {S("gen", "upper"), SC("v", "has_hello", 5)};
  oee_pipeline_spec sp = spec_of(OEE_STRATEGY_SEQUENTIAL_VALIDATION, st, 2, "hello");
  sp.max_cost = 2;
  run(f, &sp);
  assert_int_equal(f->task->status, OEE_TASK_ERROR);
  assert_string_equal(f->task->error_message, "cost budget exceeded");
  expect_stages(f->res, 2, DONE, SKIPPED);
}

/* Tried in order: a stage that does not fit is skipped, the next tried. */
static void test_budget_skips_then_succeeds(void **state) {
  fixture *f = *state;
  /* Quality order: x (0.9, fails, 0.4), c (0.7, cost 3: no), a (0.5, 1). */
  oee_stage_spec st[] = {S("a", "say_a"), S("x", "fail"), S("c", "say_c")};
  oee_pipeline_spec sp = spec_of(OEE_STRATEGY_QUALITY_FIRST, st, 3, "q");
  sp.max_cost = 1.5;
  run(f, &sp);
  assert_int_equal(f->task->status, OEE_TASK_DONE);
  assert_string_equal(f->task->result, "A");
  expect_stages(f->res, 3, DONE, ERROR, SKIPPED);
  assert_float_equal(f->res->total_cost, 1.4, 1e-9);
}

static void test_budget_leaves_no_output(void **state) {
  fixture *f = *state;
  oee_stage_spec st[] = {S("x", "fail"), S("y", "fail"), S("a", "say_a")};
  oee_pipeline_spec sp = spec_of(OEE_STRATEGY_COST_OPTIMIZED, st, 3, "q");
  sp.max_cost = 1.0; /* 0.4 + 0.4 started; 1 more does not fit */
  run(f, &sp);
  assert_int_equal(f->task->status, OEE_TASK_ERROR);
  assert_string_equal(f->task->error_message, "cost budget exceeded");
  expect_stages(f->res, 3, ERROR, ERROR, SKIPPED);
  assert_float_equal(f->res->total_cost, 0.8, 1e-9);
}

static void test_budget_ensemble(void **state) {
  fixture *f = *state;
  oee_stage_spec st[] = {S("b", "say_b"), S("c", "say_c"), S("a", "say_a")};
  oee_pipeline_spec sp = spec_of(OEE_STRATEGY_PARALLEL_ENSEMBLE, st, 3, "q");
  sp.max_cost = 3.5; /* b (2) fits, c (3) does not, a (1) does */
  run(f, &sp);
  assert_int_equal(f->task->status, OEE_TASK_DONE);
  assert_string_equal(f->task->result, "B");
  expect_stages(f->res, 3, DONE, SKIPPED, DONE);
  assert_float_equal(f->res->total_cost, 3, 1e-9);
}

static void test_deadline_chained(void **state) {
  fixture *f = *state;
  oee_stage_spec st[] = {S("up", "upper"), S("slow", "slow"), S("ex", "bang")};
  oee_pipeline_spec sp = spec_of(OEE_STRATEGY_LOCAL_FAST_PRECISE, st, 3, "a");
  sp.max_time = 0.5;
  double t0 = tu_now();
  run(f, &sp);
  assert_true(tu_now() - t0 < 5);
  assert_int_equal(f->task->status, OEE_TASK_ERROR);
  assert_string_equal(f->task->error_message, "deadline exceeded");
  expect_stages(f->res, 3, DONE, CANCELLED, SKIPPED);
  assert_true(f->res->elapsed_seconds >= 0.45 && f->res->elapsed_seconds < 5);
  assert_float_equal(f->res->total_cost, 1.5, 1e-9);
}

static void test_deadline_ensemble(void **state) {
  fixture *f = *state;
  oee_stage_spec st[] = {S("a", "say_a"), S("slow", "slow"), S("s2", "slow")};
  oee_pipeline_spec sp = spec_of(OEE_STRATEGY_PARALLEL_ENSEMBLE, st, 3, "a");
  sp.max_time = 0.5;
  double t0 = tu_now();
  run(f, &sp);
  assert_true(tu_now() - t0 < 5);
  assert_int_equal(f->task->status, OEE_TASK_ERROR);
  assert_string_equal(f->task->error_message, "deadline exceeded");
  expect_stages(f->res, 3, DONE, CANCELLED, CANCELLED);
}

static void test_deadline_not_reached(void **state) {
  fixture *f = *state;
  oee_stage_spec st[] = {S("up", "upper")};
  oee_pipeline_spec sp = spec_of(OEE_STRATEGY_COST_OPTIMIZED, st, 1, "a");
  sp.max_time = 10;
  run(f, &sp);
  assert_int_equal(f->task->status, OEE_TASK_DONE);
  assert_string_equal(f->task->result, "A");
}

/* ------------------------------------------------------------ cancel */

/* Waits up to 5 s until stage `i` of pipeline `id` is RUNNING. Stage
 * changes publish no event, so this polls with a deadline. */
static int stage_running(fixture *f, const char *id, size_t i) {
  double end = tu_now() + 5;
  for (;;) {
    oee_pipeline_result *r = result(f, id);
    int ok = r->stages[i].status == OEE_STAGE_RUNNING;
    oee_pipeline_result_free(r);
    if (ok) return 1;
    if (tu_now() >= end) return 0;
    nanosleep(&(struct timespec){0, 1000000}, NULL);
  }
}

static void cancel_and_check(fixture *f, const char *id) {
  int cancelled = 0;
  double t0 = tu_now();
  assert_int_equal(oee_engine_cancel(f->eng, id, &cancelled, NULL), 0);
  assert_true(cancelled);
  f->task = tu_wait_terminal(f->eng, id, 5);
  assert_non_null(f->task);
  assert_true(tu_now() - t0 < 3);
  assert_int_equal(f->task->status, OEE_TASK_CANCELLED);
  f->res = result(f, id);
  assert_int_equal(f->res->status, OEE_TASK_CANCELLED);
}

static void test_cancel_chained(void **state) {
  fixture *f = *state;
  oee_stage_spec st[] = {S("up", "upper"), S("slow", "slow"), S("ex", "bang")};
  oee_pipeline_spec sp = spec_of(OEE_STRATEGY_LOCAL_FAST_PRECISE, st, 3, "a");
  char id[OEE_ID_LEN + 1];
  submit(f, &sp, id);
  assert_true(stage_running(f, id, 1));
  assert_true(tu_wait_children(1, 5)); /* the stage's command really runs */
  cancel_and_check(f, id);
  expect_stages(f->res, 3, DONE, CANCELLED, SKIPPED);
  assert_true(tu_no_children());
}

static void test_cancel_ensemble(void **state) {
  fixture *f = *state;
  oee_stage_spec st[] = {S("s1", "slow"), S("s2", "slow"), S("s3", "slow")};
  oee_pipeline_spec sp = spec_of(OEE_STRATEGY_PARALLEL_ENSEMBLE, st, 3, "a");
  char id[OEE_ID_LEN + 1];
  submit(f, &sp, id);
  assert_true(stage_running(f, id, 2));
  assert_true(tu_wait_children(3, 5));
  cancel_and_check(f, id);
  expect_stages(f->res, 3, CANCELLED, CANCELLED, CANCELLED);
  assert_true(tu_no_children());
}

/* A pipeline cancelled while queued never ran: its stages are SKIPPED. */
static void test_cancel_queued(void **state) {
  fixture *f = *state;
  oee_engine *idle = NULL;
  oee_engine_config cfg = {.num_workers = 1, .models = f->models};
  assert_int_equal(oee_engine_create(&cfg, &idle), 0); /* never started */
  oee_stage_spec st[] = {S("up", "upper"), S("e", "echo")};
  oee_pipeline_spec sp = spec_of(OEE_STRATEGY_LOCAL_FAST_PRECISE, st, 2, "a");
  sp.name = "custom";
  const oee_task_info *t = NULL;
  assert_int_equal(oee_engine_submit_pipeline(idle, &sp, &t, NULL), 0);
  assert_string_equal(t->name, "custom");
  oee_pipeline_result *r = NULL;
  assert_int_equal(oee_engine_pipeline_result(idle, t->id, &r), 0);
  assert_int_equal(r->status, OEE_TASK_QUEUED);
  expect_stages(r, 2, PENDING, PENDING);
  oee_pipeline_result_free(r);
  assert_int_equal(oee_engine_cancel(idle, t->id, NULL, NULL), 0);
  assert_int_equal(oee_engine_pipeline_result(idle, t->id, &r), 0);
  assert_int_equal(r->status, OEE_TASK_CANCELLED);
  expect_stages(r, 2, SKIPPED, SKIPPED);
  assert_float_equal(r->total_cost, 0, 0);
  oee_pipeline_result_free(r);
  oee_task_info_unref(t);
  oee_engine_destroy(idle);
}

/* Results can be read while stages run (live updates). */
static void test_live_result(void **state) {
  fixture *f = *state;
  oee_stage_spec st[] = {S("e", "echo"), S("s", "sleep1")};
  oee_pipeline_spec sp = spec_of(OEE_STRATEGY_LOCAL_FAST_PRECISE, st, 2, "z");
  char id[OEE_ID_LEN + 1];
  submit(f, &sp, id);
  assert_true(stage_running(f, id, 1));
  oee_pipeline_result *r = result(f, id);
  assert_int_equal(r->status, OEE_TASK_RUNNING);
  expect_stages(r, 2, DONE, RUNNING);
  assert_string_equal(r->stages[0].output, "z");
  assert_float_equal(r->total_cost, 0.1, 1e-9);
  oee_pipeline_result_free(r);
  f->task = tu_wait_terminal(f->eng, id, 10);
  assert_non_null(f->task);
  assert_string_equal(f->task->result, "z");
}

/* ------------------------------------------------ retries as a whole */

/* A pipeline has no attempts of its own: it takes the engine's
 * default_max_attempts, and every attempt runs it from its first stage
 * (pipeline_run.c resets the stages). These tests give each run its own
 * directory and engine, whose models leave traces there. */
typedef struct retry_fixture {
  char dir[256];
  oee_model_table *models;
  oee_engine *eng;
} retry_fixture;

/* "count" passes its input on and appends a line to <dir>/count, so the
 * file says how often the first stage ran; "flaky" fails (exit 3, "not
 * yet") while <dir>/marker is absent and creates it, so only its first run
 * fails; later runs upper-case. */
static int retry_models(retry_fixture *rf) {
  static const char count_sh[] = "cat; echo run >>\"$1/count\"";
  static const char flaky_sh[] =
      "if [ -e \"$1/marker\" ]; then tr a-z A-Z; "
      "else : >\"$1/marker\"; cat >/dev/null; echo 'not yet' >&2; exit 3; fi";
  if (oee_model_table_create(&rf->models) != 0) return -1;
  int rc = model(rf->models, "count", 1, 0.5, "sh", "-c", count_sh, "sh", rf->dir, NULL);
  rc |= model(rf->models, "flaky", 2, 0.5, "sh", "-c", flaky_sh, "sh", rf->dir, NULL);
  rc |= model(rf->models, "bang", 0.25, 0.3, "sed", "s/$/!/", NULL);
  return rc;
}

/* An engine of one worker, with `attempts` as every task's default; with
 * `durable`, in rf->dir and keeping one finished task in memory, so that
 * a finished pipeline is soon read back from its row. */
static void retry_setup(retry_fixture *rf, int attempts, int durable) {
  assert_int_equal(tu_temp_dir(rf->dir, sizeof(rf->dir), "pipeline-retry"), 0);
  assert_int_equal(retry_models(rf), 0);
  oee_engine_config cfg = {.num_workers = 1,
                           .models = rf->models,
                           .default_max_attempts = attempts,
                           .data_dir = durable ? rf->dir : NULL,
                           .sync_normal = 1,
                           .finished_cache = 1};
  oee_error err;
  if (oee_engine_open(&cfg, &rf->eng, &err) != 0) fail_msg("open: %s", err.message);
  assert_int_equal(oee_engine_start(rf->eng), 0);
}

static void retry_teardown(retry_fixture *rf) {
  tu_engine_free(rf->eng);
  oee_model_table_destroy(rf->models);
  assert_true(tu_no_children());
  assert_int_equal(tu_remove_dir(rf->dir), 0);
}

/* How many times the "count" stage ran (lines in <dir>/count). */
static int count_runs(const retry_fixture *rf) {
  char path[300];
  snprintf(path, sizeof(path), "%s/count", rf->dir);
  FILE *fp = fopen(path, "r");
  if (fp == NULL) return 0;
  int n = 0, c;
  while ((c = fgetc(fp)) != EOF) n += c == '\n';
  fclose(fp);
  return n;
}

static const oee_stage_spec retry_stages[] = {S("c", "count"), S("f", "flaky"), S("b", "bang")};

static void retry_submit(retry_fixture *rf, char *id) {
  oee_pipeline_spec sp = spec_of(OEE_STRATEGY_LOCAL_FAST_PRECISE, retry_stages, 3, "hello");
  const oee_task_info *t = NULL;
  assert_int_equal(oee_engine_submit_pipeline(rf->eng, &sp, &t, NULL), 0);
  memcpy(id, t->id, OEE_ID_LEN + 1);
  oee_task_info_unref(t);
}

/* The next event of the one task the engine runs; caller unrefs. */
static const oee_task_info *next_status(oee_sub *sub, oee_task_status want, int attempt) {
  const oee_task_info *ev = NULL;
  assert_int_equal(oee_sub_wait(sub, &ev, 20000), 0);
  if (ev->status != want) {
    fail_msg("event %s (%s), want %s", oee_task_status_name(ev->status), ev->error_message,
             oee_task_status_name(want));
  }
  assert_int_equal(ev->attempt, attempt);
  return ev;
}

/* A whole run that succeeded once: each stage's output, no error left
 * from an earlier attempt, and each stage charged once. */
static void expect_clean_success(retry_fixture *rf, const char *id) {
  oee_pipeline_result *r = NULL;
  assert_int_equal(oee_engine_pipeline_result(rf->eng, id, &r), 0);
  assert_int_equal(r->status, OEE_TASK_DONE);
  expect_stages(r, 3, DONE, DONE, DONE);
  assert_string_equal(r->stages[0].output, "hello");
  assert_string_equal(r->stages[1].output, "HELLO");
  assert_string_equal(r->stages[1].error_message, "");
  assert_string_equal(r->stages[2].output, "HELLO!");
  assert_string_equal(r->output, "HELLO!");
  assert_string_equal(r->error_message, "");
  assert_float_equal(r->total_cost, 3.25, 1e-9);
  oee_pipeline_result_free(r);
}

/* The first attempt's failure as the result shows it, read while the
 * retry still waits for its backoff (skipped if the machine was so slow
 * that the backoff ran out before the read: the retry may have begun). */
static void expect_first_failure(retry_fixture *rf, const oee_task_info *sched) {
  oee_pipeline_result *r = NULL;
  assert_int_equal(oee_engine_pipeline_result(rf->eng, sched->id, &r), 0);
  if (oee_now_ns() < sched->run_at_ns) {
    expect_stages(r, 3, DONE, ERROR, SKIPPED);
    assert_string_equal(r->stages[1].error_message, "exit status 3: not yet");
    assert_float_equal(r->total_cost, 3, 1e-9);
  }
  oee_pipeline_result_free(r);
}

/* Attempt 1 fails at stage 2; the retry runs all three stages again. */
static void test_retry_whole_pipeline(void **state) {
  (void)state;
  retry_fixture rf = {0};
  retry_setup(&rf, 2, 0);
  oee_sub *sub;
  assert_int_equal(oee_engine_subscribe(rf.eng, NULL, 64, 0, &sub), 0);
  char id[OEE_ID_LEN + 1];
  retry_submit(&rf, id);
  oee_task_info_unref(next_status(sub, OEE_TASK_QUEUED, 0));
  oee_task_info_unref(next_status(sub, OEE_TASK_RUNNING, 1));
  const oee_task_info *ev = next_status(sub, OEE_TASK_SCHEDULED, 1);
  expect_first_failure(&rf, ev);
  assert_string_equal(ev->error_message, "stage 'f' failed: exit status 3: not yet");
  assert_true(ev->run_at_ns > 0);
  oee_task_info_unref(ev);
  oee_task_info_unref(next_status(sub, OEE_TASK_QUEUED, 1));
  oee_task_info_unref(next_status(sub, OEE_TASK_RUNNING, 2));
  ev = next_status(sub, OEE_TASK_DONE, 2);
  assert_int_equal(ev->max_attempts, 2);
  assert_string_equal(ev->result, "HELLO!");
  assert_string_equal(ev->error_message, "");
  oee_task_info_unref(ev);
  assert_int_equal(count_runs(&rf), 2); /* stage 1 ran in both attempts */
  expect_clean_success(&rf, id);
  oee_sub_free(sub);
  retry_teardown(&rf);
}

/* RetryTask of a pipeline that ended ERROR (no attempts left) runs it
 * again from its first stage; `durable`: after it left memory. */
static void retry_task_scenario(int durable) {
  retry_fixture rf = {0};
  retry_setup(&rf, 1, durable);
  char id[OEE_ID_LEN + 1], other[OEE_ID_LEN + 1];
  retry_submit(&rf, id);
  const oee_task_info *t = tu_wait_terminal(rf.eng, id, 20);
  assert_non_null(t);
  assert_int_equal(t->status, OEE_TASK_ERROR);
  assert_int_equal(t->attempt, 1);
  oee_task_info_unref(t);
  assert_int_equal(count_runs(&rf), 1);
  /* Another task finishes after it: with a cache of one, the pipeline is
   * read back from its stored row by the retry. */
  assert_int_equal(tu_submit(rf.eng, "echo", other, 0), 0);
  assert_true(tu_wait_status(rf.eng, other, OEE_TASK_DONE, 20));
  oee_error err;
  if (oee_engine_retry(rf.eng, id, &t, &err) != 0) fail_msg("retry: %s", err.message);
  assert_int_equal(t->attempt, 0);
  oee_task_info_unref(t);
  t = tu_wait_terminal(rf.eng, id, 20);
  assert_non_null(t);
  assert_int_equal(t->status, OEE_TASK_DONE);
  assert_int_equal(t->attempt, 1);
  assert_string_equal(t->result, "HELLO!");
  oee_task_info_unref(t);
  assert_int_equal(count_runs(&rf), 2);
  expect_clean_success(&rf, id);
  retry_teardown(&rf);
}

static void test_retry_task_pipeline(void **state) {
  (void)state;
  retry_task_scenario(0);
}

static void test_retry_task_pipeline_durable(void **state) {
  (void)state;
  retry_task_scenario(1);
}

int main(void) {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_names),
      T(test_model_table),
      T(test_validation_errors),
      T(test_plain_submit_refused),
      T(test_result_lookup),
      T(test_local_fast_precise),
      T(test_local_fast_precise_stage_error),
      T(test_ensemble_majority),
      T(test_ensemble_tie_earliest),
      T(test_ensemble_runs_at_once),
      T(test_ensemble_all_fail),
      T(test_sequential_validation),
      T(test_sequential_validation_fails),
      T(test_cost_optimized_order),
      T(test_cost_optimized_overrides),
      T(test_quality_first_order),
      T(test_ordered_all_fail),
      T(test_costs_with_overrides),
      T(test_budget_chained),
      T(test_budget_validation_chain),
      T(test_budget_skips_then_succeeds),
      T(test_budget_leaves_no_output),
      T(test_budget_ensemble),
      T(test_deadline_chained),
      T(test_deadline_ensemble),
      T(test_deadline_not_reached),
      T(test_cancel_chained),
      T(test_cancel_ensemble),
      T(test_cancel_queued),
      T(test_live_result),
      cmocka_unit_test(test_retry_whole_pipeline),
      cmocka_unit_test(test_retry_task_pipeline),
      cmocka_unit_test(test_retry_task_pipeline_durable),
  };
#undef T
  return cmocka_run_group_tests(tests, NULL, NULL);
}
