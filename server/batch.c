/*
 * batch.c - SubmitTasks (see submit.h).
 *
 * DESIGN. Every entry is submitted asynchronously and the one reply is sent
 * when the last entry is settled (acknowledged or refused). `left` counts
 * the entries not settled plus one for the handler, so the reply cannot be
 * built while the handler still works; whoever settles last writes it as
 * bytes (server/wire.h), sized from the snapshots, so an acknowledged
 * entry is never answered with an out-of-memory error.
 *
 * References. An entry may depend on an earlier entry of the batch as
 * "#<index>". The engine tells a task's id only in its acknowledgement (on
 * the commit thread with the sqlite store), and a dependency must exist,
 * stored, before a task naming it is submitted, so such an entry is
 * submitted only once every entry it names is settled: each entry has a
 * count of `waits` (its references not settled yet, plus one the handler
 * drops when its loop reaches the entry), and whoever drops the last one
 * (the handler, or the acknowledgement of the last entry it names, on any
 * thread) puts the entry on the batch's `ready` stack. One thread at a time
 * (the one that sets `draining`) takes the stack and submits what is on it;
 * a thread that finds another one draining leaves its entries to that one,
 * which looks at the stack again after it lets go. So chains of references
 * never recurse (with the memory store an acknowledgement comes inside the
 * submit call), and a reference to a refused entry refuses its dependant
 * (FAILED_PRECONDITION) without a submission. Dependants of one entry go
 * in batch order; a dependant is created after the entries it names, so a
 * batch with references is not created in request order.
 *
 * Threads and memory. The arena is not thread-safe, so the handler prepares
 * everything a submission needs before the first entry is submitted (phase
 * 1, CQ thread): each entry's core submission with its context and
 * depends_on arrays, the reference table, the dependants lists and, for an
 * entry with references, its own message buffer. From then on only the
 * handler allocates from the arena (its own refusals, on the CQ thread)
 * until the last entry settles; callbacks and drainers on other threads
 * write only their entry's fields, the ready stack and the first commit
 * failure's message (`why`). A dependant's fields are published to the
 * thread that starts it by the atomic `waits` count.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "server/convert.h"
#include "server/errmap.h"
#include "server/service.h"
#include "server/submit.h"
#include "server/wire.h"

#define NO_ENTRY UINT32_MAX

typedef struct batch batch;

typedef struct batch_entry {
  batch *b;
  uint32_t i;                /* index in the batch */
  oee_submit sub;            /* prepared in phase 1; valid while code is OK */
  const int32_t *refs;       /* per depends_on entry: the entry it names, -1 for
                              * an id; NULL when it names none */
  const char **deps;         /* sub.depends_on when refs: "#k" filled in with
                              * entry k's id when this entry starts */
  char *msgbuf;              /* OEE_REPLY_MESSAGE_BYTES for a refusal on any
                              * thread; only when refs */
  atomic_uint waits;         /* references not settled yet + the handler's */
  uint32_t next_ready;       /* link of the ready stack */
  const oee_task_info *snap; /* the acknowledged task (a reference), or NULL */
  int duplicate;             /* snap is an earlier task with the same key */
  grpc_status_code code;     /* a refusal's code, else OK */
  const char *message;       /* a refusal's reason */
  size_t task_size;          /* the reply's sizes (the replying thread) */
  size_t result_size;
} batch_entry;

struct batch {
  reply_ctx *out;
  oee_engine *eng;
  uint32_t n;
  batch_entry *e;
  uint32_t *dependants;   /* entry k's dependants are dependants[first[k]..first[k+1]) */
  uint32_t *first;        /* n + 1 offsets; NULL when no entry has references */
  _Atomic uint32_t ready; /* top of the ready stack, NO_ENTRY when empty */
  atomic_int draining;    /* a thread is submitting the ready entries */
  atomic_flag said;       /* the first failed commit wrote `why` */
  char why[OEE_ERROR_MESSAGE_MAX];
  atomic_size_t left;
};

