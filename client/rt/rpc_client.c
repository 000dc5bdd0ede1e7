/*
 * rpc_client.c - blocking unary calls and server-streaming readers.
 *
 * DESIGN: every call creates its own completion queue and waits on it with
 * grpc_completion_queue_next() from the calling thread; the grpc_channel is
 * the only shared object and gRPC makes it thread safe. A unary call is one
 * batch of all six client ops. A reader starts two batches at once (send the
 * request + receive initial metadata; receive the status) and one
 * RECV_MESSAGE batch per oee_rpc_reader_next(); completions are recorded by
 * tag, so they may arrive in any order. A canceller links the unary calls
 * made with it while they run (under its mutex), so cancel() can reach each
 * one with grpc_call_cancel(), which is thread safe.
 */
#include "client/rt/rpc_client.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include "rpc/codec.h"
#include "rpc/pem.h"

struct oee_rpc_channel {
  grpc_channel *ch;
  /* "authorization: Bearer <token>" sent with every call (n_md 0: none). */
  grpc_metadata md;
  size_t n_md;
};

/* Receive side of one call: everything gRPC writes into. */
typedef struct recv_io {
  grpc_metadata_array initial_md;
  grpc_metadata_array trailing_md;
  grpc_byte_buffer *msg; /* last received message or NULL */
  grpc_status_code code;
  grpc_slice details;
} recv_io;

/* Reader batches, used as completion-queue tags. */
enum { TAG_START = 1, TAG_MSG = 2, TAG_STATUS = 3, N_TAGS = 4 };

struct oee_rpc_reader {
  grpc_completion_queue *cq;
  grpc_call *call;
  const ProtobufCMessageDescriptor *desc;
  recv_io io;
  grpc_byte_buffer *req; /* the request, kept until its batch is done */
  int pending[N_TAGS];   /* 1 while the batch of that tag is outstanding */
  int ended;             /* final status received and copied to `final` */
  oee_rpc_status final;
};

void oee_rpc_status_free(oee_rpc_status *st) {
  if (st == NULL) return;
  free(st->message);
  st->message = NULL;
}

static int set_status(oee_rpc_status *st, grpc_status_code code, const char *msg) {
  if (st != NULL) {
    st->code = code;
    st->message = msg ? strdup(msg) : NULL;
  }
  return (int)code;
}

oee_rpc_channel *oee_rpc_channel_create(const char *target) {
  return oee_rpc_channel_create_with_options(target, NULL);
}

__attribute__((format(printf, 3, 4))) static void say(char *err, size_t len, const char *fmt, ...) {
  if (err == NULL || len == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, len, fmt, ap);
  va_end(ap);
}

/* Plaintext, or TLS when opts name a CA or a client certificate. */
static grpc_channel_credentials *channel_creds(const oee_rpc_channel_options *o, char *err,
                                               size_t len) {
  if (o == NULL || (o->tls_ca_file == NULL && o->tls_cert_file == NULL))
    return grpc_insecure_credentials_create();
  if ((o->tls_cert_file == NULL) != (o->tls_key_file == NULL)) {
    say(err, len, "a client certificate needs its key: give both or neither");
    return NULL;
  }
  char *ca = NULL, *cert = NULL, *key = NULL;
  grpc_channel_credentials *creds = NULL;
  if ((o->tls_ca_file && (ca = oee_rpc_pem_read("CA file", o->tls_ca_file, err, len)) == NULL) ||
      (o->tls_cert_file &&
       (cert = oee_rpc_pem_read("certificate", o->tls_cert_file, err, len)) == NULL) ||
      (o->tls_key_file && (key = oee_rpc_pem_read("key", o->tls_key_file, err, len)) == NULL)) {
    goto out;
  }
  grpc_ssl_pem_key_cert_pair pair = {.private_key = key, .cert_chain = cert};
  /* ca NULL: gRPC's default roots (GRPC_DEFAULT_SSL_ROOTS_FILE_PATH). */
  creds = grpc_ssl_credentials_create(ca, cert ? &pair : NULL, NULL, NULL);
  if (creds == NULL) say(err, len, "cannot set up TLS with these files");
out:
  oee_rpc_pem_free(ca);
  oee_rpc_pem_free(cert);
  oee_rpc_pem_free(key);
  return creds;
}

