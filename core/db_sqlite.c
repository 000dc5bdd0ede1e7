/*
 * db_sqlite.c - the durable database in an embedded SQLite file (db.h).
 *
 * DESIGN
 * Files: <dir>/oee.db with its WAL (<dir>/oee.db-wal, -shm), and
 * <dir>/oee.lock, which this process holds with flock(LOCK_EX) for its whole
 * life. SQLite's own locks let two processes share a file; the flock is what
 * refuses a second server, and the kernel drops it when the process dies,
 * even on kill -9.
 * Connections: one writer (guarded by `write_lock`; the committer is its only
 * user in practice) and a pool of read-only connections, one per concurrent
 * reader, each used by one thread at a time (`pool_lock` guards the free
 * list). In WAL mode readers and the writer never block each other and a
 * reader sees only committed transactions.
 * Durability: journal_mode=WAL; synchronous=FULL syncs the WAL at every
 * commit (a commit survives power loss), NORMAL only at checkpoints (a
 * commit survives kill -9).
 * Identity: PRAGMA application_id marks the file as ours; PRAGMA
 * user_version is the schema version. Both are read before anything is
 * written, so a foreign, newer or broken file is refused untouched.
 * Lock order: write_lock and pool_lock are never held together.
 */
#include "core/db.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/db_codec.h"
#include "core/task.h"
#include "core/oee_alloc.h"

#define APPLICATION_ID 0x4F454531 /* "OEE1" */
#define SCHEMA_VERSION 1
#define READERS_MAX 16 /* idle read connections kept open */
#define BUSY_TIMEOUT_MS 5000

/* Schema version 1. Rows are ordered by idx (the submit index, also the
 * rowid), so a listing is a range scan; each filter has an index ending in
 * idx, so a filtered page is a range scan too. */
static const char SCHEMA_V1[] =
    "CREATE TABLE tasks ("
    " idx INTEGER PRIMARY KEY,"
    " id TEXT NOT NULL UNIQUE,"
    " seq INTEGER NOT NULL,"
    " name TEXT NOT NULL,"
    " task_type TEXT NOT NULL,"
    " status INTEGER NOT NULL,"
    " priority INTEGER NOT NULL,"
    " worker_id INTEGER NOT NULL,"
    " created_ns INTEGER NOT NULL,"
    " started_ns INTEGER NOT NULL,"
    " completed_ns INTEGER NOT NULL,"
    " result TEXT NOT NULL,"
    " error TEXT NOT NULL,"
    " context BLOB"
    ") STRICT;"
    "CREATE INDEX tasks_by_status ON tasks(status, idx);"
    "CREATE INDEX tasks_by_type ON tasks(task_type, idx);"
    "CREATE INDEX tasks_by_type_status ON tasks(task_type, status, idx);"
    "CREATE INDEX tasks_finished ON tasks(completed_ns, idx) WHERE status >= 3;"
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) STRICT;";

static const char UPSERT[] =
    "INSERT INTO tasks(idx, id, seq, name, task_type, status, priority,"
    " worker_id, created_ns, started_ns, completed_ns, result, error, context)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
    " ON CONFLICT(idx) DO UPDATE SET seq = excluded.seq,"
    " status = excluded.status, priority = excluded.priority,"
    " worker_id = excluded.worker_id, started_ns = excluded.started_ns,"
    " completed_ns = excluded.completed_ns, result = excluded.result,"
    " error = excluded.error";

#define COLUMNS                                                 \
  "idx, id, seq, name, task_type, status, priority, worker_id," \
  " created_ns, started_ns, completed_ns, result, error, context"

typedef struct reader {
  struct reader *next;
  sqlite3 *conn;
} reader;

