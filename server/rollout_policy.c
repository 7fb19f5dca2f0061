/*
 * rollout_policy.c - reading, writing and applying a rollout's policy:
 * thresholds, deadline, soak and metric gates over one ring.
 */
#include "server/rollout_policy.h"
#include "common/ef_error.h"
#include "common/json_util.h"

#include <stdio.h>
#include <string.h>

#define MS_PER_S 1000

static const char *const metric_names[] = {
    [ROLLOUT_METRIC_ERROR_RATE] = "error_rate",
    [ROLLOUT_METRIC_LATENCY_P99_MS] = "latency_p99_ms",
};

static const char *const on_breach_names[] = {
    [ROLLOUT_ON_BREACH_PAUSE] = "pause",
    [ROLLOUT_ON_BREACH_ROLLBACK] = "rollback",
};

const char *rollout_metric_name(enum rollout_metric m)
{
    return metric_names[m];
}

const char *rollout_on_breach_name(enum rollout_on_breach b)
{
    return on_breach_names[b];
}

void rollout_policy_default(struct rollout_policy *p)
{
    memset(p, 0, sizeof(*p));
    p->success = 1.0;
    p->error = 0.0;
    p->min_devices = 1;
    p->soak_s = 0;
    p->deadline_s = 600;
    p->on_breach = ROLLOUT_ON_BREACH_PAUSE;
}

/* Reads member key of obj, when present, as a number in min..max. */
static bool number_member(const json_t *obj, const char *key, double min, double max, double *out)
{
    const json_t *v = json_object_get(obj, key);
    if (!v)
        return true;
    if (!json_is_number(v) || json_number_value(v) < min || json_number_value(v) > max)
        return false;
    *out = json_number_value(v);
    return true;
}

/* Reads member key of obj, when present, as an integer in min..max. */
static bool integer_member(const json_t *obj, const char *key, int64_t min, int64_t max,
                           int64_t *out)
{
    const json_t *v = json_object_get(obj, key);
    if (!v)
        return true;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return false;
    *out = json_integer_value(v);
    return true;
}

/* Reads gate number i of a policy into *g. EF_EINVAL with msg. */
static int gate_parse(const json_t *doc, size_t i, struct rollout_gate *g, char *msg,
                      size_t msg_size)
{
    static const char *const allowed[] = {"metric", "max", "min_inferences", NULL};
    const char *unknown = NULL, *metric;
    int rc = EF_EINVAL;
    if (!json_is_object(doc)) {
        snprintf(msg, msg_size, "policy.gates[%zu] must be an object", i);
        goto out;
    }
    if (!ef_json_keys_allowed(doc, allowed, &unknown)) {
        snprintf(msg, msg_size, "policy.gates[%zu]: unknown key '%.40s'", i, unknown);
        goto out;
    }
    metric = ef_json_str(doc, "metric");
    if (metric && strcmp(metric, "error_rate") == 0) {
        g->metric = ROLLOUT_METRIC_ERROR_RATE;
    } else if (metric && strcmp(metric, "latency_p99_ms") == 0) {
        g->metric = ROLLOUT_METRIC_LATENCY_P99_MS;
    } else {
        snprintf(msg, msg_size, "policy.gates[%zu].metric must be error_rate or latency_p99_ms", i);
        goto out;
    }
    g->max = -1;
    g->min_inferences = 1;
    if (!number_member(doc, "max", 0, g->metric == ROLLOUT_METRIC_ERROR_RATE ? 1 : 1e9, &g->max) ||
        g->max < 0) {
        snprintf(msg, msg_size, "policy.gates[%zu].max must be a number in %s", i,
                 g->metric == ROLLOUT_METRIC_ERROR_RATE ? "0..1" : "0..1e9 (ms)");
        goto out;
    }
    if (!integer_member(doc, "min_inferences", 1, ROLLOUT_MAX_INFERENCES, &g->min_inferences)) {
        snprintf(msg, msg_size, "policy.gates[%zu].min_inferences must be an integer in 1..%lld", i,
                 (long long)ROLLOUT_MAX_INFERENCES);
        goto out;
    }
    rc = 0;
out:
    return rc;
}

