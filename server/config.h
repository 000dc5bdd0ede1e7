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

/* The defaults, named once; core's own defaults come from core/oee.h. */
#define OEE_SERVER_DEFAULT_LISTEN "127.0.0.1:50051"
#define OEE_SERVER_DEFAULT_MAX_QUEUE ((size_t)1000000)
#define OEE_SERVER_DEFAULT_MAX_BATCH ((size_t)10000)
#define OEE_SERVER_DEFAULT_MAX_WATCHERS ((size_t)1024)
#define OEE_SERVER_DEFAULT_DRAIN_TIMEOUT_S 30.0
#define OEE_SERVER_DEFAULT_MAX_REQUEST_BYTES ((size_t)4 << 20)
#define OEE_SERVER_DEFAULT_MAX_NAME_BYTES ((size_t)256)
#define OEE_SERVER_DEFAULT_MAX_TYPE_BYTES ((size_t)64)
#define OEE_SERVER_DEFAULT_MAX_CONTEXT_ENTRIES ((size_t)64)
#define OEE_SERVER_DEFAULT_MAX_CONTEXT_BYTES ((size_t)64 << 10)
#define OEE_SERVER_DEFAULT_MAX_STAGES ((size_t)32) /* at most OEE_PIPELINE_MAX_STAGES */
/* Storage: durable by default, in a directory relative to the working
 * directory (the container sets OEE_DATA_DIR=/var/lib/oee). */
#define OEE_SERVER_DEFAULT_STORE OEE_STORE_SQLITE
#define OEE_SERVER_DEFAULT_DATA_DIR "./oee-data"
#define OEE_SERVER_DEFAULT_RETENTION_SECONDS ((size_t)604800) /* a week */
#define OEE_SERVER_DEFAULT_MAX_FINISHED ((size_t)1000000)
#define OEE_SERVER_DEFAULT_MAX_QUEUE_BYTES ((size_t)1 << 30)
/* The most worker threads a flag, variable or file may ask for. */
#define OEE_SERVER_MAX_WORKERS 1024
/* The most threads serving gRPC calls ("io_threads"). */
#define OEE_SERVER_MAX_IO_THREADS 16
/* Task semantics: no retry unless a task asks for it. */
#define OEE_SERVER_DEFAULT_MAX_ATTEMPTS 1

typedef enum oee_store_kind {
  OEE_STORE_MEMORY = 0, /* nothing survives the process */
  OEE_STORE_SQLITE = 1, /* <data_dir>/oee.db */
} oee_store_kind;

/* Each field's default is the OEE_SERVER_DEFAULT_* (or core OEE_DEFAULT_*)
 * macro of the same name. */
