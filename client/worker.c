/*
 * worker.c - the remote worker library (see worker.h for the DESIGN).
 *
 * Task life: poll_once() makes the task (busy, held, queued) -> a handler
 * thread pops it (RUNNING) -> the handler returns -> REPORTING while the
 * report is sent -> unlinked from held -> freed by that handler thread. The
 * heartbeat thread may unlink a lost task from held at any time; run()'s
 * stop deadline may abandon a RUNNING one (unlinked, its attempt failed by
 * run() itself). Only the handler thread frees a task that it popped; run()
 * frees the queued ones it abandons.
 *
 * Lock: w->mu guards every field marked (mu) below and every task's fields
 * marked (mu). w->cv is broadcast on any change of them (slots, held,
 * cancel flags, stop), w->work_cv when the queue grows or handlers must
 * quit. Nothing calls gRPC, a handler or the log with w->mu held.
 */
#include "client/worker.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "oee/v1/orchestrator.grpc-client.h"

#define MAX_WORKER_ID 128
#define MAX_CONCURRENCY 100
#define MAX_RETRY_PAUSE_MS 10000
#define REPORT_DEADLINE_MS 10000
#define ABANDON_DEADLINE_MS 5000
#define POLL_EXTRA_MS 10000 /* beyond wait_seconds, for the reply to arrive */

enum task_state { T_QUEUED, T_RUNNING, T_REPORTING };
enum { F_REQUESTED = 1, F_LOST = 2, F_STOPPING = 4 };

struct oee_worker_task {
  oee_worker *w;
  Oee__V1__Task *task;            /* owned clone of the leased task */
  char *lease_id;                 /* owned */
  char *result;                   /* owned or NULL; set by the handler */
  char *error;                    /* owned or NULL; set by the handler */
  int retryable;                  /* for error; default 1 */
  int state;                      /* (mu) enum task_state */
  int flags;                      /* (mu) F_* */
  atomic_int reason;              /* first cancel reason; written under mu */
  int abandoned;                  /* (mu) run() failed the attempt at the deadline */
  int in_held;                    /* (mu) linked in w->held */
  int64_t expires_ms;             /* (mu) monotonic ms the lease is known to last to */
  oee_worker_task *hprev, *hnext; /* (mu) w->held links */
  oee_worker_task *qnext;         /* (mu) w->queue link */
};

struct oee_worker {
  char *id;
  char **types;
  size_t n_types;
  int concurrency;
  double lease_s, wait_s, retry_s;
  oee_worker_fn handler;
  void *user_data;
  oee_worker_log_fn log;
  void *log_data;
  oee_rpc_channel *ch;
  int own_ch;                   /* 1: ch is ours to destroy */
  oee_rpc_canceller *poll_stop; /* cancels a waiting poll at stop */
  pthread_mutex_t mu;
  pthread_cond_t cv;                /* see the file comment; CLOCK_MONOTONIC */
  pthread_cond_t work_cv;           /* handlers wait here for the queue */
  int ran;                          /* (mu) run() was called */
  int stopping;                     /* (mu) stop() was called */
  int64_t deadline_ms;              /* (mu) end of the grace, monotonic ms */
  int quit;                         /* (mu) handler threads end once idle */
  int hb_quit;                      /* (mu) the heartbeat thread ends */
  int n_busy;                       /* (mu) tasks made and not yet freed */
  int n_held;                       /* (mu) tasks linked in held */
  oee_worker_task *held;            /* (mu) leases to heartbeat */
  oee_worker_task *q_head, *q_tail; /* (mu) tasks waiting for a handler */
  pthread_t *threads;               /* concurrency handler threads */
  int n_threads;                    /* started and not yet joined */
  pthread_t hb_thread;
};

/* ------------------------------------------------------------ helpers */

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void lock(oee_worker *w) {
  if (pthread_mutex_lock(&w->mu) != 0) abort();
}

static void unlock(oee_worker *w) {
  if (pthread_mutex_unlock(&w->mu) != 0) abort();
}

/* Waits on w->cv until woken or the monotonic time `until` (ms). mu held. */
static void wait_until(oee_worker *w, int64_t until) {
  struct timespec ts = {.tv_sec = until / 1000, .tv_nsec = (long)(until % 1000) * 1000000L};
  int rc = pthread_cond_timedwait(&w->cv, &w->mu, &ts);
  if (rc != 0 && rc != ETIMEDOUT) abort();
}

