/*
 * bare_echo.c - the independent baseline: /oee.bench.BenchEcho/Echo answered
 * by the gRPC C core alone, with none of the project's code (no protobuf-c,
 * no //server/rt runtime, no engine). What bench/echo_server costs beyond
 * this is the runtime's; what SubmitTask costs beyond it is OEE's.
 *
 * DESIGN: N completion queues (--cq-threads, default 1), all registered with
 * the server, each drained by its own thread with grpc_completion_queue_next.
 * Each queue keeps ARMED_PER_CQ requests pending with
 * grpc_server_request_registered_call (the request's message read with it,
 * GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER). Everything that completes on a
 * queue belongs to that queue's thread alone (with --threads-per-cq T > 1,
 * T threads drain one queue: the other way to serve on several threads,
 * measured against one queue per thread), so nothing here is locked but the
 * per-queue count of answered calls, an atomic:
 *   - a request that completes is re-armed at once (unless shutting down) and
 *     its call is answered with one batch: SEND_INITIAL_METADATA,
 *     SEND_MESSAGE of an empty buffer (a valid empty EchoReply: the request
 *     is never decoded), SEND_STATUS_FROM_SERVER OK, RECV_CLOSE_ON_SERVER;
 *   - when that batch completes, the call and its buffers are freed.
 * The main thread takes SIGTERM/SIGINT with sigwait (blocked in every thread,
 * gRPC's own included, since the mask is set before grpc_init), sets
 * `stopping`, and shuts the server down: pending requests and calls complete
 * with ok = 0 and are freed by their queue's thread; the shutdown
 * notification arrives on a non-polling queue of its own; then every queue
 * is shut down, its thread drains it to GRPC_QUEUE_SHUTDOWN and is joined.
 *
 * Usage: bare_echo [--listen HOST:PORT] [--cq-threads N] [--threads-per-cq T]
 *   (defaults 127.0.0.1:0, 1 and 1, at most MAX_CQS and MAX_PER_CQ; plaintext)
 * Prints "bare-echo listening on port N" on stdout; on SIGTERM/SIGINT prints
 * the calls answered by each queue on stderr and exits 0.
 */
#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
  MAX_CQS = 64,
  ARMED_PER_CQ = 16, /* pending requests per queue: a burst of new calls
                        never waits for a re-arm */
};

static const char ECHO_PATH[] = "/oee.bench.BenchEcho/Echo";

/* Every completion-queue tag is an op: fn(owner, ok) runs on completion. */
typedef struct op {
  void (*fn)(void *owner, int ok);
  void *owner;
} op;

enum { MAX_PER_CQ = 16 };

typedef struct queue {
  grpc_completion_queue *cq;
  pthread_t threads[MAX_PER_CQ];
  int n_threads;
  atomic_long answered; /* calls whose reply batch succeeded */
} queue;

/* A pending request; its fields are filled by the server when it completes. */
typedef struct request {
  op done;
  queue *q;
  grpc_call *call;
  gpr_timespec deadline;
  grpc_metadata_array md;
  grpc_byte_buffer *payload;
} request;

/* A call being answered; owned by its queue's thread until the batch ends. */
typedef struct reply {
  op done;
  queue *q;
  grpc_call *call;
  grpc_byte_buffer *message; /* the empty reply */
  int cancelled;             /* RECV_CLOSE_ON_SERVER's out-parameter */
} reply;

static grpc_server *server;
static void *echo_method; /* the registered method's handle */
static atomic_int stopping;

static void die(const char *what) {
  fprintf(stderr, "bare_echo: %s\n", what);
  exit(1);
}

/* ------------------------------------------------------------ requests */

static void request_done(void *owner, int ok);

static void request_arm(request *r) {
  r->call = NULL;
  r->payload = NULL;
  grpc_metadata_array_init(&r->md);
  if (grpc_server_request_registered_call(server, echo_method, &r->call, &r->deadline, &r->md,
                                          &r->payload, r->q->cq, r->q->cq,
                                          &r->done) != GRPC_CALL_OK) {
    abort(); /* only misuse of the API fails here */
  }
}

static void reply_done(void *owner, int ok) {
  reply *p = owner;
  if (ok) atomic_fetch_add_explicit(&p->q->answered, 1, memory_order_relaxed);
  grpc_byte_buffer_destroy(p->message);
  grpc_call_unref(p->call);
  free(p);
}

/* Answers a call with one batch of the four server ops. */
static void reply_start(queue *q, grpc_call *call) {
  reply *p = calloc(1, sizeof *p);
  if (p == NULL) die("out of memory");
  *p = (reply){.done = {reply_done, p}, .q = q, .call = call};
  p->message = grpc_raw_byte_buffer_create(NULL, 0);
  grpc_op ops[4];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = p->message;
  ops[2].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  ops[2].data.send_status_from_server.status = GRPC_STATUS_OK;
  ops[3].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  ops[3].data.recv_close_on_server.cancelled = &p->cancelled;
  if (grpc_call_start_batch(call, ops, 4, &p->done, NULL) != GRPC_CALL_OK) abort();
}

/* A request completed: re-arm it first (the next call need not wait), then
 * answer; with ok = 0 (shutting down) it is freed instead. */
static void request_done(void *owner, int ok) {
  request *r = owner;
  queue *q = r->q;
  grpc_call *call = r->call;
  grpc_metadata_array_destroy(&r->md);
  if (r->payload) grpc_byte_buffer_destroy(r->payload);
  if (ok && !atomic_load_explicit(&stopping, memory_order_relaxed)) {
    request_arm(r);
  } else {
    free(r);
  }
  if (ok) reply_start(q, call); /* a call that raced the shutdown is still answered */
}

/* -------------------------------------------------------------- queues */

