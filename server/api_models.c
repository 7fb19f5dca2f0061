/*
 * api_models.c - the registry resource: models, version uploads, and the
 * manifests, signatures and artifacts devices download.
 *
 * An upload becomes a version in three steps, so that a refused upload
 * leaves nothing behind: the manifest is built and signed (or a manifest
 * signed elsewhere is verified against the upload), then the artifact is
 * adopted into the content-addressed store, then the model (if new) and the
 * version row are written in one transaction. Only the store object can
 * outlive a failure of the last step, and it is harmless: it is named by its
 * content and a later upload of the same bytes reuses it.
 */
#include "server/api.h"
#include "server/db.h"
#include "server/db_fleet.h"
#include "server/db_registry.h"
#include "server/manifest_build.h"
#include "server/server.h"
#include "server/store.h"
#include "common/clock.h"
#include "common/crypto.h"
#include "common/ef_error.h"
#include "common/fsutil.h"
#include "common/json_util.h"
#include "common/log.h"
#include "common/manifest.h"
#include "common/topic.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MODEL_DESCRIPTION_MAX 1024 /* bytes of a model description */
#define VERSION_DIGITS_MAX    18   /* digits of a {version} path segment */
#define SIGNATURE_PART_MAX    4096 /* bytes of a signature part; anything long is no signature */
#define UPLOAD_ATTEMPTS       4    /* tries at the next version number under concurrent uploads */

static const char *const model_create_keys[] = {"name", "description", NULL};
static const char *const upload_part_names[] = {"artifact", "meta", "manifest", "signature", NULL};

/* Replaces obj[key], a time in Unix ms as the database keeps it, with its
 * RFC 3339 form, as the API writes every time. */
static void format_time(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    char buf[EF_TIME_STR_SIZE];
    if (!json_is_integer(v))
        return;
    ef_time_format((int64_t)json_integer_value(v), buf, sizeof(buf));
    json_object_set_new(obj, key, json_string(buf));
}

/* format_time for created_at of every object of an array. */
static void format_times(json_t *array)
{
    size_t i;
    json_t *obj;
    json_array_foreach(array, i, obj) format_time(obj, "created_at");
}

/* True when a description is absent or a string of at most
 * MODEL_DESCRIPTION_MAX bytes. */
static bool description_ok(const json_t *v)
{
    return !v || (json_is_string(v) && json_string_length(v) <= MODEL_DESCRIPTION_MAX);
}

/* Parses a {version} path segment: 1..18 digits, no sign, value >= 1. */
static bool parse_version(const char *s, int64_t *out)
{
    int64_t v = 0;
    size_t n = 0;
    for (; s[n]; n++) {
        if (!isdigit((unsigned char)s[n]) || n == VERSION_DIGITS_MAX)
            return false;
        v = v * 10 + (s[n] - '0');
    }
    *out = v;
    return n > 0 && v >= 1;
}

/* ---- models ------------------------------------------------------------- */

enum MHD_Result api_models_list(struct request *req)
{
    json_t *models = NULL;
    int rc = db_models_list(req->srv->db, &models);
    if (rc != 0)
        return http_reply_ef_error(req, rc, "could not list the models");
    format_times(models);
    return http_reply_json(req, 200, json_pack("{s:o}", "models", models));
}

enum MHD_Result api_models_create(struct request *req)
{
    struct db *db = req->srv->db;
    json_t *body = NULL, *model = NULL;
    const char *unknown = NULL;
    enum MHD_Result r;
    if (!http_json_body_or_reply(req, &body))
        return http_replied(req);
    const char *name = ef_json_str(body, "name");
    const json_t *description = json_object_get(body, "description");
    if (!ef_json_keys_allowed(body, model_create_keys, &unknown)) {
        r = http_reply_error(req, 400, "bad_request", "unknown key '%s'", unknown);
        goto out;
    }
    if (!ef_name_valid(name)) {
        r = http_reply_error(req, 400, "bad_request",
                             "name must be 1..64 of [a-z0-9._-], starting with a letter or digit");
        goto out;
    }
    if (!description_ok(description)) {
        r = http_reply_error(req, 400, "bad_request",
                             "description must be a string of at most %d bytes",
                             MODEL_DESCRIPTION_MAX);
        goto out;
    }
    int rc = db_model_create(db, name, json_string_value(description), ef_now_ms(), NULL);
    if (rc == EF_EEXIST) {
        r = http_reply_error(req, 409, "model_exists", "model %s exists", name);
        goto out;
    }
    if (rc != 0 || (rc = db_model_get(db, name, &model)) != 0) {
        r = http_reply_ef_error(req, rc, "could not create the model");
        goto out;
    }
    format_time(model, "created_at");
    snprintf(req->audit_detail, sizeof(req->audit_detail), "model %s", name);
    r = http_reply_json(req, 201, model);
    model = NULL;
out:
    json_decref(model);
    json_decref(body);
    return r;
}

