/*
 * schedule.c - cron schedules: each firing submits one task from the
 * schedule's template (see oee.h for the contract and engine.h for the
 * engine's design).
 *
 * DESIGN
 * The engine keeps its schedules in an array sorted by id (lookups are a
 * binary search, ListSchedules pages walk it in order; there are at most
 * max_schedules) and the ones that will fire in a heap keyed by their next
 * firing time, which the timer thread (timer.c) watches beside the delayed
 * tasks: it sleeps until the earliest is due, so waiting schedules cost
 * nothing but their heap slot. Times are whole seconds (oee_cron_next).
 * A firing, under the engine lock: the latest firing time not after now is
 * chosen (the ones before it, missed when the thread ran late, count as
 * skipped) and the next one computed; with SKIP, a previous firing's task
 * that is unfinished skips this one (and the schedule goes back into the
 * heap at once). Otherwise the timer thread lets go of the lock and submits
 * the template like any caller, with schedule_id and the key
 * "<schedule_id>@<time>"; the acknowledgement records the task and puts
 * the schedule back into the heap. The key makes a firing idempotent: a
 * firing submitted again is answered as a duplicate and creates nothing.
 * Storage: every change of a schedule (create, pause, a firing, delete) is
 * written whole in this file's byte form through the committer, so it
 * shares the tasks' group commits; create, pause and delete return once
 * theirs is stored. A firing's task and its schedule's row are two items
 * of the committer, and a group commit may split them (the committer takes
 * whatever is queued when it starts a write), so no order of appends makes
 * them one transaction: a process killed between the two leaves a task
 * that the row does not count. Instead a stored row keeps one rule: its
 * counts cover exactly the firing times before its next firing (next_s),
 * and only that next firing may have a task it does not count. Three
 * things keep the rule:
 *  - a schedule has at most one firing on its way: one that comes due
 *    meanwhile waits out of the heap until the first is told (one commit);
 *  - every row written while a firing is on its way names that firing as
 *    next (first_open);
 *  - a row that counts firings missed when the timer ran late is appended
 *    before the task of the firing that follows them, and the committer
 *    writes its queue in order (a failed write keeps the row, which must
 *    be stored, and refuses the task), so the row is stored no later than
 *    the task.
 * At create a durable engine loads the rows back and looks each one's next
 * firing's key up in the database (load_settle): a task found is that
 * firing's run, counted once. Then the latest firing missed while it was
 * down fires once and the others count as skipped.
 * A schedule is counted: the engine's array holds one count, a firing on
 * its way another, so a delete during a firing frees it only once the
 * firing is told.
 * Fields of a schedule are guarded by the engine lock; its template,
 * expression and zone never change after create.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/committer.h"
#include "core/cron.h"
#include "core/db.h"
#include "core/db_codec.h"
#include "core/engine.h"
#include "core/oee_alloc.h"
#include "core/sync.h"
#include "core/tz.h"

#define BODY_VERSION 1

struct oee__sched {
  char id[OEE_SCHEDULE_ID_MAX + 1];
  char *cron_text, *zone_text;
  oee_cron cron;
  oee_tz *tz;
  oee_submit tmpl; /* strings in tmpl_block */
  void *tmpl_block;
  oee_overlap overlap; /* SKIP or ALLOW */
  int paused;
  int64_t created_s;
  int64_t next_s; /* OEE_CRON_NONE while paused or when it never fires again */
  int64_t last_s; /* 0 before the first firing */
  char last_task[OEE_ID_LEN + 1];
  int64_t runs, skipped;
  int firing;        /* a firing's submission is on its way (at most one) */
  int64_t firing_at; /* its time, while `firing` */
  int deleted;       /* out of the engine's array */
  unsigned refs;
  size_t heap_pos;
};

/* ------------------------------------------------------- the template */

/* Copies s to *cur and advances it; returns the copy. */
static const char *put(char **cur, const char *s) {
  size_t n = strlen(s) + 1;
  char *dst = memcpy(*cur, s, n);
  *cur += n;
  return dst;
}

/* A deep copy of `src` in one block (*block; oee_free it) that dst points
 * into. 0 or OEE_ENOMEM. */
static int submit_copy(const oee_submit *src, oee_submit *dst, void **block) {
  size_t bytes = src->context_len * sizeof(oee_kv) + src->depends_on_len * sizeof(char *);
  size_t strs = strlen(src->name) + strlen(src->task_type) + 2;
  for (size_t i = 0; i < src->context_len; i++) {
    strs += strlen(src->context[i].key) + strlen(src->context[i].value) + 2;
  }
  for (size_t i = 0; i < src->depends_on_len; i++) strs += strlen(src->depends_on[i]) + 1;
  char *b = oee_malloc(bytes + strs);
  if (b == NULL) return OEE_ENOMEM;
  *dst = *src;
  oee_kv *kv = (oee_kv *)b;
  const char **deps = (const char **)(kv + src->context_len);
  char *cur = (char *)(deps + src->depends_on_len);
  dst->name = put(&cur, src->name);
  dst->task_type = put(&cur, src->task_type);
  for (size_t i = 0; i < src->context_len; i++) {
    kv[i].key = put(&cur, src->context[i].key);
    kv[i].value = put(&cur, src->context[i].value);
  }
  for (size_t i = 0; i < src->depends_on_len; i++) deps[i] = put(&cur, src->depends_on[i]);
  dst->context = src->context_len ? kv : NULL;
  dst->depends_on = src->depends_on_len ? deps : NULL;
  dst->idempotency_key = NULL;
  dst->schedule_id = NULL;
  dst->has_run_at = 0;
  dst->run_at_ns = 0;
  *block = b;
  return 0;
}

