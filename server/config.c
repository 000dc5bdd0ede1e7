/* config.c - flags, environment and the JSON config file (jansson). */
#include "server/config.h"

#include <errno.h>
#include <sched.h>
#include <getopt.h>
#include <stddef.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/oee_alloc.h"
#include "server/tokens.h"

#define MAX_ARGV 64

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t len, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, len, fmt, ap);
  va_end(ap);
  return -1;
}

/* The CPUs this process may run on (its affinity mask: taskset and
 * container cpusets count), at least 1. */
static int usable_cpus(void) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

/* Unset, half the usable CPUs (at least 1, at most 16): measured on two
 * cores, a second io thread brought SubmitTask to 0.70-0.78x of one
 * thread's calls/s at more server CPU per call (docs/PERFORMANCE.md
 * section 18); the workers
 * running tasks, the commit and timer threads need the other half; and one
 * client connection is served by gRPC's per-connection transport lock
 * whatever the count, so more threads only help many connections. */
int oee_server_io_threads(const oee_server_config *c) {
  if (c->io_threads > 0) return c->io_threads;
  int n = usable_cpus() / 2;
  if (n < 1) n = 1;
  return n > OEE_SERVER_MAX_IO_THREADS ? OEE_SERVER_MAX_IO_THREADS : n;
}

#define IO_QUEUE_VALUES "\"per_thread\" or \"shared\""

/* How the io threads take calls: a completion queue each, or one they
 * share (rpc_server.h io_shared_queue). */
static int set_io_queue(oee_server_config *c, const char *v) {
  if (strcmp(v, "per_thread") != 0 && strcmp(v, "shared") != 0) return -1;
  c->io_shared_queue = strcmp(v, "shared") == 0;
  return 0;
}

static int set_defaults(oee_server_config *c) {
  memset(c, 0, sizeof(*c));
  c->listen = oee_strdup(OEE_SERVER_DEFAULT_LISTEN);
  if (c->listen == NULL) return -1;
  c->workers = OEE_DEFAULT_WORKERS;
  c->max_queue = OEE_SERVER_DEFAULT_MAX_QUEUE;
  c->max_batch = OEE_SERVER_DEFAULT_MAX_BATCH;
  c->watch_buffer = OEE_DEFAULT_SUB_CAPACITY;
  c->max_watchers = OEE_SERVER_DEFAULT_MAX_WATCHERS;
  c->drain_timeout = OEE_SERVER_DEFAULT_DRAIN_TIMEOUT_S;
  c->max_request_bytes = OEE_SERVER_DEFAULT_MAX_REQUEST_BYTES;
  c->max_name_bytes = OEE_SERVER_DEFAULT_MAX_NAME_BYTES;
  c->max_type_bytes = OEE_SERVER_DEFAULT_MAX_TYPE_BYTES;
  c->max_context_entries = OEE_SERVER_DEFAULT_MAX_CONTEXT_ENTRIES;
  c->max_context_bytes = OEE_SERVER_DEFAULT_MAX_CONTEXT_BYTES;
  c->max_stages = OEE_SERVER_DEFAULT_MAX_STAGES;
  c->max_result_bytes = OEE_DEFAULT_RESULT_MAX_BYTES;
  c->retention_seconds = OEE_SERVER_DEFAULT_RETENTION_SECONDS;
  c->max_finished = OEE_SERVER_DEFAULT_MAX_FINISHED;
  c->max_queue_bytes = OEE_SERVER_DEFAULT_MAX_QUEUE_BYTES;
  c->default_max_attempts = OEE_SERVER_DEFAULT_MAX_ATTEMPTS;
  c->idempotency_window_seconds = OEE_DEFAULT_IDEMPOTENCY_WINDOW;
  c->max_dependencies = OEE_DEFAULT_MAX_DEPENDENCIES;
  c->max_schedules = OEE_DEFAULT_MAX_SCHEDULES;
  c->store = OEE_SERVER_DEFAULT_STORE;
  c->data_dir = oee_strdup(OEE_SERVER_DEFAULT_DATA_DIR);
  if (c->listen == NULL || c->data_dir == NULL || oee_exec_table_create(&c->commands) != 0 ||
      oee_model_table_create(&c->models) != 0) {
    return -1;
  }
  return 0;
}

static void free_type_limits(oee_server_config *c) {
  for (size_t i = 0; i < c->n_type_limits; i++) oee_free((char *)c->type_limits[i].task_type);
  oee_free(c->type_limits);
  c->type_limits = NULL;
  c->n_type_limits = 0;
}

