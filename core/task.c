/*
 * task.c - lifecycle rules, ids and snapshot packing.
 *
 * A snapshot is a single allocation laid out as
 *   [refs][oee_task_info][oee_kv x context_len][string bytes ...]
 * so that freeing it is one oee_free() and reading it touches one block.
 */
#include "core/task.h"

#include <stdalign.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/id.h"

#include "core/oee_alloc.h"

/* `prefix` bytes reserved for the caller sit before the block in the same
 * allocation (oee__snap_pack_prefixed); it fills padding that the 8-byte
 * alignment of `info` leaves anyway. */
typedef struct snap_block {
  atomic_uint refs;
  uint32_t prefix;
  oee_task_info info;
} snap_block;

#define SNAP_OF(t) ((snap_block *)((char *)(t)-offsetof(snap_block, info)))

static const char *const status_names[OEE_TASK_STATUS_COUNT] = {
    "unspecified", "queued", "running", "done", "error", "cancelled", "scheduled",
};

const char *oee_task_status_name(oee_task_status s) {
  if ((unsigned)s >= OEE_TASK_STATUS_COUNT) return status_names[0];
  return status_names[s];
}

int oee_task_status_is_terminal(oee_task_status s) {
  return s == OEE_TASK_DONE || s == OEE_TASK_ERROR || s == OEE_TASK_CANCELLED;
}

/* The lifecycle as a table: bit `to` of edges[from] (see oee.h). Every
 * status change the engine makes is checked against it where the task's
 * snapshot is swapped (oee__task_swap_packed, job.c). ERROR and CANCELLED
 * lead only back to QUEUED or SCHEDULED (RetryTask); a retried task whose
 * dependency still failed ends CANCELLED again from there, so no event
 * repeats a status. */
#define EDGE(s) (1u << (s))
static const unsigned edges[OEE_TASK_STATUS_COUNT] = {
    [OEE_TASK_UNSPECIFIED] =
        EDGE(OEE_TASK_QUEUED) | EDGE(OEE_TASK_SCHEDULED) | EDGE(OEE_TASK_CANCELLED),
    [OEE_TASK_SCHEDULED] = EDGE(OEE_TASK_QUEUED) | EDGE(OEE_TASK_CANCELLED),
    [OEE_TASK_QUEUED] = EDGE(OEE_TASK_RUNNING) | EDGE(OEE_TASK_CANCELLED),
    [OEE_TASK_RUNNING] = EDGE(OEE_TASK_DONE) | EDGE(OEE_TASK_ERROR) | EDGE(OEE_TASK_CANCELLED) |
                         EDGE(OEE_TASK_SCHEDULED),
    [OEE_TASK_DONE] = 0,
    [OEE_TASK_ERROR] = EDGE(OEE_TASK_QUEUED) | EDGE(OEE_TASK_SCHEDULED),
    [OEE_TASK_CANCELLED] = EDGE(OEE_TASK_QUEUED) | EDGE(OEE_TASK_SCHEDULED),
};

int oee_task_transition_check(oee_task_status from, oee_task_status to) {
  if ((unsigned)from >= OEE_TASK_STATUS_COUNT || (unsigned)to >= OEE_TASK_STATUS_COUNT) {
    return OEE_ESTATE;
  }
  return edges[from] & EDGE(to) ? 0 : OEE_ESTATE;
}

void oee__new_id(char out[OEE_ID_LEN + 1]) { oee__id_new(out); }

static size_t slen(const char *s) { return s ? strlen(s) + 1 : 1; }

/* Copies s (NULL -> "") to *cursor and advances it past the NUL: one pass
 * (stpcpy), the length having been counted already to size the block. */
static const char *put_str(char **cursor, const char *s) {
  char *dst = *cursor;
  if (s) {
    *cursor = stpcpy(dst, s) + 1;
  } else {
    dst[0] = '\0';
    *cursor = dst + 1;
  }
  return dst;
}

oee_task_info *oee__snap_pack(const oee_task_info *d) { return oee__snap_pack_prefixed(d, 0); }

