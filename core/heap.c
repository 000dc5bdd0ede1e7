/* heap.c - binary heap with element positions (see heap.h). */
#include "core/heap.h"

#include <stdlib.h>

#include "core/oee.h"
#include "core/oee_alloc.h"

void oee_heap_init(oee_heap *h, oee_heap_less_fn less, oee_heap_setpos_fn setpos) {
  h->items = NULL;
  h->len = 0;
  h->cap = 0;
  h->less = less;
  h->setpos = setpos;
}

void oee_heap_fini(oee_heap *h) {
  oee_free(h->items);
  h->items = NULL;
  h->len = h->cap = 0;
}

int oee_heap_reserve(oee_heap *h, size_t n) {
  if (h->len + n <= h->cap) return 0;
  size_t cap = h->cap ? h->cap : 64;
  while (cap < h->len + n) cap *= 2;
  void **items = oee_realloc(h->items, cap * sizeof(*items));
  if (items == NULL) return OEE_ENOMEM;
  h->items = items;
  h->cap = cap;
  return 0;
}

static void put(oee_heap *h, size_t i, void *e) {
  h->items[i] = e;
  h->setpos(e, i);
}

static void sift_up(oee_heap *h, size_t i) {
  void *e = h->items[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!h->less(e, h->items[parent])) break;
    put(h, i, h->items[parent]);
    i = parent;
  }
  put(h, i, e);
}

static void sift_down(oee_heap *h, size_t i) {
  void *e = h->items[i];
  for (;;) {
    size_t best = i, l = 2 * i + 1, r = l + 1;
    void *bv = e;
    if (l < h->len && h->less(h->items[l], bv)) best = l, bv = h->items[l];
    if (r < h->len && h->less(h->items[r], bv)) best = r, bv = h->items[r];
    if (best == i) break;
    put(h, i, bv);
    i = best;
  }
  put(h, i, e);
}

int oee_heap_push(oee_heap *h, void *elem) {
  int rc = oee_heap_reserve(h, 1);
  if (rc != 0) return rc;
  h->items[h->len++] = elem;
  sift_up(h, h->len - 1);
  return 0;
}

void *oee_heap_peek(const oee_heap *h) { return h->len ? h->items[0] : NULL; }

void *oee_heap_pop(oee_heap *h) { return oee_heap_remove(h, 0); }

void *oee_heap_remove(oee_heap *h, size_t pos) {
  if (pos >= h->len) return NULL;
  void *e = h->items[pos];
  void *last = h->items[--h->len];
  if (pos < h->len) {
    h->items[pos] = last;
    /* The moved element may belong above or below its new slot. */
    if (pos > 0 && h->less(last, h->items[(pos - 1) / 2])) {
      sift_up(h, pos);
    } else {
      sift_down(h, pos);
    }
  }
  h->setpos(e, OEE_HEAP_NONE);
  return e;
}
