/* test_schedule.c - cron schedules on the engine alone: refusals, firings
 * on time with their keys, SKIP and ALLOW, pause and resume (nothing fires
 * or counts while paused), delete, list paging, the catch-up after a
 * restart of a durable engine, and a firing whose task was stored before
 * its schedule's row (a process killed in between). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "tests/core/testutil.h"

#include "core/cron.h"
#include "core/db.h"
#include "core/internal.h"
#include "core/oee.h"
#include "core/task.h"

#define SEC 1000000000LL

static oee_kv echo_ctx[] = {{"message", "tick"}};
static oee_submit echo_task = {
    .name = "tick", .task_type = "echo", .priority = 5, .context = echo_ctx, .context_len = 1};

static oee_schedule_spec every(const char *id, const char *cron, const oee_submit *task) {
  return (oee_schedule_spec){.schedule_id = id, .cron = cron, .task = task};
}

static oee_schedule *create(oee_engine *eng, oee_schedule_spec spec) {
  oee_schedule *s = NULL;
  oee_error err;
  if (oee_engine_schedule_create(eng, &spec, &s, &err) != 0) fail_msg("create: %s", err.message);
  return s;
}

static oee_schedule *get(oee_engine *eng, const char *id) {
  oee_schedule *s = NULL;
  assert_int_equal(oee_engine_schedule_get(eng, id, &s), 0);
  return s;
}

/* The tasks of schedule `id` (from a listing of every task), oldest first. */
static size_t tasks_of(oee_engine *eng, const char *id, const oee_task_info **out, size_t cap) {
  oee_list_query q = {.limit = 1000};
  oee_list_page page;
  assert_int_equal(oee_engine_list(eng, &q, &page), 0);
  size_t n = 0;
  for (size_t i = 0; i < page.len; i++) {
    if (strcmp(page.tasks[i]->schedule_id, id) == 0 && n < cap) {
      out[n++] = oee_task_info_ref(page.tasks[i]);
    }
  }
  oee_list_page_free(&page);
  return n;
}

static void unref_all(const oee_task_info **t, size_t n) {
  for (size_t i = 0; i < n; i++) oee_task_info_unref(t[i]);
}

/* The firing time (UTC seconds) in a task's key "<id>@YYYY-MM-DDTHH:MM:SSZ". */
static int64_t key_time(const oee_task_info *t) {
  const char *at = strchr(t->idempotency_key, '@');
  struct tm tm = {0};
  if (at == NULL || strptime(at + 1, "%Y-%m-%dT%H:%M:%SZ", &tm) == NULL) {
    fail_msg("not a firing key: \"%s\"", t->idempotency_key);
  }
  return (int64_t)timegm(&tm);
}

/* The key of schedule `id`'s firing at `at` (UTC seconds). */
static void firing_key(const char *id, int64_t at, char *key, size_t cap) {
  char when[OEE_CRON_TIME_SIZE];
  oee_cron_time_rfc3339(at, when);
  snprintf(key, cap, "%s@%s", id, when);
}

/* Sleeps until CLOCK_REALTIME reaches `ns`. */
static void sleep_until(int64_t ns) {
  int64_t left = ns - oee_now_ns();
  if (left > 0) usleep((useconds_t)(left / 1000));
}

static oee_engine *open_durable(const char *dir) {
  oee_engine_config cfg = {.num_workers = 1, .data_dir = dir, .sync_normal = 1};
  oee_engine *eng;
  oee_error err;
  if (oee_engine_open(&cfg, &eng, &err) != 0) fail_msg("open: %s", err.message);
  return eng;
}

/* The view of schedule `id` and its tasks once it is paused, so that
 * neither changes between the two reads (a firing on its way when it was
 * paused is told within one commit; 200 ms is ample for that). */
static oee_schedule *paused_view(oee_engine *eng, const char *id, const oee_task_info **t,
                                 size_t cap, size_t *n) {
  oee_error err;
  oee_schedule *s = NULL;
  assert_int_equal(oee_engine_schedule_pause(eng, id, 1, &s, &err), 0);
  oee_schedule_free(s);
  usleep(200 * 1000);
  s = get(eng, id);
  *n = tasks_of(eng, id, t, cap);
  return s;
}

