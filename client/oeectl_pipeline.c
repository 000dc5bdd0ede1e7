/*
 * oeectl_pipeline.c - "pipeline submit" and "pipeline result", routed
 * through their own small command table under "pipeline".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/oeectl.h"

static const oeectl_cmd cmd_submit, cmd_result;

/* ---- pipeline submit ---- */

typedef struct psubmit_args {
  Oee__V1__SubmitPipelineRequest req;
  Oee__V1__PipelineStage *stages; /* capacity argc; strings malloc'd */
} psubmit_args;

enum {
  O_ID = OPT_CMD_BASE,
  O_STRATEGY,
  O_STAGE,
  O_MAX_TIME,
  O_MAX_COST,
  O_PRIORITY,
  O_INPUT,
  O_NAME
};

/* "name:model[:cost]" into the next stage. */
static int add_stage(psubmit_args *a, const oeectl_cmd *cmd, const char *arg) {
  Oee__V1__PipelineStage *s = &a->stages[a->req.n_stages];
  char *colon = strchr(arg, ':'), *cost = colon != NULL ? strchr(colon + 1, ':') : NULL;
  if (colon == NULL || colon == arg || colon[1] == '\0' || cost == colon + 1)
    return oeectl_usage_error(cmd, "--stage wants NAME:MODEL[:COST], got \"%s\"", arg);
  oee__v1__pipeline_stage__init(s);
  a->req.stages[a->req.n_stages++] = s;
  s->name = strndup(arg, (size_t)(colon - arg));
  s->model_id = cost != NULL ? strndup(colon + 1, (size_t)(cost - colon - 1)) : strdup(colon + 1);
  if (s->name == NULL || s->model_id == NULL)
    return oeectl_fail(OEECTL_EXIT_SOFTWARE, "out of memory");
  if (cost == NULL) return -1;
  /* Like the budgets, a negative cost is the server's to refuse. */
  if (oeectl_parse_double(cost + 1, &s->cost) != 0)
    return oeectl_usage_error(cmd, "stage cost must be a number, got \"%s\"", cost + 1);
  s->cost_present_case = OEE__V1__PIPELINE_STAGE__COST_PRESENT_COST;
  return -1;
}

static int double_opt(const oeectl_cmd *cmd, const char *name, const char *arg, double *out) {
  /* Negative budgets are the server's to refuse; accept any finite number. */
  if (oeectl_parse_double(arg, out) != 0)
    return oeectl_usage_error(cmd, "%s must be a number, got \"%s\"", name, arg);
  return -1;
}

static int psubmit_opt(void *p, const oeectl_cmd *cmd, int opt, const char *arg) {
  psubmit_args *a = p;
  Oee__V1__SubmitPipelineRequest *r = &a->req;
  if (opt == O_ID) r->pipeline_id = (char *)arg;
  if (opt == O_INPUT) r->input = (char *)arg;
  if (opt == O_NAME) r->name = (char *)arg;
  if (opt == O_STAGE) return add_stage(a, cmd, arg);
  if (opt == O_MAX_TIME) return double_opt(cmd, "--max-time", arg, &r->max_time);
  if (opt == O_MAX_COST) return double_opt(cmd, "--max-cost", arg, &r->max_cost);
  if (opt == O_STRATEGY && oeectl_parse_strategy(arg, &r->strategy) != 0)
    return oeectl_usage_error(cmd, "unknown strategy \"%s\"", arg);
  if (opt == O_PRIORITY) {
    if (oeectl_parse_int(arg, INT32_MIN, INT32_MAX, &r->priority) != 0)
      return oeectl_usage_error(cmd, "--priority must be an integer, got \"%s\"", arg);
    r->priority_present_case = OEE__V1__SUBMIT_PIPELINE_REQUEST__PRIORITY_PRESENT_PRIORITY;
  }
  return -1;
}

