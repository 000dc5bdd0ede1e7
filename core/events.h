/*
 * events.h - the event bus behind oee_engine_subscribe().
 *
 * DESIGN: producers are the engine's submit, cancel, worker and completion
 * paths; each change is published with the engine lock held, which is what
 * gives all subscribers one order (sequence numbers strictly increase, and
 * a task's events arrive in lifecycle order). Publishing only appends a
 * snapshot reference to the ring of every matching subscriber, O(1) each;
 * it never waits: a subscriber whose ring is full is marked dropped and
 * detached. Consumers read their own ring from any thread.
 * Locks: `bus->lock` guards the subscriber list and every ring.
 * Lock order: engine lock -> bus lock. Nothing is called out with it held.
 */
#ifndef OEE_EVENTS_H
#define OEE_EVENTS_H

#include "core/oee.h"

typedef struct oee_bus oee_bus;

int oee__bus_create(oee_bus **out);
/* All subscriptions must be freed first. */
void oee__bus_destroy(oee_bus *bus);
/* Appends `snap` to every matching subscriber (engine lock held). */
void oee__bus_publish(oee_bus *bus, const oee_task_info *snap);
/* 1 when at least one subscriber is attached (a racy hint). */
int oee__bus_has_subscribers(oee_bus *bus);
/*
 * Attaches a subscriber whose ring starts with `initial` (references are
 * taken). Called with the engine lock held so nothing is missed between the
 * initial events and the live ones. OEE_EOVERFLOW when `n_initial` exceeds
 * the capacity.
 */
int oee__bus_subscribe(oee_bus *bus, const oee_sub_filter *filter,
                       size_t capacity, const oee_task_info *const *initial,
                       size_t n_initial, oee_sub **out);

#endif /* OEE_EVENTS_H */
