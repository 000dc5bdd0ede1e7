/* service.c - routes the methods of oee.v1.OrchestratorService to their
 * handlers by generated method index, wraps the unary ones, and wires
 * health and reflection (see service.h). */
#include "server/service.h"

#include <stdio.h>
#include <string.h>

#include "oee/v1/orchestrator.grpc-server.h"
#include "server/pipelines.h"
#include "server/schedules.h"
#include "server/status.h"
#include "server/submit.h"
#include "server/tasks.h"
#include "server/wire_read.h"
#include "server/workers.h"

#define N_METHODS OEE_V1_ORCHESTRATOR_SERVICE_N_METHODS
#define M(name) OEE_V1_ORCHESTRATOR_SERVICE_METHOD_##name

_Static_assert(N_METHODS <= OEE_SERVICE_MAX_METHODS, "raise OEE_SERVICE_MAX_METHODS");

/* A method missing here leaves a zeroed row, which oee_service_init()
 * refuses: a new RPC in the proto cannot ship unanswered. */
const oee_route oee_service_routes[N_METHODS] = {
    [M(SUBMIT_TASK)] = {.unary = oee_h_submit_task},
    [M(SUBMIT_TASKS)] = {.unary = oee_h_submit_tasks},
    [M(CANCEL_TASK)] = {.unary = oee_h_cancel_task},
    [M(GET_TASK)] = {.unary = oee_h_get_task},
    [M(LIST_TASKS)] = {.unary = oee_h_list_tasks},
    [M(GET_QUEUE_STATUS)] = {.unary = oee_h_queue_status},
    [M(GET_SYSTEM_STATUS)] = {.unary = oee_h_system_status},
    [M(CLEAR_COMPLETED_TASKS)] = {.unary = oee_h_clear_completed},
    [M(SUBMIT_PIPELINE)] = {.unary = oee_h_submit_pipeline},
    [M(GET_PIPELINE_RESULT)] = {.unary = oee_h_pipeline_result},
    [M(WATCH_TASKS)] = {.stream = oee_watch_handler},
    [M(RETRY_TASK)] = {.unary = oee_h_retry_task},
    [M(CREATE_SCHEDULE)] = {.unary = oee_h_create_schedule},
    [M(GET_SCHEDULE)] = {.unary = oee_h_get_schedule},
    [M(LIST_SCHEDULES)] = {.unary = oee_h_list_schedules},
    [M(DELETE_SCHEDULE)] = {.unary = oee_h_delete_schedule},
    [M(PAUSE_SCHEDULE)] = {.unary = oee_h_pause_schedule},
    [M(RESUME_SCHEDULE)] = {.unary = oee_h_resume_schedule},
};
const size_t oee_service_n_routes = N_METHODS;

/* oee.v1.WorkerService: all unary, checked the same way. */
#define W_METHODS OEE_V1_WORKER_SERVICE_N_METHODS
#define W(name) OEE_V1_WORKER_SERVICE_METHOD_##name
_Static_assert(N_METHODS + W_METHODS <= OEE_SERVICE_MAX_METHODS, "raise OEE_SERVICE_MAX_METHODS");
static const oee_route worker_routes[W_METHODS] = {
    [W(POLL_TASKS)] = {.unary = oee_h_poll_tasks},
    [W(HEARTBEAT)] = {.unary = oee_h_heartbeat},
    [W(COMPLETE_TASK)] = {.unary = oee_h_complete_task},
    [W(FAIL_TASK)] = {.unary = oee_h_fail_task},
};

/* The services health and reflection report. */
static const char *const served[] = {OEE_V1_ORCHESTRATOR_SERVICE_NAME, OEE_V1_WORKER_SERVICE_NAME,
                                     "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
                                     "grpc.reflection.v1alpha.ServerReflection"};

/* Every unary call: the handler fills a reply or an error; this sends it
 * and releases what the reply borrowed. A handler that deferred its answer
 * (oee_reply_defer) sends it itself, maybe from another thread; the context
 * lives until both are done with it. ctx is the method's oee_binding. */
