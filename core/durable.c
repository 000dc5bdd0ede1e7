/*
 * durable.c - the engine's tasks in the durable database (engine with a
 * data_dir; see oee_engine_config in oee.h and db.h, committer.h).
 *
 * DESIGN
 * The engine keeps scheduling from memory (queue, store, workers) exactly as
 * without a database; this file adds what makes that state survive:
 *  - Submissions: a new task is validated and numbered (submit index, seq,
 *    created_at) under the engine lock, then handed to the committer. Only
 *    when its row is stored does it enter the store and the queue, publish
 *    its QUEUED event and get acknowledged (the caller's oee_submit_cb); a
 *    write that fails refuses it and nothing is left of it.
 *  - Changes: every later snapshot (RUNNING, DONE, ...) is swapped in at once
 *    as before, so the engine's decisions see it, and appended to the
 *    committer, which stores it and only then publishes its event. A worker
 *    runs its job only once the RUNNING change is stored, so after a crash
 *    a task that may have run is found RUNNING (and ends interrupted), never
 *    QUEUED to run a second time. Events thus reach watchers in seq order,
 *    each after its change is stored, and the stored counters are never
 *    behind a sequence number a watcher saw. A change that cannot be stored
 *    is retried until it is (committer.c).
 *  - What readers see: until a change is stored, GetTask and the watch
 *    snapshot see the task's last stored snapshot (task->shown), so every
 *    read (these, ListTasks and counts from the database, events) agrees on
 *    one stored state. The contract would allow RUNNING earlier; showing it
 *    only once stored costs nothing, since a job starts only then anyway.
 *    Callers that must answer with the stored state (CancelTask) wait for it
 *    with oee__durable_after().
 *  - Finished tasks live on disk: once its final snapshot is stored, a task
 *    beyond the newest `finished_cache` finished ones leaves memory; reads
 *    that miss memory go to the database, listings and counts come from it
 *    (db.h keeps the counts), and ClearCompletedTasks and retention delete
 *    rows through purges in the group commit, dropping the cached copies of
 *    what they deleted. Memory thus holds the unfinished tasks and a bounded
 *    cache, whatever the number of finished tasks.
 *  - No allocation per change: every snapshot the engine packs carries its
 *    commit link in a prefix of its own allocation (oee__snap_pack_prefixed).
 *  - Recovery: recovery.c.
 * Threads and locks: the committer thread runs the callbacks below with no
 * committer lock held; they take the engine lock. The engine appends to the
 * committer with the engine lock held (committer lock is a leaf).
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/committer.h"
#include "core/db.h"
#include "core/engine.h"
#include "core/oee_alloc.h"
#include "core/sync.h"

/* A submission waiting for its row to be stored. */
typedef struct submit_ticket {
  oee__later later;          /* first: the acknowledgement runs from here */
  oee__stored_waiter waiter; /* or from here, for a task that ended at once */
  oee_engine *eng;
  oee_task *task; /* owns task->snap; not in the store until stored */
  oee_submit_cb cb;
  void *arg;
  /* The outcome, set under the engine lock, told after it. */
  int rc;
  oee_error err;
  const oee_task_info *queued; /* the QUEUED snapshot (a reference) */
} submit_ticket;

/* A purge on its way through the committer. */
typedef struct purge_record {
  oee_commit_item item; /* first: the callback casts back */
  oee__later later;
  int rc;
  oee_error err;
  oee_engine *eng;
  oee_db_purge purge;
  oee__purge_cb cb;
  void *arg;
  char ids[][OEE_ID_LEN + 1]; /* purge.limit of them */
} purge_record;

size_t oee__engine_prefix(const oee_engine *eng) {
  return eng->committer ? sizeof(oee_commit_item) : 0;
}

oee_task_info *oee__engine_pack(const oee_engine *eng, const oee_task_info *draft) {
  return oee__snap_pack_prefixed(draft, oee__engine_prefix(eng));
}

int oee_engine_durable(const oee_engine *eng) { return eng->committer != NULL; }

/* ------------------------------------------------------------- waiters */

void oee__durable_after(oee_engine *eng, oee__stored_waiter *w, uint64_t seq) {
  w->seq = seq;
  /* Kept in seq order (mostly appended: callers wait for their newest
   * change; a duplicate submission waits for an older one). */
  oee__stored_waiter **pp = &eng->waiters;
  while (*pp != NULL && (*pp)->seq <= seq) pp = &(*pp)->next;
  w->next = *pp;
  *pp = w;
  if (w->next == NULL) eng->waiters_tail = w;
}

/* Moves the waiters whose change (numbered up to `seq`) is settled onto the
 * commit thread's due list (lock held); they are called once the lock is
 * released. Waiters are appended in seq order, so they are at the head. */
