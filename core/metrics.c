/* metrics.c - the engine's counters and histograms (see metrics.h for the
 * design). */
#include "core/metrics.h"

#include <string.h>

#include "core/oee_alloc.h"
#include "core/sync.h"

#define MS 1000000LL /* ns */
#define SEC 1000000000LL

const int64_t oee_histogram_bounds_ns[OEE_HISTOGRAM_BUCKETS - 1] = {
    MS / 2,   1 * MS,  5 * MS / 2,  5 * MS,  10 * MS,  25 * MS,  50 * MS,  100 * MS,  250 * MS,
    500 * MS, 1 * SEC, 5 * SEC / 2, 5 * SEC, 10 * SEC, 30 * SEC, 60 * SEC, 300 * SEC,
};

int oee_histogram_bucket(int64_t ns) {
  /* The first bound >= ns, by bisection: five compares for any value. */
  int lo = 0, hi = OEE_HISTOGRAM_BUCKETS - 1; /* hi: the +Inf bucket */
  while (lo < hi) {
    int mid = (lo + hi) / 2;
    if (ns <= oee_histogram_bounds_ns[mid]) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  return lo;
}

void oee__hist_observe(oee__hist *h, int64_t ns) {
  if (ns < 0) ns = 0;
  atomic_fetch_add_explicit(&h->buckets[oee_histogram_bucket(ns)], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&h->sum_ns, (uint64_t)ns, memory_order_relaxed);
}

void oee__hist_read(const oee__hist *h, oee_histogram *out) {
  out->count = 0;
  for (int i = 0; i < OEE_HISTOGRAM_BUCKETS; i++) {
    out->buckets[i] = atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
    out->count += out->buckets[i];
  }
  out->sum_ns = atomic_load_explicit(&h->sum_ns, memory_order_relaxed);
}

/* ----------------------------------------------------------- type slots */

int oee__metrics_init(oee__metrics *m) {
  memset(m, 0, sizeof(*m));
  atomic_init(&m->n, 0);
  return oee__mutex_init(&m->add_lock);
}

void oee__metrics_fini(oee__metrics *m) {
  size_t n = atomic_load(&m->n);
  for (size_t i = 0; i < n; i++) oee_free(m->types[i].task_type);
  atomic_store(&m->n, 0);
  pthread_mutex_destroy(&m->add_lock);
}

oee__type_slot *oee__metrics_find(oee__metrics *m, const char *type) {
  /* Acquire: a slot counted in n has its name written. */
  size_t n = atomic_load_explicit(&m->n, memory_order_acquire);
  for (size_t i = 0; i < n; i++) {
    if (strcmp(m->types[i].task_type, type) == 0) return &m->types[i];
  }
  return NULL;
}

int oee__metrics_add_type(oee__metrics *m, const char *type) {
  oee__lock(&m->add_lock);
  size_t n = atomic_load_explicit(&m->n, memory_order_relaxed);
  oee__type_slot *s = oee__metrics_find(m, type);
  if (s == NULL && n < OEE__METRICS_MAX_TYPES &&
      (m->types[n].task_type = oee_strdup(type)) != NULL) {
    s = &m->types[n];
    atomic_store_explicit(&m->n, n + 1, memory_order_release);
  }
  oee__unlock(&m->add_lock);
  return s ? (int)(s - m->types) : -1;
}

#ifndef OEE_NO_METRICS

/* t's slot, looked up once and cached in the record (engine lock held):
 * 0 = not looked up yet, -1 = none, else the slot's index + 1. */
static oee__type_slot *slot_of(oee__metrics *m, oee_task *t, const char *type) {
  if (t->metrics_slot == 0) {
    oee__type_slot *s = oee__metrics_find(m, type);
    t->metrics_slot = s ? (int32_t)(s - m->types) + 1 : -1;
  }
  return t->metrics_slot > 0 ? &m->types[t->metrics_slot - 1] : NULL;
}

static void add1(_Atomic uint64_t *counter) {
  atomic_fetch_add_explicit(counter, 1, memory_order_relaxed);
}

void oee__metrics_submitted(oee__metrics *m, oee_task *t) {
  oee__type_slot *s = slot_of(m, t, t->snap->task_type);
  if (s != NULL) add1(&s->submitted);
}

/* When a QUEUED snapshot's task became QUEUED: the change's own time, or
 * for one read back from the database (no change time) its creation or,
 * later, its run_at. */
static int64_t queued_since(const oee_task_info *q) {
  if (q->changed_at_ns != 0) return q->changed_at_ns;
  return q->run_at_ns > q->created_at_ns ? q->run_at_ns : q->created_at_ns;
}

static void count_final(oee__type_slot *s, oee_task_status to) {
  if (to == OEE_TASK_DONE) add1(&s->finished[OEE__FIN_DONE]);
  if (to == OEE_TASK_ERROR) add1(&s->finished[OEE__FIN_ERROR]);
  if (to == OEE_TASK_CANCELLED) add1(&s->finished[OEE__FIN_CANCELLED]);
}

void oee__metrics_changed(oee__metrics *m, oee_task *t, const oee_task_info *from,
                          const oee_task_info *to) {
  oee__type_slot *s = slot_of(m, t, to->task_type);
  if (s == NULL) return;
  if (from->status == OEE_TASK_QUEUED && to->status == OEE_TASK_RUNNING) {
    oee__hist_observe(&s->queue_wait, to->started_at_ns - queued_since(from));
  }
  if (from->status == OEE_TASK_RUNNING) {
    /* A RUNNING snapshot read back from the database (no change time)
     * was interrupted by a restart: how long it ran is not known. */
    if (from->changed_at_ns != 0) {
      oee__hist_observe(&s->run, to->changed_at_ns - from->started_at_ns);
    }
    if (to->status == OEE_TASK_SCHEDULED) add1(&s->retries);
  }
  count_final(s, to->status);
}

#endif /* OEE_NO_METRICS */
