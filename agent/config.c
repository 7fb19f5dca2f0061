/*
 * config.c - edgefleet-agent's flags and config file, from one option table.
 */
#include "agent/config.h"
#include "common/ef_error.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/topic.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

const char config_usage[] =
    "usage: edgefleet-agent --server URL --mqtt URL --data-dir DIR --device-id ID\n"
    "                       [--enroll-token T] [--class CLASS] [--tag k=v ...] [options]\n"
    "       edgefleet-agent infer [--socket PATH | --data-dir DIR] '[x1, x2, ...]'\n"
    "\n"
    "The device daemon of edgefleet: converges on the signed desired state, verifies\n"
    "and hot-swaps models, serves local inference on a Unix socket and reports\n"
    "metrics. Runs until SIGINT or SIGTERM.\n"
    "\n"
    "options (also accepted as `key = value` lines of --config FILE):\n"
    "  --server URL               edgefleet-server, http://HOST:PORT\n"
    "  --mqtt URL                 broker, mqtt://HOST:PORT\n"
    "  --data-dir DIR             state, models and identity (created, mode 0700)\n"
    "  --device-id ID             this device's id\n"
    "  --enroll-token T           enrollment token, used once when not yet enrolled\n"
    "  --class CLASS              device class sent at enrollment (default: default)\n"
    "  --tag k=v                  tag sent at enrollment; repeatable\n"
    "  --socket PATH              inference socket (default DATA_DIR/infer.sock)\n"
    "  --backend-dir DIR          backend modules (default <exe>/../lib/edgefleet)\n"
    "  --release-key B64          pin this release public key instead of learning it\n"
    "  --server-key B64           pin this server public key instead of learning it\n"
    "  --metrics-interval S       telemetry window in seconds (default 60): latency,\n"
    "                             drift, confidence, accuracy, shadow agreement\n"
    "  --shadow-share X           run the shadow model on this share of inferences,\n"
    "                             0 to 1 (default 1)\n"
    "  --poll-interval S          GET /desired every S seconds (default 300)\n"
    "  --trial-seconds S          trial window after a swap (default 30)\n"
    "  --trial-min-requests N     judge a trial only after N requests (default 20)\n"
    "  --trial-max-error-rate R   roll back above this error share (default 0.05)\n"
    "  --trial-max-p99-ms MS      roll back above this p99 latency (default 250)\n"
    "  --trial-max-p99-ratio X    roll back above X times the previous p99 (default 10)\n"
    "  --download-floor-bps N     abort downloads slower than N bytes/s ... (default 1024)\n"
    "  --download-floor-seconds S ... for S seconds (default 30)\n"
    "  --log-level LEVEL          debug, info, warn or error (default info)\n"
    "  --config FILE              read options from FILE first\n"
    "  -h, --help                 this text\n";

enum option_kind { OPT_STRING, OPT_UINT, OPT_DOUBLE, OPT_TAG, OPT_LOG_LEVEL, OPT_CONFIG };

struct option_spec {
    const char *name; /* long flag without dashes, and config file key */
    enum option_kind kind;
    size_t offset; /* into struct agent_config */
    size_t size;   /* of the string buffer, for OPT_STRING */
};

#define STR(name, field)                                                                           \
    {                                                                                              \
        name, OPT_STRING, offsetof(struct agent_config, field),                                    \
            sizeof(((struct agent_config *)0)->field)                                              \
    }
#define NUM(name, kind, field)                                                                     \
    {                                                                                              \
        name, kind, offsetof(struct agent_config, field), 0                                        \
    }

