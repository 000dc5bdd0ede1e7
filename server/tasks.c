/* tasks.c - the task RPCs (see tasks.h). */
#include "server/tasks.h"

#include <stdlib.h>
#include <string.h>

#include "oee/v1/orchestrator.pb-c.h"
#include "server/convert.h"
#include "server/errmap.h"
#include "server/log.h"
#include "server/service.h"

/* ------------------------------------------------------------ submit */

/* Checks the size limits of a submission; fills the message when one is hit. */
static int within_limits(const oee_server_config *cfg, reply_ctx *out,
                         const Oee__V1__SubmitTaskRequest *m) {
  size_t name = strlen(m->name), type = strlen(m->task_type), bytes = 0;
  if (name > cfg->max_name_bytes) {
    return oee_reply_say(out, "name is %zu bytes; the limit max_name_bytes is %zu", name,
                         cfg->max_name_bytes);
  }
  if (type > cfg->max_type_bytes) {
    return oee_reply_say(out, "task_type is %zu bytes; the limit max_type_bytes is %zu", type,
                         cfg->max_type_bytes);
  }
  if (m->n_context > cfg->max_context_entries) {
    return oee_reply_say(out, "context has %zu entries; the limit max_context_entries is %zu",
                         m->n_context, cfg->max_context_entries);
  }
  for (size_t i = 0; i < m->n_context; i++) {
    bytes += strlen(m->context[i]->key ? m->context[i]->key : "");
    bytes += strlen(m->context[i]->value ? m->context[i]->value : "");
  }
  if (bytes > cfg->max_context_bytes) {
    return oee_reply_say(out, "context holds %zu bytes; the limit max_context_bytes is %zu", bytes,
                         cfg->max_context_bytes);
  }
  return 1;
}

/* Arena bytes one submission takes (its context as core key/values) and
 * its reply (`reply` bytes around the task) at most. */
static size_t submit_bytes(const Oee__V1__SubmitTaskRequest *m, size_t reply) {
  return OEE_ARENA_SIZE((m->n_context + 1) * sizeof(oee_kv)) + reply +
         oee_pb_task_bytes(m->n_context);
}

/* Submits one request; on a refusal fills the message. The memory of the
 * reply (`reply` bytes besides the task, see submit_bytes) is reserved
 * before the engine accepts the task, so an accepted task is never
 * answered with an out-of-memory error. */
static grpc_status_code submit_one(oee_service *s, reply_ctx *out,
                                   const Oee__V1__SubmitTaskRequest *m, size_t reply,
                                   const oee_task_info **task) {
  int prio = m->priority_present_case == OEE__V1__SUBMIT_TASK_REQUEST__PRIORITY_PRESENT_PRIORITY
                 ? m->priority
                 : OEE_PRIORITY_DEFAULT;
  if (!within_limits(s->cfg, out, m)) return GRPC_STATUS_INVALID_ARGUMENT;
  if (oee_arena_reserve(&out->arena, submit_bytes(m, reply)) != 0) return oee_reply_oom(out);
  oee_kv *kv = oee_arena_alloc(&out->arena, (m->n_context + 1) * sizeof(*kv));
  if (kv == NULL) return oee_reply_oom(out);
  for (size_t i = 0; i < m->n_context; i++) {
    kv[i].key = m->context[i]->key ? m->context[i]->key : "";
    kv[i].value = m->context[i]->value ? m->context[i]->value : "";
  }
  oee_submit req = {m->name, m->task_type, prio, kv, m->n_context};
  oee_error err;
  if (oee_engine_submit(s->eng, &req, task, &err) != 0) return oee_reply_refused(out, &err);
  return GRPC_STATUS_OK;
}

grpc_status_code oee_h_submit_task(oee_service *s, const ProtobufCMessage *req, reply_ctx *out) {
  const oee_task_info *t;
  size_t reply = OEE_ARENA_SIZE(sizeof(Oee__V1__SubmitTaskResponse));
  grpc_status_code code = submit_one(s, out, (const Oee__V1__SubmitTaskRequest *)req, reply, &t);
  if (code != GRPC_STATUS_OK) return code;
  oee_reply_keep_task(out, t);
  Oee__V1__SubmitTaskResponse *resp = oee_arena_alloc(&out->arena, sizeof(*resp));
  if (resp == NULL) return oee_reply_oom(out); /* not reached: reserved */
  oee__v1__submit_task_response__init(resp);
  resp->task_id = (char *)t->id;
  resp->task = oee_pb_task(&out->arena, t);
  out->msg = &resp->base;
  return GRPC_STATUS_OK;
}

