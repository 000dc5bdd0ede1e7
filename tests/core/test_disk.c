/* test_disk.c - a durable engine keeps finished tasks on disk: memory holds
 * the unfinished ones and a bounded cache, while GetTask, ListTasks, counts,
 * ClearCompletedTasks and the watch snapshot still see every stored task;
 * and a reader is shown a change only once it is stored. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "tests/core/testutil.h"

#include "core/internal.h"
#include "core/oee.h"

#define CACHE 8
#define TASKS 200

typedef struct fixture {
  char dir[256];
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof(*f));
  if (f == NULL || tu_temp_dir(f->dir, sizeof(f->dir), "test-disk") != 0) return -1;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  int rc = tu_remove_dir(f->dir);
  free(f);
  return rc;
}

static oee_engine *open_engine(fixture *f, int workers) {
  oee_engine_config cfg = {
      .num_workers = workers, .data_dir = f->dir, .sync_normal = 1, .finished_cache = CACHE};
  oee_engine *eng = NULL;
  oee_error err = {0};
  if (oee_engine_open(&cfg, &eng, &err) != 0) fail_msg("open: %s", err.message);
  return eng;
}

static void submit(oee_engine *eng, const char *type, const char *msg, char *id) {
  oee_kv ctx[] = {{"message", msg}};
  oee_submit req = {
      .name = msg, .task_type = type, .priority = 5, .context = ctx, .context_len = 1};
  const oee_task_info *t;
  oee_error err;
  if (oee_engine_submit(eng, &req, &t, &err) != 0) fail_msg("submit: %s", err.message);
  memcpy(id, t->id, OEE_ID_LEN + 1);
  oee_task_info_unref(t);
}

/* Waits for `n` events of status `st`, or of any status (UNSPECIFIED);
 * events come once their change is stored. */
static void await_status(oee_sub *sub, oee_task_status st, int n) {
  while (n > 0) {
    const oee_task_info *ev;
    int rc = oee_sub_wait(sub, &ev, 30000);
    if (rc != 0) fail_msg("no event: %s", oee_strerror(rc));
    if (st == OEE_TASK_UNSPECIFIED || ev->status == st) n--;
    oee_task_info_unref(ev);
  }
}

static uint64_t count_of(oee_engine *eng, oee_task_status st, uint64_t *total) {
  oee_status s;
  assert_int_equal(oee_engine_status(eng, &s), 0);
  uint64_t n = s.by_status[st];
  if (total) *total = s.total_tasks;
  oee_status_free(&s);
  return n;
}

/* Every task listed once, in submission order, 7 at a time. */
static void expect_listing(oee_engine *eng, size_t n) {
  oee_list_query q = {.limit = 7};
  size_t seen = 0;
  uint64_t last = 0;
  do {
    oee_list_page p;
    assert_int_equal(oee_engine_list(eng, &q, &p), 0);
    assert_int_equal(p.total, n);
    for (size_t i = 0; i < p.len; i++) {
      assert_true(p.tasks[i]->submit_index > last);
      last = p.tasks[i]->submit_index;
    }
    seen += p.len;
    q.after_index = p.next_index;
    oee_list_page_free(&p);
  } while (q.after_index != 0);
  assert_int_equal(seen, n);
}

