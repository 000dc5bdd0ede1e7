/* metrics_http.c - GET /metrics and /healthz over libmicrohttpd (see
 * metrics_http.h for the design). */
#include "server/metrics_http.h"

#include <errno.h>
#include <pthread.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "core/oee_alloc.h"
#include "server/log.h"

#define LISTEN_BACKLOG 4096
#define TEXT_TYPE "text/plain; charset=utf-8"
#define ALLOWED "GET"

struct oee_metrics_http {
  struct MHD_Daemon *daemon;
  oee_metrics_source src;     /* immutable while the daemon runs */
  pthread_mutex_t mu;         /* guards the two below; held while rendering */
  struct MHD_Response *fresh; /* the last scrape's response (our reference), or NULL */
  int64_t fresh_ns;           /* CLOCK_MONOTONIC when it was rendered */
};

static int64_t mono_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* ------------------------------------------------------------ answers */

/* Queues a response with `body` (a static string) and its type. */
static enum MHD_Result answer_static(struct MHD_Connection *c, unsigned status, const char *body,
                                     const char *allow) {
  struct MHD_Response *r =
      MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
  if (r == NULL) return MHD_NO;
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, TEXT_TYPE);
  if (allow != NULL) MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
  enum MHD_Result rc = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return rc;
}

/* A new response with a fresh rendering, or NULL when out of memory. */
static struct MHD_Response *render(const oee_metrics_http *h) {
  oee_expo e;
  oee_expo_init(&e);
  (void)oee_metrics_render(&h->src, &e);
  size_t len;
  char *body = oee_expo_take(&e, &len);
  if (body == NULL) return NULL;
  struct MHD_Response *r = MHD_create_response_from_buffer_with_free_callback(len, body, oee_free);
  if (r == NULL) {
    oee_free(body);
    return NULL;
  }
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, OEE_EXPO_CONTENT_TYPE);
  return r;
}

/* Answers with the last rendering when it is younger than
 * OEE_METRICS_HTTP_SHARE_NS, else renders anew under the mutex. A response
 * counts its references, so one may be queued on many connections at once;
 * it is freed after the last of them is sent. */
static enum MHD_Result answer_metrics(oee_metrics_http *h, struct MHD_Connection *c) {
  pthread_mutex_lock(&h->mu);
  int64_t now = mono_ns();
  if (h->fresh == NULL || now - h->fresh_ns >= OEE_METRICS_HTTP_SHARE_NS) {
    struct MHD_Response *r = render(h);
    if (r == NULL) {
      pthread_mutex_unlock(&h->mu);
      return answer_static(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n", NULL);
    }
    if (h->fresh != NULL) MHD_destroy_response(h->fresh);
    h->fresh = r;
    h->fresh_ns = now;
  }
  enum MHD_Result rc = MHD_queue_response(c, MHD_HTTP_OK, h->fresh);
  pthread_mutex_unlock(&h->mu);
  return rc;
}

static enum MHD_Result answer_health(const oee_metrics_http *h, struct MHD_Connection *c) {
  int serving = h->src.serving ? h->src.serving(h->src.ud) : 1;
  return serving ? answer_static(c, MHD_HTTP_OK, "ok\n", NULL)
                 : answer_static(c, MHD_HTTP_SERVICE_UNAVAILABLE, "draining\n", NULL);
}

/* Marks a request seen once (see handle()). */
static int seen;

/* libmicrohttpd calls this once when a request's headers are in, then
 * again for each piece of its body and once at its end. A refusal (404,
 * 405) is answered at the first call, before any body is read (the
 * connection then closes); a GET is answered at the second, the
 * request complete, which keeps the connection open for the next scrape. */
static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_len, void **con_cls) {
  (void)version;
  (void)upload;
  oee_metrics_http *h = cls;
  int metrics = strcmp(url, "/metrics") == 0;
  int health = strcmp(url, "/healthz") == 0;
  if (!metrics && !health) return answer_static(c, MHD_HTTP_NOT_FOUND, "not found\n", NULL);
  /* API.md: "methods other than GET 405" (HEAD included). */
  if (strcmp(method, MHD_HTTP_METHOD_GET) != 0) {
    return answer_static(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n", ALLOWED);
  }
  if (*con_cls == NULL) {
    *con_cls = &seen;
    return MHD_YES;
  }
  if (*upload_len > 0) { /* a GET with a body: ignored */
    *upload_len = 0;
    return MHD_YES;
  }
  return metrics ? answer_metrics(h, c) : answer_health(h, c);
}

/* libmicrohttpd's own complaints (a connection limit reached, a socket
 * error) go to the log as warnings. */
static void mhd_log(void *cls, const char *fmt, va_list ap) {
  (void)cls;
  char msg[256];
  vsnprintf(msg, sizeof(msg), fmt, ap);
  size_t n = strlen(msg);
  while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = '\0';
  for (char *p = msg; *p; p++) {
    if (*p == '"') *p = '\'';
  }
  oee_log(OEE_LOG_WARN, "metrics_http", "error=\"%s\"", msg);
}

/* ------------------------------------------------------------- socket */

/* Splits "host:port", "[v6]:port" or ":port" (host "" = every address). */
static int split_addr(const char *addr, char *host, size_t hlen, const char **port) {
  const char *colon = strrchr(addr, ':');
  if (colon == NULL || colon[1] == '\0' || strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
      strlen(colon + 1) > 5 || atoi(colon + 1) > 65535) {
    return -1;
  }
  const char *h = addr;
  size_t n = (size_t)(colon - addr);
  if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
    h++;
    n -= 2;
  }
  if (n >= hlen) return -1;
  memcpy(host, h, n);
  host[n] = '\0';
  *port = colon + 1;
  return 0;
}

