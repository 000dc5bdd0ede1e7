/*
 * sync.h - pthread wrappers. Creation may fail for lack of resources, so
 * the init helpers return 0 or OEE_ENOMEM and their callers clean up. Once
 * made, a failed lock, unlock, wait or signal means memory corruption or a
 * broken invariant, never bad input, so those wrappers abort.
 */
#ifndef OEE_SYNC_H
#define OEE_SYNC_H

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "core/oee.h"

static inline void oee__lock(pthread_mutex_t *m) {
  if (pthread_mutex_lock(m) != 0) abort();
}

static inline void oee__unlock(pthread_mutex_t *m) {
  if (pthread_mutex_unlock(m) != 0) abort();
}

static inline void oee__signal(pthread_cond_t *c) {
  if (pthread_cond_signal(c) != 0) abort();
}

static inline void oee__broadcast(pthread_cond_t *c) {
  if (pthread_cond_broadcast(c) != 0) abort();
}

/* A default mutex. 0 or OEE_ENOMEM (the only failures are resources). */
static inline int oee__mutex_init(pthread_mutex_t *m) {
  return pthread_mutex_init(m, NULL) == 0 ? 0 : OEE_ENOMEM;
}

/* A condition variable on CLOCK_MONOTONIC, so waits survive clock jumps.
 * 0 or OEE_ENOMEM; nothing is left to destroy on failure. */
static inline int oee__cond_init(pthread_cond_t *c) {
  pthread_condattr_t a;
  if (pthread_condattr_init(&a) != 0) return OEE_ENOMEM;
  int rc = pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
  if (rc == 0) rc = pthread_cond_init(c, &a);
  pthread_condattr_destroy(&a);
  return rc == 0 ? 0 : OEE_ENOMEM;
}

static inline void oee__wait(pthread_cond_t *c, pthread_mutex_t *m) {
  if (pthread_cond_wait(c, m) != 0) abort();
}

/* Waits until the absolute CLOCK_MONOTONIC deadline (ns); 1 on timeout. */
static inline int oee__wait_until(pthread_cond_t *c, pthread_mutex_t *m, int64_t deadline_ns) {
  struct timespec ts;
  ts.tv_sec = (time_t)(deadline_ns / 1000000000);
  ts.tv_nsec = (long)(deadline_ns % 1000000000);
  int rc = pthread_cond_timedwait(c, m, &ts);
  if (rc == ETIMEDOUT) return 1;
  if (rc != 0) abort();
  return 0;
}

/* A one-shot event: a thread waits until another sets it (the synchronous
 * wrappers of asynchronous calls). */
typedef struct oee__latch {
  pthread_mutex_t lock;
  pthread_cond_t cv;
  int set; /* guarded by lock */
} oee__latch;

static inline int oee__latch_init(oee__latch *l) {
  l->set = 0;
  if (pthread_mutex_init(&l->lock, NULL) != 0) return OEE_ENOMEM;
  if (oee__cond_init(&l->cv) != 0) {
    pthread_mutex_destroy(&l->lock);
    return OEE_ENOMEM;
  }
  return 0;
}

static inline void oee__latch_set(oee__latch *l) {
  oee__lock(&l->lock);
  l->set = 1;
  oee__signal(&l->cv);
  oee__unlock(&l->lock);
}

static inline void oee__latch_wait(oee__latch *l) {
  oee__lock(&l->lock);
  while (!l->set) oee__wait(&l->cv, &l->lock);
  oee__unlock(&l->lock);
}

static inline void oee__latch_destroy(oee__latch *l) {
  pthread_cond_destroy(&l->cv);
  pthread_mutex_destroy(&l->lock);
}

#endif /* OEE_SYNC_H */
