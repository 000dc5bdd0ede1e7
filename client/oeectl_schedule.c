/*
 * oeectl_schedule.c - "schedule create|get|list|delete|pause|resume": the
 * client of the schedule RPCs, routed through their own small command table
 * under "schedule" (as "pipeline" is).
 *
 * create reads the task template with the flags of submit
 * (oeectl_template.c) and refuses the two a template may not have; create,
 * get, pause and resume print the Schedule they get back in one layout; list
 * keeps every page it fetched until the end, so that the table's columns are
 * as wide as the longest id, expression and zone of all of them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/oeectl.h"

static const oeectl_cmd cmd_create, cmd_get, cmd_list, cmd_delete, cmd_pause, cmd_resume;

/* ---- printing ---- */

#define KEY "%-13s "

/* A time as RFC 3339, or "-" when unset. */
static const char *when(const Google__Protobuf__Timestamp *ts, char *buf, size_t len) {
  return ts != NULL ? oeectl_format_time(ts, buf, len) : "-";
}

/* The template's fields; those left unset say what the server uses. */
static void print_template(const Oee__V1__SubmitTaskRequest *r) {
  printf(KEY "%s\n" KEY "%s\n", "task name:", r->name, "task type:", r->task_type);
  if (r->priority_present_case == OEE__V1__SUBMIT_TASK_REQUEST__PRIORITY_PRESENT_PRIORITY)
    printf(KEY "%d\n", "priority:", r->priority);
  else
    printf(KEY "default (5)\n", "priority:");
  printf("%-13s", "context:");
  for (size_t i = 0; i < r->n_context; i++)
    printf(" %s=%s", r->context[i]->key, r->context[i]->value);
  putchar('\n');
  if (r->max_attempts_present_case ==
      OEE__V1__SUBMIT_TASK_REQUEST__MAX_ATTEMPTS_PRESENT_MAX_ATTEMPTS)
    printf(KEY "%d\n", "max attempts:", r->max_attempts);
  else
    printf(KEY "the server's default\n", "max attempts:");
  /* Unset backoffs are 1 s and 300 s (SubmitTaskRequest). */
  printf(KEY "%g s, at most %g s\n",
         "backoff:", r->backoff_seconds_present_case ? r->backoff_seconds : 1.0,
         r->max_backoff_seconds_present_case ? r->max_backoff_seconds : 300.0);
  if (r->timeout_seconds > 0)
    printf(KEY "%g s\n", "timeout:", r->timeout_seconds);
  else
    printf(KEY "none\n", "timeout:");
  if (r->n_depends_on == 0) return;
  printf("%-13s", "after:");
  for (size_t i = 0; i < r->n_depends_on; i++) printf(" %s", r->depends_on[i]);
  putchar('\n');
}

/* The schedule as "key: value" lines. */
static void print_schedule(const Oee__V1__Schedule *s) {
  char next[64], last[64], created[64];
  printf(KEY "%s\n" KEY "%s\n", "id:", s->schedule_id, "cron:", s->cron);
  printf(KEY "%s\n" KEY "%s\n", "time zone:", s->time_zone,
         "overlap:", oeectl_overlap_short(s->overlap));
  printf(KEY "%s\n", "paused:", s->paused ? "yes" : "no");
  printf(KEY "%s\n", "next run:", when(s->next_run_at, next, sizeof(next)));
  printf(KEY "%s\n", "last run:", when(s->last_run_at, last, sizeof(last)));
  printf(KEY "%s\n", "last task:", s->last_task_id[0] != '\0' ? s->last_task_id : "-");
  printf(KEY "%lld\n" KEY "%lld\n", "runs:", (long long)s->runs, "skipped:", (long long)s->skipped);
  printf(KEY "%s\n", "created:", when(s->created_at, created, sizeof(created)));
  if (s->task != NULL) print_template(s->task);
}

/* Prints a reply that is one Schedule and frees it. Returns 0 or an exit
 * code. */
