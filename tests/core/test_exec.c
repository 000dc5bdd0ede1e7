/* test_exec.c - the built-in `exec` executor driven through an engine. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/oee.h"
#include "core/oee_exec.h"
#include "tests/core/testutil.h"

typedef struct fixture {
  oee_exec_table *table;
  oee_engine *eng;
} fixture;

static int add(oee_exec_table *t, const char *name, double timeout, ...) {
  const char *argv[8];
  size_t n = 0;
  va_list ap;
  va_start(ap, timeout);
  while (n < 8 && (argv[n] = va_arg(ap, const char *)) != NULL) n++;
  va_end(ap);
  return oee_exec_table_add(t, name, argv, n, timeout);
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof(*f));
  if (f == NULL || oee_exec_table_create(&f->table) != 0) return -1;
  int rc = add(f->table, "upper", 10, "tr", "a-z", "A-Z", NULL);
  rc |= add(f->table, "fail3", 10, "sh", "-c", "echo partial; echo bad >&2; exit 3", NULL);
  rc |= add(f->table, "slow", 0.3, "sleep", "30", NULL);
  rc |= add(f->table, "long", 0, "sleep", "30", NULL);
  rc |= add(f->table, "ghost", 0, "oee-no-such-command-xyz", NULL);
  rc |= add(f->table, "spaces", 0, "printf", "  keep leading  \\n\\n", NULL);
  if (rc != 0) return -1;
  f->eng = tu_engine(2, f->table, NULL);
  *state = f;
  return f->eng == NULL || !tu_no_children() ? -1 : 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  tu_engine_free(f->eng);
  oee_exec_table_destroy(f->table);
  free(f);
  return tu_no_children() ? 0 : -1;
}

/* Runs one exec task to its end; returns its final snapshot. */
static const oee_task_info *run_cmd(fixture *f, const char *cmd, const char *input) {
  char id[OEE_ID_LEN + 1];
  int rc = input != NULL ? tu_submit(f->eng, "exec", id, 2, "command", cmd, "input", input)
                         : tu_submit(f->eng, "exec", id, 1, "command", cmd);
  assert_int_equal(rc, 0);
  const oee_task_info *t = tu_wait_terminal(f->eng, id, 10);
  assert_non_null(t);
  return t;
}

static void test_allowlist_enforced_at_submit(void **state) {
  fixture *f = *state;
  assert_int_equal(tu_submit(f->eng, "exec", NULL, 0), OEE_ENOCMD);
  assert_int_equal(tu_submit(f->eng, "exec", NULL, 1, "input", "x"), OEE_ENOCMD);
  assert_int_equal(tu_submit(f->eng, "exec", NULL, 1, "command", "rm"), OEE_ENOCMD);
  assert_int_equal(tu_submit(f->eng, "exec", NULL, 1, "command", "sh -c id"), OEE_ENOCMD);
  /* Nothing was created. */
  oee_list_query q = {0};
  oee_list_page page;
  assert_int_equal(oee_engine_list(f->eng, &q, &page), 0);
  assert_int_equal(page.total, 0);
  oee_list_page_free(&page);
}

static void test_no_table_refuses_everything(void **state) {
  (void)state;
  oee_engine *eng = tu_engine(1, NULL, NULL);
  assert_non_null(eng);
  assert_true(oee_engine_has_executor(eng, "exec"));
  assert_int_equal(tu_submit(eng, "exec", NULL, 1, "command", "upper"), OEE_ENOCMD);
  tu_engine_free(eng);
}

static void test_stdin_to_stdout(void **state) {
  const oee_task_info *t = run_cmd(*state, "upper", "hello world\n\n");
  assert_int_equal(t->status, OEE_TASK_DONE);
  assert_string_equal(t->result, "HELLO WORLD");
  assert_string_equal(t->error_message, "");
  oee_task_info_unref(t);
}

static void test_no_input_and_trim(void **state) {
  const oee_task_info *t = run_cmd(*state, "spaces", NULL);
  assert_int_equal(t->status, OEE_TASK_DONE);
  assert_string_equal(t->result, "  keep leading");
  oee_task_info_unref(t);
}

static void test_nonzero_exit(void **state) {
  const oee_task_info *t = run_cmd(*state, "fail3", "x");
  assert_int_equal(t->status, OEE_TASK_ERROR);
  assert_string_equal(t->error_message, "exit status 3: bad");
  assert_string_equal(t->result, "");
  oee_task_info_unref(t);
}

static void test_timeout(void **state) {
  double t0 = tu_now();
  const oee_task_info *t = run_cmd(*state, "slow", "");
  assert_true(tu_now() - t0 < 5);
  assert_int_equal(t->status, OEE_TASK_ERROR);
  assert_string_equal(t->error_message, "timed out after 0.3 s");
  oee_task_info_unref(t);
}

static void test_cannot_start(void **state) {
  const oee_task_info *t = run_cmd(*state, "ghost", "");
  assert_int_equal(t->status, OEE_TASK_ERROR);
  assert_non_null(strstr(t->error_message, "cannot start"));
  oee_task_info_unref(t);
}

static void test_cancel_running(void **state) {
  fixture *f = *state;
  char id[OEE_ID_LEN + 1];
  assert_int_equal(tu_submit(f->eng, "exec", id, 1, "command", "long"), 0);
  assert_true(tu_wait_status(f->eng, id, OEE_TASK_RUNNING, 5));
  assert_true(tu_wait_children(1, 5)); /* the command really runs */
  int cancelled = 0;
  double t0 = tu_now();
  assert_int_equal(oee_engine_cancel(f->eng, id, &cancelled, NULL), 0);
  assert_true(cancelled);
  const oee_task_info *t = tu_wait_terminal(f->eng, id, 5);
  assert_non_null(t);
  assert_true(tu_now() - t0 < 3);
  assert_int_equal(t->status, OEE_TASK_CANCELLED);
  oee_task_info_unref(t);
  assert_true(tu_no_children());
}

/* Several commands at once on separate workers. */
static void test_parallel_tasks(void **state) {
  fixture *f = *state;
  char ids[6][OEE_ID_LEN + 1];
  for (int i = 0; i < 6; i++) {
    assert_int_equal(tu_submit(f->eng, "exec", ids[i], 2, "command", "upper", "input", "abc"), 0);
  }
  for (int i = 0; i < 6; i++) {
    const oee_task_info *t = tu_wait_terminal(f->eng, ids[i], 10);
    assert_non_null(t);
    assert_int_equal(t->status, OEE_TASK_DONE);
    assert_string_equal(t->result, "ABC");
    oee_task_info_unref(t);
  }
}

int main(void) {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_allowlist_enforced_at_submit),
      T(test_no_table_refuses_everything),
      T(test_stdin_to_stdout),
      T(test_no_input_and_trim),
      T(test_nonzero_exit),
      T(test_timeout),
      T(test_cannot_start),
      T(test_cancel_running),
      T(test_parallel_tasks),
  };
#undef T
  return cmocka_run_group_tests(tests, NULL, NULL);
}
