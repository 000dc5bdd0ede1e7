/* committer.c - group commit (see committer.h for the design).
 * Lock order: `lock` is a leaf; no callback runs and no database call is
 * made while it is held. */
#include "core/committer.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "core/metrics.h"
#include "core/oee_alloc.h"
#include "core/sync.h"

#define DEFAULT_MAX_BATCH 16384
#define RETRY_FIRST_NS 10000000LL /* 10 ms after the first failed write */
#define RETRY_MAX_NS 1000000000LL /* doubling up to a second */
#define STOP_ATTEMPTS 3           /* writes tried for what is left at stop */

struct oee_committer {
  pthread_mutex_t lock;
  pthread_cond_t wake;                   /* work appended, or stopping */
  pthread_cond_t idle_cv;                /* the queue ran empty with nothing in flight */
  oee_commit_item *head, *tail;          /* pending items; guarded by lock */
  int in_flight;                         /* a batch is being written; guarded by lock */
  int stopping;                          /* guarded by lock */
  int paused;                            /* guarded by lock: tests hold writes back */
  void (*begin)(void *), (*end)(void *); /* guarded by lock; set once */
  void *hook_arg;
  oee_committer_stats stats; /* guarded by lock */
  /* The flusher's queue: written items not yet flushed, in order. */
  oee_commit_item *flush_head, *flush_tail; /* guarded by lock */
  int flushing;                             /* guarded by lock */
  int flush_stop;                           /* guarded by lock */
  int64_t flush_t0;                         /* guarded by lock: monotonic start of the write
                                             * of the oldest batch in flush_head */
  pthread_cond_t flush_cv;                  /* items handed over, or flush_stop */
  int has_flusher;                          /* immutable after create */
  pthread_t flush_thread;
  /* One observation per group commit (with a database): atomics, read by
   * oee_committer_commits() on any thread. */
  oee__hist commits;

  /* Committer thread only. */
  oee_db *db; /* borrowed; NULL for the memory store */
  size_t max_batch;
  oee_db_meta meta;            /* counters stored with the last batch */
  oee_db_row *rows;            /* max_batch slots */
  oee_db_purge **purges;       /* max_batch slots */
  const oee_db_sched **scheds; /* max_batch slots */
  pthread_t thread;
};

/* Nothing appended is waiting to be written, flushed or called back. */
static int idle_locked(const oee_committer *c) {
  return c->head == NULL && !c->in_flight && c->flush_head == NULL && !c->flushing;
}

/* Detaches up to max_batch items from the head of the queue. Lock held. */
static oee_commit_item *take_batch(oee_committer *c, size_t *n) {
  oee_commit_item *first = c->head, *last = NULL, *it = first;
  *n = 0;
  while (it != NULL && *n < c->max_batch) {
    last = it;
    it = it->next;
    (*n)++;
  }
  c->head = it;
  if (it == NULL) c->tail = NULL;
  if (last != NULL) last->next = NULL;
  return first;
}

/* Puts a failed batch's remaining items back at the head, in order. Lock held. */
static void requeue(oee_committer *c, oee_commit_item *first, oee_commit_item *last) {
  if (first == NULL) return;
  last->next = c->head;
  c->head = first;
  if (c->tail == NULL) c->tail = last;
}

/* Writes one batch; 0 or the error of the failed write. */
static int write_batch(oee_committer *c, oee_commit_item *items, oee_error *err) {
  if (c->db == NULL) return 0;
  oee_db_batch b = {.rows = c->rows, .purges = c->purges, .scheds = c->scheds, .meta = c->meta};
  for (oee_commit_item *it = items; it != NULL; it = it->next) {
    if (it->snap != NULL) {
      c->rows[b.n_rows++] = (oee_db_row){it->snap, it->from, it->payload, it->payload_len};
      if (it->snap->submit_index > b.meta.last_index) b.meta.last_index = it->snap->submit_index;
      if (it->snap->seq > b.meta.last_seq) b.meta.last_seq = it->snap->seq;
    }
    if (it->purge != NULL) c->purges[b.n_purges++] = it->purge;
    if (it->sched != NULL) c->scheds[b.n_scheds++] = it->sched;
  }
  int rc = oee_db_write(c->db, &b, err);
  if (rc == 0) c->meta = b.meta;
  return rc;
}