/* Keeps "Bearer <token>" for every call; 0, or -1 with err. */
static int set_token(oee_rpc_channel *c, const oee_rpc_channel_options *o, char *err, size_t len) {
  if (o == NULL || o->token == NULL) return 0;
  size_t n = strlen(o->token);
  if (n == 0 || strcspn(o->token, "\r\n") != n) {
    say(err, len, "the token must be one non-empty line");
    return -1;
  }
  char *v = malloc(n + sizeof("Bearer "));
  if (v == NULL) {
    say(err, len, "out of memory");
    return -1;
  }
  memcpy(v, "Bearer ", 7);
  memcpy(v + 7, o->token, n + 1);
  c->md.key = grpc_slice_from_static_string("authorization");
  c->md.value = grpc_slice_from_copied_string(v);
  c->n_md = 1;
  oee_rpc_pem_free(v);
  return 0;
}

oee_rpc_channel *oee_rpc_channel_open(const char *target, const oee_rpc_channel_options *opts,
                                      char *err, size_t errlen) {
  if (target == NULL) {
    say(err, errlen, "no target");
    return NULL;
  }
  oee_rpc_channel *c = calloc(1, sizeof *c);
  if (c == NULL) {
    say(err, errlen, "out of memory");
    return NULL;
  }
  grpc_arg args[5];
  size_t n = 0;
  if (opts)
    oee__rpc_size_args(opts->max_receive_message_bytes, opts->max_send_message_bytes, args, &n);
  if (opts && opts->max_reconnect_backoff_ms > 0) {
    /* The first pause must not exceed the longest (gRPC's first is 1 s). */
    int first = opts->max_reconnect_backoff_ms < 1000 ? opts->max_reconnect_backoff_ms : 1000;
    args[n++] = (grpc_arg){.type = GRPC_ARG_INTEGER,
                           .key = GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
                           .value.integer = opts->max_reconnect_backoff_ms};
    args[n++] = (grpc_arg){.type = GRPC_ARG_INTEGER,
                           .key = GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
                           .value.integer = first};
  }
  if (opts && opts->tls_server_name) {
    args[n++] = (grpc_arg){.type = GRPC_ARG_STRING,
                           .key = GRPC_SSL_TARGET_NAME_OVERRIDE_ARG,
                           .value.string = (char *)opts->tls_server_name};
  }
  grpc_channel_args ca = {.num_args = n, .args = args};
  grpc_init();
  grpc_channel_credentials *creds = channel_creds(opts, err, errlen);
  if (creds == NULL || set_token(c, opts, err, errlen) != 0) {
    if (creds) grpc_channel_credentials_release(creds);
    free(c);
    grpc_shutdown();
    return NULL;
  }
  c->ch = grpc_channel_create(target, creds, &ca);
  grpc_channel_credentials_release(creds);
  return c;
}

oee_rpc_channel *oee_rpc_channel_create_with_options(const char *target,
                                                     const oee_rpc_channel_options *opts) {
  return oee_rpc_channel_open(target, opts, NULL, 0);
}

void oee_rpc_channel_destroy(oee_rpc_channel *ch) {
  if (ch == NULL) return;
  grpc_channel_destroy(ch->ch);
  if (ch->n_md) {
    grpc_slice_unref(ch->md.key);
    grpc_slice_unref(ch->md.value);
  }
  free(ch);
  grpc_shutdown();
}

static gpr_timespec deadline_of(int64_t ms) {
  if (ms <= 0) return gpr_inf_future(GPR_CLOCK_MONOTONIC);
  return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(ms, GPR_TIMESPAN));
}

