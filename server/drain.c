/* drain.c - the shutdown sequence (see drain.h). */
#include "server/drain.h"

#include <stdlib.h>
#include <time.h>

#include "server/log.h"
#include "server/service.h"

static int64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The helper thread: engine stop blocks until running tasks end. */
static void *drain_main(void *arg) {
  oee_service *s = arg;
  int64_t ms = (int64_t)(s->cfg->drain_timeout * 1000.0);
  oee_engine_stop(s->eng, ms);
  atomic_store(&s->drained, 1);
  return NULL;
}

/* Refuse work, let running tasks finish on a helper thread, keep feeding
 * watchers. */
static void begin_drain(oee_service *s) {
  s->state = OEE_DRAINING;
  atomic_store(&s->serving, 0); /* /healthz answers 503 from now on */
  oee_log(OEE_LOG_INFO, "draining", "running_tasks_finish_within=%.1fs", s->cfg->drain_timeout);
  oee_engine_refuse_submissions(s->eng);
  oee_health_set_not_serving(s->health);
  if (pthread_create(&s->drain_thread, NULL, drain_main, s) != 0) abort();
  s->drain_started = 1;
  oee_rpc_server_set_tick_interval(s->srv, OEE_TICK_DRAINING_MS);
}

static void hurry(oee_service *s) {
  s->hurried = 1;
  oee_log(OEE_LOG_WARN, "stop_now", "reason=second_signal");
  oee_engine_cancel_running(s->eng);
}

static void begin_flush(oee_service *s) {
  s->state = OEE_FLUSHING;
  /* Even in a hurry, the final events of just-cancelled tasks go out. */
  int64_t grace = s->hurried ? OEE_FLUSH_GRACE_NS / OEE_FLUSH_HURRIED_DIVISOR : OEE_FLUSH_GRACE_NS;
  s->flush_deadline_ns = mono_ns() + grace;
}

static void stop_serving(oee_service *s) {
  s->state = OEE_STOPPED;
  oee_watch_hub_finish_all(s->hub, GRPC_STATUS_UNAVAILABLE, "server is shutting down");
  oee_health_finish_all(s->health, GRPC_STATUS_UNAVAILABLE, "server is shutting down");
  oee_log(OEE_LOG_INFO, "stopping", "watchers=%zu", oee_watch_hub_count(s->hub));
  oee_rpc_server_shutdown(s->srv);
}

void oee_service_tick(void *arg) {
  oee_service *s = arg;
  int stops = s->stop_requests ? atomic_load(s->stop_requests) : 0;
  if (stops >= 1 && s->state == OEE_SERVING) begin_drain(s);
  if (stops >= 2 && !s->hurried) hurry(s);
  oee_watch_hub_pump(s->hub);
  if (s->state == OEE_DRAINING && atomic_load(&s->drained)) begin_flush(s);
  if (s->state == OEE_FLUSHING &&
      (oee_watch_hub_flushed(s->hub) || mono_ns() >= s->flush_deadline_ns)) {
    stop_serving(s);
  }
}