/* ------------------------------------------------------ records, views */

static void sched_free(oee__sched *s) {
  oee_free(s->cron_text);
  oee_free(s->zone_text);
  oee_tz_free(s->tz);
  oee_free(s->tmpl_block);
  oee_free(s);
}

static void sched_unref(oee__sched *s) {
  if (--s->refs == 0) sched_free(s);
}

static char *dup_str(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = oee_malloc(n);
  return d ? memcpy(d, s, n) : NULL;
}

/* A public copy (oee_schedule_free). */
typedef struct sched_view {
  oee_schedule pub; /* first: oee_schedule_free casts back */
  void *tmpl_block;
  char *cron, *zone;
} sched_view;

static oee_schedule *view_of(const oee__sched *s) {
  sched_view *v = oee_calloc(1, sizeof(*v));
  if (v == NULL) return NULL;
  v->cron = dup_str(s->cron_text);
  v->zone = dup_str(s->zone_text);
  if (v->cron == NULL || v->zone == NULL || submit_copy(&s->tmpl, &v->pub.task, &v->tmpl_block)) {
    oee_schedule_free(&v->pub);
    return NULL;
  }
  oee_schedule *p = &v->pub;
  memcpy(p->schedule_id, s->id, sizeof(p->schedule_id));
  p->cron = v->cron;
  p->time_zone = v->zone;
  p->overlap = s->overlap;
  p->paused = s->paused;
  p->next_run_ns = s->paused || s->next_s == OEE_CRON_NONE ? 0 : s->next_s * 1000000000LL;
  p->last_run_ns = s->last_s * 1000000000LL;
  memcpy(p->last_task_id, s->last_task, sizeof(p->last_task_id));
  p->runs = s->runs;
  p->skipped = s->skipped;
  p->created_at_ns = s->created_s * 1000000000LL;
  return p;
}

void oee_schedule_free(oee_schedule *p) {
  if (p == NULL) return;
  sched_view *v = (sched_view *)p;
  oee_free(v->tmpl_block);
  oee_free(v->cron);
  oee_free(v->zone);
  oee_free(v);
}

/* ------------------------------------------------------------ storing */

static void put_i64(oee__wbuf *b, int64_t v) { oee__put_u64(b, (uint64_t)v); }
static int64_t get_i64(oee__rbuf *b) { return (int64_t)oee__get_u64(b); }

/* A template in the stored form (after the schedule's own fields). */
static void put_template(oee__wbuf *b, const oee_submit *t) {
  oee__put_str(b, t->name);
  oee__put_str(b, t->task_type);
  put_i64(b, t->priority);
  put_i64(b, (int64_t)t->context_len);
  for (size_t i = 0; i < t->context_len; i++) {
    oee__put_str(b, t->context[i].key);
    oee__put_str(b, t->context[i].value);
  }
  put_i64(b, t->max_attempts);
  put_i64(b, t->has_backoff);
  oee__put_f64(b, t->backoff_seconds);
  put_i64(b, t->has_max_backoff);
  oee__put_f64(b, t->max_backoff_seconds);
  oee__put_f64(b, t->timeout_seconds);
  put_i64(b, (int64_t)t->depends_on_len);
  for (size_t i = 0; i < t->depends_on_len; i++) oee__put_str(b, t->depends_on[i]);
}

/* The first firing time a row of s does not count: the firing on its way
 * (its task may be stored before its outcome is: see DESIGN), else the
 * next one. */
static int64_t first_open(const oee__sched *s) { return s->firing ? s->firing_at : s->next_s; }

/* The stored form of s (a new buffer in *out, oee_free it). 0 or OEE_ENOMEM. */
static int encode(const oee__sched *s, void **out, size_t *len) {
  oee__wbuf b = {0};
  put_i64(&b, BODY_VERSION);
  oee__put_str(&b, s->cron_text);
  oee__put_str(&b, s->zone_text);
  put_i64(&b, s->created_s);
  put_i64(&b, s->overlap);
  put_i64(&b, s->paused);
  put_i64(&b, first_open(s));
  put_i64(&b, s->last_s);
  oee__put_str(&b, s->last_task);
  put_i64(&b, s->runs);
  put_i64(&b, s->skipped);
  put_template(&b, &s->tmpl);
  if (b.failed) {
    oee_free(b.p);
    return OEE_ENOMEM;
  }
  *out = b.p;
  *len = b.len;
  return 0;
}

/* What a change owes its caller once stored: cb(arg, rc, view). */
typedef struct tell {
  oee_schedule_cb cb; /* NULL: nobody waits */
  void *arg;
  oee_schedule *view; /* the schedule after the change (NULL for a delete) */
} tell;