static void release_batch(void *arg) {
  batch *b = arg;
  for (uint32_t i = 0; i < b->n; i++) oee_task_info_unref(b->e[i].snap);
}

/* SubmitTaskResult's fields. */
enum { R_TASK_ID = 1, R_TASK, R_CODE, R_MESSAGE, R_DUPLICATE };

static size_t result_size(batch_entry *e) {
  if (e->snap == NULL) {
    return oee_wire_uint_field_size(R_CODE, (uint64_t)e->code) +
           oee_wire_str_field_size(R_MESSAGE, e->message);
  }
  return oee_wire_str_field_size(R_TASK_ID, e->snap->id) +
         oee_wire_task_field_size(R_TASK, e->snap, &e->task_size) +
         oee_wire_uint_field_size(R_DUPLICATE, (uint64_t)e->duplicate);
}

static uint8_t *result(uint8_t *p, const batch_entry *e) {
  if (e->snap == NULL) {
    p = oee_wire_uint_field(p, R_CODE, (uint64_t)e->code);
    return oee_wire_str_field(p, R_MESSAGE, e->message);
  }
  p = oee_wire_str_field(p, R_TASK_ID, e->snap->id);
  p = oee_wire_task_field(p, R_TASK, e->snap, e->task_size);
  return oee_wire_uint_field(p, R_DUPLICATE, (uint64_t)e->duplicate);
}

/* SubmitTasksResponse: results = 1, one per entry in batch order, written
 * as bytes (server/wire.h) once every entry is settled. */
static void batch_reply(batch *b) {
  size_t n = 0;
  for (uint32_t i = 0; i < b->n; i++) {
    batch_entry *e = &b->e[i];
    e->result_size = result_size(e);
    n += oee_wire_msg_head_size(1, e->result_size) + e->result_size;
  }
  uint8_t *p = oee_reply_bytes(b->out, n);
  for (uint32_t i = 0; i < b->n; i++) {
    p = oee_wire_msg_head(p, 1, b->e[i].result_size);
    p = result(p, &b->e[i]);
  }
  oee_reply_send(b->out, GRPC_STATUS_OK);
}

static void batch_settle(batch *b) {
  if (atomic_fetch_sub(&b->left, 1) == 1) batch_reply(b);
}

/* ----------------------------------------------------- the ready stack */

static void push_ready(batch *b, uint32_t i) {
  uint32_t top = atomic_load(&b->ready);
  do {
    b->e[i].next_ready = top;
  } while (!atomic_compare_exchange_weak(&b->ready, &top, i));
}

/* Takes the whole stack, in the order it was pushed (only the drainer). */
static uint32_t take_ready(batch *b) {
  uint32_t i = atomic_exchange(&b->ready, NO_ENTRY), fifo = NO_ENTRY;
  while (i != NO_ENTRY) {
    uint32_t next = b->e[i].next_ready;
    b->e[i].next_ready = fifo;
    fifo = i;
    i = next;
  }
  return fifo;
}

static void entry_start(batch *b, batch_entry *e);

/* Starts the ready entries unless another thread does; see DESIGN. The
 * caller holds a count of `left`, so the batch outlives the call. */
static void drain(batch *b) {
  for (;;) {
    if (atomic_exchange(&b->draining, 1)) return; /* the drainer will see them */
    for (uint32_t i; (i = take_ready(b)) != NO_ENTRY;) {
      while (i != NO_ENTRY) {
        uint32_t next = b->e[i].next_ready;
        entry_start(b, &b->e[i]);
        i = next;
      }
    }
    atomic_store(&b->draining, 0);
    if (atomic_load(&b->ready) == NO_ENTRY) return;
  }
}

/* ------------------------------------------------------------ entries */

/* Entry e's outcome is written: its dependants may go, then it counts as
 * settled. Any thread. */
static void entry_settle(batch *b, batch_entry *e) {
  if (b->first != NULL) {
    for (uint32_t d = b->first[e->i]; d < b->first[e->i + 1]; d++) {
      uint32_t j = b->dependants[d];
      if (atomic_fetch_sub(&b->e[j].waits, 1) == 1) push_ready(b, j);
    }
    drain(b);
  }
  batch_settle(b);
}