enum MHD_Result api_model_show(struct request *req)
{
    struct db *db = req->srv->db;
    const char *name = http_param(req, 0);
    json_t *model = NULL, *versions = NULL;
    int64_t id = 0;
    enum MHD_Result r;
    int rc = ef_name_valid(name) ? db_model_get(db, name, &model) : EF_ENOENT;
    if (rc == EF_ENOENT) {
        r = ef_name_valid(name) ? http_reply_error(req, 404, "not_found", "no model %s", name)
                                : http_reply_error(req, 404, "not_found", "no such model");
        goto out;
    }
    if (rc != 0 || (rc = db_model_id(db, name, &id)) != 0 ||
        (rc = db_versions_list(db, id, &versions)) != 0) {
        r = http_reply_ef_error(req, rc, "could not read the model");
        goto out;
    }
    format_time(model, "created_at");
    format_times(versions);
    json_object_set_new(model, "versions", versions);
    versions = NULL;
    r = http_reply_json(req, 200, model);
    model = NULL;
out:
    json_decref(versions);
    json_decref(model);
    return r;
}

/* ---- reading versions --------------------------------------------------- */

/* Fills *v with the version the path names ({name} and {version}), or
 * answers 404 (or 500) itself and returns false. */
static bool version_or_reply(struct request *req, struct db_version *v)
{
    const char *name = http_param(req, 0), *number = http_param(req, 1);
    int64_t version = 0;
    memset(v, 0, sizeof(*v));
    if (!ef_name_valid(name) || !parse_version(number, &version)) {
        http_reply_error(req, 404, "not_found", "no such model version");
        return false;
    }
    int rc = db_version_get(req->srv->db, name, version, v);
    if (rc == EF_ENOENT) {
        http_reply_error(req, 404, "not_found", "no version %lld of model %s", (long long)version,
                         name);
        return false;
    }
    if (rc != 0) {
        http_reply_ef_error(req, rc, "could not read the version");
        return false;
    }
    return true;
}

/* A device may download only what one of its slots wants; API tokens may
 * read anything (the route admits viewers and devices only). Answers 403 (or
 * 500) itself and returns false otherwise. */
static bool reader_allowed_or_reply(struct request *req, const struct db_version *v)
{
    bool yes = false;
    if (req->who.kind != PRINCIPAL_DEVICE)
        return true;
    int rc = db_device_has_version(req->srv->db, req->who.device_id, v->id, &yes);
    if (rc != 0) {
        http_reply_ef_error(req, rc, "could not check the device's assignment");
        return false;
    }
    if (!yes) {
        http_reply_error(req, 403, "forbidden", "%s@%lld is not assigned to this device", v->model,
                         (long long)v->version);
        return false;
    }
    return true;
}

enum MHD_Result api_version_show(struct request *req)
{
    struct db_version v;
    json_t *manifest = NULL, *doc = NULL;
    enum MHD_Result r;
    char created_at[EF_TIME_STR_SIZE];
    if (!version_or_reply(req, &v)) {
        r = http_replied(req);
        goto out;
    }
    /* The stored bytes were validated before they were inserted; failing to
     * read them back is a broken invariant, not a client error. */
    if (ef_json_load(v.manifest, v.manifest_len, EF_MANIFEST_MAX_BYTES, &manifest, NULL, 0) != 0) {
        ef_error("stored_manifest_unreadable", "model=%s version=%lld", v.model,
                 (long long)v.version);
        r = http_reply_error(req, 500, "internal", "the stored manifest is unreadable");
        goto out;
    }
    ef_time_format(v.created_at, created_at, sizeof(created_at));
    json_t *device_class = json_object_get(manifest, "device_class");
    doc = json_pack("{s:s, s:I, s:s, s:I, s:s, s:O, s:s, s:O, s:s}", "name", v.model, "version",
                    (json_int_t)v.version, "sha256", v.sha256, "size", (json_int_t)v.size,
                    "backend", v.backend, "device_class", device_class ? device_class : json_null(),
                    "created_at", created_at, "manifest", manifest, "signature", v.signature);
    if (!doc) {
        r = http_reply_error(req, 500, "internal", "out of memory");
        goto out;
    }
    r = http_reply_json(req, 200, doc);
    doc = NULL;
out:
    json_decref(doc);
    json_decref(manifest);
    db_version_clear(&v);
    return r;
}