/* Every refusal names what is wrong and creates nothing. */
static void test_refusals(void **state) {
  (void)state;
  oee_engine_config cfg = {.num_workers = 1, .max_schedules = 2};
  oee_engine *eng;
  assert_int_equal(oee_engine_create(&cfg, &eng), 0);
  oee_submit delayed = echo_task, keyed = echo_task, unknown = echo_task;
  delayed.has_run_at = 1;
  delayed.run_at_ns = oee_now_ns() + SEC;
  keyed.idempotency_key = "k";
  unknown.task_type = "nosuchtype";
  struct {
    oee_schedule_spec spec;
    int rc;
    const char *words;
  } rows[] = {
      {every("Bad", "@every 1s", &echo_task), OEE_EINVAL, "schedule_id \"Bad\" must be"},
      {every("", "@every 1s", &echo_task), OEE_EINVAL, "schedule_id \"\" must be"},
      {every("a", "61 * * * *", &echo_task), OEE_EINVAL, "minute"},
      {every("a", "*/0 * * * *", &echo_task), OEE_EINVAL, "step"},
      {every("a", "* * * * MON-FOO", &echo_task), OEE_EINVAL, "FOO"},
      {every("a", "", &echo_task), OEE_EINVAL, "empty"},
      {every("a", "@every 0s", &echo_task), OEE_EINVAL, "@every"},
      {every("a", "@every 1ms", &echo_task), OEE_EINVAL, "@every"},
      {every("a", "@every 1s", &delayed), OEE_EINVAL, "task.run_at"},
      {every("a", "@every 1s", &keyed), OEE_EINVAL, "task.idempotency_key"},
      {every("a", "@every 1s", &unknown), OEE_ENOEXEC, "task: unknown task_type"},
      {every("a", "@every 1s", NULL), OEE_EINVAL, "task: a template is required"},
  };
  for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
    oee_error err = {0};
    oee_schedule *s = NULL;
    assert_int_equal(oee_engine_schedule_create(eng, &rows[i].spec, &s, &err), rows[i].rc);
    assert_null(s);
    if (strstr(err.message, rows[i].words) == NULL) {
      fail_msg("row %zu: \"%s\" lacks \"%s\"", i, err.message, rows[i].words);
    }
  }
  oee_schedule_spec zone = every("a", "@daily", &echo_task);
  zone.time_zone = "Mars/Olympus";
  oee_error err;
  assert_int_equal(oee_engine_schedule_create(eng, &zone, NULL, &err), OEE_EINVAL);
  assert_non_null(strstr(err.message, "Mars/Olympus"));
  oee_schedule_free(create(eng, every("a", "@daily", &echo_task)));
  assert_int_equal(
      oee_engine_schedule_create(
          eng, &(oee_schedule_spec){.schedule_id = "a", .cron = "@daily", .task = &echo_task}, NULL,
          &err),
      OEE_EEXISTS);
  /* The field, its value, and why. */
  assert_string_equal(err.message, "schedule_id \"a\" is in use by an existing schedule");
  oee_schedule_free(create(eng, every("b", "@daily", &echo_task)));
  assert_int_equal(
      oee_engine_schedule_create(
          eng, &(oee_schedule_spec){.schedule_id = "c", .cron = "@daily", .task = &echo_task}, NULL,
          &err),
      OEE_EFULL);
  oee_schedule *none;
  assert_int_equal(oee_engine_schedule_get(eng, "c", &none), OEE_ENOENT);
  /* A caller's own submission may not claim a schedule. */
  oee_submit claim = echo_task;
  claim.schedule_id = "a";
  assert_int_equal(oee_engine_submit(eng, &claim, NULL, &err), OEE_EINVAL);
  oee_engine_destroy(eng);
}

/* @every 1s: each firing submits one task with schedule_id and the key
 * "<id>@<time>", created within 100 ms of its time (a scheduled time is a
 * whole second: created_at - that second). */
