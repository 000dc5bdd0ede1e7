/*
 * oeectl_status.c - the server-wide commands: status, watch, health.
 *
 * DESIGN (watch): the main thread blocks in oee_rpc_reader_next() and prints
 * each event as it arrives. SIGINT and SIGTERM are blocked in every thread
 * before the channel (and so gRPC's own threads) exists; one helper thread
 * takes them with sigwait() and cancels the reader, which makes the blocked
 * next() return promptly. The helper is stopped with SIGUSR1 (also blocked,
 * so it only ever reaches sigwait) before the reader is closed, so the
 * reader outlives every cancel.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/oeectl.h"
#include "grpc/health/v1/health.grpc-client.h"

/* ---- status ---- */

static int by_status(const Oee__V1__QueueStatus *q, const char *key) {
  for (size_t i = 0; q != NULL && i < q->n_tasks_by_status; i++)
    if (strcmp(q->tasks_by_status[i]->key, key) == 0) return q->tasks_by_status[i]->value;
  return 0;
}

static void print_workers(const Oee__V1__SystemStatus *s) {
  printf("\n%-6s  %-4s  %9s  %6s  %s\n", "WORKER", "BUSY", "COMPLETED", "FAILED", "CURRENT TASK");
  for (size_t i = 0; i < s->n_workers; i++) {
    const Oee__V1__WorkerStatus *w = s->workers[i];
    printf("%-6d  %-4s  %9d  %6d  %s\n", w->worker_id, w->busy ? "yes" : "no", w->tasks_completed,
           w->tasks_failed, w->current_task_id[0] ? w->current_task_id : "-");
  }
}

/* One row per quota (type_limits), if any: "-" for no limit. */
static void print_type_limits(const Oee__V1__QueueStatus *q) {
  if (q == NULL || q->n_type_limits == 0) return;
  printf("\n%-20s  %7s  %11s  %14s\n", "QUOTA TYPE", "RUNNING", "MAX_RUNNING", "MAX_PER_SECOND");
  for (size_t i = 0; i < q->n_type_limits; i++) {
    const Oee__V1__TypeLimit *l = q->type_limits[i];
    char max[16] = "-", rate[24] = "-";
    if (l->max_running > 0) snprintf(max, sizeof(max), "%d", l->max_running);
    if (l->max_per_second > 0) snprintf(rate, sizeof(rate), "%g", l->max_per_second);
    printf("%-20s  %7d  %11s  %14s\n", l->task_type, l->running, max, rate);
  }
}

/* The remote workers' types as "a,b" into buf. */
static const char *join_types(const Oee__V1__RemoteWorker *r, char *buf, size_t len) {
  size_t off = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < r->n_task_types && off < len; i++)
    off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? "," : "", r->task_types[i]);
  return buf;
}

#define REMOTE_FORMAT "%-24s  %-21s  %-16s  %-20s  %6s  %6s  %6s\n"

/* One row per remote worker (WorkerService) the server remembers. */
static void print_remote_workers(const Oee__V1__SystemStatus *s) {
  printf("\n" REMOTE_FORMAT, "REMOTE WORKER", "PEER", "TYPES", "LAST SEEN", "ACTIVE", "DONE",
         "FAILED");
  for (size_t i = 0; i < s->n_remote_workers; i++) {
    const Oee__V1__RemoteWorker *r = s->remote_workers[i];
    char id[32], peer[32], types[256], tc[24], seen[64], act[16], done[24], failed[24];
    snprintf(act, sizeof act, "%d", r->active_leases);
    snprintf(done, sizeof done, "%lld", (long long)r->tasks_completed);
    snprintf(failed, sizeof failed, "%lld", (long long)r->tasks_failed);
    printf(REMOTE_FORMAT, oeectl_clip(r->worker_id, 24, id, sizeof id),
           oeectl_clip(r->peer, 21, peer, sizeof peer),
           oeectl_clip(join_types(r, types, sizeof types), 16, tc, sizeof tc),
           oeectl_format_time_cell(r->last_seen, seen, sizeof seen), act, done, failed);
  }
}

