/*
 * sched_bench.c - many cron schedules firing every minute, in process (no
 * gRPC). The target: "10,000 schedules every minute: firings on time, idle
 * CPU between firings under 1%".
 *
 * For each store (the memory store, then sqlite with sync full in a fresh
 * directory under --dir), one engine with 2 workers:
 *  - create: N schedules "* * * * *" (UTC) with ids s00000, s00001, ...,
 *    each firing a no-op `echo` task, created one after the other from
 *    --threads threads; schedules per second, and the process's RSS
 *    (VmRSS) before and after;
 *  - fire: the next M minute boundaries after the creation. For each, the
 *    tasks the firings created are listed (oee_engine_list, paged from the
 *    last submit_index seen before the boundary) and matched to the
 *    boundary by their idempotency key "<schedule_id>@<time>": how many of
 *    the N fired, and how late each task was created after its minute
 *    (created_at_ns minus the minute): min, p50, p99, max. spread_ms is
 *    the time from the minute until the last firing's task could be seen:
 *    a watcher (oee_engine_subscribe, QUEUED events only) notes when each
 *    event arrives (within about 1 ms: it takes them in batches); for
 *    sqlite that is once the task is stored;
 *  - idle: after the first boundary, the process's CPU time (getrusage,
 *    user + sys) from 15 s to 45 s after it, as a share of one core. The
 *    window holds no boundary, and the engine is checked to have no queued,
 *    running or waiting task at both ends of it.
 * Each store takes the wait to its first boundary (up to a minute) plus
 * about M - 1 minutes and a few seconds; sqlite starts right after memory,
 * so both take 3 to 4 minutes with M = 2. Run in one process, the sqlite
 * figures of RSS start from what the memory run left in the heap: bench/run
 * runs each store in its own process (--only).
 *
 * Prints, per store (memory or sqlite):
 *   RESULT sched.<store>.create store=.. schedules=N threads=T seconds=..
 *          rate=.. rss_base_bytes=.. rss_bytes=.. bytes_per_schedule=..
 *          crossed_boundary=0|1
 *   RESULT sched.<store>.fire.m<k> store=.. schedules=N minute=k fired=..
 *          missing=.. min_ms=.. p50_ms=.. p99_ms=.. max_ms=.. spread_ms=..
 *          seen=.. runs=.. skipped=.. rss_bytes=..
 *   RESULT sched.<store>.idle store=.. schedules=N seconds=30 cpu_share=..
 *          target=0.01 met=yes|no busy_tasks=..
 * (runs and skipped: sums over the schedules after that boundary; seen:
 * the watcher's events for the boundary; busy_tasks: queued + running +
 * waiting tasks at the window's ends, 0 for a clean window.) Exits 1 when
 * a boundary misses a firing or the window was not clean.
 * Usage: sched_bench [--schedules N] [--minutes M] [--threads T] [--dir DIR]
 *                    [--only memory|sqlite]
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "core/oee.h"

#define NS 1000000000LL
#define IDLE_FROM 15 /* s after the first boundary */
#define IDLE_TO 45   /* s after the first boundary */
#define SETTLE_BY 14 /* s after a boundary: its burst must have landed */
#define IDLE_TARGET 0.01
#define LIST_PAGE 1000
#define NO_TIME INT64_MIN

typedef struct options {
  long schedules;
  int minutes;
  int threads;
  const char *dir;
  const char *only; /* NULL: both stores */
} options;

static void die(const char *what, const oee_error *err) {
  fprintf(stderr, "sched_bench: %s%s%s\n", what, err ? ": " : "", err ? err->message : "");
  exit(1);
}

static void *xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size);
  if (p == NULL) die("out of memory", NULL);
  return p;
}

/* --------------------------------------------------------------- clocks */

static int64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * NS + ts.tv_nsec;
}

/* Sleeps until the wall clock reads `real_ns` (ns since the epoch). */
static void sleep_until(int64_t real_ns) {
  struct timespec ts = {.tv_sec = real_ns / NS, .tv_nsec = real_ns % NS};
  while (clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &ts, NULL) == EINTR) {
  }
}

static void sleep_ms(long ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) == EINTR) {
  }
}

static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* VmRSS of this process in bytes (0 if unreadable). */
static long rss_bytes(void) {
  FILE *f = fopen("/proc/self/status", "r");
  if (f == NULL) return 0;
  char line[256];
  long kb = 0;
  while (fgets(line, sizeof(line), f)) {
    if (sscanf(line, "VmRSS: %ld kB", &kb) == 1) break;
  }
  fclose(f);
  return kb * 1024;
}

