/*
 * oeectl_util.c - errors, argument parsing and formatting shared by the
 * oeectl commands.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "client/oeectl.h"
#include "rpc/error.h"

/* The token in path, surrounding whitespace trimmed (like the server reads
 * its token files); NULL after printing why. */
static char *read_token(const char *path) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    oeectl_fail(OEECTL_EXIT_SOFTWARE, "cannot read token file %s: %s", path, strerror(errno));
    return NULL;
  }
  char buf[4097];
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  int big = n == sizeof(buf) - 1 && fgetc(f) != EOF;
  fclose(f);
  buf[n] = '\0';
  char *start = buf, *end = buf + n;
  while (start < end && isspace((unsigned char)*start)) start++;
  while (end > start && isspace((unsigned char)end[-1])) end--;
  *end = '\0';
  char *tok = big || start == end ? NULL : strdup(start); /* oee_rpc_pem_free()d */
  memset(buf, 0, sizeof(buf));
  if (tok == NULL) {
    oeectl_fail(OEECTL_EXIT_SOFTWARE, "token file %s: %s", path,
                big ? "larger than 4 KiB" : "holds no token");
  }
  return tok;
}

const oee_rpc_channel_options *oeectl_conn_opts(oeectl_ctx *ctx) {
  if (ctx->conn.token == NULL) {
    const char *env = getenv("OEE_TOKEN");
    if (ctx->token_file) {
      if ((ctx->token = read_token(ctx->token_file)) == NULL) return NULL;
    } else if (env != NULL && env[0] != '\0' && (ctx->token = strdup(env)) == NULL) {
      oeectl_fail(OEECTL_EXIT_SOFTWARE, "out of memory");
      return NULL;
    }
    ctx->conn.token = ctx->token;
  }
  return &ctx->conn;
}

oee_rpc_channel *oeectl_channel(oeectl_ctx *ctx) {
  if (ctx->chan != NULL) return ctx->chan;
  const oee_rpc_channel_options *o = oeectl_conn_opts(ctx);
  if (o == NULL) return NULL;
  char why[256] = "";
  ctx->chan = oee_rpc_channel_open(ctx->addr, o, why, sizeof(why));
  if (ctx->chan == NULL)
    oeectl_fail(OEECTL_EXIT_SOFTWARE, "cannot open a channel to \"%s\": %s", ctx->addr, why);
  return ctx->chan;
}

int64_t oeectl_deadline_ms(const oeectl_ctx *ctx) {
  return ctx->timeout_s > 0 ? (int64_t)(ctx->timeout_s * 1000.0 + 0.5) : 0;
}

const char *oeectl_code_name(int code) {
  static char buf[32];
  const char *name = oee_rpc_status_name(code);
  if (name != NULL) return name;
  if (code == OEECTL_EXIT_USAGE) return "USAGE";
  if (code == OEECTL_EXIT_NOINPUT) return "NO_INPUT";
  if (code == OEECTL_EXIT_SOFTWARE) return "LOCAL_ERROR";
  snprintf(buf, sizeof(buf), "CODE_%d", code);
  return buf;
}

int oeectl_fail(int code, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "oeectl: %s: ", oeectl_code_name(code));
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  return code;
}

int oeectl_call_failed(int code, oee_rpc_status *st) {
  const char *msg =
      st != NULL && st->message != NULL && st->message[0] != '\0' ? st->message : "(no message)";
  oeectl_fail(code, "%s", msg);
  oee_rpc_status_free(st);
  return code;
}

int oeectl_parse_int(const char *s, long lo, long hi, int *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (s[0] == '\0' || isspace((unsigned char)s[0]) || *end != '\0' || errno != 0 || v < lo ||
      v > hi)
    return -1;
  *out = (int)v;
  return 0;
}

int oeectl_parse_double(const char *s, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (s[0] == '\0' || isspace((unsigned char)s[0]) || *end != '\0' || errno != 0 || !isfinite(v))
    return -1;
  *out = v;
  return 0;
}

int oeectl_parse_nonneg(const char *s, double *out) {
  double v;
  if (oeectl_parse_double(s, &v) != 0 || v < 0) return -1;
  *out = v;
  return 0;
}

/* Looks s up in an enum's value descriptors, accepting the full name, the
 * name without `prefix`, any case, and '-' for '_'. */
