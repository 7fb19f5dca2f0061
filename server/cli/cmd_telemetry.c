/* cmd_telemetry.c - `edgefleet telemetry query`: the raw telemetry windows
 * devices published, newest first (GET /api/v1/telemetry), and `telemetry
 * rollups`: a metric per minute per model version x ring
 * (GET /api/v1/telemetry/rollups). */
#include "common/clock.h"
#include "common/ef_error.h"
#include "common/json_util.h"
#include "common/topic.h"
#include "server/cli/commands.h"
#include "server/cli/output.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TELEMETRY_LIMIT_MAX   5000 /* windows per request, the API's own bound */
#define TELEMETRY_SINCE_MAX_S (100LL * 366 * 24 * 3600) /* the API's bound on "seconds ago" */

/* "name@version" of the window's model, or NULL for "-" (none served). */
static char *format_model(const json_t *row)
{
    const char *name = ef_json_str(row, "model");
    char *version = output_scalar(json_object_get(row, "version"));
    char *cell = NULL;
    if (name && version) {
        size_t n = strlen(name) + strlen(version) + 2;
        if ((cell = malloc(n)))
            snprintf(cell, n, "%s@%s", name, version);
    }
    free(version);
    return cell;
}

static const struct output_col window_cols[] = {
    {"RECEIVED", "received_at", NULL},  {"DEVICE", "device", NULL},
    {"MODEL", NULL, format_model},      {"INFERENCES", "inferences", NULL},
    {"ERRORS", "errors", NULL},         {"P50 MS", "latency_ms.p50", NULL},
    {"P99 MS", "latency_ms.p99", NULL}, {"ACCURACY", "accuracy", NULL},
    {"WINDOW S", "window_s", NULL},
};

static int print_windows(const json_t *doc)
{
    return output_table(stdout, json_object_get(doc, "windows"), window_cols,
                        sizeof(window_cols) / sizeof(window_cols[0]));
}

/* With --metric: one line per window with the metric's value. */
static const struct output_col value_cols[] = {
    {"RECEIVED", "received_at", NULL}, {"DEVICE", "device", NULL},
    {"MODEL", NULL, format_model},     {"RING", "ring", NULL},
    {"VALUE", "value", NULL},
};

static int print_values(const json_t *doc)
{
    return output_table(stdout, json_object_get(doc, "windows"), value_cols,
                        sizeof(value_cols) / sizeof(value_cols[0]));
}

/* A rollup point's minute as RFC 3339. */
static char *format_minute(const json_t *row)
{
    char *cell = malloc(EF_TIME_STR_SIZE);
    const json_t *minute = json_object_get(row, "minute");
    if (cell && json_is_integer(minute))
        ef_time_format(json_integer_value(minute), cell, EF_TIME_STR_SIZE);
    else if (cell)
        snprintf(cell, EF_TIME_STR_SIZE, "-");
    return cell;
}

static const struct output_col point_cols[] = {
    {"VERSION", "version", NULL}, {"RING", "ring", NULL},       {"MINUTE", NULL, format_minute},
    {"VALUE", "value", NULL},     {"WINDOWS", "windows", NULL},
};

/* The rollup series flattened into one row per point, oldest first within
 * each version x ring. */
static int print_rollups(const json_t *doc)
{
    json_t *rows = json_array(), *series, *point;
    size_t i, j;
    int rc = rows ? 0 : EF_ENOMEM;
    json_array_foreach(json_object_get(doc, "series"), i, series)
    {
        json_array_foreach(json_object_get(series, "points"), j, point)
        {
            json_t *row = json_pack(
                "{s:O, s:O, s:O, s:O, s:O}", "version", json_object_get(series, "version"), "ring",
                json_object_get(series, "ring"), "minute", json_array_get(point, 0), "value",
                json_array_get(point, 1), "windows", json_array_get(point, 2));
            if (rc == 0 && (!row || json_array_append_new(rows, row) != 0))
                rc = EF_ENOMEM;
        }
    }
    if (rc == 0)
        rc = output_table(stdout, rows, point_cols, sizeof(point_cols) / sizeof(point_cols[0]));
    json_decref(rows);
    return rc;
}

