/*
 * watch.c - WatchTasks: engine subscriptions turned into server streams.
 *
 * DESIGN: each stream owns one engine subscription (a bounded ring the
 * engine fills from any thread without waiting). Everything here runs on the
 * CQ thread: a stream writes one event at a time; the next write starts when
 * the previous one completes (on_writable) or, if the ring was empty then,
 * on the next tick (every OEE_TICK_WATCHING_MS while any stream is open). A ring that
 * overflows ends its stream with RESOURCE_EXHAUSTED; nobody else slows down.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/oee_alloc.h"
#include "oee/v1/orchestrator.pb-c.h"
#include "server/log.h"
#include "server/errmap.h"
#include "server/service.h"
#include "server/wire.h"
#include "server/watch.h"

/* Bytes of a status message this file writes. */
#define STATUS_MESSAGE_BYTES 256

typedef struct watcher {
  oee_watch_hub *hub;
  oee_rpc_call *call;
  oee_sub *sub;
  struct watcher *prev, *next;
  int ended; /* finished by us or cancelled by the client */
} watcher;

/* Events packed once and written to every stream that wants them: a
 * direct-mapped cache keyed by sequence number (one change, one number). */
#define PACK_CACHE 256

typedef struct packed_event {
  uint64_t seq; /* 0: empty */
  grpc_slice bytes;
} packed_event;

struct oee_watch_hub {
  oee_service *svc;
  watcher *head;
  size_t count;       /* CQ thread */
  atomic_size_t live; /* == count, for readers on other threads (metrics) */
  packed_event cache[PACK_CACHE];
};

int oee_watch_hub_create(oee_service *s, oee_watch_hub **out) {
  oee_watch_hub *h = oee_calloc(1, sizeof(*h));
  if (h == NULL) return -1;
  h->svc = s;
  atomic_init(&h->live, 0);
  *out = h;
  return 0;
}

void oee_watch_hub_destroy(oee_watch_hub *h) {
  if (h == NULL) return;
  /* The runtime ends every call (on_done) before run() returns; anything
   * left here lost its call already, so only the subscriptions remain. */
  while (h->head) {
    watcher *w = h->head;
    h->head = w->next;
    oee_sub_free(w->sub);
    oee_free(w);
  }
  for (size_t i = 0; i < PACK_CACHE; i++) {
    if (h->cache[i].seq) grpc_slice_unref(h->cache[i].bytes);
  }
  oee_free(h);
}

size_t oee_watch_hub_count(oee_watch_hub *h) { return h->count; }

size_t oee_watch_hub_live(oee_watch_hub *h) { return atomic_load(&h->live); }

static void set_tick(oee_watch_hub *h) {
  int ms = h->count                       ? OEE_TICK_WATCHING_MS
           : h->svc->state == OEE_SERVING ? OEE_TICK_IDLE_MS
                                          : OEE_TICK_DRAINING_MS;
  oee_rpc_server_set_tick_interval(h->svc->srv, ms);
}

/* The time of the change an event reports. */
static int64_t change_time(const oee_task_info *t) {
  if (t->changed_at_ns) return t->changed_at_ns;
  /* A snapshot read back from the database: its latest stamp. */
  if (t->completed_at_ns) return t->completed_at_ns;
  if (t->started_at_ns) return t->started_at_ns;
  return t->created_at_ns;
}

/* The packed TaskEvent for `ev`, from the cache or written now (gRPC's
 * allocator aborts rather than fail). The slice stays owned by the cache;
 * writers take their own reference. */
static grpc_slice event_bytes(oee_watch_hub *h, const oee_task_info *ev) {
  packed_event *e = &h->cache[ev->seq % PACK_CACHE];
  if (e->seq == ev->seq) return e->bytes;
  /* TaskEvent: sequence = 1, task = 2, time = 3 (server/wire.h). */
  int64_t at = change_time(ev);
  size_t task_size, n = oee_wire_uint_field_size(1, ev->seq) +
                        oee_wire_task_field_size(2, ev, &task_size) +
                        oee_wire_time_field_size(3, at);
  grpc_slice bytes = grpc_slice_malloc(n);
  uint8_t *p = oee_wire_uint_field(GRPC_SLICE_START_PTR(bytes), 1, ev->seq);
  p = oee_wire_task_field(p, 2, ev, task_size);
  (void)oee_wire_time_field(p, 3, at);
  if (e->seq) grpc_slice_unref(e->bytes);
  e->seq = ev->seq;
  e->bytes = bytes;
  return bytes;
}

