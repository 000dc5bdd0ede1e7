/* fixture.c - spawn the real oee-server and drive it through the stubs. */
#include "tests/integration/fixture.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

extern char **environ;

#define MAX_SERVERS 64
#define MAX_ARGS 32
#define MAX_ENV 512

/* ------------------------------------------------------------- registry */

/* Pids of live servers and their data directories ("" for none), so that
 * an atexit hook can kill leftovers and remove what they stored. */
static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static volatile pid_t reg[MAX_SERVERS];
static char reg_dir[MAX_SERVERS][sizeof(((it_server *)0)->data_dir)]; /* guarded by reg_mu */
static int reg_hooked;

static void remove_data_dir(char *dir);

static void kill_leftovers(void) {
  pthread_mutex_lock(&reg_mu);
  for (int i = 0; i < MAX_SERVERS; i++) {
    if (reg[i] > 0) {
      kill(reg[i], SIGKILL);
      waitpid(reg[i], NULL, 0);
      reg[i] = 0;
      remove_data_dir(reg_dir[i]);
    }
  }
  pthread_mutex_unlock(&reg_mu);
}

/* A fatal signal to the test (e.g. Bazel's timeout) kills the servers too;
 * kill() is async-signal-safe and reg[] is only read here. */
static void on_fatal(int sig) {
  for (int i = 0; i < MAX_SERVERS; i++) {
    if (reg[i] > 0) kill(reg[i], SIGKILL);
  }
  signal(sig, SIG_DFL);
  raise(sig);
}

/* Replaces the entry of `old` (0: a free slot) by `pid` with data directory
 * `dir` (NULL: none). */
static void reg_set(pid_t old, pid_t pid, const char *dir) {
  pthread_mutex_lock(&reg_mu);
  if (!reg_hooked) {
    atexit(kill_leftovers);
    signal(SIGTERM, on_fatal);
    signal(SIGINT, on_fatal);
    signal(SIGHUP, on_fatal);
    reg_hooked = 1;
  }
  for (int i = 0; i < MAX_SERVERS; i++) {
    if (reg[i] == old) {
      reg[i] = pid;
      snprintf(reg_dir[i], sizeof(reg_dir[i]), "%s", dir ? dir : "");
      break;
    }
  }
  pthread_mutex_unlock(&reg_mu);
}

/* ---------------------------------------------------------------- time */

int64_t it_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void it_sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* ------------------------------------------------------------- spawning */

const char *it_runfile(const char *rel) {
  static char path[4096];
  const char *root = getenv("TEST_SRCDIR");
  snprintf(path, sizeof(path), "%s/oee/%s", root ? root : ".", rel);
  return path;
}

/* ------------------------------------------------------------- storage */

/* Makes a new empty directory <$TEST_TMPDIR or /tmp>/oee-it-<random> and
 * writes its path to out (cap bytes); 0, or -1 (reported) with out "". */
static int make_data_dir(char *out, size_t cap) {
  const char *base = getenv("TEST_TMPDIR");
  int n = snprintf(out, cap, "%s/oee-it-", base && base[0] ? base : "/tmp");
  if (n > 0 && (size_t)n + 7 <= cap) {
    memset(out + n, 'X', 6); /* mkdtemp's template: six letters it replaces */
    out[n + 6] = '\0';
    if (mkdtemp(out) != NULL) return 0;
  }
  fprintf(stderr, "it: cannot make a data directory under %s: %s\n", base ? base : "/tmp",
          strerror(errno));
  out[0] = '\0';
  return -1;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  (void)st;
  (void)type;
  (void)ftw;
  return remove(path);
}

/* Removes a directory made by make_data_dir() with whatever the server
 * stored in it (oee.db, its WAL), and empties dir. "" is ignored. */
static void remove_data_dir(char *dir) {
  if (dir[0] == '\0') return;
  if (nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0) {
    fprintf(stderr, "it: cannot remove %s: %s\n", dir, strerror(errno));
  }
  dir[0] = '\0';
}

/* The value args give to a server flag ("--store memory" or
 * "--store=memory"), "" for a flag without one, or NULL if absent. */
