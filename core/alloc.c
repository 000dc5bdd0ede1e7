/*
 * alloc.c - the swappable allocator (see oee_alloc.h).
 *
 * The current table is one atomic pointer, so reading it costs a plain load
 * and a table installed before threads start is seen by all of them. The
 * table itself is copied into a static slot: callers need not keep theirs.
 */
#include "core/oee_alloc.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const oee_allocator libc_allocator = {malloc, calloc, realloc, free};
static oee_allocator installed;
static _Atomic(const oee_allocator *) current = &libc_allocator;

void oee_allocator_set(const oee_allocator *a) {
  if (a == NULL) {
    atomic_store_explicit(&current, &libc_allocator, memory_order_release);
    return;
  }
  installed = *a;
  atomic_store_explicit(&current, &installed, memory_order_release);
}

static const oee_allocator *cur(void) {
  return atomic_load_explicit(&current, memory_order_acquire);
}

void *oee_malloc(size_t size) { return cur()->malloc(size); }

void *oee_calloc(size_t n, size_t size) { return cur()->calloc(n, size); }

void *oee_realloc(void *p, size_t size) { return cur()->realloc(p, size); }

void oee_free(void *p) {
  if (p != NULL) cur()->free(p);
}

char *oee_strndup(const char *s, size_t n) {
  size_t len = strnlen(s, n);
  char *c = oee_malloc(len + 1);
  if (c == NULL) return NULL;
  memcpy(c, s, len);
  c[len] = '\0';
  return c;
}

char *oee_strdup(const char *s) { return oee_strndup(s, strlen(s)); }

int oee_vasprintf(char **out, const char *fmt, va_list ap) {
  va_list again;
  va_copy(again, ap);
  int n = vsnprintf(NULL, 0, fmt, ap);
  *out = n < 0 ? NULL : oee_malloc((size_t)n + 1);
  if (*out != NULL) vsnprintf(*out, (size_t)n + 1, fmt, again);
  va_end(again);
  return *out == NULL ? -1 : n;
}

int oee_asprintf(char **out, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = oee_vasprintf(out, fmt, ap);
  va_end(ap);
  return n;
}
