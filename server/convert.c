/* convert.c - core -> oee.v1 messages (see convert.h). */
#include "server/convert.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define NS_PER_S 1000000000

/* protobuf-c declares string fields char *; replies never write to them. */
static char *str(const char *s) { return (char *)(uintptr_t)s; }

Google__Protobuf__Timestamp *oee_pb_time(oee_arena *a, int64_t ns) {
  if (ns == 0) return NULL;
  Google__Protobuf__Timestamp *ts = oee_arena_alloc(a, sizeof(*ts));
  if (ts == NULL) return NULL;
  google__protobuf__timestamp__init(ts);
  /* Before the epoch the nanos still count forward from the second. */
  int64_t secs = ns / NS_PER_S, nanos = ns % NS_PER_S;
  if (nanos < 0) {
    secs -= 1;
    nanos += NS_PER_S;
  }
  ts->seconds = secs;
  ts->nanos = (int32_t)nanos;
  return ts;
}

int oee_pb_time_ns(const Google__Protobuf__Timestamp *ts, int64_t *ns) {
  if (ts->seconds < OEE_PB_TIME_MIN_SECONDS || ts->seconds > OEE_PB_TIME_MAX_SECONDS ||
      ts->nanos < 0 || ts->nanos >= NS_PER_S) {
    return -1;
  }
  /* int64 nanoseconds reach from 1677-09-21 to 2262-04-11: clamp beyond. */
  if (ts->seconds >= INT64_MAX / NS_PER_S) {
    *ns = INT64_MAX;
  } else if (ts->seconds <= INT64_MIN / NS_PER_S) {
    *ns = INT64_MIN / NS_PER_S * NS_PER_S;
  } else {
    *ns = ts->seconds * NS_PER_S + ts->nanos;
  }
  return 0;
}

/* The quotas and their use (sorted by type: the config keeps them so). */
static void queue_type_limits(oee_arena *a, Oee__V1__QueueStatus *q, const oee_status *st) {
  size_t n = st->n_type_limits;
  if (n == 0) return;
  q->type_limits = oee_arena_alloc(a, n * sizeof(*q->type_limits));
  Oee__V1__TypeLimit *l = oee_arena_alloc(a, n * sizeof(*l));
  if (q->type_limits == NULL || l == NULL) return; /* the arena says it failed */
  q->n_type_limits = n;
  for (size_t i = 0; i < n; i++) {
    const oee_type_usage *u = &st->type_limits[i];
    oee__v1__type_limit__init(&l[i]);
    l[i].task_type = str(u->task_type);
    l[i].max_running = u->max_running;
    l[i].running = u->running;
    l[i].max_per_second = u->max_per_second;
    q->type_limits[i] = &l[i];
  }
}

Oee__V1__QueueStatus *oee_pb_queue_status(oee_arena *a, const oee_status *st) {
  Oee__V1__QueueStatus *q = oee_arena_alloc(a, sizeof(*q));
  if (q == NULL) return NULL;
  oee__v1__queue_status__init(q);
  q->queue_size = (int32_t)st->queue_size;
  q->total_tasks = (int32_t)st->total_tasks;
  enum { N = OEE_TASK_STATUS_COUNT - 1 };
  q->tasks_by_status = oee_arena_alloc(a, N * sizeof(*q->tasks_by_status));
  Oee__V1__QueueStatus__TasksByStatusEntry *e = oee_arena_alloc(a, N * sizeof(*e));
  if (q->tasks_by_status == NULL || e == NULL) return q; /* the arena says it failed */
  q->n_tasks_by_status = N;
  for (int i = 0; i < N; i++) {
    oee_task_status s = (oee_task_status)(OEE_TASK_QUEUED + i);
    oee__v1__queue_status__tasks_by_status_entry__init(&e[i]);
    e[i].key = str(oee_task_status_name(s));
    e[i].value = (int32_t)st->by_status[s];
    q->tasks_by_status[i] = &e[i];
  }
  queue_type_limits(a, q, st);
  return q;
}

Oee__V1__SystemStatus *oee_pb_system_status(oee_arena *a, const oee_status *st,
                                            const char *version) {
  Oee__V1__SystemStatus *m = oee_arena_alloc(a, sizeof(*m));
  if (m == NULL) return NULL;
  oee__v1__system_status__init(m);
  m->running = st->running;
  m->num_workers = st->num_workers;
  m->queue = oee_pb_queue_status(a, st);
  m->uptime_seconds = st->uptime_seconds;
  m->version = str(version);
  size_t n = (size_t)st->num_workers;
  m->workers = oee_arena_alloc(a, n * sizeof(*m->workers));
  for (size_t i = 0; m->workers && i < n; i++) {
    const oee_worker_status *w = &st->workers[i];
    Oee__V1__WorkerStatus *ws = oee_arena_alloc(a, sizeof(*ws));
    if (ws == NULL) break; /* the arena says it failed */
    m->n_workers = i + 1;
    oee__v1__worker_status__init(ws);
    ws->worker_id = w->worker_id;
    ws->busy = w->busy;
    ws->current_task_id = str(w->current_task_id);
    ws->tasks_completed = (int32_t)w->tasks_completed;
    ws->tasks_failed = (int32_t)w->tasks_failed;
    m->workers[i] = ws;
  }
  return m;
}

static Oee__V1__StageResult *stage_result(oee_arena *a, const oee_stage_result *s) {
  Oee__V1__StageResult *m = oee_arena_alloc(a, sizeof(*m));
  if (m == NULL) return NULL;
  oee__v1__stage_result__init(m);
  m->name = str(s->name);
  m->model_id = str(s->model_id);
  m->status = (Oee__V1__StageStatus)s->status;
  m->output = str(s->output ? s->output : "");
  m->cost = s->cost;
  m->elapsed_seconds = s->elapsed_seconds;
  m->error_message = str(s->error_message ? s->error_message : "");
  return m;
}

Oee__V1__PipelineResult *oee_pb_pipeline_result(oee_arena *a, const oee_pipeline_result *r) {
  Oee__V1__PipelineResult *m = oee_arena_alloc(a, sizeof(*m));
  if (m == NULL) return NULL;
  oee__v1__pipeline_result__init(m);
  m->task_id = str(r->task_id);
  m->pipeline_id = str(r->pipeline_id ? r->pipeline_id : "");
  m->status = (Oee__V1__TaskStatus)r->status;
  m->strategy = (Oee__V1__PipelineStrategy)r->strategy;
  m->output = str(r->output ? r->output : "");
  m->total_cost = r->total_cost;
  m->elapsed_seconds = r->elapsed_seconds;
  m->error_message = str(r->error_message ? r->error_message : "");
  m->stages = oee_arena_alloc(a, r->n_stages * sizeof(*m->stages) + 1);
  if (m->stages == NULL) return m; /* the arena says it failed */
  m->n_stages = r->n_stages;
  for (size_t i = 0; i < r->n_stages; i++) m->stages[i] = stage_result(a, &r->stages[i]);
  return m;
}

char *oee_page_token(oee_arena *a, uint64_t next_index) {
  if (next_index == 0) return str("");
  return oee_arena_printf(a, "v1.%llx", (unsigned long long)next_index);
}

int oee_page_token_parse(const char *token, uint64_t *after) {
  *after = 0;
  if (token == NULL || token[0] == '\0') return 0;
  if (strncmp(token, "v1.", 3) != 0 || token[3] == '\0') return -1;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(token + 3, &end, 16);
  if (errno || *end || v == 0 || token[3] == '-' || token[3] == '+') return -1;
  *after = v;
  return 0;
}
