/*
 * rpc_call.c - server call objects (see rpc_server.h for the contract).
 *
 * DESIGN: everything runs on the CQ thread, so no locks. A call holds one
 * reference per gRPC batch in flight (open = initial metadata + RECV_CLOSE,
 * send = final message/status, write, read), one for the dispatch and one per
 * oee_rpc_call_ref(). The status is sent at most once (status_sent); a status
 * requested while a write is in flight waits for that write (pending). The
 * RECV_CLOSE completion without a status sent means the client went away.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
  int refs;
  rt_op open_op, send_op, write_op, read_op;
  int client_cancelled;   /* RECV_CLOSE_ON_SERVER output */
  int closed;             /* RECV_CLOSE completed */
  int finished;           /* no more writes: status sent/pending/cancelled */
  int status_sent;        /* SEND_STATUS batch started */
  int cancelled;          /* ended by the client before a status */
  int writing;            /* a write batch is in flight */
  int pending;            /* status waits for the write in flight */
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

static void call_free(oee_rpc_call *c) {
  if (c->cb.on_done) c->cb.on_done(c, c->user);
  grpc_call_unref(c->gc);
  oee_arena_free(&c->req_arena); /* the request, all of it */
  if (c->payload) grpc_byte_buffer_destroy(c->payload);
  grpc_slice_unref(c->details);
  oee_free(c->ptext);
  c->srv->live_calls--;
  oee_free(c);
}

void oee_rpc_call_ref(oee_rpc_call *c) { c->refs++; }

void oee_rpc_call_unref(oee_rpc_call *c) {
  if (--c->refs == 0) call_free(c);
}

/* Starts a batch whose completion runs op; takes a reference. */
static int start(oee_rpc_call *c, grpc_op *ops, size_t n, rt_op *op) {
  if (c->srv->phase >= PHASE_CQ_DOWN) return OEE_RPC_ECLOSED;
  if (grpc_call_start_batch(c->gc, ops, n, op, NULL) != GRPC_CALL_OK) return OEE_RPC_ECALL;
  c->refs++;
  return 0;
}

static void send_done(void *owner, int ok) {
  oee_rpc_call *c = owner;
  if (c->send_bb) grpc_byte_buffer_destroy(c->send_bb);
  c->send_bb = NULL;
  oee_rpc_call_unref(c);
}

/* Sends [msg +] status. msg (owned) is destroyed on failure. */
static int send_status(oee_rpc_call *c, grpc_byte_buffer *msg, grpc_status_code code,
                       const char *text) {
  grpc_op ops[2];
  size_t n = 0;
  memset(ops, 0, sizeof ops);
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
  int rc = start(c, ops, n, &c->send_op);
  if (rc != 0 && msg) grpc_byte_buffer_destroy(msg);
  if (rc != 0) c->send_bb = NULL;
  return rc;
}

static void open_done(void *owner, int ok) {
  oee_rpc_call *c = owner;
  c->closed = 1;
  if (!c->status_sent) {
    c->cancelled = c->finished = 1;
    c->pending = 0;
    if (c->cb.on_cancelled) c->cb.on_cancelled(c, c->user);
  }
  oee_rpc_call_unref(c);
}

/* Sends initial metadata and arms RECV_CLOSE_ON_SERVER in one batch. */
static int open_call(oee_rpc_call *c) {
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
  c->writing = 0;
  if (c->pending) {
    c->pending = 0;
    send_status(c, NULL, c->pcode, c->ptext_lost ? OEE_RPC_OOM_STATUS : c->ptext);
    oee_free(c->ptext);
    c->ptext = NULL;
  } else if (ok && !c->finished && c->cb.on_writable) {
    c->cb.on_writable(c, c->user);
  }
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
    if (!c->finished && c->cb.on_message) c->cb.on_message(c, NULL, c->user);
  } else {
    deliver(c, bb);
    if (!c->finished) start_read(c);
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
                              grpc_byte_buffer *payload) {
  oee_rpc_call *c = oee_calloc(1, sizeof *c);
  if (c == NULL) return NULL;
  c->srv = srv;
  c->reg = reg;
  c->gc = gc;
  c->payload = payload;
  c->refs = 1; /* the dispatch reference */
  c->details = grpc_empty_slice();
  c->open_op = (rt_op){open_done, c};
  c->send_op = (rt_op){send_done, c};
  c->write_op = (rt_op){write_done, c};
  c->read_op = (rt_op){read_done, c};
  oee_arena_init(&c->req_arena);
  c->req_alloc = oee__rpc_arena_allocator(&c->req_arena);
  srv->live_calls++;
  return c;
}

/* Decodes the request and runs the handler, or answers INVALID_ARGUMENT
 * (RESOURCE_EXHAUSTED when the arena ran out of memory decoding it). */
