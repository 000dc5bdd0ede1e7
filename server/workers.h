/*
 * workers.h - oee.v1.WorkerService (PollTasks, Heartbeat, CompleteTask,
 * FailTask) as oee_unary_fn handlers (server/handler.h) over the engine's
 * remote-worker calls (core/oee.h "remote workers"); and the remote workers
 * GetSystemStatus lists.
 *
 * DESIGN: PollTasks defers its reply and parks in the engine; the engine
 * answers it from whichever thread leases it tasks or ends its wait
 * (server/handler.h: deferred replies). A client that goes away while its
 * poll waits takes the poll back (on_cancelled, CQ thread); a poll the
 * engine answers first finds the call closed and its leases expire at once
 * (their attempts fail as lost and retry). The poll's record is shared by
 * those two paths and freed by the later (a count of two: the engine's
 * answer or the cancel, and the call's on_done). CompleteTask and FailTask
 * answer once the task's change is stored; Heartbeat at once.
 */
#ifndef OEE_SERVER_WORKERS_H
#define OEE_SERVER_WORKERS_H

#include "oee/v1/orchestrator.pb-c.h"
#include "server/handler.h"

grpc_status_code oee_h_poll_tasks(oee_service *s, const ProtobufCMessage *req, reply_ctx *out);
grpc_status_code oee_h_heartbeat(oee_service *s, const ProtobufCMessage *req, reply_ctx *out);
grpc_status_code oee_h_complete_task(oee_service *s, const ProtobufCMessage *req, reply_ctx *out);
grpc_status_code oee_h_fail_task(oee_service *s, const ProtobufCMessage *req, reply_ctx *out);

/* Fills m->remote_workers (copies in the arena): 0, or -1 when out of
 * memory. */
int oee_pb_remote_workers(oee_arena *a, oee_engine *eng, Oee__V1__SystemStatus *m);

#endif /* OEE_SERVER_WORKERS_H */
