/*
 * oeectl_tasks.c - the task commands: submit, get, list, cancel, retry, clear.
 * Each command is one options handler plus one run function that builds the
 * request, makes one blocking call and prints the reply.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/oeectl.h"

/* ---- printing ---- */

int oeectl_print_submitted(const oeectl_ctx *ctx, const char *task_id, const Oee__V1__Task *task) {
  if (ctx->json) return oeectl_print_json(oeectl_json_task(task));
  printf("%s\n", task_id);
  return 0;
}

static void print_context(const Oee__V1__Task *t) {
  printf("%-10s", "context:");
  for (size_t i = 0; i < t->n_context; i++)
    printf(" %s=%s", t->context[i]->key, t->context[i]->value);
  putchar('\n');
}

/* Attempts, retry policy, timing and dependencies, one line each. */
static void print_semantics(const Oee__V1__Task *t) {
  char r[64];
  printf("%-10s %d of %d\n", "attempt:", t->attempt, t->max_attempts);
  printf("%-10s %g s, at most %g s\n", "backoff:", t->backoff_seconds, t->max_backoff_seconds);
  if (t->timeout_seconds > 0)
    printf("%-10s %g s\n", "timeout:", t->timeout_seconds);
  else
    printf("%-10s none\n", "timeout:");
  printf("%-10s %s\n", "run_at:", oeectl_format_time(t->run_at, r, sizeof(r)));
  printf("%-10s %s\n", "key:", t->idempotency_key);
  printf("%-10s", "after:");
  for (size_t i = 0; i < t->n_depends_on; i++) printf(" %s", t->depends_on[i]);
  putchar('\n');
  if (t->schedule_id[0] != '\0') printf("%-10s %s\n", "schedule:", t->schedule_id);
  if (t->remote_worker_id[0] != '\0') printf("%-10s %s\n", "remote:", t->remote_worker_id);
}

/* The task as "key: value" lines. */
static void print_task(const Oee__V1__Task *t) {
  char c[64], s[64], d[64];
  printf("%-10s %s\n%-10s %s\n", "id:", t->id, "name:", t->name);
  printf("%-10s %s\n%-10s %s\n", "type:", t->task_type, "status:", oeectl_status_short(t->status));
  printf("%-10s %d\n%-10s %d\n", "priority:", t->priority, "worker:", t->worker_id);
  print_context(t);
  print_semantics(t);
  printf("%-10s %s\n", "created:", oeectl_format_time(t->created_at, c, sizeof(c)));
  printf("%-10s %s\n", "started:", oeectl_format_time(t->started_at, s, sizeof(s)));
  printf("%-10s %s\n", "completed:", oeectl_format_time(t->completed_at, d, sizeof(d)));
  printf("%-10s %s\n%-10s %s\n", "result:", t->result, "error:", t->error_message);
}

#define ROW_FORMAT "%-36s  %-16s  %-8s  %-9s  %4s  %7s  %-16s  %-20s  %s\n"

/* Who runs or ran the task: the remote worker's id (clipped), else the
 * in-process worker's number, else "-". */
static const char *worker_cell(const Oee__V1__Task *t, char *buf, size_t len) {
  if (t->remote_worker_id[0] != '\0') return oeectl_clip(t->remote_worker_id, 16, buf, len);
  if (t->worker_id >= 0)
    snprintf(buf, len, "%d", t->worker_id);
  else
    snprintf(buf, len, "-");
  return buf;
}

static void print_row(const Oee__V1__Task *t) {
  char name[24], type[16], out[48], worker[24], prio[16], attempt[32], run_at[64];
  const char *res = t->error_message[0] != '\0' ? t->error_message : t->result;
  worker_cell(t, worker, sizeof(worker));
  snprintf(prio, sizeof(prio), "%d", t->priority);
  snprintf(attempt, sizeof(attempt), "%d/%d", t->attempt, t->max_attempts);
  printf(ROW_FORMAT, t->id, oeectl_clip(t->name, 16, name, sizeof(name)),
         oeectl_clip(t->task_type, 8, type, sizeof(type)), oeectl_status_short(t->status), prio,
         attempt, worker, oeectl_format_time_cell(t->run_at, run_at, sizeof(run_at)),
         oeectl_clip(res, 40, out, sizeof(out)));
}

static void print_header(void) {
  printf(ROW_FORMAT, "ID", "NAME", "TYPE", "STATUS", "PRIO", "ATTEMPT", "WORKER", "RUN_AT",
         "RESULT/ERROR");
}

