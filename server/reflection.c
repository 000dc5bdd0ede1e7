/*
 * reflection.c - grpc.reflection.v1 and v1alpha ServerReflection.
 *
 * DESIGN: the descriptor sets protoc wrote at build time are embedded in the
 * binary (descriptor_blobs.c). At start they are split into the raw bytes of
 * each FileDescriptorProto (served as they are) and parsed once to index
 * every symbol: packages' messages (nested too), fields, enums, services and
 * methods, each pointing at the file that defines it.
 * Each ServerReflectionInfo stream (bidi) answers its requests in order,
 * one write at a time: requests are queued as they arrive and answered when
 * the call is writable. A file answer carries the requested file and the
 * dependencies this stream has not been sent yet. The v1alpha service is
 * wire-identical, so it is served with the v1 messages.
 * Everything runs on the CQ thread. The index lives in reflection_index.c.
 * Memory comes from core/oee_alloc.h: a failure at start-up fails
 * oee_reflection_create(); one in a stream ends that stream
 * RESOURCE_EXHAUSTED, or answers the request with an error response.
 */
#include "server/reflection.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/oee_alloc.h"
#include "grpc/reflection/v1/reflection.grpc-server.h"
#include "grpc/reflection/v1/reflection.pb-c.h"
#include "server/reflection_index.h"

#define V1ALPHA_PATH "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"

typedef Grpc__Reflection__V1__ServerReflectionRequest refl_request;
typedef Grpc__Reflection__V1__ServerReflectionResponse refl_response;

/* --------------------------------------------------------------- streams */

typedef struct pending {
  struct pending *next;
  Grpc__Reflection__V1__ServerReflectionRequest__MessageRequestCase kind;
  char *host;
  char *arg;
} pending;

typedef struct stream {
  oee_reflection *r;
  oee_rpc_call *call;
  pending *head, *tail;
  unsigned char *sent; /* per file: already sent on this stream */
  int half_closed, ended;
} stream;

static const char *request_arg(const refl_request *m) {
  switch (m->message_request_case) {
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
      return m->file_by_filename;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL:
      return m->file_containing_symbol;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE:
      return m->all_extension_numbers_of_type;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES:
      return m->list_services;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION:
      return m->file_containing_extension ? m->file_containing_extension->containing_type : "";
    default:
      return "";
  }
}

/* Appends file f, then its unsent dependencies (depth first). */
static void collect(stream *st, size_t f, ProtobufCBinaryData *out, size_t *n, int force) {
  if (st->sent[f] && !force) return;
  st->sent[f] = 1;
  out[(*n)++] = st->r->files[f].raw;
  for (size_t i = 0; i < st->r->files[f].n_deps; i++) {
    collect(st, st->r->files[f].deps[i], out, n, 0);
  }
}

static void answer_error(refl_response *resp, Grpc__Reflection__V1__ErrorResponse *err,
                         grpc_status_code code, const char *what) {
  err->error_code = code;
  err->error_message = (char *)(uintptr_t)what;
  resp->message_response_case =
      GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
  resp->error_response = err;
}

/* Everything a response may point to lives here until it is written. */
typedef struct answer {
  refl_response resp;
  Grpc__Reflection__V1__ServerReflectionRequest orig;
  Grpc__Reflection__V1__FileDescriptorResponse files;
  Grpc__Reflection__V1__ListServiceResponse list;
  Grpc__Reflection__V1__ExtensionNumberResponse ext;
  Grpc__Reflection__V1__ErrorResponse err;
  Grpc__Reflection__V1__ServiceResponse *svc;
  Grpc__Reflection__V1__ServiceResponse **svc_ptrs;
  ProtobufCBinaryData *blobs;
} answer;

