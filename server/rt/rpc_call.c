/*
 * rpc_call.c - server call objects (see rpc_server.h for the contract).
 *
 * DESIGN: completions, handlers and callbacks of a call run on the thread
 * of the queue it arrived on (the main thread for streaming calls, any io
 * thread for unary ones: rpc_server.h), called "the CQ thread" below, but
 * a unary call may be answered from any thread (e.g. an engine thread that
 * committed a submission). A call holds one reference per gRPC batch in
 * flight (open = initial metadata + RECV_CLOSE, send = final
 * message/status, write, read), one for the dispatch and one per
 * oee_rpc_call_ref(). The status is sent at most once (status_sent); a
 * status requested while a write is in flight waits for that write
 * (pending). The RECV_CLOSE completion without a status sent means the
 * client went away.
 *
 * Threads and locks:
 *  - Any thread: oee_rpc_call_reply, _reply_slice, _fail, _finish, _ref, _unref,
 *    _cancelled, provided that thread holds a reference (taken with
 *    oee_rpc_call_ref on the CQ thread while the handler runs). Everything
 *    else (set_callbacks, write, writable, abort, the completions) stays on
 *    the CQ thread.
 *  - refs is atomic. The reference of a batch is taken before
 *    grpc_call_start_batch (its completion may run on the CQ thread before
 *    start_batch returns to another thread) and given back if it fails.
 *  - mu guards the state flags (finished, status_sent, cancelled, closed,
 *    writing, pending), the pending status (pcode, ptext) and the buffers
 *    of the send batch (details, send_bb). It is never held while a user
 *    callback runs, so callbacks may call back in; it is held across
 *    grpc_call_start_batch, which only queues work (completions go through
 *    the CQ). Lock order: call mu, then the server's cq_lock.
 *  - The last unref frees the call on the thread that drops it: on_done
 *    then runs there (for unary calls answered from elsewhere that is the
 *    answering thread).
 *  - The observe hook is told once per call, where its status is decided
 *    (send_status, abort, or the client gone: observe_once). That is the
 *    one callback that runs with mu held: it only counts (rpc_server.h),
 *    and telling it there, before the status batch starts, means a client
 *    that has its answer finds the call counted.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/support/alloc.h>

#include "core/oee_alloc.h"
#include "rpc/arena.h"
#include "rpc/codec.h"
#include "server/rt/rpc_internal.h"

struct oee_rpc_call {
  oee_rpc_server *srv;
  method_reg *reg;           /* NULL: unknown method */
  grpc_call *gc;             /* owned reference */
  grpc_byte_buffer *payload; /* request bytes (unary, server streaming) */
  ProtobufCMessage *req;     /* decoded request or NULL */
  atomic_int refs;
  pthread_mutex_t mu; /* guards the fields from client_cancelled to details */
  rt_op open_op, send_op, write_op, read_op, reply_op;
  int client_cancelled;   /* RECV_CLOSE_ON_SERVER output */
  int opened;             /* initial metadata + RECV_CLOSE started (alone or with the status) */
  int closed;             /* RECV_CLOSE completed */
  int finished;           /* no more writes: status sent/pending/cancelled */
  int status_sent;        /* SEND_STATUS batch started */
  int cancelled;          /* ended by the client before a status */
  int writing;            /* a write batch is in flight */
  int pending;            /* status waits for the write in flight */
  int observed;           /* the observe hook was told */
  int64_t arrived_ns;     /* monotonic; immutable */
  grpc_status_code pcode; /* pending status */
  char *ptext;            /* pending status message (owned) or NULL */
  int ptext_lost;         /* the pending message could not be copied */
  grpc_slice details;     /* status message of the send batch */
  grpc_byte_buffer *send_bb, *write_bb, *read_bb;
  oee_rpc_call_callbacks cb;
  void *user;
  oee_arena req_arena;          /* the decoded request lives here: one free */
  ProtobufCAllocator req_alloc; /* protobuf-c's view of req_arena */
};