typedef struct oee_server_config {
  char *listen;   /* host:port */
  int workers;    /* OEE_DEFAULT_WORKERS */
  int io_threads; /* threads serving gRPC calls, 1..16; 0: half the CPUs (oee_server_io_threads) */
  int io_shared_queue;  /* "io_queue": 0 "per_thread" (a queue per io thread), 1 "shared" */
  size_t max_queue;     /* QUEUED tasks */
  size_t max_batch;     /* SubmitTasks entries */
  size_t watch_buffer;  /* events per watcher; OEE_DEFAULT_SUB_CAPACITY */
  size_t max_watchers;  /* concurrent WatchTasks streams */
  double drain_timeout; /* seconds */
  /* Input limits; each refusal names its key. */
  size_t max_request_bytes; /* one gRPC message received */
  size_t max_name_bytes;    /* task or pipeline name */
  size_t max_type_bytes;    /* task_type */
  size_t max_context_entries;
  size_t max_context_bytes; /* keys + values, also a pipeline's input */
  size_t max_stages;        /* per pipeline */
  size_t max_result_bytes;  /* kept per task, longer is truncated; OEE_DEFAULT_RESULT_MAX_BYTES */
  oee_store_kind store;     /* OEE_SERVER_DEFAULT_STORE */
  char *data_dir;           /* OEE_SERVER_DEFAULT_DATA_DIR; used by sqlite only */
  int sync_normal;          /* 0: sync "full" (the default), 1: "normal" */
  size_t retention_seconds; /* finished tasks deleted this long after completion; 0 = never */
  size_t max_finished;      /* finished tasks kept at most, oldest completed deleted first */
  size_t max_queue_bytes;   /* name + task_type + context of all unfinished tasks */
  /* Task semantics, passed to the engine. */
  int default_max_attempts;          /* of a task that names none, 1..100 */
  size_t idempotency_window_seconds; /* how long an idempotency key holds;
                                        OEE_DEFAULT_IDEMPOTENCY_WINDOW */
  size_t max_dependencies;           /* depends_on entries per task; OEE_DEFAULT_MAX_DEPENDENCIES */
  size_t max_schedules;              /* cron schedules at most; OEE_DEFAULT_MAX_SCHEDULES */
  oee_type_limit *type_limits;       /* owned (and each task_type), n_type_limits entries
                                      * sorted by task_type; every type must have an
                                      * executor (checked at start) */
  size_t n_type_limits;
  int log_json;                   /* "log_format": 0 text (the default), 1 json */
  struct oee_token_entry *tokens; /* owned: "tokens" (server/tokens.h) */
  size_t n_tokens;
  char **remote_types; /* owned: "remote_types", run only by remote workers */
  size_t n_remote_types;
  /* "tls": PEM files (owned paths, NULL when unset). cert and key together
   * turn TLS on; client_ca also asks every client for a certificate it
   * signed (mTLS). Read and checked at start by server/main.c. */
  char *tls_cert_file, *tls_key_file, *tls_client_ca_file;
  char *metrics_listen;     /* owned "host:port" of the HTTP metrics endpoint; NULL: off */
  char *config_path;        /* NULL when no file was read */
  oee_exec_table *commands; /* owned; never NULL after a successful load */
  oee_model_table *models;  /* owned; never NULL after a successful load */
} oee_server_config;

/* The threads that serve gRPC calls: io_threads when set, otherwise half
 * the CPUs this process may run on (its affinity mask), at least 1 and at
 * most 16 (why: config.c). */
int oee_server_io_threads(const oee_server_config *cfg);

/* Looks up an environment variable (getenv, or a fake in tests). */
typedef const char *(*oee_getenv_fn)(const char *name);

/*
 * Fills *cfg from argv (getopt_long: --listen, --workers, --io-threads, --config,
 * --drain-timeout, --store, --data-dir, --sync, --tls-cert, --tls-key,
 * --tls-client-ca, --metrics-listen, --help), the environment (OEE_LISTEN,
 * OEE_WORKERS, OEE_IO_THREADS, OEE_CONFIG, OEE_DRAIN_TIMEOUT, OEE_STORE, OEE_DATA_DIR,
 * OEE_SYNC, OEE_TLS_CERT, OEE_TLS_KEY, OEE_TLS_CLIENT_CA,
 * OEE_METRICS_LISTEN) and the config file. On error
 * returns -1 and writes a one-line message to err; returns 1 when --help was
 * asked (usage written to err). cfg must be freed with oee_server_config_free
 * in every case.
 */
int oee_server_config_load(oee_server_config *cfg, int argc, char **argv, oee_getenv_fn env,
                           char *err, size_t errlen);

/* Applies a JSON document (the file's text) over cfg. -1 and err on error. */
int oee_server_config_apply_json(oee_server_config *cfg, const char *text, const char *origin,
                                 char *err, size_t errlen);

void oee_server_config_free(oee_server_config *cfg);

/* The task types of "type_limits" against the engine's executors, which
 * exist only once the engine does: 0, or -1 with an error naming the key
 * and listing the known types. */
int oee_server_config_check_types(const oee_server_config *cfg, oee_engine *eng, char *err,
                                  size_t errlen);

/* "memory" or "sqlite"; "full" or "normal". */
const char *oee_store_name(oee_store_kind store);
const char *oee_sync_name(int sync_normal);

#endif /* OEE_SERVER_CONFIG_H */
