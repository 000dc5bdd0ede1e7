/*
 * quota.c - the queue of QUEUED tasks and the per-type quotas
 * (type_limits: max_running, max_per_second); see engine.h for the
 * engine's design.
 *
 * DESIGN
 * Tasks of a type without a quota share one heap (eng->queue), highest
 * priority first and FIFO among equals, as before quotas existed: with no
 * type_limits configured nothing here costs more than one branch. Each
 * type with a quota has a heap of its own, so tasks a quota holds back stay
 * QUEUED in their order without standing in front of other types. A worker
 * takes the best task among the shared heap's top and the tops of the
 * limited types that may start one now (running < max_running and a token
 * in the bucket), so the order across types is still priority, then
 * submission. The limited types are few (a config entry each) and scanned
 * in a row at each pick.
 * Token buckets refill continuously at max_per_second up to one second's
 * worth (at least one token); a type that waits only for a token tells the
 * worker when it will have one, and one idle worker sleeps until then.
 * A job's end gives its type's slot back and wakes a worker when tasks of
 * that type wait.
 * Remote types (lease.c) have an entry each too, limited or not: their
 * tasks are never taken by the engine's workers, only leased to polls
 * (oee__queue_next_of), and a push or a freed slot tells lease.c instead of
 * waking a worker.
 * Everything here runs with the engine lock held.
 */
#include <math.h>
#include <string.h>

#include "core/engine.h"
#include "core/oee_alloc.h"

struct oee__limit {
  char *task_type;
  int max_running;   /* 0 = no limit */
  double per_second; /* 0 = no limit */
  double tokens, burst;
  int64_t refilled_ns; /* CLOCK_MONOTONIC of the last refill */
  int running;
  int remote;     /* run by remote workers only */
  int limited;    /* named in type_limits */
  oee_heap queue; /* QUEUED tasks of this type */
};

static int task_less(const void *a, const void *b) {
  const oee_task *x = a, *y = b;
  if (x->priority != y->priority) return x->priority > y->priority;
  return x->index < y->index;
}

static void task_setpos(void *e, size_t pos) {
  ((oee_task *)e)->heap_pos = pos == OEE_HEAP_NONE ? OEE_TASK_NOT_QUEUED : (uint32_t)pos;
}

static oee__limit *limit_of(const oee_engine *eng, const char *type);

/* A fresh entry for `type` (room was allocated). */
static int limit_add(oee_engine *eng, const char *type, oee_error *err) {
  oee__limit *q = &eng->limits[eng->n_limits];
  size_t len = strlen(type) + 1;
  if ((q->task_type = oee_malloc(len)) == NULL) {
    return oee_error_set(err, OEE_ENOMEM, "out of memory");
  }
  memcpy(q->task_type, type, len);
  q->burst = q->tokens = 1;
  q->refilled_ns = oee__mono_ns();
  oee_heap_init(&q->queue, task_less, task_setpos);
  eng->n_limits++;
  return 0;
}

/* The remote types: an entry each (the one of their quota, if any). */
static int remote_add(oee_engine *eng, const char *const *types, size_t n, oee_error *err) {
  for (size_t i = 0; i < n; i++) {
    if (types[i] == NULL || !types[i][0]) {
      return oee_error_set(err, OEE_EINVAL, "remote_types[%zu] must not be empty", i);
    }
    oee__limit *q = limit_of(eng, types[i]);
    if (q != NULL && q->remote) {
      return oee_error_set(err, OEE_EINVAL, "remote_types: \"%.64s\" is given twice", types[i]);
    }
    if (q == NULL) {
      int rc = limit_add(eng, types[i], err);
      if (rc != 0) return rc;
      q = &eng->limits[eng->n_limits - 1];
    }
    q->remote = 1;
  }
  return 0;
}

int oee__quota_init(oee_engine *eng, const oee_type_limit *limits, size_t n,
                    const char *const *remote, size_t n_remote, oee_error *err) {
  oee_heap_init(&eng->queue, task_less, task_setpos);
  if (n + n_remote == 0) return 0;
  eng->limits = oee_calloc(n + n_remote, sizeof(*eng->limits));
  if (eng->limits == NULL) return oee_error_set(err, OEE_ENOMEM, "out of memory");
  for (size_t i = 0; i < n; i++) {
    const oee_type_limit *l = &limits[i];
    if (l->task_type == NULL || !l->task_type[0] || l->max_running < 0 ||
        !isfinite(l->max_per_second) || l->max_per_second < 0) {
      return oee_error_set(err, OEE_EINVAL,
                           "type_limits[%zu]: a task_type, max_running >= 0 and a finite "
                           "max_per_second >= 0 are needed",
                           i);
    }
    for (size_t j = 0; j < i; j++) {
      if (strcmp(limits[j].task_type, l->task_type) == 0) {
        return oee_error_set(err, OEE_EINVAL, "type_limits: \"%.64s\" is given twice",
                             l->task_type);
      }
    }
    int rc = limit_add(eng, l->task_type, err);
    if (rc != 0) return rc;
    oee__limit *q = &eng->limits[eng->n_limits - 1];
    q->limited = 1;
    q->max_running = l->max_running;
    q->per_second = l->max_per_second;
    q->burst = q->per_second > 1 ? q->per_second : 1;
    q->tokens = q->burst;
  }
  return remote_add(eng, remote, n_remote, err);
}

void oee__quota_fini(oee_engine *eng) {
  oee_heap_fini(&eng->queue);
  for (size_t i = 0; i < eng->n_limits; i++) {
    oee_free(eng->limits[i].task_type);
    oee_heap_fini(&eng->limits[i].queue);
  }
  oee_free(eng->limits);
  eng->limits = NULL;
  eng->n_limits = 0;
}

