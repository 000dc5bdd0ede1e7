/*
 * test_pipelines.c - SubmitPipeline / GetPipelineResult against the real
 * server with command models from data/pipelines.json: the five strategies,
 * budgets (deadline and cost), cost overrides, cancellation and errors.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/integration/fixture.h"

#define ST(x) OEE__V1__TASK_STATUS__TASK_STATUS_##x
#define SS(x) OEE__V1__STAGE_STATUS__STAGE_STATUS_##x
#define KV(...) ((const char *const[]){__VA_ARGS__, NULL})
#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define LOCAL OEE__V1__PIPELINE_STRATEGY__LOCAL_FAST_PRECISE
#define ENSEMBLE OEE__V1__PIPELINE_STRATEGY__PARALLEL_ENSEMBLE
#define VALIDATE OEE__V1__PIPELINE_STRATEGY__SEQUENTIAL_VALIDATION
#define CHEAP OEE__V1__PIPELINE_STRATEGY__COST_OPTIMIZED
#define QUALITY OEE__V1__PIPELINE_STRATEGY__QUALITY_FIRST
#define NOCOST NAN
#define EPS 1e-9

static it_server srv;

static void start(const char *const *args) {
  assert_int_equal(it_server_start(&srv, "pipelines.json", args, NULL, 30000), 0);
}

static int teardown(void **state) { return it_server_teardown(&srv); }

/* One requested stage: model id and an optional cost override (NAN: none). */
typedef struct stage {
  const char *model;
  double cost;
} stage;

typedef struct pipe_opts {
  double max_time, max_cost;
  int priority; /* -1: unset */
  const char *name;
} pipe_opts;

/* Submits a pipeline; returns the gRPC status and *id (malloc'd) on OK. */
static int submit(Oee__V1__PipelineStrategy strategy, const char *input, const stage *stages,
                  size_t n, const pipe_opts *o, char **id) {
  Oee__V1__PipelineStage ps[16], *pp[16];
  char names[16][24];
  for (size_t i = 0; i < n; i++) {
    oee__v1__pipeline_stage__init(&ps[i]);
    snprintf(names[i], sizeof(names[i]), "s%zu", i);
    ps[i].name = names[i];
    ps[i].model_id = (char *)stages[i].model;
    if (!isnan(stages[i].cost)) {
      ps[i].cost_present_case = OEE__V1__PIPELINE_STAGE__COST_PRESENT_COST;
      ps[i].cost = stages[i].cost;
    }
    pp[i] = &ps[i];
  }
  Oee__V1__SubmitPipelineRequest req = OEE__V1__SUBMIT_PIPELINE_REQUEST__INIT;
  req.pipeline_id = (char *)"pl-1";
  req.strategy = strategy;
  req.input = (char *)input;
  req.n_stages = n;
  req.stages = pp;
  if (o) {
    req.max_time = o->max_time;
    req.max_cost = o->max_cost;
    if (o->priority >= 0) {
      req.priority_present_case = OEE__V1__SUBMIT_PIPELINE_REQUEST__PRIORITY_PRESENT_PRIORITY;
      req.priority = o->priority;
    }
    if (o->name) req.name = (char *)o->name;
  }
  Oee__V1__SubmitPipelineResponse *resp = NULL;
  int code = oee_v1_orchestrator_service_submit_pipeline(srv.ch, &req, &resp, IT_CALL_MS, NULL);
  if (code == 0) {
    assert_non_null(resp->task);
    assert_string_equal(resp->task->task_type, "pipeline");
    *id = strdup(resp->task_id);
    oee__v1__submit_pipeline_response__free_unpacked(resp, NULL);
  }
  return code;
}

static char *submit_ok(Oee__V1__PipelineStrategy strategy, const char *input, const stage *stages,
                       size_t n, const pipe_opts *o) {
  char *id = NULL;
  assert_int_equal(submit(strategy, input, stages, n, o, &id), 0);
  return id;
}

