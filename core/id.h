/*
 * id.h - task ids: UUID version 7 (RFC 9562) generated in-process.
 *
 * DESIGN
 *
 * Layout of every id (big-endian, as the text reads):
 *   bits   0..47  unix_ts_ms: Unix time in milliseconds (CLOCK_REALTIME)
 *   bits  48..51  version 0111
 *   bits  52..63  counter, high 12 bits (the RFC's rand_a)
 *   bits  64..65  variant 10
 *   bits  66..79  counter, low 14 bits (the top of the RFC's rand_b)
 *   bits  80..127 48 random bits, fresh for every id
 * so ids sort by creation time and index well in a database.
 *
 * Ordering: RFC 9562 section 6.2 method 1, a fixed-length dedicated counter
 * of 26 bits. Each thread keeps its own clock reading and counter. When the
 * millisecond advances the counter is reseeded with 25 random bits (its top
 * bit starts at 0, leaving at least 2^25 increments in that millisecond);
 * otherwise it is incremented. If the wall clock steps back the thread keeps
 * its last timestamp and goes on counting; if the counter ever overflows the
 * timestamp is advanced by one millisecond (the RFC allows running ahead of
 * the clock). Hence ids made by one thread are strictly increasing, both as
 * bytes and as lower-case text. Ids of different threads made in the same
 * millisecond are not ordered among themselves.
 *
 * Randomness: each thread has a _Thread_local buffer of OEE__ID_RANDOM_BYTES
 * bytes refilled by getrandom(2), so a system call happens once per roughly
 * 170 ids, not per id (libuuid's uuid_generate_random makes six per id).
 * Threads never share state, so there is no lock and no atomic in the hot
 * path. Fork: a pthread_atfork child handler, registered before the first
 * buffer is filled, empties the buffer of the thread that called fork() (the
 * only thread that exists in the child), so a child never replays random
 * bytes its parent will also use. A process made with _Fork() or a raw
 * clone() skips the handlers and must not draw ids before exec.
 *
 * Uniqueness: two ids can only collide if they share the millisecond, the
 * counter value and 48 random bits; the counter seeds of two threads are
 * themselves random, so the chance is negligible for any realistic rate.
 *
 * Reading ids: oee_id_valid() (core/oee.h) accepts any canonical UUID in any
 * case, so v4 ids stored by older versions stay valid.
 */
#ifndef OEE_ID_H
#define OEE_ID_H

#include "core/oee.h"

/* Size of each thread's random buffer, in bytes (about 170 ids per fill). */
#define OEE__ID_RANDOM_BYTES 1024

/*
 * Writes a new UUID v7 as 36 lower-case characters and a NUL to `out`.
 * Safe to call from any thread at the same time without locking. Aborts only
 * if getrandom(2) itself is unavailable (a kernel older than Linux 3.17).
 */
void oee__id_new(char out[OEE_ID_LEN + 1]);

/* The same id in its 16-byte binary form (for callers that store bytes). */
void oee__id_new_bytes(unsigned char out[16]);

/* `n` random bytes from the same per-thread buffer (retry jitter). */
void oee__random_bytes(unsigned char *out, size_t n);

#endif /* OEE_ID_H */
