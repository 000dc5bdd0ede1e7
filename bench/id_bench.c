/*
 * id_bench.c - task id generation per second, in one run: the UUID v7
 * generator of core/id.c against libuuid's uuid_generate_random() +
 * uuid_unparse_lower() (what core/task.c called before), both producing the
 * 36-character text, one thread each in turn, then the v7 generator from
 * several threads at once.
 *
 * Prints one "RESULT core.ids ..." line (figures only; nothing is asserted).
 * Usage: id_bench [--ids N] [--threads T]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uuid/uuid.h>

#include "core/id.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Written after each loop so the compiler keeps the work. */
static volatile char sink;

static void *run_v7(void *arg) {
  long n = *(const long *)arg;
  char out[OEE_ID_LEN + 1];
  for (long i = 0; i < n; i++) oee__id_new(out);
  sink = out[35];
  return NULL;
}

static void *run_libuuid(void *arg) {
  long n = *(const long *)arg;
  char out[OEE_ID_LEN + 1];
  uuid_t u;
  for (long i = 0; i < n; i++) {
    uuid_generate_random(u);
    uuid_unparse_lower(u, out);
  }
  sink = out[35];
  return NULL;
}

/* Ids per second of `fn` making `n` ids in each of `threads` threads. */
static double rate(void *(*fn)(void *), long n, int threads) {
  pthread_t th[64];
  double t0 = now_s();
  for (int t = 0; t < threads; t++) {
    if (pthread_create(&th[t], NULL, fn, &n) != 0) abort();
  }
  for (int t = 0; t < threads; t++) pthread_join(th[t], NULL);
  return (double)n * threads / (now_s() - t0);
}

int main(int argc, char **argv) {
  long n = 2000000;
  int threads = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--ids"))
      n = atol(argv[i + 1]);
    else if (!strcmp(argv[i], "--threads"))
      threads = atoi(argv[i + 1]);
  }
  if (n <= 0 || threads < 1 || threads > 64) {
    fprintf(stderr, "usage: id_bench [--ids N>0] [--threads 1..64]\n");
    return 2;
  }
  run_v7(&(long){1000}); /* first fill and atfork registration off the clock */
  /* libuuid makes six system calls per id: a tenth as many keeps it short. */
  double lib = rate(run_libuuid, n / 10, 1);
  double v7 = rate(run_v7, n, 1);
  double v7t = rate(run_v7, n, threads);
  printf(
      "RESULT core.ids v7_ids=%ld v7_per_s=%.0f libuuid_ids=%ld "
      "libuuid_random_per_s=%.0f speedup=%.1f v7_t%d_per_s=%.0f\n",
      n, v7, n / 10, lib, v7 / lib, threads, v7t);
  return 0;
}
