/*
 * db_write.c - writes to the SQLite database (db.h): one transaction per
 * batch of rows and purges, and the counts of stored tasks kept beside it.
 *
 * DESIGN
 * A batch is one transaction: its purges first, then its rows (upserts by
 * submit index), then the counters. Every change of a row's status adjusts
 * the counts by (task_type, status): the batch's changes are summed in each
 * type's `pending` while the transaction runs and moved to `stored` only
 * when it commits, so a reader (oee_db_counts) always sees the counts of a
 * committed state, and a failed write leaves them as they were. The counts
 * are loaded once at open (a GROUP BY over an index).
 * A purge selects the oldest finished rows (DONE, ERROR, CANCELLED; never
 * SCHEDULED) through the partial index tasks_finished (completed_ns, idx)
 * and deletes them one by one, so it costs O(limit) however many rows are
 * stored.
 * Threads: one writer at a time (write_lock). counts_lock is a leaf.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/db_codec.h"
#include "core/db_sqlite.h"
#include "core/oee_alloc.h"

/* A new row gets every field; a known one only those that change after
 * submission. The others (the name, type, context, the submission's
 * attempts, backoff, timeout, key, dependencies, schedule) stay as they
 * are: SQLite updates an index whenever the SET names one of its columns,
 * so naming created_ns or idempotency_key would cost a tasks_by_key write
 * at every status change. */
static const char UPSERT[] =
    "INSERT INTO tasks(idx, id, seq, name, task_type, status, priority,"
    " worker_id, created_ns, started_ns, completed_ns, result, error, context, payload,"
    " attempt, max_attempts, backoff_s, max_backoff_s, timeout_s, run_at_ns,"
    " idempotency_key, depends_on, schedule_id, remote_worker_id)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,"
    " ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25)"
    " ON CONFLICT(idx) DO UPDATE SET seq = excluded.seq,"
    " status = excluded.status, priority = excluded.priority,"
    " worker_id = excluded.worker_id, started_ns = excluded.started_ns,"
    " completed_ns = excluded.completed_ns, result = excluded.result,"
    " error = excluded.error, payload = coalesce(excluded.payload, tasks.payload),"
    " attempt = excluded.attempt, run_at_ns = excluded.run_at_ns,"
    " remote_worker_id = excluded.remote_worker_id";
static const char REMOVE[] = "DELETE FROM tasks WHERE idx = ?1";
/* Through tasks_finished, named: without statistics (this database runs no
 * ANALYZE) SQLite prefers three seeks of tasks_by_status and a sort of
 * every finished row, O(finished) instead of O(limit): 113 ms instead of
 * 0.2 ms to pick 256 of 415,000 finished rows (in memory, SQLite 3.40).
 * If the index ever stopped matching the WHERE, preparing this would fail
 * at open rather than purges slowing down. */
static const char OLDEST[] =
    "SELECT idx, id, task_type, status, completed_ns FROM tasks INDEXED BY tasks_finished"
    " WHERE " OEE__DB_FINISHED " ORDER BY completed_ns, idx LIMIT ?1";
static const char META_SET[] =
    "INSERT INTO meta(key, value) VALUES (?1, ?2)"
    " ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)";

static const char SCHED_PUT[] =
    "INSERT INTO schedules(id, body) VALUES (?1, ?2)"
    " ON CONFLICT(id) DO UPDATE SET body = excluded.body";
static const char SCHED_DEL[] = "DELETE FROM schedules WHERE id = ?1";

int oee__db_writer_prepare(oee_db *db, oee_error *err) {
  struct {
    const char *sql;
    sqlite3_stmt **st;
  } all[] = {{UPSERT, &db->upsert},     {REMOVE, &db->remove},       {OLDEST, &db->oldest},
             {META_SET, &db->meta_set}, {SCHED_PUT, &db->sched_put}, {SCHED_DEL, &db->sched_del}};
  for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
    if (sqlite3_prepare_v3(db->writer, all[i].sql, -1, SQLITE_PREPARE_PERSISTENT, all[i].st,
                           NULL) != SQLITE_OK) {
      return oee__db_fail(err, db->writer, "prepare statements");
    }
  }
  return 0;
}

