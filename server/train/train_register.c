/* train_register.c - data set export, current version, upload and rollout over the REST API. */
#include "server/train/train_register.h"
#include "common/crypto.h"
#include "common/ef_error.h"
#include "common/fsutil.h"
#include "common/json_util.h"
#include "common/topic.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATH_SIZE 256 /* an API path built from validated names and integers */

bool train_register_better(double candidate, double current, double margin)
{
    return candidate + TRAIN_REGISTER_EPSILON >= current + margin;
}

/* GETs path and writes the raw body to file. */
static int fetch_to_file(const struct client *c, const char *path, const char *file, char *msg,
                         size_t msg_size)
{
    struct client raw = *c;
    struct client_response resp = {0};
    raw.raw = true;
    int rc = client_call(&raw, "GET", path, NULL, &resp);
    if (rc == 0) {
        rc = ef_atomic_write(file, resp.body ? resp.body : "", resp.len, 0644);
        if (rc != 0)
            snprintf(msg, msg_size, "cannot write %s: %s", file, ef_strerror(rc));
    }
    client_response_release(&resp);
    return rc;
}

int train_register_fetch_dataset(const struct client *c, int64_t id, const char *path)
{
    char api[PATH_SIZE], msg[300] = "";
    snprintf(api, sizeof(api), "/api/v1/datasets/%lld/export", (long long)id);
    int rc = fetch_to_file(c, api, path, msg, sizeof(msg));
    if (rc != 0 && msg[0])
        fprintf(stderr, "edgefleet-train: %s: %s\n", ef_errname(rc), msg);
    return rc;
}

/* The latest version of model from GET /api/v1/models, 0 when none. */
static int latest_version(const struct client *c, const char *model, int64_t *out)
{
    struct client_response resp = {0};
    size_t i;
    json_t *row;
    *out = 0;
    int rc = client_call(c, "GET", "/api/v1/models", NULL, &resp);
    if (rc != 0)
        return rc;
    json_array_foreach(json_object_get(resp.doc, "models"), i, row)
    {
        const char *name = ef_json_str(row, "name");
        json_t *latest = json_object_get(row, "latest_version");
        if (name && strcmp(name, model) == 0 && json_is_integer(latest))
            *out = (int64_t)json_integer_value(latest);
    }
    client_response_release(&resp);
    return 0;
}

int train_register_current(const struct client *c, const char *model, int64_t version,
                           const char *artifact_path, struct train_current *cur, char *msg,
                           size_t msg_size)
{
    struct client_response resp = {0};
    char path[PATH_SIZE], sha[EF_HEX256_SIZE];
    int rc = 0;
    memset(cur, 0, sizeof(*cur));
    if (version <= 0 && ((rc = latest_version(c, model, &version)) != 0 || version == 0))
        return rc;
    snprintf(path, sizeof(path), "/api/v1/models/%s/versions/%lld", model, (long long)version);
    if ((rc = client_call(c, "GET", path, NULL, &resp)) != 0)
        goto out;
    const char *backend = ef_json_str(resp.doc, "backend");
    const char *want_sha = ef_json_str(resp.doc, "sha256");
    json_t *manifest = json_object_get(resp.doc, "manifest");
    if (!backend || !want_sha || !json_is_object(manifest)) {
        snprintf(msg, msg_size, "the server's answer for %s@%lld lacks backend, sha256 or manifest",
                 model, (long long)version);
        rc = EF_EPARSE;
        goto out;
    }
    cur->version = version;
    cur->backend = strdup(backend);
    cur->manifest = json_incref(manifest);
    if (!cur->backend) {
        rc = EF_ENOMEM;
        goto out;
    }
    snprintf(path, sizeof(path), "/api/v1/models/%s/versions/%lld/artifact", model,
             (long long)version);
    if ((rc = fetch_to_file(c, path, artifact_path, msg, msg_size)) != 0)
        goto out;
    if ((rc = ef_sha256_file_hex(artifact_path, sha)) != 0) {
        snprintf(msg, msg_size, "cannot read %s: %s", artifact_path, ef_strerror(rc));
        goto out;
    }
    if (strcmp(sha, want_sha) != 0) {
        snprintf(msg, msg_size, "the artifact of %s@%lld has sha256 %s, not %s", model,
                 (long long)version, sha, want_sha);
        rc = EF_EHASH;
    }
out:
    if (rc == EF_ENOMEM)
        snprintf(msg, msg_size, "out of memory");
    if (rc != 0)
        train_register_current_release(cur);
    client_response_release(&resp);
    return rc;
}