static void psubmit_free(psubmit_args *a) {
  for (size_t i = 0; i < a->req.n_stages; i++) {
    free(a->stages[i].name);
    free(a->stages[i].model_id);
  }
  free(a->stages);
  free(a->req.stages);
}

static int psubmit_call(oeectl_ctx *ctx, const psubmit_args *a) {
  Oee__V1__SubmitPipelineResponse *resp = NULL;
  oee_rpc_status st = {0};
  if (oeectl_channel(ctx) == NULL) return OEECTL_EXIT_SOFTWARE;
  int code = oee_v1_orchestrator_service_submit_pipeline(ctx->chan, &a->req, &resp,
                                                         oeectl_deadline_ms(ctx), &st);
  if (code != GRPC_STATUS_OK) return oeectl_call_failed(code, &st);
  int rc = oeectl_print_submitted(ctx, resp->task_id, resp->task);
  oee__v1__submit_pipeline_response__free_unpacked(resp, NULL);
  return rc;
}

/* Checks what the server could not tell from a default value. */
static int psubmit_check(const psubmit_args *a) {
  if (a->req.pipeline_id[0] == '\0') return oeectl_usage_error(&cmd_submit, "--id is required");
  if (a->req.strategy == 0) return oeectl_usage_error(&cmd_submit, "--strategy is required");
  if (a->req.n_stages == 0)
    return oeectl_usage_error(&cmd_submit, "at least one --stage is required");
  return -1;
}

static int psubmit_run(oeectl_ctx *ctx, int argc, char **argv) {
  static const struct option opts[] = {{"id", required_argument, NULL, O_ID},
                                       {"strategy", required_argument, NULL, O_STRATEGY},
                                       {"stage", required_argument, NULL, O_STAGE},
                                       {"max-time", required_argument, NULL, O_MAX_TIME},
                                       {"max-cost", required_argument, NULL, O_MAX_COST},
                                       {"priority", required_argument, NULL, O_PRIORITY},
                                       {"input", required_argument, NULL, O_INPUT},
                                       {"name", required_argument, NULL, O_NAME},
                                       OEECTL_GLOBAL_OPTIONS};
  psubmit_args a = {.stages = calloc((size_t)argc, sizeof(*a.stages))};
  oee__v1__submit_pipeline_request__init(&a.req);
  a.req.stages = calloc((size_t)argc, sizeof(*a.req.stages));
  int rc = -1;
  if (a.stages == NULL || a.req.stages == NULL)
    rc = oeectl_fail(OEECTL_EXIT_SOFTWARE, "out of memory");
  if (rc < 0) rc = oeectl_parse_opts(ctx, &cmd_submit, opts, argc, argv, psubmit_opt, &a);
  if (rc < 0) rc = oeectl_want_args(&cmd_submit, argc, argv, 0);
  if (rc < 0) rc = psubmit_check(&a);
  if (rc < 0) rc = psubmit_call(ctx, &a);
  psubmit_free(&a);
  return rc;
}

static const oeectl_cmd cmd_submit = {
    "pipeline submit", "queue a pipeline task",
    "usage: oeectl pipeline submit --id PIPELINE_ID --strategy S --stage NAME:MODEL[:COST] ...\n"
    "                              [--max-time SECONDS] [--max-cost C] [--priority P]\n"
    "                              [--input TEXT] [--name NAME]\n"
    "  Queues one pipeline task and prints its id (--json: the task).\n"
    "  --strategy  LOCAL_FAST_PRECISE, PARALLEL_ENSEMBLE, SEQUENTIAL_VALIDATION,\n"
    "              COST_OPTIMIZED or QUALITY_FIRST (any case, '-' for '_')\n"
    "  --stage     repeatable, in order; MODEL is \"echo\" or a model of the server's\n"
    "              config; COST overrides the model's cost\n"
    "  --max-time, --max-cost  budgets (0: none)\n",
    psubmit_run};

/* ---- pipeline result ---- */