struct oee_db {
  char *path;  /* <dir>/oee.db; immutable */
  int lock_fd; /* flock'ed <dir>/oee.lock; immutable */
  pthread_mutex_t write_lock;
  sqlite3 *writer;        /* guarded by write_lock */
  sqlite3_stmt *upsert;   /* guarded by write_lock */
  sqlite3_stmt *remove;   /* guarded by write_lock */
  sqlite3_stmt *meta_set; /* guarded by write_lock */
  pthread_mutex_t pool_lock;
  reader *idle;  /* guarded by pool_lock */
  size_t n_idle; /* guarded by pool_lock */
};

/* ------------------------------------------------------------ errors */

/* "storage: <what>: <sqlite's words>" with OEE_EIO. */
static int db_fail(oee_error *err, sqlite3 *conn, const char *what) {
  const char *why = conn ? sqlite3_errmsg(conn) : "out of memory";
  return oee_error_set(err, OEE_EIO, "storage: %s: %s", what, why);
}

/* ------------------------------------------------------------ opening */

static int lock_dir(const char *dir, int *fd_out, oee_error *err) {
  char path[4096];
  snprintf(path, sizeof(path), "%s/oee.lock", dir);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return oee_error_set(err, OEE_EIO, "cannot open %s: %s", path, strerror(errno));
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    close(fd);
    if (e == EWOULDBLOCK) {
      return oee_error_set(err, OEE_EEXISTS,
                           "%s/oee.db is in use by another running server (%s is locked)", dir,
                           path);
    }
    return oee_error_set(err, OEE_EIO, "cannot lock %s: %s", path, strerror(e));
  }
  *fd_out = fd;
  return 0;
}

static int make_dir(const char *dir, oee_error *err) {
  if (mkdir(dir, 0700) == 0 || errno == EEXIST) {
    struct stat st;
    if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) return 0;
    return oee_error_set(err, OEE_EIO, "data_dir %s is not a directory", dir);
  }
  return oee_error_set(err, OEE_EIO, "cannot create data_dir %s: %s", dir, strerror(errno));
}

