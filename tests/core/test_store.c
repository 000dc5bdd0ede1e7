/* test_store.c - the in-memory store: lookup, listing filters and pages,
 * clear_completed and counts kept incrementally. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/heap.h"
#include "core/store.h"

static const char *const types[] = {"echo", "sleep", "exec"};

static oee_task *make_task(uint64_t index, const char *type) {
  oee_task_info d = {0};
  oee__new_id(d.id);
  d.name = "t";
  d.task_type = type;
  d.status = OEE_TASK_QUEUED;
  d.submit_index = index;
  oee_task *t = calloc(1, sizeof(*t));
  t->snap = oee__snap_pack(&d);
  t->index = index;
  t->heap_pos = OEE_TASK_NOT_QUEUED;
  return t;
}

/* What the engine does on a change: new snapshot, then tell the store. */
static void move(oee_store *s, oee_task *t, oee_task_status to) {
  oee_task_info d = *t->snap;
  oee_task_status from = d.status;
  assert_int_equal(oee_task_transition_check(from, to), 0);
  d.status = to;
  const oee_task_info *old = t->snap;
  t->snap = oee__snap_pack(&d);
  oee_task_info_unref(old);
  s->ops->changed(s, t, from);
}

static void drop(oee_task *t, void *arg) {
  if (arg) (*(long *)arg)++;
  oee_task_info_unref(t->snap);
  free(t);
}

static oee_store *filled(size_t n, oee_task **tasks) {
  oee_store *s = oee__store_mem_create();
  for (size_t i = 0; i < n; i++) {
    tasks[i] = make_task(i + 1, types[i % 3]);
    assert_int_equal(s->ops->insert(s, tasks[i]), 0);
  }
  return s;
}

static void test_lookup_any_case(void **state) {
  (void)state;
  oee_task *t[3000];
  oee_store *s = filled(3000, t);
  for (int i = 0; i < 3000; i++) {
    assert_ptr_equal(s->ops->lookup(s, t[i]->snap->id), t[i]);
  }
  char up[OEE_ID_LEN + 1];
  strcpy(up, t[5]->snap->id);
  for (char *p = up; *p; p++) *p = (char)(*p >= 'a' && *p <= 'f' ? *p - 32 : *p);
  assert_ptr_equal(s->ops->lookup(s, up), t[5]);
  assert_null(s->ops->lookup(s, "00000000-0000-4000-8000-000000000000"));
  assert_null(s->ops->lookup(s, "garbage"));
  s->ops->destroy(s, drop, NULL);
}

/* The hash leaves out an id's random tail (store_mem.c): ids equal but for
 * it share a bucket and are still told apart, in any case. */
static void test_lookup_ids_equal_but_tail(void **state) {
  (void)state;
  static const char *const ids[] = {
      "01890a5d-ac96-774b-8bcd-000000000001",
      "01890a5d-ac96-774b-8bcd-000000000002",
      "01890a5d-ac96-774b-8bcd-0000000000ff",
  };
  oee_store *s = oee__store_mem_create();
  oee_task *t[3];
  for (int i = 0; i < 3; i++) {
    t[i] = make_task((uint64_t)i + 1, "echo");
    memcpy((char *)t[i]->snap->id, ids[i], OEE_ID_LEN + 1); /* not shared yet */
    assert_int_equal(s->ops->insert(s, t[i]), 0);
  }
  for (int i = 0; i < 3; i++) {
    char up[OEE_ID_LEN + 1];
    strcpy(up, ids[i]);
    for (char *p = up; *p; p++) *p = (char)(*p >= 'a' && *p <= 'f' ? *p - 32 : *p);
    assert_ptr_equal(s->ops->lookup(s, ids[i]), t[i]);
    assert_ptr_equal(s->ops->lookup(s, up), t[i]);
  }
  assert_null(s->ops->lookup(s, "01890a5d-ac96-774b-8bcd-000000000003"));
  s->ops->remove(s, t[1]);
  drop(t[1], NULL);
  assert_ptr_equal(s->ops->lookup(s, ids[0]), t[0]);
  assert_null(s->ops->lookup(s, ids[1]));
  assert_ptr_equal(s->ops->lookup(s, ids[2]), t[2]);
  s->ops->destroy(s, drop, NULL);
}