/* ---- submit ---- */

static int submit_opt(void *p, const oeectl_cmd *cmd, int opt, const char *arg) {
  return oeectl_template_opt(p, cmd, opt, arg);
}

static int submit_call(oeectl_ctx *ctx, const oeectl_template *t) {
  Oee__V1__SubmitTaskResponse *resp = NULL;
  oee_rpc_status st = {0};
  oee_rpc_channel *ch = oeectl_channel(ctx);
  if (ch == NULL) return OEECTL_EXIT_SOFTWARE;
  int code =
      oee_v1_orchestrator_service_submit_task(ch, &t->req, &resp, oeectl_deadline_ms(ctx), &st);
  if (code != GRPC_STATUS_OK) return oeectl_call_failed(code, &st);
  int rc = oeectl_print_submitted(ctx, resp->task_id, resp->task);
  oee__v1__submit_task_response__free_unpacked(resp, NULL);
  return rc;
}

static int submit_run(oeectl_ctx *ctx, int argc, char **argv) {
  /* The task flags come before the global options, so after the command
   * --timeout is the task's timeout_seconds; the call deadline goes before
   * the command: oeectl --timeout 5 submit. */
  static const struct option opts[] = {OEECTL_TEMPLATE_OPTIONS,
                                       {"run-at", required_argument, NULL, OPT_TPL_RUN_AT},
                                       {"key", required_argument, NULL, OPT_TPL_KEY},
                                       {"after", required_argument, NULL, OPT_TPL_AFTER},
                                       OEECTL_GLOBAL_OPTIONS};
  oeectl_template t;
  int rc = oeectl_template_init(&t, argc);
  if (rc < 0) rc = oeectl_parse_opts(ctx, &oeectl_cmd_submit, opts, argc, argv, submit_opt, &t);
  if (rc < 0) rc = oeectl_want_args(&oeectl_cmd_submit, argc, argv, 0);
  if (rc < 0) rc = oeectl_template_check(&t, &oeectl_cmd_submit);
  if (rc < 0) rc = submit_call(ctx, &t);
  oeectl_template_free(&t);
  return rc;
}

const oeectl_cmd oeectl_cmd_submit = {
    "submit", "queue one task; prints its id",
    "usage: oeectl submit --name NAME --type TYPE [--priority P] [--ctx KEY=VALUE ...]\n"
    "                     [--max-attempts N] [--backoff S] [--max-backoff S] [--timeout S]\n"
    "                     [--run-at TIME] [--key KEY] [--after TASK_ID ...]\n"
    "  Queues one task and prints its id (--json: the task as acknowledged). With a\n"
    "  --key seen recently the id is the earlier task's and nothing new is queued.\n"
    "  --priority      0..10, higher runs first (default: the server's, 5)\n"
    "  --ctx           executor parameter, repeatable: echo message=..., sleep seconds=...,\n"
    "                  fail message=..., exec command=NAME input=...\n"
    "  --max-attempts  attempts in all, 1..100 (default: the server's default_max_attempts, 1)\n"
    "  --backoff       seconds before the first retry, doubling each retry (default 1)\n"
    "  --max-backoff   cap of that wait in seconds (default 300)\n"
    "  --timeout       seconds one attempt may run (default 0: no limit). After the command\n"
    "                  --timeout is this; the call deadline goes first: oeectl --timeout 5 submit\n"
    "  --run-at        not before TIME: RFC 3339 (2030-01-02T03:04:05Z, any offset) or\n"
    "                  relative to now: +30s, +5m, +2h, +1d (the task is SCHEDULED until then)\n"
    "  --key           idempotency key (at most 256 bytes)\n"
    "  --after         a task that must end DONE first, repeatable (else this one is CANCELLED)\n",
    submit_run};

/* ---- get ---- */

