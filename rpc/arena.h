/*
 * arena.h - a bump allocator for building one reply's message tree.
 *
 * Replies are built from borrowed snapshot strings plus small structs, packed
 * once and thrown away: an arena makes that one free() per chunk instead of
 * one per field. The server runtime also decodes each request into an arena
 * of its call, which is why it lives in the shared rpc package rather than
 * in server/. Not thread-safe; one arena per reply (or per request).
 */
#ifndef OEE_RPC_ARENA_H
#define OEE_RPC_ARENA_H

#include <stddef.h>

typedef struct oee_arena_chunk oee_arena_chunk;

typedef struct oee_arena {
  oee_arena_chunk *head;
  size_t used;                   /* bytes used in head */
  size_t cap;                    /* bytes available in head */
  _Alignas(16) char first[2048]; /* the first chunk lives inline: small replies never malloc */
} oee_arena;

void oee_arena_init(oee_arena *a);
/* Zeroed, 16-byte aligned memory that lives until oee_arena_free().
 * Aborts when out of memory: a reply cannot be half built. */
void *oee_arena_alloc(oee_arena *a, size_t n);
/* An arena copy of the printf-formatted text. */
char *oee_arena_printf(oee_arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void oee_arena_free(oee_arena *a);

#endif /* OEE_RPC_ARENA_H */