static void test_pages_cover_all_in_order(void **state) {
  (void)state;
  oee_task *t[1000];
  oee_store *s = filled(1000, t);
  oee_list_query q = {.limit = 64};
  size_t seen = 0;
  for (;;) {
    oee_list_page p;
    assert_int_equal(s->ops->list(s, &q, &p), 0);
    assert_int_equal(p.total, 1000);
    for (size_t i = 0; i < p.len; i++) {
      assert_ptr_equal(p.tasks[i], t[seen]->snap);
      seen++;
    }
    uint64_t next = p.next_index;
    oee_list_page_free(&p);
    if (next == 0) break;
    q.after_index = next;
  }
  assert_int_equal(seen, 1000);
  s->ops->destroy(s, drop, NULL);
}

static void test_filters_and_totals(void **state) {
  (void)state;
  oee_task *t[300];
  oee_store *s = filled(300, t);
  for (int i = 0; i < 300; i += 2) move(s, t[i], OEE_TASK_RUNNING);
  oee_list_query q = {.status = OEE_TASK_RUNNING, .task_type = "sleep", .limit = 1000};
  oee_list_page p;
  assert_int_equal(s->ops->list(s, &q, &p), 0);
  /* sleep tasks are i % 3 == 1; running ones also have i even. */
  assert_int_equal(p.total, 50);
  assert_int_equal(p.len, 50);
  assert_int_equal(p.next_index, 0);
  for (size_t i = 0; i < p.len; i++) {
    assert_string_equal(p.tasks[i]->task_type, "sleep");
    assert_int_equal(p.tasks[i]->status, OEE_TASK_RUNNING);
    if (i) assert_true(p.tasks[i]->submit_index > p.tasks[i - 1]->submit_index);
  }
  oee_list_page_free(&p);
  q = (oee_list_query){.task_type = "nope", .limit = 10};
  assert_int_equal(s->ops->list(s, &q, &p), 0);
  assert_int_equal(p.total, 0);
  assert_int_equal(p.len, 0);
  oee_list_page_free(&p);
  q = (oee_list_query){.status = OEE_TASK_QUEUED, .limit = 0};
  assert_int_equal(s->ops->list(s, &q, &p), 0);
  assert_int_equal(p.total, 150);
  assert_int_equal(p.len, 0);
  oee_list_page_free(&p);
  s->ops->destroy(s, drop, NULL);
}

static void test_clear_keeps_newest_n(void **state) {
  (void)state;
  oee_task *t[500];
  oee_store *s = filled(500, t);
  /* Finish in reverse order of submission so completion order differs. */
  for (int i = 499; i >= 100; i--) {
    move(s, t[i], OEE_TASK_RUNNING);
    move(s, t[i], i % 2 ? OEE_TASK_DONE : OEE_TASK_ERROR);
  }
  long dropped = 0;
  assert_int_equal(s->ops->clear_completed(s, 30, drop, &dropped), 370);
  assert_int_equal(dropped, 370);
  /* The 30 most recently finished are t[100..129]; everything queued stays. */
  for (int i = 0; i < 130; i++) assert_non_null(s->ops->lookup(s, t[i]->snap->id));
  uint64_t by[OEE_TASK_STATUS_COUNT], total;
  s->ops->counts(s, by, &total);
  assert_int_equal(total, 130);
  assert_int_equal(by[OEE_TASK_QUEUED], 100);
  assert_int_equal(by[OEE_TASK_DONE] + by[OEE_TASK_ERROR], 30);
  assert_int_equal(s->ops->clear_completed(s, 100, drop, NULL), 0);
  assert_int_equal(s->ops->clear_completed(s, 0, drop, NULL), 30);
  oee_list_query q = {.limit = 1000};
  oee_list_page p;
  s->ops->list(s, &q, &p);
  assert_int_equal(p.len, 100);
  assert_ptr_equal(p.tasks[99], t[99]->snap);
  oee_list_page_free(&p);
  s->ops->destroy(s, drop, NULL);
}

