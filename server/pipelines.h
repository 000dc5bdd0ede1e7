/*
 * pipelines.h - SubmitPipeline and GetPipelineResult, as oee_unary_fn
 * handlers (server/handler.h). The server checks max_stages and the byte
 * limits; the core judges stages, strategy, budgets and priority.
 */
#ifndef OEE_SERVER_PIPELINES_H
#define OEE_SERVER_PIPELINES_H

#include "server/handler.h"

grpc_status_code oee_h_submit_pipeline(oee_service *s, const ProtobufCMessage *req, reply_ctx *out);
grpc_status_code oee_h_pipeline_result(oee_service *s, const ProtobufCMessage *req, reply_ctx *out);

#endif /* OEE_SERVER_PIPELINES_H */
