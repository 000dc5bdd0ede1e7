/*
 * oeectl_json.c - protobuf-c messages to jansson values, following the proto3
 * JSON mapping: lowerCamelCase field names, enums by name, Timestamps as
 * RFC 3339 strings, 64-bit integers as strings, maps as objects. Fields at
 * their default value are printed too (as protobuf's
 * "always print fields with no presence" option does) so that scripts need
 * no defaults; unset message fields (timestamps) are omitted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/oeectl.h"

/* A JSON string for s (NULL counts as ""). Bytes that are not UTF-8, which
 * jansson refuses, become '?'. */
static json_t *jstr(const char *s) {
  if (s == NULL) s = "";
  json_t *v = json_string(s);
  if (v != NULL) return v;
  char *copy = strdup(s);
  if (copy == NULL) return NULL;
  for (char *p = copy; *p != '\0'; p++)
    if ((unsigned char)*p >= 0x80) *p = '?';
  v = json_string(copy);
  free(copy);
  return v;
}

static void set_time(json_t *o, const char *key, const Google__Protobuf__Timestamp *ts) {
  char buf[64];
  if (ts != NULL) json_object_set_new(o, key, jstr(oeectl_format_time(ts, buf, sizeof(buf))));
}

static json_t *task_context(const Oee__V1__Task *t) {
  json_t *o = json_object();
  for (size_t i = 0; i < t->n_context; i++)
    json_object_set_new(o, t->context[i]->key, jstr(t->context[i]->value));
  return o;
}

json_t *oeectl_json_task(const Oee__V1__Task *t) {
  if (t == NULL) return json_null();
  json_t *o = json_object();
  json_object_set_new(o, "id", jstr(t->id));
  json_object_set_new(o, "name", jstr(t->name));
  json_object_set_new(o, "status", jstr(oeectl_status_name(t->status)));
  json_object_set_new(o, "priority", json_integer(t->priority));
  json_object_set_new(o, "taskType", jstr(t->task_type));
  json_object_set_new(o, "context", task_context(t));
  set_time(o, "createdAt", t->created_at);
  set_time(o, "startedAt", t->started_at);
  set_time(o, "completedAt", t->completed_at);
  json_object_set_new(o, "errorMessage", jstr(t->error_message));
  json_object_set_new(o, "result", jstr(t->result));
  json_object_set_new(o, "workerId", json_integer(t->worker_id));
  json_object_set_new(o, "attempt", json_integer(t->attempt));
  json_object_set_new(o, "maxAttempts", json_integer(t->max_attempts));
  set_time(o, "runAt", t->run_at);
  json_object_set_new(o, "timeoutSeconds", json_real(t->timeout_seconds));
  json_object_set_new(o, "idempotencyKey", jstr(t->idempotency_key));
  json_t *deps = json_array();
  for (size_t i = 0; i < t->n_depends_on; i++) json_array_append_new(deps, jstr(t->depends_on[i]));
  json_object_set_new(o, "dependsOn", deps);
  json_object_set_new(o, "scheduleId", jstr(t->schedule_id));
  json_object_set_new(o, "remoteWorkerId", jstr(t->remote_worker_id));
  json_object_set_new(o, "backoffSeconds", json_real(t->backoff_seconds));
  json_object_set_new(o, "maxBackoffSeconds", json_real(t->max_backoff_seconds));
  return o;
}

static json_t *type_limit(const Oee__V1__TypeLimit *l) {
  json_t *o = json_object();
  json_object_set_new(o, "taskType", jstr(l->task_type));
  json_object_set_new(o, "maxRunning", json_integer(l->max_running));
  json_object_set_new(o, "running", json_integer(l->running));
  json_object_set_new(o, "maxPerSecond", json_real(l->max_per_second));
  return o;
}

