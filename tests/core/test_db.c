/* test_db.c - the SQLite database behind the store: rows survive a reopen
 * with every field, listings are pages in submission order, SCHEDULED rows
 * are unfinished, idempotency keys are found, older schemas migrate,
 * refusals name the file and leave it untouched, a second opener is
 * refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "tests/core/testutil.h"

#include "core/db.h"
#include "core/db_codec.h"
#include "core/task.h"

typedef struct fixture {
  char dir[256];
  char path[300];
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof(*f));
  if (f == NULL || tu_temp_dir(f->dir, sizeof(f->dir), "test-db") != 0) return -1;
  snprintf(f->path, sizeof(f->path), "%s/oee.db", f->dir);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  int rc = tu_remove_dir(f->dir);
  free(f);
  return rc;
}

static oee_db *open_ok(fixture *f) {
  oee_db_config cfg = {.dir = f->dir, .sync = OEE_DB_SYNC_FULL};
  oee_db *db = NULL;
  oee_error err = {0};
  int rc = oee_db_open(&cfg, &db, &err);
  if (rc != 0) fail_msg("open: %s", err.message);
  return db;
}

/* The fields of a snapshot as the engine would store it, to adjust before
 * packing. */
static oee_task_info draft(uint64_t index, oee_task_status st, const char *type,
                           int64_t completed_ns) {
  static const oee_kv ctx[] = {{"a", "1"}, {"message", "hello"}};
  oee_task_info d = {0};
  snprintf(d.id, sizeof(d.id), "0190a1b2-c3d4-7e5f-8a9b-%012llx", (unsigned long long)index);
  d.name = "n";
  d.task_type = type;
  d.status = st;
  d.priority = (int)(index % 11);
  d.worker_id = st == OEE_TASK_QUEUED ? -1 : 1;
  d.created_at_ns = 1000 + (int64_t)index;
  d.completed_at_ns = completed_ns;
  d.result = st == OEE_TASK_DONE ? "ok" : "";
  d.error_message = st == OEE_TASK_ERROR ? "boom" : "";
  d.context = index % 2 ? ctx : NULL;
  d.context_len = index % 2 ? 2 : 0;
  d.submit_index = index;
  d.seq = index * 10;
  return d;
}

static oee_task_info *pack(const oee_task_info *d) {
  oee_task_info *t = oee__snap_pack(d);
  assert_non_null(t);
  return t;
}

/* A snapshot as the engine would store it. */
static oee_task_info *task(uint64_t index, oee_task_status st, const char *type,
                           int64_t completed_ns) {
  oee_task_info d = draft(index, st, type, completed_ns);
  return pack(&d);
}

/* Writes n rows that held status `from` before (-1: new rows). */
static void write_all(oee_db *db, oee_task_info **t, size_t n, uint64_t seq, int from) {
  oee_db_row *rows = calloc(n, sizeof(*rows));
  assert_non_null(rows);
  for (size_t i = 0; i < n; i++) rows[i] = (oee_db_row){t[i], from, NULL, 0};
  oee_db_batch b = {
      .rows = rows, .n_rows = n, .meta = {.last_index = t[n - 1]->submit_index, .last_seq = seq}};
  oee_error err = {0};
  int rc = oee_db_write(db, &b, &err);
  free(rows);
  if (rc != 0) fail_msg("write: %s", err.message);
}

static void expect_counts(oee_db *db, const char *type, uint64_t queued, uint64_t running,
                          uint64_t done) {
  uint64_t by[OEE_TASK_STATUS_COUNT];
  oee_db_counts(db, type, by);
  assert_int_equal(by[OEE_TASK_QUEUED], queued);
  assert_int_equal(by[OEE_TASK_RUNNING], running);
  assert_int_equal(by[OEE_TASK_DONE], done);
}

typedef struct loaded {
  uint64_t index[64];
  size_t n;
} loaded;

static int on_load(const oee_task_info *t, const void *payload, size_t len, void *arg) {
  loaded *l = arg;
  assert_null(payload); /* none written */
  assert_int_equal(len, 0);
  if (l->n < 64) l->index[l->n++] = t->submit_index;
  oee_task_info_unref(t);
  return 0;
}

