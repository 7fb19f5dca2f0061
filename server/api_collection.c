/*
 * api_collection.c - data collection (docs/monitoring.md, "Data collection
 * and datasets"): a model's collection policies (operator writes, any token
 * reads), the policy a device reads and the samples it uploads (that
 * device's token), and the datasets with their export in FANN's training
 * format (any token).
 */
#include "server/api.h"
#include "server/db_collection.h"
#include "server/samples_parse.h"
#include "server/server.h"
#include "common/clock.h"
#include "common/ef_error.h"
#include "common/fsutil.h"
#include "common/json_util.h"
#include "common/log.h"
#include "common/topic.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Samples an agent keeps per metrics window and uploads at once. */
#define COLLECTION_BATCH 200

/* Reads the optional member key of body as a ring name or null into *ring
 * (borrowed; NULL for null or absent). False when it is anything else. */
static bool ring_member(const json_t *body, const char **ring)
{
    const json_t *v = json_object_get(body, "ring");
    *ring = NULL;
    if (!v || json_is_null(v))
        return true;
    *ring = json_string_value(v);
    return *ring && ef_name_valid(*ring);
}

/* Reads the PUT body into *c; replies 400 itself and returns false when it
 * is invalid. *body is the caller's to free either way. */
static bool policy_body_or_reply(struct request *req, json_t **body, struct db_collection_change *c)
{
    static const char *const allowed[] = {"ring", "enabled", "sample_rate", "max_samples", NULL};
    const char *unknown = NULL;
    json_t *v;
    memset(c, 0, sizeof(*c));
    if (!http_json_body_or_reply(req, body))
        return false;
    if (!ef_json_keys_allowed(*body, allowed, &unknown)) {
        http_reply_error(req, 400, "bad_request", "unknown key '%.40s'", unknown);
        return false;
    }
    if (!ring_member(*body, &c->ring)) {
        http_reply_error(req, 400, "bad_request", "ring must be a ring name or null");
        return false;
    }
    if (!json_is_boolean(v = json_object_get(*body, "enabled"))) {
        http_reply_error(req, 400, "bad_request", "enabled must be true or false");
        return false;
    }
    c->enabled = json_is_true(v);
    if ((v = json_object_get(*body, "sample_rate"))) {
        c->set_rate = true;
        c->sample_rate = json_number_value(v);
        if (!json_is_number(v) || !(c->sample_rate > 0 && c->sample_rate <= 1)) {
            http_reply_error(req, 400, "bad_request", "sample_rate must be a number in (0, 1]");
            return false;
        }
    }
    if ((v = json_object_get(*body, "max_samples"))) {
        c->set_max = true;
        c->max_samples = json_integer_value(v);
        if (!json_is_integer(v) || c->max_samples < 1 || c->max_samples > DB_COLLECTION_MAX_LIMIT) {
            http_reply_error(req, 400, "bad_request", "max_samples must be an integer in 1..%d",
                             DB_COLLECTION_MAX_LIMIT);
            return false;
        }
    }
    return true;
}

enum MHD_Result api_collection_set(struct request *req)
{
    const char *name = http_param(req, 0);
    struct db_collection_change c;
    json_t *body = NULL, *policy = NULL;
    enum MHD_Result r;
    int rc;
    if (!ef_name_valid(name)) {
        r = http_reply_error(req, 404, "not_found", "no such model");
        goto out;
    }
    if (!policy_body_or_reply(req, &body, &c)) {
        r = http_replied(req);
        goto out;
    }
    rc = db_collection_set(req->srv->db, name, &c, ef_now_ms(), &policy);
    if (rc == EF_ENOENT) {
        r = c.ring
                ? http_reply_error(req, 404, "not_found", "no model %s or no ring %s", name, c.ring)
                : http_reply_error(req, 404, "not_found", "no model %s", name);
        goto out;
    }
    if (rc != 0) {
        r = http_reply_ef_error(req, rc, "could not store the collection policy");
        goto out;
    }
    snprintf(req->audit_detail, sizeof(req->audit_detail),
             "model:%s ring:%s enabled:%s sample_rate:%g max_samples:%lld dataset:%lld", name,
             c.ring ? c.ring : "(all)", c.enabled ? "true" : "false",
             json_number_value(json_object_get(policy, "sample_rate")),
             (long long)json_integer_value(json_object_get(policy, "max_samples")),
             (long long)json_integer_value(json_object_get(policy, "dataset_id")));
    ef_info("collection_set", "model=%s ring=%s enabled=%d", name, c.ring ? c.ring : "-",
            c.enabled);
    r = http_reply_json(req, 200, policy);
    policy = NULL;
out:
    json_decref(body);
    json_decref(policy);
    return r;
}