static void test_finished_tasks_leave_memory(void **state) {
  fixture *f = *state;
  oee_engine *eng = open_engine(f, 2);
  oee_sub *sub;
  assert_int_equal(oee_engine_subscribe(eng, NULL, TASKS * 4, 0, &sub), 0);
  oee_engine_start(eng);
  static char ids[TASKS][OEE_ID_LEN + 1];
  for (int i = 0; i < TASKS; i++) {
    char msg[16];
    snprintf(msg, sizeof(msg), "m%d", i);
    submit(eng, "echo", msg, ids[i]);
  }
  await_status(sub, OEE_TASK_DONE, TASKS);
  oee_sub_free(sub);
  /* Memory holds the cache only; the rest is read from the database. */
  assert_true(oee__engine_held(eng) <= CACHE);
  const oee_task_info *t;
  assert_int_equal(oee_engine_get(eng, ids[0], &t), 0);
  assert_int_equal(t->status, OEE_TASK_DONE);
  assert_string_equal(t->result, "m0");
  assert_string_equal(oee_task_info_context(t, "message"), "m0");
  oee_task_info_unref(t);
  uint64_t total;
  assert_int_equal(count_of(eng, OEE_TASK_DONE, &total), TASKS);
  assert_int_equal(total, TASKS);
  expect_listing(eng, TASKS);
  /* A watcher naming a task that left memory still gets its snapshot. */
  const char *named[] = {ids[1]};
  oee_sub_filter only = {.task_ids = named, .n_task_ids = 1};
  assert_int_equal(oee_engine_subscribe(eng, &only, 0, 1, &sub), 0);
  const oee_task_info *ev;
  assert_int_equal(oee_sub_wait(sub, &ev, 1000), 0);
  assert_string_equal(ev->id, ids[1]);
  assert_int_equal(ev->status, OEE_TASK_DONE);
  oee_task_info_unref(ev);
  oee_sub_free(sub);
  /* Cancel of a finished task on disk: found, nothing to cancel. */
  int cancelled = 1;
  assert_int_equal(oee_engine_cancel(eng, ids[2], &cancelled, &t), 0);
  assert_int_equal(cancelled, 0);
  assert_int_equal(t->status, OEE_TASK_DONE);
  oee_task_info_unref(t);
  /* Clearing deletes rows, oldest completed first, cached or not. */
  assert_int_equal(oee_engine_clear_completed(eng, 10), TASKS - 10);
  assert_int_equal(oee_engine_get(eng, ids[0], &t), OEE_ENOENT);
  assert_int_equal(count_of(eng, OEE_TASK_DONE, NULL), 10);
  expect_listing(eng, 10);
  assert_true(oee__engine_held(eng) <= CACHE);
  oee_engine_destroy(eng);
  /* The counts and the rows are the database's: a restart sees the same. */
  eng = open_engine(f, 1);
  assert_int_equal(oee__engine_held(eng), 0); /* nothing finished is loaded */
  assert_int_equal(count_of(eng, OEE_TASK_DONE, NULL), 10);
  assert_int_equal(oee_engine_get(eng, ids[TASKS - 1], &t), 0);
  assert_int_equal(t->status, OEE_TASK_DONE);
  oee_task_info_unref(t);
  expect_listing(eng, 10);
  assert_int_equal(oee_engine_clear_completed(eng, 0), 10);
  assert_int_equal(count_of(eng, OEE_TASK_DONE, &total), 0);
  assert_int_equal(total, 0);
  oee_engine_destroy(eng);
}

/* An executor that finishes only when the test opens the gate. */
typedef struct gate {
  pthread_mutex_t lock;
  pthread_cond_t cv;
  int open, running;
} gate;

static void run_gate(oee_job *job, void *ud) {
  gate *g = ud;
  pthread_mutex_lock(&g->lock);
  g->running = 1;
  pthread_cond_broadcast(&g->cv);
  while (!g->open) pthread_cond_wait(&g->cv, &g->lock);
  pthread_mutex_unlock(&g->lock);
  oee_job_succeed(job, "passed");
}

typedef struct answer {
  pthread_mutex_t lock;
  pthread_cond_t cv;
  int calls, rc, cancelled;
  oee_task_status status;
} answer;

static void on_cancel(void *arg, int rc, int cancelled, const oee_task_info *t) {
  answer *a = arg;
  pthread_mutex_lock(&a->lock);
  a->calls++;
  a->rc = rc;
  a->cancelled = cancelled;
  a->status = t ? t->status : OEE_TASK_UNSPECIFIED;
  pthread_cond_broadcast(&a->cv);
  pthread_mutex_unlock(&a->lock);
}

static oee_task_status status_of(oee_engine *eng, const char *id) {
  const oee_task_info *t;
  assert_int_equal(oee_engine_get(eng, id, &t), 0);
  oee_task_status st = t->status;
  oee_task_info_unref(t);
  return st;
}

