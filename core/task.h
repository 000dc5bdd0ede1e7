/*
 * task.h - the task record the engine keeps per task, and the packing of
 * immutable snapshots (oee_task_info).
 *
 * A task's visible state is always its current snapshot: every change
 * builds a new snapshot (copy on write) and swaps it in under the engine
 * lock. Readers (GetTask, events, listings) take a reference to a snapshot
 * and never see a half-made change; no copy is made to read.
 */
#ifndef OEE_TASK_H
#define OEE_TASK_H

#include <stddef.h>
#include <stdint.h>

#include "core/internal.h"
#include "core/oee.h"

/* Executor-specific data attached to a task (pipelines), owned by the task. */
typedef struct oee_payload {
  void *data;
  const oee_payload_ops *ops;
} oee_payload;

/*
 * 88 bytes per task, which glibc serves from the same 96-byte chunk as the
 * 80 bytes before id_hash was added: the queue and the store are most of
 * the memory a million queued tasks take, so rarely used fields live behind
 * pointers (metrics_slot fills what was padding).
 */
typedef struct oee_task {
  const oee_task_info *snap;  /* current snapshot (one owned reference) */
  const oee_task_info *shown; /* durable engines: the last stored snapshot,
                               * which readers see while `snap` is not stored
                               * yet (a reference); NULL once `snap` is */
  struct oee_task *hnext;     /* the store's id hash chain */
  struct oee_task *done_next; /* the store's completion-order list */
  oee_token *token;           /* cancellation token while RUNNING, else NULL */
  oee_payload *payload;       /* NULL unless the executor attached data */
  struct oee__graph *graph;   /* dependencies (graph.c); NULL outside a graph */
  uint64_t index;             /* submission order, == snap->submit_index */
  uint32_t heap_pos;          /* position in the queue, OEE_TASK_NOT_QUEUED if none */
  uint32_t order_pos;         /* the store's slot for submission order */
  int32_t priority;           /* == snap->priority, kept here for the heap */
  int32_t metrics_slot;       /* the type's slot in metrics.c + 1, set at
                               * submission; -1 = none; 0 = not looked up yet
                               * (a record read back), done with the lock held */
  uint32_t id_hash;           /* the memory store's hash of snap->id, set by
                               * its insert: growing the table then reads no
                               * snapshot */
} oee_task;

_Static_assert(sizeof(void *) != 8 || sizeof(oee_task) == 88, "oee_task grew past 88 bytes");

#define OEE_TASK_NOT_QUEUED UINT32_MAX

/*
 * Packs `draft` into one new snapshot with a reference count of 1. String
 * pointers in the draft may be NULL (stored as ""); the context must be
 * sorted by key already. Returns NULL when out of memory.
 */
oee_task_info *oee__snap_pack(const oee_task_info *draft);
/* The same with at least `prefix` bytes reserved for the caller in the same
 * allocation (the durable engine keeps each snapshot's commit link there, so
 * storing a change never allocates). They live as long as the snapshot. */
oee_task_info *oee__snap_pack_prefixed(const oee_task_info *draft, size_t prefix);
/* The reserved bytes of a snapshot packed with a prefix, else NULL. */
void *oee__snap_prefix(const oee_task_info *t);

/*
 * Copies `n` context entries into an array sorted by key (the strings are
 * still borrowed): `buf` (room for `buf_n`) when they fit, else a new
 * allocation the caller frees when *out != buf. OEE_EINVAL for a NULL or
 * duplicate key or NULL value (the reason in *err, which may be NULL),
 * OEE_ENOMEM. *out is NULL when n == 0.
 */
int oee__context_sorted(const oee_kv *kv, size_t n, oee_kv *buf, size_t buf_n, oee_kv **out,
                        oee_error *err);

/*
 * Writes a new task id, a UUID v7 in lower case, NUL-terminated; the same as
 * oee__id_new() in core/id.h, kept under this name for the task's callers.
 */
void oee__new_id(char out[OEE_ID_LEN + 1]);

#endif /* OEE_TASK_H */