static void test_rows_survive_reopen(void **state) {
  fixture *f = *state;
  oee_db *db = open_ok(f);
  oee_task_info *t[6];
  for (int i = 0; i < 6; i++) {
    oee_task_status st = i < 3 ? OEE_TASK_QUEUED : OEE_TASK_DONE;
    t[i] = task((uint64_t)i + 1, st, "echo", st == OEE_TASK_DONE ? 5000 - i : 0);
  }
  write_all(db, t, 6, 77, -1);
  expect_counts(db, NULL, 3, 0, 3);
  /* A change of one row replaces it whole, and moves it in the counts. */
  oee_task_info *running = task(2, OEE_TASK_RUNNING, "echo", 0);
  write_all(db, &running, 1, 78, OEE_TASK_QUEUED);
  expect_counts(db, "echo", 2, 1, 3);
  expect_counts(db, "other", 0, 0, 0);
  oee_db_close(db);

  db = open_ok(f);
  oee_db_meta meta;
  assert_int_equal(oee_db_meta_get(db, &meta, NULL), 0);
  assert_int_equal(meta.last_seq, 78);
  assert_int_equal(meta.last_index, 6); /* counters never go back */
  loaded l = {0};
  assert_int_equal(oee_db_load(db, on_load, &l, NULL), 0);
  assert_int_equal(l.n, 3); /* unfinished only, in submission order */
  assert_int_equal(l.index[0], 1);
  assert_int_equal(l.index[1], 2);
  assert_int_equal(l.index[2], 3);
  expect_counts(db, NULL, 2, 1, 3); /* counted again at open */
  const oee_task_info *got;
  char upper[OEE_ID_LEN + 1];
  snprintf(upper, sizeof(upper), "0190A1B2-C3D4-7E5F-8A9B-000000000002");
  assert_int_equal(oee_db_get(db, upper, &got, NULL), 0);
  assert_int_equal(got->status, OEE_TASK_RUNNING);
  assert_string_equal(got->id, t[1]->id);
  assert_int_equal(got->worker_id, 1);
  assert_int_equal(got->seq, 20);
  oee_task_info_unref(got);
  assert_int_equal(oee_db_get(db, t[0]->id, &got, NULL), 0);
  assert_int_equal(got->context_len, 2);
  assert_string_equal(oee_task_info_context(got, "message"), "hello");
  assert_int_equal(got->created_at_ns, 1001);
  oee_task_info_unref(got);
  oee_error err;
  assert_int_equal(oee_db_get(db, "0190a1b2-c3d4-7e5f-8a9b-0000000000ff", &got, &err), OEE_ENOENT);
  assert_int_equal(oee_db_get(db, "nope", &got, &err), OEE_EINVAL);
  for (int i = 0; i < 6; i++) oee_task_info_unref(t[i]);
  oee_task_info_unref(running);
  oee_db_close(db);
}

static void page_free(oee_list_page *p) {
  for (size_t i = 0; i < p->len; i++) oee_task_info_unref(p->tasks[i]);
  free(p->tasks);
}

