/* service.c - the unary handlers of oee.v1.OrchestratorService, the method
 * table that routes to them, and the shutdown sequence (see service.h). */
#include "server/service.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "core/oee_pipeline.h"
#include "oee/v1/orchestrator.grpc-server.h"
#include "oee/v1/orchestrator.pb-c.h"
#include "rpc/arena.h"
#include "server/convert.h"
#include "server/log.h"

#define DEFAULT_PAGE_SIZE 100
#define MAX_PAGE_SIZE 1000
#define DEFAULT_KEEP_RECENT 100
#define FLUSH_GRACE_NS 2000000000LL /* how long watchers get for the last events */

grpc_status_code oee_status_from_error(int err) {
  switch (err) {
    case OEE_OK: return GRPC_STATUS_OK;
    case OEE_EINVAL:
    case OEE_ENOEXEC:
    case OEE_ENOCMD:
    case OEE_ENOMODEL: return GRPC_STATUS_INVALID_ARGUMENT;
    case OEE_ENOENT: return GRPC_STATUS_NOT_FOUND;
    case OEE_EFULL:
    case OEE_ENOMEM:
    case OEE_EOVERFLOW: return GRPC_STATUS_RESOURCE_EXHAUSTED;
    case OEE_ESTOPPED: return GRPC_STATUS_UNAVAILABLE;
    default: return GRPC_STATUS_INTERNAL;
  }
}

/* A reply under construction: the arena holds the message tree. */
typedef struct reply {
  oee_arena arena;
  char err[512];
} reply;

static void send_reply(oee_rpc_call *call, reply *r, const ProtobufCMessage *msg) {
  oee_rpc_call_reply(call, msg);
  oee_arena_free(&r->arena);
}

static void send_error(oee_rpc_call *call, reply *r, grpc_status_code code) {
  oee_rpc_call_fail(call, code, r->err);
  oee_arena_free(&r->arena);
}

__attribute__((format(printf, 2, 3))) static void say(reply *r, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->err, sizeof(r->err), fmt, ap);
  va_end(ap);
}

/* Checks a task id field; fills r->err when it is not a UUID. */
static int check_id(reply *r, const char *id) {
  if (oee_id_valid(id)) return 1;
  say(r, "task_id \"%.64s\" is not a UUID", id ? id : "");
  return 0;
}

/* ------------------------------------------------------------ submit */

/* Hands a core refusal to the caller: its reason, mapped to a gRPC code. */
static grpc_status_code refused(reply *r, const oee_error *err) {
  say(r, "%s", err->message[0] ? err->message : oee_strerror(err->code));
  return oee_status_from_error(err->code);
}

/* Checks the size limits of a submission; fills r->err when one is hit. */
static int within_limits(const oee_server_config *cfg, reply *r,
                         const Oee__V1__SubmitTaskRequest *m) {
  size_t name = strlen(m->name), type = strlen(m->task_type), bytes = 0;
  if (name > cfg->max_name_bytes) {
    return say(r, "name is %zu bytes; the limit max_name_bytes is %zu", name, cfg->max_name_bytes), 0;
  }
  if (type > cfg->max_type_bytes) {
    return say(r, "task_type is %zu bytes; the limit max_type_bytes is %zu", type, cfg->max_type_bytes), 0;
  }
  if (m->n_context > cfg->max_context_entries) {
    return say(r, "context has %zu entries; the limit max_context_entries is %zu",
               m->n_context, cfg->max_context_entries), 0;
  }
  for (size_t i = 0; i < m->n_context; i++) {
    bytes += strlen(m->context[i]->key ? m->context[i]->key : "");
    bytes += strlen(m->context[i]->value ? m->context[i]->value : "");
  }
  if (bytes > cfg->max_context_bytes) {
    return say(r, "context holds %zu bytes; the limit max_context_bytes is %zu", bytes,
               cfg->max_context_bytes), 0;
  }
  return 1;
}

/* Validates and submits one request; on error fills r->err. */
static grpc_status_code submit_one(oee_service *s, reply *r,
                                   const Oee__V1__SubmitTaskRequest *m,
                                   const oee_task_info **out) {
  int prio = m->priority_present_case ==
                     OEE__V1__SUBMIT_TASK_REQUEST__PRIORITY_PRESENT_PRIORITY
                 ? m->priority
                 : OEE_PRIORITY_DEFAULT;
  /* Only transport limits here; the core judges the fields themselves. */
  if (!within_limits(s->cfg, r, m)) return GRPC_STATUS_INVALID_ARGUMENT;
  oee_kv *kv = oee_arena_alloc(&r->arena, (m->n_context + 1) * sizeof(*kv));
  for (size_t i = 0; i < m->n_context; i++) {
    kv[i].key = m->context[i]->key ? m->context[i]->key : "";
    kv[i].value = m->context[i]->value ? m->context[i]->value : "";
  }
  oee_submit req = {m->name, m->task_type, prio, kv, m->n_context};
  oee_error err;
  int rc = oee_engine_submit(s->eng, &req, out, &err);
  return rc == 0 ? GRPC_STATUS_OK : refused(r, &err);
}

