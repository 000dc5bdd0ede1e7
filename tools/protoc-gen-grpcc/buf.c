/* buf.c - growable string buffer. */
#include "tools/protoc-gen-grpcc/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static void *xrealloc(void *p, size_t n) {
  void *q = realloc(p, n);
  if (q == NULL) {
    fprintf(stderr, "protoc-gen-grpcc: out of memory\n");
    abort();
  }
  return q;
}

static void reserve(buf *b, size_t more) {
  if (b->len + more + 1 <= b->cap) return;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + more + 1) cap *= 2;
  b->data = xrealloc(b->data, cap);
  b->cap = cap;
}

static void vappend(buf *b, const char *fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  if (n < 0) abort();
  reserve(b, (size_t)n);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  b->len += (size_t)n;
}

void buf_printf(buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vappend(b, fmt, ap);
  va_end(ap);
}

char *buf_take(buf *b) {
  reserve(b, 0);
  char *s = b->data;
  s[b->len] = '\0';
  b->data = NULL;
  b->len = b->cap = 0;
  return s;
}

void buf_free(buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

char *str_printf(const char *fmt, ...) {
  buf b = {0};
  va_list ap;
  va_start(ap, fmt);
  vappend(&b, fmt, ap);
  va_end(ap);
  return buf_take(&b);
}