static int show_schedule(const oeectl_ctx *ctx, Oee__V1__Schedule *s) {
  int rc = 0;
  if (ctx->json)
    rc = oeectl_print_json(oeectl_json_schedule(s));
  else
    print_schedule(s);
  oee__v1__schedule__free_unpacked(s, NULL);
  return rc;
}

/* ---- create ---- */

typedef struct create_args {
  oeectl_template tpl; /* the task flags; req.task points at tpl.req */
  Oee__V1__CreateScheduleRequest req;
  int have_cron;
} create_args;

enum { O_CRON = OPT_TPL_END, O_TZ, O_OVERLAP, O_PAUSED };

/* --run-at and --key are read (so that their value is not taken for the
 * id) and refused: every firing has its own time and key. */
static int refuse_opt(const oeectl_cmd *cmd, int opt) {
  if (opt == OPT_TPL_RUN_AT)
    return oeectl_usage_error(cmd,
                              "a schedule's template cannot have --run-at: each firing's task is "
                              "due at the firing's time");
  return oeectl_usage_error(cmd,
                            "a schedule's template cannot have --key: each firing's task gets "
                            "the key ID@<firing time>");
}

static int create_opt(void *p, const oeectl_cmd *cmd, int opt, const char *arg) {
  create_args *a = p;
  switch (opt) {
    case O_CRON:
      a->req.cron = (char *)arg;
      a->have_cron = 1;
      return -1;
    case O_TZ:
      a->req.time_zone = (char *)arg;
      return -1;
    case O_OVERLAP:
      if (oeectl_parse_overlap(arg, &a->req.overlap) != 0)
        return oeectl_usage_error(cmd, "--overlap wants skip or allow, got \"%s\"", arg);
      return -1;
    case O_PAUSED:
      a->req.paused = 1;
      return -1;
    case OPT_TPL_RUN_AT:
    case OPT_TPL_KEY:
      return refuse_opt(cmd, opt);
    default: /* the other task flags */
      return oeectl_template_opt(&a->tpl, cmd, opt, arg);
  }
}

static int create_call(oeectl_ctx *ctx, const create_args *a) {
  Oee__V1__Schedule *s = NULL;
  oee_rpc_status st = {0};
  if (oeectl_channel(ctx) == NULL) return OEECTL_EXIT_SOFTWARE;
  int code = oee_v1_orchestrator_service_create_schedule(ctx->chan, &a->req, &s,
                                                         oeectl_deadline_ms(ctx), &st);
  if (code != GRPC_STATUS_OK) return oeectl_call_failed(code, &st);
  return show_schedule(ctx, s);
}

static int create_run(oeectl_ctx *ctx, int argc, char **argv) {
  /* The task flags come before the global options: --timeout after the
   * command is the template's, as in submit. */
  static const struct option opts[] = {{"cron", required_argument, NULL, O_CRON},
                                       {"tz", required_argument, NULL, O_TZ},
                                       {"overlap", required_argument, NULL, O_OVERLAP},
                                       {"paused", no_argument, NULL, O_PAUSED},
                                       OEECTL_TEMPLATE_OPTIONS,
                                       {"run-at", required_argument, NULL, OPT_TPL_RUN_AT},
                                       {"key", required_argument, NULL, OPT_TPL_KEY},
                                       OEECTL_GLOBAL_OPTIONS};
  create_args a = {.have_cron = 0};
  oee__v1__create_schedule_request__init(&a.req);
  int rc = oeectl_template_init(&a.tpl, argc);
  if (rc < 0) rc = oeectl_parse_opts(ctx, &cmd_create, opts, argc, argv, create_opt, &a);
  if (rc < 0) rc = oeectl_want_args(&cmd_create, argc, argv, 1);
  if (rc < 0 && !a.have_cron) rc = oeectl_usage_error(&cmd_create, "--cron is required");
  if (rc < 0) rc = oeectl_template_check(&a.tpl, &cmd_create);
  if (rc < 0) {
    a.req.schedule_id = argv[optind];
    a.req.task = &a.tpl.req;
    rc = create_call(ctx, &a);
  }
  oeectl_template_free(&a.tpl);
  return rc;
}

