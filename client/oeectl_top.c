/*
 * oeectl_top.c - `oeectl top`: a live view of the server.
 *
 * DESIGN
 *  Threads. The main thread owns the terminal, the refresh clock and the one
 *  GetSystemStatus call per refresh (task counts, workers, remote workers).
 *  A reader thread holds a WatchTasks stream and keeps in `top_state` the
 *  set of running tasks and two counters (submissions, finishes) that the
 *  main thread turns into rates per interval. Whenever the stream ends the
 *  reader reconnects after a backoff (0.25 s doubling to 4 s, back to
 *  0.25 s after a stream that brought events) and starts from a fresh
 *  snapshot.
 *  Lock. top_state.mu guards the running set, the counters, the stream's
 *  error text, `reader` and `stop`; the reader waits on `wake` between
 *  attempts. The only gRPC function called with mu held is
 *  oee_rpc_reader_cancel(), which marks the call cancelled and never waits:
 *  holding mu across it keeps the reader thread from closing the stream
 *  under it. Nothing else nests inside mu.
 *  Snapshot. The stream asks include_snapshot: first one event per existing
 *  task (its latest change), then every change, none missed or doubled (the
 *  server takes the snapshot atomically with the subscription). RUNNING
 *  puts a task in the set, any other status takes it out. Snapshot events
 *  must not count as submissions or finishes, and the stream has no marker
 *  where the snapshot ends; but snapshot events report changes from before
 *  the call started and later events changes after it, so events count from
 *  the first whose time is at or past the client's clock when the call
 *  started (a clock skew of d seconds moves that boundary by d, once per
 *  connection). A snapshot larger than the server's watch_buffer is refused
 *  (RESOURCE_EXHAUSTED before any event): the reader then watches without a
 *  snapshot at once and reads the running tasks with ListTasks once its
 *  stream is open. Either way each refresh drops the in-process tasks that no worker
 *  of the GetSystemStatus reply runs any more (and that were seen running
 *  before the call was made), so a change lost around a reconnect cannot
 *  leave a task listed for ever.
 *  Rates. A submission is a QUEUED or SCHEDULED event whose time is the
 *  task's created_at: a task's first change (retries, a due run_at and
 *  RetryTask come later). A finish is a DONE, ERROR or CANCELLED event.
 *  Signals. SIGINT, SIGTERM, SIGWINCH (and on a terminal SIGTSTP, SIGCONT)
 *  are blocked in every thread before the channel exists (gRPC's threads
 *  inherit the mask) and read from a signalfd in the main thread's poll(),
 *  beside the keyboard and the refresh timer. No handler runs
 *  asynchronously, so the terminal is restored by ordinary code on the one
 *  way out of the loop, whichever of q, SIGINT, SIGTERM or --count ends it.
 *  Terminal. Plain ANSI (VT100/xterm) sequences and termios, not curses:
 *  every refresh redraws the whole screen in one write, so curses' screen
 *  diffing buys nothing here, while initscr() would install SIGWINCH and
 *  SIGTSTP handlers of its own beside the signalfd, give up on a TERM with
 *  no terminfo entry, and add a library to a binary the suite runs under
 *  LeakSanitizer. The sequences used (alternate screen, cursor home, erase
 *  line and below, hidden cursor, auto-wrap off) are understood by every
 *  terminal emulator in use and by tmux and screen. Text from the server
 *  (names, types, worker ids, errors) is printed with control characters
 *  replaced, so no task can send escape sequences to the operator's
 *  terminal, and cut by display columns (wcwidth in the user's locale).
 */
#include <errno.h>
#include <locale.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <wchar.h>
#include <wctype.h>

#include "client/oeectl.h"

#define NS_PER_S 1000000000LL
#define NS_PER_MS 1000000LL
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 4000
#define RECONNECT_MAX_MS 2000 /* the channel's longest reconnect backoff */
#define SEED_DEADLINE_MS 5000 /* ListTasks of the running tasks (no-snapshot mode) */
#define SEED_PAGE 1000        /* the server's page size cap */
#define MIN_INTERVAL_S 0.1
#define MAX_INTERVAL_S 3600.0
#define ID_FULL_MIN_COLS 100 /* narrower screens show the last 12 id characters */
#define LIST_TASKS_METHOD "/oee.v1.OrchestratorService/ListTasks"

/* Status keys of tasks_by_status, in display order. */
static const char *const status_keys[] = {"queued", "scheduled", "running",
                                          "done",   "error",     "cancelled"};
#define N_STATUS_KEYS (sizeof(status_keys) / sizeof(status_keys[0]))

/* One running task, with its text cut to fit (fixed size: no allocations). */
typedef struct run_entry {
  char id[40];        /* canonical UUID */
  char type[32];      /* task_type */
  char name[64];      /* name, cut on a UTF-8 character boundary */
  char worker[32];    /* "3" for in-process worker 3, else the remote worker's id */
  int worker_id;      /* in-process worker, -1 for a remote attempt */
  int64_t started_ns; /* started_at, Unix ns; 0 when unknown */
  int64_t seen_ns;    /* monotonic ns when this client last saw it RUNNING */
} run_entry;

/* What the reader thread and the main thread share (see DESIGN). */
typedef struct top_state {
  oee_rpc_channel *chan;     /* borrowed from the ctx; thread safe */
  oee_rpc_canceller *cancel; /* ends the reader's unary calls at stop; thread safe */
  pthread_mutex_t mu;
  pthread_cond_t wake; /* signalled at stop; CLOCK_MONOTONIC */
  /* Guarded by mu. */
  run_entry *run; /* the running set, unordered */
  size_t n_run, cap_run;
  uint64_t submitted, finished; /* live events counted since top started */
  char stream_err[256];         /* why the stream is down; "" while it is up */
  unsigned stream_err_gen;      /* bumped at every stream failure */
  oee_rpc_reader *reader;       /* the open stream, NULL between attempts */
  int stop;
  /* Reader thread only. */
  int no_snapshot;      /* the snapshot did not fit the server's watch_buffer */
  int live;             /* the current stream is past its snapshot */
  int64_t stream_t0_ns; /* Unix ns just before the current stream started */
} top_state;

