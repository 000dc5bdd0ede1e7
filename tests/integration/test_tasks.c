/*
 * test_tasks.c - task RPCs end to end against the real server: submit, get,
 * list, cancel, status, clear, batches, priorities, timestamps, exec, and
 * the task-semantics fields coming back as given (attempts, backoff,
 * timeout, idempotency key, resolved "#<index>" references).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/integration/fixture.h"

#define ST(x) OEE__V1__TASK_STATUS__TASK_STATUS_##x
#define KV(...) ((const char *const[]){__VA_ARGS__, NULL})
#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

static it_server srv;

static void start(const char *config, const char *const *args) {
  assert_int_equal(it_server_start(&srv, config, args, NULL, 30000), 0);
}

static int teardown(void **state) { return it_server_teardown(&srv); }

static int is_uuid_v7(const char *s) {
  if (strlen(s) != 36) return 0;
  for (int i = 0; i < 36; i++) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-') return 0;
    } else if (!strchr("0123456789abcdef", s[i])) {
      return 0;
    }
  }
  return s[14] == '7' && strchr("89ab", s[19]) != NULL;
}

static Oee__V1__SystemStatus *system_status(void) {
  Oee__V1__GetSystemStatusRequest req = OEE__V1__GET_SYSTEM_STATUS_REQUEST__INIT;
  Oee__V1__SystemStatus *st = NULL;
  assert_int_equal(
      oee_v1_orchestrator_service_get_system_status(srv.ch, &req, &st, IT_CALL_MS, NULL), 0);
  return st;
}

/* SubmitTasks with n entries of type/message; returns the response. */
static Oee__V1__SubmitTasksResponse *submit_many(int n, const char *type, int *code) {
  Oee__V1__SubmitTaskRequest *reqs = calloc((size_t)n, sizeof(*reqs));
  Oee__V1__SubmitTaskRequest **ptrs = calloc((size_t)n, sizeof(*ptrs));
  Oee__V1__SubmitTaskRequest__ContextEntry ent = OEE__V1__SUBMIT_TASK_REQUEST__CONTEXT_ENTRY__INIT;
  Oee__V1__SubmitTaskRequest__ContextEntry *ents[1] = {&ent};
  ent.key = (char *)"message";
  ent.value = (char *)"m";
  for (int i = 0; i < n; i++) {
    oee__v1__submit_task_request__init(&reqs[i]);
    reqs[i].name = (char *)"many";
    reqs[i].task_type = (char *)type;
    reqs[i].n_context = 1;
    reqs[i].context = ents;
    ptrs[i] = &reqs[i];
  }
  Oee__V1__SubmitTasksRequest req = OEE__V1__SUBMIT_TASKS_REQUEST__INIT;
  req.n_requests = (size_t)n;
  req.requests = ptrs;
  Oee__V1__SubmitTasksResponse *resp = NULL;
  *code = oee_v1_orchestrator_service_submit_tasks(srv.ch, &req, &resp, 30000, NULL);
  free(reqs);
  free(ptrs);
  return resp;
}

static Oee__V1__ListTasksResponse *list(Oee__V1__TaskStatus status, const char *type, int size,
                                        const char *token, int *code) {
  Oee__V1__ListTasksRequest req = OEE__V1__LIST_TASKS_REQUEST__INIT;
  req.status_filter = status;
  req.task_type_filter = (char *)(type ? type : "");
  req.page_size = size;
  req.page_token = (char *)(token ? token : "");
  Oee__V1__ListTasksResponse *resp = NULL;
  *code = oee_v1_orchestrator_service_list_tasks(srv.ch, &req, &resp, IT_CALL_MS, NULL);
  return resp;
}

static int list_total(Oee__V1__TaskStatus status, const char *type) {
  int code;
  Oee__V1__ListTasksResponse *r = list(status, type, 1, NULL, &code);
  assert_int_equal(code, 0);
  int n = r->total_size;
  oee__v1__list_tasks_response__free_unpacked(r, NULL);
  return n;
}

static void wait_all_final(char **ids, int n) {
  for (int i = 0; i < n; i++) {
    Oee__V1__Task *t = it_wait_final(srv.ch, ids[i], IT_WAIT_MS);
    assert_non_null(t);
    oee__v1__task__free_unpacked(t, NULL);
  }
}

static void free_ids(char **ids, int n) {
  for (int i = 0; i < n; i++) free(ids[i]);
}

/* ----------------------------------------------------------------- tests */

static void test_submit_get_echo(void **state) {
  start("tasks.json", NULL);
  Oee__V1__SubmitTaskRequest req = OEE__V1__SUBMIT_TASK_REQUEST__INIT;
  Oee__V1__SubmitTaskRequest__ContextEntry e = OEE__V1__SUBMIT_TASK_REQUEST__CONTEXT_ENTRY__INIT;
  Oee__V1__SubmitTaskRequest__ContextEntry *ep[1] = {&e};
  e.key = (char *)"message";
  e.value = (char *)"hello, world";
  req.name = (char *)"greet";
  req.task_type = (char *)"echo";
  req.n_context = 1;
  req.context = ep;
  Oee__V1__SubmitTaskResponse *resp = NULL;
  assert_int_equal(oee_v1_orchestrator_service_submit_task(srv.ch, &req, &resp, IT_CALL_MS, NULL),
                   0);
  assert_true(is_uuid_v7(resp->task_id));
  assert_non_null(resp->task);
  assert_string_equal(resp->task->id, resp->task_id);
  assert_string_equal(resp->task->name, "greet");
  assert_string_equal(resp->task->task_type, "echo");
  assert_int_equal(resp->task->priority, 5); /* unset means 5 */
  assert_non_null(resp->task->created_at);
  assert_string_equal(it_ctx(resp->task, "message"), "hello, world");
  /* A snapshot at acknowledgement: normally QUEUED; never started before. */
  if (resp->task->status == ST(QUEUED)) {
    assert_null(resp->task->started_at);
    assert_int_equal(resp->task->worker_id, -1);
  }
  Oee__V1__Task *t = it_wait_status(srv.ch, resp->task_id, ST(DONE), IT_WAIT_MS);
  assert_non_null(t);
  assert_string_equal(t->result, "hello, world");
  assert_string_equal(t->error_message, "");
  assert_non_null(t->created_at);
  assert_non_null(t->started_at);
  assert_non_null(t->completed_at);
  assert_true(it_ts(t->created_at) <= it_ts(t->started_at));
  assert_true(it_ts(t->started_at) <= it_ts(t->completed_at));
  assert_true(t->worker_id >= 0 && t->worker_id < 2);
  assert_string_equal(it_ctx(t, "message"), "hello, world");
  oee__v1__task__free_unpacked(t, NULL);
  oee__v1__submit_task_response__free_unpacked(resp, NULL);

  /* echo without a message: the result is empty. */
  char *id = it_submit_ok(srv.ch, "quiet", "echo", -1, NULL);
  assert_non_null(id);
  t = it_wait_status(srv.ch, id, ST(DONE), IT_WAIT_MS);
  assert_non_null(t);
  assert_string_equal(t->result, "");
  oee__v1__task__free_unpacked(t, NULL);
  free(id);
}

