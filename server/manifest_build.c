/*
 * manifest_build.c - reading a FANN artifact's header and building the
 * manifest of an uploaded version from it and the client's meta object.
 */
#include "server/manifest_build.h"
#include "common/clock.h"
#include "common/ef_error.h"
#include "common/json_util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <floatfann.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FANN_MAGIC_FLOAT "FANN_FLO_2.1"
#define FANN_MAGIC_FIXED "FANN_FIX_2.0"
#define FANN_MAX_LAYERS  256        /* far above any network an edge device runs */
#define FANN_MAX_NEURONS (1u << 22) /* all layers together, bias neurons included */

const char *const manifest_meta_keys[] = {
    "description", "backend", "device_class", "features", "labels", "test_vectors",
    "baseline",    "metrics", "lineage",      "version",  NULL,
};

static const char *const lineage_keys[] = {"parent_version", "dataset_id", "trigger", "alert_id",
                                           NULL};

static int refuse(char *msg, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes a reason into msg (may be NULL) and returns EF_EINVAL. */
static int refuse(char *msg, size_t size, const char *fmt, ...)
{
    if (msg && size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, size, fmt, ap);
        va_end(ap);
    }
    return EF_EINVAL;
}

/* Reads at most MANIFEST_FANN_HEADER_MAX bytes of path into a new
 * NUL-terminated buffer. A FANN header is a few hundred bytes of text; the
 * weights that follow are never needed here. */
static int read_head(const char *path, char **out)
{
    int rc = 0;
    char *buf = NULL;
    FILE *f = fopen(path, "rb");
    *out = NULL;
    if (!f)
        return ef_from_errno(errno);
    if (!(buf = malloc(MANIFEST_FANN_HEADER_MAX + 1))) {
        rc = EF_ENOMEM;
        goto out;
    }
    size_t n = fread(buf, 1, MANIFEST_FANN_HEADER_MAX, f);
    if (ferror(f)) {
        rc = EF_EIO;
        goto out;
    }
    buf[n] = '\0';
    *out = buf;
    buf = NULL;
out:
    free(buf);
    fclose(f);
    return rc;
}

/* Returns the start of the line beginning with key ("layer_sizes="), after
 * the key, or NULL. The first line (the magic) is never a match. */
static const char *find_line(const char *head, const char *key)
{
    size_t n = strlen(key);
    for (const char *p = strchr(head, '\n'); p; p = strchr(p + 1, '\n'))
        if (strncmp(p + 1, key, n) == 0)
            return p + 1 + n;
    return NULL;
}

/* Parses an unsigned decimal of at most 9 digits at *p, advancing *p. */
static bool parse_count(const char **p, unsigned long *out)
{
    unsigned long v = 0;
    int digits = 0;
    while (isdigit((unsigned char)**p)) {
        if (++digits > 9)
            return false;
        v = v * 10 + (unsigned long)(**p - '0');
        (*p)++;
    }
    *out = v;
    return digits > 0;
}

/* True when the rest of a line from p holds only spaces (FANN ends its
 * lists with one) and a line end. */
static bool line_rest_blank(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\r')
        p++;
    return *p == '\n';
}

