/*
 * rpc_client.h - the blocking C call runtime under the generated client stubs.
 *
 * DESIGN
 *  - A channel wraps one grpc_channel, plaintext or TLS (options), and the
 *    bearer token it sends with every call. It is immutable after
 *    creation, so any number of threads may make calls on it at once.
 *  - Every call owns a private completion queue, created and destroyed by the
 *    call; nothing is shared between calls but the channel.
 *  - Messages are protobuf-c messages: requests are packed into a byte buffer,
 *    responses unpacked with the descriptor the stub passes. A response that
 *    does not decode ends the call with GRPC_STATUS_INTERNAL.
 *  - Deadlines are milliseconds from now; a value <= 0 means no deadline.
 *
 * Ownership
 *  - Callers own the channel (oee_rpc_channel_destroy) and every reader
 *    (oee_rpc_reader_close). Requests are borrowed for the duration of the
 *    call only. Returned messages belong to the caller
 *    (protobuf_c_message_free_unpacked(msg, NULL) or the typed *_free_unpacked).
 *  - oee_rpc_status.message is malloc'd (or NULL); release it with
 *    oee_rpc_status_free(), which does not free the struct itself.
 *  - Destroy a channel only after every call and reader on it has ended.
 */
#ifndef OEE_CLIENT_RT_RPC_CLIENT_H
#define OEE_CLIENT_RT_RPC_CLIENT_H

#include <stdint.h>

#include <grpc/status.h>
#include <protobuf-c/protobuf-c.h>

#include "rpc/error.h" /* the OEE_RPC_E* codes of the reader functions */

#ifdef __cplusplus
extern "C" {
#endif

/* Final status of a call. */
typedef struct oee_rpc_status {
  grpc_status_code code; /* GRPC_STATUS_OK on success */
  char *message;         /* malloc'd status message, or NULL */
} oee_rpc_status;

/* Frees st->message and sets it to NULL; st may be NULL. */
void oee_rpc_status_free(oee_rpc_status *st);

typedef struct oee_rpc_channel oee_rpc_channel;

/* Channel settings; zero-initialise and set what you need. */
typedef struct oee_rpc_channel_options {
  int max_receive_message_bytes; /* 0: gRPC default (4 MiB); -1: unlimited */
  int max_send_message_bytes;    /* 0: gRPC default (unlimited); -1: unlimited */
  /* Longest pause between attempts to reconnect to a server that went away,
   * in ms (0: gRPC's default, 120 s). Calls made meanwhile fail UNAVAILABLE
   * at once, so a client that must notice a restarted server soon (a remote
   * worker) sets a few seconds. */
  int max_reconnect_backoff_ms;
  /* TLS: on when a CA file or a client certificate is named. tls_ca_file
   * holds the PEM roots that must have signed the server's certificate
   * (NULL: gRPC's default roots); tls_cert_file and tls_key_file, both or
   * neither, the client's own certificate for servers that ask for one
   * (mTLS); tls_server_name the name to expect in the server's certificate
   * when it differs from the target's host. Files are read at creation. */
  const char *tls_ca_file, *tls_cert_file, *tls_key_file, *tls_server_name;
  /* Sent as "authorization: Bearer <token>" with every call; NULL: none.
   * Copied at creation; never logged. */
  const char *token;
} oee_rpc_channel_options;

/* The same as oee_rpc_channel_create_with_options, telling why it failed:
 * NULL with a one-line reason in err (may be NULL) naming the file or
 * setting at fault. */
oee_rpc_channel *oee_rpc_channel_open(const char *target, const oee_rpc_channel_options *opts,
                                      char *err, size_t errlen);

/* Opens a plaintext channel to target ("host:port", "unix:/path", ...) with
 * gRPC's default settings. target is copied. Returns NULL on failure. The
 * channel connects lazily, on the first call. */
oee_rpc_channel *oee_rpc_channel_create(const char *target);
/* The same with settings; opts is read during the call only (NULL: defaults). */
oee_rpc_channel *oee_rpc_channel_create_with_options(const char *target,
                                                     const oee_rpc_channel_options *opts);
/* Closes the channel; ch may be NULL. */
void oee_rpc_channel_destroy(oee_rpc_channel *ch);

/* Blocking unary call of method ("/pkg.Service/Method"). Returns the status
 * code. On GRPC_STATUS_OK *resp receives a new message of resp_desc that the
 * caller owns; otherwise *resp is NULL. st may be NULL. */
int oee_rpc_unary(oee_rpc_channel *ch, const char *method, const ProtobufCMessage *req,
                  const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
                  int64_t deadline_ms, oee_rpc_status *st);

/* A cancel handle for blocking unary calls: any thread may end the calls
 * made with it at once (status CANCELLED), e.g. to stop a long poll. It
 * holds no reference to a channel. Any number of calls on any channels may
 * use one handle at the same time; its functions are thread safe. */
typedef struct oee_rpc_canceller oee_rpc_canceller;

/* A new handle (the caller owns it), or NULL when out of memory. */
oee_rpc_canceller *oee_rpc_canceller_create(void);
/* Cancels the calls in progress with c and every later one (they end
 * CANCELLED at once, nothing is sent). Any thread; not async-signal-safe. */
void oee_rpc_canceller_cancel(oee_rpc_canceller *c);
/* 1 once oee_rpc_canceller_cancel() was called. Any thread. */
int oee_rpc_canceller_cancelled(oee_rpc_canceller *c);
/* Frees c; no call may be using it. c may be NULL. */
void oee_rpc_canceller_destroy(oee_rpc_canceller *c);

/* oee_rpc_unary() that c (may be NULL: then the same as oee_rpc_unary)
 * can cancel from another thread; returns GRPC_STATUS_CANCELLED then. */
int oee_rpc_unary_cancellable(oee_rpc_channel *ch, const char *method, const ProtobufCMessage *req,
                              const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
                              int64_t deadline_ms, oee_rpc_canceller *c, oee_rpc_status *st);

/* A server-streaming call in progress; used by one thread at a time, except
 * oee_rpc_reader_cancel(), which any thread may call while the reader lives. */
typedef struct oee_rpc_reader oee_rpc_reader;

/* Sends req on a new server-streaming call. Returns 0 and *out (owned by the
 * caller until oee_rpc_reader_close), or a negative OEE_RPC_E* code.
 * method is copied. A failure to connect shows later as the final status. */
int oee_rpc_reader_start(oee_rpc_channel *ch, const char *method, const ProtobufCMessage *req,
                         const ProtobufCMessageDescriptor *resp_desc, int64_t deadline_ms,
                         oee_rpc_reader **out);
/* Blocks for the next message. Returns 1 with *msg (caller owns), 0 at the
 * end of the stream with the final status in *st (st may be NULL; OK for a
 * clean end; repeated calls return 0 and the same status), or a negative
 * OEE_RPC_E* code. A message that does not decode cancels the call
 * and ends it with GRPC_STATUS_INTERNAL. */
int oee_rpc_reader_next(oee_rpc_reader *r, ProtobufCMessage **msg, oee_rpc_status *st);
/* Cancels the call (final status CANCELLED unless it already ended). Thread
 * safe; a blocked oee_rpc_reader_next() returns promptly. */
void oee_rpc_reader_cancel(oee_rpc_reader *r);
/* Cancels the call if it is still open and frees everything; r may be NULL. */
void oee_rpc_reader_close(oee_rpc_reader *r);

#ifdef __cplusplus
}
#endif

#endif /* OEE_CLIENT_RT_RPC_CLIENT_H */
