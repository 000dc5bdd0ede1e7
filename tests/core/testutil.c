/* testutil.c - see testutil.h. */
#include "tests/core/testutil.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

double tu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int tu_no_children(void) {
  return waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD;
}

oee_engine *tu_engine(int workers, const oee_exec_table *commands,
                      const oee_model_table *models) {
  oee_engine_config cfg = {.num_workers = workers, .commands = commands,
                           .models = models};
  oee_engine *eng = NULL;
  if (oee_engine_create(&cfg, &eng) != 0) return NULL;
  if (oee_engine_start(eng) != 0) {
    oee_engine_destroy(eng);
    return NULL;
  }
  return eng;
}

void tu_engine_free(oee_engine *eng) {
  if (eng == NULL) return;
  oee_engine_stop(eng, 0);
  oee_engine_destroy(eng);
}

const oee_task_info *tu_wait_terminal(oee_engine *eng, const char *id,
                                      double timeout_s) {
  double end = tu_now() + timeout_s;
  do {
    const oee_task_info *t = NULL;
    if (oee_engine_get(eng, id, &t) != 0) return NULL;
    if (oee_task_status_is_terminal(t->status)) return t;
    oee_task_info_unref(t);
    usleep(5000);
  } while (tu_now() < end);
  return NULL;
}

int tu_wait_status(oee_engine *eng, const char *id, oee_task_status st,
                   double timeout_s) {
  double end = tu_now() + timeout_s;
  do {
    const oee_task_info *t = NULL;
    if (oee_engine_get(eng, id, &t) != 0) return 0;
    int ok = t->status == st;
    oee_task_info_unref(t);
    if (ok) return 1;
    usleep(5000);
  } while (tu_now() < end);
  return 0;
}

int tu_submit(oee_engine *eng, const char *type, char *id_out, size_t n, ...) {
  oee_kv ctx[8];
  va_list ap;
  if (n > 8) return OEE_EINVAL;
  va_start(ap, n);
  for (size_t i = 0; i < n; i++) {
    ctx[i].key = va_arg(ap, const char *);
    ctx[i].value = va_arg(ap, const char *);
  }
  va_end(ap);
  oee_submit req = {.name = type, .task_type = type, .priority = 5,
                    .context = ctx, .context_len = n};
  const oee_task_info *t = NULL;
  int rc = oee_engine_submit(eng, &req, &t, NULL);
  if (rc == 0 && id_out != NULL) memcpy(id_out, t->id, OEE_ID_LEN + 1);
  oee_task_info_unref(t);
  return rc;
}
