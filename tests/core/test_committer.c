/* test_committer.c - group commit: every item's `done` runs once, in append
 * order; a failed write refuses new submissions and retries status changes
 * until they are stored. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "tests/core/testutil.h"

#include "core/committer.h"
#include "core/task.h"

#define PRODUCERS 4
#define PER_PRODUCER 5000

typedef struct probe {
  oee_commit_item item; /* first: the done callback casts back */
  int producer, n;
  int rc;
  int calls;
  char message[OEE_ERROR_MESSAGE_MAX];
} probe;

/* Written only by the committer thread (done), read after flush. */
static int order[PRODUCERS][PER_PRODUCER];
static int order_len[PRODUCERS];

static void on_done(oee_commit_item *item, int rc, const oee_error *err) {
  probe *p = (probe *)item;
  p->calls++;
  p->rc = rc;
  if (err) snprintf(p->message, sizeof(p->message), "%s", err->message);
  if (order_len[p->producer] < PER_PRODUCER) order[p->producer][order_len[p->producer]++] = p->n;
}

typedef struct producer {
  oee_committer *c;
  probe *probes;
  int id;
} producer;

static void *produce(void *arg) {
  producer *pr = arg;
  for (int i = 0; i < PER_PRODUCER; i++) {
    probe *p = &pr->probes[i];
    *p = (probe){.item = {.done = on_done}, .producer = pr->id, .n = i};
    oee_committer_append(pr->c, &p->item);
  }
  return NULL;
}

static void test_every_done_once_in_order(void **state) {
  (void)state;
  memset(order_len, 0, sizeof(order_len));
  oee_committer *c;
  assert_int_equal(oee_committer_create(NULL, 64, NULL, &c), 0);
  producer pr[PRODUCERS];
  pthread_t th[PRODUCERS];
  probe *all = calloc(PRODUCERS * PER_PRODUCER, sizeof(*all));
  for (int i = 0; i < PRODUCERS; i++) {
    pr[i] = (producer){c, all + i * PER_PRODUCER, i};
    assert_int_equal(pthread_create(&th[i], NULL, produce, &pr[i]), 0);
  }
  for (int i = 0; i < PRODUCERS; i++) pthread_join(th[i], NULL);
  oee_committer_flush(c);
  for (int i = 0; i < PRODUCERS * PER_PRODUCER; i++) {
    assert_int_equal(all[i].calls, 1);
    assert_int_equal(all[i].rc, 0);
  }
  for (int p = 0; p < PRODUCERS; p++) {
    assert_int_equal(order_len[p], PER_PRODUCER);
    for (int i = 0; i < PER_PRODUCER; i++) assert_int_equal(order[p][i], i);
  }
  oee_committer_stats st;
  oee_committer_stats_get(c, &st);
  assert_int_equal(st.items, PRODUCERS * PER_PRODUCER);
  assert_true(st.batches >= PRODUCERS * PER_PRODUCER / 64); /* max_batch held */
  oee_committer_destroy(c);
  free(all);
}

static oee_task_info *row(uint64_t index, oee_task_status st) {
  oee_task_info d = {0};
  snprintf(d.id, sizeof(d.id), "0190a1b2-c3d4-7e5f-8a9b-%012llx", (unsigned long long)index);
  d.name = "a name that takes some room in the page, to fill it sooner";
  d.task_type = "echo";
  d.status = st;
  d.worker_id = -1;
  d.submit_index = index;
  d.seq = index;
  return oee__snap_pack(&d);
}

static void test_full_disk_refuses_and_retries(void **state) {
  (void)state;
  char dir[256];
  assert_int_equal(tu_temp_dir(dir, sizeof(dir), "test-commit"), 0);
  oee_db_config cfg = {.dir = dir, .sync = OEE_DB_SYNC_NORMAL};
  oee_db *db;
  assert_int_equal(oee_db_open(&cfg, &db, NULL), 0);
  oee_committer *c;
  assert_int_equal(oee_committer_create(db, 0, NULL, &c), 0);
  /* Fill the file up to a cap, as a full disk would. */
  assert_int_equal(oee__db_sqlite_max_pages(db, 12), 0);
  oee_task_info *filler[400];
  probe fp[400];
  int refused = 0;
  for (int i = 0; i < 400; i++) {
    filler[i] = row((uint64_t)i + 1, OEE_TASK_QUEUED);
    fp[i] = (probe){.item = {.snap = filler[i], .done = on_done}};
    oee_committer_append(c, &fp[i].item);
    oee_committer_flush(c);
    if (fp[i].rc != 0) refused++;
  }
  assert_true(refused > 0);
  probe *last = &fp[399];
  assert_int_equal(last->calls, 1);
  assert_int_equal(last->rc, OEE_EIO);
  assert_non_null(strstr(last->message, "storage: "));
  assert_non_null(strstr(last->message, "full"));
  /* A change that must be stored (here one that needs new pages: a long
   * result) waits, then lands once room is back. */
  oee_task_info *change = row(1, OEE_TASK_DONE);
  oee_task_info d = *change;
  char *big = malloc(64 * 1024);
  memset(big, 'r', 64 * 1024 - 1);
  big[64 * 1024 - 1] = '\0';
  d.result = big;
  oee_task_info *packed = oee__snap_pack(&d); /* d borrows change's strings */
  oee_task_info_unref(change);
  change = packed;
  free(big);
  probe must = {.item = {.snap = change, .must_store = 1, .done = on_done}};
  oee_committer_append(c, &must.item);
  oee_committer_stats st0, st1;
  oee_committer_stats_get(c, &st0);
  do {
    oee_committer_stats_get(c, &st1); /* wait for a second failed attempt */
  } while (st1.failures < st0.failures + 2 && must.calls == 0);
  assert_int_equal(must.calls, 0); /* not refused, still pending */
  assert_int_equal(oee__db_sqlite_max_pages(db, 0), 0);
  oee_committer_flush(c);
  assert_int_equal(must.calls, 1);
  assert_int_equal(must.rc, 0);
  const oee_task_info *got;
  assert_int_equal(oee_db_get(db, change->id, &got, NULL), 0);
  assert_int_equal(got->status, OEE_TASK_DONE);
  assert_int_equal(strlen(got->result), 64 * 1024 - 1);
  oee_task_info_unref(got);
  oee_committer_destroy(c);
  oee_db_close(db);
  for (int i = 0; i < 400; i++) oee_task_info_unref(filler[i]);
  oee_task_info_unref(change);
  assert_int_equal(tu_remove_dir(dir), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_done_once_in_order),
      cmocka_unit_test(test_full_disk_refuses_and_retries),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
