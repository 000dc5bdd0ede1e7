/*
 * harness.h - one fuzz input through one RPC handler of the real service.
 *
 * The service (server/service.c, watch.c, health.c, reflection.c, the core
 * engine with two workers) is built once per process on top of the fake
 * runtime (fake_rpc.h) with small limits, so every limit is reachable. The
 * engine stores its tasks in SQLite (sync NORMAL) in a fresh temporary
 * directory under $TEST_TMPDIR, $TMPDIR or /tmp, removed at a normal exit;
 * OEE_FUZZ_STORE=memory runs it on the memory store instead. Each
 * input is the raw request body of one call; oee_fuzz_rpc() decodes it as the
 * runtime does, runs the handler, drives the call to its end and aborts on
 * a broken invariant:
 *  - every call ends with exactly one reply or one status (a stream: one
 *    status or a client cancel), never a refused second answer; a unary
 *    call within 10 s (a deferred answer comes from the commit thread);
 *  - the status code is one the method may return (API.md's error table);
 *    an error status carries a message;
 *  - every reply and stream message encodes and decodes as the method's
 *    response type;
 *  - call references are balanced and no watcher is left behind;
 *  - the engine's counts agree: the statuses add up to total_tasks and
 *    queue_size equals the QUEUED count (with the SQLite store, once the
 *    commits caught up: within 5 s).
 * Task ids: a task_id (or a WatchTasks task_ids or SubmitTask depends_on
 * entry) that is exactly one digit "0".."3" is replaced by the id of a
 * known task (0: echo DONE,
 * 1: fail ERROR, 2: pipeline DONE, 3: sleep RUNNING), so the fuzzer reaches
 * the found-task paths it could never guess a UUID for.
 */
#ifndef OEE_FUZZ_HARNESS_H
#define OEE_FUZZ_HARNESS_H

#include <stddef.h>
#include <stdint.h>

/* Runs one input as a call of path ("/pkg.Service/Method"). */
void oee_fuzz_rpc(const char *path, const uint8_t *data, size_t size);

#endif /* OEE_FUZZ_HARNESS_H */
