/*
 * heap.h - a binary min-heap of opaque elements (after beanstalkd's heap.c).
 *
 * `less(a, b)` orders elements: the root is the element no other is less
 * than. After every move the heap calls `setpos(elem, index)` so an element
 * knows where it lives; oee_heap_remove() then takes it out in O(log n).
 * Removed or popped elements get setpos(elem, OEE_HEAP_NONE).
 * Not thread-safe: the owner serialises access.
 */
#ifndef OEE_HEAP_H
#define OEE_HEAP_H

#include <stddef.h>
#include <stdint.h>

#define OEE_HEAP_NONE SIZE_MAX

typedef int (*oee_heap_less_fn)(const void *a, const void *b);
typedef void (*oee_heap_setpos_fn)(void *elem, size_t pos);

typedef struct oee_heap {
  void **items; /* items[0] is the root */
  size_t len;
  size_t cap;
  oee_heap_less_fn less;
  oee_heap_setpos_fn setpos;
} oee_heap;

void oee_heap_init(oee_heap *h, oee_heap_less_fn less, oee_heap_setpos_fn setpos);
/* Frees the array; the elements belong to the caller. */
void oee_heap_fini(oee_heap *h);
/* Grows the array so `n` more pushes cannot fail. 0 or OEE_ENOMEM. */
int oee_heap_reserve(oee_heap *h, size_t n);
/* 0 or OEE_ENOMEM (the heap is unchanged on failure). */
int oee_heap_push(oee_heap *h, void *elem);
/* The root, or NULL when empty. */
void *oee_heap_peek(const oee_heap *h);
/* Removes and returns the root, or NULL when empty. */
void *oee_heap_pop(oee_heap *h);
/* Removes and returns the element at `pos` (as told by setpos), or NULL. */
void *oee_heap_remove(oee_heap *h, size_t pos);

#endif /* OEE_HEAP_H */
