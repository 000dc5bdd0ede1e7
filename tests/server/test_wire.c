/* test_wire.c - server/wire.h writes the same bytes protobuf-c packs for
 * the Task message built field by field (pb_task below), for tasks chosen to reach every
 * field's edge (empty and long strings, negative numbers, times before the
 * epoch and at int64's ends, -0.0) and for many random ones; and what it
 * writes decodes back to the snapshot's values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "server/convert.h"
#include "server/wire.h"

/* A snapshot with room for what the tests put in it. */
typedef struct {
  oee_task_info t;
  oee_kv ctx[8];
  const char *deps[4];
} fixture;

static void base(fixture *f) {
  memset(f, 0, sizeof(*f));
  snprintf(f->t.id, sizeof(f->t.id), "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b");
  f->t.name = "resize";
  f->t.task_type = "echo";
  f->t.result = "";
  f->t.error_message = "";
  f->t.idempotency_key = "";
  f->t.schedule_id = "";
  f->t.remote_worker_id = "";
  f->t.status = OEE_TASK_QUEUED;
  f->t.priority = 5;
  f->t.worker_id = -1;
  f->t.created_at_ns = INT64_C(1764633600123456789);
  f->t.max_attempts = 1;
  f->t.context = f->ctx;
  f->t.depends_on = f->deps;
}

/* The reference: the Task built field by field as a protobuf-c message
 * (as the server did before server/wire.c), with every field of the
 * snapshot in it. Strings are borrowed from the snapshot. */
static char *str(const char *s) { return (char *)(uintptr_t)s; }

static void task_context(oee_arena *a, Oee__V1__Task *m, const oee_task_info *t) {
  if (t->context_len == 0) return;
  m->context = oee_arena_alloc(a, t->context_len * sizeof(*m->context));
  Oee__V1__Task__ContextEntry *e = oee_arena_alloc(a, t->context_len * sizeof(*e));
  if (m->context == NULL || e == NULL) return; /* the arena says it failed */
  m->n_context = t->context_len;
  for (size_t i = 0; i < t->context_len; i++) {
    oee__v1__task__context_entry__init(&e[i]);
    e[i].key = str(t->context[i].key);
    e[i].value = str(t->context[i].value);
    m->context[i] = &e[i];
  }
}

/* Attempts, timing, idempotency, dependencies and who ran it. */
static void task_semantics(oee_arena *a, Oee__V1__Task *m, const oee_task_info *t) {
  m->attempt = t->attempt;
  m->max_attempts = t->max_attempts;
  m->backoff_seconds = t->backoff_seconds;
  m->max_backoff_seconds = t->max_backoff_seconds;
  m->timeout_seconds = t->timeout_seconds;
  m->run_at = oee_pb_time(a, t->run_at_ns);
  m->idempotency_key = str(t->idempotency_key);
  m->schedule_id = str(t->schedule_id);
  m->remote_worker_id = str(t->remote_worker_id);
  if (t->depends_on_len == 0) return;
  m->depends_on = oee_arena_alloc(a, t->depends_on_len * sizeof(*m->depends_on));
  if (m->depends_on == NULL) return; /* the arena says it failed */
  m->n_depends_on = t->depends_on_len;
  for (size_t i = 0; i < t->depends_on_len; i++) m->depends_on[i] = str(t->depends_on[i]);
}

static Oee__V1__Task *pb_task(oee_arena *a, const oee_task_info *t) {
  Oee__V1__Task *m = oee_arena_alloc(a, sizeof(*m));
  if (m == NULL) return NULL;
  oee__v1__task__init(m);
  m->id = str(t->id);
  m->name = str(t->name);
  m->status = (Oee__V1__TaskStatus)t->status;
  m->priority = t->priority;
  m->task_type = str(t->task_type);
  task_context(a, m, t);
  m->created_at = oee_pb_time(a, t->created_at_ns);
  m->started_at = oee_pb_time(a, t->started_at_ns);
  m->completed_at = oee_pb_time(a, t->completed_at_ns);
  m->error_message = str(t->error_message);
  m->result = str(t->result);
  m->worker_id = t->worker_id;
  task_semantics(a, m, t);
  return m;
}

/* protobuf-c's bytes for the same task. */
static uint8_t *reference(const oee_task_info *t, size_t *len) {
  oee_arena a;
  oee_arena_init(&a);
  Oee__V1__Task *m = pb_task(&a, t);
  assert_non_null(m);
  assert_false(oee_arena_failed(&a));
  *len = protobuf_c_message_get_packed_size(&m->base);
  uint8_t *buf = malloc(*len + 1);
  assert_non_null(buf);
  assert_int_equal(protobuf_c_message_pack(&m->base, buf), *len);
  oee_arena_free(&a);
  return buf;
}

