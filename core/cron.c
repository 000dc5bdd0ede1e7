/*
 * cron.c - the cron expression parser and next-firing calculator (see
 * cron.h for the rules).
 *
 * DESIGN
 * A five-field expression becomes five bitmasks; @every becomes a number of
 * seconds. Finding the next firing after an instant is done in three steps,
 * all pure integer arithmetic:
 *  1. The zone tells the latest wall-clock time already shown at that
 *     instant (oee_tz_local_max_shown). That is normally its local time;
 *     just after a fall-back it is the last time shown before the clock
 *     went back, so the repeated stretch does not fire again.
 *  2. A calendar search finds the first local minute after it that matches
 *     the masks, walking year/month/day fields and skipping a whole month,
 *     day or hour as soon as it cannot match, so no minute-by-minute scan.
 *  3. The zone turns that local time into the first instant the wall clock
 *     reaches it (oee_tz_local_reached_at): the instant itself, its first
 *     occurrence if repeated, or the end of the gap that skipped it.
 * Step 3 never decreases as the local time grows, and it is after the
 * starting instant exactly when the local time is after the one of step 1,
 * which is why the first local match gives the first firing.
 * No global state: the name tables are constant.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/civil.h"
#include "core/cron.h"

/* The range of instants handled: years 1 to 9999 (0001-01-01T00:00:00Z
 * and 9999-12-31T23:59:59Z). */
#define UTC_MIN INT64_C(-62135596800)
#define UTC_MAX INT64_C(253402300799)
#define DAYS_END INT64_C(2932897) /* day number of 10000-01-01 */
/* The Gregorian calendar repeats itself every 400 years (146,097 days): a
 * search that finds nothing in that long finds nothing ever. */
#define SEARCH_DAYS (OEE__DAYS_PER_ERA + 366)
/* @every is at most 100 years of 365.25 days. */
#define EVERY_MAX_SECONDS INT64_C(3155760000)

enum { F_MINUTE, F_HOUR, F_DOM, F_MONTH, F_DOW, F_COUNT };

typedef struct field_info {
  const char *name;
  int min, max;
  const char *const *names; /* three-letter names of min, min+1, ... or NULL */
  int nnames;
} field_info;