static void h_submit_task(oee_rpc_call *call, const ProtobufCMessage *msg, void *ctx) {
  reply r;
  oee_arena_init(&r.arena);
  const oee_task_info *t;
  grpc_status_code code =
      submit_one(ctx, &r, (const Oee__V1__SubmitTaskRequest *)msg, &t);
  if (code != GRPC_STATUS_OK) {
    send_error(call, &r, code);
    return;
  }
  Oee__V1__SubmitTaskResponse resp = OEE__V1__SUBMIT_TASK_RESPONSE__INIT;
  resp.task_id = (char *)t->id;
  resp.task = oee_pb_task(&r.arena, t);
  send_reply(call, &r, &resp.base);
  oee_task_info_unref(t);
}

static void h_submit_tasks(oee_rpc_call *call, const ProtobufCMessage *msg, void *ctx) {
  oee_service *s = ctx;
  const Oee__V1__SubmitTasksRequest *m = (const Oee__V1__SubmitTasksRequest *)msg;
  reply r;
  oee_arena_init(&r.arena);
  if (m->n_requests == 0 || m->n_requests > s->cfg->max_batch) {
    say(&r, "a batch must hold 1 to max_batch=%zu requests, got %zu",
        s->cfg->max_batch, m->n_requests);
    send_error(call, &r, GRPC_STATUS_INVALID_ARGUMENT);
    return;
  }
  size_t n = m->n_requests;
  const oee_task_info **snaps = calloc(n, sizeof(*snaps));
  if (snaps == NULL) {
    say(&r, "out of memory");
    send_error(call, &r, GRPC_STATUS_RESOURCE_EXHAUSTED);
    return;
  }
  Oee__V1__SubmitTasksResponse resp = OEE__V1__SUBMIT_TASKS_RESPONSE__INIT;
  resp.n_results = n;
  resp.results = oee_arena_alloc(&r.arena, n * sizeof(*resp.results));
  for (size_t i = 0; i < n; i++) {
    Oee__V1__SubmitTaskResult *res = oee_arena_alloc(&r.arena, sizeof(*res));
    oee__v1__submit_task_result__init(res);
    grpc_status_code code = submit_one(s, &r, m->requests[i], &snaps[i]);
    res->code = (int32_t)code;
    if (code == GRPC_STATUS_OK) {
      res->task_id = (char *)snaps[i]->id;
      res->task = oee_pb_task(&r.arena, snaps[i]);
    } else {
      res->message = oee_arena_printf(&r.arena, "%s", r.err);
    }
    resp.results[i] = res;
  }
  send_reply(call, &r, &resp.base);
  for (size_t i = 0; i < n; i++) oee_task_info_unref(snaps[i]);
  free(snaps);
}

/* ------------------------------------------------------- cancel and get */

static void h_cancel_task(oee_rpc_call *call, const ProtobufCMessage *msg, void *ctx) {
  oee_service *s = ctx;
  const Oee__V1__CancelTaskRequest *m = (const Oee__V1__CancelTaskRequest *)msg;
  reply r;
  oee_arena_init(&r.arena);
  if (!check_id(&r, m->task_id)) {
    send_error(call, &r, GRPC_STATUS_INVALID_ARGUMENT);
    return;
  }
  int cancelled = 0;
  const oee_task_info *t;
  if (oee_engine_cancel(s->eng, m->task_id, &cancelled, &t) != 0) {
    say(&r, "task %s not found", m->task_id);
    {
    send_error(call, &r, GRPC_STATUS_NOT_FOUND);
    return;
  }
  }
  Oee__V1__CancelTaskResponse resp = OEE__V1__CANCEL_TASK_RESPONSE__INIT;
  resp.cancelled = cancelled;
  resp.task = oee_pb_task(&r.arena, t);
  send_reply(call, &r, &resp.base);
  oee_task_info_unref(t);
}