/* priority: unset means 5, an explicit 0 is honoured, 10 is accepted. */
static void test_priority_presence(void **state) {
  start("tasks.json", NULL);
  struct {
    int sent, want;
  } cases[] = {{-1, 5}, {0, 0}, {10, 10}, {5, 5}, {1, 1}};
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char *id = it_submit_ok(srv.ch, "p", "echo", cases[i].sent, NULL);
    assert_non_null(id);
    Oee__V1__Task *t = it_get(srv.ch, id, NULL);
    assert_non_null(t);
    assert_int_equal(t->priority, cases[i].want);
    oee__v1__task__free_unpacked(t, NULL);
    free(id);
  }
}

static void test_fail_task(void **state) {
  start("tasks.json", NULL);
  char *id = it_submit_ok(srv.ch, "f", "fail", -1, KV("message", "it broke"));
  assert_non_null(id);
  Oee__V1__Task *t = it_wait_status(srv.ch, id, ST(ERROR), IT_WAIT_MS);
  assert_non_null(t);
  assert_string_equal(t->error_message, "it broke");
  assert_non_null(t->started_at);
  assert_non_null(t->completed_at);
  oee__v1__task__free_unpacked(t, NULL);
  free(id);
}

static void test_cancel_running_and_finished(void **state) {
  start("tasks.json", NULL);
  char *id = it_submit_ok(srv.ch, "s", "sleep", -1, KV("seconds", "30"));
  assert_non_null(id);
  Oee__V1__Task *t = it_wait_status(srv.ch, id, ST(RUNNING), IT_WAIT_MS);
  assert_non_null(t);
  assert_true(t->worker_id >= 0 && t->worker_id < 2);
  assert_non_null(t->started_at);
  assert_null(t->completed_at);
  oee__v1__task__free_unpacked(t, NULL);
  int64_t t0 = it_now_ms();
  int cancelled = 0;
  assert_int_equal(it_cancel(srv.ch, id, &cancelled), 0);
  assert_true(cancelled);
  t = it_wait_status(srv.ch, id, ST(CANCELLED), 10000);
  assert_non_null(t);
  assert_true(it_now_ms() - t0 < 10000); /* honoured promptly, not after 30 s */
  assert_non_null(t->started_at);
  assert_non_null(t->completed_at);
  oee__v1__task__free_unpacked(t, NULL);
  /* Cancelling a finished task: cancelled false, task unchanged. */
  assert_int_equal(it_cancel(srv.ch, id, &cancelled), 0);
  assert_false(cancelled);
  t = it_get(srv.ch, id, NULL);
  assert_int_equal(t->status, ST(CANCELLED));
  oee__v1__task__free_unpacked(t, NULL);
  free(id);

  char *done = it_submit_ok(srv.ch, "e", "echo", -1, KV("message", "x"));
  t = it_wait_status(srv.ch, done, ST(DONE), IT_WAIT_MS);
  assert_non_null(t);
  oee__v1__task__free_unpacked(t, NULL);
  Oee__V1__CancelTaskRequest creq = OEE__V1__CANCEL_TASK_REQUEST__INIT;
  creq.task_id = done;
  Oee__V1__CancelTaskResponse *cresp = NULL;
  assert_int_equal(oee_v1_orchestrator_service_cancel_task(srv.ch, &creq, &cresp, IT_CALL_MS, NULL),
                   0);
  assert_false(cresp->cancelled);
  assert_non_null(cresp->task);
  assert_int_equal(cresp->task->status, ST(DONE));
  assert_string_equal(cresp->task->result, "x");
  oee__v1__cancel_task_response__free_unpacked(cresp, NULL);
  free(done);
}

/* A task cancelled while QUEUED has completed_at and no started_at. */
static void test_cancel_queued_timestamps(void **state) {
  start("tasks.json", ARGS("--workers", "1"));
  char *blocker = it_submit_ok(srv.ch, "b", "sleep", -1, KV("seconds", "30"));
  Oee__V1__Task *t = it_wait_status(srv.ch, blocker, ST(RUNNING), IT_WAIT_MS);
  assert_non_null(t);
  oee__v1__task__free_unpacked(t, NULL);
  char *id = it_submit_ok(srv.ch, "q", "echo", -1, KV("message", "never"));
  t = it_get(srv.ch, id, NULL);
  assert_int_equal(t->status, ST(QUEUED));
  assert_int_equal(t->worker_id, -1);
  oee__v1__task__free_unpacked(t, NULL);
  assert_int_equal(it_count(srv.ch, "queued"), 1);
  int cancelled = 0;
  Oee__V1__CancelTaskRequest creq = OEE__V1__CANCEL_TASK_REQUEST__INIT;
  creq.task_id = id;
  Oee__V1__CancelTaskResponse *cresp = NULL;
  assert_int_equal(oee_v1_orchestrator_service_cancel_task(srv.ch, &creq, &cresp, IT_CALL_MS, NULL),
                   0);
  assert_true(cresp->cancelled);
  assert_int_equal(cresp->task->status, ST(CANCELLED));
  oee__v1__cancel_task_response__free_unpacked(cresp, NULL);
  t = it_get(srv.ch, id, NULL);
  assert_int_equal(t->status, ST(CANCELLED));
  assert_non_null(t->completed_at);
  assert_null(t->started_at);
  assert_int_equal(t->worker_id, -1);
  assert_true(it_ts(t->created_at) <= it_ts(t->completed_at));
  oee__v1__task__free_unpacked(t, NULL);
  assert_int_equal(it_count(srv.ch, "queued"), 0);
  assert_int_equal(it_count(srv.ch, "cancelled"), 1);
  assert_int_equal(it_cancel(srv.ch, blocker, &cancelled), 0);
  assert_true(cancelled);
  t = it_wait_status(srv.ch, blocker, ST(CANCELLED), IT_WAIT_MS);
  assert_non_null(t);
  oee__v1__task__free_unpacked(t, NULL);
  free(id);
  free(blocker);
}

