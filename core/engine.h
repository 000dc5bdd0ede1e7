/*
 * engine.h - the engine's private state, shared by engine.c (lifecycle and
 * workers), job.c (snapshot changes and job completion), registry.c
 * (executors), submit.c and query.c (cancel, reads, subscribe).
 *
 * DESIGN
 * Threads: any number of caller threads (submit, cancel, get, list, status,
 * subscribe), N worker threads, and whatever threads executors finish
 * asynchronous jobs on.
 * Locks, in the only order they may be taken:
 *   exec_lock (executor table, rwlock; never held with any other lock)
 *   lock (the engine lock: queue, store, counters, workers, running jobs)
 *     -> bus fan_lock -> bus log_lock (events.c)
     -> token lock (token.c)
 *     -> a payload's own lock (pipeline.c, via oee__engine_with_payload)
 *     -> whatever leaf lock a poll's alive() takes (lease.c; the server's
 *        call mutex)
 * Under `lock` the engine only moves pointers, sets sequence numbers and
 * appends each change to the bus log (O(1), see events.c); the fan-out to
 * subscribers runs after `lock` is released (oee__engine_unlock()).
 * Snapshots are packed before `lock` is taken where the current one is
 * known without it (submit, job completion) or can be checked unchanged
 * after it (cancel of a queued task); only a job start packs under it,
 * because the task is chosen there. Executors always run with no lock held.
 * Completion: oee_job_succeed/fail/cancelled pack the final snapshot, take
 * `lock`, swap it in, publish it and wake stop() when the last running job
 * ends.
 * Wakeups: an idle worker waits on its own condition variable on the idle
 * stack; a submit pops one idle worker and wakes exactly that one, so no
 * worker is woken for a task another already took, and a busy pool costs
 * submitters no signal at all.
 */
#ifndef OEE_ENGINE_H
#define OEE_ENGINE_H

#include <pthread.h>
#include <stdint.h>

#include "core/events.h"
#include "core/heap.h"
#include "core/internal.h"
#include "core/metrics.h"
#include "core/store.h"
#include "core/task.h"

/* One registry entry; every field is guarded by eng->exec_lock (readers
 * copy the entry out, see oee__executor_get()). */
typedef struct executor {
  struct executor *next;
  oee_executor_fn fn;
  oee_validate_fn validate;
  int flags; /* OEE__EXEC_* */
  void *user_data;
  int metrics_slot; /* the type's slot in eng->metrics, -1: not counted;
                     * immutable after the entry is made */
  char type[];      /* immutable after the entry is made */
} executor;

/* Wakes one hold of the engine lock may defer (more are signalled at once). */
#define OEE__DEFERRED_WAKES 8

typedef struct worker {
  oee_engine *eng;              /* immutable after start */
  pthread_t thread;             /* immutable after start */
  int id;                       /* immutable after start */
  int busy;                     /* guarded by eng->lock */
  int idle;                     /* on eng->idle, guarded by eng->lock */
  struct worker *next_idle;     /* guarded by eng->lock */
  pthread_cond_t wake;          /* waited on with eng->lock; signalled when
                                 * taken off the idle stack */
  char current[OEE_ID_LEN + 1]; /* guarded by eng->lock */
  uint64_t start_stored_seq;    /* guarded by eng->lock: seq of the last RUNNING
                                 * change of this worker's jobs that is written
                                 * to the database (durable engines run a job
                                 * only after it: durable.c start_written) */
  uint64_t completed, failed;   /* guarded by eng->lock */
} worker;

/* A running task. Fields are immutable from job start to finish (they
 * belong to the thread holding the job) except the list links. */
struct oee_job {
  oee_engine *eng;
  oee_task *task;            /* stays alive: running tasks are never cleared */
  const oee_task_info *snap; /* the RUNNING snapshot (a reference); it is
                              * also task->snap until the job finishes */
  oee_token *token;
  int worker;
  struct oee_job *prev, *next; /* eng->running, guarded by eng->lock */
  int64_t deadline_ns;         /* CLOCK_MONOTONIC end of its timeout */
  size_t deadline_pos;         /* in eng->deadlines, guarded by eng->lock */
  int timed_out;               /* guarded by eng->lock: the timer cancelled it */
  struct oee__lease *lease;    /* a remote attempt's lease (lease.c), else NULL */
};

struct oee_engine {
  pthread_rwlock_t exec_lock;
  executor *executors; /* guarded by exec_lock */

