/*
 * api_telemetry.c - GET /api/v1/telemetry: raw telemetry windows, newest
 * first, filtered by model version, ring, device and receive time (viewer).
 */
#include "server/api.h"
#include "server/db_telemetry.h"
#include "server/server.h"
#include "server/telemetry_parse.h"
#include "common/clock.h"
#include "common/ef_error.h"
#include "common/topic.h"

#include <stdlib.h>
#include <string.h>

#define TELEMETRY_LIMIT_DEFAULT 500
#define TELEMETRY_SINCE_MAX_S   (100LL * 366 * 24 * 3600) /* "seconds ago" at most a century */

/* Reads `since`: an RFC 3339 UTC time, or a whole number of seconds before
 * now. False when it is neither. */
static bool since_value(const char *s, int64_t now, int64_t *out)
{
    char *end = NULL;
    if (s[0] >= '0' && s[0] <= '9' && strlen(s) <= 12) {
        long long secs = strtoll(s, &end, 10);
        if (*end == '\0' && secs <= TELEMETRY_SINCE_MAX_S) {
            *out = now - secs * 1000;
            return true;
        }
    }
    return ef_time_parse(s, out) == 0;
}

enum MHD_Result api_telemetry_list(struct request *req)
{
    const char *model = http_query(req, "model"), *limit = http_query(req, "limit");
    const char *since = http_query(req, "since");
    char name[TELEMETRY_MODEL_SIZE];
    struct db_telemetry_filter f = {.limit = TELEMETRY_LIMIT_DEFAULT};
    json_t *windows = NULL, *doc;
    int rc;
    if (model) {
        if (strchr(model, '@') ? telemetry_model_parse(model, name, &f.version) != 0
                               : !ef_name_valid(model))
            return http_reply_error(req, 400, "bad_request", "model must be NAME or NAME@VERSION");
        if (!strchr(model, '@'))
            snprintf(name, sizeof(name), "%s", model);
        f.model = name;
    }
    f.ring = http_query(req, "ring");
    if (f.ring && !ef_name_valid(f.ring))
        return http_reply_error(req, 400, "bad_request", "ring must be a ring name");
    f.device = http_query(req, "device");
    if (f.device && !ef_device_id_valid(f.device))
        return http_reply_error(req, 400, "bad_request", "device must be a device id");
    if (since && !since_value(since, ef_now_ms(), &f.since))
        return http_reply_error(req, 400, "bad_request",
                                "since must be an RFC 3339 UTC time or a number of seconds ago");
    if (limit) {
        char *end = NULL;
        long long n = limit[0] >= '0' && limit[0] <= '9' ? strtoll(limit, &end, 10) : 0;
        if (!end || *end || n < 1 || n > DB_TELEMETRY_LIMIT_MAX)
            return http_reply_error(req, 400, "bad_request", "limit must be an integer in 1..%d",
                                    DB_TELEMETRY_LIMIT_MAX);
        f.limit = (int)n;
    }
    if ((rc = db_telemetry_query(req->srv->db, &f, &windows)) != 0)
        return http_reply_ef_error(req, rc, "could not read telemetry");
    if (!(doc = json_pack("{s:o}", "windows", windows)))
        return http_reply_ef_error(req, EF_ENOMEM, "out of memory");
    return http_reply_json(req, 200, doc);
}
