/*
 * metrics_http.h - the HTTP endpoint on `metrics_listen` (libmicrohttpd):
 *   GET /metrics  the Prometheus text format (metrics.h), 200;
 *   GET /healthz  200 "ok" while serving, 503 "draining" once a stop began;
 * any other path 404, another method on these paths 405 with
 * "Allow: GET, HEAD" (HEAD answers like GET without the body).
 *
 * DESIGN
 * libmicrohttpd runs its own threads (a pool of two, each with epoll): a
 * scrape never runs on the gRPC completion-queue thread or an engine
 * thread, and takes only the short engine lock of oee_engine_metrics().
 * Each scrape renders into a buffer of its own, handed to the response and
 * freed when it has been sent, so concurrent scrapes share nothing. The
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
