/*
 * job.c - task snapshots changing under the engine lock, and the job handle
 * executors finish: oee_job_succeed/fail/cancelled (see engine.h).
 * Lock order: eng->lock -> bus locks (see events.c).
 * Snapshots are packed before the engine lock is taken wherever the task's
 * current snapshot is known without it (job completion); only the seq is
 * set under the lock, so sequence order is change order.
 */
#include "core/engine.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/id.h"
#include "core/oee_alloc.h"
#include "core/sync.h"

#define OOM_RESULT_MESSAGE "out of memory while recording the result"

/* Every change of a task's status passes here, so this is where the
 * lifecycle table (task.c, oee_task_transition_check) is enforced. An
 * illegal edge is a bug in the engine, never the caller's input (requests
 * are checked against the status before a snapshot is packed): a debug
 * build stops at the assertion; a build with NDEBUG refuses the change,
 * leaving the task as it was (its last legal state, which readers and the
 * store already have) and dropping `next`. */
void oee__task_swap_packed(oee_engine *eng, oee_task *t, oee_task_info *next) {
  oee_task_status from = t->snap->status;
  int legal = oee_task_transition_check(from, next->status) == 0;
  assert(legal && "task status change missing from the lifecycle table");
  if (!legal) {
    oee_task_info_unref(next);
    return;
  }
  next->seq = ++eng->last_seq; /* not shared yet: still writable */
  /* Stamped here, with the lock held, like seq: the store keeps finished
   * tasks in the order they are swapped in, and clearing and retention
   * take "least recently completed" from that order, so the stamps must
   * follow it (a snapshot packed earlier may be swapped in later). */
  next->changed_at_ns = oee_now_ns();
  if (!oee_task_status_is_terminal(from) && oee_task_status_is_terminal(next->status)) {
    next->completed_at_ns = next->changed_at_ns;
  }
  const oee_task_info *old = t->snap;
  t->snap = next;
  oee__metrics_changed(&eng->metrics, t, old, next);
  eng->store->ops->changed(eng->store, t, from);
  if (!oee_task_status_is_terminal(from) && oee_task_status_is_terminal(next->status)) {
    eng->queue_bytes -= oee__task_bytes(next);
  } else if (oee_task_status_is_terminal(from) && !oee_task_status_is_terminal(next->status)) {
    eng->queue_bytes += oee__task_bytes(next); /* RetryTask: unfinished again */
  }
  if (eng->committer) {
    /* Readers go on seeing the last stored snapshot (oee__task_shown)
     * until the new one is stored. */
    if (t->shown == NULL) {
      t->shown = old; /* the reference moves */
      old = NULL;
    }
    oee__durable_change(eng, t, from); /* published once stored */
  } else {
    oee__bus_publish(eng->bus, next);
  }
  oee_task_info_unref(old);
  /* A final status decides the tasks waiting for this one. */
  if (t->graph) oee__graph_changed(eng, t);
}

const oee_task_info *oee__task_shown(const oee_task *t) { return t->shown ? t->shown : t->snap; }

int oee__task_swap_snapshot(oee_engine *eng, oee_task *t, oee_task_info *draft) {
  oee_task_info *next = oee__engine_pack(eng, draft);
  if (next == NULL) return OEE_ENOMEM;
  oee__task_swap_packed(eng, t, next);
  return 0;
}

/* The terminal version of `cur`; without the result text when memory is
 * short. NULL when even that cannot be packed. */
static oee_task_info *pack_final(const oee_engine *eng, const oee_task_info *cur,
                                 oee_task_status to, const char *result, const char *message) {
  oee_task_info d = *cur;
  d.status = to;
  d.completed_at_ns = oee_now_ns();
  d.result = result;
  d.error_message = message;
  oee_task_info *next = oee__engine_pack(eng, &d);
  if (next != NULL) return next;
  d.result = "";
  d.error_message = OOM_RESULT_MESSAGE;
  return oee__engine_pack(eng, &d);
}

/* The final snapshot, however long memory takes to come back: a task may
 * not stay RUNNING forever and there is nobody to report the failure to.
 * No lock is held while it waits. */
static oee_task_info *pack_final_retrying(const oee_engine *eng, const oee_task_info *cur,
                                          oee_task_status to, const char *result,
                                          const char *message) {
  oee_task_info *next;
  while ((next = pack_final(eng, cur, to, result, message)) == NULL) {
    struct timespec pause = {0, OEE__OOM_BACKOFF_NS};
    nanosleep(&pause, NULL);
  }
  return next;
}

/* ------------------------------------------------------------------ jobs */

/* Takes a finished job off the running list (lock held); the last one out
 * wakes oee_engine_stop(). */
void oee__running_unlink(oee_engine *eng, oee_job *j) {
  if (j->prev) {
    j->prev->next = j->next;
  } else {
    eng->running = j->next;
  }
  if (j->next) j->next->prev = j->prev;
  if (--eng->running_jobs == 0) oee__broadcast(&eng->drain_cv);
}

const oee_task_info *oee_job_task(const oee_job *j) { return j->snap; }

const char *oee_job_context(const oee_job *j, const char *key) {
  return oee_task_info_context(j->snap, key);
}

oee_token *oee_job_token(oee_job *j) { return j->token; }

