/*
 * core_bench.c - the engine in-process, without gRPC.
 *
 * Measurements (each prints one "RESULT <label> key=value ..." line):
 *  - submit.tN: oee_engine_submit() per second from N threads into an engine
 *    whose workers are not started (the tasks stay QUEUED), with the CPU
 *    time the process spent meanwhile (cpu_rate: submissions per CPU
 *    second, less disturbed by the machine's other load than the wall
 *    clock), the heap bytes per queued task (mallinfo2) and the process RSS
 *    growth;
 *  - e2e.wN: no-op tasks per second with N workers, one submitting thread,
 *    from the first submission to the last completion;
 *  - latency.idle: enqueue-to-start with idle workers, one task at a time
 *    (the wake-up path), CLOCK_MONOTONIC around submit and in the executor;
 *  - latency.paced: created_at -> started_at of tasks offered at a fixed rate
 *    (--paced-rate, default 20,000/s) to 2 workers;
 *  - submit.tN.sK: as submit.tN, with K subscribers attached: K-1 filtered
 *    on a task type nobody submits and one unfiltered, drained by a thread
 *    (the fan-out cost a publish pays), and the latency of oee_engine_get()
 *    from another thread meanwhile (how long the engine lock is held);
 *  - scale.nN: submit, get, list (first page, middle page, and a page
 *    filtered on a task type that only the oldest task has) and status costs
 *    in ns/op with N tasks in the store.
 *
 * Usage: core_bench [--submits N] [--e2e N] [--idle N] [--paced-rate R]
 *                   [--levels a,b,..]
 *                   [--only submit|submit1|submit1warm|subs|e2e|latency|scale]
 * (submit1warm, run only when named: submit.t1.warm, as submit.t1 into a
 * heap whose pages a first engine of the same size touched already.)
 */
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/oee.h"

static int64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static long long rss_bytes(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long long kb = 0;
  while (f && fgets(line, sizeof(line), f)) {
    if (sscanf(line, "VmRSS: %lld kB", &kb) == 1) break;
  }
  if (f) fclose(f);
  return kb * 1024;
}

/* CPU time of the whole process in ns: with the workers not started, the
 * submitting threads' own work, which the machine's other load disturbs
 * less than the wall clock. */
static int64_t cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static long long heap_used(void) { return (long long)mallinfo2().uordblks; }

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static double pct_us(const int64_t *v, size_t n, double q) {
  if (n == 0) return 0;
  return (double)v[(size_t)(q * (double)(n - 1) + 0.5)] / 1000.0;
}

static void check(int rc, const char *what) {
  if (rc != 0) {
    fprintf(stderr, "core_bench: %s: %s\n", what, oee_strerror(rc));
    exit(2);
  }
}

/* The task every measurement submits: as rpc_load's, a no-op with one
 * context entry. */
static const oee_kv ctx_entry = {"message", ""};
static const oee_submit task = {.name = "bench-task",
                                .task_type = "noop",
                                .priority = 5,
                                .context = &ctx_entry,
                                .context_len = 1};
static const size_t task_string_bytes =
    sizeof("bench-task") + sizeof("noop") + sizeof("message") + sizeof("");

/* ------------------------------------------------------------ executors */

static atomic_long done_count;
static int64_t *lat_slots; /* latency samples written by the executor */
static atomic_long lat_n;
static size_t lat_cap;
static atomic_llong idle_started_ns;

static void run_noop(oee_job *job, void *ud) {
  (void)ud;
  oee_job_succeed(job, NULL);
  atomic_fetch_add_explicit(&done_count, 1, memory_order_release);
}

/* Records created_at -> started_at of the job's task. */
static void run_timed(oee_job *job, void *ud) {
  (void)ud;
  const oee_task_info *t = oee_job_task(job);
  long i = atomic_fetch_add(&lat_n, 1);
  if ((size_t)i < lat_cap) lat_slots[i] = t->started_at_ns - t->created_at_ns;
  oee_job_succeed(job, NULL);
  atomic_fetch_add_explicit(&done_count, 1, memory_order_release);
}

