/* test_config.c - oee-server settings: defaults, the JSON file, precedence
 * of flags over environment over file, and errors that name the key; and
 * the conversions of server/convert.h that need no server. */
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "server/config.h"
#include "server/convert.h"

/* A fake environment: pairs of name, value. */
static const char *fake_env[12]; /* NULL-terminated pairs */

static const char *getenv_fake(const char *name) {
  for (int i = 0; fake_env[i]; i += 2) {
    if (strcmp(fake_env[i], name) == 0) return fake_env[i + 1];
  }
  return NULL;
}

static void set_env(const char *a, const char *b, const char *c, const char *d) {
  memset(fake_env, 0, sizeof(fake_env));
  fake_env[0] = a;
  fake_env[1] = b;
  fake_env[2] = c;
  fake_env[3] = d;
}

static char *write_file(const char *text) {
  static char path[256];
  const char *dir = getenv("TEST_TMPDIR");
  int n = snprintf(path, sizeof(path) - 7, "%s/oee-config-", dir ? dir : "/tmp");
  memset(path + n, 'X', 6); /* mkstemp's template */
  path[n + 6] = '\0';
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
  return path;
}

static int load(oee_server_config *c, char *err, int argc, char **argv) {
  return oee_server_config_load(c, argc, argv, getenv_fake, err, 512);
}

static void test_defaults(void **state) {
  (void)state;
  set_env(NULL, NULL, NULL, NULL);
  oee_server_config c;
  char err[512];
  char *argv[] = {"oee-server", NULL};
  assert_int_equal(load(&c, err, 1, argv), 0);
  assert_string_equal(c.listen, "127.0.0.1:50051");
  assert_int_equal(c.workers, 3);
  assert_int_equal(c.max_queue, 1000000);
  assert_int_equal(c.max_batch, 10000);
  assert_int_equal(c.watch_buffer, 4096);
  assert_true(c.drain_timeout == 30);
  assert_null(c.config_path);
  assert_int_equal(c.store, OEE_STORE_SQLITE);
  assert_string_equal(c.data_dir, "./oee-data");
  assert_int_equal(c.sync_normal, 0);
  assert_int_equal(c.retention_seconds, 604800);
  assert_int_equal(c.max_finished, 1000000);
  assert_int_equal(c.max_queue_bytes, (size_t)1 << 30);
  assert_string_equal(oee_store_name(c.store), "sqlite");
  assert_string_equal(oee_sync_name(c.sync_normal), "full");
  assert_int_equal(oee_exec_table_size(c.commands), 0);
  assert_true(oee_model_table_has(c.models, "echo"));
  assert_int_equal(c.default_max_attempts, 1);
  assert_int_equal(c.idempotency_window_seconds, 86400);
  assert_int_equal(c.max_dependencies, 64);
  assert_int_equal(c.max_schedules, 10000);
  assert_int_equal(c.n_type_limits, 0);
  assert_null(c.type_limits);
  oee_server_config_free(&c);
}

static void test_file_env_flag_precedence(void **state) {
  (void)state;
  char *path = write_file(
      "{\"listen\": \"127.0.0.1:1111\", \"workers\": 7, \"max_queue\": 5,"
      " \"commands\": {\"hello\": {\"argv\": [\"echo\", \"hello\"], \"timeout_seconds\": 10}},"
      " \"models\": {\"upper\": {\"argv\": [\"tr\", \"a-z\", \"A-Z\"], \"cost\": 0.5,"
      " \"quality\": 0.6, \"timeout_seconds\": 30}}}");
  set_env("OEE_CONFIG", path, "OEE_WORKERS", "4");
  oee_server_config c;
  char err[512];
  char *argv1[] = {"oee-server", NULL};
  assert_int_equal(load(&c, err, 1, argv1), 0);
  assert_string_equal(c.listen, "127.0.0.1:1111"); /* file */
  assert_int_equal(c.workers, 4);                  /* env over file */
  assert_int_equal(c.max_queue, 5);
  assert_non_null(oee_exec_table_find(c.commands, "hello"));
  assert_true(oee_model_table_has(c.models, "upper"));
  oee_server_config_free(&c);
  char *argv2[] = {"oee-server", "--workers", "9", "--listen", "0.0.0.0:2222", NULL};
  assert_int_equal(load(&c, err, 5, argv2), 0);
  assert_int_equal(c.workers, 9); /* flag over env */
  assert_string_equal(c.listen, "0.0.0.0:2222");
  oee_server_config_free(&c);
  unlink(path);
}