/* Counts read from one GetSystemStatus reply. */
typedef struct counts {
  int by_status[N_STATUS_KEYS]; /* in status_keys order */
  int busy, workers;            /* in-process workers busy, all of them */
  int remote, leases;           /* remote workers listed, leases they hold */
} counts;

/* The main thread's state. */
typedef struct view {
  const oeectl_ctx *ctx;
  int64_t interval_ns;
  long count;                      /* refreshes before exit; 0: no limit */
  int tty;                         /* full screen; else one line (or JSON object) per refresh */
  Oee__V1__SystemStatus *status;   /* the last good reply (owned), or NULL */
  char status_err[256];            /* "CODE: message" of the last failed call, or "" */
  uint64_t last_sub, last_fin;     /* top_state's counters at the last refresh */
  int64_t last_tick_ns;            /* monotonic ns of the last refresh */
  uint64_t d_sub, d_fin;           /* events in the last interval */
  double submit_rate, finish_rate; /* per second over the last interval */
  int have_rates;                  /* 0 until one interval has passed */
  unsigned stream_err_seen;        /* lines mode: the last failure reported */
} view;

/* The terminal, when stdout is one. */
typedef struct term {
  int on;               /* raw mode and the alternate screen are in force */
  int keys;             /* stdin is a terminal: keys are read from it */
  struct termios saved; /* stdin's settings before top (when keys) */
} term;

