/*
 * retry.c - RetryTask, the dead-letter "kick": a task that ended ERROR or
 * CANCELLED is queued again (SCHEDULED when its run_at is still ahead) with
 * attempt 0 and its full max_attempts, checked like a fresh submission (the
 * queue limits apply). See engine.h for the engine's design.
 *
 * DESIGN
 * The task is changed in place, keeping its id, submit index and history
 * (created_at, the last error until it runs again), so watchers see one
 * more change of the same task. A durable engine keeps finished tasks on
 * disk, so a task not in memory is read back from its row first (with a
 * pipeline's stored stages) and taken into memory: its slot in the memory
 * store's submission order is then out of order, which nothing reads in a
 * durable engine (listings come from the database). The caller is answered
 * once the change is stored, like a submission.
 */
#include <string.h>

#include "core/db.h"
#include "core/engine.h"
#include "core/oee_alloc.h"
#include "core/sync.h"

/* A durable retry's answer, given once the change is stored. */
typedef struct retry_answer {
  oee__stored_waiter waiter; /* first: the callback casts back */
  oee_submit_cb cb;
  void *arg;
  const oee_task_info *task; /* the new snapshot (a reference) */
} retry_answer;

static void retry_stored(oee__stored_waiter *w, int rc) {
  retry_answer *a = (retry_answer *)w;
  oee_error e;
  if (rc != 0) oee_error_set(&e, rc, "the retry could not be stored: %s", oee_strerror(rc));
  a->cb(a->arg, rc, rc == 0 ? a->task : NULL, rc == 0 ? NULL : &e);
  oee_task_info_unref(a->task);
  oee_free(a);
}

/* A task of a durable engine that left memory, read back (no lock held):
 * a new record, not yet in the store, or NULL with *rc set. */
static oee_task *load_back(oee_engine *eng, const char *id, int *rc, oee_error *err) {
  const oee_task_info *snap;
  void *bytes = NULL;
  size_t len = 0;
  *rc = oee_db_get_payload(eng->db, id, &snap, &bytes, &len, err);
  if (*rc != 0) return NULL;
  oee_task *t = oee_calloc(1, sizeof(*t));
  if (t != NULL && bytes != NULL && strcmp(snap->task_type, "pipeline") == 0) {
    *rc = oee__pipeline_payload(eng, bytes, len, &t->payload);
  }
  oee_free(bytes);
  if (t == NULL || *rc != 0) {
    if (*rc == 0) *rc = OEE_ENOMEM;
    oee_error_set(err, *rc, "cannot read task %s back: %s", id, oee_strerror(*rc));
    oee_task_info_unref(snap);
    if (t) oee__task_free(t);
    return NULL;
  }
  t->snap = snap;
  t->index = snap->submit_index;
  t->priority = snap->priority;
  t->heap_pos = OEE_TASK_NOT_QUEUED;
  return t;
}

/* The task to retry, in memory (lock held on return, also on failure). */
static oee_task *find_locked(oee_engine *eng, const char *id, int *rc, oee_error *err) {
  oee__lock(&eng->lock);
  oee_task *t = eng->store->ops->lookup(eng->store, id);
  if (t != NULL || eng->db == NULL) {
    if (t == NULL) *rc = oee_error_set(err, OEE_ENOENT, "task %s not found", id);
    return t;
  }
  oee__unlock(&eng->lock);
  oee_task *back = load_back(eng, id, rc, err);
  oee__lock(&eng->lock);
  if (back == NULL) return NULL;
  t = eng->store->ops->lookup(eng->store, id); /* someone may have been faster */
  if (t != NULL) {
    oee__task_free(back);
    return t;
  }
  if ((*rc = eng->store->ops->reserve(eng->store, 1, back->snap->task_type)) != 0 ||
      (*rc = eng->store->ops->insert(eng->store, back)) != 0) {
    oee_error_set(err, *rc, "out of memory taking task %s back", id);
    oee__task_free(back);
    return NULL;
  }
  return back;
}

/* Queues the ERROR or CANCELLED task t again (lock held): 0, an error, or
 * OEE__GRAPH_READ_DISK (see oee__graph_resolve()). */
