/* db_codec.c - the byte forms of a context, a list of strings and payload
 * fields in a database row (db_codec.h). */
#include "core/db_codec.h"
#include "core/oee_alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void put_u32(unsigned char **p, uint32_t v) {
  for (int i = 0; i < 4; i++) *(*p)++ = (unsigned char)(v >> (8 * i));
}

static int get_u32(const unsigned char **p, const unsigned char *end, uint32_t *v) {
  if (end - *p < 4) return OEE_EINVAL;
  *v = 0;
  for (int i = 0; i < 4; i++) *v |= (uint32_t)(*(*p)++) << (8 * i);
  return 0;
}

static void put_lstr(unsigned char **p, const char *s) {
  size_t l = strlen(s);
  put_u32(p, (uint32_t)l);
  memcpy(*p, s, l);
  *p += l;
}

int oee__ctx_encode(const oee_kv *kv, size_t n, void **out, size_t *len) {
  *out = NULL;
  *len = 0;
  if (n == 0) return 0;
  size_t total = 4;
  for (size_t i = 0; i < n; i++) total += 8 + strlen(kv[i].key) + strlen(kv[i].value);
  unsigned char *buf = oee_malloc(total), *p = buf;
  if (buf == NULL) return OEE_ENOMEM;
  put_u32(&p, (uint32_t)n);
  for (size_t i = 0; i < n; i++) {
    put_lstr(&p, kv[i].key);
    put_lstr(&p, kv[i].value);
  }
  *out = buf;
  *len = total;
  return 0;
}

/* Checks the layout (`per` strings per entry) and returns the count and the
 * bytes the strings need with their NULs. */
static int measure(const unsigned char *p, const unsigned char *end, uint32_t per, uint32_t *count,
                   size_t *bytes) {
  if (get_u32(&p, end, count) != 0) return OEE_EINVAL;
  /* Each string takes at least its 4-byte length, so a count the bytes
   * cannot hold is refused here (and per * count cannot wrap below). */
  if ((uint64_t)*count * per > (uint64_t)(end - p) / 4) return OEE_EINVAL;
  *bytes = 0;
  for (uint32_t i = 0; i < per * *count; i++) {
    uint32_t l;
    if (get_u32(&p, end, &l) != 0 || (size_t)(end - p) < l) return OEE_EINVAL;
    if (memchr(p, '\0', l) != NULL) return OEE_EINVAL;
    p += l;
    *bytes += l + 1;
  }
  return p == end ? 0 : OEE_EINVAL;
}

/* Copies the next stored string to *str, which then points past its NUL;
 * returns the copy. The bytes were measured: it cannot fail. */
static const char *get_lstr(const unsigned char **p, const unsigned char *end, char **str) {
  uint32_t l = 0;
  get_u32(p, end, &l);
  char *dst = *str;
  memcpy(dst, *p, l);
  dst[l] = '\0';
  *str += l + 1;
  *p += l;
  return dst;
}

int oee__ctx_decode(const void *data, size_t len, oee_kv **out, size_t *n) {
  *out = NULL;
  *n = 0;
  if (data == NULL || len == 0) return 0;
  const unsigned char *p = data, *end = p + len;
  uint32_t count;
  size_t bytes;
  if (measure(p, end, 2, &count, &bytes) != 0) return OEE_EINVAL;
  if (count == 0) return 0;
  oee_kv *kv = oee_malloc(count * sizeof(*kv) + bytes);
  if (kv == NULL) return OEE_ENOMEM;
  char *str = (char *)(kv + count);
  p += 4;
  for (uint32_t i = 0; i < count; i++) {
    kv[i].key = get_lstr(&p, end, &str);
    kv[i].value = get_lstr(&p, end, &str);
  }
  *out = kv;
  *n = count;
  return 0;
}

int oee__strs_encode(const char *const *s, size_t n, void **out, size_t *len) {
  *out = NULL;
  *len = 0;
  if (n == 0) return 0;
  size_t total = 4;
  for (size_t i = 0; i < n; i++) total += 4 + strlen(s[i]);
  unsigned char *buf = oee_malloc(total), *p = buf;
  if (buf == NULL) return OEE_ENOMEM;
  put_u32(&p, (uint32_t)n);
  for (size_t i = 0; i < n; i++) put_lstr(&p, s[i]);
  *out = buf;
  *len = total;
  return 0;
}

int oee__strs_decode(const void *data, size_t len, char ***out, size_t *n) {
  *out = NULL;
  *n = 0;
  if (data == NULL || len == 0) return 0;
  const unsigned char *p = data, *end = p + len;
  uint32_t count;
  size_t bytes;
  if (measure(p, end, 1, &count, &bytes) != 0) return OEE_EINVAL;
  if (count == 0) return 0;
  char **list = oee_malloc(count * sizeof(*list) + bytes);
  if (list == NULL) return OEE_ENOMEM;
  char *str = (char *)(list + count);
  p += 4;
  for (uint32_t i = 0; i < count; i++) list[i] = (char *)get_lstr(&p, end, &str);
  *out = list;
  *n = count;
  return 0;
}

/* ------------------------------------------------------- other forms */

#define NULL_STRING UINT32_MAX

static void put_bytes(oee__wbuf *b, const void *data, size_t n) {
  if (b->failed) return;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n) cap *= 2;
    unsigned char *grown = oee_realloc(b->p, cap);
    if (grown == NULL) {
      b->failed = 1;
      return;
    }
    b->p = grown;
    b->cap = cap;
  }
  memcpy(b->p + b->len, data, n);
  b->len += n;
}

void oee__put_u64(oee__wbuf *b, uint64_t v) {
  unsigned char raw[8];
  for (int i = 0; i < 8; i++) raw[i] = (unsigned char)(v >> (8 * i));
  put_bytes(b, raw, sizeof(raw));
}

void oee__put_f64(oee__wbuf *b, double v) {
  uint64_t bits;
  memcpy(&bits, &v, sizeof(bits));
  oee__put_u64(b, bits);
}

void oee__put_str(oee__wbuf *b, const char *s) {
  size_t l = s ? strlen(s) : 0;
  unsigned char raw[4], *p = raw;
  put_u32(&p, s ? (uint32_t)l : NULL_STRING);
  put_bytes(b, raw, sizeof(raw));
  if (s) put_bytes(b, s, l);
}

uint64_t oee__get_u64(oee__rbuf *b) {
  if (b->bad || b->end - b->p < 8) {
    b->bad = 1;
    return 0;
  }
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v |= (uint64_t)(*b->p++) << (8 * i);
  return v;
}

double oee__get_f64(oee__rbuf *b) {
  uint64_t bits = oee__get_u64(b);
  double v;
  memcpy(&v, &bits, sizeof(v));
  return v;
}

char *oee__get_str(oee__rbuf *b) {
  uint32_t l;
  if (b->bad || get_u32(&b->p, b->end, &l) != 0) {
    b->bad = 1;
    return NULL;
  }
  if (l == NULL_STRING) return NULL;
  if ((size_t)(b->end - b->p) < l || memchr(b->p, '\0', l) != NULL) {
    b->bad = 1;
    return NULL;
  }
  char *s = oee_malloc((size_t)l + 1);
  if (s == NULL) {
    b->nomem = 1;
    b->p += l;
    return NULL;
  }
  memcpy(s, b->p, l);
  s[l] = '\0';
  b->p += l;
  return s;
}
