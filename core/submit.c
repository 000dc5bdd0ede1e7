/*
 * submit.c - the one path by which tasks enter the engine: validation,
 * the QUEUED snapshot, and enqueueing under the engine lock.
 * Lock order: eng->exec_lock (alone, while validating), then
 * eng->lock -> bus locks (events.c).
 */
#include "core/engine.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/db.h"
#include "core/oee_alloc.h"
#include "core/sync.h"

/* ---------------------------------------------------------------- submit */

/* 1 for a finite number >= 0 (NaN and the infinities are refused). */
static int finite_non_negative(double v) { return isfinite(v) && v >= 0; }

/* The ids of depends_on: at most max_dependencies, each a task id, none
 * twice (whether they exist is decided under the lock). */
static int deps_check(const oee_engine *eng, const oee_submit *req, oee_error *err) {
  size_t n = req->depends_on_len;
  if (n > eng->max_dependencies) {
    return oee_error_set(err, OEE_EINVAL, "depends_on has %zu ids; at most %zu are allowed", n,
                         eng->max_dependencies);
  }
  for (size_t i = 0; i < n; i++) {
    const char *id = req->depends_on[i];
    if (id == NULL || !oee_id_valid(id)) {
      return oee_error_set(err, OEE_EINVAL, "depends_on[%zu] \"%.64s\" is not a task id", i,
                           id ? id : "");
    }
    for (size_t j = 0; j < i; j++) {
      if (strcasecmp(req->depends_on[j], id) == 0) {
        return oee_error_set(err, OEE_EINVAL, "depends_on[%zu] repeats depends_on[%zu] (%s)", i, j,
                             id);
      }
    }
  }
  return 0;
}

/* The task-semantics fields of a submission. */
static int semantics_check(const oee_engine *eng, const oee_submit *req, oee_error *err) {
  if (req->max_attempts != 0 &&
      (req->max_attempts < 1 || req->max_attempts > OEE_MAX_ATTEMPTS_LIMIT)) {
    return oee_error_set(err, OEE_EINVAL, "max_attempts must be 1..%d, got %d",
                         OEE_MAX_ATTEMPTS_LIMIT, req->max_attempts);
  }
  if (req->has_backoff && !finite_non_negative(req->backoff_seconds)) {
    return oee_error_set(err, OEE_EINVAL, "backoff_seconds must be a finite number >= 0, got %g",
                         req->backoff_seconds);
  }
  if (req->has_max_backoff && !finite_non_negative(req->max_backoff_seconds)) {
    return oee_error_set(err, OEE_EINVAL,
                         "max_backoff_seconds must be a finite number >= 0, got %g",
                         req->max_backoff_seconds);
  }
  if (!finite_non_negative(req->timeout_seconds)) {
    return oee_error_set(err, OEE_EINVAL,
                         "timeout_seconds must be a finite number >= 0 (0 = none), got %g",
                         req->timeout_seconds);
  }
  size_t key = req->idempotency_key ? strlen(req->idempotency_key) : 0;
  if (key > OEE_IDEMPOTENCY_KEY_MAX) {
    return oee_error_set(err, OEE_EINVAL, "idempotency_key is %zu bytes; at most %d", key,
                         OEE_IDEMPOTENCY_KEY_MAX);
  }
  return deps_check(eng, req, err);
  return 0;
}

/* The one place a submission's fields are judged; *err says why not.
 * *slot (may be NULL) gets the type's metrics slot (-1: none). */
static int submit_check(oee_engine *eng, const oee_submit *req, const void *payload, int *slot,
                        oee_error *err) {
  if (req == NULL) return oee_error_set(err, OEE_EINVAL, "no submission given");
  if (req->name == NULL || !req->name[0]) {
    return oee_error_set(err, OEE_EINVAL, "name must not be empty");
  }
  if (req->task_type == NULL || !req->task_type[0]) {
    return oee_error_set(err, OEE_EINVAL, "task_type must not be empty");
  }
  if (req->priority < OEE_PRIORITY_MIN || req->priority > OEE_PRIORITY_MAX) {
    return oee_error_set(err, OEE_EINVAL, "priority must be %d..%d, got %d", OEE_PRIORITY_MIN,
                         OEE_PRIORITY_MAX, req->priority);
  }
  int rc = semantics_check(eng, req, err);
  if (rc != 0) return rc;
  executor e;
  if (oee__executor_get(eng, req->task_type, &e) != 0) {
    char known[OEE_ERROR_MESSAGE_MAX];
    oee_engine_executor_names(eng, known, sizeof(known));
    return oee_error_set(err, OEE_ENOEXEC, "unknown task_type \"%.64s\"; known types: %s",
                         req->task_type, known);
  }
  if (slot != NULL) *slot = e.metrics_slot;
  if (payload == NULL && (e.flags & OEE__EXEC_INTERNAL)) {
    return oee_error_set(err, OEE_EINVAL,
                         "tasks of type \"%.64s\" cannot be submitted directly "
                         "(pipelines come only from a pipeline submission)",
                         req->task_type);
  }
  return e.validate ? e.validate(req, payload, e.user_data, err) : 0;
}

