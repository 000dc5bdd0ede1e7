/*
 * test_schedules.c - the schedule RPCs through the generated C stubs
 * against the real server: create, get, list, pause, resume and delete, a
 * schedule's firings seen through WatchTasks filtered by schedule_ids, and
 * the codes of the refusals (API.md, "Schedules (cron)").
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

static it_server srv;

static int teardown(void **state) { return it_server_teardown(&srv); }

/* CreateSchedule of an echo template; returns the gRPC code and, on OK,
 * the schedule (the caller frees it). */
static int create(const char *id, const char *cron, const char *zone, Oee__V1__Schedule **out,
                  char **msg) {
  Oee__V1__SubmitTaskRequest task = OEE__V1__SUBMIT_TASK_REQUEST__INIT;
  task.name = (char *)"tick";
  task.task_type = (char *)"echo";
  Oee__V1__CreateScheduleRequest r = OEE__V1__CREATE_SCHEDULE_REQUEST__INIT;
  r.schedule_id = (char *)id;
  r.cron = (char *)cron;
  r.time_zone = (char *)zone;
  r.task = &task;
  oee_rpc_status st = {0};
  *out = NULL;
  int code = oee_v1_orchestrator_service_create_schedule(srv.ch, &r, out, IT_CALL_MS, &st);
  if (msg) *msg = st.message ? strdup(st.message) : NULL;
  oee_rpc_status_free(&st);
  return code;
}

static void test_lifecycle(void **state) {
  (void)state;
  assert_int_equal(it_server_start(&srv, "tasks.json", NULL, NULL, 30000), 0);
  Oee__V1__WatchTasksRequest wr = OEE__V1__WATCH_TASKS_REQUEST__INIT;
  char *only[] = {(char *)"tick"};
  wr.schedule_ids = only;
  wr.n_schedule_ids = 1;
  it_watch *w = it_watch_open(srv.ch, &wr);
  assert_non_null(w);
  assert_int_equal(it_watch_registered(srv.ch, IT_WAIT_MS), 0);
  free(it_submit_ok(srv.ch, "not scheduled", "echo", 5, NULL)); /* filtered out */
  Oee__V1__Schedule *s;
  assert_int_equal(create("tick", "@every 1s", "", &s, NULL), 0);
  assert_string_equal(s->schedule_id, "tick");
  assert_string_equal(s->time_zone, "UTC");
  assert_int_equal(s->overlap, OEE__V1__SCHEDULE_OVERLAP__SCHEDULE_OVERLAP_SKIP);
  assert_non_null(s->next_run_at);
  assert_int_equal(s->next_run_at->seconds, s->created_at->seconds + 1);
  oee__v1__schedule__free_unpacked(s, NULL);
  /* Two firings' tasks, and nothing else, through the filtered watch. */
  for (int done = 0; done < 2;) {
    Oee__V1__TaskEvent *e = NULL;
    assert_int_equal(it_watch_next(w, &e, NULL, IT_WAIT_MS), 1);
    assert_string_equal(e->task->schedule_id, "tick");
    assert_true(strncmp(e->task->idempotency_key, "tick@", 5) == 0);
    done += (int)e->task->status == ST(DONE);
    oee__v1__task_event__free_unpacked(e, NULL);
  }
  it_watch_close(w);

  Oee__V1__PauseScheduleRequest pr = OEE__V1__PAUSE_SCHEDULE_REQUEST__INIT;
  pr.schedule_id = (char *)"tick";
  assert_int_equal(oee_v1_orchestrator_service_pause_schedule(srv.ch, &pr, &s, IT_CALL_MS, NULL),
                   0);
  assert_true(s->paused);
  assert_null(s->next_run_at);
  assert_true(s->runs >= 2);
  oee__v1__schedule__free_unpacked(s, NULL);
  Oee__V1__ResumeScheduleRequest rr = OEE__V1__RESUME_SCHEDULE_REQUEST__INIT;
  rr.schedule_id = (char *)"tick";
  assert_int_equal(oee_v1_orchestrator_service_resume_schedule(srv.ch, &rr, &s, IT_CALL_MS, NULL),
                   0);
  assert_false(s->paused);
  assert_non_null(s->next_run_at);
  oee__v1__schedule__free_unpacked(s, NULL);

  assert_int_equal(create("daily", "0 9 * * MON-FRI", "America/New_York", &s, NULL), 0);
  assert_string_equal(s->time_zone, "America/New_York");
  oee__v1__schedule__free_unpacked(s, NULL);
  Oee__V1__ListSchedulesRequest lr = OEE__V1__LIST_SCHEDULES_REQUEST__INIT;
  lr.page_size = 1;
  Oee__V1__ListSchedulesResponse *l;
  assert_int_equal(oee_v1_orchestrator_service_list_schedules(srv.ch, &lr, &l, IT_CALL_MS, NULL),
                   0);
  assert_int_equal(l->n_schedules, 1);
  assert_string_equal(l->schedules[0]->schedule_id, "daily");
  assert_string_equal(l->next_page_token, "daily");
  oee__v1__list_schedules_response__free_unpacked(l, NULL);

  Oee__V1__DeleteScheduleRequest dr = OEE__V1__DELETE_SCHEDULE_REQUEST__INIT;
  dr.schedule_id = (char *)"tick";
  Oee__V1__DeleteScheduleResponse *d;
  assert_int_equal(oee_v1_orchestrator_service_delete_schedule(srv.ch, &dr, &d, IT_CALL_MS, NULL),
                   0);
  oee__v1__delete_schedule_response__free_unpacked(d, NULL);
  Oee__V1__GetScheduleRequest gr = OEE__V1__GET_SCHEDULE_REQUEST__INIT;
  gr.schedule_id = (char *)"tick";
  assert_int_equal(oee_v1_orchestrator_service_get_schedule(srv.ch, &gr, &s, IT_CALL_MS, NULL),
                   GRPC_STATUS_NOT_FOUND);
}

static void test_refusals(void **state) {
  (void)state;
  assert_int_equal(it_server_start(&srv, "tasks.json", NULL, NULL, 30000), 0);
  struct {
    const char *id, *cron, *zone;
    int code;
    const char *words;
  } rows[] = {
      {"a", "61 * * * *", "", GRPC_STATUS_INVALID_ARGUMENT, "minute"},
      {"a", "@every 1ms", "", GRPC_STATUS_INVALID_ARGUMENT, "@every"},
      {"a", "@daily", "Nowhere/Else", GRPC_STATUS_INVALID_ARGUMENT, "Nowhere/Else"},
      {"A!", "@daily", "", GRPC_STATUS_INVALID_ARGUMENT, "schedule_id"},
  };
  for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
    Oee__V1__Schedule *s;
    char *msg = NULL;
    assert_int_equal(create(rows[i].id, rows[i].cron, rows[i].zone, &s, &msg), rows[i].code);
    if (msg == NULL || strstr(msg, rows[i].words) == NULL) {
      fail_msg("row %zu: \"%s\" lacks \"%s\"", i, msg ? msg : "", rows[i].words);
    }
    free(msg);
  }
  Oee__V1__Schedule *s;
  assert_int_equal(create("dup", "@daily", "", &s, NULL), 0);
  oee__v1__schedule__free_unpacked(s, NULL);
  char *msg = NULL;
  assert_int_equal(create("dup", "@daily", "", &s, &msg), GRPC_STATUS_ALREADY_EXISTS);
  /* The field, its value, and why. */
  assert_string_equal(msg ? msg : "", "schedule_id \"dup\" is in use by an existing schedule");
  free(msg);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_lifecycle, teardown),
      cmocka_unit_test_teardown(test_refusals, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