static void answer_files(stream *st, answer *a, long f, const char *what) {
  if (f < 0) {
    answer_error(&a->resp, &a->err, GRPC_STATUS_NOT_FOUND, what);
    return;
  }
  a->blobs = oee_calloc(st->r->n_files, sizeof(*a->blobs));
  if (a->blobs == NULL) {
    answer_error(&a->resp, &a->err, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  collect(st, (size_t)f, a->blobs, &a->files.n_file_descriptor_proto, 1);
  a->files.file_descriptor_proto = a->blobs;
  a->resp.message_response_case =
      GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
  a->resp.file_descriptor_response = &a->files;
}

static void answer_list(stream *st, answer *a) {
  size_t n = st->r->n_services;
  a->svc = oee_calloc(n + 1, sizeof(*a->svc));
  a->svc_ptrs = oee_calloc(n + 1, sizeof(*a->svc_ptrs));
  if (a->svc == NULL || a->svc_ptrs == NULL) {
    /* An empty list would claim the server offers nothing. */
    answer_error(&a->resp, &a->err, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  for (size_t i = 0; i < n; i++) {
    grpc__reflection__v1__service_response__init(&a->svc[i]);
    a->svc[i].name = st->r->services[i];
    a->svc_ptrs[i] = &a->svc[i];
    a->list.n_service = i + 1;
  }
  a->list.service = a->svc_ptrs;
  a->resp.message_response_case =
      GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
  a->resp.list_services_response = &a->list;
}

static void answer_extensions(stream *st, answer *a, const char *type) {
  if (oee__reflection_symbol_file(st->r, type) < 0) {
    answer_error(&a->resp, &a->err, GRPC_STATUS_NOT_FOUND, "type not found");
    return;
  }
  a->ext.base_type_name = (char *)(uintptr_t)type; /* our types declare no extensions */
  a->resp.message_response_case =
      GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE;
  a->resp.all_extension_numbers_response = &a->ext;
}

static void answer_init(answer *a, const pending *p) {
  memset(a, 0, sizeof(*a));
  grpc__reflection__v1__server_reflection_response__init(&a->resp);
  grpc__reflection__v1__server_reflection_request__init(&a->orig);
  grpc__reflection__v1__file_descriptor_response__init(&a->files);
  grpc__reflection__v1__list_service_response__init(&a->list);
  grpc__reflection__v1__extension_number_response__init(&a->ext);
  grpc__reflection__v1__error_response__init(&a->err);
  a->resp.valid_host = p->host;
  a->orig.host = p->host;
  a->orig.message_request_case = p->kind;
  /* Every string member of the request's oneof shares one slot. */
  a->orig.file_by_filename = p->arg;
  a->resp.original_request = &a->orig;
}

static void answer_build(stream *st, answer *a, const pending *p) {
  answer_init(a, p);
  switch (p->kind) {
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
      answer_files(st, a, oee__reflection_file_find(st->r, p->arg), "file not found");
      break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL:
      answer_files(st, a, oee__reflection_symbol_file(st->r, p->arg), "symbol not found");
      break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES:
      answer_list(st, a);
      break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE:
      answer_extensions(st, a, p->arg);
      break;
    default:
      a->orig.message_request_case =
          GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST__NOT_SET;
      answer_error(&a->resp, &a->err, GRPC_STATUS_NOT_FOUND, "extension not found");
  }
}

static void pending_free(pending *p) {
  oee_free(p->host);
  oee_free(p->arg);
  oee_free(p);
}

/* Answers the oldest queued request if the call can take a write. */
static void stream_pump(stream *st) {
  if (st->ended || !oee_rpc_call_writable(st->call)) return;
  pending *p = st->head;
  if (p == NULL) {
    if (st->half_closed) {
      st->ended = 1;
      oee_rpc_call_finish(st->call, GRPC_STATUS_OK, NULL);
    }
    return;
  }
  st->head = p->next;
  if (st->head == NULL) st->tail = NULL;
  answer a;
  answer_build(st, &a, p);
  oee_rpc_call_write(st->call, &a.resp.base);
  oee_free(a.blobs);
  oee_free(a.svc);
  oee_free(a.svc_ptrs);
  pending_free(p);
}

static void on_message(oee_rpc_call *call, const ProtobufCMessage *msg, void *user) {
  (void)call;
  stream *st = user;
  if (msg == NULL) {
    st->half_closed = 1;
  } else {
    const refl_request *m = (const refl_request *)msg;
    pending *p = oee_calloc(1, sizeof(*p));
    if (p) p->host = oee_strdup(m->host ? m->host : "");
    if (p) p->arg = oee_strdup(request_arg(m) ? request_arg(m) : "");
    if (p == NULL || p->host == NULL || p->arg == NULL) {
      /* A dropped request would leave the client waiting for its answer. */
      if (p) pending_free(p);
      st->ended = 1;
      oee_rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
      return;
    }
    p->kind = m->message_request_case;
    if (st->tail) {
      st->tail->next = p;
    } else {
      st->head = p;
    }
    st->tail = p;
  }
  stream_pump(st);
}

static void on_writable(oee_rpc_call *call, void *user) {
  (void)call;
  stream_pump(user);
}

static void on_cancelled(oee_rpc_call *call, void *user) {
  (void)call;
  ((stream *)user)->ended = 1;
}

static void on_done(oee_rpc_call *call, void *user) {
  (void)call;
  stream *st = user;
  while (st->head) {
    pending *next = st->head->next;
    pending_free(st->head);
    st->head = next;
  }
  oee_free(st->sent);
  oee_free(st);
}

static const oee_rpc_call_callbacks stream_callbacks = {.on_writable = on_writable,
                                                        .on_cancelled = on_cancelled,
                                                        .on_message = on_message,
                                                        .on_done = on_done};

static void handle_info(oee_rpc_call *call, const ProtobufCMessage *req, void *ctx) {
  (void)req;
  oee_reflection *r = ctx;
  stream *st = oee_calloc(1, sizeof(*st));
  unsigned char *sent = oee_calloc(r->n_files + 1, 1);
  if (st == NULL || sent == NULL) {
    oee_free(st);
    oee_free(sent);
    oee_rpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  *st = (stream){.r = r, .call = call, .sent = sent};
  oee_rpc_call_set_callbacks(call, &stream_callbacks, st);
}

/* --------------------------------------------------------------- public */

/* Copies the names ListServices reports; -1 when memory runs out, so that
 * start-up fails instead of serving an empty or partial list. */
static int copy_services(oee_reflection *r, const char *const *services, size_t n) {
  r->services = oee_calloc(n + 1, sizeof(*r->services));
  if (r->services == NULL) return -1;
  for (size_t i = 0; i < n; i++) {
    r->services[i] = oee_strdup(services[i]);
    if (r->services[i] == NULL) return -1;
    r->n_services = i + 1;
  }
  return 0;
}

int oee_reflection_create(oee_rpc_server *srv, const char *const *services, size_t n_services,
                          oee_reflection **out) {
  oee_reflection *r = oee_calloc(1, sizeof(*r));
  if (r == NULL) return -1;
  int rc = oee__reflection_index(r);
  if (rc == 0) rc = copy_services(r, services, n_services);
  oee_rpc_method table[2];
  table[0] = grpc_reflection_v1_server_reflection_methods[0];
  table[0].handler = handle_info;
  table[1] = table[0];
  table[1].path = V1ALPHA_PATH; /* same wire format as v1 */
  if (rc == 0) rc = oee_rpc_server_add_service(srv, table, 2, r);
  if (rc != 0) {
    oee_reflection_destroy(r);
    return -1;
  }
  *out = r;
  return 0;
}

void oee_reflection_destroy(oee_reflection *r) {
  if (r == NULL) return;
  oee__reflection_index_free(r);
  for (size_t i = 0; i < r->n_services; i++) oee_free(r->services[i]);
  oee_free(r->services);
  oee_free(r);
}
