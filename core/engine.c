/* engine.c - queue, worker pool and task lifecycle (see engine.h). */
#include "core/engine.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/sync.h"


/* ---------------------------------------------------------------- queue */

/* Higher priority first; among equals, the earlier submission. */
static int task_less(const void *a, const void *b) {
  const oee_task *x = a, *y = b;
  if (x->priority != y->priority) return x->priority > y->priority;
  return x->index < y->index;
}

static void task_setpos(void *e, size_t pos) {
  ((oee_task *)e)->heap_pos = pos == OEE_HEAP_NONE ? OEE_TASK_NOT_QUEUED : (uint32_t)pos;
}

/* ------------------------------------------------------------ lifecycle */

static void task_free(oee_task *t) {
  oee_task_info_unref(t->snap);
  if (t->payload) {
    if (t->payload->free) t->payload->free(t->payload->data);
    free(t->payload);
  }
  free(t);
}

static void drop_task(oee_task *t, void *arg) {
  (void)arg;
  task_free(t);
}

/*
 * Moves `t` to `to` (lock held): packs the next snapshot from `draft`
 * (which the caller filled from the current one), records and publishes it.
 * The caller checked the transition; only packing can fail.
 */
static int swap_snapshot(oee_engine *eng, oee_task *t, oee_task_info *draft) {
  oee_task_status from = t->snap->status;
  draft->seq = ++eng->last_seq;
  oee_task_info *next = oee__snap_pack(draft);
  if (next == NULL) {
    eng->last_seq--;
    return OEE_ENOMEM;
  }
  const oee_task_info *old = t->snap;
  t->snap = next;
  eng->store->ops->changed(eng->store, t, from);
  oee__bus_publish(eng->bus, next);
  oee_task_info_unref(old);
  return 0;
}

/* Finishes `t` (lock held). Out of memory here cannot be reported to anyone,
 * so the result text is dropped before giving up. */
static void finish_locked(oee_engine *eng, oee_task *t, oee_task_status to,
                          const char *result, const char *message) {
  oee_task_info d = *t->snap;
  d.status = to;
  d.completed_at_ns = oee_now_ns();
  d.result = result;
  d.error_message = message;
  if (swap_snapshot(eng, t, &d) == 0) return;
  d.result = "";
  d.error_message = "out of memory while recording the result";
  if (swap_snapshot(eng, t, &d) != 0) abort();
}

/* ------------------------------------------------------------- executors */

static executor *executor_find(oee_engine *eng, const char *type) {
  for (executor *e = eng->executors; e; e = e->next) {
    if (strcmp(e->type, type) == 0) return e;
  }
  return NULL;
}

int oee__engine_register_full(oee_engine *eng, const char *task_type,
                              oee_executor_fn fn, oee_validate_fn validate,
                              int flags, void *user_data) {
  if (eng == NULL || task_type == NULL || !task_type[0] || fn == NULL) {
    return OEE_EINVAL;
  }
  size_t len = strlen(task_type) + 1;
  executor *fresh = calloc(1, sizeof(*fresh) + len);
  if (fresh == NULL) return OEE_ENOMEM;
  memcpy(fresh->type, task_type, len);
  if (pthread_rwlock_wrlock(&eng->exec_lock) != 0) abort();
  executor *e = executor_find(eng, task_type);
  if (e == NULL) {
    e = fresh;
    e->next = eng->executors;
    eng->executors = e;
    fresh = NULL;
  }
  e->fn = fn;
  e->validate = validate;
  e->flags = flags;
  e->user_data = user_data;
  pthread_rwlock_unlock(&eng->exec_lock);
  free(fresh);
  return 0;
}

int oee_engine_register(oee_engine *eng, const char *task_type,
                        oee_executor_fn fn, void *user_data) {
  return oee__engine_register_full(eng, task_type, fn, NULL, 0, user_data);
}

/* Copies the executor entry for `type` into *out. 0 or OEE_ENOEXEC. */
static int executor_get(oee_engine *eng, const char *type, executor *out) {
  if (pthread_rwlock_rdlock(&eng->exec_lock) != 0) abort();
  executor *e = executor_find(eng, type);
  if (e) *out = *e;
  pthread_rwlock_unlock(&eng->exec_lock);
  return e ? 0 : OEE_ENOEXEC;
}

