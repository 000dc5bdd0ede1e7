/*
 * convert.h - core snapshots and results to oee.v1 messages, and the
 * request-side enums and tokens back.
 *
 * Messages are built in an arena and BORROW strings from the snapshots and
 * results they come from: those must stay alive until the message is packed.
 * When the arena runs out of memory a builder returns NULL or a message
 * with parts missing, never a dangling pointer: check oee_arena_failed()
 * before packing what was built.
 */
#ifndef OEE_SERVER_CONVERT_H
#define OEE_SERVER_CONVERT_H

#include <stdint.h>

#include "core/oee.h"
#include "core/oee_pipeline.h"
#include "proto/oee/v1/orchestrator.pb-c.h"
#include "rpc/arena.h"

/* NULL for 0 ("not reached"). */
Google__Protobuf__Timestamp *oee_pb_time(oee_arena *a, int64_t ns);
/* The seconds of a Timestamp's valid range: 0001-01-01T00:00:00Z to
 * 9999-12-31T23:59:59Z, as google/protobuf/timestamp.proto defines it. */
#define OEE_PB_TIME_MIN_SECONDS INT64_C(-62135596800)
#define OEE_PB_TIME_MAX_SECONDS INT64_C(253402300799)
/* A request's Timestamp as ns since the epoch: 0, or -1 when it lies
 * outside years 1..9999 or its nanos outside 0..999999999. The engine's
 * int64 ns end in 1677 and 2262: a valid time beyond is clamped to the
 * nearest one they hold (the engine treats every past time alike, and
 * 2262 is as far off as 9999 for a task waiting for it). */
int oee_pb_time_ns(const Google__Protobuf__Timestamp *ts, int64_t *ns);
/* Tasks are not built as messages: server/wire.h writes them as bytes. */
Oee__V1__QueueStatus *oee_pb_queue_status(oee_arena *a, const oee_status *st);
Oee__V1__SystemStatus *oee_pb_system_status(oee_arena *a, const oee_status *st,
                                            const char *version);
Oee__V1__PipelineResult *oee_pb_pipeline_result(oee_arena *a, const oee_pipeline_result *r);

/* "v1.<hex index>" <-> index; -1 for a token that does not parse. */
char *oee_page_token(oee_arena *a, uint64_t next_index);
int oee_page_token_parse(const char *token, uint64_t *after_index);

#endif /* OEE_SERVER_CONVERT_H */