/* The snapshots a batch reply borrows from, released after packing. */
typedef struct batch {
  size_t n;
  const oee_task_info **snaps; /* n entries, NULL where refused */
} batch;

static void release_batch(void *arg) {
  batch *b = arg;
  for (size_t i = 0; i < b->n; i++) {
    if (b->snaps[i]) oee_task_info_unref(b->snaps[i]);
  }
}

/* What one entry of a batch may take from the arena: its result, with a
 * task or a refusal's message. Reserved for the whole batch before the
 * first submission, so a batch is answered in full once a task of it was
 * accepted. */
static size_t entry_bytes(const Oee__V1__SubmitTaskRequest *m) {
  return OEE_ARENA_SIZE(sizeof(Oee__V1__SubmitTaskResult)) +
         OEE_ARENA_SIZE(OEE_REPLY_MESSAGE_BYTES) + submit_bytes(m, 0);
}

static Oee__V1__SubmitTaskResult *batch_entry(oee_service *s, reply_ctx *out,
                                              const Oee__V1__SubmitTaskRequest *m,
                                              const oee_task_info **snap) {
  Oee__V1__SubmitTaskResult *res = oee_arena_alloc(&out->arena, sizeof(*res));
  *snap = NULL;
  if (res == NULL) return NULL; /* not reached: reserved (see entry_bytes) */
  oee__v1__submit_task_result__init(res);
  grpc_status_code code = submit_one(s, out, m, 0, snap);
  res->code = (int32_t)code;
  if (code == GRPC_STATUS_OK) {
    res->task_id = (char *)(*snap)->id;
    res->task = oee_pb_task(&out->arena, *snap);
  } else {
    *snap = NULL;
    res->message = oee_arena_printf(&out->arena, "%s", out->err);
  }
  return res;
}

grpc_status_code oee_h_submit_tasks(oee_service *s, const ProtobufCMessage *req, reply_ctx *out) {
  const Oee__V1__SubmitTasksRequest *m = (const Oee__V1__SubmitTasksRequest *)req;
  size_t n = m->n_requests;
  if (n == 0 || n > s->cfg->max_batch) {
    oee_reply_say(out, "a batch must hold 1 to max_batch=%zu requests, got %zu", s->cfg->max_batch,
                  n);
    return GRPC_STATUS_INVALID_ARGUMENT;
  }
  size_t bytes = 0;
  for (size_t i = 0; i < n; i++) bytes += entry_bytes(m->requests[i]);
  batch *b = oee_arena_alloc(&out->arena, sizeof(*b));
  const oee_task_info **snaps = oee_arena_alloc(&out->arena, n * sizeof(*snaps));
  Oee__V1__SubmitTasksResponse *resp = oee_arena_alloc(&out->arena, sizeof(*resp));
  Oee__V1__SubmitTaskResult **results = oee_arena_alloc(&out->arena, n * sizeof(*results));
  if (b == NULL || snaps == NULL || resp == NULL || results == NULL ||
      oee_arena_reserve(&out->arena, bytes) != 0) {
    return oee_reply_oom(out); /* nothing submitted yet */
  }
  b->snaps = snaps;
  oee__v1__submit_tasks_response__init(resp);
  resp->results = results;
  oee_reply_release(out, release_batch, b);
  for (size_t i = 0; i < n; i++) {
    resp->results[i] = batch_entry(s, out, m->requests[i], &b->snaps[i]);
    b->n = i + 1;
  }
  resp->n_results = n;
  out->msg = &resp->base;
  return GRPC_STATUS_OK;
}

/* ------------------------------------------------------- cancel and get */

