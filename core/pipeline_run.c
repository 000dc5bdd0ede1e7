/*
 * pipeline_run.c - the `pipeline` executor: stages, the five strategies and
 * the two budgets (see pipeline.h for the design).
 * Lock order: the pipeline lock is taken alone here; the executor never
 * holds it while calling into the engine (oee_job_*).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/oee_alloc.h"
#include "core/pipeline.h"
#include "core/sync.h"

#define BUDGET_EPS 1e-9 /* relative slack so that 0.1 + 0.2 fits in 0.3 */

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
  oee_token *tok;      /* the job's token (borrowed) */
  int64_t deadline_ns; /* CLOCK_MONOTONIC; 0 = none */
  int budget_skipped;  /* executor thread only: a stage did not fit */
  char *output;        /* executor thread only: the pipeline's output */
  char *error;         /* executor thread only: a failure message */
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
static void stage_end(pipeline *pl, size_t i, oee_stage_status st, char *output, char *error) {
  stage *s = &pl->stages[i];
  oee__lock(&pl->lock);
  s->status = st;
  oee_free(s->output);
  oee_free(s->error);
  s->output = output;
  s->error = error;
  s->end_ns = oee__mono_ns();
  oee__unlock(&pl->lock);
}

/* The child's time limit: the model's own, capped by the time left. */
static double stage_timeout(const run *r, const oee_command *cmd, int *by_deadline) {
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
static outcome stage_judge(run *r, size_t i, const oee_proc_result *res, double timeout,
                           int by_deadline) {
  char msg[OEE_PROC_MSG_MAX];
  if (res->cancelled) {
    stage_end(r->pl, i, OEE_STAGE_CANCELLED, NULL, oee_strdup("cancelled"));
    return OUT_CANCELLED;
  }
  if (res->timed_out && by_deadline) {
    stage_end(r->pl, i, OEE_STAGE_CANCELLED, NULL, oee_strdup("deadline exceeded"));
    return OUT_DEADLINE;
  }
  if (oee_proc_describe(res, timeout, msg, sizeof(msg))) {
    stage_end(r->pl, i, OEE_STAGE_ERROR, NULL, oee_strdup(msg));
    return OUT_FAILED;
  }
  char *out = oee_trim_right(res->out);
  if (out == NULL) {
    stage_end(r->pl, i, OEE_STAGE_ERROR, NULL, oee_strdup("out of memory"));
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
              out != NULL ? NULL : oee_strdup("out of memory"));
    return out != NULL ? OUT_DONE : OUT_FAILED;
  }
  const oee_command *cmd = oee_exec_table_find(r->pl->models->cmds, s->model_id);
  if (cmd == NULL) { /* validated at submit; the table never shrinks */
    stage_end(r->pl, i, OEE_STAGE_ERROR, NULL, oee_strdup("unknown model"));
    return OUT_FAILED;
  }
  int by_deadline;
  double timeout = stage_timeout(r, cmd, &by_deadline);
  oee_proc_result res;
  int rc = oee_proc_run(cmd->argv, input, strlen(input), timeout, r->tok, 0, &res);
  outcome o = OUT_FAILED;
  if (rc != 0) {
    stage_end(r->pl, i, OEE_STAGE_ERROR, NULL,
              oee_strdup(res.err_tail != NULL ? res.err_tail : oee_strerror(rc)));
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
  char *c = v != NULL ? oee_strdup(v) : NULL;
  oee__unlock(&pl->lock);
  return c;
}

/* Sets r->error to "<head> '<stage>'<tail>: <stage error>". */
static void fail_at(run *r, size_t i, const char *head, const char *tail) {
  char *err = stage_copy(r->pl, i, 1);
  if (oee_asprintf(&r->error, "%s '%s'%s: %s", head, stage_label(&r->pl->stages[i]), tail,
                   err != NULL ? err : "failed") < 0) {
    r->error = NULL;
  }
  oee_free(err);
}

/* ------------------------------------------------------- strategies */

/* LOCAL_FAST_PRECISE (validate = 0): each stage gets the previous output.
 * SEQUENTIAL_VALIDATION (validate = 1): stage 0 produces; the others get
 * its output and must succeed. A stage that does not fit ends the run. */
static outcome run_chain(run *r, int validate) {
  char *cur = oee_strdup(r->pl->input);
  if (cur == NULL) return OUT_FAILED;
  outcome o = OUT_DONE;
  for (size_t i = 0; i < r->pl->n; i++) {
    if ((o = stage_begin(r, i)) != OUT_DONE) break;
    if ((o = stage_exec(r, i, cur)) != OUT_DONE) {
      if (o == OUT_FAILED) {
        if (validate && i > 0)
          fail_at(r, i, "validation failed at stage", "");
        else
          fail_at(r, i, "stage", " failed");
      }
      break;
    }
    if (!validate || i == 0) {
      oee_free(cur);
      cur = stage_copy(r->pl, i, 0);
      if (cur == NULL) return OUT_FAILED;
    }
  }
  if (o == OUT_DONE)
    r->output = cur;
  else
    oee_free(cur);
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
          stage_end(r->pl, j, OEE_STAGE_CANCELLED, NULL, oee_strdup("cancelled"));
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
    slots[i].threaded = pthread_create(&slots[i].th, NULL, ens_thread, &slots[i]) == 0;
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
  r->error = oee_strdup("all stages failed");
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
    pl->error = oee_strdup(outcome_message(r, o));
  }
  pl->end_ns = oee__mono_ns();
  oee__unlock(&pl->lock);
}

