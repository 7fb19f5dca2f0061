/* state.c - DATA_DIR/state.json: the deployment state that survives a restart. */
#include "agent/state.h"
#include "common/ef_error.h"
#include "common/fsutil.h"
#include "common/json_util.h"
#include "common/log.h"
#include "common/topic.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const phase_names[STATE_PHASE_COUNT] = {
    "none",      "notified", "downloading", "verifying", "staged",
    "self-test", "active",   "committed",   "failed",    "rolled_back",
};

const char *state_phase_name(enum state_phase phase)
{
    return phase < STATE_PHASE_COUNT ? phase_names[phase] : "unknown";
}

int state_phase_parse(const char *name, enum state_phase *out)
{
    for (int i = 0; i < STATE_PHASE_COUNT; i++) {
        if (name && strcmp(name, phase_names[i]) == 0) {
            *out = (enum state_phase)i;
            return 0;
        }
    }
    return EF_EINVAL;
}

bool state_phase_in_progress(enum state_phase phase)
{
    return phase >= STATE_NOTIFIED && phase <= STATE_ACTIVE;
}

void state_init(struct agent_state *st)
{
    memset(st, 0, sizeof(*st));
}

void state_clear(struct agent_state *st)
{
    for (int i = 0; i < EF_SLOT_COUNT; i++) {
        ef_slot_free(st->slots[i].target);
        ef_slot_free(st->slots[i].committed);
    }
    state_init(st);
}

struct ef_slot *state_slot_copy(const struct ef_slot *s)
{
    if (!s)
        return NULL;
    return ef_slot_new(s->model, s->version, s->manifest_url, s->signature_url, s->artifact_url,
                       s->sha256, s->size, s->rollout_id);
}

bool state_slot_same(const struct ef_slot *a, const struct ef_slot *b)
{
    return a && b && a->version == b->version && strcmp(a->model, b->model) == 0 &&
           strcmp(a->sha256, b->sha256) == 0;
}

