/*
 * rpc_load.c - the asynchronous gRPC load generator of the benchmarks.
 *
 * DESIGN: one thread, one completion queue (grpc_completion_queue_next), one
 * channel (one HTTP/2 connection) unless a mode says otherwise. K unary calls
 * are kept in flight: each is one batch of the six client ops on a
 * registered method, and its completion starts the next call. Requests are
 * packed once with the generated protobuf-c code into slices that every call
 * shares; responses are decoded only where the mode needs their content.
 * Latency is the time from grpc_call_start_batch to the completion event.
 *
 * Output: one line per measurement,
 *   RESULT <label> key=value key=value ...
 * which bench/report.py turns into docs/PERFORMANCE.md. Diagnostics go to
 * stderr. Exit status 0 unless a measurement could not be made.
 * Timed unary runs also give the CPU time per counted call of this process
 * and, with --server-pid, of the server (/proc, clock ticks) over the window.
 *
 * Modes (--mode):
 *   echo     BenchEcho/Echo (the bare baseline) with a payload as large as
 *            the SubmitTaskRequest below; --inflight K, --seconds S.
 *   submit   SubmitTask with K in flight.
 *   batch    SubmitTasks with --batch B entries per call, K in flight.
 *   e2e      submit no-op (`echo`) tasks and count their completions on one
 *            WatchTasks stream (statuses DONE/ERROR/CANCELLED); --pattern
 *            batch (SubmitTasks of B, K in flight) or unary (SubmitTask, K in
 *            flight); at most --window tasks outstanding.
 *   watch    --watchers N WatchTasks streams (no filter) while --tasks T
 *            no-op tasks are submitted in batches; --window 0 submits as fast
 *            as possible, W > 0 keeps every watcher within 3W events.
 *   scale    parks the workers on long `sleep` tasks, fills the store to each
 *            of --levels with SubmitTasks, and at each level measures GetTask,
 *            ListTasks (first, middle and filtered page), SubmitTask latency
 *            and the server's RSS (--server-pid); then lets the 1,000,000
 *            tasks run, clears them and reads the RSS again.
 *   park     only parks the workers (--park N long `sleep` tasks), so that
 *            later submit/batch runs measure submission alone.
 *   health   waits until the server at --target accepts TCP connections and
 *            then until grpc.health.v1.Health/Check answers SERVING (for at
 *            most --seconds); prints the time since --since-ns (CLOCK_REALTIME
 *            ns, taken by the caller just before it launched the server), the
 *            server's RSS right then and its task counts.
 *   churn    no-op tasks pass through the server until the last of --levels
 *            have completed: SubmitTasks of --batch, --inflight calls, at most
 *            --window tasks unfinished, completions counted on one WatchTasks
 *            stream as in e2e; each task's context also holds --context-bytes
 *            bytes. At each level (tasks completed, rounded up to whole
 *            batches) submission pauses until everything submitted has
 *            completed, and the server's RSS (--server-pid) and task counts
 *            are printed; at the end also ListTasks' total_size.
 *   counts   prints the server's RSS, GetQueueStatus counts and ListTasks'
 *            total_size once.
 *
 * Security (any mode): --tls-ca FILE connects with TLS, trusting the PEM
 * roots in FILE (--tls-server-name NAME checks the server's certificate for
 * NAME instead of the target's host); --token TOKEN sends
 * "authorization: Bearer TOKEN" as initial metadata of every call (one
 * grpc_metadata built at start; without --token calls send none).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench.pb-c.h" /* generated from bench/bench.proto */
#include "grpc/health/v1/health.pb-c.h"
#include "oee/v1/orchestrator.pb-c.h"

/* ------------------------------------------------------------ helpers */

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what) {
  fprintf(stderr, "rpc_load: %s\n", what);
  exit(2);
}

static void *xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size);
  if (p == NULL) die("out of memory");
  return p;
}

static grpc_slice pack(const ProtobufCMessage *m) {
  size_t n = protobuf_c_message_get_packed_size(m);
  grpc_slice s = grpc_slice_malloc(n);
  protobuf_c_message_pack(m, GRPC_SLICE_START_PTR(s));
  return s;
}

static ProtobufCMessage *unpack(const ProtobufCMessageDescriptor *d, grpc_byte_buffer *bb) {
  grpc_byte_buffer_reader rd;
  if (bb == NULL || !grpc_byte_buffer_reader_init(&rd, bb)) return NULL;
  grpc_slice s = grpc_byte_buffer_reader_readall(&rd);
  grpc_byte_buffer_reader_destroy(&rd);
  ProtobufCMessage *m =
      protobuf_c_message_unpack(d, NULL, GRPC_SLICE_LENGTH(s), GRPC_SLICE_START_PTR(s));
  grpc_slice_unref(s);
  return m;
}

