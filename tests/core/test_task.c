/* test_task.c - lifecycle edges, ids and snapshots. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/task.h"

static void test_every_transition(void **state) {
  (void)state;
  /* allowed[from][to], written out from the contract's lifecycle; from
   * UNSPECIFIED is a new task's first status. */
  enum { Q = OEE_TASK_QUEUED, R = OEE_TASK_RUNNING, D = OEE_TASK_DONE, E = OEE_TASK_ERROR };
  enum { C = OEE_TASK_CANCELLED, S = OEE_TASK_SCHEDULED };
  static const int allowed[OEE_TASK_STATUS_COUNT][OEE_TASK_STATUS_COUNT] = {
      [OEE_TASK_UNSPECIFIED] = {[Q] = 1, [S] = 1, [C] = 1},
      [S] = {[Q] = 1, [C] = 1},
      [Q] = {[R] = 1, [C] = 1},
      [R] = {[D] = 1, [E] = 1, [C] = 1, [S] = 1},
      [E] = {[Q] = 1, [S] = 1}, /* RetryTask */
      [C] = {[Q] = 1, [S] = 1}, /* RetryTask */
  };
  int n_allowed = 0;
  for (int f = 0; f < OEE_TASK_STATUS_COUNT; f++) {
    for (int t = 0; t < OEE_TASK_STATUS_COUNT; t++) {
      int rc = oee_task_transition_check((oee_task_status)f, (oee_task_status)t);
      assert_int_equal(rc, allowed[f][t] ? 0 : OEE_ESTATE);
      n_allowed += rc == 0;
    }
  }
  assert_int_equal(n_allowed, 15);
  assert_int_equal(oee_task_transition_check(OEE_TASK_DONE, 99), OEE_ESTATE);
}

static void test_status_names_and_terminal(void **state) {
  (void)state;
  assert_string_equal(oee_task_status_name(OEE_TASK_QUEUED), "queued");
  assert_string_equal(oee_task_status_name(OEE_TASK_CANCELLED), "cancelled");
  assert_string_equal(oee_task_status_name(OEE_TASK_SCHEDULED), "scheduled");
  assert_false(oee_task_status_is_terminal(OEE_TASK_SCHEDULED));
  assert_string_equal(oee_task_status_name((oee_task_status)42), "unspecified");
  assert_false(oee_task_status_is_terminal(OEE_TASK_RUNNING));
  assert_true(oee_task_status_is_terminal(OEE_TASK_ERROR));
}

static void test_ids_are_lowercase_v7(void **state) {
  (void)state;
  char a[OEE_ID_LEN + 1], b[OEE_ID_LEN + 1];
  oee__new_id(a);
  oee__new_id(b);
  assert_true(oee_id_valid(a));
  assert_string_not_equal(a, b);
  assert_int_equal(a[14], '7');
  for (int i = 0; a[i]; i++) assert_false(a[i] >= 'A' && a[i] <= 'Z');
  assert_false(oee_id_valid(""));
  assert_false(oee_id_valid("not-a-uuid"));
  assert_false(oee_id_valid("123e4567-e89b-12d3-a456-4266141740000"));
  assert_true(oee_id_valid("123E4567-E89B-12D3-A456-426614174000"));
}

static void test_snapshot_packs_and_sorts_context(void **state) {
  (void)state;
  oee_kv in[] = {{"zeta", "1"}, {"alpha", "2"}, {"mid", ""}};
  oee_kv *sorted;
  assert_int_equal(oee__context_sorted(in, 3, NULL, 0, &sorted, NULL), 0);
  oee_task_info d = {0};
  strcpy(d.id, "123e4567-e89b-42d3-a456-426614174000");
  d.name = "n";
  d.task_type = "echo";
  d.context = sorted;
  d.context_len = 3;
  d.status = OEE_TASK_QUEUED;
  oee_task_info *t = oee__snap_pack(&d);
  free(sorted);
  assert_non_null(t);
  assert_string_equal(t->context[0].key, "alpha");
  assert_string_equal(oee_task_info_context(t, "zeta"), "1");
  assert_string_equal(oee_task_info_context(t, "mid"), "");
  assert_null(oee_task_info_context(t, "nope"));
  assert_string_equal(t->result, "");
  assert_string_equal(t->error_message, "");
  const oee_task_info *r = oee_task_info_ref(t);
  oee_task_info_unref(t);
  assert_string_equal(r->name, "n"); /* still alive through the 2nd ref */
  oee_task_info_unref(r);
}

static void test_context_duplicates_refused(void **state) {
  (void)state;
  oee_kv dup[] = {{"k", "1"}, {"k", "2"}};
  oee_kv *out = (oee_kv *)1;
  assert_int_equal(oee__context_sorted(dup, 2, NULL, 0, &out, NULL), OEE_EINVAL);
  assert_null(out);
  /* Small contexts use the caller's buffer; duplicates are still refused. */
  oee_kv buf[4];
  oee_kv two[] = {{"b", "1"}, {"a", "2"}};
  assert_int_equal(oee__context_sorted(two, 2, buf, 4, &out, NULL), 0);
  assert_ptr_equal(out, buf);
  assert_string_equal(out[0].key, "a");
  assert_int_equal(oee__context_sorted(dup, 2, buf, 4, &out, NULL), OEE_EINVAL);
  oee_kv nul[] = {{NULL, "1"}};
  assert_int_equal(oee__context_sorted(nul, 1, NULL, 0, &out, NULL), OEE_EINVAL);
}

static void test_strerror_table(void **state) {
  (void)state;
  assert_int_equal(OEE_EINVAL, -1);
  assert_string_equal(oee_strerror(OEE_ENOENT), "no such task");
  assert_string_equal(oee_err_name(OEE_EFULL), "FULL");
  assert_string_equal(oee_strerror(-999), "unknown error");
  assert_string_equal(oee_strerror(0), "success");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_transition),
      cmocka_unit_test(test_status_names_and_terminal),
      cmocka_unit_test(test_ids_are_lowercase_v7),
      cmocka_unit_test(test_snapshot_packs_and_sorts_context),
      cmocka_unit_test(test_context_duplicates_refused),
      cmocka_unit_test(test_strerror_table),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
