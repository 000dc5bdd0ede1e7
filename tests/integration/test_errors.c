/*
 * test_errors.c - every error row of the API contract with its exact status
 * code, unknown methods, undecodable request bodies, and that neither kind
 * of bad call disturbs good calls made at the same time.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include <cmocka.h>

#include "grpc/health/v1/health.grpc-client.h"
#include "tests/integration/fixture.h"

#define ST(x) OEE__V1__TASK_STATUS__TASK_STATUS_##x
#define KV(...) ((const char *const[]){__VA_ARGS__, NULL})
#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define IA GRPC_STATUS_INVALID_ARGUMENT
#define SVC "/oee.v1.OrchestratorService/"
#define UNKNOWN_ID "0b6a7c1e-3f7b-4f5e-9a3c-2f0d5e6a7b8c"

static it_server srv;

static void start_with(const char *config) {
  assert_int_equal(it_server_start(&srv, config, NULL, NULL, 30000), 0);
}

static void start(void) { start_with("errors.json"); }

static int teardown(void **state) { return it_server_teardown(&srv); }

/* SubmitTask with every field given; returns the code, *msg the message. */
static int submit_full(const char *name, const char *type, int has_prio, int prio,
                       const char *const *kv, char **msg) {
  Oee__V1__SubmitTaskRequest req = OEE__V1__SUBMIT_TASK_REQUEST__INIT;
  Oee__V1__SubmitTaskRequest__ContextEntry ents[4], *ptrs[4];
  req.name = (char *)name;
  req.task_type = (char *)type;
  if (has_prio) {
    req.priority_present_case = OEE__V1__SUBMIT_TASK_REQUEST__PRIORITY_PRESENT_PRIORITY;
    req.priority = prio;
  }
  size_t n = 0;
  for (; kv && kv[0] && n < 4; kv += 2, n++) {
    oee__v1__submit_task_request__context_entry__init(&ents[n]);
    ents[n].key = (char *)kv[0];
    ents[n].value = (char *)kv[1];
    ptrs[n] = &ents[n];
  }
  req.n_context = n;
  req.context = ptrs;
  Oee__V1__SubmitTaskResponse *resp = NULL;
  oee_rpc_status st = {0};
  int code = oee_v1_orchestrator_service_submit_task(srv.ch, &req, &resp, IT_CALL_MS, &st);
  if (resp) oee__v1__submit_task_response__free_unpacked(resp, NULL);
  if (code != 0) assert_null(resp);
  if (msg) *msg = st.message ? strdup(st.message) : strdup("");
  oee_rpc_status_free(&st);
  return code;
}

static int total_tasks(void) {
  Oee__V1__ListTasksRequest req = OEE__V1__LIST_TASKS_REQUEST__INIT;
  Oee__V1__ListTasksResponse *r = NULL;
  assert_int_equal(oee_v1_orchestrator_service_list_tasks(srv.ch, &req, &r, IT_CALL_MS, NULL), 0);
  int n = r->total_size;
  oee__v1__list_tasks_response__free_unpacked(r, NULL);
  return n;
}

/* ----------------------------------------------------------------- tests */

static void test_submit_task_errors(void **state) {
  start();
  char *msg = NULL;
  assert_int_equal(submit_full("", "echo", 0, 0, NULL, NULL), IA);
  assert_int_equal(submit_full("n", "echo", 1, -1, NULL, NULL), IA);
  assert_int_equal(submit_full("n", "echo", 1, 11, NULL, NULL), IA);
  assert_int_equal(submit_full("n", "echo", 1, 1000000, NULL, NULL), IA);
  assert_int_equal(submit_full("n", "frobnicate", 0, 0, NULL, &msg), IA);
  fprintf(stderr, "unknown type message: %s\n", msg);
  /* The message lists the known types. */
  assert_non_null(strstr(msg, "echo"));
  assert_non_null(strstr(msg, "sleep"));
  assert_non_null(strstr(msg, "fail"));
  assert_non_null(strstr(msg, "exec"));
  free(msg);
  assert_int_equal(submit_full("n", "", 0, 0, NULL, NULL), IA);
  assert_int_equal(submit_full("n", "pipeline", 0, 0, NULL, NULL), IA);
  assert_int_equal(submit_full("n", "exec", 0, 0, NULL, NULL), IA);
  assert_int_equal(submit_full("n", "exec", 0, 0, KV("command", "rm"), NULL), IA);
  assert_int_equal(submit_full("n", "exec", 0, 0, KV("command", ""), NULL), IA);
  assert_int_equal(submit_full("n", "exec", 0, 0, KV("command", "/bin/echo"), NULL), IA);
  /* Nothing of the above was queued or ran. */
  assert_int_equal(total_tasks(), 0);
  /* The limits themselves are valid. */
  assert_int_equal(submit_full("n", "echo", 1, 0, NULL, NULL), 0);
  assert_int_equal(submit_full("n", "echo", 1, 10, NULL, NULL), 0);
  assert_int_equal(submit_full("n", "exec", 0, 0, KV("command", "hello"), NULL), 0);
}

/* ------------------------------------------------- the refusal tables */

#define NOCTX \
  { NULL }
#define KNOWN "known types: echo, exec, fail, sleep"

/* One refused task submission: the fields, then the code and the exact
 * status message (the core's words, passed through). */
typedef struct task_row {
  const char *name, *type;
  int has_prio, prio;
  const char *kv[5]; /* key, value, ..., NULL */
  int code;
  const char *message;
} task_row;

static const task_row task_rows[] = {
    {"", "echo", 0, 0, NOCTX, IA, "name must not be empty"},
    {"n", "", 0, 0, NOCTX, IA, "task_type must not be empty"},
    {"n", "echo", 1, 11, NOCTX, IA, "priority must be 0..10, got 11"},
    {"n", "echo", 1, -1, NOCTX, IA, "priority must be 0..10, got -1"},
    {"n", "frobnicate", 0, 0, NOCTX, IA, "unknown task_type \"frobnicate\"; " KNOWN},
    {"n", "pipeline", 0, 0, NOCTX, IA,
     "tasks of type \"pipeline\" cannot be submitted directly "
     "(pipelines come only from a pipeline submission)"},
    {"n", "exec", 0, 0, NOCTX, IA,
     "exec tasks need context[\"command\"] naming a configured command"},
    {"n",
     "exec",
     0,
     0,
     {"command", "rm", NULL},
     IA,
     "exec command \"rm\" is not in the configured commands table"},
    {"n",
     "exec",
     0,
     0,
     {"command", "hello", "command", "hello", NULL},
     IA,
     "context key \"command\" appears more than once"},
    {"n",
     "sleep",
     0,
     0,
     {"seconds", "abc", NULL},
     IA,
     "context[\"seconds\"] must be a finite number >= 0, got \"abc\""},
    {"n",
     "sleep",
     0,
     0,
     {"seconds", "-1", NULL},
     IA,
     "context[\"seconds\"] must be a finite number >= 0, got \"-1\""},
    {"n",
     "sleep",
     0,
     0,
     {"seconds", "nan", NULL},
     IA,
     "context[\"seconds\"] must be a finite number >= 0, got \"nan\""},
    {"n",
     "sleep",
     0,
     0,
     {"seconds", "inf", NULL},
     IA,
     "context[\"seconds\"] must be a finite number >= 0, got \"inf\""},
};