static void wlog(oee_worker *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void wlog(oee_worker *w, const char *fmt, ...) {
  if (w->log == NULL) return;
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  w->log(w->log_data, buf);
}

static const char *code_name(int code) {
  const char *name = oee_rpc_status_name(code);
  return name ? name : "UNKNOWN";
}

/* A failed call's line: "<what> failed: <CODE>: <message>"; frees st. */
static void log_call(oee_worker *w, const char *what, int code, oee_rpc_status *st) {
  wlog(w, "%s failed: %s: %s", what, code_name(code),
       st->message != NULL ? st->message : "(no message)");
  oee_rpc_status_free(st);
}

/* The pause before retry number `failures` (>= 1), in ms. */
static int64_t backoff_ms(const oee_worker *w, int failures) {
  double ms = w->retry_s * 1000.0;
  for (int i = 1; i < failures && ms < MAX_RETRY_PAUSE_MS; i++) ms *= 2;
  return ms < MAX_RETRY_PAUSE_MS ? (int64_t)ms : MAX_RETRY_PAUSE_MS;
}

/* Sleeps ms (mu not held). Once the worker is stopping the pause ends at
 * once if wake_on_stop, else at the latest at the stop deadline. */
static void pause_ms(oee_worker *w, int64_t ms, int wake_on_stop) {
  int64_t end = now_ms() + ms;
  lock(w);
  for (int64_t t; (t = now_ms()) < end;) {
    if (w->stopping && (wake_on_stop || t >= w->deadline_ms)) break;
    wait_until(w, w->stopping && w->deadline_ms < end ? w->deadline_ms : end);
  }
  unlock(w);
}

/* ------------------------------------------------------------ task lists */

static void held_link(oee_worker *w, oee_worker_task *t) {
  t->hprev = NULL;
  t->hnext = w->held;
  if (w->held != NULL) w->held->hprev = t;
  w->held = t;
  t->in_held = 1;
  w->n_held++;
}

static void held_unlink(oee_worker *w, oee_worker_task *t) {
  if (!t->in_held) return;
  if (t->hprev != NULL) t->hprev->hnext = t->hnext;
  if (t->hnext != NULL) t->hnext->hprev = t->hprev;
  if (w->held == t) w->held = t->hnext;
  t->hprev = t->hnext = NULL;
  t->in_held = 0;
  w->n_held--;
  pthread_cond_broadcast(&w->cv);
}

static oee_worker_task *held_find(oee_worker *w, const char *lease_id) {
  for (oee_worker_task *t = w->held; t != NULL; t = t->hnext)
    if (strcmp(t->lease_id, lease_id) == 0) return t;
  return NULL;
}

static void queue_push(oee_worker *w, oee_worker_task *t) {
  t->qnext = NULL;
  if (w->q_tail != NULL)
    w->q_tail->qnext = t;
  else
    w->q_head = t;
  w->q_tail = t;
  pthread_cond_signal(&w->work_cv);
}

static oee_worker_task *queue_pop(oee_worker *w) {
  oee_worker_task *t = w->q_head;
  if (t == NULL) return NULL;
  w->q_head = t->qnext;
  if (w->q_head == NULL) w->q_tail = NULL;
  t->qnext = NULL;
  return t;
}

/* Marks t cancelled for `flag`; the first reason is kept. mu held. */
static void task_flag(oee_worker *w, oee_worker_task *t, int flag) {
  if (t->flags & flag) return;
  t->flags |= flag;
  int reason = flag == F_REQUESTED ? OEE_WORKER_CANCEL_REQUESTED
               : flag == F_LOST    ? OEE_WORKER_CANCEL_LOST
                                   : OEE_WORKER_CANCEL_STOPPING;
  int none = OEE_WORKER_CANCEL_NONE;
  atomic_compare_exchange_strong(&t->reason, &none, reason);
  pthread_cond_broadcast(&w->cv);
}

static void task_free(oee_worker_task *t) {
  if (t == NULL) return;
  if (t->task != NULL) oee__v1__task__free_unpacked(t->task, NULL);
  free(t->lease_id);
  free(t->result);
  free(t->error);
  free(t);
}

/* A deep copy of m (NULL: an empty Task), or NULL when out of memory. */
static Oee__V1__Task *task_clone(const Oee__V1__Task *m) {
  size_t len = m != NULL ? protobuf_c_message_get_packed_size(&m->base) : 0;
  uint8_t *buf = malloc(len > 0 ? len : 1);
  if (buf == NULL) return NULL;
  if (m != NULL) protobuf_c_message_pack(&m->base, buf);
  Oee__V1__Task *copy = oee__v1__task__unpack(NULL, len, buf);
  free(buf);
  return copy;
}

static oee_worker_task *task_new(oee_worker *w, const Oee__V1__Lease *l, int64_t expires_ms) {
  oee_worker_task *t = calloc(1, sizeof *t);
  if (t == NULL) return NULL;
  t->w = w;
  t->retryable = 1;
  t->expires_ms = expires_ms;
  t->lease_id = strdup(l->lease_id);
  t->task = task_clone(l->task);
  if (t->lease_id == NULL || t->task == NULL) {
    task_free(t);
    return NULL;
  }
  return t;
}

/* ------------------------------------------------------------ polling */

/* Each lease of a reply becomes a busy, held, queued task. */
static void take_leases(oee_worker *w, const Oee__V1__PollTasksResponse *r, int64_t expires_ms) {
  for (size_t i = 0; i < r->n_leases; i++) {
    oee_worker_task *t = task_new(w, r->leases[i], expires_ms);
    if (t == NULL) {
      wlog(w, "out of memory: lease %s left to expire", r->leases[i]->lease_id);
      continue;
    }
    lock(w);
    w->n_busy++;
    held_link(w, t);
    queue_push(w, t);
    unlock(w);
  }
}

/* One PollTasks for up to `want` tasks; returns the call's status code. */
static int poll_once(oee_worker *w, int want) {
  Oee__V1__PollTasksRequest req = OEE__V1__POLL_TASKS_REQUEST__INIT;
  req.worker_id = w->id;
  req.n_task_types = w->n_types;
  req.task_types = w->types;
  req.max_tasks_present_case = OEE__V1__POLL_TASKS_REQUEST__MAX_TASKS_PRESENT_MAX_TASKS;
  req.max_tasks = want;
  req.wait_seconds_present_case = OEE__V1__POLL_TASKS_REQUEST__WAIT_SECONDS_PRESENT_WAIT_SECONDS;
  req.wait_seconds = w->wait_s;
  req.lease_seconds_present_case = OEE__V1__POLL_TASKS_REQUEST__LEASE_SECONDS_PRESENT_LEASE_SECONDS;
  req.lease_seconds = w->lease_s;
  ProtobufCMessage *resp = NULL;
  oee_rpc_status st = {0};
  int code =
      oee_rpc_unary_cancellable(w->ch, "/oee.v1.WorkerService/PollTasks", &req.base,
                                &oee__v1__poll_tasks_response__descriptor, &resp,
                                (int64_t)(w->wait_s * 1000) + POLL_EXTRA_MS, w->poll_stop, &st);
  if (code != GRPC_STATUS_OK && oee_rpc_canceller_cancelled(w->poll_stop))
    oee_rpc_status_free(&st); /* cancelled by stop(): not worth a line */
  else if (code != GRPC_STATUS_OK)
    log_call(w, "PollTasks", code, &st);
  if (code != GRPC_STATUS_OK) return code;
  take_leases(w, (Oee__V1__PollTasksResponse *)resp, now_ms() + (int64_t)(w->lease_s * 1000));
  protobuf_c_message_free_unpacked(resp, NULL);
  return code;
}

/* The free handler slots once there is one; 0 once stopping. */
static int wait_slots(oee_worker *w) {
  lock(w);
  while (!w->stopping && w->n_busy >= w->concurrency) pthread_cond_wait(&w->cv, &w->mu);
  int free_slots = w->stopping ? 0 : w->concurrency - w->n_busy;
  unlock(w);
  return free_slots;
}

static void poll_loop(oee_worker *w) {
  int failures = 0, want;
  while ((want = wait_slots(w)) > 0) {
    if (poll_once(w, want) == GRPC_STATUS_OK)
      failures = 0;
    else
      pause_ms(w, backoff_ms(w, ++failures), 1);
  }
}

/* ------------------------------------------------------------ reports */

/* FailTask of one lease; returns the status code (st filled). */
static int fail_lease(oee_worker *w, const char *lease_id, const char *message, int retryable,
                      int64_t deadline_ms, oee_rpc_status *st) {
  Oee__V1__FailTaskRequest req = OEE__V1__FAIL_TASK_REQUEST__INIT;
  req.lease_id = (char *)lease_id;
  req.error_message = (char *)message;
  req.retryable_present_case = OEE__V1__FAIL_TASK_REQUEST__RETRYABLE_PRESENT_RETRYABLE;
  req.retryable = retryable != 0;
  req.worker_id = w->id;
  Oee__V1__Task *resp = NULL;
  int code = oee_v1_worker_service_fail_task(w->ch, &req, &resp, deadline_ms, st);
  if (resp != NULL) oee__v1__task__free_unpacked(resp, NULL);
  return code;
}

/* Sends the handler's outcome once; returns the status code. */
static int send_outcome(oee_worker *w, oee_worker_task *t, int rc, oee_rpc_status *st) {
  if (rc != 0) {
    char dflt[64];
    snprintf(dflt, sizeof dflt, "handler returned %d", rc);
    const char *msg = t->error != NULL ? t->error : dflt;
    return fail_lease(w, t->lease_id, msg, t->retryable, REPORT_DEADLINE_MS, st);
  }
  Oee__V1__CompleteTaskRequest req = OEE__V1__COMPLETE_TASK_REQUEST__INIT;
  req.lease_id = t->lease_id;
  req.result = t->result != NULL ? t->result : "";
  req.worker_id = w->id;
  Oee__V1__Task *resp = NULL;
  int code = oee_v1_worker_service_complete_task(w->ch, &req, &resp, REPORT_DEADLINE_MS, st);
  if (resp != NULL) oee__v1__task__free_unpacked(resp, NULL);
  return code;
}

/* Codes after which sending the same report again cannot help. */
static int final_code(int code) {
  return code == GRPC_STATUS_NOT_FOUND || code == GRPC_STATUS_FAILED_PRECONDITION ||
         code == GRPC_STATUS_INVALID_ARGUMENT || code == GRPC_STATUS_UNIMPLEMENTED ||
         code == GRPC_STATUS_PERMISSION_DENIED || code == GRPC_STATUS_UNAUTHENTICATED;
}

static int report_gives_up(oee_worker *w, oee_worker_task *t) {
  lock(w);
  int stop = (t->flags & F_LOST) || (w->stopping && now_ms() >= w->deadline_ms);
  unlock(w);
  return stop;
}

/* Sends the outcome until the server answers it, the lease is lost or the
 * stop deadline passed. */
static void report_outcome(oee_worker *w, oee_worker_task *t, int rc) {
  char what[96];
  snprintf(what, sizeof what, "%s of task %s", rc == 0 ? "CompleteTask" : "FailTask", t->task->id);
  for (int failures = 1;; failures++) {
    oee_rpc_status st = {0};
    int code = send_outcome(w, t, rc, &st);
    if (code == GRPC_STATUS_OK) {
      oee_rpc_status_free(&st);
      return;
    }
    log_call(w, what, code, &st);
    if (final_code(code) || report_gives_up(w, t)) return;
    pause_ms(w, backoff_ms(w, failures), 0);
  }
}

/* ------------------------------------------------------------ handlers */

/* After the handler: reports the outcome unless the lease is gone (lost,
 * or abandoned at the stop deadline), then frees t. */
static void finish_task(oee_worker *w, oee_worker_task *t, int rc) {
  lock(w);
  int report = !t->abandoned && !(t->flags & F_LOST);
  if (report) t->state = T_REPORTING;
  unlock(w);
  if (report)
    report_outcome(w, t, rc);
  else
    wlog(w, "task %s: outcome dropped (the lease is no longer held)", t->task->id);
  lock(w);
  held_unlink(w, t);
  w->n_busy--;
  pthread_cond_broadcast(&w->cv);
  unlock(w);
  task_free(t);
}

/* The next queued task (now RUNNING), or NULL once the worker quits. */
static oee_worker_task *next_task(oee_worker *w, int *lost) {
  lock(w);
  while (w->q_head == NULL && !w->quit) pthread_cond_wait(&w->work_cv, &w->mu);
  oee_worker_task *t = queue_pop(w);
  if (t != NULL) t->state = T_RUNNING;
  *lost = t != NULL && (t->flags & F_LOST);
  unlock(w);
  return t;
}

static void *handler_main(void *arg) {
  oee_worker *w = arg;
  oee_worker_task *t;
  int lost;
  while ((t = next_task(w, &lost)) != NULL) {
    int rc = lost ? -1 : w->handler(t, w->user_data);
    finish_task(w, t, rc);
  }
  return NULL;
}

/* ------------------------------------------------------------ heartbeats */

/* Copies of the held lease ids (at most 1,000, the server's limit). */
static char **collect_ids(oee_worker *w, size_t *n) {
  *n = 0;
  lock(w);
  size_t cap = w->n_held < 1000 ? (size_t)w->n_held : 1000;
  char **ids = cap > 0 ? calloc(cap, sizeof *ids) : NULL;
  for (oee_worker_task *t = w->held; ids != NULL && t != NULL && *n < cap; t = t->hnext)
    if ((ids[*n] = strdup(t->lease_id)) != NULL) (*n)++;
  unlock(w);
  return ids;
}

/* Applies one LeaseState: a new expiry, a cancel request or a loss. */
static void apply_state(oee_worker *w, const Oee__V1__LeaseState *s, int64_t expires_ms) {
  char id[64] = "";
  int lost = 0, asked = 0;
  lock(w);
  oee_worker_task *t = held_find(w, s->lease_id);
  if (t != NULL) {
    snprintf(id, sizeof id, "%s", t->task->id);
    lost = s->lost;
    asked = s->cancel_requested && !(t->flags & F_REQUESTED);
    if (s->cancel_requested) task_flag(w, t, F_REQUESTED);
    if (lost) task_flag(w, t, F_LOST);
    if (lost) held_unlink(w, t);
    t->expires_ms = expires_ms;
  }
  unlock(w);
  if (lost) wlog(w, "task %s: lease %s lost", id, s->lease_id);
  if (asked) wlog(w, "task %s: cancel requested", id);
}

/* After failed heartbeats: leases past their known expiry are lost. */
static void expire_leases(oee_worker *w) {
  int64_t now = now_ms();
  lock(w);
  for (oee_worker_task *t = w->held, *next; t != NULL; t = next) {
    next = t->hnext;
    if (t->expires_ms > now) continue;
    task_flag(w, t, F_LOST);
    held_unlink(w, t);
  }
  unlock(w);
}

static void heartbeat_once(oee_worker *w, int64_t deadline_ms) {
  size_t n = 0;
  char **ids = collect_ids(w, &n);
  if (n > 0) {
    Oee__V1__HeartbeatRequest req = OEE__V1__HEARTBEAT_REQUEST__INIT;
    req.worker_id = w->id;
    req.n_lease_ids = n;
    req.lease_ids = ids;
    Oee__V1__HeartbeatResponse *resp = NULL;
    oee_rpc_status st = {0};
    int64_t sent = now_ms();
    int code = oee_v1_worker_service_heartbeat(w->ch, &req, &resp, deadline_ms, &st);
    if (code == GRPC_STATUS_OK) {
      for (size_t i = 0; i < resp->n_leases; i++)
        apply_state(w, resp->leases[i], sent + (int64_t)(w->lease_s * 1000));
      oee__v1__heartbeat_response__free_unpacked(resp, NULL);
    } else {
      log_call(w, "Heartbeat", code, &st);
      expire_leases(w);
    }
  }
  for (size_t i = 0; i < n; i++) free(ids[i]);
  free(ids);
}

static void *heartbeat_main(void *arg) {
  oee_worker *w = arg;
  int64_t interval = (int64_t)(w->lease_s * 1000.0 / 3.0);
  int64_t next = now_ms() + interval;
  lock(w);
  while (!w->hb_quit) {
    if (now_ms() < next) {
      wait_until(w, next);
      continue;
    }
    next = now_ms() + interval;
    unlock(w);
    heartbeat_once(w, interval > 1000 ? interval : 1000);
    lock(w);
  }
  unlock(w);
  return NULL;
}

/* ------------------------------------------------------------ run, stop */

/* At the stop deadline: frees the queued tasks and abandons the running
 * ones (flagged, unlinked); tasks being reported are left to finish.
 * Returns copies of the abandoned lease ids (entries may be NULL when out
 * of memory). mu held. */
static char **abandon_locked(oee_worker *w, size_t *n) {
  *n = 0;
  char **ids = calloc((size_t)w->n_held + 1, sizeof *ids);
  oee_worker_task *t, *next;
  while ((t = queue_pop(w)) != NULL) {
    if (ids != NULL && t->in_held) ids[(*n)++] = strdup(t->lease_id);
    held_unlink(w, t);
    w->n_busy--;
    task_free(t);
  }
  for (t = w->held; t != NULL; t = next) {
    next = t->hnext;
    if (t->state == T_REPORTING) continue;
    t->abandoned = 1;
    task_flag(w, t, F_STOPPING);
    if (ids != NULL) ids[(*n)++] = strdup(t->lease_id);
    held_unlink(w, t);
  }
  return ids;
}

/* Fails the abandoned attempts as retryable, so they run again at once. */
static void fail_abandoned(oee_worker *w, char **ids, size_t n) {
  char msg[MAX_WORKER_ID + 64];
  snprintf(msg, sizeof msg, "worker %s stopped before the task finished", w->id);
  for (size_t i = 0; i < n; i++) {
    if (ids[i] == NULL) continue;
    oee_rpc_status st = {0};
    int code = fail_lease(w, ids[i], msg, 1, ABANDON_DEADLINE_MS, &st);
    if (code != GRPC_STATUS_OK) log_call(w, "FailTask at stop", code, &st);
    oee_rpc_status_free(&st);
    free(ids[i]);
  }
  free(ids);
}

/* After polling ended: waits for the running tasks up to the deadline,
 * abandons the rest, then waits for the reports in flight. */
static void drain(oee_worker *w) {
  size_t n = 0;
  lock(w);
  while (w->n_busy > 0 && now_ms() < w->deadline_ms) wait_until(w, w->deadline_ms);
  char **ids = w->n_busy > 0 ? abandon_locked(w, &n) : NULL;
  unlock(w);
  if (n > 0) wlog(w, "stop deadline passed: %zu task(s) abandoned", n);
  fail_abandoned(w, ids, n);
  lock(w);
  while (w->n_held > 0) pthread_cond_wait(&w->cv, &w->mu);
  unlock(w);
}

static void join_handlers(oee_worker *w) {
  for (int i = 0; i < w->n_threads; i++)
    if (pthread_join(w->threads[i], NULL) != 0) abort();
  w->n_threads = 0;
}

/* Ends the heartbeat thread, and the handler threads unless a handler
 * still runs (oee_worker_destroy() joins those). */
static void end_threads(oee_worker *w, int hb_started) {
  lock(w);
  w->hb_quit = 1;
  w->quit = 1;
  pthread_cond_broadcast(&w->cv);
  pthread_cond_broadcast(&w->work_cv);
  int busy = w->n_busy;
  unlock(w);
  if (hb_started && pthread_join(w->hb_thread, NULL) != 0) abort();
  if (busy == 0) join_handlers(w);
}

int oee_worker_run(oee_worker *w) {
  if (w == NULL) return OEE_RPC_EINVAL;
  lock(w);
  int ran = w->ran;
  w->ran = 1;
  unlock(w);
  if (ran) return OEE_RPC_ESTATE;
  int hb = pthread_create(&w->hb_thread, NULL, heartbeat_main, w) == 0;
  while (hb && w->n_threads < w->concurrency &&
         pthread_create(&w->threads[w->n_threads], NULL, handler_main, w) == 0)
    w->n_threads++;
  if (!hb || w->n_threads < w->concurrency) {
    end_threads(w, hb);
    return OEE_RPC_ENOMEM;
  }
  poll_loop(w);
  drain(w);
  end_threads(w, 1);
  return 0;
}

void oee_worker_stop(oee_worker *w, double grace_seconds) {
  if (w == NULL) return;
  if (!(grace_seconds >= 0)) grace_seconds = 0; /* NaN too */
  if (grace_seconds > 1e7) grace_seconds = 1e7;
  int64_t deadline = now_ms() + (int64_t)(grace_seconds * 1000.0);
  lock(w);
  if (!w->stopping || deadline < w->deadline_ms) w->deadline_ms = deadline;
  w->stopping = 1;
  pthread_cond_broadcast(&w->cv);
  unlock(w);
  oee_rpc_canceller_cancel(w->poll_stop);
}

/* ------------------------------------------------------------ create */

static int check_options(const oee_worker_options *o) {
  if (o == NULL || o->handler == NULL || o->task_types == NULL || o->n_task_types == 0)
    return OEE_RPC_EINVAL;
  if (o->channel == NULL && (o->target == NULL || o->target[0] == '\0')) return OEE_RPC_EINVAL;
  for (size_t i = 0; i < o->n_task_types; i++)
    if (o->task_types[i] == NULL || o->task_types[i][0] == '\0') return OEE_RPC_EINVAL;
  if (o->worker_id != NULL && strlen(o->worker_id) > MAX_WORKER_ID) return OEE_RPC_EINVAL;
  if (o->concurrency < 0 || o->concurrency > MAX_CONCURRENCY) return OEE_RPC_EINVAL;
  if (o->lease_seconds != 0 && !(o->lease_seconds >= 1 && o->lease_seconds <= 3600))
    return OEE_RPC_EINVAL;
  if (isnan(o->poll_wait_seconds) || o->poll_wait_seconds > 60) return OEE_RPC_EINVAL;
  if (!(o->retry_seconds >= 0 && o->retry_seconds <= 3600)) return OEE_RPC_EINVAL;
  return 0;
}

/* "<hostname>-<pid>", the default worker id. */
static char *default_id(void) {
  char host[256] = "";
  if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0')
    snprintf(host, sizeof host, "worker");
  char buf[MAX_WORKER_ID + 1];
  snprintf(buf, sizeof buf, "%.100s-%ld", host, (long)getpid());
  return strdup(buf);
}

/* Copies the strings and settings of o (checked) into w. */
static int copy_options(oee_worker *w, const oee_worker_options *o) {
  w->handler = o->handler;
  w->user_data = o->user_data;
  w->log = o->log;
  w->log_data = o->log_data;
  w->concurrency = o->concurrency > 0 ? o->concurrency : 1;
  w->lease_s = o->lease_seconds > 0 ? o->lease_seconds : 30;
  w->wait_s = o->poll_wait_seconds >= 0 ? o->poll_wait_seconds : 30;
  w->retry_s = o->retry_seconds > 0 ? o->retry_seconds : 0.5;
  w->id = o->worker_id != NULL && o->worker_id[0] != '\0' ? strdup(o->worker_id) : default_id();
  w->types = calloc(o->n_task_types, sizeof *w->types);
  w->threads = calloc((size_t)w->concurrency, sizeof *w->threads);
  if (w->id == NULL || w->types == NULL || w->threads == NULL) return OEE_RPC_ENOMEM;
  for (; w->n_types < o->n_task_types; w->n_types++)
    if ((w->types[w->n_types] = strdup(o->task_types[w->n_types])) == NULL) return OEE_RPC_ENOMEM;
  w->ch = o->channel;
  if (w->ch == NULL) {
    oee_rpc_channel_options co = {0};
    if (o->channel_options) co = *o->channel_options;
    if (co.max_reconnect_backoff_ms <= 0 || co.max_reconnect_backoff_ms > MAX_RETRY_PAUSE_MS)
      co.max_reconnect_backoff_ms = MAX_RETRY_PAUSE_MS;
    char why[256] = "";
    w->ch = oee_rpc_channel_open(o->target, &co, why, sizeof(why));
    w->own_ch = 1;
    if (w->ch == NULL && o->log) o->log(o->log_data, why); /* a TLS file or the token */
    if (w->ch == NULL && strcmp(why, "out of memory") != 0) return OEE_RPC_EINVAL;
  }
  w->poll_stop = oee_rpc_canceller_create();
  return w->ch != NULL && w->poll_stop != NULL ? 0 : OEE_RPC_ENOMEM;
}

static void init_sync(oee_worker *w) {
  pthread_condattr_t ca;
  if (pthread_mutex_init(&w->mu, NULL) != 0 || pthread_condattr_init(&ca) != 0 ||
      pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 || pthread_cond_init(&w->cv, &ca) != 0 ||
      pthread_cond_init(&w->work_cv, NULL) != 0)
    abort();
  pthread_condattr_destroy(&ca);
}

int oee_worker_create(const oee_worker_options *opts, oee_worker **out) {
  if (out == NULL) return OEE_RPC_EINVAL;
  *out = NULL;
  int rc = check_options(opts);
  if (rc != 0) return rc;
  oee_worker *w = calloc(1, sizeof *w);
  if (w == NULL) return OEE_RPC_ENOMEM;
  init_sync(w);
  rc = copy_options(w, opts);
  if (rc != 0) {
    oee_worker_destroy(w);
    return rc;
  }
  *out = w;
  return 0;
}

void oee_worker_destroy(oee_worker *w) {
  if (w == NULL) return;
  lock(w);
  w->quit = 1;
  pthread_cond_broadcast(&w->work_cv);
  unlock(w);
  join_handlers(w);
  oee_worker_task *t;
  while ((t = queue_pop(w)) != NULL) task_free(t);
  oee_rpc_canceller_destroy(w->poll_stop);
  if (w->own_ch) oee_rpc_channel_destroy(w->ch);
  for (size_t i = 0; i < w->n_types; i++) free(w->types[i]);
  free(w->types);
  free(w->threads);
  free(w->id);
  pthread_cond_destroy(&w->work_cv);
  pthread_cond_destroy(&w->cv);
  pthread_mutex_destroy(&w->mu);
  free(w);
}

const char *oee_worker_id(const oee_worker *w) { return w != NULL ? w->id : NULL; }

/* ------------------------------------------------------------ tasks */

const char *oee_worker_task_id(const oee_worker_task *t) { return t->task->id; }
const char *oee_worker_task_type(const oee_worker_task *t) { return t->task->task_type; }
const char *oee_worker_task_name(const oee_worker_task *t) { return t->task->name; }
const char *oee_worker_task_lease_id(const oee_worker_task *t) { return t->lease_id; }
int oee_worker_task_attempt(const oee_worker_task *t) { return t->task->attempt; }
int oee_worker_task_max_attempts(const oee_worker_task *t) { return t->task->max_attempts; }
const struct Oee__V1__Task *oee_worker_task_message(const oee_worker_task *t) { return t->task; }

const char *oee_worker_task_context(const oee_worker_task *t, const char *key) {
  if (key == NULL) return NULL;
  for (size_t i = 0; i < t->task->n_context; i++)
    if (strcmp(t->task->context[i]->key, key) == 0) return t->task->context[i]->value;
  return NULL;
}

size_t oee_worker_task_context_count(const oee_worker_task *t) { return t->task->n_context; }

int oee_worker_task_context_at(const oee_worker_task *t, size_t i, const char **key,
                               const char **value) {
  if (i >= t->task->n_context) return OEE_RPC_EINVAL;
  if (key != NULL) *key = t->task->context[i]->key;
  if (value != NULL) *value = t->task->context[i]->value;
  return 0;
}

/* Replaces *slot with a copy of s (NULL clears). */
static int set_string(char **slot, const char *s) {
  char *copy = NULL;
  if (s != NULL && (copy = strdup(s)) == NULL) return OEE_RPC_ENOMEM;
  free(*slot);
  *slot = copy;
  return 0;
}

int oee_worker_task_set_result(oee_worker_task *t, const char *result) {
  return set_string(&t->result, result);
}

int oee_worker_task_set_error(oee_worker_task *t, const char *message, int retryable) {
  t->retryable = retryable != 0;
  return set_string(&t->error, message);
}

int oee_worker_task_cancelled(const oee_worker_task *t) {
  return atomic_load(&((oee_worker_task *)t)->reason) != OEE_WORKER_CANCEL_NONE;
}

oee_worker_cancel_reason oee_worker_task_cancel_reason(const oee_worker_task *t) {
  return (oee_worker_cancel_reason)atomic_load(&((oee_worker_task *)t)->reason);
}

int oee_worker_task_wait_cancelled(oee_worker_task *t, int64_t timeout_ms) {
  oee_worker *w = t->w;
  int64_t end = timeout_ms < 0 ? INT64_MAX : now_ms() + timeout_ms;
  lock(w);
  while (t->flags == 0 && now_ms() < end) {
    if (timeout_ms < 0)
      pthread_cond_wait(&w->cv, &w->mu);
    else
      wait_until(w, end);
  }
  int cancelled = t->flags != 0;
  unlock(w);
  return cancelled;
}
