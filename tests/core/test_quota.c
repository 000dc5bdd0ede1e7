/* test_quota.c - per-type quotas (type_limits): max_running and
 * max_per_second are never exceeded, held-back tasks keep their order and
 * do not hold back other types, cancelling a held-back task, the status
 * shows the use, refusals of bad limits, and quotas after a restart. */
#include <math.h>
#include <pthread.h>
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

#include "core/internal.h"
#include "core/oee.h"
#include "core/oee_exec.h"

#define WAIT_S 30.0
#define MAX_LOG 512

typedef char task_id[OEE_ID_LEN + 1];

/* "held" and "free": record each start (time, name) and the most of their
 * type running at once; a job runs until the gate opens or, with context
 * "ms", for that long. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int gate_open, running[2], most[2];
static int64_t start_ns[MAX_LOG];
static char start_name[MAX_LOG][16];
static int n_starts;

static void job(oee_job *j, void *user_data) {
  int kind = (int)(intptr_t)user_data;
  const char *ms = oee_job_context(j, "ms");
  pthread_mutex_lock(&lock);
  if (++running[kind] > most[kind]) most[kind] = running[kind];
  if (n_starts < MAX_LOG) {
    start_ns[n_starts] = oee__mono_ns();
    snprintf(start_name[n_starts], sizeof(start_name[0]), "%s", oee_job_task(j)->name);
    n_starts++;
  }
  if (ms == NULL) {
    while (!gate_open) pthread_cond_wait(&cv, &lock);
  }
  pthread_mutex_unlock(&lock);
  if (ms != NULL) usleep((useconds_t)atoi(ms) * 1000);
  pthread_mutex_lock(&lock);
  running[kind]--;
  pthread_mutex_unlock(&lock);
  oee_job_succeed(j, "");
}

static void reset(void) {
  pthread_mutex_lock(&lock);
  gate_open = 0;
  memset(running, 0, sizeof(running));
  memset(most, 0, sizeof(most));
  n_starts = 0;
  pthread_mutex_unlock(&lock);
}

static void gate(int open) {
  pthread_mutex_lock(&lock);
  gate_open = open;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&lock);
}

static oee_engine *make(int workers, const oee_type_limit *limits, size_t n, const char *dir) {
  reset();
  oee_engine_config cfg = {.num_workers = workers,
                           .type_limits = limits,
                           .n_type_limits = n,
                           .data_dir = dir,
                           .sync_normal = 1};
  oee_engine *eng;
  oee_error err;
  if (oee_engine_open(&cfg, &eng, &err) != 0) fail_msg("open: %s", err.message);
  assert_int_equal(oee_engine_register(eng, "held", job, (void *)0), 0);
  assert_int_equal(oee_engine_register(eng, "free", job, (void *)1), 0);
  return eng;
}

static void add(oee_engine *eng, const char *type, const char *name, int priority, const char *ms,
                char *id) {
  oee_kv ctx[] = {{"ms", ms}};
  oee_submit req = {.name = name,
                    .task_type = type,
                    .priority = priority,
                    .context = ms ? ctx : NULL,
                    .context_len = ms ? 1 : 0};
  const oee_task_info *t;
  oee_error err;
  if (oee_engine_submit(eng, &req, &t, &err) != 0) fail_msg("submit: %s", err.message);
  if (id) memcpy(id, t->id, OEE_ID_LEN + 1);
  oee_task_info_unref(t);
}

static void wait_done(oee_engine *eng, const char *id) {
  const oee_task_info *t = tu_wait_terminal(eng, id, WAIT_S);
  if (t == NULL) fail_msg("task %s did not end", id);
  assert_int_equal(t->status, OEE_TASK_DONE);
  oee_task_info_unref(t);
}

/* The status of the one quota of `eng`. */
static oee_type_usage usage(oee_engine *eng) {
  oee_status st;
  assert_int_equal(oee_engine_status(eng, &st), 0);
  assert_int_equal(st.n_type_limits, 1);
  oee_type_usage u = st.type_limits[0];
  oee_status_free(&st);
  return u;
}

/* max_running 2 with 6 workers: two run, the rest wait QUEUED in order,
 * other types run past them; the status shows the two. */
