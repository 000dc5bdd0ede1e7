/*
 * oeectl.c - command-line client of oee.v1.OrchestratorService.
 *
 * main() reads the global options that come before the command, then looks
 * the command up in `commands` and hands it the rest of argv. Every command
 * parses its own options with getopt_long; the global ones (--addr, --json,
 * --timeout, --help) are accepted there too, so they may follow the command.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/oeectl.h"
#include "rpc/pem.h"

static const oeectl_cmd *const commands[] = {
    &oeectl_cmd_submit,   &oeectl_cmd_submit_batch, &oeectl_cmd_get,
    &oeectl_cmd_list,     &oeectl_cmd_cancel,       &oeectl_cmd_retry,
    &oeectl_cmd_status,   &oeectl_cmd_top,          &oeectl_cmd_watch,
    &oeectl_cmd_pipeline, &oeectl_cmd_schedule,     &oeectl_cmd_clear,
    &oeectl_cmd_health,   &oeectl_cmd_worker,       NULL,
};

static const oeectl_cmd root = {"oeectl", "", "usage: oeectl [GLOBAL OPTIONS] COMMAND [ARGS]\n",
                                NULL};

static void print_main_help(FILE *out) {
  fputs(
      "usage: oeectl [GLOBAL OPTIONS] COMMAND [OPTIONS] [ARGS]\n"
      "\nClient of the OEE task orchestrator (oee.v1.OrchestratorService).\n"
      "\nCommands:\n",
      out);
  for (const oeectl_cmd *const *c = commands; *c != NULL; c++)
    fprintf(out, "  %-13s %s\n", (*c)->name, (*c)->summary);
  fputs(
      "\nGlobal options (before or after the command):\n"
      "  --addr HOST:PORT   server address (else $OEE_ADDR, else " OEECTL_DEFAULT_ADDR
      ")\n"
      "  --json             machine-readable output: proto3 JSON, one object per line\n"
      "  --timeout SECONDS  deadline of each call (default 10; 0 = none; watch: none)\n"
      "  --tls-ca FILE      connect with TLS, trusting the CA certificates in FILE (PEM)\n"
      "  --tls-cert FILE    client certificate (PEM) for servers that require one (mTLS)\n"
      "  --tls-key FILE     its private key (PEM)\n"
      "  --tls-server-name NAME  the name the server's certificate must carry, when it\n"
      "                     differs from the host in --addr\n"
      "  --token-file FILE  send the token in FILE (else $OEE_TOKEN) as a bearer token\n"
      "  --help             this text; 'oeectl COMMAND --help' for a command\n"
      "\nErrors go to stderr as \"oeectl: <CODE_NAME>: <message>\".\n"
      "Exit codes:\n"
      "  0      success\n"
      "  1-16   the gRPC status code of the failed call: 1 CANCELLED, 2 UNKNOWN,\n"
      "         3 INVALID_ARGUMENT, 4 DEADLINE_EXCEEDED, 5 NOT_FOUND,\n"
      "         6 ALREADY_EXISTS, 8 RESOURCE_EXHAUSTED, 9 FAILED_PRECONDITION,\n"
      "         12 UNIMPLEMENTED, 13 INTERNAL, 14 UNAVAILABLE, ...\n"
      "         (submit-batch: the code of the first failed entry)\n"
      "  64     usage error: unknown command or option, bad option value\n"
      "  66     input file cannot be opened (submit-batch)\n"
      "  70     local failure (out of memory, channel creation)\n"
      "  watch ends 0 when interrupted by SIGINT/SIGTERM; worker ends 0 after one.\n",
      out);
}

/* Length of the synopsis: the usage text up to its first description line
 * (one that starts with two spaces and then a non-space). */
static int synopsis_len(const char *usage) {
  for (const char *p = usage; (p = strchr(p, '\n')) != NULL;) {
    p++;
    if (p[0] == ' ' && p[1] == ' ' && p[2] != ' ') return (int)(p - usage);
  }
  return (int)strlen(usage);
}

int oeectl_usage_error(const oeectl_cmd *cmd, const char *fmt, ...) {
  va_list ap;
  fputs("oeectl: ", stderr);
  if (cmd != &root) fprintf(stderr, "%s: ", cmd->name);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\n%.*s", synopsis_len(cmd->usage), cmd->usage);
  fprintf(stderr, "Try 'oeectl %s%s--help'.\n", cmd != &root ? cmd->name : "",
          cmd != &root ? " " : "");
  return OEECTL_EXIT_USAGE;
}