static void waiters_due(oee_engine *eng, uint64_t seq, int rc) {
  while (eng->waiters != NULL && eng->waiters->seq <= seq) {
    oee__stored_waiter *w = eng->waiters;
    eng->waiters = w->next;
    if (eng->waiters == NULL) eng->waiters_tail = NULL;
    w->next = NULL;
    w->rc = rc;
    if (eng->due_tail) {
      eng->due_tail->next = w;
    } else {
      eng->due = w;
    }
    eng->due_tail = w;
  }
}

/* Runs after the engine lock (commit thread). */
void oee__durable_later(oee_engine *eng, oee__later *l) {
  l->next = NULL;
  if (eng->later_tail) {
    eng->later_tail->next = l;
  } else {
    eng->later = l;
  }
  eng->later_tail = l;
}

/* The committer's hooks: the commit callbacks of a group run under one
 * hold of the engine lock; what they owe callers runs after it. */
static void group_begin(void *arg) {
  oee_engine *eng = arg;
  oee__lock(&eng->lock);
  oee__engine_defer_wakes(eng); /* workers for the group's tasks: after its unlock */
}

static void group_end(void *arg) {
  oee_engine *eng = arg;
  /* Taken under the lock: the writer's groups (early calls, refusals) and
   * the flusher's run on two threads, and the lock keeps them apart. */
  oee__stored_waiter *w = eng->due;
  oee__later *l = eng->later;
  eng->due = eng->due_tail = NULL;
  eng->later = eng->later_tail = NULL;
  oee__engine_unlock(eng); /* delivers the events published in the group */
  /* Acknowledgements first: a submission is answered before a repeat of
   * its key that waited for it. */
  while (l) {
    oee__later *next = l->next; /* read first: run frees l */
    l->run(l);
    l = next;
  }
  while (w) {
    oee__stored_waiter *next = w->next; /* read first: cb frees w */
    w->cb(w, w->rc);
    w = next;
  }
}

/* ------------------------------------------------------------- changes */

/* Drops the least recently finished tasks from memory while more than
 * finished_cache are held, once their final snapshot is stored (their rows
 * answer for them from then on). Lock held. */
static void cache_trim(oee_engine *eng) {
  size_t n;
  oee_task *t;
  while ((t = eng->store->ops->oldest_finished(eng->store, &n)) != NULL &&
         n > eng->finished_cache && t->shown == NULL) {
    eng->store->ops->remove(eng->store, t);
    oee__task_free(t);
  }
}

/* `snap` is stored: readers may see it now (lock held). */
static void show_stored(oee_engine *eng, const oee_task_info *snap) {
  oee_task *t = eng->store->ops->lookup(eng->store, snap->id);
  if (t == NULL || t->shown == NULL || t->shown->seq > snap->seq) return;
  oee_task_info_unref(t->shown);
  t->shown = t->snap == snap ? NULL : oee_task_info_ref(snap);
}

/* A change is stored: its event may now be seen. Commit thread, engine
 * lock held (group_begin). */
static void change_stored(oee_commit_item *item, int rc, const oee_error *err) {
  (void)err;
  oee_engine *eng = item->arg;
  const oee_task_info *snap = item->snap;
  if (rc == 0) {
    oee__bus_publish(eng->bus, snap);
    show_stored(eng, snap);
    if (oee_task_status_is_terminal(snap->status)) cache_trim(eng);
  }
  waiters_due(eng, snap->seq, rc);
  oee_free((void *)item->payload);
  oee_task_info_unref(snap);
}

/* A RUNNING change is written: a killed process would find the task
 * RUNNING (and end it interrupted), so its worker may run it now, before
 * the flush makes it durable (the contract lets RUNNING be ahead of the
 * disk; readers still see it only once flushed). Writer thread, engine lock
 * held (group_begin). */
static void start_written(oee_commit_item *item, int rc, const oee_error *err) {
  (void)rc;
  (void)err;
  oee_engine *eng = item->arg;
  const oee_task_info *snap = item->snap;
  if (snap->worker_id >= 0 && snap->worker_id < eng->num_workers) {
    worker *w = &eng->workers[snap->worker_id];
    if (snap->seq > w->start_stored_seq) w->start_stored_seq = snap->seq;
    oee__signal(&w->wake);
  }
}

/* The stored bytes of a task's payload, or NULL (none, not stored, or no
 * memory: then the row keeps the bytes it has). Lock held. */
static void *payload_bytes(const oee_task *t, size_t *len) {
  void *bytes = NULL;
  *len = 0;
  if (t->payload == NULL || t->payload->ops == NULL || t->payload->ops->encode == NULL) return NULL;
  if (t->payload->ops->encode(t->payload->data, &bytes, len) != 0) return NULL;
  return bytes;
}