/* Resident set size of a process in bytes (0 when unknown). */
static long long rss_bytes(int pid) {
  if (pid <= 0) return 0;
  char path[64], line[256];
  snprintf(path, sizeof(path), "/proc/%d/status", pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return 0;
  long long kb = 0;
  while (fgets(line, sizeof(line), f)) {
    if (sscanf(line, "VmRSS: %lld kB", &kb) == 1) break;
  }
  fclose(f);
  return kb * 1024;
}

/* CPU time (user + system, ns) of a process, pid 0 this one; 0 when unknown
 * (clock ticks: 10 ms steps). */
static int64_t cpu_ns(int pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof(path), pid > 0 ? "/proc/%d/stat" : "/proc/self/stat", pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return 0;
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *p = strrchr(buf, ')'); /* the command name may hold spaces */
  unsigned long long ut = 0, st = 0;
  if (p == NULL ||
      sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2) {
    return 0;
  }
  return (int64_t)((ut + st) * (1000000000ULL / (unsigned long long)sysconf(_SC_CLK_TCK)));
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

/* Percentile q (0..1) of a sorted array, in microseconds. */
static double pct_us(const int64_t *v, size_t n, double q) {
  if (n == 0) return 0;
  size_t i = (size_t)(q * (double)(n - 1) + 0.5);
  return (double)v[i] / 1000.0;
}

/* ---------------------------------------------------------- options */

typedef struct opts {
  const char *target, *mode, *label, *pattern, *levels;
  const char *tls_ca, *tls_server_name, *token; /* NULL: plaintext, no token */
  int inflight, batch, watchers, window, tasks, park, server_pid, calls, context_bytes;
  double seconds, warmup;
  long long since_ns; /* health: CLOCK_REALTIME ns when the server was launched */
} opts;

static opts O = {
    .target = "127.0.0.1:50051",
    .mode = "submit",
    .label = "run",
    .pattern = "batch",
    .levels = "1000,10000,100000,1000000",
    .inflight = 1,
    .batch = 256,
    .watchers = 1,
    .window = 2048,
    .tasks = 10000,
    .park = 2,
    .server_pid = 0,
    .calls = 0,
    .seconds = 3.0,
    .warmup = 0.5,
};

static void parse_opts(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (v == NULL) die("option without a value");
    i++;
    if (!strcmp(k, "--target"))
      O.target = v;
    else if (!strcmp(k, "--mode"))
      O.mode = v;
    else if (!strcmp(k, "--label"))
      O.label = v;
    else if (!strcmp(k, "--pattern"))
      O.pattern = v;
    else if (!strcmp(k, "--levels"))
      O.levels = v;
    else if (!strcmp(k, "--inflight"))
      O.inflight = atoi(v);
    else if (!strcmp(k, "--batch"))
      O.batch = atoi(v);
    else if (!strcmp(k, "--watchers"))
      O.watchers = atoi(v);
    else if (!strcmp(k, "--window"))
      O.window = atoi(v);
    else if (!strcmp(k, "--tasks"))
      O.tasks = atoi(v);
    else if (!strcmp(k, "--park"))
      O.park = atoi(v);
    else if (!strcmp(k, "--server-pid"))
      O.server_pid = atoi(v);
    else if (!strcmp(k, "--calls"))
      O.calls = atoi(v);
    else if (!strcmp(k, "--seconds"))
      O.seconds = atof(v);
    else if (!strcmp(k, "--warmup"))
      O.warmup = atof(v);
    else if (!strcmp(k, "--context-bytes"))
      O.context_bytes = atoi(v);
    else if (!strcmp(k, "--since-ns"))
      O.since_ns = atoll(v);
    else if (!strcmp(k, "--tls-ca"))
      O.tls_ca = v;
    else if (!strcmp(k, "--tls-server-name"))
      O.tls_server_name = v;
    else if (!strcmp(k, "--token"))
      O.token = v;
    else
      die("unknown option");
  }
  if (O.inflight < 1 || O.batch < 1 || O.watchers < 1 || O.context_bytes < 0) {
    die("bad option value");
  }
}

/* ------------------------------------------------------------ gRPC */

/* Every completion-queue tag is an op: fn(owner, ok) runs on completion. */
typedef struct op {
  void (*fn)(void *owner, int ok);
  void *owner;
} op;

static grpc_completion_queue *cq;
static grpc_channel *channel;

enum {
  M_ECHO,
  M_SUBMIT,
  M_SUBMIT_BATCH,
  M_GET,
  M_LIST,
  M_CANCEL,
  M_QUEUE,
  M_CLEAR,
  M_WATCH,
  M_HEALTH,
  M_N
};
static const char *const method_paths[M_N] = {
    "/oee.bench.BenchEcho/Echo",
    "/oee.v1.OrchestratorService/SubmitTask",
    "/oee.v1.OrchestratorService/SubmitTasks",
    "/oee.v1.OrchestratorService/GetTask",
    "/oee.v1.OrchestratorService/ListTasks",
    "/oee.v1.OrchestratorService/CancelTask",
    "/oee.v1.OrchestratorService/GetQueueStatus",
    "/oee.v1.OrchestratorService/ClearCompletedTasks",
    "/oee.v1.OrchestratorService/WatchTasks",
    "/grpc.health.v1.Health/Check",
};
static void *methods[M_N];

/* "authorization: Bearer <--token>" for every call; n_auth 0 without one. */
static grpc_metadata auth_md;
static size_t n_auth;

static void token_setup(void) {
  if (O.token == NULL) return;
  if (O.token[0] == '\0' || strcspn(O.token, "\r\n") != strlen(O.token)) die("bad --token");
  char *v = xcalloc(strlen(O.token) + sizeof("Bearer "), 1);
  memcpy(v, "Bearer ", 7);
  memcpy(v + 7, O.token, strlen(O.token));
  auth_md.key = grpc_slice_from_static_string("authorization");
  auth_md.value = grpc_slice_from_copied_string(v);
  n_auth = 1;
  free(v);
}

/* The whole of a small file (a PEM text), NUL-terminated. */
static char *read_text(const char *path) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) die("cannot open the --tls-ca file");
  char *buf = xcalloc(1 << 20, 1);
  size_t n = fread(buf, 1, (1 << 20) - 1, f);
  fclose(f);
  if (n == 0) die("the --tls-ca file is empty");
  return buf;
}

/* Plaintext, or TLS trusting the roots of --tls-ca. */
static grpc_channel_credentials *channel_creds(void) {
  if (O.tls_ca == NULL) return grpc_insecure_credentials_create();
  char *roots = read_text(O.tls_ca);
  grpc_channel_credentials *creds = grpc_ssl_credentials_create(roots, NULL, NULL, NULL);
  free(roots);
  if (creds == NULL) die("cannot set up TLS with the --tls-ca file");
  return creds;
}

static grpc_channel *channel_open(int own_connection) {
  grpc_arg args[2];
  size_t n = 0;
  if (own_connection) {
    args[n++] = (grpc_arg){
        .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, .value.integer = 1};
  }
  if (O.tls_server_name) {
    args[n++] = (grpc_arg){.type = GRPC_ARG_STRING,
                           .key = GRPC_SSL_TARGET_NAME_OVERRIDE_ARG,
                           .value.string = (char *)O.tls_server_name};
  }
  grpc_channel_args ca = {.num_args = n, .args = args};
  grpc_channel_credentials *creds = channel_creds();
  grpc_channel *ch = grpc_channel_create(O.target, creds, &ca);
  grpc_channel_credentials_release(creds);
  return ch;
}

static void grpc_setup(void) {
  grpc_init();
  token_setup();
  cq = grpc_completion_queue_create_for_next(NULL);
  channel = channel_open(0);
  for (int i = 0; i < M_N; i++) {
    methods[i] = grpc_channel_register_call(channel, method_paths[i], NULL, NULL);
  }
}

/* Runs completions until *flag becomes zero or the deadline (ns) passes. */
static void pump_until(const int *flag, int64_t deadline_ns) {
  while (*flag && now_ns() < deadline_ns) {
    grpc_event ev = grpc_completion_queue_next(
        cq, gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(50, GPR_TIMESPAN)),
        NULL);
    if (ev.type == GRPC_OP_COMPLETE) {
      op *o = ev.tag;
      o->fn(o->owner, ev.success);
    }
  }
}

/* One unary call: all six client ops in one batch. */
typedef struct ucall {
  op done;
  grpc_call *call;
  grpc_byte_buffer *send, *recv;
  grpc_metadata_array md_init, md_trail;
  grpc_status_code status;
  grpc_slice details;
  int64_t t0;
  void (*on_end)(struct ucall *c); /* after the call completed */
  void *user;
  int index;
} ucall;

static void ucall_finish(void *owner, int ok) {
  ucall *c = owner;
  if (!ok) c->status = GRPC_STATUS_UNKNOWN;
  /* on_end may start the next call on this slot: release the old one's
   * resources from copies. */
  grpc_call *call = c->call;
  grpc_byte_buffer *send = c->send, *recv = c->recv;
  grpc_metadata_array md_init = c->md_init, md_trail = c->md_trail;
  grpc_slice details = c->details;
  c->on_end(c);
  grpc_call_unref(call);
  grpc_byte_buffer_destroy(send);
  if (recv) grpc_byte_buffer_destroy(recv);
  grpc_metadata_array_destroy(&md_init);
  grpc_metadata_array_destroy(&md_trail);
  grpc_slice_unref(details);
}