/* True when since is a whole number of seconds, Unix ms (13 digits or more)
 * or an RFC 3339 UTC time, the forms the API takes. */
static bool since_ok(const char *since)
{
    int64_t v = 0;
    char msg[8];
    return args_int(since, 0, TELEMETRY_SINCE_MAX_S, &v, msg, sizeof(msg)) == 0 ||
           (strlen(since) >= 13 && args_int(since, 1, INT64_MAX / 2, &v, msg, sizeof(msg)) == 0) ||
           ef_time_parse(since, &v) == 0;
}

/* True when metric has the shape of a metric name; the server says which
 * names it knows. */
static bool metric_ok(const char *metric)
{
    size_t n = strspn(metric, "abcdefghijklmnopqrstuvwxyz_0123456789");
    return n > 0 && n <= 32 && metric[n] == '\0';
}

#define METRIC_NAMES                                                                               \
    "drift, drift_output, accuracy, error_rate, latency_p99, confidence, shadow_agreement,\n"      \
    "                  shadow_accuracy (docs/monitoring.md)"

enum { Q_MODEL, Q_RING, Q_DEVICE, Q_METRIC, Q_SINCE, Q_LIMIT, Q_N };

static int telemetry_query(struct cli *cli, int argc, char **argv)
{
    struct args_opt opts[Q_N] = {
        [Q_MODEL] = {.name = "model", .metavar = "M[@V]"},
        [Q_RING] = {.name = "ring", .metavar = "R"},
        [Q_DEVICE] = {.name = "device", .metavar = "D"},
        [Q_METRIC] = {.name = "metric", .metavar = "X"},
        [Q_SINCE] = {.name = "since", .metavar = "SECONDS_AGO|RFC3339"},
        [Q_LIMIT] = {.name = "limit", .metavar = "N"},
    };
    char msg[200], name[ARGS_NAME_SIZE];
    int64_t n = 0;
    size_t npos = 0;
    int status = CLI_EXIT_OK;
    if (!cli_parse(cli, argc, argv, opts, Q_N, NULL, 0, 0, &npos, &status))
        goto out;
    const char *model = args_value(&opts[Q_MODEL]), *ring = args_value(&opts[Q_RING]);
    const char *device = args_value(&opts[Q_DEVICE]), *since = args_value(&opts[Q_SINCE]);
    const char *limit = args_value(&opts[Q_LIMIT]), *metric = args_value(&opts[Q_METRIC]);
    if (model && args_name_version(model, false, name, &n, msg, sizeof(msg)) != 0) {
        status = cli_usage(cli, "--model: %s", msg);
        goto out;
    }
    if (ring && !ef_name_valid(ring)) {
        status = cli_usage(cli, "--ring '%s' is not a valid name (1-64 of a-z 0-9 . _ -)", ring);
        goto out;
    }
    if (device && !ef_device_id_valid(device)) {
        status = cli_usage(cli, "--device '%s' is not a valid device id", device);
        goto out;
    }
    if (metric && !metric_ok(metric)) {
        status = cli_usage(cli, "--metric '%s' is not a metric name", metric);
        goto out;
    }
    if (since && !since_ok(since)) {
        status = cli_usage(cli, "--since: give seconds ago (3600), Unix ms or an RFC 3339 UTC "
                                "time (2026-11-22T10:00:00Z)");
        goto out;
    }
    if (limit && args_int(limit, 1, TELEMETRY_LIMIT_MAX, &n, msg, sizeof(msg)) != 0) {
        status = cli_usage(cli, "--limit: %s", msg);
        goto out;
    }
    const char *pairs[] = {"model", model, "ring",  ring,  "device", device,
                           "since", since, "limit", limit, "metric", metric};
    status =
        cli_get_query(cli, "/api/v1/telemetry", pairs, 6, metric ? print_values : print_windows);
out:
    args_opts_release(opts, Q_N);
    return status;
}

