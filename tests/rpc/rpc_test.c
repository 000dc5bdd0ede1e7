/*
 * rpc_test.c - the server runtime and the generated client stubs, end to
 * end over loopback, on one CQ thread and (the _io tests) on 4 io threads.
 *
 * The test service (echo.proto) runs on the server's CQ thread; it reports
 * what happened to the test thread through atomic counters only. Calls with
 * thread_delay_ms are answered from a thread of their own, as the engine's
 * commit thread answers submissions. On io threads a unary call belongs to
 * the thread of its queue, so the tick may not hold one: calls with
 * delay_ms are then answered "late" from a thread of their own as well.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "echo.grpc-client.h"
#include "echo.grpc-server.h"

enum { MAX_PENDING = 64, MAX_LATE_THREADS = 512 };

/* A unary call answered later by the tick. */
typedef struct pending {
  oee_rpc_call *call;
  struct timespec due;
} pending;

enum { MAX_SEEN_THREADS = 8 };

/* The test service. Fields without _Atomic belong to the CQ thread. */
typedef struct service {
  oee_rpc_server *srv;
  int io;                           /* served on io threads; fixed before start */
  pthread_t main_thread;            /* the thread in run(); set by it before run() */
  atomic_int off_main;              /* stream handlers that ran on another thread */
  pthread_t seen[MAX_SEEN_THREADS]; /* threads unary handlers ran on; under mu */
  int n_seen;
  pending delayed[MAX_PENDING];
  int n_delayed;
  atomic_int cancelled; /* on_cancelled calls, unary and streaming */
  atomic_int done;      /* on_done calls of streaming calls */
  atomic_long live;     /* oee_rpc_server_live_calls(), sampled by the tick */
  atomic_int ticks;
  atomic_int late_started; /* calls handed to a thread of their own */
  atomic_int late_sent;    /* replies sent from other threads */
  atomic_int late_closed;  /* ... refused with OEE_RPC_ECLOSED (client gone) */
  pthread_mutex_t mu;      /* guards threads and n_threads */
  pthread_t threads[MAX_LATE_THREADS];
  int n_threads;
} service;

/* A unary call answered from its own thread. */
typedef struct late {
  service *svc;
  oee_rpc_call *call; /* a reference is held */
  int delay_ms;
  char text[96];
} late;

/* State of one Count stream, freed in on_done. */
typedef struct counter {
  service *svc;
  int next, count, code;
} counter;

typedef struct fixture {
  service svc;
  pthread_t thread;
  oee_rpc_channel *ch;
  int port;
  int shared; /* the io threads share one queue */
} fixture;

static void now_plus(struct timespec *t, int ms) {
  clock_gettime(CLOCK_MONOTONIC, t);
  t->tv_sec += ms / 1000;
  t->tv_nsec += (long)(ms % 1000) * 1000000L;
  if (t->tv_nsec >= 1000000000L) t->tv_sec++, t->tv_nsec -= 1000000000L;
}

static int reached(const struct timespec *t) {
  struct timespec n;
  clock_gettime(CLOCK_MONOTONIC, &n);
  return n.tv_sec > t->tv_sec || (n.tv_sec == t->tv_sec && n.tv_nsec >= t->tv_nsec);
}

static void sleep_ms(int ms) {
  struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&t, NULL);
}

/* Waits up to 10 s for *v >= want. gRPC 1.51 reports a client that cancels
 * a flow-control-stalled stream to the server after 0.1-1.5 s here. */
static int wait_atomic(atomic_int *v, int want) {
  for (int i = 0; i < 1000 && atomic_load(v) < want; i++) sleep_ms(10);
  return atomic_load(v);
}

/* ----------------------------------------------------- the test service */

static void drop_delayed(service *s, oee_rpc_call *call) {
  for (int i = 0; i < s->n_delayed; i++)
    if (s->delayed[i].call == call) s->delayed[i] = s->delayed[--s->n_delayed];
}

static void unary_cancelled(oee_rpc_call *call, void *user) {
  service *s = user;
  drop_delayed(s, call);
  atomic_fetch_add(&s->cancelled, 1);
}

static void reply_text(oee_rpc_call *call, const char *text) {
  Oee__Rpctest__EchoReply r = OEE__RPCTEST__ECHO_REPLY__INIT;
  r.text = (char *)text;
  assert_int_equal(oee_rpc_call_reply(call, &r.base), 0);
}

/* Replies after the delay from its own thread, then drops the reference. */
static void *late_main(void *arg) {
  late *l = arg;
  sleep_ms(l->delay_ms);
  Oee__Rpctest__EchoReply r = OEE__RPCTEST__ECHO_REPLY__INIT;
  r.text = l->text;
  int rc = oee_rpc_call_reply(l->call, &r.base);
  if (rc == 0) atomic_fetch_add(&l->svc->late_sent, 1);
  if (rc == OEE_RPC_ECLOSED) {
    assert_true(oee_rpc_call_cancelled(l->call));
    atomic_fetch_add(&l->svc->late_closed, 1);
  }
  /* A second answer is always refused, from any thread. */
  assert_int_equal(oee_rpc_call_fail(l->call, GRPC_STATUS_INTERNAL, "twice"), OEE_RPC_ECLOSED);
  oee_rpc_call_unref(l->call);
  free(l);
  return NULL;
}

/* Keeps a reference and hands the call to a new thread that replies text
 * after delay_ms; 0 if no thread is left. */