/* One integer from a PRAGMA or a query; SQLite's code on failure. */
static int query_int(sqlite3 *conn, const char *sql, long long *out) {
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(conn, sql, -1, &st, NULL);
  if (rc != SQLITE_OK) return rc;
  rc = sqlite3_step(st);
  *out = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
  sqlite3_finalize(st);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Explains why an existing file cannot be used, naming it. */
static int refuse_file(oee_error *err, const char *path, int rc, sqlite3 *conn) {
  int base = rc & 0xff;
  if (base == SQLITE_NOTADB) {
    return oee_error_set(err, OEE_EINVAL, "%s is not a database (%s)", path, sqlite3_errmsg(conn));
  }
  if (base == SQLITE_CORRUPT) {
    return oee_error_set(err, OEE_EIO, "%s is corrupt (%s)", path, sqlite3_errmsg(conn));
  }
  return oee_error_set(err, OEE_EIO, "cannot read %s: %s", path, sqlite3_errmsg(conn));
}

/* PRAGMA quick_check: every page of the file is read once (about a second
 * per million tasks here), so a damaged file is refused at start rather
 * than failing some later read. */
static int check_pages(sqlite3 *conn, const char *path, oee_error *err) {
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(conn, "PRAGMA quick_check", -1, &st, NULL);
  if (rc != SQLITE_OK) return refuse_file(err, path, rc, conn);
  rc = sqlite3_step(st);
  const char *verdict = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
  int ret = 0;
  if (rc != SQLITE_ROW) {
    ret = refuse_file(err, path, rc, conn);
  } else if (verdict == NULL || strcmp(verdict, "ok") != 0) {
    ret = oee_error_set(err, OEE_EIO, "%s is corrupt (%.120s)", path,
                        verdict ? verdict : "no verdict");
  }
  sqlite3_finalize(st);
  return ret;
}

/* Reads the identity of the file without writing anything: *version is 0
 * for a file with nothing in it yet. */
static int check_identity(sqlite3 *conn, const char *path, long long *version, oee_error *err) {
  long long app = 0, tables = 0;
  int rc = query_int(conn, "PRAGMA application_id", &app);
  if (rc == SQLITE_OK) rc = query_int(conn, "PRAGMA user_version", version);
  if (rc == SQLITE_OK) rc = query_int(conn, "SELECT count(*) FROM sqlite_schema", &tables);
  if (rc != SQLITE_OK) return refuse_file(err, path, rc, conn);
  if (app == 0 && tables == 0) {
    *version = 0; /* a new, empty database */
    return 0;
  }
  if (app != APPLICATION_ID) {
    return oee_error_set(err, OEE_EINVAL,
                         "%s is not an OEE database (application_id 0x%llx, %lld tables)", path,
                         app, tables);
  }
  if (*version > SCHEMA_VERSION) {
    return oee_error_set(err, OEE_ESTATE,
                         "%s has schema version %lld, newer than this server's %d: "
                         "upgrade the server",
                         path, *version, SCHEMA_VERSION);
  }
  return check_pages(conn, path, err);
}

/* Runs `sql` (several statements) and names `what` on failure. */
static int exec_sql(sqlite3 *conn, const char *sql, const char *what, oee_error *err) {
  int rc = sqlite3_exec(conn, sql, NULL, NULL, NULL);
  return rc == SQLITE_OK ? 0 : db_fail(err, conn, what);
}

/* Brings a database from `version` to SCHEMA_VERSION in one transaction.
 * Each step migrates one version up; version 0 is the empty file. */
static int migrate(sqlite3 *conn, long long version, oee_error *err) {
  if (version == SCHEMA_VERSION) return 0;
  char tail[96];
  snprintf(tail, sizeof(tail), "PRAGMA application_id = %d; PRAGMA user_version = %d;",
           APPLICATION_ID, SCHEMA_VERSION);
  int rc = exec_sql(conn, "BEGIN IMMEDIATE", "begin migration", err);
  if (rc == 0 && version < 1) rc = exec_sql(conn, SCHEMA_V1, "create schema", err);
  if (rc == 0) rc = exec_sql(conn, tail, "set schema version", err);
  if (rc == 0) rc = exec_sql(conn, "COMMIT", "commit migration", err);
  if (rc != 0) sqlite3_exec(conn, "ROLLBACK", NULL, NULL, NULL);
  return rc;
}

static int configure(sqlite3 *conn, oee_db_sync sync, oee_error *err) {
  sqlite3_busy_timeout(conn, BUSY_TIMEOUT_MS);
  const char *mode =
      sync == OEE_DB_SYNC_NORMAL ? "PRAGMA synchronous = NORMAL" : "PRAGMA synchronous = FULL";
  int rc = exec_sql(conn, "PRAGMA journal_mode = WAL", "enable WAL", err);
  if (rc == 0) rc = exec_sql(conn, mode, "set synchronous", err);
  return rc;
}

static int prepare_writer(oee_db *db, oee_error *err) {
  static const char REMOVE[] = "DELETE FROM tasks WHERE id = ?1";
  static const char META_SET[] =
      "INSERT INTO meta(key, value) VALUES (?1, ?2)"
      " ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)";
  if (sqlite3_prepare_v3(db->writer, UPSERT, -1, SQLITE_PREPARE_PERSISTENT, &db->upsert, NULL) !=
          SQLITE_OK ||
      sqlite3_prepare_v3(db->writer, REMOVE, -1, SQLITE_PREPARE_PERSISTENT, &db->remove, NULL) !=
          SQLITE_OK ||
      sqlite3_prepare_v3(db->writer, META_SET, -1, SQLITE_PREPARE_PERSISTENT, &db->meta_set,
                         NULL) != SQLITE_OK) {
    return db_fail(err, db->writer, "prepare statements");
  }
  return 0;
}

/* Opens the writer: identity checked before the first write. */
static int open_writer(oee_db *db, oee_db_sync sync, oee_error *err) {
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  int rc = sqlite3_open_v2(db->path, &db->writer, flags, NULL);
  if (rc != SQLITE_OK) {
    return oee_error_set(err, OEE_EIO, "cannot open %s: %s", db->path,
                         db->writer ? sqlite3_errmsg(db->writer) : "out of memory");
  }
  sqlite3_extended_result_codes(db->writer, 1);
  long long version = 0;
  rc = check_identity(db->writer, db->path, &version, err);
  if (rc == 0) rc = configure(db->writer, sync, err);
  if (rc == 0) rc = migrate(db->writer, version, err);
  if (rc == 0) rc = prepare_writer(db, err);
  return rc;
}

int oee_db_open(const oee_db_config *cfg, oee_db **out, oee_error *err) {
  *out = NULL;
  if (cfg == NULL || cfg->dir == NULL || !cfg->dir[0]) {
    return oee_error_set(err, OEE_EINVAL, "data_dir must not be empty");
  }
  oee_db *db = oee_calloc(1, sizeof(*db));
  if (db == NULL) return oee_error_set(err, OEE_ENOMEM, "out of memory opening the store");
  db->lock_fd = -1;
  if (pthread_mutex_init(&db->write_lock, NULL) != 0) {
    oee_free(db);
    return oee_error_set(err, OEE_ENOMEM, "cannot create the store's lock");
  }
  if (pthread_mutex_init(&db->pool_lock, NULL) != 0) {
    pthread_mutex_destroy(&db->write_lock);
    oee_free(db);
    return oee_error_set(err, OEE_ENOMEM, "cannot create the store's lock");
  }
  int rc = make_dir(cfg->dir, err);
  if (rc == 0 && oee_asprintf(&db->path, "%s/oee.db", cfg->dir) < 0) {
    db->path = NULL;
    rc = oee_error_set(err, OEE_ENOMEM, "out of memory opening the store");
  }
  if (rc == 0) rc = lock_dir(cfg->dir, &db->lock_fd, err);
  if (rc == 0) rc = open_writer(db, cfg->sync, err);
  if (rc != 0) {
    oee_db_close(db);
    return rc;
  }
  *out = db;
  return 0;
}

void oee_db_close(oee_db *db) {
  if (db == NULL) return;
  while (db->idle) {
    reader *r = db->idle;
    db->idle = r->next;
    sqlite3_close(r->conn);
    oee_free(r);
  }
  sqlite3_finalize(db->upsert);
  sqlite3_finalize(db->remove);
  sqlite3_finalize(db->meta_set);
  sqlite3_close(db->writer);
  if (db->lock_fd >= 0) close(db->lock_fd); /* releases the flock */
  pthread_mutex_destroy(&db->write_lock);
  pthread_mutex_destroy(&db->pool_lock);
  oee_free(db->path);
  oee_free(db);
}

const char *oee_db_path(const oee_db *db) { return db->path; }

/* ------------------------------------------------------------ readers */

/* A read connection for this call: an idle one or a new one. */
static reader *reader_take(oee_db *db, oee_error *err) {
  if (pthread_mutex_lock(&db->pool_lock) != 0) abort();
  reader *r = db->idle;
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
    db_fail(err, r->conn, "open a read connection");
    sqlite3_close(r->conn);
    oee_free(r);
    return NULL;
  }
  sqlite3_busy_timeout(r->conn, BUSY_TIMEOUT_MS);
  return r;
}

