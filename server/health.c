/* health.c - the standard health service (see health.h). */
#include "server/health.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/oee_alloc.h"
#include "grpc/health/v1/health.grpc-server.h"
#include "grpc/health/v1/health.pb-c.h"

typedef Grpc__Health__V1__HealthCheckResponse__ServingStatus serving_status;

typedef struct health_watch {
  oee_health *h;
  oee_rpc_call *call;
  serving_status sent; /* last status written, or -1 */
  int known;           /* the watched name is one of ours */
  int ended;
  struct health_watch *prev, *next;
} health_watch;

struct oee_health {
  atomic_int serving; /* 1 until draining starts; Check reads it on any io thread */
  health_watch *watches;
};

static const char *const known_services[] = {"", "oee.v1.OrchestratorService",
                                             "oee.v1.WorkerService"};

static int is_known(const char *name) {
  for (size_t i = 0; i < sizeof(known_services) / sizeof(known_services[0]); i++) {
    if (strcmp(name ? name : "", known_services[i]) == 0) return 1;
  }
  return 0;
}

static serving_status current(const oee_health *h, int known) {
  if (!known) return GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN;
  return atomic_load(&h->serving)
             ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
             : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
}

static void check(oee_rpc_call *call, const ProtobufCMessage *req, void *ctx) {
  oee_health *h = ctx;
  const Grpc__Health__V1__HealthCheckRequest *m = (const void *)req;
  if (!is_known(m->service)) {
    oee_rpc_call_fail(call, GRPC_STATUS_NOT_FOUND, "unknown service");
    return;
  }
  Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
  resp.status = current(h, 1);
  oee_rpc_call_reply(call, &resp.base);
}

/* Writes the current status if it changed since the last write. */
static void watch_pump(health_watch *w) {
  serving_status now = current(w->h, w->known);
  if (w->ended || now == w->sent || !oee_rpc_call_writable(w->call)) return;
  Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
  resp.status = now;
  if (oee_rpc_call_write(w->call, &resp.base) == 0) w->sent = now;
}

static void on_writable(oee_rpc_call *call, void *user) {
  (void)call;
  watch_pump(user);
}

static void on_cancelled(oee_rpc_call *call, void *user) {
  (void)call;
  ((health_watch *)user)->ended = 1;
}

static void on_done(oee_rpc_call *call, void *user) {
  (void)call;
  health_watch *w = user;
  if (w->prev) {
    w->prev->next = w->next;
  } else {
    w->h->watches = w->next;
  }
  if (w->next) w->next->prev = w->prev;
  oee_free(w);
}

static const oee_rpc_call_callbacks watch_callbacks = {
    .on_writable = on_writable, .on_cancelled = on_cancelled, .on_done = on_done};

static void watch(oee_rpc_call *call, const ProtobufCMessage *req, void *ctx) {
  oee_health *h = ctx;
  const Grpc__Health__V1__HealthCheckRequest *m = (const void *)req;
  health_watch *w = oee_calloc(1, sizeof(*w));
  if (w == NULL) {
    oee_rpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  *w = (health_watch){.h = h,
                      .call = call,
                      .sent = (serving_status)-1,
                      .known = is_known(m->service),
                      .next = h->watches};
  if (h->watches) h->watches->prev = w;
  h->watches = w;
  oee_rpc_call_set_callbacks(call, &watch_callbacks, w);
  watch_pump(w);
}

int oee_health_create(oee_rpc_server *srv, oee_health **out) {
  oee_health *h = oee_calloc(1, sizeof(*h));
  if (h == NULL) return -1;
  atomic_init(&h->serving, 1);
  enum { N = GRPC_HEALTH_V1_HEALTH_N_METHODS };
  oee_rpc_method table[N];
  memcpy(table, grpc_health_v1_health_methods, sizeof(table));
  table[GRPC_HEALTH_V1_HEALTH_METHOD_CHECK].handler = check;
  table[GRPC_HEALTH_V1_HEALTH_METHOD_WATCH].handler = watch;
  if (oee_rpc_server_add_service(srv, table, N, h) != 0) {
    oee_free(h);
    return -1;
  }
  *out = h;
  return 0;
}

void oee_health_set_not_serving(oee_health *h) {
  atomic_store(&h->serving, 0);
  for (health_watch *w = h->watches; w; w = w->next) watch_pump(w);
}

void oee_health_finish_all(oee_health *h, grpc_status_code code, const char *msg) {
  for (health_watch *w = h->watches; w; w = w->next) {
    if (w->ended) continue;
    w->ended = 1;
    oee_rpc_call_finish(w->call, code, msg);
  }
}

void oee_health_destroy(oee_health *h) {
  if (h == NULL) return;
  while (h->watches) {
    health_watch *next = h->watches->next;
    oee_free(h->watches);
    h->watches = next;
  }
  oee_free(h);
}