/* One write of a schedule's row on its way through the committer. */
typedef struct sched_write {
  oee_commit_item item; /* first: the callback casts back */
  oee__later later;     /* the caller is told from here */
  oee_db_sched row;
  tell told;
  int rc;
  oee_error err;
  char id[OEE_SCHEDULE_ID_MAX + 1];
  void *body;
} sched_write;

/* The caller is told (commit thread, no lock held). */
static void write_told(oee__later *l) {
  sched_write *w = (sched_write *)((char *)l - offsetof(sched_write, later));
  if (w->told.cb) {
    w->told.cb(w->told.arg, w->rc, w->rc == 0 ? w->told.view : NULL, w->rc == 0 ? NULL : &w->err);
    if (w->rc != 0) oee_schedule_free(w->told.view);
  } else {
    oee_schedule_free(w->told.view);
  }
  oee_free(w->body);
  oee_free(w);
}

/* The write is stored (commit thread, inside the group's hold of the
 * engine lock): the caller is told once the lock is let go. */
static void write_done(oee_commit_item *item, int rc, const oee_error *err) {
  sched_write *w = (sched_write *)item;
  w->rc = rc;
  if (err != NULL) w->err = *err;
  w->later.run = write_told;
  oee__durable_later(item->arg, &w->later);
}

/* Queues s's row (or its deletion) for the next group commit (lock held);
 * `t` (may be NULL) is told once it is stored and owns its view from here
 * on when this returns 0. Nothing is written for the memory store: the
 * caller tells at once, after the lock (tell_now). 0, or OEE_ENOMEM
 * (nothing queued). */
static int store(oee_engine *eng, const oee__sched *s, int delete, const tell *t) {
  if (eng->committer == NULL) return 0;
  sched_write *w = oee_calloc(1, sizeof(*w));
  if (w == NULL) return OEE_ENOMEM;
  memcpy(w->id, s->id, sizeof(w->id));
  w->row.id = w->id;
  if (!delete &&encode(s, &w->body, &w->row.len) != 0) {
    oee_free(w);
    return OEE_ENOMEM;
  }
  w->row.body = w->body;
  if (t) w->told = *t;
  w->item = (oee_commit_item){
      .sched = &w->row, .from = -1, .must_store = 1, .done = write_done, .arg = eng};
  oee_committer_append(eng->committer, &w->item);
  return 0;
}

/* After the lock: the memory store's change is told at once (a durable
 * one's once stored, by write_done). */
static void tell_now(oee_engine *eng, const tell *t) {
  if (eng->committer != NULL) return;
  if (t->cb) {
    t->cb(t->arg, 0, t->view, NULL);
  } else {
    oee_schedule_free(t->view);
  }
}

/* ------------------------------------------------------------- lookups */

/* Where `id` is, or would be, in the sorted array (lock held). */
static size_t find_pos(const oee_engine *eng, const char *id, int *found) {
  size_t lo = 0, hi = eng->n_scheds;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(eng->scheds[mid]->id, id);
    if (c == 0) {
      *found = 1;
      return mid;
    }
    if (c < 0) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  *found = 0;
  return lo;
}

static oee__sched *find(const oee_engine *eng, const char *id) {
  int found;
  size_t pos = find_pos(eng, id, &found);
  return found ? eng->scheds[pos] : NULL;
}

/* ------------------------------------------------------------- timing */

static int sched_less(const void *a, const void *b) {
  const oee__sched *x = a, *y = b;
  if (x->next_s != y->next_s) return x->next_s < y->next_s;
  return strcmp(x->id, y->id) < 0;
}

static void sched_setpos(void *e, size_t pos) { ((oee__sched *)e)->heap_pos = pos; }

/* Puts s in the heap when it fires again (lock held; room reserved). */
static void arm(oee_engine *eng, oee__sched *s) {
  if (s->paused || s->next_s == OEE_CRON_NONE) return;
  oee_heap_push(&eng->sched_heap, s);
  if (oee_heap_peek(&eng->sched_heap) == s) oee__signal(&eng->timer_cv);
}

static void disarm(oee_engine *eng, oee__sched *s) {
  if (s->heap_pos != OEE_HEAP_NONE) oee_heap_remove(&eng->sched_heap, s->heap_pos);
}

/* Cron expressions whose firings are counted one by one are bounded here
 * when catching up (about two years of minutes). */
#define CATCH_UP_STEPS 1000000

/* The latest firing time from `first` (a firing time) on that is not after
 * `now`, or OEE_CRON_NONE when `first` is after now; *missed counts the
 * ones before it. */
static int64_t latest_due(const oee__sched *s, int64_t first, int64_t now, int64_t *missed) {
  *missed = 0;
  if (first == OEE_CRON_NONE || first > now) return OEE_CRON_NONE;
  int64_t every = s->cron.every_seconds;
  if (every > 0) { /* created + k * every, k >= 1 */
    int64_t k_first = (first - s->created_s) / every, k_now = (now - s->created_s) / every;
    *missed = k_now - k_first;
    return s->created_s + k_now * every;
  }
  int64_t t = first;
  for (int steps = 0; steps < CATCH_UP_STEPS; steps++) {
    int64_t n = oee_cron_next(&s->cron, s->tz, t, s->created_s);
    if (n == OEE_CRON_NONE || n > now) break;
    t = n;
    ++*missed;
  }
  return t;
}