static Oee__V1__PipelineResult *result(const char *id, int *code) {
  Oee__V1__GetPipelineResultRequest req = OEE__V1__GET_PIPELINE_RESULT_REQUEST__INIT;
  req.task_id = (char *)id;
  Oee__V1__PipelineResult *r = NULL;
  int c = oee_v1_orchestrator_service_get_pipeline_result(srv.ch, &req, &r, IT_CALL_MS, NULL);
  if (code) *code = c;
  return r;
}

/* Waits for the pipeline task to end with `want`, checks that the task's
 * result equals the pipeline output, and returns the pipeline result. */
static Oee__V1__PipelineResult *finish(const char *id, Oee__V1__TaskStatus want) {
  Oee__V1__Task *t = it_wait_final(srv.ch, id, 30000);
  assert_non_null(t);
  if (t->status != want)
    fprintf(stderr, "pipeline ended %d (%s), want %d\n", t->status, t->error_message, want);
  assert_int_equal(t->status, want);
  int code;
  Oee__V1__PipelineResult *r = result(id, &code);
  assert_int_equal(code, 0);
  assert_string_equal(r->task_id, id);
  assert_string_equal(r->pipeline_id, "pl-1");
  assert_int_equal(r->status, want);
  assert_string_equal(t->result, r->output);
  if (want == ST(ERROR)) assert_string_equal(t->error_message, r->error_message);
  oee__v1__task__free_unpacked(t, NULL);
  return r;
}

static void expect_stage(const Oee__V1__PipelineResult *r, size_t i, const char *model,
                         Oee__V1__StageStatus status, const char *output, double cost) {
  assert_true(i < r->n_stages);
  const Oee__V1__StageResult *s = r->stages[i];
  char name[24];
  snprintf(name, sizeof(name), "s%zu", i);
  if (s->status != status) fprintf(stderr, "stage %zu status %d want %d\n", i, s->status, status);
  assert_string_equal(s->name, name);
  assert_string_equal(s->model_id, model);
  assert_int_equal(s->status, status);
  if (output) assert_string_equal(s->output, output);
  if (fabs(s->cost - cost) > EPS) fprintf(stderr, "stage %zu cost %g want %g\n", i, s->cost, cost);
  assert_true(fabs(s->cost - cost) < EPS);
  if (status == SS(ERROR)) assert_true(strlen(s->error_message) > 0);
}

static void expect_total(const Oee__V1__PipelineResult *r, double total) {
  if (fabs(r->total_cost - total) > EPS)
    fprintf(stderr, "total_cost %g want %g\n", r->total_cost, total);
  assert_true(fabs(r->total_cost - total) < EPS);
}

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define RUN(strategy, input, st, opts, want) \
  finish(id = submit_ok(strategy, input, st, N(st), opts), want)
#define DONE_WITH(r)                                  \
  do {                                                \
    oee__v1__pipeline_result__free_unpacked(r, NULL); \
    free(id);                                         \
  } while (0)

/* ----------------------------------------------------------------- tests */

static void test_local_fast_precise(void **state) {
  start(NULL);
  char *id;
  stage a[] = {{"upper", NOCOST}, {"rev", NOCOST}, {"fixc", NOCOST}, {"echo", NOCOST}};
  Oee__V1__PipelineResult *r = RUN(LOCAL, "abc", a, NULL, ST(DONE));
  assert_int_equal(r->strategy, LOCAL);
  assert_string_equal(r->output, "C"); /* trailing whitespace trimmed */
  expect_stage(r, 0, "upper", SS(DONE), "ABC", 0.5);
  expect_stage(r, 1, "rev", SS(DONE), "CBA", 0.25);
  expect_stage(r, 2, "fixc", SS(DONE), "C", 0.75);
  expect_stage(r, 3, "echo", SS(DONE), "C", 0.0);
  expect_total(r, 1.5);
  assert_string_equal(r->error_message, "");
  assert_true(r->elapsed_seconds > 0);
  Oee__V1__Task *t = it_get(srv.ch, id, NULL);
  assert_string_equal(t->name, "pipeline:pl-1"); /* default name */
  assert_int_equal(t->priority, 5);
  oee__v1__task__free_unpacked(t, NULL);
  DONE_WITH(r);

  /* The first failing stage fails the pipeline; later stages never run. */
  stage b[] = {{"upper", NOCOST}, {"bad", NOCOST}, {"rev", NOCOST}};
  r = RUN(LOCAL, "abc", b, NULL, ST(ERROR));
  expect_stage(r, 0, "upper", SS(DONE), "ABC", 0.5);
  expect_stage(r, 1, "bad", SS(ERROR), NULL, 0.1);
  expect_stage(r, 2, "rev", SS(SKIPPED), "", 0.0);
  expect_total(r, 0.6); /* failed stages are charged too */
  assert_true(strlen(r->error_message) > 0);
  assert_string_equal(r->output, "");
  DONE_WITH(r);
}

