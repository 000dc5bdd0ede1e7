/* expo.c - the Prometheus text exposition format (see expo.h). */
#include "server/expo.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/oee_alloc.h"

/* The first allocation: a scrape of a small server fits. */
#define FIRST_CAP 4096

void oee_expo_init(oee_expo *e) { *e = (oee_expo){0}; }

void oee_expo_free(oee_expo *e) {
  oee_free(e->buf);
  *e = (oee_expo){0};
}

char *oee_expo_take(oee_expo *e, size_t *len) {
  char *text = e->failed ? NULL : e->buf;
  *len = text ? e->len : 0;
  if (text == NULL) oee_free(e->buf);
  *e = (oee_expo){0};
  return text;
}

/* Room for `more` bytes and the NUL; 0, or -1 (remembered) when memory
 * ran out. */
static int reserve(oee_expo *e, size_t more) {
  if (e->failed) return -1;
  if (e->len + more + 1 <= e->cap) return 0;
  size_t cap = e->cap ? e->cap : FIRST_CAP;
  while (cap < e->len + more + 1) cap *= 2;
  char *grown = oee_realloc(e->buf, cap);
  if (grown == NULL) {
    e->failed = 1;
    return -1;
  }
  e->buf = grown;
  e->cap = cap;
  return 0;
}

static void append(oee_expo *e, const char *s, size_t n) {
  if (reserve(e, n) != 0) return;
  memcpy(e->buf + e->len, s, n);
  e->len += n;
  e->buf[e->len] = '\0';
}

static void puts_(oee_expo *e, const char *s) { append(e, s, strlen(s)); }

void oee_expo_printf(oee_expo *e, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char small[256];
  int n = vsnprintf(small, sizeof(small), fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n < sizeof(small)) {
    append(e, small, (size_t)n);
    return;
  }
  if (reserve(e, (size_t)n) != 0) return;
  va_start(ap, fmt);
  vsnprintf(e->buf + e->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  e->len += (size_t)n;
}

/* What stands for c in a label value (quote = 1) or HELP text, or NULL
 * when c stands for itself. */
static const char *escape_of(char c, int quote) {
  switch (c) {
    case '\\':
      return "\\\\";
    case '\n':
      return "\\n";
    case '"':
      return quote ? "\\\"" : NULL;
    default:
      return NULL;
  }
}

void oee_expo_escaped(oee_expo *e, const char *s, int quote) {
  for (const char *run = s;; s++) {
    const char *esc = escape_of(*s, quote);
    if (esc == NULL && *s != '\0') continue;
    append(e, run, (size_t)(s - run)); /* the plain bytes before it */
    if (*s == '\0') return;
    puts_(e, esc);
    run = s + 1;
  }
}

void oee_expo_family(oee_expo *e, const char *name, const char *type, const char *help) {
  oee_expo_printf(e, "# HELP %s ", name);
  oee_expo_escaped(e, help, 0);
  oee_expo_printf(e, "\n# TYPE %s %s\n", name, type);
}

/* name{l1="v1",...,extra="x"}, where extra (may be NULL) is one more label
 * whose value needs no escape (a histogram's le). */
static void series(oee_expo *e, const char *name, const char *suffix, const oee_label *labels,
                   size_t n, const char *extra, const char *extra_value) {
  puts_(e, name);
  puts_(e, suffix);
  if (n == 0 && extra == NULL) return;
  puts_(e, "{");
  for (size_t i = 0; i < n; i++) {
    oee_expo_printf(e, "%s%s=\"", i ? "," : "", labels[i].name);
    oee_expo_escaped(e, labels[i].value, 1);
    puts_(e, "\"");
  }
  if (extra != NULL) oee_expo_printf(e, "%s%s=\"%s\"", n ? "," : "", extra, extra_value);
  puts_(e, "}");
}

void oee_expo_u64(oee_expo *e, const char *name, const oee_label *labels, size_t n, uint64_t v) {
  series(e, name, "", labels, n, NULL, NULL);
  oee_expo_printf(e, " %" PRIu64 "\n", v);
}

void oee_expo_double(oee_expo *e, const char *name, const oee_label *labels, size_t n, double v) {
  series(e, name, "", labels, n, NULL, NULL);
  oee_expo_printf(e, " %.15g\n", v);
}

/* ns as decimal seconds, exact and without trailing zeros ("0.0005",
 * "2.5", "300"). */
static void seconds(char *buf, size_t len, uint64_t ns) {
  int n = snprintf(buf, len, "%" PRIu64 ".%09" PRIu64, ns / 1000000000u, ns % 1000000000u);
  while (n > 0 && buf[n - 1] == '0') buf[--n] = '\0';
  if (n > 0 && buf[n - 1] == '.') buf[--n] = '\0';
}

void oee_expo_histogram(oee_expo *e, const char *name, const oee_label *labels, size_t n,
                        const oee_histogram *h) {
  char le[32];
  uint64_t cumulative = 0;
  for (int i = 0; i < OEE_HISTOGRAM_BUCKETS; i++) {
    cumulative += h->buckets[i];
    if (i < OEE_HISTOGRAM_BUCKETS - 1) {
      seconds(le, sizeof(le), (uint64_t)oee_histogram_bounds_ns[i]);
    } else {
      snprintf(le, sizeof(le), "+Inf");
    }
    series(e, name, "_bucket", labels, n, "le", le);
    oee_expo_printf(e, " %" PRIu64 "\n", cumulative);
  }
  char sum[32];
  seconds(sum, sizeof(sum), h->sum_ns);
  series(e, name, "_sum", labels, n, NULL, NULL);
  oee_expo_printf(e, " %s\n", sum);
  /* The +Inf bucket is the count by definition; written from the buckets,
   * so the two always agree. */
  series(e, name, "_count", labels, n, NULL, NULL);
  oee_expo_printf(e, " %" PRIu64 "\n", cumulative);
}