static int reply_from_thread(service *s, oee_rpc_call *call, int delay_ms, const char *text) {
  late *l = calloc(1, sizeof *l);
  assert_non_null(l);
  *l = (late){.svc = s, .call = call, .delay_ms = delay_ms};
  snprintf(l->text, sizeof l->text, "%s", text);
  oee_rpc_call_ref(call);
  pthread_mutex_lock(&s->mu);
  int ok = s->n_threads < MAX_LATE_THREADS &&
           pthread_create(&s->threads[s->n_threads], NULL, late_main, l) == 0;
  if (ok) s->n_threads++;
  pthread_mutex_unlock(&s->mu);
  if (ok) atomic_fetch_add(&s->late_started, 1);
  if (!ok) {
    oee_rpc_call_unref(call);
    free(l);
  }
  return ok;
}

static void join_late_threads(service *s) {
  pthread_mutex_lock(&s->mu);
  for (int i = 0; i < s->n_threads; i++) assert_int_equal(pthread_join(s->threads[i], NULL), 0);
  s->n_threads = 0;
  pthread_mutex_unlock(&s->mu);
}

/* Notes the thread a unary handler runs on. */
static void seen_thread(service *s) {
  pthread_t self = pthread_self();
  pthread_mutex_lock(&s->mu);
  int known = 0;
  for (int i = 0; i < s->n_seen; i++) known |= pthread_equal(s->seen[i], self);
  if (!known && s->n_seen < MAX_SEEN_THREADS) s->seen[s->n_seen++] = self;
  pthread_mutex_unlock(&s->mu);
}

static void on_echo(oee_rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  service *s = ctx;
  const Oee__Rpctest__EchoRequest *req = (const Oee__Rpctest__EchoRequest *)m;
  seen_thread(s);
  char text[96];
  snprintf(text, sizeof text, "thread:%s", req->text);
  if (req->thread_delay_ms > 0 && reply_from_thread(s, call, req->thread_delay_ms, text)) return;
  if (s->io && req->code == 0 && req->delay_ms > 0 &&
      reply_from_thread(s, call, req->delay_ms, "late")) {
    return;
  }
  if (req->code != 0) {
    oee_rpc_call_fail(call, (grpc_status_code)req->code, req->text);
  } else if (req->delay_ms > 0 && s->n_delayed < MAX_PENDING) {
    static const oee_rpc_call_callbacks cbs = {.on_cancelled = unary_cancelled};
    oee_rpc_call_set_callbacks(call, &cbs, s);
    pending *p = &s->delayed[s->n_delayed++];
    p->call = call;
    now_plus(&p->due, req->delay_ms);
  } else {
    reply_text(call, req->text);
  }
}

static void count_next(oee_rpc_call *call, void *user) {
  counter *c = user;
  if (c->count >= 0 && c->next >= c->count) {
    oee_rpc_call_finish(call, (grpc_status_code)c->code, c->code ? "count ended" : NULL);
    return;
  }
  Oee__Rpctest__CountReply r = OEE__RPCTEST__COUNT_REPLY__INIT;
  r.n = c->next++;
  assert_int_equal(oee_rpc_call_write(call, &r.base), 0);
  assert_int_equal(oee_rpc_call_write(call, &r.base), OEE_RPC_EBUSY);
}

static void count_cancelled(oee_rpc_call *call, void *user) {
  counter *c = user;
  assert_int_equal(oee_rpc_call_write(call, oee_rpc_call_request(call)),
                   OEE_RPC_EINVAL); /* wrong type is checked first */
  atomic_fetch_add(&c->svc->cancelled, 1);
}

static void count_done(oee_rpc_call *call, void *user) {
  counter *c = user;
  atomic_fetch_add(&c->svc->done, 1);
  free(c);
}

static void on_count(oee_rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  static const oee_rpc_call_callbacks cbs = {
      .on_writable = count_next,
      .on_cancelled = count_cancelled,
      .on_done = count_done,
  };
  const Oee__Rpctest__CountRequest *req = (const Oee__Rpctest__CountRequest *)m;
  service *s = ctx;
  if (!pthread_equal(pthread_self(), s->main_thread)) atomic_fetch_add(&s->off_main, 1);
  counter *c = calloc(1, sizeof *c);
  assert_non_null(c);
  c->svc = ctx;
  c->count = req->count;
  c->code = req->code;
  oee_rpc_call_set_callbacks(call, &cbs, c);
  count_next(call, c);
}

/* Replies to the delayed calls that are due. */
static void tick(void *ud) {
  service *s = ud;
  for (int i = 0; i < s->n_delayed;) {
    if (!reached(&s->delayed[i].due)) {
      i++;
      continue;
    }
    oee_rpc_call *call = s->delayed[i].call;
    s->delayed[i] = s->delayed[--s->n_delayed];
    oee_rpc_call_set_callbacks(call, NULL, NULL);
    reply_text(call, "late");
  }
  atomic_store(&s->live, (long)oee_rpc_server_live_calls(s->srv));
  atomic_fetch_add(&s->ticks, 1);
}

/* ------------------------------------------------------------- fixture */

static void *run_server(void *arg) {
  fixture *f = arg;
  f->svc.main_thread = pthread_self();
  assert_int_equal(oee_rpc_server_run(f->svc.srv), 0);
  return NULL;
}

/* What the observe hook was told (setup_observed): calls by method index
 * and status code, calls it could not place, and the longest duration. */
enum { N_CODES = 17 };
static atomic_int observed[OEE_RPCTEST_ECHO_N_METHODS][N_CODES];
static atomic_int observed_other;
static atomic_llong observed_max_ns;