static void free_remote_types(oee_server_config *c) {
  for (size_t i = 0; i < c->n_remote_types; i++) oee_free(c->remote_types[i]);
  oee_free(c->remote_types);
  c->remote_types = NULL;
  c->n_remote_types = 0;
}

void oee_server_config_free(oee_server_config *c) {
  free_type_limits(c);
  oee_tokens_free(c->tokens, c->n_tokens);
  free_remote_types(c);
  oee_free(c->listen);
  oee_free(c->data_dir);
  oee_free(c->tls_cert_file);
  oee_free(c->tls_key_file);
  oee_free(c->tls_client_ca_file);
  oee_free(c->metrics_listen);
  oee_free(c->config_path);
  oee_exec_table_destroy(c->commands);
  oee_model_table_destroy(c->models);
  memset(c, 0, sizeof(*c));
}

/* ------------------------------------------------------------ scalars */

static int parse_int(const char *s, long lo, long hi, long *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi) return -1;
  *out = v;
  return 0;
}

static int parse_seconds(const char *s, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !isfinite(v) || v < 0) return -1;
  *out = v;
  return 0;
}

static int set_listen(oee_server_config *c, const char *v) {
  if (v[0] == '\0' || strchr(v, ':') == NULL) return -1;
  char *dup = oee_strdup(v);
  if (dup == NULL) return -1;
  oee_free(c->listen);
  c->listen = dup;
  return 0;
}

/* Settings that are one string each: the TLS files and the metrics address.
 * `key` is the file's key ("tls.cert_file" is "cert_file" inside "tls"). */
enum { TEXT_TLS_CERT, TEXT_TLS_KEY, TEXT_TLS_CA, TEXT_METRICS, N_TEXT };
static const struct text_setting {
  const char *key, *flag, *var;
  size_t offset;
  int address; /* 1: must look like host:port */
} text_settings[N_TEXT] = {
    {"cert_file", "--tls-cert", "OEE_TLS_CERT", offsetof(oee_server_config, tls_cert_file), 0},
    {"key_file", "--tls-key", "OEE_TLS_KEY", offsetof(oee_server_config, tls_key_file), 0},
    {"client_ca_file", "--tls-client-ca", "OEE_TLS_CLIENT_CA",
     offsetof(oee_server_config, tls_client_ca_file), 0},
    {"metrics_listen", "--metrics-listen", "OEE_METRICS_LISTEN",
     offsetof(oee_server_config, metrics_listen), 1},
};

/* Sets text setting i to v ("" unsets it); -1 when v is not acceptable. */
static int set_text(oee_server_config *c, int i, const char *v) {
  if (text_settings[i].address && v[0] != '\0' && strchr(v, ':') == NULL) return -1;
  char *dup = NULL;
  if (v[0] != '\0' && (dup = oee_strdup(v)) == NULL) return -1;
  char **field = (char **)((char *)c + text_settings[i].offset);
  oee_free(*field);
  *field = dup;
  return 0;
}

/* The storage settings: each returns -1 for a value it does not know. */
static int set_store(oee_server_config *c, const char *v) {
  if (strcmp(v, "memory") == 0)
    c->store = OEE_STORE_MEMORY;
  else if (strcmp(v, "sqlite") == 0)
    c->store = OEE_STORE_SQLITE;
  else
    return -1;
  return 0;
}

static int set_sync(oee_server_config *c, const char *v) {
  if (strcmp(v, "full") == 0)
    c->sync_normal = 0;
  else if (strcmp(v, "normal") == 0)
    c->sync_normal = 1;
  else
    return -1;
  return 0;
}

static int set_data_dir(oee_server_config *c, const char *v) {
  char *dup = v[0] ? oee_strdup(v) : NULL;
  if (dup == NULL) return -1;
  oee_free(c->data_dir);
  c->data_dir = dup;
  return 0;
}

const char *oee_store_name(oee_store_kind store) {
  return store == OEE_STORE_SQLITE ? "sqlite" : "memory";
}

const char *oee_sync_name(int sync_normal) { return sync_normal ? "normal" : "full"; }

/* What each storage setting accepts, for its error message. */
#define STORE_VALUES "\"sqlite\" or \"memory\""
#define SYNC_VALUES "\"full\" or \"normal\""
#define DATA_DIR_VALUES "a non-empty directory path"

