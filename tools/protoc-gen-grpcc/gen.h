/*
 * gen.h - emits the C gRPC stubs of one .proto file.
 *
 * For every service of the file the header declares: the service name macro,
 * an enum of method indexes, the method table template (oee_rpc_method, from
 * server/rt/rpc_server.h, handlers NULL) and typed client functions: one
 * blocking function per unary method, start/next/cancel/close per
 * server-streaming method. Client- and bidi-streaming methods appear in the
 * method table only (the C client runtime has no such calls).
 */
#ifndef OEE_TOOLS_GEN_H
#define OEE_TOOLS_GEN_H

#include "google/protobuf/descriptor.pb-c.h"

/* Fills *h and *c with malloc'd file contents (caller frees) for the file
 * `f`; the output names are gen_header_name(f) and gen_source_name(f). */
void gen_file(const Google__Protobuf__FileDescriptorProto *f, char **h,
              char **c);
/* "a/b.proto" -> "a/b.grpc-c.h" / "a/b.grpc-c.c" (malloc'd). */
char *gen_header_name(const char *proto_name);
char *gen_source_name(const char *proto_name);

#endif
