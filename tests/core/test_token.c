/* test_token.c - cancellation tokens: polling, waiting, the eventfd. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>
#include <time.h>
#include <cmocka.h>

#include "core/oee.h"

typedef struct canceller {
  oee_token *tok;
  pid_t waiter; /* thread id of the thread that waits on tok */
} canceller;

/* 1 when thread `tid` of this process is blocked (state S in its stat). */
static int thread_sleeping(pid_t tid) {
  char path[64], buf[512];
  snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return 0;
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *rp = strrchr(buf, ')');
  return rp != NULL && rp[1] == ' ' && rp[2] == 'S';
}

/* Cancels once the waiter is blocked, so that the wake-up path is the one
 * tested. Nothing announces that, so it polls with a 5 s deadline. */
static void *cancel_later(void *arg) {
  canceller *c = arg;
  for (int i = 0; i < 5000 && !thread_sleeping(c->waiter); i++) {
    nanosleep(&(struct timespec){0, 1000000}, NULL);
  }
  oee_token_cancel(c->tok);
  return NULL;
}

static void test_wait_times_out_then_wakes_on_cancel(void **state) {
  (void)state;
  oee_token *t;
  assert_int_equal(oee_token_create(&t), 0);
  assert_false(oee_token_cancelled(t));
  assert_int_equal(oee_token_wait(t, 10), 0);
  pthread_t th;
  canceller c = {t, (pid_t)syscall(SYS_gettid)};
  pthread_create(&th, NULL, cancel_later, &c);
  assert_int_equal(oee_token_wait(t, 10000), 1);
  pthread_join(th, NULL);
  assert_true(oee_token_cancelled(t));
  oee_token_cancel(t); /* idempotent */
  assert_int_equal(oee_token_wait(t, 0), 1);
  oee_token_destroy(t);
}

static void test_fd_becomes_readable(void **state) {
  (void)state;
  oee_token *t;
  oee_token_create(&t);
  int fd = oee_token_fd(t);
  assert_true(fd >= 0);
  assert_int_equal(oee_token_fd(t), fd); /* one fd per token */
  struct pollfd p = {fd, POLLIN, 0};
  assert_int_equal(poll(&p, 1, 0), 0);
  oee_token_cancel(t);
  assert_int_equal(poll(&p, 1, 1000), 1);
  oee_token_destroy(t);
  /* A token cancelled before anyone asked for its fd hands out a ready one. */
  oee_token_create(&t);
  oee_token_cancel(t);
  struct pollfd q = {oee_token_fd(t), POLLIN, 0};
  assert_int_equal(poll(&q, 1, 0), 1);
  oee_token_destroy(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_wait_times_out_then_wakes_on_cancel),
      cmocka_unit_test(test_fd_becomes_readable),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