/* store, data_dir and sync: flag over environment over file. Each layer
 * sets the other store than the one below it (the file's differs from the
 * default, sqlite), so every override shows. */
static void test_storage_precedence(void **state) {
  (void)state;
  char *path =
      write_file("{\"store\": \"memory\", \"data_dir\": \"/tmp/f\", \"sync\": \"normal\"}");
  oee_server_config c;
  char err[512];
  set_env("OEE_CONFIG", path, NULL, NULL);
  char *argv1[] = {"oee-server", NULL};
  assert_int_equal(load(&c, err, 1, argv1), 0);
  assert_int_equal(c.store, OEE_STORE_MEMORY);
  assert_string_equal(c.data_dir, "/tmp/f");
  assert_int_equal(c.sync_normal, 1);
  oee_server_config_free(&c);
  memset(fake_env, 0, sizeof(fake_env));
  const char *env[] = {"OEE_CONFIG", path,       "OEE_STORE", "sqlite", "OEE_DATA_DIR",
                       "/tmp/e",     "OEE_SYNC", "full",      NULL};
  memcpy(fake_env, env, sizeof(env));
  assert_int_equal(load(&c, err, 1, argv1), 0);
  assert_int_equal(c.store, OEE_STORE_SQLITE);
  assert_string_equal(c.data_dir, "/tmp/e");
  assert_int_equal(c.sync_normal, 0);
  oee_server_config_free(&c);
  char *argv2[] = {"oee-server", "--store", "memory", "--data-dir",
                   "/tmp/g",     "--sync",  "normal", NULL};
  assert_int_equal(load(&c, err, 7, argv2), 0);
  assert_int_equal(c.store, OEE_STORE_MEMORY);
  assert_string_equal(c.data_dir, "/tmp/g");
  assert_int_equal(c.sync_normal, 1);
  oee_server_config_free(&c);
  memset(fake_env, 0, sizeof(fake_env));
  unlink(path);
}

/* A bad storage value stops the start with its key, flag or variable. */
static void test_storage_errors(void **state) {
  (void)state;
  oee_server_config c;
  char err[512];
  set_env(NULL, NULL, NULL, NULL);
  char *argv1[] = {"oee-server", "--store", "postgres", NULL};
  assert_int_equal(load(&c, err, 3, argv1), -1);
  assert_non_null(strstr(err, "--store"));
  assert_non_null(strstr(err, "postgres"));
  oee_server_config_free(&c);
  char *argv2[] = {"oee-server", "--sync", "off", NULL};
  assert_int_equal(load(&c, err, 3, argv2), -1);
  assert_non_null(strstr(err, "--sync"));
  oee_server_config_free(&c);
  char *argv3[] = {"oee-server", "--data-dir", "", NULL};
  assert_int_equal(load(&c, err, 3, argv3), -1);
  assert_non_null(strstr(err, "--data-dir"));
  oee_server_config_free(&c);
  char *argv4[] = {"oee-server", NULL};
  set_env("OEE_STORE", "disk", NULL, NULL);
  assert_int_equal(load(&c, err, 1, argv4), -1);
  assert_non_null(strstr(err, "OEE_STORE"));
  oee_server_config_free(&c);
  set_env("OEE_SYNC", "FULL", NULL, NULL);
  assert_int_equal(load(&c, err, 1, argv4), -1);
  assert_non_null(strstr(err, "OEE_SYNC"));
  oee_server_config_free(&c);
  set_env("OEE_DATA_DIR", "", NULL, NULL);
  assert_int_equal(load(&c, err, 1, argv4), -1);
  assert_non_null(strstr(err, "OEE_DATA_DIR"));
  oee_server_config_free(&c);
  set_env(NULL, NULL, NULL, NULL);
}