static void test_fires_on_time(void **state) {
  (void)state;
  oee_engine *eng = tu_engine(2, NULL, NULL);
  oee_schedule *s = create(eng, every("tick", "@every 1s", &echo_task));
  assert_string_equal(s->cron, "@every 1s");
  assert_string_equal(s->time_zone, "UTC");
  assert_int_equal(s->overlap, OEE_OVERLAP_SKIP);
  assert_int_equal(s->next_run_ns, s->created_at_ns + SEC);
  oee_schedule_free(s);
  usleep(3500 * 1000);
  const oee_task_info *t[16];
  size_t n = tasks_of(eng, "tick", t, 16);
  assert_true(n >= 2 && n <= 4);
  for (size_t i = 0; i < n; i++) {
    int64_t at = t[i]->created_at_ns / SEC * SEC; /* the second it fired for */
    if (t[i]->created_at_ns - at > SEC / 10) {
      fail_msg("firing %zu created %lld ms after its time", i,
               (long long)((t[i]->created_at_ns - at) / 1000000));
    }
    char when[OEE_CRON_TIME_SIZE], key[128];
    oee_cron_time_rfc3339(at / SEC, when);
    snprintf(key, sizeof(key), "tick@%s", when);
    assert_string_equal(t[i]->idempotency_key, key);
    if (i > 0) assert_int_equal(t[i]->created_at_ns / SEC - t[i - 1]->created_at_ns / SEC, 1);
  }
  s = get(eng, "tick");
  assert_true(s->runs >= (int64_t)n);
  assert_int_equal(s->skipped, 0);
  assert_true(s->last_task_id[0] != '\0');
  oee_schedule_free(s);
  unref_all(t, n);
  tu_engine_free(eng);
}

/* SKIP: a firing while the previous task runs is skipped and counted;
 * ALLOW: it is not. */
static void test_overlap(void **state) {
  (void)state;
  oee_engine *eng = tu_engine(4, NULL, NULL);
  oee_kv ctx[] = {{"seconds", "2.5"}};
  oee_submit slow = {
      .name = "slow", .task_type = "sleep", .priority = 5, .context = ctx, .context_len = 1};
  oee_schedule_free(create(eng, every("skip", "@every 1s", &slow)));
  oee_schedule_spec allow = every("allow", "@every 1s", &slow);
  allow.overlap = OEE_OVERLAP_ALLOW;
  oee_schedule_free(create(eng, allow));
  usleep(3500 * 1000);
  oee_schedule *s = get(eng, "skip"), *a = get(eng, "allow");
  /* Both saw the same firings (three or four, by where in its second each
   * was created); SKIP ran the first and skipped while it ran. */
  assert_true(s->runs >= 1 && s->skipped >= 2);
  assert_int_equal(a->skipped, 0);
  assert_true(a->runs >= 3);
  assert_true(s->runs + s->skipped >= a->runs - 1 && s->runs + s->skipped <= a->runs + 1);
  /* No two of SKIP's tasks ran at once. */
  const oee_task_info *t[16];
  size_t n = tasks_of(eng, "skip", t, 16);
  for (size_t i = 1; i < n; i++) {
    assert_true(t[i - 1]->completed_at_ns != 0 && t[i]->created_at_ns >= t[i - 1]->completed_at_ns);
  }
  unref_all(t, n);
  oee_schedule_free(s);
  oee_schedule_free(a);
  tu_engine_free(eng);
}

/* Paused: nothing fires and next_run is unset; resumed: the next firing is
 * after now (no catch-up); deleted: no more firings, its tasks stay. */
static void test_pause_resume_delete(void **state) {
  (void)state;
  oee_engine *eng = tu_engine(2, NULL, NULL);
  oee_schedule_spec spec = every("p", "@every 1s", &echo_task);
  spec.paused = 1;
  oee_schedule *s = create(eng, spec);
  assert_true(s->paused);
  assert_int_equal(s->next_run_ns, 0);
  oee_schedule_free(s);
  usleep(1500 * 1000);
  const oee_task_info *t[16];
  assert_int_equal(tasks_of(eng, "p", t, 16), 0);
  oee_error err;
  int64_t before = oee_now_ns();
  assert_int_equal(oee_engine_schedule_pause(eng, "p", 0, &s, &err), 0);
  assert_false(s->paused);
  assert_true(s->next_run_ns > before && s->next_run_ns <= before + SEC + SEC / 10);
  oee_schedule_free(s);
  usleep(2500 * 1000);
  size_t n = tasks_of(eng, "p", t, 16);
  assert_true(n >= 1 && n <= 3);
  unref_all(t, n);
  assert_int_equal(oee_engine_schedule_delete(eng, "p", &err), 0);
  assert_int_equal(oee_engine_schedule_delete(eng, "p", &err), OEE_ENOENT);
  assert_int_equal(oee_engine_schedule_pause(eng, "p", 1, NULL, &err), OEE_ENOENT);
  size_t kept = tasks_of(eng, "p", t, 16);
  unref_all(t, kept);
  usleep(1500 * 1000);
  size_t after = tasks_of(eng, "p", t, 16);
  unref_all(t, after);
  assert_int_equal(after, kept); /* none new, none removed */
  tu_engine_free(eng);
}

