/*
 * oeectl.h - shared pieces of the oeectl command-line client.
 *
 * Layout: oeectl.c parses the global options and routes the command through
 * a table; each oeectl_<group>.c holds one small function per subcommand;
 * oeectl_template.c reads the task flags that submit and schedule create
 * share; oeectl_json.c turns protobuf-c messages into jansson objects (proto3
 * JSON mapping); oeectl_util.c holds errors, parsing and formatting helpers.
 *
 * Exit codes: 0..16 are gRPC status codes (the server's, or the local one of
 * a failed call); the OEECTL_EXIT_* codes below are local failures.
 */
#ifndef OEE_CLIENT_OEECTL_H
#define OEE_CLIENT_OEECTL_H

#include <getopt.h>
#include <stdint.h>

#include <jansson.h>

#include "oee/v1/orchestrator.grpc-client.h"

#define OEECTL_EXIT_USAGE 64    /* bad command line (sysexits EX_USAGE) */
#define OEECTL_EXIT_NOINPUT 66  /* input file cannot be opened (EX_NOINPUT) */
#define OEECTL_EXIT_SOFTWARE 70 /* local failure: out of memory... (EX_SOFTWARE) */

#define OEECTL_DEFAULT_ADDR "127.0.0.1:50051"
#define OEECTL_DEFAULT_TIMEOUT_S 10.0

/* State shared by every command: global options and the lazy channel. */
typedef struct oeectl_ctx {
  const char *addr;      /* borrowed from argv or the environment */
  int json;              /* 1: print JSON instead of tables */
  double timeout_s;      /* deadline of unary calls in seconds; 0: none */
  oee_rpc_channel *chan; /* created by oeectl_channel(), owned here */
  /* TLS files and the token (paths borrowed from argv; the token read from
   * --token-file or $OEE_TOKEN by oeectl_conn_opts, owned here). */
  oee_rpc_channel_options conn;
  const char *token_file;
  char *token;
} oeectl_ctx;

/* A (sub)command: name (words after "oeectl"), one-line summary, usage text and handler. The
 * handler receives argv with argv[0] = the command name and returns the exit
 * code. */
typedef struct oeectl_cmd {
  const char *name;
  const char *summary;
  const char *usage; /* full --help text, ends with '\n' */
  int (*run)(oeectl_ctx *ctx, int argc, char **argv);
} oeectl_cmd;

/* Global options accepted by every command, spliced into each command's
 * getopt_long table (their vals are >= 0x100 to stay clear of short ones). */
enum {
  OPT_ADDR = 0x100,
  OPT_JSON,
  OPT_TIMEOUT,
  OPT_HELP,
  OPT_TLS_CA,
  OPT_TLS_CERT,
  OPT_TLS_KEY,
  OPT_TLS_NAME,
  OPT_TOKEN_FILE,
  OPT_CMD_BASE = 0x200
};
#define OEECTL_GLOBAL_OPTIONS                                                                   \
  {"addr", required_argument, NULL, OPT_ADDR}, {"json", no_argument, NULL, OPT_JSON},           \
      {"timeout", required_argument, NULL, OPT_TIMEOUT}, {"help", no_argument, NULL, OPT_HELP}, \
      {"tls-ca", required_argument, NULL, OPT_TLS_CA},                                          \
      {"tls-cert", required_argument, NULL, OPT_TLS_CERT},                                      \
      {"tls-key", required_argument, NULL, OPT_TLS_KEY},                                        \
      {"tls-server-name", required_argument, NULL, OPT_TLS_NAME},                               \
      {"token-file", required_argument, NULL, OPT_TOKEN_FILE}, {                                \
    NULL, 0, NULL, 0                                                                            \
  }

/* ---- oeectl.c ---- */

/* Handles a global option or OPT_HELP/'?' inside a command's getopt loop.
 * Returns -1 if parsing continues, else the exit code to return now (0 after
 * --help, OEECTL_EXIT_USAGE after a usage error, printed). */
int oeectl_global_opt(oeectl_ctx *ctx, const oeectl_cmd *cmd, int opt, const char *arg);
/* A command's own option: returns -1 to continue parsing, else an exit code
 * (after printing why). args is the command's argument struct. */
typedef int (*oeectl_opt_fn)(void *args, const oeectl_cmd *cmd, int opt, const char *arg);
/* getopt_long loop over argv with opts (which must end with
 * OEECTL_GLOBAL_OPTIONS): global options go to oeectl_global_opt, the others
 * to fn (may be NULL when there are none). Returns -1 when every option was
 * read (positionals are then argv[optind..argc-1]), else the exit code. */
