/*
 * query.c - reads and small changes from callers: cancel, get, list,
 * clear, status, metrics and subscribe (see engine.h for the design).
 * Lock order: eng->lock -> bus locks (events.c) -> token lock.
 */
#include "core/engine.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/committer.h"
#include "core/db.h"
#include "core/oee_alloc.h"
#include "core/sync.h"

/* Tasks a clear must remove before it hands freed pages back to the system
 * (malloc_trim walks the whole heap, so small clears skip it). */
#define TRIM_AFTER_TASKS 4096

/* ------------------------------------------------------- cancel and read */

/* One cancel attempt; the state the retries share. */
typedef struct cancel_try {
  const oee_task_info *seen; /* the QUEUED snapshot `next` was packed from */
  oee_task_info *next;       /* its CANCELLED successor, not yet shared */
  int rc, did;
  int wait; /* durable: the answer waits for the CANCELLED change's commit */
} cancel_try;

/* A durable cancel's answer, given once its change is stored. */
typedef struct cancel_answer {
  oee__stored_waiter waiter; /* first: the callback casts back */
  oee_cancel_cb cb;
  void *arg;
  const oee_task_info *task; /* the CANCELLED snapshot (a reference) */
} cancel_answer;

static void cancel_stored(oee__stored_waiter *w, int rc) {
  cancel_answer *a = (cancel_answer *)w;
  a->cb(a->arg, rc, rc == 0, rc == 0 ? a->task : NULL);
  oee_task_info_unref(a->task);
  oee_free(a);
}

/* A task that has not started: cancelling it ends it at once. */
static int waiting(oee_task_status st) { return st == OEE_TASK_QUEUED || st == OEE_TASK_SCHEDULED; }

/* Cancels under the engine lock when the queued task is still as it was
 * when `c->next` was packed. Returns 1 when the snapshot must be packed
 * (again) first: c->seen then holds the current one. *out gets what the
 * caller may be shown now. */
static int cancel_step(oee_engine *eng, const char *id, cancel_try *c, cancel_answer *answer,
                       const oee_task_info **out) {
  int again = 0;
  oee__lock(&eng->lock);
  oee_task *t = eng->store->ops->lookup(eng->store, id);
  if (t == NULL) {
    c->rc = OEE_ENOENT;
  } else if (waiting(t->snap->status) && t->snap != c->seen) {
    oee_task_info_unref(c->seen);
    c->seen = oee_task_info_ref(t->snap);
    again = 1;
  } else if (waiting(t->snap->status)) {
    if (t->snap->status == OEE_TASK_QUEUED) {
      oee__queue_remove(eng, t);
    } else {
      oee__timer_unschedule(eng, t);
    }
    oee__task_swap_packed(eng, t, c->next);
    c->next = NULL;
    c->did = 1;
    if (eng->committer) { /* answered once stored (answer was allocated) */
      answer->task = oee_task_info_ref(t->snap);
      oee__durable_after(eng, &answer->waiter, t->snap->seq);
      c->wait = 1;
    }
  } else if (t->snap->status == OEE_TASK_RUNNING) {
    oee_token_cancel(t->token);
    c->did = 1;
  }
  /* A task that started is shown RUNNING even before that change is
   * stored (the one state a reader may see early): showing its stored
   * QUEUED would say it was cancelled before it ran. */
  if (!again && c->rc == 0 && !c->wait) {
    int running = t->snap->status == OEE_TASK_RUNNING;
    *out = oee_task_info_ref(running ? t->snap : oee__task_shown(t));
  }
  oee__engine_unlock(eng);
  return again;
}

/* The snapshot of a queued task is packed outside the engine lock: the
 * swap happens only if the task did not change meanwhile (the reference
 * held on `seen` keeps its address from being reused), else it is packed
 * again from the newer one. */