static int64_t next_after(const oee__sched *s, int64_t t) {
  return oee_cron_next(&s->cron, s->tz, t, s->created_s);
}

/* --------------------------------------------------------------- firing */

typedef oee__firing firing;

/* 1 when the task of s's previous firing has not ended (lock held; no
 * firing of s is on its way: one that came due meanwhile waited for it). */
static int previous_unfinished(oee_engine *eng, const oee__sched *s) {
  if (!s->last_task[0]) return 0;
  oee_task *t = eng->store->ops->lookup(eng->store, s->last_task);
  return t != NULL && !oee_task_status_is_terminal(t->snap->status);
}

size_t oee__sched_take(oee_engine *eng, int64_t now_ns, firing *out, size_t cap, int64_t *next_ns) {
  size_t n = 0;
  int64_t now = now_ns / 1000000000LL;
  oee__sched *s;
  *next_ns = 0;
  while ((s = oee_heap_peek(&eng->sched_heap)) != NULL && n < cap) {
    if (s->next_s > now) break;
    oee_heap_pop(&eng->sched_heap);
    if (s->firing) continue; /* one firing at a time: fire_done puts it back */
    int64_t missed;
    int64_t at = latest_due(s, s->next_s, now, &missed);
    s->skipped += missed;
    s->next_s = next_after(s, at);
    if (s->overlap == OEE_OVERLAP_SKIP && previous_unfinished(eng, s)) {
      s->skipped++;
      arm(eng, s);            /* its slot was just freed */
      store(eng, s, 0, NULL); /* a count lost to no memory is found again at the next change */
      continue;
    }
    s->firing = 1;
    s->firing_at = at;
    /* The missed ones are stored ahead of this firing's task (see DESIGN),
     * in a row that names this firing as next. */
    if (missed > 0) store(eng, s, 0, NULL);
    s->refs++;
    out[n++] = (firing){eng, s, at};
  }
  if (s != NULL && n < cap) *next_ns = s->next_s * 1000000000LL;
  return n;
}

/* A firing is over: its task (or the duplicate that answers for it) is
 * the schedule's latest, or it counts as skipped; the schedule is back in
 * the heap for its next firing (taken out while this one was on its way).
 * No lock held. */
static void fire_done(oee_engine *eng, oee__sched *s, int64_t at, const oee_task_info *t) {
  oee__lock(&eng->lock);
  s->firing = 0;
  if (t != NULL) {
    memcpy(s->last_task, t->id, sizeof(s->last_task));
    s->last_s = at;
    s->runs++;
  } else {
    s->skipped++; /* refused (a full queue, the engine stopping): not run */
  }
  if (!s->deleted) {
    if (s->heap_pos == OEE_HEAP_NONE) arm(eng, s); /* a resume may have armed it */
    store(eng, s, 0, NULL);
  }
  sched_unref(s);
  oee__unlock(&eng->lock);
}

/* The firing's acknowledgement (any thread, no lock held). */
static void fired(void *arg, int rc, const oee_task_info *t, const oee_error *err) {
  (void)err;
  firing *f = arg;
  fire_done(f->eng, f->s, f->at, rc == 0 || rc == OEE_DUPLICATE ? t : NULL);
  oee_free(f);
}

/* A firing's idempotency key: "<schedule_id>@YYYY-MM-DDTHH:MM:SSZ". */
#define KEY_SIZE (OEE_SCHEDULE_ID_MAX + 1 + OEE_CRON_TIME_SIZE)
static void firing_key(const oee__sched *s, int64_t at, char key[KEY_SIZE]) {
  char when[OEE_CRON_TIME_SIZE];
  oee_cron_time_rfc3339(at, when);
  snprintf(key, KEY_SIZE, "%s@%s", s->id, when);
}

void oee__sched_fire(oee_engine *eng, firing *fires, size_t n) {
  for (size_t i = 0; i < n; i++) {
    firing *f = oee_malloc(sizeof(*f));
    oee__sched *s = fires[i].s;
    char key[KEY_SIZE];
    firing_key(s, fires[i].at, key);
    oee_submit req = s->tmpl; /* immutable: read without the lock */
    req.schedule_id = s->id;
    req.idempotency_key = key;
    oee_error err;
    if (f == NULL) {
      fire_done(eng, s, fires[i].at, NULL);
      continue;
    }
    *f = fires[i];
    /* Only a firing due before this engine opened can have been submitted
     * by an earlier process (and must meet its task as a duplicate): since
     * load_settle finds such a task first, only rows stored by a build
     * before it could still name one. */
    int rc = fires[i].at * 1000000000LL > eng->opened_ns
                 ? oee__engine_submit_new_key(eng, &req, fired, f, &err)
                 : oee__engine_submit_async(eng, &req, NULL, NULL, fired, f, &err);
    if (rc != 0) fired(f, rc, NULL, &err);
  }
}

/* -------------------------------------------------------------- create */

int oee_schedule_id_valid(const char *id) {
  size_t n = id ? strlen(id) : 0;
  if (n == 0 || n > OEE_SCHEDULE_ID_MAX) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = id[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-')) {
      return 0;
    }
  }
  return 1;
}