static void test_parallel_ensemble(void **state) {
  start(NULL);
  char *id;
  stage maj[] = {{"fixb", NOCOST}, {"fixa", NOCOST}, {"fixa2", NOCOST}};
  Oee__V1__PipelineResult *r = RUN(ENSEMBLE, "x", maj, NULL, ST(DONE));
  assert_string_equal(r->output, "A"); /* two of three say A */
  expect_stage(r, 0, "fixb", SS(DONE), "B", 1.5);
  expect_stage(r, 1, "fixa", SS(DONE), "A", 2.0);
  expect_stage(r, 2, "fixa2", SS(DONE), "A", 3.0);
  expect_total(r, 6.5);
  DONE_WITH(r);

  stage tie[] = {{"fixb", NOCOST}, {"fixa", NOCOST}};
  r = RUN(ENSEMBLE, "x", tie, NULL, ST(DONE));
  assert_string_equal(r->output, "B"); /* tie: the earliest stage */
  DONE_WITH(r);

  stage tie2[] = {{"bad", NOCOST}, {"fixa", NOCOST}, {"fixb", NOCOST}};
  r = RUN(ENSEMBLE, "x", tie2, NULL, ST(DONE));
  assert_string_equal(r->output, "A"); /* failed stages do not vote */
  expect_stage(r, 0, "bad", SS(ERROR), NULL, 0.1);
  expect_total(r, 3.6);
  DONE_WITH(r);

  stage all_bad[] = {{"bad", NOCOST}, {"bad", NOCOST}};
  r = RUN(ENSEMBLE, "x", all_bad, NULL, ST(ERROR));
  expect_stage(r, 0, "bad", SS(ERROR), NULL, 0.1);
  expect_stage(r, 1, "bad", SS(ERROR), NULL, 0.1);
  expect_total(r, 0.2);
  DONE_WITH(r);

  /* All stages at once: two 5 s sleeps end well before 10 s. */
  stage par[] = {{"slow", NOCOST}, {"slow", NOCOST}, {"upper", NOCOST}};
  int64_t t0 = it_now_ms();
  r = RUN(ENSEMBLE, "hi", par, NULL, ST(DONE));
  assert_true(it_now_ms() - t0 < 9500);
  /* Outputs: "", "", "HI": the empty output wins by majority. */
  assert_string_equal(r->output, "");
  DONE_WITH(r);
}

static void test_sequential_validation(void **state) {
  start(NULL);
  char *id;
  stage ok[] = {{"upper", NOCOST}, {"rev", NOCOST}, {"echo", NOCOST}};
  Oee__V1__PipelineResult *r = RUN(VALIDATE, "abc", ok, NULL, ST(DONE));
  assert_string_equal(r->output, "ABC"); /* the first stage's output */
  expect_stage(r, 0, "upper", SS(DONE), "ABC", 0.5);
  expect_stage(r, 1, "rev", SS(DONE), "CBA", 0.25); /* it got upper's output */
  expect_stage(r, 2, "echo", SS(DONE), "ABC", 0.0);
  expect_total(r, 0.75);
  DONE_WITH(r);

  stage bad[] = {{"upper", NOCOST}, {"bad", NOCOST}, {"rev", NOCOST}};
  r = RUN(VALIDATE, "abc", bad, NULL, ST(ERROR));
  expect_stage(r, 0, "upper", SS(DONE), "ABC", 0.5);
  expect_stage(r, 1, "bad", SS(ERROR), NULL, 0.1);
  expect_stage(r, 2, "rev", SS(SKIPPED), "", 0.0);
  expect_total(r, 0.6);
  DONE_WITH(r);
}