void state_set_reason(struct state_slot *s, const char *reason)
{
    size_t i = 0;
    /* Reasons quote backends, files and the network: keep printable ASCII
     * only, so the file and the reports are always valid JSON strings. */
    for (; reason && reason[i] && i + 1 < sizeof(s->reason); i++) {
        unsigned char c = (unsigned char)reason[i];
        s->reason[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    s->reason[i] = '\0';
}

int state_copy(struct agent_state *dst, const struct agent_state *src)
{
    int rc = 0;
    state_init(dst);
    dst->last_seq = src->last_seq;
    for (int i = 0; i < EF_SLOT_COUNT; i++) {
        const struct state_slot *from = &src->slots[i];
        struct state_slot *to = &dst->slots[i];
        to->phase = from->phase;
        to->seq = from->seq;
        memcpy(to->reason, from->reason, sizeof(to->reason));
        to->target = state_slot_copy(from->target);
        to->committed = state_slot_copy(from->committed);
        if ((from->target && !to->target) || (from->committed && !to->committed)) {
            rc = EF_ENOMEM;
            goto out;
        }
    }
out:
    if (rc != 0)
        state_clear(dst);
    return rc;
}

/* ---- reading ---------------------------------------------------------- */

/* A persisted SLOT object (or null) into *out. EF_EINVAL when malformed. */
static int slot_parse(json_t *j, struct ef_slot **out)
{
    const char *model, *murl, *surl, *aurl, *sha;
    json_t *rollout = NULL;
    json_int_t version, size;
    *out = NULL;
    if (json_is_null(j))
        return 0;
    if (!json_is_object(j) ||
        json_unpack(j, "{s:s, s:I, s:s, s:s, s:s, s:s, s:I, s:o !}", "model", &model, "version",
                    &version, "manifest_url", &murl, "signature_url", &surl, "artifact_url", &aurl,
                    "sha256", &sha, "size", &size, "rollout_id", &rollout) != 0)
        return EF_EINVAL;
    if (!ef_name_valid(model) || version < 1 || size < 1 || !ef_is_sha256_hex(sha) ||
        (!json_is_null(rollout) && !json_is_string(rollout)))
        return EF_EINVAL;
    *out = ef_slot_new(model, version, murl, surl, aurl, sha, size, json_string_value(rollout));
    return *out ? 0 : EF_ENOMEM;
}

/* One slot's object into s (empty on entry). EF_EINVAL, EF_ENOMEM. */
static int slot_state_parse(json_t *j, struct state_slot *s)
{
    const char *phase;
    json_t *reason, *target, *committed;
    json_int_t seq;
    int rc = EF_EINVAL;
    if (!json_is_object(j) ||
        json_unpack(j, "{s:s, s:o, s:I, s:o, s:o !}", "phase", &phase, "reason", &reason, "seq",
                    &seq, "target", &target, "committed", &committed) != 0)
        goto out;
    if (state_phase_parse(phase, &s->phase) != 0 || seq < 0 ||
        (!json_is_null(reason) &&
         (!json_is_string(reason) || json_string_length(reason) >= sizeof(s->reason))))
        goto out;
    s->seq = seq;
    snprintf(s->reason, sizeof(s->reason), "%s",
             json_is_string(reason) ? json_string_value(reason) : "");
    if ((rc = slot_parse(target, &s->target)) != 0 ||
        (rc = slot_parse(committed, &s->committed)) != 0)
        goto out;
    /* The one invariant the machine relies on: a phase has a target. */
    rc = (s->phase == STATE_NONE) == (s->target == NULL) ? 0 : EF_EINVAL;
out:
    return rc;
}

/* The whole document into st (empty on entry). EF_EPARSE, EF_EINVAL, EF_ENOMEM. */
static int state_parse(const char *text, size_t len, struct agent_state *st, char *msg,
                       size_t msg_size)
{
    json_t *doc = NULL, *slots;
    json_int_t format, last_seq;
    const char *key;
    json_t *value;
    int rc = ef_json_load(text, len, STATE_MAX_BYTES, &doc, msg, msg_size);
    if (rc != 0)
        goto out;
    rc = EF_EINVAL;
    if (!json_is_object(doc) ||
        json_unpack(doc, "{s:I, s:I, s:o !}", "format", &format, "last_seq", &last_seq, "slots",
                    &slots) != 0 ||
        format != STATE_FORMAT || last_seq < 0 || !json_is_object(slots)) {
        snprintf(msg, msg_size, "needs format %d, last_seq >= 0 and slots", STATE_FORMAT);
        goto out;
    }
    st->last_seq = last_seq;
    json_object_foreach(slots, key, value)
    {
        enum ef_slot_kind kind;
        if (ef_slot_kind_parse(key, &kind) != 0 ||
            (rc = slot_state_parse(value, &st->slots[kind])) != 0) {
            rc = rc == EF_ENOMEM ? rc : EF_EINVAL;
            snprintf(msg, msg_size, "slot %.32s is malformed", key);
            goto out;
        }
    }
    rc = 0;
out:
    json_decref(doc);
    return rc;
}

/* Renames a corrupt state file out of the way so that the agent starts
 * fresh and the evidence is kept. 0 or EF_EIO. */
static int set_aside(const char *path, const char *why)
{
    char quoted[200];
    size_t n = strlen(path) + sizeof(".corrupt");
    char *aside = malloc(n);
    int rc = 0;
    if (!aside)
        return EF_ENOMEM;
    snprintf(aside, n, "%s.corrupt", path);
    if (rename(path, aside) != 0)
        rc = ef_from_errno(errno);
    ef_error("state_corrupt", "path=%s moved_to=%s moved=%s reason=%s", path, aside,
             rc == 0 ? "yes" : "no", ef_log_quote(why, quoted, sizeof(quoted)));
    free(aside);
    return rc == 0 ? 0 : EF_EIO;
}

int state_load(const char *path, struct agent_state *st)
{
    char *text = NULL, msg[160] = "";
    size_t len = 0;
    int rc = ef_read_file(path, STATE_MAX_BYTES, &text, &len);
    if (rc == EF_ENOENT) {
        rc = 0;
        goto out;
    }
    if (rc == EF_ETOOBIG) {
        snprintf(msg, sizeof(msg), "larger than %u bytes", STATE_MAX_BYTES);
        rc = EF_EPARSE;
    } else if (rc == 0) {
        rc = state_parse(text, len, st, msg, sizeof(msg));
        if (rc == EF_EINVAL)
            rc = EF_EPARSE;
    }
    if (rc == EF_EPARSE) {
        state_clear(st);
        int moved = set_aside(path, msg);
        rc = moved == 0 ? EF_EPARSE : moved;
    }
out:
    if (rc != 0 && rc != EF_EPARSE)
        state_clear(st);
    free(text);
    return rc;
}

/* ---- writing ---------------------------------------------------------- */

static json_t *slot_json(const struct ef_slot *s)
{
    if (!s)
        return json_null();
    return json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:I, s:s?}", "model", s->model, "version",
                     (json_int_t)s->version, "manifest_url", s->manifest_url, "signature_url",
                     s->signature_url, "artifact_url", s->artifact_url, "sha256", s->sha256, "size",
                     (json_int_t)s->size, "rollout_id", s->rollout_id);
}

static json_t *slot_state_json(const struct state_slot *s)
{
    return json_pack("{s:s, s:s?, s:I, s:o, s:o}", "phase", state_phase_name(s->phase), "reason",
                     s->reason[0] ? s->reason : NULL, "seq", (json_int_t)s->seq, "target",
                     slot_json(s->target), "committed", slot_json(s->committed));
}

int state_save(const char *path, const struct agent_state *st)
{
    json_t *doc = NULL, *slots = json_object();
    char *text = NULL;
    int rc = EF_ENOMEM;
    if (!slots)
        goto out;
    for (int i = 0; i < EF_SLOT_COUNT; i++) {
        /* A slot that cannot be encoded fails the save: dropping it would
         * persist a device that forgot its committed model. */
        if (json_object_set_new(slots, ef_slot_name((enum ef_slot_kind)i),
                                slot_state_json(&st->slots[i])) != 0) {
            json_decref(slots);
            goto out;
        }
    }
    doc = json_pack("{s:i, s:I, s:o}", "format", STATE_FORMAT, "last_seq", (json_int_t)st->last_seq,
                    "slots", slots);
    if (!doc || !(text = ef_json_dump(doc)))
        goto out;
    rc = ef_atomic_write(path, text, strlen(text), 0600);
out:
    free(text);
    json_decref(doc);
    return rc;
}
