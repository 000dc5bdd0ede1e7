/* log.c - structured log lines (see log.h). */
#include "server/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

static atomic_int min_level = OEE_LOG_INFO;
static atomic_int line_format = OEE_LOG_TEXT;
static const char *const names[] = {"debug", "info", "warn", "error"};

void oee_log_set_level(oee_log_level level) { atomic_store(&min_level, (int)level); }

void oee_log_set_format(oee_log_format format) { atomic_store(&line_format, (int)format); }

int oee_log_parse_format(const char *s) {
  if (s && strcmp(s, "text") == 0) return OEE_LOG_TEXT;
  if (s && strcmp(s, "json") == 0) return OEE_LOG_JSON;
  return -1;
}

/* 1 when s starts with " key=" (the next pair). */
static int next_pair(const char *s) {
  if (*s != ' ') return 0;
  size_t n = strspn(s + 1, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.");
  return n > 0 && s[1 + n] == '=';
}

/* The end of the value starting at v: a quoted value ends at a quote that
 * ends the line or is followed by the next " key=" (so quotes inside a
 * message survive), a bare one at the next space. */
static const char *value_end(const char *v) {
  if (*v != '"') return v + strcspn(v, " ");
  const char *q = v + 1;
  for (;;) {
    q = strchr(q, '"');
    if (q == NULL) return v + strlen(v); /* unterminated: the rest */
    if (q[1] == '\0' || next_pair(q + 1)) return q + 1;
    q++;
  }
}

/* Adds the pair at *p ("key=value") to o and moves *p past it; 0 at the
 * end of the line. A word without '=' is kept under its own name. */
static int add_pair(json_t *o, const char **p) {
  const char *k = *p;
  while (*k == ' ') k++;
  if (*k == '\0') return 0;
  size_t klen = strcspn(k, "= ");
  const char *v = k[klen] == '=' ? k + klen + 1 : k + klen;
  const char *end = k[klen] == '=' ? value_end(v) : v;
  const char *vs = v, *ve = end;
  if (ve - vs >= 2 && *vs == '"' && ve[-1] == '"') vs++, ve--;
  char key[128];
  snprintf(key, sizeof(key), "%.*s", (int)(klen < sizeof(key) ? klen : sizeof(key) - 1), k);
  json_object_set_new(o, key, json_stringn(vs, (size_t)(ve - vs)));
  *p = end;
  return 1;
}

char *oee_log_text_to_json(const char *text) {
  json_t *o = json_object();
  if (o == NULL) return NULL;
  const char *p = text;
  while (add_pair(o, &p)) {
  }
  char *out = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(o);
  return out;
}

/* Writes one line (text, without its newline) in the chosen format. */
static void write_line(char *line, int n, size_t cap) {
  if ((size_t)n > cap - 2) n = (int)cap - 2;
  line[n] = '\0';
  char *json = atomic_load(&line_format) == OEE_LOG_JSON ? oee_log_text_to_json(line) : NULL;
  if (json != NULL) {
    size_t len = strlen(json);
    json[len] = '\n'; /* over the terminator: written by length */
    ssize_t w = write(STDERR_FILENO, json, len + 1);
    (void)w;
    free(json);
    return;
  }
  line[n++] = '\n';
  ssize_t w = write(STDERR_FILENO, line, (size_t)n);
  (void)w; /* nowhere to report a failed log write */
}

int oee_log_parse_level(const char *s) {
  for (int i = 0; i < 4; i++) {
    if (s && strcmp(s, names[i]) == 0) return i;
  }
  return -1;
}

void oee_log(oee_log_level level, const char *msg, const char *fmt, ...) {
  if ((int)level < atomic_load(&min_level)) return;
  char line[2048];
  struct timeval tv;
  gettimeofday(&tv, NULL);
  struct tm tm;
  gmtime_r(&tv.tv_sec, &tm);
  int n = snprintf(line, sizeof(line), "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s msg=%s",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                   (long)(tv.tv_usec / 1000), names[level & 3], msg);
  if (fmt && fmt[0] && n > 0 && (size_t)n < sizeof(line) - 2) {
    line[n++] = ' ';
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m > 0) n += m;
  }
  if (n < 0) return;
  write_line(line, n, sizeof(line));
}