static const char *arg_value(const char *const *args, const char *flag) {
  size_t len = strlen(flag);
  for (; args && *args; args++) {
    if (strcmp(*args, flag) == 0) return args[1] ? args[1] : "";
    if (strncmp(*args, flag, len) == 0 && (*args)[len] == '=') return *args + len + 1;
  }
  return NULL;
}

/* The storage flags a spawn adds before args (see it_server_start), at most
 * four, into extra (NULL-terminated); a data directory made for the server
 * goes to dir (cap bytes), else dir is "". 0, or -1 if it cannot be made. */
static int storage_args(const char *const *args, const char **extra, char *dir, size_t cap) {
  int n = 0;
  const char *store = arg_value(args, "--store");
  const char *test_store = getenv("OEE_TEST_STORE");
  if (store == NULL && test_store && test_store[0]) {
    extra[n++] = "--store";
    extra[n++] = store = test_store;
  }
  dir[0] = '\0';
  int memory = store && strcmp(store, "memory") == 0;
  if (!memory && arg_value(args, "--data-dir") == NULL) {
    if (make_data_dir(dir, cap) != 0) return -1;
    extra[n++] = "--data-dir";
    extra[n++] = dir;
  }
  extra[n] = NULL;
  return 0;
}

/* Builds argv: the binary, the fixed listen flag, the config, the storage
 * flags, then the caller's. */
static int build_argv(char **argv, char *bin, char *cfg, const char *const *storage,
                      const char *const *args) {
  int n = 0;
  argv[n++] = bin;
  argv[n++] = (char *)"--listen";
  argv[n++] = (char *)"127.0.0.1:0";
  if (cfg) {
    argv[n++] = (char *)"--config";
    argv[n++] = cfg;
  }
  for (; *storage; storage++) argv[n++] = (char *)*storage;
  for (; args && *args && n < MAX_ARGS - 1; args++) argv[n++] = (char *)*args;
  argv[n] = NULL;
  return n;
}

/* environ plus extras; entries of extras replace same-named ones. */
static void build_env(char **envp, const char *const *extra) {
  int n = 0;
  for (char **e = environ; *e && n < MAX_ENV - 64; e++) {
    int replaced = 0;
    for (const char *const *x = extra; x && *x; x++) {
      size_t k = strcspn(*x, "=");
      replaced |= strncmp(*e, *x, k + 1) == 0;
    }
    if (!replaced) envp[n++] = *e;
  }
  for (const char *const *x = extra; x && *x && n < MAX_ENV - 1; x++) envp[n++] = (char *)*x;
  envp[n] = NULL;
}

/* Starts the server; its data directory (if one is made) goes to dir, which
 * the caller removes once the server is reaped (reaped()). */
static pid_t spawn(const char *const *args, const char *config, const char *const *env, int out_fd,
                   char *dir, size_t cap) {
  char bin[4096], cfg[4096];
  snprintf(bin, sizeof(bin), "%s", it_runfile("server/oee-server"));
  if (config) {
    char rel[512];
    snprintf(rel, sizeof(rel), "tests/integration/data/%s", config);
    snprintf(cfg, sizeof(cfg), "%s", it_runfile(rel));
  }
  const char *storage[5];
  if (storage_args(args, storage, dir, cap) != 0) return -1;
  char *argv[MAX_ARGS];
  static char *envp[MAX_ENV];
  build_argv(argv, bin, config ? cfg : NULL, storage, args);
  build_env(envp, env);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  if (out_fd >= 0) posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
  pid_t pid = 0;
  int rc = posix_spawn(&pid, bin, &fa, NULL, argv, envp);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    fprintf(stderr, "it: posix_spawn %s: %s\n", bin, strerror(rc));
    remove_data_dir(dir);
    return -1;
  }
  reg_set(0, pid, dir);
  return pid;
}

