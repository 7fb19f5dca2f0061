/*
 * state.h - the agent's persisted deployment state: DATA_DIR/state.json.
 *
 * One document holds the last accepted assignment seq and, per model slot,
 * the committed version and the deployment under way (or last finished) with
 * its phase. deploy.c writes it with state_save before it acts on a
 * transition, so after a crash the file is never ahead of what happened.
 *
 *   {"format": 1, "last_seq": N,
 *    "slots": {"production": {"phase": "downloading", "reason": null|"...",
 *                             "seq": N, "target": SLOT|null,
 *                             "committed": SLOT|null}, "shadow": {...}}}
 *
 * SLOT is the assignment's slot object (model, version, manifest_url,
 * signature_url, artifact_url, sha256, size, rollout_id): the URLs are kept
 * so that a download resumes after a restart. A model dropped into the inbox
 * has empty URLs (it never needs fetching). Parsing is strict: duplicate or
 * unknown keys, wrong types and unknown phases make the file corrupt.
 */
#ifndef EF_AGENT_STATE_H
#define EF_AGENT_STATE_H

#include "common/assignment.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STATE_FORMAT      1
#define STATE_MAX_BYTES   (1u << 20)
#define STATE_REASON_SIZE 256

/* The phases of deploy.h's state machine, and NONE for a slot that has
 * nothing deployed and nothing under way. */
enum state_phase {
    STATE_NONE,
    STATE_NOTIFIED,
    STATE_DOWNLOADING,
    STATE_VERIFYING,
    STATE_STAGED,
    STATE_SELF_TEST,
    STATE_ACTIVE, /* on trial: serving, not yet committed */
    STATE_COMMITTED,
    STATE_FAILED,
    STATE_ROLLED_BACK,
    STATE_PHASE_COUNT
};

/* One slot. target is NULL exactly when phase is STATE_NONE; after a commit
 * target and committed describe the same version. */
struct state_slot {
    enum state_phase phase;
    char reason[STATE_REASON_SIZE]; /* why it failed or rolled back, "" otherwise */
    int64_t seq;                    /* assignment that set target; 0 for the inbox */
    struct ef_slot *target;         /* owned: deployment under way or last finished */
    struct ef_slot *committed;      /* owned: the version that serves after a restart */
};

struct agent_state {
    int64_t last_seq; /* last accepted assignment seq, 0 when none */
    struct state_slot slots[EF_SLOT_COUNT];
};

/* The phase's name as reported and persisted ("self-test", "rolled_back",
 * "none"...), and back (EF_EINVAL). */
const char *state_phase_name(enum state_phase phase);
int state_phase_parse(const char *name, enum state_phase *out);

/* True for the phases of a deployment under way (notified .. active). */
bool state_phase_in_progress(enum state_phase phase);

/* Empties st (a fresh device). st must not hold anything: see state_clear. */
void state_init(struct agent_state *st);

/* Frees what st owns and leaves it as state_init does. */
void state_clear(struct agent_state *st);

/* Deep copy of src into dst (dst is overwritten, not cleared). EF_ENOMEM,
 * in which case dst holds nothing. */
int state_copy(struct agent_state *dst, const struct agent_state *src);

/* New copy of a slot (NULL on ENOMEM, or when s is NULL). */
struct ef_slot *state_slot_copy(const struct ef_slot *s);

/* True when a and b name the same model, version and artifact hash. */
bool state_slot_same(const struct ef_slot *a, const struct ef_slot *b);

/* Copies reason (may be NULL: "") into s->reason, truncated, with anything
 * but printable ASCII replaced by '?', so it is always a valid JSON string. */
void state_set_reason(struct state_slot *s, const char *reason);

/* Reads path into st (which state_init'ed or cleared). A missing file is a
 * fresh device: 0 with st empty. A file that does not parse is renamed to
 * path.corrupt (replacing an older one), logged, and st is left empty:
 * EF_EPARSE, and the caller goes on with a fresh state. EF_EIO (unreadable,
 * or could not be moved aside), EF_ENOMEM. */
int state_load(const char *path, struct agent_state *st);

/* Writes st to path with ef_atomic_write (mode 0600): readers and a crash
 * see the old or the new file. EF_EIO, EF_EPERM, EF_ENOMEM. */
int state_save(const char *path, const struct agent_state *st);

#endif