static void test_pages_and_filters(void **state) {
  fixture *f = *state;
  oee_db *db = open_ok(f);
  oee_task_info *t[40];
  for (int i = 0; i < 40; i++) {
    oee_task_status st = i % 4 == 0 ? OEE_TASK_DONE : OEE_TASK_QUEUED;
    t[i] =
        task((uint64_t)i + 1, st, i % 5 == 0 ? "rare" : "echo", st == OEE_TASK_DONE ? 100 + i : 0);
  }
  write_all(db, t, 40, 400, -1);
  /* Everything, 7 at a time: 6 pages, the tokens chain, order kept. */
  oee_list_query q = {.limit = 7};
  size_t seen = 0;
  uint64_t last = 0;
  do {
    oee_list_page p;
    assert_int_equal(oee_db_list(db, &q, &p, NULL), 0);
    for (size_t i = 0; i < p.len; i++) {
      assert_true(p.tasks[i]->submit_index > last);
      last = p.tasks[i]->submit_index;
    }
    seen += p.len;
    q.after_index = p.next_index;
    page_free(&p);
  } while (q.after_index != 0);
  assert_int_equal(seen, 40);
  /* Both filters: DONE rare tasks are i % 20 == 0: indices 1 and 21. */
  q = (oee_list_query){.status = OEE_TASK_DONE, .task_type = "rare", .limit = 1};
  oee_list_page p;
  assert_int_equal(oee_db_list(db, &q, &p, NULL), 0);
  assert_int_equal(p.len, 1);
  assert_int_equal(p.tasks[0]->submit_index, 1);
  assert_int_equal(p.next_index, 1);
  page_free(&p);
  q.after_index = 1;
  assert_int_equal(oee_db_list(db, &q, &p, NULL), 0);
  assert_int_equal(p.len, 1);
  assert_int_equal(p.tasks[0]->submit_index, 21);
  assert_int_equal(p.next_index, 0); /* nothing follows */
  page_free(&p);
  /* Purges: finished rows (i % 4 == 0: 10 of them, completed at 100 + i)
   * go oldest first, by age and by count. */
  char ids[8][OEE_ID_LEN + 1];
  oee_db_purge by_age = {.before_ns = 105, .keep = UINT64_MAX, .limit = 8, .ids = ids};
  oee_db_purge *one[] = {&by_age};
  oee_db_batch b = {.purges = one, .n_purges = 1, .meta = {40, 401}};
  assert_int_equal(oee_db_write(db, &b, NULL), 0);
  assert_int_equal(by_age.deleted, 2); /* completed at 100 and 104 */
  assert_string_equal(ids[0], t[0]->id);
  assert_string_equal(ids[1], t[4]->id);
  const oee_task_info *got;
  assert_int_equal(oee_db_get(db, t[0]->id, &got, NULL), OEE_ENOENT);
  uint64_t by[OEE_TASK_STATUS_COUNT];
  oee_db_counts(db, NULL, by);
  assert_int_equal(by[OEE_TASK_DONE], 8);
  assert_int_equal(by[OEE_TASK_QUEUED], 30); /* unfinished rows are never purged */
  oee_db_purge by_count = {.keep = 3, .limit = 4, .ids = ids};
  one[0] = &by_count;
  assert_int_equal(oee_db_write(db, &b, NULL), 0);
  assert_int_equal(by_count.deleted, 4); /* limited: 5 are over the count */
  assert_string_equal(ids[0], t[8]->id);
  assert_int_equal(oee_db_write(db, &b, NULL), 0);
  assert_int_equal(by_count.deleted, 1);
  assert_string_equal(ids[0], t[24]->id);
  assert_int_equal(oee_db_write(db, &b, NULL), 0);
  assert_int_equal(by_count.deleted, 0); /* the newest 3 are kept */
  oee_db_counts(db, "rare", by);
  assert_int_equal(by[OEE_TASK_DONE], 0); /* i = 0 and 20 both went */
  assert_int_equal(by[OEE_TASK_QUEUED], 6);
  oee_list_query all_done = {.status = OEE_TASK_DONE, .limit = 10};
  oee_list_page p2;
  assert_int_equal(oee_db_list(db, &all_done, &p2, NULL), 0);
  assert_int_equal(p2.len, 3);
  assert_int_equal(p2.total, 3);
  assert_int_equal(p2.tasks[0]->submit_index, 29);
  page_free(&p2);
  for (int i = 0; i < 40; i++) oee_task_info_unref(t[i]);
  oee_db_close(db);
}

/* ------------------------------------------------------------ task semantics */

static const char *const DEPS[] = {"0190a1b2-c3d4-7e5f-8a9b-00000000000a",
                                   "0190a1b2-c3d4-7e5f-8a9b-00000000000b",
                                   "0190a1b2-c3d4-7e5f-8a9b-00000000000c"};

/* The fields of schema 3 set to values no default has, on a draft. */
static void set_full(oee_task_info *d) {
  d->attempt = 2;
  d->max_attempts = 5;
  d->backoff_seconds = 0.25;
  d->max_backoff_seconds = 60.5;
  d->timeout_seconds = 2.75;
  d->run_at_ns = 1700000000123456789LL;
  d->idempotency_key = "order-42";
  d->depends_on = DEPS;
  d->depends_on_len = 3;
  d->schedule_id = "nightly";
  d->remote_worker_id = "worker-eu-1";
}

static oee_task_info *full_task(uint64_t index, oee_task_status st) {
  oee_task_info d = draft(index, st, "exec", 0);
  set_full(&d);
  return pack(&d);
}

/* The fields set_full() sets that never change after submission. */
static void expect_submitted_fields(const oee_task_info *t) {
  assert_int_equal(t->max_attempts, 5);
  assert_true(t->backoff_seconds == 0.25);
  assert_true(t->max_backoff_seconds == 60.5);
  assert_true(t->timeout_seconds == 2.75);
  assert_string_equal(t->idempotency_key, "order-42");
  assert_int_equal(t->depends_on_len, 3);
  for (size_t i = 0; i < 3; i++) assert_string_equal(t->depends_on[i], DEPS[i]);
  assert_string_equal(t->schedule_id, "nightly");
  assert_string_equal(t->task_type, "exec");
}

static const oee_task_info *get_ok(oee_db *db, const char *id) {
  const oee_task_info *t = NULL;
  oee_error err = {0};
  if (oee_db_get(db, id, &t, &err) != 0) fail_msg("get %s: %s", id, err.message);
  return t;
}

