/*
 * events.c - the event bus: one shared log, fanned out to bounded
 * per-subscriber rings outside the engine lock.
 *
 * DESIGN
 * Threads: publishers are the engine's submit, worker, completion and
 * cancel paths; readers are any threads calling oee_sub_*.
 * Publishing (engine lock held) appends one snapshot reference to the bus
 * log under `log_lock`: O(1) and the same for 1 or 1,000 subscribers, as
 * libuv's threadpool holds its mutex only to enqueue. Because appends
 * happen inside the engine's critical section that assigned the seq, the
 * log is in seq order.
 * Fan-out (filter matching, the per-subscriber rings, dropping and
 * wake-ups) runs under `fan_lock`, never under the engine lock. Whoever
 * holds `fan_lock` drains the log in batches: the publisher after it
 * released the engine lock (oee__bus_flush(), which leaves the work to the
 * current holder when there is one), and every reader before it looks at
 * its ring, so a reader always sees everything published before its call.
 * A flusher that gives up the lock checks the log again, so no event is
 * left behind without someone to deliver it.
 * Guarantees (oee.h): every subscriber gets the same snapshots in the one
 * log order, so seqs strictly increase; the ring bounds each subscriber to
 * `capacity` matching events and a subscriber whose ring is full when a
 * matching event is delivered is dropped (OEE_EOVERFLOW once drained), so
 * publishers never wait for a reader. If the fan-out falls LOG_CAP events
 * behind, the publisher that finds the log full drains it itself (engine
 * lock held) before appending: a bounded log instead of unbounded memory.
 * A subscriber attaches under the engine lock with the engine's last seq
 * and skips logged events at or below it, so a snapshot subscription
 * neither misses nor doubles a change.
 * Locks, in the only order they may be taken:
 *   engine lock -> fan_lock -> log_lock.
 * fan_lock guards the attached list and every subscriber's ring and flags;
 * log_lock guards the log and the joining list. Subscribers wait on their
 * condition variable with fan_lock.
 */
#include "core/events.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/internal.h"
#include "core/oee_alloc.h"
#include "core/sync.h"

/* Events the log holds before a publisher must drain it itself. */
#define LOG_CAP 1024
/* Events taken out of the log per log_lock round during the fan-out. */
#define FAN_BATCH 128

struct oee_sub {
  oee_bus *bus;                /* immutable after create */
  struct oee_sub *prev, *next; /* guarded by fan_lock: the attached list */
  struct oee_sub *next_join;   /* guarded by log_lock: the joining list */
  uint64_t after_seq;          /* immutable after attach: older events are
                                * not for this subscriber */
  int attached;                /* guarded by fan_lock */
  int dropped;                 /* guarded by fan_lock: overflowed, reported
                                * once drained */
  int closed;                  /* guarded by fan_lock */
  int waiters;                 /* guarded by fan_lock: threads in oee_sub_wait */
  pthread_cond_t cond;         /* waited on with fan_lock; signalled when
                                * the ring gets an event and someone waits,
                                * broadcast on drop and close */
  const oee_task_info **ring;  /* guarded by fan_lock: capacity slots */
  size_t capacity;             /* immutable after create: events */
  size_t head, len;            /* guarded by fan_lock */
  /* Immutable after create: the filter, copied at subscribe (each string
   * its own allocation). */
  char **ids;
  size_t n_ids;
  char **types;
  size_t n_types;
  char **schedules;
  size_t n_schedules;
  unsigned status_mask; /* bit per oee_task_status; 0 = all */
};

struct oee_bus {
  pthread_mutex_t fan_lock;
  oee_sub *subs; /* guarded by fan_lock: attached subscribers */

  pthread_mutex_t log_lock;
  const oee_task_info *log[LOG_CAP]; /* guarded by log_lock: owned references */
  size_t log_head;                   /* guarded by log_lock */
  atomic_size_t log_len;             /* written under log_lock; read without it
                                      * as a hint */
  oee_sub *joining;                  /* guarded by log_lock: attached, not yet
                                      * seen by the fan-out */
  atomic_int nsubs;                  /* written under a bus lock; read as a hint */
  uint64_t published;                /* seq of the last event published; guarded
                                      * by the publishers' lock (the engine's) */
};

int oee__bus_create(oee_bus **out) {
  oee_bus *b = oee_calloc(1, sizeof(*b));
  if (b == NULL) return OEE_ENOMEM;
  if (oee__mutex_init(&b->fan_lock) != 0) goto no_fan;
  if (oee__mutex_init(&b->log_lock) != 0) goto no_log;
  atomic_init(&b->nsubs, 0);
  atomic_init(&b->log_len, 0);
  *out = b;
  return 0;
no_log:
  pthread_mutex_destroy(&b->fan_lock);
no_fan:
  oee_free(b);
  return OEE_ENOMEM;
}

