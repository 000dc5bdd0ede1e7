/*
 * lease.c - remote workers: polls that wait for tasks, the leases of the
 * tasks they take, heartbeats, their ends, and the list of workers (see
 * oee.h "remote workers" for the rules, engine.h for the engine's design).
 *
 * DESIGN
 * A remote attempt is an ordinary running job (engine.c) without a worker
 * thread: its lease record lives in the same allocation, right after the
 * job, so starting, retrying, cancelling and storing it is the engine's own
 * path, and only what differs is here. Everything below is guarded by the
 * engine lock.
 *  - Polls. A poll that finds tasks of its types takes them at once, in the
 *    queue's order (quota.c keeps each remote type's QUEUED tasks in a heap
 *    of its own and never lets the engine's workers take them). Otherwise it
 *    is parked: appended to a FIFO list and put in a heap by the end of its
 *    wait. Queuing a remote task (or freeing a remote quota slot) only sets
 *    `match` and signals the timer thread, which walks the parked polls
 *    oldest first and leases to each what it may take, so waiting polls are
 *    served first come, first served and a submitter never does the work.
 *    The same thread answers polls whose wait ended. A parked poll costs its
 *    list links and heap slot: no thread, no tick.
 *  - Delivery. What a poll is answered with is copied into the poll (lease
 *    ids, task references, expiries) under the lock, and its callback runs
 *    without the lock: at once with the memory store, once the RUNNING
 *    changes are stored with a data_dir (like a worker thread, which runs a
 *    task only after its start is stored). A callback that says its caller
 *    is gone makes those leases expire at once.
 *  - Leases are found by id in a chained hash table. A lease's deadline is
 *    the earlier of its expiry and its attempt's timeout, kept in the
 *    engine's deadline heap (timer.c), so a heartbeat moves one heap entry.
 *    Whoever ends a lease first claims it under the lock (CompleteTask,
 *    FailTask, the timer, the engine's stop); the others find it claimed.
 *    Claimed leases leave the table and are remembered in a bounded ring
 *    (OEE_ENDED_LEASES_KEPT, hashed by id) so that a late completion is
 *    told FAILED_PRECONDITION rather than NOT_FOUND.
 *  - Workers are kept sorted by id (found by binary search) with what the
 *    status shows; one is listed until 2 x its last wait + 10 s after its
 *    last call, and dropped lazily once it holds no lease and no poll.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/engine.h"
#include "core/id.h"
#include "core/oee_alloc.h"
#include "core/sync.h"

#define POLL_PARKED 1
#define POLL_TAKEN 2
#define ENDED_BUCKETS 131072 /* a power of two */
#define LISTED_EXTRA_NS (10 * 1000000000LL)

typedef struct rworker {
  char *worker_id;
  char *peer;
  char **types; /* of its last poll */
  size_t n_types;
  int64_t last_seen_ns; /* CLOCK_REALTIME */
  int64_t listed_until; /* CLOCK_MONOTONIC */
  int64_t listed_extra; /* 2 x its last wait + 10 s, ns */
  int active, polls;    /* leases held, polls parked or being answered */
  uint64_t completed, failed;
} rworker;

typedef enum lease_end_why { LEASE_LOST = 1, LEASE_TIMED_OUT } lease_end_why;

struct oee__lease {
  char id[OEE_ID_LEN + 1];
  struct oee__lease *hnext; /* hash chain */
  struct oee__lease *next_expired;
  rworker *w;
  oee_job *job;
  int64_t lease_ns;     /* its own length */
  int64_t expires_mono; /* CLOCK_MONOTONIC */
  int64_t expires_real; /* CLOCK_REALTIME, as shown */
  int64_t timeout_mono; /* its attempt's timeout; 0 = none */
  int claimed;          /* being ended by whoever claimed it */
  lease_end_why why;    /* set by the timer's claim */
};

struct oee__poll {
  struct oee__poll *prev, *next; /* parked, oldest first */
  struct oee__poll *next_due;    /* to answer once the lock is released */
  size_t wait_pos;
  int64_t deadline; /* CLOCK_MONOTONIC end of its wait */
  oee_poll *owner;  /* the caller's handle, while parked */
  oee_poll_req req;
  oee_poll_cb cb;
  void *arg;
  rworker *w;
  int rc;
  oee_lease *out; /* max_tasks slots: what the answer carries */
  size_t n_out;
  oee_engine *eng;
  oee__stored_waiter stored; /* with a data_dir: the RUNNING changes stored */
};

typedef struct ended {
  char id[OEE_ID_LEN + 1];
  uint64_t worker_hash;
  int32_t next; /* chain in its bucket; -1 ends it */
} ended;

typedef struct oee__remote {
  struct oee__lease **buckets;
  size_t nbuckets, nleases;
  rworker **workers; /* sorted by worker_id */
  size_t n_workers, cap_workers;
  struct oee__poll *head, *tail;
  size_t n_polls;
  oee_heap waits;   /* parked polls by the end of their wait */
  int match;        /* remote tasks were queued: lease to waiting polls */
  int64_t retry_at; /* CLOCK_MONOTONIC: match again (a token, or memory) */
  ended *ring;
  int32_t *ebuckets;
  size_t ring_len, ring_cap, ring_head;
  struct oee__lease *expired; /* claimed by the timer, to end */
} oee__remote;

/* ------------------------------------------------------------- helpers */

