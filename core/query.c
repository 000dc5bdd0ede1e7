/*
 * query.c - reads and small changes from callers: cancel, get, list,
 * clear, status and subscribe (see engine.h for the design).
 * Lock order: eng->lock -> bus locks (events.c) -> token lock.
 */
#include "core/engine.h"

#include <malloc.h>
#include <stdlib.h>
#include <string.h>

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
} cancel_try;

/* Cancels under the engine lock when the queued task is still as it was
 * when `c->next` was packed. Returns 1 when the snapshot must be packed
 * (again) first: c->seen then holds the current one. */
static int cancel_step(oee_engine *eng, const char *id, cancel_try *c, const oee_task_info **out) {
  int again = 0;
  oee__lock(&eng->lock);
  oee_task *t = eng->store->ops->lookup(eng->store, id);
  if (t == NULL) {
    c->rc = OEE_ENOENT;
  } else if (t->snap->status == OEE_TASK_QUEUED && t->snap != c->seen) {
    oee_task_info_unref(c->seen);
    c->seen = oee_task_info_ref(t->snap);
    again = 1;
  } else if (t->snap->status == OEE_TASK_QUEUED) {
    oee_heap_remove(&eng->queue, t->heap_pos);
    oee__task_swap_packed(eng, t, c->next);
    c->next = NULL;
    c->did = 1;
  } else if (t->snap->status == OEE_TASK_RUNNING) {
    oee_token_cancel(t->token);
    c->did = 1;
  }
  if (!again && c->rc == 0 && out) *out = oee_task_info_ref(t->snap);
  oee__engine_unlock(eng);
  return again;
}

/* The snapshot of a queued task is packed outside the engine lock: the
 * swap happens only if the task did not change meanwhile (the reference
 * held on `seen` keeps its address from being reused), else it is packed
 * again from the newer one. */
int oee_engine_cancel(oee_engine *eng, const char *id, int *cancelled, const oee_task_info **out) {
  if (!oee_id_valid(id)) return OEE_EINVAL;
  cancel_try c = {NULL, NULL, 0, 0};
  while (cancel_step(eng, id, &c, out)) {
    oee_task_info_unref(c.next);
    oee_task_info d = *c.seen;
    d.status = OEE_TASK_CANCELLED;
    d.completed_at_ns = oee_now_ns();
    d.result = "";
    d.error_message = "cancelled while queued";
    if ((c.next = oee__engine_pack(eng, &d)) == NULL) {
      c.rc = OEE_ENOMEM;
      break;
    }
  }
  oee_task_info_unref(c.next);
  oee_task_info_unref(c.seen);
  if (cancelled) *cancelled = c.did;
  return c.rc;
}

int oee_engine_get(oee_engine *eng, const char *id, const oee_task_info **out) {
  if (!oee_id_valid(id)) return OEE_EINVAL;
  oee__lock(&eng->lock);
  oee_task *t = eng->store->ops->lookup(eng->store, id);
  if (t) *out = oee_task_info_ref(t->snap);
  oee__unlock(&eng->lock);
  return t ? 0 : OEE_ENOENT;
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
  oee__lock(&eng->lock);
  int rc = eng->store->ops->list(eng->store, q, out);
  oee__unlock(&eng->lock);
  return rc;
}

/* A cleared task leaves the database too (lock held). */
static void cleared(oee_task *t, void *arg) {
  oee_engine *eng = arg;
  if (eng->committer) oee__durable_delete(eng, t->snap->id);
  oee__task_free(t);
}

long oee_engine_clear_completed(oee_engine *eng, long keep_recent) {
  if (keep_recent < 0) return OEE_EINVAL;
  oee__lock(&eng->lock);
  long n = eng->store->ops->clear_completed(eng->store, keep_recent, cleared, eng);
  oee__unlock(&eng->lock);
  /* Freed snapshots are scattered small blocks: hand the pages back to the
   * system after a large clear, or RSS stays at its peak. */
  if (n >= TRIM_AFTER_TASKS) malloc_trim(0);
  return n;
}

int oee_engine_status(oee_engine *eng, oee_status *out) {
  memset(out, 0, sizeof(*out));
  out->workers = oee_calloc((size_t)eng->num_workers, sizeof(*out->workers));
  if (out->workers == NULL) return OEE_ENOMEM;
  out->num_workers = eng->num_workers;
  oee__lock(&eng->lock);
  out->running = eng->started && !eng->stopping;
  out->queue_size = eng->queue.len;
  eng->store->ops->counts(eng->store, out->by_status, &out->total_tasks);
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
  return 0;
}

void oee_status_free(oee_status *st) {
  if (st == NULL) return;
  oee_free(st->workers);
  st->workers = NULL;
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
  if (c->overflow || !oee_sub_filter_match(c->filter, t->snap)) return;
  if (c->len == c->cap) {
    c->overflow = 1;
    return;
  }
  c->snaps[c->len++] = t->snap;
}

/* Everything is allocated before the engine lock is taken; under it the
 * matching tasks are collected and the subscriber attached, so the initial
 * events and the live ones meet exactly at the engine's last seq. */
int oee_engine_subscribe(oee_engine *eng, const oee_sub_filter *filter, size_t capacity,
                         int snapshot, oee_sub **out) {
  if (capacity == 0) capacity = OEE_DEFAULT_SUB_CAPACITY;
  collect c = {filter, NULL, 0, capacity, 0};
  oee_sub *s = NULL;
  int rc = oee__sub_create(eng->bus, filter, capacity, &s);
  if (rc == 0 && snapshot && (c.snaps = oee_malloc(capacity * sizeof(*c.snaps))) == NULL) {
    rc = OEE_ENOMEM;
  }
  if (rc != 0) goto done;
  oee__lock(&eng->lock);
  if (snapshot) eng->store->ops->foreach (eng->store, collect_visit, &c);
  rc = c.overflow ? OEE_EOVERFLOW : oee__bus_attach(eng->bus, s, c.snaps, c.len, eng->last_seq);
  oee__unlock(&eng->lock);
done:
  oee_free(c.snaps);
  if (rc == 0) {
    *out = s;
  } else {
    oee_sub_free(s);
  }
  return rc;
}
