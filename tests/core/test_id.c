/*
 * test_id.c - UUID v7 ids: uniqueness across threads, version and variant,
 * per-thread order, fork safety and acceptance of older v4 ids.
 *
 * Worker threads only fill arrays; every assertion runs on the main thread
 * after the workers are joined (cmocka is not thread-safe).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <uuid/uuid.h>

#include "core/id.h"

#define THREADS 4
#define PER_THREAD 250000
#define TOTAL (THREADS * PER_THREAD)
#define FORK_IDS 64

typedef char id_text[OEE_ID_LEN + 1];

static uint64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void *make_ids(void *arg) {
  id_text *out = arg;
  for (int i = 0; i < PER_THREAD; i++) oee__id_new(out[i]);
  return NULL;
}

static int cmp_id(const void *a, const void *b) { return strcmp(a, b); }

/* The 48-bit Unix millisecond timestamp of a parsed UUID v7. */
static uint64_t id_ms(const uuid_t u) {
  uint64_t ms = 0;
  for (int i = 0; i < 6; i++) ms = ms << 8 | u[i];
  return ms;
}

/* Version 7, variant 10, lower case, and a timestamp within [lo, hi]. */
static void check_v7(const char *s, uint64_t lo, uint64_t hi) {
  uuid_t u;
  char again[OEE_ID_LEN + 1];
  assert_true(oee_id_valid(s));
  assert_int_equal(uuid_parse(s, u), 0);
  assert_int_equal(u[6] >> 4, 7);
  assert_int_equal(u[8] >> 6, 2);
  uuid_unparse_lower(u, again);
  assert_string_equal(again, s);
  assert_in_range(id_ms(u), lo, hi);
}

static void test_threads_unique_v7_and_ordered(void **state) {
  (void)state;
  id_text *ids = malloc(sizeof(id_text) * TOTAL);
  assert_non_null(ids);
  pthread_t th[THREADS];
  uint64_t lo = wall_ms();
  for (int t = 0; t < THREADS; t++) {
    assert_int_equal(pthread_create(&th[t], NULL, make_ids, ids + t * PER_THREAD), 0);
  }
  for (int t = 0; t < THREADS; t++) assert_int_equal(pthread_join(th[t], NULL), 0);
  uint64_t hi = wall_ms();
  for (int i = 0; i < TOTAL; i++) check_v7(ids[i], lo, hi);
  /* Each thread's ids are strictly increasing in creation order. */
  for (int t = 0; t < THREADS; t++) {
    id_text *run = ids + t * PER_THREAD;
    for (int i = 1; i < PER_THREAD; i++) assert_true(strcmp(run[i - 1], run[i]) < 0);
  }
  qsort(ids, TOTAL, sizeof(id_text), cmp_id);
  for (int i = 1; i < TOTAL; i++) assert_string_not_equal(ids[i - 1], ids[i]);
  free(ids);
}

static void test_binary_and_text_agree(void **state) {
  (void)state;
  unsigned char a[16], b[16];
  char text[OEE_ID_LEN + 1];
  uuid_t parsed;
  oee__id_new_bytes(a);
  oee__id_new(text);
  oee__id_new_bytes(b);
  assert_int_equal(uuid_parse(text, parsed), 0);
  /* One thread, in order: a < text < b as bytes. */
  assert_true(memcmp(a, parsed, 16) < 0);
  assert_true(memcmp(parsed, b, 16) < 0);
  assert_int_equal(a[6] >> 4, 7);
  assert_int_equal(b[8] >> 6, 2);
}

/* Child side: draws FORK_IDS ids and writes them to the pipe; never returns. */
static void child_ids(int fd) {
  id_text mine[FORK_IDS];
  for (int i = 0; i < FORK_IDS; i++) oee__id_new(mine[i]);
  size_t off = 0;
  while (off < sizeof(mine)) {
    ssize_t n = write(fd, (char *)mine + off, sizeof(mine) - off);
    if (n <= 0) _exit(1);
    off += (size_t)n;
  }
  _exit(0);
}

static void read_all(int fd, void *buf, size_t len) {
  size_t off = 0;
  while (off < len) {
    ssize_t n = read(fd, (char *)buf + off, len - off);
    assert_true(n > 0);
    off += (size_t)n;
  }
}

/* A forked child must not replay the random bytes its parent has buffered. */
static void test_fork_child_draws_other_ids(void **state) {
  (void)state;
  id_text warm, parent[FORK_IDS], child[FORK_IDS];
  oee__id_new(warm); /* the parent's buffer now holds unread bytes */
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    child_ids(fds[1]);
  }
  close(fds[1]);
  for (int i = 0; i < FORK_IDS; i++) oee__id_new(parent[i]);
  read_all(fds[0], child, sizeof(child));
  close(fds[0]);
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  /* Neither the whole ids nor their 12-digit random tails may meet. */
  for (int i = 0; i < FORK_IDS; i++) {
    assert_true(oee_id_valid(child[i]));
    for (int j = 0; j < FORK_IDS; j++) {
      assert_string_not_equal(child[i], parent[j]);
      assert_true(strcmp(child[i] + 24, parent[j] + 24) != 0);
    }
  }
}

/* Ids are read as any canonical UUID: v4 of older versions, v7, any case. */
static void test_any_uuid_is_accepted(void **state) {
  (void)state;
  static const char *const good[] = {
      "0b6a7c1e-3f7b-4f5e-9a3c-2f0d5e6a7b8c", /* v4 */
      "0B6A7C1E-3F7B-4F5E-9A3C-2F0D5E6A7B8C", /* v4, upper case */
      "01890a5d-ac96-774b-bcce-b302099a8057", /* v7 (RFC 9562 style) */
      "01890A5D-AC96-774B-BCCE-B302099A8057", /* v7, upper case */
      "00000000-0000-0000-0000-000000000000", /* nil */
  };
  static const char *const bad[] = {
      "",
      "not-a-uuid",
      "0b6a7c1e3f7b4f5e9a3c2f0d5e6a7b8c",
      "0b6a7c1e-3f7b-4f5e-9a3c-2f0d5e6a7b8",
      "0b6a7c1e-3f7b-4f5e-9a3c-2f0d5e6a7b8c0",
      "0b6a7c1e-3f7b-4f5e-9a3c_2f0d5e6a7b8c",
      "0b6a7c1e-3f7b-4f5e-9a3c-2f0d5e6a7b8g",
  };
  uuid_t u;
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
    assert_true(oee_id_valid(good[i]));
    assert_int_equal(uuid_parse(good[i], u), 0);
  }
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    assert_false(oee_id_valid(bad[i]));
  }
  assert_false(oee_id_valid(NULL));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_threads_unique_v7_and_ordered),
      cmocka_unit_test(test_binary_and_text_agree),
      cmocka_unit_test(test_fork_child_draws_other_ids),
      cmocka_unit_test(test_any_uuid_is_accepted),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
