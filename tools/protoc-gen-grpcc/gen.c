/* gen.c - the stub emitter (see gen.h). */
#include "tools/protoc-gen-grpcc/gen.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "tools/protoc-gen-grpcc/buf.h"
#include "tools/protoc-gen-grpcc/names.h"

/* Field numbers of FileDescriptorProto.service and ServiceDescriptorProto.method
 * in SourceCodeInfo paths. */
enum { PATH_SERVICE = 6, PATH_METHOD = 2 };

/* Everything emitted about one method; strings malloc'd. */
typedef struct mnames {
  char *fn;        /* client function prefix, e.g. oee_v1_x_service_get */
  char *index;     /* enum constant, e.g. OEE_V1_X_SERVICE_METHOD_GET */
  char *path;      /* "/oee.v1.XService/Get" */
  char *req_type;  /* Oee__V1__GetRequest */
  char *resp_type; /* Oee__V1__Thing */
  char *req_low;   /* oee__v1__get_request */
  char *resp_low;  /* oee__v1__thing */
  int cs, ss;      /* client / server streaming */
  const char *doc; /* leading comment or NULL (borrowed) */
} mnames;

/* Names of one service; strings malloc'd. */
typedef struct snames {
  char *full; /* oee.v1.XService */
  char *pfx;  /* oee_v1_x_service */
  char *upfx; /* OEE_V1_X_SERVICE */
  const char *doc;
  size_t n;
  mnames *m;
} snames;

static const char *leading_doc(const Google__Protobuf__FileDescriptorProto *f, int32_t si,
                               int32_t mi) {
  if (f->source_code_info == NULL) return NULL;
  size_t want = mi < 0 ? 2 : 4;
  for (size_t i = 0; i < f->source_code_info->n_location; i++) {
    const Google__Protobuf__SourceCodeInfo__Location *l = f->source_code_info->location[i];
    if (l->n_path != want || l->path[0] != PATH_SERVICE || l->path[1] != si) continue;
    if (mi >= 0 && (l->path[2] != PATH_METHOD || l->path[3] != mi)) continue;
    return l->leading_comments;
  }
  return NULL;
}

static void method_names(mnames *mn, const snames *sn,
                         const Google__Protobuf__MethodDescriptorProto *m) {
  char *snake = names_snake(m->name);
  mn->fn = str_printf("%s_%s", sn->pfx, snake);
  char *up = names_upper(str_printf("%s", snake));
  mn->index = str_printf("%s_METHOD_%s", sn->upfx, up);
  free(up);
  free(snake);
  mn->path = str_printf("/%s/%s", sn->full, m->name);
  mn->req_type = names_c_type(m->input_type);
  mn->resp_type = names_c_type(m->output_type);
  mn->req_low = names_c_lower(m->input_type);
  mn->resp_low = names_c_lower(m->output_type);
  mn->cs = m->has_client_streaming && m->client_streaming;
  mn->ss = m->has_server_streaming && m->server_streaming;
}

static void service_names(snames *sn, const Google__Protobuf__FileDescriptorProto *f, size_t si) {
  const Google__Protobuf__ServiceDescriptorProto *s = f->service[si];
  const char *pkg = f->package ? f->package : "";
  char *snake = names_snake(s->name);
  char *ppkg = names_package(pkg);
  sn->full = *pkg ? str_printf("%s.%s", pkg, s->name) : str_printf("%s", s->name);
  sn->pfx = *pkg ? str_printf("%s_%s", ppkg, snake) : str_printf("%s", snake);
  sn->upfx = names_upper(str_printf("%s", sn->pfx));
  free(snake);
  free(ppkg);
  sn->doc = leading_doc(f, (int32_t)si, -1);
  sn->n = s->n_method;
  sn->m = calloc(sn->n ? sn->n : 1, sizeof *sn->m);
  if (sn->m == NULL) abort();
  for (size_t i = 0; i < sn->n; i++) {
    method_names(&sn->m[i], sn, s->method[i]);
    sn->m[i].doc = leading_doc(f, (int32_t)si, (int32_t)i);
  }
}

