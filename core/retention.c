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

/* A task the rules removed (lock held). */
static void expired(oee_task *t, void *arg) {
  oee_engine *eng = arg;
  if (eng->committer) oee__durable_delete(eng, t->snap->id);
  oee__task_free(t);
}

/* One batch under the lock; how many went. */
static long expire_batch(oee_engine *eng) {
  int64_t before = 0;
  if (eng->retention_seconds > 0) {
    before = oee_now_ns() - (int64_t)eng->retention_seconds * NS_PER_SECOND;
  }
  size_t keep = eng->max_finished ? eng->max_finished : SIZE_MAX;
  return eng->store->ops->expire(eng->store, before, keep, RETENTION_BATCH, expired, eng);
}

static void *retention_main(void *arg) {
  oee_engine *eng = arg;
  size_t since_trim = 0;
  oee__lock(&eng->lock);
  while (!eng->retention_stop) {
    long n = expire_batch(eng);
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
