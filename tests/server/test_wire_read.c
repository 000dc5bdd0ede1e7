/* test_wire_read.c - server/wire_read.h against protobuf-c: on random
 * requests packed by protobuf-c both build the same struct; on mutated
 * bytes (flips, cuts, splices) whatever the fast reader accepts, protobuf-c
 * accepts too and reads the same; and what it must leave to protobuf-c
 * (a repeated singular field, an unknown field, a packed or mistyped one)
 * it leaves. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/oee/v1/orchestrator.pb-c.h"
#include "server/wire_read.h"

typedef Oee__V1__SubmitTaskRequest req_t;

static void same_str(const char *a, const char *b) {
  assert_non_null(a);
  assert_non_null(b);
  assert_string_equal(a, b);
}

static void same_double(double a, double b) { assert_memory_equal(&a, &b, sizeof a); }

/* Field by field: what a handler reads. */
static void same_request(const req_t *a, const req_t *b) {
  same_str(a->name, b->name);
  same_str(a->task_type, b->task_type);
  same_str(a->idempotency_key, b->idempotency_key);
  assert_int_equal(a->priority_present_case, b->priority_present_case);
  if (a->priority_present_case) assert_int_equal(a->priority, b->priority);
  assert_int_equal(a->max_attempts_present_case, b->max_attempts_present_case);
  if (a->max_attempts_present_case) assert_int_equal(a->max_attempts, b->max_attempts);
  assert_int_equal(a->backoff_seconds_present_case, b->backoff_seconds_present_case);
  if (a->backoff_seconds_present_case) same_double(a->backoff_seconds, b->backoff_seconds);
  assert_int_equal(a->max_backoff_seconds_present_case, b->max_backoff_seconds_present_case);
  if (a->max_backoff_seconds_present_case) {
    same_double(a->max_backoff_seconds, b->max_backoff_seconds);
  }
  same_double(a->timeout_seconds, b->timeout_seconds);
  assert_int_equal(a->run_at == NULL, b->run_at == NULL);
  if (a->run_at) {
    assert_int_equal(a->run_at->seconds, b->run_at->seconds);
    assert_int_equal(a->run_at->nanos, b->run_at->nanos);
  }
  assert_int_equal(a->n_context, b->n_context);
  for (size_t i = 0; i < a->n_context; i++) {
    same_str(a->context[i]->key, b->context[i]->key);
    same_str(a->context[i]->value, b->context[i]->value);
  }
  assert_int_equal(a->n_depends_on, b->n_depends_on);
  for (size_t i = 0; i < a->n_depends_on; i++) same_str(a->depends_on[i], b->depends_on[i]);
}

/* Decodes buf both ways; returns 1 when the fast reader took it (and then
 * protobuf-c read the same), 0 when it left it to protobuf-c. */
static int compare_batch(const uint8_t *buf, size_t len) {
  oee_arena a;
  oee_arena_init(&a);
  ProtobufCMessage *fast = oee_wire_read_submit_tasks(buf, len, &a);
  assert_false(oee_arena_failed(&a));
  Oee__V1__SubmitTasksRequest *ref = oee__v1__submit_tasks_request__unpack(NULL, len, buf);
  int took = fast != NULL;
  if (took) {
    assert_non_null(ref); /* never accepts what protobuf-c refuses */
    const Oee__V1__SubmitTasksRequest *f = (const Oee__V1__SubmitTasksRequest *)fast;
    assert_ptr_equal(fast->descriptor, &oee__v1__submit_tasks_request__descriptor);
    assert_int_equal(f->n_requests, ref->n_requests);
    for (size_t i = 0; i < f->n_requests; i++) same_request(f->requests[i], ref->requests[i]);
  }
  if (ref) oee__v1__submit_tasks_request__free_unpacked(ref, NULL);
  oee_arena_free(&a);
  return took;
}

