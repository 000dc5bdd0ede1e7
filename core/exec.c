/*
 * exec.c - the built-in `exec` executor: runs a command of the configured
 * table with context["input"] on stdin.
 *
 * DESIGN: the executor runs the child synchronously on the worker thread
 * that picked the task (the worker shows busy for as long as the command
 * runs) and finishes the job before returning. Cancellation reaches the
 * child through the job's token, which oee_proc_run() watches; the command
 * table is immutable and outlives the engine, so no lock is needed here.
 * Security: a task only names a table entry; its argv always comes from the
 * table, and the validation hook refuses unknown names at submit time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "core/oee_alloc.h"
#include "core/oee_exec.h"

static const char *kv_find(const oee_kv *kv, size_t n, const char *key) {
  for (size_t i = 0; i < n; i++) {
    if (kv[i].key != NULL && strcmp(kv[i].key, key) == 0) return kv[i].value;
  }
  return NULL;
}

/* Refuses, before anything is created, a task naming no table entry. */
static int exec_validate(const oee_submit *req, const void *payload, void *user_data,
                         oee_error *err) {
  (void)payload;
  const oee_exec_table *table = user_data;
  const char *name = kv_find(req->context, req->context_len, "command");
  if (name == NULL) {
    return oee_error_set(err, OEE_ENOCMD,
                         "exec tasks need context[\"command\"] naming a configured command");
  }
  if (oee_exec_table_find(table, name) == NULL) {
    return oee_error_set(err, OEE_ENOCMD,
                         "exec command \"%.64s\" is not in the configured commands table", name);
  }
  return 0;
}

/* Turns a finished run into exactly one job completion. */
static void exec_finish(oee_job *job, const oee_command *cmd, const oee_proc_result *res) {
  char msg[OEE_PROC_MSG_MAX];
  if (res->cancelled) {
    oee_job_cancelled(job, "cancelled");
  } else if (oee_proc_describe(res, cmd->timeout_seconds, msg, sizeof(msg))) {
    oee_job_fail(job, msg);
  } else {
    char *out = oee_trim_right(res->out);
    if (out == NULL) {
      oee_job_fail(job, "out of memory");
    } else {
      oee_job_succeed(job, out);
    }
    oee_free(out);
  }
}

static void exec_run(oee_job *job, void *user_data) {
  const oee_exec_table *table = user_data;
  const char *name = oee_job_context(job, "command");
  const oee_command *cmd = oee_exec_table_find(table, name);
  if (cmd == NULL) {
    /* Unreachable while the hook guards submissions; fail closed anyway. */
    oee_job_fail_permanent(job, "command is not in the configured table");
    return;
  }
  const char *input = oee_job_context(job, "input");
  if (input == NULL) input = "";
  /* The command learns which attempt it runs (a retry may want to know). */
  char attempt[32];
  snprintf(attempt, sizeof(attempt), "OEE_ATTEMPT=%d", oee_job_attempt(job));
  const char *const env[] = {attempt, NULL};
  oee_proc_result res;
  int rc = oee_proc_run_env(cmd->argv, env, input, strlen(input), cmd->timeout_seconds,
                            oee_job_token(job), 0, &res);
  if (rc != 0) {
    oee_job_fail(job, res.err_tail != NULL ? res.err_tail : oee_strerror(rc));
  } else {
    exec_finish(job, cmd, &res);
  }
  oee_proc_result_free(&res);
}

int oee__exec_register(oee_engine *eng, const oee_exec_table *commands) {
  /* With no table the type still exists, so callers get OEE_ENOCMD (a
   * clear "not in the table") rather than OEE_ENOEXEC. */
  return oee__engine_register_full(eng, "exec", exec_run, exec_validate, 0, (void *)commands);
}
