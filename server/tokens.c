/* tokens.c - bearer tokens with roles (see tokens.h). */
#include "server/tokens.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/oee_alloc.h"

#define TOKEN_FILE_MAX 4096

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t len, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, len, fmt, ap);
  va_end(ap);
  return -1;
}

/* SHA-256 with the algorithm fetched once: OpenSSL 3's one-shot SHA256()
 * looks the algorithm up in its provider tables on every call (664 ns per
 * token here against 274 ns with it fetched once), and every call with
 * tokens configured hashes one. The fetched method stays for the process. */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void) { sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL); }

static void sha256(const unsigned char *data, size_t n, unsigned char out[32]) {
  (void)pthread_once(&sha256_once, sha256_fetch);
  if (sha256_md == NULL || EVP_Digest(data, n, out, NULL, sha256_md, NULL) != 1) {
    SHA256(data, n, out); /* the slow path still gives the right digest */
  }
}

static const struct {
  const char *name;
  unsigned bit;
} roles[] = {{"read", OEE_ROLE_READ},
             {"submit", OEE_ROLE_SUBMIT},
             {"admin", OEE_ROLE_ADMIN},
             {"worker", OEE_ROLE_WORKER}};

const char *oee_tokens_role_name(unsigned role) {
  for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
    if (roles[i].bit == role) return roles[i].name;
  }
  return "?";
}

static int parse_roles(json_t *arr, size_t i, unsigned *out, char *err, size_t len) {
  size_t k;
  json_t *v;
  if (!json_is_array(arr) || json_array_size(arr) == 0) {
    return fail(err, len, "config key \"tokens[%zu].roles\" must be a non-empty array", i);
  }
  *out = 0;
  json_array_foreach(arr, k, v) {
    const char *r = json_string_value(v);
    unsigned bit = 0;
    for (size_t j = 0; r && j < sizeof(roles) / sizeof(roles[0]); j++) {
      if (strcmp(r, roles[j].name) == 0) bit = roles[j].bit;
    }
    if (bit == 0) {
      return fail(err, len,
                  "config key \"tokens[%zu].roles[%zu]\" must be read, submit, admin or worker", i,
                  k);
    }
    *out |= bit;
  }
  return 0;
}

static int hex_digest(const char *hex, unsigned char out[32]) {
  if (hex == NULL || strlen(hex) != 64) return -1;
  for (size_t i = 0; i < 32; i++) {
    unsigned v;
    if (!isxdigit((unsigned char)hex[2 * i]) || !isxdigit((unsigned char)hex[2 * i + 1]) ||
        sscanf(hex + 2 * i, "%2x", &v) != 1) {
      return -1;
    }
    out[i] = (unsigned char)v;
  }
  return 0;
}

/* The digest of the token held in `path`, surrounding whitespace trimmed. */
static int file_digest(const char *path, size_t i, unsigned char out[32], char *err, size_t len) {
  FILE *f = path ? fopen(path, "rb") : NULL;
  if (f == NULL) return fail(err, len, "config key \"tokens[%zu].file\": cannot read %s", i, path);
  char buf[TOKEN_FILE_MAX + 1];
  size_t n = fread(buf, 1, TOKEN_FILE_MAX + 1, f);
  fclose(f);
  if (n > TOKEN_FILE_MAX) {
    return fail(err, len, "config key \"tokens[%zu].file\": %s is over %d bytes", i, path,
                TOKEN_FILE_MAX);
  }
  size_t a = 0, b = n;
  while (a < b && isspace((unsigned char)buf[a])) a++;
  while (b > a && isspace((unsigned char)buf[b - 1])) b--;
  if (a == b) return fail(err, len, "config key \"tokens[%zu].file\": %s holds no token", i, path);
  SHA256((const unsigned char *)buf + a, b - a, out);
  OPENSSL_cleanse(buf, sizeof(buf));
  return 0;
}

static int parse_entry(json_t *o, size_t i, oee_token_entry *e, char *err, size_t len) {
  if (!json_is_object(o)) return fail(err, len, "config key \"tokens[%zu]\" must be an object", i);
  const char *name = json_string_value(json_object_get(o, "name"));
  if (name == NULL || name[0] == '\0') {
    return fail(err, len, "config key \"tokens[%zu].name\" must be a non-empty string", i);
  }
  json_t *sha = json_object_get(o, "sha256"), *file = json_object_get(o, "file");
  if ((sha == NULL) == (file == NULL)) {
    return fail(err, len, "config key \"tokens[%zu]\" needs exactly one of sha256 and file", i);
  }
  if (sha != NULL && hex_digest(json_string_value(sha), e->digest) != 0) {
    return fail(err, len, "config key \"tokens[%zu].sha256\" must be 64 hex digits", i);
  }
  if (file != NULL && file_digest(json_string_value(file), i, e->digest, err, len) != 0) return -1;
  if (parse_roles(json_object_get(o, "roles"), i, &e->roles, err, len) != 0) return -1;
  if ((e->name = oee_malloc(strlen(name) + 1)) == NULL) return fail(err, len, "out of memory");
  memcpy(e->name, name, strlen(name) + 1);
  return 0;
}