static void expect_error(const char *json, const char *needle) {
  char *path = write_file(json);
  set_env("OEE_CONFIG", path, NULL, NULL);
  oee_server_config c;
  char err[512];
  char *argv[] = {"oee-server", NULL};
  assert_int_equal(load(&c, err, 1, argv), -1);
  if (strstr(err, needle) == NULL) fail_msg("error \"%s\" lacks \"%s\"", err, needle);
  oee_server_config_free(&c);
  unlink(path);
}

static void test_file_errors_name_the_key(void **state) {
  (void)state;
  expect_error("{\"lisen\": \"x:1\"}", "\"lisen\"");
  expect_error("{\"workers\": \"three\"}", "\"workers\"");
  expect_error("{\"workers\": 0}", "\"workers\"");
  expect_error("{\"max_queue\": -1}", "\"max_queue\"");
  expect_error("{\"commands\": {\"a\": {\"argv\": []}}}", "commands.a.argv");
  expect_error("{\"commands\": {\"a\": {\"argv\": [\"x\"], \"shell\": true}}}", "commands.a.shell");
  expect_error("{\"models\": {\"m\": {\"argv\": [\"x\"], \"cost\": \"high\"}}}", "models.m.cost");
  expect_error("{\"models\": {\"echo\": {\"argv\": [\"x\"]}}}", "models.echo");
  expect_error("{\"workers\": 2,", "invalid JSON");
  expect_error("[1, 2]", "top level");
  expect_error("{\"store\": \"disk\"}", "\"store\"");
  expect_error("{\"store\": 1}", "\"store\"");
  expect_error("{\"sync\": \"always\"}", "\"sync\"");
  expect_error("{\"sync\": true}", "\"sync\"");
  expect_error("{\"data_dir\": \"\"}", "\"data_dir\"");
  expect_error("{\"data_dir\": 7}", "\"data_dir\"");
  expect_error("{\"retention_seconds\": -1}", "\"retention_seconds\"");
  expect_error("{\"max_finished\": 0}", "\"max_finished\"");
  expect_error("{\"max_queue_bytes\": \"1G\"}", "\"max_queue_bytes\"");
}

/* The task-semantics keys: values passed on, type_limits kept sorted by
 * type and checked against an engine's executors. */
static void test_semantics_keys(void **state) {
  (void)state;
  char *path = write_file(
      "{\"default_max_attempts\": 100, \"idempotency_window_seconds\": 60,"
      " \"max_dependencies\": 3, \"max_schedules\": 2, \"type_limits\": {\"sleep\": "
      "{\"max_running\": 0},"
      " \"echo\": {\"max_running\": 2, \"max_per_second\": 0.5}, \"fail\": {}}}");
  set_env("OEE_CONFIG", path, NULL, NULL);
  oee_server_config c;
  char err[512];
  char *argv[] = {"oee-server", NULL};
  assert_int_equal(load(&c, err, 1, argv), 0);
  assert_int_equal(c.default_max_attempts, 100);
  assert_int_equal(c.idempotency_window_seconds, 60);
  assert_int_equal(c.max_dependencies, 3);
  assert_int_equal(c.max_schedules, 2);
  assert_int_equal(c.n_type_limits, 3);
  assert_string_equal(c.type_limits[0].task_type, "echo");
  assert_int_equal(c.type_limits[0].max_running, 2);
  assert_true(c.type_limits[0].max_per_second == 0.5);
  assert_string_equal(c.type_limits[1].task_type, "fail"); /* both absent: no limit */
  assert_int_equal(c.type_limits[1].max_running, 0);
  assert_true(c.type_limits[1].max_per_second == 0);
  assert_string_equal(c.type_limits[2].task_type, "sleep");
  oee_engine *eng;
  assert_int_equal(oee_engine_create(NULL, &eng), 0);
  assert_int_equal(oee_server_config_check_types(&c, eng, err, sizeof(err)), 0);
  oee_server_config_free(&c);
  unlink(path);

  /* A type without an executor: known only once the engine exists. */
  path = write_file("{\"type_limits\": {\"echo\": {}, \"frobnicate\": {\"max_running\": 1}}}");
  set_env("OEE_CONFIG", path, NULL, NULL);
  assert_int_equal(load(&c, err, 1, argv), 0);
  assert_int_equal(oee_server_config_check_types(&c, eng, err, sizeof(err)), -1);
  assert_non_null(strstr(err, "\"type_limits.frobnicate\""));
  if (strstr(err, "known types: echo, exec, fail, sleep") == NULL) fail_msg("error: %s", err);
  oee_server_config_free(&c);
  oee_engine_destroy(eng);
  unlink(path);
  set_env(NULL, NULL, NULL, NULL);
}