static int64_t clock_ns(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static int64_t ts_ns(const Google__Protobuf__Timestamp *t) {
  return t != NULL ? t->seconds * NS_PER_S + t->nanos : 0;
}

/* "INVALID_ARGUMENT" for 3; thread safe (oeectl_code_name is not for
 * unknown codes). */
static const char *code_name(int code) {
  const char *n = oee_rpc_status_name(code);
  return n != NULL ? n : "UNKNOWN";
}

static void lock(top_state *t) {
  if (pthread_mutex_lock(&t->mu) != 0) abort();
}

static void unlock(top_state *t) {
  if (pthread_mutex_unlock(&t->mu) != 0) abort();
}

/* ---- the running set (mu held) ---- */

/* Copies at most len - 1 bytes of s, cut on a UTF-8 character boundary. */
static void copy_cut(char *dst, size_t len, const char *s) {
  size_t n = strlen(s);
  if (n >= len) {
    n = len - 1;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
  }
  memcpy(dst, s, n);
  dst[n] = '\0';
}

static run_entry *run_find(top_state *t, const char *id) {
  for (size_t i = 0; i < t->n_run; i++)
    if (strcmp(t->run[i].id, id) == 0) return &t->run[i];
  return NULL;
}

static void run_del_at(top_state *t, size_t i) { t->run[i] = t->run[--t->n_run]; }

static void run_del(top_state *t, const char *id) {
  run_entry *e = run_find(t, id);
  if (e != NULL) run_del_at(t, (size_t)(e - t->run));
}

/* Adds or updates a RUNNING task. Out of memory leaves it out of the view. */
static void run_put(top_state *t, const Oee__V1__Task *k, int64_t now_ns) {
  run_entry *e = run_find(t, k->id);
  if (e == NULL && t->n_run == t->cap_run) {
    size_t cap = t->cap_run ? 2 * t->cap_run : 64;
    run_entry *p = realloc(t->run, cap * sizeof(*p));
    if (p == NULL) return;
    t->run = p;
    t->cap_run = cap;
  }
  if (e == NULL) e = &t->run[t->n_run++];
  copy_cut(e->id, sizeof(e->id), k->id);
  copy_cut(e->type, sizeof(e->type), k->task_type);
  copy_cut(e->name, sizeof(e->name), k->name);
  e->worker_id = k->worker_id;
  if (k->worker_id >= 0)
    snprintf(e->worker, sizeof(e->worker), "%d", k->worker_id);
  else
    copy_cut(e->worker, sizeof(e->worker), k->remote_worker_id[0] ? k->remote_worker_id : "-");
  e->started_ns = ts_ns(k->started_at);
  e->seen_ns = now_ns;
}

static int worker_runs(const Oee__V1__SystemStatus *s, const char *id) {
  for (size_t i = 0; i < s->n_workers; i++)
    if (strcmp(s->workers[i]->current_task_id, id) == 0) return 1;
  return 0;
}

/* Drops the in-process tasks seen running before `sent_ns` (monotonic,
 * when the GetSystemStatus call s answers was made) that no worker runs. */
static void run_prune(top_state *t, const Oee__V1__SystemStatus *s, int64_t sent_ns) {
  for (size_t i = t->n_run; i-- > 0;) {
    const run_entry *e = &t->run[i];
    if (e->worker_id >= 0 && e->seen_ns < sent_ns && !worker_runs(s, e->id)) run_del_at(t, i);
  }
}

/* Longest running first; ties by id (ids sort by creation). */
static int run_cmp(const void *a, const void *b) {
  const run_entry *x = a, *y = b;
  if (x->started_ns != y->started_ns) return x->started_ns < y->started_ns ? -1 : 1;
  return strcmp(x->id, y->id);
}

/* A sorted copy of at most `max` running tasks (caller frees; NULL when
 * out of memory or none) and how many run in all in *total. */
static run_entry *run_copy(top_state *t, size_t max, size_t *n, size_t *total) {
  run_entry *out = NULL;
  lock(t);
  if (t->n_run > 1) qsort(t->run, t->n_run, sizeof(*t->run), run_cmp);
  *total = t->n_run;
  *n = t->n_run < max ? t->n_run : max;
  if (*n > 0 && (out = malloc(*n * sizeof(*out))) != NULL) memcpy(out, t->run, *n * sizeof(*out));
  unlock(t);
  if (out == NULL) *n = 0;
  return out;
}

/* ---- the reader thread ---- */

static int is_final(Oee__V1__TaskStatus s) {
  return s == OEE__V1__TASK_STATUS__TASK_STATUS_DONE ||
         s == OEE__V1__TASK_STATUS__TASK_STATUS_ERROR ||
         s == OEE__V1__TASK_STATUS__TASK_STATUS_CANCELLED;
}

/* A task's first change: QUEUED or SCHEDULED at its creation time. */
static int is_submission(const Oee__V1__TaskEvent *e) {
  Oee__V1__TaskStatus s = e->task->status;
  if (s != OEE__V1__TASK_STATUS__TASK_STATUS_QUEUED &&
      s != OEE__V1__TASK_STATUS__TASK_STATUS_SCHEDULED)
    return 0;
  return e->time != NULL && e->task->created_at != NULL &&
         ts_ns(e->time) == ts_ns(e->task->created_at);
}

/* mu held. */
static void apply_event(top_state *t, const Oee__V1__TaskEvent *e, int64_t now_ns) {
  const Oee__V1__Task *k = e->task;
  if (k == NULL) return;
  if (!t->live && ts_ns(e->time) >= t->stream_t0_ns) t->live = 1;
  if (k->status == OEE__V1__TASK_STATUS__TASK_STATUS_RUNNING)
    run_put(t, k, now_ns);
  else
    run_del(t, k->id);
  if (!t->live) return;
  if (is_submission(e)) t->submitted++;
  if (is_final(k->status)) t->finished++;
}

/* Records why the stream ended (not after stop: that is no failure). */
static void stream_failed(top_state *t, int code, const char *msg) {
  lock(t);
  if (!t->stop) {
    snprintf(t->stream_err, sizeof(t->stream_err), "WatchTasks: %s: %s (reconnecting)",
             code_name(code), msg);
    t->stream_err_gen++;
  }
  unlock(t);
}

/* Publishes the new stream and starts a fresh view of it; 0 after stop. */
static int stream_attach(top_state *t, oee_rpc_reader *r, int64_t t0_ns) {
  lock(t);
  int ok = !t->stop;
  if (ok) {
    t->reader = r;
    t->n_run = 0; /* the snapshot (or ListTasks) brings them again */
    t->live = t->no_snapshot;
    t->stream_t0_ns = t0_ns;
    t->stream_err[0] = '\0';
  }
  unlock(t);
  return ok;
}

static void stream_detach(top_state *t) {
  lock(t);
  t->reader = NULL;
  unlock(t);
}

/* No-snapshot mode: the running tasks from ListTasks, all pages. */
static void seed_running(top_state *t) {
  Oee__V1__ListTasksRequest req = OEE__V1__LIST_TASKS_REQUEST__INIT;
  char *token = NULL;
  req.status_filter = OEE__V1__TASK_STATUS__TASK_STATUS_RUNNING;
  req.page_size = SEED_PAGE;
  do {
    Oee__V1__ListTasksResponse *r = NULL;
    int code = oee_rpc_unary_cancellable(
        t->chan, LIST_TASKS_METHOD, &req.base, &oee__v1__list_tasks_response__descriptor,
        (ProtobufCMessage **)&r, SEED_DEADLINE_MS, t->cancel, NULL);
    if (code != GRPC_STATUS_OK) break;
    int64_t now = clock_ns(CLOCK_MONOTONIC);
    lock(t);
    for (size_t i = 0; i < r->n_tasks; i++) run_put(t, r->tasks[i], now);
    unlock(t);
    free(token);
    token = r->next_page_token[0] != '\0' ? strdup(r->next_page_token) : NULL;
    oee__v1__list_tasks_response__free_unpacked(r, NULL);
    req.page_token = token;
  } while (token != NULL);
  free(token);
}

/* Reads the stream to its end. Returns the number of events. */
static long read_events(top_state *t, oee_rpc_reader *r, oee_rpc_status *st) {
  Oee__V1__TaskEvent *e = NULL;
  long n = 0;
  int rc;
  while ((rc = oee_v1_orchestrator_service_watch_tasks_next(r, &e, st)) == 1) {
    int64_t now = clock_ns(CLOCK_MONOTONIC);
    lock(t);
    apply_event(t, e, now);
    unlock(t);
    oee__v1__task_event__free_unpacked(e, NULL);
    n++;
  }
  if (rc < 0) {
    oee_rpc_status_free(st);
    st->code = GRPC_STATUS_INTERNAL;
  }
  return n;
}

/* Refused before any event because the snapshot does not fit the server's
 * watch_buffer (the only refusal that names include_snapshot). */
static int snapshot_refused(const top_state *t, long n, const oee_rpc_status *st) {
  return n == 0 && !t->no_snapshot && st->code == GRPC_STATUS_RESOURCE_EXHAUSTED &&
         st->message != NULL && strstr(st->message, "include_snapshot") != NULL;
}

/* One WatchTasks call from start to end. Returns the events it brought, or
 * -1 to go on at once without a snapshot. */
static long stream_once(top_state *t) {
  Oee__V1__WatchTasksRequest req = OEE__V1__WATCH_TASKS_REQUEST__INIT;
  oee_rpc_reader *r = NULL;
  oee_rpc_status st = {0};
  int64_t t0 = clock_ns(CLOCK_REALTIME);
  req.include_snapshot = !t->no_snapshot;
  if (oee_v1_orchestrator_service_watch_tasks_start(t->chan, &req, 0, &r) != 0) {
    stream_failed(t, GRPC_STATUS_INTERNAL, "cannot start the call");
    return 0;
  }
  long n = 0;
  if (stream_attach(t, r, t0)) {
    if (t->no_snapshot) seed_running(t);
    n = read_events(t, r, &st);
    stream_detach(t);
    if (snapshot_refused(t, n, &st)) {
      t->no_snapshot = 1;
      n = -1;
    } else {
      stream_failed(t, st.code, st.message != NULL ? st.message : "the stream ended");
    }
  }
  oee_rpc_status_free(&st);
  oee_v1_orchestrator_service_watch_tasks_close(r);
  return n;
}

/* Waits ms or until stop; returns 1 once stopping. */
static int wait_or_stop(top_state *t, int ms) {
  int64_t until = clock_ns(CLOCK_MONOTONIC) + ms * NS_PER_MS;
  struct timespec ts = {.tv_sec = until / NS_PER_S, .tv_nsec = until % NS_PER_S};
  lock(t);
  while (!t->stop && pthread_cond_timedwait(&t->wake, &t->mu, &ts) != ETIMEDOUT) {
  }
  int stop = t->stop;
  unlock(t);
  return stop;
}

static void *reader_main(void *p) {
  top_state *t = p;
  int backoff = BACKOFF_MIN_MS;
  do {
    long n = stream_once(t);
    if (n < 0) continue;
    if (n > 0) backoff = BACKOFF_MIN_MS;
    int ms = backoff;
    backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    if (wait_or_stop(t, ms)) break;
  } while (1);
  return NULL;
}

/* Ends the reader thread's calls and waits; the thread may then be joined. */
static void top_stop(top_state *t) {
  lock(t);
  t->stop = 1;
  if (t->reader != NULL) oee_rpc_reader_cancel(t->reader);
  pthread_cond_broadcast(&t->wake);
  unlock(t);
  oee_rpc_canceller_cancel(t->cancel);
}

static int state_init(top_state *t, oee_rpc_channel *chan) {
  pthread_condattr_t ca;
  memset(t, 0, sizeof(*t));
  t->chan = chan;
  if ((t->cancel = oee_rpc_canceller_create()) == NULL) return -1;
  if (pthread_mutex_init(&t->mu, NULL) != 0 || pthread_condattr_init(&ca) != 0 ||
      pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 || pthread_cond_init(&t->wake, &ca) != 0)
    abort();
  pthread_condattr_destroy(&ca);
  return 0;
}

static void state_destroy(top_state *t) {
  pthread_cond_destroy(&t->wake);
  pthread_mutex_destroy(&t->mu);
  oee_rpc_canceller_destroy(t->cancel);
  free(t->run);
}

/* ---- one refresh: status, rates ---- */

static int64_t status_deadline_ms(const view *v) {
  int64_t ms = v->interval_ns / NS_PER_MS;
  int64_t user = oeectl_deadline_ms(v->ctx);
  ms = ms < 1000 ? 1000 : ms > 2000 ? 2000 : ms; /* the view must not stall long */
  return user > 0 && user < ms ? user : ms;
}

/* Calls GetSystemStatus; keeps the reply in v->status or the error in
 * v->status_err. Returns the status code. */
static int fetch_status(view *v, top_state *t) {
  Oee__V1__GetSystemStatusRequest req = OEE__V1__GET_SYSTEM_STATUS_REQUEST__INIT;
  Oee__V1__SystemStatus *s = NULL;
  oee_rpc_status st = {0};
  int64_t sent = clock_ns(CLOCK_MONOTONIC);
  int code =
      oee_v1_orchestrator_service_get_system_status(t->chan, &req, &s, status_deadline_ms(v), &st);
  if (code != GRPC_STATUS_OK) {
    snprintf(v->status_err, sizeof(v->status_err), "%s: %s", code_name(code),
             st.message != NULL ? st.message : "");
    oee_rpc_status_free(&st);
    return code;
  }
  v->status_err[0] = '\0';
  if (v->status != NULL) oee__v1__system_status__free_unpacked(v->status, NULL);
  v->status = s;
  lock(t);
  run_prune(t, s, sent);
  unlock(t);
  return 0;
}

static void take_rates(view *v, top_state *t) {
  int64_t now = clock_ns(CLOCK_MONOTONIC);
  lock(t);
  uint64_t sub = t->submitted, fin = t->finished;
  unlock(t);
  double dt = (double)(now - v->last_tick_ns) / (double)NS_PER_S;
  v->d_sub = sub - v->last_sub;
  v->d_fin = fin - v->last_fin;
  v->submit_rate = dt > 0 ? (double)v->d_sub / dt : 0;
  v->finish_rate = dt > 0 ? (double)v->d_fin / dt : 0;
  v->last_sub = sub;
  v->last_fin = fin;
  v->last_tick_ns = now;
  v->have_rates = 1;
}

static void read_counts(const Oee__V1__SystemStatus *s, counts *c) {
  memset(c, 0, sizeof(*c));
  const Oee__V1__QueueStatus *q = s->queue;
  for (size_t i = 0; q != NULL && i < q->n_tasks_by_status; i++)
    for (size_t k = 0; k < N_STATUS_KEYS; k++)
      if (strcmp(q->tasks_by_status[i]->key, status_keys[k]) == 0)
        c->by_status[k] = q->tasks_by_status[i]->value;
  c->workers = s->num_workers;
  for (size_t i = 0; i < s->n_workers; i++) c->busy += s->workers[i]->busy != 0;
  c->remote = (int)s->n_remote_workers;
  for (size_t i = 0; i < s->n_remote_workers; i++) c->leases += s->remote_workers[i]->active_leases;
}

/* "12.3s", "5m02s", "1h02m", "3d04h"; "-" when unknown (negative). */
static const char *fmt_duration(double s, char *buf, size_t len) {
  if (s < 0) return "-";
  if (s > 1e9) s = 1e9;
  long n = (long)s;
  if (s < 60)
    snprintf(buf, len, "%.1fs", s);
  else if (s < 3600)
    snprintf(buf, len, "%ldm%02lds", n / 60, n % 60);
  else if (s < 86400)
    snprintf(buf, len, "%ldh%02ldm", n / 3600, n / 60 % 60);
  else
    snprintf(buf, len, "%ldd%02ldh", n / 86400, n / 3600 % 24);
  return buf;
}

/* Seconds task e has been running by this client's clock (-1: unknown). */
static double running_for(const run_entry *e, int64_t now_ns) {
  if (e->started_ns == 0) return -1;
  return now_ns > e->started_ns ? (double)(now_ns - e->started_ns) / (double)NS_PER_S : 0;
}

/* ---- lines mode: one line or JSON object per refresh ---- */

static const char *now_text(char *buf, size_t len) {
  int64_t now = clock_ns(CLOCK_REALTIME);
  Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  ts.seconds = now / NS_PER_S;
  ts.nanos = (int32_t)(now % NS_PER_S / NS_PER_MS * NS_PER_MS); /* milliseconds */
  return oeectl_format_time(&ts, buf, len);
}

static int print_text_line(const view *v) {
  counts c;
  char ts[64];
  read_counts(v->status, &c);
  printf("ts=%s", now_text(ts, sizeof(ts)));
  for (size_t k = 0; k < N_STATUS_KEYS; k++) printf(" %s=%d", status_keys[k], c.by_status[k]);
  printf(
      " submitted=%llu finished=%llu submit_rate=%.2f finish_rate=%.2f workers_busy=%d/%d"
      " remote_workers=%d\n",
      (unsigned long long)v->d_sub, (unsigned long long)v->d_fin, v->submit_rate, v->finish_rate,
      c.busy, c.workers, c.remote);
  return fflush(stdout) == 0 ? 0 : OEECTL_EXIT_SOFTWARE;
}

static json_t *json_running(top_state *t) {
  size_t n = 0, total = 0;
  run_entry *r = run_copy(t, SIZE_MAX, &n, &total);
  json_t *a = json_array();
  int64_t now = clock_ns(CLOCK_REALTIME);
  for (size_t i = 0; a != NULL && i < n; i++)
    json_array_append_new(
        a, json_pack("{s:s, s:s, s:s, s:s, s:f}", "id", r[i].id, "type", r[i].type, "name",
                     r[i].name, "worker", r[i].worker, "running_seconds", running_for(&r[i], now)));
  free(r);
  return a;
}

static int print_json_line(const view *v, top_state *t) {
  counts c;
  char ts[64];
  read_counts(v->status, &c);
  json_t *o = json_pack("{s:s}", "ts", now_text(ts, sizeof(ts)));
  for (size_t k = 0; o != NULL && k < N_STATUS_KEYS; k++)
    json_object_set_new(o, status_keys[k], json_integer(c.by_status[k]));
  json_t *rest =
      json_pack("{s:I, s:I, s:f, s:f, s:i, s:i, s:i, s:i, s:o*}", "submitted", (json_int_t)v->d_sub,
                "finished", (json_int_t)v->d_fin, "submit_rate", v->submit_rate, "finish_rate",
                v->finish_rate, "workers_busy", c.busy, "workers", c.workers, "remote_workers",
                c.remote, "remote_leases", c.leases, "running_tasks", json_running(t));
  if (o != NULL && (rest == NULL || json_object_update(o, rest) != 0)) {
    json_decref(o);
    o = NULL;
  }
  json_decref(rest);
  int rc = oeectl_print_json(o);
  if (rc == 0 && fflush(stdout) != 0) rc = OEECTL_EXIT_SOFTWARE;
  return rc;
}

/* A stream failure not reported yet goes to stderr, once. */
static void report_stream_err(view *v, top_state *t) {
  char err[sizeof(t->stream_err)] = "";
  lock(t);
  if (t->stream_err_gen != v->stream_err_seen) memcpy(err, t->stream_err, sizeof(err));
  v->stream_err_seen = t->stream_err_gen;
  unlock(t);
  if (err[0] != '\0') fprintf(stderr, "oeectl: top: %s\n", err);
}

static int lines_refresh(view *v, top_state *t) {
  int code = fetch_status(v, t);
  take_rates(v, t);
  if (code != GRPC_STATUS_OK) {
    fprintf(stderr, "oeectl: %s\n", v->status_err);
    return code;
  }
  report_stream_err(v, t);
  return v->ctx->json ? print_json_line(v, t) : print_text_line(v);
}

/* ---- full-screen mode: drawing ---- */

/* A screen being composed in memory, written at once. */
typedef struct frame {
  FILE *f;        /* open_memstream */
  int cols, rows; /* screen size */
  int row;        /* lines written */
} frame;

/* Writes s in at most `width` columns, characters that are not printable
 * (controls, bad encodings) as '?', padded with spaces to width when pad.
 * Returns the columns written. */
static int put_cols(FILE *f, const char *s, int width, int pad) {
  mbstate_t mb;
  size_t left = strlen(s);
  int col = 0;
  memset(&mb, 0, sizeof(mb));
  while (left > 0) {
    wchar_t wc = 0;
    size_t n = mbrtowc(&wc, s, left, &mb);
    int bad = n == 0 || n > left || iswcntrl((wint_t)wc), w = bad ? 1 : wcwidth(wc);
    if (bad || w < 0) {
      if (n == 0 || n > left) n = 1;
      memset(&mb, 0, sizeof(mb));
      bad = 1;
      w = 1;
    }
    if (col + w > width) break;
    if (bad)
      fputc('?', f);
    else
      fwrite(s, 1, n, f);
    col += w;
    s += n;
    left -= n;
  }
  for (; pad && col < width; col++) fputc(' ', f);
  return col;
}

/* Starts the next screen line; 0 when the screen is full. */
static int frame_next(frame *fr) {
  if (fr->row >= fr->rows) return 0;
  /* Erase first: erasing after text that fills the last column would
   * erase that column too. No newline after the last row (it scrolls). */
  fputs(fr->row > 0 ? "\r\n\033[K" : "\033[K", fr->f);
  fr->row++;
  return 1;
}

static void frame_line(frame *fr, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void frame_line(frame *fr, const char *fmt, ...) {
  char line[1024];
  va_list ap;
  if (!frame_next(fr)) return;
  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  put_cols(fr->f, line, fr->cols, 0);
}

/* "label   item  item ..." wrapped onto as many lines as the width needs. */
static void frame_items(frame *fr, const char *label, char items[][48], size_t n) {
  char line[512];
  size_t off = (size_t)snprintf(line, sizeof(line), "%-8s", label), start = off;
  for (size_t i = 0; i < n; i++) {
    const char *sep = off > start ? "  " : "";
    if (off > start && off + 2 + strlen(items[i]) > (size_t)fr->cols) {
      frame_line(fr, "%s", line);
      off = start = (size_t)snprintf(line, sizeof(line), "%-8s", "");
      sep = "";
    }
    off += (size_t)snprintf(line + off, sizeof(line) - off, "%s%s", sep, items[i]);
    if (off >= sizeof(line)) off = sizeof(line) - 1;
  }
  frame_line(fr, "%s", line);
}

static void draw_header(frame *fr, const view *v) {
  char up[32] = "";
  const Oee__V1__SystemStatus *s = v->status;
  if (s == NULL) {
    frame_line(fr, "oeectl top  %s  (q quits)", v->ctx->addr);
    return;
  }
  frame_line(fr, "oeectl top  %s  %s %s  up %s  (q quits)", v->ctx->addr,
             s->running ? "serving" : "stopping", s->version,
             fmt_duration(s->uptime_seconds, up, sizeof(up)));
}

static void draw_counts(frame *fr, const view *v) {
  char items[N_STATUS_KEYS][48];
  counts c;
  memset(&c, 0, sizeof(c));
  if (v->status != NULL) read_counts(v->status, &c);
  for (size_t k = 0; k < N_STATUS_KEYS; k++) {
    if (v->status != NULL)
      snprintf(items[k], sizeof(items[k]), "%s %d", status_keys[k], c.by_status[k]);
    else
      snprintf(items[k], sizeof(items[k]), "%s -", status_keys[k]);
  }
  frame_items(fr, "tasks", items, N_STATUS_KEYS);
  if (v->have_rates) {
    snprintf(items[0], sizeof(items[0]), "submit %.1f/s", v->submit_rate);
    snprintf(items[1], sizeof(items[1]), "finish %.1f/s", v->finish_rate);
  } else {
    snprintf(items[0], sizeof(items[0]), "submit -");
    snprintf(items[1], sizeof(items[1]), "finish -");
  }
  frame_items(fr, "rates", items, 2);
  if (v->status == NULL) return;
  snprintf(items[0], sizeof(items[0]), "busy %d/%d", c.busy, c.workers);
  snprintf(items[1], sizeof(items[1]), "remote %d (%d leases)", c.remote, c.leases);
  frame_items(fr, "workers", items, 2);
}

/* The failures of the last status call and of the stream, or a blank line. */
static void draw_errors(frame *fr, const view *v, top_state *t) {
  char err[sizeof(t->stream_err)];
  lock(t);
  memcpy(err, t->stream_err, sizeof(err));
  unlock(t);
  if (v->status_err[0] != '\0') frame_line(fr, "GetSystemStatus: %s", v->status_err);
  if (err[0] != '\0') frame_line(fr, "%s", err);
  frame_line(fr, "%s", "");
}

/* Column widths of the running table for a screen `cols` wide; name 0:
 * no room for it. */
typedef struct columns {
  int id, type, name, worker, run_for;
} columns;

static columns table_columns(int cols) {
  columns c = {.id = cols >= ID_FULL_MIN_COLS ? 36 : 12, .type = 10, .worker = 8, .run_for = 8};
  c.name = cols - (c.id + c.type + c.worker + c.run_for + 4 * 2);
  if (c.name < 4) c.name = 0;
  return c;
}

/* One table row: the cells in their widths, two spaces apart. */
static void frame_cells(frame *fr, const columns *c, const char *id, const char *type,
                        const char *name, const char *worker, const char *run_for) {
  const char *text[] = {id, type, name, worker, run_for};
  const int width[] = {c->id, c->type, c->name, c->worker, c->run_for};
  int col = 0;
  if (!frame_next(fr)) return;
  for (size_t i = 0; i < 5; i++) {
    if (width[i] == 0) continue;
    if (col > 0) col += put_cols(fr->f, "  ", fr->cols - col, 0);
    int w = width[i] < fr->cols - col ? width[i] : fr->cols - col;
    col += put_cols(fr->f, text[i], w, i < 4);
  }
}

static void draw_running(frame *fr, top_state *t) {
  int room = fr->rows - fr->row - 2; /* below the title and the column names */
  size_t n = 0, total = 0;
  run_entry *r = run_copy(t, room > 0 ? (size_t)room : 0, &n, &total);
  if (n < total && n > 0) n--; /* the last row says how many more */
  columns c = table_columns(fr->cols);
  int64_t now = clock_ns(CLOCK_REALTIME);
  frame_line(fr, "running tasks: %zu (longest running first)", total);
  frame_cells(fr, &c, "ID", "TYPE", "NAME", "WORKER", "FOR");
  for (size_t i = 0; i < n; i++) {
    char dur[32];
    size_t len = strlen(r[i].id);
    const char *id = c.id < 36 && len > 12 ? r[i].id + len - 12 : r[i].id;
    frame_cells(fr, &c, id, r[i].type, r[i].name, r[i].worker,
                fmt_duration(running_for(&r[i], now), dur, sizeof(dur)));
  }
  if (n < total) frame_line(fr, "... and %zu more", total - n);
  free(r);
}

static void screen_size(int *cols, int *rows) {
  struct winsize ws;
  *cols = 80;
  *rows = 24;
  if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) {
    *cols = ws.ws_col;
    *rows = ws.ws_row;
  }
}

/* Redraws the whole screen in one write. Returns 0 or EXIT_SOFTWARE. */
static int draw_screen(const view *v, top_state *t) {
  frame fr = {.row = 0};
  char *buf = NULL;
  size_t len = 0;
  screen_size(&fr.cols, &fr.rows);
  if ((fr.f = open_memstream(&buf, &len)) == NULL) return OEECTL_EXIT_SOFTWARE;
  fputs("\033[H", fr.f);
  draw_header(&fr, v);
  draw_counts(&fr, v);
  draw_errors(&fr, v, t);
  draw_running(&fr, t);
  if (fr.row < fr.rows) fputs("\r\n\033[J", fr.f); /* clear what is below */
  int rc = fclose(fr.f) == 0 ? 0 : OEECTL_EXIT_SOFTWARE;
  if (rc == 0 && (fwrite(buf, 1, len, stdout) != len || fflush(stdout) != 0))
    rc = OEECTL_EXIT_SOFTWARE;
  free(buf);
  return rc;
}

static int screen_refresh(view *v, top_state *t, int first) {
  fetch_status(v, t);
  if (!first) take_rates(v, t);
  return draw_screen(v, t);
}

/* ---- the terminal ---- */

static void term_init(term *tm) {
  memset(tm, 0, sizeof(*tm));
  tm->keys = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &tm->saved) == 0;
}