static void end_stream(watcher *w, grpc_status_code code, const char *msg) {
  if (w->ended) return;
  w->ended = 1;
  oee_sub_close(w->sub);
  oee_rpc_call_finish(w->call, code, msg);
}

/* Ends a stream whose buffer overflowed: at once, even with a write stuck
 * behind a client that stopped reading, so its slot and buffer go now. */
static void drop_stream(watcher *w) {
  char msg[STATUS_MESSAGE_BYTES];
  size_t cap = w->hub->svc->cfg->watch_buffer;
  snprintf(msg, sizeof(msg), "watcher fell behind: more than watch_buffer=%zu events were waiting",
           cap);
  oee_log(OEE_LOG_WARN, "watcher_dropped", "watch_buffer=%zu", cap);
  w->ended = 1;
  oee_sub_close(w->sub);
  oee_rpc_call_abort(w->call, GRPC_STATUS_RESOURCE_EXHAUSTED, msg);
}

/* Starts the next write if the call can take one and an event is waiting. */
static void pump_one(watcher *w) {
  if (w->ended) return;
  if (!oee_rpc_call_writable(w->call)) {
    if (oee_sub_dropped(w->sub)) drop_stream(w);
    return;
  }
  const oee_task_info *ev;
  int rc = oee_sub_next(w->sub, &ev);
  if (rc == OEE_EOVERFLOW) {
    drop_stream(w);
    return;
  }
  if (rc != 0) return;
  grpc_slice bytes = event_bytes(w->hub, ev);
  oee_task_info_unref(ev);
  /* More events waiting: the write completes once buffered and the next
   * follows it into the same transport write; the last one (none waiting)
   * flushes them. Only this thread takes events, so "waiting" stays true
   * until the next pump (an overflow ends the stream, which flushes too). */
  int more = oee_sub_pending(w->sub) > 0;
  oee_rpc_call_write_slice_more(w->call, bytes, more);
}

static void on_writable(oee_rpc_call *call, void *user) {
  (void)call;
  pump_one(user);
}

static void on_cancelled(oee_rpc_call *call, void *user) {
  (void)call;
  watcher *w = user;
  w->ended = 1;
  oee_sub_close(w->sub); /* stop buffering for a client that is gone */
}

static void on_done(oee_rpc_call *call, void *user) {
  (void)call;
  watcher *w = user;
  oee_watch_hub *h = w->hub;
  if (w->prev) {
    w->prev->next = w->next;
  } else {
    h->head = w->next;
  }
  if (w->next) w->next->prev = w->prev;
  h->count--;
  atomic_fetch_sub(&h->live, 1);
  set_tick(h);
  oee_sub_free(w->sub);
  oee_free(w);
}

static const oee_rpc_call_callbacks watcher_callbacks = {
    .on_writable = on_writable,
    .on_cancelled = on_cancelled,
    .on_done = on_done,
};

/* Checks the filters; returns a gRPC code and fills msg on error. */
static grpc_status_code check_request(oee_service *s, const Oee__V1__WatchTasksRequest *m,
                                      char *msg, size_t len) {
  if (s->state != OEE_SERVING) {
    snprintf(msg, len, "server is shutting down");
    return GRPC_STATUS_UNAVAILABLE;
  }
  if (s->hub->count >= s->cfg->max_watchers) {
    snprintf(msg, len, "too many watchers: max_watchers=%zu streams are open",
             s->cfg->max_watchers);
    return GRPC_STATUS_RESOURCE_EXHAUSTED;
  }
  for (size_t i = 0; i < m->n_statuses; i++) {
    if (m->statuses[i] <= 0 || m->statuses[i] >= OEE_TASK_STATUS_COUNT) {
      snprintf(msg, len, "statuses[%zu]=%d is not a task status", i, (int)m->statuses[i]);
      return GRPC_STATUS_INVALID_ARGUMENT;
    }
  }
  for (size_t i = 0; i < m->n_task_ids; i++) {
    if (!oee_id_valid(m->task_ids[i])) {
      snprintf(msg, len, "task_ids[%zu]=\"%.64s\" is not a UUID", i, m->task_ids[i]);
      return GRPC_STATUS_INVALID_ARGUMENT;
    }
  }
  return GRPC_STATUS_OK;
}