static void test_sparse_filter_finds_far_matches(void **state) {
  (void)state;
  enum { N = 70000 };
  oee_task **t = calloc(N, sizeof(*t));
  oee_store *s = filled(N, t);
  move(s, t[3], OEE_TASK_RUNNING);
  move(s, t[N - 1], OEE_TASK_RUNNING); /* both are "echo" tasks (i % 3 == 0) */
  oee_list_query q = {.status = OEE_TASK_RUNNING, .limit = 1};
  oee_list_page p;
  assert_int_equal(s->ops->list(s, &q, &p), 0);
  assert_int_equal(p.total, 2);
  assert_int_equal(p.len, 1);
  assert_ptr_equal(p.tasks[0], t[3]->snap);
  q.after_index = p.next_index;
  oee_list_page_free(&p);
  assert_int_equal(s->ops->list(s, &q, &p), 0);
  assert_int_equal(p.len, 1);
  assert_ptr_equal(p.tasks[0], t[N - 1]->snap);
  assert_int_equal(p.next_index, 0);
  oee_list_page_free(&p);
  q = (oee_list_query){.status = OEE_TASK_RUNNING, .task_type = "echo", .limit = 10};
  assert_int_equal(s->ops->list(s, &q, &p), 0);
  assert_int_equal(p.len, 2);
  assert_ptr_equal(p.tasks[1], t[N - 1]->snap);
  oee_list_page_free(&p);
  q.task_type = "sleep";
  assert_int_equal(s->ops->list(s, &q, &p), 0);
  assert_int_equal(p.total, 0);
  assert_int_equal(p.len, 0);
  oee_list_page_free(&p);
  s->ops->destroy(s, drop, NULL);
  free(t);
}

/* Pages through every filter combination and compares with a brute-force
 * walk over the store in submission order. */
typedef struct brute {
  const oee_list_query *q;
  const oee_task_info *want[4096];
  size_t n;
} brute;

static void brute_visit(oee_task *t, void *arg) {
  brute *b = arg;
  const oee_list_query *q = b->q;
  if (q->status && t->snap->status != q->status) return;
  if (q->task_type && strcmp(q->task_type, t->snap->task_type) != 0) return;
  b->want[b->n++] = t->snap;
}

static void check_filters_against_brute_force(oee_store *s) {
  static const char *const filter_types[] = {NULL, "echo", "sleep", "exec", "none"};
  for (int st = 0; st < OEE_TASK_STATUS_COUNT; st++) {
    for (int ty = 0; ty < 5; ty++) {
      oee_list_query q = {.status = (oee_task_status)st, .task_type = filter_types[ty], .limit = 7};
      brute b = {&q, {0}, 0};
      s->ops->foreach (s, brute_visit, &b);
      size_t got = 0;
      for (;;) {
        oee_list_page p;
        assert_int_equal(s->ops->list(s, &q, &p), 0);
        assert_int_equal(p.total, b.n);
        for (size_t i = 0; i < p.len; i++) assert_ptr_equal(p.tasks[i], b.want[got++]);
        uint64_t next = p.next_index;
        oee_list_page_free(&p);
        if (next == 0) break;
        q.after_index = next;
      }
      assert_int_equal(got, b.n);
    }
  }
}

