/*
 * reflection.h - grpc.reflection.v1 and v1alpha ServerReflection over the
 * descriptor sets embedded at build time (see reflection.c).
 */
#ifndef OEE_SERVER_REFLECTION_H
#define OEE_SERVER_REFLECTION_H

#include <stddef.h>

#include "server/rt/rpc_server.h"

typedef struct oee_reflection oee_reflection;

/* Indexes the embedded descriptors and registers both reflection services
 * on srv; `services` (copied) is what list_services answers. */
int oee_reflection_create(oee_rpc_server *srv, const char *const *services, size_t n_services,
                          oee_reflection **out);
void oee_reflection_destroy(oee_reflection *r);

#endif /* OEE_SERVER_REFLECTION_H */
