/*
 * timer.c - what happens at a time: SCHEDULED tasks become QUEUED when
 * their run_at comes (a delayed task, a retry after its backoff), and a job
 * that runs past its timeout_seconds is cancelled through its token and
 * fails "timed out after <t> s" (see engine.h for the engine's design).
 *
 * DESIGN
 * Two heaps under the engine lock: `scheduled` holds the tasks waiting for
 * a time, earliest run_at first (a task is in the queue or here, never
 * both, so both use task->heap_pos); `deadlines` holds the running jobs
 * that have a timeout, earliest first. One thread per engine sleeps on
 * timer_cv until the earlier of the two tops is due, or until a new top is
 * pushed (the pusher signals), so a waiting task costs nothing but its heap
 * slot: no scan, no periodic tick, however many wait. run_at is wall-clock
 * time (CLOCK_REALTIME, as the caller gives it); the wait converts it to the
 * monotonic clock the condition variable uses at each sleep, so a clock step
 * moves the wake-up with it.
 * Remote work (lease.c) rides on the same thread: a remote attempt's
 * lease and timeout share the deadline heap, and lease.c's step answers
 * polls whose wait ended and leases tasks to waiting polls when told that
 * some were queued.
 * Due tasks move in batches of TIMER_BATCH, letting go of the lock between
 * batches, so a million tasks due at once never stall the queue.
 */
#include <math.h>

#include "core/engine.h"
#include "core/id.h"
#include "core/oee_alloc.h"
#include "core/sync.h"

#define TIMER_BATCH 256

/* ---------------------------------------------------------- the heaps */

static int scheduled_less(const void *a, const void *b) {
  const oee_task *x = a, *y = b;
  if (x->snap->run_at_ns != y->snap->run_at_ns) return x->snap->run_at_ns < y->snap->run_at_ns;
  return x->index < y->index;
}

static void scheduled_setpos(void *e, size_t pos) {
  ((oee_task *)e)->heap_pos = pos == OEE_HEAP_NONE ? OEE_TASK_NOT_QUEUED : (uint32_t)pos;
}

static int deadline_less(const void *a, const void *b) {
  return ((const oee_job *)a)->deadline_ns < ((const oee_job *)b)->deadline_ns;
}

static void deadline_setpos(void *e, size_t pos) { ((oee_job *)e)->deadline_pos = pos; }

void oee__timer_init(oee_engine *eng) {
  oee_heap_init(&eng->scheduled, scheduled_less, scheduled_setpos);
  oee_heap_init(&eng->deadlines, deadline_less, deadline_setpos);
}

void oee__timer_fini(oee_engine *eng) {
  oee_heap_fini(&eng->scheduled);
  oee_heap_fini(&eng->deadlines);
}

void oee__timer_schedule(oee_engine *eng, oee_task *t) {
  oee_heap_push(&eng->scheduled, t); /* room reserved by the caller */
  if (oee_heap_peek(&eng->scheduled) == t) oee__signal(&eng->timer_cv);
}

void oee__timer_unschedule(oee_engine *eng, oee_task *t) {
  if (t->heap_pos != OEE_TASK_NOT_QUEUED) oee_heap_remove(&eng->scheduled, t->heap_pos);
}

void oee__timer_watch(oee_engine *eng, oee_job *j) {
  j->deadline_pos = OEE_HEAP_NONE;
  if (j->snap->timeout_seconds <= 0) return;
  j->deadline_ns = oee__mono_ns() + oee__seconds_ns(j->snap->timeout_seconds);
  oee_heap_push(&eng->deadlines, j); /* room reserved at job start */
  if (oee_heap_peek(&eng->deadlines) == j) oee__signal(&eng->timer_cv);
}

void oee__timer_unwatch(oee_engine *eng, oee_job *j) {
  if (j->deadline_pos != OEE_HEAP_NONE) oee_heap_remove(&eng->deadlines, j->deadline_pos);
}

int64_t oee__seconds_ns(double s) {
  /* Beyond ~30 years a wait is as good as forever (and would overflow). */
  if (!(s > 0)) return 0;
  if (s > 1e9) s = 1e9;
  return (int64_t)(s * 1e9);
}

double oee__backoff_seconds(const oee_task_info *t, int retry) {
  double wait = t->backoff_seconds * ldexp(1.0, retry > 1 ? retry - 1 : 0);
  if (!(wait <= t->max_backoff_seconds)) wait = t->max_backoff_seconds;
  unsigned char r[2];
  oee__random_bytes(r, sizeof(r));
  double factor = 0.5 + 0.5 * (double)((r[0] << 8) | r[1]) / 65535.0; /* [0.5, 1.0] */
  return wait * factor;
}