static void test_new_fields_survive_reopen(void **state) {
  fixture *f = *state;
  oee_db *db = open_ok(f);
  oee_task_info *t[2];
  t[0] = full_task(1, OEE_TASK_SCHEDULED);
  oee_task_info d = draft(2, OEE_TASK_QUEUED, "echo", 0); /* nothing of schema 3 */
  d.max_attempts = 1;
  d.idempotency_key = "";
  d.schedule_id = "";
  d.remote_worker_id = "";
  t[1] = pack(&d);
  write_all(db, t, 2, 20, -1);
  const oee_task_info *got = get_ok(db, t[0]->id);
  expect_submitted_fields(got);
  assert_int_equal(got->status, OEE_TASK_SCHEDULED);
  assert_int_equal(got->attempt, 2);
  assert_int_equal(got->run_at_ns, 1700000000123456789LL);
  assert_string_equal(got->remote_worker_id, "worker-eu-1");
  oee_task_info_unref(got);
  /* The next attempt starts on another worker: a change of the row. */
  d = draft(1, OEE_TASK_RUNNING, "exec", 0);
  set_full(&d);
  d.attempt = 3;
  d.run_at_ns = 0;
  d.remote_worker_id = "worker-us-2";
  d.started_at_ns = 5000;
  oee_task_info *running = pack(&d);
  write_all(db, &running, 1, 21, OEE_TASK_SCHEDULED);
  oee_db_close(db);

  db = open_ok(f);
  got = get_ok(db, t[0]->id);
  expect_submitted_fields(got);
  assert_int_equal(got->status, OEE_TASK_RUNNING);
  assert_int_equal(got->attempt, 3);
  assert_int_equal(got->run_at_ns, 0);
  assert_int_equal(got->started_at_ns, 5000);
  assert_string_equal(got->remote_worker_id, "worker-us-2");
  assert_string_equal(oee_task_info_context(got, "message"), "hello");
  oee_task_info_unref(got);
  got = get_ok(db, t[1]->id);
  assert_int_equal(got->attempt, 0);
  assert_int_equal(got->max_attempts, 1);
  assert_true(got->backoff_seconds == 0.0 && got->max_backoff_seconds == 0.0);
  assert_true(got->timeout_seconds == 0.0);
  assert_int_equal(got->run_at_ns, 0);
  assert_string_equal(got->idempotency_key, "");
  assert_int_equal(got->depends_on_len, 0);
  assert_null(got->depends_on);
  assert_string_equal(got->schedule_id, "");
  assert_string_equal(got->remote_worker_id, "");
  oee_task_info_unref(got);
  for (int i = 0; i < 2; i++) oee_task_info_unref(t[i]);
  oee_task_info_unref(running);
  oee_db_close(db);
}

/* The submit indexes of a whole listing (one page of at most `cap`). */
static size_t list_indexes(oee_db *db, oee_task_status st, const char *type, uint64_t *out,
                           size_t cap) {
  oee_list_query q = {.status = st, .task_type = type, .limit = cap};
  oee_list_page p;
  assert_int_equal(oee_db_list(db, &q, &p, NULL), 0);
  assert_int_equal(p.next_index, 0);
  assert_int_equal(p.total, p.len);
  for (size_t i = 0; i < p.len; i++) out[i] = p.tasks[i]->submit_index;
  size_t n = p.len;
  page_free(&p);
  return n;
}

static void expect_load(oee_db *db, const uint64_t *want, size_t n) {
  loaded l = {0};
  assert_int_equal(oee_db_load(db, on_load, &l, NULL), 0);
  assert_int_equal(l.n, n);
  for (size_t i = 0; i < n; i++) assert_int_equal(l.index[i], want[i]);
}

/* SCHEDULED (6) is unfinished: listed and counted like any status, loaded
 * at recovery, and never purged, even with a completion time older than
 * every finished row's (a task retried after it ended). */
