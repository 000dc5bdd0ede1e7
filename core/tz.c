/*
 * tz.c - the zone reader: TZif files (RFC 8536, versions 1 to 4) and the
 * POSIX TZ rule at their end (see tz.h for the API).
 *
 * DESIGN
 * A zone is a sorted array of the instants at which its UTC offset changes,
 * the offset in effect from each one on, the offset before the first one,
 * and the file's footer rule (a POSIX TZ string such as
 * "CET-1CEST,M3.5.0,M10.5.0/3") for instants past the last stored change.
 * Version 2+ files carry their data twice, with 32-bit then 64-bit times;
 * the 64-bit copy is read. Only offsets are kept: abbreviations and the
 * DST flags play no part in converting times. Everything lives in one
 * allocation that never changes after loading, so queries need no lock.
 *
 * Conversions work on "segments": the spans between two changes, each with
 * one offset. next_change() finds where the segment holding an instant
 * ends, from the table (binary search) or from the footer rule evaluated
 * for the years around the instant. Offsets are bounded by OFFSET_LIMIT,
 * so the instants whose wall-clock time is some local time L all lie within
 * OFFSET_LIMIT of L, and a scan of the segments in that window answers
 * local-to-UTC questions exactly, even with several changes close together.
 *
 * Files are read whole (at most FILE_MAX bytes) with open/read: no stdio
 * buffering, no process-wide state.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/civil.h"
#include "core/oee_alloc.h"
#include "core/tz.h"

/* Offsets must be strictly within this many seconds of 0 (RFC 8536 asks
 * for -89999..93599, i.e. within 26 hours). */
#define OFFSET_LIMIT 93600
/* Bigger zone files are refused (the largest real one is a few KiB). */
#define FILE_MAX (1 << 20)
/* UTC seconds are clamped to +-2^56 (two billion years) before any
 * arithmetic, so that no sum below can overflow. */
#define CLAMP_LIMIT (INT64_C(1) << 56)
/* The hour parts of POSIX TZ offsets and change times (RFC 8536 3.3.1
 * lets change times range over -167..167 hours). */
#define RULE_OFFSET_HOURS_MAX 24
#define RULE_TIME_HOURS_MAX 167

/* The day of a footer rule's change: Jn (1..365, February 29 never
 * counted), n (0..365, counted) or Mm.w.d (weekday d of week w (5 = last)
 * of month m). */
typedef struct rule_day {
  char kind; /* 'J', 'N' or 'M' */
  int n;     /* J and N: the day */
  int month, week, weekday;
  int32_t time; /* seconds after local midnight, may be < 0 or > 24 h */
} rule_day;

typedef struct footer {
  int32_t std_off; /* seconds east of UTC */
  int32_t dst_off;
  int has_dst;
  rule_day start; /* to daylight time, given in standard time */
  rule_day end;   /* back to standard time, given in daylight time */
} footer;

struct oee_tz {
  const char *name;   /* points into this allocation */
  size_t n;           /* changes stored */
  const int64_t *at;  /* n instants (UTC seconds), strictly ascending */
  const int32_t *off; /* n offsets: off[i] is in effect from at[i] on */
  int32_t off_first;  /* in effect before at[0] (time type 0) */
  int has_footer;     /* else the last offset lasts forever */
  footer rule;
};

static int64_t clamp(int64_t t) {
  if (t > CLAMP_LIMIT) return CLAMP_LIMIT;
  if (t < -CLAMP_LIMIT) return -CLAMP_LIMIT;
  return t;
}

/* -------------------------------------------------- the footer rule */

/* The day number of a rule's day in `year`. */
static int64_t rule_day_in(const rule_day *r, int64_t year) {
  int64_t jan1 = oee__days_from_civil(year, 1, 1);
  if (r->kind == 'J') return jan1 + r->n - 1 + (oee__is_leap(year) && r->n >= 60);
  if (r->kind == 'N') return jan1 + r->n;
  int64_t first = oee__days_from_civil(year, r->month, 1);
  int day = 1 + (r->weekday - oee__weekday(first) + 7) % 7 + 7 * (r->week - 1);
  while (day > oee__month_days(year, r->month)) day -= 7; /* week 5: the last one */
  return first + day - 1;
}

