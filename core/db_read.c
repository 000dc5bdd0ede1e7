/*
 * db_read.c - reads of the SQLite database (db.h): the pool of read-only
 * connections, recovery's load, one task (by id or by idempotency key), a
 * page of tasks and the counts.
 *
 * DESIGN
 * Each read takes a connection from the pool (or opens one), runs one
 * statement and gives it back, so reads from many threads run side by side
 * and never wait for the writer (WAL: a reader sees the last committed
 * transaction). The counts are not read from the file: db_sqlite.c keeps
 * them from the rows each write carried, and a read copies them under
 * counts_lock.
 * Lock order: pool_lock and counts_lock are leaves, never held together.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/db_codec.h"
#include "core/db_sqlite.h"
#include "core/oee_alloc.h"
#include "core/task.h"

#define READERS_MAX 16 /* idle read connections kept open */
#define BUSY_TIMEOUT_MS 5000

/* ------------------------------------------------------------ readers */

/* A read connection for this call: an idle one or a new one. */
static oee__db_reader *reader_take(oee_db *db, oee_error *err) {
  if (pthread_mutex_lock(&db->pool_lock) != 0) abort();
  oee__db_reader *r = db->idle;
  if (r != NULL) {
    db->idle = r->next;
    db->n_idle--;
  }
  pthread_mutex_unlock(&db->pool_lock);
  if (r != NULL) return r;
  r = oee_calloc(1, sizeof(*r));
  if (r == NULL) {
    oee_error_set(err, OEE_ENOMEM, "out of memory opening a read connection");
    return NULL;
  }
  int flags = SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(db->path, &r->conn, flags, NULL) != SQLITE_OK) {
    oee__db_fail(err, r->conn, "open a read connection");
    sqlite3_close(r->conn);
    oee_free(r);
    return NULL;
  }
  sqlite3_busy_timeout(r->conn, BUSY_TIMEOUT_MS);
  return r;
}

/* Returns a read connection to the pool (or closes it when enough idle). */
/* Closes a read connection and its prepared statements. */
static void reader_close(oee__db_reader *r) {
  for (int i = 0; i < OEE__DB_READER_STMTS; i++) sqlite3_finalize(r->stmt[i]);
  sqlite3_close(r->conn);
  oee_free(r);
}

