/*
 * pipeline.c - model pipelines: strategy names, the model table, the
 * pipeline state a task carries, submission and result copies. The
 * executor and its strategies are in pipeline_run.c; the design is in
 * pipeline.h.
 * Lock order: engine lock -> pipeline lock (result copies only).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/oee_alloc.h"
#include "core/pipeline.h"
#include "core/sync.h"

/* ------------------------------------------------------------- names */

static const char *const strategy_names[] = {
    "UNSPECIFIED",           "LOCAL_FAST_PRECISE", "PARALLEL_ENSEMBLE",
    "SEQUENTIAL_VALIDATION", "COST_OPTIMIZED",     "QUALITY_FIRST",
};

static const char *const stage_status_names[] = {
    "unspecified", "pending", "running", "done", "error", "skipped", "cancelled",
};

const char *oee_strategy_name(oee_strategy s) {
  if ((int)s < 0 || (int)s > OEE_STRATEGY_QUALITY_FIRST) return "UNSPECIFIED";
  return strategy_names[s];
}

/* Accepts the five real strategies, in any case, with or without the wire
 * enum's "STRATEGY_" prefix. */
int oee_strategy_parse(const char *name, oee_strategy *out) {
  if (name == NULL || out == NULL) return OEE_EINVAL;
  if (strncasecmp(name, "STRATEGY_", 9) == 0) name += 9;
  for (int s = OEE_STRATEGY_LOCAL_FAST_PRECISE; s <= OEE_STRATEGY_QUALITY_FIRST; s++) {
    if (strcasecmp(name, strategy_names[s]) == 0) {
      *out = (oee_strategy)s;
      return 0;
    }
  }
  return OEE_EINVAL;
}

const char *oee_stage_status_name(oee_stage_status s) {
  if ((int)s < 0 || (int)s > OEE_STAGE_CANCELLED) return "unspecified";
  return stage_status_names[s];
}

/* ------------------------------------------------------- model table */

int oee_model_table_create(oee_model_table **out) {
  if (out == NULL) return OEE_EINVAL;
  oee_model_table *t = oee_calloc(1, sizeof(*t));
  if (t == NULL) return OEE_ENOMEM;
  int rc = oee_exec_table_create(&t->cmds);
  if (rc != 0) {
    oee_free(t);
    return rc;
  }
  *out = t;
  return 0;
}

const model_info *oee__model_find(const oee_model_table *t, const char *name) {
  for (size_t i = 0; t != NULL && i < t->len; i++) {
    if (strcmp(t->info[i].name, name) == 0) return &t->info[i];
  }
  return NULL;
}

int oee_model_table_add(oee_model_table *t, const char *name, const char *const *argv, size_t argc,
                        double cost, double quality, double timeout_seconds) {
  if (t == NULL || name == NULL || !(cost >= 0) || !isfinite(cost) || !isfinite(quality)) {
    return OEE_EINVAL;
  }
  if (strcmp(name, "echo") == 0 || oee__model_find(t, name) != NULL) {
    return OEE_EEXISTS;
  }
  if (t->len == t->cap) {
    size_t cap = t->cap == 0 ? 8 : t->cap * 2;
    model_info *grown = oee_realloc(t->info, cap * sizeof(*grown));
    if (grown == NULL) return OEE_ENOMEM;
    t->info = grown;
    t->cap = cap;
  }
  char *copy = oee_strdup(name);
  if (copy == NULL) return OEE_ENOMEM;
  int rc = oee_exec_table_add(t->cmds, name, argv, argc, timeout_seconds);
  if (rc != 0) {
    oee_free(copy);
    return rc;
  }
  t->info[t->len++] = (model_info){copy, cost, quality};
  return 0;
}

int oee_model_table_has(const oee_model_table *t, const char *name) {
  if (name == NULL) return 0;
  return strcmp(name, "echo") == 0 || oee__model_find(t, name) != NULL;
}

void oee_model_table_destroy(oee_model_table *t) {
  if (t == NULL) return;
  for (size_t i = 0; i < t->len; i++) oee_free(t->info[i].name);
  oee_free(t->info);
  oee_exec_table_destroy(t->cmds);
  oee_free(t);
}

/* ---------------------------------------------------- pipeline state */

const oee_payload_ops oee__pipeline_ops = {oee__pipeline_free, oee__pipeline_encode};