int oee_engine_has_executor(oee_engine *eng, const char *task_type) {
  executor e;
  return task_type && executor_get(eng, task_type, &e) == 0;
}

static int str_cmp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends s at buf[*len] if it fits in cap; *len grows regardless. */
static void append(char *buf, size_t cap, size_t *len, const char *s) {
  size_t n = strlen(s);
  if (*len + n < cap) memcpy(buf + *len, s, n + 1);
  *len += n;
}

size_t oee_engine_executor_names(oee_engine *eng, char *buf, size_t cap) {
  const char *names[64];
  size_t n = 0, need = 0;
  if (pthread_rwlock_rdlock(&eng->exec_lock) != 0) abort();
  for (executor *e = eng->executors; e && n < 64; e = e->next) {
    if (!(e->flags & OEE__EXEC_INTERNAL)) names[n++] = e->type;
  }
  qsort(names, n, sizeof(names[0]), str_cmp);
  if (cap > 0) buf[0] = '\0';
  for (size_t i = 0; i < n; i++) {
    if (i > 0) append(buf, cap, &need, ", ");
    append(buf, cap, &need, names[i]);
  }
  pthread_rwlock_unlock(&eng->exec_lock);
  return need;
}

/* ------------------------------------------------------------ create */

static int engine_init_locks(oee_engine *eng) {
  if (pthread_rwlock_init(&eng->exec_lock, NULL) != 0) return OEE_ENOMEM;
  pthread_mutex_init(&eng->lock, NULL);
  oee__cond_init(&eng->drain_cv);
  return 0;
}

static int register_builtins(oee_engine *eng) {
  int rc = oee__builtin_register(eng);
  if (rc == 0) rc = oee__exec_register(eng, eng->commands);
  if (rc == 0) rc = oee__pipeline_register(eng, eng->models);
  return rc;
}

int oee_engine_create(const oee_engine_config *cfg, oee_engine **out) {
  oee_engine_config defaults = {0};
  if (cfg == NULL) cfg = &defaults;
  if (out == NULL || cfg->num_workers < 0) return OEE_EINVAL;
  oee_engine *eng = calloc(1, sizeof(*eng));
  if (eng == NULL) return OEE_ENOMEM;
  eng->num_workers = cfg->num_workers ? cfg->num_workers : OEE_DEFAULT_WORKERS;
  eng->max_queue = cfg->max_queue;
  eng->result_max = cfg->result_max_bytes ? cfg->result_max_bytes : OEE_DEFAULT_RESULT_MAX_BYTES;
  eng->commands = cfg->commands;
  eng->models = cfg->models;
  eng->accepting = 1;
  oee_heap_init(&eng->queue, task_less, task_setpos);
  int rc = engine_init_locks(eng);
  if (rc != 0) {
    free(eng);
    return rc;
  }
  eng->store = oee__store_mem_create();
  eng->workers = calloc((size_t)eng->num_workers, sizeof(*eng->workers));
  for (int i = 0; eng->workers && i < eng->num_workers; i++) oee__cond_init(&eng->workers[i].wake);
  rc = eng->store && eng->workers ? oee__bus_create(&eng->bus) : OEE_ENOMEM;
  if (rc == 0) rc = register_builtins(eng);
  if (rc != 0) {
    oee_engine_destroy(eng);
    return rc;
  }
  *out = eng;
  return 0;
}

void oee_engine_destroy(oee_engine *eng) {
  if (eng == NULL) return;
  oee_engine_stop(eng, 0);
  if (eng->store) eng->store->ops->destroy(eng->store, drop_task, NULL);
  oee_heap_fini(&eng->queue);
  oee__bus_destroy(eng->bus);
  while (eng->executors) {
    executor *next = eng->executors->next;
    free(eng->executors);
    eng->executors = next;
  }
  for (int i = 0; i < eng->num_workers && eng->workers; i++) {
    pthread_cond_destroy(&eng->workers[i].wake);
  }
  free(eng->workers);
  pthread_cond_destroy(&eng->drain_cv);
  pthread_mutex_destroy(&eng->lock);
  pthread_rwlock_destroy(&eng->exec_lock);
  free(eng);
}

