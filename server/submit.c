/* submit.c - SubmitTask and the request -> core submission mapping (see
 * submit.h; SubmitTasks is in batch.c). */
#include "server/submit.h"

#include <string.h>

#include "server/convert.h"
#include "server/service.h"
#include "server/wire.h"

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

size_t oee_submit_bytes(const Oee__V1__SubmitTaskRequest *m, size_t reply) {
  return OEE_ARENA_SIZE((m->n_context + 1) * sizeof(oee_kv)) + reply;
}

/*
 * The task-semantics fields. Presence comes from the oneofs; the values are
 * the core's to judge (ranges, NaN, key length, ids), except two things the
 * core cannot see: a Timestamp's range is a rule of its wire format, and an
 * explicit max_attempts 0 would read as "unset" in oee_submit, where 0
 * means the engine's default.
 */
static int semantics(reply_ctx *out, const Oee__V1__SubmitTaskRequest *m, oee_submit *sub) {
  if (m->max_attempts_present_case ==
      OEE__V1__SUBMIT_TASK_REQUEST__MAX_ATTEMPTS_PRESENT_MAX_ATTEMPTS) {
    if (m->max_attempts == 0) {
      return oee_reply_say(out, "max_attempts must be 1..%d, got 0", OEE_MAX_ATTEMPTS_LIMIT);
    }
    sub->max_attempts = m->max_attempts;
  }
  sub->has_backoff = m->backoff_seconds_present_case ==
                     OEE__V1__SUBMIT_TASK_REQUEST__BACKOFF_SECONDS_PRESENT_BACKOFF_SECONDS;
  sub->backoff_seconds = m->backoff_seconds;
  sub->has_max_backoff =
      m->max_backoff_seconds_present_case ==
      OEE__V1__SUBMIT_TASK_REQUEST__MAX_BACKOFF_SECONDS_PRESENT_MAX_BACKOFF_SECONDS;
  sub->max_backoff_seconds = m->max_backoff_seconds;
  sub->timeout_seconds = m->timeout_seconds;
  if (m->run_at != NULL) {
    if (oee_pb_time_ns(m->run_at, &sub->run_at_ns) != 0) {
      return oee_reply_say(out,
                           "run_at must be a Timestamp in years 1..9999 with nanos 0..999999999, "
                           "got seconds=%lld nanos=%d",
                           (long long)m->run_at->seconds, (int)m->run_at->nanos);
    }
    sub->has_run_at = 1;
  }
  sub->idempotency_key = m->idempotency_key;
  sub->depends_on = (const char *const *)m->depends_on;
  sub->depends_on_len = m->n_depends_on;
  return 1;
}

grpc_status_code oee_submission(oee_service *s, reply_ctx *out, const Oee__V1__SubmitTaskRequest *m,
                                oee_submit *sub) {
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
  *sub = (oee_submit){.name = m->name,
                      .task_type = m->task_type,
                      .priority = prio,
                      .context = kv,
                      .context_len = m->n_context};
  return semantics(out, m, sub) ? GRPC_STATUS_OK : GRPC_STATUS_INVALID_ARGUMENT;
}

/* SubmitTask has no batch for "#<index>" to name an entry of. */
static int no_batch_refs(reply_ctx *out, const Oee__V1__SubmitTaskRequest *m) {
  for (size_t i = 0; i < m->n_depends_on; i++) {
    if (m->depends_on[i][0] == OEE_BATCH_REF_PREFIX) {
      return oee_reply_say(out,
                           "depends_on[%zu] \"%.64s\": \"#<index>\" names an entry of the same "
                           "SubmitTasks batch and is not valid in SubmitTask",
                           i, m->depends_on[i]);
    }
  }
  return 1;
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
  int duplicate = rc == OEE_DUPLICATE; /* the key's earlier task answers */
  if (duplicate) rc = 0;
  if (rc != 0) {
    oee_reply_send(out, refused(out, rc, err));
    return;
  }
  /* SubmitTaskResponse: task_id = 1, task = 2, duplicate = 3. */
  size_t task_size, n = oee_wire_str_field_size(1, t->id) +
                        oee_wire_task_field_size(2, t, &task_size) +
                        oee_wire_uint_field_size(3, (uint64_t)duplicate);
  uint8_t *p = oee_reply_bytes(out, n);
  p = oee_wire_str_field(p, 1, t->id);
  p = oee_wire_task_field(p, 2, t, task_size);
  (void)oee_wire_uint_field(p, 3, (uint64_t)duplicate);
  oee_reply_send(out, GRPC_STATUS_OK);
}

grpc_status_code oee_h_submit_task(oee_service *s, const ProtobufCMessage *req, reply_ctx *out) {
  const Oee__V1__SubmitTaskRequest *m = (const Oee__V1__SubmitTaskRequest *)req;
  if (oee_arena_reserve(&out->arena, oee_submit_bytes(m, 0)) != 0) return oee_reply_oom(out);
  oee_submit sub;
  grpc_status_code code = oee_submission(s, out, m, &sub);
  if (code != GRPC_STATUS_OK) return code;
  if (!no_batch_refs(out, m)) return GRPC_STATUS_INVALID_ARGUMENT;
  oee_reply_defer(out); /* from here the callback may answer at any time */
  oee_error err;
  int rc = oee_engine_submit_async(s->eng, &sub, task_submitted, out, &err);
  if (rc != 0) oee_reply_send(out, refused(out, rc, &err));
  return GRPC_STATUS_OK;
}
