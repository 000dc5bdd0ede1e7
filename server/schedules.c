/*
 * schedules.c - the schedule RPCs (see schedules.h): CreateSchedule,
 * GetSchedule, ListSchedules, DeleteSchedule, PauseSchedule and
 * ResumeSchedule over the core's schedules (core/schedule.c).
 *
 * The changes are answered once stored, from the core's callback (the
 * commit thread with the sqlite store, inside the call with the memory
 * store), like SubmitTask: the handler defers its reply. The core judges
 * every field; the server maps the template (a SubmitTaskRequest) to a core
 * submission with the same code as SubmitTask, and a schedule back to its
 * message. A reply borrows the schedule copies it shows, freed once it is
 * packed.
 */
#include "server/schedules.h"

#include <stdint.h>
#include <string.h>

#include "server/convert.h"
#include "server/errmap.h"
#include "server/service.h"
#include "server/submit.h"

#define PAGE_DEFAULT 100
#define PAGE_MAX 1000

static char *str(const char *s) { return (char *)(uintptr_t)s; }

/* ----------------------------------------------------------- messages */

/* A core submission as the template message (borrowing its strings). */
static Oee__V1__SubmitTaskRequest *pb_template(oee_arena *a, const oee_submit *t) {
  Oee__V1__SubmitTaskRequest *m = oee_arena_alloc(a, sizeof(*m));
  if (m == NULL) return NULL;
  oee__v1__submit_task_request__init(m);
  m->name = str(t->name);
  m->task_type = str(t->task_type);
  m->priority_present_case = OEE__V1__SUBMIT_TASK_REQUEST__PRIORITY_PRESENT_PRIORITY;
  m->priority = t->priority;
  if (t->context_len > 0) {
    m->context = oee_arena_alloc(a, t->context_len * sizeof(*m->context));
    Oee__V1__SubmitTaskRequest__ContextEntry *e = oee_arena_alloc(a, t->context_len * sizeof(*e));
    if (m->context == NULL || e == NULL) return m; /* the arena says it failed */
    m->n_context = t->context_len;
    for (size_t i = 0; i < t->context_len; i++) {
      oee__v1__submit_task_request__context_entry__init(&e[i]);
      e[i].key = str(t->context[i].key);
      e[i].value = str(t->context[i].value);
      m->context[i] = &e[i];
    }
  }
  if (t->max_attempts) {
    m->max_attempts_present_case = OEE__V1__SUBMIT_TASK_REQUEST__MAX_ATTEMPTS_PRESENT_MAX_ATTEMPTS;
    m->max_attempts = t->max_attempts;
  }
  if (t->has_backoff) {
    m->backoff_seconds_present_case =
        OEE__V1__SUBMIT_TASK_REQUEST__BACKOFF_SECONDS_PRESENT_BACKOFF_SECONDS;
    m->backoff_seconds = t->backoff_seconds;
  }
  if (t->has_max_backoff) {
    m->max_backoff_seconds_present_case =
        OEE__V1__SUBMIT_TASK_REQUEST__MAX_BACKOFF_SECONDS_PRESENT_MAX_BACKOFF_SECONDS;
    m->max_backoff_seconds = t->max_backoff_seconds;
  }
  m->timeout_seconds = t->timeout_seconds;
  if (t->depends_on_len > 0) {
    m->depends_on = oee_arena_alloc(a, t->depends_on_len * sizeof(*m->depends_on));
    if (m->depends_on == NULL) return m;
    m->n_depends_on = t->depends_on_len;
    for (size_t i = 0; i < t->depends_on_len; i++) m->depends_on[i] = str(t->depends_on[i]);
  }
  return m;
}

