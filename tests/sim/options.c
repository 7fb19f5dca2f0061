/*
 * options.c - edgefleet-sim's command line, the parts its devices play, and
 * what the fleet needs of the machine.
 */
#include "tests/sim/sim.h"
#include "common/ef_error.h"
#include "common/topic.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: edgefleet-sim --devices N --server URL --mqtt URL --enroll-token T [options]\n"
    "\n"
    "Runs N simulated devices in one process on one event loop. Each is built on\n"
    "edgefleet-agent's own modules: it enrolls, connects to the broker with its own\n"
    "client, follows its desired state through the real deployment state machine\n"
    "(downloads over HTTP, verification, self-test, trial, commit), serves inferences\n"
    "and publishes metrics windows.\n"
    "\n"
    "fleet:\n"
    "  --devices N            devices to run (default 100, at most 100000)\n"
    "  --server URL           edgefleet-server, http://HOST:PORT\n"
    "  --mqtt URL             the broker, mqtt://HOST:PORT\n"
    "  --enroll-token T       an enrollment token with a use for every device\n"
    "  --data-dir DIR         one directory per device under DIR (kept; devices that\n"
    "                         enrolled before resume); default a temporary directory\n"
    "                         removed at exit (put it on tmpfs for large fleets)\n"
    "  --keep                 keep the temporary data directory\n"
    "  --prefix P             device ids P-00001, P-00002, ... (default sim)\n"
    "  --first K              number of the first device (default 1)\n"
    "  --class C              device class sent at enrollment (default \"default\")\n"
    "  --tag k=v              a tag sent at enrollment (repeatable)\n"
    "  --backend-dir DIR      inference backend modules (default as the agent)\n"
    "  --http-group G         devices sharing one HTTP client (default 100)\n"
    "  --http-connections N   connections of each HTTP client (default 4)\n"
    "  --ramp-ms MS           start the devices evenly over MS ms (default 0)\n"
    "agents:\n"
    "  --metrics-interval S   telemetry window (default 60)\n"
    "  --poll-interval S      GET /desired timer (default 300)\n"
    "  --trial-seconds S      trial window after a swap (default 30)\n"
    "inference:\n"
    "  --infer-rate R         inferences per device per second (default 0.2; 0: none)\n"
    "  --infer-cost-us US     a synthetic inference of US microseconds instead of FANN\n"
    "  --noise X              uniform noise of +-X on every input feature (default 0.05)\n"
    "  --drift-shift X        shift every input feature by X ... (default 0)\n"
    "  --drift-after S        ... starting S seconds after the start ...\n"
    "  --drift-ramp S         ... reaching X over S seconds (default 0: a step)\n"
    "  --seed N               of the noise (default 1)\n"
    "faults:\n"
    "  --fail-share F         share of devices whose deployments fail (default 0)\n"
    "  --fail-mode M          verify (no backend: fails at verification; default) or\n"
    "                         trial (every inference fails: the trial rolls back)\n"
    "  --slow-share F         share of devices whose downloads are rate-limited\n"
    "  --slow-bps B           their download rate in bytes/s (default 2048)\n"
    "  --offline-share F      share of devices that drop offline ...\n"
    "  --offline-at S         ... S seconds after they first connect (default 5) ...\n"
    "  --offline-for S        ... for S seconds (default 10; 0: for good)\n"
    "run:\n"
    "  --status-interval S    one JSON status line on stdout every S s (default 1; 0: none)\n"
    "  --duration S           stop after S seconds (default: at SIGINT or SIGTERM)\n"
    "\n"
    "The first line on stdout is {\"event\":\"start\", ...} with the ids of the\n"
    "failing, slow and offline devices; then status lines, and a last one with\n"
    "\"event\":\"stop\". Exits 2 when the machine cannot hold N devices (file\n"
    "descriptors, local ports), 1 on other errors.\n";

void sim_config_defaults(struct sim_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->devices = 100;
    snprintf(cfg->prefix, sizeof(cfg->prefix), "sim");
    cfg->first = 1;
    snprintf(cfg->device_class, sizeof(cfg->device_class), "default");
    snprintf(cfg->tags, sizeof(cfg->tags), "{}");
    cfg->http_group = 100;
    cfg->http_conns = 4;
    cfg->metrics_s = 60;
    cfg->poll_s = 300;
    cfg->trial_s = 30;
    cfg->infer_rate = 0.2;
    cfg->noise = 0.05;
    cfg->fail_mode = SIM_FAIL_VERIFY;
    cfg->slow_bps = 2048;
    cfg->offline_at_s = 5;
    cfg->offline_for_s = 10;
    cfg->status_s = 1;
    cfg->seed = 1;
}

static int parse_uint(const char *s, unsigned long min, unsigned long max, unsigned *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < min || v > max)
        return EF_EINVAL;
    *out = (unsigned)v;
    return 0;
}

