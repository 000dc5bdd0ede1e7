/*
 * remote_bench.c - remote workers (oee.v1.WorkerService) under load: the
 * rate of no-op tasks run by polling workers, and how soon a waiting poll
 * gets a task that was just submitted.
 *
 * DESIGN: every tag on a completion queue is an `op` whose function runs on
 * completion. The main thread drives one queue: the submitter and its watch
 * stream (rate), or the poller and the submitter (wakeup). In rate mode the
 * workers are served by --threads threads, each with a completion queue of
 * its own (by default one thread per worker, as separate worker processes
 * would be and as bench/bs_client.c runs a thread per connection); the
 * threads share only the read-only clock marks and the `stopping` flag.
 * Every worker, the submitter and the poller has a channel of its own, made
 * with GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL so that each is its own TCP
 * connection. Requests are packed with the generated protobuf-c code;
 * replies are decoded only where their content is needed (lease ids,
 * SubmitTasks results).
 *
 * Modes (--mode):
 *   rate    tasks of --type are submitted with SubmitTasks of --batch
 *           (--inflight calls at once) on the submitter's channel, at most
 *           --window of them unfinished; their completions are counted on
 *           one WatchTasks stream (that type, status DONE) on the same
 *           channel. --workers workers hold at most --max-tasks leases each:
 *           one PollTasks (max_tasks = its free slots, wait_seconds --wait)
 *           is outstanding while a slot is free, and each lease is ended with
 *           its own CompleteTask as soon as it arrives (the API has no batch
 *           completion). The rate is DONE events seen during --seconds after
 *           --warmup; then submission stops and the run waits until every
 *           acknowledged task was seen (the rest are reported as lost).
 *   wakeup  one worker waits in PollTasks (max_tasks 1, wait_seconds 10)
 *           with nothing queued; --gap-us later the bench reads the clock and
 *           sends one SubmitTask on its own channel; the figure is the time
 *           from then to the lease's arrival at the poller (and, beside it,
 *           to the SubmitTask's acknowledgement). The lease is completed and
 *           the next poll started: --polls samples after --warm-polls
 *           uncounted ones, strictly one after another. Each sample's lease
 *           time minus its acknowledgement time is shown too.
 *   alone   the baseline of wakeup: the same SubmitTask after the same gap
 *           with no poll waiting. Its tasks stay QUEUED: give it a remote
 *           type (--type) that no worker polls.
 *
 * Output: "RESULT <label> key=value ..." lines, which bench/report.py reads;
 * diagnostics go to stderr. Exit status 0 unless the measurement failed.
 * Usage: remote_bench --target HOST:PORT --mode rate|wakeup|alone [--type T]
 *   rate:   [--workers 16] [--threads 16] [--max-tasks 32] [--wait 2]
 *           [--batch 256] [--inflight 4] [--window 2048] [--seconds 3]
 *           [--warmup 0.5] [--server-pid PID (its CPU share is printed)]
 *   wakeup, alone: [--polls 2000] [--warm-polls 50] [--gap-us 1000]
 *           [--spin 0|1 (1: the bench spins through the gap instead of
 *           sleeping, so that its own wake-up from idle is not in the
 *           figure)]
 *   all:    [--label L]; the server must list T (default remote-noop) in
 *           its remote_types.
 */
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "oee/v1/orchestrator.pb-c.h"

#define LEASE_ID_BYTES 64 /* lease ids are 36-character UUIDs */
#define MAX_WORKERS 256
#define MAX_LEASES 100         /* PollTasks' max_tasks limit */
#define DRAIN_NS 20000000000LL /* how long the end waits for the last tasks */
#define LAT_PER_WORKER 262144  /* CompleteTask latencies kept per worker */

/* ------------------------------------------------------------ helpers */

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what) {
  fprintf(stderr, "remote_bench: %s\n", what);
  exit(2);
}

static void *xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size);
  if (p == NULL) die("out of memory");
  return p;
}

static grpc_slice pack(const ProtobufCMessage *m) {
  grpc_slice s = grpc_slice_malloc(protobuf_c_message_get_packed_size(m));
  protobuf_c_message_pack(m, GRPC_SLICE_START_PTR(s));
  return s;
}

/* Decodes a reply; NULL when there is none or it does not parse. The caller
 * frees the message with protobuf_c_message_free_unpacked. */
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

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

/* Percentile q (0..1) of a sorted array of ns, in microseconds. */
static double pct_us(const int64_t *v, size_t n, double q) {
  if (n == 0) return 0;
  return (double)v[(size_t)(q * (double)(n - 1) + 0.5)] / 1000.0;
}

/* CPU time (user + system, ns) of a process; pid 0 is this one; 0 when
 * unknown. */
