/*
 * cmd_model.c - `edgefleet model push|list|show|sign`: the model registry.
 *
 * push uploads an artifact with its meta (or with a manifest signed
 * elsewhere) as multipart/form-data; with --data it first runs the model
 * over reference data (refdata.c) to add baselines, golden vectors and
 * metrics. sign is local: it signs a manifest's exact bytes with a release
 * secret key kept off the server.
 */
#include "common/crypto.h"
#include "common/ef_error.h"
#include "common/fsutil.h"
#include "common/json_util.h"
#include "common/manifest.h"
#include "common/topic.h"
#include "server/cli/commands.h"
#include "server/cli/output.h"
#include "server/cli/refdata.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATH_SIZE     256  /* an API path built from validated names */
#define SIGNATURE_MAX 1024 /* bytes of a signature file */

/* Meta keys for the two flags; the rest of meta comes from --meta as given. */
#define META_BACKEND "backend"
#define META_CLASS   "device_class"

static bool backend_valid(const char *b)
{
    return strcmp(b, "fann") == 0 || strcmp(b, "fann-fixed") == 0;
}

/* Reads a JSON object from a local file; prints the failure. */
static int read_json_file(const char *path, size_t max, json_t **out)
{
    char *text = NULL, msg[200] = "";
    size_t len = 0;
    int rc = ef_read_file(path, max, &text, &len);
    *out = NULL;
    if (rc != 0) {
        cli_fail(ef_errname(rc), "cannot read %s: %s", path, ef_strerror(rc));
        goto out;
    }
    if ((rc = ef_json_load(text, len, max, out, msg, sizeof(msg))) != 0) {
        cli_fail("malformed_json", "%s: %s", path, msg);
        goto out;
    }
    if (!json_is_object(*out)) {
        cli_fail("malformed_json", "%s: not a JSON object", path);
        json_decref(*out);
        *out = NULL;
        rc = EF_EINVAL;
    }
out:
    free(text);
    return rc;
}

/* Reads a detached signature file without its trailing newline. */
static int read_signature(const char *path, char **out)
{
    size_t len = 0;
    int rc = ef_read_file(path, SIGNATURE_MAX, out, &len);
    if (rc != 0) {
        cli_fail(ef_errname(rc), "cannot read %s: %s", path, ef_strerror(rc));
        return rc;
    }
    while (len > 0 &&
           ((*out)[len - 1] == '\n' || (*out)[len - 1] == '\r' || (*out)[len - 1] == ' '))
        (*out)[--len] = '\0';
    return 0;
}

static int print_pushed(const json_t *doc)
{
    char *name = output_scalar(json_object_get(doc, "name"));
    char *version = output_scalar(json_object_get(doc, "version"));
    char *backend = output_scalar(json_object_get(doc, "backend"));
    char *size = output_scalar(json_object_get(doc, "size"));
    char *sha = output_scalar(json_object_get(doc, "sha256"));
    int rc = EF_ENOMEM;
    if (name && version && backend && size && sha) {
        printf("pushed %s@%s (backend %s, %s bytes, sha256 %s)\n", name, version, backend, size,
               sha);
        rc = 0;
    }
    free(name);
    free(version);
    free(backend);
    free(size);
    free(sha);
    return rc;
}

/*
 * Builds the meta part: --meta as given, --backend and --class on top, and
 * with --data the computed baselines, vectors and metrics where meta is
 * silent. Returns a CLI exit status; *out is a new object on success.
 */