const oee_exec_table *oee__engine_commands(oee_engine *eng) { return eng->commands; }

const oee_model_table *oee__engine_models(oee_engine *eng) { return eng->models; }

/* ------------------------------------------------------------- workers */

static void running_link(oee_engine *eng, oee_job *j) {
  j->prev = NULL;
  j->next = eng->running;
  if (eng->running) eng->running->prev = j;
  eng->running = j;
  eng->running_jobs++;
}

static void running_unlink(oee_engine *eng, oee_job *j) {
  if (j->prev) {
    j->prev->next = j->next;
  } else {
    eng->running = j->next;
  }
  if (j->next) j->next->prev = j->prev;
  if (--eng->running_jobs == 0) oee__broadcast(&eng->drain_cv);
}

/* Takes the best queued task and marks it RUNNING (lock held). Returns the
 * job, or NULL when out of memory (the task is then left queued). */
static oee_job *job_start_locked(oee_engine *eng, worker *w) {
  oee_job *j = calloc(1, sizeof(*j));
  if (j == NULL || oee_token_create(&j->token) != 0) {
    free(j);
    return NULL;
  }
  oee_task *t = oee_heap_peek(&eng->queue);
  oee_task_info d = *t->snap;
  d.status = OEE_TASK_RUNNING;
  d.worker_id = w->id;
  d.started_at_ns = oee_now_ns();
  if (swap_snapshot(eng, t, &d) != 0) {
    oee_token_destroy(j->token);
    free(j);
    return NULL;
  }
  oee_heap_pop(&eng->queue);
  j->eng = eng;
  j->task = t;
  j->snap = oee_task_info_ref(t->snap);
  j->worker = w->id;
  t->token = j->token;
  running_link(eng, j);
  w->busy = 1;
  memcpy(w->current, t->snap->id, sizeof(w->current));
  return j;
}

static void job_run(oee_engine *eng, oee_job *j) {
  executor e;
  if (executor_get(eng, j->snap->task_type, &e) != 0) {
    oee_job_fail(j, "no executor registered for the task type");
    return;
  }
  e.fn(j, e.user_data);
}

/* Waits on the idle stack until a submit or stop takes this worker off it,
 * or until `deadline_ns` (0: none). Lock held. */
static void worker_idle(oee_engine *eng, worker *w, int64_t deadline_ns) {
  w->idle = 1;
  w->next_idle = eng->idle;
  eng->idle = w;
  while (w->idle && !eng->stopping) {
    if (deadline_ns == 0) {
      oee__wait(&w->wake, &eng->lock);
    } else if (oee__wait_until(&w->wake, &eng->lock, deadline_ns)) {
      break;
    }
  }
  if (w->idle) { /* timed out or stopping: take itself off the stack */
    worker **pp = &eng->idle;
    while (*pp != w) pp = &(*pp)->next_idle;
    *pp = w->next_idle;
    w->idle = 0;
  }
}

/* Wakes one idle worker, if any (lock held). */
static void wake_one(oee_engine *eng) {
  worker *w = eng->idle;
  if (w == NULL) return;
  eng->idle = w->next_idle;
  w->idle = 0;
  oee__signal(&w->wake);
}

static void *worker_main(void *arg) {
  worker *w = arg;
  oee_engine *eng = w->eng;
  oee__lock(&eng->lock);
  while (!eng->stopping) {
    if (eng->queue.len == 0) {
      worker_idle(eng, w, 0);
      continue;
    }
    oee_job *j = job_start_locked(eng, w);
    if (j == NULL) {
      /* Out of memory: back off briefly instead of spinning. */
      worker_idle(eng, w, oee__mono_ns() + 10000000);
      continue;
    }
    /* More work queued and someone idle: pass the baton before running. */
    if (eng->queue.len > 0) wake_one(eng);
    oee__unlock(&eng->lock);
    job_run(eng, j);
    oee__lock(&eng->lock);
    w->busy = 0;
    w->current[0] = '\0';
  }
  oee__unlock(&eng->lock);
  return NULL;
}

