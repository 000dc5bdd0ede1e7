/* pipelines.c - the pipeline RPCs (see pipelines.h). */
#include "server/pipelines.h"

#include <string.h>

#include "core/oee_pipeline.h"
#include "oee/v1/orchestrator.pb-c.h"
#include "server/convert.h"
#include "server/service.h"
#include "server/wire.h"

/* Checks the transport limits of a pipeline; fills the message when hit. */
static int within_limits(const oee_server_config *cfg, reply_ctx *out,
                         const Oee__V1__SubmitPipelineRequest *m) {
  if (m->n_stages > cfg->max_stages) {
    return oee_reply_say(out, "pipeline has %zu stages; the limit max_stages is %zu", m->n_stages,
                         cfg->max_stages);
  }
  size_t input = strlen(m->input ? m->input : ""), name = strlen(m->name ? m->name : "");
  if (input > cfg->max_context_bytes) {
    return oee_reply_say(out, "input is %zu bytes; the limit max_context_bytes is %zu", input,
                         cfg->max_context_bytes);
  }
  if (name > cfg->max_name_bytes || strlen(m->pipeline_id) > cfg->max_name_bytes) {
    return oee_reply_say(out, "name and pipeline_id are limited to max_name_bytes=%zu bytes",
                         cfg->max_name_bytes);
  }
  return 1;
}

/* The request as a core spec; stages live in the reply's arena (NULL when
 * out of memory). */
static oee_stage_spec *pipeline_spec(reply_ctx *out, const Oee__V1__SubmitPipelineRequest *m,
                                     oee_pipeline_spec *spec) {
  oee_stage_spec *stages = oee_arena_alloc(&out->arena, (m->n_stages + 1) * sizeof(*stages));
  if (stages == NULL) return NULL;
  for (size_t i = 0; i < m->n_stages; i++) {
    const Oee__V1__PipelineStage *st = m->stages[i];
    stages[i] = (oee_stage_spec){
        st->name, st->model_id, st->cost_present_case == OEE__V1__PIPELINE_STAGE__COST_PRESENT_COST,
        st->cost};
  }
  int has_prio =
      m->priority_present_case == OEE__V1__SUBMIT_PIPELINE_REQUEST__PRIORITY_PRESENT_PRIORITY;
  *spec = (oee_pipeline_spec){.pipeline_id = m->pipeline_id,
                              .stages = stages,
                              .n_stages = m->n_stages,
                              .strategy = (oee_strategy)m->strategy,
                              .max_time = m->max_time,
                              .max_cost = m->max_cost,
                              .input = m->input,
                              .name = m->name,
                              .priority = has_prio ? m->priority : OEE_PRIORITY_DEFAULT};
  return stages;
}

/* SubmitPipeline's answer, once the pipeline task is stored (commit
 * thread, or inside the engine call with the memory store), written as
 * bytes, which cannot run out (gRPC's allocator aborts). */
static void pipeline_submitted(void *arg, int rc, const oee_task_info *t, const oee_error *err) {
  reply_ctx *out = arg;
  if (rc != 0) {
    oee_error e = {.code = rc};
    oee_reply_send(out, oee_reply_refused(out, err != NULL ? err : &e));
    return;
  }
  /* SubmitPipelineResponse: task_id = 1, task = 2 (server/wire.h). */
  size_t task_size,
      n = oee_wire_str_field_size(1, t->id) + oee_wire_task_field_size(2, t, &task_size);
  uint8_t *p = oee_reply_bytes(out, n);
  p = oee_wire_str_field(p, 1, t->id);
  (void)oee_wire_task_field(p, 2, t, task_size);
  oee_reply_send(out, GRPC_STATUS_OK);
}

grpc_status_code oee_h_submit_pipeline(oee_service *s, const ProtobufCMessage *req,
                                       reply_ctx *out) {
  const Oee__V1__SubmitPipelineRequest *m = (const Oee__V1__SubmitPipelineRequest *)req;
  if (!within_limits(s->cfg, out, m)) return GRPC_STATUS_INVALID_ARGUMENT;
  oee_pipeline_spec spec;
  if (pipeline_spec(out, m, &spec) == NULL) return oee_reply_oom(out);
  oee_reply_defer(out); /* from here the callback may answer at any time */
  oee_error err;
  if (oee_engine_submit_pipeline_async(s->eng, &spec, pipeline_submitted, out, &err) != 0) {
    oee_reply_send(out, oee_reply_refused(out, &err));
  }
  return GRPC_STATUS_OK;
}

static void release_result(void *res) { oee_pipeline_result_free(res); }

grpc_status_code oee_h_pipeline_result(oee_service *s, const ProtobufCMessage *req,
                                       reply_ctx *out) {
  const Oee__V1__GetPipelineResultRequest *m = (const Oee__V1__GetPipelineResultRequest *)req;
  if (!oee_reply_check_id(out, "task_id", m->task_id)) return GRPC_STATUS_INVALID_ARGUMENT;
  oee_pipeline_result *res;
  int rc = oee_engine_pipeline_result(s->eng, m->task_id, &res);
  if (rc != 0) return oee_reply_lookup_failed(out, rc, m->task_id, " or not a pipeline");
  oee_reply_release(out, release_result, res);
  Oee__V1__PipelineResult *pb = oee_pb_pipeline_result(&out->arena, res);
  if (pb == NULL) return oee_reply_oom(out);
  out->msg = &pb->base;
  return GRPC_STATUS_OK;
}
