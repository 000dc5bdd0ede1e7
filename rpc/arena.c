/* arena.c - bump allocator (see arena.h). */
#include "rpc/arena.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct oee_arena_chunk {
  oee_arena_chunk *next;
  size_t cap;
  char data[]; /* 16-byte aligned: the header is two words */
};

void oee_arena_init(oee_arena *a) {
  a->head = NULL;
  a->used = 0;
  a->cap = sizeof(a->first);
}

static char *head_data(oee_arena *a) { return a->head ? a->head->data : a->first; }

void *oee_arena_alloc(oee_arena *a, size_t n) {
  size_t off = (a->used + 15) & ~(size_t)15;
  if (off + n > a->cap) {
    size_t cap = n > 8192 ? n : 8192;
    oee_arena_chunk *c = malloc(sizeof(*c) + cap);
    if (c == NULL) abort();
    c->next = a->head;
    c->cap = cap;
    a->head = c;
    a->cap = cap;
    off = 0;
  }
  char *p = head_data(a) + off;
  a->used = off + n;
  memset(p, 0, n);
  return p;
}

char *oee_arena_printf(oee_arena *a, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *s = oee_arena_alloc(a, (size_t)(n < 0 ? 0 : n) + 1);
  va_start(ap, fmt);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return s;
}

void oee_arena_free(oee_arena *a) {
  while (a->head) {
    oee_arena_chunk *next = a->head->next;
    free(a->head);
    a->head = next;
  }
  oee_arena_init(a);
}
