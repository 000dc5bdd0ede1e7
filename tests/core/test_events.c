/* test_events.c - the event bus: filters, order, bounded rings, dropping a
 * slow subscriber without blocking the publisher. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <cmocka.h>

#include "core/events.h"
#include "core/internal.h"
#include "core/task.h"

static oee_task_info *snap(const char *id, const char *type, oee_task_status st, uint64_t seq) {
  oee_task_info d = {0};
  strcpy(d.id, id);
  d.task_type = type;
  d.status = st;
  d.seq = seq;
  return oee__snap_pack(&d);
}

#define ID_A "aaaaaaaa-0000-4000-8000-000000000001"
#define ID_B "bbbbbbbb-0000-4000-8000-000000000002"

static void publish(oee_bus *b, const char *id, const char *type, oee_task_status st,
                    uint64_t seq) {
  oee_task_info *s = snap(id, type, st, seq);
  oee__bus_publish(b, s);
  oee_task_info_unref(s);
}

static void test_filters_and_order(void **state) {
  (void)state;
  oee_bus *b;
  assert_int_equal(oee__bus_create(&b), 0);
  const char *ids[] = {"AAAAAAAA-0000-4000-8000-000000000001"};
  oee_task_status sts[] = {OEE_TASK_RUNNING, OEE_TASK_DONE};
  oee_sub_filter f = {.task_ids = ids, .n_task_ids = 1, .statuses = sts, .n_statuses = 2};
  oee_sub *all, *some;
  assert_int_equal(oee__bus_subscribe(b, NULL, 0, NULL, 0, &all), 0);
  assert_int_equal(oee__bus_subscribe(b, &f, 16, NULL, 0, &some), 0);
  uint64_t seq = 0;
  for (int st = OEE_TASK_QUEUED; st <= OEE_TASK_DONE; st++) {
    publish(b, ID_A, "echo", (oee_task_status)st, ++seq);
    publish(b, ID_B, "echo", (oee_task_status)st, ++seq);
  }
  const oee_task_info *ev;
  uint64_t last = 0;
  int n = 0;
  while (oee_sub_next(all, &ev) == 0) {
    assert_true(ev->seq > last);
    last = ev->seq;
    oee_task_info_unref(ev);
    n++;
  }
  assert_int_equal(n, 6);
  assert_int_equal(oee_sub_next(some, &ev), 0);
  assert_string_equal(ev->id, ID_A);
  assert_int_equal(ev->status, OEE_TASK_RUNNING);
  oee_task_info_unref(ev);
  assert_int_equal(oee_sub_next(some, &ev), 0);
  assert_int_equal(ev->status, OEE_TASK_DONE);
  oee_task_info_unref(ev);
  assert_int_equal(oee_sub_next(some, &ev), OEE_EAGAIN);
  oee_sub_free(all);
  oee_sub_free(some);
  oee__bus_destroy(b);
}

static void test_slow_subscriber_dropped_not_blocking(void **state) {
  (void)state;
  oee_bus *b;
  oee__bus_create(&b);
  oee_sub *slow, *fast;
  oee__bus_subscribe(b, NULL, 4, NULL, 0, &slow);
  oee__bus_subscribe(b, NULL, 1000, NULL, 0, &fast);
  /* 100 events into a ring of 4 that nobody reads: publish must return. */
  for (uint64_t i = 1; i <= 100; i++) publish(b, ID_A, "echo", OEE_TASK_QUEUED, i);
  oee__bus_flush(b); /* what the engine does once it released its lock */
  assert_int_equal(oee__bus_has_subscribers(b), 1); /* only `fast` is left */
  const oee_task_info *ev;
  for (uint64_t i = 1; i <= 4; i++) {
    assert_int_equal(oee_sub_next(slow, &ev), 0);
    assert_int_equal(ev->seq, i);
    oee_task_info_unref(ev);
  }
  assert_int_equal(oee_sub_next(slow, &ev), OEE_EOVERFLOW);
  assert_int_equal(oee_sub_next(slow, &ev), OEE_EOVERFLOW);
  assert_int_equal(oee_sub_pending(fast), 100);
  oee_sub_free(slow);
  oee_sub_free(fast);
  oee__bus_destroy(b);
}

static void test_initial_events_and_capacity(void **state) {
  (void)state;
  oee_bus *b;
  oee__bus_create(&b);
  oee_task_info *s1 = snap(ID_A, "echo", OEE_TASK_DONE, 7);
  const oee_task_info *init[] = {s1, s1, s1};
  oee_sub *sub;
  assert_int_equal(oee__bus_subscribe(b, NULL, 2, init, 3, &sub), OEE_EOVERFLOW);
  assert_int_equal(oee__bus_subscribe(b, NULL, 3, init, 3, &sub), 0);
  oee_task_info_unref(s1); /* the ring holds its own references */
  const oee_task_info *ev;
  assert_int_equal(oee_sub_next(sub, &ev), 0);
  assert_int_equal(ev->seq, 7);
  oee_task_info_unref(ev);
  oee_sub_free(sub); /* frees the two left in the ring */
  oee__bus_destroy(b);
}

