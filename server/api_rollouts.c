/*
 * api_rollouts.c - /api/v1/rollouts: creating rollouts, reading them and
 * the operator's actions on them (docs/rollouts.md). The engine (rollout.h)
 * does the work; this file checks requests and answers with the rollout
 * object (db_rollout_json); promote answers the production rollout it made.
 */
#include "server/api.h"
#include "server/db_fleet.h"
#include "server/db_registry.h"
#include "server/db_rollouts.h"
#include "server/rollout.h"
#include "server/rollout_policy.h"
#include "server/server.h"
#include "common/ef_error.h"
#include "common/json_util.h"
#include "common/topic.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MSG_SIZE 192

static const char *const rollout_states[] = {"draft",  "running", "paused",      "succeeded",
                                             "failed", "aborted", "rolled_back", NULL};

/* Reads the {id} segment into *id or answers 404 itself and returns false. */
static bool rollout_id_or_reply(struct request *req, int64_t *id)
{
    const char *param = http_param(req, 0);
    char *end = NULL;
    long long v = 0;
    if (param[0] >= '1' && param[0] <= '9')
        v = strtoll(param, &end, 10);
    if (v < 1 || !end || *end) {
        http_reply_error(req, 404, "not_found", "no rollout %.32s", param);
        return false;
    }
    *id = v;
    return true;
}

/* The engine, or a 500 answered itself when there is none (never in serve). */
static struct rollout_engine *engine_or_reply(struct request *req)
{
    if (!req->srv->rollouts)
        http_reply_error(req, 500, "internal", "the rollout engine is not running");
    return req->srv->rollouts;
}

/* Answers status with the rollout object of id. */
static enum MHD_Result reply_rollout(struct request *req, unsigned status, int64_t id)
{
    json_t *doc = NULL;
    int rc = db_rollout_json(req->srv->db, id, &doc);
    if (rc == EF_ENOENT)
        return http_reply_error(req, 404, "not_found", "no rollout %lld", (long long)id);
    if (rc != 0)
        return http_reply_ef_error(req, rc, "could not read the rollout");
    return http_reply_json(req, status, doc);
}

