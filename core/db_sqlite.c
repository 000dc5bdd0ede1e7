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
 * Durability: journal_mode=WAL with synchronous=NORMAL: a commit writes its
 * frames to the WAL (it survives kill -9 at once) and SQLite syncs only at
 * checkpoints. For sync full the committer then calls oee_db_flush(), an
 * fsync of the WAL from another thread, before anything of the batch is
 * acknowledged; meanwhile the writer goes on with the next batch, so the
 * disk's flush latency is paid once per sync, not once per transaction
 * (what SQLite's own synchronous=FULL would do). The WAL's directory is
 * synced once, when the WAL first exists.
 * Identity: PRAGMA application_id marks the file as ours; PRAGMA
 * user_version is the schema version. Both are read before anything is
 * written, so a foreign, newer or broken file is refused untouched.
 * Lock order: write_lock and pool_lock are never held together.
 */
#include "core/db_sqlite.h"

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
#define SCHEMA_VERSION 4
#define BUSY_TIMEOUT_MS 5000

/* The SQL of db_sqlite.h and db_write.c/db_read.c writes statuses as
 * numbers; they are oee_task_status's. */
_Static_assert(OEE_TASK_QUEUED == 1 && OEE_TASK_RUNNING == 2 && OEE_TASK_DONE == 3 &&
                   OEE_TASK_ERROR == 4 && OEE_TASK_CANCELLED == 5 && OEE_TASK_SCHEDULED == 6,
               "the stored statuses are oee_task_status's numbers");

/* The schema is the sum of its versions: a new file runs every step, an
 * older one the steps it lacks (migrate()). A step, once released, is
 * history: it is never edited, a change is a new version. */

/* Schema version 1. Rows are ordered by idx (the submit index, also the
 * rowid), so a listing is a range scan; each filter has an index ending in
 * idx, so a filtered page is a range scan too. tasks_finished holds the
 * finished rows by completion, for purges (at that version every status
 * from 3 up was finished; version 3 says which). */
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

/* Schema version 2: an executor's stored bytes beside the task (a
 * pipeline's description and results; NULL for other tasks), and one index
 * less: a listing by type alone reads tasks_by_type_status once per status
 * (db_read.c), so tasks_by_type cost a write per insert and per status
 * change for nothing. */
static const char SCHEMA_V2[] =
    "ALTER TABLE tasks ADD COLUMN payload BLOB; DROP INDEX tasks_by_type;";

/*
 * Schema version 3: task semantics (retries, timeouts, delays, idempotency,
 * dependencies, schedules, remote workers). Why each change:
 *  - One column per new task field, so that a restart finds tasks with all
 *    of them. Durations are seconds (REAL), times ns since the epoch.
 *    depends_on holds the resolved ids in db_codec.h's list form (NULL =
 *    none). ADD COLUMN only rewrites the schema, never a row: rows of an
 *    older schema read the defaults, which are what such a task had
 *    (one attempt, no backoff in use, no timeout, no time to wait for, no
 *    key, no dependency). Except `attempt`: it is -1 in those rows, which
 *    read it as 1 if they ever started and 0 otherwise (OEE__DB_COLUMNS),
 *    so a task that was RUNNING at a crash has used its only attempt and
 *    recovery ends it rather than retrying it; storing that with an UPDATE
 *    instead would rewrite every started row (a migration as long as a
 *    bulk import, and a WAL as big as the file). A row the engine writes
 *    always carries its own attempt.
 *  - tasks_finished again, with the finished statuses named: SCHEDULED (6)
 *    is not finished, and with `status >= 3` purges would walk over every
 *    scheduled row. The purge names the same term and the index (INDEXED
 *    BY), as SQLite uses a partial index only for a query whose WHERE
 *    contains the index's condition. Building it (and tasks_by_key) reads
 *    the table once, at the migration.
 *  - tasks_by_key, for the idempotency check at submit: the newest task
 *    with a key is one seek. Partial, so the rows without a key (most)
 *    cost no index write, and (key, created_ns) so that a window is a
 *    range of it.
 */
static const char SCHEMA_V3[] =
    "ALTER TABLE tasks ADD COLUMN attempt INTEGER NOT NULL DEFAULT -1;"
    "ALTER TABLE tasks ADD COLUMN max_attempts INTEGER NOT NULL DEFAULT 1;"
    "ALTER TABLE tasks ADD COLUMN backoff_s REAL NOT NULL DEFAULT 1.0;"
    "ALTER TABLE tasks ADD COLUMN max_backoff_s REAL NOT NULL DEFAULT 300.0;"
    "ALTER TABLE tasks ADD COLUMN timeout_s REAL NOT NULL DEFAULT 0.0;"
    "ALTER TABLE tasks ADD COLUMN run_at_ns INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE tasks ADD COLUMN idempotency_key TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE tasks ADD COLUMN depends_on BLOB;"
    "ALTER TABLE tasks ADD COLUMN schedule_id TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE tasks ADD COLUMN remote_worker_id TEXT NOT NULL DEFAULT '';"
    "DROP INDEX tasks_finished;"
    "CREATE INDEX tasks_finished ON tasks(completed_ns, idx) WHERE status IN (3, 4, 5);"
    "CREATE INDEX tasks_by_key ON tasks(idempotency_key, created_ns)"
    " WHERE idempotency_key != '';";

/* Schema version 4: cron schedules, one row each. The engine keeps a
 * schedule's definition and state in its own byte form (schedule.c), as it
 * reads and writes a schedule only whole and never queries inside it; the
 * id is the key, so a firing's update is one upsert. */
static const char SCHEMA_V4[] =
    "CREATE TABLE schedules (id TEXT PRIMARY KEY, body BLOB NOT NULL) STRICT;";

/* ------------------------------------------------------------ errors */

/* "storage: <what>: <sqlite's words>" with OEE_EIO. */
int oee__db_fail(oee_error *err, sqlite3 *conn, const char *what) {
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
  return rc == SQLITE_OK ? 0 : oee__db_fail(err, conn, what);
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
  if (rc == 0 && version < 2) rc = exec_sql(conn, SCHEMA_V2, "migrate to schema 2", err);
  if (rc == 0 && version < 3) rc = exec_sql(conn, SCHEMA_V3, "migrate to schema 3", err);
  if (rc == 0 && version < 4) rc = exec_sql(conn, SCHEMA_V4, "migrate to schema 4", err);
  if (rc == 0) rc = exec_sql(conn, tail, "set schema version", err);
  if (rc == 0) rc = exec_sql(conn, "COMMIT", "commit migration", err);
  if (rc != 0) sqlite3_exec(conn, "ROLLBACK", NULL, NULL, NULL);
  return rc;
}

static int configure(sqlite3 *conn, oee_error *err) {
  sqlite3_busy_timeout(conn, BUSY_TIMEOUT_MS);
  int rc = exec_sql(conn, "PRAGMA journal_mode = WAL", "enable WAL", err);
  if (rc == 0) rc = exec_sql(conn, "PRAGMA synchronous = NORMAL", "set synchronous", err);
  /* Debian builds SQLite to zero every freed byte on disk (secure_delete),
   * which doubles the writes of a row rewrite and of a purge; FAST still
   * clears deleted content inside b-tree pages but adds no I/O for it. */
  if (rc == 0) rc = exec_sql(conn, "PRAGMA secure_delete = FAST", "set secure_delete", err);
  return rc;
}

int oee_db_needs_flush(const oee_db *db) { return db->sync == OEE_DB_SYNC_FULL; }

/* fsync of a path; 0 or errno. */
static int sync_path(const char *path, int flags) {
  int fd = open(path, flags | O_CLOEXEC);
  if (fd < 0) return errno;
  int rc = fsync(fd) == 0 ? 0 : errno;
  close(fd);
  return rc;
}

int oee_db_flush(oee_db *db, oee_error *err) {
  if (db->sync != OEE_DB_SYNC_FULL) return 0;
  if (pthread_mutex_lock(&db->sync_lock) != 0) abort();
  int e = 0;
  const char *what = "open the WAL";
  if (db->wal_fd < 0) {
    char wal[4096];
    snprintf(wal, sizeof(wal), "%s-wal", db->path);
    db->wal_fd = open(wal, O_RDONLY | O_CLOEXEC);
    if (db->wal_fd < 0) e = errno;
    what = "sync the data directory";
    if (e == 0) e = sync_path(db->dir, O_RDONLY | O_DIRECTORY); /* the WAL's entry */
  }
  if (e == 0) {
    what = "sync the WAL";
    if (fsync(db->wal_fd) != 0) e = errno;
  }
  pthread_mutex_unlock(&db->sync_lock);
  if (e == 0) return 0;
  return oee_error_set(err, OEE_EIO, "storage: %s of %s: %s", what, db->path, strerror(e));
}

/* Opens the writer: identity checked before the first write. */
static int open_writer(oee_db *db, oee_error *err) {
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  int rc = sqlite3_open_v2(db->path, &db->writer, flags, NULL);
  if (rc != SQLITE_OK) {
    return oee_error_set(err, OEE_EIO, "cannot open %s: %s", db->path,
                         db->writer ? sqlite3_errmsg(db->writer) : "out of memory");
  }
  sqlite3_extended_result_codes(db->writer, 1);
  long long version = 0;
  rc = check_identity(db->writer, db->path, &version, err);
  if (rc == 0) rc = configure(db->writer, err);
  if (rc == 0) rc = migrate(db->writer, version, err);
  if (rc == 0) rc = oee__db_writer_prepare(db, err);
  if (rc == 0) rc = oee__db_counts_load(db, err);
  return rc;
}

/* SQLite's process-wide settings, once, before its first use: no memory
 * statistics (they put a mutex around every SQLite allocation, about 7% of
 * the writer's time in a profile of durable SubmitTasks). */
static pthread_once_t sqlite_once = PTHREAD_ONCE_INIT;

static void sqlite_setup(void) { sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); }