/* A schedule firing every second, paused for about three seconds: while
 * paused nothing fires, runs and skipped stay as they were and next_run is
 * unset; the resume counts nothing for the pause either, and its next_run
 * is the first firing time after now (for @every 1s every whole second is
 * one: the second after the resume's). */
static void test_pause_counts_nothing(void **state) {
  (void)state;
  oee_engine *eng = tu_engine(2, NULL, NULL);
  oee_schedule_free(create(eng, every("pc", "@every 1s", &echo_task)));
  usleep(2300 * 1000);
  const oee_task_info *t[16];
  size_t n;
  oee_schedule *s = paused_view(eng, "pc", t, 16, &n);
  unref_all(t, n);
  int64_t runs = s->runs, skipped = s->skipped, paused_at = oee_now_ns() / SEC;
  assert_true(runs >= 1);
  assert_int_equal(runs, (int64_t)n);
  oee_schedule_free(s);
  for (int i = 0; i < 3; i++) {
    usleep(1000 * 1000);
    s = get(eng, "pc");
    assert_true(s->paused);
    assert_int_equal(s->next_run_ns, 0);
    assert_int_equal(s->runs, runs);
    assert_int_equal(s->skipped, skipped);
    oee_schedule_free(s);
    size_t now_n = tasks_of(eng, "pc", t, 16);
    unref_all(t, now_n);
    assert_int_equal(now_n, n);
  }
  oee_error err;
  int64_t before = oee_now_ns();
  assert_int_equal(oee_engine_schedule_pause(eng, "pc", 0, &s, &err), 0);
  int64_t after = oee_now_ns();
  assert_false(s->paused);
  assert_int_equal(s->runs, runs);
  assert_int_equal(s->skipped, skipped);
  assert_int_equal(s->next_run_ns % SEC, 0);
  assert_true(s->next_run_ns / SEC >= before / SEC + 1 && s->next_run_ns / SEC <= after / SEC + 1);
  int64_t resumed_next = s->next_run_ns / SEC;
  oee_schedule_free(s);
  usleep(1500 * 1000);
  s = paused_view(eng, "pc", t, 16, &n);
  assert_true(s->runs >= runs + 1);
  assert_int_equal(s->skipped, skipped); /* the pause's seconds are not skips */
  assert_int_equal(s->runs, (int64_t)n);
  /* No firing time from the pause was submitted after it. */
  for (size_t i = 0; i < n; i++) {
    assert_true(key_time(t[i]) <= paused_at || key_time(t[i]) >= resumed_next);
  }
  unref_all(t, n);
  oee_schedule_free(s);
  tu_engine_free(eng);
}

/* Pages in id order. */
static void test_list(void **state) {
  (void)state;
  oee_engine *eng = tu_engine(1, NULL, NULL);
  const char *ids[] = {"c", "a", "e", "b", "d"};
  for (int i = 0; i < 5; i++) oee_schedule_free(create(eng, every(ids[i], "@daily", &echo_task)));
  oee_schedule **page;
  size_t n;
  int more;
  assert_int_equal(oee_engine_schedule_list(eng, NULL, 2, &page, &n, &more), 0);
  assert_int_equal(n, 2);
  assert_true(more);
  assert_string_equal(page[0]->schedule_id, "a");
  assert_string_equal(page[1]->schedule_id, "b");
  oee_schedule_list_free(page, n);
  assert_int_equal(oee_engine_schedule_list(eng, "b", 10, &page, &n, &more), 0);
  assert_int_equal(n, 3);
  assert_false(more);
  assert_string_equal(page[0]->schedule_id, "c");
  assert_string_equal(page[2]->schedule_id, "e");
  oee_schedule_list_free(page, n);
  tu_engine_free(eng);
}

