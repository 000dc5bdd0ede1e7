/* test_cron.c - cron expressions and time zones (core/cron.h, core/tz.h):
 * tables of next firings in UTC and in three zones across their DST
 * changes, parse errors, zone offsets and local-to-UTC conversions, the
 * zone reader on hand-made TZif files.
 *
 * The expected values were worked out by hand (the reasoning is in the
 * comments) and checked, while the tables were written, against an
 * independent reference: a brute-force search over local minutes with
 * Python's zoneinfo for the zone conversions. The test itself needs only
 * the system's zone files (Debian's tzdata). Its time parser below uses its
 * own date arithmetic, not core/civil.h, so a shared mistake cannot hide.
 *
 * DST facts used (2026): Europe/Ljubljana 02:00 CET -> 03:00 CEST on
 * Sunday 29 March (01:00Z) and 03:00 CEST -> 02:00 CET on Sunday 25
 * October (01:00Z); America/New_York 02:00 EST -> 03:00 EDT on Sunday 8
 * March (07:00Z) and 02:00 EDT -> 01:00 EST on Sunday 1 November (06:00Z);
 * Australia/Lord_Howe 02:00 +11 -> 01:30 +10:30 on Sunday 5 April
 * (2026-04-04T15:00Z) and 02:00 +10:30 -> 02:30 +11 on Sunday 4 October
 * (2026-10-03T15:30Z).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/cron.h"
#include "core/tz.h"

/* ------------------------------------------------ time text helpers */

static int is_leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

/* Days from 1970-01-01 to y-m-d (years 1..9999), by counting leap years
 * and summing month lengths. */
static int64_t day_number(int64_t y, int m, int d) {
  static const int before[12] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};
  int64_t n = y - 1;
  int64_t leaps_before = n / 4 - n / 100 + n / 400;     /* leap years in 1..y-1 */
  int64_t days = 365 * (y - 1970) + leaps_before - 477; /* 477 leap years in 1..1969 */
  return days + before[m - 1] + (m > 2 && is_leap(y)) + d - 1;
}

/* "YYYY-MM-DDTHH:MM:SS" followed by "Z", "+HH:MM", "-HH:MM" (an instant,
 * UTC seconds) or by nothing (a wall-clock time, local seconds). */
static int64_t parse_time(const char *s) {
  int y, mo, d, h, mi, sec, n = 0;
  if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6) {
    fail_msg("bad time in the table: %s", s);
  }
  int64_t t = day_number(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
  const char *z = s + n;
  if (*z == '\0' || strcmp(z, "Z") == 0) return t;
  int oh = 0, om = 0;
  if ((z[0] != '+' && z[0] != '-') || sscanf(z + 1, "%2d:%2d", &oh, &om) != 2) {
    fail_msg("bad offset in the table: %s", s);
  }
  int64_t off = oh * 3600 + om * 60;
  return z[0] == '+' ? t - off : t + off;
}

static oee_tz *load(const char *name) {
  oee_tz *tz = NULL;
  oee_error err = {0};
  if (oee_tz_load(name, &tz, &err) != 0) fail_msg("loading %s: %s", name, err.message);
  return tz;
}

/* ------------------------------------------------ next-firing tables */

typedef struct next_case {
  const char *expr;
  const char *zone;
  const char *after;    /* the instant searched from (with Z or an offset) */
  const char *expected; /* the next firing, UTC; NULL = none */
} next_case;

static void run_next_cases(const char *group, const next_case *cases, size_t n) {
  int failures = 0;
  for (size_t i = 0; i < n; i++) {
    const next_case *k = &cases[i];
    oee_cron c;
    oee_error err = {0};
    if (oee_cron_parse(k->expr, &c, &err) != 0) {
      print_error("%s #%zu \"%s\": parse failed: %s\n", group, i, k->expr, err.message);
      failures++;
      continue;
    }
    oee_tz *tz = load(k->zone);
    int64_t got = oee_cron_next(&c, tz, parse_time(k->after), 0);
    oee_tz_free(tz);
    char text[OEE_CRON_TIME_SIZE] = "none";
    if (got != OEE_CRON_NONE) oee_cron_time_rfc3339(got, text);
    const char *want = k->expected ? k->expected : "none";
    if (strcmp(text, want) != 0) {
      print_error("%s #%zu \"%s\" in %s after %s: got %s, want %s\n", group, i, k->expr, k->zone,
                  k->after, text, want);
      failures++;
    }
  }
  assert_int_equal(failures, 0);
}

#define RUN(group, table) run_next_cases(group, table, sizeof(table) / sizeof(table[0]))

/* Single values, "*", steps over the whole field, a-b/n and a/n. */
static const next_case basic_cases[] = {
    {"* * * * *", "UTC", "2026-01-15T10:20:00Z", "2026-01-15T10:21:00Z"}, /* strictly after */
    {"* * * * *", "UTC", "2026-01-15T10:20:30Z", "2026-01-15T10:21:00Z"},
    {"* * * * *", "UTC", "2026-01-15T10:20:59Z", "2026-01-15T10:21:00Z"},
    {"* * * * *", "UTC", "2026-12-31T23:59:00Z", "2027-01-01T00:00:00Z"},
    {"* * * * *", "UTC", "1999-12-31T23:59:59Z", "2000-01-01T00:00:00Z"},
    /* before 1970 the instants are negative: no special case */
    {"* * * * *", "UTC", "1969-12-31T23:58:30Z", "1969-12-31T23:59:00Z"},
    {"0 0 1 1 *", "UTC", "1900-06-01T00:00:00Z", "1901-01-01T00:00:00Z"},
    {"0 * * * *", "UTC", "2026-01-15T10:00:00Z", "2026-01-15T11:00:00Z"},
    {"0 * * * *", "UTC", "2026-01-15T10:59:59Z", "2026-01-15T11:00:00Z"},
    {"0 * * * *", "UTC", "2026-01-15T23:30:00Z", "2026-01-16T00:00:00Z"},
    {"15 * * * *", "UTC", "2026-01-15T10:14:59Z", "2026-01-15T10:15:00Z"},
    {"15 * * * *", "UTC", "2026-01-15T10:15:00Z", "2026-01-15T11:15:00Z"},
    {"59 23 * * *", "UTC", "2026-01-15T23:59:00Z", "2026-01-16T23:59:00Z"},
    {"0 0 * * *", "UTC", "2026-01-31T12:00:00Z", "2026-02-01T00:00:00Z"},
    {"30 6 * * *", "UTC", "2026-01-15T06:29:00Z", "2026-01-15T06:30:00Z"},
    {"30 6 * * *", "UTC", "2026-01-15T06:30:01Z", "2026-01-16T06:30:00Z"},
    {"*/15 * * * *", "UTC", "2026-01-15T10:00:00Z", "2026-01-15T10:15:00Z"},
    {"*/15 * * * *", "UTC", "2026-01-15T10:46:00Z", "2026-01-15T11:00:00Z"},
    /* 0, 7, ..., 56: the step restarts at 0 each hour */
    {"*/7 * * * *", "UTC", "2026-01-15T10:50:00Z", "2026-01-15T10:56:00Z"},
    {"*/7 * * * *", "UTC", "2026-01-15T10:56:00Z", "2026-01-15T11:00:00Z"},
    {"*/59 * * * *", "UTC", "2026-01-15T10:00:00Z", "2026-01-15T10:59:00Z"},
    {"0 */6 * * *", "UTC", "2026-01-15T06:00:00Z", "2026-01-15T12:00:00Z"},
    {"0 */6 * * *", "UTC", "2026-01-15T18:00:00Z", "2026-01-16T00:00:00Z"},
    /* 0, 5, 10, 15, 20 */
    {"0 */5 * * *", "UTC", "2026-01-15T20:00:00Z", "2026-01-16T00:00:00Z"},
    {"10-20/5 * * * *", "UTC", "2026-01-15T10:15:00Z", "2026-01-15T10:20:00Z"},
    {"10-20/5 * * * *", "UTC", "2026-01-15T10:20:00Z", "2026-01-15T11:10:00Z"},
    {"10-22/5 * * * *", "UTC", "2026-01-15T10:20:00Z", "2026-01-15T11:10:00Z"},
    /* a/n runs to the field's end: 5, 25, 45 */
    {"5/20 * * * *", "UTC", "2026-01-15T10:25:00Z", "2026-01-15T10:45:00Z"},
    {"5/20 * * * *", "UTC", "2026-01-15T10:46:00Z", "2026-01-15T11:05:00Z"},
    /* 12, 16, 20 */
    {"0 12/4 * * *", "UTC", "2026-01-15T01:00:00Z", "2026-01-15T12:00:00Z"},
    {"0 12/4 * * *", "UTC", "2026-01-15T20:00:00Z", "2026-01-16T12:00:00Z"},
    /* days 1, 11, 21, 31 */
    {"0 0 */10 * *", "UTC", "2026-01-15T00:00:00Z", "2026-01-21T00:00:00Z"},
    {"0 0 */10 * *", "UTC", "2026-01-21T00:00:00Z", "2026-01-31T00:00:00Z"},
    {"0 0 */10 * *", "UTC", "2026-01-31T00:00:00Z", "2026-02-01T00:00:00Z"},
    /* months 1, 4, 7, 10 */
    {"0 0 1 */3 *", "UTC", "2026-02-10T00:00:00Z", "2026-04-01T00:00:00Z"},
    {"0 0 1 */3 *", "UTC", "2026-10-01T00:00:00Z", "2027-01-01T00:00:00Z"},
    {"0 0 1 1 *", "UTC", "2025-12-31T23:59:59Z", "2026-01-01T00:00:00Z"},
    {"0 0 1 1 *", "UTC", "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"},
    {"0 0 1 1 *", "UTC", "2026-01-01T00:00:00+01:00", "2026-01-01T00:00:00Z"},
    {"45 13 * * *", "UTC", "2026-01-15T14:00:00+01:00", "2026-01-15T13:45:00Z"},
    /* the end of the range: nothing after year 9999 */
    {"0 0 1 1 *", "UTC", "9998-06-01T00:00:00Z", "9999-01-01T00:00:00Z"},
    {"59 23 31 12 *", "UTC", "9999-12-31T00:00:00Z", "9999-12-31T23:59:00Z"},
    {"0 0 1 1 *", "UTC", "9999-01-01T00:00:00Z", NULL},
    {"* * * * *", "UTC", "9999-12-31T23:59:00Z", NULL},
};