static void test_cost_optimized(void **state) {
  start(NULL);
  char *id;
  /* Order by cost: bad 0.1 (fails), fixb 1.5 (succeeds); fixa 2.0 never runs. */
  stage s[] = {{"fixa", NOCOST}, {"bad", NOCOST}, {"fixb", NOCOST}};
  Oee__V1__PipelineResult *r = RUN(CHEAP, "x", s, NULL, ST(DONE));
  assert_string_equal(r->output, "B");
  expect_stage(r, 0, "fixa", SS(SKIPPED), "", 0.0);
  expect_stage(r, 1, "bad", SS(ERROR), NULL, 0.1);
  expect_stage(r, 2, "fixb", SS(DONE), "B", 1.5);
  expect_total(r, 1.6);
  DONE_WITH(r);

  /* echo costs 0, so it is tried first. */
  stage e[] = {{"upper", NOCOST}, {"echo", NOCOST}};
  r = RUN(CHEAP, "low", e, NULL, ST(DONE));
  assert_string_equal(r->output, "low");
  expect_stage(r, 0, "upper", SS(SKIPPED), "", 0.0);
  expect_stage(r, 1, "echo", SS(DONE), "low", 0.0);
  DONE_WITH(r);

  stage none[] = {{"bad", NOCOST}, {"bad", NOCOST}};
  r = RUN(CHEAP, "x", none, NULL, ST(ERROR));
  expect_total(r, 0.2);
  DONE_WITH(r);
}

static void test_quality_first(void **state) {
  start(NULL);
  char *id;
  /* Order by quality: bad 0.9 (fails), fixb 0.8 (succeeds), upper 0.6, fixa 0.3. */
  stage s[] = {{"fixa", NOCOST}, {"fixb", NOCOST}, {"bad", NOCOST}, {"upper", NOCOST}};
  Oee__V1__PipelineResult *r = RUN(QUALITY, "x", s, NULL, ST(DONE));
  assert_string_equal(r->output, "B");
  expect_stage(r, 0, "fixa", SS(SKIPPED), "", 0.0);
  expect_stage(r, 1, "fixb", SS(DONE), "B", 1.5);
  expect_stage(r, 2, "bad", SS(ERROR), NULL, 0.1);
  expect_stage(r, 3, "upper", SS(SKIPPED), "", 0.0);
  expect_total(r, 1.6);
  DONE_WITH(r);

  /* echo has quality 0: last. */
  stage e[] = {{"echo", NOCOST}, {"upper", NOCOST}};
  r = RUN(QUALITY, "hi", e, NULL, ST(DONE));
  assert_string_equal(r->output, "HI");
  expect_stage(r, 0, "echo", SS(SKIPPED), "", 0.0);
  DONE_WITH(r);
}