static void ucall_start(ucall *c, int method, grpc_slice payload) {
  c->done = (op){ucall_finish, c};
  c->call = grpc_channel_create_registered_call(channel, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                                methods[method],
                                                gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
  c->send = grpc_raw_byte_buffer_create(&payload, 1);
  c->recv = NULL;
  c->details = grpc_empty_slice();
  grpc_metadata_array_init(&c->md_init);
  grpc_metadata_array_init(&c->md_trail);
  grpc_op ops[6];
  memset(ops, 0, sizeof(ops));
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[0].data.send_initial_metadata.count = n_auth;
  ops[0].data.send_initial_metadata.metadata = &auth_md;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = c->send;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &c->md_init;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &c->recv;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.trailing_metadata = &c->md_trail;
  ops[5].data.recv_status_on_client.status = &c->status;
  ops[5].data.recv_status_on_client.status_details = &c->details;
  c->t0 = now_ns();
  if (grpc_call_start_batch(c->call, ops, 6, &c->done, NULL) != GRPC_CALL_OK) {
    die("grpc_call_start_batch refused a unary call");
  }
}

static void report_status(const char *what, ucall *c) {
  static int reported;
  if (reported++ >= 3) return;
  char *d = grpc_slice_to_c_string(c->details);
  fprintf(stderr, "rpc_load: %s failed: status %d %s\n", what, (int)c->status, d);
  gpr_free(d);
}

/* A blocking unary call on the shared queue (only used while nothing else is
 * in flight). Returns the decoded response (caller frees) or NULL. */
static int sync_flag;
static ProtobufCMessage *sync_result;
static const ProtobufCMessageDescriptor *sync_desc;

static void sync_end(ucall *c) {
  sync_flag = 0;
  sync_result = c->status == GRPC_STATUS_OK ? unpack(sync_desc, c->recv) : NULL;
  if (c->status != GRPC_STATUS_OK) report_status(method_paths[c->index], c);
}

static ProtobufCMessage *call_sync(int method, const ProtobufCMessage *req,
                                   const ProtobufCMessageDescriptor *resp) {
  ucall c = {.on_end = sync_end, .index = method};
  grpc_slice s = pack(req);
  sync_desc = resp;
  sync_flag = 1;
  sync_result = NULL;
  ucall_start(&c, method, s);
  grpc_slice_unref(s);
  pump_until(&sync_flag, now_ns() + 30000000000LL);
  if (sync_flag) die("a blocking call timed out");
  return sync_result;
}

/* ---------------------------------------------------------- requests */

/* The task every submit benchmark sends: a no-op `echo` task with one
 * context entry, as a small real task would look. */
static void task_request(Oee__V1__SubmitTaskRequest *r, Oee__V1__SubmitTaskRequest__ContextEntry *e,
                         Oee__V1__SubmitTaskRequest__ContextEntry **ep) {
  oee__v1__submit_task_request__init(r);
  oee__v1__submit_task_request__context_entry__init(e);
  r->name = "bench-task";
  r->task_type = "echo";
  e->key = "message";
  e->value = "";
  *ep = e;
  r->n_context = 1;
  r->context = ep;
}

static grpc_slice submit_payload(void) {
  Oee__V1__SubmitTaskRequest r;
  Oee__V1__SubmitTaskRequest__ContextEntry e, *ep;
  task_request(&r, &e, &ep);
  return pack(&r.base);
}

/* SubmitTasks of n such tasks; with ctx_bytes > 0 each context also holds
 * "payload" = ctx_bytes bytes (echo ignores it: the result stays empty). */
static grpc_slice batch_payload_ctx(int n, int ctx_bytes) {
  Oee__V1__SubmitTaskRequest r;
  Oee__V1__SubmitTaskRequest__ContextEntry e[2], *ep[2];
  task_request(&r, &e[0], &ep[0]);
  char *big = NULL;
  if (ctx_bytes > 0) {
    big = xcalloc((size_t)ctx_bytes + 1, 1);
    memset(big, 'x', (size_t)ctx_bytes);
    oee__v1__submit_task_request__context_entry__init(&e[1]);
    e[1].key = "payload";
    e[1].value = big;
    ep[1] = &e[1];
    r.n_context = 2;
  }
  Oee__V1__SubmitTaskRequest **v = xcalloc((size_t)n, sizeof(*v));
  for (int i = 0; i < n; i++) v[i] = &r;
  Oee__V1__SubmitTasksRequest b = OEE__V1__SUBMIT_TASKS_REQUEST__INIT;
  b.n_requests = (size_t)n;
  b.requests = v;
  grpc_slice s = pack(&b.base);
  free(v);
  free(big);
  return s;
}

static grpc_slice batch_payload(int n) { return batch_payload_ctx(n, 0); }

/* An Echo request exactly as large as the SubmitTaskRequest. */
static grpc_slice echo_payload(void) {
  grpc_slice sub = submit_payload();
  size_t want = GRPC_SLICE_LENGTH(sub);
  grpc_slice_unref(sub);
  Oee__Bench__EchoRequest r = OEE__BENCH__ECHO_REQUEST__INIT;
  static uint8_t bytes[256];
  r.payload.data = bytes;
  r.payload.len = want >= 2 ? want - 2 : 0; /* tag + length byte */
  grpc_slice s = pack(&r.base);
  return s;
}

/* ---------------------------------------------------- the unary driver */

/* K calls in flight until a duration or a call count is reached. Calls that
 * complete during the warm-up are not counted. */
typedef struct load {
  int method;
  grpc_slice *payloads;
  size_t n_payloads, next_payload;
  int inflight;
  int64_t t_start, warm_end, end; /* ns; end == 0: count-limited */
  long max_calls, started, warm_calls;
  int active;
  int64_t *lat;
  size_t nlat, cap;
  long ok, errors;
  void (*on_reply)(struct load *l, ucall *c); /* optional: inspect the reply */
  long items;                                 /* e.g. tasks acknowledged by SubmitTasks */
  ucall *calls;
  int64_t cpu[2][2]; /* [window start, end][this process, --server-pid] in ns */
  int cpu_marks;
} load;

/* Reads both CPU times as the measured window opens and as it closes. */
static void cpu_mark(load *l, int64_t t) {
  if (l->end == 0 || l->cpu_marks >= 2 || t < (l->cpu_marks ? l->end : l->warm_end)) return;
  l->cpu[l->cpu_marks][0] = cpu_ns(0);
  l->cpu[l->cpu_marks][1] = cpu_ns(O.server_pid);
  l->cpu_marks++;
}

static void load_next(load *l, ucall *c);

static void load_end(ucall *c) {
  load *l = c->user;
  int64_t t = now_ns();
  cpu_mark(l, t);
  int counted = l->end ? (t >= l->warm_end && t <= l->end) : (c->index >= l->warm_calls);
  if (counted) {
    if (c->status == GRPC_STATUS_OK) {
      l->ok++;
      if (l->nlat < l->cap) l->lat[l->nlat++] = t - c->t0;
      if (l->on_reply) l->on_reply(l, c);
    } else {
      l->errors++;
      report_status(method_paths[l->method], c);
    }
  }
  load_next(l, c);
}

static void load_next(load *l, ucall *c) {
  int more = l->end ? now_ns() < l->end : l->started < l->max_calls;
  if (!more) {
    l->active--;
    return;
  }
  c->index = (int)l->started++;
  ucall_start(c, l->method, l->payloads[l->next_payload++ % l->n_payloads]);
}

/* Runs the load; the caller prints the figures. */
static void load_run(load *l) {
  l->calls = xcalloc((size_t)l->inflight, sizeof(*l->calls));
  if (l->cap == 0) l->cap = 4000000;
  l->lat = xcalloc(l->cap, sizeof(*l->lat));
  l->t_start = now_ns();
  if (l->end) {
    l->warm_end = l->t_start + (int64_t)(O.warmup * 1e9);
    l->end = l->warm_end + (int64_t)(O.seconds * 1e9);
  }
  l->active = l->inflight;
  for (int i = 0; i < l->inflight; i++) {
    l->calls[i].on_end = load_end;
    l->calls[i].user = l;
    load_next(l, &l->calls[i]);
  }
  pump_until(&l->active, INT64_MAX);
  if (!l->end) l->end = now_ns(), l->warm_end = l->t_start;
  qsort(l->lat, l->nlat, sizeof(*l->lat), cmp_i64);
  free(l->calls);
}

/* CPU per counted call in the window (us): who 0 this process, 1 the server. */
static double cpu_per_call_us(const load *l, int who) {
  if (l->cpu_marks < 2 || l->ok == 0 || (who && O.server_pid <= 0)) return 0;
  return (double)(l->cpu[1][who] - l->cpu[0][who]) / 1000.0 / (double)l->ok;
}

static void load_print(const char *label, load *l, int items_per_call) {
  double secs = (double)(l->end - l->warm_end) / 1e9;
  double mean = 0;
  for (size_t i = 0; i < l->nlat; i++) mean += (double)l->lat[i];
  mean = l->nlat ? mean / (double)l->nlat / 1000.0 : 0;
  printf(
      "RESULT %s calls=%ld errors=%ld seconds=%.3f rate=%.0f items_rate=%.0f "
      "mean_us=%.1f p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f inflight=%d "
      "client_cpu_us=%.1f server_cpu_us=%.1f\n",
      label, l->ok, l->errors, secs, (double)l->ok / secs, (double)l->ok * items_per_call / secs,
      mean, pct_us(l->lat, l->nlat, 0.5), pct_us(l->lat, l->nlat, 0.9),
      pct_us(l->lat, l->nlat, 0.99), pct_us(l->lat, l->nlat, 0.999), pct_us(l->lat, l->nlat, 1.0),
      l->inflight, cpu_per_call_us(l, 0), cpu_per_call_us(l, 1));
  fflush(stdout);
}

static void load_free(load *l) { free(l->lat); }

/* Checks every entry of a SubmitTasks reply. */
static void batch_reply(load *l, ucall *c) {
  Oee__V1__SubmitTasksResponse *r =
      (Oee__V1__SubmitTasksResponse *)unpack(&oee__v1__submit_tasks_response__descriptor, c->recv);
  if (r == NULL) {
    l->errors++;
    return;
  }
  for (size_t i = 0; i < r->n_results; i++) {
    if (r->results[i]->code == 0)
      l->items++;
    else if (l->errors++ < 3)
      fprintf(stderr, "rpc_load: batch entry: %s\n", r->results[i]->message);
  }
  oee__v1__submit_tasks_response__free_unpacked(r, NULL);
}

static int mode_unary(int method, grpc_slice payload, int items_per_call) {
  load l = {
      .method = method, .payloads = &payload, .n_payloads = 1, .inflight = O.inflight, .end = 1};
  if (method == M_SUBMIT_BATCH) l.on_reply = batch_reply;
  load_run(&l);
  load_print(O.label, &l, items_per_call);
  if (method == M_SUBMIT_BATCH) {
    printf("RESULT %s.acked tasks=%ld tasks_rate=%.0f\n", O.label, l.items,
           (double)l.items / ((double)(l.end - l.warm_end) / 1e9));
  }
  load_free(&l);
  grpc_slice_unref(payload);
  return l.ok > 0 ? 0 : 1;
}

/* ------------------------------------------------------ server streams */

/* A WatchTasks stream: start batch (send + initial metadata), a status
 * batch, and one RECV_MESSAGE batch at a time. */
typedef struct stream {
  op started, message, status;
  grpc_call *call;
  grpc_byte_buffer *send, *recv;
  grpc_metadata_array md_init, md_trail;
  grpc_status_code code;
  grpc_slice details;
  int ready, ended, decode;
  long events, done_events;
} stream;

static void stream_recv(stream *s);

static void stream_started(void *owner, int ok) {
  stream *s = owner;
  s->ready = ok ? 1 : -1;
  grpc_byte_buffer_destroy(s->send);
  s->send = NULL;
}

static void stream_message(void *owner, int ok) {
  stream *s = owner;
  if (!ok || s->recv == NULL) return; /* the status batch reports the end */
  s->events++;
  if (s->decode) {
    Oee__V1__TaskEvent *e = (Oee__V1__TaskEvent *)unpack(&oee__v1__task_event__descriptor, s->recv);
    if (e && e->task && e->task->status >= OEE__V1__TASK_STATUS__TASK_STATUS_DONE) s->done_events++;
    if (e) oee__v1__task_event__free_unpacked(e, NULL);
  }
  grpc_byte_buffer_destroy(s->recv);
  s->recv = NULL;
  stream_recv(s);
}

static void stream_status(void *owner, int ok) {
  stream *s = owner;
  (void)ok;
  s->ended = 1;
}

static void stream_recv(stream *s) {
  grpc_op o;
  memset(&o, 0, sizeof(o));
  o.op = GRPC_OP_RECV_MESSAGE;
  o.data.recv_message.recv_message = &s->recv;
  if (grpc_call_start_batch(s->call, &o, 1, &s->message, NULL) != GRPC_CALL_OK) die("recv batch");
}

static void stream_open(stream *s, grpc_channel *ch, const Oee__V1__WatchTasksRequest *req) {
  s->started = (op){stream_started, s};
  s->message = (op){stream_message, s};
  s->status = (op){stream_status, s};
  void *m = ch == channel ? methods[M_WATCH]
                          : grpc_channel_register_call(ch, method_paths[M_WATCH], NULL, NULL);
  s->call = grpc_channel_create_registered_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, m,
                                                gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
  grpc_slice p = pack(&req->base);
  s->send = grpc_raw_byte_buffer_create(&p, 1);
  grpc_slice_unref(p);
  s->details = grpc_empty_slice();
  grpc_metadata_array_init(&s->md_init);
  grpc_metadata_array_init(&s->md_trail);
  grpc_op ops[4];
  memset(ops, 0, sizeof(ops));
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[0].data.send_initial_metadata.count = n_auth;
  ops[0].data.send_initial_metadata.metadata = &auth_md;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = s->send;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &s->md_init;
  if (grpc_call_start_batch(s->call, ops, 4, &s->started, NULL) != GRPC_CALL_OK) die("watch start");
  memset(ops, 0, sizeof(ops));
  ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[0].data.recv_status_on_client.trailing_metadata = &s->md_trail;
  ops[0].data.recv_status_on_client.status = &s->code;
  ops[0].data.recv_status_on_client.status_details = &s->details;
  if (grpc_call_start_batch(s->call, ops, 1, &s->status, NULL) != GRPC_CALL_OK) die("watch status");
  stream_recv(s);
}

static void stream_close(stream *s) {
  if (!s->ended) grpc_call_cancel(s->call, NULL);
  int64_t until = now_ns() + 5000000000LL;
  while (!s->ended && now_ns() < until) {
    int flag = 1;
    pump_until(&flag, now_ns() + 20000000);
  }
  grpc_call_unref(s->call);
  grpc_metadata_array_destroy(&s->md_init);
  grpc_metadata_array_destroy(&s->md_trail);
  grpc_slice_unref(s->details);
}

/* Waits until every stream got its initial metadata (the server has then run
 * the handler, which subscribes), plus a margin. */
static void streams_wait_ready(stream *s, int n) {
  int64_t until = now_ns() + 10000000000LL;
  for (;;) {
    int ready = 0;
    for (int i = 0; i < n; i++) ready += s[i].ready != 0;
    if (ready == n) break;
    if (now_ns() > until) die("watch streams did not start");
    int flag = 1;
    pump_until(&flag, now_ns() + 10000000);
  }
  int flag = 1;
  pump_until(&flag, now_ns() + 100000000); /* 100 ms margin */
}

/* ------------------------------------------------------- e2e: submit+run */

typedef struct e2e {
  stream *watch;
  int batch;      /* tasks per call; 1 with the unary pattern */
  long submitted; /* tasks in calls started */
  long acked, refused;
  int inflight, max_inflight;
  int64_t end;
  ucall *calls;
  int *free_slots, n_free;
} e2e;

static void e2e_end(ucall *c) {
  e2e *e = c->user;
  e->inflight--;
  e->free_slots[e->n_free++] = (int)(c - e->calls);
  if (c->status != GRPC_STATUS_OK) {
    e->refused += e->batch;
    report_status("submit", c);
    return;
  }
  if (e->batch == 1 && c->index == M_SUBMIT) {
    e->acked++;
    return;
  }
  Oee__V1__SubmitTasksResponse *r =
      (Oee__V1__SubmitTasksResponse *)unpack(&oee__v1__submit_tasks_response__descriptor, c->recv);
  for (size_t i = 0; r && i < r->n_results; i++) {
    if (r->results[i]->code == 0)
      e->acked++;
    else
      e->refused++;
  }
  if (r) oee__v1__submit_tasks_response__free_unpacked(r, NULL);
}

/* Opens one WatchTasks stream filtered on the final statuses and waits until
 * the server subscribed it. */
static void watch_finished(stream *w) {
  static const Oee__V1__TaskStatus done_states[] = {OEE__V1__TASK_STATUS__TASK_STATUS_DONE,
                                                    OEE__V1__TASK_STATUS__TASK_STATUS_ERROR,
                                                    OEE__V1__TASK_STATUS__TASK_STATUS_CANCELLED};
  Oee__V1__WatchTasksRequest wr = OEE__V1__WATCH_TASKS_REQUEST__INIT;
  wr.n_statuses = 3;
  wr.statuses = (Oee__V1__TaskStatus *)done_states;
  stream_open(w, channel, &wr);
  streams_wait_ready(w, 1);
  if (w->ended) die("the watch stream ended at once");
}

/* Gives e its max_inflight call slots, all free. */
static void e2e_slots(e2e *e) {
  e->calls = xcalloc((size_t)e->max_inflight, sizeof(*e->calls));
  e->free_slots = xcalloc((size_t)e->max_inflight, sizeof(int));
  for (int i = 0; i < e->max_inflight; i++) {
    e->calls[i].on_end = e2e_end;
    e->calls[i].user = e;
    e->free_slots[e->n_free++] = i;
  }
}

/* Starts one submit call on a free slot. */
static void e2e_submit(e2e *e, int method, grpc_slice payload) {
  ucall *c = &e->calls[e->free_slots[--e->n_free]];
  c->index = method;
  ucall_start(c, method, payload);
  e->inflight++;
  e->submitted += e->batch;
}

/* Runs the completion of one event, waiting at most 5 ms for it. */
static void pump_once(void) {
  grpc_event ev = grpc_completion_queue_next(
      cq, gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(5, GPR_TIMESPAN)), NULL);
  if (ev.type == GRPC_OP_COMPLETE) {
    op *o = ev.tag;
    o->fn(o->owner, ev.success);
  }
}