/* Returns a read connection to the pool (or closes it when enough idle). */
static void reader_give(oee_db *db, reader *r) {
  if (pthread_mutex_lock(&db->pool_lock) != 0) abort();
  int keep = db->n_idle < READERS_MAX;
  if (keep) {
    r->next = db->idle;
    db->idle = r;
    db->n_idle++;
  }
  pthread_mutex_unlock(&db->pool_lock);
  if (!keep) {
    sqlite3_close(r->conn);
    oee_free(r);
  }
}

/* Builds a snapshot from a row of COLUMNS; NULL when out of memory or the
 * stored context does not decode. */
static oee_task_info *row_task(sqlite3_stmt *st) {
  oee_kv *ctx = NULL;
  size_t n_ctx = 0;
  const void *blob = sqlite3_column_blob(st, 13);
  size_t blob_len = (size_t)sqlite3_column_bytes(st, 13);
  if (oee__ctx_decode(blob, blob_len, &ctx, &n_ctx) != 0) return NULL;
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
  oee_task_info *t = oee__snap_pack(&d);
  oee_free(ctx);
  return t;
}

/* ------------------------------------------------------------ writes */

static void bind_task(sqlite3_stmt *st, const oee_task_info *t, const void *ctx, size_t ctx_len) {
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
}

