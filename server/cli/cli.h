/*
 * cli.h - the shape of an edgefleet CLI command and what every command shares.
 *
 * The CLI is `edgefleet [global flags] NOUN VERB [args]`. Each cmd_<noun>.c
 * exports one struct cli_noun holding its verbs; main.c dispatches on that
 * table. A verb's run function receives the arguments after the verb and
 * returns the process exit status: CLI_EXIT_OK, CLI_EXIT_FAIL (the API, the
 * network or a local file said no; one line on stderr) or CLI_EXIT_USAGE
 * (the command line is wrong; message on stderr).
 */
#ifndef EF_CLI_CLI_H
#define EF_CLI_CLI_H

#include "server/cli/args.h"
#include "server/cli/client.h"

#include <stdbool.h>
#include <stddef.h>

#define CLI_EXIT_OK    0
#define CLI_EXIT_FAIL  1
#define CLI_EXIT_USAGE 2

#define CLI_PROGRAM        "edgefleet"
#define CLI_DEFAULT_SERVER "http://127.0.0.1:8080"

struct cli;

/* One verb of a noun ("model push"). */
struct cli_verb {
    const char *name;     /* "push"; NULL for a noun used without a verb ("assign") */
    const char *synopsis; /* arguments after the verb, for usage lines */
    const char *summary;  /* one line: what it does */
    const char *help;     /* option descriptions and notes, or NULL */
    int (*run)(struct cli *cli, int argc, char **argv); /* returns CLI_EXIT_* */
};

/* A noun and its verbs. */
struct cli_noun {
    const char *name;             /* "model" */
    const char *summary;          /* one line */
    const struct cli_verb *verbs; /* verb_count entries */
    size_t verb_count;
};

/* The state of one invocation, created in main and passed to every verb. */
struct cli {
    struct client client;        /* server URL and token; borrowed strings */
    bool json;                   /* --json: print the server's JSON as sent */
    const struct cli_noun *noun; /* the command being run */
    const struct cli_verb *verb;
};

/*
 * Parses a verb's arguments against opts, also accepting the global flags
 * (--server, --token, --json) after the verb. Requires min_pos..max_pos
 * positionals, stored borrowed in pos. Returns true when the verb should go
 * on. Otherwise *status is the exit status to return: CLI_EXIT_OK after
 * printing the verb's help for --help, CLI_EXIT_USAGE after a usage error
 * on stderr. The caller releases opts with args_opts_release either way.
 */
bool cli_parse(struct cli *cli, int argc, char **argv, struct args_opt *opts, size_t nopts,
               const char **pos, size_t min_pos, size_t max_pos, size_t *npos, int *status);

/* Prints "edgefleet NOUN VERB: <message>" and a pointer to --help on stderr;
 * returns CLI_EXIT_USAGE. */
int cli_usage(const struct cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints "edgefleet: <code>: <message>" on stderr; returns CLI_EXIT_FAIL. */
int cli_fail(const char *code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Help texts on stdout: the verb's usage and options, a noun's verbs. */
void cli_help_verb(const struct cli_noun *noun, const struct cli_verb *verb);
void cli_help_noun(const struct cli_noun *noun);

/*
 * Prints a successful response: the server's JSON as sent under --json,
 * otherwise text(doc) when text is not NULL (a 204 prints nothing either
 * way). Returns CLI_EXIT_OK, or CLI_EXIT_FAIL when writing failed.
 */
int cli_print(const struct cli *cli, const struct client_response *resp,
              int (*text)(const json_t *doc));

/*
 * The request and the answer of a verb that makes one API call: sends
 * method path with body (borrowed, may be NULL) and prints the response as
 * cli_print does. Returns CLI_EXIT_FAIL when the request failed (the client
 * has said why on stderr), otherwise what cli_print returns.
 */
int cli_request(const struct cli *cli, const char *method, const char *path, const json_t *body,
                int (*text)(const json_t *doc));

/* cli_request of GET base?key=value&... built by client_query_path from
 * npairs pairs (a NULL value leaves its pair out). */
int cli_get_query(const struct cli *cli, const char *base, const char *const *pairs, size_t npairs,
                  int (*text)(const json_t *doc));

/* The whole of a verb that takes no arguments and makes one API call: parses
 * argv (for --help and the global flags), then cli_request. */
int cli_run_request(struct cli *cli, int argc, char **argv, const char *method, const char *path,
                    int (*text)(const json_t *doc));

/* A cli_print text callback: the document's fields as "key: value" lines. */
int cli_text_fields(const json_t *doc);

/* Validates and stores a server URL (http:// or https://); false when it is
 * neither. The string is borrowed. */
bool cli_set_server(struct cli *cli, const char *url);

#endif