static int build_meta(struct cli *cli, const char *artifact, const char *meta_path,
                      const char *data_path, const char *backend, const char *cls, json_t **out)
{
    json_t *meta = NULL;
    char msg[300] = "";
    int status = CLI_EXIT_OK;
    *out = NULL;
    if (meta_path) {
        if (read_json_file(meta_path, EF_MANIFEST_MAX_BYTES, &meta) != 0) {
            status = CLI_EXIT_FAIL;
            goto out;
        }
    } else if (!(meta = json_object())) {
        status = cli_fail("out_of_memory", "cannot build the meta part");
        goto out;
    }
    if ((backend && json_object_set_new(meta, META_BACKEND, json_string(backend)) != 0) ||
        (cls && json_object_set_new(meta, META_CLASS, json_string(cls)) != 0)) {
        status = cli_fail("out_of_memory", "cannot build the meta part");
        goto out;
    }
    if (data_path) {
        const char *effective = ef_json_str(meta, META_BACKEND);
        if (effective && strcmp(effective, "fann-fixed") == 0) {
            status = cli_usage(cli, "--data needs the float backend (fann): FANN's fixed-point "
                                    "build cannot be evaluated here; compute baselines and test "
                                    "vectors from the float network and pass them with --meta");
            goto out;
        }
        int rc = refdata_apply(artifact, data_path, meta, msg, sizeof(msg));
        if (rc == EF_EUNSUPPORTED) {
            status = cli_usage(cli, "%s", msg);
            goto out;
        }
        if (rc != 0) {
            status = cli_fail(ef_errname(rc), "%s", msg);
            goto out;
        }
    }
    *out = meta;
    meta = NULL;
out:
    json_decref(meta);
    return status;
}

enum { PUSH_DATA, PUSH_META, PUSH_BACKEND, PUSH_CLASS, PUSH_MANIFEST, PUSH_SIGNATURE, PUSH_N };

static int model_push(struct cli *cli, int argc, char **argv)
{
    struct args_opt opts[PUSH_N] = {
        [PUSH_DATA] = {.name = "data", .metavar = "FILE"},
        [PUSH_META] = {.name = "meta", .metavar = "FILE"},
        [PUSH_BACKEND] = {.name = "backend", .metavar = "B"},
        [PUSH_CLASS] = {.name = "class", .metavar = "C"},
        [PUSH_MANIFEST] = {.name = "manifest", .metavar = "FILE"},
        [PUSH_SIGNATURE] = {.name = "signature", .metavar = "FILE"},
    };
    const char *pos[2];
    size_t npos = 0, nparts = 0;
    struct client_part parts[3];
    struct client_response resp = {0};
    json_t *meta = NULL;
    char *meta_text = NULL, *signature = NULL, path[PATH_SIZE];
    int status = CLI_EXIT_OK;
    if (!cli_parse(cli, argc, argv, opts, PUSH_N, pos, 2, 2, &npos, &status))
        goto out;
    const char *name = pos[0], *artifact = pos[1];
    const char *manifest = args_value(&opts[PUSH_MANIFEST]);
    const char *sig_path = args_value(&opts[PUSH_SIGNATURE]);
    const char *backend = args_value(&opts[PUSH_BACKEND]);
    const char *cls = args_value(&opts[PUSH_CLASS]);
    if (!ef_name_valid(name)) {
        status = cli_usage(cli, "'%s' is not a valid model name (1-64 of a-z 0-9 . _ -)", name);
        goto out;
    }
    if (backend && !backend_valid(backend)) {
        status = cli_usage(cli, "--backend must be fann or fann-fixed");
        goto out;
    }
    if (cls && !ef_name_valid(cls)) {
        status = cli_usage(cli, "'%s' is not a valid device class", cls);
        goto out;
    }
    if (!manifest != !sig_path) {
        status = cli_usage(cli, "--manifest and --signature go together");
        goto out;
    }
    if (manifest && (opts[PUSH_META].count || opts[PUSH_DATA].count || backend || cls)) {
        status = cli_usage(cli, "a signed --manifest already says everything: leave out "
                                "--meta, --data, --backend and --class");
        goto out;
    }

    parts[nparts++] = (struct client_part){
        .name = "artifact", .file = artifact, .type = "application/octet-stream"};
    if (manifest) {
        if (read_signature(sig_path, &signature) != 0) {
            status = CLI_EXIT_FAIL;
            goto out;
        }
        /* Streamed from the file: the signature covers its exact bytes. */
        parts[nparts++] =
            (struct client_part){.name = "manifest", .file = manifest, .type = "application/json"};
        parts[nparts++] = (struct client_part){
            .name = "signature", .data = signature, .len = strlen(signature), .type = "text/plain"};
    } else {
        status = build_meta(cli, artifact, args_value(&opts[PUSH_META]),
                            args_value(&opts[PUSH_DATA]), backend, cls, &meta);
        if (status != CLI_EXIT_OK)
            goto out;
        if (json_object_size(meta) > 0) {
            if (!(meta_text = ef_json_dump(meta))) {
                status = cli_fail("out_of_memory", "cannot encode the meta part");
                goto out;
            }
            parts[nparts++] = (struct client_part){.name = "meta",
                                                   .data = meta_text,
                                                   .len = strlen(meta_text),
                                                   .type = "application/json"};
        }
    }
    snprintf(path, sizeof(path), "/api/v1/models/%s/versions", name);
    if (client_upload(&cli->client, path, parts, nparts, &resp) != 0) {
        status = CLI_EXIT_FAIL;
        goto out;
    }
    status = cli_print(cli, &resp, print_pushed);
out:
    client_response_release(&resp);
    json_decref(meta);
    free(meta_text);
    free(signature);
    args_opts_release(opts, PUSH_N);
    return status;
}

