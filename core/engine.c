/*
 * engine.c - engine lifecycle (create, start, stop, destroy) and the worker
 * threads that take queued tasks and run them (see engine.h for the design).
 * Lock order: eng->lock -> bus locks (events.c) -> token lock (engine.h).
 */
#include "core/engine.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "core/committer.h"
#include "core/oee_alloc.h"
#include "core/sync.h"

/* ---------------------------------------------------------------- queue */

/* Higher priority first; among equals, the earlier submission. */

/* ------------------------------------------------------------ lifecycle */

void oee__task_free(oee_task *t) {
  oee__graph_free(t);
  oee_task_info_unref(t->snap);
  oee_task_info_unref(t->shown);
  if (t->payload) {
    if (t->payload->ops && t->payload->ops->free) t->payload->ops->free(t->payload->data);
    oee_free(t->payload);
  }
  oee_free(t);
}

void oee__task_drop(oee_task *t, void *arg) {
  (void)arg;
  oee__task_free(t);
}

/* ------------------------------------------------------------ create */

/* Makes the engine's locks; on failure none is left to destroy. */
static int engine_init_locks(oee_engine *eng) {
  if (pthread_rwlock_init(&eng->exec_lock, NULL) != 0) return OEE_ENOMEM;
  if (oee__mutex_init(&eng->lock) != 0) goto no_mutex;
  if (oee__cond_init(&eng->drain_cv) != 0) goto no_cond;
  if (oee__cond_init(&eng->retention_cv) != 0) goto no_retention_cond;
  if (oee__cond_init(&eng->timer_cv) != 0) goto no_timer_cond;
  if (oee__metrics_init(&eng->metrics) != 0) goto no_metrics;
  return 0;
no_metrics:
  pthread_cond_destroy(&eng->timer_cv);
no_timer_cond:
  pthread_cond_destroy(&eng->retention_cv);
no_retention_cond:
  pthread_cond_destroy(&eng->drain_cv);
no_cond:
  pthread_mutex_destroy(&eng->lock);
no_mutex:
  pthread_rwlock_destroy(&eng->exec_lock);
  return OEE_ENOMEM;
}

/* The worker slots with their condition variables; on failure eng->workers
 * stays NULL and nothing is left to destroy. */
static int workers_create(oee_engine *eng) {
  worker *w = oee_calloc((size_t)eng->num_workers, sizeof(*w));
  if (w == NULL) return OEE_ENOMEM;
  for (int i = 0; i < eng->num_workers; i++) {
    if (oee__cond_init(&w[i].wake) != 0) {
      while (i-- > 0) pthread_cond_destroy(&w[i].wake);
      oee_free(w);
      return OEE_ENOMEM;
    }
  }
  eng->workers = w;
  return 0;
}

static int register_builtins(oee_engine *eng) {
  int rc = oee__builtin_register(eng);
  if (rc == 0) rc = oee__exec_register(eng, eng->commands);
  if (rc == 0) rc = oee__pipeline_register(eng, eng->models);
  return rc;
}

/* What the config adds to a fresh engine: quotas, remote types, the
 * store (which recovers the tasks, so it comes last). */
static int open_config_parts(oee_engine *eng, const oee_engine_config *cfg, oee_error *err) {
  int rc = oee__quota_init(eng, cfg->type_limits, cfg->n_type_limits, cfg->remote_types,
                           cfg->n_remote_types, err);
  if (rc == 0 && cfg->n_remote_types > 0) {
    rc = oee__remote_init(eng, cfg->remote_types, cfg->n_remote_types, err);
  }
  if (rc == 0 && cfg->data_dir != NULL && cfg->data_dir[0] != '\0') {
    rc = oee__durable_open(eng, cfg, err);
  }
  return rc;
}

int oee_engine_create(const oee_engine_config *cfg, oee_engine **out) {
  return oee_engine_open(cfg, out, NULL);
}