/* A refusal of an entry with references, on any thread. */
__attribute__((format(printf, 4, 5))) static void entry_refuse(batch *b, batch_entry *e,
                                                               grpc_status_code code,
                                                               const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->msgbuf, OEE_REPLY_MESSAGE_BYTES, fmt, ap);
  va_end(ap);
  e->code = code;
  e->message = e->msgbuf;
  entry_settle(b, e);
}

static void entry_submitted(void *arg, int rc, const oee_task_info *t, const oee_error *err) {
  batch_entry *e = arg;
  batch *b = e->b;
  e->duplicate = rc == OEE_DUPLICATE; /* an earlier task (maybe an earlier entry) answers */
  if (rc == OEE_DUPLICATE) rc = 0;
  if (rc == 0) {
    e->snap = oee_task_info_ref(t);
  } else {
    e->code = oee_status_from_error(rc);
    /* Commits fail a whole group at once, for one cause: one message. */
    if (!atomic_flag_test_and_set(&b->said)) {
      snprintf(b->why, sizeof(b->why), "%s",
               err && err->message[0] ? err->message : oee_strerror(rc));
    }
    e->message = b->why;
  }
  entry_settle(b, e);
}

/* Starts an entry with references, every entry it names settled: resolves
 * them, or refuses it if one was refused. Any thread (the drainer). */
static void entry_start(batch *b, batch_entry *e) {
  for (size_t d = 0; d < e->sub.depends_on_len; d++) {
    int32_t k = e->refs[d];
    if (k < 0) continue;
    if (b->e[k].snap == NULL) {
      entry_refuse(b, e, GRPC_STATUS_FAILED_PRECONDITION,
                   "depends_on[%zu] \"#%d\" names entry %d of this batch, which was refused", d,
                   (int)k, (int)k);
      return;
    }
    e->deps[d] = b->e[k].snap->id;
  }
  oee_error err;
  int rc = oee_engine_submit_async(b->eng, &e->sub, entry_submitted, e, &err);
  if (rc != 0) {
    entry_refuse(b, e, oee_status_from_error(rc), "%s",
                 err.message[0] ? err.message : oee_strerror(rc));
  }
}

/* An entry without references, submitted by the handler (CQ thread): a
 * refusal's reason goes to the arena. */
static void entry_submit(batch *b, batch_entry *e) {
  reply_ctx *out = b->out;
  oee_error err;
  int rc = oee_engine_submit_async(b->eng, &e->sub, entry_submitted, e, &err);
  if (rc == 0) return; /* settled by its callback */
  oee_error why = {.code = rc};
  e->code = oee_reply_refused(out, err.message[0] ? &err : &why);
  e->message = oee_arena_printf(&out->arena, "%s", out->err);
  entry_settle(b, e);
}

/* ----------------------------------------------------------- phase 1 */

/* The index of "#<index>" (digits only), saturated at UINT32_MAX; -1 when
 * the text after '#' is not a decimal number. */
static int64_t ref_index(const char *ref) {
  const char *p = ref + 1;
  uint64_t k = 0;
  if (*p < '0' || *p > '9') return -1;
  for (; *p >= '0' && *p <= '9'; p++) {
    k = k * 10 + (uint64_t)(*p - '0');
    if (k > UINT32_MAX) k = UINT32_MAX;
  }
  return *p ? -1 : (int64_t)k;
}

/* Checks one reference of entry i; its index, or -1 with the message. */
static int64_t ref_check(reply_ctx *out, uint32_t i, size_t d, const char *ref) {
  int64_t k = ref_index(ref);
  if (k < 0) {
    oee_reply_say(out,
                  "depends_on[%zu] \"%.64s\" is neither a task id nor \"#<index>\" of an "
                  "earlier entry of this batch",
                  d, ref);
  } else if (k == i) {
    oee_reply_say(out,
                  "depends_on[%zu] \"%.64s\" names this entry itself; an entry may only depend "
                  "on earlier entries of the batch",
                  d, ref);
  } else if (k > i) {
    oee_reply_say(out,
                  "depends_on[%zu] \"%.64s\" names entry %lld, which does not come before this "
                  "entry (%u); an entry may only depend on earlier entries of the batch",
                  d, ref, (long long)k, (unsigned)i);
  } else {
    return k;
  }
  return -1;
}