static const struct option_spec options[] = {
    STR("server", server_url),
    STR("mqtt", mqtt_url),
    STR("data-dir", data_dir),
    STR("device-id", device_id),
    STR("enroll-token", enroll_token),
    STR("class", device_class),
    {"tag", OPT_TAG, 0, 0},
    STR("socket", socket_path),
    STR("backend-dir", backend_dir),
    STR("release-key", release_key),
    STR("server-key", server_key),
    NUM("metrics-interval", OPT_UINT, metrics_interval_s),
    NUM("shadow-share", OPT_DOUBLE, shadow_share),
    NUM("poll-interval", OPT_UINT, poll_interval_s),
    NUM("trial-seconds", OPT_UINT, trial_s),
    NUM("trial-min-requests", OPT_UINT, trial_min_requests),
    NUM("trial-max-error-rate", OPT_DOUBLE, trial_max_error_rate),
    NUM("trial-max-p99-ms", OPT_DOUBLE, trial_max_p99_ms),
    NUM("trial-max-p99-ratio", OPT_DOUBLE, trial_max_p99_ratio),
    NUM("download-floor-bps", OPT_UINT, download_floor_bps),
    NUM("download-floor-seconds", OPT_UINT, download_floor_s),
    {"log-level", OPT_LOG_LEVEL, 0, 0},
    {"config", OPT_CONFIG, 0, 0},
};

void config_defaults(struct agent_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->device_class, sizeof(cfg->device_class), "default");
    snprintf(cfg->tags, sizeof(cfg->tags), "{}");
    cfg->metrics_interval_s = 60;
    cfg->shadow_share = 1.0;
    cfg->poll_interval_s = 300;
    cfg->trial_s = 30;
    cfg->trial_min_requests = 20;
    cfg->trial_max_error_rate = 0.05;
    cfg->trial_max_p99_ms = 250;
    cfg->trial_max_p99_ratio = 10;
    cfg->download_floor_bps = 1024;
    cfg->download_floor_s = 30;
}

static const struct option_spec *option_find(const char *name)
{
    for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++)
        if (strcmp(options[i].name, name) == 0)
            return &options[i];
    return NULL;
}

/* Adds k=v to the JSON object of tags held as text in cfg->tags. */
static int tag_add(struct agent_config *cfg, const char *kv)
{
    const char *eq = strchr(kv, '=');
    char key[65];
    int rc = EF_EINVAL;
    if (!eq || eq == kv || (size_t)(eq - kv) >= sizeof(key))
        return EF_EINVAL;
    memcpy(key, kv, (size_t)(eq - kv));
    key[eq - kv] = '\0';
    if (!ef_name_valid(key))
        return EF_EINVAL;
    json_t *tags = json_loads(cfg->tags, JSON_REJECT_DUPLICATES, NULL);
    if (tags && json_object_set_new(tags, key, json_string(eq + 1)) == 0) {
        char *text = json_dumps(tags, JSON_COMPACT | JSON_SORT_KEYS);
        if (text && strlen(text) < sizeof(cfg->tags)) {
            snprintf(cfg->tags, sizeof(cfg->tags), "%s", text);
            rc = 0;
        }
        free(text);
    }
    json_decref(tags);
    return rc;
}

static int config_file(struct agent_config *cfg, const char *path, int depth, FILE *err);

/* Applies one option; depth guards against a config file naming itself. */
static int apply(struct agent_config *cfg, const struct option_spec *o, const char *value,
                 int depth, FILE *err)
{
    char *end = NULL;
    char *field = (char *)cfg + o->offset;
    switch (o->kind) {
    case OPT_STRING:
        if (strlen(value) >= o->size)
            return EF_ETOOBIG;
        memcpy(field, value, strlen(value) + 1);
        return 0;
    case OPT_UINT: {
        unsigned long v = strtoul(value, &end, 10);
        if (!value[0] || *end || v == 0 || v > 86400UL * 365)
            return EF_EINVAL;
        *(unsigned *)field = (unsigned)v;
        return 0;
    }
    case OPT_DOUBLE: {
        double v = strtod(value, &end);
        if (!value[0] || *end || !(v >= 0) || v > 1e9)
            return EF_EINVAL;
        *(double *)field = v;
        return 0;
    }
    case OPT_TAG:
        return tag_add(cfg, value);
    case OPT_LOG_LEVEL: {
        enum ef_log_level level;
        int rc = ef_log_level_parse(value, &level);
        if (rc == 0)
            ef_log_set_level(level);
        return rc;
    }
    case OPT_CONFIG:
        return depth > 0 ? EF_EINVAL : config_file(cfg, value, depth + 1, err);
    }
    return EF_EINVAL;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = '\0';
    return s;
}

