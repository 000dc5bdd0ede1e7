/*
 * cron.h - cron expressions for schedules: parsing, and the next firing
 * time in a time zone. Pure functions: no clock, no threads, no state.
 *
 * Expressions
 *  - Five fields separated by spaces or tabs: minute (0-59), hour (0-23),
 *    day of month (1-31), month (1-12 or JAN-DEC), day of week (0-7 or
 *    SUN-SAT; 0 and 7 are both Sunday). Names are three letters, in any
 *    case. Each field is a comma-separated list of items, each item one of
 *    `*`, `a`, `a-b` (a <= b, a reversed range is refused), optionally
 *    followed by a step `/n` (1 <= n <= the field's largest value): `*`/n
 *    steps from the field's first value, `a-b/n` from a up to b, `a/n` from
 *    a up to the field's last value (7 for the day of week, i.e. Sunday).
 *  - Macros (lower case): @hourly = "0 * * * *", @daily and @midnight =
 *    "0 0 * * *", @weekly = "0 0 * * 0", @monthly = "0 0 1 * *", @yearly and
 *    @annually = "0 0 1 1 *", and `@every <N>s|m|h` (N a positive whole
 *    number of seconds, minutes or hours; at least 1 s in all).
 *  - An expression that can never fire (e.g. "0 0 30 2 *") is refused.
 *
 * Firing times
 *  - Five-field expressions are read on the zone's wall clock. Days follow
 *    Vixie cron (and cronie's crontab(5)): when both the day-of-month and
 *    the day-of-week fields are restricted, i.e. do not start with `*`, a
 *    day matches if either field matches; otherwise it must match both
 *    (a field that starts with `*`, such as "*" or "`*`/2", counts as
 *    unrestricted for this rule but still matches only its own values).
 *  - Each matching local time fires once, at the first instant the wall
 *    clock shows it or a later time: a time skipped by a spring-forward
 *    change fires when the gap ends (02:30 on New York's change day fires at
 *    03:00 local, the instant of the change), and a time repeated by a
 *    fall-back change fires at its first occurrence only. Several skipped
 *    times therefore share one firing.
 *  - `@every N` fires at created + N, created + 2N, ... (UTC seconds, in any
 *    zone), computed from `created` so that it never drifts.
 */
#ifndef OEE_CRON_H
#define OEE_CRON_H

#include <stdint.h>

#include "core/oee.h"
#include "core/tz.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Flags of oee_cron. */
enum {
  OEE_CRON_DOM_RESTRICTED = 1 << 0, /* the day-of-month field does not start with '*' */
  OEE_CRON_DOW_RESTRICTED = 1 << 1, /* the day-of-week field does not start with '*' */
};

/*
 * A parsed expression: a plain value, no allocation. When every_seconds is
 * 0 the masks describe a five-field expression: bit i set = value matches.
 */
typedef struct oee_cron {
  uint64_t minutes;      /* bits 0..59 */
  uint32_t hours;        /* bits 0..23 */
  uint32_t days;         /* bits 0..30 for days 1..31 */
  uint16_t months;       /* bits 0..11 for January..December */
  uint8_t weekdays;      /* bits 0..6 for Sunday..Saturday */
  uint8_t flags;         /* OEE_CRON_* */
  int64_t every_seconds; /* > 0 for `@every`, then the masks are unused */
} oee_cron;

/*
 * Parses `expr` into *out. Returns 0, or OEE_EINVAL with a message that
 * names the field and the reason, e.g.
 *   cron field 1 (minute) "61": 61 is out of range 0-59
 *   cron field 5 (day of week) "MON-FOO": unknown name "FOO"
 *   cron: expected 5 fields, got 4
 *   cron "@every 1ms": ...
 * *out is unchanged on error.
 */
int oee_cron_parse(const char *expr, oee_cron *out, oee_error *err);

/* What oee_cron_next() returns when there is no next firing (not -1: that
 * is an instant, 1969-12-31T23:59:59Z, and instants before 1970 are valid). */
#define OEE_CRON_NONE INT64_MIN

/*
 * The first firing strictly after `after_utc` (UTC seconds), in the zone
 * `tz` (NULL = UTC; unused by `@every`). `created_utc` anchors `@every`
 * (unused by the others; outside years 1..9999 there is no firing).
 * Returns OEE_CRON_NONE when there is none up to the end of year 9999
 * (or, for a hand-built oee_cron that never matches, none in 400 years:
 * the Gregorian calendar repeats itself after that). Instants before year
 * 1 count as the start of year 1. The search skips whole months, days and
 * hours that cannot match: a call takes a few steps per month searched, so
 * even a leap day that must also be a Sunday (next found up to 40 years
 * on) costs only a couple of thousand.
 */
int64_t oee_cron_next(const oee_cron *c, const oee_tz *tz, int64_t after_utc, int64_t created_utc);

/* Length of "YYYY-MM-DDTHH:MM:SSZ" with its NUL. */
#define OEE_CRON_TIME_SIZE 21

/*
 * Writes `utc_seconds` as "YYYY-MM-DDTHH:MM:SSZ" (RFC 3339, UTC), the form
 * of a firing's idempotency key. Instants outside years 1..9999 are written
 * as the nearest end of that range.
 */
void oee_cron_time_rfc3339(int64_t utc_seconds, char out[OEE_CRON_TIME_SIZE]);

#ifdef __cplusplus
}
#endif

#endif /* OEE_CRON_H */