static char *format_short_sha(const json_t *row)
{
    const char *sha = ef_json_str(row, "sha256");
    return sha ? strndup(sha, 12) : NULL;
}

static const struct output_col model_cols[] = {
    {"NAME", "name", NULL},
    {"LATEST", "latest_version", NULL},
    {"CREATED", "created_at", NULL},
    {"DESCRIPTION", "description", NULL},
};

static const struct output_col version_cols[] = {
    {"VERSION", "version", NULL},       {"BACKEND", "backend", NULL},
    {"CLASS", "device_class", NULL},    {"SIZE", "size", NULL},
    {"SHA256", NULL, format_short_sha}, {"CREATED", "created_at", NULL},
};

static int print_models(const json_t *doc)
{
    return output_table(stdout, json_object_get(doc, "models"), model_cols,
                        sizeof(model_cols) / sizeof(model_cols[0]));
}

/* A model: its own fields, then its versions as a table. */
static int print_model(const json_t *doc)
{
    json_t *fields = json_copy((json_t *)doc);
    int rc = fields ? 0 : EF_ENOMEM;
    const json_t *versions = json_object_get(doc, "versions");
    if (rc == 0) {
        json_object_del(fields, "versions");
        rc = output_fields(stdout, fields);
    }
    if (rc == 0 && json_is_array(versions)) {
        printf("\n");
        rc = output_table(stdout, versions, version_cols,
                          sizeof(version_cols) / sizeof(version_cols[0]));
    }
    json_decref(fields);
    return rc;
}

static int model_list(struct cli *cli, int argc, char **argv)
{
    return cli_run_request(cli, argc, argv, "GET", "/api/v1/models", print_models);
}

static int model_show(struct cli *cli, int argc, char **argv)
{
    const char *pos[1];
    char name[ARGS_NAME_SIZE], msg[200], path[PATH_SIZE];
    int64_t version = 0;
    size_t npos = 0;
    int status = CLI_EXIT_OK;
    if (!cli_parse(cli, argc, argv, NULL, 0, pos, 1, 1, &npos, &status))
        goto out;
    if (args_name_version(pos[0], false, name, &version, msg, sizeof(msg)) != 0) {
        status = cli_usage(cli, "%s", msg);
        goto out;
    }
    if (version > 0)
        snprintf(path, sizeof(path), "/api/v1/models/%s/versions/%lld", name, (long long)version);
    else
        snprintf(path, sizeof(path), "/api/v1/models/%s", name);
    status = cli_request(cli, "GET", path, NULL, version > 0 ? cli_text_fields : print_model);
out:
    return status;
}

enum { SIGN_KEY, SIGN_OUT, SIGN_N };