/* Steps a bound write statement once and resets it. */
static int step_write(sqlite3 *conn, sqlite3_stmt *st, const char *what, oee_error *err) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return rc == SQLITE_DONE ? 0 : db_fail(err, conn, what);
}

static int write_task(oee_db *db, const oee_task_info *t, oee_error *err) {
  void *ctx = NULL;
  size_t ctx_len = 0;
  if (oee__ctx_encode(t->context, t->context_len, &ctx, &ctx_len) != 0) {
    return oee_error_set(err, OEE_ENOMEM, "storage: out of memory encoding a context");
  }
  bind_task(db->upsert, t, ctx, ctx_len);
  int rc = step_write(db->writer, db->upsert, "write a task", err);
  oee_free(ctx);
  return rc;
}

static int write_meta(oee_db *db, const char *key, uint64_t value, oee_error *err) {
  sqlite3_bind_text(db->meta_set, 1, key, -1, SQLITE_STATIC);
  sqlite3_bind_int64(db->meta_set, 2, (sqlite3_int64)value);
  return step_write(db->writer, db->meta_set, "write counters", err);
}

static int write_rows(oee_db *db, const oee_db_batch *b, oee_error *err) {
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < b->n_tasks; i++) rc = write_task(db, b->tasks[i], err);
  for (size_t i = 0; rc == 0 && i < b->n_deleted; i++) {
    sqlite3_bind_text(db->remove, 1, b->deleted[i], -1, SQLITE_STATIC);
    rc = step_write(db->writer, db->remove, "delete a task", err);
  }
  if (rc == 0) rc = write_meta(db, "last_index", b->meta.last_index, err);
  if (rc == 0) rc = write_meta(db, "last_seq", b->meta.last_seq, err);
  return rc;
}

int oee_db_write(oee_db *db, const oee_db_batch *b, oee_error *err) {
  if (pthread_mutex_lock(&db->write_lock) != 0) abort();
  int rc = exec_sql(db->writer, "BEGIN IMMEDIATE", "begin", err);
  if (rc == 0) rc = write_rows(db, b, err);
  if (rc == 0) rc = exec_sql(db->writer, "COMMIT", "commit", err);
  if (rc != 0 && !sqlite3_get_autocommit(db->writer)) {
    sqlite3_exec(db->writer, "ROLLBACK", NULL, NULL, NULL);
  }
  pthread_mutex_unlock(&db->write_lock);
  return rc;
}

/* ------------------------------------------------------------ reads */

int oee_db_meta_get(oee_db *db, oee_db_meta *out, oee_error *err) {
  long long idx = 0, seq = 0;
  if (pthread_mutex_lock(&db->write_lock) != 0) abort();
  int rc = query_int(db->writer, "SELECT value FROM meta WHERE key = 'last_index'", &idx);
  if (rc == SQLITE_OK) {
    rc = query_int(db->writer, "SELECT value FROM meta WHERE key = 'last_seq'", &seq);
  }
  int ret = rc == SQLITE_OK ? 0 : db_fail(err, db->writer, "read counters");
  pthread_mutex_unlock(&db->write_lock);
  out->last_index = (uint64_t)idx;
  out->last_seq = (uint64_t)seq;
  return ret;
}