/* The fields of a new schedule that are not its expression or zone: its
 * id, overlap and template (checked as a submission would be). */
static int spec_check(oee_engine *eng, const oee_schedule_spec *spec, oee_error *err) {
  if (!oee_schedule_id_valid(spec->schedule_id)) {
    return oee_error_set(err, OEE_EINVAL,
                         "schedule_id \"%.80s\" must be 1 to 64 characters of a-z, 0-9, '.', '_' "
                         "and '-'",
                         spec->schedule_id ? spec->schedule_id : "");
  }
  if (spec->overlap < OEE_OVERLAP_UNSPECIFIED || spec->overlap > OEE_OVERLAP_ALLOW) {
    return oee_error_set(err, OEE_EINVAL, "overlap must be UNSPECIFIED, SKIP or ALLOW, got %d",
                         (int)spec->overlap);
  }
  const oee_submit *t = spec->task;
  if (t == NULL) return oee_error_set(err, OEE_EINVAL, "task: a template is required");
  if (t->has_run_at) {
    return oee_error_set(err, OEE_EINVAL, "task.run_at: a schedule's template may not set it");
  }
  if (t->idempotency_key && t->idempotency_key[0]) {
    return oee_error_set(err, OEE_EINVAL,
                         "task.idempotency_key: a schedule's template may not set it (each firing "
                         "has its own)");
  }
  oee_error why;
  if (oee__submit_check(eng, t, &why) != 0) {
    return oee_error_set(err, why.code, "task: %s", why.message);
  }
  return 0;
}

/* A new record: the expression parsed, the zone loaded, the template
 * copied. OEE_EINVAL naming the bad field, OEE_ENOMEM. */
static int sched_new(const oee_schedule_spec *spec, oee__sched **out, oee_error *err) {
  const oee_submit *t = spec->task;
  oee__sched *s = oee_calloc(1, sizeof(*s));
  if (s == NULL) return oee_error_set(err, OEE_ENOMEM, "out of memory");
  s->refs = 1;
  s->heap_pos = OEE_HEAP_NONE;
  snprintf(s->id, sizeof(s->id), "%s", spec->schedule_id);
  const char *zone = spec->time_zone && spec->time_zone[0] ? spec->time_zone : "UTC";
  int rc = oee_cron_parse(spec->cron ? spec->cron : "", &s->cron, err);
  if (rc == 0) rc = oee_tz_load(zone, &s->tz, err);
  if (rc == 0 &&
      ((s->cron_text = dup_str(spec->cron)) == NULL || (s->zone_text = dup_str(zone)) == NULL ||
       submit_copy(t, &s->tmpl, &s->tmpl_block) != 0)) {
    rc = oee_error_set(err, OEE_ENOMEM, "out of memory");
  }
  if (rc != 0) {
    sched_free(s);
    return rc;
  }
  s->overlap = spec->overlap == OEE_OVERLAP_ALLOW ? OEE_OVERLAP_ALLOW : OEE_OVERLAP_SKIP;
  s->paused = spec->paused;
  *out = s;
  return 0;
}

/* Adds s to the array at pos (lock held; room reserved). */
static void insert_at(oee_engine *eng, oee__sched *s, size_t pos) {
  memmove(&eng->scheds[pos + 1], &eng->scheds[pos], (eng->n_scheds - pos) * sizeof(*eng->scheds));
  eng->scheds[pos] = s;
  eng->n_scheds++;
}

/* Room for one more schedule (lock held): in the array, and a heap slot
 * for every schedule, so that arm() never needs memory (fire_done puts a
 * schedule back on the commit thread, a resume one that was paused). */
static int reserve(oee_engine *eng) {
  if (oee_heap_reserve(&eng->sched_heap, eng->n_scheds + 1 - eng->sched_heap.len) != 0) {
    return OEE_ENOMEM;
  }
  if (eng->n_scheds < eng->cap_scheds) return 0;
  size_t cap = eng->cap_scheds ? 2 * eng->cap_scheds : 16;
  oee__sched **grown = oee_realloc(eng->scheds, cap * sizeof(*grown));
  if (grown == NULL) return OEE_ENOMEM;
  eng->scheds = grown;
  eng->cap_scheds = cap;
  return 0;
}

/* The view a change's caller is told (lock held): 0, or OEE_ENOMEM. */
static int view_for(const oee__sched *s, oee_schedule_cb cb, tell *t) {
  t->view = NULL;
  if (cb == NULL) return 0;
  return (t->view = view_of(s)) == NULL ? OEE_ENOMEM : 0;
}

