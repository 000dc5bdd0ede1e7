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
 * numbered after every stored one and stored like any other.
 * A pipeline's description and results are stored with it (the payload
 * column, pipeline_codec.c): a queued one runs as if nothing happened; one
 * stored by schema 1 (without them) cannot, and ends ERROR saying so.
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

typedef struct recovery {
  oee_engine *eng;
  uint64_t max_index, max_seq;
  oee_task **unfinished; /* RUNNING tasks and unfinished pipelines, to end */
  size_t n_unfinished, cap;
  oee_recovery counts;
} recovery;

/* What becomes of a task that was running when the process ended: the
 * attempt failed "interrupted", so it is retried after its backoff while
 * attempts remain, else it ends ERROR; a pipeline that cannot run again
 * ends ERROR saying why. */
static oee_task_info *interrupted(oee_engine *eng, const oee_task_info *was, const char *why,
                                  int can_retry) {
  oee_task_info d = *was;
  d.result = "";
  d.error_message = why;
  if (can_retry && was->attempt < was->max_attempts) {
    d.status = OEE_TASK_SCHEDULED;
    d.run_at_ns = oee_now_ns() + oee__seconds_ns(oee__backoff_seconds(was, was->attempt));
  } else {
    d.status = OEE_TASK_ERROR;
    d.completed_at_ns = oee_now_ns();
  }
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
    rc = oee_heap_reserve(&eng->queue, 1);
    if (rc == 0) rc = oee_heap_reserve(&eng->scheduled, 1);
    if (rc == 0) oee__task_place(eng, t);
    r->counts.queued++;
  } else {
    rc = remember(r, t); /* RUNNING, or a pipeline stored without its stages */
  }
  return rc;
}

/* Ends what cannot go on, numbered after every stored change. */
static int end_unfinished(recovery *r) {
  oee_engine *eng = r->eng;
  for (size_t i = 0; i < r->n_unfinished; i++) {
    oee_task *t = r->unfinished[i];
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
  if (rc == 0 && (rc = end_unfinished(&r)) != 0) {
    oee_error_set(err, rc, "out of memory recovering the stored tasks");
  }
  eng->recovered = r.counts;
  oee__engine_unlock(eng);
  oee_free(r.unfinished);
  return rc;
}

void oee_engine_recovery(const oee_engine *eng, oee_recovery *out) { *out = eng->recovered; }
