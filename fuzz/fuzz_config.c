/* fuzz_config.c - libFuzzer entry for the config file parser
 * (oee_server_config_apply_json). Input: the file's text.
 * Invariants: the parser returns 0 or -1; -1 always comes with a message;
 * 0 leaves every limit within the bounds the server relies on; nothing
 * leaks (ASan) whatever the input. */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/oee_pipeline.h"
#include "server/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *no_env(const char *name) {
  (void)name;
  return NULL;
}

static void broken(const char *what, const char *text) {
  fprintf(stderr, "config fuzz invariant broken: %s\ninput: %.200s\n", what, text);
  abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (text == NULL) return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  oee_server_config cfg;
  char err[512];
  char *argv[] = {"oee-fuzz", NULL};
  if (oee_server_config_load(&cfg, 1, argv, no_env, err, sizeof(err)) != 0) abort();
  err[0] = '\0';
  int rc = oee_server_config_apply_json(&cfg, text, "fuzz.json", err, sizeof(err));
  if (rc != 0 && rc != -1) broken("return code is neither 0 nor -1", text);
  if (rc == -1 && err[0] == '\0') broken("an error without a message", text);
  if (rc == 0) {
    if (cfg.workers < 1 || cfg.workers > 1024) broken("workers out of 1..1024", text);
    if (cfg.max_stages < 1 || cfg.max_stages > OEE_PIPELINE_MAX_STAGES)
      broken("max_stages out of range", text);
    if (cfg.max_request_bytes < 1 || cfg.max_request_bytes > INT_MAX)
      broken("max_request_bytes out of range", text);
    if (cfg.max_queue < 1 || cfg.max_batch < 1 || cfg.watch_buffer < 1 || cfg.max_watchers < 1 ||
        cfg.max_name_bytes < 1 || cfg.max_type_bytes < 1 || cfg.max_context_entries < 1 ||
        cfg.max_context_bytes < 1 || cfg.max_result_bytes < 1) {
      broken("a limit is 0", text);
    }
    if (!(cfg.drain_timeout >= 0)) broken("drain_timeout negative or NaN", text);
    if (cfg.listen == NULL || strchr(cfg.listen, ':') == NULL)
      broken("listen is not host:port", text);
    if (cfg.commands == NULL || cfg.models == NULL) broken("tables missing", text);
    if (!oee_model_table_has(cfg.models, "echo")) broken("the echo model is gone", text);
  }
  oee_server_config_free(&cfg);
  free(text);
  return 0;
}