int oee_tokens_from_json(json_t *arr, oee_token_entry **out, size_t *n, char *err, size_t len) {
  *out = NULL;
  *n = 0;
  if (!json_is_array(arr)) return fail(err, len, "config key \"tokens\" must be an array");
  size_t count = json_array_size(arr);
  if (count == 0) return 0;
  oee_token_entry *v = oee_calloc(count, sizeof(*v));
  if (v == NULL) return fail(err, len, "out of memory");
  for (size_t i = 0; i < count; i++) {
    if (parse_entry(json_array_get(arr, i), i, &v[i], err, len) != 0) {
      oee_tokens_free(v, i + 1);
      return -1;
    }
  }
  *out = v;
  *n = count;
  return 0;
}

void oee_tokens_free(oee_token_entry *v, size_t n) {
  for (size_t i = 0; v != NULL && i < n; i++) {
    oee_free(v[i].name);
    OPENSSL_cleanse(v[i].digest, sizeof(v[i].digest));
  }
  oee_free(v);
}

/* ------------------------------------------------------------ methods */

static const struct {
  const char *method;
  unsigned role;
} orchestrator[] = {
    {"GetTask", OEE_ROLE_READ},           {"ListTasks", OEE_ROLE_READ},
    {"GetQueueStatus", OEE_ROLE_READ},    {"GetSystemStatus", OEE_ROLE_READ},
    {"GetPipelineResult", OEE_ROLE_READ}, {"WatchTasks", OEE_ROLE_READ},
    {"GetSchedule", OEE_ROLE_READ},       {"ListSchedules", OEE_ROLE_READ},
    {"SubmitTask", OEE_ROLE_SUBMIT},      {"SubmitTasks", OEE_ROLE_SUBMIT},
    {"SubmitPipeline", OEE_ROLE_SUBMIT},  {"CancelTask", OEE_ROLE_SUBMIT},
    {"RetryTask", OEE_ROLE_SUBMIT},       {"ClearCompletedTasks", OEE_ROLE_ADMIN},
    {"CreateSchedule", OEE_ROLE_ADMIN},   {"DeleteSchedule", OEE_ROLE_ADMIN},
    {"PauseSchedule", OEE_ROLE_ADMIN},    {"ResumeSchedule", OEE_ROLE_ADMIN},
};

unsigned oee_tokens_role_of(const char *path) {
  static const char orch[] = "/oee.v1.OrchestratorService/", work[] = "/oee.v1.WorkerService/";
  if (strncmp(path, work, sizeof(work) - 1) == 0) return OEE_ROLE_WORKER;
  if (strncmp(path, "/oee.", 5) != 0) return 0; /* health, reflection */
  if (strncmp(path, orch, sizeof(orch) - 1) == 0) {
    const char *m = path + sizeof(orch) - 1;
    for (size_t i = 0; i < sizeof(orchestrator) / sizeof(orchestrator[0]); i++) {
      if (strcmp(orchestrator[i].method, m) == 0) return orchestrator[i].role;
    }
  }
  return OEE_ROLE_ADMIN; /* not in the table: closed */
}

/* ------------------------------------------------------------- checks */

/* The bearer token of the call's metadata, or NULL. */
static const grpc_metadata *authorization(const grpc_metadata_array *md) {
  for (size_t i = 0; md != NULL && i < md->count; i++) {
    const grpc_slice *k = &md->metadata[i].key;
    if (GRPC_SLICE_LENGTH(*k) == 13 && memcmp(GRPC_SLICE_START_PTR(*k), "authorization", 13) == 0) {
      return &md->metadata[i];
    }
  }
  return NULL;
}

/* The index of the entry whose digest is d, or -1; every entry is
 * compared, whatever matched. */
static long find(const oee_token_entry *v, size_t n, const unsigned char d[32]) {
  long found = -1;
  for (size_t i = 0; i < n; i++) {
    int same = CRYPTO_memcmp(v[i].digest, d, 32) == 0;
    found = same ? (long)i : found;
  }
  return found;
}

grpc_status_code oee_tokens_check(const oee_token_entry *v, size_t n, const char *path,
                                  const grpc_metadata_array *md, const char **who, char *msg,
                                  size_t len) {
  if (who) *who = NULL;
  unsigned need = n > 0 ? oee_tokens_role_of(path) : 0;
  if (need == 0) return GRPC_STATUS_OK;
  const grpc_metadata *a = authorization(md);
  const char *val = a ? (const char *)GRPC_SLICE_START_PTR(a->value) : NULL;
  size_t vlen = a ? GRPC_SLICE_LENGTH(a->value) : 0;
  if (val == NULL || vlen <= 7 || strncasecmp(val, "Bearer ", 7) != 0) {
    snprintf(msg, len, "no token: send the metadata \"authorization: Bearer <token>\"");
    return GRPC_STATUS_UNAUTHENTICATED;
  }
  unsigned char d[32];
  sha256((const unsigned char *)val + 7, vlen - 7, d);
  long i = find(v, n, d);
  if (i < 0) {
    snprintf(msg, len, "unknown token");
    return GRPC_STATUS_UNAUTHENTICATED;
  }
  if (who) *who = v[i].name;
  if (!(v[i].roles & need)) {
    snprintf(msg, len, "token \"%s\" lacks the %s role that %s needs", v[i].name,
             oee_tokens_role_name(need), strrchr(path, '/') + 1);
    return GRPC_STATUS_PERMISSION_DENIED;
  }
  return GRPC_STATUS_OK;
}
