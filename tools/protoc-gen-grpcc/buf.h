/*
 * buf.h - a growable string buffer for the code generator.
 *
 * Ownership: a buf owns its bytes; buf_take() hands them to the caller (free()).
 * Allocation failure aborts: the plugin is a short-lived build tool.
 */
#ifndef OEE_TOOLS_BUF_H
#define OEE_TOOLS_BUF_H

#include <stddef.h>

typedef struct buf {
  char *data; /* NUL-terminated, never NULL after the first append */
  size_t len; /* bytes, excluding the NUL */
  size_t cap; /* bytes allocated */
} buf;

/* Appends printf-formatted text. */
void buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Returns the bytes (caller frees) and resets the buffer to empty. */
char *buf_take(buf *b);
/* Frees the bytes. */
void buf_free(buf *b);
/* Returns a malloc'd printf-formatted string. */
char *str_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
