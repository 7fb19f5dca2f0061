/*
 * main.c - edgefleet-server's command line: init, serve, routes.
 */
#include "server/auth.h"
#include "server/checkin.h"
#include "server/db.h"
#include "server/db_fleet.h"
#include "server/http.h"
#include "server/monitor.h"
#include "server/mqtt.h"
#include "server/report_queue.h"
#include "server/rollout.h"
#include "server/server.h"
#include "server/store.h"
#include "server/telemetry.h"
#include "server/web.h"
#include "common/clock.h"
#include "common/ef_error.h"
#include "common/fsutil.h"
#include "common/log.h"

#include <dirent.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char usage[] =
    "usage: edgefleet-server COMMAND [OPTIONS]\n"
    "\n"
    "The central daemon of edgefleet: model registry, fleet, signed assignments,\n"
    "HTTP API and MQTT publisher.\n"
    "\n"
    "commands:\n"
    "  init  --data-dir DIR        create the database, the release and server keys,\n"
    "                              and an admin API token (printed as the last line)\n"
    "  serve --data-dir DIR [--listen HOST:PORT] [--mqtt mqtt://HOST:PORT] [options]\n"
    "                              run the HTTP API and the broker client until\n"
    "                              SIGINT or SIGTERM\n"
    "  routes                      print the HTTP routes, one 'METHOD PATH' a line\n"
    "\n"
    "serve options:\n"
    "  --listen HOST:PORT          IPv4 address and port (default 127.0.0.1:8080; port 0\n"
    "                              picks a free one, logged at start)\n"
    "  --mqtt URL                  broker, mqtt://[USER@]HOST:PORT (default: run without\n"
    "                              one)\n"
    "  --mqtt-password-file FILE   the broker password of USER, read from FILE\n"
    "  --web-dir DIR               the dashboard served at / (default: " EF_WEB_DIR ")\n"
    "  --node-modules DIR          npm's node_modules; /vendor/uplot/ serves\n"
    "                              DIR/" WEB_UPLOT_SUBDIR " (default: " EF_NODE_MODULES ")\n"
    "  --threads N                 HTTP worker threads (default 4)\n"
    "  --max-connections N         concurrent HTTP connections (default 1024)\n"
    "  --timeout SECONDS           idle connection timeout (default 30)\n"
    "  --max-upload BYTES          largest artifact upload (default 67108864)\n"
    "  --rollout-tick-ms MS        how often the rollout engine evaluates running\n"
    "                              rollouts (default 1000)\n"
    "  --monitor-tick-ms MS        how often the monitor evaluates trigger rules\n"
    "                              (default 5000)\n"
    "  --retrain-command CMD       run /bin/sh -c CMD when a retrain alert fires, with\n"
    "                              EF_MODEL, EF_VERSION, EF_DATASET_ID, EF_ALERT_ID,\n"
    "                              EF_TRIGGER_ID, EF_REASON and EF_SERVER_URL set\n"
    "  --telemetry-retention-hours H\n"
    "                              hours raw telemetry windows are kept (default 168)\n"
    "  --log-level LEVEL           debug, info, warn or error (default info;\n"
    "                              env EF_LOG_LEVEL)\n"
    "  -h, --help                  this text\n";

enum {
    OPT_DATA_DIR = 1,
    OPT_LISTEN,
    OPT_MQTT,
    OPT_THREADS,
    OPT_MAX_CONN,
    OPT_TIMEOUT,
    OPT_MAX_UPLOAD,
    OPT_LOG_LEVEL,
    OPT_MQTT_PASSWORD_FILE,
    OPT_TELEMETRY_RETENTION,
    OPT_ROLLOUT_TICK,
    OPT_WEB_DIR,
    OPT_NODE_MODULES,
    OPT_MONITOR_TICK,
    OPT_RETRAIN_COMMAND,
};

