/* tasks.c - the task RPCs (see tasks.h). */
#include "server/tasks.h"

#include <stdatomic.h>
#include <stdio.h>
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

/* Turns a request into a core submission (context in the reply's arena).
 * On a transport limit or out of memory fills the message and returns its
 * code. The caller reserved the arena bytes first (submit_bytes). */
static grpc_status_code submission(oee_service *s, reply_ctx *out,
                                   const Oee__V1__SubmitTaskRequest *m, oee_submit *req) {
  int prio = m->priority_present_case == OEE__V1__SUBMIT_TASK_REQUEST__PRIORITY_PRESENT_PRIORITY
                 ? m->priority
                 : OEE_PRIORITY_DEFAULT;
  if (!within_limits(s->cfg, out, m)) return GRPC_STATUS_INVALID_ARGUMENT;
  oee_kv *kv = oee_arena_alloc(&out->arena, (m->n_context + 1) * sizeof(*kv));
  if (kv == NULL) return oee_reply_oom(out);
  for (size_t i = 0; i < m->n_context; i++) {
    kv[i].key = m->context[i]->key ? m->context[i]->key : "";
    kv[i].value = m->context[i]->value ? m->context[i]->value : "";
  }
  *req = (oee_submit){.name = m->name,
                      .task_type = m->task_type,
                      .priority = prio,
                      .context = kv,
                      .context_len = m->n_context};
  return GRPC_STATUS_OK;
}

/* A core result as a status code; the reason, when one is given, in the
 * reply's message (OEE_EIO: UNAVAILABLE "storage: <cause>"). */
static grpc_status_code refused(reply_ctx *out, int rc, const oee_error *err) {
  oee_error e = {.code = rc};
  return oee_reply_refused(out, err != NULL ? err : &e);
}

/* SubmitTask's answer, once the task is stored (commit thread, or the CQ
 * thread inside the engine call with the memory store). Its memory was
 * reserved before the engine accepted the task, so an accepted task is
 * never answered with an out-of-memory error. */
static void task_submitted(void *arg, int rc, const oee_task_info *t, const oee_error *err) {
  reply_ctx *out = arg;
  if (rc != 0) {
    oee_reply_send(out, refused(out, rc, err));
    return;
  }
  oee_reply_keep_task(out, oee_task_info_ref(t));
  Oee__V1__SubmitTaskResponse *resp = oee_arena_alloc(&out->arena, sizeof(*resp));
  if (resp == NULL) { /* not reached: reserved */
    oee_reply_send(out, oee_reply_oom(out));
    return;
  }
  oee__v1__submit_task_response__init(resp);
  resp->task_id = (char *)t->id;
  resp->task = oee_pb_task(&out->arena, t);
  out->msg = &resp->base;
  oee_reply_send(out, GRPC_STATUS_OK);
}

grpc_status_code oee_h_submit_task(oee_service *s, const ProtobufCMessage *req, reply_ctx *out) {
  const Oee__V1__SubmitTaskRequest *m = (const Oee__V1__SubmitTaskRequest *)req;
  size_t reply = OEE_ARENA_SIZE(sizeof(Oee__V1__SubmitTaskResponse));
  if (oee_arena_reserve(&out->arena, submit_bytes(m, reply)) != 0) return oee_reply_oom(out);
  oee_submit sub;
  grpc_status_code code = submission(s, out, m, &sub);
  if (code != GRPC_STATUS_OK) return code;
  oee_reply_defer(out); /* from here the callback may answer at any time */
  oee_error err;
  int rc = oee_engine_submit_async(s->eng, &sub, task_submitted, out, &err);
  if (rc != 0) oee_reply_send(out, refused(out, rc, &err));
  return GRPC_STATUS_OK;
}

/*
 * SubmitTasks: every entry is submitted asynchronously and the one reply is
 * sent when the last entry is settled. `left` counts the entries not settled
 * plus one for the handler, so the reply cannot be built while the handler
 * still fills entries. Callbacks (commit thread) touch only their own entry
 * (snaps[i], codes[i]) and the batch's storage message, never the arena; the
 * handler writes the refused entries' results; whoever settles last builds
 * the reply, in memory reserved before the first submission.
 */