/* Applies a storage key given as a string; `what` names its origin. */
static int storage_text(oee_server_config *c, const char *key, const char *v, const char *what,
                        char *err, size_t len) {
  if (strcmp(key, "store") == 0 && set_store(c, v) != 0) {
    return fail(err, len, "%s must be " STORE_VALUES ", got \"%s\"", what, v);
  }
  if (strcmp(key, "sync") == 0 && set_sync(c, v) != 0) {
    return fail(err, len, "%s must be " SYNC_VALUES ", got \"%s\"", what, v);
  }
  if (strcmp(key, "data_dir") == 0 && set_data_dir(c, v) != 0) {
    return fail(err, len, "%s must be " DATA_DIR_VALUES, what);
  }
  return 0;
}

static int json_storage(oee_server_config *c, const char *key, json_t *v, char *err, size_t len) {
  char what[64];
  snprintf(what, sizeof(what), "config key \"%s\"", key);
  if (!json_is_string(v)) {
    const char *values = strcmp(key, "store") == 0  ? STORE_VALUES
                         : strcmp(key, "sync") == 0 ? SYNC_VALUES
                                                    : DATA_DIR_VALUES;
    return fail(err, len, "%s must be %s", what, values);
  }
  return storage_text(c, key, json_string_value(v), what, err, len);
}

/* ----------------------------------------------------------- JSON file */

static int json_count(json_t *v, const char *key, size_t lo, size_t *out, char *err, size_t len) {
  if (!json_is_integer(v) || json_integer_value(v) < (json_int_t)lo) {
    return fail(err, len, "config key \"%s\" must be an integer >= %zu", key, lo);
  }
  *out = (size_t)json_integer_value(v);
  return 0;
}

/* An integer key from lo to hi, into an int. */
static int json_int_in(json_t *v, const char *key, int lo, int hi, int *out, char *err,
                       size_t len) {
  size_t n = 0;
  if (json_count(v, key, (size_t)lo, &n, err, len) != 0 || n > (size_t)hi) {
    return fail(err, len, "config key \"%s\" must be an integer from %d to %d", key, lo, hi);
  }
  *out = (int)n;
  return 0;
}

static int json_number(json_t *v, const char *key, double *out, char *err, size_t len) {
  if (!json_is_number(v) || json_number_value(v) < 0) {
    return fail(err, len, "config key \"%s\" must be a non-negative number", key);
  }
  *out = json_number_value(v);
  return 0;
}

/* Reads "argv": a non-empty array of strings, into a NULL-terminated array. */
static int json_argv(json_t *v, const char *where, const char **argv, size_t *argc, char *err,
                     size_t len) {
  if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) >= MAX_ARGV) {
    return fail(err, len, "config key \"%s.argv\" must be a non-empty array of strings", where);
  }
  for (size_t i = 0; i < json_array_size(v); i++) {
    json_t *s = json_array_get(v, i);
    if (!json_is_string(s)) {
      return fail(err, len, "config key \"%s.argv[%zu]\" must be a string", where, i);
    }
    argv[i] = json_string_value(s);
  }
  *argc = json_array_size(v);
  argv[*argc] = NULL;
  return 0;
}

typedef struct entry_fields {
  const char *argv[MAX_ARGV];
  size_t argc;
  double timeout, cost, quality;
} entry_fields;

/* Reads one commands/models entry; `allowed` lists its permitted keys. */
static int json_entry(json_t *obj, const char *where, const char *const *allowed, entry_fields *f,
                      char *err, size_t len) {
  if (!json_is_object(obj)) return fail(err, len, "config key \"%s\" must be an object", where);
  const char *key;
  json_t *v;
  json_object_foreach(obj, key, v) {
    int known = 0;
    for (const char *const *a = allowed; *a; a++) known |= strcmp(*a, key) == 0;
    char path[256];
    snprintf(path, sizeof(path), "%s.%s", where, key);
    if (!known) return fail(err, len, "unknown config key \"%s\"", path);
    int rc = 0;
    if (strcmp(key, "argv") == 0) rc = json_argv(v, where, f->argv, &f->argc, err, len);
    if (strcmp(key, "timeout_seconds") == 0) rc = json_number(v, path, &f->timeout, err, len);
    if (strcmp(key, "cost") == 0) rc = json_number(v, path, &f->cost, err, len);
    if (strcmp(key, "quality") == 0) rc = json_number(v, path, &f->quality, err, len);
    if (rc != 0) return rc;
  }
  if (f->argc == 0) return fail(err, len, "config key \"%s.argv\" is required", where);
  return 0;
}

