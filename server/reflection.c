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
 * Everything runs on the CQ thread.
 */
#include "server/reflection.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "google/protobuf/descriptor.pb-c.h"
#include "grpc/reflection/v1/reflection.grpc-server.h"
#include "grpc/reflection/v1/reflection.pb-c.h"

extern const size_t oee_descriptor_blob_count;
extern const unsigned char *const oee_descriptor_blobs[];
extern const size_t oee_descriptor_blob_sizes[];

#define V1ALPHA_PATH "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"

typedef Grpc__Reflection__V1__ServerReflectionRequest refl_request;
typedef Grpc__Reflection__V1__ServerReflectionResponse refl_response;

typedef struct file {
  Google__Protobuf__FileDescriptorProto *fd; /* parsed, for names */
  ProtobufCBinaryData raw;                   /* the bytes served */
  size_t *deps;                              /* indices into files */
  size_t n_deps;
} file;

typedef struct symbol {
  char *name; /* fully qualified, without the leading dot */
  size_t file;
} symbol;

struct oee_reflection {
  file *files;
  size_t n_files;
  symbol *symbols;
  size_t n_symbols, cap_symbols;
  char **services;
  size_t n_services;
};

/* ------------------------------------------------------------- indexing */

static int add_symbol(oee_reflection *r, const char *prefix, const char *name, size_t f) {
  if (r->n_symbols == r->cap_symbols) {
    size_t cap = r->cap_symbols ? r->cap_symbols * 2 : 256;
    symbol *s = realloc(r->symbols, cap * sizeof(*s));
    if (s == NULL) return -1;
    r->symbols = s;
    r->cap_symbols = cap;
  }
  size_t len = strlen(prefix) + strlen(name) + 2;
  char *full = malloc(len);
  if (full == NULL) return -1;
  snprintf(full, len, "%s%s%s", prefix, prefix[0] ? "." : "", name);
  r->symbols[r->n_symbols++] = (symbol){full, f};
  return 0;
}

static int index_enums(oee_reflection *r, const char *prefix,
                       Google__Protobuf__EnumDescriptorProto **e, size_t n, size_t f) {
  for (size_t i = 0; i < n; i++) {
    if (add_symbol(r, prefix, e[i]->name, f) != 0) return -1;
  }
  return 0;
}

static int index_message(oee_reflection *r, const char *prefix,
                         const Google__Protobuf__DescriptorProto *m, size_t f) {
  if (add_symbol(r, prefix, m->name, f) != 0) return -1;
  const char *full = r->symbols[r->n_symbols - 1].name;
  char *scope = strdup(full);
  int rc = scope ? 0 : -1;
  for (size_t i = 0; rc == 0 && i < m->n_field; i++)
    rc = add_symbol(r, scope, m->field[i]->name, f);
  for (size_t i = 0; rc == 0 && i < m->n_nested_type; i++)
    rc = index_message(r, scope, m->nested_type[i], f);
  if (rc == 0) rc = index_enums(r, scope, m->enum_type, m->n_enum_type, f);
  free(scope);
  return rc;
}

static int index_services(oee_reflection *r, const char *pkg, size_t f) {
  const Google__Protobuf__FileDescriptorProto *fd = r->files[f].fd;
  for (size_t i = 0; i < fd->n_service; i++) {
    const Google__Protobuf__ServiceDescriptorProto *s = fd->service[i];
    if (add_symbol(r, pkg, s->name, f) != 0) return -1;
    char *scope = strdup(r->symbols[r->n_symbols - 1].name);
    if (scope == NULL) return -1;
    for (size_t k = 0; k < s->n_method; k++) {
      if (add_symbol(r, scope, s->method[k]->name, f) != 0) {
        free(scope);
        return -1;
      }
    }
    free(scope);
  }
  return 0;
}

static int index_file(oee_reflection *r, size_t f) {
  const Google__Protobuf__FileDescriptorProto *fd = r->files[f].fd;
  const char *pkg = fd->package ? fd->package : "";
  for (size_t i = 0; i < fd->n_message_type; i++) {
    if (index_message(r, pkg, fd->message_type[i], f) != 0) return -1;
  }
  if (index_enums(r, pkg, fd->enum_type, fd->n_enum_type, f) != 0) return -1;
  return index_services(r, pkg, f);
}

static int symbol_cmp(const void *a, const void *b) {
  return strcmp(((const symbol *)a)->name, ((const symbol *)b)->name);
}

static long file_find(const oee_reflection *r, const char *name) {
  for (size_t i = 0; i < r->n_files; i++) {
    if (strcmp(r->files[i].fd->name, name) == 0) return (long)i;
  }
  return -1;
}

/* Reads a base-128 varint; 0 on malformed input. */
static size_t varint(const unsigned char *p, size_t len, uint64_t *v) {
  *v = 0;
  for (size_t i = 0; i < len && i < 10; i++) {
    *v |= (uint64_t)(p[i] & 0x7f) << (7 * i);
    if (!(p[i] & 0x80)) return i + 1;
  }
  return 0;
}

