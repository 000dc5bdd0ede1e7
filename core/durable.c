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
 *    QUEUED to run a second time. Events
 *    thus reach watchers in seq order, each after its change is stored, and
 *    the stored counters are never behind a sequence number a watcher saw.
 *    A change that cannot be stored is retried until it is (committer.c).
 *  - No allocation per change: every snapshot the engine packs carries its
 *    commit link in a prefix of its own allocation (oee__snap_pack_prefixed).
 *  - Recovery (at create): every stored task goes back into the store;
 *    QUEUED ones into the queue in submission order, so priority and FIFO
 *    order hold; a RUNNING one ends ERROR "interrupted: server restarted".
 *    Pipelines' specs are not stored yet, so a recovered unfinished pipeline
 *    ends ERROR saying so.
 * Threads and locks: the committer thread runs the callbacks below with no
 * committer lock held; they take the engine lock. The engine appends to the
 * committer with the engine lock held (committer lock is a leaf).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/committer.h"
#include "core/db.h"
#include "core/engine.h"
#include "core/oee_alloc.h"
#include "core/sync.h"

#define INTERRUPTED "interrupted: server restarted"
#define PIPELINE_NOT_STORED \
  "interrupted: server restarted (pipeline specs are not stored yet: submit it again)"

/* A submission waiting for its row to be stored. */
typedef struct submit_ticket {
  oee_engine *eng;
  oee_task *task; /* owns task->snap; not in the store until stored */
  oee_submit_cb cb;
  void *arg;
} submit_ticket;

/* A deletion waiting to be stored (ClearCompletedTasks). */
typedef struct delete_record {
  oee_commit_item item; /* first: the callback casts back */
  char id[OEE_ID_LEN + 1];
} delete_record;

size_t oee__engine_prefix(const oee_engine *eng) {
  return eng->committer ? sizeof(oee_commit_item) : 0;
}

oee_task_info *oee__engine_pack(const oee_engine *eng, const oee_task_info *draft) {
  return oee__snap_pack_prefixed(draft, oee__engine_prefix(eng));
}

int oee_engine_durable(const oee_engine *eng) { return eng->committer != NULL; }

/* ------------------------------------------------------------- changes */

/* A change is stored: its event may now be seen. Commit thread. */
static void change_stored(oee_commit_item *item, int rc, const oee_error *err) {
  (void)err;
  oee_engine *eng = item->arg;
  if (rc == 0) {
    const oee_task_info *snap = item->snap;
    oee__lock(&eng->lock);
    oee__bus_publish(eng->bus, snap);
    if (snap->status == OEE_TASK_RUNNING && snap->worker_id >= 0 &&
        snap->worker_id < eng->num_workers) { /* its worker may run it now */
      worker *w = &eng->workers[snap->worker_id];
      w->start_stored_seq = snap->seq;
      oee__signal(&w->wake);
    }
    oee__engine_unlock(eng);
  }
  oee_task_info_unref(item->snap);
}

void oee__durable_change(oee_engine *eng, const oee_task_info *snap) {
  oee_commit_item *item = oee__snap_prefix(snap);
  if (item == NULL) abort(); /* every engine snapshot is packed with its link */
  *item = (oee_commit_item){
      .snap = oee_task_info_ref(snap), .must_store = 1, .done = change_stored, .arg = eng};
  oee_committer_append(eng->committer, item);
}

static void delete_stored(oee_commit_item *item, int rc, const oee_error *err) {
  (void)rc;
  (void)err;
  oee_free(item);
}

void oee__durable_delete(oee_engine *eng, const char *id) {
  delete_record *d = oee_malloc(sizeof(*d));
  if (d == NULL) return; /* the row stays; it is cleared again after a restart */
  memcpy(d->id, id, sizeof(d->id));
  d->item = (oee_commit_item){.deleted = d->id, .must_store = 1, .done = delete_stored};
  oee_committer_append(eng->committer, &d->item);
}

/* ---------------------------------------------------------- submissions */

/* The row of a new task is stored (or refused): queue it and acknowledge,
 * or drop it and say why. Commit thread. */
static void submit_stored(oee_commit_item *item, int rc, const oee_error *err) {
  submit_ticket *tk = item->arg;
  oee_engine *eng = tk->eng;
  oee_task *t = tk->task;
  /* The QUEUED snapshot, held: a worker may replace it once it is queued. */
  const oee_task_info *queued = oee_task_info_ref(t->snap);
  oee__lock(&eng->lock);
  eng->pending_submits--;
  if (rc == 0) rc = eng->store->ops->insert(eng->store, t);
  if (rc != 0) eng->queue_bytes -= oee__task_bytes(queued);
  if (rc == 0) {
    oee_heap_push(&eng->queue, t); /* room reserved at submission */
    oee__bus_publish(eng->bus, queued);
    oee__engine_wake_one(eng);
  }
  oee__engine_unlock(eng);
  if (rc == 0) {
    tk->cb(tk->arg, 0, queued, NULL);
  } else {
    oee_error mine;
    if (err == NULL) {
      oee_error_set(&mine, rc, "out of memory queueing the stored task");
      err = &mine;
    }
    tk->cb(tk->arg, rc, NULL, err);
    oee__task_free(t);
  }
  oee_task_info_unref(queued);
  oee_free(tk);
}

