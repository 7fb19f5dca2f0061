/*
 * db_rollouts.h - rollouts, the stages of their rings and the devices they
 * assigned (implemented in db_rollouts.c over schema/003_rollouts.sql; see
 * db.h for the locking rules).
 *
 * The rollout engine (rollout.h) is the only writer apart from creation;
 * state changes are compare-and-set on the rollout's current state, and the
 * index rollouts_one_active keeps a model to one running or paused rollout
 * per slot (schema/009_rollout_slot.sql). A rollout fills one slot of its
 * devices, production or shadow. A device's action in a rollout is what
 * that slot says while the slot holds the rollout's assignment (version and
 * rollout id), `pending` while it does not, and the rollout's own verdict
 * (failed by timeout, rolled_back, cancelled) once it has given one.
 *
 * Times in the structs are Unix ms, 0 for "not yet"; JSON gives RFC 3339.
 */
#ifndef EF_DB_ROLLOUTS_H
#define EF_DB_ROLLOUTS_H

#include "common/assignment.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct db;

#define DB_ROLLOUT_MAX_RINGS   16  /* rings one rollout goes through */
#define DB_ROLLOUT_STATE_SIZE  16  /* the longest state name ("rolled_back") and a NUL */
#define DB_ROLLOUT_REASON_SIZE 192 /* a stored reason and its NUL (longer ones are cut) */

/* The device actions of DESIGN.md, in that order. */
enum db_action {
    DB_ACTION_PENDING,
    DB_ACTION_NOTIFIED,
    DB_ACTION_DOWNLOADING,
    DB_ACTION_VERIFYING,
    DB_ACTION_ACTIVE,
    DB_ACTION_COMMITTED,
    DB_ACTION_FAILED,
    DB_ACTION_ROLLED_BACK,
    DB_ACTION_CANCELLED,
    DB_ACTION_COUNT
};

/* The API name of an action ("rolled_back"); static. */
const char *db_action_name(enum db_action a);

/* One ring of a rollout. */
struct db_rollout_ring {
    int64_t position;                    /* 1 = the rollout's first ring */
    int64_t ring_id;                     /* rings row */
    char name[65];                       /* ring name */
    char state[DB_ROLLOUT_STATE_SIZE];   /* pending, running, soaking, succeeded, failed */
    char reason[DB_ROLLOUT_REASON_SIZE]; /* why it failed or succeeded, "" for none */
    int64_t started_at;                  /* entered running (last time), Unix ms */
    int64_t soak_started_at;             /* entered soaking, Unix ms */
    int64_t finished_at;                 /* entered succeeded or failed, Unix ms */
};

/* A rollout as stored. policy is owned. */
struct db_rollout {
    int64_t id;
    int64_t model_id;                    /* models row */
    char model[65];                      /* model name */
    int64_t version_id;                  /* model_versions row */
    int64_t version;                     /* version number */
    enum ef_slot_kind slot;              /* the slot it fills on its devices */
    int64_t promoted_to;                 /* the production rollout promote made; 0: none */
    char state[DB_ROLLOUT_STATE_SIZE];   /* draft, running, paused, succeeded, failed, ... */
    char reason[DB_ROLLOUT_REASON_SIZE]; /* "" for none */
    char *policy;                        /* JSON text, every member present */
    int64_t created_at;                  /* Unix ms */
    int64_t started_at;                  /* first draft -> running, Unix ms */
    int64_t finished_at;                 /* entered a final state, Unix ms */
    size_t ring_count;                   /* rings used, in position order */
    struct db_rollout_ring rings[DB_ROLLOUT_MAX_RINGS];
};

/* Frees what a db_rollout owns and zeroes it; accepts a zeroed struct. */
void db_rollout_clear(struct db_rollout *r);

/* One device a rollout assigned. */
struct db_rollout_device {
    char device_id[65];
    int64_t ring_id;                     /* the ring it was assigned through */
    int64_t previous_version_id;         /* committed before the rollout; 0: none */
    int64_t slot_version_id;             /* what the rollout's slot wants now; 0: nothing */
    bool assigned;                       /* the slot holds this rollout's assignment */
    bool final;                          /* the rollout has given its own verdict */
    enum db_action action;               /* as derived above */
    char reason[DB_ROLLOUT_REASON_SIZE]; /* the verdict's or the device's reason, "" for none */
};

/* Creates a draft rollout of version_id into slot through ring_ids (ring
 * rows, in order, 1..DB_ROLLOUT_MAX_RINGS of them) with policy (JSON text,
 * stored as given), in one transaction. *id (may be NULL) receives its id.
 * EF_EINVAL (ring count), EF_EEXIST (a ring twice), EF_ECONFLICT (no such
 * version or ring), EF_EDB. */
