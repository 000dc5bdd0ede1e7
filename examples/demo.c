/*
 * demo.c - the seed's four demonstrations against the embedded engine:
 *   1. basic submission and result,
 *   2. priority ordering (one worker, tasks queued before start),
 *   3. a pipeline with a command model,
 *   4. status monitoring.
 * Run: bazel run //examples:demo
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/oee.h"
#include "core/oee_exec.h"
#include "core/oee_pipeline.h"

static const oee_task_info *wait_done(oee_engine *eng, const char *id) {
  for (;;) {
    const oee_task_info *t;
    if (oee_engine_get(eng, id, &t) != 0) return NULL;
    if (oee_task_status_is_terminal(t->status)) return t;
    oee_task_info_unref(t);
    nanosleep(&(struct timespec){0, 5000000}, NULL);
  }
}

static void submit(oee_engine *eng, const char *name, const char *type, int prio, const char *msg,
                   char id[OEE_ID_LEN + 1]) {
  oee_kv kv = {"message", msg};
  oee_submit req = {
      .name = name, .task_type = type, .priority = prio, .context = &kv, .context_len = 1};
  const oee_task_info *t;
  int rc = oee_engine_submit(eng, &req, &t, NULL);
  if (rc != 0) {
    fprintf(stderr, "submit %s: %s\n", name, oee_strerror(rc));
    return;
  }
  memcpy(id, t->id, OEE_ID_LEN + 1);
  oee_task_info_unref(t);
}

static void demo_basic(oee_engine *eng) {
  printf("== 2. basic task\n");
  char id[OEE_ID_LEN + 1];
  submit(eng, "My Task", "echo", 5, "hello from OEE", id);
  const oee_task_info *t = wait_done(eng, id);
  printf("task %s: status=%s result=\"%s\" worker=%d\n", t->id, oee_task_status_name(t->status),
         t->result, t->worker_id);
  oee_task_info_unref(t);
}

static void demo_priority(oee_engine *eng) {
  printf("== 1. priority ordering (higher first, FIFO among equals)\n");
  static const struct {
    const char *name;
    int prio;
  } tasks[] = {{"background", 2}, {"normal-a", 5}, {"critical", 9}, {"normal-b", 5}};
  char ids[4][OEE_ID_LEN + 1];
  for (int i = 0; i < 4; i++)
    submit(eng, tasks[i].name, "echo", tasks[i].prio, tasks[i].name, ids[i]);
  oee_engine_start(eng);
  const oee_task_info *done[4];
  for (int i = 0; i < 4; i++) done[i] = wait_done(eng, ids[i]);
  for (int rank = 0; rank < 4; rank++) {
    /* Print in start order. */
    int best = -1;
    for (int i = 0; i < 4; i++) {
      if (done[i] && (best < 0 || done[i]->started_at_ns < done[best]->started_at_ns)) best = i;
    }
    printf("  started #%d: %-10s priority %d\n", rank + 1, done[best]->name, done[best]->priority);
    oee_task_info_unref(done[best]);
    done[best] = NULL;
  }
}

static void demo_pipeline(oee_engine *eng) {
  printf("== 3. pipeline (LOCAL_FAST_PRECISE: echo -> upper)\n");
  oee_stage_spec stages[] = {{"Stage 1", "echo", 0, 0}, {"Stage 2", "upper", 0, 0}};
  oee_pipeline_spec spec = {.pipeline_id = "my_pipeline",
                            .stages = stages,
                            .n_stages = 2,
                            .strategy = OEE_STRATEGY_LOCAL_FAST_PRECISE,
                            .max_time = 30,
                            .max_cost = 10,
                            .priority = 8,
                            .input = "orchestrate me"};
  const oee_task_info *t;
  int rc = oee_engine_submit_pipeline(eng, &spec, &t, NULL);
  if (rc != 0) {
    fprintf(stderr, "pipeline: %s\n", oee_strerror(rc));
    return;
  }
  const oee_task_info *fin = wait_done(eng, t->id);
  oee_pipeline_result *r;
  oee_engine_pipeline_result(eng, t->id, &r);
  printf("pipeline %s: %s output=\"%s\" cost=%.2f\n", r->pipeline_id,
         oee_task_status_name(r->status), r->output, r->total_cost);
  for (size_t i = 0; i < r->n_stages; i++) {
    printf("  stage %-8s model=%-6s %s output=\"%s\"\n", r->stages[i].name, r->stages[i].model_id,
           oee_stage_status_name(r->stages[i].status), r->stages[i].output);
  }
  oee_pipeline_result_free(r);
  oee_task_info_unref(fin);
  oee_task_info_unref(t);
}

static void demo_status(oee_engine *eng) {
  printf("== 4. status monitoring\n");
  oee_status st;
  oee_engine_status(eng, &st);
  printf("running=%d workers=%d queue_size=%llu total=%llu uptime=%.3fs\n", st.running,
         st.num_workers, (unsigned long long)st.queue_size, (unsigned long long)st.total_tasks,
         st.uptime_seconds);
  for (int s = OEE_TASK_QUEUED; s <= OEE_TASK_CANCELLED; s++) {
    printf("  %-9s %llu\n", oee_task_status_name((oee_task_status)s),
           (unsigned long long)st.by_status[s]);
  }
  for (int i = 0; i < st.num_workers; i++) {
    printf("  worker %d busy=%d completed=%llu failed=%llu\n", st.workers[i].worker_id,
           st.workers[i].busy, (unsigned long long)st.workers[i].tasks_completed,
           (unsigned long long)st.workers[i].tasks_failed);
  }
  oee_status_free(&st);
}

int main(void) {
  oee_model_table *models;
  oee_model_table_create(&models);
  const char *upper[] = {"tr", "a-z", "A-Z", NULL};
  oee_model_table_add(models, "upper", upper, 3, 0.5, 0.6, 30);
  oee_engine_config cfg = {.num_workers = 1, .models = models};
  oee_engine *eng;
  if (oee_engine_create(&cfg, &eng) != 0) return 1;
  demo_priority(eng); /* queues before start, then starts the engine */
  demo_basic(eng);
  demo_pipeline(eng);
  demo_status(eng);
  oee_engine_stop(eng, 5000);
  oee_engine_destroy(eng);
  oee_model_table_destroy(models);
  return 0;
}