/* Submit + run + completion seen, as fast as the window allows. */
static int mode_e2e(void) {
  int unary = strcmp(O.pattern, "unary") == 0;
  e2e e = {.batch = unary ? 1 : O.batch, .max_inflight = O.inflight};
  stream w = {0};
  watch_finished(&w);
  e.watch = &w;
  grpc_slice payload = unary ? submit_payload() : batch_payload(e.batch);
  int method = unary ? M_SUBMIT : M_SUBMIT_BATCH;
  e2e_slots(&e);
  int64_t t0 = now_ns(), warm_end = t0 + (int64_t)(O.warmup * 1e9);
  int64_t end = warm_end + (int64_t)(O.seconds * 1e9);
  long done_at_warm = -1, done_at_end = -1;
  while (!w.ended) {
    int64_t t = now_ns();
    if (done_at_warm < 0 && t >= warm_end) done_at_warm = w.events;
    if (t >= end) {
      if (done_at_end < 0) done_at_end = w.events;
      if (e.inflight == 0 && w.events >= e.acked) break;
      if (t > end + 20000000000LL) break;
    } else {
      while (e.n_free > 0 && e.submitted - e.refused - w.events + e.batch <= O.window) {
        e2e_submit(&e, method, payload);
      }
    }
    pump_once();
  }
  double secs = (double)(end - warm_end) / 1e9;
  long steady = done_at_end - done_at_warm;
  printf(
      "RESULT %s pattern=%s batch=%d inflight=%d window=%d acked=%ld refused=%ld "
      "completed=%ld steady_completed=%ld seconds=%.3f rate=%.0f lost=%ld\n",
      O.label, unary ? "unary" : "batch", e.batch, e.max_inflight, O.window, e.acked, e.refused,
      w.events, steady, secs, (double)steady / secs, e.acked - w.events);
  fflush(stdout);
  int ok = steady > 0 && !w.ended;
  stream_close(&w);
  grpc_slice_unref(payload);
  free(e.calls);
  free(e.free_slots);
  return ok ? 0 : 1;
}

