/* metrics.c - the families of GET /metrics (see metrics.h for the design). */
#include "server/metrics.h"

#include <dirent.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/oee_alloc.h"
#include "rpc/error.h"

/* gRPC status codes 0 (OK) to 16 (UNAUTHENTICATED); others count as
 * UNKNOWN. */
#define N_CODES 17

typedef struct method_stats {
  char *name; /* the short RPC name; owned */
  _Atomic uint64_t calls[N_CODES];
  _Atomic uint64_t buckets[OEE_HISTOGRAM_BUCKETS]; /* durations, see oee_histogram_bucket() */
  _Atomic uint64_t sum_ns;
} method_stats;

struct oee_rpc_stats {
  size_t n_methods;    /* the runtime's registered methods */
  int *slot;           /* [n_methods]: index into stats, or -1: not counted */
  size_t n;            /* slots made */
  method_stats *stats; /* [n_methods] allocated, n used */
};

/* ------------------------------------------------------------- calls */

/* The slot of `path` (made if needed), or -1 for a path outside prefix;
 * -2 when out of memory. */
static int slot_for(oee_rpc_stats *st, const char *path, const char *prefix) {
  const char *slash = path ? strrchr(path, '/') : NULL;
  if (slash == NULL || strncmp(path, prefix, strlen(prefix)) != 0) return -1;
  const char *name = slash + 1;
  for (size_t j = 0; j < st->n; j++) {
    if (strcmp(st->stats[j].name, name) == 0) return (int)j;
  }
  if ((st->stats[st->n].name = oee_strdup(name)) == NULL) return -2;
  return (int)st->n++;
}

int oee_rpc_stats_create(const oee_rpc_server *srv, const char *prefix, oee_rpc_stats **out) {
  *out = NULL;
  size_t m = oee_rpc_server_method_count(srv);
  oee_rpc_stats *st = oee_calloc(1, sizeof(*st));
  if (st == NULL) return -1;
  st->slot = oee_calloc(m ? m : 1, sizeof(*st->slot));
  st->stats = oee_calloc(m ? m : 1, sizeof(*st->stats));
  int rc = st->slot && st->stats ? 0 : -1;
  for (size_t i = 0; rc == 0 && i < m; i++, st->n_methods = i) {
    st->slot[i] = slot_for(st, oee_rpc_server_method_path(srv, i), prefix);
    if (st->slot[i] == -2) rc = -1;
  }
  if (rc != 0) {
    oee_rpc_stats_destroy(st);
    return -1;
  }
  *out = st;
  return 0;
}

void oee_rpc_stats_destroy(oee_rpc_stats *st) {
  if (st == NULL) return;
  for (size_t j = 0; j < st->n; j++) oee_free(st->stats[j].name);
  oee_free(st->stats);
  oee_free(st->slot);
  oee_free(st);
}

void oee_rpc_stats_observe(void *ud, size_t method, grpc_status_code code, int64_t duration_ns) {
  oee_rpc_stats *st = ud;
  if (method >= st->n_methods || st->slot[method] < 0) return;
  method_stats *m = &st->stats[st->slot[method]];
  int c = code >= 0 && code < N_CODES ? (int)code : (int)GRPC_STATUS_UNKNOWN;
  if (duration_ns < 0) duration_ns = 0;
  atomic_fetch_add_explicit(&m->calls[c], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&m->buckets[oee_histogram_bucket(duration_ns)], 1,
                            memory_order_relaxed);
  atomic_fetch_add_explicit(&m->sum_ns, (uint64_t)duration_ns, memory_order_relaxed);
}

static void method_histogram(method_stats *m, oee_histogram *h) {
  h->count = 0;
  for (int i = 0; i < OEE_HISTOGRAM_BUCKETS; i++) {
    h->buckets[i] = atomic_load_explicit(&m->buckets[i], memory_order_relaxed);
    h->count += h->buckets[i];
  }
  h->sum_ns = atomic_load_explicit(&m->sum_ns, memory_order_relaxed);
}

/* Only the codes a method has seen get a series: 17 codes times every
 * method would be mostly zeros. */
