/* error.c - descriptions and names of the OEE_RPC_E* codes (see error.h). */
#include "rpc/error.h"

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
