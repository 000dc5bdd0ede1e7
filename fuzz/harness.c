/* harness.c - the RPC fuzz harness (see harness.h). The fuzzer's thread
 * plays the CQ thread; the engine's two workers run tasks. With the SQLite
 * store (the default) the engine's commit thread sends the deferred unary
 * answers (SubmitTask(s), SubmitPipeline, CancelTask of a queued task,
 * ClearCompletedTasks), and the harness waits for them (oee_fake_wait);
 * with OEE_FUZZ_STORE=memory every answer comes before the handler
 * returns. */
#include "fuzz/harness.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/oee.h"
#include "fuzz/fake_rpc.h"
#include "oee/v1/orchestrator.pb-c.h"
#include "server/config.h"
#include "server/drain.h"
#include "server/service.h"
#include "server/watch.h"

/* Small limits: every refusal is a few bytes of input away. */
static const char fuzz_config[] =
    "{\"workers\": 2, \"max_queue\": 8, \"max_batch\": 16, \"watch_buffer\": 16,"
    " \"max_watchers\": 2, \"max_name_bytes\": 32, \"max_type_bytes\": 16,"
    " \"max_context_entries\": 4, \"max_context_bytes\": 256, \"max_stages\": 4,"
    " \"max_result_bytes\": 16, \"max_schedules\": 4, \"remote_types\": [\"remote\"]}";

#define N_KNOWN 4
#define STORE_HIGH_WATER 256 /* tasks kept before the store is cleared */
/* How long a unary call may take to be answered, in ms: a deferred answer
 * waits for a commit, which takes milliseconds even on a loaded machine. */
#define UNARY_DEADLINE_MS 10000
/* How long the stored counts may lag the queue, in ms (see check_engine). */
#define COUNTS_DEADLINE_MS 5000

typedef struct env {
  oee_server_config cfg;
  oee_engine *eng;
  oee_rpc_server *srv;
  oee_service svc;
  char known[N_KNOWN][OEE_ID_LEN + 1];
} env;

static env *the_env;
/* The SQLite store's directory, made by mkdtemp; "" with the memory store. */
static char store_dir[4096];

static const char *no_env(const char *name) {
  (void)name;
  return NULL;
}

static void die(const char *what, const char *path, const oee_fake_outcome *o) {
  fprintf(stderr, "fuzz invariant broken: %s (method %s, code %d, message \"%s\")\n", what, path,
          o ? (int)o->code : -1, o ? o->message : "");
  if (store_dir[0]) fprintf(stderr, "fuzz: the store is kept in %s\n", store_dir);
  abort();
}

static void sleep_ms(int ms) {
  struct timespec ts = {0, ms * 1000000L};
  nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------------ store */

/* 1 for OEE_FUZZ_STORE=memory, 0 for the default SQLite store. */
static int memory_store(void) {
  const char *v = getenv("OEE_FUZZ_STORE");
  if (v == NULL || v[0] == '\0' || strcmp(v, "sqlite") == 0) return 0;
  if (strcmp(v, "memory") == 0) return 1;
  fprintf(stderr, "fuzz: OEE_FUZZ_STORE=%s is neither sqlite nor memory\n", v);
  abort();
}

/* Makes a fresh store_dir under $TEST_TMPDIR (bazel test), $TMPDIR or
 * /tmp, so every process starts from an empty database. */
static void store_dir_make(void) {
  const char *base = getenv("TEST_TMPDIR");
  if (base == NULL || base[0] == '\0') base = getenv("TMPDIR");
  if (base == NULL || base[0] == '\0') base = "/tmp";
  int n = snprintf(store_dir, sizeof(store_dir), "%s/oee-fuzz-", base);
  int fits = n >= 0 && (size_t)n + 7 <= sizeof(store_dir);
  if (fits) {
    memset(store_dir + n, 'X', 6); /* mkdtemp's template */
    store_dir[n + 6] = '\0';
  }
  if (!fits || mkdtemp(store_dir) == NULL) {
    fprintf(stderr, "fuzz: cannot make a store directory under %s: %s\n", base, strerror(errno));
    abort();
  }
}

/* Removes store_dir and the files the store made in it (oee.db and its
 * -wal and -shm; the store makes no subdirectories). */
static void store_dir_remove(void) {
  DIR *d = opendir(store_dir);
  if (d != NULL) {
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
      if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
        unlinkat(dirfd(d), de->d_name, 0);
      }
    }
    closedir(d);
  }
  if (rmdir(store_dir) != 0) {
    fprintf(stderr, "fuzz: cannot remove %s: %s\n", store_dir, strerror(errno));
  }
}