/* remote_types and log_format, and their refusals naming the key. */
static void test_remote_and_log_keys(void **state) {
  (void)state;
  char *path = write_file("{\"remote_types\": [\"resize\", \"shell\"], \"log_format\": \"json\"}");
  set_env("OEE_CONFIG", path, NULL, NULL);
  oee_server_config c;
  char err[512];
  char *argv[] = {"oee-server", NULL};
  assert_int_equal(load(&c, err, 1, argv), 0);
  assert_int_equal(c.n_remote_types, 2);
  assert_string_equal(c.remote_types[1], "shell");
  assert_int_equal(c.log_json, 1);
  oee_server_config_free(&c);
  unlink(path);
  expect_error("{\"log_format\": \"xml\"}", "\"log_format\"");
  expect_error("{\"log_format\": 1}", "\"log_format\"");
  expect_error("{\"remote_types\": \"shell\"}", "\"remote_types\"");
  expect_error("{\"remote_types\": [\"\"]}", "\"remote_types[0]\"");
  expect_error("{\"remote_types\": [\"a\", \"a\"]}", "given twice");
  expect_error("{\"tokens\": {}}", "\"tokens\"");
  expect_error("{\"tokens\": [{\"sha256\": \"00\", \"roles\": [\"read\"]}]}", "\"tokens[0].name\"");
  expect_error("{\"tokens\": [{\"name\": \"a\", \"sha256\": \"00\", \"roles\": [\"read\"]}]}",
               "\"tokens[0].sha256\"");
  expect_error("{\"tokens\": [{\"name\": \"a\", \"roles\": [\"read\"]}]}", "exactly one");
  expect_error(
      "{\"tokens\": [{\"name\": \"a\", \"file\": \"/nonexistent/t\", \"roles\": "
      "[\"read\"]}]}",
      "\"tokens[0].file\"");
  char sha[65];
  memset(sha, 'a', 64);
  sha[64] = '\0';
  char json[256];
  snprintf(json, sizeof(json), "{\"tokens\": [{\"name\": \"a\", \"sha256\": \"%s\"}]}", sha);
  expect_error(json, "\"tokens[0].roles\"");
  snprintf(json, sizeof(json),
           "{\"tokens\": [{\"name\": \"a\", \"sha256\": \"%s\", \"roles\": [\"root\"]}]}", sha);
  expect_error(json, "\"tokens[0].roles[0]\"");
  set_env(NULL, NULL, NULL, NULL);
}

static void test_semantics_key_errors(void **state) {
  (void)state;
  expect_error("{\"default_max_attempts\": 0}", "\"default_max_attempts\"");
  expect_error("{\"default_max_attempts\": 101}", "\"default_max_attempts\"");
  expect_error("{\"default_max_attempts\": \"3\"}", "\"default_max_attempts\"");
  expect_error("{\"idempotency_window_seconds\": 0}", "\"idempotency_window_seconds\"");
  expect_error("{\"idempotency_window_seconds\": -1}", "\"idempotency_window_seconds\"");
  expect_error("{\"max_dependencies\": 0}", "\"max_dependencies\"");
  expect_error("{\"max_schedules\": 0}", "\"max_schedules\"");
  expect_error("{\"max_dependencies\": 1.5}", "\"max_dependencies\"");
  expect_error("{\"type_limits\": []}", "\"type_limits\"");
  expect_error("{\"type_limits\": {\"echo\": 3}}", "\"type_limits.echo\"");
  expect_error("{\"type_limits\": {\"echo\": {\"max_running\": -1}}}",
               "\"type_limits.echo.max_running\"");
  expect_error("{\"type_limits\": {\"echo\": {\"max_running\": 1.5}}}",
               "\"type_limits.echo.max_running\"");
  expect_error("{\"type_limits\": {\"echo\": {\"max_running\": 2147483648}}}",
               "\"type_limits.echo.max_running\"");
  expect_error("{\"type_limits\": {\"echo\": {\"max_per_second\": -0.5}}}",
               "\"type_limits.echo.max_per_second\"");
  expect_error("{\"type_limits\": {\"echo\": {\"max_per_second\": \"fast\"}}}",
               "\"type_limits.echo.max_per_second\"");
  expect_error("{\"type_limits\": {\"echo\": {\"burst\": 1}}}", "\"type_limits.echo.burst\"");
}