static int json_commands(oee_server_config *c, json_t *obj, char *err, size_t len) {
  static const char *const allowed[] = {"argv", "timeout_seconds", NULL};
  if (!json_is_object(obj)) return fail(err, len, "config key \"commands\" must be an object");
  const char *name;
  json_t *v;
  json_object_foreach(obj, name, v) {
    char where[192];
    snprintf(where, sizeof(where), "commands.%s", name);
    entry_fields f = {.timeout = 0};
    if (json_entry(v, where, allowed, &f, err, len) != 0) return -1;
    int rc = oee_exec_table_add(c->commands, name, f.argv, f.argc, f.timeout);
    if (rc != 0) return fail(err, len, "config key \"%s\": %s", where, oee_strerror(rc));
  }
  return 0;
}

static int json_models(oee_server_config *c, json_t *obj, char *err, size_t len) {
  static const char *const allowed[] = {"argv", "timeout_seconds", "cost", "quality", NULL};
  if (!json_is_object(obj)) return fail(err, len, "config key \"models\" must be an object");
  const char *name;
  json_t *v;
  json_object_foreach(obj, name, v) {
    char where[192];
    snprintf(where, sizeof(where), "models.%s", name);
    entry_fields f = {.timeout = 0};
    if (json_entry(v, where, allowed, &f, err, len) != 0) return -1;
    int rc = oee_model_table_add(c->models, name, f.argv, f.argc, f.cost, f.quality, f.timeout);
    if (rc != 0) return fail(err, len, "config key \"%s\": %s", where, oee_strerror(rc));
  }
  return 0;
}

/* ---------------------------------------------------------- type_limits */

/* Reads one "type_limits" entry's counts into *l. */
static int json_type_limit(json_t *obj, const char *where, oee_type_limit *l, char *err,
                           size_t len) {
  if (!json_is_object(obj)) return fail(err, len, "config key \"%s\" must be an object", where);
  const char *key;
  json_t *v;
  json_object_foreach(obj, key, v) {
    if (strcmp(key, "max_running") == 0) {
      json_int_t n = json_integer_value(v);
      if (!json_is_integer(v) || n < 0 || n > INT32_MAX) {
        return fail(err, len, "config key \"%s.max_running\" must be an integer from 0 to %d",
                    where, INT32_MAX);
      }
      l->max_running = (int)n;
    } else if (strcmp(key, "max_per_second") == 0) {
      if (!json_is_number(v) || !isfinite(json_number_value(v)) || json_number_value(v) < 0) {
        return fail(err, len, "config key \"%s.max_per_second\" must be a number >= 0", where);
      }
      l->max_per_second = json_number_value(v);
    } else {
      return fail(err, len, "unknown config key \"%s.%s\"", where, key);
    }
  }
  return 0;
}

static int by_type(const void *a, const void *b) {
  return strcmp(((const oee_type_limit *)a)->task_type, ((const oee_type_limit *)b)->task_type);
}

/* "type_limits": {"<task_type>": {"max_running": N, "max_per_second": X}}.
 * Whether each type exists is checked once the engine does
 * (oee_server_config_check_types). */
static int json_type_limits(oee_server_config *c, json_t *obj, char *err, size_t len) {
  if (!json_is_object(obj)) return fail(err, len, "config key \"type_limits\" must be an object");
  free_type_limits(c);
  size_t n = json_object_size(obj);
  if (n == 0) return 0;
  c->type_limits = oee_calloc(n, sizeof(*c->type_limits));
  if (c->type_limits == NULL) return fail(err, len, "out of memory");
  const char *name;
  json_t *v;
  json_object_foreach(obj, name, v) {
    char where[192];
    snprintf(where, sizeof(where), "type_limits.%s", name);
    oee_type_limit *l = &c->type_limits[c->n_type_limits];
    if (json_type_limit(v, where, l, err, len) != 0) return -1;
    if ((l->task_type = oee_strdup(name)) == NULL) return fail(err, len, "out of memory");
    c->n_type_limits++;
  }
  qsort(c->type_limits, c->n_type_limits, sizeof(*c->type_limits), by_type);
  return 0;
}

/* "remote_types": ["<task_type>", ...]: run by remote workers only. That
 * none is a built-in type is checked by the engine at create. */
