/* workers.c - oee.v1.WorkerService (see workers.h). */
#include "server/workers.h"

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "core/oee_alloc.h"

#include "server/convert.h"
#include "server/errmap.h"
#include "server/service.h"
#include "server/wire.h"

#define PEER_BYTES 128
#define DEFAULT_WAIT_SECONDS 30.0
#define DEFAULT_LEASE_SECONDS 30.0

static grpc_status_code refused(reply_ctx *out, int rc, const oee_error *err) {
  oee_error e = {.code = rc};
  return oee_reply_refused(out, err != NULL && err->code != 0 ? err : &e);
}

/* ------------------------------------------------------------ PollTasks */

/* One waiting poll: shared by the engine's answer and the call's
 * callbacks, freed by the later of the two (see workers.h). */
typedef struct poll_call {
  oee_poll handle; /* the engine's */
  oee_engine *eng;
  reply_ctx *out;
  oee_rpc_call *call;
  atomic_int refs;
  char peer[PEER_BYTES];
} poll_call;

static void poll_call_drop(poll_call *pc) {
  if (atomic_fetch_sub(&pc->refs, 1) == 1) oee_free(pc);
}

static int poll_alive(void *arg) {
  poll_call *pc = arg;
  return !oee_rpc_call_cancelled(pc->call);
}

/* Lease: lease_id = 1, task = 2, expires_at = 3 (server/wire.h). */
static size_t lease_size(const oee_lease *l, size_t *task_size) {
  return oee_wire_str_field_size(1, l->lease_id) + oee_wire_task_field_size(2, l->task, task_size) +
         oee_wire_time_field_size(3, l->expires_at_ns);
}

/* The reply, PollTasksResponse (leases = 1), written while the engine
 * still holds the task snapshots. */
static grpc_status_code poll_reply(reply_ctx *out, const oee_lease *leases, size_t n) {
  size_t *sizes = oee_arena_alloc_raw(&out->arena, 2 * (n + 1) * sizeof(*sizes));
  if (sizes == NULL) return oee_reply_oom(out);
  size_t total = 0;
  for (size_t i = 0; i < n; i++) {
    sizes[2 * i] = lease_size(&leases[i], &sizes[2 * i + 1]);
    total += oee_wire_msg_head_size(1, sizes[2 * i]) + sizes[2 * i];
  }
  uint8_t *p = oee_reply_bytes(out, total);
  for (size_t i = 0; i < n; i++) {
    const oee_lease *l = &leases[i];
    p = oee_wire_msg_head(p, 1, sizes[2 * i]);
    p = oee_wire_str_field(p, 1, l->lease_id);
    p = oee_wire_task_field(p, 2, l->task, sizes[2 * i + 1]);
    p = oee_wire_time_field(p, 3, l->expires_at_ns);
  }
  return GRPC_STATUS_OK;
}

static int poll_answered(void *arg, int rc, const oee_lease *leases, size_t n) {
  poll_call *pc = arg;
  reply_ctx *out = pc->out;
  int delivered = 0;
  if (rc == 0) {
    grpc_status_code code = poll_reply(out, leases, n);
    oee_rpc_call *call = pc->call;
    oee_rpc_call_ref(call); /* the send may drop the last other reference */
    oee_reply_send(out, code);
    /* A client gone before the reply was sent misses its leases: they
     * expire at once (once sent, the call can no longer be cancelled). */
    delivered = code == GRPC_STATUS_OK && !oee_rpc_call_cancelled(call);
    oee_rpc_call_unref(call);
  } else {
    oee_reply_say(out, "%s", rc == OEE_ESTOPPED ? "the server is draining" : "call ended");
    oee_reply_send(out, oee_status_from_error(rc));
  }
  poll_call_drop(pc);
  return delivered ? 0 : -1;
}

static void poll_cancelled(oee_rpc_call *call, void *user) {
  (void)call;
  poll_call *pc = user;
  if (oee_engine_poll_cancel(pc->eng, &pc->handle)) { /* the engine will not answer */
    oee_reply_send(pc->out, GRPC_STATUS_CANCELLED);
    poll_call_drop(pc);
  }
}