static int load_counts(sqlite3 *conn, oee_db_count_fn fn, void *arg, oee_error *err) {
  static const char SQL[] =
      "SELECT task_type, status, count(*) FROM tasks GROUP BY task_type, status";
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(conn, SQL, -1, &st, NULL) != SQLITE_OK) {
    return db_fail(err, conn, "count tasks");
  }
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    fn((const char *)sqlite3_column_text(st, 0), (oee_task_status)sqlite3_column_int(st, 1),
       (uint64_t)sqlite3_column_int64(st, 2), arg);
  }
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? 0 : db_fail(err, conn, "count tasks");
}

static int load_tasks(sqlite3 *conn, int all, oee_db_load_fn fn, void *arg, oee_error *err) {
  static const char ALL[] = "SELECT " COLUMNS " FROM tasks ORDER BY idx";
  static const char UNFINISHED[] = "SELECT " COLUMNS " FROM tasks WHERE status < 3 ORDER BY idx";
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(conn, all ? ALL : UNFINISHED, -1, &st, NULL) != SQLITE_OK) {
    return db_fail(err, conn, "load tasks");
  }
  int rc, ret = 0;
  while (ret == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    oee_task_info *t = row_task(st);
    if (t == NULL) {
      ret = oee_error_set(err, OEE_ENOMEM, "storage: out of memory loading tasks");
    } else {
      ret = fn(t, arg);
      if (ret != 0) oee_error_set(err, ret, "storage: loading stopped: %s", oee_strerror(ret));
    }
  }
  if (ret == 0 && rc != SQLITE_DONE) ret = db_fail(err, conn, "load tasks");
  sqlite3_finalize(st);
  return ret;
}

int oee_db_load(oee_db *db, int all, oee_db_load_fn fn, oee_db_count_fn count_fn, void *arg,
                oee_error *err) {
  if (pthread_mutex_lock(&db->write_lock) != 0) abort();
  int rc = load_tasks(db->writer, all, fn, arg, err);
  if (rc == 0 && count_fn) rc = load_counts(db->writer, count_fn, arg, err);
  pthread_mutex_unlock(&db->write_lock);
  return rc;
}

int oee_db_get(oee_db *db, const char *id, const oee_task_info **out, oee_error *err) {
  *out = NULL;
  if (!oee_id_valid(id)) {
    return oee_error_set(err, OEE_EINVAL, "task_id \"%.64s\" is not a UUID", id ? id : "");
  }
  char lower[OEE_ID_LEN + 1];
  for (int i = 0; i <= OEE_ID_LEN; i++) lower[i] = (char)(id[i] | (id[i] ? 0x20 : 0));
  reader *r = reader_take(db, err);
  if (r == NULL) return err ? err->code : OEE_ENOMEM;
  sqlite3_stmt *st;
  int rc =
      sqlite3_prepare_v2(r->conn, "SELECT " COLUMNS " FROM tasks WHERE id = ?1", -1, &st, NULL);
  if (rc != SQLITE_OK) {
    rc = db_fail(err, r->conn, "read a task");
    reader_give(db, r);
    return rc;
  }
  sqlite3_bind_text(st, 1, lower, OEE_ID_LEN, SQLITE_STATIC);
  int step = sqlite3_step(st);
  if (step == SQLITE_ROW) {
    *out = row_task(st);
    rc = *out ? 0 : oee_error_set(err, OEE_ENOMEM, "storage: out of memory reading a task");
  } else if (step == SQLITE_DONE) {
    rc = oee_error_set(err, OEE_ENOENT, "no task with id %s", lower);
  } else {
    rc = db_fail(err, r->conn, "read a task");
  }
  sqlite3_finalize(st);
  reader_give(db, r);
  return rc;
}

