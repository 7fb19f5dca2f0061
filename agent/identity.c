/*
 * identity.c - enrollment and the pinned identity file.
 */
#include "agent/identity.h"
#include "agent/http_client.h"
#include "common/ef_error.h"
#include "common/fsutil.h"
#include "common/json_util.h"
#include "common/log.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define ENROLL_RETRY_MIN_MS 1000
#define ENROLL_RETRY_MAX_MS 60000

/* An enrollment under way: retried until it succeeds or is refused. */
struct enrollment {
    struct agent *a;
    identity_done_cb done;
    uv_timer_t retry;    /* backoff between attempts */
    uint64_t backoff_ms; /* next delay */
    bool in_flight;      /* a request is under way; its callback will come */
    bool timer_closed;   /* the timer's close callback ran */
    bool finished;       /* done was called, or the enrollment was cancelled */
};

static int identity_path(const struct agent *a, char *buf, size_t size)
{
    int n = snprintf(buf, size, "%s/%s", a->cfg.data_dir, IDENTITY_FILE);
    return n > 0 && (size_t)n < size ? 0 : EF_ETOOBIG;
}

/* Keys given on the command line must match the pinned (or offered) ones. */
static int keys_agree(const struct agent *a, const unsigned char release[EF_PK_BYTES],
                      const unsigned char server[EF_PK_BYTES])
{
    unsigned char pk[EF_PK_BYTES];
    if (a->cfg.release_key[0] && (ef_pk_from_b64(a->cfg.release_key, pk) != 0 ||
                                  sodium_memcmp(pk, release, EF_PK_BYTES) != 0))
        return EF_EMISMATCH;
    if (a->cfg.server_key[0] &&
        (ef_pk_from_b64(a->cfg.server_key, pk) != 0 || sodium_memcmp(pk, server, EF_PK_BYTES) != 0))
        return EF_EMISMATCH;
    return 0;
}

int identity_load(struct agent *a)
{
    char path[600], *text = NULL;
    size_t len = 0;
    json_t *doc = NULL;
    const char *device_id, *token, *release, *server, *user = "", *pass = "";
    struct stat st;
    int rc = identity_path(a, path, sizeof(path));
    if (rc != 0)
        return rc;
    if (stat(path, &st) != 0)
        return ef_from_errno(errno);
    if (st.st_mode & 077) {
        ef_error("identity_unsafe", "path=%s reason=\"readable by others\"", path);
        return EF_EPERM;
    }
    if ((rc = ef_read_file(path, 64 * 1024, &text, &len)) != 0 ||
        (rc = ef_json_load(text, len, 64 * 1024, &doc, NULL, 0)) != 0)
        goto out;
    rc = EF_EPARSE;
    if (json_unpack(doc, "{s:s, s:s, s:s, s:s, s?s, s?s}", "device_id", &device_id, "device_token",
                    &token, "release_key", &release, "server_key", &server, "mqtt_username", &user,
                    "mqtt_password", &pass) != 0 ||
        strlen(token) >= sizeof(a->id.device_token) ||
        strlen(user) >= sizeof(a->id.mqtt_username) ||
        strlen(pass) >= sizeof(a->id.mqtt_password) ||
        ef_pk_from_b64(release, a->id.release_pk) != 0 ||
        ef_pk_from_b64(server, a->id.server_pk) != 0)
        goto out;
    if (strcmp(device_id, a->cfg.device_id) != 0) {
        ef_error("identity_mismatch", "enrolled_as=%s configured=%s", device_id, a->cfg.device_id);
        rc = EF_EMISMATCH;
        goto out;
    }
    if ((rc = keys_agree(a, a->id.release_pk, a->id.server_pk)) != 0) {
        ef_error("identity_keys_differ", "reason=\"pinned keys are never replaced\"");
        goto out;
    }
    snprintf(a->id.device_token, sizeof(a->id.device_token), "%s", token);
    snprintf(a->id.mqtt_username, sizeof(a->id.mqtt_username), "%s", user);
    snprintf(a->id.mqtt_password, sizeof(a->id.mqtt_password), "%s", pass);
    rc = 0;
out:
    json_decref(doc);
    if (text)
        sodium_memzero(text, len);
    free(text);
    return rc;
}

static int identity_save(struct agent *a)
{
    char path[600], release[EF_PK_B64_SIZE], server[EF_PK_B64_SIZE];
    char *text = NULL;
    int rc = identity_path(a, path, sizeof(path));
    if (rc != 0)
        return rc;
    ef_pk_to_b64(a->id.release_pk, release);
    ef_pk_to_b64(a->id.server_pk, server);
    json_t *doc =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "device_id", a->cfg.device_id, "device_token",
                  a->id.device_token, "release_key", release, "server_key", server, "mqtt_username",
                  a->id.mqtt_username, "mqtt_password", a->id.mqtt_password);
    if (!doc || !(text = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS)))
        rc = EF_ENOMEM;
    else
        rc = ef_atomic_write(path, text, strlen(text), 0600);
    if (text) {
        sodium_memzero(text, strlen(text));
        free(text);
    }
    json_decref(doc);
    return rc;
}

/* The enrollment is freed when its timer is closed and no request can still
 * call back into it, whichever happens last. */
static void enrollment_release(struct enrollment *e)
{
    if (e->timer_closed && !e->in_flight)
        free(e);
}

static void enrollment_close_cb(uv_handle_t *h)
{
    struct enrollment *e = h->data;
    e->timer_closed = true;
    enrollment_release(e);
}

static void enrollment_stop(struct enrollment *e)
{
    e->finished = true;
    if (e->a->enrollment == e)
        e->a->enrollment = NULL;
    uv_close((uv_handle_t *)&e->retry, enrollment_close_cb);
}

