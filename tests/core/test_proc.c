/* test_proc.c - the command table and the child-process runner. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/internal.h"
#include "core/oee_alloc.h"
#include "core/oee_exec.h"

/* ------------------------------------------------------------ helpers */

static double now_s(void) { return (double)oee__mono_ns() / 1e9; }

/* 1 when this process has no child at all (none running, no zombie). */
static int no_children(void) { return waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD; }

/* 1 once `pid` is gone or a zombie (of someone else), within ~3 s. */
static int process_dies(pid_t pid) {
  for (int i = 0; i < 300; i++) {
    if (kill(pid, 0) != 0 && errno == ESRCH) return 1;
    char path[64], buf[256];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f != NULL) {
      size_t n = fread(buf, 1, sizeof(buf) - 1, f);
      fclose(f);
      buf[n] = '\0';
      char *rp = strrchr(buf, ')');
      if (rp != NULL && rp[1] == ' ' && rp[2] == 'Z') return 1;
    }
    usleep(10000);
  }
  return 0;
}

static int run(const char *const *argv, const char *input, double timeout, oee_token *tok,
               size_t max_out, oee_proc_result *res) {
  return oee_proc_run(argv, input, input == NULL ? 0 : strlen(input), timeout, tok, max_out, res);
}

/* Every test starts and ends with no child process left over. */
static int check_no_children(void **state) {
  (void)state;
  return no_children() ? 0 : -1;
}

/* --------------------------------------------------------------- table */

static void test_table_add_find(void **state) {
  (void)state;
  oee_exec_table *t = NULL;
  assert_int_equal(oee_exec_table_create(&t), 0);
  const char *hello[] = {"echo", "hello"};
  assert_int_equal(oee_exec_table_add(t, "hello", hello, 2, 10), 0);
  assert_int_equal(oee_exec_table_add(t, "hello", hello, 2, 10), OEE_EEXISTS);
  assert_int_equal(oee_exec_table_add(t, "", hello, 2, 10), OEE_EINVAL);
  assert_int_equal(oee_exec_table_add(t, "x", hello, 0, 10), OEE_EINVAL);
  assert_int_equal(oee_exec_table_add(t, "x", hello, 2, -1), OEE_EINVAL);
  assert_int_equal(oee_exec_table_size(t), 1);
  const oee_command *c = oee_exec_table_find(t, "hello");
  assert_non_null(c);
  assert_int_equal(c->argc, 2);
  assert_string_equal(c->argv[1], "hello");
  assert_null(c->argv[2]);
  assert_ptr_not_equal(c->argv[0], hello[0]); /* copied */
  assert_null(oee_exec_table_find(t, "nope"));
  oee_exec_table_destroy(t);
}

static void test_trim_right(void **state) {
  (void)state;
  char *s = oee_trim_right("  hi there \n\t\r\n");
  assert_string_equal(s, "  hi there");
  oee_free(s);
  s = oee_trim_right(" \n");
  assert_string_equal(s, "");
  oee_free(s);
}

static void test_describe(void **state) {
  (void)state;
  char buf[OEE_PROC_MSG_MAX];
  oee_proc_result ok = {.exit_code = 0, .err_tail = "noise\n"};
  assert_int_equal(oee_proc_describe(&ok, 1, buf, sizeof(buf)), 0);
  assert_string_equal(buf, "");
  oee_proc_result bad = {.exit_code = 3, .err_tail = "it broke\n\n"};
  assert_int_equal(oee_proc_describe(&bad, 1, buf, sizeof(buf)), 1);
  assert_string_equal(buf, "exit status 3: it broke");
  bad.err_tail = NULL;
  assert_int_equal(oee_proc_describe(&bad, 1, buf, sizeof(buf)), 1);
  assert_string_equal(buf, "exit status 3");
  oee_proc_result slow = {.timed_out = 1, .signaled = 1, .term_signal = 9};
  assert_int_equal(oee_proc_describe(&slow, 2.5, buf, sizeof(buf)), 1);
  assert_string_equal(buf, "timed out after 2.5 s");
  oee_proc_result sig = {.signaled = 1, .term_signal = SIGSEGV, .exit_code = -1};
  assert_int_equal(oee_proc_describe(&sig, 0, buf, sizeof(buf)), 1);
  assert_non_null(strstr(buf, "killed by signal 11"));
}

