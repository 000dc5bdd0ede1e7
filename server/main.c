/*
 * main.c - oee-server: configuration, engine, gRPC server, signals.
 *
 * Threads: this thread runs the completion queue (all RPC handlers and
 * stream writes); the engine's workers run tasks; with the sqlite store the
 * engine's commit thread answers the submissions once stored; one thread takes
 * SIGTERM/SIGINT/SIGHUP with sigwait (signals.h), blocked everywhere else
 * from the first line of main(); on the first stop request one helper
 * thread waits for running tasks to finish (drain.h); with metrics_listen,
 * libmicrohttpd's threads answer GET /metrics and /healthz
 * (metrics_http.h) until the server has stopped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/error.h"
#include "server/config.h"
#include "server/drain.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/metrics_http.h"
#include "server/rt/rpc_server.h"
#include "server/service.h"
#include "server/signals.h"
#include "server/tls.h"
#include "server/tokens.h"

/* How long calls caught in flight get once the server shuts down. */
#define SHUTDOWN_GRACE_MS 250
/* Bytes of a start-up failure reason. */
#define REASON_BYTES 512

static oee_service service;
static oee_rpc_server *server;
static oee_rpc_stats *rpc_stats;       /* with metrics_listen */
static oee_metrics_http *metrics_http; /* with metrics_listen */

static const char *env(const char *name) { return getenv(name); }

/* The engine's settings from the server's. */
static oee_engine_config engine_config(const oee_server_config *cfg) {
  int sqlite = cfg->store == OEE_STORE_SQLITE;
  return (oee_engine_config){.num_workers = cfg->workers,
                             .max_queue = cfg->max_queue,
                             .retention_seconds = cfg->retention_seconds,
                             .max_finished = cfg->max_finished,
                             .max_queue_bytes = cfg->max_queue_bytes,
                             .result_max_bytes = cfg->max_result_bytes,
                             .commands = cfg->commands,
                             .models = cfg->models,
                             .data_dir = sqlite ? cfg->data_dir : NULL,
                             .sync_normal = cfg->sync_normal,
                             .default_max_attempts = cfg->default_max_attempts,
                             .idempotency_window_seconds = cfg->idempotency_window_seconds,
                             .max_dependencies = cfg->max_dependencies,
                             .max_schedules = cfg->max_schedules,
                             .type_limits = cfg->type_limits,
                             .n_type_limits = cfg->n_type_limits,
                             .remote_types = (const char *const *)cfg->remote_types,
                             .n_remote_types = cfg->n_remote_types};
}

/* Creates the engine on the configured store (sqlite: opens and recovers
 * <data_dir>/oee.db), checks what of the config needs its executor table,
 * and starts it. */
static int start_engine(const oee_server_config *cfg, oee_engine **eng) {
  oee_engine_config ec = engine_config(cfg);
  oee_error err = {0};
  int rc = oee_engine_open(&ec, eng, &err);
  if (rc != 0 && ec.data_dir != NULL) {
    const char *why = err.message[0] ? err.message : oee_strerror(rc);
    oee_log(OEE_LOG_ERROR, "store_failed", "data_dir=%s error=\"%s\"", cfg->data_dir, why);
    fprintf(stderr, "oee-server: cannot open the store: %s\n", why);
    return rc;
  }
  if (rc != 0) { /* memory store: the engine's own checks (type_limits, remote_types) */
    const char *why = err.message[0] ? err.message : oee_strerror(rc);
    oee_log(OEE_LOG_ERROR, "engine_failed", "error=\"%s\"", why);
    fprintf(stderr, "oee-server: cannot start: %s\n", why);
    return rc;
  }
  /* type_limits' types, before any task can start. */
  char why[REASON_BYTES];
  if (rc == 0 && oee_server_config_check_types(cfg, *eng, why, sizeof(why)) != 0) {
    oee_log(OEE_LOG_ERROR, "config_failed", "error=\"%s\"", why);
    fprintf(stderr, "oee-server: %s\n", why);
    return OEE_EINVAL;
  }
  if (rc == 0) rc = oee_engine_start(*eng);
  if (rc != 0) oee_log(OEE_LOG_ERROR, "engine_failed", "error=\"%s\"", oee_strerror(rc));
  return rc;
}

/* "store=sqlite data_dir=... sync=..." or "store=memory", for the logs. */
static void store_words(const oee_server_config *cfg, char *buf, size_t len) {
  if (cfg->store == OEE_STORE_SQLITE) {
    snprintf(buf, len, "store=sqlite data_dir=%s sync=%s", cfg->data_dir,
             oee_sync_name(cfg->sync_normal));
  } else {
    snprintf(buf, len, "store=memory");
  }
}

