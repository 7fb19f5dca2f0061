/*
 * cmd_token.c - `edgefleet token create|list|revoke` (API tokens with a role)
 * and `edgefleet enroll-token create` (tokens devices enroll with).
 *
 * A created token is printed once, as the server returned it; nothing else
 * in the CLI ever prints a token.
 */
#include "common/ef_error.h"
#include "common/json_util.h"
#include "common/topic.h"
#include "server/cli/commands.h"
#include "server/cli/output.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PATH_SIZE      128 /* "/api/v1/tokens/" and a token id */
#define TOKEN_NAME_MAX 128 /* characters of a token's name */

static const struct output_col token_cols[] = {
    {"ID", "id", NULL},           {"NAME", "name", NULL},
    {"ROLE", "role", NULL},       {"CREATED", "created_at", NULL},
    {"REVOKED", "revoked", NULL},
};

static int print_tokens(const json_t *doc)
{
    return output_table(stdout, json_object_get(doc, "tokens"), token_cols,
                        sizeof(token_cols) / sizeof(token_cols[0]));
}

/* A created token: its fields, and a reminder that it is shown only now. */
static int print_created(const json_t *doc)
{
    int rc = output_fields(stdout, doc);
    if (rc == 0 && isatty(STDERR_FILENO))
        fprintf(stderr, "Keep the token now: the server stores only its hash and cannot show "
                        "it again.\n");
    return rc;
}

enum { CREATE_ROLE, CREATE_NAME, CREATE_N };

static int token_create(struct cli *cli, int argc, char **argv)
{
    struct args_opt opts[CREATE_N] = {
        [CREATE_ROLE] = {.name = "role", .metavar = "admin|operator|viewer"},
        [CREATE_NAME] = {.name = "name", .metavar = "N"},
    };
    json_t *body = NULL;
    size_t npos = 0;
    int status = CLI_EXIT_OK;
    if (!cli_parse(cli, argc, argv, opts, CREATE_N, NULL, 0, 0, &npos, &status))
        goto out;
    const char *role = args_value(&opts[CREATE_ROLE]), *name = args_value(&opts[CREATE_NAME]);
    if (!role || (strcmp(role, "admin") != 0 && strcmp(role, "operator") != 0 &&
                  strcmp(role, "viewer") != 0)) {
        status = cli_usage(cli, "--role must be admin, operator or viewer");
        goto out;
    }
    if (name && (name[0] == '\0' || strlen(name) > TOKEN_NAME_MAX)) {
        status = cli_usage(cli, "--name must be 1 to %d characters", TOKEN_NAME_MAX);
        goto out;
    }
    body = json_pack("{s:s, s:s*}", "role", role, "name", name);
    if (!body) {
        status = cli_usage(cli, "--name must be UTF-8 text");
        goto out;
    }
    status = cli_request(cli, "POST", "/api/v1/tokens", body, print_created);
out:
    json_decref(body);
    args_opts_release(opts, CREATE_N);
    return status;
}

static int token_list(struct cli *cli, int argc, char **argv)
{
    return cli_run_request(cli, argc, argv, "GET", "/api/v1/tokens", print_tokens);
}

static int token_revoke(struct cli *cli, int argc, char **argv)
{
    const char *pos[1];
    char path[PATH_SIZE];
    size_t npos = 0;
    int status = CLI_EXIT_OK;
    if (!cli_parse(cli, argc, argv, NULL, 0, pos, 1, 1, &npos, &status))
        goto out;
    /* Ids are short and URL-safe; the same character rule as device ids. */
    if (!ef_device_id_valid(pos[0])) {
        status = cli_usage(cli, "'%s' is not a token id (see 'edgefleet token list')", pos[0]);
        goto out;
    }
    snprintf(path, sizeof(path), "/api/v1/tokens/%s", pos[0]);
    if ((status = cli_request(cli, "DELETE", path, NULL, NULL)) == CLI_EXIT_OK && !cli->json)
        printf("token %s revoked\n", pos[0]);
out:
    return status;
}

enum { ENROLL_USES, ENROLL_TTL, ENROLL_CLASS, ENROLL_N };

static int enroll_token_create(struct cli *cli, int argc, char **argv)
{
    struct args_opt opts[ENROLL_N] = {
        [ENROLL_USES] = {.name = "uses", .metavar = "N"},
        [ENROLL_TTL] = {.name = "ttl", .metavar = "S"},
        [ENROLL_CLASS] = {.name = "class", .metavar = "C"},
    };
    json_t *body = NULL;
    char msg[200];
    int64_t uses = 0, ttl = 0;
    size_t npos = 0;
    int status = CLI_EXIT_OK;
    if (!cli_parse(cli, argc, argv, opts, ENROLL_N, NULL, 0, 0, &npos, &status))
        goto out;
    const char *uses_text = args_value(&opts[ENROLL_USES]);
    const char *ttl_text = args_value(&opts[ENROLL_TTL]);
    const char *cls = args_value(&opts[ENROLL_CLASS]);
    if (uses_text && args_int(uses_text, 1, INT32_MAX, &uses, msg, sizeof(msg)) != 0) {
        status = cli_usage(cli, "--uses: %s", msg);
        goto out;
    }
    if (ttl_text && args_int(ttl_text, 1, INT32_MAX, &ttl, msg, sizeof(msg)) != 0) {
        status = cli_usage(cli, "--ttl: %s", msg);
        goto out;
    }
    if (cls && !ef_name_valid(cls)) {
        status = cli_usage(cli, "'%s' is not a valid device class", cls);
        goto out;
    }
    body = json_pack("{s:s*}", "class", cls);
    if (!body || (uses_text && json_object_set_new(body, "uses", json_integer(uses)) != 0) ||
        (ttl_text && json_object_set_new(body, "ttl_seconds", json_integer(ttl)) != 0)) {
        status = cli_fail("out_of_memory", "cannot build the request");
        goto out;
    }
    status = cli_request(cli, "POST", "/api/v1/enroll-tokens", body, print_created);
out:
    json_decref(body);
    args_opts_release(opts, ENROLL_N);
    return status;
}

static const struct cli_verb token_verbs[] = {
    {"create", "--role admin|operator|viewer [--name N]",
     "Create an API token; it is printed once, here.",
     "  --role R   viewer reads; operator also changes models, fleet, rings, assignments\n"
     "             and enrollment tokens; admin also manages API tokens and reads the audit log\n"
     "  --name N   a label to recognise it by in 'token list'\n",
     token_create},
    {"list", "", "List API tokens (never their values).", NULL, token_list},
    {"revoke", "ID", "Revoke an API token.", NULL, token_revoke},
};

const struct cli_noun cmd_token_noun = {"token", "API tokens (admin)", token_verbs,
                                        sizeof(token_verbs) / sizeof(token_verbs[0])};

static const struct cli_verb enroll_token_verbs[] = {
    {"create", "[--uses N] [--ttl S] [--class C]",
     "Create a token devices enroll with; it is printed once, here.",
     "  --uses N    how many devices may enroll with it (server default 1)\n"
     "  --ttl S     seconds it stays valid (server default 86400)\n"
     "  --class C   device class for the devices it enrolls\n",
     enroll_token_create},
};

const struct cli_noun cmd_enroll_token_noun = {
    "enroll-token", "tokens devices enroll with", enroll_token_verbs,
    sizeof(enroll_token_verbs) / sizeof(enroll_token_verbs[0])};