/* At exit, with the SQLite store: the engine stops writing (destroyed, with
 * everything around it) before its directory is removed. Not reached when
 * the process dies on a finding; the directory then stays for a look. */
static void env_teardown(void) {
  env *e = the_env;
  the_env = NULL;
  if (e != NULL) {
    oee_rpc_server_destroy(e->srv);
    oee_service_fini(&e->svc);
    oee_engine_destroy(e->eng);
    oee_server_config_free(&e->cfg);
    free(e);
  }
  store_dir_remove();
}

/* Creates and starts the engine on the store OEE_FUZZ_STORE chooses. */
static void engine_open(env *e) {
  oee_engine_config ec = {.num_workers = e->cfg.workers,
                          .max_queue = e->cfg.max_queue,
                          .result_max_bytes = e->cfg.max_result_bytes,
                          .commands = e->cfg.commands,
                          .models = e->cfg.models,
                          .max_schedules = e->cfg.max_schedules,
                          .remote_types = (const char *const *)e->cfg.remote_types,
                          .n_remote_types = e->cfg.n_remote_types};
  if (!memory_store()) {
    store_dir_make();
    if (atexit(env_teardown) != 0) abort();
    ec.data_dir = store_dir;
    ec.sync_normal = 1; /* no fsync per commit: a fuzz store need not survive power loss */
  }
  oee_error err = {0};
  if (oee_engine_open(&ec, &e->eng, &err) != 0 || oee_engine_start(e->eng) != 0) {
    fprintf(stderr, "fuzz: cannot start the engine in %s: %s\n",
            store_dir[0] ? store_dir : "memory", err.message);
    abort();
  }
}

/* ------------------------------------------------------------ known tasks */

static int submit(env *e, const char *type, const char *key, const char *value, char *id_out) {
  oee_kv kv = {key, value};
  oee_submit req = {.name = "fuzz-known",
                    .task_type = type,
                    .priority = 5,
                    .context = key ? &kv : NULL,
                    .context_len = key ? 1 : 0};
  const oee_task_info *t;
  if (oee_engine_submit(e->eng, &req, &t, NULL) != 0) return -1;
  memcpy(id_out, t->id, OEE_ID_LEN + 1);
  oee_task_info_unref(t);
  return 0;
}

static int submit_pipeline(env *e, char *id_out) {
  oee_stage_spec st = {"one", "echo", 0, 0};
  oee_pipeline_spec spec = {.pipeline_id = "fuzz",
                            .stages = &st,
                            .n_stages = 1,
                            .strategy = OEE_STRATEGY_LOCAL_FAST_PRECISE,
                            .input = "in",
                            .name = "fuzz-pipeline",
                            .priority = OEE_PRIORITY_DEFAULT};
  const oee_task_info *t;
  if (oee_engine_submit_pipeline(e->eng, &spec, &t, NULL) != 0) return -1;
  memcpy(id_out, t->id, OEE_ID_LEN + 1);
  oee_task_info_unref(t);
  return 0;
}

static oee_task_status status_of(env *e, const char *id) {
  const oee_task_info *t;
  if (oee_engine_get(e->eng, id, &t) != 0) return OEE_TASK_UNSPECIFIED;
  oee_task_status s = t->status;
  oee_task_info_unref(t);
  return s;
}

/* Makes sure the four known tasks exist in their expected states: a known
 * task that is gone or ended otherwise (an input cancelled or cleared it) is
 * submitted again; then waits until each has reached its state. */
