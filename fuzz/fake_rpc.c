/* fake_rpc.c - the fuzz-only call runtime (see fake_rpc.h). Implements every
 * function of server/rt/rpc_server.h; the real rpc_server.c and rpc_call.c
 * are then never pulled out of their archives by the linker. */
#include "fuzz/fake_rpc.h"

#include <errno.h>
#include <grpc/slice.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rpc/arena.h"
#include "rpc/codec.h"

#define MAX_METHODS 64

typedef struct registered {
  oee_rpc_method m; /* path is a private copy */
  void *ctx;
} registered;

struct oee_rpc_server {
  registered methods[MAX_METHODS];
  size_t n_methods;
  void (*tick)(void *ud);
  void *tick_ud;
  int tick_interval_ms;
  int started, stopping;
  size_t live_calls;
};

/* A call. `mu` guards the fields the "any thread" functions share with
 * the harness (see fake_rpc.h): refs, finished, cancelled,
 * write_in_flight and *out. It is a leaf lock, never held while a callback
 * runs; `ended` is broadcast under it whenever the call finishes, is
 * cancelled or its last extra reference goes. The other fields belong to
 * the harness thread. */
struct oee_rpc_call {
  oee_rpc_server *srv;
  const registered *reg;
  ProtobufCMessage *req; /* lives in req_arena; freed after on_done */
  oee_arena req_arena;
  oee_rpc_call_callbacks cbs;
  void *user;
  pthread_mutex_t mu;
  pthread_cond_t ended;  /* CLOCK_MONOTONIC */
  int refs;              /* extra references (oee_rpc_call_ref); mu */
  int finished;          /* a status was sent; mu */
  int cancelled;         /* the client went away first; mu */
  int write_in_flight;   /* mu */
  int in_callback;       /* guards against re-entrant on_writable */
  oee_fake_outcome *out; /* mu */
};

/* ---------------------------------------------------------------- server */

/* Nothing listens: every address "binds", and the port is always 0. */
int oee_rpc_server_open(const char *listen_addr, const oee_rpc_server_options *opts, int *port,
                        oee_rpc_server **out) {
  (void)opts;
  if (out != NULL) *out = NULL;
  if (listen_addr == NULL || out == NULL) return OEE_RPC_EINVAL;
  *out = calloc(1, sizeof(**out));
  if (*out == NULL) return OEE_RPC_ENOMEM;
  if (port) *port = 0;
  return 0;
}

oee_rpc_server *oee_rpc_server_create(const char *listen_addr, const oee_rpc_server_options *opts,
                                      int *port) {
  oee_rpc_server *s = NULL;
  (void)oee_rpc_server_open(listen_addr, opts, port, &s);
  return s;
}

int oee_rpc_server_add_service(oee_rpc_server *srv, const oee_rpc_method *methods, size_t n,
                               void *ctx) {
  if (srv == NULL || methods == NULL) return OEE_RPC_EINVAL;
  if (srv->started) return OEE_RPC_ESTATE;
  if (srv->n_methods + n > MAX_METHODS) return OEE_RPC_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    if (methods[i].path == NULL || oee_fake_find(srv, methods[i].path, NULL)) {
      return OEE_RPC_EINVAL;
    }
  }
  for (size_t i = 0; i < n; i++) {
    registered *r = &srv->methods[srv->n_methods++];
    r->m = methods[i];
    r->m.path = strdup(methods[i].path);
    r->ctx = ctx;
    if (r->m.path == NULL) abort();
  }
  return 0;
}

void oee_rpc_server_set_tick(oee_rpc_server *srv, void (*tick)(void *ud), void *ud,
                             int interval_ms) {
  srv->tick = tick;
  srv->tick_ud = ud;
  srv->tick_interval_ms = interval_ms;
}

void oee_rpc_server_set_tick_interval(oee_rpc_server *srv, int interval_ms) {
  srv->tick_interval_ms = interval_ms;
}

