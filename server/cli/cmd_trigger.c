/* cmd_trigger.c - `edgefleet trigger create|list|delete` and `edgefleet
 * alert list`: the rules the monitor evaluates and the alerts they raised
 * (/api/v1/triggers, /api/v1/alerts; docs/monitoring.md). */
#include "server/cli/cmd_trigger.h"
#include "common/clock.h"
#include "common/ef_error.h"
#include "common/json_util.h"
#include "common/topic.h"
#include "server/cli/commands.h"
#include "server/cli/output.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WINDOW_S_MAX    604800LL /* the API's bounds */
#define MIN_DEVICES_MAX 1000000LL
#define COOLDOWN_S_MAX  31622400LL
#define ALERTS_LIMIT    1000
#define PATH_SIZE       64

/* Parses a finite decimal number, nothing around it. EF_EINVAL. */
static int number_parse(const char *s, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = s && s[0] && s[0] != ' ' ? strtod(s, &end) : NAN;
    if (!end || *end || errno == ERANGE || !isfinite(v))
        return EF_EINVAL;
    *out = v;
    return 0;
}

/* Adds member key to body as an integer parsed from text in [min, max]
 * (nothing when text is NULL). */
static int int_member(json_t *body, const char *key, const char *flag, const char *text,
                      int64_t min, int64_t max, char *msg, size_t msg_size)
{
    char why[160];
    int64_t v = 0;
    if (!text)
        return 0;
    if (args_int(text, min, max, &v, why, sizeof(why)) != 0) {
        snprintf(msg, msg_size, "--%s: %s", flag, why);
        return EF_EINVAL;
    }
    return json_object_set_new(body, key, json_integer(v)) == 0 ? 0 : EF_ENOMEM;
}

/* Adds a string member when text is not NULL. */
static int str_member(json_t *body, const char *key, const char *text)
{
    if (!text)
        return 0;
    return json_object_set_new(body, key, json_string(text)) == 0 ? 0 : EF_ENOMEM;
}

int trigger_create_body(const struct trigger_create_args *a, json_t **out, char *msg,
                        size_t msg_size)
{
    json_t *body = NULL;
    double threshold = 0;
    int rc = EF_EINVAL;
    *out = NULL;
    if (!a->model || !ef_name_valid(a->model)) {
        snprintf(msg, msg_size, "--model: give a model name (1-64 of a-z 0-9 . _ -)");
        goto out;
    }
    if (!a->metric || !a->metric[0]) {
        snprintf(msg, msg_size, "--metric: give a metric (drift, accuracy, error_rate, ...)");
        goto out;
    }
    if (!a->above == !a->below) {
        snprintf(msg, msg_size, "give exactly one of --above V and --below V");
        goto out;
    }
    if (number_parse(a->above ? a->above : a->below, &threshold) != 0) {
        snprintf(msg, msg_size, "--%s: '%s' is not a finite number", a->above ? "above" : "below",
                 a->above ? a->above : a->below);
        goto out;
    }
    if (!a->action || !a->action[0]) {
        snprintf(msg, msg_size, "--action: give retrain, pause_rollout, rollback or none");
        goto out;
    }
    if (a->ring && !ef_name_valid(a->ring)) {
        snprintf(msg, msg_size, "--ring: '%s' is not a valid ring name", a->ring);
        goto out;
    }
    rc = EF_ENOMEM;
    if (!(body =
              json_pack("{s:s, s:s, s:s, s:f, s:s}", "model", a->model, "metric", a->metric, "op",
                        a->above ? "above" : "below", "threshold", threshold, "action", a->action)))
        goto out;
    if ((rc = str_member(body, "ring", a->ring)) != 0 ||
        (rc = str_member(body, "aggregation", a->aggregation)) != 0 ||
        (rc = int_member(body, "window_s", "window", a->window, 1, WINDOW_S_MAX, msg, msg_size)) !=
            0 ||
        (rc = int_member(body, "min_devices", "min-devices", a->min_devices, 1, MIN_DEVICES_MAX,
                         msg, msg_size)) != 0 ||
        (rc = int_member(body, "cooldown_s", "cooldown", a->cooldown, 0, COOLDOWN_S_MAX, msg,
                         msg_size)) != 0)
        goto out;
    *out = body;
    body = NULL;
    rc = 0;
out:
    if (rc == EF_ENOMEM)
        snprintf(msg, msg_size, "out of memory");
    json_decref(body);
    return rc;
}

/* "mean above 0.25" of a rule or an alert (aggregation may be absent). */
static char *format_rule(const json_t *row)
{
    const char *agg = ef_json_str(row, "aggregation"), *op = ef_json_str(row, "op");
    char *threshold = output_scalar(json_object_get(row, "threshold"));
    char *cell = NULL;
    if (op && threshold) {
        size_t n = (agg ? strlen(agg) : 0) + strlen(op) + strlen(threshold) + 3;
        if ((cell = malloc(n)))
            snprintf(cell, n, "%s%s%s %s", agg ? agg : "", agg ? " " : "", op, threshold);
    }
    free(threshold);
    return cell;
}