/* With one worker busy, queued tasks start by priority, then FIFO. */
static void test_priority_order(void **state) {
  start("tasks.json", ARGS("--workers", "1"));
  Oee__V1__SystemStatus *ss = system_status();
  assert_int_equal(ss->num_workers, 1); /* the flag wins over the file's 2 */
  oee__v1__system_status__free_unpacked(ss, NULL);

  Oee__V1__WatchTasksRequest wreq = OEE__V1__WATCH_TASKS_REQUEST__INIT;
  it_watch *w = it_watch_open(srv.ch, &wreq);
  assert_non_null(w);
  assert_int_equal(it_watch_sync(w, srv.ch, "echo", IT_WAIT_MS), 0);
  char *blocker = it_submit_ok(srv.ch, "b", "sleep", -1, KV("seconds", "30"));
  Oee__V1__Task *t = it_wait_status(srv.ch, blocker, ST(RUNNING), IT_WAIT_MS);
  assert_non_null(t);
  oee__v1__task__free_unpacked(t, NULL);
  /* name, priority (-1 unset), expected start rank */
  struct {
    const char *name;
    int prio;
    int rank;
  } mix[] = {
      {"p3", 3, 5}, {"p7a", 7, 1},  {"unset", -1, 3}, {"p7b", 7, 2},
      {"p0", 0, 6}, {"p10", 10, 0}, {"p5", 5, 4},
  };
  enum { N = sizeof(mix) / sizeof(mix[0]) };
  char *ids[N];
  for (int i = 0; i < N; i++) {
    ids[i] = it_submit_ok(srv.ch, mix[i].name, "echo", mix[i].prio, KV("message", mix[i].name));
    assert_non_null(ids[i]);
  }
  int cancelled = 0;
  assert_int_equal(it_cancel(srv.ch, blocker, &cancelled), 0);
  assert_true(cancelled);
  wait_all_final(ids, N);

  /* Start order from the RUNNING events of the watch. */
  int order[N], seen = 0;
  while (seen < N) {
    Oee__V1__TaskEvent *ev = NULL;
    int rc = it_watch_next(w, &ev, NULL, IT_WAIT_MS);
    assert_int_equal(rc, 1);
    if (ev->task->status == ST(RUNNING)) {
      for (int i = 0; i < N; i++) {
        if (strcmp(ev->task->id, ids[i]) == 0) order[seen++] = i;
      }
    }
    oee__v1__task_event__free_unpacked(ev, NULL);
  }
  it_watch_close(w);
  for (int k = 0; k < N; k++) {
    if (mix[order[k]].rank != k) {
      fprintf(stderr, "start #%d was %s (want rank %d)\n", k, mix[order[k]].name,
              mix[order[k]].rank);
    }
    assert_int_equal(mix[order[k]].rank, k);
  }
  /* started_at agrees with the event order. */
  double prev = 0;
  for (int k = 0; k < N; k++) {
    t = it_get(srv.ch, ids[order[k]], NULL);
    assert_int_equal(t->status, ST(DONE));
    assert_int_equal(t->worker_id, 0);
    assert_true(it_ts(t->started_at) >= prev);
    prev = it_ts(t->started_at);
    oee__v1__task__free_unpacked(t, NULL);
  }
  free_ids(ids, N);
  free(blocker);
}

static void test_workers_and_counts(void **state) {
  start("tasks.json", NULL);
  char *ids[8];
  for (int i = 0; i < 4; i++) ids[i] = it_submit_ok(srv.ch, "ok", "echo", -1, KV("message", "y"));
  for (int i = 4; i < 7; i++) ids[i] = it_submit_ok(srv.ch, "bad", "fail", -1, KV("message", "n"));
  ids[7] = it_submit_ok(srv.ch, "zz", "sleep", -1, KV("seconds", "30"));
  for (int i = 0; i < 8; i++) assert_non_null(ids[i]);
  Oee__V1__Task *t = it_wait_status(srv.ch, ids[7], ST(RUNNING), IT_WAIT_MS);
  assert_non_null(t);
  oee__v1__task__free_unpacked(t, NULL);
  wait_all_final(ids, 7);
  /* While the sleep runs, its worker reports it. */
  Oee__V1__SystemStatus *ss = system_status();
  assert_true(ss->running);
  assert_int_equal(ss->num_workers, 2);
  assert_int_equal(ss->n_workers, 2);
  int busy = 0;
  for (size_t i = 0; i < ss->n_workers; i++) {
    assert_int_equal(ss->workers[i]->worker_id, (int)i);
    if (ss->workers[i]->busy) {
      busy++;
      assert_string_equal(ss->workers[i]->current_task_id, ids[7]);
    } else {
      assert_string_equal(ss->workers[i]->current_task_id, "");
    }
  }
  assert_int_equal(busy, 1);
  assert_true(strlen(ss->version) > 0);
  assert_true(ss->uptime_seconds >= 0);
  oee__v1__system_status__free_unpacked(ss, NULL);

  int cancelled = 0;
  assert_int_equal(it_cancel(srv.ch, ids[7], &cancelled), 0);
  t = it_wait_status(srv.ch, ids[7], ST(CANCELLED), IT_WAIT_MS);
  assert_non_null(t);
  oee__v1__task__free_unpacked(t, NULL);
  assert_int_equal(it_wait_busy(srv.ch, 0, IT_WAIT_MS), 0);

  ss = system_status();
  int completed = 0, failed = 0;
  for (size_t i = 0; i < ss->n_workers; i++) {
    completed += ss->workers[i]->tasks_completed;
    failed += ss->workers[i]->tasks_failed;
    assert_false(ss->workers[i]->busy);
  }
  assert_int_equal(completed, 4); /* DONE only */
  assert_int_equal(failed, 3);    /* ERROR only; the cancelled one in neither */
  Oee__V1__QueueStatus *q = ss->queue;
  assert_non_null(q);
  assert_int_equal(q->queue_size, 0);
  assert_int_equal(q->total_tasks, 8);
  assert_int_equal(q->n_tasks_by_status, 6); /* scheduled too, at 0 */
  assert_int_equal(q->n_type_limits, 0);     /* no type_limits configured */
  oee__v1__system_status__free_unpacked(ss, NULL);
  assert_int_equal(it_count(srv.ch, "scheduled"), 0);
  assert_int_equal(it_count(srv.ch, "queued"), 0);
  assert_int_equal(it_count(srv.ch, "running"), 0);
  assert_int_equal(it_count(srv.ch, "done"), 4);
  assert_int_equal(it_count(srv.ch, "error"), 3);
  assert_int_equal(it_count(srv.ch, "cancelled"), 1);
  for (int i = 0; i < 7; i++) {
    t = it_get(srv.ch, ids[i], NULL);
    assert_true(t->worker_id == 0 || t->worker_id == 1);
    oee__v1__task__free_unpacked(t, NULL);
  }
  free_ids(ids, 8);
}