grpc_status_code oee_h_cancel_task(oee_service *s, const ProtobufCMessage *req, reply_ctx *out) {
  const Oee__V1__CancelTaskRequest *m = (const Oee__V1__CancelTaskRequest *)req;
  if (!oee_reply_check_id(out, "task_id", m->task_id)) return GRPC_STATUS_INVALID_ARGUMENT;
  int cancelled = 0;
  const oee_task_info *t;
  /* The reply's memory first (its size depends on the task's context),
   * so a task is never cancelled for a caller told it ran out of memory. */
  if (oee_engine_get(s->eng, m->task_id, &t) == 0) {
    size_t bytes =
        OEE_ARENA_SIZE(sizeof(Oee__V1__CancelTaskResponse)) + oee_pb_task_bytes(t->context_len);
    oee_task_info_unref(t);
    if (oee_arena_reserve(&out->arena, bytes) != 0) return oee_reply_oom(out);
  }
  int rc = oee_engine_cancel(s->eng, m->task_id, &cancelled, &t);
  if (rc != 0) return oee_reply_lookup_failed(out, rc, m->task_id, "");
  oee_reply_keep_task(out, t);
  Oee__V1__CancelTaskResponse *resp = oee_arena_alloc(&out->arena, sizeof(*resp));
  if (resp == NULL) return oee_reply_oom(out); /* not reached: reserved */
  oee__v1__cancel_task_response__init(resp);
  resp->cancelled = cancelled;
  resp->task = oee_pb_task(&out->arena, t);
  out->msg = &resp->base;
  return GRPC_STATUS_OK;
}

grpc_status_code oee_h_get_task(oee_service *s, const ProtobufCMessage *req, reply_ctx *out) {
  const Oee__V1__GetTaskRequest *m = (const Oee__V1__GetTaskRequest *)req;
  if (!oee_reply_check_id(out, "task_id", m->task_id)) return GRPC_STATUS_INVALID_ARGUMENT;
  const oee_task_info *t;
  int rc = oee_engine_get(s->eng, m->task_id, &t);
  if (rc != 0) return oee_reply_lookup_failed(out, rc, m->task_id, "");
  oee_reply_keep_task(out, t);
  Oee__V1__Task *task = oee_pb_task(&out->arena, t);
  if (task == NULL) return oee_reply_oom(out);
  out->msg = &task->base;
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
  Oee__V1__ListTasksResponse *resp = oee_arena_alloc(&out->arena, sizeof(*resp));
  Oee__V1__Task **tasks = oee_arena_alloc(&out->arena, (page->len + 1) * sizeof(*tasks));
  if (resp == NULL || tasks == NULL) return oee_reply_oom(out);
  oee__v1__list_tasks_response__init(resp);
  resp->n_tasks = page->len;
  resp->tasks = tasks;
  for (size_t i = 0; i < page->len; i++) tasks[i] = oee_pb_task(&out->arena, page->tasks[i]);
  resp->next_page_token = oee_page_token(&out->arena, page->next_index);
  resp->total_size = (int32_t)page->total;
  out->msg = &resp->base;
  return GRPC_STATUS_OK;
}

/* --------------------------------------------------------------- clear */

grpc_status_code oee_h_clear_completed(oee_service *s, const ProtobufCMessage *req,
                                       reply_ctx *out) {
  const Oee__V1__ClearCompletedTasksRequest *m = (const Oee__V1__ClearCompletedTasksRequest *)req;
  long keep = m->keep_recent_present_case ==
                      OEE__V1__CLEAR_COMPLETED_TASKS_REQUEST__KEEP_RECENT_PRESENT_KEEP_RECENT
                  ? m->keep_recent
                  : OEE_CLEAR_DEFAULT_KEEP_RECENT;
  /* The reply first: once tasks are cleared the caller must hear of it. */
  Oee__V1__ClearCompletedTasksResponse *resp = oee_arena_alloc(&out->arena, sizeof(*resp));
  if (resp == NULL) return oee_reply_oom(out);
  /* The core refuses a negative count; the words are the server's because
   * the core answers this call with a bare code. */
  long cleared = oee_engine_clear_completed(s->eng, keep);
  if (cleared < 0) {
    oee_reply_say(out, "keep_recent must not be negative, got %ld", keep);
    return oee_status_from_error((int)cleared);
  }
  oee__v1__clear_completed_tasks_response__init(resp);
  resp->cleared = (int32_t)cleared;
  oee_log(OEE_LOG_INFO, "tasks_cleared", "cleared=%d keep_recent=%ld", resp->cleared, keep);
  out->msg = &resp->base;
  return GRPC_STATUS_OK;
}