/* Records the monotonic time at which the executor began. */
static void run_stamp(oee_job *job, void *ud) {
  (void)ud;
  atomic_store(&idle_started_ns, mono_ns());
  oee_job_succeed(job, NULL);
}

static oee_engine *engine(int workers, oee_executor_fn fn) {
  oee_engine_config cfg = {.num_workers = workers};
  oee_engine *eng;
  check(oee_engine_create(&cfg, &eng), "create");
  check(oee_engine_register(eng, "noop", fn, NULL), "register");
  check(oee_engine_register(eng, "rare", fn, NULL), "register");
  return eng;
}

/* --------------------------------------------------------------- submit */

typedef struct submitter {
  oee_engine *eng;
  long n;
} submitter;

static void *submit_loop(void *arg) {
  submitter *s = arg;
  for (long i = 0; i < s->n; i++) check(oee_engine_submit(s->eng, &task, NULL, NULL), "submit");
  return NULL;
}

/* label: "" for core.submit.tN; trim: give freed memory back afterwards. */
static void bench_submit(int threads, long n, const char *label, int trim) {
  oee_engine *eng = engine(2, run_noop); /* not started: tasks stay QUEUED */
  long long heap0 = heap_used(), rss0 = rss_bytes();
  pthread_t th[8];
  submitter s = {eng, n / threads};
  int64_t t0 = mono_ns(), c0 = cpu_ns();
  for (int i = 0; i < threads; i++) pthread_create(&th[i], NULL, submit_loop, &s);
  for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
  double secs = (double)(mono_ns() - t0) / 1e9;
  double cpu = (double)(cpu_ns() - c0) / 1e9;
  long total = s.n * threads;
  double heap_per = (double)(heap_used() - heap0) / (double)total;
  double rss_per = (double)(rss_bytes() - rss0) / (double)total;
  printf(
      "RESULT core.submit.t%d%s threads=%d tasks=%ld seconds=%.3f rate=%.0f cpu_seconds=%.3f "
      "cpu_rate=%.0f heap_bytes_per_task=%.0f rss_bytes_per_task=%.0f string_bytes=%zu "
      "overhead_per_task=%.0f\n",
      threads, label, threads, total, secs, (double)total / secs, cpu, (double)total / cpu,
      heap_per, rss_per, task_string_bytes, heap_per - (double)task_string_bytes);
  fflush(stdout);
  int64_t d0 = mono_ns();
  oee_engine_destroy(eng);
  printf("RESULT core.destroy.t%d%s tasks=%ld seconds=%.3f\n", threads, label, total,
         (double)(mono_ns() - d0) / 1e9);
  if (trim) malloc_trim(0);
}

/* ---------------------------------------------------- submit + watchers */

typedef struct drainer {
  oee_sub *sub;
  long seen;
} drainer;

static void *drain_loop(void *arg) {
  drainer *d = arg;
  const oee_task_info *ev;
  for (;;) {
    int rc = oee_sub_wait(d->sub, &ev, -1);
    if (rc != 0) break;
    oee_task_info_unref(ev);
    d->seen++;
  }
  return NULL;
}

/* Reads one task over and over while the submitters run: how long other
 * callers wait for the engine lock (the publish work done under it). */
typedef struct getter {
  oee_engine *eng;
  char id[OEE_ID_LEN + 1];
  atomic_int stop;
  int64_t *lat;
  size_t n, cap;
} getter;

static void *get_loop(void *arg) {
  getter *g = arg;
  while (!atomic_load(&g->stop) && g->n < g->cap) {
    const oee_task_info *t;
    int64_t t0 = mono_ns();
    check(oee_engine_get(g->eng, g->id, &t), "get");
    g->lat[g->n++] = mono_ns() - t0;
    oee_task_info_unref(t);
  }
  return NULL;
}