enum MHD_Result api_rollouts_list(struct request *req)
{
    const char *model = http_query(req, "model"), *state = http_query(req, "state");
    json_t *list = NULL, *doc = NULL;
    int64_t *ids = NULL;
    size_t n = 0;
    bool known = state == NULL;
    enum MHD_Result r;
    int rc;
    for (const char *const *s = rollout_states; state && *s; s++)
        known = known || strcmp(*s, state) == 0;
    if (model && !ef_name_valid(model))
        return http_reply_error(req, 400, "bad_request", "model must be a model name");
    if (!known)
        return http_reply_error(req, 400, "bad_request",
                                "state must be draft, running, paused, succeeded, failed, "
                                "aborted or rolled_back");
    if ((rc = db_rollout_ids(req->srv->db, model, state, &ids, &n)) != 0) {
        r = http_reply_ef_error(req, rc, "could not list rollouts");
        goto out;
    }
    if (!(list = json_array())) {
        r = http_reply_ef_error(req, EF_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *one = NULL;
        rc = db_rollout_json(req->srv->db, ids[i], &one);
        if (rc == 0 && json_array_append_new(list, one) != 0)
            rc = EF_ENOMEM;
        if (rc != 0) {
            r = http_reply_ef_error(req, rc, "could not read a rollout");
            goto out;
        }
    }
    if (!(doc = json_pack("{s:O}", "rollouts", list))) {
        r = http_reply_ef_error(req, EF_ENOMEM, "out of memory");
        goto out;
    }
    r = http_reply_json(req, 200, doc);
out:
    json_decref(list);
    free(ids);
    return r;
}

/* The checked body of POST /api/v1/rollouts; strings borrow from it. */
struct create_request {
    const char *model;
    int64_t version;
    const char *rings[DB_ROLLOUT_MAX_RINGS];
    size_t ring_count;
    struct rollout_policy policy;
    bool supersede;
    enum ef_slot_kind slot;
};

/* Checks the body's shape (400, answered itself, when it is not right). */
static bool create_request_or_reply(struct request *req, const json_t *body,
                                    struct create_request *c)
{
    static const char *const allowed[] = {"model",     "version", "rings", "policy",
                                          "supersede", "slot",    NULL};
    const char *unknown = NULL;
    const json_t *rings = json_object_get(body, "rings"), *supersede, *slot;
    char msg[MSG_SIZE] = "";
    memset(c, 0, sizeof(*c));
    if (!ef_json_keys_allowed(body, allowed, &unknown)) {
        http_reply_error(req, 400, "bad_request", "unknown key '%s'", unknown);
        return false;
    }
    c->model = ef_json_str(body, "model");
    if (!ef_name_valid(c->model) || ef_json_int(body, "version", &c->version) != 0 ||
        c->version < 1) {
        http_reply_error(req, 400, "bad_request",
                         "model must be a model name and version an integer >= 1");
        return false;
    }
    if (!json_is_array(rings) || json_array_size(rings) == 0 ||
        json_array_size(rings) > DB_ROLLOUT_MAX_RINGS) {
        http_reply_error(req, 400, "bad_request", "rings must be an array of 1..%d ring names",
                         DB_ROLLOUT_MAX_RINGS);
        return false;
    }
    for (size_t i = 0; i < json_array_size(rings); i++) {
        const char *name = json_string_value(json_array_get(rings, i));
        if (!ef_name_valid(name)) {
            http_reply_error(req, 400, "bad_request", "rings[%zu] must be a ring name", i);
            return false;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(c->rings[j], name) == 0) {
                http_reply_error(req, 400, "bad_request", "ring %s is listed twice", name);
                return false;
            }
        c->rings[c->ring_count++] = name;
    }
    if (rollout_policy_parse(json_object_get(body, "policy"), &c->policy, msg, sizeof(msg)) != 0) {
        http_reply_error(req, 400, "bad_request", "%s", msg);
        return false;
    }
    if ((supersede = json_object_get(body, "supersede"))) {
        if (!json_is_boolean(supersede)) {
            http_reply_error(req, 400, "bad_request", "supersede must be true or false");
            return false;
        }
        c->supersede = json_is_true(supersede);
    }
    if ((slot = json_object_get(body, "slot")) &&
        (!json_is_string(slot) || ef_slot_kind_parse(json_string_value(slot), &c->slot) != 0)) {
        http_reply_error(req, 400, "bad_request", "slot must be production or shadow");
        return false;
    }
    return true;
}

enum MHD_Result api_rollouts_create(struct request *req)
{
    struct server *srv = req->srv;
    struct rollout_engine *engine;
    struct create_request c;
    struct db_version v = {0};
    struct rollout_spec spec = {0};
    int64_t ring_ids[DB_ROLLOUT_MAX_RINGS], id = 0;
    json_t *body = NULL, *policy = NULL;
    char *policy_text = NULL, msg[MSG_SIZE] = "";
    enum MHD_Result r;
    int rc;
    if (!http_json_body_or_reply(req, &body))
        return http_replied(req);
    if (!create_request_or_reply(req, body, &c) || !(engine = engine_or_reply(req))) {
        r = http_replied(req);
        goto out;
    }
    rc = db_version_get(srv->db, c.model, c.version, &v);
    if (rc == EF_ENOENT) {
        r = http_reply_error(req, 404, "not_found", "no version %s@%lld", c.model,
                             (long long)c.version);
        goto out;
    }
    if (rc != 0) {
        r = http_reply_ef_error(req, rc, "could not read the version");
        goto out;
    }
    for (size_t i = 0; i < c.ring_count; i++) {
        rc = db_ring_id(srv->db, c.rings[i], &ring_ids[i]);
        if (rc == EF_ENOENT) {
            r = http_reply_error(req, 404, "not_found", "no ring %s", c.rings[i]);
            goto out;
        }
        if (rc != 0) {
            r = http_reply_ef_error(req, rc, "could not read the rings");
            goto out;
        }
    }
    if (!(policy = rollout_policy_json(&c.policy)) || !(policy_text = ef_json_dump(policy))) {
        r = http_reply_ef_error(req, EF_ENOMEM, "out of memory");
        goto out;
    }
    spec.version_id = v.id;
    spec.model = c.model;
    spec.ring_ids = ring_ids;
    spec.ring_count = c.ring_count;
    spec.policy = policy_text;
    spec.supersede = c.supersede;
    spec.slot = c.slot;
    rc = rollout_create(engine, &spec, &id, msg, sizeof(msg));
    if (rc == EF_EEXIST) {
        r = http_reply_error(req, 409, "conflict", "%s", msg);
        goto out;
    }
    if (rc != 0) {
        r = http_reply_ef_error(req, rc, "could not create the rollout");
        goto out;
    }
    snprintf(req->audit_detail, sizeof(req->audit_detail), "rollout:%lld %s@%lld %s rings=%zu%s",
             (long long)id, c.model, (long long)c.version, ef_slot_name(c.slot), c.ring_count,
             c.supersede ? " supersede" : "");
    r = reply_rollout(req, 201, id);
out:
    free(policy_text);
    json_decref(policy);
    db_version_clear(&v);
    json_decref(body);
    return r;
}

enum MHD_Result api_rollout_show(struct request *req)
{
    int64_t id;
    if (!rollout_id_or_reply(req, &id))
        return http_replied(req);
    return reply_rollout(req, 200, id);
}

/* The body of the action routes: applies action and answers the rollout. */
static enum MHD_Result act(struct request *req, enum rollout_action action)
{
    struct rollout_engine *engine;
    char msg[MSG_SIZE] = "";
    int64_t id;
    int rc;
    if (!rollout_id_or_reply(req, &id) || !(engine = engine_or_reply(req)))
        return http_replied(req);
    rc = rollout_act(engine, id, action, msg, sizeof(msg));
    if (rc == EF_ENOENT)
        return http_reply_error(req, 404, "not_found", "no rollout %lld", (long long)id);
    if (rc == EF_ECONFLICT || rc == EF_EEXIST)
        return http_reply_error(req, 409, "conflict", "%s", msg);
    if (rc != 0)
        return http_reply_ef_error(req, rc, "could not change the rollout");
    snprintf(req->audit_detail, sizeof(req->audit_detail), "rollout:%lld %s", (long long)id,
             rollout_action_name(action));
    return reply_rollout(req, 200, id);
}

enum MHD_Result api_rollout_start(struct request *req)
{
    return act(req, ROLLOUT_START);
}

enum MHD_Result api_rollout_pause(struct request *req)
{
    return act(req, ROLLOUT_PAUSE);
}

enum MHD_Result api_rollout_resume(struct request *req)
{
    return act(req, ROLLOUT_RESUME);
}

enum MHD_Result api_rollout_abort(struct request *req)
{
    return act(req, ROLLOUT_ABORT);
}

enum MHD_Result api_rollout_rollback(struct request *req)
{
    return act(req, ROLLOUT_ROLLBACK);
}

enum MHD_Result api_rollout_promote(struct request *req)
{
    struct rollout_engine *engine;
    char msg[MSG_SIZE] = "";
    int64_t id, promoted = 0;
    int rc;
    if (!rollout_id_or_reply(req, &id) || !(engine = engine_or_reply(req)))
        return http_replied(req);
    rc = rollout_promote(engine, id, &promoted, msg, sizeof(msg));
    if (rc == EF_ENOENT)
        return http_reply_error(req, 404, "not_found", "no rollout %lld", (long long)id);
    if (rc == EF_ECONFLICT || rc == EF_EEXIST)
        return http_reply_error(req, 409, "conflict", "%s", msg);
    if (rc != 0)
        return http_reply_ef_error(req, rc, "could not promote the rollout");
    snprintf(req->audit_detail, sizeof(req->audit_detail), "rollout:%lld promote rollout:%lld",
             (long long)id, (long long)promoted);
    return reply_rollout(req, 201, promoted);
}