int oee__durable_submit_locked(oee_engine *eng, oee_task *t, oee_submit_cb cb, void *arg,
                               oee_error *err) {
  if (oee_heap_reserve(&eng->queue, eng->pending_submits + 1) != 0) {
    return oee_error_set(err, OEE_ENOMEM, "out of memory growing the queue");
  }
  submit_ticket *tk = oee_malloc(sizeof(*tk));
  if (tk == NULL) return oee_error_set(err, OEE_ENOMEM, "out of memory creating the task");
  *tk = (submit_ticket){eng, t, cb, arg};
  oee_commit_item *item = oee__snap_prefix(t->snap);
  if (item == NULL) abort();
  *item = (oee_commit_item){.snap = t->snap, .done = submit_stored, .arg = tk};
  eng->pending_submits++;
  oee_committer_append(eng->committer, item);
  return 0;
}

/* ------------------------------------------------------------ recovery */

typedef struct recovery {
  oee_engine *eng;
  uint64_t max_index, max_seq;
  oee_task **unfinished; /* RUNNING tasks and unfinished pipelines, to end */
  size_t n_unfinished, cap;
  oee_recovery counts;
} recovery;

/* The ERROR version of a task that was running (or a pipeline that cannot
 * run again) when the process ended. */
static oee_task_info *interrupted(oee_engine *eng, const oee_task_info *was, const char *why) {
  oee_task_info d = *was;
  d.status = OEE_TASK_ERROR;
  d.completed_at_ns = oee_now_ns();
  d.result = "";
  d.error_message = why;
  return oee__engine_pack(eng, &d);
}

static int remember(recovery *r, oee_task *t) {
  if (r->n_unfinished == r->cap) {
    size_t cap = r->cap ? 2 * r->cap : 64;
    oee_task **grown = oee_realloc(r->unfinished, cap * sizeof(*grown));
    if (grown == NULL) return OEE_ENOMEM;
    r->unfinished = grown;
    r->cap = cap;
  }
  r->unfinished[r->n_unfinished++] = t;
  return 0;
}

/* One stored task back in memory (engine lock held). */
static int recover_one(const oee_task_info *snap, void *arg) {
  recovery *r = arg;
  oee_engine *eng = r->eng;
  oee_task *t = oee_calloc(1, sizeof(*t));
  if (t == NULL) {
    oee_task_info_unref(snap);
    return OEE_ENOMEM;
  }
  t->snap = snap;
  t->index = snap->submit_index;
  t->priority = snap->priority;
  t->heap_pos = OEE_TASK_NOT_QUEUED;
  int rc = eng->store->ops->insert(eng->store, t);
  if (rc != 0) {
    oee__task_free(t);
    return rc;
  }
  /* From here the store owns t. */
  if (snap->submit_index > r->max_index) r->max_index = snap->submit_index;
  if (snap->seq > r->max_seq) r->max_seq = snap->seq;
  int pipeline = strcmp(snap->task_type, "pipeline") == 0;
  if (!oee_task_status_is_terminal(snap->status)) eng->queue_bytes += oee__task_bytes(snap);
  if (snap->status == OEE_TASK_QUEUED && !pipeline) {
    rc = oee_heap_reserve(&eng->queue, 1);
    if (rc == 0) oee_heap_push(&eng->queue, t);
    r->counts.queued++;
  } else if (!oee_task_status_is_terminal(snap->status)) {
    rc = remember(r, t);
  } else {
    r->counts.finished++;
  }
  return rc;
}

/* Ends what cannot go on, numbered after every stored change. */
static int end_unfinished(recovery *r) {
  oee_engine *eng = r->eng;
  for (size_t i = 0; i < r->n_unfinished; i++) {
    oee_task *t = r->unfinished[i];
    int running = t->snap->status == OEE_TASK_RUNNING;
    oee_task_info *next = interrupted(eng, t->snap, running ? INTERRUPTED : PIPELINE_NOT_STORED);
    if (next == NULL) return OEE_ENOMEM;
    oee__task_swap_packed(eng, t, next); /* seq = ++last_seq; stored like any change */
    r->counts.interrupted++;
  }
  return 0;
}

static int recover(oee_engine *eng, const oee_db_meta *meta, oee_error *err) {
  recovery r = {.eng = eng, .max_index = meta->last_index, .max_seq = meta->last_seq};
  oee__lock(&eng->lock);
  int rc = oee_db_load(eng->db, 1, recover_one, NULL, &r, err);
  eng->last_index = r.max_index;
  eng->last_seq = r.max_seq;
  if (rc == 0 && (rc = end_unfinished(&r)) != 0) {
    oee_error_set(err, rc, "out of memory recovering the stored tasks");
  }
  eng->recovered = r.counts;
  oee__engine_unlock(eng);
  oee_free(r.unfinished);
  return rc;
}

void oee_engine_recovery(const oee_engine *eng, oee_recovery *out) { *out = eng->recovered; }

int oee__durable_open(oee_engine *eng, const oee_engine_config *cfg, oee_error *err) {
  oee_db_config dc = {.dir = cfg->data_dir,
                      .sync = cfg->sync_normal ? OEE_DB_SYNC_NORMAL : OEE_DB_SYNC_FULL};
  int rc = oee_db_open(&dc, &eng->db, err);
  oee_db_meta meta = {0};
  if (rc == 0) rc = oee_db_meta_get(eng->db, &meta, err);
  if (rc == 0) {
    rc = oee_committer_create(eng->db, 0, &meta, &eng->committer);
    if (rc != 0) oee_error_set(err, rc, "cannot start the store's writer: %s", oee_strerror(rc));
  }
  if (rc == 0) rc = recover(eng, &meta, err);
  return rc;
}

void oee__durable_close(oee_engine *eng) {
  oee_committer_destroy(eng->committer); /* stores what is pending first */
  eng->committer = NULL;
  oee_db_close(eng->db);
  eng->db = NULL;
}