static void test_scheduled_is_unfinished(void **state) {
  fixture *f = *state;
  oee_db *db = open_ok(f);
  const struct {
    oee_task_status st;
    const char *type;
    int64_t completed;
  } rows[] = {
      {OEE_TASK_SCHEDULED, "echo", 50},  {OEE_TASK_DONE, "echo", 100},
      {OEE_TASK_SCHEDULED, "rare", 0},   {OEE_TASK_QUEUED, "echo", 0},
      {OEE_TASK_ERROR, "rare", 200},     {OEE_TASK_RUNNING, "echo", 0},
      {OEE_TASK_CANCELLED, "echo", 300},
  };
  oee_task_info *t[7];
  for (int i = 0; i < 7; i++) {
    t[i] = task((uint64_t)i + 1, rows[i].st, rows[i].type, rows[i].completed);
  }
  write_all(db, t, 7, 70, -1);
  uint64_t by[OEE_TASK_STATUS_COUNT], idx[8];
  oee_db_counts(db, NULL, by);
  assert_int_equal(by[OEE_TASK_SCHEDULED], 2);
  oee_db_counts(db, "rare", by);
  assert_int_equal(by[OEE_TASK_SCHEDULED], 1);
  assert_int_equal(list_indexes(db, OEE_TASK_SCHEDULED, NULL, idx, 8), 2);
  assert_true(idx[0] == 1 && idx[1] == 3);
  assert_int_equal(list_indexes(db, OEE_TASK_SCHEDULED, "rare", idx, 8), 1);
  assert_int_equal(idx[0], 3);
  assert_int_equal(list_indexes(db, OEE_TASK_UNSPECIFIED, "rare", idx, 8), 2);
  assert_true(idx[0] == 3 && idx[1] == 5); /* a type alone reads every status */
  const uint64_t unfinished[] = {1, 3, 4, 6};
  expect_load(db, unfinished, 4);
  /* Purge everything finished, by age and by count. */
  char ids[8][OEE_ID_LEN + 1];
  oee_db_purge all = {.before_ns = INT64_MAX, .keep = 0, .limit = 8, .ids = ids};
  oee_db_purge *one[] = {&all};
  oee_db_batch b = {.purges = one, .n_purges = 1, .meta = {7, 71}};
  assert_int_equal(oee_db_write(db, &b, NULL), 0);
  assert_int_equal(all.deleted, 3);
  assert_string_equal(ids[0], t[1]->id); /* oldest completed first */
  assert_string_equal(ids[1], t[4]->id);
  assert_string_equal(ids[2], t[6]->id);
  assert_int_equal(oee_db_write(db, &b, NULL), 0);
  assert_int_equal(all.deleted, 0);
  oee_db_close(db);

  db = open_ok(f); /* counted again at open */
  oee_db_counts(db, NULL, by);
  assert_int_equal(by[OEE_TASK_SCHEDULED], 2);
  assert_int_equal(by[OEE_TASK_DONE] + by[OEE_TASK_ERROR] + by[OEE_TASK_CANCELLED], 0);
  expect_load(db, unfinished, 4);
  const oee_task_info *got = get_ok(db, t[0]->id);
  assert_int_equal(got->status, OEE_TASK_SCHEDULED);
  oee_task_info_unref(got);
  for (int i = 0; i < 7; i++) oee_task_info_unref(t[i]);
  oee_db_close(db);
}

/* The submit index of the task oee_db_find_key() finds, or 0 for none. */
static uint64_t find_key(oee_db *db, const char *key, int64_t after) {
  const oee_task_info *t = NULL;
  oee_error err = {0};
  int rc = oee_db_find_key(db, key, after, &t, &err);
  if (rc == OEE_ENOENT) {
    assert_null(t);
    assert_non_null(strstr(err.message, key));
    return 0;
  }
  if (rc != 0) fail_msg("find_key %s: %s", key, err.message);
  assert_string_equal(t->idempotency_key, key);
  uint64_t index = t->submit_index;
  oee_task_info_unref(t);
  return index;
}

static void test_find_key(void **state) {
  fixture *f = *state;
  oee_db *db = open_ok(f);
  const struct {
    const char *key;
    int64_t created;
    oee_task_status st;
  } rows[] = {
      {"k", 1000, OEE_TASK_DONE},  {"other", 1100, OEE_TASK_QUEUED}, {"k", 2000, OEE_TASK_DONE},
      {"", 2100, OEE_TASK_QUEUED}, {"k", 3000, OEE_TASK_DONE},       {"k", 2000, OEE_TASK_QUEUED},
  };
  oee_task_info *t[6];
  for (int i = 0; i < 6; i++) {
    int64_t completed = rows[i].st == OEE_TASK_DONE ? 10 * (i + 1) : 0;
    oee_task_info d = draft((uint64_t)i + 1, rows[i].st, "echo", completed);
    d.idempotency_key = rows[i].key;
    d.created_at_ns = rows[i].created;
    t[i] = pack(&d);
  }
  write_all(db, t, 6, 60, -1);
  assert_int_equal(find_key(db, "k", 0), 5);    /* created last */
  assert_int_equal(find_key(db, "k", 3000), 5); /* created_after itself counts */
  assert_int_equal(find_key(db, "k", 3001), 0);
  assert_int_equal(find_key(db, "other", 1100), 2);
  assert_int_equal(find_key(db, "other", 1101), 0);
  assert_int_equal(find_key(db, "K", 0), 0); /* byte for byte */
  assert_int_equal(find_key(db, "nobody's", 0), 0);
  const oee_task_info *got = NULL;
  oee_error err;
  assert_int_equal(oee_db_find_key(db, "", 0, &got, &err), OEE_EINVAL);
  assert_int_equal(oee_db_find_key(db, NULL, 0, &got, &err), OEE_EINVAL);
  assert_null(got);
  /* The newest one goes (ended long ago, purged): of the two created at
   * the same time, the one submitted later is found, after a reopen too. */
  oee_task_info *old = task(5, OEE_TASK_DONE, "echo", 1);
  write_all(db, &old, 1, 61, OEE_TASK_DONE);
  char ids[1][OEE_ID_LEN + 1];
  oee_db_purge oldest = {.keep = UINT64_MAX, .before_ns = 2, .limit = 1, .ids = ids};
  oee_db_purge *one[] = {&oldest};
  oee_db_batch b = {.purges = one, .n_purges = 1, .meta = {6, 62}};
  assert_int_equal(oee_db_write(db, &b, NULL), 0);
  assert_int_equal(oldest.deleted, 1);
  assert_string_equal(ids[0], t[4]->id);
  oee_db_close(db);
  db = open_ok(f);
  assert_int_equal(find_key(db, "k", 0), 6);
  assert_int_equal(find_key(db, "k", 2000), 6);
  assert_int_equal(find_key(db, "k", 2001), 0);
  for (int i = 0; i < 6; i++) oee_task_info_unref(t[i]);
  oee_task_info_unref(old);
  oee_db_close(db);
}