/* Lists, ranges, month and weekday names (any case), 0 and 7 for Sunday. */
static const next_case list_cases[] = {
    {"0,30 * * * *", "UTC", "2026-01-15T10:00:00Z", "2026-01-15T10:30:00Z"},
    {"0,30 * * * *", "UTC", "2026-01-15T10:30:00Z", "2026-01-15T11:00:00Z"},
    {"5,10,50 * * * *", "UTC", "2026-01-15T10:10:00Z", "2026-01-15T10:50:00Z"},
    {"50,5,10 * * * *", "UTC", "2026-01-15T10:10:00Z", "2026-01-15T10:50:00Z"},
    {"58-59,0-4 * * * *", "UTC", "2026-01-15T10:57:00Z", "2026-01-15T10:58:00Z"},
    {"58-59,0-4 * * * *", "UTC", "2026-01-15T10:59:00Z", "2026-01-15T11:00:00Z"},
    {"58-59,0-4 * * * *", "UTC", "2026-01-15T11:04:00Z", "2026-01-15T11:58:00Z"},
    {"0 9-17 * * *", "UTC", "2026-01-15T08:59:00Z", "2026-01-15T09:00:00Z"},
    {"0 9-17 * * *", "UTC", "2026-01-15T12:30:00Z", "2026-01-15T13:00:00Z"},
    {"0 9-17 * * *", "UTC", "2026-01-15T17:00:00Z", "2026-01-16T09:00:00Z"},
    {"0 8,12-13,18 * * *", "UTC", "2026-01-15T12:00:00Z", "2026-01-15T13:00:00Z"},
    {"0 8,12-13,18 * * *", "UTC", "2026-01-15T13:00:00Z", "2026-01-15T18:00:00Z"},
    {"1,2,3-5,10-20/5 * * * *", "UTC", "2026-01-15T10:05:00Z", "2026-01-15T10:10:00Z"},
    {"0 0 1 JAN,JUL *", "UTC", "2026-02-01T00:00:00Z", "2026-07-01T00:00:00Z"},
    {"0 0 1 jan,jul *", "UTC", "2026-07-01T00:00:00Z", "2027-01-01T00:00:00Z"},
    {"0 0 1 Mar-May *", "UTC", "2026-03-15T00:00:00Z", "2026-04-01T00:00:00Z"},
    {"0 0 1 Mar-May *", "UTC", "2026-05-01T00:00:00Z", "2027-03-01T00:00:00Z"},
    {"0 0 15 DEC *", "UTC", "2026-12-15T00:00:00Z", "2027-12-15T00:00:00Z"},
    {"0 0 1 JAN-DEC/4 *", "UTC", "2026-05-01T00:00:00Z", "2026-09-01T00:00:00Z"}, /* 1, 5, 9 */
    {"0 0 1 FEB/5 *", "UTC", "2026-02-01T00:00:00Z", "2026-07-01T00:00:00Z"},     /* 2, 7, 12 */
    {"0 0 1 2-3,OCT *", "UTC", "2026-03-01T00:00:00Z", "2026-10-01T00:00:00Z"},
    /* 2026-01-14 is a Wednesday, the 16th a Friday, the 17th a Saturday */
    {"0 9 * * MON-FRI", "UTC", "2026-01-14T08:00:00Z", "2026-01-14T09:00:00Z"},
    {"0 9 * * MON-FRI", "UTC", "2026-01-16T09:00:00Z", "2026-01-19T09:00:00Z"},
    {"0 9 * * MON-FRI", "UTC", "2026-01-17T12:00:00Z", "2026-01-19T09:00:00Z"},
    {"0 9 * * mon-fri", "UTC", "2026-01-16T09:00:00Z", "2026-01-19T09:00:00Z"},
    {"0 9 * * 1-5", "UTC", "2026-01-16T09:00:00Z", "2026-01-19T09:00:00Z"},
    {"0 10 * * SAT,SUN", "UTC", "2026-01-12T00:00:00Z", "2026-01-17T10:00:00Z"},
    {"0 10 * * 6,0", "UTC", "2026-01-17T10:00:00Z", "2026-01-18T10:00:00Z"},
    {"0 10 * * 0", "UTC", "2026-01-12T00:00:00Z", "2026-01-18T10:00:00Z"},
    {"0 10 * * 7", "UTC", "2026-01-12T00:00:00Z", "2026-01-18T10:00:00Z"},
    {"0 10 * * SUN", "UTC", "2026-01-12T00:00:00Z", "2026-01-18T10:00:00Z"},
    {"0 10 * * 5-7", "UTC", "2026-01-17T10:00:00Z", "2026-01-18T10:00:00Z"},
    {"0 10 * * 5-7", "UTC", "2026-01-18T10:00:00Z", "2026-01-23T10:00:00Z"},
    {"0 10 * * 0-7", "UTC", "2026-01-15T10:00:00Z", "2026-01-16T10:00:00Z"},
    /* a step of 2 from Sunday: Sun, Tue, Thu, Sat; 1/2: Mon, Wed, Fri, Sun (7) */
    {"0 0 * * */2", "UTC", "2026-01-15T00:00:00Z", "2026-01-17T00:00:00Z"},
    {"0 0 * * 1/2", "UTC", "2026-01-16T00:00:00Z", "2026-01-18T00:00:00Z"},
    {"0 0 * * Wed", "UTC", "2026-01-15T00:00:00Z", "2026-01-21T00:00:00Z"},
    {"30 12 * FEB MON", "UTC", "2026-01-01T00:00:00Z", "2026-02-02T12:30:00Z"},
    {"30 12 * FEB MON", "UTC", "2026-02-23T12:30:00Z", "2027-02-01T12:30:00Z"},
    {"0 0 * * TUE,THU", "UTC", "2026-01-15T00:00:00Z", "2026-01-20T00:00:00Z"},
    {"\t0  9 \t* * 1  ", "UTC", "2026-01-12T09:00:00Z", "2026-01-19T09:00:00Z"},
};

/* Day of month and day of week together (Vixie cron): both restricted ->
 * either may match; a field starting with '*' -> both must match. */
