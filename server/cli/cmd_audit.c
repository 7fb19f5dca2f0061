/* cmd_audit.c - `edgefleet audit list`: the append-only audit log (admin). */
#include "common/ef_error.h"
#include "server/cli/commands.h"
#include "server/cli/output.h"

#include <stdio.h>
#include <stdlib.h>

#define AUDIT_LIMIT_MAX 1000 /* entries per request, the API's own bound */

static const struct output_col audit_cols[] = {
    {"ID", "id", NULL},         {"TIME", "ts", NULL},       {"ACTOR", "actor", NULL},
    {"ACTION", "action", NULL}, {"TARGET", "target", NULL}, {"OUTCOME", "outcome", NULL},
    {"STATUS", "status", NULL},
};

static int print_entries(const json_t *doc)
{
    return output_table(stdout, json_object_get(doc, "entries"), audit_cols,
                        sizeof(audit_cols) / sizeof(audit_cols[0]));
}

enum { AUDIT_LIMIT, AUDIT_BEFORE, AUDIT_N };

static int audit_list(struct cli *cli, int argc, char **argv)
{
    struct args_opt opts[AUDIT_N] = {
        [AUDIT_LIMIT] = {.name = "limit", .metavar = "N"},
        [AUDIT_BEFORE] = {.name = "before", .metavar = "ID"},
    };
    char msg[200];
    int64_t n = 0;
    size_t npos = 0;
    int status = CLI_EXIT_OK;
    if (!cli_parse(cli, argc, argv, opts, AUDIT_N, NULL, 0, 0, &npos, &status))
        goto out;
    const char *limit = args_value(&opts[AUDIT_LIMIT]), *before = args_value(&opts[AUDIT_BEFORE]);
    if (limit && args_int(limit, 1, AUDIT_LIMIT_MAX, &n, msg, sizeof(msg)) != 0) {
        status = cli_usage(cli, "--limit: %s", msg);
        goto out;
    }
    if (before && args_int(before, 1, INT64_MAX, &n, msg, sizeof(msg)) != 0) {
        status = cli_usage(cli, "--before: %s", msg);
        goto out;
    }
    const char *pairs[] = {"limit", limit, "before", before};
    status = cli_get_query(cli, "/api/v1/audit", pairs, 2, print_entries);
out:
    args_opts_release(opts, AUDIT_N);
    return status;
}

static const struct cli_verb audit_verbs[] = {
    {"list", "[--limit N] [--before ID]", "Show the newest audit log entries (admin).",
     "  --limit N     at most N entries, 1 to 1000 (server default 100)\n"
     "  --before ID   only entries older than entry ID, to page back\n",
     audit_list},
};

const struct cli_noun cmd_audit_noun = {"audit", "the audit log", audit_verbs,
                                        sizeof(audit_verbs) / sizeof(audit_verbs[0])};
