/* cmd_collection.c - `edgefleet collection set|list` and `edgefleet dataset
 * list|export`: the policies that let devices collect samples, and the
 * datasets those samples fill (docs/monitoring.md, "Data collection and
 * datasets"). */
#include "common/ef_error.h"
#include "common/fsutil.h"
#include "common/topic.h"
#include "server/cli/commands.h"
#include "server/cli/output.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATH_SIZE    160     /* an API path with a model name or a dataset id */
#define MAX_SAMPLES  1000000 /* the server's largest max_samples */
#define EXPORT_MODE  0644    /* mode of a file written by dataset export --out */
#define ID_MAX_CHARS 18      /* digits of a dataset id */

static const struct output_col policy_cols[] = {
    {"RING", "ring", NULL},
    {"ENABLED", "enabled", NULL},
    {"SAMPLE_RATE", "sample_rate", NULL},
    {"MAX_SAMPLES", "max_samples", NULL},
    {"DATASET", "dataset_id", NULL},
    {"UPDATED", "updated_at", NULL},
};

static int print_policies(const json_t *doc)
{
    return output_table(stdout, doc, policy_cols, sizeof(policy_cols) / sizeof(policy_cols[0]));
}

static const struct output_col dataset_cols[] = {
    {"ID", "id", NULL},           {"MODEL", "model", NULL},       {"RING", "ring", NULL},
    {"SAMPLES", "samples", NULL}, {"LABELLED", "labelled", NULL}, {"CREATED", "created_at", NULL},
};

static int print_datasets(const json_t *doc)
{
    return output_table(stdout, doc, dataset_cols, sizeof(dataset_cols) / sizeof(dataset_cols[0]));
}

/* Parses a sample rate: a plain decimal number in (0, 1]. */
static bool rate_value(const char *s, double *out)
{
    char *end = NULL;
    double v;
    if (!s || !*s || strlen(s) > 32)
        return false;
    errno = 0;
    v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || !(v > 0 && v <= 1))
        return false;
    *out = v;
    return true;
}

enum { SET_ENABLE, SET_DISABLE, SET_RING, SET_RATE, SET_MAX, SET_N };

static int collection_set(struct cli *cli, int argc, char **argv)
{
    struct args_opt opts[SET_N] = {
        [SET_ENABLE] = {.name = "enable"},
        [SET_DISABLE] = {.name = "disable"},
        [SET_RING] = {.name = "ring", .metavar = "R"},
        [SET_RATE] = {.name = "sample-rate", .metavar = "X"},
        [SET_MAX] = {.name = "max-samples", .metavar = "N"},
    };
    const char *pos[1], *ring, *rate_text, *max_text;
    char path[PATH_SIZE], msg[200];
    json_t *body = NULL;
    double rate = 0;
    int64_t max = 0;
    size_t npos = 0;
    int status = CLI_EXIT_OK;
    if (!cli_parse(cli, argc, argv, opts, SET_N, pos, 1, 1, &npos, &status))
        goto out;
    ring = args_value(&opts[SET_RING]);
    rate_text = args_value(&opts[SET_RATE]);
    max_text = args_value(&opts[SET_MAX]);
    if (!ef_name_valid(pos[0])) {
        status = cli_usage(cli, "'%s' is not a valid model name", pos[0]);
        goto out;
    }
    if ((opts[SET_ENABLE].count > 0) == (opts[SET_DISABLE].count > 0)) {
        status = cli_usage(cli, "give exactly one of --enable and --disable");
        goto out;
    }
    if (ring && !ef_name_valid(ring)) {
        status = cli_usage(cli, "--ring: '%s' is not a valid ring name", ring);
        goto out;
    }
    if (rate_text && !rate_value(rate_text, &rate)) {
        status = cli_usage(cli, "--sample-rate: must be a number above 0 and at most 1");
        goto out;
    }
    if (max_text && args_int(max_text, 1, MAX_SAMPLES, &max, msg, sizeof(msg)) != 0) {
        status = cli_usage(cli, "--max-samples: %s", msg);
        goto out;
    }
    body = json_pack("{s:b}", "enabled", opts[SET_ENABLE].count > 0);
    if (!body || (ring && json_object_set_new(body, "ring", json_string(ring)) != 0) ||
        (rate_text && json_object_set_new(body, "sample_rate", json_real(rate)) != 0) ||
        (max_text && json_object_set_new(body, "max_samples", json_integer(max)) != 0)) {
        status = cli_fail("out_of_memory", "cannot build the request");
        goto out;
    }
    snprintf(path, sizeof(path), "/api/v1/models/%s/collection", pos[0]);
    status = cli_request(cli, "PUT", path, body, cli_text_fields);
out:
    json_decref(body);
    args_opts_release(opts, SET_N);
    return status;
}

