/*
 * tls.h - the server's TLS files (config "tls", API.md "Security"), read
 * and checked once at start so that a bad file stops the start naming it,
 * instead of failing every handshake later.
 */
#ifndef OEE_SERVER_TLS_H
#define OEE_SERVER_TLS_H

#include <stddef.h>

/* The PEM texts handed to the server runtime; NULL when unset. */
typedef struct oee_tls_pems {
  char *cert, *key, *client_ca;
  int expired; /* 1: the certificate's notAfter has passed (start goes on, warned) */
} oee_tls_pems;

/* Reads cert_file, key_file and client_ca_file (each may be NULL: nothing
 * is read for it). Checks that the certificate and CA files hold PEM
 * certificates, the key file a PEM private key, and that the key belongs
 * to the certificate. 0, or -1 with err naming the file and the cause;
 * *out must be freed with oee_tls_pems_free() in both cases. */
int oee_tls_load(const char *cert_file, const char *key_file, const char *client_ca_file,
                 oee_tls_pems *out, char *err, size_t len);
void oee_tls_pems_free(oee_tls_pems *p);

#endif /* OEE_SERVER_TLS_H */
