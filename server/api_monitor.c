/*
 * api_monitor.c - /api/v1/triggers and /api/v1/alerts: the trigger rules
 * the monitor evaluates (operator to write, any token to read) and the
 * alerts it raised (docs/monitoring.md, "Trigger rules, alerts and
 * actions"). The monitor (monitor.h) does the evaluating.
 */
#include "server/api.h"
#include "server/api_params.h"
#include "server/db_fleet.h"
#include "server/db_monitor.h"
#include "server/db_registry.h"
#include "server/metric.h"
#include "server/server.h"
#include "server/trigger_eval.h"
#include "common/clock.h"
#include "common/ef_error.h"
#include "common/json_util.h"
#include "common/topic.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WINDOW_S_MAX     (7LL * 24 * 3600) /* a week: the default telemetry retention */
#define MIN_DEVICES_MAX  1000000LL
#define COOLDOWN_S_MAX   (366LL * 24 * 3600) /* a year */
#define ALERTS_LIMIT_DEF 100
#define METRIC_LIST_SIZE 256

/* The metric names, comma-separated, for error messages. */
static void metric_list(char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int m = 0; m < METRIC_COUNT && used < size; m++)
        used += (size_t)snprintf(buf + used, size - used, "%s%s", m ? ", " : "",
                                 metric_name((enum metric)m));
}

/* Reads optional integer member key in [min, max] into *out (left as it is
 * when absent); answers 400 itself and returns false otherwise. */
static bool int_member_or_reply(struct request *req, const json_t *body, const char *key,
                                int64_t min, int64_t max, int64_t *out)
{
    const json_t *v = json_object_get(body, key);
    if (!v)
        return true;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        http_reply_error(req, 400, "bad_request", "%s must be an integer in %lld..%lld", key,
                         (long long)min, (long long)max);
        return false;
    }
    *out = json_integer_value(v);
    return true;
}

/* Answers 400 for member key, whose value v is not one of choices, and
 * returns false. */
static bool unknown_or_reply(struct request *req, const char *key, const json_t *v,
                             const char *choices)
{
    http_reply_error(req, 400, "bad_request", "unknown %s '%.40s' (%s)", key,
                     json_is_string(v) ? json_string_value(v) : "not a string", choices);
    return false;
}

/* Checks the body of POST /api/v1/triggers into *t, with the doc's
 * defaults (400, answered itself, when something is wrong). */
static bool trigger_body_or_reply(struct request *req, const json_t *body, struct db_trigger *t)
{
    static const char *const allowed[] = {"model",      "ring",      "metric",   "aggregation",
                                          "op",         "threshold", "window_s", "min_devices",
                                          "cooldown_s", "action",    "enabled",  NULL};
    const char *unknown = NULL, *model = ef_json_str(body, "model");
    const json_t *ring = json_object_get(body, "ring"), *metric = json_object_get(body, "metric");
    const json_t *threshold = json_object_get(body, "threshold");
    const json_t *enabled = json_object_get(body, "enabled");
    const json_t *op = json_object_get(body, "op"), *action = json_object_get(body, "action");
    const json_t *aggregation = json_object_get(body, "aggregation");
    char metrics[METRIC_LIST_SIZE];
    memset(t, 0, sizeof(*t));
    t->rule.aggregation = TRIGGER_AGG_MEAN;
    t->rule.min_devices = 1;
    t->window_s = 300;
    t->cooldown_s = 3600;
    t->action = TRIGGER_ACTION_NONE;
    t->enabled = true;
    if (!ef_json_keys_allowed(body, allowed, &unknown)) {
        http_reply_error(req, 400, "bad_request", "unknown key '%s'", unknown);
        return false;
    }
    if (!ef_name_valid(model)) {
        http_reply_error(req, 400, "bad_request", "model must be a model name");
        return false;
    }
    snprintf(t->model, sizeof(t->model), "%s", model);
    if (ring && !json_is_null(ring)) {
        if (!ef_name_valid(json_string_value(ring))) {
            http_reply_error(req, 400, "bad_request", "ring must be a ring name or null");
            return false;
        }
        snprintf(t->ring, sizeof(t->ring), "%s", json_string_value(ring));
    }
    if (!metric || !json_is_string(metric) ||
        metric_parse(json_string_value(metric), &t->rule.metric) != 0) {
        metric_list(metrics, sizeof(metrics));
        if (!metric)
            http_reply_error(req, 400, "bad_request", "metric is required (%s)", metrics);
        else
            http_reply_error(req, 400, "bad_request", "unknown metric '%.40s' (%s)",
                             json_is_string(metric) ? json_string_value(metric) : "not a string",
                             metrics);
        return false;
    }
    if (!op) {
        http_reply_error(req, 400, "bad_request", "op is required (above or below)");
        return false;
    }
    if (!json_is_string(op) || trigger_op_parse(json_string_value(op), &t->rule.op) != 0)
        return unknown_or_reply(req, "op", op, "above or below");
    if (aggregation &&
        (!json_is_string(aggregation) ||
         trigger_aggregation_parse(json_string_value(aggregation), &t->rule.aggregation) != 0))
        return unknown_or_reply(req, "aggregation", aggregation, "mean, max, min or median");
    if (action && (!json_is_string(action) ||
                   trigger_action_parse(json_string_value(action), &t->action) != 0))
        return unknown_or_reply(req, "action", action, "retrain, pause_rollout, rollback or none");
    if (!json_is_number(threshold) || !isfinite(json_number_value(threshold))) {
        http_reply_error(req, 400, "bad_request", "threshold must be a finite number");
        return false;
    }
    t->rule.threshold = json_number_value(threshold);
    if (!int_member_or_reply(req, body, "window_s", 1, WINDOW_S_MAX, &t->window_s) ||
        !int_member_or_reply(req, body, "min_devices", 1, MIN_DEVICES_MAX, &t->rule.min_devices) ||
        !int_member_or_reply(req, body, "cooldown_s", 0, COOLDOWN_S_MAX, &t->cooldown_s))
        return false;
    if (enabled) {
        if (!json_is_boolean(enabled)) {
            http_reply_error(req, 400, "bad_request", "enabled must be true or false");
            return false;
        }
        t->enabled = json_is_true(enabled);
    }
    return true;
}

