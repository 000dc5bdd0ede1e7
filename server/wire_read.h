/*
 * wire_read.h - SubmitTaskRequest and SubmitTasksRequest read straight from
 * their bytes into the same protobuf-c structs protobuf_c_message_unpack()
 * builds, in the call's arena, for the two methods that carry most of the
 * traffic.
 *
 * Only the plain encoding is read here: every field with its own wire
 * type, singular fields at most once, no field this server does not know,
 * varints of at most ten bytes, lengths inside the message. Anything else
 * (a field repeated that protobuf would merge, a packed or unknown field,
 * bytes that do not parse) returns NULL without judging, and the runtime
 * hands the bytes to protobuf-c, which decides as before. So a message is
 * either read here to the very struct protobuf-c would build
 * (tests/server/test_wire.c compares both on random and mutated requests),
 * or read by protobuf-c.
 *
 * NULL is also returned when the arena runs out of memory; the caller
 * tells the two apart with oee_arena_failed().
 */
#ifndef OEE_SERVER_WIRE_READ_H
#define OEE_SERVER_WIRE_READ_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "rpc/arena.h"

ProtobufCMessage *oee_wire_read_submit_task(const uint8_t *data, size_t len, oee_arena *a);
ProtobufCMessage *oee_wire_read_submit_tasks(const uint8_t *data, size_t len, oee_arena *a);

#endif /* OEE_SERVER_WIRE_READ_H */