static void reseed(env *e) {
  static const oee_task_status want[N_KNOWN] = {OEE_TASK_DONE, OEE_TASK_ERROR, OEE_TASK_DONE,
                                                OEE_TASK_RUNNING};
  for (int waited = 0; waited < 5000; waited++) {
    int ready = 1;
    for (int i = 0; i < N_KNOWN; i++) {
      oee_task_status s = status_of(e, e->known[i]);
      if (s == want[i]) continue;
      ready = 0;
      if (s == OEE_TASK_QUEUED || (s == OEE_TASK_RUNNING && i != 3)) continue;
      int rc = i == 0   ? submit(e, "echo", "message", "known", e->known[i])
               : i == 1 ? submit(e, "fail", "message", "known failure", e->known[i])
               : i == 2 ? submit_pipeline(e, e->known[i])
                        : submit(e, "sleep", "seconds", "100000", e->known[i]);
      if (rc != 0) die("cannot submit a known task", "reseed", NULL);
    }
    if (ready) return;
    sleep_ms(1);
  }
  die("known tasks did not reach their states within 5 s", "reseed", NULL);
}

static env *env_get(void) {
  if (the_env) return the_env;
  env *e = calloc(1, sizeof(*e));
  char err[512];
  char *argv[] = {"oee-fuzz", NULL};
  if (e == NULL || oee_server_config_load(&e->cfg, 1, argv, no_env, err, sizeof(err)) != 0 ||
      oee_server_config_apply_json(&e->cfg, fuzz_config, "fuzz", err, sizeof(err)) != 0) {
    fprintf(stderr, "fuzz config: %s\n", err);
    abort();
  }
  engine_open(e);
  e->srv = oee_rpc_server_create("fuzz:0", NULL, NULL);
  char why[512];
  if (e->srv == NULL ||
      oee_service_init(&e->svc, e->eng, &e->cfg, e->srv, NULL, why, sizeof(why)) != 0 ||
      oee_rpc_server_start(e->srv) != 0) {
    abort();
  }
  oee_rpc_server_set_tick(e->srv, oee_service_tick, &e->svc, 50);
  reseed(e);
  the_env = e;
  return e;
}

/* -------------------------------------------------------- request patches */

/* The request lives in the call's arena, freed as a whole: the field is
 * pointed at the known id (which outlives every call), not copied. */
static void patch_id(env *e, char **field) {
  const char *v = *field;
  if (v == NULL || v[0] < '0' || v[0] >= '0' + N_KNOWN || v[1] != '\0') return;
  *field = e->known[v[0] - '0'];
}

/* Cuts a double field `name` in (most, limit] down to `most`: a poll that
 * waits its full 60 s, or a lease held for an hour, would only slow the
 * run; values outside the contract's range are left to be refused. */
static void patch_seconds(ProtobufCMessage *req, const char *name, double most, double limit) {
  const ProtobufCFieldDescriptor *f =
      protobuf_c_message_descriptor_get_field_by_name(req->descriptor, name);
  if (f == NULL || f->type != PROTOBUF_C_TYPE_DOUBLE) return;
  double *v = (double *)((char *)req + f->offset);
  if (*v > most && *v <= limit) *v = most;
}

/* Replaces one-digit task ids (see harness.h), generically by field name. */
static void patch_request(ProtobufCMessage *req, void *ud) {
  if (req->descriptor == &oee__v1__poll_tasks_request__descriptor) {
    Oee__V1__PollTasksRequest *poll = (Oee__V1__PollTasksRequest *)req;
    if (!poll->wait_seconds_present_case) { /* unset waits 30 s */
      poll->wait_seconds_present_case =
          OEE__V1__POLL_TASKS_REQUEST__WAIT_SECONDS_PRESENT_WAIT_SECONDS;
      poll->wait_seconds = 0.05;
    }
  }
  patch_seconds(req, "wait_seconds", 0.05, OEE_POLL_MAX_WAIT_SECONDS);
  patch_seconds(req, "lease_seconds", 2, OEE_LEASE_MAX_SECONDS);
  patch_seconds(req, "extend_seconds", 2, OEE_LEASE_MAX_SECONDS);
  const ProtobufCFieldDescriptor *f =
      protobuf_c_message_descriptor_get_field_by_name(req->descriptor, "task_id");
  if (f && f->type == PROTOBUF_C_TYPE_STRING && f->label != PROTOBUF_C_LABEL_REPEATED) {
    patch_id(ud, (char **)((char *)req + f->offset));
  }
  static const char *const lists[] = {"task_ids", "depends_on"};
  for (size_t l = 0; l < sizeof(lists) / sizeof(lists[0]); l++) {
    f = protobuf_c_message_descriptor_get_field_by_name(req->descriptor, lists[l]);
    if (f && f->type == PROTOBUF_C_TYPE_STRING && f->label == PROTOBUF_C_LABEL_REPEATED) {
      size_t n = *(size_t *)((char *)req + f->quantifier_offset);
      char **ids = *(char ***)((char *)req + f->offset);
      for (size_t i = 0; i < n; i++) patch_id(ud, &ids[i]);
    }
  }
}