static Oee__V1__Schedule *pb_schedule(oee_arena *a, const oee_schedule *s) {
  Oee__V1__Schedule *m = oee_arena_alloc(a, sizeof(*m));
  if (m == NULL) return NULL;
  oee__v1__schedule__init(m);
  m->schedule_id = str(s->schedule_id);
  m->cron = str(s->cron);
  m->time_zone = str(s->time_zone);
  m->task = pb_template(a, &s->task);
  m->overlap = s->overlap == OEE_OVERLAP_ALLOW ? OEE__V1__SCHEDULE_OVERLAP__SCHEDULE_OVERLAP_ALLOW
                                               : OEE__V1__SCHEDULE_OVERLAP__SCHEDULE_OVERLAP_SKIP;
  m->paused = s->paused;
  m->next_run_at = oee_pb_time(a, s->next_run_ns);
  m->last_run_at = oee_pb_time(a, s->last_run_ns);
  m->last_task_id = str(s->last_task_id);
  m->runs = s->runs;
  m->skipped = s->skipped;
  m->created_at = oee_pb_time(a, s->created_at_ns);
  return m;
}

static void release_schedule(void *s) { oee_schedule_free(s); }

/* Answers with schedule s (kept until the reply is packed). */
static grpc_status_code answer_schedule(reply_ctx *out, oee_schedule *s) {
  oee_reply_release(out, release_schedule, s);
  Oee__V1__Schedule *m = pb_schedule(&out->arena, s);
  if (m == NULL || oee_arena_failed(&out->arena)) return oee_reply_oom(out);
  out->msg = &m->base;
  return GRPC_STATUS_OK;
}

/* ------------------------------------------------------------ changes */

/* A change is stored (or refused): the deferred reply. */
static void changed(void *arg, int rc, oee_schedule *s, const oee_error *err) {
  reply_ctx *out = arg;
  if (rc != 0) {
    oee_error why = {.code = rc};
    oee_reply_send(out, oee_reply_refused(out, err ? err : &why));
    return;
  }
  if (s == NULL) { /* a delete */
    Oee__V1__DeleteScheduleResponse *m = oee_arena_alloc(&out->arena, sizeof(*m));
    if (m == NULL) {
      oee_reply_send(out, oee_reply_oom(out));
      return;
    }
    oee__v1__delete_schedule_response__init(m);
    out->msg = &m->base;
    oee_reply_send(out, GRPC_STATUS_OK);
    return;
  }
  oee_reply_send(out, answer_schedule(out, s));
}

/* After a core call that answers through changed(): its refusal, if any. */
static grpc_status_code deferred(reply_ctx *out, int rc, const oee_error *err) {
  if (rc != 0) oee_reply_send(out, oee_reply_refused(out, err));
  return GRPC_STATUS_OK;
}

grpc_status_code oee_h_create_schedule(oee_service *s, const ProtobufCMessage *req,
                                       reply_ctx *out) {
  const Oee__V1__CreateScheduleRequest *m = (const Oee__V1__CreateScheduleRequest *)req;
  oee_submit task;
  oee_schedule_spec spec = {.schedule_id = m->schedule_id,
                            .cron = m->cron,
                            .time_zone = m->time_zone,
                            .overlap = (oee_overlap)m->overlap,
                            .paused = m->paused};
  if (m->task != NULL) {
    if (oee_arena_reserve(&out->arena, oee_submit_bytes(m->task, 0)) != 0) {
      return oee_reply_oom(out);
    }
    grpc_status_code code = oee_submission(s, out, m->task, &task);
    if (code != GRPC_STATUS_OK) return code;
    spec.task = &task;
  }
  oee_reply_defer(out);
  oee_error err = {0};
  int rc = oee_engine_schedule_create_async(s->eng, &spec, changed, out, &err);
  return deferred(out, rc, &err);
}

grpc_status_code oee_h_delete_schedule(oee_service *s, const ProtobufCMessage *req,
                                       reply_ctx *out) {
  const Oee__V1__DeleteScheduleRequest *m = (const Oee__V1__DeleteScheduleRequest *)req;
  oee_reply_defer(out);
  oee_error err = {0};
  return deferred(out, oee_engine_schedule_delete_async(s->eng, m->schedule_id, changed, out, &err),
                  &err);
}

