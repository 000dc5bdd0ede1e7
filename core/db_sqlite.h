/*
 * db_sqlite.h - what db_sqlite.c (opening, schema, writes) and db_read.c
 * (reads) share of the SQLite database; private to them. See db_sqlite.c
 * for the design.
 */
#ifndef OEE_DB_SQLITE_H
#define OEE_DB_SQLITE_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>

#include "core/db.h"

/* The columns every read selects, in oee__db_row_task()'s order; a read
 * that wants the payload selects it after them, as column
 * OEE__DB_N_COLUMNS. `attempt` is -1 in rows stored before schema 3, which
 * never counted attempts: such a row reads as attempt 1 if it ever started,
 * else 0 (see SCHEMA_V3 in db_sqlite.c). */
#define OEE__DB_COLUMNS                                                           \
  "idx, id, seq, name, task_type, status, priority, worker_id,"                   \
  " created_ns, started_ns, completed_ns, result, error, context,"                \
  " CASE WHEN attempt >= 0 THEN attempt ELSE started_ns != 0 END, max_attempts,"  \
  " backoff_s, max_backoff_s, timeout_s, run_at_ns, idempotency_key, depends_on," \
  " schedule_id, remote_worker_id"
#define OEE__DB_N_COLUMNS 24

/* The statuses as sets, for the SQL that must not list them by hand (the
 * numbers are oee_task_status's, checked in db_sqlite.c). A finished row is
 * DONE, ERROR or CANCELLED; SCHEDULED (6) is unfinished: it has not run yet
 * or waits for a retry. The text of OEE__DB_FINISHED is also the condition
 * of the partial index tasks_finished, which SQLite uses only for a query
 * whose WHERE repeats that term. */
#define OEE__DB_FINISHED "status IN (3, 4, 5)"
#define OEE__DB_UNFINISHED "status IN (1, 2, 6)"

/* The few single-row reads keep their statements prepared per connection
 * (read_one in db_read.c), keyed by the SQL text's address. */
#define OEE__DB_READER_STMTS 4

typedef struct oee__db_reader {
  struct oee__db_reader *next;
  sqlite3 *conn;
  const char *sql[OEE__DB_READER_STMTS];
  sqlite3_stmt *stmt[OEE__DB_READER_STMTS];
} oee__db_reader;

/* Stored tasks of one type by status. `stored` is what the file holds after
 * the last commit (read under counts_lock); `pending` is what the write in
 * progress changes (the writer's own, under write_lock). */
typedef struct oee__db_count {
  struct oee__db_count *next; /* set once, under counts_lock */
  uint64_t stored[OEE_TASK_STATUS_COUNT];
  int64_t pending[OEE_TASK_STATUS_COUNT];
  char type[];
} oee__db_count;

struct oee_db {
  char *path;       /* <dir>/oee.db; immutable */
  int lock_fd;      /* flock'ed <dir>/oee.lock; immutable */
  char *dir;        /* immutable */
  oee_db_sync sync; /* immutable */
  pthread_mutex_t sync_lock;
  int wal_fd; /* guarded by sync_lock: the WAL, opened for fsync at first use */
  pthread_mutex_t write_lock;
  sqlite3 *writer;         /* guarded by write_lock */
  sqlite3_stmt *upsert;    /* guarded by write_lock */
  sqlite3_stmt *remove;    /* guarded by write_lock */
  sqlite3_stmt *oldest;    /* guarded by write_lock */
  sqlite3_stmt *meta_set;  /* guarded by write_lock */
  sqlite3_stmt *sched_put; /* guarded by write_lock */
  sqlite3_stmt *sched_del; /* guarded by write_lock */
  pthread_mutex_t counts_lock;
  oee__db_count *counts; /* guarded by counts_lock; only the writer adds */
  pthread_mutex_t pool_lock;
  oee__db_reader *idle; /* guarded by pool_lock */
  size_t n_idle;        /* guarded by pool_lock */
};

/* "storage: <what>: <sqlite's words>" with OEE_EIO. */
int oee__db_fail(oee_error *err, sqlite3 *conn, const char *what);

/* A snapshot from a row of OEE__DB_COLUMNS; NULL when out of memory or the
 * stored context does not decode. */
oee_task_info *oee__db_row_task(sqlite3_stmt *st);

/* db_write.c: prepares the writer's statements, and finalizes them. */
int oee__db_writer_prepare(oee_db *db, oee_error *err);
void oee__db_writer_release(oee_db *db);
/* db_write.c: counts the stored tasks (at open). */
int oee__db_counts_load(oee_db *db, oee_error *err);

/* Closes the idle read connections (at close). */
void oee__db_readers_close(oee_db *db);

#endif /* OEE_DB_SQLITE_H */
