/*
 * main.c - oee-server: configuration, engine, gRPC server, signals.
 *
 * Threads: this thread runs the completion queue (all RPC handlers and
 * stream writes); the engine's workers run tasks; on SIGTERM/SIGINT one
 * helper thread waits for running tasks to finish (service.c). The signal
 * handler only bumps a counter and asks the server loop to look at it.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/error.h"
#include "server/config.h"
#include "server/log.h"
#include "server/rt/rpc_server.h"
#include "server/service.h"

static oee_service service;
static oee_rpc_server *server;

static void on_signal(int sig) {
  (void)sig;
  atomic_fetch_add(&service.signals, 1); /* lock-free: async-signal-safe */
}

static void install_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
}

static const char *env(const char *name) { return getenv(name); }

static int start_engine(const oee_server_config *cfg, oee_engine **eng) {
  oee_engine_config ec = {.num_workers = cfg->workers, .max_queue = cfg->max_queue,
                          .result_max_bytes = cfg->max_result_bytes,
                          .commands = cfg->commands, .models = cfg->models};
  int rc = oee_engine_create(&ec, eng);
  if (rc == 0) rc = oee_engine_start(*eng);
  if (rc != 0) oee_log(OEE_LOG_ERROR, "engine_failed", "error=\"%s\"", oee_strerror(rc));
  return rc;
}

static int serve(oee_server_config *cfg, oee_engine *eng) {
  int port = 0;
  /* Streams are already ended when the server shuts down (service.c) and
   * unary handlers answer at once, so the grace only covers calls caught in
   * flight; idle client connections would otherwise hold it to the end. */
  oee_rpc_server_options opts = {.shutdown_grace_ms = 250,
                                 .max_receive_message_bytes = (int)cfg->max_request_bytes};
  int rc = oee_rpc_server_open(cfg->listen, &opts, &port, &server);
  if (rc != 0) {
    /* e.g. error="address already in use" when another server has it. */
    oee_log(OEE_LOG_ERROR, "listen_failed", "addr=%s error=\"%s\"", cfg->listen,
            oee_rpc_strerror(rc));
    return 1;
  }
  if (oee_service_init(&service, eng, cfg, server) != 0 || oee_rpc_server_start(server) != 0) {
    oee_log(OEE_LOG_ERROR, "start_failed", "addr=%s", cfg->listen);
    return 1;
  }
  oee_rpc_server_set_tick(server, oee_service_tick, &service, 50);
  install_signals();
  oee_log(OEE_LOG_INFO, "listening", "addr=%s port=%d workers=%d config=%s version=%s",
          cfg->listen, port, cfg->workers, cfg->config_path ? cfg->config_path : "none",
          OEE_VERSION);
  /* Tests and scripts read the bound port from this line on stdout. */
  printf("oee-server listening on port %d\n", port);
  fflush(stdout);
  oee_rpc_server_run(server);
  return 0;
}

int main(int argc, char **argv) {
  int level = oee_log_parse_level(getenv("OEE_LOG_LEVEL"));
  if (level >= 0) oee_log_set_level((oee_log_level)level);
  oee_server_config cfg;
  char err[512];
  int rc = oee_server_config_load(&cfg, argc, argv, env, err, sizeof(err));
  if (rc != 0) {
    fprintf(stderr, "oee-server: %s\n", err);
    oee_server_config_free(&cfg);
    return rc > 0 ? 0 : 2;
  }
  oee_engine *eng = NULL;
  int status = start_engine(&cfg, &eng) == 0 ? serve(&cfg, eng) : 1;
  oee_rpc_server_destroy(server);
  oee_service_fini(&service);
  oee_engine_destroy(eng);
  oee_server_config_free(&cfg);
  oee_log(OEE_LOG_INFO, "exited", "status=%d", status);
  return status;
}