#define N_ROWS(t) (sizeof(t) / sizeof((t)[0]))

static void fill_task(const task_row *row, Oee__V1__SubmitTaskRequest *req,
                      Oee__V1__SubmitTaskRequest__ContextEntry *ents,
                      Oee__V1__SubmitTaskRequest__ContextEntry **ptrs) {
  oee__v1__submit_task_request__init(req);
  req->name = (char *)row->name;
  req->task_type = (char *)row->type;
  if (row->has_prio) {
    req->priority_present_case = OEE__V1__SUBMIT_TASK_REQUEST__PRIORITY_PRESENT_PRIORITY;
    req->priority = row->prio;
  }
  size_t n = 0;
  for (const char *const *kv = row->kv; kv[0]; kv += 2, n++) {
    oee__v1__submit_task_request__context_entry__init(&ents[n]);
    ents[n].key = (char *)kv[0];
    ents[n].value = (char *)kv[1];
    ptrs[n] = &ents[n];
  }
  req->n_context = n;
  req->context = ptrs;
}

/* Compares one refusal with its row; says which row on a mismatch. */
static void expect_refusal(const char *rpc, size_t i, int want_code, const char *want, int code,
                           const char *message) {
  if (code != want_code || strcmp(message ? message : "", want) != 0) {
    fprintf(stderr, "%s row %zu: got %d \"%s\", want %d \"%s\"\n", rpc, i, code,
            message ? message : "", want_code, want);
  }
  assert_int_equal(code, want_code);
  assert_string_equal(message ? message : "", want);
}

/* Every task row through SubmitTask: refused, with the code and words. */
static void test_task_rows_submit_task(void **state) {
  start();
  for (size_t i = 0; i < N_ROWS(task_rows); i++) {
    Oee__V1__SubmitTaskRequest req;
    Oee__V1__SubmitTaskRequest__ContextEntry ents[2], *ptrs[2];
    fill_task(&task_rows[i], &req, ents, ptrs);
    Oee__V1__SubmitTaskResponse *resp = NULL;
    oee_rpc_status st = {0};
    int code = oee_v1_orchestrator_service_submit_task(srv.ch, &req, &resp, IT_CALL_MS, &st);
    assert_null(resp);
    expect_refusal("SubmitTask", i, task_rows[i].code, task_rows[i].message, code, st.message);
    oee_rpc_status_free(&st);
  }
  assert_int_equal(total_tasks(), 0); /* nothing was created */
}

/* Every task row as the entry of a SubmitTasks batch: the call succeeds,
 * the entry carries the code and words, and no task is created. */
static void test_task_rows_submit_tasks(void **state) {
  start();
  for (size_t i = 0; i < N_ROWS(task_rows); i++) {
    Oee__V1__SubmitTaskRequest req, *reqs[1] = {&req};
    Oee__V1__SubmitTaskRequest__ContextEntry ents[2], *ptrs[2];
    fill_task(&task_rows[i], &req, ents, ptrs);
    Oee__V1__SubmitTasksRequest batch = OEE__V1__SUBMIT_TASKS_REQUEST__INIT;
    batch.n_requests = 1;
    batch.requests = reqs;
    Oee__V1__SubmitTasksResponse *resp = NULL;
    assert_int_equal(
        oee_v1_orchestrator_service_submit_tasks(srv.ch, &batch, &resp, IT_CALL_MS, NULL), 0);
    assert_int_equal(resp->n_results, 1);
    assert_string_equal(resp->results[0]->task_id, "");
    assert_null(resp->results[0]->task);
    expect_refusal("SubmitTasks", i, task_rows[i].code, task_rows[i].message,
                   resp->results[0]->code, resp->results[0]->message);
    oee__v1__submit_tasks_response__free_unpacked(resp, NULL);
  }
  assert_int_equal(total_tasks(), 0);
}

/* One refused pipeline: one stage (model, optional cost), budgets,
 * priority (PRIO_UNSET: not sent), strategy, and the expected refusal. */
#define PRIO_UNSET (-1000)
#define LFP OEE__V1__PIPELINE_STRATEGY__LOCAL_FAST_PRECISE

typedef struct pipe_row {
  int n_stages;
  const char *model;
  int has_cost;
  double cost, max_time, max_cost;
  int prio;
  int strategy;
  int code;
  const char *message;
} pipe_row;

static const pipe_row pipe_rows[] = {
    {1, "upper", 1, NAN, 0, 0, PRIO_UNSET, LFP, IA,
     "stages[0].cost must be a finite number >= 0, got nan"},
    {1, "upper", 1, INFINITY, 0, 0, PRIO_UNSET, LFP, IA,
     "stages[0].cost must be a finite number >= 0, got inf"},
    {1, "upper", 1, -1, 0, 0, PRIO_UNSET, LFP, IA,
     "stages[0].cost must be a finite number >= 0, got -1"},
    {1, "upper", 0, 0, NAN, 0, PRIO_UNSET, LFP, IA,
     "max_time must be a finite number of seconds >= 0 (0 = none), got nan"},
    {1, "upper", 0, 0, INFINITY, 0, PRIO_UNSET, LFP, IA,
     "max_time must be a finite number of seconds >= 0 (0 = none), got inf"},
    {1, "upper", 0, 0, -1, 0, PRIO_UNSET, LFP, IA,
     "max_time must be a finite number of seconds >= 0 (0 = none), got -1"},
    {1, "upper", 0, 0, 0, NAN, PRIO_UNSET, LFP, IA,
     "max_cost must be a finite number >= 0 (0 = none), got nan"},
    {1, "upper", 0, 0, 0, INFINITY, PRIO_UNSET, LFP, IA,
     "max_cost must be a finite number >= 0 (0 = none), got inf"},
    {1, "upper", 0, 0, 0, -0.5, PRIO_UNSET, LFP, IA,
     "max_cost must be a finite number >= 0 (0 = none), got -0.5"},
    {1, "upper", 0, 0, 0, 0, 11, LFP, IA, "priority must be 0..10, got 11"},
    {1, "upper", 0, 0, 0, 0, -1, LFP, IA, "priority must be 0..10, got -1"},
    {0, "upper", 0, 0, 0, 0, PRIO_UNSET, LFP, IA, "stages must not be empty"},
    {1, "", 0, 0, 0, 0, PRIO_UNSET, LFP, IA, "stages[0].model_id must not be empty"},
    {1, "no-such-model", 0, 0, 0, 0, PRIO_UNSET, LFP, IA,
     "unknown model_id \"no-such-model\" in stages[0]"},
    {1, "upper", 0, 0, 0, 0, PRIO_UNSET, 0, IA, "strategy must be set (got 0, UNSPECIFIED)"},
    {1, "upper", 0, 0, 0, 0, PRIO_UNSET, 99, IA, "strategy 99 is not a known strategy"},
};