/* The two changes of `year` in UTC: [0] to daylight time, [1] back. */
static void footer_changes(const footer *f, int64_t year, int64_t out[2]) {
  out[0] = rule_day_in(&f->start, year) * 86400 + f->start.time - f->std_off;
  out[1] = rule_day_in(&f->end, year) * 86400 + f->end.time - f->dst_off;
}

static int64_t footer_year(const footer *f, int64_t utc) {
  int64_t y;
  int m, d;
  oee__civil_from_days(oee__floor_div(utc + f->std_off, 86400), &y, &m, &d);
  return y;
}

/* The offset the rule puts in effect at `utc`: that of the latest change
 * at or before it among the years around it. A start and an end at the
 * same instant (daylight time all year, "0/0,J365/25") leave daylight. */
static int32_t footer_offset(const footer *f, int64_t utc) {
  if (!f->has_dst) return f->std_off;
  int64_t y = footer_year(f, utc), best = INT64_MIN;
  int dst = 0;
  for (int64_t yy = y - 2; yy <= y + 1; yy++) {
    int64_t c[2];
    footer_changes(f, yy, c);
    for (int k = 1; k >= 0; k--) { /* the end first, so a start at the same instant wins */
      if (c[k] <= utc && c[k] >= best) {
        best = c[k];
        dst = k == 0;
      }
    }
  }
  return dst ? f->dst_off : f->std_off;
}

/* The first change of the rule after `utc`, INT64_MAX when it has none. */
static int64_t footer_next(const footer *f, int64_t utc) {
  if (!f->has_dst) return INT64_MAX;
  int64_t y = footer_year(f, utc), best = INT64_MAX;
  for (int64_t yy = y - 1; yy <= y + 2; yy++) {
    int64_t c[2];
    footer_changes(f, yy, c);
    for (int k = 0; k < 2; k++) {
      if (c[k] > utc && c[k] < best) best = c[k];
    }
  }
  return best;
}

/* ------------------------------------------------------- queries */

/* Index of the last stored change at or before `utc` (tz->n > 0 and
 * tz->at[0] <= utc). */
