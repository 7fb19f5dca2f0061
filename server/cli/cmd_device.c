/* cmd_device.c - `edgefleet device list|show|set|remove`: the enrolled fleet. */
#include "common/ef_error.h"
#include "common/json_util.h"
#include "common/topic.h"
#include "server/cli/commands.h"
#include "server/cli/output.h"

#include <stdio.h>
#include <stdlib.h>

#define PATH_SIZE 128 /* "/api/v1/devices/" and a device id */

/* "name@version" of the production slot, or NULL for "-". */
static char *format_production(const json_t *row)
{
    const json_t *slot = output_lookup(row, "slots.production");
    return output_name_version(ef_json_str(slot, "name"), json_object_get(slot, "version"));
}

static const struct output_col device_cols[] = {
    {"ID", "id", NULL},
    {"CLASS", "class", NULL},
    {"RING", "ring", NULL},
    {"ONLINE", "online", NULL},
    {"LAST SEEN", "last_seen", NULL},
    {"PRODUCTION", NULL, format_production},
    {"STATE", "slots.production.state", NULL},
    {"TAGS", "tags", NULL},
};

static int print_devices(const json_t *doc)
{
    return output_table(stdout, json_object_get(doc, "devices"), device_cols,
                        sizeof(device_cols) / sizeof(device_cols[0]));
}

/* Checks a ring or class filter/value; prints the usage error. */
static bool name_ok(struct cli *cli, const char *flag, const char *value, int *status)
{
    if (value && !ef_name_valid(value)) {
        *status =
            cli_usage(cli, "%s '%s' is not a valid name (1-64 of a-z 0-9 . _ -)", flag, value);
        return false;
    }
    return true;
}

/* Parses the arguments of a verb whose one positional is a device id: *id
 * (borrowed from argv) and path, its resource. False with *status to return
 * after a usage error or --help. */
static bool device_args(struct cli *cli, int argc, char **argv, struct args_opt *opts, size_t nopts,
                        const char **id, char path[PATH_SIZE], int *status)
{
    size_t npos = 0;
    if (!cli_parse(cli, argc, argv, opts, nopts, id, 1, 1, &npos, status))
        return false;
    if (!ef_device_id_valid(*id)) {
        *status = cli_usage(cli, "'%s' is not a valid device id (1-64 of A-Z a-z 0-9 . _ -)", *id);
        return false;
    }
    snprintf(path, PATH_SIZE, "/api/v1/devices/%s", *id);
    return true;
}

enum { LIST_RING, LIST_CLASS, LIST_TAG, LIST_ONLINE, LIST_N };

static int device_list(struct cli *cli, int argc, char **argv)
{
    struct args_opt opts[LIST_N] = {
        [LIST_RING] = {.name = "ring", .metavar = "R"},
        [LIST_CLASS] = {.name = "class", .metavar = "C"},
        [LIST_TAG] = {.name = "tag", .metavar = "k=v", .repeat = true},
        [LIST_ONLINE] = {.name = "online", .metavar = "true|false"},
    };
    const char **pairs = NULL;
    char key[ARGS_KEY_MAX + 1], msg[200];
    size_t npos = 0, n = 0;
    int status = CLI_EXIT_OK;
    bool online = false;
    if (!cli_parse(cli, argc, argv, opts, LIST_N, NULL, 0, 0, &npos, &status))
        goto out;
    const char *ring = args_value(&opts[LIST_RING]), *cls = args_value(&opts[LIST_CLASS]);
    const char *on = args_value(&opts[LIST_ONLINE]);
    if (!name_ok(cli, "--ring", ring, &status) || !name_ok(cli, "--class", cls, &status))
        goto out;
    if (on && args_bool(on, &online, msg, sizeof(msg)) != 0) {
        status = cli_usage(cli, "--online: %s", msg);
        goto out;
    }
    pairs = calloc(2 * (3 + opts[LIST_TAG].count), sizeof(*pairs));
    if (!pairs) {
        status = cli_fail("out_of_memory", "cannot build the query");
        goto out;
    }
    const char *fixed[] = {"ring", ring, "class", cls, "online", on};
    for (size_t i = 0; i < 6; i += 2, n++) {
        pairs[2 * n] = fixed[i];
        pairs[2 * n + 1] = fixed[i + 1];
    }
    for (size_t i = 0; i < opts[LIST_TAG].count; i++, n++) {
        const char *value = NULL;
        if (args_kv_split(opts[LIST_TAG].values[i], key, &value, msg, sizeof(msg)) != 0) {
            status = cli_usage(cli, "--tag: %s", msg);
            goto out;
        }
        /* The API takes the pair as one value: tag=k=v. */
        pairs[2 * n] = "tag";
        pairs[2 * n + 1] = opts[LIST_TAG].values[i];
    }
    status = cli_get_query(cli, "/api/v1/devices", pairs, n, print_devices);
out:
    free(pairs);
    args_opts_release(opts, LIST_N);
    return status;
}

