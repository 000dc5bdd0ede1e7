/*
 * rpc_server.c - the server, its completion-queue loops and the armed call
 * requests (see rpc_server.h for the DESIGN and the contract, and
 * rpc_internal.h for which thread owns what).
 *
 * Requests: every registered method owns one slot per queue it is served on
 * (a unary method one on every queue, a streaming one on the main queue
 * only), a pending grpc_server_request_registered_call bound to that queue;
 * the server owns one generic slot on the main queue, a pending
 * grpc_server_request_call that only sees methods nobody registered. gRPC
 * hands a new call to one of the queues with a request pending, so unary
 * calls spread over the io threads. A slot that completes hands its
 * grpc_call to a new oee_rpc_call and is re-armed at once, on its own
 * thread, unless the server is shutting down. Slots are freed with the
 * server; the queues' drain guarantees none is pending then.
 *
 * Queues and threads: cqs[0] is drained by run() (with the tick and the
 * shutdown steps), cqs[1..] each by an io thread started in start(), after
 * grpc_server_start (the queues are registered before it), and joined once
 * its queue is shut down and drained. io thread i arms slot i of every
 * unary method. A thread that cannot be started leaves its slots unarmed:
 * the server serves on fewer threads rather than not at all. With
 * io_shared_queue the io threads' slots are all armed on cqs[1], which
 * they all drain: a call waits for whichever thread is free, not for the
 * one its queue belongs to, at the price of handing completions between
 * threads.
 */
#include <stdlib.h>
#include <string.h>

#include <grpc/grpc_security.h>

#include "core/oee_alloc.h"
#include "rpc/codec.h"
#include "server/rt/rpc_internal.h"

struct slot {
  rt_op op;
  oee_rpc_server *srv;
  method_reg *reg;           /* NULL: the generic slot */
  grpc_completion_queue *cq; /* where it is armed and completes */
  grpc_call *call;
  gpr_timespec deadline;
  grpc_metadata_array md;
  grpc_byte_buffer *payload;
  grpc_call_details details; /* generic slot only */
};

enum { DEFAULT_GRACE_MS = 1000 };

static gpr_timespec now(void) { return gpr_now(GPR_CLOCK_MONOTONIC); }

static gpr_timespec after_ms(gpr_timespec t, int64_t ms) {
  return gpr_time_add(t, gpr_time_from_millis(ms, GPR_TIMESPAN));
}

/* --------------------------------------------------------------- slots */

static void slot_done(void *owner, int ok);

static slot *slot_new(oee_rpc_server *srv, method_reg *reg) {
  slot *s = oee_calloc(1, sizeof *s);
  if (s == NULL) return NULL;
  s->op = (rt_op){.done = slot_done, .owner = s};
  s->srv = srv;
  s->reg = reg;
  return s;
}

/* Arms slot s on queue cq (the queue stays its own from then on). */
static void slot_arm(slot *s);
static void slot_arm_on(slot *s, grpc_completion_queue *cq) {
  s->cq = cq;
  slot_arm(s);
}

/* Requests the next call for s. Under cq_lock like every batch (rpc_call.c):
 * an io thread may arm its queue for the first time after a shutdown that
 * came right after start already shut the queues down (gRPC refuses a
 * request on a shut-down queue); such a slot stays unarmed. */
static void slot_arm(slot *s) {
  oee_rpc_server *srv = s->srv;
  s->call = NULL;
  s->payload = NULL;
  grpc_metadata_array_init(&s->md);
  if (s->reg == NULL) grpc_call_details_init(&s->details);
  oee__rt_op_handoff(&s->op);
  if (pthread_rwlock_rdlock(&srv->cq_lock) != 0) abort();
  grpc_call_error e = GRPC_CALL_OK;
  if (srv->cq_down) {
    grpc_metadata_array_destroy(&s->md);
    if (s->reg == NULL) grpc_call_details_destroy(&s->details);
  } else if (s->reg != NULL) {
    e = grpc_server_request_registered_call(srv->server, s->reg->handle, &s->call, &s->deadline,
                                            &s->md, s->reg->m.client_streaming ? NULL : &s->payload,
                                            s->cq, s->cq, &s->op);
  } else {
    e = grpc_server_request_call(srv->server, &s->call, &s->details, &s->md, s->cq, s->cq, &s->op);
  }
  if (pthread_rwlock_unlock(&srv->cq_lock) != 0) abort();
  if (e != GRPC_CALL_OK) abort(); /* only misuse of the API fails here */
}

/* The admission hook's verdict on a registered call (OK without a hook);
 * a refused call is ended here with the hook's status. */
