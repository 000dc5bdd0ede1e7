/*
 * metrics.h - the engine's counters and histograms, read through
 * oee_engine_type_metrics() and oee_engine_metrics() (oee.h). Internal to
 * the core.
 *
 * DESIGN
 * Every update is a relaxed atomic add made where the engine already is: a
 * submission's acknowledgement and a task's change (both under the engine
 * lock, which the counters neither take nor need), a group commit (the
 * committer's thread). Nothing here has a lock on the hot path or waits,
 * and a reader (a scrape, on any thread) only loads: it never stops the
 * engine. A reader may see a histogram's buckets and its sum from moments
 * a few instructions apart; each number is exact by itself, and a
 * histogram's count is the sum of its buckets, so those always agree.
 * Task types: one slot per type, made when its executor is registered or
 * its remote type configured, up to OEE__METRICS_MAX_TYPES (a type beyond
 * that, or one whose name could not be copied, is not counted). Slots are
 * appended under add_lock (a leaf, taken only to add) and published by a
 * release store of `n`; a published slot's name never changes, so readers
 * take no lock. The executor table keeps each type's slot index, so a
 * submission finds it with the executor it looks up anyway, and the task
 * record keeps it (oee_task.metrics_slot): counting costs no name lookup.
 * A record made elsewhere (recovery) looks its slot up once.
 * Building with -DOEE_NO_METRICS leaves the task counters out (the calls
 * below become empty), to measure what they cost (bench/core_bench).
 */
#ifndef OEE_METRICS_H
#define OEE_METRICS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "core/oee.h"
#include "core/task.h"

/* Task types counted at most; executors and remote types of one engine
 * are a handful (the built-ins are five). */
#define OEE__METRICS_MAX_TYPES 64

/* A live histogram: observations per bucket (see oee_histogram_bucket())
 * and their sum in ns. */
typedef struct oee__hist {
  _Atomic uint64_t buckets[OEE_HISTOGRAM_BUCKETS];
  _Atomic uint64_t sum_ns;
} oee__hist;

/* Counts an observation of `ns` (negative ones count as 0: a clock step). */
void oee__hist_observe(oee__hist *h, int64_t ns);
/* Copies what it counted so far into *out. */
void oee__hist_read(const oee__hist *h, oee_histogram *out);

/* Index of a final status in oee__type_slot.finished. */
enum { OEE__FIN_DONE, OEE__FIN_ERROR, OEE__FIN_CANCELLED, OEE__FIN_COUNT };

typedef struct oee__type_slot {
  char *task_type; /* owned; immutable once published */
  _Atomic uint64_t submitted;
  _Atomic uint64_t retries;
  _Atomic uint64_t finished[OEE__FIN_COUNT];
  oee__hist queue_wait; /* QUEUED -> RUNNING */
  oee__hist run;        /* RUNNING -> the attempt's end */
} oee__type_slot;

typedef struct oee__metrics {
  pthread_mutex_t add_lock; /* serialises adds; never held with another lock */
  _Atomic size_t n;         /* published slots */
  oee__type_slot types[OEE__METRICS_MAX_TYPES];
} oee__metrics;

/* init: 0 or OEE_ENOMEM (the lock); fini frees the names. */
int oee__metrics_init(oee__metrics *m);
void oee__metrics_fini(oee__metrics *m);
/* The slot index of `type`, made unless it has one (any thread; takes
 * add_lock); -1 when there is no room (the type is left uncounted). */
int oee__metrics_add_type(oee__metrics *m, const char *type);
/* The slot of `type`, or NULL. Any thread, no lock. */
oee__type_slot *oee__metrics_find(oee__metrics *m, const char *type);

#ifndef OEE_NO_METRICS
/* A submission of t was acknowledged (engine lock held: t's slot cache). */
void oee__metrics_submitted(oee__metrics *m, oee_task *t);
/* t changed from `from` to `to` (engine lock held, to->changed_at_ns set):
 * counts a start's queue wait, an attempt's run time, a retry, a final
 * status. */
void oee__metrics_changed(oee__metrics *m, oee_task *t, const oee_task_info *from,
                          const oee_task_info *to);
#else
static inline void oee__metrics_submitted(oee__metrics *m, oee_task *t) {
  (void)m;
  (void)t;
}
static inline void oee__metrics_changed(oee__metrics *m, oee_task *t, const oee_task_info *from,
                                        const oee_task_info *to) {
  (void)m;
  (void)t;
  (void)from;
  (void)to;
}
#endif

#endif /* OEE_METRICS_H */