static int get_run(oeectl_ctx *ctx, int argc, char **argv) {
  static const struct option opts[] = {OEECTL_GLOBAL_OPTIONS};
  int rc = oeectl_parse_opts(ctx, &oeectl_cmd_get, opts, argc, argv, NULL, NULL);
  if (rc < 0) rc = oeectl_want_args(&oeectl_cmd_get, argc, argv, 1);
  if (rc >= 0) return rc;
  Oee__V1__GetTaskRequest req = OEE__V1__GET_TASK_REQUEST__INIT;
  Oee__V1__Task *t = NULL;
  oee_rpc_status st = {0};
  req.task_id = argv[optind];
  if (oeectl_channel(ctx) == NULL) return OEECTL_EXIT_SOFTWARE;
  int code =
      oee_v1_orchestrator_service_get_task(ctx->chan, &req, &t, oeectl_deadline_ms(ctx), &st);
  if (code != GRPC_STATUS_OK) return oeectl_call_failed(code, &st);
  rc = 0;
  if (ctx->json)
    rc = oeectl_print_json(oeectl_json_task(t));
  else
    print_task(t);
  oee__v1__task__free_unpacked(t, NULL);
  return rc;
}

const oeectl_cmd oeectl_cmd_get = {"get", "show one task",
                                   "usage: oeectl get TASK_ID\n"
                                   "  Shows one task (--json: the Task message).\n",
                                   get_run};

/* ---- list ---- */

typedef struct list_args {
  Oee__V1__ListTasksRequest req;
  int all; /* follow next_page_token to the end */
} list_args;

enum { O_STATUS = OPT_CMD_BASE, O_LTYPE, O_PAGE_SIZE, O_PAGE_TOKEN, O_ALL };

static int list_opt(void *p, const oeectl_cmd *cmd, int opt, const char *arg) {
  list_args *a = p;
  if (opt == O_LTYPE) a->req.task_type_filter = (char *)arg;
  if (opt == O_PAGE_TOKEN) a->req.page_token = (char *)arg;
  if (opt == O_ALL) a->all = 1;
  if (opt == O_STATUS && oeectl_parse_status(arg, &a->req.status_filter) != 0)
    return oeectl_usage_error(
        cmd, "unknown status \"%s\" (scheduled, queued, running, done, error, cancelled)", arg);
  if (opt == O_PAGE_SIZE && oeectl_parse_int(arg, INT32_MIN, INT32_MAX, &a->req.page_size) != 0)
    return oeectl_usage_error(cmd, "--page-size must be an integer, got \"%s\"", arg);
  return -1;
}

/* Prints one page; *json_tasks collects tasks for --json --all. */
static void list_print_page(const oeectl_ctx *ctx, const Oee__V1__ListTasksResponse *r,
                            json_t *json_tasks) {
  for (size_t i = 0; i < r->n_tasks; i++) {
    if (ctx->json)
      json_array_append_new(json_tasks, oeectl_json_task(r->tasks[i]));
    else
      print_row(r->tasks[i]);
  }
}

static void list_footer(const oeectl_ctx *ctx, json_t *out, size_t shown,
                        const Oee__V1__ListTasksResponse *last) {
  if (ctx->json) {
    json_object_set_new(out, "nextPageToken", json_string(last->next_page_token));
    json_object_set_new(out, "totalSize", json_integer(last->total_size));
    return;
  }
  printf("(%zu of %d tasks", shown, last->total_size);
  if (last->next_page_token[0] != '\0')
    printf("; next page: --page-token %s", last->next_page_token);
  printf(")\n");
}

/* Fetches pages (one, or all with --all) and prints them. */
static int list_pages(oeectl_ctx *ctx, list_args *a, json_t *out) {
  Oee__V1__ListTasksResponse *r = NULL;
  size_t shown = 0, pages = 0;
  char *token = NULL; /* owned copy of the next page token */
  int code;
  do {
    oee_rpc_status st = {0};
    if (r != NULL) oee__v1__list_tasks_response__free_unpacked(r, NULL);
    code = oee_v1_orchestrator_service_list_tasks(ctx->chan, &a->req, &r, oeectl_deadline_ms(ctx),
                                                  &st);
    if (code != GRPC_STATUS_OK) {
      free(token);
      return oeectl_call_failed(code, &st);
    }
    if (pages++ == 0 && !ctx->json) print_header();
    list_print_page(ctx, r, json_object_get(out, "tasks"));
    shown += r->n_tasks;
    free(token);
    token = strdup(r->next_page_token);
    a->req.page_token = token;
  } while (a->all && token != NULL && token[0] != '\0');
  list_footer(ctx, out, shown, r);
  oee__v1__list_tasks_response__free_unpacked(r, NULL);
  free(token);
  return 0;
}