static int start_failed(const char *addr, const char *why) {
  oee_log(OEE_LOG_ERROR, "start_failed", "addr=%s reason=\"%s\"", addr, why);
  fprintf(stderr, "oee-server: cannot start: %s\n", why);
  return 1;
}

/* The runtime's admission hook: every oee.v1 call shows a token with the
 * role its method needs (server/tokens.h); a refusal is logged with the
 * token's name when one matched, never the token. */
static grpc_status_code admit(void *ud, const char *path, const grpc_metadata_array *md, char *msg,
                              size_t len) {
  const oee_server_config *cfg = ud;
  const char *who;
  grpc_status_code code = oee_tokens_check(cfg->tokens, cfg->n_tokens, path, md, &who, msg, len);
  if (code != GRPC_STATUS_OK) {
    oee_log(OEE_LOG_WARN, "call_refused", "method=%s code=%s token=%s", strrchr(path, '/') + 1,
            oee_rpc_status_name(code), who ? who : "-");
  }
  return code;
}

/* Tokens guard every call; without them anyone who reaches the port may
 * do anything, which is worth a warning unless only loopback can. */
static void warn_if_open(const oee_server_config *cfg) {
  if (cfg->n_tokens > 0) return;
  const char *l = cfg->listen;
  int loopback = strncmp(l, "127.", 4) == 0 || strncmp(l, "localhost:", 10) == 0 ||
                 strncmp(l, "[::1]:", 6) == 0 || strncmp(l, "unix:", 5) == 0;
  if (!loopback) {
    oee_log(OEE_LOG_WARN, "no_tokens",
            "addr=%s note=\"no tokens configured: anyone who reaches the port may submit, cancel "
            "and clear tasks\"",
            l);
  }
}

/* Reads the TLS files into *pems and puts them in opts; 0, or -1 logged. */
static int tls_setup(const oee_server_config *cfg, oee_tls_pems *pems,
                     oee_rpc_server_options *opts) {
  char why[REASON_BYTES];
  if (oee_tls_load(cfg->tls_cert_file, cfg->tls_key_file, cfg->tls_client_ca_file, pems, why,
                   sizeof(why)) != 0) {
    (void)start_failed(cfg->listen, why);
    return -1;
  }
  if (pems->expired) {
    oee_log(OEE_LOG_WARN, "tls_cert_expired",
            "file=%s note=\"clients will refuse this certificate\"", cfg->tls_cert_file);
  }
  opts->tls_cert_pem = pems->cert;
  opts->tls_key_pem = pems->key;
  opts->tls_client_ca_pem = pems->client_ca;
  return 0;
}

static const char *tls_word(const oee_server_config *cfg) {
  if (cfg->tls_client_ca_file) return "mtls";
  return cfg->tls_cert_file ? "on" : "off";
}

static void log_listening(const oee_server_config *cfg, int port) {
  char store[REASON_BYTES];
  store_words(cfg, store, sizeof(store));
  oee_log(OEE_LOG_INFO, "listening",
          "addr=%s port=%d tls=%s workers=%d io_threads=%zu io_queues=%zu %s config=%s version=%s",
          cfg->listen, port, tls_word(cfg), cfg->workers, oee_rpc_server_io_threads(server),
          oee_rpc_server_io_queues(server), store, cfg->config_path ? cfg->config_path : "none",
          OEE_VERSION);
  /* Tests and scripts read the bound port from this line on stdout. */
  printf("oee-server listening on port %d\n", port);
  fflush(stdout);
}

/* With metrics_listen: the runtime counts every call of the oee.v1 methods
 * from now on, and the endpoint serves on its own threads. 0, or 1 (logged,
 * naming the address) when it cannot start. */
static int start_metrics(const oee_server_config *cfg, oee_engine *eng) {
  if (cfg->metrics_listen == NULL) return 0;
  if (oee_rpc_stats_create(server, OEE_METRICS_METHOD_PREFIX, &rpc_stats) != 0) {
    return start_failed(cfg->metrics_listen, "out of memory setting up the metrics");
  }
  oee_rpc_server_set_observe(server, oee_rpc_stats_observe, rpc_stats);
  oee_metrics_source src = {.eng = eng,
                            .rpc = rpc_stats,
                            .ud = &service,
                            .watchers = oee_service_watchers,
                            .serving = oee_service_serving};
  char why[REASON_BYTES];
  int port = 0;
  if (oee_metrics_http_start(cfg->metrics_listen, &src, &metrics_http, &port, why, sizeof(why))) {
    oee_log(OEE_LOG_ERROR, "metrics_listen_failed", "addr=%s error=\"%s\"", cfg->metrics_listen,
            why);
    fprintf(stderr, "oee-server: %s\n", why);
    return 1;
  }
  /* Tests and scripts read the bound port (metrics_listen HOST:0) here. */
  oee_log(OEE_LOG_INFO, "metrics_listening", "addr=%s port=%d", cfg->metrics_listen, port);
  return 0;
}

