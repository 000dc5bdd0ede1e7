/*
 * service.h - oee.v1.OrchestratorService on top of the core engine.
 *
 * DESIGN: every handler runs on the server's completion-queue thread (see
 * server/rt/rpc_server.h). Unary handlers validate, call the engine (which
 * never blocks for long: it only takes its lock) and reply at once. Watch
 * streams are fed from engine subscriptions by the tick hook and by write
 * completions, also on the CQ thread, so no worker thread ever touches a
 * call. Shutdown: see service_tick() in service.c.
 */
#ifndef OEE_SERVER_SERVICE_H
#define OEE_SERVER_SERVICE_H

#include <grpc/status.h>
#include <pthread.h>
#include <stdatomic.h>

#include "core/oee.h"
#include "server/config.h"
#include "server/health.h"
#include "server/reflection.h"
#include "server/rt/rpc_server.h"

#define OEE_VERSION "0.1.0"

typedef struct oee_watch_hub oee_watch_hub;

typedef enum oee_service_state {
  OEE_SERVING = 0,
  OEE_DRAINING = 1,   /* submissions refused, running tasks finishing */
  OEE_FLUSHING = 2,   /* engine stopped; last events going to watchers */
  OEE_STOPPED = 3,    /* streams ended, server shutting down */
} oee_service_state;

typedef struct oee_service {
  oee_engine *eng;                 /* borrowed */
  const oee_server_config *cfg;    /* borrowed */
  oee_rpc_server *srv;             /* borrowed */
  oee_watch_hub *hub;              /* owned */
  oee_health *health;              /* owned */
  oee_reflection *reflection;      /* owned */
  oee_service_state state;         /* CQ thread only */
  atomic_int signals;              /* SIGTERM/SIGINT count (signal handler) */
  atomic_int drained;              /* the drain thread finished */
  int hurried;                     /* running tasks cancelled on a 2nd signal */
  int64_t flush_deadline_ns;       /* monotonic, while FLUSHING */
  pthread_t drain_thread;
} oee_service;

/* Wires the handlers of every OrchestratorService method into srv. */
int oee_service_init(oee_service *s, oee_engine *eng,
                     const oee_server_config *cfg, oee_rpc_server *srv);
/* The tick hook: shutdown steps and watch streams. CQ thread. */
void oee_service_tick(void *service);
void oee_service_fini(oee_service *s);

/* Maps a core error to a gRPC status code. */
grpc_status_code oee_status_from_error(int err);

/* watch.c */
int oee_watch_hub_create(oee_service *s, oee_watch_hub **out);
void oee_watch_hub_destroy(oee_watch_hub *hub);
void oee_watch_handler(oee_rpc_call *call, const ProtobufCMessage *req, void *ctx);
/* Writes pending events to every stream that can take one. */
void oee_watch_hub_pump(oee_watch_hub *hub);
/* 1 when no stream has undelivered events. */
int oee_watch_hub_flushed(oee_watch_hub *hub);
/* Ends every open stream with this status. */
void oee_watch_hub_finish_all(oee_watch_hub *hub, grpc_status_code code,
                              const char *message);
size_t oee_watch_hub_count(oee_watch_hub *hub);

#endif /* OEE_SERVER_SERVICE_H */