static void enrollment_finish(struct enrollment *e, int rc)
{
    struct agent *a = e->a;
    identity_done_cb done = e->done;
    enrollment_stop(e);
    done(a, rc);
}

void identity_enroll_cancel(struct agent *a)
{
    if (a->enrollment)
        enrollment_stop(a->enrollment);
}

/* Reads the enrollment answer into a->id. */
static int enrollment_accept(struct agent *a, const struct http_result *res)
{
    json_t *doc = NULL;
    const char *token, *release, *server, *user = "", *pass = "";
    unsigned char release_pk[EF_PK_BYTES], server_pk[EF_PK_BYTES];
    int rc = ef_json_load(res->body, res->body_len, 64 * 1024, &doc, NULL, 0);
    if (rc != 0)
        return rc;
    rc = EF_EPARSE;
    if (json_unpack(doc, "{s:s, s:{s:s, s:s}, s?{s:s, s:s}}", "device_token", &token, "keys",
                    "release", &release, "server", &server, "mqtt", "username", &user, "password",
                    &pass) != 0 ||
        strlen(token) >= sizeof(a->id.device_token) ||
        strlen(user) >= sizeof(a->id.mqtt_username) ||
        strlen(pass) >= sizeof(a->id.mqtt_password) || ef_pk_from_b64(release, release_pk) != 0 ||
        ef_pk_from_b64(server, server_pk) != 0)
        goto out;
    if ((rc = keys_agree(a, release_pk, server_pk)) != 0) {
        ef_error("enroll_keys_differ",
                 "reason=\"the server offered keys other than the provisioned ones\"");
        goto out;
    }
    memcpy(a->id.release_pk, release_pk, EF_PK_BYTES);
    memcpy(a->id.server_pk, server_pk, EF_PK_BYTES);
    snprintf(a->id.device_token, sizeof(a->id.device_token), "%s", token);
    snprintf(a->id.mqtt_username, sizeof(a->id.mqtt_username), "%s", user);
    snprintf(a->id.mqtt_password, sizeof(a->id.mqtt_password), "%s", pass);
    rc = identity_save(a);
out:
    json_decref(doc);
    return rc;
}

static void enrollment_attempt(uv_timer_t *t);

static void enrollment_answered(void *ctx, const struct http_result *res)
{
    struct enrollment *e = ctx;
    struct agent *a = e->a;
    e->in_flight = false;
    if (e->finished) {
        enrollment_release(e);
        return;
    }
    if (res->rc == EF_EBUSY || a->stopping) {
        enrollment_finish(e, EF_EBUSY);
        return;
    }
    if (res->rc == 0 && res->status == 201) {
        int rc = enrollment_accept(a, res);
        if (rc == 0)
            ef_info("enrolled", "device=%s broker_identity=%s", a->cfg.device_id,
                    a->id.mqtt_username[0] ? "own" : "anonymous");
        enrollment_finish(e, rc);
        return;
    }
    /* 4xx are final: a wrong token or a taken id will not fix itself. */
    if (res->rc == 0 && res->status >= 400 && res->status < 500) {
        ef_error("enroll_refused", "status=%ld body=\"%.200s\"", res->status,
                 res->body ? res->body : "");
        enrollment_finish(e, res->status == 409 ? EF_EEXIST : EF_EAUTH);
        return;
    }
    ef_warn("enroll_retry", "status=%ld error=%s delay_ms=%llu", res->status, ef_errname(res->rc),
            (unsigned long long)e->backoff_ms);
    uv_timer_start(&e->retry, enrollment_attempt, e->backoff_ms, 0);
    e->backoff_ms =
        e->backoff_ms * 2 > ENROLL_RETRY_MAX_MS ? ENROLL_RETRY_MAX_MS : e->backoff_ms * 2;
}

static void enrollment_attempt(uv_timer_t *t)
{
    struct enrollment *e = t->data;
    struct agent *a = e->a;
    char url[320], *body = NULL;
    json_t *tags = json_loads(a->cfg.tags, 0, NULL);
    json_t *doc = json_pack("{s:s, s:s, s:o}", "device_id", a->cfg.device_id, "class",
                            a->cfg.device_class, "tags", tags ? tags : json_object());
    body = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    snprintf(url, sizeof(url), "%s/api/v1/enroll", a->cfg.server_url);
    struct http_request_opts opts = {
        .url = url,
        .method = "POST",
        .bearer = a->cfg.enroll_token,
        .json_body = body,
        .max_bytes = 64 * 1024,
        .timeout_ms = 15000,
    };
    int rc = body ? http_client_request(a->http, &opts, enrollment_answered, e) : EF_ENOMEM;
    free(body);
    if (rc == 0)
        e->in_flight = true;
    else {
        ef_warn("enroll_retry", "error=%s delay_ms=%llu", ef_errname(rc),
                (unsigned long long)e->backoff_ms);
        uv_timer_start(&e->retry, enrollment_attempt, e->backoff_ms, 0);
    }
}

int identity_enroll(struct agent *a, identity_done_cb done)
{
    if (!a->cfg.enroll_token[0]) {
        ef_error("enroll_impossible", "reason=\"not enrolled and no --enroll-token given\"");
        return EF_EAUTH;
    }
    struct enrollment *e = calloc(1, sizeof(*e));
    if (!e)
        return EF_ENOMEM;
    e->a = a;
    e->done = done;
    e->backoff_ms = ENROLL_RETRY_MIN_MS;
    uv_timer_init(agent_loop(a), &e->retry);
    e->retry.data = e;
    a->enrollment = e;
    uv_timer_start(&e->retry, enrollment_attempt, 0, 0);
    return 0;
}