static const oeectl_cmd cmd_create = {
    "schedule create", "create a cron schedule",
    "usage: oeectl schedule create ID --cron EXPR [--tz ZONE] [--overlap skip|allow] [--paused]\n"
    "                              --name NAME --type TYPE [--priority P] [--ctx KEY=VALUE ...]\n"
    "                              [--max-attempts N] [--backoff S] [--max-backoff S]\n"
    "                              [--timeout S]\n"
    "  Creates schedule ID (1 to 64 of a-z 0-9 . _ -). Each firing submits one task\n"
    "  from the template the task flags describe, with its schedule id set and the\n"
    "  idempotency key ID@<firing time>. Prints the schedule as 'schedule get' does\n"
    "  (--json: the Schedule message).\n"
    "  --cron     minute hour day-of-month month day-of-week (*, lists, ranges, steps,\n"
    "             JAN-DEC, SUN-SAT), or @hourly, @daily, @weekly, @monthly, @yearly,\n"
    "             @every N[s|m|h] (at least 1 s; from the creation time, any zone)\n"
    "  --tz       IANA zone the five fields are read in (default UTC)\n"
    "  --overlap  when a firing comes while the previous firing's task has not ended:\n"
    "             skip it (default; counted in skipped) or allow it (submit anyway)\n"
    "  --paused   create it paused: nothing fires until 'oeectl schedule resume ID'\n"
    "  The task flags mean what they mean for 'oeectl submit' (see its --help); as\n"
    "  there, --timeout after the command is the task's. --run-at and --key are\n"
    "  refused (usage error): every firing brings its own time and key.\n"
    "  Exit: 3 INVALID_ARGUMENT naming the field (schedule_id, cron and which of its\n"
    "  fields, time_zone, task...), 6 ALREADY_EXISTS when ID is taken, 8\n"
    "  RESOURCE_EXHAUSTED at the server's max_schedules.\n",
    create_run};

/* ---- get, pause, resume: one id in, one Schedule out ---- */

typedef enum { CALL_GET, CALL_PAUSE, CALL_RESUME } one_call;

static int call_one(oeectl_ctx *ctx, one_call which, char *id, Oee__V1__Schedule **s,
                    oee_rpc_status *st) {
  int64_t deadline = oeectl_deadline_ms(ctx);
  if (which == CALL_PAUSE) {
    Oee__V1__PauseScheduleRequest req = OEE__V1__PAUSE_SCHEDULE_REQUEST__INIT;
    req.schedule_id = id;
    return oee_v1_orchestrator_service_pause_schedule(ctx->chan, &req, s, deadline, st);
  }
  if (which == CALL_RESUME) {
    Oee__V1__ResumeScheduleRequest req = OEE__V1__RESUME_SCHEDULE_REQUEST__INIT;
    req.schedule_id = id;
    return oee_v1_orchestrator_service_resume_schedule(ctx->chan, &req, s, deadline, st);
  }
  Oee__V1__GetScheduleRequest req = OEE__V1__GET_SCHEDULE_REQUEST__INIT;
  req.schedule_id = id;
  return oee_v1_orchestrator_service_get_schedule(ctx->chan, &req, s, deadline, st);
}

static int one_run(oeectl_ctx *ctx, const oeectl_cmd *cmd, one_call which, int argc, char **argv) {
  static const struct option opts[] = {OEECTL_GLOBAL_OPTIONS};
  int rc = oeectl_parse_opts(ctx, cmd, opts, argc, argv, NULL, NULL);
  if (rc < 0) rc = oeectl_want_args(cmd, argc, argv, 1);
  if (rc >= 0) return rc;
  Oee__V1__Schedule *s = NULL;
  oee_rpc_status st = {0};
  if (oeectl_channel(ctx) == NULL) return OEECTL_EXIT_SOFTWARE;
  int code = call_one(ctx, which, argv[optind], &s, &st);
  if (code != GRPC_STATUS_OK) return oeectl_call_failed(code, &st);
  return show_schedule(ctx, s);
}

