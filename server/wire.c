/* wire.c - tasks straight to protobuf bytes (see wire.h). */
#include "server/wire.h"

#include <string.h>

#define NS_PER_S 1000000000

enum { WT_VARINT = 0, WT_FIXED64 = 1, WT_LEN = 2 };

/* oee.v1.Task's field numbers (proto/oee/v1/orchestrator.proto). */
enum {
  T_ID = 1,
  T_NAME,
  T_STATUS,
  T_PRIORITY,
  T_TASK_TYPE,
  T_CONTEXT,
  T_CREATED_AT,
  T_STARTED_AT,
  T_COMPLETED_AT,
  T_ERROR_MESSAGE,
  T_RESULT,
  T_WORKER_ID,
  T_ATTEMPT,
  T_MAX_ATTEMPTS,
  T_RUN_AT,
  T_TIMEOUT_SECONDS,
  T_IDEMPOTENCY_KEY,
  T_DEPENDS_ON,
  T_SCHEDULE_ID,
  T_REMOTE_WORKER_ID,
  T_BACKOFF_SECONDS,
  T_MAX_BACKOFF_SECONDS,
};

/* Inlined inside this file: most varints here are one byte (tags, small
 * lengths), so that case goes first. */
static inline size_t varint_size(uint64_t v) {
  if (v < 0x80) return 1;
  size_t n = 2;
  while (v >= 0x4000) {
    v >>= 7;
    n++;
  }
  return n;
}

static inline uint8_t *varint(uint8_t *p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  *p++ = (uint8_t)v;
  return p;
}

size_t oee_wire_varint_size(uint64_t v) { return varint_size(v); }

uint8_t *oee_wire_varint(uint8_t *p, uint64_t v) { return varint(p, v); }

static inline size_t tag_size(uint32_t field) {
  return field < 16 ? 1 : varint_size((uint64_t)field << 3);
}

static inline uint8_t *tag(uint8_t *p, uint32_t field, int wire_type) {
  return varint(p, ((uint64_t)field << 3) | (uint64_t)wire_type);
}

static inline size_t uint_size(uint32_t field, uint64_t v) {
  return v == 0 ? 0 : tag_size(field) + varint_size(v);
}

static inline uint8_t *uint_field(uint8_t *p, uint32_t field, uint64_t v) {
  if (v == 0) return p;
  return varint(tag(p, field, WT_VARINT), v);
}

size_t oee_wire_uint_field_size(uint32_t field, uint64_t v) { return uint_size(field, v); }

uint8_t *oee_wire_uint_field(uint8_t *p, uint32_t field, uint64_t v) {
  return uint_field(p, field, v);
}

/* int32 and enum values: sign-extended. */
static uint64_t i32(int v) { return (uint64_t)(int64_t)v; }

static inline size_t head_len(uint32_t field, size_t len) {
  return tag_size(field) + varint_size(len);
}

static inline uint8_t *msg_head(uint8_t *p, uint32_t field, size_t len) {
  return varint(tag(p, field, WT_LEN), len);
}

size_t oee_wire_msg_head_size(uint32_t field, size_t len) { return head_len(field, len); }

uint8_t *oee_wire_msg_head(uint8_t *p, uint32_t field, size_t len) {
  return msg_head(p, field, len);
}

static inline size_t bytes_size(uint32_t field, size_t len) { return head_len(field, len) + len; }

static inline uint8_t *bytes(uint8_t *p, uint32_t field, const char *s, size_t len) {
  p = msg_head(p, field, len);
  memcpy(p, s, len);
  return p + len;
}

static inline size_t str_size(uint32_t field, const char *s) {
  if (s == NULL || s[0] == '\0') return 0;
  return bytes_size(field, strlen(s));
}

static inline uint8_t *str_field(uint8_t *p, uint32_t field, const char *s) {
  if (s == NULL || s[0] == '\0') return p;
  return bytes(p, field, s, strlen(s));
}