int oee__submit_check(oee_engine *eng, const oee_submit *req, oee_error *err) {
  return submit_check(eng, req, NULL, NULL, err);
}

/* Builds the QUEUED snapshot (index, seq and created_at are filled in under
 * the lock). */
static oee_task_info *build_queued(oee_engine *eng, const oee_submit *req, int *rc,
                                   oee_error *err) {
  oee_kv buf[8], *ctx = NULL;
  *rc = oee__context_sorted(req->context, req->context_len, buf, 8, &ctx, err);
  if (*rc != 0) return NULL;
  oee_task_info d = {0};
  oee__new_id(d.id);
  d.name = req->name;
  d.task_type = req->task_type;
  d.context = ctx;
  d.context_len = req->context_len;
  d.status = OEE_TASK_QUEUED;
  d.priority = req->priority;
  d.worker_id = -1;
  d.max_attempts = req->max_attempts ? req->max_attempts : eng->default_max_attempts;
  d.backoff_seconds = req->has_backoff ? req->backoff_seconds : OEE_DEFAULT_BACKOFF_SECONDS;
  d.max_backoff_seconds =
      req->has_max_backoff ? req->max_backoff_seconds : OEE_DEFAULT_MAX_BACKOFF_SECONDS;
  d.timeout_seconds = req->timeout_seconds;
  d.idempotency_key = req->idempotency_key;
  /* A time in the future holds the task back; a past one is now. */
  if (req->has_run_at && req->run_at_ns > oee_now_ns()) {
    d.status = OEE_TASK_SCHEDULED;
    d.run_at_ns = req->run_at_ns;
  }
  d.depends_on = req->depends_on;
  d.depends_on_len = req->depends_on_len;
  d.schedule_id = req->schedule_id;
  oee_task_info *snap = oee__engine_pack(eng, &d);
  if (ctx != buf) oee_free(ctx);
  if (snap == NULL) *rc = oee_error_set(err, OEE_ENOMEM, "out of memory building the task");
  /* Ids are kept in lower case, the form they are looked up in (the
   * snapshot is not shared yet, so its strings are still writable). */
  for (size_t i = 0; snap != NULL && i < snap->depends_on_len; i++) {
    for (char *c = (char *)snap->depends_on[i]; *c; c++) *c = (char)tolower((unsigned char)*c);
  }
  return snap;
}

uint64_t oee__task_bytes(const oee_task_info *t) {
  uint64_t n = strlen(t->name) + strlen(t->task_type);
  for (size_t i = 0; i < t->context_len; i++) {
    n += strlen(t->context[i].key) + strlen(t->context[i].value);
  }
  return n;
}

int oee__queue_limits(oee_engine *eng, uint64_t bytes, oee_error *err) {
  if (!eng->accepting) {
    return oee_error_set(err, OEE_ESTOPPED, "shutting down: no new tasks are accepted");
  }
  /* max_queue counts QUEUED and SCHEDULED tasks (the ones waiting for
   * dependencies are in neither heap, so the store's counts say). */
  uint64_t by[OEE_TASK_STATUS_COUNT], total;
  eng->store->ops->counts(eng->store, by, &total);
  if (eng->max_queue &&
      by[OEE_TASK_QUEUED] + by[OEE_TASK_SCHEDULED] + eng->pending_submits >= eng->max_queue) {
    return oee_error_set(err, OEE_EFULL,
                         "queue is full: max_queue=%zu tasks are already queued or scheduled",
                         eng->max_queue);
  }
  if (eng->max_queue_bytes && eng->queue_bytes + bytes > eng->max_queue_bytes) {
    return oee_error_set(err, OEE_EFULL,
                         "queue is full: unfinished tasks hold %llu bytes and this one %llu; "
                         "the limit max_queue_bytes is %llu",
                         (unsigned long long)eng->queue_bytes, (unsigned long long)bytes,
                         (unsigned long long)eng->max_queue_bytes);
  }
  return 0;
}

