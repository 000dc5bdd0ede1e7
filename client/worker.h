/*
 * worker.h - a remote worker of oee.v1.WorkerService in C: it polls the
 * server for tasks of its types, runs each in a handler of yours on one of N
 * threads, keeps the leases alive with heartbeats and reports each outcome.
 *
 * Example (error checks left out):
 *
 *   static int shout(oee_worker_task *t, void *ud) {
 *     const char *in = oee_worker_task_context(t, "input");
 *     if (in == NULL) return oee_worker_task_set_error(t, "no input", 0), 1;
 *     ... while working, give up early when oee_worker_task_cancelled(t) ...
 *     oee_worker_task_set_result(t, in);
 *     return 0;
 *   }
 *   const char *types[] = {"shout"};
 *   oee_worker_options o = {.target = "127.0.0.1:50051", .task_types = types,
 *                           .n_task_types = 1, .concurrency = 4, .handler = shout};
 *   oee_worker *w;
 *   oee_worker_create(&o, &w);
 *   ... another thread (or a signal thread) calls oee_worker_stop(w, 30) ...
 *   oee_worker_run(w);      // returns after the stop
 *   oee_worker_destroy(w);
 *
 * DESIGN
 *  - Threads: the one that calls oee_worker_run() polls (PollTasks, blocking
 *    up to poll_wait_seconds, asking for as many tasks as handler threads
 *    are free); `concurrency` handler threads each run one task at a time;
 *    one heartbeat thread sends, every lease_seconds / 3, one Heartbeat
 *    naming every lease held (running or being reported).
 *  - A leased task goes poll thread -> FIFO queue -> a free handler thread,
 *    which runs the handler and then reports it (CompleteTask or FailTask,
 *    with worker_id) before taking the next task. A lease counts as held
 *    from the poll's reply until the report was answered, so the number of
 *    held leases never exceeds `concurrency`.
 *  - Cancellation travels as a flag in the task (plus a condition variable
 *    for oee_worker_task_wait_cancelled): set by the heartbeat thread when
 *    the server answers cancel_requested or lost (or when no heartbeat
 *    succeeded before the lease's expiry), and by the stop deadline. A lost
 *    lease is dropped at once: no more heartbeats for it, and the handler's
 *    outcome is not reported (the server has already failed the attempt).
 *  - Failed calls never end the worker: PollTasks errors (UNAVAILABLE while
 *    the server restarts, NOT_FOUND, INVALID_ARGUMENT...) are logged and
 *    polling goes on after a pause (retry_seconds, doubling per failure in a
 *    row, at most 10 s); a report that fails for a passing reason
 *    (UNAVAILABLE, DEADLINE_EXCEEDED...) is sent again while the lease is
 *    held; NOT_FOUND or FAILED_PRECONDITION end the report (the server no
 *    longer holds that lease).
 *  - Stop: oee_worker_stop() ends polling at once (a waiting PollTasks is
 *    cancelled); the tasks running go on until they finish or the grace
 *    deadline passes. At the deadline the tasks still running are marked
 *    cancelled (OEE_WORKER_CANCEL_STOPPING), their attempts are failed as
 *    retryable ("worker <id> stopped") so the server runs them again at
 *    once, and oee_worker_run() returns. A handler that ignores the cancel
 *    keeps its thread until it returns; its outcome is then dropped and
 *    oee_worker_destroy() waits for it.
 *  - Locking: one mutex per worker guards the queue, the held leases and
 *    every task's flags; no call to gRPC or to a handler is made with it
 *    held. The handler and log callbacks are called without it.
 *
 * Ownership
 *  - Options are read by oee_worker_create(); strings and arrays in them are
 *    copied, but `channel` (if given) and `user_data` / `log_data` are
 *    borrowed and must outlive the worker.
 *  - The caller owns the worker: oee_worker_run() at most once, then
 *    oee_worker_destroy() (after run() returned, or instead of it).
 *  - An oee_worker_task belongs to the worker. The handler may use it only
 *    until it returns, except oee_worker_task_cancelled(), which any thread
 *    may call during the handler. Strings the accessors return are borrowed
 *    for the same time; strings given to the setters are copied.
 *
 * Thread safety: oee_worker_stop() may be called from any thread, any
 * number of times (a later call can only move the deadline nearer); it is
 * not async-signal-safe: call it from a signal-handling thread (sigwait).
 * The task functions are for the handler's own thread, except
 * oee_worker_task_cancelled() and oee_worker_task_cancel_reason().
 *
 * Errors: functions return 0 or a negative OEE_RPC_E* code (rpc/error.h).
 */
#ifndef OEE_CLIENT_WORKER_H
#define OEE_CLIENT_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "client/rt/rpc_client.h"
#include "rpc/error.h"