/* -------------------------------------------------------------- invariants */

typedef struct allowed {
  const char *method; /* path suffix after the last '/' */
  unsigned codes;     /* bit per grpc_status_code */
} allowed;

#define B(code) (1u << GRPC_STATUS_##code)

/* API.md's error table. Streams may also end UNAVAILABLE (server stop) or
 * RESOURCE_EXHAUSTED (fell behind). With the SQLite store a write that
 * fails answers UNAVAILABLE "storage: ..." (the submissions, also inside a
 * SubmitTasks result, and ClearCompletedTasks), and a CancelTask whose
 * change the engine stopped before storing is UNAVAILABLE too; neither is
 * listed: the store is a fresh directory on a working disk and the engine
 * never stops while inputs run, so such a code would be a finding (or a
 * broken machine), not a case to accept. */
static const allowed allowed_codes[] = {
    {"SubmitTask", B(OK) | B(INVALID_ARGUMENT) | B(RESOURCE_EXHAUSTED)},
    {"SubmitTasks", B(OK) | B(INVALID_ARGUMENT)},
    {"CancelTask", B(OK) | B(INVALID_ARGUMENT) | B(NOT_FOUND)},
    {"GetTask", B(OK) | B(INVALID_ARGUMENT) | B(NOT_FOUND)},
    {"ListTasks", B(OK) | B(INVALID_ARGUMENT)},
    {"GetQueueStatus", B(OK) | B(INVALID_ARGUMENT)},
    {"GetSystemStatus", B(OK) | B(INVALID_ARGUMENT)},
    {"ClearCompletedTasks", B(OK) | B(INVALID_ARGUMENT)},
    {"SubmitPipeline", B(OK) | B(INVALID_ARGUMENT) | B(RESOURCE_EXHAUSTED)},
    {"GetPipelineResult", B(OK) | B(INVALID_ARGUMENT) | B(NOT_FOUND)},
    {"WatchTasks", B(OK) | B(INVALID_ARGUMENT) | B(RESOURCE_EXHAUSTED) | B(UNAVAILABLE)},
    {"RetryTask",
     B(OK) | B(INVALID_ARGUMENT) | B(NOT_FOUND) | B(FAILED_PRECONDITION) | B(RESOURCE_EXHAUSTED)},
    {"CreateSchedule", B(OK) | B(INVALID_ARGUMENT) | B(ALREADY_EXISTS) | B(RESOURCE_EXHAUSTED)},
    {"GetSchedule", B(OK) | B(INVALID_ARGUMENT) | B(NOT_FOUND)},
    {"ListSchedules", B(OK) | B(INVALID_ARGUMENT)},
    {"DeleteSchedule", B(OK) | B(INVALID_ARGUMENT) | B(NOT_FOUND)},
    {"PauseSchedule", B(OK) | B(INVALID_ARGUMENT) | B(NOT_FOUND)},
    {"ResumeSchedule", B(OK) | B(INVALID_ARGUMENT) | B(NOT_FOUND)},
    {"PollTasks", B(OK) | B(INVALID_ARGUMENT)},
    {"Heartbeat", B(OK) | B(INVALID_ARGUMENT)},
    {"CompleteTask", B(OK) | B(INVALID_ARGUMENT) | B(NOT_FOUND) | B(FAILED_PRECONDITION)},
    {"FailTask", B(OK) | B(INVALID_ARGUMENT) | B(NOT_FOUND) | B(FAILED_PRECONDITION)},
    {"Check", B(OK) | B(INVALID_ARGUMENT) | B(NOT_FOUND)},
    {"Watch", B(OK) | B(INVALID_ARGUMENT) | B(UNAVAILABLE)},
    {"ServerReflectionInfo", B(OK) | B(INVALID_ARGUMENT) | B(UNAVAILABLE)},
};