static int get_run(oeectl_ctx *ctx, int argc, char **argv) {
  return one_run(ctx, &cmd_get, CALL_GET, argc, argv);
}

static int pause_run(oeectl_ctx *ctx, int argc, char **argv) {
  return one_run(ctx, &cmd_pause, CALL_PAUSE, argc, argv);
}

static int resume_run(oeectl_ctx *ctx, int argc, char **argv) {
  return one_run(ctx, &cmd_resume, CALL_RESUME, argc, argv);
}

static const oeectl_cmd cmd_get = {
    "schedule get", "show one schedule",
    "usage: oeectl schedule get ID\n"
    "  Shows one schedule: its expression, zone, overlap rule, whether it is paused,\n"
    "  the next and the last firing (- when none), the last firing's task, how many\n"
    "  firings submitted a task (runs) and how many were skipped, when it was created,\n"
    "  then its task template. --json: the Schedule message. Exit 5 NOT_FOUND for an\n"
    "  unknown ID.\n",
    get_run};

static const oeectl_cmd cmd_pause = {
    "schedule pause", "stop a schedule's firings",
    "usage: oeectl schedule pause ID\n"
    "  Stops the schedule's firings until 'oeectl schedule resume ID' (its next run\n"
    "  shows -). Prints the schedule as 'schedule get' does. Exit 5 NOT_FOUND.\n",
    pause_run};

static const oeectl_cmd cmd_resume = {
    "schedule resume", "let a paused schedule fire again",
    "usage: oeectl schedule resume ID\n"
    "  Lets a paused schedule fire again, next at its first firing time after now\n"
    "  (the firings missed while paused are not made up). Prints the schedule as\n"
    "  'schedule get' does. Exit 5 NOT_FOUND.\n",
    resume_run};

/* ---- delete ---- */

static int delete_run(oeectl_ctx *ctx, int argc, char **argv) {
  static const struct option opts[] = {OEECTL_GLOBAL_OPTIONS};
  int rc = oeectl_parse_opts(ctx, &cmd_delete, opts, argc, argv, NULL, NULL);
  if (rc < 0) rc = oeectl_want_args(&cmd_delete, argc, argv, 1);
  if (rc >= 0) return rc;
  Oee__V1__DeleteScheduleRequest req = OEE__V1__DELETE_SCHEDULE_REQUEST__INIT;
  Oee__V1__DeleteScheduleResponse *resp = NULL;
  oee_rpc_status st = {0};
  req.schedule_id = argv[optind];
  if (oeectl_channel(ctx) == NULL) return OEECTL_EXIT_SOFTWARE;
  int code = oee_v1_orchestrator_service_delete_schedule(ctx->chan, &req, &resp,
                                                         oeectl_deadline_ms(ctx), &st);
  if (code != GRPC_STATUS_OK) return oeectl_call_failed(code, &st);
  oee__v1__delete_schedule_response__free_unpacked(resp, NULL);
  if (ctx->json) return oeectl_print_json(json_object()); /* the empty response */
  printf("deleted schedule %s\n", req.schedule_id);
  return 0;
}

static const oeectl_cmd cmd_delete = {
    "schedule delete", "delete a schedule (its tasks stay)",
    "usage: oeectl schedule delete ID\n"
    "  Deletes the schedule; the tasks it already submitted stay. Prints\n"
    "  \"deleted schedule ID\" (--json: {}). Exit 5 NOT_FOUND for an unknown ID.\n",
    delete_run};

/* ---- list ---- */

typedef struct list_args {
  Oee__V1__ListSchedulesRequest req;
  int all; /* follow next_page_token to the end */
} list_args;

enum { O_PAGE_SIZE = OPT_CMD_BASE, O_PAGE_TOKEN, O_ALL };

static int list_opt(void *p, const oeectl_cmd *cmd, int opt, const char *arg) {
  list_args *a = p;
  if (opt == O_PAGE_TOKEN) a->req.page_token = (char *)arg;
  if (opt == O_ALL) a->all = 1;
  /* A negative size is the server's to refuse (INVALID_ARGUMENT). */
  if (opt == O_PAGE_SIZE && oeectl_parse_int(arg, INT32_MIN, INT32_MAX, &a->req.page_size) != 0)
    return oeectl_usage_error(cmd, "--page-size must be an integer, got \"%s\"", arg);
  return -1;
}

