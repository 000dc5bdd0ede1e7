/*
 * db_codec.h - the byte form of a task's context inside a database row.
 *
 * Layout: a little-endian u32 entry count, then per entry a u32 key length,
 * the key bytes, a u32 value length and the value bytes (no NULs stored).
 * It is private to the databases: callers see oee_kv arrays only.
 */
#ifndef OEE_DB_CODEC_H
#define OEE_DB_CODEC_H

#include <stddef.h>

#include "core/oee.h"

/* Encodes n entries into a new buffer (*out, *len; free() it). n == 0 gives
 * *out == NULL and *len == 0. 0 or OEE_ENOMEM. */
int oee__ctx_encode(const oee_kv *kv, size_t n, void **out, size_t *len);

/*
 * Decodes `len` bytes into one new allocation (*out; free() it) holding the
 * entries and, after them, copies of their strings; *n entries. No entries
 * gives *out == NULL and *n == 0. OEE_EINVAL for bytes that are not a
 * context, OEE_ENOMEM.
 */
int oee__ctx_decode(const void *data, size_t len, oee_kv **out, size_t *n);

#endif /* OEE_DB_CODEC_H */
