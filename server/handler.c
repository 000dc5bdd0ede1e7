/* handler.c - the reply context shared by the unary handlers (handler.h). */
#include "server/handler.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/oee_alloc.h"
#include "server/errmap.h"

void oee_reply_init(reply_ctx *out) {
  oee_arena_init(&out->arena);
  out->msg = NULL;
  out->bytes = grpc_empty_slice();
  out->has_bytes = 0;
  out->err[0] = '\0';
  out->release = NULL;
  out->release_arg = NULL;
  out->call = NULL;
  out->deferred = 0;
  atomic_init(&out->holds, 1);
}

void oee_reply_fini(reply_ctx *out) {
  if (out->release) out->release(out->release_arg);
  out->release = NULL;
  if (out->has_bytes) grpc_slice_unref(out->bytes);
  out->has_bytes = 0;
  oee_arena_free(&out->arena);
}

reply_ctx *oee_reply_new(oee_rpc_call *call) {
  reply_ctx *out = oee_malloc(sizeof(*out));
  if (out == NULL) return NULL;
  oee_reply_init(out);
  out->call = call;
  return out;
}

void oee_reply_drop(reply_ctx *out) {
  if (atomic_fetch_sub(&out->holds, 1) != 1) return;
  /* Released only now: the reply was packed by the send (reply copies). */
  oee_reply_fini(out);
  if (out->deferred) oee_rpc_call_unref(out->call);
  oee_free(out);
}

void oee_reply_defer(reply_ctx *out) {
  if (out->call == NULL || out->deferred) abort(); /* a handler bug */
  out->deferred = 1;
  atomic_fetch_add(&out->holds, 1);
  oee_rpc_call_ref(out->call);
}

/* Sends what the handler built, or the error; one way for both the direct
 * answer and a deferred one. */
static void answer(reply_ctx *out, grpc_status_code code) {
  if (code == GRPC_STATUS_OK && out->has_bytes) {
    (void)oee_rpc_call_reply_slice(out->call, out->bytes);
    return;
  }
  if (code == GRPC_STATUS_OK && (out->msg == NULL || oee_arena_failed(&out->arena))) {
    code = oee_reply_oom(out); /* a reply with parts missing is not sent */
  }
  /* ECLOSED (the client went away, or the server stopped) needs nothing:
   * the call is freed when its last reference goes. */
  if (code == GRPC_STATUS_OK) {
    (void)oee_rpc_call_reply(out->call, out->msg);
  } else {
    (void)oee_rpc_call_fail(out->call, code, out->err);
  }
}

void oee_reply_answer(reply_ctx *out, grpc_status_code code) { answer(out, code); }

uint8_t *oee_reply_bytes(reply_ctx *out, size_t n) {
  if (out->has_bytes) grpc_slice_unref(out->bytes);
  out->bytes = grpc_slice_malloc(n);
  out->has_bytes = 1;
  return GRPC_SLICE_START_PTR(out->bytes);
}

void oee_reply_send(reply_ctx *out, grpc_status_code code) {
  answer(out, code);
  oee_reply_drop(out);
}

int oee_reply_say(reply_ctx *out, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(out->err, sizeof(out->err), fmt, ap);
  va_end(ap);
  return 0;
}

void oee_reply_release(reply_ctx *out, void (*fn)(void *), void *arg) {
  if (out->release != NULL) abort(); /* one hook per reply: a handler bug */
  out->release = fn;
  out->release_arg = arg;
}

grpc_status_code oee_reply_oom(reply_ctx *out) {
  oee_reply_say(out, "out of memory building the reply");
  return GRPC_STATUS_RESOURCE_EXHAUSTED;
}

grpc_status_code oee_reply_refused(reply_ctx *out, const oee_error *err) {
  oee_reply_say(out, "%s", err->message[0] ? err->message : oee_strerror(err->code));
  return oee_status_from_error(err->code);
}

grpc_status_code oee_reply_lookup_failed(reply_ctx *out, int rc, const char *id, const char *what) {
  if (rc == OEE_ENOENT) {
    oee_reply_say(out, "task %s not found%s", id, what);
    return GRPC_STATUS_NOT_FOUND;
  }
  oee_reply_say(out, "task %s: %s", id, oee_strerror(rc));
  return oee_status_from_error(rc);
}

int oee_reply_check_id(reply_ctx *out, const char *field, const char *id) {
  if (oee_id_valid(id)) return 1;
  return oee_reply_say(out, "%s \"%.64s\" is not a UUID", field, id ? id : "");
}