static void test_pipeline_rows(void **state) {
  start();
  for (size_t i = 0; i < N_ROWS(pipe_rows); i++) {
    const pipe_row *row = &pipe_rows[i];
    Oee__V1__PipelineStage stage = OEE__V1__PIPELINE_STAGE__INIT, *sp[1] = {&stage};
    stage.name = (char *)"s";
    stage.model_id = (char *)row->model;
    if (row->has_cost) {
      stage.cost_present_case = OEE__V1__PIPELINE_STAGE__COST_PRESENT_COST;
      stage.cost = row->cost;
    }
    Oee__V1__SubmitPipelineRequest req = OEE__V1__SUBMIT_PIPELINE_REQUEST__INIT;
    req.pipeline_id = (char *)"p";
    req.strategy = (Oee__V1__PipelineStrategy)row->strategy;
    req.n_stages = (size_t)row->n_stages;
    req.stages = row->n_stages ? sp : NULL;
    req.max_time = row->max_time;
    req.max_cost = row->max_cost;
    if (row->prio != PRIO_UNSET) {
      req.priority_present_case = OEE__V1__SUBMIT_PIPELINE_REQUEST__PRIORITY_PRESENT_PRIORITY;
      req.priority = row->prio;
    }
    Oee__V1__SubmitPipelineResponse *resp = NULL;
    oee_rpc_status st = {0};
    int code = oee_v1_orchestrator_service_submit_pipeline(srv.ch, &req, &resp, IT_CALL_MS, &st);
    assert_null(resp);
    expect_refusal("SubmitPipeline", i, row->code, row->message, code, st.message);
    oee_rpc_status_free(&st);
  }
  assert_int_equal(total_tasks(), 0);
}

/* ------------------------------- task semantics: the server's own checks */

#define FP GRPC_STATUS_FAILED_PRECONDITION
#define RUN_AT_RULE "run_at must be a Timestamp in years 1..9999 with nanos 0..999999999, got "

/* A Timestamp the server refuses (outside years 1..9999 or bad nanos). */
typedef struct run_at_row {
  int64_t seconds;
  int32_t nanos;
  const char *message;
} run_at_row;

static const run_at_row run_at_rows[] = {
    {INT64_C(-62135596801), 0, RUN_AT_RULE "seconds=-62135596801 nanos=0"}, /* year 0 */
    {INT64_C(253402300800), 0, RUN_AT_RULE "seconds=253402300800 nanos=0"}, /* year 10000 */
    {INT64_MIN, 0, RUN_AT_RULE "seconds=-9223372036854775808 nanos=0"},
    {INT64_MAX, 0, RUN_AT_RULE "seconds=9223372036854775807 nanos=0"},
    {0, -1, RUN_AT_RULE "seconds=0 nanos=-1"},
    {1700000000, 1000000000, RUN_AT_RULE "seconds=1700000000 nanos=1000000000"},
    {INT64_C(253402300799), INT32_MIN, RUN_AT_RULE "seconds=253402300799 nanos=-2147483648"},
};

static Oee__V1__SubmitTasksResponse *submit_batch(Oee__V1__SubmitTaskRequest **reqs, size_t n) {
  Oee__V1__SubmitTasksRequest batch = OEE__V1__SUBMIT_TASKS_REQUEST__INIT;
  batch.n_requests = n;
  batch.requests = reqs;
  Oee__V1__SubmitTasksResponse *resp = NULL;
  assert_int_equal(oee_v1_orchestrator_service_submit_tasks(srv.ch, &batch, &resp, 30000, NULL), 0);
  assert_int_equal(resp->n_results, n);
  return resp;
}

/* SubmitTask with req; the code, the status message in *msg (freed by
 * the caller). */
static int submit_req(const Oee__V1__SubmitTaskRequest *req, char **msg) {
  Oee__V1__SubmitTaskResponse *resp = NULL;
  oee_rpc_status st = {0};
  int code = oee_v1_orchestrator_service_submit_task(srv.ch, req, &resp, IT_CALL_MS, &st);
  if (resp) oee__v1__submit_task_response__free_unpacked(resp, NULL);
  *msg = strdup(st.message ? st.message : "");
  oee_rpc_status_free(&st);
  return code;
}

/* The refusal of SubmitTask and of the same request as a batch entry. */
static void expect_both(const char *what, size_t i, Oee__V1__SubmitTaskRequest *req, int want_code,
                        const char *want) {
  char *msg;
  int code = submit_req(req, &msg);
  expect_refusal(what, i, want_code, want, code, msg);
  free(msg);
  Oee__V1__SubmitTasksResponse *b = submit_batch(&req, 1);
  expect_refusal(what, i, want_code, want, b->results[0]->code, b->results[0]->message);
  oee__v1__submit_tasks_response__free_unpacked(b, NULL);
}

static void echo_req(Oee__V1__SubmitTaskRequest *r, const char *name) {
  oee__v1__submit_task_request__init(r);
  r->name = (char *)name;
  r->task_type = (char *)"echo";
}

/* A Timestamp outside its range, and an explicit max_attempts 0 (which a
 * core submission cannot tell from "unset"): INVALID_ARGUMENT naming the
 * field, in SubmitTask and in a SubmitTasks entry; nothing is created. */
static void test_semantics_rows(void **state) {
  start();
  Oee__V1__SubmitTaskRequest r;
  Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  for (size_t i = 0; i < N_ROWS(run_at_rows); i++) {
    echo_req(&r, "when");
    ts.seconds = run_at_rows[i].seconds;
    ts.nanos = run_at_rows[i].nanos;
    r.run_at = &ts;
    expect_both("run_at", i, &r, IA, run_at_rows[i].message);
  }
  echo_req(&r, "zero");
  r.max_attempts_present_case = OEE__V1__SUBMIT_TASK_REQUEST__MAX_ATTEMPTS_PRESENT_MAX_ATTEMPTS;
  r.max_attempts = 0;
  expect_both("max_attempts", 0, &r, IA, "max_attempts must be 1..100, got 0");
  /* "#<index>" names an entry of a SubmitTasks batch: not in SubmitTask. */
  char *deps[] = {(char *)UNKNOWN_ID, (char *)"#0"};
  echo_req(&r, "ref");
  r.n_depends_on = 2;
  r.depends_on = deps;
  char *msg;
  assert_int_equal(submit_req(&r, &msg), IA);
  assert_string_equal(msg,
                      "depends_on[1] \"#0\": \"#<index>\" names an entry of the same SubmitTasks "
                      "batch and is not valid in SubmitTask");
  free(msg);
  assert_int_equal(total_tasks(), 0);
}