static const next_case vixie_cases[] = {
    /* 13th or any Friday: Jan 2 and 9 are Fridays, the 13th a Tuesday */
    {"0 0 13 * FRI", "UTC", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"},
    {"0 0 13 * FRI", "UTC", "2026-01-02T00:00:00Z", "2026-01-09T00:00:00Z"},
    {"0 0 13 * FRI", "UTC", "2026-01-09T00:00:00Z", "2026-01-13T00:00:00Z"},
    {"0 0 13 * FRI", "UTC", "2026-01-13T00:00:00Z", "2026-01-16T00:00:00Z"},
    /* the 1st or a Monday: Feb 1 2026 is a Sunday */
    {"0 0 1 * MON", "UTC", "2026-01-26T00:00:00Z", "2026-02-01T00:00:00Z"},
    {"0 0 1 * MON", "UTC", "2026-02-01T00:00:00Z", "2026-02-02T00:00:00Z"},
    /* days 1-7 or Mondays */
    {"0 0 1-7 * MON", "UTC", "2026-01-07T00:00:00Z", "2026-01-12T00:00:00Z"},
    {"0 0 1-7 * MON", "UTC", "2026-01-26T00:00:00Z", "2026-02-01T00:00:00Z"},
    /* 1st, 15th or Wednesdays: Jan 1 is a Thursday */
    {"0 0 1,15 * WED", "UTC", "2026-01-01T00:00:00Z", "2026-01-07T00:00:00Z"},
    {"0 0 1,15 * WED", "UTC", "2026-01-14T00:00:00Z", "2026-01-15T00:00:00Z"},
    {"0 0 1,15 * WED", "UTC", "2026-01-15T00:00:00Z", "2026-01-21T00:00:00Z"},
    /* the 31st or Sundays: Jan 31 is a Saturday */
    {"0 0 31 * SUN", "UTC", "2026-01-25T00:00:00Z", "2026-01-31T00:00:00Z"},
    {"0 0 31 * SUN", "UTC", "2026-01-31T00:00:00Z", "2026-02-01T00:00:00Z"},
    /* "1-31" is restricted, so with a weekday it means every day */
    {"0 0 1-31 * 5", "UTC", "2026-01-15T00:00:00Z", "2026-01-16T00:00:00Z"},
    /* "*" day of month: the weekday alone decides */
    {"0 0 * * MON", "UTC", "2026-01-13T00:00:00Z", "2026-01-19T00:00:00Z"},
    /* "*" day of week: the day of month alone decides */
    {"0 0 15 * *", "UTC", "2026-01-15T00:00:00Z", "2026-02-15T00:00:00Z"},
    /* "*" + "/2" starts with '*': odd days that are also Mondays (Jan 5, 19; Feb 9, 23) */
    {"0 0 */2 * MON", "UTC", "2026-01-01T00:00:00Z", "2026-01-05T00:00:00Z"},
    {"0 0 */2 * MON", "UTC", "2026-01-05T00:00:00Z", "2026-01-19T00:00:00Z"},
    {"0 0 */2 * MON", "UTC", "2026-01-19T00:00:00Z", "2026-02-09T00:00:00Z"},
    /* days 1, 8, 15, 22, 29 that are Fridays: first in May 2026 (May 1) */
    {"0 0 */7 * 5", "UTC", "2026-01-01T00:00:00Z", "2026-05-01T00:00:00Z"},
    /* a weekday field starting with '*' is unrestricted too: the 10th, if even-numbered weekday
     * (Sun, Tue, Thu, Sat); Jan 10 2026 is a Saturday, Feb 10 a Tuesday, Mar 10 a Tuesday */
    {"0 0 10 * */2", "UTC", "2026-01-01T00:00:00Z", "2026-01-10T00:00:00Z"},
    {"0 0 10 * */2", "UTC", "2026-01-10T00:00:00Z", "2026-02-10T00:00:00Z"},
    /* Feb 29 or Mondays of February (Feb 2027 Mondays: 1, 8, 15, 22) */
    {"0 0 29 2 MON", "UTC", "2027-02-22T00:00:00Z", "2028-02-07T00:00:00Z"},
    {"0 0 29 2 MON", "UTC", "2028-02-28T00:00:00Z", "2028-02-29T00:00:00Z"},
    /* 13th or Friday in a zone: midnight CET is 23:00Z the day before */
    {"0 0 13 * FRI", "Europe/Ljubljana", "2026-01-01T00:00:00Z", "2026-01-01T23:00:00Z"},
    {"0 0 13 * FRI", "Europe/Ljubljana", "2026-01-09T00:00:00+01:00", "2026-01-12T23:00:00Z"},
};

/* February 29th: only in leap years (2100 is not one, 2000 was). */
static const next_case leap_cases[] = {
    {"0 0 29 2 *", "UTC", "2026-01-01T00:00:00Z", "2028-02-29T00:00:00Z"},
    {"0 0 29 2 *", "UTC", "2027-03-01T00:00:00Z", "2028-02-29T00:00:00Z"},
    {"0 0 29 2 *", "UTC", "2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"},
    {"0 0 29 2 *", "UTC", "2024-02-28T23:59:59Z", "2024-02-29T00:00:00Z"},
    {"0 0 29 2 *", "UTC", "1999-01-01T00:00:00Z", "2000-02-29T00:00:00Z"},
    {"0 0 29 2 *", "UTC", "2096-03-01T00:00:00Z", "2104-02-29T00:00:00Z"},
    {"* * 29 2 *", "UTC", "2028-02-29T23:59:00Z", "2032-02-29T00:00:00Z"},
    {"0 0 28-29 2 *", "UTC", "2027-02-28T00:00:00Z", "2028-02-28T00:00:00Z"},
    {"0 0 28-29 2 *", "UTC", "2028-02-28T00:00:00Z", "2028-02-29T00:00:00Z"},
    {"0 0 * 2 *", "UTC", "2027-02-28T00:00:00Z", "2028-02-01T00:00:00Z"},
    {"0 0 * 2 *", "UTC", "2028-02-28T00:00:00Z", "2028-02-29T00:00:00Z"},
    {"0 0 1 3 *", "UTC", "2028-02-29T12:00:00Z", "2028-03-01T00:00:00Z"},
    {"0 0 29 * *", "UTC", "2028-01-29T00:00:00Z", "2028-02-29T00:00:00Z"},
    {"0 0 29 * *", "UTC", "2026-01-29T00:00:00Z", "2026-03-29T00:00:00Z"},
    /* noon CET on Feb 29 is 11:00Z */
    {"0 12 29 FEB *", "Europe/Ljubljana", "2026-06-01T00:00:00Z", "2028-02-29T11:00:00Z"},
    /* Feb 29 that is a Sunday (2032, 2060, 2088, then 2128: 2100 is skipped) */
    {"0 0 29 2 */7", "UTC", "2026-01-01T00:00:00Z", "2032-02-29T00:00:00Z"},
    {"0 0 29 2 */7", "UTC", "2088-03-01T00:00:00Z", "2128-02-29T00:00:00Z"},
};

/* The 31st (and 30th, 29th) skip the months too short to have them. */
static const next_case short_month_cases[] = {
    {"0 0 31 * *", "UTC", "2026-01-31T00:00:00Z", "2026-03-31T00:00:00Z"}, /* no Feb 31 */
    {"0 0 31 * *", "UTC", "2026-03-31T00:00:00Z", "2026-05-31T00:00:00Z"}, /* no Apr 31 */
    {"0 0 31 * *", "UTC", "2026-04-15T00:00:00Z", "2026-05-31T00:00:00Z"},
    {"0 0 31 * *", "UTC", "2026-05-31T00:00:00Z", "2026-07-31T00:00:00Z"}, /* no Jun 31 */
    {"0 0 31 * *", "UTC", "2026-07-31T00:00:00Z", "2026-08-31T00:00:00Z"},
    {"0 0 31 * *", "UTC", "2026-08-31T00:00:00Z", "2026-10-31T00:00:00Z"}, /* no Sep 31 */
    {"0 0 31 * *", "UTC", "2026-10-31T00:00:00Z", "2026-12-31T00:00:00Z"}, /* no Nov 31 */
    {"0 0 31 * *", "UTC", "2026-12-31T00:00:00Z", "2027-01-31T00:00:00Z"},
    {"0 0 30 * *", "UTC", "2026-01-30T00:00:00Z", "2026-03-30T00:00:00Z"},
    {"0 0 30 * *", "UTC", "2028-01-30T00:00:00Z", "2028-03-30T00:00:00Z"},
    {"0 0 30,31 2,3 *", "UTC", "2026-02-01T00:00:00Z", "2026-03-30T00:00:00Z"},
    {"0 0 31 4,5 *", "UTC", "2026-01-01T00:00:00Z", "2026-05-31T00:00:00Z"},
    {"0 0 28-31 * *", "UTC", "2026-02-28T00:00:00Z", "2026-03-28T00:00:00Z"},
    {"0 0 31 * *", "Europe/Ljubljana", "2026-03-31T00:00:00+02:00", "2026-05-30T22:00:00Z"},
};

/* The macros, in UTC and in zones (also a +05:45 one). */
static const next_case macro_cases[] = {
    {"@hourly", "UTC", "2026-01-15T10:00:00Z", "2026-01-15T11:00:00Z"},
    {"@hourly", "UTC", "2026-01-15T10:59:59Z", "2026-01-15T11:00:00Z"},
    {"@daily", "UTC", "2026-01-15T00:00:00Z", "2026-01-16T00:00:00Z"},
    {"@midnight", "UTC", "2026-01-15T12:00:00Z", "2026-01-16T00:00:00Z"},
    {"@weekly", "UTC", "2026-01-15T00:00:00Z", "2026-01-18T00:00:00Z"}, /* Sunday */
    {"@weekly", "UTC", "2026-01-18T00:00:00Z", "2026-01-25T00:00:00Z"},
    {"@monthly", "UTC", "2026-01-15T00:00:00Z", "2026-02-01T00:00:00Z"},
    {"@monthly", "UTC", "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"},
    {"@yearly", "UTC", "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"},
    {"@annually", "UTC", "2026-06-01T00:00:00Z", "2027-01-01T00:00:00Z"},
    {"  @daily  ", "UTC", "2026-01-15T00:00:00Z", "2026-01-16T00:00:00Z"},
    {"@daily", "Europe/Ljubljana", "2026-01-15T00:00:00Z", "2026-01-15T23:00:00Z"},
    {"@daily", "America/New_York", "2026-07-01T12:00:00Z", "2026-07-02T04:00:00Z"},
    {"@weekly", "America/New_York", "2026-01-15T00:00:00Z", "2026-01-18T05:00:00Z"},
    {"@monthly", "Australia/Lord_Howe", "2026-01-15T00:00:00Z", "2026-01-31T13:00:00Z"},
    {"@hourly", "Australia/Lord_Howe", "2026-01-15T00:00:00Z", "2026-01-15T01:00:00Z"},
    {"@hourly", "Australia/Lord_Howe", "2026-07-15T00:00:00Z", "2026-07-15T00:30:00Z"},
    /* Kathmandu is +05:45: local hours start at :15 UTC */
    {"@hourly", "Asia/Kathmandu", "2026-01-15T10:00:00Z", "2026-01-15T10:15:00Z"},
    {"@yearly", "Asia/Kathmandu", "2026-06-01T00:00:00Z", "2026-12-31T18:15:00Z"},
};

/* Europe/Ljubljana, 2026. Spring: 02:00-02:59 on Mar 29 do not exist and
 * fire at 03:00 CEST (01:00Z). Autumn: 02:00-02:59 on Oct 25 happen twice
 * (CEST = 00:xxZ, then CET = 01:xxZ) and fire the first time only. */
static const next_case ljubljana_cases[] = {
    {"30 2 * * *", "Europe/Ljubljana", "2026-03-27T12:00:00Z", "2026-03-28T01:30:00Z"},
    {"30 2 * * *", "Europe/Ljubljana", "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z"},
    {"30 2 * * *", "Europe/Ljubljana", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"},
    {"0 2 * * *", "Europe/Ljubljana", "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z"},
    {"59 2 * * *", "Europe/Ljubljana", "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z"},
    {"0 3 * * *", "Europe/Ljubljana", "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z"},
    {"0 1 * * *", "Europe/Ljubljana", "2026-03-28T12:00:00Z", "2026-03-29T00:00:00Z"},
    {"0 4 * * *", "Europe/Ljubljana", "2026-03-28T12:00:00Z", "2026-03-29T02:00:00Z"},
    {"30 2 29 3 *", "Europe/Ljubljana", "2026-01-01T00:00:00Z", "2026-03-29T01:00:00Z"},
    {"30 2 * * SUN", "Europe/Ljubljana", "2026-03-23T00:00:00Z", "2026-03-29T01:00:00Z"},
    /* hourly across the gap: 01:00 CET, (02:00 ->) 03:00 CEST, 04:00 CEST */
    {"0 * * * *", "Europe/Ljubljana", "2026-03-29T01:00:00+01:00", "2026-03-29T01:00:00Z"},
    {"0 * * * *", "Europe/Ljubljana", "2026-03-29T03:00:00+02:00", "2026-03-29T02:00:00Z"},
    {"30 * * * *", "Europe/Ljubljana", "2026-03-29T01:30:00+01:00", "2026-03-29T01:00:00Z"},
    {"30 * * * *", "Europe/Ljubljana", "2026-03-29T03:00:00+02:00", "2026-03-29T01:30:00Z"},
    {"*/30 * * * *", "Europe/Ljubljana", "2026-03-29T01:30:00+01:00", "2026-03-29T01:00:00Z"},
    {"*/30 * * * *", "Europe/Ljubljana", "2026-03-29T03:00:00+02:00", "2026-03-29T01:30:00Z"},
    {"* * * * *", "Europe/Ljubljana", "2026-03-29T01:59:00+01:00", "2026-03-29T01:00:00Z"},
    {"* * * * *", "Europe/Ljubljana", "2026-03-29T03:00:00+02:00", "2026-03-29T01:01:00Z"},
    /* autumn: the first 02:30 (CEST) fires, the second (CET) does not */
    {"30 2 * * *", "Europe/Ljubljana", "2026-10-24T12:00:00Z", "2026-10-25T00:30:00Z"},
    {"30 2 * * *", "Europe/Ljubljana", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"},
    {"30 2 * * *", "Europe/Ljubljana", "2026-10-25T02:00:00+01:00", "2026-10-26T01:30:00Z"},
    {"15 2 * * *", "Europe/Ljubljana", "2026-10-25T02:20:00+02:00", "2026-10-26T01:15:00Z"},
    {"0 2 * * *", "Europe/Ljubljana", "2026-10-24T12:00:00Z", "2026-10-25T00:00:00Z"},
    {"0 3 * * *", "Europe/Ljubljana", "2026-10-24T12:00:00Z", "2026-10-25T02:00:00Z"},
    {"0 1 * * *", "Europe/Ljubljana", "2026-10-24T12:00:00Z", "2026-10-24T23:00:00Z"},
    {"30 * * * *", "Europe/Ljubljana", "2026-10-25T01:30:00+02:00", "2026-10-25T00:30:00Z"},
    {"30 * * * *", "Europe/Ljubljana", "2026-10-25T02:30:00+02:00", "2026-10-25T02:30:00Z"},
    {"0 * * * *", "Europe/Ljubljana", "2026-10-25T01:00:00+02:00", "2026-10-25T00:00:00Z"},
    {"0 * * * *", "Europe/Ljubljana", "2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00Z"},
    /* every minute: nothing fires while the repeated hour replays */
    {"* * * * *", "Europe/Ljubljana", "2026-10-25T02:59:00+02:00", "2026-10-25T02:00:00Z"},
    {"* * * * *", "Europe/Ljubljana", "2026-10-25T02:30:00+01:00", "2026-10-25T02:00:00Z"},
    {"* * * * *", "Europe/Ljubljana", "2026-10-25T03:00:00+01:00", "2026-10-25T02:01:00Z"},
    /* a day away from the changes nothing moves: noon is 11:00Z / 10:00Z */
    {"0 12 * * *", "Europe/Ljubljana", "2026-03-28T12:00:00Z", "2026-03-29T10:00:00Z"},
    {"0 12 * * *", "Europe/Ljubljana", "2026-10-24T12:00:00Z", "2026-10-25T11:00:00Z"},
    /* the same rules decades on, from the file's footer (2090: Mar 26, Oct 29) */
    {"30 2 * * *", "Europe/Ljubljana", "2090-03-25T12:00:00Z", "2090-03-26T01:00:00Z"},
    {"30 2 * * *", "Europe/Ljubljana", "2090-10-28T12:00:00Z", "2090-10-29T00:30:00Z"},
    {"30 2 * * *", "Europe/Ljubljana", "2090-10-29T00:30:00Z", "2090-10-30T01:30:00Z"},
};

/* America/New_York, 2026. Spring: 02:00-02:59 on Mar 8 do not exist and fire
 * at 03:00 EDT (07:00Z). Autumn: 01:00-01:59 on Nov 1 happen twice (EDT =
 * 05:xxZ, then EST = 06:xxZ) and fire the first time only. */
static const next_case new_york_cases[] = {
    {"30 2 * * *", "America/New_York", "2026-03-06T12:00:00Z", "2026-03-07T07:30:00Z"},
    {"30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z", "2026-03-08T07:00:00Z"},
    {"30 2 * * *", "America/New_York", "2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"},
    {"0 2 * * *", "America/New_York", "2026-03-07T12:00:00Z", "2026-03-08T07:00:00Z"},
    {"0 3 * * *", "America/New_York", "2026-03-07T12:00:00Z", "2026-03-08T07:00:00Z"},
    {"45 1 * * *", "America/New_York", "2026-03-07T12:00:00Z", "2026-03-08T06:45:00Z"},
    {"0 2 8 3 *", "America/New_York", "2026-01-01T00:00:00Z", "2026-03-08T07:00:00Z"},
    {"0 12 * * *", "America/New_York", "2026-03-07T12:00:00-05:00", "2026-03-08T16:00:00Z"},
    /* hourly across the gap: 01:00 EST (06:00Z), 03:00 EDT (07:00Z), 04:00 EDT */
    {"0 * * * *", "America/New_York", "2026-03-08T00:00:00-05:00", "2026-03-08T06:00:00Z"},
    {"0 * * * *", "America/New_York", "2026-03-08T01:00:00-05:00", "2026-03-08T07:00:00Z"},
    {"0 * * * *", "America/New_York", "2026-03-08T03:00:00-04:00", "2026-03-08T08:00:00Z"},
    {"*/20 * * * *", "America/New_York", "2026-03-08T01:40:00-05:00", "2026-03-08T07:00:00Z"},
    {"*/20 * * * *", "America/New_York", "2026-03-08T03:00:00-04:00", "2026-03-08T07:20:00Z"},
    {"* * * * *", "America/New_York", "2026-03-08T01:59:59-05:00", "2026-03-08T07:00:00Z"},
    /* autumn: the first 01:30 (EDT, 05:30Z) fires, the second (EST, 06:30Z) does not */
    {"30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z", "2026-11-01T05:30:00Z"},
    {"30 1 * * *", "America/New_York", "2026-11-01T01:30:00-04:00", "2026-11-02T06:30:00Z"},
    {"30 1 * * *", "America/New_York", "2026-11-01T01:15:00-05:00", "2026-11-02T06:30:00Z"},
    {"30 1 * * *", "America/New_York", "2026-11-01T01:29:00-04:00", "2026-11-01T05:30:00Z"},
    {"0 1 * * *", "America/New_York", "2026-10-31T12:00:00Z", "2026-11-01T05:00:00Z"},
    {"59 1 * * *", "America/New_York", "2026-10-31T12:00:00Z", "2026-11-01T05:59:00Z"},
    {"0 2 * * *", "America/New_York", "2026-10-31T12:00:00Z", "2026-11-01T07:00:00Z"},
    /* "30 * * * *": 00:30 EDT, 01:30 EDT, then 02:30 EST (no second 01:30) */
    {"30 * * * *", "America/New_York", "2026-11-01T00:00:00-04:00", "2026-11-01T04:30:00Z"},
    {"30 * * * *", "America/New_York", "2026-11-01T00:30:00-04:00", "2026-11-01T05:30:00Z"},
    {"30 * * * *", "America/New_York", "2026-11-01T01:30:00-04:00", "2026-11-01T07:30:00Z"},
    {"30 * * * *", "America/New_York", "2026-11-01T01:00:00-05:00", "2026-11-01T07:30:00Z"},
    {"0 * * * *", "America/New_York", "2026-11-01T00:00:00-04:00", "2026-11-01T05:00:00Z"},
    {"0 * * * *", "America/New_York", "2026-11-01T01:00:00-04:00", "2026-11-01T07:00:00Z"},
    {"* * * * *", "America/New_York", "2026-11-01T01:59:00-04:00", "2026-11-01T07:00:00Z"},
    {"* * * * *", "America/New_York", "2026-11-01T01:59:00-05:00", "2026-11-01T07:00:00Z"},
    {"0 0 * * *", "America/New_York", "2026-10-31T12:00:00Z", "2026-11-01T04:00:00Z"},
    {"0 0 * * *", "America/New_York", "2026-11-01T04:00:00Z", "2026-11-02T05:00:00Z"},
    {"0 12 * * *", "America/New_York", "2026-10-31T16:00:00Z", "2026-11-01T17:00:00Z"},
    /* 2025 (Mar 9, Nov 2) */
    {"30 2 * * *", "America/New_York", "2025-03-08T12:00:00Z", "2025-03-09T07:00:00Z"},
    {"30 1 * * *", "America/New_York", "2025-11-02T01:30:00-04:00", "2025-11-03T06:30:00Z"},
    /* past the file's last stored change, the footer's rule (2090: Mar 12, Nov 5) */
    {"30 2 * * *", "America/New_York", "2090-03-11T12:00:00Z", "2090-03-12T07:00:00Z"},
    {"30 1 * * *", "America/New_York", "2090-11-04T12:00:00Z", "2090-11-05T05:30:00Z"},
    {"30 1 * * *", "America/New_York", "2090-11-05T05:30:00Z", "2090-11-06T06:30:00Z"},
    {"0 * * * *", "America/New_York", "2090-11-05T01:00:00-04:00", "2090-11-05T07:00:00Z"},
};

/* Australia/Lord_Howe, 2026: a 30-minute shift. April 5: 01:30-01:59
 * happen twice (+11 = 14:30-14:59Z on the 4th, then +10:30 = 15:00-15:29Z);
 * October 4: 02:00-02:29 do not exist and fire at 02:30 +11 (15:30Z on the
 * 3rd). */
static const next_case lord_howe_cases[] = {
    {"0 2 * * *", "Australia/Lord_Howe", "2026-10-03T00:00:00Z", "2026-10-03T15:30:00Z"},
    {"15 2 * * *", "Australia/Lord_Howe", "2026-10-03T00:00:00Z", "2026-10-03T15:30:00Z"},
    {"29 2 * * *", "Australia/Lord_Howe", "2026-10-03T00:00:00Z", "2026-10-03T15:30:00Z"},
    {"30 2 * * *", "Australia/Lord_Howe", "2026-10-03T00:00:00Z", "2026-10-03T15:30:00Z"},
    {"45 2 * * *", "Australia/Lord_Howe", "2026-10-03T00:00:00Z", "2026-10-03T15:45:00Z"},
    {"0 2 * * *", "Australia/Lord_Howe", "2026-10-03T15:30:00Z", "2026-10-04T15:00:00Z"},
    {"0 1 * * *", "Australia/Lord_Howe", "2026-10-03T00:00:00Z", "2026-10-03T14:30:00Z"},
    {"0 * * * *", "Australia/Lord_Howe", "2026-10-04T01:00:00+10:30", "2026-10-03T15:30:00Z"},
    {"0 * * * *", "Australia/Lord_Howe", "2026-10-04T02:30:00+11:00", "2026-10-03T16:00:00Z"},
    {"30 * * * *", "Australia/Lord_Howe", "2026-10-04T01:00:00+10:30", "2026-10-03T15:00:00Z"},
    {"30 * * * *", "Australia/Lord_Howe", "2026-10-04T01:30:00+10:30", "2026-10-03T15:30:00Z"},
    {"30 * * * *", "Australia/Lord_Howe", "2026-10-04T02:30:00+11:00", "2026-10-03T16:30:00Z"},
    {"*/10 * * * *", "Australia/Lord_Howe", "2026-10-04T01:50:00+10:30", "2026-10-03T15:30:00Z"},
    {"*/10 * * * *", "Australia/Lord_Howe", "2026-10-04T02:30:00+11:00", "2026-10-03T15:40:00Z"},
    {"* * * * *", "Australia/Lord_Howe", "2026-10-04T01:59:00+10:30", "2026-10-03T15:30:00Z"},
    /* April: 01:15 is not repeated; 01:30-01:59 fire the first time (+11) */
    {"15 1 * * *", "Australia/Lord_Howe", "2026-04-04T00:00:00Z", "2026-04-04T14:15:00Z"},
    {"45 1 * * *", "Australia/Lord_Howe", "2026-04-04T00:00:00Z", "2026-04-04T14:45:00Z"},
    {"45 1 * * *", "Australia/Lord_Howe", "2026-04-05T01:45:00+11:00", "2026-04-05T15:15:00Z"},
    {"30 1 * * *", "Australia/Lord_Howe", "2026-04-05T01:30:00+11:00", "2026-04-05T15:00:00Z"},
    {"30 1 * * *", "Australia/Lord_Howe", "2026-04-05T01:40:00+10:30", "2026-04-05T15:00:00Z"},
    {"0 2 * * *", "Australia/Lord_Howe", "2026-04-04T00:00:00Z", "2026-04-04T15:30:00Z"},
    {"0,30 * * * *", "Australia/Lord_Howe", "2026-04-05T01:00:00+11:00", "2026-04-04T14:30:00Z"},
    {"0,30 * * * *", "Australia/Lord_Howe", "2026-04-05T01:30:00+11:00", "2026-04-04T15:30:00Z"},
    {"0,30 * * * *", "Australia/Lord_Howe", "2026-04-05T01:30:00+10:30", "2026-04-04T15:30:00Z"},
    {"* * * * *", "Australia/Lord_Howe", "2026-04-05T01:59:00+11:00", "2026-04-04T15:30:00Z"},
    {"* * * * *", "Australia/Lord_Howe", "2026-04-05T01:45:00+10:30", "2026-04-04T15:30:00Z"},
    {"0 12 * * *", "Australia/Lord_Howe", "2026-04-03T00:00:00Z", "2026-04-03T01:00:00Z"},
    {"0 12 * * *", "Australia/Lord_Howe", "2026-04-05T00:00:00Z", "2026-04-05T01:30:00Z"},
    {"@daily", "Australia/Lord_Howe", "2026-10-04T00:30:00+10:30", "2026-10-04T13:00:00Z"},
    /* the footer's rule in 2090 (Apr 2, Oct 1) */
    {"15 2 * * *", "Australia/Lord_Howe", "2090-09-30T00:00:00Z", "2090-09-30T15:30:00Z"},
    {"45 1 * * *", "Australia/Lord_Howe", "2090-04-02T01:45:00+11:00", "2090-04-02T15:15:00Z"},
};

static void test_basic_fields_and_steps(void **state) {
  (void)state;
  RUN("basic", basic_cases);
}

static void test_lists_ranges_names(void **state) {
  (void)state;
  RUN("lists", list_cases);
}

static void test_vixie_dom_or_dow(void **state) {
  (void)state;
  RUN("vixie", vixie_cases);
}

static void test_leap_days(void **state) {
  (void)state;
  RUN("leap", leap_cases);
}

static void test_short_months(void **state) {
  (void)state;
  RUN("short months", short_month_cases);
}

static void test_macros(void **state) {
  (void)state;
  RUN("macros", macro_cases);
}

static void test_dst_ljubljana(void **state) {
  (void)state;
  RUN("Ljubljana", ljubljana_cases);
}

static void test_dst_new_york(void **state) {
  (void)state;
  RUN("New York", new_york_cases);
}

static void test_dst_lord_howe(void **state) {
  (void)state;
  RUN("Lord Howe", lord_howe_cases);
}

/* ------------------------------------------------------------- @every */

typedef struct every_case {
  const char *expr;
  const char *zone;
  const char *created;
  const char *after;
  const char *expected;
} every_case;

static const every_case every_cases[] = {
    {"@every 90s", "UTC", "2026-01-15T10:00:00Z", "2026-01-15T10:00:00Z", "2026-01-15T10:01:30Z"},
    {"@every 90s", "UTC", "2026-01-15T10:00:00Z", "2026-01-15T10:01:30Z", "2026-01-15T10:03:00Z"},
    {"@every 90s", "UTC", "2026-01-15T10:00:00Z", "2026-01-15T10:02:59Z", "2026-01-15T10:03:00Z"},
    /* 3600 / 90 = 40 periods have passed: the 41st */
    {"@every 90s", "UTC", "2026-01-15T10:00:00Z", "2026-01-15T11:00:00Z", "2026-01-15T11:01:30Z"},
    {"@every 1s", "UTC", "2026-01-15T10:00:00Z", "2026-01-15T10:00:00Z", "2026-01-15T10:00:01Z"},
    {"@every 1s", "UTC", "2026-01-15T10:00:00Z", "2026-01-15T09:00:00Z", "2026-01-15T10:00:01Z"},
    /* 13:52:47 after creation = 55.5 periods of 15 min: the 56th, 14:00:00 after */
    {"@every 15m", "UTC", "2026-01-15T10:07:13Z", "2026-01-16T00:00:00Z", "2026-01-16T00:07:13Z"},
    {"@every 2h", "UTC", "2026-01-15T10:30:00Z", "2026-01-15T09:00:00Z", "2026-01-15T12:30:00Z"},
    {"@every 1h", "UTC", "2026-01-15T10:30:00Z", "2026-01-15T10:30:00Z", "2026-01-15T11:30:00Z"},
    {"@every 7h", "UTC", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "2026-01-02T04:00:00Z"},
    {"@every 7h", "UTC", "2026-01-01T00:00:00Z", "2026-01-02T04:00:00Z", "2026-01-02T11:00:00Z"},
    {"@every 45m", "UTC", "2026-01-15T10:00:00Z", "2026-01-15T10:00:00Z", "2026-01-15T10:45:00Z"},
    /* a year later, still on the creation grid: 8909 x 59 min */
    {"@every 59m", "UTC", "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z", "2027-01-01T00:31:00Z"},
    /* the last second of 1969 is instant -1, a firing like any other */
    {"@every 1s", "UTC", "1969-12-31T23:59:50Z", "1969-12-31T23:59:58Z", "1969-12-31T23:59:59Z"},
    {"@every 3600s", "UTC", "2026-01-15T10:00:05Z", "2026-01-15T12:00:00Z", "2026-01-15T12:00:05Z"},
    /* the zone plays no part: whole hours of real time across both changes */
    {"@every 1h", "America/New_York", "2026-11-01T04:00:00Z", "2026-11-01T05:30:00Z",
     "2026-11-01T06:00:00Z"},
    {"@every 1h", "America/New_York", "2026-03-08T05:00:00Z", "2026-03-08T06:59:59Z",
     "2026-03-08T07:00:00Z"},
    {"@every 24h", "Europe/Ljubljana", "2026-03-28T12:00:00Z", "2026-03-29T12:00:00Z",
     "2026-03-30T12:00:00Z"},
    {"@every 86400s", "Europe/Ljubljana", "2026-03-28T12:00:00Z", "2026-03-29T11:00:00Z",
     "2026-03-29T12:00:00Z"},
    {"@every 30m", "Australia/Lord_Howe", "2026-10-03T15:10:00Z", "2026-10-03T15:30:00Z",
     "2026-10-03T15:40:00Z"},
};

static void test_every_from_created(void **state) {
  (void)state;
  int failures = 0;
  for (size_t i = 0; i < sizeof(every_cases) / sizeof(every_cases[0]); i++) {
    const every_case *k = &every_cases[i];
    oee_cron c;
    assert_int_equal(oee_cron_parse(k->expr, &c, NULL), 0);
    assert_true(c.every_seconds > 0);
    oee_tz *tz = load(k->zone);
    int64_t got = oee_cron_next(&c, tz, parse_time(k->after), parse_time(k->created));
    oee_tz_free(tz);
    char text[OEE_CRON_TIME_SIZE] = "none";
    if (got != OEE_CRON_NONE) oee_cron_time_rfc3339(got, text);
    if (strcmp(text, k->expected) != 0) {
      print_error("every #%zu \"%s\" created %s after %s: got %s, want %s\n", i, k->expr,
                  k->created, k->after, text, k->expected);
      failures++;
    }
  }
  assert_int_equal(failures, 0);
}

/* Following a schedule's own firings never drifts: 1000 firings of @every
 * 7s later, the time is exactly created + 7000 s. */
static void test_every_chain_does_not_drift(void **state) {
  (void)state;
  oee_cron c;
  assert_int_equal(oee_cron_parse("@every 7s", &c, NULL), 0);
  int64_t created = parse_time("2026-01-15T10:00:00Z"), t = created;
  for (int i = 0; i < 1000; i++) t = oee_cron_next(&c, NULL, t, created);
  assert_int_equal(t, created + 7000);
}

/* Following "30 * * * *" firing by firing across New York's fall-back
 * gives each local time once: 00:30 EDT, 01:30 EDT, 02:30 EST, 03:30 EST;
 * and "0 * * * *" across the spring-forward: 00:00 EST, 01:00 EST, 03:00
 * EDT, 04:00 EDT (no 02:00). */
static void test_chains_across_changes(void **state) {
  (void)state;
  static const struct {
    const char *expr, *from, *firings[4];
  } chains[] = {
      {"30 * * * *",
       "2026-11-01T00:00:00-04:00",
       {"2026-11-01T04:30:00Z", "2026-11-01T05:30:00Z", "2026-11-01T07:30:00Z",
        "2026-11-01T08:30:00Z"}},
      {"0 * * * *",
       "2026-03-07T23:30:00-05:00",
       {"2026-03-08T05:00:00Z", "2026-03-08T06:00:00Z", "2026-03-08T07:00:00Z",
        "2026-03-08T08:00:00Z"}},
  };
  oee_tz *tz = load("America/New_York");
  for (size_t k = 0; k < 2; k++) {
    oee_cron c;
    assert_int_equal(oee_cron_parse(chains[k].expr, &c, NULL), 0);
    int64_t t = parse_time(chains[k].from);
    for (int i = 0; i < 4; i++) {
      char text[OEE_CRON_TIME_SIZE];
      t = oee_cron_next(&c, tz, t, 0);
      oee_cron_time_rfc3339(t, text);
      assert_string_equal(text, chains[k].firings[i]);
    }
  }
  oee_tz_free(tz);
}

/* ------------------------------------------------------ parse results */

static void test_parse_masks(void **state) {
  (void)state;
  oee_cron c, d;
  assert_int_equal(oee_cron_parse("*/15 0-23/6 1,15 JAN,jul 1-5", &c, NULL), 0);
  assert_int_equal(c.minutes, (1ull << 0) | (1ull << 15) | (1ull << 30) | (1ull << 45));
  assert_int_equal(c.hours, (1u << 0) | (1u << 6) | (1u << 12) | (1u << 18));
  assert_int_equal(c.days, (1u << 0) | (1u << 14));
  assert_int_equal(c.months, (1u << 0) | (1u << 6));
  assert_int_equal(c.weekdays, 0x3e);
  assert_int_equal(c.flags, OEE_CRON_DOM_RESTRICTED | OEE_CRON_DOW_RESTRICTED);
  assert_int_equal(c.every_seconds, 0);
  /* 0 and 7 are the same Sunday */
  assert_int_equal(oee_cron_parse("0 0 * * 7", &c, NULL), 0);
  assert_int_equal(oee_cron_parse("0 0 * * 0", &d, NULL), 0);
  assert_memory_equal(&c, &d, sizeof(c));
  assert_int_equal(c.weekdays, 1);
  assert_int_equal(c.flags, OEE_CRON_DOW_RESTRICTED);
  /* "*" everywhere: full masks, nothing restricted */
  assert_int_equal(oee_cron_parse("* * * * *", &c, NULL), 0);
  assert_int_equal(c.minutes, (1ull << 60) - 1);
  assert_int_equal(c.hours, (1u << 24) - 1);
  assert_int_equal(c.days, 0x7fffffffu);
  assert_int_equal(c.months, 0xfff);
  assert_int_equal(c.weekdays, 0x7f);
  assert_int_equal(c.flags, 0);
  /* "*" + "/2" counts as unrestricted for the day rule */
  assert_int_equal(oee_cron_parse("0 0 */2 * MON", &c, NULL), 0);
  assert_int_equal(c.flags, OEE_CRON_DOW_RESTRICTED);
  /* macros are their five-field equivalents */
  assert_int_equal(oee_cron_parse("@weekly", &c, NULL), 0);
  assert_int_equal(oee_cron_parse("0 0 * * SUN", &d, NULL), 0);
  assert_memory_equal(&c, &d, sizeof(c));
  assert_int_equal(oee_cron_parse("@midnight", &c, NULL), 0);
  assert_int_equal(oee_cron_parse("@daily", &d, NULL), 0);
  assert_memory_equal(&c, &d, sizeof(c));
  assert_int_equal(oee_cron_parse("@every 2h", &c, NULL), 0);
  assert_int_equal(c.every_seconds, 7200);
  assert_int_equal(oee_cron_parse("@every 15m", &c, NULL), 0);
  assert_int_equal(c.every_seconds, 900);
  assert_int_equal(oee_cron_parse("@every 876600h", &c, NULL), 0);
  assert_int_equal(c.every_seconds, 876600LL * 3600);
}

/* Each malformed expression and a fragment its message must contain. */
static const struct {
  const char *expr, *message;
} parse_errors[] = {
    {"61 * * * *", "cron field 1 (minute) \"61\": 61 is out of range 0-59"},
    {"*/0 * * * *", "cron field 1 (minute) \"*/0\": a step must be at least 1"},
    {"* * * * MON-FOO", "cron field 5 (day of week) \"MON-FOO\": unknown name \"FOO\""},
    {"", "cron: empty expression"},
    {"   \t ", "cron: empty expression"},
    {"* * * *", "cron: expected 5 fields, got 4"},
    {"* * * * * *", "cron: expected 5 fields, got 6"},
    {"@every 0s", "cron \"@every 0s\": the interval must be at least 1 second"},
    {"@every 1ms", "cron \"@every 1ms\": expected @every <N>s|m|h"},
    {"@every", "cron \"@every\": expected @every <N>s|m|h"},
    {"@every 5", "cron \"@every 5\": expected @every <N>s|m|h"},
    {"@every 5 s", "cron \"@every 5 s\": expected @every <N>s|m|h"},
    {"@every -5s", "cron \"@every -5s\": expected @every <N>s|m|h"},
    {"@every 1.5h", "cron \"@every 1.5h\": expected @every <N>s|m|h"},
    {"@every 876601h", "cron \"@every 876601h\": the interval must be at most 876600h"},
    {"@whenever", "cron \"@whenever\": unknown macro"},
    {"@reboot", "cron \"@reboot\": unknown macro"},
    {"@DAILY", "cron \"@DAILY\": unknown macro"},
    {"@daily 5", "cron \"@daily 5\": unexpected text after @daily"},
    {"1-70 * * * *", "cron field 1 (minute) \"1-70\": 70 is out of range 0-59"},
    {"5-1 * * * *", "cron field 1 (minute) \"5-1\": range 5-1 is reversed"},
    {"* * 0 * *", "cron field 3 (day of month) \"0\": 0 is out of range 1-31"},
    {"* * 32 * *", "cron field 3 (day of month) \"32\": 32 is out of range 1-31"},
    {"* * * 13 *", "cron field 4 (month) \"13\": 13 is out of range 1-12"},
    {"* * * 0 *", "cron field 4 (month) \"0\": 0 is out of range 1-12"},
    {"* * * * 8", "cron field 5 (day of week) \"8\": 8 is out of range 0-7"},
    {"* 24 * * *", "cron field 2 (hour) \"24\": 24 is out of range 0-23"},
    {"* * * DEC-JAN *", "cron field 4 (month) \"DEC-JAN\": range 12-1 is reversed"},
    {"* * * * FRI-MON", "cron field 5 (day of week) \"FRI-MON\": range 5-1 is reversed"},
    {"*/60 * * * *", "cron field 1 (minute) \"*/60\": a step must be at most 59"},
    {"* */x * * *", "cron field 2 (hour) \"*/x\": a step must be a number"},
    {"*/ * * * *", "cron field 1 (minute) \"*/\": a step must be a number"},
    {"1,,2 * * * *", "cron field 1 (minute) \"1,,2\": empty list item"},
    {"1, * * * *", "cron field 1 (minute) \"1,\": empty list item"},
    {"a * * * *", "cron field 1 (minute) \"a\": \"a\" is not a number"},
    {"MON * * * *", "cron field 1 (minute) \"MON\": \"MON\" is not a number"},
    {"* * * JANUARY *", "cron field 4 (month) \"JANUARY\": unknown name \"JANUARY\""},
    {"* * * * MON-", "cron field 5 (day of week) \"MON-\": expected a number or a name"},
    {"-1 * * * *", "cron field 1 (minute) \"-1\": expected a number"},
    {"1-2-3 * * * *", "cron field 1 (minute) \"1-2-3\": unexpected \"-3\""},
    {"? * * * *", "cron field 1 (minute) \"?\": expected a number"},
    {"** * * * *", "cron field 1 (minute) \"**\": unexpected \"*\""},
    {"99999999999 * * * *", "cron field 1 (minute) \"99999999999\": 99999999999 is out of range"},
    /* dates that never come */
    {"0 0 30 2 *", "cron \"0 0 30 2 *\": never fires"},
    {"0 0 31 4,6,9,11 *", "never fires"},
    {"0 0 31 2 *", "never fires"},
};

static void test_parse_errors(void **state) {
  (void)state;
  int failures = 0;
  for (size_t i = 0; i < sizeof(parse_errors) / sizeof(parse_errors[0]); i++) {
    oee_cron c = {.every_seconds = 12345};
    oee_error err = {0};
    int rc = oee_cron_parse(parse_errors[i].expr, &c, &err);
    if (rc != OEE_EINVAL || strstr(err.message, parse_errors[i].message) == NULL ||
        c.every_seconds != 12345) {
      print_error("parse \"%s\": rc %d, message \"%s\", want \"%s\"\n", parse_errors[i].expr, rc,
                  err.message, parse_errors[i].message);
      failures++;
    }
  }
  assert_int_equal(failures, 0);
  /* NULL is an empty expression; a NULL error pointer is allowed */
  oee_cron c;
  oee_error err = {0};
  assert_int_equal(oee_cron_parse(NULL, &c, &err), OEE_EINVAL);
  assert_string_equal(err.message, "cron: empty expression");
  assert_int_equal(oee_cron_parse("61 * * * *", &c, NULL), OEE_EINVAL);
}

/* A hand-made expression that can never match (parse refuses these) and
 * the ends of the supported range. */
static void test_no_firing(void **state) {
  (void)state;
  oee_cron c;
  assert_int_equal(oee_cron_parse("0 0 * * *", &c, NULL), 0);
  c.days = 1u << 29;  /* the 30th ... */
  c.months = 1u << 1; /* ... of February */
  assert_int_equal(oee_cron_next(&c, NULL, parse_time("2026-01-01T00:00:00Z"), 0), OEE_CRON_NONE);
  oee_tz *tz = load("America/New_York");
  assert_int_equal(oee_cron_next(&c, tz, parse_time("2026-01-01T00:00:00Z"), 0), OEE_CRON_NONE);
  assert_int_equal(oee_cron_parse("@every 1h", &c, NULL), 0);
  int64_t end = parse_time("9999-12-31T23:30:00Z");
  assert_int_equal(oee_cron_next(&c, tz, end, end), OEE_CRON_NONE);
  assert_int_equal(oee_cron_next(&c, tz, INT64_MAX, 0), OEE_CRON_NONE);
  oee_tz_free(tz);
  /* before year 1 counts as the start of year 1 */
  assert_int_equal(oee_cron_parse("0 0 1 1 *", &c, NULL), 0);
  char text[OEE_CRON_TIME_SIZE];
  oee_cron_time_rfc3339(oee_cron_next(&c, NULL, INT64_MIN, 0), text);
  assert_string_equal(text, "0001-01-01T00:00:00Z");
}

static void test_rfc3339(void **state) {
  (void)state;
  static const char *const times[] = {
      "1970-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "2000-02-29T12:34:56Z",
      "2026-03-08T07:00:00Z", "2100-03-01T00:00:00Z", "0001-01-01T00:00:00Z",
      "9999-12-31T23:59:59Z", "1600-02-29T00:00:00Z",
  };
  for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
    char text[OEE_CRON_TIME_SIZE];
    oee_cron_time_rfc3339(parse_time(times[i]), text);
    assert_string_equal(text, times[i]);
  }
  char text[OEE_CRON_TIME_SIZE];
  oee_cron_time_rfc3339(0, text);
  assert_string_equal(text, "1970-01-01T00:00:00Z");
  oee_cron_time_rfc3339(1700000000, text);
  assert_string_equal(text, "2023-11-14T22:13:20Z");
  oee_cron_time_rfc3339(INT64_MAX, text);
  assert_string_equal(text, "9999-12-31T23:59:59Z");
  oee_cron_time_rfc3339(INT64_MIN, text);
  assert_string_equal(text, "0001-01-01T00:00:00Z");
}

/* ---------------------------------------------------------------- zones */

static void test_tz_names_refused(void **state) {
  (void)state;
  static const char *const bad[] = {
      "../etc/passwd",
      "/etc/passwd",
      "Europe/../../etc/passwd",
      "Europe/..",
      "",
      "Europe Ljubljana",
      "Europe/Ljubljana\n",
      "Europe/Ljub*",
      "Mars/Olympus",
      "Europe/Ljubljana/",
      "Europe",
      "utc",
      "Europe\\Rome",
      "Europe/./Ljubljana",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    static char junk;
    oee_tz *tz = (oee_tz *)&junk; /* must be reset to NULL */
    oee_error err = {0};
    int rc = oee_tz_load(bad[i], &tz, &err);
    if (rc != OEE_EINVAL || tz != NULL || strstr(err.message, "unknown time_zone \"") == NULL) {
      fail_msg("zone \"%s\": rc %d, message \"%s\"", bad[i], rc, err.message);
    }
  }
  char long_name[400];
  memset(long_name, 'a', sizeof(long_name) - 1);
  long_name[sizeof(long_name) - 1] = '\0';
  oee_tz *tz;
  oee_error err = {0};
  assert_int_equal(oee_tz_load(long_name, &tz, &err), OEE_EINVAL);
  assert_non_null(strstr(err.message, "name too long"));
  assert_int_equal(oee_tz_load(NULL, &tz, &err), OEE_EINVAL);
  /* the messages say why */
  assert_int_equal(oee_tz_load("Mars/Olympus", &tz, &err), OEE_EINVAL);
  assert_string_equal(err.message,
                      "unknown time_zone \"Mars/Olympus\": no zone file "
                      "/usr/share/zoneinfo/Mars/Olympus");
  assert_int_equal(oee_tz_load("../etc/passwd", &tz, &err), OEE_EINVAL);
  assert_string_equal(err.message, "unknown time_zone \"../etc/passwd\": not a zone name (\"..\")");
  assert_int_equal(oee_tz_load("Europe/Ljubljana\n", &tz, &err), OEE_EINVAL);
  assert_non_null(strstr(err.message, "\"Europe/Ljubljana?\""));
}

static void test_tz_utc_without_file(void **state) {
  (void)state;
  oee_tz *tz = NULL;
  oee_error err = {0};
  assert_int_equal(oee__tz_load_dir("/nonexistent-zoneinfo", "UTC", &tz, &err), 0);
  assert_string_equal(oee_tz_name(tz), "UTC");
  assert_int_equal(oee_tz_offset(tz, 0), 0);
  assert_int_equal(oee_tz_offset(tz, parse_time("2026-07-01T00:00:00Z")), 0);
  int64_t out[2];
  assert_int_equal(oee_tz_local_to_utc(tz, 1234567, out), 1);
  assert_int_equal(out[0], 1234567);
  oee_cron c;
  assert_int_equal(oee_cron_parse("30 2 * * *", &c, NULL), 0);
  assert_int_equal(oee_cron_next(&c, tz, parse_time("2026-03-08T00:00:00Z"), 0),
                   parse_time("2026-03-08T02:30:00Z"));
  oee_tz_free(tz);
  /* other zones need their file */
  assert_int_equal(oee__tz_load_dir("/nonexistent-zoneinfo", "Europe/Ljubljana", &tz, &err),
                   OEE_EINVAL);
  assert_null(tz);
  assert_non_null(strstr(err.message, "unknown time_zone \"Europe/Ljubljana\": no zone file"));
  /* the real file works too */
  tz = load("UTC");
  assert_int_equal(oee_tz_offset(tz, parse_time("2090-07-01T00:00:00Z")), 0);
  oee_tz_free(tz);
  oee_tz_free(NULL);
}

/* The offset on both sides of each change (the change's own second has
 * the new offset), in 2026 from the files' tables and in 2090 from their
 * footers; and long before the first change (local mean time). */
static void test_tz_offsets(void **state) {
  (void)state;
  static const struct {
    const char *zone, *at;
    int32_t offset;
  } cases[] = {
      {"America/New_York", "2026-03-08T06:59:59Z", -18000},
      {"America/New_York", "2026-03-08T07:00:00Z", -14400},
      {"America/New_York", "2026-11-01T05:59:59Z", -14400},
      {"America/New_York", "2026-11-01T06:00:00Z", -18000},
      {"America/New_York", "2026-01-15T12:00:00Z", -18000},
      {"America/New_York", "2026-07-15T12:00:00Z", -14400},
      {"America/New_York", "2090-03-12T06:59:59Z", -18000},
      {"America/New_York", "2090-03-12T07:00:00Z", -14400},
      {"America/New_York", "2090-11-05T05:59:59Z", -14400},
      {"America/New_York", "2090-11-05T06:00:00Z", -18000},
      {"America/New_York", "2090-07-01T12:00:00Z", -14400},
      {"America/New_York", "2090-01-15T12:00:00Z", -18000},
      {"America/New_York", "1800-01-01T00:00:00Z", -17762}, /* LMT -4:56:02 */
      {"Europe/Ljubljana", "2026-03-29T00:59:59Z", 3600},
      {"Europe/Ljubljana", "2026-03-29T01:00:00Z", 7200},
      {"Europe/Ljubljana", "2026-10-25T00:59:59Z", 7200},
      {"Europe/Ljubljana", "2026-10-25T01:00:00Z", 3600},
      {"Europe/Ljubljana", "2090-03-26T00:59:59Z", 3600},
      {"Europe/Ljubljana", "2090-03-26T01:00:00Z", 7200},
      {"Europe/Ljubljana", "2090-10-29T00:59:59Z", 7200},
      {"Europe/Ljubljana", "2090-10-29T01:00:00Z", 3600},
      {"Australia/Lord_Howe", "2026-04-04T14:59:59Z", 39600},
      {"Australia/Lord_Howe", "2026-04-04T15:00:00Z", 37800},
      {"Australia/Lord_Howe", "2026-10-03T15:29:59Z", 37800},
      {"Australia/Lord_Howe", "2026-10-03T15:30:00Z", 39600},
      {"Australia/Lord_Howe", "2090-04-01T14:59:59Z", 39600},
      {"Australia/Lord_Howe", "2090-04-01T15:00:00Z", 37800},
      {"Australia/Lord_Howe", "2090-09-30T15:29:59Z", 37800},
      {"Australia/Lord_Howe", "2090-09-30T15:30:00Z", 39600},
      {"Asia/Kathmandu", "2026-01-15T00:00:00Z", 20700},
      {"UTC", "2026-03-29T01:00:00Z", 0},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    oee_tz *tz = load(cases[i].zone);
    int32_t got = oee_tz_offset(tz, parse_time(cases[i].at));
    oee_tz_free(tz);
    if (got != cases[i].offset) {
      fail_msg("%s at %s: offset %d, want %d", cases[i].zone, cases[i].at, got, cases[i].offset);
    }
  }
}

/* Local times to UTC: none in a gap, two in a repeated stretch. */
static void test_tz_local_to_utc(void **state) {
  (void)state;
  static const struct {
    const char *zone, *local;
    int count;
    const char *first, *second;
  } cases[] = {
      {"America/New_York", "2026-03-08T02:30:00", 0, NULL, NULL},
      {"America/New_York", "2026-03-08T02:00:00", 0, NULL, NULL},
      {"America/New_York", "2026-03-08T01:59:59", 1, "2026-03-08T06:59:59Z", NULL},
      {"America/New_York", "2026-03-08T03:00:00", 1, "2026-03-08T07:00:00Z", NULL},
      {"America/New_York", "2026-11-01T01:30:00", 2, "2026-11-01T05:30:00Z",
       "2026-11-01T06:30:00Z"},
      {"America/New_York", "2026-11-01T01:00:00", 2, "2026-11-01T05:00:00Z",
       "2026-11-01T06:00:00Z"},
      {"America/New_York", "2026-11-01T00:59:59", 1, "2026-11-01T04:59:59Z", NULL},
      {"America/New_York", "2026-11-01T02:00:00", 1, "2026-11-01T07:00:00Z", NULL},
      {"America/New_York", "2090-03-12T02:30:00", 0, NULL, NULL},
      {"America/New_York", "2090-11-05T01:30:00", 2, "2090-11-05T05:30:00Z",
       "2090-11-05T06:30:00Z"},
      {"Europe/Ljubljana", "2026-03-29T02:00:00", 0, NULL, NULL},
      {"Europe/Ljubljana", "2026-03-29T03:00:00", 1, "2026-03-29T01:00:00Z", NULL},
      {"Europe/Ljubljana", "2026-10-25T02:30:00", 2, "2026-10-25T00:30:00Z",
       "2026-10-25T01:30:00Z"},
      {"Europe/Ljubljana", "2026-10-25T03:00:00", 1, "2026-10-25T02:00:00Z", NULL},
      {"Australia/Lord_Howe", "2026-10-04T02:15:00", 0, NULL, NULL},
      {"Australia/Lord_Howe", "2026-10-04T02:30:00", 1, "2026-10-03T15:30:00Z", NULL},
      {"Australia/Lord_Howe", "2026-04-05T01:45:00", 2, "2026-04-04T14:45:00Z",
       "2026-04-04T15:15:00Z"},
      {"Australia/Lord_Howe", "2026-04-05T01:29:59", 1, "2026-04-04T14:29:59Z", NULL},
      {"Australia/Lord_Howe", "2026-04-05T02:00:00", 1, "2026-04-04T15:30:00Z", NULL},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    oee_tz *tz = load(cases[i].zone);
    int64_t out[2] = {0, 0}, local = parse_time(cases[i].local);
    int n = oee_tz_local_to_utc(tz, local, out);
    if (n != cases[i].count || (n > 0 && out[0] != parse_time(cases[i].first)) ||
        (n > 1 && out[1] != parse_time(cases[i].second))) {
      fail_msg("%s local %s: %d instants (%lld, %lld)", cases[i].zone, cases[i].local, n,
               (long long)out[0], (long long)out[1]);
    }
    /* when it first shows that time or later: the first instant, or the gap's end */
    int64_t reached = oee_tz_local_reached_at(tz, local);
    if (n > 0) {
      assert_int_equal(reached, out[0]);
    } else {
      assert_int_equal(oee_tz_offset(tz, reached - 1) < oee_tz_offset(tz, reached), 1);
      assert_true(reached - 1 + oee_tz_offset(tz, reached - 1) < local);
      assert_true(reached + oee_tz_offset(tz, reached) > local);
    }
    oee_tz_free(tz);
  }
}

/* In the repeated hour the wall clock shows times it has shown before: the
 * latest time shown stays at the last second before the change. */
static void test_tz_local_max_shown(void **state) {
  (void)state;
  oee_tz *tz = load("America/New_York");
  assert_int_equal(oee_tz_local_max_shown(tz, parse_time("2026-11-01T05:30:00Z")),
                   parse_time("2026-11-01T01:30:00"));
  assert_int_equal(oee_tz_local_max_shown(tz, parse_time("2026-11-01T06:30:00Z")),
                   parse_time("2026-11-01T01:59:59"));
  assert_int_equal(oee_tz_local_max_shown(tz, parse_time("2026-11-01T06:59:59Z")),
                   parse_time("2026-11-01T01:59:59"));
  assert_int_equal(oee_tz_local_max_shown(tz, parse_time("2026-11-01T07:00:00Z")),
                   parse_time("2026-11-01T02:00:00"));
  assert_int_equal(oee_tz_local_max_shown(tz, parse_time("2026-03-08T07:00:00Z")),
                   parse_time("2026-03-08T03:00:00"));
  oee_tz_free(tz);
}

/* ------------------------------------------- hand-made TZif files */

typedef struct tzif_spec {
  int version; /* 1 or 2 */
  size_t n;
  const int64_t *at;
  const unsigned char *idx;
  size_t ntypes;
  const int32_t *offsets;
  const char *footer; /* v2: the TZ string ("" = none) */
} tzif_spec;

static unsigned char *put32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24);
  p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
  return p + 4;
}

