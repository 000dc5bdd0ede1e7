/*
 * oee_exec.h - the command table and the process runner behind the built-in
 * `exec` executor and the pipeline's command models.
 *
 * Only commands named in a table can run: a task names a table entry, never
 * an argv. Children are started without a shell (posix_spawnp), get their
 * input on stdin, and are killed (SIGKILL to their process group) on timeout
 * or cancellation; they are always reaped, so no zombie is left behind.
 */
#ifndef OEE_EXEC_H
#define OEE_EXEC_H

#include <stddef.h>

#include "core/oee.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct oee_command {
  const char *name;
  const char *const *argv; /* NULL-terminated, argv[0] looked up in PATH */
  size_t argc;
  double timeout_seconds; /* 0 = no limit */
} oee_command;

/* An empty table. */
int oee_exec_table_create(oee_exec_table **out);
/* Adds a command (everything is copied). OEE_EEXISTS for a duplicate name,
 * OEE_EINVAL for an empty name/argv or a negative timeout. */
int oee_exec_table_add(oee_exec_table *t, const char *name, const char *const *argv, size_t argc,
                       double timeout_seconds);
/* The entry, or NULL. Borrowed: lives as long as the table. */
const oee_command *oee_exec_table_find(const oee_exec_table *t, const char *name);
size_t oee_exec_table_size(const oee_exec_table *t);
void oee_exec_table_destroy(oee_exec_table *t);

typedef struct oee_proc_result {
  int exit_code; /* valid when !signaled */
  int signaled;  /* 1 when killed by a signal (term_signal says which) */
  int term_signal;
  int timed_out; /* killed because the timeout expired */
  int cancelled; /* killed because the token was cancelled */
  char *out;     /* stdout (NUL-terminated, owned), at most max_out bytes kept */
  size_t out_len;
  int out_truncated;
  char *err_tail; /* the last bytes of stderr (NUL-terminated, owned) */
} oee_proc_result;

/* Stdout bytes kept when oee_proc_run() is given max_out == 0. */
#define OEE_PROC_MAX_OUT_DEFAULT ((size_t)1 << 20)
/* Bytes of stderr kept in oee_proc_result.err_tail (at most). */
#define OEE_PROC_ERR_TAIL 2048

/*
 * Runs argv with `input` on stdin, collecting stdout and the tail of
 * stderr, until it exits, `timeout_s` passes (0 = none) or `tok` (may be
 * NULL) is cancelled. When the command exits, whatever is left of its
 * process group (e.g. a background grandchild) is killed too. Returns 0 once the child was reaped
 * (whatever its outcome: see *res) or OEE_EIO when it could not be started (res->err_tail says
 * why). Free res with oee_proc_result_free().
 */
int oee_proc_run(const char *const *argv, const char *input, size_t input_len, double timeout_s,
                 oee_token *tok, size_t max_out, oee_proc_result *res);
/* oee_proc_run() with `env_extra` ("NAME=value" strings, NULL-terminated)
 * added to the child's environment, overriding the same names. */
int oee_proc_run_env(const char *const *argv, const char *const *env_extra, const char *input,
                     size_t input_len, double timeout_s, oee_token *tok, size_t max_out,
                     oee_proc_result *res);
void oee_proc_result_free(oee_proc_result *res);

/* Room a oee_proc_describe() message may need (the stderr tail included). */
#define OEE_PROC_MSG_MAX (OEE_PROC_ERR_TAIL + 128)

/*
 * Describes a failed run in `buf` (always NUL-terminated when cap > 0):
 * "exit status 3: <stderr tail>", "timed out after 2s" (`timeout_s` is the
 * limit the run was given), "killed by signal 9 (Killed): <tail>" or
 * "cancelled". The tail has its trailing whitespace removed. Returns 1 when
 * the run failed, 0 when it exited with status 0 (buf is then "").
 */
int oee_proc_describe(const oee_proc_result *res, double timeout_s, char *buf, size_t cap);

/* Copies `s` without trailing whitespace (malloc'd). */
char *oee_trim_right(const char *s);

#ifdef __cplusplus
}
#endif

#endif /* OEE_EXEC_H */
