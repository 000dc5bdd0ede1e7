/* codec.c - protobuf-c <-> byte buffer conversion (see codec.h). */
#include "rpc/codec.h"

#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/compression.h>

grpc_byte_buffer *oee__rpc_pack(const ProtobufCMessage *msg) {
  size_t n = protobuf_c_message_get_packed_size(msg);
  grpc_slice s = grpc_slice_malloc(n);
  protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(s));
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  return bb;
}

int oee__rpc_contiguous(grpc_byte_buffer *bb, grpc_slice *s, int *own) {
  *own = 0;
  /* Fast path: an uncompressed message in one slice is read in place. */
  if (bb->type == GRPC_BB_RAW && bb->data.raw.compression == GRPC_COMPRESS_NONE &&
      bb->data.raw.slice_buffer.count == 1) {
    *s = bb->data.raw.slice_buffer.slices[0];
    return 0;
  }
  grpc_byte_buffer_reader rd;
  if (!grpc_byte_buffer_reader_init(&rd, bb)) return -1;
  *s = grpc_byte_buffer_reader_readall(&rd);
  grpc_byte_buffer_reader_destroy(&rd);
  *own = 1;
  return 0;
}

ProtobufCMessage *oee__rpc_unpack_with(const ProtobufCMessageDescriptor *desc, grpc_byte_buffer *bb,
                                       ProtobufCAllocator *alloc) {
  grpc_slice s;
  int own;
  if (bb == NULL || oee__rpc_contiguous(bb, &s, &own) != 0) return NULL;
  ProtobufCMessage *m =
      protobuf_c_message_unpack(desc, alloc, GRPC_SLICE_LENGTH(s), GRPC_SLICE_START_PTR(s));
  if (own) grpc_slice_unref(s);
  return m;
}

ProtobufCMessage *oee__rpc_unpack(const ProtobufCMessageDescriptor *desc, grpc_byte_buffer *bb) {
  return oee__rpc_unpack_with(desc, bb, NULL);
}

/* protobuf-c sets every byte it allocates (its default allocator is
 * malloc), so the arena need not zero them. */
static void *arena_alloc(void *arena, size_t n) { return oee_arena_alloc_raw(arena, n); }

static void arena_free(void *arena, void *p) {
  (void)arena;
  (void)p;
}

ProtobufCAllocator oee__rpc_arena_allocator(oee_arena *a) {
  return (ProtobufCAllocator){arena_alloc, arena_free, a};
}

char *oee__rpc_slice_strdup(grpc_slice s) {
  size_t n = GRPC_SLICE_LENGTH(s);
  char *p = malloc(n + 1);
  if (p == NULL) return NULL;
  memcpy(p, GRPC_SLICE_START_PTR(s), n);
  p[n] = '\0';
  return p;
}

void oee__rpc_size_args(int max_receive_bytes, int max_send_bytes, grpc_arg *args, size_t *n) {
  if (max_receive_bytes) {
    args[(*n)++] = (grpc_arg){.type = GRPC_ARG_INTEGER,
                              .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
                              .value.integer = max_receive_bytes};
  }
  if (max_send_bytes) {
    args[(*n)++] = (grpc_arg){.type = GRPC_ARG_INTEGER,
                              .key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH,
                              .value.integer = max_send_bytes};
  }
}