/* One batch entry and the result it must get. */
typedef struct ref_row {
  const char *name; /* "" is refused by the core */
  int prio;         /* -1: unset; 11 is refused by the core */
  const char *deps[3];
  int code;
  const char *message; /* NULL: any (the core's words) */
} ref_row;

static const ref_row ref_rows[] = {
    /* 0 */ {"a", -1, {NULL}, 0, ""},
    /* 1 */
    {"self",
     -1,
     {"#1", NULL},
     IA,
     "depends_on[0] \"#1\" names this entry itself; an entry may only depend on earlier "
     "entries of the batch"},
    /* 2 */
    {"fwd",
     -1,
     {"#0", "#3", NULL},
     IA,
     "depends_on[1] \"#3\" names entry 3, which does not come before this entry (2); an "
     "entry may only depend on earlier entries of the batch"},
    /* 3 */
    {"far",
     -1,
     {"#99999999999", NULL},
     IA,
     "depends_on[0] \"#99999999999\" names entry 4294967295, which does not come before "
     "this entry (3); an entry may only depend on earlier entries of the batch"},
    /* 4 */
    {"junk",
     -1,
     {"#x", NULL},
     IA,
     "depends_on[0] \"#x\" is neither a task id nor \"#<index>\" of an earlier entry of "
     "this batch"},
    /* 5 */
    {"signed",
     -1,
     {"#-1", NULL},
     IA,
     "depends_on[0] \"#-1\" is neither a task id nor \"#<index>\" of an earlier entry of "
     "this batch"},
    /* 6 */ {"", -1, {NULL}, IA, "name must not be empty"},
    /* 7 */
    {"on-refused",
     -1,
     {"#6", NULL},
     FP,
     "depends_on[0] \"#6\" names entry 6 of this batch, which was refused"},
    /* 8 */
    {"on-self-ref",
     -1,
     {"#0", "#1", NULL},
     FP,
     "depends_on[1] \"#1\" names entry 1 of this batch, which was refused"},
    /* 9 */
    {"chain",
     -1,
     {"#7", NULL},
     FP,
     "depends_on[0] \"#7\" names entry 7 of this batch, which was refused"},
    /* 10: refused by the core once entry 0 is acknowledged (then started
     * from the engine's commit thread with the sqlite store). */
    {"late", 11, {"#0", NULL}, IA, "priority must be 0..10, got 11"},
    /* 11 */
    {"after-late",
     -1,
     {"#10", NULL},
     FP,
     "depends_on[0] \"#10\" names entry 10 of this batch, which was refused"},
    /* 12 */ {"b", 3, {NULL}, 0, ""},
};

static void fill_ref_row(const ref_row *row, Oee__V1__SubmitTaskRequest *r) {
  echo_req(r, row->name);
  if (row->prio >= 0) {
    r->priority_present_case = OEE__V1__SUBMIT_TASK_REQUEST__PRIORITY_PRESENT_PRIORITY;
    r->priority = row->prio;
  }
  while (row->deps[r->n_depends_on] != NULL) r->n_depends_on++;
  r->depends_on = (char **)row->deps;
}

/* "#<index>" in a batch: a self, forward or malformed reference is
 * INVALID_ARGUMENT for its entry, a reference to a refused entry
 * FAILED_PRECONDITION (also down a chain, and when the core refuses the
 * entry named only after its dependencies settled); the others go on. */
static void test_batch_reference_rows(void **state) {
  start();
  enum { N = sizeof(ref_rows) / sizeof(ref_rows[0]) };
  Oee__V1__SubmitTaskRequest r[N], *p[N];
  for (size_t i = 0; i < N; i++) {
    fill_ref_row(&ref_rows[i], &r[i]);
    p[i] = &r[i];
  }
  Oee__V1__SubmitTasksResponse *b = submit_batch(p, N);
  for (size_t i = 0; i < N; i++) {
    expect_refusal("SubmitTasks reference", i, ref_rows[i].code, ref_rows[i].message,
                   b->results[i]->code, b->results[i]->message);
    assert_int_equal(b->results[i]->task != NULL, ref_rows[i].code == 0);
  }
  oee__v1__submit_tasks_response__free_unpacked(b, NULL);
  assert_int_equal(total_tasks(), 2);
}

/* Many deferred entries: every third entry is fine, the next names it but
 * is refused by the core, the one after names that one. With the sqlite
 * store the middle ones start from the commit thread while the handler is
 * still submitting, with the memory store inside the acknowledgements. */
static void test_batch_reference_many(void **state) {
  start();
  enum { N = 600 };
  Oee__V1__SubmitTaskRequest *r = calloc(N, sizeof(*r)), **p = calloc(N, sizeof(*p));
  char(*refs)[16] = calloc(N, sizeof(*refs));
  char **dep = calloc(N, sizeof(*dep));
  for (size_t i = 0; i < N; i++) {
    echo_req(&r[i], "many");
    if (i % 3 != 0) {
      snprintf(refs[i], sizeof(refs[i]), "#%zu", i - 1);
      dep[i] = refs[i];
      r[i].n_depends_on = 1;
      r[i].depends_on = &dep[i];
    }
    if (i % 3 == 1) {
      r[i].priority_present_case = OEE__V1__SUBMIT_TASK_REQUEST__PRIORITY_PRESENT_PRIORITY;
      r[i].priority = 11;
    }
    p[i] = &r[i];
  }
  Oee__V1__SubmitTasksResponse *b = submit_batch(p, N);
  for (size_t i = 0; i < N; i++) {
    int want = i % 3 == 0 ? 0 : i % 3 == 1 ? IA : FP;
    if (b->results[i]->code != want) fprintf(stderr, "entry %zu: %d\n", i, b->results[i]->code);
    assert_int_equal(b->results[i]->code, want);
  }
  oee__v1__submit_tasks_response__free_unpacked(b, NULL);
  assert_int_equal(total_tasks(), N / 3);
  free(r);
  free(p);
  free(refs);
  free(dep);
}