json_t *oeectl_json_queue(const Oee__V1__QueueStatus *q) {
  if (q == NULL) return json_null();
  json_t *o = json_object(), *by = json_object(), *limits = json_array();
  for (size_t i = 0; i < q->n_tasks_by_status; i++)
    json_object_set_new(by, q->tasks_by_status[i]->key, json_integer(q->tasks_by_status[i]->value));
  for (size_t i = 0; i < q->n_type_limits; i++)
    json_array_append_new(limits, type_limit(q->type_limits[i]));
  json_object_set_new(o, "queueSize", json_integer(q->queue_size));
  json_object_set_new(o, "tasksByStatus", by);
  json_object_set_new(o, "totalTasks", json_integer(q->total_tasks));
  json_object_set_new(o, "typeLimits", limits);
  return o;
}

static json_t *worker(const Oee__V1__WorkerStatus *w) {
  json_t *o = json_object();
  json_object_set_new(o, "workerId", json_integer(w->worker_id));
  json_object_set_new(o, "busy", json_boolean(w->busy));
  json_object_set_new(o, "currentTaskId", jstr(w->current_task_id));
  json_object_set_new(o, "tasksCompleted", json_integer(w->tasks_completed));
  json_object_set_new(o, "tasksFailed", json_integer(w->tasks_failed));
  return o;
}

/* An int64 as proto3 JSON writes it: a decimal string. */
static json_t *jint64(int64_t v) {
  char buf[32];
  snprintf(buf, sizeof(buf), "%lld", (long long)v);
  return jstr(buf);
}

static json_t *remote_worker(const Oee__V1__RemoteWorker *r) {
  json_t *o = json_object(), *types = json_array();
  for (size_t i = 0; i < r->n_task_types; i++) json_array_append_new(types, jstr(r->task_types[i]));
  json_object_set_new(o, "workerId", jstr(r->worker_id));
  json_object_set_new(o, "peer", jstr(r->peer));
  json_object_set_new(o, "taskTypes", types);
  set_time(o, "lastSeen", r->last_seen);
  json_object_set_new(o, "activeLeases", json_integer(r->active_leases));
  json_object_set_new(o, "tasksCompleted", jint64(r->tasks_completed));
  json_object_set_new(o, "tasksFailed", jint64(r->tasks_failed));
  return o;
}

json_t *oeectl_json_system(const Oee__V1__SystemStatus *s) {
  json_t *o = json_object(), *ws = json_array(), *rs = json_array();
  for (size_t i = 0; i < s->n_workers; i++) json_array_append_new(ws, worker(s->workers[i]));
  for (size_t i = 0; i < s->n_remote_workers; i++)
    json_array_append_new(rs, remote_worker(s->remote_workers[i]));
  json_object_set_new(o, "running", json_boolean(s->running));
  json_object_set_new(o, "numWorkers", json_integer(s->num_workers));
  if (s->queue != NULL) json_object_set_new(o, "queue", oeectl_json_queue(s->queue));
  json_object_set_new(o, "workers", ws);
  json_object_set_new(o, "uptimeSeconds", json_real(s->uptime_seconds));
  json_object_set_new(o, "version", jstr(s->version));
  json_object_set_new(o, "remoteWorkers", rs);
  return o;
}

static json_t *stage(const Oee__V1__StageResult *r) {
  json_t *o = json_object();
  json_object_set_new(o, "name", jstr(r->name));
  json_object_set_new(o, "modelId", jstr(r->model_id));
  json_object_set_new(o, "status", jstr(oeectl_stage_status_name(r->status)));
  json_object_set_new(o, "output", jstr(r->output));
  json_object_set_new(o, "cost", json_real(r->cost));
  json_object_set_new(o, "elapsedSeconds", json_real(r->elapsed_seconds));
  json_object_set_new(o, "errorMessage", jstr(r->error_message));
  return o;
}

json_t *oeectl_json_pipeline(const Oee__V1__PipelineResult *p) {
  json_t *o = json_object(), *st = json_array();
  for (size_t i = 0; i < p->n_stages; i++) json_array_append_new(st, stage(p->stages[i]));
  json_object_set_new(o, "taskId", jstr(p->task_id));
  json_object_set_new(o, "pipelineId", jstr(p->pipeline_id));
  json_object_set_new(o, "status", jstr(oeectl_status_name(p->status)));
  json_object_set_new(o, "strategy", jstr(oeectl_strategy_name(p->strategy)));
  json_object_set_new(o, "stages", st);
  json_object_set_new(o, "output", jstr(p->output));
  json_object_set_new(o, "totalCost", json_real(p->total_cost));
  json_object_set_new(o, "elapsedSeconds", json_real(p->elapsed_seconds));
  json_object_set_new(o, "errorMessage", jstr(p->error_message));
  return o;
}