oee_task_info *oee__snap_pack_prefixed(const oee_task_info *d, size_t prefix) {
  prefix = (prefix + alignof(max_align_t) - 1) / alignof(max_align_t) * alignof(max_align_t);
  size_t bytes = prefix + sizeof(snap_block) + d->context_len * sizeof(oee_kv) +
                 d->depends_on_len * sizeof(char *);
  bytes += slen(d->name) + slen(d->task_type) + slen(d->result) + slen(d->error_message);
  bytes += slen(d->idempotency_key) + slen(d->schedule_id) + slen(d->remote_worker_id);
  for (size_t i = 0; i < d->context_len; i++) {
    bytes += slen(d->context[i].key) + slen(d->context[i].value);
  }
  for (size_t i = 0; i < d->depends_on_len; i++) bytes += slen(d->depends_on[i]);
  char *base = oee_malloc(bytes);
  if (base == NULL) return NULL;
  snap_block *b = (snap_block *)(base + prefix);
  atomic_init(&b->refs, 1);
  b->prefix = (uint32_t)prefix;
  oee_task_info *t = &b->info;
  *t = *d;
  oee_kv *kv = (oee_kv *)(b + 1);
  const char **deps = (const char **)(kv + d->context_len);
  char *cur = (char *)(deps + d->depends_on_len);
  for (size_t i = 0; i < d->context_len; i++) {
    kv[i].key = put_str(&cur, d->context[i].key);
    kv[i].value = put_str(&cur, d->context[i].value);
  }
  for (size_t i = 0; i < d->depends_on_len; i++) deps[i] = put_str(&cur, d->depends_on[i]);
  t->context = d->context_len ? kv : NULL;
  t->depends_on = d->depends_on_len ? deps : NULL;
  t->name = put_str(&cur, d->name);
  t->task_type = put_str(&cur, d->task_type);
  t->result = put_str(&cur, d->result);
  t->error_message = put_str(&cur, d->error_message);
  t->idempotency_key = put_str(&cur, d->idempotency_key);
  t->schedule_id = put_str(&cur, d->schedule_id);
  t->remote_worker_id = put_str(&cur, d->remote_worker_id);
  return t;
}

const oee_task_info *oee_task_info_ref(const oee_task_info *t) {
  atomic_fetch_add_explicit(&SNAP_OF(t)->refs, 1, memory_order_relaxed);
  return t;
}

void oee_task_info_unref(const oee_task_info *t) {
  if (t == NULL) return;
  snap_block *b = SNAP_OF(t);
  if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1) {
    oee_free((char *)b - b->prefix);
  }
}

void *oee__snap_prefix(const oee_task_info *t) {
  snap_block *b = SNAP_OF(t);
  return b->prefix ? (char *)b - b->prefix : NULL;
}

const char *oee_task_info_context(const oee_task_info *t, const char *key) {
  size_t lo = 0, hi = t->context_len;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(t->context[mid].key, key);
    if (c == 0) return t->context[mid].value;
    if (c < 0) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return NULL;
}

static int kv_cmp(const void *a, const void *b) {
  return strcmp(((const oee_kv *)a)->key, ((const oee_kv *)b)->key);
}

int oee__context_sorted(const oee_kv *kv, size_t n, oee_kv *buf, size_t buf_n, oee_kv **out,
                        oee_error *err) {
  *out = NULL;
  if (n == 0) return 0;
  if (kv == NULL) return oee_error_set(err, OEE_EINVAL, "context entries are missing");
  for (size_t i = 0; i < n; i++) {
    if (kv[i].key == NULL || kv[i].value == NULL) {
      return oee_error_set(err, OEE_EINVAL, "context entry %zu has no key or no value", i);
    }
  }
  oee_kv *copy = n <= buf_n ? buf : oee_malloc(n * sizeof(*copy));
  if (copy == NULL) return oee_error_set(err, OEE_ENOMEM, "out of memory copying the context");
  memcpy(copy, kv, n * sizeof(*copy));
  if (n > 1) qsort(copy, n, sizeof(*copy), kv_cmp);
  for (size_t i = 1; i < n; i++) {
    if (strcmp(copy[i - 1].key, copy[i].key) == 0) {
      oee_error_set(err, OEE_EINVAL, "context key \"%.64s\" appears more than once", copy[i].key);
      if (copy != buf) oee_free(copy);
      return OEE_EINVAL;
    }
  }
  *out = copy;
  return 0;
}