int oee_db_open(const oee_db_config *cfg, oee_db **out, oee_error *err) {
  *out = NULL;
  pthread_once(&sqlite_once, sqlite_setup);
  if (cfg == NULL || cfg->dir == NULL || !cfg->dir[0]) {
    return oee_error_set(err, OEE_EINVAL, "data_dir must not be empty");
  }
  oee_db *db = oee_calloc(1, sizeof(*db));
  if (db == NULL) return oee_error_set(err, OEE_ENOMEM, "out of memory opening the store");
  db->lock_fd = -1;
  db->wal_fd = -1;
  db->sync = cfg->sync;
  if (pthread_mutex_init(&db->write_lock, NULL) != 0) {
    oee_free(db);
    return oee_error_set(err, OEE_ENOMEM, "cannot create the store's lock");
  }
  if (pthread_mutex_init(&db->pool_lock, NULL) != 0) {
    pthread_mutex_destroy(&db->write_lock);
    oee_free(db);
    return oee_error_set(err, OEE_ENOMEM, "cannot create the store's lock");
  }
  if (pthread_mutex_init(&db->counts_lock, NULL) != 0) {
    pthread_mutex_destroy(&db->pool_lock);
    pthread_mutex_destroy(&db->write_lock);
    oee_free(db);
    return oee_error_set(err, OEE_ENOMEM, "cannot create the store's lock");
  }
  if (pthread_mutex_init(&db->sync_lock, NULL) != 0) {
    pthread_mutex_destroy(&db->counts_lock);
    pthread_mutex_destroy(&db->pool_lock);
    pthread_mutex_destroy(&db->write_lock);
    oee_free(db);
    return oee_error_set(err, OEE_ENOMEM, "cannot create the store's lock");
  }
  int rc = make_dir(cfg->dir, err);
  if (rc == 0 && oee_asprintf(&db->path, "%s/oee.db", cfg->dir) < 0) db->path = NULL;
  if (rc == 0 && (db->path == NULL || (db->dir = oee_strdup(cfg->dir)) == NULL)) {
    rc = oee_error_set(err, OEE_ENOMEM, "out of memory opening the store");
  }
  if (rc == 0) rc = lock_dir(cfg->dir, &db->lock_fd, err);
  if (rc == 0) rc = open_writer(db, err);
  if (rc != 0) {
    oee_db_close(db);
    return rc;
  }
  *out = db;
  return 0;
}