static void test_list_paging(void **state) {
  start("tasks.json", NULL);
  int code;
  Oee__V1__SubmitTasksResponse *b = submit_many(25, "echo", &code);
  assert_int_equal(code, 0);
  assert_int_equal(b->n_results, 25);
  char *ids[28];
  for (int i = 0; i < 25; i++) {
    assert_int_equal(b->results[i]->code, 0);
    ids[i] = strdup(b->results[i]->task_id);
  }
  oee__v1__submit_tasks_response__free_unpacked(b, NULL);
  for (int i = 25; i < 28; i++) ids[i] = it_submit_ok(srv.ch, "f", "fail", -1, KV("message", "x"));
  wait_all_final(ids, 28);

  /* Pages of 10 walk every task once, oldest first, in submission order. */
  char *token = NULL;
  int seen = 0, pages = 0;
  do {
    Oee__V1__ListTasksResponse *r = list(0, NULL, 10, token, &code);
    assert_int_equal(code, 0);
    assert_int_equal(r->total_size, 28);
    assert_true(r->n_tasks <= 10);
    for (size_t i = 0; i < r->n_tasks; i++) {
      assert_true(seen < 28);
      assert_string_equal(r->tasks[i]->id, ids[seen]);
      seen++;
    }
    free(token);
    token = r->next_page_token[0] ? strdup(r->next_page_token) : NULL;
    oee__v1__list_tasks_response__free_unpacked(r, NULL);
    pages++;
    assert_true(pages <= 3);
  } while (token);
  assert_int_equal(seen, 28);
  assert_int_equal(pages, 3);

  /* page_size 0: the server default still returns something. */
  Oee__V1__ListTasksResponse *r = list(0, NULL, 0, NULL, &code);
  assert_int_equal(code, 0);
  assert_true(r->n_tasks > 0);
  assert_int_equal(r->total_size, 28);
  oee__v1__list_tasks_response__free_unpacked(r, NULL);

  /* Filters. */
  assert_int_equal(list_total(ST(DONE), NULL), 25);
  assert_int_equal(list_total(ST(ERROR), NULL), 3);
  assert_int_equal(list_total(0, "fail"), 3);
  assert_int_equal(list_total(ST(DONE), "fail"), 0);
  r = list(0, "no-such-type", 100, NULL, &code);
  assert_int_equal(code, 0);
  assert_int_equal(r->n_tasks, 0);
  assert_int_equal(r->total_size, 0);
  assert_string_equal(r->next_page_token, "");
  oee__v1__list_tasks_response__free_unpacked(r, NULL);
  r = list(ST(ERROR), NULL, 100, NULL, &code);
  for (size_t i = 0; i < r->n_tasks; i++) {
    assert_int_equal(r->tasks[i]->status, ST(ERROR));
    assert_string_equal(r->tasks[i]->id, ids[25 + i]);
  }
  oee__v1__list_tasks_response__free_unpacked(r, NULL);
  free_ids(ids, 28);
}

static void test_list_clamp(void **state) {
  start("tasks.json", NULL);
  int code;
  Oee__V1__SubmitTasksResponse *b = submit_many(1005, "echo", &code);
  assert_int_equal(code, 0);
  assert_int_equal(b->n_results, 1005);
  for (size_t i = 0; i < b->n_results; i++) assert_int_equal(b->results[i]->code, 0);
  oee__v1__submit_tasks_response__free_unpacked(b, NULL);
  Oee__V1__ListTasksResponse *r = list(0, NULL, 5000, NULL, &code);
  assert_int_equal(code, 0);
  assert_int_equal(r->n_tasks, 1000);
  assert_int_equal(r->total_size, 1005);
  assert_string_not_equal(r->next_page_token, "");
  char *token = strdup(r->next_page_token);
  oee__v1__list_tasks_response__free_unpacked(r, NULL);
  r = list(0, NULL, 5000, token, &code);
  assert_int_equal(code, 0);
  assert_int_equal(r->n_tasks, 5);
  assert_string_equal(r->next_page_token, "");
  oee__v1__list_tasks_response__free_unpacked(r, NULL);
  free(token);
}

static int clear(int keep, int *code) {
  Oee__V1__ClearCompletedTasksRequest req = OEE__V1__CLEAR_COMPLETED_TASKS_REQUEST__INIT;
  if (keep >= -100) {
    req.keep_recent_present_case =
        OEE__V1__CLEAR_COMPLETED_TASKS_REQUEST__KEEP_RECENT_PRESENT_KEEP_RECENT;
    req.keep_recent = keep;
  }
  Oee__V1__ClearCompletedTasksResponse *resp = NULL;
  *code = oee_v1_orchestrator_service_clear_completed_tasks(srv.ch, &req, &resp, IT_CALL_MS, NULL);
  int n = resp ? resp->cleared : -1;
  if (resp) oee__v1__clear_completed_tasks_response__free_unpacked(resp, NULL);
  return n;
}

