/*
 * fake_rpc.h - a fuzz-only stand-in for the server call runtime
 * (server/rt/rpc_server.h), linked instead of the real one.
 *
 * DESIGN: there is no network and no completion queue. The fuzz harness is
 * the "CQ thread": it builds a call, decodes the request bytes exactly as the
 * runtime does (protobuf-c with the method's request descriptor; a body that
 * does not decode is answered INVALID_ARGUMENT without calling the handler),
 * runs the handler, then drives the call to its end: completes writes
 * (on_writable), delivers client messages (on_message), cancels it
 * (on_cancelled) and frees it (on_done). Requests are decoded into an arena
 * (rpc/arena.h) as the runtime does, so memory running out while decoding
 * is answered RESOURCE_EXHAUSTED OEE_RPC_DECODE_OOM, as it is there. Every reply and write is
 * packed and decoded again with the method's response descriptor, so a handler that builds a
 * message that does not encode fails at once.
 *
 * Everything a call did is counted in an oee_fake_outcome that the harness
 * checks against the invariants (one reply or one status per call, codes
 * from the method's allowed set, balanced references).
 *
 * Threads: as in the real runtime, oee_rpc_call_reply, _fail, _finish,
 * _abort, _ref, _unref and _cancelled may be called from any thread that
 * holds a reference, e.g. the engine's commit thread answering a deferred
 * unary call (server/handler.h). Everything else, the oee_fake_* controls
 * included, runs on the harness thread. A per-call mutex guards the state
 * those functions share (finished, cancelled, write_in_flight, refs and the
 * outcome); no callback ever runs with it held. oee_fake_wait() lets the
 * harness wait until another thread is done with a call. With the memory
 * store every answer comes on the harness thread, before the handler
 * returns, and the mutex is never contended.
 */
#ifndef OEE_FUZZ_FAKE_RPC_H
#define OEE_FUZZ_FAKE_RPC_H

#include <stddef.h>
#include <stdint.h>

#include "server/rt/rpc_server.h"

/* What one call did, filled as it happens. */
typedef struct oee_fake_outcome {
  int decoded;           /* 1: the request decoded and the handler ran */
  int replies;           /* oee_rpc_call_reply accepted */
  int statuses;          /* fail/finish accepted (the status sent) */
  int writes;            /* stream messages accepted */
  int refused;           /* calls the runtime refused (EBUSY, ECLOSED, EINVAL) */
  int bad_messages;      /* a message of the wrong type or that did not encode */
  grpc_status_code code; /* the status sent (OK for a reply) */
  char message[512];     /* its message */
  uint8_t *reply;        /* packed bytes of the last reply/write (malloc'd) */
  size_t reply_len;
} oee_fake_outcome;

/* The method registered under path and its ctx, or NULL. */
const oee_rpc_method *oee_fake_find(oee_rpc_server *srv, const char *path, void **ctx);

/* Starts a call of path with raw request bytes. For unary and
 * server-streaming methods the bytes are decoded first (not decoded: the
 * call is answered INVALID_ARGUMENT and NULL is returned, outcome filled).
 * `patch` (may be NULL) may edit the decoded request before the handler
 * runs. Returns the live call (end it with oee_fake_end) or NULL when the
 * call already ended. *out must stay valid until oee_fake_end(): another
 * thread answering the call writes it. */
oee_rpc_call *oee_fake_start(oee_rpc_server *srv, const char *path, const uint8_t *data,
                             size_t size, void (*patch)(ProtobufCMessage *req, void *ud), void *ud,
                             oee_fake_outcome *out);
/* 1 when the call was answered (status sent) or cancelled. */
int oee_fake_ended(const oee_rpc_call *call);
/* Waits at most timeout_ms until the call has ended (oee_fake_ended) and
 * every extra reference (oee_rpc_call_ref) was dropped, i.e. no other thread
 * may touch it any more: a deferred unary answer has been sent and let go.
 * Returns 1 then, 0 on timeout. The outcome may be read after a 1. */
int oee_fake_wait(oee_rpc_call *call, int timeout_ms);
/* Completes the write in flight, if any, and runs on_writable. Returns 1 if
 * a write was completed. */
int oee_fake_complete_write(oee_rpc_call *call);
/* Client/bidi streaming: delivers raw bytes as the next client message
 * (decoded with the request descriptor; bytes that do not decode cancel the
 * call, as the runtime does) or NULL for the client's half-close. */
void oee_fake_deliver(oee_rpc_call *call, const uint8_t *data, size_t size, int half_close);
/* Ends the call: a call not answered yet is cancelled by the "client"
 * (on_cancelled), pending writes complete, on_done runs, the call is freed.
 * Returns the number of references (oee_rpc_call_ref) left unbalanced. */
int oee_fake_end(oee_rpc_call *call);
/* Runs the tick hook once, as the CQ loop would. */
void oee_fake_tick(oee_rpc_server *srv);
/* Frees out->reply. */
void oee_fake_outcome_free(oee_fake_outcome *out);

#endif /* OEE_FUZZ_FAKE_RPC_H */