static int json_remote_types(oee_server_config *c, json_t *arr, char *err, size_t len) {
  if (!json_is_array(arr)) {
    return fail(err, len, "config key \"remote_types\" must be an array of type names");
  }
  free_remote_types(c);
  size_t n = json_array_size(arr);
  if (n == 0) return 0;
  if ((c->remote_types = oee_calloc(n, sizeof(*c->remote_types))) == NULL) {
    return fail(err, len, "out of memory");
  }
  for (size_t i = 0; i < n; i++) {
    const char *name = json_string_value(json_array_get(arr, i));
    if (name == NULL || name[0] == '\0' || strlen(name) > c->max_type_bytes) {
      return fail(err, len, "config key \"remote_types[%zu]\" must be a type name of 1..%zu bytes",
                  i, c->max_type_bytes);
    }
    for (size_t j = 0; j < i; j++) {
      if (strcmp(c->remote_types[j], name) == 0) {
        return fail(err, len, "config key \"remote_types\": \"%s\" is given twice", name);
      }
    }
    if ((c->remote_types[i] = oee_strdup(name)) == NULL) return fail(err, len, "out of memory");
    c->n_remote_types++;
  }
  return 0;
}

int oee_server_config_check_types(const oee_server_config *c, oee_engine *eng, char *err,
                                  size_t len) {
  for (size_t i = 0; i < c->n_type_limits; i++) {
    const char *type = c->type_limits[i].task_type;
    if (oee_engine_has_executor(eng, type)) continue;
    char known[256];
    oee_engine_executor_names(eng, known, sizeof(known));
    return fail(err, len,
                "config key \"type_limits.%s\": unknown task_type \"%s\"; known types: %s", type,
                type, known);
  }
  return 0;
}

/* The size_t limit a key names, or NULL. */
static size_t *limit_key(oee_server_config *c, const char *key) {
  const struct {
    const char *key;
    size_t *field;
  } limits[] = {
      {"max_queue", &c->max_queue},
      {"max_batch", &c->max_batch},
      {"watch_buffer", &c->watch_buffer},
      {"max_watchers", &c->max_watchers},
      {"max_request_bytes", &c->max_request_bytes},
      {"max_name_bytes", &c->max_name_bytes},
      {"max_type_bytes", &c->max_type_bytes},
      {"max_context_entries", &c->max_context_entries},
      {"max_context_bytes", &c->max_context_bytes},
      {"max_stages", &c->max_stages},
      {"max_result_bytes", &c->max_result_bytes},
      {"max_finished", &c->max_finished},
      {"max_queue_bytes", &c->max_queue_bytes},
      {"idempotency_window_seconds", &c->idempotency_window_seconds},
      {"max_dependencies", &c->max_dependencies},
      {"max_schedules", &c->max_schedules},
  };
  for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
    if (strcmp(limits[i].key, key) == 0) return limits[i].field;
  }
  return NULL;
}

static int json_tokens(oee_server_config *c, json_t *v, char *err, size_t len) {
  oee_tokens_free(c->tokens, c->n_tokens);
  c->tokens = NULL;
  c->n_tokens = 0;
  return oee_tokens_from_json(v, &c->tokens, &c->n_tokens, err, len);
}

static int json_log_format(oee_server_config *c, json_t *v, char *err, size_t len) {
  const char *f = json_string_value(v);
  if (f == NULL || (strcmp(f, "text") != 0 && strcmp(f, "json") != 0)) {
    return fail(err, len, "config key \"log_format\" must be \"text\" or \"json\"");
  }
  c->log_json = strcmp(f, "json") == 0;
  return 0;
}

/* "tls": {"cert_file", "key_file", "client_ca_file"}, each a path. */
static int json_tls(oee_server_config *c, json_t *v, char *err, size_t len) {
  if (!json_is_object(v)) return fail(err, len, "config key \"tls\" must be an object");
  const char *key;
  json_t *f;
  json_object_foreach(v, key, f) {
    int i = TEXT_TLS_CERT;
    while (i <= TEXT_TLS_CA && strcmp(text_settings[i].key, key) != 0) i++;
    if (i > TEXT_TLS_CA) {
      return fail(err, len,
                  "unknown config key \"tls.%s\" (known: cert_file, key_file, client_ca_file)",
                  key);
    }
    if (!json_is_string(f) || set_text(c, i, json_string_value(f)) != 0) {
      return fail(err, len, "config key \"tls.%s\" must be a file path", key);
    }
  }
  return 0;
}