int64_t oee__rpc_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void oee__rpc_observe(oee_rpc_server *srv, const method_reg *reg, grpc_status_code code,
                      int64_t arrived_ns) {
  if (srv->observe == NULL || reg == NULL) return;
  srv->observe(srv->observe_ud, reg->index, code, oee__rpc_now_ns() - arrived_ns);
}

/* Tells the observe hook how the call ended, once. Lock held (or, at
 * dispatch, no other thread can hold the call yet). */
static void observe_once(oee_rpc_call *c, grpc_status_code code) {
  if (c->observed) return;
  c->observed = 1;
  oee__rpc_observe(c->srv, c->reg, code, c->arrived_ns);
}

static void call_free(oee_rpc_call *c) {
  if (c->cb.on_done) c->cb.on_done(c, c->user);
  grpc_call_unref(c->gc);
  oee_arena_free(&c->req_arena); /* the request, all of it */
  if (c->payload) grpc_byte_buffer_destroy(c->payload);
  grpc_slice_unref(c->details);
  oee_free(c->ptext);
  pthread_mutex_destroy(&c->mu);
  atomic_fetch_sub(&c->srv->live_calls, 1);
  oee_free(c);
}

static void lock(oee_rpc_call *c) {
  if (pthread_mutex_lock(&c->mu) != 0) abort();
}

static void unlock(oee_rpc_call *c) {
  if (pthread_mutex_unlock(&c->mu) != 0) abort();
}

void oee_rpc_call_ref(oee_rpc_call *c) { atomic_fetch_add(&c->refs, 1); }

void oee_rpc_call_unref(oee_rpc_call *c) {
  if (atomic_fetch_sub(&c->refs, 1) == 1) call_free(c);
}

/* Starts a batch whose completion runs op; takes a reference first. The
 * caller holds another one, so giving it back on failure never frees. Under
 * cq_lock so that the CQ cannot shut down between the check and the start
 * (gRPC asserts on a batch for a shut-down queue). */
static int start(oee_rpc_call *c, grpc_op *ops, size_t n, rt_op *op) {
  oee_rpc_server *srv = c->srv;
  int rc = 0;
  if (pthread_rwlock_rdlock(&srv->cq_lock) != 0) abort();
  if (srv->cq_down) {
    rc = OEE_RPC_ECLOSED;
  } else {
    atomic_fetch_add(&c->refs, 1);
    oee__rt_op_handoff(op);
    if (grpc_call_start_batch(c->gc, ops, n, op, NULL) != GRPC_CALL_OK) {
      atomic_fetch_sub(&c->refs, 1);
      rc = OEE_RPC_ECALL;
    }
  }
  if (pthread_rwlock_unlock(&srv->cq_lock) != 0) abort();
  return rc;
}

static void send_done(void *owner, int ok) {
  oee_rpc_call *c = owner;
  lock(c);
  grpc_byte_buffer *bb = c->send_bb;
  c->send_bb = NULL;
  unlock(c);
  if (bb) grpc_byte_buffer_destroy(bb);
  oee_rpc_call_unref(c);
}

/* The one batch of a unary call answered before it was opened: initial
 * metadata, message and status went out together with RECV_CLOSE. */
static void reply_done(void *owner, int ok) {
  (void)ok;
  oee_rpc_call *c = owner;
  lock(c);
  c->closed = 1; /* the status was sent first: the client cannot be "gone" */
  grpc_byte_buffer *bb = c->send_bb;
  c->send_bb = NULL;
  unlock(c);
  if (bb) grpc_byte_buffer_destroy(bb);
  oee_rpc_call_unref(c);
}

/* Sends [msg +] status; a call not opened yet (a unary answer given while
 * its handler runs, or soon after from another thread) sends its initial
 * metadata and arms RECV_CLOSE in the same batch: one write and one
 * completion per call, as a bare gRPC server would. msg (owned) is
 * destroyed on failure. Lock held. */
