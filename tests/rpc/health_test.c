/*
 * health_test.c - the stubs generated for the standard grpc.health.v1 and
 * grpc.reflection protos compile, link, and serve through the runtime.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "grpc/health/v1/health.grpc-client.h"
#include "grpc/health/v1/health.grpc-server.h"
#include "grpc/reflection/v1/reflection.grpc-server.h"
#include "grpc/reflection/v1alpha/reflection.grpc-server.h"

static void on_check(oee_rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  const Grpc__Health__V1__HealthCheckRequest *req = (const Grpc__Health__V1__HealthCheckRequest *)m;
  if (req->service[0] != '\0') {
    oee_rpc_call_fail(call, GRPC_STATUS_NOT_FOUND, "unknown service");
    return;
  }
  Grpc__Health__V1__HealthCheckResponse r = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
  r.status = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
  oee_rpc_call_reply(call, &r.base);
}

static void *run(void *srv) {
  oee_rpc_server_run(srv);
  return NULL;
}

static int check(oee_rpc_channel *ch, const char *service) {
  Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  req.service = (char *)service;
  Grpc__Health__V1__HealthCheckResponse *resp = NULL;
  int rc = grpc_health_v1_health_check(ch, &req, &resp, 5000, NULL);
  if (rc == GRPC_STATUS_OK) {
    assert_int_equal(resp->status,
                     GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
    grpc__health__v1__health_check_response__free_unpacked(resp, NULL);
  }
  return rc;
}

static void test_health_check(void **state) {
  int port = 0;
  oee_rpc_server *srv = oee_rpc_server_create("127.0.0.1:0", NULL, &port);
  assert_non_null(srv);
  oee_rpc_method m[GRPC_HEALTH_V1_HEALTH_N_METHODS];
  memcpy(m, grpc_health_v1_health_methods, sizeof m);
  m[GRPC_HEALTH_V1_HEALTH_METHOD_CHECK].handler = on_check;
  assert_int_equal(oee_rpc_server_add_service(srv, m, GRPC_HEALTH_V1_HEALTH_N_METHODS, NULL), 0);
  assert_int_equal(oee_rpc_server_start(srv), 0);
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, run, srv), 0);
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", port);
  oee_rpc_channel *ch = oee_rpc_channel_create(target);
  assert_int_equal(check(ch, ""), GRPC_STATUS_OK);
  assert_int_equal(check(ch, "nope"), GRPC_STATUS_NOT_FOUND);
  oee_rpc_channel_destroy(ch);
  oee_rpc_server_shutdown(srv);
  pthread_join(t, NULL);
  oee_rpc_server_destroy(srv);
}

static void test_tables(void **state) {
  const oee_rpc_method *w = &grpc_health_v1_health_methods[GRPC_HEALTH_V1_HEALTH_METHOD_WATCH];
  assert_string_equal(w->path, "/grpc.health.v1.Health/Watch");
  assert_int_equal(w->server_streaming, 1);
  assert_int_equal(w->client_streaming, 0);
  assert_non_null((void *)grpc_health_v1_health_watch_start);
  const oee_rpc_method *r =
      &grpc_reflection_v1_server_reflection_methods
          [GRPC_REFLECTION_V1_SERVER_REFLECTION_METHOD_SERVER_REFLECTION_INFO];
  assert_string_equal(r->path, "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo");
  assert_int_equal(r->client_streaming, 1);
  assert_int_equal(r->server_streaming, 1);
  assert_ptr_equal(r->request, &grpc__reflection__v1__server_reflection_request__descriptor);
  assert_string_equal(GRPC_REFLECTION_V1ALPHA_SERVER_REFLECTION_NAME,
                      "grpc.reflection.v1alpha.ServerReflection");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_health_check),
      cmocka_unit_test(test_tables),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