static void poll_done(oee_rpc_call *call, void *user) {
  (void)call;
  poll_call_drop(user);
}

static oee_poll_req poll_request(const Oee__V1__PollTasksRequest *m, poll_call *pc) {
  oee_poll_req r = {
      .worker_id = m->worker_id,
      .peer = pc->peer,
      .task_types = (const char *const *)m->task_types,
      .n_task_types = m->n_task_types,
      .max_tasks = m->max_tasks_present_case ? m->max_tasks : 1,
      .wait_seconds = m->wait_seconds_present_case ? m->wait_seconds : DEFAULT_WAIT_SECONDS,
      .lease_seconds = m->lease_seconds_present_case ? m->lease_seconds : DEFAULT_LEASE_SECONDS,
      .alive = poll_alive,
  };
  return r;
}

grpc_status_code oee_h_poll_tasks(oee_service *s, const ProtobufCMessage *req, reply_ctx *out) {
  const Oee__V1__PollTasksRequest *m = (const Oee__V1__PollTasksRequest *)req;
  poll_call *pc = oee_calloc(1, sizeof(*pc));
  if (pc == NULL) return oee_reply_oom(out);
  pc->eng = s->eng;
  pc->out = out;
  pc->call = out->call;
  atomic_init(&pc->refs, 2); /* the answer (or the cancel) and on_done */
  oee_rpc_call_peer(out->call, pc->peer, sizeof(pc->peer));
  oee_poll_req r = poll_request(m, pc);
  static const oee_rpc_call_callbacks cbs = {.on_cancelled = poll_cancelled, .on_done = poll_done};
  oee_rpc_call_set_callbacks(out->call, &cbs, pc);
  oee_reply_defer(out); /* from here the engine may answer at any time */
  oee_error err = {0};
  int rc = oee_engine_poll(s->eng, &pc->handle, &r, poll_answered, pc, &err);
  if (rc != 0) {
    oee_reply_send(out, refused(out, rc, &err));
    poll_call_drop(pc);
  }
  return GRPC_STATUS_OK;
}

/* ------------------------------------------------------------ Heartbeat */

static Oee__V1__LeaseState *pb_lease_state(oee_arena *a, const char *id,
                                           const oee_lease_state *st) {
  Oee__V1__LeaseState *m = oee_arena_alloc(a, sizeof(*m));
  if (m == NULL) return NULL;
  oee__v1__lease_state__init(m);
  m->lease_id = (char *)(uintptr_t)id; /* borrowed from the request */
  if (!st->lost) m->expires_at = oee_pb_time(a, st->expires_at_ns);
  m->cancel_requested = st->cancel_requested;
  m->lost = st->lost;
  return m;
}

grpc_status_code oee_h_heartbeat(oee_service *s, const ProtobufCMessage *req, reply_ctx *out) {
  const Oee__V1__HeartbeatRequest *m = (const Oee__V1__HeartbeatRequest *)req;
  size_t n = m->n_lease_ids;
  oee_lease_state *st = oee_arena_alloc(&out->arena, (n ? n : 1) * sizeof(*st));
  if (st == NULL) return oee_reply_oom(out);
  char peer[PEER_BYTES];
  oee_rpc_call_peer(out->call, peer, sizeof(peer));
  oee_error err = {0};
  int rc =
      oee_engine_heartbeat(s->eng, m->worker_id, peer, (const char *const *)m->lease_ids, n,
                           m->extend_seconds_present_case ? &m->extend_seconds : NULL, st, &err);
  if (rc != 0) return refused(out, rc, &err);
  Oee__V1__HeartbeatResponse *resp = oee_arena_alloc(&out->arena, sizeof(*resp));
  if (resp == NULL) return oee_reply_oom(out);
  oee__v1__heartbeat_response__init(resp);
  resp->leases = oee_arena_alloc(&out->arena, n * sizeof(*resp->leases));
  for (size_t i = 0; resp->leases != NULL && i < n; i++) {
    resp->leases[i] = pb_lease_state(&out->arena, m->lease_ids[i], &st[i]);
    resp->n_leases = i + 1;
  }
  out->msg = &resp->base;
  return GRPC_STATUS_OK;
}