static unsigned char *put_header(unsigned char *p, int version, uint32_t timecnt,
                                 uint32_t typecnt) {
  memset(p, 0, 44);
  memcpy(p, "TZif", 4);
  p[4] = version == 1 ? 0 : (unsigned char)('0' + version);
  put32(p + 32, timecnt);
  put32(p + 36, typecnt);
  put32(p + 40, 4); /* charcnt: one abbreviation, "ABC\0" */
  return p + 44;
}

/* Writes a TZif file for `s` into buf; returns its length. */
static size_t make_tzif(const tzif_spec *s, unsigned char *buf) {
  unsigned char *p = buf;
  int tsize = s->version == 1 ? 4 : 8;
  if (s->version >= 2) { /* a minimal 32-bit part first: no changes, one type */
    p = put_header(p, s->version, 0, 1);
    memset(p, 0, 6);
    p += 6;
    memcpy(p, "ABC", 4);
    p += 4;
  }
  p = put_header(p, s->version, (uint32_t)s->n, (uint32_t)s->ntypes);
  for (size_t i = 0; i < s->n; i++) {
    if (tsize == 8) p = put32(p, (uint32_t)((uint64_t)s->at[i] >> 32));
    p = put32(p, (uint32_t)s->at[i]);
  }
  for (size_t i = 0; i < s->n; i++) *p++ = s->idx[i];
  for (size_t i = 0; i < s->ntypes; i++) {
    p = put32(p, (uint32_t)s->offsets[i]);
    *p++ = 0; /* isdst */
    *p++ = 0; /* abbreviation index */
  }
  memcpy(p, "ABC", 4);
  p += 4;
  if (s->version >= 2) {
    size_t len = strlen(s->footer);
    *p++ = '\n';
    memcpy(p, s->footer, len);
    p += len;
    *p++ = '\n';
  }
  return (size_t)(p - buf);
}