static int send_status(oee_rpc_call *c, grpc_byte_buffer *msg, grpc_status_code code,
                       const char *text) {
  grpc_op ops[4];
  size_t n = 0;
  memset(ops, 0, sizeof ops);
  rt_op *tag = &c->send_op;
  if (!c->opened) {
    c->opened = 1;
    tag = &c->reply_op;
    ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[n++].data.recv_close_on_server.cancelled = &c->client_cancelled;
  }
  if (msg) {
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n++].data.send_message.send_message = msg;
  }
  grpc_slice_unref(c->details);
  c->details = text ? grpc_slice_from_copied_string(text) : grpc_empty_slice();
  ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  ops[n].data.send_status_from_server.status = code;
  ops[n++].data.send_status_from_server.status_details = &c->details;
  c->finished = c->status_sent = 1;
  c->send_bb = msg;
  observe_once(c, code);
  int rc = start(c, ops, n, tag);
  if (rc != 0 && msg) grpc_byte_buffer_destroy(msg);
  if (rc != 0) c->send_bb = NULL;
  if (rc != 0 && tag == &c->reply_op) c->closed = 1; /* nothing will report it */
  return rc;
}

static void open_done(void *owner, int ok) {
  oee_rpc_call *c = owner;
  lock(c);
  c->closed = 1;
  int gone = !c->status_sent;
  if (gone) {
    c->cancelled = c->finished = 1;
    c->pending = 0;
    observe_once(c, GRPC_STATUS_CANCELLED);
  }
  unlock(c);
  if (gone && c->cb.on_cancelled) c->cb.on_cancelled(c, c->user);
  oee_rpc_call_unref(c);
}

/* Sends initial metadata and arms RECV_CLOSE_ON_SERVER in one batch.
 * Lock held, or no other thread can hold the call yet. */
static int open_call(oee_rpc_call *c) {
  c->opened = 1;
  grpc_op ops[2];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  ops[1].data.recv_close_on_server.cancelled = &c->client_cancelled;
  return start(c, ops, 2, &c->open_op);
}

static void write_done(void *owner, int ok) {
  oee_rpc_call *c = owner;
  grpc_byte_buffer_destroy(c->write_bb);
  c->write_bb = NULL;
  lock(c);
  c->writing = 0;
  int writable = 0;
  if (c->pending) {
    c->pending = 0;
    send_status(c, NULL, c->pcode, c->ptext_lost ? OEE_RPC_OOM_STATUS : c->ptext);
    oee_free(c->ptext);
    c->ptext = NULL;
  } else {
    writable = ok && !c->finished;
  }
  unlock(c);
  if (writable && c->cb.on_writable) c->cb.on_writable(c, c->user);
  oee_rpc_call_unref(c);
}

static void start_read(oee_rpc_call *c);

/* A streamed request message, decoded into an arena of its own that lives
 * for the on_message callback. */
static void deliver(oee_rpc_call *c, grpc_byte_buffer *bb) {
  oee_arena a;
  oee_arena_init(&a);
  ProtobufCAllocator alloc = oee__rpc_arena_allocator(&a);
  ProtobufCMessage *m = oee__rpc_unpack_with(c->reg->m.request, bb, &alloc);
  if (m == NULL && oee_arena_failed(&a)) {
    oee_rpc_call_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, OEE_RPC_DECODE_OOM);
  } else if (m == NULL) {
    oee_rpc_call_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "request message does not decode");
  } else if (c->cb.on_message) {
    c->cb.on_message(c, m, c->user);
  }
  oee_arena_free(&a);
}

static void read_done(void *owner, int ok) {
  oee_rpc_call *c = owner;
  grpc_byte_buffer *bb = c->read_bb;
  c->read_bb = NULL;
  if (!ok || bb == NULL) {
    lock(c);
    int finished = c->finished;
    unlock(c);
    if (!finished && c->cb.on_message) c->cb.on_message(c, NULL, c->user);
  } else {
    deliver(c, bb);
    lock(c);
    int finished = c->finished;
    unlock(c);
    if (!finished) start_read(c);
  }
  if (bb) grpc_byte_buffer_destroy(bb);
  oee_rpc_call_unref(c);
}