static int serve(oee_server_config *cfg, oee_engine *eng, const atomic_int *stops) {
  int port = 0;
  /* Streams are already ended when the server shuts down (drain.c) and
   * unary handlers have answered (submissions once the engine's stop
   * flushed its commits), so the grace only covers calls caught in flight;
   * idle client connections would otherwise hold it to the end. */
  oee_rpc_server_options opts = {.shutdown_grace_ms = SHUTDOWN_GRACE_MS,
                                 .max_receive_message_bytes = (int)cfg->max_request_bytes,
                                 .io_threads = oee_server_io_threads(cfg),
                                 .io_shared_queue = cfg->io_shared_queue};
  oee_tls_pems pems;
  if (tls_setup(cfg, &pems, &opts) != 0) {
    oee_tls_pems_free(&pems);
    return 1;
  }
  int rc = oee_rpc_server_open(cfg->listen, &opts, &port, &server);
  oee_tls_pems_free(&pems); /* gRPC keeps its own copies */
  if (rc != 0) {
    /* e.g. error="address already in use" when another server has it. */
    oee_log(OEE_LOG_ERROR, "listen_failed", "addr=%s error=\"%s\"", cfg->listen,
            oee_rpc_strerror(rc));
    return 1;
  }
  char why[REASON_BYTES] = "";
  if (oee_service_init(&service, eng, cfg, server, stops, why, sizeof(why)) != 0) {
    return start_failed(cfg->listen, why);
  }
  if (cfg->n_tokens > 0) oee_rpc_server_set_admit(server, admit, cfg);
  if (start_metrics(cfg, eng) != 0) return 1;
  warn_if_open(cfg);
  if (oee_rpc_server_start(server) != 0) return start_failed(cfg->listen, "gRPC server refused");
  /* A stop requested during start-up is seen by the first tick. */
  oee_rpc_server_set_tick(server, oee_service_tick, &service, OEE_TICK_IDLE_MS);
  log_listening(cfg, port);
  oee_rpc_server_run(server);
  return 0;
}

/* Loads the configuration; returns -1 to go on, else the exit status. */
static int load_config(oee_server_config *cfg, int argc, char **argv) {
  int level = oee_log_parse_level(getenv("OEE_LOG_LEVEL"));
  if (level >= 0) oee_log_set_level((oee_log_level)level);
  char err[REASON_BYTES];
  int rc = oee_server_config_load(cfg, argc, argv, env, err, sizeof(err));
  if (rc == 0) {
    oee_log_set_format(cfg->log_json ? OEE_LOG_JSON : OEE_LOG_TEXT);
    return -1;
  }
  fprintf(stderr, "oee-server: %s\n", err);
  return rc > 0 ? 0 : 2;
}

int main(int argc, char **argv) {
  /* Before anything creates a thread, so that every thread inherits it. */
  oee_signals *sg = NULL;
  if (oee_signals_block() != 0 || oee_signals_start(&sg) != 0) {
    fprintf(stderr, "oee-server: cannot set up signal handling\n");
    return 1;
  }
  oee_server_config cfg;
  int status = load_config(&cfg, argc, argv);
  if (status >= 0) {
    oee_server_config_free(&cfg);
    oee_signals_stop(sg);
    return status;
  }
  oee_engine *eng = NULL;
  status = start_engine(&cfg, &eng) == 0 ? serve(&cfg, eng, oee_signals_stop_requests(sg)) : 1;
  /* The endpoint reads the service and the engine: it stops first. The
   * observe hook runs until the server is destroyed: its counters after. */
  oee_metrics_http_stop(metrics_http);
  oee_rpc_server_destroy(server);
  oee_rpc_stats_destroy(rpc_stats);
  oee_service_fini(&service);
  oee_engine_destroy(eng);
  oee_server_config_free(&cfg);
  oee_signals_stop(sg);
  oee_log(OEE_LOG_INFO, "exited", "status=%d", status);
  return status;
}
