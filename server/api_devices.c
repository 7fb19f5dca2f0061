/*
 * api_devices.c - /api/v1/devices: listing, showing, changing and
 * decommissioning devices, and each device's signed desired state (the hot
 * path of every device check-in).
 */
#include "server/api.h"
#include "server/checkin.h"
#include "server/db_fleet.h"
#include "server/dynsec.h"
#include "server/mqtt.h"
#include "server/server.h"
#include "common/clock.h"
#include "common/ef_error.h"
#include "common/json_util.h"
#include "common/log.h"
#include "common/topic.h"

#include <stdlib.h>
#include <string.h>

#define ETAG_SIZE 24 /* a quoted int64 and a NUL */

enum MHD_Result api_devices_list(struct request *req)
{
    struct db_device_filter f = {0};
    const char *tag = http_query(req, "tag"), *online = http_query(req, "online"), *eq;
    char tag_key[65];
    bool online_value;
    json_t *devices = NULL, *doc;
    int rc;
    f.ring = http_query(req, "ring");
    f.class = http_query(req, "class");
    if ((f.ring && !ef_name_valid(f.ring)) || (f.class && !ef_name_valid(f.class)))
        return http_reply_error(req, 400, "bad_request", "ring and class must be names");
    if (tag) {
        eq = strchr(tag, '=');
        if (!eq || (size_t)(eq - tag) >= sizeof(tag_key))
            return http_reply_error(req, 400, "bad_request", "tag must be KEY=VALUE");
        memcpy(tag_key, tag, (size_t)(eq - tag));
        tag_key[eq - tag] = '\0';
        if (!ef_name_valid(tag_key))
            return http_reply_error(req, 400, "bad_request", "tag must be KEY=VALUE");
        f.tag_key = tag_key;
        f.tag_value = eq + 1;
    }
    if (online) {
        if (strcmp(online, "true") != 0 && strcmp(online, "false") != 0)
            return http_reply_error(req, 400, "bad_request", "online must be true or false");
        online_value = strcmp(online, "true") == 0;
        f.online = &online_value;
    }
    if ((rc = db_devices_list(req->srv->db, &f, &devices)) != 0)
        return http_reply_ef_error(req, rc, "could not list devices");
    if (!(doc = json_pack("{s:o}", "devices", devices)))
        return http_reply_ef_error(req, EF_ENOMEM, "out of memory");
    return http_reply_json(req, 200, doc);
}

/* Replies with the device object of id (200), or 404. */
static enum MHD_Result reply_device(struct request *req, const char *id)
{
    json_t *device = NULL;
    int rc = ef_device_id_valid(id) ? db_device_get(req->srv->db, id, &device) : EF_ENOENT;
    if (rc == EF_ENOENT)
        return http_reply_error(req, 404, "not_found", "no device %.64s", id);
    if (rc != 0)
        return http_reply_ef_error(req, rc, "could not read the device");
    return http_reply_json(req, 200, device);
}

enum MHD_Result api_device_show(struct request *req)
{
    return reply_device(req, http_param(req, 0));
}

/* Reads the PATCH body into *c; replies itself and returns false when it is
 * not {ring?, class?, tags?} with at least one of them (400 for an unknown
 * member, 400 for an invalid field, 404 for a ring that does not exist). */
static bool device_change_or_reply(struct request *req, json_t *body, struct db_device_change *c)
{
    static const char *const allowed[] = {"ring", "class", "tags", NULL};
    const char *unknown = NULL, *ring;
    json_t *v;
    int rc;
    memset(c, 0, sizeof(*c));
    if (!ef_json_keys_allowed(body, allowed, &unknown)) {
        http_reply_error(req, 400, "bad_request", "unknown key '%s'", unknown);
        return false;
    }
    if (json_object_size(body) == 0) {
        http_reply_error(req, 400, "bad_request", "give at least one of ring, class, tags");
        return false;
    }
    if ((v = json_object_get(body, "ring"))) {
        c->set_ring = true;
        ring = json_string_value(v);
        if (!json_is_null(v) && !(ring && ef_name_valid(ring))) {
            http_reply_error(req, 400, "bad_request", "ring must be a ring name or null");
            return false;
        }
        rc = ring ? db_ring_id(req->srv->db, ring, &c->ring_id) : 0;
        if (rc == EF_ENOENT) {
            http_reply_error(req, 404, "not_found", "no ring %s", ring);
            return false;
        }
        if (rc != 0) {
            http_reply_ef_error(req, rc, "could not read rings");
            return false;
        }
    }
    if ((v = json_object_get(body, "class"))) {
        c->class = json_string_value(v);
        if (!c->class || !ef_name_valid(c->class)) {
            http_reply_error(req, 400, "bad_request",
                             "class must be 1..64 of [a-z0-9._-] starting with a letter or digit");
            return false;
        }
    }
    if ((v = json_object_get(body, "tags"))) {
        if (!db_tags_valid(v)) {
            http_reply_error(req, 400, "bad_request",
                             "tags must be an object of at most %d names to strings of at most "
                             "%d bytes",
                             DB_TAGS_MAX, DB_TAG_VALUE_MAX);
            return false;
        }
        c->tags = v;
    }
    return true;
}