typedef struct done_at {
  char *id;
  double at;
} done_at;

static int by_completion(const void *a, const void *b) {
  double x = ((const done_at *)a)->at, y = ((const done_at *)b)->at;
  return x < y ? -1 : x > y;
}

static void test_clear_completed(void **state) {
  start("tasks.json", NULL);
  enum { N = 110 };
  int code;
  Oee__V1__SubmitTasksResponse *b = submit_many(N, "echo", &code);
  assert_int_equal(code, 0);
  done_at d[N];
  char *ids[N];
  for (int i = 0; i < N; i++) ids[i] = strdup(b->results[i]->task_id);
  oee__v1__submit_tasks_response__free_unpacked(b, NULL);
  wait_all_final(ids, N);
  for (int i = 0; i < N; i++) {
    Oee__V1__Task *t = it_get(srv.ch, ids[i], NULL);
    d[i].id = ids[i];
    d[i].at = it_ts(t->completed_at);
    oee__v1__task__free_unpacked(t, NULL);
  }
  qsort(d, N, sizeof(d[0]), by_completion);
  /* Two running sleeps and one queued task must survive every clear. */
  char *s1 = it_submit_ok(srv.ch, "s1", "sleep", -1, KV("seconds", "30"));
  char *s2 = it_submit_ok(srv.ch, "s2", "sleep", -1, KV("seconds", "30"));
  assert_int_equal(it_wait_busy(srv.ch, 2, IT_WAIT_MS), 0);
  char *q = it_submit_ok(srv.ch, "q", "echo", -1, NULL);

  assert_int_equal(clear(-1000, &code), 10); /* unset: keep 100 */
  assert_int_equal(code, 0);
  int c;
  for (int i = 0; i < N; i++) {
    Oee__V1__Task *t = it_get(srv.ch, d[i].id, &c);
    /* The 10 least recently completed are gone (skip a tie at the edge). */
    if (i < 10 && d[i].at < d[10].at) assert_int_equal(c, GRPC_STATUS_NOT_FOUND);
    if (i >= 10 && d[i].at > d[9].at) assert_int_equal(c, GRPC_STATUS_OK);
    if (t) oee__v1__task__free_unpacked(t, NULL);
  }
  assert_int_equal(list_total(0, NULL), 103);
  assert_int_equal(clear(100, &code), 0);
  assert_int_equal(clear(0, &code), 100); /* explicit 0 is honoured */
  assert_int_equal(code, 0);
  assert_int_equal(list_total(0, NULL), 3);
  assert_int_equal(list_total(ST(RUNNING), NULL), 2);
  assert_int_equal(list_total(ST(QUEUED), NULL), 1);
  assert_int_equal(clear(0, &code), 0);
  int cancelled;
  it_cancel(srv.ch, q, &cancelled);
  it_cancel(srv.ch, s1, &cancelled);
  it_cancel(srv.ch, s2, &cancelled);
  char *last[3] = {q, s1, s2};
  wait_all_final(last, 3);
  assert_int_equal(clear(1, &code), 2);
  assert_int_equal(list_total(0, NULL), 1);
  free(q);
  free(s1);
  free(s2);
  free_ids(ids, N);
}

static void add_entry(Oee__V1__SubmitTaskRequest *r, const char *name, const char *type, int prio) {
  oee__v1__submit_task_request__init(r);
  r->name = (char *)name;
  r->task_type = (char *)type;
  if (prio >= 0) {
    r->priority_present_case = OEE__V1__SUBMIT_TASK_REQUEST__PRIORITY_PRESENT_PRIORITY;
    r->priority = prio;
  }
}

static void test_submit_tasks_batch(void **state) {
  start("tasks.json", NULL);
  Oee__V1__SubmitTaskRequest r[7], *p[7];
  add_entry(&r[0], "a", "echo", -1);
  add_entry(&r[1], "", "echo", -1); /* empty name */
  add_entry(&r[2], "c", "fail", 2);
  add_entry(&r[3], "d", "nope", -1);     /* unknown type */
  add_entry(&r[4], "e", "echo", 11);     /* priority out of range */
  add_entry(&r[5], "f", "echo", 0);      /* explicit 0 */
  add_entry(&r[6], "g", "pipeline", -1); /* pipelines only via SubmitPipeline */
  int want[7] = {0, 3, 0, 3, 3, 0, 3};
  for (int i = 0; i < 7; i++) p[i] = &r[i];
  Oee__V1__SubmitTasksRequest req = OEE__V1__SUBMIT_TASKS_REQUEST__INIT;
  req.n_requests = 7;
  req.requests = p;
  Oee__V1__SubmitTasksResponse *resp = NULL;
  assert_int_equal(oee_v1_orchestrator_service_submit_tasks(srv.ch, &req, &resp, IT_CALL_MS, NULL),
                   0);
  assert_int_equal(resp->n_results, 7);
  for (int i = 0; i < 7; i++) {
    Oee__V1__SubmitTaskResult *x = resp->results[i];
    assert_int_equal(x->code, want[i]);
    if (want[i] == 0) {
      assert_true(is_uuid_v7(x->task_id));
      assert_non_null(x->task);
      assert_string_equal(x->task->name, r[i].name);
      assert_string_equal(x->message, "");
    } else {
      assert_string_equal(x->task_id, "");
      assert_null(x->task);
      assert_true(strlen(x->message) > 0);
    }
  }
  assert_int_equal(resp->results[5]->task->priority, 0);
  assert_int_equal(resp->results[0]->task->priority, 5);
  assert_int_equal(resp->results[2]->task->priority, 2);
  assert_int_equal(list_total(0, NULL), 3);
  oee__v1__submit_tasks_response__free_unpacked(resp, NULL);

  /* An empty batch is INVALID_ARGUMENT. */
  req.n_requests = 0;
  req.requests = NULL;
  oee_rpc_status st = {0};
  assert_int_equal(oee_v1_orchestrator_service_submit_tasks(srv.ch, &req, &resp, IT_CALL_MS, &st),
                   GRPC_STATUS_INVALID_ARGUMENT);
  assert_null(resp);
  oee_rpc_status_free(&st);
}

