/*
 * pipeline_codec.c - a pipeline's description and results as stored bytes
 * (the task's payload column), so that a queued pipeline runs after a
 * restart and a finished one's result is read back from disk.
 *
 * DESIGN
 * Layout (db_codec.h's writers): a format version, the pipeline's fields,
 * then each stage's. Times are CLOCK_MONOTONIC in memory, which means
 * nothing in another process, so they are stored as elapsed nanoseconds
 * (-1: never started) and read back as a span starting at 1.
 * The engine encodes with its lock held (a submission, a final change);
 * this takes the pipeline lock after it, the documented order.
 */
#include <string.h>

#include "core/db_codec.h"
#include "core/engine.h"
#include "core/oee_alloc.h"
#include "core/pipeline.h"
#include "core/sync.h"

#define FORMAT 1

static int64_t elapsed_ns(int64_t start, int64_t end, int64_t now) {
  if (start == 0) return -1;
  return (end != 0 ? end : now) - start;
}

static void span_read(int64_t elapsed, int64_t *start, int64_t *end) {
  *start = elapsed < 0 ? 0 : 1;
  *end = elapsed < 0 ? 0 : 1 + elapsed;
}

int oee__pipeline_encode(void *data, void **out, size_t *len) {
  pipeline *pl = data;
  oee__wbuf b = {0};
  int64_t now = oee__mono_ns();
  oee__lock(&pl->lock);
  oee__put_u64(&b, FORMAT);
  oee__put_str(&b, pl->pipeline_id);
  oee__put_u64(&b, (uint64_t)pl->strategy);
  oee__put_f64(&b, pl->max_time);
  oee__put_f64(&b, pl->max_cost);
  oee__put_str(&b, pl->input);
  oee__put_str(&b, pl->output);
  oee__put_str(&b, pl->error);
  oee__put_f64(&b, pl->total_cost);
  oee__put_u64(&b, (uint64_t)elapsed_ns(pl->start_ns, pl->end_ns, now));
  oee__put_u64(&b, pl->n);
  for (size_t i = 0; i < pl->n; i++) {
    const stage *s = &pl->stages[i];
    oee__put_str(&b, s->name);
    oee__put_str(&b, s->model_id);
    oee__put_f64(&b, s->cost);
    oee__put_f64(&b, s->quality);
    oee__put_u64(&b, (uint64_t)s->status);
    oee__put_str(&b, s->output);
    oee__put_str(&b, s->error);
    oee__put_f64(&b, s->charged);
    oee__put_u64(&b, (uint64_t)elapsed_ns(s->start_ns, s->end_ns, now));
  }
  oee__unlock(&pl->lock);
  if (b.failed) {
    oee_free(b.p);
    return OEE_ENOMEM;
  }
  *out = b.p;
  *len = b.len;
  return 0;
}

/* A required string: "" stands for a stored NULL. */
static char *required(oee__rbuf *b) {
  char *s = oee__get_str(b);
  if (s == NULL && !b->bad && !b->nomem) {
    s = oee_strdup("");
    if (s == NULL) b->nomem = 1;
  }
  return s;
}

static void stage_read(oee__rbuf *b, stage *s) {
  s->name = required(b);
  s->model_id = required(b);
  s->cost = oee__get_f64(b);
  s->quality = oee__get_f64(b);
  uint64_t status = oee__get_u64(b);
  if (status < OEE_STAGE_PENDING || status > OEE_STAGE_CANCELLED) b->bad = 1;
  s->status = (oee_stage_status)status;
  s->output = oee__get_str(b);
  s->error = oee__get_str(b);
  s->charged = oee__get_f64(b);
  span_read((int64_t)oee__get_u64(b), &s->start_ns, &s->end_ns);
}

int oee__pipeline_decode(const void *bytes, size_t len, const oee_model_table *models, void **out) {
  oee__rbuf b = {.p = bytes, .end = (const unsigned char *)bytes + len};
  pipeline *pl = oee_calloc(1, sizeof(*pl));
  if (pl == NULL) return OEE_ENOMEM;
  if (oee__mutex_init(&pl->lock) != 0) {
    oee_free(pl);
    return OEE_ENOMEM;
  }
  pl->models = models;
  if (oee__get_u64(&b) != FORMAT) b.bad = 1;
  pl->pipeline_id = required(&b);
  uint64_t strategy = oee__get_u64(&b);
  if (strategy < OEE_STRATEGY_LOCAL_FAST_PRECISE || strategy > OEE_STRATEGY_QUALITY_FIRST) {
    b.bad = 1;
  }
  pl->strategy = (oee_strategy)strategy;
  pl->max_time = oee__get_f64(&b);
  pl->max_cost = oee__get_f64(&b);
  pl->input = required(&b);
  pl->output = oee__get_str(&b);
  pl->error = oee__get_str(&b);
  pl->total_cost = oee__get_f64(&b);
  span_read((int64_t)oee__get_u64(&b), &pl->start_ns, &pl->end_ns);
  uint64_t n = oee__get_u64(&b);
  if (n == 0 || n > OEE_PIPELINE_MAX_STAGES) b.bad = 1;
  if (!b.bad && (pl->stages = oee_calloc(n, sizeof(*pl->stages))) == NULL) b.nomem = 1;
  if (!b.bad && !b.nomem) pl->n = n;
  for (size_t i = 0; i < pl->n && !b.bad && !b.nomem; i++) stage_read(&b, &pl->stages[i]);
  if (b.p != b.end) b.bad = 1;
  if (b.bad || b.nomem) {
    oee__pipeline_free(pl);
    return b.bad ? OEE_EINVAL : OEE_ENOMEM;
  }
  *out = pl;
  return 0;
}

int oee__pipeline_payload(oee_engine *eng, const void *bytes, size_t len, oee_payload **out) {
  void *pl;
  int rc = oee__pipeline_decode(bytes, len, oee__engine_models(eng), &pl);
  if (rc != 0) return rc;
  if ((*out = oee_malloc(sizeof(**out))) == NULL) {
    oee__pipeline_free(pl);
    return OEE_ENOMEM;
  }
  **out = (oee_payload){pl, &oee__pipeline_ops};
  return 0;
}