/* Reads stdout until the port line; returns the port or -1. */
static int read_port(int fd, int timeout_ms) {
  char buf[1024];
  size_t len = 0;
  int64_t end = it_now_ms() + timeout_ms;
  while (len < sizeof(buf) - 1) {
    int left = (int)(end - it_now_ms());
    if (left <= 0) return -1;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n = poll(&p, 1, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    ssize_t r = read(fd, buf + len, sizeof(buf) - 1 - len);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1; /* EOF: the server exited */
    len += (size_t)r;
    buf[len] = '\0';
    const char *line = strstr(buf, "oee-server listening on port ");
    if (line && strchr(line, '\n')) {
      return atoi(line + strlen("oee-server listening on port "));
    }
  }
  return -1;
}

int it_server_start(it_server *s, const char *config, const char *const *args,
                    const char *const *env, int timeout_ms) {
  memset(s, 0, sizeof(*s));
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return -1;
  pid_t pid = spawn(args, config, env, fds[1], s->data_dir, sizeof(s->data_dir));
  close(fds[1]);
  if (pid < 0) {
    close(fds[0]);
    return -1;
  }
  s->pid = pid;
  s->port = read_port(fds[0], timeout_ms);
  close(fds[0]); /* the server prints nothing else on stdout */
  if (s->port <= 0) {
    fprintf(stderr, "it: server gave no port line within %d ms\n", timeout_ms);
    it_server_kill(s);
    return -1;
  }
  snprintf(s->target, sizeof(s->target), "127.0.0.1:%d", s->port);
  s->ch = oee_rpc_channel_create(s->target);
  if (s->ch == NULL) {
    it_server_kill(s);
    return -1;
  }
  return 0;
}

/* The server has been waited for: forget it and remove its data directory. */
static void reaped(it_server *s, int status) {
  s->exit_status = status;
  reg_set(s->pid, 0, NULL);
  s->pid = 0;
  remove_data_dir(s->data_dir);
}

static int decode_status(int st) {
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
  return -1;
}

int it_server_alive(it_server *s) {
  if (s->pid <= 0) return 0;
  int st;
  pid_t r = waitpid(s->pid, &st, WNOHANG);
  if (r == s->pid) {
    reaped(s, st);
    return 0;
  }
  return 1;
}

int it_server_wait(it_server *s, int timeout_ms) {
  int64_t end = it_now_ms() + timeout_ms;
  while (it_server_alive(s)) {
    if (it_now_ms() >= end) return -1;
    it_sleep_ms(10);
  }
  return decode_status(s->exit_status);
}

int it_server_stop(it_server *s, int timeout_ms) {
  if (s->pid > 0) kill(s->pid, SIGTERM);
  return it_server_wait(s, timeout_ms);
}

void it_server_kill(it_server *s) {
  if (s->pid > 0) {
    kill(s->pid, SIGKILL);
    int st = 0;
    waitpid(s->pid, &st, 0);
    reaped(s, st);
  }
  if (s->ch) it_watch_close_all();
  oee_rpc_channel_destroy(s->ch);
  s->ch = NULL;
}

int it_server_teardown(it_server *s) {
  it_watch_close_all();
  oee_rpc_channel_destroy(s->ch);
  s->ch = NULL;
  int rc = s->pid > 0 ? it_server_stop(s, IT_STOP_MS) : 0;
  it_server_kill(s);
  if (rc != 0) fprintf(stderr, "server exit status %d (want 0)\n", rc);
  return rc == 0 ? 0 : -1;
}

int it_server_restart(it_server *s, const char *config, const char *const *args,
                      const char *const *env, int timeout_ms) {
  char dir[sizeof(s->data_dir)];
  snprintf(dir, sizeof(dir), "%s", s->data_dir);
  if (dir[0] == '\0' || s->pid <= 0) {
    fprintf(stderr, "it: restart needs a running server with a data directory\n");
    return -1;
  }
  it_watch_close_all();
  oee_rpc_channel_destroy(s->ch);
  s->ch = NULL;
  s->data_dir[0] = '\0'; /* reaping the old process must leave it */
  int rc = it_server_stop(s, timeout_ms);
  if (rc != 0) {
    fprintf(stderr, "it: restart: the old server's exit status %d (want 0)\n", rc);
    it_server_kill(s);
    remove_data_dir(dir);
    return -1;
  }
  const char *argv[MAX_ARGS];
  int n = 0;
  for (; args && *args && n < MAX_ARGS - 3; args++) argv[n++] = *args;
  argv[n++] = "--data-dir";
  argv[n++] = dir;
  argv[n] = NULL;
  if (it_server_start(s, config, argv, env, timeout_ms) != 0) {
    remove_data_dir(dir);
    return -1;
  }
  /* Now the new process's, removed when it is reaped (here or at exit). */
  snprintf(s->data_dir, sizeof(s->data_dir), "%s", dir);
  reg_set(s->pid, s->pid, s->data_dir);
  return 0;
}

int it_server_run_to_exit(const char *const *args, int timeout_ms) {
  it_server s = {0};
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return -1;
  s.pid = spawn(args, NULL, NULL, fds[1], s.data_dir, sizeof(s.data_dir));
  close(fds[1]);
  close(fds[0]);
  if (s.pid < 0) return -1;
  int rc = it_server_wait(&s, timeout_ms);
  if (rc < 0) {
    it_server_kill(&s);
    return -1;
  }
  return s.exit_status;
}

/* -------------------------------------------------------- task helpers */

int it_submit(oee_rpc_channel *ch, const char *name, const char *type, int prio, char **id,
              const char *const *kv) {
  Oee__V1__SubmitTaskRequest req = OEE__V1__SUBMIT_TASK_REQUEST__INIT;
  Oee__V1__SubmitTaskRequest__ContextEntry ents[16], *ptrs[16];
  req.name = (char *)name;
  req.task_type = (char *)type;
  if (prio >= 0) {
    req.priority_present_case = OEE__V1__SUBMIT_TASK_REQUEST__PRIORITY_PRESENT_PRIORITY;
    req.priority = prio;
  }
  size_t n = 0;
  for (; kv && kv[0] && kv[1] && n < 16; kv += 2, n++) {
    oee__v1__submit_task_request__context_entry__init(&ents[n]);
    ents[n].key = (char *)kv[0];
    ents[n].value = (char *)kv[1];
    ptrs[n] = &ents[n];
  }
  req.n_context = n;
  req.context = ptrs;
  Oee__V1__SubmitTaskResponse *resp = NULL;
  int code = oee_v1_orchestrator_service_submit_task(ch, &req, &resp, IT_CALL_MS, NULL);
  if (code == GRPC_STATUS_OK && id) *id = strdup(resp->task_id);
  if (resp) oee__v1__submit_task_response__free_unpacked(resp, NULL);
  return code;
}

char *it_submit_ok(oee_rpc_channel *ch, const char *name, const char *type, int prio,
                   const char *const *kv) {
  char *id = NULL;
  int code = it_submit(ch, name, type, prio, &id, kv);
  if (code != GRPC_STATUS_OK) {
    fprintf(stderr, "it: submit %s/%s failed with code %d\n", name, type, code);
  }
  return id;
}

Oee__V1__Task *it_get(oee_rpc_channel *ch, const char *id, int *code) {
  Oee__V1__GetTaskRequest req = OEE__V1__GET_TASK_REQUEST__INIT;
  req.task_id = (char *)id;
  Oee__V1__Task *t = NULL;
  int rc = oee_v1_orchestrator_service_get_task(ch, &req, &t, IT_CALL_MS, NULL);
  if (code) *code = rc;
  return t;
}

int it_cancel(oee_rpc_channel *ch, const char *id, int *cancelled) {
  Oee__V1__CancelTaskRequest req = OEE__V1__CANCEL_TASK_REQUEST__INIT;
  req.task_id = (char *)id;
  Oee__V1__CancelTaskResponse *resp = NULL;
  int rc = oee_v1_orchestrator_service_cancel_task(ch, &req, &resp, IT_CALL_MS, NULL);
  if (cancelled) *cancelled = resp ? resp->cancelled : 0;
  if (resp) oee__v1__cancel_task_response__free_unpacked(resp, NULL);
  return rc;
}

static int is_final(Oee__V1__TaskStatus s) {
  return s == OEE__V1__TASK_STATUS__TASK_STATUS_DONE ||
         s == OEE__V1__TASK_STATUS__TASK_STATUS_ERROR ||
         s == OEE__V1__TASK_STATUS__TASK_STATUS_CANCELLED;
}

/* Polls GetTask; want == UNSPECIFIED means any final status. */
static Oee__V1__Task *poll_task(oee_rpc_channel *ch, const char *id, Oee__V1__TaskStatus want,
                                int timeout_ms) {
  int64_t end = it_now_ms() + timeout_ms;
  int pause = 2;
  for (;;) {
    Oee__V1__Task *t = it_get(ch, id, NULL);
    if (t && (want == 0 ? is_final(t->status) : t->status == want)) return t;
    int last = t ? (int)t->status : -1;
    if (t) oee__v1__task__free_unpacked(t, NULL);
    if (it_now_ms() >= end) {
      fprintf(stderr, "it: task %s still in status %d after %d ms (want %d)\n", id, last,
              timeout_ms, (int)want);
      return NULL;
    }
    it_sleep_ms(pause);
    if (pause < 25) pause *= 2;
  }
}

Oee__V1__Task *it_wait_status(oee_rpc_channel *ch, const char *id, Oee__V1__TaskStatus status,
                              int timeout_ms) {
  return poll_task(ch, id, status, timeout_ms);
}

Oee__V1__Task *it_wait_final(oee_rpc_channel *ch, const char *id, int timeout_ms) {
  return poll_task(ch, id, OEE__V1__TASK_STATUS__TASK_STATUS_UNSPECIFIED, timeout_ms);
}

int it_wait_busy(oee_rpc_channel *ch, int busy, int timeout_ms) {
  int64_t end = it_now_ms() + timeout_ms;
  for (;;) {
    Oee__V1__GetSystemStatusRequest req = OEE__V1__GET_SYSTEM_STATUS_REQUEST__INIT;
    Oee__V1__SystemStatus *st = NULL;
    int n = -1;
    if (oee_v1_orchestrator_service_get_system_status(ch, &req, &st, IT_CALL_MS, NULL) == 0) {
      n = 0;
      for (size_t i = 0; i < st->n_workers; i++) n += st->workers[i]->busy ? 1 : 0;
      oee__v1__system_status__free_unpacked(st, NULL);
    }
    if (n == busy) return 0;
    if (it_now_ms() >= end) return -1;
    it_sleep_ms(10);
  }
}

int it_count(oee_rpc_channel *ch, const char *key) {
  Oee__V1__GetQueueStatusRequest req = OEE__V1__GET_QUEUE_STATUS_REQUEST__INIT;
  Oee__V1__QueueStatus *q = NULL;
  if (oee_v1_orchestrator_service_get_queue_status(ch, &req, &q, IT_CALL_MS, NULL) != 0) return -1;
  int v = -1;
  for (size_t i = 0; i < q->n_tasks_by_status; i++) {
    if (strcmp(q->tasks_by_status[i]->key, key) == 0) v = q->tasks_by_status[i]->value;
  }
  oee__v1__queue_status__free_unpacked(q, NULL);
  return v;
}

const char *it_ctx(const Oee__V1__Task *t, const char *key) {
  for (size_t i = 0; i < t->n_context; i++) {
    if (strcmp(t->context[i]->key, key) == 0) return t->context[i]->value;
  }
  return NULL;
}

double it_ts(const Google__Protobuf__Timestamp *ts) {
  return ts ? (double)ts->seconds + ts->nanos / 1e9 : 0.0;
}

/* --------------------------------------------------------------- watch */

/* Open watches, for it_watch_close_all(). */
static pthread_mutex_t watch_mu = PTHREAD_MUTEX_INITIALIZER;
static it_watch *watches[MAX_SERVERS];

static void watch_track(it_watch *old, it_watch *w) {
  pthread_mutex_lock(&watch_mu);
  for (int i = 0; i < MAX_SERVERS; i++) {
    if (watches[i] == old) {
      watches[i] = w;
      break;
    }
  }
  pthread_mutex_unlock(&watch_mu);
}

static int is_probe(const Oee__V1__TaskEvent *ev) {
  return ev->task && strncmp(ev->task->name, IT_PROBE, strlen(IT_PROBE)) == 0;
}

/* Reader thread: moves events into the queue until the stream ends. */
static void *reader(void *arg) {
  it_watch *w = arg;
  for (;;) {
    Oee__V1__TaskEvent *ev = NULL;
    oee_rpc_status st = {0};
    int rc = oee_v1_orchestrator_service_watch_tasks_next(w->r, &ev, &st);
    pthread_mutex_lock(&w->mu);
    if (rc == 1 && is_probe(ev)) {
      w->probes++;
      oee__v1__task_event__free_unpacked(ev, NULL);
    } else if (rc == 1) {
      it_event_node *n = malloc(sizeof(*n));
      if (n == NULL) abort();
      n->ev = ev;
      n->next = NULL;
      if (w->tail)
        w->tail->next = n;
      else
        w->head = n;
      w->tail = n;
    } else {
      w->ended = 1;
      w->st = st;
      if (rc < 0) w->st.code = GRPC_STATUS_INTERNAL;
    }
    pthread_cond_broadcast(&w->cv);
    int done = w->ended;
    pthread_mutex_unlock(&w->mu);
    if (done) return NULL;
  }
}

it_watch *it_watch_open(oee_rpc_channel *ch, const Oee__V1__WatchTasksRequest *req) {
  it_watch *w = calloc(1, sizeof(*w));
  if (w == NULL) return NULL;
  if (oee_v1_orchestrator_service_watch_tasks_start(ch, req, 120000, &w->r) != 0) {
    free(w);
    return NULL;
  }
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&w->cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&w->mu, NULL);
  if (pthread_create(&w->th, NULL, reader, w) != 0) abort();
  watch_track(NULL, w);
  return w;
}