static void print_system(const Oee__V1__SystemStatus *s) {
  const Oee__V1__QueueStatus *q = s->queue;
  printf("%-9s %s\n", "server:", s->running ? "running" : "stopping");
  printf("%-9s %s\n", "version:", s->version);
  printf("%-9s %.1f s\n", "uptime:", s->uptime_seconds);
  printf("%-9s %d\n", "workers:", s->num_workers);
  printf("%-9s %d total, %d scheduled, %d queued, %d running, %d done, %d error, %d cancelled\n",
         "tasks:", q != NULL ? q->total_tasks : 0, by_status(q, "scheduled"),
         by_status(q, "queued"), by_status(q, "running"), by_status(q, "done"),
         by_status(q, "error"), by_status(q, "cancelled"));
  print_type_limits(q);
  print_workers(s);
  print_remote_workers(s);
}

static int status_run(oeectl_ctx *ctx, int argc, char **argv) {
  static const struct option opts[] = {OEECTL_GLOBAL_OPTIONS};
  int rc = oeectl_parse_opts(ctx, &oeectl_cmd_status, opts, argc, argv, NULL, NULL);
  if (rc < 0) rc = oeectl_want_args(&oeectl_cmd_status, argc, argv, 0);
  if (rc >= 0) return rc;
  Oee__V1__GetSystemStatusRequest req = OEE__V1__GET_SYSTEM_STATUS_REQUEST__INIT;
  Oee__V1__SystemStatus *s = NULL;
  oee_rpc_status st = {0};
  if (oeectl_channel(ctx) == NULL) return OEECTL_EXIT_SOFTWARE;
  int code = oee_v1_orchestrator_service_get_system_status(ctx->chan, &req, &s,
                                                           oeectl_deadline_ms(ctx), &st);
  if (code != GRPC_STATUS_OK) return oeectl_call_failed(code, &st);
  rc = 0;
  if (ctx->json)
    rc = oeectl_print_json(oeectl_json_system(s));
  else
    print_system(s);
  oee__v1__system_status__free_unpacked(s, NULL);
  return rc;
}

const oeectl_cmd oeectl_cmd_status = {
    "status", "server, queue and worker status",
    "usage: oeectl status\n"
    "  Shows whether the server runs, its version and uptime, task counts by status,\n"
    "  one row per quota (type_limits: running now and the limits), one row per\n"
    "  worker and one per remote worker (WorkerService: id, address, types, last\n"
    "  call, leases held, tasks done and failed) (--json: the SystemStatus message).\n",
    status_run};

/* ---- watch ---- */

typedef struct watch_args {
  Oee__V1__WatchTasksRequest req; /* arrays have capacity argc */
} watch_args;

enum { O_ID = OPT_CMD_BASE, O_TYPE, O_STATUS, O_SNAPSHOT, O_SCHEDULE };

static int watch_opt(void *p, const oeectl_cmd *cmd, int opt, const char *arg) {
  Oee__V1__WatchTasksRequest *r = &((watch_args *)p)->req;
  if (opt == O_ID) r->task_ids[r->n_task_ids++] = (char *)arg;
  if (opt == O_TYPE) r->task_types[r->n_task_types++] = (char *)arg;
  if (opt == O_SCHEDULE) r->schedule_ids[r->n_schedule_ids++] = (char *)arg;
  if (opt == O_SNAPSHOT) r->include_snapshot = 1;
  if (opt == O_STATUS && oeectl_parse_status(arg, &r->statuses[r->n_statuses++]) != 0)
    return oeectl_usage_error(
        cmd, "unknown status \"%s\" (scheduled, queued, running, done, error, cancelled)", arg);
  return -1;
}