static void test_flag_and_env_errors(void **state) {
  (void)state;
  oee_server_config c;
  char err[512];
  set_env(NULL, NULL, NULL, NULL);
  char *argv1[] = {"oee-server", "--config", "/nonexistent/oee.json", NULL};
  assert_int_equal(load(&c, err, 3, argv1), -1);
  assert_non_null(strstr(err, "/nonexistent/oee.json"));
  oee_server_config_free(&c);
  char *argv2[] = {"oee-server", "--workers", "many", NULL};
  assert_int_equal(load(&c, err, 3, argv2), -1);
  assert_non_null(strstr(err, "--workers"));
  oee_server_config_free(&c);
  char *argv3[] = {"oee-server", "--bogus", NULL};
  assert_int_equal(load(&c, err, 2, argv3), -1);
  assert_non_null(strstr(err, "--bogus"));
  oee_server_config_free(&c);
  set_env("OEE_DRAIN_TIMEOUT", "-3", NULL, NULL);
  char *argv4[] = {"oee-server", NULL};
  assert_int_equal(load(&c, err, 1, argv4), -1);
  assert_non_null(strstr(err, "OEE_DRAIN_TIMEOUT"));
  oee_server_config_free(&c);
  char *argv5[] = {"oee-server", "--help", NULL};
  set_env(NULL, NULL, NULL, NULL);
  assert_int_equal(load(&c, err, 2, argv5), 1);
  assert_non_null(strstr(err, "usage"));
  oee_server_config_free(&c);
}

/* TLS files and the metrics address: file keys, flags and variables, the
 * precedence between them, and the refusals naming the key or flag. */
static void test_tls_and_metrics_keys(void **state) {
  (void)state;
  expect_error("{\"tls\": \"on\"}", "\"tls\" must be an object");
  expect_error("{\"tls\": {\"cert\": \"a.pem\"}}", "\"tls.cert\"");
  expect_error("{\"tls\": {\"cert_file\": 1}}", "\"tls.cert_file\"");
  expect_error("{\"tls\": {\"cert_file\": \"a.pem\"}}", "go together");
  expect_error("{\"tls\": {\"client_ca_file\": \"ca.pem\"}}", "needs cert_file");
  expect_error("{\"metrics_listen\": 9464}", "\"metrics_listen\"");
  expect_error("{\"metrics_listen\": \"9464\"}", "\"metrics_listen\"");
  char *path = write_file(
      "{\"tls\": {\"cert_file\": \"f.pem\", \"key_file\": \"f.key\"}, "
      "\"metrics_listen\": \"127.0.0.1:1\"}");
  set_env("OEE_CONFIG", path, "OEE_TLS_KEY", "e.key");
  oee_server_config c;
  char err[512];
  char *argv[] = {"oee-server", "--tls-cert", "flag.pem", "--metrics-listen", ":2", NULL};
  assert_int_equal(load(&c, err, 5, argv), 0);
  assert_string_equal(c.tls_cert_file, "flag.pem"); /* flag over file */
  assert_string_equal(c.tls_key_file, "e.key");     /* variable over file */
  assert_null(c.tls_client_ca_file);
  assert_string_equal(c.metrics_listen, ":2");
  oee_server_config_free(&c);
  set_env("OEE_METRICS_LISTEN", "nope", NULL, NULL);
  char *argv2[] = {"oee-server", NULL};
  assert_int_equal(load(&c, err, 1, argv2), -1);
  assert_non_null(strstr(err, "OEE_METRICS_LISTEN must be HOST:PORT"));
  oee_server_config_free(&c);
  set_env(NULL, NULL, NULL, NULL);
  assert_int_equal(load(&c, err, 1, argv2), 0);
  assert_null(c.metrics_listen); /* off by default */
  assert_null(c.tls_cert_file);
  oee_server_config_free(&c);
  unlink(path);
}