/* -------------------------------------------------------------- runner */

static void test_stdin_to_stdout(void **state) {
  (void)state;
  const char *argv[] = {"tr", "a-z", "A-Z", NULL};
  oee_proc_result res;
  assert_int_equal(run(argv, "hello world\n", 10, NULL, 0, &res), 0);
  assert_int_equal(res.exit_code, 0);
  assert_false(res.signaled);
  assert_string_equal(res.out, "HELLO WORLD\n");
  assert_int_equal(res.out_len, 12);
  assert_false(res.out_truncated);
  oee_proc_result_free(&res);
}

static void test_empty_input(void **state) {
  (void)state;
  const char *argv[] = {"cat", NULL};
  oee_proc_result res;
  assert_int_equal(run(argv, NULL, 10, NULL, 0, &res), 0);
  assert_int_equal(res.exit_code, 0);
  assert_string_equal(res.out, "");
  assert_string_equal(res.err_tail, "");
  oee_proc_result_free(&res);
}

/* More input and output than a pipe buffer holds, in both directions. */
static void test_large_round_trip(void **state) {
  (void)state;
  size_t n = 1 << 20;
  char *in = malloc(n);
  assert_non_null(in);
  for (size_t i = 0; i < n; i++) in[i] = (char)('a' + i % 26);
  const char *argv[] = {"cat", NULL};
  oee_proc_result res;
  assert_int_equal(oee_proc_run(argv, in, n, 30, NULL, 2 * n, &res), 0);
  assert_int_equal(res.exit_code, 0);
  assert_int_equal(res.out_len, n);
  assert_memory_equal(res.out, in, n);
  free(in);
  oee_proc_result_free(&res);
}

/* The child exits without reading: EPIPE, never a fatal SIGPIPE. */
static void test_child_ignores_stdin(void **state) {
  (void)state;
  size_t n = 1 << 20;
  char *in = calloc(1, n);
  assert_non_null(in);
  const char *argv[] = {"true", NULL};
  oee_proc_result res;
  assert_int_equal(oee_proc_run(argv, in, n, 10, NULL, 0, &res), 0);
  assert_int_equal(res.exit_code, 0);
  free(in);
  oee_proc_result_free(&res);
  sigset_t pending;
  sigpending(&pending);
  assert_false(sigismember(&pending, SIGPIPE));
}

static void test_nonzero_exit_and_stderr(void **state) {
  (void)state;
  const char *argv[] = {"sh", "-c", "echo partial; echo oops >&2; exit 3", NULL};
  oee_proc_result res;
  assert_int_equal(run(argv, "", 10, NULL, 0, &res), 0);
  assert_false(res.signaled);
  assert_int_equal(res.exit_code, 3);
  assert_string_equal(res.out, "partial\n");
  assert_string_equal(res.err_tail, "oops\n");
  oee_proc_result_free(&res);
}

static void test_stderr_keeps_tail(void **state) {
  (void)state;
  const char *argv[] = {"sh", "-c",
                        "i=0; while [ $i -lt 500 ]; do echo line$i >&2; "
                        "i=$((i+1)); done; echo END >&2",
                        NULL};
  oee_proc_result res;
  assert_int_equal(run(argv, "", 10, NULL, 0, &res), 0);
  size_t len = strlen(res.err_tail);
  assert_true(len <= OEE_PROC_ERR_TAIL);
  assert_true(len > OEE_PROC_ERR_TAIL / 2);
  assert_string_equal(res.err_tail + len - 4, "END\n");
  assert_null(strstr(res.err_tail, "line0\n"));
  oee_proc_result_free(&res);
}

