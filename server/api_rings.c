/*
 * api_rings.c - /api/v1/rings: the ordered rings devices are grouped in for
 * rollouts. A device is in its explicit ring, else in the first ring (by
 * position) whose tag selector it matches, else in `default`, which always
 * exists and has no selector.
 */
#include "server/api.h"
#include "server/db_fleet.h"
#include "server/server.h"
#include "common/clock.h"
#include "common/ef_error.h"
#include "common/json_util.h"
#include "common/topic.h"

#include <string.h>

#define DEFAULT_RING "default"
#define POSITION_MAX INT32_MAX

/* Reads the JSON object body of a ring request, which may have only the
 * keys allowed, into *body (new) and its optional members position and
 * selector into *position (NULL when absent, else storage) and *selector
 * (borrowed from *body, NULL when absent). Replies 400 itself and returns
 * false when something is invalid; *body is the caller's to free either
 * way. */
static bool ring_body_or_reply(struct request *req, const char *const *allowed, json_t **body,
                               int64_t *storage, const int64_t **position, const json_t **selector)
{
    const char *unknown = NULL;
    json_t *p, *s;
    *body = NULL;
    *position = NULL;
    *selector = NULL;
    if (!http_json_body_or_reply(req, body))
        return false;
    if (!ef_json_keys_allowed(*body, allowed, &unknown)) {
        http_reply_error(req, 400, "bad_request", "unknown key '%s'", unknown);
        return false;
    }
    if ((p = json_object_get(*body, "position"))) {
        if (!json_is_integer(p) || json_integer_value(p) < 0 ||
            json_integer_value(p) > POSITION_MAX) {
            http_reply_error(req, 400, "bad_request", "position must be an integer in 0..%d",
                             POSITION_MAX);
            return false;
        }
        *storage = json_integer_value(p);
        *position = storage;
    }
    if ((s = json_object_get(*body, "selector"))) {
        if (!db_tags_valid(s)) {
            http_reply_error(req, 400, "bad_request",
                             "selector must be an object of at most %d tag names to strings of "
                             "at most %d bytes",
                             DB_TAGS_MAX, DB_TAG_VALUE_MAX);
            return false;
        }
        *selector = s;
    }
    return true;
}

/* Replies with the ring object of name and status. */
static enum MHD_Result reply_ring(struct request *req, unsigned status, const char *name)
{
    json_t *ring = NULL;
    int rc = db_ring_get(req->srv->db, name, &ring);
    if (rc == EF_ENOENT)
        return http_reply_error(req, 404, "not_found", "no ring %s", name);
    if (rc != 0)
        return http_reply_ef_error(req, rc, "could not read the ring");
    return http_reply_json(req, status, ring);
}

enum MHD_Result api_rings_list(struct request *req)
{
    json_t *rings = NULL, *doc;
    int rc = db_rings_list(req->srv->db, &rings);
    if (rc != 0)
        return http_reply_ef_error(req, rc, "could not list rings");
    if (!(doc = json_pack("{s:o}", "rings", rings)))
        return http_reply_ef_error(req, EF_ENOMEM, "out of memory");
    return http_reply_json(req, 200, doc);
}

enum MHD_Result api_rings_create(struct request *req)
{
    static const char *const allowed[] = {"name", "position", "selector", NULL};
    json_t *body = NULL;
    const json_t *selector;
    const int64_t *position;
    const char *name;
    int64_t storage;
    enum MHD_Result r;
    int rc;
    if (!ring_body_or_reply(req, allowed, &body, &storage, &position, &selector)) {
        r = http_replied(req);
        goto out;
    }
    name = ef_json_str(body, "name");
    if (!ef_name_valid(name)) {
        r = http_reply_error(req, 400, "bad_request",
                             "name must be 1..64 of [a-z0-9._-] starting with a letter or digit");
        goto out;
    }
    rc = db_ring_create(req->srv->db, name, position, selector, ef_now_ms());
    if (rc == EF_EEXIST) {
        r = http_reply_error(req, 409, "ring_exists", "ring %s exists", name);
        goto out;
    }
    if (rc != 0) {
        r = http_reply_ef_error(req, rc, "could not create the ring");
        goto out;
    }
    snprintf(req->audit_detail, sizeof(req->audit_detail), "ring:%s", name);
    r = reply_ring(req, 201, name);
out:
    json_decref(body);
    return r;
}

enum MHD_Result api_ring_update(struct request *req)
{
    static const char *const allowed[] = {"position", "selector", NULL};
    const char *name = http_param(req, 0);
    json_t *body = NULL;
    const json_t *selector;
    const int64_t *position;
    int64_t storage;
    enum MHD_Result r;
    int rc;
    if (!ef_name_valid(name))
        return http_reply_error(req, 404, "not_found", "no ring %.64s", name);
    if (!ring_body_or_reply(req, allowed, &body, &storage, &position, &selector)) {
        r = http_replied(req);
        goto out;
    }
    if (json_object_size(body) == 0) {
        r = http_reply_error(req, 400, "bad_request", "give position and/or selector");
        goto out;
    }
    /* default is where devices fall that no selector takes. */
    if (selector && json_object_size(selector) > 0 && strcmp(name, DEFAULT_RING) == 0) {
        r = http_reply_error(req, 422, "unprocessable", "ring default cannot have a selector");
        goto out;
    }
    rc = db_ring_update(req->srv->db, name, position, selector);
    if (rc == EF_ENOENT) {
        r = http_reply_error(req, 404, "not_found", "no ring %s", name);
        goto out;
    }
    if (rc != 0) {
        r = http_reply_ef_error(req, rc, "could not change the ring");
        goto out;
    }
    snprintf(req->audit_detail, sizeof(req->audit_detail), "ring:%s%s%s", name,
             position ? " position" : "", selector ? " selector" : "");
    r = reply_ring(req, 200, name);
out:
    json_decref(body);
    return r;
}
