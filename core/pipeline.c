/*
 * pipeline.c - model pipelines: the model table, submission, the `pipeline`
 * executor with its five strategies and two budgets, and result copies.
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
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/internal.h"
#include "core/oee_exec.h"
#include "core/oee_pipeline.h"
#include "core/sync.h"

#define BUDGET_EPS 1e-9 /* relative slack so that 0.1 + 0.2 fits in 0.3 */

/* ------------------------------------------------------------- names */

static const char *const strategy_names[] = {
    "UNSPECIFIED",           "LOCAL_FAST_PRECISE", "PARALLEL_ENSEMBLE",
    "SEQUENTIAL_VALIDATION", "COST_OPTIMIZED",     "QUALITY_FIRST",
};

static const char *const stage_status_names[] = {
    "unspecified", "pending", "running", "done",
    "error",       "skipped", "cancelled",
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
  for (int s = OEE_STRATEGY_LOCAL_FAST_PRECISE; s <= OEE_STRATEGY_QUALITY_FIRST;
       s++) {
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

int oee_model_table_create(oee_model_table **out) {
  if (out == NULL) return OEE_EINVAL;
  oee_model_table *t = calloc(1, sizeof(*t));
  if (t == NULL) return OEE_ENOMEM;
  int rc = oee_exec_table_create(&t->cmds);
  if (rc != 0) {
    free(t);
    return rc;
  }
  *out = t;
  return 0;
}

static const model_info *model_find(const oee_model_table *t,
                                    const char *name) {
  for (size_t i = 0; t != NULL && i < t->len; i++) {
    if (strcmp(t->info[i].name, name) == 0) return &t->info[i];
  }
  return NULL;
}

int oee_model_table_add(oee_model_table *t, const char *name,
                        const char *const *argv, size_t argc, double cost,
                        double quality, double timeout_seconds) {
  if (t == NULL || name == NULL || !(cost >= 0) || !isfinite(cost) ||
      !isfinite(quality)) {
    return OEE_EINVAL;
  }
  if (strcmp(name, "echo") == 0 || model_find(t, name) != NULL) {
    return OEE_EEXISTS;
  }
  if (t->len == t->cap) {
    size_t cap = t->cap == 0 ? 8 : t->cap * 2;
    model_info *grown = realloc(t->info, cap * sizeof(*grown));
    if (grown == NULL) return OEE_ENOMEM;
    t->info = grown;
    t->cap = cap;
  }
  char *copy = strdup(name);
  if (copy == NULL) return OEE_ENOMEM;
  int rc = oee_exec_table_add(t->cmds, name, argv, argc, timeout_seconds);
  if (rc != 0) {
    free(copy);
    return rc;
  }
  t->info[t->len++] = (model_info){copy, cost, quality};
  return 0;
}

int oee_model_table_has(const oee_model_table *t, const char *name) {
  if (name == NULL) return 0;
  return strcmp(name, "echo") == 0 || model_find(t, name) != NULL;
}

void oee_model_table_destroy(oee_model_table *t) {
  if (t == NULL) return;
  for (size_t i = 0; i < t->len; i++) free(t->info[i].name);
  free(t->info);
  oee_exec_table_destroy(t->cmds);
  free(t);
}

/* ---------------------------------------------------- pipeline state */

typedef struct stage {
  char *name;
  char *model_id;
  double cost;      /* charged when it starts (the override when given) */
  double quality;   /* the model's declared quality */
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
  double max_time;                /* seconds; 0 = none */
  double max_cost;                /* 0 = none */
  char *input;
  const oee_model_table *models;  /* borrowed; outlives the engine */
  stage *stages;
  size_t n;
  /* Live, guarded by lock. */
  char *output;     /* NULL until the pipeline succeeded */
  char *error;      /* NULL unless it failed or was cancelled */
  double total_cost;
  int64_t start_ns; /* CLOCK_MONOTONIC; 0 until the task ran */
  int64_t end_ns;
} pipeline;

static void pipeline_free(void *p) {
  pipeline *pl = p;
  if (pl == NULL) return;
  for (size_t i = 0; pl->stages != NULL && i < pl->n; i++) {
    stage *s = &pl->stages[i];
    free(s->name);
    free(s->model_id);
    free(s->output);
    free(s->error);
  }
  free(pl->stages);
  free(pl->pipeline_id);
  free(pl->input);
  free(pl->output);
  free(pl->error);
  pthread_mutex_destroy(&pl->lock);
  free(pl);
}

static int stage_init(stage *s, const oee_stage_spec *spec,
                      const oee_model_table *models) {
  const model_info *m = model_find(models, spec->model_id);
  s->status = OEE_STAGE_PENDING;
  s->cost = spec->has_cost ? spec->cost : m != NULL ? m->cost : 0;
  s->quality = m != NULL ? m->quality : 0;
  s->name = strdup(spec->name != NULL ? spec->name : "");
  s->model_id = strdup(spec->model_id);
  return s->name == NULL || s->model_id == NULL ? OEE_ENOMEM : 0;
}

static int pipeline_create(const oee_pipeline_spec *spec,
                           const oee_model_table *models, pipeline **out) {
  pipeline *pl = calloc(1, sizeof(*pl));
  if (pl == NULL) return OEE_ENOMEM;
  pthread_mutex_init(&pl->lock, NULL);
  pl->strategy = spec->strategy;
  pl->max_time = spec->max_time;
  pl->max_cost = spec->max_cost;
  pl->models = models;
  pl->pipeline_id = strdup(spec->pipeline_id != NULL ? spec->pipeline_id : "");
  pl->input = strdup(spec->input != NULL ? spec->input : "");
  pl->stages = calloc(spec->n_stages, sizeof(*pl->stages));
  int rc = pl->pipeline_id == NULL || pl->input == NULL || pl->stages == NULL
               ? OEE_ENOMEM
               : 0;
  if (rc == 0) pl->n = spec->n_stages;
  for (size_t i = 0; rc == 0 && i < pl->n; i++) {
    rc = stage_init(&pl->stages[i], &spec->stages[i], models);
  }
  if (rc != 0) {
    pipeline_free(pl);
    return rc;
  }
  *out = pl;
  return 0;
}

/* ------------------------------------------------------------ stages */

typedef enum outcome {
  OUT_DONE,      /* stage (or pipeline) produced an output / started */
  OUT_FAILED,    /* the model failed */
  OUT_CANCELLED, /* the task was cancelled */
  OUT_DEADLINE,  /* max_time expired */
  OUT_BUDGET,    /* max_cost does not allow it */
} outcome;

/* One run of the executor. Read-only for stage threads except as noted. */
typedef struct run {
  pipeline *pl;
  oee_token *tok;       /* the job's token (borrowed) */
  int64_t deadline_ns;  /* CLOCK_MONOTONIC; 0 = none */
  int budget_skipped;   /* executor thread only: a stage did not fit */
  char *output;         /* executor thread only: the pipeline's output */
  char *error;          /* executor thread only: a failure message */
} run;

static const char *stage_label(const stage *s) {
  return s->name[0] != '\0' ? s->name : s->model_id;
}

/* Starts stage i if nothing forbids it: charges its cost, marks it RUNNING. */
static outcome stage_begin(run *r, size_t i) {
  pipeline *pl = r->pl;
  stage *s = &pl->stages[i];
  int64_t now = oee__mono_ns();
  if (oee_token_cancelled(r->tok)) return OUT_CANCELLED;
  if (r->deadline_ns != 0 && now >= r->deadline_ns) return OUT_DEADLINE;
  outcome o = OUT_DONE;
  oee__lock(&pl->lock);
  double limit = pl->max_cost * (1 + BUDGET_EPS);
  if (pl->max_cost > 0 && pl->total_cost + s->cost > limit) {
    s->status = OEE_STAGE_SKIPPED;
    o = OUT_BUDGET;
  } else {
    s->status = OEE_STAGE_RUNNING;
    s->charged = s->cost;
    s->start_ns = now;
    pl->total_cost += s->cost;
  }
  oee__unlock(&pl->lock);
  if (o == OUT_BUDGET) r->budget_skipped = 1;
  return o;
}

/* Records how stage i ended; takes ownership of `output` and `error`. */
static void stage_end(pipeline *pl, size_t i, oee_stage_status st,
                      char *output, char *error) {
  stage *s = &pl->stages[i];
  oee__lock(&pl->lock);
  s->status = st;
  free(s->output);
  free(s->error);
  s->output = output;
  s->error = error;
  s->end_ns = oee__mono_ns();
  oee__unlock(&pl->lock);
}

/* The child's time limit: the model's own, capped by the time left. */
static double stage_timeout(const run *r, const oee_command *cmd,
                            int *by_deadline) {
  double t = cmd->timeout_seconds;
  *by_deadline = 0;
  if (r->deadline_ns == 0) return t;
  double left = (double)(r->deadline_ns - oee__mono_ns()) / 1e9;
  if (left < 0.001) left = 0.001;
  if (t == 0 || left < t) {
    t = left;
    *by_deadline = 1;
  }
  return t;
}

/* Classifies a finished child and records the stage's end. */
static outcome stage_judge(run *r, size_t i, const oee_proc_result *res,
                           double timeout, int by_deadline) {
  char msg[OEE_PROC_MSG_MAX];
  if (res->cancelled) {
    stage_end(r->pl, i, OEE_STAGE_CANCELLED, NULL, strdup("cancelled"));
    return OUT_CANCELLED;
  }
  if (res->timed_out && by_deadline) {
    stage_end(r->pl, i, OEE_STAGE_CANCELLED, NULL,
              strdup("deadline exceeded"));
    return OUT_DEADLINE;
  }
  if (oee_proc_describe(res, timeout, msg, sizeof(msg))) {
    stage_end(r->pl, i, OEE_STAGE_ERROR, NULL, strdup(msg));
    return OUT_FAILED;
  }
  char *out = oee_trim_right(res->out);
  if (out == NULL) {
    stage_end(r->pl, i, OEE_STAGE_ERROR, NULL, strdup("out of memory"));
    return OUT_FAILED;
  }
  stage_end(r->pl, i, OEE_STAGE_DONE, out, NULL);
  return OUT_DONE;
}

/* Runs the started stage i on `input`; the stage ends before this returns. */
static outcome stage_exec(run *r, size_t i, const char *input) {
  const stage *s = &r->pl->stages[i];
  if (strcmp(s->model_id, "echo") == 0) {
    char *out = oee_trim_right(input);
    stage_end(r->pl, i, out != NULL ? OEE_STAGE_DONE : OEE_STAGE_ERROR, out,
              out != NULL ? NULL : strdup("out of memory"));
    return out != NULL ? OUT_DONE : OUT_FAILED;
  }
  const oee_command *cmd = oee_exec_table_find(r->pl->models->cmds, s->model_id);
  if (cmd == NULL) { /* validated at submit; the table never shrinks */
    stage_end(r->pl, i, OEE_STAGE_ERROR, NULL, strdup("unknown model"));
    return OUT_FAILED;
  }
  int by_deadline;
  double timeout = stage_timeout(r, cmd, &by_deadline);
  oee_proc_result res;
  int rc = oee_proc_run(cmd->argv, input, strlen(input), timeout, r->tok, 0,
                        &res);
  outcome o = OUT_FAILED;
  if (rc != 0) {
    stage_end(r->pl, i, OEE_STAGE_ERROR, NULL,
              strdup(res.err_tail != NULL ? res.err_tail : oee_strerror(rc)));
  } else {
    o = stage_judge(r, i, &res, timeout, by_deadline);
  }
  oee_proc_result_free(&res);
  return o;
}

/* A copy of stage i's output or error (NULL when absent or out of memory). */
static char *stage_copy(pipeline *pl, size_t i, int want_error) {
  oee__lock(&pl->lock);
  const char *v = want_error ? pl->stages[i].error : pl->stages[i].output;
  char *c = v != NULL ? strdup(v) : NULL;
  oee__unlock(&pl->lock);
  return c;
}

/* Sets r->error to "<head> '<stage>'<tail>: <stage error>". */
static void fail_at(run *r, size_t i, const char *head, const char *tail) {
  char *err = stage_copy(r->pl, i, 1);
  if (asprintf(&r->error, "%s '%s'%s: %s", head, stage_label(&r->pl->stages[i]),
               tail, err != NULL ? err : "failed") < 0) {
    r->error = NULL;
  }
  free(err);
}

/* ------------------------------------------------------- strategies */

/* LOCAL_FAST_PRECISE (validate = 0): each stage gets the previous output.
 * SEQUENTIAL_VALIDATION (validate = 1): stage 0 produces; the others get
 * its output and must succeed. A stage that does not fit ends the run. */
static outcome run_chain(run *r, int validate) {
  char *cur = strdup(r->pl->input);
  if (cur == NULL) return OUT_FAILED;
  outcome o = OUT_DONE;
  for (size_t i = 0; i < r->pl->n; i++) {
    if ((o = stage_begin(r, i)) != OUT_DONE) break;
    if ((o = stage_exec(r, i, cur)) != OUT_DONE) {
      if (o == OUT_FAILED) {
        if (validate && i > 0) fail_at(r, i, "validation failed at stage", "");
        else fail_at(r, i, "stage", " failed");
      }
      break;
    }
    if (!validate || i == 0) {
      free(cur);
      cur = stage_copy(r->pl, i, 0);
      if (cur == NULL) return OUT_FAILED;
    }
  }
  if (o == OUT_DONE) r->output = cur;
  else free(cur);
  return o;
}

/* The order COST_OPTIMIZED / QUALITY_FIRST try the stages in; stable. */
static void sort_order(const pipeline *pl, size_t *order) {
  int by_cost = pl->strategy == OEE_STRATEGY_COST_OPTIMIZED;
  for (size_t k = 0; k < pl->n; k++) {
    size_t j = k;
    order[k] = k;
    while (j > 0) {
      const stage *a = &pl->stages[order[j - 1]], *b = &pl->stages[k];
      int after = by_cost ? a->cost > b->cost : a->quality < b->quality;
      if (!after) break;
      order[j] = order[j - 1];
      j--;
    }
    order[j] = k;
  }
}

/* COST_OPTIMIZED and QUALITY_FIRST: one at a time until one succeeds. */
static outcome run_ordered(run *r) {
  size_t order[OEE_PIPELINE_MAX_STAGES];
  size_t last_failed = r->pl->n;
  sort_order(r->pl, order);
  for (size_t k = 0; k < r->pl->n; k++) {
    size_t i = order[k];
    outcome o = stage_begin(r, i);
    if (o == OUT_BUDGET) continue;
    if (o == OUT_DONE) o = stage_exec(r, i, r->pl->input);
    if (o == OUT_DONE) {
      r->output = stage_copy(r->pl, i, 0);
      return r->output != NULL ? OUT_DONE : OUT_FAILED;
    }
    if (o != OUT_FAILED) return o;
    last_failed = i;
  }
  if (r->budget_skipped) return OUT_BUDGET;
  if (last_failed < r->pl->n) {
    fail_at(r, last_failed, "all stages failed; last: stage", " failed");
  }
  return OUT_FAILED;
}

typedef struct ens_slot {
  run *r;
  size_t i;
  outcome o;
  int started;  /* the budget let it start */
  int threaded; /* `th` must be joined */
  pthread_t th;
} ens_slot;

static void *ens_thread(void *arg) {
  ens_slot *e = arg;
  e->o = stage_exec(e->r, e->i, e->r->pl->input);
  return NULL;
}

/* The earliest stage whose output is the most common among DONE stages. */
static size_t ens_majority(pipeline *pl) {
  size_t best = pl->n, best_count = 0;
  oee__lock(&pl->lock);
  for (size_t i = 0; i < pl->n; i++) {
    if (pl->stages[i].status != OEE_STAGE_DONE) continue;
    size_t count = 0;
    for (size_t j = 0; j < pl->n; j++) {
      count += pl->stages[j].status == OEE_STAGE_DONE &&
               strcmp(pl->stages[i].output, pl->stages[j].output) == 0;
    }
    if (count > best_count) {
      best = i;
      best_count = count;
    }
  }
  oee__unlock(&pl->lock);
  return best;
}

/* Charges the stages in order; on cancel/deadline ends those started. */
static outcome ens_begin(run *r, ens_slot *slots) {
  for (size_t i = 0; i < r->pl->n; i++) {
    slots[i] = (ens_slot){.r = r, .i = i, .o = OUT_BUDGET};
    outcome o = stage_begin(r, i);
    if (o == OUT_BUDGET) continue;
    if (o != OUT_DONE) {
      for (size_t j = 0; j < i; j++) {
        if (slots[j].started) {
          stage_end(r->pl, j, OEE_STAGE_CANCELLED, NULL, strdup("cancelled"));
        }
      }
      return o;
    }
    slots[i].started = 1;
  }
  return OUT_DONE;
}

/* Runs every started stage at once; joins them all. */
static void ens_run_all(ens_slot *slots, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (!slots[i].started) continue;
    slots[i].threaded =
        pthread_create(&slots[i].th, NULL, ens_thread, &slots[i]) == 0;
    if (!slots[i].threaded) ens_thread(&slots[i]); /* degrade, not fail */
  }
  for (size_t i = 0; i < n; i++) {
    if (slots[i].threaded) pthread_join(slots[i].th, NULL);
  }
}

static outcome run_ensemble(run *r) {
  ens_slot slots[OEE_PIPELINE_MAX_STAGES];
  outcome o = ens_begin(r, slots);
  if (o != OUT_DONE) return o;
  ens_run_all(slots, r->pl->n);
  int cancelled = 0, deadline = 0;
  for (size_t i = 0; i < r->pl->n; i++) {
    cancelled |= slots[i].o == OUT_CANCELLED;
    deadline |= slots[i].o == OUT_DEADLINE;
  }
  if (cancelled) return OUT_CANCELLED;
  if (deadline) return OUT_DEADLINE;
  size_t best = ens_majority(r->pl);
  if (best < r->pl->n) {
    r->output = stage_copy(r->pl, best, 0);
    return r->output != NULL ? OUT_DONE : OUT_FAILED;
  }
  if (r->budget_skipped) return OUT_BUDGET;
  r->error = strdup("all stages failed");
  return OUT_FAILED;
}

/* ---------------------------------------------------------- executor */

static const char *outcome_message(const run *r, outcome o) {
  switch (o) {
    case OUT_CANCELLED:
      return "cancelled";
    case OUT_DEADLINE:
      return "deadline exceeded";
    case OUT_BUDGET:
      return "cost budget exceeded";
    default:
      return r->error != NULL ? r->error : "pipeline failed";
  }
}

/* Publishes the outcome in the payload: stages that never ran end SKIPPED. */
static void pipeline_settle(pipeline *pl, run *r, outcome o) {
  oee__lock(&pl->lock);
  for (size_t i = 0; i < pl->n; i++) {
    stage *s = &pl->stages[i];
    if (s->status == OEE_STAGE_PENDING) s->status = OEE_STAGE_SKIPPED;
  }
  if (o == OUT_DONE) {
    pl->output = r->output;
    r->output = NULL;
  } else {
    pl->error = strdup(outcome_message(r, o));
  }
  pl->end_ns = oee__mono_ns();
  oee__unlock(&pl->lock);
}

static char *output_copy(pipeline *pl) {
  oee__lock(&pl->lock);
  char *c = pl->output != NULL ? strdup(pl->output) : NULL;
  oee__unlock(&pl->lock);
  return c;
}

/* Completes the job. No pipeline lock is held here (see the DESIGN). */
static void pipeline_complete(oee_job *job, pipeline *pl, run *r, outcome o) {
  char *out = NULL;
  if (o == OUT_DONE) {
    /* A private copy: once the job ends, the task and its payload may go. */
    out = output_copy(pl);
  }
  const char *msg = outcome_message(r, o);
  if (o == OUT_DONE && out != NULL) oee_job_succeed(job, out);
  else if (o == OUT_DONE) oee_job_fail(job, "out of memory");
  else if (o == OUT_CANCELLED) oee_job_cancelled(job, msg);
  else oee_job_fail(job, msg);
  free(out);
}

static void pipeline_exec(oee_job *job, void *user_data) {
  pipeline *pl = oee__job_payload(job);
  if (pl == NULL) {
    oee_job_fail(job, "pipeline task without a pipeline");
    return;
  }
  run r = {.pl = pl, .tok = oee_job_token(job)};
  int64_t now = oee__mono_ns();
  /* Beyond ~30 years a deadline is as good as none (and would overflow). */
  if (pl->max_time > 0 && pl->max_time < 1e9) {
    r.deadline_ns = now + (int64_t)(pl->max_time * 1e9);
  }
  oee__lock(&pl->lock);
  pl->start_ns = now;
  oee__unlock(&pl->lock);
  outcome o;
  switch (pl->strategy) {
    case OEE_STRATEGY_PARALLEL_ENSEMBLE: o = run_ensemble(&r); break;
    case OEE_STRATEGY_SEQUENTIAL_VALIDATION: o = run_chain(&r, 1); break;
    case OEE_STRATEGY_COST_OPTIMIZED:
    case OEE_STRATEGY_QUALITY_FIRST: o = run_ordered(&r); break;
    default: o = run_chain(&r, 0); break;
  }
  pipeline_settle(pl, &r, o);
  pipeline_complete(job, pl, &r, o);
  free(r.output);
  free(r.error);
}

int oee__pipeline_register(oee_engine *eng, const oee_model_table *models) {
  /* Internal: pipelines come only from oee_engine_submit_pipeline(), which
   * checks the spec (spec_check) before the task exists. */
  return oee__engine_register_full(eng, "pipeline", pipeline_exec, NULL,
                                   OEE__EXEC_INTERNAL, (void *)models);
}

/* -------------------------------------------------------- submission */

/* 1 for a finite number >= 0 (NaN and the infinities are refused). */
static int finite_non_negative(double v) {
  return isfinite(v) && v >= 0;
}

/* Every stage names a model that exists and charges a sane cost. */
static int stages_check(const oee_pipeline_spec *spec,
                        const oee_model_table *models, oee_error *err) {
  for (size_t i = 0; i < spec->n_stages; i++) {
    const oee_stage_spec *s = &spec->stages[i];
    if (s->model_id == NULL || s->model_id[0] == '\0') {
      return oee_error_set(err, OEE_EINVAL, "stages[%zu].model_id must not be empty", i);
    }
    if (s->has_cost && !finite_non_negative(s->cost)) {
      return oee_error_set(err, OEE_EINVAL,
                           "stages[%zu].cost must be a finite number >= 0, got %g", i,
                           s->cost);
    }
    if (!oee_model_table_has(models, s->model_id)) {
      return oee_error_set(err, OEE_ENOMODEL, "unknown model_id \"%.64s\" in stages[%zu]",
                           s->model_id, i);
    }
  }
  return 0;
}

/* The one place a pipeline spec is judged; *err says why not. */
static int spec_check(const oee_pipeline_spec *spec,
                      const oee_model_table *models, oee_error *err) {
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
    return oee_error_set(err, OEE_EINVAL, "priority must be %d..%d, got %d",
                         OEE_PRIORITY_MIN, OEE_PRIORITY_MAX, spec->priority);
  }
  return stages_check(spec, models, err);
}

