/*
 * oeectl_worker.c - `oeectl worker`: a remote worker (client/worker.h) that
 * runs a command per task.
 *
 * DESIGN
 *  - Threads: the main thread runs oee_worker_run(); the library's handler
 *    threads each run one command at a time (run_task); one signal thread
 *    takes SIGINT/SIGTERM with sigwait() and asks the worker to stop (the
 *    first signal with the --grace deadline, a second one at once). The
 *    signals are blocked in every thread before the channel exists, as in
 *    `oeectl watch`; the commands get an empty mask and default dispositions.
 *  - A command is started with posix_spawnp() (safe in a threaded program:
 *    the environment and argv are built before, nothing runs between fork
 *    and exec) in a process group of its own, with three pipes (O_CLOEXEC,
 *    so no command inherits another's). One poll() loop per task feeds
 *    context["input"] to stdin, collects stdout (up to MAX_OUT bytes) and the
 *    last ERR_TAIL bytes of stderr, and looks every POLL_MS at the task's
 *    cancel flag: once cancelled (CancelTask, a lost lease or the stop
 *    deadline) the group gets SIGTERM, and SIGKILL KILL_AFTER_MS later.
 *  - Outcome: exit 0 -> the result is stdout without trailing whitespace;
 *    otherwise the attempt fails with "exit code N: <stderr tail>" (or
 *    "killed by signal N: ..."), retryable (the task's max_attempts decide).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client/oeectl.h"
#include "client/worker.h"

extern char **environ;

#define MAX_OUT (4 << 20)   /* stdout bytes kept; the server cuts results anyway */
#define ERR_TAIL 2048       /* stderr bytes kept: the last ones */
#define POLL_MS 100         /* cancel flag check period */
#define KILL_AFTER_MS 10000 /* SIGTERM -> SIGKILL */
#define EXITED_DRAIN_MS 500 /* pipes still open after the command exited */
#define DEFAULT_GRACE_S 30.0

/* ---- options ---- */

typedef struct worker_args {
  const char **types; /* capacity argc */
  size_t n_types;
  int concurrency;
  double lease_s, grace_s;
  const char *worker_id;
} worker_args;

enum { O_TYPE = OPT_CMD_BASE, O_CONCURRENCY, O_LEASE, O_WORKER_ID, O_GRACE };

static int worker_opt(void *p, const oeectl_cmd *cmd, int opt, const char *arg) {
  worker_args *a = p;
  if (opt == O_TYPE) a->types[a->n_types++] = arg;
  if (opt == O_WORKER_ID) a->worker_id = arg;
  if (opt == O_CONCURRENCY && oeectl_parse_int(arg, 1, 100, &a->concurrency) != 0)
    return oeectl_usage_error(cmd, "--concurrency must be an integer from 1 to 100, got \"%s\"",
                              arg);
  if (opt == O_LEASE &&
      (oeectl_parse_double(arg, &a->lease_s) != 0 || a->lease_s < 1 || a->lease_s > 3600))
    return oeectl_usage_error(cmd, "--lease must be seconds from 1 to 3600, got \"%s\"", arg);
  if (opt == O_GRACE && oeectl_parse_nonneg(arg, &a->grace_s) != 0)
    return oeectl_usage_error(cmd, "--grace must be a number of seconds >= 0, got \"%s\"", arg);
  return -1;
}

/* ---- the environment of a command ---- */

static int inherited_ok(const char *entry) {
  return strncmp(entry, "OEE_CTX_", 8) != 0 && strncmp(entry, "OEE_TASK_ID=", 12) != 0 &&
         strncmp(entry, "OEE_ATTEMPT=", 12) != 0 && strncmp(entry, "OEE_TASK_TYPE=", 14) != 0;
}

