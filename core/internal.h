/*
 * internal.h - what the core's modules share with each other but not with
 * embedders. Names here are oee__ (double underscore).
 */
#ifndef OEE_INTERNAL_H
#define OEE_INTERNAL_H

#include "core/oee.h"

/* What the engine may do with an executor's data attached to a task. */
typedef struct oee_payload_ops {
  void (*free)(void *data);
  /* The bytes that stand for `data` in the database, in a new buffer the
   * caller frees with oee_free (0), or OEE_ENOMEM. NULL: not stored. Called
   * with the engine lock held. */
  int (*encode)(void *data, void **out, size_t *len);
} oee_payload_ops;

/*
 * Checks a submission before anything is created. Called without engine
 * locks; `payload` is the one given to oee__engine_submit_payload() (NULL
 * for plain submissions). Returns 0, or an OEE_E* code with the reason in
 * *err (through oee_error_set(); err may be NULL).
 */
typedef int (*oee_validate_fn)(const oee_submit *req, const void *payload, void *user_data,
                               oee_error *err);

/* Executor flags. */
enum {
  /* Created only through an internal submit with a payload (pipelines):
   * left out of the "known types" a refused plain submit lists. */
  OEE__EXEC_INTERNAL = 1 << 0,
};

/* oee_engine_register() with a validation hook (may be NULL). */
int oee__engine_register_full(oee_engine *eng, const char *task_type, oee_executor_fn fn,
                              oee_validate_fn validate, int flags, void *user_data);

/*
 * oee_engine_submit() that attaches `payload` to the task. The engine owns
 * the payload from the call on (even on error) and frees it with
 * `ops` when the task is removed or the engine destroyed.
 */
int oee__engine_submit_payload(oee_engine *eng, const oee_submit *req, void *payload,
                               const oee_payload_ops *ops, const oee_task_info **out,
                               oee_error *err);
/* The same without waiting: see oee_engine_submit_async() for `cb`. */
int oee__engine_submit_async(oee_engine *eng, const oee_submit *req, void *payload,
                             const oee_payload_ops *ops, oee_submit_cb cb, void *arg,
                             oee_error *err);

/* oee__engine_submit_async() without a payload, for a key no earlier
 * process can have used (a schedule's firing after the engine opened): the
 * database's index of keys is not asked. */
int oee__engine_submit_new_key(oee_engine *eng, const oee_submit *req, oee_submit_cb cb, void *arg,
                               oee_error *err);

/* The payload of the job's task (borrowed; lives as long as the task). */
void *oee__job_payload(oee_job *job);

/*
 * Calls fn(payload, snapshot, arg) with the engine lock held, for the task
 * `id` if its type is `task_type`. fn must not call back into the engine.
 * OEE_ENOENT when there is no such task or it has another type.
 */
int oee__engine_with_payload(oee_engine *eng, const char *id, const char *task_type,
                             void (*fn)(void *payload, const oee_task_info *snap, void *arg),
                             void *arg);

/* A durable engine's stored row of task `id` with its payload bytes (a new
 * buffer to oee_free, NULL when none): for tasks that left memory.
 * OEE_ENOENT for an unknown id or an engine without a database. */
int oee__engine_stored(oee_engine *eng, const char *id, const oee_task_info **snap, void **payload,
                       size_t *payload_len);

/* Registration of the built-in executors (exec.c, pipeline.c, builtin.c). */
int oee__builtin_register(oee_engine *eng);
int oee__exec_register(oee_engine *eng, const oee_exec_table *commands);
int oee__pipeline_register(oee_engine *eng, const oee_model_table *models);

/* The model table given at creation (borrowed; may be NULL). */
const oee_model_table *oee__engine_models(oee_engine *eng);

/* For tests of a durable engine: the tasks held in memory (unfinished ones
 * and the cache of finished ones), and a hold on every write (1) until it
 * is released (0). */
size_t oee__engine_held(oee_engine *eng);
void oee__engine_pause_commits(oee_engine *eng, int paused);

/* Monotonic clock in ns (CLOCK_MONOTONIC). */
int64_t oee__mono_ns(void);

#endif /* OEE_INTERNAL_H */