int oee_rpc_server_start(oee_rpc_server *srv) {
  if (srv->started) return OEE_RPC_ESTATE;
  srv->started = 1;
  return 0;
}

int oee_rpc_server_run(oee_rpc_server *srv) {
  /* No loop to run: the harness drives calls itself. */
  return srv->started ? 0 : OEE_RPC_ESTATE;
}

void oee_rpc_server_shutdown(oee_rpc_server *srv) { srv->stopping = 1; }

int oee_rpc_server_stopping(const oee_rpc_server *srv) { return srv->stopping; }

void oee_rpc_server_destroy(oee_rpc_server *srv) {
  if (srv == NULL) return;
  for (size_t i = 0; i < srv->n_methods; i++) free((char *)srv->methods[i].m.path);
  free(srv);
}

size_t oee_rpc_server_live_calls(const oee_rpc_server *srv) { return srv->live_calls; }

const oee_rpc_method *oee_fake_find(oee_rpc_server *srv, const char *path, void **ctx) {
  for (size_t i = 0; i < srv->n_methods; i++) {
    if (strcmp(srv->methods[i].m.path, path) == 0) {
      if (ctx) *ctx = srv->methods[i].ctx;
      return &srv->methods[i].m;
    }
  }
  return NULL;
}

void oee_fake_tick(oee_rpc_server *srv) {
  if (srv->tick) srv->tick(srv->tick_ud);
}

/* ----------------------------------------------------------------- calls */

void oee_rpc_call_set_callbacks(oee_rpc_call *call, const oee_rpc_call_callbacks *cbs, void *user) {
  if (cbs) {
    call->cbs = *cbs;
  } else {
    memset(&call->cbs, 0, sizeof(call->cbs));
  }
  call->user = user;
}

void *oee_rpc_call_user(const oee_rpc_call *call) { return call->user; }

const oee_rpc_method *oee_rpc_call_method(const oee_rpc_call *call) { return &call->reg->m; }

const ProtobufCMessage *oee_rpc_call_request(const oee_rpc_call *call) { return call->req; }

static void lock(oee_rpc_call *call) {
  if (pthread_mutex_lock(&call->mu) != 0) abort();
}

static void unlock(oee_rpc_call *call) {
  if (pthread_mutex_unlock(&call->mu) != 0) abort();
}

/* Lock held. Wakes oee_fake_wait(). */
static void signal_ended(oee_rpc_call *call) {
  if (pthread_cond_broadcast(&call->ended) != 0) abort();
}

void oee_rpc_call_ref(oee_rpc_call *call) {
  lock(call);
  call->refs++;
  unlock(call);
}

/* The harness frees the call (oee_fake_end) and checks the count is 0; the
 * last unref wakes a harness waiting for another thread to let go. */
void oee_rpc_call_unref(oee_rpc_call *call) {
  lock(call);
  if (--call->refs == 0) signal_ended(call);
  unlock(call);
}

/* Packs msg and decodes it again with the method's response type, as a
 * client would; keeps the bytes in the outcome. Returns 0 or -1. Lock
 * held. */
static int encode(oee_rpc_call *call, const ProtobufCMessage *msg) {
  oee_fake_outcome *o = call->out;
  if (msg == NULL || msg->descriptor != call->reg->m.response) {
    o->bad_messages++;
    return -1;
  }
  size_t len = protobuf_c_message_get_packed_size(msg);
  uint8_t *buf = malloc(len ? len : 1);
  if (buf == NULL) abort();
  size_t packed = protobuf_c_message_pack(msg, buf);
  ProtobufCMessage *back = protobuf_c_message_unpack(call->reg->m.response, NULL, packed, buf);
  if (packed != len || back == NULL) {
    o->bad_messages++;
    free(buf);
    return -1;
  }
  protobuf_c_message_free_unpacked(back, NULL);
  free(o->reply);
  o->reply = buf;
  o->reply_len = len;
  return 0;
}