/* The engine's settings from cfg, with the defaults for what it leaves 0. */
static void copy_settings(oee_engine *eng, const oee_engine_config *cfg) {
  eng->num_workers = cfg->num_workers ? cfg->num_workers : OEE_DEFAULT_WORKERS;
  eng->max_queue = cfg->max_queue;
  eng->result_max = cfg->result_max_bytes ? cfg->result_max_bytes : OEE_DEFAULT_RESULT_MAX_BYTES;
  eng->commands = cfg->commands;
  eng->models = cfg->models;
  eng->retention_seconds = cfg->retention_seconds;
  eng->max_finished = cfg->max_finished;
  eng->max_queue_bytes = cfg->max_queue_bytes;
  eng->finished_cache = cfg->finished_cache ? cfg->finished_cache : OEE_DEFAULT_FINISHED_CACHE;
  eng->accepting = 1;
  eng->opened_ns = oee_now_ns();
  oee__timer_init(eng);
  oee__sched_init(eng, cfg->max_schedules);
  eng->default_max_attempts = cfg->default_max_attempts ? cfg->default_max_attempts : 1;
  eng->max_dependencies =
      cfg->max_dependencies ? cfg->max_dependencies : OEE_DEFAULT_MAX_DEPENDENCIES;
  eng->idempotency_window_ns = (cfg->idempotency_window_seconds ? cfg->idempotency_window_seconds
                                                                : OEE_DEFAULT_IDEMPOTENCY_WINDOW) *
                               1000000000ULL;
}

int oee_engine_open(const oee_engine_config *cfg, oee_engine **out, oee_error *err) {
  oee_engine_config defaults = {0};
  if (cfg == NULL) cfg = &defaults;
  if (out == NULL || cfg->num_workers < 0) {
    return oee_error_set(err, OEE_EINVAL, "num_workers must not be negative");
  }
  oee_engine *eng = oee_calloc(1, sizeof(*eng));
  if (eng == NULL) return oee_error_set(err, OEE_ENOMEM, "out of memory creating the engine");
  copy_settings(eng, cfg);
  int rc = engine_init_locks(eng);
  if (rc != 0) {
    oee_free(eng);
    return oee_error_set(err, rc, "cannot create the engine's locks");
  }
  eng->store = oee__store_mem_create();
  rc = eng->store ? workers_create(eng) : OEE_ENOMEM;
  if (rc == 0) rc = oee__bus_create(&eng->bus);
  if (rc == 0) rc = register_builtins(eng);
  if (rc != 0) oee_error_set(err, rc, "cannot create the engine: %s", oee_strerror(rc));
  if (rc == 0) rc = open_config_parts(eng, cfg, err);
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
  /* Stores the changes still pending; their callbacks touch the store. */
  if (eng->committer || eng->db) oee__durable_close(eng);
  if (eng->store) eng->store->ops->destroy(eng->store, oee__task_drop, NULL);
  oee__remote_fini(eng);
  oee__quota_fini(eng);
  oee__sched_fini(eng);
  oee__timer_fini(eng);
  oee__keys_free(eng);
  oee__bus_destroy(eng->bus);
  while (eng->executors) {
    executor *next = eng->executors->next;
    oee_free(eng->executors);
    eng->executors = next;
  }
  for (int i = 0; i < eng->num_workers && eng->workers; i++) {
    pthread_cond_destroy(&eng->workers[i].wake);
  }
  oee_free(eng->workers);
  pthread_cond_destroy(&eng->drain_cv);
  pthread_cond_destroy(&eng->retention_cv);
  pthread_cond_destroy(&eng->timer_cv);
  pthread_mutex_destroy(&eng->lock);
  pthread_rwlock_destroy(&eng->exec_lock);
  oee__metrics_fini(&eng->metrics);
  oee_free(eng);
}

const oee_model_table *oee__engine_models(oee_engine *eng) { return eng->models; }

/* ------------------------------------------------------------- workers */

static void running_link(oee_engine *eng, oee_job *j) {
  j->prev = NULL;
  j->next = eng->running;
  if (eng->running) eng->running->prev = j;
  eng->running = j;
  eng->running_jobs++;
}

