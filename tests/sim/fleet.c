/*
 * fleet.c - the simulated devices on one loop: each a `struct agent` driven
 * by the agent's own modules, started (ramped), taken offline and back,
 * fed inferences, and stopped; plus the status lines.
 *
 * What edgefleet-agent's main.c does for its one agent (start-up order,
 * timers, telemetry windows) is done here per device; the protocol itself
 * (enrollment, uplink, desired state, deployment) is the agent's code.
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include "tests/sim/sim.h"
#include "agent/agent.h"
#include "agent/backend.h"
#include "agent/config.h"
#include "agent/deploy.h"
#include "agent/http_client.h"
#include "agent/identity.h"
#include "agent/metrics.h"
#include "agent/model.h"
#include "agent/mqtt_link.h"
#include "agent/uplink.h"
#include "common/clock.h"
#include "common/ef_error.h"
#include "common/fsutil.h"
#include "common/log.h"

#include <ftw.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BASE_CACHE 8 /* models whose base input vector is remembered */

struct sim;

/* One device: the agent and what the simulator drives around it. */
struct sim_device {
    struct agent a; /* first: the agent's callbacks hand us &a */
    struct sim *sim;
    unsigned index;
    struct sim_role role;
    uv_timer_t start_timer;   /* the ramp */
    uv_timer_t infer_timer;   /* next inference */
    uv_timer_t offline_timer; /* drop offline, then come back */
    bool started;             /* handles initialised */
    bool online;              /* uplink started and not dropped */
    bool dropped;             /* went offline at least once */
    bool dead;                /* could not start or enrollment refused */
};

/* The input vector a model's inferences start from: its first golden vector. */
struct base_input {
    char id[96];
    double *in; /* owned, input_size values */
    size_t n;
};

struct sim {
    const struct sim_config *cfg;
    uv_loop_t loop;
    struct backends *backends; /* owned, shared by every device but the failing ones */
    struct http_client **http; /* owned: one per cfg->http_group devices */
    unsigned n_http;           /* entries of http */
    struct sim_device *dev;    /* cfg->devices of them */
    unsigned dev_ready;        /* devices whose start timer exists */
    uv_timer_t status_timer, stop_timer;
    uv_signal_t sigint, sigterm;
    FILE *out;
    char data_dir[512];
    bool temp_dir; /* data_dir was made here: removed at exit */
    bool stopping;
    uint64_t start_ms;     /* uv_now at the start */
    uint64_t rng;          /* xorshift64 state of the noise */
    uint64_t inferences;   /* served, all devices */
    uint64_t infer_errors; /* failed, all devices */
    struct base_input base[BASE_CACHE];
    unsigned base_next;
    double *scratch_in, *scratch_out; /* one inference at a time: the loop thread */
    size_t scratch_size;
};

static struct sim_device *dev_of(struct agent *a)
{
    return (struct sim_device *)((char *)a - offsetof(struct sim_device, a));
}

static double rnd_unit(struct sim *s)
{
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    return (double)(s->rng >> 11) / 9007199254740992.0;
}

/* ---- telemetry, the agent.h hook main.c provides for the real agent --- */

void agent_telemetry_now(struct agent *a)
{
    struct model *serving = a->deploy ? deploy_serving(a->deploy, EF_SLOT_PRODUCTION) : NULL;
    json_t *window =
        a->metrics ? metrics_close_window(a->metrics, serving ? serving->id : NULL) : NULL;
    if (window && a->mqtt)
        uplink_publish_telemetry(a, window);
    json_decref(window);
    if (dev_of(a)->started)
        uv_timer_again(&a->metrics_timer);
}

static void on_metrics_timer(uv_timer_t *t)
{
    agent_telemetry_now(t->data);
}

static void on_poll_timer(uv_timer_t *t)
{
    struct sim_device *d = dev_of(t->data);
    if (d->online)
        agent_poll_desired(&d->a);
}

/* ---- inference ---------------------------------------------------------- */

/* The base input of model m (cached by model id; every device running the
 * same version shares it), or NULL when out of memory. */