static int config_file(struct agent_config *cfg, const char *path, int depth, FILE *err)
{
    char *text = NULL, *save = NULL;
    int rc = ef_read_file(path, 1 << 20, &text, NULL), line_no = 0;
    if (rc != 0) {
        fprintf(err, "edgefleet-agent: cannot read config file %s: %s\n", path, ef_strerror(rc));
        return rc;
    }
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        line_no++;
        char *s = trim(line);
        if (!*s || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            fprintf(err, "edgefleet-agent: %s:%d: expected key = value\n", path, line_no);
            rc = EF_EINVAL;
            break;
        }
        *eq = '\0';
        const char *key = trim(s), *value = trim(eq + 1);
        const struct option_spec *o = option_find(key);
        if (!o || (rc = apply(cfg, o, value, depth, err)) != 0) {
            fprintf(err, "edgefleet-agent: %s:%d: bad option %s\n", path, line_no, key);
            rc = EF_EINVAL;
            break;
        }
    }
    free(text);
    return rc;
}

int config_parse(int argc, char **argv, struct agent_config *cfg, FILE *err)
{
    /* The config file first, so that flags override it. */
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--config=", 9) == 0 || (strcmp(a, "--config") == 0 && i + 1 < argc)) {
            int rc = config_file(cfg, a[8] == '=' ? a + 9 : argv[i + 1], 1, err);
            if (rc != 0)
                return EF_EINVAL;
        }
    }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *value = NULL;
        char name[64];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(config_usage, stdout);
            return 1;
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(err, "edgefleet-agent: unexpected argument: %s\n", a);
            return EF_EINVAL;
        }
        const char *eq = strchr(a, '=');
        size_t n = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        if (n >= sizeof(name)) {
            fprintf(err, "edgefleet-agent: unknown option: %s\n", a);
            return EF_EINVAL;
        }
        memcpy(name, a + 2, n);
        name[n] = '\0';
        const struct option_spec *o = option_find(name);
        if (!o) {
            fprintf(err, "edgefleet-agent: unknown option: --%s\n%s", name, config_usage);
            return EF_EINVAL;
        }
        if (eq)
            value = eq + 1;
        else if (i + 1 < argc)
            value = argv[++i];
        else {
            fprintf(err, "edgefleet-agent: --%s needs a value\n", name);
            return EF_EINVAL;
        }
        if (o->kind == OPT_CONFIG)
            continue; /* read above */
        if (apply(cfg, o, value, 1, err) != 0) {
            fprintf(err, "edgefleet-agent: invalid value for --%s: %s\n", name, value);
            return EF_EINVAL;
        }
    }
    return 0;
}

int config_check(const struct agent_config *cfg, FILE *err)
{
    static const struct {
        size_t offset;
        const char *flag;
    } required[] = {
        {offsetof(struct agent_config, server_url), "--server"},
        {offsetof(struct agent_config, mqtt_url), "--mqtt"},
        {offsetof(struct agent_config, data_dir), "--data-dir"},
        {offsetof(struct agent_config, device_id), "--device-id"},
    };
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
        if (!((const char *)cfg + required[i].offset)[0]) {
            fprintf(err, "edgefleet-agent: %s is required\n", required[i].flag);
            return EF_EINVAL;
        }
    }
    if (!ef_device_id_valid(cfg->device_id)) {
        fprintf(err, "edgefleet-agent: invalid device id: %s\n", cfg->device_id);
        return EF_EINVAL;
    }
    if (!ef_name_valid(cfg->device_class)) {
        fprintf(err, "edgefleet-agent: invalid device class: %s\n", cfg->device_class);
        return EF_EINVAL;
    }
    if (!(cfg->shadow_share >= 0 && cfg->shadow_share <= 1)) {
        fprintf(err, "edgefleet-agent: --shadow-share must be between 0 and 1\n");
        return EF_EINVAL;
    }
    if (cfg->metrics_interval_s == 0) {
        fprintf(err, "edgefleet-agent: --metrics-interval must be at least 1 second\n");
        return EF_EINVAL;
    }
    if (strncmp(cfg->server_url, "http://", 7) != 0 && strncmp(cfg->server_url, "https://", 8)) {
        fprintf(err, "edgefleet-agent: --server must be an http:// or https:// URL\n");
        return EF_EINVAL;
    }
    return 0;
}
