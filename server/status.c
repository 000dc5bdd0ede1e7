/* status.c - the status RPCs (see status.h). */
#include "server/status.h"

#include "server/convert.h"
#include "server/errmap.h"
#include "server/service.h"
#include "server/workers.h"

static void release_status(void *st) { oee_status_free(st); }

/* The engine's counters, kept alive in the reply until it is packed. */
static oee_status *engine_status(oee_service *s, reply_ctx *out, int *rc) {
  oee_status *st = oee_arena_alloc(&out->arena, sizeof(*st));
  if (st == NULL) {
    *rc = OEE_ENOMEM;
    oee_reply_oom(out);
    return NULL;
  }
  *rc = oee_engine_status(s->eng, st);
  if (*rc != 0) {
    oee_reply_say(out, "status unavailable: %s", oee_strerror(*rc));
    return NULL;
  }
  oee_reply_release(out, release_status, st);
  if (!atomic_load(&s->serving)) st->running = 0; /* any io thread: not s->state */
  return st;
}

grpc_status_code oee_h_queue_status(oee_service *s, const ProtobufCMessage *req, reply_ctx *out) {
  (void)req;
  int rc;
  oee_status *st = engine_status(s, out, &rc);
  if (st == NULL) return oee_status_from_error(rc);
  Oee__V1__QueueStatus *q = oee_pb_queue_status(&out->arena, st);
  if (q == NULL) return oee_reply_oom(out);
  out->msg = &q->base;
  return GRPC_STATUS_OK;
}

grpc_status_code oee_h_system_status(oee_service *s, const ProtobufCMessage *req, reply_ctx *out) {
  (void)req;
  int rc;
  oee_status *st = engine_status(s, out, &rc);
  if (st == NULL) return oee_status_from_error(rc);
  Oee__V1__SystemStatus *m = oee_pb_system_status(&out->arena, st, OEE_VERSION);
  if (m == NULL || oee_pb_remote_workers(&out->arena, s->eng, m) != 0) return oee_reply_oom(out);
  out->msg = &m->base;
  return GRPC_STATUS_OK;
}