int oee_engine_schedule_create_async(oee_engine *eng, const oee_schedule_spec *spec,
                                     oee_schedule_cb cb, void *arg, oee_error *err) {
  if (err) *err = (oee_error){0};
  if (spec == NULL) return oee_error_set(err, OEE_EINVAL, "no schedule given");
  oee__sched *s = NULL;
  int rc = spec_check(eng, spec, err);
  if (rc == 0) rc = sched_new(spec, &s, err);
  if (rc != 0) return rc;
  tell t = {cb, arg, NULL};
  oee__lock(&eng->lock);
  int found;
  size_t pos = find_pos(eng, s->id, &found);
  if (!eng->accepting) {
    rc = oee_error_set(err, OEE_ESTOPPED, "shutting down: no schedule is created");
  } else if (found) {
    rc = oee_error_set(err, OEE_EEXISTS, "schedule_id \"%s\" is in use by an existing schedule",
                       s->id);
  } else if (eng->n_scheds >= eng->max_schedules) {
    rc = oee_error_set(err, OEE_EFULL, "there are already max_schedules=%zu schedules",
                       eng->max_schedules);
  } else {
    s->created_s = oee_now_ns() / 1000000000LL;
    s->next_s = s->paused ? OEE_CRON_NONE : next_after(s, s->created_s);
    if (reserve(eng) != 0 || view_for(s, cb, &t) != 0 || store(eng, s, 0, &t) != 0) {
      oee_schedule_free(t.view);
      rc = oee_error_set(err, OEE_ENOMEM, "out of memory");
    } else {
      insert_at(eng, s, pos);
      arm(eng, s);
    }
  }
  oee__unlock(&eng->lock);
  if (rc != 0) {
    sched_free(s);
    return rc;
  }
  tell_now(eng, &t);
  return 0;
}

int oee_engine_schedule_delete_async(oee_engine *eng, const char *id, oee_schedule_cb cb, void *arg,
                                     oee_error *err) {
  tell t = {cb, arg, NULL};
  oee__lock(&eng->lock);
  int found = 0, rc = 0;
  size_t pos = id ? find_pos(eng, id, &found) : 0;
  oee__sched *s = found ? eng->scheds[pos] : NULL;
  if (s == NULL) {
    rc = oee_error_set(err, OEE_ENOENT, "schedule \"%.80s\" not found", id ? id : "");
  } else if ((rc = store(eng, s, 1, &t)) != 0) {
    oee_error_set(err, rc, "out of memory");
  } else {
    disarm(eng, s);
    memmove(&eng->scheds[pos], &eng->scheds[pos + 1],
            (eng->n_scheds - pos - 1) * sizeof(*eng->scheds));
    eng->n_scheds--;
    s->deleted = 1;
    sched_unref(s);
  }
  oee__unlock(&eng->lock);
  if (rc == 0) tell_now(eng, &t);
  return rc;
}

int oee_engine_schedule_pause_async(oee_engine *eng, const char *id, int paused, oee_schedule_cb cb,
                                    void *arg, oee_error *err) {
  tell t = {cb, arg, NULL};
  oee__lock(&eng->lock);
  oee__sched *s = id ? find(eng, id) : NULL;
  int rc = 0;
  if (s == NULL) {
    rc = oee_error_set(err, OEE_ENOENT, "schedule \"%.80s\" not found", id ? id : "");
  } else {
    int was = s->paused;
    int64_t next = s->next_s;
    disarm(eng, s);
    s->paused = paused != 0;
    /* Resumed: the first firing after now, no catch-up for the pause. */
    if (!s->paused && was) s->next_s = next_after(s, oee_now_ns() / 1000000000LL);
    if (view_for(s, cb, &t) != 0 || store(eng, s, 0, &t) != 0) {
      oee_schedule_free(t.view);
      t.view = NULL;
      rc = oee_error_set(err, OEE_ENOMEM, "out of memory");
      s->paused = was;
      s->next_s = next;
    }
    arm(eng, s); /* its own slot: it was just taken out */
  }
  oee__unlock(&eng->lock);
  if (rc == 0) tell_now(eng, &t);
  return rc;
}

/* The synchronous calls: the asynchronous ones and a wait. */
typedef struct sync_wait {
  oee__latch done;
  int rc;
  oee_schedule *s;
  oee_error err;
} sync_wait;

static void sync_told(void *arg, int rc, oee_schedule *s, const oee_error *err) {
  sync_wait *w = arg;
  w->rc = rc;
  w->s = s;
  if (err != NULL) w->err = *err;
  oee__latch_set(&w->done);
}

/* Waits for the call that returned rc (0: it will tell w) and hands on
 * what it was told. */
static int sync_finish(sync_wait *w, int rc, oee_schedule **out, oee_error *err) {
  if (rc == 0) {
    oee__latch_wait(&w->done);
    rc = w->rc;
    if (rc != 0 && err != NULL) *err = w->err;
  }
  oee__latch_destroy(&w->done);
  if (out != NULL && rc == 0) {
    *out = w->s;
  } else {
    oee_schedule_free(w->s);
  }
  return rc;
}

int oee_engine_schedule_create(oee_engine *eng, const oee_schedule_spec *spec, oee_schedule **out,
                               oee_error *err) {
  sync_wait w = {.rc = 0};
  if (oee__latch_init(&w.done) != 0) return oee_error_set(err, OEE_ENOMEM, "out of memory");
  return sync_finish(&w, oee_engine_schedule_create_async(eng, spec, sync_told, &w, err), out, err);
}

int oee_engine_schedule_delete(oee_engine *eng, const char *id, oee_error *err) {
  sync_wait w = {.rc = 0};
  if (oee__latch_init(&w.done) != 0) return oee_error_set(err, OEE_ENOMEM, "out of memory");
  return sync_finish(&w, oee_engine_schedule_delete_async(eng, id, sync_told, &w, err), NULL, err);
}