static unsigned allowed_for(const char *path) {
  const char *name = strrchr(path, '/') + 1;
  for (size_t i = 0; i < sizeof(allowed_codes) / sizeof(allowed_codes[0]); i++) {
    if (strcmp(allowed_codes[i].method, name) == 0) return allowed_codes[i].codes;
  }
  die("no allowed-code list for the method", path, NULL);
  return 0;
}

/* 1 when the engine's counts agree: the statuses add up to total_tasks and
 * queue_size is the QUEUED count. */
static int counts_agree(env *e, const char *path) {
  oee_status st;
  if (oee_engine_status(e->eng, &st) != 0) die("engine status failed", path, NULL);
  uint64_t sum = 0;
  for (int i = 1; i < OEE_TASK_STATUS_COUNT; i++) sum += st.by_status[i];
  int ok = sum == st.total_tasks && st.queue_size == st.by_status[OEE_TASK_QUEUED] &&
           st.by_status[OEE_TASK_UNSPECIFIED] == 0 && st.num_workers == e->cfg.workers;
  oee_status_free(&st);
  return ok;
}

/* With the memory store the counts agree at every moment. With the SQLite
 * store by_status counts the stored rows while queue_size is the queue in
 * memory, so they disagree until the commits catch up: a task a worker took
 * is QUEUED on disk until its RUNNING change is committed, and a stored
 * submission joins the queue just after its commit. There they must agree
 * within COUNTS_DEADLINE_MS. */
static void check_engine(env *e, const char *path) {
  for (int waited = 0; !counts_agree(e, path); waited++) {
    if (store_dir[0] == '\0' || waited >= COUNTS_DEADLINE_MS) {
      die("engine counts disagree", path, NULL);
    }
    sleep_ms(1);
  }
}

/* SubmitTasks: every result carries an allowed code (FAILED_PRECONDITION:
 * a "#<index>" reference to an entry that was refused), and an id iff OK. */
static void check_batch(const oee_fake_outcome *o, const char *path) {
  Oee__V1__SubmitTasksResponse *r =
      oee__v1__submit_tasks_response__unpack(NULL, o->reply_len, o->reply);
  if (r == NULL) die("SubmitTasks reply does not decode", path, o);
  for (size_t i = 0; i < r->n_results; i++) {
    const Oee__V1__SubmitTaskResult *x = r->results[i];
    unsigned bit = 1u << (unsigned)x->code;
    int ok =
        (unsigned)x->code < 32 &&
        (bit & (B(OK) | B(INVALID_ARGUMENT) | B(RESOURCE_EXHAUSTED) | B(FAILED_PRECONDITION))) &&
        (x->code == 0 ? oee_id_valid(x->task_id) && x->task != NULL : x->message[0] != '\0');
    if (!ok) {
      oee__v1__submit_tasks_response__free_unpacked(r, NULL);
      die("SubmitTasks result with a bad code, id or message", path, o);
    }
  }
  oee__v1__submit_tasks_response__free_unpacked(r, NULL);
}

