/*
 * api_audit.c - GET /api/v1/audit: the append-only audit log, newest first,
 * paged with `before` (admin only).
 */
#include "server/api.h"
#include "server/api_params.h"
#include "server/db.h"
#include "server/server.h"
#include "common/clock.h"
#include "common/ef_error.h"

#define AUDIT_LIMIT_DEFAULT 100
#define AUDIT_LIMIT_MAX     1000

enum MHD_Result api_audit_list(struct request *req)
{
    long long limit = AUDIT_LIMIT_DEFAULT, before = 0;
    json_t *entries = NULL, *doc = NULL, *entry;
    size_t i;
    int rc;
    if (!api_query_int(req, "limit", 1, AUDIT_LIMIT_MAX, &limit))
        return http_reply_error(req, 400, "bad_request", "limit must be an integer in 1..%d",
                                AUDIT_LIMIT_MAX);
    if (!api_query_int(req, "before", 1, INT64_MAX, &before))
        return http_reply_error(req, 400, "bad_request", "before must be a positive entry id");
    if ((rc = db_audit_list(req->srv->db, before, (int)limit, &entries)) != 0)
        return http_reply_ef_error(req, rc, "could not read the audit log");
    /* Stored as Unix ms; the API speaks RFC 3339. */
    json_array_foreach(entries, i, entry)
    {
        char ts[EF_TIME_STR_SIZE];
        ef_time_format(json_integer_value(json_object_get(entry, "ts")), ts, sizeof(ts));
        json_object_set_new(entry, "ts", json_string(ts));
    }
    if (!(doc = json_pack("{s:o}", "entries", entries)))
        return http_reply_ef_error(req, EF_ENOMEM, "out of memory");
    return http_reply_json(req, 200, doc);
}