static int64_t cpu_ns(int pid) {
  char path[64];
  snprintf(path, sizeof(path), pid > 0 ? "/proc/%d/stat" : "/proc/self/stat", pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return 0;
  char buf[1024];
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

/* ---------------------------------------------------------- options */

typedef struct opts {
  const char *target, *mode, *label, *type;
  int workers, threads, max_tasks, batch, inflight, window, polls, warm_polls, gap_us, spin,
      server_pid;
  double seconds, warmup, wait;
} opts;

static opts O = {
    .target = "127.0.0.1:50051",
    .mode = "rate",
    .label = "remote",
    .type = "remote-noop",
    .workers = 16,
    .threads = 16,
    .max_tasks = 32,
    .batch = 256,
    .inflight = 4,
    .window = 2048,
    .polls = 2000,
    .warm_polls = 50,
    .gap_us = 1000,
    .seconds = 3.0,
    .warmup = 0.5,
    .wait = 2.0,
};

/* Sets the option named k from v; 0 when k is known. */
static int set_opt(const char *k, const char *v) {
  static const struct {
    const char *name;
    int *ival;
    double *dval;
    const char **sval;
  } table[] = {
      {"--target", NULL, NULL, &O.target},         {"--mode", NULL, NULL, &O.mode},
      {"--label", NULL, NULL, &O.label},           {"--type", NULL, NULL, &O.type},
      {"--workers", &O.workers, NULL, NULL},       {"--threads", &O.threads, NULL, NULL},
      {"--max-tasks", &O.max_tasks, NULL, NULL},   {"--batch", &O.batch, NULL, NULL},
      {"--inflight", &O.inflight, NULL, NULL},     {"--window", &O.window, NULL, NULL},
      {"--polls", &O.polls, NULL, NULL},           {"--gap-us", &O.gap_us, NULL, NULL},
      {"--warm-polls", &O.warm_polls, NULL, NULL}, {"--seconds", NULL, &O.seconds, NULL},
      {"--warmup", NULL, &O.warmup, NULL},         {"--wait", NULL, &O.wait, NULL},
      {"--server-pid", &O.server_pid, NULL, NULL}, {"--spin", &O.spin, NULL, NULL},
  };
  for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
    if (strcmp(k, table[i].name) != 0) continue;
    if (table[i].ival) *table[i].ival = atoi(v);
    if (table[i].dval) *table[i].dval = atof(v);
    if (table[i].sval) *table[i].sval = v;
    return 0;
  }
  return -1;
}

static void parse_opts(int argc, char **argv) {
  for (int i = 1; i < argc; i += 2) {
    if (i + 1 >= argc) die("option without a value");
    if (set_opt(argv[i], argv[i + 1]) != 0) die("unknown option");
  }
  if (O.threads > O.workers) O.threads = O.workers;
  if (O.workers < 1 || O.workers > MAX_WORKERS || O.threads < 1 || O.max_tasks < 1 ||
      O.max_tasks > MAX_LEASES || O.batch < 1 || O.inflight < 1 || O.window < O.batch ||
      O.polls < 1 || O.warm_polls < 0 || O.gap_us < 0 || O.seconds <= 0 || O.warmup < 0 ||
      O.wait < 0 || O.wait > 60) {
    die("bad option value");
  }
}

/* ------------------------------------------------------------ gRPC */

/* Every completion-queue tag is an op: fn(owner, ok) runs on completion. */
typedef struct op {
  void (*fn)(void *owner, int ok);
  void *owner;
} op;

static grpc_completion_queue *main_cq; /* the main thread's */

enum { M_SUBMIT, M_SUBMIT_BATCH, M_WATCH, M_POLL, M_COMPLETE, M_N };
static const char *const method_paths[M_N] = {
    "/oee.v1.OrchestratorService/SubmitTask", "/oee.v1.OrchestratorService/SubmitTasks",
    "/oee.v1.OrchestratorService/WatchTasks", "/oee.v1.WorkerService/PollTasks",
    "/oee.v1.WorkerService/CompleteTask",
};

/* One connection: a channel with its own subchannel pool, its methods, and
 * the completion queue of the thread that uses it. */
typedef struct conn {
  grpc_channel *ch;
  void *methods[M_N];
  grpc_completion_queue *cq;
} conn;

static void conn_open(conn *c, grpc_completion_queue *cq) {
  c->cq = cq;
  grpc_arg arg = {
      .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, .value.integer = 1};
  grpc_channel_args args = {.num_args = 1, .args = &arg};
  grpc_channel_credentials *creds = grpc_insecure_credentials_create();
  c->ch = grpc_channel_create(O.target, creds, &args);
  grpc_channel_credentials_release(creds);
  for (int i = 0; i < M_N; i++) {
    c->methods[i] = grpc_channel_register_call(c->ch, method_paths[i], NULL, NULL);
  }
}

/* Runs the completion of at most one event of cq, waiting until deadline
 * (ns). */
static void pump_once(grpc_completion_queue *cq, int64_t deadline) {
  int64_t wait = deadline - now_ns();
  if (wait < 0) wait = 0;
  gpr_timespec until =
      gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_nanos(wait, GPR_TIMESPAN));
  grpc_event ev = grpc_completion_queue_next(cq, until, NULL);
  if (ev.type == GRPC_OP_COMPLETE) {
    op *o = ev.tag;
    o->fn(o->owner, ev.success);
  }
}

