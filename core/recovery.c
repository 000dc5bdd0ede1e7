/*
 * recovery.c - a durable engine finds its tasks again when it is created
 * (see durable.c for the design of the durable engine).
 *
 * DESIGN
 * Only unfinished rows are loaded (finished tasks stay on disk, read on
 * demand): QUEUED ones go back into the store and the queue in submission
 * order, so the heap restores priority and FIFO order; SCHEDULED ones go
 * back to the timer with their run_at; a RUNNING one counts that attempt
 * as failed "interrupted: server restarted": it is retried after its
 * backoff while attempts remain, else it ends ERROR. Either is a change
 * numbered after every stored one and stored like any other. Tasks that
 * waited for dependencies wait again (rebuild_waits).
 * A pipeline's description and results are stored with it (the payload
 * column, pipeline_codec.c): a queued one runs as if nothing happened; one
 * stored by schema 1 (without them) cannot, and ends saying so: ERROR if
 * it was running, CANCELLED if it never started (the lifecycle table).
 * The engine lock is held throughout: nothing else runs yet.
 */
#include <string.h>

#include "core/db.h"
#include "core/engine.h"
#include "core/oee_alloc.h"
#include "core/sync.h"

#define INTERRUPTED "interrupted: server restarted"
#define PIPELINE_NOT_STORED                                                                 \
  "interrupted: server restarted (the pipeline was stored by an older version without its " \
  "stages: submit it again)"

typedef struct oee_task_list {
  oee_task **v;
  size_t n, cap;
} oee_task_list;

typedef struct recovery {
  oee_engine *eng;
  uint64_t max_index, max_seq;
  oee_task_list unfinished; /* RUNNING tasks and unfinished pipelines, to end */
  oee_task_list waiting;    /* SCHEDULED before their first attempt, with depends_on */
  oee_recovery counts;
} recovery;

/* What becomes of a task that was running when the process ended: the
 * attempt failed "interrupted", so it is retried after its backoff while
 * attempts remain, else it ends ERROR; a pipeline that cannot run again
 * ends ERROR saying why, or CANCELLED saying why when it never started
 * (QUEUED or SCHEDULED: the lifecycle has no edge from those to ERROR). */
static oee_task_info *interrupted(oee_engine *eng, const oee_task_info *was, const char *why,
                                  int can_retry) {
  oee_task_info d = *was;
  d.result = "";
  d.error_message = why;
  if (can_retry && was->attempt < was->max_attempts) {
    d.status = OEE_TASK_SCHEDULED;
    d.run_at_ns = oee_now_ns() + oee__seconds_ns(oee__backoff_seconds(was, was->attempt));
  } else {
    d.status = was->status == OEE_TASK_RUNNING ? OEE_TASK_ERROR : OEE_TASK_CANCELLED;
    d.completed_at_ns = oee_now_ns();
  }
  return oee__engine_pack(eng, &d);
}

static int remember(oee_task_list *l, oee_task *t) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 64;
    oee_task **grown = oee_realloc(l->v, cap * sizeof(*grown));
    if (grown == NULL) return OEE_ENOMEM;
    l->v = grown;
    l->cap = cap;
  }
  l->v[l->n++] = t;
  return 0;
}

/* One stored task back in memory (engine lock held). */
/* A pipeline's payload from its stored bytes; none (the task cannot run
 * again) when the row has none or they do not decode. */
static int recover_payload(oee_engine *eng, oee_task *t, const void *bytes, size_t len) {
  if (strcmp(t->snap->task_type, "pipeline") != 0 || bytes == NULL || len == 0) return 0;
  int rc = oee__pipeline_payload(eng, bytes, len, &t->payload);
  return rc == OEE_EINVAL ? 0 : rc;
}