int rollout_policy_parse(const json_t *doc, struct rollout_policy *out, char *msg, size_t msg_size)
{
    static const char *const allowed[] = {"success",    "error", "min_devices", "soak_s",
                                          "deadline_s", "gates", "on_breach",   NULL};
    const char *unknown = NULL;
    const json_t *gates, *on_breach;
    int rc = EF_EINVAL;
    rollout_policy_default(out);
    if (!doc)
        return 0;
    if (!json_is_object(doc)) {
        snprintf(msg, msg_size, "policy must be an object");
        goto out;
    }
    if (!ef_json_keys_allowed(doc, allowed, &unknown)) {
        snprintf(msg, msg_size, "policy: unknown key '%.40s'", unknown);
        goto out;
    }
    if (!number_member(doc, "success", 0, 1, &out->success) ||
        !number_member(doc, "error", 0, 1, &out->error)) {
        snprintf(msg, msg_size, "policy.success and policy.error must be numbers in 0..1");
        goto out;
    }
    if (!integer_member(doc, "min_devices", 1, ROLLOUT_MIN_DEVICES, &out->min_devices)) {
        snprintf(msg, msg_size, "policy.min_devices must be an integer in 1..%d",
                 ROLLOUT_MIN_DEVICES);
        goto out;
    }
    if (!integer_member(doc, "soak_s", 0, ROLLOUT_MAX_SECONDS, &out->soak_s) ||
        !integer_member(doc, "deadline_s", 1, ROLLOUT_MAX_SECONDS, &out->deadline_s)) {
        snprintf(msg, msg_size,
                 "policy.soak_s must be an integer in 0..%d, policy.deadline_s in 1..%d",
                 ROLLOUT_MAX_SECONDS, ROLLOUT_MAX_SECONDS);
        goto out;
    }
    if ((gates = json_object_get(doc, "gates"))) {
        if (!json_is_array(gates) || json_array_size(gates) > ROLLOUT_MAX_GATES) {
            snprintf(msg, msg_size, "policy.gates must be an array of at most %d gates",
                     ROLLOUT_MAX_GATES);
            goto out;
        }
        for (size_t i = 0; i < json_array_size(gates); i++)
            if ((rc = gate_parse(json_array_get(gates, i), i, &out->gates[i], msg, msg_size)) != 0)
                goto out;
        out->gate_count = json_array_size(gates);
        rc = EF_EINVAL;
    }
    if ((on_breach = json_object_get(doc, "on_breach"))) {
        const char *s = json_string_value(on_breach);
        if (s && strcmp(s, "pause") == 0) {
            out->on_breach = ROLLOUT_ON_BREACH_PAUSE;
        } else if (s && strcmp(s, "rollback") == 0) {
            out->on_breach = ROLLOUT_ON_BREACH_ROLLBACK;
        } else {
            snprintf(msg, msg_size, "policy.on_breach must be pause or rollback");
            goto out;
        }
    }
    rc = 0;
out:
    if (rc != 0)
        rollout_policy_default(out);
    return rc;
}

json_t *rollout_policy_json(const struct rollout_policy *p)
{
    json_t *gates = json_array(), *doc = NULL;
    if (!gates)
        goto out;
    for (size_t i = 0; i < p->gate_count; i++) {
        const struct rollout_gate *g = &p->gates[i];
        if (json_array_append_new(
                gates, json_pack("{s:s, s:f, s:I}", "metric", rollout_metric_name(g->metric), "max",
                                 g->max, "min_inferences", (json_int_t)g->min_inferences)) != 0)
            goto out;
    }
    doc = json_pack("{s:f, s:f, s:I, s:I, s:I, s:O, s:s}", "success", p->success, "error", p->error,
                    "min_devices", (json_int_t)p->min_devices, "soak_s", (json_int_t)p->soak_s,
                    "deadline_s", (json_int_t)p->deadline_s, "gates", gates, "on_breach",
                    rollout_on_breach_name(p->on_breach));
out:
    json_decref(gates);
    return doc;
}