void oee_db_close(oee_db *db) {
  if (db == NULL) return;
  oee__db_readers_close(db);
  oee__db_writer_release(db);
  sqlite3_close(db->writer);
  if (db->lock_fd >= 0) close(db->lock_fd); /* releases the flock */
  pthread_mutex_destroy(&db->write_lock);
  pthread_mutex_destroy(&db->pool_lock);
  pthread_mutex_destroy(&db->counts_lock);
  pthread_mutex_destroy(&db->sync_lock);
  if (db->wal_fd >= 0) close(db->wal_fd);
  oee_free(db->dir);
  oee_free(db->path);
  oee_free(db);
}

const char *oee_db_path(const oee_db *db) { return db->path; }

/* ------------------------------------------------------------ reads */

int oee_db_meta_get(oee_db *db, oee_db_meta *out, oee_error *err) {
  long long idx = 0, seq = 0;
  if (pthread_mutex_lock(&db->write_lock) != 0) abort();
  int rc = query_int(db->writer, "SELECT value FROM meta WHERE key = 'last_index'", &idx);
  if (rc == SQLITE_OK) {
    rc = query_int(db->writer, "SELECT value FROM meta WHERE key = 'last_seq'", &seq);
  }
  int ret = rc == SQLITE_OK ? 0 : oee__db_fail(err, db->writer, "read counters");
  pthread_mutex_unlock(&db->write_lock);
  out->last_index = (uint64_t)idx;
  out->last_seq = (uint64_t)seq;
  return ret;
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