int oee_engine_cancel_async(oee_engine *eng, const char *id, oee_cancel_cb cb, void *arg) {
  if (!oee_id_valid(id)) return OEE_EINVAL;
  cancel_try c = {NULL, NULL, 0, 0, 0};
  cancel_answer *answer = NULL;
  if (eng->committer) {
    /* Made before the lock, so that nothing can fail under it. */
    if ((answer = oee_calloc(1, sizeof(*answer))) == NULL) return OEE_ENOMEM;
    *answer = (cancel_answer){.waiter.cb = cancel_stored, .cb = cb, .arg = arg};
  }
  const oee_task_info *now = NULL;
  while (cancel_step(eng, id, &c, answer, &now)) {
    oee_task_info_unref(c.next);
    oee_task_info d = *c.seen;
    d.status = OEE_TASK_CANCELLED;
    d.completed_at_ns = oee_now_ns();
    d.result = "";
    d.error_message = c.seen->status == OEE_TASK_SCHEDULED ? "cancelled while scheduled"
                                                           : "cancelled while queued";
    if ((c.next = oee__engine_pack(eng, &d)) == NULL) {
      c.rc = OEE_ENOMEM;
      break;
    }
  }
  oee_task_info_unref(c.next);
  oee_task_info_unref(c.seen);
  if (c.rc == OEE_ENOENT && eng->db) { /* finished, and only on disk */
    c.rc = oee_db_get(eng->db, id, &now, NULL);
  }
  if (!c.wait) {
    oee_free(answer);
    if (c.rc == 0) cb(arg, 0, c.did, now);
  }
  oee_task_info_unref(now);
  return c.rc;
}

/* oee_engine_cancel(): the asynchronous one and a wait. */
typedef struct cancel_wait {
  oee__latch done;
  int rc, cancelled;
  const oee_task_info *task;
} cancel_wait;

static void cancel_waited(void *arg, int rc, int cancelled, const oee_task_info *task) {
  cancel_wait *w = arg;
  w->rc = rc;
  w->cancelled = cancelled;
  w->task = task ? oee_task_info_ref(task) : NULL;
  oee__latch_set(&w->done);
}

int oee_engine_cancel(oee_engine *eng, const char *id, int *cancelled, const oee_task_info **out) {
  cancel_wait w = {.rc = 0};
  if (oee__latch_init(&w.done) != 0) return OEE_ENOMEM;
  int rc = oee_engine_cancel_async(eng, id, cancel_waited, &w);
  if (rc == 0) {
    oee__latch_wait(&w.done);
    rc = w.rc;
  }
  oee__latch_destroy(&w.done);
  if (cancelled) *cancelled = rc == 0 && w.cancelled;
  if (rc == 0 && out) {
    *out = w.task;
  } else {
    oee_task_info_unref(w.task);
  }
  return rc;
}

int oee_engine_get(oee_engine *eng, const char *id, const oee_task_info **out) {
  if (!oee_id_valid(id)) return OEE_EINVAL;
  oee__lock(&eng->lock);
  oee_task *t = eng->store->ops->lookup(eng->store, id);
  if (t) *out = oee_task_info_ref(oee__task_shown(t));
  oee__unlock(&eng->lock);
  if (t != NULL) return 0;
  if (eng->db == NULL) return OEE_ENOENT;
  return oee_db_get(eng->db, id, out, NULL); /* finished, and only on disk */
}

int oee__engine_with_payload(oee_engine *eng, const char *id, const char *task_type,
                             void (*fn)(void *, const oee_task_info *, void *), void *arg) {
  if (!oee_id_valid(id)) return OEE_EINVAL;
  oee__lock(&eng->lock);
  oee_task *t = eng->store->ops->lookup(eng->store, id);
  int ok = t && t->payload && strcmp(t->snap->task_type, task_type) == 0;
  if (ok) fn(t->payload->data, t->snap, arg);
  oee__unlock(&eng->lock);
  return ok ? 0 : OEE_ENOENT;
}

