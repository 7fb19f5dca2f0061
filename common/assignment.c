/* assignment.c - signed desired-state documents for devices. */
#include "common/assignment.h"
#include "common/clock.h"
#include "common/ef_error.h"
#include "common/json_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const slot_names[EF_SLOT_COUNT] = {"production", "shadow"};

const char *ef_slot_name(enum ef_slot_kind kind)
{
    return kind < EF_SLOT_COUNT ? slot_names[kind] : "unknown";
}

int ef_slot_kind_parse(const char *name, enum ef_slot_kind *out)
{
    for (int i = 0; i < EF_SLOT_COUNT; i++) {
        if (name && strcmp(name, slot_names[i]) == 0) {
            *out = (enum ef_slot_kind)i;
            return 0;
        }
    }
    return EF_EINVAL;
}

void ef_slot_free(struct ef_slot *slot)
{
    if (!slot)
        return;
    free(slot->model);
    free(slot->manifest_url);
    free(slot->signature_url);
    free(slot->artifact_url);
    free(slot->rollout_id);
    free(slot);
}

struct ef_slot *ef_slot_new(const char *model, int64_t version, const char *manifest_url,
                            const char *signature_url, const char *artifact_url, const char *sha256,
                            int64_t size, const char *rollout_id)
{
    struct ef_slot *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->model = strdup(model);
    s->manifest_url = strdup(manifest_url);
    s->signature_url = strdup(signature_url);
    s->artifact_url = strdup(artifact_url);
    s->rollout_id = rollout_id ? strdup(rollout_id) : NULL;
    s->version = version;
    s->size = size;
    snprintf(s->sha256, sizeof(s->sha256), "%s", sha256);
    if (!s->model || !s->manifest_url || !s->signature_url || !s->artifact_url ||
        (rollout_id && !s->rollout_id)) {
        ef_slot_free(s);
        return NULL;
    }
    return s;
}

void ef_assignment_free(struct ef_assignment *a)
{
    if (!a)
        return;
    for (int i = 0; i < EF_SLOT_COUNT; i++)
        ef_slot_free(a->slots[i]);
    free(a);
}

static json_t *slot_to_json(const struct ef_slot *s)
{
    return json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:I, s:s?}", "model", s->model, "version",
                     (json_int_t)s->version, "manifest_url", s->manifest_url, "signature_url",
                     s->signature_url, "artifact_url", s->artifact_url, "sha256", s->sha256, "size",
                     (json_int_t)s->size, "rollout_id", s->rollout_id);
}

char *ef_assignment_serialize(const struct ef_assignment *a)
{
    char issued[EF_TIME_STR_SIZE];
    char *out = NULL;
    json_t *doc = NULL, *slots = json_object();
    if (!slots)
        goto out;
    ef_time_format(a->issued_at_ms, issued, sizeof(issued));
    /* A slot that fails to encode (out of memory, a string that is not
     * UTF-8) fails the whole document: dropping it would sign an assignment
     * that tells the device to unload that model. */
    for (int i = 0; i < EF_SLOT_COUNT; i++) {
        if (a->slots[i] &&
            json_object_set_new(slots, slot_names[i], slot_to_json(a->slots[i])) != 0) {
            json_decref(slots);
            goto out;
        }
    }
    doc = json_pack("{s:s, s:I, s:s, s:o}", "device_id", a->device_id, "seq", (json_int_t)a->seq,
                    "issued_at", issued, "slots", slots);
    if (doc)
        out = ef_json_dump(doc);
out:
    json_decref(doc);
    return out;
}

char *ef_assignment_sign(const struct ef_assignment *a, const unsigned char sk[EF_SK_BYTES])
{
    char sig[EF_SIG_B64_SIZE];
    char *payload = ef_assignment_serialize(a), *payload_b64 = NULL, *out = NULL;
    json_t *env = NULL;
    if (!payload)
        goto out;
    ef_sign_b64(sk, payload, strlen(payload), sig);
    payload_b64 = ef_b64_encode(payload, strlen(payload));
    if (!payload_b64)
        goto out;
    env = json_pack("{s:s, s:s}", "payload", payload_b64, "signature", sig);
    if (env)
        out = ef_json_dump(env);
out:
    json_decref(env);
    free(payload);
    free(payload_b64);
    return out;
}