void oee__pipeline_free(void *p) {
  pipeline *pl = p;
  if (pl == NULL) return;
  for (size_t i = 0; pl->stages != NULL && i < pl->n; i++) {
    stage *s = &pl->stages[i];
    oee_free(s->name);
    oee_free(s->model_id);
    oee_free(s->output);
    oee_free(s->error);
  }
  oee_free(pl->stages);
  oee_free(pl->pipeline_id);
  oee_free(pl->input);
  oee_free(pl->output);
  oee_free(pl->error);
  pthread_mutex_destroy(&pl->lock);
  oee_free(pl);
}

static int stage_init(stage *s, const oee_stage_spec *spec, const oee_model_table *models) {
  const model_info *m = oee__model_find(models, spec->model_id);
  s->status = OEE_STAGE_PENDING;
  s->cost = spec->has_cost ? spec->cost : m != NULL ? m->cost : 0;
  s->quality = m != NULL ? m->quality : 0;
  s->name = oee_strdup(spec->name != NULL ? spec->name : "");
  s->model_id = oee_strdup(spec->model_id);
  return s->name == NULL || s->model_id == NULL ? OEE_ENOMEM : 0;
}

static int pipeline_create(const oee_pipeline_spec *spec, const oee_model_table *models,
                           pipeline **out) {
  pipeline *pl = oee_calloc(1, sizeof(*pl));
  if (pl == NULL) return OEE_ENOMEM;
  if (oee__mutex_init(&pl->lock) != 0) {
    oee_free(pl);
    return OEE_ENOMEM;
  }
  pl->strategy = spec->strategy;
  pl->max_time = spec->max_time;
  pl->max_cost = spec->max_cost;
  pl->models = models;
  pl->pipeline_id = oee_strdup(spec->pipeline_id != NULL ? spec->pipeline_id : "");
  pl->input = oee_strdup(spec->input != NULL ? spec->input : "");
  pl->stages = oee_calloc(spec->n_stages, sizeof(*pl->stages));
  int rc = pl->pipeline_id == NULL || pl->input == NULL || pl->stages == NULL ? OEE_ENOMEM : 0;
  if (rc == 0) pl->n = spec->n_stages;
  for (size_t i = 0; rc == 0 && i < pl->n; i++) {
    rc = stage_init(&pl->stages[i], &spec->stages[i], models);
  }
  if (rc != 0) {
    oee__pipeline_free(pl);
    return rc;
  }
  *out = pl;
  return 0;
}

/* -------------------------------------------------------- submission */

/* 1 for a finite number >= 0 (NaN and the infinities are refused). */
static int finite_non_negative(double v) { return isfinite(v) && v >= 0; }

/* Every stage names a model that exists and charges a sane cost. */
static int stages_check(const oee_pipeline_spec *spec, const oee_model_table *models,
                        oee_error *err) {
  for (size_t i = 0; i < spec->n_stages; i++) {
    const oee_stage_spec *s = &spec->stages[i];
    if (s->model_id == NULL || s->model_id[0] == '\0') {
      return oee_error_set(err, OEE_EINVAL, "stages[%zu].model_id must not be empty", i);
    }
    if (s->has_cost && !finite_non_negative(s->cost)) {
      return oee_error_set(err, OEE_EINVAL, "stages[%zu].cost must be a finite number >= 0, got %g",
                           i, s->cost);
    }
    if (!oee_model_table_has(models, s->model_id)) {
      return oee_error_set(err, OEE_ENOMODEL, "unknown model_id \"%.64s\" in stages[%zu]",
                           s->model_id, i);
    }
  }
  return 0;
}

