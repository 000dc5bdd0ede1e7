/*
 * error.h - the error codes of the call runtimes (client/rt and server/rt).
 *
 * Both runtimes return 0 or a negative OEE_RPC_E* code from this one table,
 * so a code means the same thing whichever side produced it. These are local
 * failures of the runtime (bad argument, wrong state, no memory, an address
 * that cannot be bound); the outcome of a call on the wire is a gRPC status
 * code, never one of these.
 *
 * The values start at -101 so that they never collide with core's OEE_E*
 * codes (core/oee.h, -1 and down): glue code that passes both kinds through
 * one int can still tell them apart.
 */
#ifndef OEE_RPC_ERROR_H
#define OEE_RPC_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

#define OEE_RPC_ERRNO_MAP(X)                                      \
  X(INVAL, "invalid argument")                                    \
  X(NOMEM, "out of memory")                                       \
  X(BUSY, "a write is already in flight on the call")             \
  X(CLOSED, "the call is finished or cancelled")                  \
  X(STATE, "operation not allowed in the server's current state") \
  X(CALL, "gRPC refused the operation")                           \
  X(ADDRINUSE, "address already in use")                          \
  X(ADDRNOTAVAIL, "address cannot be bound")

/* Distance of the first code from zero; see the file comment. */
#define OEE__RPC_ERRNO_BASE 100

enum {
#define OEE__RPC_ERRNO_ENUM(name, msg) OEE__RPC_E_##name##_INDEX,
  OEE_RPC_ERRNO_MAP(OEE__RPC_ERRNO_ENUM)
#undef OEE__RPC_ERRNO_ENUM
      OEE__RPC_E_COUNT
};

#define OEE__RPC_ERRNO_VALUE(name, msg) \
  OEE_RPC_E##name = -(OEE__RPC_ERRNO_BASE + 1 + OEE__RPC_E_##name##_INDEX),
enum { OEE_RPC_ERRNO_MAP(OEE__RPC_ERRNO_VALUE) };
#undef OEE__RPC_ERRNO_VALUE

/* A static, never-NULL description of an error code: "success" for 0,
 * "unknown error" for a value outside the table. */
const char *oee_rpc_strerror(int err);
/* The symbolic name without prefix ("INVAL", "ADDRINUSE", ...), "OK" for 0
 * or "UNKNOWN"; static, never NULL. */
const char *oee_rpc_err_name(int err);
/* The upper-case name of a gRPC status code as grpc/status.h numbers them
 * ("OK", "INVALID_ARGUMENT", ... "UNAUTHENTICATED"), or NULL for a value
 * that is not one; static. */
const char *oee_rpc_status_name(int code);

#ifdef __cplusplus
}
#endif

#endif /* OEE_RPC_ERROR_H */
