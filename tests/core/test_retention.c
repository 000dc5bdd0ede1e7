/* test_retention.c - finished tasks go by count (max_finished) and by age
 * (retention_seconds), also from the database; max_queue_bytes bounds what
 * unfinished tasks hold. */
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

#include "core/oee.h"

#define WAIT_S 20.0

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t count(oee_engine *eng, oee_task_status st) {
  oee_status s;
  assert_int_equal(oee_engine_status(eng, &s), 0);
  uint64_t n = st == OEE_TASK_UNSPECIFIED ? s.total_tasks : s.by_status[st];
  oee_status_free(&s);
  return n;
}

/* Polls (there is no event for a deletion) until the count is `want`. */
static void wait_count(oee_engine *eng, oee_task_status st, uint64_t want) {
  double until = now_s() + WAIT_S;
  while (count(eng, st) != want) {
    if (now_s() > until)
      fail_msg("count stayed %llu, wanted %llu", (unsigned long long)count(eng, st),
               (unsigned long long)want);
    usleep(20000);
  }
}

static void submit_echo(oee_engine *eng, int n) {
  oee_kv kv = {"message", "0123456789012345678901234567890123456789"};
  oee_submit req = {
      .name = "t", .task_type = "echo", .priority = 5, .context = &kv, .context_len = 1};
  for (int i = 0; i < n; i++) assert_int_equal(oee_engine_submit(eng, &req, NULL, NULL), 0);
}

static void test_max_finished_keeps_the_newest(void **state) {
  (void)state;
  oee_engine_config cfg = {.num_workers = 2, .max_finished = 10};
  oee_engine *eng;
  assert_int_equal(oee_engine_create(&cfg, &eng), 0);
  assert_int_equal(oee_engine_start(eng), 0);
  submit_echo(eng, 60);
  wait_count(eng, OEE_TASK_UNSPECIFIED, 10);
  assert_int_equal(count(eng, OEE_TASK_DONE), 10);
  /* The ones kept are the newest: every kept one completed after every
   * deleted one, so the last submitted (index 60) is there. */
  oee_list_query q = {.limit = 100};
  oee_list_page page;
  assert_int_equal(oee_engine_list(eng, &q, &page), 0);
  assert_int_equal(page.len, 10);
  assert_int_equal(page.tasks[9]->submit_index, 60);
  oee_list_page_free(&page);
  oee_engine_destroy(eng);
}

static void test_age_and_database(void **state) {
  (void)state;
  char dir[256];
  assert_int_equal(tu_temp_dir(dir, sizeof(dir), "test-retention"), 0);
  oee_engine_config cfg = {
      .num_workers = 2, .data_dir = dir, .sync_normal = 1, .retention_seconds = 1};
  oee_engine *eng;
  assert_int_equal(oee_engine_open(&cfg, &eng, NULL), 0);
  assert_int_equal(oee_engine_start(eng), 0);
  submit_echo(eng, 30);
  assert_int_equal(count(eng, OEE_TASK_UNSPECIFIED), 30);
  wait_count(eng, OEE_TASK_UNSPECIFIED, 0); /* finished, then gone after their second */
  oee_engine_destroy(eng);
  cfg.retention_seconds = 0; /* the rows went too: nothing comes back */
  assert_int_equal(oee_engine_open(&cfg, &eng, NULL), 0);
  oee_recovery rec;
  oee_engine_recovery(eng, &rec);
  assert_int_equal(rec.finished, 0);
  assert_int_equal(count(eng, OEE_TASK_UNSPECIFIED), 0);
  oee_engine_destroy(eng);
  assert_int_equal(tu_remove_dir(dir), 0);
}

static void test_max_queue_bytes(void **state) {
  (void)state;
  /* Each task holds 1 + 4 + 7 + 40 = 52 bytes (name, type, key, value). */
  oee_engine_config cfg = {.num_workers = 1, .max_queue_bytes = 120};
  oee_engine *eng;
  assert_int_equal(oee_engine_create(&cfg, &eng), 0);
  submit_echo(eng, 2); /* 104 bytes, not started: both wait */
  oee_kv kv = {"message", "0123456789012345678901234567890123456789"};
  oee_submit req = {
      .name = "t", .task_type = "echo", .priority = 5, .context = &kv, .context_len = 1};
  oee_error err;
  assert_int_equal(oee_engine_submit(eng, &req, NULL, &err), OEE_EFULL);
  assert_non_null(strstr(err.message, "max_queue_bytes is 120"));
  assert_int_equal(count(eng, OEE_TASK_UNSPECIFIED), 2); /* nothing was created */
  assert_int_equal(oee_engine_start(eng), 0);
  wait_count(eng, OEE_TASK_DONE, 2); /* finished tasks no longer count */
  assert_int_equal(oee_engine_submit(eng, &req, NULL, &err), 0);
  oee_engine_destroy(eng);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_max_finished_keeps_the_newest),
      cmocka_unit_test(test_age_and_database),
      cmocka_unit_test(test_max_queue_bytes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
