/*
 * collect.h - data collection on the device (docs/monitoring.md, "On the
 * agent"): the server's collection policy for the production model, a
 * reservoir sample (Algorithm R, common/reservoir.h) of the inputs it
 * allows, labelled by later feedback, uploaded in batches.
 *
 * The policy comes from GET /api/v1/devices/{id}/collection (device token):
 * {"model", "version", "enabled", "sample_rate", "max_samples",
 * "dataset_id", "batch"}. It is fetched by collect_set_model (start, and
 * each change of the production model) and collect_refresh (each poll of
 * the desired state, and {"cmd": "collect"} on the cmd topic). While it is
 * enabled for the production model's name, each inference is selected with
 * probability sample_rate and offered to a reservoir of `batch` items
 * (capped at COLLECT_MAX_BATCH and so that an upload stays under
 * COLLECT_MAX_BODY); collect_flush (each metrics window's end) uploads what
 * the reservoir holds with POST /api/v1/devices/{id}/samples
 * {"model": "NAME@VERSION", "dataset_id", "samples": [{"input", "label"}]}
 * and starts a new one. Answers: 201 {"accepted", "full"} (full: no more
 * collecting until a policy names another dataset or the model changes), 403
 * collection_disabled and 409 dataset_mismatch fetch the policy again; any
 * other failure is logged and the batch is dropped. One request of each
 * kind is in flight at a time. Loop thread only; everything is logged
 * (events collect_*).
 */
#ifndef EF_AGENT_COLLECT_H
#define EF_AGENT_COLLECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define COLLECT_MAX_BATCH 1000       /* samples per upload, the server's limit */
#define COLLECT_MAX_BODY  (1u << 20) /* bytes of an upload, the server's limit */

struct http_client;
struct collect;

/* A policy answer, as collect_policy_parse reads it. */
struct collect_policy {
    bool enabled;       /* collection allowed for model */
    char model[65];     /* model name, "" when the answer's model is null */
    double sample_rate; /* share of inferences selected, (0, 1]; with enabled */
    int64_t dataset_id; /* the dataset samples go to; with enabled */
    int64_t batch;      /* samples per upload the server wants, >= 1; with enabled */
};

/* Parses the body of GET /api/v1/devices/{id}/collection (at most 16 KiB,
 * duplicate keys refused; unknown keys are ignored, a newer server may add
 * some). EF_EPARSE (not one JSON value), EF_EINVAL (not an object with a
 * boolean enabled; or, enabled, without a model name, a sample_rate in
 * (0, 1], an integer dataset_id and a batch >= 1). */
int collect_policy_parse(const char *body, size_t len, struct collect_policy *out);

/* A new collector, collecting nothing until a policy allows it. http,
 * server_url ("http://HOST:PORT"), device_id and token are borrowed and must
 * outlive it; token is read at each request (it may be filled in later, at
 * enrollment: without it a fetch is skipped). seed seeds the selection and the
 * reservoir (tests pass a fixed one). EF_ENOMEM. */
int collect_new(struct http_client *http, const char *server_url, const char *device_id,
                const char *token, uint64_t seed, struct collect **out);

/* Frees the collector; a request still in flight finishes first (its answer
 * is ignored). Accepts NULL, as do the functions below (they then do
 * nothing: an agent without a collector, as in edgefleet-sim). */
void collect_free(struct collect *c);

/* The production model is now model_id ("NAME@VERSION", NULL: none) with
 * these sizes. A different model drops the reservoir and stops collecting
 * until its policy arrives; in every case the policy is fetched again. */
void collect_set_model(struct collect *c, const char *model_id, size_t input_size,
                       size_t output_size);

/* Fetches the policy again (now, or once the fetch under way ends). */
void collect_refresh(struct collect *c);

/* One successful inference of the production model: selected with
 * probability sample_rate, then offered to the reservoir (in is copied;
 * id may be NULL, and then no feedback can label it). */
void collect_offer(struct collect *c, const char *id, const double *in, size_t n_in);

/* Feedback: the sample offered with id, if held, gets class cls. */
void collect_label(struct collect *c, const char *id, size_t cls);

/* Uploads what the reservoir holds (nothing when empty, when no policy
 * allows it, or while the previous upload is in flight) and starts a new
 * reservoir. */
void collect_flush(struct collect *c);

/* Whether a policy allows collecting for the production model now (enabled
 * and not full), and how many samples the reservoir holds. */
bool collect_active(const struct collect *c);
size_t collect_held(const struct collect *c);

#endif
