/*
 * errmap.h - the one table from core error codes (OEE_E*, core/oee.h
 * OEE_ERRNO_MAP) to gRPC status codes.
 *
 * Every core code has exactly one row (checked at compile time against
 * OEE__E_COUNT and by tests/server/test_service.c), so a new core error
 * cannot silently fall through to INTERNAL.
 */
#ifndef OEE_SERVER_ERRMAP_H
#define OEE_SERVER_ERRMAP_H

#include <grpc/status.h>

/* The gRPC code for a core result (0 or a negative OEE_E* code); codes the
 * core does not define map to GRPC_STATUS_INTERNAL. */
grpc_status_code oee_status_from_error(int err);

#endif /* OEE_SERVER_ERRMAP_H */