static int json_metrics_listen(oee_server_config *c, json_t *v, char *err, size_t len) {
  if (!json_is_string(v) || set_text(c, TEXT_METRICS, json_string_value(v)) != 0) {
    return fail(err, len, "config key \"metrics_listen\" must be a \"host:port\" string");
  }
  return 0;
}

/* The keys whose value is a structure of its own (or an enumeration). */
static int json_section(oee_server_config *c, const char *key, json_t *v, char *err, size_t len) {
  static const struct {
    const char *key;
    int (*parse)(oee_server_config *c, json_t *v, char *err, size_t len);
  } sections[] = {
      {"commands", json_commands},
      {"models", json_models},
      {"type_limits", json_type_limits},
      {"remote_types", json_remote_types},
      {"tokens", json_tokens},
      {"log_format", json_log_format},
      {"tls", json_tls},
      {"metrics_listen", json_metrics_listen},
  };
  for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++) {
    if (strcmp(sections[i].key, key) == 0) return sections[i].parse(c, v, err, len);
  }
  return fail(err, len, "unknown config key \"%s\"", key);
}

static int json_key(oee_server_config *c, const char *key, json_t *v, char *err, size_t len) {
  if (strcmp(key, "listen") == 0) {
    if (!json_is_string(v) || set_listen(c, json_string_value(v)) != 0) {
      return fail(err, len, "config key \"listen\" must be a \"host:port\" string");
    }
    return 0;
  }
  if (strcmp(key, "workers") == 0) {
    return json_int_in(v, key, 1, OEE_SERVER_MAX_WORKERS, &c->workers, err, len);
  }
  if (strcmp(key, "io_threads") == 0) { /* 0: chosen at start */
    return json_int_in(v, key, 0, OEE_SERVER_MAX_IO_THREADS, &c->io_threads, err, len);
  }
  if (strcmp(key, "io_queue") == 0) {
    if (!json_is_string(v) || set_io_queue(c, json_string_value(v)) != 0) {
      return fail(err, len, "config key \"io_queue\" must be " IO_QUEUE_VALUES);
    }
    return 0;
  }
  if (strcmp(key, "default_max_attempts") == 0) {
    return json_int_in(v, key, 1, OEE_MAX_ATTEMPTS_LIMIT, &c->default_max_attempts, err, len);
  }
  size_t *limit = limit_key(c, key);
  if (limit) return json_count(v, key, 1, limit, err, len);
  if (strcmp(key, "retention_seconds") == 0) { /* 0: never by age */
    return json_count(v, key, 0, &c->retention_seconds, err, len);
  }
  if (strcmp(key, "drain_timeout_seconds") == 0)
    return json_number(v, key, &c->drain_timeout, err, len);
  if (strcmp(key, "store") == 0 || strcmp(key, "data_dir") == 0 || strcmp(key, "sync") == 0) {
    return json_storage(c, key, v, err, len);
  }
  return json_section(c, key, v, err, len);
}

/* Limits that depend on the engine or on gRPC. */
static int check_limits(const oee_server_config *c, char *err, size_t len) {
  if (c->max_stages > OEE_PIPELINE_MAX_STAGES) {
    return fail(err, len, "config key \"max_stages\" must be at most %d", OEE_PIPELINE_MAX_STAGES);
  }
  if (c->max_request_bytes > INT_MAX) {
    return fail(err, len, "config key \"max_request_bytes\" must be at most %d", INT_MAX);
  }
  return 0;
}

int oee_server_config_apply_json(oee_server_config *c, const char *text, const char *origin,
                                 char *err, size_t len) {
  json_error_t jerr;
  json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
  if (root == NULL) {
    return fail(err, len, "%s: invalid JSON at line %d: %s", origin, jerr.line, jerr.text);
  }
  int rc = 0;
  if (!json_is_object(root)) rc = fail(err, len, "%s: the top level must be an object", origin);
  const char *key;
  json_t *v;
  json_object_foreach(root, key, v) {
    if (rc == 0) rc = json_key(c, key, v, err, len);
  }
  json_decref(root);
  return rc == 0 ? check_limits(c, err, len) : rc;
}

