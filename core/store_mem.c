/*
 * store_mem.c - the in-memory task store.
 *
 * Indexes, all maintained in O(1) amortised per change:
 *  - ids: a chained hash table of task records keyed by id text;
 *  - order: an array of (index, task) in submission order. Removed tasks
 *    leave holes (task == NULL) until holes outnumber live entries, then the
 *    array is compacted. Indices stay sorted, so a page token (an index) is
 *    found by binary search and a page costs O(log n + page);
 *  - done: a list of finished tasks in completion order (oldest first);
 *  - counts by status, and by (task_type, status) for filtered totals;
 *  - bitmaps over the order slots, one per status and one per task type,
 *    each with a summary bit per non-empty word: a filtered page skips 4,096
 *    non-matching slots per summary word, so a filter that matches a handful
 *    of tasks among millions costs as little as one that matches many
 *    (about 1 bit per slot per index: under a byte per task in all).
 * Locking: none; the engine lock is held around every call (see store.h).
 */
#include <stdlib.h>
#include <string.h>

#include "core/oee_alloc.h"
#include "core/store.h"

/* A bit per order slot, and a summary bit per word that has any bit set. */
typedef struct bitmap {
  uint64_t *words;   /* order_cap / 64 */
  uint64_t *summary; /* one bit per word: (order_cap / 64 + 63) / 64 words */
} bitmap;

typedef struct slot {
  uint64_t index;
  oee_task *task; /* NULL once removed */
} slot;

typedef struct type_count {
  struct type_count *next;
  uint64_t by_status[OEE_TASK_STATUS_COUNT];
  bitmap bits; /* order slots holding a task of this type */
  char name[]; /* the task_type */
} type_count;

typedef struct mem_store {
  oee_store base;
  oee_task **buckets; /* power-of-two count */
  size_t nbuckets;
  size_t ntasks;
  slot *order;
  size_t order_len, order_cap, holes;
  bitmap bits[OEE_TASK_STATUS_COUNT]; /* order slots per status; order_cap bits */
  oee_task *done_head, *done_tail;    /* oldest, newest finished */
  size_t ndone;
  uint64_t by_status[OEE_TASK_STATUS_COUNT];
  type_count *types; /* few distinct types: a list is enough */
} mem_store;

/* The value of one hex digit of a canonical id ('0'-'9', 'a'-'f', 'A'-'F'). */
static unsigned hex_digit(char c) { return ((unsigned)c & 15) + 9 * ((unsigned)c >> 6); }

/* An id's hash, made so that the ids one thread makes one after another
 * land in neighbouring buckets: a UUID v7 (id.h) is a millisecond timestamp
 * and a counter that counts up within it (characters 0-22), then 48 random
 * bits (24-35). The low 14 bits of the counter (characters 19-22, under the
 * 2 variant bits) are added to a mixed hash of characters 0-18 (the
 * timestamp and the counter's high bits, case-folded: | 0x20 turns A-F into
 * a-f and leaves digits and '-'). Consecutive ids thus fill runs of buckets
 * that start at random places, which spreads them as evenly as a random
 * hash does (each bucket is covered by as many runs as a random hash would
 * put ids in it) while an insert touches the cache line its predecessor
 * touched, not a random one in a table of megabytes: at a million tasks
 * that miss was most of an insert's time. Old v4 ids are random in all
 * these characters. The random tail is not hashed: two ids can only share
 * everything else if two threads drew the same counter in the same
 * millisecond, and then their chain holds both. Every caller passes a
 * canonical id (36 characters, checked by oee_id_valid() for lookups), so
 * the reads stay inside it. */
static uint64_t id_hash(const char *id) {
  const uint64_t fold = 0x2020202020202020ULL, k = 0x9E3779B97F4A7C15ULL;
  uint64_t w0, w1, w2 = 0;
  memcpy(&w0, id, 8);
  memcpy(&w1, id + 8, 8);
  memcpy(&w2, id + 16, 3);
  uint64_t h = (((w0 | fold) * k) ^ (w1 | fold)) * k;
  h = (h ^ (w2 | fold)) * k;
  h ^= h >> 32;
  unsigned low =
      hex_digit(id[19]) << 12 | hex_digit(id[20]) << 8 | hex_digit(id[21]) << 4 | hex_digit(id[22]);
  return h + (low & 0x3fff);
}

