/* log.c - structured log lines (see log.h). */
#include "server/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static atomic_int min_level = OEE_LOG_INFO;
static const char *const names[] = {"debug", "info", "warn", "error"};

void oee_log_set_level(oee_log_level level) { atomic_store(&min_level, (int)level); }

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
  if ((size_t)n > sizeof(line) - 2) n = (int)sizeof(line) - 2;
  line[n++] = '\n';
  ssize_t w = write(STDERR_FILENO, line, (size_t)n);
  (void)w; /* nowhere to report a failed log write */
}