/* The one place a pipeline spec is judged; *err says why not. */
static int spec_check(const oee_pipeline_spec *spec, const oee_model_table *models,
                      oee_error *err) {
  if (spec == NULL) return oee_error_set(err, OEE_EINVAL, "no pipeline spec given");
  if (spec->stages == NULL || spec->n_stages == 0) {
    return oee_error_set(err, OEE_EINVAL, "stages must not be empty");
  }
  if (spec->n_stages > OEE_PIPELINE_MAX_STAGES) {
    return oee_error_set(err, OEE_EINVAL, "a pipeline has at most %d stages, got %zu",
                         OEE_PIPELINE_MAX_STAGES, spec->n_stages);
  }
  if (spec->strategy < OEE_STRATEGY_LOCAL_FAST_PRECISE ||
      spec->strategy > OEE_STRATEGY_QUALITY_FIRST) {
    return oee_error_set(err, OEE_EINVAL,
                         spec->strategy == OEE_STRATEGY_UNSPECIFIED
                             ? "strategy must be set (got %d, UNSPECIFIED)"
                             : "strategy %d is not a known strategy",
                         (int)spec->strategy);
  }
  if (!finite_non_negative(spec->max_time)) {
    return oee_error_set(err, OEE_EINVAL,
                         "max_time must be a finite number of seconds >= 0 (0 = none), got %g",
                         spec->max_time);
  }
  if (!finite_non_negative(spec->max_cost)) {
    return oee_error_set(err, OEE_EINVAL,
                         "max_cost must be a finite number >= 0 (0 = none), got %g",
                         spec->max_cost);
  }
  if (spec->priority < OEE_PRIORITY_MIN || spec->priority > OEE_PRIORITY_MAX) {
    return oee_error_set(err, OEE_EINVAL, "priority must be %d..%d, got %d", OEE_PRIORITY_MIN,
                         OEE_PRIORITY_MAX, spec->priority);
  }
  return stages_check(spec, models, err);
}

/* Checks the spec and submits the pipeline task, waiting (cb NULL: the
 * snapshot in *out) or not (cb called as for oee_engine_submit_async()). */
static int submit_spec(oee_engine *eng, const oee_pipeline_spec *spec, const oee_task_info **out,
                       oee_submit_cb cb, void *arg, oee_error *err) {
  if (out != NULL) *out = NULL;
  if (err != NULL) *err = (oee_error){0};
  if (eng == NULL) return oee_error_set(err, OEE_EINVAL, "no engine given");
  const oee_model_table *models = oee__engine_models(eng);
  int rc = spec_check(spec, models, err);
  if (rc != 0) return rc;
  pipeline *pl = NULL;
  if ((rc = pipeline_create(spec, models, &pl)) != 0) {
    return oee_error_set(err, rc, "cannot create the pipeline: %s", oee_strerror(rc));
  }
  char *name = NULL;
  if (spec->name != NULL && spec->name[0] != '\0') {
    name = oee_strdup(spec->name);
  } else if (oee_asprintf(&name, "pipeline:%s", pl->pipeline_id) < 0) {
    name = NULL;
  }
  if (name == NULL) {
    oee__pipeline_free(pl);
    return oee_error_set(err, OEE_ENOMEM, "out of memory naming the pipeline");
  }
  /* Informational keys, sorted; the payload is what the executor reads.
   * The submission copies them (and the name) before it returns. */
  const oee_kv ctx[] = {{"pipeline_id", pl->pipeline_id},
                        {"strategy", oee_strategy_name(pl->strategy)}};
  oee_submit req = {.name = name,
                    .task_type = "pipeline",
                    .priority = spec->priority,
                    .context = ctx,
                    .context_len = 2};
  if (cb != NULL) {
    rc = oee__engine_submit_async(eng, &req, pl, &oee__pipeline_ops, cb, arg, err);
  } else {
    rc = oee__engine_submit_payload(eng, &req, pl, &oee__pipeline_ops, out, err);
  }
  oee_free(name);
  return rc;
}

int oee_engine_submit_pipeline(oee_engine *eng, const oee_pipeline_spec *spec,
                               const oee_task_info **out, oee_error *err) {
  return submit_spec(eng, spec, out, NULL, NULL, err);
}

int oee_engine_submit_pipeline_async(oee_engine *eng, const oee_pipeline_spec *spec,
                                     oee_submit_cb cb, void *arg, oee_error *err) {
  if (cb == NULL) return oee_error_set(err, OEE_EINVAL, "a callback is required");
  return submit_spec(eng, spec, NULL, cb, arg, err);
}

/* ------------------------------------------------------------ results */

typedef struct copy_arg {
  oee_pipeline_result *res;
  int rc;
} copy_arg;

static double span_s(int64_t start, int64_t end, int64_t now) {
  if (start == 0) return 0;
  return (double)((end != 0 ? end : now) - start) / 1e9;
}

