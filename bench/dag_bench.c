/*
 * dag_bench.c - a graph of tasks against the same number of independent
 * ones, in process (no gRPC). The target: "a 100,000-task DAG (fan-out and
 * fan-in) finishes at >= 50% of the rate of 100,000 independent no-op
 * tasks".
 *
 * Every case opens a fresh engine with the same settings (the memory store,
 * then the sqlite store with sync full in a fresh directory), submits N
 * no-op tasks with oee_engine_submit_async() from one thread and times from
 * the first submission to the last task finished (the executor counts):
 *  - independent: N tasks, no dependencies;
 *  - blocks: fan-out then fan-in, over and over: one task, W tasks that each
 *    depend on it, G = ceil(W / 63) tasks that each depend on a slice of at
 *    most 63 of those (the default max_dependencies is 64), one task that
 *    depends on the G; that last task is the one the next block's W depend
 *    on. W = 1,000: 1,017 tasks a block, 3 levels each;
 *  - layered: a random layered graph: one root, layers of W tasks each
 *    depending on 1..4 distinct tasks of the layer above (the first layer on
 *    the root), and a last task depending on 64 tasks of the last layer.
 * A task can name a dependency only once the dependency is acknowledged
 * (its id is in the acknowledgement, and a durable engine must have it
 * stored), so a graph is submitted level by level: a level waits for the
 * acknowledgements of every task before it, as SubmitTasks does with
 * "#<index>" references. The memory store acknowledges inside the call, so
 * there it never waits. Each round runs the three cases in turn (memory: 5
 * rounds, 2 workers; sqlite: 3 rounds, 16 workers, as the durable end-to-end
 * figures of bench/run); a round's ratio is its graph rate over its
 * independent rate, and the ratio reported is the median of the rounds'.
 *
 * Prints "RESULT dag.<store>.<case>.r<round> ..." per run, then
 * "RESULT dag.<store>.independent ... rate=.." (median) and, for each graph,
 * "RESULT dag.<store>.<shape> ... rate=.. ratio=.. min_ratio=.. max_ratio=..
 * target=0.50 met=yes|no" (medians; min and max over the rounds).
 * Usage: dag_bench [--tasks N] [--width W] [--workers N] [--sqlite-workers N]
 *                  [--rounds R] [--sqlite-rounds R] [--dir DIR] [--only memory|sqlite]
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/oee.h"

#define TARGET 0.50
#define MAX_DEPS 64   /* the engine's default max_dependencies */
#define MAX_ROUNDS 16 /* rounds kept for the medians */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const oee_error *err) {
  fprintf(stderr, "dag_bench: %s%s%s\n", what, err ? ": " : "", err ? err->message : "");
  exit(1);
}

/* ----------------------------------------------------------- the graphs */

/* A plan: task i depends on dep[first[i] .. first[i + 1]), all < i; tasks
 * are submitted in index order, a level at a time: level l is the tasks
 * level_start[l] .. level_start[l + 1] - 1, and each depends only on tasks
 * of earlier levels. */
typedef struct plan {
  const char *shape;
  long n, edges;
  long *first, *dep;
  long *level_start;
  long levels;
} plan;

static void *xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size);
  if (p == NULL) die("out of memory", NULL);
  return p;
}

static void plan_init(plan *p, const char *shape, long n, long max_edges) {
  *p = (plan){.shape = shape, .n = n};
  p->first = xcalloc((size_t)n + 1, sizeof(*p->first));
  p->dep = xcalloc((size_t)max_edges, sizeof(*p->dep));
  p->level_start = xcalloc((size_t)n + 1, sizeof(*p->level_start));
}

static void plan_free(plan *p) {
  free(p->first);
  free(p->dep);
  free(p->level_start);
}

/* Building: tasks are added in order; a level is opened before its tasks. */
static long plan_task(plan *p, long i) {
  p->first[i + 1] = p->edges;
  return i + 1;
}
static void plan_edge(plan *p, long i, long on) {
  (void)i;
  p->dep[p->edges++] = on;
}
static void plan_level(plan *p, long i) { p->level_start[p->levels++] = i; }
static void plan_done(plan *p) { p->level_start[p->levels] = p->n; }