/* io_threads: file, variable, flag (flag over variable over file), the
 * bounds, and the choice when unset: the CPUs this process may use. */
static void test_io_threads(void **state) {
  (void)state;
  expect_error("{\"io_threads\": 17}", "\"io_threads\" must be an integer from 0 to 16");
  expect_error("{\"io_threads\": -1}", "\"io_threads\"");
  expect_error("{\"io_threads\": 2.5}", "\"io_threads\"");
  char *path = write_file("{\"io_threads\": 3}");
  set_env("OEE_CONFIG", path, NULL, NULL);
  oee_server_config c;
  char err[512];
  char *argv[] = {"oee-server", NULL};
  assert_int_equal(load(&c, err, 1, argv), 0);
  assert_int_equal(c.io_threads, 3);
  assert_int_equal(oee_server_io_threads(&c), 3);
  oee_server_config_free(&c);
  set_env("OEE_CONFIG", path, "OEE_IO_THREADS", "5");
  assert_int_equal(load(&c, err, 1, argv), 0);
  assert_int_equal(c.io_threads, 5); /* variable over file */
  oee_server_config_free(&c);
  char *argv2[] = {"oee-server", "--io-threads", "16", NULL};
  assert_int_equal(load(&c, err, 3, argv2), 0);
  assert_int_equal(c.io_threads, 16); /* flag over variable */
  oee_server_config_free(&c);
  char *argv3[] = {"oee-server", "--io-threads", "17", NULL};
  assert_int_equal(load(&c, err, 3, argv3), -1);
  assert_non_null(strstr(err, "--io-threads must be an integer from 0 to 16, got \"17\""));
  oee_server_config_free(&c);
  set_env("OEE_IO_THREADS", "two", NULL, NULL);
  assert_int_equal(load(&c, err, 1, argv), -1);
  assert_non_null(strstr(err, "OEE_IO_THREADS"));
  oee_server_config_free(&c);
  set_env(NULL, NULL, NULL, NULL);
  assert_int_equal(load(&c, err, 1, argv), 0);
  assert_int_equal(c.io_threads, 0); /* unset: chosen at start */
  cpu_set_t cpus;
  assert_int_equal(sched_getaffinity(0, sizeof(cpus), &cpus), 0);
  int want = CPU_COUNT(&cpus) / 2; /* half, at least 1, at most 16 */
  want = want < 1 ? 1 : want > 16 ? 16 : want;
  assert_int_equal(oee_server_io_threads(&c), want);
  oee_server_config_free(&c);
  unlink(path);
}

/* io_queue: "per_thread" (the default) or "shared", from the file, the
 * variable or the flag, in that order of precedence. */
static void test_io_queue(void **state) {
  (void)state;
  expect_error("{\"io_queue\": \"one\"}", "\"io_queue\" must be \"per_thread\" or \"shared\"");
  expect_error("{\"io_queue\": true}", "\"io_queue\"");
  char *path = write_file("{\"io_queue\": \"shared\"}");
  set_env("OEE_CONFIG", path, NULL, NULL);
  oee_server_config c;
  char err[512];
  char *argv[] = {"oee-server", NULL};
  assert_int_equal(load(&c, err, 1, argv), 0);
  assert_int_equal(c.io_shared_queue, 1);
  oee_server_config_free(&c);
  set_env("OEE_CONFIG", path, "OEE_IO_QUEUE", "per_thread");
  assert_int_equal(load(&c, err, 1, argv), 0);
  assert_int_equal(c.io_shared_queue, 0); /* variable over file */
  oee_server_config_free(&c);
  char *argv2[] = {"oee-server", "--io-queue", "shared", NULL};
  assert_int_equal(load(&c, err, 3, argv2), 0);
  assert_int_equal(c.io_shared_queue, 1); /* flag over variable */
  oee_server_config_free(&c);
  char *argv3[] = {"oee-server", "--io-queue", "Shared", NULL};
  assert_int_equal(load(&c, err, 3, argv3), -1);
  assert_non_null(strstr(err, "--io-queue must be \"per_thread\" or \"shared\", got \"Shared\""));
  oee_server_config_free(&c);
  set_env(NULL, NULL, NULL, NULL);
  assert_int_equal(load(&c, err, 1, argv), 0);
  assert_int_equal(c.io_shared_queue, 0); /* default: a queue per io thread */
  oee_server_config_free(&c);
  unlink(path);
}