#ifdef __cplusplus
extern "C" {
#endif

struct Oee__V1__Task;
typedef struct oee_worker oee_worker;
typedef struct oee_worker_task oee_worker_task;

/* Runs one task on a handler thread. Return 0 for success: the task ends
 * DONE with the result set by oee_worker_task_set_result() (or ""). Any
 * other value fails the attempt with the message and retry choice given to
 * oee_worker_task_set_error() (default: "handler returned <n>", retryable:
 * the server retries while attempts remain). */
typedef int (*oee_worker_fn)(oee_worker_task *t, void *user_data);

/* One line about a failed call or an event (no trailing newline), e.g.
 * "PollTasks failed: UNAVAILABLE: ...". Called from any worker thread,
 * possibly from several at once; msg is borrowed for the call. */
typedef void (*oee_worker_log_fn)(void *log_data, const char *msg);

typedef struct oee_worker_options {
  const char *target;       /* "host:port" of the server; ignored with channel.
                               The worker's own channel retries a lost
                               connection at least every 10 s */
  oee_rpc_channel *channel; /* borrowed channel to use instead, or NULL */
  /* Settings of the worker's own channel (TLS files, token; read during
   * create only), or NULL for plaintext without a token. Its reconnect
   * backoff is capped at 10 s whatever it says. */
  const oee_rpc_channel_options *channel_options;
  const char *worker_id;         /* 1..128 bytes; NULL or "": "<hostname>-<pid>" */
  const char *const *task_types; /* the types to poll for, at least one */
  size_t n_task_types;
  int concurrency;          /* handler threads, 1..100; 0: 1 */
  double lease_seconds;     /* asked per lease, 1..3600; 0: 30 */
  double poll_wait_seconds; /* longest wait of one poll, 0..60 s; < 0: 30 */
  double retry_seconds;     /* first pause after a failed call; 0: 0.5 s */
  oee_worker_fn handler;    /* required */
  void *user_data;          /* passed to handler */
  oee_worker_log_fn log;    /* may be NULL: no log */
  void *log_data;           /* passed to log */
} oee_worker_options;

/* Validates opts and makes a worker (no thread starts and nothing is sent
 * yet). Returns 0 and *out (the caller owns it), OEE_RPC_EINVAL (no
 * handler, no types, an empty type, a value out of range, no target or
 * channel, a worker_id over 128 bytes, a channel option that cannot be
 * used: an unreadable TLS file, a bad token; told to opts->log) or
 * OEE_RPC_ENOMEM. */
int oee_worker_create(const oee_worker_options *opts, oee_worker **out);

/* Starts the handler and heartbeat threads and polls on the calling thread
 * until oee_worker_stop() and the graceful end described above. Returns 0,
 * OEE_RPC_ESTATE (run before), or OEE_RPC_ENOMEM (a thread could not be
 * started; nothing was leased then). */
int oee_worker_run(oee_worker *w);

/* Asks the worker to stop: no new polls, grace_seconds (>= 0) for the
 * tasks running to finish. Any thread; see "Thread safety". Also valid
 * before run(), which then returns at once. */
void oee_worker_stop(oee_worker *w, double grace_seconds);

/* Waits for handlers still running, then frees everything; w may be NULL.
 * No thread may be in oee_worker_run() or oee_worker_stop(). */
void oee_worker_destroy(oee_worker *w);

/* The worker id in use (the given one or the default); borrowed from w. */
const char *oee_worker_id(const oee_worker *w);

/* ---- the task given to a handler ---- */

const char *oee_worker_task_id(const oee_worker_task *t);
const char *oee_worker_task_type(const oee_worker_task *t);
const char *oee_worker_task_name(const oee_worker_task *t);
const char *oee_worker_task_lease_id(const oee_worker_task *t);
/* The attempt this run is, 1-based, and the attempts allowed in all. */
int oee_worker_task_attempt(const oee_worker_task *t);
int oee_worker_task_max_attempts(const oee_worker_task *t);
/* The value of context[key], or NULL when the task has no such key. */
const char *oee_worker_task_context(const oee_worker_task *t, const char *key);
/* Number of context entries and the i-th one (0 <= i < count), in the
 * server's order; returns 0, or OEE_RPC_EINVAL for i out of range. */
size_t oee_worker_task_context_count(const oee_worker_task *t);
int oee_worker_task_context_at(const oee_worker_task *t, size_t i, const char **key,
                               const char **value);
/* The whole Task as the poll returned it (RUNNING); borrowed. */
const struct Oee__V1__Task *oee_worker_task_message(const oee_worker_task *t);

/* Sets the result CompleteTask sends (copied; a later call replaces it).
 * Returns 0 or OEE_RPC_ENOMEM. */
int oee_worker_task_set_result(oee_worker_task *t, const char *result);
/* Sets the error_message FailTask sends when the handler returns non-zero,
 * and whether the server may retry the task (0: it ends ERROR at once).
 * Returns 0 or OEE_RPC_ENOMEM. */
int oee_worker_task_set_error(oee_worker_task *t, const char *message, int retryable);

/* Why a task should stop. */
typedef enum oee_worker_cancel_reason {
  OEE_WORKER_CANCEL_NONE = 0,
  OEE_WORKER_CANCEL_REQUESTED, /* CancelTask: return non-zero (the task ends
                                  CANCELLED), or 0 if it finished anyway */
  OEE_WORKER_CANCEL_LOST,      /* the lease is gone: the outcome is dropped */
  OEE_WORKER_CANCEL_STOPPING   /* the worker's stop deadline passed */
} oee_worker_cancel_reason;

/* 1 once the task should stop (any reason above), else 0. Any thread. */
int oee_worker_task_cancelled(const oee_worker_task *t);
/* The first reason that applied, OEE_WORKER_CANCEL_NONE if none. */
oee_worker_cancel_reason oee_worker_task_cancel_reason(const oee_worker_task *t);
/* Sleeps until the task is cancelled or timeout_ms passed (< 0: no limit);
 * returns oee_worker_task_cancelled(). For handlers that wait on something
 * slow in steps. */
int oee_worker_task_wait_cancelled(oee_worker_task *t, int64_t timeout_ms);

#ifdef __cplusplus
}
#endif

#endif /* OEE_CLIENT_WORKER_H */
