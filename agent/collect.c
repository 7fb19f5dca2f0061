/*
 * collect.c - the device's side of data collection (protocol in collect.h):
 * the policy fetch, the selection and reservoir, the batch upload.
 */
#include "agent/collect.h"
#include "agent/http_client.h"
#include "common/ef_error.h"
#include "common/json_util.h"
#include "common/log.h"
#include "common/reservoir.h"
#include "common/topic.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POLICY_MAX_BYTES   (16 * 1024) /* a policy answer */
#define ANSWER_MAX_BYTES   (16 * 1024) /* an upload's answer */
#define REQUEST_TIMEOUT_MS 30000
/* Bytes of one sample in an upload at most: a number is at most 24 bytes
 * ("-1.2345678901234567e-308" with its comma), plus the object around it. */
#define SAMPLE_NUMBER_BYTES 25
#define SAMPLE_OVERHEAD     64

struct collect {
    struct http_client *http; /* borrowed */
    const char *server_url;   /* borrowed */
    const char *device_id;    /* borrowed */
    const char *token;        /* borrowed; "" until enrolled */
    char model[96];           /* production "NAME@VERSION", "" when none */
    size_t input_size;        /* its input size */
    size_t output_size;       /* its output size */
    bool enabled;             /* the last policy allows collecting for model */
    bool full;                /* the server answered full for full_dataset: no uploads */
    int64_t full_dataset;     /* the dataset that is full */
    double sample_rate;       /* share of inferences offered to the reservoir, (0, 1] */
    int64_t dataset_id;       /* the policy's dataset */
    size_t batch;             /* reservoir capacity */
    struct ef_reservoir *res; /* the current sample, NULL when not collecting */
    struct ef_rng rng;        /* selection with sample_rate; seeds reservoirs */
    bool fetching;            /* a GET policy is in flight */
    bool refetch;             /* fetch again when it ends */
    bool uploading;           /* a POST samples is in flight */
    bool freed;               /* collect_free was called: free once nothing is in flight */
};

int collect_new(struct http_client *http, const char *server_url, const char *device_id,
                const char *token, uint64_t seed, struct collect **out)
{
    struct collect *c = calloc(1, sizeof(*c));
    *out = NULL;
    if (!c)
        return EF_ENOMEM;
    c->http = http;
    c->server_url = server_url;
    c->device_id = device_id;
    c->token = token;
    ef_rng_seed(&c->rng, seed);
    *out = c;
    return 0;
}

static void maybe_release(struct collect *c)
{
    if (c->freed && !c->fetching && !c->uploading) {
        ef_reservoir_free(c->res);
        free(c);
    }
}

void collect_free(struct collect *c)
{
    if (!c)
        return;
    c->freed = true;
    maybe_release(c);
}

/* Stops collecting: no policy allows it (for now). */
static void stop_collecting(struct collect *c)
{
    c->enabled = false;
    ef_reservoir_free(c->res);
    c->res = NULL;
}

/* Capacity of a reservoir for batch: the server's limits on an upload. */
static size_t capacity_for(size_t batch, size_t input_size)
{
    size_t by_body = COLLECT_MAX_BODY / (input_size * SAMPLE_NUMBER_BYTES + SAMPLE_OVERHEAD);
    size_t cap = batch < COLLECT_MAX_BATCH ? batch : COLLECT_MAX_BATCH;
    cap = cap < by_body ? cap : by_body;
    return cap ? cap : 1;
}

int collect_policy_parse(const char *body, size_t len, struct collect_policy *out)
{
    json_t *doc = NULL;
    int rc = EF_EINVAL;
    memset(out, 0, sizeof(*out));
    if (ef_json_load(body, len, POLICY_MAX_BYTES, &doc, NULL, 0) != 0)
        return EF_EPARSE;
    const json_t *enabled = json_object_get(doc, "enabled");
    const json_t *rate = json_object_get(doc, "sample_rate");
    const char *name = ef_json_str(doc, "model");
    if (!json_is_object(doc) || !json_is_boolean(enabled))
        goto out;
    if (name && (strlen(name) >= sizeof(out->model) || !ef_name_valid(name)))
        goto out;
    snprintf(out->model, sizeof(out->model), "%s", name ? name : "");
    out->enabled = json_is_true(enabled);
    if (out->enabled) {
        out->sample_rate = json_is_number(rate) ? json_number_value(rate) : NAN;
        if (!name || !(out->sample_rate > 0 && out->sample_rate <= 1) ||
            ef_json_int(doc, "dataset_id", &out->dataset_id) != 0 ||
            ef_json_int(doc, "batch", &out->batch) != 0 || out->batch < 1)
            goto out;
    }
    rc = 0;
out:
    if (rc != 0)
        memset(out, 0, sizeof(*out));
    json_decref(doc);
    return rc;
}

