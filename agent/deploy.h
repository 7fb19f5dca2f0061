/*
 * deploy.h - the deployment state machine, one per model slot.
 *
 *   notified -> downloading -> verifying -> staged -> self-test -> active
 *   (trial) -> committed, or failed(reason) / rolled_back(reason)
 *
 * The state of every slot is written to DATA_DIR/state.json (atomically)
 * before each transition, so a restart at any point resumes the deployment or
 * rolls it back; the committed model of each slot is kept on disk under
 * DATA_DIR/models/ and served at start, before any network. Assignments are
 * verified (server key) before they are parsed and must carry a seq above
 * the last accepted one; manifests are verified (release key), then checked
 * against the slot (model, version, hash, size), the device class and the
 * available backends; artifacts are downloaded with resume, bounded by their
 * declared size, hashed, loaded and self-tested off the serving path. The swap
 * is a pointer exchange on the loop; the previous model stays loaded as the
 * last-known-good until the trial ends.
 *
 * Transient download failures (network, timeouts, HTTP 5xx/408/429) are
 * retried with backoff, 1 s doubling to 5 min with +-20 % jitter, the slot
 * staying in downloading. Every transition is logged (event deploy_state
 * with slot, model, version, state, reason) and reported with agent_report:
 * notified, downloading, verifying, staged, self-test, active, committed,
 * failed, rolled_back, and cancelled for a deployment replaced before it
 * ended.
 */
#ifndef EF_AGENT_DEPLOY_H
#define EF_AGENT_DEPLOY_H

#include "common/assignment.h"

#include <jansson.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct agent;
struct model;
struct deploy;

/* Loads DATA_DIR/state.json (absent: a fresh device; corrupt: kept aside as
 * state.json.corrupt, logged, and started fresh, which is not an error),
 * loads the committed model of each slot synchronously so that it serves at
 * once (its manifest verified and its file hashed again; one that fails is
 * logged, not served, and fetched again when its URLs are known), and
 * resumes what was under way: notified/downloading download again (resuming
 * the .part by Range), verifying/staged/self-test and active (a trial cut
 * short: never committed) start again from verifying. Needs a->cfg, a->id,
 * a->backends and a->http (NULL: downloads wait and retry) set, and the
 * loop initialised. EF_EIO, EF_ENOMEM. */
int deploy_open(struct agent *a, struct deploy **out);

/* Releases the serving models and stops the machine; accepts NULL. Memory
 * is freed once its timers are closed, its thread-pool jobs have come back
 * and its HTTP requests have ended (http_client_free ends them), so run the
 * loop afterwards, as after uv_close, and close the backends only after
 * that (a job may still hold a model). */
void deploy_close(struct deploy *d);

/* A signed assignment envelope arrived (MQTT `desired` or GET /desired).
 * Verifies it (server key), checks its device id and seq, and applies it:
 * the new last seq and the new state of every slot are saved in one write
 * before anything acts. Per slot: a version differing from what the slot
 * has committed or is deploying starts a deployment (a trial under way is
 * swapped back, a deployment under way is reported `cancelled`); a failed or
 * rolled-back version named again under a higher seq is retried; an absent
 * production slot is kept, an absent shadow slot is unloaded. Refusals are
 * logged and, except a bad signature, reported through the production slot
 * (a replay as `failed` of the replayed version). Returns 0 when accepted or
 * already current (same seq), else EF_EBADSIG, EF_EPARSE, EF_EINVAL,
 * EF_ETOOBIG, EF_EMISMATCH (another device), EF_ESTALE (seq below the last
 * accepted one), EF_EIO (the state could not be saved: nothing applied),
 * EF_ENOMEM. */
int deploy_on_desired(struct deploy *d, const char *envelope, size_t len);

/* A complete package in the inbox: directory dir holding manifest.json,
 * manifest.sig and model. It is moved out of the inbox at once (to
 * DATA_DIR/downloads/pkg-*), its manifest verified with the release key and
 * checked (device class, backend), its model hashed on the thread pool and
 * moved under DATA_DIR/models/; then it enters the production slot as staged
 * under no seq (self-test, trial, commit). A later assignment with a higher
 * seq takes over as usual, and one that changes production while the model
 * is being hashed drops the package. Consumed in every case (moved, else
 * removed). Returns 0 when taken (the outcome is logged and reported) or
 * already current, else EF_EIO (could not be moved), EF_ENOENT (a file
 * missing), EF_EBADSIG, EF_EPARSE, EF_EINVAL, EF_ETOOBIG, EF_EMISMATCH,
 * EF_EUNSUPPORTED, EF_ENOMEM. */
int deploy_on_package(struct deploy *d, const char *dir);

/* The model serving a slot now, or NULL (borrowed; take a reference to keep
 * it beyond the current loop callback). */
struct model *deploy_serving(struct deploy *d, enum ef_slot_kind slot);

/* Feeds one served inference of slot (ok false: it failed; latency in ms):
 * to the trial judge while a candidate is on trial, else to the serving
 * model's own p99, the reference of the next trial's ratio rule. The trial is
 * judged every second on the loop, so a breach swaps back within a second. */
void deploy_observe(struct deploy *d, enum ef_slot_kind slot, bool ok, double latency_ms);

/* Reports every slot's current state again (after a reconnect, and with each
 * poll of the desired state): a report lost while the server or the broker
 * was away is made good without waiting for the next transition. */
void deploy_report_current(struct deploy *d);

/* The last accepted assignment seq (0 when none). */
int64_t deploy_last_seq(const struct deploy *d);

/* A new JSON object describing every slot (for logs and tests):
 * {"last_seq", "slots": {"production": {"state", "reason", "seq", "target",
 * "committed", "serving", "trial"}, "shadow": {...}}}; NULL on ENOMEM. */
json_t *deploy_describe(const struct deploy *d);

#endif