static void observe(void *ud, size_t method, grpc_status_code code, int64_t ns) {
  (void)ud;
  if (method >= OEE_RPCTEST_ECHO_N_METHODS || (int)code < 0 || (int)code >= N_CODES) {
    atomic_fetch_add(&observed_other, 1);
    return;
  }
  atomic_fetch_add(&observed[method][code], 1);
  long long prev = atomic_load(&observed_max_ns);
  while (ns > prev && !atomic_compare_exchange_weak(&observed_max_ns, &prev, ns)) {
  }
}

/* The admission hook of setup_observed: Sum is refused. */
static grpc_status_code refuse_sum(void *ud, const char *path, const grpc_metadata_array *md,
                                   char *msg, size_t len) {
  (void)ud;
  (void)md;
  if (strcmp(path, "/oee.rpctest.Echo/Sum") != 0) return GRPC_STATUS_OK;
  snprintf(msg, len, "no sums here");
  return GRPC_STATUS_PERMISSION_DENIED;
}

static int setup_with(void **state, int hooks, int io_threads, int shared) {
  fixture *f = calloc(1, sizeof *f);
  pthread_mutex_init(&f->svc.mu, NULL);
  f->svc.io = io_threads > 1;
  oee_rpc_server_options o = {
      .shutdown_grace_ms = 200, .io_threads = io_threads, .io_shared_queue = shared};
  f->svc.srv = oee_rpc_server_create("127.0.0.1:0", &o, &f->port);
  f->shared = shared;
  assert_non_null(f->svc.srv);
  assert_true(f->port > 0);
  oee_rpc_method m[OEE_RPCTEST_ECHO_N_METHODS];
  memcpy(m, oee_rpctest_echo_methods, sizeof m);
  m[OEE_RPCTEST_ECHO_METHOD_ECHO].handler = on_echo;
  m[OEE_RPCTEST_ECHO_METHOD_COUNT].handler = on_count;
  assert_int_equal(oee_rpc_server_add_service(f->svc.srv, m, OEE_RPCTEST_ECHO_N_METHODS, &f->svc),
                   0);
  oee_rpc_server_set_tick(f->svc.srv, tick, &f->svc, 20);
  if (hooks) {
    memset(observed, 0, sizeof observed);
    atomic_store(&observed_other, 0);
    atomic_store(&observed_max_ns, 0);
    oee_rpc_server_set_observe(f->svc.srv, observe, NULL);
    oee_rpc_server_set_admit(f->svc.srv, refuse_sum, NULL);
  }
  assert_int_equal(oee_rpc_server_start(f->svc.srv), 0);
  assert_int_equal(pthread_create(&f->thread, NULL, run_server, f), 0);
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", f->port);
  f->ch = oee_rpc_channel_create(target);
  assert_non_null(f->ch);
  *state = f;
  return 0;
}

static int setup(void **state) { return setup_with(state, 0, 0, 0); }

/* With the observe hook and an admission hook that refuses Sum. */
static int setup_observed(void **state) { return setup_with(state, 1, 0, 0); }

/* The same on 4 io threads. */
enum { IO_THREADS = 4 };
static int setup_io(void **state) { return setup_with(state, 0, IO_THREADS, 0); }
static int setup_observed_io(void **state) { return setup_with(state, 1, IO_THREADS, 0); }
/* The same with the io threads sharing one queue (io_shared_queue). */
static int setup_shared(void **state) { return setup_with(state, 0, IO_THREADS, 1); }
static int setup_observed_shared(void **state) { return setup_with(state, 1, IO_THREADS, 1); }

static int teardown(void **state) {
  fixture *f = *state;
  oee_rpc_channel_destroy(f->ch);
  oee_rpc_server_shutdown(f->svc.srv);
  assert_int_equal(pthread_join(f->thread, NULL), 0);
  join_late_threads(&f->svc); /* late replies after a shutdown are refused */
  assert_int_equal(oee_rpc_server_live_calls(f->svc.srv), 0);
  oee_rpc_server_destroy(f->svc.srv);
  pthread_mutex_destroy(&f->svc.mu);
  free(f);
  return 0;
}

/* ----------------------------------------------------------------- tests */

static int echo_req(fixture *f, Oee__Rpctest__EchoRequest *req, int64_t deadline_ms,
                    oee_rpc_status *st, char **out) {
  Oee__Rpctest__EchoReply *resp = NULL;
  int rc = oee_rpctest_echo_echo(f->ch, req, &resp, deadline_ms, st);
  if (out) *out = resp ? strdup(resp->text) : NULL;
  if (resp) oee__rpctest__echo_reply__free_unpacked(resp, NULL);
  return rc;
}

static int echo(fixture *f, const char *text, int code, int delay_ms, int64_t deadline_ms,
                oee_rpc_status *st, char **out) {
  Oee__Rpctest__EchoRequest req = OEE__RPCTEST__ECHO_REQUEST__INIT;
  req.text = (char *)text;
  req.code = code;
  req.delay_ms = delay_ms;
  Oee__Rpctest__EchoReply *resp = NULL;
  int rc = oee_rpctest_echo_echo(f->ch, &req, &resp, deadline_ms, st);
  if (out) *out = resp ? strdup(resp->text) : NULL;
  if (resp) oee__rpctest__echo_reply__free_unpacked(resp, NULL);
  return rc;
}

static void test_unary_round_trip(void **state) {
  char *text = NULL;
  oee_rpc_status st = {0};
  assert_int_equal(echo(*state, "hello", 0, 0, 5000, &st, &text), GRPC_STATUS_OK);
  assert_int_equal(st.code, GRPC_STATUS_OK);
  assert_string_equal(text, "hello");
  free(text);
  oee_rpc_status_free(&st);
  assert_int_equal(echo(*state, "", 0, 0, 0, NULL, &text), GRPC_STATUS_OK);
  assert_string_equal(text, "");
  free(text);
}