/* After a failed write: refuses the items that may be refused and keeps
 * the ones that must be stored, in order. Returns how many were refused. */
/* Calls the items' `done` in order, in groups between the hooks. */
typedef struct doner {
  oee_committer *c;
  size_t in_group;
} doner;

static void call_one(doner *d, oee_commit_done_fn fn, oee_commit_item *it, int rc,
                     const oee_error *err) {
  oee_committer *c = d->c;
  if (d->in_group == 0 && c->begin) c->begin(c->hook_arg);
  if (fn) fn(it, rc, err);
  if (++d->in_group == OEE_COMMIT_GROUP) {
    if (c->end) c->end(c->hook_arg);
    d->in_group = 0;
  }
}

static void done_one(doner *d, oee_commit_item *it, int rc, const oee_error *err) {
  call_one(d, it->done, it, rc, err);
}

static void done_end(doner *d) {
  if (d->in_group > 0 && d->c->end) d->c->end(d->c->hook_arg);
  d->in_group = 0;
}

static size_t settle_failure(oee_committer *c, oee_commit_item *items, int rc, const oee_error *err,
                             int give_up) {
  oee_commit_item *keep = NULL, *keep_tail = NULL;
  size_t refused = 0;
  doner d = {c, 0};
  while (items != NULL) {
    oee_commit_item *it = items;
    items = it->next;
    it->next = NULL;
    if (it->must_store && !give_up) {
      if (keep_tail)
        keep_tail->next = it;
      else
        keep = it;
      keep_tail = it;
      continue;
    }
    refused++;
    done_one(&d, it, give_up ? OEE_ESTOPPED : rc, err);
  }
  done_end(&d);
  oee__lock(&c->lock);
  requeue(c, keep, keep_tail);
  oee__unlock(&c->lock);
  return refused;
}

/* The items' `early` calls, after a successful write (writer thread). */
static void written_ok(oee_committer *c, oee_commit_item *items) {
  doner d = {c, 0};
  for (oee_commit_item *it = items; it != NULL; it = it->next) {
    if (it->early) call_one(&d, it->early, it, 0, NULL);
  }
  done_end(&d);
}

static void finish_ok(oee_committer *c, oee_commit_item *items) {
  doner d = {c, 0};
  while (items != NULL) {
    oee_commit_item *it = items;
    items = it->next; /* read first: done may free or reuse the item */
    it->next = NULL;
    done_one(&d, it, 0, NULL);
  }
  done_end(&d);
}

/* Queues a written batch for the flusher; t0 is when its write began. */
static void hand_to_flusher(oee_committer *c, oee_commit_item *items, int64_t t0) {
  oee__lock(&c->lock);
  oee_commit_item *last = items;
  while (last->next) last = last->next;
  if (c->flush_tail) {
    c->flush_tail->next = items;
  } else {
    c->flush_head = items;
    c->flush_t0 = t0; /* the group the next flush makes durable starts here */
  }
  c->flush_tail = last;
  oee__signal(&c->flush_cv);
  oee__unlock(&c->lock);
}

/* Sleeps `ns` unless stopping; lock held. */
static void pause_locked(oee_committer *c, int64_t ns) {
  int64_t until = oee__mono_ns() + ns;
  while (!c->stopping && oee__mono_ns() < until) {
    if (oee__wait_until(&c->wake, &c->lock, until)) break;
  }
}

/* One round: take, write, call back. 0 when there was nothing to do and
 * the committer is stopping. */