/* ------------------------------------------------------------ migrations */

/* The first column of the first row of `sql` on the file, as text ("" for
 * no row). */
static void query_text(const char *path, const char *sql, char *out, size_t cap) {
  sqlite3 *c;
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_open_v2(path, &c, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_prepare_v2(c, sql, -1, &st, NULL), SQLITE_OK);
  const unsigned char *text = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
  snprintf(out, cap, "%s", text ? (const char *)text : "");
  sqlite3_finalize(st);
  sqlite3_close(c);
}

/* tests/core/data/oee-v1.db was written by the server of schema 1 (killed
 * with a task running). Tests open a copy in the fixture's directory, never
 * the original. Its rows, in submission order: */
static const struct {
  oee_task_status st;
  int started;
} V1_ROWS[] = {{OEE_TASK_DONE, 1},   {OEE_TASK_ERROR, 1},  {OEE_TASK_RUNNING, 1},
               {OEE_TASK_QUEUED, 0}, {OEE_TASK_QUEUED, 0}, {OEE_TASK_CANCELLED, 0}};

static void copy_v1(fixture *f) {
  assert_int_equal(tu_copy_file("tests/core/data/oee-v1.db", f->path), 0);
}

/* Rows of an older schema read back with schema 3's defaults. */
static void expect_v1_rows(oee_db *db) {
  oee_list_query q = {.limit = 10};
  oee_list_page p;
  assert_int_equal(oee_db_list(db, &q, &p, NULL), 0);
  assert_int_equal(p.len, 6);
  for (size_t i = 0; i < 6; i++) {
    const oee_task_info *t = p.tasks[i];
    assert_int_equal(t->status, V1_ROWS[i].st);
    assert_int_equal(t->started_at_ns != 0, V1_ROWS[i].started);
    assert_int_equal(t->attempt, V1_ROWS[i].started); /* 1 if it ever started */
    assert_int_equal(t->max_attempts, 1);
    assert_true(t->backoff_seconds == 1.0 && t->max_backoff_seconds == 300.0);
    assert_true(t->timeout_seconds == 0.0);
    assert_int_equal(t->run_at_ns, 0);
    assert_string_equal(t->idempotency_key, "");
    assert_int_equal(t->depends_on_len, 0);
    assert_string_equal(t->schedule_id, "");
    assert_string_equal(t->remote_worker_id, "");
  }
  page_free(&p);
}

/* What a database of an older schema holds once opened: its rows with the
 * defaults, indexes that serve the reads and purges, room for new rows. */