static void test_max_time(void **state) {
  start(NULL);
  char *id;
  pipe_opts o = {.max_time = 0.5, .priority = -1};
  stage s[] = {{"upper", NOCOST}, {"slow", NOCOST}, {"rev", NOCOST}};
  int64_t t0 = it_now_ms();
  Oee__V1__PipelineResult *r = RUN(LOCAL, "abc", s, &o, ST(ERROR));
  assert_true(it_now_ms() - t0 < 4500); /* the 5 s model was cut short */
  assert_non_null(strstr(r->error_message, "deadline exceeded"));
  expect_stage(r, 0, "upper", SS(DONE), "ABC", 0.5);
  expect_stage(r, 1, "slow", SS(CANCELLED), NULL, 1.0);
  expect_stage(r, 2, "rev", SS(SKIPPED), "", 0.0);
  expect_total(r, 1.5);
  DONE_WITH(r);

  stage par[] = {{"slow", NOCOST}, {"slow", NOCOST}};
  t0 = it_now_ms();
  r = RUN(ENSEMBLE, "abc", par, &o, ST(ERROR));
  assert_true(it_now_ms() - t0 < 4500);
  assert_non_null(strstr(r->error_message, "deadline exceeded"));
  expect_stage(r, 0, "slow", SS(CANCELLED), NULL, 1.0);
  expect_stage(r, 1, "slow", SS(CANCELLED), NULL, 1.0);
  DONE_WITH(r);

  /* A fast pipeline well inside its deadline is unaffected. */
  pipe_opts roomy = {.max_time = 20, .priority = -1};
  stage fast[] = {{"upper", NOCOST}};
  r = RUN(LOCAL, "ok", fast, &roomy, ST(DONE));
  assert_string_equal(r->output, "OK");
  DONE_WITH(r);
}

/* The deadline counts from the start of the pipeline task, not its queueing. */
static void test_deadline_counts_from_start(void **state) {
  start(ARGS("--workers", "1"));
  char *blocker = it_submit_ok(srv.ch, "b", "sleep", -1, KV("seconds", "30"));
  Oee__V1__Task *t = it_wait_status(srv.ch, blocker, ST(RUNNING), IT_WAIT_MS);
  assert_non_null(t);
  oee__v1__task__free_unpacked(t, NULL);
  char *id;
  pipe_opts o = {.max_time = 1.0, .priority = -1};
  stage s[] = {{"upper", NOCOST}};
  id = submit_ok(LOCAL, "abc", s, 1, &o);
  /* While queued, the result shows PENDING stages. */
  int code;
  Oee__V1__PipelineResult *r = result(id, &code);
  assert_int_equal(code, 0);
  assert_int_equal(r->status, ST(QUEUED));
  assert_int_equal(r->n_stages, 1);
  assert_int_equal(r->stages[0]->status, SS(PENDING));
  assert_int_equal(r->strategy, LOCAL);
  oee__v1__pipeline_result__free_unpacked(r, NULL);
  it_sleep_ms(1500); /* the subject: longer than max_time, spent in the queue */
  int cancelled;
  assert_int_equal(it_cancel(srv.ch, blocker, &cancelled), 0);
  r = finish(id, ST(DONE));
  assert_string_equal(r->output, "ABC");
  DONE_WITH(r);
  free(blocker);
}