static int parse_enum(const ProtobufCEnumDescriptor *d, const char *prefix, const char *s,
                      int *out) {
  char want[64];
  size_t n = strlen(s), plen = strlen(prefix);
  if (n == 0 || n >= sizeof(want)) return -1;
  for (size_t i = 0; i <= n; i++) want[i] = s[i] == '-' ? '_' : s[i];
  for (unsigned i = 0; i < d->n_values; i++) {
    const char *name = d->values[i].name;
    if (d->values[i].value == 0) continue; /* UNSPECIFIED is never wanted */
    if (strcasecmp(name, want) == 0 ||
        (strncmp(name, prefix, plen) == 0 && strcasecmp(name + plen, want) == 0)) {
      *out = d->values[i].value;
      return 0;
    }
  }
  return -1;
}

int oeectl_parse_status(const char *s, Oee__V1__TaskStatus *out) {
  int v;
  if (parse_enum(&oee__v1__task_status__descriptor, "TASK_STATUS_", s, &v) != 0) return -1;
  *out = (Oee__V1__TaskStatus)v;
  return 0;
}

int oeectl_parse_strategy(const char *s, Oee__V1__PipelineStrategy *out) {
  int v;
  if (parse_enum(&oee__v1__pipeline_strategy__descriptor, "", s, &v) != 0) return -1;
  *out = (Oee__V1__PipelineStrategy)v;
  return 0;
}

int oeectl_parse_overlap(const char *s, Oee__V1__ScheduleOverlap *out) {
  int v;
  if (parse_enum(&oee__v1__schedule_overlap__descriptor, "SCHEDULE_OVERLAP_", s, &v) != 0)
    return -1;
  *out = (Oee__V1__ScheduleOverlap)v;
  return 0;
}

static const char *enum_name(const ProtobufCEnumDescriptor *d, int v) {
  const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(d, v);
  return ev != NULL ? ev->name : "UNKNOWN_ENUM_VALUE";
}

const char *oeectl_status_name(Oee__V1__TaskStatus s) {
  return enum_name(&oee__v1__task_status__descriptor, s);
}

const char *oeectl_strategy_name(Oee__V1__PipelineStrategy s) {
  return enum_name(&oee__v1__pipeline_strategy__descriptor, s);
}

const char *oeectl_stage_status_name(Oee__V1__StageStatus s) {
  return enum_name(&oee__v1__stage_status__descriptor, s);
}

const char *oeectl_overlap_name(Oee__V1__ScheduleOverlap o) {
  return enum_name(&oee__v1__schedule_overlap__descriptor, o);
}

const char *oeectl_status_short(Oee__V1__TaskStatus s) {
  const char *name = oeectl_status_name(s);
  return strncmp(name, "TASK_STATUS_", 12) == 0 ? name + 12 : name;
}

const char *oeectl_overlap_short(Oee__V1__ScheduleOverlap o) {
  const char *name = oeectl_overlap_name(o);
  return strncmp(name, "SCHEDULE_OVERLAP_", 17) == 0 ? name + 17 : name;
}

/* Fraction digits as protobuf's JSON printer does: 0, 3, 6 or 9. */
static int nanos_digits(int32_t nanos, char *buf, size_t len) {
  if (nanos == 0) return snprintf(buf, len, "%s", "");
  if (nanos % 1000000 == 0) return snprintf(buf, len, ".%03d", (int)(nanos / 1000000));
  if (nanos % 1000 == 0) return snprintf(buf, len, ".%06d", (int)(nanos / 1000));
  return snprintf(buf, len, ".%09d", (int)nanos);
}

const char *oeectl_format_time(const Google__Protobuf__Timestamp *ts, char *buf, size_t len) {
  struct tm tm;
  char frac[16];
  time_t secs = (time_t)(ts != NULL ? ts->seconds : 0);
  if (ts == NULL || gmtime_r(&secs, &tm) == NULL) {
    snprintf(buf, len, "%s", "");
    return buf;
  }
  nanos_digits(ts->nanos, frac, sizeof(frac));
  snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d%sZ", tm.tm_year + 1900, tm.tm_mon + 1,
           tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
  return buf;
}

const char *oeectl_format_time_cell(const Google__Protobuf__Timestamp *ts, char *buf, size_t len) {
  if (ts == NULL) return "-";
  Google__Protobuf__Timestamp whole = *ts;
  whole.nanos = 0;
  return oeectl_format_time(&whole, buf, len);
}

/* Days from 1970-01-01 to the proleptic Gregorian date (H. Hinnant's
 * days_from_civil), valid for every year the RFC 3339 form can write. */