static const struct base_input *base_of(struct sim *s, const struct model *m)
{
    for (unsigned i = 0; i < BASE_CACHE; i++)
        if (s->base[i].in && strcmp(s->base[i].id, m->id) == 0)
            return &s->base[i];
    size_t n = m->manifest->input_size, nout = m->manifest->output_size;
    double *in = calloc(n, sizeof(double)), *out = calloc(nout ? nout : 1, sizeof(double));
    double tol = 0;
    struct base_input *b = &s->base[s->base_next++ % BASE_CACHE];
    if (!in || !out) {
        free(in);
        free(out);
        return NULL;
    }
    if (m->manifest->test_vector_count == 0 ||
        ef_manifest_test_vector(m->manifest, 0, in, out, &tol) != 0)
        for (size_t k = 0; k < n; k++)
            in[k] = 0.5;
    free(out);
    free(b->in);
    snprintf(b->id, sizeof(b->id), "%s", m->id);
    b->in = in;
    b->n = n;
    return b;
}

static bool scratch_fit(struct sim *s, size_t n)
{
    if (n <= s->scratch_size)
        return true;
    double *in = realloc(s->scratch_in, n * sizeof(double));
    if (in)
        s->scratch_in = in;
    double *out = realloc(s->scratch_out, n * sizeof(double));
    if (out)
        s->scratch_out = out;
    if (!in || !out)
        return false;
    s->scratch_size = n;
    return true;
}

/* One inference on the serving model: the base input shifted by the drift
 * profile plus noise, run through the backend (or a synthetic cost), fed to
 * the metrics window and to the trial judge, as the agent's endpoint does. */
static void on_infer_timer(uv_timer_t *t)
{
    struct sim_device *d = t->data;
    struct sim *s = d->sim;
    struct agent *a = &d->a;
    struct model *m = a->deploy ? deploy_serving(a->deploy, EF_SLOT_PRODUCTION) : NULL;
    const struct base_input *b = m ? base_of(s, m) : NULL;
    size_t nout = m ? m->manifest->output_size : 0;
    if (!b || !scratch_fit(s, b->n > nout ? b->n : nout))
        return;
    double drift = sim_drift_at(s->cfg, (double)(uv_now(&s->loop) - s->start_ms) / 1000.0);
    for (size_t k = 0; k < b->n; k++)
        s->scratch_in[k] = b->in[k] + drift + s->cfg->noise * (2 * rnd_unit(s) - 1);
    uint64_t t0 = uv_hrtime();
    bool ok = true;
    if (s->cfg->infer_cost_us) {
        while (uv_hrtime() - t0 < (uint64_t)s->cfg->infer_cost_us * 1000)
            ;
    } else {
        ok = model_run(m, s->scratch_in, b->n, s->scratch_out, nout) == 0;
        for (size_t k = 0; ok && k < nout; k++)
            ok = isfinite(s->scratch_out[k]);
    }
    if (d->role.failing && s->cfg->fail_mode == SIM_FAIL_TRIAL)
        ok = false;
    double ms = (double)(uv_hrtime() - t0) / 1e6;
    s->inferences++;
    s->infer_errors += !ok;
    metrics_observe(a->metrics, ok, ms);
    deploy_observe(a->deploy, EF_SLOT_PRODUCTION, ok, ms);
}

/* ---- online, offline ---------------------------------------------------- */

static void go_online(struct sim_device *d)
{
    struct agent *a = &d->a;
    int rc = uplink_start(a);
    if (rc != 0) {
        ef_error("sim_uplink_failed", "device=%s error=%s", a->cfg.device_id, ef_errname(rc));
        d->dead = true;
        return;
    }
    d->online = true;
    uint64_t poll_ms = (uint64_t)a->cfg.poll_interval_s * 1000;
    uv_timer_start(&a->poll_timer, on_poll_timer, poll_ms, poll_ms);
    agent_poll_desired(a);
}

