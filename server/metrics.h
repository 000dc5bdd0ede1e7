/*
 * metrics.h - what GET /metrics shows (API.md "Metrics and logs"): the
 * engine's counters and gauges, the server's per-method call counters, its
 * watchers, and the process's own numbers, in the Prometheus text format
 * (expo.h). The HTTP endpoint is metrics_http.h.
 *
 * DESIGN
 * Calls are counted by the server runtime's observe hook
 * (oee_rpc_server_set_observe), on whatever thread ends a call: one slot
 * per registered oee.v1 method, made before the server starts, so the hook
 * is an index lookup and relaxed atomic adds (no lock, no allocation). The
 * label `method` is the short RPC name (after the last '/'); two paths with
 * the same short name would share a slot. Health and reflection are left
 * out: probes and tools, not the service's traffic (and reflection's v1
 * and v1alpha share a name). Rendering (any thread, one at a time per
 * buffer) reads those atomics and asks the engine (oee_engine_metrics,
 * oee_engine_type_metrics); nothing it writes comes from a task's context
 * or a token.
 */
#ifndef OEE_SERVER_METRICS_H
#define OEE_SERVER_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "core/oee.h"
#include "server/expo.h"
#include "server/rt/rpc_server.h"

/* The registered methods counted: paths with this prefix. */
#define OEE_METRICS_METHOD_PREFIX "/oee.v1."

typedef struct oee_rpc_stats oee_rpc_stats;

/* Slots for the methods of srv whose path starts with `prefix` (all
 * methods registered so far; register them first). 0, or -1 when out of
 * memory. Free with oee_rpc_stats_destroy() after the server is destroyed
 * (the hook may run until then). */
int oee_rpc_stats_create(const oee_rpc_server *srv, const char *prefix, oee_rpc_stats **out);
void oee_rpc_stats_destroy(oee_rpc_stats *st);
/* The observe hook (ud is the oee_rpc_stats); any thread, lock-free. */
void oee_rpc_stats_observe(void *ud, size_t method, grpc_status_code code, int64_t duration_ns);

/* Where a scrape's numbers come from; every pointer borrowed and valid
 * while the endpoint runs. */
typedef struct oee_metrics_source {
  oee_engine *eng;
  const oee_rpc_stats *rpc; /* NULL: no call series */
  void *ud;                 /* for the two functions below */
  /* Open WatchTasks streams now (any thread); NULL: 0. */
  size_t (*watchers)(void *ud);
  /* 1 while serving, 0 once draining (any thread); NULL: always 1. */
  int (*serving)(void *ud);
} oee_metrics_source;

/* The process's own numbers, from /proc/self. */
typedef struct oee_process_stats {
  uint64_t resident_bytes;
  double cpu_seconds;        /* user + system */
  uint64_t open_fds;         /* entries of /proc/self/fd */
  double start_time_seconds; /* since the epoch */
} oee_process_stats;

/* 0, or -1 when /proc could not be read (then *out holds what could). */
int oee_process_stats_read(oee_process_stats *out);

/* Writes every family (# HELP, # TYPE and the samples) into e. 0, or -1
 * when memory ran out (e->failed). */
int oee_metrics_render(const oee_metrics_source *src, oee_expo *e);

#endif /* OEE_SERVER_METRICS_H */