/* Lock held. */
static int reply_locked(oee_rpc_call *call, const ProtobufCMessage *msg) {
  if (call->reg->m.server_streaming) {
    call->out->refused++;
    return OEE_RPC_EINVAL;
  }
  if (call->finished || call->cancelled) {
    call->out->refused++;
    return OEE_RPC_ECLOSED;
  }
  if (encode(call, msg) != 0) return OEE_RPC_EINVAL;
  call->finished = 1;
  call->out->replies++;
  call->out->code = GRPC_STATUS_OK;
  signal_ended(call);
  return 0;
}

int oee_rpc_call_reply(oee_rpc_call *call, const ProtobufCMessage *msg) {
  if (call == NULL) return OEE_RPC_EINVAL;
  lock(call);
  int rc = reply_locked(call, msg);
  unlock(call);
  return rc;
}

int oee_rpc_call_finish(oee_rpc_call *call, grpc_status_code code, const char *message) {
  lock(call);
  int rc = 0;
  if (call->finished || call->cancelled) {
    call->out->refused++;
    rc = OEE_RPC_ECLOSED;
  } else {
    call->finished = 1;
    call->out->statuses++;
    call->out->code = code;
    snprintf(call->out->message, sizeof(call->out->message), "%s", message ? message : "");
    signal_ended(call);
  }
  unlock(call);
  return rc;
}

int oee_rpc_call_fail(oee_rpc_call *call, grpc_status_code code, const char *message) {
  return oee_rpc_call_finish(call, code, message);
}

/* Whether a write may start: 0, or the refusal (counted). Lock held. */
static int write_check(oee_rpc_call *call) {
  int rc = 0;
  if (!call->reg->m.server_streaming) {
    rc = OEE_RPC_EINVAL;
  } else if (call->finished || call->cancelled) {
    rc = OEE_RPC_ECLOSED;
  } else if (call->write_in_flight) {
    rc = OEE_RPC_EBUSY;
  }
  if (rc != 0) call->out->refused++;
  return rc;
}

int oee_rpc_call_write(oee_rpc_call *call, const ProtobufCMessage *msg) {
  if (call == NULL) return OEE_RPC_EINVAL;
  lock(call);
  int rc = write_check(call);
  if (rc == 0 && encode(call, msg) != 0) rc = OEE_RPC_EINVAL;
  if (rc == 0) {
    call->write_in_flight = 1;
    call->out->writes++;
  }
  unlock(call);
  return rc;
}

/* Keeps a copy of packed, which must be one response message (decoded as a
 * client would), as the reply. Lock held. */
static int keep_packed(oee_rpc_call *call, grpc_slice packed) {
  size_t len = GRPC_SLICE_LENGTH(packed);
  ProtobufCMessage *m =
      protobuf_c_message_unpack(call->reg->m.response, NULL, len, GRPC_SLICE_START_PTR(packed));
  if (m == NULL) {
    call->out->bad_messages++;
    return OEE_RPC_EINVAL;
  }
  protobuf_c_message_free_unpacked(m, NULL);
  uint8_t *copy = malloc(len ? len : 1);
  if (copy == NULL) abort();
  memcpy(copy, GRPC_SLICE_START_PTR(packed), len);
  free(call->out->reply);
  call->out->reply = copy;
  call->out->reply_len = len;
  return 0;
}

/* The same as the write in flight. Lock held. */
static int write_packed(oee_rpc_call *call, grpc_slice packed) {
  int rc = keep_packed(call, packed);
  if (rc != 0) return rc;
  call->write_in_flight = 1;
  call->out->writes++;
  return 0;
}

int oee_rpc_call_reply_slice(oee_rpc_call *call, grpc_slice packed) {
  if (call == NULL) return OEE_RPC_EINVAL;
  lock(call);
  int rc = 0;
  if (call->reg->m.server_streaming) {
    rc = OEE_RPC_EINVAL;
  } else if (call->finished || call->cancelled) {
    rc = OEE_RPC_ECLOSED;
  }
  if (rc != 0) call->out->refused++;
  if (rc == 0) rc = keep_packed(call, packed);
  if (rc == 0) {
    call->finished = 1;
    call->out->replies++;
    call->out->code = GRPC_STATUS_OK;
    signal_ended(call);
  }
  unlock(call);
  return rc;
}

