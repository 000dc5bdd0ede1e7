/*
 * drain.h - the shutdown sequence, driven by the tick hook on the CQ thread.
 *
 *   SERVING   --1st stop request-->  DRAINING: submissions refused, health
 *             NOT_SERVING, a helper thread waits (oee_engine_stop, blocking)
 *             up to drain_timeout for running tasks to finish;
 *   DRAINING  --2nd stop request-->  running tasks cancelled ("stop_now");
 *   DRAINING  --helper done------->  FLUSHING: watchers get the last events
 *             for up to OEE_FLUSH_GRACE_NS (a tenth of it when hurried);
 *   FLUSHING  --flushed/deadline-->  STOPPED: streams end UNAVAILABLE and
 *             the RPC server shuts down, so oee_rpc_server_run() returns.
 */
#ifndef OEE_SERVER_DRAIN_H
#define OEE_SERVER_DRAIN_H

/* How long watchers get for the last events after the engine stopped. */
#define OEE_FLUSH_GRACE_NS 2000000000LL
/* A hurried shutdown gives them this fraction of the grace. */
#define OEE_FLUSH_HURRIED_DIVISOR 10

/* The tick hook (ud is the oee_service): shutdown steps and watch streams.
 * CQ thread. */
void oee_service_tick(void *service);

#endif /* OEE_SERVER_DRAIN_H */
