/* cmd_ring.c - `edgefleet ring create|list|set`: ordered rings of devices. */
#include "common/ef_error.h"
#include "common/json_util.h"
#include "common/topic.h"
#include "server/cli/commands.h"
#include "server/cli/output.h"

#include <stdio.h>
#include <stdlib.h>

#define PATH_SIZE 128 /* "/api/v1/rings/" and a ring name */

/* The devices column: the API may give a count or the list of ids. */
static char *format_devices(const json_t *row)
{
    const json_t *devices = json_object_get(row, "devices");
    if (json_is_array(devices)) {
        char *cell = malloc(24);
        if (cell)
            snprintf(cell, 24, "%zu", json_array_size(devices));
        return cell;
    }
    return output_scalar(devices);
}

static const struct output_col ring_cols[] = {
    {"NAME", "name", NULL},
    {"POSITION", "position", NULL},
    {"DEVICES", NULL, format_devices},
    {"SELECTOR", "selector", NULL},
};

static int print_rings(const json_t *doc)
{
    return output_table(stdout, json_object_get(doc, "rings"), ring_cols,
                        sizeof(ring_cols) / sizeof(ring_cols[0]));
}

enum { RING_POSITION, RING_SELECTOR, RING_N };

/*
 * Builds the body shared by create and set from --position and --selector;
 * name is added for create. Returns a CLI exit status; *out is new.
 */
static int ring_body(struct cli *cli, struct args_opt *opts, const char *name, json_t **out)
{
    json_t *body = json_object(), *selector = NULL;
    char msg[200];
    int64_t position = 0;
    int status = CLI_EXIT_OK;
    const char *pos_text = args_value(&opts[RING_POSITION]);
    *out = NULL;
    if (!body) {
        status = cli_fail("out_of_memory", "cannot build the request");
        goto out;
    }
    if (name && json_object_set_new(body, "name", json_string(name)) != 0) {
        status = cli_fail("out_of_memory", "cannot build the request");
        goto out;
    }
    if (pos_text) {
        if (args_int(pos_text, 0, INT32_MAX, &position, msg, sizeof(msg)) != 0) {
            status = cli_usage(cli, "--position: %s", msg);
            goto out;
        }
        if (json_object_set_new(body, "position", json_integer(position)) != 0) {
            status = cli_fail("out_of_memory", "cannot build the request");
            goto out;
        }
    }
    if (opts[RING_SELECTOR].count > 0) {
        if (!(selector = json_object())) {
            status = cli_fail("out_of_memory", "cannot build the request");
            goto out;
        }
        for (size_t i = 0; i < opts[RING_SELECTOR].count; i++) {
            int rc = args_kv_add(selector, opts[RING_SELECTOR].values[i], msg, sizeof(msg));
            if (rc != 0) {
                status = rc == EF_ENOMEM ? cli_fail("out_of_memory", "cannot build the request")
                                         : cli_usage(cli, "--selector: %s", msg);
                goto out;
            }
        }
        if (json_object_set(body, "selector", selector) != 0) {
            status = cli_fail("out_of_memory", "cannot build the request");
            goto out;
        }
    }
    *out = body;
    body = NULL;
out:
    json_decref(body);
    json_decref(selector);
    return status;
}

/* create and set differ in method, path and whether the name is in the body. */
static int ring_write(struct cli *cli, int argc, char **argv, bool create)
{
    struct args_opt opts[RING_N] = {
        [RING_POSITION] = {.name = "position", .metavar = "N"},
        [RING_SELECTOR] = {.name = "selector", .metavar = "k=v", .repeat = true},
    };
    const char *pos[1];
    char path[PATH_SIZE];
    json_t *body = NULL;
    size_t npos = 0;
    int status = CLI_EXIT_OK;
    if (!cli_parse(cli, argc, argv, opts, RING_N, pos, 1, 1, &npos, &status))
        goto out;
    if (!ef_name_valid(pos[0])) {
        status = cli_usage(cli, "'%s' is not a valid ring name (1-64 of a-z 0-9 . _ -)", pos[0]);
        goto out;
    }
    if (!create && opts[RING_POSITION].count == 0 && opts[RING_SELECTOR].count == 0) {
        status = cli_usage(cli, "nothing to change: give --position or --selector");
        goto out;
    }
    if ((status = ring_body(cli, opts, create ? pos[0] : NULL, &body)) != CLI_EXIT_OK)
        goto out;
    if (create)
        snprintf(path, sizeof(path), "/api/v1/rings");
    else
        snprintf(path, sizeof(path), "/api/v1/rings/%s", pos[0]);
    status = cli_request(cli, create ? "POST" : "PATCH", path, body, cli_text_fields);
out:
    json_decref(body);
    args_opts_release(opts, RING_N);
    return status;
}

static int ring_create(struct cli *cli, int argc, char **argv)
{
    return ring_write(cli, argc, argv, true);
}

static int ring_set(struct cli *cli, int argc, char **argv)
{
    return ring_write(cli, argc, argv, false);
}

static int ring_list(struct cli *cli, int argc, char **argv)
{
    return cli_run_request(cli, argc, argv, "GET", "/api/v1/rings", print_rings);
}

#define RING_HELP                                                                                  \
    "  --position N     order of the ring (lower positions come first)\n"                          \
    "  --selector k=v   devices with this tag join the ring (repeatable: all must match)\n"

static const struct cli_verb ring_verbs[] = {
    {"create", "NAME [--position N] [--selector k=v ...]", "Create a ring.", RING_HELP,
     ring_create},
    {"list", "", "List the rings in order, with their device counts.", NULL, ring_list},
    {"set", "NAME [--position N] [--selector k=v ...]", "Change a ring's position or tag selector.",
     RING_HELP, ring_set},
};

const struct cli_noun cmd_ring_noun = {"ring", "ordered groups of devices for rollouts", ring_verbs,
                                       sizeof(ring_verbs) / sizeof(ring_verbs[0])};