int oee_engine_schedule_pause(oee_engine *eng, const char *id, int paused, oee_schedule **out,
                              oee_error *err) {
  sync_wait w = {.rc = 0};
  if (oee__latch_init(&w.done) != 0) return oee_error_set(err, OEE_ENOMEM, "out of memory");
  return sync_finish(&w, oee_engine_schedule_pause_async(eng, id, paused, sync_told, &w, err), out,
                     err);
}

/* ---------------------------------------------------- get, list, change */

int oee_engine_schedule_get(oee_engine *eng, const char *id, oee_schedule **out) {
  oee__lock(&eng->lock);
  const oee__sched *s = id ? find(eng, id) : NULL;
  *out = s ? view_of(s) : NULL;
  int rc = s == NULL ? OEE_ENOENT : *out == NULL ? OEE_ENOMEM : 0;
  oee__unlock(&eng->lock);
  return rc;
}

int oee_engine_schedule_list(oee_engine *eng, const char *after, size_t limit, oee_schedule ***out,
                             size_t *n, int *more) {
  *out = NULL;
  *n = 0;
  *more = 0;
  oee__lock(&eng->lock);
  int found;
  size_t pos = after && after[0] ? find_pos(eng, after, &found) : 0;
  if (after && after[0] && found) pos++;
  size_t count = eng->n_scheds - pos < limit ? eng->n_scheds - pos : limit;
  int rc = 0;
  if (count > 0 && (*out = oee_calloc(count, sizeof(**out))) == NULL) rc = OEE_ENOMEM;
  for (size_t i = 0; rc == 0 && i < count; i++) {
    if (((*out)[i] = view_of(eng->scheds[pos + i])) == NULL) rc = OEE_ENOMEM;
    *n = i + 1;
  }
  *more = rc == 0 && pos + count < eng->n_scheds;
  oee__unlock(&eng->lock);
  if (rc != 0) {
    oee_schedule_list_free(*out, *n);
    *out = NULL;
    *n = 0;
  }
  return rc;
}

void oee_schedule_list_free(oee_schedule **v, size_t n) {
  for (size_t i = 0; v != NULL && i < n; i++) oee_schedule_free(v[i]);
  oee_free(v);
}

/* ----------------------------------------------------- engine lifetime */

void oee__sched_init(oee_engine *eng, size_t max_schedules) {
  oee_heap_init(&eng->sched_heap, sched_less, sched_setpos);
  eng->max_schedules = max_schedules ? max_schedules : OEE_DEFAULT_MAX_SCHEDULES;
}

void oee__sched_fini(oee_engine *eng) {
  for (size_t i = 0; i < eng->n_scheds; i++) sched_unref(eng->scheds[i]);
  oee_free(eng->scheds);
  eng->scheds = NULL;
  eng->n_scheds = eng->cap_scheds = 0;
  oee_heap_fini(&eng->sched_heap);
}

/* --------------------------------------------------------------- loading */

/* A template read back: t points into the strings and arrays below, which
 * read_template allocated (free_template frees them). */
typedef struct read_tmpl {
  oee_submit t;
  char *name, *type;
  oee_kv *ctx;
  char **deps;
  size_t n_ctx, n_deps;
} read_tmpl;

static void read_template(oee__rbuf *b, size_t len, read_tmpl *r) {
  memset(r, 0, sizeof(*r));
  r->name = oee__get_str(b);
  r->type = oee__get_str(b);
  r->t.priority = (int)get_i64(b);
  /* Every entry takes at least 8 bytes: a count beyond that is not ours. */
  uint64_t n_ctx = oee__get_u64(b);
  if (n_ctx > len / 8) b->bad = 1;
  if (!b->bad && n_ctx > 0 && (r->ctx = oee_calloc(n_ctx, sizeof(*r->ctx))) == NULL) b->nomem = 1;
  for (r->n_ctx = 0; r->ctx && r->n_ctx < n_ctx; r->n_ctx++) {
    r->ctx[r->n_ctx].key = oee__get_str(b);
    r->ctx[r->n_ctx].value = oee__get_str(b);
  }
  r->t.max_attempts = (int)get_i64(b);
  r->t.has_backoff = (int)get_i64(b);
  r->t.backoff_seconds = oee__get_f64(b);
  r->t.has_max_backoff = (int)get_i64(b);
  r->t.max_backoff_seconds = oee__get_f64(b);
  r->t.timeout_seconds = oee__get_f64(b);
  uint64_t n_deps = oee__get_u64(b);
  if (n_deps > len / 4) b->bad = 1;
  if (!b->bad && n_deps > 0 && (r->deps = oee_calloc(n_deps, sizeof(*r->deps))) == NULL) {
    b->nomem = 1;
  }
  for (r->n_deps = 0; r->deps && r->n_deps < n_deps; r->n_deps++) {
    r->deps[r->n_deps] = oee__get_str(b);
  }
  r->t.name = r->name;
  r->t.task_type = r->type;
  r->t.context = r->ctx;
  r->t.context_len = r->n_ctx;
  r->t.depends_on = (const char *const *)r->deps;
  r->t.depends_on_len = r->n_deps;
}