static void test_timeout_kills(void **state) {
  (void)state;
  const char *argv[] = {"sleep", "30", NULL};
  oee_proc_result res;
  double t0 = now_s();
  assert_int_equal(run(argv, "", 0.3, NULL, 0, &res), 0);
  double took = now_s() - t0;
  assert_true(took >= 0.25 && took < 5);
  assert_true(res.timed_out);
  assert_false(res.cancelled);
  assert_true(res.signaled);
  assert_int_equal(res.term_signal, SIGKILL);
  oee_proc_result_free(&res);
  assert_true(no_children());
}

/* 1 while this process has a child (running or not yet reaped). */
static int has_child(void) {
  siginfo_t si;
  memset(&si, 0, sizeof(si));
  return waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) == 0;
}

/* Cancels once the command has started (polled with a 5 s deadline: no
 * event announces a spawn), so that the kill reaches a running child. */
static void *cancel_later(void *arg) {
  double end = now_s() + 5;
  while (!has_child() && now_s() < end) nanosleep(&(struct timespec){0, 1000000}, NULL);
  oee_token_cancel(arg);
  return NULL;
}

static void test_cancel_kills_no_zombie(void **state) {
  (void)state;
  oee_token *tok = NULL;
  assert_int_equal(oee_token_create(&tok), 0);
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, cancel_later, tok), 0);
  const char *argv[] = {"sleep", "30", NULL};
  oee_proc_result res;
  double t0 = now_s();
  assert_int_equal(run(argv, "", 0, tok, 0, &res), 0);
  assert_true(now_s() - t0 < 5);
  pthread_join(th, NULL);
  assert_true(res.cancelled);
  assert_false(res.timed_out);
  assert_true(res.signaled);
  oee_proc_result_free(&res);
  oee_token_destroy(tok);
  assert_true(no_children());
}

static void test_cancelled_before_start(void **state) {
  (void)state;
  oee_token *tok = NULL;
  assert_int_equal(oee_token_create(&tok), 0);
  oee_token_cancel(tok);
  const char *argv[] = {"sleep", "30", NULL};
  oee_proc_result res;
  double t0 = now_s();
  assert_int_equal(run(argv, "", 0, tok, 0, &res), 0);
  assert_true(now_s() - t0 < 5);
  assert_true(res.cancelled);
  oee_proc_result_free(&res);
  oee_token_destroy(tok);
}

/* A background grandchild holding stdout neither delays nor outlives us. */
static void test_grandchild_killed_at_exit(void **state) {
  (void)state;
  const char *argv[] = {"sh", "-c", "sleep 30 & echo $!", NULL};
  oee_proc_result res;
  double t0 = now_s();
  assert_int_equal(run(argv, "", 20, NULL, 0, &res), 0);
  assert_true(now_s() - t0 < 5);
  assert_int_equal(res.exit_code, 0);
  pid_t gc = (pid_t)atoi(res.out);
  assert_true(gc > 0);
  assert_true(process_dies(gc));
  oee_proc_result_free(&res);
}

static void test_grandchild_killed_on_timeout(void **state) {
  (void)state;
  const char *argv[] = {"sh", "-c", "sleep 30 & echo $!; sleep 30", NULL};
  oee_proc_result res;
  assert_int_equal(run(argv, "", 0.5, NULL, 0, &res), 0);
  assert_true(res.timed_out);
  pid_t gc = (pid_t)atoi(res.out);
  assert_true(gc > 0);
  assert_true(process_dies(gc));
  oee_proc_result_free(&res);
}

static void test_output_truncated(void **state) {
  (void)state;
  const char *argv[] = {"sh", "-c", "yes | head -c 100000", NULL};
  oee_proc_result res;
  assert_int_equal(run(argv, "", 10, NULL, 1000, &res), 0);
  assert_int_equal(res.exit_code, 0);
  assert_true(res.out_truncated);
  assert_int_equal(res.out_len, 1000);
  assert_int_equal(strlen(res.out), 1000);
  assert_memory_equal(res.out, "y\ny\n", 4);
  oee_proc_result_free(&res);
}