static void bench_submit_subs(int threads, int nsubs, long n) {
  oee_engine *eng = engine(2, run_noop); /* not started: tasks stay QUEUED */
  const char *rare[] = {"rare"};
  oee_sub_filter f = {.task_types = rare, .n_task_types = 1};
  oee_sub *subs[256];
  for (int i = 0; i < nsubs - 1; i++)
    check(oee_engine_subscribe(eng, &f, 0, 0, &subs[i]), "subscribe");
  drainer d = {NULL, 0};
  check(oee_engine_subscribe(eng, NULL, 65536, 0, &d.sub), "subscribe");
  pthread_t dth, gth, th[8];
  pthread_create(&dth, NULL, drain_loop, &d);
  getter g = {.eng = eng, .cap = 4000000};
  const oee_task_info *first;
  check(oee_engine_submit(eng, &task, &first, NULL), "submit");
  memcpy(g.id, first->id, sizeof(g.id));
  oee_task_info_unref(first);
  atomic_init(&g.stop, 0);
  g.lat = malloc(g.cap * sizeof(*g.lat));
  pthread_create(&gth, NULL, get_loop, &g);
  submitter s = {eng, n / threads};
  int64_t t0 = mono_ns();
  for (int i = 0; i < threads; i++) pthread_create(&th[i], NULL, submit_loop, &s);
  for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
  double secs = (double)(mono_ns() - t0) / 1e9;
  atomic_store(&g.stop, 1);
  pthread_join(gth, NULL);
  qsort(g.lat, g.n, sizeof(*g.lat), cmp_i64);
  long total = s.n * threads;
  int dropped = oee_sub_dropped(d.sub);
  oee_sub_close(d.sub);
  pthread_join(dth, NULL);
  printf(
      "RESULT core.submit.t%d.s%d threads=%d subscribers=%d tasks=%ld seconds=%.3f "
      "rate=%.0f drained=%ld dropped=%d get_p50_us=%.2f get_p99_us=%.2f get_p999_us=%.2f\n",
      threads, nsubs, threads, nsubs, total, secs, (double)total / secs, d.seen - 1, dropped,
      pct_us(g.lat, g.n, 0.5), pct_us(g.lat, g.n, 0.99), pct_us(g.lat, g.n, 0.999));
  free(g.lat);
  fflush(stdout);
  oee_sub_free(d.sub);
  for (int i = 0; i < nsubs - 1; i++) oee_sub_free(subs[i]);
  oee_engine_destroy(eng);
  malloc_trim(0);
}

/* ------------------------------------------------------------ e2e no-op */

static void bench_e2e(int workers, long n) {
  oee_engine *eng = engine(workers, run_noop);
  check(oee_engine_start(eng), "start");
  atomic_store(&done_count, 0);
  int64_t t0 = mono_ns();
  for (long i = 0; i < n; i++) check(oee_engine_submit(eng, &task, NULL, NULL), "submit");
  int64_t t_sub = mono_ns();
  while (atomic_load_explicit(&done_count, memory_order_acquire) < n) sched_yield();
  double secs = (double)(mono_ns() - t0) / 1e9;
  printf("RESULT core.e2e.w%d workers=%d tasks=%ld seconds=%.3f rate=%.0f submit_seconds=%.3f\n",
         workers, workers, n, secs, (double)n / secs, (double)(t_sub - t0) / 1e9);
  fflush(stdout);
  oee_engine_stop(eng, 1000);
  oee_engine_destroy(eng);
  malloc_trim(0);
}

/* -------------------------------------------------------------- latency */

