/* events.c - bounded per-subscriber rings (see events.h for the design). */
#include "core/events.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "core/sync.h"


struct oee_sub {
  oee_bus *bus;                 /* immutable after create */
  struct oee_sub *prev, *next;  /* guarded by bus->lock: bus list, while attached */
  int attached;                 /* guarded by bus->lock */
  int dropped;                  /* guarded by bus->lock: overflowed, reported
                                 * once drained */
  int closed;                   /* guarded by bus->lock */
  pthread_cond_t cond;          /* waited on with bus->lock; signalled when
                                 * the ring gets an event */
  const oee_task_info **ring;   /* guarded by bus->lock: capacity slots */
  size_t capacity;              /* immutable after create: events */
  size_t head, len;             /* guarded by bus->lock */
  /* Immutable after create: the filter. */
  /* The filter, copied at subscribe (each string its own allocation). */
  char **ids;
  size_t n_ids;
  char **types;
  size_t n_types;
  unsigned status_mask;         /* bit per oee_task_status; 0 = all */
};

struct oee_bus {
  pthread_mutex_t lock;
  oee_sub *subs;                /* guarded by lock */
  atomic_int nsubs;             /* written under lock, read without (a hint) */
};

int oee__bus_create(oee_bus **out) {
  oee_bus *b = calloc(1, sizeof(*b));
  if (b == NULL) return OEE_ENOMEM;
  if (oee__mutex_init(&b->lock) != 0) {
    free(b);
    return OEE_ENOMEM;
  }
  atomic_init(&b->nsubs, 0);
  *out = b;
  return 0;
}

void oee__bus_destroy(oee_bus *b) {
  if (b == NULL) return;
  pthread_mutex_destroy(&b->lock);
  free(b);
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
  return match_str(s->types, s->n_types, t->task_type) &&
         match_str(s->ids, s->n_ids, t->id);
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
  return ok;
}

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

void oee__bus_publish(oee_bus *b, const oee_task_info *t) {
  if (atomic_load(&b->nsubs) == 0) return;
  oee__lock(&b->lock);
  oee_sub *s = b->subs;
  while (s) {
    oee_sub *next = s->next;
    if (sub_match(s, t)) {
      if (s->len == s->capacity) {
        s->dropped = 1;
        detach(b, s);
      } else {
        ring_push(s, t);
      }
      oee__signal(&s->cond);
    }
    s = next;
  }
  oee__unlock(&b->lock);
}

/* Copies n strings into a new array; ids are stored lower-case. */
static char **copy_strs(const char *const *src, size_t n, int lower) {
  if (n == 0) return NULL;
  char **dst = calloc(n, sizeof(*dst));
  if (dst == NULL) return NULL;
  for (size_t i = 0; i < n; i++) {
    dst[i] = strdup(src[i] ? src[i] : "");
    if (dst[i] == NULL) {
      for (size_t j = 0; j < i; j++) free(dst[j]);
      free(dst);
      return NULL;
    }
    for (char *p = dst[i]; lower && *p; p++) {
      if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
    }
  }
  return dst;
}

static void free_strs(char **v, size_t n) {
  for (size_t i = 0; i < n; i++) free(v[i]);
  free(v);
}

static void sub_free_filter(oee_sub *s) {
  free_strs(s->ids, s->n_ids);
  free_strs(s->types, s->n_types);
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
  if (s->n_ids != f->n_task_ids || s->n_types != f->n_task_types) {
    return OEE_ENOMEM;
  }
  return 0;
}

int oee__bus_subscribe(oee_bus *b, const oee_sub_filter *filter,
                       size_t capacity, const oee_task_info *const *initial,
                       size_t n_initial, oee_sub **out) {
  if (capacity == 0) capacity = OEE_DEFAULT_SUB_CAPACITY;
  if (n_initial > capacity) return OEE_EOVERFLOW;
  oee_sub *s = calloc(1, sizeof(*s));
  if (s == NULL) return OEE_ENOMEM;
  int rc = sub_set_filter(s, filter);
  s->ring = calloc(capacity, sizeof(*s->ring));
  if (rc == 0 && s->ring == NULL) rc = OEE_ENOMEM;
  if (rc == 0) rc = oee__cond_init(&s->cond);
  if (rc != 0) {
    sub_free_filter(s);
    free(s->ring);
    free(s);
    return rc;
  }
  s->bus = b;
  s->capacity = capacity;
  for (size_t i = 0; i < n_initial; i++) ring_push(s, initial[i]);
  oee__lock(&b->lock);
  s->next = b->subs;
  if (b->subs) b->subs->prev = s;
  b->subs = s;
  s->attached = 1;
  atomic_fetch_add(&b->nsubs, 1);
  oee__unlock(&b->lock);
  *out = s;
  return 0;
}

/* Takes one event or says why not (bus lock held). */
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

int oee_sub_next(oee_sub *s, const oee_task_info **ev) {
  oee__lock(&s->bus->lock);
  int rc = take(s, ev);
  oee__unlock(&s->bus->lock);
  return rc;
}

int oee_sub_wait(oee_sub *s, const oee_task_info **ev, int64_t timeout_ms) {
  int64_t deadline = oee__mono_ns() + timeout_ms * 1000000;
  oee__lock(&s->bus->lock);
  int rc;
  while ((rc = take(s, ev)) == OEE_EAGAIN) {
    if (timeout_ms < 0) {
      oee__wait(&s->cond, &s->bus->lock);
    } else if (oee__wait_until(&s->cond, &s->bus->lock, deadline)) {
      rc = take(s, ev);
      if (rc == OEE_EAGAIN) rc = OEE_ETIMEDOUT;
      break;
    }
  }
  oee__unlock(&s->bus->lock);
  return rc;
}

int oee_sub_dropped(oee_sub *s) {
  oee__lock(&s->bus->lock);
  int d = s->dropped;
  oee__unlock(&s->bus->lock);
  return d;
}

size_t oee_sub_pending(oee_sub *s) {
  oee__lock(&s->bus->lock);
  size_t n = s->len;
  oee__unlock(&s->bus->lock);
  return n;
}

void oee_sub_close(oee_sub *s) {
  oee__lock(&s->bus->lock);
  s->closed = 1;
  detach(s->bus, s);
  oee__broadcast(&s->cond);
  oee__unlock(&s->bus->lock);
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
  free(s->ring);
  free(s);
}
