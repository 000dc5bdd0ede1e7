/*
 * fill_store.c - makes a data directory for the start-up benchmark: an
 * oee.db holding --tasks stored tasks, of which --queued are QUEUED and the
 * rest finished (one in a hundred ERROR through the built-in `fail` type,
 * the others DONE through `echo`), written through the core API with
 * `sync: normal` (the fastest way to get there; the server that opens the
 * directory afterwards may use any sync).
 *
 * The tasks to finish are submitted first and then run by --workers threads
 * (default 64: a durable worker waits for its task's RUNNING change to be
 * stored, so many workers share each commit); the engine is then stopped and
 * reopened without starting its workers, and the queued tasks are submitted
 * to it, so they stay QUEUED in the file.
 *
 * The directory may already hold tasks: these are added.
 *
 * Prints "RESULT <label> tasks=.. finished=.. queued=.. seconds=.. rate=..".
 * Usage: fill_store --dir DIR [--tasks N] [--queued Q] [--workers W]
 *                   [--label L]
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/oee.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const oee_error *err) {
  fprintf(stderr, "fill_store: %s%s%s\n", what, err ? ": " : "", err ? err->message : "");
  exit(1);
}

static atomic_long acked, refused;

static void on_ack(void *arg, int rc, const oee_task_info *t, const oee_error *err) {
  (void)arg;
  (void)t;
  (void)err;
  atomic_fetch_add(rc == 0 ? &acked : &refused, 1);
}

/* Submits n tasks without waiting for each and returns once every one is
 * acknowledged (stored). Every 100th is a `fail` task when `with_errors`. */
static void submit_n(oee_engine *eng, long n, int with_errors) {
  oee_kv kv = {"message", "a payload of some forty bytes, like a job"};
  oee_submit req = {.name = "bench-task", .context = &kv, .context_len = 1};
  oee_error err;
  atomic_store(&acked, 0);
  atomic_store(&refused, 0);
  for (long i = 0; i < n; i++) {
    req.task_type = with_errors && i % 100 == 99 ? "fail" : "echo";
    req.priority = (int)(i % (OEE_PRIORITY_MAX + 1));
    if (oee_engine_submit_async(eng, &req, on_ack, NULL, &err) != 0) die("submit", &err);
  }
  while (atomic_load(&acked) + atomic_load(&refused) < n) usleep(1000);
  if (atomic_load(&refused) > 0) die("the store refused submissions", NULL);
}

/* Finished tasks in the engine (DONE + ERROR + CANCELLED). */
static unsigned long long finished(oee_engine *eng) {
  oee_status st;
  if (oee_engine_status(eng, &st) != 0) die("status", NULL);
  unsigned long long n =
      st.by_status[OEE_TASK_DONE] + st.by_status[OEE_TASK_ERROR] + st.by_status[OEE_TASK_CANCELLED];
  oee_status_free(&st);
  return n;
}

static oee_engine *open_store(const char *dir, int workers) {
  oee_engine_config cfg = {.num_workers = workers, .data_dir = dir, .sync_normal = 1};
  oee_engine *eng;
  oee_error err;
  if (oee_engine_open(&cfg, &eng, &err) != 0) die("open", &err);
  return eng;
}

int main(int argc, char **argv) {
  const char *dir = NULL, *label = "store.fill";
  long n = 1000000, queued = 100000;
  int workers = 64;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--dir") == 0) dir = argv[i + 1];
    if (strcmp(argv[i], "--tasks") == 0) n = atol(argv[i + 1]);
    if (strcmp(argv[i], "--queued") == 0) queued = atol(argv[i + 1]);
    if (strcmp(argv[i], "--workers") == 0) workers = atoi(argv[i + 1]);
    if (strcmp(argv[i], "--label") == 0) label = argv[i + 1];
  }
  if (dir == NULL || n < 1 || queued < 0 || queued > n || workers < 1) {
    die("usage: fill_store --dir DIR [--tasks N] [--queued Q] [--workers W] [--label L]", NULL);
  }
  double t0 = now_s();
  oee_engine *eng;
  if (n > queued) {
    eng = open_store(dir, workers);
    unsigned long long before = finished(eng); /* a directory may be added to */
    submit_n(eng, n - queued, 1);
    if (oee_engine_start(eng) != 0) die("start", NULL);
    while (finished(eng) < before + (unsigned long long)(n - queued)) usleep(10000);
    oee_engine_stop(eng, -1);
    oee_engine_destroy(eng);
  }
  eng = open_store(dir, 1); /* not started: what is submitted stays QUEUED */
  submit_n(eng, queued, 0);
  oee_engine_destroy(eng);
  double secs = now_s() - t0;
  printf("RESULT %s tasks=%ld finished=%ld queued=%ld seconds=%.3f rate=%.0f\n", label, n,
         n - queued, queued, secs, (double)n / secs);
  return 0;
}