/* ------------------------------------------------------- watch fan-out */

static int mode_watch(void) {
  int n = O.watchers;
  stream *ws = xcalloc((size_t)n, sizeof(*ws));
  Oee__V1__WatchTasksRequest wr = OEE__V1__WATCH_TASKS_REQUEST__INIT;
  for (int i = 0; i < n; i++) stream_open(&ws[i], channel, &wr);
  streams_wait_ready(ws, n);
  e2e e = {.batch = O.batch, .max_inflight = O.inflight};
  e2e_slots(&e);
  grpc_slice payload = batch_payload(e.batch);
  long expect_per = 3L * O.tasks; /* QUEUED, RUNNING, DONE per task */
  int64_t t0 = now_ns(), deadline = t0 + 60000000000LL, t_last = t0;
  long last_total = 0;
  for (;;) {
    long total = 0, min_seen = -1;
    int live = 0;
    for (int i = 0; i < n; i++) {
      total += ws[i].events;
      if (!ws[i].ended) {
        live++;
        if (min_seen < 0 || ws[i].events < min_seen) min_seen = ws[i].events;
      }
    }
    if (total != last_total) t_last = now_ns(), last_total = total;
    int all_in = 1;
    for (int i = 0; i < n; i++) all_in &= ws[i].ended || ws[i].events >= expect_per;
    if ((all_in && e.inflight == 0 && e.submitted >= O.tasks) || now_ns() > deadline) break;
    if (live == 0 && e.inflight == 0) break;
    while (e.n_free > 0 && e.submitted < O.tasks) {
      int b = O.tasks - e.submitted < e.batch ? (int)(O.tasks - e.submitted) : e.batch;
      if (b != e.batch) break; /* --tasks is a multiple of --batch in bench/run */
      if (O.window > 0 && min_seen >= 0 && 3L * (e.submitted + b) - min_seen > 3L * O.window) break;
      ucall *c = &e.calls[e.free_slots[--e.n_free]];
      c->index = M_SUBMIT_BATCH;
      ucall_start(c, M_SUBMIT_BATCH, payload);
      e.inflight++;
      e.submitted += b;
    }
    grpc_event ev = grpc_completion_queue_next(
        cq, gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(5, GPR_TIMESPAN)),
        NULL);
    if (ev.type == GRPC_OP_COMPLETE) {
      op *o = ev.tag;
      o->fn(o->owner, ev.success);
    }
  }
  long total = 0, min_ev = -1, max_ev = 0;
  int dropped = 0, other_end = 0;
  for (int i = 0; i < n; i++) {
    total += ws[i].events;
    if (min_ev < 0 || ws[i].events < min_ev) min_ev = ws[i].events;
    if (ws[i].events > max_ev) max_ev = ws[i].events;
    if (ws[i].ended && ws[i].code == GRPC_STATUS_RESOURCE_EXHAUSTED)
      dropped++;
    else if (ws[i].ended)
      other_end++;
  }
  double secs = (double)(t_last - t0) / 1e9;
  printf(
      "RESULT %s watchers=%d tasks=%ld window=%d events=%ld expected=%ld seconds=%.3f "
      "events_rate=%.0f dropped=%d other_end=%d min_events=%ld max_events=%ld\n",
      O.label, n, e.acked, O.window, total, expect_per * n, secs,
      secs > 0 ? (double)total / secs : 0, dropped, other_end, min_ev, max_ev);
  fflush(stdout);
  for (int i = 0; i < n; i++) stream_close(&ws[i]);
  grpc_slice_unref(payload);
  free(ws);
  free(e.calls);
  free(e.free_slots);
  return 0;
}