static int device_show(struct cli *cli, int argc, char **argv)
{
    const char *id;
    char path[PATH_SIZE];
    int status = CLI_EXIT_OK;
    if (device_args(cli, argc, argv, NULL, 0, &id, path, &status))
        status = cli_request(cli, "GET", path, NULL, cli_text_fields);
    return status;
}

enum { SET_RING, SET_CLASS, SET_TAG, SET_N };

static int device_set(struct cli *cli, int argc, char **argv)
{
    struct args_opt opts[SET_N] = {
        [SET_RING] = {.name = "ring", .metavar = "R"},
        [SET_CLASS] = {.name = "class", .metavar = "C"},
        [SET_TAG] = {.name = "tag", .metavar = "k=v", .repeat = true},
    };
    const char *id;
    char path[PATH_SIZE], msg[200];
    json_t *body = NULL, *tags = NULL;
    int status = CLI_EXIT_OK;
    if (!device_args(cli, argc, argv, opts, SET_N, &id, path, &status))
        goto out;
    const char *ring = args_value(&opts[SET_RING]), *cls = args_value(&opts[SET_CLASS]);
    if (!name_ok(cli, "--ring", ring, &status) || !name_ok(cli, "--class", cls, &status))
        goto out;
    if (!ring && !cls && opts[SET_TAG].count == 0) {
        status = cli_usage(cli, "nothing to change: give --ring, --class or --tag");
        goto out;
    }
    body = json_pack("{s:s*, s:s*}", "ring", ring, "class", cls);
    tags = json_object();
    if (!body || !tags) {
        status = cli_fail("out_of_memory", "cannot build the request");
        goto out;
    }
    for (size_t i = 0; i < opts[SET_TAG].count; i++) {
        int rc = args_kv_add(tags, opts[SET_TAG].values[i], msg, sizeof(msg));
        if (rc != 0) {
            status = rc == EF_ENOMEM ? cli_fail("out_of_memory", "cannot build the request")
                                     : cli_usage(cli, "--tag: %s", msg);
            goto out;
        }
    }
    if (opts[SET_TAG].count > 0 && json_object_set(body, "tags", tags) != 0) {
        status = cli_fail("out_of_memory", "cannot build the request");
        goto out;
    }
    status = cli_request(cli, "PATCH", path, body, cli_text_fields);
out:
    json_decref(body);
    json_decref(tags);
    args_opts_release(opts, SET_N);
    return status;
}

static int device_remove(struct cli *cli, int argc, char **argv)
{
    const char *id;
    char path[PATH_SIZE];
    int status = CLI_EXIT_OK;
    if (device_args(cli, argc, argv, NULL, 0, &id, path, &status) &&
        (status = cli_request(cli, "DELETE", path, NULL, NULL)) == CLI_EXIT_OK && !cli->json)
        printf("device %s removed\n", id);
    return status;
}

static const struct cli_verb device_verbs[] = {
    {"list", "[--ring R] [--class C] [--tag k=v ...] [--online true|false]",
     "List devices, optionally filtered.",
     "  --ring R             only devices in ring R\n"
     "  --class C            only devices of class C\n"
     "  --tag k=v            only devices with this tag (repeatable: all must match)\n"
     "  --online true|false  only devices that are (not) connected\n",
     device_list},
    {"show", "ID", "Show a device: class, ring, tags, online state and model slots.", NULL,
     device_show},
    {"set", "ID [--ring R] [--class C] [--tag k=v ...]", "Change a device's ring, class or tags.",
     "  --ring R    move the device to ring R\n"
     "  --class C   set its device class\n"
     "  --tag k=v   the device's tags (repeatable); they replace its whole tag set,\n"
     "              so repeat every tag to keep\n",
     device_set},
    {"remove", "ID", "Decommission a device.", NULL, device_remove},
};

const struct cli_noun cmd_device_noun = {"device", "the enrolled fleet", device_verbs,
                                         sizeof(device_verbs) / sizeof(device_verbs[0])};