/* A durable engine keeps its schedules: after a stop of a few seconds the
 * latest firing time due at the restart runs once, promptly, the others
 * missed while it was down count as skipped, no firing time is submitted
 * twice, and the counts and template come back. */
static void test_restart_catch_up(void **state) {
  (void)state;
  char dir[256];
  assert_int_equal(tu_temp_dir(dir, sizeof(dir), "schedule"), 0);
  oee_engine *eng = open_durable(dir);
  oee_engine_start(eng);
  oee_schedule_spec spec = every("r", "@every 1s", &echo_task);
  spec.time_zone = "Europe/Ljubljana";
  /* ALLOW: with SKIP, a firing's task left QUEUED by the stop (recovered
   * QUEUED) could still be unfinished at the catch-up and skip it. */
  spec.overlap = OEE_OVERLAP_ALLOW;
  oee_schedule_free(create(eng, spec));
  oee_schedule_free(create(eng, every("q", "@daily", &echo_task)));
  usleep(2200 * 1000);
  oee_schedule *s = get(eng, "r");
  assert_true(s->runs >= 1);
  oee_schedule_free(s);
  oee_engine_destroy(eng);
  usleep(3200 * 1000); /* three or four firings missed */
  int64_t t0 = oee_now_ns();
  eng = open_durable(dir);
  oee_engine_start(eng);
  int64_t t1 = oee_now_ns();
  usleep(300 * 1000);
  const oee_task_info *t[32];
  size_t n;
  s = paused_view(eng, "r", t, 32, &n);
  assert_string_equal(s->time_zone, "Europe/Ljubljana");
  assert_string_equal(s->task.name, "tick");
  assert_string_equal(s->task.context[0].value, "tick");
  /* k1: the last firing of the first engine; the catch-up: the first task
   * created after the restart, with the only key time in (k1, restart]. */
  int64_t k1 = 0;
  size_t up = n;
  for (size_t i = 0; i < n; i++) {
    if (t[i]->created_at_ns < t0 && key_time(t[i]) > k1) k1 = key_time(t[i]);
    if (t[i]->created_at_ns >= t0 && (up == n || key_time(t[i]) < key_time(t[up]))) up = i;
  }
  assert_true(k1 > 0);
  assert_true(up < n);
  int64_t caught = key_time(t[up]);
  /* Every whole second is a firing time of @every 1s: the latest one due
   * when the stored schedules were read (between t0 and t1). */
  assert_true(caught >= t0 / SEC && caught <= t1 / SEC);
  assert_true(caught - k1 >= 3); /* the stop spanned three or more firings */
  size_t in_gap = 0;
  for (size_t i = 0; i < n; i++) in_gap += key_time(t[i]) > k1 && key_time(t[i]) <= caught;
  assert_int_equal(in_gap, 1);
  if (t[up]->created_at_ns - t1 > SEC / 2) {
    fail_msg("the catch-up was created %lld ms after the restart",
             (long long)((t[up]->created_at_ns - t1) / 1000000));
  }
  /* Of the firing times after k1 up to the catch-up, all but it are skips;
   * every run has its task; every firing time up to the last is counted. */
  assert_int_equal(s->skipped, caught - k1 - 1);
  assert_int_equal(s->runs, (int64_t)n);
  assert_int_equal(s->runs + s->skipped, (s->last_run_ns - s->created_at_ns) / SEC);
  for (size_t i = 0; i < n; i++) {
    for (size_t j = 0; j < i; j++)
      assert_string_not_equal(t[i]->idempotency_key, t[j]->idempotency_key);
  }
  unref_all(t, n);
  oee_schedule_free(s);
  oee_error err;
  assert_int_equal(oee_engine_schedule_get(eng, "q", &s), 0);
  oee_schedule_free(s);
  assert_int_equal(oee_engine_schedule_delete(eng, "q", &err), 0);
  oee_engine_destroy(eng);
  eng = open_durable(dir);
  assert_int_equal(oee_engine_schedule_get(eng, "q", &s), OEE_ENOENT); /* the delete is stored */
  oee_engine_destroy(eng);
  assert_int_equal(tu_remove_dir(dir), 0);
}