static void run_handler(oee_rpc_call *c) {
  const oee_rpc_method *m = &c->reg->m;
  if (m->client_streaming) {
    m->handler(c, NULL, c->reg->ctx);
    if (!c->finished) start_read(c);
    return;
  }
  c->req = oee__rpc_unpack_with(m->request, c->payload, &c->req_alloc);
  if (c->req == NULL && oee_arena_failed(&c->req_arena)) {
    send_status(c, NULL, GRPC_STATUS_RESOURCE_EXHAUSTED, OEE_RPC_DECODE_OOM);
    return;
  }
  if (c->req == NULL) {
    char text[256];
    snprintf(text, sizeof text, "request does not decode as %s", m->request->name);
    send_status(c, NULL, GRPC_STATUS_INVALID_ARGUMENT, text);
    return;
  }
  m->handler(c, c->req, c->reg->ctx);
}

void oee__rpc_call_dispatch(oee_rpc_server *srv, method_reg *reg, grpc_call *gc,
                            grpc_byte_buffer *payload, const char *path) {
  oee_rpc_call *c = call_new(srv, reg, gc, payload);
  if (c == NULL) {
    grpc_call_cancel_with_status(gc, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL);
    grpc_call_unref(gc);
    if (payload) grpc_byte_buffer_destroy(payload);
    return;
  }
  if (open_call(c) != 0) {
    c->finished = c->closed = 1;
  } else if (reg == NULL || reg->m.handler == NULL) {
    char text[512];
    snprintf(text, sizeof text, "unknown method %s", reg ? reg->m.path : (path ? path : "?"));
    send_status(c, NULL, GRPC_STATUS_UNIMPLEMENTED, text);
  } else {
    run_handler(c);
  }
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

int oee_rpc_call_cancelled(const oee_rpc_call *c) { return c->cancelled; }

int oee_rpc_call_abort(oee_rpc_call *c, grpc_status_code code, const char *message) {
  if (c == NULL) return OEE_RPC_EINVAL;
  if (c->status_sent || c->cancelled) return OEE_RPC_ECLOSED;
  /* The write in flight may never complete (the client does not read), so
   * the status cannot queue behind it: gRPC cancels the stream with it. */
  c->finished = c->status_sent = 1;
  c->pending = 0;
  oee_free(c->ptext);
  c->ptext = NULL;
  grpc_call_cancel_with_status(c->gc, code, message ? message : "", NULL);
  return 0;
}

int oee_rpc_call_writable(const oee_rpc_call *c) {
  return !c->finished && !c->writing && c->srv->phase < PHASE_CQ_DOWN;
}

static int check_msg(const oee_rpc_call *c, const ProtobufCMessage *msg) {
  if (c == NULL || msg == NULL || c->reg == NULL) return OEE_RPC_EINVAL;
  if (msg->descriptor != c->reg->m.response) return OEE_RPC_EINVAL;
  if (c->finished) return OEE_RPC_ECLOSED;
  return c->writing ? OEE_RPC_EBUSY : 0;
}

int oee_rpc_call_reply(oee_rpc_call *c, const ProtobufCMessage *msg) {
  int rc = check_msg(c, msg);
  if (rc != 0) return rc;
  return send_status(c, oee__rpc_pack(msg), GRPC_STATUS_OK, NULL);
}

/* Starts a SEND_MESSAGE batch that owns bb. */
static int write_bb(oee_rpc_call *c, grpc_byte_buffer *bb) {
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_SEND_MESSAGE;
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
  int rc = check_msg(c, msg);
  if (rc != 0) return rc;
  return write_bb(c, oee__rpc_pack(msg));
}

int oee_rpc_call_write_slice(oee_rpc_call *c, grpc_slice packed) {
  if (c == NULL) return OEE_RPC_EINVAL;
  if (c->finished) return OEE_RPC_ECLOSED;
  if (c->writing) return OEE_RPC_EBUSY;
  return write_bb(c, grpc_raw_byte_buffer_create(&packed, 1)); /* refs the slice */
}

int oee_rpc_call_finish(oee_rpc_call *c, grpc_status_code code, const char *message) {
  if (c == NULL) return OEE_RPC_EINVAL;
  if (c->finished) return OEE_RPC_ECLOSED;
  if (!c->writing) return send_status(c, NULL, code, message);
  c->finished = c->pending = 1;
  c->pcode = code;
  c->ptext = message ? oee_strdup(message) : NULL;
  c->ptext_lost = message != NULL && c->ptext == NULL;
  return 0;
}

int oee_rpc_call_fail(oee_rpc_call *c, grpc_status_code code, const char *message) {
  return oee_rpc_call_finish(c, code, message);
}
