/* cmd_telemetry.c - `edgefleet telemetry query`: the raw telemetry windows
 * devices published, newest first (GET /api/v1/telemetry). */
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

/* True when since is a whole number of seconds or an RFC 3339 UTC time, the
 * two forms the API takes. */
static bool since_ok(const char *since)
{
    int64_t v = 0;
    char msg[8];
    return args_int(since, 0, TELEMETRY_SINCE_MAX_S, &v, msg, sizeof(msg)) == 0 ||
           ef_time_parse(since, &v) == 0;
}

enum { Q_MODEL, Q_RING, Q_DEVICE, Q_SINCE, Q_LIMIT, Q_N };

static int telemetry_query(struct cli *cli, int argc, char **argv)
{
    struct args_opt opts[Q_N] = {
        [Q_MODEL] = {.name = "model", .metavar = "M[@V]"},
        [Q_RING] = {.name = "ring", .metavar = "R"},
        [Q_DEVICE] = {.name = "device", .metavar = "D"},
        [Q_SINCE] = {.name = "since", .metavar = "SECONDS_AGO|RFC3339"},
        [Q_LIMIT] = {.name = "limit", .metavar = "N"},
    };
    char *path = NULL, msg[200], name[ARGS_NAME_SIZE];
    int64_t n = 0;
    size_t npos = 0;
    int status = CLI_EXIT_OK;
    if (!cli_parse(cli, argc, argv, opts, Q_N, NULL, 0, 0, &npos, &status))
        goto out;
    const char *model = args_value(&opts[Q_MODEL]), *ring = args_value(&opts[Q_RING]);
    const char *device = args_value(&opts[Q_DEVICE]), *since = args_value(&opts[Q_SINCE]);
    const char *limit = args_value(&opts[Q_LIMIT]);
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
    if (since && !since_ok(since)) {
        status = cli_usage(cli, "--since: give seconds ago (3600) or an RFC 3339 UTC time "
                                "(2026-11-22T10:00:00Z)");
        goto out;
    }
    if (limit && args_int(limit, 1, TELEMETRY_LIMIT_MAX, &n, msg, sizeof(msg)) != 0) {
        status = cli_usage(cli, "--limit: %s", msg);
        goto out;
    }
    const char *pairs[] = {"model", model,   "ring", ring,    "device",
                           device,  "since", since,  "limit", limit};
    if (!(path = client_query_path("/api/v1/telemetry", pairs, 5))) {
        status = cli_fail("out_of_memory", "cannot build the query");
        goto out;
    }
    status = cli_request(cli, "GET", path, NULL, print_windows);
out:
    free(path);
    args_opts_release(opts, Q_N);
    return status;
}

static const struct cli_verb telemetry_verbs[] = {
    {"query", "[--model M[@V]] [--ring R] [--device D] [--since SECONDS_AGO|RFC3339] [--limit N]",
     "Show the newest telemetry windows devices published.",
     "  --model M[@V]   only windows of model M (any version, or version V)\n"
     "  --ring R        only devices that are in ring R now\n"
     "  --device D      only device D\n"
     "  --since S       only windows received in the last S seconds, or since an RFC 3339\n"
     "                  UTC time (2026-11-22T10:00:00Z)\n"
     "  --limit N       at most N windows, 1 to 5000 (server default 500)\n",
     telemetry_query},
};

const struct cli_noun cmd_telemetry_noun = {"telemetry", "device telemetry windows",
                                            telemetry_verbs,
                                            sizeof(telemetry_verbs) / sizeof(telemetry_verbs[0])};
