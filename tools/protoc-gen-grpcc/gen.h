/*
 * gen.h - emits the C gRPC stubs of one .proto file, as two independent
 * halves so that a client links no server runtime and a server no client
 * runtime:
 *
 *  <name>.grpc-client.h/.c  typed client functions on client/rt/rpc_client.h:
 *                           one blocking function per unary method,
 *                           start/next/cancel/close per server-streaming
 *                           method. Client- and bidi-streaming methods get no
 *                           stub (the C client runtime has no such calls).
 *  <name>.grpc-server.h/.c  per service an enum of method indexes and the
 *                           method table template (oee_rpc_method of
 *                           server/rt/rpc_server.h, handlers NULL).
 *
 * Both headers define the service name macro <SERVICE>_NAME, identically.
 */
#ifndef OEE_TOOLS_GEN_H
#define OEE_TOOLS_GEN_H

#include "google/protobuf/descriptor.pb-c.h"

/* The files generated for one .proto file, in the order protoc gets them. */
typedef enum gen_output {
  GEN_CLIENT_H,
  GEN_CLIENT_C,
  GEN_SERVER_H,
  GEN_SERVER_C,
  GEN_N_OUTPUTS
} gen_output;

/* Fills out[k] with the malloc'd contents (caller frees) of output k of the
 * file `f`; output k is named gen_output_name(f->name, k). */
void gen_file(const Google__Protobuf__FileDescriptorProto *f, char *out[GEN_N_OUTPUTS]);
/* "a/b.proto", GEN_CLIENT_H -> "a/b.grpc-client.h" (malloc'd). */
char *gen_output_name(const char *proto_name, gen_output kind);

#endif
