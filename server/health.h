/*
 * health.h - grpc.health.v1.Health: Check and Watch for "" and
 * "oee.v1.OrchestratorService" (SERVING, NOT_SERVING while draining); any
 * other name is NOT_FOUND (Check) or SERVICE_UNKNOWN (Watch).
 * Everything runs on the CQ thread.
 */
#ifndef OEE_SERVER_HEALTH_H
#define OEE_SERVER_HEALTH_H

#include <grpc/status.h>

#include "server/rt/rpc_server.h"

typedef struct oee_health oee_health;

int oee_health_create(oee_rpc_server *srv, oee_health **out);
/* Frees what is left; the server must have stopped. */
void oee_health_destroy(oee_health *h);
/* Switches every known service to NOT_SERVING and tells the watchers. */
void oee_health_set_not_serving(oee_health *h);
/* Ends every Watch stream (shutdown). */
void oee_health_finish_all(oee_health *h, grpc_status_code code, const char *msg);

#endif /* OEE_SERVER_HEALTH_H */