static const struct option long_options[] = {
    {"data-dir", required_argument, NULL, OPT_DATA_DIR},
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"mqtt", required_argument, NULL, OPT_MQTT},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"max-connections", required_argument, NULL, OPT_MAX_CONN},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"max-upload", required_argument, NULL, OPT_MAX_UPLOAD},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"mqtt-password-file", required_argument, NULL, OPT_MQTT_PASSWORD_FILE},
    {"telemetry-retention-hours", required_argument, NULL, OPT_TELEMETRY_RETENTION},
    {"rollout-tick-ms", required_argument, NULL, OPT_ROLLOUT_TICK},
    {"web-dir", required_argument, NULL, OPT_WEB_DIR},
    {"node-modules", required_argument, NULL, OPT_NODE_MODULES},
    {"monitor-tick-ms", required_argument, NULL, OPT_MONITOR_TICK},
    {"retrain-command", required_argument, NULL, OPT_RETRAIN_COMMAND},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int parse_count(const char *s, unsigned long long max, unsigned long long *out)
{
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (!s[0] || *end || v == 0 || v > max)
        return EF_EINVAL;
    *out = v;
    return 0;
}

static int parse_listen(const char *s, struct server_config *cfg)
{
    const char *colon = strrchr(s, ':');
    unsigned long long port = 0;
    if (!colon || (size_t)(colon - s) >= sizeof(cfg->listen_host) || colon == s)
        return EF_EINVAL;
    if (strcmp(colon + 1, "0") != 0 && parse_count(colon + 1, 65535, &port) != 0)
        return EF_EINVAL;
    memcpy(cfg->listen_host, s, (size_t)(colon - s));
    cfg->listen_host[colon - s] = '\0';
    cfg->listen_port = (uint16_t)port;
    return 0;
}

/* Parses the options after the command into cfg; prints the problem. */
static int parse_options(int argc, char **argv, struct server_config *cfg)
{
    int opt;
    unsigned long long v;
    snprintf(cfg->listen_host, sizeof(cfg->listen_host), "127.0.0.1");
    cfg->listen_port = 8080;
    cfg->threads = 4;
    cfg->max_connections = 1024;
    cfg->timeout_s = 30;
    cfg->max_upload = 64u << 20;
    cfg->max_json = 64u << 10;
    cfg->rollout_tick_ms = 1000;
    cfg->monitor_tick_ms = MONITOR_TICK_MS_DEFAULT;
    cfg->telemetry_retention_h = TELEMETRY_RETENTION_H_DEFAULT;
    cfg->web_dir = EF_WEB_DIR;
    cfg->node_modules = EF_NODE_MODULES;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
        int rc = 0;
        switch (opt) {
        case OPT_DATA_DIR:
            cfg->data_dir = optarg;
            break;
        case OPT_LISTEN:
            rc = parse_listen(optarg, cfg);
            break;
        case OPT_MQTT:
            cfg->mqtt_url = optarg;
            break;
        case OPT_TELEMETRY_RETENTION:
            if ((rc = parse_count(optarg, 87600, &v)) == 0)
                cfg->telemetry_retention_h = (unsigned)v;
            break;
        case OPT_MQTT_PASSWORD_FILE:
            cfg->mqtt_password_file = optarg;
            break;
        case OPT_WEB_DIR:
            cfg->web_dir = optarg;
            cfg->web_dir_given = true;
            break;
        case OPT_NODE_MODULES:
            cfg->node_modules = optarg;
            break;
        case OPT_MONITOR_TICK:
            if ((rc = parse_count(optarg, 3600000, &v)) == 0)
                cfg->monitor_tick_ms = (unsigned)v;
            break;
        case OPT_RETRAIN_COMMAND:
            rc = optarg[0] ? 0 : EF_EINVAL;
            cfg->retrain_command = optarg;
            break;
        case OPT_THREADS:
            if ((rc = parse_count(optarg, 256, &v)) == 0)
                cfg->threads = (unsigned)v;
            break;
        case OPT_MAX_CONN:
            if ((rc = parse_count(optarg, 100000, &v)) == 0)
                cfg->max_connections = (unsigned)v;
            break;
        case OPT_TIMEOUT:
            if ((rc = parse_count(optarg, 86400, &v)) == 0)
                cfg->timeout_s = (unsigned)v;
            break;
        case OPT_ROLLOUT_TICK:
            if ((rc = parse_count(optarg, 3600000, &v)) == 0)
                cfg->rollout_tick_ms = (unsigned)v;
            break;
        case OPT_MAX_UPLOAD:
            if ((rc = parse_count(optarg, 1ull << 34, &v)) == 0)
                cfg->max_upload = (size_t)v;
            break;
        case OPT_LOG_LEVEL: {
            enum ef_log_level level;
            if ((rc = ef_log_level_parse(optarg, &level)) == 0)
                ef_log_set_level(level);
            break;
        }
        case 'h':
            fputs(usage, stdout);
            exit(0);
        default:
            fputs(usage, stderr);
            return EF_EINVAL;
        }
        if (rc != 0) {
            fprintf(stderr, "edgefleet-server: invalid value for --%s: %s\n",
                    long_options[opt - 1].name, optarg);
            return rc;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "edgefleet-server: unexpected argument: %s\n", argv[optind]);
        return EF_EINVAL;
    }
    if (!cfg->data_dir) {
        fprintf(stderr, "edgefleet-server: --data-dir is required\n");
        return EF_EINVAL;
    }
    return 0;
}

