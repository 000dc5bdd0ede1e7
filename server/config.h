/*
 * config.h - oee-server settings from flags, environment and a JSON file.
 *
 * Precedence: a flag wins over its environment variable, which wins over the
 * config file, which wins over the defaults. The file is strict: unknown
 * keys, wrong types and unreadable files are errors naming the key or file.
 */
#ifndef OEE_SERVER_CONFIG_H
#define OEE_SERVER_CONFIG_H

#include <stddef.h>

#include "core/oee_exec.h"
#include "core/oee_pipeline.h"

typedef struct oee_server_config {
  char *listen;               /* host:port; default 127.0.0.1:50051 */
  int workers;                /* default 3 */
  size_t max_queue;           /* QUEUED tasks; default 1,000,000 */
  size_t max_batch;           /* SubmitTasks entries; default 10,000 */
  size_t watch_buffer;        /* events per watcher; default 4,096 */
  size_t max_watchers;        /* concurrent WatchTasks streams; default 1,024 */
  double drain_timeout;       /* seconds; default 30 */
  /* Input limits; each refusal names its key. */
  size_t max_request_bytes;   /* one gRPC message received; default 4 MiB */
  size_t max_name_bytes;      /* task or pipeline name; default 256 */
  size_t max_type_bytes;      /* task_type; default 64 */
  size_t max_context_entries; /* default 64 */
  size_t max_context_bytes;   /* keys + values, also a pipeline's input; default 64 KiB */
  size_t max_stages;          /* per pipeline; default 32 (at most 64) */
  size_t max_result_bytes;    /* kept per task, longer is truncated; default 1 MiB */
  char *config_path;          /* NULL when no file was read */
  oee_exec_table *commands;   /* owned; never NULL after a successful load */
  oee_model_table *models;    /* owned; never NULL after a successful load */
} oee_server_config;

/* Looks up an environment variable (getenv, or a fake in tests). */
typedef const char *(*oee_getenv_fn)(const char *name);

/*
 * Fills *cfg from argv (getopt_long: --listen, --workers, --config,
 * --drain-timeout, --help), the environment and the config file. On error
 * returns -1 and writes a one-line message to err; returns 1 when --help was
 * asked (usage written to err). cfg must be freed with oee_server_config_free
 * in every case.
 */
int oee_server_config_load(oee_server_config *cfg, int argc, char **argv,
                           oee_getenv_fn env, char *err, size_t errlen);

/* Applies a JSON document (the file's text) over cfg. -1 and err on error. */
int oee_server_config_apply_json(oee_server_config *cfg, const char *text,
                                 const char *origin, char *err, size_t errlen);

void oee_server_config_free(oee_server_config *cfg);

#endif /* OEE_SERVER_CONFIG_H */