  pthread_mutex_t lock;        /* the engine lock */
  pthread_cond_t drain_cv;     /* waited on with lock: stop() waits here
                                * for running jobs */
  oee_store *store;            /* guarded by lock (the store has none) */
  oee_heap queue;              /* guarded by lock: QUEUED tasks of the types
                                * without a quota, highest priority first
                                * (quota.c) */
  struct oee__limit *limits;   /* guarded by lock: the quotas (type_limits),
                                * each with its QUEUED tasks (quota.c) */
  size_t n_limits;             /* immutable after create */
  struct oee__sched **scheds;  /* guarded by lock: the schedules by id (schedule.c) */
  size_t n_scheds, cap_scheds; /* guarded by lock */
  oee_heap sched_heap;         /* guarded by lock: armed schedules, next firing first */
  size_t max_schedules;        /* immutable after create */
  int token_waiter;            /* guarded by lock: an idle worker sleeps until a
                                * rate-limited type has a token */
  oee_heap scheduled;          /* guarded by lock: SCHEDULED tasks waiting for
                                * their run_at, earliest first (timer.c) */
  oee_heap deadlines;          /* guarded by lock: running jobs with a timeout,
                                * earliest first (timer.c) */
  pthread_cond_t timer_cv;     /* waited on with lock by the timer thread */
  pthread_t timer_thread;
  int timer_running;     /* the thread exists; start/stop callers only */
  int timer_stop;        /* guarded by lock */
  uint64_t last_index;   /* guarded by lock: submission counter */
  uint64_t last_seq;     /* guarded by lock: event counter */
  int accepting;         /* guarded by lock: submissions allowed */
  int started, stopping; /* guarded by lock */
  worker *idle;          /* guarded by lock: workers waiting for a task */
  /* Wakes held back until oee__engine_unlock() (oee__engine_defer_wakes):
   * a worker signalled while the waker still holds the lock only wakes to
   * block on it. Guarded by lock. */
  int defer_wakes;
  worker *deferred[OEE__DEFERRED_WAKES];
  size_t n_deferred;
  /* Workers taken off the idle stack whose wait has not returned yet. One
   * at a time: a worker that wakes takes a task and, when more are queued,
   * wakes the next (the baton), so a burst of submissions costs one wake-up
   * in flight instead of one per task. Guarded by lock. */
  size_t waking;
  size_t running_jobs;         /* guarded by lock */
  oee_job *running;            /* guarded by lock: list of running jobs */
  int64_t started_mono_ns;     /* guarded by lock; CLOCK_MONOTONIC */
  int64_t opened_ns;           /* CLOCK_REALTIME at create; immutable */
  size_t pending_submits;      /* guarded by lock: accepted, row not stored yet */
  uint64_t queue_bytes;        /* guarded by lock: name + task_type + context
                                * bytes of unfinished (and pending) tasks */
  int retention_stop;          /* guarded by lock: the retention thread ends */
  int retention_running;       /* the thread exists; start/stop callers only */
  pthread_cond_t retention_cv; /* waited on with lock by the retention thread */
  pthread_t retention_thread;
  oee_recovery recovered; /* written once at create (durable.c) */
  /* Guarded by lock: callers waiting for a change to be stored, in seq
   * order (durable.c). */
  struct oee__stored_waiter *waiters, *waiters_tail;
  /* Guarded by lock: the idempotency keys used within the window (keys.c). */
  struct oee__key **keys;
  size_t nkey_buckets, nkeys;
  struct oee__key *keys_oldest, *keys_newest;
  /* Guarded by lock (durable.c): what a group of commit callbacks owes its
   * callers, run by the group's thread once it released the lock. */
  struct oee__stored_waiter *due, *due_tail;
  struct oee__later *later, *later_tail;
  /* Guarded by lock: dependency waits decided and not yet acted on, in
   * the order they were decided (graph.c). */
  struct oee__dep_wait *graph_due, *graph_due_tail;
  int graph_draining;

  /* Guarded by lock: remote workers, their polls and leases (lease.c);
   * NULL without remote types. */
  struct oee__remote *remote;

  /* Durability (durable.c); both NULL for the memory store. Immutable
   * after create (each has its own locks). */
  struct oee_db *db;
  struct oee_committer *committer;