/* oee_list_page_free() without the engine: drops the page's references. */
static void page_release(oee_list_page *p) {
  for (size_t i = 0; i < p->len; i++) oee_task_info_unref(p->tasks[i]);
  oee_free(p->tasks);
  memset(p, 0, sizeof(*p));
}

/* The listing query for a filter: each uses the index ending in idx. */
static const char *list_sql(const oee_list_query *q) {
  int by_status = q->status != OEE_TASK_UNSPECIFIED;
  int by_type = q->task_type != NULL && q->task_type[0] != '\0';
  if (by_status && by_type) {
    return "SELECT " COLUMNS
           " FROM tasks WHERE task_type = ?3 AND status = ?4"
           " AND idx > ?1 ORDER BY idx LIMIT ?2";
  }
  if (by_type) {
    return "SELECT " COLUMNS
           " FROM tasks WHERE task_type = ?3 AND idx > ?1"
           " ORDER BY idx LIMIT ?2";
  }
  if (by_status) {
    return "SELECT " COLUMNS
           " FROM tasks WHERE status = ?4 AND idx > ?1"
           " ORDER BY idx LIMIT ?2";
  }
  return "SELECT " COLUMNS " FROM tasks WHERE idx > ?1 ORDER BY idx LIMIT ?2";
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
    const oee_task_info *t = row_task(st);
    if (t == NULL) return oee_error_set(err, OEE_ENOMEM, "storage: out of memory listing");
    out->tasks[out->len++] = t;
  }
  return rc == SQLITE_DONE ? 0 : db_fail(err, conn, "list tasks");
}

int oee_db_list(oee_db *db, const oee_list_query *q, oee_list_page *out, oee_error *err) {
  memset(out, 0, sizeof(*out));
  if (q->limit == 0) return 0;
  out->tasks = oee_calloc(q->limit, sizeof(*out->tasks));
  if (out->tasks == NULL) return oee_error_set(err, OEE_ENOMEM, "out of memory listing");
  reader *r = reader_take(db, err);
  if (r == NULL) {
    page_release(out);
    return err ? err->code : OEE_ENOMEM;
  }
  sqlite3_stmt *st;
  int rc = 0;
  if (sqlite3_prepare_v2(r->conn, list_sql(q), -1, &st, NULL) != SQLITE_OK) {
    rc = db_fail(err, r->conn, "list tasks");
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

int oee_db_finished_oldest(oee_db *db, int64_t before_ns, size_t limit, char (*ids)[OEE_ID_LEN + 1],
                           size_t *n, oee_error *err) {
  static const char SQL[] =
      "SELECT id FROM tasks WHERE status >= 3 AND (?1 = 0 OR completed_ns < ?1)"
      " ORDER BY completed_ns, idx LIMIT ?2";
  *n = 0;
  if (limit == 0) return 0;
  reader *r = reader_take(db, err);
  if (r == NULL) return err ? err->code : OEE_ENOMEM;
  sqlite3_stmt *st;
  int rc = 0;
  if (sqlite3_prepare_v2(r->conn, SQL, -1, &st, NULL) != SQLITE_OK) {
    rc = db_fail(err, r->conn, "find finished tasks");
  } else {
    sqlite3_bind_int64(st, 1, before_ns);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
      snprintf(ids[(*n)++], OEE_ID_LEN + 1, "%s", (const char *)sqlite3_column_text(st, 0));
    }
    if (step != SQLITE_DONE) rc = db_fail(err, r->conn, "find finished tasks");
    sqlite3_finalize(st);
  }
  reader_give(db, r);
  return rc;
}

int oee__db_sqlite_max_pages(oee_db *db, long pages) {
  char sql[64];
  snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %ld", pages ? pages : 1073741823L);
  if (pthread_mutex_lock(&db->write_lock) != 0) abort();
  long long got = 0;
  int rc = query_int(db->writer, sql, &got);
  pthread_mutex_unlock(&db->write_lock);
  return rc == SQLITE_OK ? 0 : OEE_EIO;
}