static void test_max_running(void **state) {
  (void)state;
  oee_type_limit lim[] = {{"held", 2, 0}};
  oee_engine *eng = make(6, lim, 1, NULL);
  assert_int_equal(oee_engine_start(eng), 0);
  task_id held[6], other[4];
  const char *names[] = {"h0", "h1", "h2", "h3", "h4", "h5"};
  for (int i = 0; i < 6; i++) {
    add(eng, "held", names[i], i == 5 ? 9 : 5, NULL, held[i]);
    if (i < 2) assert_true(tu_wait_status(eng, held[i], OEE_TASK_RUNNING, WAIT_S));
  }
  for (int i = 0; i < 4; i++) add(eng, "free", "f", 5, "1", other[i]);
  for (int i = 0; i < 4; i++) wait_done(eng, other[i]); /* not stuck behind "held" */
  oee_type_usage u = usage(eng);
  assert_string_equal(u.task_type, "held");
  assert_int_equal(u.max_running, 2);
  assert_int_equal(u.running, 2);
  oee_status st;
  assert_int_equal(oee_engine_status(eng, &st), 0);
  assert_int_equal(st.queue_size, 4); /* held back: still QUEUED */
  oee_status_free(&st);
  int did;
  const oee_task_info *t;
  assert_int_equal(oee_engine_cancel(eng, held[3], &did, &t), 0); /* out of its own heap */
  assert_int_equal(t->status, OEE_TASK_CANCELLED);
  oee_task_info_unref(t);
  gate(1);
  for (int i = 0; i < 6; i++) {
    if (i != 3) wait_done(eng, held[i]);
  }
  assert_int_equal(most[0], 2);
  /* After the first two: h5 (priority 9), then h2, h4 in submission order
   * (started_at is stamped when the engine picks a task). */
  int64_t at[6];
  for (int i = 0; i < 6; i++) {
    assert_int_equal(oee_engine_get(eng, held[i], &t), 0);
    at[i] = t->started_at_ns;
    oee_task_info_unref(t);
  }
  assert_true(at[0] <= at[5] && at[1] <= at[5]);
  assert_true(at[5] <= at[2] && at[2] <= at[4]);
  assert_int_equal(usage(eng).running, 0);
  tu_engine_free(eng);
}

/* max_per_second 20 (burst 20): in no window of time do more tasks start
 * than the bucket allows, and all of them do run. */
static void test_max_per_second(void **state) {
  (void)state;
  const double rate = 20;
  oee_type_limit lim[] = {{"held", 0, rate}};
  oee_engine *eng = make(4, lim, 1, NULL);
  assert_int_equal(oee_engine_start(eng), 0);
  enum { N = 50 };
  task_id ids[N];
  for (int i = 0; i < N; i++) add(eng, "held", "r", 5, "1", ids[i]);
  for (int i = 0; i < N; i++) wait_done(eng, ids[i]);
  assert_int_equal(n_starts, N);
  /* Starts in [start_i, start_j] <= burst + rate * span (one more for the
   * rounding of a token arriving at the window's edge). */
  for (int i = 0; i < N; i++) {
    for (int j = i; j < N; j++) {
      double span = (double)(start_ns[j] - start_ns[i]) / 1e9;
      double allowed = rate + rate * span + 1;
      if (j - i + 1 > allowed) {
        fail_msg("%d starts within %.3f s; the bucket allows %.1f", j - i + 1, span, allowed);
      }
    }
  }
  tu_engine_free(eng);
}

/* Bad limits are refused at create, saying which. */
static void test_bad_limits(void **state) {
  (void)state;
  struct {
    oee_type_limit lim[2];
    size_t n;
    const char *words;
  } rows[] = {
      {{{"held", -1, 0}}, 1, "type_limits[0]"},
      {{{"held", 0, NAN}}, 1, "type_limits[0]"},
      {{{"held", 0, -2}}, 1, "type_limits[0]"},
      {{{"", 1, 0}}, 1, "type_limits[0]"},
      {{{"held", 1, 0}, {"held", 2, 0}}, 2, "\"held\" is given twice"},
  };
  for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
    oee_engine_config cfg = {
        .num_workers = 1, .type_limits = rows[i].lim, .n_type_limits = rows[i].n};
    oee_engine *eng = NULL;
    oee_error err = {0};
    assert_int_equal(oee_engine_open(&cfg, &eng, &err), OEE_EINVAL);
    assert_null(eng);
    if (strstr(err.message, rows[i].words) == NULL) {
      fail_msg("row %zu: \"%s\" lacks \"%s\"", i, err.message, rows[i].words);
    }
  }
}

/* Tasks recovered QUEUED after a restart go back under their quota. */
static void test_quota_after_restart(void **state) {
  (void)state;
  char dir[256];
  assert_int_equal(tu_temp_dir(dir, sizeof(dir), "quota"), 0);
  oee_type_limit lim[] = {{"held", 1, 0}};
  oee_engine *eng = make(4, lim, 1, dir);
  task_id ids[5];
  for (int i = 0; i < 5; i++) add(eng, "held", "q", 5, "5", ids[i]);
  oee_engine_destroy(eng);
  eng = make(4, lim, 1, dir);
  assert_int_equal(oee_engine_start(eng), 0);
  for (int i = 0; i < 5; i++) wait_done(eng, ids[i]);
  assert_int_equal(most[0], 1);
  oee_engine_destroy(eng);
  assert_int_equal(tu_remove_dir(dir), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_max_running),
      cmocka_unit_test(test_max_per_second),
      cmocka_unit_test(test_bad_limits),
      cmocka_unit_test(test_quota_after_restart),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