static void bench_latency_idle(long n) {
  oee_engine *eng = engine(2, run_stamp);
  check(oee_engine_start(eng), "start");
  int64_t *lat = calloc((size_t)n, sizeof(*lat));
  struct timespec pause = {0, 200000}; /* 0.2 ms: workers are back asleep */
  for (long i = 0; i < n; i++) {
    nanosleep(&pause, NULL);
    atomic_store(&idle_started_ns, 0);
    int64_t t0 = mono_ns();
    check(oee_engine_submit(eng, &task, NULL, NULL), "submit");
    long long t1;
    while ((t1 = atomic_load(&idle_started_ns)) == 0) sched_yield();
    lat[i] = t1 - t0;
  }
  qsort(lat, (size_t)n, sizeof(*lat), cmp_i64);
  printf(
      "RESULT core.latency.idle samples=%ld p50_us=%.1f p90_us=%.1f p99_us=%.1f "
      "p999_us=%.1f max_us=%.1f\n",
      n, pct_us(lat, (size_t)n, 0.5), pct_us(lat, (size_t)n, 0.9), pct_us(lat, (size_t)n, 0.99),
      pct_us(lat, (size_t)n, 0.999), pct_us(lat, (size_t)n, 1.0));
  fflush(stdout);
  free(lat);
  oee_engine_stop(eng, 1000);
  oee_engine_destroy(eng);
}

static void bench_latency_paced(long n, double rate) {
  oee_engine *eng = engine(2, run_timed);
  check(oee_engine_start(eng), "start");
  lat_cap = (size_t)n;
  lat_slots = calloc(lat_cap, sizeof(*lat_slots));
  atomic_store(&lat_n, 0);
  atomic_store(&done_count, 0);
  int64_t gap = (int64_t)(1e9 / rate), t0 = mono_ns();
  for (long i = 0; i < n; i++) {
    int64_t due = t0 + i * gap;
    while (mono_ns() < due) {
    }
    check(oee_engine_submit(eng, &task, NULL, NULL), "submit");
  }
  while (atomic_load(&done_count) < n) sched_yield();
  double secs = (double)(mono_ns() - t0) / 1e9;
  size_t m = (size_t)atomic_load(&lat_n);
  qsort(lat_slots, m, sizeof(*lat_slots), cmp_i64);
  printf(
      "RESULT core.latency.paced offered_rate=%.0f achieved_rate=%.0f samples=%zu "
      "p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f\n",
      rate, (double)n / secs, m, pct_us(lat_slots, m, 0.5), pct_us(lat_slots, m, 0.9),
      pct_us(lat_slots, m, 0.99), pct_us(lat_slots, m, 0.999), pct_us(lat_slots, m, 1.0));
  fflush(stdout);
  free(lat_slots);
  oee_engine_stop(eng, 1000);
  oee_engine_destroy(eng);
}

/* --------------------------------------------------------------- scale */

/* Mean ns of `reps` runs of body (a statement using i), best of 5 blocks:
 * the machine is shared, and the best block is the cost of the operation. */
#define TIME_NS(reps, body)                                    \
  ({                                                           \
    double best_ = 1e300;                                      \
    for (int b_ = 0; b_ < 5; b_++) {                           \
      int64_t t0_ = mono_ns();                                 \
      for (long i = 0; i < (reps); i++) {                      \
        body;                                                  \
      }                                                        \
      double ns_ = (double)(mono_ns() - t0_) / (double)(reps); \
      if (ns_ < best_) best_ = ns_;                            \
    }                                                          \
    best_;                                                     \
  })

static double list_ns(oee_engine *eng, const char *type, uint64_t after, long reps) {
  oee_list_query q = {.task_type = type, .after_index = after, .limit = 100};
  return TIME_NS(reps, {
    oee_list_page p;
    check(oee_engine_list(eng, &q, &p), "list");
    oee_list_page_free(&p);
  });
}

