/*
 * pipeline.h - the private state of a pipeline task, shared by pipeline.c
 * (model table, submission, results) and pipeline_run.c (the executor and
 * its five strategies). Nothing outside those two files includes it.
 *
 * DESIGN
 *  - A pipeline is one task of type `pipeline`. Its description and live
 *    state (struct pipeline) ride on the task as the engine-owned payload,
 *    so it lives exactly as long as the task.
 *  - The executor runs on the worker thread that picked the task and
 *    finishes the job before it returns. Stages are command children run by
 *    oee_proc_run() (or the built-in `echo`, run inline). PARALLEL_ENSEMBLE
 *    starts one thread per stage and joins them all before judging.
 *  - Cancellation: every stage watches the job's token (its eventfd wakes
 *    each child's poll loop), so cancelling the task kills all running
 *    children at once. The deadline needs no timer thread: each child's
 *    timeout is capped at the time left, and a stage stopped by that cap is
 *    CANCELLED and ends the pipeline with "deadline exceeded".
 *  - Locks: `pipeline.lock` guards the fields marked "live" below; stage
 *    threads and the executor take it only to update them. Lock order:
 *    engine lock -> pipeline lock (oee_engine_pipeline_result() copies under
 *    both, via oee__engine_with_payload()). The executor never holds the
 *    pipeline lock while it calls into the engine (oee_job_*).
 *  - Budgets are charged in each strategy's own order when a stage starts:
 *    the total cost is the sum of every started stage, failed ones included.
 */
#ifndef OEE_PIPELINE_PRIV_H
#define OEE_PIPELINE_PRIV_H

#include <pthread.h>
#include <stdint.h>

#include "core/internal.h"
#include "core/oee_exec.h"
#include "core/oee_pipeline.h"

typedef struct model_info {
  char *name;
  double cost;    /* charged per started stage unless overridden */
  double quality; /* QUALITY_FIRST tries higher values first */
} model_info;

struct oee_model_table {
  oee_exec_table *cmds; /* argv and timeout of each command model */
  model_info *info;     /* `len` entries, same names as `cmds` */
  size_t len;
  size_t cap;
};

typedef struct stage {
  char *name;
  char *model_id;
  double cost;    /* charged when it starts (the override when given) */
  double quality; /* the model's declared quality */
  /* Live, guarded by pipeline.lock. */
  oee_stage_status status;
  char *output;     /* NULL until DONE */
  char *error;      /* NULL unless ERROR or CANCELLED */
  double charged;   /* 0 until started */
  int64_t start_ns; /* CLOCK_MONOTONIC; 0 until started */
  int64_t end_ns;   /* 0 until it ended */
} stage;

typedef struct pipeline {
  pthread_mutex_t lock;
  char *pipeline_id;
  oee_strategy strategy;
  double max_time; /* seconds; 0 = none */
  double max_cost; /* 0 = none */
  char *input;
  const oee_model_table *models; /* borrowed; outlives the engine */
  stage *stages;
  size_t n;
  /* Live, guarded by lock. */
  char *output; /* NULL until the pipeline succeeded */
  char *error;  /* NULL unless it failed or was cancelled */
  double total_cost;
  int64_t start_ns; /* CLOCK_MONOTONIC; 0 until the task ran */
  int64_t end_ns;
} pipeline;

/* Frees a pipeline (its payload ops' `free`). */
void oee__pipeline_free(void *pl);
/* The stored form of a pipeline (pipeline_codec.c): the payload ops'
 * `encode`, and its inverse, bound to `models` (OEE_EINVAL for bytes that
 * are not a pipeline, OEE_ENOMEM). */
int oee__pipeline_encode(void *pl, void **out, size_t *len);
int oee__pipeline_decode(const void *bytes, size_t len, const oee_model_table *models, void **out);
/* free + encode: what the engine is given with every pipeline task. */
extern const oee_payload_ops oee__pipeline_ops;

/* The model entry for `name`, or NULL (also for "echo" and a NULL table). */
const model_info *oee__model_find(const oee_model_table *t, const char *name);

#endif /* OEE_PIPELINE_PRIV_H */
