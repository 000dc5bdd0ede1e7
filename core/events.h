/*
 * events.h - the event bus behind oee_engine_subscribe() (the design is at
 * the top of events.c).
 *
 * Publishing is split in two so that the engine lock covers only O(1) work:
 * oee__bus_publish() appends a snapshot reference to the bus log with the
 * engine lock held (that is what gives every change its place in the one
 * sequence order), and oee__bus_flush(), called after the engine lock is
 * released, fans the log out to the subscribers' rings.
 * Lock order: engine lock -> bus fan lock -> bus log lock.
 */
#ifndef OEE_EVENTS_H
#define OEE_EVENTS_H

#include <stdint.h>

#include "core/oee.h"

typedef struct oee_bus oee_bus;

int oee__bus_create(oee_bus **out);
/* All subscriptions must be freed first. */
void oee__bus_destroy(oee_bus *bus);

/* The seq of the last event published (caller holds the publishers' lock):
 * a subscriber attached with it as its start misses nothing published
 * later. With a durable engine it may be behind the engine's last seq
 * (changes numbered, not stored yet). */
uint64_t oee__bus_published(const oee_bus *b);

/*
 * Appends `snap` (a reference is taken) to the log when anyone subscribes.
 * Called with the engine lock held, in seq order. O(1), except when the log
 * is full: then the caller fans it out itself before appending.
 */
void oee__bus_publish(oee_bus *bus, const oee_task_info *snap);
/*
 * Delivers logged events to the subscribers, unless another thread is
 * already doing it (that thread then delivers these too). Called after
 * every engine critical section that published, with no engine lock held.
 */
void oee__bus_flush(oee_bus *bus);
/* Subscribers attached (a racy hint; a dropped subscriber counts until the
 * fan-out noticed it, see oee__bus_flush()). */
int oee__bus_has_subscribers(oee_bus *bus);

/*
 * A subscription not yet attached: the filter is copied and the ring of
 * `capacity` events (0 = OEE_DEFAULT_SUB_CAPACITY) allocated. No lock is
 * taken. Free with oee_sub_free() if it never gets attached.
 */
int oee__sub_create(oee_bus *bus, const oee_sub_filter *filter, size_t capacity, oee_sub **out);
/*
 * Attaches `sub` with `initial` (references are taken) first in its ring;
 * it will receive the logged events whose seq is above `after_seq`. Called
 * with the engine lock held (after_seq = the engine's last seq), so nothing
 * is missed or doubled between the initial events and the live ones.
 * O(n_initial). OEE_EOVERFLOW when `n_initial` exceeds the capacity
 * (nothing attached).
 */
int oee__bus_attach(oee_bus *bus, oee_sub *sub, const oee_task_info *const *initial,
                    size_t n_initial, uint64_t after_seq);

/* oee__sub_create() + oee__bus_attach() with after_seq 0 (for tests). */
int oee__bus_subscribe(oee_bus *bus, const oee_sub_filter *filter, size_t capacity,
                       const oee_task_info *const *initial, size_t n_initial, oee_sub **out);

#endif /* OEE_EVENTS_H */