  /* Immutable after create (the bus has its own lock, see events.c; the
   * workers' own fields are annotated in struct worker). */
  oee_bus *bus;
  worker *workers;
  int num_workers;
  size_t max_queue;           /* tasks; 0 = unlimited */
  uint64_t max_queue_bytes;   /* 0 = unlimited */
  uint64_t retention_seconds; /* 0 = finished tasks never expire by age */
  uint64_t max_finished;      /* 0 = no bound on finished tasks kept */
  size_t finished_cache;      /* durable: finished tasks kept in memory */
  int default_max_attempts;   /* 1..100 */
  size_t max_dependencies;
  uint64_t idempotency_window_ns;
  size_t result_max; /* bytes kept of a result */
  const oee_exec_table *commands;
  const oee_model_table *models;

  /* Counters and histograms (metrics.c): atomics, no lock of their own. */
  oee__metrics metrics;
};

/* How long a thread that could not allocate waits before it retries: long
 * enough not to spin, short enough to catch up soon (10 ms). */
#define OEE__OOM_BACKOFF_NS (10 * 1000 * 1000)

/*
 * Shared by the engine's files (engine.c, job.c, registry.c, submit.c,
 * query.c); nothing outside them may call these.
 */

/* Frees a task record and drops its snapshot and payload. */
void oee__task_free(oee_task *t);
/* oee__task_free() with the store's destructor signature. */
void oee__task_drop(oee_task *t, void *arg);

/*
 * Moves `t` to the status in `draft` (eng->lock held): packs the next
 * snapshot from `draft` (which the caller filled from the current one),
 * records and publishes it. The caller checked the transition; only packing
 * can fail (OEE_ENOMEM, nothing changed).
 */
int oee__task_swap_snapshot(oee_engine *eng, oee_task *t, oee_task_info *draft);
/* The same with `next` already packed (and not yet shared): sets its seq,
 * swaps it in and publishes it; cannot fail. eng->lock held. */
void oee__task_swap_packed(oee_engine *eng, oee_task *t, oee_task_info *next);
/* What a reader may see of a task (eng->lock held): its last stored
 * snapshot (the same as t->snap for the memory store). Borrowed. */
const oee_task_info *oee__task_shown(const oee_task *t);

/* Copies the executor entry for `type` into *out (takes exec_lock, so no
 * other lock may be held). 0 or OEE_ENOEXEC. */
int oee__executor_get(oee_engine *eng, const char *type, executor *out);

/* Puts a new task where its status says (lock held, room reserved in
 * both heaps): QUEUED into the queue (waking a worker), SCHEDULED into the
 * timer's heap. */
void oee__task_place(oee_engine *eng, oee_task *t);

/* Wakes one idle worker, if any and none is waking already (eng->lock
 * held): takes it off the idle stack and signals it, or, while wakes are
 * deferred, signals it right after the next oee__engine_unlock(). */
void oee__engine_wake_one(oee_engine *eng);

/* From now until this hold of the lock ends with oee__engine_unlock(),
 * wakes are signalled after the lock is released (lock held). Only for
 * sections that neither release the lock nor wait on it before that
 * unlock; oee__engine_flush_wakes() ends the deferral early. */
void oee__engine_defer_wakes(oee_engine *eng);
/* Signals the deferred wakes now and ends the deferral (lock held). */
void oee__engine_flush_wakes(oee_engine *eng);

/* Releases eng->lock, then signals the deferred wakes and delivers the
 * events published under it to the subscribers (oee__bus_flush()). Used
 * wherever the section published. */
void oee__engine_unlock(oee_engine *eng);

/* The deferred wakes of one hold of the lock, to signal later. */
typedef struct oee__wakes {
  struct worker *w[OEE__DEFERRED_WAKES];
  size_t n;
} oee__wakes;
/* oee__engine_unlock() that hands the deferred wakes to the caller, who
 * must pass them to oee__engine_signal() (e.g. after answering its own
 * caller first: the wake-up is a system call the answer need not wait
 * for). */
void oee__engine_unlock_later(oee_engine *eng, oee__wakes *later);
void oee__engine_signal(const oee__wakes *later);

/* The limits a task entering (or re-entering) the queue meets, lock held:
 * the engine accepts tasks, max_queue, max_queue_bytes with `bytes` more.
 * 0, OEE_ESTOPPED or OEE_EFULL saying which. */
int oee__queue_limits(oee_engine *eng, uint64_t bytes, oee_error *err);

/* Bytes a task counts against max_queue_bytes: name, type and context. */
uint64_t oee__task_bytes(const oee_task_info *t);

/* The timer (timer.c): heaps made at create, the thread started and
 * stopped with the workers. Lock held for the others: schedule pushes a
 * SCHEDULED task (room reserved in eng->scheduled), unschedule takes one
 * out (cancel), watch arms a job's timeout (room reserved in
 * eng->deadlines), unwatch disarms it. */