static void h_get_task(oee_rpc_call *call, const ProtobufCMessage *msg, void *ctx) {
  oee_service *s = ctx;
  const Oee__V1__GetTaskRequest *m = (const Oee__V1__GetTaskRequest *)msg;
  reply r;
  oee_arena_init(&r.arena);
  if (!check_id(&r, m->task_id)) {
    send_error(call, &r, GRPC_STATUS_INVALID_ARGUMENT);
    return;
  }
  const oee_task_info *t;
  if (oee_engine_get(s->eng, m->task_id, &t) != 0) {
    say(&r, "task %s not found", m->task_id);
    {
    send_error(call, &r, GRPC_STATUS_NOT_FOUND);
    return;
  }
  }
  send_reply(call, &r, &oee_pb_task(&r.arena, t)->base);
  oee_task_info_unref(t);
}

/* ---------------------------------------------------------------- list */

static int check_list(reply *r, const Oee__V1__ListTasksRequest *m, oee_list_query *q) {
  if (m->page_size < 0) {
    say(r, "page_size must not be negative, got %d", m->page_size);
    return 0;
  }
  if ((unsigned)m->status_filter >= OEE_TASK_STATUS_COUNT) {
    say(r, "status_filter %d is not a TaskStatus", (int)m->status_filter);
    return 0;
  }
  if (oee_page_token_parse(m->page_token, &q->after_index) != 0) {
    say(r, "page_token \"%.64s\" is not a token this server issued", m->page_token);
    return 0;
  }
  q->status = (oee_task_status)m->status_filter;
  q->task_type = m->task_type_filter;
  q->limit = m->page_size == 0 ? DEFAULT_PAGE_SIZE
             : m->page_size > MAX_PAGE_SIZE ? MAX_PAGE_SIZE
                                            : (size_t)m->page_size;
  return 1;
}

static void h_list_tasks(oee_rpc_call *call, const ProtobufCMessage *msg, void *ctx) {
  oee_service *s = ctx;
  reply r;
  oee_arena_init(&r.arena);
  oee_list_query q = {0};
  if (!check_list(&r, (const Oee__V1__ListTasksRequest *)msg, &q)) {
    {
    send_error(call, &r, GRPC_STATUS_INVALID_ARGUMENT);
    return;
  }
  }
  oee_list_page page;
  int rc = oee_engine_list(s->eng, &q, &page);
  if (rc != 0) {
    say(&r, "list failed: %s", oee_strerror(rc));
    {
    send_error(call, &r, oee_status_from_error(rc));
    return;
  }
  }
  Oee__V1__ListTasksResponse resp = OEE__V1__LIST_TASKS_RESPONSE__INIT;
  resp.n_tasks = page.len;
  resp.tasks = oee_arena_alloc(&r.arena, (page.len + 1) * sizeof(*resp.tasks));
  for (size_t i = 0; i < page.len; i++) resp.tasks[i] = oee_pb_task(&r.arena, page.tasks[i]);
  resp.next_page_token = oee_page_token(&r.arena, page.next_index);
  resp.total_size = (int32_t)page.total;
  send_reply(call, &r, &resp.base);
  oee_list_page_free(&page);
}

/* -------------------------------------------------------------- status */

static void reply_status(oee_rpc_call *call, oee_service *s, int system) {
  reply r;
  oee_arena_init(&r.arena);
  oee_status st;
  if (oee_engine_status(s->eng, &st) != 0) {
    say(&r, "out of memory");
    {
    send_error(call, &r, GRPC_STATUS_RESOURCE_EXHAUSTED);
    return;
  }
  }
  if (s->state != OEE_SERVING) st.running = 0;
  if (system) {
    send_reply(call, &r, &oee_pb_system_status(&r.arena, &st, OEE_VERSION)->base);
  } else {
    send_reply(call, &r, &oee_pb_queue_status(&r.arena, &st)->base);
  }
  oee_status_free(&st);
}

static void h_queue_status(oee_rpc_call *call, const ProtobufCMessage *msg, void *ctx) {
  (void)msg;
  reply_status(call, ctx, 0);
}

static void h_system_status(oee_rpc_call *call, const ProtobufCMessage *msg, void *ctx) {
  (void)msg;
  reply_status(call, ctx, 1);
}

static void h_clear(oee_rpc_call *call, const ProtobufCMessage *msg, void *ctx) {
  oee_service *s = ctx;
  const Oee__V1__ClearCompletedTasksRequest *m =
      (const Oee__V1__ClearCompletedTasksRequest *)msg;
  reply r;
  oee_arena_init(&r.arena);
  long keep = m->keep_recent_present_case ==
                      OEE__V1__CLEAR_COMPLETED_TASKS_REQUEST__KEEP_RECENT_PRESENT_KEEP_RECENT
                  ? m->keep_recent
                  : DEFAULT_KEEP_RECENT;
  if (keep < 0) {
    say(&r, "keep_recent must not be negative, got %ld", keep);
    {
    send_error(call, &r, GRPC_STATUS_INVALID_ARGUMENT);
    return;
  }
  }
  Oee__V1__ClearCompletedTasksResponse resp = OEE__V1__CLEAR_COMPLETED_TASKS_RESPONSE__INIT;
  resp.cleared = (int32_t)oee_engine_clear_completed(s->eng, keep);
  oee_log(OEE_LOG_INFO, "tasks_cleared", "cleared=%d keep_recent=%ld", resp.cleared, keep);
  send_reply(call, &r, &resp.base);
}