/* Applies a policy that parsed. */
static void apply_policy(struct collect *c, const struct collect_policy *p)
{
    size_t name_len = strcspn(c->model, "@");
    if (!p->enabled) {
        if (c->enabled)
            ef_info("collect_stopped", "model=%s reason=disabled", c->model);
        stop_collecting(c);
        return;
    }
    if (strlen(p->model) != name_len || strncmp(p->model, c->model, name_len) != 0) {
        /* A policy for another model: the server has not heard of our
         * production model yet; the next fetch settles it. */
        ef_info("collect_policy_other_model", "model=%s policy_model=%s", c->model, p->model);
        stop_collecting(c);
        return;
    }
    if (c->full && c->full_dataset == p->dataset_id)
        return; /* still the dataset the server said is full */
    size_t cap = capacity_for((size_t)p->batch, c->input_size);
    bool same = c->enabled && c->res && c->dataset_id == p->dataset_id && c->res->capacity == cap;
    c->sample_rate = p->sample_rate;
    c->batch = cap;
    if (same)
        return;
    stop_collecting(c);
    if (ef_reservoir_new(cap, c->input_size, ef_rng_next(&c->rng), &c->res) != 0) {
        ef_warn("collect_failed", "error=out_of_memory");
        return;
    }
    c->enabled = true;
    c->full = false;
    c->dataset_id = p->dataset_id;
    ef_info("collect_started", "model=%s dataset_id=%lld sample_rate=%g batch=%zu", c->model,
            (long long)p->dataset_id, p->sample_rate, cap);
}

static void policy_answered(void *ctx, const struct http_result *res)
{
    struct collect *c = ctx;
    struct collect_policy p;
    int rc;
    c->fetching = false;
    if (c->freed || res->rc == EF_EBUSY)
        goto out;
    if (res->rc != 0 || res->status != 200) {
        ef_warn("collect_policy_failed", "error=%s status=%ld", ef_errname(res->rc), res->status);
        goto out;
    }
    if (!c->model[0])
        goto out;
    if ((rc = collect_policy_parse(res->body, res->body_len, &p)) != 0) {
        ef_warn("collect_policy_malformed", "error=%s bytes=%zu", ef_errname(rc), res->body_len);
        stop_collecting(c);
        goto out;
    }
    apply_policy(c, &p);
out:
    if (!c->freed && c->refetch) {
        c->refetch = false;
        collect_refresh(c);
    }
    maybe_release(c);
}

void collect_refresh(struct collect *c)
{
    char url[512];
    if (!c)
        return;
    if (c->fetching) {
        c->refetch = true;
        return;
    }
    if (!c->model[0] || !c->token[0])
        return;
    snprintf(url, sizeof(url), "%s/api/v1/devices/%s/collection", c->server_url, c->device_id);
    struct http_request_opts opts = {
        .url = url,
        .bearer = c->token,
        .max_bytes = POLICY_MAX_BYTES,
        .timeout_ms = REQUEST_TIMEOUT_MS,
    };
    if (http_client_request(c->http, &opts, policy_answered, c) == 0)
        c->fetching = true;
}

void collect_set_model(struct collect *c, const char *model_id, size_t input_size,
                       size_t output_size)
{
    if (!c)
        return;
    if (!model_id)
        model_id = "";
    if (strcmp(c->model, model_id) != 0 || c->input_size != input_size) {
        stop_collecting(c);
        c->full = false;
        snprintf(c->model, sizeof(c->model), "%s", model_id);
        c->input_size = input_size;
        c->output_size = output_size;
    }
    /* An answer under way may describe the previous model: ask again. */
    if (c->fetching)
        c->refetch = true;
    else
        collect_refresh(c);
}