static void on_offline_timer(uv_timer_t *t)
{
    struct sim_device *d = t->data;
    const struct sim_config *cfg = d->sim->cfg;
    if (d->sim->stopping)
        return;
    if (d->online) {
        ef_info("sim_offline", "device=%s for_s=%.1f", d->a.cfg.device_id, cfg->offline_for_s);
        uplink_stop(&d->a);
        uv_timer_stop(&d->a.poll_timer);
        d->online = false;
        d->dropped = true;
        if (cfg->offline_for_s > 0)
            uv_timer_start(&d->offline_timer, on_offline_timer,
                           (uint64_t)(cfg->offline_for_s * 1000), 0);
    } else {
        ef_info("sim_online", "device=%s", d->a.cfg.device_id);
        go_online(d);
    }
}

static void device_online(struct sim_device *d)
{
    const struct sim_config *cfg = d->sim->cfg;
    struct agent *a = &d->a;
    go_online(d);
    if (d->dead)
        return;
    /* Windows and inferences start at a random phase, so that the fleet's
     * telemetry does not arrive in one burst every interval. */
    uint64_t window_ms = (uint64_t)cfg->metrics_s * 1000;
    uv_timer_start(&a->metrics_timer, on_metrics_timer,
                   1 + (uint64_t)(rnd_unit(d->sim) * (double)window_ms), window_ms);
    if (cfg->infer_rate > 0) {
        uint64_t every = (uint64_t)(1000.0 / cfg->infer_rate);
        every = every ? every : 1;
        uv_timer_start(&d->infer_timer, on_infer_timer,
                       1 + (uint64_t)(rnd_unit(d->sim) * (double)every), every);
    }
    if (d->role.offline)
        uv_timer_start(&d->offline_timer, on_offline_timer, (uint64_t)(cfg->offline_at_s * 1000),
                       0);
}

static void on_enrolled(struct agent *a, int rc)
{
    struct sim_device *d = dev_of(a);
    if (rc != 0) {
        if (rc != EF_EBUSY) {
            ef_error("sim_enroll_failed", "device=%s error=%s", a->cfg.device_id, ef_errname(rc));
            d->dead = true;
        }
        return;
    }
    device_online(d);
}

/* ---- start, stop -------------------------------------------------------- */

static int device_config(struct sim *s, struct sim_device *d)
{
    const struct sim_config *cfg = s->cfg;
    struct agent_config *c = &d->a.cfg;
    config_defaults(c);
    if (sim_device_id(cfg, d->index, c->device_id, sizeof(c->device_id)) != 0)
        return EF_EINVAL;
    snprintf(c->server_url, sizeof(c->server_url), "%s", cfg->server_url);
    snprintf(c->mqtt_url, sizeof(c->mqtt_url), "%s", cfg->mqtt_url);
    snprintf(c->enroll_token, sizeof(c->enroll_token), "%s", cfg->enroll_token);
    snprintf(c->device_class, sizeof(c->device_class), "%s", cfg->device_class);
    snprintf(c->tags, sizeof(c->tags), "%s", cfg->tags);
    int n = snprintf(c->data_dir, sizeof(c->data_dir), "%s/%s", s->data_dir, c->device_id);
    if (n < 0 || (size_t)n >= sizeof(c->data_dir))
        return EF_ETOOBIG;
    c->metrics_interval_s = cfg->metrics_s;
    c->poll_interval_s = cfg->poll_s;
    c->trial_s = cfg->trial_s;
    if (d->role.slow) {
        c->download_max_bps = cfg->slow_bps;
        /* A slow link is not a stalled one: keep the agent from aborting it. */
        if (c->download_floor_bps > cfg->slow_bps / 2)
            c->download_floor_bps = cfg->slow_bps / 2;
    }
    return 0;
}