/* Numbers the task (lock held) and queues it, or, in a durable engine,
 * hands it to the committer, which queues it once stored and calls cb.
 * With dependencies, OEE__GRAPH_READ_DISK asks the caller to read the
 * ones disk[] marks (see oee__graph_resolve()). */
static int enqueue_locked(oee_engine *eng, oee_task *t, oee_task_info *snap, int *disk,
                          oee_submit_cb cb, void *arg, oee_error *err) {
  uint64_t bytes = oee__task_bytes(snap);
  int rc = oee__queue_limits(eng, bytes, err);
  if (rc != 0) return rc;
  t->snap = snap;
  int waits = 0;
  if (snap->depends_on_len > 0 && (rc = oee__graph_resolve(eng, t, disk, &waits, err)) != 0) {
    return rc;
  }
  /* Not shared yet: still writable. */
  if (waits) snap->status = OEE_TASK_SCHEDULED;
  snap->submit_index = t->index = eng->last_index + 1;
  snap->seq = eng->last_seq + 1;
  /* Taken with the index, so creation time order is FIFO order. */
  snap->created_at_ns = snap->changed_at_ns = oee_now_ns();
  /* A schedule's firing is keyed by its time: no other firing repeats it,
   * and after a restart the database's index answers (key_on_disk), so a
   * durable engine keeps no memory per firing for its window (10,000
   * schedules a minute would otherwise hold 14 million keys a day). */
  int keyed = snap->idempotency_key[0] != '\0' && !(eng->committer && snap->schedule_id[0]);
  if (keyed && oee__keys_add(eng, snap->idempotency_key, snap) != 0) {
    oee__graph_forget(t);
    return oee_error_set(err, OEE_ENOMEM, "out of memory recording the idempotency_key");
  }
  if (eng->committer) {
    rc = oee__durable_submit_locked(eng, t, cb, arg, err);
  } else if (oee__queue_reserve(eng, snap->task_type, 1) != 0 ||
             oee_heap_reserve(&eng->scheduled, 1) != 0) {
    rc = oee_error_set(err, OEE_ENOMEM, "out of memory growing the queue");
  } else if ((rc = eng->store->ops->insert(eng->store, t)) != 0) {
    oee_error_set(err, rc, "store refused the task: %s", oee_strerror(rc));
  } else {
    oee__task_place(eng, t); /* reserved above: cannot fail */
    oee__bus_publish(eng->bus, snap);
    oee__graph_placed(eng, t); /* a dependency failed already: it ends now */
  }
  if (rc != 0) {
    if (keyed) oee__keys_drop(eng, snap->idempotency_key, snap->id);
    oee__graph_forget(t);
    return rc;
  }
  eng->last_index++;
  eng->last_seq++;
  eng->queue_bytes += bytes;
  /* The memory store acknowledges now; a durable one once stored. */
  if (!eng->committer) oee__metrics_submitted(&eng->metrics, t);
  return 0;
}

/* A submission's memory for reading its dependencies from the database
 * (see oee__graph_resolve()); NULL without dependencies or a database. */
static int *disk_answers(const oee_engine *eng, const oee_task_info *snap, int *rc,
                         oee_error *err) {
  if (snap->depends_on_len == 0 || eng->db == NULL) return NULL;
  int *disk = oee_calloc(snap->depends_on_len, sizeof(*disk));
  if (disk == NULL) *rc = oee_error_set(err, OEE_ENOMEM, "out of memory reading depends_on");
  return disk;
}

/* ---------------------------------------------------------- duplicates */

/* A duplicate's answer, given once the task it repeats is stored. */
typedef struct dup_answer {
  oee__stored_waiter waiter; /* first: the callback casts back */
  oee_engine *eng;
  char id[OEE_ID_LEN + 1];
  oee_submit_cb cb;
  void *arg;
} dup_answer;

/* The task a duplicate repeats, as readers see it (no lock held): from
 * memory, else from its row. */
static const oee_task_info *repeated(oee_engine *eng, const char *id) {
  const oee_task_info *t = NULL;
  return oee_engine_get(eng, id, &t) == 0 ? t : NULL;
}