static grpc_call *call_create(oee_rpc_channel *ch, const char *method, grpc_completion_queue *cq,
                              int64_t ms) {
  grpc_slice m = grpc_slice_from_copied_string(method);
  grpc_call *c = grpc_channel_create_call(ch->ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, m, NULL,
                                          deadline_of(ms), NULL);
  grpc_slice_unref(m);
  return c;
}

static void cq_destroy(grpc_completion_queue *cq) {
  grpc_completion_queue_shutdown(cq);
  while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
         GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(cq);
}

static void io_init(recv_io *io) {
  memset(io, 0, sizeof *io);
  grpc_metadata_array_init(&io->initial_md);
  grpc_metadata_array_init(&io->trailing_md);
  io->details = grpc_empty_slice();
}

static void io_destroy(recv_io *io) {
  grpc_metadata_array_destroy(&io->initial_md);
  grpc_metadata_array_destroy(&io->trailing_md);
  if (io->msg) grpc_byte_buffer_destroy(io->msg);
  grpc_slice_unref(io->details);
}

/* Copies the received status into st (may be NULL); returns the code. */
static int take_status(const recv_io *io, oee_rpc_status *st) {
  if (st != NULL) {
    st->code = io->code;
    st->message = GRPC_SLICE_LENGTH(io->details) ? oee__rpc_slice_strdup(io->details) : NULL;
  }
  return (int)io->code;
}

/* Fills ops[0..3): send metadata (the channel's token, if any), the request
 * and the half-close. */