/* Joins data_dir and a relative name into buf; aborts on truncation. */
static const char *data_path(const struct server_config *cfg, const char *name, char *buf,
                             size_t size)
{
    int n = snprintf(buf, size, "%s/%s", cfg->data_dir, name);
    if (n < 0 || (size_t)n >= size) {
        fprintf(stderr, "edgefleet-server: data directory path too long\n");
        exit(1);
    }
    return buf;
}

static int cmd_init(struct server_config *cfg)
{
    char path[4096], token[EF_TOKEN_SIZE], hash[EF_HEX256_SIZE];
    struct ef_keypair release, server;
    struct db *db = NULL;
    struct stat st;
    int rc;
    if (stat(data_path(cfg, SERVER_DB_FILE, path, sizeof(path)), &st) == 0) {
        fprintf(stderr, "edgefleet-server: %s is already initialised\n", cfg->data_dir);
        return EF_EEXIST;
    }
    if ((rc = ef_mkdir_p(cfg->data_dir, 0700)) != 0 ||
        (rc = ef_mkdir_p(data_path(cfg, "keys", path, sizeof(path)), 0700)) != 0 ||
        (rc = ef_mkdir_p(data_path(cfg, SERVER_STORE_DIR, path, sizeof(path)), 0700)) != 0 ||
        (rc = ef_mkdir_p(data_path(cfg, SERVER_TMP_DIR, path, sizeof(path)), 0700)) != 0) {
        fprintf(stderr, "edgefleet-server: cannot create %s: %s\n", path, ef_strerror(rc));
        return rc;
    }
    ef_keypair_generate(&release);
    ef_keypair_generate(&server);
    if ((rc = ef_keypair_save(&release,
                              data_path(cfg, SERVER_RELEASE_KEY_FILE, path, sizeof(path)))) != 0 ||
        (rc = ef_keypair_save(&server,
                              data_path(cfg, SERVER_SERVER_KEY_FILE, path, sizeof(path)))) != 0) {
        fprintf(stderr, "edgefleet-server: cannot write %s: %s\n", path, ef_strerror(rc));
        goto out;
    }
    if ((rc = db_open(data_path(cfg, SERVER_DB_FILE, path, sizeof(path)), &db)) != 0 ||
        (rc = db_migrate(db, NULL, NULL)) != 0) {
        fprintf(stderr, "edgefleet-server: cannot create the database: %s\n", ef_strerror(rc));
        goto out;
    }
    ef_token_generate(AUTH_PREFIX_API, token);
    ef_token_hash(token, hash);
    if ((rc = db_api_token_create(db, "admin", "admin", hash, ef_now_ms(), NULL)) != 0) {
        fprintf(stderr, "edgefleet-server: cannot store the admin token: %s\n", ef_strerror(rc));
        goto out;
    }
    char release_b64[EF_PK_B64_SIZE], server_b64[EF_PK_B64_SIZE];
    ef_pk_to_b64(release.pk, release_b64);
    ef_pk_to_b64(server.pk, server_b64);
    printf("initialised %s\n", cfg->data_dir);
    printf("release key (public): %s\n", release_b64);
    printf("server key (public):  %s\n", server_b64);
    printf("admin token (shown once, stored only as a hash):\n%s\n", token);
out:
    sodium_memzero(token, sizeof(token));
    ef_keypair_wipe(&release);
    ef_keypair_wipe(&server);
    db_close(db);
    return rc;
}

