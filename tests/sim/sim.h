/*
 * sim.h - edgefleet-sim: a fleet of simulated devices in one process.
 *
 * Every device is a real `struct agent` of the agent's own modules (identity
 * and enrollment, the MQTT uplink, the deployment state machine with its
 * verification, self-test and trial, metrics windows), all on one libuv loop
 * (agent.h's shared_loop) and sharing one HTTP client (one curl multi whose
 * connections are capped) and one set of inference backends. What the
 * simulator adds is only what a real device has around the agent: inference
 * traffic (real FANN through the serving model, or a synthetic cost) with a
 * drift profile, and the faults of a fleet: a share of devices whose
 * deployments fail, a share whose downloads are slow, a share that drops
 * offline for a while.
 *
 * Which devices play which part is fixed by their index (sim_role), so a
 * test can tell which devices must end failed.
 */
#ifndef EF_SIM_SIM_H
#define EF_SIM_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define SIM_DEVICES_MAX 100000

/* How a failing device fails. */
enum sim_fail_mode {
    SIM_FAIL_VERIFY, /* it has no inference backend: every deployment fails at
                        verification ("backend fann is not available") */
    SIM_FAIL_TRIAL,  /* every inference it serves fails: the agent's trial
                        judge rolls the new version back by itself */
};

struct sim_config {
    unsigned devices;       /* how many devices, 1..SIM_DEVICES_MAX */
    char server_url[256];   /* http://HOST:PORT of edgefleet-server */
    char mqtt_url[256];     /* mqtt://HOST:PORT of the broker */
    char enroll_token[64];  /* one enrollment token with enough uses for every device */
    char data_dir[512];     /* one directory per device below it; "" for a temporary one */
    bool keep;              /* keep a temporary data_dir at exit */
    char prefix[32];        /* device ids are PREFIX-00001 ... */
    unsigned first;         /* number of the first device (default 1) */
    char device_class[65];  /* sent at enrollment */
    char tags[1024];        /* JSON object of --tag k=v */
    char backend_dir[512];  /* "" for backends_default_dir() */
    unsigned http_group;    /* devices sharing one HTTP client (one curl multi) */
    unsigned http_conns;    /* cap on the connections of each HTTP client */
    unsigned ramp_ms;       /* start the devices evenly over this many ms */
    unsigned metrics_s;     /* telemetry window of every device, seconds */
    unsigned poll_s;        /* GET /desired timer, seconds */
    unsigned trial_s;       /* trial window after a swap, seconds */
    double infer_rate;      /* inferences per device per second (0: none) */
    unsigned infer_cost_us; /* 0: real FANN; else a synthetic inference of this cost */
    double drift_shift;     /* added to every input feature once the drift is complete */
    double drift_after_s;   /* seconds after start before the drift begins */
    double drift_ramp_s;    /* seconds it takes to reach drift_shift (0: a step) */
    double noise;           /* uniform noise +-noise on every input feature */
    double fail_share;      /* share of devices whose deployments fail */
    enum sim_fail_mode fail_mode;
    double slow_share;    /* share of devices with rate-limited downloads */
    unsigned slow_bps;    /* their download rate, bytes/s */
    double offline_share; /* share of devices that drop offline ... */
    double offline_at_s;  /* ... this many seconds after they first connect ... */
    double offline_for_s; /* ... for this long (0: for good) */
    double status_s;      /* a status line on stdout every this many seconds (0: none) */
    double duration_s;    /* stop after this long (0: at SIGINT/SIGTERM) */
    unsigned seed;        /* of the noise */
};

/* The part a device plays; a device may be slow and offline, but a failing
 * device is only failing. */
struct sim_role {
    bool failing;
    bool slow;
    bool offline;
};

/* Defaults: 100 devices, prefix "sim", class "default", tags {}, one HTTP
 * client per 100 devices with at most 4 connections each, windows of 60 s, poll 300 s, trial 30 s,
 * 0.2 inferences per second with real FANN, no drift, no faults, a status line every 1 s. */
void sim_config_defaults(struct sim_config *cfg);

/* Parses the command line (argv without the program name) into cfg. Returns
 * 0, 1 when --help was printed to out, or EF_EINVAL with a message on err. */
int sim_config_parse(int argc, char **argv, struct sim_config *cfg, FILE *out, FILE *err);

/* The role of device index i (0-based) of n: each share is spread evenly
 * over the fleet (index i has a role when floor((i + 1) * share) >
 * floor(i * share)), so exactly floor(n * share) devices play it; the slow
 * and offline shares count from the other end so that they overlap the
 * failing share as little as possible. */
struct sim_role sim_role(const struct sim_config *cfg, unsigned i);

/* The number of devices playing each part. */
unsigned sim_role_count(const struct sim_config *cfg, bool failing, bool slow, bool offline);

/* File descriptors the process needs for cfg: three per device (its MQTT
 * connection and the socket pair libmosquitto makes for every client), the
 * HTTP connections and each HTTP client's wake-up pair, and a margin for the loop, the thread pool,
 * reconnects and stdio. */
unsigned long sim_fd_budget(const struct sim_config *cfg);

/* The drift added to every input feature at t_s seconds after the start. */
double sim_drift_at(const struct sim_config *cfg, double t_s);

/* Device id of index i: PREFIX-NNNNN (at least five digits). EF_ETOOBIG
 * when it does not fit in size or is not a valid device id. */
int sim_device_id(const struct sim_config *cfg, unsigned i, char *buf, size_t size);

/* The number of HTTP clients for cfg: one per http_group devices. */
unsigned sim_http_clients(const struct sim_config *cfg);

/* Runs the fleet until SIGINT/SIGTERM or cfg->duration_s; status lines (one
 * JSON object each) go to out. 0, or an EF_E* code when it could not start. */
int sim_run(const struct sim_config *cfg, FILE *out);

#endif