/* Runs completions of cq until *flag is zero or the deadline (ns) passes. */
static void pump_while(grpc_completion_queue *cq, const int *flag, int64_t deadline) {
  while (*flag && now_ns() < deadline) pump_once(cq, deadline);
}

static void cq_destroy(grpc_completion_queue *cq) {
  grpc_completion_queue_shutdown(cq);
  while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
         GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(cq);
}

/* One unary call: the six client ops in one batch. on_end gets the status
 * and the reply (NULL unless OK; freed after on_end returns), and may start
 * the next call on the same slot. */
typedef struct ucall ucall;
typedef void (*ucall_end_fn)(ucall *c, grpc_status_code st, grpc_byte_buffer *reply);
struct ucall {
  op done;
  grpc_call *call;
  grpc_byte_buffer *send, *recv;
  grpc_metadata_array md_init, md_trail;
  grpc_status_code status;
  grpc_slice details;
  int64_t t0; /* ns, when started */
  ucall_end_fn on_end;
  void *user;
  int slot;
  int method; /* M_* */
};

/* Shows the first few failed calls (of any thread) on stderr. */
static void report_status(ucall *c, grpc_status_code st) {
  static atomic_int reported;
  if (atomic_fetch_add(&reported, 1) >= 5) return;
  char *d = grpc_slice_to_c_string(c->details);
  fprintf(stderr, "remote_bench: %s failed: status %d %s\n", method_paths[c->method], (int)st, d);
  gpr_free(d);
}

static void ucall_finished(void *owner, int ok) {
  ucall *c = owner;
  grpc_status_code st = ok ? c->status : GRPC_STATUS_UNKNOWN;
  grpc_byte_buffer *reply = st == GRPC_STATUS_OK ? c->recv : NULL;
  if (st != GRPC_STATUS_OK && c->recv) grpc_byte_buffer_destroy(c->recv);
  if (st != GRPC_STATUS_OK && st != GRPC_STATUS_CANCELLED) report_status(c, st);
  grpc_call_unref(c->call);
  grpc_byte_buffer_destroy(c->send);
  grpc_metadata_array_destroy(&c->md_init);
  grpc_metadata_array_destroy(&c->md_trail);
  grpc_slice_unref(c->details);
  c->call = NULL;
  c->on_end(c, st, reply);
  if (reply) grpc_byte_buffer_destroy(reply);
}

