/* test_service.c - the method routing of oee-server (a method without a
 * handler refuses start-up), the core-error to gRPC-status table, and a
 * full oee_service_init()/fini() on a loopback server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "core/oee.h"
#include "oee/v1/orchestrator.grpc-server.h"
#include "server/config.h"
#include "server/errmap.h"
#include "server/service.h"

#define M(name) OEE_V1_ORCHESTRATOR_SERVICE_METHOD_##name
#define N OEE_V1_ORCHESTRATOR_SERVICE_N_METHODS

static void copy_routes(oee_route *routes) {
  assert_int_equal(oee_service_n_routes, N);
  memcpy(routes, oee_service_routes, N * sizeof(*routes));
}

static void test_real_table_is_complete(void **state) {
  (void)state;
  char why[256] = "";
  assert_int_equal(
      oee_service_check_routes(oee_service_routes, oee_service_n_routes, why, sizeof(why)), 0);
  for (size_t i = 0; i < N; i++) {
    int streaming = oee_v1_orchestrator_service_methods[i].server_streaming;
    assert_true(streaming ? oee_service_routes[i].stream != NULL
                          : oee_service_routes[i].unary != NULL);
  }
}

/* A hole in the table: start-up is refused and the method is named. */
static void test_missing_handler_refused(void **state) {
  (void)state;
  oee_route routes[N];
  copy_routes(routes);
  routes[M(GET_TASK)] = (oee_route){0};
  char why[256] = "";
  assert_int_equal(oee_service_check_routes(routes, N, why, sizeof(why)), -1);
  assert_string_equal(why, "method /oee.v1.OrchestratorService/GetTask has no handler");
  copy_routes(routes);
  routes[M(WATCH_TASKS)] = (oee_route){0};
  assert_int_equal(oee_service_check_routes(routes, N, why, sizeof(why)), -1);
  assert_string_equal(why, "method /oee.v1.OrchestratorService/WatchTasks has no handler");
}

static void test_wrong_kind_refused(void **state) {
  (void)state;
  oee_route routes[N];
  copy_routes(routes);
  routes[M(WATCH_TASKS)] = (oee_route){.unary = oee_service_routes[M(GET_TASK)].unary};
  char why[256] = "";
  assert_int_equal(oee_service_check_routes(routes, N, why, sizeof(why)), -1);
  assert_non_null(strstr(why, "WatchTasks has a handler of the wrong kind"));
  copy_routes(routes);
  routes[M(SUBMIT_TASK)].stream = oee_service_routes[M(WATCH_TASKS)].stream;
  assert_int_equal(oee_service_check_routes(routes, N, why, sizeof(why)), -1);
  assert_non_null(strstr(why, "SubmitTask has two handlers"));
  assert_int_equal(oee_service_check_routes(routes, N - 1, why, sizeof(why)), -1);
}

static void test_error_table(void **state) {
  (void)state;
  assert_int_equal(oee_status_from_error(OEE_OK), GRPC_STATUS_OK);
  assert_int_equal(oee_status_from_error(OEE_EINVAL), GRPC_STATUS_INVALID_ARGUMENT);
  assert_int_equal(oee_status_from_error(OEE_ENOEXEC), GRPC_STATUS_INVALID_ARGUMENT);
  assert_int_equal(oee_status_from_error(OEE_ENOCMD), GRPC_STATUS_INVALID_ARGUMENT);
  assert_int_equal(oee_status_from_error(OEE_ENOMODEL), GRPC_STATUS_INVALID_ARGUMENT);
  assert_int_equal(oee_status_from_error(OEE_ENOENT), GRPC_STATUS_NOT_FOUND);
  assert_int_equal(oee_status_from_error(OEE_EFULL), GRPC_STATUS_RESOURCE_EXHAUSTED);
  assert_int_equal(oee_status_from_error(OEE_ENOMEM), GRPC_STATUS_RESOURCE_EXHAUSTED);
  assert_int_equal(oee_status_from_error(OEE_EOVERFLOW), GRPC_STATUS_RESOURCE_EXHAUSTED);
  assert_int_equal(oee_status_from_error(OEE_ESTOPPED), GRPC_STATUS_UNAVAILABLE);
  assert_int_equal(oee_status_from_error(OEE_EIO), GRPC_STATUS_UNAVAILABLE);
  /* Every core code has a row of its own: none but OK maps to OK. */
  for (int err = -1; err > -OEE__E_COUNT; err--) {
    assert_int_not_equal(oee_status_from_error(err), GRPC_STATUS_OK);
  }
  assert_int_equal(oee_status_from_error(-OEE__E_COUNT), GRPC_STATUS_INTERNAL);
  assert_int_equal(oee_status_from_error(1), GRPC_STATUS_INTERNAL);
}

static const char *no_env(const char *name) {
  (void)name;
  return NULL;
}

/* The real wiring on a loopback server: every route registers. */
static void test_init_and_fini(void **state) {
  (void)state;
  oee_server_config cfg;
  char err[256];
  char *argv[] = {"oee-server", NULL};
  assert_int_equal(oee_server_config_load(&cfg, 1, argv, no_env, err, sizeof(err)), 0);
  oee_engine_config ec = {.num_workers = 1, .commands = cfg.commands, .models = cfg.models};
  oee_engine *eng = NULL;
  assert_int_equal(oee_engine_create(&ec, &eng), 0);
  oee_rpc_server *srv = oee_rpc_server_create("127.0.0.1:0", NULL, NULL);
  assert_non_null(srv);
  oee_service svc;
  char why[256] = "";
  assert_int_equal(oee_service_init(&svc, eng, &cfg, srv, NULL, why, sizeof(why)), 0);
  oee_rpc_server_destroy(srv);
  oee_service_fini(&svc);
  oee_engine_destroy(eng);
  oee_server_config_free(&cfg);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_real_table_is_complete), cmocka_unit_test(test_missing_handler_refused),
      cmocka_unit_test(test_wrong_kind_refused),     cmocka_unit_test(test_error_table),
      cmocka_unit_test(test_init_and_fini),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
