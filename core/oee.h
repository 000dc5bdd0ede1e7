/*
 * oee.h - the public API of the OEE core engine.
 *
 * The core is a plain C11 library: a task model, a priority queue, a task
 * store, a worker pool, an executor registry, an event bus and a pipeline
 * runner. It knows nothing of gRPC or protobuf; the server wraps it and any C
 * program may embed it.
 *
 * Conventions
 *  - Functions return 0 or a negative OEE_E* code (see oee_strerror()).
 *  - Every public function may be called from any thread.
 *  - Task data leaves the engine only as immutable, reference-counted
 *    snapshots (oee_task_info). A snapshot is one allocation; release it with
 *    oee_task_info_unref(). Snapshots never change after creation, so they
 *    may be read from any thread without locks.
 *  - Borrowed pointers passed in (names, contexts, ...) are copied before the
 *    call returns; the caller keeps ownership of them.
 */
#ifndef OEE_H
#define OEE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ errors */

/* X(name, message). Codes are negative: OEE_EINVAL == -1, ... */
#define OEE_ERRNO_MAP(X)                                            \
  X(INVAL, "invalid argument")                                      \
  X(NOENT, "no such task")                                          \
  X(NOMEM, "out of memory")                                         \
  X(STATE, "transition not allowed from the task's current status") \
  X(FULL, "queue is at its configured limit")                       \
  X(STOPPED, "engine is not running")                               \
  X(NOEXEC, "no executor registered for the task type")             \
  X(AGAIN, "no event available yet")                                \
  X(OVERFLOW, "subscriber fell too far behind and was dropped")     \
  X(CLOSED, "subscription closed")                                  \
  X(TIMEDOUT, "timed out")                                          \
  X(EXISTS, "already exists")                                       \
  X(NOCMD, "command is not in the configured table")                \
  X(NOMODEL, "unknown model")                                       \
  X(IO, "input/output or process error")

enum {
  OEE_OK = 0,
#define OEE__ERRNO_ENUM(name, msg) OEE__E_##name##_INDEX,
  OEE_ERRNO_MAP(OEE__ERRNO_ENUM)
#undef OEE__ERRNO_ENUM
      OEE__E_COUNT
};

#define OEE__ERRNO_VALUE(name, msg) OEE_E##name = -OEE__E_##name##_INDEX,
enum { OEE_ERRNO_MAP(OEE__ERRNO_VALUE) };
#undef OEE__ERRNO_VALUE

/* A static, never-NULL description of an error code (also for unknown ones). */
const char *oee_strerror(int err);
/* The symbolic name without prefix ("INVAL", "NOENT", ...) or "OK". */
const char *oee_err_name(int err);

/*
 * Why a call was refused. The core decides what is valid, so it is also the
 * one that explains a refusal: `message` names the field and the rule in
 * words a caller can act on ("priority must be 0..10, got 11"). Callers that
 * only need the code pass NULL wherever an oee_error * is accepted.
 */
#define OEE_ERROR_MESSAGE_MAX 256
typedef struct oee_error {
  int code;                            /* 0 or an OEE_E* code */
  char message[OEE_ERROR_MESSAGE_MAX]; /* "" when code is 0; never NULL */
} oee_error;

/* Fills *err (when not NULL) with `code` and the formatted reason and
 * returns `code`, so a check can end with `return oee_error_set(...)`. A
 * reason longer than the buffer is cut. */
