/*
 * assign.c - issuing signed assignments to devices and rings, and publishing
 * them on the devices' desired topics.
 */
#include "server/assign.h"
#include "server/checkin.h"
#include "server/db.h"
#include "server/db_fleet.h"
#include "server/db_registry.h"
#include "server/db_rollouts.h"
#include "server/mqtt.h"
#include "server/server.h"
#include "common/clock.h"
#include "common/ef_error.h"
#include "common/log.h"
#include "common/manifest.h"
#include "common/topic.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define URL_SIZE 192 /* "/api/v1/models/" + a 64-byte name + a version + a leaf */

/* Reads the device class v's manifest is restricted to into class ("" when
 * any class may run it). EF_EINVAL when the stored manifest does not parse. */
static int manifest_class(const struct db_version *v, char class[DB_CLASS_SIZE])
{
    struct ef_manifest *m = NULL;
    char msg[128] = "";
    int rc = v->manifest ? ef_manifest_parse(v->manifest, v->manifest_len, &m, msg, sizeof(msg))
                         : EF_EINVAL;
    if (rc != 0) {
        ef_error("assign_manifest", "model=%s version=%lld message=\"%s\"", v->model,
                 (long long)v->version, msg);
        rc = EF_EINVAL;
        goto out;
    }
    snprintf(class, DB_CLASS_SIZE, "%s", m->device_class ? m->device_class : "");
out:
    ef_manifest_free(m);
    return rc;
}

/* True when slot s already wants v under rollout_id and has not given up on
 * it, so issuing it again would change nothing but send it back to pending. */
static bool slot_unchanged(const struct db_slot *s, const struct db_version *v,
                           const char *rollout_id)
{
    static const char *const retry_states[] = {"failed", "rolled_back", "cancelled", NULL};
    if (!s->set || s->version_id != v->id ||
        strcmp(s->rollout_id, rollout_id ? rollout_id : "") != 0)
        return false;
    for (const char *const *r = retry_states; *r; r++)
        if (strcmp(s->state, *r) == 0)
            return false;
    return true;
}

/* New ef_slot for a wanted slot, with server-relative URLs. NULL on ENOMEM. */
static struct ef_slot *slot_build(const struct db_slot *s)
{
    char manifest[URL_SIZE], signature[URL_SIZE], artifact[URL_SIZE];
    snprintf(manifest, sizeof(manifest), "/api/v1/models/%s/versions/%lld/manifest", s->model,
             (long long)s->version);
    snprintf(signature, sizeof(signature), "/api/v1/models/%s/versions/%lld/manifest.sig", s->model,
             (long long)s->version);
    snprintf(artifact, sizeof(artifact), "/api/v1/models/%s/versions/%lld/artifact", s->model,
             (long long)s->version);
    return ef_slot_new(s->model, s->version, manifest, signature, artifact, s->sha256, s->size,
                       s->rollout_id[0] ? s->rollout_id : NULL);
}

/* Issues the assignment of one device inside the caller's transaction: v
 * into slot, or, with v NULL, an empty shadow slot (nothing to do when it is
 * empty already). A production slot that gets the version the shadow slot
 * holds takes it over: the shadow slot is emptied in the same assignment
 * (docs/monitoring.md, promotion). class is the manifest's device class (""
 * for any). *envelope receives the new signed envelope (malloc'd) or NULL
 * when nothing changed; *seq the device's seq either way. Errors as
 * assign_version. */
static int issue(struct server *srv, const char *device_id, enum ef_slot_kind slot,
                 const struct db_version *v, const char *class, const char *rollout_id, int64_t now,
                 int64_t *seq, char **envelope)
{
    struct db_desired d;
    struct db_slot *s;
    struct ef_assignment a = {0};
    bool drop_shadow = false;
    int rc;
    *envelope = NULL;
    if ((rc = db_device_desired_load(srv->db, device_id, &d)) != 0)
        goto out;
    *seq = d.seq;
    if (!v) {
        if (!d.slots[EF_SLOT_SHADOW].set)
            goto out;
        memset(&d.slots[EF_SLOT_SHADOW], 0, sizeof(d.slots[EF_SLOT_SHADOW]));
        goto sign;
    }
    if (class[0] && strcmp(class, d.class) != 0) {
        rc = EF_EMISMATCH;
        goto out;
    }
    /* assignment.schema.json: every assignment has a production slot. */
    if (slot == EF_SLOT_SHADOW && !d.slots[EF_SLOT_PRODUCTION].set) {
        rc = EF_ECONFLICT;
        goto out;
    }
    if (slot_unchanged(&d.slots[slot], v, rollout_id))
        goto out;
    if (slot == EF_SLOT_PRODUCTION && d.slots[EF_SLOT_SHADOW].set &&
        d.slots[EF_SLOT_SHADOW].version_id == v->id) {
        memset(&d.slots[EF_SLOT_SHADOW], 0, sizeof(d.slots[EF_SLOT_SHADOW]));
        drop_shadow = true;
    }
    s = &d.slots[slot];
    memset(s, 0, sizeof(*s));
    s->set = true;
    s->version_id = v->id;
    snprintf(s->model, sizeof(s->model), "%s", v->model);
    s->version = v->version;
    snprintf(s->sha256, sizeof(s->sha256), "%s", v->sha256);
    s->size = v->size;
    snprintf(s->rollout_id, sizeof(s->rollout_id), "%s", rollout_id ? rollout_id : "");
sign:

    snprintf(a.device_id, sizeof(a.device_id), "%s", device_id);
    a.seq = d.seq + 1;
    a.issued_at_ms = now;
    for (int k = 0; k < EF_SLOT_COUNT; k++) {
        if (d.slots[k].set && !(a.slots[k] = slot_build(&d.slots[k]))) {
            rc = EF_ENOMEM;
            goto out;
        }
    }
    if (!(*envelope = ef_assignment_sign(&a, srv->server_key.sk))) {
        rc = EF_ENOMEM;
        goto out;
    }
    if (!v)
        rc = db_rollout_shadow_clear(srv->db, device_id, a.seq, *envelope);
    else if ((rc = db_device_desired_store(srv->db, device_id, a.seq, *envelope, slot, v->id,
                                           rollout_id, now)) == 0 &&
             drop_shadow)
        rc = db_rollout_shadow_clear(srv->db, device_id, 0, NULL);
    if (rc == 0)
        *seq = a.seq;
out:
    for (int k = 0; k < EF_SLOT_COUNT; k++)
        ef_slot_free(a.slots[k]);
    if (rc != 0) {
        free(*envelope);
        *envelope = NULL;
    }
    return rc;
}