/* ------------------------------------------------------------- scale */

typedef struct idset {
  char (*ids)[40];
  size_t n, cap;
} idset;

static idset ids;

static void record_ids(load *l, ucall *c) {
  Oee__V1__SubmitTasksResponse *r =
      (Oee__V1__SubmitTasksResponse *)unpack(&oee__v1__submit_tasks_response__descriptor, c->recv);
  for (size_t i = 0; r && i < r->n_results; i++) {
    if (r->results[i]->code != 0) {
      l->errors++;
      continue;
    }
    l->items++;
    if (ids.n < ids.cap) snprintf(ids.ids[ids.n++], 40, "%s", r->results[i]->task_id);
  }
  if (r) oee__v1__submit_tasks_response__free_unpacked(r, NULL);
}

/* Submits `count` tasks (a multiple of 256) with SubmitTasks, 4 in flight. */
static double fill(long count) {
  grpc_slice p = batch_payload(256);
  load l = {.method = M_SUBMIT_BATCH,
            .payloads = &p,
            .n_payloads = 1,
            .inflight = 4,
            .max_calls = count / 256,
            .on_reply = record_ids,
            .cap = 1};
  int64_t t0 = now_ns();
  load_run(&l);
  double secs = (double)(now_ns() - t0) / 1e9;
  if (l.errors) fprintf(stderr, "rpc_load: fill: %ld refused\n", l.errors);
  load_free(&l);
  grpc_slice_unref(p);
  return secs;
}

/* Count-limited latency run at K=1 over the given requests. */
static void latency(const char *what, long level, int method, grpc_slice *p, size_t np,
                    long calls) {
  load l = {.method = method,
            .payloads = p,
            .n_payloads = np,
            .inflight = 1,
            .max_calls = calls + calls / 10,
            .warm_calls = calls / 10};
  load_run(&l);
  char label[128];
  snprintf(label, sizeof(label), "%s.%s.n%ld", O.label, what, level);
  load_print(label, &l, 1);
  load_free(&l);
}

static grpc_slice list_payload(int status, uint64_t after) {
  Oee__V1__ListTasksRequest r = OEE__V1__LIST_TASKS_REQUEST__INIT;
  char token[32] = "";
  if (after) snprintf(token, sizeof(token), "v1.%llx", (unsigned long long)after);
  r.page_size = 100;
  r.page_token = token;
  r.status_filter = (Oee__V1__TaskStatus)status;
  return pack(&r.base);
}

/* GetQueueStatus, summed: finished = done + error + cancelled. */
typedef struct counts {
  long long total;
  long queued, running, finished;
} counts;

static counts get_counts(void) {
  Oee__V1__GetQueueStatusRequest q = OEE__V1__GET_QUEUE_STATUS_REQUEST__INIT;
  Oee__V1__QueueStatus *st =
      (Oee__V1__QueueStatus *)call_sync(M_QUEUE, &q.base, &oee__v1__queue_status__descriptor);
  if (st == NULL) die("GetQueueStatus failed");
  counts c = {.total = st->total_tasks, .queued = st->queue_size};
  for (size_t i = 0; i < st->n_tasks_by_status; i++) {
    const char *k = st->tasks_by_status[i]->key;
    long v = st->tasks_by_status[i]->value;
    if (!strcmp(k, "running")) c.running = v;
    if (!strcmp(k, "done") || !strcmp(k, "error") || !strcmp(k, "cancelled")) c.finished += v;
  }
  oee__v1__queue_status__free_unpacked(st, NULL);
  return c;
}

static long long queue_counts(long *queued, long *running) {
  counts c = get_counts();
  *queued = c.queued;
  *running = c.running;
  return c.total;
}

