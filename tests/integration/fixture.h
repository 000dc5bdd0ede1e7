/*
 * fixture.h - black-box harness for the integration tests: it starts the real
 * oee-server binary on a free loopback port, opens a channel to it and offers
 * small bounded helpers on top of the generated OrchestratorService stubs.
 *
 * DESIGN
 *  - One it_server per spawned process. The server is found through the Bazel
 *    runfiles tree ($TEST_SRCDIR/oee/server/oee-server), started with
 *    posix_spawn, and its "oee-server listening on port N" line is read from a
 *    pipe with a timeout. Its stderr (the log) goes to the test's stderr.
 *  - Every spawned server gets a data directory of its own (--data-dir, a
 *    fresh mkdtemp under $TEST_TMPDIR), so no two servers share a store (the
 *    sqlite store locks its directory, a second server on it refuses to
 *    start) and none writes into the runfiles tree. The directory is removed
 *    once the server is reaped. $OEE_TEST_STORE, when set (the suites'
 *    "_memory" targets set it to "memory"), is passed on as --store; the
 *    default run uses the server's default store.
 *  - Every started server is remembered in a process-wide registry; an atexit
 *    hook and it_server_kill() send SIGKILL to anything still alive, so no
 *    server outlives its test binary even when an assertion fails.
 *  - Every wait is bounded: helpers poll with short sleeps up to a timeout in
 *    milliseconds and report failure instead of blocking.
 *  - it_watch wraps a WatchTasks reader with a watchdog thread: a read that
 *    takes longer than its timeout cancels the stream, so the blocked read
 *    returns (with CANCELLED) instead of hanging the test.
 *
 * Ownership: strings and messages returned by helpers belong to the caller
 * (free() or the typed *_free_unpacked); it_server owns its channel.
 */
#ifndef OEE_TESTS_INTEGRATION_FIXTURE_H
#define OEE_TESTS_INTEGRATION_FIXTURE_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include "oee/v1/orchestrator.grpc-client.h"

/* Default deadline of one unary call made by a helper, in milliseconds. */
#define IT_CALL_MS 10000
/* Default bound of a wait for a task state, in milliseconds. */
#define IT_WAIT_MS 20000

typedef struct it_server {
  pid_t pid;           /* child pid; 0 once reaped */
  int port;            /* bound loopback port */
  char target[64];     /* "127.0.0.1:port" */
  oee_rpc_channel *ch; /* channel to the server, owned */
  int exit_status;     /* raw waitpid status once reaped */
  char data_dir[512];  /* the --data-dir made for it; "" when none or removed */
} it_server;

/* Path of a file in the runfiles tree, e.g. it_runfile("tests/integration/
 * data/tasks.json"). Returns a static buffer valid until the next call. */
const char *it_runfile(const char *rel);

/* Starts the server. config is a file name under tests/integration/data (or
 * NULL for none); args is a NULL-terminated list of extra flags (or NULL);
 * env is a NULL-terminated list of extra "NAME=value" entries (or NULL).
 * "--listen 127.0.0.1:0" is always passed first, then the storage flags:
 * "--store $OEE_TEST_STORE" when that is set and args give no --store, and
 * "--data-dir <a new directory>" unless args give --data-dir or the store is
 * memory (args' own storage flags, and the directory they name, are the
 * caller's). Returns 0, or -1 if the server did not print its port within
 * timeout_ms (it is then killed). */
int it_server_start(it_server *s, const char *config, const char *const *args,
                    const char *const *env, int timeout_ms);
/* Runs the server binary to completion (for startup-error tests), with the
 * same storage flags as it_server_start; returns the raw wait status, or -1
 * on timeout (the process is then killed). */
int it_server_run_to_exit(const char *const *args, int timeout_ms);
/* Restarts the server on its own data directory: closes open watches and
 * the channel, stops the server with SIGTERM (up to timeout_ms), keeping
 * the directory, then starts it again on that directory with config, args
 * and env (as it_server_start; args must not name --data-dir or --store
 * memory) and a new channel. The directory is the new process's to remove
 * once it is reaped. Returns 0 when the old server exited 0 and the new one
 * listens; -1 otherwise (reported on stderr; what is left is killed, the
 * directory removed). Only for a server that has a data directory (not
 * the memory store). */
int it_server_restart(it_server *s, const char *config, const char *const *args,
                      const char *const *env, int timeout_ms);
/* Sends SIGTERM and waits up to timeout_ms. Returns the exit code (0..255),
 * 128+signal if it died of a signal, or -1 on timeout (it is still alive). */
int it_server_stop(it_server *s, int timeout_ms);
/* Waits up to timeout_ms for an already signalled server to exit; same
 * return values as it_server_stop. */
int it_server_wait(it_server *s, int timeout_ms);
/* Kills the server if it is alive, reaps it (which removes its data
 * directory) and closes the channel. Safe to call on a zeroed or already
 * stopped it_server. */
void it_server_kill(it_server *s);
/* Bound of a graceful stop in a teardown, in milliseconds. */
#define IT_STOP_MS 30000
/* The teardown every test shares: closes open watches and the channel, stops
 * the server with SIGTERM (so a sanitizer build reports leaks in its exit
 * status), kills whatever is left. 0 if the server exited 0 (or was not
 * running), -1 otherwise (reported on stderr). */