void oee__timer_init(oee_engine *eng);
void oee__timer_fini(oee_engine *eng);
int oee__timer_start(oee_engine *eng);
void oee__timer_stop(oee_engine *eng);
void oee__timer_schedule(oee_engine *eng, oee_task *t);
void oee__timer_unschedule(oee_engine *eng, oee_task *t);
void oee__timer_watch(oee_engine *eng, oee_job *j);
void oee__timer_unwatch(oee_engine *eng, oee_job *j);
/* Seconds as nanoseconds for a wait: 0 for <= 0 or NaN, at most ~31 years
 * (a longer wait is as good as forever and would overflow). */
int64_t oee__seconds_ns(double s);
/* The wait before retry number `retry` (1-based) of `t`: min(max_backoff,
 * backoff * 2^(retry-1)) times a random factor in [0.5, 1.0], seconds. */
double oee__backoff_seconds(const oee_task_info *t, int retry);

/* The queue and the quotas (quota.c). init/fini at create and destroy
 * (init checks the limits: OEE_EINVAL saying which); the rest with the lock
 * held. reserve: room for n more QUEUED tasks of `type`; push: queues t
 * (room reserved) and wakes a worker; remove: takes a QUEUED t out (cancel);
 * len: QUEUED tasks; next: the best task that may start now, or NULL with
 * *token_at the CLOCK_MONOTONIC time a rate-limited type gets its next
 * token (0: none waits for one); take: t (from next) starts; ended: a job of
 * `type` ended; usage: fills out[] (may be NULL) and returns how many
 * quotas there are. */
typedef struct oee__limit oee__limit;
int oee__quota_init(oee_engine *eng, const oee_type_limit *limits, size_t n,
                    const char *const *remote, size_t n_remote, oee_error *err);
void oee__quota_fini(oee_engine *eng);
int oee__queue_reserve(oee_engine *eng, const char *type, size_t n);
void oee__queue_push(oee_engine *eng, oee_task *t);
void oee__queue_remove(oee_engine *eng, oee_task *t);
size_t oee__queue_len(const oee_engine *eng);
oee_task *oee__queue_next(oee_engine *eng, int64_t *token_at);
void oee__queue_take(oee_engine *eng, oee_task *t);
void oee__queue_ended(oee_engine *eng, const char *type);
size_t oee__quota_usage(oee_engine *eng, oee_type_usage *out);
/* Remote types (their tasks are only leased, lease.c): next_of is the best
 * task among `types` that may start now (like next); remote_len counts
 * their QUEUED tasks; is_remote says whether `type` is one. */
oee_task *oee__queue_next_of(oee_engine *eng, const char *const *types, size_t n,
                             int64_t *token_at);
size_t oee__queue_remote_len(const oee_engine *eng);
int oee__queue_is_remote(const oee_engine *eng, const char *type);

/* Remote workers (lease.c). init/fini at create and destroy (init
 * registers the types; OEE_EINVAL for a built-in one); the rest with the
 * lock held. queued: a remote task was queued or a remote slot freed (the
 * timer thread matches waiting polls); deadline: a remote job's lease or
 * timeout came (from the timer's deadline heap); run: the timer's step
 * (answers expired polls, ends expired leases, leases tasks to waiting
 * polls), 1 when it let go of the lock to do so, else *next (monotonic, 0:
 * none) brought forward to its next due time; refuse: parked polls are
 * answered OEE_ESTOPPED (no lock held); abandon: at stop, leased tasks are
 * left RUNNING (a restart finds them interrupted) and their jobs dropped;
 * ended: a remote job ended `to` (counts). */
int oee__remote_init(oee_engine *eng, const char *const *types, size_t n, oee_error *err);
void oee__remote_fini(oee_engine *eng);
void oee__remote_queued(oee_engine *eng);
void oee__remote_deadline(oee_engine *eng, oee_job *j);
int oee__remote_run(oee_engine *eng, int64_t *next);
void oee__remote_refuse(oee_engine *eng);
void oee__remote_abandon(oee_engine *eng);
void oee__remote_ended(oee_engine *eng, oee_job *j, oee_task_status to);
/* take_due (lock held): when remote tasks were queued since the timer last
 * looked, leases them to the waiting polls now and returns the answers to
 * deliver (memory store; a data_dir delivers once stored); deliver (no lock
 * held) sends them. oee__engine_unlock() uses both. */