/* ListTasks' total_size over every stored task (a page of one), or -1. */
static long list_total(void) {
  Oee__V1__ListTasksRequest r = OEE__V1__LIST_TASKS_REQUEST__INIT;
  r.page_size = 1;
  Oee__V1__ListTasksResponse *l = (Oee__V1__ListTasksResponse *)call_sync(
      M_LIST, &r.base, &oee__v1__list_tasks_response__descriptor);
  if (l == NULL) return -1;
  long n = l->total_size;
  oee__v1__list_tasks_response__free_unpacked(l, NULL);
  return n;
}

/* Parses --levels ("a,b,c") into levels (at most cap); returns the count. */
static int parse_levels(long *levels, int cap) {
  int nl = 0;
  for (const char *p = O.levels; *p && nl < cap;) {
    char *end;
    levels[nl++] = strtol(p, &end, 10);
    if (end == p) die("bad --levels");
    p = *end == ',' ? end + 1 : end;
  }
  if (nl == 0) die("empty --levels");
  return nl;
}

/* Parks every worker on a long `sleep` task (priority 10) so that whatever
 * is submitted next stays QUEUED; returns how many were parked. */
static char parked[64][40];

static int park_workers(void) {
  int np = O.park < 64 ? O.park : 64;
  for (int i = 0; i < np; i++) {
    Oee__V1__SubmitTaskRequest r = OEE__V1__SUBMIT_TASK_REQUEST__INIT;
    Oee__V1__SubmitTaskRequest__ContextEntry e = OEE__V1__SUBMIT_TASK_REQUEST__CONTEXT_ENTRY__INIT;
    Oee__V1__SubmitTaskRequest__ContextEntry *ep = &e;
    r.name = "park";
    r.task_type = "sleep";
    r.priority_present_case = OEE__V1__SUBMIT_TASK_REQUEST__PRIORITY_PRESENT_PRIORITY;
    r.priority = 10;
    e.key = "seconds";
    e.value = "3600";
    r.n_context = 1;
    r.context = &ep;
    Oee__V1__SubmitTaskResponse *resp = (Oee__V1__SubmitTaskResponse *)call_sync(
        M_SUBMIT, &r.base, &oee__v1__submit_task_response__descriptor);
    if (resp == NULL) die("cannot park a worker");
    snprintf(parked[i], 40, "%s", resp->task_id);
    oee__v1__submit_task_response__free_unpacked(resp, NULL);
  }
  usleep(300000);
  return np;
}

static int mode_park(void) {
  int np = park_workers();
  printf("RESULT %s parked=%d\n", O.label, np);
  return 0;
}

static int mode_scale(void) {
  long long rss_idle = rss_bytes(O.server_pid);
  int np = park_workers();
  long queued, running;
  queue_counts(&queued, &running);
  long long rss_conn = rss_bytes(O.server_pid);
  printf("RESULT %s.park parked=%d running=%ld rss_idle=%lld rss_connected=%lld\n", O.label, np,
         running, rss_idle, rss_conn);
  long levels[16];
  int nl = parse_levels(levels, 16);
  ids.cap = (size_t)levels[nl - 1] + 1024;
  ids.ids = xcalloc(ids.cap, sizeof(*ids.ids));
  long have = 0;
  long long rss_first = 0, rss_last = 0;
  for (int li = 0; li < nl; li++) {
    long want = (levels[li] + 255) / 256 * 256;
    double secs = want > have ? fill(want - have) : 0;
    double fill_rate = secs > 0 ? (double)(want - have) / secs : 0;
    have = want;
    usleep(200000);
    long long rss = rss_bytes(O.server_pid);
    long long total = queue_counts(&queued, &running);
    if (li == 0) rss_first = rss;
    rss_last = rss;
    printf("RESULT %s.level.n%ld tasks=%lld queued=%ld rss=%lld fill_rate=%.0f\n", O.label,
           levels[li], total, queued, rss, fill_rate);
    fflush(stdout);
    /* GetTask on 1,000 random known ids. */
    size_t ng = ids.n < 1000 ? ids.n : 1000;
    grpc_slice *gp = xcalloc(ng, sizeof(*gp));
    srand(42 + li);
    for (size_t i = 0; i < ng; i++) {
      Oee__V1__GetTaskRequest g = OEE__V1__GET_TASK_REQUEST__INIT;
      g.task_id = ids.ids[(size_t)rand() % ids.n];
      gp[i] = pack(&g.base);
    }
    latency("get", levels[li], M_GET, gp, ng, 2000);
    for (size_t i = 0; i < ng; i++) grpc_slice_unref(gp[i]);
    free(gp);
    grpc_slice lp[3] = {list_payload(0, 0), list_payload(0, (uint64_t)total / 2),
                        list_payload(OEE__V1__TASK_STATUS__TASK_STATUS_RUNNING, 0)};
    latency("list_first", levels[li], M_LIST, &lp[0], 1, 300);
    latency("list_middle", levels[li], M_LIST, &lp[1], 1, 300);
    /* Only the parked tasks (the oldest) are RUNNING: the page holds them,
     * and the store looks at every later task for one more match. */
    latency("list_filtered_sparse", levels[li], M_LIST, &lp[2], 1, 20);
    for (int i = 0; i < 3; i++) grpc_slice_unref(lp[i]);
    grpc_slice sp = submit_payload();
    latency("submit", levels[li], M_SUBMIT, &sp, 1, 500);
    grpc_slice_unref(sp);
    have += 550;
  }
  /* Memory per queued task between the first and the last level. */
  double per_task = (double)(rss_last - rss_first) / (double)(levels[nl - 1] - levels[0]);
  /* The strings each task carries: name, task_type, one context entry. */
  int strings = (int)(strlen("bench-task") + 1 + strlen("echo") + 1 + strlen("message") + 1 + 1);
  printf(
      "RESULT %s.memory rss_idle=%lld rss_connected=%lld rss_first=%lld rss_full=%lld "
      "bytes_per_task=%.0f string_bytes=%d overhead_per_task=%.0f\n",
      O.label, rss_idle, rss_conn, rss_first, rss_last, per_task, strings, per_task - strings);
  fflush(stdout);
  /* Let the backlog run: cancel the parked tasks, wait for an empty queue. */
  for (int i = 0; i < np; i++) {
    Oee__V1__CancelTaskRequest c = OEE__V1__CANCEL_TASK_REQUEST__INIT;
    c.task_id = parked[i];
    ProtobufCMessage *r = call_sync(M_CANCEL, &c.base, &oee__v1__cancel_task_response__descriptor);
    if (r) protobuf_c_message_free_unpacked(r, NULL);
  }
  int64_t t0 = now_ns();
  long long total = queue_counts(&queued, &running);
  while ((queued > 0 || running > 0) && now_ns() - t0 < 300000000000LL) {
    usleep(20000);
    total = queue_counts(&queued, &running);
  }
  double drain_secs = (double)(now_ns() - t0) / 1e9;
  long long rss_done = rss_bytes(O.server_pid);
  Oee__V1__ClearCompletedTasksRequest cr = OEE__V1__CLEAR_COMPLETED_TASKS_REQUEST__INIT;
  cr.keep_recent_present_case =
      OEE__V1__CLEAR_COMPLETED_TASKS_REQUEST__KEEP_RECENT_PRESENT_KEEP_RECENT;
  cr.keep_recent = 0;
  Oee__V1__ClearCompletedTasksResponse *cleared = (Oee__V1__ClearCompletedTasksResponse *)call_sync(
      M_CLEAR, &cr.base, &oee__v1__clear_completed_tasks_response__descriptor);
  usleep(300000);
  long long rss_clear = rss_bytes(O.server_pid);
  long long left = queue_counts(&queued, &running);
  printf(
      "RESULT %s.clear ran=%lld drain_seconds=%.3f drain_rate=%.0f rss_all_done=%lld "
      "cleared=%d left=%lld rss_after_clear=%lld\n",
      O.label, total, drain_secs, (double)total / drain_secs, rss_done,
      cleared ? cleared->cleared : -1, left, rss_clear);
  fflush(stdout);
  if (cleared) oee__v1__clear_completed_tasks_response__free_unpacked(cleared, NULL);
  free(ids.ids);
  return 0;
}

