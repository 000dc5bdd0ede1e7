/* tls.c - reads the TLS files and checks them with OpenSSL's libcrypto. */
#include "server/tls.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "rpc/pem.h"

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t len, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, len, fmt, ap);
  va_end(ap);
  return -1;
}

/* The whole file, or NULL with err prefixed "tls: ". */
static char *read_text(const char *what, const char *path, char *err, size_t len) {
  char why[512];
  char *text = oee_rpc_pem_read(what, path, why, sizeof(why));
  if (text == NULL) fail(err, len, "tls: %s", why);
  return text;
}

static X509 *first_cert(const char *pem) {
  BIO *b = BIO_new_mem_buf(pem, -1);
  X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
  BIO_free(b);
  return x;
}

static EVP_PKEY *private_key(const char *pem) {
  BIO *b = BIO_new_mem_buf(pem, -1);
  EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
  BIO_free(b);
  return k;
}

/* The certificate and its key: both parse, and they belong together. */
static int check_pair(oee_tls_pems *p, const char *cert_file, const char *key_file, char *err,
                      size_t len) {
  X509 *x = first_cert(p->cert);
  if (x == NULL) return fail(err, len, "tls: cert_file %s holds no PEM certificate", cert_file);
  EVP_PKEY *k = private_key(p->key);
  int rc = 0;
  if (k == NULL) {
    rc = fail(err, len, "tls: key_file %s holds no PEM private key", key_file);
  } else if (X509_check_private_key(x, k) != 1) {
    rc = fail(err, len, "tls: key_file %s does not match the certificate in cert_file %s", key_file,
              cert_file);
  }
  p->expired = X509_cmp_current_time(X509_get0_notAfter(x)) < 0;
  EVP_PKEY_free(k);
  X509_free(x);
  return rc;
}

int oee_tls_load(const char *cert_file, const char *key_file, const char *client_ca_file,
                 oee_tls_pems *out, char *err, size_t len) {
  memset(out, 0, sizeof(*out));
  if (cert_file && (out->cert = read_text("cert_file", cert_file, err, len)) == NULL) return -1;
  if (key_file && (out->key = read_text("key_file", key_file, err, len)) == NULL) return -1;
  if (client_ca_file &&
      (out->client_ca = read_text("client_ca_file", client_ca_file, err, len)) == NULL) {
    return -1;
  }
  if (out->cert && out->key && check_pair(out, cert_file, key_file, err, len) != 0) return -1;
  if (out->client_ca) {
    X509 *ca = first_cert(out->client_ca);
    if (ca == NULL) {
      return fail(err, len, "tls: client_ca_file %s holds no PEM certificate", client_ca_file);
    }
    X509_free(ca);
  }
  return 0;
}

void oee_tls_pems_free(oee_tls_pems *p) {
  if (p == NULL) return;
  oee_rpc_pem_free(p->cert);
  oee_rpc_pem_free(p->key); /* wiped: the key is secret */
  oee_rpc_pem_free(p->client_ca);
  memset(p, 0, sizeof(*p));
}
