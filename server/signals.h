/*
 * signals.h - SIGTERM, SIGINT and SIGHUP taken by one dedicated thread.
 *
 * DESIGN: oee_signals_block(), the first call in main(), blocks the three
 * signals in the calling thread; every thread created afterwards (gRPC's,
 * the engine's workers, the drain helper) inherits the mask, so the kernel
 * can deliver them nowhere but to the thread of oee_signals_start(), which
 * waits for them with sigwait(). No asynchronous handler ever runs: a
 * signal cannot land on a thread parked inside libgrpc (where a sanitizer
 * defers handlers indefinitely), and one sent during start-up stays pending
 * until the thread takes it, then sits in the counter until the server's
 * tick reads it. SIGTERM and SIGINT each add one stop request (the first
 * drains, the second hurries: drain.h); SIGHUP is logged and ignored until
 * reloading exists.
 */
#ifndef OEE_SERVER_SIGNALS_H
#define OEE_SERVER_SIGNALS_H

#include <stdatomic.h>

typedef struct oee_signals oee_signals;

/* Blocks SIGTERM, SIGINT and SIGHUP in the calling thread and, by
 * inheritance, in every thread it creates later; ignores SIGPIPE. 0 or -1. */
int oee_signals_block(void);
/* Starts the waiting thread; the caller owns *out. 0 or -1 (then errno). */
int oee_signals_start(oee_signals **out);
/* The stop requests so far (SIGTERM + SIGINT). Valid until oee_signals_stop. */
const atomic_int *oee_signals_stop_requests(const oee_signals *sg);
/* Ends and joins the thread and frees sg; sg may be NULL. */
void oee_signals_stop(oee_signals *sg);

#endif /* OEE_SERVER_SIGNALS_H */
