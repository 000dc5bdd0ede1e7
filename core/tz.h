/*
 * tz.h - time zones read from the system zone database (TZif files, RFC
 * 8536, under /usr/share/zoneinfo), for converting between UTC and a zone's
 * wall-clock time without the process-wide TZ/tzset/localtime machinery.
 *
 * Times are whole seconds. "UTC seconds" count from 1970-01-01T00:00:00Z
 * without leap seconds (POSIX time). "Local seconds" count the same way on
 * the zone's wall clock: local = utc + offset, so 2026-03-08T02:30 local is
 * days_from_1970(2026-03-08) * 86400 + 2.5 h whatever the zone.
 *
 * A loaded zone is immutable: every query below may run on any thread at
 * the same time as others on the same zone, without locks.
 */
#ifndef OEE_TZ_H
#define OEE_TZ_H

#include <stddef.h>
#include <stdint.h>

#include "core/oee.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct oee_tz oee_tz;

/* Where oee_tz_load() looks for zone files. */
#define OEE_TZ_DIR "/usr/share/zoneinfo"

/* Longest zone name accepted, in bytes (the longest IANA name is ~30). */
#define OEE_TZ_NAME_MAX 255

/*
 * Loads the zone `name`, an IANA name such as "Europe/Ljubljana" or "UTC",
 * from OEE_TZ_DIR into *out (free it with oee_tz_free()). Names are checked
 * before any file is touched: a name that is empty, longer than
 * OEE_TZ_NAME_MAX, starts with '/', contains ".." or a character outside
 * [A-Za-z0-9/_+-] is refused, as is a name without a file, with OEE_EINVAL
 * and `unknown time_zone "<name>": <why>`. A file that is not a valid TZif
 * file, or one counting leap seconds (the "right/" zones), is refused with
 * OEE_EINVAL too. "UTC" works without its file (a built-in zone is used
 * when the file is missing). OEE_ENOMEM when out of memory.
 */
int oee_tz_load(const char *name, oee_tz **out, oee_error *err);

/* Frees a zone from oee_tz_load(); NULL is ignored. */
void oee_tz_free(oee_tz *tz);

/* The name the zone was loaded under (lives as long as the zone). */
const char *oee_tz_name(const oee_tz *tz);

/* The zone's offset from UTC in seconds (east positive: +3600 for CET) in
 * effect at the instant `utc_seconds`. */
int32_t oee_tz_offset(const oee_tz *tz, int64_t utc_seconds);

/*
 * The UTC instants whose wall-clock time is `local_seconds`, in ascending
 * order in out[0], out[1]; returns how many there are: 0 when the local
 * time is skipped by a change (a spring-forward gap), 1 usually, 2 when it
 * is repeated (a fall-back). No zone repeats a time more than twice; were
 * one to, the two earliest would be reported.
 */
int oee_tz_local_to_utc(const oee_tz *tz, int64_t local_seconds, int64_t out[2]);

/*
 * The first instant at which the wall clock shows `local_seconds` or a
 * later time: the instant of that local time when it exists (its first
 * occurrence when it is repeated), else the end of the gap that skips it
 * (the instant of the change). Never decreases as `local_seconds` grows.
 */
int64_t oee_tz_local_reached_at(const oee_tz *tz, int64_t local_seconds);

/*
 * The latest wall-clock time the zone has shown at or before the instant
 * `utc_seconds`: its local time, except in the repeated stretch after a
 * fall-back, where the clock shows times it has shown before and this is
 * the last time shown before it was turned back. Together with
 * oee_tz_local_reached_at(): reached_at(L) > u exactly when L > max_shown(u).
 */
int64_t oee_tz_local_max_shown(const oee_tz *tz, int64_t utc_seconds);

/* ------------------------------------------------ internal, for tests */

/* oee_tz_load() reading the zone files under `dir` instead of OEE_TZ_DIR. */
int oee__tz_load_dir(const char *dir, const char *name, oee_tz **out, oee_error *err);

/* A zone from the `len` bytes of a TZif file in memory (`name` is kept as
 * its name and used in messages; it is not checked). */
int oee__tz_parse(const char *name, const unsigned char *data, size_t len, oee_tz **out,
                  oee_error *err);

#ifdef __cplusplus
}
#endif

#endif /* OEE_TZ_H */