int oee_engine_list(oee_engine *eng, const oee_list_query *q, oee_list_page *out) {
  if (q == NULL || out == NULL || (unsigned)q->status >= OEE_TASK_STATUS_COUNT) {
    return OEE_EINVAL;
  }
  if (eng->db) return oee_db_list(eng->db, q, out, NULL); /* every stored task */
  oee__lock(&eng->lock);
  int rc = eng->store->ops->list(eng->store, q, out);
  oee__unlock(&eng->lock);
  return rc;
}

/* A cleared task leaves memory (memory store; lock held). */
static void cleared(oee_task *t, void *arg) {
  (void)arg;
  oee__task_free(t);
}

/* A durable clear: purges of CLEAR_CHUNK rows, one after the other, until
 * a purge finds fewer (each keeps the newest `keep` finished rows of the
 * moment). */
#define CLEAR_CHUNK 2048

typedef struct clear_job {
  oee_engine *eng;
  uint64_t keep;
  long total;
  oee_count_cb cb;
  void *arg;
} clear_job;

static void clear_chunk_done(void *arg, int rc, size_t deleted, const oee_error *err) {
  clear_job *j = arg;
  j->total += (long)deleted;
  if (rc == 0 && deleted == CLEAR_CHUNK &&
      (rc = oee__durable_purge(j->eng, 0, j->keep, CLEAR_CHUNK, clear_chunk_done, j)) == 0) {
    return; /* the next chunk is on its way */
  }
  j->cb(j->arg, rc, rc == 0 ? j->total : 0, rc == 0 ? NULL : err);
  oee_free(j);
}

int oee_engine_clear_completed_async(oee_engine *eng, long keep_recent, oee_count_cb cb,
                                     void *arg) {
  if (keep_recent < 0) return OEE_EINVAL;
  if (eng->committer == NULL) {
    oee__lock(&eng->lock);
    long n = eng->store->ops->clear_completed(eng->store, keep_recent, cleared, eng);
    oee__unlock(&eng->lock);
    /* Freed snapshots are scattered small blocks: hand the pages back to
     * the system after a large clear, or RSS stays at its peak. */
    if (n >= TRIM_AFTER_TASKS) malloc_trim(0);
    cb(arg, 0, n, NULL);
    return 0;
  }
  clear_job *j = oee_malloc(sizeof(*j));
  if (j == NULL) return OEE_ENOMEM;
  *j = (clear_job){eng, (uint64_t)keep_recent, 0, cb, arg};
  int rc = oee__durable_purge(eng, 0, j->keep, CLEAR_CHUNK, clear_chunk_done, j);
  if (rc != 0) oee_free(j);
  return rc;
}

typedef struct clear_wait {
  oee__latch done;
  int rc;
  long n;
} clear_wait;

static void clear_waited(void *arg, int rc, long n, const oee_error *err) {
  (void)err;
  clear_wait *w = arg;
  w->rc = rc;
  w->n = n;
  oee__latch_set(&w->done);
}

long oee_engine_clear_completed(oee_engine *eng, long keep_recent) {
  clear_wait w = {.rc = 0};
  if (oee__latch_init(&w.done) != 0) return OEE_ENOMEM;
  int rc = oee_engine_clear_completed_async(eng, keep_recent, clear_waited, &w);
  if (rc == 0) {
    oee__latch_wait(&w.done);
    rc = w.rc;
  }
  oee__latch_destroy(&w.done);
  return rc == 0 ? w.n : rc;
}