static const char *const month_names[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                          "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
static const char *const weekday_names[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

static const field_info fields[F_COUNT] = {
    {"minute", 0, 59, NULL, 0},
    {"hour", 0, 23, NULL, 0},
    {"day of month", 1, 31, NULL, 0},
    {"month", 1, 12, month_names, 12},
    {"day of week", 0, 7, weekday_names, 7}, /* 7 is Sunday again */
};

static const struct {
  const char *name;
  const char *fields;
} macros[] = {
    {"@hourly", "0 * * * *"},   {"@daily", "0 0 * * *"},   {"@midnight", "0 0 * * *"},
    {"@weekly", "0 0 * * 0"},   {"@monthly", "0 0 1 * *"}, {"@yearly", "0 0 1 1 *"},
    {"@annually", "0 0 1 1 *"},
};

/* ------------------------------------------------------------ parsing */

static int is_space(char ch) { return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r'; }
static int is_digit(char ch) { return ch >= '0' && ch <= '9'; }
static int is_alpha(char ch) { return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z'); }
static char upper(char ch) { return ch >= 'a' && ch <= 'z' ? (char)(ch - 'a' + 'A') : ch; }

/* A piece of the expression: [p, p + len). */
typedef struct span {
  const char *p;
  size_t len;
} span;

/* What a field parser reports: the reason, without the field's name. */
typedef struct problem {
  char text[160];
} problem;

static int fail(problem *pb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(problem *pb, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(pb->text, sizeof(pb->text), fmt, ap);
  va_end(ap);
  return -1;
}

/* Reads a number or a name at *p (before end) into *value. */
static int read_value(const field_info *f, const char **p, const char *end, int *value,
                      problem *pb) {
  const char *s = *p;
  if (s < end && is_digit(*s)) {
    long v = 0;
    while (s < end && is_digit(*s)) {
      if (v < 100000) v = v * 10 + (*s - '0');
      s++;
    }
    if (v < f->min || v > f->max) {
      return fail(pb, "%.*s is out of range %d-%d", (int)(s - *p), *p, f->min, f->max);
    }
    *value = (int)v;
  } else if (s < end && is_alpha(*s)) {
    while (s < end && is_alpha(*s)) s++;
    int len = (int)(s - *p);
    if (f->names == NULL) return fail(pb, "\"%.*s\" is not a number", len, *p);
    for (int i = 0; i < f->nnames && len == 3; i++) {
      const char *n = f->names[i];
      if (upper((*p)[0]) == n[0] && upper((*p)[1]) == n[1] && upper((*p)[2]) == n[2]) {
        *value = f->min + i;
        *p = s;
        return 0;
      }
    }
    return fail(pb, "unknown name \"%.*s\"", len, *p);
  } else {
    return fail(pb, "expected a number%s at \"%.*s\"", f->names ? " or a name" : "",
                (int)(end - *p), *p);
  }
  *p = s;
  return 0;
}

/* Reads the step after a '/' at *p. */
static int read_step(const field_info *f, const char **p, const char *end, int *step, problem *pb) {
  const char *s = *p;
  long v = 0;
  if (s == end || !is_digit(*s)) {
    return fail(pb, "a step must be a number, got \"%.*s\"", (int)(end - s), s);
  }
  while (s < end && is_digit(*s)) {
    if (v < 100000) v = v * 10 + (*s - '0');
    s++;
  }
  if (v < 1) return fail(pb, "a step must be at least 1");
  if (v > f->max) return fail(pb, "a step must be at most %d, got %.*s", f->max, (int)(s - *p), *p);
  *step = (int)v;
  *p = s;
  return 0;
}

/* One list item: `*`, a, a-b, each optionally with /step; sets its bits. */
static int parse_item(const field_info *f, span item, uint64_t *mask, problem *pb) {
  const char *p = item.p, *end = item.p + item.len;
  int lo, hi, step = 1;
  if (item.len == 0) return fail(pb, "empty list item");
  if (*p == '*') {
    p++;
    lo = f->min;
    hi = f->max;
  } else {
    if (read_value(f, &p, end, &lo, pb) < 0) return -1;
    hi = lo;
    if (p < end && *p == '-') {
      p++;
      if (read_value(f, &p, end, &hi, pb) < 0) return -1;
      if (lo > hi) {
        return fail(pb, "range %d-%d is reversed (write it as a list of two ranges)", lo, hi);
      }
    } else if (p < end && *p == '/') {
      hi = f->max; /* a/n: from a to the field's end */
    }
  }
  if (p < end && *p == '/') {
    p++;
    if (read_step(f, &p, end, &step, pb) < 0) return -1;
  }
  if (p != end) return fail(pb, "unexpected \"%.*s\"", (int)(end - p), p);
  for (int v = lo; v <= hi; v += step) *mask |= UINT64_C(1) << v;
  return 0;
}

/* A whole field: items separated by commas. Bit v of *mask = value v. */
static int parse_field(const field_info *f, span text, uint64_t *mask, problem *pb) {
  const char *p = text.p, *end = text.p + text.len;
  *mask = 0;
  for (;;) {
    const char *comma = memchr(p, ',', (size_t)(end - p));
    const char *stop = comma ? comma : end;
    if (parse_item(f, (span){p, (size_t)(stop - p)}, mask, pb) < 0) return -1;
    if (comma == NULL) return 0;
    p = comma + 1;
  }
}

/* Splits `s` into at most `max` whitespace-separated words; returns the
 * number of words (which may exceed max: only max are stored). */
static int split(span s, span *words, int max) {
  int n = 0;
  const char *p = s.p, *end = s.p + s.len;
  while (p < end) {
    while (p < end && is_space(*p)) p++;
    if (p == end) break;
    const char *w = p;
    while (p < end && !is_space(*p)) p++;
    if (n < max) words[n] = (span){w, (size_t)(p - w)};
    n++;
  }
  return n;
}

/* Copies at most 64 bytes of a span for a message, '?' for anything not
 * plainly printable. */
static const char *shown(span s, char buf[68]) {
  size_t i = 0;
  for (; i < s.len && i < 64; i++) {
    unsigned char ch = (unsigned char)s.p[i];
    buf[i] = (ch < 0x20 || ch > 0x7e || ch == '"' || ch == '\\') ? '?' : (char)ch;
  }
  if (s.len > 64) {
    memcpy(buf + i, "...", 3);
    i += 3;
  }
  buf[i] = '\0';
  return buf;
}

static int calendar_next(const oee_cron *c, int64_t from_local, int64_t limit_days, int64_t *out);

static int parse_fields(span expr, span whole, oee_cron *out, oee_error *err) {
  span words[F_COUNT];
  char buf[68];
  int n = split(expr, words, F_COUNT);
  if (n != F_COUNT) return oee_error_set(err, OEE_EINVAL, "cron: expected 5 fields, got %d", n);
  uint64_t mask[F_COUNT];
  for (int i = 0; i < F_COUNT; i++) {
    problem pb;
    if (parse_field(&fields[i], words[i], &mask[i], &pb) < 0) {
      return oee_error_set(err, OEE_EINVAL, "cron field %d (%s) \"%s\": %s", i + 1, fields[i].name,
                           shown(words[i], buf), pb.text);
    }
  }
  oee_cron c = {0};
  c.minutes = mask[F_MINUTE];
  c.hours = (uint32_t)mask[F_HOUR];
  c.days = (uint32_t)(mask[F_DOM] >> 1);
  c.months = (uint16_t)(mask[F_MONTH] >> 1);
  c.weekdays = (uint8_t)((mask[F_DOW] | mask[F_DOW] >> 7) & 0x7f); /* 7 -> Sunday */
  if (words[F_DOM].p[0] != '*') c.flags |= OEE_CRON_DOM_RESTRICTED;
  if (words[F_DOW].p[0] != '*') c.flags |= OEE_CRON_DOW_RESTRICTED;
  /* Any 400 years hold every date the calendar ever has. */
  int64_t from = oee__days_from_civil(2000, 1, 1) * 86400, first;
  if (!calendar_next(&c, from, from / 86400 + SEARCH_DAYS, &first)) {
    return oee_error_set(err, OEE_EINVAL,
                         "cron \"%s\": never fires: no date matches its day-of-month, month and "
                         "day-of-week fields together",
                         shown(whole, buf));
  }
  *out = c;
  return 0;
}

/* "@every <N>s|m|h": `rest` is what follows "@every". */
static int parse_every(span rest, span whole, oee_cron *out, oee_error *err) {
  char buf[68];
  span w[2];
  int n = (rest.len > 0 && is_space(rest.p[0])) ? split(rest, w, 2) : -1;
  const char *p = n == 1 ? w[0].p : NULL, *end = n == 1 ? w[0].p + w[0].len : NULL;
  int64_t v = 0;
  if (p != NULL && is_digit(*p)) {
    while (p < end && is_digit(*p)) {
      if (v <= EVERY_MAX_SECONDS) v = v * 10 + (*p - '0');
      p++;
    }
  } else {
    p = NULL;
  }
  int64_t unit = 0;
  if (p != NULL && end - p == 1) unit = *p == 's' ? 1 : *p == 'm' ? 60 : *p == 'h' ? 3600 : 0;
  if (unit == 0) {
    return oee_error_set(err, OEE_EINVAL,
                         "cron \"%s\": expected @every <N>s|m|h with N a whole number "
                         "(e.g. @every 90s, @every 15m, @every 2h)",
                         shown(whole, buf));
  }
  if (v == 0) {
    return oee_error_set(err, OEE_EINVAL, "cron \"%s\": the interval must be at least 1 second",
                         shown(whole, buf));
  }
  if (v > EVERY_MAX_SECONDS / unit) {
    return oee_error_set(err, OEE_EINVAL,
                         "cron \"%s\": the interval must be at most 876600h (100 years)",
                         shown(whole, buf));
  }
  *out = (oee_cron){.every_seconds = v * unit};
  return 0;
}

static int parse_macro(span expr, oee_cron *out, oee_error *err) {
  char buf[68];
  size_t wlen = 0;
  while (wlen < expr.len && !is_space(expr.p[wlen])) wlen++;
  span rest = {expr.p + wlen, expr.len - wlen};
  if (wlen == 6 && memcmp(expr.p, "@every", 6) == 0) return parse_every(rest, expr, out, err);
  for (size_t i = 0; i < sizeof(macros) / sizeof(macros[0]); i++) {
    if (strlen(macros[i].name) != wlen || memcmp(macros[i].name, expr.p, wlen) != 0) continue;
    if (rest.len > 0) {
      return oee_error_set(err, OEE_EINVAL, "cron \"%s\": unexpected text after %s",
                           shown(expr, buf), macros[i].name);
    }
    span fields_text = {macros[i].fields, strlen(macros[i].fields)};
    return parse_fields(fields_text, fields_text, out, err);
  }
  return oee_error_set(err, OEE_EINVAL,
                       "cron \"%s\": unknown macro (known: @hourly, @daily, @midnight, @weekly, "
                       "@monthly, @yearly, @annually, @every <N>s|m|h)",
                       shown(expr, buf));
}

int oee_cron_parse(const char *expr, oee_cron *out, oee_error *err) {
  span s = {expr ? expr : "", expr ? strlen(expr) : 0};
  while (s.len > 0 && is_space(s.p[0])) s.p++, s.len--;
  while (s.len > 0 && is_space(s.p[s.len - 1])) s.len--;
  if (s.len == 0) return oee_error_set(err, OEE_EINVAL, "cron: empty expression");
  if (s.p[0] == '@') return parse_macro(s, out, err);
  return parse_fields(s, s, out, err);
}

/* ---------------------------------------------------- the calendar */

/* The lowest set bit of `mask` at or above `from`, or -1. */
static int next_bit(uint64_t mask, int from) {
  if (from >= 64) return -1;
  mask &= ~UINT64_C(0) << from;
  return mask ? __builtin_ctzll(mask) : -1;
}

static int day_matches(const oee_cron *c, int day, int weekday) {
  int dom = (int)(c->days >> (day - 1) & 1), dow = c->weekdays >> weekday & 1;
  if ((c->flags & OEE_CRON_DOM_RESTRICTED) && (c->flags & OEE_CRON_DOW_RESTRICTED)) {
    return dom || dow; /* Vixie: either restricted field may pick the day */
  }
  return dom && dow;
}

/* The first minute of the day, at or after hour:minute, matching the hour
 * and minute masks, in seconds after midnight; -1 when none is left. */
static int time_in_day(const oee_cron *c, int hour, int minute) {
  int h = next_bit(c->hours, hour);
  if (h == hour) {
    int m = next_bit(c->minutes, minute);
    if (m >= 0) return h * 3600 + m * 60;
    h = next_bit(c->hours, hour + 1);
  }
  int m = next_bit(c->minutes, 0);
  return h >= 0 && m >= 0 ? h * 3600 + m * 60 : -1;
}

/* Finds the first local time (local seconds, a whole minute) at or after
 * the minute `from_local` that matches `c`, before day `limit_days`: 1 and
 * the time in *out, or 0 when there is none. */
static int calendar_next(const oee_cron *c, int64_t from_local, int64_t limit_days, int64_t *out) {
  int64_t days = oee__floor_div(from_local, 86400), year;
  int sec = (int)(from_local - days * 86400);
  int hour = sec / 3600, minute = sec % 3600 / 60, month, day;
  oee__civil_from_days(days, &year, &month, &day);
  while (days < limit_days) {
    int mlen = oee__month_days(year, month);
    if (!(c->months >> (month - 1) & 1)) {
      days += mlen - day + 1; /* to the 1st of the next month */
      day = mlen + 1;
    } else if (day_matches(c, day, oee__weekday(days))) {
      int t = time_in_day(c, hour, minute);
      if (t >= 0) {
        *out = days * 86400 + t;
        return 1;
      }
      days++;
      day++;
    } else {
      days++;
      day++;
    }
    if (day > mlen) {
      day = 1;
      if (++month > 12) {
        month = 1;
        year++;
      }
    }
    hour = minute = 0;
  }
  return 0;
}

/* ------------------------------------------------------- next firing */

static int64_t every_next(int64_t every, int64_t after, int64_t created) {
  if (created < UTC_MIN || created > UTC_MAX) return OEE_CRON_NONE;
  if (after < created) return created + every <= UTC_MAX ? created + every : OEE_CRON_NONE;
  int64_t k = (after - created) / every + 1; /* after - created < 2^39: no overflow */
  return k <= (UTC_MAX - created) / every ? created + k * every : OEE_CRON_NONE;
}

int64_t oee_cron_next(const oee_cron *c, const oee_tz *tz, int64_t after_utc, int64_t created_utc) {
  if (after_utc >= UTC_MAX) return OEE_CRON_NONE;
  if (after_utc < UTC_MIN) after_utc = UTC_MIN - 1;
  if (c->every_seconds > 0) return every_next(c->every_seconds, after_utc, created_utc);
  int64_t shown_local = tz ? oee_tz_local_max_shown(tz, after_utc) : after_utc;
  int64_t from = (oee__floor_div(shown_local, 60) + 1) * 60; /* the next whole minute */
  int64_t limit = oee__floor_div(from, 86400) + SEARCH_DAYS;
  if (limit > DAYS_END + 1) limit = DAYS_END + 1; /* local time may run a day past UTC */
  int64_t local;
  if (!calendar_next(c, from, limit, &local)) return OEE_CRON_NONE;
  int64_t at = tz ? oee_tz_local_reached_at(tz, local) : local;
  return at <= UTC_MAX ? at : OEE_CRON_NONE;
}

/* Writes `v` (>= 0) as `width` decimal digits at p. */
static void put_digits(char *p, int width, int64_t v) {
  for (int i = width - 1; i >= 0; i--) {
    p[i] = (char)('0' + v % 10);
    v /= 10;
  }
}

void oee_cron_time_rfc3339(int64_t utc_seconds, char out[OEE_CRON_TIME_SIZE]) {
  int64_t t = utc_seconds < UTC_MIN ? UTC_MIN : utc_seconds > UTC_MAX ? UTC_MAX : utc_seconds;
  int64_t days = oee__floor_div(t, 86400), year;
  int sec = (int)(t - days * 86400), month, day;
  oee__civil_from_days(days, &year, &month, &day);
  memcpy(out, "0000-00-00T00:00:00Z", OEE_CRON_TIME_SIZE);
  put_digits(out, 4, year);
  put_digits(out + 5, 2, month);
  put_digits(out + 8, 2, day);
  put_digits(out + 11, 2, sec / 3600);
  put_digits(out + 14, 2, sec % 3600 / 60);
  put_digits(out + 17, 2, sec % 60);
}