static int model_sign(struct cli *cli, int argc, char **argv)
{
    struct args_opt opts[SIGN_N] = {
        [SIGN_KEY] = {.name = "key", .metavar = "KEYFILE"},
        [SIGN_OUT] = {.name = "out", .metavar = "SIG"},
    };
    const char *pos[1];
    struct ef_keypair kp;
    struct ef_manifest *m = NULL;
    char *bytes = NULL, sig[EF_SIG_B64_SIZE + 1], msg[300] = "";
    size_t npos = 0, len = 0;
    bool have_key = false;
    int status = CLI_EXIT_OK, rc = 0;
    if (!cli_parse(cli, argc, argv, opts, SIGN_N, pos, 1, 1, &npos, &status))
        goto out;
    const char *manifest = pos[0], *key = args_value(&opts[SIGN_KEY]);
    const char *out_path = args_value(&opts[SIGN_OUT]);
    if (!key) {
        status = cli_usage(cli, "--key KEYFILE is required");
        goto out;
    }
    if ((rc = ef_read_file(manifest, EF_MANIFEST_MAX_BYTES, &bytes, &len)) != 0) {
        status = cli_fail(ef_errname(rc), "cannot read %s: %s", manifest, ef_strerror(rc));
        goto out;
    }
    /* Refuse to sign what every agent would refuse to load. */
    if ((rc = ef_manifest_parse(bytes, len, &m, msg, sizeof(msg))) != 0) {
        status = cli_fail("invalid_manifest", "%s: %s; nothing signed", manifest, msg);
        goto out;
    }
    if ((rc = ef_keypair_load(&kp, key)) != 0) {
        status = cli_fail(ef_errname(rc), "%s: %s", key,
                          rc == EF_EPERM    ? "readable by group or others; chmod 600 it"
                          : rc == EF_EPARSE ? "not a base64 Ed25519 secret key"
                                            : ef_strerror(rc));
        goto out;
    }
    have_key = true;
    ef_sign_b64(kp.sk, bytes, len, sig);
    if (out_path) {
        size_t n = strlen(sig);
        sig[n] = '\n';
        rc = ef_atomic_write(out_path, sig, n + 1, 0644);
        sig[n] = '\0';
        if (rc != 0) {
            status = cli_fail(ef_errname(rc), "cannot write %s: %s", out_path, ef_strerror(rc));
            goto out;
        }
    }
    if (cli->json) {
        json_t *doc = json_pack("{s:s, s:s*}", "signature", sig, "out", out_path);
        rc = doc ? output_json_value(stdout, doc) : EF_ENOMEM;
        json_decref(doc);
    } else if (!out_path) {
        rc = printf("%s\n", sig) < 0 ? EF_EIO : 0;
    }
    if (rc != 0)
        status = cli_fail(ef_errname(rc), "cannot print the signature");
out:
    if (have_key)
        ef_keypair_wipe(&kp);
    ef_manifest_free(m);
    free(bytes);
    args_opts_release(opts, SIGN_N);
    return status;
}

static const struct cli_verb model_verbs[] = {
    {"push",
     "NAME FILE [--data F] [--meta F] [--backend B] [--class C] [--manifest M --signature S]",
     "Upload a model artifact as the next version of NAME.",
     "  --data FILE        reference data in FANN training format: the model is run over it\n"
     "                     to add baseline histograms, 8 golden test vectors and metrics\n"
     "                     (mse, accuracy, reference_rows) to the meta (float models only)\n"
     "  --meta FILE        JSON object sent as given (labels, features, test_vectors,\n"
     "                     metrics, lineage, description, ...); its values win over --data's\n"
     "  --backend B        fann (default) or fann-fixed\n"
     "  --class C          device class this version is for\n"
     "  --manifest FILE    a manifest signed elsewhere with the release key, sent byte for byte\n"
     "  --signature FILE   its detached base64 signature (see 'model sign'); replaces the meta\n"
     "With --json prints the server's answer: {\"name\", \"version\", \"sha256\", \"size\", "
     "\"backend\"}.\n",
     model_push},
    {"list", "", "List the models.", NULL, model_list},
    {"show", "NAME[@VERSION]", "Show a model and its versions, or one version with its manifest.",
     NULL, model_show},
    {"sign", "MANIFEST.json --key KEYFILE [--out SIG]",
     "Sign the exact bytes of a manifest with a release secret key kept off the server.",
     "  --key KEYFILE   base64 Ed25519 secret key (64 bytes), mode 0600\n"
     "  --out SIG       write the base64 signature there instead of to stdout\n"
     "The manifest is checked first; an invalid one is not signed.\n",
     model_sign},
};

const struct cli_noun cmd_model_noun = {"model", "the model registry", model_verbs,
                                        sizeof(model_verbs) / sizeof(model_verbs[0])};