static int collection_list(struct cli *cli, int argc, char **argv)
{
    const char *pos[1];
    char path[PATH_SIZE];
    size_t npos = 0;
    int status = CLI_EXIT_OK;
    if (!cli_parse(cli, argc, argv, NULL, 0, pos, 1, 1, &npos, &status))
        return status;
    if (!ef_name_valid(pos[0]))
        return cli_usage(cli, "'%s' is not a valid model name", pos[0]);
    snprintf(path, sizeof(path), "/api/v1/models/%s/collection", pos[0]);
    return cli_request(cli, "GET", path, NULL, print_policies);
}

enum { LIST_MODEL, LIST_N };

static int dataset_list(struct cli *cli, int argc, char **argv)
{
    struct args_opt opts[LIST_N] = {[LIST_MODEL] = {.name = "model", .metavar = "M"}};
    const char *model, *pairs[2];
    size_t npos = 0;
    int status = CLI_EXIT_OK;
    if (!cli_parse(cli, argc, argv, opts, LIST_N, NULL, 0, 0, &npos, &status))
        goto out;
    model = args_value(&opts[LIST_MODEL]);
    if (model && !ef_name_valid(model)) {
        status = cli_usage(cli, "--model: '%s' is not a valid model name", model);
        goto out;
    }
    pairs[0] = "model";
    pairs[1] = model;
    status = cli_get_query(cli, "/api/v1/datasets", pairs, 1, print_datasets);
out:
    args_opts_release(opts, LIST_N);
    return status;
}

enum { EXPORT_OUT, EXPORT_N };

static int dataset_export(struct cli *cli, int argc, char **argv)
{
    struct args_opt opts[EXPORT_N] = {[EXPORT_OUT] = {.name = "out", .metavar = "FILE"}};
    struct client_response resp = {0};
    struct client raw;
    const char *pos[1], *out_file;
    char path[PATH_SIZE], msg[200];
    int64_t id = 0;
    size_t npos = 0;
    int status = CLI_EXIT_OK, rc;
    if (!cli_parse(cli, argc, argv, opts, EXPORT_N, pos, 1, 1, &npos, &status))
        goto out;
    if (strlen(pos[0]) > ID_MAX_CHARS ||
        args_int(pos[0], 1, INT64_MAX, &id, msg, sizeof(msg)) != 0) {
        status = cli_usage(cli, "'%s' is not a dataset id (a positive integer)", pos[0]);
        goto out;
    }
    out_file = args_value(&opts[EXPORT_OUT]);
    snprintf(path, sizeof(path), "/api/v1/datasets/%lld/export", (long long)id);
    /* The export is FANN's text format, not JSON. */
    raw = cli->client;
    raw.raw = true;
    if (client_call(&raw, "GET", path, NULL, &resp) != 0) {
        status = CLI_EXIT_FAIL;
        goto out;
    }
    if (out_file) {
        if ((rc = ef_atomic_write(out_file, resp.body ? resp.body : "", resp.len, EXPORT_MODE)) !=
            0)
            status = cli_fail(ef_errname(rc), "cannot write %s: %s", out_file, ef_strerror(rc));
    } else if ((resp.len && fwrite(resp.body, 1, resp.len, stdout) != resp.len) ||
               fflush(stdout) != 0) {
        status = cli_fail("io_error", "cannot write the export to standard output");
    }
out:
    client_response_release(&resp);
    args_opts_release(opts, EXPORT_N);
    return status;
}

#define SET_HELP                                                                                   \
    "  --enable          collect samples (the first time opens a dataset)\n"                       \
    "  --disable         stop collecting (the policy keeps its dataset)\n"                         \
    "  --ring R          the policy of ring R, which overrides the model-wide one there\n"         \
    "  --sample-rate X   share of inferences devices sample, 0 < X <= 1 (default 0.1)\n"           \
    "  --max-samples N   stop storing at N samples, 1..1000000 (default 10000)\n"

static const struct cli_verb collection_verbs[] = {
    {"set", "MODEL (--enable | --disable) [--ring R] [--sample-rate X] [--max-samples N]",
     "Switch sample collection for a model (or one ring of it) on or off.", SET_HELP,
     collection_set},
    {"list", "MODEL", "List a model's collection policies.", NULL, collection_list},
};

const struct cli_noun cmd_collection_noun = {
    "collection", "policies that let devices upload samples for retraining", collection_verbs,
    sizeof(collection_verbs) / sizeof(collection_verbs[0])};

static const struct cli_verb dataset_verbs[] = {
    {"list", "[--model M]", "List the datasets collection opened, newest first.",
     "  --model M   only model M's datasets\n", dataset_list},
    {"export", "ID [--out FILE]",
     "Write a dataset's labelled samples in FANN's training format (stdout by default).",
     "  --out FILE  write to FILE (atomically) instead of standard output\n", dataset_export},
};

const struct cli_noun cmd_dataset_noun = {"dataset", "samples collected from devices",
                                          dataset_verbs,
                                          sizeof(dataset_verbs) / sizeof(dataset_verbs[0])};