static void test_max_cost(void **state) {
  start(NULL);
  char *id;
  /* COST_OPTIMIZED: bad (0.1) runs and fails; fixb (1.5) would exceed 1.0. */
  pipe_opts o = {.max_cost = 1.0, .priority = -1};
  stage s[] = {{"fixb", NOCOST}, {"bad", NOCOST}};
  Oee__V1__PipelineResult *r = RUN(CHEAP, "x", s, &o, ST(ERROR));
  assert_non_null(strstr(r->error_message, "cost budget exceeded"));
  expect_stage(r, 0, "fixb", SS(SKIPPED), "", 0.0);
  expect_stage(r, 1, "bad", SS(ERROR), NULL, 0.1);
  expect_total(r, 0.1);
  DONE_WITH(r);

  /* Chained: a stage that does not fit ends the pipeline with the error. */
  stage c[] = {{"upper", NOCOST}, {"rev", NOCOST}, {"fixa", NOCOST}, {"echo", NOCOST}};
  r = RUN(LOCAL, "abc", c, &o, ST(ERROR));
  assert_non_null(strstr(r->error_message, "cost budget exceeded"));
  expect_stage(r, 0, "upper", SS(DONE), "ABC", 0.5);
  expect_stage(r, 1, "rev", SS(DONE), "CBA", 0.25);
  expect_stage(r, 2, "fixa", SS(SKIPPED), "", 0.0);
  expect_stage(r, 3, "echo", SS(SKIPPED), "", 0.0);
  expect_total(r, 0.75);
  DONE_WITH(r);

  r = RUN(VALIDATE, "abc", c, &o, ST(ERROR));
  assert_non_null(strstr(r->error_message, "cost budget exceeded"));
  expect_stage(r, 2, "fixa", SS(SKIPPED), "", 0.0);
  expect_total(r, 0.75);
  DONE_WITH(r);

  /* Ensemble, charged in request order: fixa (2.0) fits 2.0, fixb does not. */
  pipe_opts two = {.max_cost = 2.0, .priority = -1};
  stage e[] = {{"fixa", NOCOST}, {"fixb", NOCOST}};
  r = RUN(ENSEMBLE, "x", e, &two, ST(DONE));
  assert_string_equal(r->output, "A");
  expect_stage(r, 0, "fixa", SS(DONE), "A", 2.0);
  expect_stage(r, 1, "fixb", SS(SKIPPED), "", 0.0);
  expect_total(r, 2.0);
  DONE_WITH(r);

  /* Nothing fits at all. */
  pipe_opts tiny = {.max_cost = 0.01, .priority = -1};
  stage q[] = {{"fixb", NOCOST}, {"upper", NOCOST}};
  r = RUN(QUALITY, "x", q, &tiny, ST(ERROR));
  assert_non_null(strstr(r->error_message, "cost budget exceeded"));
  expect_stage(r, 0, "fixb", SS(SKIPPED), "", 0.0);
  expect_stage(r, 1, "upper", SS(SKIPPED), "", 0.0);
  expect_total(r, 0.0);
  DONE_WITH(r);
}

static void test_cost_override(void **state) {
  start(NULL);
  char *id;
  /* An explicit 0 is honoured; another override replaces the declared cost. */
  stage s[] = {{"upper", 0.0}, {"rev", 1.25}, {"fixc", NOCOST}};
  Oee__V1__PipelineResult *r = RUN(LOCAL, "abc", s, NULL, ST(DONE));
  expect_stage(r, 0, "upper", SS(DONE), "ABC", 0.0);
  expect_stage(r, 1, "rev", SS(DONE), "CBA", 1.25);
  expect_stage(r, 2, "fixc", SS(DONE), "C", 0.75);
  expect_total(r, 2.0);
  DONE_WITH(r);

  /* The override is what the budget charges: upper at 0 fits max_cost 0.3. */
  pipe_opts o = {.max_cost = 0.3, .priority = -1};
  stage b[] = {{"upper", 0.0}, {"rev", 0.3}};
  r = RUN(LOCAL, "abc", b, &o, ST(DONE));
  assert_string_equal(r->output, "CBA");
  expect_total(r, 0.3);
  DONE_WITH(r);

  /* COST_OPTIMIZED sorts by the charged cost: fixa overridden to 0.01 first. */
  stage c[] = {{"fixb", NOCOST}, {"fixa", 0.01}};
  r = RUN(CHEAP, "x", c, NULL, ST(DONE));
  assert_string_equal(r->output, "A");
  expect_stage(r, 0, "fixb", SS(SKIPPED), "", 0.0);
  expect_stage(r, 1, "fixa", SS(DONE), "A", 0.01);
  DONE_WITH(r);
}

static void test_name_and_priority(void **state) {
  start(NULL);
  char *id;
  pipe_opts o = {.priority = 0, .name = "my-pipe"};
  stage s[] = {{"echo", NOCOST}};
  Oee__V1__PipelineResult *r = RUN(LOCAL, "same", s, &o, ST(DONE));
  assert_string_equal(r->output, "same");
  expect_stage(r, 0, "echo", SS(DONE), "same", 0.0);
  Oee__V1__Task *t = it_get(srv.ch, id, NULL);
  assert_string_equal(t->name, "my-pipe");
  assert_int_equal(t->priority, 0);
  assert_string_equal(t->result, "same");
  assert_string_equal(t->task_type, "pipeline");
  oee__v1__task__free_unpacked(t, NULL);
  DONE_WITH(r);
}