static void dup_stored(oee__stored_waiter *w, int rc) {
  dup_answer *a = (dup_answer *)w;
  const oee_task_info *t = rc == 0 ? repeated(a->eng, a->id) : NULL;
  if (t != NULL) {
    a->cb(a->arg, OEE_DUPLICATE, t, NULL);
  } else {
    oee_error e;
    if (rc == 0) {
      rc = OEE_ENOENT;
      oee_error_set(&e, rc,
                    "the task with this idempotency_key (%s) was deleted before this "
                    "repeat could be answered",
                    a->id);
    } else {
      oee_error_set(&e, rc, "the task with this idempotency_key (%s) could not be stored: %s",
                    a->id, oee_strerror(rc));
    }
    a->cb(a->arg, rc, NULL, &e);
  }
  oee_task_info_unref(t);
  oee_free(a);
}

/* What a keyed submission repeats (lock held): 0 when it is new; 1 when
 * it repeats a task answered now (*now, a reference); 2 when it repeats a
 * task whose acknowledgement is still on its way (answered by then).
 * `on_disk` is the stored task with the key, read before the lock. A key
 * whose task was deleted (cleared, retention) is free again. OEE_ENOMEM. */
static int duplicate_locked(oee_engine *eng, const char *key, const oee_task_info *on_disk,
                            oee_submit_cb cb, void *arg, const oee_task_info **now) {
  const oee__key *k = oee__keys_find(eng, key, oee_now_ns());
  if (k == NULL) {
    if (on_disk == NULL) return 0;
    *now = oee_task_info_ref(on_disk); /* used before this process */
    return 1;
  }
  oee_task *orig = eng->store->ops->lookup(eng->store, oee__key_id(k));
  if (orig != NULL) {
    *now = oee_task_info_ref(oee__task_shown(orig));
    return 1;
  }
  if (eng->committer && oee__key_seq(k) > oee__bus_published(eng->bus)) {
    dup_answer *a = oee_malloc(sizeof(*a));
    if (a == NULL) return OEE_ENOMEM;
    *a = (dup_answer){.waiter.cb = dup_stored, .eng = eng, .cb = cb, .arg = arg};
    memcpy(a->id, oee__key_id(k), sizeof(a->id));
    oee__durable_after(eng, &a->waiter, oee__key_seq(k));
    return 2;
  }
  if (on_disk != NULL && strcmp(on_disk->id, oee__key_id(k)) == 0) {
    *now = oee_task_info_ref(on_disk); /* finished and only on disk */
    return 1;
  }
  /* The task is gone (cleared, or deleted by retention): the key is free
   * again. */
  oee__keys_drop(eng, key, oee__key_id(k));
  return 0;
}

/* The task record for a new submission; payload ownership moves into it. */
static oee_task *task_new(const oee_submit *req, void *payload, const oee_payload_ops *ops,
                          int slot) {
  /* malloc and a compound literal: calloc costs more, and every field is
   * named here anyway (the rest are zero). */
  oee_task *t = oee_malloc(sizeof(*t));
  if (t == NULL) return NULL;
  *t = (oee_task){.priority = req->priority,
                  .heap_pos = OEE_TASK_NOT_QUEUED,
                  .metrics_slot = slot >= 0 ? slot + 1 : -1}; /* see metrics.c */
  if (payload) {
    t->payload = oee_malloc(sizeof(*t->payload));
    if (t->payload == NULL) {
      oee_free(t);
      return NULL;
    }
    *t->payload = (oee_payload){payload, ops};
  }
  return t;
}

/* Everything of a submission that can fail without the lock: the checks,
 * the snapshot and the record. On failure the payload is freed. */
static int prepare(oee_engine *eng, const oee_submit *req, void *payload,
                   const oee_payload_ops *ops, oee_task **t, oee_task_info **snap, oee_error *err) {
  if (err != NULL) *err = (oee_error){0};
  *t = NULL;
  *snap = NULL;
  int slot = -1;
  int rc = submit_check(eng, req, payload, &slot, err);
  if (rc == 0) *snap = build_queued(eng, req, &rc, err);
  if (rc == 0 && (*t = task_new(req, payload, ops, slot)) == NULL) {
    rc = oee_error_set(err, OEE_ENOMEM, "out of memory creating the task");
  }
  if (rc != 0) {
    oee_task_info_unref(*snap);
    if (payload && ops && ops->free) ops->free(payload);
  }
  return rc;
}

