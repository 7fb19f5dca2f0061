/*
 * api_assign.c - POST /api/v1/assignments: putting a model version into a
 * slot of one device or of every device of a ring, at once (assign.c issues
 * and publishes).
 */
#include "server/api.h"
#include "server/assign.h"
#include "server/db_registry.h"
#include "server/server.h"
#include "common/ef_error.h"
#include "common/json_util.h"
#include "common/topic.h"

#include <string.h>

/* The parsed request body; strings borrow from the JSON body. */
struct assign_request {
    const char *model;
    int64_t version;
    const char *device; /* exactly one of device and ring */
    const char *ring;
    enum ef_slot_kind slot; /* default production */
};

/* Reads and checks the body; replies itself (400 for an unknown member, 400
 * for an invalid or missing field) and returns false when it is not right. */
static bool assign_request_or_reply(struct request *req, const json_t *body,
                                    struct assign_request *a)
{
    static const char *const allowed[] = {"model", "version", "device", "ring", "slot", NULL};
    const char *unknown = NULL, *slot;
    const json_t *device, *ring;
    memset(a, 0, sizeof(*a));
    a->slot = EF_SLOT_PRODUCTION;
    if (!ef_json_keys_allowed(body, allowed, &unknown)) {
        http_reply_error(req, 400, "bad_request", "unknown key '%s'", unknown);
        return false;
    }
    a->model = ef_json_str(body, "model");
    if (!ef_name_valid(a->model) || ef_json_int(body, "version", &a->version) != 0 ||
        a->version < 1) {
        http_reply_error(req, 400, "bad_request",
                         "model must be a model name and version an integer >= 1");
        return false;
    }
    device = json_object_get(body, "device");
    ring = json_object_get(body, "ring");
    if (!device == !ring) {
        http_reply_error(req, 400, "bad_request", "give exactly one of device and ring");
        return false;
    }
    a->device = json_string_value(device);
    a->ring = json_string_value(ring);
    if (device && !ef_device_id_valid(a->device)) {
        http_reply_error(req, 400, "bad_request",
                         "device must be 1..64 of [A-Za-z0-9._-], not starting with . or -");
        return false;
    }
    if (ring && !ef_name_valid(a->ring)) {
        http_reply_error(req, 400, "bad_request", "ring must be a ring name");
        return false;
    }
    if (json_object_get(body, "slot")) {
        slot = ef_json_str(body, "slot");
        if (!slot || ef_slot_kind_parse(slot, &a->slot) != 0) {
            http_reply_error(req, 400, "bad_request", "slot must be production or shadow");
            return false;
        }
    }
    return true;
}

/* Replies to an assignment that assign.c refused. */
static enum MHD_Result reply_refused(struct request *req, const struct assign_request *a, int rc)
{
    switch (rc) {
    case EF_ENOENT:
        return a->device ? http_reply_error(req, 404, "not_found", "no device %s", a->device)
                         : http_reply_error(req, 404, "not_found", "no ring %s", a->ring);
    case EF_EMISMATCH:
        return http_reply_error(req, 409, "conflict",
                                "%s@%lld is built for another device class than device %s",
                                a->model, (long long)a->version, a->device ? a->device : "");
    case EF_ECONFLICT:
        return http_reply_error(req, 409, "conflict",
                                "a shadow model needs a production model on the device first");
    default:
        return http_reply_ef_error(req, rc, "could not issue the assignment");
    }
}

enum MHD_Result api_assignments_create(struct request *req)
{
    struct server *srv = req->srv;
    struct assign_request a;
    struct db_version v = {0};
    json_t *body = NULL, *assigned = NULL, *doc;
    int64_t seq = 0;
    enum MHD_Result r;
    int rc;
    if (!http_json_body_or_reply(req, &body))
        return http_replied(req);
    if (!assign_request_or_reply(req, body, &a)) {
        r = http_replied(req);
        goto out;
    }
    rc = db_version_get(srv->db, a.model, a.version, &v);
    if (rc == EF_ENOENT) {
        r = http_reply_error(req, 404, "not_found", "no version %s@%lld", a.model,
                             (long long)a.version);
        goto out;
    }
    if (rc != 0) {
        r = http_reply_ef_error(req, rc, "could not read the version");
        goto out;
    }
    if (a.device) {
        rc = assign_version(srv, a.device, a.slot, &v, NULL, &seq);
        if (rc == 0 &&
            !(assigned = json_pack("[{s:s, s:I}]", "device_id", a.device, "seq", (json_int_t)seq)))
            rc = EF_ENOMEM;
    } else {
        rc = assign_ring(srv, a.ring, a.slot, &v, NULL, &assigned);
    }
    if (rc != 0) {
        r = reply_refused(req, &a, rc);
        goto out;
    }
    if (a.device)
        snprintf(req->audit_detail, sizeof(req->audit_detail), "%s@%lld%s -> device %s (seq %lld)",
                 a.model, (long long)a.version, a.slot == EF_SLOT_SHADOW ? " shadow" : "", a.device,
                 (long long)seq);
    else
        snprintf(req->audit_detail, sizeof(req->audit_detail), "%s@%lld%s -> ring %s (%zu devices)",
                 a.model, (long long)a.version, a.slot == EF_SLOT_SHADOW ? " shadow" : "", a.ring,
                 json_array_size(assigned));
    if (!(doc = json_pack("{s:o}", "assigned", assigned))) {
        r = http_reply_ef_error(req, EF_ENOMEM, "out of memory");
        goto out;
    }
    r = http_reply_json(req, 200, doc);
out:
    db_version_clear(&v);
    json_decref(body);
    return r;
}