int oee_engine_start(oee_engine *eng) {
  oee__lock(&eng->lock);
  int rc = eng->started || eng->stopping ? OEE_EINVAL : 0;
  if (rc == 0) {
    eng->started = 1;
    eng->started_mono_ns = oee__mono_ns();
  }
  oee__unlock(&eng->lock);
  if (rc != 0) return rc;
  for (int i = 0; i < eng->num_workers; i++) {
    worker *w = &eng->workers[i];
    w->eng = eng;
    w->id = i;
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0) abort();
  }
  return 0;
}

void oee_engine_refuse_submissions(oee_engine *eng) {
  oee__lock(&eng->lock);
  eng->accepting = 0;
  oee__unlock(&eng->lock);
}

void oee_engine_cancel_running(oee_engine *eng) {
  oee__lock(&eng->lock);
  for (oee_job *j = eng->running; j; j = j->next) oee_token_cancel(j->token);
  oee__unlock(&eng->lock);
}

int oee_engine_running(oee_engine *eng) {
  oee__lock(&eng->lock);
  int r = eng->started && !eng->stopping;
  oee__unlock(&eng->lock);
  return r;
}

/* Waits for running jobs to end, cancelling them once `drain_ms` passed. */
static void drain_locked(oee_engine *eng, int64_t drain_ms) {
  int64_t deadline = oee__mono_ns() + drain_ms * 1000000;
  while (eng->running_jobs > 0) {
    if (drain_ms < 0) {
      oee__wait(&eng->drain_cv, &eng->lock);
    } else if (oee__wait_until(&eng->drain_cv, &eng->lock, deadline)) {
      break;
    }
  }
  for (oee_job *j = eng->running; j; j = j->next) oee_token_cancel(j->token);
  while (eng->running_jobs > 0) oee__wait(&eng->drain_cv, &eng->lock);
}

int oee_engine_stop(oee_engine *eng, int64_t drain_ms) {
  oee__lock(&eng->lock);
  eng->accepting = 0;
  int was_started = eng->started && !eng->stopping;
  eng->stopping = 1;
  for (int i = 0; eng->workers && i < eng->num_workers; i++) oee__signal(&eng->workers[i].wake);
  drain_locked(eng, drain_ms);
  oee__unlock(&eng->lock);
  if (!was_started) return 0;
  for (int i = 0; i < eng->num_workers; i++) {
    pthread_join(eng->workers[i].thread, NULL);
  }
  return 0;
}

/* ------------------------------------------------------------------ jobs */

const oee_task_info *oee_job_task(const oee_job *j) { return j->snap; }

const char *oee_job_context(const oee_job *j, const char *key) {
  return oee_task_info_context(j->snap, key);
}

oee_token *oee_job_token(oee_job *j) { return j->token; }

int oee_job_worker(const oee_job *j) { return j->worker; }

void *oee__job_payload(oee_job *j) { return j->task->payload ? j->task->payload->data : NULL; }

/* Cuts an over-long result and says so at its end (malloc'd or NULL). */
static char *truncate_result(const char *result, size_t max) {
  static const char marker[] = "\n[truncated: %zu of %zu bytes kept]";
  size_t len = strlen(result);
  char *out = malloc(max + sizeof(marker) + 48);
  if (out == NULL) return NULL;
  memcpy(out, result, max);
  snprintf(out + max, sizeof(marker) + 48, marker, max, len);
  return out;
}

static void job_finish(oee_job *j, oee_task_status to, const char *result,
                       const char *message) {
  oee_engine *eng = j->eng;
  char *cut = NULL;
  if (result && strlen(result) > eng->result_max) {
    cut = truncate_result(result, eng->result_max);
    result = cut ? cut : "";
  }
  oee__lock(&eng->lock);
  finish_locked(eng, j->task, to, result, message);
  j->task->token = NULL;
  worker *w = &eng->workers[j->worker];
  if (to == OEE_TASK_DONE) w->completed++;
  if (to == OEE_TASK_ERROR) w->failed++;
  running_unlink(eng, j);
  oee__unlock(&eng->lock);
  free(cut);
  oee_token_destroy(j->token);
  oee_task_info_unref(j->snap);
  free(j);
}

void oee_job_succeed(oee_job *j, const char *result) {
  job_finish(j, OEE_TASK_DONE, result ? result : "", "");
}

void oee_job_fail(oee_job *j, const char *message) {
  job_finish(j, OEE_TASK_ERROR, "", message && message[0] ? message : "failed");
}

