/*
 * api_enroll.c - enrollment: operators create enrollment tokens
 * (POST /api/v1/enroll-tokens) and devices trade a use of one for their own
 * device token (POST /api/v1/enroll). Secrets are shown once and only their
 * hashes are stored. Where the broker's dynamic-security plugin is managed
 * (dynsec.h), enrollment also creates the device's broker identity and
 * returns its password, which the server does not keep at all.
 */
#include "server/api.h"
#include "server/db.h"
#include "server/db_fleet.h"
#include "server/checkin.h"
#include "server/dynsec.h"
#include "server/mqtt.h"
#include "server/server.h"
#include "common/clock.h"
#include "common/crypto.h"
#include "common/ef_error.h"
#include "common/json_util.h"
#include "common/log.h"
#include "common/topic.h"

#include <string.h>

#define ENROLL_USES_DEFAULT  1
#define ENROLL_USES_MAX      100000
#define ENROLL_TTL_DEFAULT_S 86400
#define ENROLL_TTL_MIN_S     1
#define ENROLL_TTL_MAX_S     31536000 /* a year */
#define DEFAULT_CLASS        "default"

/* Reads optional integer member key into *out (unchanged when absent or
 * null). False when it is present but not an integer in min..max. */
static bool optional_int(const json_t *body, const char *key, int64_t min, int64_t max,
                         int64_t *out)
{
    json_t *v = json_object_get(body, key);
    if (!v || json_is_null(v))
        return true;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return false;
    *out = json_integer_value(v);
    return true;
}

/* Reads optional member "class": *class is NULL when absent or null. False
 * when it is present but not a name. */
static bool optional_class(const json_t *body, const char **class)
{
    json_t *v = json_object_get(body, "class");
    *class = NULL;
    if (!v || json_is_null(v))
        return true;
    *class = json_string_value(v);
    return *class && ef_name_valid(*class);
}

enum MHD_Result api_enroll_tokens_create(struct request *req)
{
    static const char *const allowed[] = {"uses", "ttl_seconds", "class", NULL};
    json_t *body = NULL, *doc = NULL;
    const char *unknown = NULL, *class = NULL;
    char token[EF_TOKEN_SIZE] = "", hash[EF_HEX256_SIZE], expires[EF_TIME_STR_SIZE];
    int64_t uses = ENROLL_USES_DEFAULT, ttl = ENROLL_TTL_DEFAULT_S, id = 0, now = ef_now_ms();
    enum MHD_Result r;
    int rc;
    if (!http_json_body_or_reply(req, &body))
        return http_replied(req);
    if (!ef_json_keys_allowed(body, allowed, &unknown)) {
        r = http_reply_error(req, 400, "bad_request", "unknown key '%s'", unknown);
        goto out;
    }
    if (!optional_int(body, "uses", 1, ENROLL_USES_MAX, &uses)) {
        r = http_reply_error(req, 400, "bad_request", "uses must be an integer in 1..%d",
                             ENROLL_USES_MAX);
        goto out;
    }
    if (!optional_int(body, "ttl_seconds", ENROLL_TTL_MIN_S, ENROLL_TTL_MAX_S, &ttl)) {
        r = http_reply_error(req, 400, "bad_request", "ttl_seconds must be an integer in %d..%d",
                             ENROLL_TTL_MIN_S, ENROLL_TTL_MAX_S);
        goto out;
    }
    if (!optional_class(body, &class)) {
        r = http_reply_error(req, 400, "bad_request",
                             "class must be 1..64 of [a-z0-9._-] starting with a letter or digit");
        goto out;
    }
    ef_token_generate(AUTH_PREFIX_ENROLL, token);
    ef_token_hash(token, hash);
    rc = db_enroll_token_create(req->srv->db, hash, class, uses, now + ttl * 1000, now, &id);
    if (rc != 0) {
        r = http_reply_ef_error(req, rc, "could not store the enrollment token");
        goto out;
    }
    snprintf(req->audit_detail, sizeof(req->audit_detail),
             "enroll-token:%lld uses=%lld ttl=%llds class=%s", (long long)id, (long long)uses,
             (long long)ttl, class ? class : "-");
    ef_time_format(now + ttl * 1000, expires, sizeof(expires));
    doc = json_pack("{s:I, s:s, s:I, s:s}", "id", (json_int_t)id, "token", token, "uses",
                    (json_int_t)uses, "expires_at", expires);
    r = doc ? http_reply_json(req, 201, doc) : http_reply_ef_error(req, EF_ENOMEM, "out of memory");
out:
    sodium_memzero(token, sizeof(token));
    json_decref(body);
    return r;
}