static void snames_free(snames *sn) {
  for (size_t i = 0; i < sn->n; i++) {
    mnames *m = &sn->m[i];
    free(m->fn), free(m->index), free(m->path), free(m->req_type);
    free(m->resp_type), free(m->req_low), free(m->resp_low);
  }
  free(sn->m), free(sn->full), free(sn->pfx), free(sn->upfx);
}

/* Writes a comment as " * " lines, breaking any comment terminator. */
static void emit_doc(buf *b, const char *doc) {
  if (doc == NULL) return;
  const char *p = doc;
  while (*p) {
    const char *nl = strchr(p, '\n');
    size_t n = nl ? (size_t)(nl - p) : strlen(p);
    buf_printf(b, " *");
    for (size_t i = 0; i < n; i++) {
      if (i == 0 && p[0] != ' ') buf_printf(b, " ");
      buf_printf(b, "%c", p[i]);
      if (p[i] == '*' && i + 1 < n && p[i + 1] == '/') buf_printf(b, " ");
    }
    buf_printf(b, "\n");
    p += n + (nl ? 1 : 0);
  }
}

static const char *kind(const mnames *m) {
  if (m->cs && m->ss) return "bidi-streaming";
  if (m->cs) return "client-streaming";
  return m->ss ? "server-streaming" : "unary";
}

/* ------------------------------------------------------------- client */

static void decl_unary(buf *h, const mnames *m) {
  buf_printf(h,
             " * Blocking call. Returns the final status code (GRPC_STATUS_OK "
             "== 0).\n"
             " * On OK *resp owns a message the caller frees with\n"
             " * %s__free_unpacked(*resp, NULL); otherwise *resp is NULL.\n"
             " * deadline_ms <= 0 means none. st may be NULL; else free it "
             "with\n * oee_rpc_status_free(). req is borrowed for the call.\n"
             " */\n"
             "int %s(oee_rpc_channel *ch, const %s *req, %s **resp,\n"
             "    int64_t deadline_ms, oee_rpc_status *st);\n\n",
             m->resp_low, m->fn, m->req_type, m->resp_type);
}

static void decl_stream(buf *h, const mnames *m) {
  buf_printf(h,
             " * _start() opens the stream (0, or a negative OEE_RPC_E*\n"
             " * code; *out then owns a reader to pass to _close()). _next()\n"
             " * blocks: "
             "1 and\n * *msg (free with %s__free_unpacked) for a message,\n"
             " * 0 at the end with st filled (may be NULL), negative on "
             "misuse.\n * _cancel() may be called from any thread.\n */\n"
             "int %s_start(oee_rpc_channel *ch, const %s *req,\n"
             "    int64_t deadline_ms, oee_rpc_reader **out);\n"
             "int %s_next(oee_rpc_reader *r, %s **msg, oee_rpc_status *st);\n"
             "void %s_cancel(oee_rpc_reader *r);\n"
             "void %s_close(oee_rpc_reader *r);\n\n",
             m->resp_low, m->fn, m->req_type, m->fn, m->resp_type, m->fn, m->fn);
}

/* The service name macro opens the service in both headers. The two
 * definitions are identical token for token, which C allows, so a file may
 * include the client and the server header together. */
static void service_banner(buf *h, const snames *sn) {
  buf_printf(h, "/* ---- service %s ----\n", sn->full);
  emit_doc(h, sn->doc);
  buf_printf(h, " */\n#define %s_NAME \"%s\"\n\n", sn->upfx, sn->full);
}

static void client_header_service(buf *h, const snames *sn) {
  service_banner(h, sn);
  for (size_t i = 0; i < sn->n; i++) {
    const mnames *m = &sn->m[i];
    buf_printf(h, "/* %s (%s)\n", m->path, kind(m));
    emit_doc(h, m->doc);
    if (m->cs) {
      buf_printf(h,
                 " * No client stub: the C runtime has no "
                 "client-streaming calls.\n */\n\n");
    } else if (m->ss) {
      decl_stream(h, m);
    } else {
      decl_unary(h, m);
    }
  }
}