/* The pages fetched, in order; each owns its schedules. */
typedef struct pages {
  Oee__V1__ListSchedulesResponse **v;
  size_t n, cap;
} pages;

static void pages_free(pages *p) {
  for (size_t i = 0; i < p->n; i++) oee__v1__list_schedules_response__free_unpacked(p->v[i], NULL);
  free(p->v);
}

static int pages_reserve(pages *p) {
  if (p->n < p->cap) return 0;
  size_t cap = p->cap ? p->cap * 2 : 4;
  Oee__V1__ListSchedulesResponse **v = realloc(p->v, cap * sizeof(*v));
  if (v == NULL) return -1;
  p->v = v;
  p->cap = cap;
  return 0;
}

/* Fetches one page, or all of them with --all. Returns -1 when done, else
 * the exit code of a failure (printed). The next page's token is borrowed
 * from the page before, which stays in p. */
static int pages_fetch(oeectl_ctx *ctx, list_args *a, pages *p) {
  do {
    oee_rpc_status st = {0};
    if (pages_reserve(p) != 0) return oeectl_fail(OEECTL_EXIT_SOFTWARE, "out of memory");
    Oee__V1__ListSchedulesResponse **r = &p->v[p->n];
    int code = oee_v1_orchestrator_service_list_schedules(ctx->chan, &a->req, r,
                                                          oeectl_deadline_ms(ctx), &st);
    if (code != GRPC_STATUS_OK) return oeectl_call_failed(code, &st);
    a->req.page_token = p->v[p->n++]->next_page_token;
  } while (a->all && a->req.page_token[0] != '\0');
  return -1;
}

/* Column widths of the table: at least the header's, at most the longest
 * cell's (no cell is cut: an id or expression cut short would mislead). */
typedef struct widths {
  int id, cron, tz, runs, skipped;
} widths;

static int widest(int w, const char *s) {
  int n = (int)strlen(s);
  return n > w ? n : w;
}

static widths measure(const pages *p) {
  widths w = {2, 4, 2, 4, 7}; /* ID, CRON, TZ, RUNS, SKIPPED */
  char num[32];
  for (size_t i = 0; i < p->n; i++) {
    for (size_t j = 0; j < p->v[i]->n_schedules; j++) {
      const Oee__V1__Schedule *s = p->v[i]->schedules[j];
      w.id = widest(w.id, s->schedule_id);
      w.cron = widest(w.cron, s->cron);
      w.tz = widest(w.tz, s->time_zone);
      snprintf(num, sizeof(num), "%lld", (long long)s->runs);
      w.runs = widest(w.runs, num);
      snprintf(num, sizeof(num), "%lld", (long long)s->skipped);
      w.skipped = widest(w.skipped, num);
    }
  }
  return w;
}

#define ROW_FORMAT "%-*s  %-*s  %-*s  %-6s  %-20s  %-20s  %*s  %*s\n"

static void print_row(const widths *w, const Oee__V1__Schedule *s) {
  char next[64], last[64], runs[32], skipped[32];
  snprintf(runs, sizeof(runs), "%lld", (long long)s->runs);
  snprintf(skipped, sizeof(skipped), "%lld", (long long)s->skipped);
  printf(ROW_FORMAT, w->id, s->schedule_id, w->cron, s->cron, w->tz, s->time_zone,
         s->paused ? "yes" : "no", oeectl_format_time_cell(s->next_run_at, next, sizeof(next)),
         oeectl_format_time_cell(s->last_run_at, last, sizeof(last)), w->runs, runs, w->skipped,
         skipped);
}