/* limits.json: one worker, max_queue 3, max_batch 4. */
static void test_batch_limits(void **state) {
  start("limits.json", NULL);
  int code;
  Oee__V1__SubmitTasksResponse *b = submit_many(5, "echo", &code);
  assert_int_equal(code, GRPC_STATUS_INVALID_ARGUMENT);
  assert_null(b);
  assert_int_equal(list_total(0, NULL), 0); /* nothing of it was queued */

  char *blocker = it_submit_ok(srv.ch, "b", "sleep", -1, KV("seconds", "30"));
  Oee__V1__Task *t = it_wait_status(srv.ch, blocker, ST(RUNNING), IT_WAIT_MS);
  assert_non_null(t);
  oee__v1__task__free_unpacked(t, NULL);
  b = submit_many(4, "echo", &code);
  assert_int_equal(code, 0);
  assert_int_equal(b->n_results, 4);
  for (int i = 0; i < 3; i++) assert_int_equal(b->results[i]->code, 0);
  assert_int_equal(b->results[3]->code, GRPC_STATUS_RESOURCE_EXHAUSTED);
  assert_string_equal(b->results[3]->task_id, "");
  oee__v1__submit_tasks_response__free_unpacked(b, NULL);
  assert_int_equal(it_count(srv.ch, "queued"), 3);
  assert_int_equal(it_submit(srv.ch, "x", "echo", -1, NULL, NULL), GRPC_STATUS_RESOURCE_EXHAUSTED);
  int cancelled;
  assert_int_equal(it_cancel(srv.ch, blocker, &cancelled), 0);
  free(blocker);
}

static void test_exec(void **state) {
  start("tasks.json", NULL);
  char *up =
      it_submit_ok(srv.ch, "up", "exec", -1, KV("command", "upper", "input", "hello world\n\n"));
  char *hi = it_submit_ok(srv.ch, "hi", "exec", -1, KV("command", "hello"));
  char *bad = it_submit_ok(srv.ch, "bad", "exec", -1, KV("command", "fails"));
  char *hang = it_submit_ok(srv.ch, "hang", "exec", -1, KV("command", "hang"));
  char *empty = it_submit_ok(srv.ch, "empty", "exec", -1, KV("command", "upper"));
  Oee__V1__Task *t = it_wait_status(srv.ch, up, ST(DONE), IT_WAIT_MS);
  assert_non_null(t);
  assert_string_equal(t->result, "HELLO WORLD"); /* trailing whitespace trimmed */
  oee__v1__task__free_unpacked(t, NULL);
  t = it_wait_status(srv.ch, hi, ST(DONE), IT_WAIT_MS);
  assert_non_null(t);
  assert_string_equal(t->result, "hello");
  oee__v1__task__free_unpacked(t, NULL);
  t = it_wait_status(srv.ch, bad, ST(ERROR), IT_WAIT_MS);
  assert_non_null(t);
  fprintf(stderr, "exec error_message: %s\n", t->error_message);
  assert_non_null(strstr(t->error_message, "7"));
  assert_non_null(strstr(t->error_message, "broken pipe dream"));
  oee__v1__task__free_unpacked(t, NULL);
  t = it_wait_status(srv.ch, hang, ST(ERROR), IT_WAIT_MS); /* timeout_seconds 0.5 */
  assert_non_null(t);
  assert_true(it_ts(t->completed_at) - it_ts(t->started_at) < 10.0);
  fprintf(stderr, "exec timeout error_message: %s\n", t->error_message);
  oee__v1__task__free_unpacked(t, NULL);
  t = it_wait_status(srv.ch, empty, ST(DONE), IT_WAIT_MS);
  assert_non_null(t);
  assert_string_equal(t->result, "");
  oee__v1__task__free_unpacked(t, NULL);

  /* A running exec is killed on cancel. */
  char *lng = it_submit_ok(srv.ch, "long", "exec", -1, KV("command", "long"));
  t = it_wait_status(srv.ch, lng, ST(RUNNING), IT_WAIT_MS);
  assert_non_null(t);
  oee__v1__task__free_unpacked(t, NULL);
  int cancelled = 0;
  assert_int_equal(it_cancel(srv.ch, lng, &cancelled), 0);
  assert_true(cancelled);
  t = it_wait_status(srv.ch, lng, ST(CANCELLED), 10000);
  assert_non_null(t);
  oee__v1__task__free_unpacked(t, NULL);
  free(up);
  free(hi);
  free(bad);
  free(hang);
  free(empty);
  free(lng);
}

static int num_workers(void) {
  Oee__V1__SystemStatus *ss = system_status();
  int n = ss->num_workers;
  assert_int_equal((int)ss->n_workers, n);
  oee__v1__system_status__free_unpacked(ss, NULL);
  return n;
}

/* Flags win over environment variables, which win over the config file. */
static void test_config_precedence(void **state) {
  const char *const env[] = {"OEE_WORKERS=3", NULL};
  assert_int_equal(it_server_start(&srv, "tasks.json", NULL, env, 30000), 0);
  assert_int_equal(num_workers(), 3); /* env over the file's 2 */
  assert_int_equal(teardown(NULL), 0);
  assert_int_equal(it_server_start(&srv, "tasks.json", ARGS("--workers", "1"), env, 30000), 0);
  assert_int_equal(num_workers(), 1); /* flag over env */
  assert_int_equal(teardown(NULL), 0);
  start("tasks.json", NULL);
  assert_int_equal(num_workers(), 2); /* the file */
}