void oee_job_cancelled(oee_job *j, const char *reason) {
  job_finish(j, OEE_TASK_CANCELLED, "", reason ? reason : "cancelled");
}

/* ---------------------------------------------------------------- submit */

/* The one place a submission's fields are judged; *err says why not. */
static int submit_check(oee_engine *eng, const oee_submit *req,
                        const void *payload, oee_error *err) {
  if (req == NULL) return oee_error_set(err, OEE_EINVAL, "no submission given");
  if (req->name == NULL || !req->name[0]) {
    return oee_error_set(err, OEE_EINVAL, "name must not be empty");
  }
  if (req->task_type == NULL || !req->task_type[0]) {
    return oee_error_set(err, OEE_EINVAL, "task_type must not be empty");
  }
  if (req->priority < OEE_PRIORITY_MIN || req->priority > OEE_PRIORITY_MAX) {
    return oee_error_set(err, OEE_EINVAL, "priority must be %d..%d, got %d",
                         OEE_PRIORITY_MIN, OEE_PRIORITY_MAX, req->priority);
  }
  executor e;
  if (executor_get(eng, req->task_type, &e) != 0) {
    char known[256];
    oee_engine_executor_names(eng, known, sizeof(known));
    return oee_error_set(err, OEE_ENOEXEC, "unknown task_type \"%.64s\"; known types: %s",
                         req->task_type, known);
  }
  if (payload == NULL && (e.flags & OEE__EXEC_INTERNAL)) {
    return oee_error_set(err, OEE_EINVAL,
                         "tasks of type \"%.64s\" cannot be submitted directly "
                         "(pipelines come only from a pipeline submission)",
                         req->task_type);
  }
  return e.validate ? e.validate(req, payload, e.user_data, err) : 0;
}

/* Builds the QUEUED snapshot (index and seq are filled in under the lock). */
static oee_task_info *build_queued(const oee_submit *req, int *rc, oee_error *err) {
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
  d.created_at_ns = oee_now_ns();
  oee_task_info *snap = oee__snap_pack(&d);
  if (ctx != buf) free(ctx);
  if (snap == NULL) *rc = oee_error_set(err, OEE_ENOMEM, "out of memory building the task");
  return snap;
}

static int enqueue_locked(oee_engine *eng, oee_task *t, oee_task_info *snap,
                          oee_error *err) {
  if (!eng->accepting) {
    return oee_error_set(err, OEE_ESTOPPED, "shutting down: no new tasks are accepted");
  }
  if (eng->max_queue && eng->queue.len >= eng->max_queue) {
    return oee_error_set(err, OEE_EFULL, "queue is full: max_queue=%zu tasks are already queued",
                         eng->max_queue);
  }
  if (oee_heap_reserve(&eng->queue, 1) != 0) {
    return oee_error_set(err, OEE_ENOMEM, "out of memory growing the queue");
  }
  snap->submit_index = t->index = eng->last_index + 1;
  snap->seq = eng->last_seq + 1;
  t->snap = snap;
  int rc = eng->store->ops->insert(eng->store, t);
  if (rc != 0) return oee_error_set(err, rc, "store refused the task: %s", oee_strerror(rc));
  eng->last_index++;
  eng->last_seq++;
  oee_heap_push(&eng->queue, t); /* reserved above: cannot fail */
  oee__bus_publish(eng->bus, snap);
  wake_one(eng);
  return 0;
}

/* The task record for a new submission; payload ownership moves into it. */
static oee_task *task_new(const oee_submit *req, void *payload, void (*payload_free)(void *)) {
  oee_task *t = calloc(1, sizeof(*t));
  if (t == NULL) return NULL;
  if (payload) {
    t->payload = malloc(sizeof(*t->payload));
    if (t->payload == NULL) {
      free(t);
      return NULL;
    }
    *t->payload = (oee_payload){payload, payload_free};
  }
  t->priority = req->priority;
  t->heap_pos = OEE_TASK_NOT_QUEUED;
  return t;
}

