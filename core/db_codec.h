/*
 * db_codec.h - the byte form of a task's context inside a database row.
 *
 * Layout: a little-endian u32 entry count, then per entry a u32 key length,
 * the key bytes, a u32 value length and the value bytes (no NULs stored).
 * It is private to the databases: callers see oee_kv arrays only. Lists of
 * strings and executors' payloads have forms of their own, below.
 */
#ifndef OEE_DB_CODEC_H
#define OEE_DB_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "core/oee.h"

/* Encodes n entries into a new buffer (*out, *len; oee_free() it). n == 0 gives
 * *out == NULL and *len == 0. 0 or OEE_ENOMEM. */
int oee__ctx_encode(const oee_kv *kv, size_t n, void **out, size_t *len);

/*
 * Decodes `len` bytes into one new allocation (*out; oee_free() it) holding the
 * entries and, after them, copies of their strings; *n entries. No entries
 * gives *out == NULL and *n == 0. OEE_EINVAL for bytes that are not a
 * context, OEE_ENOMEM.
 */
int oee__ctx_decode(const void *data, size_t len, oee_kv **out, size_t *n);

/*
 * A list of strings (a task's depends_on) in the same layout with one
 * string per entry: a u32 count, then per string a u32 length and the
 * bytes. Encodes n strings into a new buffer (*out, *len; oee_free() it);
 * n == 0 gives *out == NULL and *len == 0. 0 or OEE_ENOMEM.
 */
int oee__strs_encode(const char *const *s, size_t n, void **out, size_t *len);

/*
 * Decodes `len` bytes into one new allocation (*out; oee_free() it) holding
 * the n pointers and, after them, copies of the strings. No bytes or no
 * strings give *out == NULL and *n == 0. OEE_EINVAL for bytes that are not
 * a list, OEE_ENOMEM.
 */
int oee__strs_decode(const void *data, size_t len, char ***out, size_t *n);

/*
 * Byte writers and readers for the other stored forms (an executor's
 * payload): little-endian u64s, doubles by their bits, and strings as a u32
 * length and the bytes (a NULL string as length 0xFFFFFFFF). A writer that
 * runs out of memory, or a reader that meets bytes that do not fit, sets
 * `failed`/`bad` and ignores the rest, so callers check once at the end.
 */
typedef struct oee__wbuf {
  unsigned char *p; /* oee_malloc'ed; the caller frees it */
  size_t len, cap;
  int failed;
} oee__wbuf;

void oee__put_u64(oee__wbuf *b, uint64_t v);
void oee__put_f64(oee__wbuf *b, double v);
void oee__put_str(oee__wbuf *b, const char *s);

typedef struct oee__rbuf {
  const unsigned char *p, *end;
  int bad;   /* the bytes ended early or held a bad string */
  int nomem; /* a string could not be copied */
} oee__rbuf;

uint64_t oee__get_u64(oee__rbuf *b);
double oee__get_f64(oee__rbuf *b);
/* A copy (oee_free it) or NULL: for a stored NULL, or with bad/nomem set. */
char *oee__get_str(oee__rbuf *b);

#endif /* OEE_DB_CODEC_H */
