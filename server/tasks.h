/*
 * tasks.h - the task RPCs of oee.v1.OrchestratorService: SubmitTask,
 * SubmitTasks, CancelTask, GetTask, ListTasks, ClearCompletedTasks.
 *
 * Each is an oee_unary_fn (server/handler.h) that service.c routes to by
 * generated method index. The server checks only its transport limits
 * (max_*_bytes, max_context_entries, max_batch); the core judges the fields
 * and its reason is passed through word for word.
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

grpc_status_code oee_h_submit_task(oee_service *s, const ProtobufCMessage *req, reply_ctx *out);
grpc_status_code oee_h_submit_tasks(oee_service *s, const ProtobufCMessage *req, reply_ctx *out);
grpc_status_code oee_h_cancel_task(oee_service *s, const ProtobufCMessage *req, reply_ctx *out);
grpc_status_code oee_h_get_task(oee_service *s, const ProtobufCMessage *req, reply_ctx *out);
grpc_status_code oee_h_list_tasks(oee_service *s, const ProtobufCMessage *req, reply_ctx *out);
grpc_status_code oee_h_clear_completed(oee_service *s, const ProtobufCMessage *req, reply_ctx *out);

#endif /* OEE_SERVER_TASKS_H */