static int admitted(slot *s, grpc_call *gc, grpc_byte_buffer *payload, int64_t arrived_ns) {
  oee_rpc_server *srv = s->srv;
  if (srv->admit == NULL || s->reg == NULL) return 1;
  char msg[256] = "";
  grpc_status_code code = srv->admit(srv->admit_ud, s->reg->m.path, &s->md, msg, sizeof msg);
  if (code == GRPC_STATUS_OK) return 1;
  oee__rpc_observe(srv, s->reg, code, arrived_ns); /* first: before the client can see it */
  grpc_call_cancel_with_status(gc, code, msg, NULL);
  grpc_call_unref(gc);
  if (payload) grpc_byte_buffer_destroy(payload);
  return 0;
}

static void slot_done(void *owner, int ok) {
  slot *s = owner;
  grpc_call *gc = s->call;
  grpc_byte_buffer *payload = s->payload;
  char *path = NULL;
  int64_t arrived_ns = oee__rpc_now_ns();
  if (ok && !admitted(s, gc, payload, arrived_ns)) ok = -1; /* refused: not dispatched */
  grpc_metadata_array_destroy(&s->md);
  if (s->reg == NULL) {
    if (ok) path = oee__rpc_slice_strdup(s->details.method);
    grpc_call_details_destroy(&s->details);
  }
  if (ok && atomic_load(&s->srv->phase) < PHASE_DRAINING) slot_arm(s);
  if (ok == 1) oee__rpc_call_dispatch(s->srv, s->reg, gc, payload, path, arrived_ns);
  free(path);
}

void oee_rpc_server_set_admit(oee_rpc_server *srv, oee_rpc_admit_fn fn, void *ud) {
  srv->admit = fn;
  srv->admit_ud = ud;
}

void oee_rpc_server_set_observe(oee_rpc_server *srv, oee_rpc_observe_fn fn, void *ud) {
  srv->observe = fn;
  srv->observe_ud = ud;
}

size_t oee_rpc_server_io_threads(const oee_rpc_server *srv) { return srv->n_threads; }

size_t oee_rpc_server_io_queues(const oee_rpc_server *srv) { return srv->n_cqs; }

size_t oee_rpc_server_method_count(const oee_rpc_server *srv) { return srv->n_regs; }

const char *oee_rpc_server_method_path(const oee_rpc_server *srv, size_t index) {
  return index < srv->n_regs ? srv->regs[index]->m.path : NULL;
}

/* ------------------------------------------------------------- server */

/* Fills args (room for SERVER_ARGS) and ca from the options. */
enum { SERVER_ARGS = 3 };

static void server_args(const oee_rpc_server_options *o, grpc_arg *args, grpc_channel_args *ca) {
  size_t n = 0;
  /* gRPC sets SO_REUSEPORT on its listeners by default, so a second server
   * on the same address would bind too and silently take half of the
   * connections. Without it the second bind fails: one server per address. */
  args[n++] =
      (grpc_arg){.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_ALLOW_REUSEPORT, .value.integer = 0};
  if (o) oee__rpc_size_args(o->max_receive_message_bytes, o->max_send_message_bytes, args, &n);
  *ca = (grpc_channel_args){.num_args = n, .args = args};
}

/* Plaintext, TLS, or TLS that requires and verifies client certificates. */
static grpc_server_credentials *server_creds(const oee_rpc_server_options *o) {
  if (o == NULL || o->tls_cert_pem == NULL || o->tls_key_pem == NULL)
    return grpc_insecure_server_credentials_create();
  grpc_ssl_pem_key_cert_pair pair = {.private_key = o->tls_key_pem, .cert_chain = o->tls_cert_pem};
  grpc_ssl_client_certificate_request_type req =
      o->tls_client_ca_pem ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                           : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE;
  return grpc_ssl_server_credentials_create_ex(o->tls_client_ca_pem, &pair, 1, req, NULL);
}

static int listen_on(oee_rpc_server *srv, const char *addr, const oee_rpc_server_options *o) {
  grpc_server_credentials *creds = server_creds(o);
  if (creds == NULL) return OEE_RPC_EINVAL;
  srv->port = grpc_server_add_http2_port(srv->server, addr, creds);
  grpc_server_credentials_release(creds);
  return srv->port > 0 ? 0 : oee__rpc_listen_error(addr);
}

static void shutdown_done(void *owner, int ok) {
  oee_rpc_server *srv = owner;
  atomic_store(&srv->phase, PHASE_CQ_DOWN);
  if (pthread_rwlock_wrlock(&srv->cq_lock) != 0) abort();
  srv->cq_down = 1; /* no batch starts from now on, on any thread */
  if (pthread_rwlock_unlock(&srv->cq_lock) != 0) abort();
  for (size_t i = 0; i < srv->n_cqs; i++) grpc_completion_queue_shutdown(srv->cqs[i]);
}