enum MHD_Result api_device_update(struct request *req)
{
    const char *id = http_param(req, 0), *ring;
    struct db_device_change c;
    json_t *body = NULL;
    enum MHD_Result r;
    int rc;
    if (!ef_device_id_valid(id))
        return http_reply_error(req, 404, "not_found", "no device %.64s", id);
    if (!http_json_body_or_reply(req, &body))
        return http_replied(req);
    if (!device_change_or_reply(req, body, &c)) {
        r = http_replied(req);
        goto out;
    }
    rc = db_device_update(req->srv->db, id, &c);
    if (rc == EF_ENOENT) {
        r = http_reply_error(req, 404, "not_found", "no device %s", id);
        goto out;
    }
    if (rc != 0) {
        r = http_reply_ef_error(req, rc, "could not change the device");
        goto out;
    }
    ring = json_string_value(json_object_get(body, "ring"));
    snprintf(req->audit_detail, sizeof(req->audit_detail), "device:%s%s%s%s%s%s", id,
             c.set_ring ? " ring=" : "", c.set_ring ? (ring ? ring : "null") : "",
             c.class ? " class=" : "", c.class ? c.class : "", c.tags ? " tags" : "");
    r = reply_device(req, id);
out:
    json_decref(body);
    return r;
}

/* Deletes the broker identity of decommissioned device id, best effort: one
 * left behind cannot be used by anyone who does not hold its password, and
 * the next enrollment of the id replaces it. */
static void delete_broker_identity(struct dynsec *ds, const char *id)
{
    if (dynsec_state_get(ds) == DYNSEC_UNAVAILABLE)
        return;
    int rc = dynsec_device_delete(ds, id);
    if (rc == 0)
        ef_info("device_broker_identity_deleted", "device=%s", id);
    else
        ef_warn("device_broker_identity_kept", "device=%s error=%s", id, ef_errname(rc));
}

enum MHD_Result api_device_remove(struct request *req)
{
    struct server *srv = req->srv;
    struct dynsec *ds = mqtt_dynsec(srv->mqtt);
    const char *id = http_param(req, 0);
    char topic[EF_TOPIC_SIZE];
    int rc = EF_ENOENT;
    /* Held across both changes, so that a re-enrollment of id cannot slip in
     * between and lose its new identity to this delete. */
    dynsec_identity_lock(ds);
    if (ef_device_id_valid(id))
        rc = db_device_decommission(srv->db, id, ef_now_ms());
    if (rc == 0 && srv->checkin)
        checkin_remove(srv->checkin, id); /* its token stops working at once */
    if (rc == 0)
        delete_broker_identity(ds, id);
    dynsec_identity_unlock(ds);
    if (rc == EF_ENOENT)
        return http_reply_error(req, 404, "not_found", "no device %.64s", id);
    if (rc != 0)
        return http_reply_ef_error(req, rc, "could not decommission the device");
    snprintf(req->audit_detail, sizeof(req->audit_detail), "device:%s decommissioned", id);
    /* An empty retained message clears the broker's copy of its desired state. */
    if ((rc = ef_topic_device(topic, sizeof(topic), id, "desired")) == 0)
        rc = mqtt_publish(srv->mqtt, topic, NULL, 0, 1, true);
    if (rc != 0)
        ef_warn("device_desired_clear_failed", "device=%s error=%s", id, ef_errname(rc));
    return http_reply_empty(req, 204, NULL);
}

/* Parses an If-None-Match value: *seq receives the first entity tag that is
 * a quoted integer (weak or strong), -1 if none; *any whether it lists "*". */
static void if_none_match(const char *h, int64_t *seq, bool *any)
{
    *seq = -1;
    *any = false;
    while (h && *h) {
        while (*h == ' ' || *h == '\t' || *h == ',')
            h++;
        if (*h == '*') {
            *any = true;
            h++;
            continue;
        }
        if (h[0] == 'W' && h[1] == '/')
            h += 2;
        if (*h != '"')
            return;
        const char *end = strchr(h + 1, '"');
        if (!end)
            return;
        if (*seq < 0 && h[1] >= '0' && h[1] <= '9') {
            char *stop = NULL;
            long long v = strtoll(h + 1, &stop, 10);
            if (stop == end)
                *seq = v;
        }
        h = end + 1;
    }
}

enum MHD_Result api_device_desired(struct request *req)
{
    struct server *srv = req->srv;
    const char *id = http_param(req, 0);
    char *envelope = NULL, etag[ETAG_SIZE];
    int64_t known, seq = 0;
    size_t len = 0;
    bool any;
    enum MHD_Result r;
    int rc;
    if (req->who.kind == PRINCIPAL_DEVICE && strcmp(req->who.device_id, id) != 0)
        return http_reply_error(req, 403, "forbidden", "a device may read only its own state");
    if (!ef_device_id_valid(id))
        return http_reply_error(req, 404, "not_found", "no device %.64s", id);
    if_none_match(http_header(req, "If-None-Match"), &known, &any);
    /* The check-in hot path: a device that already holds its current
     * assignment is answered from the cache, without SQLite. */
    if (known > 0 && srv->checkin && checkin_seq(srv->checkin, id, &seq) == 0 && seq == known) {
        snprintf(etag, sizeof(etag), "\"%lld\"", (long long)seq);
        atomic_fetch_add(&srv->stats.http_not_modified, 1);
        return http_reply_empty(req, 304, etag);
    }
    rc = db_device_desired(srv->db, id, known, &seq, &envelope, &len);
    if (rc == EF_ENOENT)
        return http_reply_error(req, 404, "not_found", "no device %s", id);
    if (rc != 0)
        return http_reply_ef_error(req, rc, "could not read the desired state");
    if (seq == 0) {
        r = http_reply_error(req, 404, "no_assignment", "device %s has no assignment yet", id);
        goto out;
    }
    snprintf(etag, sizeof(etag), "\"%lld\"", (long long)seq);
    if (seq == known || any) {
        atomic_fetch_add(&srv->stats.http_not_modified, 1);
        r = http_reply_empty(req, 304, etag);
        goto out;
    }
    r = http_reply_bytes(req, 200, "application/json", envelope, len, etag);
out:
    free(envelope);
    return r;
}