/* Raw keys (no echo, no line editing; Ctrl-C still signals), the alternate
 * screen, the cursor hidden and auto-wrap off. */
static void term_enter(term *tm) {
  if (tm->keys) {
    struct termios raw = tm->saved;
    raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
    raw.c_cc[VMIN] = 1;
    raw.c_cc[VTIME] = 0;
    tcsetattr(STDIN_FILENO, TCSANOW, &raw);
  }
  fputs("\033[?1049h\033[?25l\033[?7l", stdout);
  fflush(stdout);
  tm->on = 1;
}

/* Undoes term_enter; does nothing when it is not in force. */
static void term_leave(term *tm) {
  if (!tm->on) return;
  fputs("\033[?7h\033[?25h\033[?1049l", stdout);
  fflush(stdout);
  if (tm->keys) tcsetattr(STDIN_FILENO, TCSANOW, &tm->saved);
  tm->on = 0;
}

/* Reads the keys waiting; 1 when one asks to quit. */
static int on_keys(term *tm) {
  char buf[64];
  ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
  if (n <= 0) {
    if (n == 0 || (errno != EINTR && errno != EAGAIN)) tm->keys = 0; /* no more input */
    return 0;
  }
  return memchr(buf, 'q', (size_t)n) != NULL || memchr(buf, 'Q', (size_t)n) != NULL;
}