void oee__durable_change(oee_engine *eng, oee_task *t, oee_task_status from) {
  const oee_task_info *snap = t->snap;
  oee_commit_item *item = oee__snap_prefix(snap);
  if (item == NULL) abort(); /* every engine snapshot is packed with its link */
  *item = (oee_commit_item){.snap = oee_task_info_ref(snap),
                            .from = (int)from,
                            .must_store = 1,
                            .done = change_stored,
                            .arg = eng};
  if (snap->status == OEE_TASK_RUNNING) item->early = start_written;
  /* A final state carries the executor's results (a pipeline's stages). */
  if (oee_task_status_is_terminal(snap->status))
    item->payload = payload_bytes(t, &item->payload_len);
  oee_committer_append(eng->committer, item);
}

/* -------------------------------------------------------------- purges */

static void purge_told(oee__later *l) {
  purge_record *p = (purge_record *)((char *)l - offsetof(purge_record, later));
  p->cb(p->arg, p->rc, p->rc == 0 ? p->purge.deleted : 0, p->rc == 0 ? NULL : &p->err);
  oee_free(p);
}

/* The purged rows are gone: so are their tasks in the cache. Commit
 * thread, engine lock held. */
static void purge_stored(oee_commit_item *item, int rc, const oee_error *err) {
  purge_record *p = (purge_record *)item;
  oee_engine *eng = p->eng;
  for (size_t i = 0; rc == 0 && i < p->purge.deleted; i++) {
    oee_task *t = eng->store->ops->lookup(eng->store, p->ids[i]);
    if (t == NULL) continue;
    eng->store->ops->remove(eng->store, t);
    oee__task_free(t);
  }
  p->rc = rc;
  if (err != NULL) p->err = *err;
  p->later.run = purge_told;
  oee__durable_later(eng, &p->later);
}

int oee__durable_purge(oee_engine *eng, int64_t before_ns, uint64_t keep, size_t limit,
                       oee__purge_cb cb, void *arg) {
  purge_record *p = oee_malloc(sizeof(*p) + limit * sizeof(p->ids[0]));
  if (p == NULL) return OEE_ENOMEM;
  p->eng = eng;
  p->purge = (oee_db_purge){.before_ns = before_ns, .keep = keep, .limit = limit, .ids = p->ids};
  p->cb = cb;
  p->arg = arg;
  p->item = (oee_commit_item){.purge = &p->purge, .done = purge_stored, .from = -1};
  oee_committer_append(eng->committer, &p->item);
  return 0;
}

int oee__engine_stored(oee_engine *eng, const char *id, const oee_task_info **snap, void **payload,
                       size_t *payload_len) {
  if (eng->db == NULL) return OEE_ENOENT;
  return oee_db_get_payload(eng->db, id, snap, payload, payload_len, NULL);
}

size_t oee__engine_held(oee_engine *eng) {
  uint64_t by[OEE_TASK_STATUS_COUNT], total;
  oee__lock(&eng->lock);
  eng->store->ops->counts(eng->store, by, &total);
  oee__unlock(&eng->lock);
  return (size_t)total;
}

void oee__engine_pause_commits(oee_engine *eng, int paused) {
  if (eng->committer) oee__committer_pause(eng->committer, paused);
}

void oee__durable_counts(oee_engine *eng, const char *type,
                         uint64_t by_status[OEE_TASK_STATUS_COUNT]) {
  oee_db_counts(eng->db, type, by_status);
}

/* ---------------------------------------------------------- submissions */

/* The caller hears of its submission (commit thread, no lock held). */
static void submit_told(oee__later *l) {
  submit_ticket *tk = (submit_ticket *)l;
  if (tk->rc == 0) {
    tk->cb(tk->arg, 0, tk->queued, NULL);
  } else {
    tk->cb(tk->arg, tk->rc, NULL, &tk->err);
    oee__task_free(tk->task);
  }
  oee_task_info_unref(tk->queued);
  oee_free(tk);
}

static void submit_told_stored(oee__stored_waiter *w, int rc) {
  submit_ticket *tk = (submit_ticket *)((char *)w - offsetof(submit_ticket, waiter));
  (void)rc; /* the task exists either way: its end is stored or the engine stops */
  submit_told(&tk->later);
}

/* The row of a new task is stored (or refused): queue it and acknowledge,
 * or drop it and say why. Commit thread, engine lock held. */