static void unary(oee_rpc_call *call, const ProtobufCMessage *req, void *ctx) {
  const oee_binding *b = ctx;
  reply_ctx *out = oee_reply_new(call);
  if (out == NULL) {
    oee_rpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  grpc_status_code code = b->fn(b->svc, req, out);
  if (!out->deferred) oee_reply_answer(out, code);
  oee_reply_drop(out);
}

static int refuse(char *why, size_t len, const char *path, const char *problem) {
  snprintf(why, len, "method %s %s", path, problem);
  return -1;
}

static int check_table(const oee_rpc_method *m, const oee_route *routes, size_t n, char *why,
                       size_t len) {
  for (size_t i = 0; i < n; i++) {
    const oee_route *r = &routes[i];
    if (!r->unary && !r->stream) return refuse(why, len, m[i].path, "has no handler");
    if (r->unary && r->stream) return refuse(why, len, m[i].path, "has two handlers");
    if (m[i].client_streaming) return refuse(why, len, m[i].path, "streams requests");
    if (m[i].server_streaming != (r->stream != NULL)) {
      return refuse(why, len, m[i].path, "has a handler of the wrong kind");
    }
  }
  return 0;
}

int oee_service_check_routes(const oee_route *routes, size_t n, char *why, size_t len) {
  if (n != N_METHODS) {
    snprintf(why, len, "the route table has %zu rows for %d methods", n, N_METHODS);
    return -1;
  }
  if (check_table(oee_v1_orchestrator_service_methods, routes, n, why, len) != 0) return -1;
  return check_table(oee_v1_worker_service_methods, worker_routes, W_METHODS, why, len);
}

/* The submissions carry most of the traffic: their requests are read
 * straight from the bytes (server/wire_read.h), the rest by protobuf-c. */
static oee_rpc_decode_fn reader_of(const ProtobufCMessageDescriptor *request) {
  if (request == &oee__v1__submit_task_request__descriptor) return oee_wire_read_submit_task;
  if (request == &oee__v1__submit_tasks_request__descriptor) return oee_wire_read_submit_tasks;
  return NULL;
}

/* Registers each method with its own ctx (bindings from `first` on), so
 * the unary wrapper knows its handler without looking at the path. */
static int add_table(oee_service *s, const oee_rpc_method *methods, const oee_route *routes,
                     size_t n, size_t first) {
  for (size_t i = 0; i < n; i++) {
    const oee_route *r = &routes[i];
    oee_rpc_method m = methods[i];
    oee_binding *b = &s->bindings[first + i];
    *b = (oee_binding){.svc = s, .fn = r->unary};
    m.handler = r->unary ? unary : r->stream;
    m.decode = reader_of(m.request);
    void *ctx = r->unary ? (void *)b : (void *)s;
    if (oee_rpc_server_add_service(s->srv, &m, 1, ctx) != 0) return -1;
  }
  return 0;
}

static int add_methods(oee_service *s) {
  if (add_table(s, oee_v1_orchestrator_service_methods, oee_service_routes, N_METHODS, 0) != 0) {
    return -1;
  }
  return add_table(s, oee_v1_worker_service_methods, worker_routes, W_METHODS, N_METHODS);
}

int oee_service_init(oee_service *s, oee_engine *eng, const oee_server_config *cfg,
                     oee_rpc_server *srv, const atomic_int *stop_requests, char *why, size_t len) {
  memset(s, 0, sizeof(*s));
  s->eng = eng;
  s->cfg = cfg;
  s->srv = srv;
  s->stop_requests = stop_requests;
  atomic_init(&s->drained, 0);
  atomic_init(&s->serving, 1);
  if (oee_service_check_routes(oee_service_routes, N_METHODS, why, len) != 0) return -1;
  const char *step = "watch hub";
  if (oee_watch_hub_create(s, &s->hub) != 0) goto fail;
  step = "OrchestratorService and WorkerService methods";
  if (add_methods(s) != 0) goto fail;
  step = "health service";
  if (oee_health_create(srv, &s->health) != 0) goto fail;
  step = "reflection service";
  if (oee_reflection_create(srv, served, sizeof(served) / sizeof(served[0]), &s->reflection) != 0) {
    goto fail;
  }
  return 0;
fail:
  /* What was created is freed by oee_service_fini(), as after a run. */
  snprintf(why, len, "cannot set up the %s (out of memory or refused)", step);
  return -1;
}

int oee_service_serving(void *ud) {
  oee_service *s = ud;
  return atomic_load(&s->serving);
}

size_t oee_service_watchers(void *ud) {
  oee_service *s = ud;
  return s->hub ? oee_watch_hub_live(s->hub) : 0;
}

void oee_service_fini(oee_service *s) {
  if (s->drain_started) pthread_join(s->drain_thread, NULL);
  s->drain_started = 0;
  oee_watch_hub_destroy(s->hub);
  oee_health_destroy(s->health);
  oee_reflection_destroy(s->reflection);
  s->hub = NULL;
  s->health = NULL;
  s->reflection = NULL;
}
