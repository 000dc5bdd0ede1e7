/* errmap.c - core error codes to gRPC status codes (see errmap.h). */
#include "server/errmap.h"

#include <stddef.h>

#include "core/oee.h"

typedef struct errmap_row {
  int err;               /* 0 or an OEE_E* code */
  grpc_status_code code; /* what the caller sees */
} errmap_row;

/* One row per core code, in OEE_ERRNO_MAP order. */
static const errmap_row rows[] = {
    {OEE_OK, GRPC_STATUS_OK},
    {OEE_EINVAL, GRPC_STATUS_INVALID_ARGUMENT},
    {OEE_ENOENT, GRPC_STATUS_NOT_FOUND},
    {OEE_ENOMEM, GRPC_STATUS_RESOURCE_EXHAUSTED},
    {OEE_ESTATE, GRPC_STATUS_FAILED_PRECONDITION},
    {OEE_EFULL, GRPC_STATUS_RESOURCE_EXHAUSTED},
    {OEE_ESTOPPED, GRPC_STATUS_UNAVAILABLE},
    {OEE_ENOEXEC, GRPC_STATUS_INVALID_ARGUMENT},
    {OEE_EAGAIN, GRPC_STATUS_UNAVAILABLE},
    {OEE_EOVERFLOW, GRPC_STATUS_RESOURCE_EXHAUSTED},
    {OEE_ECLOSED, GRPC_STATUS_CANCELLED},
    {OEE_ETIMEDOUT, GRPC_STATUS_DEADLINE_EXCEEDED},
    {OEE_EEXISTS, GRPC_STATUS_ALREADY_EXISTS},
    {OEE_ENOCMD, GRPC_STATUS_INVALID_ARGUMENT},
    {OEE_ENOMODEL, GRPC_STATUS_INVALID_ARGUMENT},
    {OEE_EIO, GRPC_STATUS_UNAVAILABLE}, /* "storage: <cause>": not stored, retry */
};

_Static_assert(sizeof(rows) / sizeof(rows[0]) == OEE__E_COUNT,
               "every core error code needs exactly one gRPC status row");

grpc_status_code oee_status_from_error(int err) {
  /* Rows are in code order, so the row of -err is rows[-err]; the check
   * keeps a reordered table from mapping a code to its neighbour's status. */
  if (err > 0 || -err >= OEE__E_COUNT || rows[-err].err != err) {
    return GRPC_STATUS_INTERNAL;
  }
  return rows[-err].code;
}