/* Consumes a use of enrollment token token_id and creates the device, in one
 * transaction. class is the body's (NULL: the token's, else "default"); a
 * body class that differs from the token's is EF_EMISMATCH. *used_class
 * receives the class enrolled. EF_ENOENT (the token is used up or expired),
 * EF_EEXIST (device id taken), EF_EMISMATCH, EF_EDB. */
static int enroll_tx(struct db *db, int64_t token_id, const char *device_id, const char *token_hash,
                     const char *class, const json_t *tags, char used_class[DB_CLASS_SIZE])
{
    char token_class[DB_CLASS_SIZE] = "";
    int64_t now = ef_now_ms();
    int rc = db_tx_begin(db);
    if (rc != 0)
        return rc;
    if ((rc = db_enroll_token_consume(db, token_id, now, token_class)) != 0)
        goto out;
    if (class && token_class[0] && strcmp(class, token_class) != 0) {
        rc = EF_EMISMATCH;
        goto out;
    }
    snprintf(used_class, DB_CLASS_SIZE, "%s",
             class            ? class
             : token_class[0] ? token_class
                              : DEFAULT_CLASS);
    rc = db_device_create(db, device_id, token_hash, used_class, tags, now);
out:
    if (rc == EF_EMISMATCH)
        snprintf(used_class, DB_CLASS_SIZE, "%s", token_class);
    return db_tx_end(db, rc);
}

/* Enrolls device_id with a broker identity, so that either both the broker
 * and the database hold the device or neither does: under the identity lock,
 * checks that no active device has the id, creates the identity (password
 * receives its password), and only once the broker accepted it runs
 * enroll_tx; when anything fails, the identity is deleted again. Errors of
 * enroll_tx and of dynsec_device_create. */
static int enroll_with_identity(struct server *srv, struct dynsec *ds, int64_t token_id,
                                const char *device_id, const char *token_hash, const char *class,
                                const json_t *tags, char used_class[DB_CLASS_SIZE],
                                char password[DYNSEC_PASSWORD_SIZE])
{
    json_t *existing = NULL;
    bool touched = false;
    dynsec_identity_lock(ds);
    int rc = db_device_get(srv->db, device_id, &existing);
    if (rc == 0)
        rc = EF_EEXIST; /* its identity is in use: leave it alone */
    else if (rc == EF_ENOENT) {
        touched = true;
        rc = dynsec_device_create(ds, device_id, password);
    }
    if (rc == 0)
        rc = enroll_tx(srv->db, token_id, device_id, token_hash, class, tags, used_class);
    if (rc != 0 && touched) {
        /* Also after a timeout: the broker may have created it after all. */
        int undo = dynsec_device_delete(ds, device_id);
        if (undo != 0)
            ef_warn("dynsec_undo_failed", "device=%s error=%s", device_id, ef_errname(undo));
        sodium_memzero(password, DYNSEC_PASSWORD_SIZE);
    }
    dynsec_identity_unlock(ds);
    json_decref(existing);
    return rc;
}