typedef struct batch {
  reply_ctx *out;
  Oee__V1__SubmitTasksResponse *resp; /* results preallocated, n entries */
  size_t n;
  const oee_task_info **snaps; /* the stored snapshot (a reference), or NULL */
  grpc_status_code *codes;     /* a failed commit's code, else OK */
  atomic_flag said;            /* the first failed commit wrote `why` */
  char why[OEE_ERROR_MESSAGE_MAX];
  atomic_size_t left;
} batch;

typedef struct batch_entry {
  batch *b;
  size_t i;
} batch_entry;

static void release_batch(void *arg) {
  batch *b = arg;
  for (size_t i = 0; i < b->n; i++) {
    if (b->snaps[i]) oee_task_info_unref(b->snaps[i]);
  }
}

static void batch_reply(batch *b) {
  reply_ctx *out = b->out;
  for (size_t i = 0; i < b->n; i++) {
    Oee__V1__SubmitTaskResult *res = b->resp->results[i];
    if (b->snaps[i]) {
      res->task_id = (char *)b->snaps[i]->id;
      res->task = oee_pb_task(&out->arena, b->snaps[i]);
    } else if (b->codes[i] != GRPC_STATUS_OK) {
      res->code = (int32_t)b->codes[i];
      res->message = oee_arena_printf(&out->arena, "%s", b->why);
    }
  }
  out->msg = &b->resp->base;
  oee_reply_send(out, GRPC_STATUS_OK);
}

static void batch_settle(batch *b) {
  if (atomic_fetch_sub(&b->left, 1) == 1) batch_reply(b);
}

static void entry_submitted(void *arg, int rc, const oee_task_info *t, const oee_error *err) {
  batch_entry *e = arg;
  batch *b = e->b;
  if (rc == 0) {
    b->snaps[e->i] = oee_task_info_ref(t);
  } else {
    b->codes[e->i] = oee_status_from_error(rc);
    /* Commits fail a whole group at once, for one cause: one message. */
    if (!atomic_flag_test_and_set(&b->said)) {
      snprintf(b->why, sizeof(b->why), "%s",
               err && err->message[0] ? err->message : oee_strerror(rc));
    }
  }
  batch_settle(b);
}

/* Submits entry i; a refusal is written into its result at once. */
static void batch_submit(oee_service *s, batch *b, size_t i, const Oee__V1__SubmitTaskRequest *m) {
  reply_ctx *out = b->out;
  Oee__V1__SubmitTaskResult *res = b->resp->results[i];
  batch_entry *e = oee_arena_alloc(&out->arena, sizeof(*e));
  oee_submit sub;
  oee_error err;
  grpc_status_code code = e == NULL ? oee_reply_oom(out) : submission(s, out, m, &sub);
  if (code == GRPC_STATUS_OK) {
    *e = (batch_entry){b, i};
    int rc = oee_engine_submit_async(s->eng, &sub, entry_submitted, e, &err);
    if (rc == 0) return; /* settled by its callback */
    code = refused(out, rc, &err);
  }
  res->code = (int32_t)code;
  res->message = oee_arena_printf(&out->arena, "%s", out->err);
  batch_settle(b);
}

/* What one entry of a batch may take from the arena: its result, with a
 * task or a refusal's message, and its submission. */
static size_t entry_bytes(const Oee__V1__SubmitTaskRequest *m) {
  return OEE_ARENA_SIZE(sizeof(Oee__V1__SubmitTaskResult)) + OEE_ARENA_SIZE(sizeof(batch_entry)) +
         OEE_ARENA_SIZE(OEE_REPLY_MESSAGE_BYTES) + submit_bytes(m, 0);
}

/* The batch and its reply's skeleton, with the memory of every entry
 * reserved, or NULL when out of memory (nothing submitted yet). */
