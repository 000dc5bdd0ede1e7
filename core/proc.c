/*
 * proc.c - the child-process runner (the command table is in exec_table.c).
 *
 * DESIGN: oee_proc_run() runs on the calling thread (a worker, or a pipeline
 * stage thread) and owns everything it creates; it shares no state with
 * other threads, so it takes no locks. Several runs may proceed at once.
 *
 *  - The child is started with posix_spawnp() (no shell) in a process group
 *    of its own, with an empty signal mask and default dispositions, so a
 *    SIGKILL to -pid reaches its grandchildren too.
 *  - Every descriptor the parent creates is close-on-exec, so a child
 *    spawned concurrently by another thread never inherits our pipe ends
 *    (which would hold them open and delay EOF).
 *  - One poll() loop writes the input, reads stdout and stderr, and watches
 *    the cancellation token's eventfd and a pidfd that becomes readable when
 *    the child exits (without pidfd support it ticks every 20 ms).
 *  - The child's exit is observed with waitid(WNOWAIT): it stays a zombie,
 *    so its pid, and with it the process group id, cannot be reused before
 *    we send the group SIGKILL. At exit we kill the group (leftover
 *    grandchildren die with it), drain the pipes, then reap exactly once.
 *    Data the child wrote before exiting stays readable in the pipes.
 *  - SIGPIPE is blocked in this thread while the run lasts; a write to a
 *    child that closed its stdin fails with EPIPE and the pending signal is
 *    consumed before the old mask is restored, so it never kills the server.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/internal.h"
#include "core/oee_alloc.h"
#include "core/oee_exec.h"

extern char **environ;

/* ------------------------------------------------------------ runner */

#define TAIL_CAP OEE_PROC_ERR_TAIL /* bytes of stderr kept */
#define READ_CHUNK 16384           /* bytes per read() */
#define TICK_MS 20                 /* poll period without pidfd/eventfd */
#define EXIT_GRACE_NS 1000000000   /* drain time after the child exited */

typedef struct run {
  pid_t pid;
  int pidfd; /* -1 when the kernel has no pidfd_open */
  int in_fd; /* parent ends; -1 once closed */
  int out_fd;
  int err_fd;
  char **env; /* the child's environment */
  const char *input;
  size_t input_len;
  size_t input_off; /* bytes of input already written */
  size_t max_out;
  char *out; /* stdout kept so far, out_len <= max_out */
  size_t out_len;
  size_t out_cap;
  int out_truncated;
  char tail[TAIL_CAP];
  size_t tail_len;
  oee_token *tok;
  int tok_fd;          /* -1 when none */
  int64_t deadline_ns; /* CLOCK_MONOTONIC; 0 = none */
  int64_t exited_ns;   /* when the child's exit was seen; 0 = still running */
  int killed;
  int timed_out;
  int cancelled;
  int oom; /* an allocation for stdout failed; output is cut */
} run;

static void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