/* ------------------------------------------------------------- firings */

static int id_width(long n) {
  int w = 5;
  for (long lim = 100000; n > lim && w < 18; lim *= 10) w++;
  return w;
}

/* Seconds since the epoch of "YYYY-MM-DDTHH:MM:SSZ" (years from 1970),
 * or -1. By hand rather than sscanf() + timegm(): the watcher runs this
 * for every event of a burst, beside the engine it measures. */
static int64_t utc_seconds(const char *s) {
  static const int at[6] = {0, 5, 8, 11, 14, 17}, len[6] = {4, 2, 2, 2, 2, 2};
  static const char sep[] = "--T::Z";
  int v[6];
  for (int f = 0; f < 6; f++) {
    v[f] = 0;
    for (int i = at[f]; i < at[f] + len[f]; i++) {
      if (s[i] < '0' || s[i] > '9') return -1;
      v[f] = v[f] * 10 + (s[i] - '0');
    }
    if (s[at[f] + len[f]] != sep[f]) return -1;
  }
  int y = v[0], m = v[1], d = v[2];
  if (y < 1970 || m < 1 || m > 12 || d < 1 || d > 31) return -1;
  /* Days since 1970-01-01 in the proleptic Gregorian calendar, counting
   * years from March so that February's length falls at a year's end. */
  if (m <= 2) y--;
  int64_t era = y / 400, yoe = y - era * 400;
  int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  int64_t days = era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
  return days * 86400 + v[3] * 3600 + v[4] * 60 + v[5];
}

/* The schedule index and firing time (s since the epoch) of a task made
 * by one of our schedules: from its schedule_id "s<index>" and its key
 * "<schedule_id>@YYYY-MM-DDTHH:MM:SSZ". 0, or -1 for any other task. */
static int firing_of(const oee_task_info *t, long n, long *idx, int64_t *at_s) {
  if (t->schedule_id[0] != 's') return -1;
  char *end;
  long i = strtol(t->schedule_id + 1, &end, 10);
  if (*end != '\0' || i < 0 || i >= n) return -1;
  const char *when = strrchr(t->idempotency_key, '@');
  if (when == NULL || strlen(when + 1) != 20) return -1;
  *idx = i;
  *at_s = utc_seconds(when + 1);
  return *at_s < 0 ? -1 : 0;
}

/* ------------------------------------------------------------ the watcher */

/* One QUEUED event of a firing's task, and when it arrived. */
typedef struct sighting {
  int64_t at_s;
  int64_t seen_ns;
} sighting;

/* A thread that notes the arrival of every firing's QUEUED event. The log
 * is written by that thread only; `len` publishes its entries. */
typedef struct watcher {
  oee_sub *sub;
  pthread_t thread;
  long schedules;
  sighting *log;
  size_t cap;
  atomic_size_t len;
  atomic_int lost; /* dropped by the engine, or the log was full */
} watcher;

/* Notes the arrival of event `ev` at `seen_ns`. */
static void watch_note(watcher *w, const oee_task_info *ev, int64_t seen_ns) {
  long idx;
  int64_t at_s;
  if (firing_of(ev, w->schedules, &idx, &at_s) != 0) return;
  size_t n = atomic_load_explicit(&w->len, memory_order_relaxed);
  if (n == w->cap) {
    atomic_store(&w->lost, 1);
    return;
  }
  w->log[n] = (sighting){at_s, seen_ns};
  atomic_store_explicit(&w->len, n + 1, memory_order_release);
}

/* Sleeps until an event comes, then takes what has come in batches 1 ms
 * apart until none did: a burst wakes this thread about once a
 * millisecond, not once per event, and an arrival is noted up to about
 * 1 ms late. */
static void *watch_main(void *arg) {
  watcher *w = arg;
  const oee_task_info *ev;
  for (;;) {
    int rc = oee_sub_wait(w->sub, &ev, -1);
    while (rc == 0) {
      for (; rc == 0; rc = oee_sub_next(w->sub, &ev)) {
        watch_note(w, ev, oee_now_ns());
        oee_task_info_unref(ev);
      }
      if (rc != OEE_EAGAIN) break;
      sleep_ms(1);
      rc = oee_sub_next(w->sub, &ev);
    }
    if (rc == OEE_EAGAIN) continue;
    if (rc == OEE_EOVERFLOW) atomic_store(&w->lost, 1);
    return NULL; /* closed */
  }
}

