/*
 * token.c - cooperative cancellation tokens.
 *
 * DESIGN: a token is cancelled at most once, by any thread. Executors poll
 * oee_token_cancelled() (an atomic load, no lock), sleep in oee_token_wait()
 * (mutex + monotonic condition variable), or watch oee_token_fd() (an
 * eventfd, created lazily, written once on cancel) alongside other fds.
 * `lock` guards `efd` and serialises cancel against waiters.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/internal.h"
#include "core/oee_alloc.h"
#include "core/sync.h"

struct oee_token {
  atomic_int cancelled;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int efd; /* -1 until oee_token_fd() asked for one */
};

int oee_token_create(oee_token **out) {
  oee_token *t = oee_calloc(1, sizeof(*t));
  if (t == NULL) return OEE_ENOMEM;
  atomic_init(&t->cancelled, 0);
  if (oee__mutex_init(&t->lock) != 0) goto fail;
  if (oee__cond_init(&t->cond) != 0) {
    pthread_mutex_destroy(&t->lock);
    goto fail;
  }
  t->efd = -1;
  *out = t;
  return 0;
fail:
  oee_free(t);
  return OEE_ENOMEM;
}

void oee_token_destroy(oee_token *t) {
  if (t == NULL) return;
  if (t->efd >= 0) close(t->efd);
  pthread_cond_destroy(&t->cond);
  pthread_mutex_destroy(&t->lock);
  oee_free(t);
}

int oee_token_cancelled(const oee_token *t) {
  return atomic_load_explicit(&t->cancelled, memory_order_acquire);
}

void oee_token_cancel(oee_token *t) {
  oee__lock(&t->lock);
  if (!atomic_exchange(&t->cancelled, 1)) {
    if (t->efd >= 0) {
      uint64_t one = 1;
      ssize_t n = write(t->efd, &one, sizeof(one));
      (void)n; /* an eventfd write of 1 cannot fail short of overflow */
    }
    oee__broadcast(&t->cond);
  }
  oee__unlock(&t->lock);
}

int oee_token_wait(oee_token *t, int64_t timeout_ms) {
  int64_t deadline = oee__mono_ns() + timeout_ms * 1000000;
  oee__lock(&t->lock);
  while (!atomic_load(&t->cancelled)) {
    if (timeout_ms < 0) {
      oee__wait(&t->cond, &t->lock);
    } else if (oee__wait_until(&t->cond, &t->lock, deadline)) {
      break;
    }
  }
  int c = atomic_load(&t->cancelled);
  oee__unlock(&t->lock);
  return c;
}

int oee_token_fd(oee_token *t) {
  oee__lock(&t->lock);
  if (t->efd < 0) {
    t->efd = eventfd(atomic_load(&t->cancelled) ? 1 : 0, EFD_CLOEXEC | EFD_NONBLOCK);
  }
  int fd = t->efd;
  oee__unlock(&t->lock);
  return fd;
}