static int load_file(oee_server_config *c, const char *path, char *err, size_t len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return fail(err, len, "cannot read config file %s: %s", path, strerror(errno));
  char *text = NULL;
  size_t size = 0;
  FILE *mem = open_memstream(&text, &size);
  char buf[4096];
  size_t n;
  while (mem && (n = fread(buf, 1, sizeof(buf), f)) > 0) fwrite(buf, 1, n, mem);
  int bad = ferror(f) || mem == NULL;
  fclose(f);
  if (mem) fclose(mem);
  int rc = bad ? fail(err, len, "cannot read config file %s", path)
               : oee_server_config_apply_json(c, text, path, err, len);
  free(text); /* open_memstream: libc memory */
  if (rc == 0 && (c->config_path = oee_strdup(path)) == NULL) rc = fail(err, len, "out of memory");
  return rc;
}

/* ------------------------------------------------- flags and environment */

typedef struct overrides {
  const char *listen, *workers, *config, *drain, *store, *data_dir, *sync, *io_threads, *io_queue;
  const char *text[N_TEXT]; /* by text_settings index */
} overrides;

static const char usage[] =
    "usage: oee-server [--listen HOST:PORT] [--workers N] [--io-threads N] "
    "[--io-queue per_thread|shared] [--config FILE] "
    "[--drain-timeout SECONDS] [--store sqlite|memory] [--data-dir DIR] [--sync full|normal] "
    "[--tls-cert FILE --tls-key FILE [--tls-client-ca FILE]] [--metrics-listen HOST:PORT]";

/* Where the value of the flag with getopt val `ch` goes; NULL for none. */
static const char **flag_slot(overrides *o, int ch) {
  if (ch >= 0x100 && ch < 0x100 + N_TEXT) return &o->text[ch - 0x100];
  switch (ch) {
    case 'l':
      return &o->listen;
    case 'w':
      return &o->workers;
    case 'c':
      return &o->config;
    case 'd':
      return &o->drain;
    case 's':
      return &o->store;
    case 'D':
      return &o->data_dir;
    case 'y':
      return &o->sync;
    case 'i':
      return &o->io_threads;
    case 'q':
      return &o->io_queue;
    default:
      return NULL;
  }
}

static int parse_flags(int argc, char **argv, overrides *o, char *err, size_t len) {
  static const struct option opts[] = {
      {"listen", required_argument, NULL, 'l'},
      {"workers", required_argument, NULL, 'w'},
      {"io-threads", required_argument, NULL, 'i'},
      {"io-queue", required_argument, NULL, 'q'},
      {"config", required_argument, NULL, 'c'},
      {"drain-timeout", required_argument, NULL, 'd'},
      {"store", required_argument, NULL, 's'},
      {"data-dir", required_argument, NULL, 'D'},
      {"sync", required_argument, NULL, 'y'},
      {"tls-cert", required_argument, NULL, 0x100 + TEXT_TLS_CERT},
      {"tls-key", required_argument, NULL, 0x100 + TEXT_TLS_KEY},
      {"tls-client-ca", required_argument, NULL, 0x100 + TEXT_TLS_CA},
      {"metrics-listen", required_argument, NULL, 0x100 + TEXT_METRICS},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  optind = 0; /* reset: tests call this more than once */
  opterr = 0;
  int ch;
  while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    const char **slot = flag_slot(o, ch);
    if (slot != NULL) {
      *slot = optarg;
    } else if (ch == 'h') {
      fail(err, len, "%s", usage);
      return 1;
    } else {
      return fail(err, len, "unknown or incomplete option \"%s\"; %s", argv[optind - 1], usage);
    }
  }
  if (optind < argc) return fail(err, len, "unexpected argument \"%s\"; %s", argv[optind], usage);
  return 0;
}

/* Applies one setting given as text by a flag or variable named `what`. */
static int apply_text(oee_server_config *c, char key, const char *v, const char *what, char *err,
                      size_t len) {
  long n;
  switch (key) {
    case 'l':
      if (set_listen(c, v) != 0) return fail(err, len, "%s must be HOST:PORT, got \"%s\"", what, v);
      return 0;
    case 'w':
      if (parse_int(v, 1, OEE_SERVER_MAX_WORKERS, &n) != 0) {
        return fail(err, len, "%s must be an integer from 1 to %d, got \"%s\"", what,
                    OEE_SERVER_MAX_WORKERS, v);
      }
      c->workers = (int)n;
      return 0;
    case 'i':
      if (parse_int(v, 0, OEE_SERVER_MAX_IO_THREADS, &n) != 0) {
        return fail(err, len, "%s must be an integer from 0 to %d, got \"%s\"", what,
                    OEE_SERVER_MAX_IO_THREADS, v);
      }
      c->io_threads = (int)n;
      return 0;
    case 'q':
      if (set_io_queue(c, v) != 0)
        return fail(err, len, "%s must be " IO_QUEUE_VALUES ", got \"%s\"", what, v);
      return 0;
    default:
      if (parse_seconds(v, &c->drain_timeout) != 0)
        return fail(err, len, "%s must be a non-negative number of seconds, got \"%s\"", what, v);
      return 0;
  }
}