static void print_event(const Oee__V1__TaskEvent *e) {
  char when[64], name[24], out[64];
  const Oee__V1__Task *t = e->task;
  if (t == NULL) return;
  const char *res = t->error_message[0] != '\0' ? t->error_message : t->result;
  printf("%llu  %s  %s  %-9s  %-10s  %s  %s\n", (unsigned long long)e->sequence,
         oeectl_format_time(e->time, when, sizeof(when)), t->id, oeectl_status_short(t->status),
         t->task_type, oeectl_clip(t->name, 20, name, sizeof(name)),
         oeectl_clip(res, 60, out, sizeof(out)));
}

/* Signal helper: see DESIGN. */
typedef struct sig_helper {
  pthread_t thread;
  sigset_t set; /* SIGINT, SIGTERM, SIGUSR1 */
  oee_rpc_reader *reader;
  atomic_int interrupted; /* 1 once SIGINT/SIGTERM cancelled the reader */
} sig_helper;

static void *sig_main(void *p) {
  sig_helper *h = p;
  int sig = 0;
  while (sigwait(&h->set, &sig) == 0 && sig != SIGUSR1) {
    atomic_store(&h->interrupted, 1);
    oee_rpc_reader_cancel(h->reader);
  }
  return NULL;
}

/* Blocks the signals in the calling thread (and all threads made later). */
static void sig_block(sig_helper *h) {
  sigemptyset(&h->set);
  sigaddset(&h->set, SIGINT);
  sigaddset(&h->set, SIGTERM);
  sigaddset(&h->set, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &h->set, NULL);
}

/* Reads and prints events until the stream ends. Returns the exit code. */
static int watch_loop(oeectl_ctx *ctx, sig_helper *h) {
  Oee__V1__TaskEvent *e = NULL;
  oee_rpc_status st = {0};
  int n;
  while ((n = oee_v1_orchestrator_service_watch_tasks_next(h->reader, &e, &st)) == 1) {
    if (ctx->json)
      oeectl_print_json(oeectl_json_event(e));
    else
      print_event(e);
    fflush(stdout);
    oee__v1__task_event__free_unpacked(e, NULL);
  }
  if (n < 0) return oeectl_fail(OEECTL_EXIT_SOFTWARE, "stream read failed (%d)", n);
  if (atomic_load(&h->interrupted) || st.code == GRPC_STATUS_OK) {
    oee_rpc_status_free(&st);
    return 0;
  }
  return oeectl_call_failed(st.code, &st);
}

static int watch_stream(oeectl_ctx *ctx, const Oee__V1__WatchTasksRequest *req) {
  sig_helper h = {.reader = NULL};
  sig_block(&h); /* before the channel: gRPC's threads inherit the mask */
  if (oeectl_channel(ctx) == NULL) return OEECTL_EXIT_SOFTWARE;
  /* No deadline: a watch runs until interrupted or the stream ends. */
  if (oee_v1_orchestrator_service_watch_tasks_start(ctx->chan, req, 0, &h.reader) != 0)
    return oeectl_fail(OEECTL_EXIT_SOFTWARE, "cannot start the WatchTasks call");
  if (pthread_create(&h.thread, NULL, sig_main, &h) != 0) abort();
  int rc = watch_loop(ctx, &h);
  pthread_kill(h.thread, SIGUSR1);
  pthread_join(h.thread, NULL);
  oee_v1_orchestrator_service_watch_tasks_close(h.reader);
  return rc;
}

static int watch_run(oeectl_ctx *ctx, int argc, char **argv) {
  static const struct option opts[] = {{"id", required_argument, NULL, O_ID},
                                       {"type", required_argument, NULL, O_TYPE},
                                       {"status", required_argument, NULL, O_STATUS},
                                       {"snapshot", no_argument, NULL, O_SNAPSHOT},
                                       {"schedule", required_argument, NULL, O_SCHEDULE},
                                       OEECTL_GLOBAL_OPTIONS};
  watch_args a;
  oee__v1__watch_tasks_request__init(&a.req);
  a.req.task_ids = calloc((size_t)argc, sizeof(char *));
  a.req.task_types = calloc((size_t)argc, sizeof(char *));
  a.req.statuses = calloc((size_t)argc, sizeof(*a.req.statuses));
  a.req.schedule_ids = calloc((size_t)argc, sizeof(char *));
  int rc = -1;
  if (!a.req.task_ids || !a.req.task_types || !a.req.statuses || !a.req.schedule_ids)
    rc = oeectl_fail(OEECTL_EXIT_SOFTWARE, "out of memory");
  if (rc < 0) rc = oeectl_parse_opts(ctx, &oeectl_cmd_watch, opts, argc, argv, watch_opt, &a);
  if (rc < 0) rc = oeectl_want_args(&oeectl_cmd_watch, argc, argv, 0);
  if (rc < 0) rc = watch_stream(ctx, &a.req);
  free(a.req.task_ids);
  free(a.req.task_types);
  free(a.req.statuses);
  free(a.req.schedule_ids);
  return rc;
}