static size_t count_refs(const Oee__V1__SubmitTaskRequest *m) {
  size_t n = 0;
  for (size_t d = 0; d < m->n_depends_on; d++) n += m->depends_on[d][0] == OEE_BATCH_REF_PREFIX;
  return n;
}

/* Reads the references of entry e into its tables; returns how many, or -1
 * with the refusal's code and message in out. */
static long entry_refs(reply_ctx *out, batch_entry *e, const Oee__V1__SubmitTaskRequest *m,
                       grpc_status_code *code) {
  size_t n = m->n_depends_on, refs = count_refs(m);
  if (refs == 0) return 0;
  int32_t *idx = oee_arena_alloc(&out->arena, n * sizeof(*idx));
  e->deps = oee_arena_alloc(&out->arena, n * sizeof(*e->deps));
  e->msgbuf = oee_arena_alloc(&out->arena, OEE_REPLY_MESSAGE_BYTES);
  if (idx == NULL || e->deps == NULL || e->msgbuf == NULL) {
    *code = oee_reply_oom(out);
    return -1;
  }
  for (size_t d = 0; d < n; d++) {
    const char *ref = m->depends_on[d];
    e->deps[d] = ref;
    idx[d] = -1;
    if (ref[0] != OEE_BATCH_REF_PREFIX) continue;
    int64_t k = ref_check(out, e->i, d, ref);
    if (k < 0) {
      *code = GRPC_STATUS_INVALID_ARGUMENT;
      return -1;
    }
    idx[d] = (int32_t)k;
  }
  e->refs = idx;
  e->sub.depends_on = e->deps;
  return (long)refs;
}

/* Prepares entry i: its submission and references, or its refusal. Adds
 * its references to *n_refs. */
static void entry_prepare(oee_service *s, batch *b, uint32_t i, const Oee__V1__SubmitTaskRequest *m,
                          size_t *n_refs) {
  reply_ctx *out = b->out;
  batch_entry *e = &b->e[i];
  *e = (batch_entry){.b = b, .i = i, .code = GRPC_STATUS_OK};
  grpc_status_code code = oee_submission(s, out, m, &e->sub);
  long refs = code == GRPC_STATUS_OK ? entry_refs(out, e, m, &code) : -1;
  if (code != GRPC_STATUS_OK) {
    e->refs = NULL;
    e->code = code;
    e->message = oee_arena_printf(&out->arena, "%s", out->err);
    refs = 0;
  }
  atomic_init(&e->waits, (unsigned)refs + 1);
  *n_refs += (size_t)refs;
}

/* The dependants of every entry, from the references of the others. */
static int link_dependants(batch *b, size_t n_refs) {
  reply_ctx *out = b->out;
  b->first = oee_arena_alloc(&out->arena, (b->n + 1) * sizeof(*b->first));
  b->dependants = oee_arena_alloc(&out->arena, n_refs * sizeof(*b->dependants));
  if (b->first == NULL || b->dependants == NULL) return -1;
  for (uint32_t j = 0; j < b->n; j++) {
    const batch_entry *e = &b->e[j];
    for (size_t d = 0; e->refs && d < e->sub.depends_on_len; d++) {
      if (e->refs[d] >= 0) b->first[e->refs[d] + 1]++;
    }
  }
  for (uint32_t k = 0; k < b->n; k++) b->first[k + 1] += b->first[k];
  uint32_t *fill = oee_arena_alloc(&out->arena, b->n * sizeof(*fill));
  if (fill == NULL) return -1;
  memcpy(fill, b->first, b->n * sizeof(*fill));
  for (uint32_t j = 0; j < b->n; j++) { /* ascending j: dependants in batch order */
    const batch_entry *e = &b->e[j];
    for (size_t d = 0; e->refs && d < e->sub.depends_on_len; d++) {
      if (e->refs[d] >= 0) b->dependants[fill[e->refs[d]]++] = j;
    }
  }
  return 0;
}