/* Polls GetPipelineResult (nothing else reports a stage starting) until
 * some stage of pipeline id runs. */
static void wait_stage_running(const char *id) {
  int64_t end = it_now_ms() + IT_WAIT_MS;
  for (;;) {
    Oee__V1__PipelineResult *r = result(id, NULL);
    assert_non_null(r);
    int running = 0;
    for (size_t i = 0; i < r->n_stages; i++) running |= r->stages[i]->status == SS(RUNNING);
    oee__v1__pipeline_result__free_unpacked(r, NULL);
    if (running) return;
    assert_true(it_now_ms() < end);
    it_sleep_ms(10);
  }
}

static void test_cancel_running_pipeline(void **state) {
  start(NULL);
  stage s[] = {{"slow", NOCOST}, {"upper", NOCOST}};
  char *id = submit_ok(LOCAL, "abc", s, 2, NULL);
  /* Wait until the slow stage runs. */
  wait_stage_running(id);
  int64_t t0 = it_now_ms();
  int cancelled = 0;
  assert_int_equal(it_cancel(srv.ch, id, &cancelled), 0);
  assert_true(cancelled);
  Oee__V1__PipelineResult *r = finish(id, ST(CANCELLED));
  assert_true(it_now_ms() - t0 < 4000);
  expect_stage(r, 0, "slow", SS(CANCELLED), NULL, 1.0);
  expect_stage(r, 1, "upper", SS(SKIPPED), "", 0.0);
  DONE_WITH(r);

  /* Ensemble: every running stage is cancelled. */
  stage p[] = {{"slow", NOCOST}, {"slow", NOCOST}};
  id = submit_ok(ENSEMBLE, "abc", p, 2, NULL);
  Oee__V1__Task *t = it_wait_status(srv.ch, id, ST(RUNNING), IT_WAIT_MS);
  assert_non_null(t);
  oee__v1__task__free_unpacked(t, NULL);
  wait_stage_running(id);
  t0 = it_now_ms();
  assert_int_equal(it_cancel(srv.ch, id, &cancelled), 0);
  r = finish(id, ST(CANCELLED));
  assert_true(it_now_ms() - t0 < 4000);
  for (size_t i = 0; i < r->n_stages; i++) {
    assert_true(r->stages[i]->status == SS(CANCELLED) || r->stages[i]->status == SS(SKIPPED));
  }
  DONE_WITH(r);
}

static void test_get_pipeline_result_errors(void **state) {
  start(NULL);
  int code;
  char *echo = it_submit_ok(srv.ch, "e", "echo", -1, NULL);
  Oee__V1__PipelineResult *r = result(echo, &code);
  assert_int_equal(code, GRPC_STATUS_NOT_FOUND); /* not a pipeline */
  assert_null(r);
  r = result("0b6a7c1e-3f7b-4f5e-9a3c-2f0d5e6a7b8c", &code);
  assert_int_equal(code, GRPC_STATUS_NOT_FOUND);
  r = result("not-a-uuid", &code);
  assert_int_equal(code, GRPC_STATUS_INVALID_ARGUMENT);
  r = result("", &code);
  assert_int_equal(code, GRPC_STATUS_INVALID_ARGUMENT);
  free(echo);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_local_fast_precise, teardown),
      cmocka_unit_test_teardown(test_parallel_ensemble, teardown),
      cmocka_unit_test_teardown(test_sequential_validation, teardown),
      cmocka_unit_test_teardown(test_cost_optimized, teardown),
      cmocka_unit_test_teardown(test_quality_first, teardown),
      cmocka_unit_test_teardown(test_max_time, teardown),
      cmocka_unit_test_teardown(test_deadline_counts_from_start, teardown),
      cmocka_unit_test_teardown(test_max_cost, teardown),
      cmocka_unit_test_teardown(test_cost_override, teardown),
      cmocka_unit_test_teardown(test_name_and_priority, teardown),
      cmocka_unit_test_teardown(test_cancel_running_pipeline, teardown),
      cmocka_unit_test_teardown(test_get_pipeline_result_errors, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