static char *format_alert_model(const json_t *row)
{
    return output_name_version(ef_json_str(row, "model"), json_object_get(row, "version"));
}

static const struct output_col trigger_cols[] = {
    {"ID", "id", NULL},
    {"MODEL", "model", NULL},
    {"RING", "ring", NULL},
    {"METRIC", "metric", NULL},
    {"RULE", NULL, format_rule},
    {"WINDOW S", "window_s", NULL},
    {"MIN DEVICES", "min_devices", NULL},
    {"COOLDOWN S", "cooldown_s", NULL},
    {"ACTION", "action", NULL},
    {"ENABLED", "enabled", NULL},
};

static const struct output_col alert_cols[] = {
    {"ID", "id", NULL},
    {"FIRED", "fired_at", NULL},
    {"MODEL", NULL, format_alert_model},
    {"RING", "ring", NULL},
    {"METRIC", "metric", NULL},
    {"VALUE", "value", NULL},
    {"RULE", NULL, format_rule},
    {"DEVICES", "devices", NULL},
    {"STATE", "state", NULL},
    {"ACTION", "action", NULL},
    {"RESULT", "action_result", NULL},
};

static int print_triggers(const json_t *doc)
{
    return output_table(stdout, json_object_get(doc, "triggers"), trigger_cols,
                        sizeof(trigger_cols) / sizeof(trigger_cols[0]));
}

static int print_alerts(const json_t *doc)
{
    return output_table(stdout, json_object_get(doc, "alerts"), alert_cols,
                        sizeof(alert_cols) / sizeof(alert_cols[0]));
}

enum {
    C_MODEL,
    C_METRIC,
    C_ABOVE,
    C_BELOW,
    C_WINDOW,
    C_MIN_DEVICES,
    C_RING,
    C_AGGREGATION,
    C_COOLDOWN,
    C_ACTION,
    C_N
};

static int trigger_create(struct cli *cli, int argc, char **argv)
{
    struct args_opt opts[C_N] = {
        [C_MODEL] = {.name = "model", .metavar = "M"},
        [C_METRIC] = {.name = "metric", .metavar = "X"},
        [C_ABOVE] = {.name = "above", .metavar = "V"},
        [C_BELOW] = {.name = "below", .metavar = "V"},
        [C_WINDOW] = {.name = "window", .metavar = "S"},
        [C_MIN_DEVICES] = {.name = "min-devices", .metavar = "N"},
        [C_RING] = {.name = "ring", .metavar = "R"},
        [C_AGGREGATION] = {.name = "aggregation", .metavar = "A"},
        [C_COOLDOWN] = {.name = "cooldown", .metavar = "S"},
        [C_ACTION] = {.name = "action", .metavar = "A"},
    };
    char msg[200] = "";
    json_t *body = NULL;
    size_t npos = 0;
    int status = CLI_EXIT_OK, rc;
    if (!cli_parse(cli, argc, argv, opts, C_N, NULL, 0, 0, &npos, &status))
        goto out;
    struct trigger_create_args a = {
        .model = args_value(&opts[C_MODEL]),
        .metric = args_value(&opts[C_METRIC]),
        .above = args_value(&opts[C_ABOVE]),
        .below = args_value(&opts[C_BELOW]),
        .window = args_value(&opts[C_WINDOW]),
        .min_devices = args_value(&opts[C_MIN_DEVICES]),
        .ring = args_value(&opts[C_RING]),
        .aggregation = args_value(&opts[C_AGGREGATION]),
        .cooldown = args_value(&opts[C_COOLDOWN]),
        .action = args_value(&opts[C_ACTION]),
    };
    if ((rc = trigger_create_body(&a, &body, msg, sizeof(msg))) != 0) {
        status = rc == EF_ENOMEM ? cli_fail("out_of_memory", "cannot build the request")
                                 : cli_usage(cli, "%s", msg);
        goto out;
    }
    status = cli_request(cli, "POST", "/api/v1/triggers", body, cli_text_fields);
out:
    json_decref(body);
    args_opts_release(opts, C_N);
    return status;
}

enum { L_MODEL, L_N };

static int trigger_list(struct cli *cli, int argc, char **argv)
{
    struct args_opt opts[L_N] = {[L_MODEL] = {.name = "model", .metavar = "M"}};
    size_t npos = 0;
    int status = CLI_EXIT_OK;
    if (!cli_parse(cli, argc, argv, opts, L_N, NULL, 0, 0, &npos, &status))
        goto out;
    const char *model = args_value(&opts[L_MODEL]);
    if (model && !ef_name_valid(model)) {
        status = cli_usage(cli, "--model '%s' is not a valid model name", model);
        goto out;
    }
    const char *pairs[] = {"model", model};
    status = cli_get_query(cli, "/api/v1/triggers", pairs, 1, print_triggers);
out:
    args_opts_release(opts, L_N);
    return status;
}

