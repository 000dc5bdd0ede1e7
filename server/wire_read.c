/* wire_read.c - submission requests read straight from bytes (see
 * wire_read.h). Each request is walked twice: once to check that it is
 * plain and to size it (its repeated fields, its strings), then, in one
 * piece of arena memory, to fill the struct. */
#include "server/wire_read.h"

#include <string.h>

#include "proto/oee/v1/orchestrator.pb-c.h"

enum { WT_VARINT = 0, WT_FIXED64 = 1, WT_LEN = 2 };

/* SubmitTaskRequest's fields (proto/oee/v1/orchestrator.proto). */
enum {
  F_NAME = 1,
  F_TASK_TYPE,
  F_PRIORITY,
  F_CONTEXT,
  F_MAX_ATTEMPTS,
  F_BACKOFF,
  F_MAX_BACKOFF,
  F_TIMEOUT,
  F_RUN_AT,
  F_IDEMPOTENCY_KEY,
  F_DEPENDS_ON,
  F_LAST = F_DEPENDS_ON
};

/* The wire type each field must have. */
static const int8_t field_type[F_LAST + 1] = {
    [F_NAME] = WT_LEN,
    [F_TASK_TYPE] = WT_LEN,
    [F_PRIORITY] = WT_VARINT,
    [F_CONTEXT] = WT_LEN,
    [F_MAX_ATTEMPTS] = WT_VARINT,
    [F_BACKOFF] = WT_FIXED64,
    [F_MAX_BACKOFF] = WT_FIXED64,
    [F_TIMEOUT] = WT_FIXED64,
    [F_RUN_AT] = WT_LEN,
    [F_IDEMPOTENCY_KEY] = WT_LEN,
    [F_DEPENDS_ON] = WT_LEN,
};

typedef struct reader {
  const uint8_t *p, *end;
} reader;

/* At most ten bytes, as protobuf-c reads them; -1 past the end. */
static inline int varint(reader *r, uint64_t *v) {
  if (r->p < r->end && *r->p < 0x80) { /* most tags and lengths */
    *v = *r->p++;
    return 0;
  }
  uint64_t x = 0;
  for (unsigned shift = 0; shift < 70 && r->p < r->end; shift += 7) {
    uint8_t b = *r->p++;
    x |= (uint64_t)(b & 0x7f) << shift;
    if (b < 0x80) {
      *v = x;
      return 0;
    }
  }
  return -1;
}

/* The next tag: its field (0 for a number this reader does not take) and
 * wire type. -1 at a tag that does not parse. */
static inline int next_tag(reader *r, uint32_t *field, int *wt) {
  uint64_t tag;
  if (varint(r, &tag) != 0 || tag > UINT32_MAX) return -1;
  *field = (uint32_t)(tag >> 3);
  *wt = (int)(tag & 7);
  return 0;
}

/* Skips the value of a field with wire type wt; -1 when it overruns. A
 * length-delimited value is returned in *sub. */
static inline int take(reader *r, int wt, reader *sub) {
  uint64_t v;
  if (wt == WT_VARINT) return varint(r, &v);
  if (wt == WT_FIXED64) {
    if (r->end - r->p < 8) return -1;
    r->p += 8;
    return 0;
  }
  if (wt != WT_LEN || varint(r, &v) != 0 || v > (uint64_t)(r->end - r->p)) return -1;
  *sub = (reader){r->p, r->p + v};
  r->p += v;
  return 0;
}

/* One request's memory, taken from the arena at once: its structs from
 * the front (pointer-aligned), its strings from the back. */
typedef struct bump {
  char *front, *back;
} bump;

static void *carve(bump *b, size_t n) {
  void *p = b->front;
  b->front += (n + sizeof(void *) - 1) & ~(sizeof(void *) - 1);
  return p;
}

static char *string(bump *b, const reader *v) {
  size_t n = (size_t)(v->end - v->p);
  b->back -= n + 1;
  memcpy(b->back, v->p, n);
  b->back[n] = '\0';
  return b->back;
}

static double fixed64(const reader *v) {
  uint64_t bits = 0;
  for (int i = 7; i >= 0; i--) bits = bits << 8 | v->p[i];
  double d;
  memcpy(&d, &bits, sizeof d);
  return d;
}

/* A message of string fields 1 and 2 (a map entry) or varint fields 1 and
 * 2 (a Timestamp), each at most once: the values' readers, or -1. */
