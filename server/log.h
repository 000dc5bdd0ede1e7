/*
 * log.h - structured log lines: one line per event on stderr,
 *   ts=2026-11-27T21:50:00.123Z level=info msg=listening addr=127.0.0.1:50051
 * Each line is written with one call, so lines from different threads never
 * interleave. Values with spaces should be quoted by the caller (%s -> "%s").
 */
#ifndef OEE_SERVER_LOG_H
#define OEE_SERVER_LOG_H

typedef enum oee_log_level {
  OEE_LOG_DEBUG = 0,
  OEE_LOG_INFO = 1,
  OEE_LOG_WARN = 2,
  OEE_LOG_ERROR = 3,
} oee_log_level;

/* Lines below `level` are dropped (default INFO; OEE_LOG_LEVEL=debug|...). */
void oee_log_set_level(oee_log_level level);
/* Parses "debug", "info", "warn" or "error"; -1 when unknown. */
int oee_log_parse_level(const char *s);

/* `msg` is a short event name without spaces; `fmt` adds key=value pairs. */
void oee_log(oee_log_level level, const char *msg, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* OEE_SERVER_LOG_H */
