/*
 * registry.c - the executor table: task type -> executor function.
 * Lock: eng->exec_lock (a rwlock) guards eng->executors; it is never held
 * together with any other lock.
 */
#include "core/engine.h"

#include <stdlib.h>
#include <string.h>

#include "core/oee_alloc.h"
#include "core/sync.h"

/* Most types oee_engine_executor_names() lists; the built-ins are five. */
#define MAX_LISTED 64

/* ------------------------------------------------------------- executors */

static executor *executor_find(oee_engine *eng, const char *type) {
  for (executor *e = eng->executors; e; e = e->next) {
    if (strcmp(e->type, type) == 0) return e;
  }
  return NULL;
}

int oee__engine_register_full(oee_engine *eng, const char *task_type, oee_executor_fn fn,
                              oee_validate_fn validate, int flags, void *user_data) {
  if (eng == NULL || task_type == NULL || !task_type[0] || fn == NULL) {
    return OEE_EINVAL;
  }
  size_t len = strlen(task_type) + 1;
  executor *fresh = oee_calloc(1, sizeof(*fresh) + len);
  if (fresh == NULL) return OEE_ENOMEM;
  memcpy(fresh->type, task_type, len);
  /* Counted from now on; a submission finds the slot with its executor. */
  fresh->metrics_slot = oee__metrics_add_type(&eng->metrics, task_type);
  if (pthread_rwlock_wrlock(&eng->exec_lock) != 0) abort();
  executor *e = executor_find(eng, task_type);
  if (e == NULL) {
    e = fresh;
    e->next = eng->executors;
    eng->executors = e;
    fresh = NULL;
  }
  e->fn = fn;
  e->validate = validate;
  e->flags = flags;
  e->user_data = user_data;
  pthread_rwlock_unlock(&eng->exec_lock);
  oee_free(fresh);
  return 0;
}

int oee_engine_register(oee_engine *eng, const char *task_type, oee_executor_fn fn,
                        void *user_data) {
  return oee__engine_register_full(eng, task_type, fn, NULL, 0, user_data);
}

int oee__executor_get(oee_engine *eng, const char *type, executor *out) {
  if (pthread_rwlock_rdlock(&eng->exec_lock) != 0) abort();
  executor *e = executor_find(eng, type);
  if (e) *out = *e;
  pthread_rwlock_unlock(&eng->exec_lock);
  return e ? 0 : OEE_ENOEXEC;
}

int oee_engine_has_executor(oee_engine *eng, const char *task_type) {
  executor e;
  return task_type && oee__executor_get(eng, task_type, &e) == 0;
}

static int str_cmp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends s at buf[*len] if it fits in cap; *len grows regardless. */
static void append(char *buf, size_t cap, size_t *len, const char *s) {
  size_t n = strlen(s);
  if (*len + n < cap) memcpy(buf + *len, s, n + 1);
  *len += n;
}

size_t oee_engine_executor_names(oee_engine *eng, char *buf, size_t cap) {
  const char *names[MAX_LISTED];
  size_t n = 0, need = 0;
  if (pthread_rwlock_rdlock(&eng->exec_lock) != 0) abort();
  for (executor *e = eng->executors; e && n < MAX_LISTED; e = e->next) {
    if (!(e->flags & OEE__EXEC_INTERNAL)) names[n++] = e->type;
  }
  qsort(names, n, sizeof(names[0]), str_cmp);
  if (cap > 0) buf[0] = '\0';
  for (size_t i = 0; i < n; i++) {
    if (i > 0) append(buf, cap, &need, ", ");
    append(buf, cap, &need, names[i]);
  }
  pthread_rwlock_unlock(&eng->exec_lock);
  return need;
}