static void bench_scale(long level) {
  oee_engine *eng = engine(2, run_noop);
  char(*ids)[OEE_ID_LEN + 1] = malloc(4096 * sizeof(*ids));
  long nid = 0, stride = level / 4096 + 1;
  /* One task of a rare type first: a filter on it matches one task, so a
   * page must look at every later task to know there is no second match. */
  oee_submit rare = task;
  rare.task_type = "rare";
  check(oee_engine_submit(eng, &rare, NULL, NULL), "submit rare");
  long long heap0 = heap_used();
  for (long i = 0; i < level; i++) {
    const oee_task_info *t;
    check(oee_engine_submit(eng, &task, &t, NULL), "submit");
    if (i % stride == 0 && nid < 4096) memcpy(ids[nid++], t->id, OEE_ID_LEN + 1);
    oee_task_info_unref(t);
  }
  double heap_per = (double)(heap_used() - heap0) / (double)level;
  double submit = TIME_NS(1000, check(oee_engine_submit(eng, &task, NULL, NULL), "submit"));
  double get = TIME_NS(10000, {
    const oee_task_info *t;
    check(oee_engine_get(eng, ids[(i * 7919) % nid], &t), "get");
    oee_task_info_unref(t);
  });
  double first = list_ns(eng, NULL, 0, 2000);
  double middle = list_ns(eng, NULL, (uint64_t)level / 2, 2000);
  long freps = level >= 1000000 ? 1 : level >= 100000 ? 4 : 100;
  double filtered = list_ns(eng, "rare", 0, freps);
  double status = TIME_NS(10000, {
    oee_status st;
    check(oee_engine_status(eng, &st), "status");
    oee_status_free(&st);
  });
  printf(
      "RESULT core.scale.n%ld tasks=%ld submit_ns=%.0f get_ns=%.0f list_first_ns=%.0f "
      "list_middle_ns=%.0f list_filtered_sparse_ns=%.0f status_ns=%.0f heap_bytes_per_task=%.0f\n",
      level, level, submit, get, first, middle, filtered, status, heap_per);
  fflush(stdout);
  free(ids);
  oee_engine_destroy(eng);
  malloc_trim(0);
}

/* ----------------------------------------------------------------- main */

/* submit.t1 into memory already faulted in: one malloc arena that keeps
 * what is freed (a thread arena unmaps a heap once it is all free), a first
 * engine filled and destroyed, then the measured one. What a long-running
 * process pays, without the first touch of each page. */
static void bench_submit_warm(long submits) {
  mallopt(M_ARENA_MAX, 1);
  mallopt(M_TRIM_THRESHOLD, INT_MAX);
  bench_submit(1, submits, ".fill", 0);
  bench_submit(1, submits, ".warm", 0);
}

int main(int argc, char **argv) {
  long submits = 1000000, e2e = 300000, idle = 5000;
  double paced = 20000;
  const char *levels = "1000,10000,100000,1000000";
  const char *only = "all";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--submits"))
      submits = atol(argv[i + 1]);
    else if (!strcmp(argv[i], "--e2e"))
      e2e = atol(argv[i + 1]);
    else if (!strcmp(argv[i], "--idle"))
      idle = atol(argv[i + 1]);
    else if (!strcmp(argv[i], "--paced-rate"))
      paced = atof(argv[i + 1]);
    else if (!strcmp(argv[i], "--levels"))
      levels = argv[i + 1];
    else if (!strcmp(argv[i], "--only"))
      only = argv[i + 1];
  }
  int all = !strcmp(only, "all");
  if (all || !strcmp(only, "submit") || !strcmp(only, "submit1")) bench_submit(1, submits, "", 1);
  if (all || !strcmp(only, "submit")) bench_submit(2, submits, "", 1);
  if (all || !strcmp(only, "submit")) bench_submit(4, submits, "", 1);
  if (!strcmp(only, "submit1warm")) bench_submit_warm(submits);
  if (all || !strcmp(only, "subs")) {
    bench_submit_subs(1, 64, submits / 4);
    bench_submit_subs(4, 64, submits / 4);
  }
  if (all || !strcmp(only, "e2e")) {
    for (int w = 1; w <= 4; w++) bench_e2e(w, e2e);
  }
  if (all || !strcmp(only, "latency")) {
    bench_latency_idle(idle);
    bench_latency_paced((long)(paced * 2), paced);
  }
  if (all || !strcmp(only, "scale")) {
    for (const char *p = levels; *p;) {
      char *end;
      long n = strtol(p, &end, 10);
      if (n > 0) bench_scale(n);
      p = *end == ',' ? end + 1 : end;
    }
  }
  return 0;
}
