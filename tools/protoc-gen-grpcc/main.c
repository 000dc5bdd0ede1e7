/*
 * protoc-gen-grpcc - protoc plugin that writes C gRPC stubs on top of
 * protobuf-c (see gen.h for what is generated).
 *
 * protoc runs it with a serialized CodeGeneratorRequest on stdin and expects
 * a CodeGeneratorResponse on stdout. Every file to generate yields
 * <name>.grpc-client.h/.c and <name>.grpc-server.h/.c, also when it declares
 * no service, so that build rules can predict the outputs.
 * Usage: protoc --plugin=protoc-gen-grpcc=PATH --grpcc_out=DIR file.proto
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "google/protobuf/compiler/plugin.pb-c.h"
#include "tools/protoc-gen-grpcc/buf.h"
#include "tools/protoc-gen-grpcc/gen.h"

typedef Google__Protobuf__Compiler__CodeGeneratorRequest Request;
typedef Google__Protobuf__Compiler__CodeGeneratorResponse Response;
typedef Google__Protobuf__Compiler__CodeGeneratorResponse__File OutFile;

static unsigned char *read_all(FILE *in, size_t *len) {
  size_t cap = 1 << 16, n = 0;
  unsigned char *data = malloc(cap);
  while (data != NULL) {
    n += fread(data + n, 1, cap - n, in);
    if (n < cap) break;
    cap *= 2;
    unsigned char *more = realloc(data, cap);
    if (more == NULL) free(data);
    data = more;
  }
  if (data == NULL || ferror(in)) {
    free(data);
    return NULL;
  }
  *len = n;
  return data;
}

static const Google__Protobuf__FileDescriptorProto *find_file(const Request *req,
                                                              const char *name) {
  for (size_t i = 0; i < req->n_proto_file; i++)
    if (strcmp(req->proto_file[i]->name, name) == 0) return req->proto_file[i];
  return NULL;
}

static OutFile *out_file(char *name, char *content) {
  OutFile *f = calloc(1, sizeof *f);
  if (f == NULL) abort();
  google__protobuf__compiler__code_generator_response__file__init(f);
  f->name = name;
  f->content = content;
  return f;
}

/* Fills resp; on a problem sets resp->error (malloc'd). */
static void generate(const Request *req, Response *resp) {
  resp->file = calloc(GEN_N_OUTPUTS * req->n_file_to_generate + 1, sizeof *resp->file);
  if (resp->file == NULL) abort();
  for (size_t i = 0; i < req->n_file_to_generate; i++) {
    const char *name = req->file_to_generate[i];
    const Google__Protobuf__FileDescriptorProto *f = find_file(req, name);
    if (f == NULL) {
      resp->error = str_printf("protoc-gen-grpcc: no descriptor for %s", name);
      return;
    }
    char *content[GEN_N_OUTPUTS];
    gen_file(f, content);
    for (int k = 0; k < GEN_N_OUTPUTS; k++)
      resp->file[resp->n_file++] = out_file(gen_output_name(name, (gen_output)k), content[k]);
  }
}

static void response_free(Response *resp) {
  for (size_t i = 0; i < resp->n_file; i++) {
    free(resp->file[i]->name);
    free(resp->file[i]->content);
    free(resp->file[i]);
  }
  free(resp->file);
  free(resp->error);
}

static int write_response(const Response *resp) {
  size_t len = google__protobuf__compiler__code_generator_response__get_packed_size(resp);
  uint8_t *out = malloc(len ? len : 1);
  if (out == NULL) return -1;
  google__protobuf__compiler__code_generator_response__pack(resp, out);
  int rc = fwrite(out, 1, len, stdout) == len && fflush(stdout) == 0 ? 0 : -1;
  free(out);
  return rc;
}

int main(void) {
  size_t len = 0;
  unsigned char *in = read_all(stdin, &len);
  if (in == NULL) {
    fprintf(stderr, "protoc-gen-grpcc: cannot read the request\n");
    return 1;
  }
  Request *req = google__protobuf__compiler__code_generator_request__unpack(NULL, len, in);
  free(in);
  if (req == NULL) {
    fprintf(stderr, "protoc-gen-grpcc: the request does not decode\n");
    return 1;
  }
  Response resp = GOOGLE__PROTOBUF__COMPILER__CODE_GENERATOR_RESPONSE__INIT;
  generate(req, &resp);
  int rc = write_response(&resp);
  response_free(&resp);
  google__protobuf__compiler__code_generator_request__free_unpacked(req, NULL);
  return rc == 0 ? 0 : 1;
}