/* The manifest and signature routes: the stored bytes of one of them (the
 * signature when signature is true), to those who may read the version. */
static enum MHD_Result reply_version_text(struct request *req, bool signature)
{
    struct db_version v;
    enum MHD_Result r;
    if (!version_or_reply(req, &v) || !reader_allowed_or_reply(req, &v))
        r = http_replied(req);
    else if (signature)
        r = http_reply_bytes(req, 200, "text/plain", v.signature, strlen(v.signature), NULL);
    else
        r = http_reply_bytes(req, 200, "application/json", v.manifest, v.manifest_len, NULL);
    db_version_clear(&v);
    return r;
}

enum MHD_Result api_version_manifest(struct request *req)
{
    return reply_version_text(req, false);
}

enum MHD_Result api_version_signature(struct request *req)
{
    return reply_version_text(req, true);
}

enum MHD_Result api_version_artifact(struct request *req)
{
    struct store *store = req->srv->store;
    struct db_version v;
    enum MHD_Result r;
    char path[4096], etag[EF_HEX256_SIZE + 2];
    if (!version_or_reply(req, &v) || !reader_allowed_or_reply(req, &v)) {
        r = http_replied(req);
        goto out;
    }
    if (store_path(store, v.sha256, path, sizeof(path)) != 0 || !store_has(store, v.sha256)) {
        ef_error("store_object_missing", "model=%s version=%lld sha256=%s", v.model,
                 (long long)v.version, v.sha256);
        r = http_reply_error(req, 500, "internal", "the artifact is missing from the store");
        goto out;
    }
    snprintf(etag, sizeof(etag), "\"%s\"", v.sha256);
    r = http_reply_file(req, path, "application/octet-stream", etag);
out:
    db_version_clear(&v);
    return r;
}

/* ---- uploading versions ------------------------------------------------- */

/* What one upload turns into, gathered before anything is stored. */
struct upload {
    const char *name;                   /* model name, the path's {name} */
    const struct upload_part *artifact; /* the artifact file part (borrowed) */
    json_t *meta;                       /* the meta object, or NULL */
    char *manifest;                     /* manifest bytes to store (owned), or NULL */
    size_t manifest_len;                /* bytes of manifest */
    char signature[EF_SIG_B64_SIZE];    /* detached signature of manifest, base64 */
    struct ef_manifest *parsed;         /* the manifest, validated (owned) */
    bool signed_elsewhere;              /* the client sent manifest and signature */
    int64_t model_id;                   /* the model's row, 0 while it does not exist */
    int64_t latest;                     /* the model's highest version, 0 for none */
    int64_t version;                    /* the version being registered */
    const char *artifact_path;          /* the upload's temporary file, then object_path */
    char object_path[4096];             /* the artifact's store object, once adopted */
};

/* Drops the manifest of an attempt, so that the next one builds its own. */
static void upload_reset_manifest(struct upload *up)
{
    free(up->manifest);
    ef_manifest_free(up->parsed);
    up->manifest = NULL;
    up->manifest_len = 0;
    up->parsed = NULL;
    memset(up->signature, 0, sizeof(up->signature));
}

static void upload_clear(struct upload *up)
{
    json_decref(up->meta);
    upload_reset_manifest(up);
    memset(up, 0, sizeof(*up));
}

/* Copies the bytes of an in-memory part, or reads those of a part the client
 * sent as a file (curl -F meta=@meta.json), into a new NUL-terminated buffer
 * of at most max bytes. Answers 413 (or 500) itself and returns false. */
static bool part_bytes_or_reply(struct request *req, const struct upload_part *part, size_t max,
                                char **out, size_t *len)
{
    int rc = 0;
    *out = NULL;
    *len = 0;
    if (part->path) {
        rc = ef_read_file(part->path, max, out, len);
    } else if (part->size > max) {
        rc = EF_ETOOBIG;
    } else if ((*out = malloc(part->size + 1))) {
        memcpy(*out, part->data ? part->data : "", part->size);
        (*out)[part->size] = '\0';
        *len = part->size;
    } else {
        rc = EF_ENOMEM;
    }
    if (rc == EF_ETOOBIG)
        http_reply_error(req, 413, "payload_too_large", "part %s may have at most %zu bytes",
                         part->name, max);
    else if (rc != 0)
        http_reply_ef_error(req, rc, "could not read the upload");
    return rc == 0;
}