oee_job *oee__job_start_locked(oee_engine *eng, worker *w, oee_task *t, const char *remote_id,
                               size_t extra) {
  oee_job *j = oee_calloc(1, sizeof(*j) + extra);
  if (j == NULL || oee_token_create(&j->token) != 0) {
    oee_free(j);
    return NULL;
  }
  oee_task_info d = *t->snap;
  d.status = OEE_TASK_RUNNING;
  d.worker_id = w ? w->id : -1;
  d.remote_worker_id = w ? "" : remote_id;
  d.started_at_ns = oee_now_ns();
  d.attempt = t->snap->attempt + 1;
  /* Room for what the job's end may need, so that it cannot fail then: its
   * deadline's slot and a retry's slot in the timer's heaps. */
  if (oee_heap_reserve(&eng->deadlines, 1) != 0 ||
      oee_heap_reserve(&eng->scheduled, eng->running_jobs + 1) != 0 ||
      oee__task_swap_snapshot(eng, t, &d) != 0) {
    oee_token_destroy(j->token);
    oee_free(j);
    return NULL;
  }
  oee__queue_take(eng, t);
  j->eng = eng;
  j->task = t;
  j->snap = oee_task_info_ref(t->snap);
  j->worker = w ? w->id : -1;
  t->token = j->token;
  running_link(eng, j);
  if (w == NULL) return j; /* lease.c arms its deadline */
  oee__timer_watch(eng, j);
  w->busy = 1;
  memcpy(w->current, t->snap->id, sizeof(w->current));
  return j;
}

static void job_run(oee_engine *eng, oee_job *j) {
  executor e;
  if (oee__executor_get(eng, j->snap->task_type, &e) != 0) {
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
  } else {
    eng->waking--; /* woken by oee__engine_wake_one() */
  }
}

void oee__engine_unlock_later(oee_engine *eng, oee__wakes *later) {
  /* Polls that a task queued in this section can answer are answered by
   * this thread (the timer thread, also told, then finds nothing to do):
   * a waiting worker gets its lease without a thread hand-off. */
  struct oee__poll *due = eng->remote ? oee__remote_take_due(eng) : NULL;
  /* Workers woken in this section are signalled once the lock is free, so
   * they do not wake only to block on it. Safe: a worker leaves its wait
   * when it finds itself off the idle stack (done under the lock), and a
   * signal that comes late only makes a spurious wake-up. */
  later->n = eng->n_deferred;
  memcpy(later->w, eng->deferred, later->n * sizeof(later->w[0]));
  eng->n_deferred = 0;
  eng->defer_wakes = 0;
  oee__unlock(&eng->lock);
  if (due != NULL) oee__remote_deliver(due);
  oee__bus_flush(eng->bus);
}

void oee__engine_signal(const oee__wakes *later) {
  for (size_t i = 0; i < later->n; i++) oee__signal(&later->w[i]->wake);
}

void oee__engine_unlock(oee_engine *eng) {
  oee__wakes later;
  oee__engine_unlock_later(eng, &later);
  oee__engine_signal(&later);
}

void oee__engine_defer_wakes(oee_engine *eng) { eng->defer_wakes = 1; }

void oee__engine_flush_wakes(oee_engine *eng) {
  for (size_t i = 0; i < eng->n_deferred; i++) oee__signal(&eng->deferred[i]->wake);
  eng->n_deferred = 0;
  eng->defer_wakes = 0;
}

void oee__task_place(oee_engine *eng, oee_task *t) {
  if (t->snap->status == OEE_TASK_SCHEDULED) {
    /* One that waits only for its dependencies is queued by graph.c. */
    if (t->snap->run_at_ns != 0 || !oee__graph_waiting(t)) oee__timer_schedule(eng, t);
  } else {
    oee__queue_push(eng, t);
  }
}

void oee__engine_wake_one(oee_engine *eng) {
  worker *w = eng->idle;
  if (w == NULL || eng->waking > 0) return; /* the waking one passes the baton */
  eng->idle = w->next_idle;
  w->idle = 0;
  eng->waking++;
  if (eng->defer_wakes && eng->n_deferred < OEE__DEFERRED_WAKES) {
    eng->deferred[eng->n_deferred++] = w;
  } else {
    oee__signal(&w->wake);
  }
}