static void watch_start(watcher *w, oee_engine *eng, long schedules, int minutes) {
  static const oee_task_status queued[] = {OEE_TASK_QUEUED};
  oee_sub_filter f = {.statuses = queued, .n_statuses = 1};
  /* Room for every boundary plus one crossed during creation. */
  w->schedules = schedules;
  w->cap = (size_t)schedules * (size_t)(minutes + 1);
  w->log = xcalloc(w->cap, sizeof(*w->log));
  atomic_init(&w->len, 0);
  atomic_init(&w->lost, 0);
  if (oee_engine_subscribe(eng, &f, w->cap + 1024, 0, &w->sub) != 0) die("subscribe", NULL);
  if (pthread_create(&w->thread, NULL, watch_main, w) != 0) die("pthread_create", NULL);
}

static void watch_stop(watcher *w) {
  oee_sub_close(w->sub);
  pthread_join(w->thread, NULL);
  oee_sub_free(w->sub);
  free(w->log);
}

/* Counts the sightings of the firings at `at_s` from log entry *from on,
 * adding to *count and raising *last_ns; *from moves to the end. */
static void watch_scan(watcher *w, size_t *from, int64_t at_s, long *count, int64_t *last_ns) {
  size_t n = atomic_load_explicit(&w->len, memory_order_acquire);
  for (; *from < n; ++*from) {
    if (w->log[*from].at_s != at_s) continue;
    ++*count;
    if (w->log[*from].seen_ns > *last_ns) *last_ns = w->log[*from].seen_ns;
  }
}

/* ------------------------------------------------------------- creation */

typedef struct creator {
  oee_engine *eng;
  long first, step, n;
  int width;
} creator;

static void *create_main(void *arg) {
  const creator *c = arg;
  oee_submit tmpl = {.name = "sched-bench", .task_type = "echo", .priority = 5};
  char id[32];
  for (long i = c->first; i < c->n; i += c->step) {
    snprintf(id, sizeof(id), "s%0*ld", c->width, i);
    oee_schedule_spec spec = {
        .schedule_id = id, .cron = "* * * * *", .time_zone = "UTC", .task = &tmpl};
    oee_error err;
    if (oee_engine_schedule_create(c->eng, &spec, NULL, &err) != 0) die("schedule_create", &err);
  }
  return NULL;
}

/* Creates the N schedules from `threads` threads; returns the seconds taken. */
static double create_all(oee_engine *eng, long n, int threads) {
  pthread_t *tid = xcalloc((size_t)threads, sizeof(*tid));
  creator *c = xcalloc((size_t)threads, sizeof(*c));
  int64_t t0 = mono_ns();
  for (int i = 0; i < threads; i++) {
    c[i] = (creator){eng, i, threads, n, id_width(n)};
    if (pthread_create(&tid[i], NULL, create_main, &c[i]) != 0) die("pthread_create", NULL);
  }
  for (int i = 0; i < threads; i++) pthread_join(tid[i], NULL);
  double secs = (double)(mono_ns() - t0) / 1e9;
  free(tid);
  free(c);
  return secs;
}

/* -------------------------------------------------------- one boundary */

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* What the store holds for the firings at `at_s`: the tasks listed after
 * submit_index `after` whose key names that time. late[] gets each one's
 * lateness in ms (one per schedule: *dups counts repeats); returns how
 * many schedules fired. *last_index is raised to the highest submit_index
 * listed. */
static long collect(oee_engine *eng, long n, int64_t at_s, uint64_t after, unsigned char *mark,
                    double *late, long *dups, uint64_t *last_index) {
  long fired = 0;
  *dups = 0;
  memset(mark, 0, (size_t)n);
  oee_list_query q = {.task_type = "echo", .after_index = after, .limit = LIST_PAGE};
  for (;;) {
    oee_list_page page;
    if (oee_engine_list(eng, &q, &page) != 0) die("list", NULL);
    for (size_t i = 0; i < page.len; i++) {
      const oee_task_info *t = page.tasks[i];
      long idx;
      int64_t when;
      if (t->submit_index > *last_index) *last_index = t->submit_index;
      if (firing_of(t, n, &idx, &when) != 0 || when != at_s) continue;
      if (mark[idx]) {
        ++*dups;
        continue;
      }
      mark[idx] = 1;
      late[fired++] = (double)(t->created_at_ns - at_s * NS) / 1e6;
    }
    uint64_t next = page.next_index;
    oee_list_page_free(&page);
    if (next == 0) break;
    q.after_index = next;
  }
  return fired;
}