enum { R_MODEL, R_METRIC, R_RING, R_SINCE, R_UNTIL, R_N };

static int telemetry_rollups(struct cli *cli, int argc, char **argv)
{
    struct args_opt opts[R_N] = {
        [R_MODEL] = {.name = "model", .metavar = "M[@V]"},
        [R_METRIC] = {.name = "metric", .metavar = "X"},
        [R_RING] = {.name = "ring", .metavar = "R"},
        [R_SINCE] = {.name = "since", .metavar = "SECONDS_AGO|RFC3339"},
        [R_UNTIL] = {.name = "until", .metavar = "SECONDS_AGO|RFC3339"},
    };
    char msg[200], name[ARGS_NAME_SIZE];
    int64_t n = 0;
    size_t npos = 0;
    int status = CLI_EXIT_OK;
    if (!cli_parse(cli, argc, argv, opts, R_N, NULL, 0, 0, &npos, &status))
        goto out;
    const char *model = args_value(&opts[R_MODEL]), *metric = args_value(&opts[R_METRIC]);
    const char *ring = args_value(&opts[R_RING]), *since = args_value(&opts[R_SINCE]);
    const char *until = args_value(&opts[R_UNTIL]);
    if (!model || args_name_version(model, false, name, &n, msg, sizeof(msg)) != 0) {
        status = cli_usage(cli, "--model: %s", model ? msg : "required");
        goto out;
    }
    if (!metric || !metric_ok(metric)) {
        status = cli_usage(cli, "--metric: %s", metric ? "not a metric name" : "required");
        goto out;
    }
    if (ring && !ef_name_valid(ring)) {
        status = cli_usage(cli, "--ring '%s' is not a valid name (1-64 of a-z 0-9 . _ -)", ring);
        goto out;
    }
    if ((since && !since_ok(since)) || (until && !since_ok(until))) {
        status = cli_usage(cli, "--since/--until: give seconds ago (3600), Unix ms or an RFC 3339 "
                                "UTC time (2026-11-22T10:00:00Z)");
        goto out;
    }
    const char *pairs[] = {"model", model,   "metric", metric,  "ring",
                           ring,    "since", since,    "until", until};
    status = cli_get_query(cli, "/api/v1/telemetry/rollups", pairs, 5, print_rollups);
out:
    args_opts_release(opts, R_N);
    return status;
}

static const struct cli_verb telemetry_verbs[] = {
    {"query",
     "[--model M[@V]] [--ring R] [--device D] [--metric X] [--since SECONDS_AGO|RFC3339] "
     "[--limit N]",
     "Show the newest telemetry windows devices published.",
     "  --model M[@V]   only windows of model M (any version, or version V)\n"
     "  --ring R        only windows received while their device was in ring R\n"
     "  --device D      only device D\n"
     "  --metric X      one line per window with the value of metric X: " METRIC_NAMES "\n"
     "  --since S       only windows received in the last S seconds, or since Unix ms or\n"
     "                  an RFC 3339 UTC time (2026-11-22T10:00:00Z)\n"
     "  --limit N       at most N windows, 1 to 5000 (server default 500)\n",
     telemetry_query},
    {"rollups",
     "--model M[@V] --metric X [--ring R] [--since SECONDS_AGO|RFC3339] "
     "[--until SECONDS_AGO|RFC3339]",
     "Show a metric per minute per model version and ring.",
     "  --model M[@V]   model M (every version, or version V); required\n"
     "  --metric X      required, one of " METRIC_NAMES ";\n"
     "                  drift_output has no rollup\n"
     "  --ring R        only windows received while their device was in ring R\n"
     "  --since S       minutes from S on: seconds ago, Unix ms or RFC 3339 UTC\n"
     "  --until S       minutes up to S, in the same forms\n",
     telemetry_rollups},
};

const struct cli_noun cmd_telemetry_noun = {"telemetry", "device telemetry windows",
                                            telemetry_verbs,
                                            sizeof(telemetry_verbs) / sizeof(telemetry_verbs[0])};