/* A listening socket on one of ai's addresses, or -1 with errno of the
 * last attempt in *err. */
static int bind_any(const struct addrinfo *ai, int *err, int *family) {
  for (; ai != NULL; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
      *err = errno;
      continue;
    }
    int on = 1;
    /* A restart may bind while old connections linger in TIME_WAIT; a
     * second live server still cannot (no SO_REUSEPORT). */
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, LISTEN_BACKLOG) == 0) {
      *family = ai->ai_family;
      return fd;
    }
    *err = errno;
    close(fd);
  }
  return -1;
}

static int listen_on(const char *addr, int *family, char *why, size_t len) {
  char host[256];
  const char *port;
  if (split_addr(addr, host, sizeof(host), &port) != 0) {
    snprintf(why, len, "metrics_listen \"%s\" is not host:port", addr);
    return -1;
  }
  struct addrinfo hints = {
      .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
  struct addrinfo *ai = NULL;
  int gai = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai);
  if (gai != 0) {
    snprintf(why, len, "cannot listen on %s: %s", addr, gai_strerror(gai));
    return -1;
  }
  int err = 0;
  int fd = bind_any(ai, &err, family);
  freeaddrinfo(ai);
  if (fd < 0) snprintf(why, len, "cannot listen on %s: %s", addr, strerror(err));
  return fd;
}

/* ---------------------------------------------------------- lifecycle */

static struct MHD_Daemon *daemon_start(oee_metrics_http *h, int fd, int family) {
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
  if (family == AF_INET6) flags |= MHD_USE_IPv6;
  return MHD_start_daemon(flags, 0, NULL, NULL, handle, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
                          NULL, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_THREAD_POOL_SIZE,
                          (unsigned)OEE_METRICS_HTTP_THREADS, MHD_OPTION_CONNECTION_LIMIT,
                          (unsigned)OEE_METRICS_HTTP_MAX_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT,
                          (unsigned)OEE_METRICS_HTTP_IDLE_SECONDS, MHD_OPTION_END);
}

int oee_metrics_http_start(const char *addr, const oee_metrics_source *src, oee_metrics_http **out,
                           int *port, char *why, size_t len) {
  *out = NULL;
  oee_metrics_http *h = oee_calloc(1, sizeof(*h));
  if (h == NULL) {
    snprintf(why, len, "out of memory starting the metrics endpoint on %s", addr);
    return -1;
  }
  h->src = *src;
  if (pthread_mutex_init(&h->mu, NULL) != 0) {
    oee_free(h);
    snprintf(why, len, "cannot start the metrics endpoint on %s: no mutex", addr);
    return -1;
  }
  int family = AF_INET;
  int fd = listen_on(addr, &family, why, len);
  if (fd >= 0 && (h->daemon = daemon_start(h, fd, family)) == NULL) {
    close(fd); /* the daemon did not take it */
    snprintf(why, len, "cannot start the metrics endpoint on %s", addr);
  }
  if (h->daemon == NULL) {
    pthread_mutex_destroy(&h->mu);
    oee_free(h);
    return -1;
  }
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
  *port = info ? (int)info->port : 0;
  *out = h;
  return 0;
}

void oee_metrics_http_stop(oee_metrics_http *h) {
  if (h == NULL) return;
  MHD_stop_daemon(h->daemon); /* joins its threads and closes the socket */
  if (h->fresh != NULL) MHD_destroy_response(h->fresh);
  pthread_mutex_destroy(&h->mu);
  oee_free(h);
}