static int set_nonblock(int fd) {
  int fl = fcntl(fd, F_GETFL);
  return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Creates the three pipes; child ends go to p[i][0 or 1], parent ends are
 * non-blocking. All close-on-exec: posix_spawn's dup2 clears the flag on
 * the copies that become the child's 0, 1 and 2. */
static int make_pipes(int in[2], int out[2], int err[2]) {
  if (pipe2(in, O_CLOEXEC) != 0) return -1;
  if (pipe2(out, O_CLOEXEC) != 0) return -1;
  if (pipe2(err, O_CLOEXEC) != 0) return -1;
  if (set_nonblock(in[1]) != 0 || set_nonblock(out[0]) != 0 || set_nonblock(err[0]) != 0) {
    return -1;
  }
  return 0;
}

static int spawn_attrs(posix_spawnattr_t *attr) {
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  int rc = posix_spawnattr_init(attr);
  if (rc != 0) return rc;
  short flags = POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  if ((rc = posix_spawnattr_setflags(attr, flags)) != 0) return rc;
  if ((rc = posix_spawnattr_setpgroup(attr, 0)) != 0) return rc;
  if ((rc = posix_spawnattr_setsigmask(attr, &none)) != 0) return rc;
  /* Ignored signals (a server often ignores SIGPIPE) would otherwise stay
   * ignored in the child and change how pipelines of commands behave. */
  return posix_spawnattr_setsigdefault(attr, &all);
}

static int spawn_actions(posix_spawn_file_actions_t *fa, int in[2], int out[2], int err[2]) {
  int rc = posix_spawn_file_actions_init(fa);
  if (rc != 0) return rc;
  if ((rc = posix_spawn_file_actions_adddup2(fa, in[0], 0)) != 0) return rc;
  if ((rc = posix_spawn_file_actions_adddup2(fa, out[1], 1)) != 0) return rc;
  return posix_spawn_file_actions_adddup2(fa, err[1], 2);
}

static int open_pidfd(pid_t pid) {
#ifdef SYS_pidfd_open
  /* A pidfd is always close-on-exec. */
  return (int)syscall(SYS_pidfd_open, pid, 0);
#else
  (void)pid;
  return -1;
#endif
}

/* Starts the child. Returns 0, or an errno value (child ends all closed). */
static int spawn_child(const char *const *argv, run *r) {
  int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
  posix_spawnattr_t attr;
  posix_spawn_file_actions_t fa;
  int have_attr = 0, have_fa = 0;
  int rc = make_pipes(in, out, err) != 0 ? errno : 0;
  if (rc == 0) {
    have_attr = 1;
    rc = spawn_attrs(&attr);
  }
  if (rc == 0) {
    have_fa = 1;
    rc = spawn_actions(&fa, in, out, err);
  }
  if (rc == 0) {
    rc = posix_spawnp(&r->pid, argv[0], &fa, &attr, (char *const *)argv, r->env);
  }
  if (have_fa) posix_spawn_file_actions_destroy(&fa);
  if (have_attr) posix_spawnattr_destroy(&attr);
  close_fd(&in[0]);
  close_fd(&out[1]);
  close_fd(&err[1]);
  r->in_fd = in[1];
  r->out_fd = out[0];
  r->err_fd = err[0];
  return rc;
}

static void kill_group(run *r) {
  if (r->killed) return;
  r->killed = 1;
  /* The leader is not reaped yet, so -pid still names our group. */
  kill(-r->pid, SIGKILL);
}

static void tail_append(run *r, const char *buf, size_t n) {
  if (n >= TAIL_CAP) {
    memcpy(r->tail, buf + n - TAIL_CAP, TAIL_CAP);
    r->tail_len = TAIL_CAP;
    return;
  }
  size_t keep = r->tail_len + n > TAIL_CAP ? TAIL_CAP - n : r->tail_len;
  memmove(r->tail, r->tail + r->tail_len - keep, keep);
  memcpy(r->tail + keep, buf, n);
  r->tail_len = keep + n;
}

static void out_append(run *r, const char *buf, size_t n) {
  size_t room = r->max_out - r->out_len;
  if (n > room || r->oom) {
    r->out_truncated = 1;
    n = r->oom ? 0 : room;
  }
  if (r->out_len + n + 1 > r->out_cap) {
    size_t cap = r->out_cap == 0 ? 4096 : r->out_cap;
    while (cap < r->out_len + n + 1) cap *= 2;
    char *grown = oee_realloc(r->out, cap);
    if (grown == NULL) {
      r->oom = r->out_truncated = 1;
      return;
    }
    r->out = grown;
    r->out_cap = cap;
  }
  memcpy(r->out + r->out_len, buf, n);
  r->out_len += n;
}

/* Reads what `*fd` has; closes it at EOF or on a hard error. */
static void drain(run *r, int *fd, int is_err) {
  char buf[READ_CHUNK];
  for (;;) {
    ssize_t n = read(*fd, buf, sizeof(buf));
    if (n > 0) {
      if (is_err)
        tail_append(r, buf, (size_t)n);
      else
        out_append(r, buf, (size_t)n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    close_fd(fd);
    return;
  }
}

/* Writes as much input as the pipe takes; closes stdin when done or when
 * the child stopped reading (EPIPE: SIGPIPE is blocked, see the DESIGN). */
static void pump_input(run *r) {
  while (r->in_fd >= 0 && r->input_off < r->input_len) {
    ssize_t n = write(r->in_fd, r->input + r->input_off, r->input_len - r->input_off);
    if (n > 0) {
      r->input_off += (size_t)n;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return;
    } else {
      break;
    }
  }
  close_fd(&r->in_fd);
}

/* Notices the child's exit without reaping it (see the DESIGN). */
static void check_exit(run *r) {
  if (r->exited_ns != 0) return;
  siginfo_t si;
  memset(&si, 0, sizeof(si));
  int rc;
  do {
    rc = waitid(P_PID, (id_t)r->pid, &si, WEXITED | WNOHANG | WNOWAIT);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0 && errno == ECHILD) {
    /* Someone else reaped it (SIGCHLD ignored, or a stray waitpid(-1)):
     * the group id may be reused now, so it must not be signalled. */
    r->killed = 1;
  } else if (rc != 0 || si.si_pid != r->pid) {
    return;
  }
  r->exited_ns = oee__mono_ns();
  close_fd(&r->pidfd);
  close_fd(&r->in_fd);
  kill_group(r); /* grandchildren may not outlive the command */
}

/* Kills on timeout or cancellation; decides whether the loop is over. */
static int check_stop(run *r, int64_t now) {
  if (r->exited_ns != 0) {
    if (r->out_fd < 0 && r->err_fd < 0) return 1;
    /* A process outside the group may still hold a pipe: bound the wait. */
    return now - r->exited_ns >= EXIT_GRACE_NS;
  }
  if (r->tok != NULL && oee_token_cancelled(r->tok) && !r->killed) {
    r->cancelled = 1;
    kill_group(r);
  }
  if (r->deadline_ns != 0 && now >= r->deadline_ns && !r->killed) {
    r->timed_out = 1;
    kill_group(r);
  }
  return 0;
}

static int poll_timeout_ms(const run *r, int64_t now) {
  int64_t until = -1;
  if (r->exited_ns != 0) {
    until = r->exited_ns + EXIT_GRACE_NS;
  } else if (r->deadline_ns != 0 && !r->killed) {
    until = r->deadline_ns;
  }
  int64_t left = until - now;
  if (left > 60 * (int64_t)1000000000) left = 60 * (int64_t)1000000000;
  int ms = until < 0 ? -1 : left <= 0 ? 0 : (int)((left + 999999) / 1000000);
  int need_tick = r->exited_ns == 0 && (r->pidfd < 0 || (r->tok != NULL && r->tok_fd < 0));
  if (need_tick && (ms < 0 || ms > TICK_MS)) ms = TICK_MS;
  return ms;
}

/* One poll() round over whatever is still open. */
static void poll_once(run *r) {
  struct pollfd p[5];
  int *fds[5];
  short ev[5] = {POLLOUT, POLLIN, POLLIN, POLLIN, POLLIN};
  int *cand[5] = {&r->in_fd, &r->out_fd, &r->err_fd, &r->pidfd, &r->tok_fd};
  nfds_t n = 0;
  for (int i = 0; i < 5; i++) {
    if (*cand[i] < 0) continue;
    if (i == 4 && (r->killed || r->exited_ns != 0)) continue;
    p[n].fd = *cand[i];
    p[n].events = ev[i];
    p[n].revents = 0;
    fds[n++] = cand[i];
  }
  int rc = poll(p, n, poll_timeout_ms(r, oee__mono_ns()));
  if (rc <= 0) return; /* timeout or EINTR: the caller re-checks */
  for (nfds_t i = 0; i < n; i++) {
    if (p[i].revents == 0) continue;
    if (fds[i] == &r->in_fd)
      pump_input(r);
    else if (fds[i] == &r->out_fd)
      drain(r, &r->out_fd, 0);
    else if (fds[i] == &r->err_fd)
      drain(r, &r->err_fd, 1);
  }
}

static void reap(run *r, oee_proc_result *res) {
  int st = 0;
  pid_t got;
  do {
    got = waitpid(r->pid, &st, 0);
  } while (got < 0 && errno == EINTR);
  res->exit_code = -1;
  if (got == r->pid && WIFEXITED(st)) {
    res->exit_code = WEXITSTATUS(st);
  } else if (got == r->pid && WIFSIGNALED(st)) {
    res->signaled = 1;
    res->term_signal = WTERMSIG(st);
  }
}

static void loop(run *r) {
  if (r->input_len == 0) close_fd(&r->in_fd);
  for (;;) {
    check_exit(r);
    if (check_stop(r, oee__mono_ns())) break;
    poll_once(r);
  }
}

/* Consumes a SIGPIPE raised by our own writes, then restores the mask. */
static void sigpipe_restore(const sigset_t *old, int was_pending) {
  sigset_t pipe_set, pending;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  sigpending(&pending);
  if (!was_pending && sigismember(&pending, SIGPIPE)) {
    struct timespec zero = {0, 0};
    while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, old, NULL);
}

static int sigpipe_block(sigset_t *old) {
  sigset_t pipe_set, pending;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, old);
  sigpending(&pending);
  return sigismember(&pending, SIGPIPE);
}

static void result_fill(run *r, oee_proc_result *res) {
  if (r->out == NULL) r->out = oee_malloc(1);
  if (r->out != NULL) r->out[r->out_len] = '\0';
  res->out = r->out;
  res->out_len = r->out == NULL ? 0 : r->out_len;
  res->out_truncated = r->out_truncated;
  res->timed_out = r->timed_out;
  res->cancelled = r->cancelled;
  res->err_tail = oee_strndup(r->tail, r->tail_len);
  r->out = NULL;
}

static void start_failed(const char *cmd, int err, oee_proc_result *res) {
  char msg[512];
  snprintf(msg, sizeof(msg), "cannot start %s: %s", cmd, strerror(err));
  res->err_tail = oee_strdup(msg);
  res->exit_code = -1;
}

int oee_proc_run(const char *const *argv, const char *input, size_t input_len, double timeout_s,
                 oee_token *tok, size_t max_out, oee_proc_result *res) {
  return oee_proc_run_env(argv, NULL, input, input_len, timeout_s, tok, max_out, res);
}

/* This process's environment with `extra` ("NAME=value") in front, so
 * that a name in both takes the extra value; NULL when out of memory. */
static char **env_with(const char *const *extra) {
  size_t n = 0, k = 0;
  while (environ[n]) n++;
  while (extra[k]) k++;
  char **env = oee_malloc((n + k + 1) * sizeof(*env));
  if (env == NULL) return NULL;
  for (size_t i = 0; i < k; i++) env[i] = (char *)extra[i];
  for (size_t i = 0; i < n; i++) env[k + i] = environ[i];
  env[n + k] = NULL;
  return env;
}

int oee_proc_run_env(const char *const *argv, const char *const *env_extra, const char *input,
                     size_t input_len, double timeout_s, oee_token *tok, size_t max_out,
                     oee_proc_result *res) {
  if (res == NULL) return OEE_EINVAL;
  memset(res, 0, sizeof(*res)); /* so that freeing is safe on every path */
  if (argv == NULL || argv[0] == NULL || !(timeout_s >= 0) || (input == NULL && input_len != 0)) {
    return OEE_EINVAL;
  }
  run r = {.pid = -1,
           .pidfd = -1,
           .in_fd = -1,
           .out_fd = -1,
           .err_fd = -1,
           .input = input,
           .input_len = input_len,
           .tok = tok,
           .tok_fd = -1,
           .max_out = max_out == 0 ? OEE_PROC_MAX_OUT_DEFAULT : max_out};
  char **env = env_extra ? env_with(env_extra) : NULL;
  if (env_extra && env == NULL) return OEE_ENOMEM;
  r.env = env ? env : environ;
  sigset_t old;
  int was_pending = sigpipe_block(&old);
  int rc = spawn_child(argv, &r);
  oee_free(env); /* the child has its copy */
  if (rc != 0) {
    start_failed(argv[0], rc, res);
    rc = OEE_EIO;
    goto cleanup;
  }
  r.pidfd = open_pidfd(r.pid);
  r.tok_fd = tok == NULL ? -1 : oee_token_fd(tok);
  /* Beyond ~30 years a timeout is as good as none (and would overflow). */
  if (timeout_s > 0 && timeout_s < 1e9) {
    r.deadline_ns = oee__mono_ns() + (int64_t)(timeout_s * 1e9);
  }
  loop(&r);
  reap(&r, res);
  result_fill(&r, res);
cleanup:
  close_fd(&r.in_fd);
  close_fd(&r.out_fd);
  close_fd(&r.err_fd);
  close_fd(&r.pidfd);
  oee_free(r.out);
  sigpipe_restore(&old, was_pending);
  return rc;
}

void oee_proc_result_free(oee_proc_result *res) {
  if (res == NULL) return;
  oee_free(res->out);
  oee_free(res->err_tail);
  memset(res, 0, sizeof(*res));
}

static size_t trimmed_len(const char *s) {
  size_t n = strlen(s);
  while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r' ||
                   s[n - 1] == '\v' || s[n - 1] == '\f')) {
    n--;
  }
  return n;
}

char *oee_trim_right(const char *s) {
  if (s == NULL) s = "";
  return oee_strndup(s, trimmed_len(s));
}

int oee_proc_describe(const oee_proc_result *res, double timeout_s, char *buf, size_t cap) {
  if (cap == 0) return res->cancelled || res->timed_out || res->signaled || res->exit_code != 0;
  const char *tail = res->err_tail == NULL ? "" : res->err_tail;
  int tn = (int)trimmed_len(tail);
  const char *sep = tn > 0 ? ": " : "";
  buf[0] = '\0';
  if (res->cancelled) {
    snprintf(buf, cap, "cancelled");
  } else if (res->timed_out) {
    snprintf(buf, cap, "timed out after %g s", timeout_s);
  } else if (res->signaled) {
    snprintf(buf, cap, "killed by signal %d (%s)%s%.*s", res->term_signal,
             strsignal(res->term_signal), sep, tn, tail);
  } else if (res->exit_code != 0) {
    snprintf(buf, cap, "exit status %d%s%.*s", res->exit_code, sep, tn, tail);
  } else {
    return 0;
  }
  return 1;
}
