/*
 * committer.h - group commit: many changes, one durable write.
 *
 * DESIGN
 * Threads: any number of producers (the engine, under its own lock) append
 * items; one committer thread takes everything pending, writes it to the
 * database in one transaction (oee_db_write) and then calls each item's
 * `done` in the order the items were appended. A producer never waits for
 * the disk: appending is a pointer swap under `lock`, which is a leaf lock
 * (nothing else is taken while it is held, no callback runs under it).
 * The more producers append while a write is in flight, the larger the
 * next batch: the cost of an fsync is shared by everything it carries.
 * Without a database (the memory store) the thread skips the write and only
 * calls `done`, so both stores take the same path.
 * Failures: a write that fails (disk full, I/O error) stores nothing. Items
 * marked `must_store` (status changes) stay at the head of the queue and are
 * written again after a pause that doubles up to a second; the others (new
 * submissions, which the caller has not acknowledged yet) are handed back to
 * `done` with the error, so the caller can refuse them.
 * Order: `done` calls happen in append order, one batch after the other,
 * so what they publish keeps the order of the changes.
 * Flushing (a database that needs it, db.h: sync full): a written batch is
 * handed to a second thread, the flusher, which makes everything written so
 * far durable with one oee_db_flush() and only then calls the `done`s; the
 * writer meanwhile writes the next batch. `early` runs on the writer right
 * after the write (a worker may start a task whose RUNNING row is written:
 * a killed process finds it RUNNING). A flush that fails stops the process:
 * what was written may be lost on power loss and a retry cannot tell, so
 * nothing of it may be acknowledged (PostgreSQL answers fsync errors the
 * same way). `done`s of refused items run on the writer.
 */
#ifndef OEE_COMMITTER_H
#define OEE_COMMITTER_H

#include <stddef.h>
#include <stdint.h>

#include "core/db.h"
#include "core/oee.h"

typedef struct oee_committer oee_committer;
typedef struct oee_commit_item oee_commit_item;

/* Called once per item after the batch that carried it was stored (rc 0)
 * or refused (rc < 0 and *err says why). Runs on the committer thread with
 * no committer lock held; it may append new items. */
typedef void (*oee_commit_done_fn)(oee_commit_item *item, int rc, const oee_error *err);

/* An item is owned by its producer: the committer links it in a list and
 * never frees it. It must stay alive until `done` ran. */
struct oee_commit_item {
  oee_commit_item *next;     /* the committer's queue; guarded by its lock */
  const oee_task_info *snap; /* the row to store (borrowed), or NULL */
  int from;                  /* the status the row held before, -1: new */
  const void *payload;       /* the executor's stored bytes (borrowed), or
                              * NULL: the row keeps the ones it has */
  size_t payload_len;
  const oee_db_sched *sched; /* a schedule's row to write (borrowed), or NULL */
  oee_db_purge *purge;       /* finished rows to delete (borrowed), or NULL;
                              * its results are set when `done` runs */
  int must_store;            /* 1: retried until stored, never refused */
  oee_commit_done_fn done;   /* may be NULL */
  oee_commit_done_fn early;  /* may be NULL: called (rc 0) as soon as the
                              * batch is written, before it is flushed to
                              * stable storage and before any `done` */
  void *arg;                 /* the producer's, for `done` and `early` */
};

typedef struct oee_committer_stats {
  uint64_t batches;       /* transactions written (or passed, memory) */
  uint64_t items;         /* items they carried */
  uint64_t failures;      /* writes that failed */
  int64_t last_commit_ns; /* duration of the last write, ns */
} oee_committer_stats;

/*
 * Starts the committer thread. `db` (borrowed, may be NULL for the memory
 * store) must outlive the committer. `max_batch` bounds the items of one
 * transaction (0 = 16384). `meta` is where the stored counters start.
 */
int oee_committer_create(oee_db *db, size_t max_batch, const oee_db_meta *meta,
                         oee_committer **out);

/*
 * Optional hooks around the `done` calls: begin(arg) before a group of at
 * most OEE_COMMIT_GROUP of them, end(arg) after it, on the committer thread.
 * A producer whose callbacks all need the same lock takes it once per group
 * instead of once per item (and lets go between groups, so it is never held
 * for a whole large batch). Set before the first append.
 */
#define OEE_COMMIT_GROUP 256
void oee_committer_set_hooks(oee_committer *c, void (*begin)(void *), void (*end)(void *),
                             void *arg);

/* Appends an item; constant work, never waits for the disk. The counters
 * stored with the batch follow the largest submit_index and seq seen. */
void oee_committer_append(oee_committer *c, oee_commit_item *item);

/* Waits until everything appended before the call is stored (or, for items
 * not marked must_store, refused). */
void oee_committer_flush(oee_committer *c);

/* For tests: holds every write back (1) until released (0); appending
 * goes on. */
void oee__committer_pause(oee_committer *c, int paused);

void oee_committer_stats_get(oee_committer *c, oee_committer_stats *out);

/* The group commits so far (any thread, no lock): with a database, one
 * observation per group, from the start of its write until it is stored
 * (written, and flushed when the database needs it); none without one or
 * for a write that failed. */
void oee_committer_commits(oee_committer *c, oee_histogram *out);

/* Writes what is pending, stops the thread and frees the committer. Items
 * still failing when it stops are handed to `done` with OEE_ESTOPPED. */
void oee_committer_destroy(oee_committer *c);

#endif /* OEE_COMMITTER_H */