static char *dup_or_empty(const char *s, int *rc) {
  char *c = oee_strdup(s != NULL ? s : "");
  if (c == NULL) *rc = OEE_ENOMEM;
  return c;
}

/* Lock held: pipeline. `terminal`: the task ended (maybe while queued). */
static void copy_stage(oee_stage_result *d, const stage *s, int terminal, int64_t now, int *rc) {
  d->name = dup_or_empty(s->name, rc);
  d->model_id = dup_or_empty(s->model_id, rc);
  d->output = dup_or_empty(s->output, rc);
  d->error_message = dup_or_empty(s->error, rc);
  d->status = s->status;
  if (terminal && s->status == OEE_STAGE_PENDING) d->status = OEE_STAGE_SKIPPED;
  d->cost = s->charged;
  d->elapsed_seconds = span_s(s->start_ns, s->end_ns, now);
}

/* Runs with the engine lock held; takes the pipeline lock (see DESIGN). */
static void copy_result(void *payload, const oee_task_info *snap, void *arg) {
  pipeline *pl = payload;
  copy_arg *ca = arg;
  oee_pipeline_result *res = ca->res;
  int64_t now = oee__mono_ns();
  int terminal = oee_task_status_is_terminal(snap->status);
  memcpy(res->task_id, snap->id, sizeof(res->task_id));
  res->status = snap->status;
  oee__lock(&pl->lock);
  res->strategy = pl->strategy;
  res->pipeline_id = dup_or_empty(pl->pipeline_id, &ca->rc);
  res->output = dup_or_empty(pl->output, &ca->rc);
  res->error_message = dup_or_empty(pl->error != NULL ? pl->error : snap->error_message, &ca->rc);
  res->total_cost = pl->total_cost;
  res->elapsed_seconds = span_s(pl->start_ns, pl->end_ns, now);
  res->stages = oee_calloc(pl->n, sizeof(*res->stages));
  if (res->stages == NULL) ca->rc = OEE_ENOMEM;
  for (size_t i = 0; res->stages != NULL && i < pl->n; i++) {
    copy_stage(&res->stages[i], &pl->stages[i], terminal, now, &ca->rc);
    res->n_stages = i + 1;
  }
  oee__unlock(&pl->lock);
}

/* The result of a pipeline that left memory, from its stored bytes. */
static int stored_result(oee_engine *eng, const char *task_id, copy_arg *ca) {
  const oee_task_info *snap;
  void *bytes;
  size_t len;
  int rc = oee__engine_stored(eng, task_id, &snap, &bytes, &len);
  if (rc != 0) return rc;
  void *pl = NULL;
  if (strcmp(snap->task_type, "pipeline") != 0 || bytes == NULL) {
    rc = OEE_ENOENT;
  } else {
    rc = oee__pipeline_decode(bytes, len, oee__engine_models(eng), &pl);
  }
  if (rc == 0) copy_result(pl, snap, ca);
  oee__pipeline_free(pl);
  oee_free(bytes);
  oee_task_info_unref(snap);
  return rc == OEE_EINVAL ? OEE_EIO : rc;
}

int oee_engine_pipeline_result(oee_engine *eng, const char *task_id, oee_pipeline_result **out) {
  if (eng == NULL || task_id == NULL || out == NULL) return OEE_EINVAL;
  *out = NULL;
  copy_arg ca = {.res = oee_calloc(1, sizeof(oee_pipeline_result))};
  if (ca.res == NULL) return OEE_ENOMEM;
  int rc = oee__engine_with_payload(eng, task_id, "pipeline", copy_result, &ca);
  if (rc == OEE_ENOENT) rc = stored_result(eng, task_id, &ca);
  if (rc == 0) rc = ca.rc;
  if (rc != 0) {
    oee_pipeline_result_free(ca.res);
    return rc;
  }
  *out = ca.res;
  return 0;
}

void oee_pipeline_result_free(oee_pipeline_result *r) {
  if (r == NULL) return;
  for (size_t i = 0; i < r->n_stages; i++) {
    oee_free(r->stages[i].name);
    oee_free(r->stages[i].model_id);
    oee_free(r->stages[i].output);
    oee_free(r->stages[i].error_message);
  }
  oee_free(r->stages);
  oee_free(r->pipeline_id);
  oee_free(r->output);
  oee_free(r->error_message);
  oee_free(r);
}