static size_t send_ops(grpc_op *ops, const oee_rpc_channel *ch, grpc_byte_buffer *req) {
  memset(ops, 0, 3 * sizeof *ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[0].data.send_initial_metadata.count = ch->n_md;
  ops[0].data.send_initial_metadata.metadata = ch->n_md ? (grpc_metadata *)&ch->md : NULL;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = req;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  return 3;
}

static void recv_ops(grpc_op *ops, recv_io *io) {
  memset(ops, 0, 3 * sizeof *ops);
  ops[0].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[0].data.recv_initial_metadata.recv_initial_metadata = &io->initial_md;
  ops[1].op = GRPC_OP_RECV_MESSAGE;
  ops[1].data.recv_message.recv_message = &io->msg;
  ops[2].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[2].data.recv_status_on_client.trailing_metadata = &io->trailing_md;
  ops[2].data.recv_status_on_client.status = &io->code;
  ops[2].data.recv_status_on_client.status_details = &io->details;
}

/* Runs the single batch of a unary call and waits for it. */
static int unary_batch(const oee_rpc_channel *ch, grpc_call *call, grpc_completion_queue *cq,
                       grpc_byte_buffer *req, recv_io *io) {
  grpc_op ops[6];
  size_t n = send_ops(ops, ch, req);
  recv_ops(ops + n, io);
  if (grpc_call_start_batch(call, ops, 6, call, NULL) != GRPC_CALL_OK) return -1;
  grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  return ev.type == GRPC_OP_COMPLETE && ev.tag == call ? 0 : -1;
}

static int unary_result(recv_io *io, const ProtobufCMessageDescriptor *desc,
                        ProtobufCMessage **resp, oee_rpc_status *st) {
  if (io->code != GRPC_STATUS_OK) return take_status(io, st);
  if (io->msg == NULL) return set_status(st, GRPC_STATUS_INTERNAL, "no response message");
  *resp = oee__rpc_unpack(desc, io->msg);
  if (*resp == NULL) return set_status(st, GRPC_STATUS_INTERNAL, "response does not decode");
  return take_status(io, st);
}

/* ------------------------------------------------------------ canceller */

/* One call in progress with a canceller, linked while it runs. */
typedef struct cancel_node {
  grpc_call *call;
  struct cancel_node *next;
} cancel_node;

struct oee_rpc_canceller {
  pthread_mutex_t mu; /* guards everything below */
  int cancelled;      /* 1 once cancel() was called */
  cancel_node *calls; /* the calls in progress; each is alive while linked */
};

oee_rpc_canceller *oee_rpc_canceller_create(void) {
  oee_rpc_canceller *c = calloc(1, sizeof *c);
  if (c != NULL && pthread_mutex_init(&c->mu, NULL) != 0) abort();
  return c;
}

void oee_rpc_canceller_cancel(oee_rpc_canceller *c) {
  if (c == NULL) return;
  pthread_mutex_lock(&c->mu);
  c->cancelled = 1;
  for (cancel_node *n = c->calls; n != NULL; n = n->next) grpc_call_cancel(n->call, NULL);
  pthread_mutex_unlock(&c->mu);
}

int oee_rpc_canceller_cancelled(oee_rpc_canceller *c) {
  if (c == NULL) return 0;
  pthread_mutex_lock(&c->mu);
  int v = c->cancelled;
  pthread_mutex_unlock(&c->mu);
  return v;
}

void oee_rpc_canceller_destroy(oee_rpc_canceller *c) {
  if (c == NULL) return;
  pthread_mutex_destroy(&c->mu);
  free(c);
}

/* Links n (call set) into c; 0, or -1 when c was cancelled already. */
static int canceller_link(oee_rpc_canceller *c, cancel_node *n) {
  if (c == NULL) return 0;
  pthread_mutex_lock(&c->mu);
  int ok = !c->cancelled;
  if (ok) {
    n->next = c->calls;
    c->calls = n;
  }
  pthread_mutex_unlock(&c->mu);
  return ok ? 0 : -1;
}

static void canceller_unlink(oee_rpc_canceller *c, cancel_node *n) {
  if (c == NULL) return;
  pthread_mutex_lock(&c->mu);
  for (cancel_node **p = &c->calls; *p != NULL; p = &(*p)->next)
    if (*p == n) {
      *p = n->next;
      break;
    }
  pthread_mutex_unlock(&c->mu);
}

/* ------------------------------------------------------------ unary */

int oee_rpc_unary(oee_rpc_channel *ch, const char *method, const ProtobufCMessage *req,
                  const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
                  int64_t deadline_ms, oee_rpc_status *st) {
  return oee_rpc_unary_cancellable(ch, method, req, resp_desc, resp, deadline_ms, NULL, st);
}

/* Runs the call's batch unless c was cancelled first; returns the code. */
static int unary_run(const oee_rpc_channel *ch, grpc_call *call, grpc_completion_queue *cq,
                     const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
                     ProtobufCMessage **resp, oee_rpc_canceller *c, oee_rpc_status *st) {
  cancel_node node = {.call = call};
  if (canceller_link(c, &node) != 0) return set_status(st, GRPC_STATUS_CANCELLED, "cancelled");
  grpc_byte_buffer *bb = oee__rpc_pack(req);
  recv_io io;
  io_init(&io);
  int rc;
  if (unary_batch(ch, call, cq, bb, &io) != 0)
    rc = set_status(st, GRPC_STATUS_INTERNAL, "cannot start the call");
  else
    rc = unary_result(&io, resp_desc, resp, st);
  canceller_unlink(c, &node);
  io_destroy(&io);
  grpc_byte_buffer_destroy(bb);
  return rc;
}

int oee_rpc_unary_cancellable(oee_rpc_channel *ch, const char *method, const ProtobufCMessage *req,
                              const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
                              int64_t deadline_ms, oee_rpc_canceller *c, oee_rpc_status *st) {
  if (resp != NULL) *resp = NULL;
  if (!ch || !method || !req || !resp_desc || !resp)
    return set_status(st, GRPC_STATUS_INVALID_ARGUMENT, "NULL argument");
  grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
  grpc_call *call = call_create(ch, method, cq, deadline_ms);
  int rc = unary_run(ch, call, cq, req, resp_desc, resp, c, st);
  grpc_call_unref(call);
  cq_destroy(cq);
  return rc;
}

/* ------------------------------------------------------------ reader */

/* Waits until the batch `tag` has completed, recording any other. */
static void wait_for(oee_rpc_reader *r, intptr_t tag) {
  while (r->pending[tag]) {
    grpc_event ev = grpc_completion_queue_next(r->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type != GRPC_OP_COMPLETE) abort(); /* cq shut down under us */
    r->pending[(intptr_t)ev.tag] = 0;
  }
}

static grpc_call_error start_ops(oee_rpc_reader *r, grpc_op *ops, size_t n, intptr_t tag) {
  grpc_call_error e = grpc_call_start_batch(r->call, ops, n, (void *)tag, NULL);
  if (e == GRPC_CALL_OK) r->pending[tag] = 1;
  return e;
}

static int reader_begin(const oee_rpc_channel *ch, oee_rpc_reader *r, grpc_byte_buffer *bb) {
  grpc_op ops[4], st[3];
  size_t n = send_ops(ops, ch, bb);
  recv_ops(st, &r->io);
  ops[n++] = st[0]; /* RECV_INITIAL_METADATA */
  if (start_ops(r, ops, n, TAG_START) != GRPC_CALL_OK) return -1;
  if (start_ops(r, &st[2], 1, TAG_STATUS) != GRPC_CALL_OK) return -1;
  return 0;
}

static void reader_free(oee_rpc_reader *r) {
  if (r->call) {
    grpc_call_cancel(r->call, NULL);
    for (intptr_t t = 1; t < N_TAGS; t++) wait_for(r, t);
    grpc_call_unref(r->call);
  }
  io_destroy(&r->io);
  if (r->req) grpc_byte_buffer_destroy(r->req);
  cq_destroy(r->cq);
  oee_rpc_status_free(&r->final);
  free(r);
}

int oee_rpc_reader_start(oee_rpc_channel *ch, const char *method, const ProtobufCMessage *req,
                         const ProtobufCMessageDescriptor *resp_desc, int64_t deadline_ms,
                         oee_rpc_reader **out) {
  if (!ch || !method || !req || !resp_desc || !out) return OEE_RPC_EINVAL;
  *out = NULL;
  oee_rpc_reader *r = calloc(1, sizeof *r);
  if (r == NULL) return OEE_RPC_ENOMEM;
  r->desc = resp_desc;
  io_init(&r->io);
  r->cq = grpc_completion_queue_create_for_next(NULL);
  r->call = call_create(ch, method, r->cq, deadline_ms);
  r->req = oee__rpc_pack(req);
  if (reader_begin(ch, r, r->req) != 0) {
    reader_free(r);
    return OEE_RPC_ECALL;
  }
  *out = r;
  return 0;
}

static int reader_end(oee_rpc_reader *r, oee_rpc_status *st) {
  if (!r->ended) {
    wait_for(r, TAG_STATUS);
    take_status(&r->io, &r->final);
    r->ended = 1;
  }
  if (st != NULL) {
    st->code = r->final.code;
    st->message = r->final.message ? strdup(r->final.message) : NULL;
  }
  return 0;
}

int oee_rpc_reader_next(oee_rpc_reader *r, ProtobufCMessage **msg, oee_rpc_status *st) {
  if (r == NULL || msg == NULL) return OEE_RPC_EINVAL;
  *msg = NULL;
  if (r->ended) return reader_end(r, st);
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_MESSAGE;
  op.data.recv_message.recv_message = &r->io.msg;
  if (start_ops(r, &op, 1, TAG_MSG) != GRPC_CALL_OK) return reader_end(r, st);
  wait_for(r, TAG_MSG);
  if (r->io.msg == NULL) return reader_end(r, st);
  *msg = oee__rpc_unpack(r->desc, r->io.msg);
  grpc_byte_buffer_destroy(r->io.msg);
  r->io.msg = NULL;
  if (*msg != NULL) return 1;
  grpc_call_cancel_with_status(r->call, GRPC_STATUS_INTERNAL, "response does not decode", NULL);
  return reader_end(r, st);
}

void oee_rpc_reader_cancel(oee_rpc_reader *r) {
  if (r != NULL) grpc_call_cancel(r->call, NULL);
}

void oee_rpc_reader_close(oee_rpc_reader *r) {
  if (r != NULL) reader_free(r);
}
