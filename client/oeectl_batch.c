/*
 * oeectl_batch.c - "submit-batch": JSON lines in, SubmitTasks calls out.
 *
 * Lines are read one at a time and collected into a chunk of at most
 * CHUNK_MAX valid requests; a line that is not a valid entry gets a local
 * INVALID_ARGUMENT result and is not sent. When the chunk is full (or at the
 * end of input) it is sent as one SubmitTasks call and every line of the
 * chunk is printed, in input order, so output lines match input entries.
 *
 * "#<index>" in depends_on numbers the entries of the whole input, while
 * the server's numbers the requests of one call: a reference to an entry of
 * the same chunk becomes that entry's request index, one to an entry of an
 * earlier chunk becomes its task id, and one to an entry that failed
 * locally or in an earlier call fails its entry locally with
 * FAILED_PRECONDITION, as the server would; the server's own such refusal
 * is printed in the input's numbering. So memory is one chunk plus 16
 * bytes per entry read (the task ids of earlier chunks).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/oeectl.h"

#define CHUNK_MAX 1000 /* requests per SubmitTasks call */
#define UUID_TEXT 36   /* canonical UUID text, without the NUL */

/* One non-blank input line of the current chunk. */
typedef struct entry {
  long line;     /* 1-based line number in the input */
  long number;   /* 0-based entry number in the input: what "#<index>" names */
  int req;       /* index into chunk.reqs, or -1 for a local error */
  int code;      /* the local error's code (INVALID_ARGUMENT unless said) */
  char *message; /* malloc'd local error message when req == -1 */
  long *targets; /* per depends_on entry: the entry of this chunk it names
                  * ("#<index>" sent as a request index), else -1; or NULL */
} entry;

typedef struct chunk {
  Oee__V1__SubmitTaskRequest reqs[CHUNK_MAX];
  Oee__V1__SubmitTaskRequest *ptrs[CHUNK_MAX];
  Google__Protobuf__Timestamp run_ats[CHUNK_MAX]; /* reqs[i].run_at when given */
  json_t *docs[CHUNK_MAX];                        /* parsed lines; reqs borrow their strings */
  size_t n_reqs;
  entry entries[CHUNK_MAX * 2]; /* flushed before it can overflow */
  size_t n_entries;
  long base; /* entry number of entries[0] */
  long next; /* entry number of the next entry */
  /* The task of every entry of the chunks sent before, by entry number: a
   * UUID's 16 bytes, all zero for an entry that was refused. */
  unsigned char (*ids)[16];
  size_t cap_ids;
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

/* ---- task ids of earlier chunks ---- */

static int hex(int ch) {
  return ch >= '0' && ch <= '9'   ? ch - '0'
         : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
         : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                  : -1;
}

/* A canonical UUID's 16 bytes; all zero when s is not one. */
static void uuid_bytes(const char *s, unsigned char out[16]) {
  memset(out, 0, 16);
  if (s == NULL || strlen(s) != UUID_TEXT) return;
  for (int i = 0, b = 0; i < UUID_TEXT; i++) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-') break;
      continue;
    }
    int v = hex(s[i]);
    if (v < 0) {
      memset(out, 0, 16);
      return;
    }
    out[b / 2] = (unsigned char)(out[b / 2] << 4 | v);
    b++;
  }
}