static int round_once(oee_committer *c, int64_t *retry_ns, int *stop_attempts) {
  oee__lock(&c->lock);
  while ((c->head == NULL || c->paused) && !c->stopping) oee__wait(&c->wake, &c->lock);
  if (c->head == NULL) {
    oee__unlock(&c->lock);
    return 0;
  }
  size_t n;
  oee_commit_item *items = take_batch(c, &n);
  c->in_flight = 1;
  int stopping = c->stopping;
  oee__unlock(&c->lock);

  oee_error err = {0};
  int64_t t0 = oee__mono_ns();
  int rc = write_batch(c, items, &err);
  int64_t took = oee__mono_ns() - t0;
  if (rc == 0) {
    written_ok(c, items);
    if (c->has_flusher) {
      hand_to_flusher(c, items, t0);
    } else {
      if (c->db != NULL) oee__hist_observe(&c->commits, took); /* stored once written */
      finish_ok(c, items);
    }
    *retry_ns = 0;
  } else {
    int give_up = stopping && ++*stop_attempts >= STOP_ATTEMPTS;
    size_t refused = settle_failure(c, items, rc, &err, give_up);
    /* Only kept status changes wait before the next attempt; a batch of
     * submissions was refused whole and the next one may succeed at once. */
    if (refused == n) {
      *retry_ns = 0;
    } else {
      *retry_ns = *retry_ns == 0 ? RETRY_FIRST_NS : *retry_ns * 2;
      if (*retry_ns > RETRY_MAX_NS) *retry_ns = RETRY_MAX_NS;
    }
  }
  oee__lock(&c->lock);
  c->in_flight = 0;
  c->stats.batches++;
  c->stats.items += n;
  c->stats.last_commit_ns = took;
  if (rc != 0) {
    c->stats.failures++;
    if (*retry_ns > 0) pause_locked(c, *retry_ns);
  }
  if (idle_locked(c)) oee__broadcast(&c->idle_cv);
  oee__unlock(&c->lock);
  return 1;
}

/* The flusher: makes everything written so far durable, then calls it
 * done. A failed flush ends the process (see committer.h). */
static void *flusher_main(void *arg) {
  oee_committer *c = arg;
  for (;;) {
    oee__lock(&c->lock);
    while (c->flush_head == NULL && !c->flush_stop) oee__wait(&c->flush_cv, &c->lock);
    oee_commit_item *items = c->flush_head;
    int64_t t0 = c->flush_t0;
    c->flush_head = c->flush_tail = NULL;
    c->flushing = items != NULL;
    oee__unlock(&c->lock);
    if (items == NULL) return NULL; /* stopping and drained */
    oee_error err = {0};
    if (oee_db_flush(c->db, &err) != 0) {
      fprintf(stderr, "oee: %s: stopping, the last commits may not be durable\n", err.message);
      abort();
    }
    /* A group commit: from its first write to the flush that made it durable. */
    oee__hist_observe(&c->commits, oee__mono_ns() - t0);
    finish_ok(c, items);
    oee__lock(&c->lock);
    c->flushing = 0;
    if (idle_locked(c)) oee__broadcast(&c->idle_cv);
    oee__unlock(&c->lock);
  }
}

void oee__committer_pause(oee_committer *c, int paused) {
  oee__lock(&c->lock);
  c->paused = paused;
  oee__broadcast(&c->wake);
  oee__unlock(&c->lock);
}

static void *committer_main(void *arg) {
  oee_committer *c = arg;
  int64_t retry_ns = 0;
  int stop_attempts = 0;
  while (round_once(c, &retry_ns, &stop_attempts)) {
  }
  return NULL;
}

/* Lets the flusher finish what it was given and joins it. */
static void stop_flusher(oee_committer *c) {
  oee__lock(&c->lock);
  c->flush_stop = 1;
  oee__signal(&c->flush_cv);
  oee__unlock(&c->lock);
  if (pthread_join(c->flush_thread, NULL) != 0) abort();
}

static void committer_free(oee_committer *c) {
  oee_free(c->rows);
  oee_free(c->purges);
  oee_free(c->scheds);
  oee_free(c);
}

