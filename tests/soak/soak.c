/*
 * soak.c - a load generator and checker against one real oee-server.
 *
 * DESIGN: the main thread starts //server:oee-server on a free port, then
 * runs N client threads (default 32), each with its own channel, for a
 * bounded time (OEE_SOAK_SECONDS, default 15; scripts/soak uses 60). Each
 * thread picks a random operation: SubmitTask, SubmitTasks, CancelTask,
 * GetTask, ListTasks, GetQueueStatus/GetSystemStatus, or a watch (open a
 * WatchTasks stream, submit a few tasks, read until each of them has ended).
 * Every acknowledged task id is recorded under one mutex. Afterwards:
 *  1. the queue drains (no QUEUED or RUNNING task left);
 *  2. every acknowledged id is listed exactly once, in a terminal state;
 *  3. GetQueueStatus's counts by status equal a recount of the listing;
 *  4. every watcher that stayed saw each of its tasks go QUEUED, RUNNING
 *     (unless cancelled while queued), then one terminal state, in order,
 *     with strictly increasing sequence numbers;
 *  5. after ClearCompletedTasks(keep_recent=0) the server's RSS is back
 *     near its value after warm-up;
 *  6. SIGTERM: the server exits 0.
 * The server runs on its default store (sqlite) in a data directory of its
 * own under $TEST_TMPDIR, removed at the end.
 * Figures go to stdout (and $TEST_UNDECLARED_OUTPUTS_DIR/soak.txt). Any
 * unexpected status code, lost task or broken order fails the run.
 */
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <grpc/grpc.h>

#include "client/rt/rpc_client.h"
#include "oee/v1/orchestrator.grpc-client.h"

#define DEADLINE_MS 30000
#define ID_LEN 36

enum op { OP_SUBMIT, OP_BATCH, OP_CANCEL, OP_GET, OP_LIST, OP_STATUS, OP_WATCH, OP_COUNT };
static const char *const op_names[OP_COUNT] = {"submit", "submit_batch", "cancel", "get",
                                               "list",   "status",       "watch"};
/* Relative weights of the operations, in percent. */
static const int op_weights[OP_COUNT] = {30, 10, 10, 17, 8, 15, 10};

typedef struct ids {
  pthread_mutex_t mu;
  char (*v)[ID_LEN + 1];
  size_t len, cap;
} ids;

static ids acked = {.mu = PTHREAD_MUTEX_INITIALIZER};
static char target[64];
static atomic_long op_count[OP_COUNT];
static atomic_long failures, watchers_stayed, watchers_dropped, watched_tasks;
static atomic_int stop_load;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "soak: FAIL: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  atomic_fetch_add(&failures, 1);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void ack(const char *id) {
  pthread_mutex_lock(&acked.mu);
  if (acked.len == acked.cap) {
    acked.cap = acked.cap ? acked.cap * 2 : 4096;
    acked.v = realloc(acked.v, acked.cap * sizeof(*acked.v));
    if (acked.v == NULL) abort();
  }
  snprintf(acked.v[acked.len++], ID_LEN + 1, "%s", id);
  pthread_mutex_unlock(&acked.mu);
}

/* A random acknowledged id (any client's), or 0 when there is none yet. */
static int random_id(unsigned *seed, char *out) {
  pthread_mutex_lock(&acked.mu);
  int ok = acked.len > 0;
  if (ok) memcpy(out, acked.v[rand_r(seed) % acked.len], ID_LEN + 1);
  pthread_mutex_unlock(&acked.mu);
  return ok;
}

/* ------------------------------------------------------------ requests */

typedef struct task_req {
  Oee__V1__SubmitTaskRequest r;
  Oee__V1__SubmitTaskRequest__ContextEntry e;
  Oee__V1__SubmitTaskRequest__ContextEntry *ep;
  char value[32];
} task_req;