static void test_unary_reply_from_tick(void **state) {
  char *text = NULL;
  assert_int_equal(echo(*state, "x", 0, 50, 5000, NULL, &text), GRPC_STATUS_OK);
  assert_string_equal(text, "late");
  free(text);
}

static void test_handler_error(void **state) {
  oee_rpc_status st = {0};
  char *text = (char *)"unset";
  int rc = echo(*state, "no such thing", GRPC_STATUS_NOT_FOUND, 0, 5000, &st, &text);
  assert_int_equal(rc, GRPC_STATUS_NOT_FOUND);
  assert_int_equal(st.code, GRPC_STATUS_NOT_FOUND);
  assert_string_equal(st.message, "no such thing");
  assert_null(text);
  oee_rpc_status_free(&st);
  assert_null(st.message);
}

static void test_malformed_body(void **state) {
  fixture *f = *state;
  Oee__Rpctest__Mismatch bad = OEE__RPCTEST__MISMATCH__INIT;
  bad.text = 42;
  ProtobufCMessage *resp = NULL;
  oee_rpc_status st = {0};
  int rc = oee_rpc_unary(f->ch, oee_rpctest_echo_methods[OEE_RPCTEST_ECHO_METHOD_ECHO].path,
                         &bad.base, &oee__rpctest__echo_reply__descriptor, &resp, 5000, &st);
  assert_int_equal(rc, GRPC_STATUS_INVALID_ARGUMENT);
  assert_null(resp);
  assert_non_null(strstr(st.message, "oee.rpctest.EchoRequest"));
  oee_rpc_status_free(&st);
}

static void test_unknown_method(void **state) {
  fixture *f = *state;
  Oee__Rpctest__EchoRequest req = OEE__RPCTEST__ECHO_REQUEST__INIT;
  Oee__Rpctest__EchoReply *resp = NULL;
  oee_rpc_status st = {0};
  int rc = oee_rpctest_unserved_nothing(f->ch, &req, &resp, 5000, &st);
  assert_int_equal(rc, GRPC_STATUS_UNIMPLEMENTED);
  assert_non_null(strstr(st.message, "/oee.rpctest.Unserved/Nothing"));
  oee_rpc_status_free(&st);
  /* A registered method without a handler is UNIMPLEMENTED as well. */
  rc = oee_rpc_unary(f->ch, "/oee.rpctest.Echo/Sum", &req.base,
                     &oee__rpctest__count_reply__descriptor, (ProtobufCMessage **)&resp, 5000, &st);
  assert_int_equal(rc, GRPC_STATUS_UNIMPLEMENTED);
  oee_rpc_status_free(&st);
}

static void test_deadline_exceeded(void **state) {
  fixture *f = *state;
  oee_rpc_status st = {0};
  int rc = echo(f, "slow", 0, 3000, 100, &st, NULL);
  assert_int_equal(rc, GRPC_STATUS_DEADLINE_EXCEEDED);
  oee_rpc_status_free(&st);
  assert_int_equal(wait_atomic(&f->svc.cancelled, 1), 1);
}

static oee_rpc_reader *count_start(fixture *f, int count, int code) {
  Oee__Rpctest__CountRequest req = OEE__RPCTEST__COUNT_REQUEST__INIT;
  req.count = count;
  req.code = code;
  oee_rpc_reader *r = NULL;
  assert_int_equal(oee_rpctest_echo_count_start(f->ch, &req, 10000, &r), 0);
  return r;
}

/* Reads n messages 0..n-1. */
static void count_read(oee_rpc_reader *r, int n) {
  for (int i = 0; i < n; i++) {
    Oee__Rpctest__CountReply *m = NULL;
    assert_int_equal(oee_rpctest_echo_count_next(r, &m, NULL), 1);
    assert_int_equal(m->n, i);
    oee__rpctest__count_reply__free_unpacked(m, NULL);
  }
}

static void count_expect_end(oee_rpc_reader *r, grpc_status_code code) {
  Oee__Rpctest__CountReply *m = NULL;
  for (int i = 0; i < 2; i++) { /* the end is sticky */
    oee_rpc_status st = {0};
    assert_int_equal(oee_rpctest_echo_count_next(r, &m, &st), 0);
    assert_null(m);
    assert_int_equal(st.code, code);
    oee_rpc_status_free(&st);
  }
}

static void test_stream_end_status(void **state) {
  fixture *f = *state;
  oee_rpc_reader *r = count_start(f, 5, 0);
  count_read(r, 5);
  count_expect_end(r, GRPC_STATUS_OK);
  oee_rpctest_echo_count_close(r);
  r = count_start(f, 2, GRPC_STATUS_ABORTED);
  count_read(r, 2);
  count_expect_end(r, GRPC_STATUS_ABORTED);
  oee_rpctest_echo_count_close(r);
  r = count_start(f, 0, 0);
  count_expect_end(r, GRPC_STATUS_OK);
  oee_rpctest_echo_count_close(r);
  assert_int_equal(wait_atomic(&f->svc.done, 3), 3);
  assert_int_equal(atomic_load(&f->svc.cancelled), 0);
}