/* --------------------------------------------------------- the thread */

/* A due task becomes QUEUED (lock held). 0, or OEE_ENOMEM: it stays. */
static int promote(oee_engine *eng, oee_task *t) {
  if (oee__graph_waiting(t)) { /* its dependencies queue it (graph.c) */
    oee_heap_pop(&eng->scheduled);
    return 0;
  }
  if (oee__queue_reserve(eng, t->snap->task_type, 1) != 0) return OEE_ENOMEM;
  oee_task_info d = *t->snap;
  d.status = OEE_TASK_QUEUED;
  int rc = oee__task_swap_snapshot(eng, t, &d);
  if (rc != 0) return rc;
  oee_heap_pop(&eng->scheduled);
  oee__queue_push(eng, t);
  return 0;
}

/* Moves what is due; returns when the next thing is due (monotonic ns, 0:
 * nothing waits) or -1 when it must run again at once. Lock held. */
static int64_t run_due(oee_engine *eng) {
  int64_t now_real = oee_now_ns(), now_mono = oee__mono_ns();
  int moved = 0;
  /* Dependents memory was short for when they were decided. */
  if (eng->graph_due != NULL && oee__graph_drain(eng)) return now_mono + OEE__OOM_BACKOFF_NS;
  oee_task *t;
  while ((t = oee_heap_peek(&eng->scheduled)) != NULL && t->snap->run_at_ns <= now_real) {
    if (promote(eng, t) != 0) return now_mono + OEE__OOM_BACKOFF_NS;
    if (++moved == TIMER_BATCH) return -1;
  }
  oee_job *j;
  while ((j = oee_heap_peek(&eng->deadlines)) != NULL && j->deadline_ns <= now_mono) {
    oee_heap_pop(&eng->deadlines);
    if (j->lease != NULL) { /* a remote attempt: lease.c ends it */
      oee__remote_deadline(eng, j);
      continue;
    }
    j->timed_out = 1;
    oee_token_cancel(j->token);
  }
  int64_t next = 0;
  if (t != NULL) next = now_mono + (t->snap->run_at_ns - now_real);
  if (j != NULL && (next == 0 || j->deadline_ns < next)) next = j->deadline_ns;
  return next;
}

/* The schedules' firings that are due are submitted without the lock
 * (lock held on entry and return); 1 when some were. Else *next (monotonic,
 * 0: none) is brought forward to the next firing. */
static int fire_schedules(oee_engine *eng, int64_t *next) {
  oee__firing fires[OEE__FIRE_BATCH];
  int64_t at_real;
  size_t n = oee__sched_take(eng, oee_now_ns(), fires, OEE__FIRE_BATCH, &at_real);
  if (n > 0) {
    oee__engine_unlock(eng);
    oee__sched_fire(eng, fires, n);
    oee__lock(&eng->lock);
    return 1;
  }
  if (at_real != 0) {
    int64_t at = oee__mono_ns() + (at_real - oee_now_ns());
    if (*next == 0 || at < *next) *next = at;
  }
  return 0;
}

static void *timer_main(void *arg) {
  oee_engine *eng = arg;
  oee__lock(&eng->lock);
  while (!eng->timer_stop) {
    int64_t next = run_due(eng);
    if (next < 0) { /* a full batch moved: let others in, go on */
      oee__engine_unlock(eng);
      oee__lock(&eng->lock);
      continue;
    }
    if (fire_schedules(eng, &next)) continue;
    if (eng->remote && oee__remote_run(eng, &next)) continue;
    if (eng->timer_stop) break;
    if (next == 0) {
      oee__wait(&eng->timer_cv, &eng->lock);
    } else {
      oee__wait_until(&eng->timer_cv, &eng->lock, next);
    }
  }
  oee__engine_unlock(eng);
  return NULL;
}

int oee__timer_start(oee_engine *eng) {
  eng->timer_stop = 0;
  if (pthread_create(&eng->timer_thread, NULL, timer_main, eng) != 0) return OEE_ENOMEM;
  eng->timer_running = 1;
  return 0;
}

void oee__timer_stop(oee_engine *eng) {
  if (!eng->timer_running) return;
  oee__lock(&eng->lock);
  eng->timer_stop = 1;
  oee__signal(&eng->timer_cv);
  oee__unlock(&eng->lock);
  pthread_join(eng->timer_thread, NULL);
  eng->timer_running = 0;
}