/* GetTask of id, asserted to have `status`, packed to bytes (malloc'd,
 * *len): the whole task, to compare before and after a refused call. */
static uint8_t *task_bytes(const char *id, int status, size_t *len) {
  Oee__V1__Task *t = it_get(srv.ch, id, NULL);
  assert_non_null(t);
  assert_int_equal(t->status, status);
  *len = oee__v1__task__get_packed_size(t);
  uint8_t *buf = malloc(*len ? *len : 1);
  assert_non_null(buf);
  oee__v1__task__pack(t, buf);
  oee__v1__task__free_unpacked(t, NULL);
  return buf;
}

/* RetryTask: an id that is not a UUID, an unknown one, and a task that is
 * QUEUED, RUNNING, SCHEDULED or DONE (each refused, the task unchanged). */
static void test_retry_errors(void **state) {
  start();
  const char *bad[] = {"", "not-a-uuid", "0b6a7c1e-3f7b-4f5e-9a3c-2f0d5e6a7b8"};
  Oee__V1__RetryTaskRequest req = OEE__V1__RETRY_TASK_REQUEST__INIT;
  Oee__V1__Task *t = NULL;
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    oee_rpc_status st = {0};
    req.task_id = (char *)bad[i];
    assert_int_equal(oee_v1_orchestrator_service_retry_task(srv.ch, &req, &t, IT_CALL_MS, &st), IA);
    assert_null(t);
    assert_non_null(strstr(st.message, "is not a UUID"));
    oee_rpc_status_free(&st);
  }
  oee_rpc_status st = {0};
  req.task_id = (char *)UNKNOWN_ID;
  assert_int_equal(oee_v1_orchestrator_service_retry_task(srv.ch, &req, &t, IT_CALL_MS, &st),
                   GRPC_STATUS_NOT_FOUND);
  assert_string_equal(st.message, "task " UNKNOWN_ID " not found");
  oee_rpc_status_free(&st);
  /* A task that is not ERROR or CANCELLED: the core's OEE_ESTATE is
   * FAILED_PRECONDITION with the core's reason (retry.c), and the task is
   * left exactly as it was. errors.json has two workers: two long sleeps
   * hold them (RUNNING), so an echo waits QUEUED; one waits SCHEDULED for
   * a run_at an hour ahead; one has ended DONE. */
  char *done_id = it_submit_ok(srv.ch, "done", "echo", -1, NULL);
  Oee__V1__Task *done = it_wait_status(srv.ch, done_id, ST(DONE), IT_WAIT_MS);
  assert_non_null(done);
  oee__v1__task__free_unpacked(done, NULL);
  char *run_id[2];
  for (int i = 0; i < 2; i++) {
    run_id[i] = it_submit_ok(srv.ch, "hold", "sleep", -1, KV("seconds", "60"));
    assert_non_null(run_id[i]);
  }
  for (int i = 0; i < 2; i++) {
    Oee__V1__Task *r = it_wait_status(srv.ch, run_id[i], ST(RUNNING), IT_WAIT_MS);
    assert_non_null(r);
    oee__v1__task__free_unpacked(r, NULL);
  }
  char *queued_id = it_submit_ok(srv.ch, "waits", "echo", -1, NULL);
  Oee__V1__SubmitTaskRequest later = OEE__V1__SUBMIT_TASK_REQUEST__INIT;
  Google__Protobuf__Timestamp at = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  at.seconds = (int64_t)time(NULL) + 3600;
  later.name = (char *)"later";
  later.task_type = (char *)"echo";
  later.run_at = &at;
  Oee__V1__SubmitTaskResponse *sr = NULL;
  assert_int_equal(oee_v1_orchestrator_service_submit_task(srv.ch, &later, &sr, IT_CALL_MS, NULL),
                   0);
  assert_int_equal(sr->task->status, ST(SCHEDULED));
  char *sched_id = strdup(sr->task_id);
  oee__v1__submit_task_response__free_unpacked(sr, NULL);
  const struct {
    const char *id;
    int status;
    const char *name;
  } rows[] = {{queued_id, ST(QUEUED), "queued"},
              {run_id[0], ST(RUNNING), "running"},
              {sched_id, ST(SCHEDULED), "scheduled"},
              {done_id, ST(DONE), "done"}};
  for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
    size_t before_len, after_len;
    uint8_t *before = task_bytes(rows[i].id, rows[i].status, &before_len);
    req.task_id = (char *)rows[i].id;
    assert_int_equal(oee_v1_orchestrator_service_retry_task(srv.ch, &req, &t, IT_CALL_MS, &st), FP);
    assert_null(t);
    char want[160];
    snprintf(want, sizeof(want), "task %s is %s: only ERROR or CANCELLED tasks can be retried",
             rows[i].id, rows[i].name);
    assert_string_equal(st.message, want);
    oee_rpc_status_free(&st);
    uint8_t *after = task_bytes(rows[i].id, rows[i].status, &after_len);
    if (before_len != after_len || memcmp(before, after, before_len) != 0) {
      fail_msg("row %zu (%s): the refused RetryTask changed the task", i, rows[i].name);
    }
    free(before);
    free(after);
  }
  /* The sleeps end at once (no 60 s drain at teardown). */
  for (int i = 0; i < 2; i++) {
    assert_int_equal(it_cancel(srv.ch, run_id[i], NULL), 0);
    Oee__V1__Task *c = it_wait_final(srv.ch, run_id[i], IT_WAIT_MS);
    assert_non_null(c);
    assert_int_equal(c->status, ST(CANCELLED));
    oee__v1__task__free_unpacked(c, NULL);
    free(run_id[i]);
  }
  free(sched_id);
  free(queued_id);
  free(done_id);
}

static void test_cancel_get_errors(void **state) {
  start();
  const char *bad[] = {"",
                       "not-a-uuid",
                       "0b6a7c1e3f7b4f5e9a3c2f0d5e6a7b8c",
                       "0b6a7c1e-3f7b-4f5e-9a3c-2f0d5e6a7b8",
                       "0b6a7c1e-3f7b-4f5e-9a3c-2f0d5e6a7b8cz",
                       "zzzzzzzz-3f7b-4f5e-9a3c-2f0d5e6a7b8c"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    int code;
    Oee__V1__Task *t = it_get(srv.ch, bad[i], &code);
    if (code != IA) fprintf(stderr, "GetTask(\"%s\") -> %d\n", bad[i], code);
    assert_int_equal(code, IA);
    assert_null(t);
    assert_int_equal(it_cancel(srv.ch, bad[i], NULL), IA);
  }
  int code;
  assert_null(it_get(srv.ch, UNKNOWN_ID, &code));
  assert_int_equal(code, GRPC_STATUS_NOT_FOUND);
  assert_int_equal(it_cancel(srv.ch, UNKNOWN_ID, NULL), GRPC_STATUS_NOT_FOUND);
}