/* Blocks the signals top reads (in this thread and every thread created
 * later) and opens a signalfd on them; -1 on failure. */
static int signals_open(int tty) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  if (tty) {
    sigaddset(&set, SIGWINCH);
    sigaddset(&set, SIGTSTP);
    sigaddset(&set, SIGCONT);
  }
  if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0) return -1;
  return signalfd(-1, &set, SFD_CLOEXEC);
}

/* Handles one signal; returns 1 when top must end. */
static int on_signal(int sfd, view *v, top_state *t, term *tm) {
  struct signalfd_siginfo si;
  if (read(sfd, &si, sizeof(si)) != (ssize_t)sizeof(si)) return 0;
  switch (si.ssi_signo) {
    case SIGINT:
    case SIGTERM:
      return 1;
    case SIGTSTP: /* give the terminal back, stop, take it again */
      term_leave(tm);
      kill(getpid(), SIGSTOP);
      __attribute__((fallthrough)); /* continued: take the terminal again */
    case SIGCONT:
      if (!tm->on) term_enter(tm);
      __attribute__((fallthrough)); /* and redraw */
    case SIGWINCH:
      if (v->tty) draw_screen(v, t);
      return 0;
    default:
      return 0;
  }
}

/* ---- the loop ---- */

/* Refreshes every interval until --count, q or a signal. Returns the exit
 * code: 0, or in lines mode the code of the last refresh's failure. */