int oee__engine_submit_payload(oee_engine *eng, const oee_submit *req,
                               void *payload, void (*payload_free)(void *),
                               const oee_task_info **out, oee_error *err) {
  if (err != NULL) *err = (oee_error){0};
  int rc = submit_check(eng, req, payload, err);
  oee_task *t = NULL;
  oee_task_info *snap = rc == 0 ? build_queued(req, &rc, err) : NULL;
  if (rc == 0 && (t = task_new(req, payload, payload_free)) == NULL) {
    rc = oee_error_set(err, OEE_ENOMEM, "out of memory creating the task");
  }
  if (rc != 0) goto fail;
  oee__lock(&eng->lock);
  rc = enqueue_locked(eng, t, snap, err);
  if (rc == 0 && out) *out = oee_task_info_ref(snap);
  oee__unlock(&eng->lock);
  if (rc == 0) return 0;
  free(t->payload); /* the wrapper only: the data is freed below, once */
  free(t);
fail:
  oee_task_info_unref(snap);
  if (payload && payload_free) payload_free(payload);
  return rc;
}

int oee_engine_submit(oee_engine *eng, const oee_submit *req,
                      const oee_task_info **out, oee_error *err) {
  return oee__engine_submit_payload(eng, req, NULL, NULL, out, err);
}

/* ------------------------------------------------------- cancel and read */

int oee_engine_cancel(oee_engine *eng, const char *id, int *cancelled,
                      const oee_task_info **out) {
  if (!oee_id_valid(id)) return OEE_EINVAL;
  int rc = 0, did = 0;
  oee__lock(&eng->lock);
  oee_task *t = eng->store->ops->lookup(eng->store, id);
  if (t == NULL) {
    rc = OEE_ENOENT;
  } else if (t->snap->status == OEE_TASK_QUEUED) {
    oee_heap_remove(&eng->queue, t->heap_pos);
    finish_locked(eng, t, OEE_TASK_CANCELLED, "", "cancelled while queued");
    did = 1;
  } else if (t->snap->status == OEE_TASK_RUNNING) {
    oee_token_cancel(t->token);
    did = 1;
  }
  if (rc == 0 && out) *out = oee_task_info_ref(t->snap);
  oee__unlock(&eng->lock);
  if (cancelled) *cancelled = did;
  return rc;
}

int oee_engine_get(oee_engine *eng, const char *id, const oee_task_info **out) {
  if (!oee_id_valid(id)) return OEE_EINVAL;
  oee__lock(&eng->lock);
  oee_task *t = eng->store->ops->lookup(eng->store, id);
  if (t) *out = oee_task_info_ref(t->snap);
  oee__unlock(&eng->lock);
  return t ? 0 : OEE_ENOENT;
}

int oee__engine_with_payload(oee_engine *eng, const char *id,
                             const char *task_type,
                             void (*fn)(void *, const oee_task_info *, void *),
                             void *arg) {
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

long oee_engine_clear_completed(oee_engine *eng, long keep_recent) {
  if (keep_recent < 0) return OEE_EINVAL;
  oee__lock(&eng->lock);
  long n = eng->store->ops->clear_completed(eng->store, keep_recent, drop_task, NULL);
  oee__unlock(&eng->lock);
  /* Freed snapshots are scattered small blocks: hand the pages back to the
   * system after a large clear, or RSS stays at its peak. */
  if (n >= 4096) malloc_trim(0);
  return n;
}

int oee_engine_status(oee_engine *eng, oee_status *out) {
  memset(out, 0, sizeof(*out));
  out->workers = calloc((size_t)eng->num_workers, sizeof(*out->workers));
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
  free(st->workers);
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

int oee_engine_subscribe(oee_engine *eng, const oee_sub_filter *filter,
                         size_t capacity, int snapshot, oee_sub **out) {
  if (capacity == 0) capacity = OEE_DEFAULT_SUB_CAPACITY;
  collect c = {filter, NULL, 0, capacity, 0};
  if (snapshot && (c.snaps = malloc(capacity * sizeof(*c.snaps))) == NULL) {
    return OEE_ENOMEM;
  }
  oee__lock(&eng->lock);
  if (snapshot) eng->store->ops->foreach(eng->store, collect_visit, &c);
  int rc = c.overflow ? OEE_EOVERFLOW
                      : oee__bus_subscribe(eng->bus, filter, capacity, c.snaps,
                                           c.len, out);
  oee__unlock(&eng->lock);
  free(c.snaps);
  return rc;
}
