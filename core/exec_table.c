/*
 * exec_table.c - the command table: the only commands the `exec` executor
 * and the pipeline's command models may run. Filled before the engine
 * starts and immutable afterwards, so readers take no lock.
 */
#include <stdlib.h>
#include <string.h>

#include "core/oee_alloc.h"
#include "core/oee_exec.h"

struct oee_exec_table {
  oee_command *cmds; /* `len` entries, each owning its strings */
  size_t len;
  size_t cap;
};

int oee_exec_table_create(oee_exec_table **out) {
  if (out == NULL) return OEE_EINVAL;
  *out = oee_calloc(1, sizeof(**out));
  return *out == NULL ? OEE_ENOMEM : 0;
}

static void command_free(oee_command *c) {
  char **argv = (char **)c->argv;
  for (size_t i = 0; argv != NULL && i < c->argc; i++) oee_free(argv[i]);
  oee_free(argv);
  oee_free((char *)c->name);
}

/* Fills `c` with copies; on failure `c` holds what must be freed. */
static int command_copy(oee_command *c, const char *name, const char *const *argv, size_t argc,
                        double timeout) {
  memset(c, 0, sizeof(*c));
  c->timeout_seconds = timeout;
  c->name = oee_strdup(name);
  char **copy = oee_calloc(argc + 1, sizeof(*copy));
  c->argv = (const char *const *)copy;
  if (c->name == NULL || copy == NULL) return OEE_ENOMEM;
  for (; c->argc < argc; c->argc++) {
    copy[c->argc] = oee_strdup(argv[c->argc]);
    if (copy[c->argc] == NULL) return OEE_ENOMEM;
  }
  return 0;
}

static int args_valid(const char *name, const char *const *argv, size_t argc, double timeout) {
  if (name == NULL || name[0] == '\0' || argv == NULL || argc == 0) return 0;
  if (!(timeout >= 0)) return 0; /* also refuses NaN */
  for (size_t i = 0; i < argc; i++) {
    if (argv[i] == NULL) return 0;
  }
  return argv[0][0] != '\0';
}

int oee_exec_table_add(oee_exec_table *t, const char *name, const char *const *argv, size_t argc,
                       double timeout_seconds) {
  if (t == NULL || !args_valid(name, argv, argc, timeout_seconds)) {
    return OEE_EINVAL;
  }
  if (oee_exec_table_find(t, name) != NULL) return OEE_EEXISTS;
  if (t->len == t->cap) {
    size_t cap = t->cap == 0 ? 8 : t->cap * 2;
    oee_command *grown = oee_realloc(t->cmds, cap * sizeof(*grown));
    if (grown == NULL) return OEE_ENOMEM;
    t->cmds = grown;
    t->cap = cap;
  }
  oee_command *c = &t->cmds[t->len];
  int rc = command_copy(c, name, argv, argc, timeout_seconds);
  if (rc != 0) {
    command_free(c);
    return rc;
  }
  t->len++;
  return 0;
}

const oee_command *oee_exec_table_find(const oee_exec_table *t, const char *name) {
  if (t == NULL || name == NULL) return NULL;
  for (size_t i = 0; i < t->len; i++) {
    if (strcmp(t->cmds[i].name, name) == 0) return &t->cmds[i];
  }
  return NULL;
}

size_t oee_exec_table_size(const oee_exec_table *t) { return t == NULL ? 0 : t->len; }

void oee_exec_table_destroy(oee_exec_table *t) {
  if (t == NULL) return;
  for (size_t i = 0; i < t->len; i++) command_free(&t->cmds[i]);
  oee_free(t->cmds);
  oee_free(t);
}
