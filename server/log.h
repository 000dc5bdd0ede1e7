/*
 * log.h - structured log lines: one line per event on stderr,
 *   ts=2026-11-27T21:50:00.123Z level=info msg=listening addr=127.0.0.1:50051
 * or, with the json format (config `log_format`), the same keys as one JSON
 * object per line:
 *   {"ts":"2026-11-27T21:50:00.123Z","level":"info","msg":"listening","addr":"127.0.0.1:50051"}
 * Each line is written with one call, so lines from different threads never
 * interleave. Values with spaces should be quoted by the caller (%s -> "%s");
 * a quoted value ends at a quote followed by the next " key=" or the end.
 * Values are JSON strings. Callers never log tokens or context values.
 */
#ifndef OEE_SERVER_LOG_H
#define OEE_SERVER_LOG_H

typedef enum oee_log_level {
  OEE_LOG_DEBUG = 0,
  OEE_LOG_INFO = 1,
  OEE_LOG_WARN = 2,
  OEE_LOG_ERROR = 3,
} oee_log_level;

typedef enum oee_log_format {
  OEE_LOG_TEXT = 0, /* key=value (the default) */
  OEE_LOG_JSON = 1, /* one JSON object per line */
} oee_log_format;

/* Sets the format of the lines written from now on. */
void oee_log_set_format(oee_log_format format);
/* Parses "text" or "json"; -1 when unknown. */
int oee_log_parse_format(const char *s);
/* The JSON form of a text line's body ("ts=... level=... msg=... k=v ...",
 * without the newline), malloc'd, or NULL when out of memory. */
char *oee_log_text_to_json(const char *text);

/* Lines below `level` are dropped (default INFO; OEE_LOG_LEVEL=debug|...). */
void oee_log_set_level(oee_log_level level);
/* Parses "debug", "info", "warn" or "error"; -1 when unknown. */
int oee_log_parse_level(const char *s);

/* `msg` is a short event name without spaces; `fmt` adds key=value pairs. */
void oee_log(oee_log_level level, const char *msg, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* OEE_SERVER_LOG_H */