/* ------------------------------------------------------------ health */

/* 1 when a TCP connection to --target (host:port, numeric) is accepted. */
static int port_open(void) {
  char host[64];
  int port = 0;
  if (sscanf(O.target, "%63[^:]:%d", host, &port) != 2) die("--target must be host:port");
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (inet_pton(AF_INET, host, &a.sin_addr) != 1) die("--target host must be an IPv4 address");
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) die("socket");
  int ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
  close(fd);
  return ok;
}

/* 1 when Health/Check (service "") answers SERVING. */
static int serving(void) {
  Grpc__Health__V1__HealthCheckRequest q = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  Grpc__Health__V1__HealthCheckResponse *r = (Grpc__Health__V1__HealthCheckResponse *)call_sync(
      M_HEALTH, &q.base, &grpc__health__v1__health_check_response__descriptor);
  int ok = r && r->status == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
  if (r) grpc__health__v1__health_check_response__free_unpacked(r, NULL);
  return ok;
}

static int mode_health(void) {
  int64_t limit = now_ns() + (int64_t)(O.seconds * 1e9);
  /* The port first: gRPC's reconnect backoff would blur the figure. */
  while (!port_open()) {
    if (now_ns() > limit) die("the server did not listen in time");
    usleep(2000);
  }
  while (!serving()) {
    if (now_ns() > limit) die("the server did not answer health in time");
    usleep(2000);
  }
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  long long real_ns = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
  long long rss = rss_bytes(O.server_pid);
  counts c = get_counts();
  printf(
      "RESULT %s seconds=%.3f rss=%lld tasks=%lld queued=%ld running=%ld finished=%ld "
      "list_total=%ld\n",
      O.label, O.since_ns > 0 ? (double)(real_ns - O.since_ns) / 1e9 : -1.0, rss, c.total, c.queued,
      c.running, c.finished, list_total());
  fflush(stdout);
  return 0;
}

/* ------------------------------------------------------------- churn */

/* Submits until `want` tasks were submitted, then waits until every
 * acknowledged one completed. */
static void churn_to(e2e *e, grpc_slice payload, long want) {
  for (;;) {
    if (e->watch->ended) die("the watch stream ended (it fell behind?)");
    if (e->submitted >= want && e->inflight == 0 && e->watch->events >= e->acked) return;
    while (e->n_free > 0 && e->submitted < want &&
           e->submitted - e->refused - e->watch->events + e->batch <= O.window) {
      e2e_submit(e, M_SUBMIT_BATCH, payload);
    }
    pump_once();
  }
}

static int mode_churn(void) {
  long levels[64];
  int nl = parse_levels(levels, 64);
  stream w = {0};
  watch_finished(&w);
  e2e e = {.watch = &w, .batch = O.batch, .max_inflight = O.inflight};
  e2e_slots(&e);
  grpc_slice payload = batch_payload_ctx(O.batch, O.context_bytes);
  printf("RESULT %s.start rss=%lld context_bytes=%d\n", O.label, rss_bytes(O.server_pid),
         O.context_bytes);
  int64_t t0 = now_ns(), t_prev = t0;
  long prev = 0;
  for (int li = 0; li < nl; li++) {
    churn_to(&e, payload, (levels[li] + e.batch - 1) / e.batch * e.batch);
    int64_t t = now_ns();
    usleep(200000); /* let retention and the allocator settle */
    counts c = get_counts();
    printf(
        "RESULT %s.n%ld tasks=%ld rss=%lld stored=%lld finished=%ld queued=%ld refused=%ld "
        "seconds=%.3f rate=%.0f\n",
        O.label, levels[li], w.events, rss_bytes(O.server_pid), c.total, c.finished, c.queued,
        e.refused, (double)(t - t0) / 1e9,
        (double)(w.events - prev) / ((double)(t - t_prev) / 1e9));
    fflush(stdout);
    prev = w.events;
    t_prev = now_ns();
  }
  counts c = get_counts();
  printf(
      "RESULT %s.end tasks=%ld refused=%ld stored=%lld finished=%ld queued=%ld running=%ld "
      "list_total=%ld window=%d rss=%lld\n",
      O.label, w.events, e.refused, c.total, c.finished, c.queued, c.running, list_total(),
      O.window, rss_bytes(O.server_pid));
  fflush(stdout);
  stream_close(&w);
  grpc_slice_unref(payload);
  free(e.calls);
  free(e.free_slots);
  return e.refused == 0 ? 0 : 1;
}

static int mode_counts(void) {
  counts c = get_counts();
  printf("RESULT %s rss=%lld stored=%lld finished=%ld queued=%ld running=%ld list_total=%ld\n",
         O.label, rss_bytes(O.server_pid), c.total, c.finished, c.queued, c.running, list_total());
  fflush(stdout);
  return 0;
}

/* -------------------------------------------------------------- main */

int main(int argc, char **argv) {
  parse_opts(argc, argv);
  grpc_setup();
  int rc;
  if (!strcmp(O.mode, "echo"))
    rc = mode_unary(M_ECHO, echo_payload(), 1);
  else if (!strcmp(O.mode, "submit"))
    rc = mode_unary(M_SUBMIT, submit_payload(), 1);
  else if (!strcmp(O.mode, "batch"))
    rc = mode_unary(M_SUBMIT_BATCH, batch_payload(O.batch), O.batch);
  else if (!strcmp(O.mode, "e2e"))
    rc = mode_e2e();
  else if (!strcmp(O.mode, "watch"))
    rc = mode_watch();
  else if (!strcmp(O.mode, "scale"))
    rc = mode_scale();
  else if (!strcmp(O.mode, "park"))
    rc = mode_park();
  else if (!strcmp(O.mode, "health"))
    rc = mode_health();
  else if (!strcmp(O.mode, "churn"))
    rc = mode_churn();
  else if (!strcmp(O.mode, "counts"))
    rc = mode_counts();
  else
    die("unknown --mode");
  grpc_channel_destroy(channel);
  grpc_completion_queue_shutdown(cq);
  while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
         GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(cq);
  if (n_auth) grpc_slice_unref(auth_md.value);
  grpc_shutdown();
  return rc;
}