int oee_rpc_call_write_slice(oee_rpc_call *call, grpc_slice packed) {
  if (call == NULL) return OEE_RPC_EINVAL;
  lock(call);
  int rc = write_check(call);
  if (rc == 0) rc = write_packed(call, packed);
  unlock(call);
  return rc;
}

/* No transport here to hold bytes back: `more` changes nothing. */
int oee_rpc_call_write_slice_more(oee_rpc_call *call, grpc_slice packed, int more) {
  (void)more;
  return oee_rpc_call_write_slice(call, packed);
}

/* The const functions lock too: the mutex is not part of the call's value. */
int oee_rpc_call_writable(const oee_rpc_call *call) {
  oee_rpc_call *c = (oee_rpc_call *)call;
  lock(c);
  int ok = !c->finished && !c->cancelled && !c->write_in_flight;
  unlock(c);
  return ok;
}

void oee_rpc_call_peer(const oee_rpc_call *call, char *buf, size_t len) {
  (void)call;
  if (len > 0) snprintf(buf, len, "%s", "fake:peer");
}

int oee_rpc_call_cancelled(const oee_rpc_call *call) {
  oee_rpc_call *c = (oee_rpc_call *)call;
  lock(c);
  int cancelled = c->cancelled;
  unlock(c);
  return cancelled;
}

int oee_rpc_call_abort(oee_rpc_call *call, grpc_status_code code, const char *message) {
  return oee_rpc_call_finish(call, code, message);
}

/* ------------------------------------------------------ harness controls */

static oee_rpc_call *call_new(oee_rpc_server *srv, const registered *reg, oee_fake_outcome *out) {
  oee_rpc_call *c = calloc(1, sizeof(*c));
  if (c == NULL) abort();
  c->srv = srv;
  c->reg = reg;
  c->out = out;
  pthread_condattr_t ca;
  if (pthread_mutex_init(&c->mu, NULL) != 0 || pthread_condattr_init(&ca) != 0 ||
      pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
      pthread_cond_init(&c->ended, &ca) != 0) {
    abort();
  }
  pthread_condattr_destroy(&ca);
  oee_arena_init(&c->req_arena);
  srv->live_calls++;
  return c;
}

static void call_free(oee_rpc_call *c) {
  oee_arena_free(&c->req_arena); /* the request, all of it */
  c->srv->live_calls--;
  pthread_cond_destroy(&c->ended);
  pthread_mutex_destroy(&c->mu);
  /* Poison what a handler might still hold: ASan reports any later use. */
  free(c);
}

/* Answers a call that never reached its handler. */
static oee_rpc_call *refuse(oee_rpc_call *c, grpc_status_code code, const char *message) {
  c->out->statuses = 1;
  c->out->code = code;
  snprintf(c->out->message, sizeof(c->out->message), "%s", message);
  call_free(c);
  return NULL;
}

oee_rpc_call *oee_fake_start(oee_rpc_server *srv, const char *path, const uint8_t *data,
                             size_t size, void (*patch)(ProtobufCMessage *, void *), void *ud,
                             oee_fake_outcome *out) {
  memset(out, 0, sizeof(*out));
  void *ctx = NULL;
  const oee_rpc_method *m = oee_fake_find(srv, path, &ctx);
  if (m == NULL) abort(); /* a harness bug: the method is not registered */
  oee_rpc_call *c = call_new(srv, (const registered *)m, out);
  if (!m->client_streaming) {
    ProtobufCAllocator alloc = oee__rpc_arena_allocator(&c->req_arena);
    /* As the runtime: the method's own reader first (a NUL-free pointer
     * for empty input, as gRPC's slices give). */
    static const uint8_t none[1];
    if (m->decode) c->req = m->decode(size ? data : none, size, &c->req_arena);
    if (c->req == NULL && !oee_arena_failed(&c->req_arena)) {
      c->req = protobuf_c_message_unpack(m->request, &alloc, size, data);
    }
    if (c->req == NULL && oee_arena_failed(&c->req_arena)) {
      return refuse(c, GRPC_STATUS_RESOURCE_EXHAUSTED, OEE_RPC_DECODE_OOM);
    }
    if (c->req == NULL) return refuse(c, GRPC_STATUS_INVALID_ARGUMENT, "request does not decode");
    if (patch) patch(c->req, ud);
  }
  if (m->handler == NULL) return refuse(c, GRPC_STATUS_UNIMPLEMENTED, "unimplemented");
  out->decoded = 1;
  m->handler(c, c->req, ctx);
  return c;
}