static void test_command_not_found(void **state) {
  (void)state;
  const char *argv[] = {"oee-no-such-command-xyz", NULL};
  oee_proc_result res;
  assert_int_equal(run(argv, "x", 10, NULL, 0, &res), OEE_EIO);
  assert_non_null(res.err_tail);
  assert_non_null(strstr(res.err_tail, "oee-no-such-command-xyz"));
  assert_non_null(strstr(res.err_tail, "No such file"));
  oee_proc_result_free(&res);
}

static void test_bad_arguments(void **state) {
  (void)state;
  const char *empty[] = {NULL};
  const char *argv[] = {"true", NULL};
  oee_proc_result res;
  assert_int_equal(run(empty, "", 1, NULL, 0, &res), OEE_EINVAL);
  assert_int_equal(run(argv, "", -1, NULL, 0, &res), OEE_EINVAL);
  assert_int_equal(oee_proc_run(argv, NULL, 3, 1, NULL, 0, &res), OEE_EINVAL);
}

/* No shell: metacharacters reach the program as plain bytes. */
static void test_no_shell(void **state) {
  (void)state;
  const char *argv[] = {"echo", "$(id) ; rm -rf / | `x`", NULL};
  oee_proc_result res;
  assert_int_equal(run(argv, "", 10, NULL, 0, &res), 0);
  assert_string_equal(res.out, "$(id) ; rm -rf / | `x`\n");
  oee_proc_result_free(&res);
}

/* The child must not inherit a blocked SIGTERM (mask reset at spawn). */
static void test_child_signal_state_reset(void **state) {
  (void)state;
  sigset_t set, old;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, &old);
  const char *argv[] = {"sh", "-c", "kill -TERM $$; sleep 5", NULL};
  oee_proc_result res;
  double t0 = now_s();
  assert_int_equal(run(argv, "", 10, NULL, 0, &res), 0);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  assert_true(now_s() - t0 < 4);
  assert_true(res.signaled);
  assert_int_equal(res.term_signal, SIGTERM);
  oee_proc_result_free(&res);
}

typedef struct par_arg {
  int idx;
  int ok;
} par_arg;

static void *par_run(void *arg) {
  par_arg *a = arg;
  char in[32];
  snprintf(in, sizeof(in), "job%d", a->idx);
  const char *argv[] = {"cat", NULL};
  oee_proc_result res;
  a->ok = run(argv, in, 10, NULL, 0, &res) == 0 && strcmp(res.out, in) == 0;
  oee_proc_result_free(&res);
  return NULL;
}

/* Concurrent runs do not steal each other's pipe ends or children. */
static void test_concurrent_runs(void **state) {
  (void)state;
  enum { N = 8 };
  pthread_t th[N];
  par_arg args[N];
  for (int i = 0; i < N; i++) {
    args[i] = (par_arg){.idx = i};
    assert_int_equal(pthread_create(&th[i], NULL, par_run, &args[i]), 0);
  }
  for (int i = 0; i < N; i++) {
    pthread_join(th[i], NULL);
    assert_true(args[i].ok);
  }
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, check_no_children, check_no_children)
  const struct CMUnitTest tests[] = {
      T(test_table_add_find),
      T(test_trim_right),
      T(test_describe),
      T(test_stdin_to_stdout),
      T(test_empty_input),
      T(test_large_round_trip),
      T(test_child_ignores_stdin),
      T(test_nonzero_exit_and_stderr),
      T(test_stderr_keeps_tail),
      T(test_timeout_kills),
      T(test_cancel_kills_no_zombie),
      T(test_cancelled_before_start),
      T(test_grandchild_killed_at_exit),
      T(test_grandchild_killed_on_timeout),
      T(test_output_truncated),
      T(test_command_not_found),
      T(test_bad_arguments),
      T(test_no_shell),
      T(test_child_signal_state_reset),
      T(test_concurrent_runs),
  };
#undef T
  return cmocka_run_group_tests(tests, NULL, NULL);
}
