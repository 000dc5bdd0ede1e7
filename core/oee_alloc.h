/*
 * oee_alloc.h - the allocator every core allocation goes through, swappable
 * for failure injection (beanstalkd's `falloc`, cmocka's test allocators).
 *
 * By default the functions below are libc's. A program or test may install
 * its own table, e.g. one that fails the n-th allocation, and every core
 * path must then end in a clean OEE_ENOMEM (or succeed) rather than crash.
 * Memory the core hands out to be freed by the caller (snapshots through
 * oee_task_info_unref(), listing pages, status, pipeline results, process
 * results, oee_trim_right() strings) comes from this allocator, and the
 * matching free functions return it here; a caller freeing such memory
 * itself must use oee_free().
 */
#ifndef OEE_ALLOC_H
#define OEE_ALLOC_H

#include <stdarg.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct oee_allocator {
  void *(*malloc)(size_t size);
  void *(*calloc)(size_t n, size_t size);
  void *(*realloc)(void *p, size_t size);
  void (*free)(void *p);
} oee_allocator;

/*
 * Installs `a` (copied; every function must be set) or, with NULL, libc's
 * functions again. Not safe against allocations running concurrently, and
 * memory must be freed by the allocator that made it: set it before any
 * engine exists or any thread starts, and restore it after all are gone.
 */
void oee_allocator_set(const oee_allocator *a);

/* The current allocator's functions: NULL on failure, as libc's. */
void *oee_malloc(size_t size);
void *oee_calloc(size_t n, size_t size);
void *oee_realloc(void *p, size_t size);
void oee_free(void *p);

/* Copies of `s` (at most `n` bytes of it for oee_strndup()), NUL-terminated,
 * from oee_malloc(); NULL when out of memory. */
char *oee_strdup(const char *s);
char *oee_strndup(const char *s, size_t n);

/* A formatted string from oee_malloc() in *out: its length, or -1 when out
 * of memory or on a format error (*out is then NULL). */
int oee_asprintf(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int oee_vasprintf(char **out, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

#ifdef __cplusplus
}
#endif

#endif /* OEE_ALLOC_H */
