/*
 * trial.h - judging a model on trial.
 *
 * Internal to deploy.c (and its unit test). After a swap the candidate serves
 * for cfg.trial_s seconds; deploy.c counts its inferences and errors and
 * keeps its latencies in a struct ef_quantile (common/quantile.h, 1 %
 * relative error), as it does for each model during its own service (the
 * "previous p99" of the ratio rule). trial_judge decides from those numbers
 * whether the candidate breached the limits of the agent's configuration.
 */
#ifndef EF_AGENT_TRIAL_H
#define EF_AGENT_TRIAL_H

#include "agent/agent.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TRIAL_REASON_SIZE 160

/* What the judge sees of a trial. */
struct trial_counts {
    uint64_t requests;  /* inferences served by the candidate */
    uint64_t errors;    /* of those, failed */
    double p99_ms;      /* candidate's p99 latency, ms (ignored when requests == 0) */
    double prev_p99_ms; /* previous model's p99 in its own service, ms; < 0 when unknown */
};

/* True when c breaches cfg's limits; reason then names the metric and its
 * values ("error rate 0.200 > 0.050 over 20 requests"). Never a breach before
 * cfg->trial_min_requests requests (nor with none at all). Each comparison is
 * strict: a value exactly at its limit is not a breach. A limit <= 0 turns
 * the p99 and ratio rules off; the error-rate rule is off when it is < 0.
 * Pure: no clock, no I/O. */
bool trial_judge(const struct trial_counts *c, const struct agent_config *cfg, char *reason,
                 size_t reason_size);

#endif
