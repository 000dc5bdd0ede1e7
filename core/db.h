/*
 * db.h - the durable database behind the task store.
 *
 * The engine keeps what it schedules from (the queue, the unfinished tasks
 * and a bounded cache of recently finished ones) in memory; the database
 * keeps every task, so that a restart finds them again and finished tasks
 * need no memory at all. This interface is what a database must offer for
 * that: SQLite (embedded, db_sqlite.c) today, PostgreSQL shared by several
 * replicas next.
 *
 * DESIGN
 * Writes: one thread at a time calls oee_db_write() (the committer, which
 * batches many changes into one call: group commit). A write either stores
 * the whole batch durably (under the configured sync mode) or nothing.
 * Reads: oee_db_get(), oee_db_find_key(), oee_db_list() and oee_db_counts()
 * may be called from any thread, at the same time as a write; each sees a
 * committed state (never half of a batch). Recovery: oee_db_load() runs
 * once, before any write, and loads only the unfinished tasks (QUEUED,
 * RUNNING and SCHEDULED: SCHEDULED has not run yet, or waits to run
 * again).
 *
 * A task row is the task's latest snapshot, every field of oee_task_info
 * included: the engine writes the whole snapshot at each change (an upsert
 * by submit index), so a row never mixes two changes; each row write says
 * which status the row held before, so the database keeps exact counts
 * without reading rows back. Rows are ordered by `submit_index`; `seq` is
 * the event counter of the change a row holds. Counters that must survive
 * restarts (the last submit index and the last event sequence) are kept
 * with the batch that advanced them. Finished rows (DONE, ERROR, CANCELLED)
 * leave through purges (oldest completed first, by age or beyond a count),
 * which report the ids they deleted so caches can follow.
 *
 * PLAN: PostgreSQL shared by several server replicas (not built yet). The
 * operations above stay; what changes is who owns a task:
 *  - Ownership by lease, not by process memory. Today the process that
 *    loaded a QUEUED row owns it until it ends. With replicas, a replica
 *    claims work in its own transaction:
 *      SELECT idx FROM tasks WHERE status = QUEUED
 *        ORDER BY priority DESC, idx LIMIT n FOR UPDATE SKIP LOCKED;
 *      UPDATE tasks SET status = RUNNING, lease_owner = $me,
 *        lease_until = now() + lease ...;
 *    so two replicas never take the same row and neither waits for the
 *    other. A replica renews its leases while it runs them; a lease that
 *    expires (a dead replica) makes the row claimable again as an
 *    interrupted attempt, the same rule recovery applies at start here.
 *    oee_db_load() becomes "claim" and the in-memory heap a local buffer of
 *    claimed rows, refilled in batches.
 *  - Events across replicas: every commit that changes rows ends with
 *    NOTIFY oee_events, '<last seq>'; each replica LISTENs and, woken, reads
 *    the rows with seq above the last it published (an index on seq), so a
 *    watcher on any replica sees every change once, in seq order. The event
 *    counter and the submit index become database sequences (nextval), so
 *    numbers stay unique across replicas; `meta` keeps nothing.
 *  - Counts: a counts table (task_type, status, n) updated in the same
 *    transaction as the rows (the `from` of each row write already says
 *    which cell to decrement), read by oee_db_counts() with a short cache.
 *  - Group commit stays per replica: a batch is one transaction; sync:full
 *    maps to synchronous_commit = on, normal to off.
 *  - Purges run on one replica at a time (pg_try_advisory_lock), with the
 *    same DELETE ... oldest first ... LIMIT and RETURNING id.
 *  - Idempotency keys, dependencies and schedules are indexes and rows in
 *    the same database (keys: the partial index oee_db_find_key() reads),
 *    so a claim and its effects commit together; with several replicas a
 *    key's check and its insert must share a transaction (or a unique
 *    index on the key within its window), which one writer makes
 *    unnecessary today.
 *  - Remote workers' leases (lease.c) live in the memory of the replica
 *    that granted them today: a restart ends them, so only the worker's
 *    id (remote_worker_id) is stored with the RUNNING row. With replicas a
 *    worker's Heartbeat or CompleteTask may reach another replica, so the
 *    lease becomes columns of the row (lease_id, lease_owner = the worker,
 *    lease_until) written with the RUNNING change: any replica extends or
 *    ends it with one UPDATE ... WHERE lease_id = $1 AND lease_until >
 *    now(), and expiry is the replica-lease sweep above. Parked polls stay
 *    per replica and are woken by the same NOTIFY that carries events.
 * The engine talks to this interface only, so that store is a new
 * oee_db implementation plus the claim/lease calls; the engine's queue,
 * workers and events are unchanged.
 */