int oee_job_worker(const oee_job *j) { return j->worker; }

void *oee__job_payload(oee_job *j) { return j->task->payload ? j->task->payload->data : NULL; }

/* Cuts an over-long result and says so at its end (malloc'd or NULL). */
static char *truncate_result(const char *result, size_t max) {
  static const char marker[] = "\n[truncated: %zu of %zu bytes kept]";
  /* Room for the marker with both %zu expanded to 20 digits at most. */
  const size_t room = sizeof(marker) + 2 * 20;
  size_t len = strlen(result);
  char *out = oee_malloc(max + room);
  if (out == NULL) return NULL;
  memcpy(out, result, max);
  snprintf(out + max, room, marker, max, len);
  return out;
}

/* The next snapshot of a task whose attempt failed with `message` and will
 * be retried: SCHEDULED after the backoff. */
static oee_task_info *pack_retry(const oee_engine *eng, const oee_task_info *cur,
                                 const char *message) {
  oee_task_info d = *cur;
  d.status = OEE_TASK_SCHEDULED;
  d.run_at_ns = oee_now_ns() + oee__seconds_ns(oee__backoff_seconds(cur, cur->attempt));
  d.result = "";
  d.error_message = message;
  oee_task_info *next;
  while ((next = oee__engine_pack(eng, &d)) == NULL) {
    struct timespec pause = {0, OEE__OOM_BACKOFF_NS};
    nanosleep(&pause, NULL);
  }
  return next;
}

/* The snapshot a job's end leads to (no lock held): how and message may
 * change when its timeout cancelled it. */
static oee_task_info *pack_end(oee_job *j, oee__ending how, const char *result, const char *message,
                               oee_task_status *to) {
  oee_engine *eng = j->eng;
  char timed_out_msg[96];
  oee__lock(&eng->lock);
  oee__timer_unwatch(eng, j);
  int timed_out = j->timed_out;
  oee__unlock(&eng->lock);
  /* A job its timeout cancelled failed that attempt (and may retry). */
  if (timed_out && how == OEE__CANCELLED) {
    snprintf(timed_out_msg, sizeof(timed_out_msg), "timed out after %g s",
             j->snap->timeout_seconds);
    how = OEE__FAILED;
    message = timed_out_msg;
  }
  const oee_task_info *cur = j->snap;
  int retry = how == OEE__FAILED && cur->attempt < cur->max_attempts;
  *to = how == OEE__SUCCEEDED   ? OEE_TASK_DONE
        : how == OEE__CANCELLED ? OEE_TASK_CANCELLED
        : retry                 ? OEE_TASK_SCHEDULED
                                : OEE_TASK_ERROR;
  /* While its job runs, only the job changes a task's snapshot, so j->snap
   * is current and the next one can be packed before taking the lock. */
  return retry ? pack_retry(eng, cur, message)
               : pack_final_retrying(eng, cur, *to, result, message);
}

void oee__job_finish(oee_job *j, oee__ending how, const char *result, const char *message,
                     oee__stored_waiter *waiter, const oee_task_info **now) {
  oee_engine *eng = j->eng;
  char *cut = NULL;
  if (result && strlen(result) > eng->result_max) {
    cut = truncate_result(result, eng->result_max);
    result = cut ? cut : "";
  }
  oee_task_status to;
  oee_task_info *next = pack_end(j, how, result, message, &to);
  oee__lock(&eng->lock);
  if (j->task->snap != j->snap) abort();
  if (oee_task_transition_check(OEE_TASK_RUNNING, to) != 0) abort();
  oee__task_swap_packed(eng, j->task, next);
  if (to == OEE_TASK_SCHEDULED) oee__timer_schedule(eng, j->task); /* room reserved at start */
  if (waiter != NULL && eng->committer) oee__durable_after(eng, waiter, next->seq);
  if (now != NULL) *now = oee_task_info_ref(next);
  j->task->token = NULL;
  if (j->lease != NULL) {
    oee__remote_ended(eng, j, to);
  } else {
    worker *w = &eng->workers[j->worker];
    if (to == OEE_TASK_DONE) w->completed++;
    if (to == OEE_TASK_ERROR) w->failed++;
  }
  oee__running_unlink(eng, j);
  oee__queue_ended(eng, j->task->snap->task_type); /* its quota's slot */
  oee__engine_unlock(eng);
  oee_free(cut);
  oee_token_destroy(j->token);
  oee_task_info_unref(j->snap);
  oee_free(j);
}

void oee_job_succeed(oee_job *j, const char *result) {
  oee__job_finish(j, OEE__SUCCEEDED, result ? result : "", "", NULL, NULL);
}

void oee_job_fail(oee_job *j, const char *message) {
  oee__job_finish(j, OEE__FAILED, "", message && message[0] ? message : "failed", NULL, NULL);
}

void oee_job_fail_permanent(oee_job *j, const char *message) {
  oee__job_finish(j, OEE__FAILED_PERMANENTLY, "", message && message[0] ? message : "failed", NULL,
                  NULL);
}

void oee_job_cancelled(oee_job *j, const char *reason) {
  oee__job_finish(j, OEE__CANCELLED, "", reason ? reason : "cancelled", NULL, NULL);
}

int oee_job_attempt(const oee_job *j) { return j->snap->attempt; }
