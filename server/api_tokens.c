/*
 * api_tokens.c - /api/v1/tokens: creating, listing and revoking API tokens
 * (admin only). A token's secret is shown once, at creation; only its hash
 * is stored and nothing here ever logs or audits it.
 */
#include "server/api.h"
#include "server/db_fleet.h"
#include "server/server.h"
#include "common/clock.h"
#include "common/crypto.h"
#include "common/ef_error.h"
#include "common/json_util.h"

#include <stdlib.h>
#include <string.h>

#define TOKEN_NAME_MAX 128 /* bytes (the principal keeps the first 63 for the audit log) */

/* True when name is 1..TOKEN_NAME_MAX bytes without control characters
 * (it appears in audit rows and logs). */
static bool token_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > TOKEN_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
            return false;
    return true;
}

enum MHD_Result api_tokens_create(struct request *req)
{
    static const char *const allowed[] = {"role", "name", NULL};
    json_t *body = NULL, *doc = NULL, *jname;
    const char *unknown = NULL, *role_name, *name = NULL;
    char token[EF_TOKEN_SIZE] = "", hash[EF_HEX256_SIZE];
    enum role role;
    int64_t id = 0;
    enum MHD_Result r;
    int rc;
    if (!http_json_body_or_reply(req, &body))
        return http_replied(req);
    if (!ef_json_keys_allowed(body, allowed, &unknown)) {
        r = http_reply_error(req, 400, "bad_request", "unknown key '%s'", unknown);
        goto out;
    }
    role_name = ef_json_str(body, "role");
    if (!role_name || auth_role_parse(role_name, &role) != 0) {
        r = http_reply_error(req, 400, "bad_request",
                             "role must be one of admin, operator, viewer");
        goto out;
    }
    jname = json_object_get(body, "name");
    if (jname && !json_is_null(jname)) {
        name = json_string_value(jname);
        if (!name || !token_name_valid(name)) {
            r = http_reply_error(req, 400, "bad_request",
                                 "name must be 1..%d bytes without control characters",
                                 TOKEN_NAME_MAX);
            goto out;
        }
    }
    ef_token_generate(AUTH_PREFIX_API, token);
    ef_token_hash(token, hash);
    rc = db_api_token_create(req->srv->db, name, auth_role_name(role), hash, ef_now_ms(), &id);
    if (rc != 0) {
        r = http_reply_ef_error(req, rc, "could not store the token");
        goto out;
    }
    snprintf(req->audit_detail, sizeof(req->audit_detail), "token:%lld role=%s", (long long)id,
             auth_role_name(role));
    doc = json_pack("{s:I, s:s, s:s, s:s?}", "id", (json_int_t)id, "token", token, "role",
                    auth_role_name(role), "name", name);
    r = doc ? http_reply_json(req, 201, doc) : http_reply_ef_error(req, EF_ENOMEM, "out of memory");
out:
    sodium_memzero(token, sizeof(token));
    json_decref(body);
    return r;
}

enum MHD_Result api_tokens_list(struct request *req)
{
    json_t *tokens = NULL, *doc = NULL;
    int rc = db_api_tokens_list(req->srv->db, &tokens);
    if (rc != 0)
        return http_reply_ef_error(req, rc, "could not list tokens");
    if (!(doc = json_pack("{s:o}", "tokens", tokens)))
        return http_reply_ef_error(req, EF_ENOMEM, "out of memory");
    return http_reply_json(req, 200, doc);
}

enum MHD_Result api_token_revoke(struct request *req)
{
    const char *param = http_param(req, 0);
    char role[16] = "", *end = NULL;
    long long id = strtoll(param, &end, 10);
    int rc;
    if (!*param || *end || id < 1 || (param[0] < '0' || param[0] > '9'))
        return http_reply_error(req, 404, "not_found", "no token %.32s", param);
    rc = db_api_token_revoke(req->srv->db, id, ef_now_ms(), role);
    if (rc == EF_ENOENT)
        return http_reply_error(req, 404, "not_found", "no token %lld", id);
    if (rc == EF_ECONFLICT)
        return http_reply_error(req, 409, "conflict",
                                "token %lld is the last admin token; create another first", id);
    if (rc != 0)
        return http_reply_ef_error(req, rc, "could not revoke the token");
    snprintf(req->audit_detail, sizeof(req->audit_detail), "token:%lld role=%s", id, role);
    return http_reply_empty(req, 204, NULL);
}