/* Copies url for logs with its password, if any, replaced by "***". */
static void redact_url(const char *url, char *buf, size_t size)
{
    const char *at = url ? strrchr(url, '@') : NULL;
    const char *scheme_end = url ? strstr(url, "://") : NULL;
    const char *colon =
        scheme_end && at ? memchr(scheme_end + 3, ':', (size_t)(at - scheme_end - 3)) : NULL;
    if (!url)
        snprintf(buf, size, "none");
    else if (colon)
        snprintf(buf, size, "%.*s:***%s", (int)(colon - url), url, at);
    else
        snprintf(buf, size, "%s", url);
}

/* Reads a one-line secret (trailing newline dropped). EF_ETOOBIG, EF_EINVAL
 * (empty), or the error of reading the file. */
static int read_secret(const char *path, char *buf, size_t size)
{
    char *text = NULL;
    size_t len = 0;
    int rc = ef_read_file(path, size - 1, &text, &len);
    if (rc != 0)
        return rc;
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        text[--len] = '\0';
    if (len == 0)
        rc = EF_EINVAL;
    else
        memcpy(buf, text, len + 1);
    sodium_memzero(text, len);
    free(text);
    return rc;
}

/* Removes uploads a previous run left half-received in tmp/ (a crash or a
 * kill in the middle of a request): nothing refers to them. */
static void sweep_tmp(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int removed = 0;
    if (!d)
        return;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "upload.", 7) == 0 && unlinkat(dirfd(d), e->d_name, 0) == 0)
            removed++;
    }
    closedir(d);
    if (removed)
        ef_info("tmp_swept", "dir=%s files=%d", dir, removed);
}

/* Blocks SIGINT and SIGTERM in this thread and every thread it starts, so
 * that main alone receives them through sigwait: no handler, no global. */