static void check_outcome(env *e, const char *path, const oee_fake_outcome *o) {
  unsigned codes = allowed_for(path);
  if (o->replies + o->statuses > 1) die("call answered more than once", path, o);
  if (o->refused) die("a handler wrote to a call that could not take it", path, o);
  if (o->bad_messages) die("a reply or message does not encode as the response type", path, o);
  if ((unsigned)o->code >= 32 || !((1u << o->code) & codes))
    die("status code not allowed", path, o);
  if (o->code != GRPC_STATUS_OK && o->message[0] == '\0') die("error without a message", path, o);
  if (o->replies && strcmp(strrchr(path, '/') + 1, "SubmitTasks") == 0) check_batch(o, path);
  if (o->replies && strcmp(strrchr(path, '/') + 1, "SubmitTask") == 0) {
    Oee__V1__SubmitTaskResponse *r =
        oee__v1__submit_task_response__unpack(NULL, o->reply_len, o->reply);
    int ok = r && status_of(e, r->task_id) != OEE_TASK_UNSPECIFIED;
    if (r) oee__v1__submit_task_response__free_unpacked(r, NULL);
    if (!ok) die("acknowledged task is not in the store", path, o);
  }
}

/* --------------------------------------------------------------- cleanup */

/* Cancels what the input queued or started (except the known sleeper) so
 * the queue limit does not carry over, and clears the store now and then. */
static void cleanup(env *e) {
  for (int s = OEE_TASK_QUEUED; s <= OEE_TASK_RUNNING; s++) {
    oee_list_query q = {.status = (oee_task_status)s, .limit = 1000};
    oee_list_page page;
    if (oee_engine_list(e->eng, &q, &page) != 0) abort();
    for (size_t i = 0; i < page.len; i++) {
      if (strcmp(page.tasks[i]->id, e->known[3]) == 0) continue;
      int cancelled;
      oee_engine_cancel(e->eng, page.tasks[i]->id, &cancelled, NULL);
    }
    oee_list_page_free(&page);
  }
  oee_status st;
  if (oee_engine_status(e->eng, &st) != 0) abort();
  uint64_t total = st.total_tasks;
  oee_status_free(&st);
  if (total > STORE_HIGH_WATER) oee_engine_clear_completed(e->eng, 0);
  reseed(e);
}

/* ------------------------------------------------------------------ run */

/* Waits until a unary call was answered and let go: with the SQLite store
 * a deferred answer comes from the commit thread. */
static void unary_wait(oee_rpc_call *call, const char *path, const oee_fake_outcome *o) {
  if (oee_fake_wait(call, UNARY_DEADLINE_MS)) return;
  if (!oee_fake_ended(call)) die("unary call left unanswered", path, o);
  die("call references left unbalanced", path, o);
}

/* Drives a stream as the CQ loop would: delivers the input as the one
 * client message of a bidi call, completes writes and ticks. */
static void stream_drive(env *e, oee_rpc_call *call, const uint8_t *data, size_t size) {
  if (oee_rpc_call_method(call)->client_streaming) {
    /* Bidi: the input is the one client message, then a half-close. */
    oee_fake_deliver(call, data, size, 0);
    oee_fake_deliver(call, NULL, 0, 1);
  }
  for (int i = 0; i < 64 && !oee_fake_ended(call); i++) {
    if (!oee_fake_complete_write(call)) oee_fake_tick(e->srv);
  }
  if (!oee_fake_ended(call) && size > 0 && (data[0] & 1)) {
    /* Half the streams end from the server side, as on shutdown. */
    oee_watch_hub_finish_all(e->svc.hub, GRPC_STATUS_UNAVAILABLE, "fuzz: server stopping");
    oee_health_finish_all(e->svc.health, GRPC_STATUS_UNAVAILABLE, "fuzz: server stopping");
  }
}

void oee_fuzz_rpc(const char *path, const uint8_t *data, size_t size) {
  env *e = env_get();
  oee_fake_outcome o;
  oee_rpc_call *call = oee_fake_start(e->srv, path, data, size, patch_request, e, &o);
  if (call) {
    if (oee_rpc_call_method(call)->server_streaming) {
      stream_drive(e, call, data, size);
    } else {
      unary_wait(call, path, &o);
    }
    if (oee_fake_end(call) != 0) die("call references left unbalanced", path, &o);
  }
  check_outcome(e, path, &o);
  if (oee_watch_hub_count(e->svc.hub) != 0) die("a watcher outlived its call", path, &o);
  if (oee_rpc_server_live_calls(e->srv) != 0) die("a call outlived the input", path, &o);
  oee_fake_outcome_free(&o);
  check_engine(e, path);
  cleanup(e);
}