static int pair(reader r, int wt, reader *one, reader *two, int *seen) {
  *seen = 0;
  while (r.p < r.end) {
    uint32_t field;
    int t;
    reader v = {r.p, r.p};
    if (next_tag(&r, &field, &t) != 0 || (field != 1 && field != 2) || t != wt) return -1;
    if (*seen & (1 << field)) return -1;
    *seen |= 1 << field;
    const uint8_t *at = r.p;
    if (take(&r, wt, &v) != 0) return -1;
    if (wt == WT_VARINT) v = (reader){at, r.p};
    *(field == 1 ? one : two) = v;
  }
  return 0;
}

static uint64_t varint_of(reader v) {
  uint64_t x = 0;
  (void)varint(&v, &x); /* checked by pair() */
  return x;
}

static Oee__V1__SubmitTaskRequest__ContextEntry *context_entry(bump *b, reader r) {
  reader k = {NULL, NULL}, v = {NULL, NULL};
  int seen;
  if (pair(r, WT_LEN, &k, &v, &seen) != 0) return NULL;
  Oee__V1__SubmitTaskRequest__ContextEntry *e = carve(b, sizeof(*e));
  oee__v1__submit_task_request__context_entry__init(e);
  if (seen & 2) e->key = string(b, &k);
  if (seen & 4) e->value = string(b, &v);
  return e;
}

static Google__Protobuf__Timestamp *timestamp(bump *b, reader r) {
  reader s = {NULL, NULL}, n = {NULL, NULL};
  int seen;
  if (pair(r, WT_VARINT, &s, &n, &seen) != 0) return NULL;
  Google__Protobuf__Timestamp *ts = carve(b, sizeof(*ts));
  google__protobuf__timestamp__init(ts);
  if (seen & 2) ts->seconds = (int64_t)varint_of(s);
  if (seen & 4) ts->nanos = (int32_t)(uint32_t)varint_of(n);
  return ts;
}

/* What pass 1 learns of a request: its repeated fields' counts and the
 * bytes its strings take at most (their lengths and NULs). */
typedef struct shape {
  size_t n_context, n_depends, text;
  int run_at;
} shape;

/* Pass 1: every field known, of its wire type, singular ones once. */
static int check(reader r, shape *sh) {
  uint32_t seen = 0;
  *sh = (shape){0};
  while (r.p < r.end) {
    uint32_t field;
    int wt;
    reader v = {r.p, r.p};
    if (next_tag(&r, &field, &wt) != 0 || field == 0 || field > F_LAST) return -1;
    if (wt != field_type[field] || take(&r, wt, &v) != 0) return -1;
    if (wt == WT_LEN) sh->text += (size_t)(v.end - v.p) + 2; /* an entry holds two strings */
    if (field == F_CONTEXT) {
      sh->n_context++;
    } else if (field == F_DEPENDS_ON) {
      sh->n_depends++;
    } else if (seen & (1u << field)) {
      return -1; /* protobuf would keep the last, or merge a message */
    }
    seen |= 1u << field;
  }
  sh->run_at = (seen >> F_RUN_AT) & 1;
  return 0;
}

/* The bytes a request of this shape takes from the arena. */
static size_t shape_bytes(const shape *sh) {
  const size_t w = sizeof(void *) - 1;
  size_t structs = ((sizeof(Oee__V1__SubmitTaskRequest) + w) & ~w) +
                   sh->n_context * (sizeof(void *) +
                                    ((sizeof(Oee__V1__SubmitTaskRequest__ContextEntry) + w) & ~w)) +
                   sh->n_depends * sizeof(void *) +
                   (sh->run_at ? (sizeof(Google__Protobuf__Timestamp) + w) & ~w : 0);
  return structs + sh->text;
}

