/*
 * store.h - the task store interface.
 *
 * The engine keeps the queue and the worker pool; the store keeps the task
 * records in memory: lookup by id, submission order for listings,
 * completion order for clearing, and counts by status and type kept
 * incrementally. With the memory store it holds every task. In a durable
 * engine it holds the unfinished tasks and a bounded cache of recently
 * finished ones, while the database (db.h, whose DESIGN comment also plans
 * the PostgreSQL store for several replicas) holds every task and answers
 * listings and counts.
 *
 * Every operation is called with the engine lock held: a store needs no
 * locking of its own.
 */
#ifndef OEE_STORE_H
#define OEE_STORE_H

#include <stdint.h>

#include "core/oee.h"
#include "core/task.h"

typedef struct oee_store oee_store;

/* Called for each task a store removes; the callee frees the record. */
typedef void (*oee_store_drop_fn)(oee_task *t, void *arg);
/* Called for each task by foreach, in submission order. */
typedef void (*oee_store_visit_fn)(oee_task *t, void *arg);

typedef struct oee_store_ops {
  /* Adds a new QUEUED task (t->snap and t->index set, the index larger than
   * any before). 0 or OEE_ENOMEM, the store unchanged on failure. */
  int (*insert)(oee_store *s, oee_task *t);
  /* Makes room for `more` inserts of tasks of `type`, so that they cannot
   * fail (a durable engine reserves before a commit makes a task exist).
   * 0 or OEE_ENOMEM. */
  int (*reserve)(oee_store *s, size_t more, const char *type);
  /* t->snap now holds the new status; `from` is the one it left. */
  void (*changed)(oee_store *s, oee_task *t, oee_task_status from);
  /* The task with this id (any case), or NULL. */
  oee_task *(*lookup)(oee_store *s, const char *id);
  /* A page of snapshots (references taken) in submission order. */
  int (*list)(oee_store *s, const oee_list_query *q, oee_list_page *out);
  /* Removes finished tasks but the `keep` most recently finished. */
  long (*clear_completed)(oee_store *s, long keep, oee_store_drop_fn drop, void *arg);
  /* Removes finished tasks, oldest completed first, at most `limit` of
   * them: those completed before `before_ns` (0 = no age rule) and any
   * beyond the newest `keep`. Returns how many went. */
  long (*expire)(oee_store *s, int64_t before_ns, size_t keep, size_t limit, oee_store_drop_fn drop,
                 void *arg);
  /* Removes one task without freeing it (the caller does). O(1) for the
   * least recently finished task, O(finished tasks held) for another. */
  void (*remove)(oee_store *s, oee_task *t);
  /* The least recently finished task held, or NULL; *n_finished = how many
   * finished tasks are held. */
  oee_task *(*oldest_finished)(oee_store *s, size_t *n_finished);
  /* Counts by status (indexed by oee_task_status) and the total. */
  void (*counts)(oee_store *s, uint64_t by_status[OEE_TASK_STATUS_COUNT], uint64_t *total);
  void (*foreach)(oee_store *s, oee_store_visit_fn visit, void *arg);
  /* Drops every task and frees the store. */
  void (*destroy)(oee_store *s, oee_store_drop_fn drop, void *arg);
} oee_store_ops;

struct oee_store {
  const oee_store_ops *ops;
};

/* The in-memory store. NULL when out of memory. */
oee_store *oee__store_mem_create(void);

#endif /* OEE_STORE_H */
