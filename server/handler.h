/*
 * handler.h - the shape every unary OrchestratorService handler has.
 *
 * A handler is one small function: it reads the decoded request, calls the
 * engine and either fills out->msg (built in out->arena) and returns
 * GRPC_STATUS_OK, or writes the reason with oee_reply_say() and returns the
 * code. oee_unary() (service.c) owns everything around it: the arena, the
 * reply or the error on the wire, and releasing what the reply borrowed.
 *
 * Messages BORROW strings from core snapshots (server/convert.h), so a
 * handler that keeps a snapshot alive for its reply hands it over with
 * oee_reply_release(): it runs after the reply was packed.
 *
 * Answering later (the submissions, acknowledged once stored): the handler
 * calls oee_reply_defer(out) BEFORE it starts the work whose callback will
 * answer (with the memory store that callback runs before the engine call
 * returns), and from then on exactly one oee_reply_send(out, code) must
 * follow, from the handler itself (a refusal) or from the callback on any
 * thread. What the handler returns is then ignored. The context, its arena
 * and a reference to the call stay alive until both the wrapper and the
 * answer are done with them (holds). Between defer and send, the handler
 * and the callback must not touch the context at the same time: the
 * handler stops touching it once the engine call that will answer is
 * started, or hands over through an atomic countdown (SubmitTasks).
 */
#ifndef OEE_SERVER_HANDLER_H
#define OEE_SERVER_HANDLER_H

#include <grpc/status.h>
#include <protobuf-c/protobuf-c.h>
#include <stdatomic.h>

#include "core/oee.h"
#include "rpc/arena.h"
#include "server/rt/rpc_server.h"

typedef struct oee_service oee_service;

/* Bytes of a status message; longer reasons are cut. */
#define OEE_REPLY_MESSAGE_BYTES 512

typedef struct reply_ctx {
  oee_arena arena;             /* owns the reply's message tree */
  const ProtobufCMessage *msg; /* the reply, when the handler says OK */
  grpc_slice bytes;            /* or the reply already packed (has_bytes) */
  int has_bytes;
  char err[OEE_REPLY_MESSAGE_BYTES]; /* the status message otherwise */
  void (*release)(void *arg);        /* run once the reply is packed, or NULL */
  void *release_arg;
  oee_rpc_call *call; /* the call answered; NULL when not made by oee_reply_new */
  int deferred;       /* oee_reply_defer() was called (by the handler, CQ thread) */
  atomic_int holds;   /* 1 for the wrapper, 1 for a deferred answer; freed at 0 */
} reply_ctx;

typedef grpc_status_code (*oee_unary_fn)(oee_service *s, const ProtobufCMessage *req,
                                         reply_ctx *out);

void oee_reply_init(reply_ctx *out);
/* Runs the release hook and frees the arena. */
void oee_reply_fini(reply_ctx *out);
/* A context on the heap for answering `call`, held once by the caller (the
 * unary wrapper), or NULL when out of memory. */
reply_ctx *oee_reply_new(oee_rpc_call *call);
/* Drops one hold; the last runs oee_reply_fini, drops the call reference
 * a deferral took and frees the context. Any thread. */
void oee_reply_drop(reply_ctx *out);
/* The handler will answer later: takes a hold and a call reference. CQ
 * thread, inside the handler, before the work that answers is started. */
void oee_reply_defer(reply_ctx *out);
/* Sends out->msg (code OK) or the status code with out->err, then drops
 * the deferred hold. Exactly once after oee_reply_defer(). Any thread. A
 * call the client gave up on meanwhile is not answered (nothing leaks). */
void oee_reply_send(reply_ctx *out, grpc_status_code code);
/* The wrapper's answer for a handler that did not defer: out->msg (code OK,
 * unless the reply ran out of memory) or the status code with out->err. */
void oee_reply_answer(reply_ctx *out, grpc_status_code code);
/* A reply written as bytes (server/wire.h) instead of a message: a buffer
 * of n bytes owned by out, to be filled whole; it is what the call is
 * answered with when the handler (or the deferred answer) says OK.
 * gRPC's allocator never fails (it aborts), as when a message is packed. */
uint8_t *oee_reply_bytes(reply_ctx *out, size_t n);
/* Sets the status message; returns 0 so a check can `return say(...)`. */
int oee_reply_say(reply_ctx *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands a resource the reply borrows from to the wrapper: fn(arg) runs after
 * the reply is packed. One per reply; a second call is a broken invariant. */
void oee_reply_release(reply_ctx *out, void (*fn)(void *), void *arg);
/* Out of memory: says so and returns GRPC_STATUS_RESOURCE_EXHAUSTED. A
 * handler that returns OK with an arena that failed (oee_arena_failed) is
 * answered the same by the wrapper: what it built has parts missing. */
grpc_status_code oee_reply_oom(reply_ctx *out);
/* A core refusal: its own reason (core names the field), mapped to a code. */
grpc_status_code oee_reply_refused(reply_ctx *out, const oee_error *err);
/* A lookup of task `id` that failed with core code rc: NOT_FOUND "task <id>
 * not found<what>" for OEE_ENOENT, otherwise rc's own code and reason
 * (e.g. RESOURCE_EXHAUSTED for OEE_ENOMEM: the task may well exist). */
grpc_status_code oee_reply_lookup_failed(reply_ctx *out, int rc, const char *id, const char *what);
/* 1 if id is a UUID; otherwise fills the message and returns 0. */
int oee_reply_check_id(reply_ctx *out, const char *field, const char *id);

#endif /* OEE_SERVER_HANDLER_H */