/* The threads asked for: io_threads, 0 meaning 1. */
static size_t io_threads(const oee_rpc_server_options *o) {
  return o == NULL || o->io_threads <= 1 ? 1 : (size_t)o->io_threads;
}

/* The queue of slot (and io thread) i. */
static grpc_completion_queue *queue_of(const oee_rpc_server *srv, size_t i) {
  return srv->cqs[i == 0 ? 0 : srv->shared ? 1 : i];
}

int oee_rpc_server_open(const char *listen_addr, const oee_rpc_server_options *opts, int *port,
                        oee_rpc_server **out) {
  if (out != NULL) *out = NULL;
  if (listen_addr == NULL || out == NULL) return OEE_RPC_EINVAL;
  if (opts != NULL && (opts->io_threads < 0 || opts->io_threads > OEE_RPC_MAX_IO_THREADS)) {
    return OEE_RPC_EINVAL;
  }
  oee_rpc_server *srv = oee_calloc(1, sizeof *srv);
  if (srv == NULL) return OEE_RPC_ENOMEM;
  grpc_init();
  grpc_arg args[SERVER_ARGS];
  grpc_channel_args ca;
  server_args(opts, args, &ca);
  srv->server = grpc_server_create(&ca, NULL);
  srv->cqs[0] = grpc_completion_queue_create_for_next(NULL);
  grpc_server_register_completion_queue(srv->server, srv->cqs[0], NULL);
  srv->n_cqs = srv->n_threads = 1;
  srv->want_cqs = io_threads(opts);
  srv->shared = opts != NULL && opts->io_shared_queue && srv->want_cqs >= 3;
  int grace = opts ? opts->shutdown_grace_ms : 0;
  srv->grace_ms = grace == 0 ? DEFAULT_GRACE_MS : grace < 0 ? 0 : grace;
  srv->tick_ms = -1;
  srv->shutdown_op = (rt_op){.done = shutdown_done, .owner = srv};
  atomic_init(&srv->stop, 0);
  atomic_init(&srv->phase, PHASE_CREATED);
  atomic_init(&srv->live_calls, 0);
  if (pthread_rwlock_init(&srv->cq_lock, NULL) != 0) abort();
  int rc = listen_on(srv, listen_addr, opts);
  if (rc != 0) {
    oee_rpc_server_destroy(srv);
    return rc;
  }
  if (port) *port = srv->port;
  *out = srv;
  return 0;
}

oee_rpc_server *oee_rpc_server_create(const char *listen_addr, const oee_rpc_server_options *opts,
                                      int *port) {
  oee_rpc_server *srv = NULL;
  (void)oee_rpc_server_open(listen_addr, opts, port, &srv);
  return srv;
}

static void reg_free(method_reg *r) {
  if (r == NULL) return;
  for (size_t i = 0; r->slots != NULL && i < r->n_slots; i++) oee_free(r->slots[i]);
  oee_free(r->slots);
  oee_free((char *)r->m.path);
  oee_free(r);
}

/* Streaming calls stay on the main thread (their callbacks and the tick
 * share state there); unary ones are served on every queue. */
static int any_thread(const oee_rpc_method *m) {
  return !m->client_streaming && !m->server_streaming;
}

static method_reg *reg_new(oee_rpc_server *srv, const oee_rpc_method *m, void *ctx) {
  method_reg *r = oee_calloc(1, sizeof *r);
  if (r == NULL) return NULL;
  r->m = *m;
  r->ctx = ctx;
  r->m.path = oee_strdup(m->path);
  r->n_slots = any_thread(m) ? srv->want_cqs : 1;
  r->slots = oee_calloc(r->n_slots, sizeof *r->slots);
  int ok = r->m.path != NULL && r->slots != NULL;
  for (size_t i = 0; ok && i < r->n_slots; i++) ok = (r->slots[i] = slot_new(srv, r)) != NULL;
  if (!ok) {
    reg_free(r);
    return NULL;
  }
  return r;
}

