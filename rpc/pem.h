/*
 * pem.h - reading the PEM files of TLS (certificates, keys, CA bundles),
 * shared by the client runtime (oee_rpc_channel_open) and the server's
 * start-up checks (server/tls.c).
 */
#ifndef OEE_RPC_PEM_H
#define OEE_RPC_PEM_H

#include <stddef.h>

/* Larger files are refused: a certificate chain is a few KB. */
#define OEE_RPC_PEM_MAX_BYTES ((size_t)1 << 20)

/* The whole file as a NUL-terminated malloc'd string, or NULL with err
 * (may be NULL) saying "cannot read <what> <path>: <cause>". */
char *oee_rpc_pem_read(const char *what, const char *path, char *err, size_t errlen);
/* Wipes the text (it may hold a private key) and frees it; NULL is fine. */
void oee_rpc_pem_free(char *pem);

#endif /* OEE_RPC_PEM_H */