static void test_reads_see_only_stored_states(void **state) {
  fixture *f = *state;
  oee_engine *eng = open_engine(f, 1);
  gate g = {.open = 0};
  pthread_mutex_init(&g.lock, NULL);
  pthread_cond_init(&g.cv, NULL);
  assert_int_equal(oee_engine_register(eng, "gate", run_gate, &g), 0);
  oee_sub *sub;
  assert_int_equal(oee_engine_subscribe(eng, NULL, 64, 0, &sub), 0);
  oee_engine_start(eng);
  char running[OEE_ID_LEN + 1], queued[OEE_ID_LEN + 1];
  submit(eng, "gate", "g", running);
  submit(eng, "echo", "q", queued); /* waits behind the gate: one worker */
  pthread_mutex_lock(&g.lock);
  while (!g.running) pthread_cond_wait(&g.cv, &g.lock);
  pthread_mutex_unlock(&g.lock);
  await_status(sub, OEE_TASK_UNSPECIFIED, 3); /* QUEUED twice, RUNNING */

  oee__engine_pause_commits(eng, 1); /* from here nothing is stored */
  answer a = {.calls = 0};
  pthread_mutex_init(&a.lock, NULL);
  pthread_cond_init(&a.cv, NULL);
  assert_int_equal(oee_engine_cancel_async(eng, queued, on_cancel, &a), 0);
  pthread_mutex_lock(&g.lock);
  g.open = 1;
  pthread_cond_broadcast(&g.cv);
  pthread_mutex_unlock(&g.lock);
  /* The gate task's DONE is swapped in once its worker is idle again. */
  oee_status st;
  do {
    assert_int_equal(oee_engine_status(eng, &st), 0);
    int busy = st.workers[0].busy;
    oee_status_free(&st);
    if (!busy) break;
    usleep(1000);
  } while (1);
  /* The gate task finished and the queued one was cancelled, but neither
   * change is stored: readers still see RUNNING and QUEUED, the cancel is
   * not answered, no event is out. */
  for (int i = 0; i < 20; i++) {
    assert_int_equal(status_of(eng, running), OEE_TASK_RUNNING);
    assert_int_equal(status_of(eng, queued), OEE_TASK_QUEUED);
  }
  pthread_mutex_lock(&a.lock);
  assert_int_equal(a.calls, 0);
  pthread_mutex_unlock(&a.lock);
  const oee_task_info *ev;
  assert_int_equal(oee_sub_wait(sub, &ev, 50), OEE_ETIMEDOUT);
  /* A watcher that starts now sees the stored state in its snapshot and
   * still gets the change once it is stored (it starts after the last
   * event published, not after the last number given). */
  const char *named[] = {running};
  oee_sub_filter only = {.task_ids = named, .n_task_ids = 1};
  oee_sub *late;
  assert_int_equal(oee_engine_subscribe(eng, &only, 16, 1, &late), 0);
  assert_int_equal(oee_sub_wait(late, &ev, 1000), 0);
  assert_int_equal(ev->status, OEE_TASK_RUNNING);
  oee_task_info_unref(ev);

  oee__engine_pause_commits(eng, 0);
  assert_int_equal(oee_sub_wait(late, &ev, 30000), 0);
  assert_int_equal(ev->status, OEE_TASK_DONE);
  oee_task_info_unref(ev);
  oee_sub_free(late);
  pthread_mutex_lock(&a.lock);
  while (a.calls == 0) pthread_cond_wait(&a.cv, &a.lock);
  pthread_mutex_unlock(&a.lock);
  assert_int_equal(a.rc, 0);
  assert_int_equal(a.cancelled, 1);
  assert_int_equal(a.status, OEE_TASK_CANCELLED);
  await_status(sub, OEE_TASK_DONE, 1);
  assert_int_equal(status_of(eng, running), OEE_TASK_DONE);
  assert_int_equal(status_of(eng, queued), OEE_TASK_CANCELLED);
  oee_sub_free(sub);
  oee_engine_destroy(eng);
  pthread_cond_destroy(&a.cv);
  pthread_mutex_destroy(&a.lock);
  pthread_cond_destroy(&g.cv);
  pthread_mutex_destroy(&g.lock);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_finished_tasks_leave_memory, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reads_see_only_stored_states, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