enum MHD_Result api_collection_list(struct request *req)
{
    const char *name = http_param(req, 0);
    json_t *policies = NULL;
    int rc = ef_name_valid(name) ? db_collection_list(req->srv->db, name, &policies) : EF_ENOENT;
    if (rc == EF_ENOENT)
        return http_reply_error(req, 404, "not_found", "no model %.64s", name);
    if (rc != 0)
        return http_reply_ef_error(req, rc, "could not read the collection policies");
    return http_reply_json(req, 200, policies);
}

/* Reads device id's collection policy into *p. Answers 403 when a device
 * token asks about another device, 404 for an id that cannot be a device
 * or is none, the error otherwise; returns true when it replied (*r). */
static bool device_policy_refused(struct request *req, const char *id, struct db_device_policy *p,
                                  enum MHD_Result *r)
{
    int rc;
    if (req->who.kind == PRINCIPAL_DEVICE && strcmp(req->who.device_id, id) != 0) {
        *r = http_reply_error(req, 403, "forbidden", "a device may use only its own collection");
        return true;
    }
    if (!ef_device_id_valid(id)) {
        *r = http_reply_error(req, 404, "not_found", "no such device");
        return true;
    }
    rc = db_collection_for_device(req->srv->db, id, p);
    if (rc == EF_ENOENT) {
        *r = http_reply_error(req, 404, "not_found", "no device %s", id);
        return true;
    }
    if (rc != 0) {
        *r = http_reply_ef_error(req, rc, "could not read the collection policy");
        return true;
    }
    return false;
}

enum MHD_Result api_device_collection(struct request *req)
{
    const char *id = http_param(req, 0);
    struct db_device_policy p;
    json_t *doc;
    enum MHD_Result r;
    if (device_policy_refused(req, id, &p, &r))
        return r;
    doc = json_pack(
        "{s:o, s:o, s:b, s:o, s:o, s:o, s:i}", "model",
        p.has_model ? json_string(p.model) : json_null(), "version",
        p.has_model ? json_integer(p.version) : json_null(), "enabled", p.found && p.enabled,
        "sample_rate", p.found ? json_real(p.sample_rate) : json_null(), "max_samples",
        p.found ? json_integer(p.max_samples) : json_null(), "dataset_id",
        p.dataset_id ? json_integer(p.dataset_id) : json_null(), "batch", COLLECTION_BATCH);
    if (!doc)
        return http_reply_ef_error(req, EF_ENOMEM, "out of memory");
    return http_reply_json(req, 200, doc);
}

/* Answers a refused upload: the status and code the parser's result calls
 * for. */
static enum MHD_Result parse_refusal(struct request *req, int rc, long bad_index, const char *msg)
{
    switch (rc) {
    case EF_ETOOBIG:
        return http_reply_error(req, 413, "payload_too_large", "%s", msg);
    case EF_EPARSE:
        return http_reply_error(req, 400, "malformed_json", "%s", msg);
    case EF_EINVAL:
        return bad_index >= 0 ? http_reply_error(req, 422, "bad_sample", "%s", msg)
                              : http_reply_error(req, 400, "bad_request", "%s", msg);
    default:
        return http_reply_ef_error(req, rc, "could not read the samples");
    }
}

