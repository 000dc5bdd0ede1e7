/*
 * codec.h - protobuf-c messages <-> gRPC byte buffers. Internal to the
 * client and server call runtimes (names oee__rpc_*), which both link it
 * from this package so that neither has to reach into the other.
 */
#ifndef OEE_RPC_CODEC_H
#define OEE_RPC_CODEC_H

#include <grpc/byte_buffer.h>
#include <grpc/slice.h>
#include <protobuf-c/protobuf-c.h>

#include "rpc/arena.h"

/* Packs msg into a new byte buffer the caller destroys with
 * grpc_byte_buffer_destroy(). Never NULL (gRPC aborts on allocation failure). */
grpc_byte_buffer *oee__rpc_pack(const ProtobufCMessage *msg);
/* The bytes of bb in one slice: bb's own (borrowed) when it is one
 * uncompressed slice, otherwise read out and decompressed (a new slice:
 * *own is set, unref it). 0, or -1 when bb cannot be read. */
int oee__rpc_contiguous(grpc_byte_buffer *bb, grpc_slice *s, int *own);
/* Unpacks bb (borrowed) as a desc message; returns a new message the caller
 * frees with protobuf_c_message_free_unpacked(), or NULL if it does not
 * decode. */
ProtobufCMessage *oee__rpc_unpack(const ProtobufCMessageDescriptor *desc, grpc_byte_buffer *bb);
/* The same with a protobuf-c allocator (NULL: malloc); free the message
 * with the same allocator, or drop the allocator's memory at once. */
ProtobufCMessage *oee__rpc_unpack_with(const ProtobufCMessageDescriptor *desc, grpc_byte_buffer *bb,
                                       ProtobufCAllocator *alloc);
/* protobuf-c's allocator interface over arena a (borrowed; must outlive the
 * allocator): unpacking into it costs a few bump allocations, nothing is
 * freed field by field (drop the message with oee_arena_free), and memory
 * running out is recorded in the arena, so a caller can tell a request that
 * did not fit in memory (oee_arena_failed) from one that does not decode. */
ProtobufCAllocator oee__rpc_arena_allocator(oee_arena *a);
/* Copies a slice into a malloc'd NUL-terminated string (NULL if out of
 * memory). libc's malloc: the client runtime frees it with free(). */
char *oee__rpc_slice_strdup(grpc_slice s);

/* Message-size limits as channel args, shared by both runtimes: appends to
 * args[*n] one arg per limit that is not 0 (at most 2). */
void oee__rpc_size_args(int max_receive_bytes, int max_send_bytes, grpc_arg *args, size_t *n);

#endif /* OEE_RPC_CODEC_H */
