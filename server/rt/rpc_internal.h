/*
 * rpc_internal.h - private to the server call runtime (rpc_server.c,
 * rpc_call.c).
 *
 * Threads and ownership (io_threads = N threads):
 *  - cqs[0] is the main queue, drained by the thread in oee_rpc_server_run()
 *    (the "main thread"); the N-1 io threads that start() starts and run()
 *    joins drain cqs[1..N-1], one each, or with io_shared_queue all of them
 *    cqs[1]. A call's batches complete on the queue it arrived on, so with
 *    a shared queue on any io thread: two completions of one call may run
 *    at once (every completion takes the call's mu).
 *  - Fixed after start, read by every thread without a lock: the
 *    registrations and their slots, the hooks (admit, observe, tick), the
 *    queues, n_cqs, grace_ms.
 *  - Main thread only: the tick fields, running, cancelled_all, grace_end,
 *    shutdown_op; every streaming call (see rpc_server.h).
 *  - Any thread: stop, live_calls and phase (atomics; phase is written by
 *    the main thread only), cq_down (under cq_lock, written once by the
 *    main thread). A slot is armed and completed on the thread(s) of its
 *    queue, one arming at a time: whoever completes it re-arms it. On a
 *    shared queue that may be another thread than the one that armed it;
 *    every rt_op's `handoff` (release when handed to gRPC, acquire when
 *    completed) orders the slot's or the call's fields between them.
 */
#ifndef OEE_SERVER_RT_RPC_INTERNAL_H
#define OEE_SERVER_RT_RPC_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include <grpc/grpc.h>
#include <grpc/support/time.h>

#include "server/rt/rpc_server.h"

/* A completion-queue tag: every tag the runtime hands to gRPC is an rt_op,
 * and the run loop calls done(owner, success). */
typedef struct rt_op {
  void (*done)(void *owner, int ok);
  void *owner;
  atomic_int handoff; /* oee__rt_op_handoff() */
} rt_op;

/* Called just before the op is handed to gRPC (a batch or a request);
 * the loop that completes it reads `handoff` with acquire first. On a
 * shared queue the completion may run on another thread than the one that
 * started it, and gRPC's own locks are invisible to ThreadSanitizer; this
 * orders the op and what it points to for it (and costs an ordinary store
 * on x86). */
static inline void oee__rt_op_handoff(rt_op *op) {
  atomic_store_explicit(&op->handoff, 1, memory_order_release);
}

typedef struct slot slot;

/* A registered method; owned by the server. */
typedef struct method_reg {
  oee_rpc_method m; /* m.path is owned (strdup) */
  void *ctx;        /* borrowed, from add_service */
  void *handle;     /* grpc_server_register_method's handle */
  slot **slots;     /* its armed requests: one per queue it is served on */
  size_t n_slots;   /* n_cqs for unary methods, 1 (the main queue) for streams */
  size_t index;     /* in srv->regs: what the observe hook is told */
} method_reg;

/* Server phases, in order. */
typedef enum phase {
  PHASE_CREATED,  /* methods may be added */
  PHASE_STARTED,  /* serving; run() may be called */
  PHASE_DRAINING, /* shutdown_and_notify issued; waiting for calls */
  PHASE_CQ_DOWN,  /* shutdown notified; the CQ is shutting down */
  PHASE_DONE      /* CQ drained: no gRPC work left */
} phase;

typedef struct oee_rpc_server oee_rpc_server;

/* An io thread: it arms slot `index` of each unary method and drains
 * srv->cqs[index] (cqs[1] when the io queue is shared). */
typedef struct io_thread {
  oee_rpc_server *srv;
  size_t index;
  pthread_t tid;
} io_thread;

struct oee_rpc_server {
  grpc_server *server;
  grpc_completion_queue *cqs[OEE_RPC_MAX_IO_THREADS]; /* [0]: the main queue */
  size_t n_cqs;                                       /* queues registered */
  size_t n_threads;                     /* threads draining them: 1 + io threads running */
  size_t want_cqs;                      /* io_threads asked for (slots per unary method) */
  int shared;                           /* the io threads share cqs[1] */
  io_thread io[OEE_RPC_MAX_IO_THREADS]; /* [i] arms slots [i]; [0] unused */
  oee_rpc_admit_fn admit;               /* set before start; NULL: every call admitted */
  void *admit_ud;
  oee_rpc_observe_fn observe; /* set before start; NULL: nobody counts calls */
  void *observe_ud;
  int port;
  int grace_ms;      /* ms given to open calls before cancelling them */
  method_reg **regs; /* owned array of owned registrations */
  size_t n_regs;
  slot *generic; /* armed grpc_server_request_call (unknown methods) */
  void (*tick)(void *ud);
  void *tick_ud;
  int tick_ms; /* -1: only after events */
  gpr_timespec last_tick;
  atomic_int stop;   /* set by oee_rpc_server_shutdown() */
  atomic_int phase;  /* a phase; written on the main thread only */
  int running;       /* run() has been entered */
  int cancelled_all; /* grpc_server_cancel_all_calls issued */
  gpr_timespec grace_end;
  rt_op shutdown_op;
  atomic_size_t live_calls;
  /* Batches may start on any thread (a late unary reply): they hold
   * cq_lock for reading while they check cq_down and start; the main
   * thread holds it for writing to set cq_down before it shuts the queues
   * down. */
  pthread_rwlock_t cq_lock;
  int cq_down; /* guarded by cq_lock */
};

/* The reason listen_addr could not be bound, after gRPC failed to:
 * OEE_RPC_EADDRINUSE when a socket already listens there, otherwise
 * OEE_RPC_EADDRNOTAVAIL (bad address, unknown host, no permission...).
 * rpc_listen.c. */
int oee__rpc_listen_error(const char *listen_addr);

/* Creates a call for a new grpc_call (ownership of gc and payload passes to
 * the call) and runs it: sends initial metadata, arms RECV_CLOSE, decodes
 * and calls the handler, or answers UNIMPLEMENTED if reg is NULL. `path`
 * (borrowed) names an unknown method in that answer. `arrived_ns` is when
 * the call came in (oee__rpc_now_ns()). */
void oee__rpc_call_dispatch(oee_rpc_server *srv, method_reg *reg, grpc_call *gc,
                            grpc_byte_buffer *payload, const char *path, int64_t arrived_ns);

/* CLOCK_MONOTONIC in ns, for call durations. */
int64_t oee__rpc_now_ns(void);
/* Tells the observe hook (if any) that a call of reg (NULL: an unknown
 * method, not told) ended with `code`, having arrived at arrived_ns. */
void oee__rpc_observe(oee_rpc_server *srv, const method_reg *reg, grpc_status_code code,
                      int64_t arrived_ns);

#endif