static void print_table(const pages *p) {
  widths w = measure(p);
  size_t shown = 0;
  const char *token = p->v[p->n - 1]->next_page_token;
  printf(ROW_FORMAT, w.id, "ID", w.cron, "CRON", w.tz, "TZ", "PAUSED", "NEXT RUN", "LAST RUN",
         w.runs, "RUNS", w.skipped, "SKIPPED");
  for (size_t i = 0; i < p->n; i++) {
    for (size_t j = 0; j < p->v[i]->n_schedules; j++) print_row(&w, p->v[i]->schedules[j]);
    shown += p->v[i]->n_schedules;
  }
  printf("(%zu schedule%s", shown, shown == 1 ? "" : "s");
  if (token[0] != '\0') printf("; next page: --page-token %s", token);
  printf(")\n");
}

static int print_json_pages(const pages *p) {
  json_t *list = json_array();
  for (size_t i = 0; i < p->n; i++)
    for (size_t j = 0; j < p->v[i]->n_schedules; j++)
      json_array_append_new(list, oeectl_json_schedule(p->v[i]->schedules[j]));
  return oeectl_print_json(
      json_pack("{s:o,s:s}", "schedules", list, "nextPageToken", p->v[p->n - 1]->next_page_token));
}

static int list_run(oeectl_ctx *ctx, int argc, char **argv) {
  static const struct option opts[] = {{"page-size", required_argument, NULL, O_PAGE_SIZE},
                                       {"page-token", required_argument, NULL, O_PAGE_TOKEN},
                                       {"all", no_argument, NULL, O_ALL},
                                       OEECTL_GLOBAL_OPTIONS};
  list_args a = {.all = 0};
  pages p = {.n = 0};
  oee__v1__list_schedules_request__init(&a.req);
  int rc = oeectl_parse_opts(ctx, &cmd_list, opts, argc, argv, list_opt, &a);
  if (rc < 0) rc = oeectl_want_args(&cmd_list, argc, argv, 0);
  if (rc >= 0) return rc;
  if (oeectl_channel(ctx) == NULL) return OEECTL_EXIT_SOFTWARE;
  rc = pages_fetch(ctx, &a, &p);
  if (rc < 0 && ctx->json) rc = print_json_pages(&p);
  if (rc < 0) {
    print_table(&p);
    rc = 0;
  }
  pages_free(&p);
  return rc;
}

static const oeectl_cmd cmd_list = {
    "schedule list", "list schedules (table), in id order",
    "usage: oeectl schedule list [--page-size N] [--page-token TOK] [--all]\n"
    "  Lists schedules in id order: id, cron, time zone, paused, next and last run\n"
    "  (to the second; - when none), runs (firings that submitted a task) and\n"
    "  skipped firings.\n"
    "  --page-size   schedules per call (0: the server's default, 100; at most 1000)\n"
    "  --page-token  continue from a previous page\n"
    "  --all         follow the page tokens to the last page\n"
    "  --json: {\"schedules\": [...], \"nextPageToken\": \"...\"}\n",
    list_run};

/* ---- schedule ---- */

static const oeectl_cmd *const schedule_cmds[] = {&cmd_create, &cmd_get,    &cmd_list, &cmd_delete,
                                                  &cmd_pause,  &cmd_resume, NULL};

static int schedule_run(oeectl_ctx *ctx, int argc, char **argv) {
  if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0)) {
    fputs(oeectl_cmd_schedule.usage, stdout);
    return 0;
  }
  return oeectl_dispatch(ctx, &oeectl_cmd_schedule, schedule_cmds, argc - 1, argv + 1);
}

const oeectl_cmd oeectl_cmd_schedule = {
    "schedule", "cron schedules: create, get, list, delete, pause, resume",
    "usage: oeectl schedule create ID --cron EXPR --name NAME --type TYPE [options]\n"
    "       oeectl schedule get|delete|pause|resume ID\n"
    "       oeectl schedule list [--page-size N] [--page-token TOK] [--all]\n"
    "  A schedule submits one task from its template at every firing of its cron\n"
    "  expression. 'oeectl schedule VERB --help' for each verb.\n"
    "  --json on every verb: the reply as proto3 JSON (a Schedule; for list\n"
    "  {\"schedules\", \"nextPageToken\"}; for delete {}).\n",
    schedule_run};