/* No dependencies at all: one level. */
static void plan_independent(plan *p, long n) {
  plan_init(p, "independent", n, 1);
  plan_level(p, 0);
  for (long i = 0; i < n;) i = plan_task(p, i);
  plan_done(p);
}

static long div_up(long a, long b) { return (a + b - 1) / b; }

/* Tasks one block of fan-out width w adds: w, its slices' joins and the
 * block's join. */
static long block_size(long w) { return w + div_up(w, MAX_DEPS - 1) + 1; }

static void plan_blocks(plan *p, long n, long width) {
  plan_init(p, "blocks", n, 3 * n);
  long i = 0, join = 0;
  plan_level(p, i);
  i = plan_task(p, i); /* the root: the first "join" */
  while (i < n) {
    long left = n - i, w = width;
    while (w > 1 && block_size(w) > left) w--;
    if (block_size(w) > left) { /* one or two tasks left: a chain */
      plan_level(p, i);
      plan_edge(p, i, join);
      join = i;
      i = plan_task(p, i);
      continue;
    }
    long fan = i, slices = div_up(w, MAX_DEPS - 1);
    plan_level(p, i);
    for (long k = 0; k < w; k++) {
      plan_edge(p, i, join);
      i = plan_task(p, i);
    }
    long first_slice = i;
    plan_level(p, i);
    for (long s = 0; s < slices; s++) {
      /* Slice s: fan tasks s*w/slices .. (s+1)*w/slices - 1, at most 63. */
      for (long k = s * w / slices; k < (s + 1) * w / slices; k++) plan_edge(p, i, fan + k);
      i = plan_task(p, i);
    }
    plan_level(p, i);
    for (long s = 0; s < slices; s++) plan_edge(p, i, first_slice + s);
    join = i;
    i = plan_task(p, i);
  }
  plan_done(p);
}

/* xorshift64*: the same graph on every run. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545f4914f6cdd1dull;
}

static void plan_layered(plan *p, long n, long width) {
  plan_init(p, "layered", n, 4 * n + MAX_DEPS);
  rng_state = 0x9e3779b97f4a7c15ull;
  long i = 0;
  plan_level(p, i);
  i = plan_task(p, i); /* the root */
  long above = 0, above_len = 1;
  while (i < n - 1) {
    long w = width < n - 1 - i ? width : n - 1 - i, start = i;
    plan_level(p, i);
    for (long k = 0; k < w; k++) {
      long want = 1 + (long)(rnd() % 4);
      if (want > above_len) want = above_len;
      long picked[4];
      for (long d = 0; d < want;) {
        long on = above + (long)(rnd() % (uint64_t)above_len), seen = 0;
        for (long e = 0; e < d; e++) seen |= picked[e] == on;
        if (seen) continue;
        picked[d++] = on;
        plan_edge(p, i, on);
      }
      i = plan_task(p, i);
    }
    above = start;
    above_len = w;
  }
  if (i < n) { /* the last task: a fan-in of 64 tasks of the last layer */
    long want = above_len < MAX_DEPS ? above_len : MAX_DEPS;
    plan_level(p, i);
    for (long d = 0; d < want; d++) plan_edge(p, i, above + d * above_len / want);
    i = plan_task(p, i);
  }
  plan_done(p);
}

/* ---------------------------------------------------------- the engine */

static atomic_long acked, refused, finished;

static void run_noop(oee_job *job, void *ud) {
  (void)ud;
  oee_job_succeed(job, NULL);
  atomic_fetch_add_explicit(&finished, 1, memory_order_release);
}

/* An acknowledgement: the task's id goes to its slot (arg). */
static void on_ack(void *arg, int rc, const oee_task_info *t, const oee_error *err) {
  if (rc == 0) {
    memcpy(arg, t->id, OEE_ID_LEN + 1);
    atomic_fetch_add(&acked, 1);
  } else {
    fprintf(stderr, "dag_bench: refused: %s\n", err ? err->message : oee_strerror(rc));
    atomic_fetch_add(&refused, 1);
  }
}