static void *queue_run(void *arg) {
  queue *q = arg;
  for (;;) {
    grpc_event ev = grpc_completion_queue_next(q->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN) return NULL;
    if (ev.type == GRPC_OP_COMPLETE) {
      op *o = ev.tag;
      o->fn(o->owner, ev.success);
    }
  }
}

/* Arms the queue's requests; only called before its thread starts. */
static void queue_arm(queue *q) {
  for (int i = 0; i < ARMED_PER_CQ; i++) {
    request *r = calloc(1, sizeof *r);
    if (r == NULL) die("out of memory");
    r->done = (op){request_done, r};
    r->q = q;
    request_arm(r);
  }
}

/* Drains a queue to its end and destroys it (the server is shut down). */
static void queue_close(queue *q) {
  grpc_completion_queue_shutdown(q->cq);
  for (int i = 0; i < q->n_threads; i++) {
    if (pthread_join(q->threads[i], NULL) != 0) abort();
  }
  grpc_completion_queue_destroy(q->cq);
}

/* --------------------------------------------------------------- server */

typedef struct options {
  const char *listen;
  int cq_threads;
  int per_cq; /* threads draining each queue */
} options;

static options parse_options(int argc, char **argv) {
  options o = {.listen = "127.0.0.1:0", .cq_threads = 1, .per_cq = 1};
  for (int i = 1; i < argc; i++) {
    if (i + 1 >= argc)
      die("usage: bare_echo [--listen HOST:PORT] [--cq-threads N] [--threads-per-cq T]");
    if (strcmp(argv[i], "--listen") == 0) {
      o.listen = argv[++i];
    } else if (strcmp(argv[i], "--cq-threads") == 0) {
      o.cq_threads = atoi(argv[++i]);
    } else if (strcmp(argv[i], "--threads-per-cq") == 0) {
      o.per_cq = atoi(argv[++i]);
    } else {
      die("usage: bare_echo [--listen HOST:PORT] [--cq-threads N] [--threads-per-cq T]");
    }
  }
  if (o.cq_threads < 1 || o.cq_threads > MAX_CQS) die("--cq-threads must be 1..64");
  if (o.per_cq < 1 || o.per_cq > MAX_PER_CQ) die("--threads-per-cq must be 1..16");
  return o;
}

/* Creates and starts the server on n queues; returns the bound port. */
static int server_start(const char *listen, queue *qs, int n, int per_cq,
                        grpc_completion_queue *notify_cq) {
  /* As //server/rt: no SO_REUSEPORT, so a taken address fails to bind. */
  grpc_arg arg = {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_ALLOW_REUSEPORT, .value.integer = 0};
  grpc_channel_args args = {.num_args = 1, .args = &arg};
  server = grpc_server_create(&args, NULL);
  for (int i = 0; i < n; i++) {
    qs[i].cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(server, qs[i].cq, NULL);
  }
  grpc_server_register_completion_queue(server, notify_cq, NULL);
  echo_method = grpc_server_register_method(server, ECHO_PATH, NULL,
                                            GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
  grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
  int port = grpc_server_add_http2_port(server, listen, creds);
  grpc_server_credentials_release(creds);
  if (port == 0) return 0;
  grpc_server_start(server);
  for (int i = 0; i < n; i++) {
    queue_arm(&qs[i]);
    for (qs[i].n_threads = 0; qs[i].n_threads < per_cq; qs[i].n_threads++) {
      if (pthread_create(&qs[i].threads[qs[i].n_threads], NULL, queue_run, &qs[i]) != 0) abort();
    }
  }
  return port;
}

/* Shuts the server down and waits for its notification on notify_cq. */
static void server_stop(grpc_completion_queue *notify_cq) {
  static op notified; /* only its address is used, as the tag */
  atomic_store(&stopping, 1);
  grpc_server_shutdown_and_notify(server, notify_cq, &notified);
  grpc_server_cancel_all_calls(server);
  for (;;) {
    grpc_event ev =
        grpc_completion_queue_next(notify_cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    if (ev.type == GRPC_OP_COMPLETE && ev.tag == &notified) break;
  }
  grpc_server_destroy(server);
}

int main(int argc, char **argv) {
  options o = parse_options(argc, argv);
  /* Blocked before grpc_init, so that no thread but main's sigwait takes them. */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  if (pthread_sigmask(SIG_BLOCK, &sigs, NULL) != 0) abort();
  grpc_init();
  queue qs[MAX_CQS];
  memset(qs, 0, sizeof qs);
  /* Non-polling: it never owns a connection, and main only waits on it. */
  grpc_completion_queue_attributes attr = {GRPC_CQ_CURRENT_VERSION, GRPC_CQ_NEXT,
                                           GRPC_CQ_NON_POLLING, NULL};
  grpc_completion_queue *notify_cq =
      grpc_completion_queue_create(grpc_completion_queue_factory_lookup(&attr), &attr, NULL);
  int port = server_start(o.listen, qs, o.cq_threads, o.per_cq, notify_cq);
  if (port == 0) {
    fprintf(stderr, "bare_echo: cannot listen on %s\n", o.listen);
    return 1;
  }
  printf("bare-echo listening on port %d\n", port);
  fflush(stdout);
  int sig = 0;
  if (sigwait(&sigs, &sig) != 0) abort();
  server_stop(notify_cq);
  for (int i = 0; i < o.cq_threads; i++) {
    queue_close(&qs[i]);
    fprintf(stderr, "bare_echo: queue %d answered %ld calls\n", i, atomic_load(&qs[i].answered));
  }
  grpc_completion_queue_shutdown(notify_cq);
  while (grpc_completion_queue_next(notify_cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
         GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(notify_cq);
  grpc_shutdown();
  return 0;
}
