/*
 * test_alloc_fail.c - failure injection into the server's handlers through
 * the swappable allocator (core/oee_alloc.h), as tests/core/test_alloc_fail.c
 * does for the core.
 *
 * The handlers run in-process on the fake call runtime of the fuzz harness
 * (fuzz/fake_rpc.h): requests are decoded into an arena as the real runtime
 * decodes them, so failures reach decoding too. Each sweep runs once per
 * n = 1, 2, ... with an allocator that fails exactly the n-th allocation
 * (counted atomically; the one engine worker is parked in a sleep task while
 * the calls run, so the count is the same from run to run) until a run ends
 * without reaching n. Every run builds a fresh engine and service. Then:
 *  - every call ends in a clean answer: OK, or RESOURCE_EXHAUSTED/INTERNAL
 *    with a message (batch entries likewise), one answer per call, nothing
 *    refused by the runtime, references balanced, no watcher left behind;
 *  - nothing leaks (LeakSanitizer under --config=asan) or crashes;
 *  - the engine is consistent: status counts add up and match the listing,
 *    every acknowledged task is found, no task exists that its caller was
 *    told failed, and a cancel answered with an error cancelled nothing.
 * gRPC's own allocations (slices) are not ours and are not injected.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "core/oee.h"
#include "core/oee_alloc.h"
#include "fuzz/fake_rpc.h"
#include "grpc/reflection/v1/reflection.pb-c.h"
#include "oee/v1/orchestrator.pb-c.h"
#include "server/config.h"
#include "server/drain.h"
#include "server/service.h"
#include "server/watch.h"

#define MAX_N 200000 /* a sweep that needs more never ends */
#define MAX_IDS 16
#define BIG_CONTEXT 40 /* entries: past the arenas' inline first chunk */

#define ORCH "/oee.v1.OrchestratorService/"
#define REFLECTION "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"

/* ------------------------------------------------- counting allocator */

static atomic_long calls;   /* allocations since arm() */
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

/* Installed once, before any engine exists, and never changed: engine
 * threads allocate through it. Failing is switched by fail_at alone. */
static const oee_allocator counting = {count_malloc, count_calloc, count_realloc, free};

static void arm(long n) {
  atomic_store(&hit, 0);
  atomic_store(&calls, 0);
  atomic_store(&fail_at, n);
}

static void disarm(void) { atomic_store(&fail_at, 0); }

/* ------------------------------------------------------------ one run */

typedef struct world {
  oee_server_config cfg;
  oee_engine *eng;
  oee_rpc_server *srv;
  oee_service svc;
  int svc_up;
  char pipeline[OEE_ID_LEN + 1]; /* a pipeline that ran (DONE) */
  char sleeper[OEE_ID_LEN + 1];  /* keeps the one worker busy */
  char ids[MAX_IDS][OEE_ID_LEN + 1];
  int n_ids;                      /* acknowledged submissions */
  char cancelled[OEE_ID_LEN + 1]; /* what CancelTask was asked */
  int cancel_ok;                  /* its answer was OK */
  char bad[256];                  /* the first broken rule, "" if none */
} world;

