/*
 * service.h - oee.v1.OrchestratorService on top of the core engine.
 *
 * DESIGN: the server serves on io_threads threads (server/rt/rpc_server.h):
 * unary handlers run on any of them, concurrently; WatchTasks, the health
 * Watch, reflection and the tick run on the main thread only. Unary
 * handlers (submit.c, batch.c, tasks.c, pipelines.c, status.c, workers.c,
 * schedules.c) therefore touch only the engine (thread-safe), the config
 * (read-only) and atomics (serving, the watcher count), never the watch
 * hub or `state`. They check transport limits, call the engine (which
 * never blocks for long: it only takes its lock) and reply at once through
 * the unary wrapper (service.c), except the writes (the submissions,
 * CancelTask, ClearCompletedTasks, RetryTask) and PollTasks: they defer
 * their reply (handler.h) and the engine's callback sends it once the
 * change is stored, on the engine's commit thread (sqlite) or before the
 * engine call returns (memory). Those callbacks touch only their own
 * call's reply context, never the service; a SubmitTasks entry that names
 * an earlier entry ("#<index>") is submitted by whichever callback settles
 * the last entry it names (batch.c).
 * Calls reach them through a table indexed by the generated method index;
 * oee_service_init() refuses a table with a hole. Watch streams (watch.c)
 * are fed from engine subscriptions by the tick hook and by write
 * completions, also on the main thread, so no worker thread ever touches a
 * stream. Shutdown: see drain.h.
 */
#ifndef OEE_SERVER_SERVICE_H
#define OEE_SERVER_SERVICE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include "core/oee.h"
#include "server/config.h"
#include "server/handler.h"
#include "server/health.h"
#include "server/reflection.h"
#include "server/rt/rpc_server.h"
#include "server/watch.h"

#define OEE_VERSION "0.1.0"

/* Tick intervals of the CQ thread, in milliseconds: fast while a watch
 * stream may have events to send, in between while draining, slow idle. */
#define OEE_TICK_WATCHING_MS 1
#define OEE_TICK_DRAINING_MS 5
#define OEE_TICK_IDLE_MS 50

/* Room for the methods of OrchestratorService (checked in service.c). */
#define OEE_SERVICE_MAX_METHODS 32

typedef enum oee_service_state {
  OEE_SERVING = 0,
  OEE_DRAINING = 1, /* submissions refused, running tasks finishing */
  OEE_FLUSHING = 2, /* engine stopped; last events going to watchers */
  OEE_STOPPED = 3,  /* streams ended, server shutting down */
} oee_service_state;

/* How one method is served: a unary handler (wrapped by oee_unary) or a
 * streaming one (called as is). Exactly one is set. */
typedef struct oee_route {
  oee_unary_fn unary;
  oee_rpc_handler stream;
} oee_route;

/* One registered method: what the runtime passes as ctx to its handler. */
typedef struct oee_binding {
  struct oee_service *svc;
  oee_unary_fn fn;
} oee_binding;

typedef struct oee_service {
  oee_engine *eng;                 /* borrowed */
  const oee_server_config *cfg;    /* borrowed */
  oee_rpc_server *srv;             /* borrowed */
  oee_watch_hub *hub;              /* owned */
  oee_health *health;              /* owned */
  oee_reflection *reflection;      /* owned */
  oee_service_state state;         /* main thread only (tick, streams) */
  const atomic_int *stop_requests; /* borrowed: SIGTERM/SIGINT so far; may be NULL */
  atomic_int drained;              /* the drain thread finished */
  atomic_int serving;              /* state == OEE_SERVING, for other threads */
  int hurried;                     /* running tasks cancelled on a 2nd request */
  int drain_started;               /* drain_thread must be joined */
  int64_t flush_deadline_ns;       /* monotonic, while FLUSHING */
  pthread_t drain_thread;
  oee_binding bindings[OEE_SERVICE_MAX_METHODS]; /* per-method handler ctx */
} oee_service;

/* The routes of oee.v1.OrchestratorService, indexed by the generated
 * OEE_V1_ORCHESTRATOR_SERVICE_METHOD_* constants (n entries). */
extern const oee_route oee_service_routes[];
extern const size_t oee_service_n_routes;

/* Checks that every method of the generated table has exactly one handler of
 * the right kind (unary or server streaming). 0, or -1 with the reason (the
 * method named) in why. */
int oee_service_check_routes(const oee_route *routes, size_t n, char *why, size_t len);

/* Wires every OrchestratorService method, health and reflection into srv.
 * Returns 0, or -1 with the reason in why (a method without a handler, out
 * of memory, a registration refused); the server must not start then. s
 * borrows eng, cfg and srv, which must outlive oee_service_fini().
 * stop_requests (borrowed, may be NULL) counts stop requests made from any
 * thread: the tick starts a drain at 1 and hurries it at 2 (drain.h). It
 * may already be non-zero: a request made during start-up is honoured. */
int oee_service_init(oee_service *s, oee_engine *eng, const oee_server_config *cfg,
                     oee_rpc_server *srv, const atomic_int *stop_requests, char *why, size_t len);
/* Frees what init created; joins the drain thread. After the server ran. */
void oee_service_fini(oee_service *s);

/* For the metrics endpoint, from any thread (ud is the oee_service): 1
 * while serving, 0 once a stop began; the open WatchTasks streams. */
int oee_service_serving(void *ud);
size_t oee_service_watchers(void *ud);

#endif /* OEE_SERVER_SERVICE_H */