static uint64_t hash_str(const char *s) {
  uint64_t h = 1469598103934665603ULL;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
  return h;
}

/* A canonical lower-case copy of a lease id, or -1 when it is not a UUID. */
static int lease_id_norm(const char *in, char out[OEE_ID_LEN + 1]) {
  if (in == NULL || !oee_id_valid(in)) return -1;
  for (size_t i = 0; i <= OEE_ID_LEN; i++) {
    char c = in[i];
    out[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  }
  return 0;
}

static int worker_id_ok(const char *id) {
  return id != NULL && id[0] != '\0' && strlen(id) <= OEE_WORKER_ID_MAX;
}

/* ---------------------------------------------------------- lease table */

static struct oee__lease **lease_slot(oee__remote *r, const char *id) {
  return &r->buckets[hash_str(id) & (r->nbuckets - 1)];
}

static struct oee__lease *lease_find(oee__remote *r, const char *id) {
  for (struct oee__lease *l = *lease_slot(r, id); l; l = l->hnext) {
    if (strcmp(l->id, id) == 0) return l;
  }
  return NULL;
}

/* Doubles the table when it is full; a failed allocation only leaves the
 * chains longer. */
static void lease_grow(oee__remote *r) {
  size_t n = r->nbuckets * 2;
  struct oee__lease **b = oee_calloc(n, sizeof(*b));
  if (b == NULL) return;
  for (size_t i = 0; i < r->nbuckets; i++) {
    struct oee__lease *l = r->buckets[i], *next;
    for (; l; l = next) {
      next = l->hnext;
      struct oee__lease **slot = &b[hash_str(l->id) & (n - 1)];
      l->hnext = *slot;
      *slot = l;
    }
  }
  oee_free(r->buckets);
  r->buckets = b;
  r->nbuckets = n;
}

static void lease_insert(oee__remote *r, struct oee__lease *l) {
  if (r->nleases >= r->nbuckets) lease_grow(r);
  struct oee__lease **slot = lease_slot(r, l->id);
  l->hnext = *slot;
  *slot = l;
  r->nleases++;
}

static void lease_remove(oee__remote *r, struct oee__lease *l) {
  struct oee__lease **pp = lease_slot(r, l->id);
  while (*pp != l) pp = &(*pp)->hnext;
  *pp = l->hnext;
  r->nleases--;
}

/* --------------------------------------------------------- ended leases */

static int32_t *ended_bucket(oee__remote *r, const char *id) {
  return &r->ebuckets[hash_str(id) & (ENDED_BUCKETS - 1)];
}

static const ended *ended_find(oee__remote *r, const char *id) {
  if (r->ebuckets == NULL) return NULL;
  for (int32_t i = *ended_bucket(r, id); i >= 0; i = r->ring[i].next) {
    if (strcmp(r->ring[i].id, id) == 0) return &r->ring[i];
  }
  return NULL;
}

/* A slot for one more: the ring grows to OEE_ENDED_LEASES_KEPT, then the
 * oldest is forgotten. -1 when memory is short before anything is kept. */
static int32_t ended_slot(oee__remote *r) {
  if (r->ring_len < r->ring_cap) return (int32_t)r->ring_len++;
  if (r->ring_cap < OEE_ENDED_LEASES_KEPT) {
    size_t cap = r->ring_cap ? r->ring_cap * 2 : 1024;
    if (cap > OEE_ENDED_LEASES_KEPT) cap = OEE_ENDED_LEASES_KEPT;
    ended *ring = oee_realloc(r->ring, cap * sizeof(*ring));
    if (ring != NULL) {
      r->ring = ring;
      r->ring_cap = cap;
      return (int32_t)r->ring_len++;
    }
    if (r->ring_cap == 0) return -1;
  }
  int32_t old = (int32_t)r->ring_head; /* forget the oldest */
  r->ring_head = (r->ring_head + 1) % r->ring_cap;
  int32_t *pp = ended_bucket(r, r->ring[old].id);
  while (*pp != old) pp = &r->ring[*pp].next;
  *pp = r->ring[old].next;
  return old;
}

static void ended_add(oee__remote *r, const struct oee__lease *l) {
  if (r->ebuckets == NULL) {
    r->ebuckets = oee_malloc(ENDED_BUCKETS * sizeof(*r->ebuckets));
    if (r->ebuckets == NULL) return;
    memset(r->ebuckets, 0xff, ENDED_BUCKETS * sizeof(*r->ebuckets)); /* all -1 */
  }
  int32_t i = ended_slot(r);
  if (i < 0) return;
  memcpy(r->ring[i].id, l->id, sizeof(l->id));
  r->ring[i].worker_hash = hash_str(l->w->worker_id);
  int32_t *head = ended_bucket(r, l->id);
  r->ring[i].next = *head;
  *head = i;
}

/* Takes a lease out of play: whoever claims it ends it. */
static void lease_claim(oee__remote *r, struct oee__lease *l) {
  l->claimed = 1;
  lease_remove(r, l);
  ended_add(r, l);
}

/* -------------------------------------------------------------- workers */

static size_t worker_pos(const oee__remote *r, const char *id, int *found) {
  size_t lo = 0, hi = r->n_workers;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int c = strcmp(r->workers[mid]->worker_id, id);
    if (c == 0) {
      *found = 1;
      return mid;
    }
    if (c < 0) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  *found = 0;
  return lo;
}

static void worker_free(rworker *w) {
  for (size_t i = 0; i < w->n_types; i++) oee_free(w->types[i]);
  oee_free(w->types);
  oee_free(w->worker_id);
  oee_free(w->peer);
  oee_free(w);
}

/* Drops the workers no longer listed that hold nothing. */
static void workers_prune(oee__remote *r, int64_t now) {
  size_t keep = 0;
  for (size_t i = 0; i < r->n_workers; i++) {
    rworker *w = r->workers[i];
    if (w->active == 0 && w->polls == 0 && w->listed_until < now) {
      worker_free(w);
    } else {
      r->workers[keep++] = w;
    }
  }
  r->n_workers = keep;
}

static rworker *worker_add(oee__remote *r, const char *id, size_t pos) {
  if (r->n_workers == r->cap_workers) {
    workers_prune(r, oee__mono_ns());
    int found;
    pos = worker_pos(r, id, &found);
  }
  if (r->n_workers == r->cap_workers) {
    size_t cap = r->cap_workers ? r->cap_workers * 2 : 16;
    rworker **v = oee_realloc(r->workers, cap * sizeof(*v));
    if (v == NULL) return NULL;
    r->workers = v;
    r->cap_workers = cap;
  }
  rworker *w = oee_calloc(1, sizeof(*w));
  if (w == NULL || (w->worker_id = oee_strdup(id)) == NULL) {
    oee_free(w);
    return NULL;
  }
  w->listed_extra = LISTED_EXTRA_NS;
  memmove(&r->workers[pos + 1], &r->workers[pos], (r->n_workers - pos) * sizeof(*r->workers));
  r->workers[pos] = w;
  r->n_workers++;
  return w;
}

/* The worker `id` heard from now (made on its first call); NULL when out of
 * memory. */
static rworker *worker_touch(oee__remote *r, const char *id, const char *peer) {
  int found;
  size_t pos = worker_pos(r, id, &found);
  rworker *w = found ? r->workers[pos] : worker_add(r, id, pos);
  if (w == NULL) return NULL;
  w->last_seen_ns = oee_now_ns();
  int64_t until = oee__mono_ns() + w->listed_extra;
  if (until > w->listed_until) w->listed_until = until;
  if (peer != NULL && (w->peer == NULL || strcmp(w->peer, peer) != 0)) {
    char *p = oee_strdup(peer);
    if (p != NULL) {
      oee_free(w->peer);
      w->peer = p;
    }
  }
  return w;
}

/* Remembers the types of its last poll (kept as they were when memory is
 * short: they are only shown). */
static void worker_types(rworker *w, const char *const *types, size_t n) {
  int same = w->n_types == n;
  for (size_t i = 0; same && i < n; i++) same = strcmp(w->types[i], types[i]) == 0;
  if (same) return;
  char **v = oee_calloc(n, sizeof(*v));
  for (size_t i = 0; v != NULL && i < n; i++) {
    if ((v[i] = oee_strdup(types[i])) == NULL) {
      while (i-- > 0) oee_free(v[i]);
      oee_free(v);
      v = NULL;
    }
  }
  if (v == NULL) return;
  for (size_t i = 0; i < w->n_types; i++) oee_free(w->types[i]);
  oee_free(w->types);
  w->types = v;
  w->n_types = n;
}

/* --------------------------------------------------------------- leases */

static struct oee__lease *job_lease(oee_job *j) { return (struct oee__lease *)(j + 1); }

/* (Re)places a lease's job in the deadline heap at the earlier of its
 * expiry and its timeout. */
static void lease_deadline(oee_engine *eng, struct oee__lease *l) {
  oee_job *j = l->job;
  oee__timer_unwatch(eng, j);
  j->deadline_ns = l->expires_mono;
  if (l->timeout_mono != 0 && l->timeout_mono < j->deadline_ns) j->deadline_ns = l->timeout_mono;
  oee_heap_push(&eng->deadlines, j); /* its slot was reserved at start */
  if (oee_heap_peek(&eng->deadlines) == j) oee__signal(&eng->timer_cv);
}

static void lease_extend(oee_engine *eng, struct oee__lease *l, int64_t ns) {
  l->expires_mono = oee__mono_ns() + ns;
  l->expires_real = oee_now_ns() + ns;
  lease_deadline(eng, l);
}

/* Leases t to poll p (lock held): 0, or OEE_ENOMEM (t stays queued). */
static int lease_task(oee_engine *eng, struct oee__poll *p, oee_task *t) {
  oee_job *j = oee__job_start_locked(eng, NULL, t, p->req.worker_id, sizeof(struct oee__lease));
  if (j == NULL) return OEE_ENOMEM;
  struct oee__lease *l = job_lease(j);
  j->lease = l;
  oee__id_new(l->id);
  l->w = p->w;
  l->job = j;
  l->lease_ns = oee__seconds_ns(p->req.lease_seconds);
  double timeout = j->snap->timeout_seconds;
  l->timeout_mono = timeout > 0 ? oee__mono_ns() + oee__seconds_ns(timeout) : 0;
  j->deadline_pos = OEE_HEAP_NONE;
  lease_extend(eng, l, l->lease_ns);
  lease_insert(eng->remote, l);
  p->w->active++;
  oee_lease *o = &p->out[p->n_out++];
  memcpy(o->lease_id, l->id, sizeof(o->lease_id));
  o->task = oee_task_info_ref(j->snap);
  o->expires_at_ns = l->expires_real;
  return 0;
}

/* Leases to p what it may take now, best first. */
static void grant(oee_engine *eng, struct oee__poll *p) {
  oee__remote *r = eng->remote;
  while (p->n_out < (size_t)p->req.max_tasks) {
    int64_t token_at = 0;
    oee_task *t = oee__queue_next_of(eng, p->req.task_types, p->req.n_task_types, &token_at);
    if (token_at != 0 && (r->retry_at == 0 || token_at < r->retry_at)) r->retry_at = token_at;
    if (t == NULL) return;
    if (lease_task(eng, p, t) != 0) {
      int64_t at = oee__mono_ns() + OEE__OOM_BACKOFF_NS;
      if (r->retry_at == 0 || at < r->retry_at) r->retry_at = at;
      return;
    }
  }
}

/* ---------------------------------------------------------------- polls */

static int wait_less(const void *a, const void *b) {
  return ((const struct oee__poll *)a)->deadline < ((const struct oee__poll *)b)->deadline;
}

static void wait_setpos(void *e, size_t pos) { ((struct oee__poll *)e)->wait_pos = pos; }

static void park(oee_engine *eng, struct oee__poll *p, oee_poll *owner) {
  oee__remote *r = eng->remote;
  p->prev = r->tail;
  p->next = NULL;
  if (r->tail) {
    r->tail->next = p;
  } else {
    r->head = p;
  }
  r->tail = p;
  r->n_polls++;
  p->deadline = oee__mono_ns() + oee__seconds_ns(p->req.wait_seconds);
  oee_heap_push(&r->waits, p); /* reserved by the caller */
  /* The timer wakes for the first wait to end, and for a token a quota
   * on its types is waiting for (retry_at). */
  if (oee_heap_peek(&r->waits) == p || r->retry_at != 0) oee__signal(&eng->timer_cv);
  p->owner = owner;
  owner->impl = p;
  owner->state = POLL_PARKED;
}

/* Takes a parked poll off the list and heap; its owner is told it was
 * taken (the caller may free the handle once the callback ran). */
static void unpark(oee_engine *eng, struct oee__poll *p) {
  oee__remote *r = eng->remote;
  if (p->prev) {
    p->prev->next = p->next;
  } else {
    r->head = p->next;
  }
  if (p->next) {
    p->next->prev = p->prev;
  } else {
    r->tail = p->prev;
  }
  r->n_polls--;
  oee_heap_remove(&r->waits, p->wait_pos);
  p->owner->state = POLL_TAKEN;
  p->owner->impl = NULL;
  p->owner = NULL;
}

static void poll_free(struct oee__poll *p) {
  for (size_t i = 0; i < p->n_out; i++) oee_task_info_unref(p->out[i].task);
  oee_free(p);
}

/* Makes leases whose answer did not reach the worker expire now. */
static void leases_undelivered(oee_engine *eng, const struct oee__poll *p) {
  oee__lock(&eng->lock);
  for (size_t i = 0; i < p->n_out; i++) {
    struct oee__lease *l = lease_find(eng->remote, p->out[i].lease_id);
    if (l != NULL && !l->claimed) lease_extend(eng, l, 0);
  }
  oee__unlock(&eng->lock);
}

/* Answers a poll (no lock held) and frees it. */
static void deliver(struct oee__poll *p) {
  oee_engine *eng = p->eng;
  int rc = p->cb(p->arg, p->rc, p->out, p->rc == 0 ? p->n_out : 0);
  if (rc != 0 && p->rc == 0 && p->n_out > 0) leases_undelivered(eng, p);
  poll_free(p);
}

static void poll_stored(oee__stored_waiter *w, int rc) {
  struct oee__poll *p = (struct oee__poll *)((char *)w - offsetof(struct oee__poll, stored));
  if (rc != 0) p->rc = OEE_ESTOPPED;
  deliver(p);
}

/* A poll with its answer (lock held): delivered by the caller once the
 * lock is released (appended to *due), or with a data_dir once the RUNNING
 * changes it carries are stored. */
static void answer(oee_engine *eng, struct oee__poll *p, int rc, struct oee__poll **due) {
  p->rc = rc;
  p->w->polls--; /* deliver() no longer needs the worker */
  if (rc == 0 && p->n_out > 0 && eng->committer) {
    uint64_t seq = 0;
    for (size_t i = 0; i < p->n_out; i++) {
      if (p->out[i].task->seq > seq) seq = p->out[i].task->seq;
    }
    p->stored.cb = poll_stored;
    oee__durable_after(eng, &p->stored, seq);
    return;
  }
  p->next_due = *due;
  *due = p;
}

static void deliver_all(struct oee__poll *due) {
  while (due != NULL) {
    struct oee__poll *next = due->next_due;
    deliver(due);
    due = next;
  }
}

/* Leases queued remote tasks to the waiting polls, oldest poll first. */
static void match(oee_engine *eng, struct oee__poll **due) {
  oee__remote *r = eng->remote;
  r->match = 0;
  r->retry_at = 0;
  struct oee__poll *p = r->head, *next;
  for (; p != NULL && oee__queue_remote_len(eng) > 0; p = next) {
    next = p->next;
    if (p->req.alive != NULL && !p->req.alive(p->arg)) {
      unpark(eng, p);
      answer(eng, p, OEE_ECLOSED, due);
      continue;
    }
    grant(eng, p);
    if (p->n_out == 0) continue;
    unpark(eng, p);
    answer(eng, p, 0, due);
  }
}

static int poll_check(oee_engine *eng, const oee_poll_req *req, oee_error *err) {
  if (!worker_id_ok(req->worker_id)) {
    return oee_error_set(err, OEE_EINVAL, "worker_id must be 1..%d bytes", OEE_WORKER_ID_MAX);
  }
  if (req->n_task_types == 0) {
    return oee_error_set(err, OEE_EINVAL, "task_types must name at least one remote type");
  }
  for (size_t i = 0; i < req->n_task_types; i++) {
    const char *t = req->task_types[i];
    if (t == NULL || !oee__queue_is_remote(eng, t)) {
      return oee_error_set(err, OEE_EINVAL, "task_types[%zu]: \"%.64s\" is not a remote type", i,
                           t ? t : "");
    }
  }
  if (req->max_tasks < 1 || req->max_tasks > OEE_POLL_MAX_TASKS) {
    return oee_error_set(err, OEE_EINVAL, "max_tasks must be 1..%d, got %d", OEE_POLL_MAX_TASKS,
                         req->max_tasks);
  }
  if (!(req->wait_seconds >= 0 && req->wait_seconds <= OEE_POLL_MAX_WAIT_SECONDS)) {
    return oee_error_set(err, OEE_EINVAL, "wait_seconds must be a finite number in 0..%g, got %g",
                         OEE_POLL_MAX_WAIT_SECONDS, req->wait_seconds);
  }
  if (!(req->lease_seconds >= OEE_LEASE_MIN_SECONDS &&
        req->lease_seconds <= OEE_LEASE_MAX_SECONDS)) {
    return oee_error_set(err, OEE_EINVAL, "lease_seconds must be a finite number in %g..%g, got %g",
                         OEE_LEASE_MIN_SECONDS, OEE_LEASE_MAX_SECONDS, req->lease_seconds);
  }
  return 0;
}

static struct oee__poll *poll_new(oee_engine *eng, const oee_poll_req *req, oee_poll_cb cb,
                                  void *arg) {
  struct oee__poll *p = oee_calloc(1, sizeof(*p) + (size_t)req->max_tasks * sizeof(oee_lease));
  if (p == NULL) return NULL;
  p->req = *req;
  p->cb = cb;
  p->arg = arg;
  p->eng = eng;
  p->out = (oee_lease *)(p + 1);
  return p;
}

/* The poll's first try, lock held: 0 with the poll answered (*due) or
 * parked, or an error (nothing changed). */
static int poll_locked(oee_engine *eng, struct oee__poll *p, oee_poll *owner,
                       struct oee__poll **due) {
  oee__remote *r = eng->remote;
  if (!eng->accepting || eng->stopping) return OEE_ESTOPPED;
  if (oee_heap_reserve(&r->waits, r->n_polls + 1) != 0) return OEE_ENOMEM;
  if ((p->w = worker_touch(r, p->req.worker_id, p->req.peer)) == NULL) return OEE_ENOMEM;
  p->w->listed_extra = 2 * oee__seconds_ns(p->req.wait_seconds) + LISTED_EXTRA_NS;
  p->w->listed_until = oee__mono_ns() + p->w->listed_extra;
  worker_types(p->w, p->req.task_types, p->req.n_task_types);
  p->w->polls++;
  /* Polls waiting already come first. */
  if (r->head != NULL && oee__queue_remote_len(eng) > 0) match(eng, due);
  grant(eng, p); /* what is left no parked poll can take */
  if (p->n_out > 0 || p->req.wait_seconds <= 0) {
    owner->state = POLL_TAKEN;
    answer(eng, p, 0, due);
  } else {
    park(eng, p, owner);
  }
  return 0;
}

int oee_engine_poll(oee_engine *eng, oee_poll *owner, const oee_poll_req *req, oee_poll_cb cb,
                    void *arg, oee_error *err) {
  if (eng->remote == NULL) {
    return oee_error_set(err, OEE_EINVAL, "task_types: no remote types are configured");
  }
  int rc = poll_check(eng, req, err);
  if (rc != 0) return rc;
  struct oee__poll *p = poll_new(eng, req, cb, arg);
  if (p == NULL) return oee_error_set(err, OEE_ENOMEM, "out of memory");
  struct oee__poll *due = NULL;
  oee__lock(&eng->lock);
  rc = poll_locked(eng, p, owner, &due);
  oee__engine_unlock(eng);
  deliver_all(due);
  if (rc != 0) {
    poll_free(p);
    return oee_error_set(err, rc, rc == OEE_ESTOPPED ? "the server is draining" : "out of memory");
  }
  return 0;
}

int oee_engine_poll_cancel(oee_engine *eng, oee_poll *owner) {
  oee__lock(&eng->lock);
  struct oee__poll *p = owner->state == POLL_PARKED ? owner->impl : NULL;
  if (p != NULL) {
    unpark(eng, p);
    p->w->polls--;
  }
  oee__unlock(&eng->lock);
  if (p != NULL) poll_free(p);
  return p != NULL;
}

/* ---------------------------------------------------------- heartbeats */

static int heartbeat_check(const char *worker_id, const char *const *ids, size_t n,
                           const double *extend, oee_error *err) {
  if (!worker_id_ok(worker_id)) {
    return oee_error_set(err, OEE_EINVAL, "worker_id must be 1..%d bytes", OEE_WORKER_ID_MAX);
  }
  if (n == 0 || n > OEE_HEARTBEAT_MAX_LEASES) {
    return oee_error_set(err, OEE_EINVAL, "lease_ids must hold 1..%d ids, got %zu",
                         OEE_HEARTBEAT_MAX_LEASES, n);
  }
  for (size_t i = 0; i < n; i++) {
    if (ids[i] == NULL || !oee_id_valid(ids[i])) {
      return oee_error_set(err, OEE_EINVAL, "lease_ids[%zu]: \"%.40s\" is not a lease id", i,
                           ids[i] ? ids[i] : "");
    }
  }
  if (extend != NULL && !(*extend >= OEE_LEASE_MIN_SECONDS && *extend <= OEE_LEASE_MAX_SECONDS)) {
    return oee_error_set(err, OEE_EINVAL,
                         "extend_seconds must be a finite number in %g..%g, got %g",
                         OEE_LEASE_MIN_SECONDS, OEE_LEASE_MAX_SECONDS, *extend);
  }
  return 0;
}

static void heartbeat_one(oee_engine *eng, const char *worker_id, const char *id,
                          const double *extend, oee_lease_state *out) {
  char norm[OEE_ID_LEN + 1];
  lease_id_norm(id, norm); /* checked */
  struct oee__lease *l = lease_find(eng->remote, norm);
  *out = (oee_lease_state){.lost = 1};
  if (l == NULL || l->claimed || strcmp(l->w->worker_id, worker_id) != 0) return;
  lease_extend(eng, l, extend ? oee__seconds_ns(*extend) : l->lease_ns);
  *out = (oee_lease_state){.expires_at_ns = l->expires_real,
                           .cancel_requested = oee_token_cancelled(l->job->token)};
}

int oee_engine_heartbeat(oee_engine *eng, const char *worker_id, const char *peer,
                         const char *const *ids, size_t n, const double *extend_seconds,
                         oee_lease_state *out, oee_error *err) {
  int rc = heartbeat_check(worker_id, ids, n, extend_seconds, err);
  if (rc != 0) return rc;
  if (eng->remote == NULL) {
    for (size_t i = 0; i < n; i++) out[i] = (oee_lease_state){.lost = 1};
    return 0;
  }
  oee__lock(&eng->lock);
  worker_touch(eng->remote, worker_id, peer); /* only shown: may fail */
  for (size_t i = 0; i < n; i++) heartbeat_one(eng, worker_id, ids[i], extend_seconds, &out[i]);
  oee__unlock(&eng->lock);
  return 0;
}

/* ------------------------------------------------------------ lease end */

/* A lease end's answer, given once its change is stored (data_dir). */
typedef struct end_answer {
  oee__stored_waiter waiter; /* first: the callback casts back */
  oee_lease_cb cb;
  void *arg;
  const oee_task_info *task;
} end_answer;

static void end_stored(oee__stored_waiter *w, int rc) {
  end_answer *a = (end_answer *)w;
  a->cb(a->arg, rc, rc == 0 ? a->task : NULL);
  oee_task_info_unref(a->task);
  oee_free(a);
}

/* Claims the lease `id` for an end by worker_id (lock held): 0 and *out,
 * or OEE_ESTATE / OEE_ENOENT with *err saying why. */
static int end_claim(oee_engine *eng, const char *id, const char *worker_id,
                     struct oee__lease **out, oee_error *err) {
  oee__remote *r = eng->remote;
  int checked = worker_id != NULL && worker_id[0] != '\0';
  struct oee__lease *l = r ? lease_find(r, id) : NULL;
  if (l != NULL && checked && strcmp(l->w->worker_id, worker_id) != 0) l = NULL;
  if (l != NULL && !l->claimed) {
    lease_claim(r, l);
    *out = l;
    return 0;
  }
  const ended *e = l == NULL && r != NULL ? ended_find(r, id) : NULL;
  if (l != NULL || (e != NULL && (!checked || e->worker_hash == hash_str(worker_id)))) {
    return oee_error_set(err, OEE_ESTATE,
                         "lease %s expired or its task already ended; the outcome is discarded",
                         id);
  }
  return oee_error_set(err, OEE_ENOENT, "no lease %s%s%.128s", id,
                       checked ? " held by worker " : "", checked ? worker_id : "");
}

static oee__ending end_how(const oee_lease_end *end, oee_job *j) {
  if (end->ok) return OEE__SUCCEEDED;
  if (oee_token_cancelled(j->token)) return OEE__CANCELLED;
  return end->retryable ? OEE__FAILED : OEE__FAILED_PERMANENTLY;
}

int oee_engine_lease_end(oee_engine *eng, const oee_lease_end *end, oee_lease_cb cb, void *arg,
                         oee_error *err) {
  char id[OEE_ID_LEN + 1];
  if (lease_id_norm(end->lease_id, id) != 0) {
    return oee_error_set(err, OEE_EINVAL, "lease_id: \"%.40s\" is not a lease id",
                         end->lease_id ? end->lease_id : "");
  }
  if (end->worker_id != NULL && strlen(end->worker_id) > OEE_WORKER_ID_MAX) {
    return oee_error_set(err, OEE_EINVAL, "worker_id must be 1..%d bytes", OEE_WORKER_ID_MAX);
  }
  end_answer *a = oee_calloc(1, sizeof(*a));
  if (a == NULL) return oee_error_set(err, OEE_ENOMEM, "out of memory");
  *a = (end_answer){.waiter.cb = end_stored, .cb = cb, .arg = arg};
  struct oee__lease *l = NULL;
  oee__lock(&eng->lock);
  int rc = end_claim(eng, id, end->worker_id, &l, err);
  if (rc == 0) worker_touch(eng->remote, l->w->worker_id, end->peer);
  oee__unlock(&eng->lock);
  if (rc != 0) {
    oee_free(a);
    return rc;
  }
  oee_job *j = l->job;
  oee__ending how = end_how(end, j);
  const char *msg = end->ok                           ? ""
                    : end->message && end->message[0] ? end->message
                    : how == OEE__CANCELLED           ? "cancelled"
                                                      : "failed";
  const oee_task_info *now = NULL;
  if (eng->committer) { /* answered once stored; a->task is set under the lock */
    oee__job_finish(j, how, end->ok ? end->result : "", msg, &a->waiter, &a->task);
    return 0;
  }
  oee__job_finish(j, how, end->ok ? end->result : "", msg, NULL, &now);
  cb(arg, 0, now);
  oee_task_info_unref(now);
  oee_free(a);
  return 0;
}

/* -------------------------------------------------------------- the timer */

void oee__remote_queued(oee_engine *eng) {
  oee__remote *r = eng->remote;
  if (r->head == NULL || r->match) return;
  r->match = 1;
  oee__signal(&eng->timer_cv); /* unless an oee__engine_unlock() comes first */
}

struct oee__poll *oee__remote_take_due(oee_engine *eng) {
  struct oee__poll *due = NULL;
  if (eng->remote->match) match(eng, &due);
  return due;
}

void oee__remote_deliver(struct oee__poll *due) { deliver_all(due); }

void oee__remote_deadline(oee_engine *eng, oee_job *j) {
  struct oee__lease *l = j->lease;
  if (l->claimed) return; /* ending already; it unwatches itself */
  int64_t now = oee__mono_ns();
  l->why = l->timeout_mono != 0 && l->timeout_mono <= now ? LEASE_TIMED_OUT : LEASE_LOST;
  if (l->why == LEASE_TIMED_OUT) j->timed_out = 1;
  lease_claim(eng->remote, l);
  l->next_expired = eng->remote->expired;
  eng->remote->expired = l;
}

/* Ends the attempts whose lease or timeout came (no lock held). */
static void end_expired(struct oee__lease *l) {
  while (l != NULL) {
    struct oee__lease *next = l->next_expired;
    oee_job *j = l->job;
    char msg[OEE_WORKER_ID_MAX + 64];
    snprintf(msg, sizeof(msg), "lease expired: worker %s lost", l->w->worker_id);
    if (l->why == LEASE_TIMED_OUT) { /* job.c says "timed out after <t> s" */
      oee__job_finish(j, OEE__CANCELLED, "", "timed out", NULL, NULL);
    } else if (oee_token_cancelled(j->token)) {
      oee__job_finish(j, OEE__CANCELLED, "", "cancelled (its worker's lease expired)", NULL, NULL);
    } else {
      oee__job_finish(j, OEE__FAILED, "", msg, NULL, NULL);
    }
    l = next;
  }
}

static void next_at(int64_t *next, int64_t at) {
  if (at != 0 && (*next == 0 || at < *next)) *next = at;
}

int oee__remote_run(oee_engine *eng, int64_t *next) {
  oee__remote *r = eng->remote;
  int64_t now = oee__mono_ns();
  struct oee__poll *due = NULL, *p;
  while ((p = oee_heap_peek(&r->waits)) != NULL && p->deadline <= now) {
    unpark(eng, p);
    answer(eng, p, 0, &due); /* nothing came in time */
  }
  if (r->match || (r->retry_at != 0 && r->retry_at <= now)) match(eng, &due);
  struct oee__lease *expired = r->expired;
  r->expired = NULL;
  if (due == NULL && expired == NULL) {
    if (p != NULL) next_at(next, p->deadline);
    if (r->head != NULL) next_at(next, r->retry_at);
    return 0;
  }
  oee__engine_unlock(eng);
  deliver_all(due);
  end_expired(expired);
  oee__lock(&eng->lock);
  return 1;
}

/* ---------------------------------------------------------- start, stop */

void oee__remote_refuse(oee_engine *eng) {
  struct oee__poll *due = NULL;
  oee__lock(&eng->lock);
  while (eng->remote->head != NULL) {
    struct oee__poll *p = eng->remote->head;
    unpark(eng, p);
    answer(eng, p, OEE_ESTOPPED, &due);
  }
  oee__unlock(&eng->lock);
  deliver_all(due);
}

void oee__remote_abandon(oee_engine *eng) {
  oee_job *j = eng->running, *next;
  for (; j != NULL; j = next) {
    next = j->next;
    struct oee__lease *l = j->lease;
    if (l == NULL || l->claimed) continue; /* a claimed one is ending */
    lease_claim(eng->remote, l);
    oee__timer_unwatch(eng, j);
    l->w->active--;
    j->task->token = NULL; /* the task stays RUNNING */
    oee__running_unlink(eng, j);
    oee_token_destroy(j->token);
    oee_task_info_unref(j->snap);
    oee_free(j);
  }
}

void oee__remote_ended(oee_engine *eng, oee_job *j, oee_task_status to) {
  (void)eng;
  rworker *w = j->lease->w;
  w->active--;
  if (to == OEE_TASK_DONE) w->completed++;
  if (to == OEE_TASK_ERROR || to == OEE_TASK_SCHEDULED) w->failed++;
}

/* Never runs: the engine's workers do not take remote tasks (quota.c). */
static void remote_exec(oee_job *j, void *ud) {
  (void)ud;
  oee_job_fail_permanent(j, "a remote type's task reached an in-process worker");
}

int oee__remote_init(oee_engine *eng, const char *const *types, size_t n, oee_error *err) {
  for (size_t i = 0; i < n; i++) {
    if (oee_engine_has_executor(eng, types[i])) {
      return oee_error_set(err, OEE_EINVAL,
                           "remote_types: \"%.64s\" is a built-in or configured type", types[i]);
    }
  }
  oee__remote *r = oee_calloc(1, sizeof(*r));
  if (r != NULL) r->buckets = oee_calloc(64, sizeof(*r->buckets));
  if (r == NULL || r->buckets == NULL) {
    oee_free(r);
    return oee_error_set(err, OEE_ENOMEM, "out of memory");
  }
  r->nbuckets = 64;
  oee_heap_init(&r->waits, wait_less, wait_setpos);
  eng->remote = r;
  for (size_t i = 0; i < n; i++) {
    int rc = oee__engine_register_full(eng, types[i], remote_exec, NULL, 0, NULL);
    if (rc != 0) return oee_error_set(err, rc, "cannot register the remote types");
  }
  return 0;
}

void oee__remote_fini(oee_engine *eng) {
  oee__remote *r = eng->remote;
  if (r == NULL) return;
  while (r->head != NULL) { /* none after a stop; a never-started engine */
    struct oee__poll *p = r->head;
    unpark(eng, p);
    poll_free(p);
  }
  oee_heap_fini(&r->waits);
  for (size_t i = 0; i < r->n_workers; i++) worker_free(r->workers[i]);
  oee_free(r->workers);
  oee_free(r->buckets);
  oee_free(r->ring);
  oee_free(r->ebuckets);
  oee_free(r);
  eng->remote = NULL;
}

int oee_engine_is_remote_type(oee_engine *eng, const char *type) {
  return type != NULL && eng->remote != NULL && oee__queue_is_remote(eng, type);
}

/* ------------------------------------------------------------ the list */

static int listed(const rworker *w, int64_t now) { return w->listed_until >= now || w->active > 0; }

static size_t worker_bytes(const rworker *w) {
  size_t n = sizeof(oee_remote_worker) + strlen(w->worker_id) + 1 +
             (w->peer ? strlen(w->peer) : 0) + 1 + w->n_types * sizeof(char *);
  for (size_t i = 0; i < w->n_types; i++) n += strlen(w->types[i]) + 1;
  return n;
}

static char *put(char **cur, const char *s) {
  size_t n = strlen(s) + 1;
  char *p = memcpy(*cur, s, n);
  *cur += n;
  return p;
}

/* Copies the listed workers into one block laid out as: the entries, the
 * type pointer arrays, the strings. */
static void workers_copy(oee__remote *r, int64_t now, oee_remote_worker *v, size_t n) {
  const char **ptrs = (const char **)(v + n);
  size_t k = 0, n_ptrs = 0;
  for (size_t i = 0; i < r->n_workers; i++) {
    if (listed(r->workers[i], now)) n_ptrs += r->workers[i]->n_types;
  }
  char *cur = (char *)(ptrs + n_ptrs);
  for (size_t i = 0; i < r->n_workers; i++) {
    const rworker *w = r->workers[i];
    if (!listed(w, now)) continue;
    oee_remote_worker *o = &v[k++];
    *o = (oee_remote_worker){.worker_id = put(&cur, w->worker_id),
                             .peer = put(&cur, w->peer ? w->peer : ""),
                             .task_types = ptrs,
                             .n_task_types = w->n_types,
                             .last_seen_ns = w->last_seen_ns,
                             .active_leases = w->active,
                             .tasks_completed = w->completed,
                             .tasks_failed = w->failed};
    for (size_t t = 0; t < w->n_types; t++) *ptrs++ = put(&cur, w->types[t]);
  }
}

int oee_engine_remote_workers(oee_engine *eng, oee_remote_worker **out, size_t *n) {
  *out = NULL;
  *n = 0;
  oee__remote *r = eng->remote;
  if (r == NULL) return 0;
  oee__lock(&eng->lock);
  int64_t now = oee__mono_ns();
  workers_prune(r, now);
  size_t count = 0, bytes = 0;
  for (size_t i = 0; i < r->n_workers; i++) {
    const rworker *w = r->workers[i];
    if (!listed(w, now)) continue;
    count++;
    bytes += worker_bytes(w);
  }
  oee_remote_worker *v = count ? oee_malloc(bytes) : NULL;
  if (v != NULL) workers_copy(r, now, v, count);
  oee__unlock(&eng->lock);
  if (count > 0 && v == NULL) return OEE_ENOMEM;
  *out = v;
  *n = count;
  return 0;
}

void oee_remote_workers_free(oee_remote_worker *v) { oee_free(v); }