/* A random echo, short sleep or fail task. */
static void make_task(task_req *t, unsigned *seed) {
  oee__v1__submit_task_request__init(&t->r);
  oee__v1__submit_task_request__context_entry__init(&t->e);
  int kind = rand_r(seed) % 10;
  t->r.name = "soak";
  t->r.priority_present_case = OEE__V1__SUBMIT_TASK_REQUEST__PRIORITY_PRESENT_PRIORITY;
  t->r.priority = rand_r(seed) % 11;
  if (kind < 6) {
    t->r.task_type = "echo";
    t->e.key = "message";
    snprintf(t->value, sizeof(t->value), "m%u", rand_r(seed));
  } else if (kind < 9) {
    t->r.task_type = "sleep";
    t->e.key = "seconds";
    snprintf(t->value, sizeof(t->value), "0.00%d", rand_r(seed) % 10);
  } else {
    t->r.task_type = "fail";
    t->e.key = "message";
    snprintf(t->value, sizeof(t->value), "planned failure");
  }
  t->e.value = t->value;
  t->ep = &t->e;
  t->r.context = &t->ep;
  t->r.n_context = 1;
}

static int expect_ok(const char *what, int code, oee_rpc_status *st) {
  if (code != GRPC_STATUS_OK) {
    fail("%s: status %d (%s)", what, code, st->message ? st->message : "");
  }
  oee_rpc_status_free(st);
  return code == GRPC_STATUS_OK;
}

static int do_submit_named(oee_rpc_channel *ch, unsigned *seed, char *id_out, const char *name) {
  task_req t;
  make_task(&t, seed);
  if (name) t.r.name = (char *)name;
  Oee__V1__SubmitTaskResponse *resp = NULL;
  oee_rpc_status st = {0};
  int code = oee_v1_orchestrator_service_submit_task(ch, &t.r, &resp, DEADLINE_MS, &st);
  if (!expect_ok("SubmitTask", code, &st)) return 0;
  ack(resp->task_id);
  if (id_out) memcpy(id_out, resp->task_id, ID_LEN + 1);
  oee__v1__submit_task_response__free_unpacked(resp, NULL);
  return 1;
}

static void do_batch(oee_rpc_channel *ch, unsigned *seed) {
  enum { MAX = 20 };
  task_req t[MAX];
  Oee__V1__SubmitTaskRequest *rs[MAX];
  size_t n = 2 + rand_r(seed) % (MAX - 1);
  for (size_t i = 0; i < n; i++) {
    make_task(&t[i], seed);
    rs[i] = &t[i].r;
  }
  Oee__V1__SubmitTasksRequest req = OEE__V1__SUBMIT_TASKS_REQUEST__INIT;
  req.requests = rs;
  req.n_requests = n;
  Oee__V1__SubmitTasksResponse *resp = NULL;
  oee_rpc_status st = {0};
  int code = oee_v1_orchestrator_service_submit_tasks(ch, &req, &resp, DEADLINE_MS, &st);
  if (!expect_ok("SubmitTasks", code, &st)) return;
  if (resp->n_results != n) fail("SubmitTasks: %zu results for %zu requests", resp->n_results, n);
  for (size_t i = 0; i < resp->n_results; i++) {
    if (resp->results[i]->code != 0) {
      fail("SubmitTasks entry %zu: code %d (%s)", i, resp->results[i]->code,
           resp->results[i]->message);
    } else {
      ack(resp->results[i]->task_id);
    }
  }
  oee__v1__submit_tasks_response__free_unpacked(resp, NULL);
}

static void do_cancel(oee_rpc_channel *ch, unsigned *seed) {
  char id[ID_LEN + 1];
  if (!random_id(seed, id)) return;
  Oee__V1__CancelTaskRequest req = OEE__V1__CANCEL_TASK_REQUEST__INIT;
  req.task_id = id;
  Oee__V1__CancelTaskResponse *resp = NULL;
  oee_rpc_status st = {0};
  int code = oee_v1_orchestrator_service_cancel_task(ch, &req, &resp, DEADLINE_MS, &st);
  if (expect_ok("CancelTask", code, &st)) oee__v1__cancel_task_response__free_unpacked(resp, NULL);
}

static void do_get(oee_rpc_channel *ch, unsigned *seed) {
  char id[ID_LEN + 1];
  if (!random_id(seed, id)) return;
  Oee__V1__GetTaskRequest req = OEE__V1__GET_TASK_REQUEST__INIT;
  req.task_id = id;
  Oee__V1__Task *resp = NULL;
  oee_rpc_status st = {0};
  int code = oee_v1_orchestrator_service_get_task(ch, &req, &resp, DEADLINE_MS, &st);
  if (!expect_ok("GetTask", code, &st)) return;
  if (strcmp(resp->id, id) != 0) fail("GetTask %s returned %s", id, resp->id);
  oee__v1__task__free_unpacked(resp, NULL);
}