static size_t last_change_at_or_before(const oee_tz *tz, int64_t utc) {
  size_t lo = 0, hi = tz->n; /* at[lo] <= utc < at[hi] (at[n] = +inf) */
  while (hi - lo > 1) {
    size_t mid = lo + (hi - lo) / 2;
    if (tz->at[mid] <= utc) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return lo;
}

static int32_t offset_at(const oee_tz *tz, int64_t utc) {
  if (tz->n == 0) return tz->has_footer ? footer_offset(&tz->rule, utc) : tz->off_first;
  if (utc < tz->at[0]) return tz->off_first;
  if (utc > tz->at[tz->n - 1] && tz->has_footer) return footer_offset(&tz->rule, utc);
  return tz->off[last_change_at_or_before(tz, utc)];
}

/* The first instant after `utc` at which the offset may change (some
 * changes keep the offset and alter only the DST flag or the name);
 * INT64_MAX when none ever comes. */
static int64_t next_change(const oee_tz *tz, int64_t utc) {
  if (tz->n > 0 && utc < tz->at[0]) return tz->at[0];
  if (tz->n > 0 && utc < tz->at[tz->n - 1]) {
    return tz->at[last_change_at_or_before(tz, utc) + 1];
  }
  return tz->has_footer ? footer_next(&tz->rule, utc) : INT64_MAX;
}

int32_t oee_tz_offset(const oee_tz *tz, int64_t utc_seconds) {
  return offset_at(tz, clamp(utc_seconds));
}

const char *oee_tz_name(const oee_tz *tz) { return tz->name; }

int oee_tz_local_to_utc(const oee_tz *tz, int64_t local_seconds, int64_t out[2]) {
  int64_t local = clamp(local_seconds);
  int count = 0;
  /* Every segment that could show `local` overlaps this window. */
  for (int64_t s = local - OFFSET_LIMIT; s <= local + OFFSET_LIMIT;) {
    int64_t end = next_change(tz, s);
    int64_t u = local - offset_at(tz, s);
    if (u >= s && u < end && count < 2) out[count++] = u;
    if (end == INT64_MAX) break;
    s = end;
  }
  return count;
}

int64_t oee_tz_local_reached_at(const oee_tz *tz, int64_t local_seconds) {
  int64_t local = clamp(local_seconds);
  /* The wall clock shows less than `local` at s (offsets < OFFSET_LIMIT);
   * walk forward segment by segment until it shows `local` or more. */
  for (int64_t s = local - OFFSET_LIMIT;;) {
    int32_t off = offset_at(tz, s);
    int64_t end = next_change(tz, s);
    if (s + off >= local) return s;            /* jumped over it: the end of a gap */
    if (local - off < end) return local - off; /* shown inside this segment */
    s = end;
  }
}

int64_t oee_tz_local_max_shown(const oee_tz *tz, int64_t utc_seconds) {
  int64_t utc = clamp(utc_seconds);
  int64_t best = utc + offset_at(tz, utc);
  /* Within a segment the wall clock only grows, so each earlier segment
   * peaks at its last second; one that ended more than twice OFFSET_LIMIT
   * ago peaked below best. */
  for (int64_t s = utc - 2 * OFFSET_LIMIT;;) {
    int64_t end = next_change(tz, s);
    if (end > utc) break;
    int64_t peak = end - 1 + offset_at(tz, end - 1);
    if (peak > best) best = peak;
    s = end;
  }
  return best;
}

/* ------------------------------------------- the POSIX TZ string */

typedef struct cursor {
  const char *p, *end;
} cursor;

static int at_end(const cursor *c) { return c->p == c->end; }
static int peek(const cursor *c) { return at_end(c) ? -1 : (unsigned char)*c->p; }

static int is_alpha(int ch) { return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z'); }
static int is_digit(int ch) { return ch >= '0' && ch <= '9'; }

/* A zone abbreviation: 3+ letters, or <3+ of [A-Za-z0-9+-]> quoted. */
static int read_abbreviation(cursor *c) {
  int len = 0;
  if (peek(c) == '<') {
    c->p++;
    while (!at_end(c) && *c->p != '>') {
      int ch = peek(c);
      if (!is_alpha(ch) && !is_digit(ch) && ch != '+' && ch != '-') return -1;
      c->p++;
      len++;
    }
    if (at_end(c)) return -1;
    c->p++;
  } else {
    while (is_alpha(peek(c))) {
      c->p++;
      len++;
    }
  }
  return len >= 3 ? 0 : -1;
}

static int read_uint(cursor *c, int max, int *out) {
  if (!is_digit(peek(c))) return -1;
  int v = 0;
  while (is_digit(peek(c))) {
    v = v * 10 + (*c->p++ - '0');
    if (v > max) return -1;
  }
  *out = v;
  return 0;
}

/* [+-]hh[:mm[:ss]] in seconds, hours at most `hours_max`. */
static int read_hms(cursor *c, int hours_max, int32_t *out) {
  int sign = 1, h, m = 0, s = 0;
  if (peek(c) == '+' || peek(c) == '-') sign = *c->p++ == '-' ? -1 : 1;
  if (read_uint(c, hours_max, &h) < 0) return -1;
  if (peek(c) == ':') {
    c->p++;
    if (read_uint(c, 59, &m) < 0) return -1;
    if (peek(c) == ':') {
      c->p++;
      if (read_uint(c, 59, &s) < 0) return -1;
    }
  }
  *out = sign * (h * 3600 + m * 60 + s);
  return 0;
}

static int read_rule_day(cursor *c, rule_day *r) {
  if (peek(c) == 'J') {
    c->p++;
    r->kind = 'J';
    if (read_uint(c, 365, &r->n) < 0 || r->n < 1) return -1;
  } else if (peek(c) == 'M') {
    c->p++;
    r->kind = 'M';
    if (read_uint(c, 12, &r->month) < 0 || r->month < 1 || peek(c) != '.') return -1;
    c->p++;
    if (read_uint(c, 5, &r->week) < 0 || r->week < 1 || peek(c) != '.') return -1;
    c->p++;
    if (read_uint(c, 6, &r->weekday) < 0) return -1;
  } else {
    r->kind = 'N';
    if (read_uint(c, 365, &r->n) < 0) return -1;
  }
  r->time = 2 * 3600; /* POSIX's default: 02:00 */
  if (peek(c) == '/') {
    c->p++;
    if (read_hms(c, RULE_TIME_HOURS_MAX, &r->time) < 0) return -1;
  }
  return 0;
}

/* Parses the footer `s` (len bytes, no newlines) into *f. POSIX offsets
 * count west of UTC ("EST5"); they are turned around here. */
static int parse_footer(const char *s, size_t len, footer *f) {
  cursor c = {s, s + len};
  int32_t west;
  memset(f, 0, sizeof(*f));
  if (read_abbreviation(&c) < 0 || read_hms(&c, RULE_OFFSET_HOURS_MAX, &west) < 0) return -1;
  f->std_off = -west;
  if (at_end(&c)) return 0;
  if (read_abbreviation(&c) < 0) return -1;
  f->has_dst = 1;
  f->dst_off = f->std_off + 3600; /* POSIX's default: one hour ahead */
  if (!at_end(&c) && peek(&c) != ',') {
    if (read_hms(&c, RULE_OFFSET_HOURS_MAX, &west) < 0) return -1;
    f->dst_off = -west;
  }
  if (at_end(&c)) {
    /* No rule given: the United States' rule, as tzcode and glibc assume. */
    f->start = (rule_day){'M', 0, 3, 2, 0, 2 * 3600};
    f->end = (rule_day){'M', 0, 11, 1, 0, 2 * 3600};
    return 0;
  }
  if (peek(&c) != ',') return -1;
  c.p++;
  if (read_rule_day(&c, &f->start) < 0 || peek(&c) != ',') return -1;
  c.p++;
  if (read_rule_day(&c, &f->end) < 0) return -1;
  return at_end(&c) ? 0 : -1;
}

/* ------------------------------------------------- the TZif format */

typedef struct tzif_header {
  int version; /* 1, 2, 3 or 4 */
  uint32_t isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt;
} tzif_header;

enum { HEADER_SIZE = 44 };

static uint32_t be32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p) {
  return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

static const char *read_header(const unsigned char *p, size_t avail, tzif_header *h) {
  if (avail < HEADER_SIZE || memcmp(p, "TZif", 4) != 0) return "no TZif header";
  if (p[4] == 0) {
    h->version = 1;
  } else if (p[4] >= '2' && p[4] <= '4') {
    h->version = p[4] - '0';
  } else {
    return "unknown version";
  }
  h->isutcnt = be32(p + 20);
  h->isstdcnt = be32(p + 24);
  h->leapcnt = be32(p + 28);
  h->timecnt = be32(p + 32);
  h->typecnt = be32(p + 36);
  h->charcnt = be32(p + 40);
  if (h->typecnt == 0 || h->typecnt > 256) return "bad count of time types";
  if ((h->isutcnt != 0 && h->isutcnt != h->typecnt) ||
      (h->isstdcnt != 0 && h->isstdcnt != h->typecnt)) {
    return "bad indicator counts";
  }
  return NULL;
}

/* Bytes of the data block after a header; `tsize` is 4 (v1) or 8. */
static uint64_t block_size(const tzif_header *h, int tsize) {
  return (uint64_t)h->timecnt * (uint64_t)(tsize + 1) + (uint64_t)h->typecnt * 6 + h->charcnt +
         (uint64_t)h->leapcnt * (uint64_t)(tsize + 4) + h->isstdcnt + h->isutcnt;
}

static size_t zone_size(size_t n, size_t name_len) {
  return sizeof(oee_tz) + n * sizeof(int64_t) + n * sizeof(int32_t) + name_len + 1;
}

/* A zone with room for n changes and the name, its arrays laid out after
 * the struct (int64 first, so every array is aligned). */
static oee_tz *zone_alloc(size_t n, const char *name) {
  size_t name_len = strlen(name);
  oee_tz *tz = oee_malloc(zone_size(n, name_len));
  if (tz == NULL) return NULL;
  memset(tz, 0, sizeof(*tz));
  int64_t *at = (int64_t *)(tz + 1);
  int32_t *off = (int32_t *)(at + n);
  char *nm = (char *)(off + n);
  memcpy(nm, name, name_len + 1);
  tz->name = nm;
  tz->at = at;
  tz->off = off;
  tz->n = n;
  return tz;
}

static int offset_ok(int64_t off) { return off > -OFFSET_LIMIT && off < OFFSET_LIMIT; }

/* Fills the zone's table from the data block at `p` (size checked). */
static const char *read_block(const unsigned char *p, const tzif_header *h, int tsize, oee_tz *tz) {
  const unsigned char *times = p, *idx = p + (size_t)h->timecnt * tsize;
  const unsigned char *types = idx + h->timecnt;
  int64_t *at = (int64_t *)tz->at;
  int32_t *off = (int32_t *)tz->off;
  for (uint32_t t = 0; t < h->typecnt; t++) {
    if (!offset_ok((int32_t)be32(types + 6 * t))) return "offset out of range";
  }
  for (uint32_t i = 0; i < h->timecnt; i++) {
    at[i] = tsize == 8 ? be64(times + 8 * (size_t)i) : (int32_t)be32(times + 4 * (size_t)i);
    if (i > 0 && at[i] <= at[i - 1]) return "changes out of order";
    if (idx[i] >= h->typecnt) return "bad time type index";
    off[i] = (int32_t)be32(types + 6 * idx[i]);
  }
  tz->off_first = (int32_t)be32(types); /* RFC 8536: type 0 before the first change */
  return NULL;
}

/* The footer of a v2+ file: "\n<TZ string>\n" right after the 64-bit
 * block (an empty string means the last offset lasts). */
static const char *read_footer(const unsigned char *p, size_t avail, oee_tz *tz) {
  if (avail < 2 || p[0] != '\n') return "no footer";
  const unsigned char *nl = memchr(p + 1, '\n', avail - 1);
  if (nl == NULL) return "unterminated footer";
  size_t len = (size_t)(nl - (p + 1));
  if (len == 0) return NULL;
  if (parse_footer((const char *)p + 1, len, &tz->rule) < 0) return "bad TZ string in the footer";
  if (!offset_ok(tz->rule.std_off) || !offset_ok(tz->rule.dst_off)) {
    return "footer offset out of range";
  }
  tz->has_footer = 1;
  return NULL;
}

static const char *parse_tzif(const unsigned char *data, size_t len, const char *name,
                              oee_tz **out) {
  tzif_header h;
  const char *why = read_header(data, len, &h);
  if (why != NULL) return why;
  size_t pos = HEADER_SIZE;
  int tsize = 4;
  if (h.version >= 2) { /* skip the 32-bit copy for the 64-bit one */
    uint64_t skip = block_size(&h, 4);
    if (skip > len - pos) return "truncated";
    pos += (size_t)skip;
    if ((why = read_header(data + pos, len - pos, &h)) != NULL) return why;
    pos += HEADER_SIZE;
    tsize = 8;
  }
  uint64_t size = block_size(&h, tsize);
  if (size > len - pos) return "truncated";
  if (h.leapcnt > 0) return "leap seconds are not supported";
  oee_tz *tz = zone_alloc(h.timecnt, name);
  if (tz == NULL) return NULL; /* *out stays NULL: out of memory */
  why = read_block(data + pos, &h, tsize, tz);
  if (why == NULL && h.version >= 2) {
    why = read_footer(data + pos + size, len - pos - (size_t)size, tz);
  }
  if (why != NULL) {
    oee_free(tz);
    return why;
  }
  *out = tz;
  return NULL;
}

/* ------------------------------------------------------- loading */

/* Copies `name` into buf for a message: at most 64 bytes, anything not
 * plainly printable (or a quote) shown as '?'. */
static const char *printable(const char *name, char buf[68]) {
  size_t i = 0;
  for (; name[i] != '\0' && i < 64; i++) {
    unsigned char ch = (unsigned char)name[i];
    buf[i] = (ch < 0x20 || ch > 0x7e || ch == '"' || ch == '\\') ? '?' : (char)ch;
  }
  if (name[i] != '\0') {
    memcpy(buf + i, "...", 3);
    i += 3;
  }
  buf[i] = '\0';
  return buf;
}

static int name_char_ok(char ch) {
  return is_alpha((unsigned char)ch) || is_digit((unsigned char)ch) || ch == '/' || ch == '_' ||
         ch == '+' || ch == '-';
}

/* NULL if `name` may be looked up as a file under the zone directory. */
static const char *name_problem(const char *name) {
  size_t len = strlen(name);
  if (len == 0) return "empty name";
  if (len > OEE_TZ_NAME_MAX) return "name too long";
  if (name[0] == '/') return "not a zone name (absolute path)";
  if (strstr(name, "..") != NULL) return "not a zone name (\"..\")";
  for (size_t i = 0; i < len; i++) {
    if (!name_char_ok(name[i])) return "not a zone name (allowed: A-Z a-z 0-9 / _ + -)";
  }
  return NULL;
}

static oee_tz *builtin_utc(void) {
  oee_tz *tz = zone_alloc(0, "UTC");
  return tz; /* offset 0 forever: off_first = 0, no footer */
}

/* Reads the whole regular file at `path` into a new buffer. Returns 0,
 * OEE_EINVAL when there is no zone file there (*sys_errno: ENOENT for no
 * file, EISDIR for something that is not a regular file of a sane size),
 * OEE_EIO for other failures (*sys_errno tells which) or OEE_ENOMEM. */
static int read_file(const char *path, unsigned char **data, size_t *len, int *sys_errno) {
  *sys_errno = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    int e = errno;
    int missing = e == ENOENT || e == ENOTDIR || e == ENAMETOOLONG;
    *sys_errno = missing ? ENOENT : e;
    return missing ? OEE_EINVAL : OEE_EIO;
  }
  int ret = 0;
  unsigned char *buf = NULL;
  struct stat st;
  if (fstat(fd, &st) != 0) {
    *sys_errno = errno;
    ret = OEE_EIO;
    goto done;
  }
  if (!S_ISREG(st.st_mode) || st.st_size > FILE_MAX) {
    *sys_errno = EISDIR;
    ret = OEE_EINVAL;
    goto done;
  }
  size_t want = (size_t)st.st_size, got = 0;
  buf = oee_malloc(want > 0 ? want : 1);
  if (buf == NULL) {
    ret = OEE_ENOMEM;
    goto done;
  }
  while (got < want) {
    ssize_t r = read(fd, buf + got, want - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      *sys_errno = r < 0 ? errno : EIO;
      ret = OEE_EIO;
      goto done;
    }
    got += (size_t)r;
  }
  *data = buf;
  *len = got;
  buf = NULL;
done:
  oee_free(buf);
  close(fd);
  return ret;
}

int oee__tz_parse(const char *name, const unsigned char *data, size_t len, oee_tz **out,
                  oee_error *err) {
  char shown[68];
  oee_tz *tz = NULL;
  *out = NULL;
  const char *why = parse_tzif(data, len, name, &tz);
  if (why != NULL) {
    return oee_error_set(err, OEE_EINVAL, "time_zone \"%s\": not a valid zone file (%s)",
                         printable(name, shown), why);
  }
  if (tz == NULL) return oee_error_set(err, OEE_ENOMEM, "out of memory loading a time_zone");
  *out = tz;
  return 0;
}

int oee__tz_load_dir(const char *dir, const char *name, oee_tz **out, oee_error *err) {
  char shown[68], path[4096];
  *out = NULL;
  if (name == NULL) return oee_error_set(err, OEE_EINVAL, "unknown time_zone \"\": empty name");
  const char *problem = name_problem(name);
  if (problem != NULL) {
    return oee_error_set(err, OEE_EINVAL, "unknown time_zone \"%s\": %s", printable(name, shown),
                         problem);
  }
  int n = snprintf(path, sizeof(path), "%s/%s", dir, name);
  if (n < 0 || (size_t)n >= sizeof(path)) {
    return oee_error_set(err, OEE_EINVAL, "unknown time_zone \"%s\": path too long",
                         printable(name, shown));
  }
  unsigned char *data = NULL;
  size_t len = 0;
  int sys_errno;
  int ret = read_file(path, &data, &len, &sys_errno);
  if (ret == OEE_EINVAL && strcmp(name, "UTC") == 0 && sys_errno == ENOENT) {
    *out = builtin_utc();
    return *out ? 0 : oee_error_set(err, OEE_ENOMEM, "out of memory loading a time_zone");
  }
  if (ret == OEE_ENOMEM) return oee_error_set(err, ret, "out of memory loading a time_zone");
  if (ret == OEE_EINVAL) {
    return oee_error_set(err, ret, "unknown time_zone \"%s\": %s %s", printable(name, shown),
                         sys_errno == EISDIR ? "not a zone file:" : "no zone file", path);
  }
  if (ret != 0) {
    return oee_error_set(err, ret, "time_zone \"%s\": cannot read %s: %s", printable(name, shown),
                         path, strerror(sys_errno));
  }
  ret = oee__tz_parse(name, data, len, out, err);
  oee_free(data);
  return ret;
}

int oee_tz_load(const char *name, oee_tz **out, oee_error *err) {
  return oee__tz_load_dir(OEE_TZ_DIR, name, out, err);
}

void oee_tz_free(oee_tz *tz) { oee_free(tz); }