static char *output_copy(pipeline *pl) {
  oee__lock(&pl->lock);
  char *c = pl->output != NULL ? oee_strdup(pl->output) : NULL;
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
  if (o == OUT_DONE && out != NULL)
    oee_job_succeed(job, out);
  else if (o == OUT_DONE)
    oee_job_fail(job, "out of memory");
  else if (o == OUT_CANCELLED)
    oee_job_cancelled(job, msg);
  else
    oee_job_fail(job, msg);
  oee_free(out);
}

/* A pipeline runs again from its first stage (a retry, RetryTask, a
 * restart): what an earlier attempt left is cleared. */
static void pipeline_reset(pipeline *pl) {
  oee__lock(&pl->lock);
  for (size_t i = 0; i < pl->n; i++) {
    stage *s = &pl->stages[i];
    oee_free(s->output);
    oee_free(s->error);
    s->output = s->error = NULL;
    s->status = OEE_STAGE_PENDING;
    s->charged = 0;
    s->start_ns = s->end_ns = 0;
  }
  oee_free(pl->output);
  oee_free(pl->error);
  pl->output = pl->error = NULL;
  pl->total_cost = 0;
  pl->start_ns = pl->end_ns = 0;
  oee__unlock(&pl->lock);
}

static void pipeline_exec(oee_job *job, void *user_data) {
  pipeline *pl = oee__job_payload(job);
  if (pl == NULL) {
    oee_job_fail_permanent(job, "pipeline task without a pipeline");
    return;
  }
  pipeline_reset(pl); /* retries run the whole pipeline again */
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
    case OEE_STRATEGY_PARALLEL_ENSEMBLE:
      o = run_ensemble(&r);
      break;
    case OEE_STRATEGY_SEQUENTIAL_VALIDATION:
      o = run_chain(&r, 1);
      break;
    case OEE_STRATEGY_COST_OPTIMIZED:
    case OEE_STRATEGY_QUALITY_FIRST:
      o = run_ordered(&r);
      break;
    default:
      o = run_chain(&r, 0);
      break;
  }
  pipeline_settle(pl, &r, o);
  pipeline_complete(job, pl, &r, o);
  oee_free(r.output);
  oee_free(r.error);
}

int oee__pipeline_register(oee_engine *eng, const oee_model_table *models) {
  /* Internal: pipelines come only from oee_engine_submit_pipeline(), which
   * checks the spec (spec_check) before the task exists. */
  return oee__engine_register_full(eng, "pipeline", pipeline_exec, NULL, OEE__EXEC_INTERNAL,
                                   (void *)models);
}