static int list_run(oeectl_ctx *ctx, int argc, char **argv) {
  static const struct option opts[] = {{"status", required_argument, NULL, O_STATUS},
                                       {"type", required_argument, NULL, O_LTYPE},
                                       {"page-size", required_argument, NULL, O_PAGE_SIZE},
                                       {"page-token", required_argument, NULL, O_PAGE_TOKEN},
                                       {"all", no_argument, NULL, O_ALL},
                                       OEECTL_GLOBAL_OPTIONS};
  list_args a = {.all = 0};
  oee__v1__list_tasks_request__init(&a.req);
  int rc = oeectl_parse_opts(ctx, &oeectl_cmd_list, opts, argc, argv, list_opt, &a);
  if (rc < 0) rc = oeectl_want_args(&oeectl_cmd_list, argc, argv, 0);
  if (rc >= 0) return rc;
  if (oeectl_channel(ctx) == NULL) return OEECTL_EXIT_SOFTWARE;
  json_t *out = json_pack("{s:[]}", "tasks");
  if (out == NULL) return oeectl_fail(OEECTL_EXIT_SOFTWARE, "out of memory");
  rc = list_pages(ctx, &a, out);
  if (rc == 0 && ctx->json) return oeectl_print_json(out);
  json_decref(out);
  return rc;
}

const oeectl_cmd oeectl_cmd_list = {
    "list", "list tasks (table), oldest first",
    "usage: oeectl list [--status S] [--type T] [--page-size N] [--page-token TOK] [--all]\n"
    "  Lists tasks oldest first: id, name, type, status, priority, attempt (of the most\n"
    "  allowed), worker (its number, or the remote worker's id), run_at (to the\n"
    "  second; - when unset), result or error.\n"
    "  --status      scheduled, queued, running, done, error or cancelled (or TASK_STATUS_*)\n"
    "  --type        only tasks of this type\n"
    "  --page-size   tasks per call (0: server default; the server caps it at 1000)\n"
    "  --page-token  continue from a previous page\n"
    "  --all         follow the page tokens to the last page\n"
    "  --json: {\"tasks\": [...], \"nextPageToken\": \"...\", \"totalSize\": N}\n",
    list_run};

/* ---- cancel ---- */

static void print_cancel(const Oee__V1__CancelTaskResponse *r, const char *id) {
  const char *status = r->task != NULL ? oeectl_status_short(r->task->status) : "?";
  if (r->cancelled)
    printf("cancelled %s (status %s)\n", id, status);
  else
    printf("not cancelled: %s is already %s\n", id, status);
}

static json_t *json_cancel(const Oee__V1__CancelTaskResponse *r) {
  json_t *o = json_object();
  json_object_set_new(o, "cancelled", json_boolean(r->cancelled));
  if (r->task != NULL) json_object_set_new(o, "task", oeectl_json_task(r->task));
  return o;
}

static int cancel_run(oeectl_ctx *ctx, int argc, char **argv) {
  static const struct option opts[] = {OEECTL_GLOBAL_OPTIONS};
  int rc = oeectl_parse_opts(ctx, &oeectl_cmd_cancel, opts, argc, argv, NULL, NULL);
  if (rc < 0) rc = oeectl_want_args(&oeectl_cmd_cancel, argc, argv, 1);
  if (rc >= 0) return rc;
  Oee__V1__CancelTaskRequest req = OEE__V1__CANCEL_TASK_REQUEST__INIT;
  Oee__V1__CancelTaskResponse *resp = NULL;
  oee_rpc_status st = {0};
  req.task_id = argv[optind];
  if (oeectl_channel(ctx) == NULL) return OEECTL_EXIT_SOFTWARE;
  int code =
      oee_v1_orchestrator_service_cancel_task(ctx->chan, &req, &resp, oeectl_deadline_ms(ctx), &st);
  if (code != GRPC_STATUS_OK) return oeectl_call_failed(code, &st);
  rc = 0;
  if (ctx->json)
    rc = oeectl_print_json(json_cancel(resp));
  else
    print_cancel(resp, req.task_id);
  oee__v1__cancel_task_response__free_unpacked(resp, NULL);
  return rc;
}

const oeectl_cmd oeectl_cmd_cancel = {
    "cancel", "cancel a queued or running task",
    "usage: oeectl cancel TASK_ID\n"
    "  Cancels a queued task, or asks a running one to stop. A task that already\n"
    "  finished is left alone (\"not cancelled\"); both exit 0.\n"
    "  --json: {\"cancelled\": BOOL, \"task\": {...}}\n",
    cancel_run};