static void do_list(oee_rpc_channel *ch, unsigned *seed) {
  Oee__V1__ListTasksRequest req = OEE__V1__LIST_TASKS_REQUEST__INIT;
  req.page_size = 1 + rand_r(seed) % 50;
  req.status_filter = (Oee__V1__TaskStatus)(rand_r(seed) % 6);
  Oee__V1__ListTasksResponse *resp = NULL;
  oee_rpc_status st = {0};
  int code = oee_v1_orchestrator_service_list_tasks(ch, &req, &resp, DEADLINE_MS, &st);
  if (expect_ok("ListTasks", code, &st)) oee__v1__list_tasks_response__free_unpacked(resp, NULL);
}

static void do_status(oee_rpc_channel *ch, unsigned *seed) {
  oee_rpc_status st = {0};
  if (rand_r(seed) % 2) {
    Oee__V1__GetQueueStatusRequest req = OEE__V1__GET_QUEUE_STATUS_REQUEST__INIT;
    Oee__V1__QueueStatus *resp = NULL;
    int code = oee_v1_orchestrator_service_get_queue_status(ch, &req, &resp, DEADLINE_MS, &st);
    if (expect_ok("GetQueueStatus", code, &st)) oee__v1__queue_status__free_unpacked(resp, NULL);
  } else {
    Oee__V1__GetSystemStatusRequest req = OEE__V1__GET_SYSTEM_STATUS_REQUEST__INIT;
    Oee__V1__SystemStatus *resp = NULL;
    int code = oee_v1_orchestrator_service_get_system_status(ch, &req, &resp, DEADLINE_MS, &st);
    if (expect_ok("GetSystemStatus", code, &st)) oee__v1__system_status__free_unpacked(resp, NULL);
  }
}

static int do_submit(oee_rpc_channel *ch, unsigned *seed, char *id_out) {
  return do_submit_named(ch, seed, id_out, NULL);
}

/* ------------------------------------------------------------- watching */

/* Submits marker tasks named `name` every 20 ms until `seen` is set: the
 * watcher knows its stream is subscribed once it sees one of them (a single
 * marker could end before the server has subscribed the new stream). */
typedef struct marker {
  oee_rpc_channel *ch;
  char name[32];
  atomic_int seen;
  unsigned seed;
} marker;

static void *marker_main(void *arg) {
  marker *m = arg;
  while (!atomic_load(&m->seen) && !atomic_load(&failures)) {
    do_submit_named(m->ch, &m->seed, NULL, m->name);
    usleep(20000);
  }
  return NULL;
}

#define WATCH_TASKS 4

typedef struct watched {
  char id[ID_LEN + 1];
  int seen[8]; /* statuses in arrival order */
  int n_seen;
} watched;

/* Checks one task's transitions: QUEUED, [RUNNING], one terminal. */
static void check_transitions(const watched *w) {
  const int *s = w->seen;
  int ok = w->n_seen >= 2 && s[0] == OEE__V1__TASK_STATUS__TASK_STATUS_QUEUED;
  int i = 1;
  if (ok && s[i] == OEE__V1__TASK_STATUS__TASK_STATUS_RUNNING) i++;
  ok = ok && i == w->n_seen - 1 && s[i] >= OEE__V1__TASK_STATUS__TASK_STATUS_DONE;
  if (!ok) {
    char buf[64] = "";
    for (int k = 0; k < w->n_seen; k++) {
      snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), " %d", s[k]);
    }
    fail("watcher saw task %s go%s", w->id, buf);
  }
}