void oee__db_writer_release(oee_db *db) {
  sqlite3_finalize(db->upsert);
  sqlite3_finalize(db->remove);
  sqlite3_finalize(db->oldest);
  sqlite3_finalize(db->meta_set);
  sqlite3_finalize(db->sched_put);
  sqlite3_finalize(db->sched_del);
  while (db->counts) {
    oee__db_count *next = db->counts->next;
    oee_free(db->counts);
    db->counts = next;
  }
}

/* ------------------------------------------------------------ counts */

/* The counts of one type, made on first use (writer only: it is the only
 * thread that adds, so it may walk the list without counts_lock). */
static oee__db_count *count_of(oee_db *db, const char *type) {
  for (oee__db_count *c = db->counts; c; c = c->next) {
    if (strcmp(c->type, type) == 0) return c;
  }
  size_t len = strlen(type) + 1;
  oee__db_count *c = oee_calloc(1, sizeof(*c) + len);
  if (c == NULL) return NULL;
  memcpy(c->type, type, len);
  if (pthread_mutex_lock(&db->counts_lock) != 0) abort();
  c->next = db->counts;
  db->counts = c;
  pthread_mutex_unlock(&db->counts_lock);
  return c;
}

static int count_add(oee_db *db, const char *type, int status, int64_t n, oee_error *err) {
  if (status < 0 || status >= OEE_TASK_STATUS_COUNT) return 0;
  oee__db_count *c = count_of(db, type);
  if (c == NULL) return oee_error_set(err, OEE_ENOMEM, "storage: out of memory counting tasks");
  c->pending[status] += n;
  return 0;
}

/* The transaction committed (1) or not (0): keep or forget its changes. */
static void counts_settle(oee_db *db, int committed) {
  if (pthread_mutex_lock(&db->counts_lock) != 0) abort();
  for (oee__db_count *c = db->counts; c; c = c->next) {
    for (int i = 0; i < OEE_TASK_STATUS_COUNT; i++) {
      if (committed) c->stored[i] = (uint64_t)((int64_t)c->stored[i] + c->pending[i]);
      c->pending[i] = 0;
    }
  }
  pthread_mutex_unlock(&db->counts_lock);
}

int oee__db_counts_load(oee_db *db, oee_error *err) {
  static const char SQL[] =
      "SELECT task_type, status, count(*) FROM tasks GROUP BY task_type, status";
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db->writer, SQL, -1, &st, NULL) != SQLITE_OK) {
    return oee__db_fail(err, db->writer, "count tasks");
  }
  int rc, ret = 0;
  while (ret == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    ret = count_add(db, (const char *)sqlite3_column_text(st, 0), sqlite3_column_int(st, 1),
                    sqlite3_column_int64(st, 2), err);
  }
  if (ret == 0 && rc != SQLITE_DONE) ret = oee__db_fail(err, db->writer, "count tasks");
  sqlite3_finalize(st);
  counts_settle(db, ret == 0);
  return ret;
}

/* Finished tasks stored now (this transaction's changes included). */
static uint64_t finished_now(oee_db *db) {
  uint64_t n = 0;
  for (oee__db_count *c = db->counts; c; c = c->next) {
    for (int i = 0; i < OEE_TASK_STATUS_COUNT; i++) {
      if (oee_task_status_is_terminal((oee_task_status)i)) {
        n += (uint64_t)((int64_t)c->stored[i] + c->pending[i]);
      }
    }
  }
  return n;
}

/* ------------------------------------------------------------ rows */

/* Binds the upsert's parameters but the payload (15). `ctx` and `deps` are
 * the encoded context and depends_on (NULL: none); bound SQLITE_STATIC, they
 * must live until the statement is reset. */
