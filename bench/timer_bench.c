/*
 * timer_bench.c - what waiting tasks cost and how precisely they start, in
 * process (memory store):
 *  - idle: N SCHEDULED tasks (run_at an hour away) and nothing else; the
 *    process's CPU time over IDLE_SECONDS, as a share of one core;
 *  - submit: no-op submissions per second with those N tasks waiting,
 *    against a fresh engine with none, in the same run;
 *  - lateness: with N tasks waiting far away, LATE_TASKS tasks whose run_at
 *    falls over the next second: start time minus run_at, p50/p99/max;
 *  - retry: on a fresh engine with R tasks SCHEDULED an hour ahead,
 *    RETRIES tasks whose executor fails attempt 1 (a retryable failure)
 *    and succeeds attempt 2, max_attempts 2, backoff RETRY_BACKOFF s (so
 *    each waits 0.5..1 x that, the contract's jitter): the start of attempt
 *    2 minus the due time the retry was scheduled for (the run_at of the
 *    task's SCHEDULED change), p50/p99/max.
 *
 * Prints "RESULT timer.<case> ..." lines (figures only).
 * Usage: timer_bench [--waiting N] [--retry-waiting R]
 *        (defaults 1,000,000 and 100,000)
 */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "core/oee.h"

#define IDLE_SECONDS 3
#define SUBMITS 200000
#define LATE_TASKS 2000
#define RETRIES 2000
#define RETRY_BACKOFF 2.0 /* seconds: the 2,000 retries fall due over ~1 s */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void die(const char *what, const oee_error *err) {
  fprintf(stderr, "timer_bench: %s: %s\n", what, err ? err->message : "");
  exit(1);
}

static void run_noop(oee_job *job, void *ud) {
  (void)ud;
  oee_job_succeed(job, "");
}

/* Fails the first attempt (retried after the backoff), succeeds the next. */
static void run_flaky(oee_job *job, void *ud) {
  (void)ud;
  if (oee_job_attempt(job) == 1) {
    oee_job_fail(job, "the first attempt fails");
  } else {
    oee_job_succeed(job, "");
  }
}

static oee_engine *engine(void) {
  oee_engine_config cfg = {.num_workers = 2};
  oee_engine *eng;
  oee_error err;
  if (oee_engine_open(&cfg, &eng, &err) != 0) die("open", &err);
  if (oee_engine_register(eng, "noop", run_noop, NULL) != 0) die("register", NULL);
  if (oee_engine_register(eng, "flaky", run_flaky, NULL) != 0) die("register", NULL);
  if (oee_engine_start(eng) != 0) die("start", NULL);
  return eng;
}

static atomic_long refused;

static void ack(void *arg, int rc, const oee_task_info *t, const oee_error *err) {
  (void)arg;
  (void)t;
  (void)err;
  if (rc != 0) atomic_fetch_add(&refused, 1);
}

static void submit(oee_engine *eng, int64_t run_at_ns) {
  oee_submit req = {.name = "t",
                    .task_type = "noop",
                    .priority = 5,
                    .has_run_at = run_at_ns != 0,
                    .run_at_ns = run_at_ns};
  oee_error err;
  if (oee_engine_submit_async(eng, &req, ack, NULL, &err) != 0) die("submit", &err);
}