/* Sizes, writes and compares; returns the packed length. */
static size_t check_same(const oee_task_info *t) {
  size_t want_len;
  uint8_t *want = reference(t, &want_len);
  size_t len = oee_wire_task_size(t);
  assert_int_equal(len, want_len);
  uint8_t *got = malloc(len + 16);
  assert_non_null(got);
  memset(got, 0xA5, len + 16);
  uint8_t *end = oee_wire_task(got, t);
  assert_ptr_equal(end, got + len);
  assert_memory_equal(got, want, len);
  for (size_t i = len; i < len + 16; i++) assert_int_equal(got[i], 0xA5); /* no overrun */
  /* As a field of an outer message: tag 2, the length, then the body. */
  size_t task_size, field_len = oee_wire_task_field_size(2, t, &task_size);
  assert_int_equal(task_size, len);
  uint8_t *field = malloc(field_len);
  assert_non_null(field);
  assert_ptr_equal(oee_wire_task_field(field, 2, t, task_size), field + field_len);
  assert_int_equal(field[0], (2 << 3) | 2);
  assert_memory_equal(field + field_len - len, want, len);
  free(field);
  free(got);
  free(want);
  return len;
}

static void test_plain_task(void **state) {
  (void)state;
  fixture f;
  base(&f);
  check_same(&f.t);
  /* The fields decode back to the snapshot's values. */
  uint8_t buf[512];
  size_t len = (size_t)(oee_wire_task(buf, &f.t) - buf);
  Oee__V1__Task *m = oee__v1__task__unpack(NULL, len, buf);
  assert_non_null(m);
  assert_string_equal(m->id, f.t.id);
  assert_string_equal(m->name, "resize");
  assert_int_equal(m->priority, 5);
  assert_int_equal(m->worker_id, -1);
  assert_int_equal(m->created_at->seconds, INT64_C(1764633600));
  assert_int_equal(m->created_at->nanos, 123456789);
  assert_null(m->started_at);
  oee__v1__task__free_unpacked(m, NULL);
}

/* Every field set, strings of 0, 1, 127, 128 and 20,000 bytes (one, two
 * and three bytes of length), a map entry with an empty key or value and
 * an empty dependency. */
static void test_every_field(void **state) {
  (void)state;
  static char big[20001], s127[128], s128[129];
  memset(big, 'x', sizeof(big) - 1);
  memset(s127, 'y', sizeof(s127) - 1);
  memset(s128, 'z', sizeof(s128) - 1);
  fixture f;
  base(&f);
  f.t.name = big;
  f.t.task_type = s127;
  f.t.result = s128;
  f.t.error_message = "é ✓";
  f.t.idempotency_key = "k";
  f.t.schedule_id = "nightly";
  f.t.remote_worker_id = "w-1";
  f.t.status = OEE_TASK_ERROR;
  f.t.priority = 10;
  f.t.worker_id = 3;
  f.t.started_at_ns = INT64_C(1764633601000000000); /* nanos 0: not written */
  f.t.completed_at_ns = 1;
  f.t.run_at_ns = INT64_C(1764633700000000001);
  f.t.attempt = 2;
  f.t.max_attempts = 7;
  f.t.timeout_seconds = 2.5;
  f.t.backoff_seconds = 0.125;
  f.t.max_backoff_seconds = 1e300;
  f.ctx[0] = (oee_kv){"", "empty key"};
  f.ctx[1] = (oee_kv){"a", ""};
  f.ctx[2] = (oee_kv){"src", big};
  f.t.context_len = 3;
  f.deps[0] = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a50";
  f.deps[1] = "";
  f.t.depends_on_len = 2;
  assert_true(check_same(&f.t) > 2 * 20000);
}

/* Negative numbers take ten bytes; times before the epoch count their
 * nanos forward; -0.0 is not written, as protobuf-c treats it as zero. */
static void test_edges(void **state) {
  (void)state;
  fixture f;
  base(&f);
  f.t.priority = -1;
  f.t.worker_id = INT32_MIN;
  f.t.attempt = INT32_MAX;
  f.t.max_attempts = 0;
  f.t.status = (oee_task_status)0;
  f.t.created_at_ns = -1;
  f.t.started_at_ns = INT64_MIN;
  f.t.completed_at_ns = INT64_MAX;
  f.t.run_at_ns = -INT64_C(1000000000);
  f.t.timeout_seconds = -0.0;
  f.t.backoff_seconds = -3.0;
  f.t.max_backoff_seconds = 0.0;
  f.t.name = NULL; /* as protobuf-c: not written */
  check_same(&f.t);
  uint8_t buf[512];
  size_t len = (size_t)(oee_wire_task(buf, &f.t) - buf);
  Oee__V1__Task *m = oee__v1__task__unpack(NULL, len, buf);
  assert_non_null(m);
  assert_int_equal(m->priority, -1);
  assert_int_equal(m->worker_id, INT32_MIN);
  assert_int_equal(m->created_at->seconds, -1);
  assert_int_equal(m->created_at->nanos, 999999999);
  assert_int_equal(m->run_at->seconds, -1);
  assert_int_equal(m->run_at->nanos, 0);
  assert_true(m->backoff_seconds == -3.0);
  oee__v1__task__free_unpacked(m, NULL);
}

