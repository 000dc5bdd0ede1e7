/* test_durable.c - an engine with a data_dir: tasks survive the engine and a
 * killed process, queued tasks come back in priority and FIFO order, a task
 * that was running ends "interrupted", event numbers go on increasing, and
 * an unusable data_dir is refused with its reason. */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "tests/core/testutil.h"

#include "core/oee.h"
#include "core/oee_pipeline.h"

typedef struct fixture {
  char dir[256];
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof(*f));
  if (f == NULL || tu_temp_dir(f->dir, sizeof(f->dir), "test-durable") != 0) return -1;
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
  oee_engine_config cfg = {.num_workers = workers, .data_dir = f->dir, .sync_normal = 1};
  oee_engine *eng = NULL;
  oee_error err = {0};
  if (oee_engine_open(&cfg, &eng, &err) != 0) fail_msg("open: %s", err.message);
  assert_true(oee_engine_durable(eng));
  return eng;
}

static void submit(oee_engine *eng, const char *type, int prio, const char *name, char *id) {
  oee_submit req = {.name = name, .task_type = type, .priority = prio};
  const oee_task_info *t;
  oee_error err;
  if (oee_engine_submit(eng, &req, &t, &err) != 0) fail_msg("submit: %s", err.message);
  assert_int_equal(t->status, OEE_TASK_QUEUED);
  if (id) memcpy(id, t->id, OEE_ID_LEN + 1);
  oee_task_info_unref(t);
}

/* An executor that records the names it ran, in order. */
typedef struct record {
  pthread_mutex_t lock;
  char names[16][16];
  int n;
} record;

static void run_record(oee_job *job, void *ud) {
  record *r = ud;
  pthread_mutex_lock(&r->lock);
  if (r->n < 16) snprintf(r->names[r->n++], 16, "%s", oee_job_task(job)->name);
  pthread_mutex_unlock(&r->lock);
  oee_job_succeed(job, "ok");
}

/* Waits for `n` DONE events on `sub`; returns the largest seq seen. */
static uint64_t await_done(oee_sub *sub, int n) {
  uint64_t max_seq = 0;
  while (n > 0) {
    const oee_task_info *ev;
    int rc = oee_sub_wait(sub, &ev, 30000);
    if (rc != 0) fail_msg("no event: %s", oee_strerror(rc));
    if (ev->seq > max_seq) max_seq = ev->seq;
    if (ev->status == OEE_TASK_DONE) n--;
    oee_task_info_unref(ev);
  }
  return max_seq;
}

static void test_queue_survives_restart_in_order(void **state) {
  fixture *f = *state;
  record r = {.n = 0};
  pthread_mutex_init(&r.lock, NULL);
  oee_engine *eng = open_engine(f, 1); /* not started: everything stays queued */
  assert_int_equal(oee_engine_register(eng, "rec", run_record, &r), 0);
  submit(eng, "rec", 0, "low", NULL);
  submit(eng, "rec", 9, "high-1", NULL);
  submit(eng, "rec", 5, "mid", NULL);
  submit(eng, "rec", 9, "high-2", NULL);
  oee_status st;
  assert_int_equal(oee_engine_status(eng, &st), 0);
  assert_int_equal(st.queue_size, 4);
  oee_status_free(&st);
  oee_engine_destroy(eng);

  eng = open_engine(f, 1);
  oee_recovery rec;
  oee_engine_recovery(eng, &rec);
  assert_int_equal(rec.queued, 4);
  assert_int_equal(rec.interrupted, 0);
  assert_int_equal(oee_engine_register(eng, "rec", run_record, &r), 0);
  oee_sub *sub;
  assert_int_equal(oee_engine_subscribe(eng, NULL, 0, 0, &sub), 0);
  assert_int_equal(oee_engine_start(eng), 0);
  uint64_t seq_after = await_done(sub, 4);
  const char *want[] = {"high-1", "high-2", "mid", "low"};
  for (int i = 0; i < 4; i++) assert_string_equal(r.names[i], want[i]);
  oee_sub_free(sub);
  oee_engine_destroy(eng);

  /* The numbers go on from the last stored change, never back. */
  eng = open_engine(f, 1);
  assert_int_equal(oee_engine_register(eng, "rec", run_record, &r), 0);
  assert_int_equal(oee_engine_subscribe(eng, NULL, 0, 0, &sub), 0);
  assert_int_equal(oee_engine_start(eng), 0);
  submit(eng, "rec", 5, "later", NULL);
  assert_true(await_done(sub, 1) > seq_after);
  oee_list_query q = {.status = OEE_TASK_DONE, .limit = 10};
  oee_list_page page;
  assert_int_equal(oee_engine_list(eng, &q, &page), 0);
  assert_int_equal(page.total, 5); /* finished ones came back too */
  oee_list_page_free(&page);
  oee_sub_free(sub);
  oee_engine_destroy(eng);
  pthread_mutex_destroy(&r.lock);
}