int db_rollout_create(struct db *db, int64_t version_id, enum ef_slot_kind slot,
                      const int64_t *ring_ids, size_t ring_count, const char *policy, int64_t now,
                      int64_t *id);

/* Fills *out with rollout id and its rings; the caller calls
 * db_rollout_clear. EF_ENOENT, EF_ENOMEM, EF_EDB. */
int db_rollout_get(struct db *db, int64_t id, struct db_rollout *out);

/* The ids of the rollouts of model (NULL: any) in state (NULL: any), newest
 * first, into *ids (malloc'd, NULL when none; the caller frees) and *count.
 * EF_ENOMEM, EF_EDB. */
int db_rollout_ids(struct db *db, const char *model, const char *state, int64_t **ids,
                   size_t *count);

/* The id of model's running or paused rollout of slot into *id. EF_ENOENT
 * when it has none, EF_EDB. */
int db_rollout_active(struct db *db, const char *model, enum ef_slot_kind slot, int64_t *id);

/* Records that shadow rollout id was promoted to production rollout
 * promoted_to, once: EF_ECONFLICT when it already was (or does not exist),
 * EF_EDB. */
int db_rollout_set_promoted(struct db *db, int64_t id, int64_t promoted_to);

/* Empties device_id's shadow slot. With envelope (may be NULL) it also
 * stores envelope as the device's desired state under seq, which must be
 * above the stored one (EF_ESTALE otherwise, EF_ENOENT for no such active
 * device); without, only the slot row goes (the caller has just stored an
 * assignment that lacks it). assign.c calls it inside its transaction.
 * EF_EDB. */
int db_rollout_shadow_clear(struct db *db, const char *device_id, int64_t seq,
                            const char *envelope);

/* Moves rollout id from state `from` to `to` with reason (NULL: none),
 * setting started_at on its first running and finished_at on a final state.
 * EF_ECONFLICT when it is not in `from` (or does not exist), EF_EEXIST when
 * `to` is running or paused and another rollout of the model is, EF_EDB. */
int db_rollout_set_state(struct db *db, int64_t id, const char *from, const char *to,
                         const char *reason, int64_t now);

/* Moves the ring at position of rollout id to state with reason (NULL:
 * none). Entering running (again) restarts its clock: started_at = now, no
 * soak; soaking sets soak_started_at, succeeded and failed finished_at.
 * EF_ENOENT, EF_EDB. */
int db_rollout_ring_set_state(struct db *db, int64_t id, int64_t position, const char *state,
                              const char *reason, int64_t now);

/* Records the active devices now in ring_id (of class, NULL for any) as
 * devices of rollout id assigned through that ring: a device seen for the
 * first time keeps as its previous version what the rollout's slot has
 * committed now, or else wants because an earlier rollout gave it back as
 * its previous committed version (rollback, abort); NULL when neither. One
 * already recorded through another ring is moved, its previous version
 * kept. Call before assigning them. EF_EDB. */
int db_rollout_track(struct db *db, int64_t id, int64_t ring_id, const char *class, int64_t now);

/* The active devices of rollout id (those of ring_id only, unless 0), by
 * device id, into *out (malloc'd, NULL when none; the caller frees) and
 * *count. EF_ENOMEM, EF_EDB. */
int db_rollout_devices(struct db *db, int64_t id, int64_t ring_id, struct db_rollout_device **out,
                       size_t *count);

/* Counts the devices of ring_id among n by action into counts and returns
 * how many there are. */
int64_t db_rollout_count(const struct db_rollout_device *d, size_t n, int64_t ring_id,
                         int64_t counts[DB_ACTION_COUNT]);

/* Records the rollout's verdict on a device: final_state "failed",
 * "rolled_back" or "cancelled" with reason, or NULL to derive the action
 * from the slot again (reason may still note something). EF_ENOENT,
 * EF_ECONFLICT (bad state), EF_EDB. */
int db_rollout_device_finish(struct db *db, int64_t id, const char *device_id,
                             const char *final_state, const char *reason);

/* A device that did not finish by the ring's deadline: its action becomes
 * failed with reason "timeout", and so does the rollout's slot when it
 * still wants the rollout's version and has not finished, so that the
 * device object says the same. One transaction. EF_ENOENT, EF_EDB. */
int db_rollout_device_timeout(struct db *db, int64_t id, const char *device_id, int64_t now);

/* The rollout object of docs/rollouts.md as a new JSON object: {id, model,
 * version, slot, promoted_to, state, reason, policy, created_at, started_at,
 * finished_at,
 * rings: [{name, position, state, devices, counts: {action: n}, started_at,
 * finished_at, reason}]}; a ring's devices are those the rollout assigned
 * through it (0 before it starts). EF_ENOENT, EF_ENOMEM, EF_EDB. */
int db_rollout_json(struct db *db, int64_t id, json_t **out);

#endif
