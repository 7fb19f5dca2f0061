/*
 * rollout.h - the rollout engine: one thread that moves every running
 * rollout through its rings (docs/rollouts.md, "Engine"), and the operator's
 * actions on rollouts (create, start, pause, resume, abort, rollback).
 *
 * Everything a rollout is lives in SQLite (db_rollouts.h), so a restarted
 * server resumes each rollout where it was: the engine only reads, decides
 * (rollout_policy.h) and writes. The engine's lock serializes its ticks with
 * the operator's actions, so that an abort never races a ring's start.
 * Assignments go through assign.h, which signs, stores and publishes after
 * COMMIT; a step's own state change is one transaction, committed before
 * the assignments it leads to, and every step can be repeated, so a crash
 * between the two is mended by the next tick.
 *
 * Every state change of a rollout or a ring is logged (events rollout_state
 * and ring_state) and published on edgefleet/v1/events/rollout at QoS 1:
 * {"rollout", "model", "version", "state", "ring"?, "ring_state"?,
 * "reason"?, "ts"}.
 */
#ifndef EF_ROLLOUT_H
#define EF_ROLLOUT_H

#include "common/assignment.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct server;
struct rollout_engine;

/* Starts the engine thread, which ticks every srv->cfg.rollout_tick_ms
 * (1000 when 0). *out is owned by the caller (rollout_engine_stop). srv is
 * borrowed and must outlive the engine. EF_ENOMEM, EF_EIO (no thread). */
int rollout_engine_start(struct server *srv, struct rollout_engine **out);

/* Stops the thread after its current step and frees; accepts NULL. */
void rollout_engine_stop(struct rollout_engine *e);

/* Runs one tick now, in the caller's thread: every running rollout takes
 * its next steps. Errors are logged and the rollout is retried next tick;
 * returns the first error for tests. The thread calls this. */
int rollout_engine_tick(struct rollout_engine *e);

/* An engine without a thread, for tests that tick it themselves: as
 * rollout_engine_start otherwise. */
int rollout_engine_open(struct server *srv, struct rollout_engine **out);

/* What rollout_create makes; every pointer is borrowed. */
struct rollout_spec {
    int64_t version_id;      /* model_versions row */
    const char *model;       /* its model's name */
    const int64_t *ring_ids; /* rings rows in order, distinct, 1..DB_ROLLOUT_MAX_RINGS */
    size_t ring_count;
    const char *policy;     /* policy JSON text (rollout_policy_json) */
    bool supersede;         /* abort the model's running or paused rollout of slot first */
    enum ef_slot_kind slot; /* the slot it fills; 0 is production */
};

/* Creates a draft rollout; *id receives its id. EF_EEXIST when the model
 * has a running or paused rollout of the same slot and supersede is false;
 * then as db_rollout_create. msg (may be NULL) receives the reason of a
 * refusal. */
int rollout_create(struct rollout_engine *e, const struct rollout_spec *spec, int64_t *id,
                   char *msg, size_t msg_size);

/* The operator's actions, from the states of docs/rollouts.md:
 * start      draft -> running
 * pause      running -> paused
 * resume     paused -> running; the current ring runs again with its clock
 *            restarted, and its failed devices are assigned the version again
 * abort      draft, running, paused -> aborted; devices that have not
 *            committed the version get their previous version back (cancelled)
 * rollback   running, paused, failed, succeeded -> rolled_back; every device
 *            the rollout reached gets its previous version back (rolled_back)
 * A shadow rollout gives back the previous shadow version, or an empty
 * shadow slot when there was none.
 */
enum rollout_action {
    ROLLOUT_START,
    ROLLOUT_PAUSE,
    ROLLOUT_RESUME,
    ROLLOUT_ABORT,
    ROLLOUT_ROLLBACK,
};

/* Applies an action to rollout id, with the engine's lock held. EF_ENOENT
 * (no such rollout), EF_ECONFLICT (not allowed from its state; msg says
 * why), EF_EEXIST (start or resume while another rollout of the model is
 * running or paused), EF_EDB, EF_ENOMEM. A device that cannot be given its
 * previous version is logged and noted on the device, not returned. */
int rollout_act(struct rollout_engine *e, int64_t id, enum rollout_action action, char *msg,
                size_t msg_size);

/* Promotes succeeded shadow rollout id (docs/monitoring.md): creates a
 * production rollout of its version over its rings with its policy, records
 * it as the shadow rollout's promoted_to, and starts it; *promoted receives
 * its id. Devices whose production slot then gets the version lose it from
 * their shadow slot in the same assignment (assign.h). EF_ENOENT (no such
 * rollout), EF_ECONFLICT (not a shadow rollout, not succeeded, or promoted
 * already; msg says which), EF_EEXIST (a production rollout of the model is
 * running or paused), EF_EDB, EF_ENOMEM. */
int rollout_promote(struct rollout_engine *e, int64_t id, int64_t *promoted, char *msg,
                    size_t msg_size);

/* The action's name in paths and logs ("rollback"). */
const char *rollout_action_name(enum rollout_action action);

#endif
