/*
 * testutil.h - helpers shared by the core's cmocka tests that drive a whole
 * engine. They wait on subscriptions (oee_sub_wait); only the wait for child
 * processes polls, with a deadline, as no event announces a spawn.
 */
#ifndef OEE_TESTS_CORE_TESTUTIL_H
#define OEE_TESTS_CORE_TESTUTIL_H

#include <stddef.h>

#include "core/oee.h"

/* Monotonic time in seconds. */
double tu_now(void);

/* Makes a new empty directory <$TEST_TMPDIR or /tmp>/oee-<name>-<random>
 * (mkdtemp) and writes its path to out; 0, or -1 on failure. */
int tu_temp_dir(char *out, size_t cap, const char *name);
/* Copies the file `from` to `to` (created or truncated); 0 or -1. */
int tu_copy_file(const char *from, const char *to);
/* Removes a directory made by tu_temp_dir() with everything in it; 0 or -1. */
int tu_remove_dir(const char *dir);

/* 1 when this process has no child at all (none running, no zombie). */
int tu_no_children(void);

/* A started engine with `workers` workers and the given (borrowed) tables,
 * or NULL. Free with tu_engine_free(). */
oee_engine *tu_engine(int workers, const oee_exec_table *commands, const oee_model_table *models);
/* Stops (zero drain) and destroys; NULL is ignored. */
void tu_engine_free(oee_engine *eng);

/* Waits up to timeout_s for task `id` to reach a terminal status; returns
 * its snapshot (caller unrefs) or NULL on timeout/unknown id. */
const oee_task_info *tu_wait_terminal(oee_engine *eng, const char *id, double timeout_s);
/* Waits up to timeout_s for task `id` to have status `st`; 1 when it did. */
int tu_wait_status(oee_engine *eng, const char *id, oee_task_status st, double timeout_s);

/* Waits up to timeout_s until this process has at least `n` children (e.g.
 * the commands a task started); 1 when it did. */
int tu_wait_children(int n, double timeout_s);

/* Submits a task with `n` context pairs given as key, value, key, value...
 * Returns 0 or the error; *id_out (37 bytes, optional) gets the id. */
int tu_submit(oee_engine *eng, const char *type, char *id_out, size_t n, ...);

#endif /* OEE_TESTS_CORE_TESTUTIL_H */