/* Blocks until cancelled: the task stays RUNNING. */
static void run_block(oee_job *job, void *ud) {
  (void)ud;
  oee_token_wait(oee_job_token(job), -1);
  oee_job_cancelled(job, "cancelled");
}

/* The child: acknowledged ids go to `fd`, then the process dies at once. */
static void child_then_die(fixture *f, int fd) {
  oee_engine *eng = open_engine(f, 1);
  oee_engine_register(eng, "block", run_block, NULL);
  oee_engine_register(eng, "rec", run_record, NULL);
  oee_sub *sub;
  oee_sub_filter only_running = {.statuses = (oee_task_status[]){OEE_TASK_RUNNING},
                                 .n_statuses = 1};
  oee_engine_subscribe(eng, &only_running, 0, 0, &sub);
  oee_engine_start(eng);
  char id[OEE_ID_LEN + 1];
  submit(eng, "block", 10, "blocker", id);
  if (write(fd, id, OEE_ID_LEN) != OEE_ID_LEN) _exit(3);
  const oee_task_info *ev; /* RUNNING events are published once stored */
  if (oee_sub_wait(sub, &ev, 30000) != 0) _exit(4);
  for (int i = 0; i < 3; i++) {
    char name[16];
    snprintf(name, sizeof(name), "q%d", i);
    submit(eng, "rec", 5, name, id);
    if (write(fd, id, OEE_ID_LEN) != OEE_ID_LEN) _exit(3);
  }
  _exit(0); /* like kill -9: no stop, no destroy, nothing flushed */
}

static void test_killed_process_loses_nothing_acknowledged(void **state) {
  fixture *f = *state;
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    child_then_die(f, fds[1]);
  }
  close(fds[1]);
  char ids[4][OEE_ID_LEN + 1];
  for (int i = 0; i < 4; i++) {
    assert_int_equal(read(fds[0], ids[i], OEE_ID_LEN), OEE_ID_LEN);
    ids[i][OEE_ID_LEN] = '\0';
  }
  close(fds[0]);
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

  oee_engine *eng = open_engine(f, 1);
  oee_recovery rec;
  oee_engine_recovery(eng, &rec);
  assert_int_equal(rec.interrupted, 1);
  assert_int_equal(rec.queued, 3);
  const oee_task_info *t;
  assert_int_equal(oee_engine_get(eng, ids[0], &t), 0);
  assert_int_equal(t->status, OEE_TASK_ERROR);
  assert_string_equal(t->error_message, "interrupted: server restarted");
  assert_true(t->completed_at_ns > 0);
  oee_task_info_unref(t);
  for (int i = 1; i < 4; i++) {
    assert_int_equal(oee_engine_get(eng, ids[i], &t), 0);
    assert_int_equal(t->status, OEE_TASK_QUEUED);
    oee_task_info_unref(t);
  }
  oee_engine_destroy(eng);
  /* The interruption itself was stored: a second restart keeps it. */
  eng = open_engine(f, 1);
  oee_engine_recovery(eng, &rec);
  assert_int_equal(rec.interrupted, 0);
  assert_int_equal(oee_engine_get(eng, ids[0], &t), 0);
  assert_int_equal(t->status, OEE_TASK_ERROR);
  oee_task_info_unref(t);
  oee_engine_destroy(eng);
}

static void test_unusable_data_dir_refused(void **state) {
  fixture *f = *state;
  oee_engine *first = open_engine(f, 1);
  oee_engine_config cfg = {.data_dir = f->dir};
  oee_engine *eng = NULL;
  oee_error err;
  assert_int_equal(oee_engine_open(&cfg, &eng, &err), OEE_EEXISTS);
  assert_null(eng);
  assert_non_null(strstr(err.message, "in use by another running server"));
  oee_engine_destroy(first);
  char file[300];
  snprintf(file, sizeof(file), "%s/plain-file", f->dir);
  FILE *fp = fopen(file, "w");
  fclose(fp);
  cfg.data_dir = file;
  assert_int_equal(oee_engine_open(&cfg, &eng, &err), OEE_EIO);
  assert_non_null(strstr(err.message, "is not a directory"));
}

