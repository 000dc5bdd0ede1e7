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

/* Eight lower-case hex digits of 4 bytes, as the 8 bytes to store (first
 * digit lowest in memory). The nibbles are spread one per byte, most
 * significant first after the byte swap, then each becomes '0' + n, plus
 * 'a' - '0' - 10 = 39 where n >= 10 (n + 6 carries into bit 4 exactly
 * then). No table and no branch. */
static uint64_t hex8(const unsigned char *b) {
  uint64_t n = (uint64_t)b[0] << 24 | (uint64_t)b[1] << 16 | (uint64_t)b[2] << 8 | b[3];
  n = (n & 0xffff0000ULL) << 16 | (n & 0xffffULL);
  n = (n & 0x0000ff000000ff00ULL) << 8 | (n & 0x000000ff000000ffULL);
  n = (n & 0x00f000f000f000f0ULL) << 4 | (n & 0x000f000f000f000fULL);
  n = __builtin_bswap64(n);
  uint64_t letters = ((n + 0x0606060606060606ULL) >> 4) & 0x0101010101010101ULL;
  return n + 0x3030303030303030ULL + letters * 39;
}

/* The canonical text of 16 bytes, 8-4-4-4-12 lower-case hex digits and a
 * NUL: what libuuid's uuid_unparse_lower() writes (test_id checks each id
 * against it), in a fifth of its instructions. */
static void unparse_lower(const unsigned char u[16], char out[OEE_ID_LEN + 1]) {
  uint64_t w[4] = {hex8(u), hex8(u + 4), hex8(u + 8), hex8(u + 12)};
  char digits[32];
  memcpy(digits, w, sizeof(digits));
  memcpy(out, digits, 8);
  out[8] = '-';
  memcpy(out + 9, digits + 8, 4);
  out[13] = '-';
  memcpy(out + 14, digits + 12, 4);
  out[18] = '-';
  memcpy(out + 19, digits + 16, 4);
  out[23] = '-';
  memcpy(out + 24, digits + 20, 12);
  out[OEE_ID_LEN] = '\0';
}

void oee__id_new(char out[OEE_ID_LEN + 1]) {
  unsigned char u[16];
  oee__id_new_bytes(u);
  unparse_lower(u, out);
}

void oee__random_bytes(unsigned char *out, size_t n) {
  while (n > 0) {
    size_t part = n < 64 ? n : 64;
    memcpy(out, take(&tls, part), part);
    out += part;
    n -= part;
  }
}