size_t oee_wire_str_field_size(uint32_t field, const char *s) { return str_size(field, s); }

uint8_t *oee_wire_str_field(uint8_t *p, uint32_t field, const char *s) {
  return str_field(p, field, s);
}

/* A double: written unless it compares equal to 0 (so -0.0 is not written
 * either, as protobuf-c does). */
static size_t double_size(uint32_t field, double d) { return d == 0 ? 0 : tag_size(field) + 8; }

static uint8_t *double_field(uint8_t *p, uint32_t field, double d) {
  if (d == 0) return p;
  p = tag(p, field, WT_FIXED64);
  uint64_t bits;
  memcpy(&bits, &d, sizeof bits);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  memcpy(p, &bits, 8); /* the wire's byte order already */
  return p + 8;
#else
  for (int i = 0; i < 8; i++) *p++ = (uint8_t)(bits >> (8 * i));
  return p;
#endif
}

/* Seconds and nanos of a Timestamp; before the epoch the nanos still
 * count forward from the second (as oee_pb_time). */
static void split_time(int64_t ns, int64_t *secs, int32_t *nanos) {
  int64_t s = ns / NS_PER_S, n = ns % NS_PER_S;
  if (n < 0) {
    s -= 1;
    n += NS_PER_S;
  }
  *secs = s;
  *nanos = (int32_t)n;
}

static inline size_t time_body(int64_t secs, int32_t nanos) {
  return uint_size(1, (uint64_t)secs) + uint_size(2, i32(nanos));
}

size_t oee_wire_time_field_size(uint32_t field, int64_t ns) {
  if (ns == 0) return 0;
  int64_t secs;
  int32_t nanos;
  split_time(ns, &secs, &nanos);
  return bytes_size(field, time_body(secs, nanos));
}

uint8_t *oee_wire_time_field(uint8_t *p, uint32_t field, int64_t ns) {
  if (ns == 0) return p;
  int64_t secs;
  int32_t nanos;
  split_time(ns, &secs, &nanos);
  p = msg_head(p, field, time_body(secs, nanos));
  p = uint_field(p, 1, (uint64_t)secs);
  return uint_field(p, 2, i32(nanos));
}

/* A map<string, string> entry: key = 1, value = 2, both left out when
 * empty (protobuf-c packs map entries as proto3 messages). */
static size_t entry_body_size(const oee_kv *kv) {
  return str_size(1, kv->key) + str_size(2, kv->value);
}

static size_t context_size(const oee_task_info *t) {
  size_t n = 0;
  for (size_t i = 0; i < t->context_len; i++)
    n += bytes_size(T_CONTEXT, entry_body_size(&t->context[i]));
  return n;
}

static uint8_t *context(uint8_t *p, const oee_task_info *t) {
  for (size_t i = 0; i < t->context_len; i++) {
    const oee_kv *kv = &t->context[i];
    p = msg_head(p, T_CONTEXT, entry_body_size(kv));
    p = str_field(p, 1, kv->key);
    p = str_field(p, 2, kv->value);
  }
  return p;
}

/* Repeated strings are written one by one, empty ones too. */
static size_t depends_on_size(const oee_task_info *t) {
  size_t n = 0;
  for (size_t i = 0; i < t->depends_on_len; i++)
    n += bytes_size(T_DEPENDS_ON, strlen(t->depends_on[i]));
  return n;
}

static uint8_t *depends_on(uint8_t *p, const oee_task_info *t) {
  for (size_t i = 0; i < t->depends_on_len; i++) {
    p = bytes(p, T_DEPENDS_ON, t->depends_on[i], strlen(t->depends_on[i]));
  }
  return p;
}

