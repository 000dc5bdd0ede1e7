/*
 * retention.c - finished tasks do not pile up: a task finished for longer
 * than retention_seconds, or beyond the newest max_finished, is deleted (and,
 * in a durable engine, its row too).
 *
 * DESIGN
 * One thread per engine that has a rule, started and stopped with the
 * workers. It takes the engine lock for at most RETENTION_BATCH deletions at
 * a time and lets go between batches, so a large backlog never stalls the
 * queue; when nothing more is due it sleeps RETENTION_TICK_NS, which keeps a
 * due task at most that late (the contract allows 5 s). The store keeps
 * finished tasks in completion order, so each batch starts at the oldest.
 * Lock order: eng->lock -> committer lock (durable deletions).
 */
#include <malloc.h>

#include "core/engine.h"
#include "core/sync.h"

#define RETENTION_BATCH 1024
#define RETENTION_TICK_NS (1000LL * 1000 * 1000)
#define NS_PER_SECOND (1000LL * 1000 * 1000)
#define TRIM_AFTER 65536 /* deletions between two malloc_trim calls */

/* Completion times before this are past the age rule (0: no rule). */
static int64_t due_before(const oee_engine *eng) {
  if (eng->retention_seconds == 0) return 0;
  return oee_now_ns() - (int64_t)eng->retention_seconds * NS_PER_SECOND;
}

/* One batch under the lock (memory store); how many went. */
static long expire_batch(oee_engine *eng) {
  size_t keep = eng->max_finished ? eng->max_finished : SIZE_MAX;
  return eng->store->ops->expire(eng->store, due_before(eng), keep, RETENTION_BATCH, oee__task_drop,
                                 NULL);
}

/* A durable batch: one purge, waited for. */
typedef struct purge_wait {
  oee__latch done;
  size_t deleted;
} purge_wait;

static void purge_waited(void *arg, int rc, size_t deleted, const oee_error *err) {
  (void)rc; /* a failed purge deleted nothing; the next tick tries again */
  (void)err;
  purge_wait *w = arg;
  w->deleted = deleted;
  oee__latch_set(&w->done);
}

/* One durable batch, no lock held; how many rows went. */
static long purge_batch(oee_engine *eng) {
  purge_wait w = {.deleted = 0};
  if (oee__latch_init(&w.done) != 0) return 0;
  uint64_t keep = eng->max_finished ? eng->max_finished : UINT64_MAX;
  if (oee__durable_purge(eng, due_before(eng), keep, RETENTION_BATCH, purge_waited, &w) == 0) {
    oee__latch_wait(&w.done);
  }
  oee__latch_destroy(&w.done);
  return (long)w.deleted;
}

static void *retention_main(void *arg) {
  oee_engine *eng = arg;
  size_t since_trim = 0;
  oee__lock(&eng->lock);
  while (!eng->retention_stop) {
    long n;
    if (eng->committer) {
      oee__unlock(&eng->lock);
      n = purge_batch(eng);
      oee__lock(&eng->lock);
    } else {
      n = expire_batch(eng);
    }
    since_trim += (size_t)n;
    if (n == RETENTION_BATCH) { /* more is due: let others in, go on */
      oee__unlock(&eng->lock);
      oee__lock(&eng->lock);
      continue;
    }
    if (since_trim >= TRIM_AFTER) { /* freed snapshots: give pages back */
      since_trim = 0;
      oee__unlock(&eng->lock);
      malloc_trim(0);
      oee__lock(&eng->lock);
    }
    if (!eng->retention_stop) {
      oee__wait_until(&eng->retention_cv, &eng->lock, oee__mono_ns() + RETENTION_TICK_NS);
    }
  }
  oee__unlock(&eng->lock);
  return NULL;
}

int oee__retention_start(oee_engine *eng) {
  if (eng->retention_seconds == 0 && eng->max_finished == 0) return 0;
  eng->retention_stop = 0;
  if (pthread_create(&eng->retention_thread, NULL, retention_main, eng) != 0) return OEE_ENOMEM;
  eng->retention_running = 1;
  return 0;
}

void oee__retention_stop(oee_engine *eng) {
  if (!eng->retention_running) return;
  oee__lock(&eng->lock);
  eng->retention_stop = 1;
  oee__signal(&eng->retention_cv);
  oee__unlock(&eng->lock);
  pthread_join(eng->retention_thread, NULL);
  eng->retention_running = 0;
}