int oee_committer_create(oee_db *db, size_t max_batch, const oee_db_meta *meta,
                         oee_committer **out) {
  *out = NULL;
  oee_committer *c = oee_calloc(1, sizeof(*c));
  if (c == NULL) return OEE_ENOMEM;
  c->db = db;
  c->max_batch = max_batch ? max_batch : DEFAULT_MAX_BATCH;
  if (meta != NULL) c->meta = *meta;
  c->rows = oee_calloc(c->max_batch, sizeof(*c->rows));
  c->purges = oee_calloc(c->max_batch, sizeof(*c->purges));
  c->scheds = oee_calloc(c->max_batch, sizeof(*c->scheds));
  if (c->rows == NULL || c->purges == NULL || c->scheds == NULL) {
    committer_free(c);
    return OEE_ENOMEM;
  }
  if (pthread_mutex_init(&c->lock, NULL) != 0) {
    committer_free(c);
    return OEE_ENOMEM;
  }
  int made = 0; /* 1: wake, 2: idle_cv, 3: flush_cv */
  if (oee__cond_init(&c->wake) == 0) made = 1;
  if (made == 1 && oee__cond_init(&c->idle_cv) == 0) made = 2;
  if (made == 2 && oee__cond_init(&c->flush_cv) == 0) made = 3;
  c->has_flusher = db != NULL && oee_db_needs_flush(db);
  int threads = 0; /* 1: the flusher (when there is one), 2: the writer too */
  if (made == 3 &&
      (!c->has_flusher || pthread_create(&c->flush_thread, NULL, flusher_main, c) == 0)) {
    threads = 1;
  }
  if (threads == 1 && pthread_create(&c->thread, NULL, committer_main, c) == 0) threads = 2;
  if (threads < 2) {
    if (threads == 1 && c->has_flusher) stop_flusher(c);
    if (made >= 1) pthread_cond_destroy(&c->wake);
    if (made >= 2) pthread_cond_destroy(&c->idle_cv);
    if (made >= 3) pthread_cond_destroy(&c->flush_cv);
    pthread_mutex_destroy(&c->lock);
    committer_free(c);
    return OEE_ENOMEM;
  }
  *out = c;
  return 0;
}

void oee_committer_set_hooks(oee_committer *c, void (*begin)(void *), void (*end)(void *),
                             void *arg) {
  oee__lock(&c->lock);
  c->begin = begin;
  c->end = end;
  c->hook_arg = arg;
  oee__unlock(&c->lock);
}

void oee_committer_append(oee_committer *c, oee_commit_item *item) {
  item->next = NULL;
  oee__lock(&c->lock);
  if (c->tail)
    c->tail->next = item;
  else
    c->head = item;
  c->tail = item;
  oee__signal(&c->wake);
  oee__unlock(&c->lock);
}

void oee_committer_flush(oee_committer *c) {
  oee__lock(&c->lock);
  while (!idle_locked(c)) oee__wait(&c->idle_cv, &c->lock);
  oee__unlock(&c->lock);
}

void oee_committer_commits(oee_committer *c, oee_histogram *out) {
  oee__hist_read(&c->commits, out);
}

void oee_committer_stats_get(oee_committer *c, oee_committer_stats *out) {
  oee__lock(&c->lock);
  *out = c->stats;
  oee__unlock(&c->lock);
}

void oee_committer_destroy(oee_committer *c) {
  if (c == NULL) return;
  oee__lock(&c->lock);
  c->stopping = 1;
  oee__broadcast(&c->wake);
  oee__unlock(&c->lock);
  if (pthread_join(c->thread, NULL) != 0) abort();
  if (c->has_flusher) stop_flusher(c); /* after the writer: it drains what was written */
  pthread_cond_destroy(&c->wake);
  pthread_cond_destroy(&c->idle_cv);
  pthread_cond_destroy(&c->flush_cv);
  pthread_mutex_destroy(&c->lock);
  committer_free(c);
}
