/* api_ops.c - operations endpoints: health, Prometheus metrics, the OpenAPI
 * document and the public keys. */
#include "server/api.h"
#include "server/db.h"
#include "server/embedded.h"
#include "server/mqtt.h"
#include "server/server.h"
#include "common/clock.h"
#include "common/crypto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum MHD_Result api_healthz(struct request *req)
{
    struct server *srv = req->srv;
    json_t *counts = NULL;
    int rc = db_counts(srv->db, &counts);
    json_decref(counts);
    const char *mqtt = !srv->mqtt                  ? "disabled"
                       : mqtt_connected(srv->mqtt) ? "connected"
                                                   : "disconnected";
    /* The broker being away degrades device traffic but not the API, so only
     * the database decides whether this server is healthy. */
    return http_reply_json(req, rc == 0 ? 200 : 503,
                           json_pack("{s:s, s:s, s:s, s:I}", "status", rc == 0 ? "ok" : "degraded",
                                     "database", rc == 0 ? "ok" : "error", "mqtt", mqtt, "uptime_s",
                                     (json_int_t)((ef_now_ms() - srv->started_ms) / 1000)));
}

/* Appends one metric with its HELP and TYPE lines. */
static void metric(char **buf, size_t *len, size_t *cap, const char *name, const char *type,
                   const char *help, unsigned long long value)
{
    for (;;) {
        int n = snprintf(*buf + *len, *cap - *len, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name,
                         help, name, type, name, value);
        if (n < 0)
            return;
        if ((size_t)n < *cap - *len) {
            *len += (size_t)n;
            return;
        }
        char *grown = realloc(*buf, *cap * 2);
        if (!grown)
            return;
        *buf = grown;
        *cap *= 2;
    }
}