/* Sums runs and skipped over every schedule. */
static void schedule_totals(oee_engine *eng, int64_t *runs, int64_t *skipped) {
  *runs = *skipped = 0;
  char after[OEE_SCHEDULE_ID_MAX + 1] = "";
  int more = 1;
  while (more) {
    oee_schedule **v;
    size_t got;
    if (oee_engine_schedule_list(eng, after, LIST_PAGE, &v, &got, &more) != 0) {
      die("schedule_list", NULL);
    }
    for (size_t i = 0; i < got; i++) {
      *runs += v[i]->runs;
      *skipped += v[i]->skipped;
    }
    if (got > 0) snprintf(after, sizeof(after), "%s", v[got - 1]->schedule_id);
    oee_schedule_list_free(v, got);
    if (got == 0) break;
  }
}

/* Tasks queued, running or waiting for a time. */
static uint64_t busy_tasks(oee_engine *eng) {
  oee_status st;
  if (oee_engine_status(eng, &st) != 0) die("status", NULL);
  uint64_t n = st.by_status[OEE_TASK_QUEUED] + st.by_status[OEE_TASK_RUNNING] +
               st.by_status[OEE_TASK_SCHEDULED];
  oee_status_free(&st);
  return n;
}

/* ------------------------------------------------------------ a store */

/* Removes the engine's data directory (its files, then itself). */
static void remove_dir(const char *path) {
  DIR *d = opendir(path);
  if (d == NULL) return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    if (unlinkat(dirfd(d), e->d_name, 0) != 0) {
      fprintf(stderr, "sched_bench: cannot remove %s/%s\n", path, e->d_name);
    }
  }
  closedir(d);
  rmdir(path);
}

/* One store's run; returns 0, or 1 when a firing was missing or the idle
 * window was not clean. */