/* Adds the files of one FileDescriptorSet (field 1, repeated bytes). */
static int load_set(oee_reflection *r, const unsigned char *p, size_t len) {
  size_t off = 0;
  while (off < len) {
    uint64_t tag, n;
    size_t k = varint(p + off, len - off, &tag);
    if (k == 0 || tag != ((1 << 3) | 2)) return -1;
    off += k;
    k = varint(p + off, len - off, &n);
    if (k == 0 || n > len - off - k) return -1;
    off += k;
    Google__Protobuf__FileDescriptorProto *fd =
        google__protobuf__file_descriptor_proto__unpack(NULL, n, p + off);
    if (fd == NULL) return -1;
    if (file_find(r, fd->name) >= 0) {
      google__protobuf__file_descriptor_proto__free_unpacked(fd, NULL);
    } else {
      file *fs = realloc(r->files, (r->n_files + 1) * sizeof(*fs));
      if (fs == NULL) return -1;
      r->files = fs;
      r->files[r->n_files++] = (file){fd, {n, (uint8_t *)(uintptr_t)(p + off)}, NULL, 0};
    }
    off += n;
  }
  return 0;
}

static int link_deps(oee_reflection *r) {
  for (size_t f = 0; f < r->n_files; f++) {
    file *fl = &r->files[f];
    fl->deps = calloc(fl->fd->n_dependency + 1, sizeof(*fl->deps));
    if (fl->deps == NULL) return -1;
    for (size_t i = 0; i < fl->fd->n_dependency; i++) {
      long d = file_find(r, fl->fd->dependency[i]);
      if (d >= 0) fl->deps[fl->n_deps++] = (size_t)d;
    }
    if (index_file(r, f) != 0) return -1;
  }
  qsort(r->symbols, r->n_symbols, sizeof(*r->symbols), symbol_cmp);
  return 0;
}

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

static long symbol_file(const oee_reflection *r, const char *name) {
  if (name && name[0] == '.') name++;
  symbol key = {(char *)(uintptr_t)(name ? name : ""), 0};
  symbol *s = bsearch(&key, r->symbols, r->n_symbols, sizeof(*r->symbols), symbol_cmp);
  return s ? (long)s->file : -1;
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
  a->blobs = calloc(st->r->n_files, sizeof(*a->blobs));
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
  a->svc = calloc(n + 1, sizeof(*a->svc));
  a->svc_ptrs = calloc(n + 1, sizeof(*a->svc_ptrs));
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
  if (symbol_file(st->r, type) < 0) {
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
      answer_files(st, a, file_find(st->r, p->arg), "file not found");
      break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL:
      answer_files(st, a, symbol_file(st->r, p->arg), "symbol not found");
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
  free(p->host);
  free(p->arg);
  free(p);
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
  free(a.blobs);
  free(a.svc);
  free(a.svc_ptrs);
  pending_free(p);
}

static void on_message(oee_rpc_call *call, const ProtobufCMessage *msg, void *user) {
  (void)call;
  stream *st = user;
  if (msg == NULL) {
    st->half_closed = 1;
  } else {
    const refl_request *m = (const refl_request *)msg;
    pending *p = calloc(1, sizeof(*p));
    if (p) p->host = strdup(m->host ? m->host : "");
    if (p) p->arg = strdup(request_arg(m) ? request_arg(m) : "");
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
  free(st->sent);
  free(st);
}

static const oee_rpc_call_callbacks stream_callbacks = {.on_writable = on_writable,
                                                        .on_cancelled = on_cancelled,
                                                        .on_message = on_message,
                                                        .on_done = on_done};

static void handle_info(oee_rpc_call *call, const ProtobufCMessage *req, void *ctx) {
  (void)req;
  oee_reflection *r = ctx;
  stream *st = calloc(1, sizeof(*st));
  unsigned char *sent = calloc(r->n_files + 1, 1);
  if (st == NULL || sent == NULL) {
    free(st);
    free(sent);
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
  r->services = calloc(n + 1, sizeof(*r->services));
  if (r->services == NULL) return -1;
  for (size_t i = 0; i < n; i++) {
    r->services[i] = strdup(services[i]);
    if (r->services[i] == NULL) return -1;
    r->n_services = i + 1;
  }
  return 0;
}

int oee_reflection_create(oee_rpc_server *srv, const char *const *services, size_t n_services,
                          oee_reflection **out) {
  oee_reflection *r = calloc(1, sizeof(*r));
  if (r == NULL) return -1;
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < oee_descriptor_blob_count; i++) {
    rc = load_set(r, oee_descriptor_blobs[i], oee_descriptor_blob_sizes[i]);
  }
  if (rc == 0) rc = link_deps(r);
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
  for (size_t i = 0; i < r->n_files; i++) {
    google__protobuf__file_descriptor_proto__free_unpacked(r->files[i].fd, NULL);
    free(r->files[i].deps);
  }
  for (size_t i = 0; i < r->n_symbols; i++) free(r->symbols[i].name);
  for (size_t i = 0; i < r->n_services; i++) free(r->services[i]);
  free(r->services);
  free(r->symbols);
  free(r->files);
  free(r);
}
