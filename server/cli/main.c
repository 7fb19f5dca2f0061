/*
 * main.c - `edgefleet`, the operator CLI: global flags, then dispatch of
 * NOUN VERB to the cmd_<noun>.c tables.
 *
 * edgefleet [--server URL] [--token T] [--json] NOUN VERB [args]
 * The server defaults to $EDGEFLEET_SERVER, else http://127.0.0.1:8080; the
 * token to $EDGEFLEET_TOKEN. Exit status: 0 ok, 1 the API, the network or a
 * local file failed, 2 the command line is wrong.
 */
#include "common/crypto.h"
#include "common/ef_error.h"
#include "server/cli/commands.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef EF_VERSION
#define EF_VERSION "dev"
#endif

static const struct cli_noun *const nouns[] = {
    &cmd_model_noun,   &cmd_device_noun,       &cmd_ring_noun,    &cmd_assign_noun,
    &cmd_token_noun,   &cmd_enroll_token_noun, &cmd_audit_noun,   &cmd_telemetry_noun,
    &cmd_rollout_noun, &cmd_collection_noun,   &cmd_dataset_noun, &cmd_trigger_noun,
    &cmd_alert_noun,
};
#define NOUN_COUNT (sizeof(nouns) / sizeof(nouns[0]))

static void help_all(FILE *f)
{
    fprintf(f,
            "usage: %s [--server URL] [--token T] [--json] NOUN VERB [args]\n\n"
            "The operator CLI of edgefleet, a client of the server's REST API.\n\n"
            "Global flags (also accepted after the verb):\n"
            "  --server URL   server base URL (env EDGEFLEET_SERVER, default %s)\n"
            "  --token T      API token (env EDGEFLEET_TOKEN; the variable keeps it out of\n"
            "                 the process list)\n"
            "  --json         print the server's JSON answer as sent instead of a table\n"
            "  --version      print the version\n\n"
            "Commands:\n",
            CLI_PROGRAM, CLI_DEFAULT_SERVER);
    for (size_t i = 0; i < NOUN_COUNT; i++) {
        const struct cli_noun *n = nouns[i];
        for (size_t j = 0; j < n->verb_count; j++) {
            const struct cli_verb *v = &n->verbs[j];
            fprintf(f, "  %s%s%s%s%s\n", n->name, v->name ? " " : "", v->name ? v->name : "",
                    v->synopsis[0] ? " " : "", v->synopsis);
        }
    }
    fprintf(f,
            "\nEvery noun and verb answers --help ('%s model --help', '%s model push "
            "--help').\nExit status: 0 ok, 1 API, network or file error, 2 usage error.\n",
            CLI_PROGRAM, CLI_PROGRAM);
}

static const struct cli_noun *find_noun(const char *name)
{
    for (size_t i = 0; i < NOUN_COUNT; i++)
        if (strcmp(nouns[i]->name, name) == 0)
            return nouns[i];
    return NULL;
}

static const struct cli_verb *find_verb(const struct cli_noun *noun, const char *name)
{
    for (size_t i = 0; i < noun->verb_count; i++)
        if (noun->verbs[i].name && strcmp(noun->verbs[i].name, name) == 0)
            return &noun->verbs[i];
    return NULL;
}

enum { G_SERVER, G_TOKEN, G_JSON, G_VERSION, G_N };

/* Picks the noun and verb after the global flags and runs it. */
static int dispatch(struct cli *cli, int argc, char **argv)
{
    const char *noun_name = argv[0];
    if (strcmp(noun_name, "help") == 0) {
        const struct cli_noun *n = argc > 1 ? find_noun(argv[1]) : NULL;
        if (n && n->verbs[0].name)
            cli_help_noun(n);
        else if (n)
            cli_help_verb(n, &n->verbs[0]);
        else
            help_all(stdout);
        return CLI_EXIT_OK;
    }
    cli->noun = find_noun(noun_name);
    if (!cli->noun)
        return cli_usage(cli, "unknown command '%s'", noun_name);
    if (!cli->noun->verbs[0].name) {
        /* A noun without verbs ("assign") takes its arguments directly. */
        cli->verb = &cli->noun->verbs[0];
        return cli->verb->run(cli, argc - 1, argv + 1);
    }
    if (argc < 2) {
        cli_usage(cli, "which verb?");
        return CLI_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        cli_help_noun(cli->noun);
        return CLI_EXIT_OK;
    }
    cli->verb = find_verb(cli->noun, argv[1]);
    if (!cli->verb)
        return cli_usage(cli, "unknown verb '%s'", argv[1]);
    return cli->verb->run(cli, argc - 2, argv + 2);
}

int main(int argc, char **argv)
{
    struct cli cli = {.client = {.base_url = CLI_DEFAULT_SERVER}};
    struct args_opt opts[G_N] = {
        [G_SERVER] = {.name = "server", .metavar = "URL"},
        [G_TOKEN] = {.name = "token", .metavar = "T"},
        [G_JSON] = {.name = "json"},
        [G_VERSION] = {.name = "version"},
    };
    char msg[200] = "";
    size_t first = 0;
    bool help = false, curl_ready = false;
    int status = CLI_EXIT_OK;

    const char *env_server = getenv("EDGEFLEET_SERVER");
    const char *env_token = getenv("EDGEFLEET_TOKEN");
    if (env_server && env_server[0] && !cli_set_server(&cli, env_server)) {
        status = cli_usage(&cli, "EDGEFLEET_SERVER must be an http:// or https:// URL");
        goto out;
    }
    if (env_token && env_token[0])
        cli.client.token = env_token;

    int rc = args_parse(argc - 1, argv + 1, opts, G_N, NULL, 0, &first, &help,
                        ARGS_STOP_AT_POSITIONAL, msg, sizeof(msg));
    if (rc != 0) {
        status = rc == EF_ENOMEM ? cli_fail("out_of_memory", "cannot parse the arguments")
                                 : cli_usage(&cli, "%s", msg);
        goto out;
    }
    if (help) {
        help_all(stdout);
        goto out;
    }
    if (opts[G_VERSION].count > 0) {
        printf("%s %s\n", CLI_PROGRAM, EF_VERSION);
        goto out;
    }
    const char *server = args_value(&opts[G_SERVER]);
    if (server && !cli_set_server(&cli, server)) {
        status = cli_usage(&cli, "--server must be an http:// or https:// URL");
        goto out;
    }
    if (args_value(&opts[G_TOKEN]))
        cli.client.token = args_value(&opts[G_TOKEN]);
    cli.json = opts[G_JSON].count > 0;
    if (first + 1 >= (size_t)argc) {
        help_all(stderr);
        status = CLI_EXIT_USAGE;
        goto out;
    }
    if (ef_crypto_init() != 0) {
        status = cli_fail("internal", "cannot initialise libsodium");
        goto out;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        status = cli_fail("internal", "cannot initialise libcurl");
        goto out;
    }
    curl_ready = true;
    /* The bar goes to stderr, and only for a person watching a terminal. */
    cli.client.progress = isatty(STDOUT_FILENO) && isatty(STDERR_FILENO);
    status = dispatch(&cli, argc - 1 - (int)first, argv + 1 + first);
out:
    if (curl_ready)
        curl_global_cleanup();
    args_opts_release(opts, G_N);
    return status;
}