/* Pass 2, one field: 0, or -1 for a nested message that is not plain. */
static int fill(bump *b, Oee__V1__SubmitTaskRequest *m, uint32_t field, reader v, size_t *ctx,
                size_t *dep) {
  uint64_t x = 0;
  switch (field) {
    case F_NAME:
      m->name = string(b, &v);
      return 0;
    case F_TASK_TYPE:
      m->task_type = string(b, &v);
      return 0;
    case F_IDEMPOTENCY_KEY:
      m->idempotency_key = string(b, &v);
      return 0;
    case F_DEPENDS_ON:
      m->depends_on[(*dep)++] = string(b, &v);
      return 0;
    case F_CONTEXT:
      return (m->context[(*ctx)++] = context_entry(b, v)) ? 0 : -1;
    case F_RUN_AT:
      return (m->run_at = timestamp(b, v)) ? 0 : -1;
    case F_PRIORITY:
      (void)varint(&v, &x);
      m->priority_present_case = OEE__V1__SUBMIT_TASK_REQUEST__PRIORITY_PRESENT_PRIORITY;
      m->priority = (int32_t)(uint32_t)x;
      return 0;
    case F_MAX_ATTEMPTS:
      (void)varint(&v, &x);
      m->max_attempts_present_case =
          OEE__V1__SUBMIT_TASK_REQUEST__MAX_ATTEMPTS_PRESENT_MAX_ATTEMPTS;
      m->max_attempts = (int32_t)(uint32_t)x;
      return 0;
    case F_BACKOFF:
      m->backoff_seconds_present_case =
          OEE__V1__SUBMIT_TASK_REQUEST__BACKOFF_SECONDS_PRESENT_BACKOFF_SECONDS;
      m->backoff_seconds = fixed64(&v);
      return 0;
    case F_MAX_BACKOFF:
      m->max_backoff_seconds_present_case =
          OEE__V1__SUBMIT_TASK_REQUEST__MAX_BACKOFF_SECONDS_PRESENT_MAX_BACKOFF_SECONDS;
      m->max_backoff_seconds = fixed64(&v);
      return 0;
    default: /* F_TIMEOUT: check() let nothing else through */
      m->timeout_seconds = fixed64(&v);
      return 0;
  }
}

/* The value of a field whose tag was just read, as fill() takes it: the
 * bytes of a varint or fixed64, the contents of a length-delimited one. */
static reader value(reader *r, int wt) {
  const uint8_t *at = r->p;
  reader v = {at, at};
  (void)take(r, wt, &v); /* checked by check() */
  return wt == WT_LEN ? v : (reader){at, r->p};
}

static Oee__V1__SubmitTaskRequest *submit_task(oee_arena *a, reader r) {
  shape sh;
  if (check(r, &sh) != 0) return NULL;
  size_t bytes = shape_bytes(&sh);
  char *mem = oee_arena_alloc_raw(a, bytes);
  if (mem == NULL) return NULL;
  bump b = {mem, mem + bytes};
  Oee__V1__SubmitTaskRequest *m = carve(&b, sizeof(*m));
  oee__v1__submit_task_request__init(m);
  if (sh.n_context > 0) {
    m->context = carve(&b, sh.n_context * sizeof(*m->context));
    m->n_context = sh.n_context;
  }
  if (sh.n_depends > 0) {
    m->depends_on = carve(&b, sh.n_depends * sizeof(*m->depends_on));
    m->n_depends_on = sh.n_depends;
  }
  size_t ctx = 0, dep = 0;
  while (r.p < r.end) {
    uint32_t field = 0;
    int wt = 0;
    (void)next_tag(&r, &field, &wt);
    if (fill(&b, m, field, value(&r, wt), &ctx, &dep) != 0) return NULL;
  }
  return m;
}

ProtobufCMessage *oee_wire_read_submit_task(const uint8_t *data, size_t len, oee_arena *a) {
  Oee__V1__SubmitTaskRequest *m = submit_task(a, (reader){data, data + len});
  return m ? &m->base : NULL;
}

ProtobufCMessage *oee_wire_read_submit_tasks(const uint8_t *data, size_t len, oee_arena *a) {
  reader r = {data, data + len};
  size_t n = 0;
  while (r.p < r.end) { /* field 1, length-delimited, only */
    uint32_t field;
    int wt;
    reader v;
    if (next_tag(&r, &field, &wt) != 0 || field != 1 || wt != WT_LEN || take(&r, wt, &v) != 0) {
      return NULL;
    }
    n++;
  }
  Oee__V1__SubmitTasksRequest *m = oee_arena_alloc_raw(a, sizeof(*m));
  if (m == NULL) return NULL;
  oee__v1__submit_tasks_request__init(m);
  if (n == 0) return &m->base;
  m->requests = oee_arena_alloc_raw(a, n * sizeof(*m->requests));
  if (m->requests == NULL) return NULL;
  m->n_requests = n;
  r = (reader){data, data + len};
  for (size_t i = 0; i < n; i++) {
    uint32_t field = 0;
    int wt = 0;
    (void)next_tag(&r, &field, &wt);
    if ((m->requests[i] = submit_task(a, value(&r, wt))) == NULL) return NULL;
  }
  return &m->base;
}