static void free_template(read_tmpl *r) {
  for (size_t i = 0; i < r->n_ctx; i++) {
    oee_free((char *)r->ctx[i].key);
    oee_free((char *)r->ctx[i].value);
  }
  for (size_t i = 0; i < r->n_deps; i++) oee_free(r->deps[i]);
  oee_free(r->ctx);
  oee_free(r->deps);
  oee_free(r->name);
  oee_free(r->type);
}

/* A record from its stored bytes (at create); its template is not checked
 * again (it was at create; a type gone since refuses the firings, not the
 * start). */
static int decode(const char *id, const void *body, size_t len, oee__sched **out, oee_error *err) {
  oee__rbuf b = {body, (const unsigned char *)body + len, 0, 0};
  int64_t version = get_i64(&b);
  char *cron = oee__get_str(&b), *zone = oee__get_str(&b);
  oee__sched saved = {.created_s = get_i64(&b)};
  oee_schedule_spec spec = {.schedule_id = id, .cron = cron, .time_zone = zone};
  spec.overlap = (oee_overlap)get_i64(&b);
  spec.paused = (int)get_i64(&b);
  saved.next_s = get_i64(&b);
  saved.last_s = get_i64(&b);
  char *last_task = oee__get_str(&b);
  saved.runs = get_i64(&b);
  saved.skipped = get_i64(&b);
  read_tmpl r;
  read_template(&b, len, &r);
  spec.task = &r.t;
  int rc = 0;
  if (b.nomem) {
    rc = oee_error_set(err, OEE_ENOMEM, "out of memory loading schedule %s", id);
  } else if (b.bad || version != BODY_VERSION || !cron || !zone || !last_task || !r.name ||
             !r.type) {
    rc = oee_error_set(err, OEE_EINVAL, "storage: schedule %s is not readable", id);
  }
  oee__sched *s = NULL;
  if (rc == 0 && (rc = sched_new(&spec, &s, err)) == 0) {
    s->created_s = saved.created_s;
    s->next_s = saved.next_s;
    s->last_s = saved.last_s;
    snprintf(s->last_task, sizeof(s->last_task), "%s", last_task);
    s->runs = saved.runs;
    s->skipped = saved.skipped;
    *out = s;
  }
  free_template(&r);
  oee_free(cron);
  oee_free(zone);
  oee_free(last_task);
  return rc;
}

/* One stored schedule back into the array (lock held, at create). */
static int load_one(const char *id, const void *body, size_t len, void *arg) {
  void **args = arg;
  oee_engine *eng = args[0];
  oee_error *err = args[1];
  oee__sched *s = NULL;
  int rc = decode(id, body, len, &s, err);
  if (rc == 0 && (rc = reserve(eng)) != 0) {
    sched_free(s);
    rc = oee_error_set(err, rc, "out of memory loading schedules");
  }
  if (rc != 0) return rc;
  eng->scheds[eng->n_scheds++] = s; /* rows come in id order */
  return 0;
}

/* A loaded schedule made current (lock held, at create). First the row's
 * rule (see DESIGN): its next firing, when due, may have a task the row
 * does not count, stored just before the process was killed; its key is
 * looked up, and a task found counts as that firing's run. Then the
 * catch-up: of the firings missed while the engine was down, the latest
 * fires once (at once) and the others count as skipped; that is stored
 * before its task can be, like a late firing's count. */
static int load_settle(oee_engine *eng, oee__sched *s, int64_t now, oee_error *err) {
  int changed = 0;
  if (s->next_s != OEE_CRON_NONE && s->next_s <= now) {
    char key[KEY_SIZE];
    firing_key(s, s->next_s, key);
    const oee_task_info *t = NULL;
    oee_error why;
    int rc = oee_db_find_key(eng->db, key, 0, &t, &why);
    if (rc != 0 && rc != OEE_ENOENT) return oee_error_set(err, rc, "%s", why.message);
    if (rc == 0) {
      memcpy(s->last_task, t->id, sizeof(s->last_task));
      s->last_s = s->next_s;
      s->runs++;
      s->next_s = next_after(s, s->next_s);
      changed = 1;
      oee_task_info_unref(t);
    }
  }
  int64_t missed = 0, latest = s->paused ? OEE_CRON_NONE : latest_due(s, s->next_s, now, &missed);
  if (latest != OEE_CRON_NONE) {
    s->skipped += missed;
    s->next_s = latest; /* due now: the timer fires it first thing */
    changed |= missed > 0;
  }
  if (changed && store(eng, s, 0, NULL) != 0) {
    return oee_error_set(err, OEE_ENOMEM, "out of memory loading schedules");
  }
  arm(eng, s);
  return 0;
}

int oee__sched_load(oee_engine *eng, oee_error *err) {
  void *args[2] = {eng, err};
  oee__lock(&eng->lock);
  int rc = oee_db_load_schedules(eng->db, load_one, args, err);
  int64_t now = oee_now_ns() / 1000000000LL;
  for (size_t i = 0; rc == 0 && i < eng->n_scheds; i++) {
    rc = load_settle(eng, eng->scheds[i], now, err);
  }
  oee__unlock(&eng->lock);
  return rc;
}
