/* cli.c - argument handling, usage errors, help and the API round trip shared by every verb. */
#include "server/cli/cli.h"
#include "common/ef_error.h"
#include "server/cli/output.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The global flags, accepted before the noun (main.c) and after the verb. */
enum { G_SERVER, G_TOKEN, G_JSON, G_COUNT };

/* Prints "edgefleet NOUN VERB" (or "edgefleet NOUN") into f. */
static void command_name(FILE *f, const struct cli_noun *noun, const struct cli_verb *verb)
{
    fprintf(f, "%s %s", CLI_PROGRAM, noun->name);
    if (verb && verb->name)
        fprintf(f, " %s", verb->name);
}

bool cli_set_server(struct cli *cli, const char *url)
{
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
        return false;
    cli->client.base_url = url;
    return true;
}

bool cli_parse(struct cli *cli, int argc, char **argv, struct args_opt *opts, size_t nopts,
               const char **pos, size_t min_pos, size_t max_pos, size_t *npos, int *status)
{
    char msg[256] = "";
    bool help = false, ok = false;
    struct args_opt *all = calloc(nopts + G_COUNT, sizeof(*all));
    *status = CLI_EXIT_OK;
    if (!all) {
        *status = cli_fail("out_of_memory", "cannot parse the arguments");
        goto out;
    }
    if (nopts > 0)
        memcpy(all, opts, nopts * sizeof(*opts));
    all[nopts + G_SERVER] = (struct args_opt){.name = "server", .metavar = "URL"};
    all[nopts + G_TOKEN] = (struct args_opt){.name = "token", .metavar = "T"};
    all[nopts + G_JSON] = (struct args_opt){.name = "json"};
    int rc = args_parse(argc, argv, all, nopts + G_COUNT, pos, max_pos, npos, &help, 0, msg,
                        sizeof(msg));
    /* Hand the parsed values back; the caller owns and releases them. */
    if (nopts > 0)
        memcpy(opts, all, nopts * sizeof(*opts));
    if (rc == EF_ENOMEM) {
        *status = cli_fail("out_of_memory", "cannot parse the arguments");
        goto out;
    }
    if (help) {
        cli_help_verb(cli->noun, cli->verb);
        goto out;
    }
    if (rc != 0) {
        *status = cli_usage(cli, "%s", msg);
        goto out;
    }
    if (*npos < min_pos) {
        *status = cli_usage(cli, "missing arguments");
        goto out;
    }
    const char *server = args_value(&all[nopts + G_SERVER]);
    if (server && !cli_set_server(cli, server)) {
        *status = cli_usage(cli, "--server must be an http:// or https:// URL");
        goto out;
    }
    if (args_value(&all[nopts + G_TOKEN]))
        cli->client.token = args_value(&all[nopts + G_TOKEN]);
    if (all[nopts + G_JSON].count > 0)
        cli->json = true;
    ok = true;
out:
    if (all)
        args_opts_release(all + nopts, G_COUNT);
    free(all);
    return ok;
}

int cli_usage(const struct cli *cli, const char *fmt, ...)
{
    va_list ap;
    if (cli->noun) {
        command_name(stderr, cli->noun, cli->verb);
        fputs(": ", stderr);
    } else {
        fputs(CLI_PROGRAM ": ", stderr);
    }
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (cli->noun && cli->verb) {
        fputs("usage: ", stderr);
        command_name(stderr, cli->noun, cli->verb);
        fprintf(stderr, "%s%s\n", cli->verb->synopsis[0] ? " " : "", cli->verb->synopsis);
    }
    fputs("Try '", stderr);
    if (cli->noun)
        command_name(stderr, cli->noun, cli->verb);
    else
        fputs(CLI_PROGRAM, stderr);
    fputs(" --help'.\n", stderr);
    return CLI_EXIT_USAGE;
}

int cli_fail(const char *code, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: %s: ", CLI_PROGRAM, code);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return CLI_EXIT_FAIL;
}

void cli_help_verb(const struct cli_noun *noun, const struct cli_verb *verb)
{
    printf("usage: ");
    command_name(stdout, noun, verb);
    printf("%s%s\n\n%s\n", verb->synopsis[0] ? " " : "", verb->synopsis, verb->summary);
    if (verb->help)
        printf("\n%s", verb->help);
    printf("\nGlobal flags (--server URL, --token T, --json) may come before the noun or "
           "after the verb;\nsee '%s --help'.\n",
           CLI_PROGRAM);
}

void cli_help_noun(const struct cli_noun *noun)
{
    printf("usage: %s %s VERB [args]   (%s)\n\n", CLI_PROGRAM, noun->name, noun->summary);
    for (size_t i = 0; i < noun->verb_count; i++) {
        const struct cli_verb *v = &noun->verbs[i];
        printf("  %s %s%s%s%s%s\n      %s\n", CLI_PROGRAM, noun->name, v->name ? " " : "",
               v->name ? v->name : "", v->synopsis[0] ? " " : "", v->synopsis, v->summary);
    }
    printf("\nEach verb answers --help.\n");
}

int cli_print(const struct cli *cli, const struct client_response *resp,
              int (*text)(const json_t *doc))
{
    int rc = 0;
    if (!resp->body)
        return CLI_EXIT_OK;
    if (cli->json)
        rc = output_json_text(stdout, resp->body, resp->len);
    else if (text)
        rc = text(resp->doc);
    if (rc == 0 && fflush(stdout) != 0)
        rc = EF_EIO;
    if (rc != 0)
        return cli_fail(ef_errname(rc), "cannot print the answer: %s", ef_strerror(rc));
    return CLI_EXIT_OK;
}

int cli_request(const struct cli *cli, const char *method, const char *path, const json_t *body,
                int (*text)(const json_t *doc))
{
    struct client_response resp = {0};
    int status = CLI_EXIT_FAIL;
    if (client_call(&cli->client, method, path, body, &resp) == 0)
        status = cli_print(cli, &resp, text);
    client_response_release(&resp);
    return status;
}

int cli_get_query(const struct cli *cli, const char *base, const char *const *pairs, size_t npairs,
                  int (*text)(const json_t *doc))
{
    char *path = client_query_path(base, pairs, npairs);
    if (!path)
        return cli_fail("out_of_memory", "cannot build the query");
    int status = cli_request(cli, "GET", path, NULL, text);
    free(path);
    return status;
}

int cli_run_request(struct cli *cli, int argc, char **argv, const char *method, const char *path,
                    int (*text)(const json_t *doc))
{
    size_t npos = 0;
    int status = CLI_EXIT_OK;
    if (cli_parse(cli, argc, argv, NULL, 0, NULL, 0, 0, &npos, &status))
        status = cli_request(cli, method, path, NULL, text);
    return status;
}

int cli_text_fields(const json_t *doc)
{
    return output_fields(stdout, doc);
}