static int parse_double(const char *s, double min, double max, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < min || v > max)
        return EF_EINVAL;
    *out = v;
    return 0;
}

static int copy_str(const char *s, char *dst, size_t size)
{
    size_t n = strlen(s);
    if (n == 0 || n >= size)
        return EF_EINVAL;
    memcpy(dst, s, n + 1);
    return 0;
}

static int tag_add(struct sim_config *cfg, const char *kv)
{
    const char *eq = strchr(kv, '=');
    char key[65];
    int rc = EF_EINVAL;
    json_t *tags = NULL;
    char *text = NULL;
    if (!eq || eq == kv || (size_t)(eq - kv) >= sizeof(key))
        return EF_EINVAL;
    memcpy(key, kv, (size_t)(eq - kv));
    key[eq - kv] = '\0';
    if (!(tags = json_loads(cfg->tags, 0, NULL)) ||
        json_object_set_new(tags, key, json_string(eq + 1)) != 0 ||
        !(text = json_dumps(tags, JSON_COMPACT)))
        goto out;
    rc = copy_str(text, cfg->tags, sizeof(cfg->tags));
out:
    free(text);
    json_decref(tags);
    return rc;
}

int sim_config_parse(int argc, char **argv, struct sim_config *cfg, FILE *out, FILE *err)
{
    for (int i = 0; i < argc; i++) {
        const char *name = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0;
        if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0) {
            fputs(usage, out);
            return 1;
        }
        if (strcmp(name, "--keep") == 0) {
            cfg->keep = true;
            continue;
        }
        if (!v) {
            fprintf(err, "edgefleet-sim: %s needs a value (see --help)\n", name);
            return EF_EINVAL;
        }
        i++;
        if (strcmp(name, "--devices") == 0)
            rc = parse_uint(v, 1, SIM_DEVICES_MAX, &cfg->devices);
        else if (strcmp(name, "--server") == 0)
            rc = copy_str(v, cfg->server_url, sizeof(cfg->server_url));
        else if (strcmp(name, "--mqtt") == 0)
            rc = copy_str(v, cfg->mqtt_url, sizeof(cfg->mqtt_url));
        else if (strcmp(name, "--enroll-token") == 0)
            rc = copy_str(v, cfg->enroll_token, sizeof(cfg->enroll_token));
        else if (strcmp(name, "--data-dir") == 0)
            rc = copy_str(v, cfg->data_dir, sizeof(cfg->data_dir) - 80);
        else if (strcmp(name, "--prefix") == 0)
            rc = copy_str(v, cfg->prefix, sizeof(cfg->prefix));
        else if (strcmp(name, "--first") == 0)
            rc = parse_uint(v, 0, 1000000000, &cfg->first);
        else if (strcmp(name, "--class") == 0)
            rc = copy_str(v, cfg->device_class, sizeof(cfg->device_class));
        else if (strcmp(name, "--tag") == 0)
            rc = tag_add(cfg, v);
        else if (strcmp(name, "--backend-dir") == 0)
            rc = copy_str(v, cfg->backend_dir, sizeof(cfg->backend_dir));
        else if (strcmp(name, "--http-connections") == 0)
            rc = parse_uint(v, 1, 10000, &cfg->http_conns);
        else if (strcmp(name, "--http-group") == 0)
            rc = parse_uint(v, 1, SIM_DEVICES_MAX, &cfg->http_group);
        else if (strcmp(name, "--ramp-ms") == 0)
            rc = parse_uint(v, 0, 3600000, &cfg->ramp_ms);
        else if (strcmp(name, "--metrics-interval") == 0)
            rc = parse_uint(v, 1, 86400, &cfg->metrics_s);
        else if (strcmp(name, "--poll-interval") == 0)
            rc = parse_uint(v, 1, 86400, &cfg->poll_s);
        else if (strcmp(name, "--trial-seconds") == 0)
            rc = parse_uint(v, 1, 86400, &cfg->trial_s);
        else if (strcmp(name, "--infer-rate") == 0)
            rc = parse_double(v, 0, 1000, &cfg->infer_rate);
        else if (strcmp(name, "--infer-cost-us") == 0)
            rc = parse_uint(v, 0, 1000000, &cfg->infer_cost_us);
        else if (strcmp(name, "--noise") == 0)
            rc = parse_double(v, 0, 1e6, &cfg->noise);
        else if (strcmp(name, "--drift-shift") == 0)
            rc = parse_double(v, -1e6, 1e6, &cfg->drift_shift);
        else if (strcmp(name, "--drift-after") == 0)
            rc = parse_double(v, 0, 1e7, &cfg->drift_after_s);
        else if (strcmp(name, "--drift-ramp") == 0)
            rc = parse_double(v, 0, 1e7, &cfg->drift_ramp_s);
        else if (strcmp(name, "--seed") == 0)
            rc = parse_uint(v, 0, 4294967295ul, &cfg->seed);
        else if (strcmp(name, "--fail-share") == 0)
            rc = parse_double(v, 0, 1, &cfg->fail_share);
        else if (strcmp(name, "--fail-mode") == 0) {
            if (strcmp(v, "verify") == 0)
                cfg->fail_mode = SIM_FAIL_VERIFY;
            else if (strcmp(v, "trial") == 0)
                cfg->fail_mode = SIM_FAIL_TRIAL;
            else
                rc = EF_EINVAL;
        } else if (strcmp(name, "--slow-share") == 0)
            rc = parse_double(v, 0, 1, &cfg->slow_share);
        else if (strcmp(name, "--slow-bps") == 0)
            rc = parse_uint(v, 1, 1u << 30, &cfg->slow_bps);
        else if (strcmp(name, "--offline-share") == 0)
            rc = parse_double(v, 0, 1, &cfg->offline_share);
        else if (strcmp(name, "--offline-at") == 0)
            rc = parse_double(v, 0, 1e7, &cfg->offline_at_s);
        else if (strcmp(name, "--offline-for") == 0)
            rc = parse_double(v, 0, 1e7, &cfg->offline_for_s);
        else if (strcmp(name, "--status-interval") == 0)
            rc = parse_double(v, 0, 3600, &cfg->status_s);
        else if (strcmp(name, "--duration") == 0)
            rc = parse_double(v, 0, 1e7, &cfg->duration_s);
        else {
            fprintf(err, "edgefleet-sim: unknown option %s (see --help)\n", name);
            return EF_EINVAL;
        }
        if (rc != 0) {
            fprintf(err, "edgefleet-sim: bad value for %s: %s\n", name, v);
            return EF_EINVAL;
        }
    }
    if (!cfg->server_url[0] || !cfg->mqtt_url[0] || !cfg->enroll_token[0]) {
        fprintf(err, "edgefleet-sim: --server, --mqtt and --enroll-token are required\n");
        return EF_EINVAL;
    }
    if (cfg->status_s > 0 && cfg->status_s < 0.05) {
        fprintf(err, "edgefleet-sim: --status-interval must be 0 or at least 0.05\n");
        return EF_EINVAL;
    }
    char id[EF_DEVICE_ID_MAX + 1];
    if (sim_device_id(cfg, cfg->devices - 1, id, sizeof(id)) != 0) {
        fprintf(err, "edgefleet-sim: --prefix %s does not make valid device ids\n", cfg->prefix);
        return EF_EINVAL;
    }
    return 0;
}