enum MHD_Result api_enroll(struct request *req)
{
    static const char *const allowed[] = {"device_id", "class", "tags", NULL};
    struct server *srv = req->srv;
    json_t *body = NULL, *doc = NULL, *tags;
    const char *unknown = NULL, *device_id, *class = NULL;
    char token[EF_TOKEN_SIZE] = "", hash[EF_HEX256_SIZE], used_class[DB_CLASS_SIZE] = "";
    char release_b64[EF_PK_B64_SIZE], server_b64[EF_PK_B64_SIZE];
    char password[DYNSEC_PASSWORD_SIZE] = "";
    struct dynsec *ds = mqtt_dynsec(srv->mqtt);
    enum dynsec_state broker;
    enum MHD_Result r;
    int rc;
    if (req->who.kind != PRINCIPAL_ENROLL)
        return http_reply_error(req, 403, "forbidden", "enrollment needs an enrollment token");
    if (!http_json_body_or_reply(req, &body))
        return http_replied(req);
    if (!ef_json_keys_allowed(body, allowed, &unknown)) {
        r = http_reply_error(req, 400, "bad_request", "unknown key '%s'", unknown);
        goto out;
    }
    device_id = ef_json_str(body, "device_id");
    if (!ef_device_id_valid(device_id)) {
        r = http_reply_error(req, 400, "bad_request",
                             "device_id must be 1..64 of [A-Za-z0-9._-], not starting with . or -");
        goto out;
    }
    if (!optional_class(body, &class)) {
        r = http_reply_error(req, 400, "bad_request",
                             "class must be 1..64 of [a-z0-9._-] starting with a letter or digit");
        goto out;
    }
    tags = json_object_get(body, "tags");
    if (json_is_null(tags))
        tags = NULL;
    if (tags && !db_tags_valid(tags)) {
        r = http_reply_error(req, 400, "bad_request",
                             "tags must be an object of at most %d names to strings of at most "
                             "%d bytes",
                             DB_TAGS_MAX, DB_TAG_VALUE_MAX);
        goto out;
    }
    broker = dynsec_state_wait(ds);
    if (broker == DYNSEC_UNKNOWN) {
        r = http_reply_error(req, 503, "broker_unavailable",
                             "the broker has not answered yet, so the device's broker "
                             "credentials cannot be made; try again");
        goto out;
    }
    ef_token_generate(AUTH_PREFIX_DEVICE, token);
    ef_token_hash(token, hash);
    if (broker == DYNSEC_MANAGED)
        rc = enroll_with_identity(srv, ds, req->who.token_id, device_id, hash, class, tags,
                                  used_class, password);
    else
        rc = enroll_tx(srv->db, req->who.token_id, device_id, hash, class, tags, used_class);
    if (rc == EF_ENET || rc == EF_ETIMEDOUT) {
        r = http_reply_error(req, 503, "broker_unavailable",
                             "the broker did not take the device's credentials; try again");
        goto out;
    }
    if (rc == EF_EPERM) {
        r = http_reply_error(req, 500, "internal", "the broker refused the device's credentials");
        goto out;
    }
    if (rc == EF_ENOENT) {
        r = http_reply_error(req, 401, "unauthenticated",
                             "the enrollment token is used up or expired");
        goto out;
    }
    if (rc == EF_EEXIST) {
        r = http_reply_error(req, 409, "device_exists", "device %s is already enrolled", device_id);
        goto out;
    }
    if (rc == EF_EMISMATCH) {
        r = http_reply_error(req, 422, "unprocessable",
                             "this enrollment token enrolls devices of class %s", used_class);
        goto out;
    }
    if (rc != 0) {
        r = http_reply_ef_error(req, rc, "could not enroll the device");
        goto out;
    }
    /* A new (or revived) device has no assignment yet: seq 0 in the cache. */
    if (srv->checkin && checkin_put(srv->checkin, hash, device_id, 0) != 0)
        ef_warn("checkin_put_failed", "device=%s", device_id);
    snprintf(req->audit_detail, sizeof(req->audit_detail), "device:%s class=%s%s", device_id,
             used_class, password[0] ? " broker-identity" : "");
    ef_pk_to_b64(srv->release_key.pk, release_b64);
    ef_pk_to_b64(srv->server_key.pk, server_b64);
    doc = json_pack("{s:s, s:s, s:{s:s, s:s}}", "device_id", device_id, "device_token", token,
                    "keys", "release", release_b64, "server", server_b64);
    if (doc && password[0]) {
        json_t *mqtt = json_pack("{s:s, s:s}", "username", device_id, "password", password);
        if (json_object_set_new(doc, "mqtt", mqtt) != 0) { /* takes mqtt, even NULL */
            json_decref(doc);
            doc = NULL;
        }
    }
    r = doc ? http_reply_json(req, 201, doc) : http_reply_ef_error(req, EF_ENOMEM, "out of memory");
out:
    sodium_memzero(password, sizeof(password));
    sodium_memzero(token, sizeof(token));
    json_decref(body);
    return r;
}
