/*
 * cmd_trigger.h - the pure part of `edgefleet trigger create`
 * (cmd_trigger.c), exposed for tests/unit/test_cli_trigger.c: the flags
 * turned into the body of POST /api/v1/triggers (docs/monitoring.md,
 * "Trigger rules, alerts and actions"). It touches neither the network nor
 * the terminal.
 */
#ifndef EF_CLI_CMD_TRIGGER_H
#define EF_CLI_CMD_TRIGGER_H

#include <jansson.h>
#include <stddef.h>

/* The flags of `trigger create` as given; every string is borrowed, NULL
 * when its flag was not given. */
struct trigger_create_args {
    const char *model;       /* --model M */
    const char *metric;      /* --metric X */
    const char *above;       /* --above V */
    const char *below;       /* --below V */
    const char *window;      /* --window S: seconds */
    const char *min_devices; /* --min-devices N */
    const char *ring;        /* --ring R */
    const char *aggregation; /* --aggregation A */
    const char *cooldown;    /* --cooldown S: seconds */
    const char *action;      /* --action A */
};

/*
 * Builds the body {"model", "metric", "op", "threshold", "action",
 * "ring"?, "aggregation"?, "window_s"?, "min_devices"?, "cooldown_s"?}: the
 * optional members only when their flags were given (the server fills in its
 * defaults). Names (model, ring) are checked here; metric, aggregation and
 * action names are the server's to check. Exactly one of --above and --below
 * is required, a finite decimal number. On success *out is a new reference.
 * EF_EINVAL with the reason in msg (naming the flag), EF_ENOMEM.
 */
int trigger_create_body(const struct trigger_create_args *a, json_t **out, char *msg,
                        size_t msg_size);

#endif