/* Undoes prepare() after the engine refused the task. */
static void discard(oee_task *t, oee_task_info *snap, void *payload, const oee_payload_ops *ops) {
  oee__graph_free(t);
  oee_free(t->payload); /* the wrapper only: the data is freed below, once */
  oee_free(t);
  oee_task_info_unref(snap);
  if (payload && ops && ops->free) ops->free(payload);
}

/* A key used before this process started (or by a task that left memory)
 * is found in the database, read before the engine lock is taken. */
static int key_on_disk(oee_engine *eng, const char *key, const oee_task_info **out,
                       oee_error *err) {
  *out = NULL;
  if (key[0] == '\0' || eng->db == NULL) return 0;
  int64_t after = oee_now_ns() - (int64_t)eng->idempotency_window_ns;
  int rc = oee_db_find_key(eng->db, key, after, out, err);
  return rc == OEE_ENOENT ? 0 : rc;
}

/* How many times a submission reads dependencies that left memory before
 * it gives up (each read is of ones that left memory meanwhile). */
#define DEP_READ_ROUNDS 8

static int submit_async(oee_engine *eng, const oee_submit *req, void *payload,
                        const oee_payload_ops *ops, oee_submit_cb cb, void *arg, int key_is_new,
                        oee_error *err);

int oee__engine_submit_async(oee_engine *eng, const oee_submit *req, void *payload,
                             const oee_payload_ops *ops, oee_submit_cb cb, void *arg,
                             oee_error *err) {
  return submit_async(eng, req, payload, ops, cb, arg, 0, err);
}

int oee__engine_submit_new_key(oee_engine *eng, const oee_submit *req, oee_submit_cb cb, void *arg,
                               oee_error *err) {
  return submit_async(eng, req, NULL, NULL, cb, arg, 1, err);
}

/* One attempt under the engine lock: a repeated key is answered (*dup
 * 1 or 2, see duplicate_locked()), else the task is enqueued; *now gets
 * what the caller is answered with at once. OEE__GRAPH_READ_DISK when
 * dependencies must be read first (see enqueue_locked()). */
static int admit_locked(oee_engine *eng, oee_task *t, oee_task_info *snap, int *disk,
                        const oee_task_info *on_disk, oee_submit_cb cb, void *arg, int *dup,
                        const oee_task_info **now, oee_error *err) {
  const char *key = snap->idempotency_key;
  *dup = key[0] ? duplicate_locked(eng, key, on_disk, cb, arg, now) : 0;
  if (*dup < 0)
    return oee_error_set(err, *dup, "out of memory answering a repeated idempotency_key");
  if (*dup > 0) return 0;
  int rc = enqueue_locked(eng, t, snap, disk, cb, arg, err);
  /* The memory store acknowledges at once, with a reference held because
   * a worker may replace the snapshot as soon as the lock is released (and
   * a failed dependency ended it already). */
  if (rc == 0 && !eng->committer) *now = oee_task_info_ref(t->snap);
  return rc;
}

static int submit_async(oee_engine *eng, const oee_submit *req, void *payload,
                        const oee_payload_ops *ops, oee_submit_cb cb, void *arg, int key_is_new,
                        oee_error *err) {
  oee_task *t;
  oee_task_info *snap;
  int rc = prepare(eng, req, payload, ops, &t, &snap, err);
  if (rc != 0) return rc;
  const char *key = snap->idempotency_key;
  const oee_task_info *on_disk = NULL;
  int *disk = disk_answers(eng, snap, &rc, err);
  if (rc != 0 || (!key_is_new && (rc = key_on_disk(eng, key, &on_disk, err)) != 0)) {
    oee_free(disk);
    discard(t, snap, payload, ops);
    return rc;
  }
  const oee_task_info *now = NULL; /* answered at once: the task or a duplicate's */
  int dup = 0;
  for (int round = 0;; round++) {
    oee__lock(&eng->lock);
    oee__engine_defer_wakes(eng); /* a worker woken for the task: after the unlock below */
    rc = admit_locked(eng, t, snap, disk, on_disk, cb, arg, &dup, &now, err);
    if (rc != OEE__GRAPH_READ_DISK) break;
    oee__engine_flush_wakes(eng);
    oee__unlock(&eng->lock);
    rc = round < DEP_READ_ROUNDS ? oee__graph_read(eng, snap, disk, err)
                                 : oee_error_set(err, OEE_ESTATE,
                                                 "depends_on: the dependencies kept changing "
                                                 "while they were read; submit again");
    if (rc != 0) {
      oee__lock(&eng->lock);
      break;
    }
  }
  oee__wakes later; /* the worker for the task is woken after the answer */
  oee__engine_unlock_later(eng, &later);
  oee_free(disk);
  oee_task_info_unref(on_disk);
  if (rc != 0 || dup != 0) discard(t, snap, payload, ops); /* a duplicate creates nothing */
  if (rc == 0 && now != NULL) cb(arg, dup ? OEE_DUPLICATE : 0, now, NULL);
  oee__engine_signal(&later);
  oee_task_info_unref(now);
  return rc;
}

