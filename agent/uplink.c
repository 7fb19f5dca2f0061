/*
 * uplink.c - status, desired, cmd, reported and telemetry over MQTT, and the
 * GET /desired pull that converges a device whatever the broker lost.
 */
#include "agent/uplink.h"
#include "agent/collect.h"
#include "agent/deploy.h"
#include "agent/http_client.h"
#include "agent/mqtt_link.h"
#include "common/clock.h"
#include "common/ef_error.h"
#include "common/json_util.h"
#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CMD_MAX_BYTES (16u * 1024u)

static void publish_json(struct agent *a, const char *leaf, const json_t *doc, int qos)
{
    char topic[EF_TOPIC_SIZE];
    char *text = ef_json_dump(doc);
    if (text && ef_topic_device(topic, sizeof(topic), a->cfg.device_id, leaf) == 0 && a->mqtt)
        (void)mqtt_link_publish(a->mqtt, topic, text, strlen(text), qos, false);
    free(text);
}

void agent_report(struct agent *a, const char *slot, const char *model, int64_t version,
                  const char *state, const char *reason)
{
    json_t *doc = json_pack("{s:s, s:s, s:I, s:s}", "slot", slot, "model", model, "version",
                            (json_int_t)version, "state", state);
    if (!doc)
        return;
    if (reason)
        json_object_set_new(doc, "reason", json_string(reason));
    if (a->deploy && deploy_last_seq(a->deploy) > 0)
        json_object_set_new(doc, "seq", json_integer(deploy_last_seq(a->deploy)));
    publish_json(a, "reported", doc, 1);
    json_decref(doc);
}

void uplink_publish_telemetry(struct agent *a, const json_t *window)
{
    publish_json(a, "telemetry", window, 0);
}

static void desired_answered(void *ctx, const struct http_result *res)
{
    struct agent *a = ctx;
    a->polling = false;
    if (res->rc == EF_EBUSY || a->stopping)
        return;
    if (res->rc != 0) {
        ef_warn("desired_poll_failed", "error=%s", ef_errname(res->rc));
        return;
    }
    if (res->status == 304 || res->status == 404) {
        /* Unchanged, or nothing assigned yet; the server hears where we stand. */
        deploy_report_current(a->deploy);
        return;
    }
    if (res->status != 200) {
        ef_warn("desired_poll_failed", "status=%ld", res->status);
        return;
    }
    int64_t held = deploy_last_seq(a->deploy);
    int rc = deploy_on_desired(a->deploy, res->body, res->body_len);
    /* Remember the ETag only of what was applied, so a refused document is
     * fetched again rather than skipped forever. */
    if (rc == 0)
        snprintf(a->desired_etag, sizeof(a->desired_etag), "%s", res->etag);
    /* The seq we already hold (it came over MQTT, so our ETag was older):
     * nothing moves, so nothing is reported; say where we stand, as after a
     * 304, so that a report the broker dropped is made good at this poll. */
    if (rc == 0 && held > 0 && deploy_last_seq(a->deploy) == held)
        deploy_report_current(a->deploy);
}

void agent_poll_desired(struct agent *a)
{
    char url[384];
    if (a->polling || a->stopping || !a->http || !a->id.device_token[0])
        return;
    snprintf(url, sizeof(url), "%s/api/v1/devices/%s/desired", a->cfg.server_url, a->cfg.device_id);
    struct http_request_opts opts = {
        .url = url,
        .bearer = a->id.device_token,
        .if_none_match = a->desired_etag[0] ? a->desired_etag : NULL,
        .max_bytes = 256 * 1024,
        .timeout_ms = 30000,
    };
    if (http_client_request(a->http, &opts, desired_answered, a) == 0)
        a->polling = true;
    /* The collection policy may have changed with the desired state. */
    if (a->collect)
        collect_refresh(a->collect);
}

/* One-shot requests on `cmd`: {"command": "report_now" | "poll_desired" |
 * "collect"}; {"cmd": NAME} is read the same way (docs/monitoring.md). */