static void test_filtered_pages_match_brute_force(void **state) {
  (void)state;
  enum { N = 3000 };
  oee_task **t = calloc(N, sizeof(*t));
  static char ids[N][OEE_ID_LEN + 1];
  oee_store *s = filled(N, t);
  for (int i = 0; i < N; i++) memcpy(ids[i], t[i]->snap->id, sizeof(ids[i]));
  srand(17);
  for (int round = 0; round < 4; round++) {
    for (int k = 0; k < 1500; k++) {
      int i = rand() % N;
      if (t[i] == NULL) continue;
      oee_task_status st = t[i]->snap->status;
      if (st == OEE_TASK_QUEUED)
        move(s, t[i], rand() % 3 ? OEE_TASK_RUNNING : OEE_TASK_CANCELLED);
      else if (st == OEE_TASK_RUNNING)
        move(s, t[i], (oee_task_status)(OEE_TASK_DONE + rand() % 2));
    }
    check_filters_against_brute_force(s);
    /* Clearing leaves holes, and past a threshold compacts the order. */
    s->ops->clear_completed(s, rand() % 200, drop, NULL);
    for (int i = 0; i < N; i++) {
      if (t[i] && s->ops->lookup(s, ids[i]) == NULL) t[i] = NULL;
    }
    check_filters_against_brute_force(s);
  }
  s->ops->destroy(s, drop, NULL);
  free(t);
}

typedef struct recount {
  uint64_t by[OEE_TASK_STATUS_COUNT];
  uint64_t total;
} recount;

static void count_visit(oee_task *t, void *arg) {
  recount *r = arg;
  r->by[t->snap->status]++;
  r->total++;
}

static void test_counts_match_recount_after_random_ops(void **state) {
  (void)state;
  enum { N = 4000 };
  oee_task **t = calloc(N, sizeof(*t));
  static char ids[N][OEE_ID_LEN + 1];
  oee_store *s = oee__store_mem_create();
  srand(3);
  size_t made = 0;
  for (int step = 0; step < 20000; step++) {
    int op = rand() % 10;
    if (op < 3 && made < N) {
      t[made] = make_task(made + 1, types[rand() % 3]);
      memcpy(ids[made], t[made]->snap->id, sizeof(ids[made]));
      s->ops->insert(s, t[made]);
      made++;
    } else if (op < 9 && made > 0) {
      oee_task *x = t[rand() % made];
      if (x == NULL) continue;
      oee_task_status st = x->snap->status;
      if (st == OEE_TASK_QUEUED)
        move(s, x, rand() % 4 ? OEE_TASK_RUNNING : OEE_TASK_CANCELLED);
      else if (st == OEE_TASK_RUNNING)
        move(s, x, (oee_task_status)(OEE_TASK_DONE + rand() % 3));
    } else if (made > 0) {
      /* Forget the records of dropped tasks, found by their saved ids. */
      s->ops->clear_completed(s, rand() % 50, drop, NULL);
      for (size_t i = 0; i < made; i++) {
        if (t[i] && s->ops->lookup(s, ids[i]) == NULL) t[i] = NULL;
      }
    }
  }
  recount r = {{0}, 0};
  s->ops->foreach (s, count_visit, &r);
  uint64_t by[OEE_TASK_STATUS_COUNT], total;
  s->ops->counts(s, by, &total);
  assert_int_equal(total, r.total);
  for (int i = 0; i < OEE_TASK_STATUS_COUNT; i++) assert_int_equal(by[i], r.by[i]);
  for (int ty = 0; ty < 3; ty++) {
    oee_list_query q = {.task_type = types[ty], .status = OEE_TASK_DONE, .limit = N};
    oee_list_page p;
    s->ops->list(s, &q, &p);
    assert_int_equal(p.total, p.len);
    oee_list_page_free(&p);
  }
  s->ops->destroy(s, drop, NULL);
  free(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_lookup_any_case),
      cmocka_unit_test(test_lookup_ids_equal_but_tail),
      cmocka_unit_test(test_pages_cover_all_in_order),
      cmocka_unit_test(test_filters_and_totals),
      cmocka_unit_test(test_clear_keeps_newest_n),
      cmocka_unit_test(test_sparse_filter_finds_far_matches),
      cmocka_unit_test(test_filtered_pages_match_brute_force),
      cmocka_unit_test(test_counts_match_recount_after_random_ops),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