static void block_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static int cmd_serve(struct server *srv)
{
    char path[4096], mqtt_shown[300], mqtt_password[256] = "";
    sigset_t signals;
    struct telemetry_config tcfg;
    struct report_queue_config rcfg;
    int rc, sig = 0, from = 0, to = 0;
    block_signals(&signals);
    srv->started_ms = ef_now_ms();
    if ((rc = ef_keypair_load(&srv->release_key, data_path(&srv->cfg, SERVER_RELEASE_KEY_FILE, path,
                                                           sizeof(path)))) != 0 ||
        (rc = ef_keypair_load(&srv->server_key, data_path(&srv->cfg, SERVER_SERVER_KEY_FILE, path,
                                                          sizeof(path)))) != 0) {
        fprintf(stderr, "edgefleet-server: cannot load %s: %s (run init first?)\n", path,
                ef_strerror(rc));
        goto out;
    }
    if ((rc = db_open(data_path(&srv->cfg, SERVER_DB_FILE, path, sizeof(path)), &srv->db)) != 0 ||
        (rc = db_migrate(srv->db, &from, &to)) != 0 ||
        (rc = checkin_open(srv->db, &srv->checkin)) != 0) {
        fprintf(stderr, "edgefleet-server: cannot open the database: %s\n", ef_strerror(rc));
        goto out;
    }
    sweep_tmp(data_path(&srv->cfg, SERVER_TMP_DIR, path, sizeof(path)));
    if ((rc = ef_mkdir_p(data_path(&srv->cfg, SERVER_TMP_DIR, path, sizeof(path)), 0700)) != 0 ||
        (rc = store_open(data_path(&srv->cfg, SERVER_STORE_DIR, path, sizeof(path)),
                         &srv->store)) != 0) {
        fprintf(stderr, "edgefleet-server: cannot open %s: %s\n", path, ef_strerror(rc));
        goto out;
    }
    /* The writers start before the broker client that feeds them. */
    telemetry_config_default(&tcfg);
    tcfg.retention_ms = (int64_t)srv->cfg.telemetry_retention_h * 3600 * 1000;
    if ((rc = telemetry_start(srv->db, &tcfg, &srv->stats, &srv->telemetry)) != 0) {
        fprintf(stderr, "edgefleet-server: cannot start the telemetry writer: %s\n",
                ef_strerror(rc));
        goto out;
    }
    report_queue_config_default(&rcfg);
    if ((rc = report_queue_start(srv->db, &rcfg, &srv->stats, &srv->reports)) != 0) {
        fprintf(stderr, "edgefleet-server: cannot start the report writer: %s\n", ef_strerror(rc));
        goto out;
    }
    redact_url(srv->cfg.mqtt_url, mqtt_shown, sizeof(mqtt_shown));
    if (srv->cfg.mqtt_password_file &&
        (rc = read_secret(srv->cfg.mqtt_password_file, mqtt_password, sizeof(mqtt_password)))) {
        fprintf(stderr, "edgefleet-server: cannot read %s: %s\n", srv->cfg.mqtt_password_file,
                ef_strerror(rc));
        goto out;
    }
    if (srv->cfg.mqtt_url &&
        (rc = mqtt_start(srv, srv->cfg.mqtt_url, srv->cfg.mqtt_password_file ? mqtt_password : NULL,
                         &srv->mqtt)) != 0) {
        fprintf(stderr, "edgefleet-server: cannot use broker %s: %s\n", mqtt_shown,
                ef_strerror(rc));
        goto out;
    }
    /* Before the HTTP API, whose rollout routes use it; after the broker
     * client it publishes through. */
    if ((rc = rollout_engine_start(srv, &srv->rollouts)) != 0) {
        fprintf(stderr, "edgefleet-server: cannot start the rollout engine: %s\n", ef_strerror(rc));
        goto out;
    }
    /* The dashboard is optional where it was not asked for: a server whose
     * checkout has gone (an installed binary) still serves the API. */
    rc = web_open(srv->cfg.web_dir, srv->cfg.node_modules, &srv->web);
    if (rc != 0 && (rc != EF_ENOENT || srv->cfg.web_dir_given)) {
        fprintf(stderr, "edgefleet-server: cannot serve the dashboard from %s: %s\n",
                srv->cfg.web_dir, ef_strerror(rc));
        goto out;
    }
    if ((rc = http_start(srv, &srv->http)) != 0) {
        fprintf(stderr, "edgefleet-server: cannot listen on %s:%u: %s\n", srv->cfg.listen_host,
                srv->cfg.listen_port, ef_strerror(rc));
        goto out;
    }
    /* After the HTTP daemon, whose port (perhaps picked by the system) a
     * retrain command is told; it acts through the rollout engine. */
    if ((rc = monitor_start(srv, &srv->monitor)) != 0) {
        fprintf(stderr, "edgefleet-server: cannot start the monitor: %s\n", ef_strerror(rc));
        goto out;
    }
    ef_info("server_started", "url=http://%s:%u schema_version=%d mqtt=%s threads=%u",
            srv->cfg.listen_host, srv->cfg.listen_port, to, mqtt_shown, srv->cfg.threads);
    sigwait(&signals, &sig);
    ef_info("server_stopping", "signal=%d", sig);
out:
    /* Stop taking requests first, then the broker client that handlers use,
     * then the stores they write to. */
    http_stop(srv->http);
    web_close(srv->web);
    monitor_stop(srv->monitor);
    rollout_engine_stop(srv->rollouts);
    mqtt_stop(srv->mqtt);
    telemetry_stop(srv->telemetry);
    report_queue_stop(srv->reports);
    store_close(srv->store);
    checkin_close(srv->checkin);
    db_close(srv->db);
    ef_keypair_wipe(&srv->release_key);
    ef_keypair_wipe(&srv->server_key);
    sodium_memzero(mqtt_password, sizeof(mqtt_password));
    return rc;
}

static void cmd_routes(void)
{
    for (const struct route *r = routes; r->method; r++)
        printf("%s %s\n", r->method, r->pattern);
}

int main(int argc, char **argv)
{
    struct server srv;
    memset(&srv, 0, sizeof(srv));
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (ef_crypto_init() != 0) {
        fprintf(stderr, "edgefleet-server: libsodium failed to initialise\n");
        return 1;
    }
    const char *command = argv[1];
    if (strcmp(command, "routes") == 0) {
        cmd_routes();
        return 0;
    }
    if (strcmp(command, "init") != 0 && strcmp(command, "serve") != 0) {
        fprintf(stderr, "edgefleet-server: unknown command '%s'\n%s", command, usage);
        return 2;
    }
    if (parse_options(argc - 1, argv + 1, &srv.cfg) != 0)
        return 2;
    int rc = strcmp(command, "init") == 0 ? cmd_init(&srv.cfg) : cmd_serve(&srv);
    return rc == 0 ? 0 : 1;
}