static void test_list_clear_errors(void **state) {
  start();
  char *id = it_submit_ok(srv.ch, "a", "echo", -1, NULL);
  Oee__V1__ListTasksRequest req = OEE__V1__LIST_TASKS_REQUEST__INIT;
  Oee__V1__ListTasksResponse *r = NULL;
  const char *tokens[] = {"garbage", "!!!", "\x01\x02", "-1", "99999999999999999999"};
  for (size_t i = 0; i < sizeof(tokens) / sizeof(tokens[0]); i++) {
    req.page_token = (char *)tokens[i];
    int code = oee_v1_orchestrator_service_list_tasks(srv.ch, &req, &r, IT_CALL_MS, NULL);
    if (code != IA) fprintf(stderr, "ListTasks(page_token=\"%s\") -> %d\n", tokens[i], code);
    assert_int_equal(code, IA);
    assert_null(r);
  }
  req.page_token = (char *)"";
  req.page_size = -1;
  assert_int_equal(oee_v1_orchestrator_service_list_tasks(srv.ch, &req, &r, IT_CALL_MS, NULL), IA);
  Oee__V1__ClearCompletedTasksRequest creq = OEE__V1__CLEAR_COMPLETED_TASKS_REQUEST__INIT;
  creq.keep_recent_present_case =
      OEE__V1__CLEAR_COMPLETED_TASKS_REQUEST__KEEP_RECENT_PRESENT_KEEP_RECENT;
  creq.keep_recent = -1;
  Oee__V1__ClearCompletedTasksResponse *cresp = NULL;
  assert_int_equal(
      oee_v1_orchestrator_service_clear_completed_tasks(srv.ch, &creq, &cresp, IT_CALL_MS, NULL),
      IA);
  assert_null(cresp);
  assert_int_equal(total_tasks(), 1); /* the bad clear removed nothing */
  free(id);
}

static int submit_pipeline(Oee__V1__PipelineStrategy strategy, const char *model, int n_stages,
                           double max_time, double max_cost, int prio) {
  Oee__V1__PipelineStage stage = OEE__V1__PIPELINE_STAGE__INIT, *sp[1] = {&stage};
  stage.name = (char *)"s";
  stage.model_id = (char *)model;
  Oee__V1__SubmitPipelineRequest req = OEE__V1__SUBMIT_PIPELINE_REQUEST__INIT;
  req.pipeline_id = (char *)"p";
  req.strategy = strategy;
  req.n_stages = (size_t)n_stages;
  req.stages = n_stages ? sp : NULL;
  req.max_time = max_time;
  req.max_cost = max_cost;
  if (prio >= -100) {
    req.priority_present_case = OEE__V1__SUBMIT_PIPELINE_REQUEST__PRIORITY_PRESENT_PRIORITY;
    req.priority = prio;
  }
  Oee__V1__SubmitPipelineResponse *resp = NULL;
  int code = oee_v1_orchestrator_service_submit_pipeline(srv.ch, &req, &resp, IT_CALL_MS, NULL);
  if (resp) oee__v1__submit_pipeline_response__free_unpacked(resp, NULL);
  return code;
}

static void test_pipeline_errors(void **state) {
  start();
  const Oee__V1__PipelineStrategy L = OEE__V1__PIPELINE_STRATEGY__LOCAL_FAST_PRECISE;
  const int unset = -1000;
  assert_int_equal(submit_pipeline(L, "upper", 0, 0, 0, unset), IA);
  assert_int_equal(submit_pipeline(L, "no-such-model", 1, 0, 0, unset), IA);
  assert_int_equal(submit_pipeline(L, "", 1, 0, 0, unset), IA);
  assert_int_equal(submit_pipeline(OEE__V1__PIPELINE_STRATEGY__PIPELINE_STRATEGY_UNSPECIFIED,
                                   "upper", 1, 0, 0, unset),
                   IA);
  assert_int_equal(submit_pipeline((Oee__V1__PipelineStrategy)99, "upper", 1, 0, 0, unset), IA);
  assert_int_equal(submit_pipeline(L, "upper", 1, -1, 0, unset), IA);
  assert_int_equal(submit_pipeline(L, "upper", 1, 0, -0.5, unset), IA);
  assert_int_equal(submit_pipeline(L, "upper", 1, 0, 0, 11), IA);
  assert_int_equal(submit_pipeline(L, "upper", 1, 0, 0, -1), IA);
  assert_int_equal(total_tasks(), 0);
  assert_int_equal(submit_pipeline(L, "upper", 1, 0, 0, 0), 0);
  assert_int_equal(submit_pipeline(L, "echo", 1, 0, 0, unset), 0);

  /* GetPipelineResult of a task that is not a pipeline: NOT_FOUND. */
  char *id = it_submit_ok(srv.ch, "e", "echo", -1, NULL);
  Oee__V1__GetPipelineResultRequest greq = OEE__V1__GET_PIPELINE_RESULT_REQUEST__INIT;
  Oee__V1__PipelineResult *pr = NULL;
  greq.task_id = id;
  assert_int_equal(
      oee_v1_orchestrator_service_get_pipeline_result(srv.ch, &greq, &pr, IT_CALL_MS, NULL),
      GRPC_STATUS_NOT_FOUND);
  greq.task_id = (char *)UNKNOWN_ID;
  assert_int_equal(
      oee_v1_orchestrator_service_get_pipeline_result(srv.ch, &greq, &pr, IT_CALL_MS, NULL),
      GRPC_STATUS_NOT_FOUND);
  greq.task_id = (char *)"nope";
  assert_int_equal(
      oee_v1_orchestrator_service_get_pipeline_result(srv.ch, &greq, &pr, IT_CALL_MS, NULL), IA);
  free(id);
}

/* queue2.json: one worker, max_queue 2. */
static void test_queue_full(void **state) {
  start_with("queue2.json");
  char *blocker = it_submit_ok(srv.ch, "b", "sleep", -1, KV("seconds", "30"));
  Oee__V1__Task *t = it_wait_status(srv.ch, blocker, ST(RUNNING), IT_WAIT_MS);
  assert_non_null(t);
  oee__v1__task__free_unpacked(t, NULL);
  char *q1 = it_submit_ok(srv.ch, "q1", "echo", -1, NULL);
  char *q2 = it_submit_ok(srv.ch, "q2", "echo", -1, NULL);
  assert_non_null(q1);
  assert_non_null(q2);
  assert_int_equal(it_submit(srv.ch, "q3", "echo", -1, NULL, NULL), GRPC_STATUS_RESOURCE_EXHAUSTED);
  /* A pipeline is a queued task too. */
  assert_int_equal(
      submit_pipeline(OEE__V1__PIPELINE_STRATEGY__LOCAL_FAST_PRECISE, "echo", 1, 0, 0, -1000),
      GRPC_STATUS_RESOURCE_EXHAUSTED);
  assert_int_equal(total_tasks(), 3);
  /* Room again once a queued task is cancelled. */
  int cancelled = 0;
  assert_int_equal(it_cancel(srv.ch, q1, &cancelled), 0);
  assert_true(cancelled);
  char *q4 = it_submit_ok(srv.ch, "q4", "echo", -1, NULL);
  assert_non_null(q4);
  assert_int_equal(it_cancel(srv.ch, blocker, &cancelled), 0);
  free(blocker);
  free(q1);
  free(q2);
  free(q4);
}