int oeectl_global_opt(oeectl_ctx *ctx, const oeectl_cmd *cmd, int opt, const char *arg) {
  switch (opt) {
    case OPT_ADDR:
      ctx->addr = arg;
      return -1;
    case OPT_JSON:
      ctx->json = 1;
      return -1;
    case OPT_TIMEOUT:
      if (oeectl_parse_nonneg(arg, &ctx->timeout_s) != 0)
        return oeectl_usage_error(cmd, "--timeout must be a number of seconds >= 0, got \"%s\"",
                                  arg);
      return -1;
    case OPT_TLS_CA:
      ctx->conn.tls_ca_file = arg;
      return -1;
    case OPT_TLS_CERT:
      ctx->conn.tls_cert_file = arg;
      return -1;
    case OPT_TLS_KEY:
      ctx->conn.tls_key_file = arg;
      return -1;
    case OPT_TLS_NAME:
      ctx->conn.tls_server_name = arg;
      return -1;
    case OPT_TOKEN_FILE:
      ctx->token_file = arg;
      return -1;
    case OPT_HELP:
      if (cmd == &root)
        print_main_help(stdout);
      else
        fputs(cmd->usage, stdout);
      return 0;
    default: /* '?' or ':' after getopt printed its own message */
      return oeectl_usage_error(cmd, "invalid option");
  }
}

static int name_matches(const char *name, const char *word) {
  const char *last = strrchr(name, ' ');
  return strcmp(last != NULL ? last + 1 : name, word) == 0;
}

int oeectl_dispatch(oeectl_ctx *ctx, const oeectl_cmd *parent, const oeectl_cmd *const *table,
                    int argc, char **argv) {
  if (argc < 1) return oeectl_usage_error(parent, "missing command");
  for (const oeectl_cmd *const *c = table; *c != NULL; c++) {
    if (!name_matches((*c)->name, argv[0])) continue;
    optind = 0; /* glibc: 0 re-initialises getopt for the new argv */
    return (*c)->run(ctx, argc, argv);
  }
  return oeectl_usage_error(parent, "unknown command \"%s\"", argv[0]);
}

int oeectl_parse_opts(oeectl_ctx *ctx, const oeectl_cmd *cmd, const struct option *opts, int argc,
                      char **argv, oeectl_opt_fn fn, void *args) {
  int opt;
  /* ':' first: a missing argument reports ':' instead of '?'. */
  while ((opt = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
    int rc;
    if (opt == ':') return oeectl_usage_error(cmd, "option %s needs a value", argv[optind - 1]);
    if (opt == '?') return oeectl_usage_error(cmd, "unknown option %s", argv[optind - 1]);
    if (opt >= OPT_CMD_BASE && fn != NULL)
      rc = fn(args, cmd, opt, optarg);
    else
      rc = oeectl_global_opt(ctx, cmd, opt, optarg);
    if (rc >= 0) return rc;
  }
  return -1;
}

int oeectl_want_args(const oeectl_cmd *cmd, int argc, char **argv, int n) {
  int have = argc - optind;
  if (have < n) return oeectl_usage_error(cmd, "missing argument");
  if (have > n) return oeectl_usage_error(cmd, "unexpected argument \"%s\"", argv[optind + n]);
  return -1;
}

/* Parses the global options before the command; returns -1 to go on. */
static int parse_globals(oeectl_ctx *ctx, int argc, char **argv) {
  static const struct option opts[] = {OEECTL_GLOBAL_OPTIONS};
  int opt;
  /* '+': stop at the command name, leaving its options to it. */
  while ((opt = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
    int rc = oeectl_global_opt(ctx, &root, opt, optarg);
    if (rc >= 0) return rc;
  }
  return -1;
}

static int run_command(oeectl_ctx *ctx, int argc, char **argv) {
  if (argc < 1) return oeectl_usage_error(&root, "missing command (see 'oeectl --help')");
  if (strcmp(argv[0], "help") != 0) return oeectl_dispatch(ctx, &root, commands, argc, argv);
  if (argc < 2) {
    print_main_help(stdout);
    return 0;
  }
  char help[] = "--help";
  char *help_argv[] = {argv[1], help, NULL};
  return oeectl_dispatch(ctx, &root, commands, 2, help_argv);
}

int main(int argc, char **argv) {
  const char *env_addr = getenv("OEE_ADDR");
  oeectl_ctx ctx = {
      .addr = env_addr != NULL && env_addr[0] != '\0' ? env_addr : OEECTL_DEFAULT_ADDR,
      .timeout_s = OEECTL_DEFAULT_TIMEOUT_S,
  };
  int rc = parse_globals(&ctx, argc, argv);
  if (rc < 0) rc = run_command(&ctx, argc - optind, argv + optind);
  if (fflush(stdout) != 0 && rc == 0) rc = OEECTL_EXIT_SOFTWARE;
  oee_rpc_channel_destroy(ctx.chan);
  oee_rpc_pem_free(ctx.token); /* wiped: the token is secret */
  return rc;
}