static void bit_set(bitmap *b, size_t pos) {
  size_t w = pos >> 6;
  b->words[w] |= 1ULL << (pos & 63);
  b->summary[w >> 6] |= 1ULL << (w & 63);
}

static void bit_clear(bitmap *b, size_t pos) {
  size_t w = pos >> 6;
  b->words[w] &= ~(1ULL << (pos & 63));
  if (b->words[w] == 0) b->summary[w >> 6] &= ~(1ULL << (w & 63));
}

static size_t summary_words(size_t cap) { return (cap / 64 + 63) / 64; }

/* Grows one array of words from `old` to `n` words, zeroing the new ones. */
static int words_grow(uint64_t **a, size_t old, size_t n) {
  uint64_t *p = oee_realloc(*a, n * sizeof(*p));
  if (p == NULL) return OEE_ENOMEM;
  memset(p + old, 0, (n - old) * sizeof(*p));
  *a = p;
  return 0;
}

/* Grows a bitmap from `old` to `cap` slots (multiples of 64). */
static int bits_grow(bitmap *b, size_t old, size_t cap) {
  if (words_grow(&b->words, old / 64, cap / 64) != 0) return OEE_ENOMEM;
  return words_grow(&b->summary, summary_words(old), summary_words(cap));
}

static void bits_free(bitmap *b) {
  oee_free(b->words);
  oee_free(b->summary);
}

/* The first word at or after `w` (and before `n`) with a bit set, or n. */
static size_t next_word(const bitmap *b, size_t w, size_t n) {
  if (w >= n) return n;
  size_t sw = w >> 6;
  uint64_t x = b->summary[sw] & (~0ULL << (w & 63));
  size_t nsw = (n + 63) / 64;
  while (x == 0) {
    if (++sw >= nsw) return n;
    x = b->summary[sw];
  }
  size_t found = (sw << 6) + (size_t)__builtin_ctzll(x);
  return found < n ? found : n;
}

static int grow_buckets(mem_store *m) {
  size_t n = m->nbuckets ? m->nbuckets * 2 : 1024;
  oee_task **b = oee_calloc(n, sizeof(*b));
  if (b == NULL) return OEE_ENOMEM;
  for (size_t i = 0; i < m->nbuckets; i++) {
    oee_task *t = m->buckets[i];
    while (t) {
      oee_task *next = t->hnext;
      size_t k = t->id_hash & (n - 1);
      t->hnext = b[k];
      b[k] = t;
      t = next;
    }
  }
  oee_free(m->buckets);
  m->buckets = b;
  m->nbuckets = n;
  return 0;
}

static type_count *type_find(mem_store *m, const char *name, int create) {
  for (type_count *c = m->types; c; c = c->next) {
    if (strcmp(c->name, name) == 0) return c;
  }
  if (!create) return NULL;
  size_t len = strlen(name) + 1;
  type_count *c = oee_calloc(1, sizeof(*c) + len);
  if (c == NULL) return NULL;
  if (m->order_cap && bits_grow(&c->bits, 0, m->order_cap) != 0) {
    bits_free(&c->bits);
    oee_free(c);
    return NULL;
  }
  memcpy(c->name, name, len);
  c->next = m->types;
  m->types = c;
  return c;
}

/* Room for `more` slots after the last: doubles the order array and every
 * bitmap with it as often as needed. A failure part way leaves some bitmaps
 * larger than needed, which is harmless. */
static int reserve_order(mem_store *m, size_t more) {
  if (m->order_len + more <= m->order_cap) return 0;
  size_t cap = m->order_cap ? m->order_cap * 2 : 1024;
  while (cap < m->order_len + more) cap *= 2;
  for (int st = 0; st < OEE_TASK_STATUS_COUNT; st++) {
    if (bits_grow(&m->bits[st], m->order_cap, cap) != 0) return OEE_ENOMEM;
  }
  for (type_count *c = m->types; c; c = c->next) {
    if (bits_grow(&c->bits, m->order_cap, cap) != 0) return OEE_ENOMEM;
  }
  slot *o = oee_realloc(m->order, cap * sizeof(*o));
  if (o == NULL) return OEE_ENOMEM;
  m->order = o;
  m->order_cap = cap;
  return 0;
}