void oee__bus_destroy(oee_bus *b) {
  if (b == NULL) return;
  size_t len = atomic_load(&b->log_len);
  for (size_t i = 0; i < len; i++) {
    oee_task_info_unref(b->log[(b->log_head + i) % LOG_CAP]);
  }
  pthread_mutex_destroy(&b->log_lock);
  pthread_mutex_destroy(&b->fan_lock);
  oee_free(b);
}

int oee__bus_has_subscribers(oee_bus *b) { return atomic_load(&b->nsubs) > 0; }

static int match_str(char *const *set, size_t n, const char *s) {
  if (n == 0) return 1;
  for (size_t i = 0; i < n; i++) {
    if (strcmp(set[i], s) == 0) return 1;
  }
  return 0;
}

static int sub_match(const oee_sub *s, const oee_task_info *t) {
  if (s->status_mask && !(s->status_mask & (1u << t->status))) return 0;
  return match_str(s->types, s->n_types, t->task_type) && match_str(s->ids, s->n_ids, t->id) &&
         match_str(s->schedules, s->n_schedules, t->schedule_id);
}

int oee_sub_filter_match(const oee_sub_filter *f, const oee_task_info *t) {
  if (f == NULL) return 1;
  int ok = f->n_statuses == 0;
  for (size_t i = 0; i < f->n_statuses && !ok; i++) ok = f->statuses[i] == t->status;
  if (!ok) return 0;
  ok = f->n_task_types == 0;
  for (size_t i = 0; i < f->n_task_types && !ok; i++) {
    ok = strcmp(f->task_types[i], t->task_type) == 0;
  }
  if (!ok) return 0;
  ok = f->n_task_ids == 0;
  for (size_t i = 0; i < f->n_task_ids && !ok; i++) {
    ok = strcasecmp(f->task_ids[i], t->id) == 0;
  }
  if (!ok) return 0;
  ok = f->n_schedule_ids == 0;
  for (size_t i = 0; i < f->n_schedule_ids && !ok; i++) {
    ok = strcmp(f->schedule_ids[i], t->schedule_id) == 0;
  }
  return ok;
}

/* ------------------------------------------------------------ fan-out */

/* Takes the subscriber off the attached list (fan_lock held). */
static void detach(oee_bus *b, oee_sub *s) {
  if (!s->attached) return;
  if (s->prev) {
    s->prev->next = s->next;
  } else {
    b->subs = s->next;
  }
  if (s->next) s->next->prev = s->prev;
  s->attached = 0;
  atomic_fetch_sub(&b->nsubs, 1);
}

static void ring_push(oee_sub *s, const oee_task_info *t) {
  s->ring[(s->head + s->len) % s->capacity] = oee_task_info_ref(t);
  s->len++;
}

/* Moves newly attached subscribers onto the attached list (fan_lock held). */
static void join(oee_bus *b, oee_sub *s) {
  while (s) {
    oee_sub *next = s->next_join;
    s->next_join = NULL;
    s->prev = NULL;
    s->next = b->subs;
    if (b->subs) b->subs->prev = s;
    b->subs = s;
    s = next;
  }
}

/* Appends `t` to every matching ring or drops the subscriber (fan_lock held). */
static void deliver(oee_bus *b, const oee_task_info *t) {
  oee_sub *s = b->subs;
  while (s) {
    oee_sub *next = s->next;
    if (t->seq > s->after_seq && sub_match(s, t)) {
      if (s->len == s->capacity) {
        s->dropped = 1;
        detach(b, s);
        oee__broadcast(&s->cond);
      } else {
        ring_push(s, t);
        if (s->waiters > 0) oee__signal(&s->cond);
      }
    }
    s = next;
  }
}

/* Takes up to FAN_BATCH events and the joining list out (log_lock taken). */
static size_t log_take(oee_bus *b, const oee_task_info **batch, oee_sub **joining) {
  oee__lock(&b->log_lock);
  size_t len = atomic_load_explicit(&b->log_len, memory_order_relaxed);
  size_t n = len < FAN_BATCH ? len : FAN_BATCH;
  for (size_t i = 0; i < n; i++) {
    batch[i] = b->log[b->log_head];
    b->log_head = (b->log_head + 1) % LOG_CAP;
  }
  atomic_store(&b->log_len, len - n);
  *joining = b->joining;
  b->joining = NULL;
  oee__unlock(&b->log_lock);
  return n;
}