static void def_unary(buf *c, const mnames *m) {
  buf_printf(c,
             "int %s(oee_rpc_channel *ch, const %s *req, %s **resp,\n"
             "    int64_t deadline_ms, oee_rpc_status *st) {\n"
             "  return oee_rpc_unary(ch, \"%s\",\n"
             "      req ? &req->base : NULL, &%s__descriptor,\n"
             "      (ProtobufCMessage **)resp, deadline_ms, st);\n}\n\n",
             m->fn, m->req_type, m->resp_type, m->path, m->resp_low);
}

static void def_stream(buf *c, const mnames *m) {
  buf_printf(c,
             "int %s_start(oee_rpc_channel *ch, const %s *req,\n"
             "    int64_t deadline_ms, oee_rpc_reader **out) {\n"
             "  return oee_rpc_reader_start(ch, \"%s\",\n"
             "      req ? &req->base : NULL, &%s__descriptor, deadline_ms, "
             "out);\n}\n\n",
             m->fn, m->req_type, m->path, m->resp_low);
  buf_printf(c,
             "int %s_next(oee_rpc_reader *r, %s **msg, oee_rpc_status *st) {\n"
             "  return oee_rpc_reader_next(r, (ProtobufCMessage **)msg, st);\n"
             "}\n\n"
             "void %s_cancel(oee_rpc_reader *r) { oee_rpc_reader_cancel(r); }\n\n"
             "void %s_close(oee_rpc_reader *r) { oee_rpc_reader_close(r); }\n\n",
             m->fn, m->resp_type, m->fn, m->fn);
}

static void client_source_service(buf *c, const snames *sn) {
  for (size_t i = 0; i < sn->n; i++) {
    if (sn->m[i].cs) continue;
    if (sn->m[i].ss)
      def_stream(c, &sn->m[i]);
    else
      def_unary(c, &sn->m[i]);
  }
}

/* ------------------------------------------------------------- server */

static void server_header_service(buf *h, const snames *sn) {
  service_banner(h, sn);
  if (sn->n == 0) return;
  buf_printf(h, "/* Index of each method in %s_methods. */\nenum {\n", sn->pfx);
  for (size_t i = 0; i < sn->n; i++)
    buf_printf(h, "  %s = %zu, /* %s (%s) */\n", sn->m[i].index, i, sn->m[i].path, kind(&sn->m[i]));
  buf_printf(h, "  %s_N_METHODS = %zu\n};\n\n", sn->upfx, sn->n);
  buf_printf(h,
             "/* Method table template (static storage, handlers NULL). Copy "
             "it,\n * fill the handlers and pass the copy to "
             "oee_rpc_server_add_service(). */\n"
             "extern const oee_rpc_method %s_methods[%s_N_METHODS];\n\n",
             sn->pfx, sn->upfx);
}

static void server_source_service(buf *c, const snames *sn) {
  if (sn->n == 0) return;
  buf_printf(c, "const oee_rpc_method %s_methods[%s_N_METHODS] = {\n", sn->pfx, sn->upfx);
  for (size_t i = 0; i < sn->n; i++) {
    const mnames *m = &sn->m[i];
    buf_printf(c,
               "  [%s] = {\n    .path = \"%s\",\n"
               "    .client_streaming = %d,\n    .server_streaming = %d,\n"
               "    .request = &%s__descriptor,\n"
               "    .response = &%s__descriptor,\n    .handler = NULL,\n  },\n",
               m->index, m->path, m->cs, m->ss, m->req_low, m->resp_low);
  }
  buf_printf(c, "};\n\n");
}

/* -------------------------------------------------------------- files */

