/*
 * civil.h - proleptic Gregorian calendar arithmetic on plain integers,
 * shared by the zone reader (tz.c) and the cron calculator (cron.c).
 *
 * Days are counted from 1970-01-01 (day 0), negative before it. The
 * conversions rest on the 400-year cycle of the Gregorian calendar (146,097
 * days, exactly 20,871 weeks) and on counting years from March 1st, which
 * puts the leap day at the end of the counted year: month lengths from March
 * to January then follow a fixed 5-month pattern (31 30 31 30 31), so the day
 * of the year before a month is (153 * month_from_march + 2) / 5. No libc
 * time function is used: they depend on the process-wide TZ.
 */
#ifndef OEE_CIVIL_H
#define OEE_CIVIL_H

#include <stdint.h>

/* Days from 0000-03-01 to 1970-01-01. */
#define OEE__CIVIL_EPOCH_SHIFT 719468
#define OEE__DAYS_PER_ERA 146097 /* 400 Gregorian years */

/* a / b rounded towards minus infinity (b > 0). */
static inline int64_t oee__floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && a < 0) ? q - 1 : q;
}

static inline int oee__is_leap(int64_t year) {
  return year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
}

/* Days in `month` (1..12) of `year`. */
static inline int oee__month_days(int64_t year, int month) {
  static const unsigned char len[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return month == 2 && oee__is_leap(year) ? 29 : len[month - 1];
}

/* The day number of year-month-day (month 1..12, day 1..31). */
static inline int64_t oee__days_from_civil(int64_t year, int month, int day) {
  int64_t y = month <= 2 ? year - 1 : year; /* the year that began on March 1st */
  int64_t era = oee__floor_div(y, 400);
  int64_t year_of_era = y - era * 400;               /* 0..399 */
  int64_t m = month <= 2 ? month + 9 : month - 3;    /* 0 = March .. 11 = February */
  int64_t day_of_year = (153 * m + 2) / 5 + day - 1; /* 0..365, from March 1st */
  int64_t day_of_era =
      year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year; /* 0..146096 */
  return era * OEE__DAYS_PER_ERA + day_of_era - OEE__CIVIL_EPOCH_SHIFT;
}

/* The inverse of oee__days_from_civil(). */
static inline void oee__civil_from_days(int64_t days, int64_t *year, int *month, int *day) {
  int64_t z = days + OEE__CIVIL_EPOCH_SHIFT;
  int64_t era = oee__floor_div(z, OEE__DAYS_PER_ERA);
  int64_t doe = z - era * OEE__DAYS_PER_ERA; /* 0..146096 */
  /* Years of 365 days, corrected for the leap days already passed: one per
   * 4 years (1460 days), none per 100 (36524), one per 400 (the last day). */
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* 0..399 */
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* 0..365 */
  int64_t m = (5 * doy + 2) / 153;                                     /* 0 = March */
  *day = (int)(doy - (153 * m + 2) / 5 + 1);
  *month = (int)(m < 10 ? m + 3 : m - 9);
  *year = yoe + era * 400 + (*month <= 2);
}

/* Day of the week of a day number: 0 = Sunday .. 6 = Saturday (1970-01-01
 * was a Thursday). */
static inline int oee__weekday(int64_t days) {
  int64_t w = (days + 4) % 7;
  return (int)(w < 0 ? w + 7 : w);
}

#endif /* OEE_CIVIL_H */