/* Delivers everything logged so far (fan_lock held). */
static void drain_locked(oee_bus *b) {
  const oee_task_info *batch[FAN_BATCH];
  for (;;) {
    oee_sub *joining;
    size_t n = log_take(b, batch, &joining);
    join(b, joining);
    for (size_t i = 0; i < n; i++) deliver(b, batch[i]);
    for (size_t i = 0; i < n; i++) oee_task_info_unref(batch[i]);
    if (n < FAN_BATCH) return; /* the log was empty when the batch was taken */
  }
}

void oee__bus_flush(oee_bus *b) {
  /* The holder of fan_lock rechecks the log after it lets go, so giving up
   * when the lock is taken never strands an event. The fences order each
   * side's log access against its lock access (a Dekker pair): a publisher
   * that found the lock taken appended before the holder's recheck. */
  atomic_thread_fence(memory_order_seq_cst);
  while (atomic_load(&b->log_len) > 0) {
    int rc = pthread_mutex_trylock(&b->fan_lock);
    if (rc == EBUSY) return;
    if (rc != 0) abort();
    drain_locked(b);
    oee__unlock(&b->fan_lock);
    atomic_thread_fence(memory_order_seq_cst);
  }
}

/* Appends to the log; 0, or 1 when it is full (log_lock taken). */
static int log_push(oee_bus *b, const oee_task_info *t) {
  oee__lock(&b->log_lock);
  size_t len = atomic_load_explicit(&b->log_len, memory_order_relaxed);
  int full = len == LOG_CAP;
  if (!full) {
    b->log[(b->log_head + len) % LOG_CAP] = oee_task_info_ref(t);
    atomic_store(&b->log_len, len + 1);
  }
  oee__unlock(&b->log_lock);
  return full;
}

uint64_t oee__bus_published(const oee_bus *b) { return b->published; }

void oee__bus_publish(oee_bus *b, const oee_task_info *t) {
  b->published = t->seq;
  if (atomic_load(&b->nsubs) == 0) return;
  while (log_push(b, t)) {
    /* The fan-out fell LOG_CAP events behind: catch up rather than grow. */
    oee__lock(&b->fan_lock);
    drain_locked(b);
    oee__unlock(&b->fan_lock);
  }
}

/* ---------------------------------------------------------- subscribe */

/* Copies n strings into a new array; ids are stored lower-case. */
static char **copy_strs(const char *const *src, size_t n, int lower) {
  if (n == 0) return NULL;
  char **dst = oee_calloc(n, sizeof(*dst));
  if (dst == NULL) return NULL;
  for (size_t i = 0; i < n; i++) {
    dst[i] = oee_strdup(src[i] ? src[i] : "");
    if (dst[i] == NULL) {
      for (size_t j = 0; j < i; j++) oee_free(dst[j]);
      oee_free(dst);
      return NULL;
    }
    for (char *p = dst[i]; lower && *p; p++) {
      if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
    }
  }
  return dst;
}

static void free_strs(char **v, size_t n) {
  for (size_t i = 0; i < n; i++) oee_free(v[i]);
  oee_free(v);
}

static void sub_free_filter(oee_sub *s) {
  free_strs(s->ids, s->n_ids);
  free_strs(s->types, s->n_types);
  free_strs(s->schedules, s->n_schedules);
}

static int sub_set_filter(oee_sub *s, const oee_sub_filter *f) {
  if (f == NULL) return 0;
  for (size_t i = 0; i < f->n_statuses; i++) {
    if ((unsigned)f->statuses[i] >= OEE_TASK_STATUS_COUNT) return OEE_EINVAL;
    s->status_mask |= 1u << f->statuses[i];
  }
  s->ids = copy_strs(f->task_ids, f->n_task_ids, 1);
  s->n_ids = s->ids ? f->n_task_ids : 0;
  s->types = copy_strs(f->task_types, f->n_task_types, 0);
  s->n_types = s->types ? f->n_task_types : 0;
  s->schedules = copy_strs(f->schedule_ids, f->n_schedule_ids, 0);
  s->n_schedules = s->schedules ? f->n_schedule_ids : 0;
  if (s->n_ids != f->n_task_ids || s->n_types != f->n_task_types ||
      s->n_schedules != f->n_schedule_ids) {
    return OEE_ENOMEM;
  }
  return 0;
}

