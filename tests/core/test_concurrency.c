/* test_concurrency.c - 4 submitter threads x 10,000 tasks with random
 * cancels on 3 workers: every task ends in exactly one terminal state, its
 * events arrive in lifecycle order, and every count adds up. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <time.h>
#include <cmocka.h>

#include "core/oee.h"

enum { SUBMITTERS = 4, PER_THREAD = 10000, TOTAL = SUBMITTERS * PER_THREAD };

typedef struct submitter {
  oee_engine *eng;
  unsigned seed;
  char (*ids)[OEE_ID_LEN + 1]; /* PER_THREAD slots of its own */
  int cancels;
  /* The first failure, checked by the main thread after the join (cmocka
   * may only assert on the test's own thread). */
  int submit_rc, cancel_rc;
} submitter;

static void *submit_main(void *arg) {
  submitter *s = arg;
  for (int i = 0; i < PER_THREAD; i++) {
    int r = rand_r(&s->seed);
    oee_kv kv = {"message", "m"};
    oee_submit req = {.name = "load",
                      .task_type = r % 7 ? "echo" : "fail",
                      .priority = r % 11,
                      .context = &kv,
                      .context_len = 1};
    const oee_task_info *t;
    if ((s->submit_rc = oee_engine_submit(s->eng, &req, &t, NULL)) != 0) break;
    memcpy(s->ids[i], t->id, OEE_ID_LEN + 1);
    oee_task_info_unref(t);
    if (r % 4 == 0) {
      int victim = rand_r(&s->seed) % (i + 1), did = 0;
      if ((s->cancel_rc = oee_engine_cancel(s->eng, s->ids[victim], &did, NULL)) != 0) break;
      s->cancels += did;
    }
  }
  return NULL;
}

/* Per task: how many events of each status the watcher saw, in order. */
typedef struct seen {
  char id[OEE_ID_LEN + 1];
  int events;
  oee_task_status last;
  int terminal;
} seen;

static int cmp_seen(const void *a, const void *b) {
  return strcmp(((const seen *)a)->id, ((const seen *)b)->id);
}

typedef struct watcher {
  oee_sub *sub;
  seen *by_event; /* filled in arrival order, then sorted */
  size_t n;
  uint64_t last_seq;
  int terminal;
  int wait_rc;      /* the last oee_sub_wait() result */
  int out_of_order; /* events whose seq did not increase */
} watcher;

static void *watch_main(void *arg) {
  watcher *w = arg;
  /* Events are stored in a log; folded per task after the run. */
  while (w->terminal < TOTAL) {
    const oee_task_info *ev;
    w->wait_rc = oee_sub_wait(w->sub, &ev, 30000);
    if (w->wait_rc != 0) break;
    w->out_of_order += ev->seq <= w->last_seq;
    w->last_seq = ev->seq;
    seen *s = &w->by_event[w->n++];
    memcpy(s->id, ev->id, sizeof(s->id));
    s->last = ev->status;
    w->terminal += oee_task_status_is_terminal(ev->status);
    oee_task_info_unref(ev);
  }
  return NULL;
}

static int status_rank(oee_task_status s) {
  return s == OEE_TASK_QUEUED ? 0 : s == OEE_TASK_RUNNING ? 1 : 2;
}

/* Folds the event log per task (stable sort keeps arrival order per id). */
static void check_event_log(watcher *w) {
  for (size_t i = 0; i < w->n; i++) w->by_event[i].events = (int)i;
  /* Sort by id, then by arrival index to keep per-task order. */
  qsort(w->by_event, w->n, sizeof(seen), cmp_seen);
  size_t tasks = 0;
  for (size_t i = 0; i < w->n;) {
    size_t j = i;
    while (j < w->n && strcmp(w->by_event[j].id, w->by_event[i].id) == 0) j++;
    /* Restore arrival order inside the group. */
    for (size_t a = i; a < j; a++) {
      for (size_t b = a + 1; b < j; b++) {
        if (w->by_event[b].events < w->by_event[a].events) {
          seen tmp = w->by_event[a];
          w->by_event[a] = w->by_event[b];
          w->by_event[b] = tmp;
        }
      }
    }
    assert_int_equal(w->by_event[i].last, OEE_TASK_QUEUED);
    int terminals = 0;
    for (size_t k = i; k < j; k++) {
      if (k > i)
        assert_true(status_rank(w->by_event[k].last) > status_rank(w->by_event[k - 1].last));
      terminals += oee_task_status_is_terminal(w->by_event[k].last);
    }
    assert_int_equal(terminals, 1);
    tasks++;
    i = j;
  }
  assert_int_equal(tasks, TOTAL);
}