/* Workers run as SCHED_BATCH (Linux; no privilege needed): a worker woken
 * for a task does not preempt the thread that queued it, which goes on
 * queueing the rest of its burst, so one wake-up serves several tasks and
 * the thread answering calls is not pushed off its CPU. A task's processes
 * inherit it. Best effort: where it is refused, workers stay as they are. */
static void worker_sched(void) {
#ifdef SCHED_BATCH
  struct sched_param p = {.sched_priority = 0};
  (void)pthread_setschedparam(pthread_self(), SCHED_BATCH, &p);
#endif
}

static void *worker_main(void *arg) {
  worker *w = arg;
  oee_engine *eng = w->eng;
  worker_sched();
  oee__lock(&eng->lock);
  while (!eng->stopping) {
    int64_t token_at;
    oee_task *t = oee__queue_next(eng, &token_at);
    if (t == NULL) {
      /* Tasks a rate holds back: one idle worker wakes for the next token. */
      int timed = token_at != 0 && !eng->token_waiter;
      if (timed) eng->token_waiter = 1;
      worker_idle(eng, w, timed ? token_at : 0);
      if (timed) eng->token_waiter = 0;
      continue;
    }
    oee_job *j = oee__job_start_locked(eng, w, t, NULL, 0);
    if (j == NULL) {
      /* Out of memory: back off briefly instead of spinning. */
      worker_idle(eng, w, oee__mono_ns() + OEE__OOM_BACKOFF_NS);
      continue;
    }
    /* More work queued and someone idle: pass the baton before running. */
    if (oee__queue_next(eng, &token_at) != NULL) oee__engine_wake_one(eng);
    /* A durable engine runs a task only once its start is stored: a crash
     * then finds it RUNNING and ends it interrupted, and never runs it a
     * second time as if it had never started. */
    while (eng->committer && w->start_stored_seq != j->snap->seq) oee__wait(&w->wake, &eng->lock);
    oee__engine_unlock(eng);
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
  if (oee__retention_start(eng) != 0) abort(); /* a thread could not start */
  if (oee__timer_start(eng) != 0) abort();
  return 0;
}

void oee_engine_refuse_submissions(oee_engine *eng) {
  oee__lock(&eng->lock);
  eng->accepting = 0;
  oee__unlock(&eng->lock);
  if (eng->remote) oee__remote_refuse(eng);
}

void oee_engine_cancel_running(oee_engine *eng) {
  oee__lock(&eng->lock);
  for (oee_job *j = eng->running; j; j = j->next) oee_token_cancel(j->token);
  /* Remote attempts cannot be stopped from here: left RUNNING, as after a
   * crash (a restart retries them). */
  if (eng->remote) oee__remote_abandon(eng);
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
  /* Remote workers are not waited for any longer: their tasks stay
   * RUNNING, as after a crash. */
  if (eng->remote) oee__remote_abandon(eng);
  while (eng->running_jobs > 0) oee__wait(&eng->drain_cv, &eng->lock);
}

int oee_engine_stop(oee_engine *eng, int64_t drain_ms) {
  oee__lock(&eng->lock);
  eng->accepting = 0;
  int was_started = eng->started && !eng->stopping;
  eng->stopping = 1;
  if (eng->remote) {
    oee__unlock(&eng->lock);
    oee__remote_refuse(eng);
    oee__lock(&eng->lock);
  }
  for (int i = 0; eng->workers && i < eng->num_workers; i++) oee__signal(&eng->workers[i].wake);
  drain_locked(eng, drain_ms);
  oee__unlock(&eng->lock);
  oee__retention_stop(eng);
  oee__timer_stop(eng);
  if (was_started) {
    for (int i = 0; i < eng->num_workers; i++) pthread_join(eng->workers[i].thread, NULL);
  }
  /* A durable engine publishes a change once it is stored: wait for the
   * last ones, so every final event is out when stop returns. */
  if (eng->committer) oee_committer_flush(eng->committer);
  return 0;
}
