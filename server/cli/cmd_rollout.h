/*
 * cmd_rollout.h - the pure parts of `edgefleet rollout` (cmd_rollout.c),
 * exposed for tests/unit/test_cli_rollout.c: the policy flags of `rollout
 * create` turned into the request body of docs/rollouts.md, and the readable
 * view of a rollout that `show` and `show --watch` print. None of them touch
 * the network or the terminal.
 */
#ifndef EF_CLI_CMD_ROLLOUT_H
#define EF_CLI_CMD_ROLLOUT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define ROLLOUT_BAR_WIDTH 20 /* cells in a ring's progress bar */

/* The arguments of `rollout create` as given on the command line: every
 * string is borrowed, and NULL when its flag was not given. */
struct rollout_create_args {
    const char *target;       /* NAME@VERSION */
    const char *rings;        /* --rings A,B,C */
    const char *success;      /* --success P: share 0..1 or percentage "90%" */
    const char *error;        /* --error P: likewise */
    const char *min_devices;  /* --min-devices N: finished devices before --error counts */
    const char *soak;         /* --soak S: seconds */
    const char *deadline;     /* --deadline S: seconds */
    const char *on_breach;    /* --on-breach pause|rollback */
    const char *slot;         /* --slot production|shadow */
    const char *const *gates; /* ngates --gate EXPR values */
    size_t ngates;
    bool supersede; /* --supersede */
};

/*
 * Builds the body of POST /api/v1/rollouts: {"model", "version", "rings",
 * "policy"?, "supersede"?, "slot"?}. "policy" holds only the members whose flags were
 * given (the server fills in its defaults) and is left out when none was.
 * On success *out is a new reference. EF_EINVAL with the reason in msg
 * (naming the flag), EF_ENOMEM.
 */
int rollout_create_body(const struct rollout_create_args *a, json_t **out, char *msg,
                        size_t msg_size);

/* Parses a share: a decimal in 0..1 ("0.9") or a percentage in 0..100%
 * ("90%", "99.5%"). No sign, exponent or surrounding text. EF_EINVAL. */
int rollout_share_parse(const char *s, double *out, char *msg, size_t msg_size);

/*
 * Parses a metric gate "METRIC<=MAX[@N]" ('<' is accepted for '<=', blanks
 * around the parts are ignored) into a new {"metric", "max",
 * "min_inferences"?} object. METRIC is error_rate (MAX a share, "5%"
 * allowed) or latency_p99_ms (MAX in milliseconds); N >= 1. EF_EINVAL,
 * EF_ENOMEM.
 */
int rollout_gate_parse(const char *s, json_t **out, char *msg, size_t msg_size);

/* True for the rollout states nothing follows: succeeded, failed, aborted,
 * rolled_back. */
bool rollout_state_final(const char *state);

/*
 * Writes the readable view of a rollout object (docs/rollouts.md) to f: a
 * header line (id, model@version, "(shadow)" for a shadow rollout, state,
 * reason, the production rollout it was promoted to), its times, the policy, and
 * one line per ring: name, state, a progress bar of ROLLOUT_BAR_WIDTH cells
 * ('#' committed, 'x' failed/rolled back/cancelled, '>' in progress, '.'
 * pending), the counts, and what the ring needs (committed devices for
 * success, failed devices that breach; the deadline of a running ring
 * relative to now_ms, Unix ms). Server strings are printed with control
 * characters replaced; absent members show as "-". Returns 0, EF_EIO or
 * EF_ENOMEM.
 */
int rollout_view_write(FILE *f, const json_t *rollout, int64_t now_ms);

#endif
