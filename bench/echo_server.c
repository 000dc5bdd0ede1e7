/*
 * echo_server.c - the baseline: oee.bench.BenchEcho on the same call runtime
 * as oee-server (//server/rt; one completion-queue thread unless
 * --io-threads N [--shared-queue] say otherwise), with a handler
 * that only replies. Whatever OEE's SubmitTask costs beyond this is OEE's.
 *
 * Usage: echo_server [--listen HOST:PORT]   (default 127.0.0.1:0)
 * Prints "echo-server listening on port N" on stdout; SIGTERM/SIGINT exit 0.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.grpc-server.h"

static oee_rpc_server *server;

static void on_signal(int sig) {
  (void)sig;
  oee_rpc_server_shutdown(server); /* one atomic store: async-signal-safe */
}

/* Does nothing but answer: the cost of a unary call in this runtime. */
static void on_echo(oee_rpc_call *call, const ProtobufCMessage *req, void *ctx) {
  (void)req;
  (void)ctx;
  Oee__Bench__EchoReply reply = OEE__BENCH__ECHO_REPLY__INIT;
  oee_rpc_call_reply(call, &reply.base);
}

int main(int argc, char **argv) {
  const char *listen = "127.0.0.1:0";
  oee_rpc_server_options opts = {.shutdown_grace_ms = 200};
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) listen = argv[++i];
    /* --io-threads N: serve on N threads (our runtime's io_threads);
     * --shared-queue: the io threads share one queue (io_shared_queue). */
    if (strcmp(argv[i], "--io-threads") == 0 && i + 1 < argc) opts.io_threads = atoi(argv[++i]);
    if (strcmp(argv[i], "--shared-queue") == 0) opts.io_shared_queue = 1;
  }
  int port = 0;
  server = oee_rpc_server_create(listen, &opts, &port);
  if (server == NULL) {
    fprintf(stderr, "echo_server: cannot listen on %s\n", listen);
    return 1;
  }
  oee_rpc_method methods[OEE_BENCH_BENCH_ECHO_N_METHODS];
  memcpy(methods, oee_bench_bench_echo_methods, sizeof(methods));
  methods[OEE_BENCH_BENCH_ECHO_METHOD_ECHO].handler = on_echo;
  if (oee_rpc_server_add_service(server, methods, OEE_BENCH_BENCH_ECHO_N_METHODS, NULL) != 0 ||
      oee_rpc_server_start(server) != 0) {
    fprintf(stderr, "echo_server: cannot start\n");
    return 1;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  printf("echo-server listening on port %d\n", port);
  fflush(stdout);
  oee_rpc_server_run(server);
  oee_rpc_server_destroy(server);
  return 0;
}