enum MHD_Result api_triggers_create(struct request *req)
{
    struct db_trigger t;
    json_t *body = NULL, *doc = NULL;
    int64_t id = 0;
    enum MHD_Result r;
    int rc;
    if (!http_json_body_or_reply(req, &body))
        return http_replied(req);
    if (!trigger_body_or_reply(req, body, &t)) {
        r = http_replied(req);
        goto out;
    }
    /* Named first, so that the answer says which one is missing. */
    if ((rc = db_model_id(req->srv->db, t.model, &id)) == 0 && t.ring[0])
        if ((rc = db_ring_id(req->srv->db, t.ring, &id)) == EF_ENOENT) {
            r = http_reply_error(req, 404, "not_found", "no ring %s", t.ring);
            goto out;
        }
    if (rc == EF_ENOENT) {
        r = http_reply_error(req, 404, "not_found", "no model %s", t.model);
        goto out;
    }
    if (rc == 0)
        rc = db_trigger_create(req->srv->db, &t, ef_now_ms(), &id);
    if (rc == EF_ENOENT) { /* removed meanwhile */
        r = http_reply_error(req, 404, "not_found", "no model %s or no ring %s", t.model, t.ring);
        goto out;
    }
    if (rc == 0)
        rc = db_trigger_json(req->srv->db, id, &doc);
    if (rc != 0) {
        r = http_reply_ef_error(req, rc, "could not store the trigger");
        goto out;
    }
    snprintf(req->audit_detail, sizeof(req->audit_detail),
             "trigger:%lld %s%s%s %s %s %s %g action=%s", (long long)id, t.model,
             t.ring[0] ? " ring=" : "", t.ring, metric_name(t.rule.metric),
             trigger_aggregation_name(t.rule.aggregation), trigger_op_name(t.rule.op),
             t.rule.threshold, trigger_action_name(t.action));
    r = http_reply_json(req, 201, doc);
out:
    json_decref(body);
    return r;
}

enum MHD_Result api_triggers_list(struct request *req)
{
    const char *model = http_query(req, "model");
    json_t *rules = NULL, *doc;
    int rc;
    if (model && !ef_name_valid(model))
        return http_reply_error(req, 400, "bad_request", "model must be a model name");
    if ((rc = db_triggers_list(req->srv->db, model, &rules)) != 0)
        return http_reply_ef_error(req, rc, "could not list triggers");
    if (!(doc = json_pack("{s:o}", "triggers", rules)))
        return http_reply_ef_error(req, EF_ENOMEM, "out of memory");
    return http_reply_json(req, 200, doc);
}

enum MHD_Result api_trigger_delete(struct request *req)
{
    const char *param = http_param(req, 0);
    char *end = NULL;
    long long id = 0;
    int64_t resolved = 0;
    int rc;
    if (param[0] >= '1' && param[0] <= '9')
        id = strtoll(param, &end, 10);
    if (id < 1 || !end || *end)
        return http_reply_error(req, 404, "not_found", "no trigger %.32s", param);
    rc = db_trigger_delete(req->srv->db, id, ef_now_ms(), &resolved);
    if (rc == EF_ENOENT)
        return http_reply_error(req, 404, "not_found", "no trigger %lld", id);
    if (rc != 0)
        return http_reply_ef_error(req, rc, "could not delete the trigger");
    snprintf(req->audit_detail, sizeof(req->audit_detail),
             "trigger:%lld deleted, %lld alert%s resolved", id, (long long)resolved,
             resolved == 1 ? "" : "s");
    return http_reply_empty(req, 204, NULL);
}

enum MHD_Result api_alerts_list(struct request *req)
{
    const char *since = http_query(req, "since");
    struct db_alert_filter f = {0};
    long long limit = ALERTS_LIMIT_DEF;
    json_t *rows = NULL, *doc;
    int rc;
    f.model = http_query(req, "model");
    f.state = http_query(req, "state");
    if (f.model && !ef_name_valid(f.model))
        return http_reply_error(req, 400, "bad_request", "model must be a model name");
    if (f.state && strcmp(f.state, "firing") != 0 && strcmp(f.state, "resolved") != 0)
        return http_reply_error(req, 400, "bad_request", "state must be firing or resolved");
    if (since && !api_time_value(since, ef_now_ms(), &f.since))
        return http_reply_error(req, 400, "bad_request",
                                "since must be an RFC 3339 UTC time, Unix ms or a number of "
                                "seconds ago");
    if (!api_query_int(req, "limit", 1, DB_ALERTS_LIMIT_MAX, &limit))
        return http_reply_error(req, 400, "bad_request", "limit must be an integer in 1..%d",
                                DB_ALERTS_LIMIT_MAX);
    f.limit = (int)limit;
    if ((rc = db_alerts_list(req->srv->db, &f, &rows)) != 0)
        return http_reply_ef_error(req, rc, "could not list alerts");
    if (!(doc = json_pack("{s:o}", "alerts", rows)))
        return http_reply_ef_error(req, EF_ENOMEM, "out of memory");
    return http_reply_json(req, 200, doc);
}