int oeectl_parse_opts(oeectl_ctx *ctx, const oeectl_cmd *cmd, const struct option *opts, int argc,
                      char **argv, oeectl_opt_fn fn, void *args);
/* Checks that exactly `n` positional arguments remain; else usage error. */
int oeectl_want_args(const oeectl_cmd *cmd, int argc, char **argv, int n);
/* Prints "oeectl: <cmd>: <msg>" and a hint to stderr; returns EXIT_USAGE. */
int oeectl_usage_error(const oeectl_cmd *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Runs the command of the NULL-terminated table whose name (its last word:
 * "pipeline submit" answers to "submit") is argv[0]; usage error if none. */
int oeectl_dispatch(oeectl_ctx *ctx, const oeectl_cmd *parent, const oeectl_cmd *const *table,
                    int argc, char **argv);

/* ---- oeectl_template.c: the task flags of submit and schedule create ---- */

/* Option values of the task flags. A command that takes them starts its own
 * options at OPT_TPL_END. */
enum {
  OPT_TPL_NAME = OPT_CMD_BASE,
  OPT_TPL_TYPE,
  OPT_TPL_PRIORITY,
  OPT_TPL_CTX,
  OPT_TPL_MAX_ATTEMPTS,
  OPT_TPL_BACKOFF,
  OPT_TPL_MAX_BACKOFF,
  OPT_TPL_TIMEOUT,
  OPT_TPL_RUN_AT,
  OPT_TPL_KEY,
  OPT_TPL_AFTER,
  OPT_TPL_END
};
/* The flags every task request takes (--name ... --timeout), for a
 * getopt_long table; --run-at, --key and --after are listed by the commands
 * that accept them. They must come before OEECTL_GLOBAL_OPTIONS so that
 * --timeout after the command is the task's (getopt_long takes the first
 * exact match). */
#define OEECTL_TEMPLATE_OPTIONS                                        \
  {"name", required_argument, NULL, OPT_TPL_NAME},                     \
      {"type", required_argument, NULL, OPT_TPL_TYPE},                 \
      {"priority", required_argument, NULL, OPT_TPL_PRIORITY},         \
      {"ctx", required_argument, NULL, OPT_TPL_CTX},                   \
      {"max-attempts", required_argument, NULL, OPT_TPL_MAX_ATTEMPTS}, \
      {"backoff", required_argument, NULL, OPT_TPL_BACKOFF},           \
      {"max-backoff", required_argument, NULL, OPT_TPL_MAX_BACKOFF}, { \
    "timeout", required_argument, NULL, OPT_TPL_TIMEOUT                \
  }

/* A SubmitTaskRequest being filled from the command line. Its strings are
 * borrowed from argv, except the context keys (owned). req.run_at points
 * into the struct once given, so it must not move after parsing. */
typedef struct oeectl_template {
  Oee__V1__SubmitTaskRequest req;
  Oee__V1__SubmitTaskRequest__ContextEntry *entries; /* capacity argc */
  Google__Protobuf__Timestamp run_at;                /* req.run_at points here once given */
  int have_name, have_type; /* options seen; empty values are the server's to refuse */
} oeectl_template;

/* Sizes the arrays for at most argc flags. Returns -1 to go on, or
 * OEECTL_EXIT_SOFTWARE (printed) when out of memory; free it either way. */
int oeectl_template_init(oeectl_template *t, int argc);
/* Handles one OPT_TPL_* option: -1 to go on, else an exit code (printed). */
int oeectl_template_opt(oeectl_template *t, const oeectl_cmd *cmd, int opt, const char *arg);
/* Usage error unless --name and --type were given; else -1. */
int oeectl_template_check(const oeectl_template *t, const oeectl_cmd *cmd);
void oeectl_template_free(oeectl_template *t);

/* ---- oeectl_util.c ---- */

/* The channel to ctx->addr, created on first use; NULL on failure. */
oee_rpc_channel *oeectl_channel(oeectl_ctx *ctx);
/* The channel settings (TLS, token) of the global options, reading the
 * token file on first use; NULL after printing why (exit code 70 then). */
const oee_rpc_channel_options *oeectl_conn_opts(oeectl_ctx *ctx);
/* Deadline for a unary call in ms (0: none). */
int64_t oeectl_deadline_ms(const oeectl_ctx *ctx);
/* "INVALID_ARGUMENT" for 3; "CODE_<n>" (static buffer) if unknown. */
const char *oeectl_code_name(int code);
/* Prints "oeectl: <CODE_NAME>: <message>" for a failed call and frees st;
 * returns code. */
int oeectl_call_failed(int code, oee_rpc_status *st);
/* Prints "oeectl: <CODE_NAME>: <message>"; returns code. */
int oeectl_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Strict decimal int in [lo, hi]; 0 on success, -1 otherwise. */
int oeectl_parse_int(const char *s, long lo, long hi, int *out);
/* Strict finite double; 0 on success, -1 otherwise. */
int oeectl_parse_double(const char *s, double *out);
/* The same, >= 0 only. */
int oeectl_parse_nonneg(const char *s, double *out);
/* Task status from "done", "DONE" or "TASK_STATUS_DONE" (any case). */
int oeectl_parse_status(const char *s, Oee__V1__TaskStatus *out);
/* Pipeline strategy from "LOCAL_FAST_PRECISE" or "local-fast-precise". */
int oeectl_parse_strategy(const char *s, Oee__V1__PipelineStrategy *out);
/* Schedule overlap from "skip", "ALLOW" or "SCHEDULE_OVERLAP_SKIP" (any case). */
int oeectl_parse_overlap(const char *s, Oee__V1__ScheduleOverlap *out);
/* Enum names: "TASK_STATUS_DONE", "LOCAL_FAST_PRECISE", ... (never NULL). */
const char *oeectl_status_name(Oee__V1__TaskStatus s);
const char *oeectl_strategy_name(Oee__V1__PipelineStrategy s);
const char *oeectl_stage_status_name(Oee__V1__StageStatus s);
const char *oeectl_overlap_name(Oee__V1__ScheduleOverlap o);
/* Short forms without the prefix: "DONE", "SKIP". */
const char *oeectl_status_short(Oee__V1__TaskStatus s);
const char *oeectl_overlap_short(Oee__V1__ScheduleOverlap o);
/* A time given as RFC 3339 ("2026-01-02T03:04:05Z", any offset, up to
 * nanoseconds) or relative to now ("+30s", "+5m", "+2h", "+1d"; decimals
 * allowed) into *out; 0, or -1 when s is neither. Years 0000..9999 parse;
 * the server judges the range. */
int oeectl_parse_time(const char *s, Google__Protobuf__Timestamp *out);
/* RFC 3339 UTC ("2026-01-02T03:04:05.123Z") into buf; "" if ts is NULL. */
const char *oeectl_format_time(const Google__Protobuf__Timestamp *ts, char *buf, size_t len);
/* The same to the second ("2026-01-02T03:04:05Z"), for table cells: "-" (a
 * static string, not buf) if ts is NULL. */
const char *oeectl_format_time_cell(const Google__Protobuf__Timestamp *ts, char *buf, size_t len);
/* One-line, at most max display bytes ("..." appended when cut) into buf. */
const char *oeectl_clip(const char *s, size_t max, char *buf, size_t len);
/* Prints a JSON value on one line to stdout; returns 0 or EXIT_SOFTWARE.
 * Steals the reference to v. */
int oeectl_print_json(json_t *v);

/* ---- oeectl_json.c: proto3 JSON mapping (camelCase, enums by name,
 * Timestamps as RFC 3339, 64-bit integers as strings, default values
 * included, unset messages omitted). Each returns a new reference. ---- */
json_t *oeectl_json_task(const Oee__V1__Task *t);
json_t *oeectl_json_queue(const Oee__V1__QueueStatus *q);
json_t *oeectl_json_system(const Oee__V1__SystemStatus *s);
json_t *oeectl_json_pipeline(const Oee__V1__PipelineResult *p);
json_t *oeectl_json_event(const Oee__V1__TaskEvent *e);
json_t *oeectl_json_schedule(const Oee__V1__Schedule *s);

/* ---- command groups (oeectl_tasks.c, oeectl_status.c,
 * oeectl_pipeline.c, oeectl_schedule.c, oeectl_worker.c, oeectl_top.c) ---- */
extern const oeectl_cmd oeectl_cmd_submit, oeectl_cmd_submit_batch, oeectl_cmd_get, oeectl_cmd_list,
    oeectl_cmd_cancel, oeectl_cmd_retry, oeectl_cmd_clear, oeectl_cmd_status, oeectl_cmd_watch,
    oeectl_cmd_health, oeectl_cmd_pipeline, oeectl_cmd_schedule, oeectl_cmd_worker, oeectl_cmd_top;

/* Prints a submit reply: the id, or with --json the task. Returns 0 or an
 * exit code. */
int oeectl_print_submitted(const oeectl_ctx *ctx, const char *task_id, const Oee__V1__Task *task);

#endif /* OEE_CLIENT_OEECTL_H */
