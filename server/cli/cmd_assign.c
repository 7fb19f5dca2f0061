/*
 * cmd_assign.c - `edgefleet assign NAME@VERSION (--device ID | --ring RING)`:
 * set the desired model of one device or of every device in a ring, outside
 * any rollout.
 */
#include "common/ef_error.h"
#include "common/json_util.h"
#include "common/topic.h"
#include "server/cli/commands.h"
#include "server/cli/output.h"

#include <stdio.h>
#include <string.h>

static const struct output_col assigned_cols[] = {
    {"DEVICE", "device_id", NULL},
    {"SEQ", "seq", NULL},
};

static int print_assigned(const json_t *doc)
{
    return output_table(stdout, json_object_get(doc, "assigned"), assigned_cols,
                        sizeof(assigned_cols) / sizeof(assigned_cols[0]));
}

enum { ASSIGN_DEVICE, ASSIGN_RING, ASSIGN_SLOT, ASSIGN_N };

static int assign_run(struct cli *cli, int argc, char **argv)
{
    struct args_opt opts[ASSIGN_N] = {
        [ASSIGN_DEVICE] = {.name = "device", .metavar = "ID"},
        [ASSIGN_RING] = {.name = "ring", .metavar = "RING"},
        [ASSIGN_SLOT] = {.name = "slot", .metavar = "production|shadow"},
    };
    struct client_response resp = {0};
    const char *pos[1];
    char name[ARGS_NAME_SIZE], msg[200];
    int64_t version = 0;
    json_t *body = NULL;
    size_t npos = 0;
    int status = CLI_EXIT_OK;
    if (!cli_parse(cli, argc, argv, opts, ASSIGN_N, pos, 1, 1, &npos, &status))
        goto out;
    const char *device = args_value(&opts[ASSIGN_DEVICE]), *ring = args_value(&opts[ASSIGN_RING]);
    const char *slot = args_value(&opts[ASSIGN_SLOT]);
    if (args_name_version(pos[0], true, name, &version, msg, sizeof(msg)) != 0) {
        status = cli_usage(cli, "%s", msg);
        goto out;
    }
    if (!device == !ring) {
        status = cli_usage(cli, "give exactly one of --device ID and --ring RING");
        goto out;
    }
    if (device && !ef_device_id_valid(device)) {
        status = cli_usage(cli, "'%s' is not a valid device id", device);
        goto out;
    }
    if (ring && !ef_name_valid(ring)) {
        status = cli_usage(cli, "'%s' is not a valid ring name", ring);
        goto out;
    }
    if (slot && strcmp(slot, "production") != 0 && strcmp(slot, "shadow") != 0) {
        status = cli_usage(cli, "--slot must be production or shadow");
        goto out;
    }
    body = json_pack("{s:s, s:I, s:s*, s:s*, s:s*}", "model", name, "version", (json_int_t)version,
                     "device", device, "ring", ring, "slot", slot);
    if (!body) {
        status = cli_fail("out_of_memory", "cannot build the request");
        goto out;
    }
    if (client_call(&cli->client, "POST", "/api/v1/assignments", body, &resp) != 0) {
        status = CLI_EXIT_FAIL;
        goto out;
    }
    if (!cli->json && resp.doc)
        printf("assigned %s@%lld to %zu device(s)\n", name, (long long)version,
               json_array_size(json_object_get(resp.doc, "assigned")));
    status = cli_print(cli, &resp, print_assigned);
out:
    client_response_release(&resp);
    json_decref(body);
    args_opts_release(opts, ASSIGN_N);
    return status;
}

static const struct cli_verb assign_verbs[] = {
    {NULL, "NAME@VERSION (--device ID | --ring RING) [--slot production|shadow]",
     "Assign a model version to one device or to every device of a ring.",
     "  --device ID   the device to assign\n"
     "  --ring RING   every device in this ring\n"
     "  --slot S      production (default) or shadow (runs beside production, not serving)\n",
     assign_run},
};

const struct cli_noun cmd_assign_noun = {"assign", "direct assignments of a model version",
                                         assign_verbs,
                                         sizeof(assign_verbs) / sizeof(assign_verbs[0])};
