/*
 * oeectl_batch.c - "submit-batch": JSON lines in, SubmitTasks calls out.
 *
 * Lines are read one at a time and collected into a chunk of at most
 * CHUNK_MAX valid requests; a line that is not a valid entry gets a local
 * INVALID_ARGUMENT result and is not sent. When the chunk is full (or at the
 * end of input) it is sent as one SubmitTasks call and every line of the
 * chunk is printed, in input order, so output lines match input entries.
 * Memory stays bounded by one chunk whatever the input size.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/oeectl.h"

#define CHUNK_MAX 1000 /* requests per SubmitTasks call */

/* One non-blank input line of the current chunk. */
typedef struct entry {
  long line;     /* 1-based line number in the input */
  int req;       /* index into chunk.reqs, or -1 for a local error */
  char *message; /* malloc'd local error message when req == -1 */
} entry;

typedef struct chunk {
  Oee__V1__SubmitTaskRequest reqs[CHUNK_MAX];
  Oee__V1__SubmitTaskRequest *ptrs[CHUNK_MAX];
  json_t *docs[CHUNK_MAX]; /* parsed lines; reqs borrow their strings */
  size_t n_reqs;
  entry entries[CHUNK_MAX * 2]; /* flushed before it can overflow */
  size_t n_entries;
  int first_error; /* code of the first failed entry; 0 while none */
} chunk;

static char *msg_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *msg_printf(const char *fmt, ...) {
  va_list ap;
  char *s = NULL;
  va_start(ap, fmt);
  if (vasprintf(&s, fmt, ap) < 0) s = NULL;
  va_end(ap);
  return s;
}

/* Fills r->context from a JSON object of strings; NULL or an error text. */
static char *set_context(Oee__V1__SubmitTaskRequest *r, json_t *obj) {
  const char *key;
  json_t *v;
  if (!json_is_object(obj)) return msg_printf("\"context\" must be an object");
  size_t n = json_object_size(obj);
  if (n == 0) return NULL;
  /* r->context[0] is the entry array itself: request_clear frees both. */
  Oee__V1__SubmitTaskRequest__ContextEntry *es = calloc(n, sizeof(*es));
  r->context = calloc(n, sizeof(*r->context));
  if (es == NULL || r->context == NULL) {
    free(es);
    free(r->context);
    r->context = NULL;
    return msg_printf("out of memory");
  }
  for (size_t i = 0; i < n; i++) r->context[i] = &es[i];
  json_object_foreach(obj, key, v) {
    if (!json_is_string(v)) return msg_printf("context value of \"%s\" must be a string", key);
    oee__v1__submit_task_request__context_entry__init(&es[r->n_context]);
    es[r->n_context].key = (char *)key;
    es[r->n_context].value = (char *)json_string_value(v);
    r->n_context++;
  }
  return NULL;
}

static char *set_priority(Oee__V1__SubmitTaskRequest *r, json_t *v) {
  json_int_t p = json_integer_value(v);
  if (!json_is_integer(v) || p < INT32_MIN || p > INT32_MAX)
    return msg_printf("\"priority\" must be a 32-bit integer");
  r->priority = (int32_t)p;
  r->priority_present_case = OEE__V1__SUBMIT_TASK_REQUEST__PRIORITY_PRESENT_PRIORITY;
  return NULL;
}

static char *set_string(char **field, const char *key, json_t *v) {
  if (!json_is_string(v)) return msg_printf("\"%s\" must be a string", key);
  *field = (char *)json_string_value(v);
  return NULL;
}

