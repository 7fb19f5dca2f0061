/*
 * rollout_policy.h - a rollout's policy (docs/rollouts.md, "Policy") and the
 * decision it makes about one ring: pure functions, no database, no clock,
 * no I/O, so that every threshold edge can be tested by hand.
 *
 * The engine (rollout.h) counts the ring's devices by action, reads the
 * ring's telemetry and the time, and asks rollout_policy_evaluate what
 * follows: nothing yet, soaking, success, or a breach with its reason.
 */
#ifndef EF_ROLLOUT_POLICY_H
#define EF_ROLLOUT_POLICY_H

#include "server/db_telemetry.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ROLLOUT_MAX_GATES      8
#define ROLLOUT_MIN_DEVICES    1000000         /* largest min_devices */
#define ROLLOUT_MAX_SECONDS    2592000         /* largest soak_s and deadline_s: 30 days */
#define ROLLOUT_MAX_INFERENCES 1000000000000LL /* largest min_inferences of a gate */
#define ROLLOUT_REASON_SIZE    160             /* a breach reason and its NUL */

/* What a gate measures over the ring's telemetry windows. */
enum rollout_metric {
    ROLLOUT_METRIC_ERROR_RATE,     /* sum(errors) / sum(inferences) */
    ROLLOUT_METRIC_LATENCY_P99_MS, /* the largest window p99 among windows with inferences */
};

/* A metric gate: breached when the metric is above max, once at least
 * min_inferences inferences are behind it. */
struct rollout_gate {
    enum rollout_metric metric;
    double max;             /* share for error_rate (0..1), milliseconds for latency */
    int64_t min_inferences; /* >= 1; fewer inferences do not decide */
};

/* What a breach does. */
enum rollout_on_breach {
    ROLLOUT_ON_BREACH_PAUSE,    /* pause the rollout */
    ROLLOUT_ON_BREACH_ROLLBACK, /* roll back every ring the rollout reached */
};

/* The policy of a rollout, applied to each of its rings. */
struct rollout_policy {
    double success;      /* ring succeeds when committed / devices >= success, 0..1 */
    double error;        /* breach when failed / devices > error, 0..1 */
    int64_t min_devices; /* finished devices before the error rule counts, >= 1 */
    int64_t soak_s;      /* seconds in soaking before success counts */
    int64_t deadline_s;  /* seconds in running before unfinished devices count as failed */
    size_t gate_count;   /* gates used */
    struct rollout_gate gates[ROLLOUT_MAX_GATES];
    enum rollout_on_breach on_breach;
};

/* Fills *p with the defaults of docs/rollouts.md: success 1.0, error 0.0,
 * min_devices 1, soak_s 0, deadline_s 600, no gates, on_breach pause. */
void rollout_policy_default(struct rollout_policy *p);

/*
 * Reads a policy object (borrowed; NULL means all defaults) over the
 * defaults into *out. Members: success, error (numbers in 0..1),
 * min_devices (integer 1..ROLLOUT_MIN_DEVICES), soak_s (integer
 * 0..ROLLOUT_MAX_SECONDS), deadline_s (integer 1..ROLLOUT_MAX_SECONDS),
 * gates (array of at most ROLLOUT_MAX_GATES {metric, max, min_inferences?}),
 * on_breach ("pause" or "rollback"). EF_EINVAL for anything else, an unknown
 * member included, with the reason in msg.
 */
int rollout_policy_parse(const json_t *doc, struct rollout_policy *out, char *msg, size_t msg_size);

/* The policy as a new JSON object with every member, the form that is
 * stored and shown; NULL on ENOMEM. rollout_policy_parse reads it back to
 * the same policy. */
json_t *rollout_policy_json(const struct rollout_policy *p);

/* One ring as the engine sees it at one evaluation. */
struct rollout_ring_view {
    int64_t devices;                        /* devices of the ring counted now */
    int64_t committed;                      /* of them, action committed */
    int64_t failed;                         /* of them, action failed or rolled_back */
    bool soaking;                           /* stage soaking; else running */
    int64_t running_ms;                     /* since the stage entered running */
    int64_t soaking_ms;                     /* since it entered soaking (when soaking) */
    const struct ring_telemetry *telemetry; /* the ring's windows since it started; may be NULL */
};

/* What follows for the ring. */
enum rollout_verdict {
    ROLLOUT_CONTINUE, /* nothing yet */
    ROLLOUT_SOAK,     /* running -> soaking: success reached */
    ROLLOUT_SUCCEED,  /* -> succeeded: soaked, or the ring is empty */
    ROLLOUT_BREACH,   /* -> failed: see reason */
};

struct rollout_decision {
    enum rollout_verdict verdict;
    bool timed_out; /* past the deadline: the unfinished devices count as failed (timeout) */
    char reason[ROLLOUT_REASON_SIZE]; /* for a breach or a success, for the log and the API */
};

/*
 * Decides about one ring, in the order of docs/rollouts.md: an empty ring
 * succeeds at once; then the error rule (failed / devices > error, only once
 * committed + failed >= min_devices); then, in running, the deadline (the
 * unfinished devices count as failed and the error rule is applied again,
 * reason "timeout: ..."); then the gates; then, in running, the success rule
 * (committed / devices >= success: soak), and past the deadline a success
 * not reached is a breach; in soaking, success once soak_s has passed.
 */
void rollout_policy_evaluate(const struct rollout_policy *p, const struct rollout_ring_view *v,
                             struct rollout_decision *out);

/* The names of the enums as the API spells them. */
const char *rollout_metric_name(enum rollout_metric m);
const char *rollout_on_breach_name(enum rollout_on_breach b);

#endif
