/* error.c - the error table and small shared utilities. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/internal.h"

const char *oee_strerror(int err) {
  switch (err) {
    case OEE_OK:
      return "success";
#define OEE__ERR_CASE(name, msg) \
  case OEE_E##name:              \
    return msg;
      OEE_ERRNO_MAP(OEE__ERR_CASE)
#undef OEE__ERR_CASE
    default:
      return "unknown error";
  }
}

const char *oee_err_name(int err) {
  switch (err) {
    case OEE_OK:
      return "OK";
#define OEE__ERR_NAME(name, msg) \
  case OEE_E##name:              \
    return #name;
      OEE_ERRNO_MAP(OEE__ERR_NAME)
#undef OEE__ERR_NAME
    default:
      return "UNKNOWN";
  }
}

int oee_error_set(oee_error *err, int code, const char *fmt, ...) {
  if (err == NULL) return code;
  err->code = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->message, sizeof(err->message), fmt, ap);
  va_end(ap);
  return code;
}

/* 1 for an ASCII hex digit; a plain test, since every lookup checks ids
 * (isxdigit() goes through the locale). */
static int hex_digit(unsigned char c) {
  unsigned char lower = c | 0x20;
  return (c >= '0' && c <= '9') || (lower >= 'a' && lower <= 'f');
}

int oee_id_valid(const char *s) {
  if (s == NULL) return 0;
  for (int i = 0; i < OEE_ID_LEN; i++) {
    unsigned char c = (unsigned char)s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return 0;
    } else if (!hex_digit(c)) {
      return 0;
    }
  }
  return s[OEE_ID_LEN] == '\0';
}

int64_t oee_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t oee__mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