/* After COMMIT: counts an issued envelope, records its seq in the check-in
 * cache and publishes it retained at QoS 1 (mqtt.c counts the publish). A
 * failed publish is only logged: the device also polls its desired state. */
static void publish(struct server *srv, const char *device_id, int64_t seq, const char *envelope)
{
    char topic[EF_TOPIC_SIZE];
    atomic_fetch_add(&srv->stats.assignments_issued, 1);
    if (srv->checkin)
        checkin_set_seq(srv->checkin, device_id, seq);
    int rc = ef_topic_device(topic, sizeof(topic), device_id, "desired");
    if (rc == 0)
        rc = mqtt_publish(srv->mqtt, topic, envelope, strlen(envelope), 1, true);
    if (rc != 0)
        ef_warn("assign_publish_failed", "device=%s error=%s", device_id, ef_errname(rc));
}

/* issue() in a transaction of its own, then the new envelope published
 * (when something changed). *seq (may be NULL) receives the device's seq
 * afterwards. Errors as assign_version. */
static int issue_one(struct server *srv, const char *device_id, enum ef_slot_kind slot,
                     const struct db_version *v, const char *class, const char *rollout_id,
                     int64_t *seq)
{
    char *envelope = NULL;
    int64_t new_seq = 0;
    int rc = db_tx_begin(srv->db);
    if (rc != 0)
        goto out;
    rc = issue(srv, device_id, slot, v, class, rollout_id, ef_now_ms(), &new_seq, &envelope);
    if ((rc = db_tx_end(srv->db, rc)) != 0)
        goto out;
    if (envelope)
        publish(srv, device_id, new_seq, envelope);
    if (seq)
        *seq = new_seq;
out:
    free(envelope);
    return rc;
}

int assign_version(struct server *srv, const char *device_id, enum ef_slot_kind slot,
                   const struct db_version *v, const char *rollout_id, int64_t *seq)
{
    char class[DB_CLASS_SIZE];
    int rc = manifest_class(v, class);
    if (rc != 0)
        return rc;
    return issue_one(srv, device_id, slot, v, class, rollout_id, seq);
}

int assign_shadow_clear(struct server *srv, const char *device_id, int64_t *seq)
{
    return issue_one(srv, device_id, EF_SLOT_SHADOW, NULL, "", NULL, seq);
}

int assign_ring(struct server *srv, const char *ring, enum ef_slot_kind slot,
                const struct db_version *v, const char *rollout_id, json_t **assigned)
{
    char class[DB_CLASS_SIZE];
    json_t *ids = NULL, *result = NULL;
    char **envelopes = NULL;
    size_t n = 0, i;
    int64_t ring_id, now = ef_now_ms();
    bool in_tx = false;
    *assigned = NULL;
    int rc = manifest_class(v, class);
    if (rc != 0)
        goto out;
    if (!(result = json_array())) {
        rc = EF_ENOMEM;
        goto out;
    }
    if ((rc = db_tx_begin(srv->db)) != 0)
        goto out;
    in_tx = true;
    if ((rc = db_ring_id(srv->db, ring, &ring_id)) != 0 ||
        (rc = db_ring_devices(srv->db, ring_id, class[0] ? class : NULL, &ids)) != 0)
        goto out;
    n = json_array_size(ids);
    if (n > 0 && !(envelopes = calloc(n, sizeof(*envelopes)))) {
        rc = EF_ENOMEM;
        goto out;
    }
    for (i = 0; i < n; i++) {
        const char *id = json_string_value(json_array_get(ids, i));
        int64_t seq = 0;
        if ((rc = issue(srv, id, slot, v, class, rollout_id, now, &seq, &envelopes[i])) != 0) {
            ef_warn("assign_ring_refused", "ring=%s device=%s error=%s", ring, id, ef_errname(rc));
            goto out;
        }
        if (json_array_append_new(
                result, json_pack("{s:s, s:I}", "device_id", id, "seq", (json_int_t)seq)) != 0) {
            rc = EF_ENOMEM;
            goto out;
        }
    }
    in_tx = false;
    if ((rc = db_tx_end(srv->db, 0)) != 0)
        goto out;
    /* Only after COMMIT: a device must never see a state we did not keep. */
    for (i = 0; i < n; i++)
        if (envelopes[i])
            publish(srv, json_string_value(json_array_get(ids, i)),
                    json_integer_value(json_object_get(json_array_get(result, i), "seq")),
                    envelopes[i]);
    *assigned = result;
    result = NULL;
out:
    if (in_tx)
        db_tx_end(srv->db, rc);
    for (i = 0; envelopes && i < n; i++)
        free(envelopes[i]);
    free(envelopes);
    json_decref(ids);
    json_decref(result);
    return rc;
}