/* What each output is called and what its header pulls in. */
static const struct {
  const char *suffix;
  const char *runtime; /* the runtime header (headers only) */
  const char *what;    /* one line for the file comment */
} outputs[GEN_N_OUTPUTS] = {
    [GEN_CLIENT_H] = {".grpc-client.h", "client/rt/rpc_client.h",
                      "Client stubs on the call runtime"},
    [GEN_CLIENT_C] = {".grpc-client.c", NULL, "Client stubs"},
    [GEN_SERVER_H] = {".grpc-server.h", "server/rt/rpc_server.h",
                      "Method tables for the server runtime"},
    [GEN_SERVER_C] = {".grpc-server.c", NULL, "Method tables"},
};

char *gen_output_name(const char *proto_name, gen_output kind) {
  char *base = names_strip_proto(proto_name);
  char *s = str_printf("%s%s", base, outputs[kind].suffix);
  free(base);
  return s;
}

static char *guard_of(const char *base, const char *suffix) {
  buf b = {0};
  for (const char *p = base; *p; p++)
    buf_printf(&b, "%c", isalnum((unsigned char)*p) ? toupper((unsigned char)*p) : '_');
  for (const char *p = suffix; *p; p++)
    buf_printf(&b, "%c", isalnum((unsigned char)*p) ? toupper((unsigned char)*p) : '_');
  return buf_take(&b);
}

static void header_open(buf *h, const Google__Protobuf__FileDescriptorProto *f, const char *base,
                        gen_output kind) {
  char *guard = guard_of(base, outputs[kind].suffix);
  buf_printf(h,
             "/* Generated by protoc-gen-grpcc from %s. DO NOT EDIT.\n"
             " * %s (%s). */\n"
             "#ifndef %s\n#define %s\n\n#include <stdint.h>\n\n"
             "#include \"%s.pb-c.h\"\n#include \"%s\"\n\n"
             "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n",
             f->name, outputs[kind].what, outputs[kind].runtime, guard, guard, base,
             outputs[kind].runtime);
  free(guard);
}

static void header_close(buf *h, const char *base, gen_output kind) {
  char *guard = guard_of(base, outputs[kind].suffix);
  buf_printf(h, "#ifdef __cplusplus\n}\n#endif\n\n#endif /* %s */\n", guard);
  free(guard);
}

static void source_open(buf *c, const Google__Protobuf__FileDescriptorProto *f, const char *base,
                        gen_output header) {
  buf_printf(c,
             "/* Generated by protoc-gen-grpcc from %s. DO NOT EDIT. */\n"
             "#include \"%s%s\"\n\n#include <stddef.h>\n\n",
             f->name, base, outputs[header].suffix);
}

void gen_file(const Google__Protobuf__FileDescriptorProto *f, char *out[GEN_N_OUTPUTS]) {
  buf b[GEN_N_OUTPUTS] = {{0}};
  char *base = names_strip_proto(f->name);
  header_open(&b[GEN_CLIENT_H], f, base, GEN_CLIENT_H);
  header_open(&b[GEN_SERVER_H], f, base, GEN_SERVER_H);
  source_open(&b[GEN_CLIENT_C], f, base, GEN_CLIENT_H);
  source_open(&b[GEN_SERVER_C], f, base, GEN_SERVER_H);
  for (size_t i = 0; i < f->n_service; i++) {
    snames sn = {0};
    service_names(&sn, f, i);
    client_header_service(&b[GEN_CLIENT_H], &sn);
    client_source_service(&b[GEN_CLIENT_C], &sn);
    server_header_service(&b[GEN_SERVER_H], &sn);
    server_source_service(&b[GEN_SERVER_C], &sn);
    snames_free(&sn);
  }
  header_close(&b[GEN_CLIENT_H], base, GEN_CLIENT_H);
  header_close(&b[GEN_SERVER_H], base, GEN_SERVER_H);
  free(base);
  for (int k = 0; k < GEN_N_OUTPUTS; k++) out[k] = buf_take(&b[k]);
}