/* Says what a watcher saw of each of its tasks and where they are now. */
static void explain_watch(oee_rpc_channel *ch, const watched *w, int seen_marker) {
  fprintf(stderr, "soak: the watcher %s its marker task\n", seen_marker ? "saw" : "never saw");
  for (int i = 0; i < WATCH_TASKS; i++) {
    if (!w[i].id[0]) continue;
    char buf[64] = "";
    for (int k = 0; k < w[i].n_seen; k++) {
      snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), " %d", w[i].seen[k]);
    }
    Oee__V1__GetTaskRequest req = OEE__V1__GET_TASK_REQUEST__INIT;
    req.task_id = (char *)w[i].id;
    Oee__V1__Task *t = NULL;
    oee_rpc_status st = {0};
    int code = oee_v1_orchestrator_service_get_task(ch, &req, &t, DEADLINE_MS, &st);
    fprintf(stderr, "soak:   task %s: events [%s ] now status %d (get code %d)\n", w[i].id, buf,
            t ? (int)t->status : -1, code);
    if (t) oee__v1__task__free_unpacked(t, NULL);
    oee_rpc_status_free(&st);
  }
}

static int terminal(int s) { return s >= OEE__V1__TASK_STATUS__TASK_STATUS_DONE; }

/* Opens a stream, submits WATCH_TASKS tasks, reads until each has ended. */
static void do_watch(oee_rpc_channel *ch, unsigned *seed) {
  Oee__V1__WatchTasksRequest req = OEE__V1__WATCH_TASKS_REQUEST__INIT;
  oee_rpc_reader *rd = NULL;
  if (oee_v1_orchestrator_service_watch_tasks_start(ch, &req, DEADLINE_MS * 2, &rd) != 0) {
    fail("WatchTasks: cannot start");
    return;
  }
  watched w[WATCH_TASKS];
  memset(w, 0, sizeof(w));
  marker mk = {.ch = ch, .seed = rand_r(seed)};
  snprintf(mk.name, sizeof(mk.name), "marker-%u", rand_r(seed));
  atomic_init(&mk.seen, 0);
  pthread_t helper;
  pthread_create(&helper, NULL, marker_main, &mk);
  int ended = 0, seen_marker = 0, open = 1;
  uint64_t last_seq = 0;
  oee_rpc_status st = {0};
  while (open && ended < WATCH_TASKS) {
    Oee__V1__TaskEvent *ev = NULL;
    int rc = oee_v1_orchestrator_service_watch_tasks_next(rd, &ev, &st);
    if (rc != 1) {
      if (st.code == GRPC_STATUS_RESOURCE_EXHAUSTED) {
        atomic_fetch_add(&watchers_dropped, 1); /* fell behind: did not stay */
      } else {
        fail("WatchTasks ended early: status %d (%s)", st.code, st.message ? st.message : "");
        explain_watch(ch, w, seen_marker);
      }
      oee_rpc_status_free(&st);
      open = 0;
      break;
    }
    if (ev->sequence <= last_seq)
      fail("WatchTasks: sequence %lu after %lu", (unsigned long)ev->sequence,
           (unsigned long)last_seq);
    last_seq = ev->sequence;
    if (!seen_marker && strcmp(ev->task->name, mk.name) == 0) {
      seen_marker = 1;
      atomic_store(&mk.seen, 1);
      pthread_join(helper, NULL);
      for (int i = 0; i < WATCH_TASKS; i++) {
        if (!do_submit(ch, seed, w[i].id)) ended++; /* counted as done */
      }
    }
    for (int i = 0; seen_marker && i < WATCH_TASKS; i++) {
      if (w[i].id[0] && strcmp(ev->task->id, w[i].id) == 0 && w[i].n_seen < 8) {
        w[i].seen[w[i].n_seen++] = ev->task->status;
        if (terminal(ev->task->status)) ended++;
      }
    }
    oee__v1__task_event__free_unpacked(ev, NULL);
  }
  if (!seen_marker) {
    atomic_store(&mk.seen, 1);
    pthread_join(helper, NULL);
  }
  if (open) {
    atomic_fetch_add(&watchers_stayed, 1);
    for (int i = 0; i < WATCH_TASKS; i++) {
      if (w[i].id[0]) {
        check_transitions(&w[i]);
        atomic_fetch_add(&watched_tasks, 1);
      }
    }
  }
  oee_v1_orchestrator_service_watch_tasks_close(rd);
}

/* --------------------------------------------------------------- clients */