static void test_stream_client_cancel(void **state) {
  fixture *f = *state;
  oee_rpc_reader *r = count_start(f, -1, 0);
  count_read(r, 3);
  oee_rpctest_echo_count_cancel(r);
  Oee__Rpctest__CountReply *m = NULL;
  oee_rpc_status st = {0};
  int rc;
  while ((rc = oee_rpctest_echo_count_next(r, &m, &st)) == 1)
    oee__rpctest__count_reply__free_unpacked(m, NULL);
  assert_int_equal(rc, 0);
  assert_int_equal(st.code, GRPC_STATUS_CANCELLED);
  oee_rpc_status_free(&st);
  oee_rpctest_echo_count_close(r);
  assert_int_equal(wait_atomic(&f->svc.cancelled, 1), 1);
  assert_int_equal(wait_atomic(&f->svc.done, 1), 1);
  for (int i = 0; i < 100 && atomic_load(&f->svc.live) != 0; i++) sleep_ms(10);
  assert_int_equal(atomic_load(&f->svc.live), 0);
}

static void test_stream_close_without_reading(void **state) {
  fixture *f = *state;
  oee_rpc_reader *r = count_start(f, -1, 0);
  count_read(r, 1);
  oee_rpctest_echo_count_close(r); /* cancels under the hood */
  assert_int_equal(wait_atomic(&f->svc.done, 1), 1);
}

static void test_shutdown_ends_open_stream(void **state) {
  fixture *f = *state;
  oee_rpc_reader *r = count_start(f, -1, 0);
  count_read(r, 2);
  oee_rpc_server_shutdown(f->svc.srv);
  Oee__Rpctest__CountReply *m = NULL;
  oee_rpc_status st = {0};
  int rc;
  while ((rc = oee_rpctest_echo_count_next(r, &m, &st)) == 1)
    oee__rpctest__count_reply__free_unpacked(m, NULL);
  assert_int_equal(rc, 0);
  assert_int_not_equal(st.code, GRPC_STATUS_OK);
  oee_rpc_status_free(&st);
  oee_rpctest_echo_count_close(r);
  assert_int_equal(wait_atomic(&f->svc.done, 1), 1);
}

enum { N_THREADS = 8, N_CALLS = 25 };

/* Makes N_CALLS echo calls, every fifth answered late by the tick; returns
 * the number of wrong answers. */
static void *caller(void *arg) {
  fixture *f = arg;
  long bad = 0;
  for (int i = 0; i < N_CALLS; i++) {
    char want[32], *got = NULL;
    int late = i % 5 == 0;
    snprintf(want, sizeof want, "%p-%d", (void *)&want, i);
    int rc = echo(f, want, 0, late ? 5 : 0, 10000, NULL, &got);
    if (rc != 0 || got == NULL || strcmp(got, late ? "late" : want) != 0) bad++;
    free(got);
  }
  return (void *)bad;
}

static void test_many_concurrent_calls(void **state) {
  pthread_t t[N_THREADS];
  for (int i = 0; i < N_THREADS; i++)
    assert_int_equal(pthread_create(&t[i], NULL, caller, *state), 0);
  long bad = 0;
  for (int i = 0; i < N_THREADS; i++) {
    void *r;
    assert_int_equal(pthread_join(t[i], &r), 0);
    bad += (long)r;
  }
  assert_int_equal(bad, 0);
}

/* Makes N_CALLS echo calls answered from threads after 1-5 ms. */
static void *thread_caller(void *arg) {
  fixture *f = arg;
  long bad = 0;
  for (int i = 0; i < N_CALLS; i++) {
    char text[32], want[48], *got = NULL;
    snprintf(text, sizeof text, "%p-%d", (void *)&text, i);
    snprintf(want, sizeof want, "thread:%s", text);
    Oee__Rpctest__EchoRequest req = OEE__RPCTEST__ECHO_REQUEST__INIT;
    req.text = text;
    req.thread_delay_ms = 1 + i % 5;
    int rc = echo_req(f, &req, 10000, NULL, &got);
    if (rc != 0 || got == NULL || strcmp(got, want) != 0) bad++;
    free(got);
  }
  return (void *)bad;
}

/* Replies from other threads while the CQ thread serves other calls. */
static void test_replies_from_threads(void **state) {
  fixture *f = *state;
  pthread_t t[N_THREADS];
  for (int i = 0; i < N_THREADS; i++) {
    assert_int_equal(pthread_create(&t[i], NULL, i % 2 ? caller : thread_caller, f), 0);
  }
  long bad = 0;
  for (int i = 0; i < N_THREADS; i++) {
    void *r;
    assert_int_equal(pthread_join(t[i], &r), 0);
    bad += (long)r;
  }
  assert_int_equal(bad, 0);
  /* A client may see its reply before the thread that sent it counts it.
   * On io threads the callers' every fifth call is answered by a thread too. */
  int want = N_THREADS / 2 * N_CALLS + (f->svc.io ? N_THREADS / 2 * (N_CALLS / 5) : 0);
  assert_int_equal(wait_atomic(&f->svc.late_sent, want), want);
  assert_int_equal(atomic_load(&f->svc.late_closed), 0);
}

/* The client gives up before the late reply: the reply is refused with
 * ECLOSED, the reference dropped by the thread frees the call, once. */
static void test_late_reply_after_cancel(void **state) {
  fixture *f = *state;
  Oee__Rpctest__EchoRequest req = OEE__RPCTEST__ECHO_REQUEST__INIT;
  req.text = (char *)"too late";
  req.thread_delay_ms = 300;
  oee_rpc_status st = {0};
  assert_int_equal(echo_req(f, &req, 50, &st, NULL), GRPC_STATUS_DEADLINE_EXCEEDED);
  oee_rpc_status_free(&st);
  assert_int_equal(wait_atomic(&f->svc.late_closed, 1), 1);
  assert_int_equal(atomic_load(&f->svc.late_sent), 0);
  for (int i = 0; i < 100 && atomic_load(&f->svc.live) != 0; i++) sleep_ms(10);
  assert_int_equal(atomic_load(&f->svc.live), 0);
}