/* Fields 1-12: what the task is and where it stands. */
static size_t head_size(const oee_task_info *t) {
  return str_size(T_ID, t->id) + str_size(T_NAME, t->name) +
         uint_size(T_STATUS, i32((int)t->status)) + uint_size(T_PRIORITY, i32(t->priority)) +
         str_size(T_TASK_TYPE, t->task_type) + context_size(t) +
         oee_wire_time_field_size(T_CREATED_AT, t->created_at_ns) +
         oee_wire_time_field_size(T_STARTED_AT, t->started_at_ns) +
         oee_wire_time_field_size(T_COMPLETED_AT, t->completed_at_ns) +
         str_size(T_ERROR_MESSAGE, t->error_message) + str_size(T_RESULT, t->result) +
         uint_size(T_WORKER_ID, i32(t->worker_id));
}

/* Fields 13-22: attempts, timing, idempotency, dependencies, who ran it. */
static size_t semantics_size(const oee_task_info *t) {
  return uint_size(T_ATTEMPT, i32(t->attempt)) + uint_size(T_MAX_ATTEMPTS, i32(t->max_attempts)) +
         oee_wire_time_field_size(T_RUN_AT, t->run_at_ns) +
         double_size(T_TIMEOUT_SECONDS, t->timeout_seconds) +
         str_size(T_IDEMPOTENCY_KEY, t->idempotency_key) + depends_on_size(t) +
         str_size(T_SCHEDULE_ID, t->schedule_id) +
         str_size(T_REMOTE_WORKER_ID, t->remote_worker_id) +
         double_size(T_BACKOFF_SECONDS, t->backoff_seconds) +
         double_size(T_MAX_BACKOFF_SECONDS, t->max_backoff_seconds);
}

size_t oee_wire_task_size(const oee_task_info *t) { return head_size(t) + semantics_size(t); }

static uint8_t *head(uint8_t *p, const oee_task_info *t) {
  p = str_field(p, T_ID, t->id);
  p = str_field(p, T_NAME, t->name);
  p = uint_field(p, T_STATUS, i32((int)t->status));
  p = uint_field(p, T_PRIORITY, i32(t->priority));
  p = str_field(p, T_TASK_TYPE, t->task_type);
  p = context(p, t);
  p = oee_wire_time_field(p, T_CREATED_AT, t->created_at_ns);
  p = oee_wire_time_field(p, T_STARTED_AT, t->started_at_ns);
  p = oee_wire_time_field(p, T_COMPLETED_AT, t->completed_at_ns);
  p = str_field(p, T_ERROR_MESSAGE, t->error_message);
  p = str_field(p, T_RESULT, t->result);
  return uint_field(p, T_WORKER_ID, i32(t->worker_id));
}

static uint8_t *semantics(uint8_t *p, const oee_task_info *t) {
  p = uint_field(p, T_ATTEMPT, i32(t->attempt));
  p = uint_field(p, T_MAX_ATTEMPTS, i32(t->max_attempts));
  p = oee_wire_time_field(p, T_RUN_AT, t->run_at_ns);
  p = double_field(p, T_TIMEOUT_SECONDS, t->timeout_seconds);
  p = str_field(p, T_IDEMPOTENCY_KEY, t->idempotency_key);
  p = depends_on(p, t);
  p = str_field(p, T_SCHEDULE_ID, t->schedule_id);
  p = str_field(p, T_REMOTE_WORKER_ID, t->remote_worker_id);
  p = double_field(p, T_BACKOFF_SECONDS, t->backoff_seconds);
  return double_field(p, T_MAX_BACKOFF_SECONDS, t->max_backoff_seconds);
}

uint8_t *oee_wire_task(uint8_t *p, const oee_task_info *t) { return semantics(head(p, t), t); }

size_t oee_wire_task_field_size(uint32_t field, const oee_task_info *t, size_t *task_size) {
  *task_size = oee_wire_task_size(t);
  return oee_wire_msg_head_size(field, *task_size) + *task_size;
}

uint8_t *oee_wire_task_field(uint8_t *p, uint32_t field, const oee_task_info *t, size_t task_size) {
  return oee_wire_task(msg_head(p, field, task_size), t);
}