/* Checks the path's name and the parts, and reads meta, manifest and
 * signature into up. Answers 400/413/422 itself and returns false. */
static bool upload_parts_or_reply(struct request *req, struct upload *up)
{
    const struct upload_part *meta = http_part(req, "meta");
    const struct upload_part *manifest = http_part(req, "manifest");
    const struct upload_part *signature = http_part(req, "signature");
    char *buf = NULL, msg[256];
    size_t len = 0;
    bool ok = false;
    up->name = http_param(req, 0);
    up->artifact = http_part(req, "artifact");
    if (!ef_name_valid(up->name)) {
        http_reply_error(req, 400, "bad_request",
                         "a model name must be 1..64 of [a-z0-9._-], starting with a letter or "
                         "digit");
        goto out;
    }
    for (size_t i = 0; i < req->part_count; i++) {
        const char *const *known = upload_part_names;
        while (*known && strcmp(*known, req->parts[i].name) != 0)
            known++;
        if (!*known) {
            http_reply_error(req, 400, "bad_request",
                             "unknown part; the parts are artifact, meta, manifest and signature");
            goto out;
        }
    }
    if (!up->artifact || !up->artifact->path) {
        http_reply_error(req, 400, "bad_request",
                         "the model file must be sent as a file part named artifact");
        goto out;
    }
    if (up->artifact->size == 0) {
        http_reply_error(req, 422, "unprocessable", "the artifact is empty");
        goto out;
    }
    if (!manifest != !signature) {
        http_reply_error(req, 400, "bad_request", "manifest and signature go together");
        goto out;
    }
    if (manifest && meta) {
        http_reply_error(req, 400, "bad_request",
                         "meta describes a manifest the server builds; it cannot come with a "
                         "signed manifest");
        goto out;
    }
    if (meta) {
        if (!part_bytes_or_reply(req, meta, EF_MANIFEST_MAX_BYTES, &buf, &len))
            goto out;
        int rc = ef_json_load(buf, len, EF_MANIFEST_MAX_BYTES, &up->meta, msg, sizeof(msg));
        if (rc != 0) {
            http_reply_error(req, 400, "malformed_json", "meta: %s", msg);
            goto out;
        }
        if (!json_is_object(up->meta)) {
            http_reply_error(req, 400, "bad_request", "meta must be a JSON object");
            goto out;
        }
    }
    if (manifest) {
        if (!part_bytes_or_reply(req, manifest, EF_MANIFEST_MAX_BYTES, &up->manifest,
                                 &up->manifest_len))
            goto out;
        free(buf);
        if (!part_bytes_or_reply(req, signature, SIGNATURE_PART_MAX, &buf, &len))
            goto out;
        /* A signature file usually ends with a newline; base64 never does. */
        while (len > 0 && isspace((unsigned char)buf[len - 1]))
            buf[--len] = '\0';
        if (len >= sizeof(up->signature)) {
            http_reply_error(req, 422, "bad_signature", "the signature is not base64 of 64 bytes");
            goto out;
        }
        memcpy(up->signature, buf, len + 1);
        up->signed_elsewhere = true;
    }
    ok = true;
out:
    free(buf);
    return ok;
}

/* Reads the model's row and latest version (both 0 for a new model) and
 * settles the version number. Answers 409/422/500 itself and returns false. */
static bool version_number_or_reply(struct request *req, struct upload *up)
{
    struct db *db = req->srv->db;
    const json_t *given = json_object_get(up->meta, "version");
    up->model_id = 0;
    up->latest = 0;
    int rc = db_model_id(db, up->name, &up->model_id);
    if (rc == 0)
        rc = db_version_latest(db, up->model_id, &up->latest);
    else if (rc == EF_ENOENT)
        rc = 0;
    if (rc != 0) {
        http_reply_ef_error(req, rc, "could not read the model");
        return false;
    }
    if (given && (!json_is_integer(given) || json_integer_value(given) < 1)) {
        http_reply_error(req, 400, "bad_request", "meta.version must be an integer >= 1");
        return false;
    }
    if (!description_ok(json_object_get(up->meta, "description"))) {
        http_reply_error(req, 422, "unprocessable",
                         "meta.description must be a string of at most %d bytes",
                         MODEL_DESCRIPTION_MAX);
        return false;
    }
    up->version = given ? (int64_t)json_integer_value(given) : up->latest + 1;
    if (up->version <= up->latest) {
        http_reply_error(req, 409, "version_not_increasing", "version %lld is not above %lld",
                         (long long)up->version, (long long)up->latest);
        return false;
    }
    return true;
}

