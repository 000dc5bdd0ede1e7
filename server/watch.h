/*
 * watch.h - WatchTasks: engine subscriptions turned into server streams
 * (DESIGN in watch.c). Everything here runs on the CQ thread, except
 * oee_watch_hub_live().
 */
#ifndef OEE_SERVER_WATCH_H
#define OEE_SERVER_WATCH_H

#include <grpc/status.h>
#include <stddef.h>

#include "server/rt/rpc_server.h"

typedef struct oee_service oee_service;
typedef struct oee_watch_hub oee_watch_hub;

/* Creates the hub of s's streams; the caller owns it. 0 or -1 (memory). */
int oee_watch_hub_create(oee_service *s, oee_watch_hub **out);
/* Frees the hub and the subscriptions left in it; hub may be NULL. */
void oee_watch_hub_destroy(oee_watch_hub *hub);
/* The WatchTasks handler; ctx is the oee_service. */
void oee_watch_handler(oee_rpc_call *call, const ProtobufCMessage *req, void *ctx);
/* Writes pending events to every stream that can take one. */
void oee_watch_hub_pump(oee_watch_hub *hub);
/* 1 when no stream has undelivered events. */
int oee_watch_hub_flushed(oee_watch_hub *hub);
/* Ends every open stream with this status. */
void oee_watch_hub_finish_all(oee_watch_hub *hub, grpc_status_code code, const char *message);
/* Open streams. */
size_t oee_watch_hub_count(oee_watch_hub *hub);
/* The same, from any thread (the metrics endpoint's). */
size_t oee_watch_hub_live(oee_watch_hub *hub);

#endif /* OEE_SERVER_WATCH_H */