static int trigger_delete(struct cli *cli, int argc, char **argv)
{
    const char *pos[1];
    char path[PATH_SIZE], msg[160];
    int64_t id = 0;
    size_t npos = 0;
    int status = CLI_EXIT_OK;
    if (!cli_parse(cli, argc, argv, NULL, 0, pos, 1, 1, &npos, &status))
        return status;
    if (args_int(pos[0], 1, INT64_MAX, &id, msg, sizeof(msg)) != 0)
        return cli_usage(cli, "ID: %s", msg);
    snprintf(path, sizeof(path), "/api/v1/triggers/%lld", (long long)id);
    status = cli_request(cli, "DELETE", path, NULL, NULL);
    if (status == CLI_EXIT_OK && !cli->json)
        printf("trigger %lld deleted\n", (long long)id);
    return status;
}

enum { A_MODEL, A_STATE, A_SINCE, A_LIMIT, A_N };

static int alert_list(struct cli *cli, int argc, char **argv)
{
    struct args_opt opts[A_N] = {
        [A_MODEL] = {.name = "model", .metavar = "M"},
        [A_STATE] = {.name = "state", .metavar = "S"},
        [A_SINCE] = {.name = "since", .metavar = "T"},
        [A_LIMIT] = {.name = "limit", .metavar = "N"},
    };
    char msg[160];
    int64_t n = 0;
    size_t npos = 0;
    int status = CLI_EXIT_OK;
    if (!cli_parse(cli, argc, argv, opts, A_N, NULL, 0, 0, &npos, &status))
        goto out;
    const char *model = args_value(&opts[A_MODEL]), *state = args_value(&opts[A_STATE]);
    const char *since = args_value(&opts[A_SINCE]), *limit = args_value(&opts[A_LIMIT]);
    if (model && !ef_name_valid(model)) {
        status = cli_usage(cli, "--model '%s' is not a valid model name", model);
        goto out;
    }
    if (state && strcmp(state, "firing") != 0 && strcmp(state, "resolved") != 0) {
        status = cli_usage(cli, "--state: give firing or resolved");
        goto out;
    }
    if (since && args_int(since, 0, INT64_MAX, &n, msg, sizeof(msg)) != 0 &&
        ef_time_parse(since, &n) != 0) {
        status = cli_usage(cli, "--since: give seconds ago (3600), Unix ms or an RFC 3339 UTC "
                                "time (2026-11-22T10:00:00Z)");
        goto out;
    }
    if (limit && args_int(limit, 1, ALERTS_LIMIT, &n, msg, sizeof(msg)) != 0) {
        status = cli_usage(cli, "--limit: %s", msg);
        goto out;
    }
    const char *pairs[] = {"model", model, "state", state, "since", since, "limit", limit};
    status = cli_get_query(cli, "/api/v1/alerts", pairs, 4, print_alerts);
out:
    args_opts_release(opts, A_N);
    return status;
}

static const struct cli_verb trigger_verbs[] = {
    {"create",
     "--model M --metric X (--above V | --below V) --action A [--window S] [--min-devices N] "
     "[--ring R] [--aggregation A] [--cooldown S]",
     "Create a trigger rule the monitor evaluates.",
     "  --model M          the model whose windows are watched\n"
     "  --metric X         drift, drift_output, accuracy, error_rate, latency_p99,\n"
     "                     confidence, shadow_agreement or shadow_accuracy\n"
     "  --above V          fire when the aggregate is above V (or --below V: below V)\n"
     "  --action A         retrain, pause_rollout, rollback or none\n"
     "  --window S         seconds of windows evaluated (server default 300)\n"
     "  --min-devices N    devices with a value needed (server default 1)\n"
     "  --ring R           only devices in ring R when their windows were received\n"
     "  --aggregation A    across devices: mean, max, min or median (server default mean)\n"
     "  --cooldown S       seconds after an alert before the rule fires again for the\n"
     "                     same version (server default 3600)\n",
     trigger_create},
    {"list", "[--model M]", "List the trigger rules.", "  --model M   only the rules of model M\n",
     trigger_list},
    {"delete", "ID", "Delete a trigger rule; its firing alerts are resolved.", NULL,
     trigger_delete},
};

static const struct cli_verb alert_verbs[] = {
    {"list", "[--model M] [--state firing|resolved] [--since T] [--limit N]",
     "Show the alerts trigger rules raised, newest first.",
     "  --model M    only alerts about model M\n"
     "  --state S    firing or resolved\n"
     "  --since T    only alerts fired in the last T seconds, or since Unix ms or an\n"
     "               RFC 3339 UTC time\n"
     "  --limit N    at most N alerts, 1 to 1000 (server default 100)\n",
     alert_list},
};

const struct cli_noun cmd_trigger_noun = {"trigger", "rules the monitor turns into alerts",
                                          trigger_verbs,
                                          sizeof(trigger_verbs) / sizeof(trigger_verbs[0])};

const struct cli_noun cmd_alert_noun = {"alert", "alerts raised by trigger rules", alert_verbs,
                                        sizeof(alert_verbs) / sizeof(alert_verbs[0])};