static void start_read(oee_rpc_call *c) {
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_MESSAGE;
  op.data.recv_message.recv_message = &c->read_bb;
  start(c, &op, 1, &c->read_op);
}

static oee_rpc_call *call_new(oee_rpc_server *srv, method_reg *reg, grpc_call *gc,
                              grpc_byte_buffer *payload, int64_t arrived_ns) {
  oee_rpc_call *c = oee_calloc(1, sizeof *c);
  if (c == NULL) return NULL;
  c->srv = srv;
  c->arrived_ns = arrived_ns;
  c->reg = reg;
  c->gc = gc;
  c->payload = payload;
  atomic_init(&c->refs, 1); /* the dispatch reference */
  if (pthread_mutex_init(&c->mu, NULL) != 0) abort();
  c->details = grpc_empty_slice();
  c->open_op = (rt_op){.done = open_done, .owner = c};
  c->send_op = (rt_op){.done = send_done, .owner = c};
  c->write_op = (rt_op){.done = write_done, .owner = c};
  c->read_op = (rt_op){.done = read_done, .owner = c};
  c->reply_op = (rt_op){.done = reply_done, .owner = c};
  oee_arena_init(&c->req_arena);
  c->req_alloc = oee__rpc_arena_allocator(&c->req_arena);
  atomic_fetch_add(&srv->live_calls, 1);
  return c;
}

/* The request: the method's own reader first when it has one, on the
 * bytes made contiguous (gRPC may hand a large message in several
 * slices), and protobuf-c for what it leaves. */
static ProtobufCMessage *decode(oee_rpc_call *c, const oee_rpc_method *m) {
  grpc_byte_buffer *bb = c->payload;
  if (m->decode == NULL || bb == NULL) return oee__rpc_unpack_with(m->request, bb, &c->req_alloc);
  grpc_slice s;
  int own;
  if (oee__rpc_contiguous(bb, &s, &own) != 0) return NULL;
  const uint8_t *data = GRPC_SLICE_START_PTR(s);
  size_t len = GRPC_SLICE_LENGTH(s);
  ProtobufCMessage *req = m->decode(data, len, &c->req_arena);
  if (req == NULL && !oee_arena_failed(&c->req_arena)) {
    req = protobuf_c_message_unpack(m->request, &c->req_alloc, len, data);
  }
  if (own) grpc_slice_unref(s);
  return req;
}

/* Decodes the request and runs the handler, or answers INVALID_ARGUMENT
 * (RESOURCE_EXHAUSTED when the arena ran out of memory decoding it). */
static void run_handler(oee_rpc_call *c) {
  const oee_rpc_method *m = &c->reg->m;
  if (m->client_streaming) {
    m->handler(c, NULL, c->reg->ctx);
    lock(c);
    int finished = c->finished;
    unlock(c);
    if (!finished) start_read(c);
    return;
  }
  c->req = decode(c, m);
  if (c->req == NULL && oee_arena_failed(&c->req_arena)) {
    lock(c);
    send_status(c, NULL, GRPC_STATUS_RESOURCE_EXHAUSTED, OEE_RPC_DECODE_OOM);
    unlock(c);
    return;
  }
  if (c->req == NULL) {
    char text[256];
    snprintf(text, sizeof text, "request does not decode as %s", m->request->name);
    lock(c);
    send_status(c, NULL, GRPC_STATUS_INVALID_ARGUMENT, text);
    unlock(c);
    return;
  }
  m->handler(c, c->req, c->reg->ctx);
}

/* Streams open at once: they must hear of a client that goes away while
 * they have nothing to send. A unary call (or an unknown method's) opens
 * with its answer when that comes during the handler (send_status), else
 * right after the handler returned. */
static int opens_first(const method_reg *reg) {
  return reg != NULL && (reg->m.client_streaming || reg->m.server_streaming);
}