static void expect_migrated(fixture *f) {
  oee_db *db = open_ok(f);
  expect_v1_rows(db);
  const uint64_t unfinished[] = {3, 4, 5};
  expect_load(db, unfinished, 3);
  assert_int_equal(find_key(db, "order-42", 0), 0);
  oee_task_info *t = full_task(7, OEE_TASK_QUEUED);
  write_all(db, &t, 1, 100, -1);
  assert_int_equal(find_key(db, "order-42", 0), 7);
  const oee_task_info *got = get_ok(db, t->id);
  expect_submitted_fields(got);
  oee_task_info_unref(got);
  oee_task_info_unref(t);
  char ids[8][OEE_ID_LEN + 1];
  oee_db_purge all = {.keep = 0, .limit = 8, .ids = ids};
  oee_db_purge *one[] = {&all};
  oee_db_batch b = {.purges = one, .n_purges = 1, .meta = {7, 101}};
  assert_int_equal(oee_db_write(db, &b, NULL), 0);
  assert_int_equal(all.deleted, 3); /* DONE, ERROR, CANCELLED, oldest first */
  assert_string_equal(ids[0], "01a230b1-9534-729a-96d6-b86ae5f8eb08");
  assert_string_equal(ids[2], "01a230b1-9a65-72a9-8f80-f716188a869b");
  oee_db_close(db);
  char text[512];
  query_text(f->path, "PRAGMA user_version", text, sizeof(text));
  assert_string_equal(text, "4");
  query_text(f->path, "SELECT sql FROM sqlite_schema WHERE name = 'schedules'", text, sizeof(text));
  assert_non_null(strstr(text, "id TEXT PRIMARY KEY, body BLOB NOT NULL"));
  query_text(f->path, "SELECT sql FROM sqlite_schema WHERE name = 'tasks_finished'", text,
             sizeof(text));
  assert_non_null(strstr(text, "WHERE status IN (3, 4, 5)"));
  query_text(f->path, "SELECT sql FROM sqlite_schema WHERE name = 'tasks_by_key'", text,
             sizeof(text));
  assert_non_null(strstr(text, "WHERE idempotency_key != ''"));
}

static void test_schema_1_migrates(void **state) {
  fixture *f = *state;
  copy_v1(f);
  char text[64];
  query_text(f->path, "PRAGMA user_version", text, sizeof(text));
  assert_string_equal(text, "1");
  expect_migrated(f);
}

/* A file of schema 2, made from the first as the server of schema 2 did. */
static void test_schema_2_migrates(void **state) {
  fixture *f = *state;
  copy_v1(f);
  sqlite3 *c;
  assert_int_equal(sqlite3_open(f->path, &c), SQLITE_OK);
  assert_int_equal(sqlite3_exec(c,
                                "BEGIN; ALTER TABLE tasks ADD COLUMN payload BLOB;"
                                " DROP INDEX tasks_by_type; PRAGMA user_version = 2; COMMIT;",
                                NULL, NULL, NULL),
                   SQLITE_OK);
  sqlite3_close(c);
  expect_migrated(f);
}

/* The whole file, to prove a refusal left it as it was. */
static char *slurp(const char *path, size_t *len) {
  FILE *fp = fopen(path, "rb");
  assert_non_null(fp);
  fseek(fp, 0, SEEK_END);
  *len = (size_t)ftell(fp);
  rewind(fp);
  char *buf = malloc(*len + 1);
  assert_int_equal(fread(buf, 1, *len, fp), *len);
  fclose(fp);
  return buf;
}

static void expect_refused(fixture *f, int code, const char *words) {
  size_t before_len, after_len;
  char *before = slurp(f->path, &before_len);
  oee_db_config cfg = {.dir = f->dir};
  oee_db *db = NULL;
  oee_error err = {0};
  assert_int_equal(oee_db_open(&cfg, &db, &err), code);
  assert_null(db);
  if (strstr(err.message, words) == NULL || strstr(err.message, f->path) == NULL) {
    fail_msg("\"%s\" lacks \"%s\" or the path", err.message, words);
  }
  char *after = slurp(f->path, &after_len);
  assert_int_equal(before_len, after_len);
  assert_memory_equal(before, after, before_len);
  free(before);
  free(after);
}