static void handle_cmd(struct agent *a, const char *payload, size_t len)
{
    json_t *doc = NULL;
    const char *command = NULL;
    if (ef_json_load(payload, len, CMD_MAX_BYTES, &doc, NULL, 0) == 0 &&
        !(command = ef_json_str(doc, "command")))
        command = ef_json_str(doc, "cmd");
    if (!command) {
        ef_warn("cmd_malformed", "bytes=%zu", len);
    } else if (strcmp(command, "poll_desired") == 0) {
        agent_poll_desired(a);
    } else if (strcmp(command, "report_now") == 0) {
        agent_telemetry_now(a);
    } else if (strcmp(command, "collect") == 0) {
        ef_info("cmd_collect", "device=%s", a->cfg.device_id);
        if (a->collect)
            collect_refresh(a->collect);
    } else {
        ef_warn("cmd_unknown", "command=%.40s", command);
    }
    json_decref(doc);
}

static void on_message(void *ctx, const char *topic, const void *payload, size_t len)
{
    struct agent *a = ctx;
    char device_id[EF_DEVICE_ID_MAX + 1];
    const char *leaf;
    if (ef_topic_parse_device(topic, device_id, &leaf) != 0 ||
        strcmp(device_id, a->cfg.device_id) != 0)
        return;
    if (strcmp(leaf, "desired") == 0 && len > 0)
        (void)deploy_on_desired(a->deploy, payload, len);
    else if (strcmp(leaf, "cmd") == 0)
        handle_cmd(a, payload, len);
}

static void on_state(void *ctx, bool connected)
{
    struct agent *a = ctx;
    char topic[EF_TOPIC_SIZE];
    if (!connected) {
        ef_warn("broker_lost", "device=%s", a->cfg.device_id);
        return;
    }
    ef_info("broker_connected", "device=%s", a->cfg.device_id);
    if (ef_topic_device(topic, sizeof(topic), a->cfg.device_id, "status") == 0)
        (void)mqtt_link_publish(a->mqtt, topic, "online", 6, 1, true);
    /* Reports sent while the link was down are lost (QoS 1 queues nothing
     * offline): say again where each slot stands. The broker may also have
     * lost the retained assignment, or we missed it while away: the server's
     * HTTP copy settles it. */
    deploy_report_current(a->deploy);
    agent_poll_desired(a);
}

int uplink_start(struct agent *a)
{
    char host[256], will_topic[EF_TOPIC_SIZE], desired[EF_TOPIC_SIZE], cmd[EF_TOPIC_SIZE];
    int port = 0, rc;
    if ((rc = mqtt_link_parse_url(a->cfg.mqtt_url, host, sizeof(host), &port)) != 0 ||
        (rc = ef_topic_device(will_topic, sizeof(will_topic), a->cfg.device_id, "status")) != 0 ||
        (rc = ef_topic_device(desired, sizeof(desired), a->cfg.device_id, "desired")) != 0 ||
        (rc = ef_topic_device(cmd, sizeof(cmd), a->cfg.device_id, "cmd")) != 0)
        return rc;
    struct mqtt_link_opts opts = {
        .host = host,
        .port = port,
        .client_id = a->cfg.device_id,
        .username = a->id.mqtt_username[0] ? a->id.mqtt_username : NULL,
        .password = a->id.mqtt_username[0] ? a->id.mqtt_password : NULL,
        .will_topic = will_topic,
        .will_payload = "offline",
        .keepalive_s = 30,
    };
    if ((rc = mqtt_link_start(agent_loop(a), &opts, on_message, on_state, a, &a->mqtt)) != 0)
        return rc;
    (void)mqtt_link_subscribe(a->mqtt, desired, 1);
    (void)mqtt_link_subscribe(a->mqtt, cmd, 1);
    return 0;
}

void uplink_stop(struct agent *a)
{
    char topic[EF_TOPIC_SIZE];
    if (!a->mqtt)
        return;
    if (ef_topic_device(topic, sizeof(topic), a->cfg.device_id, "status") == 0)
        (void)mqtt_link_publish(a->mqtt, topic, "offline", 7, 1, true);
    mqtt_link_stop(a->mqtt);
    a->mqtt = NULL;
}