/* The open batch of a unary call the handler left unanswered. */
static void open_after_handler(oee_rpc_call *c) {
  lock(c);
  if (!c->opened && open_call(c) != 0) {
    c->closed = 1; /* the queue is shutting down: nothing will report it */
    if (!c->status_sent) {
      c->finished = c->cancelled = 1;
      observe_once(c, GRPC_STATUS_CANCELLED);
    }
  }
  unlock(c);
}

void oee__rpc_call_dispatch(oee_rpc_server *srv, method_reg *reg, grpc_call *gc,
                            grpc_byte_buffer *payload, const char *path, int64_t arrived_ns) {
  oee_rpc_call *c = call_new(srv, reg, gc, payload, arrived_ns);
  if (c == NULL) {
    oee__rpc_observe(srv, reg, GRPC_STATUS_RESOURCE_EXHAUSTED, arrived_ns);
    grpc_call_cancel_with_status(gc, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL);
    grpc_call_unref(gc);
    if (payload) grpc_byte_buffer_destroy(payload);
    return;
  }
  if (opens_first(reg) && open_call(c) != 0) {
    c->finished = c->closed = 1; /* the queue is shutting down: dropped */
    observe_once(c, GRPC_STATUS_CANCELLED);
  } else if (reg == NULL || reg->m.handler == NULL) {
    char text[512];
    snprintf(text, sizeof text, "unknown method %s", reg ? reg->m.path : (path ? path : "?"));
    lock(c);
    send_status(c, NULL, GRPC_STATUS_UNIMPLEMENTED, text);
    unlock(c);
  } else {
    run_handler(c);
  }
  if (!opens_first(reg)) open_after_handler(c);
  oee_rpc_call_unref(c);
}

/* ------------------------------------------------------------ public */

void oee_rpc_call_set_callbacks(oee_rpc_call *c, const oee_rpc_call_callbacks *cbs, void *user) {
  memset(&c->cb, 0, sizeof c->cb);
  if (cbs) c->cb = *cbs;
  c->user = user;
}

void *oee_rpc_call_user(const oee_rpc_call *c) { return c->user; }

const oee_rpc_method *oee_rpc_call_method(const oee_rpc_call *c) {
  return c->reg ? &c->reg->m : NULL;
}

const ProtobufCMessage *oee_rpc_call_request(const oee_rpc_call *c) { return c->req; }

int oee_rpc_call_cancelled(const oee_rpc_call *call) {
  oee_rpc_call *c = (oee_rpc_call *)call; /* the lock, not the state, changes */
  lock(c);
  int cancelled = c->cancelled;
  unlock(c);
  return cancelled;
}

void oee_rpc_call_peer(const oee_rpc_call *c, char *buf, size_t len) {
  if (len == 0) return;
  char *peer = grpc_call_get_peer(c->gc);
  snprintf(buf, len, "%s", peer ? peer : "");
  gpr_free(peer);
}

int oee_rpc_call_abort(oee_rpc_call *c, grpc_status_code code, const char *message) {
  if (c == NULL) return OEE_RPC_EINVAL;
  lock(c);
  if (c->status_sent || c->cancelled) {
    unlock(c);
    return OEE_RPC_ECLOSED;
  }
  /* The write in flight may never complete (the client does not read), so
   * the status cannot queue behind it: gRPC cancels the stream with it. */
  c->finished = c->status_sent = 1;
  c->pending = 0;
  oee_free(c->ptext);
  c->ptext = NULL;
  observe_once(c, code);
  unlock(c);
  grpc_call_cancel_with_status(c->gc, code, message ? message : "", NULL);
  return 0;
}

int oee_rpc_call_writable(const oee_rpc_call *call) {
  oee_rpc_call *c = (oee_rpc_call *)call;
  lock(c);
  int ok = !c->finished && !c->writing && atomic_load(&c->srv->phase) < PHASE_CQ_DOWN;
  unlock(c);
  return ok;
}