/* Timestamps carry sub-second precision. */
static void test_timestamp_precision(void **state) {
  start("tasks.json", NULL);
  int nonzero = 0;
  for (int i = 0; i < 5 && !nonzero; i++) {
    char *id = it_submit_ok(srv.ch, "t", "echo", -1, NULL);
    Oee__V1__Task *t = it_wait_status(srv.ch, id, ST(DONE), IT_WAIT_MS);
    assert_non_null(t);
    nonzero = t->created_at->nanos != 0 || t->started_at->nanos != 0 || t->completed_at->nanos != 0;
    assert_true(t->created_at->nanos >= 0 && t->created_at->nanos < 1000000000);
    oee__v1__task__free_unpacked(t, NULL);
    free(id);
  }
  assert_true(nonzero);
}

/* -------------------------------------------------- task semantics */

/* An echo request with the retry policy and timeout given (max_attempts
 * and the backoffs through their presence oneofs). */
static void semantics_entry(Oee__V1__SubmitTaskRequest *r, const char *name, int max_attempts,
                            double timeout, double backoff, double max_backoff) {
  add_entry(r, name, "echo", -1);
  r->max_attempts_present_case = OEE__V1__SUBMIT_TASK_REQUEST__MAX_ATTEMPTS_PRESENT_MAX_ATTEMPTS;
  r->max_attempts = max_attempts;
  r->backoff_seconds_present_case =
      OEE__V1__SUBMIT_TASK_REQUEST__BACKOFF_SECONDS_PRESENT_BACKOFF_SECONDS;
  r->backoff_seconds = backoff;
  r->max_backoff_seconds_present_case =
      OEE__V1__SUBMIT_TASK_REQUEST__MAX_BACKOFF_SECONDS_PRESENT_MAX_BACKOFF_SECONDS;
  r->max_backoff_seconds = max_backoff;
  r->timeout_seconds = timeout;
}

static void expect_policy(const Oee__V1__Task *t, int max_attempts, double timeout, double backoff,
                          double max_backoff) {
  assert_non_null(t);
  assert_int_equal(t->max_attempts, max_attempts);
  assert_true(t->timeout_seconds == timeout);
  assert_true(t->backoff_seconds == backoff);
  assert_true(t->max_backoff_seconds == max_backoff);
}

/* SubmitTask with req: the code, and on OK the reply (caller frees). */
static int submit_req(Oee__V1__SubmitTaskRequest *req, Oee__V1__SubmitTaskResponse **resp,
                      char **msg) {
  oee_rpc_status st = {0};
  *resp = NULL;
  int code = oee_v1_orchestrator_service_submit_task(srv.ch, req, resp, IT_CALL_MS, &st);
  if (msg) *msg = strdup(st.message ? st.message : "");
  oee_rpc_status_free(&st);
  return code;
}

/* semantics.json: default_max_attempts 4 and a valid type_limits. The
 * fields come back as given, in the reply, GetTask and a batch result;
 * unset ones show the server's defaults. Nothing here waits for a retry. */
static void test_semantics_round_trip(void **state) {
  start("semantics.json", NULL);
  Oee__V1__SubmitTaskRequest r;
  Oee__V1__SubmitTaskResponse *resp;
  semantics_entry(&r, "policy", 3, 5, 2, 10);
  assert_int_equal(submit_req(&r, &resp, NULL), 0);
  expect_policy(resp->task, 3, 5, 2, 10);
  assert_false(resp->duplicate);
  Oee__V1__Task *t = it_get(srv.ch, resp->task_id, NULL);
  expect_policy(t, 3, 5, 2, 10);
  assert_int_equal(t->n_depends_on, 0);
  assert_string_equal(t->idempotency_key, "");
  assert_string_equal(t->schedule_id, "");
  assert_string_equal(t->remote_worker_id, "");
  oee__v1__task__free_unpacked(t, NULL);
  oee__v1__submit_task_response__free_unpacked(resp, NULL);

  /* Unset: the config's default_max_attempts, backoff 1 s up to 300 s, no
   * timeout. */
  add_entry(&r, "defaults", "echo", -1);
  assert_int_equal(submit_req(&r, &resp, NULL), 0);
  expect_policy(resp->task, 4, 0, 1, 300);
  oee__v1__submit_task_response__free_unpacked(resp, NULL);

  /* A run_at in the past means now; year 1 is the Timestamp's first. */
  Google__Protobuf__Timestamp past = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  past.seconds = INT64_C(-62135596800);
  add_entry(&r, "past", "echo", -1);
  r.run_at = &past;
  assert_int_equal(submit_req(&r, &resp, NULL), 0);
  t = it_wait_status(srv.ch, resp->task_id, ST(DONE), IT_WAIT_MS);
  assert_non_null(t);
  oee__v1__task__free_unpacked(t, NULL);
  oee__v1__submit_task_response__free_unpacked(resp, NULL);

  /* The same through a SubmitTasks entry. */
  Oee__V1__SubmitTaskRequest *p = &r;
  semantics_entry(&r, "batched", 7, 0.25, 0, 0);
  Oee__V1__SubmitTasksRequest batch = OEE__V1__SUBMIT_TASKS_REQUEST__INIT;
  batch.n_requests = 1;
  batch.requests = &p;
  Oee__V1__SubmitTasksResponse *b = NULL;
  assert_int_equal(oee_v1_orchestrator_service_submit_tasks(srv.ch, &batch, &b, IT_CALL_MS, NULL),
                   0);
  assert_int_equal(b->results[0]->code, 0);
  assert_false(b->results[0]->duplicate);
  expect_policy(b->results[0]->task, 7, 0.25, 0, 0);
  oee__v1__submit_tasks_response__free_unpacked(b, NULL);

  /* type_limits as configured, sorted by type, with their use now. */
  Oee__V1__SystemStatus *ss = system_status();
  assert_int_equal(ss->queue->n_type_limits, 2);
  const Oee__V1__TypeLimit *echo = ss->queue->type_limits[0], *sleep = ss->queue->type_limits[1];
  assert_string_equal(echo->task_type, "echo");
  assert_int_equal(echo->max_running, 2);
  assert_true(echo->max_per_second == 50);
  assert_true(echo->running >= 0 && echo->running <= 2); /* the tasks above may still run */
  assert_string_equal(sleep->task_type, "sleep");
  assert_int_equal(sleep->max_running, 0);
  assert_true(sleep->max_per_second == 0);
  assert_int_equal(ss->queue->n_tasks_by_status, 6);
  oee__v1__system_status__free_unpacked(ss, NULL);
}