/* Records the acknowledgement and the thread it arrived on. */
typedef struct ack {
  pthread_mutex_t lock;
  pthread_cond_t cv;
  int calls, rc;
  pthread_t thread;
  char id[OEE_ID_LEN + 1];
} ack;

static void on_ack(void *arg, int rc, const oee_task_info *t, const oee_error *err) {
  (void)err;
  ack *a = arg;
  pthread_mutex_lock(&a->lock);
  a->calls++;
  a->rc = rc;
  a->thread = pthread_self();
  if (t) memcpy(a->id, t->id, sizeof(a->id));
  pthread_cond_signal(&a->cv);
  pthread_mutex_unlock(&a->lock);
}

static void test_async_acknowledgement(void **state) {
  fixture *f = *state;
  oee_submit req = {.name = "a", .task_type = "echo", .priority = 5};
  /* Memory store: acknowledged before the call returns, on this thread. */
  oee_engine *mem;
  assert_int_equal(oee_engine_create(NULL, &mem), 0);
  ack a = {.calls = 0};
  pthread_mutex_init(&a.lock, NULL);
  pthread_cond_init(&a.cv, NULL);
  assert_int_equal(oee_engine_submit_async(mem, &req, on_ack, &a, NULL), 0);
  assert_int_equal(a.calls, 1);
  assert_true(pthread_equal(a.thread, pthread_self()));
  oee_engine_destroy(mem);
  /* Durable: once, later, from the commit thread; a refusal never calls. */
  oee_engine *eng = open_engine(f, 1);
  a.calls = 0;
  assert_int_equal(oee_engine_submit_async(eng, &req, on_ack, &a, NULL), 0);
  pthread_mutex_lock(&a.lock);
  while (a.calls == 0) pthread_cond_wait(&a.cv, &a.lock);
  pthread_mutex_unlock(&a.lock);
  assert_int_equal(a.rc, 0);
  assert_false(pthread_equal(a.thread, pthread_self()));
  const oee_task_info *t;
  assert_int_equal(oee_engine_get(eng, a.id, &t), 0);
  oee_task_info_unref(t);
  oee_submit bad = {.name = "", .task_type = "echo", .priority = 5};
  oee_error err;
  assert_int_equal(oee_engine_submit_async(eng, &bad, on_ack, &a, &err), OEE_EINVAL);
  oee_engine_destroy(eng); /* flushes: a late callback would be counted */
  assert_int_equal(a.calls, 1);
  pthread_cond_destroy(&a.cv);
  pthread_mutex_destroy(&a.lock);
}

/* The database the first schema made (tests/core/data/oee-v1.db: written by
 * the server of that version and killed with a task running) opens, is
 * migrated, and recovers as the rules say. */
static void test_first_schema_fixture_opens(void **state) {
  fixture *f = *state;
  char path[300];
  snprintf(path, sizeof(path), "%s/oee.db", f->dir);
  assert_int_equal(tu_copy_file("tests/core/data/oee-v1.db", path), 0);
  oee_engine *eng = open_engine(f, 1);
  oee_recovery rec;
  oee_engine_recovery(eng, &rec);
  assert_int_equal(rec.queued, 2);      /* queued-a (priority 3), queued-b (9) */
  assert_int_equal(rec.interrupted, 1); /* block: was RUNNING */
  assert_int_equal(rec.finished, 3);    /* done-echo, failed, cancelled */
  oee_list_query q = {.limit = 10};
  oee_list_page p;
  assert_int_equal(oee_engine_list(eng, &q, &p), 0);
  assert_int_equal(p.total, 6);
  assert_int_equal(p.len, 6);
  const char *names[] = {"done-echo", "failed", "block", "queued-a", "queued-b", "cancelled"};
  const oee_task_status st[] = {OEE_TASK_DONE,   OEE_TASK_ERROR,  OEE_TASK_ERROR,
                                OEE_TASK_QUEUED, OEE_TASK_QUEUED, OEE_TASK_CANCELLED};
  for (int i = 0; i < 6; i++) {
    assert_string_equal(p.tasks[i]->name, names[i]);
    assert_int_equal(p.tasks[i]->status, st[i]);
  }
  assert_string_equal(p.tasks[0]->result, "hello");
  assert_string_equal(oee_task_info_context(p.tasks[0], "k"), "v");
  assert_string_equal(p.tasks[2]->error_message, "interrupted: server restarted");
  assert_true(p.tasks[5]->seq == 12); /* the last event stored by that server */
  oee_list_page_free(&p);
  /* The queued ones run, higher priority first, numbered after seq 12. */
  oee_sub *sub;
  assert_int_equal(oee_engine_subscribe(eng, NULL, 64, 0, &sub), 0);
  oee_engine_start(eng);
  const oee_task_info *ev;
  int done = 0;
  char first[32] = "";
  while (done < 2) {
    assert_int_equal(oee_sub_wait(sub, &ev, 30000), 0);
    assert_true(ev->seq > 12);
    if (ev->status == OEE_TASK_DONE && done++ == 0) snprintf(first, sizeof(first), "%s", ev->name);
    oee_task_info_unref(ev);
  }
  assert_string_equal(first, "queued-b");
  oee_sub_free(sub);
  oee_engine_destroy(eng);
}

