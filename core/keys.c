/*
 * keys.c - idempotency keys: a submission whose key was used within
 * idempotency_window_seconds is answered with the task that used it (see
 * engine.h for the engine's design).
 *
 * DESIGN
 * An index, not a scan: a chained hash table from key to the task that
 * used it (its id, creation time and the seq of its QUEUED change), holding
 * the keys used within the window by this process, plus a list in creation
 * order from whose head expired keys are dropped as new ones come, so the
 * table holds at most one window's keys and a lookup is O(1). A durable
 * engine also finds keys in the database (oee_db_find_key, an index seek)
 * for tasks submitted before a restart; submit.c asks it first, outside the
 * engine lock. Everything here runs with the engine lock held.
 */
#include <string.h>

#include "core/engine.h"
#include "core/oee_alloc.h"

struct oee__key {
  struct oee__key *hnext; /* hash chain */
  struct oee__key *next;  /* creation order */
  char id[OEE_ID_LEN + 1];
  int64_t created_at_ns;
  uint64_t seq; /* of the task's first change (its acknowledgement) */
  char key[];
};

static uint64_t key_hash(const char *k) {
  uint64_t h = 1469598103934665603ULL; /* FNV-1a */
  for (; *k; k++) {
    h ^= (unsigned char)*k;
    h *= 1099511628211ULL;
  }
  return h;
}

/* Unlinks `k` from its hash chain. */
static void chain_unlink(oee_engine *eng, oee__key *k) {
  oee__key **pp = &eng->keys[key_hash(k->key) & (eng->nkey_buckets - 1)];
  while (*pp != k) pp = &(*pp)->hnext;
  *pp = k->hnext;
  eng->nkeys--;
}

/* Drops the keys older than the window, oldest first. */
static void expire(oee_engine *eng, int64_t now_ns) {
  while (eng->keys_oldest != NULL &&
         eng->keys_oldest->created_at_ns + (int64_t)eng->idempotency_window_ns <= now_ns) {
    oee__key *k = eng->keys_oldest;
    eng->keys_oldest = k->next;
    if (eng->keys_oldest == NULL) eng->keys_newest = NULL;
    chain_unlink(eng, k);
    oee_free(k);
  }
}

const oee__key *oee__keys_find(oee_engine *eng, const char *key, int64_t now_ns) {
  expire(eng, now_ns);
  if (eng->nkey_buckets == 0) return NULL;
  for (oee__key *k = eng->keys[key_hash(key) & (eng->nkey_buckets - 1)]; k; k = k->hnext) {
    if (strcmp(k->key, key) == 0) return k;
  }
  return NULL;
}

const char *oee__key_id(const oee__key *k) { return k->id; }
uint64_t oee__key_seq(const oee__key *k) { return k->seq; }

static int grow(oee_engine *eng) {
  size_t n = eng->nkey_buckets ? eng->nkey_buckets * 2 : 256;
  oee__key **b = oee_calloc(n, sizeof(*b));
  if (b == NULL) return OEE_ENOMEM;
  for (size_t i = 0; i < eng->nkey_buckets; i++) {
    for (oee__key *k = eng->keys[i], *next; k; k = next) {
      next = k->hnext;
      size_t slot = key_hash(k->key) & (n - 1);
      k->hnext = b[slot];
      b[slot] = k;
    }
  }
  oee_free(eng->keys);
  eng->keys = b;
  eng->nkey_buckets = n;
  return 0;
}

int oee__keys_add(oee_engine *eng, const char *key, const oee_task_info *t) {
  if (eng->nkeys >= eng->nkey_buckets && grow(eng) != 0) return OEE_ENOMEM;
  size_t len = strlen(key) + 1;
  oee__key *k = oee_malloc(sizeof(*k) + len);
  if (k == NULL) return OEE_ENOMEM;
  memcpy(k->key, key, len);
  memcpy(k->id, t->id, sizeof(k->id));
  k->created_at_ns = t->created_at_ns;
  k->seq = t->seq;
  k->next = NULL;
  size_t slot = key_hash(key) & (eng->nkey_buckets - 1);
  k->hnext = eng->keys[slot];
  eng->keys[slot] = k;
  eng->nkeys++;
  if (eng->keys_newest) {
    eng->keys_newest->next = k;
  } else {
    eng->keys_oldest = k;
  }
  eng->keys_newest = k;
  return 0;
}

void oee__keys_drop(oee_engine *eng, const char *key, const char *id) {
  oee__key *prev = NULL;
  for (oee__key *k = eng->keys_oldest; k; prev = k, k = k->next) {
    if (strcmp(k->id, id) != 0 || strcmp(k->key, key) != 0) continue;
    if (prev) {
      prev->next = k->next;
    } else {
      eng->keys_oldest = k->next;
    }
    if (eng->keys_newest == k) eng->keys_newest = prev;
    chain_unlink(eng, k);
    oee_free(k);
    return;
  }
}

void oee__keys_free(oee_engine *eng) {
  while (eng->keys_oldest) {
    oee__key *k = eng->keys_oldest;
    eng->keys_oldest = k->next;
    oee_free(k);
  }
  oee_free(eng->keys);
  eng->keys = NULL;
  eng->keys_newest = NULL;
  eng->nkeys = eng->nkey_buckets = 0;
}