static oee_tz *tz_from(const tzif_spec *s) {
  unsigned char buf[1024];
  size_t len = make_tzif(s, buf);
  oee_tz *tz = NULL;
  oee_error err = {0};
  if (oee__tz_parse("test", buf, len, &tz, &err) != 0) fail_msg("parse: %s", err.message);
  return tz;
}

static const int32_t one_offset_zero[] = {0};

static oee_tz *footer_zone(const char *footer) {
  tzif_spec s = {2, 0, NULL, NULL, 1, one_offset_zero, footer};
  return tz_from(&s);
}

/* A file with no changes and only a footer gives the footer's rule at
 * every instant: New York's rule matches the real zone in 2026. */
static void test_tzif_footer_only(void **state) {
  (void)state;
  oee_tz *ny = footer_zone("EST5EDT,M3.2.0,M11.1.0");
  oee_tz *real = load("America/New_York");
  int64_t from = parse_time("2025-06-01T00:00:00Z");
  for (int64_t t = from; t < from + 2 * 366 * 86400; t += 1800) {
    assert_int_equal(oee_tz_offset(ny, t), oee_tz_offset(real, t));
  }
  oee_cron c;
  assert_int_equal(oee_cron_parse("30 2 * * *", &c, NULL), 0);
  assert_int_equal(oee_cron_next(&c, ny, parse_time("2026-03-07T12:00:00Z"), 0),
                   parse_time("2026-03-08T07:00:00Z"));
  oee_tz_free(real);
  oee_tz_free(ny);
  /* Lord Howe's string: signed, non-hour offsets, 30-minute daylight shift */
  oee_tz *lh = footer_zone("<+1030>-10:30<+11>-11,M10.1.0,M4.1.0");
  assert_int_equal(oee_tz_offset(lh, parse_time("2026-10-03T15:29:59Z")), 37800);
  assert_int_equal(oee_tz_offset(lh, parse_time("2026-10-03T15:30:00Z")), 39600);
  assert_int_equal(oee_tz_offset(lh, parse_time("2026-04-04T14:59:59Z")), 39600);
  assert_int_equal(oee_tz_offset(lh, parse_time("2026-04-04T15:00:00Z")), 37800);
  oee_tz_free(lh);
}

