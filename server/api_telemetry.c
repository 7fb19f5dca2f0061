/*
 * api_telemetry.c - GET /api/v1/telemetry: raw telemetry windows, newest
 * first, filtered by model version, ring, device and receive time, with a
 * metric's value per window on request; GET /api/v1/telemetry/rollups: a
 * metric per minute per model version x ring (viewer; docs/monitoring.md).
 */
#include "server/api.h"
#include "server/api_params.h"
#include "server/db_telemetry.h"
#include "server/metric.h"
#include "server/server.h"
#include "server/telemetry_parse.h"
#include "common/clock.h"
#include "common/ef_error.h"
#include "common/topic.h"

#include <stdlib.h>
#include <string.h>

#define TELEMETRY_LIMIT_DEFAULT 500
/* Reads `model` (NAME or NAME@VERSION) into name and *version (0 without
 * one). False when it is neither. */
static bool model_value(const char *model, char name[TELEMETRY_MODEL_SIZE], int64_t *version)
{
    *version = 0;
    if (strchr(model, '@'))
        return telemetry_model_parse(model, name, version) == 0;
    if (!ef_name_valid(model))
        return false;
    snprintf(name, TELEMETRY_MODEL_SIZE, "%s", model);
    return true;
}

/* The metric names, for error messages. */
static void metric_names(char *buf, size_t size, bool rolled_up_only)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < METRIC_COUNT && len < size; i++)
        if (!rolled_up_only || metric_rolled_up((enum metric)i)) {
            int n = snprintf(buf + len, size - len, "%s%s", len ? ", " : "",
                             metric_name((enum metric)i));
            len += n > 0 ? (size_t)n : 0;
        }
}

enum MHD_Result api_telemetry_list(struct request *req)
{
    const char *model = http_query(req, "model"), *since = http_query(req, "since");
    const char *metric = http_query(req, "metric");
    char name[TELEMETRY_MODEL_SIZE], names[200];
    struct db_telemetry_filter f = {0};
    long long limit = TELEMETRY_LIMIT_DEFAULT;
    enum metric m;
    json_t *windows = NULL, *doc;
    int rc;
    if (model) {
        if (!model_value(model, name, &f.version))
            return http_reply_error(req, 400, "bad_request", "model must be NAME or NAME@VERSION");
        f.model = name;
    }
    if (metric) {
        if (metric_parse(metric, &m) != 0) {
            metric_names(names, sizeof(names), false);
            return http_reply_error(req, 400, "bad_request", "metric must be one of %s", names);
        }
        f.metric = &m;
    }
    f.ring = http_query(req, "ring");
    if (f.ring && !ef_name_valid(f.ring))
        return http_reply_error(req, 400, "bad_request", "ring must be a ring name");
    f.device = http_query(req, "device");
    if (f.device && !ef_device_id_valid(f.device))
        return http_reply_error(req, 400, "bad_request", "device must be a device id");
    if (since && !api_time_value(since, ef_now_ms(), &f.since))
        return http_reply_error(req, 400, "bad_request",
                                "since must be an RFC 3339 UTC time, Unix ms or a number of "
                                "seconds ago");
    if (!api_query_int(req, "limit", 1, DB_TELEMETRY_LIMIT_MAX, &limit))
        return http_reply_error(req, 400, "bad_request", "limit must be an integer in 1..%d",
                                DB_TELEMETRY_LIMIT_MAX);
    f.limit = (int)limit;
    if ((rc = db_telemetry_query(req->srv->db, &f, &windows)) != 0)
        return http_reply_ef_error(req, rc, "could not read telemetry");
    if (!(doc = json_pack("{s:o}", "windows", windows)))
        return http_reply_ef_error(req, EF_ENOMEM, "out of memory");
    return http_reply_json(req, 200, doc);
}

enum MHD_Result api_telemetry_rollups(struct request *req)
{
    const char *model = http_query(req, "model"), *metric = http_query(req, "metric");
    const char *version = http_query(req, "version"), *since = http_query(req, "since");
    const char *until = http_query(req, "until");
    char name[TELEMETRY_MODEL_SIZE], names[200];
    struct db_rollup_filter f = {.model = name};
    int64_t now = ef_now_ms(), at_version = 0;
    json_t *doc = NULL;
    int rc;
    if (!model || !model_value(model, name, &at_version))
        return http_reply_error(req, 400, "bad_request",
                                "model is required: NAME (or NAME@VERSION)");
    f.version = at_version;
    if (!metric || metric_parse(metric, &f.metric) != 0 || !metric_rolled_up(f.metric)) {
        metric_names(names, sizeof(names), true);
        return http_reply_error(req, 400, "bad_request", "metric is required, one of %s", names);
    }
    if (version) {
        char *end = NULL;
        long long v = version[0] >= '1' && version[0] <= '9' ? strtoll(version, &end, 10) : 0;
        if (!end || *end || v < 1 || (at_version && v != at_version))
            return http_reply_error(req, 400, "bad_request",
                                    "version must be an integer >= 1 (and agree with model)");
        f.version = v;
    }
    f.ring = http_query(req, "ring");
    if (f.ring && !ef_name_valid(f.ring))
        return http_reply_error(req, 400, "bad_request", "ring must be a ring name");
    if ((since && !api_time_value(since, now, &f.since)) ||
        (until && !api_time_value(until, now, &f.until)))
        return http_reply_error(req, 400, "bad_request",
                                "since and until must be RFC 3339 UTC times, Unix ms or numbers of "
                                "seconds ago");
    if (until && f.until < 1)
        f.until = 1; /* before every minute: an empty answer, not "no bound" */
    rc = db_telemetry_rollups(req->srv->db, &f, &doc);
    if (rc == EF_ETOOBIG)
        return http_reply_error(req, 400, "too_many_points",
                                "more than %d rollup minutes match: narrow since/until, version "
                                "or ring",
                                DB_TELEMETRY_POINTS_MAX);
    if (rc != 0)
        return http_reply_ef_error(req, rc, "could not read telemetry rollups");
    return http_reply_json(req, 200, doc);
}