enum MHD_Result api_metrics(struct request *req)
{
    struct server *srv = req->srv;
    struct server_stats *st = &srv->stats;
    json_t *counts = NULL;
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    if (!buf)
        return http_reply_error(req, 500, "internal", "out of memory");
    buf[0] = '\0';
    metric(&buf, &len, &cap, "edgefleet_http_requests_total", "counter", "HTTP requests answered.",
           atomic_load(&st->http_requests));
    metric(&buf, &len, &cap, "edgefleet_http_errors_total", "counter",
           "HTTP requests answered with a status of 400 or more, or aborted.",
           atomic_load(&st->http_errors));
    metric(&buf, &len, &cap, "edgefleet_desired_not_modified_total", "counter",
           "Device desired-state polls answered 304.", atomic_load(&st->http_not_modified));
    metric(&buf, &len, &cap, "edgefleet_mqtt_messages_received_total", "counter",
           "Device messages received from the broker.", atomic_load(&st->mqtt_messages_in));
    metric(&buf, &len, &cap, "edgefleet_mqtt_publishes_total", "counter",
           "Messages published to the broker.", atomic_load(&st->mqtt_publishes));
    metric(&buf, &len, &cap, "edgefleet_assignments_issued_total", "counter",
           "Signed device assignments written.", atomic_load(&st->assignments_issued));
    metric(&buf, &len, &cap, "edgefleet_mqtt_connected", "gauge",
           "1 while connected to the broker.", srv->mqtt && mqtt_connected(srv->mqtt));
    metric(&buf, &len, &cap, "edgefleet_telemetry_windows_received_total", "counter",
           "Telemetry windows queued for the writer.", atomic_load(&st->telemetry_received));
    metric(&buf, &len, &cap, "edgefleet_telemetry_windows_malformed_total", "counter",
           "Telemetry payloads refused by the parser.", atomic_load(&st->telemetry_malformed));
    metric(&buf, &len, &cap, "edgefleet_telemetry_windows_dropped_total", "counter",
           "Telemetry windows dropped because the queue was full.",
           atomic_load(&st->telemetry_dropped));
    metric(&buf, &len, &cap, "edgefleet_telemetry_windows_stored_total", "counter",
           "Telemetry windows written to the database.", atomic_load(&st->telemetry_stored));
    metric(&buf, &len, &cap, "edgefleet_telemetry_windows_ignored_total", "counter",
           "Telemetry windows of devices that are not enrolled.",
           atomic_load(&st->telemetry_ignored));
    metric(&buf, &len, &cap, "edgefleet_telemetry_windows_failed_total", "counter",
           "Telemetry windows lost to database errors.", atomic_load(&st->telemetry_failed));
    metric(&buf, &len, &cap, "edgefleet_telemetry_batches_total", "counter",
           "Telemetry write transactions committed.", atomic_load(&st->telemetry_batches));
    metric(&buf, &len, &cap, "edgefleet_telemetry_windows_expired_total", "counter",
           "Telemetry windows deleted after the retention period.",
           atomic_load(&st->telemetry_expired));
    metric(&buf, &len, &cap, "edgefleet_telemetry_queue_depth", "gauge",
           "Telemetry windows waiting for the writer.", atomic_load(&st->telemetry_queue_depth));
    metric(&buf, &len, &cap, "edgefleet_reports_received_total", "counter",
           "Device reports (reported and status messages) queued for the writer.",
           atomic_load(&st->report_received));
    metric(&buf, &len, &cap, "edgefleet_reports_malformed_total", "counter",
           "Device reports refused by the parser.", atomic_load(&st->report_malformed));
    metric(&buf, &len, &cap, "edgefleet_reports_dropped_total", "counter",
           "Device reports dropped because the queue was full.", atomic_load(&st->report_dropped));
    metric(&buf, &len, &cap, "edgefleet_reports_stored_total", "counter",
           "Device reports applied to the database.", atomic_load(&st->report_stored));
    metric(&buf, &len, &cap, "edgefleet_reports_ignored_total", "counter",
           "Device reports of devices that are not enrolled.", atomic_load(&st->report_ignored));
    metric(&buf, &len, &cap, "edgefleet_reports_failed_total", "counter",
           "Device reports lost to database errors.", atomic_load(&st->report_failed));
    metric(&buf, &len, &cap, "edgefleet_report_batches_total", "counter",
           "Device report transactions committed.", atomic_load(&st->report_batches));
    metric(&buf, &len, &cap, "edgefleet_report_queue_depth", "gauge",
           "Device reports waiting for the writer.", atomic_load(&st->report_queue_depth));
    if (db_counts(srv->db, &counts) == 0) {
        static const struct {
            const char *key, *name, *help;
        } gauges[] = {
            {"models", "edgefleet_models", "Models in the registry."},
            {"versions", "edgefleet_model_versions", "Model versions in the registry."},
            {"devices", "edgefleet_devices", "Enrolled devices."},
            {"devices_online", "edgefleet_devices_online", "Devices whose status is online."},
            {"rings", "edgefleet_rings", "Rollout rings."},
        };
        for (size_t i = 0; i < sizeof(gauges) / sizeof(gauges[0]); i++)
            metric(&buf, &len, &cap, gauges[i].name, "gauge", gauges[i].help,
                   (unsigned long long)json_integer_value(json_object_get(counts, gauges[i].key)));
    }
    json_decref(counts);
    enum MHD_Result r =
        http_reply_bytes(req, 200, "text/plain; version=0.0.4; charset=utf-8", buf, len, NULL);
    free(buf);
    return r;
}

enum MHD_Result api_openapi(struct request *req)
{
    for (const struct ef_embedded_file *f = ef_embedded; f->name; f++)
        if (strcmp(f->name, "openapi.yaml") == 0)
            return http_reply_bytes(req, 200, "application/yaml", f->data, f->size, NULL);
    return http_reply_error(req, 500, "internal", "the OpenAPI document was not built in");
}

enum MHD_Result api_keys(struct request *req)
{
    char release[EF_PK_B64_SIZE], server[EF_PK_B64_SIZE];
    ef_pk_to_b64(req->srv->release_key.pk, release);
    ef_pk_to_b64(req->srv->server_key.pk, server);
    return http_reply_json(
        req, 200,
        json_pack("{s:s, s:s, s:s}", "release", release, "server", server, "algorithm", "ed25519"));
}
