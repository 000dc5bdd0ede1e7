/*
 * error_test.c - the one table of OEE_RPC_E* codes (rpc/error.h): every code
 * is negative, distinct, clear of core's OEE_E* range and described.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <grpc/status.h>

#include "rpc/error.h"

#define CODE(name, msg) OEE_RPC_E##name,
static const int codes[] = {OEE_RPC_ERRNO_MAP(CODE)};
#undef CODE

static void test_codes_distinct_and_negative(void **state) {
  (void)state;
  size_t n = sizeof codes / sizeof codes[0];
  assert_int_equal(n, OEE__RPC_E_COUNT);
  for (size_t i = 0; i < n; i++) {
    /* Core's codes run from -1 down to a few dozen; ours stay below -100. */
    assert_true(codes[i] <= -(OEE__RPC_ERRNO_BASE + 1));
    for (size_t j = 0; j < i; j++) assert_int_not_equal(codes[i], codes[j]);
  }
}

static void test_every_code_is_described(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
    assert_string_not_equal(oee_rpc_strerror(codes[i]), "unknown error");
    assert_string_not_equal(oee_rpc_err_name(codes[i]), "UNKNOWN");
  }
  assert_string_equal(oee_rpc_strerror(0), "success");
  assert_string_equal(oee_rpc_err_name(0), "OK");
  assert_string_equal(oee_rpc_strerror(-1), "unknown error");
  assert_string_equal(oee_rpc_err_name(12345), "UNKNOWN");
  assert_string_equal(oee_rpc_strerror(OEE_RPC_EADDRINUSE), "address already in use");
  assert_string_equal(oee_rpc_err_name(OEE_RPC_EBUSY), "BUSY");
}

/* The status names follow grpc/status.h's numbering. */
static void test_status_names(void **state) {
  (void)state;
  assert_string_equal(oee_rpc_status_name(GRPC_STATUS_OK), "OK");
  assert_string_equal(oee_rpc_status_name(GRPC_STATUS_INVALID_ARGUMENT), "INVALID_ARGUMENT");
  assert_string_equal(oee_rpc_status_name(GRPC_STATUS_FAILED_PRECONDITION), "FAILED_PRECONDITION");
  assert_string_equal(oee_rpc_status_name(GRPC_STATUS_UNAVAILABLE), "UNAVAILABLE");
  assert_string_equal(oee_rpc_status_name(GRPC_STATUS_UNAUTHENTICATED), "UNAUTHENTICATED");
  assert_null(oee_rpc_status_name(GRPC_STATUS_UNAUTHENTICATED + 1));
  assert_null(oee_rpc_status_name(-1));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_codes_distinct_and_negative),
      cmocka_unit_test(test_every_code_is_described),
      cmocka_unit_test(test_status_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