/* Fills r from one object; field names as in the proto or its JSON name. */
static char *set_fields(Oee__V1__SubmitTaskRequest *r, json_t *doc) {
  const char *key;
  json_t *v;
  char *err = NULL;
  if (!json_is_object(doc)) return msg_printf("an entry must be a JSON object");
  json_object_foreach(doc, key, v) {
    if (strcmp(key, "name") == 0)
      err = set_string(&r->name, key, v);
    else if (strcmp(key, "task_type") == 0 || strcmp(key, "taskType") == 0)
      err = set_string(&r->task_type, key, v);
    else if (strcmp(key, "priority") == 0)
      err = set_priority(r, v);
    else if (strcmp(key, "context") == 0)
      err = set_context(r, v);
    else
      err = msg_printf("unknown field \"%s\"", key);
    if (err != NULL) return err;
  }
  return NULL;
}

static void request_clear(Oee__V1__SubmitTaskRequest *r) {
  if (r->context != NULL) free(r->context[0]);
  free(r->context);
  oee__v1__submit_task_request__init(r);
}

/* Parses one line into the next request slot, or records a local error. */
static void add_line(chunk *c, long lineno, const char *line) {
  json_error_t jerr;
  entry *e = &c->entries[c->n_entries++];
  Oee__V1__SubmitTaskRequest *r = &c->reqs[c->n_reqs];
  e->line = lineno;
  e->req = -1;
  json_t *doc = json_loads(line, JSON_REJECT_DUPLICATES, &jerr);
  if (doc == NULL) {
    e->message = msg_printf("invalid JSON: %s", jerr.text);
    return;
  }
  oee__v1__submit_task_request__init(r);
  e->message = set_fields(r, doc);
  if (e->message != NULL) {
    request_clear(r);
    json_decref(doc);
    return;
  }
  c->docs[c->n_reqs] = doc;
  c->ptrs[c->n_reqs] = r;
  e->req = (int)c->n_reqs++;
}

static void print_result(const oeectl_ctx *ctx, const entry *e, int code, const char *msg,
                         const Oee__V1__SubmitTaskResult *res) {
  if (ctx->json) {
    json_t *o = json_pack("{s:I,s:s,s:i,s:s}", "line", (json_int_t)e->line, "taskId",
                          res != NULL ? res->task_id : "", "code", code, "message", msg);
    if (o != NULL && res != NULL && res->task != NULL)
      json_object_set_new(o, "task", oeectl_json_task(res->task));
    oeectl_print_json(o);
  } else if (code == 0) {
    printf("%s\n", res->task_id);
  } else {
    printf("error: line %ld: %s (%d): %s\n", e->line, oeectl_code_name(code), code, msg);
  }
}

/* Prints every entry of the chunk against the call's results. */
static void print_chunk(const oeectl_ctx *ctx, chunk *c, const Oee__V1__SubmitTasksResponse *resp) {
  for (size_t i = 0; i < c->n_entries; i++) {
    const entry *e = &c->entries[i];
    const Oee__V1__SubmitTaskResult *res = e->req >= 0 ? resp->results[e->req] : NULL;
    int code = res != NULL ? res->code : GRPC_STATUS_INVALID_ARGUMENT;
    const char *msg = res != NULL ? res->message : e->message;
    if (code != 0 && c->first_error == 0) c->first_error = code;
    print_result(ctx, e, code, msg != NULL ? msg : "out of memory", res);
  }
}

static void chunk_reset(chunk *c) {
  for (size_t i = 0; i < c->n_entries; i++) free(c->entries[i].message);
  for (size_t i = 0; i < c->n_reqs; i++) {
    request_clear(&c->reqs[i]);
    json_decref(c->docs[i]);
  }
  c->n_entries = c->n_reqs = 0;
}

/* Sends the chunk's requests (if any) and prints its entries. Returns -1 to
 * go on, or the exit code of a failed call. */