static uint64_t rng = 0x9E3779B97F4A7C15u;

static uint64_t next(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

/* A random string of 0..300 bytes (none NUL) from a pool. */
static const char *rand_str(char *pool, size_t *used) {
  size_t n = next() % 4 == 0 ? 0 : next() % 300;
  char *s = pool + *used;
  for (size_t i = 0; i < n; i++) s[i] = (char)(1 + next() % 255);
  s[n] = '\0';
  *used += n + 1;
  return s;
}

static int64_t rand_time(void) {
  switch (next() % 4) {
    case 0:
      return 0;
    case 1:
      return (int64_t)next();
    case 2:
      return -(int64_t)(next() % INT64_C(4000000000000000000));
    default:
      return (int64_t)(next() % INT64_C(2000000000)) * 1000000000;
  }
}

static int rand_int(void) {
  switch (next() % 3) {
    case 0:
      return 0;
    case 1:
      return (int)(next() % 11);
    default:
      return (int)(int32_t)next();
  }
}

static double rand_double(void) {
  static const double pick[] = {0.0, -0.0, 1.0, 0.001, 86400.0, -2.0, 1e-300};
  return pick[next() % (sizeof(pick) / sizeof(pick[0]))];
}

static void random_task(fixture *f, char *pool) {
  size_t used = 0;
  base(f);
  f->t.name = rand_str(pool, &used);
  f->t.task_type = rand_str(pool, &used);
  f->t.result = rand_str(pool, &used);
  f->t.error_message = rand_str(pool, &used);
  f->t.idempotency_key = rand_str(pool, &used);
  f->t.schedule_id = rand_str(pool, &used);
  f->t.remote_worker_id = rand_str(pool, &used);
  f->t.status = (oee_task_status)(next() % OEE_TASK_STATUS_COUNT);
  f->t.priority = rand_int();
  f->t.worker_id = rand_int();
  f->t.attempt = rand_int();
  f->t.max_attempts = rand_int();
  f->t.created_at_ns = rand_time();
  f->t.started_at_ns = rand_time();
  f->t.completed_at_ns = rand_time();
  f->t.run_at_ns = rand_time();
  f->t.timeout_seconds = rand_double();
  f->t.backoff_seconds = rand_double();
  f->t.max_backoff_seconds = rand_double();
  f->t.context_len = next() % 9;
  for (size_t i = 0; i < f->t.context_len; i++) {
    f->ctx[i].key = rand_str(pool, &used);
    f->ctx[i].value = rand_str(pool, &used);
  }
  f->t.depends_on_len = next() % 5;
  for (size_t i = 0; i < f->t.depends_on_len; i++) f->deps[i] = rand_str(pool, &used);
}

static void test_random_tasks(void **state) {
  (void)state;
  char *pool = malloc(40 * 301);
  assert_non_null(pool);
  for (int i = 0; i < 5000; i++) {
    fixture f;
    random_task(&f, pool);
    check_same(&f.t);
  }
  free(pool);
}

/* The primitives at their boundaries: varint lengths 1..10, and the field
 * helpers write nothing for zero and empty. */
static void test_primitives(void **state) {
  (void)state;
  uint8_t buf[16];
  const uint64_t v[] = {0, 127, 128, 16383, 16384, UINT32_MAX, UINT64_MAX};
  const size_t n[] = {1, 1, 2, 2, 3, 5, 10};
  for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
    assert_int_equal(oee_wire_varint_size(v[i]), n[i]);
    assert_ptr_equal(oee_wire_varint(buf, v[i]), buf + n[i]);
  }
  assert_int_equal(oee_wire_varint(buf, 300) - buf, 2);
  assert_int_equal(buf[0], 0xAC);
  assert_int_equal(buf[1], 0x02);
  assert_int_equal(oee_wire_uint_field_size(3, 0), 0);
  assert_ptr_equal(oee_wire_uint_field(buf, 3, 0), buf);
  assert_int_equal(oee_wire_str_field_size(4, ""), 0);
  assert_int_equal(oee_wire_str_field_size(4, NULL), 0);
  assert_ptr_equal(oee_wire_str_field(buf, 4, ""), buf);
  assert_int_equal(oee_wire_time_field_size(3, 0), 0);
  /* Field 16 needs a two-byte tag. */
  assert_int_equal(oee_wire_str_field_size(16, "ab"), 2 + 1 + 2);
  assert_int_equal(oee_wire_msg_head_size(1, 0), 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_plain_task), cmocka_unit_test(test_every_field),
      cmocka_unit_test(test_edges),      cmocka_unit_test(test_random_tasks),
      cmocka_unit_test(test_primitives),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
