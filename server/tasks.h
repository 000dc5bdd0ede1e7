/*
 * tasks.h - the task RPCs of oee.v1.OrchestratorService other than the
 * submissions (submit.h): CancelTask, GetTask, ListTasks,
 * ClearCompletedTasks and RetryTask.
 *
 * Each is an oee_unary_fn (server/handler.h) that service.c routes to by
 * generated method index. The server checks only the transport (a task_id
 * must be a UUID, page tokens are its own); the core judges the rest and
 * its reason is passed through word for word.
 */
#ifndef OEE_SERVER_TASKS_H
#define OEE_SERVER_TASKS_H

#include "server/handler.h"

/* ListTasks page size when the request leaves it 0, and the most a page
 * holds whatever the request asks. */
#define OEE_LIST_DEFAULT_PAGE_SIZE 100
#define OEE_LIST_MAX_PAGE_SIZE 1000
/* ClearCompletedTasks keeps this many finished tasks when keep_recent is
 * not set. */
#define OEE_CLEAR_DEFAULT_KEEP_RECENT 100

grpc_status_code oee_h_cancel_task(oee_service *s, const ProtobufCMessage *req, reply_ctx *out);
grpc_status_code oee_h_get_task(oee_service *s, const ProtobufCMessage *req, reply_ctx *out);
grpc_status_code oee_h_list_tasks(oee_service *s, const ProtobufCMessage *req, reply_ctx *out);
grpc_status_code oee_h_clear_completed(oee_service *s, const ProtobufCMessage *req, reply_ctx *out);
/* RetryTask: a task in ERROR or CANCELLED queued again (core's
 * oee_engine_retry_async), answered once the change is stored.
 * FAILED_PRECONDITION (core's OEE_ESTATE) for any other status, with the
 * core's reason; INVALID_ARGUMENT; NOT_FOUND. */
grpc_status_code oee_h_retry_task(oee_service *s, const ProtobufCMessage *req, reply_ctx *out);

#endif /* OEE_SERVER_TASKS_H */