/* Verifies a manifest signed elsewhere and checks that it describes this
 * upload. Answers 409/422 itself and returns false. */
static bool given_manifest_or_reply(struct request *req, struct upload *up)
{
    const struct upload_part *artifact = up->artifact;
    struct manifest_artifact_info info;
    char msg[256];
    /* ef_manifest_verify_parse in two steps, so that a signature that does
     * not verify and a signed document that is not a manifest get their own
     * codes; nothing is parsed before the signature verified. */
    int rc = ef_verify_b64(req->srv->release_key.pk, up->manifest, up->manifest_len, up->signature);
    if (rc != 0) {
        http_reply_error(req, 422, "bad_signature", "the manifest signature %s",
                         rc == EF_EPARSE ? "is not base64 of 64 bytes"
                                         : "does not verify with the release key");
        return false;
    }
    rc = ef_manifest_parse(up->manifest, up->manifest_len, &up->parsed, msg, sizeof(msg));
    if (rc != 0) {
        http_reply_error(req, 422, "unprocessable", "manifest: %s", msg);
        return false;
    }
    const struct ef_manifest *m = up->parsed;
    if (strcmp(m->name, up->name) != 0) {
        http_reply_error(req, 422, "unprocessable", "the manifest is for model %s, not %s", m->name,
                         up->name);
        return false;
    }
    if (strcmp(m->sha256, artifact->sha256) != 0 || m->size != (int64_t)artifact->size) {
        http_reply_error(req, 422, "hash_mismatch",
                         "the manifest describes an artifact of %lld bytes with sha256 %s; the "
                         "upload has %zu bytes with sha256 %s",
                         (long long)m->size, m->sha256, artifact->size, artifact->sha256);
        return false;
    }
    if (m->version <= up->latest) {
        http_reply_error(req, 409, "version_not_increasing", "version %lld is not above %lld",
                         (long long)m->version, (long long)up->latest);
        return false;
    }
    /* A signature vouches for the manifest, not for its agreement with the
     * file: a device would only find a wrong shape in its self-test. */
    rc = manifest_inspect_artifact(up->artifact_path, m->backend, &info, msg, sizeof(msg));
    if (rc == 0 && (info.inputs != m->input_size || info.outputs != m->output_size)) {
        rc = EF_EINVAL;
        snprintf(msg, sizeof(msg),
                 "the manifest declares %zu inputs and %zu outputs but the artifact has %zu "
                 "and %zu",
                 m->input_size, m->output_size, info.inputs, info.outputs);
    }
    if (rc != 0) {
        if (rc == EF_EINVAL)
            http_reply_error(req, 422, "unprocessable", "%s", msg);
        else
            http_reply_ef_error(req, EF_EIO, "could not read the artifact");
        return false;
    }
    up->version = m->version;
    return true;
}

/* Builds the manifest from the artifact and meta, and signs it with the
 * release key. Answers 413/422 (or 500) itself and returns false. */
static bool built_manifest_or_reply(struct request *req, struct upload *up)
{
    char msg[256];
    struct manifest_source src = {
        .name = up->name,
        .version = up->version,
        .parent_version = up->latest,
        .artifact_path = up->artifact_path,
        .sha256 = up->artifact->sha256,
        .size = (int64_t)up->artifact->size,
        .meta = up->meta,
        .now_ms = ef_now_ms(),
    };
    int rc = manifest_build(&src, &up->parsed, msg, sizeof(msg));
    if (rc != 0) {
        if (rc == EF_EINVAL)
            http_reply_error(req, 422, "unprocessable", "%s", msg);
        else
            http_reply_ef_error(req, EF_EIO, "could not read the artifact");
        return false;
    }
    if (!(up->manifest = ef_manifest_serialize(up->parsed))) {
        http_reply_error(req, 500, "internal", "out of memory");
        return false;
    }
    up->manifest_len = strlen(up->manifest);
    if (up->manifest_len > EF_MANIFEST_MAX_BYTES) {
        http_reply_error(req, 413, "payload_too_large",
                         "the manifest would have %zu bytes; devices accept at most %u",
                         up->manifest_len, EF_MANIFEST_MAX_BYTES);
        return false;
    }
    ef_sign_b64(req->srv->release_key.sk, up->manifest, up->manifest_len, up->signature);
    return true;
}