static void render_rpc(oee_expo *e, const oee_rpc_stats *st) {
  size_t n = st ? st->n : 0;
  oee_expo_family(e, "oee_rpc_requests_total", "counter",
                  "gRPC calls of each oee.v1 method by final status code, refusals included.");
  for (size_t j = 0; j < n; j++) {
    for (int c = 0; c < N_CODES; c++) {
      uint64_t v = atomic_load_explicit(&st->stats[j].calls[c], memory_order_relaxed);
      oee_label l[2] = {{"method", st->stats[j].name}, {"code", oee_rpc_status_name(c)}};
      if (v > 0) oee_expo_u64(e, "oee_rpc_requests_total", l, 2, v);
    }
  }
  oee_expo_family(e, "oee_rpc_duration_seconds", "histogram",
                  "Time from a call's arrival to its final status, by method.");
  for (size_t j = 0; j < n; j++) {
    oee_histogram h;
    method_histogram(&st->stats[j], &h);
    oee_label l = {"method", st->stats[j].name};
    oee_expo_histogram(e, "oee_rpc_duration_seconds", &l, 1, &h);
  }
}

/* ------------------------------------------------------------- tasks */

/* The per-type counts, copied out of the engine's visit. */
typedef struct type_list {
  oee_type_metrics *v;
  size_t n, cap;
  int failed;
} type_list;

static void collect(void *arg, const oee_type_metrics *m) {
  type_list *t = arg;
  if (t->n == t->cap) {
    size_t cap = t->cap ? 2 * t->cap : 16;
    oee_type_metrics *grown = oee_realloc(t->v, cap * sizeof(*grown));
    if (grown == NULL) {
      t->failed = 1;
      return;
    }
    t->v = grown;
    t->cap = cap;
  }
  t->v[t->n++] = *m;
}

static const oee_task_status final_statuses[] = {OEE_TASK_DONE, OEE_TASK_ERROR, OEE_TASK_CANCELLED};

static void render_counters(oee_expo *e, const type_list *t) {
  oee_expo_family(e, "oee_tasks_submitted_total", "counter",
                  "Acknowledged task submissions (repeats of an idempotency key excluded).");
  for (size_t i = 0; i < t->n; i++) {
    oee_label l = {"task_type", t->v[i].task_type};
    oee_expo_u64(e, "oee_tasks_submitted_total", &l, 1, t->v[i].submitted);
  }
  oee_expo_family(e, "oee_tasks_finished_total", "counter",
                  "Tasks that reached a final status, by that status.");
  for (size_t i = 0; i < t->n; i++) {
    for (size_t s = 0; s < sizeof(final_statuses) / sizeof(final_statuses[0]); s++) {
      oee_task_status st = final_statuses[s];
      oee_label l[2] = {{"task_type", t->v[i].task_type}, {"status", oee_task_status_name(st)}};
      oee_expo_u64(e, "oee_tasks_finished_total", l, 2, t->v[i].finished[st]);
    }
  }
  oee_expo_family(e, "oee_task_retries_total", "counter",
                  "Failed attempts scheduled to run again.");
  for (size_t i = 0; i < t->n; i++) {
    oee_label l = {"task_type", t->v[i].task_type};
    oee_expo_u64(e, "oee_task_retries_total", &l, 1, t->v[i].retries);
  }
}

static void render_durations(oee_expo *e, const type_list *t) {
  oee_expo_family(e, "oee_task_queue_wait_seconds", "histogram",
                  "Time from a task becoming QUEUED to the start of its attempt.");
  for (size_t i = 0; i < t->n; i++) {
    oee_label l = {"task_type", t->v[i].task_type};
    oee_expo_histogram(e, "oee_task_queue_wait_seconds", &l, 1, &t->v[i].queue_wait);
  }
  oee_expo_family(e, "oee_task_run_seconds", "histogram",
                  "Time from the start of an attempt to its end.");
  for (size_t i = 0; i < t->n; i++) {
    oee_label l = {"task_type", t->v[i].task_type};
    oee_expo_histogram(e, "oee_task_run_seconds", &l, 1, &t->v[i].run);
  }
}

static const oee_task_status all_statuses[] = {OEE_TASK_QUEUED,  OEE_TASK_SCHEDULED,
                                               OEE_TASK_RUNNING, OEE_TASK_DONE,
                                               OEE_TASK_ERROR,   OEE_TASK_CANCELLED};