/* A pipeline is stored with its stages: queued before a restart, it runs
 * after it; finished and out of memory, its result is read from disk. */
static void test_pipelines_survive_restart(void **state) {
  fixture *f = *state;
  oee_engine *eng = open_engine(f, 1); /* never started: the pipeline stays queued */
  oee_stage_spec stages[] = {{.name = "first", .model_id = "echo"},
                             {.name = "second", .model_id = "echo", .has_cost = 1, .cost = 0.25}};
  oee_pipeline_spec spec = {.pipeline_id = "pl-1",
                            .stages = stages,
                            .n_stages = 2,
                            .strategy = OEE_STRATEGY_SEQUENTIAL_VALIDATION,
                            .priority = 5,
                            .input = "stored input"};
  const oee_task_info *t;
  oee_error err;
  if (oee_engine_submit_pipeline(eng, &spec, &t, &err) != 0) fail_msg("%s", err.message);
  char id[OEE_ID_LEN + 1];
  memcpy(id, t->id, sizeof(id));
  oee_task_info_unref(t);
  oee_engine_destroy(eng);

  eng = open_engine(f, 1);
  oee_recovery rec;
  oee_engine_recovery(eng, &rec);
  assert_int_equal(rec.queued, 1);
  assert_int_equal(rec.interrupted, 0);
  oee_engine_start(eng);
  t = tu_wait_terminal(eng, id, 30);
  assert_non_null(t);
  assert_int_equal(t->status, OEE_TASK_DONE);
  oee_task_info_unref(t);
  oee_engine_destroy(eng);

  /* A restart drops it from memory: the result comes from its row. */
  eng = open_engine(f, 1);
  oee_pipeline_result *res;
  assert_int_equal(oee_engine_pipeline_result(eng, id, &res), 0);
  assert_int_equal(res->status, OEE_TASK_DONE);
  assert_string_equal(res->pipeline_id, "pl-1");
  assert_int_equal(res->strategy, OEE_STRATEGY_SEQUENTIAL_VALIDATION);
  assert_int_equal(res->n_stages, 2);
  assert_string_equal(res->stages[0].name, "first");
  assert_int_equal(res->stages[0].status, OEE_STAGE_DONE);
  assert_string_equal(res->stages[0].output, "stored input");
  assert_int_equal(res->stages[1].status, OEE_STAGE_DONE);
  assert_true(res->stages[1].cost == 0.25);
  assert_string_equal(res->output, "stored input");
  assert_true(res->elapsed_seconds >= 0);
  oee_pipeline_result_free(res);
  assert_int_equal(oee_engine_pipeline_result(eng, "0190a1b2-c3d4-7e5f-8a9b-000000000001", &res),
                   OEE_ENOENT);
  oee_engine_destroy(eng);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_queue_survives_restart_in_order, setup, teardown),
      cmocka_unit_test_setup_teardown(test_killed_process_loses_nothing_acknowledged, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_unusable_data_dir_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_async_acknowledgement, setup, teardown),
      cmocka_unit_test_setup_teardown(test_first_schema_fixture_opens, setup, teardown),
      cmocka_unit_test_setup_teardown(test_pipelines_survive_restart, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