/* Applies the storage settings of one origin (the variables or the flags). */
static int apply_storage(oee_server_config *c, const overrides *o, int flags, char *err,
                         size_t len) {
  if (o->store && storage_text(c, "store", o->store, flags ? "--store" : "OEE_STORE", err, len)) {
    return -1;
  }
  if (o->data_dir &&
      storage_text(c, "data_dir", o->data_dir, flags ? "--data-dir" : "OEE_DATA_DIR", err, len)) {
    return -1;
  }
  if (o->sync && storage_text(c, "sync", o->sync, flags ? "--sync" : "OEE_SYNC", err, len)) {
    return -1;
  }
  for (int i = 0; i < N_TEXT; i++) {
    if (o->text[i] && set_text(c, i, o->text[i]) != 0) {
      const struct text_setting *t = &text_settings[i];
      return fail(err, len, "%s must be %s, got \"%s\"", flags ? t->flag : t->var,
                  t->address ? "HOST:PORT" : "a file path", o->text[i]);
    }
  }
  return 0;
}

int oee_server_config_load(oee_server_config *c, int argc, char **argv, oee_getenv_fn env,
                           char *err, size_t len) {
  if (set_defaults(c) != 0) return fail(err, len, "out of memory");
  overrides flags = {0};
  int rc = parse_flags(argc, argv, &flags, err, len);
  if (rc != 0) return rc;
  overrides vars = {env("OEE_LISTEN"),   env("OEE_WORKERS"),
                    env("OEE_CONFIG"),   env("OEE_DRAIN_TIMEOUT"),
                    env("OEE_STORE"),    env("OEE_DATA_DIR"),
                    env("OEE_SYNC"),     env("OEE_IO_THREADS"),
                    env("OEE_IO_QUEUE"), {NULL}};
  for (int i = 0; i < N_TEXT; i++) vars.text[i] = env(text_settings[i].var);
  const char *path = flags.config ? flags.config : vars.config;
  if (path && path[0] && load_file(c, path, err, len) != 0) return -1;
  if (vars.listen && apply_text(c, 'l', vars.listen, "OEE_LISTEN", err, len)) return -1;
  if (vars.workers && apply_text(c, 'w', vars.workers, "OEE_WORKERS", err, len)) return -1;
  if (vars.io_threads && apply_text(c, 'i', vars.io_threads, "OEE_IO_THREADS", err, len)) {
    return -1;
  }
  if (vars.io_queue && apply_text(c, 'q', vars.io_queue, "OEE_IO_QUEUE", err, len)) return -1;
  if (vars.drain && apply_text(c, 'd', vars.drain, "OEE_DRAIN_TIMEOUT", err, len)) return -1;
  if (apply_storage(c, &vars, 0, err, len) != 0) return -1;
  if (flags.listen && apply_text(c, 'l', flags.listen, "--listen", err, len)) return -1;
  if (flags.workers && apply_text(c, 'w', flags.workers, "--workers", err, len)) return -1;
  if (flags.io_threads && apply_text(c, 'i', flags.io_threads, "--io-threads", err, len)) {
    return -1;
  }
  if (flags.io_queue && apply_text(c, 'q', flags.io_queue, "--io-queue", err, len)) return -1;
  if (flags.drain && apply_text(c, 'd', flags.drain, "--drain-timeout", err, len)) return -1;
  if (apply_storage(c, &flags, 1, err, len) != 0) return -1;
  if ((c->tls_cert_file == NULL) != (c->tls_key_file == NULL)) {
    return fail(err, len, "tls: cert_file (--tls-cert) and key_file (--tls-key) go together");
  }
  if (c->tls_client_ca_file && c->tls_cert_file == NULL) {
    return fail(err, len, "tls: client_ca_file (--tls-client-ca) needs cert_file and key_file");
  }
  return 0;
}