/* ---- retry ---- */

static int retry_run(oeectl_ctx *ctx, int argc, char **argv) {
  static const struct option opts[] = {OEECTL_GLOBAL_OPTIONS};
  int rc = oeectl_parse_opts(ctx, &oeectl_cmd_retry, opts, argc, argv, NULL, NULL);
  if (rc < 0) rc = oeectl_want_args(&oeectl_cmd_retry, argc, argv, 1);
  if (rc >= 0) return rc;
  Oee__V1__RetryTaskRequest req = OEE__V1__RETRY_TASK_REQUEST__INIT;
  Oee__V1__Task *t = NULL;
  oee_rpc_status st = {0};
  req.task_id = argv[optind];
  if (oeectl_channel(ctx) == NULL) return OEECTL_EXIT_SOFTWARE;
  int code =
      oee_v1_orchestrator_service_retry_task(ctx->chan, &req, &t, oeectl_deadline_ms(ctx), &st);
  if (code != GRPC_STATUS_OK) return oeectl_call_failed(code, &st);
  rc = 0;
  if (ctx->json)
    rc = oeectl_print_json(oeectl_json_task(t));
  else
    printf("retried %s (status %s, %d attempts)\n", t->id, oeectl_status_short(t->status),
           t->max_attempts);
  oee__v1__task__free_unpacked(t, NULL);
  return rc;
}

const oeectl_cmd oeectl_cmd_retry = {
    "retry", "queue a task that ended ERROR or CANCELLED again",
    "usage: oeectl retry TASK_ID\n"
    "  Queues a task that ended ERROR or CANCELLED again, with its attempts counted from\n"
    "  0 (SCHEDULED if its run_at is still ahead or it waits for dependencies).\n"
    "  Any other status fails with FAILED_PRECONDITION (exit 9). --json: the Task.\n",
    retry_run};

/* ---- clear ---- */

enum { O_KEEP = OPT_CMD_BASE };

static int clear_opt(void *p, const oeectl_cmd *cmd, int opt, const char *arg) {
  Oee__V1__ClearCompletedTasksRequest *req = p;
  /* Negative values are the server's to refuse (INVALID_ARGUMENT). */
  if (oeectl_parse_int(arg, INT32_MIN, INT32_MAX, &req->keep_recent) != 0)
    return oeectl_usage_error(cmd, "--keep must be an integer, got \"%s\"", arg);
  req->keep_recent_present_case =
      OEE__V1__CLEAR_COMPLETED_TASKS_REQUEST__KEEP_RECENT_PRESENT_KEEP_RECENT;
  return -1;
}

static int clear_run(oeectl_ctx *ctx, int argc, char **argv) {
  static const struct option opts[] = {{"keep", required_argument, NULL, O_KEEP},
                                       OEECTL_GLOBAL_OPTIONS};
  Oee__V1__ClearCompletedTasksRequest req = OEE__V1__CLEAR_COMPLETED_TASKS_REQUEST__INIT;
  Oee__V1__ClearCompletedTasksResponse *resp = NULL;
  oee_rpc_status st = {0};
  int rc = oeectl_parse_opts(ctx, &oeectl_cmd_clear, opts, argc, argv, clear_opt, &req);
  if (rc < 0) rc = oeectl_want_args(&oeectl_cmd_clear, argc, argv, 0);
  if (rc >= 0) return rc;
  if (oeectl_channel(ctx) == NULL) return OEECTL_EXIT_SOFTWARE;
  int code = oee_v1_orchestrator_service_clear_completed_tasks(ctx->chan, &req, &resp,
                                                               oeectl_deadline_ms(ctx), &st);
  if (code != GRPC_STATUS_OK) return oeectl_call_failed(code, &st);
  rc = 0;
  if (ctx->json)
    rc = oeectl_print_json(json_pack("{s:i}", "cleared", (int)resp->cleared));
  else
    printf("cleared %d tasks\n", resp->cleared);
  oee__v1__clear_completed_tasks_response__free_unpacked(resp, NULL);
  return rc;
}

const oeectl_cmd oeectl_cmd_clear = {
    "clear", "remove finished tasks",
    "usage: oeectl clear [--keep N]\n"
    "  Removes DONE, ERROR and CANCELLED tasks except the N most recently completed\n"
    "  (default: the server's, 100). Prints how many were removed.\n",
    clear_run};