static void test_refuses_foreign_files(void **state) {
  fixture *f = *state;
  FILE *fp = fopen(f->path, "wb");
  for (int i = 0; i < 512; i++) fputs("not sqlite ", fp);
  fclose(fp);
  expect_refused(f, OEE_EINVAL, "is not a database");
  unlink(f->path);
  sqlite3 *other;
  assert_int_equal(sqlite3_open(f->path, &other), SQLITE_OK);
  assert_int_equal(sqlite3_exec(other, "CREATE TABLE x(a)", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(other);
  expect_refused(f, OEE_EINVAL, "is not an OEE database");
}

static void test_refuses_newer_schema(void **state) {
  fixture *f = *state;
  oee_db_close(open_ok(f));
  sqlite3 *c;
  assert_int_equal(sqlite3_open(f->path, &c), SQLITE_OK);
  assert_int_equal(sqlite3_exec(c, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(c);
  expect_refused(f, OEE_ESTATE, "has schema version 99, newer");
}

static void test_refuses_corrupt_file(void **state) {
  fixture *f = *state;
  oee_db *db = open_ok(f);
  oee_task_info *t[500];
  for (int i = 0; i < 500; i++) t[i] = task((uint64_t)i + 1, OEE_TASK_DONE, "echo", 9);
  write_all(db, t, 500, 5000, -1);
  for (int i = 0; i < 500; i++) oee_task_info_unref(t[i]);
  oee_db_close(db);
  sqlite3 *c; /* fold the WAL into the file so the damage below is seen */
  assert_int_equal(sqlite3_open(f->path, &c), SQLITE_OK);
  assert_int_equal(sqlite3_exec(c, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(c);
  FILE *fp = fopen(f->path, "r+b");
  assert_non_null(fp);
  fseek(fp, 0, SEEK_END);
  long len = ftell(fp);
  assert_true(len > 8 * 4096);
  fseek(fp, 4096, SEEK_SET); /* every page but the header page */
  for (long i = 4096; i < len; i++) fputc(0x5a, fp);
  fclose(fp);
  expect_refused(f, OEE_EIO, "is corrupt");
}

static void test_refuses_second_opener(void **state) {
  fixture *f = *state;
  oee_db *db = open_ok(f);
  oee_db_config cfg = {.dir = f->dir};
  oee_db *second = NULL;
  oee_error err = {0};
  assert_int_equal(oee_db_open(&cfg, &second, &err), OEE_EEXISTS);
  assert_non_null(strstr(err.message, "in use by another running server"));
  oee_db_close(db);
  second = open_ok(f); /* the lock went with the first */
  oee_db_close(second);
}

static void test_context_codec_refuses_garbage(void **state) {
  (void)state;
  const oee_kv kv[] = {{"k", "v"}, {"key2", ""}};
  void *buf;
  size_t len, n;
  oee_kv *out;
  assert_int_equal(oee__ctx_encode(kv, 2, &buf, &len), 0);
  assert_int_equal(oee__ctx_decode(buf, len, &out, &n), 0);
  assert_int_equal(n, 2);
  assert_string_equal(out[1].key, "key2");
  assert_string_equal(out[1].value, "");
  free(out);
  assert_int_equal(oee__ctx_decode(buf, len - 1, &out, &n), OEE_EINVAL);
  ((unsigned char *)buf)[0] = 200; /* more entries than bytes */
  assert_int_equal(oee__ctx_decode(buf, len, &out, &n), OEE_EINVAL);
  free(buf);
  /* A count whose entries would need 2^32 strings: refused, not wrapped. */
  const unsigned char huge[4] = {0, 0, 0, 0x80};
  assert_int_equal(oee__ctx_decode(huge, sizeof(huge), &out, &n), OEE_EINVAL);
}

static void test_list_codec(void **state) {
  (void)state;
  const char *const in[] = {DEPS[0], "", DEPS[2]};
  void *buf;
  size_t len, n;
  char **out;
  assert_int_equal(oee__strs_encode(in, 3, &buf, &len), 0);
  assert_int_equal(len, 4 + 3 * 4 + 2 * OEE_ID_LEN);
  assert_int_equal(oee__strs_decode(buf, len, &out, &n), 0);
  assert_int_equal(n, 3);
  for (size_t i = 0; i < 3; i++) assert_string_equal(out[i], in[i]);
  free(out);
  assert_int_equal(oee__strs_decode(buf, len - 1, &out, &n), OEE_EINVAL);
  assert_null(out);
  ((unsigned char *)buf)[3] = 0x40; /* 2^30 + 3 strings in 88 bytes */
  assert_int_equal(oee__strs_decode(buf, len, &out, &n), OEE_EINVAL);
  free(buf);
  assert_int_equal(oee__strs_encode(in, 0, &buf, &len), 0);
  assert_null(buf);
  assert_int_equal(len, 0);
  assert_int_equal(oee__strs_decode(NULL, 0, &out, &n), 0);
  assert_null(out);
  assert_int_equal(n, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_rows_survive_reopen, setup, teardown),
      cmocka_unit_test_setup_teardown(test_pages_and_filters, setup, teardown),
      cmocka_unit_test_setup_teardown(test_refuses_foreign_files, setup, teardown),
      cmocka_unit_test_setup_teardown(test_refuses_newer_schema, setup, teardown),
      cmocka_unit_test_setup_teardown(test_refuses_corrupt_file, setup, teardown),
      cmocka_unit_test_setup_teardown(test_refuses_second_opener, setup, teardown),
      cmocka_unit_test_setup_teardown(test_new_fields_survive_reopen, setup, teardown),
      cmocka_unit_test_setup_teardown(test_scheduled_is_unfinished, setup, teardown),
      cmocka_unit_test_setup_teardown(test_find_key, setup, teardown),
      cmocka_unit_test_setup_teardown(test_schema_1_migrates, setup, teardown),
      cmocka_unit_test_setup_teardown(test_schema_2_migrates, setup, teardown),
      cmocka_unit_test(test_context_codec_refuses_garbage),
      cmocka_unit_test(test_list_codec),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