struct oee__poll;
struct oee__poll *oee__remote_take_due(oee_engine *eng);
void oee__remote_deliver(struct oee__poll *due);

/* Jobs (engine.c, job.c). start: takes the queued t (the best that may
 * start) and marks it RUNNING for worker w, or for the remote worker
 * `remote_id` when w is NULL (then with room for a lease record after the
 * job: oee__job_lease()); NULL when out of memory (t stays queued). Lock
 * held. finish: ends a job as its executor (or lease) said; `waiter`, if
 * not NULL, is registered for the final change's storing (durable) and
 * *now gets the snapshot after the change (a reference). No lock held.
 * unlink: takes a job off the running list (lock held). */
typedef enum oee__ending {
  OEE__SUCCEEDED,
  OEE__FAILED,
  OEE__FAILED_PERMANENTLY,
  OEE__CANCELLED
} oee__ending;
oee_job *oee__job_start_locked(oee_engine *eng, worker *w, oee_task *t, const char *remote_id,
                               size_t extra);
void oee__job_finish(oee_job *j, oee__ending how, const char *result, const char *message,
                     struct oee__stored_waiter *waiter, const oee_task_info **now);
void oee__running_unlink(oee_engine *eng, oee_job *j);

/* Schedules (schedule.c). init/fini at create and destroy; load reads the
 * stored ones back (durable create, after the tasks). take (lock held):
 * moves up to `cap` due firings into out and says when the next one is due
 * (CLOCK_REALTIME ns, 0: none or not known yet); fire (no lock held)
 * submits them. */
typedef struct oee__sched oee__sched;
typedef struct oee__firing {
  oee_engine *eng;
  oee__sched *s; /* a count held until the firing is told */
  int64_t at;    /* the firing's time, seconds */
} oee__firing;
#define OEE__FIRE_BATCH 64
void oee__sched_init(oee_engine *eng, size_t max_schedules);
void oee__sched_fini(oee_engine *eng);
int oee__sched_load(oee_engine *eng, oee_error *err);
size_t oee__sched_take(oee_engine *eng, int64_t now_ns, oee__firing *out, size_t cap,
                       int64_t *next_ns);
void oee__sched_fire(oee_engine *eng, oee__firing *fires, size_t n);
/* The checks of a submission (submit.c), for a schedule's template. */
int oee__submit_check(oee_engine *eng, const oee_submit *req, oee_error *err);

/* Dependencies (graph.c), engine lock held for all.
 * resolve: records what t (its snapshot's depends_on) waits for, as a new
 * task or a retried one. disk[i] is what the caller read of dependency i
 * from the database: 0 not read, OEE__DEP_UNKNOWN no such row, else its
 * status; resolve sets OEE__DEP_READ for the ones to read (NULL: no reads,
 * a dependency not in memory is unknown). *waits = 1 when t must stay SCHEDULED (a dependency is
 * not DONE, or one failed and t is to end CANCELLED once placed). OEE__GRAPH_READ_DISK when a
 * dependency is not in memory and disk[] does not answer for it (the caller reads the ones marked
 * OEE__DEP_READ, without the lock, with oee__graph_read(), and resolves again); OEE_EINVAL naming
 * an unknown one; OEE_ENOMEM. Nothing changes unless it returns 0. placed: t is in the store (and
 * its row stored): act on its wait if it is decided already. changed: t's snapshot changed (from
 * swap_packed): a final status ends its wait and decides its dependents. drain: settles the decided
 * waits; 1 when memory ran short and some remain (the timer calls it again). forget: t never
 * existed (a refused write). free: with the task. waiting: t waits for a dependency. */
#define OEE__DEP_UNKNOWN (-1)
#define OEE__DEP_READ (-2) /* set by resolve: read this one */
#define OEE__GRAPH_READ_DISK 2
typedef struct oee__graph oee__graph;
typedef struct oee__dep_wait oee__dep_wait;
int oee__graph_resolve(oee_engine *eng, oee_task *t, int *disk, int *waits, oee_error *err);
void oee__graph_placed(oee_engine *eng, oee_task *t);
void oee__graph_changed(oee_engine *eng, oee_task *t);
int oee__graph_drain(oee_engine *eng);
void oee__graph_forget(oee_task *t);
void oee__graph_free(oee_task *t);
int oee__graph_waiting(const oee_task *t);
/* Reads the dependencies of `snap` that disk[] marks OEE__DEP_READ from
 * the database (no lock held): 0, or the error of a failed read. */
int oee__graph_read(oee_engine *eng, const oee_task_info *snap, int *disk, oee_error *err);

