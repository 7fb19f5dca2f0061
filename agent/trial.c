/* trial.c - the trial judge: error rate, p99 latency, p99 against the previous model. */
#include "agent/trial.h"

#include <stdio.h>

bool trial_judge(const struct trial_counts *c, const struct agent_config *cfg, char *reason,
                 size_t reason_size)
{
    bool breach = false;
    if (reason && reason_size)
        reason[0] = '\0';
    /* Too little evidence judges nothing: a quiet device keeps its candidate. */
    if (c->requests == 0 || c->requests < cfg->trial_min_requests)
        goto out;
    double error_rate = (double)c->errors / (double)c->requests;
    if (cfg->trial_max_error_rate >= 0 && error_rate > cfg->trial_max_error_rate) {
        snprintf(reason, reason_size, "error rate %.3f > %.3f over %llu requests", error_rate,
                 cfg->trial_max_error_rate, (unsigned long long)c->requests);
        breach = true;
    } else if (cfg->trial_max_p99_ms > 0 && c->p99_ms > cfg->trial_max_p99_ms) {
        snprintf(reason, reason_size, "p99 latency %.3f ms > %.3f ms over %llu requests", c->p99_ms,
                 cfg->trial_max_p99_ms, (unsigned long long)c->requests);
        breach = true;
    } else if (cfg->trial_max_p99_ratio > 0 && c->prev_p99_ms > 0 &&
               c->p99_ms > cfg->trial_max_p99_ratio * c->prev_p99_ms) {
        snprintf(reason, reason_size,
                 "p99 latency %.3f ms > %.2f x previous model's p99 %.3f ms over %llu requests",
                 c->p99_ms, cfg->trial_max_p99_ratio, c->prev_p99_ms,
                 (unsigned long long)c->requests);
        breach = true;
    }
out:
    return breach;
}