/* Replies racing the client's deadline: each call that reached the
 * handler ends exactly once, by the reply or by the cancellation. */
static void *racing_caller(void *arg) {
  fixture *f = arg;
  for (int i = 0; i < N_CALLS; i++) {
    Oee__Rpctest__EchoRequest req = OEE__RPCTEST__ECHO_REQUEST__INIT;
    req.text = (char *)"race";
    req.thread_delay_ms = 5 + i % 10;
    (void)echo_req(f, &req, 10, NULL, NULL);
  }
  return NULL;
}

static void test_late_replies_race_cancels(void **state) {
  fixture *f = *state;
  pthread_t t[N_THREADS];
  for (int i = 0; i < N_THREADS; i++) {
    assert_int_equal(pthread_create(&t[i], NULL, racing_caller, f), 0);
  }
  for (int i = 0; i < N_THREADS; i++) assert_int_equal(pthread_join(t[i], NULL), 0);
  /* Calls the clients gave up on may still reach the handler for a while. */
  service *s = &f->svc;
  for (int i = 0; i < 500; i++) {
    int answered = atomic_load(&s->late_sent) + atomic_load(&s->late_closed);
    if (atomic_load(&s->live) == 0 && answered == atomic_load(&s->late_started)) break;
    sleep_ms(10);
  }
  int started = atomic_load(&s->late_started);
  assert_true(started > 0 && started <= N_THREADS * N_CALLS);
  assert_int_equal(atomic_load(&s->late_sent) + atomic_load(&s->late_closed), started);
  assert_int_equal(atomic_load(&s->live), 0);
}

static void test_streams_in_parallel_with_unary(void **state) {
  fixture *f = *state;
  oee_rpc_reader *r[4];
  for (int i = 0; i < 4; i++) r[i] = count_start(f, 50, 0);
  char *text = NULL;
  assert_int_equal(echo(f, "mid", 0, 0, 5000, NULL, &text), 0);
  free(text);
  for (int i = 0; i < 4; i++) {
    count_read(r[i], 50);
    count_expect_end(r[i], GRPC_STATUS_OK);
    oee_rpctest_echo_count_close(r[i]);
  }
}

static void test_ticks_without_events(void **state) {
  fixture *f = *state;
  int before = atomic_load(&f->svc.ticks);
  sleep_ms(200);
  assert_true(atomic_load(&f->svc.ticks) - before >= 3);
}

static void test_server_lifecycle_errors(void **state) {
  int port = 0;
  oee_rpc_server *s = oee_rpc_server_create("127.0.0.1:0", NULL, &port);
  assert_non_null(s);
  assert_int_equal(oee_rpc_server_run(s), OEE_RPC_ESTATE);
  oee_rpc_server_destroy(s); /* never started */
  assert_null(oee_rpc_server_create("256.1.1.1:1", NULL, NULL));
  s = oee_rpc_server_create("127.0.0.1:0", NULL, NULL);
  const oee_rpc_method *m = oee_rpctest_echo_methods;
  assert_int_equal(oee_rpc_server_add_service(s, m, 1, NULL), 0);
  assert_int_equal(oee_rpc_server_add_service(s, m, 1, NULL), OEE_RPC_EINVAL);
  assert_int_equal(oee_rpc_server_start(s), 0);
  assert_int_equal(oee_rpc_server_start(s), OEE_RPC_ESTATE);
  assert_int_equal(oee_rpc_server_add_service(s, oee_rpctest_echo_methods, 1, NULL),
                   OEE_RPC_ESTATE);
  oee_rpc_server_destroy(s); /* started, never run */
}

/* One server per address: SO_REUSEPORT is off, so a second server on a
 * bound port fails with EADDRINUSE and the first is left alone; an address
 * that cannot be bound for another reason is told apart. */
static void test_address_in_use(void **state) {
  int port = 0;
  oee_rpc_server *first = NULL, *second = NULL;
  assert_int_equal(oee_rpc_server_open("127.0.0.1:0", NULL, &port, &first), 0);
  assert_non_null(first);
  assert_true(port > 0);
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
  assert_int_equal(oee_rpc_server_open(addr, NULL, NULL, &second), OEE_RPC_EADDRINUSE);
  assert_null(second);
  /* 192.0.2.0/24 is TEST-NET-1: never a local address. */
  assert_int_equal(oee_rpc_server_open("192.0.2.1:0", NULL, NULL, &second), OEE_RPC_EADDRNOTAVAIL);
  assert_int_equal(oee_rpc_server_open(NULL, NULL, NULL, &second), OEE_RPC_EINVAL);
  oee_rpc_server_destroy(first);
  /* Once the first is gone the address is free again at once. */
  assert_int_equal(oee_rpc_server_open(addr, NULL, NULL, &second), 0);
  oee_rpc_server_destroy(second);
}

/* The observe hook hears of every call of a registered method once, with
 * its final code, before the client has the answer; refusals included,
 * unknown methods not. */