json_t *oeectl_json_event(const Oee__V1__TaskEvent *e) {
  char seq[32];
  json_t *o = json_object();
  snprintf(seq, sizeof(seq), "%llu", (unsigned long long)e->sequence);
  json_object_set_new(o, "sequence", jstr(seq)); /* uint64: a string in JSON */
  if (e->task != NULL) json_object_set_new(o, "task", oeectl_json_task(e->task));
  set_time(o, "time", e->time);
  return o;
}

/* A SubmitTaskRequest (a schedule's template). The fields of the
 * `*_present` oneofs appear only when set, as in protobuf's printer. */
static json_t *task_request(const Oee__V1__SubmitTaskRequest *r) {
  json_t *o = json_object(), *ctx = json_object(), *deps = json_array();
  json_object_set_new(o, "name", jstr(r->name));
  json_object_set_new(o, "taskType", jstr(r->task_type));
  if (r->priority_present_case == OEE__V1__SUBMIT_TASK_REQUEST__PRIORITY_PRESENT_PRIORITY)
    json_object_set_new(o, "priority", json_integer(r->priority));
  for (size_t i = 0; i < r->n_context; i++)
    json_object_set_new(ctx, r->context[i]->key, jstr(r->context[i]->value));
  json_object_set_new(o, "context", ctx);
  if (r->max_attempts_present_case ==
      OEE__V1__SUBMIT_TASK_REQUEST__MAX_ATTEMPTS_PRESENT_MAX_ATTEMPTS)
    json_object_set_new(o, "maxAttempts", json_integer(r->max_attempts));
  if (r->backoff_seconds_present_case ==
      OEE__V1__SUBMIT_TASK_REQUEST__BACKOFF_SECONDS_PRESENT_BACKOFF_SECONDS)
    json_object_set_new(o, "backoffSeconds", json_real(r->backoff_seconds));
  if (r->max_backoff_seconds_present_case ==
      OEE__V1__SUBMIT_TASK_REQUEST__MAX_BACKOFF_SECONDS_PRESENT_MAX_BACKOFF_SECONDS)
    json_object_set_new(o, "maxBackoffSeconds", json_real(r->max_backoff_seconds));
  json_object_set_new(o, "timeoutSeconds", json_real(r->timeout_seconds));
  set_time(o, "runAt", r->run_at);
  json_object_set_new(o, "idempotencyKey", jstr(r->idempotency_key));
  for (size_t i = 0; i < r->n_depends_on; i++) json_array_append_new(deps, jstr(r->depends_on[i]));
  json_object_set_new(o, "dependsOn", deps);
  return o;
}

json_t *oeectl_json_schedule(const Oee__V1__Schedule *s) {
  if (s == NULL) return json_null();
  json_t *o = json_object();
  json_object_set_new(o, "scheduleId", jstr(s->schedule_id));
  json_object_set_new(o, "cron", jstr(s->cron));
  json_object_set_new(o, "timeZone", jstr(s->time_zone));
  if (s->task != NULL) json_object_set_new(o, "task", task_request(s->task));
  json_object_set_new(o, "overlap", jstr(oeectl_overlap_name(s->overlap)));
  json_object_set_new(o, "paused", json_boolean(s->paused));
  set_time(o, "nextRunAt", s->next_run_at);
  set_time(o, "lastRunAt", s->last_run_at);
  json_object_set_new(o, "lastTaskId", jstr(s->last_task_id));
  json_object_set_new(o, "runs", jint64(s->runs));
  json_object_set_new(o, "skipped", jint64(s->skipped));
  set_time(o, "createdAt", s->created_at);
  return o;
}