/* ------------------------------------------------------------ pipelines */

static int check_pipeline(oee_service *s, reply *r, const Oee__V1__SubmitPipelineRequest *m) {
  if (m->n_stages > s->cfg->max_stages) {
    return say(r, "pipeline has %zu stages; the limit max_stages is %zu", m->n_stages,
               s->cfg->max_stages), 0;
  }
  size_t input = strlen(m->input ? m->input : ""), name = strlen(m->name ? m->name : "");
  if (input > s->cfg->max_context_bytes) {
    return say(r, "input is %zu bytes; the limit max_context_bytes is %zu", input,
               s->cfg->max_context_bytes), 0;
  }
  if (name > s->cfg->max_name_bytes || strlen(m->pipeline_id) > s->cfg->max_name_bytes) {
    return say(r, "name and pipeline_id are limited to max_name_bytes=%zu bytes",
               s->cfg->max_name_bytes), 0;
  }
  return 1;
}

static void h_submit_pipeline(oee_rpc_call *call, const ProtobufCMessage *msg, void *ctx) {
  oee_service *s = ctx;
  const Oee__V1__SubmitPipelineRequest *m = (const Oee__V1__SubmitPipelineRequest *)msg;
  reply r;
  oee_arena_init(&r.arena);
  if (!check_pipeline(s, &r, m)) {
    send_error(call, &r, GRPC_STATUS_INVALID_ARGUMENT);
    return;
  }
  oee_stage_spec *stages = oee_arena_alloc(&r.arena, m->n_stages * sizeof(*stages));
  for (size_t i = 0; i < m->n_stages; i++) {
    const Oee__V1__PipelineStage *st = m->stages[i];
    stages[i] = (oee_stage_spec){st->name, st->model_id,
                                 st->cost_present_case == OEE__V1__PIPELINE_STAGE__COST_PRESENT_COST,
                                 st->cost};
  }
  oee_pipeline_spec spec = {
      .pipeline_id = m->pipeline_id, .stages = stages, .n_stages = m->n_stages,
      .strategy = (oee_strategy)m->strategy, .max_time = m->max_time,
      .max_cost = m->max_cost, .input = m->input, .name = m->name,
      .priority = m->priority_present_case ==
                          OEE__V1__SUBMIT_PIPELINE_REQUEST__PRIORITY_PRESENT_PRIORITY
                      ? m->priority
                      : OEE_PRIORITY_DEFAULT};
  const oee_task_info *t;
  oee_error err;
  if (oee_engine_submit_pipeline(s->eng, &spec, &t, &err) != 0) {
    send_error(call, &r, refused(&r, &err));
    return;
  }
  Oee__V1__SubmitPipelineResponse resp = OEE__V1__SUBMIT_PIPELINE_RESPONSE__INIT;
  resp.task_id = (char *)t->id;
  resp.task = oee_pb_task(&r.arena, t);
  send_reply(call, &r, &resp.base);
  oee_task_info_unref(t);
}

static void h_pipeline_result(oee_rpc_call *call, const ProtobufCMessage *msg, void *ctx) {
  oee_service *s = ctx;
  const Oee__V1__GetPipelineResultRequest *m = (const Oee__V1__GetPipelineResultRequest *)msg;
  reply r;
  oee_arena_init(&r.arena);
  if (!check_id(&r, m->task_id)) {
    send_error(call, &r, GRPC_STATUS_INVALID_ARGUMENT);
    return;
  }
  oee_pipeline_result *res;
  if (oee_engine_pipeline_result(s->eng, m->task_id, &res) != 0) {
    say(&r, "task %s not found or not a pipeline", m->task_id);
    {
    send_error(call, &r, GRPC_STATUS_NOT_FOUND);
    return;
  }
  }
  send_reply(call, &r, &oee_pb_pipeline_result(&r.arena, res)->base);
  oee_pipeline_result_free(res);
}

/* -------------------------------------------------------------- routing */

typedef struct route {
  const char *method; /* the part of the path after the last '/' */
  oee_rpc_handler handler;
} route;