int oee__sub_create(oee_bus *b, const oee_sub_filter *filter, size_t capacity, oee_sub **out) {
  if (capacity == 0) capacity = OEE_DEFAULT_SUB_CAPACITY;
  oee_sub *s = oee_calloc(1, sizeof(*s));
  if (s == NULL) return OEE_ENOMEM;
  int rc = sub_set_filter(s, filter);
  if (rc == 0 && (s->ring = oee_calloc(capacity, sizeof(*s->ring))) == NULL) rc = OEE_ENOMEM;
  if (rc == 0) rc = oee__cond_init(&s->cond);
  if (rc != 0) {
    sub_free_filter(s);
    oee_free(s->ring);
    oee_free(s);
    return rc;
  }
  s->bus = b;
  s->capacity = capacity;
  *out = s;
  return 0;
}

int oee__bus_attach(oee_bus *b, oee_sub *s, const oee_task_info *const *initial, size_t n_initial,
                    uint64_t after_seq) {
  if (n_initial > s->capacity) return OEE_EOVERFLOW;
  for (size_t i = 0; i < n_initial; i++) ring_push(s, initial[i]);
  s->after_seq = after_seq;
  s->attached = 1; /* not yet visible to the fan-out: no lock needed */
  oee__lock(&b->log_lock);
  s->next_join = b->joining;
  b->joining = s;
  atomic_fetch_add(&b->nsubs, 1);
  oee__unlock(&b->log_lock);
  return 0;
}

int oee__bus_subscribe(oee_bus *b, const oee_sub_filter *filter, size_t capacity,
                       const oee_task_info *const *initial, size_t n_initial, oee_sub **out) {
  oee_sub *s;
  int rc = oee__sub_create(b, filter, capacity, &s);
  if (rc != 0) return rc;
  rc = oee__bus_attach(b, s, initial, n_initial, 0);
  if (rc != 0) {
    oee_sub_free(s);
    return rc;
  }
  *out = s;
  return 0;
}

/* -------------------------------------------------------------- read */

/* Takes one event or says why not (fan_lock held). */
static int take(oee_sub *s, const oee_task_info **ev) {
  if (s->len > 0) {
    *ev = s->ring[s->head];
    s->head = (s->head + 1) % s->capacity;
    s->len--;
    return 0;
  }
  if (s->dropped) return OEE_EOVERFLOW;
  if (s->closed) return OEE_ECLOSED;
  return OEE_EAGAIN;
}

/* Takes fan_lock and delivers what is logged, so that the caller sees
 * every event published before its call. */
static void lock_current(oee_bus *b) {
  oee__lock(&b->fan_lock);
  drain_locked(b);
}

int oee_sub_next(oee_sub *s, const oee_task_info **ev) {
  lock_current(s->bus);
  int rc = take(s, ev);
  oee__unlock(&s->bus->fan_lock);
  return rc;
}

int oee_sub_wait(oee_sub *s, const oee_task_info **ev, int64_t timeout_ms) {
  int64_t deadline = oee__mono_ns() + timeout_ms * 1000000;
  pthread_mutex_t *m = &s->bus->fan_lock;
  lock_current(s->bus);
  int rc;
  while ((rc = take(s, ev)) == OEE_EAGAIN) {
    s->waiters++;
    int timed_out = 0;
    if (timeout_ms < 0) {
      oee__wait(&s->cond, m);
    } else {
      timed_out = oee__wait_until(&s->cond, m, deadline);
    }
    s->waiters--;
    drain_locked(s->bus);
    if (timed_out) {
      rc = take(s, ev);
      if (rc == OEE_EAGAIN) rc = OEE_ETIMEDOUT;
      break;
    }
  }
  oee__unlock(m);
  return rc;
}

int oee_sub_dropped(oee_sub *s) {
  lock_current(s->bus);
  int d = s->dropped;
  oee__unlock(&s->bus->fan_lock);
  return d;
}

size_t oee_sub_pending(oee_sub *s) {
  lock_current(s->bus);
  size_t n = s->len;
  oee__unlock(&s->bus->fan_lock);
  return n;
}

void oee_sub_close(oee_sub *s) {
  /* Draining first moves a still-joining subscriber onto the attached
   * list, so detach() finds it there. */
  lock_current(s->bus);
  s->closed = 1;
  detach(s->bus, s);
  oee__broadcast(&s->cond);
  oee__unlock(&s->bus->fan_lock);
}

void oee_sub_free(oee_sub *s) {
  if (s == NULL) return;
  oee_sub_close(s);
  while (s->len > 0) {
    oee_task_info_unref(s->ring[s->head]);
    s->head = (s->head + 1) % s->capacity;
    s->len--;
  }
  pthread_cond_destroy(&s->cond);
  sub_free_filter(s);
  oee_free(s->ring);
  oee_free(s);
}