static void test_page_tokens(void **state) {
  (void)state;
  oee_arena a;
  oee_arena_init(&a);
  uint64_t idx = 99;
  assert_string_equal(oee_page_token(&a, 0), "");
  const char *tok = oee_page_token(&a, 0x1234);
  assert_int_equal(oee_page_token_parse(tok, &idx), 0);
  assert_int_equal(idx, 0x1234);
  assert_int_equal(oee_page_token_parse("", &idx), 0);
  assert_int_equal(idx, 0);
  assert_int_equal(oee_page_token_parse("garbage", &idx), -1);
  assert_int_equal(oee_page_token_parse("v1.", &idx), -1);
  assert_int_equal(oee_page_token_parse("v1.zz", &idx), -1);
  assert_int_equal(oee_page_token_parse("v1.-5", &idx), -1);
  oee_arena_free(&a);
}

/* Request Timestamps: years 1..9999 and nanos 0..999999999 only; the
 * engine's int64 ns clamp what lies beyond 1677..2262. Reply Timestamps
 * before the epoch count their nanos forward. */
static void test_timestamps(void **state) {
  (void)state;
  Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  int64_t ns = 0;
  ts.seconds = 1700000000;
  ts.nanos = 5;
  assert_int_equal(oee_pb_time_ns(&ts, &ns), 0);
  assert_true(ns == INT64_C(1700000000000000005));
  ts.seconds = OEE_PB_TIME_MAX_SECONDS;
  ts.nanos = 999999999;
  assert_int_equal(oee_pb_time_ns(&ts, &ns), 0);
  assert_true(ns == INT64_MAX);
  ts.seconds = OEE_PB_TIME_MIN_SECONDS;
  ts.nanos = 0;
  assert_int_equal(oee_pb_time_ns(&ts, &ns), 0);
  assert_true(ns < INT64_C(-9223372035000000000));
  ts.seconds = -1;
  ts.nanos = 500000000;
  assert_int_equal(oee_pb_time_ns(&ts, &ns), 0);
  assert_true(ns == -500000000);
  const int64_t bad_seconds[] = {OEE_PB_TIME_MIN_SECONDS - 1, OEE_PB_TIME_MAX_SECONDS + 1,
                                 INT64_MIN, INT64_MAX};
  for (size_t i = 0; i < 4; i++) {
    ts.seconds = bad_seconds[i];
    ts.nanos = 0;
    assert_int_equal(oee_pb_time_ns(&ts, &ns), -1);
  }
  ts.seconds = 0;
  ts.nanos = -1;
  assert_int_equal(oee_pb_time_ns(&ts, &ns), -1);
  ts.nanos = 1000000000;
  assert_int_equal(oee_pb_time_ns(&ts, &ns), -1);
  oee_arena a;
  oee_arena_init(&a);
  Google__Protobuf__Timestamp *out = oee_pb_time(&a, -500000000);
  assert_true(out->seconds == -1);
  assert_int_equal(out->nanos, 500000000);
  assert_null(oee_pb_time(&a, 0));
  oee_arena_free(&a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_file_env_flag_precedence),
      cmocka_unit_test(test_storage_precedence),
      cmocka_unit_test(test_storage_errors),
      cmocka_unit_test(test_file_errors_name_the_key),
      cmocka_unit_test(test_semantics_keys),
      cmocka_unit_test(test_semantics_key_errors),
      cmocka_unit_test(test_remote_and_log_keys),
      cmocka_unit_test(test_flag_and_env_errors),
      cmocka_unit_test(test_tls_and_metrics_keys),
      cmocka_unit_test(test_timestamps),
      cmocka_unit_test(test_io_threads),
      cmocka_unit_test(test_io_queue),
      cmocka_unit_test(test_page_tokens),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