/* "OEE_CTX_<KEY>=<value>": the key upper-cased, other bytes '_'. */
static char *ctx_var(const char *key, const char *value) {
  size_t kl = strlen(key);
  char *s = malloc(8 + kl + 1 + strlen(value) + 1);
  if (s == NULL) return NULL;
  memcpy(s, "OEE_CTX_", 8);
  for (size_t i = 0; i < kl; i++) {
    char c = key[i];
    if (c >= 'a' && c <= 'z') c = (char)(c - 'a' + 'A');
    s[8 + i] = (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ? c : '_';
  }
  s[8 + kl] = '=';
  strcpy(s + 8 + kl + 1, value);
  return s;
}

static char *format_var(const char *name, const char *value) {
  char *s = malloc(strlen(name) + strlen(value) + 2);
  if (s != NULL) sprintf(s, "%s=%s", name, value);
  return s;
}

static void env_free(char **env) {
  for (size_t i = 0; env != NULL && env[i] != NULL; i++) free(env[i]);
  free(env);
}

/* The process environment (less inherited OEE_CTX_* and task variables)
 * plus the task's; NULL when out of memory. */
static char **task_env(oee_worker_task *t) {
  size_t n_env = 0, n = 0, n_ctx = oee_worker_task_context_count(t);
  while (environ[n_env] != NULL) n_env++;
  char **env = calloc(n_env + n_ctx + 4, sizeof *env);
  if (env == NULL) return NULL;
  for (size_t i = 0; i < n_env; i++)
    if (inherited_ok(environ[i]) && (env[n++] = strdup(environ[i])) == NULL) goto oom;
  for (size_t i = 0; i < n_ctx; i++) {
    const char *k, *v;
    oee_worker_task_context_at(t, i, &k, &v);
    if ((env[n++] = ctx_var(k, v)) == NULL) goto oom;
  }
  char attempt[16];
  snprintf(attempt, sizeof attempt, "%d", oee_worker_task_attempt(t));
  if ((env[n++] = format_var("OEE_TASK_ID", oee_worker_task_id(t))) == NULL) goto oom;
  if ((env[n++] = format_var("OEE_ATTEMPT", attempt)) == NULL) goto oom;
  if ((env[n++] = format_var("OEE_TASK_TYPE", oee_worker_task_type(t))) == NULL) goto oom;
  return env;
oom:
  env_free(env);
  return NULL;
}

/* ---- one command ---- */

typedef struct child_io {
  pid_t pid;
  int fd[3];         /* our ends: stdin (write), stdout, stderr; -1 closed */
  const char *input; /* context["input"] or "" */
  size_t in_len, in_off;
  char *out; /* stdout, NUL-terminated, at most MAX_OUT bytes */
  size_t out_len;
  char err[ERR_TAIL + 1]; /* the last stderr bytes */
  size_t err_len;
  int err_cut;                /* earlier stderr bytes were dropped */
  int exited, status;         /* waitpid() done and its status */
  int64_t exited_ms, term_ms; /* when it exited; when SIGTERM went (0: not) */
  int killed;                 /* SIGKILL sent */
} child_io;

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

/* Spawn attributes: own process group, empty mask, default signals. */
static int spawn_attrs(posix_spawnattr_t *a) {
  sigset_t none, dflt;
  sigemptyset(&none);
  sigemptyset(&dflt);
  sigaddset(&dflt, SIGINT);
  sigaddset(&dflt, SIGTERM);
  sigaddset(&dflt, SIGPIPE);
  sigaddset(&dflt, SIGUSR1);
  if (posix_spawnattr_init(a) != 0) return -1;
  short flags = POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  posix_spawnattr_setflags(a, flags);
  posix_spawnattr_setpgroup(a, 0);
  posix_spawnattr_setsigmask(a, &none);
  posix_spawnattr_setsigdefault(a, &dflt);
  return 0;
}

/* Starts cmd with the pipes; returns 0 or an errno value. */
static int spawn_cmd(char **cmd, char **env, child_io *io) {
  int p[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}};
  int rc = 0;
  for (int i = 0; i < 3 && rc == 0; i++)
    if (pipe2(p[i], O_CLOEXEC) != 0) rc = errno;
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  if (rc == 0 && (posix_spawn_file_actions_init(&fa) != 0 || spawn_attrs(&attr) != 0)) rc = ENOMEM;
  if (rc == 0) {
    posix_spawn_file_actions_adddup2(&fa, p[0][0], 0);
    posix_spawn_file_actions_adddup2(&fa, p[1][1], 1);
    posix_spawn_file_actions_adddup2(&fa, p[2][1], 2);
    rc = posix_spawnp(&io->pid, cmd[0], &fa, &attr, cmd, env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
  }
  io->fd[0] = p[0][1], io->fd[1] = p[1][0], io->fd[2] = p[2][0];
  close_fd(&p[0][0]), close_fd(&p[1][1]), close_fd(&p[2][1]);
  if (rc != 0)
    for (int i = 0; i < 3; i++) close_fd(&io->fd[i]);
  return rc;
}

static void keep_stderr(child_io *io, const char *buf, size_t n) {
  if (n >= ERR_TAIL) {
    memcpy(io->err, buf + n - ERR_TAIL, ERR_TAIL);
    io->err_cut |= n > ERR_TAIL || io->err_len > 0;
    io->err_len = ERR_TAIL;
  } else {
    size_t drop = io->err_len + n > ERR_TAIL ? io->err_len + n - ERR_TAIL : 0;
    memmove(io->err, io->err + drop, io->err_len - drop);
    memcpy(io->err + io->err_len - drop, buf, n);
    io->err_len += n - drop;
    io->err_cut |= drop > 0;
  }
  io->err[io->err_len] = '\0';
}

/* Reads what pipe i (1 stdout, 2 stderr) has; closes it at EOF. */
static void read_pipe(child_io *io, int i) {
  char buf[8192];
  ssize_t n = read(io->fd[i], buf, sizeof buf);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (n <= 0) {
    close_fd(&io->fd[i]);
    return;
  }
  if (i == 2) {
    keep_stderr(io, buf, (size_t)n);
    return;
  }
  size_t take = io->out_len + (size_t)n > MAX_OUT ? MAX_OUT - io->out_len : (size_t)n;
  memcpy(io->out + io->out_len, buf, take);
  io->out_len += take;
  io->out[io->out_len] = '\0';
}

static void write_input(child_io *io) {
  ssize_t n = write(io->fd[0], io->input + io->in_off, io->in_len - io->in_off);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (n > 0) io->in_off += (size_t)n;
  if (n < 0 || io->in_off == io->in_len) close_fd(&io->fd[0]); /* EPIPE: it stopped reading */
}

/* Signals the group once the task is cancelled; escalates to SIGKILL. */
static void check_cancel(child_io *io, oee_worker_task *t, int64_t now) {
  if (io->term_ms == 0 && oee_worker_task_cancelled(t)) {
    kill(-io->pid, SIGTERM);
    io->term_ms = now;
  } else if (io->term_ms != 0 && !io->killed && now - io->term_ms >= KILL_AFTER_MS) {
    kill(-io->pid, SIGKILL);
    io->killed = 1;
  }
}

/* One poll() round over the open pipes (at most POLL_MS). */
static void pump_once(child_io *io) {
  struct pollfd pf[3];
  int idx[3], n = 0;
  for (int i = 0; i < 3; i++) {
    if (io->fd[i] < 0) continue;
    pf[n] = (struct pollfd){.fd = io->fd[i], .events = i == 0 ? POLLOUT : POLLIN};
    idx[n++] = i;
  }
  if (poll(pf, (nfds_t)n, POLL_MS) <= 0) return;
  for (int k = 0; k < n; k++) {
    if (pf[k].revents == 0) continue;
    if (idx[k] == 0)
      write_input(io);
    else
      read_pipe(io, idx[k]);
  }
}

/* Runs the command to its end: feeds stdin, reads the outputs, reaps it. */
static void pump(child_io *io, oee_worker_task *t) {
  for (;;) {
    int64_t now = mono_ms();
    if (!io->exited && waitpid(io->pid, &io->status, WNOHANG) == io->pid) {
      io->exited = 1;
      io->exited_ms = now;
    }
    if (io->exited && io->fd[1] < 0 && io->fd[2] < 0) break;
    if (io->exited && now - io->exited_ms >= EXITED_DRAIN_MS) break; /* a child kept them */
    check_cancel(io, t, now);
    pump_once(io);
  }
  for (int i = 0; i < 3; i++) close_fd(&io->fd[i]);
}

/* ---- outcome ---- */

static void trim_right(char *s, size_t *len) {
  while (*len > 0 && strchr(" \t\r\n\v\f", s[*len - 1]) != NULL) s[--*len] = '\0';
}

/* One stderr line per task: done, or why it failed (one line, clipped). */
static void say_outcome(const oee_worker_task *t, const char *what, const char *why) {
  char line[120];
  fprintf(stderr, "oeectl worker: task %s (%s, attempt %d): %s%s%s\n", oee_worker_task_id(t),
          oee_worker_task_type(t), oee_worker_task_attempt(t), what, why != NULL ? ": " : "",
          why != NULL ? oeectl_clip(why, 100, line, sizeof line) : "");
}

/* Sets the task's error from the status and the stderr tail; returns 1. */
static int command_failed(oee_worker_task *t, child_io *io) {
  char msg[ERR_TAIL + 96];
  int n;
  trim_right(io->err, &io->err_len);
  if (WIFEXITED(io->status))
    n = snprintf(msg, sizeof msg, "exit code %d", WEXITSTATUS(io->status));
  else
    n = snprintf(msg, sizeof msg, "killed by signal %d", WTERMSIG(io->status));
  if (io->err_len > 0)
    snprintf(msg + n, sizeof msg - (size_t)n, ": %s%s", io->err_cut ? "..." : "", io->err);
  oee_worker_task_set_error(t, msg, 1);
  say_outcome(t, oee_worker_task_cancelled(t) ? "cancelled" : "failed", msg);
  return 1;
}

static int run_task(oee_worker_task *t, void *ud) {
  char **cmd = ud, **env = task_env(t);
  const char *input = oee_worker_task_context(t, "input");
  child_io io = {.fd = {-1, -1, -1}, .input = input != NULL ? input : ""};
  io.in_len = strlen(io.input);
  io.out = malloc(MAX_OUT + 1);
  int rc = env == NULL || io.out == NULL ? ENOMEM : spawn_cmd(cmd, env, &io);
  env_free(env);
  if (rc != 0) {
    char msg[256];
    snprintf(msg, sizeof msg, "cannot run %s: %s", cmd[0], strerror(rc));
    oee_worker_task_set_error(t, msg, 1);
    say_outcome(t, "failed", msg);
    free(io.out);
    return 1;
  }
  io.out[0] = '\0';
  pump(&io, t);
  if (io.exited && WIFEXITED(io.status) && WEXITSTATUS(io.status) == 0) {
    trim_right(io.out, &io.out_len);
    rc = oee_worker_task_set_result(t, io.out) == 0 ? 0 : 1;
    say_outcome(t, rc == 0 ? "done" : "failed", rc == 0 ? NULL : "out of memory");
  } else {
    rc = command_failed(t, &io); /* pump() returns once the command exited */
  }
  free(io.out);
  return rc;
}

/* ---- signals and the run ---- */

typedef struct sig_helper {
  pthread_t thread;
  sigset_t set; /* SIGINT, SIGTERM, SIGUSR1 */
  oee_worker *w;
  double grace_s;
} sig_helper;

static void *sig_main(void *p) {
  sig_helper *h = p;
  int sig = 0, count = 0;
  while (sigwait(&h->set, &sig) == 0 && sig != SIGUSR1) {
    double grace = ++count == 1 ? h->grace_s : 0;
    fprintf(stderr, "oeectl worker: %s: stopping (%g s for the running tasks)\n",
            sig == SIGINT ? "SIGINT" : "SIGTERM", grace);
    oee_worker_stop(h->w, grace);
  }
  return NULL;
}

static void log_line(void *ud, const char *msg) { fprintf(stderr, "oeectl worker: %s\n", msg); }

static int worker_start(oeectl_ctx *ctx, const worker_args *a, char **cmd, sig_helper *h) {
  const oee_rpc_channel_options *conn = oeectl_conn_opts(ctx);
  if (conn == NULL) return OEECTL_EXIT_SOFTWARE;
  oee_worker_options o = {
      .target = ctx->addr, /* the library's channel reconnects sooner */
      .channel_options = conn,
      .worker_id = a->worker_id,
      .task_types = a->types,
      .n_task_types = a->n_types,
      .concurrency = a->concurrency,
      .lease_seconds = a->lease_s,
      .poll_wait_seconds = -1,
      .handler = run_task,
      .user_data = cmd,
      .log = log_line,
  };
  int rc = oee_worker_create(&o, &h->w);
  if (rc == OEE_RPC_EINVAL) /* log_line said which when it was a channel setting */
    return oeectl_usage_error(&oeectl_cmd_worker, "invalid settings");
  if (rc != 0) return oeectl_fail(OEECTL_EXIT_SOFTWARE, "%s", oee_rpc_strerror(rc));
  fprintf(stderr, "oeectl worker: %s polling %s for", oee_worker_id(h->w), ctx->addr);
  for (size_t i = 0; i < a->n_types; i++) fprintf(stderr, " %s", a->types[i]);
  fprintf(stderr, " (concurrency %d)\n", a->concurrency);
  return -1;
}

static int worker_serve(oeectl_ctx *ctx, const worker_args *a, char **cmd) {
  sig_helper h = {.grace_s = a->grace_s};
  sigemptyset(&h.set);
  sigaddset(&h.set, SIGINT);
  sigaddset(&h.set, SIGTERM);
  sigaddset(&h.set, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &h.set, NULL); /* before the channel: see DESIGN */
  signal(SIGPIPE, SIG_IGN);                 /* a command that closes its stdin */
  int rc = worker_start(ctx, a, cmd, &h);
  if (rc >= 0) return rc;
  if (pthread_create(&h.thread, NULL, sig_main, &h) != 0) abort();
  rc = oee_worker_run(h.w);
  pthread_kill(h.thread, SIGUSR1);
  pthread_join(h.thread, NULL);
  oee_worker_destroy(h.w);
  if (rc != 0) return oeectl_fail(OEECTL_EXIT_SOFTWARE, "%s", oee_rpc_strerror(rc));
  fprintf(stderr, "oeectl worker: stopped\n");
  return 0;
}

static int worker_run(oeectl_ctx *ctx, int argc, char **argv) {
  static const struct option opts[] = {{"type", required_argument, NULL, O_TYPE},
                                       {"concurrency", required_argument, NULL, O_CONCURRENCY},
                                       {"lease", required_argument, NULL, O_LEASE},
                                       {"worker-id", required_argument, NULL, O_WORKER_ID},
                                       {"grace", required_argument, NULL, O_GRACE},
                                       OEECTL_GLOBAL_OPTIONS};
  worker_args a = {.concurrency = 1, .lease_s = 30, .grace_s = DEFAULT_GRACE_S};
  a.types = calloc((size_t)argc, sizeof *a.types);
  if (a.types == NULL) return oeectl_fail(OEECTL_EXIT_SOFTWARE, "out of memory");
  int rc = oeectl_parse_opts(ctx, &oeectl_cmd_worker, opts, argc, argv, worker_opt, &a);
  if (rc < 0 && a.n_types == 0) rc = oeectl_usage_error(&oeectl_cmd_worker, "missing --type");
  if (rc < 0 && optind >= argc)
    rc = oeectl_usage_error(&oeectl_cmd_worker, "missing the command (after --)");
  if (rc < 0 && a.worker_id != NULL && (a.worker_id[0] == '\0' || strlen(a.worker_id) > 128))
    rc = oeectl_usage_error(&oeectl_cmd_worker, "--worker-id must have 1 to 128 bytes");
  if (rc < 0) rc = worker_serve(ctx, &a, argv + optind);
  free(a.types);
  return rc;
}

const oeectl_cmd oeectl_cmd_worker = {
    "worker", "run a command for each task of remote types (WorkerService)",
    "usage: oeectl worker --type T [--type T2 ...] [--concurrency N] [--lease S]\n"
    "                     [--worker-id ID] [--grace S] -- CMD [ARG...]\n"
    "  Polls the server for tasks of the types (the server's remote_types) and runs\n"
    "  CMD for each, up to N at once (default 1), in a process group of its own:\n"
    "    environment  OEE_CTX_<KEY> per context entry (key upper-cased, other\n"
    "                 characters _), OEE_TASK_ID, OEE_ATTEMPT, OEE_TASK_TYPE\n"
    "    stdin        context[\"input\"] (empty when unset)\n"
    "    exit 0       the task is DONE; its result is stdout, trailing whitespace trimmed\n"
    "    exit N       the attempt fails with \"exit code N: <stderr tail>\" (retried\n"
    "                 while the task has attempts left)\n"
    "  CancelTask while CMD runs sends SIGTERM to its process group (SIGKILL 10 s\n"
    "  later); the task then ends CANCELLED.\n"
    "  --lease      lease length in seconds, 1..3600 (default 30); heartbeats every third\n"
    "  --worker-id  1..128 bytes (default <hostname>-<pid>)\n"
    "  --grace      on SIGTERM/SIGINT: stop polling and give running tasks this many\n"
    "               seconds (default 30) before they are signalled and retried\n"
    "               elsewhere; a second signal stops at once. Exit 0 after a stop.\n"
    "  Failed calls (server restarting, unreachable) are logged and retried.\n"
    "  Progress goes to stderr, one line per task.\n",
    worker_run};