static int mem_insert(oee_store *s, oee_task *t) {
  mem_store *m = (mem_store *)s;
  if (m->ntasks >= m->nbuckets && grow_buckets(m) != 0) return OEE_ENOMEM;
  if (reserve_order(m, 1) != 0) return OEE_ENOMEM;
  type_count *tc = type_find(m, t->snap->task_type, 1);
  if (tc == NULL) return OEE_ENOMEM;
  t->id_hash = (uint32_t)id_hash(t->snap->id);
  size_t k = t->id_hash & (m->nbuckets - 1);
  t->hnext = m->buckets[k];
  m->buckets[k] = t;
  t->order_pos = (uint32_t)m->order_len;
  bit_set(&m->bits[t->snap->status], m->order_len);
  bit_set(&tc->bits, m->order_len);
  m->order[m->order_len++] = (slot){t->index, t};
  m->ntasks++;
  m->by_status[t->snap->status]++;
  tc->by_status[t->snap->status]++;
  return 0;
}

static int mem_reserve(oee_store *s, size_t more, const char *type) {
  mem_store *m = (mem_store *)s;
  while (m->ntasks + more > m->nbuckets) {
    if (grow_buckets(m) != 0) return OEE_ENOMEM;
  }
  if (reserve_order(m, more) != 0) return OEE_ENOMEM;
  return type_find(m, type, 1) != NULL ? 0 : OEE_ENOMEM;
}

static void done_append(mem_store *m, oee_task *t) {
  t->done_next = NULL;
  if (m->done_tail) {
    m->done_tail->done_next = t;
  } else {
    m->done_head = t;
  }
  m->done_tail = t;
  m->ndone++;
}

/* Takes a task off the completion list: O(1) for the oldest, O(finished
 * tasks) for another (a task finished again by RetryTask, a rare call). */
static void done_unlink(mem_store *m, oee_task *t) {
  oee_task **pp = &m->done_head, *prev = NULL;
  while (*pp != NULL && *pp != t) {
    prev = *pp;
    pp = &(*pp)->done_next;
  }
  if (*pp != t) return;
  *pp = t->done_next;
  if (m->done_tail == t) m->done_tail = prev;
  m->ndone--;
  t->done_next = NULL;
}

static void mem_changed(oee_store *s, oee_task *t, oee_task_status from) {
  mem_store *m = (mem_store *)s;
  oee_task_status to = t->snap->status;
  m->by_status[from]--;
  m->by_status[to]++;
  bit_clear(&m->bits[from], t->order_pos);
  bit_set(&m->bits[to], t->order_pos);
  type_count *tc = type_find(m, t->snap->task_type, 0);
  if (tc) {
    tc->by_status[from]--;
    tc->by_status[to]++;
  }
  if (oee_task_status_is_terminal(to) && !oee_task_status_is_terminal(from)) done_append(m, t);
  if (oee_task_status_is_terminal(from) && !oee_task_status_is_terminal(to)) done_unlink(m, t);
}

static oee_task *mem_lookup(oee_store *s, const char *id) {
  mem_store *m = (mem_store *)s;
  if (m->nbuckets == 0 || !oee_id_valid(id)) return NULL;
  uint32_t h = (uint32_t)id_hash(id);
  oee_task *t = m->buckets[h & (m->nbuckets - 1)];
  for (; t; t = t->hnext) {
    if (t->id_hash == h && strncasecmp(t->snap->id, id, OEE_ID_LEN) == 0) return t;
  }
  return NULL;
}

