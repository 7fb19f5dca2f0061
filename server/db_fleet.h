/*
 * db_fleet.h - devices, their slots and reported state, rings, API tokens and
 * enrollment tokens (implemented in db_fleet.c; see db.h for the locking
 * rules).
 *
 * A device is decommissioned, not deleted: its row keeps its desired_seq so
 * that a device enrolled again under the same id never receives a seq lower
 * than one it already accepted (agents refuse those as replays). A
 * decommissioned device is invisible to every function here except
 * db_device_create, which revives it.
 *
 * Functions returning JSON give new references; their times are RFC 3339
 * strings (UTC, milliseconds), as the REST API shows them.
 */
#ifndef EF_DB_FLEET_H
#define EF_DB_FLEET_H

#include "common/assignment.h"
#include "common/crypto.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct db;

#define DB_CLASS_SIZE      65  /* a device class: a name (ef_name_valid) and a NUL */
#define DB_ROLLOUT_ID_SIZE 65  /* a rollout id as stored in a slot, and a NUL */
#define DB_TAGS_MAX        32  /* keys in a device's tags or a ring's selector */
#define DB_TAG_VALUE_MAX   256 /* bytes of one tag value */

/* True when tags is what device tags and ring selectors must be: an object
 * of at most DB_TAGS_MAX keys that are names (ef_name_valid) with string
 * values of at most DB_TAG_VALUE_MAX bytes. Functions below that store tags
 * refuse anything else with EF_EINVAL. */
bool db_tags_valid(const json_t *tags);

/* ---- API tokens ---- */

/* Stores a new API token by its hash. role is "admin", "operator" or
 * "viewer"; name may be NULL or empty. *id (may be NULL) receives its row id.
 * EF_EEXIST (hash taken), EF_ECONFLICT (bad role), EF_EDB. */
int db_api_token_create(struct db *db, const char *name, const char *role, const char *token_hash,
                        int64_t now, int64_t *id);

/* Finds an unrevoked API token by hash; role and name (truncated to fit,
 * at a UTF-8 character boundary) are copied out. EF_ENOENT when unknown or revoked, EF_EDB. */
int db_api_token_find(struct db *db, const char *token_hash, int64_t *id, char role[16],
                      char name[64]);

/* A new JSON array of {id, name (null when empty), role, created_at,
 * revoked (bool)}, by id. Never the hashes. EF_EDB, EF_ENOMEM. */
int db_api_tokens_list(struct db *db, json_t **out);

/* Revokes an API token (again is fine and keeps the first revocation time).
 * EF_ENOENT when unknown; EF_ECONFLICT when it is the last unrevoked admin
 * token, which would lock every administrator out; EF_EDB. *role (may be
 * NULL, 16 bytes) receives its role. */
int db_api_token_revoke(struct db *db, int64_t id, int64_t now, char role[16]);

/* ---- enrollment tokens ---- */

/* Stores a new enrollment token by its hash, good for uses enrollments until
 * expires_at (Unix ms). class may be NULL (devices choose, else "default").
 * *id (may be NULL) receives its row id. EF_EEXIST, EF_EDB. */
int db_enroll_token_create(struct db *db, const char *token_hash, const char *class, int64_t uses,
                           int64_t expires_at, int64_t now, int64_t *id);

/* Finds a usable enrollment token by hash, without using it. EF_ENOENT when
 * unknown, expired or used up; EF_EDB. */
int db_enroll_token_find(struct db *db, const char *token_hash, int64_t now, int64_t *id);

/* Uses one enrollment of token id, atomically; meant to run inside the
 * enrollment's db_tx_begin so that a failed enrollment gives the use back.
 * class receives the token's device class, "" when it has none. EF_ENOENT
 * when the token is unknown, expired or used up (perhaps by a concurrent
 * enrollment); EF_EDB. */
int db_enroll_token_consume(struct db *db, int64_t id, int64_t now, char class[DB_CLASS_SIZE]);

/* ---- devices ---- */

/* Enrolls a device: a new row, or the revival of a decommissioned one with
 * the same id (which keeps its desired_seq). tags (borrowed) may be NULL for
 * none. EF_EEXIST when an active device has that id, EF_EINVAL (tags),
 * EF_EDB. */
int db_device_create(struct db *db, const char *device_id, const char *token_hash,
                     const char *class, const json_t *tags, int64_t now);

/* Every active device for the check-in cache: a new JSON array of
 * {token_hash, id, seq}, seq being 0 when the device has no assignment.
 * EF_EDB, EF_ENOMEM. */
int db_device_checkins(struct db *db, json_t **out);

/* Finds the active device a device-token hash belongs to. EF_ENOENT, EF_EDB. */
int db_device_find_by_token(struct db *db, const char *token_hash, char device_id[65]);

/* The device object of the REST API: {id, class, ring, tags, online,
 * last_seen, enrolled_at, desired_seq, slots: {slot: {name, version, state,
 * reason}}, reported: {slot: {model, version, state, reason, updated_at}}}.
 * EF_ENOENT, EF_EDB, EF_ENOMEM. */
int db_device_get(struct db *db, const char *device_id, json_t **out);

