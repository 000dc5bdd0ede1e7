/* tasks.c - the task RPCs other than the submissions (see tasks.h). */
#include "server/tasks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oee/v1/orchestrator.pb-c.h"
#include "server/convert.h"
#include "server/errmap.h"
#include "server/log.h"
#include "server/service.h"
#include "server/wire.h"

/* A core result as a status code; the reason, when one is given, in the
 * reply's message (OEE_EIO: UNAVAILABLE "storage: <cause>"). */
static grpc_status_code refused(reply_ctx *out, int rc, const oee_error *err) {
  oee_error e = {.code = rc};
  return oee_reply_refused(out, err != NULL ? err : &e);
}

/* ------------------------------------------------------- cancel and get */

/* CancelTask's answer: at once, or (durable engine, queued task) once the
 * CANCELLED change is stored. The reply is written as bytes. */
static void task_cancelled(void *arg, int rc, int cancelled, const oee_task_info *t) {
  reply_ctx *out = arg;
  if (rc != 0) {
    oee_reply_send(out, refused(out, rc, NULL));
    return;
  }
  /* CancelTaskResponse: cancelled = 1, task = 2 (server/wire.h). */
  size_t task_size, n = oee_wire_uint_field_size(1, (uint64_t)(cancelled != 0)) +
                        oee_wire_task_field_size(2, t, &task_size);
  uint8_t *p = oee_reply_bytes(out, n);
  p = oee_wire_uint_field(p, 1, (uint64_t)(cancelled != 0));
  (void)oee_wire_task_field(p, 2, t, task_size);
  oee_reply_send(out, GRPC_STATUS_OK);
}

/* The reply is written as bytes, which cannot run out (gRPC's allocator
 * aborts), so a task is never cancelled for a caller told it ran out of
 * memory. */
grpc_status_code oee_h_cancel_task(oee_service *s, const ProtobufCMessage *req, reply_ctx *out) {
  const Oee__V1__CancelTaskRequest *m = (const Oee__V1__CancelTaskRequest *)req;
  if (!oee_reply_check_id(out, "task_id", m->task_id)) return GRPC_STATUS_INVALID_ARGUMENT;
  oee_reply_defer(out); /* from here the callback may answer at any time */
  int rc = oee_engine_cancel_async(s->eng, m->task_id, task_cancelled, out);
  if (rc != 0) oee_reply_send(out, oee_reply_lookup_failed(out, rc, m->task_id, ""));
  return GRPC_STATUS_OK;
}

grpc_status_code oee_h_get_task(oee_service *s, const ProtobufCMessage *req, reply_ctx *out) {
  const Oee__V1__GetTaskRequest *m = (const Oee__V1__GetTaskRequest *)req;
  if (!oee_reply_check_id(out, "task_id", m->task_id)) return GRPC_STATUS_INVALID_ARGUMENT;
  const oee_task_info *t;
  int rc = oee_engine_get(s->eng, m->task_id, &t);
  if (rc != 0) return oee_reply_lookup_failed(out, rc, m->task_id, "");
  /* The reply is the Task itself (server/wire.h). */
  size_t n = oee_wire_task_size(t);
  (void)oee_wire_task(oee_reply_bytes(out, n), t);
  oee_task_info_unref(t);
  return GRPC_STATUS_OK;
}

/* --------------------------------------------------------------- retry */

/* A retry the engine refused: NOT_FOUND in GetTask's words for an unknown
 * id, else the core's reason (OEE_ESTATE: FAILED_PRECONDITION naming the
 * task's status). */
static grpc_status_code retry_refused(reply_ctx *out, int rc, const char *id,
                                      const oee_error *err) {
  if (rc == OEE_ENOENT) return oee_reply_lookup_failed(out, rc, id, "");
  return refused(out, rc, err != NULL && err->code == rc ? err : NULL);
}

/* RetryTask's answer, once the change is stored (commit thread), or inside
 * the engine call (memory store). The reply is written as bytes. */
static void task_retried(void *arg, int rc, const oee_task_info *t, const oee_error *err) {
  reply_ctx *out = arg;
  if (rc != 0) {
    const Oee__V1__RetryTaskRequest *m =
        (const Oee__V1__RetryTaskRequest *)oee_rpc_call_request(out->call);
    oee_reply_send(out, retry_refused(out, rc, m->task_id, err));
    return;
  }
  /* The reply is the Task (server/wire.h), written while t is held. */
  (void)oee_wire_task(oee_reply_bytes(out, oee_wire_task_size(t)), t);
  oee_reply_send(out, GRPC_STATUS_OK);
}

grpc_status_code oee_h_retry_task(oee_service *s, const ProtobufCMessage *req, reply_ctx *out) {
  const Oee__V1__RetryTaskRequest *m = (const Oee__V1__RetryTaskRequest *)req;
  if (!oee_reply_check_id(out, "task_id", m->task_id)) return GRPC_STATUS_INVALID_ARGUMENT;
  /* The reply is written as bytes, which cannot run out, so a task is
   * never queued again for a caller told the server ran out of memory. */
  oee_reply_defer(out); /* from here the callback may answer at any time */
  oee_error err = {0};
  int rc = oee_engine_retry_async(s->eng, m->task_id, task_retried, out, &err);
  if (rc != 0) oee_reply_send(out, retry_refused(out, rc, m->task_id, &err));
  return GRPC_STATUS_OK;
}