static int top_loop(view *v, top_state *t, term *tm, int sfd) {
  int64_t next = clock_ns(CLOCK_MONOTONIC) + (v->tty ? 0 : v->interval_ns);
  long done = 0;
  for (;;) {
    int64_t now = clock_ns(CLOCK_MONOTONIC);
    if (now >= next) {
      int rc = v->tty ? screen_refresh(v, t, done == 0) : lines_refresh(v, t);
      done++;
      /* After a stall (a stopped process) go on from now, without a burst. */
      next = next + v->interval_ns > now ? next + v->interval_ns : now + v->interval_ns;
      if ((v->count > 0 && done >= v->count) || rc == OEECTL_EXIT_SOFTWARE) return rc;
      continue;
    }
    struct pollfd fds[2] = {{.fd = sfd, .events = POLLIN}, {.fd = STDIN_FILENO, .events = POLLIN}};
    int ms = (int)((next - now + NS_PER_MS - 1) / NS_PER_MS);
    if (poll(fds, v->tty && tm->keys ? 2 : 1, ms) < 0 && errno != EINTR)
      return oeectl_fail(OEECTL_EXIT_SOFTWARE, "poll: %s", strerror(errno));
    if ((fds[0].revents & POLLIN) && on_signal(sfd, v, t, tm)) return 0;
    if (v->tty && tm->keys && fds[1].revents != 0 && on_keys(tm)) return 0;
  }
}