void collect_offer(struct collect *c, const char *id, const double *in, size_t n_in)
{
    if (!collect_active(c) || n_in != c->input_size ||
        (c->sample_rate < 1 && ef_rng_unit(&c->rng) >= c->sample_rate))
        return;
    if (ef_reservoir_offer(c->res, in, id) < 0)
        ef_warn("collect_failed", "error=out_of_memory");
}

void collect_label(struct collect *c, const char *id, size_t cls)
{
    if (c && c->res && cls < c->output_size)
        (void)ef_reservoir_label(c->res, id, (int64_t)cls);
}

static void upload_answered(void *ctx, const struct http_result *res)
{
    struct collect *c = ctx;
    json_t *doc = NULL;
    c->uploading = false;
    if (c->freed || res->rc == EF_EBUSY)
        goto out;
    if (res->rc != 0) {
        ef_warn("collect_upload_failed", "error=%s", ef_errname(res->rc));
        goto out;
    }
    (void)ef_json_load(res->body, res->body_len, ANSWER_MAX_BYTES, &doc, NULL, 0);
    if (res->status == 201 || res->status == 200) {
        int64_t accepted = 0;
        (void)ef_json_int(doc, "accepted", &accepted);
        ef_info("collect_uploaded", "model=%s dataset_id=%lld accepted=%lld full=%s", c->model,
                (long long)c->dataset_id, (long long)accepted,
                json_is_true(json_object_get(doc, "full")) ? "yes" : "no");
        if (json_is_true(json_object_get(doc, "full"))) {
            c->full = true;
            c->full_dataset = c->dataset_id;
            ef_info("collect_full", "model=%s dataset_id=%lld", c->model, (long long)c->dataset_id);
            ef_reservoir_free(c->res);
            c->res = NULL;
        }
        goto out;
    }
    const char *code = ef_json_str(json_object_get(doc, "error"), "code");
    ef_warn("collect_upload_refused", "status=%ld code=%.40s", res->status, code ? code : "-");
    if (res->status == 403 || res->status == 409) {
        /* The policy changed under us. */
        stop_collecting(c);
        collect_refresh(c);
    }
out:
    json_decref(doc);
    maybe_release(c);
}

/* The upload body of the reservoir's items; NULL when out of memory. */
static char *upload_body(const struct collect *c)
{
    char *text = NULL;
    json_t *samples = json_array();
    for (size_t i = 0; samples && i < c->res->count; i++) {
        const struct ef_reservoir_item *it = &c->res->items[i];
        json_t *s =
            json_pack("{s:o, s:o}", "input", ef_json_doubles(it->input, c->input_size), "label",
                      it->label >= 0 ? json_integer((json_int_t)it->label) : json_null());
        if (json_array_append_new(samples, s) != 0) {
            json_decref(samples);
            samples = NULL;
        }
    }
    json_t *doc = json_pack("{s:s, s:I, s:o}", "model", c->model, "dataset_id",
                            (json_int_t)c->dataset_id, "samples", samples);
    if (doc)
        text = ef_json_dump(doc);
    json_decref(doc);
    return text;
}

void collect_flush(struct collect *c)
{
    char url[512];
    char *body = NULL;
    if (!collect_active(c) || c->res->count == 0 || c->uploading || !c->token[0])
        return;
    snprintf(url, sizeof(url), "%s/api/v1/devices/%s/samples", c->server_url, c->device_id);
    if (!(body = upload_body(c))) {
        ef_warn("collect_failed", "error=out_of_memory");
        goto out;
    }
    struct http_request_opts opts = {
        .url = url,
        .method = "POST",
        .bearer = c->token,
        .json_body = body,
        .max_bytes = ANSWER_MAX_BYTES,
        .timeout_ms = REQUEST_TIMEOUT_MS,
    };
    size_t n = c->res->count;
    int rc = http_client_request(c->http, &opts, upload_answered, c);
    if (rc != 0) {
        ef_warn("collect_upload_failed", "error=%s", ef_errname(rc));
        goto out;
    }
    c->uploading = true;
    ef_debug("collect_uploading", "model=%s samples=%zu", c->model, n);
out:
    /* A new sample starts whatever became of this one. */
    ef_reservoir_clear(c->res);
    free(body);
}

bool collect_active(const struct collect *c)
{
    return c && c->enabled && !c->full && c->res;
}

size_t collect_held(const struct collect *c)
{
    return c && c->res ? c->res->count : 0;
}