/* A synchronous submission waiting for a durable engine's acknowledgement. */
typedef struct waiter {
  pthread_mutex_t lock;
  pthread_cond_t cv;
  int done, rc;
  const oee_task_info *task;
  oee_error err;
} waiter;

static void waiter_wake(void *arg, int rc, const oee_task_info *task, const oee_error *err) {
  waiter *w = arg;
  oee__lock(&w->lock);
  w->rc = rc;
  w->task = task ? oee_task_info_ref(task) : NULL;
  if (err != NULL) w->err = *err;
  w->done = 1;
  oee__signal(&w->cv);
  oee__unlock(&w->lock);
}

static int submit_and_wait(oee_engine *eng, const oee_submit *req, void *payload,
                           const oee_payload_ops *ops, const oee_task_info **out, oee_error *err) {
  waiter w = {.done = 0};
  if (pthread_mutex_init(&w.lock, NULL) != 0) {
    if (payload && ops && ops->free) ops->free(payload);
    return oee_error_set(err, OEE_ENOMEM, "cannot create a lock to wait on");
  }
  if (pthread_cond_init(&w.cv, NULL) != 0) {
    pthread_mutex_destroy(&w.lock);
    if (payload && ops && ops->free) ops->free(payload);
    return oee_error_set(err, OEE_ENOMEM, "cannot create a condition to wait on");
  }
  int rc = oee__engine_submit_async(eng, req, payload, ops, waiter_wake, &w, err);
  if (rc == 0) {
    oee__lock(&w.lock);
    while (!w.done) oee__wait(&w.cv, &w.lock);
    oee__unlock(&w.lock);
    rc = w.rc;
    if (rc != 0 && rc != OEE_DUPLICATE && err != NULL) *err = w.err;
    if ((rc == 0 || rc == OEE_DUPLICATE) && out != NULL) {
      *out = w.task;
    } else {
      oee_task_info_unref(w.task);
    }
  }
  pthread_cond_destroy(&w.cv);
  pthread_mutex_destroy(&w.lock);
  return rc;
}

int oee__engine_submit_payload(oee_engine *eng, const oee_submit *req, void *payload,
                               const oee_payload_ops *ops, const oee_task_info **out,
                               oee_error *err) {
  /* The durable engine answers on its commit thread, and so may a repeated
   * key: wait for the answer. */
  if (eng->committer || (req->idempotency_key && req->idempotency_key[0])) {
    return submit_and_wait(eng, req, payload, ops, out, err);
  }
  oee_task *t;
  oee_task_info *snap;
  int rc = prepare(eng, req, payload, ops, &t, &snap, err);
  if (rc != 0) return rc;
  oee__lock(&eng->lock);
  rc = enqueue_locked(eng, t, snap, NULL, NULL, NULL, err);
  if (rc == 0 && out) *out = oee_task_info_ref(t->snap);
  oee__engine_unlock(eng);
  if (rc != 0) discard(t, snap, payload, ops);
  return rc;
}

/* schedule_id belongs to the engine's schedules (schedule.c). */
static int caller_fields(const oee_submit *req, oee_error *err) {
  if (req != NULL && req->schedule_id != NULL) {
    return oee_error_set(err, OEE_EINVAL, "schedule_id is set only by the engine's schedules");
  }
  return 0;
}

int oee_engine_submit(oee_engine *eng, const oee_submit *req, const oee_task_info **out,
                      oee_error *err) {
  int rc = caller_fields(req, err);
  return rc ? rc : oee__engine_submit_payload(eng, req, NULL, NULL, out, err);
}

int oee_engine_submit_async(oee_engine *eng, const oee_submit *req, oee_submit_cb cb, void *arg,
                            oee_error *err) {
  if (cb == NULL) return oee_error_set(err, OEE_EINVAL, "a callback is required");
  int rc = caller_fields(req, err);
  if (rc != 0) return rc;
  return oee__engine_submit_async(eng, req, NULL, NULL, cb, arg, err);
}