/* The retention thread (retention.c): started with the workers when a rule
 * is set, stopped with them. */
int oee__retention_start(oee_engine *eng);
void oee__retention_stop(oee_engine *eng);

/* ------------------------------------------------ durability (durable.c) */

/* Bytes every snapshot of this engine reserves for its commit link (0 for
 * the memory store), and a pack with that prefix: every snapshot the engine
 * makes must come from here. */
size_t oee__engine_prefix(const oee_engine *eng);
oee_task_info *oee__engine_pack(const oee_engine *eng, const oee_task_info *draft);
/* Opens the database, starts the committer and recovers the stored tasks
 * (at create, before any worker runs). */
int oee__durable_open(oee_engine *eng, const oee_engine_config *cfg, oee_error *err);
/* A stored pipeline's payload rebuilt from its bytes (pipeline_codec.c):
 * 0, OEE_EINVAL for bytes that are not a pipeline, OEE_ENOMEM. */
int oee__pipeline_payload(oee_engine *eng, const void *bytes, size_t len, oee_payload **out);

/* Idempotency keys (keys.c), engine lock held: the entry for `key` used
 * within the window, or NULL (expired ones are dropped first); its task's
 * id and the seq of its acknowledged change; add (0 or OEE_ENOMEM) when a
 * keyed task is accepted, drop when its acceptance is undone; free at
 * destroy. */
typedef struct oee__key oee__key;
const oee__key *oee__keys_find(oee_engine *eng, const char *key, int64_t now_ns);
const char *oee__key_id(const oee__key *k);
uint64_t oee__key_seq(const oee__key *k);
int oee__keys_add(oee_engine *eng, const char *key, const oee_task_info *t);
void oee__keys_drop(oee_engine *eng, const char *key, const char *id);
void oee__keys_free(oee_engine *eng);

/* Loads the unfinished stored tasks (recovery.c; at create, before any
 * worker runs). */
struct oee_db_meta;
int oee__recover(oee_engine *eng, const struct oee_db_meta *meta, oee_error *err);
/* Stores what is pending, stops the committer, closes the database. */
void oee__durable_close(oee_engine *eng);
/* Queues t->snap (the task's new snapshot, lock held; `from` the status it
 * left) for storing, with the payload's bytes when it is final; its event is
 * published once it is stored, and then readers see it. */
void oee__durable_change(oee_engine *eng, oee_task *t, oee_task_status from);
/* A caller waiting for a change to be stored; embedded in the caller's
 * own record, so registering cannot fail. */
typedef struct oee__stored_waiter {
  struct oee__stored_waiter *next;
  uint64_t seq;
  int rc; /* set when it is due */
  void (*cb)(struct oee__stored_waiter *w, int rc);
} oee__stored_waiter;

/* Work the commit thread does once it has released the engine lock (the
 * callers' callbacks); embedded in the records that need it. */
typedef struct oee__later {
  struct oee__later *next;
  void (*run)(struct oee__later *l);
} oee__later;
/* From a commit callback (engine lock held by the group): runs l->run(l)
 * on the commit thread once the group has let go of the lock. */
void oee__durable_later(oee_engine *eng, oee__later *l);
/* Calls w->cb(w, rc) once every change numbered up to `seq` is stored (rc
 * 0) or could not be (OEE_ESTOPPED: the engine stopped first). Lock held;
 * the callback runs later on the commit thread, with no lock held. */
void oee__durable_after(oee_engine *eng, oee__stored_waiter *w, uint64_t seq);
/* Deletes finished rows as oee_db_purge describes (before_ns, keep, at most
 * `limit`) in the next group commit and drops them from the cache; then
 * cb(arg, rc, deleted, err) on the commit thread. No lock held. */
typedef void (*oee__purge_cb)(void *arg, int rc, size_t deleted, const oee_error *err);
int oee__durable_purge(oee_engine *eng, int64_t before_ns, uint64_t keep, size_t limit,
                       oee__purge_cb cb, void *arg);
/* Stored tasks by status (of one type, NULL = all) for a durable engine. */
void oee__durable_counts(oee_engine *eng, const char *type,
                         uint64_t by_status[OEE_TASK_STATUS_COUNT]);
/* Hands a numbered new task (t->snap QUEUED, not in the store) to the
 * committer; cb acknowledges it once stored (lock held). */
int oee__durable_submit_locked(oee_engine *eng, oee_task *t, oee_submit_cb cb, void *arg,
                               oee_error *err);

#endif /* OEE_ENGINE_H */