static grpc_status_code pause_or_resume(oee_service *s, const char *id, int paused,
                                        reply_ctx *out) {
  oee_reply_defer(out);
  oee_error err = {0};
  return deferred(out, oee_engine_schedule_pause_async(s->eng, id, paused, changed, out, &err),
                  &err);
}

grpc_status_code oee_h_pause_schedule(oee_service *s, const ProtobufCMessage *req, reply_ctx *out) {
  return pause_or_resume(s, ((const Oee__V1__PauseScheduleRequest *)req)->schedule_id, 1, out);
}

grpc_status_code oee_h_resume_schedule(oee_service *s, const ProtobufCMessage *req,
                                       reply_ctx *out) {
  return pause_or_resume(s, ((const Oee__V1__ResumeScheduleRequest *)req)->schedule_id, 0, out);
}

/* -------------------------------------------------------------- reads */

grpc_status_code oee_h_get_schedule(oee_service *s, const ProtobufCMessage *req, reply_ctx *out) {
  const Oee__V1__GetScheduleRequest *m = (const Oee__V1__GetScheduleRequest *)req;
  oee_schedule *sched;
  int rc = oee_engine_schedule_get(s->eng, m->schedule_id, &sched);
  if (rc == OEE_ENOENT) {
    oee_reply_say(out, "schedule \"%.80s\" not found", m->schedule_id);
    return GRPC_STATUS_NOT_FOUND;
  }
  if (rc != 0) return oee_reply_oom(out);
  return answer_schedule(out, sched);
}

/* A page of schedules, kept until the reply is packed. */
typedef struct page {
  oee_schedule **v;
  size_t n;
} page;

static void release_page(void *p) {
  page *pg = p;
  oee_schedule_list_free(pg->v, pg->n);
}

grpc_status_code oee_h_list_schedules(oee_service *s, const ProtobufCMessage *req, reply_ctx *out) {
  const Oee__V1__ListSchedulesRequest *m = (const Oee__V1__ListSchedulesRequest *)req;
  if (m->page_size < 0) {
    oee_reply_say(out, "page_size must be 0..%d, got %d", PAGE_MAX, m->page_size);
    return GRPC_STATUS_INVALID_ARGUMENT;
  }
  /* A token is the last schedule_id of the page before. */
  if (m->page_token[0] && !oee_schedule_id_valid(m->page_token)) {
    oee_reply_say(out, "page_token \"%.80s\" is not one this server gave", m->page_token);
    return GRPC_STATUS_INVALID_ARGUMENT;
  }
  size_t limit = m->page_size == 0         ? PAGE_DEFAULT
                 : m->page_size > PAGE_MAX ? PAGE_MAX
                                           : (size_t)m->page_size;
  page *pg = oee_arena_alloc(&out->arena, sizeof(*pg));
  Oee__V1__ListSchedulesResponse *r = oee_arena_alloc(&out->arena, sizeof(*r));
  if (pg == NULL || r == NULL) return oee_reply_oom(out);
  int more;
  if (oee_engine_schedule_list(s->eng, m->page_token, limit, &pg->v, &pg->n, &more) != 0) {
    return oee_reply_oom(out);
  }
  oee_reply_release(out, release_page, pg);
  oee__v1__list_schedules_response__init(r);
  if (pg->n > 0) {
    r->schedules = oee_arena_alloc(&out->arena, pg->n * sizeof(*r->schedules));
    if (r->schedules == NULL) return oee_reply_oom(out);
    r->n_schedules = pg->n;
    for (size_t i = 0; i < pg->n; i++) r->schedules[i] = pb_schedule(&out->arena, pg->v[i]);
  }
  if (more) r->next_page_token = pg->v[pg->n - 1]->schedule_id;
  if (oee_arena_failed(&out->arena)) return oee_reply_oom(out);
  out->msg = &r->base;
  return GRPC_STATUS_OK;
}
