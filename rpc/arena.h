/*
 * arena.h - a bump allocator for building one reply's message tree.
 *
 * Replies are built from borrowed snapshot strings plus small structs, packed
 * once and thrown away: an arena makes that one free() per chunk instead of
 * one per field. The server runtime also decodes each request into an arena
 * of its call, which is why it lives in the shared rpc package rather than
 * in server/. Not thread-safe; one arena per reply (or per request).
 *
 * Chunks come from oee_malloc() (core/oee_alloc.h), so an allocator that
 * injects failures reaches replies and request decoding too. A chunk that
 * cannot be had makes the allocation return NULL and marks the arena failed
 * (oee_arena_failed), so a caller may build a whole tree, checking only the
 * pointers it dereferences, and look at the mark once before using it.
 */
#ifndef OEE_RPC_ARENA_H
#define OEE_RPC_ARENA_H

#include <stddef.h>

typedef struct oee_arena_chunk oee_arena_chunk;

typedef struct oee_arena {
  oee_arena_chunk *head;
  size_t used;                   /* bytes used in head */
  size_t cap;                    /* bytes available in head */
  int failed;                    /* an allocation returned NULL since init */
  _Alignas(16) char first[2048]; /* the first chunk lives inline: small replies never malloc */
} oee_arena;

/* Bytes one allocation of n bytes takes from an arena at most (its size
 * rounded up to the 16-byte alignment), for oee_arena_reserve() bounds. */
#define OEE_ARENA_SIZE(n) (((size_t)(n) + 15) & ~(size_t)15)

void oee_arena_init(oee_arena *a);
/* Zeroed, 16-byte aligned memory that lives until oee_arena_free(), or NULL
 * when out of memory (the arena is then marked failed). */
void *oee_arena_alloc(oee_arena *a, size_t n);
/* The same, not zeroed: for a writer that sets every byte (protobuf-c's
 * unpacker, which takes malloc's memory as it comes). */
void *oee_arena_alloc_raw(oee_arena *a, size_t n);
/* Makes sure allocations taking n bytes in all (the sum of OEE_ARENA_SIZE of
 * each) will not need memory from the allocator: 0, or -1 when out of
 * memory (marked failed). For work that must not fail half-way, e.g. a
 * reply built after a submission was accepted. */
int oee_arena_reserve(oee_arena *a, size_t n);
/* An arena copy of the printf-formatted text, or NULL when out of memory. */
char *oee_arena_printf(oee_arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* 1 if an allocation or reservation failed since init (or the last free). */
int oee_arena_failed(const oee_arena *a);
void oee_arena_free(oee_arena *a);

#endif /* OEE_RPC_ARENA_H */