/* ---------------------------------------------------------------- list */

/* Turns the request into a core query; the wire's int32 page size and its
 * token are the server's to decode. The core judges the status filter. */
static int list_query(reply_ctx *out, const Oee__V1__ListTasksRequest *m, oee_list_query *q) {
  if (m->page_size < 0) {
    return oee_reply_say(out, "page_size must not be negative, got %d", m->page_size);
  }
  if (oee_page_token_parse(m->page_token, &q->after_index) != 0) {
    return oee_reply_say(out, "page_token \"%.64s\" is not a token this server issued",
                         m->page_token);
  }
  q->status = (oee_task_status)m->status_filter;
  q->task_type = m->task_type_filter;
  q->limit = m->page_size == 0                       ? OEE_LIST_DEFAULT_PAGE_SIZE
             : m->page_size > OEE_LIST_MAX_PAGE_SIZE ? OEE_LIST_MAX_PAGE_SIZE
                                                     : (size_t)m->page_size;
  return 1;
}

static void release_page(void *page) { oee_list_page_free(page); }

grpc_status_code oee_h_list_tasks(oee_service *s, const ProtobufCMessage *req, reply_ctx *out) {
  const Oee__V1__ListTasksRequest *m = (const Oee__V1__ListTasksRequest *)req;
  oee_list_query q = {0};
  if (!list_query(out, m, &q)) return GRPC_STATUS_INVALID_ARGUMENT;
  oee_list_page *page = oee_arena_alloc(&out->arena, sizeof(*page));
  if (page == NULL) return oee_reply_oom(out);
  int rc = oee_engine_list(s->eng, &q, page);
  if (rc == OEE_EINVAL) {
    oee_reply_say(out, "status_filter %d is not a TaskStatus", (int)m->status_filter);
    return GRPC_STATUS_INVALID_ARGUMENT;
  }
  if (rc != 0) {
    oee_reply_say(out, "list failed: %s", oee_strerror(rc));
    return oee_status_from_error(rc);
  }
  oee_reply_release(out, release_page, page);
  char *token = oee_page_token(&out->arena, page->next_index);
  size_t *sizes = oee_arena_alloc_raw(&out->arena, (page->len + 1) * sizeof(*sizes));
  if (token == NULL || sizes == NULL) return oee_reply_oom(out);
  /* ListTasksResponse: tasks = 1, next_page_token = 2, total_size = 3,
   * written as bytes (server/wire.h). */
  uint64_t total = (uint64_t)(int64_t)(int32_t)page->total;
  size_t n = oee_wire_str_field_size(2, token) + oee_wire_uint_field_size(3, total);
  for (size_t i = 0; i < page->len; i++)
    n += oee_wire_task_field_size(1, page->tasks[i], &sizes[i]);
  uint8_t *p = oee_reply_bytes(out, n);
  for (size_t i = 0; i < page->len; i++) p = oee_wire_task_field(p, 1, page->tasks[i], sizes[i]);
  p = oee_wire_str_field(p, 2, token);
  (void)oee_wire_uint_field(p, 3, total);
  return GRPC_STATUS_OK;
}

/* --------------------------------------------------------------- clear */

/* ClearCompletedTasks' answer, once the deletions are stored. */
typedef struct clear_call {
  reply_ctx *out;
  long keep;
  Oee__V1__ClearCompletedTasksResponse *resp; /* reserved in the arena */
} clear_call;

static void tasks_cleared(void *arg, int rc, long n, const oee_error *err) {
  clear_call *c = arg;
  reply_ctx *out = c->out;
  if (rc != 0) {
    oee_reply_send(out, refused(out, rc, err));
    return;
  }
  oee__v1__clear_completed_tasks_response__init(c->resp);
  c->resp->cleared = (int32_t)n;
  oee_log(OEE_LOG_INFO, "tasks_cleared", "cleared=%ld keep_recent=%ld", n, c->keep);
  out->msg = &c->resp->base;
  oee_reply_send(out, GRPC_STATUS_OK);
}

grpc_status_code oee_h_clear_completed(oee_service *s, const ProtobufCMessage *req,
                                       reply_ctx *out) {
  const Oee__V1__ClearCompletedTasksRequest *m = (const Oee__V1__ClearCompletedTasksRequest *)req;
  long keep = m->keep_recent_present_case ==
                      OEE__V1__CLEAR_COMPLETED_TASKS_REQUEST__KEEP_RECENT_PRESENT_KEEP_RECENT
                  ? m->keep_recent
                  : OEE_CLEAR_DEFAULT_KEEP_RECENT;
  if (keep < 0) {
    oee_reply_say(out, "keep_recent must not be negative, got %ld", keep);
    return GRPC_STATUS_INVALID_ARGUMENT;
  }
  /* The reply first: once tasks are cleared the caller must hear of it. */
  clear_call *c = oee_arena_alloc(&out->arena, sizeof(*c));
  Oee__V1__ClearCompletedTasksResponse *resp = oee_arena_alloc(&out->arena, sizeof(*resp));
  if (c == NULL || resp == NULL) return oee_reply_oom(out);
  *c = (clear_call){out, keep, resp};
  oee_reply_defer(out); /* from here the callback may answer at any time */
  int rc = oee_engine_clear_completed_async(s->eng, keep, tasks_cleared, c);
  if (rc != 0) oee_reply_send(out, refused(out, rc, NULL));
  return GRPC_STATUS_OK;
}