/* Waits on w->cv until `at` (monotonic ms); lock held. 0, or -1 at `at`. */
static int wait_until(it_watch *w, int64_t at) {
  int64_t left = at - it_now_ms();
  if (left <= 0) return -1;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  int64_t ns = (int64_t)ts.tv_nsec + left * 1000000;
  ts.tv_sec += ns / 1000000000;
  ts.tv_nsec = ns % 1000000000;
  pthread_cond_timedwait(&w->cv, &w->mu, &ts);
  return 0;
}

int it_watch_sync(it_watch *w, oee_rpc_channel *ch, const char *probe_type, int timeout_ms) {
  int64_t end = it_now_ms() + timeout_ms;
  while (it_now_ms() < end) {
    pthread_mutex_lock(&w->mu);
    long seen = w->probes;
    pthread_mutex_unlock(&w->mu);
    if (it_submit(ch, IT_PROBE, probe_type, -1, NULL, NULL) != GRPC_STATUS_OK) return -1;
    int64_t until = it_now_ms() + 500;
    pthread_mutex_lock(&w->mu);
    while (w->probes == seen && !w->ended && wait_until(w, until) == 0) {
    }
    int ok = w->probes > seen;
    pthread_mutex_unlock(&w->mu);
    if (ok) return 0;
  }
  return -1;
}