static void device_start(struct sim_device *d)
{
    struct sim *s = d->sim;
    struct agent *a = &d->a;
    char path[700];
    int rc;
    if ((rc = device_config(s, d)) != 0)
        goto fail;
    static const char *const subdirs[] = {"models", "downloads"};
    if ((rc = ef_mkdir_p(a->cfg.data_dir, 0700)) != 0)
        goto fail;
    for (size_t i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", a->cfg.data_dir, subdirs[i]);
        if ((rc = ef_mkdir_p(path, 0700)) != 0)
            goto fail;
    }
    int enrolled = identity_load(a);
    if (enrolled != 0 && enrolled != EF_ENOENT) {
        rc = enrolled;
        goto fail;
    }
    a->backends = d->role.failing && s->cfg->fail_mode == SIM_FAIL_VERIFY ? NULL : s->backends;
    a->http = s->http[d->index / s->cfg->http_group];
    if ((rc = metrics_new(&a->metrics)) != 0 || (rc = deploy_open(a, &a->deploy)) != 0)
        goto fail;
    uv_timer_init(&s->loop, &a->poll_timer);
    uv_timer_init(&s->loop, &a->metrics_timer);
    uv_timer_init(&s->loop, &d->infer_timer);
    uv_timer_init(&s->loop, &d->offline_timer);
    a->poll_timer.data = a->metrics_timer.data = a;
    d->infer_timer.data = d->offline_timer.data = d;
    d->started = true;
    if (enrolled == 0)
        device_online(d);
    else if ((rc = identity_enroll(a, on_enrolled)) != 0)
        goto fail;
    return;
fail:
    ef_error("sim_device_failed", "device=%s error=%s", a->cfg.device_id, ef_errname(rc));
    d->dead = true;
}

static void on_start_timer(uv_timer_t *t)
{
    struct sim_device *d = t->data;
    uv_close((uv_handle_t *)t, NULL);
    if (!d->sim->stopping)
        device_start(d);
}

static void device_stop(struct sim_device *d)
{
    struct agent *a = &d->a;
    if (!uv_is_closing((uv_handle_t *)&d->start_timer))
        uv_close((uv_handle_t *)&d->start_timer, NULL);
    if (!d->started)
        return;
    a->stopping = true;
    identity_enroll_cancel(a);
    if (d->online)
        uplink_stop(a);
    d->online = false;
    uv_close((uv_handle_t *)&a->poll_timer, NULL);
    uv_close((uv_handle_t *)&a->metrics_timer, NULL);
    uv_close((uv_handle_t *)&d->infer_timer, NULL);
    uv_close((uv_handle_t *)&d->offline_timer, NULL);
    deploy_close(a->deploy);
    a->deploy = NULL;
    d->started = false;
}

/* ---- status ------------------------------------------------------------- */

static void json_count(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    json_object_set_new(obj, key, json_integer(v ? json_integer_value(v) + 1 : 1));
}

/* Prints line (stolen; NULL when out of memory: nothing is printed) as
 * one compact JSON line on the status output. */