static void submit_stored(oee_commit_item *item, int rc, const oee_error *err) {
  submit_ticket *tk = item->arg;
  oee_engine *eng = tk->eng;
  oee_task *t = tk->task;
  oee_free((void *)item->payload); /* now: the item dies with the snapshot */
  item->payload = NULL;
  /* The QUEUED snapshot, held: a worker may replace it once it is queued. */
  tk->queued = oee_task_info_ref(t->snap);
  eng->pending_submits--;
  if (rc == 0) rc = eng->store->ops->insert(eng->store, t); /* cannot fail: reserved */
  if (rc == 0) {
    oee__metrics_submitted(&eng->metrics, t); /* acknowledged below */
    oee__task_place(eng, t);                  /* room reserved at submission */
    oee__bus_publish(eng->bus, tk->queued);
    oee__graph_placed(eng, t); /* decided meanwhile: queued, or ended */
  } else {
    oee__graph_forget(t);
    eng->queue_bytes -= oee__task_bytes(tk->queued);
    if (tk->queued->idempotency_key[0] && !tk->queued->schedule_id[0]) {
      oee__keys_drop(eng, tk->queued->idempotency_key, tk->queued->id); /* never existed */
    }
    if (err != NULL) {
      tk->err = *err;
    } else {
      oee_error_set(&tk->err, rc, "out of memory queueing the stored task");
    }
  }
  waiters_due(eng, tk->queued->seq, rc); /* duplicates of it wait for this */
  tk->rc = rc;
  if (rc == 0 && oee_task_status_is_terminal(t->snap->status)) {
    /* A dependency had failed: the reply shows the task's end, once
     * stored. */
    oee_task_info_unref(tk->queued);
    tk->queued = oee_task_info_ref(t->snap);
    tk->waiter.cb = submit_told_stored;
    oee__durable_after(eng, &tk->waiter, t->snap->seq);
    return;
  }
  tk->later.run = submit_told;
  oee__durable_later(eng, &tk->later);
}

int oee__durable_submit_locked(oee_engine *eng, oee_task *t, oee_submit_cb cb, void *arg,
                               oee_error *err) {
  /* Room in the queue and the store first: once its row is committed a
   * task exists, and queueing it must not fail then. */
  if (oee__queue_reserve(eng, t->snap->task_type, eng->pending_submits + 1) != 0 ||
      oee_heap_reserve(&eng->scheduled, eng->pending_submits + 1) != 0 ||
      eng->store->ops->reserve(eng->store, eng->pending_submits + 1, t->snap->task_type) != 0) {
    return oee_error_set(err, OEE_ENOMEM, "out of memory growing the queue");
  }
  submit_ticket *tk = oee_malloc(sizeof(*tk));
  if (tk == NULL) return oee_error_set(err, OEE_ENOMEM, "out of memory creating the task");
  *tk = (submit_ticket){.eng = eng, .task = t, .cb = cb, .arg = arg};
  oee_commit_item *item = oee__snap_prefix(t->snap);
  if (item == NULL) abort();
  *item = (oee_commit_item){.snap = t->snap, .from = -1, .done = submit_stored, .arg = tk};
  /* A task whose executor stores its data is stored with it or not at all
   * (a pipeline must be able to run after a restart). */
  if (t->payload && t->payload->ops && t->payload->ops->encode &&
      (item->payload = payload_bytes(t, &item->payload_len)) == NULL) {
    oee_free(tk);
    return oee_error_set(err, OEE_ENOMEM, "out of memory storing the task's data");
  }
  eng->pending_submits++;
  oee_committer_append(eng->committer, item);
  return 0;
}

int oee__durable_open(oee_engine *eng, const oee_engine_config *cfg, oee_error *err) {
  oee_db_config dc = {.dir = cfg->data_dir,
                      .sync = cfg->sync_normal ? OEE_DB_SYNC_NORMAL : OEE_DB_SYNC_FULL};
  int rc = oee_db_open(&dc, &eng->db, err);
  oee_db_meta meta = {0};
  if (rc == 0) rc = oee_db_meta_get(eng->db, &meta, err);
  if (rc == 0) {
    rc = oee_committer_create(eng->db, 0, &meta, &eng->committer);
    if (rc != 0) oee_error_set(err, rc, "cannot start the store's writer: %s", oee_strerror(rc));
    if (rc == 0) oee_committer_set_hooks(eng->committer, group_begin, group_end, eng);
  }
  if (rc == 0) rc = oee__recover(eng, &meta, err);
  if (rc == 0) rc = oee__sched_load(eng, err);
  /* The interruptions recovery decided are stored before anyone reads. */
  if (rc == 0) oee_committer_flush(eng->committer);
  return rc;
}

void oee__durable_close(oee_engine *eng) {
  oee_committer_destroy(eng->committer); /* stores what is pending first */
  eng->committer = NULL;
  group_begin(eng); /* none are left, unless a change could not be stored */
  waiters_due(eng, UINT64_MAX, OEE_ESTOPPED);
  group_end(eng);
  oee_db_close(eng->db);
  eng->db = NULL;
}