static void test_many_submitters_random_cancels(void **state) {
  (void)state;
  oee_engine_config cfg = {.num_workers = 3};
  oee_engine *eng;
  assert_int_equal(oee_engine_create(&cfg, &eng), 0);
  watcher w = {0};
  w.by_event = calloc(3 * TOTAL, sizeof(seen));
  assert_int_equal(oee_engine_subscribe(eng, NULL, 3 * TOTAL, 0, &w.sub), 0);
  pthread_t wt;
  pthread_create(&wt, NULL, watch_main, &w);
  assert_int_equal(oee_engine_start(eng), 0);
  static char ids[TOTAL][OEE_ID_LEN + 1];
  submitter subs[SUBMITTERS];
  pthread_t th[SUBMITTERS];
  for (int i = 0; i < SUBMITTERS; i++) {
    subs[i] = (submitter){eng, 1000u + (unsigned)i, &ids[i * PER_THREAD], 0, 0, 0};
    pthread_create(&th[i], NULL, submit_main, &subs[i]);
  }
  int cancels = 0, failed_rc = 0;
  for (int i = 0; i < SUBMITTERS; i++) {
    pthread_join(th[i], NULL);
    cancels += subs[i].cancels;
    if (subs[i].submit_rc != 0) failed_rc = subs[i].submit_rc;
    if (subs[i].cancel_rc != 0) failed_rc = subs[i].cancel_rc;
  }
  if (failed_rc != 0) oee_sub_close(w.sub); /* the watcher would wait forever */
  pthread_join(wt, NULL);
  for (int i = 0; i < SUBMITTERS; i++) {
    assert_int_equal(subs[i].submit_rc, 0);
    assert_int_equal(subs[i].cancel_rc, 0);
  }
  assert_int_equal(w.wait_rc, 0);
  assert_int_equal(w.out_of_order, 0);
  assert_int_equal(w.terminal, TOTAL);
  assert_int_equal(oee_engine_stop(eng, 10000), 0);

  oee_status st;
  oee_engine_status(eng, &st);
  assert_int_equal(st.total_tasks, TOTAL);
  assert_int_equal(st.queue_size, 0);
  assert_int_equal(st.by_status[OEE_TASK_QUEUED] + st.by_status[OEE_TASK_RUNNING], 0);
  assert_int_equal(
      st.by_status[OEE_TASK_DONE] + st.by_status[OEE_TASK_ERROR] + st.by_status[OEE_TASK_CANCELLED],
      TOTAL);
  /* Every successful cancel of a queued/running task was honoured by the
   * built-in executors (echo/fail finish too fast to see a running cancel,
   * so a cancelled count can be at most the cancels reported). */
  assert_true(st.by_status[OEE_TASK_CANCELLED] <= (uint64_t)cancels);
  assert_true(st.by_status[OEE_TASK_CANCELLED] > 0);
  uint64_t done = 0, failed = 0;
  for (int i = 0; i < st.num_workers; i++) {
    done += st.workers[i].tasks_completed;
    failed += st.workers[i].tasks_failed;
  }
  assert_int_equal(done, st.by_status[OEE_TASK_DONE]);
  assert_int_equal(failed, st.by_status[OEE_TASK_ERROR]);
  oee_status_free(&st);

  /* Each id: exactly one terminal state, recounted one by one. */
  uint64_t recount[OEE_TASK_STATUS_COUNT] = {0};
  for (int i = 0; i < TOTAL; i++) {
    const oee_task_info *t;
    assert_int_equal(oee_engine_get(eng, ids[i], &t), 0);
    assert_true(oee_task_status_is_terminal(t->status));
    recount[t->status]++;
    oee_task_info_unref(t);
  }
  oee_engine_status(eng, &st);
  for (int s = 0; s < OEE_TASK_STATUS_COUNT; s++) assert_int_equal(recount[s], st.by_status[s]);
  oee_status_free(&st);
  check_event_log(&w);
  oee_sub_free(w.sub);
  free(w.by_event);
  oee_engine_destroy(eng);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_many_submitters_random_cancels),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