static void print_line(struct sim *s, json_t *line)
{
    char *text = line ? json_dumps(line, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
    if (text) {
        fprintf(s->out, "%s\n", text);
        fflush(s->out);
    }
    free(text);
    json_decref(line);
}

/* One status line: the fleet as the devices themselves see it. */
static void print_status(struct sim *s, const char *event)
{
    unsigned enrolled = 0, connected = 0, dead = 0, offline = 0;
    json_t *states = json_object(), *committed = json_object();
    char key[128];
    for (unsigned i = 0; i < s->cfg->devices; i++) {
        struct sim_device *d = &s->dev[i];
        enrolled += d->a.id.device_token[0] != '\0';
        connected += mqtt_link_connected(d->a.mqtt);
        dead += d->dead;
        offline += d->dropped && !d->online;
        if (!d->a.deploy)
            continue;
        json_t *desc = deploy_describe(d->a.deploy);
        json_t *prod = json_object_get(json_object_get(desc, "slots"), "production");
        const char *state = json_string_value(json_object_get(prod, "state"));
        json_t *c = json_object_get(prod, "committed");
        if (state)
            json_count(states, state);
        if (json_is_object(c)) {
            snprintf(key, sizeof(key), "%s@%lld", json_string_value(json_object_get(c, "model")),
                     (long long)json_integer_value(json_object_get(c, "version")));
            json_count(committed, key);
        }
        json_decref(desc);
    }
    json_t *line = json_pack(
        "{s:s, s:I, s:f, s:i, s:i, s:i, s:i, s:i, s:o, s:o, s:I, s:I}", "event", event, "unix_ms",
        (json_int_t)ef_now_ms(), "t_s", (double)(uv_now(&s->loop) - s->start_ms) / 1000.0,
        "devices", (int)s->cfg->devices, "enrolled", (int)enrolled, "connected", (int)connected,
        "offline", (int)offline, "dead", (int)dead, "states", states, "committed", committed,
        "inferences", (json_int_t)s->inferences, "inference_errors", (json_int_t)s->infer_errors);
    print_line(s, line);
}

static void on_status_timer(uv_timer_t *t)
{
    print_status(t->data, "status");
}

static void print_start(struct sim *s)
{
    json_t *failing = json_array(), *slow = json_array(), *offline = json_array();
    char id[EF_DEVICE_ID_MAX + 1];
    for (unsigned i = 0; i < s->cfg->devices; i++) {
        if (sim_device_id(s->cfg, i, id, sizeof(id)) != 0)
            continue;
        if (s->dev[i].role.failing)
            json_array_append_new(failing, json_string(id));
        if (s->dev[i].role.slow)
            json_array_append_new(slow, json_string(id));
        if (s->dev[i].role.offline)
            json_array_append_new(offline, json_string(id));
    }
    json_t *line = json_pack("{s:s, s:i, s:s, s:s, s:o, s:o, s:o}", "event", "start", "devices",
                             (int)s->cfg->devices, "data_dir", s->data_dir, "fail_mode",
                             s->cfg->fail_mode == SIM_FAIL_TRIAL ? "trial" : "verify", "failing",
                             failing, "slow", slow, "offline", offline);
    print_line(s, line);
}

/* ---- the run ------------------------------------------------------------ */

static void sim_shutdown(struct sim *s)
{
    if (s->stopping)
        return;
    s->stopping = true;
    print_status(s, "stop");
    for (unsigned i = 0; i < s->dev_ready; i++)
        device_stop(&s->dev[i]);
    /* Ends every request still out: their callbacks run with EF_EBUSY. */
    for (unsigned i = 0; i < s->n_http; i++) {
        http_client_free(s->http[i]);
        s->http[i] = NULL;
    }
    uv_close((uv_handle_t *)&s->status_timer, NULL);
    uv_close((uv_handle_t *)&s->stop_timer, NULL);
    uv_close((uv_handle_t *)&s->sigint, NULL);
    uv_close((uv_handle_t *)&s->sigterm, NULL);
}

static void on_signal(uv_signal_t *h, int signum)
{
    ef_info("signal", "signum=%d", signum);
    sim_shutdown(h->data);
}

static void on_stop_timer(uv_timer_t *t)
{
    sim_shutdown(t->data);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 ? 0 : -1;
}

static void close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

int sim_run(const struct sim_config *cfg, FILE *out)
{
    struct sim *s = calloc(1, sizeof(*s));
    char backend_dir[512];
    int rc = EF_ENOMEM;
    bool loop_ready = false;
    if (!s)
        return EF_ENOMEM;
    s->cfg = cfg;
    s->out = out;
    s->rng = 0x9E3779B97F4A7C15ull ^ ((uint64_t)cfg->seed * 0x100000001B3ull);
    if (!(s->dev = calloc(cfg->devices, sizeof(*s->dev))))
        goto out;
    if (cfg->data_dir[0]) {
        snprintf(s->data_dir, sizeof(s->data_dir), "%s", cfg->data_dir);
        if ((rc = ef_mkdir_p(s->data_dir, 0700)) != 0) {
            fprintf(stderr, "edgefleet-sim: cannot create %s: %s\n", s->data_dir, ef_strerror(rc));
            goto out;
        }
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(s->data_dir, sizeof(s->data_dir), "%s/edgefleet-sim.XXXXXX",
                 tmp && tmp[0] ? tmp : "/tmp");
        if (!mkdtemp(s->data_dir)) {
            fprintf(stderr, "edgefleet-sim: cannot create a temporary directory\n");
            rc = EF_EIO;
            goto out;
        }
        s->temp_dir = true;
    }
    if (cfg->backend_dir[0])
        snprintf(backend_dir, sizeof(backend_dir), "%s", cfg->backend_dir);
    else if (backends_default_dir(backend_dir, sizeof(backend_dir)) != 0) {
        fprintf(stderr, "edgefleet-sim: cannot find the backend modules; use --backend-dir\n");
        rc = EF_ENOENT;
        goto out;
    }
    if (uv_loop_init(&s->loop) != 0) {
        rc = EF_EIO;
        goto out;
    }
    loop_ready = true;
    uv_timer_init(&s->loop, &s->status_timer);
    uv_timer_init(&s->loop, &s->stop_timer);
    uv_signal_init(&s->loop, &s->sigint);
    uv_signal_init(&s->loop, &s->sigterm);
    s->status_timer.data = s->stop_timer.data = s->sigint.data = s->sigterm.data = s;
    if ((rc = backends_open(backend_dir, &s->backends)) != 0) {
        fprintf(stderr, "edgefleet-sim: no inference backend in %s\n", backend_dir);
        goto out;
    }
    /* Devices share HTTP clients in groups: libcurl's multi handle does work
     * linear in its transfers when one ends, so one multi for thousands of
     * devices spends the simulator's CPU there rather than on the devices. */
    if (!(s->http = calloc(sim_http_clients(cfg), sizeof(*s->http)))) {
        rc = EF_ENOMEM;
        goto out;
    }
    for (; s->n_http < sim_http_clients(cfg); s->n_http++) {
        if ((rc = http_client_new(&s->loop, &s->http[s->n_http])) != 0 ||
            (rc = http_client_set_max_connections(s->http[s->n_http], (long)cfg->http_conns)) !=
                0) {
            fprintf(stderr, "edgefleet-sim: cannot start the HTTP clients: %s\n", ef_strerror(rc));
            s->n_http++; /* freed with the others */
            goto out;
        }
    }
    uv_signal_start(&s->sigint, on_signal, SIGINT);
    uv_signal_start(&s->sigterm, on_signal, SIGTERM);
    s->start_ms = uv_now(&s->loop);
    for (unsigned i = 0; i < cfg->devices; i++) {
        struct sim_device *d = &s->dev[i];
        d->sim = s;
        d->index = i;
        d->role = sim_role(cfg, i);
        d->a.shared_loop = &s->loop;
        uv_timer_init(&s->loop, &d->start_timer);
        d->start_timer.data = d;
        s->dev_ready = i + 1;
        uv_timer_start(&d->start_timer, on_start_timer, (uint64_t)cfg->ramp_ms * i / cfg->devices,
                       0);
    }
    print_start(s);
    if (cfg->status_s > 0) {
        uint64_t every = (uint64_t)(cfg->status_s * 1000);
        uv_timer_start(&s->status_timer, on_status_timer, every, every);
    }
    if (cfg->duration_s > 0)
        uv_timer_start(&s->stop_timer, on_stop_timer, (uint64_t)(cfg->duration_s * 1000), 0);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    rc = 0;
out:
    if (loop_ready) {
        sim_shutdown(s);
        uv_walk(&s->loop, close_any, NULL);
        uv_run(&s->loop, UV_RUN_DEFAULT);
        if (uv_loop_close(&s->loop) != 0)
            ef_warn("loop_not_empty", "reason=\"handles still open at exit\"");
    }
    for (unsigned i = 0; s->dev && i < cfg->devices; i++) {
        metrics_free(s->dev[i].a.metrics);
        sodium_memzero(&s->dev[i].a.id, sizeof(s->dev[i].a.id));
    }
    for (unsigned i = 0; i < BASE_CACHE; i++)
        free(s->base[i].in);
    free(s->scratch_in);
    free(s->scratch_out);
    backends_close(s->backends);
    if (s->temp_dir && !cfg->keep)
        (void)nftw(s->data_dir, rm_entry, 32, FTW_DEPTH | FTW_PHYS);
    else if (s->temp_dir)
        fprintf(stderr, "edgefleet-sim: kept %s\n", s->data_dir);
    free(s->http);
    free(s->dev);
    free(s);
    return rc;
}