/* Submissions per second of immediate no-op tasks. */
static double submit_rate(oee_engine *eng) {
  oee_submit req = {.name = "s", .task_type = "noop", .priority = 5};
  oee_error err;
  double t0 = now_s();
  for (int i = 0; i < SUBMITS; i++) {
    if (oee_engine_submit_async(eng, &req, ack, NULL, &err) != 0) die("submit", &err);
  }
  double secs = now_s() - t0;
  if (atomic_load(&refused) != 0) die("a submission failed", NULL);
  return SUBMITS / secs;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Submits RETRIES flaky tasks, each with its index in its context. */
static void submit_flaky(oee_engine *eng) {
  for (int i = 0; i < RETRIES; i++) {
    char idx[16];
    snprintf(idx, sizeof(idx), "%d", i);
    oee_kv ctx[] = {{"i", idx}};
    oee_submit req = {.name = "r",
                      .task_type = "flaky",
                      .priority = 5,
                      .context = ctx,
                      .context_len = 1,
                      .max_attempts = 2,
                      .has_backoff = 1,
                      .backoff_seconds = RETRY_BACKOFF,
                      .has_max_backoff = 1,
                      .max_backoff_seconds = RETRY_BACKOFF};
    oee_error err;
    if (oee_engine_submit_async(eng, &req, ack, NULL, &err) != 0) die("submit", &err);
  }
}

/* Attempt 2's start minus its due time, in ms, for every retry (late[],
 * RETRIES entries), from the flaky tasks' SCHEDULED and RUNNING changes. */
static void retry_starts(oee_sub *sub, double *late) {
  int64_t *due = calloc(RETRIES, sizeof(*due));
  if (due == NULL) die("out of memory", NULL);
  for (int n = 0; n < RETRIES;) {
    const oee_task_info *ev;
    if (oee_sub_wait(sub, &ev, 30000) != 0) die("a retry did not start", NULL);
    int i = atoi(oee_task_info_context(ev, "i"));
    if (ev->status == OEE_TASK_SCHEDULED) {
      due[i] = ev->run_at_ns; /* when the retry was scheduled to start */
    } else if (ev->attempt == 2) {
      if (due[i] == 0) die("a retry started before it was scheduled", NULL);
      late[n++] = (double)(ev->started_at_ns - due[i]) / 1e6;
    }
    oee_task_info_unref(ev);
  }
  free(due);
}

/* Scheduled retries among `waiting` tasks SCHEDULED an hour ahead. */
static void retry_lateness(long waiting) {
  oee_engine *eng = engine();
  int64_t far = oee_now_ns() + 3600LL * 1000000000LL;
  for (long i = 0; i < waiting; i++) submit(eng, far + i);
  static const oee_task_status st[] = {OEE_TASK_SCHEDULED, OEE_TASK_RUNNING};
  static const char *const types[] = {"flaky"};
  oee_sub_filter f = {.statuses = st, .n_statuses = 2, .task_types = types, .n_task_types = 1};
  oee_sub *sub;
  if (oee_engine_subscribe(eng, &f, RETRIES * 4, 0, &sub) != 0) die("subscribe", NULL);
  submit_flaky(eng);
  double *late = malloc(RETRIES * sizeof(*late));
  if (late == NULL) die("out of memory", NULL);
  retry_starts(sub, late);
  qsort(late, RETRIES, sizeof(*late), cmp_double);
  oee_status status;
  if (oee_engine_status(eng, &status) != 0) die("status", NULL);
  printf(
      "RESULT timer.retry waiting=%ld retries=%d backoff_s=%.1f scheduled_at_end=%llu "
      "p50_ms=%.3f p99_ms=%.3f max_ms=%.3f\n",
      waiting, RETRIES, RETRY_BACKOFF, (unsigned long long)status.by_status[OEE_TASK_SCHEDULED],
      late[RETRIES / 2], late[(RETRIES * 99) / 100], late[RETRIES - 1]);
  oee_status_free(&status);
  free(late);
  oee_sub_free(sub);
  oee_engine_destroy(eng);
}

int main(int argc, char **argv) {
  long waiting = 1000000, retry_waiting = 100000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--waiting") == 0) waiting = atol(argv[i + 1]);
    if (strcmp(argv[i], "--retry-waiting") == 0) retry_waiting = atol(argv[i + 1]);
  }
  /* Idle: N tasks wait an hour. */
  oee_engine *eng = engine();
  int64_t far = oee_now_ns() + 3600LL * 1000000000LL;
  for (long i = 0; i < waiting; i++) submit(eng, far + i);
  double c0 = cpu_s(), t0 = now_s();
  sleep(IDLE_SECONDS);
  double cpu = (cpu_s() - c0) / (now_s() - t0);
  printf("RESULT timer.idle waiting=%ld seconds=%d cpu_share=%.4f\n", waiting, IDLE_SECONDS, cpu);

  /* Submissions beside them, then against an empty engine. */
  double busy = submit_rate(eng);
  oee_engine *empty = engine();
  double base = submit_rate(empty);
  oee_engine_destroy(empty);
  printf("RESULT timer.submit waiting=%ld rate=%.0f empty_rate=%.0f ratio=%.3f\n", waiting, busy,
         base, busy / base);

  /* Lateness of LATE_TASKS due over the next second, among the waiting. */
  oee_sub *sub;
  static const oee_task_status running[] = {OEE_TASK_RUNNING};
  oee_sub_filter f = {.statuses = running, .n_statuses = 1};
  if (oee_engine_subscribe(eng, &f, LATE_TASKS * 2, 0, &sub) != 0) die("subscribe", NULL);
  int64_t start = oee_now_ns() + 100000000LL;
  for (int i = 0; i < LATE_TASKS; i++) {
    submit(eng, start + (int64_t)i * (1000000000LL / LATE_TASKS));
  }
  double *late = malloc(LATE_TASKS * sizeof(*late));
  int n = 0;
  while (n < LATE_TASKS) {
    const oee_task_info *ev;
    if (oee_sub_wait(sub, &ev, 10000) != 0) die("a scheduled task did not start", NULL);
    if (ev->run_at_ns != 0 && ev->run_at_ns < far) {
      late[n++] = (double)(ev->started_at_ns - ev->run_at_ns) / 1e6;
    }
    oee_task_info_unref(ev);
  }
  qsort(late, (size_t)n, sizeof(*late), cmp_double);
  printf("RESULT timer.lateness waiting=%ld tasks=%d p50_ms=%.3f p99_ms=%.3f max_ms=%.3f\n",
         waiting, n, late[n / 2], late[(n * 99) / 100], late[n - 1]);
  free(late);
  oee_sub_free(sub);
  oee_engine_destroy(eng);

  /* Retries, on their own engine with the target's 100,000 waiting. */
  retry_lateness(retry_waiting);
  return 0;
}