enum MHD_Result api_device_samples(struct request *req)
{
    const char *id = http_param(req, 0);
    struct samples_batch b = {0};
    struct db_device_policy p;
    struct db_sample *rows = NULL;
    size_t in_size = 0, out_size = 0, accepted = 0;
    long bad_index = -1;
    bool full = false;
    char msg[200];
    enum MHD_Result r;
    int rc;
    if (device_policy_refused(req, id, &p, &r))
        return r;
    if ((rc = samples_parse(req->body ? req->body : "", req->body_len, &b, &bad_index, msg,
                            sizeof(msg))) != 0) {
        ef_warn("samples_refused", "device=%s error=%s reason=\"%s\"", id, ef_errname(rc), msg);
        return parse_refusal(req, rc, bad_index, msg);
    }
    if (!p.has_model || !p.found || !p.enabled) {
        r = http_reply_error(req, 403, "collection_disabled",
                             "collection is not enabled for device %s%s%s", id,
                             p.has_model ? " and model " : "", p.has_model ? p.model : "");
        goto out;
    }
    if (strcmp(b.model, p.model) != 0 || b.dataset_id != p.dataset_id) {
        r = http_reply_error(req, 409, "dataset_mismatch",
                             "device %s collects %s into dataset %lld, not %s into %lld", id,
                             p.model, (long long)p.dataset_id, b.model, (long long)b.dataset_id);
        goto out;
    }
    /* Samples are checked against the version that saw them, which may
     * still be the previous one while a rollout reaches the device. */
    if (b.version == p.version) {
        in_size = (size_t)p.input_size;
        out_size = (size_t)p.output_size;
    } else if ((rc = db_collection_shape(req->srv->db, b.model, b.version, &in_size, &out_size)) ==
               EF_ENOENT) {
        r = http_reply_error(req, 422, "bad_sample", "model %s has no version %lld", b.model,
                             (long long)b.version);
        goto out;
    } else if (rc != 0) {
        r = http_reply_ef_error(req, rc, "could not read the model version");
        goto out;
    }
    if (samples_check(&b, in_size, out_size, msg, sizeof(msg)) != 0) {
        ef_warn("samples_refused", "device=%s dataset=%lld reason=\"%s\"", id,
                (long long)b.dataset_id, msg);
        r = http_reply_error(req, 422, "bad_sample", "%s", msg);
        goto out;
    }
    if (!(rows = calloc(b.count, sizeof(*rows)))) {
        r = http_reply_ef_error(req, EF_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < b.count; i++)
        rows[i] =
            (struct db_sample){b.values + b.items[i].offset, b.items[i].len, b.items[i].label};
    rc = db_samples_insert(req->srv->db, b.dataset_id, id, b.version, rows, b.count, ef_now_ms(),
                           &accepted, &full);
    if (rc != 0) {
        r = http_reply_ef_error(req, rc, "could not store the samples");
        goto out;
    }
    snprintf(req->audit_detail, sizeof(req->audit_detail),
             "dataset:%lld accepted %zu of %zu samples%s", (long long)b.dataset_id, accepted,
             b.count, full ? " (full)" : "");
    r = http_reply_json(req, 201,
                        json_pack("{s:I, s:b}", "accepted", (json_int_t)accepted, "full", full));
out:
    free(rows);
    samples_batch_clear(&b);
    return r;
}

enum MHD_Result api_datasets_list(struct request *req)
{
    const char *model = http_query(req, "model");
    json_t *datasets = NULL;
    int rc;
    if (model && !ef_name_valid(model))
        return http_reply_error(req, 400, "bad_request", "model must be a model name");
    if ((rc = db_datasets_list(req->srv->db, model, &datasets)) != 0)
        return http_reply_ef_error(req, rc, "could not read the datasets");
    return http_reply_json(req, 200, datasets);
}

/* Where the export's lines go, and how many outputs each sample has. */
struct export_out {
    FILE *f;
    size_t input_size;
    size_t output_size;
};

/* The FANN header: pairs, inputs, outputs. */
static int export_head(int64_t n, void *arg)
{
    struct export_out *e = arg;
    return fprintf(e->f, "%lld %zu %zu\n", (long long)n, e->input_size, e->output_size) < 0 ? EF_EIO
                                                                                            : 0;
}

/* One pair: the inputs on a line, the label one-hot on the next (a single
 * output gets the label itself, 0 or 1). */
static int export_row(const double *input, size_t input_len, int label, void *arg)
{
    struct export_out *e = arg;
    for (size_t i = 0; i < input_len; i++)
        if (fprintf(e->f, i ? " %.9g" : "%.9g", input[i]) < 0)
            return EF_EIO;
    if (fputc('\n', e->f) == EOF)
        return EF_EIO;
    if (e->output_size == 1)
        return fprintf(e->f, "%d\n", label) < 0 ? EF_EIO : 0;
    for (size_t j = 0; j < e->output_size; j++)
        if (fputs(j ? ((int)j == label ? " 1" : " 0") : (label == 0 ? "1" : "0"), e->f) == EOF)
            return EF_EIO;
    return fputc('\n', e->f) == EOF ? EF_EIO : 0;
}

/* Parses a positive decimal id; false when s is anything else. */
static bool id_value(const char *s, int64_t *out)
{
    char *end = NULL;
    long long v;
    if (!s || s[0] < '1' || s[0] > '9' || strlen(s) > 18)
        return false;
    v = strtoll(s, &end, 10);
    if (*end)
        return false;
    *out = v;
    return true;
}

enum MHD_Result api_dataset_export(struct request *req)
{
    const char *param = http_param(req, 0);
    struct export_out e = {0};
    json_t *dataset = NULL;
    char *dir = NULL, *path = NULL;
    int64_t id = 0;
    enum MHD_Result r;
    int rc, fd = -1;
    if (!id_value(param, &id)) {
        r = http_reply_error(req, 404, "not_found", "no such dataset");
        goto out;
    }
    if ((rc = db_dataset_get(req->srv->db, id, &dataset)) == EF_ENOENT) {
        r = http_reply_error(req, 404, "not_found", "no dataset %lld", (long long)id);
        goto out;
    }
    if (rc != 0) {
        r = http_reply_ef_error(req, rc, "could not read the dataset");
        goto out;
    }
    e.input_size = (size_t)json_integer_value(json_object_get(dataset, "input_size"));
    e.output_size = (size_t)json_integer_value(json_object_get(dataset, "output_size"));
    if (e.input_size == 0 || e.output_size == 0) {
        r = http_reply_error(req, 409, "conflict",
                             "dataset %lld: its model has no version to say its shape",
                             (long long)id);
        goto out;
    }
    /* The export is written to a temporary file and streamed from it, so
     * that a large dataset never sits in memory. */
    dir = ef_path_join(req->srv->cfg.data_dir, SERVER_TMP_DIR);
    path = dir ? ef_path_join(dir, "export.XXXXXX") : NULL;
    if (!path) {
        r = http_reply_ef_error(req, EF_ENOMEM, "out of memory");
        goto out;
    }
    if ((fd = mkstemp(path)) < 0 || !(e.f = fdopen(fd, "w"))) {
        ef_error("export_failed", "dataset=%lld errno=%d", (long long)id, errno);
        if (fd >= 0)
            close(fd);
        r = http_reply_ef_error(req, EF_EIO, "could not write the export");
        goto out;
    }
    rc =
        db_dataset_export(req->srv->db, id, e.input_size,
                          e.output_size == 1 ? 2 : (int)e.output_size, export_head, export_row, &e);
    if (fclose(e.f) != 0 && rc == 0)
        rc = EF_EIO;
    e.f = NULL;
    if (rc != 0) {
        ef_error("export_failed", "dataset=%lld error=%s", (long long)id, ef_errname(rc));
        r = http_reply_ef_error(req, rc, "could not write the export");
        goto out;
    }
    r = http_reply_file(req, path, "text/plain; charset=utf-8", NULL);
out:
    /* fd >= 0: the file was created. The response holds its own
     * descriptor, so the name can go now. */
    if (path && fd >= 0)
        unlink(path);
    free(path);
    free(dir);
    json_decref(dataset);
    return r;
}