static void *client_main(void *arg) {
  unsigned seed = (unsigned)(uintptr_t)arg * 2654435761u;
  oee_rpc_channel *ch = oee_rpc_channel_create(target);
  if (ch == NULL) {
    fail("cannot create a channel");
    return NULL;
  }
  int total = 0;
  for (int i = 0; i < OP_COUNT; i++) total += op_weights[i];
  while (!atomic_load(&stop_load)) {
    int r = rand_r(&seed) % total, op = 0;
    while (r >= op_weights[op]) r -= op_weights[op++];
    switch (op) {
      case OP_SUBMIT:
        do_submit(ch, &seed, NULL);
        break;
      case OP_BATCH:
        do_batch(ch, &seed);
        break;
      case OP_CANCEL:
        do_cancel(ch, &seed);
        break;
      case OP_GET:
        do_get(ch, &seed);
        break;
      case OP_LIST:
        do_list(ch, &seed);
        break;
      case OP_STATUS:
        do_status(ch, &seed);
        break;
      default:
        do_watch(ch, &seed);
        break;
    }
    atomic_fetch_add(&op_count[op], 1);
  }
  oee_rpc_channel_destroy(ch);
  return NULL;
}

/* ---------------------------------------------------------------- server */

static pid_t server_pid;

static long rss_kb(pid_t pid) {
  char path[64], line[256];
  snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  long kb = -1;
  while (f && fgets(line, sizeof(line), f)) {
    if (strncmp(line, "VmRSS:", 6) == 0) kb = strtol(line + 6, NULL, 10);
  }
  if (f) fclose(f);
  return kb;
}

/* Makes a new empty directory <tmp>/oee-soak-<random> into out (cap bytes);
 * 0 or -1. */
static int make_data_dir(char *out, size_t cap, const char *tmp) {
  int n = snprintf(out, cap, "%s/oee-soak-", tmp);
  if (n < 0 || (size_t)n + 7 > cap) return -1;
  memset(out + n, 'X', 6); /* mkdtemp's template: six letters it replaces */
  out[n + 6] = '\0';
  return mkdtemp(out) != NULL ? 0 : -1;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  (void)st;
  (void)type;
  (void)ftw;
  return remove(path);
}

/* Removes the data directory with the database the server left in it. */
static void remove_data_dir(const char *dir) {
  if (nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0) {
    fprintf(stderr, "soak: cannot remove %s: %s\n", dir, strerror(errno));
  }
}

static int start_server(const char *bin, const char *config, const char *data_dir) {
  int out[2];
  if (pipe(out) != 0) return -1;
  server_pid = fork();
  if (server_pid < 0) return -1;
  if (server_pid == 0) {
    dup2(out[1], 1);
    close(out[0]);
    close(out[1]);
    execl(bin, bin, "--listen", "127.0.0.1:0", "--config", config, "--data-dir", data_dir,
          (char *)NULL);
    _exit(127);
  }
  close(out[1]);
  FILE *f = fdopen(out[0], "r");
  char line[256];
  int port = -1;
  if (f && fgets(line, sizeof(line), f) && strstr(line, "listening on port")) {
    port = atoi(strrchr(line, ' ') + 1);
  }
  /* Keep the pipe open (the server may print more); it closes at exit. */
  if (port <= 0) return -1;
  snprintf(target, sizeof(target), "127.0.0.1:%d", port);
  return 0;
}