static int add_method(oee_rpc_server *srv, const oee_rpc_method *m, void *ctx) {
  if (m->path == NULL || m->request == NULL || m->response == NULL) return OEE_RPC_EINVAL;
  method_reg **regs = oee_realloc(srv->regs, (srv->n_regs + 1) * sizeof *regs);
  if (regs == NULL) return OEE_RPC_ENOMEM;
  srv->regs = regs;
  method_reg *r = reg_new(srv, m, ctx);
  if (r == NULL) return OEE_RPC_ENOMEM;
  r->handle = grpc_server_register_method(
      srv->server, r->m.path, NULL,
      m->client_streaming ? GRPC_SRM_PAYLOAD_NONE : GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
  if (r->handle == NULL) {
    reg_free(r);
    return OEE_RPC_EINVAL; /* e.g. the path is already registered */
  }
  r->index = srv->n_regs;
  srv->regs[srv->n_regs++] = r;
  return 0;
}

int oee_rpc_server_add_service(oee_rpc_server *srv, const oee_rpc_method *methods, size_t n,
                               void *ctx) {
  if (srv == NULL || (methods == NULL && n > 0)) return OEE_RPC_EINVAL;
  if (atomic_load(&srv->phase) != PHASE_CREATED) return OEE_RPC_ESTATE;
  for (size_t i = 0; i < n; i++) {
    int rc = add_method(srv, &methods[i], ctx);
    if (rc != 0) return rc;
  }
  return 0;
}

void oee_rpc_server_set_tick(oee_rpc_server *srv, void (*tick)(void *ud), void *ud,
                             int interval_ms) {
  srv->tick = tick;
  srv->tick_ud = ud;
  srv->tick_ms = interval_ms;
}

void oee_rpc_server_set_tick_interval(oee_rpc_server *srv, int interval_ms) {
  srv->tick_ms = interval_ms;
}

static int handle(grpc_event ev);

/* Arms slot q of every method that has one on its queue: one per unary
 * method (streams and unknown methods are requested on the main queue
 * only). */
static void arm_queue(oee_rpc_server *srv, size_t q) {
  for (size_t i = 0; i < srv->n_regs; i++) {
    method_reg *r = srv->regs[i];
    if (q < r->n_slots) slot_arm_on(r->slots[q], queue_of(srv, q));
  }
  if (q == 0) slot_arm_on(srv->generic, srv->cqs[0]);
}

/* An io thread: arms its slots (on its own queue they are then only ever
 * touched on this thread; on the shared one by whichever thread completes
 * them), then drains the queue until it is shut down. */
static void *io_main(void *arg) {
  io_thread *t = arg;
  grpc_completion_queue *cq = queue_of(t->srv, t->index);
  arm_queue(t->srv, t->index);
  for (;;) {
    grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    if (handle(ev) < 0) return NULL;
  }
}

/* The io threads' queues, registered before grpc_server_start (which
 * fixes them). */
static void add_io_queues(oee_rpc_server *srv) {
  size_t queues = srv->shared ? 2 : srv->want_cqs;
  for (size_t i = 1; i < queues; i++) {
    srv->cqs[i] = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(srv->server, srv->cqs[i], NULL);
    srv->n_cqs = i + 1;
  }
}

/* The io threads, after grpc_server_start. A thread that cannot be
 * started leaves its slots and the later threads' unarmed: gRPC only hands
 * calls to requests that are armed, so fewer threads serve, all calls. */
static void start_io_threads(oee_rpc_server *srv) {
  for (size_t i = 1; i < srv->want_cqs; i++) {
    srv->io[i] = (io_thread){.srv = srv, .index = i};
    if (pthread_create(&srv->io[i].tid, NULL, io_main, &srv->io[i]) != 0) return;
    srv->n_threads = i + 1;
  }
}

static void join_io_threads(oee_rpc_server *srv) {
  for (size_t i = 1; i < srv->n_threads; i++) pthread_join(srv->io[i].tid, NULL);
  srv->n_threads = 1;
}

int oee_rpc_server_start(oee_rpc_server *srv) {
  if (srv == NULL || atomic_load(&srv->phase) != PHASE_CREATED) return OEE_RPC_ESTATE;
  srv->generic = slot_new(srv, NULL);
  if (srv->generic == NULL) return OEE_RPC_ENOMEM;
  add_io_queues(srv);
  grpc_server_start(srv->server);
  atomic_store(&srv->phase, PHASE_STARTED);
  arm_queue(srv, 0);
  start_io_threads(srv);
  return 0;
}

void oee_rpc_server_shutdown(oee_rpc_server *srv) {
  if (srv != NULL) atomic_store(&srv->stop, 1);
}

int oee_rpc_server_stopping(const oee_rpc_server *srv) {
  return atomic_load(&((oee_rpc_server *)srv)->stop) != 0;
}

size_t oee_rpc_server_live_calls(const oee_rpc_server *srv) {
  return atomic_load(&((oee_rpc_server *)srv)->live_calls);
}

/* ------------------------------------------------------------ the loop */

/* Advances the shutdown: stop accepting, then cancel after the grace. */
static void shutdown_step(oee_rpc_server *srv) {
  int ph = atomic_load(&srv->phase);
  if (ph == PHASE_STARTED && atomic_load(&srv->stop)) {
    atomic_store(&srv->phase, ph = PHASE_DRAINING);
    oee__rt_op_handoff(&srv->shutdown_op);
    grpc_server_shutdown_and_notify(srv->server, srv->cqs[0], &srv->shutdown_op);
    srv->grace_end = after_ms(now(), srv->grace_ms);
  }
  if (ph == PHASE_DRAINING && !srv->cancelled_all && gpr_time_cmp(now(), srv->grace_end) >= 0) {
    grpc_server_cancel_all_calls(srv->server);
    srv->cancelled_all = 1;
  }
}

static void maybe_tick(oee_rpc_server *srv, int had_events) {
  if (srv->tick == NULL) return;
  gpr_timespec t = now();
  int due = srv->tick_ms >= 0 && gpr_time_cmp(t, after_ms(srv->last_tick, srv->tick_ms)) >= 0;
  if (!had_events && !due) return;
  srv->last_tick = t;
  srv->tick(srv->tick_ud);
}

static gpr_timespec wait_deadline(const oee_rpc_server *srv) {
  gpr_timespec d = after_ms(now(), OEE_RPC_SERVER_POLL_MS);
  if (srv->tick != NULL && srv->tick_ms >= 0) {
    gpr_timespec t = after_ms(srv->last_tick, srv->tick_ms);
    if (gpr_time_cmp(t, d) < 0) d = t;
  }
  return d;
}

/* Handles one event; returns 1 for a completion, 0 for a timeout, -1 once
 * the queue is shut down and drained. */
static int handle(grpc_event ev) {
  if (ev.type == GRPC_QUEUE_SHUTDOWN) return -1;
  if (ev.type != GRPC_OP_COMPLETE) return 0;
  rt_op *op = ev.tag;
  (void)atomic_load_explicit(&op->handoff, memory_order_acquire);
  op->done(op->owner, ev.success);
  return 1;
}

/* Processes every ready event of the main queue after a first one;
 * returns as handle(). */
static int drain_ready(oee_rpc_server *srv) {
  int rc;
  gpr_timespec zero = gpr_time_0(GPR_CLOCK_MONOTONIC);
  while ((rc = handle(grpc_completion_queue_next(srv->cqs[0], zero, NULL))) > 0) {
  }
  return rc;
}

/* The main thread's loop; returns once every queue is shut down and the
 * io threads are joined. */
static void loop(oee_rpc_server *srv) {
  srv->last_tick = now();
  for (;;) {
    shutdown_step(srv);
    grpc_event ev = grpc_completion_queue_next(srv->cqs[0], wait_deadline(srv), NULL);
    int got = handle(ev);
    int rc = got > 0 ? drain_ready(srv) : got;
    if (rc < 0) break;
    maybe_tick(srv, got > 0);
  }
  join_io_threads(srv);
  atomic_store(&srv->phase, PHASE_DONE);
}

int oee_rpc_server_run(oee_rpc_server *srv) {
  if (srv == NULL || atomic_load(&srv->phase) != PHASE_STARTED || srv->running) {
    return OEE_RPC_ESTATE;
  }
  srv->running = 1;
  loop(srv);
  return 0;
}

/* Shuts down a server that never ran (or never started) on this thread. */
static void stop_unrun(oee_rpc_server *srv) {
  if (atomic_load(&srv->phase) == PHASE_CREATED) {
    grpc_server_shutdown_and_notify(srv->server, srv->cqs[0], &srv->shutdown_op);
    grpc_server_cancel_all_calls(srv->server);
    atomic_store(&srv->phase, PHASE_DRAINING);
    srv->cancelled_all = 1;
  }
  srv->grace_ms = 0;
  atomic_store(&srv->stop, 1);
  srv->tick = NULL;
  loop(srv);
}

void oee_rpc_server_destroy(oee_rpc_server *srv) {
  if (srv == NULL) return;
  if (atomic_load(&srv->phase) != PHASE_DONE) stop_unrun(srv);
  grpc_server_destroy(srv->server);
  for (size_t i = 0; i < srv->n_cqs; i++) grpc_completion_queue_destroy(srv->cqs[i]);
  for (size_t i = 0; i < srv->n_regs; i++) reg_free(srv->regs[i]);
  oee_free(srv->regs);
  oee_free(srv->generic);
  pthread_rwlock_destroy(&srv->cq_lock);
  oee_free(srv);
  grpc_shutdown();
}