/* What one entry of a batch may take from the arena: a refusal's message,
 * its submission and, with references, their tables and its message
 * buffer. (The reply is written as bytes outside the arena.) */
static size_t entry_bytes(const Oee__V1__SubmitTaskRequest *m) {
  size_t bytes = OEE_ARENA_SIZE(OEE_REPLY_MESSAGE_BYTES) + oee_submit_bytes(m, 0);
  if (count_refs(m) == 0) return bytes;
  return bytes + OEE_ARENA_SIZE(m->n_depends_on * sizeof(int32_t)) +
         OEE_ARENA_SIZE(m->n_depends_on * sizeof(char *)) +
         OEE_ARENA_SIZE(OEE_REPLY_MESSAGE_BYTES) +
         OEE_ARENA_SIZE(m->n_depends_on * sizeof(uint32_t)); /* its share of `dependants` */
}

/* The batch, with the memory of every entry
 * reserved, or NULL when out of memory (nothing submitted yet). */
static batch *batch_new(oee_service *s, reply_ctx *out, const Oee__V1__SubmitTasksRequest *m) {
  /* `first` and the fill offsets of link_dependants(), at most. */
  size_t n = m->n_requests, bytes = 2 * OEE_ARENA_SIZE((n + 1) * sizeof(uint32_t));
  for (size_t i = 0; i < n; i++) bytes += entry_bytes(m->requests[i]);
  batch *b = oee_arena_alloc(&out->arena, sizeof(*b));
  if (b == NULL) return NULL;
  b->out = out;
  b->eng = s->eng;
  b->n = (uint32_t)n;
  b->e = oee_arena_alloc(&out->arena, n * sizeof(*b->e));
  if (b->e == NULL) return NULL;
  if (oee_arena_reserve(&out->arena, bytes) != 0) return NULL;
  b->first = NULL;
  b->dependants = NULL;
  atomic_init(&b->ready, NO_ENTRY);
  atomic_init(&b->draining, 0);
  atomic_flag_clear(&b->said);
  b->why[0] = '\0';
  atomic_init(&b->left, n + 1);
  return b;
}

/* Phase 2, the handler's loop: refusals settle, entries without
 * references go at once, the others when what they name is settled. */
static void batch_start(batch *b) {
  for (uint32_t i = 0; i < b->n; i++) {
    batch_entry *e = &b->e[i];
    if (e->code != GRPC_STATUS_OK) {
      entry_settle(b, e);
    } else if (e->refs == NULL) {
      entry_submit(b, e);
    } else if (atomic_fetch_sub(&e->waits, 1) == 1) {
      push_ready(b, i);
      drain(b);
    }
  }
}

grpc_status_code oee_h_submit_tasks(oee_service *s, const ProtobufCMessage *req, reply_ctx *out) {
  const Oee__V1__SubmitTasksRequest *m = (const Oee__V1__SubmitTasksRequest *)req;
  size_t n = m->n_requests, n_refs = 0;
  if (n == 0 || n > s->cfg->max_batch || n >= NO_ENTRY) {
    oee_reply_say(out, "a batch must hold 1 to max_batch=%zu requests, got %zu", s->cfg->max_batch,
                  n);
    return GRPC_STATUS_INVALID_ARGUMENT;
  }
  batch *b = batch_new(s, out, m);
  if (b == NULL) return oee_reply_oom(out);
  oee_reply_release(out, release_batch, b);
  for (uint32_t i = 0; i < b->n; i++) entry_prepare(s, b, i, m->requests[i], &n_refs);
  if (n_refs > 0 && link_dependants(b, n_refs) != 0) return oee_reply_oom(out);
  oee_reply_defer(out);
  batch_start(b);
  batch_settle(b); /* the handler's own count: the reply may go now */
  return GRPC_STATUS_OK;
}