/* Filters of db_devices_list; NULL members do not filter. */
struct db_device_filter {
    const char *ring;      /* effective ring name */
    const char *class;     /* device class */
    const char *tag_key;   /* with tag_value: tags[tag_key] == tag_value */
    const char *tag_value; /* see tag_key */
    const bool *online;    /* online state */
};

/* A new JSON array of device objects (as db_device_get) by id. */
int db_devices_list(struct db *db, const struct db_device_filter *filter, json_t **out);

/* What db_device_update changes; NULL pointers and a false set_ring keep
 * the current value. */
struct db_device_change {
    bool set_ring;      /* change the explicit ring */
    int64_t ring_id;    /* ring row id, or 0: back to the selector or default */
    const char *class;  /* new class */
    const json_t *tags; /* new tags (borrowed) */
};

/* Applies a change to an active device. EF_ENOENT (device), EF_ECONFLICT
 * (ring_id is not a ring), EF_EINVAL (tags), EF_EDB. */
int db_device_update(struct db *db, const char *device_id, const struct db_device_change *c);

/* Decommissions an active device: it loses its token, tags, explicit ring,
 * slots, reported state and stored envelope, keeps its desired_seq.
 * EF_ENOENT, EF_EDB. */
int db_device_decommission(struct db *db, const char *device_id, int64_t now);

/* Records a status message: online or not, last seen now. EF_ENOENT, EF_EDB. */
int db_device_seen(struct db *db, const char *device_id, bool online, int64_t now);

/* Records what a device reports about a slot (state as report_parse
 * accepts it, reason may be NULL) and sets last_seen. When model@version is
 * what the server wants in that slot, the slot's state and reason follow
 * (the agent's steps staged and self-test show as verifying there).
 * EF_EINVAL (slot unknown), EF_ENOENT, EF_EDB. */
int db_device_report(struct db *db, const char *device_id, const char *slot, const char *model,
                     int64_t version, const char *state, const char *reason, int64_t now);

/* *yes = whether one of the device's slots wants version row version_id. */
int db_device_has_version(struct db *db, const char *device_id, int64_t version_id, bool *yes);

/* The desired-state hot path: *seq receives the seq of the device's stored
 * envelope (0: no assignment since it was enrolled) and, unless it equals known_seq, *envelope a
 * new malloc'd copy of the stored envelope (NUL-terminated, *len bytes); it is NULL when *seq is
 * known_seq or 0. EF_ENOENT, EF_ENOMEM, EF_EDB. */
int db_device_desired(struct db *db, const char *device_id, int64_t known_seq, int64_t *seq,
                      char **envelope, size_t *len);

/* ---- assignments (used by assign.c inside its transaction) ---- */

/* One slot the server wants filled on a device. */
struct db_slot {
    bool set;                            /* false: the slot is empty */
    int64_t version_id;                  /* model_versions row */
    char model[65];                      /* model name */
    int64_t version;                     /* version number */
    char sha256[EF_HEX256_SIZE];         /* of the artifact */
    int64_t size;                        /* artifact bytes */
    char rollout_id[DB_ROLLOUT_ID_SIZE]; /* "" for a direct assignment */
    char state[16];                      /* device action state, e.g. "pending" */
};

/* What an assignment starts from: the device's class, desired_seq and
 * wanted slots, indexed by enum ef_slot_kind. */
struct db_desired {
    char class[DB_CLASS_SIZE];
    int64_t seq;
    struct db_slot slots[EF_SLOT_COUNT];
};

/* Fills *out for an active device. EF_ENOENT, EF_EDB. */
int db_device_desired_load(struct db *db, const char *device_id, struct db_desired *out);

/* Stores a newly signed envelope with its seq, which must be above the
 * stored one, and sets the slot to version_id in state pending (rollout_id
 * may be NULL). Call inside a db_tx_begin with db_device_desired_load.
 * EF_ENOENT, EF_ESTALE (seq not above the stored one), EF_EDB. */
int db_device_desired_store(struct db *db, const char *device_id, int64_t seq, const char *envelope,
                            enum ef_slot_kind slot, int64_t version_id, const char *rollout_id,
                            int64_t now);

/* ---- rings ---- */

/* Creates a ring. position NULL: after the last ring other than default.
 * selector (borrowed, tags a device must all have) may be NULL for none.
 * EF_EEXIST, EF_EINVAL (selector), EF_EDB. */
int db_ring_create(struct db *db, const char *name, const int64_t *position, const json_t *selector,
                   int64_t now);

/* Looks up a ring's row id. EF_ENOENT, EF_EDB. */
int db_ring_id(struct db *db, const char *name, int64_t *id);

/* The ring object {name, position, selector, devices (count)}. EF_ENOENT. */
int db_ring_get(struct db *db, const char *name, json_t **out);

/* A new JSON array of ring objects by position, then creation. */
int db_rings_list(struct db *db, json_t **out);

/* Changes a ring's position and/or selector (NULL keeps). EF_ENOENT,
 * EF_EINVAL (selector), EF_EDB. */
int db_ring_update(struct db *db, const char *name, const int64_t *position,
                   const json_t *selector);

/* A new JSON array of the ids (strings) of the active devices whose
 * effective ring is ring_id, by id; class non-NULL keeps only that class. */
int db_ring_devices(struct db *db, int64_t ring_id, const char *class, json_t **out);

#endif
