/*
 * builtin.c - the executors every engine has: echo, sleep and fail.
 * They run on a worker thread and finish before returning.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

/* echo: the result is exactly context["message"] ("" when absent). */
static void run_echo(oee_job *job, void *ud) {
  (void)ud;
  const char *msg = oee_job_context(job, "message");
  oee_job_succeed(job, msg ? msg : "");
}

/* fail: every attempt fails with context["message"]; permanently (no
 * retry) when context["permanent"] is "true". */
static void run_fail(oee_job *job, void *ud) {
  (void)ud;
  const char *msg = oee_job_context(job, "message");
  const char *permanent = oee_job_context(job, "permanent");
  msg = msg && msg[0] ? msg : "task failed as requested";
  if (permanent && strcmp(permanent, "true") == 0) {
    oee_job_fail_permanent(job, msg);
  } else {
    oee_job_fail(job, msg);
  }
}

/* Parses a non-negative, finite decimal number of seconds. */
static int parse_seconds(const char *s, double *out) {
  if (s == NULL) {
    *out = 0;
    return 0;
  }
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v < 0) {
    return OEE_EINVAL;
  }
  *out = v;
  return 0;
}

static int validate_sleep(const oee_submit *req, const void *payload, void *ud, oee_error *err) {
  (void)payload;
  (void)ud;
  double secs;
  for (size_t i = 0; i < req->context_len; i++) {
    const oee_kv *kv = &req->context[i];
    if (kv->key && kv->value && strcmp(kv->key, "seconds") == 0 &&
        parse_seconds(kv->value, &secs) != 0) {
      return oee_error_set(err, OEE_EINVAL,
                           "context[\"seconds\"] must be a finite number >= 0, got \"%.32s\"",
                           kv->value);
    }
  }
  return 0;
}

/* sleep: waits context["seconds"] (a decimal), waking early on cancel. */
static void run_sleep(oee_job *job, void *ud) {
  (void)ud;
  double secs;
  if (parse_seconds(oee_job_context(job, "seconds"), &secs) != 0) {
    oee_job_fail(job, "context \"seconds\" is not a non-negative number");
    return;
  }
  if (oee_token_wait(oee_job_token(job), (int64_t)llround(secs * 1000.0))) {
    oee_job_cancelled(job, "cancelled while sleeping");
    return;
  }
  char buf[64];
  snprintf(buf, sizeof(buf), "slept %g s", secs);
  oee_job_succeed(job, buf);
}

int oee__builtin_register(oee_engine *eng) {
  int rc = oee_engine_register(eng, "echo", run_echo, NULL);
  if (rc == 0) rc = oee_engine_register(eng, "fail", run_fail, NULL);
  if (rc == 0) rc = oee__engine_register_full(eng, "sleep", run_sleep, validate_sleep, 0, NULL);
  return rc;
}