static int chunk_flush(oeectl_ctx *ctx, chunk *c) {
  Oee__V1__SubmitTasksRequest req = OEE__V1__SUBMIT_TASKS_REQUEST__INIT;
  Oee__V1__SubmitTasksResponse *resp = NULL;
  oee_rpc_status st = {0};
  req.n_requests = c->n_reqs;
  req.requests = c->ptrs;
  if (c->n_reqs > 0) {
    if (oeectl_channel(ctx) == NULL) return OEECTL_EXIT_SOFTWARE;
    int code = oee_v1_orchestrator_service_submit_tasks(ctx->chan, &req, &resp,
                                                        oeectl_deadline_ms(ctx), &st);
    if (code != GRPC_STATUS_OK) return oeectl_call_failed(code, &st);
    if (resp->n_results != c->n_reqs) {
      oee__v1__submit_tasks_response__free_unpacked(resp, NULL);
      return oeectl_fail(GRPC_STATUS_INTERNAL, "server sent %zu results for %zu requests",
                         resp->n_results, c->n_reqs);
    }
  }
  print_chunk(ctx, c, resp);
  if (resp != NULL) oee__v1__submit_tasks_response__free_unpacked(resp, NULL);
  chunk_reset(c);
  return -1;
}

static int is_blank(const char *s) { return s[strspn(s, " \t\r\n")] == '\0'; }

/* Reads all of `in`, flushing full chunks. Returns the exit code. */
static int batch_read(oeectl_ctx *ctx, FILE *in, chunk *c) {
  char *line = NULL;
  size_t cap = 0;
  long lineno = 0;
  int rc = -1;
  while (rc < 0 && getline(&line, &cap, in) != -1) {
    lineno++;
    if (is_blank(line)) continue;
    add_line(c, lineno, line);
    if (c->n_reqs == CHUNK_MAX || c->n_entries == CHUNK_MAX * 2) rc = chunk_flush(ctx, c);
  }
  if (rc < 0 && ferror(in))
    rc = oeectl_fail(OEECTL_EXIT_NOINPUT, "read error: %s", strerror(errno));
  if (rc < 0) rc = chunk_flush(ctx, c);
  free(line);
  if (rc < 0) rc = c->first_error;
  chunk_reset(c);
  return rc;
}

static int batch_run(oeectl_ctx *ctx, int argc, char **argv) {
  static const struct option opts[] = {OEECTL_GLOBAL_OPTIONS};
  int rc = oeectl_parse_opts(ctx, &oeectl_cmd_submit_batch, opts, argc, argv, NULL, NULL);
  if (rc < 0 && argc - optind > 1) rc = oeectl_want_args(&oeectl_cmd_submit_batch, argc, argv, 1);
  if (rc >= 0) return rc;
  const char *path = optind < argc ? argv[optind] : "-";
  FILE *in = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
  if (in == NULL) return oeectl_fail(OEECTL_EXIT_NOINPUT, "%s: %s", path, strerror(errno));
  chunk *c = calloc(1, sizeof(*c));
  if (c == NULL)
    rc = oeectl_fail(OEECTL_EXIT_SOFTWARE, "out of memory");
  else
    rc = batch_read(ctx, in, c);
  free(c);
  if (in != stdin) fclose(in);
  return rc;
}

const oeectl_cmd oeectl_cmd_submit_batch = {
    "submit-batch", "queue tasks from JSON lines (SubmitTasks)",
    "usage: oeectl submit-batch [FILE|-]\n"
    "  Reads one JSON object per line from FILE (default: standard input):\n"
    "    {\"name\": \"n\", \"task_type\": \"echo\", \"priority\": 5, \"context\": {\"message\": "
    "\"hi\"}}\n"
    "  (\"taskType\" is accepted too; priority and context are optional; blank lines are\n"
    "  skipped) and queues them with SubmitTasks, at most 1000 per call.\n"
    "  Prints one line per entry, in input order: the task id, or\n"
    "    error: line N: CODE_NAME (CODE): message\n"
    "  --json: one object per entry: {\"line\", \"taskId\", \"code\", \"message\", \"task\"}.\n"
    "  A line that is not a valid entry fails locally with INVALID_ARGUMENT.\n"
    "  Exit: 0 if every entry was queued, else the code of the first failed entry.\n",
    batch_run};
