/*
 * durable_bench.c - the durable engine in-process: acknowledged submissions
 * per second through group commit (sync full, then normal) beside the memory
 * store in the same run, and the time to open a database of N stored tasks
 * (recovery at start).
 *
 * Prints "RESULT core.durable.<case> ..." lines (figures only).
 * Usage: durable_bench [--tasks N] [--dir DIR]
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

static atomic_long acked, failed;

static void on_ack(void *arg, int rc, const oee_task_info *t, const oee_error *err) {
  (void)arg;
  (void)t;
  (void)err;
  if (rc == 0)
    atomic_fetch_add(&acked, 1);
  else
    atomic_fetch_add(&failed, 1);
}

static void die(const char *what, const oee_error *err) {
  fprintf(stderr, "durable_bench: %s: %s\n", what, err ? err->message : "");
  exit(1);
}

/* Submits n no-op tasks without waiting and times until all are acknowledged. */
static double submit_all(oee_engine *eng, long n) {
  oee_kv kv = {"message", "a payload of some forty bytes, like a job"};
  oee_submit req = {
      .name = "bench", .task_type = "echo", .priority = 5, .context = &kv, .context_len = 1};
  atomic_store(&acked, 0);
  atomic_store(&failed, 0);
  double t0 = now_s();
  oee_error err;
  for (long i = 0; i < n; i++) {
    req.priority = (int)(i % 11);
    if (oee_engine_submit_async(eng, &req, on_ack, NULL, &err) != 0) die("submit", &err);
  }
  while (atomic_load(&acked) + atomic_load(&failed) < n) usleep(200);
  return now_s() - t0;
}

static void run_case(const char *label, const char *dir, int sync_normal, long n) {
  oee_engine_config cfg = {.num_workers = 1, .data_dir = dir, .sync_normal = sync_normal};
  oee_engine *eng;
  oee_error err;
  if (oee_engine_open(&cfg, &eng, &err) != 0) die("open", &err);
  double secs = submit_all(eng, n); /* not started: the tasks stay queued */
  printf("RESULT core.durable.%s tasks=%ld seconds=%.3f rate=%.0f failed=%ld\n", label, n, secs,
         (double)n / secs, atomic_load(&failed));
  fflush(stdout);
  oee_engine_destroy(eng);
}

/* A new empty directory under `base` (mkdtemp; its template's six letters
 * are written by memset); exits on failure. */
static void temp_dir(char *out, size_t cap, const char *base) {
  int n = snprintf(out, cap, "%s/oee-durable-bench-", base);
  if (n < 0 || (size_t)n + 7 > cap) die("data directory path too long", NULL);
  memset(out + n, 'X', 6);
  out[n + 6] = '\0';
  if (mkdtemp(out) == NULL) die("mkdtemp", NULL);
}

static int remove_dir(const char *dir) {
  char cmd[300];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  return system(cmd) == 0 ? 0 : -1;
}

int main(int argc, char **argv) {
  long n = 200000;
  const char *base = "/tmp";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--tasks") == 0) n = atol(argv[i + 1]);
    if (strcmp(argv[i], "--dir") == 0) base = argv[i + 1];
  }
  char dir[256];
  temp_dir(dir, sizeof(dir), base);
  run_case("memory", NULL, 0, n);
  run_case("full", dir, 0, n);
  /* Recovery at start with what the full case stored. */
  double t0 = now_s();
  oee_engine_config cfg = {.num_workers = 1, .data_dir = dir};
  oee_engine *eng;
  oee_error err;
  if (oee_engine_open(&cfg, &eng, &err) != 0) die("reopen", &err);
  double open_s = now_s() - t0;
  oee_recovery rec;
  oee_engine_recovery(eng, &rec);
  printf("RESULT core.durable.open tasks=%llu seconds=%.3f\n", (unsigned long long)rec.queued,
         open_s);
  oee_engine_destroy(eng);
  if (remove_dir(dir) != 0) return 1;
  temp_dir(dir, sizeof(dir), base);
  run_case("normal", dir, 1, n);
  return remove_dir(dir) == 0 ? 0 : 1;
}
