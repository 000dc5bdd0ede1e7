/*
 * id.c - UUID v7 task ids from a per-thread random buffer; the layout, the
 * ordering and the fork rule are described in id.h.
 */
#include "core/id.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <uuid/uuid.h>

#define COUNTER_BITS 26
#define COUNTER_MAX ((UINT32_C(1) << COUNTER_BITS) - 1)
/* A fresh counter starts below half its range (top bit 0). */
#define SEED_MASK (COUNTER_MAX >> 1)
/* Random bytes taken per id (bits 80..127) and per counter seed. */
#define TAIL_BYTES 6
#define SEED_BYTES 4

/* One thread's generator. Zero-initialised means "empty buffer, no id yet". */
typedef struct id_state {
  unsigned char buf[OEE__ID_RANDOM_BYTES];
  size_t left;      /* unread bytes at the end of buf; 0 = refill first */
  uint64_t last_ms; /* timestamp of this thread's last id, Unix ms */
  uint32_t counter; /* counter of that id, COUNTER_BITS wide */
} id_state;

static _Thread_local id_state tls;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/*
 * Runs in the child after fork(), in the only thread the child has: that
 * thread's buffer is a copy of the parent's, which the parent goes on using,
 * so it is dropped. Other threads' buffers are copied too but no thread will
 * ever read them.
 */
static void after_fork_child(void) { tls.left = 0; }

static void register_atfork(void) {
  if (pthread_atfork(NULL, NULL, after_fork_child) != 0) abort();
}

static void fill(unsigned char *p, size_t n) {
  while (n > 0) {
    ssize_t got = getrandom(p, n, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      /* Only ENOSYS (pre-3.17 kernel) or a seccomp filter can get here. */
      perror("oee: getrandom");
      abort();
    }
    p += got;
    n -= (size_t)got;
  }
}

/* Returns `n` unread random bytes of this thread's buffer, refilling it. */
static const unsigned char *take(id_state *st, size_t n) {
  if (st->left < n) {
    /* Registered before the first fill, so no buffer exists unguarded. */
    if (pthread_once(&atfork_once, register_atfork) != 0) abort();
    fill(st->buf, sizeof(st->buf));
    st->left = sizeof(st->buf);
  }
  const unsigned char *p = st->buf + sizeof(st->buf) - st->left;
  st->left -= n;
  return p;
}

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts); /* vDSO: no system call */
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint32_t counter_seed(id_state *st) {
  const unsigned char *r = take(st, SEED_BYTES);
  uint32_t v = (uint32_t)r[0] << 24 | (uint32_t)r[1] << 16 | (uint32_t)r[2] << 8 | r[3];
  return v & SEED_MASK;
}

/* Advances the thread's (timestamp, counter) pair; see "Ordering" in id.h. */
static void tick(id_state *st) {
  uint64_t ms = now_ms();
  if (ms > st->last_ms) {
    st->last_ms = ms;
    st->counter = counter_seed(st);
  } else if (st->counter < COUNTER_MAX) {
    st->counter++;
  } else {
    st->last_ms++;
    st->counter = counter_seed(st);
  }
}

void oee__id_new_bytes(unsigned char out[16]) {
  id_state *st = &tls;
  tick(st);
  uint64_t ms = st->last_ms;
  uint32_t c = st->counter;
  for (int i = 0; i < 6; i++) out[i] = (unsigned char)(ms >> (40 - 8 * i));
  out[6] = (unsigned char)(0x70 | (c >> 22)); /* version 7 */
  out[7] = (unsigned char)(c >> 14);
  out[8] = (unsigned char)(0x80 | ((c >> 8) & 0x3f)); /* variant 10 */
  out[9] = (unsigned char)c;
  memcpy(out + 10, take(st, TAIL_BYTES), TAIL_BYTES);
}

void oee__id_new(char out[OEE_ID_LEN + 1]) {
  uuid_t u;
  oee__id_new_bytes(u);
  uuid_unparse_lower(u, out);
}

void oee__random_bytes(unsigned char *out, size_t n) {
  while (n > 0) {
    size_t part = n < 64 ? n : 64;
    memcpy(out, take(&tls, part), part);
    out += part;
    n -= part;
  }
}