/* The J (1..365, no Feb 29) and plain (0..365, counting Feb 29) day forms:
 * +2 standard, +3 daylight from J60 (always March 1st) at 02:00 to day 300
 * at 03:00 daylight (Oct 28 in 2026, Oct 27 in leap 2028). */
static void test_tzif_julian_days(void **state) {
  (void)state;
  oee_tz *tz = footer_zone("XST-2XDT,J60,300/3");
  static const struct {
    const char *at;
    int32_t offset;
  } cases[] = {
      {"2026-03-01T00:00:00+02:00", 7200},  {"2026-03-01T01:59:59+02:00", 7200},
      {"2026-03-01T02:00:00+02:00", 10800}, {"2026-10-28T02:59:59+03:00", 10800},
      {"2026-10-28T03:00:00+03:00", 7200},  {"2028-02-29T12:00:00+02:00", 7200},
      {"2028-03-01T02:00:00+02:00", 10800}, {"2028-10-27T02:59:59+03:00", 10800},
      {"2028-10-27T03:00:00+03:00", 7200},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    int32_t got = oee_tz_offset(tz, parse_time(cases[i].at));
    if (got != cases[i].offset) fail_msg("%s: %d, want %d", cases[i].at, got, cases[i].offset);
  }
  oee_tz_free(tz);
  /* J59 is Feb 28 and J60 March 1st whether or not the year is leap */
  tz = footer_zone("XST-2XDT,J59/0,J305/0");
  assert_int_equal(oee_tz_offset(tz, parse_time("2028-02-28T00:00:00+02:00")), 10800);
  assert_int_equal(oee_tz_offset(tz, parse_time("2028-02-27T23:59:59+02:00")), 7200);
  oee_tz_free(tz);
}