int oee_fake_ended(const oee_rpc_call *call) {
  oee_rpc_call *c = (oee_rpc_call *)call;
  lock(c);
  int ended = c->finished || c->cancelled;
  unlock(c);
  return ended;
}

int oee_fake_wait(oee_rpc_call *call, int timeout_ms) {
  struct timespec deadline;
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  deadline.tv_sec += timeout_ms / 1000;
  deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (deadline.tv_nsec >= 1000000000L) {
    deadline.tv_sec++;
    deadline.tv_nsec -= 1000000000L;
  }
  lock(call);
  int rc = 0;
  while (!((call->finished || call->cancelled) && call->refs == 0) && rc != ETIMEDOUT) {
    rc = pthread_cond_timedwait(&call->ended, &call->mu, &deadline);
    if (rc != 0 && rc != ETIMEDOUT) abort();
  }
  int done = (call->finished || call->cancelled) && call->refs == 0;
  unlock(call);
  return done;
}

int oee_fake_complete_write(oee_rpc_call *call) {
  if (call->in_callback) return 0;
  lock(call);
  int was = call->write_in_flight;
  int open = !call->finished && !call->cancelled;
  call->write_in_flight = 0;
  unlock(call);
  if (!was) return 0;
  if (open && call->cbs.on_writable) {
    call->in_callback = 1;
    call->cbs.on_writable(call, call->user);
    call->in_callback = 0;
  }
  return 1;
}

static void cancel(oee_rpc_call *call) {
  lock(call);
  int ended = call->finished || call->cancelled;
  if (!ended) {
    call->cancelled = 1;
    signal_ended(call);
  }
  unlock(call);
  if (!ended && call->cbs.on_cancelled) call->cbs.on_cancelled(call, call->user);
}

void oee_fake_deliver(oee_rpc_call *call, const uint8_t *data, size_t size, int half_close) {
  if (oee_fake_ended(call) || call->cbs.on_message == NULL) return;
  if (half_close) {
    call->cbs.on_message(call, NULL, call->user);
    return;
  }
  /* As the runtime: an arena per message, alive for the callback. */
  oee_arena a;
  oee_arena_init(&a);
  ProtobufCAllocator alloc = oee__rpc_arena_allocator(&a);
  ProtobufCMessage *m = protobuf_c_message_unpack(call->reg->m.request, &alloc, size, data);
  if (m == NULL && oee_arena_failed(&a)) {
    oee_rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, OEE_RPC_DECODE_OOM);
  } else if (m == NULL) {
    cancel(call);
  } else {
    call->cbs.on_message(call, m, call->user);
  }
  oee_arena_free(&a);
}

int oee_fake_end(oee_rpc_call *call) {
  cancel(call);
  lock(call);
  call->write_in_flight = 0;
  unlock(call);
  if (call->cbs.on_done) call->cbs.on_done(call, call->user);
  lock(call);
  int refs = call->refs;
  unlock(call);
  call_free(call);
  return refs;
}

void oee_fake_outcome_free(oee_fake_outcome *out) {
  free(out->reply);
  out->reply = NULL;
  out->reply_len = 0;
}