/* Parses the header text: magic line, num_layers= and layer_sizes=. */
static int parse_header(const char *head, struct manifest_artifact_info *info, char *msg,
                        size_t msg_size)
{
    size_t magic_len = strlen(FANN_MAGIC_FLOAT); /* both magics have this length */
    if (strncmp(head, FANN_MAGIC_FLOAT, magic_len) == 0 && line_rest_blank(head + magic_len))
        info->backend = "fann";
    else if (strncmp(head, FANN_MAGIC_FIXED, magic_len) == 0 && line_rest_blank(head + magic_len))
        info->backend = "fann-fixed";
    else
        return refuse(
            msg, msg_size,
            "the artifact is not a FANN network file (first line must be " FANN_MAGIC_FLOAT
            " or " FANN_MAGIC_FIXED ")");

    const char *p = find_line(head, "layer_sizes=");
    if (!p)
        return refuse(msg, msg_size, "the artifact's FANN header has no layer_sizes line");
    unsigned long layers = 0, first = 0, last = 0, total = 0, size;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\r' || *p == '\n')
            break;
        if (!parse_count(&p, &size) || (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n'))
            return refuse(msg, msg_size, "the artifact's layer_sizes line is malformed");
        if (size < 2)
            return refuse(msg, msg_size,
                          "the artifact's layer %lu has no neurons besides its bias neuron",
                          layers);
        if (++layers > FANN_MAX_LAYERS || (total += size) > FANN_MAX_NEURONS)
            return refuse(msg, msg_size,
                          "the artifact's network is larger than %u layers or %u neurons",
                          FANN_MAX_LAYERS, FANN_MAX_NEURONS);
        if (layers == 1)
            first = size;
        last = size;
    }
    if (layers < 2)
        return refuse(msg, msg_size, "the artifact's layer_sizes line lists fewer than 2 layers");
    const char *nl = find_line(head, "num_layers=");
    unsigned long declared = 0;
    if (nl && (!parse_count(&nl, &declared) || declared != layers))
        return refuse(msg, msg_size, "the artifact's num_layers does not match layer_sizes");
    if (first - 1 > EF_MANIFEST_MAX_IO || last - 1 > EF_MANIFEST_MAX_IO)
        return refuse(msg, msg_size, "the artifact has more than %d inputs or outputs",
                      EF_MANIFEST_MAX_IO);
    info->inputs = first - 1;
    info->outputs = last - 1;
    return 0;
}

/* Loads a float network to prove that the whole file, not just its header,
 * is what a device will load, and that the library agrees on its shape.
 *
 * Debian's libfann 2.2.0 formats its error messages, which quote the file
 * name, into a heap buffer of 128 bytes with vsprintf: a file that fails to
 * load under a path longer than 18 bytes overflows it (its longest
 * message is 110 bytes without the name). The file is therefore opened here
 * and handed to FANN as /dev/fd/N, which keeps every message inside that
 * buffer whatever the data directory is called. */
static int check_float_network(const char *path, const struct manifest_artifact_info *info,
                               char *msg, size_t msg_size)
{
    int rc = 0;
    char short_path[24];
    struct fann *ann = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ef_from_errno(errno);
    snprintf(short_path, sizeof(short_path), "/dev/fd/%d", fd);
    if (!(ann = fann_create_from_file(short_path))) {
        rc = refuse(msg, msg_size, "the artifact does not load as a float FANN network");
        goto out;
    }
    unsigned in = fann_get_num_input(ann), out = fann_get_num_output(ann);
    if (in != info->inputs || out != info->outputs)
        rc = refuse(msg, msg_size,
                    "the artifact loads with %u inputs and %u outputs but its header says "
                    "%zu and %zu",
                    in, out, info->inputs, info->outputs);
out:
    if (ann)
        fann_destroy(ann);
    close(fd);
    return rc;
}

int manifest_inspect_artifact(const char *path, const char *backend,
                              struct manifest_artifact_info *info, char *msg, size_t msg_size)
{
    char *head = NULL;
    memset(info, 0, sizeof(*info));
    int rc = read_head(path, &head);
    if (rc != 0)
        goto out;
    if ((rc = parse_header(head, info, msg, msg_size)) != 0)
        goto out;
    if (backend && strcmp(backend, info->backend) != 0) {
        rc = refuse(msg, msg_size, "backend is %s but the artifact is a %s network (%s)", backend,
                    strcmp(info->backend, "fann") == 0 ? "float" : "fixed-point", info->backend);
        goto out;
    }
    if (strcmp(info->backend, "fann") == 0)
        rc = check_float_network(path, info, msg, msg_size);
out:
    free(head);
    return rc;
}

/* True when a is an array of n non-empty strings. */
static bool names_ok(const json_t *a, size_t n)
{
    if (!json_is_array(a) || json_array_size(a) != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(a, i));
        if (!s || !*s)
            return false;
    }
    return true;
}