static int requeue_locked(oee_engine *eng, oee_task *t, int *disk, oee_error *err) {
  const oee_task_info *cur = oee__task_shown(t);
  const char *id = cur->id;
  if (cur->status != OEE_TASK_ERROR && cur->status != OEE_TASK_CANCELLED) {
    return oee_error_set(err, OEE_ESTATE,
                         "task %s is %s: only ERROR or CANCELLED tasks can be retried", id,
                         oee_task_status_name(cur->status));
  }
  if (t->snap != cur) { /* its end is not stored yet: come back then */
    return oee_error_set(err, OEE_ESTATE, "task %s is still ending; retry it once it has", id);
  }
  int rc = oee__queue_limits(eng, oee__task_bytes(cur), err);
  /* Its dependencies are checked again, like a fresh submission's. */
  int waits = 0;
  if (rc == 0 && cur->depends_on_len > 0) rc = oee__graph_resolve(eng, t, disk, &waits, err);
  if (rc != 0) return rc;
  oee_task_info d = *cur;
  d.attempt = 0;
  d.result = "";
  d.completed_at_ns = 0;
  d.worker_id = -1;
  d.status = waits || d.run_at_ns > oee_now_ns() ? OEE_TASK_SCHEDULED : OEE_TASK_QUEUED;
  if (oee_task_transition_check(cur->status, d.status) != 0) abort();
  if (oee__queue_reserve(eng, cur->task_type, 1) != 0 ||
      oee_heap_reserve(&eng->scheduled, 1) != 0 || oee__task_swap_snapshot(eng, t, &d) != 0) {
    oee__graph_forget(t);
    return oee_error_set(err, OEE_ENOMEM, "out of memory retrying the task");
  }
  oee__task_place(eng, t);
  oee__graph_placed(eng, t); /* a dependency still failed: it ends again */
  return 0;
}

/* Reads what the retry of t needs from disk (lock held on entry and on
 * return; let go meanwhile): dependencies not in memory. */
static int read_deps(oee_engine *eng, oee_task *t, int **disk, oee_error *err) {
  const oee_task_info *snap = oee_task_info_ref(t->snap);
  oee__unlock(&eng->lock);
  int rc = 0;
  if (*disk == NULL && (*disk = oee_calloc(snap->depends_on_len, sizeof(**disk))) == NULL) {
    rc = oee_error_set(err, OEE_ENOMEM, "out of memory reading depends_on");
  }
  if (rc == 0) rc = oee__graph_read(eng, snap, *disk, err);
  oee_task_info_unref(snap);
  oee__lock(&eng->lock);
  return rc;
}

int oee_engine_retry_async(oee_engine *eng, const char *id, oee_submit_cb cb, void *arg,
                           oee_error *err) {
  if (!oee_id_valid(id)) {
    return oee_error_set(err, OEE_EINVAL, "task_id \"%.64s\" is not a UUID", id ? id : "");
  }
  retry_answer *answer = NULL;
  if (eng->committer && (answer = oee_calloc(1, sizeof(*answer))) == NULL) {
    return oee_error_set(err, OEE_ENOMEM, "out of memory retrying the task");
  }
  int rc = 0, *disk = NULL;
  oee_task *t = find_locked(eng, id, &rc, err);
  /* The dependencies it names that left memory are read (a few rounds at
   * most: each reads the ones that left meanwhile). */
  for (int round = 0; t != NULL; round++) {
    if ((rc = requeue_locked(eng, t, disk, err)) != OEE__GRAPH_READ_DISK) break;
    if (round == 8 || (rc = read_deps(eng, t, &disk, err)) != 0) {
      if (rc == OEE__GRAPH_READ_DISK) {
        rc = oee_error_set(err, OEE_ESTATE, "task %s: its dependencies kept changing; retry again",
                           id);
      }
      break;
    }
    t = eng->store->ops->lookup(eng->store, id);
    if (t == NULL) rc = oee_error_set(err, OEE_ENOENT, "task %s was deleted meanwhile", id);
  }
  const oee_task_info *now = NULL;
  if (rc == 0 && answer != NULL) {
    *answer = (retry_answer){
        .waiter.cb = retry_stored, .cb = cb, .arg = arg, .task = oee_task_info_ref(t->snap)};
    oee__durable_after(eng, &answer->waiter, t->snap->seq);
    answer = NULL;
  } else if (rc == 0) {
    now = oee_task_info_ref(t->snap);
  }
  oee__engine_unlock(eng);
  oee_free(answer);
  oee_free(disk);
  if (now != NULL) {
    cb(arg, 0, now, NULL);
    oee_task_info_unref(now);
  }
  return rc;
}

/* oee_engine_retry(): the asynchronous one and a wait. */
typedef struct retry_wait {
  oee__latch done;
  int rc;
  oee_error err;
  const oee_task_info *task;
} retry_wait;

static void retry_waited(void *arg, int rc, const oee_task_info *t, const oee_error *err) {
  retry_wait *w = arg;
  w->rc = rc;
  if (err != NULL) w->err = *err;
  w->task = t ? oee_task_info_ref(t) : NULL;
  oee__latch_set(&w->done);
}

int oee_engine_retry(oee_engine *eng, const char *id, const oee_task_info **out, oee_error *err) {
  retry_wait w = {.rc = 0};
  if (oee__latch_init(&w.done) != 0) return oee_error_set(err, OEE_ENOMEM, "out of memory");
  int rc = oee_engine_retry_async(eng, id, retry_waited, &w, err);
  if (rc == 0) {
    oee__latch_wait(&w.done);
    rc = w.rc;
    if (rc != 0 && err != NULL) *err = w.err;
  }
  oee__latch_destroy(&w.done);
  if (rc == 0 && out != NULL) {
    *out = w.task;
  } else {
    oee_task_info_unref(w.task);
  }
  return rc;
}