/* Starts a call of method on conn with payload (not consumed). */
static void ucall_start(ucall *c, conn *cn, int method, grpc_slice payload) {
  c->done = (op){ucall_finished, c};
  c->method = method;
  c->call = grpc_channel_create_registered_call(cn->ch, NULL, GRPC_PROPAGATE_DEFAULTS, cn->cq,
                                                cn->methods[method],
                                                gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
  c->send = grpc_raw_byte_buffer_create(&payload, 1);
  c->recv = NULL;
  c->details = grpc_empty_slice();
  grpc_metadata_array_init(&c->md_init);
  grpc_metadata_array_init(&c->md_trail);
  grpc_op ops[6];
  memset(ops, 0, sizeof(ops));
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
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

/* ---------------------------------------------------------- requests */

/* A task of --type as the other benchmarks send it: one context entry. */
static void task_request(Oee__V1__SubmitTaskRequest *r, Oee__V1__SubmitTaskRequest__ContextEntry *e,
                         Oee__V1__SubmitTaskRequest__ContextEntry **ep) {
  oee__v1__submit_task_request__init(r);
  oee__v1__submit_task_request__context_entry__init(e);
  r->name = "bench-remote";
  r->task_type = (char *)O.type;
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

static grpc_slice batch_payload(int n) {
  Oee__V1__SubmitTaskRequest r;
  Oee__V1__SubmitTaskRequest__ContextEntry e, *ep;
  task_request(&r, &e, &ep);
  Oee__V1__SubmitTaskRequest **v = xcalloc((size_t)n, sizeof(*v));
  for (int i = 0; i < n; i++) v[i] = &r;
  Oee__V1__SubmitTasksRequest b = OEE__V1__SUBMIT_TASKS_REQUEST__INIT;
  b.n_requests = (size_t)n;
  b.requests = v;
  grpc_slice s = pack(&b.base);
  free(v);
  return s;
}

static grpc_slice poll_payload(const char *worker_id, int max_tasks, double wait, double lease) {
  char *types[1] = {(char *)O.type};
  Oee__V1__PollTasksRequest r = OEE__V1__POLL_TASKS_REQUEST__INIT;
  r.worker_id = (char *)worker_id;
  r.n_task_types = 1;
  r.task_types = types;
  r.max_tasks_present_case = OEE__V1__POLL_TASKS_REQUEST__MAX_TASKS_PRESENT_MAX_TASKS;
  r.max_tasks = max_tasks;
  r.wait_seconds_present_case = OEE__V1__POLL_TASKS_REQUEST__WAIT_SECONDS_PRESENT_WAIT_SECONDS;
  r.wait_seconds = wait;
  r.lease_seconds_present_case = OEE__V1__POLL_TASKS_REQUEST__LEASE_SECONDS_PRESENT_LEASE_SECONDS;
  r.lease_seconds = lease;
  return pack(&r.base);
}

static grpc_slice complete_payload(const char *lease_id, const char *worker_id) {
  Oee__V1__CompleteTaskRequest r = OEE__V1__COMPLETE_TASK_REQUEST__INIT;
  r.lease_id = (char *)lease_id;
  r.result = "";
  r.worker_id = (char *)worker_id;
  return pack(&r.base);
}

/* ------------------------------------------------------ the watch stream */

/* WatchTasks on the final status of --type: a start batch (request and
 * initial metadata), a status batch and one RECV_MESSAGE at a time. Each
 * message is one task seen DONE; messages are counted, not decoded. */
typedef struct stream {
  op started, message, status;
  grpc_call *call;
  grpc_byte_buffer *send, *recv;
  grpc_metadata_array md_init, md_trail;
  grpc_status_code code;
  grpc_slice details;
  int ready, ended;
  long events;
} stream;

static void stream_recv(stream *s) {
  grpc_op o;
  memset(&o, 0, sizeof(o));
  o.op = GRPC_OP_RECV_MESSAGE;
  o.data.recv_message.recv_message = &s->recv;
  if (grpc_call_start_batch(s->call, &o, 1, &s->message, NULL) != GRPC_CALL_OK) die("watch recv");
}

static void stream_started(void *owner, int ok) {
  stream *s = owner;
  s->ready = ok ? 1 : -1;
}

static void stream_message(void *owner, int ok) {
  stream *s = owner;
  if (!ok || s->recv == NULL) return; /* the status batch tells the end */
  s->events++;
  grpc_byte_buffer_destroy(s->recv);
  s->recv = NULL;
  stream_recv(s);
}

static void stream_status(void *owner, int ok) {
  stream *s = owner;
  s->ended = 1;
}

static void stream_start_batches(stream *s) {
  grpc_op ops[4];
  memset(ops, 0, sizeof(ops));
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
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

/* Opens the stream and waits until the server answered its start (its
 * handler has subscribed by then), plus a margin. */
static void stream_open(stream *s, conn *cn) {
  static const Oee__V1__TaskStatus done[] = {OEE__V1__TASK_STATUS__TASK_STATUS_DONE};
  char *types[1] = {(char *)O.type};
  Oee__V1__WatchTasksRequest wr = OEE__V1__WATCH_TASKS_REQUEST__INIT;
  wr.n_task_types = 1;
  wr.task_types = types;
  wr.n_statuses = 1;
  wr.statuses = (Oee__V1__TaskStatus *)done;
  s->started = (op){stream_started, s};
  s->message = (op){stream_message, s};
  s->status = (op){stream_status, s};
  s->call = grpc_channel_create_registered_call(cn->ch, NULL, GRPC_PROPAGATE_DEFAULTS, cn->cq,
                                                cn->methods[M_WATCH],
                                                gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
  grpc_slice p = pack(&wr.base);
  s->send = grpc_raw_byte_buffer_create(&p, 1);
  grpc_slice_unref(p);
  s->details = grpc_empty_slice();
  grpc_metadata_array_init(&s->md_init);
  grpc_metadata_array_init(&s->md_trail);
  stream_start_batches(s);
  int64_t until = now_ns() + 10000000000LL;
  while (s->ready == 0 && now_ns() < until) pump_once(cn->cq, until);
  if (s->ready != 1 || s->ended) die("the watch stream did not start");
  int flag = 1;
  pump_while(cn->cq, &flag, now_ns() + 100000000); /* 100 ms margin */
}

static void stream_close(stream *s, grpc_completion_queue *cq) {
  if (!s->ended) grpc_call_cancel(s->call, NULL);
  int64_t until = now_ns() + 5000000000LL;
  while (!s->ended && now_ns() < until) pump_once(cq, until);
  grpc_call_unref(s->call);
  grpc_byte_buffer_destroy(s->send);
  grpc_metadata_array_destroy(&s->md_init);
  grpc_metadata_array_destroy(&s->md_trail);
  grpc_slice_unref(s->details);
}

/* ------------------------------------------------------ rate: workers */

/* The clock marks of the measured window (set before any worker starts,
 * read-only after) and the end signal, shared by the workers' threads. */
typedef struct crew {
  int64_t warm_end, end; /* CLOCK_MONOTONIC ns */
  atomic_int stopping;   /* set by the main thread: cancel polls and leave */
} crew;

static crew C;

/* A polling worker, served by one of the --threads threads on that
 * thread's completion queue; no other thread touches it until joined.
 * Invariant: leases held == max_tasks - n_free; at most one PollTasks
 * outstanding (polling), asking for n_free leases. */
typedef struct worker {
  conn cn;
  char id[32];
  ucall poll;
  int polling;
  ucall *completes; /* max_tasks slots */
  char (*lease_ids)[LEASE_ID_BYTES];
  int *free_slots, n_free;
  long polls, empty_polls, leases, completed, errors;
  long window_polls, window_leases; /* polls answered in the window */
  int64_t *lat;                     /* CompleteTask latencies (ns) in the window */
  size_t nlat;
} worker;

static int stopping(void) { return atomic_load_explicit(&C.stopping, memory_order_relaxed); }

static void worker_poll(worker *w);

static void complete_end(ucall *c, grpc_status_code st, grpc_byte_buffer *reply) {
  worker *w = c->user;
  int64_t t = now_ns();
  w->free_slots[w->n_free++] = c->slot;
  if (st != GRPC_STATUS_OK) {
    w->errors++;
  } else {
    w->completed++;
    if (t >= C.warm_end && t <= C.end && w->nlat < LAT_PER_WORKER) w->lat[w->nlat++] = t - c->t0;
  }
  if (!w->polling && !stopping()) worker_poll(w);
}

/* Ends one lease with CompleteTask on a free slot. */
static void worker_complete(worker *w, const char *lease_id) {
  if (w->n_free == 0 || strlen(lease_id) >= LEASE_ID_BYTES)
    die("a lease beyond the worker's slots");
  int slot = w->free_slots[--w->n_free];
  ucall *c = &w->completes[slot];
  strcpy(w->lease_ids[slot], lease_id);
  c->on_end = complete_end;
  c->user = w;
  c->slot = slot;
  grpc_slice p = complete_payload(w->lease_ids[slot], w->id);
  ucall_start(c, &w->cn, M_COMPLETE, p);
  grpc_slice_unref(p);
}

static void poll_end(ucall *c, grpc_status_code st, grpc_byte_buffer *reply) {
  worker *w = c->user;
  int64_t t = now_ns();
  w->polling = 0;
  Oee__V1__PollTasksResponse *r =
      (Oee__V1__PollTasksResponse *)unpack(&oee__v1__poll_tasks_response__descriptor, reply);
  if (r == NULL) {
    if (!stopping()) w->errors++;
  } else {
    w->polls++;
    w->empty_polls += r->n_leases == 0;
    w->leases += (long)r->n_leases;
    if (t >= C.warm_end && t <= C.end) w->window_polls++, w->window_leases += (long)r->n_leases;
    for (size_t i = 0; i < r->n_leases; i++) worker_complete(w, r->leases[i]->lease_id);
    oee__v1__poll_tasks_response__free_unpacked(r, NULL);
  }
  if (w->errors > 100) die("too many failed calls");
  if (!stopping() && w->n_free > 0) worker_poll(w);
}

static void worker_poll(worker *w) {
  w->polling = 1;
  w->poll.on_end = poll_end;
  w->poll.user = w;
  grpc_slice p = poll_payload(w->id, w->n_free, O.wait, 60.0);
  ucall_start(&w->poll, &w->cn, M_POLL, p);
  grpc_slice_unref(p);
}

/* A thread of the workers: it serves workers first, first + --threads, ...
 * on a completion queue of its own. */
typedef struct crew_thread {
  pthread_t thread;
  worker *ws;
  int first;
} crew_thread;

/* Whether any of a thread's workers still has a call outstanding. */
static int crew_busy(const crew_thread *t) {
  for (int i = t->first; i < O.workers; i += O.threads) {
    if (t->ws[i].polling || t->ws[i].n_free < O.max_tasks) return 1;
  }
  return 0;
}

/* Polls and completes until told to stop, then cancels the waiting polls
 * and waits (bounded) for the calls to end. */
static void *crew_main(void *arg) {
  crew_thread *t = arg;
  grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
  for (int i = t->first; i < O.workers; i += O.threads) {
    conn_open(&t->ws[i].cn, cq);
    worker_poll(&t->ws[i]);
  }
  while (!stopping()) pump_once(cq, now_ns() + 10000000);
  for (int i = t->first; i < O.workers; i += O.threads) {
    if (t->ws[i].polling) grpc_call_cancel(t->ws[i].poll.call, NULL);
  }
  int64_t until = now_ns() + 10000000000LL;
  while (crew_busy(t) && now_ns() < until) pump_once(cq, until);
  for (int i = t->first; i < O.workers; i += O.threads) grpc_channel_destroy(t->ws[i].cn.ch);
  cq_destroy(cq);
  return NULL;
}

static worker *workers_start(crew_thread *threads) {
  worker *ws = xcalloc((size_t)O.workers, sizeof(*ws));
  for (int i = 0; i < O.workers; i++) {
    worker *w = &ws[i];
    snprintf(w->id, sizeof(w->id), "bench-worker-%02d", i);
    w->completes = xcalloc((size_t)O.max_tasks, sizeof(*w->completes));
    w->lease_ids = xcalloc((size_t)O.max_tasks, sizeof(*w->lease_ids));
    w->free_slots = xcalloc((size_t)O.max_tasks, sizeof(int));
    for (int s = 0; s < O.max_tasks; s++) w->free_slots[w->n_free++] = s;
    w->lat = xcalloc(LAT_PER_WORKER, sizeof(*w->lat));
  }
  for (int i = 0; i < O.threads; i++) {
    threads[i] = (crew_thread){.ws = ws, .first = i};
    if (pthread_create(&threads[i].thread, NULL, crew_main, &threads[i]) != 0) {
      die("pthread_create");
    }
  }
  return ws;
}

static void workers_join(crew_thread *threads) {
  atomic_store(&C.stopping, 1);
  for (int i = 0; i < O.threads; i++) pthread_join(threads[i].thread, NULL);
}

static void workers_free(worker *ws) {
  for (int i = 0; i < O.workers; i++) {
    free(ws[i].completes);
    free(ws[i].lease_ids);
    free(ws[i].free_slots);
    free(ws[i].lat);
  }
  free(ws);
}

/* ---------------------------------------------------- rate: submitter */

/* SubmitTasks calls in flight, at most --window tasks unfinished. */
typedef struct feeder {
  conn cn;
  stream watch;
  grpc_slice payload;
  ucall *calls;
  int *free_slots, n_free;
  long submitted, acked, refused;
} feeder;

static void feed_end(ucall *c, grpc_status_code st, grpc_byte_buffer *reply) {
  feeder *f = c->user;
  f->free_slots[f->n_free++] = c->slot;
  Oee__V1__SubmitTasksResponse *r =
      (Oee__V1__SubmitTasksResponse *)unpack(&oee__v1__submit_tasks_response__descriptor, reply);
  if (r == NULL) {
    f->refused += O.batch;
    return;
  }
  for (size_t i = 0; i < r->n_results; i++) {
    if (r->results[i]->code == 0) {
      f->acked++;
    } else if (f->refused++ < 3) {
      fprintf(stderr, "remote_bench: batch entry refused: %s\n", r->results[i]->message);
    }
  }
  oee__v1__submit_tasks_response__free_unpacked(r, NULL);
}

/* Starts SubmitTasks calls while slots are free and the window allows. */
static void feed(feeder *f) {
  while (f->n_free > 0 && f->submitted - f->refused - f->watch.events + O.batch <= O.window) {
    int slot = f->free_slots[--f->n_free];
    ucall *c = &f->calls[slot];
    c->on_end = feed_end;
    c->user = f;
    c->slot = slot;
    ucall_start(c, &f->cn, M_SUBMIT_BATCH, f->payload);
    f->submitted += O.batch;
  }
}

static void feeder_open(feeder *f) {
  conn_open(&f->cn, main_cq);
  stream_open(&f->watch, &f->cn);
  f->payload = batch_payload(O.batch);
  f->calls = xcalloc((size_t)O.inflight, sizeof(*f->calls));
  f->free_slots = xcalloc((size_t)O.inflight, sizeof(int));
  for (int i = 0; i < O.inflight; i++) f->free_slots[f->n_free++] = i;
}

static void feeder_close(feeder *f) {
  stream_close(&f->watch, f->cn.cq);
  grpc_slice_unref(f->payload);
  free(f->calls);
  free(f->free_slots);
  grpc_channel_destroy(f->cn.ch);
}

/* --------------------------------------------------------- rate: run */

/* CPU time (ns) of this process and of --server-pid at one moment. */
typedef struct cpu_mark {
  int64_t self, server;
} cpu_mark;

static cpu_mark cpu_now(void) { return (cpu_mark){cpu_ns(0), cpu_ns(O.server_pid)}; }

static void rate_print(const feeder *f, worker *ws, long steady, cpu_mark c0, cpu_mark c1) {
  long polls = 0, empty = 0, errors = 0, wpolls = 0, wleases = 0;
  size_t nlat = 0;
  for (int i = 0; i < O.workers; i++) nlat += ws[i].nlat;
  int64_t *lat = xcalloc(nlat, sizeof(*lat));
  nlat = 0;
  for (int i = 0; i < O.workers; i++) {
    worker *w = &ws[i];
    polls += w->polls, empty += w->empty_polls, errors += w->errors;
    wpolls += w->window_polls, wleases += w->window_leases;
    memcpy(lat + nlat, w->lat, w->nlat * sizeof(*lat));
    nlat += w->nlat;
  }
  qsort(lat, nlat, sizeof(*lat), cmp_i64);
  double secs = (double)(C.end - C.warm_end) / 1e9;
  printf(
      "RESULT %s workers=%d threads=%d max_tasks=%d batch=%d inflight=%d window=%d acked=%ld "
      "refused=%ld "
      "completed=%ld steady_completed=%ld seconds=%.3f rate=%.0f lost=%ld polls=%ld "
      "empty_polls=%ld leases_per_poll=%.2f errors=%ld complete_p50_us=%.1f complete_p99_us=%.1f "
      "client_cpu=%.3f server_cpu=%.3f\n",
      O.label, O.workers, O.threads, O.max_tasks, O.batch, O.inflight, O.window, f->acked,
      f->refused, f->watch.events, steady, secs, (double)steady / secs, f->acked - f->watch.events,
      polls, empty, wpolls ? (double)wleases / (double)wpolls : 0.0, errors, pct_us(lat, nlat, 0.5),
      pct_us(lat, nlat, 0.99), (double)(c1.self - c0.self) / 1e9 / secs,
      O.server_pid > 0 ? (double)(c1.server - c0.server) / 1e9 / secs : 0.0);
  fflush(stdout);
  free(lat);
}

/* Submits for warm-up + --seconds, then waits (bounded) until every
 * acknowledged task was seen DONE, and stops the workers. */
static int mode_rate(void) {
  feeder f = {0};
  feeder_open(&f);
  C.warm_end = now_ns() + (int64_t)(O.warmup * 1e9);
  C.end = C.warm_end + (int64_t)(O.seconds * 1e9);
  crew_thread *threads = xcalloc((size_t)O.threads, sizeof(*threads));
  worker *ws = workers_start(threads);
  long seen_warm = -1, seen_end = -1;
  cpu_mark c0 = {0}, c1 = {0};
  while (!f.watch.ended) {
    int64_t t = now_ns();
    if (seen_warm < 0 && t >= C.warm_end) seen_warm = f.watch.events, c0 = cpu_now();
    if (t < C.end) {
      feed(&f);
    } else {
      if (seen_end < 0) seen_end = f.watch.events, c1 = cpu_now();
      int idle = f.n_free == O.inflight;
      if ((idle && f.watch.events >= f.acked) || t > C.end + DRAIN_NS) break;
    }
    pump_once(f.cn.cq, t + 5000000);
  }
  workers_join(threads);
  free(threads);
  if (f.watch.ended) {
    char *d = grpc_slice_to_c_string(f.watch.details);
    fprintf(stderr, "remote_bench: the watch stream ended: status %d %s\n", (int)f.watch.code, d);
    gpr_free(d);
  }
  long steady = seen_end - seen_warm;
  rate_print(&f, ws, steady, c0, c1);
  int ok = steady > 0 && !f.watch.ended && seen_end >= 0;
  workers_free(ws);
  feeder_close(&f);
  return ok ? 0 : 1;
}

/* ------------------------------------------------------------ wakeup */

/* The poller and the submitter of the wake-up test, one call each at most.
 * `alone` (mode alone) leaves the poller out: the same SubmitTask after the
 * same gap with no poll waiting, as the baseline. */
typedef struct waker {
  conn poller, submitter;
  ucall poll, submit, complete;
  int alone;
  int poll_busy, submit_busy, complete_busy;
  int64_t t_lease, t_ack; /* ns, when the lease and the ack arrived */
  int n_leases;
  char lease_id[LEASE_ID_BYTES];
  long errors;
} waker;

/* One sample's times from just before its SubmitTask, ns. */
typedef struct wake_sample {
  int64_t lease, ack;
} wake_sample;

static void wake_poll_end(ucall *c, grpc_status_code st, grpc_byte_buffer *reply) {
  waker *k = c->user;
  k->t_lease = now_ns();
  k->poll_busy = 0;
  k->n_leases = 0;
  Oee__V1__PollTasksResponse *r =
      (Oee__V1__PollTasksResponse *)unpack(&oee__v1__poll_tasks_response__descriptor, reply);
  if (r == NULL) {
    k->errors++;
    return;
  }
  k->n_leases = (int)r->n_leases;
  if (r->n_leases > 0 && strlen(r->leases[0]->lease_id) < LEASE_ID_BYTES) {
    strcpy(k->lease_id, r->leases[0]->lease_id);
  }
  oee__v1__poll_tasks_response__free_unpacked(r, NULL);
}

static void wake_submit_end(ucall *c, grpc_status_code st, grpc_byte_buffer *reply) {
  waker *k = c->user;
  k->t_ack = now_ns();
  k->submit_busy = 0;
  if (st != GRPC_STATUS_OK) k->errors++;
}

static void wake_complete_end(ucall *c, grpc_status_code st, grpc_byte_buffer *reply) {
  waker *k = c->user;
  k->complete_busy = 0;
  if (st != GRPC_STATUS_OK) k->errors++;
}

/* Completes the lease just taken; returns when the reply came. */
static void wake_complete(waker *k) {
  k->complete_busy = 1;
  k->complete.on_end = wake_complete_end;
  k->complete.user = k;
  grpc_slice p = complete_payload(k->lease_id, "bench-poller");
  ucall_start(&k->complete, &k->poller, M_COMPLETE, p);
  grpc_slice_unref(p);
  pump_while(main_cq, &k->complete_busy, now_ns() + 30000000000LL);
  if (k->complete_busy) die("CompleteTask did not answer");
}

/* Starts the poll (unless alone) and lets --gap-us pass. Returns -1 when the
 * poll was answered within the gap (a task left over: it is completed). */
static int wake_gap(waker *k, grpc_slice poll_req) {
  if (!k->alone) {
    k->poll_busy = 1;
    ucall_start(&k->poll, &k->poller, M_POLL, poll_req);
  }
  int64_t gap_end = now_ns() + (int64_t)O.gap_us * 1000;
  while (now_ns() < gap_end && (k->alone || k->poll_busy)) {
    pump_once(main_cq, O.spin ? 0 : gap_end); /* spin: stay on the CPU */
  }
  if (k->alone || k->poll_busy) return 0;
  if (k->n_leases == 1) wake_complete(k);
  return -1;
}

/* One sample: a waiting poll (unless alone), then a submission. Returns 0,
 * or -1 when the poll came back without the task. */
static int wake_once(waker *k, grpc_slice poll_req, grpc_slice submit_req, wake_sample *out) {
  if (wake_gap(k, poll_req) != 0) return -1;
  int64_t t0 = now_ns();
  k->submit_busy = 1;
  ucall_start(&k->submit, &k->submitter, M_SUBMIT, submit_req);
  int64_t until = t0 + 30000000000LL;
  while ((k->poll_busy || k->submit_busy) && now_ns() < until) pump_once(main_cq, until);
  if (k->poll_busy || k->submit_busy) die("no lease within 30 s");
  out->ack = k->t_ack - t0;
  out->lease = k->alone ? out->ack : k->t_lease - t0;
  if (k->alone) return 0;
  if (k->n_leases != 1) return -1; /* its task is taken by the next poll */
  wake_complete(k);
  return 0;
}

/* Prints the percentiles of the lease times, of the acks, and of each
 * sample's lease - ack (negative when the lease came first). */
static void wake_print(wake_sample *s, size_t n, long misses, long errors) {
  int64_t *lease = xcalloc(n, sizeof(*lease)), *ack = xcalloc(n, sizeof(*ack));
  int64_t *after = xcalloc(n, sizeof(*after));
  double mean = 0;
  for (size_t i = 0; i < n; i++) {
    lease[i] = s[i].lease, ack[i] = s[i].ack, after[i] = s[i].lease - s[i].ack;
    mean += (double)s[i].lease;
  }
  mean = n ? mean / (double)n / 1000.0 : 0;
  qsort(lease, n, sizeof(*lease), cmp_i64);
  qsort(ack, n, sizeof(*ack), cmp_i64);
  qsort(after, n, sizeof(*after), cmp_i64);
  printf(
      "RESULT %s polls=%zu gap_us=%d spin=%d alone=%d mean_us=%.1f p50_us=%.1f p90_us=%.1f "
      "p99_us=%.1f p999_us=%.1f max_us=%.1f ack_p50_us=%.1f ack_p99_us=%.1f "
      "after_ack_p50_us=%.1f after_ack_p99_us=%.1f misses=%ld errors=%ld\n",
      O.label, n, O.gap_us, O.spin, strcmp(O.mode, "alone") == 0, mean, pct_us(lease, n, 0.5),
      pct_us(lease, n, 0.9), pct_us(lease, n, 0.99), pct_us(lease, n, 0.999), pct_us(lease, n, 1.0),
      pct_us(ack, n, 0.5), pct_us(ack, n, 0.99), pct_us(after, n, 0.5), pct_us(after, n, 0.99),
      misses, errors);
  fflush(stdout);
  free(lease);
  free(ack);
  free(after);
}

static int mode_wakeup(int alone) {
  waker k = {.alone = alone};
  conn_open(&k.poller, main_cq);
  conn_open(&k.submitter, main_cq);
  k.poll.on_end = wake_poll_end, k.poll.user = &k;
  k.submit.on_end = wake_submit_end, k.submit.user = &k;
  grpc_slice poll_req = poll_payload("bench-poller", 1, 10.0, 30.0);
  grpc_slice submit_req = submit_payload();
  size_t total = (size_t)O.polls + (size_t)O.warm_polls, n = 0;
  wake_sample *s = xcalloc(total, sizeof(*s));
  long misses = 0;
  for (size_t i = 0; i < total && misses < 100; i++) {
    wake_sample one;
    if (wake_once(&k, poll_req, submit_req, &one) != 0) {
      misses++;
      continue;
    }
    if (i >= (size_t)O.warm_polls) s[n++] = one;
  }
  wake_print(s, n, misses, k.errors);
  grpc_slice_unref(poll_req);
  grpc_slice_unref(submit_req);
  free(s);
  grpc_channel_destroy(k.poller.ch);
  grpc_channel_destroy(k.submitter.ch);
  return n == (size_t)O.polls ? 0 : 1;
}

/* -------------------------------------------------------------- main */

int main(int argc, char **argv) {
  parse_opts(argc, argv);
  grpc_init();
  main_cq = grpc_completion_queue_create_for_next(NULL);
  int rc;
  if (strcmp(O.mode, "rate") == 0)
    rc = mode_rate();
  else if (strcmp(O.mode, "wakeup") == 0 || strcmp(O.mode, "alone") == 0)
    rc = mode_wakeup(strcmp(O.mode, "alone") == 0);
  else
    die("unknown --mode");
  cq_destroy(main_cq);
  grpc_shutdown();
  return rc;
}
