/* error.c - descriptions and names of the OEE_RPC_E* codes (see error.h). */
#include "rpc/error.h"

#include <stddef.h>

const char *oee_rpc_strerror(int err) {
  switch (err) {
    case 0:
      return "success";
#define OEE__RPC_ERR_CASE(name, msg) \
  case OEE_RPC_E##name:              \
    return msg;
      OEE_RPC_ERRNO_MAP(OEE__RPC_ERR_CASE)
#undef OEE__RPC_ERR_CASE
    default:
      return "unknown error";
  }
}

const char *oee_rpc_err_name(int err) {
  switch (err) {
    case 0:
      return "OK";
#define OEE__RPC_ERR_NAME(name, msg) \
  case OEE_RPC_E##name:              \
    return #name;
      OEE_RPC_ERRNO_MAP(OEE__RPC_ERR_NAME)
#undef OEE__RPC_ERR_NAME
    default:
      return "UNKNOWN";
  }
}

/* Indexed by grpc_status_code (grpc/status.h); the values are fixed by the
 * gRPC protocol. */
static const char *const status_names[] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

const char *oee_rpc_status_name(int code) {
  if (code < 0 || (size_t)code >= sizeof(status_names) / sizeof(status_names[0])) return NULL;
  return status_names[code];
}