const oeectl_cmd oeectl_cmd_watch = {
    "watch", "stream task events until Ctrl-C",
    "usage: oeectl watch [--id ID ...] [--type T ...] [--status S ...] [--schedule ID ...]\n"
    "                    [--snapshot]\n"
    "  Prints one line per task event (sequence, time, id, status, type, name,\n"
    "  result or error) until interrupted or until the server ends the stream.\n"
    "  Repeated filters of one kind are alternatives; empty filters match all.\n"
    "  --schedule  only the tasks that schedule ID submitted\n"
    "  --snapshot  first one event per matching existing task\n"
    "  --json: one TaskEvent object per line (sequence is a string: uint64).\n"
    "  No deadline applies. Exit: 0 on SIGINT/SIGTERM or a clean end, else the\n"
    "  stream's final status code (e.g. 14 UNAVAILABLE when the server stops).\n",
    watch_run};

/* ---- health ---- */

static const char *serving_name(Grpc__Health__V1__HealthCheckResponse__ServingStatus st) {
  switch (st) {
    case GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING:
      return "SERVING";
    case GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING:
      return "NOT_SERVING";
    case GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN:
      return "SERVICE_UNKNOWN";
    default:
      return "UNKNOWN";
  }
}

static int health_run(oeectl_ctx *ctx, int argc, char **argv) {
  static const struct option opts[] = {OEECTL_GLOBAL_OPTIONS};
  int rc = oeectl_parse_opts(ctx, &oeectl_cmd_health, opts, argc, argv, NULL, NULL);
  if (rc < 0 && argc - optind > 1) rc = oeectl_want_args(&oeectl_cmd_health, argc, argv, 1);
  if (rc >= 0) return rc;
  Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  req.service = optind < argc ? argv[optind] : "";
  Grpc__Health__V1__HealthCheckResponse *resp = NULL;
  oee_rpc_status st = {0};
  if (oeectl_channel(ctx) == NULL) return OEECTL_EXIT_SOFTWARE;
  int code = grpc_health_v1_health_check(ctx->chan, &req, &resp, oeectl_deadline_ms(ctx), &st);
  if (code != GRPC_STATUS_OK) return oeectl_call_failed(code, &st);
  const char *name = serving_name(resp->status);
  if (ctx->json) {
    oeectl_print_json(json_pack("{s:s}", "status", name));
  } else {
    printf("%s\n", name);
  }
  int serving = resp->status == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
  grpc__health__v1__health_check_response__free_unpacked(resp, NULL);
  /* Only SERVING is healthy; anything else reads as UNAVAILABLE. */
  return serving ? 0 : GRPC_STATUS_UNAVAILABLE;
}

const oeectl_cmd oeectl_cmd_health = {
    "health", "check grpc.health.v1 (exit 0 only when SERVING)",
    "usage: oeectl health [SERVICE]\n"
    "  Asks grpc.health.v1.Health/Check for SERVICE (default \"\": the whole\n"
    "  server) and prints SERVING, NOT_SERVING or SERVICE_UNKNOWN.\n"
    "  Exit: 0 when SERVING, 14 UNAVAILABLE when not serving, 5 NOT_FOUND for an\n"
    "  unknown service, or the call's status code. Fit for container health checks.\n",
    health_run};
