/*
 * expo.h - the Prometheus text exposition format (version 0.0.4), written
 * into a growing buffer.
 *
 * A family is announced once (# HELP and # TYPE) and followed by its
 * samples: `name{label="value",...} value`. Label values are escaped
 * (backslash, double quote, newline), HELP texts too (backslash, newline).
 * A histogram is written as its cumulative `_bucket{le="..."}` samples, the
 * last one le="+Inf", then `_sum` (seconds) and `_count`.
 *
 * The buffer grows as needed (no size limit cuts a scrape short); when an
 * allocation fails it stops growing and remembers it, and
 * oee_expo_take() then returns NULL. Not thread-safe: one writer per buffer.
 */
#ifndef OEE_SERVER_EXPO_H
#define OEE_SERVER_EXPO_H

#include <stddef.h>
#include <stdint.h>

#include "core/oee.h"

/* The Content-Type of a body written here. */
#define OEE_EXPO_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

typedef struct oee_expo {
  char *buf;  /* NUL-terminated text so far (oee_malloc'd), or NULL */
  size_t len; /* bytes of text, without the NUL */
  size_t cap; /* bytes allocated */
  int failed; /* an allocation failed: the text is incomplete */
} oee_expo;

typedef struct oee_label {
  const char *name;  /* [a-zA-Z_][a-zA-Z0-9_]*, written as is */
  const char *value; /* any UTF-8 text, escaped */
} oee_label;

void oee_expo_init(oee_expo *e);
/* Frees the text (if not taken). */
void oee_expo_free(oee_expo *e);
/* The text (the caller frees it with oee_free) and its length, or NULL
 * when an allocation failed on the way; the buffer is empty afterwards. */
char *oee_expo_take(oee_expo *e, size_t *len);

/* Appends printf-formatted text as is. */
void oee_expo_printf(oee_expo *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends `s` with the escapes of a label value (quote = 1) or of a HELP
 * text (quote = 0: the double quote stays). */
void oee_expo_escaped(oee_expo *e, const char *s, int quote);

/* "# HELP name help\n# TYPE name type\n"; type is counter, gauge or
 * histogram. */
void oee_expo_family(oee_expo *e, const char *name, const char *type, const char *help);
/* One sample of an integer value, `name` with `n` labels (may be 0). */
void oee_expo_u64(oee_expo *e, const char *name, const oee_label *labels, size_t n, uint64_t v);
/* One sample of a real value, to 15 significant digits (what the
 * process's numbers carry: clock ticks, seconds since the epoch). */
void oee_expo_double(oee_expo *e, const char *name, const oee_label *labels, size_t n, double v);
/* The samples of a histogram of durations (ns; written in seconds) with
 * `n` labels before `le`. */
void oee_expo_histogram(oee_expo *e, const char *name, const oee_label *labels, size_t n,
                        const oee_histogram *h);

#endif /* OEE_SERVER_EXPO_H */
