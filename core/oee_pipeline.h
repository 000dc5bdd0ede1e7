/*
 * oee_pipeline.h - multi-stage model pipelines run as one task of type
 * `pipeline`, with five strategies and time/cost budgets (see
 * shared/spec/API.md "Pipelines" for the exact behaviour).
 */
#ifndef OEE_PIPELINE_H
#define OEE_PIPELINE_H

#include <stddef.h>

#include "core/oee.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Numbers match the wire enums. */
typedef enum oee_strategy {
  OEE_STRATEGY_UNSPECIFIED = 0,
  OEE_STRATEGY_LOCAL_FAST_PRECISE = 1,
  OEE_STRATEGY_PARALLEL_ENSEMBLE = 2,
  OEE_STRATEGY_SEQUENTIAL_VALIDATION = 3,
  OEE_STRATEGY_COST_OPTIMIZED = 4,
  OEE_STRATEGY_QUALITY_FIRST = 5,
} oee_strategy;

typedef enum oee_stage_status {
  OEE_STAGE_UNSPECIFIED = 0,
  OEE_STAGE_PENDING = 1,
  OEE_STAGE_RUNNING = 2,
  OEE_STAGE_DONE = 3,
  OEE_STAGE_ERROR = 4,
  OEE_STAGE_SKIPPED = 5,
  OEE_STAGE_CANCELLED = 6,
} oee_stage_status;

const char *oee_strategy_name(oee_strategy s);               /* "LOCAL_FAST_PRECISE", ... */
int oee_strategy_parse(const char *name, oee_strategy *out); /* 0 or OEE_EINVAL */
const char *oee_stage_status_name(oee_stage_status s);       /* "pending", ... */

/* ---- model table: the built-in `echo` plus configured command models. */

int oee_model_table_create(oee_model_table **out);
/* Adds a command model (copied). OEE_EEXISTS for duplicates or "echo". */
int oee_model_table_add(oee_model_table *t, const char *name, const char *const *argv, size_t argc,
                        double cost, double quality, double timeout_seconds);
/* 1 when `name` is "echo" or in the table (t may be NULL: echo only). */
int oee_model_table_has(const oee_model_table *t, const char *name);
void oee_model_table_destroy(oee_model_table *t);

/* ---- submission */

typedef struct oee_stage_spec {
  const char *name;
  const char *model_id;
  int has_cost; /* 1: `cost` overrides the model's declared cost */
  double cost;
} oee_stage_spec;

/* Most stages one pipeline may have (PARALLEL_ENSEMBLE runs them all at once). */
#define OEE_PIPELINE_MAX_STAGES 64

typedef struct oee_pipeline_spec {
  const char *pipeline_id;
  const oee_stage_spec *stages;
  size_t n_stages;
  oee_strategy strategy;
  double max_time;   /* seconds from the start of the run; 0 = none */
  double max_cost;   /* 0 = none */
  int priority;      /* 0..10 */
  const char *input; /* NULL = "" */
  const char *name;  /* NULL or "" = "pipeline:<pipeline_id>" */
} oee_pipeline_spec;

/*
 * Validates and enqueues a pipeline task; *err (optional) explains a refusal
 * and names the field. OEE_EINVAL: no stages or more than
 * OEE_PIPELINE_MAX_STAGES, UNSPECIFIED or unknown strategy, a budget that is
 * negative, NaN or infinite, a cost override that is negative, NaN or
 * infinite, bad priority, empty stage model_id; OEE_ENOMODEL: a model_id not
 * in the engine's model table. Other errors as for oee_engine_submit().
 */
int oee_engine_submit_pipeline(oee_engine *eng, const oee_pipeline_spec *spec,
                               const oee_task_info **out, oee_error *err);

/* oee_engine_submit_pipeline() without waiting for the disk: see
 * oee_engine_submit_async() for the callback's rules. */
int oee_engine_submit_pipeline_async(oee_engine *eng, const oee_pipeline_spec *spec,
                                     oee_submit_cb cb, void *arg, oee_error *err);

typedef struct oee_stage_result {
  char *name;
  char *model_id;
  oee_stage_status status;
  char *output;
  double cost; /* charged (the override when given); 0 if never started */
  double elapsed_seconds;
  char *error_message;
} oee_stage_result;

typedef struct oee_pipeline_result {
  char task_id[OEE_ID_LEN + 1];
  char *pipeline_id;
  oee_task_status status; /* the pipeline task's status */
  oee_strategy strategy;
  oee_stage_result *stages; /* in submission order */
  size_t n_stages;
  char *output;
  double total_cost; /* every stage that started */
  double elapsed_seconds;
  char *error_message;
} oee_pipeline_result;

/* A copy of the pipeline's current result. OEE_ENOENT for an unknown id or a
 * task that is not a pipeline. Free with oee_pipeline_result_free(). */
int oee_engine_pipeline_result(oee_engine *eng, const char *task_id, oee_pipeline_result **out);
void oee_pipeline_result_free(oee_pipeline_result *r);

#ifdef __cplusplus
}
#endif

#endif /* OEE_PIPELINE_H */