/* SubmitTask of req, asserted OK and in status `status`; the id
 * (malloc'd). */
static char *submit_as(const Oee__V1__SubmitTaskRequest *req, int status) {
  Oee__V1__SubmitTaskResponse *resp = NULL;
  assert_int_equal(oee_v1_orchestrator_service_submit_task(srv.ch, req, &resp, IT_CALL_MS, NULL),
                   0);
  assert_int_equal(resp->task->status, status);
  char *id = strdup(resp->task_id);
  oee__v1__submit_task_response__free_unpacked(resp, NULL);
  return id;
}

/* max_queue counts QUEUED and SCHEDULED tasks (API.md part 2): with
 * max_queue 2 (queue2.json) two tasks delayed by run_at fill the queue
 * while nothing is QUEUED, so the next submission is RESOURCE_EXHAUSTED
 * (SubmitTask, and a SubmitTasks entry) and creates nothing; a task
 * waiting only for a dependency (SCHEDULED without run_at) fills a freed
 * slot the same way. */
static void test_queue_counts_scheduled(void **state) {
  start_with("queue2.json");
  const char *full = "queue is full: max_queue=2 tasks are already queued or scheduled";
  Google__Protobuf__Timestamp at = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  at.seconds = (int64_t)time(NULL) + 3600;
  Oee__V1__SubmitTaskRequest later;
  echo_req(&later, "later");
  later.run_at = &at;
  char *a = submit_as(&later, ST(SCHEDULED));
  char *b = submit_as(&later, ST(SCHEDULED));
  assert_int_equal(it_count(srv.ch, "queued"), 0);
  assert_int_equal(it_count(srv.ch, "scheduled"), 2);
  Oee__V1__SubmitTaskRequest now;
  echo_req(&now, "now");
  expect_both("delayed", 0, &now, GRPC_STATUS_RESOURCE_EXHAUSTED, full);
  expect_both("delayed", 1, &later, GRPC_STATUS_RESOURCE_EXHAUSTED, full);
  assert_int_equal(total_tasks(), 2);
  /* A freed slot, taken by a task that waits for b only. */
  int cancelled = 0;
  assert_int_equal(it_cancel(srv.ch, a, &cancelled), 0);
  assert_true(cancelled);
  Oee__V1__SubmitTaskRequest after;
  echo_req(&after, "after");
  after.n_depends_on = 1;
  after.depends_on = &b;
  char *c = submit_as(&after, ST(SCHEDULED));
  assert_int_equal(it_count(srv.ch, "scheduled"), 2);
  expect_both("waiting", 0, &now, GRPC_STATUS_RESOURCE_EXHAUSTED, full);
  assert_int_equal(total_tasks(), 3);
  /* Cancelling b ends c too (its dependency): room for two again. */
  assert_int_equal(it_cancel(srv.ch, b, &cancelled), 0);
  Oee__V1__Task *t = it_wait_status(srv.ch, c, ST(CANCELLED), IT_WAIT_MS);
  assert_non_null(t);
  oee__v1__task__free_unpacked(t, NULL);
  char *d = submit_as(&later, ST(SCHEDULED));
  char *e = submit_as(&later, ST(SCHEDULED));
  assert_int_equal(it_cancel(srv.ch, d, NULL), 0);
  assert_int_equal(it_cancel(srv.ch, e, NULL), 0);
  free(a);
  free(b);
  free(c);
  free(d);
  free(e);
}

static int unknown_method(const char *path) {
  Oee__V1__GetQueueStatusRequest req = OEE__V1__GET_QUEUE_STATUS_REQUEST__INIT;
  ProtobufCMessage *resp = NULL;
  int code = oee_rpc_unary(srv.ch, path, &req.base, &oee__v1__queue_status__descriptor, &resp,
                           IT_CALL_MS, NULL);
  if (resp) protobuf_c_message_free_unpacked(resp, NULL);
  return code;
}

static void test_unknown_method(void **state) {
  start();
  assert_int_equal(unknown_method(SVC "NoSuchMethod"), GRPC_STATUS_UNIMPLEMENTED);
  assert_int_equal(unknown_method("/no.such.Service/Frob"), GRPC_STATUS_UNIMPLEMENTED);
  assert_int_equal(unknown_method("/oee.v1.OrchestratorService"), GRPC_STATUS_UNIMPLEMENTED);
  /* The server is fine afterwards. */
  assert_int_equal(it_count(srv.ch, "queued"), 0);
}

static void test_malformed_body(void **state) {
  start();
  /* Raw bytes that are no valid protobuf at all. */
  static const unsigned char garbage[] = {0xff, 0xff, 0xff, 0xff};
  /* Field 1 (task_id) claims 16 bytes but only 1 follows. */
  static const unsigned char truncated[] = {0x0a, 0x10, 'a'};
  const char *methods[] = {"GetTask",           "SubmitTask",     "CancelTask",
                           "ListTasks",         "SubmitPipeline", "ClearCompletedTasks",
                           "GetPipelineResult", "SubmitTasks",    "RetryTask"};
  for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
    char path[128];
    snprintf(path, sizeof(path), SVC "%s", methods[i]);
    char *msg = NULL;
    int code = it_raw_unary(srv.target, path, garbage, sizeof(garbage), IT_CALL_MS, &msg);
    if (code != IA) fprintf(stderr, "%s(garbage) -> %d %s\n", methods[i], code, msg);
    assert_int_equal(code, IA);
    free(msg);
    code = it_raw_unary(srv.target, path, truncated, sizeof(truncated), IT_CALL_MS, NULL);
    if (code != IA) fprintf(stderr, "%s(truncated) -> %d\n", methods[i], code);
    assert_int_equal(code, IA);
  }
  /* A well-formed message of the wrong type: field 1 is a varint where
   * GetTaskRequest has a string. Sent through the stub runtime. */
  Oee__V1__ListTasksRequest wrong = OEE__V1__LIST_TASKS_REQUEST__INIT;
  wrong.status_filter = ST(DONE);
  ProtobufCMessage *resp = NULL;
  assert_int_equal(oee_rpc_unary(srv.ch, SVC "GetTask", &wrong.base, &oee__v1__task__descriptor,
                                 &resp, IT_CALL_MS, NULL),
                   IA);
  /* WatchTasks with an undecodable request. */
  int code = it_raw_unary(srv.target, SVC "WatchTasks", garbage, sizeof(garbage), IT_CALL_MS, NULL);
  assert_int_equal(code, IA);
  /* Afterwards normal calls work. */
  char *id = it_submit_ok(srv.ch, "ok", "echo", -1, KV("message", "fine"));
  Oee__V1__Task *t = it_wait_status(srv.ch, id, ST(DONE), IT_WAIT_MS);
  assert_non_null(t);
  assert_string_equal(t->result, "fine");
  oee__v1__task__free_unpacked(t, NULL);
  free(id);
}

