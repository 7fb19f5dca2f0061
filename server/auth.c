/* auth.c - bearer tokens to principals, and role names. */
#include "server/auth.h"
#include "server/checkin.h"
#include "server/db_fleet.h"
#include "common/crypto.h"
#include "common/clock.h"
#include "common/ef_error.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *const role_names[] = {"none", "viewer", "operator", "admin"};

int auth_role_parse(const char *s, enum role *out)
{
    for (int r = ROLE_VIEWER; r <= ROLE_ADMIN; r++) {
        if (s && strcmp(s, role_names[r]) == 0) {
            *out = (enum role)r;
            return 0;
        }
    }
    return EF_EINVAL;
}

const char *auth_role_name(enum role role)
{
    return role >= ROLE_NONE && role <= ROLE_ADMIN ? role_names[role] : "none";
}

static bool has_prefix(const char *token, const char *prefix)
{
    size_t n = strlen(prefix);
    return strncmp(token, prefix, n) == 0 && token[n] == '_';
}

int auth_authenticate(struct db *db, struct checkin *cache, const char *header,
                      struct principal *who)
{
    char hash[EF_HEX256_SIZE];
    char role[16] = "", name[64] = "";
    int rc;
    memset(who, 0, sizeof(*who));
    who->kind = PRINCIPAL_ANONYMOUS;
    if (!header)
        return 0;
    if (strncasecmp(header, "Bearer ", 7) != 0)
        return EF_EAUTH;
    const char *token = header + 7;
    size_t len = strlen(token);
    if (len < 8 || len >= EF_TOKEN_SIZE)
        return EF_EAUTH;
    ef_token_hash(token, hash);
    if (has_prefix(token, AUTH_PREFIX_API)) {
        rc = db_api_token_find(db, hash, &who->token_id, role, name);
        if (rc == 0 && auth_role_parse(role, &who->role) == 0) {
            who->kind = PRINCIPAL_API;
            snprintf(who->name, sizeof(who->name), "%s", name);
        }
    } else if (has_prefix(token, AUTH_PREFIX_DEVICE)) {
        rc = cache ? checkin_device(cache, hash, who->device_id) : EF_ENOENT;
        if (rc == EF_ENOENT)
            rc = db_device_find_by_token(db, hash, who->device_id);
        if (rc == 0)
            who->kind = PRINCIPAL_DEVICE;
    } else if (has_prefix(token, AUTH_PREFIX_ENROLL)) {
        rc = db_enroll_token_find(db, hash, ef_now_ms(), &who->token_id);
        if (rc == 0)
            who->kind = PRINCIPAL_ENROLL;
    } else {
        return EF_EAUTH;
    }
    sodium_memzero(hash, sizeof(hash));
    if (rc == EF_ENOENT)
        return EF_EAUTH;
    return rc;
}

void auth_describe(const struct principal *who, char *buf, size_t size)
{
    switch (who->kind) {
    case PRINCIPAL_API:
        snprintf(buf, size, "token:%lld(%s)", (long long)who->token_id,
                 who->name[0] ? who->name : auth_role_name(who->role));
        break;
    case PRINCIPAL_DEVICE:
        snprintf(buf, size, "device:%s", who->device_id);
        break;
    case PRINCIPAL_ENROLL:
        snprintf(buf, size, "enroll-token:%lld", (long long)who->token_id);
        break;
    default:
        snprintf(buf, size, "anonymous");
        break;
    }
}
