/*
 * schedules.h - the cron schedule RPCs (CreateSchedule, GetSchedule,
 * ListSchedules, DeleteSchedule, PauseSchedule, ResumeSchedule), as
 * oee_unary_fn handlers (server/handler.h). ListSchedules' page_token is
 * the last schedule_id of the page before.
 */
#ifndef OEE_SERVER_SCHEDULES_H
#define OEE_SERVER_SCHEDULES_H

#include "server/handler.h"

grpc_status_code oee_h_create_schedule(oee_service *s, const ProtobufCMessage *req, reply_ctx *out);
grpc_status_code oee_h_get_schedule(oee_service *s, const ProtobufCMessage *req, reply_ctx *out);
grpc_status_code oee_h_list_schedules(oee_service *s, const ProtobufCMessage *req, reply_ctx *out);
grpc_status_code oee_h_delete_schedule(oee_service *s, const ProtobufCMessage *req, reply_ctx *out);
grpc_status_code oee_h_pause_schedule(oee_service *s, const ProtobufCMessage *req, reply_ctx *out);
grpc_status_code oee_h_resume_schedule(oee_service *s, const ProtobufCMessage *req, reply_ctx *out);

#endif /* OEE_SERVER_SCHEDULES_H */