/* Negative daylight saving (Dublin: winter is the "daylight" rule) and
 * daylight time all year. */
static void test_tzif_unusual_rules(void **state) {
  (void)state;
  oee_tz *tz = footer_zone("IST-1GMT0,M10.5.0,M3.5.0/1");
  assert_int_equal(oee_tz_offset(tz, parse_time("2026-07-01T00:00:00Z")), 3600);
  assert_int_equal(oee_tz_offset(tz, parse_time("2026-01-01T00:00:00Z")), 0);
  assert_int_equal(oee_tz_offset(tz, parse_time("2026-03-29T00:59:59Z")), 0);
  assert_int_equal(oee_tz_offset(tz, parse_time("2026-03-29T01:00:00Z")), 3600);
  assert_int_equal(oee_tz_offset(tz, parse_time("2026-10-25T00:59:59Z")), 3600);
  assert_int_equal(oee_tz_offset(tz, parse_time("2026-10-25T01:00:00Z")), 0);
  oee_tz_free(tz);
  tz = footer_zone("EST5EDT,0/0,J365/25");
  for (int64_t t = parse_time("2025-12-30T00:00:00Z"); t < parse_time("2027-01-03T00:00:00Z");
       t += 3 * 3600 + 17) {
    assert_int_equal(oee_tz_offset(tz, t), -14400);
  }
  oee_tz_free(tz);
  /* a fixed offset with no rule, and no footer at all */
  tz = footer_zone("<+0545>-5:45");
  assert_int_equal(oee_tz_offset(tz, 0), 20700);
  oee_tz_free(tz);
  int32_t offs[] = {3600};
  tzif_spec s = {2, 0, NULL, NULL, 1, offs, ""};
  tz = tz_from(&s);
  assert_int_equal(oee_tz_offset(tz, parse_time("2090-01-01T00:00:00Z")), 3600);
  oee_tz_free(tz);
}