/* Checks the types of the meta members that become manifest fields; shapes
 * that depend on sizes (vectors, baselines) are ef_manifest_from_json's. */
static int check_meta(const json_t *meta, const struct manifest_artifact_info *info, char *msg,
                      size_t msg_size)
{
    const json_t *v;
    const char *unknown = NULL;
    if (!ef_json_keys_allowed(meta, manifest_meta_keys, &unknown))
        return refuse(msg, msg_size, "meta: unknown key '%s'", unknown);
    if ((v = json_object_get(meta, "features")) && !names_ok(v, info->inputs))
        return refuse(msg, msg_size, "meta.features must be %zu non-empty strings (one per input)",
                      info->inputs);
    if ((v = json_object_get(meta, "labels")) &&
        !(json_is_array(v) && (json_array_size(v) == 0 || names_ok(v, info->outputs))))
        return refuse(msg, msg_size,
                      "meta.labels must be empty or %zu non-empty strings (one per output)",
                      info->outputs);
    if ((v = json_object_get(meta, "test_vectors")) && !json_is_array(v))
        return refuse(msg, msg_size, "meta.test_vectors must be an array");
    if ((v = json_object_get(meta, "baseline")) && !json_is_object(v) && !json_is_null(v))
        return refuse(msg, msg_size, "meta.baseline must be an object or null");
    if ((v = json_object_get(meta, "metrics")) && !json_is_object(v))
        return refuse(msg, msg_size, "meta.metrics must be an object");
    if ((v = json_object_get(meta, "device_class")) && !json_is_string(v) && !json_is_null(v))
        return refuse(msg, msg_size, "meta.device_class must be a string or null");
    return 0;
}

/* A new lineage object: the defaults, overridden by meta.lineage. */
static int build_lineage(const json_t *meta, int64_t parent_version, json_t **out, char *msg,
                         size_t msg_size)
{
    const json_t *given = json_object_get(meta, "lineage");
    const char *unknown = NULL;
    json_t *lineage = NULL, *copy = NULL;
    int rc = 0;
    *out = NULL;
    if (given && !json_is_object(given)) {
        rc = refuse(msg, msg_size, "meta.lineage must be an object");
        goto out;
    }
    if (given && !ef_json_keys_allowed(given, lineage_keys, &unknown)) {
        rc = refuse(msg, msg_size, "meta.lineage: unknown key '%s'", unknown);
        goto out;
    }
    const json_t *parent = json_object_get(given, "parent_version");
    if (parent && !json_is_null(parent) &&
        (!json_is_integer(parent) || json_integer_value(parent) < 1)) {
        rc = refuse(msg, msg_size, "meta.lineage.parent_version must be an integer >= 1 or null");
        goto out;
    }
    for (size_t i = 1; i < 3; i++) {
        const json_t *s = json_object_get(given, lineage_keys[i]);
        if (s && !json_is_string(s) && !json_is_null(s)) {
            rc = refuse(msg, msg_size, "meta.lineage.%s must be a string or null", lineage_keys[i]);
            goto out;
        }
    }
    /* The alert whose retrain action caused this version (docs/monitoring.md). */
    const json_t *alert = json_object_get(given, "alert_id");
    if (alert && !json_is_null(alert) &&
        !(json_is_integer(alert) && json_integer_value(alert) >= 1)) {
        rc = refuse(msg, msg_size, "meta.lineage.alert_id must be an integer >= 1 or null");
        goto out;
    }
    lineage = json_pack("{s:o, s:n, s:n}", "parent_version",
                        parent_version > 0 ? json_integer(parent_version) : json_null(),
                        "dataset_id", "trigger");
    copy = given ? json_deep_copy(given) : NULL;
    if (!lineage || (given && (!copy || json_object_update(lineage, copy) != 0))) {
        rc = EF_ENOMEM;
        goto out;
    }
    *out = lineage;
    lineage = NULL;
out:
    json_decref(copy);
    json_decref(lineage);
    return rc;
}

