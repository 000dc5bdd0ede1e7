/*
 * rpc_server.h - the C server call runtime: a grpc_server driven by one
 * completion queue, method tables from the generated stubs, and call
 * objects for unary, server-streaming and client/bidi-streaming methods.
 *
 * DESIGN
 *  - io_threads threads (1 unless the options ask for more, at most
 *    OEE_RPC_MAX_IO_THREADS), each draining a completion queue: the main
 *    queue by the thread that calls oee_rpc_server_run() (the "CQ thread"
 *    or main thread), the others by io threads the runtime starts in
 *    oee_rpc_server_start() and joins before run() returns, one queue each
 *    or, with io_shared_queue, one queue they all drain. Unary methods
 *    are requested on every queue, so their calls, handlers and callbacks
 *    run on any of the threads, concurrently: a unary handler must only
 *    touch state that is safe from several threads (atomics, locks, the
 *    thread-safe engine). Streaming methods (server, client or bidi) are
 *    requested on the main queue only: their handlers and callbacks, the
 *    tick and the unknown-method answers all run on the main thread, so
 *    state shared by streams and the tick needs no lock. The admission and
 *    observe hooks run on any of the threads. With one thread (the
 *    default) everything below that says "CQ thread" is the main thread.
 *  - Every handler and callback of a call runs on its queue's thread (on
 *    a shared queue: one of its threads, one at a time, as a unary call's
 *    on_cancelled can only come after its handler returned; on_done
 *    excepted, see below), and the oee_rpc_call_* functions
 *    are called on it, except these, which any thread may call on a call it
 *    holds a reference to: oee_rpc_call_reply, _fail, _finish, _ref, _unref
 *    and _cancelled. So a unary handler may take a reference
 *    (oee_rpc_call_ref), return, and answer later from another thread (an
 *    engine thread that finished the work), then drop the reference. gRPC
 *    core allows grpc_call_start_batch on any thread; the call's state is
 *    guarded by a per-call mutex and its reference count is atomic
 *    (rpc_call.c). A call the client cancelled meanwhile answers the late
 *    reply with OEE_RPC_ECLOSED. Other work reaches the main thread through
 *    the tick hook (a callback invoked on the main thread after each
 *    processed batch of its events and at least every tick_interval_ms),
 *    e.g. by filling a queue the tick drains.
 *  - The CQ wait is bounded (OEE_RPC_SERVER_POLL_MS) so a shutdown request,
 *    a plain atomic store that is safe from a signal handler, is noticed
 *    within that time.
 *  - For each registered method one grpc_server_request_registered_call is
 *    kept armed (re-armed as soon as a call arrives), and one generic
 *    grpc_server_request_call answers unknown methods with UNIMPLEMENTED.
 *  - On arrival a call sends its initial metadata and starts
 *    RECV_CLOSE_ON_SERVER at once, so a client that goes away is reported
 *    (on_cancelled) even while the server has nothing to send.
 *  - Unary and server-streaming requests are decoded before the handler runs;
 *    a body that does not decode is answered INVALID_ARGUMENT without calling
 *    the handler. A method whose handler is NULL answers UNIMPLEMENTED.
 *
 * Call lifetime and ownership
 *  - oee_rpc_call objects are owned by the runtime and reference counted:
 *    one reference per gRPC batch in flight, one while the handler runs, and
 *    one per oee_rpc_call_ref(). When the last one goes (the call has ended
 *    on the wire: finished or cancelled, and all its batches completed),
 *    on_done runs and the call is freed, on the thread that dropped it
 *    (the CQ thread unless another thread held the last reference). Every
 *    reference must be dropped before oee_rpc_server_destroy(). A handler
 *    that keeps a call pointer
 *    after returning must forget it in on_done (or in on_cancelled), or hold a
 *    reference; after on_done the pointer is invalid.
 *  - The request message is owned by the call and stays valid until on_done.
 *  - Messages passed to reply/write are borrowed: packed before the call
 *    returns. Strings passed in are copied.
 *
 * Shutdown: oee_rpc_server_shutdown() (any thread, or a signal handler) makes
 * run() call grpc_server_shutdown_and_notify: no new calls; open calls get
 * shutdown_grace_ms to end (the tick keeps running, so the application can
 * finish its streams, e.g. with UNAVAILABLE), then the remaining calls are
 * cancelled (on_cancelled, on_done), the queue is drained and run() returns.
 * oee_rpc_server_destroy() then frees everything.
 */
#ifndef OEE_SERVER_RT_RPC_SERVER_H
#define OEE_SERVER_RT_RPC_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include <grpc/grpc.h>
#include <grpc/slice.h>
#include <grpc/status.h>
#include <protobuf-c/protobuf-c.h>