static void uuid_text(const unsigned char b[16], char out[UUID_TEXT + 1]) {
  snprintf(out, UUID_TEXT + 1,
           "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2],
           b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

static int is_zero(const unsigned char b[16]) {
  for (int i = 0; i < 16; i++)
    if (b[i] != 0) return 0;
  return 1;
}

/* Remembers the task of entry number `number` (NULL: refused). */
static int remember(chunk *c, long number, const char *task_id) {
  if ((size_t)number >= c->cap_ids) {
    size_t cap = c->cap_ids ? c->cap_ids * 2 : CHUNK_MAX * 2;
    while (cap <= (size_t)number) cap *= 2;
    unsigned char(*ids)[16] = realloc(c->ids, cap * sizeof(*ids));
    if (ids == NULL) return -1;
    c->ids = ids;
    c->cap_ids = cap;
  }
  uuid_bytes(task_id, c->ids[number]);
  return 0;
}

/* ---- fields ---- */

/* Sets one field of r from v (key is its name in the line); NULL or the
 * error text (e->code says which code when it is not INVALID_ARGUMENT). */
typedef char *(*field_fn)(chunk *c, entry *e, Oee__V1__SubmitTaskRequest *r, const char *key,
                          json_t *v);

/* Fills r->context from a JSON object of strings; NULL or an error text. */
static char *set_context(chunk *c, entry *e, Oee__V1__SubmitTaskRequest *r, const char *k,
                         json_t *obj) {
  const char *key;
  json_t *v;
  (void)c, (void)e, (void)k;
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

/* A JSON integer that fits an int32 (the range is the server's to check). */
static char *int32_value(const char *key, json_t *v, int32_t *out) {
  json_int_t n = json_integer_value(v);
  if (!json_is_integer(v) || n < INT32_MIN || n > INT32_MAX)
    return msg_printf("\"%s\" must be a 32-bit integer", key);
  *out = (int32_t)n;
  return NULL;
}

static char *set_priority(chunk *c, entry *e, Oee__V1__SubmitTaskRequest *r, const char *key,
                          json_t *v) {
  (void)c, (void)e;
  r->priority_present_case = OEE__V1__SUBMIT_TASK_REQUEST__PRIORITY_PRESENT_PRIORITY;
  return int32_value(key, v, &r->priority);
}

static char *set_max_attempts(chunk *c, entry *e, Oee__V1__SubmitTaskRequest *r, const char *key,
                              json_t *v) {
  (void)c, (void)e;
  r->max_attempts_present_case = OEE__V1__SUBMIT_TASK_REQUEST__MAX_ATTEMPTS_PRESENT_MAX_ATTEMPTS;
  return int32_value(key, v, &r->max_attempts);
}

/* A JSON number of seconds (the range is the server's to check). */
static char *seconds_value(const char *key, json_t *v, double *out) {
  if (!json_is_number(v)) return msg_printf("\"%s\" must be a number of seconds", key);
  *out = json_number_value(v);
  return NULL;
}

static char *set_backoff(chunk *c, entry *e, Oee__V1__SubmitTaskRequest *r, const char *key,
                         json_t *v) {
  (void)c, (void)e;
  r->backoff_seconds_present_case =
      OEE__V1__SUBMIT_TASK_REQUEST__BACKOFF_SECONDS_PRESENT_BACKOFF_SECONDS;
  return seconds_value(key, v, &r->backoff_seconds);
}

static char *set_max_backoff(chunk *c, entry *e, Oee__V1__SubmitTaskRequest *r, const char *key,
                             json_t *v) {
  (void)c, (void)e;
  r->max_backoff_seconds_present_case =
      OEE__V1__SUBMIT_TASK_REQUEST__MAX_BACKOFF_SECONDS_PRESENT_MAX_BACKOFF_SECONDS;
  return seconds_value(key, v, &r->max_backoff_seconds);
}

static char *set_timeout(chunk *c, entry *e, Oee__V1__SubmitTaskRequest *r, const char *key,
                         json_t *v) {
  (void)c, (void)e;
  return seconds_value(key, v, &r->timeout_seconds);
}

static char *set_run_at(chunk *c, entry *e, Oee__V1__SubmitTaskRequest *r, const char *key,
                        json_t *v) {
  Google__Protobuf__Timestamp *ts = &c->run_ats[c->n_reqs];
  (void)e;
  if (!json_is_string(v) || oeectl_parse_time(json_string_value(v), ts) != 0)
    return msg_printf("\"%s\" must be an RFC 3339 time or \"+N[s|m|h|d]\"", key);
  r->run_at = ts;
  return NULL;
}

static char *set_string(chunk *c, entry *e, Oee__V1__SubmitTaskRequest *r, const char *key,
                        json_t *v) {
  (void)c, (void)e;
  if (!json_is_string(v)) return msg_printf("\"%s\" must be a string", key);
  char **field = key[0] == 'n' ? &r->name : key[0] == 't' ? &r->task_type : &r->idempotency_key;
  *field = (char *)json_string_value(v);
  return NULL;
}

/* "#<index>" of the input as the server will read it: "#<request index>"
 * for an entry of this chunk, the task id for one of an earlier chunk.
 * Returns the malloc'd text, or NULL with *err set (e->code too). */
static char *resolve_ref(chunk *c, entry *e, size_t d, const char *ref, char **err) {
  char *end, id[UUID_TEXT + 1];
  errno = 0;
  long k = ref[1] >= '0' && ref[1] <= '9' ? strtol(ref + 1, &end, 10) : -1;
  *err = NULL;
  if (k < 0 || *end != '\0' || errno != 0)
    *err = msg_printf(
        "depends_on[%zu] \"%s\" is neither a task id nor \"#<index>\" of an earlier "
        "entry",
        d, ref);
  else if (k >= e->number)
    *err = msg_printf(
        "depends_on[%zu] \"%s\" names %s; an entry may only depend on earlier "
        "entries (this is entry %ld)",
        d, ref, k == e->number ? "this entry itself" : "a later entry", e->number);
  if (*err != NULL) return NULL;
  int refused = k >= c->base ? c->entries[k - c->base].req < 0 : is_zero(c->ids[k]);
  if (refused) {
    e->code = GRPC_STATUS_FAILED_PRECONDITION;
    *err = msg_printf("depends_on[%zu] \"%s\" names entry %ld, which was refused", d, ref, k);
    return NULL;
  }
  if (k < c->base) {
    uuid_text(c->ids[k], id);
    return strdup(id);
  }
  if (e->targets != NULL) e->targets[d] = k;
  return msg_printf("#%d", c->entries[k - c->base].req);
}

/* depends_on: every string owned by r (request_clear frees them). */
static char *set_depends_on(chunk *c, entry *e, Oee__V1__SubmitTaskRequest *r, const char *key,
                            json_t *v) {
  size_t n = json_array_size(v);
  if (!json_is_array(v)) return msg_printf("\"%s\" must be an array of strings", key);
  if (n == 0) return NULL;
  r->depends_on = calloc(n, sizeof(*r->depends_on));
  e->targets = malloc(n * sizeof(*e->targets));
  if (r->depends_on == NULL || e->targets == NULL) return msg_printf("out of memory");
  for (size_t d = 0; d < n; d++) {
    e->targets[d] = -1;
    const char *s = json_string_value(json_array_get(v, d));
    char *err = NULL;
    if (s == NULL) return msg_printf("\"%s\" must be an array of strings", key);
    char *dep = s[0] == '#' ? resolve_ref(c, e, d, s, &err) : strdup(s);
    if (dep == NULL) return err != NULL ? err : msg_printf("out of memory");
    r->depends_on[r->n_depends_on++] = dep;
  }
  return NULL;
}

/* The fields a line may hold, by proto and JSON name. */
static const struct {
  const char *name, *json_name;
  field_fn set;
} fields[] = {
    {"name", "name", set_string},
    {"task_type", "taskType", set_string},
    {"priority", "priority", set_priority},
    {"context", "context", set_context},
    {"max_attempts", "maxAttempts", set_max_attempts},
    {"backoff_seconds", "backoffSeconds", set_backoff},
    {"max_backoff_seconds", "maxBackoffSeconds", set_max_backoff},
    {"timeout_seconds", "timeoutSeconds", set_timeout},
    {"run_at", "runAt", set_run_at},
    {"idempotency_key", "idempotencyKey", set_string},
    {"depends_on", "dependsOn", set_depends_on},
};

/* Fills r from one object; field names as in the proto or its JSON name. */
static char *set_fields(chunk *c, entry *e, Oee__V1__SubmitTaskRequest *r, json_t *doc) {
  const char *key;
  json_t *v;
  unsigned seen = 0; /* bit f: fields[f] was given */
  if (!json_is_object(doc)) return msg_printf("an entry must be a JSON object");
  json_object_foreach(doc, key, v) {
    size_t f = 0, n = sizeof(fields) / sizeof(fields[0]);
    while (f < n && strcmp(key, fields[f].name) != 0 && strcmp(key, fields[f].json_name) != 0) f++;
    if (f == n) return msg_printf("unknown field \"%s\"", key);
    if (seen & 1u << f) return msg_printf("field \"%s\" is given twice", fields[f].name);
    seen |= 1u << f;
    char *err = fields[f].set(c, e, r, fields[f].name, v);
    if (err != NULL) return err;
  }
  return NULL;
}

static void request_clear(Oee__V1__SubmitTaskRequest *r) {
  if (r->context != NULL) free(r->context[0]);
  free(r->context);
  for (size_t d = 0; d < r->n_depends_on; d++) free(r->depends_on[d]);
  free(r->depends_on);
  oee__v1__submit_task_request__init(r);
}

/* Parses one line into the next request slot, or records a local error. */
static void add_line(chunk *c, long lineno, const char *line) {
  json_error_t jerr;
  entry *e = &c->entries[c->n_entries++];
  Oee__V1__SubmitTaskRequest *r = &c->reqs[c->n_reqs];
  *e =
      (entry){.line = lineno, .number = c->next++, .req = -1, .code = GRPC_STATUS_INVALID_ARGUMENT};
  json_t *doc = json_loads(line, JSON_REJECT_DUPLICATES, &jerr);
  if (doc == NULL) {
    e->message = msg_printf("invalid JSON: %s", jerr.text);
    return;
  }
  oee__v1__submit_task_request__init(r);
  e->message = set_fields(c, e, r, doc);
  if (e->message != NULL) {
    request_clear(r);
    json_decref(doc);
    return;
  }
  c->docs[c->n_reqs] = doc;
  c->ptrs[c->n_reqs] = r;
  e->req = (int)c->n_reqs++;
}

/* The server's FAILED_PRECONDITION for an entry naming a refused entry of
 * the same call numbers the call's requests; say it in the input's
 * numbering instead, as a local refusal would. The server checks the
 * references in order, so the first one naming a failed entry is its. */
static void renumber(chunk *c, entry *e, const Oee__V1__SubmitTasksResponse *resp,
                     const char **msg) {
  for (size_t d = 0; e->targets != NULL && d < c->reqs[e->req].n_depends_on; d++) {
    long k = e->targets[d];
    if (k < 0) continue;
    const entry *named = &c->entries[k - c->base];
    int code = named->req >= 0 ? resp->results[named->req]->code : named->code;
    if (code == 0) continue;
    free(e->message);
    e->message = msg_printf("depends_on[%zu] \"#%ld\" names entry %ld, which was refused", d, k, k);
    if (e->message != NULL) *msg = e->message;
    return;
  }
}

static void print_result(const oeectl_ctx *ctx, const entry *e, int code, const char *msg,
                         const Oee__V1__SubmitTaskResult *res) {
  if (ctx->json) {
    json_t *o = json_pack("{s:I,s:s,s:i,s:s,s:b}", "line", (json_int_t)e->line, "taskId",
                          res != NULL ? res->task_id : "", "code", code, "message", msg,
                          "duplicate", res != NULL && res->duplicate);
    if (o != NULL && res != NULL && res->task != NULL)
      json_object_set_new(o, "task", oeectl_json_task(res->task));
    oeectl_print_json(o);
  } else if (code == 0) {
    printf("%s\n", res->task_id);
  } else {
    printf("error: line %ld: %s (%d): %s\n", e->line, oeectl_code_name(code), code, msg);
  }
}

/* Prints every entry of the chunk against the call's results, and
 * remembers each entry's task for references from later chunks. Returns
 * -1 to go on, or an exit code. */
static int print_chunk(const oeectl_ctx *ctx, chunk *c, const Oee__V1__SubmitTasksResponse *resp) {
  for (size_t i = 0; i < c->n_entries; i++) {
    entry *e = &c->entries[i];
    const Oee__V1__SubmitTaskResult *res = e->req >= 0 ? resp->results[e->req] : NULL;
    int code = res != NULL ? res->code : e->code;
    const char *msg = res != NULL ? res->message : e->message;
    if (code == GRPC_STATUS_FAILED_PRECONDITION && res != NULL) renumber(c, e, resp, &msg);
    if (code != 0 && c->first_error == 0) c->first_error = code;
    print_result(ctx, e, code, msg != NULL ? msg : "out of memory", res);
    if (remember(c, e->number, code == 0 ? res->task_id : NULL) != 0)
      return oeectl_fail(OEECTL_EXIT_SOFTWARE, "out of memory");
  }
  return -1;
}

static void chunk_reset(chunk *c) {
  for (size_t i = 0; i < c->n_entries; i++) {
    free(c->entries[i].message);
    free(c->entries[i].targets);
  }
  for (size_t i = 0; i < c->n_reqs; i++) {
    request_clear(&c->reqs[i]);
    json_decref(c->docs[i]);
  }
  c->n_entries = c->n_reqs = 0;
  c->base = c->next;
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
  int rc = print_chunk(ctx, c, resp);
  if (resp != NULL) oee__v1__submit_tasks_response__free_unpacked(resp, NULL);
  chunk_reset(c);
  return rc;
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
  if (c != NULL) free(c->ids);
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
    "  and queues them with SubmitTasks, at most 1000 per call. Blank lines are skipped.\n"
    "  Optional fields (proto or JSON name): priority, context, max_attempts,\n"
    "  backoff_seconds, max_backoff_seconds, timeout_seconds, run_at (RFC 3339 or +30s,\n"
    "  +5m, +2h, +1d), idempotency_key, depends_on (task ids, or \"#<index>\": the entry\n"
    "  of that 0-based number in this input, blank lines not counted, which must come\n"
    "  earlier; resolved across calls, a refused one fails the entry with\n"
    "  FAILED_PRECONDITION).\n"
    "  Prints one line per entry, in input order: the task id, or\n"
    "    error: line N: CODE_NAME (CODE): message\n"
    "  --json: one object per entry:\n"
    "    {\"line\", \"taskId\", \"code\", \"message\", \"duplicate\", \"task\"}.\n"
    "  A line that is not a valid entry fails locally with INVALID_ARGUMENT.\n"
    "  Exit: 0 if every entry was queued, else the code of the first failed entry.\n",
    batch_run};