static int check_type(const oee_rpc_call *c, const ProtobufCMessage *msg) {
  if (c == NULL || msg == NULL || c->reg == NULL) return OEE_RPC_EINVAL;
  return msg->descriptor != c->reg->m.response ? OEE_RPC_EINVAL : 0;
}

/* Lock held. */
static int check_open(const oee_rpc_call *c) {
  if (c->finished) return OEE_RPC_ECLOSED;
  return c->writing ? OEE_RPC_EBUSY : 0;
}

int oee_rpc_call_reply(oee_rpc_call *c, const ProtobufCMessage *msg) {
  int rc = check_type(c, msg);
  if (rc != 0) return rc;
  /* Packed outside the lock: the message is the caller's, not the call's. */
  grpc_byte_buffer *bb = oee__rpc_pack(msg);
  lock(c);
  rc = check_open(c);
  if (rc == 0) {
    rc = send_status(c, bb, GRPC_STATUS_OK, NULL); /* owns bb from here */
    bb = NULL;
  }
  unlock(c);
  if (bb) grpc_byte_buffer_destroy(bb);
  return rc;
}

int oee_rpc_call_reply_slice(oee_rpc_call *c, grpc_slice packed) {
  if (c == NULL || c->reg == NULL) return OEE_RPC_EINVAL;
  lock(c);
  int rc = check_open(c);
  if (rc == 0) rc = send_status(c, grpc_raw_byte_buffer_create(&packed, 1), GRPC_STATUS_OK, NULL);
  unlock(c);
  return rc;
}

/* Starts a SEND_MESSAGE batch that owns bb; `more`: another write follows
 * at once, so gRPC may hold this one to send both in one transport write
 * (GRPC_WRITE_BUFFER_HINT: the write completes once buffered, below the
 * transport's write buffer size). Lock held. */
static int write_bb(oee_rpc_call *c, grpc_byte_buffer *bb, int more) {
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_SEND_MESSAGE;
  op.flags = more ? GRPC_WRITE_BUFFER_HINT : 0;
  op.data.send_message.send_message = c->write_bb = bb;
  int rc = start(c, &op, 1, &c->write_op);
  if (rc != 0) {
    grpc_byte_buffer_destroy(c->write_bb);
    c->write_bb = NULL;
    return rc;
  }
  c->writing = 1;
  return 0;
}

int oee_rpc_call_write(oee_rpc_call *c, const ProtobufCMessage *msg) {
  int rc = check_type(c, msg);
  if (rc != 0) return rc;
  lock(c);
  rc = check_open(c);
  if (rc == 0) rc = write_bb(c, oee__rpc_pack(msg), 0);
  unlock(c);
  return rc;
}

int oee_rpc_call_write_slice_more(oee_rpc_call *c, grpc_slice packed, int more) {
  if (c == NULL) return OEE_RPC_EINVAL;
  lock(c);
  int rc = check_open(c);
  if (rc == 0) rc = write_bb(c, grpc_raw_byte_buffer_create(&packed, 1), more); /* refs it */
  unlock(c);
  return rc;
}

int oee_rpc_call_write_slice(oee_rpc_call *c, grpc_slice packed) {
  return oee_rpc_call_write_slice_more(c, packed, 0);
}

int oee_rpc_call_finish(oee_rpc_call *c, grpc_status_code code, const char *message) {
  if (c == NULL) return OEE_RPC_EINVAL;
  int rc = 0;
  lock(c);
  if (c->finished) {
    rc = OEE_RPC_ECLOSED;
  } else if (!c->writing) {
    rc = send_status(c, NULL, code, message);
  } else {
    c->finished = c->pending = 1;
    c->pcode = code;
    c->ptext = message ? oee_strdup(message) : NULL;
    c->ptext_lost = message != NULL && c->ptext == NULL;
  }
  unlock(c);
  return rc;
}

int oee_rpc_call_fail(oee_rpc_call *c, grpc_status_code code, const char *message) {
  return oee_rpc_call_finish(c, code, message);
}