static int subscribe(oee_service *s, const Oee__V1__WatchTasksRequest *m, oee_sub **sub) {
  /* Statuses were range-checked; repeats collapse into one entry each. */
  oee_task_status sts[OEE_TASK_STATUS_COUNT];
  unsigned seen = 0;
  size_t n = 0;
  for (size_t i = 0; i < m->n_statuses; i++) {
    unsigned bit = 1u << m->statuses[i];
    if (!(seen & bit)) sts[n++] = (oee_task_status)m->statuses[i];
    seen |= bit;
  }
  oee_sub_filter f = {.task_ids = (const char *const *)m->task_ids,
                      .n_task_ids = m->n_task_ids,
                      .task_types = (const char *const *)m->task_types,
                      .n_task_types = m->n_task_types,
                      .statuses = sts,
                      .n_statuses = n,
                      .schedule_ids = (const char *const *)m->schedule_ids,
                      .n_schedule_ids = m->n_schedule_ids};
  return oee_engine_subscribe(s->eng, &f, s->cfg->watch_buffer, m->include_snapshot, sub);
}

void oee_watch_handler(oee_rpc_call *call, const ProtobufCMessage *req, void *ctx) {
  oee_service *s = ctx;
  const Oee__V1__WatchTasksRequest *m = (const Oee__V1__WatchTasksRequest *)req;
  char msg[STATUS_MESSAGE_BYTES];
  grpc_status_code code = check_request(s, m, msg, sizeof(msg));
  oee_sub *sub = NULL;
  int rc = code == GRPC_STATUS_OK ? subscribe(s, m, &sub) : 0;
  if (rc == OEE_EOVERFLOW) {
    snprintf(msg, sizeof(msg),
             "include_snapshot matches more tasks than watch_buffer=%zu; "
             "narrow the filters",
             s->cfg->watch_buffer);
  } else if (rc != 0) {
    snprintf(msg, sizeof(msg), "cannot watch: %s", oee_strerror(rc));
  }
  if (rc != 0) code = oee_status_from_error(rc);
  watcher *w = code == GRPC_STATUS_OK ? oee_calloc(1, sizeof(*w)) : NULL;
  if (w == NULL) {
    oee_sub_free(sub);
    oee_rpc_call_fail(call, code != GRPC_STATUS_OK ? code : GRPC_STATUS_RESOURCE_EXHAUSTED,
                      code != GRPC_STATUS_OK ? msg : "out of memory");
    return;
  }
  oee_watch_hub *h = s->hub;
  *w = (watcher){.hub = h, .call = call, .sub = sub, .next = h->head};
  if (h->head) h->head->prev = w;
  h->head = w;
  h->count++;
  atomic_fetch_add(&h->live, 1);
  set_tick(h);
  oee_rpc_call_set_callbacks(call, &watcher_callbacks, w);
  pump_one(w);
}

void oee_watch_hub_pump(oee_watch_hub *h) {
  for (watcher *w = h->head, *next; w; w = next) {
    next = w->next; /* pump_one may end the stream */
    pump_one(w);
  }
}

int oee_watch_hub_flushed(oee_watch_hub *h) {
  for (watcher *w = h->head; w; w = w->next) {
    if (!w->ended && oee_sub_pending(w->sub) > 0) return 0;
  }
  return 1;
}

void oee_watch_hub_finish_all(oee_watch_hub *h, grpc_status_code code, const char *msg) {
  for (watcher *w = h->head, *next; w; w = next) {
    next = w->next;
    end_stream(w, code, msg);
  }
}
