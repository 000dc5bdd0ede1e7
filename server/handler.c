/* handler.c - the reply context shared by the unary handlers (handler.h). */
#include "server/handler.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "server/errmap.h"

void oee_reply_init(reply_ctx *out) {
  oee_arena_init(&out->arena);
  out->msg = NULL;
  out->err[0] = '\0';
  out->release = NULL;
  out->release_arg = NULL;
}

void oee_reply_fini(reply_ctx *out) {
  if (out->release) out->release(out->release_arg);
  out->release = NULL;
  oee_arena_free(&out->arena);
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

static void unref_task(void *t) { oee_task_info_unref(t); }

void oee_reply_keep_task(reply_ctx *out, const oee_task_info *t) {
  oee_reply_release(out, unref_task, (void *)t);
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