/* The error rule: once min_devices devices have finished, a breach when the
 * failed share is above error. Shares are compared as quotients: both sides
 * are correctly rounded, so a share exactly at the threshold equals it. */
static bool error_breached(const struct rollout_policy *p, int64_t devices, int64_t failed,
                           int64_t finished)
{
    return finished >= p->min_devices && (double)failed / (double)devices > p->error;
}

/* The first gate the telemetry breaches, with the reason; false when none
 * does (a gate with fewer than min_inferences inferences does not decide). */
static bool gate_breached(const struct rollout_policy *p, const struct ring_telemetry *t,
                          char *reason, size_t size)
{
    for (size_t i = 0; t && i < p->gate_count; i++) {
        const struct rollout_gate *g = &p->gates[i];
        double value;
        if (t->inferences < g->min_inferences || t->inferences <= 0)
            continue;
        value = g->metric == ROLLOUT_METRIC_ERROR_RATE ? (double)t->errors / (double)t->inferences
                                                       : t->max_p99_ms;
        if (value > g->max) {
            snprintf(reason, size, "gate %s: %.6g > %.6g over %lld inferences",
                     rollout_metric_name(g->metric), value, g->max, (long long)t->inferences);
            return true;
        }
    }
    return false;
}

void rollout_policy_evaluate(const struct rollout_policy *p, const struct rollout_ring_view *v,
                             struct rollout_decision *out)
{
    int64_t failed = v->failed, finished = v->committed + v->failed, unfinished;
    memset(out, 0, sizeof(*out));
    out->verdict = ROLLOUT_CONTINUE;
    if (v->devices <= 0) {
        out->verdict = ROLLOUT_SUCCEED;
        snprintf(out->reason, sizeof(out->reason), "no devices");
        return;
    }
    if (error_breached(p, v->devices, failed, finished)) {
        out->verdict = ROLLOUT_BREACH;
        snprintf(out->reason, sizeof(out->reason), "errors: %lld of %lld devices failed (> %g)",
                 (long long)failed, (long long)v->devices, p->error);
        return;
    }
    if (!v->soaking && v->running_ms >= p->deadline_s * MS_PER_S) {
        unfinished = v->devices - finished;
        out->timed_out = unfinished > 0;
        failed += unfinished > 0 ? unfinished : 0;
        finished = v->devices;
        if (error_breached(p, v->devices, failed, finished)) {
            out->verdict = ROLLOUT_BREACH;
            snprintf(out->reason, sizeof(out->reason),
                     "timeout: %lld of %lld devices failed or unfinished after %lld s (> %g)",
                     (long long)failed, (long long)v->devices, (long long)p->deadline_s, p->error);
            return;
        }
    }
    if (gate_breached(p, v->telemetry, out->reason, sizeof(out->reason))) {
        out->verdict = ROLLOUT_BREACH;
        return;
    }
    if (!v->soaking) {
        if ((double)v->committed / (double)v->devices >= p->success) {
            out->verdict = ROLLOUT_SOAK;
            snprintf(out->reason, sizeof(out->reason), "%lld of %lld devices committed (>= %g)",
                     (long long)v->committed, (long long)v->devices, p->success);
        } else if (v->running_ms >= p->deadline_s * MS_PER_S) {
            out->verdict = ROLLOUT_BREACH;
            snprintf(out->reason, sizeof(out->reason),
                     "timeout: %lld of %lld devices committed after %lld s (< %g)",
                     (long long)v->committed, (long long)v->devices, (long long)p->deadline_s,
                     p->success);
        }
        return;
    }
    /* Shares are over the ring's devices now: a device that joined during
     * the soak must commit too before the ring counts as succeeded. */
    if ((double)v->committed / (double)v->devices < p->success) {
        snprintf(out->reason, sizeof(out->reason),
                 "soaking: waiting for %lld of %lld devices committed (>= %g)",
                 (long long)v->committed, (long long)v->devices, p->success);
        return;
    }
    if (v->soaking_ms >= p->soak_s * MS_PER_S) {
        out->verdict = ROLLOUT_SUCCEED;
        snprintf(out->reason, sizeof(out->reason), "soaked %lld s", (long long)p->soak_s);
    }
}