int oee_engine_submit_pipeline(oee_engine *eng, const oee_pipeline_spec *spec,
                               const oee_task_info **out, oee_error *err) {
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
    name = strdup(spec->name);
  } else if (asprintf(&name, "pipeline:%s", pl->pipeline_id) < 0) {
    name = NULL;
  }
  if (name == NULL) {
    pipeline_free(pl);
    return oee_error_set(err, OEE_ENOMEM, "out of memory naming the pipeline");
  }
  /* Informational keys, sorted; the payload is what the executor reads. */
  const oee_kv ctx[] = {{"pipeline_id", pl->pipeline_id},
                        {"strategy", oee_strategy_name(pl->strategy)}};
  oee_submit req = {.name = name, .task_type = "pipeline",
                    .priority = spec->priority, .context = ctx,
                    .context_len = 2};
  rc = oee__engine_submit_payload(eng, &req, pl, pipeline_free, out, err);
  free(name);
  return rc;
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
  char *c = strdup(s != NULL ? s : "");
  if (c == NULL) *rc = OEE_ENOMEM;
  return c;
}

/* Lock held: pipeline. `terminal`: the task ended (maybe while queued). */
static void copy_stage(oee_stage_result *d, const stage *s, int terminal,
                       int64_t now, int *rc) {
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
  res->error_message = dup_or_empty(
      pl->error != NULL ? pl->error : snap->error_message, &ca->rc);
  res->total_cost = pl->total_cost;
  res->elapsed_seconds = span_s(pl->start_ns, pl->end_ns, now);
  res->stages = calloc(pl->n, sizeof(*res->stages));
  if (res->stages == NULL) ca->rc = OEE_ENOMEM;
  for (size_t i = 0; res->stages != NULL && i < pl->n; i++) {
    copy_stage(&res->stages[i], &pl->stages[i], terminal, now, &ca->rc);
    res->n_stages = i + 1;
  }
  oee__unlock(&pl->lock);
}

int oee_engine_pipeline_result(oee_engine *eng, const char *task_id,
                               oee_pipeline_result **out) {
  if (eng == NULL || task_id == NULL || out == NULL) return OEE_EINVAL;
  *out = NULL;
  copy_arg ca = {.res = calloc(1, sizeof(oee_pipeline_result))};
  if (ca.res == NULL) return OEE_ENOMEM;
  int rc = oee__engine_with_payload(eng, task_id, "pipeline", copy_result, &ca);
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
    free(r->stages[i].name);
    free(r->stages[i].model_id);
    free(r->stages[i].output);
    free(r->stages[i].error_message);
  }
  free(r->stages);
  free(r->pipeline_id);
  free(r->output);
  free(r->error_message);
  free(r);
}
