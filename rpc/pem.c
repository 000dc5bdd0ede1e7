/* pem.c - whole small files read into memory, wiped when freed. */
#include "rpc/pem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *oee_rpc_pem_read(const char *what, const char *path, char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    if (err) snprintf(err, errlen, "cannot read %s %s: %s", what, path, strerror(errno));
    return NULL;
  }
  char *buf = malloc(OEE_RPC_PEM_MAX_BYTES + 1);
  size_t n = buf ? fread(buf, 1, OEE_RPC_PEM_MAX_BYTES + 1, f) : 0;
  int bad = buf == NULL || ferror(f) || n == 0 || n > OEE_RPC_PEM_MAX_BYTES;
  fclose(f);
  if (bad) {
    const char *why = buf == NULL ? "out of memory" : n == 0 ? "empty or unreadable" : "over 1 MiB";
    if (err) snprintf(err, errlen, "cannot read %s %s: %s", what, path, why);
    free(buf);
    return NULL;
  }
  buf[n] = '\0';
  return buf;
}

void oee_rpc_pem_free(char *pem) {
  if (pem == NULL) return;
  volatile char *p = pem; /* volatile: the wipe must not be optimised away */
  for (size_t i = 0; p[i] != '\0'; i++) p[i] = 0;
  free(pem);
}