static int stop_server(void) {
  kill(server_pid, SIGTERM);
  int status = 0;
  for (int i = 0; i < 1200; i++) {
    if (waitpid(server_pid, &status, WNOHANG) == server_pid) {
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    usleep(50000);
  }
  kill(server_pid, SIGKILL);
  waitpid(server_pid, &status, 0);
  return -1;
}

/* ---------------------------------------------------------------- checks */

static int cmp_id(const void *a, const void *b) { return strcmp(a, b); }

typedef struct listing {
  char (*ids)[ID_LEN + 1];
  int *status;
  size_t len;
} listing;

/* Lists every task, page by page. */
static int list_all(oee_rpc_channel *ch, listing *l) {
  memset(l, 0, sizeof(*l));
  size_t cap = 0;
  char token[64] = "";
  do {
    Oee__V1__ListTasksRequest req = OEE__V1__LIST_TASKS_REQUEST__INIT;
    req.page_size = 1000;
    req.page_token = token;
    Oee__V1__ListTasksResponse *resp = NULL;
    oee_rpc_status st = {0};
    int code = oee_v1_orchestrator_service_list_tasks(ch, &req, &resp, DEADLINE_MS, &st);
    if (!expect_ok("ListTasks (final)", code, &st)) return -1;
    for (size_t i = 0; i < resp->n_tasks; i++) {
      if (l->len == cap) {
        cap = cap ? cap * 2 : 4096;
        l->ids = realloc(l->ids, cap * sizeof(*l->ids));
        l->status = realloc(l->status, cap * sizeof(*l->status));
        if (l->ids == NULL || l->status == NULL) abort();
      }
      snprintf(l->ids[l->len], ID_LEN + 1, "%s", resp->tasks[i]->id);
      l->status[l->len++] = resp->tasks[i]->status;
    }
    snprintf(token, sizeof(token), "%s", resp->next_page_token);
    oee__v1__list_tasks_response__free_unpacked(resp, NULL);
  } while (token[0]);
  return 0;
}

static Oee__V1__QueueStatus *queue_status(oee_rpc_channel *ch) {
  Oee__V1__GetQueueStatusRequest req = OEE__V1__GET_QUEUE_STATUS_REQUEST__INIT;
  Oee__V1__QueueStatus *resp = NULL;
  oee_rpc_status st = {0};
  int code = oee_v1_orchestrator_service_get_queue_status(ch, &req, &resp, DEADLINE_MS, &st);
  return expect_ok("GetQueueStatus (final)", code, &st) ? resp : NULL;
}

static long by_status(const Oee__V1__QueueStatus *q, const char *key) {
  for (size_t i = 0; i < q->n_tasks_by_status; i++) {
    if (strcmp(q->tasks_by_status[i]->key, key) == 0) return q->tasks_by_status[i]->value;
  }
  fail("tasks_by_status has no \"%s\"", key);
  return -1;
}

static int wait_drained(oee_rpc_channel *ch) {
  for (int i = 0; i < 2400; i++) {
    Oee__V1__QueueStatus *q = queue_status(ch);
    if (q == NULL) return -1;
    long busy = by_status(q, "queued") + by_status(q, "running");
    oee__v1__queue_status__free_unpacked(q, NULL);
    if (busy == 0) return 0;
    usleep(50000);
  }
  fail("the queue did not drain within 120 s");
  return -1;
}

/* Checks 2 and 3; returns the number of acknowledged tasks lost. */
static long check_tasks(oee_rpc_channel *ch, long counts[6]) {
  listing l;
  if (list_all(ch, &l) != 0) return -1;
  static const char *const keys[6] = {"", "queued", "running", "done", "error", "cancelled"};
  memset(counts, 0, 6 * sizeof(long));
  for (size_t i = 0; i < l.len; i++) {
    if (l.status[i] < 1 || l.status[i] > 5)
      fail("task %s has status %d", l.ids[i], l.status[i]);
    else
      counts[l.status[i]]++;
    if (l.status[i] >= 1 && l.status[i] <= 2) fail("task %s still not ended after drain", l.ids[i]);
  }
  Oee__V1__QueueStatus *q = queue_status(ch);
  if (q) {
    for (int s = 1; s <= 5; s++) {
      if (by_status(q, keys[s]) != counts[s]) {
        fail("tasks_by_status[%s] = %ld but a recount finds %ld", keys[s], by_status(q, keys[s]),
             counts[s]);
      }
    }
    if ((size_t)q->total_tasks != l.len) fail("total_tasks %d, listed %zu", q->total_tasks, l.len);
    oee__v1__queue_status__free_unpacked(q, NULL);
  }
  /* Every acknowledged id listed exactly once: sort both, walk together. */
  qsort(l.ids, l.len, sizeof(*l.ids), cmp_id);
  for (size_t i = 1; i < l.len; i++) {
    if (strcmp(l.ids[i - 1], l.ids[i]) == 0) fail("task %s listed twice", l.ids[i]);
  }
  qsort(acked.v, acked.len, sizeof(*acked.v), cmp_id);
  long lost = 0;
  for (size_t i = 0; i < acked.len; i++) {
    if (i > 0 && strcmp(acked.v[i - 1], acked.v[i]) == 0)
      fail("id %s acknowledged twice", acked.v[i]);
    if (!bsearch(acked.v[i], l.ids, l.len, sizeof(*l.ids), cmp_id)) {
      fail("acknowledged task %s is lost", acked.v[i]);
      lost++;
    }
  }
  if (l.len != acked.len) fail("%zu tasks listed, %zu acknowledged", l.len, acked.len);
  free(l.ids);
  free(l.status);
  return lost;
}

static long clear_all(oee_rpc_channel *ch) {
  Oee__V1__ClearCompletedTasksRequest req = OEE__V1__CLEAR_COMPLETED_TASKS_REQUEST__INIT;
  req.keep_recent_present_case =
      OEE__V1__CLEAR_COMPLETED_TASKS_REQUEST__KEEP_RECENT_PRESENT_KEEP_RECENT;
  req.keep_recent = 0;
  Oee__V1__ClearCompletedTasksResponse *resp = NULL;
  oee_rpc_status st = {0};
  int code = oee_v1_orchestrator_service_clear_completed_tasks(ch, &req, &resp, DEADLINE_MS, &st);
  if (!expect_ok("ClearCompletedTasks", code, &st)) return -1;
  long n = resp->cleared;
  oee__v1__clear_completed_tasks_response__free_unpacked(resp, NULL);
  return n;
}

/* Warm-up: a few thousand tasks through every path, then cleared, so the
 * baseline RSS includes the allocator's and gRPC's steady state. */
static void warm_up(oee_rpc_channel *ch) {
  unsigned seed = 1;
  for (int i = 0; i < 200; i++) do_batch(ch, &seed);
  wait_drained(ch);
  clear_all(ch);
  pthread_mutex_lock(&acked.mu);
  acked.len = 0;
  pthread_mutex_unlock(&acked.mu);
  usleep(500000);
}

static const char *env_or(const char *name, const char *dflt) {
  const char *v = getenv(name);
  return v && v[0] ? v : dflt;
}

int main(int argc, char **argv) {
  double seconds = atof(env_or("OEE_SOAK_SECONDS", "15"));
  int clients = atoi(env_or("OEE_SOAK_CLIENTS", "32"));
  long rss_slack_kb = atol(env_or("OEE_SOAK_RSS_SLACK_KB", "65536"));
  char bin[4096], config[4096], data_dir[4096];
  const char *srcdir = getenv("TEST_SRCDIR");
  if (argc > 1) {
    snprintf(bin, sizeof(bin), "%s", argv[1]);
  } else if (srcdir) {
    snprintf(bin, sizeof(bin), "%s/oee/server/oee-server", srcdir);
  } else {
    fprintf(stderr, "usage: soak [path/to/oee-server] (or run with bazel test)\n");
    return 2;
  }
  const char *tmp = env_or("TEST_TMPDIR", "/tmp");
  snprintf(config, sizeof(config), "%s/oee-soak-%d.json", tmp, (int)getpid());
  FILE *cf = fopen(config, "w");
  if (cf == NULL) return 2;
  fprintf(cf, "{\"workers\": 4, \"watch_buffer\": 65536, \"max_watchers\": 64}\n");
  fclose(cf);
  if (make_data_dir(data_dir, sizeof(data_dir), tmp) != 0) {
    fprintf(stderr, "soak: cannot make a data directory under %s: %s\n", tmp, strerror(errno));
    remove(config);
    return 2;
  }
  grpc_init();
  if (start_server(bin, config, data_dir) != 0) {
    fprintf(stderr, "soak: cannot start %s\n", bin);
    if (server_pid > 0) {
      kill(server_pid, SIGKILL);
      waitpid(server_pid, NULL, 0);
    }
    remove_data_dir(data_dir);
    remove(config);
    return 2;
  }
  oee_rpc_channel *ch = oee_rpc_channel_create(target);
  warm_up(ch);
  long rss_start = rss_kb(server_pid), rss_peak = rss_start;

  /* Two rounds of half the time each, each ending drained, checked and
   * cleared: the RSS after the second clear must not exceed the first by
   * more than the slack (memory is reused, not leaked per round), and the
   * first must be near the start (the allocator may keep some). */
  printf("soak: %d clients for %.0f s (2 rounds) against %s\n", clients, seconds, target);
  fflush(stdout);
  pthread_t *th = calloc((size_t)clients, sizeof(*th));
  long lost = 0, counts[6] = {0}, total_counts[6] = {0}, rss_round[2] = {0};
  size_t total_acked = 0;
  double took = 0;
  for (int round = 0; round < 2; round++) {
    atomic_store(&stop_load, 0);
    double t0 = now_s();
    for (int i = 0; i < clients; i++) {
      pthread_create(&th[i], NULL, client_main, (void *)(uintptr_t)(round * 1000 + i + 1));
    }
    while (now_s() - t0 < seconds / 2) {
      usleep(200000);
      long r = rss_kb(server_pid);
      if (r > rss_peak) rss_peak = r;
    }
    atomic_store(&stop_load, 1);
    for (int i = 0; i < clients; i++) pthread_join(th[i], NULL);
    took += now_s() - t0;
    wait_drained(ch);
    lost += check_tasks(ch, counts);
    for (int k = 0; k < 6; k++) total_counts[k] += counts[k];
    long cleared = clear_all(ch);
    if (cleared != (long)acked.len)
      fail("ClearCompletedTasks cleared %ld of %zu", cleared, acked.len);
    total_acked += acked.len;
    acked.len = 0;
    usleep(1000000);
    rss_round[round] = rss_kb(server_pid);
  }
  free(th);
  long rss_end = rss_round[1];
  /* Under a sanitizer resident memory says nothing about leaks: ASan keeps
   * freed blocks in its quarantine (up to 256 MiB) and TSan keeps shadow
   * state, so RSS keeps rising for a while whatever the server does. There
   * LeakSanitizer checks leaks when the server exits, and the RSS checks
   * run in the plain build (scripts/soak, .ci/run). */
  int sanitized = getenv("ASAN_OPTIONS") != NULL || getenv("TSAN_OPTIONS") != NULL;
  if (!sanitized && rss_round[0] > rss_start + rss_slack_kb) {
    fail("server RSS %ld KiB after the first clear; %ld KiB at the start (slack %ld KiB)",
         rss_round[0], rss_start, rss_slack_kb);
  }
  if (!sanitized && rss_round[1] > rss_round[0] + rss_slack_kb / 8) {
    fail("server RSS grew from %ld to %ld KiB between two cleared rounds (slack %ld KiB)",
         rss_round[0], rss_round[1], rss_slack_kb / 8);
  }
  oee_rpc_channel_destroy(ch);
  int rc = stop_server();
  if (rc != 0) fail("server exited %d after SIGTERM", rc);
  grpc_shutdown();

  long ops = 0;
  char mix[256] = "";
  for (int i = 0; i < OP_COUNT; i++) {
    ops += op_count[i];
    snprintf(mix + strlen(mix), sizeof(mix) - strlen(mix), "%s%s=%ld", i ? " " : "", op_names[i],
             (long)op_count[i]);
  }
  char report[1024];
  snprintf(report, sizeof(report),
           "soak: clients=%d duration_s=%.1f operations=%ld ops_per_s=%.0f\n"
           "soak: mix: %s\n"
           "soak: acknowledged_tasks=%zu lost_tasks=%ld done=%ld error=%ld cancelled=%ld\n"
           "soak: watchers_stayed=%ld watchers_dropped=%ld watched_tasks_in_order=%ld\n"
           "soak: server_rss_kb start=%ld peak=%ld after_clear_round1=%ld after_clear_round2=%ld\n"
           "soak: server_exit=%d failures=%ld\n",
           clients, took, ops, ops / took, mix, total_acked, lost, total_counts[3], total_counts[4],
           total_counts[5], (long)watchers_stayed, (long)watchers_dropped, (long)watched_tasks,
           rss_start, rss_peak, rss_round[0], rss_end, rc, (long)failures);
  fputs(report, stdout);
  const char *outdir = getenv("TEST_UNDECLARED_OUTPUTS_DIR");
  if (outdir) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/soak.txt", outdir);
    FILE *f = fopen(path, "w");
    if (f) {
      fputs(report, f);
      fclose(f);
    }
  }
  remove(config);
  remove_data_dir(data_dir);
  if (atomic_load(&watchers_stayed) == 0) fail("no watcher stayed to the end of its tasks");
  printf("soak: %s\n", failures == 0 && lost == 0 ? "PASS" : "FAIL");
  return failures == 0 && lost == 0 ? 0 : 1;
}