int it_watch_registered(oee_rpc_channel *ch, int timeout_ms) {
  Oee__V1__WatchTasksRequest req = OEE__V1__WATCH_TASKS_REQUEST__INIT;
  it_watch *sentinel = it_watch_open(ch, &req);
  int rc = sentinel ? it_watch_sync(sentinel, ch, "echo", timeout_ms) : -1;
  it_watch_close(sentinel);
  return rc;
}

int it_watch_next(it_watch *w, Oee__V1__TaskEvent **ev, oee_rpc_status *st, int timeout_ms) {
  *ev = NULL;
  if (w == NULL) return -1;
  int64_t end = it_now_ms() + timeout_ms;
  pthread_mutex_lock(&w->mu);
  while (w->head == NULL && !w->ended && wait_until(w, end) == 0) {
  }
  int rc = -2;
  if (w->head) {
    it_event_node *n = w->head;
    w->head = n->next;
    if (w->head == NULL) w->tail = NULL;
    *ev = n->ev;
    free(n);
    rc = 1;
  } else if (w->ended) {
    rc = 0;
    if (st) {
      st->code = w->st.code;
      st->message = w->st.message ? strdup(w->st.message) : NULL;
    }
  }
  pthread_mutex_unlock(&w->mu);
  return rc;
}

