/*
 * tokens.h - bearer tokens with roles (config "tokens", API.md "Security")
 * and the check every oee.v1 call passes before its handler runs (the
 * server runtime's admission hook, server/rt/rpc_server.h).
 *
 * A token is kept only as its SHA-256 digest (given as `sha256`, or
 * computed from a `file` read once at start, surrounding whitespace
 * trimmed). A call's `authorization: Bearer <token>` is hashed and compared
 * with every configured digest in constant time (CRYPTO_memcmp, no early
 * exit), so neither the time nor the logs tell anything about a token; only
 * a matching token's name is ever logged. Roles do not imply each other.
 * Health and reflection are open; an oee.v1 method missing from the table
 * needs `admin` (closed by default).
 */
#ifndef OEE_SERVER_TOKENS_H
#define OEE_SERVER_TOKENS_H

#include <grpc/grpc.h>
#include <jansson.h>
#include <stddef.h>

#define OEE_ROLE_READ 1u
#define OEE_ROLE_SUBMIT 2u
#define OEE_ROLE_ADMIN 4u
#define OEE_ROLE_WORKER 8u

typedef struct oee_token_entry {
  char *name;
  unsigned char digest[32]; /* SHA-256 of the token */
  unsigned roles;           /* OEE_ROLE_* */
} oee_token_entry;

/* Parses the "tokens" array: 0 and *out (n entries, oee_tokens_free), or
 * -1 with err naming the key ("tokens[1].roles", ...). */
int oee_tokens_from_json(json_t *arr, oee_token_entry **out, size_t *n, char *err, size_t len);
void oee_tokens_free(oee_token_entry *v, size_t n);
/* The role a method ("/pkg.Service/Method") needs; 0 for an open one. */
unsigned oee_tokens_role_of(const char *path);
/* The lower-case name of one role bit. */
const char *oee_tokens_role_name(unsigned role);
/* Checks a call: GRPC_STATUS_OK (also when no tokens are configured),
 * UNAUTHENTICATED (no, malformed or unknown token) or PERMISSION_DENIED
 * (the token lacks the method's role), with msg saying why (never the
 * token). *who, if not NULL, gets the matching token's name or NULL. */
grpc_status_code oee_tokens_check(const oee_token_entry *v, size_t n, const char *path,
                                  const grpc_metadata_array *md, const char **who, char *msg,
                                  size_t len);

#endif /* OEE_SERVER_TOKENS_H */