int oee_engine_status(oee_engine *eng, oee_status *out) {
  memset(out, 0, sizeof(*out));
  out->workers = oee_calloc((size_t)eng->num_workers, sizeof(*out->workers));
  if (out->workers == NULL) return OEE_ENOMEM;
  out->num_workers = eng->num_workers;
  if (eng->n_limits > 0) {
    out->type_limits = oee_calloc(eng->n_limits, sizeof(*out->type_limits));
    if (out->type_limits == NULL) {
      oee_status_free(out);
      return OEE_ENOMEM;
    }
  }
  oee__lock(&eng->lock);
  out->n_type_limits = oee__quota_usage(eng, out->type_limits);
  out->running = eng->started && !eng->stopping;
  out->queue_size = oee__queue_len(eng);
  if (eng->db == NULL) eng->store->ops->counts(eng->store, out->by_status, &out->total_tasks);
  if (eng->started) {
    out->uptime_seconds = (double)(oee__mono_ns() - eng->started_mono_ns) / 1e9;
  }
  for (int i = 0; i < eng->num_workers; i++) {
    const worker *w = &eng->workers[i];
    oee_worker_status *ws = &out->workers[i];
    ws->worker_id = i;
    ws->busy = w->busy;
    memcpy(ws->current_task_id, w->current, sizeof(ws->current_task_id));
    ws->tasks_completed = w->completed;
    ws->tasks_failed = w->failed;
  }
  oee__unlock(&eng->lock);
  if (eng->db) { /* every stored task, as stored (like every read) */
    oee__durable_counts(eng, NULL, out->by_status);
    out->total_tasks = 0;
    for (int i = 0; i < OEE_TASK_STATUS_COUNT; i++) out->total_tasks += out->by_status[i];
    out->queue_size = out->by_status[OEE_TASK_QUEUED];
  }
  return 0;
}

/* ---------------------------------------------------------------- metrics */

void oee_engine_type_metrics(oee_engine *eng, oee_type_metrics_fn fn, void *arg) {
  oee__metrics *m = &eng->metrics;
  size_t n = atomic_load_explicit(&m->n, memory_order_acquire);
  for (size_t i = 0; i < n; i++) {
    oee__type_slot *s = &m->types[i];
    oee_type_metrics out = {.task_type = s->task_type};
    out.submitted = atomic_load_explicit(&s->submitted, memory_order_relaxed);
    out.retries = atomic_load_explicit(&s->retries, memory_order_relaxed);
    out.finished[OEE_TASK_DONE] =
        atomic_load_explicit(&s->finished[OEE__FIN_DONE], memory_order_relaxed);
    out.finished[OEE_TASK_ERROR] =
        atomic_load_explicit(&s->finished[OEE__FIN_ERROR], memory_order_relaxed);
    out.finished[OEE_TASK_CANCELLED] =
        atomic_load_explicit(&s->finished[OEE__FIN_CANCELLED], memory_order_relaxed);
    oee__hist_read(&s->queue_wait, &out.queue_wait);
    oee__hist_read(&s->run, &out.run);
    fn(arg, &out);
  }
}