static void print_stages(const Oee__V1__PipelineResult *p) {
  char out[64];
  printf("\n%-16s  %-12s  %-9s  %8s  %8s  %s\n", "STAGE", "MODEL", "STATUS", "COST", "SECONDS",
         "OUTPUT/ERROR");
  for (size_t i = 0; i < p->n_stages; i++) {
    const Oee__V1__StageResult *s = p->stages[i];
    const char *status = oeectl_stage_status_name(s->status);
    const char *res = s->error_message[0] != '\0' ? s->error_message : s->output;
    printf("%-16s  %-12s  %-9s  %8.3f  %8.3f  %s\n", s->name, s->model_id,
           strncmp(status, "STAGE_STATUS_", 13) == 0 ? status + 13 : status, s->cost,
           s->elapsed_seconds, oeectl_clip(res, 60, out, sizeof(out)));
  }
}

static void print_pipeline(const Oee__V1__PipelineResult *p) {
  printf("%-10s %s\n%-10s %s\n", "task:", p->task_id, "pipeline:", p->pipeline_id);
  printf("%-10s %s\n", "status:", oeectl_status_short(p->status));
  printf("%-10s %s\n", "strategy:", oeectl_strategy_name(p->strategy));
  printf("%-10s %s\n", "output:", p->output);
  printf("%-10s %.3f\n%-10s %.3f s\n", "cost:", p->total_cost, "elapsed:", p->elapsed_seconds);
  printf("%-10s %s\n", "error:", p->error_message);
  print_stages(p);
}

static int presult_run(oeectl_ctx *ctx, int argc, char **argv) {
  static const struct option opts[] = {OEECTL_GLOBAL_OPTIONS};
  int rc = oeectl_parse_opts(ctx, &cmd_result, opts, argc, argv, NULL, NULL);
  if (rc < 0) rc = oeectl_want_args(&cmd_result, argc, argv, 1);
  if (rc >= 0) return rc;
  Oee__V1__GetPipelineResultRequest req = OEE__V1__GET_PIPELINE_RESULT_REQUEST__INIT;
  Oee__V1__PipelineResult *p = NULL;
  oee_rpc_status st = {0};
  req.task_id = argv[optind];
  if (oeectl_channel(ctx) == NULL) return OEECTL_EXIT_SOFTWARE;
  int code = oee_v1_orchestrator_service_get_pipeline_result(ctx->chan, &req, &p,
                                                             oeectl_deadline_ms(ctx), &st);
  if (code != GRPC_STATUS_OK) return oeectl_call_failed(code, &st);
  rc = 0;
  if (ctx->json)
    rc = oeectl_print_json(oeectl_json_pipeline(p));
  else
    print_pipeline(p);
  oee__v1__pipeline_result__free_unpacked(p, NULL);
  return rc;
}

static const oeectl_cmd cmd_result = {
    "pipeline result", "show a pipeline's per-stage results",
    "usage: oeectl pipeline result TASK_ID\n"
    "  Shows the pipeline's status, output, cost and one row per stage\n"
    "  (--json: the PipelineResult message).\n",
    presult_run};

/* ---- pipeline ---- */

static const oeectl_cmd *const pipeline_cmds[] = {&cmd_submit, &cmd_result, NULL};

static int pipeline_run(oeectl_ctx *ctx, int argc, char **argv) {
  if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0)) {
    fputs(oeectl_cmd_pipeline.usage, stdout);
    return 0;
  }
  return oeectl_dispatch(ctx, &oeectl_cmd_pipeline, pipeline_cmds, argc - 1, argv + 1);
}

const oeectl_cmd oeectl_cmd_pipeline = {
    "pipeline", "submit a model pipeline / show its result",
    "usage: oeectl pipeline submit --id PID --strategy S --stage NAME:MODEL[:COST] ... [options]\n"
    "       oeectl pipeline result TASK_ID\n"
    "  'oeectl pipeline submit --help' and 'oeectl pipeline result --help' for details.\n",
    pipeline_run};
