/*
 * graph.c - dependencies between tasks (depends_on): a task waits,
 * SCHEDULED, until every task it names is DONE, and ends CANCELLED
 * ("dependency <id> ended ERROR") as soon as one of them ends otherwise,
 * and so on down the graph. See engine.h for the engine's design.
 *
 * DESIGN
 * Every task that takes part in a graph has a `graph` record: the
 * dependents waiting for it (a list of their waits) and, while it waits
 * itself, its own `wait`: how many of its dependencies are not DONE yet and
 * the first one that failed. A dependency finishing walks only its own
 * list (the cost is its direct dependents, whatever the graph's size) and
 * puts each wait it decided (the last dependency DONE, or one failed) on
 * the engine's `due` list; the due waits are then settled one by one (the
 * task becomes QUEUED, or CANCELLED, which decides its own dependents in
 * turn), iteratively, so a chain of any length never recurses.
 * A wait is shared by its task and the lists naming it, so it is counted:
 * a task cancelled while it waits (or freed) ends its wait, and the lists
 * still naming it skip it when their dependency finishes. A retry of the
 * task starts a new wait.
 * Resolving: a dependency in memory is read there (its current snapshot: the
 * engine decides on it, and the commit order stores the dependency's change
 * before the dependent's); a durable engine keeps finished tasks on disk,
 * so a dependency not in memory is finished and read from its row, outside
 * the lock (the caller reads it and resolves again). A task whose row is not
 * stored yet (durable: accepted, not acknowledged) is decided but not
 * settled until it is stored (oee__graph_placed()).
 * When packing a snapshot or growing the queue fails, the wait stays due and
 * the timer thread settles it again after a pause.
 * Everything here runs with the engine lock held.
 */
#include <stdio.h>
#include <string.h>

#include "core/db.h"
#include "core/engine.h"
#include "core/oee_alloc.h"
#include "core/sync.h"

struct oee__dep_wait {
  oee_task *task; /* the waiting task; NULL once this wait is over */
  uint32_t refs;  /* the task's, one per dependency list naming it, the due list's */
  uint32_t left;  /* dependencies not DONE yet */
  int pending;    /* the task's row is not stored yet: decide, do not settle */
  int due;        /* on eng->graph_due */
  struct oee__dep_wait *next_due;
  oee_task_status failed_status;  /* ERROR or CANCELLED: a dependency failed */
  char failed_id[OEE_ID_LEN + 1]; /* the first one that did */
};

struct oee__graph {
  oee__dep_wait *wait;        /* this task's wait, NULL when it waits for none */
  oee__dep_wait **dependents; /* the waits naming this task (each holds a count) */
  uint32_t n, cap;
};

static void wait_unref(oee__dep_wait *w) {
  if (--w->refs == 0) oee_free(w);
}

/* t's record, made on first use; NULL when out of memory. */
static oee__graph *graph_of(oee_task *t) {
  if (t->graph == NULL) t->graph = oee_calloc(1, sizeof(*t->graph));
  return t->graph;
}

/* Room for one more dependent of `dep` (0 or OEE_ENOMEM). */
static int dependents_reserve(oee_task *dep) {
  oee__graph *g = graph_of(dep);
  if (g == NULL) return OEE_ENOMEM;
  if (g->n < g->cap) return 0;
  uint32_t cap = g->cap ? 2 * g->cap : 4;
  oee__dep_wait **grown = oee_realloc(g->dependents, cap * sizeof(*grown));
  if (grown == NULL) return OEE_ENOMEM;
  g->dependents = grown;
  g->cap = cap;
  return 0;
}

/* The task's wait is over (decided, or the task ended or left). */
static void wait_end(oee_task *t) {
  oee__dep_wait *w = t->graph ? t->graph->wait : NULL;
  if (w == NULL) return;
  t->graph->wait = NULL;
  w->task = NULL;
  wait_unref(w);
}

void oee__graph_free(oee_task *t) {
  oee__graph *g = t->graph;
  if (g == NULL) return;
  wait_end(t);
  for (uint32_t i = 0; i < g->n; i++) wait_unref(g->dependents[i]);
  oee_free(g->dependents);
  oee_free(g);
  t->graph = NULL;
}

int oee__graph_waiting(const oee_task *t) { return t->graph != NULL && t->graph->wait != NULL; }

/* ------------------------------------------------------------ resolving */

/* The status of dependency i for resolving: from memory (*in_memory set),
 * else from the caller's disk answers; 0 when neither knows it. */
static int dep_status(oee_engine *eng, const char *id, const int *disk, size_t i,
                      oee_task **in_memory) {
  *in_memory = eng->store->ops->lookup(eng->store, id);
  if (*in_memory != NULL) return (int)(*in_memory)->snap->status;
  return disk ? disk[i] : 0;
}