/* The first slot whose index is greater than `after`. */
static size_t order_seek(const mem_store *m, uint64_t after) {
  size_t lo = 0, hi = m->order_len;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (m->order[mid].index <= after) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

static uint64_t list_total(mem_store *m, const oee_list_query *q) {
  const uint64_t *counts = m->by_status;
  if (q->task_type && q->task_type[0]) {
    type_count *tc = type_find(m, q->task_type, 0);
    if (tc == NULL) return 0;
    counts = tc->by_status;
  }
  if (q->status != OEE_TASK_UNSPECIFIED) return counts[q->status];
  uint64_t sum = 0;
  for (int i = 0; i < OEE_TASK_STATUS_COUNT; i++) sum += counts[i];
  return sum;
}

/* The first slot at or after `i` holding a task that passes the filter's
 * bitmaps (NULL: no such filter), or order_len. The status bitmap (else the
 * type bitmap) leads: its summary skips words with nothing in them. */
static size_t next_match(const mem_store *m, const bitmap *sb, const bitmap *tb, size_t i) {
  if (sb == NULL && tb == NULL) {
    while (i < m->order_len && m->order[i].task == NULL) i++;
    return i;
  }
  const bitmap *lead = sb ? sb : tb, *other = sb ? tb : NULL;
  size_t words = (m->order_len + 63) / 64;
  for (size_t w = next_word(lead, i / 64, words); w < words; w = next_word(lead, w + 1, words)) {
    uint64_t x = lead->words[w] & (other ? other->words[w] : ~0ULL);
    if (w == i / 64) x &= ~0ULL << (i & 63);
    if (x) {
      size_t pos = w * 64 + (size_t)__builtin_ctzll(x);
      return pos < m->order_len ? pos : m->order_len;
    }
  }
  return m->order_len;
}

static int mem_list(oee_store *s, const oee_list_query *q, oee_list_page *out) {
  mem_store *m = (mem_store *)s;
  memset(out, 0, sizeof(*out));
  out->total = list_total(m, q);
  if (q->limit == 0 || out->total == 0) return 0;
  size_t cap = q->limit < out->total ? q->limit : out->total;
  out->tasks = oee_malloc(cap * sizeof(*out->tasks));
  if (out->tasks == NULL) return OEE_ENOMEM;
  const bitmap *sb = q->status != OEE_TASK_UNSPECIFIED ? &m->bits[q->status] : NULL;
  const bitmap *tb = NULL;
  if (q->task_type && q->task_type[0]) tb = &type_find(m, q->task_type, 0)->bits;
  size_t i = next_match(m, sb, tb, order_seek(m, q->after_index));
  for (; i < m->order_len; i = next_match(m, sb, tb, i + 1)) {
    if (out->len == cap) {
      /* One more match exists: the page before it gets a token. */
      out->next_index = out->tasks[out->len - 1]->submit_index;
      break;
    }
    out->tasks[out->len++] = oee_task_info_ref(m->order[i].task->snap);
    /* A first page that holds every match needs no look further. */
    if (q->after_index == 0 && out->len == out->total) break;
  }
  return 0;
}

static void unlink_task(mem_store *m, oee_task *t) {
  oee_task **pp = &m->buckets[t->id_hash & (m->nbuckets - 1)];
  while (*pp != t) pp = &(*pp)->hnext;
  *pp = t->hnext;
  m->order[t->order_pos].task = NULL;
  m->holes++;
  m->ntasks--;
  m->by_status[t->snap->status]--;
  bit_clear(&m->bits[t->snap->status], t->order_pos);
  type_count *tc = type_find(m, t->snap->task_type, 0);
  if (tc) {
    tc->by_status[t->snap->status]--;
    bit_clear(&tc->bits, t->order_pos);
  }
}

/* Rewrites every bitmap from the (compacted) order array. */
static void rebuild_bits(mem_store *m) {
  size_t words = m->order_cap / 64, sums = summary_words(m->order_cap);
  for (int st = 0; st < OEE_TASK_STATUS_COUNT; st++) {
    memset(m->bits[st].words, 0, words * sizeof(uint64_t));
    memset(m->bits[st].summary, 0, sums * sizeof(uint64_t));
  }
  for (type_count *c = m->types; c; c = c->next) {
    memset(c->bits.words, 0, words * sizeof(uint64_t));
    memset(c->bits.summary, 0, sums * sizeof(uint64_t));
  }
  type_count *tc = NULL;
  for (size_t i = 0; i < m->order_len; i++) {
    const oee_task_info *snap = m->order[i].task->snap;
    bit_set(&m->bits[snap->status], i);
    if (tc == NULL || strcmp(tc->name, snap->task_type) != 0) {
      tc = type_find(m, snap->task_type, 0);
    }
    bit_set(&tc->bits, i);
  }
}

static void compact_order(mem_store *m) {
  size_t w = 0;
  for (size_t r = 0; r < m->order_len; r++) {
    if (m->order[r].task == NULL) continue;
    m->order[w] = m->order[r];
    m->order[w].task->order_pos = (uint32_t)w;
    w++;
  }
  m->order_len = w;
  m->holes = 0;
  rebuild_bits(m);
}

static long mem_clear(oee_store *s, long keep, oee_store_drop_fn drop, void *arg) {
  mem_store *m = (mem_store *)s;
  long removed = 0;
  while (m->ndone > (size_t)keep) {
    oee_task *t = m->done_head;
    m->done_head = t->done_next;
    if (m->done_head == NULL) m->done_tail = NULL;
    m->ndone--;
    unlink_task(m, t);
    drop(t, arg);
    removed++;
  }
  if (m->holes > 1024 && m->holes * 2 > m->order_len) compact_order(m);
  return removed;
}

static long mem_expire(oee_store *s, int64_t before_ns, size_t keep, size_t limit,
                       oee_store_drop_fn drop, void *arg) {
  mem_store *m = (mem_store *)s;
  long removed = 0;
  while ((size_t)removed < limit && m->done_head != NULL) {
    oee_task *t = m->done_head;
    int old = before_ns != 0 && t->snap->completed_at_ns < before_ns;
    if (!old && m->ndone <= keep) break;
    m->done_head = t->done_next;
    if (m->done_head == NULL) m->done_tail = NULL;
    m->ndone--;
    unlink_task(m, t);
    drop(t, arg);
    removed++;
  }
  if (m->holes > 1024 && m->holes * 2 > m->order_len) compact_order(m);
  return removed;
}

static void mem_remove(oee_store *s, oee_task *t) {
  mem_store *m = (mem_store *)s;
  if (oee_task_status_is_terminal(t->snap->status)) done_unlink(m, t);
  unlink_task(m, t);
  if (m->holes > 1024 && m->holes * 2 > m->order_len) compact_order(m);
}

static oee_task *mem_oldest_finished(oee_store *s, size_t *n_finished) {
  mem_store *m = (mem_store *)s;
  *n_finished = m->ndone;
  return m->done_head;
}

static void mem_counts(oee_store *s, uint64_t by_status[OEE_TASK_STATUS_COUNT], uint64_t *total) {
  mem_store *m = (mem_store *)s;
  memcpy(by_status, m->by_status, sizeof(m->by_status));
  *total = m->ntasks;
}

static void mem_foreach(oee_store *s, oee_store_visit_fn visit, void *arg) {
  mem_store *m = (mem_store *)s;
  for (size_t i = 0; i < m->order_len; i++) {
    if (m->order[i].task) visit(m->order[i].task, arg);
  }
}

static void mem_destroy(oee_store *s, oee_store_drop_fn drop, void *arg) {
  mem_store *m = (mem_store *)s;
  for (size_t i = 0; i < m->order_len; i++) {
    if (m->order[i].task) drop(m->order[i].task, arg);
  }
  while (m->types) {
    type_count *next = m->types->next;
    bits_free(&m->types->bits);
    oee_free(m->types);
    m->types = next;
  }
  for (int st = 0; st < OEE_TASK_STATUS_COUNT; st++) bits_free(&m->bits[st]);
  oee_free(m->order);
  oee_free(m->buckets);
  oee_free(m);
}

void oee_list_page_free(oee_list_page *page) {
  if (page == NULL) return;
  for (size_t i = 0; i < page->len; i++) oee_task_info_unref(page->tasks[i]);
  oee_free(page->tasks);
  memset(page, 0, sizeof(*page));
}

static const oee_store_ops mem_ops = {
    .insert = mem_insert,
    .changed = mem_changed,
    .lookup = mem_lookup,
    .list = mem_list,
    .clear_completed = mem_clear,
    .expire = mem_expire,
    .reserve = mem_reserve,
    .remove = mem_remove,
    .oldest_finished = mem_oldest_finished,
    .counts = mem_counts,
    .foreach = mem_foreach,
    .destroy = mem_destroy,
};

oee_store *oee__store_mem_create(void) {
  mem_store *m = oee_calloc(1, sizeof(*m));
  if (m == NULL) return NULL;
  m->base.ops = &mem_ops;
  return &m->base;
}