typedef struct settings {
  const char *store; /* "memory" or "sqlite" */
  const char *dir;   /* sqlite: a fresh directory per run */
  int workers;
} settings;

typedef struct measure {
  double seconds, submit_seconds, waits_seconds;
} measure;

static void wait_acked(long n, double *waited) {
  double t0 = now_s();
  while (atomic_load(&acked) + atomic_load(&refused) < n) usleep(100);
  if (atomic_load(&refused) > 0) die("the engine refused a submission", NULL);
  *waited += now_s() - t0;
}

/* Submits the plan level by level and waits for every task to finish. */
static measure run_plan(const settings *s, const plan *p) {
  oee_engine_config cfg = {.num_workers = s->workers, .data_dir = s->dir};
  oee_engine *eng;
  oee_error err;
  if (oee_engine_open(&cfg, &eng, &err) != 0) die("open", &err);
  if (oee_engine_register(eng, "noop", run_noop, NULL) != 0) die("register", NULL);
  if (oee_engine_start(eng) != 0) die("start", NULL);
  char(*ids)[OEE_ID_LEN + 1] = xcalloc((size_t)p->n, sizeof(*ids));
  const char *deps[MAX_DEPS];
  oee_kv kv = {"message", ""};
  oee_submit req = {.name = "dag-task",
                    .task_type = "noop",
                    .priority = OEE_PRIORITY_DEFAULT,
                    .context = &kv,
                    .context_len = 1,
                    .depends_on = deps};
  atomic_store(&acked, 0);
  atomic_store(&refused, 0);
  atomic_store(&finished, 0);
  measure m = {0};
  double t0 = now_s();
  for (long l = 0; l < p->levels; l++) {
    long from = p->level_start[l], to = p->level_start[l + 1];
    /* Its dependencies' ids come with their acknowledgements. */
    if (l > 0 && p->edges > 0) wait_acked(from, &m.waits_seconds);
    for (long i = from; i < to; i++) {
      req.depends_on_len = (size_t)(p->first[i + 1] - p->first[i]);
      if (req.depends_on_len > MAX_DEPS) die("a task with too many dependencies", NULL);
      for (size_t d = 0; d < req.depends_on_len; d++) deps[d] = ids[p->dep[p->first[i] + (long)d]];
      if (oee_engine_submit_async(eng, &req, on_ack, ids[i], &err) != 0) die("submit", &err);
    }
  }
  m.submit_seconds = now_s() - t0;
  while (atomic_load_explicit(&finished, memory_order_acquire) < p->n) usleep(100);
  m.seconds = now_s() - t0;
  wait_acked(p->n, &m.waits_seconds); /* normally long done */
  oee_engine_stop(eng, 1000);
  oee_status st;
  if (oee_engine_status(eng, &st) != 0) die("status", NULL);
  long done = (long)st.by_status[OEE_TASK_DONE];
  oee_status_free(&st);
  if (done != p->n) {
    fprintf(stderr, "dag_bench: %s: %ld of %ld tasks DONE\n", p->shape, done, p->n);
    exit(1);
  }
  oee_engine_destroy(eng);
  free(ids);
  return m;
}

/* ----------------------------------------------------------------- main */

static char *temp_dir(const char *base) {
  static char out[512];
  int n = snprintf(out, sizeof(out), "%s/oee-dag-bench-", base);
  if (n < 0 || (size_t)n + 7 > sizeof(out)) die("data directory path too long", NULL);
  memset(out + n, 'X', 6); /* mkdtemp's template, written by memset */
  out[n + 6] = '\0';
  if (mkdtemp(out) == NULL) die("mkdtemp", NULL);
  return out;
}

