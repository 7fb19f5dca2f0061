/*
 * main.c - edgefleet-agent: start-up order, timers, signals, shutdown, and
 * the `infer` subcommand.
 *
 * Start-up serves before it talks: the committed models are loaded and the
 * inference socket is open before any network, so a device whose server or
 * broker is away keeps answering with what it last committed.
 */
#include "agent/agent.h"
#include "agent/backend.h"
#include "agent/collect.h"
#include "agent/config.h"
#include "agent/deploy.h"
#include "agent/http_client.h"
#include "agent/identity.h"
#include "agent/inbox.h"
#include "agent/metrics.h"
#include "agent/model.h"
#include "agent/serve.h"
#include "agent/uplink.h"
#include "common/ef_error.h"
#include "common/fsutil.h"
#include "common/log.h"

#include <curl/curl.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void agent_shutdown(struct agent *a)
{
    if (a->stopping)
        return;
    a->stopping = true;
    ef_info("agent_stopping", "device=%s", a->cfg.device_id);
    identity_enroll_cancel(a);
    uplink_stop(a);
    if (a->handles_ready) {
        uv_close((uv_handle_t *)&a->poll_timer, NULL);
        uv_close((uv_handle_t *)&a->metrics_timer, NULL);
        uv_close((uv_handle_t *)&a->sigint, NULL);
        uv_close((uv_handle_t *)&a->sigterm, NULL);
    }
    inbox_stop(a->inbox);
    a->inbox = NULL;
    serve_stop(a->serve);
    a->serve = NULL;
    http_client_free(a->http);
    a->http = NULL;
    deploy_close(a->deploy);
    a->deploy = NULL;
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct agent *a = s->data;
    ef_info("signal", "signum=%d", signum);
    agent_shutdown(a);
}

static void on_poll_timer(uv_timer_t *t)
{
    agent_poll_desired(t->data);
}

/* Closes the metrics window as model_id's (NULL: no model served) and
 * publishes it with the sample collected meanwhile. */
static void publish_window(struct agent *a, const char *model_id)
{
    json_t *window = metrics_close_window(a->metrics, model_id);
    if (window)
        uplink_publish_telemetry(a, window);
    json_decref(window);
    /* The window's sample goes with it. */
    collect_flush(a->collect);
}

void agent_telemetry_now(struct agent *a)
{
    struct model *serving = a->deploy ? deploy_serving(a->deploy, EF_SLOT_PRODUCTION) : NULL;
    publish_window(a, serving ? serving->id : NULL);
    /* The next window is a whole interval from now. */
    uv_timer_again(&a->metrics_timer);
}

static void on_metrics_timer(uv_timer_t *t)
{
    agent_telemetry_now(t->data);
}

/* The inference endpoint serves the production slot and feeds its trial. */
static struct model *serving_production(void *ctx)
{
    struct agent *a = ctx;
    return a->deploy ? deploy_serving(a->deploy, EF_SLOT_PRODUCTION) : NULL;
}

static void observe_production(void *ctx, bool ok, double latency_ms)
{
    struct agent *a = ctx;
    if (a->deploy)
        deploy_observe(a->deploy, EF_SLOT_PRODUCTION, ok, latency_ms);
}

/* The shadow slot runs beside it, off the answer's path (serve.h). */
static struct model *serving_shadow(void *ctx)
{
    struct agent *a = ctx;
    return a->deploy ? deploy_serving(a->deploy, EF_SLOT_SHADOW) : NULL;
}

static void observe_shadow(void *ctx, bool ok, double latency_ms)
{
    struct agent *a = ctx;
    if (a->deploy)
        deploy_observe(a->deploy, EF_SLOT_SHADOW, ok, latency_ms);
}

/* Production inferences and their feedback feed data collection. */
static void sample_production(void *ctx, const char *id, const double *in, size_t n_in)
{
    struct agent *a = ctx;
    collect_offer(a->collect, id, in, n_in);
}

static void label_production(void *ctx, const char *id, size_t cls)
{
    struct agent *a = ctx;
    collect_label(a->collect, id, cls);
}

/* Drift is measured against the production model's baseline, and the
 * collection policy is the production model's. */
