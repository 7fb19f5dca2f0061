/*
 * server.h - the one state of edgefleet-server, created in main and passed down.
 */
#ifndef EF_SERVER_H
#define EF_SERVER_H

#include "common/crypto.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct db;
struct store;
struct mqtt;
struct http;
struct checkin;
struct rollout_engine;
struct monitor;
struct telemetry;
struct report_queue;
struct web;

struct server_config {
    const char *data_dir;           /* holds edgefleet.db, keys/, store/, tmp/ */
    char listen_host[64];           /* address to bind, e.g. 127.0.0.1 */
    uint16_t listen_port;           /* TCP port */
    const char *mqtt_url;           /* mqtt://[user@]host:port, or NULL to run without a broker */
    const char *mqtt_password_file; /* the broker password, or NULL */
    const char *web_dir;            /* the dashboard's files (index.html, assets/) */
    const char *node_modules;       /* npm's node_modules, where uplot/dist is */
    bool web_dir_given;             /* --web-dir was given: serve fails when it is unusable */
    size_t max_upload;              /* bytes, largest artifact accepted */
    size_t max_json;                /* bytes, largest JSON request body */
    unsigned threads;               /* HTTP worker threads */
    unsigned max_connections;       /* concurrent HTTP connections */
    unsigned timeout_s;             /* idle HTTP connection timeout, seconds */
    unsigned rollout_tick_ms;       /* rollout engine period, milliseconds */
    unsigned telemetry_retention_h; /* hours raw telemetry windows are kept */
    unsigned monitor_tick_ms;       /* trigger evaluation period, milliseconds */
    const char *retrain_command;    /* run by /bin/sh -c on a retrain alert, or NULL */
};

/* Counters exported at /metrics; updated from any thread. */
struct server_stats {
    atomic_uint_fast64_t http_requests;         /* requests answered */
    atomic_uint_fast64_t http_errors;           /* answered with status >= 400 */
    atomic_uint_fast64_t http_not_modified;     /* desired-state polls answered 304 */
    atomic_uint_fast64_t mqtt_messages_in;      /* device messages received */
    atomic_uint_fast64_t mqtt_publishes;        /* assignments and events published */
    atomic_uint_fast64_t assignments_issued;    /* signed assignments written */
    atomic_uint_fast64_t telemetry_received;    /* windows queued for the writer */
    atomic_uint_fast64_t telemetry_malformed;   /* payloads the parser refused */
    atomic_uint_fast64_t telemetry_dropped;     /* windows dropped: queue full */
    atomic_uint_fast64_t telemetry_stored;      /* windows written */
    atomic_uint_fast64_t telemetry_ignored;     /* windows of devices not enrolled */
    atomic_uint_fast64_t telemetry_failed;      /* windows lost to database errors */
    atomic_uint_fast64_t telemetry_batches;     /* writer transactions committed */
    atomic_uint_fast64_t telemetry_expired;     /* windows deleted by retention */
    atomic_uint_fast64_t telemetry_queue_depth; /* gauge: windows waiting now */
    atomic_uint_fast64_t report_received;       /* device reports queued for the writer */
    atomic_uint_fast64_t report_malformed;      /* reports refused (parser, id, size) */
    atomic_uint_fast64_t report_dropped;        /* reports dropped: queue full */
    atomic_uint_fast64_t report_stored;         /* reports applied */
    atomic_uint_fast64_t report_ignored;        /* reports of devices not enrolled */
    atomic_uint_fast64_t report_failed;         /* reports lost to database errors */
    atomic_uint_fast64_t report_batches;        /* report transactions committed */
    atomic_uint_fast64_t report_queue_depth;    /* gauge: reports waiting now */
};

struct server {
    struct server_config cfg;
    struct db *db;                   /* SQLite store, owned */
    struct checkin *checkin;         /* device check-in cache over db, owned */
    struct store *store;             /* artifact store, owned */
    struct mqtt *mqtt;               /* broker client, owned; NULL without a broker */
    struct http *http;               /* HTTP daemon, owned */
    struct rollout_engine *rollouts; /* rollout engine thread, owned */
    struct monitor *monitor;         /* trigger rules thread, owned; NULL until started */
    struct telemetry *telemetry;     /* telemetry writer, owned; NULL until started */
    struct report_queue *reports;    /* device report writer, owned; NULL until started */
    struct web *web;                 /* the dashboard's files, owned; NULL when not installed */
    struct ef_keypair release_key;   /* signs manifests */
    struct ef_keypair server_key;    /* signs assignments */
    int64_t started_ms;              /* Unix ms, for uptime */
    struct server_stats stats;
};

/* File names inside the data directory. */
#define SERVER_DB_FILE          "edgefleet.db"
#define SERVER_RELEASE_KEY_FILE "keys/release.key"
#define SERVER_SERVER_KEY_FILE  "keys/server.key"
#define SERVER_STORE_DIR        "store"
#define SERVER_TMP_DIR          "tmp"

#endif