/* Stored changes: before the first, type 0; after the last (version 1 has
 * no footer), the last one's offset; a v2 table then its footer. */
static void test_tzif_tables(void **state) {
  (void)state;
  int64_t at[] = {parse_time("2000-01-01T00:00:00Z"), parse_time("2010-01-01T00:00:00Z")};
  unsigned char idx[] = {1, 2};
  int32_t offs[] = {1000, 3600, -7200};
  tzif_spec v1 = {1, 2, at, idx, 3, offs, NULL};
  oee_tz *tz = tz_from(&v1);
  assert_int_equal(oee_tz_offset(tz, parse_time("1999-12-31T23:59:59Z")), 1000);
  assert_int_equal(oee_tz_offset(tz, parse_time("2000-01-01T00:00:00Z")), 3600);
  assert_int_equal(oee_tz_offset(tz, parse_time("2009-12-31T23:59:59Z")), 3600);
  assert_int_equal(oee_tz_offset(tz, parse_time("2010-01-01T00:00:00Z")), -7200);
  assert_int_equal(oee_tz_offset(tz, parse_time("2090-01-01T00:00:00Z")), -7200);
  /* 2010-01-01: +1 h -> -2 h, the clock went back 3 hours, which are repeated */
  int64_t out[2];
  assert_int_equal(oee_tz_local_to_utc(tz, parse_time("2009-12-31T23:00:00"), out), 2);
  assert_int_equal(out[0], parse_time("2009-12-31T22:00:00Z"));
  assert_int_equal(out[1], parse_time("2010-01-01T01:00:00Z"));
  oee_tz_free(tz);
  int32_t ny[] = {-18000, -14400};
  int64_t at2[] = {parse_time("2026-03-08T07:00:00Z"), parse_time("2026-11-01T06:00:00Z")};
  unsigned char idx2[] = {1, 0};
  tzif_spec v2 = {2, 2, at2, idx2, 2, ny, "EST5EDT,M3.2.0,M11.1.0"};
  tz = tz_from(&v2);
  assert_int_equal(oee_tz_offset(tz, parse_time("2026-01-01T00:00:00Z")), -18000);
  assert_int_equal(oee_tz_offset(tz, parse_time("2026-07-01T00:00:00Z")), -14400);
  assert_int_equal(oee_tz_offset(tz, parse_time("2026-12-01T00:00:00Z")), -18000);
  assert_int_equal(oee_tz_offset(tz, parse_time("2027-03-14T06:59:59Z")), -18000);
  assert_int_equal(oee_tz_offset(tz, parse_time("2027-03-14T07:00:00Z")), -14400);
  oee_tz_free(tz);
}

/* Broken files are refused with a reason, never read past their end. */
static void test_tzif_broken(void **state) {
  (void)state;
  unsigned char buf[1024];
  int64_t at[] = {0, 100};
  unsigned char idx[] = {0, 1};
  int32_t offs[] = {0, 3600};
  tzif_spec good = {2, 2, at, idx, 2, offs, "UTC0"};
  size_t len = make_tzif(&good, buf);
  oee_tz *tz = NULL;
  oee_error err = {0};
  assert_int_equal(oee__tz_parse("t", buf, len, &tz, &err), 0);
  oee_tz_free(tz);
  /* every truncation */
  for (size_t cut = 0; cut < len; cut++) {
    assert_int_equal(oee__tz_parse("t", buf, cut, &tz, &err), OEE_EINVAL);
    assert_null(tz);
    assert_non_null(strstr(err.message, "time_zone \"t\": not a valid zone file"));
  }
  static const char *const bad_footers[] = {
      "EST",
      "EST5EDT,M3.2.0",
      "EST5EDT,M13.2.0,M11.1.0",
      "EST5EDT,M3.6.0,M11.1.0",
      "E5",
      "EST5EDT,M3.2.7,M11.1.0",
      "EST25",
      "EST5EDT,J0,J100",
      "<E>5",
      "EST5EDT,M3.2.0/200,M11.1.0",
      "EST5 ",
      "EST5EDT,366,1",
  };
  for (size_t i = 0; i < sizeof(bad_footers) / sizeof(bad_footers[0]); i++) {
    tzif_spec s = good;
    s.footer = bad_footers[i];
    len = make_tzif(&s, buf);
    if (oee__tz_parse("t", buf, len, &tz, &err) != OEE_EINVAL) {
      fail_msg("footer \"%s\" accepted", bad_footers[i]);
    }
    assert_non_null(strstr(err.message, "bad TZ string"));
  }
  /* changes out of order, a bad type index, a bad magic, a bad version */
  int64_t backwards[] = {100, 0};
  tzif_spec s = good;
  s.at = backwards;
  len = make_tzif(&s, buf);
  assert_int_equal(oee__tz_parse("t", buf, len, &tz, &err), OEE_EINVAL);
  assert_non_null(strstr(err.message, "out of order"));
  unsigned char bad_idx[] = {0, 5};
  s = good;
  s.idx = bad_idx;
  len = make_tzif(&s, buf);
  assert_int_equal(oee__tz_parse("t", buf, len, &tz, &err), OEE_EINVAL);
  len = make_tzif(&good, buf);
  buf[0] = 'X';
  assert_int_equal(oee__tz_parse("t", buf, len, &tz, &err), OEE_EINVAL);
  len = make_tzif(&good, buf);
  buf[4] = '9';
  assert_int_equal(oee__tz_parse("t", buf, len, &tz, &err), OEE_EINVAL);
  /* an offset of more than a day */
  int32_t huge[] = {0, 100000};
  s = good;
  s.offsets = huge;
  len = make_tzif(&s, buf);
  assert_int_equal(oee__tz_parse("t", buf, len, &tz, &err), OEE_EINVAL);
  /* leap-second zones */
  assert_int_equal(oee_tz_load("right/UTC", &tz, &err), OEE_EINVAL);
  assert_non_null(strstr(err.message, "leap seconds"));
}

/* Twelve zones of the system's database, picked for unusual offsets and
 * rules (45- and 30-minute offsets, Lord Howe's 30-minute DST, Troll,
 * Casablanca, Dublin, the extreme Etc offsets, a posix/ name), load and
 * keep their names. Not every zone: all of them were compared with
 * Python's zoneinfo once, when tz.c was written (README). */
static void test_tz_known_zones_load(void **state) {
  (void)state;
  static const char *const names[] = {
      "Europe/Ljubljana",  "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu",
      "Pacific/Chatham",   "America/St_Johns", "Europe/Dublin",       "Antarctica/Troll",
      "Africa/Casablanca", "Etc/GMT+12",       "Etc/GMT-14",          "posix/Europe/Paris",
  };
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    oee_tz *tz = load(names[i]);
    assert_string_equal(oee_tz_name(tz), names[i]);
    oee_tz_free(tz);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_basic_fields_and_steps),
      cmocka_unit_test(test_lists_ranges_names),
      cmocka_unit_test(test_vixie_dom_or_dow),
      cmocka_unit_test(test_leap_days),
      cmocka_unit_test(test_short_months),
      cmocka_unit_test(test_macros),
      cmocka_unit_test(test_every_from_created),
      cmocka_unit_test(test_every_chain_does_not_drift),
      cmocka_unit_test(test_dst_ljubljana),
      cmocka_unit_test(test_dst_new_york),
      cmocka_unit_test(test_dst_lord_howe),
      cmocka_unit_test(test_chains_across_changes),
      cmocka_unit_test(test_parse_masks),
      cmocka_unit_test(test_parse_errors),
      cmocka_unit_test(test_no_firing),
      cmocka_unit_test(test_rfc3339),
      cmocka_unit_test(test_tz_names_refused),
      cmocka_unit_test(test_tz_utc_without_file),
      cmocka_unit_test(test_tz_offsets),
      cmocka_unit_test(test_tz_local_to_utc),
      cmocka_unit_test(test_tz_local_max_shown),
      cmocka_unit_test(test_tzif_footer_only),
      cmocka_unit_test(test_tzif_julian_days),
      cmocka_unit_test(test_tzif_unusual_rules),
      cmocka_unit_test(test_tzif_tables),
      cmocka_unit_test(test_tzif_broken),
      cmocka_unit_test(test_tz_known_zones_load),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