static void test_observe_hook(void **state) {
  fixture *f = *state;
  const int E = OEE_RPCTEST_ECHO_METHOD_ECHO, S = OEE_RPCTEST_ECHO_METHOD_SUM;
  assert_int_equal(oee_rpc_server_method_count(f->svc.srv), OEE_RPCTEST_ECHO_N_METHODS);
  assert_string_equal(oee_rpc_server_method_path(f->svc.srv, (size_t)E), "/oee.rpctest.Echo/Echo");
  assert_null(oee_rpc_server_method_path(f->svc.srv, OEE_RPCTEST_ECHO_N_METHODS));
  assert_int_equal(echo(f, "a", 0, 0, 5000, NULL, NULL), GRPC_STATUS_OK);
  assert_int_equal(echo(f, "b", 0, 0, 5000, NULL, NULL), GRPC_STATUS_OK);
  assert_int_equal(atomic_load(&observed[E][GRPC_STATUS_OK]), 2);
  assert_int_equal(echo(f, "c", GRPC_STATUS_NOT_FOUND, 0, 5000, NULL, NULL), GRPC_STATUS_NOT_FOUND);
  assert_int_equal(atomic_load(&observed[E][GRPC_STATUS_NOT_FOUND]), 1);
  assert_int_equal(echo(f, "d", 0, 60, 5000, NULL, NULL), GRPC_STATUS_OK); /* from the tick */
  assert_true(atomic_load(&observed_max_ns) >= 60000000LL);
  test_malformed_body(state);
  assert_int_equal(atomic_load(&observed[E][GRPC_STATUS_INVALID_ARGUMENT]), 1);
  Oee__Rpctest__EchoRequest req = OEE__RPCTEST__ECHO_REQUEST__INIT;
  ProtobufCMessage *resp = NULL;
  oee_rpc_status st = {0};
  assert_int_equal(oee_rpc_unary(f->ch, "/oee.rpctest.Echo/Sum", &req.base,
                                 &oee__rpctest__count_reply__descriptor, &resp, 5000, &st),
                   GRPC_STATUS_PERMISSION_DENIED);
  oee_rpc_status_free(&st);
  assert_int_equal(atomic_load(&observed[S][GRPC_STATUS_PERMISSION_DENIED]), 1);
  assert_int_equal(
      oee_rpctest_unserved_nothing(f->ch, &req, (Oee__Rpctest__EchoReply **)&resp, 5000, NULL),
      GRPC_STATUS_UNIMPLEMENTED);
  /* A client that gives up: CANCELLED, once the server hears of it. */
  assert_int_equal(echo(f, "slow", 0, 3000, 100, NULL, NULL), GRPC_STATUS_DEADLINE_EXCEEDED);
  assert_int_equal(wait_atomic(&observed[E][GRPC_STATUS_CANCELLED], 1), 1);
  int total = 0;
  for (int m = 0; m < OEE_RPCTEST_ECHO_N_METHODS; m++) {
    for (int c = 0; c < N_CODES; c++) total += atomic_load(&observed[m][c]);
  }
  assert_int_equal(total, 2 + 1 + 1 + 1 + 1 + 1); /* nothing twice, Nothing not at all */
  assert_int_equal(atomic_load(&observed_other), 0);
}

/* On io threads, unary calls are served by several threads at once while
 * streams stay on the thread in run(); every answer is right. */
static void test_io_threads_share_calls(void **state) {
  fixture *f = *state;
  assert_int_equal(oee_rpc_server_io_threads(f->svc.srv), IO_THREADS);
  /* The main queue and one per io thread, or one the io threads share. */
  assert_int_equal(oee_rpc_server_io_queues(f->svc.srv), f->shared ? 2 : IO_THREADS);
  oee_rpc_reader *r[4];
  for (int i = 0; i < 4; i++) r[i] = count_start(f, 50, 0);
  int seen = 0;
  for (int round = 0; round < 20 && seen < 2; round++) {
    test_many_concurrent_calls(state);
    pthread_mutex_lock(&f->svc.mu);
    seen = f->svc.n_seen;
    pthread_mutex_unlock(&f->svc.mu);
  }
  assert_true(seen >= 2);
  for (int i = 0; i < 4; i++) {
    count_read(r[i], 50);
    count_expect_end(r[i], GRPC_STATUS_OK);
    oee_rpctest_echo_count_close(r[i]);
  }
  assert_int_equal(atomic_load(&f->svc.off_main), 0);
}

/* io_threads outside 0..16 is refused; 0 and 1 both mean the run() thread. */
static void test_io_threads_option(void **state) {
  (void)state;
  oee_rpc_server *s = NULL;
  oee_rpc_server_options o = {.io_threads = OEE_RPC_MAX_IO_THREADS + 1};
  assert_int_equal(oee_rpc_server_open("127.0.0.1:0", &o, NULL, &s), OEE_RPC_EINVAL);
  assert_null(s);
  o.io_threads = -1;
  assert_int_equal(oee_rpc_server_open("127.0.0.1:0", &o, NULL, &s), OEE_RPC_EINVAL);
  for (int n = 0; n <= 1; n++) {
    o.io_threads = n;
    assert_int_equal(oee_rpc_server_open("127.0.0.1:0", &o, NULL, &s), 0);
    assert_int_equal(oee_rpc_server_start(s), 0);
    assert_int_equal(oee_rpc_server_io_threads(s), 1);
    oee_rpc_server_destroy(s); /* started, never run */
  }
  o.io_threads = OEE_RPC_MAX_IO_THREADS;
  assert_int_equal(oee_rpc_server_open("127.0.0.1:0", &o, NULL, &s), 0);
  assert_int_equal(oee_rpc_server_add_service(s, oee_rpctest_echo_methods, 1, NULL), 0);
  assert_int_equal(oee_rpc_server_start(s), 0);
  assert_int_equal(oee_rpc_server_io_threads(s), OEE_RPC_MAX_IO_THREADS);
  assert_int_equal(oee_rpc_server_io_queues(s), OEE_RPC_MAX_IO_THREADS);
  oee_rpc_server_destroy(s); /* the io threads are joined */
  /* A shared queue needs two io threads to share it: with io_threads 2
   * the one io thread keeps a queue of its own either way. */
  o.io_shared_queue = 1;
  for (int n = 2; n <= OEE_RPC_MAX_IO_THREADS; n += OEE_RPC_MAX_IO_THREADS - 2) {
    o.io_threads = n;
    assert_int_equal(oee_rpc_server_open("127.0.0.1:0", &o, NULL, &s), 0);
    assert_int_equal(oee_rpc_server_add_service(s, oee_rpctest_echo_methods, 1, NULL), 0);
    assert_int_equal(oee_rpc_server_start(s), 0);
    assert_int_equal(oee_rpc_server_io_threads(s), n);
    assert_int_equal(oee_rpc_server_io_queues(s), 2);
    oee_rpc_server_destroy(s);
  }
}