static void render_gauges(oee_expo *e, const oee_metrics *m, size_t watchers) {
  oee_expo_family(e, "oee_tasks", "gauge", "Tasks in the store by status.");
  for (size_t s = 0; s < sizeof(all_statuses) / sizeof(all_statuses[0]); s++) {
    oee_label l = {"status", oee_task_status_name(all_statuses[s])};
    oee_expo_u64(e, "oee_tasks", &l, 1, m->by_status[all_statuses[s]]);
  }
  oee_expo_family(e, "oee_workers_busy", "gauge", "In-process workers running a task.");
  oee_expo_u64(e, "oee_workers_busy", NULL, 0, (uint64_t)m->workers_busy);
  oee_expo_family(e, "oee_remote_workers", "gauge",
                  "Remote workers heard from recently (as GetSystemStatus lists them).");
  oee_expo_u64(e, "oee_remote_workers", NULL, 0, m->remote_workers);
  oee_expo_family(e, "oee_watchers", "gauge", "Open WatchTasks streams.");
  oee_expo_u64(e, "oee_watchers", NULL, 0, watchers);
  oee_expo_family(e, "oee_store_commit_seconds", "histogram",
                  "Group commits of the sqlite store, from the write's start until durable.");
  oee_expo_histogram(e, "oee_store_commit_seconds", NULL, 0, &m->store_commits);
  oee_expo_family(e, "oee_store_bytes", "gauge",
                  "Bytes of the sqlite database and its WAL (0 for the memory store).");
  oee_expo_u64(e, "oee_store_bytes", NULL, 0, m->store_bytes);
}

/* ----------------------------------------------------------- process */

/* utime, stime (clock ticks), starttime (ticks after boot) and rss (pages)
 * from /proc/self/stat: fields 14, 15, 22 and 24, counted after the
 * command name, which may hold spaces and ends at the last ')'. */
static int read_self_stat(unsigned long long *utime, unsigned long long *stime,
                          unsigned long long *start, long long *rss) {
  char buf[1024];
  FILE *f = fopen("/proc/self/stat", "r");
  size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
  if (f) fclose(f);
  buf[n] = '\0';
  char *p = strrchr(buf, ')');
  if (p == NULL) return -1;
  int got = sscanf(p + 1,
                   " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d"
                   " %*d %llu %*u %lld",
                   utime, stime, start, rss);
  return got == 4 ? 0 : -1;
}

/* The boot time (btime of /proc/stat), seconds since the epoch. */
static long long boot_time(void) {
  char line[256];
  long long bt = -1;
  FILE *f = fopen("/proc/stat", "r");
  while (f && fgets(line, sizeof(line), f)) {
    if (sscanf(line, "btime %lld", &bt) == 1) break;
  }
  if (f) fclose(f);
  return bt;
}

static uint64_t count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  uint64_t n = 0;
  if (d == NULL) return 0;
  for (struct dirent *de; (de = readdir(d)) != NULL;) {
    if (de->d_name[0] != '.') n++;
  }
  closedir(d);
  return n > 0 ? n - 1 : 0; /* not the one opendir holds */
}

int oee_process_stats_read(oee_process_stats *out) {
  *out = (oee_process_stats){0};
  unsigned long long utime, stime, start;
  long long rss;
  double hz = (double)sysconf(_SC_CLK_TCK);
  long long bt = boot_time();
  out->open_fds = count_fds();
  if (read_self_stat(&utime, &stime, &start, &rss) != 0 || hz <= 0 || bt < 0) return -1;
  out->resident_bytes = (uint64_t)rss * (uint64_t)sysconf(_SC_PAGESIZE);
  out->cpu_seconds = (double)(utime + stime) / hz;
  out->start_time_seconds = (double)bt + (double)start / hz;
  return 0;
}

static void render_process(oee_expo *e) {
  oee_process_stats p;
  (void)oee_process_stats_read(&p); /* zeros for what /proc did not give */
  oee_expo_family(e, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
  oee_expo_u64(e, "process_resident_memory_bytes", NULL, 0, p.resident_bytes);
  oee_expo_family(e, "process_cpu_seconds_total", "counter",
                  "Total user and system CPU time spent in seconds.");
  oee_expo_double(e, "process_cpu_seconds_total", NULL, 0, p.cpu_seconds);
  oee_expo_family(e, "process_open_fds", "gauge", "Number of open file descriptors.");
  oee_expo_u64(e, "process_open_fds", NULL, 0, p.open_fds);
  oee_expo_family(e, "process_start_time_seconds", "gauge",
                  "Start time of the process since unix epoch in seconds.");
  oee_expo_double(e, "process_start_time_seconds", NULL, 0, p.start_time_seconds);
}

/* ------------------------------------------------------------ render */

int oee_metrics_render(const oee_metrics_source *src, oee_expo *e) {
  type_list types = {0};
  oee_metrics m;
  int rc = oee_engine_metrics(src->eng, &m);
  if (rc == 0) oee_engine_type_metrics(src->eng, collect, &types);
  if (rc != 0 || types.failed) {
    oee_free(types.v);
    e->failed = 1;
    return -1;
  }
  render_counters(e, &types);
  render_durations(e, &types);
  render_gauges(e, &m, src->watchers ? src->watchers(src->ud) : 0);
  render_rpc(e, src->rpc);
  render_process(e);
  oee_free(types.v);
  return e->failed ? -1 : 0;
}