/* Runs the reader thread and the loop; leaves nothing behind. */
static int top_main(oeectl_ctx *ctx, view *v, int sfd) {
  top_state t;
  term tm;
  pthread_t reader;
  /* A view left open for hours must see a restarted server within seconds,
   * not after gRPC's default reconnect backoff (up to 120 s). */
  ctx->conn.max_reconnect_backoff_ms = RECONNECT_MAX_MS;
  if (oeectl_channel(ctx) == NULL) return OEECTL_EXIT_SOFTWARE;
  if (state_init(&t, ctx->chan) != 0) return oeectl_fail(OEECTL_EXIT_SOFTWARE, "out of memory");
  if (pthread_create(&reader, NULL, reader_main, &t) != 0) abort();
  term_init(&tm);
  v->last_tick_ns = clock_ns(CLOCK_MONOTONIC);
  if (v->tty) term_enter(&tm);
  int rc = top_loop(v, &t, &tm, sfd);
  term_leave(&tm);
  top_stop(&t);
  pthread_join(reader, NULL);
  state_destroy(&t);
  return rc;
}

/* ---- the command ---- */

typedef struct top_args {
  double interval_s;
  int count;
} top_args;

enum { O_INTERVAL = OPT_CMD_BASE, O_COUNT };

static int top_opt(void *p, const oeectl_cmd *cmd, int opt, const char *arg) {
  top_args *a = p;
  if (opt == O_INTERVAL && (oeectl_parse_double(arg, &a->interval_s) != 0 ||
                            a->interval_s < MIN_INTERVAL_S || a->interval_s > MAX_INTERVAL_S))
    return oeectl_usage_error(
        cmd, "--interval must be a number of seconds from 0.1 to 3600, got \"%s\"", arg);
  if (opt == O_COUNT && oeectl_parse_int(arg, 1, INT32_MAX, &a->count) != 0)
    return oeectl_usage_error(cmd, "--count must be an integer >= 1, got \"%s\"", arg);
  return -1;
}