void train_register_current_release(struct train_current *cur)
{
    if (!cur)
        return;
    free(cur->backend);
    json_decref(cur->manifest);
    memset(cur, 0, sizeof(*cur));
}

int train_register_push(const struct client *c, const char *model, const char *artifact_path,
                        const json_t *meta, int64_t *version)
{
    struct client_response resp = {0};
    char path[PATH_SIZE], *text = ef_json_dump(meta);
    int rc = 0;
    *version = 0;
    if (!text) {
        fprintf(stderr, "edgefleet-train: out_of_memory: cannot encode the meta part\n");
        return EF_ENOMEM;
    }
    struct client_part parts[] = {
        {.name = "artifact", .file = artifact_path, .type = "application/octet-stream"},
        {.name = "meta", .data = text, .len = strlen(text), .type = "application/json"},
    };
    snprintf(path, sizeof(path), "/api/v1/models/%s/versions", model);
    rc = client_upload(c, path, parts, 2, &resp);
    if (rc == 0 && ef_json_int(resp.doc, "version", version) != 0) {
        fprintf(stderr, "edgefleet-train: bad_response: the upload's answer has no version\n");
        rc = EF_EPARSE;
    }
    client_response_release(&resp);
    free(text);
    return rc;
}

/* A new array of the ring names of a comma-separated list. */
static json_t *ring_list(const char *rings, char *msg, size_t msg_size)
{
    json_t *a = json_array();
    const char *p = rings;
    while (a && *p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char name[80];
        if (len == 0 || len >= sizeof(name)) {
            snprintf(msg, msg_size, "'%s' is not a comma-separated list of ring names", rings);
            json_decref(a);
            return NULL;
        }
        memcpy(name, p, len);
        name[len] = '\0';
        if (!ef_name_valid(name)) {
            snprintf(msg, msg_size, "'%s' is not a valid ring name", name);
            json_decref(a);
            return NULL;
        }
        if (json_array_append_new(a, json_string(name)) != 0) {
            json_decref(a);
            a = NULL;
        }
        p += len + (end ? 1 : 0);
        if (end && !*p) {
            snprintf(msg, msg_size, "'%s' ends with a comma", rings);
            json_decref(a);
            return NULL;
        }
    }
    if (a && json_array_size(a) == 0) {
        snprintf(msg, msg_size, "no ring names given");
        json_decref(a);
        return NULL;
    }
    if (!a && !msg[0])
        snprintf(msg, msg_size, "out of memory");
    return a;
}

int train_register_rollout(const struct client *c, const char *model, int64_t version,
                           const char *rings, const char *slot, int64_t *rollout_id, char *msg,
                           size_t msg_size)
{
    struct client_response resp = {0};
    json_t *body = NULL, *names = NULL;
    char path[PATH_SIZE];
    int rc = 0;
    *rollout_id = 0;
    msg[0] = '\0';
    if (!(names = ring_list(rings, msg, msg_size)))
        return EF_EINVAL;
    body = json_pack("{s:s, s:I, s:O}", "model", model, "version", (json_int_t)version, "rings",
                     names);
    /* Only a shadow rollout names its slot: production is the default. */
    if (!body || (slot && strcmp(slot, "shadow") == 0 &&
                  json_object_set_new(body, "slot", json_string(slot)) != 0)) {
        snprintf(msg, msg_size, "out of memory");
        rc = EF_ENOMEM;
        goto out;
    }
    if ((rc = client_call(c, "POST", "/api/v1/rollouts", body, &resp)) != 0)
        goto out;
    if (ef_json_int(resp.doc, "id", rollout_id) != 0 || *rollout_id < 1) {
        snprintf(msg, msg_size, "the server's rollout has no id");
        rc = EF_EPARSE;
        goto out;
    }
    client_response_release(&resp);
    snprintf(path, sizeof(path), "/api/v1/rollouts/%lld/start", (long long)*rollout_id);
    rc = client_call(c, "POST", path, NULL, &resp);
out:
    client_response_release(&resp);
    json_decref(body);
    json_decref(names);
    return rc;
}