/* An idempotency key is stored with the task and shown back. */
static void test_idempotency_key_round_trip(void **state) {
  start("tasks.json", NULL);
  Oee__V1__SubmitTaskRequest r;
  Oee__V1__SubmitTaskResponse *resp;
  char *msg;
  semantics_entry(&r, "keyed", 3, 5, 1, 300);
  r.idempotency_key = (char *)"k1";
  int code = submit_req(&r, &resp, &msg);
  free(msg);
  assert_int_equal(code, 0);
  assert_string_equal(resp->task->idempotency_key, "k1");
  Oee__V1__Task *t = it_get(srv.ch, resp->task_id, NULL);
  expect_policy(t, 3, 5, 1, 300);
  assert_string_equal(t->idempotency_key, "k1");
  oee__v1__task__free_unpacked(t, NULL);
  char *first = strdup(resp->task_id);
  oee__v1__submit_task_response__free_unpacked(resp, NULL);

  /* The key again: answered with the first task, `duplicate`, nothing new;
   * in a batch, a key used by an earlier entry (or task) is a duplicate. */
  semantics_entry(&r, "keyed again", 1, 0, 0, 0);
  r.idempotency_key = (char *)"k1";
  assert_int_equal(submit_req(&r, &resp, NULL), 0);
  assert_true(resp->duplicate);
  assert_string_equal(resp->task_id, first);
  assert_string_equal(resp->task->name, "keyed");
  oee__v1__submit_task_response__free_unpacked(resp, NULL);
  Oee__V1__SubmitTaskRequest e[3], *p[3] = {&e[0], &e[1], &e[2]};
  const char *keys[3] = {"k2", "k2", "k1"};
  for (int i = 0; i < 3; i++) {
    add_entry(&e[i], "batch", "echo", -1);
    e[i].idempotency_key = (char *)keys[i];
  }
  Oee__V1__SubmitTasksRequest batch = OEE__V1__SUBMIT_TASKS_REQUEST__INIT;
  batch.n_requests = 3;
  batch.requests = p;
  Oee__V1__SubmitTasksResponse *b = NULL;
  assert_int_equal(oee_v1_orchestrator_service_submit_tasks(srv.ch, &batch, &b, IT_CALL_MS, NULL),
                   0);
  assert_false(b->results[0]->duplicate);
  assert_true(b->results[1]->duplicate);
  assert_string_equal(b->results[1]->task_id, b->results[0]->task_id);
  assert_true(b->results[2]->duplicate);
  assert_string_equal(b->results[2]->task_id, first);
  oee__v1__submit_tasks_response__free_unpacked(b, NULL);
  Oee__V1__ListTasksRequest lr = OEE__V1__LIST_TASKS_REQUEST__INIT;
  Oee__V1__ListTasksResponse *l = NULL;
  assert_int_equal(oee_v1_orchestrator_service_list_tasks(srv.ch, &lr, &l, IT_CALL_MS, NULL), 0);
  assert_int_equal(l->total_size, 2); /* k1's task and k2's */
  oee__v1__list_tasks_response__free_unpacked(l, NULL);
  free(first);
}

/* "#<index>" names an earlier entry: the task shows that entry's id. */
static void test_batch_reference_resolved(void **state) {
  start("tasks.json", NULL);
  Oee__V1__SubmitTaskRequest r[3], *p[3] = {&r[0], &r[1], &r[2]};
  char *first[] = {(char *)"#0"}, *both[] = {(char *)"#0", (char *)"#1"};
  add_entry(&r[0], "a", "echo", -1);
  add_entry(&r[1], "b", "echo", -1);
  r[1].n_depends_on = 1;
  r[1].depends_on = first;
  add_entry(&r[2], "c", "echo", -1);
  r[2].n_depends_on = 2;
  r[2].depends_on = both;
  Oee__V1__SubmitTasksRequest batch = OEE__V1__SUBMIT_TASKS_REQUEST__INIT;
  batch.n_requests = 3;
  batch.requests = p;
  Oee__V1__SubmitTasksResponse *b = NULL;
  assert_int_equal(oee_v1_orchestrator_service_submit_tasks(srv.ch, &batch, &b, IT_CALL_MS, NULL),
                   0);
  assert_int_equal(b->results[0]->code, 0);
  for (int i = 1; i < 3; i++) assert_int_equal(b->results[i]->code, 0);
  const Oee__V1__Task *tb = b->results[1]->task, *tc = b->results[2]->task;
  assert_int_equal(tb->n_depends_on, 1);
  assert_string_equal(tb->depends_on[0], b->results[0]->task_id);
  assert_int_equal(tc->n_depends_on, 2);
  assert_string_equal(tc->depends_on[0], b->results[0]->task_id);
  assert_string_equal(tc->depends_on[1], b->results[1]->task_id);
  oee__v1__submit_tasks_response__free_unpacked(b, NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_submit_get_echo, teardown),
      cmocka_unit_test_teardown(test_priority_presence, teardown),
      cmocka_unit_test_teardown(test_fail_task, teardown),
      cmocka_unit_test_teardown(test_cancel_running_and_finished, teardown),
      cmocka_unit_test_teardown(test_cancel_queued_timestamps, teardown),
      cmocka_unit_test_teardown(test_priority_order, teardown),
      cmocka_unit_test_teardown(test_workers_and_counts, teardown),
      cmocka_unit_test_teardown(test_list_paging, teardown),
      cmocka_unit_test_teardown(test_list_clamp, teardown),
      cmocka_unit_test_teardown(test_clear_completed, teardown),
      cmocka_unit_test_teardown(test_submit_tasks_batch, teardown),
      cmocka_unit_test_teardown(test_batch_limits, teardown),
      cmocka_unit_test_teardown(test_exec, teardown),
      cmocka_unit_test_teardown(test_config_precedence, teardown),
      cmocka_unit_test_teardown(test_timestamp_precision, teardown),
      cmocka_unit_test_teardown(test_semantics_round_trip, teardown),
      cmocka_unit_test_teardown(test_idempotency_key_round_trip, teardown),
      cmocka_unit_test_teardown(test_batch_reference_resolved, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