#ifndef OEE_DB_H
#define OEE_DB_H

#include <stddef.h>
#include <stdint.h>

#include "core/oee.h"

typedef struct oee_db oee_db;

typedef enum oee_db_sync {
  OEE_DB_SYNC_FULL = 0,   /* every commit is on stable storage (fsync) */
  OEE_DB_SYNC_NORMAL = 1, /* commits survive a killed process, not a power loss */
} oee_db_sync;

typedef struct oee_db_config {
  const char *dir; /* data directory; created mode 0700 if missing */
  oee_db_sync sync;
} oee_db_config;

/*
 * Opens (creating if needed) the database in cfg->dir and locks it for this
 * process. Refused with a reason naming the file and the cause, the file
 * untouched: not a database or not ours (OEE_EINVAL), corrupt (OEE_EIO), in
 * use by another running server (OEE_EEXISTS), a newer schema (OEE_ESTATE),
 * unreadable or uncreatable (OEE_EIO). Older schemas are migrated.
 */
int oee_db_open(const oee_db_config *cfg, oee_db **out, oee_error *err);
/* Closes the database and releases its lock. NULL is ignored. */
void oee_db_close(oee_db *db);
/* The path of the database file (borrowed; lives as long as db). */
const char *oee_db_path(const oee_db *db);

/* The counters stored with the last batch (0 for a new database). */
typedef struct oee_db_meta {
  uint64_t last_index; /* highest submit_index ever stored */
  uint64_t last_seq;   /* highest event sequence ever stored */
} oee_db_meta;

int oee_db_meta_get(oee_db *db, oee_db_meta *out, oee_error *err);

/* One row to insert or replace (by submit index), and the status the row
 * held before (-1 for a new row), which keeps the stored counts exact
 * without reading the old row back. */
typedef struct oee_db_row {
  const oee_task_info *task;
  int from;
  const void *payload; /* the executor's bytes (pipelines), or NULL: the
                        * row keeps the ones it has */
  size_t payload_len;
} oee_db_row;

/*
 * A deletion of finished rows (DONE, ERROR, CANCELLED), oldest completed
 * first, as retention and ClearCompletedTasks need it: rows completed before
 * `before_ns` (0 = no age rule) and rows beyond the newest `keep` finished
 * ones (UINT64_MAX = no count rule), at most `limit` of them. The write
 * reports what it deleted: their ids in `ids` (room for `limit`, may be NULL)
 * and their number in `deleted`. Cost: O(limit) through the index of
 * finished rows, whatever the number of stored tasks.
 */
typedef struct oee_db_purge {
  int64_t before_ns;
  uint64_t keep;
  size_t limit;
  char (*ids)[OEE_ID_LEN + 1]; /* out */
  size_t deleted;              /* out */
} oee_db_purge;

/* A schedule's row: its id and the bytes the engine keeps for it
 * (schedule.c's form; the database does not read them). body NULL deletes
 * the row. */
typedef struct oee_db_sched {
  const char *id;
  const void *body;
  size_t len;
} oee_db_sched;

/* One atomic, durable write. */
typedef struct oee_db_batch {
  const oee_db_row *rows;
  size_t n_rows;
  oee_db_purge *const *purges; /* applied before the rows */
  size_t n_purges;
  const oee_db_sched *const *scheds; /* after the rows, in order */
  size_t n_scheds;
  oee_db_meta meta; /* stored with the batch */
} oee_db_batch;

/* Stores the batch in one transaction. On failure (disk full, I/O error)
 * nothing of it is stored, the reason says why ("storage: ..."), and later
 * writes may succeed again once the cause is gone. One writer at a time.
 * A written batch survives a killed process at once; with OEE_DB_SYNC_FULL
 * it survives a power loss only after oee_db_flush() (so that the writer can
 * go on with the next batch while the disk syncs this one). */
