/*
 * assign.h - issuing assignments: putting a model version into a slot of one
 * device, or of every device of a ring.
 *
 * An assignment re-signs the device's whole desired state (every filled
 * slot) with the server key under the next seq, stores the envelope and the
 * slot (state pending) in one transaction, and after COMMIT publishes the
 * envelope retained on the device's desired topic. A device that misses the
 * publish converges through GET /api/v1/devices/{id}/desired.
 *
 * A production slot that gets the version the shadow slot holds takes it
 * over: the same assignment empties the shadow slot (a promotion).
 *
 * Re-assigning the version a slot already wants, under the same rollout, is
 * a no-op that answers the current seq (so a repeated request does not send
 * devices back to pending); after a failure, rollback or cancellation of that
 * version it is issued again, which is how a deployment is retried.
 */
#ifndef EF_ASSIGN_H
#define EF_ASSIGN_H

#include "common/assignment.h"

#include <jansson.h>
#include <stdint.h>

struct server;
struct db_version;

/* Puts version v into slot of device_id; rollout_id is NULL for a direct
 * assignment. *seq (may be NULL) receives the device's seq afterwards.
 * EF_ENOENT (no such active device), EF_EMISMATCH (the manifest is for
 * another device class), EF_ECONFLICT (a shadow slot on a device without a
 * production model), EF_EINVAL (v's manifest does not parse), EF_ENOMEM,
 * EF_EDB. A failed publish is logged, not returned: the state is stored. */
int assign_version(struct server *srv, const char *device_id, enum ef_slot_kind slot,
                   const struct db_version *v, const char *rollout_id, int64_t *seq);

/* Empties device_id's shadow slot: a new assignment without it, unless it
 * is empty already (then a no-op). *seq (may be NULL) receives the device's
 * seq afterwards. EF_ENOENT (no such active device), EF_ENOMEM, EF_EDB. */
int assign_shadow_clear(struct server *srv, const char *device_id, int64_t *seq);

/* Puts version v into slot of every active device whose effective ring is
 * ring, all in one transaction (all or none); devices of another class than
 * the manifest's device_class are left alone. *assigned receives a new JSON
 * array of {device_id, seq}, by device id (empty when the ring has no
 * matching devices). EF_ENOENT (no such ring), then as assign_version. */
int assign_ring(struct server *srv, const char *ring, enum ef_slot_kind slot,
                const struct db_version *v, const char *rollout_id, json_t **assigned);

#endif
