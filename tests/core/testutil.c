/* testutil.c - see testutil.h. */
#include "tests/core/testutil.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

double tu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int tu_no_children(void) { return waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD; }

oee_engine *tu_engine(int workers, const oee_exec_table *commands, const oee_model_table *models) {
  oee_engine_config cfg = {.num_workers = workers, .commands = commands, .models = models};
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

/* The first event of task `id` with one of `sts`: a snapshot subscription
 * sees a change made before the call as well as one made after it. */
static const oee_task_info *wait_event(oee_engine *eng, const char *id, const oee_task_status *sts,
                                       size_t n, double timeout_s) {
  const char *ids[] = {id};
  oee_sub_filter f = {.task_ids = ids, .n_task_ids = 1, .statuses = sts, .n_statuses = n};
  oee_sub *sub;
  if (oee_engine_subscribe(eng, &f, 8, 1, &sub) != 0) return NULL;
  const oee_task_info *t = NULL;
  if (oee_sub_wait(sub, &t, (int64_t)(timeout_s * 1000)) != 0) t = NULL;
  oee_sub_free(sub);
  return t;
}

const oee_task_info *tu_wait_terminal(oee_engine *eng, const char *id, double timeout_s) {
  static const oee_task_status ends[] = {OEE_TASK_DONE, OEE_TASK_ERROR, OEE_TASK_CANCELLED};
  return wait_event(eng, id, ends, 3, timeout_s);
}

int tu_wait_status(oee_engine *eng, const char *id, oee_task_status st, double timeout_s) {
  const oee_task_info *t = wait_event(eng, id, &st, 1, timeout_s);
  oee_task_info_unref(t);
  return t != NULL;
}

/* Processes whose parent is this process (from /proc/<pid>/stat). */
static int count_children(void) {
  DIR *d = opendir("/proc");
  if (d == NULL) return -1;
  int n = 0;
  pid_t self = getpid();
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    char path[300], buf[512];
    snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
    FILE *f = fopen(path, "r");
    if (f == NULL) continue;
    size_t len = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[len] = '\0';
    char *rp = strrchr(buf, ')'); /* the name may hold spaces */
    int ppid;
    if (rp != NULL && sscanf(rp + 1, " %*c %d", &ppid) == 1 && ppid == self) n++;
  }
  closedir(d);
  return n;
}

int tu_wait_children(int n, double timeout_s) {
  double end = tu_now() + timeout_s;
  while (count_children() < n) {
    if (tu_now() >= end) return 0;
    nanosleep(&(struct timespec){0, 1000000}, NULL);
  }
  return 1;
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
  oee_submit req = {
      .name = type, .task_type = type, .priority = 5, .context = ctx, .context_len = n};
  const oee_task_info *t = NULL;
  int rc = oee_engine_submit(eng, &req, &t, NULL);
  if (rc == 0 && id_out != NULL) memcpy(id_out, t->id, OEE_ID_LEN + 1);
  oee_task_info_unref(t);
  return rc;
}

int tu_temp_dir(char *out, size_t cap, const char *name) {
  const char *base = getenv("TEST_TMPDIR");
  int n = snprintf(out, cap, "%s/oee-%s-", base && base[0] ? base : "/tmp", name);
  if (n < 0 || (size_t)n + 7 > cap) return -1;
  memset(out + n, 'X', 6); /* mkdtemp's template: six letters it replaces */
  out[n + 6] = '\0';
  return mkdtemp(out) != NULL ? 0 : -1;
}

int tu_copy_file(const char *from, const char *to) {
  FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
  char buf[8192];
  size_t n;
  int rc = in && out ? 0 : -1;
  while (rc == 0 && (n = fread(buf, 1, sizeof(buf), in)) > 0) {
    if (fwrite(buf, 1, n, out) != n) rc = -1;
  }
  if (in) fclose(in);
  if (out && fclose(out) != 0) rc = -1;
  return rc;
}

int tu_remove_dir(const char *dir) {
  char cmd[512];
  if (snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir) >= (int)sizeof(cmd)) return -1;
  return system(cmd) == 0 ? 0 : -1;
}