int oee_db_write(oee_db *db, const oee_db_batch *batch, oee_error *err);

/* 1 when written batches wait for oee_db_flush() to be on stable storage
 * (OEE_DB_SYNC_FULL), 0 when there is nothing to wait for. */
int oee_db_needs_flush(const oee_db *db);
/* Puts every batch written before the call on stable storage (fsync of the
 * write-ahead log). Any thread, beside the writer. A failure (OEE_EIO,
 * "storage: ...") means those batches may not survive a power loss and a
 * retry cannot tell (the kernel may have dropped the pages). */
int oee_db_flush(oee_db *db, oee_error *err);

/* Called for each task oee_db_load() finds, with its payload bytes (NULL
 * when none; borrowed for the call); the callee takes the reference on t.
 * A non-zero return stops the load with that code. */
typedef int (*oee_db_load_fn)(const oee_task_info *t, const void *payload, size_t payload_len,
                              void *arg);

/* Recovery: calls fn for every unfinished stored task (QUEUED, RUNNING,
 * SCHEDULED) in submission order. Finished tasks (DONE, ERROR, CANCELLED)
 * stay on disk. Cost: O(unfinished) rows read through an index, however
 * many finished rows are stored. */
int oee_db_load(oee_db *db, oee_db_load_fn fn, void *arg, oee_error *err);

/* The stored tasks by status, of one type (NULL or "" = all types), as of
 * the last write; kept in memory from the rows each write carried, so this
 * costs O(types). Any thread. */
void oee_db_counts(oee_db *db, const char *task_type, uint64_t by_status[OEE_TASK_STATUS_COUNT]);

/* The stored task with this id (any case): 0 and a new snapshot the caller
 * unrefs, OEE_ENOENT, or another error. Any thread. */
int oee_db_get(oee_db *db, const char *id, const oee_task_info **out, oee_error *err);

/* Calls fn(id, body, len, arg) for every stored schedule, in id order (at
 * create, before anything writes); a non-zero return stops and is
 * returned. The strings and bytes are borrowed for the call. */
typedef int (*oee_db_sched_fn)(const char *id, const void *body, size_t len, void *arg);
int oee_db_load_schedules(oee_db *db, oee_db_sched_fn fn, void *arg, oee_error *err);

/* The stored task with this id and its payload bytes (*payload: a new
 * buffer to oee_free, NULL when the row has none). As oee_db_get(). */
int oee_db_get_payload(oee_db *db, const char *id, const oee_task_info **out, void **payload,
                       size_t *payload_len, oee_error *err);

/*
 * The stored task with this idempotency key that was created last (largest
 * created_at, then largest submit index) among those created at or after
 * `created_after_ns` (CLOCK_REALTIME ns; 0 = any time): 0 and a new
 * snapshot the caller unrefs; OEE_ENOENT when there is none; OEE_EINVAL for
 * a NULL or empty key (tasks without a key have ""); or another error.
 * Keys are compared byte for byte. Cost: one index seek, O(log n). Any
 * thread. It sees committed rows only: a key in a batch not yet written is
 * the caller's to know.
 */
int oee_db_find_key(oee_db *db, const char *key, int64_t created_after_ns,
                    const oee_task_info **out, oee_error *err);

/*
 * A page of stored tasks in submission order after q->after_index, filtered
 * by status and type: at most q->limit snapshots in out->tasks (free with
 * oee_list_page_free()); out->next_index is the index of the last one when
 * more matches follow, else 0; out->total is the number of matches (from
 * the counts). Cost: O(limit) rows read through an index, whatever the
 * number of stored tasks. Any thread.
 */
int oee_db_list(oee_db *db, const oee_list_query *q, oee_list_page *out, oee_error *err);

/* Failure injection for tests: caps the SQLite file at `pages` pages (0 =
 * SQLite's default), so that writes fail as on a full disk. */
int oee__db_sqlite_max_pages(oee_db *db, long pages);

#endif /* OEE_DB_H */