typedef struct waiter {
  oee_sub *sub;
  int rc;
} waiter;

static void *wait_main(void *arg) {
  waiter *w = arg;
  const oee_task_info *ev;
  w->rc = oee_sub_wait(w->sub, &ev, 5000);
  if (w->rc == 0) oee_task_info_unref(ev);
  return NULL;
}

static void test_wait_wakes_on_event_close_and_timeout(void **state) {
  (void)state;
  oee_bus *b;
  oee__bus_create(&b);
  oee_sub *sub;
  oee__bus_subscribe(b, NULL, 8, NULL, 0, &sub);
  const oee_task_info *ev;
  assert_int_equal(oee_sub_wait(sub, &ev, 20), OEE_ETIMEDOUT);
  waiter w = {sub, 99};
  pthread_t th;
  pthread_create(&th, NULL, wait_main, &w);
  publish(b, ID_A, "echo", OEE_TASK_QUEUED, 1);
  pthread_join(th, NULL);
  assert_int_equal(w.rc, 0);
  w.rc = 99;
  pthread_create(&th, NULL, wait_main, &w);
  oee_sub_close(sub);
  pthread_join(th, NULL);
  assert_int_equal(w.rc, OEE_ECLOSED);
  assert_int_equal(oee__bus_has_subscribers(b), 0);
  oee_sub_free(sub);
  oee__bus_destroy(b);
}

/* More events than the bus log holds, with nobody flushing: the publisher
 * that finds the log full delivers it itself, in order, and the bounds per
 * subscriber still hold. */
static void test_full_log_delivered_by_publisher(void **state) {
  (void)state;
  oee_bus *b;
  assert_int_equal(oee__bus_create(&b), 0);
  oee_sub *slow, *fast;
  assert_int_equal(oee__bus_subscribe(b, NULL, 4, NULL, 0, &slow), 0);
  assert_int_equal(oee__bus_subscribe(b, NULL, 5000, NULL, 0, &fast), 0);
  for (uint64_t i = 1; i <= 5000; i++) publish(b, ID_A, "echo", OEE_TASK_QUEUED, i);
  const oee_task_info *ev;
  for (uint64_t i = 1; i <= 5000; i++) {
    assert_int_equal(oee_sub_next(fast, &ev), 0);
    assert_int_equal(ev->seq, i);
    oee_task_info_unref(ev);
  }
  assert_int_equal(oee_sub_next(fast, &ev), OEE_EAGAIN);
  assert_int_equal(oee_sub_pending(slow), 4);
  assert_int_equal(oee_sub_dropped(slow), 1);
  oee_sub_free(slow);
  oee_sub_free(fast);
  oee__bus_destroy(b);
}

/* A subscriber attached after some events were logged but not yet
 * delivered skips those at or below its starting seq. */
static void test_attach_skips_older_logged_events(void **state) {
  (void)state;
  oee_bus *b;
  assert_int_equal(oee__bus_create(&b), 0);
  oee_sub *first, *late;
  assert_int_equal(oee__bus_subscribe(b, NULL, 16, NULL, 0, &first), 0);
  publish(b, ID_A, "echo", OEE_TASK_QUEUED, 1);
  publish(b, ID_A, "echo", OEE_TASK_RUNNING, 2);
  assert_int_equal(oee__sub_create(b, NULL, 16, &late), 0);
  assert_int_equal(oee__bus_attach(b, late, NULL, 0, 2), 0);
  publish(b, ID_A, "echo", OEE_TASK_DONE, 3);
  assert_int_equal(oee_sub_pending(first), 3);
  const oee_task_info *ev;
  assert_int_equal(oee_sub_next(late, &ev), 0);
  assert_int_equal(ev->seq, 3);
  oee_task_info_unref(ev);
  assert_int_equal(oee_sub_next(late, &ev), OEE_EAGAIN);
  oee_sub_free(first);
  oee_sub_free(late);
  oee__bus_destroy(b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_filters_and_order),
      cmocka_unit_test(test_slow_subscriber_dropped_not_blocking),
      cmocka_unit_test(test_initial_events_and_capacity),
      cmocka_unit_test(test_wait_wakes_on_event_close_and_timeout),
      cmocka_unit_test(test_full_log_delivered_by_publisher),
      cmocka_unit_test(test_attach_skips_older_logged_events),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