static int recover_one(const oee_task_info *snap, const void *payload, size_t payload_len,
                       void *arg) {
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
  int rc = recover_payload(eng, t, payload, payload_len);
  if (rc == 0) rc = eng->store->ops->insert(eng->store, t);
  if (rc != 0) {
    oee__task_free(t);
    return rc;
  }
  /* From here the store owns t. */
  if (snap->submit_index > r->max_index) r->max_index = snap->submit_index;
  if (snap->seq > r->max_seq) r->max_seq = snap->seq;
  int lost = strcmp(snap->task_type, "pipeline") == 0 && t->payload == NULL;
  if (!oee_task_status_is_terminal(snap->status)) eng->queue_bytes += oee__task_bytes(snap);
  if ((snap->status == OEE_TASK_QUEUED || snap->status == OEE_TASK_SCHEDULED) && !lost) {
    rc = oee__queue_reserve(eng, snap->task_type, 1);
    if (rc == 0) rc = oee_heap_reserve(&eng->scheduled, 1);
    if (rc == 0) oee__task_place(eng, t);
    r->counts.queued++;
    /* Waiting for dependencies, maybe: decided once every task is back. */
    if (rc == 0 && snap->status == OEE_TASK_SCHEDULED && snap->attempt == 0 &&
        snap->depends_on_len > 0) {
      rc = remember(&r->waiting, t);
    }
  } else {
    rc = remember(&r->unfinished, t); /* RUNNING, or a pipeline stored without its stages */
  }
  return rc;
}

/* Ends what cannot go on, numbered after every stored change. */
static int end_unfinished(recovery *r) {
  oee_engine *eng = r->eng;
  for (size_t i = 0; i < r->unfinished.n; i++) {
    oee_task *t = r->unfinished.v[i];
    int lost = strcmp(t->snap->task_type, "pipeline") == 0 && t->payload == NULL;
    oee_task_info *next =
        interrupted(eng, t->snap, lost ? PIPELINE_NOT_STORED : INTERRUPTED, !lost);
    if (next == NULL) return OEE_ENOMEM;
    if (next->status == OEE_TASK_SCHEDULED && oee_heap_reserve(&eng->scheduled, 1) != 0) {
      oee_task_info_unref(next);
      return OEE_ENOMEM;
    }
    oee__task_swap_packed(eng, t, next); /* seq = ++last_seq; stored like any change */
    if (next->status == OEE_TASK_SCHEDULED) oee__timer_schedule(eng, t);
    r->counts.interrupted++;
  }
  return 0;
}

/* The tasks that waited for dependencies wait again (after the
 * interruptions: a dependency that ended ERROR just now cancels them).
 * Dependencies not in memory are finished and read from their rows (at
 * create nothing else runs, so the lock may be held). One whose row is
 * gone cannot hold a task back (a row is deleted only once finished, after
 * what its end decided was stored); the timer queues such a task. */
static int rebuild_waits(recovery *r) {
  oee_engine *eng = r->eng;
  for (size_t i = 0; i < r->waiting.n; i++) {
    oee_task *t = r->waiting.v[i];
    int *disk = oee_calloc(t->snap->depends_on_len, sizeof(*disk)), waits = 0, rc;
    if (disk == NULL) return OEE_ENOMEM;
    while ((rc = oee__graph_resolve(eng, t, disk, &waits, NULL)) == OEE__GRAPH_READ_DISK &&
           (rc = oee__graph_read(eng, t->snap, disk, NULL)) == 0) {
    }
    oee_free(disk);
    if (rc == OEE_ENOMEM) return rc;
    if (rc == 0 && waits) oee__graph_placed(eng, t);
  }
  return 0;
}

int oee__recover(oee_engine *eng, const oee_db_meta *meta, oee_error *err) {
  recovery r = {.eng = eng, .max_index = meta->last_index, .max_seq = meta->last_seq};
  oee__lock(&eng->lock);
  int rc = oee_db_load(eng->db, recover_one, &r, err);
  eng->last_index = r.max_index;
  eng->last_seq = r.max_seq;
  uint64_t by[OEE_TASK_STATUS_COUNT]; /* before the interruptions are stored */
  oee_db_counts(eng->db, NULL, by);
  for (int i = 0; i < OEE_TASK_STATUS_COUNT; i++) {
    if (oee_task_status_is_terminal((oee_task_status)i)) r.counts.finished += by[i];
  }
  if (rc == 0 && ((rc = end_unfinished(&r)) != 0 || (rc = rebuild_waits(&r)) != 0)) {
    oee_error_set(err, rc, "out of memory recovering the stored tasks");
  }
  eng->recovered = r.counts;
  oee__engine_unlock(eng);
  oee_free(r.unfinished.v);
  oee_free(r.waiting.v);
  return rc;
}

void oee_engine_recovery(const oee_engine *eng, oee_recovery *out) { *out = eng->recovered; }