/* Good calls from several threads while bad calls hammer the server. */
typedef struct hammer {
  atomic_int stop;
  atomic_int good_ok, good_bad, bad_wrong;
} hammer;

static void *good_calls(void *arg) {
  hammer *h = arg;
  while (!atomic_load(&h->stop)) {
    char *id = NULL;
    int code = it_submit(srv.ch, "good", "echo", 0, &id, KV("message", "m"));
    Oee__V1__Task *t = code == 0 ? it_get(srv.ch, id, &code) : NULL;
    if (code == 0 && t && strcmp(t->id, id) == 0) {
      atomic_fetch_add(&h->good_ok, 1);
    } else {
      atomic_fetch_add(&h->good_bad, 1);
    }
    if (t) oee__v1__task__free_unpacked(t, NULL);
    free(id);
  }
  return NULL;
}

static void *bad_calls(void *arg) {
  hammer *h = arg;
  static const unsigned char garbage[] = {0xff, 0xff, 0xff};
  for (int i = 0; i < 40; i++) {
    if (unknown_method(SVC "Nope") != GRPC_STATUS_UNIMPLEMENTED) atomic_fetch_add(&h->bad_wrong, 1);
    if (it_raw_unary(srv.target, SVC "SubmitTask", garbage, sizeof(garbage), IT_CALL_MS, NULL) !=
        IA) {
      atomic_fetch_add(&h->bad_wrong, 1);
    }
  }
  return NULL;
}

static void test_bad_calls_do_not_disturb(void **state) {
  start();
  hammer h = {0};
  pthread_t good[2], bad[2];
  for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&good[i], NULL, good_calls, &h), 0);
  for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&bad[i], NULL, bad_calls, &h), 0);
  for (int i = 0; i < 2; i++) pthread_join(bad[i], NULL);
  atomic_store(&h.stop, 1);
  for (int i = 0; i < 2; i++) pthread_join(good[i], NULL);
  fprintf(stderr, "good calls ok=%d failed=%d, bad calls with a wrong code=%d\n",
          atomic_load(&h.good_ok), atomic_load(&h.good_bad), atomic_load(&h.bad_wrong));
  assert_true(atomic_load(&h.good_ok) > 0);
  assert_int_equal(atomic_load(&h.good_bad), 0);
  assert_int_equal(atomic_load(&h.bad_wrong), 0);
}

static int health(const char *service) {
  Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  req.service = (char *)service;
  Grpc__Health__V1__HealthCheckResponse *resp = NULL;
  int code = grpc_health_v1_health_check(srv.ch, &req, &resp, IT_CALL_MS, NULL);
  if (resp) grpc__health__v1__health_check_response__free_unpacked(resp, NULL);
  return code;
}

static void test_health_unknown_service(void **state) {
  start();
  assert_int_equal(health(""), 0);
  assert_int_equal(health("oee.v1.OrchestratorService"), 0);
  assert_int_equal(health("no.such.Service"), GRPC_STATUS_NOT_FOUND);
}

/* Startup errors: unknown config keys and unreadable files exit non-zero. */
static void test_startup_errors(void **state) {
  char path[4096];
  snprintf(path, sizeof(path), "%s", it_runfile("tests/integration/data/bad_key.json"));
  int st = it_server_run_to_exit(ARGS("--config", path), 20000);
  assert_true(st >= 0);
  assert_true(WIFEXITED(st));
  assert_int_not_equal(WEXITSTATUS(st), 0);
  st = it_server_run_to_exit(ARGS("--config", "/nonexistent/oee.json"), 20000);
  assert_true(st >= 0 && WIFEXITED(st));
  assert_int_not_equal(WEXITSTATUS(st), 0);
  st = it_server_run_to_exit(ARGS("--workers", "0"), 20000);
  assert_true(st >= 0 && WIFEXITED(st));
  assert_int_not_equal(WEXITSTATUS(st), 0);
  /* type_limits: a type without an executor (known only once the engine
   * exists), a negative number. */
  const char *bad[] = {"type_limits_unknown.json", "type_limits_negative.json"};
  for (size_t i = 0; i < 2; i++) {
    char rel[256];
    snprintf(rel, sizeof(rel), "tests/integration/data/%s", bad[i]);
    snprintf(path, sizeof(path), "%s", it_runfile(rel));
    st = it_server_run_to_exit(ARGS("--config", path), 20000);
    assert_true(st >= 0 && WIFEXITED(st));
    assert_int_not_equal(WEXITSTATUS(st), 0);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_submit_task_errors, teardown),
      cmocka_unit_test_teardown(test_task_rows_submit_task, teardown),
      cmocka_unit_test_teardown(test_task_rows_submit_tasks, teardown),
      cmocka_unit_test_teardown(test_pipeline_rows, teardown),
      cmocka_unit_test_teardown(test_semantics_rows, teardown),
      cmocka_unit_test_teardown(test_batch_reference_rows, teardown),
      cmocka_unit_test_teardown(test_batch_reference_many, teardown),
      cmocka_unit_test_teardown(test_retry_errors, teardown),
      cmocka_unit_test_teardown(test_cancel_get_errors, teardown),
      cmocka_unit_test_teardown(test_list_clear_errors, teardown),
      cmocka_unit_test_teardown(test_pipeline_errors, teardown),
      cmocka_unit_test_teardown(test_queue_full, teardown),
      cmocka_unit_test_teardown(test_queue_counts_scheduled, teardown),
      cmocka_unit_test_teardown(test_unknown_method, teardown),
      cmocka_unit_test_teardown(test_malformed_body, teardown),
      cmocka_unit_test_teardown(test_bad_calls_do_not_disturb, teardown),
      cmocka_unit_test_teardown(test_health_unknown_service, teardown),
      cmocka_unit_test_teardown(test_startup_errors, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