int it_server_teardown(it_server *s);
/* Whether the process is still running (reaps it if it has exited). */
int it_server_alive(it_server *s);

/* Monotonic clock in milliseconds. */
int64_t it_now_ms(void);
/* Sleeps ms milliseconds. */
void it_sleep_ms(int ms);

/* Submits one task. prio < 0 leaves priority unset. kv is a NULL-terminated
 * list of context keys and values ("message", "hi", NULL). Returns the gRPC
 * status; on OK *id (if id) receives a malloc'd task id. */
int it_submit(oee_rpc_channel *ch, const char *name, const char *type, int prio, char **id,
              const char *const *kv);
/* Convenience: submit and assert OK; returns the malloc'd id. */
char *it_submit_ok(oee_rpc_channel *ch, const char *name, const char *type, int prio,
                   const char *const *kv);
/* GetTask; NULL on any error (the code goes to *code if code). */
Oee__V1__Task *it_get(oee_rpc_channel *ch, const char *id, int *code);
/* Cancels a task; returns the gRPC status, *cancelled gets the flag. */
int it_cancel(oee_rpc_channel *ch, const char *id, int *cancelled);
/* Polls GetTask until the task has `status` or timeout_ms passes. Returns
 * the task (caller frees) or NULL on timeout. */
Oee__V1__Task *it_wait_status(oee_rpc_channel *ch, const char *id, Oee__V1__TaskStatus status,
                              int timeout_ms);
/* Polls until the task is DONE, ERROR or CANCELLED. */
Oee__V1__Task *it_wait_final(oee_rpc_channel *ch, const char *id, int timeout_ms);
/* Polls GetSystemStatus until `busy` workers are busy; 0 or -1 on timeout. */
int it_wait_busy(oee_rpc_channel *ch, int busy, int timeout_ms);
/* GetQueueStatus tasks_by_status[key], or -1. */
int it_count(oee_rpc_channel *ch, const char *key);
/* A context value of a task, or NULL. */
const char *it_ctx(const Oee__V1__Task *t, const char *key);
/* Seconds of a Timestamp as a double; 0 for NULL. */
double it_ts(const Google__Protobuf__Timestamp *ts);

/* A WatchTasks stream read by a background thread into a queue, so that a
 * read with a timeout never disturbs the stream. Events of tasks whose name
 * starts with IT_PROBE are not queued but counted (see it_watch_sync). */
#define IT_PROBE "it-probe"

typedef struct it_event_node {
  Oee__V1__TaskEvent *ev;
  struct it_event_node *next;
} it_event_node;

typedef struct it_watch {
  oee_rpc_reader *r;
  pthread_t th;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  it_event_node *head, *tail; /* queued events; guarded by mu */
  long probes;                /* probe events seen; guarded by mu */
  int ended;                  /* stream over, st valid; guarded by mu */
  oee_rpc_status st;          /* final status; guarded by mu */
} it_watch;

/* Opens a watch with req; returns a heap object, or NULL. The stream also
 * carries an overall deadline of 120 s as a last resort. Open watches are
 * remembered so that it_watch_close_all() can end them in a teardown even
 * when an assertion left the test early. */
it_watch *it_watch_open(oee_rpc_channel *ch, const Oee__V1__WatchTasksRequest *req);
/* Waits until the server has registered the watcher: submits a task named
 * IT_PROBE of probe_type ("echo", "fail": whatever the filter lets through)
 * and waits for one of its events, repeating up to timeout_ms. 0 or -1. */
int it_watch_sync(it_watch *w, oee_rpc_channel *ch, const char *probe_type, int timeout_ms);
/* Waits until every watch opened earlier on ch is registered by the server,
 * for watches whose filters no probe can pass: opens an unfiltered watch
 * after them and syncs it (it_watch_sync). Calls of one method on one
 * channel reach the server's handler in the order they were started, so
 * when the later watch sees a probe the earlier ones are in place. 0 or -1. */
int it_watch_registered(oee_rpc_channel *ch, int timeout_ms);
/* Next event within timeout_ms: 1 with *ev (caller frees); 0 at the end of
 * the stream with the final status copied to *st (st may be NULL; free it
 * with oee_rpc_status_free); -2 on timeout (the stream is left alone). */
int it_watch_next(it_watch *w, Oee__V1__TaskEvent **ev, oee_rpc_status *st, int timeout_ms);
/* Cancels the call from the client side (the stream then ends CANCELLED). */
void it_watch_cancel(it_watch *w);
/* Closes the stream, joins the reader and frees w; w may be NULL. */
void it_watch_close(it_watch *w);
/* Closes every watch still open (call before destroying their channel). */
void it_watch_close_all(void);

/* Opens a plain raw gRPC call with arbitrary request bytes (for the
 * malformed-body test). Returns the status code; *msg gets a malloc'd status
 * message (or NULL) if msg is not NULL. */
int it_raw_unary(const char *target, const char *method, const void *body, size_t len,
                 int timeout_ms, char **msg);

#endif /* OEE_TESTS_INTEGRATION_FIXTURE_H */