/* `sql` prepared on r, from its cache (prepared once per connection). */
static sqlite3_stmt *reader_stmt(oee__db_reader *r, const char *sql) {
  int slot = 0;
  for (; slot < OEE__DB_READER_STMTS && r->sql[slot] != NULL; slot++) {
    if (r->sql[slot] == sql) return r->stmt[slot];
  }
  sqlite3_stmt *st;
  if (sqlite3_prepare_v3(r->conn, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
    return NULL;
  }
  if (slot == OEE__DB_READER_STMTS) return st; /* full: the caller's own (not cached) */
  r->sql[slot] = sql;
  r->stmt[slot] = st;
  return st;
}

/* Done with a statement of reader_stmt(): reset if cached, else finalized. */
static void reader_stmt_done(oee__db_reader *r, sqlite3_stmt *st) {
  for (int i = 0; i < OEE__DB_READER_STMTS; i++) {
    if (r->stmt[i] == st) {
      sqlite3_reset(st);
      sqlite3_clear_bindings(st);
      return;
    }
  }
  sqlite3_finalize(st);
}

static void reader_give(oee_db *db, oee__db_reader *r) {
  if (pthread_mutex_lock(&db->pool_lock) != 0) abort();
  int keep = db->n_idle < READERS_MAX;
  if (keep) {
    r->next = db->idle;
    db->idle = r;
    db->n_idle++;
  }
  pthread_mutex_unlock(&db->pool_lock);
  if (!keep) reader_close(r);
}

/* A text column; NULL only when SQLite ran out of memory converting it. */
static const char *column_str(sqlite3_stmt *st, int col) {
  return (const char *)sqlite3_column_text(st, col);
}

/* The fields schema 3 added, but depends_on (columns 14 to 23). */
static void row_semantics(sqlite3_stmt *st, oee_task_info *d) {
  d->attempt = sqlite3_column_int(st, 14);
  d->max_attempts = sqlite3_column_int(st, 15);
  d->backoff_seconds = sqlite3_column_double(st, 16);
  d->max_backoff_seconds = sqlite3_column_double(st, 17);
  d->timeout_seconds = sqlite3_column_double(st, 18);
  d->run_at_ns = sqlite3_column_int64(st, 19);
  d->idempotency_key = column_str(st, 20);
  d->schedule_id = column_str(st, 22);
  d->remote_worker_id = column_str(st, 23);
}

oee_task_info *oee__db_row_task(sqlite3_stmt *st) {
  oee_kv *ctx = NULL;
  char **deps = NULL;
  size_t n_ctx = 0, n_deps = 0;
  const void *blob = sqlite3_column_blob(st, 13);
  size_t blob_len = (size_t)sqlite3_column_bytes(st, 13);
  if (oee__ctx_decode(blob, blob_len, &ctx, &n_ctx) != 0) return NULL;
  blob = sqlite3_column_blob(st, 21);
  blob_len = (size_t)sqlite3_column_bytes(st, 21);
  if (oee__strs_decode(blob, blob_len, &deps, &n_deps) != 0) {
    oee_free(ctx);
    return NULL;
  }
  oee_task_info d = {0};
  const char *id = (const char *)sqlite3_column_text(st, 1);
  snprintf(d.id, sizeof(d.id), "%s", id ? id : "");
  d.submit_index = (uint64_t)sqlite3_column_int64(st, 0);
  d.seq = (uint64_t)sqlite3_column_int64(st, 2);
  d.name = (const char *)sqlite3_column_text(st, 3);
  d.task_type = (const char *)sqlite3_column_text(st, 4);
  d.status = (oee_task_status)sqlite3_column_int(st, 5);
  d.priority = sqlite3_column_int(st, 6);
  d.worker_id = sqlite3_column_int(st, 7);
  d.created_at_ns = sqlite3_column_int64(st, 8);
  d.started_at_ns = sqlite3_column_int64(st, 9);
  d.completed_at_ns = sqlite3_column_int64(st, 10);
  d.result = (const char *)sqlite3_column_text(st, 11);
  d.error_message = (const char *)sqlite3_column_text(st, 12);
  d.context = ctx;
  d.context_len = n_ctx;
  row_semantics(st, &d);
  d.depends_on = (const char *const *)deps;
  d.depends_on_len = n_deps;
  oee_task_info *t = oee__snap_pack(&d);
  oee_free(ctx);
  oee_free(deps);
  return t;
}

void oee__db_readers_close(oee_db *db) {
  while (db->idle) {
    oee__db_reader *r = db->idle;
    db->idle = r->next;
    reader_close(r);
  }
}

/* ------------------------------------------------------------ recovery */

/* The unfinished rows through tasks_by_status, sorted by idx: only their
 * idx values are sorted (the IN list), and finished rows, most of the file,
 * are never read. */
int oee_db_load(oee_db *db, oee_db_load_fn fn, void *arg, oee_error *err) {
  static const char SQL[] = "SELECT " OEE__DB_COLUMNS
                            ", payload FROM tasks WHERE idx IN"
                            " (SELECT idx FROM tasks WHERE " OEE__DB_UNFINISHED ") ORDER BY idx";
  if (pthread_mutex_lock(&db->write_lock) != 0) abort();
  sqlite3 *conn = db->writer;
  sqlite3_stmt *st;
  int rc = SQLITE_OK, ret = 0;
  if (sqlite3_prepare_v2(conn, SQL, -1, &st, NULL) != SQLITE_OK) {
    ret = oee__db_fail(err, conn, "load tasks");
    st = NULL;
  }
  while (ret == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    oee_task_info *t = oee__db_row_task(st);
    if (t == NULL) {
      ret = oee_error_set(err, OEE_ENOMEM, "storage: out of memory loading tasks");
    } else if ((ret = fn(t, sqlite3_column_blob(st, OEE__DB_N_COLUMNS),
                         (size_t)sqlite3_column_bytes(st, OEE__DB_N_COLUMNS), arg)) != 0) {
      oee_error_set(err, ret, "storage: loading stopped: %s", oee_strerror(ret));
    }
  }
  if (ret == 0 && rc != SQLITE_DONE) ret = oee__db_fail(err, conn, "load tasks");
  sqlite3_finalize(st);
  pthread_mutex_unlock(&db->write_lock);
  return ret;
}

int oee_db_load_schedules(oee_db *db, oee_db_sched_fn fn, void *arg, oee_error *err) {
  static const char SQL[] = "SELECT id, body FROM schedules ORDER BY id";
  if (pthread_mutex_lock(&db->write_lock) != 0) abort();
  sqlite3 *conn = db->writer;
  sqlite3_stmt *st;
  int rc = SQLITE_OK, ret = 0;
  if (sqlite3_prepare_v2(conn, SQL, -1, &st, NULL) != SQLITE_OK) {
    ret = oee__db_fail(err, conn, "load schedules");
    st = NULL;
  }
  while (ret == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    ret = fn((const char *)sqlite3_column_text(st, 0), sqlite3_column_blob(st, 1),
             (size_t)sqlite3_column_bytes(st, 1), arg);
    if (ret != 0)
      oee_error_set(err, ret, "storage: loading schedules stopped: %s", oee_strerror(ret));
  }
  if (ret == 0 && rc != SQLITE_DONE) ret = oee__db_fail(err, conn, "load schedules");
  sqlite3_finalize(st);
  pthread_mutex_unlock(&db->write_lock);
  return ret;
}

/* ------------------------------------------------------------ counts */

void oee_db_counts(oee_db *db, const char *task_type, uint64_t by_status[OEE_TASK_STATUS_COUNT]) {
  memset(by_status, 0, OEE_TASK_STATUS_COUNT * sizeof(*by_status));
  int all = task_type == NULL || task_type[0] == '\0';
  if (pthread_mutex_lock(&db->counts_lock) != 0) abort();
  for (const oee__db_count *c = db->counts; c; c = c->next) {
    if (!all && strcmp(c->type, task_type) != 0) continue;
    for (int i = 0; i < OEE_TASK_STATUS_COUNT; i++) by_status[i] += c->stored[i];
  }
  pthread_mutex_unlock(&db->counts_lock);
}

/* The number of stored tasks a listing's filter matches. */
static uint64_t list_total(oee_db *db, const oee_list_query *q) {
  uint64_t by[OEE_TASK_STATUS_COUNT];
  oee_db_counts(db, q->task_type, by);
  if (q->status != OEE_TASK_UNSPECIFIED) return by[q->status];
  uint64_t sum = 0;
  for (int i = 0; i < OEE_TASK_STATUS_COUNT; i++) sum += by[i];
  return sum;
}

/* ------------------------------------------------------------ one task, pages */

/* Copies the payload column (OEE__DB_N_COLUMNS) out: 0, or OEE_ENOMEM. */
static int payload_copy(sqlite3_stmt *st, void **out, size_t *len) {
  *out = NULL;
  *len = (size_t)sqlite3_column_bytes(st, OEE__DB_N_COLUMNS);
  const void *blob = sqlite3_column_blob(st, OEE__DB_N_COLUMNS);
  if (blob == NULL || *len == 0) {
    *len = 0;
    return 0;
  }
  if ((*out = oee_malloc(*len)) == NULL) return OEE_ENOMEM;
  memcpy(*out, blob, *len);
  return 0;
}

/*
 * Reads at most one row of `sql`, which selects OEE__DB_COLUMNS (then the
 * payload when `payload` is not NULL), with ?1 = `text` (`text_len` bytes)
 * and ?2 = `num` (ignored when the statement has no ?2): 0 with a new
 * snapshot in *out (and the payload when asked), OEE_ENOENT with no reason
 * set (the caller names what it looked for), or another error with its
 * reason.
 */
static int read_one(oee_db *db, const char *sql, const char *text, int text_len, int64_t num,
                    const oee_task_info **out, void **payload, size_t *payload_len,
                    oee_error *err) {
  oee__db_reader *r = reader_take(db, err);
  if (r == NULL) return err ? err->code : OEE_ENOMEM;
  sqlite3_stmt *st = reader_stmt(r, sql);
  int rc;
  if (st == NULL) {
    rc = oee__db_fail(err, r->conn, "read a task");
    reader_give(db, r);
    return rc;
  }
  sqlite3_bind_text(st, 1, text, text_len, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, num); /* SQLITE_RANGE without a ?2: harmless */
  int step = sqlite3_step(st);
  if (step == SQLITE_ROW) {
    *out = oee__db_row_task(st);
    rc = *out ? 0 : OEE_ENOMEM;
    if (rc == 0 && payload) rc = payload_copy(st, payload, payload_len);
    if (rc != 0) {
      oee_task_info_unref(*out);
      *out = NULL;
      rc = oee_error_set(err, OEE_ENOMEM, "storage: out of memory reading a task");
    }
  } else {
    rc = step == SQLITE_DONE ? OEE_ENOENT : oee__db_fail(err, r->conn, "read a task");
  }
  reader_stmt_done(r, st);
  reader_give(db, r);
  return rc;
}

int oee_db_get_payload(oee_db *db, const char *id, const oee_task_info **out, void **payload,
                       size_t *payload_len, oee_error *err) {
  static const char SQL[] = "SELECT " OEE__DB_COLUMNS ", payload FROM tasks WHERE id = ?1";
  *out = NULL;
  if (payload) *payload = NULL;
  if (payload_len) *payload_len = 0;
  if (!oee_id_valid(id)) {
    return oee_error_set(err, OEE_EINVAL, "task_id \"%.64s\" is not a UUID", id ? id : "");
  }
  char lower[OEE_ID_LEN + 1];
  for (int i = 0; i <= OEE_ID_LEN; i++) lower[i] = (char)(id[i] | (id[i] ? 0x20 : 0));
  int rc = read_one(db, SQL, lower, OEE_ID_LEN, 0, out, payload, payload_len, err);
  if (rc == OEE_ENOENT) oee_error_set(err, OEE_ENOENT, "no task with id %s", lower);
  return rc;
}

int oee_db_get(oee_db *db, const char *id, const oee_task_info **out, oee_error *err) {
  return oee_db_get_payload(db, id, out, NULL, NULL, err);
}

/* One seek of tasks_by_key (idempotency_key, created_ns, idx), read
 * backwards from the newest; the index is named so that a schema that no
 * longer serves this query fails here instead of scanning every row. The
 * `idempotency_key != ''` term is the index's condition: SQLite uses a
 * partial index only for a query that repeats it. */
int oee_db_find_key(oee_db *db, const char *key, int64_t created_after_ns,
                    const oee_task_info **out, oee_error *err) {
  static const char SQL[] = "SELECT " OEE__DB_COLUMNS
                            " FROM tasks INDEXED BY tasks_by_key"
                            " WHERE idempotency_key = ?1 AND idempotency_key != ''"
                            " AND created_ns >= ?2 ORDER BY created_ns DESC, idx DESC LIMIT 1";
  *out = NULL;
  if (key == NULL || key[0] == '\0') {
    return oee_error_set(err, OEE_EINVAL, "an empty idempotency key names no task");
  }
  int rc = read_one(db, SQL, key, -1, created_after_ns, out, NULL, NULL, err);
  if (rc == OEE_ENOENT) {
    oee_error_set(err, OEE_ENOENT, "no task with idempotency key \"%.64s\" created since %lld ns",
                  key, (long long)created_after_ns);
  }
  return rc;
}

/* oee_list_page_free() without the engine: drops the page's references. */
static void page_release(oee_list_page *p) {
  for (size_t i = 0; i < p->len; i++) oee_task_info_unref(p->tasks[i]);
  oee_free(p->tasks);
  memset(p, 0, sizeof(*p));
}

/* A type without a status: tasks_by_type_status (task_type, status, idx)
 * read once per status, each part in idx order and at most a page long,
 * then the union sorted: O(statuses x page) whatever the number of rows
 * (an index on (task_type, idx) alone would cost every insert and status
 * change one more index write). Built once. */
static char type_sql[2048];
static pthread_once_t type_sql_once = PTHREAD_ONCE_INIT;

static void type_sql_build(void) {
  size_t n = (size_t)snprintf(type_sql, sizeof(type_sql),
                              "SELECT " OEE__DB_COLUMNS " FROM tasks WHERE idx IN (");
  for (int st = 1; st < OEE_TASK_STATUS_COUNT; st++) {
    n += (size_t)snprintf(type_sql + n, sizeof(type_sql) - n,
                          "%sSELECT idx FROM (SELECT idx FROM tasks WHERE task_type = ?3"
                          " AND status = %d AND idx > ?1 ORDER BY idx LIMIT ?2)",
                          st > 1 ? " UNION ALL " : "", st);
  }
  snprintf(type_sql + n, sizeof(type_sql) - n, ") ORDER BY idx LIMIT ?2");
}

static const char *by_type_sql(void) {
  pthread_once(&type_sql_once, type_sql_build);
  return type_sql;
}

/* The listing query for a filter: each uses an index ending in idx. */
static const char *list_sql(const oee_list_query *q) {
  int by_status = q->status != OEE_TASK_UNSPECIFIED;
  int by_type = q->task_type != NULL && q->task_type[0] != '\0';
  if (by_status && by_type) {
    return "SELECT " OEE__DB_COLUMNS
           " FROM tasks WHERE task_type = ?3 AND status = ?4"
           " AND idx > ?1 ORDER BY idx LIMIT ?2";
  }
  if (by_type) return by_type_sql();
  if (by_status) {
    return "SELECT " OEE__DB_COLUMNS
           " FROM tasks WHERE status = ?4 AND idx > ?1"
           " ORDER BY idx LIMIT ?2";
  }
  return "SELECT " OEE__DB_COLUMNS " FROM tasks WHERE idx > ?1 ORDER BY idx LIMIT ?2";
}

/* Reads up to `limit` + 1 rows: the extra one only tells that more follow. */
static int list_rows(sqlite3 *conn, sqlite3_stmt *st, size_t limit, oee_list_page *out,
                     oee_error *err) {
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (out->len == limit) {
      out->next_index = out->tasks[limit - 1]->submit_index;
      return 0;
    }
    const oee_task_info *t = oee__db_row_task(st);
    if (t == NULL) return oee_error_set(err, OEE_ENOMEM, "storage: out of memory listing");
    out->tasks[out->len++] = t;
  }
  return rc == SQLITE_DONE ? 0 : oee__db_fail(err, conn, "list tasks");
}

int oee_db_list(oee_db *db, const oee_list_query *q, oee_list_page *out, oee_error *err) {
  memset(out, 0, sizeof(*out));
  out->total = list_total(db, q);
  if (q->limit == 0 || out->total == 0) return 0;
  out->tasks = oee_calloc(q->limit, sizeof(*out->tasks));
  if (out->tasks == NULL) return oee_error_set(err, OEE_ENOMEM, "out of memory listing");
  oee__db_reader *r = reader_take(db, err);
  if (r == NULL) {
    page_release(out);
    return err ? err->code : OEE_ENOMEM;
  }
  sqlite3_stmt *st;
  int rc = 0;
  if (sqlite3_prepare_v2(r->conn, list_sql(q), -1, &st, NULL) != SQLITE_OK) {
    rc = oee__db_fail(err, r->conn, "list tasks");
  } else {
    sqlite3_bind_int64(st, 1, (sqlite3_int64)q->after_index);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)q->limit + 1);
    if (q->task_type) sqlite3_bind_text(st, 3, q->task_type, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 4, (int)q->status);
    rc = list_rows(r->conn, st, q->limit, out, err);
    sqlite3_finalize(st);
  }
  reader_give(db, r);
  if (rc != 0) page_release(out);
  return rc;
}
