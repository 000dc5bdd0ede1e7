/*
 * status.h - GetQueueStatus and GetSystemStatus, as oee_unary_fn handlers
 * (server/handler.h). While the server drains, `running` reads false.
 */
#ifndef OEE_SERVER_STATUS_H
#define OEE_SERVER_STATUS_H

#include "server/handler.h"

grpc_status_code oee_h_queue_status(oee_service *s, const ProtobufCMessage *req, reply_ctx *out);
grpc_status_code oee_h_system_status(oee_service *s, const ProtobufCMessage *req, reply_ctx *out);

#endif /* OEE_SERVER_STATUS_H */