static void on_serving_changed(struct agent *a, enum ef_slot_kind slot, struct model *m)
{
    if (slot != EF_SLOT_PRODUCTION)
        return;
    /* A window speaks for one model: what the old one served until the swap
     * is published as its window, or the monitor would blame the new one. */
    const char *old = metrics_model(a->metrics);
    if (old[0] && (!m || strcmp(old, m->id) != 0)) {
        publish_window(a, old);
        /* The new model's first window is a whole interval: a short one
         * would report PSI from a handful of inputs, mostly noise. */
        uv_timer_again(&a->metrics_timer);
    }
    if (metrics_set_model(a->metrics, m ? m->manifest : NULL, m ? m->id : NULL) != 0)
        ef_warn("metrics_model_failed", "error=out_of_memory");
    collect_set_model(a->collect, m ? m->id : NULL, m ? m->manifest->input_size : 0,
                      m ? m->manifest->output_size : 0);
}

/* Network start, once the device has an identity. */
static void go_online(struct agent *a)
{
    int rc = uplink_start(a);
    if (rc != 0) {
        ef_error("uplink_failed", "error=%s", ef_errname(rc));
        a->exit_rc = rc;
        agent_shutdown(a);
        return;
    }
    uint64_t poll_ms = (uint64_t)a->cfg.poll_interval_s * 1000;
    uv_timer_start(&a->poll_timer, on_poll_timer, poll_ms, poll_ms);
    agent_poll_desired(a);
}

static void on_enrolled(struct agent *a, int rc)
{
    if (rc != 0) {
        if (rc != EF_EBUSY) {
            ef_error("enroll_failed", "error=%s", ef_errname(rc));
            a->exit_rc = rc;
        }
        agent_shutdown(a);
        return;
    }
    go_online(a);
}

/* Creates the data directory and its subdirectories. */
static int prepare_dirs(const struct agent_config *cfg)
{
    static const char *const subdirs[] = {"models", "downloads", "inbox"};
    char path[700];
    int rc = ef_mkdir_p(cfg->data_dir, 0700);
    for (size_t i = 0; rc == 0 && i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", cfg->data_dir, subdirs[i]);
        rc = ef_mkdir_p(path, 0700);
    }
    return rc;
}

static void close_any(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static int agent_run(struct agent *a)
{
    int rc, enrolled;
    if ((rc = prepare_dirs(&a->cfg)) != 0) {
        fprintf(stderr, "edgefleet-agent: cannot create %s: %s\n", a->cfg.data_dir,
                ef_strerror(rc));
        return rc;
    }
    if (!a->cfg.socket_path[0]) {
        int n = snprintf(a->cfg.socket_path, sizeof(a->cfg.socket_path), "%.480s/infer.sock",
                         a->cfg.data_dir);
        if (n < 0 || (size_t)n >= sizeof(a->cfg.socket_path) || strlen(a->cfg.data_dir) > 480) {
            fprintf(stderr, "edgefleet-agent: --data-dir is too long for a socket path\n");
            return EF_ETOOBIG;
        }
    }
    if (!a->cfg.backend_dir[0] &&
        backends_default_dir(a->cfg.backend_dir, sizeof(a->cfg.backend_dir)) != 0) {
        fprintf(stderr, "edgefleet-agent: cannot find the backend modules; use --backend-dir\n");
        return EF_ENOENT;
    }
    if ((rc = uv_loop_init(&a->loop)) != 0)
        return EF_EIO;
    enrolled = identity_load(a);
    if (enrolled != 0 && enrolled != EF_ENOENT) {
        fprintf(stderr, "edgefleet-agent: cannot use the identity in %s: %s\n", a->cfg.data_dir,
                ef_strerror(enrolled));
        rc = enrolled;
        goto out;
    }
    if ((rc = backends_open(a->cfg.backend_dir, &a->backends)) != 0) {
        fprintf(stderr, "edgefleet-agent: no inference backend in %s\n", a->cfg.backend_dir);
        goto out;
    }
    struct serve_source source = {
        .serving = serving_production,
        .observe = observe_production,
        .shadow = serving_shadow,
        .shadow_observe = observe_shadow,
        .sample = sample_production,
        .label = label_production,
        .ctx = a,
    };
    uint64_t seed;
    randombytes_buf(&seed, sizeof(seed));
    a->serving_changed = on_serving_changed;
    if ((rc = metrics_new(&a->metrics)) != 0 || (rc = http_client_new(&a->loop, &a->http)) != 0 ||
        (rc = collect_new(a->http, a->cfg.server_url, a->cfg.device_id, a->id.device_token, seed,
                          &a->collect)) != 0 ||
        (rc = deploy_open(a, &a->deploy)) != 0 ||
        (rc = serve_start(&a->loop, a->cfg.socket_path, &source, a->metrics, &a->serve)) != 0 ||
        (rc = inbox_start(a, &a->inbox)) != 0) {
        fprintf(stderr, "edgefleet-agent: cannot start: %s\n", ef_strerror(rc));
        goto out;
    }
    serve_set_shadow_share(a->serve, a->cfg.shadow_share);
    uv_signal_init(&a->loop, &a->sigint);
    uv_signal_init(&a->loop, &a->sigterm);
    a->sigint.data = a->sigterm.data = a;
    uv_signal_start(&a->sigint, on_signal, SIGINT);
    uv_signal_start(&a->sigterm, on_signal, SIGTERM);
    uv_timer_init(&a->loop, &a->poll_timer);
    uv_timer_init(&a->loop, &a->metrics_timer);
    a->poll_timer.data = a->metrics_timer.data = a;
    a->handles_ready = true;
    uint64_t window_ms = (uint64_t)a->cfg.metrics_interval_s * 1000;
    uv_timer_start(&a->metrics_timer, on_metrics_timer, window_ms, window_ms);
    ef_info("agent_started", "device=%s socket=%s enrolled=%s", a->cfg.device_id,
            a->cfg.socket_path, enrolled == 0 ? "yes" : "no");
    if (enrolled == 0)
        go_online(a);
    else if ((rc = identity_enroll(a, on_enrolled)) != 0)
        agent_shutdown(a);
    uv_run(&a->loop, UV_RUN_DEFAULT);
    /* A failure found on the loop (enrollment refused, bad broker URL). */
    if (rc == 0)
        rc = a->exit_rc;
out:
    agent_shutdown(a);
    /* Close whatever is left (handles of modules that failed half-way) and
     * let their close callbacks run before the loop goes. */
    uv_walk(&a->loop, close_any, NULL);
    uv_run(&a->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&a->loop) != 0)
        ef_warn("loop_not_empty", "reason=\"handles still open at exit\"");
    collect_free(a->collect);
    metrics_free(a->metrics);
    backends_close(a->backends);
    sodium_memzero(&a->id, sizeof(a->id));
    return rc;
}

