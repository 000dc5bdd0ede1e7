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

oee_rpc_channel *oeectl_channel(oeectl_ctx *ctx) {
  if (ctx->chan == NULL) ctx->chan = oee_rpc_channel_create(ctx->addr);
  if (ctx->chan == NULL)
    oeectl_fail(OEECTL_EXIT_SOFTWARE, "cannot open a channel to \"%s\"", ctx->addr);
  return ctx->chan;
}

int64_t oeectl_deadline_ms(const oeectl_ctx *ctx) {
  return ctx->timeout_s > 0 ? (int64_t)(ctx->timeout_s * 1000.0 + 0.5) : 0;
}

/* gRPC status code names, indexed by code (grpc/status.h). */
static const char *const code_names[] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

const char *oeectl_code_name(int code) {
  static char buf[32];
  if (code >= 0 && (size_t)code < sizeof(code_names) / sizeof(code_names[0]))
    return code_names[code];
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

const char *oeectl_status_short(Oee__V1__TaskStatus s) {
  const char *name = oeectl_status_name(s);
  return strncmp(name, "TASK_STATUS_", 12) == 0 ? name + 12 : name;
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