static int resolve(oee_engine *eng, oee_task *t, int *disk, oee_task **pending, int *waits,
                   oee_error *err);

/* Dependencies a wait is added to, kept from the first pass for the
 * second (most tasks name a few). */
#define PENDING_ON_STACK 16

int oee__graph_resolve(oee_engine *eng, oee_task *t, int *disk, int *waits, oee_error *err) {
  const oee_task_info *snap = t->snap;
  *waits = 0;
  oee_task *on_stack[PENDING_ON_STACK], **pending = on_stack;
  if (snap->depends_on_len > PENDING_ON_STACK &&
      (pending = oee_malloc(snap->depends_on_len * sizeof(*pending))) == NULL) {
    return oee_error_set(err, OEE_ENOMEM, "out of memory recording the dependencies");
  }
  int rc = resolve(eng, t, disk, pending, waits, err);
  if (pending != on_stack) oee_free(pending);
  return rc;
}

/* What resolving found of a task's dependencies (the first pass). */
typedef struct dep_scan {
  oee_task **pending; /* the unfinished ones, each with room for one dependent */
  uint32_t left;      /* how many */
  size_t failed;      /* the first that ended ERROR or CANCELLED, or SIZE_MAX */
  int failed_status;
} dep_scan;

/* The first pass: reads every dependency's status and reserves room on
 * the unfinished ones' lists; nothing else changes, so a refusal leaves
 * nothing behind. 0, OEE__GRAPH_READ_DISK (disk[] marks what to read),
 * OEE_EINVAL naming an unknown one, OEE_ENOMEM. */
static int scan(oee_engine *eng, const oee_task_info *snap, int *disk, dep_scan *d,
                oee_error *err) {
  size_t missing = 0;
  for (size_t i = 0; i < snap->depends_on_len; i++) {
    oee_task *dep;
    int st = dep_status(eng, snap->depends_on[i], disk, i, &dep);
    if (st <= 0 && st != OEE__DEP_UNKNOWN && eng->db != NULL && disk != NULL) {
      disk[i] = OEE__DEP_READ; /* finished, or unknown: its row says */
      missing++;
    } else if (st <= 0) {
      return oee_error_set(err, OEE_EINVAL, "depends_on[%zu]: task %s not found", i,
                           snap->depends_on[i]);
    } else if (st == OEE_TASK_ERROR || st == OEE_TASK_CANCELLED) {
      if (d->failed == SIZE_MAX) {
        d->failed = i;
        d->failed_status = st;
      }
    } else if (st != OEE_TASK_DONE) {
      if (dependents_reserve(dep) != 0) {
        return oee_error_set(err, OEE_ENOMEM, "out of memory recording the dependencies");
      }
      d->pending[d->left++] = dep;
    }
  }
  return missing > 0 ? OEE__GRAPH_READ_DISK : 0;
}

static int resolve(oee_engine *eng, oee_task *t, int *disk, oee_task **pending, int *waits,
                   oee_error *err) {
  const oee_task_info *snap = t->snap;
  dep_scan d = {.pending = pending, .failed = SIZE_MAX};
  int rc = scan(eng, snap, disk, &d, err);
  if (rc != 0 || (d.left == 0 && d.failed == SIZE_MAX)) return rc;
  oee__dep_wait *w = oee_calloc(1, sizeof(*w));
  if (w == NULL || graph_of(t) == NULL) {
    oee_free(w);
    return oee_error_set(err, OEE_ENOMEM, "out of memory recording the dependencies");
  }
  *w = (oee__dep_wait){.task = t, .refs = 1, .left = d.left, .pending = eng->committer != NULL};
  if (d.failed != SIZE_MAX) {
    w->failed_status = (oee_task_status)d.failed_status;
    snprintf(w->failed_id, sizeof(w->failed_id), "%s", snap->depends_on[d.failed]);
  }
  for (uint32_t i = 0; i < d.left; i++) {
    oee__graph *g = pending[i]->graph;
    g->dependents[g->n++] = w; /* reserved above */
    w->refs++;
  }
  wait_end(t); /* a retried task's earlier wait, if it still had one */
  t->graph->wait = w;
  *waits = 1;
  return 0;
}

/* ------------------------------------------------------------- settling */

static void due_push(oee_engine *eng, oee__dep_wait *w) {
  if (w->due) return;
  w->due = 1;
  w->refs++;
  w->next_due = NULL;
  if (eng->graph_due_tail) {
    eng->graph_due_tail->next_due = w;
  } else {
    eng->graph_due = w;
  }
  eng->graph_due_tail = w;
}