static int infer_main(int argc, char **argv)
{
    const char *socket_path = NULL, *data_dir = NULL, *input = NULL;
    char path[600];
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            puts("usage: edgefleet-agent infer [--socket PATH | --data-dir DIR] '[x1, ...]'\n"
                 "Sends one input vector to the agent's inference socket (DIR/infer.sock\n"
                 "with --data-dir, else ./infer.sock) and prints the answer: one JSON\n"
                 "object with output, class (argmax index), label (when the model has\n"
                 "labels), model and latency_us.");
            return 0;
        }
        if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc)
            socket_path = argv[++i];
        else if (strcmp(argv[i], "--data-dir") == 0 && i + 1 < argc)
            data_dir = argv[++i];
        else if (!input && argv[i][0] != '-')
            input = argv[i];
        else {
            fprintf(stderr, "edgefleet-agent infer: unexpected argument: %s\n", argv[i]);
            return 2;
        }
    }
    if (!input) {
        fprintf(stderr, "edgefleet-agent infer: give the input vector, e.g. '[0.1, 0.2]'\n");
        return 2;
    }
    if (!socket_path) {
        snprintf(path, sizeof(path), "%s/infer.sock", data_dir ? data_dir : ".");
        socket_path = path;
    }
    return serve_client_infer(socket_path, input);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "infer") == 0)
        return infer_main(argc - 2, argv + 2);
    struct agent *a = calloc(1, sizeof(*a));
    if (!a)
        return 1;
    config_defaults(&a->cfg);
    int rc = config_parse(argc - 1, argv + 1, &a->cfg, stderr);
    if (rc == 1) {
        free(a);
        return 0;
    }
    if (rc != 0 || config_check(&a->cfg, stderr) != 0) {
        free(a);
        return 2;
    }
    if (ef_crypto_init() != 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "edgefleet-agent: libsodium or libcurl failed to initialise\n");
        free(a);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    rc = agent_run(a);
    curl_global_cleanup();
    sodium_memzero(a, sizeof(*a));
    free(a);
    return rc == 0 ? 0 : 1;
}
