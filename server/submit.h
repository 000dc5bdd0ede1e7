/*
 * submit.h - SubmitTask and SubmitTasks, as oee_unary_fn handlers
 * (server/handler.h), and the one mapping of a SubmitTaskRequest to a core
 * submission that both use.
 *
 * The server checks only what belongs to the transport: its size limits
 * (max_*_bytes, max_context_entries, max_batch), the range of a
 * google.protobuf.Timestamp, presence (the `*_present` oneofs), and the
 * "#<index>" references of SubmitTasks, which name entries of the request
 * itself. The core judges every field's value and its reason is passed
 * through word for word.
 */
#ifndef OEE_SERVER_SUBMIT_H
#define OEE_SERVER_SUBMIT_H

#include "oee/v1/orchestrator.pb-c.h"
#include "server/handler.h"

/* The prefix of a depends_on entry that names an entry of the same
 * SubmitTasks batch ("#0" is its first entry). */
#define OEE_BATCH_REF_PREFIX '#'

grpc_status_code oee_h_submit_task(oee_service *s, const ProtobufCMessage *req, reply_ctx *out);
grpc_status_code oee_h_submit_tasks(oee_service *s, const ProtobufCMessage *req, reply_ctx *out);

/*
 * Turns a request into a core submission: its context as core key/values in
 * out's arena, presence flags from the oneofs, run_at as ns. *sub borrows
 * the request's strings (depends_on included, "#" entries as they are) and
 * the arena. On a transport limit, a bad Timestamp or out of memory it
 * fills out->err and returns the code. The caller reserved
 * oee_submit_bytes() in the arena first.
 */
grpc_status_code oee_submission(oee_service *s, reply_ctx *out, const Oee__V1__SubmitTaskRequest *m,
                                oee_submit *sub);
/* Arena bytes oee_submission() takes at most for request m, plus `reply`
 * bytes the caller builds beside it. (A reply holding the new task is
 * written as bytes, server/wire.h, outside the arena.) */
size_t oee_submit_bytes(const Oee__V1__SubmitTaskRequest *m, size_t reply);

#endif /* OEE_SERVER_SUBMIT_H */