/* The quota of `type`, or NULL. */
static oee__limit *limit_of(const oee_engine *eng, const char *type) {
  for (size_t i = 0; i < eng->n_limits; i++) {
    if (strcmp(eng->limits[i].task_type, type) == 0) return &eng->limits[i];
  }
  return NULL;
}

static oee_heap *heap_of(oee_engine *eng, const char *type) {
  oee__limit *q = eng->n_limits ? limit_of(eng, type) : NULL;
  return q ? &q->queue : &eng->queue;
}

int oee__queue_reserve(oee_engine *eng, const char *type, size_t n) {
  return oee_heap_reserve(heap_of(eng, type), n);
}

void oee__queue_push(oee_engine *eng, oee_task *t) {
  oee__limit *q = eng->n_limits ? limit_of(eng, t->snap->task_type) : NULL;
  oee_heap_push(q ? &q->queue : &eng->queue, t); /* room reserved */
  if (q != NULL && q->remote) {
    oee__remote_queued(eng);
  } else {
    oee__engine_wake_one(eng);
  }
}

void oee__queue_remove(oee_engine *eng, oee_task *t) {
  if (t->heap_pos != OEE_TASK_NOT_QUEUED) {
    oee_heap_remove(heap_of(eng, t->snap->task_type), t->heap_pos);
  }
}

size_t oee__queue_len(const oee_engine *eng) {
  size_t n = eng->queue.len;
  for (size_t i = 0; i < eng->n_limits; i++) n += eng->limits[i].queue.len;
  return n;
}

/* Adds what the bucket earned since its last refill. */
static void refill(oee__limit *q, int64_t now_ns) {
  if (q->per_second <= 0 || now_ns <= q->refilled_ns) return;
  q->tokens += q->per_second * (double)(now_ns - q->refilled_ns) / 1e9;
  if (q->tokens > q->burst) q->tokens = q->burst;
  q->refilled_ns = now_ns;
}

/* 1 when a task of q's type may start now; else 0, with *at the monotonic
 * time its next token comes when only a token is missing. */
static int may_start(oee__limit *q, int64_t now_ns, int64_t *at) {
  if (q->max_running > 0 && q->running >= q->max_running) return 0;
  if (q->per_second <= 0) return 1;
  refill(q, now_ns);
  if (q->tokens >= 1) return 1;
  int64_t wait = (int64_t)ceil((1 - q->tokens) / q->per_second * 1e9);
  if (*at == 0 || now_ns + wait < *at) *at = now_ns + wait;
  return 0;
}

oee_task *oee__queue_next(oee_engine *eng, int64_t *token_at) {
  oee_task *best = oee_heap_peek(&eng->queue);
  *token_at = 0;
  if (eng->n_limits == 0) return best;
  int64_t now = oee__mono_ns();
  for (size_t i = 0; i < eng->n_limits; i++) {
    oee__limit *q = &eng->limits[i];
    oee_task *top = oee_heap_peek(&q->queue);
    if (q->remote || top == NULL || !may_start(q, now, token_at)) continue;
    if (best == NULL || task_less(top, best)) best = top;
  }
  return best;
}

oee_task *oee__queue_next_of(oee_engine *eng, const char *const *types, size_t n,
                             int64_t *token_at) {
  oee_task *best = NULL;
  int64_t now = oee__mono_ns();
  for (size_t i = 0; i < n; i++) {
    oee__limit *q = limit_of(eng, types[i]);
    oee_task *top = q ? oee_heap_peek(&q->queue) : NULL;
    if (top == NULL || !may_start(q, now, token_at)) continue;
    if (best == NULL || task_less(top, best)) best = top;
  }
  return best;
}

size_t oee__queue_remote_len(const oee_engine *eng) {
  size_t n = 0;
  for (size_t i = 0; i < eng->n_limits; i++) {
    if (eng->limits[i].remote) n += eng->limits[i].queue.len;
  }
  return n;
}

int oee__queue_is_remote(const oee_engine *eng, const char *type) {
  const oee__limit *q = eng->n_limits ? limit_of(eng, type) : NULL;
  return q != NULL && q->remote;
}

void oee__queue_take(oee_engine *eng, oee_task *t) {
  oee__limit *q = eng->n_limits ? limit_of(eng, t->snap->task_type) : NULL;
  if (q == NULL) {
    oee_heap_remove(&eng->queue, t->heap_pos);
    return;
  }
  oee_heap_remove(&q->queue, t->heap_pos);
  q->running++;
  if (q->per_second > 0) q->tokens -= 1;
}

void oee__queue_ended(oee_engine *eng, const char *type) {
  oee__limit *q = eng->n_limits ? limit_of(eng, type) : NULL;
  if (q == NULL) return;
  q->running--;
  if (q->queue.len == 0) return;
  if (q->remote) {
    oee__remote_queued(eng);
  } else {
    oee__engine_wake_one(eng);
  }
}

size_t oee__quota_usage(oee_engine *eng, oee_type_usage *out) {
  size_t n = 0;
  for (size_t i = 0; i < eng->n_limits; i++) {
    const oee__limit *q = &eng->limits[i];
    if (!q->limited) continue; /* a remote type without a quota */
    if (out != NULL) {
      out[n] = (oee_type_usage){.task_type = q->task_type,
                                .max_running = q->max_running,
                                .running = q->running,
                                .max_per_second = q->per_second};
    }
    n++;
  }
  return n;
}