static int compare_one(const uint8_t *buf, size_t len) {
  oee_arena a;
  oee_arena_init(&a);
  ProtobufCMessage *fast = oee_wire_read_submit_task(buf, len, &a);
  assert_false(oee_arena_failed(&a));
  req_t *ref = oee__v1__submit_task_request__unpack(NULL, len, buf);
  int took = fast != NULL;
  if (took) {
    assert_non_null(ref);
    assert_ptr_equal(fast->descriptor, &oee__v1__submit_task_request__descriptor);
    same_request((const req_t *)fast, ref);
  }
  if (ref) oee__v1__submit_task_request__free_unpacked(ref, NULL);
  oee_arena_free(&a);
  return took;
}

static uint64_t rng = 0xD1B54A32D192ED03u;

static uint64_t next(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

/* Strings of 0..200 bytes, any byte but NUL (protobuf-c keeps C strings). */
static char *rand_str(char *pool, size_t *used) {
  size_t n = next() % 3 == 0 ? 0 : next() % 200;
  char *s = pool + *used;
  for (size_t i = 0; i < n; i++) s[i] = (char)(1 + next() % 255);
  s[n] = '\0';
  *used += n + 1;
  return s;
}

static double rand_double(void) {
  static const double pick[] = {0.0, -0.0, 1.5, 1e300, -7.0, 0.001};
  return pick[next() % 6];
}

typedef struct {
  req_t r;
  Oee__V1__SubmitTaskRequest__ContextEntry e[6], *ep[6];
  char *deps[5];
  Google__Protobuf__Timestamp ts;
} rand_req;

/* Each optional number set or not. */
static void rand_oneofs(rand_req *q) {
  if (next() % 2) {
    q->r.priority_present_case = OEE__V1__SUBMIT_TASK_REQUEST__PRIORITY_PRESENT_PRIORITY;
    q->r.priority = (int32_t)next(); /* negative ones too: ten bytes */
  }
  if (next() % 2) {
    q->r.max_attempts_present_case =
        OEE__V1__SUBMIT_TASK_REQUEST__MAX_ATTEMPTS_PRESENT_MAX_ATTEMPTS;
    q->r.max_attempts = (int32_t)(next() % 200);
  }
  if (next() % 2) {
    q->r.backoff_seconds_present_case =
        OEE__V1__SUBMIT_TASK_REQUEST__BACKOFF_SECONDS_PRESENT_BACKOFF_SECONDS;
    q->r.backoff_seconds = rand_double();
  }
  if (next() % 2) {
    q->r.max_backoff_seconds_present_case =
        OEE__V1__SUBMIT_TASK_REQUEST__MAX_BACKOFF_SECONDS_PRESENT_MAX_BACKOFF_SECONDS;
    q->r.max_backoff_seconds = rand_double();
  }
}

static void random_request(rand_req *q, char *pool, size_t *used) {
  oee__v1__submit_task_request__init(&q->r);
  q->r.name = rand_str(pool, used);
  q->r.task_type = rand_str(pool, used);
  q->r.idempotency_key = rand_str(pool, used);
  rand_oneofs(q);
  q->r.timeout_seconds = rand_double();
  if (next() % 2) {
    google__protobuf__timestamp__init(&q->ts);
    q->ts.seconds = (int64_t)next() % INT64_C(300000000000);
    q->ts.nanos = next() % 2 ? (int32_t)(next() % 1000000000) : 0;
    q->r.run_at = &q->ts;
  }
  q->r.n_context = next() % 7;
  q->r.context = q->ep;
  for (size_t i = 0; i < q->r.n_context; i++) {
    oee__v1__submit_task_request__context_entry__init(&q->e[i]);
    q->e[i].key = rand_str(pool, used);
    q->e[i].value = rand_str(pool, used);
    q->ep[i] = &q->e[i];
  }
  q->r.n_depends_on = next() % 6;
  q->r.depends_on = q->deps;
  for (size_t i = 0; i < q->r.n_depends_on; i++) q->deps[i] = rand_str(pool, used);
}

enum { BATCH = 8, POOL = BATCH * 26 * 201 };

/* A random batch packed by protobuf-c into *len bytes (malloc'd). */
static uint8_t *random_batch(size_t *len, char *pool) {
  static rand_req q[BATCH];
  static req_t *qp[BATCH];
  size_t used = 0;
  Oee__V1__SubmitTasksRequest m = OEE__V1__SUBMIT_TASKS_REQUEST__INIT;
  m.n_requests = 1 + next() % BATCH;
  m.requests = qp;
  for (size_t i = 0; i < m.n_requests; i++) {
    random_request(&q[i], pool, &used);
    qp[i] = &q[i].r;
  }
  *len = oee__v1__submit_tasks_request__get_packed_size(&m);
  uint8_t *buf = malloc(*len + 64);
  assert_non_null(buf);
  assert_int_equal(oee__v1__submit_tasks_request__pack(&m, buf), *len);
  return buf;
}

/* Everything protobuf-c packs, the fast reader takes, and reads the same. */
static void test_random_requests(void **state) {
  (void)state;
  char *pool = malloc(POOL);
  assert_non_null(pool);
  for (int i = 0; i < 3000; i++) {
    size_t len;
    uint8_t *buf = random_batch(&len, pool);
    assert_true(compare_batch(buf, len));
    free(buf);
  }
  free(pool);
}

/* Flipped bytes, cuts and spliced-in bytes: what the fast reader takes,
 * protobuf-c reads the same; it takes some and leaves some. */
static void test_mutated_requests(void **state) {
  (void)state;
  char *pool = malloc(POOL);
  assert_non_null(pool);
  int took = 0, left = 0;
  for (int i = 0; i < 20000; i++) {
    size_t len;
    uint8_t *buf = random_batch(&len, pool);
    if (len == 0) {
      free(buf);
      continue;
    }
    switch (next() % 3) {
      case 0:
        for (int k = 0; k < 1 + (int)(next() % 3); k++)
          buf[next() % len] ^= (uint8_t)(1 << next() % 8);
        break;
      case 1:
        len = next() % len;
        break;
      default: {
        size_t at = next() % len, n = 1 + next() % 8;
        memmove(buf + at + n, buf + at, len - at);
        for (size_t k = 0; k < n; k++) buf[at + k] = (uint8_t)next();
        len += n;
      }
    }
    if (compare_batch(buf, len)) {
      took++;
    } else {
      left++;
    }
    free(buf);
  }
  free(pool);
  assert_true(took > 100); /* both outcomes were exercised */
  assert_true(left > 100);
}

/* Encodings protobuf-c reads but this reader leaves to it. */
static void test_left_to_protobuf_c(void **state) {
  (void)state;
  /* name twice (protobuf keeps the last) */
  const uint8_t twice[] = {0x0a, 0x01, 'a', 0x0a, 0x01, 'b'};
  assert_false(compare_one(twice, sizeof twice));
  /* an unknown field 99 (varint) */
  const uint8_t unknown[] = {0x0a, 0x01, 'a', 0x98, 0x06, 0x01};
  assert_false(compare_one(unknown, sizeof unknown));
  /* priority sent length-delimited (packed) */
  const uint8_t packed[] = {0x1a, 0x01, 0x05};
  assert_false(compare_one(packed, sizeof packed));
  /* run_at twice (protobuf merges the two messages) */
  const uint8_t merge[] = {0x4a, 0x02, 0x08, 0x01, 0x4a, 0x02, 0x10, 0x02};
  assert_false(compare_one(merge, sizeof merge));
  /* a map entry with a third field */
  const uint8_t entry[] = {0x22, 0x06, 0x0a, 0x01, 'k', 0x18, 0x01, 0x00};
  assert_false(compare_one(entry, sizeof entry));
  /* ... and the plain forms of the same fields are taken */
  const uint8_t plain[] = {0x0a, 0x01, 'a', 0x18, 0x05, 0x22, 0x06, 0x0a, 0x01, 'k',
                           0x12, 0x01, 'v', 0x4a, 0x04, 0x08, 0x01, 0x10, 0x02};
  assert_true(compare_one(plain, sizeof plain));
  const uint8_t none[1] = {0};
  assert_true(compare_one(none, 0)); /* the empty message */
  assert_true(compare_batch(none, 0));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_random_requests),
      cmocka_unit_test(test_mutated_requests),
      cmocka_unit_test(test_left_to_protobuf_c),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