int oee_error_set(oee_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ------------------------------------------------------------ task model */

/* Numbers match the wire enum: 0 means "unspecified" (e.g. "any" in filters). */
typedef enum oee_task_status {
  OEE_TASK_UNSPECIFIED = 0,
  OEE_TASK_QUEUED = 1,
  OEE_TASK_RUNNING = 2,
  OEE_TASK_DONE = 3,
  OEE_TASK_ERROR = 4,
  OEE_TASK_CANCELLED = 5,
  OEE_TASK_SCHEDULED = 6, /* exists, may not start yet: a future run_at, a
                           * retry's backoff, or unfinished dependencies */
} oee_task_status;

#define OEE_TASK_STATUS_COUNT 7

/* Lower-case name ("queued", "running", ...); "unspecified" for 0/unknown. */
const char *oee_task_status_name(oee_task_status s);
/* 1 for DONE, ERROR and CANCELLED. */
int oee_task_status_is_terminal(oee_task_status s);
/*
 * 0 when `from` -> `to` is a lifecycle edge, OEE_ESTATE otherwise. The
 * engine consults this table for every change it makes. Edges:
 * (new: UNSPECIFIED) -> QUEUED | SCHEDULED | CANCELLED (a dependency already
 * failed); SCHEDULED -> QUEUED | CANCELLED; QUEUED -> RUNNING | CANCELLED;
 * RUNNING -> DONE | ERROR | CANCELLED | SCHEDULED (a failed attempt to be
 * retried); ERROR | CANCELLED -> QUEUED | SCHEDULED (RetryTask: checked like
 * a fresh submission; a dependency still failed then ends it CANCELLED).
 */
int oee_task_transition_check(oee_task_status from, oee_task_status to);

#define OEE_PRIORITY_MIN 0
#define OEE_PRIORITY_MAX 10
#define OEE_PRIORITY_DEFAULT 5
#define OEE_ID_LEN 36 /* canonical UUID text, without the NUL */

typedef struct oee_kv {
  const char *key;
  const char *value;
} oee_kv;

/*
 * An immutable snapshot of a task at one change. All strings point into the
 * same allocation and are never NULL (empty when absent).
 */
typedef struct oee_task_info {
  char id[OEE_ID_LEN + 1]; /* lower-case UUID v7 (v4 if stored by old versions) */
  const char *name;
  const char *task_type;
  const char *result;        /* "" until the task ends DONE */
  const char *error_message; /* "" unless ERROR (or a reason for CANCELLED) */
  const oee_kv *context;     /* context_len entries, sorted by key */
  size_t context_len;
  oee_task_status status;
  int priority;            /* 0..10 */
  int worker_id;           /* -1 until a worker starts the task */
  int64_t created_at_ns;   /* CLOCK_REALTIME, ns since the epoch */
  int64_t started_at_ns;   /* 0 = not reached */
  int64_t completed_at_ns; /* 0 = not reached */
  int64_t changed_at_ns;   /* when the change to this snapshot happened (an
                            * event's time); 0 for a snapshot read back from
                            * the database */
  uint64_t seq;            /* event sequence number of this change */
  uint64_t submit_index;   /* submission order, 1-based, per engine */
  /* Attempts: the one running or last run (1-based; 0 before the first
   * start) of at most max_attempts; before retry n the task waits
   * min(max_backoff_seconds, backoff_seconds * 2^(n-1)) times a random
   * factor in [0.5, 1.0]. */
  int attempt;
  int max_attempts;
  double backoff_seconds;
  double max_backoff_seconds;
  double timeout_seconds;        /* per attempt; 0 = none */
  int64_t run_at_ns;             /* CLOCK_REALTIME; 0 unless waiting for a time */
  const char *idempotency_key;   /* "" = none */
  const char *const *depends_on; /* depends_on_len resolved task ids */
  size_t depends_on_len;
  const char *schedule_id;      /* "" unless a schedule created the task */
  const char *remote_worker_id; /* "" unless a remote worker ran it */
} oee_task_info;

/* Adds a reference; returns `t`. */
const oee_task_info *oee_task_info_ref(const oee_task_info *t);
/* Drops a reference; frees the snapshot at zero. NULL is ignored. */
void oee_task_info_unref(const oee_task_info *t);
/* The value for `key` in the context, or NULL. */
const char *oee_task_info_context(const oee_task_info *t, const char *key);

/* ------------------------------------------------------------ executors */

typedef struct oee_job oee_job;
typedef struct oee_token oee_token;

/*
 * An executor runs one task. It is called on a worker thread with a job
 * handle and must, now or later and from any thread, call exactly one of
 * oee_job_succeed(), oee_job_fail() or oee_job_cancelled(). A job finished
 * after the executor returned is an asynchronous completion: the worker is
 * free again as soon as the executor returns.
 */
typedef void (*oee_executor_fn)(oee_job *job, void *user_data);

/* The task as it was when the job started (borrowed; lives as long as the job). */
const oee_task_info *oee_job_task(const oee_job *job);
/* Shortcut for oee_task_info_context(oee_job_task(job), key). */
const char *oee_job_context(const oee_job *job, const char *key);
/* The job's cancellation token (borrowed; lives as long as the job). */
oee_token *oee_job_token(oee_job *job);
/* The worker running the job (0..N-1). */
int oee_job_worker(const oee_job *job);

/* Finish the job. `result`/`message` are copied; the job handle is invalid
 * after the call. Calling a second finish function is a broken invariant. */
void oee_job_succeed(oee_job *job, const char *result);
/* A failed attempt: retried after the backoff while attempts remain. */
void oee_job_fail(oee_job *job, const char *message);
/* A failure no retry can fix: the task ends ERROR whatever attempts remain. */
void oee_job_fail_permanent(oee_job *job, const char *message);
void oee_job_cancelled(oee_job *job, const char *reason);
/* The attempt this job runs (1-based). */
int oee_job_attempt(const oee_job *job);

/* ------------------------------------------------------ cancellation token */

/* 1 once cancellation was requested. */
int oee_token_cancelled(const oee_token *tok);
/* Sleeps until cancelled or `timeout_ms` elapsed (< 0: forever).
 * Returns 1 when cancelled, 0 on timeout. */
int oee_token_wait(oee_token *tok, int64_t timeout_ms);
/*
 * A token may also wake a file-descriptor based waiter: the returned fd
 * becomes readable once the token is cancelled (an eventfd created on first
 * use). Returns -1 when none could be made; then poll oee_token_cancelled().
 */
int oee_token_fd(oee_token *tok);

/* Standalone tokens, e.g. for sub-jobs that one executor fans out. */
int oee_token_create(oee_token **out);
/* Requests cancellation: wakes waiters and makes the fd readable. Idempotent. */
void oee_token_cancel(oee_token *tok);
/* Frees a token; nobody may be waiting on it. */
void oee_token_destroy(oee_token *tok);

/* -------------------------------------------------------------- engine */

typedef struct oee_engine oee_engine;
typedef struct oee_exec_table oee_exec_table;   /* see oee_exec.h */
typedef struct oee_model_table oee_model_table; /* see oee_pipeline.h */

/* Defaults, defined here once for the engine and every program that embeds
 * or configures it. */
#define OEE_DEFAULT_WORKERS 3                            /* worker threads */
#define OEE_DEFAULT_RESULT_MAX_BYTES ((size_t)1 << 20)   /* result kept per task */
#define OEE_DEFAULT_SUB_CAPACITY ((size_t)4096)          /* events buffered per subscriber */
#define OEE_DEFAULT_FINISHED_CACHE ((size_t)4096)        /* finished tasks in memory (durable) */
#define OEE_DEFAULT_IDEMPOTENCY_WINDOW ((uint64_t)86400) /* seconds a key holds */
#define OEE_DEFAULT_MAX_DEPENDENCIES ((size_t)64)        /* depends_on entries per task */

/*
 * The quota of one task type: at most max_running tasks of the type run at
 * once, and at most max_per_second start per second (a token bucket whose
 * burst is one second's worth, at least one). 0 means no limit on that
 * count. Tasks a quota holds back stay QUEUED in their order and do not
 * hold back other types.
 */
typedef struct oee_type_limit {
  const char *task_type;
  int max_running;       /* >= 0 */
  double max_per_second; /* finite, >= 0 */
} oee_type_limit;

typedef struct oee_engine_config {
  int num_workers;         /* 0 = OEE_DEFAULT_WORKERS */
  size_t max_queue;        /* max QUEUED tasks; 0 = unlimited */
  size_t result_max_bytes; /* longer results are truncated with a marker;
                            * 0 = OEE_DEFAULT_RESULT_MAX_BYTES */
  /* Borrowed tables for the built-in `exec` and `pipeline` executors; NULL
   * means none. They must outlive the engine. */
  const oee_exec_table *commands;
  const oee_model_table *models;
  /* Durability. NULL or "": the memory store, nothing survives the process.
   * Otherwise every task is stored in <data_dir>/oee.db (SQLite in WAL mode;
   * the directory is created mode 0700) and the engine recovers them when it
   * is created: QUEUED tasks go back to the queue in their priority and FIFO
   * order, a task that was RUNNING ends ERROR "interrupted: server
   * restarted", finished tasks keep everything; event sequence numbers go
   * on from the last one stored. A submission is acknowledged only once it
   * is stored, and every status change is stored, in group commits. */
  const char *data_dir;
  int sync_normal; /* with data_dir: 0 = fsync every commit (survives power
                    * loss), 1 = SQLite's NORMAL (survives a killed process) */
  /* Retention, for both stores (0 = no rule): a finished task is deleted
   * this long after it completed, and at most max_finished finished tasks
   * are kept, the oldest completed deleted first. Deletions run in small
   * batches on their own thread and never stall the queue. */
  uint64_t retention_seconds;
  uint64_t max_finished;
  /* With data_dir: how many recently finished tasks stay in memory for
   * fast reads (0 = OEE_DEFAULT_FINISHED_CACHE); the others are read from
   * the database, so memory does not grow with the number of finished
   * tasks. */
  size_t finished_cache;
  /* Bytes of name + task_type + context over every unfinished task; a
   * submission that would pass it is refused with OEE_EFULL. 0 = none. */
  uint64_t max_queue_bytes;
  /* Task semantics: attempts of a task that names none (0 = 1: no retry),
   * how long an idempotency key holds (0 = OEE_DEFAULT_IDEMPOTENCY_WINDOW),
   * the most dependencies one task may name (0 = OEE_DEFAULT_MAX_DEPENDENCIES). */
  int default_max_attempts;
  uint64_t idempotency_window_seconds;
  size_t max_dependencies;
  /* Schedules at most (0 = OEE_DEFAULT_MAX_SCHEDULES). */
  size_t max_schedules;
  /* Quotas per task type (copied): see oee_type_limit. */
  const oee_type_limit *type_limits;
  size_t n_type_limits;
  /* Types run only by remote workers (oee_engine_poll); copied. A name that
   * is also a built-in type is refused (OEE_EINVAL). */
  const char *const *remote_types;
  size_t n_remote_types;
} oee_engine_config;

/* Creates an engine with the built-in executors registered. `cfg` may be NULL
 * for defaults. The engine starts stopped: see oee_engine_start(). */
int oee_engine_create(const oee_engine_config *cfg, oee_engine **out);
/* oee_engine_create() that says why it failed: with a data_dir, a database
 * that cannot be opened, is not an OEE database, is corrupt, is in use by
 * another engine or has a newer schema is refused with a message naming the
 * file and the cause (the file untouched). */
int oee_engine_open(const oee_engine_config *cfg, oee_engine **out, oee_error *err);
/* 1 when the engine stores its tasks (created with a data_dir). */
int oee_engine_durable(const oee_engine *eng);

/* What a durable engine found in its database when it was created. */
typedef struct oee_recovery {
  uint64_t queued;      /* back in the queue */
  uint64_t interrupted; /* were RUNNING: ended ERROR "interrupted: server restarted" */
  uint64_t finished;    /* kept as they were */
} oee_recovery;
void oee_engine_recovery(const oee_engine *eng, oee_recovery *out);
/* Stops (with a zero drain timeout if still running) and frees everything.
 * All subscriptions must be closed first. */
void oee_engine_destroy(oee_engine *eng);

/* Registers or replaces the executor for `task_type`. */
int oee_engine_register(oee_engine *eng, const char *task_type, oee_executor_fn fn,
                        void *user_data);
/* 1 when an executor exists for `task_type`. */
int oee_engine_has_executor(oee_engine *eng, const char *task_type);
/*
 * Writes the task types a plain oee_engine_submit() accepts (every registered
 * type but internal ones such as `pipeline`), comma-separated and sorted,
 * into buf (always NUL-terminated when cap > 0). Returns the length needed.
 */
size_t oee_engine_executor_names(oee_engine *eng, char *buf, size_t cap);

/* Starts the worker threads. OEE_EINVAL when already started. */
int oee_engine_start(oee_engine *eng);
/*
 * Graceful stop: submissions are refused with OEE_ESTOPPED from now on,
 * queued tasks stay QUEUED, running ones may finish for up to `drain_ms`
 * (< 0: no bound), then their tokens are cancelled and the call waits for
 * them to end; the worker threads are joined. A durable engine then waits
 * until every change is stored and its event published. Safe to call twice.
 */
int oee_engine_stop(oee_engine *eng, int64_t drain_ms);
/* Cancels the token of every running task now (e.g. a second SIGTERM
 * during a drain). Queued tasks are left alone. */
void oee_engine_cancel_running(oee_engine *eng);
/* Refuse new submissions from now on (what a stop does first). */
void oee_engine_refuse_submissions(oee_engine *eng);
/* 1 between start and stop. */
int oee_engine_running(oee_engine *eng);

typedef struct oee_submit {
  const char *name;      /* required, non-empty */
  const char *task_type; /* required; an executor must exist */
  int priority;          /* 0..10 */
  const oee_kv *context; /* may be NULL when context_len == 0 */
  size_t context_len;
  /* Task semantics (all optional: zero means the default). */
  int max_attempts;              /* 1..100; 0 = the engine's default_max_attempts */
  int has_backoff;               /* 1: backoff_seconds given (finite, >= 0) */
  double backoff_seconds;        /* default OEE_DEFAULT_BACKOFF_SECONDS */
  int has_max_backoff;           /* 1: max_backoff_seconds given (finite, >= 0) */
  double max_backoff_seconds;    /* default OEE_DEFAULT_MAX_BACKOFF_SECONDS */
  double timeout_seconds;        /* per attempt, finite, >= 0; 0 = none */
  int has_run_at;                /* 1: run_at_ns given */
  int64_t run_at_ns;             /* CLOCK_REALTIME; past = now */
  const char *idempotency_key;   /* NULL or "" = none; at most 256 bytes */
  const char *const *depends_on; /* task ids, at most max_dependencies */
  size_t depends_on_len;
  /* Set only by the engine's schedules (the firing's task); a caller's
   * submission must leave it NULL. */
  const char *schedule_id;
} oee_submit;

#define OEE_MAX_ATTEMPTS_LIMIT 100
#define OEE_IDEMPOTENCY_KEY_MAX 256
#define OEE_DEFAULT_BACKOFF_SECONDS 1.0
#define OEE_DEFAULT_MAX_BACKOFF_SECONDS 300.0

/*
 * Validates and enqueues a task. On success *out (if not NULL) receives a
 * snapshot of the QUEUED task that the caller must unref. On failure nothing
 * is created and *err (if not NULL) says why.
 * Errors: OEE_EINVAL (empty name or task_type, priority outside 0..10, a
 * duplicate context key, a context the type's executor refuses, `pipeline`
 * without a pipeline spec), OEE_ENOEXEC (no executor; the reason lists the
 * submittable types), OEE_ENOCMD (exec command missing or not in the table),
 * OEE_EFULL (max_queue or max_queue_bytes reached), OEE_ESTOPPED (submissions refused),
 * OEE_ENOMEM.
 */
int oee_engine_submit(oee_engine *eng, const oee_submit *req, const oee_task_info **out,
                      oee_error *err);

/*
 * Called once per accepted asynchronous submission: rc 0 and the QUEUED
 * snapshot (borrowed for the call: take a reference to keep it) once the
 * task is stored and queued, OEE_DUPLICATE and the existing task when the
 * idempotency_key was used within the window, or rc < 0 with the reason
 * (OEE_EIO with "storage: <cause>" when the store could not write it;
 * nothing was created). It runs on the engine's commit thread, or, for the memory
 * store, on the submitting thread before oee_engine_submit_async() returns.
 * It must not block; it may call the engine.
 */
typedef void (*oee_submit_cb)(void *arg, int rc, const oee_task_info *task, const oee_error *err);

/* Not an error: the submission named an idempotency_key that a task
 * submitted within idempotency_window_seconds already used; nothing was
 * created and the acknowledgement carries that task (SubmitTask's
 * `duplicate`). oee_engine_submit() returns it with *out set. */
#define OEE_DUPLICATE 1

/*
 * oee_engine_submit() that never waits for the disk: validates now (a
 * refusal returns its code with *err filled, and `cb` is never called) and
 * returns 0 once the submission is on its way, then calls cb(arg, ...)
 * exactly once. Concurrent submissions share one commit (group commit).
 * oee_engine_submit() is this plus a wait for the callback.
 */
int oee_engine_submit_async(oee_engine *eng, const oee_submit *req, oee_submit_cb cb, void *arg,
                            oee_error *err);

/*
 * Cancels a task. A QUEUED task ends CANCELLED at once; a RUNNING task gets
 * its token cancelled (it ends when its executor honours it). *cancelled is
 * 1 in those two cases and 0 for a finished task, which is left as it is.
 * *out (optional) gets a snapshot after the call. OEE_ENOENT for unknown ids,
 * OEE_ENOMEM when the cancelled snapshot could not be made (nothing changed).
 */
int oee_engine_cancel(oee_engine *eng, const char *id, int *cancelled, const oee_task_info **out);

/* The answer of a cancel: rc 0 with *task borrowed for the call, or the
 * reason it could not be given (OEE_ESTOPPED: the engine stopped before the
 * change was stored). */
typedef void (*oee_cancel_cb)(void *arg, int rc, int cancelled, const oee_task_info *task);
/*
 * oee_engine_cancel() that never waits for the disk: OEE_EINVAL, OEE_ENOENT
 * or OEE_ENOMEM at once (cb never called), else 0 and cb is called exactly
 * once: before this returns, or, when a durable engine cancelled a queued
 * task, on the commit thread once the CANCELLED change is stored (a caller
 * is never told of a state a crash could undo).
 */
int oee_engine_cancel_async(oee_engine *eng, const char *id, oee_cancel_cb cb, void *arg);

/* Snapshot of one task, or OEE_ENOENT. */
int oee_engine_get(oee_engine *eng, const char *id, const oee_task_info **out);

typedef struct oee_list_query {
  oee_task_status status; /* OEE_TASK_UNSPECIFIED = any */
  const char *task_type;  /* NULL or "" = any */
  uint64_t after_index;   /* resume after this submit_index (0 = start) */
  size_t limit;           /* max tasks returned (0 = none, count only) */
} oee_list_query;

typedef struct oee_list_page {
  const oee_task_info **tasks; /* `len` snapshots, oldest first */
  size_t len;
  size_t total;        /* matches over the whole store */
  uint64_t next_index; /* 0 when there is no further page */
} oee_list_page;

/* Lists tasks in submission order. Free with oee_list_page_free(). */
int oee_engine_list(oee_engine *eng, const oee_list_query *q, oee_list_page *out);
void oee_list_page_free(oee_list_page *page);

/*
 * RetryTask: a task in ERROR or CANCELLED is queued again (or SCHEDULED
 * for a future run_at) with attempt 0 and its full max_attempts, as a fresh
 * submission would be. OEE_ESTATE for any other status (the reason names
 * it), OEE_EINVAL, OEE_ENOENT. cb as for oee_engine_submit_async(): called
 * once the change is stored (durable) or before this returns (memory).
 */
int oee_engine_retry_async(oee_engine *eng, const char *id, oee_submit_cb cb, void *arg,
                           oee_error *err);
/* The same, waiting: *out (optional) gets the task after the change. */
int oee_engine_retry(oee_engine *eng, const char *id, const oee_task_info **out, oee_error *err);

/* Drops finished tasks except the `keep_recent` most recently completed.
 * Returns the number removed (>= 0) or OEE_EINVAL for a negative count. */
long oee_engine_clear_completed(oee_engine *eng, long keep_recent);

/* The answer of a count-returning call: rc 0 and n, or rc < 0 and *err. */
typedef void (*oee_count_cb)(void *arg, int rc, long n, const oee_error *err);
/*
 * oee_engine_clear_completed() that never waits for the disk: OEE_EINVAL
 * for a negative count or OEE_ENOMEM at once (cb never called), else 0 and
 * cb is called exactly once: before this returns for the memory store, or
 * on the commit thread once the deletions are stored (in chunks, so a large
 * clear never holds the queue up). A durable engine deletes what is stored:
 * a task whose final state is not stored yet is not finished for it.
 */
int oee_engine_clear_completed_async(oee_engine *eng, long keep_recent, oee_count_cb cb, void *arg);

typedef struct oee_worker_status {
  int worker_id;
  int busy;
  char current_task_id[OEE_ID_LEN + 1]; /* "" when idle */
  uint64_t tasks_completed;             /* DONE */
  uint64_t tasks_failed;                /* ERROR */
} oee_worker_status;

/* A quota and its use now (oee_status). task_type lives as long as the
 * engine. */
typedef struct oee_type_usage {
  const char *task_type;
  int max_running;
  int running; /* tasks of the type running now */
  double max_per_second;
} oee_type_usage;

typedef struct oee_status {
  int running;
  int num_workers;
  uint64_t queue_size;                       /* QUEUED tasks */
  uint64_t by_status[OEE_TASK_STATUS_COUNT]; /* indexed by oee_task_status */
  uint64_t total_tasks;                      /* tasks in the store */
  double uptime_seconds;                     /* since oee_engine_start */
  oee_worker_status *workers;                /* num_workers entries */
  /* One per quota, in the order they were configured: */
  struct oee_type_usage *type_limits; /* n_type_limits entries */
  size_t n_type_limits;
} oee_status;

/* Fills *out; free with oee_status_free(). Never scans the tasks. */
int oee_engine_status(oee_engine *eng, oee_status *out);
void oee_status_free(oee_status *st);

/* --------------------------------------------------------------- metrics */

/*
 * What the engine did since it was created, for a metrics endpoint. The
 * counters are relaxed atomic adds made where the engine works anyway (no
 * lock of their own); reading them takes no lock and stops nobody.
 *
 * Histograms have fixed buckets suited to seconds: an observation counts in
 * the first bucket whose upper bound it does not exceed, bounds 0.5 ms, 1,
 * 2.5, 5, 10, 25, 50, 100, 250, 500 ms, 1, 2.5, 5, 10, 30, 60, 300 s, and
 * +Inf for the last bucket.
 */
#define OEE_HISTOGRAM_BUCKETS 18
/* The upper bounds of the first OEE_HISTOGRAM_BUCKETS - 1 buckets, in ns. */
extern const int64_t oee_histogram_bounds_ns[OEE_HISTOGRAM_BUCKETS - 1];
/* The bucket (0..OEE_HISTOGRAM_BUCKETS - 1) an observation of `ns` counts in. */
int oee_histogram_bucket(int64_t ns);

typedef struct oee_histogram {
  uint64_t buckets[OEE_HISTOGRAM_BUCKETS]; /* observations per bucket, not cumulative */
  uint64_t count;                          /* the sum of buckets */
  uint64_t sum_ns;                         /* of every observation */
} oee_histogram;

/* One task type's counts. */
typedef struct oee_type_metrics {
  const char *task_type; /* lives as long as the engine */
  /* Acknowledged submissions (a repeated idempotency key creates nothing
   * and is not one; a RetryTask is not one either). */
  uint64_t submitted;
  /* Changes into DONE, ERROR and CANCELLED, indexed by that status (the
   * other entries are 0); a task retried with RetryTask counts again. */
  uint64_t finished[OEE_TASK_STATUS_COUNT];
  uint64_t retries; /* failed attempts scheduled to run again */
  /* QUEUED -> RUNNING: from the moment the task became QUEUED (created,
   * its run_at passed, its dependencies were done, its retry was due) to
   * the start of the attempt. A task recovered from the database counts
   * from max(created_at, run_at). */
  oee_histogram queue_wait;
  /* The start of an attempt to its end (an attempt interrupted by a
   * restart is not measured). */
  oee_histogram run;
} oee_type_metrics;

/* Called once per counted type by oee_engine_type_metrics(); `m` is
 * borrowed for the call. */
typedef void (*oee_type_metrics_fn)(void *arg, const oee_type_metrics *m);
/*
 * Calls fn for every task type the engine counts, in the order they were
 * registered: its executors (built-in and registered, up to 64 types) and
 * its remote types. Tasks of other types are not counted. Takes no lock.
 */
void oee_engine_type_metrics(oee_engine *eng, oee_type_metrics_fn fn, void *arg);

/* The engine as a whole: gauges read now, and the store's commits. */
typedef struct oee_metrics {
  uint64_t by_status[OEE_TASK_STATUS_COUNT]; /* as oee_engine_status() counts */
  int workers_busy;                          /* in-process workers running a task */
  size_t remote_workers;                     /* as oee_engine_remote_workers() lists */
  uint64_t store_bytes;        /* the database file and its WAL; 0 without a data_dir */
  oee_histogram store_commits; /* with a data_dir, one per group commit: from the
                                * start of its write until it is stored under
                                * `sync` (written, and flushed when sync is
                                * full); all zero without one */
} oee_metrics;

/* Fills *out (takes the engine lock briefly, like oee_engine_status()).
 * 0 or OEE_ENOMEM. */
int oee_engine_metrics(oee_engine *eng, oee_metrics *out);

/* ---------------------------------------------------------------- events */

typedef struct oee_sub oee_sub;

typedef struct oee_sub_filter {
  const char *const *task_ids;
  size_t n_task_ids; /* empty = all */
  const char *const *task_types;
  size_t n_task_types; /* empty = all */
  const oee_task_status *statuses;
  size_t n_statuses; /* empty = all */
  const char *const *schedule_ids;
  size_t n_schedule_ids; /* empty = all: else only tasks these schedules made */
} oee_sub_filter;

/* 1 when the filter lets `t` through. */
int oee_sub_filter_match(const oee_sub_filter *f, const oee_task_info *t);

/*
 * Subscribes to task changes. Every change publishes one event (the task
 * snapshot after it, whose `seq` is strictly increasing engine-wide). Events
 * that pass `filter` (copied; NULL = all) are buffered, at most `capacity`
 * of them (0 = OEE_DEFAULT_SUB_CAPACITY). A subscriber whose buffer is full when an event
 * arrives is dropped: it gets OEE_EOVERFLOW once its buffer is drained;
 * publishers never wait for it. With `snapshot` set, the buffer first holds
 * one event per matching existing task (with that task's latest seq) in
 * submission order, taken atomically with the subscription; if they do not
 * fit in `capacity`, OEE_EOVERFLOW is returned and nothing is created.
 */
int oee_engine_subscribe(oee_engine *eng, const oee_sub_filter *filter, size_t capacity,
                         int snapshot, oee_sub **out);
/* Takes the next event without waiting: 0 and *ev (caller unrefs), or
 * OEE_EAGAIN (empty), OEE_EOVERFLOW (dropped), OEE_ECLOSED (closed). */
int oee_sub_next(oee_sub *sub, const oee_task_info **ev);
/* Like oee_sub_next() but waits up to timeout_ms (< 0: forever). Returns
 * OEE_ETIMEDOUT when nothing arrived. */
int oee_sub_wait(oee_sub *sub, const oee_task_info **ev, int64_t timeout_ms);
/* 1 once the subscriber was dropped for overflowing (whatever is still
 * buffered will be followed by OEE_EOVERFLOW). */
int oee_sub_dropped(oee_sub *sub);
/* Events waiting in the buffer. */
size_t oee_sub_pending(oee_sub *sub);
/* Wakes waiters with OEE_ECLOSED (once the buffer is drained) and detaches
 * from publishers. The subscription stays valid until oee_sub_free(). */
void oee_sub_close(oee_sub *sub);
/* Closes if needed and frees, dropping buffered events. */
void oee_sub_free(oee_sub *sub);

/* ------------------------------------------------------------ utilities */

/* 1 when `s` is a canonical (36-char, hyphenated) UUID in any case. */
int oee_id_valid(const char *s);
/* CLOCK_REALTIME in ns. */
int64_t oee_now_ns(void);

/* ------------------------------------------------------------- schedules */

/*
 * Cron schedules: each firing submits one task from the schedule's
 * template with schedule_id set and the idempotency key
 * "<schedule_id>@<YYYY-MM-DDTHH:MM:SSZ>" (the firing's time), so no firing
 * is submitted twice, even across a crash. With a data_dir schedules are
 * stored and come back at create: the latest firing missed while the engine
 * was down runs once, the others count as skipped.
 */
typedef enum oee_overlap {
  OEE_OVERLAP_UNSPECIFIED = 0, /* = SKIP */
  OEE_OVERLAP_SKIP = 1,        /* a firing while the previous firing's task is
                                * unfinished is skipped (counted) */
  OEE_OVERLAP_ALLOW = 2,
} oee_overlap;

#define OEE_SCHEDULE_ID_MAX 64
#define OEE_DEFAULT_MAX_SCHEDULES 10000

typedef struct oee_schedule_spec {
  const char *schedule_id; /* [a-z0-9._-]{1,64} */
  const char *cron;        /* five fields, or @hourly ... @every <N>s|m|h (core/cron.h) */
  const char *time_zone;   /* IANA name; NULL or "" = "UTC" */
  const oee_submit *task;  /* checked as oee_engine_submit() would; run_at and
                            * idempotency_key are refused */
  oee_overlap overlap;
  int paused;
} oee_schedule_spec;

/* A schedule as it is now: a copy the caller frees with oee_schedule_free(). */
typedef struct oee_schedule {
  char schedule_id[OEE_SCHEDULE_ID_MAX + 1];
  const char *cron, *time_zone;
  oee_submit task;     /* the template (its strings live in the copy) */
  oee_overlap overlap; /* effective: SKIP for UNSPECIFIED */
  int paused;
  int64_t next_run_ns;               /* CLOCK_REALTIME; 0 while paused */
  int64_t last_run_ns;               /* the latest firing's time; 0 before the first */
  char last_task_id[OEE_ID_LEN + 1]; /* "" before the first task */
  int64_t runs, skipped;
  int64_t created_at_ns;
} oee_schedule;

void oee_schedule_free(oee_schedule *s);
/* 1 for a valid schedule_id: 1 to 64 of a-z, 0-9, '.', '_', '-'. */
int oee_schedule_id_valid(const char *id);

/* Told once a change of a schedule is stored: rc 0 and s (the schedule
 * after it, the callee's to free with oee_schedule_free; NULL after a
 * delete), or the error. Called on the store's commit thread (or, for the
 * memory store, before the call returns), with no engine lock held. */
typedef void (*oee_schedule_cb)(void *arg, int rc, oee_schedule *s, const oee_error *err);

/* Creates a schedule (stored before it returns, with a data_dir). *out, if
 * not NULL, gets the new schedule. OEE_EINVAL naming the bad field,
 * OEE_EEXISTS for a schedule_id in use, OEE_EFULL beyond max_schedules,
 * OEE_ESTOPPED, OEE_EIO. */
int oee_engine_schedule_create(oee_engine *eng, const oee_schedule_spec *spec, oee_schedule **out,
                               oee_error *err);
/* The schedule `id`: 0, OEE_ENOENT, OEE_ENOMEM. */
int oee_engine_schedule_get(oee_engine *eng, const char *id, oee_schedule **out);
/* Up to `limit` schedules with ids after `after` (NULL or "": from the
 * first), in id order: *out (oee_schedule_list_free()) and *n; *more is 1
 * when others follow. 0 or OEE_ENOMEM. */
int oee_engine_schedule_list(oee_engine *eng, const char *after, size_t limit, oee_schedule ***out,
                             size_t *n, int *more);
void oee_schedule_list_free(oee_schedule **v, size_t n);
/* The same three changes without waiting for the store: a refusal returns
 * its code and calls nothing; otherwise cb (see oee_schedule_cb) is called
 * once, when the change is stored. */
int oee_engine_schedule_create_async(oee_engine *eng, const oee_schedule_spec *spec,
                                     oee_schedule_cb cb, void *arg, oee_error *err);
int oee_engine_schedule_delete_async(oee_engine *eng, const char *id, oee_schedule_cb cb, void *arg,
                                     oee_error *err);
int oee_engine_schedule_pause_async(oee_engine *eng, const char *id, int paused, oee_schedule_cb cb,
                                    void *arg, oee_error *err);
/* Deletes the schedule (tasks it created stay): 0, OEE_ENOENT. */
int oee_engine_schedule_delete(oee_engine *eng, const char *id, oee_error *err);
/* Pauses (1) or resumes (0) it; a resume fires next at the first time after
 * now (no catch-up for the pause). *out as for create. 0, OEE_ENOENT. */
int oee_engine_schedule_pause(oee_engine *eng, const char *id, int paused, oee_schedule **out,
                              oee_error *err);

/* -------------------------------------------------------- remote workers */

/*
 * Tasks of the remote_types are run by programs outside the engine: a
 * worker polls (oee_engine_poll) and gets leases on QUEUED tasks of its
 * types, taken in the queue's order (priority, then submission), each task
 * then RUNNING with its attempt counted and remote_worker_id set. A lease
 * lives lease_seconds unless a heartbeat extends it; one that expires fails
 * the attempt "lease expired: worker <worker_id> lost" (retried if attempts
 * remain; CANCELLED when a cancel was asked), as does timeout_seconds. The
 * worker ends a lease with oee_engine_lease_complete or _fail. A poll that
 * finds nothing waits (parked: no thread, no timer tick) until a task of
 * its types is queued or wait_seconds pass; waiting polls are served first
 * come, first served. After a restart every lease is gone: its task was
 * RUNNING and follows the recovery rule for interrupted tasks.
 */
#define OEE_WORKER_ID_MAX 128
#define OEE_POLL_MAX_TASKS 100
#define OEE_POLL_MAX_WAIT_SECONDS 60.0
#define OEE_LEASE_MIN_SECONDS 1.0
#define OEE_LEASE_MAX_SECONDS 3600.0
#define OEE_HEARTBEAT_MAX_LEASES 1000
#define OEE_ENDED_LEASES_KEPT 100000

/* One lease as a poll delivers it (borrowed for the callback). */
typedef struct oee_lease {
  char lease_id[OEE_ID_LEN + 1];
  const oee_task_info *task; /* RUNNING; take a reference to keep it */
  int64_t expires_at_ns;     /* CLOCK_REALTIME */
} oee_lease;

typedef struct oee_poll_req {
  const char *worker_id;         /* 1..OEE_WORKER_ID_MAX bytes */
  const char *peer;              /* where it called from (shown); may be NULL */
  const char *const *task_types; /* 1 or more, each a remote type */
  size_t n_task_types;
  int max_tasks;        /* 1..OEE_POLL_MAX_TASKS */
  double wait_seconds;  /* 0..OEE_POLL_MAX_WAIT_SECONDS; 0 = answer at once */
  double lease_seconds; /* OEE_LEASE_MIN_SECONDS..OEE_LEASE_MAX_SECONDS */
  /* Asked, engine lock held, before tasks are leased to a waiting poll:
   * 0 means its caller went away (the poll is dropped, cb told
   * OEE_ECLOSED). Must be cheap, must not call the engine, and may take
   * only a leaf lock of its own (the server reads its call's state under
   * the call's mutex). NULL = always alive. */
  int (*alive)(void *arg);
} oee_poll_req;

/* The answer of a poll: rc 0 with n leases (0: nothing came in time),
 * OEE_ESTOPPED (the engine stopped accepting work) or OEE_ECLOSED (alive()
 * said 0). Returns 0 when the leases reached the worker; anything else
 * makes them expire at once (their attempts fail as lost). Called with no
 * engine lock held, on the polling thread, the engine's timer thread or,
 * with a data_dir, its commit thread (leases are delivered once their
 * RUNNING change is stored). */
typedef int (*oee_poll_cb)(void *arg, int rc, const oee_lease *leases, size_t n);

/* The caller's handle of a poll (zero it): it must stay put until cb has
 * been called or oee_engine_poll_cancel() returned 1. Its fields are the
 * engine's. */
typedef struct oee_poll {
  int state;
  struct oee__poll *impl;
} oee_poll;

/* Polls for leases. Checks the request (OEE_EINVAL naming the field, cb
 * not called; OEE_ESTOPPED when not accepting; OEE_ENOMEM); else returns 0
 * and calls cb exactly once (maybe before returning), unless
 * oee_engine_poll_cancel() takes the poll back first. `p` is the caller's
 * zeroed handle (see oee_poll); req's strings must live until cb. */
int oee_engine_poll(oee_engine *eng, oee_poll *p, const oee_poll_req *req, oee_poll_cb cb,
                    void *arg, oee_error *err);
/* Takes a waiting poll back (its caller went away): 1 when it was still
 * waiting (cb will not be called), 0 when cb was or is being called. */
int oee_engine_poll_cancel(oee_engine *eng, oee_poll *p);

/* A lease as a heartbeat finds it. */
typedef struct oee_lease_state {
  int64_t expires_at_ns; /* the new expiry; 0 when lost */
  int cancel_requested;
  int lost; /* expired, finished, unknown or another worker's */
} oee_lease_state;

/* Extends the leases of worker_id named in ids[n] (1..1000) to now +
 * *extend_seconds (NULL: each lease's own length; else 1..3600) and fills
 * out[n]. OEE_EINVAL naming the field (nothing changed). */
int oee_engine_heartbeat(oee_engine *eng, const char *worker_id, const char *peer,
                         const char *const *ids, size_t n, const double *extend_seconds,
                         oee_lease_state *out, oee_error *err);

/* How a remote attempt ended. */
typedef struct oee_lease_end {
  const char *lease_id;
  const char *worker_id; /* NULL or "": not checked; else must hold the lease */
  const char *peer;      /* may be NULL */
  int ok;                /* 1: DONE with result; 0: failed with message */
  const char *result;
  const char *message;
  int retryable; /* for a failure: 0 ends the task ERROR */
} oee_lease_end;

/* Told once a lease's end is stored: rc 0 and the task after it, or the
 * error. Same threads as oee_schedule_cb. */
typedef void (*oee_lease_cb)(void *arg, int rc, const oee_task_info *task);

/* Ends a lease: 0 and cb called once (maybe before returning); or
 * OEE_EINVAL (malformed lease_id or worker_id), OEE_ENOENT (unknown, or
 * another worker's), OEE_ESTATE (expired or already ended: the outcome is
 * discarded), OEE_ENOMEM, each with *err saying why and cb not called. */
int oee_engine_lease_end(oee_engine *eng, const oee_lease_end *end, oee_lease_cb cb, void *arg,
                         oee_error *err);

/* A remote worker as the engine knows it. */
typedef struct oee_remote_worker {
  const char *worker_id, *peer;
  const char *const *task_types; /* of its last poll */
  size_t n_task_types;
  int64_t last_seen_ns; /* CLOCK_REALTIME of its last call */
  int active_leases;
  uint64_t tasks_completed, tasks_failed;
} oee_remote_worker;

/* The workers heard from within 2 x their last wait_seconds + 10 s, by
 * worker_id: *out (one block; oee_remote_workers_free) and *n. 0 or
 * OEE_ENOMEM. */
int oee_engine_remote_workers(oee_engine *eng, oee_remote_worker **out, size_t *n);
void oee_remote_workers_free(oee_remote_worker *v);
/* 1 when `type` is one of the engine's remote types. */
int oee_engine_is_remote_type(oee_engine *eng, const char *type);

#ifdef __cplusplus
}
#endif

#endif /* OEE_H */
