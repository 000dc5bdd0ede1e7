/* signals.c - one thread takes the process's stop signals (see signals.h). */
#include "server/signals.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

#include "core/oee_alloc.h"
#include "server/log.h"

struct oee_signals {
  pthread_t thread;
  atomic_int stop_requests; /* SIGTERM + SIGINT taken so far */
  atomic_int quit;          /* set by oee_signals_stop before it wakes us */
};

static void stop_set(sigset_t *set) {
  sigemptyset(set);
  sigaddset(set, SIGTERM);
  sigaddset(set, SIGINT);
  sigaddset(set, SIGHUP);
}

int oee_signals_block(void) {
  sigset_t set;
  stop_set(&set);
  /* A write to a closed connection must fail with EPIPE, not kill us. */
  signal(SIGPIPE, SIG_IGN);
  return pthread_sigmask(SIG_BLOCK, &set, NULL) == 0 ? 0 : -1;
}

static const char *sig_name(int sig) {
  return sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : "SIGHUP";
}

static void *wait_main(void *arg) {
  oee_signals *sg = arg;
  sigset_t set;
  stop_set(&set);
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    if (atomic_load(&sg->quit)) return NULL;
    if (sig == SIGHUP) {
      oee_log(OEE_LOG_INFO, "signal_ignored", "signal=SIGHUP");
      continue;
    }
    int n = atomic_fetch_add(&sg->stop_requests, 1) + 1;
    oee_log(OEE_LOG_INFO, "signal", "signal=%s stop_requests=%d", sig_name(sig), n);
  }
}

int oee_signals_start(oee_signals **out) {
  oee_signals *sg = oee_calloc(1, sizeof(*sg));
  if (sg == NULL) return -1;
  atomic_init(&sg->stop_requests, 0);
  atomic_init(&sg->quit, 0);
  int rc = pthread_create(&sg->thread, NULL, wait_main, sg);
  if (rc != 0) {
    oee_free(sg);
    errno = rc;
    return -1;
  }
  *out = sg;
  return 0;
}

const atomic_int *oee_signals_stop_requests(const oee_signals *sg) { return &sg->stop_requests; }

void oee_signals_stop(oee_signals *sg) {
  if (sg == NULL) return;
  /* SIGHUP aimed at the thread itself wakes its sigwait; quit tells it why. */
  atomic_store(&sg->quit, 1);
  if (pthread_kill(sg->thread, SIGHUP) != 0) abort();
  pthread_join(sg->thread, NULL);
  oee_free(sg);
}