static int slot_from_json(json_t *j, struct ef_slot **out)
{
    const char *model, *murl, *surl, *aurl, *sha;
    json_t *rollout = NULL;
    json_int_t version, size;
    *out = NULL;
    /* rollout_id is written as null for a direct assignment (slot_to_json's
     * "s?"), which an "s" unpack would refuse; so it is read as a value. */
    if (json_unpack(j, "{s:s, s:I, s:s, s:s, s:s, s:s, s:I, s?o}", "model", &model, "version",
                    &version, "manifest_url", &murl, "signature_url", &surl, "artifact_url", &aurl,
                    "sha256", &sha, "size", &size, "rollout_id", &rollout) != 0)
        return EF_EINVAL;
    if (!ef_name_valid(model) || version < 1 || size < 1 || !ef_is_sha256_hex(sha) ||
        (rollout && !json_is_null(rollout) && !json_is_string(rollout)))
        return EF_EINVAL;
    *out = ef_slot_new(model, version, murl, surl, aurl, sha, size, json_string_value(rollout));
    return *out ? 0 : EF_ENOMEM;
}

static int payload_parse(const char *bytes, size_t len, struct ef_assignment **out, char *msg,
                         size_t msg_size)
{
    json_t *doc = NULL, *slots;
    const char *device_id, *issued;
    json_int_t seq;
    struct ef_assignment *a = NULL;
    int rc = ef_json_load(bytes, len, EF_ASSIGNMENT_MAX_BYTES, &doc, msg, msg_size);
    if (rc != 0)
        goto out;
    rc = EF_EINVAL;
    if (json_unpack(doc, "{s:s, s:I, s:s, s:o}", "device_id", &device_id, "seq", &seq, "issued_at",
                    &issued, "slots", &slots) != 0 ||
        !ef_device_id_valid(device_id) || seq < 1 || !json_is_object(slots)) {
        if (msg)
            snprintf(msg, msg_size, "assignment needs device_id, seq >= 1, issued_at, slots");
        goto out;
    }
    if (!(a = calloc(1, sizeof(*a)))) {
        rc = EF_ENOMEM;
        goto out;
    }
    snprintf(a->device_id, sizeof(a->device_id), "%s", device_id);
    a->seq = seq;
    if (ef_time_parse(issued, &a->issued_at_ms) != 0) {
        if (msg)
            snprintf(msg, msg_size, "issued_at must be an RFC 3339 UTC time");
        goto out;
    }
    const char *key;
    json_t *value;
    json_object_foreach(slots, key, value)
    {
        enum ef_slot_kind kind;
        if (ef_slot_kind_parse(key, &kind) != 0 || slot_from_json(value, &a->slots[kind]) != 0) {
            if (msg)
                snprintf(msg, msg_size, "slot %.32s is malformed", key);
            goto out;
        }
    }
    *out = a;
    a = NULL;
    rc = 0;
out:
    ef_assignment_free(a);
    json_decref(doc);
    return rc;
}

int ef_assignment_verify_parse(const char *envelope, size_t len,
                               const unsigned char server_pk[EF_PK_BYTES],
                               struct ef_assignment **out, char *msg, size_t msg_size)
{
    json_t *env = NULL;
    const char *payload_b64, *sig;
    unsigned char *payload = NULL;
    size_t payload_len = 0;
    *out = NULL;
    int rc = ef_json_load(envelope, len, EF_ASSIGNMENT_MAX_BYTES * 2, &env, msg, msg_size);
    if (rc != 0)
        goto out;
    if (json_unpack(env, "{s:s, s:s !}", "payload", &payload_b64, "signature", &sig) != 0 ||
        ef_b64_decode(payload_b64, &payload, &payload_len) != 0) {
        rc = EF_EPARSE;
        if (msg)
            snprintf(msg, msg_size, "envelope must be {payload: base64, signature: base64}");
        goto out;
    }
    if ((rc = ef_verify_b64(server_pk, payload, payload_len, sig)) != 0) {
        if (msg)
            snprintf(msg, msg_size, "assignment signature does not verify");
        goto out;
    }
    rc = payload_parse((const char *)payload, payload_len, out, msg, msg_size);
out:
    free(payload);
    json_decref(env);
    return rc;
}