#include "rpc/arena.h"
#include "rpc/error.h" /* the OEE_RPC_E* codes returned below */

#ifdef __cplusplus
extern "C" {
#endif

/* The status message of a request that could not be decoded for lack of
 * memory (answered RESOURCE_EXHAUSTED; a body that does not decode is
 * INVALID_ARGUMENT), and of a status message that could not be copied. */
#define OEE_RPC_DECODE_OOM "out of memory decoding the request"
#define OEE_RPC_OOM_STATUS "out of memory"

/* Maximum wait of one completion-queue poll, in milliseconds. */
#define OEE_RPC_SERVER_POLL_MS 50

typedef struct oee_rpc_server oee_rpc_server;
typedef struct oee_rpc_call oee_rpc_call;

/* Called on the call's CQ thread (the main thread for streaming methods,
 * any io thread for unary ones) when a call of the method arrives. req is the
 * decoded request (owned by the call, valid until on_done), or NULL for
 * client- and bidi-streaming methods, whose messages arrive through
 * on_message. ctx is the pointer given to oee_rpc_server_add_service(). A
 * unary handler must eventually reply or fail (now or later); a streaming
 * handler must eventually finish, unless the call is cancelled first. */
typedef void (*oee_rpc_handler)(oee_rpc_call *call, const ProtobufCMessage *req, void *ctx);

/* One method of a service; the generated <file>.grpc-server.c holds a
 * template table per service with handler NULL. */
/* A request reader of a method's own (e.g. server/wire_read.h): the
 * request message built in arena `a` from its bytes, or NULL to leave the
 * bytes to protobuf-c (which then decides, as without a reader), or NULL
 * with `a` failed when out of memory. It must build exactly what
 * protobuf_c_message_unpack() would for the bytes it takes. */
typedef ProtobufCMessage *(*oee_rpc_decode_fn)(const uint8_t *data, size_t len, oee_arena *a);

typedef struct oee_rpc_method {
  const char *path; /* "/pkg.Service/Method"; copied on registration */
  int client_streaming;
  int server_streaming;
  const ProtobufCMessageDescriptor *request;
  const ProtobufCMessageDescriptor *response;
  oee_rpc_handler handler;  /* NULL: answered UNIMPLEMENTED */
  oee_rpc_decode_fn decode; /* unary only; NULL: protobuf-c reads every request */
} oee_rpc_method;

typedef struct oee_rpc_server_options {
  int max_receive_message_bytes; /* 0: gRPC default (4 MiB); -1: unlimited */
  int max_send_message_bytes;    /* 0: gRPC default; -1: unlimited */
  int shutdown_grace_ms;         /* 0: 1000 ms; < 0: cancel calls at once */
  /* TLS: the server's certificate chain and private key in PEM (both or
   * neither; NULL: plaintext). With a client CA too, every client must
   * present a certificate that CA signed (mTLS); the handshake refuses the
   * others. Read during oee_rpc_server_open() only. */
  const char *tls_cert_pem, *tls_key_pem, *tls_client_ca_pem;
  /* Threads serving calls, each with its own completion queue: 0 or 1 for
   * the thread in run() alone, up to OEE_RPC_MAX_IO_THREADS (16). */
  int io_threads;
  /* With io_threads >= 3: the io threads all drain ONE queue for the unary
   * calls (gRPC hands each completion to whichever of them waits) instead
   * of one queue each. The main queue stays apart either way. A unary
   * call's completions may then run on two threads at once; the runtime
   * locks for that (rpc_call.c). */
  int io_shared_queue;
} oee_rpc_server_options;

/* The most threads (completion queues) one server serves on. */
#define OEE_RPC_MAX_IO_THREADS 16

/* Creates a server listening (plaintext, or TLS when opts say so) on listen_addr, e.g.
 * "127.0.0.1:0" for a free port. opts may be NULL (defaults). On success
 * returns 0, *out receives the server (the caller owns it) and *port (may
 * be NULL) the bound port. Otherwise *out is NULL and the result is
 * OEE_RPC_EINVAL for io_threads outside 0..16, OEE_RPC_EADDRINUSE (another socket listens on the
 * address: SO_REUSEPORT is off, so two servers never share one), OEE_RPC_EADDRNOTAVAIL (the address
 * cannot be bound for another reason), OEE_RPC_EINVAL (NULL listen_addr or out) or OEE_RPC_ENOMEM.
 */
int oee_rpc_server_open(const char *listen_addr, const oee_rpc_server_options *opts, int *port,
                        oee_rpc_server **out);
/* The same without the reason: the server, or NULL on any failure. */
oee_rpc_server *oee_rpc_server_create(const char *listen_addr, const oee_rpc_server_options *opts,
                                      int *port);
/* Registers n methods, all called with ctx (borrowed; must outlive the
 * server). The table is copied, so it may live on the stack. Only before
 * oee_rpc_server_start(). Returns 0, OEE_RPC_ESTATE, OEE_RPC_EINVAL (NULL,
 * or a path already registered), OEE_RPC_ENOMEM. */
int oee_rpc_server_add_service(oee_rpc_server *srv, const oee_rpc_method *methods, size_t n,
                               void *ctx);
/* Installs the tick hook: tick(ud) runs on the CQ thread after every
 * processed batch of events and at least every interval_ms (-1: only after
 * events). Call before run() or from the CQ thread. tick may be NULL. */
void oee_rpc_server_set_tick(oee_rpc_server *srv, void (*tick)(void *ud), void *ud,
                             int interval_ms);
/* Changes the tick interval (before run() or on the CQ thread). */
void oee_rpc_server_set_tick_interval(oee_rpc_server *srv, int interval_ms);
/* Admission: asked on the thread of the call's queue (any io thread), before a registered method's
 * handler runs, with the call's path and request metadata (borrowed for the call). GRPC_STATUS_OK
 * lets the call through; any other code ends it with that status and msg, and the handler never
 * sees it. Set before start. */
typedef grpc_status_code (*oee_rpc_admit_fn)(void *ud, const char *path,
                                             const grpc_metadata_array *md, char *msg, size_t len);
void oee_rpc_server_set_admit(oee_rpc_server *srv, oee_rpc_admit_fn fn, void *ud);
/* Observation: told once per call of a registered method when its status
 * is decided: `method` is the method's index in registration order (see
 * oee_rpc_server_method_path()), `code` the status sent (a refusal of the
 * admission hook, a request that does not decode and UNIMPLEMENTED
 * included; CANCELLED for a call that ended without one: the client went
 * away or the server cancelled it), `duration_ns` the time from the call's
 * arrival (monotonic). Calls of unknown methods are not told. It runs on
 * the thread that ended the call, sometimes with the call's own lock held:
 * it must only count (atomics), never call into the runtime or block. Set
 * before start. */
typedef void (*oee_rpc_observe_fn)(void *ud, size_t method, grpc_status_code code,
                                   int64_t duration_ns);
void oee_rpc_server_set_observe(oee_rpc_server *srv, oee_rpc_observe_fn fn, void *ud);
/* The registered methods: how many, and the path of the one at `index`
 * (the server's copy, valid until destroy; NULL past the end). */
size_t oee_rpc_server_method_count(const oee_rpc_server *srv);
const char *oee_rpc_server_method_path(const oee_rpc_server *srv, size_t index);
/* Starts serving: starts the io threads (io_threads - 1; one that cannot
 * be created leaves the server on fewer threads, see
 * oee_rpc_server_io_threads()) and arms the call requests; unary calls may
 * be served on the io threads from now on, before run(). Returns 0,
 * OEE_RPC_ESTATE or OEE_RPC_ENOMEM. */
int oee_rpc_server_start(oee_rpc_server *srv);
/* The threads serving calls (1 + the io threads running). */
size_t oee_rpc_server_io_threads(const oee_rpc_server *srv);
/* The completion queues it serves on: io_threads, or 2 (the main queue and
 * the one the io threads share) with io_shared_queue. */
size_t oee_rpc_server_io_queues(const oee_rpc_server *srv);
/* Runs the main completion queue on the calling thread until a shutdown
 * has completed and the io threads are joined. Returns 0, or OEE_RPC_ESTATE if not started or run
 * before. */
int oee_rpc_server_run(oee_rpc_server *srv);
/* Requests shutdown. Any thread; async-signal-safe (one atomic store). */
void oee_rpc_server_shutdown(oee_rpc_server *srv);
/* 1 once a shutdown was requested (any thread). A tick that sees it may end
 * its open streams, e.g. with GRPC_STATUS_UNAVAILABLE, within the grace. */
int oee_rpc_server_stopping(const oee_rpc_server *srv);
/* Frees the server. If run() has not completed a shutdown, performs one on
 * the calling thread first (no thread may be in run() then). srv may be NULL. */
void oee_rpc_server_destroy(oee_rpc_server *srv);
/* Number of call objects alive (for tests and metrics). CQ thread. */
size_t oee_rpc_server_live_calls(const oee_rpc_server *srv);

/* ----------------------------------------------------------------- calls
 * Everything below runs on the call's CQ thread (the thread of the queue it
 * arrived on) only, except the functions marked "Any thread", which another thread may call while
 * it holds a reference. */

/* Per-call callbacks; user is the pointer given with them. */
typedef struct oee_rpc_call_callbacks {
  /* A write completed and another may start. */
  void (*on_writable)(oee_rpc_call *call, void *user);
  /* The client went away (cancel, deadline, server shutdown) before the
   * call was finished; writes now fail with OEE_RPC_ECLOSED. */
  void (*on_cancelled)(oee_rpc_call *call, void *user);
  /* Client/bidi streaming: the next request message (borrowed for the
   * callback), or NULL once the client has half-closed. */
  void (*on_message)(oee_rpc_call *call, const ProtobufCMessage *msg, void *user);
  /* Last callback: the call is about to be freed; release user here. */
  void (*on_done)(oee_rpc_call *call, void *user);
} oee_rpc_call_callbacks;

/* Installs callbacks (copied; cbs may be NULL to clear) and user pointer. */
void oee_rpc_call_set_callbacks(oee_rpc_call *call, const oee_rpc_call_callbacks *cbs, void *user);
void *oee_rpc_call_user(const oee_rpc_call *call);
/* The method (the server's copy) and the decoded request (or NULL). */
const oee_rpc_method *oee_rpc_call_method(const oee_rpc_call *call);
const ProtobufCMessage *oee_rpc_call_request(const oee_rpc_call *call);
/* Extra references keep the call (not the RPC) alive until unref. Any
 * thread that already holds a reference (a handler holds one while it
 * runs); the last unref frees the call and runs on_done on its thread. */
void oee_rpc_call_ref(oee_rpc_call *call);
void oee_rpc_call_unref(oee_rpc_call *call);

/* Unary: sends msg (of the method's response type) and status OK.
 * Returns 0, OEE_RPC_EINVAL, OEE_RPC_EBUSY, OEE_RPC_ECLOSED (already
 * answered, or the client went away or the server stopped first). Any
 * thread. */
int oee_rpc_call_reply(oee_rpc_call *call, const ProtobufCMessage *msg);
/* Unary: the same with bytes that are already a packed response message
 * (a new reference is taken): a reply written without protobuf-c
 * (server/wire.h). The caller vouches for the type. Any thread. */
int oee_rpc_call_reply_slice(oee_rpc_call *call, grpc_slice packed);
/* Ends the call with code and message (may be NULL); same as finish. Any
 * thread. */
int oee_rpc_call_fail(oee_rpc_call *call, grpc_status_code code, const char *message);
/* Streaming: starts sending msg. At most one write in flight: returns
 * OEE_RPC_EBUSY while one is; on_writable tells when it completed. Also
 * OEE_RPC_EINVAL, OEE_RPC_ECLOSED. */
int oee_rpc_call_write(oee_rpc_call *call, const ProtobufCMessage *msg);
/* Streaming: writes bytes that are already a packed response message (a
 * new reference is taken), so one message sent to many calls is packed
 * once. Same rules and returns as oee_rpc_call_write(). */
int oee_rpc_call_write_slice(oee_rpc_call *call, grpc_slice packed);
/* The same, saying whether the caller will write again as soon as this
 * write completes (more != 0: the next message is already waiting). gRPC
 * then holds the bytes to send them with the next message in one transport
 * write, and completes this write at once. The last write of a run must
 * pass more = 0 (or the call must finish), or its bytes wait in the
 * transport. */
int oee_rpc_call_write_slice_more(oee_rpc_call *call, grpc_slice packed, int more);
/* 1 if a write may start now (open call, no write in flight). */
int oee_rpc_call_writable(const oee_rpc_call *call);
/* Ends the call with a status; sent after a write still in flight. Returns
 * 0 or OEE_RPC_ECLOSED (already finished or cancelled). Any thread. */
int oee_rpc_call_finish(oee_rpc_call *call, grpc_status_code code, const char *message);
/* Ends the call now with code and message, even while a write is stuck
 * behind flow control (a client that does not read): the stream is
 * cancelled with that status instead of waiting to send it in order.
 * Returns 0 or OEE_RPC_ECLOSED. on_done still follows. */
int oee_rpc_call_abort(oee_rpc_call *call, grpc_status_code code, const char *message);
/* 1 once the client went away before the call was finished. Any thread. */
int oee_rpc_call_cancelled(const oee_rpc_call *call);
/* The client's address as gRPC names it ("ipv4:127.0.0.1:5000"), copied
 * into buf (cut to len - 1 bytes; "" when unknown). Any thread. */
void oee_rpc_call_peer(const oee_rpc_call *call, char *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* OEE_SERVER_RT_RPC_SERVER_H */
