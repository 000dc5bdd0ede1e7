/*
 * metrics_http.h - the HTTP endpoint on `metrics_listen` (libmicrohttpd):
 *   GET /metrics  the Prometheus text format (metrics.h), 200;
 *   GET /healthz  200 "ok" while serving, 503 "draining" once a stop began;
 * any other path 404, another method on these paths 405 with
 * "Allow: GET" (HEAD included: the contract names GET only).
 *
 * DESIGN
 * libmicrohttpd runs its own threads (a pool of two, each with epoll): a
 * scrape never runs on the gRPC completion-queue thread or an engine
 * thread, and takes only the short engine lock of oee_engine_metrics().
 * A scrape renders into a buffer handed to its response. Scrapes within
 * OEE_METRICS_HTTP_SHARE_NS of a rendering get that same response (its
 * reference count frees it after the last is sent): each thread serves its
 * connections one after another, so 1,000 concurrent scrapes cost a few
 * renderings instead of 1,000 (each ~0.8 ms of CPU for ~45 KB, taken from
 * the cores that serve RPCs: one burst of 1,000 took 13-31% of SubmitTask's
 * rate at 64 in flight without sharing on the two-core test machine). A
 * scrape may therefore show the state of up to 5 ms before it; anything
 * finished before that is in it. The
 * socket is bound here, before the daemon starts, so a failure names its
 * cause (address in use, no such address). At most
 * OEE_METRICS_HTTP_MAX_CONNECTIONS connections are open at once (more wait
 * in the listen backlog); an idle one is closed after
 * OEE_METRICS_HTTP_IDLE_SECONDS.
 */
#ifndef OEE_SERVER_METRICS_HTTP_H
#define OEE_SERVER_METRICS_HTTP_H

#include <stddef.h>

#include "server/metrics.h"

#define OEE_METRICS_HTTP_THREADS 2
/* How long one rendering answers the scrapes that follow it. */
#define OEE_METRICS_HTTP_SHARE_NS (5 * 1000000LL)
#define OEE_METRICS_HTTP_MAX_CONNECTIONS 4096
#define OEE_METRICS_HTTP_IDLE_SECONDS 30

typedef struct oee_metrics_http oee_metrics_http;

/* Listens on addr ("host:port", "[v6]:port" or ":port" for every
 * address; port 0 picks a free one) and serves src (copied; what it points
 * to must outlive oee_metrics_http_stop()). 0 with *out and *port (the
 * bound port), or -1 with the reason, naming the address, in why. */
int oee_metrics_http_start(const char *addr, const oee_metrics_source *src, oee_metrics_http **out,
                           int *port, char *why, size_t len);
/* Stops answering, waits for the threads, closes the socket and frees.
 * NULL is ignored. */
void oee_metrics_http_stop(oee_metrics_http *h);

#endif /* OEE_SERVER_METRICS_HTTP_H */