/* Adopts the artifact into the store (once: a retry finds it there) and
 * points up->artifact_path at the object. Answers 500 itself and returns
 * false. */
static bool adopt_or_reply(struct request *req, struct upload *up)
{
    struct store *store = req->srv->store;
    const char *sha256 = up->artifact->sha256;
    if (up->artifact_path == up->object_path)
        return true;
    if (store_adopt(store, up->artifact->path, sha256) != 0 ||
        store_path(store, sha256, up->object_path, sizeof(up->object_path)) != 0) {
        http_reply_error(req, 500, "internal", "could not store the artifact");
        return false;
    }
    up->artifact_path = up->object_path;
    return true;
}

/* Writes the model (if new) and the version in one transaction. Returns 0,
 * EF_ESTALE when the version is no longer above the latest, or another
 * EF_E* code; the caller replies. */
static int register_version(struct request *req, struct upload *up)
{
    struct db *db = req->srv->db;
    const char *description = json_string_value(json_object_get(up->meta, "description"));
    int64_t now = ef_now_ms();
    int rc = db_tx_begin(db);
    if (rc != 0)
        return rc;
    /* A concurrent upload may have created the model since it was looked up. */
    if (up->model_id == 0 &&
        (rc = db_model_create(db, up->name, description, now, &up->model_id)) == EF_EEXIST)
        rc = db_model_id(db, up->name, &up->model_id);
    if (rc == 0)
        rc = db_version_insert(db, up->model_id, up->version, up->artifact->sha256,
                               (int64_t)up->artifact->size, up->parsed->backend, up->manifest,
                               up->manifest_len, up->signature, now, NULL);
    rc = db_tx_end(db, rc);
    return rc == EF_EEXIST ? EF_ESTALE : rc;
}

enum MHD_Result api_version_create(struct request *req)
{
    struct upload up;
    enum MHD_Result r;
    int rc = EF_ESTALE;
    memset(&up, 0, sizeof(up));
    if (!upload_parts_or_reply(req, &up))
        goto replied;
    up.artifact_path = up.artifact->path;
    /* A version number chosen here (latest + 1) can be taken by a concurrent
     * upload between the look-up and the insert. The manifest names it, so
     * it is built and signed again with the next number; a version the
     * client chose (meta.version or a signed manifest) is not changed. */
    for (int attempt = 0; rc == EF_ESTALE && attempt < UPLOAD_ATTEMPTS; attempt++) {
        if (attempt > 0)
            upload_reset_manifest(&up);
        if (!version_number_or_reply(req, &up) ||
            !(up.signed_elsewhere ? given_manifest_or_reply(req, &up)
                                  : built_manifest_or_reply(req, &up)) ||
            !adopt_or_reply(req, &up))
            goto replied;
        rc = register_version(req, &up);
        if (up.signed_elsewhere || json_object_get(up.meta, "version"))
            break;
    }
    if (rc == EF_ESTALE) {
        r = http_reply_error(req, 409, "version_not_increasing",
                             "version %lld is no longer above the model's latest version",
                             (long long)up.version);
        goto out;
    }
    if (rc != 0) {
        r = http_reply_ef_error(req, rc, "could not register the version");
        goto out;
    }
    snprintf(req->audit_detail, sizeof(req->audit_detail),
             "%s@%lld sha256=%s size=%zu backend=%s manifest=%s", up.name, (long long)up.version,
             up.artifact->sha256, up.artifact->size, up.parsed->backend,
             up.signed_elsewhere ? "signed-elsewhere" : "built");
    ef_info("model_version_registered", "model=%s version=%lld sha256=%s", up.name,
            (long long)up.version, up.artifact->sha256);
    r = http_reply_json(req, 201,
                        json_pack("{s:s, s:I, s:s, s:I, s:s}", "name", up.name, "version",
                                  (json_int_t)up.version, "sha256", up.artifact->sha256, "size",
                                  (json_int_t)up.artifact->size, "backend", up.parsed->backend));
    goto out;
replied:
    r = http_replied(req);
out:
    upload_clear(&up);
    return r;
}