/* Bytes of a file, 0 when it does not exist (a WAL between checkpoints). */
static uint64_t file_bytes(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* The database file and its write-ahead log. */
static uint64_t store_bytes(oee_engine *eng) {
  if (eng->db == NULL) return 0;
  const char *path = oee_db_path(eng->db);
  char wal[4096];
  uint64_t n = file_bytes(path);
  if (snprintf(wal, sizeof(wal), "%s-wal", path) < (int)sizeof(wal)) n += file_bytes(wal);
  return n;
}

int oee_engine_metrics(oee_engine *eng, oee_metrics *out) {
  memset(out, 0, sizeof(*out));
  oee_remote_worker *rw = NULL;
  int rc = oee_engine_remote_workers(eng, &rw, &out->remote_workers);
  oee_remote_workers_free(rw);
  if (rc != 0) return rc;
  uint64_t total;
  oee__lock(&eng->lock);
  if (eng->db == NULL) eng->store->ops->counts(eng->store, out->by_status, &total);
  for (int i = 0; i < eng->num_workers; i++) out->workers_busy += eng->workers[i].busy;
  oee__unlock(&eng->lock);
  if (eng->db != NULL) oee__durable_counts(eng, NULL, out->by_status); /* as oee_engine_status */
  if (eng->committer != NULL && eng->db != NULL) {
    oee_committer_commits(eng->committer, &out->store_commits);
  }
  out->store_bytes = store_bytes(eng);
  return 0;
}

void oee_status_free(oee_status *st) {
  if (st == NULL) return;
  oee_free(st->workers);
  st->workers = NULL;
  oee_free(st->type_limits);
  st->type_limits = NULL;
  st->n_type_limits = 0;
}

/* ------------------------------------------------------------- subscribe */

typedef struct collect {
  const oee_sub_filter *filter;
  const oee_task_info **snaps;
  size_t len, cap;
  int overflow;
} collect;

static void collect_visit(oee_task *t, void *arg) {
  collect *c = arg;
  if (c->overflow || !oee_sub_filter_match(c->filter, oee__task_shown(t))) return;
  if (c->len == c->cap) {
    c->overflow = 1;
    return;
  }
  c->snaps[c->len++] = oee__task_shown(t);
}

/* The finished tasks a filter names by id that only the database holds
 * (durable engines); read before the engine lock is taken. Finished tasks
 * do not change, so what is read here is still current under the lock
 * unless the task was deleted meanwhile (then it is skipped). */
static size_t disk_named(oee_engine *eng, const oee_sub_filter *f, const oee_task_info **out,
                         size_t cap) {
  size_t n = 0;
  if (eng->db == NULL || f == NULL) return 0;
  for (size_t i = 0; i < f->n_task_ids && n < cap; i++) {
    const oee_task_info *t;
    if (oee_db_get(eng->db, f->task_ids[i], &t, NULL) == 0) out[n++] = t;
  }
  return n;
}

/* Adds the named tasks memory does not hold (lock held). */
static void collect_disk(oee_engine *eng, collect *c, const oee_task_info **disk, size_t n) {
  for (size_t i = 0; i < n && !c->overflow; i++) {
    if (eng->store->ops->lookup(eng->store, disk[i]->id) != NULL) continue;
    if (!oee_task_status_is_terminal(disk[i]->status)) continue; /* deleted meanwhile */
    if (!oee_sub_filter_match(c->filter, disk[i])) continue;
    if (c->len == c->cap) {
      c->overflow = 1;
    } else {
      c->snaps[c->len++] = disk[i];
    }
  }
}

/* Everything is allocated before the engine lock is taken; under it the
 * matching tasks are collected and the subscriber attached, so the initial
 * events and the live ones meet exactly at the engine's last seq. */
int oee_engine_subscribe(oee_engine *eng, const oee_sub_filter *filter, size_t capacity,
                         int snapshot, oee_sub **out) {
  if (capacity == 0) capacity = OEE_DEFAULT_SUB_CAPACITY;
  collect c = {filter, NULL, 0, capacity, 0};
  const oee_task_info **disk = NULL;
  size_t n_disk = 0;
  oee_sub *s = NULL;
  int rc = oee__sub_create(eng->bus, filter, capacity, &s);
  if (rc == 0 && snapshot && (c.snaps = oee_malloc(capacity * sizeof(*c.snaps))) == NULL) {
    rc = OEE_ENOMEM;
  }
  if (rc == 0 && snapshot && eng->db && filter && filter->n_task_ids > 0) {
    if ((disk = oee_malloc(filter->n_task_ids * sizeof(*disk))) == NULL) rc = OEE_ENOMEM;
    if (rc == 0) n_disk = disk_named(eng, filter, disk, filter->n_task_ids);
  }
  if (rc != 0) goto done;
  oee__lock(&eng->lock);
  if (snapshot) eng->store->ops->foreach (eng->store, collect_visit, &c);
  if (snapshot) collect_disk(eng, &c, disk, n_disk);
  /* Snapshots show the last stored (published) state, so the live events
   * start after the last one published, not after the last seq given. */
  uint64_t from = oee__bus_published(eng->bus);
  rc = c.overflow ? OEE_EOVERFLOW : oee__bus_attach(eng->bus, s, c.snaps, c.len, from);
  oee__unlock(&eng->lock);
done:
  for (size_t i = 0; i < n_disk; i++) oee_task_info_unref(disk[i]);
  oee_free(disk);
  oee_free(c.snaps);
  if (rc == 0) {
    *out = s;
  } else {
    oee_sub_free(s);
  }
  return rc;
}