static int top_run(oeectl_ctx *ctx, int argc, char **argv) {
  static const struct option opts[] = {{"interval", required_argument, NULL, O_INTERVAL},
                                       {"count", required_argument, NULL, O_COUNT},
                                       OEECTL_GLOBAL_OPTIONS};
  top_args a = {.interval_s = 1.0, .count = 0};
  int rc = oeectl_parse_opts(ctx, &oeectl_cmd_top, opts, argc, argv, top_opt, &a);
  if (rc < 0) rc = oeectl_want_args(&oeectl_cmd_top, argc, argv, 0);
  if (rc >= 0) return rc;
  view v = {.ctx = ctx,
            .interval_ns = (int64_t)(a.interval_s * (double)NS_PER_S),
            .count = a.count,
            .tty = !ctx->json && isatty(STDOUT_FILENO)};
  if (v.tty) setlocale(LC_CTYPE, ""); /* display widths of names in the user's encoding */
  /* Before the channel: gRPC's threads inherit the mask. */
  int sfd = signals_open(v.tty);
  if (sfd < 0) return oeectl_fail(OEECTL_EXIT_SOFTWARE, "signalfd: %s", strerror(errno));
  rc = top_main(ctx, &v, sfd);
  if (v.status != NULL) oee__v1__system_status__free_unpacked(v.status, NULL);
  close(sfd);
  return rc;
}

const oeectl_cmd oeectl_cmd_top = {
    "top", "live view: task counts, rates, workers, running tasks",
    "usage: oeectl top [--interval SECONDS] [--count N]\n"
    "  A full-screen view of the server, refreshed every SECONDS (default 1): task\n"
    "  counts by status, submit and finish rates per second (from WatchTasks), busy\n"
    "  workers, remote workers and their leases, and the running tasks, longest\n"
    "  running first, as many as fit (id, type, name, worker, running for).\n"
    "  q quits; the layout follows the terminal's size.\n"
    "  When stdout is not a terminal (or with --json) it prints one line per\n"
    "  interval instead:\n"
    "    ts=TIME queued=N scheduled=N running=N done=N error=N cancelled=N\n"
    "    submitted=N finished=N submit_rate=R finish_rate=R workers_busy=B/N\n"
    "    remote_workers=N\n"
    "  (one line; submitted and finished count the interval's events). --json: one\n"
    "  object per interval with these keys (workers_busy and workers apart),\n"
    "  remote_leases and running_tasks ([{id, type, name, worker, running_seconds}]).\n"
    "  --interval  seconds between refreshes, 0.1 to 3600 (default 1)\n"
    "  --count     stop after N refreshes (default: run until q, SIGINT or SIGTERM)\n"
    "  Exit: 0 after q, SIGINT or SIGTERM; after --count N, 0 or (lines mode) the\n"
    "  status code of the last refresh's failed GetSystemStatus.\n",
    top_run};
