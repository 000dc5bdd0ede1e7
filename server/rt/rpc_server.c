/*
 * rpc_server.c - the server, its completion-queue loop and the armed call
 * requests (see rpc_server.h for the DESIGN and the contract).
 *
 * Requests: every registered method owns one slot, a pending
 * grpc_server_request_registered_call; the server owns one generic slot, a
 * pending grpc_server_request_call that only sees methods nobody registered.
 * A slot that completes hands its grpc_call to a new oee_rpc_call and is
 * re-armed at once, unless the server is shutting down. Slots are freed with
 * the server; the CQ drain guarantees none is pending then.
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
  method_reg *reg; /* NULL: the generic slot */
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
  s->op = (rt_op){slot_done, s};
  s->srv = srv;
  s->reg = reg;
  return s;
}

static void slot_arm(slot *s) {
  oee_rpc_server *srv = s->srv;
  s->call = NULL;
  s->payload = NULL;
  grpc_metadata_array_init(&s->md);
  grpc_call_error e;
  if (s->reg != NULL) {
    e = grpc_server_request_registered_call(srv->server, s->reg->handle, &s->call, &s->deadline,
                                            &s->md, s->reg->m.client_streaming ? NULL : &s->payload,
                                            srv->cq, srv->cq, &s->op);
  } else {
    grpc_call_details_init(&s->details);
    e = grpc_server_request_call(srv->server, &s->call, &s->details, &s->md, srv->cq, srv->cq,
                                 &s->op);
  }
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
  if (ok && s->srv->phase < PHASE_DRAINING) slot_arm(s);
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
  srv->phase = PHASE_CQ_DOWN;
  if (pthread_rwlock_wrlock(&srv->cq_lock) != 0) abort();
  srv->cq_down = 1; /* no batch starts from now on, on any thread */
  if (pthread_rwlock_unlock(&srv->cq_lock) != 0) abort();
  grpc_completion_queue_shutdown(srv->cq);
}

int oee_rpc_server_open(const char *listen_addr, const oee_rpc_server_options *opts, int *port,
                        oee_rpc_server **out) {
  if (out != NULL) *out = NULL;
  if (listen_addr == NULL || out == NULL) return OEE_RPC_EINVAL;
  oee_rpc_server *srv = oee_calloc(1, sizeof *srv);
  if (srv == NULL) return OEE_RPC_ENOMEM;
  grpc_init();
  grpc_arg args[SERVER_ARGS];
  grpc_channel_args ca;
  server_args(opts, args, &ca);
  srv->server = grpc_server_create(&ca, NULL);
  srv->cq = grpc_completion_queue_create_for_next(NULL);
  grpc_server_register_completion_queue(srv->server, srv->cq, NULL);
  int grace = opts ? opts->shutdown_grace_ms : 0;
  srv->grace_ms = grace == 0 ? DEFAULT_GRACE_MS : grace < 0 ? 0 : grace;
  srv->tick_ms = -1;
  srv->shutdown_op = (rt_op){shutdown_done, srv};
  atomic_init(&srv->stop, 0);
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
  oee_free(r->slot);
  oee_free((char *)r->m.path);
  oee_free(r);
}

static method_reg *reg_new(oee_rpc_server *srv, const oee_rpc_method *m, void *ctx) {
  method_reg *r = oee_calloc(1, sizeof *r);
  if (r == NULL) return NULL;
  r->m = *m;
  r->ctx = ctx;
  r->m.path = oee_strdup(m->path);
  r->slot = slot_new(srv, r);
  if (r->m.path == NULL || r->slot == NULL) {
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
  if (srv->phase != PHASE_CREATED) return OEE_RPC_ESTATE;
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

int oee_rpc_server_start(oee_rpc_server *srv) {
  if (srv == NULL || srv->phase != PHASE_CREATED) return OEE_RPC_ESTATE;
  srv->generic = slot_new(srv, NULL);
  if (srv->generic == NULL) return OEE_RPC_ENOMEM;
  grpc_server_start(srv->server);
  srv->phase = PHASE_STARTED;
  for (size_t i = 0; i < srv->n_regs; i++) slot_arm(srv->regs[i]->slot);
  slot_arm(srv->generic);
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
  if (srv->phase == PHASE_STARTED && atomic_load(&srv->stop)) {
    srv->phase = PHASE_DRAINING;
    grpc_server_shutdown_and_notify(srv->server, srv->cq, &srv->shutdown_op);
    srv->grace_end = after_ms(now(), srv->grace_ms);
  }
  if (srv->phase == PHASE_DRAINING && !srv->cancelled_all &&
      gpr_time_cmp(now(), srv->grace_end) >= 0) {
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
static int handle(oee_rpc_server *srv, grpc_event ev) {
  if (ev.type == GRPC_QUEUE_SHUTDOWN) return -1;
  if (ev.type != GRPC_OP_COMPLETE) return 0;
  rt_op *op = ev.tag;
  op->done(op->owner, ev.success);
  return 1;
}

/* Processes every ready event after a first one; returns as handle(). */
static int drain_ready(oee_rpc_server *srv) {
  int rc;
  gpr_timespec zero = gpr_time_0(GPR_CLOCK_MONOTONIC);
  while ((rc = handle(srv, grpc_completion_queue_next(srv->cq, zero, NULL))) > 0) {
  }
  return rc;
}

static void loop(oee_rpc_server *srv) {
  srv->last_tick = now();
  for (;;) {
    shutdown_step(srv);
    grpc_event ev = grpc_completion_queue_next(srv->cq, wait_deadline(srv), NULL);
    int got = handle(srv, ev);
    int rc = got > 0 ? drain_ready(srv) : got;
    if (rc < 0) break;
    maybe_tick(srv, got > 0);
  }
  srv->phase = PHASE_DONE;
}

int oee_rpc_server_run(oee_rpc_server *srv) {
  if (srv == NULL || srv->phase != PHASE_STARTED || srv->running) return OEE_RPC_ESTATE;
  srv->running = 1;
  loop(srv);
  return 0;
}

/* Shuts down a server that never ran (or never started) on this thread. */
static void stop_unrun(oee_rpc_server *srv) {
  if (srv->phase == PHASE_CREATED) {
    grpc_server_shutdown_and_notify(srv->server, srv->cq, &srv->shutdown_op);
    grpc_server_cancel_all_calls(srv->server);
    srv->phase = PHASE_DRAINING;
    srv->cancelled_all = 1;
  }
  srv->grace_ms = 0;
  atomic_store(&srv->stop, 1);
  srv->tick = NULL;
  loop(srv);
}

void oee_rpc_server_destroy(oee_rpc_server *srv) {
  if (srv == NULL) return;
  if (srv->phase != PHASE_DONE) stop_unrun(srv);
  grpc_server_destroy(srv->server);
  grpc_completion_queue_destroy(srv->cq);
  for (size_t i = 0; i < srv->n_regs; i++) reg_free(srv->regs[i]);
  oee_free(srv->regs);
  oee_free(srv->generic);
  pthread_rwlock_destroy(&srv->cq_lock);
  oee_free(srv);
  grpc_shutdown();
}