static const route routes[] = {
    {"SubmitTask", h_submit_task},
    {"SubmitTasks", h_submit_tasks},
    {"CancelTask", h_cancel_task},
    {"GetTask", h_get_task},
    {"ListTasks", h_list_tasks},
    {"GetQueueStatus", h_queue_status},
    {"GetSystemStatus", h_system_status},
    {"ClearCompletedTasks", h_clear},
    {"SubmitPipeline", h_submit_pipeline},
    {"GetPipelineResult", h_pipeline_result},
    {"WatchTasks", oee_watch_handler},
};

int oee_service_init(oee_service *s, oee_engine *eng, const oee_server_config *cfg,
                     oee_rpc_server *srv) {
  memset(s, 0, sizeof(*s));
  s->eng = eng;
  s->cfg = cfg;
  s->srv = srv;
  atomic_init(&s->signals, 0);
  atomic_init(&s->drained, 0);
  if (oee_watch_hub_create(s, &s->hub) != 0) return -1;
  enum { N = OEE_V1_ORCHESTRATOR_SERVICE_N_METHODS };
  oee_rpc_method table[N];
  memcpy(table, oee_v1_orchestrator_service_methods, sizeof(table));
  for (size_t i = 0; i < N; i++) {
    const char *name = strrchr(table[i].path, '/') + 1;
    for (size_t k = 0; k < sizeof(routes) / sizeof(routes[0]); k++) {
      if (strcmp(routes[k].method, name) == 0) table[i].handler = routes[k].handler;
    }
  }
  if (oee_rpc_server_add_service(srv, table, N, s) != 0) return -1;
  static const char *const services[] = {
      "oee.v1.OrchestratorService", "grpc.health.v1.Health",
      "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"};
  if (oee_health_create(srv, &s->health) != 0) return -1;
  return oee_reflection_create(srv, services, 4, &s->reflection);
}

void oee_service_fini(oee_service *s) {
  if (s->state >= OEE_DRAINING) pthread_join(s->drain_thread, NULL);
  oee_watch_hub_destroy(s->hub);
  oee_health_destroy(s->health);
  oee_reflection_destroy(s->reflection);
  s->hub = NULL;
  s->health = NULL;
  s->reflection = NULL;
}

/* ------------------------------------------------------------- shutdown */

static int64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *drain_main(void *arg) {
  oee_service *s = arg;
  int64_t ms = (int64_t)(s->cfg->drain_timeout * 1000.0);
  oee_engine_stop(s->eng, ms);
  atomic_store(&s->drained, 1);
  return NULL;
}

/* SIGTERM/SIGINT, seen on the CQ thread: refuse work, let running tasks
 * finish on a helper thread (engine stop blocks), keep feeding watchers. */
static void begin_drain(oee_service *s) {
  s->state = OEE_DRAINING;
  oee_log(OEE_LOG_INFO, "draining", "running_tasks_finish_within=%.1fs", s->cfg->drain_timeout);
  oee_engine_refuse_submissions(s->eng);
  oee_health_set_not_serving(s->health);
  if (pthread_create(&s->drain_thread, NULL, drain_main, s) != 0) abort();
  oee_rpc_server_set_tick_interval(s->srv, 5);
}

void oee_service_tick(void *arg) {
  oee_service *s = arg;
  int sigs = atomic_load(&s->signals);
  if (sigs >= 1 && s->state == OEE_SERVING) begin_drain(s);
  if (sigs >= 2 && !s->hurried) {
    s->hurried = 1;
    oee_log(OEE_LOG_WARN, "stop_now", "reason=second_signal");
    oee_engine_cancel_running(s->eng);
  }
  oee_watch_hub_pump(s->hub);
  if (s->state == OEE_DRAINING && atomic_load(&s->drained)) {
    s->state = OEE_FLUSHING;
    /* Even in a hurry, the final events of just-cancelled tasks go out. */
    s->flush_deadline_ns = mono_ns() + (s->hurried ? FLUSH_GRACE_NS / 10 : FLUSH_GRACE_NS);
  }
  if (s->state == OEE_FLUSHING &&
      (oee_watch_hub_flushed(s->hub) || mono_ns() >= s->flush_deadline_ns)) {
    s->state = OEE_STOPPED;
    oee_watch_hub_finish_all(s->hub, GRPC_STATUS_UNAVAILABLE, "server is shutting down");
    oee_health_finish_all(s->health, GRPC_STATUS_UNAVAILABLE, "server is shutting down");
    oee_log(OEE_LOG_INFO, "stopping", "watchers=%zu", oee_watch_hub_count(s->hub));
    oee_rpc_server_shutdown(s->srv);
  }
}