static void bad(world *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void bad(world *w, const char *fmt, ...) {
  if (w->bad[0]) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(w->bad, sizeof(w->bad), fmt, ap);
  va_end(ap);
}

static const char *no_env(const char *name) {
  (void)name;
  return NULL;
}

static void sleep_ms(int ms) {
  struct timespec ts = {0, ms * 1000000L};
  nanosleep(&ts, NULL);
}

static oee_task_status status_of(world *w, const char *id) {
  const oee_task_info *t;
  if (oee_engine_get(w->eng, id, &t) != 0) return OEE_TASK_UNSPECIFIED;
  oee_task_status s = t->status;
  oee_task_info_unref(t);
  return s;
}

static void wait_for(world *w, const char *id, oee_task_status want) {
  for (int i = 0; i < 10000 && status_of(w, id) != want; i++) sleep_ms(1);
  assert_int_equal(status_of(w, id), want);
}

/* Engine (one worker), fake server and service, with nothing failing. */
static void world_up(world *w, int with_service) {
  char err[256];
  char *argv[] = {"test_alloc_fail", NULL};
  assert_int_equal(oee_server_config_load(&w->cfg, 1, argv, no_env, err, sizeof(err)), 0);
  w->cfg.workers = 1;
  oee_engine_config ec = {.num_workers = 1, .models = w->cfg.models};
  assert_int_equal(oee_engine_create(&ec, &w->eng), 0);
  w->srv = oee_rpc_server_create("fake:0", NULL, NULL);
  assert_non_null(w->srv);
  if (!with_service) return;
  char why[256];
  assert_int_equal(oee_service_init(&w->svc, w->eng, &w->cfg, w->srv, NULL, why, sizeof(why)), 0);
  w->svc_up = 1;
  assert_int_equal(oee_rpc_server_start(w->srv), 0);
  oee_rpc_server_set_tick(w->srv, oee_service_tick, &w->svc, 50);
}

/* A pipeline run to its end, then a sleeper holding the worker, so the
 * calls under test run with no engine thread allocating. */
static void world_tasks(world *w) {
  assert_int_equal(oee_engine_start(w->eng), 0);
  oee_stage_spec st[] = {{"one", "echo", 0, 0}, {"two", "echo", 1, 0.5}};
  oee_pipeline_spec spec = {.pipeline_id = "p",
                            .stages = st,
                            .n_stages = 2,
                            .strategy = OEE_STRATEGY_LOCAL_FAST_PRECISE,
                            .input = "in",
                            .name = "pipeline",
                            .priority = 5};
  const oee_task_info *t;
  assert_int_equal(oee_engine_submit_pipeline(w->eng, &spec, &t, NULL), 0);
  memcpy(w->pipeline, t->id, sizeof(w->pipeline));
  oee_task_info_unref(t);
  wait_for(w, w->pipeline, OEE_TASK_DONE);
  oee_kv kv = {"seconds", "100000"};
  oee_submit req = {
      .name = "sleeper", .task_type = "sleep", .priority = 5, .context = &kv, .context_len = 1};
  assert_int_equal(oee_engine_submit(w->eng, &req, &t, NULL), 0);
  memcpy(w->sleeper, t->id, sizeof(w->sleeper));
  oee_task_info_unref(t);
  wait_for(w, w->sleeper, OEE_TASK_RUNNING);
}

static void world_down(world *w) {
  if (w->svc_up) oee_service_fini(&w->svc);
  oee_rpc_server_destroy(w->srv);
  oee_engine_destroy(w->eng); /* cancels the sleeper, joins the worker */
  oee_server_config_free(&w->cfg);
}

/* ----------------------------------------------------------- requests */

/* Packs a request with libc's malloc (the test's memory, not counted). */
static uint8_t *pack(const ProtobufCMessage *m, size_t *len) {
  *len = protobuf_c_message_get_packed_size(m);
  uint8_t *buf = malloc(*len ? *len : 1);
  assert_non_null(buf);
  protobuf_c_message_pack(m, buf);
  return buf;
}

/* Checks the rules every answer follows; 1 for OK. */
static int clean(world *w, const char *path, const oee_fake_outcome *o, int refs) {
  if (o->replies + o->statuses > 1) bad(w, "%s answered twice", path);
  if (o->refused || o->bad_messages) bad(w, "%s: refused or bad message", path);
  if (refs != 0) bad(w, "%s: %d call references left", path, refs);
  if (o->code == GRPC_STATUS_OK) return 1;
  if (o->code != GRPC_STATUS_RESOURCE_EXHAUSTED && o->code != GRPC_STATUS_INTERNAL) {
    bad(w, "%s answered code %d \"%s\"", path, (int)o->code, o->message);
  } else if (o->message[0] == '\0') {
    bad(w, "%s answered code %d without a message", path, (int)o->code);
  }
  return 0;
}

/* One unary call; the outcome (reply bytes) is the caller's to free. */
static int unary(world *w, const char *method, const ProtobufCMessage *req, oee_fake_outcome *o) {
  char path[128];
  snprintf(path, sizeof(path), ORCH "%s", method);
  size_t len;
  uint8_t *buf = pack(req, &len);
  oee_rpc_call *call = oee_fake_start(w->srv, path, buf, len, NULL, NULL, o);
  free(buf);
  int refs = 0;
  if (call) {
    if (!oee_fake_ended(call)) bad(w, "%s left unanswered", path);
    refs = oee_fake_end(call);
  }
  return clean(w, path, o, refs);
}

static void keep_id(world *w, const char *id) {
  if (!oee_id_valid(id) || w->n_ids == MAX_IDS) {
    bad(w, "acknowledged an id \"%s\" that is not one", id ? id : "");
    return;
  }
  memcpy(w->ids[w->n_ids++], id, OEE_ID_LEN + 1);
}

static Oee__V1__SubmitTaskRequest__ContextEntry big_entries[BIG_CONTEXT];
static Oee__V1__SubmitTaskRequest__ContextEntry *big_context[BIG_CONTEXT];
static char big_keys[BIG_CONTEXT][16];

static void request_init(Oee__V1__SubmitTaskRequest *r, const char *name, int big) {
  oee__v1__submit_task_request__init(r);
  r->name = (char *)name;
  r->task_type = "echo";
  if (!big) return;
  for (unsigned i = 0; i < BIG_CONTEXT; i++) {
    oee__v1__submit_task_request__context_entry__init(&big_entries[i]);
    snprintf(big_keys[i], sizeof(big_keys[i]), "k%02u", i);
    big_entries[i].key = big_keys[i];
    big_entries[i].value = "a value of the context, borrowed by the reply";
    big_context[i] = &big_entries[i];
  }
  r->n_context = BIG_CONTEXT;
  r->context = big_context;
}

static void call_submit_task(world *w) {
  Oee__V1__SubmitTaskRequest req;
  request_init(&req, "single", 1);
  oee_fake_outcome o;
  if (unary(w, "SubmitTask", &req.base, &o)) {
    Oee__V1__SubmitTaskResponse *r =
        oee__v1__submit_task_response__unpack(NULL, o.reply_len, o.reply);
    assert_non_null(r);
    keep_id(w, r->task_id);
    oee__v1__submit_task_response__free_unpacked(r, NULL);
  }
  oee_fake_outcome_free(&o);
}

static void call_submit_tasks(world *w) {
  Oee__V1__SubmitTaskRequest one, two, three;
  request_init(&one, "batch-1", 0);
  request_init(&two, "batch-2", 1);
  request_init(&three, "batch-3", 0);
  Oee__V1__SubmitTaskRequest *reqs[] = {&one, &two, &three};
  Oee__V1__SubmitTasksRequest req = OEE__V1__SUBMIT_TASKS_REQUEST__INIT;
  req.n_requests = 3;
  req.requests = reqs;
  oee_fake_outcome o;
  if (unary(w, "SubmitTasks", &req.base, &o)) {
    Oee__V1__SubmitTasksResponse *r =
        oee__v1__submit_tasks_response__unpack(NULL, o.reply_len, o.reply);
    assert_non_null(r);
    if (r->n_results != 3) bad(w, "SubmitTasks: %zu results for 3", r->n_results);
    for (size_t i = 0; i < r->n_results; i++) {
      const Oee__V1__SubmitTaskResult *x = r->results[i];
      if (x->code == GRPC_STATUS_OK) {
        keep_id(w, x->task_id);
      } else if (x->code != GRPC_STATUS_RESOURCE_EXHAUSTED || x->message[0] == '\0') {
        bad(w, "SubmitTasks result %zu: code %d \"%s\"", i, x->code, x->message);
      }
    }
    oee__v1__submit_tasks_response__free_unpacked(r, NULL);
  }
  oee_fake_outcome_free(&o);
}

/* A batch whose entries name earlier ones ("#<index>"): entry 1 waits for
 * entry 0 and is refused by the core (priority 11), entry 2 waits for
 * entry 1. The codes each entry may end with when an allocation fails. */
static void call_submit_refs(world *w) {
  Oee__V1__SubmitTaskRequest one, two, three;
  char *dep0[] = {"#0"}, *dep1[] = {"#1"};
  request_init(&one, "ref-0", 0);
  request_init(&two, "ref-1", 1);
  two.priority_present_case = OEE__V1__SUBMIT_TASK_REQUEST__PRIORITY_PRESENT_PRIORITY;
  two.priority = 11;
  two.n_depends_on = 1;
  two.depends_on = dep0;
  request_init(&three, "ref-2", 0);
  three.n_depends_on = 1;
  three.depends_on = dep1;
  Oee__V1__SubmitTaskRequest *reqs[] = {&one, &two, &three};
  Oee__V1__SubmitTasksRequest req = OEE__V1__SUBMIT_TASKS_REQUEST__INIT;
  req.n_requests = 3;
  req.requests = reqs;
  /* Bit c of allowed[i]: entry i may end with code c (RESOURCE_EXHAUSTED
   * always: the entry itself ran out of memory). */
  const unsigned allowed[] = {
      1u << GRPC_STATUS_OK,
      1u << GRPC_STATUS_INVALID_ARGUMENT | 1u << GRPC_STATUS_FAILED_PRECONDITION,
      1u << GRPC_STATUS_FAILED_PRECONDITION};
  oee_fake_outcome o;
  if (unary(w, "SubmitTasks", &req.base, &o)) {
    Oee__V1__SubmitTasksResponse *r =
        oee__v1__submit_tasks_response__unpack(NULL, o.reply_len, o.reply);
    assert_non_null(r);
    if (r->n_results != 3) bad(w, "SubmitTasks: %zu results for 3", r->n_results);
    for (size_t i = 0; i < r->n_results && i < 3; i++) {
      const Oee__V1__SubmitTaskResult *x = r->results[i];
      unsigned ok = allowed[i] | 1u << GRPC_STATUS_RESOURCE_EXHAUSTED;
      if (x->code == GRPC_STATUS_OK) keep_id(w, x->task_id);
      if (x->code < 0 || x->code > 16 || !(ok & 1u << x->code) ||
          (x->code != GRPC_STATUS_OK && x->message[0] == '\0')) {
        bad(w, "SubmitTasks (references) result %zu: code %d \"%s\"", i, x->code, x->message);
      }
    }
    oee__v1__submit_tasks_response__free_unpacked(r, NULL);
  }
  oee_fake_outcome_free(&o);
}

static void call_submit_pipeline(world *w) {
  Oee__V1__PipelineStage one = OEE__V1__PIPELINE_STAGE__INIT, two = OEE__V1__PIPELINE_STAGE__INIT;
  one.name = "one";
  one.model_id = "echo";
  two.name = "two";
  two.model_id = "echo";
  Oee__V1__PipelineStage *stages[] = {&one, &two};
  Oee__V1__SubmitPipelineRequest req = OEE__V1__SUBMIT_PIPELINE_REQUEST__INIT;
  req.pipeline_id = "p";
  req.n_stages = 2;
  req.stages = stages;
  req.input = "in";
  req.name = "pipeline";
  req.strategy = OEE__V1__PIPELINE_STRATEGY__LOCAL_FAST_PRECISE;
  oee_fake_outcome o;
  if (unary(w, "SubmitPipeline", &req.base, &o)) {
    Oee__V1__SubmitPipelineResponse *r =
        oee__v1__submit_pipeline_response__unpack(NULL, o.reply_len, o.reply);
    assert_non_null(r);
    keep_id(w, r->task_id);
    oee__v1__submit_pipeline_response__free_unpacked(r, NULL);
  }
  oee_fake_outcome_free(&o);
}

static void call_get_task(world *w) {
  Oee__V1__GetTaskRequest req = OEE__V1__GET_TASK_REQUEST__INIT;
  req.task_id = w->n_ids ? w->ids[0] : w->sleeper;
  oee_fake_outcome o;
  unary(w, "GetTask", &req.base, &o);
  oee_fake_outcome_free(&o);
}

static void call_cancel_task(world *w) {
  Oee__V1__CancelTaskRequest req = OEE__V1__CANCEL_TASK_REQUEST__INIT;
  if (w->n_ids == 0) return;
  memcpy(w->cancelled, w->ids[w->n_ids - 1], sizeof(w->cancelled));
  req.task_id = w->cancelled;
  oee_fake_outcome o;
  w->cancel_ok = unary(w, "CancelTask", &req.base, &o);
  oee_fake_outcome_free(&o);
}

static void call_list_tasks(world *w) {
  Oee__V1__ListTasksRequest req = OEE__V1__LIST_TASKS_REQUEST__INIT;
  req.page_size = 3; /* a next page: its token is printed into the arena */
  oee_fake_outcome o;
  unary(w, "ListTasks", &req.base, &o);
  oee_fake_outcome_free(&o);
}

static void call_pipeline_result(world *w) {
  Oee__V1__GetPipelineResultRequest req = OEE__V1__GET_PIPELINE_RESULT_REQUEST__INIT;
  req.task_id = w->pipeline;
  oee_fake_outcome o;
  unary(w, "GetPipelineResult", &req.base, &o);
  oee_fake_outcome_free(&o);
}

static void call_system_status(world *w) {
  Oee__V1__GetSystemStatusRequest req = OEE__V1__GET_SYSTEM_STATUS_REQUEST__INIT;
  oee_fake_outcome o;
  unary(w, "GetSystemStatus", &req.base, &o);
  oee_fake_outcome_free(&o);
}

/* Drives a stream as the CQ loop would, then the client goes away. */
static void drive(world *w, const char *path, oee_rpc_call *call, oee_fake_outcome *o) {
  for (int i = 0; i < 256 && !oee_fake_ended(call); i++) {
    if (!oee_fake_complete_write(call)) oee_fake_tick(w->srv);
  }
  clean(w, path, o, oee_fake_end(call));
}

static void call_watch(world *w) {
  Oee__V1__WatchTasksRequest req = OEE__V1__WATCH_TASKS_REQUEST__INIT;
  req.include_snapshot = 1;
  size_t len;
  uint8_t *buf = pack(&req.base, &len);
  oee_fake_outcome o;
  oee_rpc_call *call = oee_fake_start(w->srv, ORCH "WatchTasks", buf, len, NULL, NULL, &o);
  free(buf);
  if (call) {
    drive(w, ORCH "WatchTasks", call, &o);
  } else {
    clean(w, ORCH "WatchTasks", &o, 0);
  }
  oee_fake_outcome_free(&o);
}

static void deliver(oee_rpc_call *call, Grpc__Reflection__V1__ServerReflectionRequest *m) {
  size_t len;
  uint8_t *buf = pack(&m->base, &len);
  oee_fake_deliver(call, buf, len, 0);
  free(buf);
}

/* ListServices and a file by symbol on one stream, then a half-close. */
static void call_reflection(world *w) {
  oee_fake_outcome o;
  oee_rpc_call *call = oee_fake_start(w->srv, REFLECTION, NULL, 0, NULL, NULL, &o);
  assert_non_null(call);
  Grpc__Reflection__V1__ServerReflectionRequest m =
      GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
  m.message_request_case =
      GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES;
  m.list_services = "";
  deliver(call, &m);
  m.message_request_case =
      GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL;
  m.file_containing_symbol = "oee.v1.OrchestratorService";
  deliver(call, &m);
  oee_fake_deliver(call, NULL, 0, 1);
  drive(w, REFLECTION, call, &o);
  oee_fake_outcome_free(&o);
}

/* ------------------------------------------------------------ checks */

/* Status counts add up and match the listing; the tasks are exactly the
 * two of the set-up plus the acknowledged ones; a cancel answered with an
 * error cancelled nothing. */
static void check_engine(world *w) {
  oee_status st;
  assert_int_equal(oee_engine_status(w->eng, &st), 0);
  uint64_t sum = 0;
  for (int i = 1; i < OEE_TASK_STATUS_COUNT; i++) sum += st.by_status[i];
  oee_list_query q = {.limit = 1000};
  oee_list_page p;
  assert_int_equal(oee_engine_list(w->eng, &q, &p), 0);
  if (sum != st.total_tasks || p.total != st.total_tasks || p.len != st.total_tasks ||
      st.queue_size != st.by_status[OEE_TASK_QUEUED]) {
    bad(w, "engine counts disagree");
  }
  if (p.len != (size_t)w->n_ids + 2) {
    bad(w, "%zu tasks for %d acknowledged (+2 set up)", p.len, w->n_ids);
  }
  oee_list_page_free(&p);
  oee_status_free(&st);
  for (int i = 0; i < w->n_ids; i++) {
    if (status_of(w, w->ids[i]) == OEE_TASK_UNSPECIFIED) bad(w, "acknowledged task is gone");
  }
  if (w->cancelled[0]) {
    int is = status_of(w, w->cancelled) == OEE_TASK_CANCELLED;
    if (is != w->cancel_ok)
      bad(w, "CancelTask answered %s but did %s", w->cancel_ok ? "OK" : "an error",
          is ? "cancel" : "not cancel");
  }
  if (oee_watch_hub_count(w->svc.hub) != 0) bad(w, "a watcher outlived its call");
  if (oee_rpc_server_live_calls(w->srv) != 0) bad(w, "a call outlived the test");
}

/* ------------------------------------------------------------- sweeps */

typedef struct step {
  const char *name;
  void (*fn)(world *w);
} step;

static const step rpc_steps[] = {
    {"SubmitTask (40 context entries)", call_submit_task},
    {"SubmitTasks (3 requests)", call_submit_tasks},
    {"SubmitTasks (3 with references)", call_submit_refs},
    {"SubmitPipeline (2 stages)", call_submit_pipeline},
    {"GetTask", call_get_task},
    {"ListTasks (page of 3)", call_list_tasks},
    {"GetPipelineResult (2 stages)", call_pipeline_result},
    {"GetSystemStatus", call_system_status},
    {"WatchTasks (include_snapshot)", call_watch},
    {"ServerReflectionInfo (2 requests)", call_reflection},
    {"CancelTask", call_cancel_task},
};
#define N_STEPS (sizeof(rpc_steps) / sizeof(rpc_steps[0]))

/* Runs every step with allocation n failing (0: none); per-step counts of
 * allocations into counts when given. Returns 1 if n was reached. */
static int run_paths(long n, long *counts) {
  world w;
  memset(&w, 0, sizeof(w));
  world_up(&w, 1);
  world_tasks(&w);
  arm(n);
  for (size_t i = 0; i < N_STEPS; i++) {
    long before = atomic_load(&calls);
    rpc_steps[i].fn(&w);
    if (counts) counts[i] = atomic_load(&calls) - before;
  }
  disarm();
  int reached = atomic_load(&hit);
  check_engine(&w);
  world_down(&w);
  if (w.bad[0]) fail_msg("allocation %ld failing: %s", n, w.bad);
  return reached;
}

static void test_rpc_paths(void **state) {
  (void)state;
  long counts[N_STEPS], total = 0;
  assert_int_equal(run_paths(0, counts), 0);
  for (size_t i = 0; i < N_STEPS; i++) {
    print_message("%-36s %5ld allocations\n", rpc_steps[i].name, counts[i]);
    total += counts[i];
  }
  long n;
  for (n = 1; n < MAX_N && run_paths(n, NULL); n++) {
  }
  print_message("RPC paths: allocations failed in turn: %ld (of %ld counted)\n", n - 1, total);
  assert_int_equal(n - 1, total); /* the count is the same every run */
}

/* Service start-up (watch hub, health, reflection index) with allocation n
 * failing: it fails with a reason and frees what it made, or succeeds and
 * serves. Returns 1 if n was reached. */
static int run_startup(long n) {
  world w;
  memset(&w, 0, sizeof(w));
  world_up(&w, 0);
  char why[256] = "";
  arm(n);
  int rc = oee_service_init(&w.svc, w.eng, &w.cfg, w.srv, NULL, why, sizeof(why));
  disarm();
  int reached = atomic_load(&hit);
  w.svc_up = 1; /* fini frees what a failed init made */
  if (rc != 0 && (!reached || why[0] == '\0')) bad(&w, "init failed (%s) without a cause", why);
  if (rc == 0 && reached) bad(&w, "init succeeded although allocation %ld failed", n);
  if (rc == 0) {
    assert_int_equal(oee_rpc_server_start(w.srv), 0);
    call_reflection(&w);
  }
  world_down(&w);
  if (w.bad[0]) fail_msg("allocation %ld failing: %s", n, w.bad);
  return reached;
}

static void test_startup(void **state) {
  (void)state;
  long n;
  for (n = 1; n < MAX_N && run_startup(n); n++) {
  }
  print_message("service start-up: allocations failed in turn: %ld\n", n - 1);
  assert_true(n > 1 && n < MAX_N);
}

int main(void) {
  oee_allocator_set(&counting);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_startup),
      cmocka_unit_test(test_rpc_paths),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
