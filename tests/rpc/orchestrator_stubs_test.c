/*
 * orchestrator_stubs_test.c - the stubs generated for oee.v1: method table,
 * presence oneofs and Timestamp round trip through protobuf-c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "oee/v1/orchestrator.grpc-client.h"
#include "oee/v1/orchestrator.grpc-server.h"

static void test_method_table(void **state) {
  const oee_rpc_method *m = oee_v1_orchestrator_service_methods;
  assert_int_equal(OEE_V1_ORCHESTRATOR_SERVICE_N_METHODS, 18);
  assert_string_equal(OEE_V1_ORCHESTRATOR_SERVICE_NAME, "oee.v1.OrchestratorService");
  assert_string_equal(m[OEE_V1_ORCHESTRATOR_SERVICE_METHOD_SUBMIT_TASK].path,
                      "/oee.v1.OrchestratorService/SubmitTask");
  for (int i = 0; i < OEE_V1_ORCHESTRATOR_SERVICE_N_METHODS; i++) {
    int watch = i == OEE_V1_ORCHESTRATOR_SERVICE_METHOD_WATCH_TASKS;
    assert_int_equal(m[i].server_streaming, watch);
    assert_int_equal(m[i].client_streaming, 0);
    assert_null(m[i].handler);
  }
  assert_ptr_equal(m[OEE_V1_ORCHESTRATOR_SERVICE_METHOD_GET_TASK].response,
                   &oee__v1__task__descriptor);
  assert_ptr_equal(m[OEE_V1_ORCHESTRATOR_SERVICE_METHOD_WATCH_TASKS].response,
                   &oee__v1__task_event__descriptor);
  /* Methods added later come last, so the earlier indexes never move. */
  assert_int_equal(OEE_V1_ORCHESTRATOR_SERVICE_METHOD_RETRY_TASK, 11);
  assert_string_equal(m[OEE_V1_ORCHESTRATOR_SERVICE_METHOD_RETRY_TASK].path,
                      "/oee.v1.OrchestratorService/RetryTask");
  assert_ptr_equal(m[OEE_V1_ORCHESTRATOR_SERVICE_METHOD_RETRY_TASK].request,
                   &oee__v1__retry_task_request__descriptor);
  assert_ptr_equal(m[OEE_V1_ORCHESTRATOR_SERVICE_METHOD_RETRY_TASK].response,
                   &oee__v1__task__descriptor);
}

/* An explicit priority 0 survives the wire; an unset one stays unset. */
static void test_presence(void **state) {
  Oee__V1__SubmitTaskRequest req = OEE__V1__SUBMIT_TASK_REQUEST__INIT;
  req.name = (char *)"t";
  uint8_t buf[64];
  size_t n = oee__v1__submit_task_request__pack(&req, buf);
  Oee__V1__SubmitTaskRequest *back = oee__v1__submit_task_request__unpack(NULL, n, buf);
  assert_int_equal(back->priority_present_case,
                   OEE__V1__SUBMIT_TASK_REQUEST__PRIORITY_PRESENT__NOT_SET);
  oee__v1__submit_task_request__free_unpacked(back, NULL);
  req.priority_present_case = OEE__V1__SUBMIT_TASK_REQUEST__PRIORITY_PRESENT_PRIORITY;
  req.priority = 0;
  n = oee__v1__submit_task_request__pack(&req, buf);
  back = oee__v1__submit_task_request__unpack(NULL, n, buf);
  assert_int_equal(back->priority_present_case,
                   OEE__V1__SUBMIT_TASK_REQUEST__PRIORITY_PRESENT_PRIORITY);
  assert_int_equal(back->priority, 0);
  oee__v1__submit_task_request__free_unpacked(back, NULL);
}

static void test_timestamp(void **state) {
  Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  ts.seconds = 1700000000;
  ts.nanos = 123456789;
  Oee__V1__TaskEvent ev = OEE__V1__TASK_EVENT__INIT;
  ev.sequence = UINT64_MAX;
  ev.time = &ts;
  uint8_t buf[64];
  size_t n = oee__v1__task_event__pack(&ev, buf);
  Oee__V1__TaskEvent *back = oee__v1__task_event__unpack(NULL, n, buf);
  assert_non_null(back);
  assert_true(back->sequence == UINT64_MAX);
  assert_int_equal(back->time->nanos, 123456789);
  assert_null(back->task);
  oee__v1__task_event__free_unpacked(back, NULL);
  assert_int_equal(OEE__V1__PIPELINE_STRATEGY__QUALITY_FIRST, 5);
  assert_int_equal(OEE__V1__STAGE_STATUS__STAGE_STATUS_CANCELLED, 6);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_method_table),
      cmocka_unit_test(test_presence),
      cmocka_unit_test(test_timestamp),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
