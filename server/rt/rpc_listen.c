/*
 * rpc_listen.c - why a listen address could not be bound.
 *
 * grpc_server_add_http2_port() reports a failed bind as port 0 and logs the
 * reason through gRPC's own logger, which the application does not see. To
 * tell the operator the one case that matters most, another server already
 * listening there, the runtime binds the same address once more with a
 * plain socket. gRPC sets SO_REUSEADDR on its listeners, and so does the
 * probe: on Linux such a bind then fails with EADDRINUSE only when a socket
 * listens on the address, not for connections left in TIME_WAIT. The probe
 * socket is closed at once and never listens.
 */
#include <errno.h>
#include <netdb.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/rt/rpc_internal.h"

/* Longest host part accepted, in bytes (a DNS name is at most 253). */
enum { MAX_HOST = 256 };

/* Splits "host:port", "[v6]:port" or ":port" into host (empty for any) and
 * port. Returns 0, or -1 when addr has no port. */
static int split(const char *addr, char *host, const char **port) {
  const char *colon = strrchr(addr, ':');
  if (colon == NULL || colon[1] == '\0') return -1;
  const char *h = addr;
  size_t n = (size_t)(colon - addr);
  if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
    h++;
    n -= 2;
  }
  if (n >= MAX_HOST) return -1;
  memcpy(host, h, n);
  host[n] = '\0';
  *port = colon + 1;
  return 0;
}

/* 1 when binding ai's address fails with EADDRINUSE. */
static int in_use(const struct addrinfo *ai) {
  int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
  if (fd < 0) return 0;
  int one = 1;
  (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  int busy = bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno == EADDRINUSE;
  close(fd);
  return busy;
}

int oee__rpc_listen_error(const char *addr) {
  char host[MAX_HOST];
  const char *port;
  /* "unix:", "ipv4:", ... URIs are not probed: gRPC replaces a stale unix
   * socket file itself, and the other schemes are rare in a config. */
  if (strchr(addr, '/') != NULL || split(addr, host, &port) != 0) return OEE_RPC_EADDRNOTAVAIL;
  struct addrinfo hints = {
      .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
  struct addrinfo *res = NULL;
  if (getaddrinfo(host[0] ? host : NULL, port, &hints, &res) != 0) return OEE_RPC_EADDRNOTAVAIL;
  int rc = OEE_RPC_EADDRNOTAVAIL;
  for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
    if (in_use(ai)) {
      rc = OEE_RPC_EADDRINUSE;
      break;
    }
  }
  freeaddrinfo(res);
  return rc;
}
