/*
 * oeectl_template.c - the task flags (--name, --type, --priority, --ctx,
 * --max-attempts, --backoff, --max-backoff, --timeout, --run-at, --key,
 * --after) read into a SubmitTaskRequest. `submit` sends that request as it
 * is; `schedule create` sends it as the template of every firing, after
 * refusing the flags a template may not have.
 *
 * Values are checked only as far as they must be to be sent at all (an
 * integer, a finite number, a time); ranges are the server's to judge, so
 * that its message names the field.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/oeectl.h"

int oeectl_template_init(oeectl_template *t, int argc) {
  memset(t, 0, sizeof(*t));
  oee__v1__submit_task_request__init(&t->req);
  /* Each flag adds at most one entry, so argc bounds every array. */
  t->entries = calloc((size_t)argc, sizeof(*t->entries));
  t->req.context = calloc((size_t)argc, sizeof(*t->req.context));
  t->req.depends_on = calloc((size_t)argc, sizeof(*t->req.depends_on));
  if (t->entries == NULL || t->req.context == NULL || t->req.depends_on == NULL)
    return oeectl_fail(OEECTL_EXIT_SOFTWARE, "out of memory");
  return -1;
}

void oeectl_template_free(oeectl_template *t) {
  for (size_t i = 0; i < t->req.n_context; i++) free(t->entries[i].key);
  free(t->entries);
  free(t->req.context);
  free(t->req.depends_on);
}

int oeectl_template_check(const oeectl_template *t, const oeectl_cmd *cmd) {
  if (!t->have_name) return oeectl_usage_error(cmd, "--name is required");
  if (!t->have_type) return oeectl_usage_error(cmd, "--type is required");
  return -1;
}

static int add_ctx(oeectl_template *t, const oeectl_cmd *cmd, const char *arg) {
  const char *eq = strchr(arg, '=');
  if (eq == NULL || eq == arg)
    return oeectl_usage_error(cmd, "--ctx wants KEY=VALUE, got \"%s\"", arg);
  Oee__V1__SubmitTaskRequest__ContextEntry *e = &t->entries[t->req.n_context];
  oee__v1__submit_task_request__context_entry__init(e);
  e->key = strndup(arg, (size_t)(eq - arg));
  e->value = (char *)eq + 1;
  if (e->key == NULL) return oeectl_fail(OEECTL_EXIT_SOFTWARE, "out of memory");
  t->req.context[t->req.n_context++] = e;
  return -1;
}

/* A number of seconds; its range (finite, >= 0) is the server's to check,
 * but it must be a finite number to be sent at all. */
static int seconds_opt(const oeectl_cmd *cmd, const char *flag, const char *arg, double *out) {
  if (oeectl_parse_double(arg, out) != 0)
    return oeectl_usage_error(cmd, "%s must be a number of seconds, got \"%s\"", flag, arg);
  return -1;
}

/* The task-semantics options: attempts, backoff, timeout, timing, deps. */
static int semantics_opt(oeectl_template *t, const oeectl_cmd *cmd, int opt, const char *arg) {
  Oee__V1__SubmitTaskRequest *r = &t->req;
  switch (opt) {
    case OPT_TPL_MAX_ATTEMPTS: /* 1..100 is the server's to check */
      if (oeectl_parse_int(arg, INT32_MIN, INT32_MAX, &r->max_attempts) != 0)
        return oeectl_usage_error(cmd, "--max-attempts must be an integer, got \"%s\"", arg);
      r->max_attempts_present_case =
          OEE__V1__SUBMIT_TASK_REQUEST__MAX_ATTEMPTS_PRESENT_MAX_ATTEMPTS;
      return -1;
    case OPT_TPL_BACKOFF:
      r->backoff_seconds_present_case =
          OEE__V1__SUBMIT_TASK_REQUEST__BACKOFF_SECONDS_PRESENT_BACKOFF_SECONDS;
      return seconds_opt(cmd, "--backoff", arg, &r->backoff_seconds);
    case OPT_TPL_MAX_BACKOFF:
      r->max_backoff_seconds_present_case =
          OEE__V1__SUBMIT_TASK_REQUEST__MAX_BACKOFF_SECONDS_PRESENT_MAX_BACKOFF_SECONDS;
      return seconds_opt(cmd, "--max-backoff", arg, &r->max_backoff_seconds);
    case OPT_TPL_TIMEOUT:
      return seconds_opt(cmd, "--timeout", arg, &r->timeout_seconds);
    case OPT_TPL_RUN_AT:
      if (oeectl_parse_time(arg, &t->run_at) != 0)
        return oeectl_usage_error(cmd, "--run-at wants an RFC 3339 time or +N[s|m|h|d], got \"%s\"",
                                  arg);
      r->run_at = &t->run_at;
      return -1;
    case OPT_TPL_KEY:
      r->idempotency_key = (char *)arg;
      return -1;
    default: /* OPT_TPL_AFTER: the ids are the server's to check */
      r->depends_on[r->n_depends_on++] = (char *)arg;
      return -1;
  }
}

int oeectl_template_opt(oeectl_template *t, const oeectl_cmd *cmd, int opt, const char *arg) {
  if (opt >= OPT_TPL_MAX_ATTEMPTS) return semantics_opt(t, cmd, opt, arg);
  if (opt == OPT_TPL_NAME) {
    t->req.name = (char *)arg;
    t->have_name = 1;
  }
  if (opt == OPT_TPL_TYPE) {
    t->req.task_type = (char *)arg;
    t->have_type = 1;
  }
  if (opt == OPT_TPL_CTX) return add_ctx(t, cmd, arg);
  if (opt == OPT_TPL_PRIORITY) {
    /* Range 0..10 is the server's to check (INVALID_ARGUMENT); any int32 goes. */
    if (oeectl_parse_int(arg, INT32_MIN, INT32_MAX, &t->req.priority) != 0)
      return oeectl_usage_error(cmd, "--priority must be an integer, got \"%s\"", arg);
    t->req.priority_present_case = OEE__V1__SUBMIT_TASK_REQUEST__PRIORITY_PRESENT_PRIORITY;
  }
  return -1;
}
