/* test_heap.c - the binary heap: order, FIFO ties via the caller's less,
 * positions kept current, removal from the middle. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "core/heap.h"

typedef struct item {
  int prio;
  unsigned seq;
  size_t pos;
} item;

static int less(const void *a, const void *b) {
  const item *x = a, *y = b;
  if (x->prio != y->prio) return x->prio > y->prio;
  return x->seq < y->seq;
}

static void setpos(void *e, size_t pos) { ((item *)e)->pos = pos; }

static void check_positions(const oee_heap *h) {
  for (size_t i = 0; i < h->len; i++) {
    assert_int_equal(((item *)h->items[i])->pos, i);
  }
}

static void test_pop_order_priority_then_fifo(void **state) {
  (void)state;
  enum { N = 5000 };
  item *items = calloc(N, sizeof(*items));
  oee_heap h;
  oee_heap_init(&h, less, setpos);
  srand(7);
  for (unsigned i = 0; i < N; i++) {
    items[i].prio = rand() % 11;
    items[i].seq = i;
    assert_int_equal(oee_heap_push(&h, &items[i]), 0);
  }
  check_positions(&h);
  item *prev = oee_heap_pop(&h);
  assert_int_equal(prev->pos, OEE_HEAP_NONE);
  for (unsigned i = 1; i < N; i++) {
    item *it = oee_heap_pop(&h);
    assert_non_null(it);
    assert_true(it->prio < prev->prio || (it->prio == prev->prio && it->seq > prev->seq));
    prev = it;
  }
  assert_null(oee_heap_pop(&h));
  oee_heap_fini(&h);
  free(items);
}

static void test_remove_middle_keeps_heap(void **state) {
  (void)state;
  enum { N = 2000 };
  item *items = calloc(N, sizeof(*items));
  oee_heap h;
  oee_heap_init(&h, less, setpos);
  srand(11);
  for (unsigned i = 0; i < N; i++) {
    items[i] = (item){rand() % 11, i, 0};
    oee_heap_push(&h, &items[i]);
  }
  /* Remove every third item by its stored position. */
  for (unsigned i = 0; i < N; i += 3) {
    assert_ptr_equal(oee_heap_remove(&h, items[i].pos), &items[i]);
    assert_int_equal(items[i].pos, OEE_HEAP_NONE);
    check_positions(&h);
  }
  item *prev = NULL;
  size_t count = 0;
  item *it;
  while ((it = oee_heap_pop(&h)) != NULL) {
    assert_int_not_equal(it->seq % 3, 0);
    if (prev) assert_true(less(prev, it));
    prev = it;
    count++;
  }
  assert_int_equal(count, N - (N + 2) / 3);
  oee_heap_fini(&h);
  free(items);
}

static void test_remove_out_of_range(void **state) {
  (void)state;
  oee_heap h;
  oee_heap_init(&h, less, setpos);
  item a = {1, 0, 0};
  assert_null(oee_heap_remove(&h, 0));
  oee_heap_push(&h, &a);
  assert_null(oee_heap_remove(&h, 1));
  assert_null(oee_heap_remove(&h, OEE_HEAP_NONE));
  assert_ptr_equal(oee_heap_peek(&h), &a);
  oee_heap_fini(&h);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pop_order_priority_then_fifo),
      cmocka_unit_test(test_remove_middle_keeps_heap),
      cmocka_unit_test(test_remove_out_of_range),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