void it_watch_cancel(it_watch *w) { oee_v1_orchestrator_service_watch_tasks_cancel(w->r); }

void it_watch_close(it_watch *w) {
  if (w == NULL) return;
  watch_track(w, NULL);
  oee_v1_orchestrator_service_watch_tasks_cancel(w->r);
  pthread_join(w->th, NULL);
  oee_v1_orchestrator_service_watch_tasks_close(w->r);
  while (w->head) {
    it_event_node *n = w->head;
    w->head = n->next;
    oee__v1__task_event__free_unpacked(n->ev, NULL);
    free(n);
  }
  oee_rpc_status_free(&w->st);
  pthread_cond_destroy(&w->cv);
  pthread_mutex_destroy(&w->mu);
  free(w);
}

void it_watch_close_all(void) {
  for (int i = 0; i < MAX_SERVERS; i++) {
    pthread_mutex_lock(&watch_mu);
    it_watch *w = watches[i];
    pthread_mutex_unlock(&watch_mu);
    it_watch_close(w);
  }
}

/* ------------------------------------------------------------ raw call */

int it_raw_unary(const char *target, const char *method, const void *body, size_t len,
                 int timeout_ms, char **msg) {
  grpc_init();
  grpc_channel_credentials *creds = grpc_insecure_credentials_create();
  grpc_channel *chan = grpc_channel_create(target, creds, NULL);
  grpc_channel_credentials_release(creds);
  grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
  gpr_timespec deadline =
      gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
  grpc_slice path = grpc_slice_from_copied_string(method);
  grpc_call *call =
      grpc_channel_create_call(chan, NULL, GRPC_PROPAGATE_DEFAULTS, cq, path, NULL, deadline, NULL);
  grpc_slice_unref(path);
  grpc_slice data = grpc_slice_from_copied_buffer(body, len);
  grpc_byte_buffer *req = grpc_raw_byte_buffer_create(&data, 1);
  grpc_slice_unref(data);
  grpc_metadata_array init_md, trail_md;
  grpc_metadata_array_init(&init_md);
  grpc_metadata_array_init(&trail_md);
  grpc_byte_buffer *resp = NULL;
  grpc_status_code status = GRPC_STATUS_UNKNOWN;
  grpc_slice details = grpc_empty_slice();
  grpc_op ops[6];
  memset(ops, 0, sizeof(ops));
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = req;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &init_md;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &resp;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.trailing_metadata = &trail_md;
  ops[5].data.recv_status_on_client.status = &status;
  ops[5].data.recv_status_on_client.status_details = &details;
  int code = -1;
  if (grpc_call_start_batch(call, ops, 6, (void *)1, NULL) == GRPC_CALL_OK) {
    gpr_timespec wait = gpr_time_add(deadline, gpr_time_from_millis(5000, GPR_TIMESPAN));
    grpc_event ev = grpc_completion_queue_pluck(cq, (void *)1, wait, NULL);
    if (ev.type != GRPC_OP_COMPLETE) {
      grpc_call_cancel(call, NULL);
      ev = grpc_completion_queue_pluck(cq, (void *)1, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    } else {
      code = (int)status;
    }
  }
  if (msg) {
    char *s = grpc_slice_to_c_string(details);
    *msg = strdup(s);
    gpr_free(s);
  }
  grpc_slice_unref(details);
  if (resp) grpc_byte_buffer_destroy(resp);
  grpc_byte_buffer_destroy(req);
  grpc_metadata_array_destroy(&init_md);
  grpc_metadata_array_destroy(&trail_md);
  grpc_call_unref(call);
  grpc_completion_queue_shutdown(cq);
  grpc_completion_queue_destroy(cq);
  grpc_channel_destroy(chan);
  grpc_shutdown();
  return code;
}
