/*
 * agent.h - the one state of edgefleet-agent: a libuv loop and everything
 * that hangs off it. Every callback runs on the loop thread; blocking work
 * (loading, verifying, self-test) goes to libuv's thread pool and comes back
 * to the loop to change any of this.
 */
#ifndef EF_AGENT_AGENT_H
#define EF_AGENT_AGENT_H

#include "common/assignment.h"
#include "common/crypto.h"
#include "common/topic.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct backends;
struct http_client;
struct mqtt_link;
struct deploy;
struct serve;
struct metrics;
struct inbox;
struct enrollment;
struct collect;
struct model;

/* Flags and config file keys have the same names (see agent/config.c). */
struct agent_config {
    char server_url[256]; /* http://HOST:PORT of edgefleet-server */
    char mqtt_url[256];   /* mqtt://HOST:PORT of the broker */
    char data_dir[512];   /* state, models, identity, infer.sock */
    char device_id[EF_DEVICE_ID_MAX + 1];
    char enroll_token[EF_TOKEN_SIZE]; /* used once, when there is no identity yet */
    char device_class[65];            /* sent at enrollment; manifests for others are refused */
    char tags[1024];                  /* JSON object of --tag k=v, sent at enrollment */
    char socket_path[512];            /* inference socket; default DATA_DIR/infer.sock */
    char backend_dir[512];            /* backend modules; default backends_default_dir() */
    char release_key[EF_PK_B64_SIZE]; /* pinned keys given at install, "" to learn */
    char server_key[EF_PK_B64_SIZE];
    unsigned metrics_interval_s; /* telemetry window, default 60 */
    double shadow_share;         /* share of inferences the shadow model also runs, default 1 */
    unsigned poll_interval_s;    /* GET /desired on this slow timer, default 300 */
    unsigned trial_s;            /* trial window after a swap, default 30 */
    unsigned trial_min_requests; /* judge the trial only after this many, default 20 */
    double trial_max_error_rate; /* breach above this share of failed inferences, default 0.05 */
    double trial_max_p99_ms;     /* breach above this p99 latency, default 250 */
    double trial_max_p99_ratio;  /* breach above this many times the previous p99, default 10 */
    unsigned download_floor_bps; /* abort downloads slower than this ... default 1024 */
    unsigned download_floor_s;   /* ... for this long, default 30 */
    unsigned download_max_bps;   /* cap artifact downloads at this many bytes/s, 0: none */
};

/* What enrollment gave us, persisted in DATA_DIR/identity.json (mode 0600). */
struct identity {
    char device_token[EF_TOKEN_SIZE];
    unsigned char release_pk[EF_PK_BYTES]; /* pinned: verifies manifests */
    unsigned char server_pk[EF_PK_BYTES];  /* pinned: verifies assignments */
    char mqtt_username[128];               /* "" when the broker takes anonymous clients */
    char mqtt_password[128];
};

struct agent {
    uv_loop_t loop;
    uv_loop_t *shared_loop; /* borrowed: when set (edgefleet-sim runs many agents on one
                               loop), every handle goes there and loop is unused */
    struct agent_config cfg;
    struct identity id;
    struct backends *backends; /* owned */
    struct http_client *http;  /* owned */
    struct mqtt_link *mqtt;    /* owned */
    struct deploy *deploy;     /* owned: slots, state machine, serving models */
    struct serve *serve;       /* owned: the local inference endpoint */
    struct metrics *metrics;   /* owned: the current telemetry window */
    struct collect *collect;   /* owned: data collection (policy, reservoir, uploads) */
    struct inbox *inbox;       /* owned: DATA_DIR/inbox watcher */
    uv_signal_t sigint, sigterm;
    uv_timer_t poll_timer;         /* GET /desired */
    uv_timer_t metrics_timer;      /* end of a telemetry window */
    struct enrollment *enrollment; /* under way, or NULL */
    bool polling;                  /* a GET /desired is under way */
    char desired_etag[96];         /* of the last GET /desired answered 200 */
    bool handles_ready;            /* signals and timers initialised */
    int exit_rc;                   /* a fatal error met on the loop, 0 if none */
    bool stopping;
    /* Called by deploy whenever the model a slot serves is set or swapped
     * (load at start, swap, rollback, commit, unload) with what it serves
     * now (borrowed, may be NULL); may be NULL. */
    void (*serving_changed)(struct agent *a, enum ef_slot_kind slot, struct model *serving);
};

/* The loop every handle of this agent goes on: shared_loop when set, else
 * its own. */
static inline uv_loop_t *agent_loop(struct agent *a)
{
    return a->shared_loop ? a->shared_loop : &a->loop;
}

/* Publishes a deployment event on edgefleet/v1/devices/{id}/reported (QoS 1).
 * reason may be NULL. Never fails loudly: a lost report is re-sent by the
 * next state change, and the server also sees the desired seq converge. */
void agent_report(struct agent *a, const char *slot, const char *model, int64_t version,
                  const char *state, const char *reason);

/* Starts a GET /desired now (with If-None-Match) unless one is under way. */
void agent_poll_desired(struct agent *a);

/* Closes the current telemetry window now, publishes it and opens the next. */
void agent_telemetry_now(struct agent *a);

#endif