static int run_store(const options *o, const char *store) {
  int durable = strcmp(store, "sqlite") == 0;
  char dir[4096] = "";
  if (durable) {
    snprintf(dir, sizeof(dir), "%s/sched-bench.%ld.%lld", o->dir, (long)getpid(),
             (long long)(oee_now_ns() / 1000));
  }
  long n = o->schedules;
  oee_engine_config cfg = {
      .num_workers = 2,
      .max_schedules = n > OEE_DEFAULT_MAX_SCHEDULES ? (size_t)n : 0,
      .data_dir = durable ? dir : NULL,
      .sync_normal = 0,
  };
  oee_engine *eng;
  oee_error err;
  if (oee_engine_open(&cfg, &eng, &err) != 0) die("open", &err);
  if (oee_engine_start(eng) != 0) die("start", NULL);
  watcher w;
  watch_start(&w, eng, n, o->minutes);
  int failed = 0;

  /* Create. A memory run is short: it waits out a boundary that is close
   * rather than cross it. */
  int64_t now = oee_now_ns();
  if (!durable && 60 * NS - now % (60 * NS) < 5 * NS) {
    sleep_until(now - now % (60 * NS) + 61 * NS);
  }
  long rss0 = rss_bytes();
  int64_t c0 = oee_now_ns();
  double secs = create_all(eng, n, o->threads);
  int64_t c1 = oee_now_ns();
  long rss1 = rss_bytes();
  int crossed = c0 / (60 * NS) != c1 / (60 * NS);
  printf(
      "RESULT sched.%s.create store=%s schedules=%ld threads=%d seconds=%.3f rate=%.0f "
      "rss_base_bytes=%ld rss_bytes=%ld bytes_per_schedule=%.0f crossed_boundary=%d\n",
      store, store, n, o->threads, secs, (double)n / secs, rss0, rss1,
      (double)(rss1 - rss0) / (double)n, crossed);
  fflush(stdout);

  /* The boundaries. */
  unsigned char *mark = xcalloc((size_t)n, 1);
  double *late = xcalloc((size_t)n, sizeof(*late));
  uint64_t after = 0; /* the highest submit_index listed so far */
  size_t scanned = 0; /* the watcher's log read so far */
  int64_t first_s = (c1 / NS / 60 + 1) * 60;
  for (int k = 1; k <= o->minutes; k++) {
    int64_t at_s = first_s + 60LL * (k - 1);
    int64_t settle_ns = (at_s + SETTLE_BY) * NS;
    sleep_until(at_s * NS + NS / 2);
    /* Until the watcher saw all N (cheap to poll), then from the store. */
    long seen = 0;
    int64_t last_seen = NO_TIME;
    for (;;) {
      watch_scan(&w, &scanned, at_s, &seen, &last_seen);
      if (seen >= n || oee_now_ns() >= settle_ns || atomic_load(&w.lost)) break;
      sleep_ms(100);
    }
    long fired, dups;
    uint64_t next_after = after;
    while ((fired = collect(eng, n, at_s, after, mark, late, &dups, &next_after)) < n &&
           oee_now_ns() < settle_ns) {
      sleep_ms(1000);
    }
    watch_scan(&w, &scanned, at_s, &seen, &last_seen);
    after = next_after;
    int64_t runs, skipped;
    schedule_totals(eng, &runs, &skipped);
    qsort(late, (size_t)fired, sizeof(*late), cmp_double);
    double min = fired ? late[0] : -1, p50 = fired ? late[fired / 2] : -1;
    double p99 = fired ? late[(fired * 99) / 100] : -1, max = fired ? late[fired - 1] : -1;
    double spread = last_seen == NO_TIME ? -1 : (double)(last_seen - at_s * NS) / 1e6;
    printf(
        "RESULT sched.%s.fire.m%d store=%s schedules=%ld minute=%d fired=%ld missing=%ld "
        "min_ms=%.3f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f spread_ms=%.3f seen=%ld runs=%lld "
        "skipped=%lld "
        "rss_bytes=%ld\n",
        store, k, store, n, k, fired, n - fired, min, p50, p99, max, spread, seen, (long long)runs,
        (long long)skipped, rss_bytes());
    fflush(stdout);
    if (fired < n || dups > 0) {
      fprintf(stderr, "sched_bench: %s minute %d: %ld of %ld schedules fired, %ld repeated\n",
              store, k, fired, n, dups);
      failed = 1;
    }
    if (atomic_load(&w.lost)) fprintf(stderr, "sched_bench: the watcher lost events\n");

    if (k == 1) { /* idle, between this boundary and the next */
      sleep_until((at_s + IDLE_FROM) * NS);
      uint64_t busy = busy_tasks(eng);
      double cpu0 = cpu_s();
      int64_t t0 = mono_ns();
      sleep_until((at_s + IDLE_TO) * NS);
      double cpu = cpu_s() - cpu0, wall = (double)(mono_ns() - t0) / 1e9;
      busy += busy_tasks(eng);
      double share = cpu / wall;
      printf(
          "RESULT sched.%s.idle store=%s schedules=%ld seconds=%d cpu_share=%.5f target=%.2f "
          "met=%s busy_tasks=%llu\n",
          store, store, n, IDLE_TO - IDLE_FROM, share, IDLE_TARGET,
          share < IDLE_TARGET ? "yes" : "no", (unsigned long long)busy);
      fflush(stdout);
      if (busy != 0) {
        fprintf(stderr, "sched_bench: %s: %llu tasks were not finished in the idle window\n", store,
                (unsigned long long)busy);
        failed = 1;
      }
    }
  }
  free(mark);
  free(late);
  watch_stop(&w);
  oee_engine_destroy(eng);
  if (durable) remove_dir(dir);
  return failed;
}

int main(int argc, char **argv) {
  options o = {.schedules = 10000, .minutes = 2, .threads = 1, .dir = "/tmp"};
  const char *tmp = getenv("TMPDIR");
  if (tmp && tmp[0]) o.dir = tmp;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (v == NULL) die("an option needs a value", NULL);
    if (strcmp(a, "--schedules") == 0) {
      o.schedules = atol(v);
    } else if (strcmp(a, "--minutes") == 0) {
      o.minutes = atoi(v);
    } else if (strcmp(a, "--threads") == 0) {
      o.threads = atoi(v);
    } else if (strcmp(a, "--dir") == 0) {
      o.dir = v;
    } else if (strcmp(a, "--only") == 0) {
      o.only = v;
    } else {
      die("usage: sched_bench [--schedules N] [--minutes M] [--threads T] [--dir DIR] "
          "[--only memory|sqlite]",
          NULL);
    }
    i++;
  }
  if (o.schedules < 1 || o.minutes < 1 || o.threads < 1) die("counts must be positive", NULL);
  if (o.only && strcmp(o.only, "memory") != 0 && strcmp(o.only, "sqlite") != 0) {
    die("--only takes memory or sqlite", NULL);
  }
  int failed = 0;
  if (o.only == NULL || strcmp(o.only, "memory") == 0) failed |= run_store(&o, "memory");
  if (o.only == NULL || strcmp(o.only, "sqlite") == 0) failed |= run_store(&o, "sqlite");
  return failed;
}