/* True when index i of a share spread evenly over the fleet plays it. */
static bool in_share(double share, unsigned i)
{
    return floor((double)(i + 1) * share) > floor((double)i * share);
}

struct sim_role sim_role(const struct sim_config *cfg, unsigned i)
{
    struct sim_role r = {0};
    unsigned back = cfg->devices - 1 - i;
    r.failing = in_share(cfg->fail_share, i);
    if (!r.failing) {
        r.slow = in_share(cfg->slow_share, back);
        r.offline = in_share(cfg->offline_share, back);
    }
    return r;
}

unsigned sim_role_count(const struct sim_config *cfg, bool failing, bool slow, bool offline)
{
    unsigned n = 0;
    for (unsigned i = 0; i < cfg->devices; i++) {
        struct sim_role r = sim_role(cfg, i);
        n += (failing && r.failing) || (slow && r.slow) || (offline && r.offline);
    }
    return n;
}

unsigned long sim_fd_budget(const struct sim_config *cfg)
{
    /* Per device its broker connection and the socket pair libmosquitto
     * makes for every client; then stdio, the loop's epoll and signal pipes,
     * the thread pool's, curl's resolver pipes, files being written, and
     * room for reconnects overlapping old sockets. */
    return 3ul * cfg->devices + cfg->devices / 50 +
           (unsigned long)sim_http_clients(cfg) * (cfg->http_conns + 2ul) + 64;
}

unsigned sim_http_clients(const struct sim_config *cfg)
{
    return (cfg->devices + cfg->http_group - 1) / cfg->http_group;
}

double sim_drift_at(const struct sim_config *cfg, double t_s)
{
    if (t_s < cfg->drift_after_s)
        return 0;
    if (cfg->drift_ramp_s <= 0 || t_s >= cfg->drift_after_s + cfg->drift_ramp_s)
        return cfg->drift_shift;
    return cfg->drift_shift * (t_s - cfg->drift_after_s) / cfg->drift_ramp_s;
}

int sim_device_id(const struct sim_config *cfg, unsigned i, char *buf, size_t size)
{
    int n = snprintf(buf, size, "%s-%05u", cfg->prefix, cfg->first + i);
    if (n < 0 || (size_t)n >= size || !ef_device_id_valid(buf))
        return EF_ETOOBIG;
    return 0;
}