static void bind_task(sqlite3_stmt *st, const oee_task_info *t, const void *ctx, size_t ctx_len,
                      const void *deps, size_t deps_len) {
  sqlite3_bind_int64(st, 1, (sqlite3_int64)t->submit_index);
  sqlite3_bind_text(st, 2, t->id, OEE_ID_LEN, SQLITE_STATIC);
  sqlite3_bind_int64(st, 3, (sqlite3_int64)t->seq);
  sqlite3_bind_text(st, 4, t->name, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 5, t->task_type, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 6, (int)t->status);
  sqlite3_bind_int(st, 7, t->priority);
  sqlite3_bind_int(st, 8, t->worker_id);
  sqlite3_bind_int64(st, 9, t->created_at_ns);
  sqlite3_bind_int64(st, 10, t->started_at_ns);
  sqlite3_bind_int64(st, 11, t->completed_at_ns);
  sqlite3_bind_text(st, 12, t->result, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 13, t->error_message, -1, SQLITE_STATIC);
  if (ctx_len > 0) {
    sqlite3_bind_blob(st, 14, ctx, (int)ctx_len, SQLITE_STATIC);
  } else {
    sqlite3_bind_null(st, 14);
  }
  sqlite3_bind_int(st, 16, t->attempt);
  sqlite3_bind_int(st, 17, t->max_attempts);
  sqlite3_bind_double(st, 18, t->backoff_seconds);
  sqlite3_bind_double(st, 19, t->max_backoff_seconds);
  sqlite3_bind_double(st, 20, t->timeout_seconds);
  sqlite3_bind_int64(st, 21, t->run_at_ns);
  sqlite3_bind_text(st, 22, t->idempotency_key, -1, SQLITE_STATIC);
  if (deps_len > 0) {
    sqlite3_bind_blob(st, 23, deps, (int)deps_len, SQLITE_STATIC);
  } else {
    sqlite3_bind_null(st, 23);
  }
  sqlite3_bind_text(st, 24, t->schedule_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 25, t->remote_worker_id, -1, SQLITE_STATIC);
}

/* Steps a bound write statement once and resets it. */
static int step_write(sqlite3 *conn, sqlite3_stmt *st, const char *what, oee_error *err) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return rc == SQLITE_DONE ? 0 : oee__db_fail(err, conn, what);
}

static int write_row(oee_db *db, const oee_db_row *row, oee_error *err) {
  const oee_task_info *t = row->task;
  void *ctx = NULL, *deps = NULL;
  size_t ctx_len = 0, deps_len = 0;
  if (oee__ctx_encode(t->context, t->context_len, &ctx, &ctx_len) != 0 ||
      oee__strs_encode(t->depends_on, t->depends_on_len, &deps, &deps_len) != 0) {
    oee_free(ctx);
    return oee_error_set(err, OEE_ENOMEM, "storage: out of memory encoding a task");
  }
  bind_task(db->upsert, t, ctx, ctx_len, deps, deps_len);
  if (row->payload != NULL) {
    sqlite3_bind_blob(db->upsert, 15, row->payload, (int)row->payload_len, SQLITE_STATIC);
  } else {
    sqlite3_bind_null(db->upsert, 15);
  }
  int rc = step_write(db->writer, db->upsert, "write a task", err);
  oee_free(ctx);
  oee_free(deps);
  if (rc == 0 && row->from >= 0) rc = count_add(db, t->task_type, row->from, -1, err);
  if (rc == 0) rc = count_add(db, t->task_type, (int)t->status, 1, err);
  return rc;
}

/* ------------------------------------------------------------ purges */

/* One row the purge chose, copied out before anything is deleted. */
typedef struct doomed {
  sqlite3_int64 idx;
  int status;
  char id[OEE_ID_LEN + 1];
  char *type;
} doomed;

/* Selects the rows `p` deletes (at most p->limit, oldest completed first);
 * *n of them in `out`. */
static int purge_select(oee_db *db, const oee_db_purge *p, doomed *out, size_t *n, oee_error *err) {
  uint64_t finished = finished_now(db);
  uint64_t over = p->keep != UINT64_MAX && finished > p->keep ? finished - p->keep : 0;
  sqlite3_stmt *st = db->oldest;
  sqlite3_bind_int64(st, 1, (sqlite3_int64)p->limit);
  int rc;
  *n = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    int64_t completed = sqlite3_column_int64(st, 4);
    if (*n >= over && !(p->before_ns != 0 && completed < p->before_ns)) break;
    doomed *d = &out[*n];
    d->idx = sqlite3_column_int64(st, 0);
    snprintf(d->id, sizeof(d->id), "%s", (const char *)sqlite3_column_text(st, 1));
    d->type = oee_strdup((const char *)sqlite3_column_text(st, 2));
    d->status = sqlite3_column_int(st, 3);
    if (d->type == NULL) {
      rc = SQLITE_NOMEM;
      break;
    }
    (*n)++;
  }
  sqlite3_reset(st);
  if (rc == SQLITE_ROW || rc == SQLITE_DONE) return 0;
  if (rc == SQLITE_NOMEM) return oee_error_set(err, OEE_ENOMEM, "storage: out of memory purging");
  return oee__db_fail(err, db->writer, "find finished tasks");
}