/* A new copy of meta[key], or fallback (stolen) when meta has no such key. */
static json_t *meta_or(const json_t *meta, const char *key, json_t *fallback)
{
    const json_t *v = json_object_get(meta, key);
    if (!v)
        return fallback;
    json_decref(fallback);
    return json_deep_copy(v);
}

/* A new array "f0" .. "f<n-1>": feature names when the client gives none. */
static json_t *default_features(size_t n)
{
    json_t *a = json_array();
    char name[24];
    for (size_t i = 0; a && i < n; i++) {
        snprintf(name, sizeof(name), "f%zu", i);
        if (json_array_append_new(a, json_string(name)) != 0) {
            json_decref(a);
            a = NULL;
        }
    }
    return a;
}

int manifest_build(const struct manifest_source *src, struct ef_manifest **out, char *msg,
                   size_t msg_size)
{
    int rc = 0;
    json_t *doc = NULL, *lineage = NULL;
    const json_t *meta = src->meta;
    struct manifest_artifact_info info;
    char created_at[EF_TIME_STR_SIZE];
    *out = NULL;
    if (meta && !json_is_object(meta)) {
        rc = refuse(msg, msg_size, "meta must be a JSON object");
        goto out;
    }
    /* The backend is checked before the artifact is read, so that a typo is
     * reported as such rather than as a mismatch. */
    const json_t *backend = json_object_get(meta, "backend");
    const char *want = json_string_value(backend);
    if (backend && (!want || (strcmp(want, "fann") != 0 && strcmp(want, "fann-fixed") != 0))) {
        rc = refuse(msg, msg_size, "meta.backend must be \"fann\" or \"fann-fixed\"");
        goto out;
    }
    if ((rc = manifest_inspect_artifact(src->artifact_path, want, &info, msg, msg_size)) != 0 ||
        (rc = check_meta(meta, &info, msg, msg_size)) != 0 ||
        (rc = build_lineage(meta, src->parent_version, &lineage, msg, msg_size)) != 0)
        goto out;
    ef_time_format(src->now_ms, created_at, sizeof(created_at));
    doc = json_pack("{s:i, s:s, s:I, s:s, s:{s:s, s:I}, s:{s:I}, s:{s:I}, s:s}", "format",
                    EF_MANIFEST_FORMAT, "name", src->name, "version", (json_int_t)src->version,
                    "backend", info.backend, "artifact", "sha256", src->sha256, "size",
                    (json_int_t)src->size, "input", "size", (json_int_t)info.inputs, "output",
                    "size", (json_int_t)info.outputs, "created_at", created_at);
    if (!doc ||
        json_object_set_new(doc, "device_class", meta_or(meta, "device_class", json_null())) != 0 ||
        json_object_set_new(json_object_get(doc, "input"), "features",
                            meta_or(meta, "features", default_features(info.inputs))) != 0 ||
        json_object_set_new(json_object_get(doc, "output"), "labels",
                            meta_or(meta, "labels", json_array())) != 0 ||
        json_object_set_new(doc, "baseline", meta_or(meta, "baseline", json_null())) != 0 ||
        json_object_set_new(doc, "test_vectors", meta_or(meta, "test_vectors", json_array())) !=
            0 ||
        json_object_set_new(doc, "metrics", meta_or(meta, "metrics", json_object())) != 0 ||
        json_object_set(doc, "lineage", lineage) != 0) {
        rc = EF_ENOMEM;
        goto out;
    }
    rc = ef_manifest_from_json(doc, out, msg, msg_size);
out:
    json_decref(lineage);
    json_decref(doc);
    return rc;
}