/* ------------------------------------------------- CompleteTask, FailTask */

/* The task after a lease's end, once it is stored. The reply is written
 * as bytes, which cannot run out (gRPC's allocator aborts), so an ended
 * lease is never reported as a failure for want of memory. */
static void lease_ended(void *arg, int rc, const oee_task_info *t) {
  reply_ctx *out = arg;
  if (rc != 0) {
    oee_reply_send(out, refused(out, rc, NULL));
    return;
  }
  /* The reply is the Task (server/wire.h), written while t is held. */
  (void)oee_wire_task(oee_reply_bytes(out, oee_wire_task_size(t)), t);
  oee_reply_send(out, GRPC_STATUS_OK);
}

static grpc_status_code lease_end(oee_service *s, reply_ctx *out, const oee_lease_end *end) {
  oee_reply_defer(out); /* from here the callback may answer at any time */
  oee_error err = {0};
  int rc = oee_engine_lease_end(s->eng, end, lease_ended, out, &err);
  if (rc != 0) oee_reply_send(out, refused(out, rc, &err));
  return GRPC_STATUS_OK;
}

grpc_status_code oee_h_complete_task(oee_service *s, const ProtobufCMessage *req, reply_ctx *out) {
  const Oee__V1__CompleteTaskRequest *m = (const Oee__V1__CompleteTaskRequest *)req;
  char peer[PEER_BYTES];
  oee_rpc_call_peer(out->call, peer, sizeof(peer));
  oee_lease_end end = {.lease_id = m->lease_id,
                       .worker_id = m->worker_id,
                       .peer = peer,
                       .ok = 1,
                       .result = m->result};
  return lease_end(s, out, &end);
}

grpc_status_code oee_h_fail_task(oee_service *s, const ProtobufCMessage *req, reply_ctx *out) {
  const Oee__V1__FailTaskRequest *m = (const Oee__V1__FailTaskRequest *)req;
  char peer[PEER_BYTES];
  oee_rpc_call_peer(out->call, peer, sizeof(peer));
  oee_lease_end end = {.lease_id = m->lease_id,
                       .worker_id = m->worker_id,
                       .peer = peer,
                       .ok = 0,
                       .message = m->error_message,
                       .retryable = m->retryable_present_case ? m->retryable : 1};
  return lease_end(s, out, &end);
}

/* ---------------------------------------------------------------- status */

static Oee__V1__RemoteWorker *pb_remote_worker(oee_arena *a, const oee_remote_worker *w) {
  Oee__V1__RemoteWorker *m = oee_arena_alloc(a, sizeof(*m));
  if (m == NULL) return NULL;
  oee__v1__remote_worker__init(m);
  m->worker_id = oee_arena_printf(a, "%s", w->worker_id);
  m->peer = oee_arena_printf(a, "%s", w->peer);
  m->task_types = oee_arena_alloc(a, (w->n_task_types ? w->n_task_types : 1) * sizeof(char *));
  for (size_t i = 0; m->task_types != NULL && i < w->n_task_types; i++) {
    m->task_types[i] = oee_arena_printf(a, "%s", w->task_types[i]);
    m->n_task_types = i + 1;
  }
  m->last_seen = oee_pb_time(a, w->last_seen_ns);
  m->active_leases = w->active_leases;
  m->tasks_completed = (int64_t)w->tasks_completed;
  m->tasks_failed = (int64_t)w->tasks_failed;
  return m;
}

int oee_pb_remote_workers(oee_arena *a, oee_engine *eng, Oee__V1__SystemStatus *m) {
  oee_remote_worker *v;
  size_t n;
  if (oee_engine_remote_workers(eng, &v, &n) != 0) return -1;
  if (n > 0) m->remote_workers = oee_arena_alloc(a, n * sizeof(*m->remote_workers));
  for (size_t i = 0; m->remote_workers != NULL && i < n; i++) {
    m->remote_workers[i] = pb_remote_worker(a, &v[i]);
    m->n_remote_workers = i + 1;
  }
  oee_remote_workers_free(v);
  return oee_arena_failed(a) ? -1 : 0;
}