static void remove_dir(const char *dir) {
  char cmd[600];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  if (system(cmd) != 0) die("cannot remove the data directory", NULL);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof(*v), cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

#define NPLANS 3

static void run_store(const char *store, const char *base, int workers, int rounds, long n,
                      long width) {
  plan plans[NPLANS];
  plan_independent(&plans[0], n);
  plan_blocks(&plans[1], n, width);
  plan_layered(&plans[2], n, width);
  double rates[NPLANS][MAX_ROUNDS];
  for (int r = 0; r < rounds; r++) {
    for (int k = 0; k < NPLANS; k++) {
      const plan *p = &plans[k];
      settings s = {.store = store, .workers = workers};
      if (strcmp(store, "sqlite") == 0) s.dir = temp_dir(base);
      measure m = run_plan(&s, p);
      if (s.dir) remove_dir(s.dir);
      rates[k][r] = (double)p->n / m.seconds;
      printf(
          "RESULT dag.%s.%s.r%d store=%s workers=%d tasks=%ld edges=%ld levels=%ld width=%ld "
          "seconds=%.3f rate=%.0f submit_seconds=%.3f ack_wait_seconds=%.3f\n",
          store, p->shape, r + 1, store, workers, p->n, p->edges, p->levels, k ? width : 0,
          m.seconds, rates[k][r], m.submit_seconds, m.waits_seconds);
      fflush(stdout);
    }
  }
  /* Per-round ratios first: the rounds of one round ran side by side, so
   * a load that comes and goes on a shared machine weighs on both. */
  double ratios[NPLANS][MAX_ROUNDS];
  for (int k = 1; k < NPLANS; k++) {
    for (int r = 0; r < rounds; r++) ratios[k][r] = rates[k][r] / rates[0][r];
  }
  double base_rate = median(rates[0], rounds);
  printf("RESULT dag.%s.independent store=%s workers=%d tasks=%ld rounds=%d rate=%.0f\n", store,
         store, workers, n, rounds, base_rate);
  for (int k = 1; k < NPLANS; k++) {
    double ratio = median(ratios[k], rounds); /* sorts them: [0] is the least */
    printf(
        "RESULT dag.%s.%s store=%s workers=%d tasks=%ld edges=%ld levels=%ld width=%ld "
        "rounds=%d rate=%.0f independent_rate=%.0f ratio=%.3f min_ratio=%.3f max_ratio=%.3f "
        "target=%.2f met=%s\n",
        store, plans[k].shape, store, workers, n, plans[k].edges, plans[k].levels, width, rounds,
        median(rates[k], rounds), base_rate, ratio, ratios[k][0], ratios[k][rounds - 1], TARGET,
        ratio >= TARGET ? "yes" : "no");
  }
  fflush(stdout);
  for (int k = 0; k < NPLANS; k++) plan_free(&plans[k]);
}

int main(int argc, char **argv) {
  long n = 100000, width = 1000;
  int workers = 2, sqlite_workers = 16, rounds = 5, sqlite_rounds = 3;
  const char *base = "/tmp", *only = "all";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--tasks"))
      n = atol(argv[i + 1]);
    else if (!strcmp(argv[i], "--width"))
      width = atol(argv[i + 1]);
    else if (!strcmp(argv[i], "--workers"))
      workers = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--sqlite-workers"))
      sqlite_workers = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--rounds"))
      rounds = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--sqlite-rounds"))
      sqlite_rounds = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--dir"))
      base = argv[i + 1];
    else if (!strcmp(argv[i], "--only"))
      only = argv[i + 1];
  }
  if (n < 3 || width < 1 || workers < 1 || sqlite_workers < 1 || rounds < 1 ||
      rounds > MAX_ROUNDS || sqlite_rounds < 1 || sqlite_rounds > MAX_ROUNDS) {
    die("bad arguments (tasks >= 3, width >= 1, workers >= 1, rounds 1..16)", NULL);
  }
  if (strcmp(only, "sqlite") != 0) run_store("memory", base, workers, rounds, n, width);
  if (strcmp(only, "memory") != 0)
    run_store("sqlite", base, sqlite_workers, sqlite_rounds, n, width);
  return 0;
}