static int purge(oee_db *db, oee_db_purge *p, oee_error *err) {
  p->deleted = 0;
  if (p->limit == 0) return 0;
  doomed *rows = oee_calloc(p->limit, sizeof(*rows));
  if (rows == NULL) return oee_error_set(err, OEE_ENOMEM, "storage: out of memory purging");
  size_t n = 0;
  int rc = purge_select(db, p, rows, &n, err);
  for (size_t i = 0; rc == 0 && i < n; i++) {
    sqlite3_bind_int64(db->remove, 1, rows[i].idx);
    rc = step_write(db->writer, db->remove, "delete a task", err);
    if (rc == 0) rc = count_add(db, rows[i].type, rows[i].status, -1, err);
    if (rc == 0 && p->ids) memcpy(p->ids[i], rows[i].id, sizeof(rows[i].id));
  }
  if (rc == 0) p->deleted = n;
  for (size_t i = 0; i < n; i++) oee_free(rows[i].type);
  oee_free(rows);
  return rc;
}

/* ------------------------------------------------------------ batches */

/* Runs `sql` and names `what` on failure. */
static int exec_step(oee_db *db, const char *sql, const char *what, oee_error *err) {
  return sqlite3_exec(db->writer, sql, NULL, NULL, NULL) == SQLITE_OK
             ? 0
             : oee__db_fail(err, db->writer, what);
}

static int write_meta(oee_db *db, const char *key, uint64_t value, oee_error *err) {
  sqlite3_bind_text(db->meta_set, 1, key, -1, SQLITE_STATIC);
  sqlite3_bind_int64(db->meta_set, 2, (sqlite3_int64)value);
  return step_write(db->writer, db->meta_set, "write counters", err);
}

/* A schedule's row written or deleted. */
static int write_sched(oee_db *db, const oee_db_sched *s, oee_error *err) {
  sqlite3_stmt *st = s->body ? db->sched_put : db->sched_del;
  sqlite3_bind_text(st, 1, s->id, -1, SQLITE_STATIC);
  if (s->body) sqlite3_bind_blob(st, 2, s->body, (int)s->len, SQLITE_STATIC);
  return step_write(db->writer, st, "write a schedule", err);
}

static int write_batch(oee_db *db, const oee_db_batch *b, oee_error *err) {
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < b->n_purges; i++) rc = purge(db, b->purges[i], err);
  for (size_t i = 0; rc == 0 && i < b->n_rows; i++) rc = write_row(db, &b->rows[i], err);
  for (size_t i = 0; rc == 0 && i < b->n_scheds; i++) rc = write_sched(db, b->scheds[i], err);
  if (rc == 0) rc = write_meta(db, "last_index", b->meta.last_index, err);
  if (rc == 0) rc = write_meta(db, "last_seq", b->meta.last_seq, err);
  return rc;
}

int oee_db_write(oee_db *db, const oee_db_batch *b, oee_error *err) {
  if (pthread_mutex_lock(&db->write_lock) != 0) abort();
  int rc = exec_step(db, "BEGIN IMMEDIATE", "begin", err);
  if (rc == 0) rc = write_batch(db, b, err);
  if (rc == 0) rc = exec_step(db, "COMMIT", "commit", err);
  if (rc != 0 && !sqlite3_get_autocommit(db->writer)) {
    sqlite3_exec(db->writer, "ROLLBACK", NULL, NULL, NULL);
  }
  if (rc != 0) {
    for (size_t i = 0; i < b->n_purges; i++) b->purges[i]->deleted = 0;
  }
  counts_settle(db, rc == 0);
  pthread_mutex_unlock(&db->write_lock);
  return rc;
}