static void test_unreachable_server(void **state) {
  oee_rpc_channel *ch = oee_rpc_channel_create("127.0.0.1:1");
  Oee__Rpctest__EchoRequest req = OEE__RPCTEST__ECHO_REQUEST__INIT;
  Oee__Rpctest__EchoReply *resp = NULL;
  oee_rpc_status st = {0};
  assert_int_equal(oee_rpctest_echo_echo(ch, &req, &resp, 2000, &st), GRPC_STATUS_UNAVAILABLE);
  oee_rpc_status_free(&st);
  oee_rpc_channel_destroy(ch);
}

/* On one thread, then on 4 io threads with a queue each, then sharing one. */
static const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_unary_round_trip, setup, teardown),
    cmocka_unit_test_setup_teardown(test_unary_reply_from_tick, setup, teardown),
    cmocka_unit_test_setup_teardown(test_handler_error, setup, teardown),
    cmocka_unit_test_setup_teardown(test_malformed_body, setup, teardown),
    cmocka_unit_test_setup_teardown(test_unknown_method, setup, teardown),
    cmocka_unit_test_setup_teardown(test_deadline_exceeded, setup, teardown),
    cmocka_unit_test_setup_teardown(test_stream_end_status, setup, teardown),
    cmocka_unit_test_setup_teardown(test_stream_client_cancel, setup, teardown),
    cmocka_unit_test_setup_teardown(test_stream_close_without_reading, setup, teardown),
    cmocka_unit_test_setup_teardown(test_shutdown_ends_open_stream, setup, teardown),
    cmocka_unit_test_setup_teardown(test_many_concurrent_calls, setup, teardown),
    cmocka_unit_test_setup_teardown(test_replies_from_threads, setup, teardown),
    cmocka_unit_test_setup_teardown(test_late_reply_after_cancel, setup, teardown),
    cmocka_unit_test_setup_teardown(test_late_replies_race_cancels, setup, teardown),
    cmocka_unit_test_setup_teardown(test_streams_in_parallel_with_unary, setup, teardown),
    cmocka_unit_test_setup_teardown(test_ticks_without_events, setup, teardown),
    cmocka_unit_test_setup_teardown(test_observe_hook, setup_observed, teardown),
    cmocka_unit_test_setup_teardown(test_unary_round_trip, setup_io, teardown),
    cmocka_unit_test_setup_teardown(test_handler_error, setup_io, teardown),
    cmocka_unit_test_setup_teardown(test_malformed_body, setup_io, teardown),
    cmocka_unit_test_setup_teardown(test_unknown_method, setup_io, teardown),
    cmocka_unit_test_setup_teardown(test_stream_end_status, setup_io, teardown),
    cmocka_unit_test_setup_teardown(test_stream_client_cancel, setup_io, teardown),
    cmocka_unit_test_setup_teardown(test_shutdown_ends_open_stream, setup_io, teardown),
    cmocka_unit_test_setup_teardown(test_many_concurrent_calls, setup_io, teardown),
    cmocka_unit_test_setup_teardown(test_replies_from_threads, setup_io, teardown),
    cmocka_unit_test_setup_teardown(test_late_reply_after_cancel, setup_io, teardown),
    cmocka_unit_test_setup_teardown(test_late_replies_race_cancels, setup_io, teardown),
    cmocka_unit_test_setup_teardown(test_io_threads_share_calls, setup_io, teardown),
    cmocka_unit_test_setup_teardown(test_observe_hook, setup_observed_io, teardown),
    cmocka_unit_test_setup_teardown(test_unary_round_trip, setup_shared, teardown),
    cmocka_unit_test_setup_teardown(test_handler_error, setup_shared, teardown),
    cmocka_unit_test_setup_teardown(test_malformed_body, setup_shared, teardown),
    cmocka_unit_test_setup_teardown(test_stream_client_cancel, setup_shared, teardown),
    cmocka_unit_test_setup_teardown(test_shutdown_ends_open_stream, setup_shared, teardown),
    cmocka_unit_test_setup_teardown(test_many_concurrent_calls, setup_shared, teardown),
    cmocka_unit_test_setup_teardown(test_replies_from_threads, setup_shared, teardown),
    cmocka_unit_test_setup_teardown(test_late_reply_after_cancel, setup_shared, teardown),
    cmocka_unit_test_setup_teardown(test_late_replies_race_cancels, setup_shared, teardown),
    cmocka_unit_test_setup_teardown(test_io_threads_share_calls, setup_shared, teardown),
    cmocka_unit_test_setup_teardown(test_observe_hook, setup_observed_shared, teardown),
    cmocka_unit_test(test_io_threads_option),
    cmocka_unit_test(test_server_lifecycle_errors),
    cmocka_unit_test(test_address_in_use),
    cmocka_unit_test(test_unreachable_server),
};

int main(void) { return cmocka_run_group_tests(tests, NULL, NULL); }