static int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m) {
  static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return days[m - 1] + (m == 2 && leap);
}

/* Exactly n decimal digits at *p into *out; advances *p. */
static int digits(const char **p, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++, (*p)++) {
    if (!isdigit((unsigned char)**p)) return -1;
    v = v * 10 + (**p - '0');
  }
  *out = v;
  return 0;
}

/* ".ddd" (1 to 9 digits kept, more are cut) as nanoseconds; none is 0. */
static int fraction(const char **p, int32_t *nanos) {
  int32_t ns = 0, n = 0;
  if (**p != '.') return 0;
  if (!isdigit((unsigned char)*++*p)) return -1;
  for (; isdigit((unsigned char)**p); (*p)++) {
    if (n++ < 9) ns = ns * 10 + (**p - '0');
  }
  for (; n < 9; n++) ns *= 10;
  *nanos = ns;
  return 0;
}

/* "Z" or "+HH:MM" / "-HH:MM" as seconds east of UTC. */
static int zone(const char **p, int *offset) {
  int sign = **p == '+' ? 1 : -1, h, m;
  if (**p == 'Z' || **p == 'z') {
    (*p)++;
    *offset = 0;
    return 0;
  }
  if (**p != '+' && **p != '-') return -1;
  (*p)++;
  if (digits(p, 2, &h) || *(*p)++ != ':' || digits(p, 2, &m) || h > 23 || m > 59) return -1;
  *offset = sign * (h * 3600 + m * 60);
  return 0;
}

/* RFC 3339: YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM). */
static int parse_rfc3339(const char *s, Google__Protobuf__Timestamp *out) {
  const char *p = s;
  int y, mo, d, h, mi, sec, off;
  int32_t nanos = 0;
  if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' || digits(&p, 2, &d))
    return -1;
  if (*p != 'T' && *p != 't' && *p != ' ') return -1;
  p++;
  if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi) || *p++ != ':' ||
      digits(&p, 2, &sec) || fraction(&p, &nanos) || zone(&p, &off) || *p != '\0')
    return -1;
  if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60)
    return -1;
  out->seconds = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off;
  out->nanos = nanos;
  return 0;
}

/* "+<seconds>s", "+<minutes>m", "+<hours>h" or "+<days>d" from now. */
static int parse_relative(const char *s, Google__Protobuf__Timestamp *out) {
  char *end;
  double v;
  if (s[0] != '+' || !isdigit((unsigned char)s[1])) return -1;
  errno = 0;
  v = strtod(s + 1, &end);
  double unit = *end == 's' ? 1 : *end == 'm' ? 60 : *end == 'h' ? 3600 : *end == 'd' ? 86400 : 0;
  if (errno != 0 || unit == 0 || end[1] != '\0' || !isfinite(v) || v * unit > 1e11) return -1;
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  int64_t ns = (int64_t)now.tv_nsec + (int64_t)llround(fmod(v * unit, 1.0) * 1e9);
  out->seconds = (int64_t)now.tv_sec + (int64_t)floor(v * unit) + ns / 1000000000;
  out->nanos = (int32_t)(ns % 1000000000);
  return 0;
}

int oeectl_parse_time(const char *s, Google__Protobuf__Timestamp *out) {
  google__protobuf__timestamp__init(out);
  return s[0] == '+' ? parse_relative(s, out) : parse_rfc3339(s, out);
}

const char *oeectl_clip(const char *s, size_t max, char *buf, size_t len) {
  size_t n = 0;
  if (s == NULL) s = "";
  if (max + 1 > len) max = len - 1;
  for (; s[n] != '\0' && n < max; n++)
    buf[n] = (s[n] == '\n' || s[n] == '\r' || s[n] == '\t') ? ' ' : s[n];
  buf[n] = '\0';
  if (s[n] != '\0' && n >= 3) memcpy(buf + n - 3, "...", 3);
  return buf;
}

int oeectl_print_json(json_t *v) {
  if (v == NULL) return oeectl_fail(OEECTL_EXIT_SOFTWARE, "out of memory");
  int rc = json_dumpf(v, stdout, JSON_COMPACT | JSON_REAL_PRECISION(15));
  json_decref(v);
  if (rc != 0) return oeectl_fail(OEECTL_EXIT_SOFTWARE, "cannot write JSON");
  fputc('\n', stdout);
  return 0;
}