/* Acts on a decided wait: the task ends CANCELLED naming the dependency
 * that failed, or (every dependency DONE) becomes QUEUED, or stays in the
 * timer's heap until its run_at. 0, or OEE_ENOMEM (nothing changed). */
static int settle(oee_engine *eng, oee__dep_wait *w) {
  oee_task *t = w->task;
  oee_task_info d = *t->snap;
  char message[OEE_ID_LEN + 64];
  if (w->failed_status != 0) {
    snprintf(message, sizeof(message), "dependency %s ended %s", w->failed_id,
             w->failed_status == OEE_TASK_ERROR ? "ERROR" : "CANCELLED");
    d.status = OEE_TASK_CANCELLED;
    d.completed_at_ns = oee_now_ns();
    d.result = "";
    d.error_message = message;
    oee_task_info *next = oee__engine_pack(eng, &d);
    if (next == NULL) return OEE_ENOMEM;
    oee__timer_unschedule(eng, t);
    oee__task_swap_packed(eng, t, next); /* ends the wait; its dependents follow */
    return 0;
  }
  if (t->snap->run_at_ns > oee_now_ns()) { /* in the timer's heap: it queues it */
    wait_end(t);
    return 0;
  }
  if (oee__queue_reserve(eng, t->snap->task_type, 1) != 0) return OEE_ENOMEM;
  d.status = OEE_TASK_QUEUED;
  int rc = oee__task_swap_snapshot(eng, t, &d);
  if (rc != 0) return rc;
  wait_end(t);
  oee__timer_unschedule(eng, t); /* its run_at passed while it waited */
  oee__queue_push(eng, t);
  return 0;
}

int oee__graph_drain(oee_engine *eng) {
  if (eng->graph_draining) return 0; /* the drainer further up sees it */
  eng->graph_draining = 1;
  oee__dep_wait *w;
  int stuck = 0;
  while ((w = eng->graph_due) != NULL) {
    if (w->task != NULL && !w->pending && w->task->graph->wait == w && settle(eng, w) != 0) {
      stuck = 1; /* the timer tries again after a pause */
      oee__signal(&eng->timer_cv);
      break;
    }
    eng->graph_due = w->next_due;
    if (eng->graph_due == NULL) eng->graph_due_tail = NULL;
    w->due = 0;
    wait_unref(w);
  }
  eng->graph_draining = 0;
  return stuck;
}

/* A wait is decided when a dependency failed or none is left. */
static int decided(const oee__dep_wait *w) { return w->failed_status != 0 || w->left == 0; }

void oee__graph_placed(oee_engine *eng, oee_task *t) {
  oee__dep_wait *w = t->graph ? t->graph->wait : NULL;
  if (w == NULL) return;
  w->pending = 0;
  if (decided(w)) {
    due_push(eng, w);
    oee__graph_drain(eng);
  }
}

void oee__graph_forget(oee_task *t) { wait_end(t); }

void oee__graph_changed(oee_engine *eng, oee_task *t) {
  oee__graph *g = t->graph;
  oee_task_status st = t->snap->status;
  if (g == NULL || !oee_task_status_is_terminal(st)) return;
  wait_end(t);
  for (uint32_t i = 0; i < g->n; i++) {
    oee__dep_wait *w = g->dependents[i];
    if (w->task != NULL) {
      if (st == OEE_TASK_DONE) {
        w->left--;
      } else if (w->failed_status == 0) {
        w->failed_status = st;
        memcpy(w->failed_id, t->snap->id, sizeof(w->failed_id));
      }
      if (decided(w)) due_push(eng, w);
    }
    wait_unref(w);
  }
  /* A finished task needs no record (a retry makes a new one). */
  oee_free(g->dependents);
  oee_free(g);
  t->graph = NULL;
  oee__graph_drain(eng);
}

int oee__graph_read(oee_engine *eng, const oee_task_info *snap, int *disk, oee_error *err) {
  for (size_t i = 0; i < snap->depends_on_len; i++) {
    if (disk[i] != OEE__DEP_READ) continue;
    const oee_task_info *row = NULL;
    int rc = oee_db_get(eng->db, snap->depends_on[i], &row, err);
    if (rc == OEE_ENOENT) {
      disk[i] = OEE__DEP_UNKNOWN;
    } else if (rc != 0) {
      return rc;
    } else {
      /* Not in memory means finished; anything else was in memory when
       * read and is looked up there again. */
      disk[i] = oee_task_status_is_terminal(row->status) ? (int)row->status : 0;
      oee_task_info_unref(row);
    }
  }
  return 0;
}
