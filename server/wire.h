/*
 * wire.h - oee.v1.Task and the replies that carry tasks, written straight
 * from core snapshots as protobuf bytes, without building protobuf-c
 * messages first.
 *
 * Why: a protobuf-c message is packed by walking it twice at every level
 * of nesting (once to size each sub-message, once to write it), after it
 * was built field by field in an arena. A task in a SubmitTasks reply sits
 * three levels deep, so its timestamps were sized four times. Here a task
 * is sized once from the snapshot (string lengths, the varints of its
 * numbers) and written once; the outer messages are a few tags and
 * lengths around it. The bytes are exactly what protobuf-c packs for the
 * same message built field by field (tests/server/test_wire.c checks that
 * on edge and random tasks).
 *
 * The writers take a buffer of at least the size the matching sizer gave
 * and return the end of what they wrote.
 */
#ifndef OEE_SERVER_WIRE_H
#define OEE_SERVER_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "core/oee.h"

/* ---- protobuf primitives (proto3: a zero or empty field is not written) */

size_t oee_wire_varint_size(uint64_t v);
uint8_t *oee_wire_varint(uint8_t *p, uint64_t v);
/* A varint field; int32 and enum values are sign-extended to 64 bits, as
 * protobuf says (a negative one takes ten bytes). 0 is not written. */
size_t oee_wire_uint_field_size(uint32_t field, uint64_t v);
uint8_t *oee_wire_uint_field(uint8_t *p, uint32_t field, uint64_t v);
/* A string field; NULL and "" are not written. */
size_t oee_wire_str_field_size(uint32_t field, const char *s);
uint8_t *oee_wire_str_field(uint8_t *p, uint32_t field, const char *s);
/* The tag and length of a message field whose body is `len` bytes (always
 * written: a present sub-message is written even when empty). */
size_t oee_wire_msg_head_size(uint32_t field, size_t len);
uint8_t *oee_wire_msg_head(uint8_t *p, uint32_t field, size_t len);
/* A google.protobuf.Timestamp field from ns since the epoch; 0 ("not
 * reached") is not written, as oee_pb_time() leaves it unset. */
size_t oee_wire_time_field_size(uint32_t field, int64_t ns);
uint8_t *oee_wire_time_field(uint8_t *p, uint32_t field, int64_t ns);

/* ---- oee.v1.Task */

/* The packed size of the Task for snapshot t (the message body, without a
 * tag or length around it). */
size_t oee_wire_task_size(const oee_task_info *t);
/* Writes the Task body; `size` is what oee_wire_task_size(t) returned. */
uint8_t *oee_wire_task(uint8_t *p, const oee_task_info *t);
/* A Task as field `field` of an outer message: tag, length and body. */
size_t oee_wire_task_field_size(uint32_t field, const oee_task_info *t, size_t *task_size);
uint8_t *oee_wire_task_field(uint8_t *p, uint32_t field, const oee_task_info *t, size_t task_size);

#endif /* OEE_SERVER_WIRE_H */
