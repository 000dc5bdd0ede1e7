/* arena.c - bump allocator (see arena.h). */
#include "rpc/arena.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/oee_alloc.h"

struct oee_arena_chunk {
  oee_arena_chunk *next;
  size_t cap;
  char data[]; /* 16-byte aligned: the header is two words */
};

/* Bytes of a chunk unless one allocation needs more. */
#define CHUNK_BYTES 8192

void oee_arena_init(oee_arena *a) {
  a->head = NULL;
  a->used = 0;
  a->cap = sizeof(a->first);
  a->failed = 0;
}

static char *head_data(oee_arena *a) { return a->head ? a->head->data : a->first; }

/* Starts a new chunk with room for n bytes: 0, or -1 (marked failed). The
 * size may come from a request, so it is checked before it is added to. */
static int grow(oee_arena *a, size_t n) {
  size_t cap = n > CHUNK_BYTES ? n : CHUNK_BYTES;
  oee_arena_chunk *c = cap <= SIZE_MAX - sizeof(*c) ? oee_malloc(sizeof(*c) + cap) : NULL;
  if (c == NULL) {
    a->failed = 1;
    return -1;
  }
  c->next = a->head;
  c->cap = cap;
  a->head = c;
  a->used = 0;
  a->cap = cap;
  return 0;
}

/* The aligned offset of the next allocation in head. */
static size_t next_off(const oee_arena *a) { return OEE_ARENA_SIZE(a->used); }

int oee_arena_reserve(oee_arena *a, size_t n) {
  size_t off = next_off(a);
  if (off <= a->cap && n <= a->cap - off) return 0;
  return grow(a, n);
}

void *oee_arena_alloc_raw(oee_arena *a, size_t n) {
  if (oee_arena_reserve(a, n) != 0) return NULL;
  char *p = head_data(a) + next_off(a);
  a->used = next_off(a) + n;
  return p;
}

void *oee_arena_alloc(oee_arena *a, size_t n) {
  void *p = oee_arena_alloc_raw(a, n);
  if (p != NULL) memset(p, 0, n);
  return p;
}

char *oee_arena_printf(oee_arena *a, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *s = oee_arena_alloc(a, (size_t)(n < 0 ? 0 : n) + 1);
  if (s == NULL) return NULL;
  va_start(ap, fmt);
  vsnprintf(s, (size_t)(n < 0 ? 0 : n) + 1, fmt, ap);
  va_end(ap);
  return s;
}

int oee_arena_failed(const oee_arena *a) { return a->failed; }

void oee_arena_free(oee_arena *a) {
  while (a->head) {
    oee_arena_chunk *next = a->head->next;
    oee_free(a->head);
    a->head = next;
  }
  oee_arena_init(a);
}