/* A process killed after a firing's task was stored and before its
 * schedule's row was: the row names that firing as next and its task
 * exists. Made here by hand: an engine that never starts (nothing fires)
 * stores the schedule, then the task is written through the database
 * layer. At the restart, a later firing is due as well, so the firing
 * would be a skip if its task were not looked up: it counts once as a run,
 * its task stays the only one with its key, and the latest due firing
 * runs. A second restart counts nothing again. */
static void test_restart_counts_stored_firing(void **state) {
  (void)state;
  char dir[256];
  assert_int_equal(tu_temp_dir(dir, sizeof(dir), "schedule-stored"), 0);
  oee_engine *eng = open_durable(dir);
  oee_schedule *s = create(eng, every("c", "@every 2s", &echo_task));
  int64_t created = s->created_at_ns / SEC, fired = s->next_run_ns / SEC;
  assert_int_equal(fired, created + 2);
  oee_schedule_free(s);
  oee_engine_destroy(eng);

  char key[128];
  firing_key("c", fired, key, sizeof(key));
  oee_db *db;
  oee_db_meta meta;
  oee_error err;
  oee_db_config dc = {.dir = dir, .sync = OEE_DB_SYNC_NORMAL};
  if (oee_db_open(&dc, &db, &err) != 0) fail_msg("db open: %s", err.message);
  assert_int_equal(oee_db_meta_get(db, &meta, &err), 0);
  oee_task_info d = {.id = "0190a1b2-c3d4-7e5f-8a9b-00000000c0de",
                     .name = "tick",
                     .task_type = "echo",
                     .result = "tick",
                     .error_message = "",
                     .status = OEE_TASK_DONE,
                     .worker_id = 0,
                     .created_at_ns = fired * SEC + 1000000,
                     .started_at_ns = fired * SEC + 2000000,
                     .completed_at_ns = fired * SEC + 3000000,
                     .seq = meta.last_seq + 1,
                     .submit_index = meta.last_index + 1,
                     .attempt = 1,
                     .max_attempts = 1,
                     .idempotency_key = key,
                     .schedule_id = "c",
                     .remote_worker_id = ""};
  oee_task_info *row = oee__snap_pack(&d);
  assert_non_null(row);
  oee_db_batch b = {.rows = &(oee_db_row){row, -1, NULL, 0},
                    .n_rows = 1,
                    .meta = {.last_index = d.submit_index, .last_seq = d.seq}};
  if (oee_db_write(db, &b, &err) != 0) fail_msg("write: %s", err.message);
  oee_task_info_unref(row);
  oee_db_close(db);

  sleep_until((fired + 2) * SEC + SEC / 4); /* the next firing is due too */
  eng = open_durable(dir);
  oee_engine_start(eng);
  usleep(300 * 1000);
  const oee_task_info *t[8];
  size_t n;
  s = paused_view(eng, "c", t, 8, &n);
  assert_int_equal(s->runs, 2);
  assert_int_equal(s->skipped, 0);
  assert_int_equal(s->last_run_ns, (fired + 2) * SEC);
  assert_int_equal(n, 2);
  assert_string_equal(t[0]->id, d.id); /* the stored firing's task, alone with its key */
  assert_string_equal(t[0]->idempotency_key, key);
  assert_int_equal(key_time(t[1]), fired + 2);
  assert_string_equal(s->last_task_id, t[1]->id);
  oee_schedule_free(s);
  unref_all(t, n);
  oee_engine_destroy(eng);
  eng = open_durable(dir);
  s = get(eng, "c");
  assert_int_equal(s->runs, 2);
  assert_int_equal(s->skipped, 0);
  oee_schedule_free(s);
  oee_engine_destroy(eng);
  assert_int_equal(tu_remove_dir(dir), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_refusals),
      cmocka_unit_test(test_fires_on_time),
      cmocka_unit_test(test_overlap),
      cmocka_unit_test(test_pause_resume_delete),
      cmocka_unit_test(test_list),
      cmocka_unit_test(test_restart_catch_up),
      cmocka_unit_test(test_restart_counts_stored_firing),
      cmocka_unit_test(test_pause_counts_nothing),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