static batch *batch_new(reply_ctx *out, const Oee__V1__SubmitTasksRequest *m) {
  size_t n = m->n_requests, bytes = 0;
  for (size_t i = 0; i < n; i++) bytes += entry_bytes(m->requests[i]);
  batch *b = oee_arena_alloc(&out->arena, sizeof(*b));
  if (b == NULL) return NULL;
  b->out = out;
  b->n = n;
  b->snaps = oee_arena_alloc(&out->arena, n * sizeof(*b->snaps));
  b->codes = oee_arena_alloc(&out->arena, n * sizeof(*b->codes));
  b->resp = oee_arena_alloc(&out->arena, sizeof(*b->resp));
  Oee__V1__SubmitTaskResult **results = oee_arena_alloc(&out->arena, n * sizeof(*results));
  if (b->snaps == NULL || b->codes == NULL || b->resp == NULL || results == NULL) return NULL;
  for (size_t i = 0; i < n; i++) {
    results[i] = oee_arena_alloc(&out->arena, sizeof(**results));
    if (results[i] == NULL) return NULL;
    oee__v1__submit_task_result__init(results[i]);
    b->snaps[i] = NULL;
    b->codes[i] = GRPC_STATUS_OK;
  }
  if (oee_arena_reserve(&out->arena, bytes) != 0) return NULL;
  oee__v1__submit_tasks_response__init(b->resp);
  b->resp->results = results;
  b->resp->n_results = n;
  atomic_flag_clear(&b->said);
  b->why[0] = '\0';
  atomic_init(&b->left, n + 1);
  return b;
}

grpc_status_code oee_h_submit_tasks(oee_service *s, const ProtobufCMessage *req, reply_ctx *out) {
  const Oee__V1__SubmitTasksRequest *m = (const Oee__V1__SubmitTasksRequest *)req;
  size_t n = m->n_requests;
  if (n == 0 || n > s->cfg->max_batch) {
    oee_reply_say(out, "a batch must hold 1 to max_batch=%zu requests, got %zu", s->cfg->max_batch,
                  n);
    return GRPC_STATUS_INVALID_ARGUMENT;
  }
  batch *b = batch_new(out, m);
  if (b == NULL) return oee_reply_oom(out);
  oee_reply_release(out, release_batch, b);
  oee_reply_defer(out);
  for (size_t i = 0; i < n; i++) batch_submit(s, b, i, m->requests[i]);
  batch_settle(b); /* the handler's own count: the reply may go now */
  return GRPC_STATUS_OK;
}

/* ------------------------------------------------------- cancel and get */

/* CancelTask's answer: at once, or (durable engine, queued task) once the
 * CANCELLED change is stored. Its memory was reserved first. */
static void task_cancelled(void *arg, int rc, int cancelled, const oee_task_info *t) {
  reply_ctx *out = arg;
  if (rc != 0) {
    oee_reply_send(out, refused(out, rc, NULL));
    return;
  }
  oee_reply_keep_task(out, oee_task_info_ref(t));
  Oee__V1__CancelTaskResponse *resp = oee_arena_alloc(&out->arena, sizeof(*resp));
  if (resp == NULL) { /* not reached: reserved */
    oee_reply_send(out, oee_reply_oom(out));
    return;
  }
  oee__v1__cancel_task_response__init(resp);
  resp->cancelled = cancelled;
  resp->task = oee_pb_task(&out->arena, t);
  out->msg = &resp->base;
  oee_reply_send(out, GRPC_STATUS_OK);
}

grpc_status_code oee_h_cancel_task(oee_service *s, const ProtobufCMessage *req, reply_ctx *out) {
  const Oee__V1__CancelTaskRequest *m = (const Oee__V1__CancelTaskRequest *)req;
  if (!oee_reply_check_id(out, "task_id", m->task_id)) return GRPC_STATUS_INVALID_ARGUMENT;
  const oee_task_info *t;
  /* The reply's memory first (its size depends on the task's context),
   * so a task is never cancelled for a caller told it ran out of memory. */
  if (oee_engine_get(s->eng, m->task_id, &t) == 0) {
    size_t bytes =
        OEE_ARENA_SIZE(sizeof(Oee__V1__CancelTaskResponse)) + oee_pb_task_bytes(t->context_len);
    oee_task_info_unref(t);
    if (oee_arena_reserve(&out->arena, bytes) != 0) return oee_reply_oom(out);
  }
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
